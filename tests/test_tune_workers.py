"""charrnn tune with several worker processes on one study (its journal file in the tune
directory): W workers racing end with exactly N trials, none lost or run twice; a worker killed
with kill -9 leaves its trial to be failed by the next, and the study goes on to N; Ctrl-C
fails the trial, keeps its run resumable and exits 130. Real processes, a real journal file."""

import json
import os
import signal
import time

import pytest

import charrnn
from tune_helpers import assert_exact_study, start_worker, study_workers, trial_jsons, tune_args

SLOW_TRIALS = ("max_iters=400", "eval_every=20", "model=gru", "num_layers=1", "seq_length=16",
               "threads=1")


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_racing_end_with_exactly_n_trials(tmp_path, text, space, workers):
    out, n = tmp_path / "t", 10
    procs = [start_worker(tune_args(text, space, out, n, "--json")) for _ in range(workers)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, [e for _, e in outputs]
    result = charrnn.tune_results(out)
    assert_exact_study(result, n, [p.pid for p in procs])
    for stdout, _ in outputs:                     # each worker's report: the study as it saw it
        report = json.loads(stdout)
        assert report["study"] == "t" and len(report["trials"]) <= n
    assert len(json.loads(outputs[-1][0])["trials"]) >= 1


def _wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _evaluated(run_dir):
    metrics = run_dir / "metrics.jsonl"
    return metrics.is_file() and metrics.read_text().count("\n") >= 1


def test_a_killed_workers_trial_is_failed_and_the_study_goes_on_to_n(tmp_path, text, space):
    out = tmp_path / "t"
    args = tune_args(text, space, out, 3, "--pruner", "none", fixed=SLOW_TRIALS)
    doomed = start_worker(args)
    _wait_for(lambda: _evaluated(out / "trial-0000"))      # mid-trial: it has evaluated
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=30)
    assert json.loads((out / "trial-0000" / "trial.json").read_text())["state"] == "RUNNING"
    survivor = start_worker(args)
    stdout, stderr = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, stderr
    result = charrnn.tune_results(out)
    states = {t["number"]: t["state"] for t in result.trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    reason = (f"its worker (process {doomed.pid} on {os.uname().nodename}) ended during the "
              f"trial; its run can go on: charrnn train --resume {out / 'trial-0000'}")
    failed = next(t for t in result.trials if t["number"] == 0)
    assert failed["reason"] == reason
    assert trial_jsons(out)[0]["state"] == "FAIL" and trial_jsons(out)[0]["reason"] == reason
    assert f"trial 0: FAIL ({reason})" in stderr.splitlines()
    assert study_workers(result) == {0: doomed.pid, 1: survivor.pid, 2: survivor.pid}
    assert not list((out / "workers").iterdir())           # the dead worker's directory too
    # the killed trial's run goes on, as any run killed with kill -9
    resumed = charrnn.fit(resume=out / "trial-0000")
    assert resumed["iterations"] == 400 and resumed["resumed_from"] >= 20


def test_ctrl_c_fails_the_trial_keeps_its_run_and_exits_130(tmp_path, text, space):
    out = tmp_path / "t"
    worker = start_worker(tune_args(text, space, out, 3, fixed=SLOW_TRIALS))
    _wait_for(lambda: _evaluated(out / "trial-0000"))
    worker.send_signal(signal.SIGINT)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 130
    last = stderr.splitlines()[-1]
    assert last.startswith("Interrupted at iteration ") and last.endswith(
        "; the trial is marked failed; run the same command to go on with the study")
    trial = charrnn.tune_results(out).trials[0]
    assert trial["state"] == "FAIL" and trial["reason"].startswith("interrupted by signal 2 at "
                                                                   "iteration ")
    assert trial["reason"].endswith(f"; its run can go on: charrnn train --resume "
                                    f"{out / 'trial-0000'}")
    assert (out / "trial-0000" / "last.npz").is_file()
