"""scripts/learning_to_execute_run.py: the curriculum run end to end on a tiny setting (addition
up to L = 2, a model of 8 units, rounds of 5 iterations): its levels rise, the run carries on
across the texts, and it reports on stderr and in JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn.checkpoint import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_to_execute_run.py"
TINY = ["--task", "addition", "--length", "2", "--set", "hidden_size=8", "--set",
        "batch_size=4", "--set", "seq_length=20", "--set", "val_frac=0.3", "--round-iters", "5",
        "--val-chars", "300", "--test-chars", "300"]


def run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_levels_rise_and_the_run_carries_on(tmp_path):
    result = run(*TINY, "--out", tmp_path / "run", "--threshold", "0", "--max-iters", "17",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # accuracy above 0 every round: L=1 for one round, then L=2, the target, where the learning
    # rate falls by 0.8 a round; 5 + 5 + 5 + 2 iterations
    assert [(s["length"], s["first_iteration"], s["last_iteration"], s["rounds"])
            for s in summary["stages"]] == [(1, 0, 5, 1), (2, 5, 17, 3)]
    assert [r["iteration"] for r in summary["rounds"]] == [5, 10, 15, 17]
    assert [r["learning_rate"] for r in summary["rounds"]] == pytest.approx([0.5, 0.5, 0.4, 0.32])
    assert (summary["iterations"], summary["stopped"], summary["level"]) == (17, "max_iters",
                                                                              [2, 1])
    assert summary["target"] == [2, 1] and summary["curriculum"] == "combined"
    assert summary["test"]["n_lines"] > 0 and summary["test"]["levels"][0]["length"] == 2
    assert 0 <= summary["test"]["accuracy"] <= 1 and summary["test"]["completion"] == "@."
    log = result.stderr.splitlines()
    assert log[0].startswith("round 1, level L=1 N=1: iteration 5, validation accuracy ")
    assert log[1] == "level L=1 N=1 -> L=2 N=1 at iteration 5"
    assert log[3] == "at the target level: learning rate now 0.4"
    assert log[-1].startswith("test at L=2 N=1: accuracy ")
    # one run, carried on through four texts (the state it carries: tests/test_resume.py)
    last = load_checkpoint(tmp_path / "run" / "last.npz")
    assert last.iteration == 17 and last.info["text_start"] == 15
    assert last.train_cfg.completion == "@." and last.model_cfg.hidden_size == 8
    assert last.train_cfg.optimizer == "sgd"
    assert last.train_cfg.learning_rate == pytest.approx(0.32)
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in records] == [5, 10, 15, 17]
    assert (tmp_path / "run-data" / "test.txt").read_text().startswith("2\t1\tprint(")


def test_without_progress_the_level_stays_and_the_rate_ends_it(tmp_path):
    result = run(*TINY, "--out", tmp_path / "run", "--threshold", "1", "--patience", "0",
                 "--max-iters", "10", cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert [s["length"] for s in summary["stages"]] == [1] and summary["level"] == [1, 1]
    result = run(*TINY, "--length", "1", "--out", tmp_path / "low", "--threshold", "0",
                 "--min-lr", "0.3", cwd=tmp_path)
    summary = json.loads(result.stdout)   # L = 1 is the target: 0.5, 0.4, 0.32, 0.256 < 0.3
    assert (summary["stopped"], summary["iterations"]) == ("learning_rate", 15)


def test_bad_settings_are_usage_errors(tmp_path):
    result = run(*TINY, "--out", tmp_path / "run", "--set", "completion=#.", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.endswith("error: completion is always '@.' here, got '#.'\n")
    result = run("--task", "addition", "--length", "2", "--nesting", "2", "--out", "x",
                 cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.endswith(
        "error: the addition task has no nesting: target nesting must be 1, got 2\n")


def test_the_preset_is_the_papers_model_in_the_generators_vocabulary():
    sys.path.insert(0, str(SCRIPT.parent))
    import learning_to_execute as lte
    from charrnn.config import load_config

    model_cfg, train_cfg = load_config("learning-to-execute")
    assert (model_cfg.model, model_cfg.hidden_size, model_cfg.num_layers) == ("lstm", 400, 2)
    assert (train_cfg.optimizer, train_cfg.learning_rate, train_cfg.grad_clip,
            train_cfg.clip_mode, train_cfg.batch_size, train_cfg.seq_length) == (
        "sgd", 0.5, 5.0, "norm", 100, 50)
    assert train_cfg.completion == lte.SEPARATOR + lte.END and train_cfg.vocab == lte.VOCAB + "\n"


def test_a_run_directory_in_use_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.npz").write_bytes(b"")
    result = run(*TINY, "--out", tmp_path / "run", "--max-iters", "5", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (f"learning_to_execute_run.py: error: {tmp_path / 'run'}: already "
                             "holds a run; choose another --out, or continue it with --resume "
                             f"{tmp_path / 'run'}\n")
