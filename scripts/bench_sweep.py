"""Sweeps: K `charrnn train` runs started at once against the same K runs one after another.

    python scripts/bench_sweep.py [TEXT] [--runs 4] [--repeats 3] [--iters 40]

Each run is a fresh `python -m charrnn train TEXT --json` process without --out (so the runs pick
their own default run directories, in a temporary working directory), a 2 x 256 LSTM at batch 50
and seq_length 50 for --iters iterations, as in issue 10. The ways of running them:

    one after another      K runs in turn, default settings
    at once                K runs started together, default settings (threads 0)
    at once, threads=1     K runs started together with --set threads=1
    at once, OPENBLAS=1    K runs started together with OPENBLAS_NUM_THREADS=1 in the environment

Each way is timed from the first start to the last exit; the ways alternate within each repeat,
and the table gives the median wall time of each over --repeats, and its ratio to one after
another. Every run's summary is checked: its own run directory, all iterations done.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
MODEL = ["model=lstm", "hidden_size=256", "num_layers=2", "batch_size=50", "seq_length=50"]
WAYS = ("one after another", "at once", "at once, threads=1", "at once, OPENBLAS=1")


def _command(text, iters, extra=()):
    sets = [*MODEL, f"max_iters={iters}", f"eval_every={iters}", *extra]
    return [sys.executable, "-m", "charrnn", "train", str(text), "--json",
            *[x for item in sets for x in ("--set", item)]]


def run_way(way, text, runs, iters):
    """Wall seconds for K runs in this way; checks each run's summary."""
    extra = ("threads=1",) if way == "at once, threads=1" else ()
    env = dict(os.environ)
    if way == "at once, OPENBLAS=1":
        env["OPENBLAS_NUM_THREADS"] = "1"
    command = _command(text, iters, extra)
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        if way == "one after another":
            results = [subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
                       for _ in range(runs)]
            outputs = [(r.returncode, r.stdout, r.stderr) for r in results]
        else:
            procs = [subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(runs)]
            outputs = [(p.wait(), *p.communicate()) for p in procs]
        seconds = time.perf_counter() - start
        dirs = set()
        for code, out, err in outputs:
            if code != 0:
                raise SystemExit(f"{way}: a run failed (exit {code}): {err.strip()[-500:]}")
            summary = json.loads(out)
            assert summary["iterations"] == iters, summary
            dirs.add(summary["run_dir"])
        assert len(dirs) == runs, f"{way}: {runs} runs shared {len(dirs)} run directories"
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", nargs="?", type=Path, default=SHAKESPEARE)
    parser.add_argument("--runs", type=int, default=4, help="runs per sweep (K)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=40, help="iterations per run")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    args = parser.parse_args(argv)
    if not args.text.is_file():
        raise SystemExit(f"{args.text}: no such file (give a text)")
    times = {way: [] for way in args.ways}
    for r in range(args.repeats):
        for way in args.ways:
            times[way].append(run_way(way, args.text, args.runs, args.iters))
            print(f"repeat {r + 1}: {way}: {times[way][-1]:.1f} s", file=sys.stderr)
    base = statistics.median(times[args.ways[0]])
    print(f"{args.runs} runs of a 2 x 256 LSTM (batch 50, seq_length 50, {args.iters} "
          f"iterations) on {len(os.sched_getaffinity(0))} cores; medians of {args.repeats}")
    print("| way | wall s (median) | all | vs " + args.ways[0] + " |")
    print("|---|---|---|---|")
    for way in args.ways:
        med = statistics.median(times[way])
        print(f"| {way} | {med:.1f} | {', '.join(f'{t:.1f}' for t in times[way])} | "
              f"{med / base:.2f} |")


if __name__ == "__main__":
    main()
