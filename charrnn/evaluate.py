"""Scoring a text under a model: mean loss in nats per character, bits per character, perplexity.

The text's predicted positions (every character after the first) are cut into up to `streams`
contiguous segments scored in parallel, each starting from a zero state and carrying its state
from one chunk to the next, like training; the first few characters of each segment therefore
have less context than they would in one long pass (a small, documented pessimism).
"""

import math

import numpy as np

from .data import DataError
from .layers import softmax_cross_entropy
from .model import forward, zero_state

EVAL_STREAMS = 64     # parallel segments, at most
MIN_SEGMENT = 1024    # characters per segment, at least (fewer segments for short texts)
EVAL_SEQ_LENGTH = 128  # characters per forward chunk


def score_ids(params, cell, ids, streams=EVAL_STREAMS, seq_length=EVAL_SEQ_LENGTH):
    """Total loss in nats and the number of characters scored (len(ids) - 1)."""
    P = len(ids) - 1
    if P < 1:
        return 0.0, 0
    S = max(1, min(streams, P // MIN_SEGMENT))
    seg = -(-P // S)  # ceil
    inputs = np.zeros(S * seg, dtype=np.int32)
    targets = np.full(S * seg, -1, dtype=np.int32)   # -1: padding, not scored
    inputs[:P] = ids[:P]
    targets[:P] = ids[1:]
    inputs, targets = inputs.reshape(S, seg), targets.reshape(S, seg)
    L, H = params["Wx"].shape[:2]
    state = zero_state(cell, L, S, H, params["Wx"].dtype)
    total = 0.0
    for start in range(0, seg, seq_length):
        cols = slice(start, start + seq_length)
        logits, state, _ = forward(params, cell, inputs[:, cols], state)
        chunk_total, _, _ = softmax_cross_entropy(logits, targets[:, cols].T.reshape(-1))
        total += chunk_total
    return total, P


def summarize(total_nats, n_chars):
    """The reported figures for a scored text."""
    loss = total_nats / n_chars if n_chars else float("nan")
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss),
            "n_chars": n_chars}


def evaluate_text(ckpt, text):
    """Score a str under a checkpoint. Raises DataError for characters outside its vocabulary
    or a text too short to score."""
    if len(text) < 2:
        raise DataError(f"the text has {len(text)} character(s); scoring needs at least 2 "
                        "(the first is only context)")
    ids = ckpt.vocab.encode(text)
    return summarize(*score_ids(ckpt.params, ckpt.model_cfg.model, ids))
