"""Forward/backward pairs for char-level recurrent models, in NumPy.

Shapes, used in every docstring below:
    N batch, T time steps, V vocabulary, D input width, H hidden width,
    G gate width: H for rnn, 3H for gru, 4H for lstm.

Two kinds of function live here:
- `*_step_forward` / `*_step_backward`: one time step, written plainly from the equations. They are
  the reference the tests check against numerical gradients, and the fast paths against them.
- `*_seq_forward` / `*_seq_backward`: the whole chunk of T steps, working on an input projection
  `xp = x @ Wx + b` computed for all steps at once by the caller, feature-major within a step
  (see the layout note below). They write into preallocated buffers with in-place ufuncs, so the
  per-step loop allocates nothing (its matmuls are np.dot with out=: a third less call overhead
  than np.matmul, which counts at batch 1), and compute the weight gradient dWh with a few large
  matmuls over all steps (sum_outer).

Equations (gate order as in PyTorch, so its nn.RNN / nn.LSTM / nn.GRU can load the weights):
    rnn:  h_t = tanh(x_t Wx + b + h_{t-1} Wh)
    lstm: [i, f, g, o] = [sig, sig, tanh, sig](x_t Wx + b + h_{t-1} Wh)
          c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    gru:  [r, z] = sig(x_t Wx_rz + b_rz + h_{t-1} Wh_rz)
          n = tanh(x_t Wx_n + b_n + r * (h_{t-1} Wh_n + bhn))
          h_t = (1 - z) * n + z * h_{t-1}
Sources: Hochreiter & Schmidhuber (1997) with forget gates (Gers et al. 2000); Cho et al. (2014) in
PyTorch's form (r applied after the recurrent matmul); the step/sequence split follows CS231n's
rnn_layers.py; min-char-rnn for the vanilla cell.
"""

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # gate blocks of width H per cell


def sigmoid(x):
    """Logistic function without overflow: sig(x) = (1 + tanh(x / 2)) / 2 (np.exp(-x) overflows)."""
    return 0.5 * np.tanh(0.5 * x) + 0.5


# --------------------------------------------------------------------------- reference steps


def _conditioned(a, v, Wv):
    """a + v @ Wv: the conditioning term of every cell (the captioning model's Wih v), or a
    without one (v None)."""
    return a if v is None else a + v @ Wv


def _condition_grads(da, v, Wv):
    """(dv, dWv) of a pre-activation's v @ Wv term, given its gradient da; () without v."""
    return () if v is None else (da @ Wv.T, v.T @ da)


def rnn_step_forward(x, h_prev, Wx, Wh, b, v=None, Wv=None):
    """One vanilla-RNN step. x: (N, D), h_prev: (N, H) -> h: (N, H). v: (N, E) a conditioning
    vector (a label's one-hot, an image's features) and Wv: (E, H), or None."""
    # h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b + v @ Wv)
    h = np.tanh(_conditioned(x @ Wx + h_prev @ Wh + b, v, Wv))
    return h, (x, h_prev, Wx, Wh, h, v, Wv)


def rnn_step_backward(dh, cache):
    """Returns dx, dh_prev, dWx, dWh, db (forward-argument order), then dv, dWv if conditioned."""
    x, h_prev, Wx, Wh, h, v, Wv = cache
    da = dh * (1.0 - h * h)  # tanh' = 1 - tanh^2, from the saved output
    return (da @ Wx.T, da @ Wh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0),
            *_condition_grads(da, v, Wv))


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b, v=None, Wv=None):
    """One LSTM step. x: (N, D), h_prev, c_prev: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,);
    v: (N, E) and Wv: (E, 4H), a conditioning term, or None.

    Returns h, c: (N, H) and the cache.
    """
    H = h_prev.shape[1]
    a = _conditioned(x @ Wx + h_prev @ Wh + b, v, Wv)  # (N, 4H) pre-activations, blocks i f g o
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H])
    # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return h, c, (x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc, v, Wv)


def lstm_step_backward(dh, dc, cache):
    """dh, dc: (N, H) upstream. Returns dx, dh_prev, dc_prev, dWx, dWh, db, then dv, dWv if
    conditioned."""
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc, v, Wv = cache
    dc = dc + dh * o * (1.0 - tc * tc)
    da = np.concatenate([
        dc * g * i * (1.0 - i),      # through i = sig(a_i)
        dc * c_prev * f * (1.0 - f),  # through f
        dc * i * (1.0 - g * g),      # through g = tanh(a_g)
        dh * tc * o * (1.0 - o),     # through o
    ], axis=1)
    return (da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, h_prev.T @ da, da.sum(axis=0),
            *_condition_grads(da, v, Wv))


def gru_step_forward(x, h_prev, Wx, Wh, b, bhn, v=None, Wv=None):
    """One GRU step. x: (N, D), h_prev: (N, H), Wx: (D, 3H), Wh: (H, 3H), b: (3H,), bhn: (H,);
    v: (N, E) and Wv: (E, 3H), a conditioning term on the input side, or None."""
    H = h_prev.shape[1]
    ax = _conditioned(x @ Wx + b, v, Wv)   # (N, 3H) input part, blocks r z n
    ah = h_prev @ Wh         # (N, 3H) recurrent part
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    hn = ah[:, 2 * H:] + bhn  # r gates the recurrent term after its matmul (PyTorch's form)
    n = np.tanh(ax[:, 2 * H:] + r * hn)
    # h_t = (1 - z) * n + z * h_{t-1}
    h = (1.0 - z) * n + z * h_prev
    return h, (x, h_prev, Wx, Wh, r, z, n, hn, v, Wv)


def gru_step_backward(dh, cache):
    """Returns dx, dh_prev, dWx, dWh, db, dbhn, then dv, dWv if conditioned."""
    x, h_prev, Wx, Wh, r, z, n, hn, v, Wv = cache
    dn = dh * (1.0 - z) * (1.0 - n * n)           # d pre-activation of n
    dz = dh * (h_prev - n) * z * (1.0 - z)        # d pre-activation of z
    dr = dn * hn * r * (1.0 - r)                  # d pre-activation of r
    dax = np.concatenate([dr, dz, dn], axis=1)    # (N, 3H) grad of x @ Wx + b
    dah = np.concatenate([dr, dz, dn * r], axis=1)  # (N, 3H) grad of h_prev @ Wh
    dh_prev = dh * z + dah @ Wh.T
    return (dax @ Wx.T, dh_prev, x.T @ dax, h_prev.T @ dah, dax.sum(axis=0),
            (dn * r).sum(axis=0), *_condition_grads(dax, v, Wv))


# --------------------------------------------------------------------------- fast sequences
#
# Layout: feature-major within each step. A sequence of T steps of X features for N streams is a
# (T, X, N) array, so step t is a contiguous (X, N) block and every gate of it, i = a[:H] say, is a
# contiguous (H, N) block: elementwise ops run on contiguous memory with scalar operands, and the
# step matmul is W^T (G, H) @ h (H, N), which BLAS runs faster at small N than h (N, H) @ W (H, G).
# Weight gradients sum over all steps with large matmuls on (X, k*N) "rows" of the same arrays,
# k steps at a time (sum_outer), so that the row copies stay small.


def to_rows(seq):
    """(T, X, N) -> (X, T*N), contiguous: column t*N + n is step t of stream n."""
    T, X, N = seq.shape
    return np.ascontiguousarray(seq.transpose(1, 0, 2)).reshape(X, T * N)


ROWS_CHUNK_FLOATS = 1 << 20   # 4 MB of float32: the largest row copy a weight gradient makes


def rows_chunk(width, N):
    """Steps per chunk for row copies of (T, width, N) sequences: under ROWS_CHUNK_FLOATS."""
    return max(1, ROWS_CHUNK_FLOATS // (width * N))


def sum_outer(a, b, keep=None):
    """sum_t a[t] @ b[t]^T for a: (T, X, N), b: (T, Y, N) -> (X, Y): a weight gradient summed over
    every step and stream. Computed as rows matmuls, to_rows(a) @ to_rows(b)^T, over chunks of
    steps, so that the row copies stay under ROWS_CHUNK_FLOATS whatever T and N are. keep: (T, N)
    or None: a's column (t, n) counts as a[t] * keep[t, n] (the states that reset_mask zeroes)."""
    T, X, N = a.shape
    step = rows_chunk(max(X, b.shape[1]), N)
    out = None
    for t in range(0, T, step):
        rows = to_rows(a[t:t + step])
        if keep is not None:
            rows *= keep[t:t + step].reshape(-1)
        if out is None:
            out = rows @ to_rows(b[t:t + step]).T
        else:
            out += rows @ to_rows(b[t:t + step]).T
    return out


# Documents (documents.py): where a document starts, a stream's state goes back to the model's
# start state, zeros, before the step. keep (T, N) holds 0 there and 1 elsewhere: the state a step
# reads is h_{t-1} * keep[t] (and c_{t-1} * keep[t]), and the gradient that flows back through it
# is multiplied by the same. The state that step t - 1 outputs (its h_t, read by the layer above
# and the output layer) is unchanged. Only the steps with a reset pay for the masking; without
# documents (keep None) the kernels run as before, bit for bit.


def reset_mask(starts, dtype=np.float32):
    """keep (T, N) in dtype from starts (T, N) bool (a document starts at the step), and cuts:
    per step, whether any stream resets there; (None, None) when none does."""
    cuts = starts.any(axis=1)
    if not cuts.any():
        return None, None
    return (~starts).astype(dtype), cuts.tolist()


def _read_state(state, keep, cuts, t, buf):
    """The state step t reads: state itself, or state * keep[t] written into buf where a
    document starts at t."""
    if cuts is None or not cuts[t]:
        return state
    return np.multiply(state, keep[t], out=buf)


def rnn_seq_forward(xp, h0, Wh, keep=None, cuts=None):
    """Vanilla RNN over T steps. xp: (T, H, N) input projection with bias, h0: (H, N), Wh: (H, H);
    keep, cuts: reset_mask's, or None.

    Returns hs: (T, H, N), the final state (h_T,) and the cache.
    """
    T, H, N = xp.shape
    WhT = np.ascontiguousarray(Wh.T)
    hs = np.empty((T + 1, H, N), dtype=xp.dtype)  # hs[t + 1] = h_t; hs[0] = h0
    hs[0] = h0
    buf = np.empty((H, N), dtype=xp.dtype) if cuts is not None else None
    for t in range(T):
        h = hs[t + 1]
        np.dot(WhT, _read_state(hs[t], keep, cuts, t, buf), out=h)
        h += xp[t]
        np.tanh(h, out=h)
    return hs[1:], (hs[T].copy(),), (hs, Wh, keep, cuts)


def rnn_seq_backward(dhs, cache):
    """dhs: (T, H, N) upstream grads of hs. Returns dxp (T, H, N), (dh0,), dWh."""
    hs, Wh, keep, cuts = cache
    T, H, N = dhs.shape
    # tanh' = 1 - h_t^2 for every step at once, into dxp (two ufunc calls, not 2 T)
    dxp = np.multiply(hs[1:], hs[1:])
    np.subtract(1.0, dxp, out=dxp)
    dh = np.zeros((H, N), dtype=dhs.dtype)  # carried dh_next
    for t in reversed(range(T)):
        dh += dhs[t]
        da = dxp[t]
        da *= dh                            # da = dh * (1 - h_t^2)
        np.dot(Wh, da, out=dh)
        if cuts is not None and cuts[t]:
            dh *= keep[t]                   # no gradient into the previous document
    # a few large matmuls over all steps instead of T small ones: dWh = sum_t h_{t-1} da_t^T
    return dxp, (dh,), sum_outer(hs[:-1], dxp, keep)


def lstm_seq_forward(xp, h0, c0, Wh, keep=None, cuts=None, overwrite_xp=False):
    """LSTM over T steps. xp: (T, 4H, N) input projection with bias, h0, c0: (H, N), Wh: (H, 4H);
    keep, cuts: reset_mask's, or None. overwrite_xp: the gate activations are written over xp
    (which the caller no longer needs), saving a (T, 4H, N) array.

    Returns hs: (T, H, N), the final state (h_T, c_T) and the cache.
    """
    T, G, N = xp.shape
    H = G // 4
    dtype = xp.dtype
    # sig(a) = 0.5 * tanh(0.5 * a) + 0.5 on i, f and o, so that one tanh serves all four gates.
    # The halving is done once, on the sigmoid rows of Wh^T and of every step's xp, not per
    # step: scaling by 0.5 is exact in binary floating point, so it changes no bit.
    WhT = np.ascontiguousarray(Wh.T)
    WhT[:2 * H] *= 0.5
    WhT[3 * H:] *= 0.5
    acts = xp if overwrite_xp else xp.copy()      # (T, 4H, N) gate activations i f g o
    acts[:, :2 * H] *= 0.5
    acts[:, 3 * H:] *= 0.5
    rec = np.empty((G, N), dtype=dtype)           # one step's recurrent part
    hs = np.empty((T + 1, H, N), dtype=dtype)     # hs[t + 1] = h_t
    cs = np.empty((T + 1, H, N), dtype=dtype)     # cs[t + 1] = c_t
    hs[0], cs[0] = h0, c0
    tmp = np.empty((H, N), dtype=dtype)
    tc = np.empty((H, N), dtype=dtype)            # tanh(c_t), recomputed in backward (memory)
    hbuf, cbuf = (np.empty((H, N), dtype=dtype) for _ in range(2)) if cuts else (None, None)
    for t in range(T):
        a = acts[t]
        np.dot(WhT, _read_state(hs[t], keep, cuts, t, hbuf), out=rec)
        a += rec
        ifs, o = a[:2 * H], a[3 * H:]
        np.tanh(a, out=a)
        ifs *= 0.5
        ifs += 0.5
        o *= 0.5
        o += 0.5
        i, f, g = a[:H], a[H:2 * H], a[2 * H:3 * H]
        # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
        c = cs[t + 1]
        np.multiply(f, _read_state(cs[t], keep, cuts, t, cbuf), out=c)
        np.multiply(i, g, out=tmp)
        c += tmp
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=hs[t + 1])
    return hs[1:], (hs[T].copy(), cs[T].copy()), (acts, hs, cs, Wh, keep, cuts)


def lstm_seq_backward(dhs, cache, overwrite_cache=False):
    """dhs: (T, H, N). Returns dxp (T, 4H, N), (dh0, dc0), dWh.

    overwrite_cache: dxp is written over the cached gate activations (each step's are read for
    the last time when its gradient is made), which saves a (T, 4H, N) array at the peak of
    training; for a caller that owns the cache and drops it after (model.backward when
    loss_and_grads calls it). By default the cache is left as it was.
    """
    acts, hs, cs, Wh, keep, cuts = cache
    T, H, N = dhs.shape
    dtype = dhs.dtype
    dxp = acts if overwrite_cache else np.empty_like(acts)
    cbuf = np.empty((H, N), dtype=dtype) if cuts else None
    dh = np.zeros((H, N), dtype=dtype)   # carried dh_next
    dc = np.zeros((H, N), dtype=dtype)   # carried dc_next
    tmp = np.empty((H, N), dtype=dtype)
    tc = np.empty((H, N), dtype=dtype)
    up = np.empty((4 * H, N), dtype=dtype)   # upstream grads of the activations i f g o
    sq = np.empty((4 * H, N), dtype=dtype)
    di, df, dg, do = up[:H], up[H:2 * H], up[2 * H:3 * H], up[3 * H:]
    for t in reversed(range(T)):
        a = acts[t]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        dh += dhs[t]
        np.tanh(cs[t + 1], out=tc)   # not kept from forward: one tanh is cheaper than (T, H, N)
        # dc_t += dh * o * (1 - tanh(c_t)^2) = dh * (o - h_t * tanh(c_t))
        np.multiply(hs[t + 1], tc, out=tmp)
        np.subtract(o, tmp, out=tmp)
        tmp *= dh
        dc += tmp
        np.multiply(dh, tc, out=do)
        np.multiply(dc, g, out=di)
        np.multiply(dc, i, out=dg)
        np.multiply(dc, _read_state(cs[t], keep, cuts, t, cbuf), out=df)
        dc *= f                      # dc_{t-1} = dc_t * f
        # through the activations y: sig' = y - y^2 (i, f, o), tanh' = 1 - y^2 (g); da may be a
        # itself (overwrite_cache): a is squared into sq first, and every element of a is read
        # before the same element of da is written
        da = dxp[t]
        np.multiply(a, a, out=sq)
        np.subtract(a[:2 * H], sq[:2 * H], out=da[:2 * H])
        np.subtract(1.0, sq[2 * H:3 * H], out=da[2 * H:3 * H])
        np.subtract(o, sq[3 * H:], out=da[3 * H:])
        da *= up
        np.dot(Wh, da, out=dh)    # dh_{t-1}
        if cuts is not None and cuts[t]:
            dh *= keep[t]         # no gradient into the previous document
            dc *= keep[t]
    return dxp, (dh, dc), sum_outer(hs[:-1], dxp, keep)


def gru_seq_forward(xp, h0, Wh, bhn, keep=None, cuts=None):
    """GRU over T steps. xp: (T, 3H, N) input projection with bias b, h0: (H, N), Wh: (H, 3H),
    bhn: (H,); keep, cuts: reset_mask's, or None. Returns hs: (T, H, N), the final state (h_T,)
    and the cache."""
    T, G, N = xp.shape
    H = G // 3
    dtype = xp.dtype
    WhT = np.ascontiguousarray(Wh.T)
    bhn_n = np.repeat(bhn[:, None].astype(dtype), N, axis=1)  # (H, N): a contiguous operand
    rz = np.empty((T, 2 * H, N), dtype=dtype)   # gates r, z
    ns = np.empty((T, H, N), dtype=dtype)       # candidate n
    hns = np.empty((T, H, N), dtype=dtype)      # Wh_n h_{t-1} + bhn, needed for dr
    hs = np.empty((T + 1, H, N), dtype=dtype)
    hs[0] = h0
    ah = np.empty((3 * H, N), dtype=dtype)
    buf = np.empty((H, N), dtype=dtype) if cuts else None
    for t in range(T):
        prev = _read_state(hs[t], keep, cuts, t, buf)
        np.dot(WhT, prev, out=ah)
        g = rz[t]
        np.add(xp[t, :2 * H], ah[:2 * H], out=g)
        g *= 0.5                 # sig(a) = 0.5 * tanh(0.5 * a) + 0.5
        np.tanh(g, out=g)
        g *= 0.5
        g += 0.5
        r, z = g[:H], g[H:]
        np.add(ah[2 * H:], bhn_n, out=hns[t])
        n = ns[t]
        np.multiply(r, hns[t], out=n)
        n += xp[t, 2 * H:]
        np.tanh(n, out=n)
        # h_t = n + z * (h_{t-1} - n)
        h = hs[t + 1]
        np.subtract(prev, n, out=h)
        h *= z
        h += n
    return hs[1:], (hs[T].copy(),), (rz, ns, hns, hs, Wh, keep, cuts)


def gru_seq_backward(dhs, cache):
    """dhs: (T, H, N). Returns dxp (T, 3H, N), (dh0,), dWh, dbhn."""
    rz, ns, hns, hs, Wh, keep, cuts = cache
    T, H, N = dhs.shape
    dtype = dhs.dtype
    buf = np.empty((H, N), dtype=dtype) if cuts else None
    dxp = np.empty((T, 3 * H, N), dtype=dtype)
    dah = np.empty((T, 3 * H, N), dtype=dtype)  # grads of Wh^T h_{t-1} (+ bhn for the n block)
    dh = np.zeros((H, N), dtype=dtype)
    tmp = np.empty((H, N), dtype=dtype)
    back = np.empty((H, N), dtype=dtype)
    for t in reversed(range(T)):
        r, z = rz[t, :H], rz[t, H:]
        n, h_prev = ns[t], _read_state(hs[t], keep, cuts, t, buf)
        dr, dz, dn = dxp[t, :H], dxp[t, H:2 * H], dxp[t, 2 * H:]
        dh += dhs[t]
        # dz = dh * (h_{t-1} - n) * z * (1 - z)
        np.subtract(h_prev, n, out=dz)
        dz *= dh
        np.subtract(1.0, z, out=tmp)
        tmp *= z
        dz *= tmp
        # dn = dh * (1 - z) * (1 - n^2)
        np.subtract(1.0, z, out=dn)
        dn *= dh
        np.multiply(n, n, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        dn *= tmp
        # dr = dn * hn * r * (1 - r)
        np.multiply(dn, hns[t], out=dr)
        np.subtract(1.0, r, out=tmp)
        tmp *= r
        dr *= tmp
        dah[t, :2 * H] = dxp[t, :2 * H]
        np.multiply(dn, r, out=dah[t, 2 * H:])
        # dh_{t-1} = dh * z + Wh dah_t
        np.dot(Wh, dah[t], out=back)
        dh *= z
        dh += back
        if cuts is not None and cuts[t]:
            dh *= keep[t]            # no gradient into the previous document
    return dxp, (dh,), sum_outer(hs[:-1], dah, keep), dah[:, 2 * H:].sum(axis=(0, 2))


# --------------------------------------------------------------------------- other layers


def log_softmax(logits):
    """Row-wise log-softmax, stable: subtract the row max before exp. logits: (M, V)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, targets, weight=1.0):
    """Cross-entropy of integer targets under softmax(logits).

    logits: (M, V), targets: (M,) ids, or -1 for positions that do not count.
    Returns (sum of losses over counted rows, number counted, dlogits = weight * d(sum)/dlogits).
    """
    logp = log_softmax(logits)
    rows = np.arange(len(targets))
    counted = targets >= 0
    dlogits = np.exp(logp)
    if counted.all():   # training chunks: every position counts, no masking
        total = float(-logp[rows, targets].sum(dtype=np.float64))
        dlogits[rows, targets] -= 1.0
    else:
        picked = logp[rows, np.where(counted, targets, 0)]
        total = float(-picked[counted].sum(dtype=np.float64))
        dlogits[rows[counted], targets[counted]] -= 1.0
        dlogits[~counted] = 0.0
    if weight != 1.0:
        dlogits *= weight
    return total, int(counted.sum()), dlogits


def keep_mask(shape, p, rng, dtype):
    """An inverted-dropout mask of shape in dtype: 0 with probability p, else 1 / (1 - p)."""
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout_forward(x, p, rng, locked=False):
    """Inverted dropout: zero each unit with probability p, scale the rest by 1 / (1 - p).
    locked: x is a sequence (T, H, N) and one (1, H, N) mask serves all its T steps (variational
    dropout, Gal & Ghahramani 2016; AWD-LSTM's LockedDropout), instead of a fresh one per step.
    Returns out and the mask (already scaled), which backward multiplies by."""
    mask = keep_mask((1,) + x.shape[1:] if locked else x.shape, p, rng, x.dtype)
    return x * mask, mask


def dropout_backward(dout, mask):
    return dout * mask
