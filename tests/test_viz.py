"""charrnn.viz: each character's score, rank, guesses and unit values (against a plain loop of the
step functions), the features and the choice of units, and the View (the page: test_viz_page.py)."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from charrnn.data import DataError
from charrnn.errors import ViewError as ErrorsViewError
from charrnn.layers import (gru_step_forward, log_softmax, lstm_step_forward, rnn_step_forward)
from charrnn.viz import (CONTEXT, MIN_SD, VARIED_UNITS, ViewError, build_view, correlations,
                         cut_note, known_text, parse_units, pick_units, text_features,
                         trace_ids)

from view_helpers import make_checkpoint

TEXT = ('First Citizen:\n\tBefore we proceed "any further", hear me (speak [now]).\n\n'
        'All:\nSpeak, speak. </script> <b>bold</b> &amp; "quoted (and {deep}) text"\n') * 3


def loop_trace(params, cell, ids):
    """The reference: the plain one-step functions, one character at a time, in float64.
    Returns per character t: log p(ids[t] | ids[:t]) rows (T, V) (t = 0: nan) and units (L, T, H)."""
    L, H = params["Wx"].shape[:2]
    h = [np.zeros((1, H)) for _ in range(L)]
    c = [np.zeros((1, H)) for _ in range(L)]
    rows, units = [np.full(params["by"].shape, np.nan)], []
    for i in ids:
        x, values = params["embed"][i][None, :], []
        for l in range(L):
            Wx, Wh, b = params["Wx"][l], params["Wh"][l], params["b"][l]
            if cell == "rnn":
                h[l], _ = rnn_step_forward(x, h[l], Wx, Wh, b)
            elif cell == "lstm":
                h[l], c[l], _ = lstm_step_forward(x, h[l], c[l], Wx, Wh, b)
            else:
                h[l], _ = gru_step_forward(x, h[l], Wx, Wh, b, params["bhn"][l])
            values.append(np.tanh(c[l][0]) if cell == "lstm" else h[l][0])
            x = h[l]
        rows.append(log_softmax(x @ params["Why"] + params["by"])[0])
        units.append(values)
    return np.array(rows[:-1]), np.array(units).transpose(1, 0, 2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_trace_matches_a_loop_of_the_step_functions(cell):
    ckpt = make_checkpoint(cell, hidden_size=6, num_layers=2, seed=3, dtype=np.float64)
    ids = ckpt.vocab.encode(TEXT[:40]).astype(np.int64)
    trace = trace_ids(ckpt.params, cell, ids, top=5, chunk=7)   # chunks carry the state
    rows, units = loop_trace(ckpt.params, cell, ids)
    np.testing.assert_allclose(trace.units, units, rtol=0, atol=1e-12)
    got = rows[np.arange(1, len(ids)), ids[1:]]
    np.testing.assert_allclose(trace.logprob[1:], got, rtol=1e-12)
    assert math.isnan(trace.logprob[0]) and trace.rank[0] == 0 and (trace.top_ids[0] == -1).all()
    for t in range(1, len(ids)):
        assert trace.rank[t] == 1 + (rows[t] > rows[t, ids[t]]).sum()
        np.testing.assert_array_equal(trace.top_ids[t], np.argsort(-rows[t])[:5])
        np.testing.assert_allclose(trace.top_logprob[t], np.sort(rows[t])[::-1][:5], rtol=1e-12)


def test_trace_in_float32_stays_float32_and_close_to_float64():
    ckpt64 = make_checkpoint("gru", dtype=np.float64)
    ckpt32 = make_checkpoint("gru", dtype=np.float32)
    ids = ckpt32.vocab.encode(TEXT)
    t32, t64 = (trace_ids(c.params, "gru", ids) for c in (ckpt32, ckpt64))
    assert t32.units.dtype == np.float32
    np.testing.assert_allclose(t32.units, t64.units, atol=1e-4)
    np.testing.assert_allclose(t32.logprob[1:], t64.logprob[1:], atol=1e-3)


def test_the_rank_and_guesses_agree():
    ckpt = make_checkpoint("lstm")
    trace = trace_ids(ckpt.params, "lstm", ckpt.vocab.encode(TEXT))
    ids = ckpt.vocab.encode(TEXT)
    for t in range(1, len(ids)):
        in_top = np.flatnonzero(trace.top_ids[t] == ids[t])
        assert (trace.rank[t] <= 5) == (len(in_top) == 1)
        if len(in_top):
            assert in_top[0] + 1 == trace.rank[t]
            assert trace.top_logprob[t, in_top[0]] == trace.logprob[t]
    assert (np.diff(trace.top_logprob[1:], axis=1) <= 0).all()


# --- features and picking units ---------------------------------------------------------------

def test_text_features_by_hand():
    f = text_features('ab "c" (d[e])\nXy z')
    assert f["inside quotes"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["position in the line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0,
                                                  1, 2, 3, 4]
    assert f["bracket depth"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 1, 0, 0, 0, 0, 0, 0]
    assert f["whitespace"].tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0]
    assert f["upper case"].tolist() == [0] * 14 + [1, 0, 0, 0]
    assert f["position in the word"].tolist() == [1, 2, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 2,
                                                  0, 1]


def test_correlations_are_pearsons_r(rng):
    units = rng.standard_normal((5, 50))
    feature = units[2] * 3 + rng.standard_normal(50)
    r = correlations(feature, units)
    np.testing.assert_allclose(r, [np.corrcoef(feature, u)[0, 1] for u in units], atol=1e-12)
    assert correlations(feature, np.zeros((2, 50))).tolist() == [0.0, 0.0]


def test_pick_units_follows_features_skips_constant_units_and_adds_the_most_varied(rng):
    T, H = 400, 6
    features = {"a": rng.standard_normal(T), "b": (rng.random(T) > 0.5).astype(float),
                "flat": np.ones(T), "noise": rng.standard_normal(T)}
    units = rng.uniform(-0.3, 0.3, (2, T, H)) * np.linspace(0.2, 1, H)   # unit 5 varies most
    units[1, :, 2] = np.tanh(features["a"])                              # follows a
    units[0, :, 4] = 0.001 * features["b"]                               # follows b, near-constant
    units[0, :, 1] = 0.6 * features["b"] + 0.1 * rng.standard_normal(T)  # follows b, not as well
    picked, notes = pick_units(features, units)
    assert [(u.layer, u.index, u.feature) for u in picked[:2]] == [(1, 2, "a"), (0, 1, "b")]
    assert picked[0].r > 0.95 and picked[1].r > 0.9
    assert "flat: the same all through the text shown" in notes
    assert any(n.startswith("noise: no unit follows it (best |r| = ") for n in notes)
    varied = picked[2:]
    assert len(varied) == VARIED_UNITS and all(u.feature is None for u in varied)
    sds = [u.sd for u in varied]
    assert sds == sorted(sds, reverse=True) and min(sds) >= MIN_SD
    assert len({(u.layer, u.index) for u in picked}) == len(picked)
    assert (0, 4) not in {(u.layer, u.index) for u in picked}


def test_parse_units():
    assert parse_units("auto", 2, 8) == "auto"
    assert parse_units("1:3, 0:0,1:3", 2, 8) == [(1, 3), (0, 0)]
    for spec, message in [
        ("2:0", "2:0: there is no layer 2 (the model has layers 0 to 1)"),
        ("0:8", "0:8: there is no unit 8 (each layer has units 0 to 7)"),
        ("0:1,x", "'x' is not a unit: write LAYER:INDEX (from 0), e.g. 0:12, a comma-separated "
                  "list of them, or auto"),
        ("-1:2", "'-1:2' is not a unit: write LAYER:INDEX (from 0), e.g. 0:12, a "
                 "comma-separated list of them, or auto"),
    ]:
        with pytest.raises(ViewError, match=re.escape(message)) as e:
            parse_units(spec, 2, 8)
        assert str(e.value) == message and e.value.argument == "neurons"


# --- the view -------------------------------------------------------------------------------

def test_a_window_reads_the_text_before_it_first():
    ckpt = make_checkpoint("gru")
    whole = build_view(ckpt, TEXT, "t", neurons=[(1, 2)])
    part = build_view(ckpt, TEXT, "t", start=50, length=30, neurons=[(1, 2)])
    assert part.shown == TEXT[50:80] and part.context == 50
    np.testing.assert_allclose(part.trace.logprob, whole.trace.logprob[50:80], rtol=1e-5)
    np.testing.assert_allclose(part.values, whole.values[:, 50:80], atol=1e-6)
    assert (part.line, part.column) == (TEXT.count("\n", 0, 50) + 1, 50 - TEXT.rfind("\n", 0, 50))
    far = build_view(ckpt, TEXT * 10, "t", start=CONTEXT + 200, length=5, neurons=[])
    assert far.context == CONTEXT and not np.isnan(far.trace.logprob).any()


def test_build_view_refuses_what_it_cannot_show():
    ckpt = make_checkpoint("lstm")
    with pytest.raises(ViewError, match=r"^1,000 is beyond the end of the text \(10 characters\)$"):
        build_view(ckpt, "abcdefghij", "t", start=1000)
    with pytest.raises(ViewError, match=r"^0:9: there is no unit 9"):
        build_view(ckpt, "abcdefghij", "t", neurons=[(0, 9)])
    with pytest.raises(DataError, match=r"^characters not in the vocabulary: '\\x00', 'é'$"):
        build_view(ckpt, "abc\x00é", "t")


def test_known_text_refuses_skips_or_replaces_unseen_characters():
    vocab = make_checkpoint("rnn").vocab
    assert known_text(vocab, "a b", "error") == ("a b", "")
    with pytest.raises(DataError, match=r"^characters not in the vocabulary: '\\x00', 'é'$"):
        known_text(vocab, "abc\x00é")
    assert known_text(vocab, "né\x00e é", "skip") == (
        "ne ", "skipped 3 characters not in the model's vocabulary: '\\x00', 'é'")
    assert known_text(vocab, "né", "replace") == (
        "n ", "replaced 1 character not in the model's vocabulary with ' ': 'é'")
    with pytest.raises(DataError, match=r"^the text has no character in the model's vocabulary: "
                                        r"'é'$"):
        known_text(vocab, "éé", "skip")


def test_a_cut_text_says_so():
    ckpt = make_checkpoint("rnn")
    cut = build_view(ckpt, TEXT, "t", start=10, length=20, neurons=[])
    assert cut_note(cut) == (f"The text was cut: this page shows characters 10 to 29 (counted "
                             f"from 0) of {len(TEXT):,}; charrnn viz --start and --length choose "
                             "others (10,000 characters by default, to keep the page small).")
    assert cut_note(build_view(ckpt, TEXT, "t", neurons=[])) == ""


def test_the_analysis_imports_nothing_of_the_page():
    code = ("import sys, charrnn.viz; print(sorted(m for m in sys.modules if m in "
            "('html', 'charrnn.page', 'charrnn.viz_page')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
    assert ViewError is ErrorsViewError
