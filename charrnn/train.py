"""Training: a text and a configuration in, a run directory out.

A run directory holds last.npz (the latest state, for resuming), best.npz (the lowest validation
loss so far), and metrics.jsonl (one JSON object per evaluation). Checkpoints are written at each
evaluation, every eval_every iterations and at the end.

Everything that decides what iteration k does (the chunk of data, the learning rate, whether the
hidden state is reset) is derived from k, and the RNG state and carried hidden state are saved, so
a run can be continued exactly from last.npz.
"""

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
from .data import Batches, DataError, Vocab, split_train_val
from .evaluate import score_ids
from .model import clip_grads, init_params, loss_and_grads, num_params, zero_state
from .optim import init_state, learning_rate_at, update


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to do."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; last.npz was written. signum says which signal."""

    def __init__(self, signum, checkpoint):
        super().__init__(f"interrupted by signal {signum}")
        self.signum, self.checkpoint = signum, checkpoint


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


def prepare_data(text, val_frac, batch_size, seq_length):
    """Vocabulary, training batches and validation ids for a Text; DataError if unusable."""
    vocab = Vocab.from_text(text.text)
    if len(vocab) < 2:
        raise DataError(f"{text.source}: the text has only one distinct character "
                        f"({vocab.chars!r}); there is nothing to learn")
    ids = vocab.encode(text.text)
    train_ids, val_ids = split_train_val(ids, val_frac)
    if val_frac == 0:
        val_ids = train_ids  # no held-out text: evaluations score the training text
    if len(val_ids) < 2:
        raise DataError(f"{text.source}: the validation part (val_frac {val_frac}) has "
                        f"{len(val_ids)} characters; it needs at least 2 (raise val_frac or "
                        "use a longer text)")
    try:
        batches = Batches(train_ids, batch_size, seq_length)
    except DataError as e:
        raise DataError(f"{text.source}: {e}") from None
    return vocab, batches, val_ids


def train(text, model_cfg, train_cfg, out_dir, rng_seed=None, progress=True, log=None):
    """Train a new model on text (a data.Text) and write the run to out_dir.

    log: a function taking one line of text (evaluations, notes), or None.
    Returns the summary dict (also what `train --json` prints).
    """
    log = log or (lambda line: None)
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    vocab, batches, val_ids = prepare_data(text, tc.val_frac, tc.batch_size, tc.seq_length)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(rng_seed)
    params = init_params(cell, len(vocab), H, L, rng)
    optim_state = init_state(tc.optimizer, params, tc.momentum)
    state = zero_state(cell, L, tc.batch_size, H)
    info = {"data_sha256": text.sha256, "data_source": text.source, "best_val_loss": None,
            "best_iteration": None, "seconds": 0.0, "rng_seed": rng_seed}
    chars_per_iter = tc.batch_size * tc.seq_length

    def checkpoint(iteration):
        return Checkpoint(params=params, vocab=vocab, model_cfg=model_cfg, train_cfg=train_cfg,
                          iteration=iteration, optim_state=optim_state,
                          rng_state=rng.bit_generator.state, hidden_state=state, info=dict(info))

    for note in text.notes:
        log(f"note: {text.source}: {note}")
    log(f"{cell} {L}x{H}, {num_params(params):,} parameters, vocabulary {len(vocab)}; "
        f"{len(batches.inputs.reshape(-1)):,} training and {len(val_ids):,} validation "
        f"characters, {batches.per_pass:,} iterations per pass; run directory {out_dir}")
    metrics_path = out_dir / "metrics.jsonl"
    best = math.inf
    losses = []
    start = time.perf_counter()
    smooth = first_loss = None
    iteration = 0
    bar = tqdm(total=tc.max_iters, desc="train", unit="it", file=sys.stderr, dynamic_ncols=True,
               disable=None if progress else True)
    with bar, _SignalFlag() as stop:
        for iteration in range(tc.max_iters):
            if stop.signum is not None:
                info["seconds"] = time.perf_counter() - start
                path = out_dir / "last.npz"
                save_checkpoint(path, checkpoint(iteration))
                raise Interrupted(stop.signum, path)
            inputs, targets, new_pass = batches.chunk(iteration)
            if new_pass:
                state = zero_state(cell, L, tc.batch_size, H)
            loss, grads, state = loss_and_grads(params, cell, inputs, targets, state,
                                                model_cfg.dropout, rng)
            if not math.isfinite(loss):
                raise TrainingError(f"the training loss became {loss} at iteration "
                                    f"{iteration + 1}; lower learning_rate or grad_clip")
            clip_grads(grads, tc.grad_clip, tc.clip_mode)
            lr = learning_rate_at(tc.learning_rate, tc.lr_decay, iteration, batches.per_pass)
            update(tc.optimizer, params, grads, optim_state, lr, iteration + 1, tc.momentum)
            losses.append(loss)
            if first_loss is None:
                first_loss = loss
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            done = iteration + 1
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"loss {smooth:.3f}, {done * chars_per_iter / elapsed:,.0f} chars/s",
                                refresh=False)
            bar.update(1)
            if done % tc.eval_every == 0 or done == tc.max_iters:
                val_total, val_n = score_ids(params, cell, val_ids)
                val_loss = val_total / val_n
                record = {"iteration": done, "train_loss": float(np.mean(losses)),
                          "val_loss": val_loss, "learning_rate": lr,
                          "seconds": round(time.perf_counter() - start, 3)}
                losses = []
                with open(metrics_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                info["seconds"] = record["seconds"]
                improved = math.isfinite(val_loss) and val_loss < best
                if improved:
                    best = val_loss
                    info["best_val_loss"], info["best_iteration"] = val_loss, done
                ckpt = checkpoint(done)
                save_checkpoint(out_dir / "last.npz", ckpt)
                if improved:
                    save_checkpoint(out_dir / "best.npz", ckpt)
                with tqdm.external_write_mode(file=sys.stderr):
                    log(f"iter {done}/{tc.max_iters}  train {record['train_loss']:.4f}  "
                        f"val {val_loss:.4f}{'  (best)' if improved else ''}  "
                        f"{record['seconds']:.0f}s")
    seconds = time.perf_counter() - start
    return {
        "run_dir": str(out_dir),
        "iterations": tc.max_iters,
        "best_val_loss": info["best_val_loss"],
        "best_iteration": info["best_iteration"],
        "initial_train_loss": first_loss,   # per character, the first iteration's chunk
        "final_train_loss": loss,           # per character, the last iteration's chunk
        "seconds": round(seconds, 3),
        "chars_per_second": round(tc.max_iters * chars_per_iter / seconds, 1),
        "num_params": num_params(params),
        "vocab_size": len(vocab),
        "config": as_dict(model_cfg, train_cfg),
        "notes": list(text.notes),
    }
