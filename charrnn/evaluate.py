"""Scoring a text under a model: mean loss in nats per character, bits per character, perplexity,
and each character's log-probability.

The text's predicted positions (every character after the first) are cut into up to `streams`
contiguous segments scored in parallel, each starting from a zero state and carrying its state
from one chunk to the next, like training. Every segment but the first first reads the
EVAL_CONTEXT characters before it without scoring them, so that its first characters are
predicted with nearly the context that one long pass would give them (measured on a 2 x 256 GRU
and tinyshakespeare's last 5 %, 64 segments: one pass 1.5121 nats/char, segments from a zero
state 1.5195, segments with 256 characters of context 1.5121). streams=1 is that one long pass.
Given a parallel.Shards, the segments are scored in shards of streams at the same time, as
training batches are (each segment's figures are its own: only the order of the final sum
differs).

With a completion setting (the completion key), a mask over the ids (data.completion_mask) says
which characters count: every character is still read and predicted, only the counted ones are
summed; score_completions also counts those the model ranks first (teacher-forced accuracy), and
score_text keeps each character's rank-first flag for accuracy.py.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from .data import (DataError, completion_mask, format_chars, strip_labels, take_chars,
                   text_name)
from .direct import context_of
from .layers import log_softmax
from .model import direct_width, forward, zero_state
from .parallel import InTurn, shard_bounds

EVAL_STREAMS = 64     # parallel segments, at most
MIN_SEGMENT = 1024    # scored characters per segment, at least (fewer segments for short texts)
EVAL_CONTEXT = 256    # characters read before each segment but the first, not scored
EVAL_SEQ_LENGTH = 128  # characters per forward chunk, at most
EVAL_CHUNK_FLOATS = 1 << 21  # floats of a chunk's input projection, at most (8 MB: memory)


def segment_layout(n_chars, streams=EVAL_STREAMS, context=EVAL_CONTEXT):
    """(S, seg, C): a text of n_chars has P = n_chars - 1 predicted positions, scored in S
    parallel segments. Segment 0 scores positions 0 .. seg + C - 1 from a zero state; segment
    k >= 1 reads positions k seg .. k seg + C - 1 first without scoring them (the context, C
    characters, already scored by the segment before) and scores the seg after them. Every
    segment is seg + C columns wide; the last is padded. streams=1: one pass, exact."""
    P = n_chars - 1
    S = max(1, min(streams, max(P - context, 0) // MIN_SEGMENT))
    if S == 1:
        return 1, P, 0
    return S, -(-(P - context) // S), context


def segments(ids, streams, context, mask=None):
    """(inputs, targets, positions, counted), each (S, seg + C): column j of segment k reads
    position p = k seg + j (see segment_layout); targets are -1 where nothing is scored (the
    context, and past the end), and positions -1 there too. counted: where a target is scored,
    and with mask (a completion setting's, over ids) only where mask[p + 1]; None without."""
    return _segments(ids, streams, context, mask)[:4]


def _segments(ids, streams, context, mask=None, labels=None):
    """segments(), and the label of each column's input (labels: each position's, over ids),
    gathered as the inputs are (None without labels)."""
    P = len(ids) - 1
    S, seg, C = segment_layout(len(ids), streams, context)
    index = np.int32 if S * (seg + C) < 2**31 else np.int64
    positions = (np.arange(S, dtype=index)[:, None] * index(seg)
                 + np.arange(seg + C, dtype=index)[None, :])
    read = np.minimum(positions, P - 1)
    inputs = ids[read].astype(np.int32)          # gathered from the compact ids, then cast
    labels = None if labels is None else labels[read].astype(np.int32)
    read += 1
    targets = ids[read].astype(np.int32)
    counted = None if mask is None else mask[read]
    del read
    unscored = positions >= P
    unscored[1:, :C] = True                      # the context of segments 1 .. S-1
    targets[unscored] = -1
    positions[unscored] = -1
    if counted is not None:
        counted &= ~unscored
    return inputs, targets, positions, counted, labels


def _segment_scores(params, cell, inputs, targets, seq_length, counted=None, out=None,
                    hits=None, end=None, labels=None):
    """(total loss in nats, characters predicted right) over these segments' counted targets
    (those >= 0, and where counted (S, W) is True when given), inputs and targets (S, W), read a
    forward chunk at a time with the state carried. If out (S, W) is given, each column's
    log-probability is written there (that of id 0 where the target is -1); if hits (S, W) is,
    whether the target was among the most likely characters there (the argmax; a tie counts as
    right, as in Zaremba and Sutskever's MaskedLoss), and the right ones are counted (else the
    count is 0). end, labels (S, W): documents' end mark and the inputs' labels, as in
    model.forward."""
    S, seg = inputs.shape
    L, H, G = params["Wx"].shape
    state = zero_state(cell, L, S, H, params["Wx"].dtype)
    total, right = 0.0, 0
    # chunks short enough that a layer's (T, G, S) input projection stays under EVAL_CHUNK_FLOATS
    seq_length = max(1, min(seq_length, EVAL_CHUNK_FLOATS // (G * S)))
    for start in range(0, seg, seq_length):
        cols = slice(start, start + seq_length)
        logits, state, _ = forward(params, cell, inputs[:, cols], state, keep_cache=False,
                                   end=end, labels=None if labels is None else labels[:, cols],
                                   context=context_of(inputs, start, direct_width(params)))
        picks = targets[:, cols].T.reshape(-1)                  # time-major, as the logits
        rows, picked = np.arange(len(picks)), np.maximum(picks, 0)
        logp = log_softmax(logits)[rows, picked]
        scored = picks >= 0
        if counted is not None:
            scored &= counted[:, cols].T.reshape(-1)
        total -= float(logp[scored].sum(dtype=np.float64))
        if out is not None:
            out[:, cols] = logp.reshape(-1, S).T
        if hits is not None:
            hit = logits[rows, picked] >= logits.max(axis=1)
            hits[:, cols] = hit.reshape(-1, S).T
            right += int((hit & scored).sum())
    return total, right


def _scores(params, cell, ids, streams, seq_length, shards, out=None, context=EVAL_CONTEXT,
            mask=None, hits=None, end=None, labels=None):
    """_segment_scores over the segmented text, in shards of segments when shards is given:
    (total, right). With out (and hits), the log-probability (and whether it was the argmax) of
    each position p (0 .. len(ids) - 2) is written to out[p] (hits[p])."""
    shards = shards if shards is not None else InTurn()
    inputs, targets, positions, counted, labels = _segments(ids, streams, context, mask, labels)
    lp = None if out is None else np.zeros(inputs.shape)
    hp = None if hits is None else np.zeros(inputs.shape, dtype=bool)
    bounds = shard_bounds(inputs.shape[0], params["Wh"].shape[1], shards.count)
    jobs = [functools.partial(_segment_scores, params, cell, inputs[lo:hi], targets[lo:hi],
                              seq_length, None if counted is None else counted[lo:hi],
                              None if lp is None else lp[lo:hi], None if hp is None else hp[lo:hi],
                              end, None if labels is None else labels[lo:hi])
            for lo, hi in bounds]
    results = shards.map(jobs)
    keep = positions >= 0
    if out is not None:
        out[positions[keep]] = lp[keep]
    if hits is not None:
        hits[positions[keep]] = hp[keep]
    return sum(r[0] for r in results), sum(r[1] for r in results)


def score_ids(params, cell, ids, streams=EVAL_STREAMS, seq_length=EVAL_SEQ_LENGTH, shards=None,
              context=EVAL_CONTEXT, mask=None, end=None, labels=None):
    """Total loss in nats and the number of characters scored (len(ids) - 1). streams=1
    scores the text in one pass, the state carried from its first character to its last.
    mask: a completion setting's (data.completion_mask over ids): only the characters j >= 1
    with mask[j] are scored and counted. end, labels (len(ids),): documents' end mark and each
    position's label, as model.forward's (documents: every end mark is scored too)."""
    P = len(ids) - 1
    if P < 1:
        return 0.0, 0
    total, _ = _scores(params, cell, ids, streams, seq_length, shards, context=context, mask=mask,
                       end=end, labels=labels)
    return total, P if mask is None else int(mask[1:].sum())


def score_completions(params, cell, ids, mask, shards=None):
    """For validation with a completion setting: (total loss in nats, characters scored,
    characters predicted right), over the characters j >= 1 with mask[j], segmented as
    score_ids is. Teacher-forced: each prediction is made from the true text before it."""
    if len(ids) < 2:
        return 0.0, 0, 0
    hits = np.zeros(len(ids) - 1, dtype=bool)
    total, right = _scores(params, cell, ids, EVAL_STREAMS, EVAL_SEQ_LENGTH, shards, mask=mask,
                           hits=hits)
    return total, int(mask[1:].sum()), right


def char_logprobs(params, cell, ids, streams=EVAL_STREAMS, seq_length=EVAL_SEQ_LENGTH,
                  shards=None, context=EVAL_CONTEXT, hits=None, end=None, labels=None):
    """log p(ids[p + 1] | ids[:p + 1]) in nats for every predicted position p, (len(ids) - 1,)
    float64, segmented as score_ids is: -char_logprobs(...).sum() is score_ids' total. hits, a
    (len(ids) - 1,) bool array, gets whether ids[p + 1] was the most likely character (a tie
    counts) at each p."""
    P = len(ids) - 1
    if P < 1:
        return np.zeros(0)
    out = np.zeros(P)
    _scores(params, cell, ids, streams, seq_length, shards, out, context, hits=hits, end=end,
            labels=labels)
    return out


def summarize(total_nats, n_chars):
    """The reported figures for a scored text."""
    loss = total_nats / n_chars if n_chars else float("nan")
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss),
            "n_chars": n_chars}


@dataclass(frozen=True)
class Scored:
    """A text scored under a model. Character kept[i] of text is the i-th character the model
    read; logprobs[i] is the log-probability of the (i + 1)-th, given those before it. With a
    completion setting, only the predictions where counted is True are scored (see
    data.completion_mask)."""
    text: str               # the text as given
    kept: np.ndarray        # (M,) positions in text of the characters read, increasing
    logprobs: np.ndarray    # (M - 1,) float64, nats
    skipped: dict           # character -> count, characters outside the vocabulary left out
    counted: np.ndarray | None = None  # (M - 1,) bool: the predictions scored; None: all
    hits: np.ndarray | None = None     # (M - 1,) bool, when asked for: the true character was
                                       # the most likely one (teacher-forced accuracy)
    levels: tuple | None = None        # per line of text, its label's (L, N) (or None); None
                                       # when the lines carry no labels
    labels: np.ndarray | None = None   # (M - 1,) documents with labels: each prediction's label
    label_names: tuple = ()            # ... by id (the model's labels)
    documents: int = 0                 # a model of documents: the documents read

    @property
    def n_skipped(self):
        return sum(self.skipped.values())

    def scored_logprobs(self):
        """The log-probabilities of the scored characters (all, without a completion setting)."""
        return self.logprobs if self.counted is None else self.logprobs[self.counted]

    def read(self):
        """The text as the model read it: text's characters at kept."""
        return take_chars(self.text, self.kept)

    def summary(self):
        logprobs = self.scored_logprobs()
        return dict(summarize(-float(logprobs.sum()), len(logprobs)), **per_label([self]),
                    **({"documents": self.documents} if self.documents else {}))


def per_label(scored):
    """{"labels": {name: summary}} over the predictions of each label of scored texts of
    documents with labels (a document's end mark counts with it); {} without labels."""
    scored = [s for s in scored if s.labels is not None]
    if not scored:
        return {}
    names = scored[0].label_names
    labels = np.concatenate([s.labels for s in scored])
    logprobs = np.concatenate([s.logprobs for s in scored])
    totals = np.bincount(labels, weights=-logprobs, minlength=len(names))
    counts = np.bincount(labels, minlength=len(names))
    return {"labels": {name: summarize(float(totals[k]), int(counts[k]))
                       for k, name in enumerate(names) if counts[k]}}


def score_text(ckpt, text, unk="error", shards=None, exact=False, hits=False, label=None):
    """Score a str under a checkpoint. Characters outside its vocabulary raise DataError
    (unk='error') or are left out (unk='skip'; their neighbours become adjacent). A text with
    fewer than 2 characters to read is a DataError. shards: a parallel.Shards, or None.
    exact: score in one pass, the state carried from the first character to the last (one
    stream: slower), instead of in parallel segments with context. hits: also record whether
    each character was the model's most likely one (Scored.hits).

    With the checkpoint's completion setting, the lines' `L<TAB>N<TAB>` labels are not read
    (Scored.levels keeps them) and only the completions' characters are scored; a text without
    any is a DataError.

    A model of documents reads the text as its documents (lines, or the text as one
    document): each from the start state, its end mark scored with it (so the loss per
    character counts the end marks, as makemore's does); Scored.text is then the text as read,
    end marks included."""
    if ckpt.end is not None:
        return _score_documents(ckpt, text, unk, shards, exact, label)
    vocab, completion = ckpt.vocab, ckpt.train_cfg.completion
    kept, levels = strip_labels(text) if completion else (None, None)
    kept = np.arange(len(text)) if kept is None else kept
    read = text if len(kept) == len(text) else take_chars(text, kept)
    missing = vocab.missing(read)
    if missing and unk == "error":
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    skipped = {}
    if missing:
        known = np.array([ch in vocab.stoi for ch in read])
        kept = kept[known]
        skipped = {ch: read.count(ch) for ch in missing}
        read = "".join(ch for ch in read if ch in vocab.stoi)
    if len(read) < 2:
        also = " after skipping those outside the vocabulary" if missing else ""
        raise DataError(f"the text has {len(read)} character(s){also}; scoring needs at least "
                        "2 (the first is only context)")
    ids = vocab.encode(read)
    counted = None
    if completion:
        counted = completion_ids_mask(vocab, ids, completion)[1:]
        if not counted.any():
            raise DataError(f"no completion to score: completion {completion!r} scores the "
                            f"characters after {completion[0]!r} up to and including "
                            f"{completion[1]!r}, and the text has none")
    right = np.zeros(len(ids) - 1, dtype=bool) if hits else None
    logprobs = char_logprobs(ckpt.params, ckpt.model_cfg.model, ids,
                             streams=1 if exact else EVAL_STREAMS, shards=shards, hits=right)
    return Scored(text, kept, logprobs, skipped, counted, right, levels)


def _score_documents(ckpt, text, unk, shards, exact, label=None):
    """score_text for a model of documents; label: the text's, for a model of files with labels
    (a file's label is its folder's name)."""
    from .documents import documents_from_text

    mode, labelled = ckpt.train_cfg.documents, ckpt.train_cfg.labels
    corpus = documents_from_text(text, mode, labelled, label=label)   # in its own vocabulary
    missing = sorted(set(corpus.vocab.chars) - set(ckpt.vocab.chars))
    if missing and unk == "error":
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    skipped = {ch: text.count(ch) for ch in missing}
    if missing:
        text = text.translate({ord(ch): None for ch in missing})
        corpus = documents_from_text(text, mode, labelled, label=label)
    # the text's own ids and label ids -> the model's
    ids = np.array([ckpt.vocab.stoi[ch] for ch in corpus.vocab.chars])[np.asarray(corpus.ids)]
    labels = None
    if labelled:
        lut = np.array([ckpt.label_id(name) for name in corpus.label_names], dtype=np.int32)
        labels = lut[np.asarray(corpus.label_ids)]
    logprobs = char_logprobs(ckpt.params, ckpt.model_cfg.model, ids,
                             streams=1 if exact else EVAL_STREAMS, shards=shards, end=ckpt.end,
                             labels=labels)
    return Scored(ckpt.vocab.decode(ids), np.arange(len(ids)), logprobs, skipped,
                  labels=None if labels is None else labels[:-1], label_names=ckpt.labels,
                  documents=int(np.count_nonzero(ids == ckpt.end)) - 1)


def completion_ids_mask(vocab, ids, completion):
    """data.completion_mask for a completion setting's two characters; all False when the
    vocabulary lacks either (then nothing can be scored)."""
    if any(ch not in vocab.stoi for ch in completion):
        return np.zeros(len(ids), dtype=bool)
    return completion_mask(ids, vocab.stoi[completion[0]], vocab.stoi[completion[1]])


def total_summary(scored):
    """The figures over several scored texts together (each one's first character is context)."""
    return summarize(-float(sum(s.scored_logprobs().sum() for s in scored)),
                     sum(len(s.scored_logprobs()) for s in scored))


def worst(scored, k, context=20):
    """The k characters with the lowest log-probability over the scored texts, lowest first
    (ties: in text order). Each is a dict: index (which text), offset (in that text), line and
    column (from 1), char, logprob, and context (up to `context` characters the model read
    before it)."""
    if not scored:
        return []
    # only the scored characters (a completion setting's); at: their index into kept
    at = [np.arange(1, len(s.logprobs) + 1) for s in scored]
    at = [a if s.counted is None else a[s.counted] for a, s in zip(at, scored)]
    which = np.concatenate([np.full(len(a), i) for i, a in enumerate(at)])
    at = np.concatenate(at)
    logprobs = np.concatenate([s.scored_logprobs() for s in scored])
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


# --------------------------------------------------------------------------- several texts


@dataclass(frozen=True)
class Evaluation:
    """Several texts scored under one model (`charrnn eval`): a report per text and their total
    (summary figures; with unk='skip' also skipped and skipped_chars; with accuracy, accuracy.py's
    figures; with the model's completion setting, completion), and the most surprising
    characters, each with the index of its text."""
    names: tuple            # the texts' names, as given ('-' for stdin)
    reports: tuple          # dict per text
    total: dict
    worst: tuple = ()       # worst()'s dicts
    notes: tuple = ()       # what to say about it (e.g. the model used)

    def shown_names(self):
        """The texts' names as messages give them (<stdin> for '-')."""
        return [text_name(name) for name in self.names]

    def as_json(self):
        """What `eval --json` prints: the total; per file when there are several; the worst."""
        result = dict(self.total)
        if len(self.names) > 1:
            result["files"] = [{"file": f, **r} for f, r in zip(self.names, self.reports)]
        if self.worst:
            result["worst"] = [{"file": self.names[w["index"]],
                                **{k: v for k, v in w.items() if k != "index"}}
                               for w in self.worst]
        return result


def evaluate_texts(ckpt, texts, unk="error", exact=False, accuracy=False, worst_k=0,
                   per_char=None, shards=None):
    """Score texts, a sequence of (name, str), under ckpt: an Evaluation. DataError naming the
    text at fault. accuracy: also the completions' accuracy (accuracy.py; the model must have a
    completion setting: accuracy.check_completion). per_char: a path to write every scored
    character's log-probability to (write_per_char)."""
    from .accuracy import accuracy_report, check_completion, completion_counts, merge_counts

    completion = check_completion(ckpt) if accuracy else ckpt.train_cfg.completion
    scored, counts = [], []
    for name, text in texts:
        try:
            scored.append(score_text(ckpt, text, unk, shards, exact, hits=accuracy,
                                     label=_folder_label(ckpt, name)))
        except DataError as e:
            raise DataError(f"{text_name(name)}: {e}") from None
        if accuracy:
            counts.append(completion_counts(ckpt, scored[-1], shards))
    names = tuple(name for name, _ in texts)
    if per_char is not None:
        write_per_char(per_char, names, scored)
    what = {"completion": completion} if completion else {}
    reports = tuple(dict(s.summary(), **what, **_skip_report([s], unk),
                         **(accuracy_report(c) if accuracy else {}))
                    for s, c in zip(scored, counts or [None] * len(scored)))
    documents = sum(s.documents for s in scored)
    total = dict(total_summary(scored), **per_label(scored), **what, **_skip_report(scored, unk),
                 **({"documents": documents} if documents else {}),
                 **(accuracy_report(merge_counts(counts)) if accuracy else {}))
    return Evaluation(names, reports, total, tuple(worst(scored, worst_k) if worst_k else ()))


def _folder_label(ckpt, name):
    """The label of a text a model of files with labels scores: the name of the folder the
    file lies in, as training reads it (None otherwise, and for stdin)."""
    from pathlib import Path

    if not (ckpt.train_cfg.labels and ckpt.train_cfg.documents == "files") or str(name) == "-":
        return None
    return Path(name).resolve().parent.name


def _skip_report(scored, unk):
    """With unk='skip': how many characters the scored texts left out, and which (sorted)."""
    if unk != "skip":
        return {}
    chars = sorted({ch for s in scored for ch in s.skipped})
    return {"skipped": sum(s.n_skipped for s in scored), "skipped_chars": chars}


def write_per_char(path, names, scored):
    """One row per scored character: file, offset (in the file's text), char, logprob. Tabs,
    newlines, carriage returns and backslashes in file and char are written as \\t, \\n, \\r,
    \\\\. DataError if the file cannot be written."""
    escape = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("file\toffset\tchar\tlogprob\n")
            for name, s in zip(names, scored):
                name, text, kept = str(name).translate(escape), s.text, s.kept[1:]
                if s.counted is not None:     # a completion setting: its characters only
                    kept = kept[s.counted]
                f.writelines(f"{name}\t{k}\t{text[k].translate(escape)}\t{lp:.6f}\n"
                             for k, lp in zip(kept.tolist(), s.scored_logprobs().tolist()))
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None
