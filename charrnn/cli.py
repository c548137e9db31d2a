"""The charrnn command line: train, sample, eval, viz, plot.

stdout carries data only (generated text, JSON); progress bars, logs and errors go to stderr.

Exit codes:
    0    success
    1    runtime error: unusable text, unreadable checkpoint, training diverged, ...
    2    usage or configuration error (bad option, bad config key, type or value)
    130  interrupted by Ctrl-C (SIGINT) during training; last.npz was written
    143  terminated by SIGTERM during training; last.npz was written

NumPy and the training code are imported inside the commands, so `charrnn --help` stays quick.
"""

import json
import math
import signal
import sys
from pathlib import Path

import click

from . import __version__


class ConfigProblem(click.ClickException):
    """A configuration error: one line on stderr, exit status 2 (like a usage error)."""
    exit_code = 2


def _fail(error):
    """Our library's expected errors, as one-line click errors."""
    from .config import ConfigError

    if isinstance(error, ConfigError):
        return ConfigProblem(str(error))
    return click.ClickException(str(error))


def _expected_errors():
    """The library's errors that mean bad input or a refused run, never a bug."""
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .runs import RunError
    from .train import TrainingError

    return ConfigError, DataError, CheckpointError, RunError, TrainingError


checkpoint_option = click.option(
    "-c", "--checkpoint", type=click.Path(path_type=Path),
    help="Checkpoint file, or a run directory (its best.npz, else last.npz). "
         "Default: the run under ./runs whose checkpoint was written last.")
rng_seed_option = click.option("--rng-seed", type=int, help="Seed for reproducible results.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on stdout instead of text.")


def _presets():
    """The shipped presets' names, as config.presets() lists them (without importing NumPy)."""
    return sorted(p.stem for p in (Path(__file__).resolve().parent / "configs").glob("*.yaml"))


def _load(checkpoint):
    """The checkpoint given, or the latest run's, said on stderr (stdout is for data)."""
    from .api import load

    ckpt = load(checkpoint)
    if checkpoint is None:
        click.echo(f"note: using {ckpt.path} (the latest run under ./runs)", err=True)
    return ckpt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="charrnn")
def cli():
    """Train character-level RNN, LSTM and GRU language models on a CPU, in NumPy.

    \b
    Example:
        charrnn train input.txt
        charrnn sample --seed h -n 200
        charrnn eval input.txt
    """


@cli.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_path", metavar="YAML|PRESET",
              help="YAML file of config keys, or the name of a preset shipped with charrnn: "
                   + ", ".join(_presets()) + ".")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one config key; repeatable. Wins over --config.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create. Default: runs/<time>-<file name>.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its last.npz, exactly where it "
                   "stopped. Only max_iters, learning_rate, eval_every and threads may change.")
@click.option("--new-text", is_flag=True,
              help="With --resume: go on with FILE, another text (in the run's vocabulary), "
                   "read from its beginning; the weights, optimizer state and iteration carry "
                   "on.")
@click.option("--init-from", type=click.Path(exists=True, path_type=Path),
              help="Start a new run from this checkpoint's (or run directory's) weights.")
@click.option("--time", "budget", metavar="DURATION", callback=lambda c, p, v: _check_time(v),
              help="Train for this long (30s, 10m, 1.5h), final evaluation included: the run "
                   "plans its iterations to end within it (the time config key). With "
                   "--resume: that much more.")
@click.option("--dry-run", is_flag=True,
              help="Check the text and config, time a few iterations, write nothing.")
@rng_seed_option
@json_option
def train(file, config_path, sets, out, resume_dir, new_text, init_from, budget, dry_run,
          rng_seed, as_json):
    """Train a model on a UTF-8 text file (default: the built-in corpus).

    Holds out the last val_frac of the text for validation and writes last.npz, best.npz and
    metrics.jsonl into the run directory.

    \b
    Example:
        charrnn train input.txt --config configs/shakespeare.yaml --set max_iters=500
    """
    from . import api
    from .train import Interrupted

    if resume_dir and (init_from or out or dry_run):
        raise click.UsageError("--resume continues a run in its own directory: it cannot be "
                               "combined with --init-from, --out or --dry-run")
    if new_text and (not resume_dir or file is None):
        raise click.UsageError("--new-text goes on with FILE in the run of --resume: it needs "
                               "both")
    log = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    keys = {"time": budget} if budget is not None else {}
    try:
        if dry_run:
            report = api.dry_run(file, config=config_path, sets=sets, init_from=init_from,
                                 rng_seed=rng_seed, **keys)
            click.echo(json.dumps(report) if as_json else _dry_run_text(report))
            return
        summary = api.fit(file, config=config_path, sets=sets, out=out, resume=resume_dir,
                          init_from=init_from, new_text=new_text, rng_seed=rng_seed,
                          progress=not as_json, log=log, **keys)
    except _expected_errors() as e:
        raise _fail(e) from None
    except Interrupted as e:
        click.echo(f"Interrupted at iteration {e.iteration}: saved {e.checkpoint}; resume with: "
                   f"charrnn train --resume {e.checkpoint.parent}", err=True)
        sys.exit(130 if e.signum == signal.SIGINT else 143)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        best = summary["best_val_loss"]
        changed = f"; changed on resume: {', '.join(summary['changed'])}" if summary["changed"] else ""
        notes = "".join(f"; {note}" for note in summary["notes"])
        click.echo(f"done: {summary['iterations']} iterations in {summary['seconds']:.1f}s "
                   f"({summary['chars_per_second']:,.0f} chars/s); best validation loss "
                   f"{best:.4f} nats/char ({best / math.log(2):.3f} bits/char) at iteration "
                   f"{summary['best_iteration']}; run directory {summary['run_dir']}{changed}{notes}",
                   err=True)


def _check_time(value):
    from .config import ConfigError, parse_duration

    if value is not None:
        try:
            parse_duration(value)
        except ConfigError as e:
            raise click.BadParameter(str(e).removeprefix("time "), param_hint="--time") from None
    return value


def _dry_run_text(r):
    minutes = lambda s: f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"  # noqa: E731
    lines = [f"text: {r['text']}" + "".join(f" ({note})" for note in r["notes"]),
             f"parameters: {r['num_params']:,} (vocabulary {r['vocab_size']})",
             f"characters: {r['train_chars']:,} training, {r['val_chars']:,} validation; "
             f"{r['chars_per_param']:.2f} training characters per parameter",
             f"batches per pass: {r['train_batches_per_pass']:,} training, "
             f"{r['val_batches']:,} validation ({r['val_streams']} streams)",
             f"time: {r['seconds_per_iter'] * 1000:.0f} ms per iteration (measured), about "
             f"{minutes(r['seconds_per_pass'])} per pass, {minutes(r['seconds_for_max_iters'])} "
             f"for max_iters={r['config']['max_iters']}"]
    return "\n".join(lines)


@cli.command()
@checkpoint_option
@click.option("--seed", "seed_text", default=None,
              help="Priming text; the output starts with it. Default: a newline if the model "
                   "knows one, else its first character.")
@click.option("--seed-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                             path_type=Path), metavar="PATH",
              help="Read the priming text from this UTF-8 file, newlines included ('-': stdin).")
@click.option("-n", "--num-chars", type=click.IntRange(min=1), default=200, show_default=True,
              help="Characters to generate after the seed (fewer if a --stop string ends it).")
@click.option("-t", "--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Below 1: safer, more repetitive; above 1: more random.")
@click.option("--top-k", type=click.IntRange(min=1), metavar="K",
              help="Draw only from the K most likely characters (1 is --greedy).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), metavar="P",
              help="Nucleus sampling: draw only from the fewest most likely characters whose "
                   "probability adds up to P (1.0 keeps all).")
@click.option("--greedy", is_flag=True, help="Always take the most likely next character.")
@click.option("--stop", multiple=True, metavar="STRING",
              callback=lambda ctx, param, value: _check_stop(value),
              help="End a sample right after the first occurrence of STRING that ends in the "
                   "generated text (it may begin in the seed); repeatable: the first of any.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="K", help="Generate K independent samples, computed together as one batch.")
@click.option("--separator", default="---", show_default=True,
              help="Line printed between samples (with --num-samples).")
@click.option("--unk", type=click.Choice(["error", "skip", "replace"]), default="error",
              show_default=True,
              help="Seed characters outside the model's vocabulary: refuse them, leave them out, "
                   "or replace each with a space (the model's first character if it has no "
                   "space).")
@rng_seed_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per sample (seed, text, stop, logprobs) instead of text.")
def sample(checkpoint, seed_text, seed_file, num_chars, temperature, top_k, top_p, greedy, stop,
           num_samples, separator, unk, rng_seed, as_json):
    """Generate text from a trained checkpoint: the seed, then N new characters.

    \b
    Example:
        charrnn sample --seed h -n 200
        charrnn sample --seed-file prompt.txt --top-p 0.9 --stop $'\\n\\n' --num-samples 4
    """
    import numpy as np

    from .checkpoint import CheckpointError
    from .data import DataError, format_chars, read_text_or_stdin
    from .sample import (SampleConfig, default_seed, generate_samples, prepare_seed,
                         replacement_char)

    if seed_text is not None and seed_file is not None:
        raise click.UsageError("--seed and --seed-file cannot be used together")
    if greedy and (top_k is not None or top_p is not None):
        raise click.UsageError("--greedy always takes the most likely character; it cannot be "
                               "combined with --top-k or --top-p")
    try:
        ckpt = _load(checkpoint)
        if seed_file is not None:
            seed_text = read_text_or_stdin(seed_file).text
        elif seed_text is None:
            seed_text = default_seed(ckpt.vocab)
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    try:
        fed, missing = prepare_seed(ckpt.vocab, seed_text, unk)
    except DataError as e:
        raise click.BadParameter(str(e), param_hint="--seed-file" if seed_file else "--seed") \
            from None
    if missing:
        count = sum(seed_text.count(ch) for ch in missing)
        what = f"{count} seed character{'s' if count > 1 else ''} not in the model's vocabulary"
        done = (f"skipped {what}" if unk == "skip" else
                f"replaced {what} with {replacement_char(ckpt.vocab)!r}")
        click.echo(f"note: {done}: {format_chars(missing)}", err=True)
    for s in stop:
        if ckpt.vocab.missing(s):
            click.echo(f"note: --stop {s!r} can never match: the model cannot generate "
                       f"{format_chars(ckpt.vocab.missing(s))}", err=True)
    cfg = SampleConfig(num_chars=num_chars, temperature=temperature, top_k=top_k or 0,
                       top_p=top_p if top_p is not None else 1.0, greedy=greedy,
                       num_samples=num_samples, stop=stop)
    rng = np.random.default_rng(rng_seed)
    stream = sys.stdout
    try:
        if as_json:
            for s in generate_samples(ckpt, fed, cfg, rng, logprobs=True):
                stream.write(json.dumps({"seed": fed, "text": s.text, "stop": s.stop,
                                         "logprobs": [round(float(x), 6) for x in s.logprobs]})
                             + "\n")
        else:
            stream.write(fed)
            samples = generate_samples(ckpt, fed, cfg, rng,
                                       on_char=_flushing(stream) if stream.isatty() else stream.write)
            stream.write("\n")
            for s in samples[1:]:
                stream.write(f"{separator}\n{fed}{s.text}\n")
        stream.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _check_stop(values):
    if any(not s for s in values):
        raise click.BadParameter("a stop string cannot be empty", param_hint="--stop")
    return values


def _flushing(stream):
    """Write and flush each piece, so that a terminal shows characters as they are drawn."""
    def write(text):
        stream.write(text)
        stream.flush()
    return write


def _quiet_broken_pipe():
    """The reader went away (e.g. `| head`): not an error. Point stdout at devnull so that the
    interpreter's final flush does not complain, and exit 0."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


@cli.command(name="eval")
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@checkpoint_option
@click.option("--unk", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Characters outside the model's vocabulary: an error, or leave them out "
                   "(counted and listed in the report).")
@click.option("--worst", type=click.IntRange(min=1), metavar="K",
              help="Also list the K characters the model found most surprising, with the text "
                   "before each.")
@click.option("--per-char", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.tsv",
              help="Write every scored character's log-probability (nats) to this TSV file.")
@click.option("--exact", is_flag=True,
              help="Score each text in one pass, the state carried from its first character to "
                   "its last (one stream: slower), instead of in parallel segments.")
@click.option("--accuracy", is_flag=True,
              help="A model trained with a completion setting: also the teacher-forced "
                   "accuracy per character of the completions and the greedy exact match per "
                   "line, and per level for lines labelled L<TAB>N<TAB>.")
@json_option
def eval_command(files, checkpoint, unk, worst, per_char, exact, accuracy, as_json):
    """Score a checkpoint on texts: loss in nats/char, bits/char, perplexity; per file and in total.

    FILE may be '-' for stdin. With a model trained with a completion setting, only the
    completions' characters are scored.

    \b
    Example:
        charrnn eval input.txt --json
        charrnn eval a.txt b.txt --worst 10 --per-char scores.tsv
        charrnn eval test-labelled.txt --accuracy
    """
    from .accuracy import accuracy_report, completion_counts, merge_counts
    from .checkpoint import CheckpointError
    from .data import DataError, read_text_or_stdin
    from .evaluate import score_text, total_summary, worst as find_worst
    from .parallel import Shards

    if sum(str(f) == "-" for f in files) > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    given = [str(f) for f in files]                  # in JSON and the TSV file
    names = ["<stdin>" if f == "-" else f for f in given]   # in text and messages
    try:
        ckpt = _load(checkpoint)
        completion = ckpt.train_cfg.completion
        if accuracy and not completion:
            raise click.BadParameter(f"{ckpt.path} was trained without a completion setting "
                                     "(the completion key), and accuracy is measured on "
                                     "completions", param_hint="'--accuracy'")
        scored, counts = [], []
        with Shards(ckpt.train_cfg.threads) as shards:   # as the run was trained
            for path, name in zip(files, names):
                text = read_text_or_stdin(path).text
                try:
                    scored.append(score_text(ckpt, text, unk, shards, exact, hits=accuracy))
                except DataError as e:
                    raise DataError(f"{name}: {e}") from None
                if accuracy:
                    counts.append(completion_counts(ckpt, scored[-1], shards))
        if per_char is not None:
            _write_per_char(per_char, given, scored)
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    what = {"completion": completion} if completion else {}
    reports = [dict(s.summary(), **what, **_skip_report([s], unk),
                    **(accuracy_report(c) if accuracy else {}))
               for s, c in zip(scored, counts or [None] * len(scored))]
    total = dict(total_summary(scored), **what, **_skip_report(scored, unk),
                 **(accuracy_report(merge_counts(counts)) if accuracy else {}))
    worst_found = find_worst(scored, worst) if worst else []
    if as_json:
        result = dict(total)
        if len(files) > 1:
            result["files"] = [{"file": f, **r} for f, r in zip(given, reports)]
        if worst:
            result["worst"] = [{"file": given[w.pop("index")], **w} for w in worst_found]
        output = json.dumps(result)
    else:
        lines = []
        for name, r in zip(names, reports):
            lines += [f"{name}: {_score_line(r)}"] + (_accuracy_lines(name, r) if accuracy else [])
        if len(files) > 1:
            lines.append(f"total: {_score_line(total)}")
            lines += _accuracy_lines("total", total) if accuracy else []
        if worst:
            lines.append(f"the {len(worst_found)} most surprising characters:")
            lines += [f"  {w['logprob']:8.4f}  {names[w['index']]}:{w['line']}:{w['column']}  "
                      f"{w['context']!r} -> {w['char']!r}" for w in worst_found]
        output = "\n".join(lines)
    try:
        click.echo(output)
    except BrokenPipeError:
        _quiet_broken_pipe()


def _score_line(r):
    from .data import format_chars

    counted = "characters"
    if r.get("completion"):
        separator, end = r["completion"]
        counted = f"completion characters (after {separator!r}, through {end!r})"
    line = (f"loss {r['loss']:.4f} nats/char, {r['bits_per_char']:.4f} bits/char, perplexity "
            f"{r['perplexity']:.3f}, {r['n_chars']:,} {counted}")
    if r.get("skipped"):
        line += (f"; skipped {r['skipped']:,} character{'s' if r['skipped'] > 1 else ''} not in "
                 f"the vocabulary: {format_chars(r['skipped_chars'])}")
    return line


def _accuracy_lines(name, r):
    """eval --accuracy's text lines: the accuracy line of a file (or the total), then one per
    labelled level."""
    def figures(f, n_chars):
        percent = lambda x: "-" if x is None else f"{100 * x:.2f} %"  # noqa: E731
        return (f"accuracy {percent(f['accuracy'])} teacher-forced ({f['correct_chars']:,} of "
                f"{_count(n_chars, 'character')}), exact match {percent(f['exact_match'])} "
                f"({f['exact_lines']:,} of {_count(f['n_lines'], 'line')})")
    return ([f"{name}: {figures(r, r['n_chars'])}"]
            + [f"  L={v['length']} N={v['nesting']}: {figures(v, v['n_chars'])}"
               for v in r.get("levels", ())])


def _count(n, noun):
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _skip_report(scored, unk):
    """With --unk skip: how many characters the scored texts left out, and which (sorted)."""
    if unk != "skip":
        return {}
    chars = sorted({ch for s in scored for ch in s.skipped})
    return {"skipped": sum(s.n_skipped for s in scored), "skipped_chars": chars}


def _write_per_char(path, names, scored):
    """One row per scored character: file, offset (in the file's text), char, logprob. Tabs,
    newlines, carriage returns and backslashes in file and char are written as \\t, \\n, \\r,
    \\\\."""
    from .data import DataError

    escape = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("file\toffset\tchar\tlogprob\n")
            for name, s in zip(names, scored):
                name, text, kept = name.translate(escape), s.text, s.kept[1:]
                if s.counted is not None:     # a completion setting: its characters only
                    kept = kept[s.counted]
                f.writelines(f"{name}\t{k}\t{text[k].translate(escape)}\t{lp:.6f}\n"
                             for k, lp in zip(kept.tolist(), s.scored_logprobs().tolist()))
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None


def _write_or_print(output, text, default):
    """Write a view to output ('-': stdout, quietly ended by a closed pipe; None: default, in the
    current directory). Returns the path written and its size in bytes, or None for stdout."""
    from .page import write_view

    if str(output) == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        return None
    path = output if output is not None else Path(default)
    write_view(path, text)
    return path, len(text.encode("utf-8"))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                        path_type=Path))
@checkpoint_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="The HTML file to write ('-': stdout). Default: viz.html here.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True,
              help="The first character shown, an offset in the text from 0; the model reads "
                   "up to 1,000 characters before it first, as context.")
@click.option("--length", type=click.IntRange(1, 100_000), default=10_000, show_default=True,
              help="Characters shown, at most (the page grows by about 100 bytes each; "
                   "100,000 at most).")
@click.option("--neurons", default="auto", show_default=True, metavar="auto|L:i,...",
              help="The units given a row: auto picks them (the unit that follows each of a few "
                   "features of the text best, then the most varied), or a list of "
                   "LAYER:INDEX, from 0, e.g. 0:12,1:200.")
def viz(file, checkpoint, output, start, length, neurons):
    """Write one self-contained HTML page: a text coloured by how surprised the model is at each
    character, its top guesses, and what chosen units do.

    The page has no URL in it and opens from file:// with no network; FILE may be '-' (stdin).

    \b
    Example:
        charrnn viz --checkpoint runs/shakespeare tinyshakespeare.txt -o page.html
        charrnn viz input.txt --start 5000 --length 2000 --neurons 0:12,1:37
    """
    from .checkpoint import CheckpointError
    from .data import DataError, read_text_or_stdin
    from .viz import ViewError, build_view, cut_note, parse_units
    from .viz_page import render_html

    name = "<stdin>" if str(file) == "-" else str(file)
    try:
        ckpt = _load(checkpoint)
        units = parse_units(neurons, ckpt.model_cfg.num_layers, ckpt.model_cfg.hidden_size)
        text = read_text_or_stdin(file).text
        try:
            view = build_view(ckpt, text, name, start, length, units, str(ckpt.path))
        except DataError as e:
            raise DataError(f"{name}: {e}") from None
        wrote = _write_or_print(output, render_html(view), "viz.html")
    except ViewError as e:
        raise click.BadParameter(str(e), param_hint=f"'--{e.argument}'") from None
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    if cut_note(view):
        click.echo(f"note: {cut_note(view)}", err=True)
    for u in view.units:
        click.echo(f"unit {u.layer}:{u.index}: "
                   + (f"{u.feature}, r = {u.r:+.2f}" if u.feature else f"sd {u.sd:.2f}"), err=True)
    if wrote:
        click.echo(f"wrote {wrote[0]} ({wrote[1]:,} bytes; {len(view.shown):,} characters, "
                   f"{view.bits_per_char():.3f} bits/char, {len(view.units)} unit rows)", err=True)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="The file to write: .svg, or .html (the chart and a table of the runs); '-' "
                   "writes SVG to stdout. Default: curves.svg here.")
@click.option("--x", "axis", type=click.Choice(["iteration", "seconds", "chars"]),
              default="iteration", show_default=True,
              help="The x axis: iterations, training time, or training characters read.")
def plot(run_dirs, output, axis):
    """Draw the training and validation loss of one or many runs on one chart (SVG or HTML).

    Each run is labelled by its directory and what differs in its config from the others'.

    \b
    Example:
        charrnn plot runs/* -o curves.html
        charrnn plot runs/lr-1e-3 runs/lr-3e-3 --x seconds -o curves.svg
    """
    from .checkpoint import CheckpointError
    from .data import DataError
    from .plot import read_run, render_html, render_svg

    suffix = output.suffix.lower() if output is not None and str(output) != "-" else ".svg"
    if suffix not in (".svg", ".html", ".htm"):
        raise click.BadParameter(f"{output}: the name must end in .svg or .html (or be - for "
                                 "SVG on stdout)", param_hint="'-o' / '--output'")
    try:
        runs = [read_run(d) for d in run_dirs]
        chart = render_svg(runs, axis) if suffix == ".svg" else render_html(runs, axis)
        wrote = _write_or_print(output, chart, "curves.svg")
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    for note in (note for run in runs for note in run.notes):
        click.echo(f"note: {note}", err=True)
    if wrote:
        click.echo(f"wrote {wrote[0]} ({wrote[1]:,} bytes; {len(runs)} "
                   f"run{'s' if len(runs) > 1 else ''})", err=True)
