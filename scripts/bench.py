"""Training and sampling throughput of charrnn on the configurations of issue 5.

    python scripts/bench.py [TEXT] [--iters N] [--configs C0,C1,...]

For each configuration: a few warm-up iterations, then N timed training iterations (forward,
backward, clipping, adam) on chunks of TEXT (default ../shared/data/tinyshakespeare.txt, else the
built-in corpus), reported as training characters per second (batch_size x seq_length x N / s),
sampling characters per second at batch 1 (2,000 characters), and sampling characters per second
in total for 64 samples computed as one batch (`charrnn sample --num-samples 64`; 400 characters
each). First version: the PyTorch reference, peak memory and the fraction of matmul peak come with
issue 5.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from charrnn.data import Batches, Vocab, builtin_corpus, read_text
from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.model import clip_grads, init_params, loss_and_grads, zero_state
from charrnn.optim import init_state, update
from charrnn.sample import SampleConfig, generate, generate_samples

CONFIGS = {  # name: (model, hidden, layers, batch, seq_length)
    "C0": ("rnn", 100, 1, 1, 25),
    "C1": ("lstm", 128, 2, 32, 64),
    "C2": ("lstm", 256, 2, 50, 50),
    "C3": ("lstm", 512, 2, 64, 100),
}
DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def bench_training(ids, V, cell, H, L, N, T, iters, warmup=3):
    rng = np.random.default_rng(0)
    params = init_params(cell, V, H, L, rng)
    state_opt = init_state("adam", params)
    batches = Batches(ids, N, T)
    state = zero_state(cell, L, N, H)
    for k in range(warmup + iters):
        if k == warmup:
            start = time.perf_counter()
        x, y, new_pass = batches.chunk(k)
        if new_pass:
            state = zero_state(cell, L, N, H)
        _, grads, state = loss_and_grads(params, cell, x, y, state)
        clip_grads(grads, 5.0, "norm")
        update("adam", params, grads, state_opt, 2e-3, k + 1)
    return N * T * iters / (time.perf_counter() - start), params


def bench_sampling(params, vocab, cell, H, L, n=2000):
    ckpt = Checkpoint(params=params, vocab=vocab, model_cfg=ModelConfig(cell, H, L),
                      train_cfg=TrainConfig())
    start = time.perf_counter()
    for _ in generate(ckpt, vocab.chars[0], n, rng=np.random.default_rng(0)):
        pass
    return n / (time.perf_counter() - start)


def bench_batch_sampling(params, vocab, cell, H, L, num_samples=64, n=400):
    """Characters per second in total, num_samples samples of n characters as one batch."""
    ckpt = Checkpoint(params=params, vocab=vocab, model_cfg=ModelConfig(cell, H, L),
                      train_cfg=TrainConfig())
    cfg = SampleConfig(num_chars=n, num_samples=num_samples)
    start = time.perf_counter()
    generate_samples(ckpt, vocab.chars[0], cfg, np.random.default_rng(0))
    return num_samples * n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", type=Path)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per config")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    path = args.text or (DEFAULT_TEXT if DEFAULT_TEXT.is_file() else None)
    text = read_text(path) if path else builtin_corpus()
    vocab = Vocab.from_text(text.text)
    ids = vocab.encode(text.text)
    print(f"text: {text.source} ({len(ids):,} characters, vocabulary {len(vocab)})")
    print(f"{'config':8} {'model':6} {'H':>4} {'L':>2} {'N':>3} {'T':>4} "
          f"{'train chars/s':>14} {'sample chars/s':>15} {'x64 chars/s':>12}")
    for name in args.configs.split(","):
        cell, H, L, N, T = CONFIGS[name]
        iters = args.iters * (20 if name == "C0" else 1)  # C0's iterations are tiny
        train_cps, params = bench_training(ids, len(vocab), cell, H, L, N, T, iters)
        sample_cps = bench_sampling(params, vocab, cell, H, L)
        batch_cps = bench_batch_sampling(params, vocab, cell, H, L)
        print(f"{name:8} {cell:6} {H:>4} {L:>2} {N:>3} {T:>4} {train_cps:>14,.0f} "
              f"{sample_cps:>15,.0f} {batch_cps:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
