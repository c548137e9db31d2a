"""`charrnn plot`: where the chart goes, and the exact message and exit status of each bad input."""

import xml.etree.ElementTree as ET

import pytest

from charrnn.cli import cli

from cli_helpers import assert_fails, invoke, usage_error as cli_usage_error
from view_helpers import make_run

SVG = "{http://www.w3.org/2000/svg}"


def usage_error(message):
    return cli_usage_error("plot", "[OPTIONS] RUN_DIR...", message)


@pytest.fixture
def two(tmp_path):
    return [make_run(tmp_path, "a", [(3.0, 3.1), (2.0, 2.5)], learning_rate=1.0e-3),
            make_run(tmp_path, "b", [(3.2, 3.0), (2.2, 2.4)], learning_rate=3.0e-3)]


def test_help_has_an_example_and_every_option_help():
    result = invoke(["plot", "-h"], catch_exceptions=False)
    assert result.exit_code == 0 and "Example:\n      charrnn plot runs/* -o curves.html\n" \
        in result.stdout
    for param in cli.commands["plot"].params:
        if param.param_type_name == "option":
            assert param.help, param.opts
    assert "\n  plot " in invoke(["-h"]).stdout


def test_default_is_curves_svg_here(two, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["plot", *two], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    size = (tmp_path / "curves.svg").stat().st_size
    assert result.stderr == f"wrote curves.svg ({size:,} bytes; 2 runs)\n"
    root = ET.parse(tmp_path / "curves.svg").getroot()
    assert len(root.findall(f"{SVG}polyline")) == 4


def test_dash_writes_svg_to_stdout_and_html_by_its_name(two, tmp_path):
    result = invoke(["plot", *two, "-o", "-", "--x", "seconds"], catch_exceptions=False)
    assert result.stderr == "" and ET.fromstring(result.stdout).tag == f"{SVG}svg"
    assert "training time (s)" in result.stdout
    result = invoke(["plot", two[0], "-o", tmp_path / "c.html"], catch_exceptions=False)
    assert result.stderr.endswith("bytes; 1 run)\n")
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg width=" in page


def test_a_torn_last_line_is_noted_on_stderr_and_the_rest_drawn(two, tmp_path):
    with open(two[1] / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"iteration": 30, "train_lo')
    out = tmp_path / "c.svg"
    result = invoke(["plot", *two, "-o", out], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == (f"note: {two[1] / 'metrics.jsonl'}: left out its last line, cut "
                             "short (27 bytes without a newline)\n"
                             f"wrote {out} ({out.stat().st_size:,} bytes; 2 runs)\n")
    lines = ET.parse(out).getroot().findall(f"{SVG}polyline")
    assert [len(line.get("points").split()) for line in lines] == [2, 2, 2, 2]


def test_bad_inputs(two, tmp_path):
    (tmp_path / "notarun").mkdir()
    assert_fails(invoke(["plot", two[0], tmp_path / "notarun"]), 1,
                 f"Error: {tmp_path / 'notarun'}: no metrics.jsonl: not a charrnn run directory, "
                 "or no evaluation has finished yet\n")
    assert_fails(invoke(["plot", two[0], "-o", tmp_path / "c.png"]), 2,
                 usage_error(f"Invalid value for '-o' / '--output': {tmp_path / 'c.png'}: the "
                             "name must end in .svg or .html (or be - for SVG on stdout)"))
    out = tmp_path / "no" / "c.svg"
    assert_fails(invoke(["plot", two[0], "-o", out]), 1,
                 f"Error: {out}: cannot write: No such file or directory\n")
    bare = make_run(tmp_path, "bare", [(3.0, 3.0)], checkpoint=False)
    assert_fails(invoke(["plot", bare, "--x", "chars"]), 1,
                 f"Error: {bare}: no checkpoint to read batch_size and seq_length from, which an "
                 "x axis of characters needs\n")
    assert_fails(invoke(["plot", tmp_path / "missing"]), 2,
                 usage_error(f"Invalid value for 'RUN_DIR...': Directory "
                             f"'{tmp_path / 'missing'}' does not exist."))
    assert_fails(invoke(["plot"]), 2, usage_error("Missing argument 'RUN_DIR...'."))
    assert_fails(invoke(["plot", two[0], "--x", "time"]), 2,
                 usage_error("Invalid value for '--x': 'time' is not one of 'iteration', "
                             "'seconds', 'chars'."))
