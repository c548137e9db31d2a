"""scripts/ngram.py: the vectorised n-gram models against a pure-Python reference of the same
formulas, their distributions, Kneser-Ney's continuation counts by hand, the command line."""

import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from charrnn.data import split_train_val

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ngram.py"
_spec = importlib.util.spec_from_file_location("ngram", SCRIPT)
ngram = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ngram)


def reference_probs(train, val, V, order, method, reach_back=True):
    """The module docstring's formulas with dicts and loops: the probability of each scored
    held-out character."""
    train, val = [int(i) for i in train], [int(i) for i in val]
    text = train + val
    raw = {k: Counter(tuple(train[i:i + k]) for i in range(len(train) - k + 1))
           for k in range(1, order + 1)}
    cont = {k: Counter(g[1:] for g in raw[k + 1]) for k in range(1, order)}

    def discounts(counts):
        n = [sum(1 for c in counts.values() if c == r) for r in (1, 2, 3, 4)]
        if 0 in n[:3]:
            return 0.5, 1.0, 1.5
        Y = n[0] / (n[0] + 2 * n[1])
        D = tuple(r - (r + 1) * Y * n[r] / n[r - 1] for r in (1, 2, 3))
        return D if all(0 < d <= r for r, d in zip((1, 2, 3), D)) else (0.5, 1.0, 1.5)

    def prob(w, history, k):
        if k == 0:
            return 1 / V
        lower = prob(w, history, k - 1)
        if len(history) < k - 1:
            return lower
        h = tuple(history[len(history) - (k - 1):])
        counts = raw[k] if method == "wb" or k == order else cont[k]
        after = {g[-1]: c for g, c in counts.items() if g[:-1] == h}
        total = sum(after.values())
        if total == 0:
            return lower
        a = after.get(w, 0)
        if method == "wb":
            return (a + len(after) * lower) / (total + len(after))
        D1, D2, D3 = discounts(counts)
        n1 = sum(1 for c in after.values() if c == 1)
        n2 = sum(1 for c in after.values() if c == 2)
        gamma = D1 * n1 + D2 * n2 + D3 * (len(after) - n1 - n2)
        return (a - {0: 0.0, 1: D1, 2: D2}.get(a, D3) + gamma * lower) / total

    start = 0 if reach_back else len(train)
    first = len(train) if reach_back else len(train) + 1
    return np.array([prob(text[t], text[start:t], order) for t in range(first, len(text))])


def noisy_repeats(rng, n, V, period=7, noise=0.2):
    """A text that repeats a short phrase over ids 0 .. V - 1 with random substitutions, so
    that counts of every size occur."""
    phrase = rng.integers(0, V, period)
    ids = np.tile(phrase, n // period + 1)[:n]
    flip = rng.random(n) < noise
    ids[flip] = rng.integers(0, V, flip.sum())
    return ids.astype(np.uint8)


@pytest.mark.parametrize("reach_back", [True, False])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("method", ["wb", "kn"])
def test_matches_the_dict_reference(method, order, reach_back, rng):
    V = 5
    train = noisy_repeats(rng, 300, V - 1)            # id 4 never occurs in training
    val = np.concatenate([noisy_repeats(rng, 30, V - 1), [4, 0, 4]]).astype(np.uint8)
    got = ngram.ngram_probs(train, val, V, order, method, reach_back=reach_back)
    want = reference_probs(train, val, V, order, method, reach_back)
    assert got.shape == want.shape == (len(val) - (0 if reach_back else 1),)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", ["wb", "kn"])
def test_matches_the_reference_when_training_is_shorter_than_the_order(method):
    train, val = np.array([0, 1], np.uint8), np.array([1, 0, 2], np.uint8)
    np.testing.assert_allclose(ngram.ngram_probs(train, val, 3, 4, method),
                               reference_probs(train, val, 3, 4, method), rtol=1e-12, atol=0)


@pytest.mark.parametrize("order", [3, 5])
@pytest.mark.parametrize("method", ["wb", "kn"])
def test_probabilities_over_the_vocabulary_sum_to_one(method, order, rng):
    V = 5
    train = noisy_repeats(rng, 300, V - 1)
    contexts = [train[100:104], train[37:40], train[7:8],     # seen, down to one character
                np.array([4, 4, 4, 4]), np.array([3, 2, 4, 1])]   # 4 never seen in training
    for ctx in contexts:
        total = sum(ngram.ngram_probs(train, np.append(ctx, w).astype(np.uint8), V, order,
                                      method, reach_back=False)[-1] for w in range(V))
        assert total == pytest.approx(1.0, abs=1e-12), ctx
    # the context of a held-out part's first character is the training part's end
    total = sum(ngram.ngram_probs(train, np.array([w], np.uint8), V, order, method)[0]
                for w in range(V))
    assert total == pytest.approx(1.0, abs=1e-12)


def _as_strings(keys, counts, k, alphabet="abc"):
    return {"".join(alphabet[i] for i in ngram.decode_key(key, k, len(alphabet))): int(c)
            for key, c in zip(keys, counts)}


def test_kneser_ney_continuation_counts_by_hand():
    ids = np.array(["abc".index(ch) for ch in "cabcababca"], dtype=np.uint8)
    # bigrams ca ab bc ca ab ba ab bc ca: distinct ca ab bc ba
    assert _as_strings(*ngram.kgram_counts(ids, 2, 3), 2) == {"ab": 3, "ba": 1, "bc": 2, "ca": 3}
    # N1+(.w): a after c and b; b after a; c after b (the first c follows nothing)
    assert _as_strings(*ngram.continuation_counts(ids, 1, 3), 1) == {"a": 2, "b": 1, "c": 1}
    # distinct trigrams cab abc bca aba bab: ab after c and b, bc after a, ca after b, ba after a
    cont = ngram.continuation_counts(ids, 2, 3)
    assert _as_strings(*cont, 2) == {"ab": 2, "ba": 1, "bc": 1, "ca": 1}
    # grouped by context: after 'a' only 'b' (a = 2); after 'b', 'a' and 'c' once each
    level = ngram.make_level(*cont, 3)
    assert level.contexts.tolist() == [0, 1, 2]
    assert level.total.tolist() == [2, 2, 1]
    assert level.types.tolist() == [1, 2, 1]
    assert level.n1.tolist() == [0, 2, 1] and level.n2.tolist() == [1, 0, 0]


def test_kn_discounts_by_hand():
    # Y = 10 / (10 + 2 x 5) = 0.5; D1 = 1 - 2 Y 5/10, D2 = 2 - 3 Y 3/5, D3 = 3 - 4 Y 2/3
    assert ngram.kn_discounts((10, 5, 3, 2)) == pytest.approx((0.5, 1.1, 3 - 4 / 3), abs=1e-15)
    assert ngram.kn_discounts((3, 0, 1, 1)) == ngram.FALLBACK_DISCOUNTS     # undefined
    assert ngram.kn_discounts((1, 1, 10, 1)) == ngram.FALLBACK_DISCOUNTS    # D2 = -8


@pytest.mark.parametrize("method", ["wb", "kn"])
def test_a_held_out_part_repeating_training_scores_low_at_high_order(method, rng):
    ids = np.tile(rng.integers(0, 20, 400), 5).astype(np.uint8)
    train, val = split_train_val(ids, 0.05)              # the held-out 100 repeat training
    rows = {r["order"]: r["loss"] for r in ngram.ngram_scores(train, val, 20, (1, 7), [method])}
    assert rows[1] > 2.5                                 # about ln 20 = 3.0
    assert rows[7] < 0.3


@pytest.mark.parametrize("method", ["wb", "kn"])
def test_an_unseen_character_gets_a_finite_loss(method):
    train = np.array([0, 1] * 20, dtype=np.uint8)
    val = np.array([0, 1, 2], dtype=np.uint8)
    for order in (1, 3, 5):
        p = ngram.ngram_probs(train, val, 3, order, method)
        assert 0 < p[2] < 1 / 3
        row, = ngram.ngram_scores(train, val, 3, [order], [method])
        assert math.isfinite(row["loss"]) and row["loss"] > 0


def test_orders_whose_keys_do_not_fit_int64_are_refused():
    assert ngram.max_order(500) == 7 and ngram.max_order(600) == 6 and ngram.max_order(2) == 63
    ids = np.arange(10, dtype=np.uint16)
    with pytest.raises(ngram.NgramError, match="with a vocabulary of 600 characters the highest "
                                               "order is 6"):
        ngram.best_ngram(ids, ids, 600, orders=(3, 7))


def test_best_ngram_is_the_lowest_of_its_rows(rng):
    ids = noisy_repeats(rng, 2000, 6)
    train, val = split_train_val(ids, 0.05)
    result = ngram.best_ngram(train, val, 6, orders=(2, 3, 4))
    rows = result["results"]
    assert [(r["method"], r["order"]) for r in rows] == [
        ("wb", 2), ("wb", 3), ("wb", 4), ("kn", 2), ("kn", 3), ("kn", 4)]
    assert result["best"] == min(rows, key=lambda r: r["loss"])
    assert all(r["n_chars"] == 100 and r["seconds"] >= 0 for r in rows)
    assert rows[0]["bits_per_char"] == pytest.approx(rows[0]["loss"] / math.log(2))


def test_command_line_json_and_table(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("the cat sat on the mat; the dog sat on the log. " * 40 + "zebra\n",
                    encoding="utf-8")
    ngram.main([str(path), "--orders", "2", "4", "--methods", "kn", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["vocab_size"] == len(set(path.read_text()))
    assert out["n_train"] + out["n_val"] == out["n_chars"] and out["context"] == "text"
    assert [(r["method"], r["order"]) for r in out["results"]] == [("kn", 2), ("kn", 4)]
    assert out["best"]["order"] == 4
    ngram.main([str(path), "--orders", "3", "--context", "val"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["method", "order", "nats/char", "bits/char", "seconds"]
    assert [line.split()[:2] for line in lines[2:4]] == [["wb", "3"], ["kn", "3"]]
    assert lines[4].startswith("best: interpolated ")


def test_command_line_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"ngram: .*missing\.txt: no such file"):
        ngram.main([str(tmp_path / "missing.txt")])
    path = tmp_path / "t.txt"
    path.write_text("ab" * 50, encoding="utf-8")
    with pytest.raises(SystemExit, match="ngram: orders must be >= 1"):
        ngram.main([str(path), "--orders", "0"])
