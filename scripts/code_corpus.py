"""A large text of source code, made from the Python files of this machine's Python installation,
for trying charrnn's defaults (and the n-gram baseline) on tens of megabytes.

    python scripts/code_corpus.py --mb 50 -o /tmp/code50.txt

Takes every .py file under the standard library's directory (its site-packages included) that is
ASCII, not under a directory or file named like a test, and not a codec table (encodings/);
drops files whose bytes repeat another's; puts them in an order shuffled with --seed (so that the
held-out last part of the text is not one package's); and writes them one after another, each
after a line `# file: <relative path>`, until --mb megabytes. The same Python installation and
seed give the same text.
"""

import argparse
import hashlib
import random
import sys
import sysconfig
from pathlib import Path


def source_files(root):
    seen, files = set(), []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "test" in str(rel).lower() or "encodings" in rel.parts:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest = hashlib.sha256(data).digest()
        if data.isascii() and digest not in seen:
            seen.add(digest)
            files.append((rel, data))
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the text, in MB")
    parser.add_argument("--seed", type=int, default=0, help="the files' shuffled order")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    root = Path(sysconfig.get_paths()["stdlib"])
    files = source_files(root)
    random.Random(args.seed).shuffle(files)
    limit = int(args.mb * 1e6)
    written = 0
    with open(args.output, "wb") as out:
        for rel, data in files:
            piece = f"# file: {rel}\n".encode() + data + (b"" if data.endswith(b"\n") else b"\n")
            piece = piece[:limit - written]
            out.write(piece)
            written += len(piece)
            if written >= limit:
                break
    print(f"{args.output}: {written:,} bytes from {root}", file=sys.stderr)
    if written < limit:
        print(f"note: only {written / 1e6:.1f} MB of sources here", file=sys.stderr)


if __name__ == "__main__":
    main()
