"""The README stays true: its Python API example runs, and it documents every config key and every
option of every command (as sqlite-utils' test_docs does), so that no option can be added
without its line."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn.cli import cli
from charrnn.config import ModelConfig, TrainConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(heading_start):
    """The README text from the heading that starts with heading_start to the next heading of
    the same or a higher level."""
    lines = README.splitlines()
    fenced, in_fence = [], False          # a '# comment' in a code block is no heading
    for line in lines:
        in_fence ^= line.startswith("```")
        fenced.append(in_fence or line.startswith("```"))
    for i, line in enumerate(lines):
        if line.startswith(heading_start) and not fenced[i]:
            level = len(line) - len(line.lstrip("#"))
            end = next((j for j in range(i + 1, len(lines))
                        if not fenced[j] and re.match(rf"#{{1,{level}}} ", lines[j])),
                       len(lines))
            return "\n".join(lines[i:end])
    raise AssertionError(f"README has no heading starting {heading_start!r}")


@pytest.mark.parametrize("key", [f.name for cls in (ModelConfig, TrainConfig)
                                 for f in dataclasses.fields(cls)])
def test_every_config_key_has_a_row_in_the_configuration_table(key):
    assert f"\n| `{key}` | " in _section("## Configuration")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_option_of_every_command_is_documented_in_its_section(command):
    section = _section(f"### `charrnn {command}")
    for param in cli.commands[command].params:
        for opt in param.opts if param.param_type_name == "option" else ():
            if opt in ("-h", "--help"):
                continue
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section), \
                f"charrnn {command} {opt} is not in the README's section for {command}"


def test_the_group_options_are_documented():
    assert "`charrnn --help`" in README and "--version" in README


def test_the_python_api_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _section("## Python API"), re.S)
    assert len(blocks) == 1
    (tmp_path / "input.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 100,
                                        encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()          # the sample between may hold newlines
    run_line, score_line = lines[0], lines[-1]
    run_dir, loss = run_line.split()
    assert run_dir.startswith("runs/") and (tmp_path / run_dir / "best.npz").is_file()
    assert float(loss) < 3.0
    assert score_line.split()[2] == "18"        # n_chars of "the quick brown fox"
