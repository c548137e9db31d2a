"""Time budgets (train --time) and learning-rate schedules. Every timing here is made on purpose:
the measured speeds are set and the clock is a fake one, whatever this machine does."""

import math
import os
import signal
import time

import numpy as np
import pytest

import charrnn
import charrnn.train as train_module
from charrnn.checkpoint import load_checkpoint
from charrnn.config import ConfigError, TrainConfig, parse_duration
from charrnn.optim import learning_rate_at

from cli_helpers import invoke, usage_error

TEXT = "".join(f"line {i}: the cat sat on the mat, {i * 7 % 13} times.\n" for i in range(120))
KEYS = {"hidden_size": 12, "num_layers": 2, "batch_size": 3, "seq_length": 10,
        "eval_every": 10, "dropout": 0.2, "lr_schedule": "cosine", "warmup_iters": 3}
MEASURED = (1.0, 0.5, 0.1)      # seconds per iteration, per validation pass, per checkpoint


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def clock(monkeypatch):
    """A clock that stands still unless a test moves it; the speeds are MEASURED."""
    now = {"t": 1000.0}
    monkeypatch.setattr(time, "monotonic", lambda: now["t"])
    monkeypatch.setattr(train_module._Training, "measure", lambda self, shards: MEASURED)
    return now


@pytest.mark.parametrize("text, seconds", [("30s", 30.0), ("10m", 600.0), ("1.5h", 5400.0),
                                           (" 2m ", 120.0), (".5s", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "10 minutes", "-5m", "0s", "m", "1.2.3h", ""])
def test_bad_durations(text):
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    assert str(info.value) == f"time must be a duration such as 30s, 10m or 1.5h, got {text!r}"


def test_bad_time_is_a_usage_error_and_a_config_error(text_file):
    result = invoke(["train", text_file, "--time", "ten minutes"])
    assert result.exit_code == 2 and result.stderr == usage_error(
        "train", "[OPTIONS] [FILE|DIR]...",
        "Invalid value for --time: must be a duration such as 30s, 10m or 1.5h, "
        "got 'ten minutes'")
    result = invoke(["train", text_file, "--set", "time=10"])
    assert result.exit_code == 2 and result.stderr == (
        "Error: --set: time must be a duration such as 30s, 10m or 1.5h, got '10'\n")


def test_schedules():
    lr = lambda i, **kw: learning_rate_at(1.0, 1.0, i, 1000, **kw)  # noqa: E731
    assert [lr(i, warmup_iters=4) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = dict(schedule="cosine", warmup_iters=10, max_iters=110, lr_floor=0.1)
    assert lr(9, **cosine) == 1.0 and lr(10, **cosine) == 1.0
    assert lr(60, **cosine) == pytest.approx(0.55)               # half way: (1 + 0.1) / 2
    assert lr(110, **cosine) == pytest.approx(0.1) == lr(500, **cosine)
    values = [lr(i, **cosine) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))       # never rises after warm-up
    # with the per-pass decay on top: the second pass is at half the rate
    assert learning_rate_at(1.0, 0.5, 60, 50, **cosine) == pytest.approx(0.5 * lr(60, **cosine))


def test_a_budget_plans_max_iters_from_the_measured_speeds(text_file, tmp_path, clock):
    lines = []
    summary = charrnn.fit(text_file, out=tmp_path / "run", rng_seed=0, time="100s",
                          log=lines.append, **KEYS)
    # 97 s (PLAN_MARGIN) less the final evaluation and two saves (0.7 s), at 1 s an iteration
    # plus an evaluation and 1.5 saves every 10: int(96.3 / 1.065) = 90 iterations
    assert "time 100s: 90 iterations planned, to iteration 90 (1000 ms each, validation 0.5 s " \
           "every 10)" in lines
    assert summary["iterations"] == 90 and summary["config"]["max_iters"] == 90
    assert summary["config"]["time"] == "100s"
    ckpt = load_checkpoint(tmp_path / "run" / "last.npz")
    assert ckpt.train_cfg.max_iters == 90 and ckpt.iteration == 90
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.npz", "data.npy", "last.npz", "metrics.jsonl"]        # the probe is gone


def test_a_slower_machine_than_planned_ends_the_run_in_time(text_file, tmp_path, clock,
                                                            monkeypatch):
    real = train_module.loss_and_grads

    def two_seconds_each(*args, **kwargs):      # twice as slow as measured
        clock["t"] += 2.0
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "loss_and_grads", two_seconds_each)
    lines = []
    summary = charrnn.fit(text_file, out=tmp_path / "run", rng_seed=0, time="100s",
                          log=lines.append, **KEYS)
    # after k iterations the clock says 1000 + 2k; an iteration is seen to take 2 s (on
    # average: 1, then 1.2, 1.36, ...), and the final evaluation and saves (0.7 s planned)
    # as much slower: the run ends once 1000 + 2k + (one more iteration) + that > 1099 (it
    # ends by DEADLINE, 99 %, of the budget)
    assert train_module.DEADLINE == 0.99
    up = next(k for k in range(1, 90) if 1000 + 2 * k + _seen(k) + _seen(k) * 0.7 > 1099)
    assert up == 48
    assert f"time 100s is up at iteration {up} of the 90 planned" in lines
    assert summary["iterations"] == up
    assert summary["notes"] == [f"time 100s was up at iteration {up} of the 90 planned"]
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert rows[-1].startswith(f'{{"iteration": {up},')
    assert load_checkpoint(tmp_path / "run" / "last.npz").iteration == up


def _seen(k):
    """The moving average of the seconds per iteration after k iterations of 2 s each, starting
    from the planned 1 s (the first iteration gives no interval yet)."""
    average = 1.0
    for _ in range(k - 1):
        average = 0.8 * average + 0.2 * 2.0
    return average


def test_a_budgeted_run_stopped_and_resumed_equals_the_uninterrupted_one(text_file, tmp_path,
                                                                         clock, monkeypatch):
    full = charrnn.fit(text_file, out=tmp_path / "full", rng_seed=3, time="25s", **KEYS)
    assert full["iterations"] == 22          # int((24.25 - 0.7) / 1.065)
    real = train_module.loss_and_grads
    calls = {"n": 0}

    def interrupted_after_9(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C: the loop stops after this one
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "loss_and_grads", interrupted_after_9)
    with pytest.raises(charrnn.Interrupted) as info:
        charrnn.fit(text_file, out=tmp_path / "half", rng_seed=3, time="25s", **KEYS)
    assert info.value.iteration == 9
    monkeypatch.setattr(train_module, "loss_and_grads", real)
    resumed = charrnn.fit(resume=tmp_path / "half")            # no --time: the plan goes on
    assert resumed["iterations"] == 22 and resumed["changed"] == []
    a = load_checkpoint(tmp_path / "full" / "last.npz")
    b = load_checkpoint(tmp_path / "half" / "last.npz")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    for name in a.optim_state:
        np.testing.assert_array_equal(a.optim_state[name], b.optim_state[name], err_msg=name)


def test_resume_with_a_time_adds_that_much(text_file, tmp_path, clock):
    run = tmp_path / "run"
    charrnn.fit(text_file, out=run, rng_seed=0, time="25s", **KEYS)
    with pytest.raises(ConfigError) as info:
        charrnn.fit(resume=run)
    assert str(info.value).startswith(f"{run} is at iteration 22 and max_iters is 22")
    lines = []
    more = charrnn.fit(resume=run, time="50s", log=lines.append)
    # int((48.5 - 0.7) / 1.065) = 44 more
    assert "time 50s: 44 iterations planned, to iteration 66 (1000 ms each, validation 0.5 s " \
           "every 10)" in lines
    assert more["resumed_from"] == 22 and more["iterations"] == 66
    assert more["changed"] == ["time"]


def test_a_dry_run_ignores_the_budget_but_checks_it(text_file):
    report = charrnn.dry_run(text_file, time="10m", **KEYS)
    assert report["config"]["time"] == "10m"
    assert TrainConfig(time="1.5h").time == "1.5h"
    with pytest.raises(ConfigError):
        TrainConfig(time="soon")
    assert math.isfinite(report["seconds_per_iter"])
