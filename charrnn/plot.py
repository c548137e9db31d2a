"""Learning curves (`charrnn plot`): the training and validation loss of one or many runs, read
from each run directory's metrics.jsonl, drawn on one chart as an SVG written here by hand (no
plotting library), or an HTML page holding it with a table of the runs.

Each run is labelled by its directory and by what differs in its config from the others' (read
from its checkpoint), so a sweep from a batch script reads at a glance. The x axis is the
iteration, the training time in seconds, or the training characters read (iteration x batch_size
x seq_length). The same runs give the same bytes.
"""

import html
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .runs import METRICS, checkpoint_file, holds_run
from .config import as_dict
from .data import DataError
from .page import html_page

AXES = {"iteration": "iteration", "seconds": "training time (s)",
        "chars": "training characters read"}
# Tableau's ten colours: distinct for most readers, colour-blind ones included
COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
WIDTH, PLOT_HEIGHT = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 52    # margins around the plot area, in px
LEGEND_ROW, LEGEND_LINE = 22, 15   # px per legend entry, and per extra line of it
LEGEND_CHARS = 100                 # the wrapping width of a legend's config line


@dataclass(frozen=True)
class Run:
    """A run directory's evaluations and, if it has a checkpoint, its config."""
    name: str             # the directory, as given
    records: tuple        # dicts with iteration, train_loss, val_loss, seconds; by iteration
    config: dict | None   # every config key, resolved (config.as_dict), plus "text"
    best: dict            # the record with the lowest validation loss
    notes: tuple = ()     # what was left out of the file, one sentence each

    def x(self, record, axis):
        if axis == "chars":
            return record["iteration"] * self.config["batch_size"] * self.config["seq_length"]
        return record[axis]


def read_run(run_dir):
    """The Run in run_dir; DataError (or CheckpointError) naming the file at fault. A last line
    cut short (no newline after it, and not JSON: a write stopped by a kill or a full disk) is
    left out, and the Run's notes say so; a bad line anywhere else is an error."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if not path.is_file():
        raise DataError(f"{run_dir}: no metrics.jsonl: not a charrnn run directory, or no "
                        "evaluation has finished yet")
    by_iteration, notes = {}, []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            if not raw.endswith(b"\n") and not _is_json(line):   # only the last line can lack one
                notes.append(f"{path}: left out its last line, cut short ({len(raw):,} "
                             f"byte{'s' if len(raw) != 1 else ''} without a newline)")
                break
            try:
                record = json.loads(line)
                # a null train_loss: no chunk scored a character (a completion setting's)
                record = {key: math.nan if record[key] is None and key == "train_loss"
                          else float(record[key])
                          for key in ("iteration", "train_loss", "val_loss", "seconds")}
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: not a metrics record (a JSON object with "
                                "iteration, train_loss, val_loss and seconds)") from None
            if all(math.isfinite(v) for v in record.values()):
                by_iteration[record["iteration"]] = record   # a resumed run may repeat one: the last
    if not by_iteration:
        raise DataError(f"{path}: no evaluation in it yet")
    records = tuple(by_iteration[i] for i in sorted(by_iteration))
    try:
        ckpt = load_checkpoint(checkpoint_file(run_dir))
        config = dict(as_dict(ckpt.model_cfg, ckpt.train_cfg),
                      text=Path(ckpt.info.get("data_source", "")).name)
    except CheckpointError:
        if holds_run(run_dir):
            raise           # a damaged checkpoint is an error; a missing one only loses labels
        config = None
    return Run(str(run_dir), records, config, min(records, key=lambda r: r["val_loss"]),
               tuple(notes))


def _is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def differences(runs):
    """Per run, 'key=value, ...' for the config keys whose values differ between the runs."""
    configs = [r.config for r in runs if r.config is not None]
    keys = [k for k in (configs[0] if configs else {})
            if len({json.dumps(c.get(k)) for c in configs}) > 1]
    return [", ".join(f"{k}={r.config.get(k)}" for k in keys) if r.config is not None
            else "no checkpoint" for r in runs]


def nice_ticks(lo, hi, count=6):
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering [lo, hi]."""
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _number(v, axis):
    if axis == "chars":
        for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= size:
                return f"{v / size:g}{suffix}"
    return f"{v:,.10g}"


@dataclass(frozen=True)
class Scale:
    """A linear map from data to pixels."""
    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, v):
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def check_axis(runs, axis):
    """DataError if a run cannot be drawn on this x axis (characters need a checkpoint)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {sorted(AXES)}")
    for r in runs:
        if axis == "chars" and r.config is None:
            raise DataError(f"{r.name}: no checkpoint to read batch_size and seq_length from, "
                            "which an x axis of characters needs")


def _axes(xs, ys, x, y, axis, bottom):
    """The grid, the ticks and their labels, the axes and their titles."""
    out = []
    for v in ys:
        py = y(v)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" '
                   f'y2="{py:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for v in xs:
        px = x(v)
        out.append(f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{bottom}" '
                   'stroke="#e5e7eb"/>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">'
                   f'{_number(v, axis)}</text>')
    out.append(f'<path d="M{LEFT},{TOP}V{bottom}H{WIDTH - RIGHT}" fill="none" stroke="#57606a"/>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{bottom + 36}" '
               f'text-anchor="middle">{AXES[axis]}</text>')
    out.append(f'<text transform="translate(16 {(TOP + bottom) / 2:.1f}) rotate(-90)" '
               'text-anchor="middle">loss (nats/char)</text>')
    return out


def _curves(runs, x, y, axis):
    """Per run, its training (solid) and validation (dashed) curves and a dot at its best."""
    out = []
    for k, run in enumerate(runs):
        colour = COLOURS[k % len(COLOURS)]
        for key, dash in (("train_loss", ""), ("val_loss", ' stroke-dasharray="6 4"')):
            points = " ".join(f"{x(run.x(rec, axis)):.2f},{y(rec[key]):.2f}"
                              for rec in run.records)
            out.append(f'<polyline class="{key}" data-run="{k}" points="{points}" fill="none" '
                       f'stroke="{colour}" stroke-width="2"{dash}/>')
        best = run.best
        out.append(f'<circle cx="{x(run.x(best, axis)):.2f}" cy="{y(best["val_loss"]):.2f}" '
                   f'r="3.5" fill="{colour}"><title>best validation loss {best["val_loss"]:.4f} '
                   f'at iteration {best["iteration"]:,.0f}</title></circle>')
    return out


def _legend(legend, row):
    """The legend's rows from y = row: each run's lines (its name and best, then what differs).
    Returns the y below them and the rows."""
    e = html.escape
    out = []
    for k, lines in enumerate(legend):
        colour = COLOURS[k % len(COLOURS)]
        out.append(f'<g class="legend"><line x1="{LEFT}" x2="{LEFT + 22}" y1="{row}" y2="{row}" '
                   f'stroke="{colour}" stroke-width="2"/><line x1="{LEFT + 26}" '
                   f'x2="{LEFT + 48}" y1="{row}" y2="{row}" stroke="{colour}" stroke-width="2" '
                   f'stroke-dasharray="6 4"/><text x="{LEFT + 56}" y="{row + 4}">{e(lines[0])}'
                   '</text>'
                   + "".join(f'<text x="{LEFT + 56}" y="{row + 4 + LEGEND_LINE * j}" '
                             f'fill="#57606a" font-size="11">{e(line)}</text>'
                             for j, line in enumerate(lines[1:], 1)) + "</g>")
        row += LEGEND_ROW + LEGEND_LINE * (len(lines) - 1)
    return row, out


def render_svg(runs, axis="iteration", standalone=True):
    """The chart, as SVG text: one colour per run, training loss solid, validation dashed.
    standalone: a file of its own, which needs the SVG namespace (inside HTML it is implied,
    and the page stays free of any URL)."""
    check_axis(runs, axis)
    labels = differences(runs)
    xs = nice_ticks(0, max(r.x(rec, axis) for r in runs for rec in r.records))
    losses = [rec[k] for r in runs for rec in r.records for k in ("train_loss", "val_loss")]
    ys = nice_ticks(min(losses), max(losses))
    x = Scale(xs[0], xs[-1], LEFT, WIDTH - RIGHT)
    y = Scale(ys[0], ys[-1], TOP + PLOT_HEIGHT, TOP)
    bottom = TOP + PLOT_HEIGHT
    # the legend: per run, a line with its directory, then what differs, wrapped
    legend = [[f"{run.name}: best validation {run.best['val_loss']:.4f} at iteration "
               f"{run.best['iteration']:,.0f}"] + textwrap.wrap(label, LEGEND_CHARS)
              for run, label in zip(runs, labels)]
    height = bottom + BOTTOM + sum(LEGEND_ROW + LEGEND_LINE * (len(l) - 1) for l in legend) + 24
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    out = [f'<svg{namespace} width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="system-ui, sans-serif" font-size="12">',
           "<title>charrnn plot: training (solid) and validation (dashed) loss</title>",
           f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
           f'<text x="{LEFT}" y="{TOP - 16}" font-size="14" font-weight="600">Loss '
           f'(nats/char): training, solid; validation, dashed</text>']
    out += _axes(xs, ys, x, y, axis, bottom)
    # the curves, then the legend: one row per run
    out += _curves(runs, x, y, axis)
    row, rows = _legend(legend, bottom + BOTTOM + 10)
    out += rows
    out.append(f'<text x="{LEFT}" y="{row + 4}" fill="#57606a">a dot marks each run\'s best '
               'validation loss</text>')
    out.append("</svg>\n")
    return "\n".join(out)


def render_html(runs, axis="iteration"):
    """A page holding the chart and a table of the runs."""
    e = html.escape
    svg = render_svg(runs, axis, standalone=False)
    labels = differences(runs)
    rows = "".join(
        f'<tr><td>{e(r.name)}</td><td>{e(label)}</td>'
        f'<td class="num">{r.records[-1]["iteration"]:,.0f}</td>'
        f'<td class="num">{r.best["val_loss"]:.4f}</td>'
        f'<td class="num">{r.best["val_loss"] / math.log(2):.3f}</td>'
        f'<td class="num">{r.best["iteration"]:,.0f}</td>'
        f'<td class="num">{r.records[-1]["seconds"]:,.1f}</td></tr>'
        for r, label in zip(runs, labels))
    body = (f"<h1>charrnn plot: {len(runs)} run{'s' if len(runs) > 1 else ''}</h1>\n"
            f"{svg}<table><tr><th>run</th><th>differs in</th><th>iterations</th>"
            "<th>best validation loss (nats/char)</th><th>(bits/char)</th><th>at iteration</th>"
            f"<th>seconds</th></tr>{rows}</table>\n")
    return html_page(f"charrnn plot: {', '.join(r.name for r in runs)}",
                     "svg { display: block; margin: 0 0 1em; max-width: 100%; height: auto; }\n",
                     body)
