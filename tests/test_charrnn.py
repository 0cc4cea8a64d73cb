"""The tutorial's character RNN trained on every CPU backend (bench/charrnn.py)."""

import csv

import numpy as np
import pytest

from bench.__main__ import main
from bench.charrnn import COLUMNS, Adam, cross_entropy, train
from kernels import availability

from .conftest import AVAILABILITY

torch = pytest.importorskip("torch")

#: Every CPU backend with a forward_backward pass: its base name and each numba strategy.
CPU = ["numpy", "numba", "numba:parallel", "numba:fused", "numba:blas", "torch_cpu"]


def runnable(name):
    reason = AVAILABILITY.get(name, availability(name))
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    return name


@pytest.fixture(scope="module")
def torch_float64():
    return train("torch_cpu", "float64")


@pytest.mark.parametrize("name", [n for n in CPU if n != "torch_cpu"])
def test_float64_loss_equals_torch_at_every_printed_epoch(name, torch_float64):
    got = train(runnable(name), "float64")
    assert [r["epoch"] for r in got] == [0, 20, 40, 60, 80, 100] == [r["epoch"] for r in torch_float64]
    for mine, theirs in zip(got, torch_float64):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-6), mine["epoch"]
        assert mine["prediction"] == theirs["prediction"]
    assert all(r["prediction"] == "neuralnet" for r in got if r["epoch"] >= 20)
    assert got[-1]["loss"] < 0.01 * got[0]["loss"]  # it learned


@pytest.mark.parametrize("name", [*CPU, "torch_cuda"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predicts_neuralnet_by_epoch_20(name, dtype):
    rows = train(runnable(name), dtype, epochs=21)
    assert rows[0]["prediction"] != "neuralnet"  # the untrained model does not know it
    assert rows[1]["epoch"] == 20 and rows[1]["prediction"] == "neuralnet"
    assert all(isinstance(r["seconds"], float) and r["seconds"] > 0 for r in rows)


def test_adam_equals_torch_optim_adam():
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal((3, 4))}
    mine = {"w": p["w"].copy()}
    theirs = torch.tensor(p["w"], requires_grad=True)
    adam, opt = Adam(mine, lr=0.1), torch.optim.Adam([theirs], lr=0.1)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        adam.step(mine, {"w": g})
        theirs.grad = torch.tensor(g)
        opt.step()
        np.testing.assert_allclose(mine["w"], theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_cross_entropy_equals_torch():
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((9, 8)) * 5, rng.integers(0, 8, 9)
    loss, grad = cross_entropy(logits, labels)
    t = torch.tensor(logits, requires_grad=True)
    want = torch.nn.CrossEntropyLoss()(t, torch.tensor(labels))
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_cli_prints_and_writes_csv(tmp_path, capsys):
    out = tmp_path / "charrnn.csv"
    assert main(["charrnn", "--backends", "numpy,torch_cuda", "--epochs", "21", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "numpy epoch   20" in text and "prediction neuralnet" in text and "ms/epoch" in text
    assert ("torch_cuda: skipped" in text) == (availability("torch_cuda") is not None)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    assert [(r["backend"], r["dtype"], r["epoch"]) for r in rows if r["backend"] == "numpy"] == [
        ("numpy", "float32", "0"), ("numpy", "float32", "20")]
