"""The page of `charrnn viz`: a View (viz.py) as one self-contained HTML page: the text coloured by
surprisal in bits (or by rank, as GLTR does), in the HTML itself, and a card and unit rows drawn
by an inline script from the page's JSON (`page_data`). `render_html` writes it; the same View
gives the same bytes. The skeleton, the safe JSON and the colour scales are page.py's.
"""

import html
import math
import unicodedata

import numpy as np

from .page import MONO, html_page, luminance, mix, script_json
from .viz import MIN_R, MIN_SD, VARIED_UNITS, cut_note

MAX_BITS = 8.0          # the surprisal scale: 0 to 8 bits, in 16 half-bit steps (8 and above: 1)
BITS_STEP = 0.5
RANKS = ((1, 1, "1"), (2, 5, "2-5"), (6, 10, "6-10"), (11, None, "beyond 10"))   # as GLTR's bands

SURPRISAL_STOPS = ("#ffffff", "#fff1b8", "#fdb863", "#e85d33", "#a50f15", "#3d0008")
UNIT_STOPS = ("#1d4f91", "#8db6e2", "#f6f6f6", "#f4b26a", "#b3470a")
RANK_COLOURS = ("#a6e3a1", "#fde68a", "#f7a1a1", "#cfb2f0")
BINS = int(MAX_BITS / BITS_STEP)    # s0 .. s15 below 8 bits, s16 at 8 bits and above
UNIT_BINS = 20                      # n0 (-1) .. n10 (0) .. n20 (+1)

# how whitespace and control characters are shown (each stays one element)
GLYPHS = {" ": "\u00b7", "\n": "\u21b5\n", "\t": "\u2192\t", "\r": "\u240d", "\x7f": "\u2421",
          "\u00a0": "\u237d"}


def glyph(ch):
    """(what a character is shown as, whether it is a stand-in for an invisible character)."""
    if ch in GLYPHS:
        return GLYPHS[ch], True
    if ord(ch) < 0x20:
        return chr(0x2400 + ord(ch)), True       # the Unicode control pictures
    if ch.isspace():
        return "\u2423", True                    # other spaces: an open box
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return "\u2370", True                    # other invisible characters: a quad question
    return ch, False


def surprisal_class(bits):
    return "sx" if math.isnan(bits) else f"s{min(BINS, int(bits / BITS_STEP))}"


def rank_class(rank):
    for k, (low, high, _) in enumerate(RANKS):
        if rank >= low and (high is None or rank <= high):
            return f"r{k + 1}"
    return "rx"    # rank 0: not predicted


def surprisal_colour(k):
    return mix(SURPRISAL_STOPS, k / BINS)


def unit_colour(k):
    return mix(UNIT_STOPS, k / UNIT_BINS)


# the page's layout: the text, the controls, the card, the unit rows
LAYOUT = f"""
.chars {{ font-family: {MONO}; font-size: 14px; line-height: 1.45; white-space: pre-wrap;
  word-break: break-all; }}
.chars > span {{ cursor: pointer; }}
.chars > span.pin {{ outline: 2px solid #0969da; outline-offset: -1px; }}
.chars > span:focus {{ outline: 2px dashed #0969da; }}
header, main {{ margin-right: 22em; }}
#text {{ max-width: 100ch; }}
.controls {{ display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center;
  margin: 0 22em .8em 0; font-size: .9em; }}
.legend {{ display: flex; align-items: center; gap: 2px; }}
.legend span {{ display: inline-block; min-width: 1.6em; padding: 1px 3px; text-align: center;
  font-size: .8em; }}
#mode-bits:checked ~ .controls .rank, #mode-rank:checked ~ .controls .bits {{ display: none; }}
input[name=mode] {{ position: absolute; opacity: 0; }}
label.mode {{ padding: .15em .6em; border: 1px solid #d0d7de; border-radius: 1em;
  cursor: pointer; }}
#mode-bits:checked ~ .controls label[for=mode-bits],
#mode-rank:checked ~ .controls label[for=mode-rank] {{ background: #0969da; color: #fff;
  border-color: #0969da; }}
#mode-bits:focus-visible ~ .controls label[for=mode-bits],
#mode-rank:focus-visible ~ .controls label[for=mode-rank] {{ outline: 2px solid #0969da; }}
#card {{ position: fixed; top: 1em; right: 1.2em; width: 19em; max-height: calc(100vh - 2em);
  overflow: auto; border: 1px solid #d0d7de; border-radius: 6px; padding: .7em .9em;
  background: #f6f8fa; font-size: .9em; box-shadow: 0 1px 4px rgba(0,0,0,.08); }}
#card h2 {{ font-size: 1em; margin: .7em 0 .3em; color: #57606a; font-weight: 600; }}
#card .big {{ font-family: {MONO}; font-size: 1.6em; }}
#card .where {{ color: #57606a; }}
#card table {{ width: 100%; }}
#card td {{ border: 0; padding: 1px 4px 1px 0; white-space: nowrap; }}
#card td.c {{ font-family: {MONO}; width: 3.5em; }}
#card td.v {{ width: 3.6em; text-align: right; font-variant-numeric: tabular-nums; }}
#card tr.true td.c {{ font-weight: 700; color: #0969da; }}
.bar {{ height: .8em; width: 0; background: #0969da; }}
.ubar {{ position: relative; height: .8em; background: #eaeef2; }}
.ubar i {{ position: absolute; top: 0; bottom: 0; }}
.ubar i.pos {{ left: 50%; background: {UNIT_STOPS[-1]}; }}
.ubar i.neg {{ right: 50%; background: {UNIT_STOPS[0]}; }}
#units h2 {{ font-size: 1.05em; margin: 1.4em 0 .4em; }}
.unit {{ margin: 0 0 .9em; max-width: 100ch; }}
.unit .label {{ font-size: .9em; margin: 0 0 .2em; }}
.line {{ position: relative; max-height: 7.4em; overflow-y: auto; border: 1px solid #d0d7de;
  padding: 2px; }}
@media (max-width: 900px) {{ header, main, .controls {{ margin-right: 0; }}
  #card {{ position: static; width: auto; margin: 1em 0; }} }}
"""


def _style():
    def pair(colour):   # the ink on this background, and a stand-in's (a paler one)
        dark = luminance(colour) < 0.2
        return f"background: {colour}; color: {'#fff' if dark else '#1f2328'}", \
            f"color: {'#d0d7de' if dark else '#8c959f'}"

    rules = []
    for prefix, colours in (("s", [surprisal_colour(k) for k in range(BINS + 1)]),
                            ("n", [unit_colour(k) for k in range(UNIT_BINS + 1)])):
        for k, colour in enumerate(colours):
            fill, stand_in = pair(colour)
            rules += [f".{prefix}{k} {{ {fill}; }}", f".{prefix}{k}.w {{ {stand_in}; }}"]
    rules.append(".sx { background: #eaeef2; color: #57606a; }")
    rules += [f"#mode-rank:checked ~ main #text .r{k + 1}, .legend .r{k + 1} {{ background: {c}; "
              "color: #1f2328; }" for k, c in enumerate(RANK_COLOURS)]
    rules.append("#mode-rank:checked ~ main #text .rx { background: #eaeef2; color: #57606a; }")
    rules.append("#mode-rank:checked ~ main #text .w { color: #6e7781; }")
    return "\n".join(rules) + LAYOUT


def _legends():
    bits = "".join(f'<span class="s{k}">{k * BITS_STEP:g}</span>' if k % 2 == 0 else
                   f'<span class="s{k}">&nbsp;</span>' for k in range(BINS))
    ranks = "".join(f'<span class="r{k + 1}">{label}</span>'
                    for k, (_, _, label) in enumerate(RANKS))
    units = "".join(f'<span class="n{k}">{(k - 10) / 10:+.1f}</span>' if k % 5 == 0 else
                    f'<span class="n{k}">&nbsp;</span>' for k in range(UNIT_BINS + 1))
    return (f'<div class="legend bits">bits: {bits}<span class="s{BINS}">&ge;{MAX_BITS:g}</span>'
            f'</div><div class="legend rank">rank: {ranks}</div>'
            f'<div class="legend">unit value: {units}</div>')


def _text_html(view):
    t = view.trace
    bits = t.logprob / -math.log(2)
    spans = []
    for ch, b, r in zip(view.shown, bits.tolist(), t.rank.tolist()):
        shown, invisible = glyph(ch)
        extra = " w" if invisible else ""
        spans.append(f'<span class="{surprisal_class(b)} {rank_class(r)}{extra}">'
                     f'{html.escape(shown, quote=False)}</span>')
    return "".join(spans)


def page_data(view):
    """The JSON the page's script reads: the shown text, each character's surprisal (in
    millibits; null where not predicted) and rank, the top guesses (vocabulary ids, flat, k per
    character) and their probabilities (per mille), and each unit row's values (hundredths)."""
    t = view.trace
    bits = np.round(t.logprob / -math.log(2) * 1000)
    top_p = np.round(np.exp(t.top_logprob) * 1000)
    return {
        "text": view.shown,
        "start": view.start,
        "line": view.line,
        "column": view.column,
        "vocab": list(view.vocab),
        "k": int(t.top_ids.shape[1]),
        "bits": [None if math.isnan(b) else int(b) for b in bits.tolist()],
        "rank": t.rank.tolist(),
        "top": t.top_ids.reshape(-1).tolist(),
        "topp": [0 if math.isnan(p) else int(p) for p in top_p.reshape(-1).tolist()],
        "units": [{"layer": u.layer, "index": u.index, "label": u.label(),
                   "values": np.round(np.clip(view.values[j].astype(np.float64), -1, 1) * 100)
                   .astype(np.int64).tolist()}
                  for j, u in enumerate(view.units)],
    }


def _notes(view, n_scored):
    """The notes under the text: how to read the page."""
    notes = []
    if cut_note(view):
        notes.append(cut_note(view))
    if view.context:
        notes.append(f"Before the first character shown, the model read the {view.context:,} "
                     "characters before it (not shown), so it starts in context.")
    elif n_scored < len(view.shown):
        notes.append("The first character of the text has nothing before it to predict it from: "
                     "it is grey.")
    notes.append("Surprisal is -log2 p(character | the text before it): white is expected, dark "
                 f"red is {MAX_BITS:g} bits or more (a 1-in-256 guess). Rank 1: the model's "
                 "likeliest guess was right. Spaces are shown as \u00b7, newlines as \u21b5 and "
                 "tabs as \u2192. Unit rows colour the text by a unit's value after reading each "
                 "character (h, or tanh(c) for an LSTM), blue -1 to orange +1.")
    if view.auto:
        notes.append("Units picked by --neurons auto: for each feature of the text, the unit "
                     "whose values correlate most with it over the characters shown (Pearson's "
                     f"r, |r| at least {MIN_R:g}), then the {VARIED_UNITS} units that vary most "
                     f"(standard deviation); units with a standard deviation under {MIN_SD:g} "
                     "are never picked.")
    notes += [f"Not shown: {note}." for note in view.notes]
    return notes


def _card(view):
    """The card that shows the character under the pointer (the script fills it)."""
    t = view.trace
    rows = "".join('<tr class="top"><td class="c"></td><td class="v"></td>'
                   '<td><div class="bar"></div></td></tr>'
                   for _ in range(t.top_ids.shape[1]))
    unit_rows = "".join(f'<tr class="u"><td class="c">{u.layer}:{u.index}</td><td class="v">'
                        '</td><td><div class="ubar"><i></i></div></td></tr>' for u in view.units)
    card = (f'<aside id="card" aria-live="polite"><div class="big" id="card-char">&nbsp;</div>'
            f'<div class="where" id="card-where">Hover, focus or click a character (click pins '
            f'it; #pin=N in the address pins character N). Needs scripts.</div>'
            f'<div id="card-score"></div><h2>the model\u2019s top {t.top_ids.shape[1]} '
            f'guesses here</h2><table id="card-top">{rows}</table>'
            + (f'<h2>units after reading it</h2><table id="card-units">{unit_rows}</table>'
               if view.units else "") + "</aside>")
    return card


def _units(view):
    """A row per chosen unit (the script colours them)."""
    e = html.escape
    units = ""
    if view.units:
        units = ('<section id="units"><h2>Units: the same text coloured by each unit, -1 (blue) '
                 'to +1 (orange)</h2>'
                 + "".join(f'<div class="unit"><div class="label">{e(u.label())}</div>'
                           f'<div class="line chars" data-unit="{j}"></div></div>'
                           for j, u in enumerate(view.units))
                 + "<noscript><p>The unit rows are drawn by the page's script.</p></noscript>"
                 "</section>")
    return units


def render_html(view):
    """The page, as a str: the same view gives the same text."""
    e = html.escape
    n_scored = int(view.scored.sum())
    facts = (f"{e(view.model)} &middot; checkpoint {e(view.checkpoint)} &middot; text "
             f"{e(view.name)} &middot; {len(view.shown):,} characters shown (from "
             f"{view.start:,}) of {view.total_chars:,} &middot; "
             + (f"<b>{view.bits_per_char():.3f} bits/char</b> over the {n_scored:,} predicted"
                if n_scored else "no character predicted"))
    notes, card, units = _notes(view, n_scored), _card(view), _units(view)
    body = (f'<header><h1>charrnn viz: {e(view.name)}</h1><p class="facts">{facts}</p></header>\n'
            '<input type="radio" name="mode" id="mode-bits" checked>'
            '<input type="radio" name="mode" id="mode-rank">\n'
            '<div class="controls"><span>colour by:</span>'
            '<label class="mode" for="mode-bits">surprisal (bits)</label>'
            '<label class="mode" for="mode-rank">rank of the true character</label>'
            f'{_legends()}</div>\n<main>\n<div id="text" class="chars">{_text_html(view)}</div>\n'
            f'{card}\n{units}\n</main>\n<footer class="notes">'
            + "".join(f"<p>{e(note)}</p>" for note in notes) + "</footer>\n"
            f'<script type="application/json" id="data">{script_json(page_data(view))}</script>\n')
    return html_page(f"charrnn viz: {view.name}", _style(), body, SCRIPT)


# The page's script: unit rows from the JSON, the card, pinning (click, Enter, #pin=N), the
# keyboard (arrows move between characters). It builds nodes with textContent only: nothing from
# the data is ever parsed as HTML.
SCRIPT = r"""(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var chars = Array.from(data.text), n = data.bits.length, k = data.k;
  var text = document.getElementById("text");
  var rows = [text];
  var lines = [], columns = [];
  var line = data.line, column = data.column;
  for (var i = 0; i < n; i++) {
    lines.push(line); columns.push(column);
    if (chars[i] === "\n") { line++; column = 1; } else { column++; }
  }
  var names = {" ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return",
               "\u00a0": "no-break space"};
  function name(c) {
    return names[c] || (/^[\p{C}\p{Z}]$/u.test(c) ? "U+" + c.codePointAt(0).toString(16)
                        .toUpperCase().padStart(4, "0") : "\u2018" + c + "\u2019");
  }
  function mark(row) {
    for (var i = 0; i < row.children.length; i++) { row.children[i].ci = i; }
  }
  mark(text);
  document.querySelectorAll(".line[data-unit]").forEach(function (row) {
    var values = data.units[+row.dataset.unit].values;
    var copy = text.cloneNode(true);
    while (copy.firstChild) {
      var el = copy.firstChild, w = el.classList.contains("w");
      el.className = "n" + Math.round((values[row.children.length] + 100) / 10) + (w ? " w" : "");
      row.appendChild(el);
    }
    mark(row);
    rows.push(row);
  });
  var char = document.getElementById("card-char"), where = document.getElementById("card-where");
  var score = document.getElementById("card-score");
  var tops = document.querySelectorAll("#card-top tr"), units = document.querySelectorAll("#card-units tr");
  function percent(p) { return p === 0 ? "<0.1%" : (p / 10).toFixed(1) + "%"; }
  function show(i) {
    char.textContent = name(chars[i]);
    where.textContent = "character " + i.toLocaleString("en") + " of " + n.toLocaleString("en") +
      " here (offset " + (data.start + i).toLocaleString("en") + " in the text), line " +
      lines[i].toLocaleString("en") + ", column " + columns[i];
    if (data.bits[i] === null) {
      score.textContent = "the first character of the text: nothing before it to predict it from";
    } else {
      var bits = data.bits[i] / 1000, p = Math.pow(2, -bits);
      score.textContent = "p = " + (p < 0.001 ? p.toExponential(1) : p.toFixed(3)) + "  \u00b7  " +
        bits.toFixed(2) + " bits  \u00b7  rank " + data.rank[i];
    }
    for (var j = 0; j < k; j++) {
      var id = data.top[i * k + j], cells = tops[j].children;
      var p = data.topp[i * k + j];
      cells[0].textContent = id < 0 ? "" : name(data.vocab[id]);
      cells[1].textContent = id < 0 ? "" : percent(p);
      cells[2].firstChild.style.width = (id < 0 ? 0 : p / 10) + "%";
      tops[j].className = "top" + (id >= 0 && data.vocab[id] === chars[i] ? " true" : "");
    }
    for (var u = 0; u < units.length; u++) {
      var v = data.units[u].values[i] / 100, bar = units[u].children[2].firstChild.firstChild;
      units[u].children[1].textContent = (v >= 0 ? "+" : "") + v.toFixed(2);
      bar.className = v >= 0 ? "pos" : "neg";
      bar.style.width = (Math.abs(v) * 50) + "%";
    }
  }
  var pinned = -1;
  function address(h) { try { history.replaceState(null, "", h); } catch (e) { /* some browsers refuse it on local files */ } }
  function pin(i) {
    if (pinned >= 0) { rows.forEach(function (r) { r.children[pinned].classList.remove("pin"); }); }
    pinned = i;
    if (i < 0) { address(location.pathname + location.search); return; }
    rows.forEach(function (r) {
      var el = r.children[i];
      el.classList.add("pin");
      if (r !== text) { r.scrollTop = el.offsetTop - r.clientHeight / 2; }
    });
    show(i);
    address("#pin=" + i);
  }
  var focused = text.children[0];
  if (focused) { focused.tabIndex = 0; }
  function focus(i) {
    if (i < 0 || i >= n) { return; }
    focused.removeAttribute("tabindex");
    focused = text.children[i];
    focused.tabIndex = 0;
    focused.focus();
  }
  rows.forEach(function (r) {
    r.addEventListener("mouseover", function (e) {
      if (pinned < 0 && e.target.ci !== undefined) { show(e.target.ci); }
    });
    r.addEventListener("click", function (e) {
      if (e.target.ci !== undefined) { pin(e.target.ci === pinned ? -1 : e.target.ci); }
    });
  });
  text.addEventListener("focusin", function (e) { if (e.target.ci !== undefined) { show(e.target.ci); } });
  text.addEventListener("keydown", function (e) {
    var i = e.target.ci;
    if (i === undefined) { return; }
    var moves = {ArrowRight: 1, ArrowLeft: -1, Home: -i, End: n - 1 - i};
    if (e.key in moves) { focus(i + moves[e.key]); e.preventDefault(); }
    else if (e.key === "Enter" || e.key === " ") { pin(i === pinned ? -1 : i); e.preventDefault(); }
    else if (e.key === "Escape") { pin(-1); }
  });
  function fromAddress() {
    var m = /^#pin=(\d+)$/.exec(location.hash);
    if (m && +m[1] < n) {
      pin(+m[1]);
      text.children[+m[1]].scrollIntoView({block: "center"});
    }
  }
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
  document.body.setAttribute("data-ready", "1");
})();
"""
