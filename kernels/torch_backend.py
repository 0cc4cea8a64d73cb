"""``torch_cpu`` and ``torch_cuda``: ``torch.nn.RNN``/``LSTM``/``GRU`` themselves.

One class serves both devices.  Weights are loaded through ``load_state_dict``
once at prepare time; ``run`` calls the module under ``torch.inference_mode``
and, on CUDA, synchronizes before returning so a timing covers the kernels.

The ``forward_backward`` pass is autograd on the same module: ``run_backward``
runs it with gradients on and asks ``torch.autograd.grad`` for the gradients
of every parameter, the input and the initial state, with the seeds as
``grad_outputs`` (nothing accumulates in ``.grad`` between calls).  It uses
a copy of the module in training mode, which cuDNN's backward requires (no
dropout, so the same function), leaving the forward pass's module as it was.
"""

from __future__ import annotations

import copy

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

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None):
        torch, spec = self.torch, self.spec
        if getattr(self, "train_module", None) is None:
            self.train_module = copy.deepcopy(self.module).train().requires_grad_(True)
            if self.device.type == "cuda":
                self.train_module.flatten_parameters()
            self.names, self.parameters = zip(*self.train_module.named_parameters())
        timesteps, batch = spec.timesteps_batch(x)
        state = spec.state_shape(batch)

        def place(a, shape, requires_grad):
            t = (torch.zeros(shape, dtype=getattr(torch, spec.dtype)) if a is None else torch.tensor(a)).to(self.device)
            return t.requires_grad_(requires_grad)

        inputs = [place(x, None, True), place(h0, state, True)]
        seeds = [place(grad_output, spec.output_shape(timesteps, batch), False), place(grad_h_n, state, False)]
        if spec.mode == "lstm":
            inputs.append(place(c0, state, True))
            seeds.append(place(grad_c_n, state, False))
        if self.sync is not None:
            self.sync()
        return tuple(inputs), tuple(seeds)

    def run_backward(self, inputs, seeds):
        with self.torch.enable_grad():
            x, *hx = inputs
            output, state = self.train_module(x, tuple(hx) if self.spec.mode == "lstm" else hx[0])
            outputs = (output, *state) if self.spec.mode == "lstm" else (output, state)
            grads = self.torch.autograd.grad(outputs, (*self.parameters, *inputs), grad_outputs=seeds)
        if self.sync is not None:
            self.sync()
        return [o.detach() for o in outputs], grads

    def backward_to_host(self, result):
        outputs, grads = result
        outputs = [o.cpu().numpy() for o in outputs]
        names = [*self.names, "input", "h0", "c0"]
        grads = {name: g.cpu().numpy() for name, g in zip(names, grads)}
        state = tuple(outputs[1:]) if self.spec.mode == "lstm" else outputs[1]
        return outputs[0], state, grads


class TorchBackend(Backend):
    def __init__(self, device: str):
        self.device = device
        self.name = f"torch_{device}"

    def passes(self):
        return ("forward", "forward_backward")

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
