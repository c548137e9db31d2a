"""scripts/taskset_check.py runs end to end on a tiny run (its speeds are measurements, not
asserted; the bits it compares are)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "taskset_check.py"
TINY = ("model=gru", "num_layers=1", "hidden_size=64", "batch_size=128", "seq_length=8",
        "max_iters=3", "eval_every=3")


def test_one_repeat_on_each_side_gives_the_same_bits(tmp_path):
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may run on 1 CPU; the check needs 2")
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat.\n" * 1500, encoding="utf-8")
    sets = [arg for item in TINY for arg in ("--set", item)]
    result = subprocess.run([sys.executable, str(SCRIPT), str(text), "--repeats", "1", "--json",
                             *sets], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["same_bits"] is True and len(report["cpus_two"]) == 2
    assert report["cpus_one"] == report["cpus_two"][:1]
    assert report["chars_per_second_one"] > 0 and report["chars_per_second_two"] > 0
    assert "shards=2" in report["sets"]


def test_cpus_it_may_not_run_on_are_a_usage_error(tmp_path):
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    result = subprocess.run([sys.executable, str(SCRIPT), "--cpus", "0,0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--cpus: two different CPUs of this process's" in result.stderr
    assert "Traceback" not in result.stderr
