"""charrnn's training recipe written in PyTorch: the twin of issue 12's comparison.

    TORCH_PYTHON scripts/torch_twin.py TEXT [--config YAML] [--set KEY=VALUE ...]
        [--time 10m | --max-iters N] [--rng-seed N] [--charrnn-init] [--eval-first]

Issue 12: "The same recipe written in PyTorch (the same model, data split and schedule,
2 threads) must not reach a better validation loss in the same wall clock." This script trains
what `charrnn train TEXT --config YAML` trains, in PyTorch, and prints the validation loss over
wall-clock time. Run it with an interpreter that has torch, numpy and pyyaml (a throw-away
environment: `python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy
pyyaml`); charrnn is imported from this checkout (the script's parent directory) for what is not
PyTorch's to do: reading the config (the same keys, defaults and checks), reading and encoding
the text, the split, the batches, the learning-rate schedule and the validation segments. So
those are charrnn's own code, not a copy that could drift.

The same recipe, piece by piece (charrnn's module in brackets):

- config [config.load_config]: defaults < --config < --set; --time and --max-iters are
  `--set time=...` and `--set max_iters=...`. A config key the twin does not implement is an
  error, never silently ignored.
- data [data]: the vocabulary (every distinct character, sorted), the split (the last
  int(len * val_frac) characters held out; val_frac 0 scores the training text), Batches
  (batch_size streams read seq_length at a time; chunk k of a pass is columns k T .. (k + 1) T).
- model [model]: embedding V x H ~ N(0, 1); nn.RNN (tanh) / nn.LSTM / nn.GRU (H, H, L), with
  dropout between layers and on the top layer's output (charrnn drops every layer's output);
  linear H -> V. Recurrent weights keep PyTorch's U(+-1/sqrt(H)); biases 0, an LSTM's forget
  gate bias 1; the output weight U(+-0.1/sqrt(H)), its bias 0 (model.init_params). PyTorch has
  two bias vectors per layer where charrnn has one (b, plus bhn inside a GRU's r * (.)): the
  redundant one, bias_hh, is frozen at 0 (rnn, lstm) or has its r and z parts' gradient zeroed
  (gru), so the trained parameters are charrnn's, each moved by its own Adam step.
- training [train._loop]: the hidden state carried from chunk to chunk, detached, and
  reset when a pass starts; the loss summed over the chunk's T steps and averaged over the N
  streams (model.loss_and_grads), reported per character; gradient clipping by global norm (or
  by value) to grad_clip; the optimizer with charrnn's constants (optim: Adam betas (0.9, 0.999),
  eps 1e-8, torch.optim.Adam's update is the same formula; rmsprop decay 0.95; adagrad with eps
  inside the square root, as charrnn's); the learning rate of each iteration from
  optim.learning_rate_at (warm-up, per-pass lr_decay, cosine to lr_floor at max_iters).
- validation [evaluate.score_ids]: every eval_every iterations and at the end, in eval mode (no
  dropout), under torch.inference_mode, on the very segments charrnn scores (up to 64 segments
  read side by side in chunks of 128 characters, the state carried, each but the first reading
  256 characters of context before it, unscored): the same characters, the same contexts.
- time [train.BudgetClock]: with a budget (--time or the time key), counted from the start
  of main() as charrnn counts from the start of fit(): a few throwaway iterations on a second
  model (1 to warm up, the median of 3) and one validation pass are timed, and max_iters is
  planned to fill 0.97 of what is left after the final validation, so that the cosine schedule
  ends when time is up; the run also stops early, and validates, if one more iteration would
  leave no time for that final validation.
- threads: torch.set_num_threads to the cores charrnn would compute on with the config's
  threads key (default 0: every core the process may use, cores.cpu_limit; n: at most n).
  shards is accepted and has nothing to do: the twin computes each batch whole (charrnn's
  shards change only the rounding of the sums).

Where it cannot match: the initial weights and dropout masks come from torch's generator, not
NumPy's (the same distributions, other draws), unless --charrnn-init starts it from the very
weights `charrnn train --rng-seed N` starts from (then, without dropout, the twin follows
charrnn's run: the same losses to 5 decimals or more after hundreds of iterations, measured on
rnn, lstm and gru, 1 and 2 layers, with adam, adagrad, rmsprop and sgd with momentum, cosine,
warm-up, lr_decay over passes, clipping by norm and by value); PyTorch's norm clipping scales by
grad_clip / (norm + 1e-6); the twin writes no checkpoints (charrnn's plan also budgets for
writing last.npz and best.npz at each evaluation, so the twin gets that time for training) and
has no divergence rollback (a non-finite loss stops it with an error). Run it on an otherwise
idle machine: with 2 threads on 2 cores that something else keeps busy, PyTorch's OpenMP
threads wait for each other (measured here: 2.6 s an iteration of a 1 x 64 GRU, against 11 ms
with 1 thread).

Output: stdout gets one JSON line per evaluation (iteration, seconds, train_loss: the mean since
the last evaluation, val_loss, learning_rate: the last one applied; seconds since the training
set-up, after the text was read, as charrnn's metrics.jsonl counts them), then one summary line
(best_val_loss, best_iteration, iterations, seconds, chars_per_second, ...). --eval-first also
scores the untrained model (iteration 0), within the clock. Progress goes to stderr.
"""

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # charrnn, from this checkout

from charrnn.config import (ConfigError, ModelConfig, TrainConfig, as_dict, load_config,
                            parse_duration)
from charrnn.cores import cpu_limit
from charrnn.data import Batches, DataError, load_corpus, split_train_val
# segments: charrnn's own cutting of the validation text, so that the twin scores exactly the
# characters and contexts charrnn scores
from charrnn.evaluate import EVAL_CONTEXT, EVAL_SEQ_LENGTH, EVAL_STREAMS, segments
from charrnn.model import init_params
from charrnn.optim import ADAM_BETAS, EPS, RMSPROP_DECAY, learning_rate_at

PLAN_MARGIN = 0.97   # as charrnn.train.PLAN_MARGIN: plan for this fraction of the budget
TIMED_ITERS = 3      # as charrnn.timing.seconds_per_iteration: the median of 3, after 1 warm-up
# the keys the twin implements; any other key is accepted only at its default
IMPLEMENTED = {"model", "hidden_size", "num_layers", "dropout", "seq_length", "batch_size",
               "optimizer", "learning_rate", "momentum", "lr_decay", "lr_schedule",
               "warmup_iters", "lr_floor", "grad_clip", "clip_mode", "max_iters", "time",
               "eval_every", "val_frac", "threads", "shards"}


def tensor(array):
    """A NumPy array as a tensor (sharing its memory, made contiguous first if need be)."""
    return torch.from_numpy(np.ascontiguousarray(array))


class CharModel(nn.Module):
    """embed -> L recurrent layers (dropout between them) -> dropout -> linear, time-major."""

    def __init__(self, cell, V, H, L, dropout):
        super().__init__()
        self.cell = cell
        self.embed = nn.Embedding(V, H)                       # N(0, 1), as charrnn's embed
        kind = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = kind(H, H, L, dropout=dropout if L > 1 else 0.0)   # nn.RNN: tanh
        self.drop = nn.Dropout(dropout)                       # the top layer's output too
        self.out = nn.Linear(H, V)
        with torch.no_grad():
            for l in range(L):
                getattr(self.rnn, f"bias_ih_l{l}").zero_()
                getattr(self.rnn, f"bias_hh_l{l}").zero_()
                if cell == "lstm":                            # gates i, f, g, o: f's bias 1
                    getattr(self.rnn, f"bias_ih_l{l}")[H:2 * H] = 1.0
            self.out.weight.uniform_(-0.1 / math.sqrt(H), 0.1 / math.sqrt(H))
            self.out.bias.zero_()
        for l in range(L):
            bias_hh = getattr(self.rnn, f"bias_hh_l{l}")
            if cell == "gru":
                # r, z: bias_hh adds to bias_ih (one parameter in charrnn, b); n: bhn
                keep = torch.cat([torch.zeros(2 * H), torch.ones(H)])
                bias_hh.register_hook(lambda grad, keep=keep: grad * keep)
            else:
                bias_hh.requires_grad_(False)                 # charrnn has the one bias, b

    @torch.no_grad()
    def load_charrnn(self, params):
        """Take charrnn's parameters (model.param_shapes' names; x @ W there is W.T @ x here)."""
        L, H = params["Wx"].shape[:2]
        self.embed.weight.copy_(tensor(params["embed"]))
        for l in range(L):
            getattr(self.rnn, f"weight_ih_l{l}").copy_(tensor(params["Wx"][l].T))
            getattr(self.rnn, f"weight_hh_l{l}").copy_(tensor(params["Wh"][l].T))
            getattr(self.rnn, f"bias_ih_l{l}").copy_(tensor(params["b"][l]))
            getattr(self.rnn, f"bias_hh_l{l}").zero_()
            if self.cell == "gru":
                getattr(self.rnn, f"bias_hh_l{l}")[2 * H:] = tensor(params["bhn"][l])
        self.out.weight.copy_(tensor(params["Why"].T))
        self.out.bias.copy_(tensor(params["by"]))

    def forward(self, ids, state):
        """ids: (T, N) -> logits (T, N, V) and the new state."""
        h, state = self.rnn(self.embed(ids), state)
        return self.out(self.drop(h)), state


def detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class Adagrad(torch.optim.Optimizer):
    """charrnn's adagrad: m += g^2; p -= lr g / sqrt(m + eps) (torch's puts eps outside)."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    m = self.state[p].setdefault("m", torch.zeros_like(p))
                    m.addcmul_(p.grad, p.grad)
                    p.addcdiv_(p.grad, (m + EPS).sqrt(), value=-group["lr"])


def make_optimizer(cfg, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, betas=ADAM_BETAS, eps=EPS)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=RMSPROP_DECAY, eps=EPS)
    if cfg.optimizer == "sgd":   # torch's buffer starts at g, charrnn's v = momentum * 0 + g
        return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum)
    return Adagrad(params, cfg.learning_rate)


def to_tensors(inputs, targets):
    """Batches' (N, T) int32 arrays -> time-major (T, N) tensors: int32 ids, int64 targets."""
    return tensor(inputs.T), tensor(targets.T.astype(np.int64))


class Twin:
    """The model, its optimizer and the carried state; one training iteration at a time."""

    def __init__(self, model_cfg, cfg, V, charrnn_seed=None):
        self.cfg = cfg
        cell, H, L = model_cfg.model, model_cfg.hidden_size, model_cfg.num_layers
        self.model = CharModel(cell, V, H, L, model_cfg.dropout)
        if charrnn_seed is not None:   # the first draws of charrnn's generator, as train does
            self.model.load_charrnn(init_params(cell, V, H, L, np.random.default_rng(charrnn_seed)))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(cfg, self.params)
        self.state = None

    def step(self, inputs, targets, new_pass, lr):
        """One iteration on a chunk; returns its loss per character."""
        cfg = self.cfg
        if new_pass:
            self.state = None
        logits, state = self.model(inputs, self.state)
        self.state = detach(state)
        # the loss summed over the T steps, averaged over the N streams (charrnn's gradient)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        (total / cfg.batch_size).backward()
        # clip the gradient, as charrnn's clip_grads
        if cfg.grad_clip > 0 and cfg.clip_mode == "norm":
            nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        elif cfg.grad_clip > 0:
            nn.utils.clip_grad_value_(self.params, cfg.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        return total.item() / targets.numel()


class Validation:
    """charrnn's validation score (evaluate.score_ids) of a model, on the same segments."""

    def __init__(self, val_ids):
        inputs, targets, _, _ = segments(val_ids, EVAL_STREAMS, EVAL_CONTEXT)   # (S, W)
        self.inputs, self.targets = to_tensors(inputs, targets)          # (W, S); -1: unscored
        self.n_chars = len(val_ids) - 1

    def loss(self, model):
        model.eval()
        total, state = 0.0, None
        with torch.inference_mode():
            for start in range(0, self.inputs.shape[0], EVAL_SEQ_LENGTH):
                cols = slice(start, start + EVAL_SEQ_LENGTH)
                logits, state = model(self.inputs[cols], state)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                         self.targets[cols].reshape(-1), ignore_index=-1,
                                         reduction="sum").item()
        model.train()
        return total / self.n_chars


def seconds_per_iteration(model_cfg, cfg, V, batches):
    """The median time of TIMED_ITERS iterations (after one to warm up) of a second, throwaway
    model, built without touching the run's random numbers."""
    with torch.random.fork_rng():
        probe = Twin(model_cfg, cfg, V)
        times = []
        for k in range(TIMED_ITERS + 1):
            t0 = time.perf_counter()
            inputs, targets, _ = batches.chunk(k)
            probe.step(*to_tensors(inputs, targets), k == 0, cfg.learning_rate)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", help="the training text (UTF-8), as charrnn train FILE")
    p.add_argument("--config", help="a charrnn YAML config")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key, as charrnn train --set (repeatable)")
    p.add_argument("--time", help="a wall-clock budget: 30s, 10m, 1.5h (the time key)")
    p.add_argument("--max-iters", type=int, help="training iterations (the max_iters key)")
    p.add_argument("--rng-seed", type=int, default=0,
                   help="torch's seed: the initial weights and dropout masks (default 0)")
    p.add_argument("--charrnn-init", action="store_true",
                   help="start from the very weights `charrnn train --rng-seed N` starts from "
                        "(N: --rng-seed; NumPy's draws, model.init_params); dropout masks "
                        "stay torch's")
    p.add_argument("--eval-first", action="store_true",
                   help="also score the untrained model (iteration 0)")
    return p.parse_args(argv)


def say(line):
    print(line, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


def main(argv=None):
    started = time.monotonic()             # a time budget counts from here, as charrnn's fit()
    args = parse_args(argv)
    sets = list(args.sets)
    if args.time is not None:
        sets.append(f"time={args.time}")
    if args.max_iters is not None:
        sets.append(f"max_iters={args.max_iters}")
    try:
        model_cfg, cfg = load_config(args.config, sets)
        corpus = load_corpus(args.text)
        if len(corpus.vocab) < 2:
            raise DataError(f"{corpus.source}: only one distinct character")
        train_ids, val_ids = split_train_val(corpus.ids, cfg.val_frac)
        if cfg.val_frac == 0:
            val_ids = train_ids            # as charrnn: evaluations score the training text
        batches = Batches(train_ids, cfg.batch_size, cfg.seq_length)
    except (ConfigError, DataError) as e:
        sys.exit(f"Error: {e}")
    resolved, defaults = as_dict(model_cfg, cfg), as_dict(ModelConfig(), TrainConfig())
    if missing := sorted(k for k in set(resolved) - IMPLEMENTED if resolved[k] != defaults[k]):
        sys.exit(f"Error: the twin does not implement the config key(s) {missing}")

    # set up the model, the optimizer and the validation segments
    torch.set_num_threads(cpu_limit(cfg.threads))
    torch.manual_seed(args.rng_seed)
    V = len(corpus.vocab)
    twin = Twin(model_cfg, cfg, V, args.rng_seed if args.charrnn_init else None)
    validation = Validation(val_ids)
    t_started = time.perf_counter()        # seconds count from here, as charrnn's metrics
    # charrnn's count: a GRU's bias_hh r and z parts, kept at 0, are not parameters there
    n_params = sum(p.numel() for p in twin.params) - (
        2 * model_cfg.hidden_size * model_cfg.num_layers if model_cfg.model == "gru" else 0)
    say(f"torch {torch.__version__}, {torch.get_num_threads()} threads: {model_cfg.model} "
        f"{model_cfg.num_layers}x{model_cfg.hidden_size}, {n_params:,} parameters, vocabulary "
        f"{V}; {batches.inputs.size:,} training and {len(val_ids):,} validation characters, "
        f"{batches.per_pass:,} iterations per pass")

    # a time budget: time a few iterations and a validation pass, plan max_iters
    deadline, reserve = None, 0.0
    if cfg.time:
        budget = parse_duration(cfg.time)
        per_iter = seconds_per_iteration(model_cfg, cfg, V, batches)
        t0 = time.perf_counter()
        validation.loss(twin.model)
        reserve = time.perf_counter() - t0          # the final validation
        left = budget * PLAN_MARGIN - (time.monotonic() - started) - reserve
        planned = max(1, int(left / (per_iter + reserve / cfg.eval_every)))
        cfg = twin.cfg = dataclasses.replace(cfg, max_iters=planned)
        deadline = started + budget
        say(f"time {cfg.time}: {planned:,} iterations planned ({per_iter * 1000:.0f} ms each, "
            f"validation {reserve:.1f} s every {cfg.eval_every})")

    if args.eval_first:
        emit({"iteration": 0, "seconds": round(time.perf_counter() - t_started, 3),
              "train_loss": None, "val_loss": validation.loss(twin.model), "learning_rate": None})

    iteration, losses, lr, out_of_time = 0, [], None, False
    best, best_iteration = math.inf, None
    while iteration < cfg.max_iters and not out_of_time:
        # one iteration on the next chunk, at charrnn's learning rate for it
        inputs, targets, new_pass = batches.chunk(iteration)
        lr = learning_rate_at(cfg.learning_rate, cfg.lr_decay, iteration, batches.per_pass,
                              cfg.lr_schedule, cfg.warmup_iters, cfg.max_iters, cfg.lr_floor)
        loss = twin.step(*to_tensors(inputs, targets), new_pass, lr)
        if not math.isfinite(loss):
            sys.exit(f"Error: loss {loss} at iteration {iteration + 1} (the twin has no rollback)")
        losses.append(loss)
        iteration += 1
        out_of_time = deadline is not None and time.monotonic() + reserve > deadline
        if out_of_time and iteration < cfg.max_iters:
            say(f"time {cfg.time} is up at iteration {iteration:,} of the {cfg.max_iters:,} "
                "planned")
        if not (out_of_time or iteration % cfg.eval_every == 0 or iteration == cfg.max_iters):
            continue
        # evaluate the loss on the validation text
        val_loss = validation.loss(twin.model)
        record = {"iteration": iteration,
                  "seconds": round(time.perf_counter() - t_started, 3),
                  "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                  "learning_rate": lr}
        losses = []
        improved = val_loss < best
        if improved:
            best, best_iteration = val_loss, iteration
        emit(record)
        say(f"iter {iteration}/{cfg.max_iters}  train {record['train_loss']:.4f}  "
            f"val {val_loss:.4f}{'  (best)' if improved else ''}  {record['seconds']:.0f}s")

    # the summary
    seconds = time.perf_counter() - t_started
    emit({"best_val_loss": best, "best_iteration": best_iteration, "iterations": iteration,
          "seconds": round(seconds, 3),
          "chars_per_second": round(iteration * cfg.batch_size * cfg.seq_length / seconds, 1),
          "wall_seconds": round(time.monotonic() - started, 3), "num_params": n_params,
          "vocab_size": V, "torch": torch.__version__, "threads": torch.get_num_threads(),
          "config": as_dict(model_cfg, cfg)})


if __name__ == "__main__":
    main()
