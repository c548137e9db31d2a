"""Learning to Execute, trained through a curriculum in one command (issue 13, item 4).

    python scripts/learning_to_execute_run.py --length 4 --nesting 2 --out runs/l2e-4-2 --time 12h
    python scripts/learning_to_execute_run.py --task addition --length 2 --out runs/add-2 \\
        --set hidden_size=128 --max-iters 3000

Zaremba and Sutskever, "Learning to Execute" (arXiv 1410.4615), as the authors' main.lua runs it
(github.com/wojciechz/learning_to_execute at commit 04a1659), with charrnn doing the training and
scripts/learning_to_execute.py making the data. Written from reading that code; none is copied.

The model and optimizer default to the paper's, charrnn's preset learning-to-execute.yaml: a 2 x
400 LSTM, SGD at 0.5 without momentum, the gradient's global norm clipped at 5, batch 100, 50
steps (`--config` and `--set` change any charrnn key over it; completion is always "@." and vocab
the generator's VOCAB and a newline, so every stage of the curriculum shares one vocabulary).
charrnn initialises as it always does (see docs/model.md), not uniformly in +-0.08 as
the reference.

The run, in rounds of --round-iters iterations (100: the reference evaluates every 100 steps):

1. a training text for the round is drawn at the current level under --curriculum (combined
   by default: the reference's "blend"), enough lines for the round's iterations (plus the
   val_frac that charrnn holds out), from a seed of its own per round: the text is regenerated
   every round (the reference regenerates it after each pass of 200 steps and at each level
   change);
2. charrnn trains on it for the round: the first round starts the run (`charrnn.fit(...,
   out=...)`), every later one continues it with `charrnn.fit(..., resume=RUN, new_text=True)`:
   the weights, the optimizer state, the RNG and the iteration count carry on, the new text is
   read from its beginning with the hidden state reset (the reference, too, starts its streams
   afresh on new data);
3. the model is scored on a validation text drawn at the current level (the "val" split, naive
   curriculum: regenerated at each level change, like the reference's): teacher-forced accuracy
   per character of the results and their end marks, and greedy exact match per line
   (charrnn.score(..., accuracy=True));
4. the level is raised (scripts/learning_to_execute.py's next_level: L first, then N) when the
   teacher-forced accuracy passes --threshold (0.95), or when it is lower than --patience (5)
   evaluations before at this level (the reference compares training accuracy there, which
   charrnn does not measure; validation accuracy stands in). At the target level the learning
   rate is multiplied by --decay (0.8) instead, and the run ends when it falls below --min-lr
   (1e-3), as in the reference;
5. it also ends when --max-iters iterations are done, or when the next round would not fit in
   --time (judged by the last round's duration).

Finally the last model (last.npz: best.npz follows validation loss, whose text changes) is scored
on a test text at the target level (the "test" split, baseline curriculum, labelled). On stderr,
a line per round (level, iterations, validation accuracy, learning rate, time) and a line per
level change; on stdout, a JSON summary: run_dir, task, target, curriculum, iterations, seconds,
stopped (why it ended), level (the last), learning_rate, stages (per level: first and last
iteration, rounds, its last validation accuracy and exact match), rounds (every round's
figures) and test (what charrnn.score(..., accuracy=True) gives: loss, n_chars, accuracy,
exact_match, levels, ...).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_to_execute as lte  # noqa: E402  (scripts/ is not a package)

PRESET = "learning-to-execute"     # charrnn/configs/learning-to-execute.yaml: the paper's model
FIXED = {"completion": lte.SEPARATOR + lte.END, "vocab": lte.VOCAB + "\n"}
SEEDS = 1_000_000      # seed offsets apart: training rounds, validation levels, test


def draw_text(chars, split, seed, task, curriculum, target, current, labels=False):
    """Lines of the split, one per line, until they hold at least chars characters: the first
    lines of lte.generate(n, ...) for a large enough n (the same seed gives the same lines)."""
    n = 64
    while True:
        samples = lte.generate(n, split, seed, task, curriculum, target, current)
        lines, total = [], 0
        for sample in samples:
            lines.append(lte.format_line(sample, labels) + "\n")
            total += len(lines[-1])
            if total >= chars:
                return "".join(lines)
        n = 2 * n * max(1, -(-chars // max(total, 1)))


def write_text(path, text):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="ascii")
    tmp.replace(path)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=lte.TASKS, default="program", help="(default program)")
    p.add_argument("--length", type=int, required=True, help="target L")
    p.add_argument("--nesting", type=int, default=1, help="target N (default 1)")
    p.add_argument("--curriculum", choices=lte.CURRICULA, default="combined",
                   help="how the training lines' levels are drawn (default combined)")
    p.add_argument("--out", type=Path, required=True,
                   help="the run directory to make; the round's texts are written beside it, "
                        "in OUT-data/")
    p.add_argument("--config", help="YAML file of charrnn config keys (over the paper's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a charrnn config key; repeatable; wins over --config")
    p.add_argument("--round-iters", type=int, default=100,
                   help="iterations per round, between evaluations (default 100)")
    p.add_argument("--val-chars", type=int, default=50_000,
                   help="characters of each validation text (default 50,000)")
    p.add_argument("--test-chars", type=int, default=50_000,
                   help="characters of the final test text (default 50,000)")
    p.add_argument("--threshold", type=float, default=0.95,
                   help="raise the level when validation accuracy passes this (default 0.95)")
    p.add_argument("--patience", type=int, default=5,
                   help="... or when it is below what it was this many evaluations before at "
                        "the level (default 5; 0: never)")
    p.add_argument("--decay", type=float, default=0.8,
                   help="at the target level, multiply the learning rate by this instead "
                        "(default 0.8)")
    p.add_argument("--min-lr", type=float, default=1e-3,
                   help="end when the learning rate falls below this (default 1e-3)")
    p.add_argument("--max-iters", type=int, help="end after this many iterations in all")
    p.add_argument("--time", help="end when the next round would not fit in this (30m, 12h)")
    p.add_argument("--rng-seed", type=int, default=0, help="seeds the data and charrnn")
    args = p.parse_args(argv)
    try:
        lte.check_levels(args.task, (args.length, args.nesting))
    except ValueError as e:
        p.error(str(e))
    if min(args.round_iters, args.val_chars, args.test_chars, args.max_iters or 1) < 1:
        p.error("--round-iters, --val-chars, --test-chars and --max-iters must be >= 1")
    return p, args


def main(argv=None):
    import charrnn

    parser, args = parse_args(argv)
    try:
        curriculum(parser, args)
    except (charrnn.DataError, charrnn.RunError, charrnn.TrainingError,
            charrnn.CheckpointError) as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")


def curriculum(parser, args):
    """The run (see the module docstring): log lines on stderr, the summary on stdout."""
    import charrnn
    from charrnn.config import ConfigError, as_dict, load_config, parse_duration

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        paper = as_dict(*load_config(PRESET))
        keys = as_dict(*load_config(args.config, args.sets, base=paper))
        for key, value in FIXED.items():
            if keys[key] not in ("", value):
                raise ConfigError(f"{key} is always {value!r} here, got {keys[key]!r}")
        keys.update(FIXED)
        budget = parse_duration(args.time, "--time") if args.time else None
    except ConfigError as e:
        parser.error(str(e))
    keys.update(eval_every=args.round_iters, time="")
    started = time.monotonic()
    target, level = (args.length, args.nesting), (1, 1)
    data_dir = args.out.with_name(args.out.name + "-data")
    data_dir.mkdir(parents=True, exist_ok=True)
    train_file, lr = data_dir / "train.txt", keys["learning_rate"]
    # enough for a round of chunks (and one more, for rounding) beside the held-out part
    chunk = keys["batch_size"] * keys["seq_length"]
    chars = int((chunk * (args.round_iters + 1) + 1) / (1 - keys["val_frac"])) + 1
    rounds, history, iteration, stopped, val_text = [], [], 0, None, None
    while stopped is None:
        # draw the round's training text (and the level's validation text)
        k = len(rounds)
        write_text(train_file, draw_text(chars, "train", args.rng_seed + k, args.task,
                                         args.curriculum, target, level))
        if val_text is None:
            val_text = draw_text(args.val_chars, "val", args.rng_seed + SEEDS + k, args.task,
                                 "naive", target, level)
        # train for the round, carrying the run on
        t0 = time.monotonic()
        iteration += min(args.round_iters, (args.max_iters or math.inf) - iteration)
        if k == 0:
            summary = charrnn.fit(train_file, out=args.out, rng_seed=args.rng_seed,
                                  **dict(keys, max_iters=iteration))
        else:
            summary = charrnn.fit(train_file, resume=args.out, new_text=True,
                                  max_iters=iteration, learning_rate=lr)
        iteration = summary["iterations"]
        # evaluate at the current level
        model = charrnn.load(args.out / "last.npz")
        val = charrnn.score(model, val_text, accuracy=True)
        rounds.append({"iteration": iteration, "length": level[0], "nesting": level[1],
                       "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                       "val_exact_match": val["exact_match"], "learning_rate": lr,
                       "seconds": round(time.monotonic() - started, 1)})
        log(f"round {k + 1}, level L={level[0]} N={level[1]}: iteration {iteration:,}, "
            f"validation accuracy {100 * val['accuracy']:.2f} % teacher-forced, "
            f"{100 * val['exact_match']:.2f} % exact match, loss {val['loss']:.4f}, learning "
            f"rate {lr:g}, {rounds[-1]['seconds']:.0f} s")
        # raise the level (or at the target, lower the learning rate)
        plateau = args.patience and len(history) >= args.patience and \
            history[-args.patience] > val["accuracy"]
        history.append(val["accuracy"])
        if val["accuracy"] > args.threshold or plateau:
            harder = lte.next_level(level, target)
            if harder is None:
                lr *= args.decay
                log(f"at the target level: learning rate now {lr:g}")
            else:
                log(f"level L={level[0]} N={level[1]} -> L={harder[0]} N={harder[1]} at "
                    f"iteration {iteration:,}")
                level, history, val_text = harder, [], None
        # the budgets
        took = time.monotonic() - t0
        if lr < args.min_lr:
            stopped = "learning_rate"
        elif args.max_iters is not None and iteration >= args.max_iters:
            stopped = "max_iters"
        elif budget is not None and time.monotonic() - started + took > budget:
            stopped = "time"
    # score the last model at the target level
    test_text = draw_text(args.test_chars, "test", args.rng_seed + 2 * SEEDS, args.task,
                          "baseline", target, level, labels=True)
    write_text(data_dir / "test.txt", test_text)
    test = charrnn.score(charrnn.load(args.out / "last.npz"), test_text, accuracy=True)
    test.pop("logprobs")
    log(f"test at L={target[0]} N={target[1]}: accuracy {100 * test['accuracy']:.2f} % "
        f"teacher-forced, {100 * test['exact_match']:.2f} % exact match")
    stages = []
    for r in rounds:
        if not stages or (stages[-1]["length"], stages[-1]["nesting"]) != (r["length"],
                                                                           r["nesting"]):
            stages.append({"length": r["length"], "nesting": r["nesting"],
                           "first_iteration": r["iteration"] - args.round_iters, "rounds": 0})
        stages[-1].update(last_iteration=r["iteration"], rounds=stages[-1]["rounds"] + 1,
                          val_accuracy=r["val_accuracy"], val_exact_match=r["val_exact_match"])
    print(json.dumps({"run_dir": str(args.out), "task": args.task, "target": list(target),
                      "curriculum": args.curriculum, "iterations": iteration,
                      "seconds": round(time.monotonic() - started, 1), "stopped": stopped,
                      "level": list(level), "learning_rate": lr, "stages": stages,
                      "rounds": rounds, "test": test}))


if __name__ == "__main__":
    main()
