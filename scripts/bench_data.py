"""Large texts: encoding speed and the peak memory of `charrnn train --dry-run`.

    python scripts/bench_data.py [TEXT] [--size-mb 1000]

Without TEXT it writes a temporary file of about --size-mb megabytes (tinyshakespeare repeated,
or the built-in corpus when tinyshakespeare is absent), then reports:
- building the vocabulary and encoding into a memory-mapped .npy (charrnn.data.load_corpus),
  in MB/s of UTF-8 input;
- the peak resident memory of `charrnn train TEXT --dry-run` run as a child process.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn.data import builtin_bytes, load_corpus

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def make_text(path, size_mb):
    unit = SHAKESPEARE.read_bytes() if SHAKESPEARE.is_file() else builtin_bytes()
    target = size_mb * 1_000_000
    with open(path, "wb") as f:
        written = 0
        while written < target:
            f.write(unit)
            written += len(unit)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", type=Path)
    parser.add_argument("--size-mb", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.text
        if path is None:
            path = Path(tmp) / "big.txt"
            make_text(path, args.size_mb)
        size = path.stat().st_size
        start = time.perf_counter()
        corpus = load_corpus(path, cache=Path(tmp) / "ids.npy")
        seconds = time.perf_counter() - start
        print(f"text: {path} ({size / 1e6:,.0f} MB, {len(corpus.ids):,} characters, "
              f"vocabulary {len(corpus.vocab)}, ids {corpus.ids.dtype})")
        print(f"vocabulary + encoding: {seconds:.1f} s, {size / 1e6 / seconds:.1f} MB/s")
        del corpus
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "charrnn", "train", str(path), "--dry-run"],
                                capture_output=True, text=True)
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"charrnn train --dry-run: exit {result.returncode}, {seconds:.1f} s, peak resident "
              f"memory {peak_mb:,.0f} MB")
        print("\n".join("  " + line for line in result.stdout.splitlines()))
        if result.returncode:
            print(result.stderr, file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
