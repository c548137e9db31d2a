"""Training: an encoded text and a configuration in, a run directory out.

A run directory (runs.py makes and owns it, and names its files) holds LAST (the latest state,
for resuming), BEST (the lowest validation loss so far), METRICS (one JSON object per
evaluation) and the text's ids, cached for resuming. Checkpoints are written at each evaluation,
every eval_every iterations and at the end, and when SIGINT or SIGTERM arrives.

The training loop, _loop(), reads top to bottom: one iteration in blocks, each opened by a
comment (stop between iterations on a signal, one iteration on the next chunk, roll back on
divergence, the update, timing and logging, evaluate on the validation text and write the
checkpoints). train() sets it up from small objects, each owning one thing:

    _Training       the run set up: its data, its state (a _Run: what a checkpoint holds), the
                    optimizer and the divergence bound; validation, checkpoints, metrics rows
    BudgetClock     a time budget: plans the iterations from measured timings, follows the
                    observed time of an iteration, says when time is up
    RollbackPolicy  the divergence policy: the last good checkpoint on disk and the rollbacks
                    in a row; restores it and halves the learning rate, or raises TrainingError
    _Progress       what the session shows: lines on the log, the progress bar, its seconds
    _Losses         the training losses: since the last evaluation, first, last, smoothed

Everything that decides what iteration k does (the chunk of data, the learning rate, whether the
hidden state is reset) is derived from k, and the RNG state and carried hidden state are saved, so
a run continued from last.npz ends with the same parameters, bit for bit, as one never stopped.

With a completion setting (the completion key, e.g. "@."), only the characters after a
separator up to and including the end mark count, in training (the other targets are -1: see
data.completion_mask) and in validation, which then also measures the teacher-forced accuracy
on them (val_accuracy in metrics.jsonl). A chunk without any such character has loss 0 and a
zero gradient; the update is still made (adam's moments decay, the iteration counts) and is no
divergence, and the training loss reported is the mean per scored character over the chunks.

A resumed run may switch to a new text (plan.plan_resume with new_text): the checkpoint's info
then says where it started (text_start, the iteration of the switch) and how many passes over
earlier texts came before it (passes_before, for lr_decay); the new text is read from its
beginning, iteration k reading its chunk k - text_start.

Divergence: a training or validation loss that is not finite or is above
DIVERGENCE_FACTOR * ln V nats per character (twice what a uniform guess over the V characters
scores; a model that bad has blown up, and no training step gets there honestly), or a gradient
that is not finite, is never applied and never saved. Training rolls back to the state of the
last checkpoint, halves the learning rate and goes on; the fourth divergence without a checkpoint
in between stops it with a TrainingError.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import Interrupted, TrainingError
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import as_dict
from .data import Batches, DataError, split_train_val
from . import evaluate
from .model import (REGULARISERS, clip_grads, direct_width, grow_vocab, init_params, num_params,
                    relabel, zero_state)
from .optim import FlatOptimizer, init_state, learning_rate_at
from .parallel import Shards, loss_and_grads, shard_bounds
from .runs import BEST, LAST, METRICS, PROBE, START
from .timing import seconds_per_iteration

MAX_ROLLBACKS = 3             # rollbacks in a row (without a checkpoint between) before giving up
DIVERGENCE_FACTOR = 2.0       # a loss above this many times ln V nats/char is a divergence
PLAN_MARGIN = 0.97            # a time budget plans iterations for this fraction of it (noise)
DEADLINE = 0.99               # ... and ends, whatever the plan, by this fraction of it (what the
                              # process does before and after the run: start-up, exit)


class _SignalFlag:
    """Records SIGINT/SIGTERM instead of raising mid-update, so the loop can stop between
    iterations with consistent parameters and optimizer state, and save them."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def prepare_data(corpus, val_frac, batch_size, seq_length, completion=""):
    """Training batches, validation ids, with a completion setting the validation ids' mask
    (else None), and with labels the validation ids' labels (else None), for a Corpus;
    DataError if unusable."""
    if len(corpus.vocab) < 2:
        raise DataError(f"{corpus.source}: the text has only one distinct character "
                        f"({corpus.vocab.chars!r}); there is nothing to learn")
    if corpus.documents != "stream":
        return _prepare_documents(corpus, batch_size, seq_length)
    train_ids, val_ids = split_train_val(corpus.ids, val_frac)
    if val_frac == 0:
        val_ids = train_ids  # no held-out text: evaluations score the training text
    if len(val_ids) < 2:
        raise DataError(f"{corpus.source}: the validation part (val_frac {val_frac}) has "
                        f"{len(val_ids)} characters; it needs at least 2 (raise val_frac or "
                        "use a longer text)")
    train_mask = val_mask = None
    if completion:
        # over the whole text, so that a completion cut by the split is scored on both sides
        mask = evaluate.completion_ids_mask(corpus.vocab, corpus.ids, completion)
        train_mask, val_mask = split_train_val(mask, val_frac)
        if val_frac == 0:
            val_mask = train_mask
        for part, m in (("training", train_mask), ("validation", val_mask)):
            if not m[1:].any():
                raise DataError(f"{corpus.source}: the {part} part has no completion to score: "
                                f"completion {completion!r} scores the characters after "
                                f"{completion[0]!r} up to and including {completion[1]!r}")
    return _batches(corpus, train_ids, batch_size, seq_length, train_mask), val_ids, val_mask, None


def _batches(corpus, ids, batch_size, seq_length, mask=None, end=None, labels=None):
    try:
        return Batches(ids, batch_size, seq_length, mask, end, labels)
    except DataError as e:
        raise DataError(f"{corpus.source}: {e}") from None


def _prepare_documents(corpus, batch_size, seq_length):
    """prepare_data for documents: the training documents are ids[:val_start + 1] (ending with
    the end mark of the last), the held-out ones ids[val_start:] (documents.hold_out put them
    last); without a held-out part (val_frac 0) validation scores the training documents."""
    split = len(corpus.ids) - 1 if corpus.val_start is None else corpus.val_start
    labels = corpus.label_ids
    batches = _batches(corpus, corpus.ids[:split + 1], batch_size, seq_length, end=corpus.end,
                       labels=None if labels is None else labels[:split + 1])
    if corpus.val_start is None:
        return batches, corpus.ids, None, labels
    return batches, corpus.ids[split:], None, None if labels is None else labels[split:]


def divergence_bound(vocab_size):
    """The loss in nats per character above which training has diverged: DIVERGENCE_FACTOR times
    that of a uniform guess, ln V."""
    return DIVERGENCE_FACTOR * math.log(vocab_size)


def _append_line(path, line):
    """Append one whole line with a single write, so that readers never see half of it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the loop's parts

class _Run:
    """The mutable state of a training run: what a checkpoint holds."""

    def __init__(self, params, optim_state, rng, hidden, iteration, info):
        self.params, self.optim_state, self.rng = params, optim_state, rng
        self.hidden, self.iteration, self.info = hidden, iteration, info

    def restore(self, ckpt):
        """Go back to the state a checkpoint holds (the learning rate's scale excepted)."""
        for name in self.params:           # in place: the optimizer holds views of these
            self.params[name][...] = ckpt.params[name]
        for name in self.optim_state:
            self.optim_state[name][...] = ckpt.optim_state[name]
        self.rng.bit_generator.state = ckpt.rng_state
        self.hidden, self.iteration = ckpt.hidden_state, ckpt.iteration


class BudgetClock:
    """A time budget (train_cfg.time) turned into a number of iterations, then followed.

    budget: its seconds, or None for a run without one (never out of time); started: when it
    began, on now's clock; now: the clock (default time.monotonic, looked up when the object is
    made, so that a test's fake clock is the one read)."""

    def __init__(self, budget, started, now=None):
        self.budget, self.started = budget, started
        self.now = time.monotonic if now is None else now
        self.deadline = None               # when the run ends, whatever the plan: once planned
        self.reserve = 0.0                 # seconds that the final evaluation and save take
        self.per_iter = None               # seconds per iteration: planned, then as observed
        self.planned_per_iter = None
        self.last_tick = None              # when the latest iteration ended
        self.out_of_time = False

    def plan(self, per_iter, per_eval, per_save, eval_every):
        """How many iterations fit: as many as PLAN_MARGIN of what is left of the budget holds
        with their evaluations and checkpoints (one every eval_every) and the final ones, at
        the measured seconds per iteration, validation pass and checkpoint write; at least 1.
        From now on the run ends by DEADLINE of the budget."""
        self.reserve = per_eval + 2 * per_save       # the final evaluation and checkpoints
        self.per_iter = self.planned_per_iter = per_iter
        left = self.budget * PLAN_MARGIN - (self.now() - self.started) - self.reserve
        per_planned = per_iter + (per_eval + 1.5 * per_save) / eval_every
        self.deadline = self.started + DEADLINE * self.budget
        return max(1, int(left / per_planned))

    def time_is_up(self):
        """Called after each iteration: whether one more would leave no time for the final
        evaluation and save (a slower machine than planned for); then the run ends now, and it
        stays up. The time of an iteration is followed as it is observed (a moving average),
        and the final evaluation and save are expected to be slower in the same proportion.
        Never up before a plan."""
        if self.deadline is not None and not self.out_of_time:
            now = self.now()
            if self.last_tick is not None:
                self.per_iter = 0.8 * self.per_iter + 0.2 * (now - self.last_tick)
            self.last_tick = now
            slower = max(1.0, self.per_iter / self.planned_per_iter)
            self.out_of_time = now + self.per_iter + slower * self.reserve > self.deadline
        return self.out_of_time


class RollbackPolicy:
    """The divergence policy: go back to the last good checkpoint, on disk (not a copy in
    memory), and halve the learning rate; after MAX_ROLLBACKS rollbacks in a row, without a
    checkpoint between, give up. good: the checkpoint to go back to until the next is written
    (a new run's starting state, runs.START; a resumed run's last.npz)."""

    def __init__(self, good):
        self.good = Path(good)
        self.rollbacks = 0                 # in a row, since the last checkpoint

    def roll_back(self, run, what):
        """Restore run (a _Run) to the good checkpoint and halve its learning rate's scale
        (run.info["lr_scale"]); what: the divergence, for the messages. Returns the warning to
        log. TrainingError instead after MAX_ROLLBACKS in a row."""
        info = run.info
        if self.rollbacks >= MAX_ROLLBACKS:
            raise TrainingError(
                f"training diverged ({what}) {MAX_ROLLBACKS} times in a row after rolling back "
                f"and halving the learning rate (now x{info['lr_scale']:g}); lower "
                "learning_rate or grad_clip. The run directory keeps its last good checkpoint, "
                "if any")
        run.restore(load_checkpoint(self.good))
        info["lr_scale"] *= 0.5
        self.rollbacks += 1
        return (f"warning: {what}: rolled back to iteration {run.iteration} and halved the "
                f"learning rate (now x{info['lr_scale']:g})")

    def checkpointed(self, path):
        """A checkpoint was written at path: it is the one to go back to from now on (the
        starting state it replaces is deleted), and the count of rollbacks starts again."""
        path = Path(path)
        if self.good != path:
            self.good.unlink(missing_ok=True)
            self.good = path
        self.rollbacks = 0


class _Progress:
    """What a session shows while it trains, and how long it has trained: lines on the log
    (written around the progress bar, which they would otherwise break), the bar on stderr with
    the smoothed loss and the speed, and the seconds since it started."""

    def __init__(self, log, progress, iteration, seconds_before, chars_per_iter):
        self.log, self.progress, self.bar = log, progress, None
        self.started = time.perf_counter()
        self.start_iteration = iteration   # this session's first
        self.seconds_before = seconds_before     # the run's training seconds before it
        self.chars_per_iter = chars_per_iter

    def say(self, line):
        """Log one line (around the bar once it is open)."""
        if self.bar is not None:
            with tqdm.external_write_mode(file=sys.stderr):
                self.log(line)
        else:
            self.log(line)

    def open_bar(self, total, iteration):
        """The progress bar (off without progress, or when stderr is no terminal), to use as a
        context manager."""
        self.bar = tqdm(total=total, initial=iteration, desc="train", unit="it",
                        file=sys.stderr, dynamic_ncols=True,
                        disable=None if self.progress else True)
        return self.bar

    def advance(self, iteration, smooth):
        """One more iteration done; smooth: the smoothed training loss (None: none scored)."""
        speed = ((iteration - self.start_iteration) * self.chars_per_iter
                 / (time.perf_counter() - self.started))
        smooth = "-" if smooth is None else f"{smooth:.3f}"
        self.bar.set_postfix_str(f"loss {smooth}, {speed:,.0f} chars/s", refresh=False)
        self.bar.update(1)

    def rewind(self, iteration):
        """The bar shows iteration (after a rollback, it goes back too)."""
        self.bar.n = iteration

    def elapsed(self):
        """Seconds since this session started."""
        return time.perf_counter() - self.started

    def seconds(self):
        """Training seconds of the whole run, earlier sessions included."""
        return self.seconds_before + time.perf_counter() - self.started


class _Losses:
    """The training losses per character: those since the last evaluation (its train_loss),
    this session's first and latest, and a smoothed one for the progress bar. Only chunks that
    scored characters count. weighted: with a completion setting, chunks score different
    numbers of characters, and the mean weighs each by its count."""

    def __init__(self, weighted):
        self.weighted = weighted
        self.losses, self.chars = [], []   # since the last evaluation
        self.first = self.last = self.smooth = None

    def add(self, loss, chars):
        """One more chunk's loss per character, over chars scored characters (at least 1)."""
        self.losses.append(loss)
        self.chars.append(chars)
        self.last = loss
        self.first = loss if self.first is None else self.first
        self.smooth = loss if self.smooth is None else 0.98 * self.smooth + 0.02 * loss

    def mean(self):
        """The mean training loss per character since the last evaluation (None if no chunk
        scored any): a plain mean of the chunks', or weighted by the characters each scored."""
        if not self.losses:
            return None
        if not self.weighted:
            return float(np.mean(self.losses))
        return float(np.dot(self.losses, self.chars) / np.sum(self.chars))

    def clear(self):
        self.losses, self.chars = [], []


class _Training:
    """A run set up to train, new or resumed: its data, its state (a _Run), the optimizer over
    it, and what the loop asks of them (the learning rate, a validation, the checkpoints and
    metrics row of an evaluation)."""

    def __init__(self, corpus, model_cfg, train_cfg, out_dir, rng_seed, resume, init_from):
        self.corpus, self.model_cfg, self.cfg = corpus, model_cfg, train_cfg
        self.batches, self.val_ids, self.val_mask, self.val_labels = prepare_data(
            corpus, train_cfg.val_frac, train_cfg.batch_size, train_cfg.seq_length,
            train_cfg.completion)
        self.out_dir = Path(out_dir)
        self.bound = divergence_bound(len(corpus.vocab))
        rng = np.random.default_rng(rng_seed)
        if resume is not None:
            self.run = _Run(resume.params, resume.optim_state, rng, resume.hidden_state,
                            resume.iteration, dict(resume.info))
            rng.bit_generator.state = resume.rng_state
        else:
            # from a checkpoint's weights: its vocabulary grown by the text's new characters,
            # if any (plan.py), with fresh rows for them
            params = (relabel(grow_vocab(init_from.params, init_from.vocab, corpus.vocab, rng),
                              init_from.labels, corpus.label_names)
                      if init_from is not None
                      else init_params(model_cfg.model, len(corpus.vocab),
                                       model_cfg.hidden_size, model_cfg.num_layers, rng,
                                       num_labels=len(corpus.label_names),
                                       direct_order=model_cfg.direct_order,
                                       direct_size=model_cfg.direct_size))
            self.run = _Run(params, init_state(train_cfg.optimizer, params, train_cfg.momentum),
                            rng, self.zero_state(), 0,
                            {"data_sha256": corpus.sha256, "data_source": corpus.source,
                             "best_val_loss": None, "best_iteration": None, "seconds": 0.0,
                             "rng_seed": rng_seed, "lr_scale": 1.0})
            if corpus.documents != "stream":   # where the held-out documents start (resume)
                self.run.info["val_start"] = corpus.val_start
        if train_cfg.ema and not any(k.startswith("ema/") for k in self.run.optim_state):
            # the moving average of the weights starts at the weights (kept with the optimizer's
            # state, so checkpoints carry it and a resumed run goes on exactly)
            self.run.optim_state.update({f"ema/{n}": p.copy() for n, p in self.run.params.items()})
        # params and optimizer state become views of flat buffers (restores stay in place)
        self.optimizer = FlatOptimizer(train_cfg.optimizer, self.run.params,
                                       self.run.optim_state, train_cfg.momentum, train_cfg.ema,
                                       train_cfg.weight_decay)
        # where the current text started (a run that switched texts) and the passes before it
        self.text_start = self.run.info.get("text_start", 0)
        self.passes_before = self.run.info.get("passes_before", 0)
        self.losses = _Losses(weighted=self.batches.scored is not None)
        self.stopped = None                # why the caller stopped the run (on_evaluation)

    def zero_state(self):
        """The carried state at the start of a pass: zeros."""
        m = self.model_cfg
        return zero_state(m.model, m.num_layers, self.cfg.batch_size, m.hidden_size)

    def checkpoint(self):
        run = self.run
        return Checkpoint(params=run.params, vocab=self.corpus.vocab, model_cfg=self.model_cfg,
                          train_cfg=self.cfg, iteration=run.iteration,
                          optim_state=run.optim_state, rng_state=run.rng.bit_generator.state,
                          hidden_state=run.hidden, info=dict(run.info),
                          labels=self.corpus.label_names)

    def learning_rate(self):
        """The rate of the update that the next iteration makes: the schedule's, times the
        run's scale (halved by each rollback)."""
        run, cfg = self.run, self.cfg
        passes = self.passes_before + (run.iteration - self.text_start) // self.batches.per_pass
        return run.info["lr_scale"] * learning_rate_at(
            cfg.learning_rate, cfg.lr_decay, run.iteration, self.batches.per_pass,
            cfg.lr_schedule, cfg.warmup_iters, cfg.max_iters, cfg.lr_floor, passes)

    def beyond(self, loss):
        """How a finite loss above the bound is described in a divergence warning."""
        if not math.isfinite(loss) or loss <= self.bound:
            return ""
        return f", above {DIVERGENCE_FACTOR:g} ln V = {self.bound:.3g} nats/char"

    def eval_params(self):
        """The weights that validation scores and best.npz keeps: the moving average with ema,
        else the weights themselves."""
        if not self.cfg.ema:
            return self.run.params
        return {name: self.run.optim_state[f"ema/{name}"] for name in self.run.params}

    def validate(self, shards):
        """(validation loss per character, teacher-forced accuracy or None): over every
        character, or with a completion setting over the completions' characters."""
        params, cell = self.eval_params(), self.model_cfg.model
        if self.val_mask is None:
            total, n = evaluate.score_ids(params, cell, self.val_ids, shards=shards,
                                          end=self.batches.end, labels=self.val_labels)
            return total / n, None
        total, n, right = evaluate.score_completions(params, cell, self.val_ids,
                                                     self.val_mask, shards)
        return total / n, right / n

    def diverged(self, val_loss):
        """Whether the model just validated has diverged: a validation loss not finite or
        above the bound, or a weight (or moving average) that is not finite."""
        # every weight (and moving average) lies in the optimizer's flat buffers
        weights = [self.optimizer.p] + ([self.optimizer.slots["ema"]] if self.cfg.ema else [])
        return not (math.isfinite(val_loss) and val_loss <= self.bound
                    and all(np.isfinite(w).all() for w in weights))

    def save(self, val_loss, val_accuracy, lr, seconds):
        """Write an evaluation: its row to metrics.jsonl (with the training loss since the last
        one, and lr, the latest update's learning rate), last.npz, and best.npz if val_loss is
        the lowest yet. seconds: the run's training seconds. Returns the record and the line to
        log."""
        run, info = self.run, self.run.info
        record = {"iteration": run.iteration, "train_loss": self.losses.mean(),
                  "val_loss": val_loss, "learning_rate": lr, "seconds": round(seconds, 3)}
        if val_accuracy is not None:
            record["val_accuracy"] = val_accuracy
        self.losses.clear()
        _append_line(self.out_dir / METRICS, json.dumps(record))
        info["seconds"] = record["seconds"]
        improved = info["best_val_loss"] is None or val_loss < info["best_val_loss"]
        if improved:
            info["best_val_loss"], info["best_iteration"] = val_loss, run.iteration
        ckpt = self.checkpoint()
        save_checkpoint(self.out_dir / LAST, ckpt)
        if improved:   # the weights it scored: with ema, the moving average
            save_checkpoint(self.out_dir / BEST,
                            dataclasses.replace(ckpt, params=self.eval_params()))
        train_loss = "-" if record["train_loss"] is None else f"{record['train_loss']:.4f}"
        accuracy = "" if val_accuracy is None else f"  accuracy {100 * val_accuracy:.2f} %"
        return record, (f"iter {run.iteration}/{self.cfg.max_iters}  train {train_loss}  "
                        f"val {val_loss:.4f}{accuracy}{'  (best)' if improved else ''}  "
                        f"{record['seconds']:.0f}s")

    def measure(self, shards):
        """Seconds that an iteration, a validation pass and a checkpoint write take here."""
        per_iter = seconds_per_iteration(self.run.params, self.model_cfg, self.cfg, self.batches,
                                         shards)
        t0 = time.perf_counter()
        self.validate(shards)
        per_eval = time.perf_counter() - t0
        probe = self.out_dir / PROBE
        t0 = time.perf_counter()
        save_checkpoint(probe, self.checkpoint())
        per_save = time.perf_counter() - t0
        probe.unlink()
        return per_iter, per_eval, per_save

    def interrupt(self, signum, seconds):
        """Write last.npz as it is now (seconds: the run's training seconds) and raise
        Interrupted."""
        self.run.info["seconds"] = seconds
        path = self.out_dir / LAST
        save_checkpoint(path, self.checkpoint())
        raise Interrupted(signum, path, self.run.iteration)


# ----------------------------------------------------------------------------- the loop

def _loop(t, clock, rollback, out, shards, stop, on_evaluation=None):
    """Iterate t (a _Training) to max_iters, or until clock says time is up, evaluating and
    writing the checkpoints every eval_every and at the end; stop (a _SignalFlag) ends it
    between two iterations with Interrupted, rollback gives up with TrainingError, and
    on_evaluation (called with each evaluation's metrics record) ends it when it returns a
    reason."""
    run, cfg, batches, losses = t.run, t.cfg, t.batches, t.losses
    cell, dropout = t.model_cfg.model, t.model_cfg.dropout
    levers = {k: getattr(t.model_cfg, k) for k in REGULARISERS}   # their masks from run.rng too
    lr = None                          # the latest update's learning rate
    with out.open_bar(cfg.max_iters, run.iteration):
        while run.iteration < cfg.max_iters and not clock.out_of_time:
            # stop between iterations on a signal (SIGINT, SIGTERM), with last.npz written
            if stop.signum is not None:
                t.interrupt(stop.signum, out.seconds())
            # one iteration on the next chunk, on the cores this process may use now
            shards.update()
            inputs, targets, new_pass = batches.chunk(run.iteration - t.text_start)
            if new_pass:
                run.hidden = t.zero_state()
            loss, grads, hidden = loss_and_grads(
                run.params, cell, inputs, targets, run.hidden, dropout, run.rng, shards, **levers,
                **batches.extras(run.iteration - t.text_start, direct_width(run.params)))
            norm = clip_grads(grads, cfg.grad_clip, cfg.clip_mode)
            # roll back on divergence: such a loss or gradient is never applied
            if not (math.isfinite(loss) and math.isfinite(norm)) or loss > t.bound:
                del grads                  # freed before the checkpoint is read back
                what = (f"gradient norm {norm}" if math.isfinite(loss) and not math.isfinite(norm)
                        else f"loss {loss:.6g}")
                out.say(rollback.roll_back(
                    run, f"{what} at iteration {run.iteration + 1}{t.beyond(loss)}"))
                out.rewind(run.iteration)
                continue
            # the update (and the ema's average), at the scheduled learning rate
            run.hidden = hidden
            lr = t.learning_rate()
            t.optimizer.step(grads, lr, run.iteration + 1)
            del grads                      # freed before a validation and the checkpoints: the
            run.iteration += 1             # run's peak of memory would hold a copy of them
            # timing and logging; the characters scored are all, or a completion setting's
            # (maybe none: loss 0, no divergence, nothing to average)
            scored = targets.size if batches.scored is None else int((targets >= 0).sum())
            if scored:
                losses.add(loss, scored)
            out.advance(run.iteration, losses.smooth)
            # end now if one more iteration would not leave time for the final evaluation
            if clock.time_is_up():
                out.say(f"time {cfg.time} is up at iteration {run.iteration:,} of the "
                        f"{cfg.max_iters:,} planned")
            elif run.iteration % cfg.eval_every and run.iteration != cfg.max_iters:
                continue
            # evaluate on the validation text and write the checkpoints (every eval_every, at
            # the end, and when time is up); the caller may stop the run there
            record = _evaluate(t, rollback, out, shards, lr)
            out.rewind(run.iteration)
            if record is not None and on_evaluation is not None:
                t.stopped = on_evaluation(record)
                if t.stopped:
                    out.say(f"stopped at iteration {run.iteration:,}: {t.stopped}")
                    break


def _evaluate(t, rollback, out, shards, lr):
    """Score the validation text; a finite model within the bound is written (metrics row,
    last.npz, best.npz) and becomes the state to roll back to, else roll back. Returns the
    metrics record, or None after a rollback."""
    val_loss, val_accuracy = t.validate(shards)
    if t.diverged(val_loss):
        # the update itself overflowed or blew the model up: the same policy as for a loss
        t.losses.clear()
        out.say(rollback.roll_back(t.run, f"validation loss {val_loss:.6g} at iteration "
                                          f"{t.run.iteration}{t.beyond(val_loss)}"))
        return None
    record, line = t.save(val_loss, val_accuracy, lr, out.seconds())
    rollback.checkpointed(t.out_dir / LAST)
    out.say(line)
    return record


def _plan(t, clock, shards, say):
    """Turn the time budget into max_iters, fixed from now on (so the run resumes exactly):
    time a few throwaway iterations, a validation pass and a checkpoint write, and plan with
    clock (a BudgetClock)."""
    cfg = t.cfg
    per_iter, per_eval, per_save = t.measure(shards)
    planned = clock.plan(per_iter, per_eval, per_save, cfg.eval_every)
    t.cfg = dataclasses.replace(cfg, max_iters=t.run.iteration + planned)
    say(f"time {cfg.time}: {planned:,} iterations planned, to iteration {t.cfg.max_iters:,} "
        f"({per_iter * 1000:.0f} ms each, validation {per_eval:.1f} s every {cfg.eval_every})")


def _announce(t, say, notes, resumed, changed, init_from):
    """Say what the run is: notes (the text's, then the caller's), where it starts from, its
    completion setting, its model, data and run directory."""
    for note in t.corpus.notes:
        say(f"note: {t.corpus.source}: {note}")
    for note in notes:
        say(f"note: {note}")
    if resumed:
        say(f"resuming {t.out_dir} at iteration {t.run.iteration}"
            + (f"; changed: {', '.join(changed)}" if changed else ""))
    if init_from:
        say("starting from the weights of the --init-from checkpoint")
    if t.cfg.completion:
        sep, end = t.cfg.completion
        say(f"completion {t.cfg.completion!r}: the losses count only the characters "
            f"after {sep!r} up to and including {end!r}")
    m, b = t.model_cfg, t.batches
    say(f"{m.model} {m.num_layers}x{m.hidden_size}, {num_params(t.run.params):,} parameters, "
        f"vocabulary {len(t.corpus.vocab)}; {b.inputs.size:,} training and "
        f"{len(t.val_ids):,} validation characters, {b.per_pass:,} iterations per "
        f"pass; run directory {t.out_dir}")


def _computing(shards, train_cfg, model_cfg):
    """Where the run computes: its cores now (threads, the CPUs, its peers: cores.py) and its
    shards (shards, batch_size and hidden_size: parallel.py), which alone decide the numbers."""
    k = len(shard_bounds(train_cfg.batch_size, model_cfg.hidden_size, shards.count))
    cores = f"{shards.cores} core{'s' if shards.cores > 1 else ''}"
    cap = f"threads {train_cfg.threads}" if train_cfg.threads else "threads 0: every core"
    if k == 1:
        return f"computing on {cores} ({cap}); batch in 1 shard"
    if not shards.parallel:
        return f"computing on {cores} ({cap}); batch in {k} shards, one after another"
    per = shards.blas_per_shard(k)
    return (f"computing on {cores} ({cap}); batch in {k} shards, {min(k, shards.cores)} at "
            f"once, {per} OpenBLAS thread{'s' if per > 1 else ''} each")


def _summary(t, out, clock, notes, resumed, changed):
    """The summary dict that train() returns."""
    run, info, cfg = t.run, t.run.info, t.cfg
    seconds = out.elapsed()
    chars = (run.iteration - out.start_iteration) * cfg.batch_size * cfg.seq_length
    return {
        "run_dir": str(t.out_dir),
        "iterations": run.iteration,
        "resumed_from": out.start_iteration if resumed else None,
        "changed": list(changed),
        "best_val_loss": info["best_val_loss"],
        "best_iteration": info["best_iteration"],
        "initial_train_loss": t.losses.first,    # per character, this session's first chunk
        "final_train_loss": t.losses.last,       # per character, the last chunk
        "seconds": round(seconds, 3),
        "chars_per_second": round(chars / seconds, 1) if seconds > 0 else None,
        "num_params": num_params(run.params),
        "vocab_size": len(t.corpus.vocab),
        "lr_scale": info["lr_scale"],
        "config": as_dict(t.model_cfg, cfg),
        "stopped": t.stopped,
        "notes": list(t.corpus.notes) + list(notes) + (
            [f"time {cfg.time} was up at iteration {run.iteration:,} of the "
             f"{cfg.max_iters:,} planned"] if clock.out_of_time else []) + (
            [f"stopped at iteration {run.iteration:,}: {t.stopped}"] if t.stopped else []),
    }


def train(corpus, model_cfg, train_cfg, out_dir, rng_seed=None, progress=True, log=None,
          resume=None, init_from=None, changed=(), started=None, notes=(), on_evaluation=None):
    """Train on corpus (a data.Corpus) and write the run to out_dir (made and owned by the
    caller: runs.py).

    resume: a Checkpoint to continue (same corpus and compatible config, checked by the caller).
    init_from: a Checkpoint whose weights start a new run (fine-tuning).
    changed: the config keys that differ from the resumed run's, for the log and summary.
    log: a function taking one line of text (evaluations, notes), or None.
    started: when a time budget (train_cfg.time) began, as time.monotonic(); default now.
    notes: lines about the run to say first and keep in the summary (e.g. what auto.py chose).
    on_evaluation: called with each evaluation's metrics record once it is written (last.npz
    too); a str it returns stops the run there, with that reason (the summary's `stopped`).
    Returns the summary dict (also what `train --json` prints).
    """
    started = time.monotonic() if started is None else started
    notes, resumed = list(notes), resume is not None
    # set up a new run, or resume one, and say what it is
    t = _Training(corpus, model_cfg, train_cfg, out_dir, rng_seed, resume, init_from)
    out = _Progress(log or (lambda line: None), progress, t.run.iteration,
                    t.run.info["seconds"], train_cfg.batch_size * train_cfg.seq_length)
    _announce(t, out.say, notes, resumed, changed, init_from is not None)
    clock = BudgetClock(train_cfg.budget_seconds, started)
    # roll back to the last checkpoint written, or for a new run, until it writes one, to its
    # starting state (written below)
    rollback = RollbackPolicy(t.out_dir / (LAST if resumed else START))
    try:
        # Shards are made before tqdm starts its monitor thread, which would take a malloc arena
        # of its own; overflow and NaN are not warnings here: the divergence policy handles them
        with Shards(train_cfg.shards, train_cfg.threads) as shards, _SignalFlag() as stop, \
                np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out.say(_computing(shards, train_cfg, model_cfg))
            # a new run's starting state, to roll back to before its first checkpoint
            if not resumed:
                save_checkpoint(rollback.good, t.checkpoint())
            # with a time budget: plan the run's iterations to fit it
            if train_cfg.time:
                _plan(t, clock, shards, out.say)
            # iterations, with an evaluation and checkpoints every eval_every and at the end
            _loop(t, clock, rollback, out, shards, stop, on_evaluation)
    finally:      # the starting state is only kept until the run has a checkpoint
        (t.out_dir / START).unlink(missing_ok=True)
    return _summary(t, out, clock, notes, resumed, changed)


def dry_run(corpus, model_cfg, train_cfg, rng_seed=None):
    """What a run would be, without writing anything: sizes, and a measured time per iteration
    (from a few real iterations). DataError if the text cannot make one batch or validation."""
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    batches, val_ids, _, _ = prepare_data(corpus, tc.val_frac, tc.batch_size, tc.seq_length,
                                          tc.completion)
    params = init_params(cell, len(corpus.vocab), H, L, np.random.default_rng(rng_seed),
                         num_labels=len(corpus.label_names), direct_order=model_cfg.direct_order,
                         direct_size=model_cfg.direct_size)
    with Shards(tc.shards, tc.threads) as shards:
        per_iter = seconds_per_iteration(params, model_cfg, tc, batches, shards)
    streams, seg, context = evaluate.segment_layout(len(val_ids))
    n_params = num_params(params)
    return {
        "text": corpus.source,
        "num_params": n_params,
        "vocab_size": len(corpus.vocab),
        "train_chars": int(batches.inputs.size),
        "val_chars": len(val_ids),
        "chars_per_param": round(batches.inputs.size / n_params, 3),
        "train_batches_per_pass": batches.per_pass,
        "val_batches": -(-(seg + context) // evaluate.EVAL_SEQ_LENGTH),
        "val_streams": streams,
        "seconds_per_iter": round(per_iter, 4),
        "seconds_per_pass": round(per_iter * batches.per_pass, 1),
        "seconds_for_max_iters": round(per_iter * tc.max_iters, 1),
        "config": as_dict(model_cfg, train_cfg),
        "notes": list(corpus.notes),
    }
