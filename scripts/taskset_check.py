"""The speed-up of a second core, and the same bits on one core or two: `charrnn train` under
taskset -c A and taskset -c A,B, alternating.

    python scripts/taskset_check.py [TEXT] [--repeats N] [--cpus A,B] [--set KEY=VALUE ...]
                                    [--json]

Each repeat trains the same short run (the same config and --rng-seed, `threads` left at 0:
every core the process may use) twice, in a fresh process each: on CPU A alone, then on A and
B, and the next repeat in the other order, so that a machine that speeds up or slows down
during the check weighs on both alike. It prints the median training chars/s of each (the
summary's chars_per_second: iterations x batch_size x seq_length over the training time,
checkpoints included) and their ratio, and whether every run's last.npz holds bit-identical
parameters (it must: the numbers depend on the `shards` key, never on the cores). Exits 1 when
they differ.

The default run, an LSTM of 2 x 256 units at batch 64 (two shards of 32 streams), 60
iterations and one validation of 1 % of the text, takes a few seconds a run; give more iterations (--set max_iters=200) for steadier
figures. TEXT defaults to ../shared/data/tinyshakespeare.txt, else the built-in corpus. Every run
registers among peers of its own (a private temporary directory: cores.py), so it computes on the
CPUs taskset gives it, whatever other charrnn processes do; run it on an otherwise idle machine,
as other work on A or B slows either side.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_TEXT = HERE.parents[1] / "shared" / "data" / "tinyshakespeare.txt"
DEFAULT_SETS = ("model=lstm", "hidden_size=256", "num_layers=2", "batch_size=64",
                "seq_length=50", "max_iters=60", "eval_every=60", "val_frac=0.01", "shards=2")


def train(cpus, text, sets, out, scratch):
    """`charrnn train` on these CPUs (taskset -c), its summary (train --json)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["TMPDIR"] = str(scratch)          # peers of its own: the CPUs are what taskset gives
    argv = ["taskset", "-c", ",".join(map(str, cpus)), sys.executable, "-m", "charrnn",
            "train", *([str(text)] if text else []), "--out", str(out), "--rng-seed", "0",
            "--json"]
    for item in sets:
        argv += ["--set", item]
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"taskset_check: charrnn train on CPUs {cpus} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def params(run_dir):
    from charrnn.checkpoint import load_checkpoint

    return load_checkpoint(Path(run_dir) / "last.npz").params


def same_bits(a, b):
    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=5, help="runs on each side (median)")
    parser.add_argument("--cpus", help="the two CPUs A,B (default: the first two this process "
                                       "may run on)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key for the run, over the defaults: "
                             + " ".join(DEFAULT_SETS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        parser.error("taskset (util-linux) is not installed")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    mine = sorted(os.sched_getaffinity(0))
    try:
        pair = [int(c) for c in args.cpus.split(",")] if args.cpus else mine[:2]
    except ValueError:
        pair = []
    if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(mine):
        parser.error(f"--cpus: two different CPUs of this process's {mine} are needed, "
                     f"got {args.cpus or pair}")
    text = args.text or (DEFAULT_TEXT if DEFAULT_TEXT.is_file() else None)
    sets = [*DEFAULT_SETS, *args.sets]
    sides = {"one": pair[:1], "two": pair}
    speeds = {side: [] for side in sides}
    first, same = None, True
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(args.repeats):
            order = ("one", "two") if rep % 2 == 0 else ("two", "one")
            for side in order:
                out = Path(scratch) / f"{side}-{rep}"
                summary = train(sides[side], text, sets, out, scratch)
                speeds[side].append(summary["chars_per_second"])
                weights = params(out)
                first = weights if first is None else first
                same = same and same_bits(first, weights)
                shutil.rmtree(out)
                print(f"  repeat {rep + 1}/{args.repeats}: CPUs {sides[side]}: "
                      f"{summary['chars_per_second']:,.0f} chars/s", file=sys.stderr, flush=True)
    one, two = (statistics.median(speeds[side]) for side in ("one", "two"))
    report = {"cpus_one": sides["one"], "cpus_two": sides["two"], "repeats": args.repeats,
              "sets": sets, "chars_per_second_one": one, "chars_per_second_two": two,
              "speedup": two / one, "same_bits": same, "runs_one": speeds["one"],
              "runs_two": speeds["two"]}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"taskset -c {pair[0]}: {one:,.0f} chars/s; taskset -c {pair[0]},{pair[1]}: "
              f"{two:,.0f} chars/s (medians of {args.repeats}); speed-up {two / one:.2f}x; "
              f"parameters {'bit-identical' if same else 'DIFFERENT'} in all "
              f"{2 * args.repeats} runs")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
