"""scripts/learning_to_execute.py: the grammar, results checked by running the programs with
Python, the hash split, determinism, the curricula, the addition task, the vocabulary, the CLI."""

import ast
import collections
import contextlib
import importlib.util
import io
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_to_execute.py"
spec = importlib.util.spec_from_file_location("learning_to_execute", SCRIPT)
lte = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lte)

LEVELS = [(1, 1), (2, 1), (1, 3), (3, 2), (4, 4), (9, 3), (2, 10)]


def run(program):
    """What the program prints when Python runs it (only print and range available)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {"__builtins__": {"print": print, "range": range}})
    return out.getvalue()


def samples_at(level, n=60, seed=0, curriculum="baseline", current=(1, 1)):
    rng = random.Random(seed)
    return [lte.generate_program(rng, lambda: lte.draw_level(rng, curriculum, level, current))
            for _ in range(n)]


ALLOWED_NODES = (ast.Module, ast.Assign, ast.AugAssign, ast.For, ast.Expr, ast.Call, ast.Name,
                 ast.Constant, ast.BinOp, ast.IfExp, ast.Compare, ast.Add, ast.Sub, ast.Mult,
                 ast.Gt, ast.Lt, ast.Load, ast.Store)


def depth(node, env):
    """How many operations deep an expression is; a variable counts what built its value."""
    if isinstance(node, ast.Constant):
        return 0
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return 1 + max(depth(node.left, env), depth(node.right, env))
    parts = [node.test.left, node.test.comparators[0], node.body, node.orelse]   # IfExp
    return 1 + max(depth(p, env) for p in parts)


def check_grammar(sample):
    """Asserts the program is in the grammar; returns its expression depth."""
    tree = ast.parse(sample.program)
    L = sample.length
    for node in ast.walk(tree):
        assert isinstance(node, ALLOWED_NODES), ast.dump(node)
        if isinstance(node, ast.Constant):
            assert type(node.value) is int and 1 <= node.value <= 10 ** L
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):  # by a small constant
            assert any(isinstance(s, ast.Constant) and s.value <= 4 * L
                       for s in (node.left, node.right))
        if isinstance(node, ast.Call):
            assert node.func.id in ("print", "range") and len(node.args) == 1
    *statements, last = tree.body
    assert isinstance(last, ast.Expr) and last.value.func.id == "print"
    env = {}
    for statement in statements:
        if isinstance(statement, ast.Assign):       # v=a, once per variable
            (target,) = statement.targets
            assert target.id in lte.VARIABLES and target.id not in env
            env[target.id] = depth(statement.value, env)
        else:                                       # for x in range(k):v+=b, right after v=a
            assert isinstance(statement, ast.For) and statement.target.id == "x"
            (count,) = statement.iter.args
            assert statement.iter.func.id == "range" and 1 <= count.value <= 4 * L
            (body,) = statement.body
            assert isinstance(body, ast.AugAssign) and isinstance(body.op, (ast.Add, ast.Sub))
            assert body.target.id == list(env)[-1]
            env[body.target.id] = 1 + max(env[body.target.id], depth(body.value, env))
    return depth(last.value.args[0], env)


@pytest.mark.parametrize("level", LEVELS)
def test_programs_follow_the_grammar(level):
    for sample in samples_at(level):
        assert (sample.length, sample.nesting) == level
        assert len(sample.operations) == level[1]
        assert set(sample.operations) <= set(lte.OPERATIONS)
        # equality passes its operand on: every other operation adds one level to the tree
        assert check_grammar(sample) == level[1] - sample.operations.count("equality")


def test_each_operation_has_its_reference_form():
    seen = collections.Counter()
    for sample in samples_at((3, 1), n=600):
        (name,) = sample.operations
        seen[name] += 1
        pattern = {
            "pair": r"print\(\(\d+[+-]\d+\)\)",
            "smallmul": r"print\(\(\d+\*\d+\)\)",
            "equality": r"print\(\d+\)",
            "vars": r"([a-j])=\d+;\nprint\(\(\1[+-]\d+\)\)",
            "small_loop": r"([a-j])=\d+\nfor x in range\(\d+\):\1[+-]=\d+\nprint\(\1\)",
            "ifstat": r"print\(\(\d+ if \d+[<>]\d+ else \d+\)\)",
        }[name]
        assert re.fullmatch(pattern, sample.program), sample.program
    assert set(seen) == set(lte.OPERATIONS) and min(seen.values()) > 60   # uniform: ~100 each


def test_the_previous_expression_takes_a_random_operand_position():
    # utils/operations.lua get_operands: torch.randperm places it among the fresh literals
    positions = collections.Counter()
    for sample in samples_at((2, 2), n=1500):
        if sample.operations == ("pair", "ifstat"):
            node = ast.parse(sample.program).body[-1].value.args[0]
            slots = [node.test.left, node.test.comparators[0], node.body, node.orelse]
            (slot,) = [i for i, s in enumerate(slots) if isinstance(s, ast.BinOp)]
            positions[slot] += 1
    assert set(positions) == {0, 1, 2, 3} and min(positions.values()) > 5   # ~10 each


def test_literals_reach_ten_to_the_length_inclusive():
    rng = random.Random(3)
    literals = collections.Counter(
        node.value for _ in range(500) for node in
        ast.walk(ast.parse(lte.generate_program(rng, lambda: (1, 1)).program))
        if isinstance(node, ast.Constant))
    assert set(literals) == set(range(1, 11))      # [1, 10^L], as torch.random(10^L)


@pytest.mark.parametrize("level", LEVELS)
def test_results_match_what_python_prints(level):
    for sample in samples_at(level, n=80, seed=1):
        assert run(sample.program) == f"{sample.result}\n"


def test_results_under_mix_and_combined_match_python():
    for curriculum in ("mix", "combined"):
        for sample in samples_at((5, 4), n=150, seed=2, curriculum=curriculum, current=(2, 2)):
            assert run(sample.program) == f"{sample.result}\n"
            check_grammar(sample)


def test_results_are_sometimes_negative():
    assert any(s.result < 0 for s in samples_at((2, 2), n=100))


def test_line_format_and_parse_round_trip():
    sample = lte.Sample("a=5;\nprint((a-7))", -2, 1, 1, ("vars",))
    assert lte.format_line(sample) == "a=5;#print((a-7))@-2."
    assert lte.format_line(sample, labels=True) == "1\t1\ta=5;#print((a-7))@-2."
    assert lte.parse_line("a=5;#print((a-7))@-2.\n") == ("a=5;\nprint((a-7))", -2, None)
    assert lte.parse_line("1\t1\ta=5;#print((a-7))@-2.") == ("a=5;\nprint((a-7))", -2, (1, 1))
    for s in samples_at((4, 3), n=50):
        assert lte.parse_line(lte.format_line(s, labels=True)) == (
            s.program, s.result, (s.length, s.nesting))
        # the separator and the end mark appear once, where they belong
        line = lte.format_line(s)
        assert line.count("@") == 1 and line.count(".") == 1 and line.endswith(".")
    with pytest.raises(ValueError, match="no '.' after the result"):
        lte.parse_line("print(1)@1")


def test_splits_are_disjoint_and_each_line_hashes_to_its_split():
    kwargs = dict(seed=0, target=(2, 2), curriculum="mix")
    lines = {split: {lte.format_line(s) for s in lte.generate(300, split, **kwargs)}
             for split in lte.SPLITS}
    for split, group in lines.items():
        assert {lte.split_of(line) for line in group} == {split}
    assert not lines["train"] & lines["val"]
    assert not lines["train"] & lines["test"]
    assert not lines["val"] & lines["test"]


def test_a_tiny_sample_space_is_partitioned_by_the_hash():
    # addition at L=1: 81 distinct sums; each split gets about a third, none shares one
    found = {split: {lte.format_line(s) for s in lte.generate(400, split, task="addition")}
             for split in lte.SPLITS}
    assert sum(len(group) for group in found.values()) == 81
    assert all(15 < len(group) < 40 for group in found.values())


def test_split_of_is_a_fixed_function_of_the_text():
    # SHA-256, not Python's salted hash(): the same in every process and every version, so a
    # file generated today never shares a sample with another split generated later
    assert [lte.split_of(f"print({i})@{i}.") for i in range(1, 9)] == [
        "test", "val", "test", "test", "val", "train", "val", "train"]
    counts = collections.Counter(lte.split_of(f"print({i})@{i}.") for i in range(3000))
    assert all(900 < counts[split] < 1100 for split in lte.SPLITS)


def test_same_seed_same_samples_other_seed_other_samples():
    kwargs = dict(target=(3, 2), curriculum="combined", current=(2, 1))
    first = lte.generate(50, "val", seed=7, **kwargs)
    assert lte.generate(50, "val", seed=7, **kwargs) == first
    assert lte.generate(50, "val", seed=8, **kwargs) != first


def test_draw_level_baseline_and_naive_are_constant():
    rng = random.Random(0)
    assert {lte.draw_level(rng, "baseline", (4, 3), (2, 1)) for _ in range(100)} == {(4, 3)}
    assert {lte.draw_level(rng, "naive", (4, 3), (2, 1)) for _ in range(100)} == {(2, 1)}


def test_draw_level_mix_is_uniform_up_to_the_target():
    rng = random.Random(0)
    counts = collections.Counter(lte.draw_level(rng, "mix", (3, 2)) for _ in range(6000))
    assert set(counts) == {(L, N) for L in (1, 2, 3) for N in (1, 2)}
    assert all(850 < c < 1150 for c in counts.values())      # 1000 each


def test_draw_level_combined_is_current_four_times_in_five_else_mix():
    rng = random.Random(0)
    counts = collections.Counter(lte.draw_level(rng, "combined", (3, 2), (2, 1))
                                 for _ in range(12000))
    # P(current) = 0.8 + 0.2 / 6; every other level 0.2 / 6
    assert abs(counts[(2, 1)] / 12000 - (0.8 + 0.2 / 6)) < 0.015
    others = [counts[(L, N)] for L in (1, 2, 3) for N in (1, 2) if (L, N) != (2, 1)]
    assert all(abs(c / 12000 - 0.2 / 6) < 0.008 for c in others)


def test_mix_draws_each_literal_length_on_its_own():
    # the reference calls hardness() per literal: one program can mix lengths
    rng = random.Random(5)
    lengths = set()
    for _ in range(200):
        sample = lte.generate_program(rng, lambda: lte.draw_level(rng, "mix", (4, 1)))
        if sample.operations == ("pair",):
            a, b = re.findall(r"\d+", sample.program)
            lengths.add((len(a), len(b)))
    assert any(la != lb for la, lb in lengths)


def test_labels_under_mix_are_the_nesting_and_longest_length_drawn():
    samples = samples_at((4, 3), n=600, curriculum="mix")
    nestings = collections.Counter(s.nesting for s in samples)
    assert set(nestings) == {1, 2, 3} and min(nestings.values()) > 150
    for s in samples:
        assert len(s.operations) == s.nesting
        literals = [n.value for n in ast.walk(ast.parse(s.program)) if isinstance(n, ast.Constant)]
        assert max(literals) <= 10 ** s.length
    # the largest of several draws leans to the top
    lengths = collections.Counter(s.length for s in samples)
    assert lengths[4] > lengths[1]


def test_naive_schedule_raises_length_then_nesting():
    assert lte.schedule((3, 2)) == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]
    assert lte.next_level((3, 1), (3, 2)) == (1, 2)
    assert lte.next_level((3, 2), (3, 2)) is None
    assert lte.schedule((1, 1)) == [(1, 1)]
    assert lte.schedule((4, 1)) == [(1, 1), (2, 1), (3, 1), (4, 1)]


def test_addition_task():
    for L in (1, 3, 9):
        for sample in lte.generate(40, "test", seed=L, task="addition", target=(L, 1)):
            a, b = re.fullmatch(r"print\((\d+)\+(\d+)\)", sample.program).groups()
            assert len(a) == len(b) == L and a[0] != "0" and b[0] != "0"
            assert (sample.length, sample.nesting, sample.operations) == (L, 1, ("addition",))
            assert run(sample.program) == f"{sample.result}\n" and sample.result == int(a) + int(b)


def test_addition_follows_the_curriculum_for_length():
    samples = lte.generate(300, "train", task="addition", curriculum="mix", target=(3, 1))
    assert collections.Counter(s.length for s in samples).keys() == {1, 2, 3}
    assert {s.length for s in lte.generate(50, task="addition", curriculum="naive",
                                           target=(5, 1), current=(2, 1))} == {2}


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="addition", target=(3, 2)), "addition task has no nesting"),
    (dict(target=(3, 11)), "nesting must be <= 10"),
    (dict(target=(0, 1)), "length and nesting must be >= 1"),
    (dict(target=(3, 2), current=(4, 1)), r"current level \(4, 1\) is beyond the target"),
    (dict(curriculum="blend"), "unknown curriculum 'blend'"),
    (dict(split="dev"), "unknown split 'dev'"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lte.generate(1, **kwargs)


def test_vocabulary_is_exactly_what_lines_can_hold():
    assert lte.VOCAB == "".join(sorted(set(lte.VOCAB)))
    chars = set()
    for level in [(2, 3), (9, 2)]:
        chars |= {c for s in samples_at(level, n=400) for c in lte.format_line(s, labels=False)}
    chars |= {c for s in lte.generate(50, task="addition", target=(4, 1))
              for c in lte.format_line(s)}
    assert chars == set(lte.VOCAB)


def test_cli_writes_the_lines_generate_returns(tmp_path, capsys):
    out = tmp_path / "train.txt"
    argv = ["--length", "3", "--nesting", "2", "--curriculum", "combined", "--current-length",
            "2", "--split", "val", "--n", "25", "--seed", "4", "-o", str(out)]
    lte.main(argv)
    expected = lte.generate(25, "val", seed=4, curriculum="combined", target=(3, 2),
                            current=(2, 1))
    assert out.read_text() == "".join(lte.format_line(s) + "\n" for s in expected)
    assert "wrote 25 val samples" in capsys.readouterr().err
    lte.main(argv + ["--labels", "-o", str(tmp_path / "labelled.txt")])
    labelled = (tmp_path / "labelled.txt").read_text().splitlines()
    assert [line.split("\t", 2)[2] for line in labelled] == out.read_text().splitlines()
    assert [tuple(map(int, line.split("\t")[:2])) for line in labelled] == [
        (s.length, s.nesting) for s in expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelled.txt", "train.txt"]


def test_cli_stdout_addition_and_vocab(capsys):
    lte.main(["--task", "addition", "--length", "2", "-n", "3", "--rng-seed", "1"])
    assert capsys.readouterr().out.splitlines() == [
        lte.format_line(s) for s in lte.generate(3, seed=1, task="addition", target=(2, 1))]
    lte.main(["--print-vocab"])
    assert capsys.readouterr().out == lte.VOCAB + "\n"


@pytest.mark.parametrize("argv, message", [
    (["-n", "3"], "--length is required"),
    (["--length", "2", "--nesting", "2", "--task", "addition"], "addition task has no nesting"),
    (["--length", "2", "--current-length", "3"], "beyond the target"),
    (["--length", "0"], "must be >= 1, got 0"),
    (["--length", "2", "--curriculum", "blend"], "invalid choice: 'blend'"),
])
def test_cli_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lte.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_unwritable_output_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lte.main(["--length", "1", "-o", str(tmp_path / "missing" / "x.txt")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err


def test_runs_as_a_script():
    result = subprocess.run([sys.executable, str(SCRIPT), "--length", "2", "--nesting", "2",
                             "-n", "4", "--split", "test"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(lte.split_of(line) == "test" for line in lines)
