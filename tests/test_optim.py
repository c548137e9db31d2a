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
