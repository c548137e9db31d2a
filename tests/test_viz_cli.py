"""`charrnn viz`: the page it writes, where, and the exact message and exit status of each bad
input."""

import re
import sys

import pytest

from charrnn import viz as viz_module
from charrnn.cli import cli

from cli_helpers import assert_fails, invoke, usage_error as cli_usage_error
from view_helpers import Page, train_small

TEXT = ('ROMEO:\nBut soft, what light through yonder window breaks?\n'
        'It is the east, and Juliet is the sun. "Arise (fair sun)!"\n\n') * 8


def usage_error(message):
    return cli_usage_error("viz", "[OPTIONS] FILE", message)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz-cli")
    train_small(root, TEXT, cell="gru")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    (root / "odd.txt").write_text("ROMEO: été\x00", encoding="utf-8")
    (root / "empty.txt").write_text("", encoding="utf-8")
    return root


def viz(files, *args, **kwargs):
    return invoke(["viz", "-c", files / "run", *args], **kwargs)


def test_help_has_an_example_and_every_option_help():
    result = invoke(["viz", "-h"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example:\n      charrnn viz --checkpoint runs/shakespeare tinyshakespeare.txt" \
        in result.stdout
    for param in cli.commands["viz"].params:
        if param.param_type_name == "option":
            assert param.help, param.opts
    assert "\n  viz " in invoke(["-h"]).stdout


def test_writes_the_page_and_says_so_on_stderr(files, tmp_path):
    out = tmp_path / "page.html"
    result = viz(files, files / "text.txt", "-o", out, catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    size = out.stat().st_size
    lines = result.stderr.splitlines()
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \({size:,} bytes; {len(TEXT):,} "
                        r"characters, \d\.\d{3} bits/char, \d+ unit rows\)", lines[-1])
    page = Page(out.read_text(encoding="utf-8"))
    assert len(page.chars) == len(TEXT)
    units = page.json()["units"]
    assert lines[:-1] == [f"unit {u['layer']}:{u['index']}: " + u["label"].split(": ", 1)[1]
                          for u in units]
    assert len(units) >= 3


def test_same_command_same_bytes_and_dash_writes_stdout(files, tmp_path):
    viz(files, files / "text.txt", "-o", tmp_path / "a.html", catch_exceptions=False)
    viz(files, files / "text.txt", "-o", tmp_path / "b.html", catch_exceptions=False)
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    result = viz(files, files / "text.txt", "-o", "-", catch_exceptions=False)
    assert result.stdout_bytes == (tmp_path / "a.html").read_bytes()
    assert "wrote" not in result.stderr


def test_default_output_is_viz_html_here(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = viz(files, files / "text.txt", "--length", "50", "--neurons", "0:1",
                 catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.startswith(
        f"note: The text was cut: this page shows characters 0 to 49 (counted from 0) of "
        f"{len(TEXT):,}; ")
    assert result.stderr.endswith(" characters, " + result.stderr.split(" characters, ")[-1])
    assert f"wrote viz.html ({(tmp_path / 'viz.html').stat().st_size:,} bytes; 50 characters" \
        in result.stderr


def test_chosen_units_window_and_stdin(files, tmp_path):
    result = viz(files, "-", "--start", "100", "--length", "40", "--neurons", "1:3,0:15",
                 "-o", "-", input=TEXT, catch_exceptions=False)
    page = Page(result.stdout)
    data = page.json()
    assert data["text"] == TEXT[100:140] and data["start"] == 100
    assert [(u["layer"], u["index"]) for u in data["units"]] == [(1, 3), (0, 15)]
    assert data["bits"][0] is not None                 # read in context: predicted
    assert "charrnn viz: &lt;stdin&gt;" in result.stdout
    assert result.stderr.startswith("note: The text was cut: this page shows characters 100 to "
                                    "139")


def test_unk_skips_or_replaces_the_characters_the_model_never_saw(files, tmp_path):
    odd = files / "odd.txt"                     # "ROMEO: été\x00": 'é' twice, a NUL
    assert_fails(viz(files, odd, "-o", "-"), 1,
                 f"Error: {odd}: characters not in the vocabulary: '\\x00', 'é'\n")
    result = viz(files, odd, "--unk", "skip", "--neurons", "0:1", "-o", tmp_path / "s.html",
                 catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[0] == ("note: skipped 3 characters not in the model's vocabulary: '\\x00', "
                        "'é'")
    assert lines[-1].startswith(f"wrote {tmp_path / 's.html'} (") and "; 8 characters, " in lines[-1]
    assert Page((tmp_path / "s.html").read_text(encoding="utf-8")).json()["text"] == "ROMEO: t"
    result = viz(files, odd, "--unk", "replace", "--neurons", "0:1", "-o", "-",
                 catch_exceptions=False)
    assert result.stderr.splitlines()[0] == ("note: replaced 3 characters not in the model's "
                                             "vocabulary with ' ': '\\x00', 'é'")
    assert Page(result.stdout).json()["text"] == "ROMEO:  t  "
    nothing = tmp_path / "nothing.txt"
    nothing.write_text("ééé", encoding="utf-8")
    assert_fails(viz(files, nothing, "--unk", "skip"), 1,
                 f"Error: {nothing}: the text has no character in the model's vocabulary: "
                 "'é'\n")


def test_api_view_takes_unk(files):
    import charrnn

    odd = files / "odd.txt"
    with pytest.raises(charrnn.DataError) as info:
        charrnn.view(odd, files / "run")
    assert str(info.value) == f"{odd}: characters not in the vocabulary: '\\x00', 'é'"
    page = charrnn.view(odd, files / "run", neurons="0:1", unk="skip")
    assert page.view.shown == "ROMEO: t" and page.view.total_chars == 8
    assert page.notes == ("skipped 3 characters not in the model's vocabulary: '\\x00', 'é'",)
    replaced = charrnn.view(odd, files / "run", neurons="0:1", unk="replace")
    assert replaced.view.shown == "ROMEO:  t  " and replaced.notes == (
        "replaced 3 characters not in the model's vocabulary with ' ': '\\x00', 'é'",)


def test_the_cli_length_default_and_limit_are_the_library_s():
    length = next(p for p in cli.commands["viz"].params if p.name == "length")
    assert length.default == viz_module.MAX_CHARS and length.type.max == viz_module.LENGTH_LIMIT


@pytest.mark.parametrize("args, message", [
    (["--neurons", "2:0"], "Invalid value for '--neurons': 2:0: there is no layer 2 (the model "
                           "has layers 0 to 1)"),
    (["--neurons", "0:3,1:16"], "Invalid value for '--neurons': 1:16: there is no unit 16 (each "
                                "layer has units 0 to 15)"),
    (["--neurons", "first"], "Invalid value for '--neurons': 'first' is not a unit: write "
                             "LAYER:INDEX (from 0), e.g. 0:12, a comma-separated list of them, "
                             "or auto"),
    (["--start", "1000000"], f"Invalid value for '--start': 1,000,000 is beyond the end of the "
                             f"text ({len(TEXT):,} characters)"),
    (["--start", "-1"], "Invalid value for '--start': -1 is not in the range x>=0."),
    (["--length", "0"], "Invalid value for '--length': 0 is not in the range 1<=x<=100000."),
])
def test_bad_options_are_usage_errors(files, args, message):
    assert_fails(viz(files, files / "text.txt", *args, "-o", "-"), 2, usage_error(message))


def test_bad_inputs_are_one_line_errors(files, tmp_path, monkeypatch):
    odd, empty = files / "odd.txt", files / "empty.txt"
    assert_fails(viz(files, odd), 1,
                 f"Error: {odd}: characters not in the vocabulary: '\\x00', 'é'\n")
    assert_fails(viz(files, empty), 1, f"Error: {empty}: the file is empty\n")
    out = tmp_path / "no" / "page.html"
    assert_fails(viz(files, files / "text.txt", "-o", out), 1,
                 f"Error: {out}: cannot write: No such file or directory\n")
    assert_fails(viz(files, files / "text.txt", "-o", tmp_path), 2,
                 usage_error(f"Invalid value for '-o' / '--output': File '{tmp_path}' is a "
                             "directory."))
    assert_fails(viz(files, files / "missing.txt"), 2,
                 usage_error(f"Invalid value for 'FILE': File '{files / 'missing.txt'}' does not "
                             "exist."))
    assert_fails(invoke(["viz", "-c", tmp_path / "none", files / "text.txt"]), 1,
                 f"Error: {tmp_path / 'none'}: no such checkpoint file or run directory\n")
    monkeypatch.chdir(tmp_path)
    assert_fails(invoke(["viz", files / "text.txt"]), 1,
                 "Error: no trained run found under ./runs; train one with 'charrnn train FILE' "
                 "or give --checkpoint\n")


class ClosedPipe:
    """A stdout whose reader went away (`| head`): every write raises BrokenPipeError."""

    def __init__(self, path):
        self.file = open(path, "w")

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass

    def fileno(self):
        return self.file.fileno()


def test_a_closed_pipe_ends_quietly(files, tmp_path, monkeypatch, capsys):
    # in-process: a pipe's reader cannot be made to go away at a known moment here
    stdout = ClosedPipe(tmp_path / "stdout")
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as e:
        cli.main(["viz", "-c", str(files / "run"), str(files / "text.txt"), "-o", "-"],
                 prog_name="charrnn", standalone_mode=False)
    stdout.file.close()
    assert e.value.code == 0 and "Error" not in capsys.readouterr().err
