"""The charrnn command line: train, sample, eval, viz, plot, export, tune.

stdout carries data only (generated text, JSON); progress bars, logs and errors go to stderr.

Exit codes:
    0    success
    1    runtime error: unusable text, unreadable checkpoint, training diverged, ...
    2    usage or configuration error (bad option, bad config key, type or value)
    130  interrupted by Ctrl-C (SIGINT) during training; last.npz was written
    143  terminated by SIGTERM during training; last.npz was written

Every command parses its options, makes one call to the Python API (api.py) and formats what it
returns; the library's errors (errors.py) become one-line messages and exit codes here. api.py
imports NumPy and the training code inside its functions, so `charrnn --help` stays quick.
"""

import json
import math
import signal
import sys
from pathlib import Path

import click

from . import __version__, api
from .errors import (ArgumentError, CheckpointError, ConfigError, DataError, ExportError,
                     Interrupted, RunError, SeedError, TrainingError, TuneError, ViewError,
                     format_chars)


class ConfigProblem(click.ClickException):
    """A configuration error: one line on stderr, exit status 2 (like a usage error)."""
    exit_code = 2


# the library's errors that mean bad input or a refused run, never a bug
EXPECTED = (ConfigError, DataError, CheckpointError, RunError, TrainingError)


def _fail(error):
    """One of the library's expected errors, as a click error: a usage error for arguments that
    cannot go together, exit 2 for a config error, else exit 1."""
    if isinstance(error, ArgumentError):
        return click.UsageError(str(error))
    if isinstance(error, ConfigError):
        return ConfigProblem(str(error))
    return click.ClickException(str(error))


def _say(notes):
    for note in notes:
        click.echo(f"note: {note}", err=True)


checkpoint_option = click.option(
    "-c", "--checkpoint", type=click.Path(path_type=Path),
    help="Checkpoint file, or a run directory (its best.npz, else last.npz). "
         "Default: the run under ./runs whose checkpoint was written last.")
rng_seed_option = click.option("--rng-seed", type=int, help="Seed for reproducible results.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on stdout instead of text.")


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
@click.argument("files", nargs=-1, metavar="[FILE|DIR]...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--lines", is_flag=True,
              help="Each line is a document (the documents key: lines): read from the start "
                   "state, ended by an end mark the model learns; sample then prints new lines.")
@click.option("--labels", is_flag=True,
              help="Documents carry labels (the labels key): a leading LABEL<TAB> on each line, "
                   "or the folder a file lies in; sample --label asks for one.")
@click.option("--include", "include", multiple=True, metavar="PATTERN",
              help="Folders: read only files whose name matches PATTERN (e.g. '*.py'); "
                   "repeatable.")
@click.option("--config", "config_path", metavar="YAML|PRESET",
              help="YAML file of config keys, or the name of a preset shipped with charrnn: "
                   + ", ".join(api.presets()) + ".")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one config key; repeatable. Wins over --config.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create. Default: runs/<time>-<file name>.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its last.npz, exactly where it "
                   "stopped. Only max_iters, learning_rate, eval_every, threads, shards and time "
                   "may change.")
@click.option("--new-text", is_flag=True,
              help="With --resume: go on with FILE, another text (in the run's vocabulary), "
                   "read from its beginning; the weights, optimizer state and iteration carry "
                   "on.")
@click.option("--init-from", type=click.Path(exists=True, path_type=Path),
              help="Start a new run from this checkpoint's (or run directory's) weights; "
                   "characters of FILE it never saw grow its vocabulary (fresh rows).")
@click.option("--time", "budget", metavar="DURATION", callback=lambda c, p, v: _check_time(v),
              help="Train for this long (30s, 10m, 1.5h), final evaluation included: the run "
                   "plans its iterations to end within it (the time config key). With "
                   "--resume: that much more.")
@click.option("--dry-run", is_flag=True,
              help="Check the text and config, time a few iterations, write nothing.")
@rng_seed_option
@json_option
def train(files, lines, labels, include, config_path, sets, out, resume_dir, new_text, init_from,
          budget, dry_run, rng_seed, as_json):
    """Train a model on a UTF-8 text file (default: the built-in corpus), or on documents: the
    lines of a list (--lines), or several files or folders (each file a document).

    Holds out the last val_frac of the text for validation (of documents: whole documents,
    chosen at random with a fixed seed) and writes last.npz, best.npz and metrics.jsonl into
    the run directory.

    \b
    Example:
        charrnn train input.txt --config configs/shakespeare.yaml --set max_iters=500
        charrnn train names.txt --lines
        charrnn train src/ --include '*.py'
    """
    log = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    keys = {"time": budget} if budget is not None else {}
    keys.update({k: v for k, v in (("documents", "lines" if lines else None),
                                   ("labels", True if labels else None),
                                   ("include", ",".join(include) or None)) if v is not None})
    file = None if not files else files[0] if len(files) == 1 else list(files)
    try:
        api.check_arguments(file, out, resume_dir, init_from, new_text, dry_run, cli=True)
        if dry_run:
            report = api.dry_run(file, config=config_path, sets=sets, init_from=init_from,
                                 rng_seed=rng_seed, **keys)
            click.echo(json.dumps(report) if as_json else _dry_run_text(report))
            return
        summary = api.fit(file, config=config_path, sets=sets, out=out, resume=resume_dir,
                          init_from=init_from, new_text=new_text, rng_seed=rng_seed,
                          progress=not as_json, log=log, **keys)
    except EXPECTED as e:
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


def _check_time(value, option="--time"):
    if value is not None:
        try:
            api.parse_duration(value)
        except ConfigError as e:
            raise click.BadParameter(str(e).removeprefix("time "), param_hint=option) from None
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
              metavar="K", help="Generate K independent samples, computed together as one batch "
                                "(a model of documents: K whole documents).")
@click.option("--label", metavar="NAME",
              help="A model with labels: draw documents of this label.")
@click.option("--novel", is_flag=True,
              help="A model of documents: only documents that are not in the training text "
                   "(drawing until there are K).")
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
           num_samples, label, novel, separator, unk, rng_seed, as_json):
    """Generate text from a trained checkpoint: the seed, then N new characters; from a model of
    documents (--lines, files), K whole new documents, each ended by the model.

    \b
    Example:
        charrnn sample --seed h -n 200
        charrnn sample --seed-file prompt.txt --top-p 0.9 --stop $'\\n\\n' --num-samples 4
        charrnn sample -c runs/words --num-samples 20 --novel
    """
    if seed_text is not None and seed_file is not None:
        raise click.UsageError("--seed and --seed-file cannot be used together")
    if greedy and (top_k is not None or top_p is not None):
        raise click.UsageError("--greedy always takes the most likely character; it cannot be "
                               "combined with --top-k or --top-p")
    try:
        generation = api.sampler(checkpoint, seed_text, num_chars, seed_file=seed_file,
                                temperature=temperature, top_k=top_k or 0,
                                top_p=top_p if top_p is not None else 1.0, greedy=greedy,
                                stop=stop, num_samples=num_samples, unk=unk, rng_seed=rng_seed,
                                label=label, novel=novel)
    except SeedError as e:
        raise click.BadParameter(str(e), param_hint="--" + e.argument.replace("_", "-")) \
            from None
    except (CheckpointError, DataError, ArgumentError) as e:
        raise _fail(e) from None
    _say(generation.notes)
    if generation.documents:
        return _print_documents(generation, separator, as_json)
    stream, fed = sys.stdout, generation.seed
    try:
        if as_json:
            for s in generation.samples(logprobs=True):
                stream.write(json.dumps({"seed": fed, "text": s.text, "stop": s.stop,
                                         "logprobs": [round(float(x), 6) for x in s.logprobs]})
                             + "\n")
        else:
            stream.write(fed)
            samples = generation.samples(
                on_char=_flushing(stream) if stream.isatty() else stream.write)
            stream.write("\n")
            for s in samples[1:]:
                stream.write(f"{separator}\n{fed}{s.text}\n")
        stream.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _print_documents(drawing, separator, as_json):
    """sample's output for a model of documents: one per line (a model of lines), else between
    separator lines; with --json, one object per document."""
    try:
        documents = drawing.samples(novelty=as_json)
    except DataError as e:
        raise _fail(e) from None
    lines = drawing.ckpt.train_cfg.documents == "lines"
    try:
        for k, d in enumerate(documents):
            if as_json:
                sys.stdout.write(json.dumps({"text": d.text, "logprob": round(d.logprob, 6),
                                             "novel": d.novel, "complete": d.complete,
                                             "label": drawing.label}) + "\n")
            else:
                sys.stdout.write(("" if lines or k == 0 else f"{separator}\n") + d.text + "\n")
        sys.stdout.flush()
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
    try:
        result = api.score_files(files, checkpoint, unk=unk, exact=exact, accuracy=accuracy,
                              worst=worst or 0, per_char=per_char)
    except ConfigError as e:
        if accuracy and e.key == "completion":
            raise click.BadParameter(str(e), param_hint="'--accuracy'") from None
        raise _fail(e) from None
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    _say(result.notes)
    if as_json:
        output = json.dumps(result.as_json())
    else:
        output = "\n".join(_eval_text(result, accuracy))
    try:
        click.echo(output)
    except BrokenPipeError:
        _quiet_broken_pipe()


def _eval_text(result, accuracy):
    """eval's text lines: a line per file (and its accuracy), the total, the worst characters."""
    names = result.shown_names()
    lines = []
    for name, r in zip(names, result.reports):
        lines += [f"{name}: {_score_line(r)}"] + (_accuracy_lines(name, r) if accuracy else [])
        lines += [f"  label {label}: {_score_line(s)}" for label, s in r.get("labels", {}).items()]
    if len(names) > 1:
        lines.append(f"total: {_score_line(result.total)}")
        lines += [f"  label {label}: {_score_line(s)}"
                  for label, s in result.total.get("labels", {}).items()]
        lines += _accuracy_lines("total", result.total) if accuracy else []
    if result.worst:
        lines.append(f"the {len(result.worst)} most surprising characters:")
        lines += [f"  {w['logprob']:8.4f}  {names[w['index']]}:{w['line']}:{w['column']}  "
                  f"{w['context']!r} -> {w['char']!r}" for w in result.worst]
    return lines


def _score_line(r):
    counted = "characters"
    if r.get("documents"):
        counted = f"characters and end marks ({r['documents']:,} documents)"
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


def _write_or_print(output, page):
    """Write a view to output ('-': stdout, quietly ended by a closed pipe; None: its default
    name, in the current directory). Returns the path written and its size in bytes, or None
    for stdout."""
    if str(output) == "-":
        try:
            sys.stdout.write(page.text)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        return None
    path = output if output is not None else Path(page.default_name)
    return path, api.write_page(path, page.text)


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
@click.option("--unk", type=click.Choice(["error", "skip", "replace"]), default="error",
              show_default=True,
              help="Characters outside the model's vocabulary: refuse the text, leave them out "
                   "of it (--start then counts the text without them), or show each as a space "
                   "(the model's first character if it has no space).")
def viz(file, checkpoint, output, start, length, neurons, unk):
    """Write one self-contained HTML page: a text coloured by how surprised the model is at each
    character, its top guesses, and what chosen units do.

    The page has no URL in it and opens from file:// with no network; FILE may be '-' (stdin).

    \b
    Example:
        charrnn viz --checkpoint runs/shakespeare tinyshakespeare.txt -o page.html
        charrnn viz input.txt --start 5000 --length 2000 --neurons 0:12,1:37
    """
    try:
        page = api.view(file, checkpoint, start=start, length=length, neurons=neurons, unk=unk)
        wrote = _write_or_print(output, page)
    except ViewError as e:
        raise click.BadParameter(str(e), param_hint=f"'--{e.argument}'") from None
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    _say(page.notes)
    view = page.view
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
    suffix = output.suffix.lower() if output is not None and str(output) != "-" else ".svg"
    if suffix not in (".svg", ".html", ".htm"):
        raise click.BadParameter(f"{output}: the name must end in .svg or .html (or be - for "
                                 "SVG on stdout)", param_hint="'-o' / '--output'")
    try:
        page = api.plot_runs(run_dirs, axis=axis, fmt="svg" if suffix == ".svg" else "html")
        _say(page.notes)
        wrote = _write_or_print(output, page)
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    if wrote:
        click.echo(f"wrote {wrote[0]} ({wrote[1]:,} bytes; {len(page.runs)} "
                   f"run{'s' if len(page.runs) > 1 else ''})", err=True)


@cli.command()
@click.argument("run", required=False, metavar="[RUN]", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write: .html (one page that writes in the browser), .onnx (an "
                   "ONNX model; needs pip install charrnn[onnx]) or .npz (a charrnn checkpoint "
                   "of the rounded weights).")
@click.option("--format", "fmt", type=click.Choice(["html", "onnx", "npz"]),
              help="The format, whatever the output's name ends in. Default: by its extension.")
@click.option("--weights", type=click.Choice(["float32", "float16", "int8"]), default="float32",
              show_default=True,
              help="How the weights are stored: as trained, in half precision, or in 8 bits with "
                   "a scale per output unit (a quarter of the size).")
def export(run, output, fmt, weights):
    """Write a model as a file that runs without charrnn: one HTML page, or ONNX.

    RUN is a checkpoint file or a run directory (its best.npz, else last.npz); default: the run
    under ./runs whose checkpoint was written last.

    \b
    Formats:
        .html   one self-contained page: the weights and a sampler in JavaScript
        .onnx   an ONNX graph (ONNX's RNN, LSTM, GRU operators): state in and out
        .npz    a charrnn checkpoint of the weights as --weights rounds them

    \b
    Example:
        charrnn export runs/shakespeare -o shakespeare.html --weights int8
        charrnn export runs/shakespeare -o shakespeare.onnx
    """
    try:
        done = api.export(run, output, fmt=fmt, weights=weights)
    except ArgumentError as e:
        raise click.BadParameter(str(e), param_hint="'-o' / '--output'") from None
    except (CheckpointError, DataError, ExportError) as e:
        raise _fail(e) from None
    _say(done.notes)
    click.echo(f"wrote {done.path} ({done.bytes:,} bytes; {done.format}, {done.weights} "
               "weights)", err=True)


@cli.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), metavar="N",
              help="Trials in the study, in all: every worker stops when it has N (complete, "
                   "pruned or failed). Default: 20.")
@click.option("--time-per-trial", metavar="DURATION",
              callback=lambda c, p, v: _check_time(v, "--time-per-trial"),
              help="Each trial's time budget (30s, 10m: the time config key). Without it, "
                   "give max_iters with --set or --config.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The tune directory: the study's journal, trial-NNNN run directories, "
                   "best.yaml. Workers given the same one join one study. Default: "
                   "runs/tune-<file name>.")
@click.option("--space", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="YAML",
              help="The search space: config keys, each a list of choices or a range {low, "
                   "high, log, step}. Default: one around charrnn's own choices.")
@click.option("--config", "config_path", metavar="YAML|PRESET",
              help="Config keys every trial gets (the space's keys win over them).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A config key every trial gets; repeatable. Wins over --config.")
@click.option("--storage", metavar="URL",
              help="A database for the study (postgresql://user@host/db), for workers on many "
                   "machines. Default: the journal file DIR/study.journal.")
@click.option("--study", metavar="NAME", help="The study's name. Default: DIR's name.")
@click.option("--pruner", type=click.Choice(["median", "halving", "none"]),
              help="Stop trials behind the others: at the median of the earlier trials at the "
                   "same evaluation, by successive halving, or never. Default: median.")
@click.option("--show", "show_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Print the trials of the tune in DIR, ranked, and stop.")
@rng_seed_option
@json_option
def tune(file, trials, time_per_trial, out, space, config_path, sets, storage, study, pruner,
         show_dir, rng_seed, as_json):
    """Search for good settings: train many runs (trials) with settings drawn from a space.

    Each trial is a normal run in DIR/trial-NNNN; trials behind the others are pruned. Run the
    same command in several terminals or machines to share the work. At the end, the trials
    ranked (stdout) and the best settings in DIR/best.yaml.

    \b
    Example:
        charrnn tune input.txt --trials 30 --time-per-trial 1m --out runs/tune
        charrnn tune input.txt --space space.yaml --set max_iters=500 --out runs/tune
        charrnn tune --show runs/tune
    """
    tuning = {"FILE": file, "--trials": trials, "--time-per-trial": time_per_trial,
              "--out": out, "--space": space, "--config": config_path, "--set": sets or None,
              "--pruner": pruner, "--rng-seed": rng_seed}
    if show_dir is not None and any(v is not None for v in tuning.values()):
        given = [name for name, v in tuning.items() if v is not None]
        raise click.UsageError(f"--show only reads a tune's trials: it cannot be combined with "
                               f"{', '.join(given)}")
    if show_dir is None and file is None:
        raise click.UsageError("FILE is needed: the text the trials train on (or --show DIR to "
                               "see a tune's trials)")
    log = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        if show_dir is not None:
            result = api.tune_results(show_dir, storage=storage, study=study)
        else:
            result = api.tune(file, trials=trials or 20, time_per_trial=time_per_trial,
                              out=out, space=space, config=config_path, sets=sets,
                              storage=storage, study=study, pruner=pruner or "median",
                              rng_seed=rng_seed, log=log)
    except (*EXPECTED, TuneError) as e:
        raise _fail(e) from None
    except Interrupted as e:
        click.echo(f"Interrupted at iteration {e.iteration}: saved {e.checkpoint}; the trial is "
                   "marked failed; run the same command to go on with the study", err=True)
        sys.exit(130 if e.signum == signal.SIGINT else 143)
    click.echo(json.dumps(result.as_json()) if as_json else "\n".join(_tune_text(result)))


def _tune_text(result):
    """tune's text: the study and its counts, a line per trial, ranked, and the best."""
    words = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running",
             "WAITING": "waiting", "FAIL": "failed"}
    counts = ", ".join(f"{n} {words[state]}" for state, n in result.counts().items() if n)
    lines = [f"study {result.study!r} ({result.storage}): {_count(len(result.trials), 'trial')}"
             + (f": {counts}" if counts else ""),
             "rank  trial  state     value (nats/char)  seconds  params"]
    for rank, t in enumerate(result.trials, 1):
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        seconds = "-" if t["seconds"] is None else f"{t['seconds']:.1f}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in t["params"].items())
        reason = f"  ({t['reason']})" if t["reason"] and t["state"] != "COMPLETE" else ""
        lines.append(f"{rank:4d}  {t['number']:5d}  {t['state']:<8}  {value:>17}  "
                     f"{seconds:>7}  {params}{reason}")
    best = result.best
    if best is not None:
        where = (f"; its settings: {result.best_config} (charrnn train FILE --config "
                 f"{result.best_config})" if result.best_config else "")
        lines.append(f"best: trial {best['number']}, validation loss {best['value']:.4f} "
                     f"nats/char{where}")
    return lines
