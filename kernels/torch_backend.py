"""``torch_cpu`` and ``torch_cuda``: ``torch.nn.RNN``/``LSTM``/``GRU`` themselves.

One class serves both devices.  Weights are loaded through ``load_state_dict``
once at prepare time; ``run`` calls the module under ``torch.inference_mode``
and, on CUDA, synchronizes before returning so a timing covers the kernels.

Variable-length batches run as torch's users run them: the timed ``run`` is
``pack_padded_sequence(x, lengths, enforce_sorted=False)``, the module on the
packed sequence, then ``pad_packed_sequence(total_length=T)``, so the packing
and unpacking (sorting, gathering, scattering) are part of the time, as they are
part of what a user's model spends (pytorch#149194 reports the packed path 5-114x
slower than the padded one); ``to_device`` only places ``lengths`` on the CPU,
where ``pack_padded_sequence`` wants them, as int64.

The ``forward_backward`` pass is autograd on the same module: ``run_backward``
runs it with gradients on and asks ``torch.autograd.grad`` for the gradients
of every parameter, the input and the initial state, with the seeds as
``grad_outputs`` (nothing accumulates in ``.grad`` between calls).  It uses
a copy of the module in training mode, which cuDNN's backward requires, with
its ``dropout`` set to 0: evaluation semantics on every pass, so the same
function as the forward's module, which is left as it was.
"""

from __future__ import annotations

import copy
import warnings

from .base import Backend, Prepared
from .checks import standard_layout


def torch_module(spec, weights=None):
    """A ``torch.nn`` module for ``spec`` (float64 or float32, CPU; ``proj_size`` and ``dropout``
    as the spec's), in evaluation mode, loaded with ``weights`` when given; its ``state_dict``
    names and shapes are the spec's."""
    import torch

    kwargs = dict(
        input_size=spec.input_size,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        bias=spec.bias,
        batch_first=spec.batch_first,
        bidirectional=spec.bidirectional,
        dropout=spec.dropout,
        dtype=getattr(torch, spec.dtype),
    )
    with warnings.catch_warnings():  # dropout with one layer: torch warns that it has nothing to drop
        warnings.filterwarnings("ignore", "dropout option adds dropout after all but last recurrent layer")
        if spec.mode == "lstm":
            module = torch.nn.LSTM(proj_size=spec.proj_size, **kwargs)
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
        from torch.nn.utils import rnn

        super().__init__(spec)
        self.torch, self.rnn = torch, rnn
        self.device = torch.device(device)
        self.module = torch_module(spec, weights).to(self.device)
        if self.device.type == "cuda":
            self.module.flatten_parameters()
            self.sync = torch.cuda.synchronize
        else:
            self.sync = None

    def _lengths(self, lengths):
        """``lengths`` as ``pack_padded_sequence`` wants them: an int64 tensor on the CPU."""
        return None if lengths is None else self.torch.as_tensor(lengths, dtype=self.torch.int64)

    def to_device(self, x, h0=None, c0=None, lengths=None):
        def place(a):
            # a copy, outside the timing, of the one layout torch takes from NumPy (no negative strides, native bytes)
            return None if a is None else self.torch.tensor(standard_layout(a, self.spec.np_dtype), device=self.device)

        hx = place(h0)
        if self.spec.mode == "lstm" and hx is not None:
            hx = (hx, place(c0))
        args = (place(x), hx, self._lengths(lengths))
        if self.sync is not None:
            self.sync()
        return args

    def _call(self, module, x, hx, lengths):
        """``module`` on ``x``, through ``pack_padded_sequence``/``pad_packed_sequence`` with ``lengths``."""
        if lengths is None:
            return module(x, hx)
        batch_first = self.spec.batch_first
        packed = self.rnn.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        output, state = module(packed, hx)
        output, _ = self.rnn.pad_packed_sequence(output, batch_first=batch_first, total_length=x.shape[int(batch_first)])
        return output, state

    def run(self, x, hx, lengths=None):
        """The module on ``x``; with ``lengths``, packing and unpacking included (module docstring)."""
        with self.torch.inference_mode():
            result = self._call(self.module, x, hx, lengths)
        if self.sync is not None:
            self.sync()
        return result

    def to_host(self, result):
        output, state = result
        if self.spec.mode == "lstm":
            return output.cpu().numpy(), (state[0].cpu().numpy(), state[1].cpu().numpy())
        return output.cpu().numpy(), state.cpu().numpy()

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        torch, spec = self.torch, self.spec
        if getattr(self, "train_module", None) is None:
            self.train_module = copy.deepcopy(self.module).train().requires_grad_(True)
            self.train_module.dropout = 0.0  # evaluation semantics in training mode: never drop
            if self.device.type == "cuda":
                self.train_module.flatten_parameters()
            self.names, self.parameters = zip(*self.train_module.named_parameters())
        timesteps, batch = spec.timesteps_batch(x)
        state, cell = spec.state_shape(batch), spec.state_shape(batch, cell=True)

        def place(a, shape, requires_grad):
            t = (torch.zeros(shape, dtype=getattr(torch, spec.dtype)) if a is None else torch.tensor(a)).to(self.device)
            return t.requires_grad_(requires_grad)

        inputs = [place(x, None, True), place(h0, state, True)]
        seeds = [place(grad_output, spec.output_shape(timesteps, batch), False), place(grad_h_n, state, False)]
        if spec.mode == "lstm":
            inputs.append(place(c0, cell, True))
            seeds.append(place(grad_c_n, cell, False))
        if self.sync is not None:
            self.sync()
        return tuple(inputs), tuple(seeds), self._lengths(lengths)

    def run_backward(self, inputs, seeds, lengths=None):
        with self.torch.enable_grad():
            x, *hx = inputs
            output, state = self._call(self.train_module, x, tuple(hx) if self.spec.mode == "lstm" else hx[0], lengths)
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

    def unavailable_for_lengths(self, spec):
        return None

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
