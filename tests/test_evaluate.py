import math

import numpy as np
import pytest

from charrnn import parallel
from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import DataError, Vocab
from charrnn.evaluate import (char_logprobs, evaluate_texts, score_ids, score_text,
                              segment_layout, summarize, total_summary, worst)
from charrnn.layers import log_softmax
from charrnn.model import forward, init_params, zero_state


def test_short_text_is_scored_as_one_stream_like_a_plain_loop(rng):
    params = init_params("gru", 6, 8, 2, rng)
    ids = rng.integers(0, 6, 300)
    total, n = score_ids(params, "gru", ids, seq_length=7)
    logits, _, _ = forward(params, "gru", ids[None, :-1], zero_state("gru", 2, 1, 8))
    logp = log_softmax(logits.astype(np.float64))
    assert n == 299
    assert math.isclose(total, -logp[np.arange(299), ids[1:]].sum(), rel_tol=1e-5)


def test_long_text_in_streams_counts_every_character_once(rng):
    params = init_params("rnn", 5, 8, 1, rng)
    ids = rng.integers(0, 5, 5000)
    total, n = score_ids(params, "rnn", ids)
    assert n == 4999
    # an untrained model is close to uniform: about ln 5 per character
    assert math.isclose(total / n, math.log(5), rel_tol=0.05)


def test_summary_figures_are_consistent():
    s = summarize(1.5 * 200, 200)
    assert s == {"loss": 1.5, "bits_per_char": 1.5 / math.log(2), "perplexity": math.exp(1.5),
                 "n_chars": 200}


# --------------------------------------------------------------------------- per character


def test_char_logprobs_of_a_short_text_are_a_plain_loop(rng):
    params = init_params("lstm", 6, 8, 2, rng, dtype=np.float64)
    ids = rng.integers(0, 6, 200)
    got = char_logprobs(params, "lstm", ids, seq_length=9)
    logits, _, _ = forward(params, "lstm", ids[None, :-1], zero_state("lstm", 2, 1, 8, np.float64))
    want = log_softmax(logits)[np.arange(199), ids[1:]]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("n_chars, layout", [
    (1000, (1, 999, 0)),                      # too short for two segments: one pass
    (256 + 2 * 1024 + 1, (2, 1024, 256)),
    (256 + 2 * 1024 + 2, (2, 1025, 256)),     # the last segment padded by one
    (256 + 64 * 2000 + 1, (64, 2000, 256)),
    (10 ** 7, (64, -(-(10 ** 7 - 1 - 256) // 64), 256)),
])
def test_segment_layout(n_chars, layout):
    assert segment_layout(n_chars) == layout
    assert segment_layout(n_chars, streams=1) == (1, n_chars - 1, 0)


def test_segments_with_context_score_every_position_once_as_a_fresh_pass_would(rng):
    """Each segment after the first reads 256 characters before it unscored: its first scored
    character gets exactly the log-probability that a pass from a zero state at the start of
    that context gives it; one stream is one pass over the whole text."""
    params = init_params("gru", 5, 8, 2, rng, dtype=np.float64)
    ids = rng.integers(0, 5, 256 + 3 * 1100 + 1)
    S, seg, C = segment_layout(len(ids))
    assert (S, seg, C) == (3, 1100, 256)
    got = char_logprobs(params, "gru", ids)
    for k in (1, 2):
        start = k * seg                      # segment k reads from here, scores from + C
        part = ids[start:start + C + 2]
        logits, _, _ = forward(params, "gru", part[None, :-1], zero_state("gru", 2, 1, 8,
                                                                             np.float64))
        want = log_softmax(logits)[np.arange(C + 1), part[1:]]
        np.testing.assert_allclose(got[start + C:start + C + 1], want[C:C + 1], rtol=1e-12)
    one = char_logprobs(params, "gru", ids, streams=1)
    logits, _, _ = forward(params, "gru", ids[None, :-1], zero_state("gru", 2, 1, 8, np.float64))
    np.testing.assert_allclose(one, log_softmax(logits)[np.arange(len(ids) - 1), ids[1:]],
                               rtol=1e-12)
    total, n = score_ids(params, "gru", ids, streams=1)
    assert n == len(ids) - 1 and total == pytest.approx(-one.sum(), rel=1e-12)


@pytest.mark.parametrize("length", [2, 1500, 5000])
def test_char_logprobs_sum_to_score_ids(length, rng):
    """The same segmentation: -sum of the per-character figures is the total that training uses."""
    params = init_params("gru", 5, 8, 1, rng)
    ids = rng.integers(0, 5, length)
    got = char_logprobs(params, "gru", ids)
    total, n = score_ids(params, "gru", ids)
    assert got.shape == (n,) == (length - 1,) and got.dtype == np.float64
    assert -got.sum() == pytest.approx(total, rel=1e-6)
    assert (got < 0).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_segments_scored_in_shards_are_the_same_figures(cell, rng, monkeypatch):
    """Segments in three shards, in threads where OpenBLAS allows: each segment's figures as in
    one pass (float64), and the totals agree."""
    monkeypatch.setattr(parallel, "MIN_SHARD_FLOATS", 1)
    params = init_params(cell, 5, 8, 2, rng, dtype=np.float64)
    ids = rng.integers(0, 5, 7 * 1024 + 100)                  # 7 segments (MIN_SEGMENT 1024)
    with parallel.Shards(3) as shards:
        assert len(parallel.shard_bounds(7, 8, shards.count)) == 3
        total, n = score_ids(params, cell, ids, shards=shards)
        per_char = char_logprobs(params, cell, ids, shards=shards)
    want_total, want_n = score_ids(params, cell, ids)
    assert n == want_n and total == pytest.approx(want_total, rel=1e-12)
    np.testing.assert_allclose(per_char, char_logprobs(params, cell, ids), rtol=1e-12)


def _ckpt(rng, chars="ab c\n"):
    vocab = Vocab.from_text(chars)
    return Checkpoint(params=init_params("lstm", len(vocab), 8, 1, rng), vocab=vocab,
                      model_cfg=ModelConfig(hidden_size=8, num_layers=1), train_cfg=TrainConfig())


def test_score_text_without_unknown_characters(rng):
    ckpt = _ckpt(rng)
    scored = score_text(ckpt, "ab ca\nb")
    assert scored.kept.tolist() == list(range(7)) and scored.skipped == {}
    np.testing.assert_allclose(scored.logprobs,
                               char_logprobs(ckpt.params, "lstm", ckpt.vocab.encode("ab ca\nb")))
    result = evaluate_texts(ckpt, [("t.txt", "ab ca\nb")])
    assert result.reports == (scored.summary(),) and result.total == scored.summary()
    assert result.as_json() == scored.summary()      # one text: the total alone


def test_score_text_refuses_unknown_characters_by_default(rng):
    with pytest.raises(DataError) as e:
        score_text(_ckpt(rng), "abZ cé Z")
    assert str(e.value) == "characters not in the vocabulary: 'Z', 'é'"


def test_score_text_skips_unknown_characters(rng):
    ckpt = _ckpt(rng)
    scored = score_text(ckpt, "aZb cé Zb", unk="skip")
    assert scored.skipped == {"Z": 2, "é": 1} and scored.n_skipped == 3
    assert scored.kept.tolist() == [0, 2, 3, 4, 6, 8]   # a b ' ' c ' ' b
    np.testing.assert_array_equal(scored.logprobs, score_text(ckpt, "ab c b").logprobs)
    assert scored.summary()["n_chars"] == 5


@pytest.mark.parametrize("text, unk, message", [
    ("a", "error", "the text has 1 character(s); scoring needs at least 2 (the first is only "
                   "context)"),
    ("ZaZ", "skip", "the text has 1 character(s) after skipping those outside the vocabulary; "
                    "scoring needs at least 2 (the first is only context)"),
])
def test_score_text_too_short(text, unk, message, rng):
    with pytest.raises(DataError) as e:
        score_text(_ckpt(rng), text, unk)
    assert str(e.value) == message


def test_total_summary_weighs_texts_by_their_characters(rng):
    ckpt = _ckpt(rng)
    a, b = score_text(ckpt, "ab c\nab"), score_text(ckpt, "cc a")
    total = total_summary([a, b])
    assert total["n_chars"] == 6 + 3
    assert total["loss"] == pytest.approx((a.summary()["loss"] * 6 + b.summary()["loss"] * 3) / 9)


def test_worst_lists_the_least_likely_characters_with_context(rng):
    ckpt = _ckpt(rng)
    ckpt.params["by"][ckpt.vocab.stoi["\n"]] = -8.0   # a newline is very unlikely, "c" less so
    ckpt.params["by"][ckpt.vocab.stoi["c"]] = -5.0
    texts = [score_text(ckpt, "ab a\nbb"), score_text(ckpt, "bcaZb", unk="skip")]
    found = worst(texts, 3, context=3)
    # plainly: every scored character as (logprob, text, offset), lowest first
    every = sorted((float(lp), i, int(t.kept[j + 1]))
                   for i, t in enumerate(texts) for j, lp in enumerate(t.logprobs))
    assert [(w["logprob"], w["index"], w["offset"]) for w in found] == every[:3]
    assert found[0] == {"index": 0, "offset": 4, "line": 1, "column": 5, "char": "\n",
                        "logprob": every[0][0], "context": "b a"}
    assert (found[1]["char"], found[1]["offset"], found[1]["context"]) == ("c", 1, "b")


def test_worst_counts_lines_and_columns_from_one(rng):
    ckpt = _ckpt(rng)
    ckpt.params["by"][ckpt.vocab.stoi["c"]] = -9.0
    w, = worst([score_text(ckpt, "ab\nb a\n bc\n")], 1, context=20)
    assert (w["char"], w["offset"], w["line"], w["column"]) == ("c", 9, 3, 3)
    assert w["context"] == "ab\nb a\n b"
