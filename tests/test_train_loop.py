"""The training loop's parts on their own: the time budget's clock (with a fake clock: the plan's
arithmetic and when time is up) and the divergence policy (three rollbacks, then a
TrainingError), and the training losses between evaluations."""

import numpy as np
import pytest

from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.errors import TrainingError
from charrnn.model import init_params
from charrnn.train import (DEADLINE, MAX_ROLLBACKS, PLAN_MARGIN, BudgetClock, RollbackPolicy,
                           _Losses)

MEASURED = (1.0, 0.5, 0.1)      # seconds per iteration, per validation pass, per checkpoint


class FakeClock:
    """Stands still unless a test moves it."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


# --- the budget clock ---------------------------------------------------------------------------

def test_the_plan_fits_the_iterations_and_their_evaluations_in_the_margin():
    assert (PLAN_MARGIN, DEADLINE) == (0.97, 0.99)
    clock = BudgetClock(100.0, started=1000.0, now=FakeClock(1000.0))
    # 97 s less the final evaluation and two saves (0.7 s), at 1 s an iteration plus an
    # evaluation and 1.5 saves every 10: int(96.3 / 1.065) = 90
    assert clock.plan(*MEASURED, eval_every=10) == 90
    assert clock.deadline == 1099.0 and clock.reserve == pytest.approx(0.7)
    assert not clock.out_of_time


def test_the_time_gone_before_the_plan_is_not_planned_again():
    clock = BudgetClock(100.0, started=990.0, now=FakeClock(1000.0))
    assert clock.plan(*MEASURED, eval_every=10) == 81          # int((97 - 10 - 0.7) / 1.065)
    assert clock.deadline == 990.0 + 99.0
    # a budget too short for one iteration still plans one
    assert BudgetClock(1.0, 1000.0, FakeClock(1000.0)).plan(*MEASURED, eval_every=10) == 1


def test_without_a_budget_or_a_plan_time_is_never_up():
    fake = FakeClock(1000.0)
    clock = BudgetClock(None, started=1000.0, now=fake)
    for _ in range(5):
        fake.t += 1e6
        assert not clock.time_is_up()
    assert not clock.out_of_time


def test_at_the_planned_speed_the_plan_ends_in_time():
    fake = FakeClock(1000.0)
    clock = BudgetClock(100.0, started=1000.0, now=fake)
    planned = clock.plan(*MEASURED, eval_every=10)
    for _ in range(planned):
        fake.t += 1.0                  # evaluations are not seen as iterations' time here
        assert not clock.time_is_up()
    assert clock.per_iter == 1.0


def test_twice_as_slow_as_planned_time_is_up_early_and_stays_up():
    fake = FakeClock(1000.0)
    clock = BudgetClock(100.0, started=1000.0, now=fake)
    clock.plan(*MEASURED, eval_every=10)
    up = None
    for k in range(1, 90):
        fake.t = 1000.0 + 2.0 * k      # after k iterations of 2 s
        if clock.time_is_up():
            up = k
            break
    # the moving average after k ticks of 2 s from the planned 1 s (the first tick gives no
    # interval), and the final evaluation and saves (0.7 s) as much slower: up once
    # 1000 + 2k + average + 0.7 average > 1099
    average = 1.0
    for _ in range(up - 1):
        average = 0.8 * average + 0.2 * 2.0
    assert up == 48 and clock.per_iter == average
    assert 1000 + 2 * up + 1.7 * average > 1099
    fake.t += 1000.0                   # up for good: the average is no longer followed
    assert clock.time_is_up() and clock.out_of_time and clock.per_iter == average


# --- the rollback policy ------------------------------------------------------------------------

class FakeRun:
    """What RollbackPolicy uses of a _Run: info's lr_scale, restore, iteration."""

    def __init__(self, iteration):
        self.iteration, self.info, self.restored = iteration, {"lr_scale": 1.0}, []

    def restore(self, ckpt):
        self.restored.append(ckpt.path.name)
        self.iteration = ckpt.iteration


def _checkpoint(path, iteration):
    model_cfg, train_cfg = ModelConfig(hidden_size=4, num_layers=1), TrainConfig()
    params = init_params(model_cfg.model, 3, 4, 1, np.random.default_rng(0))
    save_checkpoint(path, Checkpoint(params=params, vocab=Vocab.from_text("abc"),
                                     model_cfg=model_cfg, train_cfg=train_cfg,
                                     iteration=iteration))
    return path


def test_three_rollbacks_in_a_row_then_a_training_error(tmp_path):
    assert MAX_ROLLBACKS == 3
    policy = RollbackPolicy(_checkpoint(tmp_path / "last.npz", 4))
    run = FakeRun(6)
    warnings = [policy.roll_back(run, f"loss nan at iteration {i}") for i in (6, 5, 5)]
    assert warnings == [f"warning: loss nan at iteration {i}: rolled back to iteration 4 and "
                        f"halved the learning rate (now x{scale})"
                        for i, scale in ((6, "0.5"), (5, "0.25"), (5, "0.125"))]
    assert run.restored == ["last.npz"] * 3 and run.info["lr_scale"] == 0.125
    run.iteration = 5
    with pytest.raises(TrainingError) as info:
        policy.roll_back(run, "loss nan at iteration 5")
    assert str(info.value) == (
        "training diverged (loss nan at iteration 5) 3 times in a row after rolling back and "
        "halving the learning rate (now x0.125); lower learning_rate or grad_clip. The run "
        "directory keeps its last good checkpoint, if any")
    assert run.restored == ["last.npz"] * 3 and run.info["lr_scale"] == 0.125   # left as it was
    assert run.iteration == 5


def test_a_checkpoint_becomes_the_one_to_go_back_to_and_counts_again(tmp_path):
    start = _checkpoint(tmp_path / ".start.npz", 0)
    policy = RollbackPolicy(start)
    run = FakeRun(2)
    assert policy.roll_back(run, "loss nan at iteration 2").endswith(
        "rolled back to iteration 0 and halved the learning rate (now x0.5)")
    assert policy.roll_back(run, "loss nan at iteration 1").endswith("(now x0.25)")
    last = _checkpoint(tmp_path / "last.npz", 8)
    policy.checkpointed(last)
    assert policy.good == last and not start.exists()   # the starting state is gone
    policy.checkpointed(last)                           # the same file again: kept
    assert last.exists()
    for i in range(MAX_ROLLBACKS):                      # three more before giving up
        policy.roll_back(run, "loss nan at iteration 9")
    assert run.restored == [".start.npz"] * 2 + ["last.npz"] * 3 and run.iteration == 8
    assert run.info["lr_scale"] == 2.0 ** -5
    with pytest.raises(TrainingError):
        policy.roll_back(run, "loss nan at iteration 9")


# --- the training losses ------------------------------------------------------------------------

@pytest.mark.parametrize("weighted, mean", [(False, 2.5), (True, (1.0 * 2 + 4.0 * 6) / 8)])
def test_the_training_loss_is_the_mean_since_the_last_evaluation(weighted, mean):
    losses = _Losses(weighted)
    assert losses.mean() is None and losses.smooth is None
    losses.add(1.0, 2)
    losses.add(4.0, 6)
    assert losses.mean() == mean
    assert (losses.first, losses.last, losses.smooth) == (1.0, 4.0, 0.98 * 1.0 + 0.02 * 4.0)
    losses.clear()
    assert losses.mean() is None and (losses.first, losses.last) == (1.0, 4.0)
