"""The char-level model: parameters, loss and gradients over one truncated-BPTT chunk, clipping.

    x_t = embed[id_t]                              (embedding, V x H)
    h^l_t = cell(x^l_t, h^l_{t-1})                 for layers l = 0 .. L-1 (layers.py)
    x^{l+1}_t = dropout(h^l_t)                     between layers, while training
    logits_t = h^{L-1}_t @ Why + by;  loss_t = -log softmax(logits_t)[target_t]

Parameters are a flat dict of float32 arrays with fixed keys; the layers' weights are stacked on
a leading axis of length L (every layer's input is H wide, the embedding included):

    embed (V, H)   Wx (L, H, G)   Wh (L, H, G)   b (L, G)   [gru: bhn (L, H)]   Why (H, V)   by (V,)

The training objective is the loss summed over the T steps of a chunk and averaged over the N
streams, as in min-char-rnn and char-rnn; reported losses are per character (that sum / T).

Layer 0's input projection embed[id] @ Wx[0] + b[0] depends on the id only, so when V <= H it is
computed as a (V, G) table and looked up, and its gradient is summed per character (a one-hot
matmul) before touching Wx[0] and embed: the same gradients, with V instead of N*T rows of work.
"""

import numpy as np

from .layers import (
    GATES,
    dropout_backward,
    dropout_forward,
    gru_seq_backward,
    gru_seq_forward,
    lstm_seq_backward,
    lstm_seq_forward,
    rnn_seq_backward,
    rnn_seq_forward,
    softmax_cross_entropy,
)

_SEQ = {
    "rnn": (rnn_seq_forward, rnn_seq_backward),
    "lstm": (lstm_seq_forward, lstm_seq_backward),
    "gru": (gru_seq_forward, gru_seq_backward),
}


def param_shapes(cell, vocab_size, hidden_size, num_layers):
    """Name -> shape of every parameter, in the order checkpoints and the README list them."""
    V, H, L, G = vocab_size, hidden_size, num_layers, GATES[cell] * hidden_size
    shapes = {"embed": (V, H), "Wx": (L, H, G), "Wh": (L, H, G), "b": (L, G)}
    if cell == "gru":
        shapes["bhn"] = (L, H)
    shapes.update({"Why": (H, V), "by": (V,)})
    return shapes


def init_params(cell, vocab_size, hidden_size, num_layers, rng, dtype=np.float32):
    """PyTorch's initialisation: embed ~ N(0, 1); Wx, Wh ~ U(-1/sqrt(H), 1/sqrt(H)); biases 0,
    except an LSTM's forget gate bias, 1, so that early on the cell remembers (Gers et al. 2000).
    Why is 10x smaller than PyTorch's, so that an untrained model predicts nearly uniformly and its
    loss starts at about ln V, as min-char-rnn's does."""
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    params = {}
    for name, shape in param_shapes(cell, vocab_size, hidden_size, num_layers).items():
        if name == "embed":
            value = rng.standard_normal(shape)
        elif name in ("Wx", "Wh"):
            value = rng.uniform(-bound, bound, shape)
        elif name == "Why":
            value = rng.uniform(-0.1 * bound, 0.1 * bound, shape)
        else:
            value = np.zeros(shape)
        params[name] = value.astype(dtype)
    if cell == "lstm":
        params["b"][:, H:2 * H] = 1.0
    return params


def num_params(params):
    return int(sum(p.size for p in params.values()))


def zero_state(cell, num_layers, batch_size, hidden_size, dtype=np.float32):
    """The initial recurrent state: per layer, (h,) or (h, c) for an LSTM, each (N, H) zeros."""
    parts = 2 if cell == "lstm" else 1
    return [tuple(np.zeros((batch_size, hidden_size), dtype) for _ in range(parts))
            for _ in range(num_layers)]


def _use_table(params):
    V, H = params["embed"].shape
    return V <= H


def _layer0_projection(params, ids):
    """x @ Wx[0] + b[0] for x = embed[ids]; ids: (T, N) -> (T, N, G)."""
    if _use_table(params):
        table = params["embed"] @ params["Wx"][0] + params["b"][0]  # (V, G)
        return table[ids]
    return params["embed"][ids] @ params["Wx"][0] + params["b"][0]


def forward(params, cell, ids, state, dropout=0.0, rng=None):
    """Run the stack over one chunk. ids: (N, T) input ids; state: from zero_state or a previous
    call. Dropout applies when rng is given and dropout > 0.

    Returns logits (T*N, V), time-major, the final state, and the cache for backward.
    """
    L = params["Wx"].shape[0]
    seq_forward = _SEQ[cell][0]
    ids_tm = np.ascontiguousarray(ids.T)         # (T, N)
    T, N = ids_tm.shape
    xp = _layer0_projection(params, ids_tm)      # (T, N, G)
    layers, new_state = [], []
    x = None
    for l in range(L):
        extra = (params["bhn"][l],) if cell == "gru" else ()
        hs, last, cache = seq_forward(xp, *state[l], params["Wh"][l], *extra)
        new_state.append(last)
        mask = None
        if l + 1 < L:
            if rng is not None and dropout > 0.0:
                hs, mask = dropout_forward(hs, dropout, rng)
            x_next = hs.reshape(T * N, -1)
            xp = (x_next @ params["Wx"][l + 1] + params["b"][l + 1]).reshape(T, N, -1)
        layers.append((x, cache, mask))
        x = hs
    top = x.reshape(T * N, -1)
    logits = top @ params["Why"] + params["by"]
    return logits, new_state, (ids_tm, layers, top)


def backward(params, cell, dlogits, cache):
    """Gradients of every parameter, and of the initial state, given dlogits (T*N, V)."""
    seq_backward = _SEQ[cell][1]
    ids_tm, layers, top = cache
    T, N = ids_tm.shape
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    grads["Why"] = top.T @ dlogits
    grads["by"] = dlogits.sum(axis=0)
    dhs = (dlogits @ params["Why"].T).reshape(T, N, -1)
    dstate = [None] * len(layers)
    for l in reversed(range(len(layers))):
        x, seq_cache, _ = layers[l]
        if cell == "gru":
            dxp, dstate[l], grads["Wh"][l], grads["bhn"][l] = seq_backward(dhs, seq_cache)
        else:
            dxp, dstate[l], grads["Wh"][l] = seq_backward(dhs, seq_cache)
        dxp2 = dxp.reshape(T * N, -1)
        grads["b"][l] = dxp2.sum(axis=0)
        if l > 0:
            grads["Wx"][l] = x.reshape(T * N, -1).T @ dxp2
            dhs = (dxp2 @ params["Wx"][l].T).reshape(T, N, -1)
            mask = layers[l - 1][2]
            if mask is not None:
                dhs = dropout_backward(dhs, mask)
        else:
            _layer0_backward(params, ids_tm.reshape(-1), dxp2, grads)
    return grads, dstate


def _layer0_backward(params, ids, dxp, grads):
    """Grads of embed and Wx[0] from dxp (T*N, G), the grad of embed[ids] @ Wx[0] + b[0]."""
    embed, Wx0 = params["embed"], params["Wx"][0]
    V = embed.shape[0]
    if _use_table(params):
        # S[v] = sum of dxp rows whose id is v, as a one-hot matmul (np.add.at is slow)
        onehot = (np.arange(V, dtype=ids.dtype)[:, None] == ids[None, :]).astype(dxp.dtype)
        S = onehot @ dxp                              # (V, G)
        grads["Wx"][0] = embed.T @ S
        grads["embed"] = S @ Wx0.T
    else:
        grads["Wx"][0] = embed[ids].T @ dxp
        dx = dxp @ Wx0.T                              # (T*N, H)
        dembed = np.zeros_like(embed)
        np.add.at(dembed, ids, dx)
        grads["embed"] = dembed


def loss_and_grads(params, cell, inputs, targets, state, dropout=0.0, rng=None):
    """One truncated-BPTT chunk. inputs, targets: (N, T) ids; state: the carried state.

    Returns (mean loss per character, grads, new state). The gradients are those of the loss
    summed over T and averaged over N; the new state is detached (plain arrays).
    """
    N, T = inputs.shape
    logits, new_state, cache = forward(params, cell, inputs, state, dropout, rng)
    total, count, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 1.0 / N)
    grads, _ = backward(params, cell, dlogits, cache)
    return total / count, grads, new_state


def clip_grads(grads, grad_clip, clip_mode):
    """Clip to mitigate exploding gradients, in place. 'value': each element to +-grad_clip (as
    min-char-rnn); 'norm': scale all grads so their global L2 norm is at most grad_clip.
    Returns the global norm before clipping."""
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if grad_clip <= 0:
        return norm
    if clip_mode == "value":
        for g in grads.values():
            np.clip(g, -grad_clip, grad_clip, out=g)
    elif norm > grad_clip:
        scale = grad_clip / norm
        for g in grads.values():
            g *= scale
    return norm
