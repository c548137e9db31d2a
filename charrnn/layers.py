"""Forward/backward pairs for char-level recurrent models, in NumPy.

Shapes, used in every docstring below:
    N batch, T time steps, V vocabulary, D input width, H hidden width,
    G gate width: H for rnn, 3H for gru, 4H for lstm.

Two kinds of function live here:
- `*_step_forward` / `*_step_backward`: one time step, written plainly from the equations. They are
  the reference the tests check against numerical gradients, and the fast paths against them.
- `*_seq_forward` / `*_seq_backward`: the whole chunk of T steps, time-major, working on an input
  projection `xp = x @ Wx + b` computed for all steps at once by the caller. They write into
  preallocated (T, N, ...) buffers with in-place ufuncs, so the per-step loop allocates nothing but
  what the matmul needs, and they leave the weight gradient dWh to one matmul over all steps.

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


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One vanilla-RNN step. x: (N, D), h_prev: (N, H) -> h: (N, H)."""
    # h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)
    h = np.tanh(x @ Wx + h_prev @ Wh + b)
    return h, (x, h_prev, Wx, Wh, h)


def rnn_step_backward(dh, cache):
    """Returns dx, dh_prev, dWx, dWh, db (forward-argument order)."""
    x, h_prev, Wx, Wh, h = cache
    da = dh * (1.0 - h * h)  # tanh' = 1 - tanh^2, from the saved output
    return da @ Wx.T, da @ Wh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0)


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step. x: (N, D), h_prev, c_prev: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,).

    Returns h, c: (N, H) and the cache.
    """
    H = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b  # (N, 4H) pre-activations, blocks i f g o
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H])
    # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return h, c, (x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc)


def lstm_step_backward(dh, dc, cache):
    """dh, dc: (N, H) upstream. Returns dx, dh_prev, dc_prev, dWx, dWh, db."""
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    dc = dc + dh * o * (1.0 - tc * tc)
    da = np.concatenate([
        dc * g * i * (1.0 - i),      # through i = sig(a_i)
        dc * c_prev * f * (1.0 - f),  # through f
        dc * i * (1.0 - g * g),      # through g = tanh(a_g)
        dh * tc * o * (1.0 - o),     # through o
    ], axis=1)
    return (da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, h_prev.T @ da, da.sum(axis=0))


def gru_step_forward(x, h_prev, Wx, Wh, b, bhn):
    """One GRU step. x: (N, D), h_prev: (N, H), Wx: (D, 3H), Wh: (H, 3H), b: (3H,), bhn: (H,)."""
    H = h_prev.shape[1]
    ax = x @ Wx + b          # (N, 3H) input part, blocks r z n
    ah = h_prev @ Wh         # (N, 3H) recurrent part
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    hn = ah[:, 2 * H:] + bhn  # r gates the recurrent term after its matmul (PyTorch's form)
    n = np.tanh(ax[:, 2 * H:] + r * hn)
    # h_t = (1 - z) * n + z * h_{t-1}
    h = (1.0 - z) * n + z * h_prev
    return h, (x, h_prev, Wx, Wh, r, z, n, hn)


def gru_step_backward(dh, cache):
    """Returns dx, dh_prev, dWx, dWh, db, dbhn."""
    x, h_prev, Wx, Wh, r, z, n, hn = cache
    dn = dh * (1.0 - z) * (1.0 - n * n)           # d pre-activation of n
    dz = dh * (h_prev - n) * z * (1.0 - z)        # d pre-activation of z
    dr = dn * hn * r * (1.0 - r)                  # d pre-activation of r
    dax = np.concatenate([dr, dz, dn], axis=1)    # (N, 3H) grad of x @ Wx + b
    dah = np.concatenate([dr, dz, dn * r], axis=1)  # (N, 3H) grad of h_prev @ Wh
    dh_prev = dh * z + dah @ Wh.T
    return dax @ Wx.T, dh_prev, x.T @ dax, h_prev.T @ dah, dax.sum(axis=0), (dn * r).sum(axis=0)


# --------------------------------------------------------------------------- fast sequences


def _sigmoid_tanh_affine(cell, H, dtype):
    """Per-column (scale, shift) so that one tanh serves every gate of the cell:
    sig(a) = 0.5 * tanh(0.5 * a) + 0.5 on sigmoid columns, tanh(a) on tanh columns."""
    kinds = {"lstm": "sstS", "gru": "ss"}[cell]  # s: sigmoid block, t: tanh block; S: sigmoid
    scale = np.concatenate([np.full(H, 1.0 if k == "t" else 0.5, dtype) for k in kinds])
    shift = np.concatenate([np.full(H, 0.0 if k == "t" else 0.5, dtype) for k in kinds])
    return scale, shift


def rnn_seq_forward(xp, h0, Wh):
    """Vanilla RNN over T steps. xp: (T, N, H) input projection with bias, h0: (N, H), Wh: (H, H).

    Returns hs: (T, N, H), the final state (h_T,) and the cache.
    """
    T, N, H = xp.shape
    hs = np.empty((T + 1, N, H), dtype=xp.dtype)  # hs[t + 1] = h_t; hs[0] = h0
    hs[0] = h0
    for t in range(T):
        h = hs[t + 1]
        np.matmul(hs[t], Wh, out=h)
        h += xp[t]
        np.tanh(h, out=h)
    return hs[1:], (hs[T].copy(),), (hs, Wh)


def rnn_seq_backward(dhs, cache):
    """dhs: (T, N, H) upstream grads of hs. Returns dxp: (T, N, H), (dh0,), dWh."""
    hs, Wh = cache
    T, N, H = dhs.shape
    dxp = np.empty_like(dhs)
    dh = np.zeros((N, H), dtype=dhs.dtype)  # carried dh_next
    for t in reversed(range(T)):
        dh += dhs[t]
        da = dxp[t]
        # da = dh * (1 - h_t^2)
        np.multiply(hs[t + 1], hs[t + 1], out=da)
        np.subtract(1.0, da, out=da)
        da *= dh
        np.matmul(da, Wh.T, out=dh)
    # one matmul over all steps instead of T small ones: dWh = sum_t h_{t-1}^T da_t
    dWh = hs[:-1].reshape(T * N, H).T @ dxp.reshape(T * N, H)
    return dxp, (dh,), dWh


def lstm_seq_forward(xp, h0, c0, Wh):
    """LSTM over T steps. xp: (T, N, 4H) input projection with bias, h0, c0: (N, H), Wh: (H, 4H).

    Returns hs: (T, N, H), the final state (h_T, c_T) and the cache.
    """
    T, N, G = xp.shape
    H = G // 4
    dtype = xp.dtype
    acts = np.empty_like(xp)                      # (T, N, 4H) gate activations i f g o
    hs = np.empty((T + 1, N, H), dtype=dtype)     # hs[t + 1] = h_t
    cs = np.empty((T + 1, N, H), dtype=dtype)     # cs[t + 1] = c_t
    tcs = np.empty((T, N, H), dtype=dtype)        # tanh(c_t)
    hs[0], cs[0] = h0, c0
    tmp = np.empty((N, H), dtype=dtype)
    scale, shift = _sigmoid_tanh_affine("lstm", H, dtype)
    for t in range(T):
        a = acts[t]
        np.matmul(hs[t], Wh, out=a)
        a += xp[t]
        # all four gates with one tanh: sig(a) = 0.5 * tanh(0.5 * a) + 0.5
        a *= scale
        np.tanh(a, out=a)
        a *= scale
        a += shift
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
        c = cs[t + 1]
        np.multiply(f, cs[t], out=c)
        np.multiply(i, g, out=tmp)
        c += tmp
        np.tanh(c, out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t + 1])
    return hs[1:], (hs[T].copy(), cs[T].copy()), (acts, hs, cs, tcs, Wh)


def lstm_seq_backward(dhs, cache):
    """dhs: (T, N, H). Returns dxp: (T, N, 4H), (dh0, dc0), dWh."""
    acts, hs, cs, tcs, Wh = cache
    T, N, H = dhs.shape
    dtype = dhs.dtype
    dxp = np.empty_like(acts)
    dh = np.zeros((N, H), dtype=dtype)   # carried dh_next
    dc = np.zeros((N, H), dtype=dtype)   # carried dc_next
    tmp = np.empty((N, H), dtype=dtype)
    deriv = np.empty((N, 4 * H), dtype=dtype)
    # activation derivative from the output y: sig' = y (1 - y), tanh' = 1 - y^2,
    # both as alpha + y * (beta - y): sigmoid columns alpha 0, beta 1; tanh columns alpha 1, beta 0
    beta = np.concatenate([np.ones(2 * H, dtype), np.zeros(H, dtype), np.ones(H, dtype)])
    alpha = 1.0 - beta
    for t in reversed(range(T)):
        a = acts[t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        da = dxp[t]
        di, df, dg, do = da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:]
        dh += dhs[t]
        np.multiply(dh, tcs[t], out=do)
        # dc_t += dh * o * (1 - tanh(c_t)^2)
        np.multiply(tcs[t], tcs[t], out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        np.multiply(dc, g, out=di)
        np.multiply(dc, i, out=dg)
        np.multiply(dc, cs[t], out=df)
        dc *= f                      # dc_{t-1} = dc_t * f
        np.subtract(beta, a, out=deriv)
        deriv *= a
        deriv += alpha
        da *= deriv
        np.matmul(da, Wh.T, out=dh)  # dh_{t-1}
    dWh = hs[:-1].reshape(T * N, H).T @ dxp.reshape(T * N, 4 * H)
    return dxp, (dh, dc), dWh


def gru_seq_forward(xp, h0, Wh, bhn):
    """GRU over T steps. xp: (T, N, 3H) input projection with bias b, h0: (N, H), Wh: (H, 3H),
    bhn: (H,). Returns hs: (T, N, H), the final state (h_T,) and the cache."""
    T, N, G = xp.shape
    H = G // 3
    dtype = xp.dtype
    rz = np.empty((T, N, 2 * H), dtype=dtype)   # gates r, z
    ns = np.empty((T, N, H), dtype=dtype)       # candidate n
    hns = np.empty((T, N, H), dtype=dtype)      # h_{t-1} @ Wh_n + bhn, needed for dr
    hs = np.empty((T + 1, N, H), dtype=dtype)
    hs[0] = h0
    ah = np.empty((N, 3 * H), dtype=dtype)
    for t in range(T):
        np.matmul(hs[t], Wh, out=ah)
        g = rz[t]
        np.add(xp[t, :, :2 * H], ah[:, :2 * H], out=g)
        g *= 0.5                 # sig(a) = 0.5 * tanh(0.5 * a) + 0.5
        np.tanh(g, out=g)
        g *= 0.5
        g += 0.5
        r, z = g[:, :H], g[:, H:]
        np.add(ah[:, 2 * H:], bhn, out=hns[t])
        n = ns[t]
        np.multiply(r, hns[t], out=n)
        n += xp[t, :, 2 * H:]
        np.tanh(n, out=n)
        # h_t = n + z * (h_{t-1} - n)
        h = hs[t + 1]
        np.subtract(hs[t], n, out=h)
        h *= z
        h += n
    return hs[1:], (hs[T].copy(),), (rz, ns, hns, hs, Wh)


def gru_seq_backward(dhs, cache):
    """dhs: (T, N, H). Returns dxp: (T, N, 3H), (dh0,), dWh, dbhn."""
    rz, ns, hns, hs, Wh = cache
    T, N, H = dhs.shape
    dtype = dhs.dtype
    dxp = np.empty((T, N, 3 * H), dtype=dtype)
    dah = np.empty((T, N, 3 * H), dtype=dtype)  # grads of h_{t-1} @ Wh (+ bhn for the n block)
    dh = np.zeros((N, H), dtype=dtype)
    tmp = np.empty((N, H), dtype=dtype)
    back = np.empty((N, H), dtype=dtype)
    for t in reversed(range(T)):
        r, z = rz[t, :, :H], rz[t, :, H:]
        n, h_prev = ns[t], hs[t]
        dr, dz, dn = dxp[t, :, :H], dxp[t, :, H:2 * H], dxp[t, :, 2 * H:]
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
        dah[t, :, :2 * H] = dxp[t, :, :2 * H]
        np.multiply(dn, r, out=dah[t, :, 2 * H:])
        # dh_{t-1} = dh * z + dah_t @ Wh^T
        np.matmul(dah[t], Wh.T, out=back)
        dh *= z
        dh += back
    dWh = hs[:-1].reshape(T * N, H).T @ dah.reshape(T * N, 3 * H)
    dbhn = dah[:, :, 2 * H:].sum(axis=(0, 1))
    return dxp, (dh,), dWh, dbhn


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
    picked = logp[rows, np.where(counted, targets, 0)]
    total = float(-picked[counted].sum(dtype=np.float64))
    dlogits = np.exp(logp)
    dlogits[rows[counted], targets[counted]] -= 1.0
    dlogits[~counted] = 0.0
    dlogits *= weight
    return total, int(counted.sum()), dlogits


def dropout_forward(x, p, rng):
    """Inverted dropout: zero each unit with probability p, scale the rest by 1 / (1 - p).
    Returns out and the mask (already scaled), which backward multiplies by."""
    keep = rng.random(x.shape, dtype=np.float32) >= p
    mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dout, mask):
    return dout * mask
