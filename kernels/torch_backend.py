"""``torch_cpu`` and ``torch_cuda``: ``torch.nn.RNN``/``LSTM``/``GRU`` themselves.

One class serves both devices.  Weights are loaded through ``load_state_dict``
once at prepare time; ``run`` calls the module under ``torch.inference_mode``
and, on CUDA, synchronizes before returning so a timing covers the kernels.
"""

from __future__ import annotations

from .base import Backend, Prepared
from .checks import standard_layout


def torch_module(spec, weights=None):
    """A ``torch.nn`` module for ``spec`` (float64 or float32, CPU), loaded with
    ``weights`` when given; its ``state_dict`` names and shapes are the spec's."""
    import torch

    kwargs = dict(
        input_size=spec.input_size,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        bias=spec.bias,
        batch_first=spec.batch_first,
        bidirectional=spec.bidirectional,
        dtype=getattr(torch, spec.dtype),
    )
    if spec.mode == "lstm":
        module = torch.nn.LSTM(**kwargs)
    elif spec.mode == "gru":
        module = torch.nn.GRU(**kwargs)
    else:
        module = torch.nn.RNN(nonlinearity=spec.mode.removeprefix("rnn_"), **kwargs)
    if weights is not None:
        # a copy, of arrays in the one layout torch takes from NumPy (no negative strides, native byte order)
        module.load_state_dict({k: torch.tensor(standard_layout(v, spec.np_dtype)) for k, v in weights.items()})
    return module.eval().requires_grad_(False)


class TorchPrepared(Prepared):
    def __init__(self, spec, weights, device):
        import torch

        super().__init__(spec)
        self.torch = torch
        self.device = torch.device(device)
        self.module = torch_module(spec, weights).to(self.device)
        if self.device.type == "cuda":
            self.module.flatten_parameters()
            self.sync = torch.cuda.synchronize
        else:
            self.sync = None

    def to_device(self, x, h0=None, c0=None):
        def place(a):
            # a copy, outside the timing, of the one layout torch takes from NumPy (no negative strides, native bytes)
            return None if a is None else self.torch.tensor(standard_layout(a, self.spec.np_dtype), device=self.device)

        hx = place(h0)
        if self.spec.mode == "lstm" and hx is not None:
            hx = (hx, place(c0))
        args = (place(x), hx)
        if self.sync is not None:
            self.sync()
        return args

    def run(self, x, hx):
        with self.torch.inference_mode():
            result = self.module(x, hx)
        if self.sync is not None:
            self.sync()
        return result

    def to_host(self, result):
        output, state = result
        if self.spec.mode == "lstm":
            return output.cpu().numpy(), (state[0].cpu().numpy(), state[1].cpu().numpy())
        return output.cpu().numpy(), state.cpu().numpy()


class TorchBackend(Backend):
    def __init__(self, device: str):
        self.device = device
        self.name = f"torch_{device}"

    def unavailable_reason(self):
        try:
            import torch
        except ImportError as exc:
            return f"torch not importable: {exc}"
        if self.device == "cuda" and not torch.cuda.is_available():
            if torch.version.cuda is None:
                return f"CUDA not available: torch {torch.__version__} is a CPU-only build"
            return f"CUDA not available: no CUDA device visible to torch {torch.__version__}"
        return None

    def prepare(self, spec, weights):
        return TorchPrepared(spec, weights, self.device)
