"""The ONNX model of `charrnn export RUN -o model.onnx` (docs/onnx.md): charrnn's stack of cells
as ONNX's own RNN, LSTM and GRU operators, opset 17, one graph for stepping and for scoring.

    inputs   ids       int64    (T, N)     T characters of N streams, time-major
             h0        float32  (L, N, H)  the hidden state each layer starts from
             c0        float32  (L, N, H)  an LSTM's cell state (lstm only)
    outputs  logprobs  float32  (T, N, V)  log softmax of each step's logits: the
                                           log-probability of each next character
             hT        float32  (L, N, H)  the state after the last step (cT: the LSTM's cell
             cT        float32  (L, N, H)  state), to feed back as h0 (c0)

T and N are free. Sampling calls it with T = 1 and feeds hT (cT) back; scoring calls it once on
a whole text from a zero state. The graph (the equations of model.py and layers.py):

    x_0 = Gather(embed, ids)                                   (T, N, H)
    x_{l+1}, hT[l] (, cT[l]) = RNN|LSTM|GRU(x_l, W_l, R_l, B_l, h0[l] (, c0[l]))
    logprobs = LogSoftmax(x_L @ Why + by)

Each layer's weights, from charrnn's (used as x @ Wx, gate blocks along the last axis) to ONNX's
(used as X W^T: W (1, G, H), R (1, G, H), B (1, 2G) = [Wb, Rb]), with the gate blocks reordered:

    cell   charrnn's blocks   ONNX's blocks    W, R          Wb     Rb
    rnn    (h)                (h)              Wx^T, Wh^T    b      0
    lstm   i f g o            i o f c (c = g)  the same      b      0
    gru    r z n              z r h (h = n)    the same      b      0, 0, bhn

charrnn's GRU applies r after the recurrent matmul, n = tanh(x Wx_n + b_n + r * (h Wh_n + bhn))
(PyTorch's form): that is ONNX's GRU with linear_before_reset = 1, Rb_n = bhn and Rb_r = Rb_z =
0. The LSTM has no peepholes, input_forget 0; every activation is ONNX's default (sigmoid, tanh).

The model's metadata (metadata_props) carries what a program needs to read and write text:
vocab (a JSON string of the characters in id order), cell, num_layers, hidden_size, and
charrnn_version. onnx is an optional extra (`pip install charrnn[onnx]`), imported in
build_onnx only.
"""

import json

import numpy as np

from . import __version__
from .errors import ExportError

OPSET = 17                 # ONNX 1.12; onnxruntime runs it from 1.13 on
IR_VERSION = 8             # the IR of opset 17 (onnx's default IR would be newer than older
                           # runtimes read)
MAX_BYTES = 2**31 - 2**24  # protobuf caps a message at 2 GB; leave room for the graph itself

OPERATORS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# charrnn's gate blocks in ONNX's order: ONNX block k is charrnn block ONNX_ORDER[cell][k]
ONNX_ORDER = {
    "rnn": [0],            # h
    "lstm": [0, 3, 1, 2],  # charrnn i f g o -> ONNX i o f c
    "gru": [1, 0, 2],      # charrnn r z n -> ONNX z r h
}
NAMES = {"h": "hidden state", "c": "cell state"}
MISSING = "exporting to ONNX needs the onnx package: pip install charrnn[onnx]"


def build_onnx(ckpt):
    """The serialized ONNX model of ckpt (its weights as they are: exports.rounded first), as
    bytes. ExportError when the onnx package is missing or the weights pass 2 GB."""
    try:
        import onnx
    except ImportError:
        raise ExportError(MISSING) from None
    size = sum(np.asarray(p).size * 4 for p in ckpt.params.values())
    if size > MAX_BYTES:
        raise ExportError(f"the model's weights take {size / 2**20:,.1f} MB as float32, more "
                          "than the 2 GB one ONNX file can hold")
    model = onnx.helper.make_model(
        _graph(onnx, ckpt), producer_name="charrnn", producer_version=__version__,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        doc_string="charrnn's character-level model: ids (T, N) and the state in, the "
                   "log-probability of each next character (T, N, V) and the state out")
    model.ir_version = IR_VERSION
    cfg = ckpt.model_cfg
    onnx.helper.set_model_props(model, {
        "vocab": json.dumps(ckpt.vocab.chars),        # ASCII: non-ASCII characters escaped
        "cell": cfg.model, "num_layers": str(cfg.num_layers), "hidden_size": str(cfg.hidden_size),
        "charrnn_version": __version__})
    return model.SerializeToString()


def onnx_weights(params, cell, layer):
    """Layer `layer`'s weights as ONNX's operator takes them: W (1, G, H), R (1, G, H) and
    B (1, 2G), float32, gate blocks in ONNX's order (ONNX_ORDER)."""
    Wx, Wh, b = params["Wx"][layer], params["Wh"][layer], params["b"][layer]   # (H, G), (G,)
    H = Wh.shape[0]
    order = ONNX_ORDER[cell]

    def blocks(m):
        """(..., G) with its H-wide gate blocks in ONNX's order."""
        return np.concatenate([m[..., k * H:(k + 1) * H] for k in order], axis=-1)

    Rb = np.zeros_like(b)
    if cell == "gru":
        # r * (h Wh_n + bhn): bhn is the recurrent bias of the n block (linear_before_reset = 1)
        Rb[2 * H:] = params["bhn"][layer]
    W, R = blocks(Wx).T, blocks(Wh).T                    # X W^T: (G, H)
    B = np.concatenate([blocks(b), blocks(Rb)])          # (2G,) = [Wb, Rb]
    return [np.ascontiguousarray(a[None], dtype=np.float32) for a in (W, R, B)]


def _graph(onnx, ckpt):
    """The GraphProto: embedding, L recurrent layers, log-softmax (see the module docstring)."""
    helper, P = onnx.helper, onnx.TensorProto
    cell, params = ckpt.model_cfg.model, ckpt.params
    L, H, _ = params["Wx"].shape
    V = params["embed"].shape[0]
    states = ["h", "c"] if cell == "lstm" else ["h"]
    inits = {name: np.asarray(params[name], np.float32) for name in ("embed", "Why", "by")}
    inits.update(state_split=np.ones(L, np.int64), axis_1=np.array([1], np.int64))
    # split each initial state into L layers (1, N, H)
    nodes = [helper.make_node("Gather", ["embed", "ids"], ["x0"], name="embed", axis=0)]
    nodes += [helper.make_node("Split", [f"{s}0", "state_split"],
                               [f"layer{l}/{s}0" for l in range(L)], name=f"split_{s}0", axis=0)
              for s in states]
    x = "x0"
    for l in range(L):
        inits.update(zip([f"layer{l}/{w}" for w in "WRB"], onnx_weights(params, cell, l)))
        nodes += _layer(helper, cell, l, H, x)
        x = f"layer{l}/out"
    nodes += [helper.make_node("Concat", [f"layer{l}/{s}T" for l in range(L)], [f"{s}T"],
                               name=f"concat_{s}T", axis=0) for s in states]
    # logits_t = h^{L-1}_t @ Why + by;  logprobs_t = log softmax(logits_t)
    nodes += [helper.make_node("MatMul", [x, "Why"], ["logits_noby"], name="output"),
              helper.make_node("Add", ["logits_noby", "by"], ["logits"], name="output_bias"),
              helper.make_node("LogSoftmax", ["logits"], ["logprobs"], name="logprobs", axis=-1)]
    state_shape = [L, "N", H]
    inputs = [helper.make_tensor_value_info("ids", P.INT64, ["T", "N"],
                                            "character ids: T steps of N streams")]
    inputs += [helper.make_tensor_value_info(f"{s}0", P.FLOAT, state_shape,
                                             f"each layer's initial {NAMES[s]}") for s in states]
    outputs = [helper.make_tensor_value_info("logprobs", P.FLOAT, ["T", "N", V],
                                             "log-probability of each next character")]
    outputs += [helper.make_tensor_value_info(f"{s}T", P.FLOAT, state_shape,
                                              f"each layer's {NAMES[s]} after the last step")
                for s in states]
    tensors = [onnx.numpy_helper.from_array(a, name) for name, a in inits.items()]
    return helper.make_graph(nodes, f"charrnn_{cell}", inputs, outputs, tensors)


def _layer(helper, cell, l, H, x):
    """The nodes of layer l on input x (T, N, H): the recurrent operator, whose Y (T, 1, N, H)
    is squeezed to layer{l}/out (T, N, H); its final state is layer{l}/hT (and cT), (1, N, H)."""
    p = f"layer{l}/"
    ins = [x, p + "W", p + "R", p + "B", "", p + "h0"]     # "": no sequence_lens, all T steps
    outs = [p + "Y", p + "hT"]
    if cell == "lstm":
        ins.append(p + "c0")
        outs.append(p + "cT")
    extra = {"linear_before_reset": 1} if cell == "gru" else {}
    return [helper.make_node(OPERATORS[cell], ins, outs, name=p + OPERATORS[cell],
                             hidden_size=H, **extra),
            helper.make_node("Squeeze", [p + "Y", "axis_1"], [p + "out"], name=p + "squeeze")]
