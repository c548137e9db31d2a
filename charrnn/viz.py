"""Seeing inside a model: what it predicts at each character of a text and what chosen units do
there, as one self-contained HTML page (`charrnn viz`).

For each character of the text the model reads, `trace_ids` gives the log-probability the model
gave it (from the characters before it), its rank among the model's guesses (1: the likeliest),
the model's top guesses at that place, and every unit's value after reading it: h for the RNN
and GRU, tanh(c) for the LSTM (the cell, as Karpathy's "Unreasonable Effectiveness" post colours
it), each in [-1, 1]. `pick_units` chooses the units worth a row: for each of a few cheap features
of the text (inside quotes, position in the line, bracket depth, ...), the unit most correlated
with it, then the units that vary most. `build_view` puts it together for a window of a text and
`render_html` writes the page: the text coloured by surprisal in bits (or by rank, as GLTR does),
in the HTML itself, and a card and unit rows drawn by an inline script from the page's JSON.
"""

import html
import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from .data import DataError, format_chars
from .errors import ViewError
from .layers import log_softmax
from .model import forward, zero_state
from .page import MONO, html_page, luminance, mix, script_json

TOP = 5                 # guesses listed per character
CHUNK = 1024            # characters per forward chunk (one stream)
CONTEXT = 1000          # characters before the first shown one that the model reads first
MAX_CHARS = 10_000      # characters shown by default: keeps the page near a megabyte
LENGTH_LIMIT = 100_000  # the most `charrnn viz --length` takes: every unit's value at every
                        # character is kept (2 x 256 units: 200 MB), the page is near 10 MB
MAX_BITS = 8.0          # the surprisal scale: 0 to 8 bits, in 16 half-bit steps (8 and above: 1)
BITS_STEP = 0.5
MIN_SD = 0.05           # units whose standard deviation over the shown text is below this are
                        # near-constant (a pale row): never picked
MIN_R = 0.2             # a feature whose best unit correlates more weakly than this gets no row
VARIED_UNITS = 3        # the most varied units added after the features' units
RANKS = ((1, 1, "1"), (2, 5, "2-5"), (6, 10, "6-10"), (11, None, "beyond 10"))   # as GLTR's bands


# --------------------------------------------------------------------------- reading a text


@dataclass(frozen=True)
class Trace:
    """What the model did at each of the T characters it read (ids[t] for t = 0 .. T-1)."""
    logprob: np.ndarray      # (T,) float64 nats: log p(ids[t] | ids[:t]); nan at t = 0
    rank: np.ndarray         # (T,) int64: 1 + the number of characters it found likelier; 0 at t = 0
    top_ids: np.ndarray      # (T, k) int64: its k likeliest guesses at t, likeliest first (-1 at t = 0)
    top_logprob: np.ndarray  # (T, k) float64 nats, the same guesses' log-probabilities (nan at t = 0)
    units: np.ndarray        # (L, T, H) every unit after reading ids[t]: h, or tanh(c) for an LSTM


def unit_values(cell, cache):
    """(L, T, H) from a model.forward cache of one stream: each layer's h, which is the next
    layer's input (the top layer's is the cache's last entry), or for an LSTM tanh(c), from
    layers.lstm_seq_forward's cache (acts, hs, cs, Wh), where cs[t + 1] = c_t."""
    _, layers, top = cache
    if cell == "lstm":
        seqs = [np.tanh(seq_cache[2][1:]) for _, seq_cache, _ in layers]
    else:
        seqs = [x for x, _, _ in layers[1:]] + [top]
    return np.stack([s[:, :, 0] for s in seqs])


def trace_ids(params, cell, ids, top=TOP, chunk=CHUNK):
    """Run the model over ids (one stream, from a zero state, a chunk at a time with the state
    carried) and keep, at every character, its log-probability, rank, the top guesses and the
    units' values: a Trace."""
    ids = np.asarray(ids, dtype=np.int32)
    T = len(ids)
    V, H = params["embed"].shape
    L = params["Wx"].shape[0]
    k = min(top, V)
    logprob, rank = np.full(T, np.nan), np.zeros(T, dtype=np.int64)
    top_ids, top_logprob = np.full((T, k), -1, dtype=np.int64), np.full((T, k), np.nan)
    units = np.empty((L, T, H), dtype=params["Wx"].dtype)
    state = zero_state(cell, L, 1, H, params["Wx"].dtype)
    for lo in range(0, T, chunk):
        hi = min(T, lo + chunk)
        logits, state, cache = forward(params, cell, ids[None, lo:hi], state)
        units[:, lo:hi] = unit_values(cell, cache)
        # row j predicts ids[lo + j + 1]; the text's last character predicts nothing shown
        m = min(hi, T - 1) - lo
        logp = log_softmax(logits[:m].astype(np.float64))         # (m, V)
        got = logp[np.arange(m), ids[lo + 1:lo + 1 + m]]
        at = slice(lo + 1, lo + 1 + m)
        logprob[at] = got
        rank[at] = 1 + (logp > got[:, None]).sum(axis=1)
        order = np.argsort(-logp, axis=1, kind="stable")[:, :k]   # ties: the lower id first
        top_ids[at], top_logprob[at] = order, np.take_along_axis(logp, order, axis=1)
    return Trace(logprob, rank, top_ids, top_logprob, units)


# --------------------------------------------------------------------------- picking units


def _since(mark):
    """At each position, the characters read since the last one where mark is True (0 there;
    before the first, the count from the start, that character included)."""
    at = np.arange(len(mark))
    return (at - np.maximum.accumulate(np.where(mark, at, -1))).astype(np.float64)


def text_features(text):
    """name -> (T,) float64: cheap features of a text at each character, after reading it."""
    def where(test):
        return np.fromiter((test(ch) for ch in text), dtype=bool, count=len(text))

    quote = where(lambda ch: ch == '"')
    opens = where(lambda ch: ch in "([{").astype(np.int64)
    closes = where(lambda ch: ch in ")]}").astype(np.int64)
    return {
        "inside quotes": (np.cumsum(quote) % 2).astype(np.float64),
        "position in the line": _since(where(lambda ch: ch == "\n")),
        "bracket depth": np.cumsum(opens - closes).astype(np.float64),
        "whitespace": where(str.isspace).astype(np.float64),
        "upper case": where(str.isupper).astype(np.float64),
        "position in the word": _since(~where(str.isalnum)),
    }


def correlations(feature, units):
    """Pearson's r of a feature (T,) with every unit, units (U, T) -> (U,); 0 for a unit (or a
    feature) with no variance."""
    f = feature - feature.mean()
    x = units - units.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (f @ f))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x @ f) / denominator, 0.0)


@dataclass(frozen=True)
class Unit:
    """A unit given a row on the page: layer, index, and why it is there."""
    layer: int
    index: int
    sd: float                   # its standard deviation over the shown characters
    feature: str | None = None  # the feature it follows best (auto), or None
    r: float | None = None      # its correlation with that feature over the shown characters

    def label(self):
        name = f"layer {self.layer}, unit {self.index}"
        if self.feature is not None:
            return f"{name}: {self.feature}, r = {self.r:+.2f}"
        return f"{name}: sd {self.sd:.2f}"


def pick_units(features, units):
    """The units worth a row, features: name -> (T,), units: (L, T, H) over the shown text.
    For each feature, the unit most correlated with it (|r|), if that is at least MIN_R; then
    the VARIED_UNITS units of highest variance; never a unit twice, never a near-constant one
    (sd < MIN_SD). Returns (the Units, notes on the features left out)."""
    L, T, H = units.shape
    flat = units.transpose(0, 2, 1).reshape(L * H, T).astype(np.float64)
    sd = flat.std(axis=1)
    usable = sd >= MIN_SD
    picked, notes = [], []
    for name, feature in features.items():
        if feature.std() == 0:
            notes.append(f"{name}: the same all through the text shown")
            continue
        r = np.where(usable, correlations(feature, flat), 0.0)
        r[[u.layer * H + u.index for u in picked]] = 0.0
        best = int(np.argmax(np.abs(r)))
        if abs(r[best]) < MIN_R:
            notes.append(f"{name}: no unit follows it (best |r| = {abs(r[best]):.2f})")
            continue
        picked.append(Unit(best // H, best % H, float(sd[best]), name, float(r[best])))
    taken = {u.layer * H + u.index for u in picked}
    for j in np.argsort(-sd, kind="stable"):
        if len(picked) >= len(taken) + VARIED_UNITS or not usable[j]:
            break
        if int(j) not in taken:
            picked.append(Unit(int(j) // H, int(j) % H, float(sd[j])))
    return picked, notes


def parse_units(spec, num_layers, hidden_size):
    """'auto', or 'L:i,L:j,...' -> a list of (layer, index), in order, without repeats.
    ViewError (argument 'neurons') names an item that is not L:i or not in the model."""
    if spec.strip() == "auto":
        return "auto"
    found = []
    for item in spec.split(","):
        item = item.strip()
        layer, sep, index = item.partition(":")
        if not (sep and layer.isdigit() and index.isdigit()):
            raise ViewError(f"{item!r} is not a unit: write LAYER:INDEX (from 0), e.g. 0:12, "
                            "a comma-separated list of them, or auto", "neurons")
        unit = check_unit(int(layer), int(index), num_layers, hidden_size)
        if unit not in found:
            found.append(unit)
    return found


def check_unit(layer, index, num_layers, hidden_size):
    """(layer, index), or a ViewError (argument 'neurons') if the model has no such unit."""
    if not 0 <= layer < num_layers:
        raise ViewError(f"{layer}:{index}: there is no layer {layer} (the model has layers 0 to "
                        f"{num_layers - 1})", "neurons")
    if not 0 <= index < hidden_size:
        raise ViewError(f"{layer}:{index}: there is no unit {index} (each layer has units 0 to "
                        f"{hidden_size - 1})", "neurons")
    return layer, index


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True)
class View:
    """Everything the page shows, for the characters text[start:start + n] of a text."""
    name: str                # the text's name (its path, or <stdin>)
    model: str               # the model, in words
    checkpoint: str          # where it came from
    total_chars: int         # the whole text's length
    start: int
    shown: str               # the n characters shown
    context: int             # characters read before them, not shown
    line: int                # line (from 1) and column (from 1) of the first character shown
    column: int
    vocab: str
    trace: Trace             # over the characters shown
    units: tuple             # the Units given a row
    values: np.ndarray       # (K, n) their values
    auto: bool               # whether pick_units chose them
    notes: tuple             # pick_units' notes on the features left out

    @property
    def scored(self):
        return ~np.isnan(self.trace.logprob)

    def bits_per_char(self):
        """Mean surprisal of the shown characters that the model predicted, in bits."""
        got = self.trace.logprob[self.scored]
        return float(-got.mean() / math.log(2)) if len(got) else float("nan")


def describe(ckpt):
    cfg = ckpt.model_cfg
    return (f"{cfg.model.upper()}, {cfg.num_layers} layer{'s' if cfg.num_layers > 1 else ''} "
            f"of {cfg.hidden_size} units")


def build_view(ckpt, text, name, start=0, length=MAX_CHARS, neurons="auto", checkpoint="",
               context=CONTEXT):
    """The View of text[start:start + length] under ckpt. The model first reads up to `context`
    characters before start. neurons: 'auto' or a list of (layer, index) (see parse_units).
    Raises ViewError for a start beyond the text or a unit not in the model, DataError for
    characters outside the vocabulary."""
    cfg = ckpt.model_cfg
    if not 0 <= start < len(text):
        raise ViewError(f"{start:,} is beyond the end of the text ({len(text):,} characters)",
                        "start")
    auto = isinstance(neurons, str) and neurons == "auto"
    if not auto:
        neurons = [check_unit(l, i, cfg.num_layers, cfg.hidden_size) for l, i in neurons]
    stop = min(len(text), start + length)
    lo = max(0, start - context)
    read = text[lo:stop]
    missing = ckpt.vocab.missing(read)
    if missing:
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    full = trace_ids(ckpt.params, cfg.model, ckpt.vocab.encode(read))
    first = start - lo
    trace = Trace(*(a[first:] for a in (full.logprob, full.rank, full.top_ids,
                                       full.top_logprob)), full.units[:, first:])
    if auto:
        features = {k: v[first:] for k, v in text_features(read).items()}
        units, notes = pick_units(features, trace.units)
    else:
        sd = trace.units.astype(np.float64).std(axis=1)
        units, notes = [Unit(l, i, float(sd[l, i])) for l, i in neurons], []
    values = trace.units[[u.layer for u in units], :, [u.index for u in units]]   # (K, n)
    return View(name, describe(ckpt), checkpoint, len(text), start, text[start:stop], first,
                text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1,
                ckpt.vocab.chars, trace, tuple(units), values, auto, tuple(notes))


# --------------------------------------------------------------------------- the page

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
    return "\n".join(rules) + f"""
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


def cut_note(view):
    """A sentence when the page shows only part of the text, else ''."""
    stop = view.start + len(view.shown)
    if view.start == 0 and stop == view.total_chars:
        return ""
    return (f"The text was cut: this page shows characters {view.start:,} to {stop - 1:,} "
            f"(counted from 0) of {view.total_chars:,}; charrnn viz --start and --length "
            f"choose others ({MAX_CHARS:,} characters by default, to keep the page small).")


def render_html(view):
    """The page, as a str: the same view gives the same text."""
    e = html.escape
    t = view.trace
    n_scored = int(view.scored.sum())
    facts = (f"{e(view.model)} &middot; checkpoint {e(view.checkpoint)} &middot; text "
             f"{e(view.name)} &middot; {len(view.shown):,} characters shown (from "
             f"{view.start:,}) of {view.total_chars:,} &middot; "
             + (f"<b>{view.bits_per_char():.3f} bits/char</b> over the {n_scored:,} predicted"
                if n_scored else "no character predicted"))
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
    units = ""
    if view.units:
        units = ('<section id="units"><h2>Units: the same text coloured by each unit, -1 (blue) '
                 'to +1 (orange)</h2>'
                 + "".join(f'<div class="unit"><div class="label">{e(u.label())}</div>'
                           f'<div class="line chars" data-unit="{j}"></div></div>'
                           for j, u in enumerate(view.units))
                 + "<noscript><p>The unit rows are drawn by the page's script.</p></noscript>"
                 "</section>")
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
