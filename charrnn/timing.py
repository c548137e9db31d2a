"""Timing a model on this machine: seconds per training iteration, measured on a few throwaway
iterations. Both charrnn's choices for a new run (auto.py, through plan.py) and a time budget's
plan (train.py) use it, so that they judge speed the same way.
"""

import copy
import time

import numpy as np

from .config import TrainConfig
from .data import Batches
from . import model
from .model import REGULARISERS, clip_grads, init_params, zero_state
from .optim import FlatOptimizer, init_state
from .parallel import Shards, loss_and_grads


def seconds_per_iteration(params, model_cfg, train_cfg, batches, shards, timed_iters=3):
    """The median time of timed_iters training iterations (after one to warm up), run on copies
    of params with an optimizer of their own: the caller's arrays are left as they were."""
    cell, L, H = model_cfg.model, model_cfg.num_layers, model_cfg.hidden_size
    tc = train_cfg
    params = copy.deepcopy(params)
    optimizer = FlatOptimizer(tc.optimizer, params, init_state(tc.optimizer, params, tc.momentum),
                              tc.momentum, weight_decay=tc.weight_decay)
    hidden = zero_state(cell, L, tc.batch_size, H)
    rng = np.random.default_rng(0)         # for dropout: not the run's generator
    times = []
    for k in range(timed_iters + 1):           # the first one warms up, untimed
        t0 = time.perf_counter()
        inputs, targets, _ = batches.chunk(k)
        _, grads, hidden = loss_and_grads(params, cell, inputs, targets, hidden,
                                          model_cfg.dropout, rng, shards,
                                          **batches.extras(k, model.direct_width(params)),
                                          **{key: getattr(model_cfg, key) for key in REGULARISERS})
        clip_grads(grads, tc.grad_clip, tc.clip_mode)
        optimizer.step(grads, tc.learning_rate, k + 1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def seconds_per_char(model_cfg, vocab_size, ids, batch_size, seq_length, shards, threads,
                     timed_iters=2, end=None):
    """Training seconds per character of the model model_cfg (a ModelConfig) at batch_size
    streams of seq_length: a fresh model timed on timed_iters throwaway iterations over the
    first characters of ids (repeated if the text is short), in shards on threads (the keys);
    end: the end mark's id for documents."""
    N, T = batch_size, seq_length
    params = init_params(model_cfg.model, vocab_size, model_cfg.hidden_size, model_cfg.num_layers,
                         np.random.default_rng(0), direct_order=model_cfg.direct_order,
                         direct_size=model_cfg.direct_size)
    ids = np.resize(np.asarray(ids[:4 * N * T + 1]), 4 * N * T + 1)
    timing = TrainConfig(batch_size=N, seq_length=T, shards=shards, threads=threads)
    with Shards(shards, threads) as sharded:
        per_iter = seconds_per_iteration(params, model_cfg, timing, Batches(ids, N, T, end=end),
                                         sharded, timed_iters=timed_iters)
    return per_iter / (N * T)
