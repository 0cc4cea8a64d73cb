"""``onnxruntime``: the network as ONNX's own ``RNN``/``LSTM``/``GRU`` operators, run by ONNX Runtime.

The graph (:func:`onnx_model`, built with the ``onnx`` package's helpers) has one recurrent node
per layer, both directions of a bidirectional layer in that node (``direction="bidirectional"``),
the weights as initializers, and the layouts of the contract at its edges: ``x`` in the spec's
layout, ``h0`` (and ``c0``) (D*L, B, H); T and B are symbolic, so one session serves every shape.
Between layers the node's ``Y`` (T, D, B, H) becomes the next layer's (T, B, D*H).

Weights (operator definitions: https://onnx.ai/onnx/operators/onnx__LSTM.html, ``__GRU``, ``__RNN``):
ONNX's ``W`` is (D, G*H, I_l) and ``R`` (D, G*H, H), the directions stacked in PyTorch's order
(forward, reverse); ``B`` is (D, 2*G*H), ``[b_ih | b_hh]``.  The gate blocks are reordered from
PyTorch's to ONNX's: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h.  The GRU node has
``linear_before_reset=1``, which is PyTorch's GRU (``b_hn`` inside the reset product); the Elman
cells are ``RNN`` with ``activations`` Tanh or Relu.

The session (CPU execution provider) is made in ``prepare``; ``to_device`` binds the inputs
(``IOBinding``), so the timed ``run`` is ``run_with_iobinding`` alone.  Its intra-op pool has
:meth:`OnnxRuntimeBackend.use_threads` threads (``--threads``; by default the CPUs this process
may run on), its inter-op pool one (sequential execution), recorded as ``onnxruntime_threads``.

Not every operator has every dtype in ONNX Runtime's CPU provider (float64: ``RNN`` has no kernel,
``LSTM``/``GRU`` fail at run time, in 1.32).  What the runtime supports is asked of it, by running
a one-step model of the operator once per process (:func:`operator_problem`), so such a spec is
``unavailable`` with the runtime's own message, and becomes available with a runtime that has it.
Nor do its kernels carry NaN and inf as torch does, so weights and inputs holding them are refused
(``ValueError``, :data:`NON_FINITE`) rather than answered otherwise.

Variable-length batches are the operators' own ``sequence_lens`` input (int32 (B,)): their
semantics are ``pack_padded_sequence``'s (zero output past each sequence's end, the last valid
state in ``Y_h``/``Y_c``, the reverse direction starting at the last valid step; measured against
torch with onnxruntime 1.32).  A second session, of a graph with that input, is made on the first
call with lengths, in ``to_device``; ``x``'s padding is zeroed there (a copy), so that NaN in it
changes nothing and is not refused.  LSTM with projections (``proj_size``) is unavailable: ONNX's
``LSTM`` operator has no projection (:data:`NO_PROJECTION`).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from .base import Backend, Prepared
from .checks import standard_layout
from .spec import CellSpec

#: The opset the graph is written in (RNN/LSTM/GRU are version 14 there), and the IR version of
#: that opset, so that older runtimes load it too.
OPSET, IR_VERSION = 17, 8

OPERATORS = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}

#: PyTorch's gate blocks in ONNX's order: ONNX gate k is PyTorch's block GATE_ORDER[mode][k].
GATE_ORDER = {"rnn_tanh": [0], "rnn_relu": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def onnx_gates(spec: CellSpec, a: np.ndarray) -> np.ndarray:
    """``a`` (G*H, ...) with its gate blocks (H rows each) in ONNX's order (:data:`GATE_ORDER`)."""
    blocks = np.split(a, spec.gates, axis=0)
    return np.concatenate([blocks[k] for k in GATE_ORDER[spec.mode]], axis=0)


def onnx_model(spec: CellSpec, weights: dict[str, np.ndarray], lengths: bool = False):
    """The network of ``spec`` as an ``onnx.ModelProto`` with ``weights`` as initializers.

    Inputs ``x`` (spec layout, T and B symbolic), ``h0`` (D*L, B, H) and for LSTM ``c0``, and with
    ``lengths`` the input ``lengths`` (B,) int32, every node's ``sequence_lens``; outputs
    ``output``, ``h_n`` and for LSTM ``c_n``, in the contract's layouts and ``spec.dtype``.
    ``spec.proj_size`` must be 0: the LSTM operator has no projection.
    """
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[spec.dtype]
    lstm = spec.mode == "lstm"
    d, h, layers = spec.num_directions, spec.hidden_size, spec.num_layers
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0]

    def per_layer(state):  # (D*L, B, H) -> L pieces of (D, B, H)
        if layers == 1:
            return [state]
        pieces = [f"{state}_l{k}" for k in range(layers)]
        node("Split", [state, const(f"{state}_split", np.full(layers, d, np.int64))], pieces, axis=0)
        return pieces

    x = node("Transpose", ["x"], ["x_time_major"], perm=[1, 0, 2]) if spec.batch_first else "x"
    h0s, c0s = per_layer("h0"), (per_layer("c0") if lstm else None)
    attrs = {"hidden_size": h, "direction": "bidirectional" if spec.bidirectional else "forward"}
    if spec.mode == "gru":
        attrs["linear_before_reset"] = 1
    if spec.mode.startswith("rnn_"):
        attrs["activations"] = [{"rnn_tanh": "Tanh", "rnn_relu": "Relu"}[spec.mode]] * d
    h_n, c_n = [], []
    for layer in range(layers):
        sfxs = [sfx for k, _, sfx in spec.suffixes() if k == layer]
        w = const(f"W_l{layer}", np.stack([onnx_gates(spec, weights["weight_ih" + s]) for s in sfxs]))
        r = const(f"R_l{layer}", np.stack([onnx_gates(spec, weights["weight_hh" + s]) for s in sfxs]))
        b = const(f"B_l{layer}", np.stack([np.concatenate([onnx_gates(spec, weights["bias_ih" + s]),
                                                            onnx_gates(spec, weights["bias_hh" + s])])
                                            for s in sfxs])) if spec.bias else ""
        ins = [x, w, r, b, "lengths" if lengths else "", h0s[layer]] + ([c0s[layer]] if lstm else [])
        outs = [f"Y_l{layer}", f"h_n_l{layer}"] + ([f"c_n_l{layer}"] if lstm else [])
        y = node(OPERATORS[spec.mode], ins, outs, **attrs)
        h_n.append(outs[1])
        c_n.extend(outs[2:])
        # Y (T, D, B, H) -> (T, B, D*H): forward then backward features of each step
        y = node("Transpose", [y], [f"Y_tbdh_l{layer}"], perm=[0, 2, 1, 3])
        x = node("Reshape", [y, const(f"to_tbf_l{layer}", np.array([0, 0, -1], np.int64))], [f"out_l{layer}"])
    if spec.batch_first:
        node("Transpose", [x], ["output"], perm=[1, 0, 2])
    else:
        node("Identity", [x], ["output"])
    node("Concat", h_n, ["h_n"], axis=0)
    if lstm:
        node("Concat", c_n, ["c_n"], axis=0)

    def value(name, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    seq = ["B", "T"] if spec.batch_first else ["T", "B"]
    states = ["h0", "c0"] if lstm else ["h0"]
    varlen = [helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"])] if lengths else []
    graph = helper.make_graph(
        nodes, f"{spec.mode}_stack",
        [value("x", [*seq, spec.input_size])] + [value(s, [d * layers, "B", h]) for s in states] + varlen,
        [value("output", [*seq, d * h])] + [value(s, [d * layers, "B", h]) for s in ("h_n", "c_n")[:len(states)]],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="rnn-cell-bench")


def session(model, threads: int, log_severity: int = 3):
    """An ``onnxruntime.InferenceSession`` of ``model`` on the CPU execution provider, with an
    intra-op pool of ``threads`` threads and sequential execution (an inter-op pool of one);
    the runtime logs messages of ``log_severity`` and above (3: errors, 4: fatal only)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = log_severity
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@functools.cache
def operator_problem(mode: str, dtype: str) -> str | None:
    """``None`` when ONNX Runtime's CPU provider computes ``mode``'s operator in ``dtype``, else its
    message (first line): a one-layer, one-step model of it is run once per process."""
    import onnxruntime as ort

    from .weights import init_weights

    spec = CellSpec(mode, input_size=1, hidden_size=1, dtype=dtype)
    try:
        sess = session(onnx_model(spec, init_weights(spec)), threads=1, log_severity=4)  # the reason says it
        one = np.ones((1, 1, 1), dtype)
        sess.run(None, {name: one for name in ("x", "h0", "c0")[:2 + (mode == "lstm")]})
    except Exception as exc:  # noqa: BLE001  (the runtime's refusal is the answer)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"onnxruntime {ort.__version__} CPU: {OPERATORS[mode]} in {dtype}: {message}"
    return None


#: Measured with onnxruntime 1.32: a NaN in x gave finite LSTM and GRU outputs, 0 for rnn_relu, and
#: an inf in h0 finite or infinite values where torch has NaN.
NON_FINITE = ("onnxruntime's CPU recurrent kernels do not carry NaN and inf as torch does (their "
              "activations clamp them)")


#: Why ``proj_size`` is unavailable here.
NO_PROJECTION = ("ONNX's LSTM operator has no projection (proj_size); it would be a Scan or Loop of "
                 "primitive operators, not the runtime's recurrent kernel this backend measures")


def check_finite(name: str, array) -> None:
    """Raises ValueError naming ``name`` when ``array`` holds NaN or inf (:data:`NON_FINITE`)."""
    if array is not None and not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values; {NON_FINITE}")


class OnnxRuntimePrepared(Prepared):
    def __init__(self, spec, weights, threads: int):
        super().__init__(spec)
        for name, array in weights.items():
            check_finite(f"weights[{name!r}]", array)
        self.weights = {k: standard_layout(w, spec.dtype) for k, w in weights.items()}
        self.threads = threads
        self.session = session(onnx_model(spec, self.weights), threads)
        self.varlen_session = None  # the graph with sequence_lens: made on the first call with lengths
        self.outputs = ["output", "h_n", "c_n"] if spec.mode == "lstm" else ["output", "h_n"]

    def to_device(self, x, h0=None, c0=None, lengths=None):
        spec = self.spec
        x = standard_layout(x, spec.dtype)
        timesteps, batch = spec.timesteps_batch(x)
        if lengths is not None:  # padding zeroed, so that NaN there changes nothing (a copy)
            x = x.copy()
            spec.time_major(x)[np.arange(timesteps)[:, None] >= np.asarray(lengths)[None, :]] = 0
        for name, array in (("x", x), ("h0", h0), ("c0", c0)):
            check_finite(name, array)
        feeds = {"x": x, "h0": np.zeros(spec.state_shape(batch), spec.dtype) if h0 is None else h0}
        if spec.mode == "lstm":
            feeds["c0"] = np.zeros(spec.state_shape(batch, cell=True), spec.dtype) if c0 is None else c0
        feeds = {name: standard_layout(array, spec.dtype) for name, array in feeds.items()}
        sess = self.session
        if lengths is not None:
            if self.varlen_session is None:
                self.varlen_session = session(onnx_model(spec, self.weights, lengths=True), self.threads)
            sess = self.varlen_session
            feeds["lengths"] = np.asarray(lengths, np.int32)
        binding = sess.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        return sess, binding, feeds  # the feeds stay referenced while the binding points at them

    def run(self, sess, binding, feeds):
        sess.run_with_iobinding(binding)
        return binding

    def to_host(self, binding):
        got = binding.copy_outputs_to_cpu()
        return (got[0], (got[1], got[2])) if self.spec.mode == "lstm" else (got[0], got[1])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    refuses_non_finite = NON_FINITE

    def __init__(self):
        self.threads = None

    def unavailable_reason(self):
        missing = [lib for lib in ("onnx", "onnxruntime") if importlib.util.find_spec(lib) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'rnn-cell-bench[onnx]')"
        return None

    def unavailable_for(self, spec):
        if spec.proj_size:
            return NO_PROJECTION
        return operator_problem(spec.mode, spec.dtype)

    def unavailable_for_lengths(self, spec):
        return None

    def use_threads(self, threads):
        self.threads = int(threads)

    def intra_op_threads(self) -> int:
        """The intra-op pool's size: :meth:`use_threads`'s, else the CPUs this process may use."""
        if self.threads is not None:
            return self.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def describe(self):
        """``onnxruntime_threads``: the intra-op pool of every session this backend makes."""
        return {"onnxruntime_threads": self.intra_op_threads()}

    def prepare(self, spec, weights):
        return OnnxRuntimePrepared(spec, weights, self.intra_op_threads())
