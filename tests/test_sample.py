"""Sampling: the stepped model against the training forward, the character chooser against a plain
one-column reference, and generate_samples' options (stop strings, batches, log-probabilities)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import parallel
from charrnn import sample as sample_module
from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import DataError, Vocab
from charrnn.evaluate import char_logprobs
from charrnn.model import forward, init_params, zero_state
from charrnn.sample import (SampleConfig, Stepper, _Chooser, _gumbel, stream_chars,
                            generate_samples, prepare_seed, replacement_char)


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stepper_matches_the_training_forward(cell, layers, N, rng):
    """The sampler's fused, reordered path against model.forward, for one stream and three."""
    params = init_params(cell, 7, 8, layers, rng, dtype=np.float64)
    for p in params.values():
        p += rng.standard_normal(p.shape) * 0.2
    ids = rng.integers(0, 7, (N, 12))
    logits, _, _ = forward(params, cell, ids, zero_state(cell, layers, N, 8, np.float64))
    stepper = Stepper(params, cell, batch_size=N)
    stepped = np.stack([stepper.step(ids[:, t]).copy() for t in range(12)])   # (T, N, V)
    np.testing.assert_allclose(stepped.reshape(-1, 7), logits, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("N", [1, 4])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_seed_read_by_the_training_forward_is_a_seed_stepped(cell, N, rng, monkeypatch):
    """_prime runs all but the seed's last character through model.forward, in chunks."""
    monkeypatch.setattr(sample_module, "PRIME_CHUNK", 5)
    params = init_params(cell, 7, 8, 2, rng, dtype=np.float64)
    for p in params.values():
        p += rng.standard_normal(p.shape) * 0.2
    seed = rng.integers(0, 7, 23)
    stepped = Stepper(params, cell, batch_size=N)
    for i in seed:
        stepped.step(np.full(N, i))
    primed = Stepper(params, cell, batch_size=N)
    sample_module._prime(primed, params, cell, seed)
    np.testing.assert_allclose(primed.logits, stepped.logits, rtol=1e-10, atol=1e-12)
    nxt = rng.integers(0, 7, N)   # and the states agree: the next step too
    np.testing.assert_allclose(primed.step(nxt), stepped.step(nxt), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("N", [1, 4])   # rows at N = 1, feature-major for a batch
def test_stepper_keeps_float32(rng, cell, N):
    stepper = Stepper(init_params(cell, 5, 4, 2, rng), cell, batch_size=N)
    logits = stepper.step(np.ones(N, np.intp))
    assert logits.dtype == np.float32 and logits.shape == (N, 5)
    assert all(b.dtype == np.float32 for b in (stepper.a, stepper.tmp, stepper.c))


# --------------------------------------------------------------------------- the chooser


def reference_choice(logits, noise, top_k=0, top_p=1.0, greedy=False):
    """One column of logits (already divided by T), written plainly: the characters that may be
    drawn, then the one among them with the largest logit + Gumbel noise."""
    V = len(logits)
    if greedy or top_k == 1:
        return int(np.argmax(logits))
    ranked = sorted(range(V), key=lambda i: -logits[i])
    count = top_k if 1 < top_k < V else V
    if top_p < 1.0:
        p = np.exp(logits - logits.max())
        total = 0.0
        for i in ranked[:count]:
            total += p[i]
        mass, n = 0.0, 0
        for i in ranked[:count]:
            n += 1
            mass += p[i]
            if mass >= top_p * total:
                break
        count = n
    threshold = logits[ranked[count - 1]]   # ties with the last kept character stay in
    allowed = [i for i in range(V) if logits[i] >= threshold]
    return max(allowed, key=lambda i: (logits[i] + noise[i], -i))


def choose(logits, noise, **options):
    """Run the chooser on a copy of logits (N, V) with noise (N, V)."""
    chooser = _Chooser(logits.copy(), SampleConfig(**options))
    return chooser(noise[0] if len(logits) == 1 else noise).copy()


CHOICES = [
    {},
    {"greedy": True},
    {"top_k": 1},
    {"top_k": 3},
    {"top_k": 7},
    {"top_p": 0.5},
    {"top_p": 0.9},
    {"top_p": 0.999},
    {"top_k": 4, "top_p": 0.6},
]


@pytest.mark.parametrize("options", CHOICES, ids=str)
@pytest.mark.parametrize("N", [1, 300])
def test_chooser_matches_a_plain_reference(options, N, rng):
    V = 7
    logits = rng.standard_normal((N, V)) * 2.0
    noise = _gumbel(rng, (N, V), np.float64)
    want = [reference_choice(logits[n], noise[n], **options) for n in range(N)]
    assert choose(logits, noise, **options).tolist() == want


def test_chooser_keeps_ties_at_the_top_k_boundary():
    logits = np.array([[3.0, 1.0, 2.0, 2.0, 0.0]])
    kept = _Chooser(logits, SampleConfig(top_k=2)).kept()[0]
    assert kept.tolist() == [True, False, True, True, False]


def test_chooser_top_p_keeps_the_fewest_that_reach_p():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(p)[None, :]
    for top_p, kept in [(0.49, 1), (0.51, 2), (0.79, 2), (0.81, 3), (0.96, 4)]:
        assert _Chooser(logits, SampleConfig(top_p=top_p)).kept()[0].sum() == kept, top_p


def test_chooser_top_p_one_and_top_k_of_the_whole_vocabulary_are_plain_sampling(rng):
    V, N = 9, 200
    logits = rng.standard_normal((N, V)).astype(np.float32) * 3
    noise = _gumbel(rng, (N, V), np.float32)
    plain = choose(logits, noise)
    assert choose(logits, noise, top_p=1.0).tolist() == plain.tolist()
    assert choose(logits, noise, top_k=V).tolist() == plain.tolist()
    assert choose(logits, noise, top_k=1).tolist() == choose(logits, noise, greedy=True).tolist()


@pytest.mark.parametrize("options, allowed", [({}, [0, 1, 2, 3, 4]), ({"top_k": 2}, [2, 4]),
                                              ({"top_p": 0.7}, [2, 4])])
def test_chooser_frequencies_follow_the_softmax(options, allowed, rng):
    V, N = 5, 40000
    column = np.array([0.5, -1.0, 2.0, 0.0, 1.0], np.float32)
    ids = choose(np.repeat(column[None, :], N, axis=0), _gumbel(rng, (N, V), np.float32), **options)
    p = np.zeros(V)
    p[allowed] = np.exp(column[allowed]) / np.exp(column[allowed]).sum()
    np.testing.assert_allclose(np.bincount(ids, minlength=V) / N, p, atol=0.01)


def test_gumbel_noise_has_the_gumbel_mean_and_variance(rng):
    noise = _gumbel(rng, 200000, np.float64)
    assert noise.mean() == pytest.approx(np.euler_gamma, abs=0.01)
    assert noise.var() == pytest.approx(np.pi ** 2 / 6, abs=0.02)


@settings(max_examples=50, deadline=None)
@given(logits=st.lists(st.floats(-1e4, 1e4, width=32), min_size=2, max_size=12),
       data=st.data(), top_k=st.integers(0, 12), top_p=st.floats(0.01, 1.0))
def test_chooser_picks_an_id_among_the_top_k(logits, data, top_k, top_p):
    row = np.array(logits, np.float32)[None, :]
    V = row.shape[1]
    noise = np.array(data.draw(st.lists(st.floats(-3, 40, width=32), min_size=V, max_size=V)),
                     np.float32)[None, :]
    i = int(choose(row, noise, top_k=top_k, top_p=top_p)[0])
    assert 0 <= i < V
    if top_k:
        assert (row[0] > row[0, i]).sum() < top_k


def test_chooser_logprobs_are_log_softmax_at_temperature_one(rng):
    logits = rng.standard_normal((4, 6))
    ids = np.array([0, 5, 2, 2])
    got = _Chooser(logits / 0.5, SampleConfig(temperature=0.5)).logprobs(ids)
    want = [logits[n, i] - np.log(np.exp(logits[n]).sum()) for n, i in enumerate(ids)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_stepper_folds_the_logit_scale_into_the_output(rng):
    params = init_params("gru", 5, 4, 2, rng, dtype=np.float64)
    plain, hot = Stepper(params, "gru"), Stepper(params, "gru", logit_scale=2.5)
    for i in [1, 3, 0]:
        np.testing.assert_allclose(hot.step(np.array([i])), 2.5 * plain.step(np.array([i])),
                                   rtol=1e-12)


# --------------------------------------------------------------------------- generate_samples


def _ckpt(rng, cell="lstm", layers=2):
    vocab = Vocab.from_text("abcdefgh\n")
    params = init_params(cell, len(vocab), 16, layers, rng)
    params["Why"] *= 30  # an untrained model's logits are near ties; make them distinct
    return Checkpoint(params=params, vocab=vocab, model_cfg=ModelConfig(model=cell, hidden_size=16,
                                                                        num_layers=layers),
                      train_cfg=TrainConfig())


def _texts(ckpt, seed, seed_rng=0, logprobs=False, **options):
    samples = generate_samples(ckpt, seed, SampleConfig(**options), np.random.default_rng(seed_rng),
                               logprobs=logprobs)
    return [s.text for s in samples]


def test_same_rng_seed_same_text_and_only_vocabulary_characters(rng):
    ckpt = _ckpt(rng)
    a = "".join(stream_chars(ckpt, "ab", 100, rng=np.random.default_rng(5)))
    b = "".join(stream_chars(ckpt, "ab", 100, rng=np.random.default_rng(5)))
    c = "".join(stream_chars(ckpt, "ab", 100, rng=np.random.default_rng(6)))
    assert a == b and a != c and len(a) == 100
    assert set(a) <= set(ckpt.vocab.chars)


def test_generate_is_generate_samples_of_one(rng):
    ckpt = _ckpt(rng)
    streamed = []
    samples = generate_samples(ckpt, "ab", SampleConfig(num_chars=80), np.random.default_rng(3),
                               on_char=streamed.append)
    assert len(samples) == 1 and samples[0].stop is None and samples[0].logprobs is None
    assert "".join(streamed) == samples[0].text
    assert samples[0].text == "".join(stream_chars(ckpt, "ab", 80, rng=np.random.default_rng(3)))


def test_low_temperature_approaches_greedy(rng):
    ckpt = _ckpt(rng)
    greedy = "".join(stream_chars(ckpt, "a", 40, greedy=True))
    cold = "".join(stream_chars(ckpt, "a", 40, temperature=1e-4, rng=np.random.default_rng(0)))
    assert cold == greedy


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_top_k_one_is_greedy_and_top_p_one_is_plain(cell, rng):
    ckpt = _ckpt(rng, cell)
    assert _texts(ckpt, "ab", num_chars=60, top_k=1) == _texts(ckpt, "ab", num_chars=60, greedy=True)
    assert _texts(ckpt, "ab", num_chars=60, top_p=1.0) == _texts(ckpt, "ab", num_chars=60)


def test_a_batch_of_greedy_samples_is_the_greedy_sample_repeated(rng):
    ckpt = _ckpt(rng)
    one = _texts(ckpt, "cab", num_chars=50, greedy=True)
    assert _texts(ckpt, "cab", num_chars=50, greedy=True, num_samples=4) == one * 4


def test_samples_in_a_batch_differ_and_are_reproducible(rng):
    ckpt = _ckpt(rng)
    texts = _texts(ckpt, "a", num_chars=60, num_samples=5, seed_rng=7)
    assert len(set(texts)) == 5 and all(len(t) == 60 for t in texts)
    assert _texts(ckpt, "a", num_chars=60, num_samples=5, seed_rng=7) == texts


def test_uniforms_drawn_in_blocks_are_the_stream_drawn_at_once(rng, monkeypatch):
    """BLOCK only bounds memory: a text longer than a block is the same for any BLOCK."""
    ckpt = _ckpt(rng)
    whole = _texts(ckpt, "a", num_chars=50, num_samples=3)
    monkeypatch.setattr(sample_module, "BLOCK", 100)   # 3 steps of 9 x 3 numbers per draw
    assert _texts(ckpt, "a", num_chars=50, num_samples=3) == whole


def _cut_at_first_stop(seed, text, stops):
    """Plain reference: the shortest prefix of text after which seed + text ends with a stop."""
    full = seed + text
    for end in range(len(seed) + 1, len(full) + 1):
        for s in stops:
            if full[:end].endswith(s):
                return full[len(seed):end], s
    return text, None


@pytest.mark.parametrize("stop_at", [(3, 2), (10, 1), (20, 3)])
def test_stop_ends_right_after_the_first_occurrence(rng, stop_at):
    ckpt = _ckpt(rng)
    seed = "ab"
    free = _texts(ckpt, seed, num_chars=60, seed_rng=11)[0]
    start, length = stop_at
    stop = free[start:start + length]
    cfg = SampleConfig(num_chars=60, stop=(stop, "zz"))
    got, = generate_samples(ckpt, seed, cfg, np.random.default_rng(11))
    assert (got.text, got.stop) == _cut_at_first_stop(seed, free, [stop])
    assert got.text.endswith(stop) and len(got.text) < 60


def test_a_stop_string_may_begin_in_the_seed(rng):
    ckpt = _ckpt(rng)
    free = _texts(ckpt, "hab", num_chars=30, seed_rng=2)[0]
    stop = "b" + free[:2]
    got, = generate_samples(ckpt, "hab", SampleConfig(num_chars=30, stop=(stop,)),
                            np.random.default_rng(2))
    assert (got.text, got.stop) == (free[:2], stop)


def test_a_stop_string_inside_the_seed_alone_does_not_stop(rng):
    ckpt = _ckpt(rng)
    free = _texts(ckpt, "abc", num_chars=30, seed_rng=2)[0]
    got = _texts(ckpt, "abc", num_chars=30, seed_rng=2, stop=("abc",))[0]
    assert got == _cut_at_first_stop("abc", free, ["abc"])[0]


def test_stop_strings_with_unknown_characters_never_match(rng):
    ckpt = _ckpt(rng)
    assert _texts(ckpt, "a", num_chars=40, stop=("aZ", "!")) == _texts(ckpt, "a", num_chars=40)


def test_each_sample_of_a_batch_stops_on_its_own(rng):
    ckpt = _ckpt(rng)
    free = _texts(ckpt, "a", num_chars=80, num_samples=6, seed_rng=4)
    samples = generate_samples(ckpt, "a", SampleConfig(num_chars=80, num_samples=6, stop=("c", "ge")),
                               np.random.default_rng(4))
    for s, f in zip(samples, free):
        assert (s.text, s.stop) == _cut_at_first_stop("a", f, ["c", "ge"])
    assert len({len(s.text) for s in samples}) > 1


def test_logprobs_are_the_models_as_eval_scores_them(rng):
    ckpt = _ckpt(rng, "gru")
    seed = "hab\nc"
    samples = generate_samples(ckpt, seed, SampleConfig(num_chars=40, num_samples=2, temperature=0.7,
                                                        top_k=5),
                               np.random.default_rng(1), logprobs=True)
    for s in samples:
        assert s.logprobs.shape == (40,) and (s.logprobs <= 0).all()
        ids = ckpt.vocab.encode(seed + s.text)
        scored = char_logprobs(ckpt.params, "gru", ids)[len(seed) - 1:]
        np.testing.assert_allclose(s.logprobs, scored, rtol=1e-4, atol=1e-4)


def test_logprobs_do_not_change_the_text(rng):
    ckpt = _ckpt(rng)
    assert _texts(ckpt, "a", num_chars=30, logprobs=True, top_p=0.8) == \
        _texts(ckpt, "a", num_chars=30, top_p=0.8)


# --------------------------------------------------------------------------- seeds


def test_seed_outside_vocabulary_is_refused(rng):
    with pytest.raises(DataError) as e:
        next(stream_chars(_ckpt(rng), "aZ", 5))
    assert str(e.value) == "seed has characters not in the model's vocabulary: 'Z'"


def test_prepare_seed_error_lists_every_unknown_character_once():
    vocab = Vocab.from_text("ab c")
    with pytest.raises(DataError) as e:
        prepare_seed(vocab, "aZbZé")
    assert str(e.value) == "seed has characters not in the model's vocabulary: 'Z', 'é'"


def test_prepare_seed_skip_and_replace():
    vocab = Vocab.from_text("ab c")
    assert prepare_seed(vocab, "aZbZé c", "skip") == ("ab c", ["Z", "é"])
    assert prepare_seed(vocab, "aZbZé c", "replace") == ("a b   c", ["Z", "é"])
    assert prepare_seed(vocab, "abc", "skip") == ("abc", [])


def test_replacement_is_the_first_character_without_a_space():
    vocab = Vocab.from_text("xyz")
    assert replacement_char(vocab) == "x"
    assert prepare_seed(vocab, "yQ", "replace") == ("yx", ["Q"])


@pytest.mark.parametrize("seed, unk, message", [
    ("", "error", "the seed text is empty"),
    ("QQé", "skip", "the seed has no character in the model's vocabulary: 'Q', 'é'"),
])
def test_prepare_seed_with_nothing_left(seed, unk, message):
    with pytest.raises(DataError) as e:
        prepare_seed(Vocab.from_text("ab"), seed, unk)
    assert str(e.value) == message


# --------------------------------------------------------------------------- shards of samples


@pytest.fixture
def sharded(monkeypatch):
    """A batch of samples of the small test model is split into shards (parallel.py)."""
    monkeypatch.setattr(parallel, "MIN_SHARD_FLOATS", 16 * 2)   # two streams of 16 units a shard
    return monkeypatch


def test_shards_of_samples_run_the_same_model(rng, sharded):
    ckpt = _ckpt(rng)
    assert ckpt.train_cfg.shards == 2 and len(parallel.shard_bounds(5, 16, 2)) == 2
    one = _texts(ckpt, "cab", num_chars=50, greedy=True)
    assert _texts(ckpt, "cab", num_chars=50, greedy=True, num_samples=5) == one * 5
    samples = generate_samples(ckpt, "hab\nc", SampleConfig(num_chars=30, num_samples=5),
                               np.random.default_rng(1), logprobs=True)
    for s in samples:   # every shard's log-probabilities are the model's
        ids = ckpt.vocab.encode("hab\nc" + s.text)
        scored = char_logprobs(ckpt.params, "lstm", ids)[4:]
        np.testing.assert_allclose(s.logprobs, scored, rtol=1e-4, atol=1e-4)


def test_shards_of_samples_differ_reproduce_and_stop_on_their_own(rng, sharded):
    ckpt = _ckpt(rng)
    free = _texts(ckpt, "a", num_chars=80, num_samples=6, seed_rng=4)
    assert len(set(free)) == 6 and all(len(t) == 80 for t in free)
    assert _texts(ckpt, "a", num_chars=80, num_samples=6, seed_rng=4) == free
    samples = generate_samples(ckpt, "a", SampleConfig(num_chars=80, num_samples=6,
                                                       stop=("c", "ge")),
                               np.random.default_rng(4))
    for s, f in zip(samples, free):
        assert (s.text, s.stop) == _cut_at_first_stop("a", f, ["c", "ge"])


def test_shards_of_samples_in_threads_or_in_turn_give_the_same_text(rng, sharded, cpus):
    ckpt = _ckpt(rng)
    if parallel.blas_local_threads() is None:
        pytest.skip("no per-thread OpenBLAS setting here: shards cannot run in threads")
    cpus(2)
    with parallel.Shards(2) as shards:
        assert shards.parallel
    threaded = _texts(ckpt, "ab", num_chars=60, num_samples=4, seed_rng=3)
    cpus(1)            # one core: the shards run in turn
    with parallel.Shards(2) as shards:
        assert not shards.parallel
    assert _texts(ckpt, "ab", num_chars=60, num_samples=4, seed_rng=3) == threaded


def test_shards_of_samples_stream_sample_0_and_stop_when_it_fails(rng, sharded):
    ckpt = _ckpt(rng)
    streamed = []
    samples = generate_samples(ckpt, "a", SampleConfig(num_chars=40, num_samples=4),
                               np.random.default_rng(2), on_char=streamed.append)
    assert "".join(streamed) == samples[0].text

    def closed_pipe(ch):
        raise BrokenPipeError

    # the other shard stops too: a million characters would take about a minute
    with pytest.raises(BrokenPipeError):
        generate_samples(ckpt, "a", SampleConfig(num_chars=1_000_000, num_samples=4),
                         np.random.default_rng(2), on_char=closed_pipe)
