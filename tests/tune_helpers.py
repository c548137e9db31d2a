"""What the tune tests share: a small text, a small space, tiny trials (a 1-layer GRU of a few
units, 10 iterations: a tenth of a second each), worker processes, and reading a study back."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

# every trial: a tiny GRU, a few iterations, one core (the workers of a test share two)
FIXED = ("max_iters=10", "model=gru", "num_layers=1", "seq_length=16", "threads=1")
SPACE = "hidden_size: [8, 12, 16]\nlearning_rate: {low: 1.0e-3, high: 5.0e-2, log: true}\n"
ROOT = Path(__file__).resolve().parent.parent


def write_text(path, words=600, seed=0):
    rng = random.Random(seed)
    vocabulary = "the quick brown fox jumps over a lazy dog and the cat sat on it".split()
    path.write_text(" ".join(rng.choice(vocabulary) for _ in range(words)) + "\n",
                    encoding="utf-8")
    return path


def write_space(path, text=SPACE):
    path.write_text(text, encoding="utf-8")
    return path


def tune_args(text, space, out, trials, *extra, fixed=FIXED):
    args = ["tune", text, "--trials", trials, "--space", space, "--out", out]
    for item in fixed:
        args += ["--set", item]
    return [str(a) for a in [*args, *extra]]


def start_worker(args, **kwargs):
    """A `charrnn tune` process (its own interpreter, as a user would start it)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "charrnn", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def trial_jsons(out):
    return {int(p.parent.name.split("-")[1]): json.loads(p.read_text())
            for p in Path(out).glob("trial-*/trial.json")}


def assert_exact_study(result, n, pids):
    """The study has exactly n trials, numbered 0..n-1, each finished once, each claimed by one
    of the worker processes pids, each with its run directory and trial.json saying the same."""
    trials = result.trials
    assert sorted(t["number"] for t in trials) == list(range(n))
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert not [t for t in trials if t["state"] == "FAIL"], trials   # none refused: none ran twice
    jsons = trial_jsons(result.out)
    assert sorted(jsons) == list(range(n))
    for t in trials:
        assert jsons[t["number"]]["state"] == t["state"]
        assert jsons[t["number"]]["value"] == t["value"]
        rows = [json.loads(line) for line in
                (Path(t["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
        iterations = [r["iteration"] for r in rows]
        assert iterations == sorted(set(iterations))        # one run, never two in one directory
        assert t["iterations"] == iterations[-1]
    workers = study_workers(result)
    assert set(workers.values()) <= set(pids)


def study_workers(result):
    """{trial number: pid of the worker that claimed it}, read from the study itself."""
    import optuna

    from charrnn import search

    where = search.target(result.out, None if result.storage.endswith(search.JOURNAL)
                          else os.environ["CHARRNN_TEST_POSTGRES"], result.study)
    study = optuna.load_study(study_name=result.study, storage=search.open_storage(where))
    return {t.number: t.user_attrs["worker"]["pid"] for t in study.get_trials()}
