"""Accuracy on prompt/completion texts: a model trained with a completion setting (the
completion key, e.g. "@.": a separator, then an end mark), scored line by line.

Each line of such a text is a prompt, the separator and a completion that ends with the end mark
(`program@result.`, as scripts/learning_to_execute.py writes them, optionally after an
`L<TAB>N<TAB>` label). Two measures, as in Zaremba and Sutskever's "Learning to Execute":

- teacher-forced per-character accuracy: the fraction of the completions' characters (the end
  marks included) that the model gives the highest probability, each predicted from the true
  text before it (the same pass as the loss: evaluate.score_text; a tie counts as right, as in
  the authors' MaskedLoss);
- greedy exact match: the fraction of lines whose completion the model writes itself. Each line
  is decoded on its own, from a zero state: the model reads a newline (what every line but a
  text's first follows in training; left out if the vocabulary has none), the prompt and the
  separator, then takes its most likely character again and again until it writes the end mark
  or as many characters as the true completion has (a longer answer cannot match). The line
  counts if what it wrote is the completion, end mark included. Lines are decoded in batches of
  DECODE_BATCH, sorted by prompt length so that little of a batch is padding; the prompts go
  through model.forward (each stream's state zeroed until its own prompt starts), the answers
  through sample.Stepper.

Lines with their labels' (L, N) are also counted per level. A line without a separator followed
by an end mark has no completion to decode (it adds nothing to the exact match), though any
characters it has after a separator are scored teacher-forced.
"""

import functools

import numpy as np

from .config import ConfigError
from .direct import context_of
from .model import direct_width, forward, zero_state
from .parallel import InTurn
from .sample import PRIME_CHUNK, Stepper

DECODE_BATCH = 256   # lines decoded together


def check_completion(ckpt):
    """The checkpoint's completion setting; ConfigError if it has none."""
    if not ckpt.train_cfg.completion:
        where = f"{ckpt.path} was" if ckpt.path is not None else "this model was"
        raise ConfigError(f"{where} trained without a completion setting (the completion key), "
                          "and accuracy is measured on completions", "completion")
    return ckpt.train_cfg.completion


def completion_counts(ckpt, scored, shards=None):
    """Count, for a text scored with hits (evaluate.score_text(..., hits=True)): {key: [scored
    characters, right characters, lines with a completion, lines written exactly]}, key None
    for the whole text and (L, N) for the lines of each labelled level. accuracy_report turns
    it into figures; merge_counts adds up several texts'."""
    separator, end = check_completion(ckpt)
    if scored.hits is None:
        raise ValueError("completion_counts needs a text scored with hits=True")
    read, kept = scored.read(), scored.kept
    newlines = np.flatnonzero(np.frombuffer(scored.text.encode("utf-32-le", "surrogatepass"),
                                            dtype="<u4") == ord("\n"))
    n_lines = len(newlines) + 1
    # the line (of the text as given) of each character read: the newlines before it
    line_of = np.searchsorted(newlines, kept, side="left")
    # teacher-forced: prediction p is of character p + 1
    targets_line = line_of[1:]
    chars = np.bincount(targets_line[scored.counted], minlength=n_lines)
    right = np.bincount(targets_line[scored.counted & scored.hits], minlength=n_lines)
    # greedy: the completion of each line that has one
    bounds = np.searchsorted(line_of, np.arange(n_lines + 1))
    prefix = "\n" if "\n" in ckpt.vocab.stoi else ""
    lines, prompts, truths = [], [], []
    for j in range(n_lines):
        line = read[bounds[j]:bounds[j + 1]].rstrip("\n")
        at = line.find(separator)
        stop = line.find(end, at + 1) if at >= 0 else -1
        if stop >= 0:
            lines.append(j)
            prompts.append(prefix + line[:at + 1])
            truths.append(line[at + 1:stop + 1])
    answers = greedy_completions(ckpt, prompts, [len(t) for t in truths], shards)
    exact = np.zeros(n_lines, dtype=np.int64)
    has = np.zeros(n_lines, dtype=np.int64)
    has[lines] = 1
    exact[lines] = [a == t for a, t in zip(answers, truths)]
    levels = scored.levels if scored.levels is not None else (None,) * n_lines
    counts = {None: [int(chars.sum()), int(right.sum()), int(has.sum()), int(exact.sum())]}
    for j, level in enumerate(levels):
        if level is not None:
            row = counts.setdefault(level, [0, 0, 0, 0])
            for k, value in enumerate((chars[j], right[j], has[j], exact[j])):
                row[k] += int(value)
    return counts


def merge_counts(all_counts):
    """completion_counts of several texts, added up."""
    merged = {}
    for counts in all_counts:
        for key, row in counts.items():
            merged[key] = [a + b for a, b in zip(merged.get(key, [0, 0, 0, 0]), row)]
    return merged


def _figures(row):
    chars, right, lines, exact = row
    return {"accuracy": right / chars if chars else None, "correct_chars": right,
            "exact_match": exact / lines if lines else None, "exact_lines": exact,
            "n_lines": lines}


def accuracy_report(counts):
    """The figures of completion_counts: accuracy (teacher-forced, per character),
    correct_chars, exact_match (greedy, per line), exact_lines, n_lines; and, when lines carry
    labels, levels: one dict per (L, N), in order, with length, nesting, n_chars and the same
    keys. A fraction of nothing is None."""
    report = _figures(counts[None])
    levels = sorted(key for key in counts if key is not None)
    if levels:
        report["levels"] = [{"length": L, "nesting": N, "n_chars": counts[(L, N)][0],
                             **_figures(counts[(L, N)])} for L, N in levels]
    return report


def greedy_completions(ckpt, prompts, max_chars, shards=None):
    """For each prompt (a str in the model's vocabulary, ending with the separator), what greedy
    decoding writes after it, from a zero state: the most likely character at every step, until
    the end mark (included) or max_chars[i] characters. Batches of DECODE_BATCH lines run as
    shards when shards (a parallel.Shards) is given."""
    end = ckpt.vocab.stoi[check_completion(ckpt)[1]]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = [order[k:k + DECODE_BATCH] for k in range(0, len(order), DECODE_BATCH)]
    jobs = [functools.partial(_decode, ckpt, [prompts[i] for i in batch],
                              [max_chars[i] for i in batch], end) for batch in batches]
    answers = [None] * len(prompts)
    for batch, texts in zip(batches, (shards or InTurn()).map(jobs)):
        for i, text in zip(batch, texts):
            answers[i] = text
    return answers


def _decode(ckpt, prompts, max_chars, end):
    """greedy_completions for one batch of prompts, in this thread."""
    params, cell, vocab = ckpt.params, ckpt.model_cfg.model, ckpt.vocab
    L, H = params["Wx"].shape[:2]
    N = len(prompts)
    encoded = [vocab.encode(p) for p in prompts]
    # all but each prompt's last character (the separator) through model.forward, right-aligned
    # in columns 0 .. P - 1: stream n's own characters start at column starts[n], and its state
    # is zero there (what the columns before held is thrown away)
    P = max(len(x) - 1 for x in encoded)
    starts = np.array([P - (len(x) - 1) for x in encoded])
    inputs = np.zeros((N, P), dtype=np.int32)
    for n, x in enumerate(encoded):
        inputs[n, starts[n]:] = x[:-1]
    state = zero_state(cell, L, N, H, params["Wx"].dtype)
    # what the direct features (direct.py) see before a column: the stream's own characters,
    # none (-1) where its prompt has not started
    width = direct_width(params)
    seen = np.where(np.arange(P) >= starts[:, None], inputs, -1)
    cuts = sorted(set(starts.tolist()) | set(range(0, P, PRIME_CHUNK)) | {P})
    for a, b in zip(cuts[:-1], cuts[1:]):
        state = _zero_where(state, starts == a)
        _, state, _ = forward(params, cell, inputs[:, a:b], state, keep_cache=False,
                              context=context_of(seen, a, width))
    state = _zero_where(state, starts == P)     # prompts of the separator alone
    stepper = Stepper(params, cell, N)
    stepper.load_state(state, context_of(seen, P, width))
    logits = stepper.step(np.array([x[-1] for x in encoded], dtype=np.intp))
    # then the greedy steps: each stream until its end mark or its max_chars
    caps = np.array(max_chars)
    length = caps.copy()
    done = caps <= 0
    steps = int(caps.max(initial=0))
    written = np.zeros((steps, N), dtype=np.intp)
    for t in range(steps):
        if done.all():
            break
        ids = np.argmax(logits, axis=1)
        written[t] = ids
        ended = ~done & (ids == end)
        length[ended] = t + 1
        done |= ended | (t + 1 >= caps)
        if t + 1 < steps:
            logits = stepper.step(ids)
    return [vocab.decode(written[:length[n], n]) for n in range(N)]


def _zero_where(state, streams):
    """The state with the given streams' columns set to zero (a new copy where any are)."""
    if not streams.any():
        return state
    return [tuple(np.where(streams, 0, s).astype(s.dtype) for s in layer) for layer in state]

