"""Training: an encoded text and a configuration in, a run directory out.

A run directory holds last.npz (the latest state, for resuming), best.npz (the lowest validation
loss so far), metrics.jsonl (one JSON object per evaluation) and data.npy (the text's ids, cached
for resuming). Checkpoints are written at each evaluation, every eval_every iterations and at the
end, and when SIGINT or SIGTERM arrives.

Everything that decides what iteration k does (the chunk of data, the learning rate, whether the
hidden state is reset) is derived from k, and the RNG state and carried hidden state are saved, so
a run continued from last.npz ends with the same parameters, bit for bit, as one never stopped.

Divergence: a non-finite loss or gradient is never applied and never saved. Training rolls back
to the state of the last checkpoint, halves the learning rate and goes on; the fourth divergence
without a checkpoint in between stops it with a TrainingError.
"""

import copy
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .checkpoint import Checkpoint, save_checkpoint
from .config import as_dict
from .data import Batches, DataError, split_train_val
from . import evaluate
from .model import clip_grads, init_params, num_params, zero_state
from .optim import FlatOptimizer, init_state, learning_rate_at
from .parallel import Shards, loss_and_grads

MAX_ROLLBACKS = 3             # rollbacks in a row (without a checkpoint between) before giving up
SAFE_TO_CHANGE = ("max_iters", "learning_rate", "eval_every", "threads")  # on resume


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. it keeps diverging); the message says what to do."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; last.npz was written. signum says which signal."""

    def __init__(self, signum, checkpoint, iteration):
        super().__init__(f"interrupted by signal {signum}")
        self.signum, self.checkpoint, self.iteration = signum, checkpoint, iteration


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


def _roll_back(run, good, rollbacks, what, say):
    """Divergence policy: restore the last checkpoint's state and halve the learning rate, or,
    after MAX_ROLLBACKS of them in a row, stop. Returns the new count of rollbacks in a row."""
    if rollbacks >= MAX_ROLLBACKS:
        raise TrainingError(
            f"training diverged ({what}) {MAX_ROLLBACKS} times in a row after rolling back and "
            f"halving the learning rate (now x{run.info['lr_scale']:g}); lower learning_rate or "
            "grad_clip. The run directory keeps its last good checkpoint, if any")
    run.restore(good)
    run.info["lr_scale"] *= 0.5
    say(f"warning: {what}: rolled back to iteration {run.iteration} and halved the "
        f"learning rate (now x{run.info['lr_scale']:g})")
    return rollbacks + 1


def prepare_data(corpus, val_frac, batch_size, seq_length):
    """Training batches and validation ids for a Corpus; DataError if unusable."""
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
    try:
        batches = Batches(train_ids, batch_size, seq_length)
    except DataError as e:
        raise DataError(f"{corpus.source}: {e}") from None
    return batches, val_ids


class _Run:
    """The mutable state of a training run: what a checkpoint holds."""

    def __init__(self, params, optim_state, rng, hidden, iteration, info):
        self.params, self.optim_state, self.rng = params, optim_state, rng
        self.hidden, self.iteration, self.info = hidden, iteration, info

    def snapshot(self):
        return (copy.deepcopy(self.params), copy.deepcopy(self.optim_state),
                copy.deepcopy(self.rng.bit_generator.state), copy.deepcopy(self.hidden),
                self.iteration)

    def restore(self, snap):
        params, optim_state, rng_state, hidden, self.iteration = copy.deepcopy(snap)
        for name in self.params:           # in place: the loop holds these dicts
            self.params[name][...] = params[name]
        for name in self.optim_state:
            self.optim_state[name][...] = optim_state[name]
        self.rng.bit_generator.state = rng_state
        self.hidden = hidden


def train(corpus, model_cfg, train_cfg, out_dir, rng_seed=None, progress=True, log=None,
          resume=None, init_from=None, changed=()):
    """Train on corpus (a data.Corpus) and write the run to out_dir.

    resume: a Checkpoint to continue (same corpus and compatible config, checked by the caller).
    init_from: a Checkpoint whose weights start a new run (fine-tuning).
    changed: the config keys that differ from the resumed run's, for the log and summary.
    log: a function taking one line of text (evaluations, notes), or None.
    Returns the summary dict (also what `train --json` prints).
    """
    log = log or (lambda line: None)
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    batches, val_ids = prepare_data(corpus, tc.val_frac, tc.batch_size, tc.seq_length)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(rng_seed)
    if resume is not None:
        run = _Run(resume.params, resume.optim_state, rng, resume.hidden_state, resume.iteration,
                   dict(resume.info))
        rng.bit_generator.state = resume.rng_state
    else:
        params = (init_from.params if init_from is not None
                  else init_params(cell, len(corpus.vocab), H, L, rng))
        run = _Run(params, init_state(tc.optimizer, params, tc.momentum), rng,
                   zero_state(cell, L, tc.batch_size, H), 0,
                   {"data_sha256": corpus.sha256, "data_source": corpus.source,
                    "best_val_loss": None, "best_iteration": None, "seconds": 0.0,
                    "rng_seed": rng_seed, "lr_scale": 1.0})
    # params and optimizer state become views of flat buffers (restores stay in place)
    optimizer = FlatOptimizer(tc.optimizer, run.params, run.optim_state, tc.momentum)
    info = run.info
    start_iteration = run.iteration
    chars_per_iter = tc.batch_size * tc.seq_length

    def checkpoint():
        return Checkpoint(params=run.params, vocab=corpus.vocab, model_cfg=model_cfg,
                          train_cfg=train_cfg, iteration=run.iteration,
                          optim_state=run.optim_state, rng_state=run.rng.bit_generator.state,
                          hidden_state=run.hidden, info=dict(info))

    for note in corpus.notes:
        log(f"note: {corpus.source}: {note}")
    if resume is not None:
        log(f"resuming {out_dir} at iteration {run.iteration}"
            + (f"; changed: {', '.join(changed)}" if changed else ""))
    if init_from is not None:
        log("starting from the weights of the --init-from checkpoint")
    log(f"{cell} {L}x{H}, {num_params(run.params):,} parameters, vocabulary {len(corpus.vocab)}; "
        f"{batches.inputs.size:,} training and {len(val_ids):,} validation characters, "
        f"{batches.per_pass:,} iterations per pass; run directory {out_dir}")
    metrics_path = out_dir / "metrics.jsonl"
    best = info["best_val_loss"] if info["best_val_loss"] is not None else math.inf
    losses = []
    started = time.perf_counter()
    seconds_before = info["seconds"]
    smooth = first_loss = loss = None
    good = run.snapshot()        # the state of the last checkpoint, to roll back to
    rollbacks = 0
    # made before tqdm starts its monitor thread, which would take a malloc arena of its own
    shards = Shards(tc.threads)
    bar = tqdm(total=tc.max_iters, initial=run.iteration, desc="train", unit="it",
               file=sys.stderr, dynamic_ncols=True, disable=None if progress else True)

    def say(line):
        with tqdm.external_write_mode(file=sys.stderr):
            log(line)

    # overflow and NaN are not warnings here: the divergence policy below deals with them
    with shards, bar, _SignalFlag() as stop, \
            np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while run.iteration < tc.max_iters:
            if stop.signum is not None:
                info["seconds"] = seconds_before + time.perf_counter() - started
                path = out_dir / "last.npz"
                save_checkpoint(path, checkpoint())
                raise Interrupted(stop.signum, path, run.iteration)
            inputs, targets, new_pass = batches.chunk(run.iteration)
            if new_pass:
                run.hidden = zero_state(cell, L, tc.batch_size, H)
            loss, grads, hidden = loss_and_grads(run.params, cell, inputs, targets, run.hidden,
                                                 model_cfg.dropout, run.rng, shards)
            norm = clip_grads(grads, tc.grad_clip, tc.clip_mode)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {norm}"
                rollbacks = _roll_back(run, good, rollbacks, f"{what} at iteration "
                                       f"{run.iteration + 1}", say)
                bar.n = run.iteration
                continue
            run.hidden = hidden
            lr = info["lr_scale"] * learning_rate_at(tc.learning_rate, tc.lr_decay,
                                                     run.iteration, batches.per_pass)
            optimizer.step(grads, lr, run.iteration + 1)
            run.iteration += 1
            losses.append(loss)
            if first_loss is None:
                first_loss = loss
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            elapsed = time.perf_counter() - started
            done_here = run.iteration - start_iteration
            bar.set_postfix_str(f"loss {smooth:.3f}, {done_here * chars_per_iter / elapsed:,.0f} "
                                "chars/s", refresh=False)
            bar.update(1)
            if run.iteration % tc.eval_every and run.iteration != tc.max_iters:
                continue
            val_total, val_n = evaluate.score_ids(run.params, cell, val_ids, shards=shards)
            val_loss = val_total / val_n
            finite = math.isfinite(val_loss) and all(
                np.isfinite(p).all() for p in run.params.values())
            if not finite:      # the update itself overflowed: same policy as a NaN loss
                losses = []
                rollbacks = _roll_back(run, good, rollbacks, f"validation loss {val_loss} at "
                                       f"iteration {run.iteration}", say)
                bar.n = run.iteration
                continue
            record = {"iteration": run.iteration, "train_loss": float(np.mean(losses)),
                      "val_loss": val_loss, "learning_rate": lr,
                      "seconds": round(seconds_before + time.perf_counter() - started, 3)}
            losses = []
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            info["seconds"] = record["seconds"]
            improved = val_loss < best
            if improved:
                best = val_loss
                info["best_val_loss"], info["best_iteration"] = val_loss, run.iteration
            ckpt = checkpoint()
            save_checkpoint(out_dir / "last.npz", ckpt)
            if improved:
                save_checkpoint(out_dir / "best.npz", ckpt)
            good, rollbacks = run.snapshot(), 0
            say(f"iter {run.iteration}/{tc.max_iters}  train {record['train_loss']:.4f}  "
                f"val {val_loss:.4f}{'  (best)' if improved else ''}  {record['seconds']:.0f}s")
    seconds = time.perf_counter() - started
    done = run.iteration - start_iteration
    return {
        "run_dir": str(out_dir),
        "iterations": run.iteration,
        "resumed_from": start_iteration if resume is not None else None,
        "changed": list(changed),
        "best_val_loss": info["best_val_loss"],
        "best_iteration": info["best_iteration"],
        "initial_train_loss": first_loss,   # per character, this session's first chunk
        "final_train_loss": loss,           # per character, the last chunk
        "seconds": round(seconds, 3),
        "chars_per_second": round(done * chars_per_iter / seconds, 1) if seconds > 0 else None,
        "num_params": num_params(run.params),
        "vocab_size": len(corpus.vocab),
        "lr_scale": info["lr_scale"],
        "config": as_dict(model_cfg, train_cfg),
        "notes": list(corpus.notes),
    }


def dry_run(corpus, model_cfg, train_cfg, rng_seed=None, timed_iters=3):
    """What a run would be, without writing anything: sizes, and a measured time per iteration
    (from a few real iterations). DataError if the text cannot make one batch or validation."""
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    batches, val_ids = prepare_data(corpus, tc.val_frac, tc.batch_size, tc.seq_length)
    rng = np.random.default_rng(rng_seed)
    params = init_params(cell, len(corpus.vocab), H, L, rng)
    optimizer = FlatOptimizer(tc.optimizer, params, init_state(tc.optimizer, params, tc.momentum),
                              tc.momentum)
    hidden = zero_state(cell, L, tc.batch_size, H)
    times = []
    with Shards(tc.threads) as shards:
        for k in range(timed_iters + 1):           # the first one warms up, untimed
            t0 = time.perf_counter()
            inputs, targets, _ = batches.chunk(k)
            _, grads, hidden = loss_and_grads(params, cell, inputs, targets, hidden,
                                              model_cfg.dropout, rng, shards)
            clip_grads(grads, tc.grad_clip, tc.clip_mode)
            optimizer.step(grads, tc.learning_rate, k + 1)
            times.append(time.perf_counter() - t0)
    per_iter = float(np.median(times[1:]))
    streams, seg = evaluate.segment_layout(len(val_ids))
    n_params = num_params(params)
    return {
        "num_params": n_params,
        "vocab_size": len(corpus.vocab),
        "train_chars": int(batches.inputs.size),
        "val_chars": len(val_ids),
        "chars_per_param": round(batches.inputs.size / n_params, 3),
        "train_batches_per_pass": batches.per_pass,
        "val_batches": -(-seg // evaluate.EVAL_SEQ_LENGTH),
        "val_streams": streams,
        "seconds_per_iter": round(per_iter, 4),
        "seconds_per_pass": round(per_iter * batches.per_pass, 1),
        "seconds_for_max_iters": round(per_iter * tc.max_iters, 1),
        "config": as_dict(model_cfg, train_cfg),
        "notes": list(corpus.notes),
    }
