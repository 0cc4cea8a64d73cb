"""The tutorial's character RNN, trained end to end on each backend: "recurrent" -> "neuralnet".

The task of the tutorial the suite grew from: the 8 letters of the two words
(sorted) one-hot encode "recurrent" as an input of (1, 9, 8); the model is
``nn.RNN(8, 8, batch_first=True)`` then ``nn.Linear(8, 8)``; the loss is the
softmax cross-entropy of the 9 steps' logits against the letters of
"neuralnet", averaged over the steps (``nn.CrossEntropyLoss``); Adam with
lr = 0.1 trains it for 101 epochs, and the loss and the predicted string
(argmax per step) are printed every 20 epochs.

Every backend starts from one initialization (:func:`initial_parameters`):
the RNN's weights from :func:`kernels.init_weights`, the linear layer's from
U(-1/sqrt(8), 1/sqrt(8)) as ``nn.Linear`` draws them.

* ``numpy``, ``numba`` (any backend with a ``forward_backward`` pass but
  torch's): the RNN through the backend's own ``forward`` and
  ``forward_backward``; the linear layer, the loss and Adam in NumPy with
  torch's formulas (:class:`Adam`).  The contract takes ``grad_output`` up
  front, so an epoch runs the forward pass twice: once for the loss and its
  gradient, once inside ``forward_backward``.
* ``torch_cpu``, ``torch_cuda``: ``nn.RNN``, ``nn.Linear``,
  ``nn.CrossEntropyLoss`` and ``optim.Adam`` themselves.

The seconds are wall-clock seconds per epoch in this one process (after one
untimed warm-up epoch's calls, every thread pool sized to ``threads``, 1 by
default as in the timing workers: a pool of two threads collapses when the
machine is busy), indicative only: the isolated timings of the pass are
``python -m bench run --passes forward_backward``.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from kernels import CellSpec, availability, backend_passes, get_backend, init_weights, parse_backend_name

from .environment import pin_threads
from .results.files import atomic_write_text

SOURCE, TARGET = "recurrent", "neuralnet"
VOCAB = "".join(sorted(set(SOURCE + TARGET)))  # 8 letters: acelnrtu
EPOCHS = 101
PRINT_EVERY = 20
LR = 0.1
COLUMNS = ["backend", "dtype", "epoch", "loss", "prediction", "seconds"]


def spec_of(dtype: str):
    """The tutorial's ``nn.RNN(8, 8, batch_first=True)`` as a :class:`kernels.CellSpec`."""
    return CellSpec("rnn_tanh", len(VOCAB), len(VOCAB), batch_first=True, dtype=dtype)


def one_hot(text: str, dtype: str) -> np.ndarray:
    """(1, len(text), 8): one row per letter, a one at the letter's place in :data:`VOCAB`."""
    x = np.zeros((1, len(text), len(VOCAB)), dtype)
    x[0, np.arange(len(text)), [VOCAB.index(c) for c in text]] = 1
    return x


def targets() -> np.ndarray:
    """The class index of every letter of :data:`TARGET`, (9,)."""
    return np.array([VOCAB.index(c) for c in TARGET])


def decode(logits: np.ndarray) -> str:
    """The predicted string: argmax over the vocabulary per step of (9, 8) logits."""
    return "".join(VOCAB[i] for i in np.argmax(logits, axis=-1))


def initial_parameters(dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``{name: array}``: the RNN's state_dict names (:func:`kernels.init_weights`) and
    ``linear.weight`` (8, 8), ``linear.bias`` (8,) from U(-1/sqrt(8), 1/sqrt(8)) (``nn.Linear``'s
    bound, 1/sqrt(in_features)), all in ``dtype``."""
    params = init_weights(spec_of(dtype), seed)
    rng = np.random.default_rng(seed + 100)
    k = 1 / np.sqrt(len(VOCAB))
    params["linear.weight"] = rng.uniform(-k, k, (len(VOCAB), len(VOCAB))).astype(dtype)
    params["linear.bias"] = rng.uniform(-k, k, len(VOCAB)).astype(dtype)
    return params


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of (N, C) ``logits`` against class indices ``labels`` (N,), and
    its gradient d(loss)/d(logits) = (softmax - one_hot) / N (``nn.CrossEntropyLoss``, mean)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_sum
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].mean()
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), grad / len(labels)


class Adam:
    """``torch.optim.Adam``'s update (no weight decay, no amsgrad), per parameter, in place:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    (torch/optim/adam.py, ``_single_tensor_adam``)."""

    def __init__(self, params: dict, lr: float = LR, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        correction1 = 1 - self.beta1 ** self.t
        correction2_sqrt = np.sqrt(1 - self.beta2 ** self.t)
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            m += (1 - self.beta1) * (g - m)  # torch's lerp: m + (1 - b1) (g - m)
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= (self.lr / correction1) * m / (np.sqrt(v) / correction2_sqrt + self.eps)


def train_own(name: str, dtype: str, epochs: int, threads: int = 1):
    """Train through backend ``name``'s ``forward``/``forward_backward`` with NumPy's linear layer,
    loss and :class:`Adam`; yields ``(epoch, loss, prediction, seconds)`` for every epoch."""
    backend, spec = get_backend(name), spec_of(dtype)
    params = initial_parameters(dtype)
    rnn_names = list(spec.weight_shapes())
    x, labels = one_hot(SOURCE, dtype), targets()
    optimizer = Adam(params)
    backend.forward_backward(spec, {k: params[k] for k in rnn_names}, x)  # warm-up: compilation, not timed
    pin_threads(threads)
    for epoch in range(epochs):
        start = time.perf_counter()
        weights = {k: params[k] for k in rnn_names}
        output, _ = backend.forward(spec, weights, x)
        w, b = params["linear.weight"], params["linear.bias"]
        logits = output[0] @ w.T + b
        loss, d_logits = cross_entropy(logits, labels)
        _, _, grads = backend.forward_backward(spec, weights, x, grad_output=(d_logits @ w)[None])
        grads["linear.weight"] = d_logits.T @ output[0]
        grads["linear.bias"] = d_logits.sum(axis=0)
        optimizer.step(params, grads)
        yield epoch, loss, decode(logits), time.perf_counter() - start


def train_torch(device: str, dtype: str, epochs: int, threads: int = 1):
    """Train ``nn.RNN`` + ``nn.Linear`` with ``nn.CrossEntropyLoss`` and ``optim.Adam`` on
    ``device``; yields ``(epoch, loss, prediction, seconds)`` for every epoch."""
    import torch

    from kernels.torch_backend import torch_module

    spec = spec_of(dtype)
    params = initial_parameters(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rnn = torch_module(spec, {k: params[k] for k in spec.weight_shapes()}).train().requires_grad_(True).to(device)
    linear = torch.nn.Linear(len(VOCAB), len(VOCAB), dtype=getattr(torch, dtype)).to(device)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(params["linear.weight"]))
        linear.bias.copy_(torch.from_numpy(params["linear.bias"]))
    optimizer = torch.optim.Adam([*rnn.parameters(), *linear.parameters()], lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(one_hot(SOURCE, dtype)).to(device)
    labels = torch.from_numpy(targets()).to(device)
    with torch.no_grad():  # warm-up of the same calls, not timed
        linear(rnn(x)[0])
    sync()
    pin_threads(threads)
    for epoch in range(epochs):
        start = time.perf_counter()
        optimizer.zero_grad()
        output, _ = rnn(x)
        logits = linear(output).view(-1, len(VOCAB))
        loss = criterion(logits, labels)
        loss.backward()
        optimizer.step()
        sync()
        seconds = time.perf_counter() - start
        yield epoch, float(loss.item()), decode(logits.detach().cpu().numpy()), seconds


def train(name: str, dtype: str, epochs: int = EPOCHS, threads: int = 1) -> list[dict]:
    """One backend's training run: a row per printed epoch (0, 20, ..., and the last), with the
    columns of :data:`COLUMNS`; ``seconds`` is the mean per epoch since the previous printed one,
    with every thread pool of this process sized to ``threads``.

    Raises:
        RuntimeError: the backend cannot run here, or has no ``forward_backward`` pass (why).
    """
    reason = availability(name)
    if reason is None and "forward_backward" not in backend_passes(get_backend(name)):
        reason = "it has no forward_backward pass"
    if reason is not None:
        raise RuntimeError(reason)
    parsed = parse_backend_name(name)
    steps = train_torch(parsed.base.removeprefix("torch_"), dtype, epochs, threads) \
        if parsed.base in ("torch_cpu", "torch_cuda") else train_own(name, dtype, epochs, threads)
    rows, since = [], []
    for epoch, loss, prediction, seconds in steps:
        since.append(seconds)
        if epoch % PRINT_EVERY == 0 or epoch == epochs - 1:
            rows.append({"backend": name, "dtype": dtype, "epoch": epoch, "loss": loss, "prediction": prediction,
                         "seconds": float(np.mean(since))})
            since = []
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as CSV with :data:`COLUMNS`, by atomic replace."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(path), buf.getvalue())
