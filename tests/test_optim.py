import numpy as np
import pytest

from charrnn.optim import OPTIMIZERS, FlatOptimizer, init_state, learning_rate_at, update


def _reference(optimizer, p, grads, lr, momentum):
    """The textbook update rules, in float64, step by step."""
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if optimizer == "sgd":
            v = momentum * v + g
            p = p - lr * v
        elif optimizer == "adagrad":
            m = m + g * g
            p = p - lr * g / np.sqrt(m + 1e-8)
        elif optimizer == "rmsprop":
            m = 0.95 * m + 0.05 * g * g
            p = p - lr * g / (np.sqrt(m) + 1e-8)
        else:
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            p = p - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return p


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_update_matches_reference(optimizer, momentum, rng):
    p0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]
    params = {"W": p0.copy()}
    state = init_state(optimizer, params, momentum)
    assert all(s.dtype == np.float32 and s.shape == (3, 4) for s in state.values())
    for t, g in enumerate(grads, start=1):
        update(optimizer, params, {"W": g}, state, 0.01, t, momentum)
    assert params["W"].dtype == np.float32
    np.testing.assert_allclose(params["W"], _reference(optimizer, p0, grads, 0.01, momentum),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_flat_optimizer_matches_the_per_parameter_update(optimizer, momentum, rng):
    """The fused path against update(), over several parameters of several shapes."""
    shapes = {"a": (3, 4), "b": (5,), "c": (2, 3, 2)}
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    plain = {k: v.copy() for k, v in start.items()}
    flat = {k: v.copy() for k, v in start.items()}
    plain_state, flat_state = init_state(optimizer, plain, momentum), init_state(optimizer, flat,
                                                                                momentum)
    opt = FlatOptimizer(optimizer, flat, flat_state, momentum)
    for t in range(1, 5):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        update(optimizer, plain, grads, plain_state, 0.01, t, momentum)
        opt.step(grads, 0.01, t)
    for k in shapes:   # the caller's dicts hold views that follow every step
        assert flat[k].shape == shapes[k] and flat[k].dtype == np.float32
        np.testing.assert_allclose(flat[k], plain[k], rtol=1e-6, atol=1e-7)
    for k in plain_state:
        np.testing.assert_allclose(flat_state[k], plain_state[k], rtol=1e-6, atol=1e-7)


def test_flat_optimizer_views_take_in_place_restores(rng):
    params = {"a": np.ones((2, 2), np.float32)}
    state = init_state("adam", params)
    opt = FlatOptimizer("adam", params, state)
    params["a"][...] = 5.0            # as a divergence rollback restores: in place
    assert (opt.p == 5.0).all()
    opt.step({"a": np.zeros((2, 2), np.float32)}, 0.1, 1)
    np.testing.assert_array_equal(params["a"], opt.p.reshape(2, 2))


def test_state_is_per_parameter():
    params = {"a": np.zeros(2, np.float32), "b": np.zeros((2, 2), np.float32)}
    assert sorted(init_state("adam", params)) == ["m/a", "m/b", "v/a", "v/b"]
    assert sorted(init_state("sgd", params)) == []
    assert sorted(init_state("sgd", params, momentum=0.5)) == ["v/a", "v/b"]


def test_learning_rate_decays_once_per_pass():
    assert learning_rate_at(0.1, 0.5, 0, 10) == 0.1
    assert learning_rate_at(0.1, 0.5, 9, 10) == 0.1
    assert learning_rate_at(0.1, 0.5, 10, 10) == pytest.approx(0.05)
    assert learning_rate_at(0.1, 0.5, 25, 10) == pytest.approx(0.025)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_flat_optimizer_weight_decay_matches_the_per_parameter_update(optimizer, rng):
    """Decoupled weight decay on the flat buffer's slices against update()'s, parameter by
    parameter; with a model's parameter layout (weights, then biases, then weights again)."""
    shapes = {"embed": (5, 3), "Wx": (2, 3, 6), "Wh": (2, 3, 6), "b": (2, 6), "Why": (3, 5),
              "by": (5,)}
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    plain = {k: v.copy() for k, v in start.items()}
    flat = {k: v.copy() for k, v in start.items()}
    plain_state, flat_state = init_state(optimizer, plain, 0.9), init_state(optimizer, flat, 0.9)
    opt = FlatOptimizer(optimizer, flat, flat_state, 0.9, weight_decay=0.3)
    # embed, Wx, Wh: one slice; then Why (b, of two dimensions, and by are biases)
    assert opt.decayed == [slice(0, 15 + 36 + 36), slice(15 + 72 + 12, 15 + 72 + 12 + 15)]
    for t in range(1, 5):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        update(optimizer, plain, grads, plain_state, 0.05, t, 0.9, weight_decay=0.3)
        opt.step(grads, 0.05, t)
    for k in shapes:
        np.testing.assert_allclose(flat[k], plain[k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_weight_decay_leaves_the_biases_alone(optimizer, rng):
    """With a zero gradient only the decay moves anything: the weights shrink by (1 - lr wd),
    the biases do not move (b and bhn are 2-dimensional, (L, G) and (L, H)); in both
    implementations."""
    start = {"Wh": rng.standard_normal((2, 3, 4)).astype(np.float32),
             "b": rng.standard_normal((2, 4)).astype(np.float32),
             "bhn": rng.standard_normal((2, 3)).astype(np.float32),
             "Why": rng.standard_normal((3, 5)).astype(np.float32),
             "by": rng.standard_normal(5).astype(np.float32)}
    zeros = {k: np.zeros_like(v) for k, v in start.items()}
    plain = {k: v.copy() for k, v in start.items()}
    flat = {k: v.copy() for k, v in start.items()}
    update(optimizer, plain, zeros, init_state(optimizer, plain), 0.1, 1, weight_decay=0.5)
    FlatOptimizer(optimizer, flat, init_state(optimizer, flat), weight_decay=0.5).step(zeros, 0.1, 1)
    for params in (plain, flat):
        for name in ("b", "bhn", "by"):
            np.testing.assert_array_equal(params[name], start[name])
        for name in ("Wh", "Why"):
            np.testing.assert_allclose(params[name], start[name] * 0.95, rtol=1e-6)


def test_weight_decay_one_step_by_hand():
    """sgd, lr 0.1, weight_decay 0.5, p = 2, g = 1: p = 2 - 0.1 * 0.5 * 2 - 0.1 * 1 = 1.8 for a
    weight; a bias gets the gradient step alone, 2 - 0.1 = 1.9. Adam's first step is lr *
    sign(g) (bias-corrected m / sqrt(v) = 1): 2 - 0.1 - 0.1 = 1.8 as well, the decay outside v."""
    for optimizer in ("sgd", "adam"):
        for make in ("update", "flat"):
            params = {"Wx": np.full((1, 2, 2), 2.0, np.float32),
                      "b": np.full((1, 2), 2.0, np.float32)}
            grads = {k: np.ones_like(v) for k, v in params.items()}
            state = init_state(optimizer, params)
            if make == "update":
                update(optimizer, params, grads, state, 0.1, 1, weight_decay=0.5)
            else:
                FlatOptimizer(optimizer, params, state, weight_decay=0.5).step(grads, 0.1, 1)
            np.testing.assert_allclose(params["Wx"], 1.8, rtol=1e-6)
            np.testing.assert_allclose(params["b"], 1.9, rtol=1e-6)
