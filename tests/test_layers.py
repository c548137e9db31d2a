"""Every forward/backward pair against centered numerical gradients (float64), and the fast
sequence paths against loops of the plain step functions."""

import numpy as np
import pytest

from charrnn import layers as layers_module
from charrnn.layers import (
    dropout_backward,
    dropout_forward,
    gru_seq_backward,
    gru_seq_forward,
    gru_step_backward,
    gru_step_forward,
    log_softmax,
    lstm_seq_backward,
    lstm_seq_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_seq_backward,
    rnn_seq_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    softmax_cross_entropy,
    sum_outer,
)

from gradcheck import numerical_grad, rel_error

N, T, D, H, V = 2, 3, 3, 4, 5


def _args(rng, gates, **extra):
    args = {"x": rng.standard_normal((N, D)), "h_prev": rng.standard_normal((N, H))}
    args.update(extra)
    args.update({"Wx": rng.standard_normal((D, gates * H)) * 0.5,
                 "Wh": rng.standard_normal((H, gates * H)) * 0.5,
                 "b": rng.standard_normal(gates * H)})
    return args


@pytest.mark.parametrize("name", ["x", "h_prev", "Wx", "Wh", "b"])
def test_rnn_step_backward_matches_numerical(name, rng):
    args = _args(rng, 1)
    h, cache = rnn_step_forward(**args)
    dh = rng.standard_normal(h.shape)
    analytic = dict(zip(args, rnn_step_backward(dh, cache)))[name]
    numeric = numerical_grad(lambda v: rnn_step_forward(**{**args, name: v})[0], args[name], dh)
    assert rel_error(analytic, numeric) < 1e-7


@pytest.mark.parametrize("name", ["x", "h_prev", "c_prev", "Wx", "Wh", "b"])
def test_lstm_step_backward_matches_numerical(name, rng):
    args = _args(rng, 4, c_prev=rng.standard_normal((N, H)))
    h, c, cache = lstm_step_forward(**args)
    dh, dc = rng.standard_normal(h.shape), rng.standard_normal(c.shape)
    analytic = dict(zip(args, lstm_step_backward(dh, dc, cache)))[name]

    def f(v):
        h, c, _ = lstm_step_forward(**{**args, name: v})
        return np.concatenate([h, c], axis=1)

    numeric = numerical_grad(f, args[name], np.concatenate([dh, dc], axis=1))
    assert rel_error(analytic, numeric) < 1e-7


@pytest.mark.parametrize("name", ["x", "h_prev", "Wx", "Wh", "b", "bhn"])
def test_gru_step_backward_matches_numerical(name, rng):
    args = {**_args(rng, 3), "bhn": rng.standard_normal(H)}
    h, cache = gru_step_forward(**args)
    dh = rng.standard_normal(h.shape)
    analytic = dict(zip(args, gru_step_backward(dh, cache)))[name]
    numeric = numerical_grad(lambda v: gru_step_forward(**{**args, name: v})[0], args[name], dh)
    assert rel_error(analytic, numeric) < 1e-7


def test_lstm_step_forward_follows_the_equations(rng):
    args = _args(rng, 4, c_prev=rng.standard_normal((N, H)))
    h, c, _ = lstm_step_forward(**args)
    a = args["x"] @ args["Wx"] + args["h_prev"] @ args["Wh"] + args["b"]
    i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    logistic = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731 - the textbook form
    c_ref = logistic(f) * args["c_prev"] + logistic(i) * np.tanh(g)
    np.testing.assert_allclose(c, c_ref, rtol=1e-12)
    np.testing.assert_allclose(h, logistic(o) * np.tanh(c_ref), rtol=1e-12)


# ----------------------------------------------------------------- sequences vs. step loops


def _run_steps(cell, xp, state, Wh, bhn=None):
    """Reference: the step functions in a loop, with Wx = identity (xp already projected)."""
    G = xp.shape[2]
    eye, zero = np.eye(G), np.zeros(G)
    hs, caches = [], []
    h = state[0]
    c = state[1] if cell == "lstm" else None
    for t in range(xp.shape[0]):
        if cell == "rnn":
            h, cache = rnn_step_forward(xp[t], h, eye, Wh, zero)
        elif cell == "lstm":
            h, c, cache = lstm_step_forward(xp[t], h, c, eye, Wh, zero)
        else:
            h, cache = gru_step_forward(xp[t], h, eye, Wh, zero, bhn)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs), caches


def _steps_backward(cell, dhs, caches):
    dxp = np.zeros(dhs.shape[:2] + (caches[0][0].shape[1],))
    dh = np.zeros_like(dhs[0])
    dc = np.zeros_like(dhs[0])
    dWh, dbhn = 0.0, 0.0
    for t in reversed(range(dhs.shape[0])):
        if cell == "rnn":
            dxp[t], dh, _, g, _ = rnn_step_backward(dhs[t] + dh, caches[t])
        elif cell == "lstm":
            dxp[t], dh, dc, _, g, _ = lstm_step_backward(dhs[t] + dh, dc, caches[t])
        else:
            dxp[t], dh, _, g, _, gb = gru_step_backward(dhs[t] + dh, caches[t])
            dbhn = dbhn + gb
        dWh = dWh + g
    return dxp, dh, dc, dWh, dbhn


SEQ = {"rnn": (rnn_seq_forward, rnn_seq_backward, 1), "lstm": (lstm_seq_forward, lstm_seq_backward, 4),
       "gru": (gru_seq_forward, gru_seq_backward, 3)}


def _feature_major(a):
    """(T, N, X) -> (T, X, N), or (N, X) -> (X, N): the fast paths' layout."""
    return np.ascontiguousarray(np.swapaxes(a, -1, -2))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fast_sequence_matches_step_loop(cell, rng):
    fwd, bwd, gates = SEQ[cell]
    xp = rng.standard_normal((T, N, gates * H))            # batch-major, for the steps
    state = tuple(rng.standard_normal((N, H)) for _ in range(2 if cell == "lstm" else 1))
    Wh = rng.standard_normal((H, gates * H)) * 0.5
    extra = (rng.standard_normal(H),) if cell == "gru" else ()
    hs, last, cache = fwd(_feature_major(xp), *map(_feature_major, state), Wh, *extra)
    hs_ref, caches = _run_steps(cell, xp, state, Wh, *extra)
    np.testing.assert_allclose(hs, _feature_major(hs_ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last[0], hs_ref[-1].T, rtol=1e-12)
    dhs = rng.standard_normal(hs_ref.shape)
    out = bwd(_feature_major(dhs), cache)
    dxp_ref, dh_ref, dc_ref, dWh_ref, dbhn_ref = _steps_backward(cell, dhs, caches)
    # dxp comes back feature-major, (T, G, N)
    np.testing.assert_allclose(out[0], _feature_major(dxp_ref), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[1][0], dh_ref.T, rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(out[1][1], dc_ref.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[2], dWh_ref, rtol=1e-10, atol=1e-12)
    if cell == "gru":
        np.testing.assert_allclose(out[3], dbhn_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fast_sequence_backward_matches_numerical(cell, rng):
    fwd, bwd, gates = SEQ[cell]
    inputs = {"xp": rng.standard_normal((T, gates * H, N)), "h0": rng.standard_normal((H, N))}
    if cell == "lstm":
        inputs["c0"] = rng.standard_normal((H, N))
    inputs["Wh"] = rng.standard_normal((H, gates * H)) * 0.5
    if cell == "gru":
        inputs["bhn"] = rng.standard_normal(H)
    hs, _, cache = fwd(**inputs)
    dhs = rng.standard_normal(hs.shape)
    out = bwd(dhs, cache)
    analytic = {"xp": out[0], "h0": out[1][0], "Wh": out[2]}
    if cell == "lstm":
        analytic["c0"] = out[1][1]
    if cell == "gru":
        analytic["bhn"] = out[3]
    for name, value in inputs.items():
        numeric = numerical_grad(lambda v: fwd(**{**inputs, name: v})[0], value, dhs)
        assert rel_error(analytic[name], numeric) < 1e-7, name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fast_sequence_keeps_float32_and_leaves_inputs_alone(cell, rng):
    fwd, bwd, gates = SEQ[cell]
    xp = rng.standard_normal((T, gates * H, N)).astype(np.float32)
    state = tuple(rng.standard_normal((H, N)).astype(np.float32)
                  for _ in range(2 if cell == "lstm" else 1))
    Wh = rng.standard_normal((H, gates * H)).astype(np.float32)
    extra = (np.zeros(H, np.float32),) if cell == "gru" else ()
    before = [a.copy() for a in (xp, *state, Wh)]
    hs, last, cache = fwd(xp, *state, Wh, *extra)
    dhs = rng.standard_normal(hs.shape).astype(np.float32)
    dhs_before = dhs.copy()
    out = bwd(dhs, cache)
    assert hs.dtype == np.float32 and all(s.dtype == np.float32 for s in last)
    assert out[0].dtype == np.float32 and out[2].dtype == np.float32
    for a, b in zip((xp, *state, Wh), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dhs, dhs_before)


# ----------------------------------------------------------------- loss, softmax, dropout


@pytest.mark.parametrize("weight", [0.5, 1.0])
@pytest.mark.parametrize("padded", [True, False])   # -1 targets (eval padding), or none (training)
def test_softmax_cross_entropy_gradient_matches_numerical(padded, weight, rng):
    logits = rng.standard_normal((6, V))
    targets = np.array([0, 4, 2, -1 if padded else 2, 1, 3])
    total, count, dlogits = softmax_cross_entropy(logits, targets, weight=weight)
    assert count == (5 if padded else 6)
    numeric = numerical_grad(
        lambda v: np.array(softmax_cross_entropy(v, targets, weight)[0] * weight),
        logits, np.array(1.0))
    assert rel_error(dlogits, numeric) < 1e-7
    expected = -sum(log_softmax(logits)[k, t] for k, t in enumerate(targets) if t >= 0)
    assert total == pytest.approx(expected, rel=1e-12)
    assert dlogits[3].any() != padded


def test_log_softmax_is_stable_and_normalised(rng):
    logits = rng.standard_normal((3, V)).astype(np.float32) * 1e4
    logp = log_softmax(logits)
    assert np.isfinite(logp).all() and logp.dtype == np.float32
    np.testing.assert_allclose(np.exp(logp.astype(np.float64)).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(log_softmax(logits + 1e3), logp, atol=1e-3)


def test_sigmoid_does_not_overflow():
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=np.float32)
    s = sigmoid(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


def test_dropout_backward_matches_numerical_and_keeps_expectation(rng):
    x = rng.standard_normal((4, 6))
    out, mask = dropout_forward(x, 0.5, np.random.default_rng(0))
    dout = rng.standard_normal(out.shape)
    numeric = numerical_grad(lambda v: dropout_forward(v, 0.5, np.random.default_rng(0))[0], x, dout)
    assert rel_error(dropout_backward(dout, mask), numeric) < 1e-7
    big = np.ones((200, 500), np.float32)
    dropped, _ = dropout_forward(big, 0.3, rng)
    assert dropped.dtype == np.float32
    assert abs(dropped.mean() - 1.0) < 0.02
    assert abs((dropped == 0).mean() - 0.3) < 0.01


@pytest.mark.parametrize("chunk_floats", [1, 40, 1 << 21])   # one step, a few steps, all at once
def test_sum_outer_sums_every_step_and_stream(chunk_floats, rng, monkeypatch):
    monkeypatch.setattr(layers_module, "ROWS_CHUNK_FLOATS", chunk_floats)
    a, b = rng.standard_normal((7, 3, 4)), rng.standard_normal((7, 5, 4))
    expected = sum(a[t] @ b[t].T for t in range(7))
    np.testing.assert_allclose(sum_outer(a, b), expected, rtol=1e-12)


def test_lstm_backward_leaves_the_cache_unless_told_to_overwrite_it(rng):
    xp = rng.standard_normal((T, 4 * H, N))
    h0, c0 = rng.standard_normal((H, N)), rng.standard_normal((H, N))
    Wh = rng.standard_normal((H, 4 * H)) * 0.5
    hs, _, cache = lstm_seq_forward(xp, h0, c0, Wh)
    before = [np.array(c, copy=True) for c in cache]
    dhs = rng.standard_normal(hs.shape)
    pure = lstm_seq_backward(dhs, cache)
    assert all(np.array_equal(b, c) for b, c in zip(before, cache))   # untouched
    again = lstm_seq_backward(dhs, cache, overwrite_cache=True)        # the same gradients
    np.testing.assert_array_equal(again[0], pure[0])
    np.testing.assert_array_equal(again[2], pure[2])
    assert again[0] is cache[0]                                        # over the activations


def test_lstm_forward_leaves_xp_unless_told_to_overwrite_it(rng):
    xp = rng.standard_normal((T, 4 * H, N))
    kept = xp.copy()
    args = (rng.standard_normal((H, N)), rng.standard_normal((H, N)),
            rng.standard_normal((H, 4 * H)) * 0.5)
    hs, _, _ = lstm_seq_forward(xp, *args)
    np.testing.assert_array_equal(xp, kept)
    hs_over, _, cache = lstm_seq_forward(xp, *args, overwrite_xp=True)
    np.testing.assert_array_equal(hs_over, hs)
    assert cache[0] is xp
