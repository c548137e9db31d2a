"""Data-parallel shards (parallel.py): the same loss, gradients and state as one pass over the
whole batch, the same bits whether the shards run in threads or one after the other, and the
caller's BLAS threads and floating-point error settings kept."""

import platform
import sys
import warnings

import numpy as np
import pytest

from charrnn import cores, model, parallel
from charrnn.parallel import Shards, loss_and_grads, shard_bounds

H, T, V = 6, 5, 9


def _chunk(cell, N, rng, dtype=np.float64):
    params = model.init_params(cell, V, H, 2, rng, dtype=dtype)
    for p in params.values():
        p += (rng.standard_normal(p.shape) * 0.3).astype(dtype)
    state = [tuple(rng.standard_normal(x.shape).astype(dtype) for x in s)
             for s in model.zero_state(cell, 2, N, H, dtype)]
    return params, state, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


def _sequential(threads, cpus):
    """Shards that run one after the other in this thread, as on a process with one core."""
    cpus(1)
    shards = Shards(threads)
    cpus(2)
    return shards


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of any size, for models small enough to check in float64."""
    monkeypatch.setattr(parallel, "MIN_SHARD_FLOATS", 1)


def test_shard_bounds():
    assert parallel.MIN_SHARD_FLOATS == 4096
    assert shard_bounds(1, 4096, 2) == [(0, 1)]
    assert shard_bounds(32, 128, 2) == [(0, 32)]                 # 2 x (16 x 128): too small
    assert shard_bounds(50, 256, 2) == [(0, 25), (25, 50)]
    assert shard_bounds(17, 512, 2) == [(0, 8), (8, 17)]
    assert shard_bounds(64, 512, 4) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert shard_bounds(64, 512, 1) == [(0, 64)]
    assert shard_bounds(3, 4096, 8) == [(0, 1), (1, 2), (2, 3)]  # at most one shard a stream
    assert shard_bounds(24, 512, 8) == [(0, 8), (8, 16), (16, 24)]  # >= 4096 floats a shard


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("threads", [2, 3])
def test_shards_sum_to_the_whole_batch(cell, threads, rng, small_shards):
    """In float64 the sharded loss, gradients and new state equal the whole batch's to rounding."""
    N = 2 * threads + 1     # uneven shards
    params, state, inputs, targets = _chunk(cell, N, rng)
    loss, grads, new_state = model.loss_and_grads(params, cell, inputs, targets, state)
    with Shards(threads) as shards:
        assert len(shard_bounds(N, H, threads)) == threads
        s_loss, s_grads, s_state = loss_and_grads(params, cell, inputs, targets, state,
                                                  shards=shards)
    assert s_loss == pytest.approx(loss, rel=1e-12)
    assert list(s_grads) == list(grads)
    for name in grads:
        np.testing.assert_allclose(s_grads[name], grads[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    for layer, s_layer in zip(new_state, s_state):
        for part, s_part in zip(layer, s_layer):
            assert s_part.shape == part.shape and s_part.flags.c_contiguous
            np.testing.assert_allclose(s_part, part, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_threads_and_sequential_shards_give_the_same_bits(cell, rng, small_shards, cpus):
    """float32, with dropout (each shard's masks from a generator seeded by rng)."""
    if parallel.blas_local_threads() is None:
        pytest.skip("no per-thread OpenBLAS setting here: shards cannot run in threads")
    cpus(2)
    params, state, inputs, targets = _chunk(cell, 20, rng, np.float32)
    results = []
    threaded = Shards(2)
    assert threaded.parallel
    for shards in (threaded, _sequential(2, cpus)):
        assert shards.parallel is (shards is threaded)
        gen = np.random.default_rng(5)
        with shards:
            loss, grads, new_state = loss_and_grads(params, cell, inputs, targets, state, 0.3,
                                                    gen, shards)
        results.append((loss, grads, new_state, gen.bit_generator.state))
    (loss_a, grads_a, state_a, rng_a), (loss_b, grads_b, state_b, rng_b) = results
    assert loss_a == loss_b and rng_a == rng_b
    for name in grads_a:
        assert grads_a[name].dtype == np.float32
        np.testing.assert_array_equal(grads_a[name], grads_b[name], err_msg=name)
    for layer_a, layer_b in zip(state_a, state_b):
        for a, b in zip(layer_a, layer_b):
            np.testing.assert_array_equal(a, b)


def test_more_cores_than_shards_give_the_same_bits(rng, cpus):
    """4 cores, 2 shards: each shard's products on 2 OpenBLAS threads (big enough here for
    OpenBLAS to use them): the same bits as the shards in turn on one core."""
    if parallel.blas_local_threads() is None:
        pytest.skip("no per-thread OpenBLAS setting here: shards cannot run in threads")
    Hw, N = 128, 64
    params = model.init_params("lstm", V, Hw, 2, rng)
    state = model.zero_state("lstm", 2, N, Hw)
    inputs, targets = rng.integers(0, V, (N, 8)), rng.integers(0, V, (N, 8))
    results = []
    for cpu_count in (4, 1):
        cpus(cpu_count)
        with Shards(2) as shards:
            assert shards.parallel is (cpu_count == 4)
            assert len(shard_bounds(N, Hw, shards.count)) == 2
            assert shards.blas_per_shard(2) == (2 if cpu_count == 4 else 1)
            results.append(loss_and_grads(params, "lstm", inputs, targets, state, 0.2,
                                          np.random.default_rng(7), shards))
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = results
    assert loss_a == loss_b
    for name in grads_a:
        np.testing.assert_array_equal(grads_a[name], grads_b[name], err_msg=name)
    for layer_a, layer_b in zip(state_a, state_b):
        for a, b in zip(layer_a, layer_b):
            np.testing.assert_array_equal(a, b)


def test_one_shard_is_exactly_model_loss_and_grads(rng):
    params, state, inputs, targets = _chunk("lstm", 15, rng, np.float32)   # 15 x 6 floats
    loss, grads, _ = model.loss_and_grads(params, "lstm", inputs, targets, state, 0.2,
                                          np.random.default_rng(1))
    with Shards(2) as shards:
        s_loss, s_grads, _ = loss_and_grads(params, "lstm", inputs, targets, state, 0.2,
                                            np.random.default_rng(1), shards)
    assert s_loss == loss
    for name in grads:
        np.testing.assert_array_equal(s_grads[name], grads[name])


def test_blas_threads_follow_the_cores_and_the_callers_are_put_back(cpus):
    """Inside Shards, OpenBLAS uses the process's cores (here 2), and 1 thread in each shard;
    after the shards it has the cores again, and the caller's own setting after the Shards."""
    if parallel.blas_local_threads() is None or cores.blas_threads() is None:
        pytest.skip("no OpenBLAS thread settings here")
    cpus(2)
    cores.set_blas_threads(1)
    inside = []
    with Shards(2) as shards:
        assert cores.blas_threads() == 2
        assert shards.map([lambda: 1, lambda: 2]) == [1, 2]
        assert shards.map([lambda: inside.append(cores.blas_threads())] * 2) == [None, None]
        assert inside == [1, 1]
        assert cores.blas_threads() == 2
    assert cores.blas_threads() == 1


def test_the_callers_error_settings_hold_in_the_shards(cpus):
    if parallel.blas_local_threads() is None:
        pytest.skip("no per-thread OpenBLAS setting here: shards cannot run in threads")
    cpus(2)
    big = np.float32(3e38)
    with Shards(2) as shards:
        assert shards.parallel
        with np.errstate(over="raise"):
            with pytest.raises(FloatingPointError):
                shards.map([lambda: big * big, lambda: big * big])
        # an overflow the caller ignores is not a warning in the shards' threads either
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert shards.map([lambda: big * big, lambda: 0])[0] == np.inf


def test_glibc_serves_every_thread_from_one_malloc_arena():
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("mallopt(M_ARENA_MAX) is glibc's")
    assert parallel.one_malloc_arena() is True


def test_masked_shards_sum_to_the_whole_batch(rng, small_shards):
    """A completion setting's targets (-1 not counted), one shard scoring nothing: the loss is
    still the mean over the batch's counted characters, the gradients the batch's."""
    N = 5
    params, state, inputs, targets = _chunk("lstm", N, rng)
    targets[:2] = -1                   # the first shard (streams 0, 1) scores nothing
    targets[3, :2] = -1
    loss, grads, _ = model.loss_and_grads(params, "lstm", inputs, targets, state)
    with Shards(2) as shards:
        assert shard_bounds(N, H, 2) == [(0, 2), (2, 5)]
        s_loss, s_grads, _ = loss_and_grads(params, "lstm", inputs, targets, state, shards=shards)
    assert s_loss == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(s_grads[name], grads[name], rtol=1e-10, atol=1e-12)
    with Shards(2) as shards:
        none, _, _ = loss_and_grads(params, "lstm", inputs, np.full_like(targets, -1),
                                    state, shards=shards)
    assert none == 0.0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_weight_and_embed_drop_masks_are_shared_by_the_shards(cell, rng, small_shards):
    """weight_drop's and embed_drop's masks belong to the batch: drawn once from rng before the
    shards, so two shards' gradients summed equal one pass's with the same masks (the same
    seeded generator), and the generator ends in the same state either way."""
    params, state, inputs, targets = _chunk(cell, 5, rng)
    levers = {"weight_drop": 0.4, "embed_drop": 0.3}
    gens = np.random.default_rng(5), np.random.default_rng(5)
    masks = model.draw_masks(params, 0.4, 0.3, np.random.default_rng(5))
    assert (masks["Wh"] == 0).any() and (masks["embed"][inputs] == 0).any()
    loss, grads, new_state = model.loss_and_grads(params, cell, inputs, targets, state,
                                                  rng=gens[0], **levers)
    with Shards(2) as shards:
        assert len(shard_bounds(5, H, 2)) == 2
        s_loss, s_grads, s_state = loss_and_grads(params, cell, inputs, targets, state,
                                                  rng=gens[1], shards=shards, **levers)
    assert gens[0].bit_generator.state == gens[1].bit_generator.state
    assert s_loss == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(s_grads[name], grads[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    assert (s_grads["Wh"][masks["Wh"] == 0] == 0).all()
    assert (s_grads["embed"][masks["embed"] == 0] == 0).all()
    for layer, s_layer in zip(new_state, s_state):
        for part, s_part in zip(layer, s_layer):
            np.testing.assert_allclose(s_part, part, rtol=1e-12, atol=1e-14)


def test_variational_dropout_in_shards_draws_each_shards_masks(rng, small_shards):
    """With variational dropout the shards draw their own streams' locked masks, as dropout's:
    the sharded result is that of the whole batch with the shards' masks side by side."""
    params, state, inputs, targets = _chunk("lstm", 4, rng)
    with Shards(2) as shards:
        loss, grads, _ = loss_and_grads(params, "lstm", inputs, targets, state, 0.5,
                                        np.random.default_rng(9), shards, variational=True)
    seeds = np.random.default_rng(9).integers(0, 2**63 - 1, 2)
    parts = [model.loss_and_grads(params, "lstm", inputs[lo:hi], targets[lo:hi],
                                  [tuple(s[:, lo:hi] for s in layer) for layer in state], 0.5,
                                  np.random.default_rng(seed), batch_size=4, variational=True)
             for (lo, hi), seed in zip([(0, 2), (2, 4)], seeds)]
    assert loss == pytest.approx((parts[0][0] + parts[1][0]) / 2, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(grads[name], parts[0][1][name] + parts[1][1][name],
                                   rtol=1e-12, atol=1e-14)
