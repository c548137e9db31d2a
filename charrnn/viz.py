"""Seeing inside a model: what it predicts at each character of a text and what chosen units do
there (the analysis behind `charrnn viz`; viz_page.py draws it as one HTML page).

For each character of the text the model reads, `trace_ids` gives the log-probability the model
gave it (from the characters before it), its rank among the model's guesses (1: the likeliest),
the model's top guesses at that place, and every unit's value after reading it: h for the RNN
and GRU, tanh(c) for the LSTM (the cell, as Karpathy's "Unreasonable Effectiveness" post colours
it), each in [-1, 1]. `pick_units` chooses the units worth a row: for each of a few cheap features
of the text (inside quotes, position in the line, bracket depth, ...), the unit most correlated
with it, then the units that vary most. `build_view` puts it together for a window of a text: a
View, which holds numbers and text only (no HTML).
"""

import math
from dataclasses import dataclass

import numpy as np

from .data import DataError, format_chars
from .direct import context_of
from .documents import END
from .errors import ViewError
from .layers import log_softmax
from .model import direct_width, forward, zero_state
from .sample import replacement_char

TOP = 5                 # guesses listed per character
CHUNK = 1024            # characters per forward chunk (one stream)
CONTEXT = 1000          # characters before the first shown one that the model reads first
MAX_CHARS = 10_000      # characters shown by default: keeps the page near a megabyte
LENGTH_LIMIT = 100_000  # the most `charrnn viz --length` takes: every unit's value at every
                        # character is kept (2 x 256 units: 200 MB), the page is near 10 MB
MIN_SD = 0.05           # units whose standard deviation over the shown text is below this are
                        # near-constant (a pale row): never picked
MIN_R = 0.2             # a feature whose best unit correlates more weakly than this gets no row
VARIED_UNITS = 3        # the most varied units added after the features' units


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
    layers.lstm_seq_forward's cache (acts, hs, cs, ...), where cs[t + 1] = c_t."""
    _, layers, top = cache[:3]
    if cell == "lstm":
        seqs = [np.tanh(seq_cache[2][1:]) for _, seq_cache, _ in layers]
    else:
        seqs = [x for x, _, _ in layers[1:]] + [top]
    return np.stack([s[:, :, 0] for s in seqs])


def trace_ids(params, cell, ids, top=TOP, chunk=CHUNK, end=None):
    """Run the model over ids (one stream, from a zero state, a chunk at a time with the state
    carried; end: a model of documents' end mark, where the state is reset) and keep, at every
    character, its log-probability, rank, the top guesses and the units' values: a Trace."""
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
        logits, state, cache = forward(params, cell, ids[None, lo:hi], state, end=end,
                                       context=context_of(ids[None], lo, direct_width(params)))
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


def known_text(vocab, text, unk="error", known=""):
    """text as the view reads and shows it, and a note on what was done to it ('' if nothing):
    characters outside vocab raise DataError listing them (unk 'error'), are left out (unk
    'skip': their neighbours become adjacent, and offsets count the text without them), or are
    each replaced by sample.replacement_char (unk 'replace': offsets unchanged). known:
    characters that count as in the vocabulary (a model of lines reads a newline as its end
    mark)."""
    missing = [ch for ch in vocab.missing(text) if ch not in known]
    if not missing:
        return text, ""
    if unk == "error":
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    count = sum(text.count(ch) for ch in missing)
    what = f"{count:,} character{'s' if count > 1 else ''} not in the model's vocabulary"
    if unk == "skip":
        kept = "".join(ch for ch in text if ch in vocab.stoi or ch in known)
        if not kept:
            raise DataError(f"the text has no character in the model's vocabulary: "
                            f"{format_chars(missing)}")
        return kept, f"skipped {what}: {format_chars(missing)}"
    filler = replacement_char(vocab)
    return ("".join(ch if ch in vocab.stoi or ch in known else filler for ch in text),
            f"replaced {what} with {filler!r}: {format_chars(missing)}")


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
    full, first = _trace(ckpt, read, lo == 0), start - lo
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


def _trace(ckpt, read, at_start):
    """trace_ids of read (DataError for characters outside the vocabulary). A model of lines
    reads each newline as its end mark, and the text's first line after one, as in training,
    when read starts the text (at_start)."""
    lines = ckpt.train_cfg.documents == "lines"
    mapped = read.replace("\n", END) if lines else read
    missing = ckpt.vocab.missing(mapped)
    if missing:
        raise DataError(f"characters not in the vocabulary: {format_chars(missing)}")
    ids = ckpt.vocab.encode((END if lines and at_start else "") + mapped)
    full = trace_ids(ckpt.params, ckpt.model_cfg.model, ids, end=ckpt.end)
    if lines and at_start:   # the end mark before the text: read, not shown
        full = Trace(full.logprob[1:], full.rank[1:], full.top_ids[1:], full.top_logprob[1:],
                     full.units[:, 1:])
    return full


def cut_note(view):
    """A sentence when the page shows only part of the text, else ''."""
    stop = view.start + len(view.shown)
    if view.start == 0 and stop == view.total_chars:
        return ""
    return (f"The text was cut: this page shows characters {view.start:,} to {stop - 1:,} "
            f"(counted from 0) of {view.total_chars:,}; charrnn viz --start and --length "
            f"choose others ({MAX_CHARS:,} characters by default, to keep the page small).")
