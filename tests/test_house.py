"""The house rules of charrnn's code (scripts/house.py measures them): the command line goes
through the API alone, functions stay short and classes small outside the numerical kernels,
imports run one way, and the run directory's file names have one home."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "charrnn"

spec = importlib.util.spec_from_file_location("house", ROOT / "scripts" / "house.py")
house = importlib.util.module_from_spec(spec)
spec.loader.exec_module(house)

MAX_LINES = 60          # a function, docstring included
MAX_ATTRIBUTES = 15     # a class
# the exceptions, each with its reason
LONG_KERNELS = {
    "sample.py:Stepper.__init__",     # builds the fused step matrices of all three cells
}
LARGE_BY_NATURE = {
    "config.py:TrainConfig",          # one field per config key (the checkpoint's "train")
    "sample.py:Stepper",              # the numerical kernel of sampling: its buffers
}


def test_the_command_line_imports_the_api_and_the_errors_only():
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    ours = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            ours.add(node.module or ",".join(sorted(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            assert all(a.name in sys.stdlib_module_names or a.name == "click"
                       for a in node.names), ast.dump(node)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module in sys.stdlib_module_names or node.module == "click", node.module
    assert ours == {"__version__,api", "errors"}


def test_no_function_is_longer_than_about_60_lines():
    long = {name: n for n, name, _ in house.functions() if n > MAX_LINES}
    assert set(long) == LONG_KERNELS, long


def test_no_class_holds_more_than_about_15_attributes():
    large = {name: n for n, name, _ in house.classes() if n > MAX_ATTRIBUTES}
    assert set(large) == LARGE_BY_NATURE, large


def _graph():
    return {path.stem: house.imports(path) - {path.stem} for path in PACKAGE.glob("*.py")}


def test_imports_run_one_way():
    graph = _graph()
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail(f"an import cycle: {' -> '.join(path[path.index(module):] + [module])}")
        if module in done or module not in graph:
            return
        path.append(module)
        for other in sorted(graph[module]):
            visit(other)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert graph["errors"] == set() and graph["runs"] == {"errors"}
    assert graph["layers"] == set()
    below = {m: imported for m, imported in graph.items() if m != "__main__"}
    assert "cli" not in set().union(*below.values())       # nothing below imports the CLI


@pytest.mark.parametrize("name", ["LAST", "BEST", "METRICS", "DATA", "LABELS", "LOCK", "START"])
def test_the_run_directory_file_names_live_in_runs_py(name):
    from charrnn import runs

    literal = getattr(runs, name)
    for path in PACKAGE.glob("*.py"):
        if path.name == "runs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            assert not (isinstance(node, ast.Constant) and node.value == literal), (
                f"{path.name}:{node.lineno} writes {literal!r}: use runs.{name}")


def test_the_house_script_lists_them(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["house.py", "--top", "3"])
    house.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "longest functions (lines):" and out[4] == "largest classes (attributes):"
    longest = house.functions()[0]
    assert out[1] == f"  {longest[0]:4d}  {longest[1]} (line {longest[2]})"


def test_no_public_name_is_a_module_name():
    """charrnn.NAME is the API's; a submodule of the same name would replace it once imported
    (`from . import evaluate` sets the package's attribute)."""
    import charrnn

    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert not set(charrnn._API) & modules
