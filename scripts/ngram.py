"""Character n-gram baselines: the held-out loss of interpolated Witten-Bell and interpolated
modified Kneser-Ney models of a text, to set charrnn's figures beside (issue 12).

    python scripts/ngram.py TEXT [--orders 3 4 5 6 7] [--methods wb kn] [--val-frac 0.05]
                                 [--context text|val] [--json]

The text is read and encoded as `charrnn train` reads it (charrnn.data.load_corpus) and split
as training splits it (split_train_val: the last val_frac is held out). The models count the
k-grams that lie wholly in the training part and predict each held-out character from the
n - 1 characters before it; V is the vocabulary of the whole text, so a held-out character
never seen in training still gets probability mass from the uniform distribution at the bottom.
With --context text (the default) the contexts of the first held-out characters reach back
into the training part, as a model reading the whole text would; with --context val every
character of the held-out part but the first is scored from the held-out part alone (shorter
contexts at its start), the characters charrnn's validation loss averages over.

The formulas, for a context h of k - 1 characters, h' its last k - 2, w the next character,
level 0 the uniform distribution 1 / V (Chen & Goodman, "An empirical study of smoothing
techniques for language modeling", 1998, sections 2.7 and 3.3):

Witten-Bell, raw counts c at every level:
    P(w | h) = (c(hw) + N1+(h.) P(w | h')) / (c(h) + N1+(h.))
with c(h) = sum_w c(hw) and N1+(h.) the number of distinct characters seen after h.

Modified Kneser-Ney: a(hw) = c(hw) at the model's own order n, and below it the continuation
count a(hw) = N1+(.hw), the number of distinct characters seen before hw in a (k+1)-gram (a
k-gram seen only at the very start of the training part, after nothing, has none):
    P(w | h) = (a(hw) - D(a(hw)) + gamma(h) P(w | h')) / a(h)
    gamma(h) = D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)
with a(h) = sum_w a(hw), Nr(h.) the number of w with a(hw) = r (N3+: >= 3), D(0) = 0,
D(1) = D1, D(2) = D2, D(a >= 3) = D3, and per level from its count-of-counts n_r:
    Y = n1 / (n1 + 2 n2),  D_r = r - (r + 1) Y n_{r+1} / n_r
Where a level's D_r is undefined or outside (0, r] (small texts, the unigram level's few
counts), that level uses (0.5, 1, 1.5), KenLM's --discount_fallback.

Both: a context never seen in training (c(h) = 0 or a(h) = 0), or one that would start before
the text (or before the held-out part, under --context val), takes the level below unchanged.

Every k-gram is an int64 key, its characters as digits in base V (V^n must fit in int64: a
vocabulary of 500 allows orders up to 7), counted by sorting, and the held-out characters'
k-grams and contexts are found with np.searchsorted. The levels are built from 1 up, each from
the training text, and freed once the level above has used them, so a 100 MB text needs a few
GB and minutes (see `main`'s table: seconds per model as if computed alone).
"""

import argparse
import json
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METHODS = ("wb", "kn")
METHOD_NAMES = {"wb": "interpolated Witten-Bell", "kn": "interpolated modified Kneser-Ney"}
DEFAULT_ORDERS = (3, 4, 5, 6, 7)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)    # KenLM's --discount_fallback


class NgramError(ValueError):
    """Orders, methods or texts that these models cannot be built or scored on."""


# ----------------------------------------------------------------------------- counting


def kgram_keys(ids, k, V):
    """The int64 key of every k-gram wholly in ids, first character most significant:
    key(x_1 .. x_k) = sum_j x_j V^(k-j). (len(ids) - k + 1,), empty when ids is shorter."""
    n = max(len(ids) - k + 1, 0)
    keys = np.zeros(n, dtype=np.int64)
    for j in range(k):
        keys *= V
        keys += ids[j:j + n]    # cast from the compact ids chunk by chunk, no int64 copy of ids
    return keys


def _count_sorted(keys):
    """(distinct keys sorted, their counts); sorts keys in place (the caller's copy)."""
    keys.sort()
    if len(keys) == 0:
        return keys, np.zeros(0, dtype=np.int64)
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    del new
    return keys[starts], np.diff(starts, append=len(keys))


def kgram_counts(ids, k, V):
    """(keys, counts): the distinct k-grams of ids, sorted by key, and how often each occurs."""
    return _count_sorted(kgram_keys(ids, k, V))


def continuation_counts(ids, k, V):
    """(keys, counts): the k-grams g of ids that follow some character, sorted by key, and
    N1+(.g), the number of distinct characters seen just before g."""
    grams, _ = kgram_counts(ids, k + 1, V)
    return _count_sorted(grams % V ** k)     # the k-gram after the first character


def decode_key(key, k, V):
    """The k ids of a k-gram key, first to last."""
    return [(int(key) // V ** (k - 1 - j)) % V for j in range(k)]


@dataclass(frozen=True)
class Level:
    """The counts of one level, k-grams grouped by their context (the first k - 1 ids)."""
    grams: np.ndarray      # (G,) int64 k-gram keys, sorted
    counts: np.ndarray     # (G,) c(hw) or a(hw), each >= 1
    contexts: np.ndarray   # (C,) int64 context keys (gram // V), sorted
    total: np.ndarray      # (C,) sum_w of the counts after each context
    types: np.ndarray      # (C,) N1+(h.): distinct characters after it
    n1: np.ndarray         # (C,) N1(h.): those with count 1
    n2: np.ndarray         # (C,) N2(h.): those with count 2
    discounts: tuple       # (D1, D2, D3) of modified Kneser-Ney for these counts


def make_level(grams, counts, V):
    """A Level from sorted distinct k-gram keys and their counts (both at least one long)."""
    dtype = np.int32 if counts.sum() < 2**31 else np.int64   # halves a large level's memory
    counts = counts.astype(dtype)
    context_of = grams // V                          # sorted too: the keys are context-major
    new = np.empty(len(grams), dtype=bool)
    new[0] = True
    np.not_equal(context_of[1:], context_of[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    del new
    contexts = context_of[starts]
    del context_of
    return Level(grams, counts, contexts,
                 total=np.add.reduceat(counts, starts, dtype=dtype),
                 types=np.diff(starts, append=len(grams)).astype(dtype),
                 n1=np.add.reduceat(counts == 1, starts, dtype=dtype),
                 n2=np.add.reduceat(counts == 2, starts, dtype=dtype),
                 discounts=kn_discounts(np.bincount(np.minimum(counts, 5), minlength=6)[1:5]))


def kn_discounts(n):
    """(D1, D2, D3) from the count-of-counts n = (n1, n2, n3, n4) (Chen & Goodman eq. 26);
    FALLBACK_DISCOUNTS where one is undefined or outside (0, r]."""
    n1, n2, n3, n4 = (int(x) for x in n)
    if n1 == 0 or n2 == 0 or n3 == 0:
        return FALLBACK_DISCOUNTS
    Y = n1 / (n1 + 2 * n2)
    D = (1 - 2 * Y * n2 / n1, 2 - 3 * Y * n3 / n2, 3 - 4 * Y * n4 / n3)
    if not all(0 < d <= r for r, d in enumerate(D, start=1)):
        return FALLBACK_DISCOUNTS
    return D


# ----------------------------------------------------------------------------- scoring


def _find(keys, queries):
    """(index, found): where each query is in the sorted keys, and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    pos = np.searchsorted(keys, queries)
    np.minimum(pos, len(keys) - 1, out=pos)
    return pos, keys[pos] == queries


def _interpolate(level, method, contexts, valid, targets, p_lower, V):
    """P(w | h) at one level for every scored position: contexts (M,) the context keys, valid
    (M,) whether the context lies within the readable history, targets (M,) the w, p_lower (M,)
    P(w | h') from the level below."""
    if level is None:                    # a training part shorter than k: nothing seen
        return p_lower
    gi, g_found = _find(level.grams, contexts * V + targets)
    ci, c_found = _find(level.contexts, contexts)
    c_found &= valid
    count = np.where(g_found & c_found, level.counts[gi], 0).astype(np.float64)
    total = np.where(c_found, level.total[ci], 0).astype(np.float64)
    types = np.where(c_found, level.types[ci], 0).astype(np.float64)
    seen = total > 0
    if method == "wb":
        # P(w | h) = (c(hw) + N1+(h.) P(w | h')) / (c(h) + N1+(h.))
        p = (count + types * p_lower) / np.where(seen, total + types, 1.0)
    else:
        # P(w | h) = (a(hw) - D(a(hw)) + (D1 N1 + D2 N2 + D3 N3+) P(w | h')) / a(h)
        D1, D2, D3 = level.discounts
        n1 = np.where(c_found, level.n1[ci], 0).astype(np.float64)
        n2 = np.where(c_found, level.n2[ci], 0).astype(np.float64)
        gamma = D1 * n1 + D2 * n2 + D3 * (types - n1 - n2)
        discount = np.array([0.0, D1, D2, D3])[np.minimum(count, 3).astype(np.int64)]
        p = (count - discount + gamma * p_lower) / np.where(seen, total, 1.0)
    return np.where(seen, p, p_lower)


def max_order(V, limit=64):
    """The highest order n whose keys (< V^n) fit in int64 (limit for V = 1)."""
    n = 1
    while n < limit and V ** (n + 1) <= 2**63:
        n += 1
    return n


def _check(orders, methods, V):
    """Orders sorted and distinct, methods in METHODS' order; NgramError if unusable."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise NgramError(f"methods must be among {', '.join(METHODS)}, got {list(methods)}")
    orders = sorted(set(int(n) for n in orders))
    if not orders or orders[0] < 1:
        raise NgramError(f"orders must be >= 1, got {orders}")
    if V < 1:
        raise NgramError(f"vocab_size must be >= 1, got {V}")
    top = max_order(V)
    if orders[-1] > top:
        raise NgramError(f"order {orders[-1]} needs keys up to {V}^{orders[-1]}, more than int64 "
                         f"holds; with a vocabulary of {V} characters the highest order is {top}")
    return orders, [m for m in METHODS if m in methods]


def _model_probs(ids_train, ids_val, V, orders, methods, reach_back, seconds):
    """Yield (method, order, p) as each model is done: p (M,) the probability of each scored
    held-out character. seconds: a dict that gets each model's time as if computed alone."""
    text = np.concatenate([ids_train, ids_val])
    if len(text) and int(text.max()) >= V:
        raise NgramError(f"id {int(text.max())} is outside a vocabulary of {V} characters")
    n_train = len(ids_train)
    if reach_back:
        scored = np.arange(n_train, len(text))
        first = 0                                 # the history may start in the training part
    else:
        scored = np.arange(n_train + 1, len(text))
        first = n_train
    if len(scored) == 0:
        raise NgramError(f"the held-out part ({len(ids_val)} characters) has no character to "
                         "score" + ("" if reach_back else " after its first"))
    targets = text[scored].astype(np.int64)
    K = orders[-1]
    timer = {}                                    # part -> seconds

    def timed(part, f, *args):
        start = time.perf_counter()
        out = f(*args)
        timer[part] = timer.get(part, 0.0) + time.perf_counter() - start
        return out

    def build_raw(k):
        grams, counts = kgram_counts(ids_train, k, V)
        return make_level(grams, counts, V) if len(grams) else None

    def build_continuation(above, k):
        if above is None:
            return None
        return make_level(*_count_sorted(above.grams % V ** k), V)

    uniform = np.full(len(scored), 1.0 / V)
    p_wb = p_chain = uniform                      # Witten-Bell so far; Kneser-Ney's lower levels
    contexts = np.zeros(len(scored), dtype=np.int64)  # level k: the k - 1 ids before each target
    raw = {1: timed("raw1", build_raw, 1)}
    for k in range(1, K + 1):
        if k > 1:       # extend each context by one id on the left: x V^(k-2) + context
            start = time.perf_counter()
            left = scored - (k - 1)
            contexts += text[np.maximum(left, 0)].astype(np.int64) * V ** (k - 2)
            timer[f"raw{k}"] += time.perf_counter() - start
        valid = scored - (k - 1) >= first
        if k < K:
            raw[k + 1] = timed(f"raw{k + 1}", build_raw, k + 1)
        if "wb" in methods:
            p_wb = timed(f"wb{k}", _interpolate, raw[k], "wb", contexts, valid, targets, p_wb, V)
            if k in orders:
                seconds[("wb", k)] = sum(timer[f"raw{j}"] + timer[f"wb{j}"] for j in range(1, k + 1))
                yield "wb", k, p_wb
        if "kn" in methods:
            if k in orders:
                p = timed(f"top{k}", _interpolate, raw[k], "kn", contexts, valid, targets,
                          p_chain, V)
                seconds[("kn", k)] = (sum(timer[f"raw{j}"] for j in range(1, k + 1))
                                      + sum(timer[f"cont{j}"] + timer[f"chain{j}"]
                                            for j in range(1, k)) + timer[f"top{k}"])
                yield "kn", k, p
            if k < K:
                level = timed(f"cont{k}", build_continuation, raw[k + 1], k)
                p_chain = timed(f"chain{k}", _interpolate, level, "kn", contexts, valid, targets,
                                p_chain, V)
                del level
        del raw[k]                                # free as we go: the level above is built


def ngram_probs(ids_train, ids_val, vocab_size, order, method, reach_back=True):
    """The probability of each scored held-out character under one model, float64: (len(ids_val),)
    with reach_back, else (len(ids_val) - 1,) for ids_val[1:]."""
    orders, methods = _check([order], [method], vocab_size)
    models = _model_probs(ids_train, ids_val, vocab_size, orders, methods, reach_back, {})
    return next(p for m, n, p in models if (m, n) == (method, order))


def ngram_scores(ids_train, ids_val, vocab_size, orders=DEFAULT_ORDERS, methods=METHODS,
                 reach_back=True):
    """Held-out loss of every (method, order): a list of dicts with method, order, loss (mean
    nats per scored character), bits_per_char, n_chars (scored) and seconds (the model's own
    counting and scoring time, as if computed alone; the levels models share are computed
    once)."""
    orders, methods = _check(orders, methods, vocab_size)
    seconds, rows = {}, []
    for method, order, p in _model_probs(ids_train, ids_val, vocab_size, orders, methods,
                                         reach_back, seconds):
        loss = float(-np.log(p).mean())
        rows.append({"method": method, "order": order, "loss": loss,
                     "bits_per_char": loss / math.log(2), "n_chars": len(p),
                     "seconds": seconds[(method, order)]})
    return sorted(rows, key=lambda r: (METHODS.index(r["method"]), r["order"]))


def best_ngram(ids_train, ids_val, vocab_size, orders=DEFAULT_ORDERS, methods=METHODS,
               reach_back=True):
    """The best n-gram model of the held-out part: {"best": row, "results": rows, "seconds":
    wall time}, rows as ngram_scores gives them, best the one with the lowest loss.

    ids_train, ids_val: the ids of charrnn.data.split_train_val; vocab_size: the whole text's V.
    """
    start = time.perf_counter()
    rows = ngram_scores(ids_train, ids_val, vocab_size, orders, methods, reach_back)
    return {"best": min(rows, key=lambda r: r["loss"]), "results": rows,
            "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- command line


def main(argv=None):
    from charrnn.data import DataError, load_corpus, split_train_val

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", type=Path, help="a UTF-8 text file")
    parser.add_argument("--orders", type=int, nargs="+", default=list(DEFAULT_ORDERS),
                        help="n-gram orders (default: 3 4 5 6 7)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="wb: interpolated Witten-Bell; kn: interpolated modified "
                             "Kneser-Ney (default: both)")
    parser.add_argument("--val-frac", type=float, default=0.05,
                        help="the last fraction held out, as `charrnn train` (default 0.05)")
    parser.add_argument("--context", choices=("text", "val"), default="text",
                        help="text: held-out contexts may reach back into the training part "
                             "(default); val: score the held-out part's characters after its "
                             "first from the held-out part alone, as charrnn's validation does")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not 0 < args.val_frac < 1:
        parser.error(f"--val-frac must be in (0, 1), got {args.val_frac}")
    try:
        corpus = load_corpus(args.text)
        train, val = split_train_val(corpus.ids, args.val_frac)
        V = len(corpus.vocab)
        result = best_ngram(train, val, V, args.orders, args.methods,
                            reach_back=args.context == "text")
    except (DataError, NgramError) as e:
        sys.exit(f"ngram: {e}")
    # ru_maxrss is this process's own peak: run directly, its parent is a small shell
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {"text": str(args.text), "n_chars": len(corpus.ids), "n_train": len(train),
               "n_val": len(val), "vocab_size": V, "val_frac": args.val_frac,
               "context": args.context, **result, "peak_mb": peak_mb}
    if args.json:
        print(json.dumps(summary))
        return
    where = ("contexts reach back into the training part" if args.context == "text"
             else "scored from the held-out part alone")
    print(f"{args.text}: {len(corpus.ids):,} characters, V = {V}; held out: the last "
          f"{args.val_frac:g} ({len(val):,} characters), {where}")
    print(f"{'method':6} {'order':>5} {'nats/char':>9} {'bits/char':>9} {'seconds':>8}")
    for r in result["results"]:
        print(f"{r['method']:6} {r['order']:>5} {r['loss']:>9.4f} {r['bits_per_char']:>9.4f} "
              f"{r['seconds']:>8.2f}")
    b = result["best"]
    print(f"best: {METHOD_NAMES[b['method']]}, order {b['order']}: {b['loss']:.4f} nats/char "
          f"({b['bits_per_char']:.4f} bits/char); {result['seconds']:.1f} s in all, "
          f"peak memory {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
