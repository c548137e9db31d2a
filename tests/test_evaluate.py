import math

import numpy as np

from charrnn.evaluate import score_ids, summarize
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
