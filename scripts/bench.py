"""Training and sampling speed, peak memory and matmul efficiency of charrnn, against PyTorch.

    python scripts/bench.py [TEXT] [--iters N] [--repeats R] [--configs C0,C1,...]
                            [--threads 1,0] [--torch] [--torch-python PATH]
                            [--torch-threads 1,2] [--json]

For each configuration of issue 5 (C0 to C3 below), the GRU of configs/shakespeare.yaml's
first version (C4), and C1 and C4 on a list of 100,000 short lines read as documents (C1L, C4L:
the state reset at every line; compare their train chars/s with C1's and C4's), in a fresh process of its own (so that its peak resident memory is that
configuration's): a few warm-up iterations, then N timed training iterations (forward,
backward, clipping to global norm 5, Adam) on batch_size x seq_length chunks of TEXT (default
../shared/data/tinyshakespeare.txt, else the built-in corpus), then 2,000 characters sampled at
batch 1, then 64 samples of 400 characters as one batch (`charrnn sample --num-samples 64`);
then, in another fresh process, the same model trained as `charrnn train` trains it
(charrnn.fit: the text read and cached, a quarter of N iterations, one validation, last.npz and
best.npz written). Reported, as the median over R repeats:

- train chars/s: batch_size x seq_length x N / seconds;
- sample chars/s: at batch 1; x64 chars/s: in total over the 64 samples;
- peak MB: the first process's peak resident memory (text, model, training and sampling);
  fit MB: the `charrnn train` process's (what a user sees), which the memory target is about;
- % peak: the matmul FLOPs charrnn performs per training character (forward plus backward, see
  flops_per_char) x train chars/s, over this machine's float32 matmul peak (the best of a few
  large square NumPy matmuls, measured before and after the configurations). PyTorch's column
  uses the dense count, the work its model does (charrnn's first layer does less: a one-hot
  table product instead of an H-wide input projection when the vocabulary is no wider than H).

Cores: charrnn runs once per --threads setting (its `threads` key; default 1 and 0, every core
the process may use), each a row of the table with the cores it computed on; its `shards` key is
the default (2) throughout, so both rows compute the same numbers. OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS are set to the setting (unset for 0).

With --torch, the same model in PyTorch (scripts/bench_torch.py, run by --torch-python, default
$TORCH_PYTHON or this interpreter) runs after each charrnn process, configuration by
configuration, alternating, once per --torch-threads count (torch.set_num_threads; default 1 and
2), the i-th beside charrnn's i-th --threads setting (1 thread beside threads=1; on a machine of
more than 2 cores, give e.g. --torch-threads 1,16 to compare every core with every core), and
the table gets PyTorch's figures and the ratios charrnn / PyTorch. PyTorch is never a dependency
of charrnn: install it in a throw-away environment,
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0
and pass --torch-python /tmp/torchenv/bin/python (bench_torch.py needs no NumPy). float32.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:   # bench_torch.py imports peak_rss_mb from here under torch's interpreter
    np = None

CONFIGS = {  # name: (model, hidden, layers, batch, seq_length)
    "C0": ("rnn", 100, 1, 1, 25),
    "C1": ("lstm", 128, 2, 32, 64),
    "C2": ("lstm", 256, 2, 50, 50),
    "C3": ("lstm", 512, 2, 64, 100),
    "C4": ("gru", 256, 2, 64, 100),      # configs/shakespeare.yaml's model
}
# the same models on a list: LIST_LINES short lines cut from TEXT (lengths 2 to 16, seeded: about
# the words of a dictionary), read as documents (--lines): the state reset at every line
LINES = {"C1L": "C1", "C4L": "C4"}
CONFIGS.update({name: CONFIGS[base] for name, base in LINES.items()})
LIST_LINES = 100_000
HERE = Path(__file__).resolve().parent
DEFAULT_TEXT = HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt"
THREADS = "1,0"           # charrnn's `threads` settings: one core, every core
TORCH_THREADS = "1,2"     # PyTorch's torch.set_num_threads, beside them


def train_iters(name, iters):
    """Timed iterations for a configuration: C0's are tiny, C3's big; each config runs for about
    a second or more, as this machine's timings vary from moment to moment."""
    name = LINES.get(name, name)
    return {"C0": iters * 100, "C1": iters * 4, "C2": iters, "C3": max(3, iters // 2),
            "C4": iters}[name]


def flops_per_char(cell, H, L, V, layer0_table):
    """Matmul FLOPs per training character, forward plus backward, counted as 2 x multiply-adds.

    The dense count (layer0_table False) is the model's textbook work and what PyTorch does:
    every layer's input projection (the first on an H-wide embedding), its recurrent projection,
    the output layer; backward twice forward (the gradient of the input and of the weight; the
    embedding's rows then get their input gradients by a scatter, no matmul). charrnn, when
    V <= min(H, N*T) (model.uses_table), replaces the first layer's input projection by a one-hot
    matmul with a (G, V) table, 2 G V forward and 2 G V backward per character (the (V, H) x
    (H, G) products per chunk are negligible).
    """
    from charrnn.layers import GATES   # here, not at the top: bench_torch imports this module

    G = GATES[cell] * H
    recurrent = 3 * 2 * H * G * L                     # forward, dh, dWh
    upper_inputs = 3 * 2 * H * G * (L - 1)            # forward, dx, dWx for layers 1 ..
    output = 3 * 2 * H * V
    first_input = 2 * 2 * G * V if layer0_table else 3 * 2 * H * G
    return recurrent + upper_inputs + output + first_input


def matmul_peak(sizes=(2048, 3072), repeats=5):
    """This machine's float32 matmul rate in FLOP/s: the best of a few square products."""
    rng = np.random.default_rng(0)
    best = 0.0
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty_like(a)
        np.matmul(a, b, out=out)
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start))
    return best


def peak_rss_mb():
    """This process's peak resident memory in MB: VmHWM, the high-water mark of its own address
    space (ru_maxrss can carry over the parent's size through fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- one configuration


def list_text(text):
    """LIST_LINES short lines of text (newlines made spaces), one per line: a list to train on
    as documents."""
    flat = text.replace("\n", " ")
    lengths = np.random.default_rng(0).integers(2, 17, LIST_LINES)
    starts = np.cumsum(lengths) - lengths
    return "\n".join(flat[a % (len(flat) - 16):a % (len(flat) - 16) + n]
                     for a, n in zip(starts.tolist(), lengths.tolist())) + "\n"


def worker(text_path, name, iters, threads):
    """charrnn on one configuration at one `threads` setting, in this process: prints a JSON
    object (with the cores it computed on)."""
    from charrnn.checkpoint import Checkpoint
    from charrnn.config import ModelConfig, TrainConfig
    from charrnn.data import Batches, Vocab, builtin_corpus, read_text
    from charrnn.documents import documents_from_text
    from charrnn.model import clip_grads, init_params, zero_state
    from charrnn.optim import FlatOptimizer, init_state
    from charrnn.parallel import Shards, loss_and_grads
    from charrnn.sample import SampleConfig, generate_samples, stream_chars

    cell, H, L, N, T = CONFIGS[name]
    text = read_text(text_path) if text_path else builtin_corpus()
    end = None
    if name in LINES:
        corpus = documents_from_text(list_text(text.text), "lines")
        vocab, ids, end = corpus.vocab, np.asarray(corpus.ids), corpus.end
    else:
        vocab = Vocab.from_text(text.text)
        ids = vocab.encode(text.text)
    del text
    V = len(vocab)
    rng = np.random.default_rng(0)
    params = init_params(cell, V, H, L, rng)
    opt = FlatOptimizer("adam", params, init_state("adam", params))
    batches = Batches(ids, N, T, end=end)
    state = zero_state(cell, L, N, H)
    warmup = 3
    train_cfg = TrainConfig(threads=threads)          # the default shards, as `charrnn train`
    with Shards(train_cfg.shards, train_cfg.threads) as shards:
        cores = shards.cores
        for k in range(warmup + iters):
            if k == warmup:
                start = time.perf_counter()
            x, y, new_pass = batches.chunk(k)
            if new_pass:
                state = zero_state(cell, L, N, H)
            _, grads, state = loss_and_grads(params, cell, x, y, state, shards=shards, end=end)
            clip_grads(grads, 5.0, "norm")
            opt.step(grads, 2e-3, k + 1)
    train_cps = N * T * iters / (time.perf_counter() - start)

    ckpt = Checkpoint(params=params, vocab=vocab, model_cfg=ModelConfig(cell, H, L),
                      train_cfg=train_cfg)
    n = 2000
    start = time.perf_counter()
    for _ in stream_chars(ckpt, vocab.chars[0], n, rng=np.random.default_rng(0)):
        pass
    sample_cps = n / (time.perf_counter() - start)
    cfg = SampleConfig(num_chars=400, num_samples=64)
    start = time.perf_counter()
    generate_samples(ckpt, vocab.chars[0], cfg, np.random.default_rng(0))
    batch_cps = 64 * 400 / (time.perf_counter() - start)
    peak_mb = peak_rss_mb()
    print(json.dumps({"train_cps": train_cps, "sample_cps": sample_cps, "batch_cps": batch_cps,
                      "peak_mb": peak_mb, "vocab_size": V, "cores": cores}))


def fit_worker(text_path, name, iters, threads):
    """`charrnn train` as a user runs it, in this process (charrnn.fit: the text read and cached,
    training, one validation, last.npz and best.npz written): prints its peak memory."""
    import tempfile

    import charrnn

    from charrnn.data import read_text

    cell, H, L, N, T = CONFIGS[name]
    with tempfile.TemporaryDirectory() as out:
        keys = {}
        if name in LINES:
            text_path = Path(out) / "list.txt"
            text_path.write_text(list_text(read_text(DEFAULT_TEXT).text), encoding="utf-8")
            keys["documents"] = "lines"
        summary = charrnn.fit(text_path, out=Path(out) / "run", model=cell, hidden_size=H,
                              num_layers=L, batch_size=N, seq_length=T, max_iters=iters,
                              eval_every=iters, rng_seed=0, threads=threads, **keys)
    print(json.dumps({"fit_peak_mb": peak_rss_mb(),
                      "fit_cps": summary["chars_per_second"]}))


def run_process(argv, threads):
    """Run argv with the BLAS thread variables set to threads (removed for 0: every core)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    if threads > 0:
        env.update(dict.fromkeys(names, str(threads)))
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, argv[:3]))} ... failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def charrnn_run(text_path, name, iters, threads, worker="--worker"):
    argv = [sys.executable, str(Path(__file__).resolve()), worker, name, "--iters", str(iters),
            "--threads", str(threads)]
    if text_path:
        argv.insert(2, str(text_path))
    return run_process(argv, threads)


def torch_run(torch_python, text_path, name, iters, threads):
    cell, H, L, N, T = CONFIGS[name]
    return run_process([torch_python, str(HERE / "bench_torch.py"), str(text_path), cell,
                        str(H), str(L), str(N), str(T), str(iters), str(threads)], threads)


def counts(parser, option, text, least):
    """A comma-separated list of thread counts, each >= least (parser.error otherwise)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < least:
        parser.error(f"{option} {text}: expected comma-separated integers >= {least}")
    return values


# --------------------------------------------------------------------------- the table


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    from charrnn.model import uses_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", type=Path)
    parser.add_argument("--iters", type=int, default=20,
                        help="timed training iterations, scaled per config (C0 x100, C1 x4, "
                             "C3 / 2: about a second or more each)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per config (median)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--threads", default=THREADS,
                        help="charrnn's threads settings, comma-separated, a row each (0: every "
                             f"core; default {THREADS})")
    parser.add_argument("--torch", action="store_true", help="also run the PyTorch reference")
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", sys.executable),
                        help="an interpreter that can import torch")
    parser.add_argument("--torch-threads", default=TORCH_THREADS,
                        help="PyTorch's thread counts, comma-separated, one beside each "
                             f"--threads setting (default {TORCH_THREADS})")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per config and threads setting")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--fit-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.text or (DEFAULT_TEXT if DEFAULT_TEXT.is_file() else None)
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs: {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    settings = counts(parser, "--threads", args.threads, 0)
    if args.worker:
        worker(path, args.worker, args.iters, settings[0])
        return
    if args.fit_worker:
        fit_worker(path, args.fit_worker, args.iters, settings[0])
        return
    torch_threads = counts(parser, "--torch-threads", args.torch_threads, 1)
    if args.torch and len(torch_threads) != len(settings):
        parser.error(f"--torch-threads {args.torch_threads}: one count beside each --threads "
                     f"setting ({args.threads})")
    if args.torch and path is None:
        parser.error("--torch needs a text file (the PyTorch script does not build the "
                     "built-in corpus)")
    if args.torch:
        try:
            check = subprocess.run([args.torch_python, "-c",
                                    "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True)
        except OSError as e:
            parser.error(f"--torch-python {args.torch_python}: {e.strerror}; it cannot import "
                         "torch")
        if check.returncode != 0:
            parser.error(f"--torch: {args.torch_python} cannot import torch; make a throw-away "
                         "environment: python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip "
                         "install torch==2.13.0, then --torch-python /tmp/torchenv/bin/python")
        torch_version = check.stdout.strip()

    peak = matmul_peak()
    pairs = list(zip(settings, torch_threads if args.torch else [None] * len(settings)))
    runs = {(name, t): {"charrnn": [], "torch": []} for name in names for t in settings}
    for rep in range(args.repeats):   # alternating: each config, charrnn then PyTorch, per cores
        for name in names:
            iters = train_iters(name, args.iters)
            for threads, torch_n in pairs:
                run = charrnn_run(path, name, iters, threads)
                if path is not None:     # the whole `charrnn train` process, as a user runs it
                    run.update(charrnn_run(path, name, max(2, iters // 4), threads,
                                           "--fit-worker"))
                runs[name, threads]["charrnn"].append(run)
                if torch_n is not None and name not in LINES:   # the twin has no documents
                    runs[name, threads]["torch"].append(
                        torch_run(args.torch_python, path, name, iters, torch_n))
            print(f"  repeat {rep + 1}/{args.repeats} {name} done", file=sys.stderr, flush=True)

    peak = max(peak, matmul_peak())   # measured before and after: the better of the two
    info = f"text: {path or 'built-in corpus'}; float32 matmul peak {peak / 1e9:.0f} GFLOP/s"
    if args.torch:
        info += f"; PyTorch {torch_version}"
    print(info + f"; medians of {args.repeats}; thr: charrnn's threads (0: every core), "
          "cores: the cores it computed on", file=sys.stderr if args.json else sys.stdout)
    header = (f"{'config':6} {'model':>5} {'H':>4} {'L':>2} {'N':>3} {'T':>4} {'thr':>3} "
              f"{'cores':>5} {'train/s':>8} {'% peak':>6} {'sample/s':>9} {'x64/s':>8} "
              f"{'MB':>5} {'fit MB':>6}")
    if args.torch:
        header += (f" | {'torch thr':>9} {'train/s':>8} {'% peak':>6} {'sample/s':>8} {'MB':>5} | "
                   f"{'train x':>7} {'sample x':>8} {'memory':>6} {'fit mem':>7}")
    if not args.json:
        print(header)
    for name in names:
        cell, H, L, N, T = CONFIGS[name]
        for threads, torch_n in pairs:
            row = _row(runs[name, threads], name, threads, torch_n, peak, uses_table)
            line = (f"{name:6} {cell:>5} {H:>4} {L:>2} {N:>3} {T:>4} {threads:>3} "
                    f"{row['cores']:>5} {row['train_cps']:>8,.0f} "
                    f"{100 * row['peak_fraction']:>5.0f}% {row['sample_cps']:>9,.0f} "
                    f"{row['batch_cps']:>8,.0f} {row['peak_mb']:>5.0f} "
                    f"{row.get('fit_peak_mb', float('nan')):>6.0f}")
            if "torch_train_cps" in row:
                line += (f" | {torch_n:>9} {row['torch_train_cps']:>8,.0f} "
                         f"{100 * row['torch_peak_fraction']:>5.0f}% "
                         f"{row['torch_sample_cps']:>8,.0f} "
                         f"{row['torch_peak_mb']:>5.0f} | {row['train_ratio']:>6.2f}x "
                         f"{row['sample_ratio']:>7.1f}x {row['memory_ratio']:>6.2f} "
                         f"{row.get('fit_memory_ratio', float('nan')):>7.2f}")
            print(json.dumps(row) if args.json else line, flush=True)


def _row(runs, name, threads, torch_n, peak, uses_table):
    """One config at one threads setting (and PyTorch beside it, if it ran): the medians, the
    share of the matmul peak and the ratios, as a dict."""
    cell, H, L, N, T = CONFIGS[name]
    ours = runs["charrnn"]
    row = {"config": name, "model": cell, "hidden": H, "layers": L, "batch": N,
           "seq_length": T, "threads": threads, "cores": median(ours, "cores")}
    row.update({k: median(ours, k) for k in ("train_cps", "sample_cps", "batch_cps",
                                             "peak_mb", "fit_peak_mb") if k in ours[0]})
    V = ours[0]["vocab_size"]
    row["matmul_peak_flops"] = peak
    row["flops_per_char"] = flops_per_char(cell, H, L, V, layer0_table=uses_table(V, H, N * T))
    row["model_flops_per_char"] = flops_per_char(cell, H, L, V, layer0_table=False)
    row["peak_fraction"] = row["train_cps"] * row["flops_per_char"] / peak
    theirs = runs["torch"]
    if theirs:
        row["torch_threads"] = torch_n
        for k in ("train_cps", "sample_cps", "peak_mb"):
            row["torch_" + k] = median(theirs, k)
        row["torch_peak_fraction"] = row["torch_train_cps"] * row["model_flops_per_char"] / peak
        row["train_ratio"] = row["train_cps"] / row["torch_train_cps"]
        row["sample_ratio"] = row["sample_cps"] / row["torch_sample_cps"]
        row["memory_ratio"] = row["peak_mb"] / row["torch_peak_mb"]
        if "fit_peak_mb" in row:
            row["fit_memory_ratio"] = row["fit_peak_mb"] / row["torch_peak_mb"]
    return row


if __name__ == "__main__":
    main()
