"""scripts/bench.py runs end to end (a smoke test: its figures are measurements, not asserted)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flop_counts_by_hand():
    bench = _bench_module()
    # rnn, H 100, V 65, one layer: recurrent 3 x 2 x 100 x 100, output 3 x 2 x 100 x 65, and the
    # input projection: dense 3 x 2 x 100 x 100 (forward, dx, dW), or the one-hot table
    # 2 x 2 x 100 x 65 (forward and the table's gradient)
    assert bench.flops_per_char("rnn", 100, 1, 65, layer0_table=False) == 60000 + 39000 + 60000
    assert bench.flops_per_char("rnn", 100, 1, 65, layer0_table=True) == 60000 + 39000 + 26000
    # lstm, two layers: the second layer's input projection costs forward, dx and dW
    G = 4 * 8
    assert bench.flops_per_char("lstm", 8, 2, 5, layer0_table=False) == (
        3 * 2 * 8 * G * 2 + 3 * 2 * 8 * G + 3 * 2 * 8 * 5 + 3 * 2 * 8 * G)


@pytest.mark.parametrize("args, message", [
    (["--configs", "C9"], "unknown configs: C9 (known: C0, C1, C2, C3, C4, C1L, C4L)"),
    (["--torch", "--torch-python", "/nonexistent/python"], "cannot import torch"),
    (["--threads", "1,-1"], "--threads 1,-1: expected comma-separated integers >= 0"),
    (["--torch-threads", "0"], "--torch-threads 0: expected comma-separated integers >= 1"),
    (["--torch", "--threads", "0", "--torch-threads", "1,2"],
     "--torch-threads 1,2: one count beside each --threads setting (0)"),
])
def test_bad_arguments_are_one_line_errors(args, message, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abc " * 100, encoding="utf-8")
    result = subprocess.run([sys.executable, str(SCRIPT), str(text), *args],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_one_config_end_to_end_as_json(tmp_path):
    """A row per threads setting (default 1, then 0: every core), with the cores it used."""
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    result = subprocess.run([sys.executable, str(SCRIPT), str(text), "--configs", "C0",
                             "--iters", "1", "--repeats", "1", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["threads"] for row in rows] == [1, 0]
    assert rows[0]["cores"] == 1 and rows[1]["cores"] >= 1
    for row in rows:
        assert (row["config"], row["model"], row["hidden"], row["batch"]) == ("C0", "rnn", 100, 1)
        for key in ("train_cps", "sample_cps", "batch_cps", "peak_mb", "peak_fraction"):
            assert row[key] > 0, key
        assert "torch_train_cps" not in row


TORCH_PYTHON = os.environ.get("TORCH_PYTHON", "/work/peers/venv/bin/python")


@pytest.mark.slow
def test_pytorch_at_1_and_2_threads_beside_charrnn_at_1_and_every_core(tmp_path):
    """--torch: PyTorch (in a throw-away environment of its own) at 1 thread beside charrnn at
    threads=1, at 2 beside threads=0."""
    if not os.path.isfile(TORCH_PYTHON) or subprocess.run(
            [TORCH_PYTHON, "-c", "import torch"], capture_output=True).returncode != 0:
        pytest.skip(f"no interpreter with torch at {TORCH_PYTHON} (set TORCH_PYTHON)")
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    result = subprocess.run([sys.executable, str(SCRIPT), str(text), "--configs", "C0",
                             "--iters", "1", "--repeats", "1", "--json", "--torch",
                             "--torch-python", TORCH_PYTHON],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["threads"], row["torch_threads"]) for row in rows] == [(1, 1), (0, 2)]
    for row in rows:
        assert row["torch_train_cps"] > 0 and row["train_ratio"] > 0
