"""The charrnn command line: train, sample, eval.

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
@rng_seed_option
@json_option
def train(file, config_path, sets, out, rng_seed, as_json):
    """Train a model on a UTF-8 text file (default: the built-in corpus).

    Holds out the last val_frac of the text for validation and writes last.npz, best.npz and
    metrics.jsonl into the run directory.

    \b
    Example:
        charrnn train input.txt --config configs/shakespeare.yaml --set max_iters=500
    """
    from .checkpoint import CheckpointError
    from .config import ConfigError, load_config
    from .data import DataError, builtin_corpus, read_text
    from .train import Interrupted, TrainingError, train as run_training

    try:
        model_cfg, train_cfg = load_config(config_path, sets)
        text = read_text(file) if file is not None else builtin_corpus()
        out = out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{file.stem if file else 'builtin'}"
        _make_run_dir(out)
        log = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
        summary = run_training(text, model_cfg, train_cfg, out, rng_seed=rng_seed,
                               progress=not as_json, log=log)
    except (ConfigError, DataError, CheckpointError, TrainingError) as e:
        raise _fail(e) from None
    except Interrupted as e:
        click.echo(f"Interrupted: saved {e.checkpoint}", err=True)
        sys.exit(130 if e.signum == 2 else 143)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        best = summary["best_val_loss"]
        click.echo(f"done: {summary['iterations']} iterations in {summary['seconds']:.1f}s "
                   f"({summary['chars_per_second']:,.0f} chars/s); best validation loss "
                   f"{best:.4f} nats/char ({best / 0.6931471805599453:.3f} bits/char) at iteration "
                   f"{summary['best_iteration']}; run directory {summary['run_dir']}", err=True)


def _make_run_dir(out):
    from .data import DataError

    if (out / "last.npz").exists() or (out / "best.npz").exists():
        raise DataError(f"{out}: already holds a run; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(f"{out}: cannot write the run directory: {e.strerror}") from None


@cli.command()
@checkpoint_option
@click.option("--seed", "seed_text", default=None,
              help="Priming text; the output starts with it. Default: a newline if the model "
                   "knows one, else its first character.")
@click.option("-n", "--num-chars", type=click.IntRange(min=1), default=200, show_default=True,
              help="Characters to generate after the seed.")
@click.option("-t", "--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Below 1: safer, more repetitive; above 1: more random.")
@click.option("--greedy", is_flag=True, help="Always take the most likely next character.")
@rng_seed_option
def sample(checkpoint, seed_text, num_chars, temperature, greedy, rng_seed):
    """Generate text from a trained checkpoint: the seed, then N new characters.

    \b
    Example:
        charrnn sample --seed h -n 200
    """
    import numpy as np

    from .checkpoint import CheckpointError
    from .data import DataError
    from .sample import check_seed, generate

    try:
        ckpt = _load(checkpoint)
        if seed_text is None:
            seed_text = "\n" if "\n" in ckpt.vocab.stoi else ckpt.vocab.chars[0]
        check_seed(ckpt.vocab, seed_text)
    except CheckpointError as e:
        raise _fail(e) from None
    except DataError as e:
        raise click.BadParameter(str(e), param_hint="--seed") from None
    stream = sys.stdout
    interactive = stream.isatty()
    try:
        stream.write(seed_text)
        for ch in generate(ckpt, seed_text, num_chars, temperature, greedy,
                           np.random.default_rng(rng_seed)):
            stream.write(ch)
            if interactive:
                stream.flush()
        stream.write("\n")
        stream.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()


def _quiet_broken_pipe():
    """The reader went away (e.g. `| head`): not an error. Point stdout at devnull so that the
    interpreter's final flush does not complain, and exit 0."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


@cli.command(name="eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@checkpoint_option
@json_option
def eval_command(file, checkpoint, as_json):
    """Score a checkpoint on a text: loss in nats/char, bits/char, perplexity.

    \b
    Example:
        charrnn eval input.txt --json
    """
    from .checkpoint import CheckpointError
    from .data import DataError, read_text
    from .evaluate import evaluate_text

    try:
        ckpt = _load(checkpoint)
        text = read_text(file)
        try:
            result = evaluate_text(ckpt, text.text)
        except DataError as e:
            raise DataError(f"{file}: {e}") from None
    except (CheckpointError, DataError) as e:
        raise _fail(e) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{file}: loss {result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} "
                   f"bits/char, perplexity {result['perplexity']:.3f}, {result['n_chars']:,} "
                   "characters")
