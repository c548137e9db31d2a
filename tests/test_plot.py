"""charrnn.plot: reading runs, labelling what differs, ticks, and the SVG's lines against the
metrics (parsed as XML)."""

import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from charrnn.checkpoint import CheckpointError
from charrnn.data import DataError
from charrnn.plot import differences, nice_ticks, read_run, render_html, render_svg

from view_helpers import make_run

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def runs(tmp_path):
    return [read_run(make_run(tmp_path, "lr-a", [(4.0, 3.9), (3.0, 3.2), (2.5, 2.8)],
                              learning_rate=1.0e-3)),
            read_run(make_run(tmp_path, "lr-b", [(4.1, 3.7), (2.9, 3.0), (2.0, 2.9), (1.8, 3.1)],
                              learning_rate=3.0e-3, batch_size=8))]


def test_read_run(runs, tmp_path):
    a = runs[0]
    assert [r["iteration"] for r in a.records] == [10, 20, 30]
    assert a.best["val_loss"] == 2.8 and a.config["learning_rate"] == 1.0e-3
    assert a.config["text"] == "fox.txt" and a.name == str(tmp_path / "lr-a")
    assert runs[1].best["iteration"] == 30


def test_a_resumed_run_repeating_an_evaluation_keeps_the_last(tmp_path):
    run = make_run(tmp_path, "r", [(3.0, 3.0), (2.0, 2.0)])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("\n" + json.dumps({"iteration": 20, "train_loss": 1.5, "val_loss": 1.9,
                                   "seconds": 4.0}) + "\n")
    assert [(r["iteration"], r["val_loss"]) for r in read_run(run).records] == [(10, 3.0),
                                                                                (20, 1.9)]


def test_read_run_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no metrics.jsonl: not a charrnn run directory, "
                                        r"or no evaluation has finished yet$"):
        read_run(tmp_path / "empty")
    (tmp_path / "empty" / "metrics.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty/metrics.jsonl: no evaluation in it yet$"):
        read_run(tmp_path / "empty")
    run = make_run(tmp_path, "bad", [(3.0, 3.0)])
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 20, "train_loss": 2.0}\n')
    with pytest.raises(DataError, match=r"bad/metrics.jsonl:2: not a metrics record \(a JSON "
                                        r"object with iteration, train_loss, val_loss and "
                                        r"seconds\)$"):
        read_run(run)
    broken = make_run(tmp_path, "broken", [(3.0, 3.0)], checkpoint=False)
    (broken / "last.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError):
        read_run(broken)
    assert read_run(make_run(tmp_path, "none", [(3.0, 3.0)], checkpoint=False)).config is None


TORN = '{"iteration": 30, "train_loss": 2.5, "val_lo'     # a write stopped halfway


def test_a_torn_last_line_is_left_out_and_noted(tmp_path):
    run = make_run(tmp_path, "torn", [(3.0, 3.1), (2.0, 2.5)])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(TORN)
    r = read_run(run)
    assert [(rec["iteration"], rec["val_loss"]) for rec in r.records] == [(10, 3.1), (20, 2.5)]
    assert r.notes == (f"{run / 'metrics.jsonl'}: left out its last line, cut short (44 bytes "
                       "without a newline)",)
    assert len(TORN) == 44 and read_run(make_run(tmp_path, "whole", [(3.0, 3.1)])).notes == ()


def test_only_a_last_line_without_a_newline_is_left_out(tmp_path):
    # a whole record without its newline is kept
    run = make_run(tmp_path, "unended", [(3.0, 3.1)])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"iteration": 20, "train_loss": 2.0, "val_loss": 2.5, "seconds": 3}))
    r = read_run(run)
    assert [rec["iteration"] for rec in r.records] == [10, 20] and r.notes == ()
    # JSON that is not a record, even last and without its newline, is an error, as before
    run = make_run(tmp_path, "short", [(3.0, 3.1)])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"iteration": 20, "train_loss": 2.0}')
    with pytest.raises(DataError, match=r"short/metrics.jsonl:2: not a metrics record \(a JSON "
                                        r"object with iteration, train_loss, val_loss and "
                                        r"seconds\)$"):
        read_run(run)
    # a torn line in the middle (whole lines written after it) is an error, as before
    run = make_run(tmp_path, "middle", [(3.0, 3.1)])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(TORN + "\n" + json.dumps({"iteration": 40, "train_loss": 2.0, "val_loss": 2.5,
                                          "seconds": 6}) + "\n")
    with pytest.raises(DataError, match=r"middle/metrics.jsonl:2: not a metrics record \(a JSON "
                                        r"object with iteration, train_loss, val_loss and "
                                        r"seconds\)$"):
        read_run(run)


def test_differences_name_what_differs(runs, tmp_path):
    assert differences(runs) == ["batch_size=4, learning_rate=0.001",
                                 "batch_size=8, learning_rate=0.003"]
    assert differences(runs[:1]) == [""]
    bare = read_run(make_run(tmp_path, "bare", [(3.0, 3.0)], checkpoint=False))
    assert differences([runs[0], bare])[1] == "no checkpoint"


def test_nice_ticks():
    assert nice_ticks(0, 1000) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(1.234, 3.9) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert nice_ticks(0, 40) == [0, 10, 20, 30, 40]
    assert nice_ticks(2.0, 2.0) == [1.0, 1.5, 2.0, 2.5, 3.0]


def points(polyline):
    return [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]


@pytest.mark.parametrize("axis, x_of", [
    ("iteration", lambda run, rec: rec["iteration"]),
    ("seconds", lambda run, rec: rec["seconds"]),
    ("chars", lambda run, rec: rec["iteration"] * run.config["batch_size"] * 16),
])
def test_svg_lines_follow_the_metrics(runs, axis, x_of):
    root = ET.fromstring(render_svg(runs, axis))
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    assert [(p.get("class"), p.get("data-run")) for p in lines] == \
        [("train_loss", "0"), ("val_loss", "0"), ("train_loss", "1"), ("val_loss", "1")]
    # one affine map from (x, loss) to pixels for every point of every line: x right, loss up
    data = [(x_of(run, rec), rec[key]) for run in runs for key in ("train_loss", "val_loss")
            for rec in run.records]
    pixels = [p for line in lines for p in points(line)]
    assert len(pixels) == len(data) == 14
    (x0, l0), (x1, l1) = min(data), max(data)
    (px0, py0), (px1, py1) = pixels[data.index((x0, l0))], pixels[data.index((x1, l1))]
    ax, ay = (px1 - px0) / (x1 - x0), (py1 - py0) / (l1 - l0)
    assert ax > 0 and ay < 0
    for (x, loss), (px, py) in zip(data, pixels):
        assert px == pytest.approx(px0 + ax * (x - x0), abs=0.02)
        assert py == pytest.approx(py0 + ay * (loss - l0), abs=0.02)


def test_svg_has_axes_ticks_and_a_legend(runs):
    svg = render_svg(runs)
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "iteration" in texts and "loss (nats/char)" in texts
    assert {"0", "10", "20", "30", "40"} <= set(texts)
    assert {"2.00", "3.00", "4.00"} <= set(texts)
    legend = [" ".join("".join(t.itertext()) for t in g.iter(f"{SVG}text"))
              for g in root.iter(f"{SVG}g")]
    assert legend[0] == f"{runs[0].name}: best validation 2.8000 at iteration 30 " \
                        "batch_size=4, learning_rate=0.001"
    assert render_svg(runs) == svg                      # the same bytes


def test_html_holds_the_chart_and_refers_to_nothing(runs):
    page = render_html(runs, "seconds")
    assert "://" not in page and "<svg width=" in page
    tags = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))
    Tags().feed(page)
    assert [t for t, _ in tags].count("polyline") == 4
    assert not any({"src", "href"} & set(a) for _, a in tags)
    assert f"<td>{runs[1].name}</td><td>batch_size=8, learning_rate=0.003</td>" in page
    assert f'<td class="num">{2.8 / math.log(2):.3f}</td>' in page
