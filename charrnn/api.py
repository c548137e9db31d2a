"""The Python API: everything the command line does, as functions that return values and raise
typed errors (for notebooks and scripts). cli.py is a thin layer over these and nothing else:
each command parses its options, makes one call here and formats what it gets back.

    import charrnn
    summary = charrnn.fit("input.txt", hidden_size=64, max_iters=300)   # = train --json
    model = charrnn.load(summary["run_dir"])                            # a Checkpoint
    charrnn.generate(model, "ROMEO:", 200, temperature=0.8, rng_seed=1)  # -> str
    charrnn.score(model, "some text")                                    # -> dict

    fit, dry_run           train (`train`, `train --dry-run`)
    load                   a checkpoint file or run directory; None: the latest run
    generate, sampler      text from a model (`sample`; sampler: a Generation, streamed, with
                           its notes)
    score, score_files     a text's figures; several files' (`eval`)
    view, plot_runs        the views (`viz`, `plot`), each a Page to write
    export                 a model as one HTML page, an ONNX model or a rounded checkpoint
    tune, tune_results     a hyperparameter search, its trials runs (`tune`, `tune --show`;
                           needs the tune extra: Optuna)
    write_page, presets    a view written to a file; the shipped config presets

A model argument is a Checkpoint, a checkpoint file or run directory, or None: the run under
runs_dir whose checkpoint was written last (the result's notes then say which).

Errors (charrnn/errors.py; all but Interrupted subclass ValueError or RuntimeError):
ConfigError (a config key, type or value; ArgumentError: arguments that cannot go together),
DataError (an unusable text; SeedError: a seed the model cannot read), CheckpointError (an
unreadable checkpoint), RunError (a run directory in use, holding a run, or not writable),
TrainingError (training kept diverging), ViewError (a view's start or units), TuneError (a
study that cannot be opened or joined), Interrupted (SIGINT or SIGTERM during fit or tune;
last.npz was written).

NumPy and the training code are imported inside the functions, so that `charrnn --help`, which
imports this module, stays quick.
"""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from . import runs
from .config import parse_duration, presets
from .errors import ArgumentError, DataError, SeedError, format_chars

__all__ = ["fit", "dry_run", "check_arguments", "load", "generate", "sampler", "score",
           "score_files", "view", "plot_runs", "export", "write_page", "presets", "parse_duration",
           "tune", "tune_results", "Page"]


def fit(file=None, *, config=None, sets=(), out=None, resume=None, init_from=None,
        new_text=False, rng_seed=None, progress=False, log=None, runs_dir=runs.RUNS_DIR,
        on_evaluation=None, **keys):
    """Train a run, as `charrnn train`; returns its summary (what `train --json` prints).

    file: the UTF-8 training text (None: the built-in corpus; with resume, the run's own text).
    config: a YAML file of config keys or a preset's name; sets: 'key=value' strings (as --set);
    keys: config keys as keyword arguments (hidden_size=64), which win over both.
    out: the run directory to make (default runs_dir/<time>-<file name>, unique).
    resume: a run directory to continue exactly; init_from: a checkpoint or run directory whose
    weights start a new run. new_text: with resume, go on with file, another text (the weights,
    optimizer state and iteration carried on; the text read from its beginning; see plan.py).
    progress: show the tqdm bar on stderr; log: a function that takes each log line
    (evaluations, notes), or None for silence. on_evaluation: a function called with each
    evaluation's metrics record (a dict, as metrics.jsonl holds it) once it and last.npz are
    written; a str it returns stops the run there, that reason kept in the summary's `stopped`
    and notes (e.g. a search pruning a trial); the run can be resumed as any other.
    """
    from .plan import plan
    from .train import train

    started = time.monotonic()             # a time budget counts from here
    run = plan(file, config=config, sets=sets, keys=keys, out=out, resume=resume,
               init_from=init_from, new_text=new_text, runs_dir=runs_dir)
    try:
        return train(run.corpus, run.model_cfg, run.train_cfg, run.run_dir, rng_seed=rng_seed,
                     progress=progress, log=log, resume=run.resume, init_from=run.init_from,
                     changed=run.changed, started=started, notes=run.notes,
                     on_evaluation=on_evaluation)
    finally:
        run.release()


def check_arguments(file=None, out=None, resume=None, init_from=None, new_text=False,
                    dry_run=False, cli=False):
    """ArgumentError if fit's (or `charrnn train`'s) arguments cannot go together; cli: name
    them as the command line's options."""
    from .plan import API_WORDS, CLI_WORDS, check_arguments as check

    check(file, out, resume, init_from, new_text, dry_run, CLI_WORDS if cli else API_WORDS)


def dry_run(file=None, *, config=None, sets=(), init_from=None, rng_seed=None, **keys):
    """What `charrnn train --dry-run` reports, as a dict (with what charrnn would choose for
    the keys left open, in notes); writes nothing."""
    from .plan import plan_dry_run
    from .train import dry_run as measure

    run = plan_dry_run(file, config=config, sets=sets, keys=keys, init_from=init_from)
    report = measure(run.corpus, run.model_cfg, run.train_cfg, rng_seed)
    report["notes"] += list(run.notes)
    return report


def load(path=None, runs_dir=runs.RUNS_DIR):
    """A Checkpoint from a checkpoint file or a run directory (its best.npz, else last.npz);
    None: the run under runs_dir whose checkpoint was written last. Its .path says which file."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(path if path is not None else runs.latest_run(runs_dir))


def _open(model, runs_dir=runs.RUNS_DIR):
    """(Checkpoint, notes) for a model argument: a Checkpoint, a path, or None (the latest run,
    said in the notes). The one reading of a model that sample, eval and viz share."""
    from .checkpoint import Checkpoint

    if isinstance(model, Checkpoint):
        return model, ()
    ckpt = load(model, runs_dir)
    if model is None:
        where = runs_dir if Path(runs_dir).is_absolute() else f"./{runs_dir}"
        return ckpt, (f"using {ckpt.path} (the latest run under {where})",)
    return ckpt, ()


def _read(path):
    """The text of a file, or of stdin for '-'."""
    from .data import read_text_or_stdin

    return read_text_or_stdin(path).text


def sampler(model=None, seed=None, num_chars=200, *, seed_file=None, temperature=1.0, top_k=0,
           top_p=1.0, greedy=False, stop=(), num_samples=1, unk="error", rng_seed=None,
           label=None, novel=False, runs_dir=runs.RUNS_DIR):
    """A Generation, as `charrnn sample` runs it: .seed (what the model reads: seed, the text of
    seed_file ('-': stdin), or a newline), .notes (the model used, when it is the latest run;
    seed characters skipped or replaced; stop strings that can never match), and
    .samples(logprobs=False, on_char=None), which draws them (on_char gets sample 0's
    characters as they are drawn). SeedError for a seed the model cannot read.

    A model of documents gives a sample_docs.Drawing instead (.documents is True):
    .samples(novelty=False) draws num_samples whole documents, each of at most num_chars
    characters, starting with seed (default: none); label: the label to draw for (a model with
    labels needs one: DataError listing them); novel: only documents that are not among the
    training text's (read from the run directory's data)."""
    import numpy as np

    from .sample import SampleConfig, default_seed, prepare

    ckpt, notes = _open(model, runs_dir)
    if seed_file is not None:
        seed = _read(seed_file)
    argument = "seed_file" if seed_file is not None else "seed"
    cfg = SampleConfig(num_chars=num_chars, temperature=temperature, top_k=top_k or 0,
                       top_p=top_p, greedy=greedy, num_samples=num_samples, stop=tuple(stop))
    rng = np.random.default_rng(rng_seed)
    if ckpt.end is not None:
        return _drawing(ckpt, seed or "", cfg, unk, rng, label, novel, notes, argument)
    if label is not None or novel:
        raise ArgumentError("--label and --novel are for a model of documents (trained with "
                            "--lines or on files); this model reads one stream")
    if seed is None:
        seed = default_seed(ckpt.vocab)
    try:
        generation = prepare(ckpt, seed, cfg, unk, rng)
    except DataError as e:
        raise SeedError(str(e), argument) from None
    return dataclasses.replace(generation, notes=notes + generation.notes)


def _drawing(ckpt, prefix, cfg, unk, rng, label, novel, notes, argument):
    """sampler's Drawing for a model of documents (cfg's stop strings are not used: each
    document ends at its end mark)."""
    from .sample import prepare_seed
    from .sample_docs import Drawing, conditioned

    if cfg.stop:
        notes += ("--stop is not used on a model of documents: each ends at its end mark",)
    if prefix:
        try:
            prefix, missing = prepare_seed(ckpt.vocab, prefix, unk)
        except DataError as e:
            raise SeedError(str(e), argument) from None
        if missing:
            notes += (f"{'skipped' if unk == 'skip' else 'replaced'} seed characters not in the "
                      f"model's vocabulary: {format_chars(missing)}",)
    return Drawing(conditioned(ckpt, label), prefix, cfg, rng, _training_documents(ckpt), novel,
                   label, notes)


def _training_documents(ckpt):
    """A function giving the set of the documents ckpt was trained on (read from its run
    directory's data, when it has one), or None."""
    import numpy as np

    from .documents import document_texts

    data = ckpt.path.parent / runs.DATA if ckpt.path is not None else None
    if data is None or not data.is_file():
        return None
    return lambda: set(document_texts(np.load(data, mmap_mode="r"), ckpt.vocab))


def generate(model, seed=None, num_chars=200, *, temperature=1.0, top_k=0, top_p=1.0,
             greedy=False, stop=(), num_samples=None, unk="error", rng_seed=None, label=None,
             novel=False):
    """Text that follows seed (default: a newline, or the model's first character), as `charrnn
    sample` draws it: the num_chars new characters (fewer if a stop string ends it), without
    the seed. num_samples=None gives one str; num_samples=K a list of K independent samples.
    unk: 'error', 'skip' or 'replace' for seed characters outside the model's vocabulary.
    The same rng_seed and options give the same text. A model of documents gives whole
    documents (each starting with seed, if given), for label (a model with labels), only new
    ones with novel (see sampler)."""
    generation = sampler(model, seed, num_chars, temperature=temperature, top_k=top_k,
                        top_p=top_p, greedy=greedy, stop=stop, num_samples=num_samples or 1,
                        unk=unk, rng_seed=rng_seed, label=label, novel=novel)
    texts = [s.text for s in generation.samples()]
    return texts[0] if num_samples is None else texts


def score(model, text, *, unk="error", exact=False, accuracy=False):
    """Score a str under a model, as `charrnn eval` does: loss (nats/char), bits_per_char,
    perplexity, n_chars (every character but the first, which is only context; with the model's
    completion setting, the completions' characters), and logprobs: each scored character's
    log-probability in nats (float64 array; -sum is loss * n_chars). unk='skip' leaves out
    characters outside the vocabulary (counted in 'skipped'); exact: one pass over the whole
    text, as `eval --exact`. accuracy: also what `eval --accuracy --json` adds (a model with a
    completion setting only, else ConfigError): accuracy (teacher-forced), correct_chars,
    exact_match (greedy), exact_lines, n_lines and, for labelled lines, levels."""
    from .accuracy import accuracy_report, check_completion, completion_counts
    from .parallel import Shards
    from .evaluate import score_text

    ckpt, _ = _open(model)
    if accuracy:
        check_completion(ckpt)
    with Shards(ckpt.train_cfg.shards, ckpt.train_cfg.threads) as shards:   # as trained
        scored = score_text(ckpt, text, unk, shards, exact, hits=accuracy)
        report = accuracy_report(completion_counts(ckpt, scored, shards)) if accuracy else {}
    completion = ckpt.train_cfg.completion
    return dict(scored.summary(), **({"completion": completion} if completion else {}), **report,
                logprobs=scored.scored_logprobs(), skipped=scored.n_skipped)


def score_files(files, model=None, *, unk="error", exact=False, accuracy=False, worst=0,
             per_char=None, runs_dir=runs.RUNS_DIR):
    """Score text files ('-': stdin, once at most) under a model, as `charrnn eval`: an
    evaluate.Evaluation (per file and total figures, the worst characters, .as_json() what
    `eval --json` prints) with .notes. worst: list that many of the most surprising characters;
    per_char: write every scored character's log-probability to this TSV file."""
    from .accuracy import check_completion
    from .evaluate import evaluate_texts
    from .errors import ArgumentError
    from .parallel import Shards

    names = [str(f) for f in files]
    if names.count("-") > 1:
        raise ArgumentError("'-' (stdin) can be given only once")
    ckpt, notes = _open(model, runs_dir)
    if accuracy:
        check_completion(ckpt)
    with Shards(ckpt.train_cfg.shards, ckpt.train_cfg.threads) as shards:   # as trained
        texts = [(name, _read(name)) for name in names]
        result = evaluate_texts(ckpt, texts, unk, exact, accuracy, worst, per_char, shards)
    return dataclasses.replace(result, notes=notes)


@dataclass
class Page:
    """A view, ready to write: its text (HTML or SVG), the default file name, what to say about
    it (notes) and, for viz, the View (units, figures)."""
    text: str
    default_name: str
    notes: tuple = ()
    view: object = None
    runs: tuple = ()


def view(file, model=None, *, start=0, length=10_000, neurons="auto", unk="error",
         runs_dir=runs.RUNS_DIR):
    """The page of `charrnn viz`: file's text ('-': stdin) from start, length characters,
    coloured by the model's surprisal, with rows for the units neurons names ('auto' or
    'L:i,...'). unk: 'error', 'skip' or 'replace' for characters outside the model's
    vocabulary (viz.known_text: skipped ones are left out of the text, and start counts the
    text without them; replace puts a space, or the model's first character, in their place);
    the notes say how many. ViewError for a start beyond the text or a unit not in the model;
    DataError for a text the model cannot read."""
    from .data import text_name
    from .viz import build_view, cut_note, known_text, parse_units
    from .viz_page import render_html

    ckpt, notes = _open(model, runs_dir)
    if ckpt.labels:
        raise DataError(f"{ckpt.path}: a model with labels cannot be viewed yet (the page has "
                        "no label to condition on)")
    cfg = ckpt.model_cfg
    units = parse_units(neurons, cfg.num_layers, cfg.hidden_size)
    name = text_name(file)
    text = _read(file)
    try:
        text, done = known_text(ckpt.vocab, text, unk,
                                "\n" if ckpt.train_cfg.documents == "lines" else "")
        page = build_view(ckpt, text, name, start, length, units, str(ckpt.path))
    except DataError as e:
        raise DataError(f"{name}: {e}") from None
    notes += tuple(note for note in (done, cut_note(page)) if note)
    return Page(render_html(page), "viz.html", notes, view=page)


def plot_runs(run_dirs, *, axis="iteration", fmt="svg"):
    """The chart of `charrnn plot`: the learning curves of the runs in run_dirs against axis
    (iteration, seconds or chars), as SVG (fmt 'svg') or an HTML page with a table ('html').
    A tune directory stands for its trials' run directories (those with an evaluation)."""
    from .plot import read_run, render_html, render_svg
    from .search import trial_dirs

    expanded, notes = [], []
    for d in run_dirs:
        trials = trial_dirs(d)
        expanded += [d] if trials is None else trials[0]
        notes += [] if trials is None else trials[1]
    if not expanded:
        raise DataError(f"{', '.join(map(str, run_dirs))}: no trial has an evaluation yet")
    found = [read_run(d) for d in expanded]
    text = render_svg(found, axis) if fmt == "svg" else render_html(found, axis)
    notes += [note for run in found for note in getattr(run, "notes", ())]
    return Page(text, "curves.svg", tuple(notes), runs=tuple(found))


def write_page(path, text):
    """Write a view's text to path (UTF-8, LF newlines); returns the bytes written. DataError if
    it cannot be written."""
    from .page import write_view

    write_view(path, text)
    return len(text.encode("utf-8"))


def export(model=None, output="model.html", *, fmt=None, weights="float32",
           runs_dir=runs.RUNS_DIR):
    """Write a model as `charrnn export` does (exports.py): a self-contained HTML page that
    writes with it (.html), an ONNX model (.onnx; needs `pip install charrnn[onnx]`), or a
    charrnn checkpoint of its weights as rounded by weights (.npz); fmt overrides the
    extension. weights: float32, float16 or int8 (per output unit scales). Returns
    exports.Exported (path, format, weights, bytes, notes)."""
    from .exports import export as write

    ckpt, notes = _open(model, runs_dir)
    done = write(ckpt, output, fmt, weights)
    return dataclasses.replace(done, notes=notes + done.notes)


def tune(file, *, trials=20, time_per_trial=None, out=None, space=None, config=None, sets=(),
         storage=None, study=None, pruner="median", rng_seed=None, log=None,
         runs_dir=runs.RUNS_DIR):
    """A hyperparameter search, as `charrnn tune` (search.py; needs `pip install
    charrnn[tune]`): runs trials, each a normal run in out/trial-NNNN trained as fit trains,
    with settings drawn from space (a YAML file of config keys, each a list of choices or a
    range {low, high, log, step}; None: a default space around charrnn's own choices), until
    the study has exactly `trials` trials, however many processes work on it.

    time_per_trial: each trial's budget ('30s'; the time key), else max_iters from config or
    sets. config, sets: fixed keys, under the space's. out: the tune directory (default
    runs_dir/tune-<file name>); storage: a database URL (postgresql://...) instead of the
    journal file out/study.journal; study: the study's name (default: out's name); pruner:
    'median', 'halving' or 'none'; rng_seed: every trial's seed, and the sampler's. log: a
    function taking each line about the trials. Returns a search.Result: the trials ranked,
    the best one, best.yaml (out/best.yaml). TuneError for a study that cannot be opened or
    joined; Interrupted (the trial is marked failed, its run can be resumed)."""
    from .errors import ArgumentError
    from .search import prepare, target, tune as run

    if file is None:
        raise ArgumentError("tune needs the text its trials train on: file")
    out = Path(out) if out is not None else Path(runs_dir) / f"tune-{Path(file).stem}"
    search = prepare(file, trials, time_per_trial, space, config, sets, pruner, rng_seed)
    return run(search, target(out, storage, study), fit, log)


def tune_results(out, *, storage=None, study=None):
    """The trials of a tune's study, ranked, as `charrnn tune --show`: a search.Result (its
    as_json() is what --json prints). out: the tune directory (its journal file), or with
    storage, the database URL; study: its name (default: out's name, or a journal's only
    study). TuneError for a directory or study that does not exist."""
    from .search import results, target

    return results(target(out, storage, study))
