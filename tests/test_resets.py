"""Documents and labels in the kernels: the state reset where a document starts (layers.reset_mask)
and the conditioning term v @ Wv, against numerical gradients in float64 and against the reference
steps, and in the whole model: a document scores as if it were read alone."""

import numpy as np
import pytest

from charrnn import layers as layers_module
from charrnn.layers import (
    gru_seq_backward,
    gru_seq_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_seq_backward,
    lstm_seq_forward,
    lstm_step_backward,
    lstm_step_forward,
    reset_mask,
    rnn_seq_backward,
    rnn_seq_forward,
    rnn_step_backward,
    rnn_step_forward,
    softmax_cross_entropy,
)
from charrnn.model import condition, forward, backward, init_params, zero_state
from charrnn.parallel import loss_and_grads as sharded_loss_and_grads
from charrnn.model import loss_and_grads

from gradcheck import numerical_grad, rel_error

N, T, D, H, E = 3, 5, 4, 3, 2
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SEQ = {"rnn": (rnn_seq_forward, rnn_seq_backward), "lstm": (lstm_seq_forward, lstm_seq_backward),
       "gru": (gru_seq_forward, gru_seq_backward)}


def _step_inputs(cell, rng):
    G = GATES[cell] * H
    inputs = {"x": rng.standard_normal((N, D)), "h_prev": rng.standard_normal((N, H))}
    if cell == "lstm":
        inputs["c_prev"] = rng.standard_normal((N, H))
    inputs.update(Wx=rng.standard_normal((D, G)) * 0.5, Wh=rng.standard_normal((H, G)) * 0.5,
                  b=rng.standard_normal(G))
    if cell == "gru":
        inputs["bhn"] = rng.standard_normal(H)
    inputs.update(v=rng.standard_normal((N, E)), Wv=rng.standard_normal((E, G)) * 0.5)
    return inputs


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_conditioned_steps_match_numerical(cell, rng):
    """h = cell(Wx x + Wh h + b + Wv v): every gradient, dv and dWv included."""
    step = {"rnn": rnn_step_forward, "lstm": lstm_step_forward, "gru": gru_step_forward}[cell]
    inputs = _step_inputs(cell, rng)
    out = step(**inputs)
    dh = rng.standard_normal((N, H))
    if cell == "lstm":
        dc = rng.standard_normal((N, H))
        grads = lstm_step_backward(dh, dc, out[2])
        names = ["x", "h_prev", "c_prev", "Wx", "Wh", "b", "v", "Wv"]

        def f(**kw):
            h, c, _ = step(**kw)
            return np.concatenate([h, c])
        dout = np.concatenate([dh, dc])
    else:
        back = rnn_step_backward if cell == "rnn" else gru_step_backward
        grads = back(dh, out[1])
        names = list(inputs)

        def f(**kw):
            return step(**kw)[0]
        dout = dh
    assert len(grads) == len(names)
    for name, analytic in zip(names, grads):
        numeric = numerical_grad(lambda v: f(**{**inputs, name: v}), inputs[name], dout)
        assert rel_error(analytic, numeric) < 1e-7, name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_conditioning_is_a_bias_for_one_label(cell, rng):
    """With v a one-hot, v @ Wv adds one row of Wv: the same step as b + that row."""
    step = {"rnn": rnn_step_forward, "lstm": lstm_step_forward, "gru": gru_step_forward}[cell]
    inputs = _step_inputs(cell, rng)
    inputs["v"] = np.zeros((N, E))
    inputs["v"][:, 1] = 1.0
    conditioned = step(**inputs)[0]
    plain = {k: v for k, v in inputs.items() if k not in ("v", "Wv")}
    plain["b"] = inputs["b"] + inputs["Wv"][1]
    np.testing.assert_allclose(conditioned, step(**plain)[0], rtol=1e-12)


def _starts(rng):
    """(T, N) where documents start: at t = 0 in stream 0, mid-chunk in others, none in one."""
    starts = np.zeros((T, N), dtype=bool)
    starts[0, 0] = starts[2, 0] = starts[3, 1] = True
    return starts


def _seq_inputs(cell, rng):
    G = GATES[cell] * H
    inputs = {"xp": rng.standard_normal((T, G, N)), "h0": rng.standard_normal((H, N))}
    if cell == "lstm":
        inputs["c0"] = rng.standard_normal((H, N))
    inputs["Wh"] = rng.standard_normal((H, G)) * 0.5
    if cell == "gru":
        inputs["bhn"] = rng.standard_normal(H)
    return inputs


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reset_sequences_match_numerical(cell, chunked, rng, monkeypatch):
    if chunked:   # the masked weight gradient summed a step at a time
        monkeypatch.setattr(layers_module, "ROWS_CHUNK_FLOATS", 1)
    fwd, bwd = SEQ[cell]
    keep, cuts = reset_mask(_starts(rng), np.float64)
    inputs = _seq_inputs(cell, rng)
    hs, _, cache = fwd(**inputs, keep=keep, cuts=cuts)
    dhs = rng.standard_normal(hs.shape)
    out = bwd(dhs, cache)
    analytic = {"xp": out[0], "h0": out[1][0], "Wh": out[2]}
    if cell == "lstm":
        analytic["c0"] = out[1][1]
    if cell == "gru":
        analytic["bhn"] = out[3]
    for name, value in inputs.items():
        numeric = numerical_grad(lambda v: fwd(**{**inputs, name: v}, keep=keep, cuts=cuts)[0],
                                 value, dhs)
        assert rel_error(analytic[name], numeric) < 1e-7, name
    # stream 0 starts a document at t = 0: nothing of h0 reaches the outputs
    assert np.all(out[1][0][:, 0] == 0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reset_sequences_match_steps_from_zero(cell, rng):
    """A step where a document starts reads the start state, zeros, whatever came before."""
    fwd, _ = SEQ[cell]
    starts = _starts(rng)
    keep, cuts = reset_mask(starts, np.float64)
    inputs = _seq_inputs(cell, rng)
    hs, _, _ = fwd(**inputs, keep=keep, cuts=cuts)
    G = GATES[cell] * H
    for n in range(N):
        state = [inputs["h0"][:, n:n + 1].T] + ([inputs["c0"][:, n:n + 1].T] if cell == "lstm"
                                                else [])
        for t in range(T):
            if starts[t, n]:
                state = [np.zeros_like(s) for s in state]
            x = inputs["xp"][t, :, n][None]        # xp as the input, through an identity Wx
            args = dict(x=x, Wx=np.eye(G), Wh=inputs["Wh"], b=np.zeros(G))
            if cell == "lstm":
                h, c, _ = lstm_step_forward(h_prev=state[0], c_prev=state[1], **args)
                state = [h, c]
            elif cell == "gru":
                h, _ = gru_step_forward(h_prev=state[0], bhn=inputs["bhn"], **args)
                state = [h]
            else:
                h, _ = rnn_step_forward(h_prev=state[0], **args)
                state = [h]
            np.testing.assert_allclose(hs[t, :, n], h[0], rtol=1e-12, atol=1e-14)


def test_reset_mask_is_none_without_a_start():
    assert reset_mask(np.zeros((T, N), dtype=bool)) == (None, None)
    keep, cuts = reset_mask(_starts(None))
    assert keep.dtype == np.float32 and cuts == [True, False, True, True, False]


END, V, K = 0, 5, 3


def _documents(rng):
    """Two streams of documents: END d END d ..., cut anywhere; labels per input position."""
    ids = rng.integers(1, V, (2, 9))
    ids[0, [0, 4, 6]] = END
    ids[1, [3]] = END
    labels = rng.integers(0, K, (2, 9))
    return ids, labels


def _model(cell, rng, dtype=np.float64):
    params = init_params(cell, V, 4, 2, rng, dtype=dtype, num_labels=K)
    for p in params.values():   # every parameter non-zero, the labels' vectors included
        p += (rng.standard_normal(p.shape) * 0.3).astype(dtype)
    return params


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_with_documents_and_labels_matches_numerical(cell, rng):
    params = _model(cell, rng)
    ids, labels = _documents(rng)
    targets = rng.integers(0, V, ids.shape)
    state = [tuple(rng.standard_normal(s.shape) for s in layer)
             for layer in zero_state(cell, 2, 2, 4, np.float64)]

    def objective(p):
        logits, _, _ = forward(p, cell, ids, state, end=END, labels=labels)
        return np.array(softmax_cross_entropy(logits, targets.T.reshape(-1))[0] / 2)

    logits, _, cache = forward(params, cell, ids, state, end=END, labels=labels)
    _, _, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 0.5)
    grads, _ = backward(params, cell, dlogits, cache)
    for name, value in params.items():
        numeric = numerical_grad(lambda v: objective({**params, name: v}), value, np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_document_scores_as_if_read_alone(cell, rng):
    """Logits inside a document do not depend on what came before it in the stream (its
    start state is zeros) and, with labels, equal those of condition(params, its label)."""
    params = _model(cell, rng)
    ids, labels = _documents(rng)
    labels[0, 4:] = 2                         # the document at 4 .. 5 is label 2's
    state = [tuple(rng.standard_normal(s.shape) for s in layer)
             for layer in zero_state(cell, 2, 2, 4, np.float64)]
    logits, _, _ = forward(params, cell, ids, state, end=END, labels=labels)
    alone, _, _ = forward(condition(params, 2), cell, ids[:1, 4:6],
                          zero_state(cell, 2, 1, 4, np.float64))
    np.testing.assert_allclose(logits.reshape(9, 2, V)[4:6, 0], alone, rtol=1e-10)


def test_condition_folds_a_label_into_the_biases(rng):
    params = _model("lstm", rng)
    folded = condition(params, 1)
    assert "Wv" not in folded and "Wv" in params
    np.testing.assert_array_equal(folded["b"], params["b"] + params["Wv"][:, 1])
    plain = {k: v for k, v in params.items() if k != "Wv"}
    assert condition(plain, 0) is plain


def test_shards_with_documents_and_labels_add_up(rng):
    """Two shards of streams give the batch's loss and gradients (the labels cut with them)."""
    from charrnn.parallel import InTurn

    params = {k: v.astype(np.float32) for k, v in _model("gru", rng).items()}
    ids = rng.integers(1, V, (4, 9))
    ids[:, 3] = END
    ids[1, 0] = END
    labels = rng.integers(0, K, ids.shape)
    targets = rng.integers(0, V, ids.shape)
    state = zero_state("gru", 2, 4, 4)
    shards = InTurn()
    shards.count = 2
    loss, grads, new = sharded_loss_and_grads(params, "gru", ids, targets, state, shards=shards,
                                              end=END, labels=labels)
    with pytest.MonkeyPatch.context() as m:   # two shards even for this small model
        m.setattr("charrnn.parallel.MIN_SHARD_FLOATS", 1)
        loss2, grads2, new2 = sharded_loss_and_grads(params, "gru", ids, targets, state,
                                                     shards=shards, end=END, labels=labels)
    one_loss, one_grads, _ = loss_and_grads(params, "gru", ids, targets, state, end=END,
                                            labels=labels)
    assert loss == one_loss
    assert abs(loss2 - one_loss) < 1e-6
    for name in one_grads:
        np.testing.assert_allclose(grads2[name], one_grads[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new2[0][0], new[0][0], rtol=1e-5, atol=1e-6)
