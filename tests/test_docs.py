"""The docs stay true: the README's Python API example runs, the reference pages document every
config key (docs/configuration.md) and every option of every command (docs/commands.md), as
sqlite-utils' test_docs does, so that no option or key can be added without its line; every
relative link in README.md and docs/*.md points at a file (and a heading) that exists; every page
is linked from the README and opens with a paragraph; and the README stays short."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import charrnn
import charrnn.cli as cli_module
from charrnn.cli import cli
from charrnn.config import ModelConfig, TrainConfig, presets

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_MAX_LINES = 300


def _read(path):
    return Path(path).read_text(encoding="utf-8")


def _fenced(lines):
    """For each line, whether it is inside (or opens or closes) a ``` block."""
    marks, inside = [], False
    for line in lines:
        opens = line.startswith("```")
        marks.append(inside or opens)
        inside ^= opens
    return marks


def _section(text, heading_start, where="README"):
    """The text from the heading that starts with heading_start to the next heading of the same
    or a higher level (a '# comment' in a code block is no heading)."""
    lines = text.splitlines()
    fenced = _fenced(lines)
    for i, line in enumerate(lines):
        if line.startswith(heading_start) and not fenced[i]:
            level = len(line) - len(line.lstrip("#"))
            end = next((j for j in range(i + 1, len(lines))
                        if not fenced[j] and re.match(rf"#{{1,{level}}} ", lines[j])),
                       len(lines))
            return "\n".join(lines[i:end])
    raise AssertionError(f"{where} has no heading starting {heading_start!r}")


def _prose(text):
    """text without its code: fenced blocks, indented blocks (after a blank line) and `spans`."""
    lines, out = text.splitlines(), []
    fenced = _fenced(lines)
    in_indented = False
    for i, line in enumerate(lines):
        if fenced[i]:
            continue
        if line.startswith("    ") and (in_indented or i == 0 or not lines[i - 1].strip()):
            in_indented = True
            continue
        in_indented = in_indented and not line.strip()
        out.append(line)
    return re.sub(r"`[^`\n]*`", "", "\n".join(out))


def _slug(heading, seen):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens; a
    repeated slug gets -1, -2, ..."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    return slug if n == 0 else f"{slug}-{n}"


def _anchors(path):
    lines = _read(path).splitlines()
    fenced, seen = _fenced(lines), {}
    return {_slug(m.group(1), seen) for i, line in enumerate(lines)
            if not fenced[i] and (m := re.match(r"#{1,6} (.*)", line))}


def _links(path):
    """(target, is_image) of every inline Markdown link in the file's prose."""
    return [(m.group(2), m.group(1) == "!")
            for m in re.finditer(r"(!?)\[[^\]]*\]\(([^)\s]+)\)", _prose(_read(path)))]


COMMANDS_MD = _read(DOCS / "commands.md")
CONFIGURATION_MD = _read(DOCS / "configuration.md")
ALL_DOCS = README + "\n".join(_read(p) for p in PAGES)
KEYS = [f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)]


# ----------------------------------------------------------------------------- keys and options

@pytest.mark.parametrize("key", KEYS)
def test_every_config_key_has_a_row_in_the_configuration_tables_keys(key):
    assert f"\n| `{key}` | " in _section(CONFIGURATION_MD, "## Keys", "configuration.md")


def test_the_keys_table_has_no_row_for_a_key_that_does_not_exist():
    rows = re.findall(r"^\| `(\w+)` \| ", _section(CONFIGURATION_MD, "## Keys", "configuration.md"),
                      re.M)
    assert sorted(rows) == sorted(KEYS)


@pytest.mark.parametrize("preset", presets())
def test_every_preset_has_a_row_in_the_presets_table(preset):
    assert f"\n| `{preset}.yaml` | " in _section(CONFIGURATION_MD, "## Presets", "configuration.md")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_option_of_every_command_is_in_its_section_of_commands_md(command):
    section = _section(COMMANDS_MD, f"## `charrnn {command}`", "commands.md")
    options = [opt for param in cli.commands[command].params if param.param_type_name == "option"
               for opt in param.opts if opt not in ("-h", "--help")]
    assert options, f"charrnn {command} has no options to look for"
    missing = [opt for opt in options
               if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section)]
    assert missing == [], f"docs/commands.md's section on charrnn {command} lacks {missing}"


def test_the_group_options_are_in_commands_md():
    section = _section(COMMANDS_MD, "## `charrnn`", "commands.md")
    assert section.startswith("## `charrnn`\n")     # the group's own section, not a command's
    for text in ("`charrnn --help`", "`-h`", "`charrnn --version`", "`python -m charrnn`"):
        assert text in section


def test_every_exit_code_of_the_cli_has_a_row_in_commands_md():
    codes = re.findall(r"^\s+(\d+)\s{2,}", cli_module.__doc__, re.M)   # cli.py's list
    assert codes == ["0", "1", "2", "130", "143"]
    table = _section(COMMANDS_MD, "## `charrnn`", "commands.md")
    assert [code for code in codes if f"\n| {code} | " not in table] == []


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_a_line_in_the_readmes_table(command):
    assert re.search(rf"^\| `charrnn {command}[ `]", _section(README, "## Commands at a glance"),
                     re.M)


@pytest.mark.parametrize("name", sorted(set(charrnn.__all__) - {"__version__"}))
def test_every_public_name_is_in_api_md(name):
    assert f"`charrnn.{name}" in _read(DOCS / "api.md")


def test_every_name_api_md_uses_exists():
    used = set(re.findall(r"`charrnn\.(\w+)", _read(DOCS / "api.md")))
    assert used and used <= set(charrnn.__all__)


def test_every_make_target_has_a_row_in_development_md():
    phony = re.search(r"^\.PHONY: (.*)$", _read(ROOT / "Makefile"), re.M).group(1).split()
    table = _section(_read(DOCS / "development.md"), "## Make targets", "development.md")
    assert [t for t in phony if f"\n| `{t}` | " not in table] == []


# ----------------------------------------------------------------------------- the README

def test_the_readme_stays_short():
    n = len(README.splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines, more than {README_MAX_LINES}"


def test_the_python_api_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _section(README, "## Python API"), re.S)
    assert len(blocks) == 1
    (tmp_path / "input.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 100,
                                        encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()          # the sample between may hold newlines
    run_line, score_line = lines[0], lines[-1]
    run_dir, loss = run_line.split()
    assert run_dir.startswith("runs/") and (tmp_path / run_dir / "best.npz").is_file()
    assert float(loss) < 3.0
    assert score_line.split()[2] == "18"        # n_chars of "the quick brown fox"


def test_the_readme_links_every_docs_page():
    linked = {target.split("#")[0] for target, _ in _links(ROOT / "README.md")}
    assert [p.name for p in PAGES if f"docs/{p.name}" not in linked] == []


# ----------------------------------------------------------------------------- links and pages

def _relative_links():
    for path in [ROOT / "README.md", *PAGES]:
        for target, is_image in _links(path):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):     # http:, mailto:, ...
                yield path, target, is_image


def test_the_docs_have_relative_links_to_check():
    assert len(list(_relative_links())) > 50


@pytest.mark.parametrize("path, target", [(p.relative_to(ROOT).as_posix(), t)
                                          for p, t, _ in _relative_links()])
def test_every_relative_link_points_at_a_file_and_heading_that_exist(path, target):
    file_part, _, anchor = target.partition("#")
    source = ROOT / path
    linked = (source.parent / file_part).resolve() if file_part else source
    assert linked.exists(), f"{path}: {target} points at a missing file"
    if anchor:
        assert linked.suffix == ".md", f"{path}: {target}: an anchor in a file that is not Markdown"
        assert anchor in _anchors(linked), \
            f"{path}: {target}: {linked.name} has no heading whose anchor is #{anchor}"


@pytest.mark.parametrize("image", sorted(p.name for p in DOCS.glob("*.png")))
def test_every_image_in_docs_is_shown(image):
    shown = {(path.parent / target).resolve() for path, target, is_image in _relative_links()
             if is_image}
    assert (DOCS / image).resolve() in shown


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_every_page_opens_with_a_title_and_a_paragraph_saying_what_it_covers(page):
    lines = _read(DOCS / page).splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    paragraph = lines[2:lines.index("", 2)]
    assert paragraph and not re.match(r"[#|!>`-]|\s{4}|\d+\.", paragraph[0])
    assert len(" ".join(paragraph).split()) >= 25          # a paragraph, not a line


def test_the_docs_name_every_key_and_option_somewhere():
    """The docs as a whole (README and pages) carry every key and option; the tests above say
    where they must be."""
    options = {opt for command in cli.commands.values() for param in command.params
               if param.param_type_name == "option" for opt in param.opts}
    assert [o for o in sorted(options) if o not in ALL_DOCS] == []
    assert [k for k in KEYS if f"`{k}`" not in ALL_DOCS] == []
