"""charrnn.viz_page: the viz page's structure in pure Python (one element per character, escaped,
nothing outside it, the colour scale, the JSON, the same bytes for the same View)."""

import json
import math
import re

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.page import luminance
from charrnn.viz import build_view, cut_note
from charrnn.viz_page import GLYPHS, page_data, render_html, surprisal_class

from view_helpers import Page, make_checkpoint, train_small

TEXT = ('First Citizen:\n\tBefore we proceed "any further", hear me (speak [now]).\n\n'
        'All:\nSpeak, speak. </script> <b>bold</b> &amp; "quoted (and {deep}) text"\n') * 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return load_checkpoint(train_small(tmp_path_factory.mktemp("viz"), TEXT))


@pytest.fixture(scope="module")
def view(trained):
    return build_view(trained, TEXT, "speech.txt", neurons="auto", checkpoint="run/best.npz")


@pytest.fixture(scope="module")
def page(view):
    return render_html(view)


def test_page_has_one_element_per_character_shown_literally(view, page):
    parsed = Page(page)
    assert len(parsed.chars) == len(TEXT) == len(view.shown)
    back = {v: k for k, v in GLYPHS.items()}
    shown = "".join(back[text] if "w" in classes else text for classes, text in parsed.chars)
    assert shown == TEXT
    # escaped, not markup: the page's own two scripts end, one <b> (in the header) starts
    assert page.count("</script>") == 2 and [t for t, _ in parsed.tags].count("b") == 1
    assert page.count(">&lt;</span>") == TEXT.count("<") > 0
    assert page.count(">&amp;</span>") == TEXT.count("&") > 0


def test_page_refers_to_nothing_outside_it(page):
    parsed = Page(page)
    csp = [a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                   "img-src data:"]
    for tag, attrs in parsed.tags:
        assert not {"src", "href", "srcset", "action", "poster"} & set(attrs), tag
    assert not re.search(r"[a-z][a-z0-9+.-]*://|url\(|@import|@font-face", page, re.I)
    assert "<link" not in page and "<iframe" not in page


def test_colours_darken_as_surprisal_rises(view, page):
    parsed = Page(page)
    colours = parsed.colours("s")
    data = parsed.json()
    scored = [(bits, colours[next(c for c in classes if re.fullmatch(r"s\d+", c))])
              for (classes, _), bits in zip(parsed.chars, data["bits"]) if bits is not None]
    scored.sort()
    light = [luminance(c) for _, c in scored]
    assert all(a >= b for a, b in zip(light, light[1:]))
    assert light[0] > 0.9 and len({c for _, c in scored}) >= 6   # the text spans the scale
    assert [luminance(colours[f"s{k}"]) for k in range(17)] == \
        sorted((luminance(colours[f"s{k}"]) for k in range(17)), reverse=True)
    assert parsed.chars[0][0][:2] == ["sx", "rx"]                 # the first: not predicted


def test_surprisal_classes_follow_the_fixed_scale():
    assert [surprisal_class(b) for b in (0.0, 0.49, 0.5, 3.99, 7.99, 8.0, 20.0)] == \
        ["s0", "s0", "s1", "s7", "s15", "s16", "s16"]
    assert surprisal_class(float("nan")) == "sx"


def test_page_json_round_trips(trained, view, page):
    data = Page(page).json()
    assert data == json.loads(json.dumps(page_data(view)))
    assert data["text"] == TEXT and len(data["bits"]) == len(TEXT)
    k = data["k"]
    ids = trained.vocab.encode(TEXT)
    for i in (1, 17, len(TEXT) - 1):
        assert data["bits"][i] == round(-view.trace.logprob[i] / math.log(2) * 1000)
        assert data["top"][i * k:(i + 1) * k] == view.trace.top_ids[i].tolist()
        if data["rank"][i] <= k:
            assert data["top"][i * k + data["rank"][i] - 1] == ids[i]
    for j, unit in enumerate(data["units"]):
        assert unit["values"] == np.round(view.values[j] * 100).astype(int).tolist()
        assert max(map(abs, unit["values"])) <= 100


def test_page_names_the_model_text_and_units(view, page):
    assert "LSTM, 2 layers of 16 units" in page
    assert "text speech.txt" in page and "checkpoint run/best.npz" in page
    assert f"{view.bits_per_char():.3f} bits/char" in page
    for u in view.units:
        assert u.label() in page
    assert "Units picked by --neurons auto" in page


def test_same_inputs_same_bytes(trained, view, page):
    again = build_view(trained, TEXT, "speech.txt", checkpoint="run/best.npz")
    assert render_html(again) == page


def test_invisible_characters_get_a_visible_stand_in():
    text = "a b\tc\nd\x01e\u2003f\u200bg\x7fh"
    ckpt = make_checkpoint("rnn", vocab="".join(sorted(set(text))))
    parsed = Page(render_html(build_view(ckpt, text, "t", neurons=[])))
    shown = [(t, "w" in classes) for classes, t in parsed.chars]
    assert shown == [("a", False), ("\u00b7", True), ("b", False), ("\u2192\t", True),
                     ("c", False), ("\u21b5\n", True), ("d", False), ("\u2401", True),
                     ("e", False), ("\u2423", True), ("f", False), ("\u2370", True),
                     ("g", False), ("\u2421", True), ("h", False)]


def test_a_cut_text_says_so_on_the_page():
    ckpt = make_checkpoint("rnn")
    cut = build_view(ckpt, TEXT, "t", start=10, length=20, neurons=[])
    assert cut_note(cut) and cut_note(cut) in render_html(cut)
    assert "The text was cut" not in render_html(build_view(ckpt, TEXT, "t", neurons=[]))
