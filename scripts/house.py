"""The shape of charrnn's code: its longest functions, its largest classes and its imports.

    python scripts/house.py            # the 10 longest functions and largest classes
    python scripts/house.py --top 25 --json

A function's length counts its lines from `def` to its last line, docstring included; a class's
size is the number of distinct attributes it holds: dataclass fields and every `self.NAME = ...`
in its methods. tests/test_house.py holds the limits (about 60 lines outside the numerical
kernels, 15 attributes) and checks that cli.py imports the API and the error types only.
"""

import argparse
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "charrnn"


def functions(package=PACKAGE):
    """[(lines, 'module.py:qualified.name', first line)] of every function and method."""
    found = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    found.append((child.end_lineno - child.lineno + 1, f"{path.name}:{name}",
                                  child.lineno))
                    visit(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")
        visit(tree, "")
    return sorted(found, reverse=True)


def classes(package=PACKAGE):
    """[(attributes, 'module.py:Class', first line)] of every class."""
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            names = {s.target.id for s in node.body
                     if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
            for sub in ast.walk(node):
                targets = (sub.targets if isinstance(sub, ast.Assign) else
                           [sub.target] if isinstance(sub, (ast.AugAssign, ast.AnnAssign)) else [])
                for target in targets:
                    for t in ast.walk(target):
                        if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                                and t.value.id == "self"):
                            names.add(t.attr)
            found.append((len(names), f"{path.name}:{node.name}", node.lineno))
    return sorted(found, reverse=True)


def imports(path):
    """The charrnn modules that a module imports at its top level or in its functions."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charrnn"):
            names.add((node.module.split(".") + [""])[1] or "charrnn")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many of each to list")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    longest, largest = functions()[:args.top], classes()[:args.top]
    if args.json:
        print(json.dumps({"functions": [{"lines": n, "name": f, "line": at}
                                        for n, f, at in longest],
                          "classes": [{"attributes": n, "name": c, "line": at}
                                      for n, c, at in largest]}))
        return
    print("longest functions (lines):")
    for n, name, at in longest:
        print(f"  {n:4d}  {name} (line {at})")
    print("largest classes (attributes):")
    for n, name, at in largest:
        print(f"  {n:4d}  {name} (line {at})")


if __name__ == "__main__":
    main()
