"""Training: an encoded text and a configuration in, a run directory out.

A run directory holds last.npz (the latest state, for resuming), best.npz (the lowest validation
loss so far), metrics.jsonl (one JSON object per evaluation) and data.npy (the text's ids, cached
for resuming); runs.py makes and owns it. Checkpoints are written at each evaluation, every
eval_every iterations and at the end, and when SIGINT or SIGTERM arrives.

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
from .config import as_dict, parse_duration
from .data import Batches, DataError, completion_mask, split_train_val
from . import evaluate
from .model import clip_grads, init_params, num_params, zero_state
from .optim import FlatOptimizer, init_state, learning_rate_at
from .parallel import Shards, loss_and_grads
from .timing import seconds_per_iteration

MAX_ROLLBACKS = 3             # rollbacks in a row (without a checkpoint between) before giving up
DIVERGENCE_FACTOR = 2.0       # a loss above this many times ln V nats/char is a divergence
PLAN_MARGIN = 0.97            # a time budget plans iterations for this fraction of it (noise)
DEADLINE = 0.99               # ... and ends, whatever the plan, by this fraction of it (what the
                              # process does before and after the run: start-up, exit)
START_NAME = ".start.npz"     # a new run's starting state, until its first checkpoint


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
    """Training batches, validation ids and, with a completion setting, the validation ids'
    mask (else None) for a Corpus; DataError if unusable."""
    if len(corpus.vocab) < 2:
        raise DataError(f"{corpus.source}: the text has only one distinct character "
                        f"({corpus.vocab.chars!r}); there is nothing to learn")
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
        mask = _completion_mask(corpus, completion)
        train_mask, val_mask = split_train_val(mask, val_frac)
        if val_frac == 0:
            val_mask = train_mask
        for part, m in (("training", train_mask), ("validation", val_mask)):
            if not m[1:].any():
                raise DataError(f"{corpus.source}: the {part} part has no completion to score: "
                                f"completion {completion!r} scores the characters after "
                                f"{completion[0]!r} up to and including {completion[1]!r}")
    try:
        batches = Batches(train_ids, batch_size, seq_length, train_mask)
    except DataError as e:
        raise DataError(f"{corpus.source}: {e}") from None
    return batches, val_ids, val_mask


def _completion_mask(corpus, completion):
    stoi = corpus.vocab.stoi
    if any(ch not in stoi for ch in completion):     # nothing can be scored
        return np.zeros(len(corpus.ids), dtype=bool)
    return completion_mask(corpus.ids, stoi[completion[0]], stoi[completion[1]])


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


class _Training:
    """One run of the training loop in train(), step by step: set up or resume, one iteration,
    evaluate and save, roll back on divergence, summarize."""

    def __init__(self, corpus, model_cfg, train_cfg, out_dir, rng_seed, resume, init_from, log,
                 notes=()):
        self.corpus, self.model_cfg, self.cfg = corpus, model_cfg, train_cfg
        self.cell, self.L, self.H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
        self.batches, self.val_ids, self.val_mask = prepare_data(
            corpus, train_cfg.val_frac, train_cfg.batch_size, train_cfg.seq_length,
            train_cfg.completion)
        self.out_dir, self.log, self.resumed = Path(out_dir), log, resume is not None
        self.bound = divergence_bound(len(corpus.vocab))
        rng = np.random.default_rng(rng_seed)
        if resume is not None:
            self.run = _Run(resume.params, resume.optim_state, rng, resume.hidden_state,
                            resume.iteration, dict(resume.info))
            rng.bit_generator.state = resume.rng_state
        else:
            params = (init_from.params if init_from is not None
                      else init_params(self.cell, len(corpus.vocab), self.H, self.L, rng))
            self.run = _Run(params, init_state(train_cfg.optimizer, params, train_cfg.momentum),
                            rng, self._zero_state(), 0,
                            {"data_sha256": corpus.sha256, "data_source": corpus.source,
                             "best_val_loss": None, "best_iteration": None, "seconds": 0.0,
                             "rng_seed": rng_seed, "lr_scale": 1.0})
        if train_cfg.ema and not any(k.startswith("ema/") for k in self.run.optim_state):
            # the moving average of the weights starts at the weights (kept with the optimizer's
            # state, so checkpoints carry it and a resumed run goes on exactly)
            self.run.optim_state.update({f"ema/{n}": p.copy() for n, p in self.run.params.items()})
        # params and optimizer state become views of flat buffers (restores stay in place)
        self.optimizer = FlatOptimizer(train_cfg.optimizer, self.run.params,
                                       self.run.optim_state, train_cfg.momentum, train_cfg.ema)
        self.start_iteration = self.run.iteration
        # where the current text started (a run that switched texts) and the passes before it
        self.text_start = self.run.info.get("text_start", 0)
        self.passes_before = self.run.info.get("passes_before", 0)
        self.best = self.run.info["best_val_loss"]
        self.best = math.inf if self.best is None else self.best
        # the checkpoint to roll back to: the last one written, or for a new run, until it writes
        # one, its starting state (train() writes it): on disk, not a copy in memory
        self.good = self.out_dir / ("last.npz" if resume is not None else START_NAME)
        self.rollbacks = 0                 # in a row, since the last checkpoint
        self.losses = []                   # training losses since the last evaluation
        self.loss_chars = []               # ... and the characters each one scored
        self.first_loss = self.loss = self.smooth = None
        self.lr = None
        self.started = time.perf_counter()
        self.seconds_before = self.run.info["seconds"]
        self.bar = None
        self.notes = list(notes)           # what to say first and keep in the summary
        self.deadline = None               # with a time budget: when it is up (time.monotonic)
        self.reserve = 0.0                 # seconds that the final evaluation and save take
        self.per_iter = None               # seconds per iteration: planned, then as observed
        self.planned_per_iter = None
        self.last_tick = None
        self.out_of_time = False

    def _zero_state(self):
        return zero_state(self.cell, self.L, self.cfg.batch_size, self.H)

    def seconds(self):
        """Training seconds of the whole run, earlier sessions included."""
        return self.seconds_before + time.perf_counter() - self.started

    def say(self, line):
        if self.bar is not None:
            with tqdm.external_write_mode(file=sys.stderr):
                self.log(line)
        else:
            self.log(line)

    def announce(self, changed, init_from):
        for note in self.corpus.notes:
            self.say(f"note: {self.corpus.source}: {note}")
        for note in self.notes:
            self.say(f"note: {note}")
        if self.resumed:
            self.say(f"resuming {self.out_dir} at iteration {self.run.iteration}"
                     + (f"; changed: {', '.join(changed)}" if changed else ""))
        if init_from:
            self.say("starting from the weights of the --init-from checkpoint")
        if self.cfg.completion:
            sep, end = self.cfg.completion
            self.say(f"completion {self.cfg.completion!r}: the losses count only the characters "
                     f"after {sep!r} up to and including {end!r}")
        b = self.batches
        self.say(f"{self.cell} {self.L}x{self.H}, {num_params(self.run.params):,} parameters, "
                 f"vocabulary {len(self.corpus.vocab)}; {b.inputs.size:,} training and "
                 f"{len(self.val_ids):,} validation characters, {b.per_pass:,} iterations per "
                 f"pass; run directory {self.out_dir}")

    def checkpoint(self):
        run = self.run
        return Checkpoint(params=run.params, vocab=self.corpus.vocab, model_cfg=self.model_cfg,
                          train_cfg=self.cfg, iteration=run.iteration,
                          optim_state=run.optim_state, rng_state=run.rng.bit_generator.state,
                          hidden_state=run.hidden, info=dict(run.info))

    def step(self, shards):
        """One iteration: the next chunk's loss and gradients, clipped, then the update. Returns
        False if it diverged instead (and was rolled back)."""
        run, cfg = self.run, self.cfg
        inputs, targets, new_pass = self.batches.chunk(run.iteration - self.text_start)
        if new_pass:
            run.hidden = self._zero_state()
        loss, grads, hidden = loss_and_grads(run.params, self.cell, inputs, targets, run.hidden,
                                             self.model_cfg.dropout, run.rng, shards)
        # characters scored: all, or a completion setting's (maybe none: loss 0, no divergence)
        scored = targets.size if self.batches.scored is None else int((targets >= 0).sum())
        norm = clip_grads(grads, cfg.grad_clip, cfg.clip_mode)
        if not (math.isfinite(loss) and math.isfinite(norm)) or loss > self.bound:
            what = (f"gradient norm {norm}" if math.isfinite(loss) and not math.isfinite(norm)
                    else f"loss {loss:.6g}")
            self.roll_back(f"{what} at iteration {run.iteration + 1}{self._beyond(loss)}")
            return False
        run.hidden = hidden
        passes = self.passes_before + (run.iteration - self.text_start) // self.batches.per_pass
        self.lr = run.info["lr_scale"] * learning_rate_at(
            cfg.learning_rate, cfg.lr_decay, run.iteration, self.batches.per_pass,
            cfg.lr_schedule, cfg.warmup_iters, cfg.max_iters, cfg.lr_floor, passes)
        self.optimizer.step(grads, self.lr, run.iteration + 1)   # and the ema's average
        run.iteration += 1
        if scored:
            self.losses.append(loss)
            self.loss_chars.append(scored)
            self.loss = loss
            self.first_loss = loss if self.first_loss is None else self.first_loss
            self.smooth = loss if self.smooth is None else 0.98 * self.smooth + 0.02 * loss
        return True

    def train_loss(self):
        """The mean training loss per character since the last evaluation (None if no chunk
        scored any): a plain mean of the chunks', or weighted by the characters each scored."""
        if not self.losses:
            return None
        if self.batches.scored is None:
            return float(np.mean(self.losses))
        return float(np.dot(self.losses, self.loss_chars) / np.sum(self.loss_chars))

    def _beyond(self, loss):
        """How a finite loss above the bound is described in a divergence warning."""
        if not math.isfinite(loss) or loss <= self.bound:
            return ""
        return f", above {DIVERGENCE_FACTOR:g} ln V = {self.bound:.3g} nats/char"

    def evaluation_due(self):
        i = self.run.iteration
        return i % self.cfg.eval_every == 0 or i == self.cfg.max_iters or self.out_of_time

    def plan(self, shards, started):
        """Turn the time budget into max_iters, fixed from now on (so the run resumes exactly):
        time a few throwaway iterations, a validation pass and a checkpoint write, then plan as
        many iterations as fit in PLAN_MARGIN of what is left of the budget, with their
        evaluations and checkpoints and the final ones."""
        cfg = self.cfg
        budget = parse_duration(cfg.time)
        per_iter, per_eval, per_save = self._measure(shards)
        self.reserve = per_eval + 2 * per_save       # the final evaluation and checkpoints
        self.per_iter = self.planned_per_iter = per_iter
        left = budget * PLAN_MARGIN - (time.monotonic() - started) - self.reserve
        per_planned = per_iter + (per_eval + 1.5 * per_save) / cfg.eval_every
        planned = max(1, int(left / per_planned))
        self.cfg = dataclasses.replace(cfg, max_iters=self.run.iteration + planned)
        self.deadline = started + DEADLINE * budget
        self.say(f"time {cfg.time}: {planned:,} iterations planned, to iteration "
                 f"{self.cfg.max_iters:,} ({per_iter * 1000:.0f} ms each, validation "
                 f"{per_eval:.1f} s every {cfg.eval_every})")

    def _measure(self, shards):
        """Seconds that an iteration, a validation pass and a checkpoint write take here."""
        per_iter = seconds_per_iteration(self.run.params, self.model_cfg, self.cfg, self.batches,
                                         shards)
        t0 = time.perf_counter()
        self._validate(shards)
        per_eval = time.perf_counter() - t0
        probe = self.out_dir / ".time-probe.npz"
        t0 = time.perf_counter()
        save_checkpoint(probe, self.checkpoint())
        per_save = time.perf_counter() - t0
        probe.unlink()
        return per_iter, per_eval, per_save

    def time_is_up(self):
        """With a budget: whether one more iteration would leave no time for the final
        evaluation and save (a slower machine than planned for); then the run ends now. The
        time of an iteration is followed as it is observed (a moving average), and the final
        evaluation and save are expected to be slower in the same proportion."""
        if self.deadline is not None and not self.out_of_time:
            now = time.monotonic()
            if self.last_tick is not None:
                self.per_iter = 0.8 * self.per_iter + 0.2 * (now - self.last_tick)
            self.last_tick = now
            slower = max(1.0, self.per_iter / self.planned_per_iter)
            self.out_of_time = now + self.per_iter + slower * self.reserve > self.deadline
            if self.out_of_time:
                self.say(f"time {self.cfg.time} is up at iteration {self.run.iteration:,} of "
                         f"the {self.cfg.max_iters:,} planned")
        return self.out_of_time

    def evaluate_and_save(self, shards):
        """Score the validation text; a finite model within the bound is written to last.npz
        (best.npz too if it is the best yet) and becomes the state to roll back to; else roll
        back. Returns False if it rolled back."""
        run = self.run
        val_loss, val_accuracy = self._validate(shards)
        # every weight (and moving average) lies in the optimizer's flat buffers
        weights = [self.optimizer.p] + ([self.optimizer.slots["ema"]] if self.cfg.ema else [])
        if not (math.isfinite(val_loss) and val_loss <= self.bound
                and all(np.isfinite(w).all() for w in weights)):
            # the update itself overflowed or blew the model up: the same policy as for a loss
            self.losses, self.loss_chars = [], []
            self.roll_back(f"validation loss {val_loss:.6g} at iteration {run.iteration}"
                           f"{self._beyond(val_loss)}")
            return False
        record = {"iteration": run.iteration, "train_loss": self.train_loss(),
                  "val_loss": val_loss, "learning_rate": self.lr,
                  "seconds": round(self.seconds(), 3)}
        if val_accuracy is not None:
            record["val_accuracy"] = val_accuracy
        self.losses, self.loss_chars = [], []
        _append_line(self.out_dir / "metrics.jsonl", json.dumps(record))
        run.info["seconds"] = record["seconds"]
        improved = val_loss < self.best
        if improved:
            self.best = val_loss
            run.info["best_val_loss"], run.info["best_iteration"] = val_loss, run.iteration
        ckpt = self.checkpoint()
        save_checkpoint(self.out_dir / "last.npz", ckpt)
        if improved:   # the weights it scored: with ema, the moving average
            save_checkpoint(self.out_dir / "best.npz",
                            dataclasses.replace(ckpt, params=self.eval_params()))
        if self.good != self.out_dir / "last.npz":
            self.good.unlink(missing_ok=True)
            self.good = self.out_dir / "last.npz"
        self.rollbacks = 0
        train_loss = "-" if record["train_loss"] is None else f"{record['train_loss']:.4f}"
        accuracy = "" if val_accuracy is None else f"  accuracy {100 * val_accuracy:.2f} %"
        self.say(f"iter {run.iteration}/{self.cfg.max_iters}  train {train_loss}  "
                 f"val {val_loss:.4f}{accuracy}{'  (best)' if improved else ''}  "
                 f"{record['seconds']:.0f}s")
        return True

    def eval_params(self):
        """The weights that validation scores and best.npz keeps: the moving average with ema,
        else the weights themselves."""
        if not self.cfg.ema:
            return self.run.params
        return {name: self.run.optim_state[f"ema/{name}"] for name in self.run.params}

    def _validate(self, shards):
        """(validation loss per character, teacher-forced accuracy or None): over every
        character, or with a completion setting over the completions' characters."""
        params = self.eval_params()
        if self.val_mask is None:
            total, n = evaluate.score_ids(params, self.cell, self.val_ids, shards=shards)
            return total / n, None
        total, n, right = evaluate.score_completions(params, self.cell, self.val_ids,
                                                     self.val_mask, shards)
        return total / n, right / n

    def roll_back(self, what):
        """The divergence policy: restore the last checkpoint's state and halve the learning
        rate, or, after MAX_ROLLBACKS of them in a row, stop with a TrainingError."""
        info = self.run.info
        if self.rollbacks >= MAX_ROLLBACKS:
            raise TrainingError(
                f"training diverged ({what}) {MAX_ROLLBACKS} times in a row after rolling back "
                f"and halving the learning rate (now x{info['lr_scale']:g}); lower "
                "learning_rate or grad_clip. The run directory keeps its last good checkpoint, "
                "if any")
        self.run.restore(load_checkpoint(self.good))
        info["lr_scale"] *= 0.5
        self.rollbacks += 1
        self.say(f"warning: {what}: rolled back to iteration {self.run.iteration} and halved "
                 f"the learning rate (now x{info['lr_scale']:g})")

    def interrupt(self, signum):
        """Write last.npz as it is now and raise Interrupted."""
        self.run.info["seconds"] = self.seconds()
        path = self.out_dir / "last.npz"
        save_checkpoint(path, self.checkpoint())
        raise Interrupted(signum, path, self.run.iteration)

    def loop(self, shards, stop, progress):
        """Iterate to max_iters (or until time is up), evaluating and saving when due, with a
        progress bar on stderr; stop (a _SignalFlag) ends it between two iterations."""
        chars_per_iter = self.cfg.batch_size * self.cfg.seq_length
        self.bar = tqdm(total=self.cfg.max_iters, initial=self.run.iteration, desc="train",
                        unit="it", file=sys.stderr, dynamic_ncols=True,
                        disable=None if progress else True)
        with self.bar as bar:
            while self.run.iteration < self.cfg.max_iters and not self.out_of_time:
                # stop between two iterations on SIGINT or SIGTERM, with last.npz written
                if stop.signum is not None:
                    self.interrupt(stop.signum)
                # one iteration on the next chunk, on the cores this process may use now
                shards.update()
                if self.step(shards):
                    speed = ((self.run.iteration - self.start_iteration) * chars_per_iter
                             / (time.perf_counter() - self.started))
                    smooth = "-" if self.smooth is None else f"{self.smooth:.3f}"  # none scored
                    bar.set_postfix_str(f"loss {smooth}, {speed:,.0f} chars/s", refresh=False)
                    bar.update(1)
                    if not (self.time_is_up() or self.evaluation_due()):
                        continue
                    # evaluate the loss on the validation text and write the checkpoints
                    self.evaluate_and_save(shards)
                bar.n = self.run.iteration      # after a rollback, the bar goes back too

    def summary(self, changed):
        run, info = self.run, self.run.info
        seconds = time.perf_counter() - self.started
        done = run.iteration - self.start_iteration
        chars = done * self.cfg.batch_size * self.cfg.seq_length
        return {
            "run_dir": str(self.out_dir),
            "iterations": run.iteration,
            "resumed_from": self.start_iteration if self.resumed else None,
            "changed": list(changed),
            "best_val_loss": info["best_val_loss"],
            "best_iteration": info["best_iteration"],
            "initial_train_loss": self.first_loss,   # per character, this session's first chunk
            "final_train_loss": self.loss,           # per character, the last chunk
            "seconds": round(seconds, 3),
            "chars_per_second": round(chars / seconds, 1) if seconds > 0 else None,
            "num_params": num_params(run.params),
            "vocab_size": len(self.corpus.vocab),
            "lr_scale": info["lr_scale"],
            "config": as_dict(self.model_cfg, self.cfg),
            "notes": list(self.corpus.notes) + self.notes + (
                [f"time {self.cfg.time} was up at iteration {run.iteration:,} of the "
                 f"{self.cfg.max_iters:,} planned"] if self.out_of_time else []),
        }


def train(corpus, model_cfg, train_cfg, out_dir, rng_seed=None, progress=True, log=None,
          resume=None, init_from=None, changed=(), started=None, notes=()):
    """Train on corpus (a data.Corpus) and write the run to out_dir (made and owned by the
    caller: runs.py).

    resume: a Checkpoint to continue (same corpus and compatible config, checked by the caller).
    init_from: a Checkpoint whose weights start a new run (fine-tuning).
    changed: the config keys that differ from the resumed run's, for the log and summary.
    log: a function taking one line of text (evaluations, notes), or None.
    started: when a time budget (train_cfg.time) began, as time.monotonic(); default now.
    notes: lines about the run to say first and keep in the summary (e.g. what auto.py chose).
    Returns the summary dict (also what `train --json` prints).
    """
    started = time.monotonic() if started is None else started
    # set up a new run, or resume one, and say what it is
    t = _Training(corpus, model_cfg, train_cfg, out_dir, rng_seed, resume, init_from,
                  log or (lambda line: None), notes)
    t.announce(changed, init_from is not None)
    try:
        # Shards are made before tqdm starts its monitor thread, which would take a malloc arena
        # of its own; overflow and NaN are not warnings here: the divergence policy handles them
        with Shards(train_cfg.threads) as shards, _SignalFlag() as stop, \
                np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # a new run's starting state, to roll back to before its first checkpoint
            if t.good.name == START_NAME:
                save_checkpoint(t.good, t.checkpoint())
            # with a time budget: plan the run's iterations to fit it
            if train_cfg.time:
                t.plan(shards, started)
            # iterations, with an evaluation and checkpoints every eval_every and at the end
            t.loop(shards, stop, progress)
    finally:      # the starting state is only kept until the run has a checkpoint
        (t.out_dir / START_NAME).unlink(missing_ok=True)
    return t.summary(changed)


def dry_run(corpus, model_cfg, train_cfg, rng_seed=None):
    """What a run would be, without writing anything: sizes, and a measured time per iteration
    (from a few real iterations). DataError if the text cannot make one batch or validation."""
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    batches, val_ids, _ = prepare_data(corpus, tc.val_frac, tc.batch_size, tc.seq_length,
                                       tc.completion)
    params = init_params(cell, len(corpus.vocab), H, L, np.random.default_rng(rng_seed))
    with Shards(tc.threads) as shards:
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
