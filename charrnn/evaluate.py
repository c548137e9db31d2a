"""Scoring a text under a model: mean loss in nats per character, bits per character, perplexity,
and each character's log-probability.

The text's predicted positions (every character after the first) are cut into up to `streams`
contiguous segments scored in parallel, each starting from a zero state and carrying its state
from one chunk to the next, like training; the first few characters of each segment therefore
have less context than they would in one long pass (a small, documented pessimism). Given a
parallel.Shards, the segments are scored in shards of streams at the same time, as training
batches are (each segment's figures are its own: only the order of the final sum differs).
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from .data import DataError, format_chars
from .layers import log_softmax
from .model import forward, zero_state
from .parallel import InTurn, shard_bounds

EVAL_STREAMS = 64     # parallel segments, at most
MIN_SEGMENT = 1024    # characters per segment, at least (fewer segments for short texts)
EVAL_SEQ_LENGTH = 128  # characters per forward chunk


def segment_layout(n_chars, streams=EVAL_STREAMS):
    """(S, seg): how many parallel segments a text of n_chars is scored in, and the number of
    predicted positions in each (the last one padded)."""
    P = n_chars - 1
    S = max(1, min(streams, P // MIN_SEGMENT))
    return S, -(-P // S)  # ceil


def _segments(ids, streams):
    """(inputs, targets), each (S, seg): the P = len(ids) - 1 predicted positions cut into S
    contiguous segments, position p at [p // seg, p % seg]; targets -1 pad the last one."""
    P = len(ids) - 1
    S, seg = segment_layout(len(ids), streams)
    inputs = np.zeros(S * seg, dtype=np.int32)
    targets = np.full(S * seg, -1, dtype=np.int32)   # -1: padding, not scored
    inputs[:P] = ids[:P]
    targets[:P] = ids[1:]
    return inputs.reshape(S, seg), targets.reshape(S, seg)


def _segment_scores(params, cell, inputs, targets, seq_length, out=None):
    """The total loss in nats of these segments' targets, inputs and targets (S, seg), read a
    forward chunk at a time with the state carried; if out (S, seg) is given, each position's
    log-probability is written there (that of id 0 where the target is -1)."""
    S, seg = inputs.shape
    L, H = params["Wx"].shape[:2]
    state = zero_state(cell, L, S, H, params["Wx"].dtype)
    total = 0.0
    for start in range(0, seg, seq_length):
        cols = slice(start, start + seq_length)
        logits, state, _ = forward(params, cell, inputs[:, cols], state)
        picks = targets[:, cols].T.reshape(-1)                  # time-major, as the logits
        logp = log_softmax(logits)[np.arange(len(picks)), np.maximum(picks, 0)]
        total -= float(logp[picks >= 0].sum(dtype=np.float64))
        if out is not None:
            out[:, cols] = logp.reshape(-1, S).T
    return total


def _scores(params, cell, ids, streams, seq_length, shards, out=None):
    """_segment_scores over the segmented text, in shards of segments when shards is given."""
    shards = shards if shards is not None else InTurn()
    inputs, targets = _segments(ids, streams)
    bounds = shard_bounds(inputs.shape[0], params["Wh"].shape[1], shards.threads)
    jobs = [functools.partial(_segment_scores, params, cell, inputs[lo:hi], targets[lo:hi],
                              seq_length, None if out is None else out[lo:hi])
            for lo, hi in bounds]
    return sum(shards.map(jobs))


def score_ids(params, cell, ids, streams=EVAL_STREAMS, seq_length=EVAL_SEQ_LENGTH, shards=None):
    """Total loss in nats and the number of characters scored (len(ids) - 1)."""
    P = len(ids) - 1
    if P < 1:
        return 0.0, 0
    return _scores(params, cell, ids, streams, seq_length, shards), P


def char_logprobs(params, cell, ids, streams=EVAL_STREAMS, seq_length=EVAL_SEQ_LENGTH,
                  shards=None):
    """log p(ids[p + 1] | ids[:p + 1]) in nats for every predicted position p, (len(ids) - 1,)
    float64, segmented as score_ids is: -char_logprobs(...).sum() is score_ids' total."""
    P = len(ids) - 1
    if P < 1:
        return np.zeros(0)
    S, seg = segment_layout(len(ids), streams)
    out = np.zeros((S, seg))
    _scores(params, cell, ids, streams, seq_length, shards, out)
    return out.reshape(-1)[:P]


def summarize(total_nats, n_chars):
    """The reported figures for a scored text."""
    loss = total_nats / n_chars if n_chars else float("nan")
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss),
            "n_chars": n_chars}


@dataclass(frozen=True)
class Scored:
    """A text scored under a model. Character kept[i] of text is the i-th character the model
    read; logprobs[i] is the log-probability of the (i + 1)-th, given those before it."""
    text: str               # the text as given
    kept: np.ndarray        # (M,) positions in text of the characters scored, increasing
    logprobs: np.ndarray    # (M - 1,) float64, nats
    skipped: dict           # character -> count, characters outside the vocabulary left out

    @property
    def n_skipped(self):
        return sum(self.skipped.values())

    def summary(self):
        return summarize(-float(self.logprobs.sum()), len(self.logprobs))


def score_text(ckpt, text, unk="error", shards=None):
    """Score a str under a checkpoint. Characters outside its vocabulary raise DataError
    (unk='error') or are left out (unk='skip'; their neighbours become adjacent). A text with
    fewer than 2 characters to read is a DataError. shards: a parallel.Shards, or None."""
    vocab = ckpt.vocab
    missing = vocab.missing(text)
    if missing and unk == "error":
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    if missing:
        known = np.array([ch in vocab.stoi for ch in text])
        kept = np.flatnonzero(known)
        skipped = {ch: text.count(ch) for ch in missing}
        scored = "".join(ch for ch in text if ch in vocab.stoi)
    else:
        kept, skipped, scored = np.arange(len(text)), {}, text
    if len(scored) < 2:
        also = " after skipping those outside the vocabulary" if missing else ""
        raise DataError(f"the text has {len(scored)} character(s){also}; scoring needs at least "
                        "2 (the first is only context)")
    logprobs = char_logprobs(ckpt.params, ckpt.model_cfg.model, vocab.encode(scored),
                             shards=shards)
    return Scored(text, kept, logprobs, skipped)


def evaluate_text(ckpt, text):
    """Score a str under a checkpoint: the summary figures. Raises DataError for characters
    outside its vocabulary or a text too short to score."""
    return score_text(ckpt, text).summary()


def total_summary(scored):
    """The figures over several scored texts together (each one's first character is context)."""
    return summarize(-float(sum(s.logprobs.sum() for s in scored)),
                     sum(len(s.logprobs) for s in scored))


def worst(scored, k, context=20):
    """The k characters with the lowest log-probability over the scored texts, lowest first
    (ties: in text order). Each is a dict: index (which text), offset (in that text), line and
    column (from 1), char, logprob, and context (up to `context` characters the model read
    before it)."""
    if not scored:
        return []
    which = np.concatenate([np.full(len(s.logprobs), i) for i, s in enumerate(scored)])
    at = np.concatenate([np.arange(1, len(s.logprobs) + 1) for s in scored])  # index into kept
    logprobs = np.concatenate([s.logprobs for s in scored])
    picks = np.argsort(logprobs, kind="stable")[:k]
    found = []
    for p in picks:
        s, j = scored[which[p]], at[p]
        offset = int(s.kept[j])
        before = "".join(s.text[i] for i in s.kept[max(0, j - context):j])
        line = s.text.count("\n", 0, offset) + 1
        column = offset - (s.text.rfind("\n", 0, offset) + 1) + 1
        found.append({"index": int(which[p]), "offset": offset, "line": line, "column": column,
                      "char": s.text[offset], "logprob": float(logprobs[p]), "context": before})
    return found
