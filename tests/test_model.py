"""The whole model over one BPTT chunk with a carried hidden state, against numerical gradients."""

import numpy as np
import pytest

from charrnn import layers as layers_module
from charrnn.layers import softmax_cross_entropy
from charrnn.model import (
    apply_masks,
    backward,
    clip_grads,
    draw_masks,
    forward,
    grow_vocab,
    init_params,
    loss_and_grads,
    num_params,
    param_shapes,
    zero_state,
)

from charrnn.data import Vocab

from gradcheck import numerical_grad, rel_error

N, T = 2, 3


def _setup(cell, layers, V, H, rng):
    params = init_params(cell, V, H, layers, rng, dtype=np.float64)
    for p in params.values():  # non-zero biases so that their gradients are exercised
        p += rng.standard_normal(p.shape) * 0.3
    state = [tuple(rng.standard_normal(x.shape) for x in s) for s in zero_state(cell, layers, N, H)]
    inputs = rng.integers(0, V, (N, T))
    targets = rng.integers(0, V, (N, T))
    return params, state, inputs, targets


def _objective(params, cell, state, inputs, targets):
    """The training objective: loss summed over T, averaged over N."""
    logits, _, _ = forward(params, cell, inputs, state)
    return np.array(softmax_cross_entropy(logits, targets.T.reshape(-1))[0] / N)


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("V, H", [(4, 5), (7, 4)], ids=["table", "dense"])  # V <= H or not
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_gradients_match_numerical(cell, layers, V, H, chunked, rng, monkeypatch):
    if chunked:   # weight gradients summed one step at a time (sum_outer's chunks)
        monkeypatch.setattr(layers_module, "ROWS_CHUNK_FLOATS", 1)
    params, state, inputs, targets = _setup(cell, layers, V, H, rng)
    logits, _, cache = forward(params, cell, inputs, state)
    _, _, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 1.0 / N)
    grads, dstate = backward(params, cell, dlogits, cache)
    for name, value in params.items():
        numeric = numerical_grad(
            lambda v: _objective({**params, name: v}, cell, state, inputs, targets),
            value, np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name
    for l, layer_state in enumerate(state):
        for k, s in enumerate(layer_state):
            def f(v):
                new = [list(x) for x in state]
                new[l][k] = v
                return _objective(params, cell, [tuple(x) for x in new], inputs, targets)
            assert rel_error(dstate[l][k], numerical_grad(f, s, np.array(1.0))) < 1e-6, (l, k)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dropout_path_gradients_match_numerical(cell, rng):
    params, state, inputs, targets = _setup(cell, 2, 5, 4, rng)

    def objective(p):
        logits, _, _ = forward(p, cell, inputs, state, dropout=0.4, rng=np.random.default_rng(7))
        return np.array(softmax_cross_entropy(logits, targets.T.reshape(-1))[0] / N)

    logits, _, cache = forward(params, cell, inputs, state, dropout=0.4, rng=np.random.default_rng(7))
    _, _, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 1.0 / N)
    grads, _ = backward(params, cell, dlogits, cache)
    for name in ("Wx", "Wh", "embed"):
        numeric = numerical_grad(lambda v: objective({**params, name: v}), params[name], np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name


# AWD-LSTM's regularisers on at once: DropConnect on Wh, whole embedding rows, locked dropout
AWD = {"dropout": 0.3, "weight_drop": 0.4, "embed_drop": 0.4, "variational": True}
AWD_SEED = 0     # its embed masks hold a dropped and a kept row for every V and cell below


@pytest.mark.parametrize("V, H", [(4, 5), (7, 4)], ids=["table", "dense"])  # V <= H or not
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_regularised_loss_and_grads_match_numerical(cell, V, H, rng):
    """loss_and_grads with weight_drop, embed_drop and variational dropout on: the masks are
    fixed by the same seeded generator at every evaluation, so the objective is a smooth function
    of the parameters, and its gradient (through Wh * M and embed * m) is checked numerically."""
    import charrnn.model as model

    params, state, inputs, targets = _setup(cell, 2, V, H, rng)
    assert model._use_table(params, N * T) == (V <= H)
    masks = draw_masks(params, AWD["weight_drop"], AWD["embed_drop"],
                       np.random.default_rng(AWD_SEED))
    # the masks do something here: some recurrent weights dropped, and the inputs hold a
    # character whose row is dropped and one whose row is kept
    assert (masks["Wh"] == 0).any() and (masks["Wh"] != 0).any()
    inputs[0, 0], inputs[1, 1] = np.flatnonzero(masks["embed"] == 0)[0], np.flatnonzero(masks["embed"])[0]

    def objective(p):    # the training objective: the loss summed over T, averaged over N
        loss = loss_and_grads(p, cell, inputs, targets, state, rng=np.random.default_rng(AWD_SEED),
                              **AWD)[0]
        return np.array(loss * T)

    _, grads, _ = loss_and_grads(params, cell, inputs, targets, state,
                                 rng=np.random.default_rng(AWD_SEED), **AWD)
    for name, value in params.items():
        numeric = numerical_grad(lambda v: objective({**params, name: v}), value, np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name
    # the dropped weights and rows get no gradient
    assert (grads["Wh"][masks["Wh"] == 0] == 0).all()
    assert (grads["embed"][masks["embed"] == 0] == 0).all()


def test_regularisers_off_draw_nothing_and_change_nothing(rng):
    """At their defaults (0, 0, False) the levers take no draws from rng: the same bits as a
    call without them."""
    params, state, inputs, targets = _setup("lstm", 2, 5, 4, rng)
    assert draw_masks(params, 0.0, 0.0, rng) == {} and apply_masks(params, {}) is params
    gens = np.random.default_rng(3), np.random.default_rng(3)
    plain = loss_and_grads(params, "lstm", inputs, targets, state, 0.3, gens[0])
    off = loss_and_grads(params, "lstm", inputs, targets, state, 0.3, gens[1], weight_drop=0.0,
                         embed_drop=0.0, variational=False)
    assert plain[0] == off[0] and gens[0].bit_generator.state == gens[1].bit_generator.state
    for name in params:
        np.testing.assert_array_equal(plain[1][name], off[1][name])


def test_weight_and_embed_masks(rng):
    """One Wh mask (L, H, G) and one embed mask (V,) per chunk, of 0 and 1 / (1 - p); the masked
    embedding has whole rows zeroed (whole characters) and the rest scaled."""
    params = init_params("gru", 9, 4, 2, rng)
    masks = draw_masks(params, 0.25, 0.5, np.random.default_rng(0))
    assert masks["Wh"].shape == (2, 4, 12) and masks["embed"].shape == (9,)
    assert all(m.dtype == np.float32 for m in masks.values())
    assert set(np.unique(masks["Wh"])) == {0.0, np.float32(1 / 0.75)}
    assert set(np.unique(masks["embed"])) == {0.0, np.float32(2.0)}
    used = apply_masks(params, masks)
    dropped = masks["embed"] == 0
    assert (used["embed"][dropped] == 0).all() and (used["embed"][~dropped] != 0).all()
    np.testing.assert_array_equal(used["embed"][~dropped], params["embed"][~dropped] * 2)
    np.testing.assert_array_equal(used["Wh"], params["Wh"] * masks["Wh"])
    assert used["Wx"] is params["Wx"] and not np.shares_memory(used["Wh"], params["Wh"])
    # training only: without rng (evaluation, sampling) there is nothing to draw
    assert draw_masks(params, 0.25, 0.5, None) == {}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_variational_dropout_masks_are_locked_over_time(cell, rng):
    """variational: one (1, H, N) mask per layer for the chunk, the same at every step; without
    it, a fresh mask per step."""
    params, state, inputs, targets = _setup(cell, 2, 5, 4, rng)
    inputs = rng.integers(0, 5, (N, 40))    # enough steps that fresh masks would differ
    _, _, cache = forward(params, cell, inputs, state, dropout=0.5, rng=np.random.default_rng(1),
                          variational=True)
    for x, _, mask in cache[1]:
        assert mask.shape == (1, 4, N)
        assert (mask == 0).any() and (mask != 0).any()
    _, _, fresh = forward(params, cell, inputs, state, dropout=0.5, rng=np.random.default_rng(1))
    mask = fresh[1][0][2]
    assert mask.shape == (40, 4, N) and not (mask == mask[:1]).all()
    x = rng.standard_normal((6, 3, 2))
    out, locked = layers_module.dropout_forward(x, 0.5, np.random.default_rng(2), locked=True)
    for t in range(6):      # the same units dropped, and kept ones scaled, at every step
        np.testing.assert_array_equal(out[t], x[t] * locked[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("streams", [1, N])   # one stream: rows gathered, one product
@pytest.mark.parametrize("onehot_floats", [0, 1 << 20], ids=["add.at", "onehot"])
def test_table_and_dense_embedding_paths_agree(cell, streams, onehot_floats, rng, monkeypatch):
    """Layer 0's lookup-table path against the plain embed[ids] @ Wx[0] path (whose embedding
    gradient is summed by np.add.at, or by a one-hot matmul when that is small)."""
    import charrnn.model as model

    monkeypatch.setattr(model, "ONEHOT_FLOATS", onehot_floats)
    params, state, inputs, targets = _setup(cell, 2, 5, 6, rng)
    state = [tuple(x[:, :streams] for x in s) for s in state]
    inputs, targets = inputs[:streams], targets[:streams]
    assert model._use_table(params, streams * T) == (streams * T >= 5)
    monkeypatch.setattr(model, "_use_table", lambda p, n: True)
    out_table = loss_and_grads(params, cell, inputs, targets, state)
    monkeypatch.setattr(model, "_use_table", lambda p, n: False)
    out_dense = loss_and_grads(params, cell, inputs, targets, state)
    assert out_table[0] == pytest.approx(out_dense[0], rel=1e-12)
    for name in params:
        np.testing.assert_allclose(out_table[1][name], out_dense[1][name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_in_float32_out_and_initial_loss_is_ln_vocab(cell, rng):
    V, H = 65, 32
    params = init_params(cell, V, H, 2, rng)
    assert all(p.dtype == np.float32 for p in params.values())
    inputs = rng.integers(0, V, (8, 20)).astype(np.int32)
    targets = rng.integers(0, V, (8, 20)).astype(np.int32)
    loss, grads, state = loss_and_grads(params, cell, inputs, targets,
                                        zero_state(cell, 2, 8, H), dropout=0.2, rng=rng)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(s.dtype == np.float32 for layer in state for s in layer)
    assert loss == pytest.approx(np.log(V), rel=0.05)


def test_param_shapes_and_count():
    shapes = param_shapes("lstm", 65, 128, 2)
    assert shapes == {"embed": (65, 128), "Wx": (2, 128, 512), "Wh": (2, 128, 512), "b": (2, 512),
                      "Why": (128, 65), "by": (65,)}
    assert "bhn" in param_shapes("gru", 65, 128, 2)
    params = init_params("lstm", 65, 128, 2, np.random.default_rng(0))
    assert num_params(params) == 65 * 128 + 2 * (2 * 128 * 512 + 512) + 128 * 65 + 65


def test_clip_by_value_and_by_norm():
    grads = {"a": np.array([3.0, -12.0], np.float32), "b": np.array([[4.0]], np.float32)}
    norm = clip_grads(grads, 5.0, "value")
    assert norm == pytest.approx(13.0)
    np.testing.assert_array_equal(grads["a"], [3.0, -5.0])
    grads = {"a": np.array([3.0, -12.0], np.float32), "b": np.array([[4.0]], np.float32)}
    clip_grads(grads, 6.5, "norm")
    np.testing.assert_allclose(grads["a"], [1.5, -6.0])
    np.testing.assert_allclose(grads["b"], [[2.0]])
    assert grads["a"].dtype == np.float32


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_backward_leaves_the_cache_unless_it_is_handed_over(cell, rng):
    params, state, inputs, targets = _setup(cell, 2, 5, 6, rng)
    logits, _, cache = forward(params, cell, inputs, state)
    _, _, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 1.0 / N)
    first, _ = backward(params, cell, dlogits, cache)
    second, _ = backward(params, cell, dlogits, cache)            # the cache still works
    consumed, _ = backward(params, cell, dlogits, cache, consume=True)
    for name in params:
        np.testing.assert_array_equal(second[name], first[name])
        np.testing.assert_array_equal(consumed[name], first[name])
    assert cache[1] == [None, None]                                # handed over: dropped


def _masked_chunk(rng, V=5):
    """A (N, T) chunk of a prompt/completion text with separator id 0 and end mark id 1, its
    targets -1 where completion_mask does not score: stream 0 holds a completion that the chunk
    boundary cuts (it began before the chunk), stream 1 one that ends inside the chunk."""
    from charrnn.data import completion_mask

    streams = [[2, 0, 3, 4, 2, 3], [3, 2, 2, 0, 4, 1, 2]]   # T + 3, T + 4 ids (T = 3)
    inputs, targets = [], []
    for ids in streams:
        ids = np.array(ids)
        mask = completion_mask(ids, 0, 1)
        chunk = slice(len(ids) - T - 1, len(ids) - 1)        # the last T inputs
        inputs.append(ids[chunk])
        target = ids[1:][chunk].copy()
        target[~mask[1:][chunk]] = -1
        targets.append(target)
    return np.array(inputs), np.array(targets)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_masked_loss_gradients_match_numerical(cell, rng):
    """A completion setting's loss (targets -1 not counted): the gradient of the scored
    characters' loss summed over T and averaged over N, against numerical gradients in
    float64, with a completion cut by the chunk boundary."""
    params, state, _, _ = _setup(cell, 2, 5, 4, rng)
    inputs, targets = _masked_chunk(rng)
    assert (targets >= 0).sum() == 5 and (targets < 0).any()
    loss, grads, _ = loss_and_grads(params, cell, inputs, targets, state)
    total, count, _ = softmax_cross_entropy(forward(params, cell, inputs, state)[0],
                                            targets.T.reshape(-1))
    assert count == 5 and loss == pytest.approx(total / count, rel=1e-12)
    for name, value in params.items():
        numeric = numerical_grad(
            lambda v: _objective({**params, name: v}, cell, state, inputs, targets),
            value, np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_chunk_with_nothing_scored_has_loss_zero_and_zero_gradients(cell, rng):
    params, state, inputs, _ = _setup(cell, 2, 5, 4, rng)
    targets = np.full(inputs.shape, -1)
    loss, grads, new_state = loss_and_grads(params, cell, inputs, targets, state)
    assert loss == 0.0
    for name, g in grads.items():
        assert g.shape == params[name].shape and np.all(g == 0.0), name
    assert all(np.isfinite(s).all() for layer in new_state for s in layer)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_without_a_cache_gives_the_same_logits_and_state(cell, rng):
    """keep_cache=False (scoring, priming) drops each layer's cache as it goes: the same numbers."""
    params = init_params(cell, 5, 4, 3, rng)
    ids = rng.integers(0, 5, (2, 6))
    state = zero_state(cell, 3, 2, 4)
    logits, new_state, cache = forward(params, cell, ids, state)
    bare, bare_state, none = forward(params, cell, ids, state, keep_cache=False)
    assert none is None and cache is not None
    np.testing.assert_array_equal(bare, logits)
    for a, b in zip(new_state, bare_state):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_grow_vocab_keeps_the_old_characters_and_gives_new_ones_fresh_rows(cell, rng):
    old, new = Vocab("\nabcz"), Vocab("\nAabcz\xe9")      # 'A' and 'é' are new, ids shift
    H, L = 6, 2
    params = init_params(cell, len(old), H, L, rng)
    for p in params.values():   # non-zero biases, so that by's remapping shows
        p += rng.standard_normal(p.shape).astype(p.dtype) * np.float32(0.3)
    grown = grow_vocab(params, old, new, np.random.default_rng(7))
    shapes = param_shapes(cell, len(new), H, L)
    assert list(grown) == list(params) and list(shapes) == list(grown)
    assert all(grown[k].shape == shapes[k] and grown[k].dtype == np.float32 for k in grown)
    for name in ("Wx", "Wh", "b", "bhn"):
        if name in params:
            assert grown[name] is params[name]           # shared: they do not depend on V
    at = [new.stoi[ch] for ch in old.chars]                  # old id -> new id
    fresh = [new.stoi["A"], new.stoi["\xe9"]]
    np.testing.assert_array_equal(grown["embed"][at], params["embed"])
    np.testing.assert_array_equal(grown["Why"][:, at], params["Why"])
    np.testing.assert_array_equal(grown["by"][at], params["by"])
    # the new rows, as init_params draws them: N(0, 1), U(-0.1/sqrt(H), 0.1/sqrt(H)), 0
    draws = np.random.default_rng(7)
    np.testing.assert_array_equal(grown["embed"][fresh],
                                  draws.standard_normal((2, H)).astype(np.float32))
    bound = 0.1 / np.sqrt(H)
    np.testing.assert_array_equal(grown["Why"][:, fresh],
                                  draws.uniform(-bound, bound, (H, 2)).astype(np.float32))
    assert (grown["by"][fresh] == 0).all()
    # the same text of old characters: the same predictions over the old characters
    ids = rng.integers(0, len(old), (2, 9))
    state = zero_state(cell, L, 2, H)
    before, _, _ = forward(params, cell, ids, state, keep_cache=False)
    after, _, _ = forward(grown, cell, np.array(at)[ids], state, keep_cache=False)
    np.testing.assert_allclose(after[:, at], before, rtol=1e-5, atol=1e-6)
    same = grow_vocab(params, old, old, rng)       # nothing new: the same arrays, a new dict
    assert same is not params and all(same[k] is params[k] for k in params)
    with pytest.raises(ValueError, match="lacks characters"):
        grow_vocab(params, new, old, rng)
