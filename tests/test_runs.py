"""Run directories (runs.py): unique default names, one live owner per directory, locks left by
dead processes, and many `charrnn train` processes started at once in one directory."""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn import runs
from charrnn.checkpoint import load_checkpoint
from charrnn.data import usual_file_mode
from charrnn.runs import RunError, RunLock, make_run_dir

from cli_helpers import assert_fails, invoke

TEXT = "".join(f"line {i}: the cat sat on the mat, {i * 7 % 13} times.\n" for i in range(120))
SMALL = ["hidden_size=12", "num_layers=1", "batch_size=3", "seq_length=10", "eval_every=4",
         "max_iters=8"]


def _sets(*items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_default_run_dirs_made_in_the_same_second_get_suffixes(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda fmt, *a: "20260101-120000")
    made = [make_run_dir(None, "text", tmp_path / "runs") for _ in range(3)]
    assert made == [(tmp_path / "runs" / name, True)
                    for name in ("20260101-120000-text", "20260101-120000-text-2",
                                 "20260101-120000-text-3")]
    assert all(path.is_dir() for path, _ in made)


def test_out_may_exist_and_is_made_with_its_parents(tmp_path):
    assert make_run_dir(tmp_path / "a" / "b") == (tmp_path / "a" / "b", True)
    assert make_run_dir(tmp_path / "a" / "b") == (tmp_path / "a" / "b", False)


def test_a_locked_run_dir_is_refused_naming_its_owner(tmp_path):
    with RunLock(tmp_path) as lock:
        owner = json.loads((tmp_path / "lock").read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunError) as info:
            RunLock(tmp_path).acquire()
        assert str(info.value) == (f"{tmp_path}: in use by process {os.getpid()} on host "
                                   f"{socket.gethostname()}, training since {owner['started']}; "
                                   "a run directory belongs to one process at a time")
        assert lock.fd is not None
    assert not (tmp_path / "lock").exists()       # given back, and the file removed
    RunLock(tmp_path).acquire().release()


def test_a_lock_file_left_by_a_dead_process_blocks_nothing(tmp_path):
    (tmp_path / "lock").write_text(json.dumps({"pid": 999_999_999, "host": "elsewhere",
                                               "started": "2026-01-01 00:00:00"}))
    lock = RunLock(tmp_path).acquire()           # nobody holds its flock
    assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_without_flock_a_live_owner_on_this_host_still_blocks(tmp_path, monkeypatch):
    """On a file system without flock (ENOLCK), the recorded pid is checked instead."""
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runs.fcntl, "flock", no_flock)
    host = socket.gethostname()
    record = {"pid": os.getppid(), "host": host, "started": "2026-01-01 00:00:00"}
    (tmp_path / "lock").write_text(json.dumps(record))
    with pytest.raises(RunError) as info:
        RunLock(tmp_path).acquire()
    assert str(info.value) == (f"{tmp_path}: in use by process {os.getppid()} on host {host}, "
                               "training since 2026-01-01 00:00:00; a run directory belongs to "
                               f"one process at a time (if it is not, delete {tmp_path / 'lock'})")
    (tmp_path / "lock").write_text(json.dumps(dict(record, pid=_dead_pid())))
    RunLock(tmp_path).acquire().release()


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_train_out_and_resume_of_a_run_in_use_are_refused(text_file, tmp_path):
    run = tmp_path / "run"
    assert invoke(["train", text_file, *_sets(*SMALL), "--out", run]).exit_code == 0
    with RunLock(run):                 # as if another process were training there
        started = json.loads((run / "lock").read_text())["started"]
        in_use = (f"Error: {run}: in use by process {os.getpid()} on host "
                  f"{socket.gethostname()}, training since {started}; a run directory belongs "
                  "to one process at a time\n")
        assert_fails(invoke(["train", "--resume", run, *_sets("max_iters=12")]), 1, in_use)
        assert_fails(invoke(["train", text_file, "--out", run]), 1, in_use)
    assert_fails(invoke(["train", text_file, "--out", run]), 1,
                 f"Error: {run}: already holds a run; choose another --out, or continue it "
                 f"with --resume {run}\n")
    assert invoke(["train", "--resume", run, *_sets("max_iters=12")]).exit_code == 0
    assert not (run / "lock").exists()


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_process_cannot_take_a_run_that_is_training(text_file, tmp_path):
    run = tmp_path / "run"
    proc = _start(["train", text_file, *_sets(*SMALL, "max_iters=1000000", "eval_every=2"),
                   "--out", run], tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (run / "last.npz").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for args in (["train", "--resume", run, *_sets("max_iters=2000000")],
                     ["train", text_file, "--out", run]):
            result = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert result.stderr.startswith(f"Error: {run}: in use by process {proc.pid} on "
                                            f"host {socket.gethostname()}, training since ")
    finally:
        proc.kill()
        proc.communicate()
    # killed: its lock file is left behind, and blocks nothing
    assert json.loads((run / "lock").read_text())["pid"] == proc.pid
    reached = load_checkpoint(run / "last.npz").iteration
    resumed = invoke(["train", "--resume", run, *_sets(f"max_iters={reached + 2}"), "--json"],
                     catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["iterations"] == reached + 2


def test_runs_started_at_once_in_one_directory_keep_to_their_own(text_file, tmp_path):
    """Four `charrnn train` processes started together, without --out, as `xargs -P 4` would:
    four run directories, each with its own consistent metrics.jsonl and checkpoints."""
    args = ["train", text_file, *_sets(*SMALL, "max_iters=12"), "--json"]
    procs = [_start(args, tmp_path) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]
    dirs = sorted(tmp_path / s["run_dir"] for s in summaries)
    assert len(set(dirs)) == 4 and sorted((tmp_path / "runs").iterdir()) == dirs
    for run in dirs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in rows] == [4, 8, 12]
        last, best = load_checkpoint(run / "last.npz"), load_checkpoint(run / "best.npz")
        assert last.iteration == 12 and best.info["best_val_loss"] == min(r["val_loss"]
                                                                          for r in rows)
        assert all(np.isfinite(p).all() for p in last.params.values())
        assert np.load(run / "data.npy").size == len(TEXT)
        assert not (run / "lock").exists()
        assert sorted(p.name for p in run.iterdir()) == ["best.npz", "data.npy", "last.npz",
                                                         "metrics.jsonl"]
        for name in ("best.npz", "data.npy", "last.npz"):   # made 0600, then given the usual mode
            assert (run / name).stat().st_mode & 0o777 == usual_file_mode()
