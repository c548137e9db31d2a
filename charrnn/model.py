"""The char-level model: parameters, loss and gradients over one truncated-BPTT chunk, clipping.

    x_t = embed[id_t]                              (embedding, V x H)
    h^l_t = cell(x^l_t, h^l_{t-1})                 for layers l = 0 .. L-1 (layers.py)
    x^{l+1}_t = dropout(h^l_t)                     between layers, while training
    logits_t = dropout(h^{L-1}_t) @ Why + by;  loss_t = -log softmax(logits_t)[target_t]

Parameters are a flat dict of float32 arrays with fixed keys; the layers' weights are stacked on
a leading axis of length L (every layer's input is H wide, the embedding included):

    embed (V, H)   Wx (L, H, G)   Wh (L, H, G)   b (L, G)   [gru: bhn (L, H)]   Why (H, V)   by (V,)
    [labels: Wv (L, K, G)]   [direct features: Wd (n, B, V)]

Documents (documents.py): given end, the id of the end mark, every step whose input is the end
mark starts a document, and each layer's state is reset to zeros before it (layers.reset_mask).
Labels: a model of K labelled kinds conditions every layer at every step on its document's label
k, through v = onehot(k): Wx^T x + Wh^T h + b + Wv^T v, the captioning model's
h = tanh(Wxh x + Whh h + Wih v) (Wv[l, k] is label k's learned vector for layer l). For a
single label the term is a bias: condition() folds it into b for sampling and export.

Regularisers from AWD-LSTM (Merity et al. 2017), training only: weight_drop, DropConnect on the
recurrent weights, Wh_eff = Wh * M; embed_drop, whole rows of embed, embed_eff = embed * m[:, None]
(draw_masks: one mask per chunk, shared by its streams); variational, dropout's masks locked
across the chunk's steps (layers.dropout_forward).

Direct features (direct.py, RNNME's direct connections): with Wd, the logits also get
sum_k Wd[k - 1, hash_k(last k characters)], for k = 1 .. n; the characters before a chunk come
from its context (N, n - 1), the ids that precede it in each stream (-1: none).

The training objective is the loss summed over the T steps of a chunk and averaged over the N
streams, as in min-char-rnn and char-rnn; reported losses are per character (that sum / T).

Layer 0's input projection embed[id] @ Wx[0] + b[0] depends on the id only, so when V <= H and
V <= N*T it is computed once per chunk as a (V, G) table and selected by a one-hot matmul, and its
gradient is summed per character (the same one-hot) before touching Wx[0] and embed: the same
gradients, with V instead of N*T rows of H-wide work. (min-char-rnn's chunk, 25 characters of one
stream, is fewer rows than its 65 characters: there the plain path is the cheaper, by a tenth of
an iteration.) Inside the recurrent layers sequences are feature-major, (T, H, N); see layers.py.
"""

import numpy as np

from . import direct
from .layers import (
    GATES,
    reset_mask,
    dropout_backward,
    dropout_forward,
    gru_seq_backward,
    gru_seq_forward,
    keep_mask,
    lstm_seq_backward,
    lstm_seq_forward,
    rnn_seq_backward,
    rnn_seq_forward,
    rows_chunk,
    softmax_cross_entropy,
    to_rows,
)

_SEQ = {
    "rnn": (rnn_seq_forward, rnn_seq_backward),
    "lstm": (lstm_seq_forward, lstm_seq_backward),
    "gru": (gru_seq_forward, gru_seq_backward),
}


def param_shapes(cell, vocab_size, hidden_size, num_layers, num_labels=0, direct_order=0,
                 direct_size=0):
    """Name -> shape of every parameter, in the order checkpoints and docs/files.md list them."""
    V, H, L, G = vocab_size, hidden_size, num_layers, GATES[cell] * hidden_size
    shapes = {"embed": (V, H), "Wx": (L, H, G), "Wh": (L, H, G), "b": (L, G)}
    if cell == "gru":
        shapes["bhn"] = (L, H)
    shapes.update({"Why": (H, V), "by": (V,)})
    if num_labels:
        shapes["Wv"] = (L, num_labels, G)
    if direct_order:
        shapes["Wd"] = (direct_order, direct_size, V)
    return shapes


def init_params(cell, vocab_size, hidden_size, num_layers, rng, dtype=np.float32, num_labels=0,
                direct_order=0, direct_size=0):
    """PyTorch's initialisation: embed ~ N(0, 1); Wx, Wh ~ U(-1/sqrt(H), 1/sqrt(H)); biases 0,
    except an LSTM's forget gate bias, 1, so that early on the cell remembers (Gers et al. 2000).
    Why is 10x smaller than PyTorch's, so that an untrained model predicts nearly uniformly and its
    loss starts at about ln V, as min-char-rnn's does. The labels' vectors Wv start at 0 (every
    label alike, as a model without labels), so that the random draws are those of a model
    without labels. The direct features' table Wd starts at 0 too (rnnlm's does): the model
    starts as one without them, with the same random draws."""
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    params = {}
    shapes = param_shapes(cell, vocab_size, hidden_size, num_layers, num_labels, direct_order,
                          direct_size)
    for name, shape in shapes.items():
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


def grow_vocab(params, old_vocab, new_vocab, rng):
    """params of a model over old_vocab, remapped onto new_vocab (a data.Vocab that holds every
    character of old_vocab, and more): each old character keeps its learned rows (its embed row,
    Why column and by entry) at its id in new_vocab; each new character gets rows as init_params
    makes them (embed ~ N(0, 1), Why ~ U(-0.1/sqrt(H), 0.1/sqrt(H)), by 0), drawn from rng; the
    direct features' tables Wd start again from zeros. The other parameters do not depend on V:
    they are the same arrays. A new dict; params as is."""
    old, new = old_vocab.chars, new_vocab.chars
    if set(old) - set(new):
        raise ValueError("grow_vocab: new_vocab lacks characters of old_vocab")
    at = np.array([new_vocab.stoi[ch] for ch in old], dtype=np.int64)    # old id -> new id
    fresh = np.array([i for i, ch in enumerate(new) if ch not in old_vocab.stoi], dtype=np.int64)
    grown = dict(params)
    if not len(fresh):
        return grown
    embed, Why = params["embed"], params["Why"]
    (V, H), bound = (len(new), embed.shape[1]), 1.0 / np.sqrt(embed.shape[1])
    grown["embed"] = np.empty((V, H), dtype=embed.dtype)
    grown["embed"][at] = embed
    grown["embed"][fresh] = rng.standard_normal((len(fresh), H))
    grown["Why"] = np.empty((H, V), dtype=Why.dtype)
    grown["Why"][:, at] = Why
    grown["Why"][:, fresh] = rng.uniform(-0.1 * bound, 0.1 * bound, (H, len(fresh)))
    grown["by"] = np.zeros(V, dtype=params["by"].dtype)
    grown["by"][at] = params["by"]
    if "Wd" in params:
        # the direct features' rows are hashed from ids, which the new vocabulary changes: the
        # tables start again from zeros (as init_params makes them)
        grown["Wd"] = np.zeros(params["Wd"].shape[:2] + (V,), dtype=params["Wd"].dtype)
    return grown


def num_params(params):
    return int(sum(p.size for p in params.values()))


def zero_state(cell, num_layers, batch_size, hidden_size, dtype=np.float32):
    """The initial recurrent state: per layer, (h,) or (h, c) for an LSTM, each (H, N) zeros
    (feature-major, as layers.py keeps sequences)."""
    parts = 2 if cell == "lstm" else 1
    return [tuple(np.zeros((hidden_size, batch_size), dtype) for _ in range(parts))
            for _ in range(num_layers)]


ONEHOT_FLOATS = 1 << 20   # the largest (V, N*T) one-hot that sums embedding gradients by matmul


def uses_table(vocab_size, hidden_size, n_chars):
    """Whether layer 0 goes through the (V, G) table for a chunk of n_chars (N*T) characters."""
    return vocab_size <= min(hidden_size, n_chars)


def _use_table(params, n_chars):
    return uses_table(*params["embed"].shape, n_chars)


def _layer0_projection(params, ids):
    """x @ Wx[0] + b[0] for x = embed[ids], ids: (T, N) -> (T, G, N), and what backward needs.

    Table path (V <= H): the (G, V) table Wx[0]^T embed^T + b[0] times a (T, V, N) one-hot, as
    one batched matmul that lands in the (T, G, N) layout (a row gather would need a transpose).
    """
    embed, Wx0, b0 = params["embed"], params["Wx"][0], params["b"][0]
    V = embed.shape[0]
    if _use_table(params, ids.size):
        table = embed @ Wx0 + b0                                                # (V, G)
        onehot = _onehot(ids, V, embed.dtype)                                   # (T, V, N)
        if ids.shape[1] == 1:   # one stream: (T, G) rows are (T, G, 1) already, gather them
            return table[ids[:, 0]][:, :, None], onehot
        return np.matmul(np.ascontiguousarray(table.T), onehot), onehot
    if ids.shape[1] == 1:   # one stream: one (T, H) @ (H, G) product; (T, G) rows are (T, G, 1)
        x = embed[ids[:, 0]]
        xp = x @ Wx0
        xp += b0
        return xp[:, :, None], x[:, :, None]
    x = np.ascontiguousarray(embed[ids].transpose(0, 2, 1))                    # (T, H, N)
    xp = np.matmul(np.ascontiguousarray(Wx0.T), x)
    xp += b0[:, None]
    return xp, x


def _onehot(ids_tm, n, dtype):
    """(T, n, N) one-hot in dtype of time-major ids (T, N) below n: a character's or a label's."""
    return (ids_tm[:, None, :] == np.arange(n)[None, :, None]).astype(dtype)


def forward(params, cell, ids, state, dropout=0.0, rng=None, keep_cache=True, end=None,
            labels=None, variational=False, context=None):
    """Run the stack over one chunk. ids: (N, T) input ids; state: from zero_state or a previous
    call. Dropout applies when rng is given and dropout > 0; variational: its masks are locked
    across the chunk's T steps, one (1, H, N) per layer (see dropout_forward). keep_cache=False
    (scoring, priming: no backward to come) lets each layer's cache go as soon as the next layer has its
    input, which lowers the peak memory, and returns None for the cache. end: the end mark's
    id in a model of documents (the state is reset where it is the input), or None. labels:
    (N, T) label ids of the inputs, for a model with labels (params has Wv), or None.
    context: (N, n - 1) the ids before the chunk in each stream (-1: none), for a model with
    direct features (params has Wd, of n orders; direct.context_of), or None for none.

    Returns logits (T*N, V), time-major (row t*N + n), the final state, and the cache.
    """
    L = params["Wx"].shape[0]
    seq_forward = _SEQ[cell][0]
    ids_tm = np.ascontiguousarray(ids.T)         # (T, N)
    T, N = ids_tm.shape
    keep, cuts = (None, None) if end is None else reset_mask(ids_tm == end, params["Wx"].dtype)
    onehot = (None if labels is None       # the labels' (T, K, N), or None
              else _onehot(labels.T, params["Wv"].shape[1], params["Wx"].dtype))
    xp, x = _layer0_projection(params, ids_tm)   # (T, G, N); x: the one-hot or embed[ids]
    layers, new_state = [], []
    for l in range(L):
        extra = (params["bhn"][l],) if cell == "gru" else ()
        # xp was made here for this call: an LSTM's activations may go over it
        options = {"overwrite_xp": True} if cell == "lstm" else {}
        if onehot is not None:   # + Wv^T v: label k's vector for this layer, at every step
            xp += np.matmul(np.ascontiguousarray(params["Wv"][l].T), onehot)
        hs, last, cache = seq_forward(xp, *state[l], params["Wh"][l], *extra, keep, cuts,
                                      **options)
        new_state.append(last)
        mask = None
        # dropout on every layer's output, the top one's included (before the output layer),
        # as char-rnn does
        if rng is not None and dropout > 0.0:
            hs, mask = dropout_forward(hs, dropout, rng, locked=variational)
        if l + 1 < L:
            # Wx^T (G, H) @ h_t (H, N) for every t: one batched matmul, no transposes
            xp = np.matmul(np.ascontiguousarray(params["Wx"][l + 1].T), hs)
            xp += params["b"][l + 1][:, None]
        if keep_cache:
            layers.append((x, cache, mask))
        del cache
        x = hs
    logits = _rows_tm(x) @ params["Why"] + params["by"]
    table_rows = None
    if "Wd" in params:   # + sum_k Wd[k - 1, hash_k]: the direct features of the last k ids
        Wd = params["Wd"]
        table_rows = direct.rows(ids_tm, context, Wd.shape[0], Wd.shape[1], end)
        logits += direct.logits_forward(Wd, table_rows)
    # the top layer's states x, not their (T*N, H) copy: backward remakes it (memory)
    return logits, new_state, (ids_tm, layers, x, onehot, table_rows) if keep_cache else None


def _rows_tm(seq):
    """(T, H, N) -> (T*N, H), contiguous, row t*N + n for step t, stream n (time-major)."""
    T, H, N = seq.shape
    return np.ascontiguousarray(seq.transpose(0, 2, 1)).reshape(T * N, H)


def backward(params, cell, dlogits, cache, consume=False):
    """Gradients of every parameter, and of the initial state, given dlogits (T*N, V).

    consume: the caller hands the cache over (loss_and_grads does): each layer's part is dropped
    as soon as it is done and an LSTM's gradients go over its cached activations, which lowers
    the peak memory of training by about a third. By default the cache is left as it was.
    """
    seq_backward = _SEQ[cell][1]
    ids_tm, layers, top_states, onehot, table_rows = cache
    T, N = ids_tm.shape
    # the stacked per-layer arrays are filled layer by layer; the others are made whole below
    grads = {name: np.empty_like(params[name]) for name in ("Wx", "Wh", "b", "bhn", "Wv")
             if name in params}
    grads["Why"] = _rows_tm(top_states).T @ dlogits
    grads["by"] = dlogits.sum(axis=0)
    if table_rows is not None:
        grads["Wd"] = direct.logits_backward(dlogits, table_rows, params["Wd"].shape)
    del top_states
    # (T*N, H) -> (T, H, N); no name keeps the (T*N, H) array alive through the layers below
    dhs = np.ascontiguousarray((dlogits @ params["Why"].T).reshape(T, N, -1).transpose(0, 2, 1))
    if layers[-1][2] is not None:          # the top layer's dropout
        dhs = dropout_backward(dhs, layers[-1][2])
    dstate = [None] * len(layers)
    for l in reversed(range(len(layers))):
        x, seq_cache, _ = layers[l]
        if consume:
            layers[l] = None         # free each layer's cache as soon as it is done
        if cell == "gru":
            dxp, dstate[l], grads["Wh"][l], grads["bhn"][l] = seq_backward(dhs, seq_cache)
        elif cell == "lstm":
            dxp, dstate[l], grads["Wh"][l] = seq_backward(dhs, seq_cache, overwrite_cache=consume)
        else:
            dxp, dstate[l], grads["Wh"][l] = seq_backward(dhs, seq_cache)
        del seq_cache
        if onehot is not None:   # the labels' vectors: dxp summed per label (a one-hot matmul)
            grads["Wv"][l] = _input_grads(onehot, dxp)[0]
        # dxp: (T, G, N); the input weights' gradient sums over every step and stream
        if l > 0:
            grads["Wx"][l], grads["b"][l], dhs = _input_grads(x, dxp, params["Wx"][l])
            mask = layers[l - 1][2]
            if mask is not None:
                dhs = dropout_backward(dhs, mask)
        else:
            _layer0_backward(params, ids_tm.reshape(-1), x, dxp, grads)
    return {name: grads[name] for name in params}, dstate   # in the params' order


def _input_grads(x, dxp, W=None):
    """For a projection xp = W^T x + b over a chunk, x: (T, X, N), dxp: (T, G, N): the grads of
    W (sum_t x_t dxp_t^T, (X, G)), of b (G,), and, if W is given, of x (T, X, N).

    Like layers.sum_outer, a few steps at a time on (., k*N) row copies, each copy of dxp made once
    and shared by the three products, so temporaries stay small whatever T and N are."""
    T, X, N = x.shape
    G = dxp.shape[1]
    step = rows_chunk(max(X, G), N)
    dW = db = None
    dx = np.empty_like(x) if W is not None else None
    for t in range(0, T, step):
        rows = to_rows(dxp[t:t + step])                                  # (G, k*N)
        if dW is None:
            dW, db = to_rows(x[t:t + step]) @ rows.T, rows.sum(axis=1)
        else:
            dW += to_rows(x[t:t + step]) @ rows.T
            db += rows.sum(axis=1)
        if W is not None:
            k = rows.shape[1] // N
            # (X, k*N) -> (k, X, N), into the steps' blocks of dx
            dx[t:t + k] = (W @ rows).reshape(X, k, N).transpose(1, 0, 2)
    return dW, db, dx


def _layer0_backward(params, ids, x, dxp, grads):
    """Grads of embed, Wx[0] and b[0] from dxp (T, G, N): the grad of embed[ids] @ Wx[0] + b[0].
    x is what _layer0_projection returned beside the projection."""
    embed, Wx0 = params["embed"], params["Wx"][0]
    if _use_table(params, ids.size):
        # S[v] = sum of the dxp columns whose id is v: a one-hot matmul (np.add.at is slow)
        S, grads["b"][0], _ = _input_grads(x, dxp)   # (V, G)
        grads["Wx"][0] = embed.T @ S
        grads["embed"] = S @ Wx0.T
    else:
        grads["Wx"][0], grads["b"][0], dx = _input_grads(x, dxp, Wx0)   # dx: (T, H, N)
        # (T*N, H) rows, row t*N + n for ids[t*N + n], summed into the ids' rows
        rows = dx.transpose(0, 2, 1).reshape(-1, embed.shape[1])
        if ids.size * embed.shape[0] <= ONEHOT_FLOATS:   # a one-hot matmul: np.add.at is slow
            grads["embed"] = (ids == np.arange(embed.shape[0])[:, None]).astype(embed.dtype) @ rows
        else:
            dembed = np.zeros_like(embed)
            np.add.at(dembed, ids, rows)
            grads["embed"] = dembed


# loss_and_grads's regularisers beyond dropout: ModelConfig keys of the same names (training only)
REGULARISERS = ("weight_drop", "embed_drop", "variational")


def draw_masks(params, weight_drop, embed_drop, rng):
    """The chunk's DropConnect masks (AWD-LSTM, Merity et al. 2017), drawn from rng: name ->
    mask, in the parameters' dtype, each element 0 or 1 / (1 - p). "Wh" (L, H, G): weight_drop
    on every layer's recurrent weights; "embed" (V,): embed_drop on whole rows of the embedding
    (whole characters: AWD's dropoute). Empty without rng or when both are 0. One draw per
    chunk, shared by all its streams (and all its shards: parallel.py draws them once)."""
    masks = {}
    if rng is None:
        return masks
    if weight_drop > 0.0:
        masks["Wh"] = keep_mask(params["Wh"].shape, weight_drop, rng, params["Wh"].dtype)
    if embed_drop > 0.0:
        masks["embed"] = keep_mask(params["embed"].shape[:1], embed_drop, rng,
                                   params["embed"].dtype)
    return masks


def _masked(name, mask):
    """A mask of draw_masks shaped to broadcast over its parameter: embed's (V,) as (V, 1)."""
    return mask[:, None] if name == "embed" else mask


def apply_masks(params, masks):
    """params with the masked ones replaced by new arrays p * mask (Wh_eff = Wh * M, embed_eff
    = embed * m[:, None]): what the chunk's forward and backward run on. params if none."""
    if not masks:
        return params
    return {name: p * _masked(name, masks[name]) if name in masks else p
            for name, p in params.items()}


def mask_grads(grads, masks):
    """In place: the gradients of the masked parameters, given those of their masked copies
    (dWh = dWh_eff * M, dembed = dembed_eff * m[:, None]): the masks' chain rule."""
    for name, mask in masks.items():
        grads[name] *= _masked(name, mask)
    return grads


def loss_and_grads(params, cell, inputs, targets, state, dropout=0.0, rng=None, batch_size=None,
                   end=None, labels=None, weight_drop=0.0, embed_drop=0.0, variational=False,
                   context=None):
    """One truncated-BPTT chunk. inputs, targets: (N, T) ids; state: the carried state; end,
    labels, context: as forward's (documents, their labels, the direct features' context);
    variational: as forward's. weight_drop, embed_drop: DropConnect on Wh and on embed's rows
    (draw_masks), drawn from rng first, before dropout's masks; training only, as dropout.

    Returns (mean loss per character, grads, new state). The gradients are those of the loss
    summed over T and averaged over N; the new state is detached (plain arrays). batch_size: the
    N to average over, when these streams are a shard of a larger batch (parallel.py); then the
    shards' gradients add up to the batch's. Targets of -1 do not count (a completion setting's
    prompts): the loss is then the mean over the counted characters, the gradient that of their
    sum over T averaged over N, and a chunk with none counted has loss 0.0 and zero gradients.
    """
    N, T = inputs.shape
    masks = draw_masks(params, weight_drop, embed_drop, rng)
    used = apply_masks(params, masks)
    logits, new_state, cache = forward(used, cell, inputs, state, dropout, rng, end=end,
                                       labels=labels, variational=variational, context=context)
    total, count, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1),
                                                  1.0 / (batch_size or N))
    grads, _ = backward(used, cell, dlogits, cache, consume=True)
    return (total / count if count else 0.0), mask_grads(grads, masks), new_state


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


def direct_width(params):
    """The context a chunk needs (direct.context_of's width): n - 1 ids for a model with direct
    features of n orders, else 0."""
    return params["Wd"].shape[0] - 1 if "Wd" in params else 0


def condition(params, label):
    """The parameters of a model with labels, made those of label k's model alone: Wv[:, k]
    added to the biases b and Wv dropped (for one label the term v @ Wv is a bias). Without
    Wv, params as they are."""
    if "Wv" not in params:
        return params
    folded = {name: p for name, p in params.items() if name != "Wv"}
    folded["b"] = params["b"] + params["Wv"][:, label]
    return folded


def relabel(params, old_labels, new_labels):
    """params (of a model with old_labels, maybe none) for a model of new_labels: each label
    keeps its vectors Wv[:, k] if it had them, a new one starts at zeros (as init_params), and
    a model without labels has no Wv."""
    rest = {name: p for name, p in params.items() if name != "Wv"}
    if not new_labels:
        return rest
    L, _, G = params["Wx"].shape
    Wv = np.zeros((L, len(new_labels), G), dtype=params["Wx"].dtype)
    for k, name in enumerate(new_labels):
        if name in old_labels:
            Wv[:, k] = params["Wv"][:, list(old_labels).index(name)]
    return {**rest, "Wv": Wv}
