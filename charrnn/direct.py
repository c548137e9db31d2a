"""Hashed n-gram features joined to the output: the "direct connections" of Mikolov's RNNME and
the rnnlm toolkit (-direct, -direct-order), for characters.

Tables Wd (n, B, V) of weights, one of B rows per order k = 1 .. n, are indexed by hashes of the
last k characters read (the context), and the rows they pick are added to the output logits:

    logits_t = h_t @ Why + by + sum_{k=1..n} Wd[k - 1, hash_k(x_{t-k+1} .. x_t)]

so each context of up to n characters has, up to collisions in the B rows, a vector of V
learned weights: a count-like memory of local context, trained with the network, while the
recurrent state models the rest. It costs a gather of n rows per character forward and a
scatter-add of n rows per character backward (np.add.at); nothing else changes.

The context. hash_k at step t reads the k characters x_{t-k+1} .. x_t. Characters before the
chunk come from `context` (N, n - 1): the ids that precede the chunk in each stream, or -1 where
there are none (the start of a stream or of a pass, where the recurrent state is zeros too).
A character that is not there (-1) hashes as the code 0, the ids as id + 1. In a model of
documents (end: the end mark's id), a context never reaches back past the end mark that starts
the current document: the characters before it hash as absent, so a document's features are
those it has when read alone, as its recurrent state is (layers.reset_mask).

The hash: a polynomial rolling hash of the codes in uint64 (wrapping), h_k = h_{k-1} * P +
code(x_{t-k+1}), mixed with k and reduced to a row of table k, ((h_k ^ k * Q) * R >> 32) % B.
The same function is used for training, scoring and sampling, so a row is a row everywhere; its
constants are part of the checkpoint format (docs/files.md).
"""

import numpy as np

P = np.uint64(0x100000001B3)          # the FNV-64 prime: the rolling hash's multiplier
Q = np.uint64(0x9E3779B97F4A7C15)     # mixes the order k in
R = np.uint64(0xBF58476D1CE4E5B9)     # splitmix64's multiplier: spreads the bits before >> 32
SHIFT = np.uint64(32)


def context_of(ids, start, width):
    """The context of a chunk that starts at column start of ids (N, W): the width ids before
    it in each row, -1 where the row has none. (N, width) int32."""
    N = ids.shape[0]
    out = np.full((N, width), -1, dtype=np.int32)
    if width:
        lo = max(0, start - width)
        out[:, width - (start - lo):] = ids[:, lo:start]
    return out


def rows(ids_tm, context, order, buckets, end=None):
    """The table rows each step reads: (T, N, order) int64, rows[t, n, k - 1] = hash_k at step
    t of stream n. ids_tm: (T, N) time-major ids; context: (N, order - 1) the ids before the
    chunk (-1: none), or None for none at all."""
    T, N = ids_tm.shape
    C = order - 1
    ext = np.empty((C + T, N), dtype=np.int64)       # the context, then the chunk
    ext[:C] = -1 if context is None else np.asarray(context).T
    ext[C:] = ids_tm
    codes = ext + 1                                  # 0: no character
    if end is not None and C:
        # the characters before the end mark that starts a document hash as absent: where the
        # latest end mark at or before step t is at u, only u .. t count
        where = np.arange(C + T)[:, None]
        last = np.maximum.accumulate(np.where(ext == end, where, -1), axis=0)[C:]   # (T, N)
    out = np.empty((T, N, order), dtype=np.int64)
    h = np.zeros((T, N), dtype=np.uint64)
    steps = np.arange(T)[:, None]
    for k in range(1, order + 1):
        code = codes[C - k + 1:C - k + 1 + T]        # x_{t-k+1}, (T, N)
        if end is not None and C and k > 1:
            code = np.where(steps + C - k + 1 >= last, code, 0)
        h *= P
        h += code.astype(np.uint64)
        mixed = (h ^ np.uint64(k * int(Q) % 2**64)) * R     # (uint64 arrays wrap silently)
        out[:, :, k - 1] = ((mixed >> SHIFT) % np.uint64(buckets)).astype(np.int64)
    return out


def logits_forward(Wd, table_rows):
    """sum_k Wd[k - 1, rows[..., k - 1]]: (T*N, V), time-major as model.forward's logits.
    Wd: (n, B, V), one table of B rows per order."""
    T, N, K = table_rows.shape
    flat = table_rows.reshape(T * N, K)
    out = Wd[0][flat[:, 0]]
    for k in range(1, K):
        out += Wd[k][flat[:, k]]
    return out


def logits_backward(dlogits, table_rows, shape):
    """dWd (n, B, V) of logits_forward, given dlogits (T*N, V): each row's gradient added into
    the table rows it read (np.add.at: a row read twice gets both)."""
    T, N, K = table_rows.shape
    flat = table_rows.reshape(T * N, K)
    dWd = np.zeros(shape, dtype=dlogits.dtype)
    for k in range(K):
        np.add.at(dWd[k], flat[:, k], dlogits)
    return dWd


def step_rows(history, ids, order, buckets, end=None):
    """One sampling step's rows (N, order) for the ids (N,) read now, history (N, order - 1)
    the ids read before them (-1: none); and the history after the step. The same rows as
    rows() gives for that step of a chunk."""
    r = rows(np.asarray(ids, dtype=np.int64)[None, :], history, order, buckets, end)[0]
    after = np.concatenate([history, np.asarray(ids, dtype=history.dtype)[:, None]], axis=1)
    return r, after[:, 1:]
