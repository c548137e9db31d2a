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

import dataclasses
import json
import shutil
import signal
import sys
import time
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


checkpoint_option = click.option(
    "-c", "--checkpoint", type=click.Path(path_type=Path),
    help="Checkpoint file, or a run directory (its best.npz, else last.npz). "
         "Default: the most recent run under ./runs.")
rng_seed_option = click.option("--rng-seed", type=int, help="Seed for reproducible results.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on stdout instead of text.")


def _load(checkpoint):
    from .checkpoint import latest_run, load_checkpoint

    return load_checkpoint(checkpoint if checkpoint is not None else latest_run())


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
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file of config keys (see configs/).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one config key; repeatable. Wins over --config.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create. Default: runs/<time>-<file name>.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its last.npz, exactly where it "
                   "stopped. Only max_iters, learning_rate, eval_every and threads may change.")
@click.option("--init-from", type=click.Path(exists=True, path_type=Path),
              help="Start a new run from this checkpoint's (or run directory's) weights.")
@click.option("--dry-run", is_flag=True,
              help="Check the text and config, time a few iterations, write nothing.")
@rng_seed_option
@json_option
def train(file, config_path, sets, out, resume_dir, init_from, dry_run, rng_seed, as_json):
    """Train a model on a UTF-8 text file (default: the built-in corpus).

    Holds out the last val_frac of the text for validation and writes last.npz, best.npz and
    metrics.jsonl into the run directory.

    \b
    Example:
        charrnn train input.txt --config configs/shakespeare.yaml --set max_iters=500
    """
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DataError
    from .train import Interrupted, TrainingError, dry_run as run_dry, train as run_training

    if resume_dir and (init_from or out or dry_run):
        raise click.UsageError("--resume continues a run in its own directory: it cannot be "
                               "combined with --init-from, --out or --dry-run")
    log = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        if dry_run:
            model_cfg, train_cfg, ckpt = _new_run_config(config_path, sets, init_from)
            corpus = _read_corpus(file, None, ckpt)
            report = run_dry(corpus, model_cfg, train_cfg, rng_seed)
            click.echo(json.dumps(report) if as_json else _dry_run_text(corpus, report))
            return
        if resume_dir:
            model_cfg, train_cfg, corpus, ckpt, changed = _resume_setup(file, config_path, sets,
                                                                        resume_dir)
            out = resume_dir
        else:
            model_cfg, train_cfg, ckpt = _new_run_config(config_path, sets, init_from)
            out = out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{file.stem if file else 'builtin'}"
            created = _make_run_dir(out)
            try:
                corpus = _read_corpus(file, out / "data.npy", ckpt)
            except DataError:
                if created:   # leave nothing half-made behind
                    shutil.rmtree(out, ignore_errors=True)
                raise
            changed = ()
        summary = run_training(corpus, model_cfg, train_cfg, out, rng_seed=rng_seed,
                               progress=not as_json, log=log,
                               resume=ckpt if resume_dir else None,
                               init_from=ckpt if init_from else None, changed=changed)
    except (ConfigError, DataError, CheckpointError, TrainingError) as e:
        raise _fail(e) from None
    except Interrupted as e:
        run_dir = e.checkpoint.parent
        click.echo(f"Interrupted at iteration {e.iteration}: saved {e.checkpoint}; resume with: "
                   f"charrnn train --resume {run_dir}", err=True)
        sys.exit(130 if e.signum == signal.SIGINT else 143)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        best = summary["best_val_loss"]
        changed = f"; changed on resume: {', '.join(summary['changed'])}" if summary["changed"] else ""
        notes = "".join(f"; {note}" for note in summary["notes"])
        click.echo(f"done: {summary['iterations']} iterations in {summary['seconds']:.1f}s "
                   f"({summary['chars_per_second']:,.0f} chars/s); best validation loss "
                   f"{best:.4f} nats/char ({best / 0.6931471805599453:.3f} bits/char) at iteration "
                   f"{summary['best_iteration']}; run directory {summary['run_dir']}{changed}{notes}",
                   err=True)


def _new_run_config(config_path, sets, init_from):
    """Config for a new run, and the --init-from checkpoint (None without it), whose model keys
    the run keeps."""
    from .checkpoint import load_checkpoint
    from .config import ConfigError, load_config

    if init_from is None:
        return *load_config(config_path, sets), None
    ckpt = load_checkpoint(init_from)
    base = dataclasses.asdict(ckpt.model_cfg)
    model_cfg, train_cfg = load_config(config_path, sets, base=base)
    for key in ("model", "hidden_size", "num_layers"):
        if getattr(model_cfg, key) != base[key]:
            raise ConfigError(f"--init-from: {key} is {base[key]!r} in {init_from}; a run "
                              f"started from its weights cannot change it to "
                              f"{getattr(model_cfg, key)!r}", key)
    return model_cfg, train_cfg, ckpt


def _read_corpus(file, cache, ckpt):
    """The encoded text; with an --init-from checkpoint, in that checkpoint's vocabulary."""
    from .data import load_corpus

    return load_corpus(file, cache, vocab=ckpt.vocab if ckpt is not None else None)


def _resume_setup(file, config_path, sets, run_dir):
    """Checkpoint, config and text to continue run_dir exactly; refuses what would not."""
    from .checkpoint import load_checkpoint
    from .config import ConfigError, as_dict, load_config
    from .data import BUILTIN_SOURCE, DataError, file_sha256, load_corpus, open_cached
    from .train import SAFE_TO_CHANGE

    last = run_dir / "last.npz"
    if not last.is_file():
        raise DataError(f"{run_dir}: no last.npz to resume from")
    ckpt = load_checkpoint(last)
    base = as_dict(ckpt.model_cfg, ckpt.train_cfg)
    model_cfg, train_cfg = load_config(config_path, sets, base=base)
    new = as_dict(model_cfg, train_cfg)
    changed = [key for key in new if new[key] != base[key]]
    for key in changed:
        if key not in SAFE_TO_CHANGE:
            raise ConfigError(f"cannot resume {run_dir} with {key}={new[key]!r}: the run has "
                              f"{key}={base[key]!r}, and only {', '.join(SAFE_TO_CHANGE)} may "
                              "change on resume (start a new run with --init-from instead)", key)
    if train_cfg.max_iters <= ckpt.iteration:
        raise ConfigError(f"{run_dir} is at iteration {ckpt.iteration} and max_iters is "
                          f"{train_cfg.max_iters}: nothing to do; raise it with "
                          "--set max_iters=N", "max_iters")
    expected, recorded = ckpt.info.get("data_sha256"), ckpt.info.get("data_source")
    if file is None and recorded != BUILTIN_SOURCE and not Path(recorded).is_file():
        raise DataError(f"{run_dir} was trained on {recorded}, which is no longer there; give "
                        "the text as FILE")
    path = file if file is not None else (None if recorded == BUILTIN_SOURCE else Path(recorded))
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(f"{path or BUILTIN_SOURCE}: not the text {run_dir} was trained on "
                        f"(SHA-256 {actual[:16]}..., the run's is {expected[:16]}...); resume "
                        f"with that text, or start a new run with --init-from {run_dir}")
    cache = run_dir / "data.npy"
    if cache.is_file():
        corpus = open_cached(cache, ckpt.vocab, recorded, expected)
    else:
        corpus = load_corpus(path, cache, vocab=ckpt.vocab)
    return model_cfg, train_cfg, corpus, ckpt, changed


def _dry_run_text(corpus, r):
    minutes = lambda s: f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"  # noqa: E731
    lines = [f"text: {corpus.source}" + "".join(f" ({note})" for note in r["notes"]),
             f"parameters: {r['num_params']:,} (vocabulary {r['vocab_size']})",
             f"characters: {r['train_chars']:,} training, {r['val_chars']:,} validation; "
             f"{r['chars_per_param']:.2f} training characters per parameter",
             f"batches per pass: {r['train_batches_per_pass']:,} training, "
             f"{r['val_batches']:,} validation ({r['val_streams']} streams)",
             f"time: {r['seconds_per_iter'] * 1000:.0f} ms per iteration (measured), about "
             f"{minutes(r['seconds_per_pass'])} per pass, {minutes(r['seconds_for_max_iters'])} "
             f"for max_iters={r['config']['max_iters']}"]
    return "\n".join(lines)


def _make_run_dir(out):
    """Create the run directory (refusing one that holds a run); True if it did not exist."""
    from .data import DataError

    created = not out.exists()
    if (out / "last.npz").exists() or (out / "best.npz").exists():
        raise DataError(f"{out}: already holds a run; choose another --out, or continue it "
                        f"with --resume {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(f"{out}: cannot write the run directory: {e.strerror}") from None
    return created


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
    from .data import DataError, format_chars
    from .sample import SampleConfig, generate_samples, prepare_seed, replacement_char

    if seed_text is not None and seed_file is not None:
        raise click.UsageError("--seed and --seed-file cannot be used together")
    if greedy and (top_k is not None or top_p is not None):
        raise click.UsageError("--greedy always takes the most likely character; it cannot be "
                               "combined with --top-k or --top-p")
    try:
        ckpt = _load(checkpoint)
        if seed_file is not None:
            seed_text = _read_text_or_stdin(seed_file)
        elif seed_text is None:
            seed_text = "\n" if "\n" in ckpt.vocab.stoi else ckpt.vocab.chars[0]
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


def _read_text_or_stdin(path):
    """The text of a UTF-8 file, or of stdin for '-' (a DataError if unusable)."""
    from .data import decode_bytes, read_text

    if str(path) == "-":
        return decode_bytes(sys.stdin.buffer.read(), "<stdin>").text
    return read_text(path).text


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
@json_option
def eval_command(files, checkpoint, unk, worst, per_char, as_json):
    """Score a checkpoint on texts: loss in nats/char, bits/char, perplexity; per file and in total.

    FILE may be '-' for stdin.

    \b
    Example:
        charrnn eval input.txt --json
        charrnn eval a.txt b.txt --worst 10 --per-char scores.tsv
    """
    from .checkpoint import CheckpointError
    from .data import DataError
    from .evaluate import score_text, total_summary, worst as find_worst
    from .parallel import Shards

    if sum(str(f) == "-" for f in files) > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    given = [str(f) for f in files]                  # in JSON and the TSV file
    names = ["<stdin>" if f == "-" else f for f in given]   # in text and messages
    try:
        ckpt = _load(checkpoint)
        scored = []
        with Shards(ckpt.train_cfg.threads) as shards:   # as the run was trained
            for path, name in zip(files, names):
                text = _read_text_or_stdin(path)
                try:
                    scored.append(score_text(ckpt, text, unk, shards))
                except DataError as e:
                    raise DataError(f"{name}: {e}") from None
        if per_char is not None:
            _write_per_char(per_char, given, scored)
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    reports = [dict(s.summary(), **_skip_report([s], unk)) for s in scored]
    total = dict(total_summary(scored), **_skip_report(scored, unk))
    worst_found = find_worst(scored, worst) if worst else []
    if as_json:
        result = dict(total)
        if len(files) > 1:
            result["files"] = [{"file": f, **r} for f, r in zip(given, reports)]
        if worst:
            result["worst"] = [{"file": given[w.pop("index")], **w} for w in worst_found]
        output = json.dumps(result)
    else:
        lines = [f"{name}: {_score_line(r)}" for name, r in zip(names, reports)]
        if len(files) > 1:
            lines.append(f"total: {_score_line(total)}")
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

    line = (f"loss {r['loss']:.4f} nats/char, {r['bits_per_char']:.4f} bits/char, perplexity "
            f"{r['perplexity']:.3f}, {r['n_chars']:,} characters")
    if r.get("skipped"):
        line += (f"; skipped {r['skipped']:,} character{'s' if r['skipped'] > 1 else ''} not in "
                 f"the vocabulary: {format_chars(r['skipped_chars'])}")
    return line


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
                name, text, kept = name.translate(escape), s.text, s.kept[1:].tolist()
                f.writelines(f"{name}\t{k}\t{text[k].translate(escape)}\t{lp:.6f}\n"
                             for k, lp in zip(kept, s.logprobs.tolist()))
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
    from .checkpoint import CheckpointError, latest_run, load_checkpoint, resolve_checkpoint
    from .data import DataError
    from .viz import ViewError, build_view, cut_note, parse_units, render_html

    name = "<stdin>" if str(file) == "-" else str(file)
    try:
        ckpt_path = resolve_checkpoint(checkpoint if checkpoint is not None else latest_run())
        ckpt = load_checkpoint(ckpt_path)
        units = parse_units(neurons, ckpt.model_cfg.num_layers, ckpt.model_cfg.hidden_size)
        text = _read_text_or_stdin(file)
        try:
            view = build_view(ckpt, text, name, start, length, units, str(ckpt_path))
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
    if wrote:
        click.echo(f"wrote {wrote[0]} ({wrote[1]:,} bytes; {len(runs)} "
                   f"run{'s' if len(runs) > 1 else ''})", err=True)
