"""charrnn beside Karpathy's makemore on a word list (issue 17): the same training words, the same
1,000 held-out words, the same wall-clock budget, the same loss.

    python scripts/makemore_compare.py split [WORDLIST] --out DIR [--test 1000] [--seed 17]
    python scripts/makemore_compare.py patch MAKEMORE_PY PATCHED_PY
    python scripts/makemore_compare.py report RESULT.json ...

This script imports neither torch nor charrnn: it prepares the data, patches makemore and reads
the results. The steps (makemore in a throw-away environment; 2 threads everywhere):

    python3 -m venv /work/peers/venv && /work/peers/venv/bin/pip install torch==2.13.0
    git --git-dir=MIRROR show HEAD:makemore.py > /work/peers/makemore/makemore.py   # karpathy/makemore
    python scripts/makemore_compare.py split --out /work/peers/words
    python scripts/makemore_compare.py patch /work/peers/makemore/makemore.py /work/peers/makemore/mm.py
    for T in transformer gru; do
      /work/peers/venv/bin/python /work/peers/makemore/mm.py --type $T -n 0 --threads 2 \\
        -i /work/peers/words/train.txt --test-file /work/peers/words/test.txt \\
        --max-seconds 300 -o /work/peers/mm-$T > /work/peers/mm-$T.log
      tail -n 1 /work/peers/mm-$T.log > /work/peers/mm-$T.json
    done
    charrnn train /work/peers/words/train.txt --lines --time 5m --out /work/peers/charrnn-words
    charrnn eval --checkpoint /work/peers/charrnn-words /work/peers/words/test.txt --json \\
        > /work/peers/charrnn.json
    python scripts/makemore_compare.py report /work/peers/mm-*.json /work/peers/charrnn.json

split: the list's lines, stripped, empty ones dropped (makemore's own reading), permuted with
numpy.random.default_rng(SEED).permutation; the first TEST words are test.txt, the rest, in that
shuffled order, train.txt (shuffled so that a trainer holding out the last lines of train.txt for
validation does not hold out one end of the alphabet). Nothing is lowercased or filtered:
makemore's vocabulary is the set of characters in the words, apostrophes and accents included.

The loss, both sides: the mean over the test words of -ln p of each of a word's characters and
of its end mark (len(word) + 1 predictions a word, the first from the start token alone), summed
over the whole test set and divided by the number of predictions: nats per character, end marks
counted as characters. makemore's own evaluate() is not that: it averages the per-batch means
(each batch a mean over its own characters) over at most 11 random batches of 100 words.

patch: makemore.py with these changes, each checked to apply exactly once:
  - --test-file: train on -i as given and test on this file (no random split); the vocabulary
    and the block size (longest word + 1) come from both files, so ids agree;
  - --max-seconds: stop once the training loop has run that long (checked after each step);
  - --threads (default 2): torch.set_num_threads;
  - no periodic test evaluation, best-model saving on it, or samples during training (makemore
    evaluates on the test set every 500 steps and keeps the best model by it; here the last
    model is scored, and the whole budget goes to training); the log line every 10 steps stays;
  - at the end: the last model saved to OUT/model.pt, 10 samples printed, then one JSON line
    {"loss", "bits_per_char", "perplexity", "chars", "words", "steps", "train_seconds", ...}
    with the exact per-character test loss above (cross-entropy summed, reduction='sum');
  - torch.utils.tensorboard (which needs the tensorboard package) replaced by a no-op writer.
Otherwise makemore's defaults: transformer n_layer 4, n_embd 64, n_head 4 (GRU: n_embd 64,
n_embd2 64), batch 32, AdamW lr 5e-4, weight decay 0.01, betas (0.9, 0.99), seed 3407. Pass -n 0:
makemore's default is 4 data-loader worker processes, which would compete for the 2 cores.

report: for each JSON file (its last line that parses as a JSON object), its loss in nats and
bits per character.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

DEFAULT_LISTS = ("/usr/share/dict/american-english", "/usr/share/dict/words")

# (old, new) pairs applied to makemore.py, each old text expected exactly once.
PATCHES = [
    ("from torch.utils.tensorboard import SummaryWriter\n",
     "class SummaryWriter:  # patched: no tensorboard\n"
     "    def __init__(self, *a, **k): pass\n"
     "    def add_scalar(self, *a, **k): pass\n"
     "    def flush(self): pass\n"),
    ("def create_datasets(input_file):\n\n"
     "    # preprocessing of the input text file\n"
     "    with open(input_file, 'r') as f:\n"
     "        data = f.read()\n"
     "    words = data.splitlines()\n",
     "def read_words(path):  # patched: makemore's own reading, as a function\n"
     "    with open(path, 'r') as f:\n"
     "        return [w for w in (w.strip() for w in f.read().splitlines()) if w]\n\n"
     "def create_datasets(input_file, test_file=None):\n\n"
     "    # preprocessing of the input text file\n"
     "    with open(input_file, 'r') as f:\n"
     "        data = f.read()\n"
     "    words = data.splitlines()\n"
     "    if test_file:  # patched: the given split; vocabulary and block size from both files\n"
     "        words = read_words(input_file) + read_words(test_file)\n"),
    ("    rp = torch.randperm(len(words)).tolist()\n",
     "    if test_file:\n"
     "        test_set_size = len(read_words(test_file))\n"
     "    rp = torch.randperm(len(words)).tolist()\n"
     "    if test_file:\n"
     "        rp = list(range(len(words)))\n"),
    ("    args = parser.parse_args()\n",
     "    parser.add_argument('--test-file', type=str, default=None,\n"
     "                        help='patched: test on this file, train on -i')\n"
     "    parser.add_argument('--max-seconds', type=float, default=-1,\n"
     "                        help='patched: training wall-clock limit')\n"
     "    parser.add_argument('--threads', type=int, default=2, help='patched: torch.set_num_threads')\n"
     "    args = parser.parse_args()\n"
     "    torch.set_num_threads(args.threads)\n"),
    ("    train_dataset, test_dataset = create_datasets(args.input_file)\n",
     "    train_dataset, test_dataset = create_datasets(args.input_file, args.test_file)\n"),
    ("    best_loss = None\n    step = 0\n",
     "    best_loss = None\n    step = 0\n    t_start = time.time()\n"),
    ("        if step > 0 and step % 500 == 0:\n",
     "        if args.test_file is None and step > 0 and step % 500 == 0:\n"),
    ("        if step > 0 and step % 200 == 0:\n",
     "        if args.test_file is None and step > 0 and step % 200 == 0:\n"),
    ("        if args.max_steps >= 0 and step >= args.max_steps:\n            break\n",
     "        if args.max_steps >= 0 and step >= args.max_steps:\n            break\n"
     "        if args.max_seconds >= 0 and time.time() - t_start >= args.max_seconds:\n            break\n"
     "\n"
     "    # patched: the last model, scored exactly on the whole test set\n"
     "    train_seconds = time.time() - t_start\n"
     "    torch.save(model.state_dict(), os.path.join(args.work_dir, 'model.pt'))\n"
     "    model.eval()\n"
     "    total, count = 0.0, 0\n"
     "    with torch.inference_mode():\n"
     "        for X, Y in DataLoader(test_dataset, batch_size=100, shuffle=False):\n"
     "            logits, _ = model(X.to(args.device), Y.to(args.device))\n"
     "            Y = Y.to(args.device).view(-1)\n"
     "            total += F.cross_entropy(logits.view(-1, logits.size(-1)), Y, ignore_index=-1,\n"
     "                                     reduction='sum').item()\n"
     "            count += int((Y != -1).sum().item())\n"
     "    print_samples(num=10)\n"
     "    loss = total / count\n"
     "    import json\n"
     "    print(json.dumps({'loss': loss, 'bits_per_char': loss / math.log(2),\n"
     "                      'perplexity': math.exp(loss),\n"
     "                      'chars': count, 'words': len(test_dataset), 'steps': step,\n"
     "                      'train_seconds': round(train_seconds, 1), 'type': args.type,\n"
     "                      'params': sum(p.numel() for p in model.parameters()),\n"
     "                      'threads': torch.get_num_threads(), 'batch_size': args.batch_size}))\n"),
]


def read_words(path):
    """makemore's reading: the lines, stripped, empty ones dropped."""
    with open(path, encoding="utf-8") as f:
        return [w for w in (line.strip() for line in f.read().splitlines()) if w]


def write_lines(path, words):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in words))


def cmd_split(args):
    path = args.wordlist or next(p for p in DEFAULT_LISTS if os.path.exists(p))
    words = read_words(path)
    perm = np.random.default_rng(args.seed).permutation(len(words))
    test = [words[i] for i in perm[:args.test]]
    train = [words[i] for i in perm[args.test:]]
    os.makedirs(args.out, exist_ok=True)
    write_lines(os.path.join(args.out, "train.txt"), train)
    write_lines(os.path.join(args.out, "test.txt"), test)
    vocab = set("".join(words))
    unseen = sorted(set("".join(test)) - set("".join(train)))
    print(json.dumps({"list": os.path.realpath(path), "words": len(words), "train": len(train),
                      "test": len(test), "seed": args.seed, "vocab": len(vocab),
                      "chars": "".join(sorted(vocab)), "test_chars_not_in_train": "".join(unseen),
                      "max_len": max(map(len, words)),
                      "test_predictions": sum(len(w) + 1 for w in test)}, ensure_ascii=False))


def cmd_patch(args):
    with open(args.src, encoding="utf-8") as f:
        src = f.read()
    for old, new in PATCHES:
        n = src.count(old)
        if n != 1:
            sys.exit(f"patch: expected 1 copy of {old.splitlines()[0].strip()!r}, found {n}")
        src = src.replace(old, new)
    with open(args.dst, "w", encoding="utf-8") as f:
        f.write(src)
    print(f"wrote {args.dst}: {len(PATCHES)} changes")


def last_json(path):
    with open(path, encoding="utf-8") as f:
        for line in reversed(f.read().splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    sys.exit(f"report: no JSON object in {path}")


def cmd_report(args):
    for path in args.results:
        r = last_json(path)
        loss = r["loss"]
        extra = ", ".join(f"{k} {r[k]}" for k in ("type", "steps", "train_seconds", "params") if k in r)
        print(f"{path}: {loss:.4f} nats/char, {loss / math.log(2):.4f} bits/char"
              + (f" ({extra})" if extra else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (the file's head) for the full steps.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="write DIR/train.txt and DIR/test.txt from a word list")
    s.add_argument("wordlist", nargs="?", help="one word a line (default: %s)" % " or ".join(DEFAULT_LISTS))
    s.add_argument("--out", required=True, help="folder for train.txt and test.txt")
    s.add_argument("--test", type=int, default=1000, help="held-out words (default 1000)")
    s.add_argument("--seed", type=int, default=17, help="numpy default_rng seed (default 17)")
    s.set_defaults(func=cmd_split)
    s = sub.add_parser("patch", help="write a patched copy of makemore.py")
    s.add_argument("src", help="karpathy/makemore's makemore.py")
    s.add_argument("dst", help="where to write the patched copy")
    s.set_defaults(func=cmd_patch)
    s = sub.add_parser("report", help="print the loss in each result file")
    s.add_argument("results", nargs="+",
                   help="JSON: the patched makemore's output, or charrnn eval --json's")
    s.set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
