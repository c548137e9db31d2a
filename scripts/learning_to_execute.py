"""Learning to Execute data: short Python programs and the number each one prints.

    python scripts/learning_to_execute.py --length 4 --nesting 2 --curriculum combined \\
        --current-length 2 --current-nesting 1 --split train -n 10000 --seed 0 -o train.txt
    python scripts/learning_to_execute.py --task addition --length 9 --split test -n 1000
    python scripts/learning_to_execute.py --print-vocab

Zaremba and Sutskever, "Learning to Execute" (arXiv 1410.4615). The grammar, the curricula and
the split follow the authors' Lua code, github.com/wojciechz/learning_to_execute at commit 04a1659
(data.lua: compose, get_operand(s), to_data, get_data; utils/operations.lua: the six operations;
utils/strategies.lua: the curricula and make_harder; utils/variablesManager.lua: variable names;
utils/utils.lua: str_hash, torch.random; main.lua: which level each split is drawn at). The
addition task is not in that code; it follows the paper's description. Written from reading
them; no code is copied. Standard library only.

One line per sample, `program@result.`: the program's newlines written as `#`, `@` between the
program and what it prints, `.` after it; from `--length 4 --nesting 2 --seed 1`:

    a=1769;#h=(a-8331);#print((h-6071))@-12633.
    b=7551#for x in range(2):b+=(622-9187)#print(b)@-9579.

The grammar. A level is (L, N): L bounds the literals, N is the nesting. A program is N
operations, each drawn uniformly from the six below; each takes the previous operation's
expression as one of its operands (at a uniformly random position among them), and every other
operand is a fresh literal, uniform in [1, 10^L] (both ends included, so 10^L itself, with L + 1
digits, comes up once in 10^L draws, as in the reference's torch.random(10^L)). The program
prints the last operation's expression. With `a`, `b`, ... operands, v a fresh variable (a
random letter of a..j, never reused in a program) and k uniform in [1, 4L]:

| operation  | code lines it adds               | its expression       | chance of each form |
|------------|----------------------------------|----------------------|---------------------|
| pair       |                                  | (a+b) or (a-b)       | 1/2 each            |
| smallmul   |                                  | (a*k) or (k*a)       | 1/2 each            |
| equality   |                                  | a (no new operation) |                     |
| vars       | v=a;                             | (v+b) or (v-b)       | 1/2 each            |
| small_loop | v=a / for x in range(k):v+=b     | v                    | += or -=, 1/2 each  |
| ifstat     |                                  | (c if a>b else d)    | > or <, 1/2 each    |

So the expression tree is at most N deep (equality adds no depth), results may be negative, and
the code lines keep their reference forms (`v=a;` with its semicolon, the loop variable `x`).

Curricula (utils/strategies.lua). The reference calls its "hardness" function once per program
for N and once more for every L it needs (each literal, each k), so under mix and combined the
literals of one program may have different lengths. draw_level is that function:

- baseline: always the target (L, N);
- naive: always the current level; next_level raises it as make_harder does, L first and then N:
  (1, 1), (2, 1), ..., (L, 1), (1, 2), ..., (L, N) (schedule lists them);
- mix: L uniform in [1, target L] and N uniform in [1, target N], independently, at every call;
- combined (the reference's "blend"): at every call, with chance 1/5 a mix draw, else the
  current level.

In main.lua the training set follows the chosen curriculum, the validation set is always drawn
at the current level (naive) and the test set at the target (baseline); the current level starts
at (1, 1) and is raised when validation accuracy (teacher-forced, per character of the result
and its end mark) passes 95 %, or when the training accuracy is lower than five evaluations
before; at the last level the learning rate is multiplied by 0.8 instead, and training stops
below 1e-3. Model: 2 x 400 LSTM, uniform init ±0.08, SGD at 0.5, gradient norm clipped at 5,
batch 100, 50 steps, samples packed back to back in each stream, hidden state carried across.
Data: 100 streams of 10,000 characters for training, regenerated (seed + 1) after each pass
(200 steps) and at each level change; 100 x 500 for validation and for test; an evaluation
every 100 steps. The loss and accuracy count only the characters after `@`, the `.` included.

Addition (the paper's task): `print(a+b)`, a and b uniform in [10^(L-1), 10^L - 1] (both exactly
L digits: the paper adds two numbers of the same length). L comes from one draw_level call
per sample; the nesting must be 1.

Labels. Each Sample carries the level it was drawn at: N as drawn, and L the largest length
drawn while building it (exact under baseline and naive; under mix and combined the literals may
be shorter). With labels=True (--labels), a line is `L<TAB>N<TAB>program@result.`; a training
file is written without them. The same seed gives the same samples in the same order either way,
and parse_line reads both forms.

Splits (data.lua get_data). Samples are drawn one after another from one seeded random.Random;
a sample is kept only if the SHA-256 of its unlabelled line, as an integer mod 3, is 0 (train),
1 (val) or 2 (test), so the three splits never share a sample (the reference: str_hash mod 3).
A split may repeat a sample, as in the reference (small levels have few distinct programs).

Vocabulary. VOCAB holds every character a line can contain, for both tasks; a file adds only
the newline after each line (and, with labels, the tab). --print-vocab writes VOCAB and a
newline, so the distinct characters of that output are those of any unlabelled file, at every
curriculum stage.
"""

import argparse
import hashlib
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

TASKS = ("program", "addition")
CURRICULA = ("baseline", "naive", "mix", "combined")
SPLITS = ("train", "val", "test")
OPERATIONS = ("pair", "smallmul", "equality", "vars", "small_loop", "ifstat")
VARIABLES = "abcdefghij"                # the reference's torch.randperm(10) + 'a' - 1
MAX_NESTING = len(VARIABLES)            # vars and small_loop each take a fresh variable
NEWLINE, SEPARATOR, END = "#", "@", "."
VOCAB = " #()*+-.0123456789:;<=>@abcdefghijlnoprstx"   # sorted by code point; see the docstring
COMBINED_MIX_CHANCE = 0.2               # blend(): random(5) == 1 takes a mix draw


@dataclass(frozen=True)
class Sample:
    program: str            # Python source, lines separated by "\n"
    result: int             # what the program prints
    length: int             # L: the largest literal length drawn for it
    nesting: int            # N: the nesting drawn for it
    operations: tuple = ()  # the operations composed, in order


def check_levels(task, target, current=(1, 1)):
    """Raise ValueError unless target and current are valid (L, N) levels for the task."""
    for name, (length, nesting) in (("target", target), ("current", current)):
        if length < 1 or nesting < 1:
            raise ValueError(f"{name} length and nesting must be >= 1, got ({length}, {nesting})")
        if nesting > MAX_NESTING:
            raise ValueError(f"{name} nesting must be <= {MAX_NESTING} (one variable of "
                             f"{VARIABLES[0]}..{VARIABLES[-1]} per operation), got {nesting}")
        if task == "addition" and nesting != 1:
            raise ValueError(f"the addition task has no nesting: {name} nesting must be 1, "
                             f"got {nesting}")
    if current[0] > target[0] or current[1] > target[1]:
        raise ValueError(f"current level {tuple(current)} is beyond the target {tuple(target)}")


def draw_level(rng, curriculum, target, current=(1, 1)):
    """One call of the reference's hardness function: the (L, N) the curriculum hands out."""
    if curriculum == "baseline":
        return tuple(target)
    if curriculum == "naive":
        return tuple(current)
    if curriculum not in CURRICULA:
        raise ValueError(f"unknown curriculum {curriculum!r}; known: {', '.join(CURRICULA)}")
    if curriculum == "mix" or rng.random() < COMBINED_MIX_CHANCE:
        return rng.randint(1, target[0]), rng.randint(1, target[1])
    return tuple(current)


def next_level(current, target):
    """The level after `current` on the naive schedule (make_harder), or None at the target."""
    length, nesting = current
    if length < target[0]:
        return length + 1, nesting
    if nesting < target[1]:
        return 1, nesting + 1
    return None


def schedule(target):
    """Every level the naive curriculum visits, in order: [(1, 1), (2, 1), ..., target]."""
    levels = [(1, 1)]
    while (level := next_level(levels[-1], target)) is not None:
        levels.append(level)
    return levels


class _Composer:
    """Builds one program, keeping the value of every expression beside its text (data.lua's
    compose, with utils/operations.lua's operations as methods)."""

    def __init__(self, rng, draw):
        self.rng = rng
        self.draw = draw                                 # () -> (L, N)
        self.variables = iter(rng.sample(VARIABLES, len(VARIABLES)))
        self.stacked = None                              # (text, value) of the last operation
        self.lengths = []

    def length(self):
        length = self.draw()[0]
        self.lengths.append(length)
        return length

    def operand(self):
        if self.stacked is not None:
            operand, self.stacked = self.stacked, None
            return operand
        value = self.rng.randint(1, 10 ** self.length())
        return str(value), value

    def operands(self, count):
        # the previous expression (drawn first) lands at a random position, as torch.randperm
        drawn = [self.operand() for _ in range(count)]
        self.rng.shuffle(drawn)
        return drawn

    def coin(self):
        return self.rng.random() < 0.5

    def pair(self):
        (a, av), (b, bv) = self.operands(2)
        if self.coin():
            return [], f"({a}+{b})", av + bv
        return [], f"({a}-{b})", av - bv

    def smallmul(self):
        a, av = self.operand()
        k = self.rng.randint(1, 4 * self.length())
        text = f"({a}*{k})" if self.coin() else f"({k}*{a})"
        return [], text, av * k

    def equality(self):
        a, av = self.operand()
        return [], a, av

    def vars(self):
        v = next(self.variables)
        (a, av), (b, bv) = self.operands(2)
        if self.coin():
            return [f"{v}={a};"], f"({v}+{b})", av + bv
        return [f"{v}={a};"], f"({v}-{b})", av - bv

    def small_loop(self):
        v = next(self.variables)
        (a, av), (b, bv) = self.operands(2)
        k = self.rng.randint(1, 4 * self.length())
        # v=a, then k times v+=b (or v-=b)
        op, value = ("+", av + k * bv) if self.coin() else ("-", av - k * bv)
        return [f"{v}={a}", f"for x in range({k}):{v}{op}={b}"], v, value

    def ifstat(self):
        (a, av), (b, bv), (c, cv), (d, dv) = self.operands(4)
        if self.coin():
            return [], f"({c} if {a}>{b} else {d})", cv if av > bv else dv
        return [], f"({c} if {a}<{b} else {d})", cv if av < bv else dv


def generate_program(rng, draw):
    """One program sample. rng: random.Random; draw: () -> (L, N), called once for N and once
    per literal length and per small constant's bound, e.g. lambda: draw_level(rng, ...)."""
    nesting = draw()[1]
    composer = _Composer(rng, draw)
    code, names = [], []
    for _ in range(nesting):
        name = rng.choice(OPERATIONS)
        lines, text, value = getattr(composer, name)()
        code += lines
        names.append(name)
        composer.stacked = text, value
    text, value = composer.stacked
    program = "\n".join(code + [f"print({text})"])
    return Sample(program, value, max(composer.lengths), nesting, tuple(names))


def generate_addition(rng, draw):
    """One addition sample, `print(a+b)` with a and b of exactly L digits; draw as above."""
    length = draw()[0]
    a, b = (rng.randint(10 ** (length - 1), 10 ** length - 1) for _ in range(2))
    return Sample(f"print({a}+{b})", a + b, length, 1, ("addition",))


def format_line(sample, labels=False):
    """`program@result.` (newlines as #), or with labels `L<TAB>N<TAB>program@result.`."""
    line = f"{sample.program.replace(chr(10), NEWLINE)}{SEPARATOR}{sample.result}{END}"
    return f"{sample.length}\t{sample.nesting}\t{line}" if labels else line


def parse_line(line):
    """Inverse of format_line: (program with "\\n" newlines, result, (L, N) or None)."""
    *label, text = line.rstrip("\n").split("\t")
    program, result = text.split(SEPARATOR)
    if not result.endswith(END):
        raise ValueError(f"no {END!r} after the result: {line!r}")
    level = (int(label[0]), int(label[1])) if label else None
    return program.replace(NEWLINE, "\n"), int(result[:-1]), level


def split_of(line):
    """"train", "val" or "test": SHA-256 of the unlabelled line, as an integer, mod 3."""
    digest = hashlib.sha256(line.encode("ascii")).digest()
    return SPLITS[int.from_bytes(digest[:8], "big") % len(SPLITS)]


def generate(n, split="train", seed=0, task="program", curriculum="baseline", target=(1, 1),
             current=(1, 1)):
    """n samples of the split, drawn from random.Random(seed); raises ValueError on bad levels."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if curriculum not in CURRICULA:
        raise ValueError(f"unknown curriculum {curriculum!r}; known: {', '.join(CURRICULA)}")
    check_levels(task, target, current)
    rng = random.Random(seed)
    make = generate_program if task == "program" else generate_addition
    samples, tries = [], 0
    while len(samples) < n:
        sample = make(rng, lambda: draw_level(rng, curriculum, target, current))
        if split_of(format_line(sample)) == split:
            samples.append(sample)
        tries += 1
        if tries > 1000 + 100 * n:      # a third of all samples land in each split
            raise ValueError(f"no {split} samples after {tries} draws")
    return samples


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _write_atomically(path, text):
    # a temporary name beside it, then a rename: a reader never sees half a file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default="program",
                        help="programs, or the addition of two L-digit numbers (default program)")
    parser.add_argument("--length", type=_positive_int, help="target L: digits per literal")
    parser.add_argument("--nesting", type=_positive_int, default=1,
                        help=f"target N: operations per program, <= {MAX_NESTING} (default 1)")
    parser.add_argument("--curriculum", choices=CURRICULA, default="baseline",
                        help="how each sample's level is drawn (default baseline)")
    parser.add_argument("--current-length", type=_positive_int, default=1,
                        help="naive and combined: the current L (default 1)")
    parser.add_argument("--current-nesting", type=_positive_int, default=1,
                        help="naive and combined: the current N (default 1)")
    parser.add_argument("--split", choices=SPLITS, default="train", help="(default train)")
    parser.add_argument("-n", "--n", type=_positive_int, default=1000,
                        help="samples to write (default 1000)")
    parser.add_argument("--seed", "--rng-seed", dest="seed", type=int, default=0,
                        help="seed of the random generator (default 0)")
    parser.add_argument("--labels", action="store_true",
                        help="prefix each line with L<TAB>N<TAB>, for per-level evaluation")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    parser.add_argument("--print-vocab", action="store_true",
                        help="print every character a line can hold, then a newline, and exit")
    args = parser.parse_args(argv)
    if args.print_vocab:
        sys.stdout.write(VOCAB + "\n")
        return
    if args.length is None:
        parser.error("--length is required")
    target = (args.length, args.nesting)
    current = (args.current_length, args.current_nesting)
    try:
        samples = generate(args.n, args.split, args.seed, args.task, args.curriculum, target,
                           current)
    except ValueError as e:
        parser.error(str(e))
    text = "".join(format_line(s, args.labels) + "\n" for s in samples)
    if args.output is None:
        sys.stdout.write(text)
        return
    try:
        _write_atomically(args.output, text)
    except OSError as e:
        parser.exit(1, f"{parser.prog}: error: cannot write {args.output}: {e.strerror}\n")
    print(f"wrote {len(samples)} {args.split} samples to {args.output} ({args.task}, "
          f"{args.curriculum}, target L={target[0]} N={target[1]}, current L={current[0]} "
          f"N={current[1]}, seed {args.seed})", file=sys.stderr)


if __name__ == "__main__":
    main()
