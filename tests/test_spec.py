"""CellSpec knows its shapes and cost; the registry answers by name."""

import pytest

from kernels import BACKENDS, CellSpec, available_backends, get_backend


def test_shapes():
    spec = CellSpec("lstm", input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True)
    assert spec.input_shape(7, 2) == (2, 7, 3)
    assert spec.output_shape(7, 2) == (2, 7, 10)
    assert spec.state_shape(2) == (4, 2, 5)
    shapes = spec.weight_shapes()
    assert shapes["weight_ih_l0"] == (20, 3)
    assert shapes["weight_ih_l1_reverse"] == (20, 10)
    assert shapes["bias_hh_l1"] == (20,)
    assert len(shapes) == 16


def test_flops_counts_matrix_products_and_pointwise():
    # rnn_tanh, I=2, H=3, one layer: per step and row 2*3*(2+3) = 30 for the
    # products, 2*3 = 6 bias adds, 3 tanh -> 39
    assert CellSpec("rnn_tanh", 2, 3).flops(timesteps=1, batch=1) == 39
    assert CellSpec("rnn_tanh", 2, 3).flops(timesteps=10, batch=4) == 39 * 40
    assert CellSpec("rnn_tanh", 2, 3, bias=False).flops(1, 1) == 33
    # lstm: G = 4: 2*4*3*5 = 120 + 2*12 = 24 bias + 9*3 = 27 pointwise
    assert CellSpec("lstm", 2, 3).flops(1, 1) == 171
    # two layers, bidirectional: layer 1 reads D*H = 6 features
    two = CellSpec("rnn_tanh", 2, 3, num_layers=2, bidirectional=True).flops(1, 1)
    assert two == 2 * 39 + 2 * (2 * 3 * (6 + 3) + 6 + 3)


def test_weight_bytes():
    assert CellSpec("rnn_tanh", 2, 3, dtype="float64").weight_bytes() == 8 * (3 * 2 + 3 * 3 + 3 + 3)


def test_unknown_backend_lists_known():
    with pytest.raises(ValueError, match="backend: unknown name 'cudnn'; known: .*'numpy'.*'torch_cuda'"):
        get_backend("cudnn")


def test_available_backends_gives_every_name_and_reasons():
    status = available_backends()
    assert list(status) == list(BACKENDS)
    assert status["numpy"] is None
    for reason in status.values():
        assert reason is None or (isinstance(reason, str) and reason)


def test_parsing_names_and_asking_numba_loads_neither_numba_nor_torch():
    """The parent of isolated workers must not load backend libraries just to read --backends."""
    import subprocess
    import sys

    script = ("import sys, kernels\n"
              "kernels.parse_backend_list('numpy,numba:blas@mkl,numba:fused@openblas,torch_cpu')\n"
              "assert kernels.availability('numba:parallel') is None\n"
              "print(sorted(m for m in ('numba', 'torch') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_backend_whose_module_fails_to_import_is_unavailable_with_the_reason(monkeypatch):
    from kernels import availability, registry

    monkeypatch.setitem(registry.BACKENDS, "ghost", ("kernels.no_such_module", "Ghost", ()))
    assert availability("ghost").startswith("cannot import: No module named 'kernels.no_such_module'")
    assert available_backends(["numpy", "ghost"])["numpy"] is None
    with pytest.raises(ValueError, match="backend: unknown name 'ghost:fast'"):
        availability("ghost:fast")  # declares no variants: it could not be imported to declare any


def test_cuda_reason_when_no_gpu():
    torch = pytest.importorskip("torch")
    reason = available_backends()["torch_cuda"]
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert reason.startswith("CUDA not available: ")
        with pytest.raises(RuntimeError, match="backend 'torch_cuda' is unavailable: CUDA not available"):
            import numpy as np

            from kernels import init_weights

            spec = CellSpec("gru", 3, 4)
            get_backend("torch_cuda").forward(spec, init_weights(spec), np.zeros((2, 1, 3), np.float32))
