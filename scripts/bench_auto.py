"""charrnn's own choices on a text, beside the best character n-gram model of the same split.

    python scripts/bench_auto.py [TEXT ...] [--time 10m] [--rng-seed 0] [--set KEY=VALUE ...]
                                 [--keep DIR] [--json]

For each TEXT (`builtin`, or no TEXT at all, for the built-in corpus), in turn:

1. `python -m charrnn train TEXT --json --rng-seed N` (with `--time` when given: without it this
   is the plain command, whose default budget charrnn chooses; with `--set` keys passed on) in a
   fresh process, timed from start to exit, with that process's peak resident memory;
2. the best of the interpolated Witten-Bell and modified Kneser-Ney models of orders 3 to 7
   (scripts/ngram.py's best_ngram) counted on the same training part and scored on the same
   held-out part: the text read as charrnn reads it, split at the val_frac the run used (its
   summary's config), contexts reaching back into the training part.

Prints one row per text (or with --json one object per text): the model charrnn chose, the
iterations it ran, the wall-clock seconds and peak MB of the training process, its best
validation loss, the n-gram's, and charrnn's minus the n-gram's (negative: charrnn better). The
runs go to a temporary directory, or under --keep DIR (one per text) to keep them. Run it on an
otherwise idle machine: the plain command sizes its model from timed iterations.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ngram import METHOD_NAMES, best_ngram  # noqa: E402


def train(text, out, seconds, seed, sets):
    """The training process's summary, wall seconds and peak MB (os.wait4's rusage)."""
    command = [sys.executable, "-m", "charrnn", "train", *([] if text is None else [str(text)]),
               "--json", "--rng-seed", str(seed), "--out", str(out)]
    if seconds:
        command += ["--time", seconds]
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        with proc.stdout:
            stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"bench_auto: charrnn train {text or ''} exited {code}: "
                     f"{err.read().strip().splitlines()[-1:]}")
    return json.loads(stdout), wall, usage.ru_maxrss / 1024


def compare(text, out, seconds, seed, sets):
    """One text's row: charrnn's run and the best n-gram of its split."""
    from charrnn.data import load_corpus, split_train_val

    summary, wall, peak = train(text, out, seconds, seed, sets)
    cfg = summary["config"]
    corpus = load_corpus(text)
    ids_train, ids_val = split_train_val(corpus.ids, cfg["val_frac"])
    ngram = best_ngram(ids_train, ids_val, len(corpus.vocab))["best"]
    return {"text": "builtin" if text is None else str(text), "n_chars": len(corpus.ids),
            "vocab_size": len(corpus.vocab), "n_val": len(ids_val),
            "model": f"{cfg['model']} {cfg['num_layers']}x{cfg['hidden_size']}",
            "dropout": cfg["dropout"], "time": cfg["time"], "iterations": summary["iterations"],
            "wall_seconds": round(wall, 1), "peak_mb": round(peak), "notes": summary["notes"],
            "best_val_loss": summary["best_val_loss"], "ngram": ngram,
            "difference": summary["best_val_loss"] - ngram["loss"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", default=["builtin"],
                        help="UTF-8 text files; builtin: the built-in corpus (the default)")
    parser.add_argument("--time", help="a budget for every run (default: charrnn's choice)")
    parser.add_argument("--rng-seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a charrnn config key for every run; repeatable")
    parser.add_argument("--keep", type=Path, help="keep the runs under this directory")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")
    args = parser.parse_args(argv)
    if not args.json:
        print(f"{'text':24} {'chars':>11} {'model':>10} {'drop':>4} {'iters':>6} {'wall s':>7} "
              f"{'MB':>5} {'charrnn':>8} {'n-gram':>8} {'diff':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for i, name in enumerate(args.texts):
            text = None if name == "builtin" else Path(name)
            row = compare(text, root / f"{i}-{Path(name).stem}", args.time, args.rng_seed,
                          args.sets)
            if args.json:
                print(json.dumps(row), flush=True)
                continue
            g = row["ngram"]
            print(f"{Path(row['text']).name[:24]:24} {row['n_chars']:>11,} {row['model']:>10} "
                  f"{row['dropout']:>4g} {row['iterations']:>6,} {row['wall_seconds']:>7.1f} "
                  f"{row['peak_mb']:>5,} {row['best_val_loss']:>8.4f} {g['loss']:>8.4f} "
                  f"{row['difference']:>+7.4f}   ({METHOD_NAMES[g['method']]}, order "
                  f"{g['order']})", flush=True)


if __name__ == "__main__":
    main()
