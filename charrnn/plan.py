"""What a run starts from: a new run's config, text and directory, or a run to resume, checked
and owned before training begins (train.py then runs it).

- A new run refuses a directory that already holds a run (last.npz or best.npz); --resume
  continues one only with the same text (SHA-256) and config, but for SAFE_TO_CHANGE; a run
  started --init-from a checkpoint keeps its model keys and vocabulary, which grows by the
  characters of its text that the checkpoint lacks (model.grow_vocab gives them fresh rows),
  unless the vocab key is given (then it must be the checkpoint's, and the text within it).
- A resume with new_text (--new-text) continues the run (weights, optimizer state, RNG,
  iteration, learning-rate scale) on another text, in the run's vocabulary, read from its
  beginning with the hidden state reset; the config rules are those of any resume. The
  vocabulary cannot grow there (the optimizer state has a row per character, and a resumed run
  goes on exactly): a text with new characters is refused, pointing to --init-from. The switch is
  recorded at once: last.npz gets the new text's SHA-256 and source, text_start (the iteration
  of the switch), passes_before (whole passes over the earlier texts, for lr_decay) and a reset
  best_val_loss (the validation text changed), and the new ids replace data.npy. The files are
  replaced in an order that never leaves a data.npy beside a last.npz of another text: the new
  ids are encoded under another name, data.npy is removed, last.npz is written, and the new ids
  are renamed data.npy (a resume that finds no data.npy reads the recorded text again).
"""

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import auto
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, Layers, ModelConfig, TrainConfig, as_dict
from .data import (BUILTIN_SOURCE, Corpus, DataError, Vocab, chunks_per_pass, file_sha256,
                   load_corpus, open_cached)
from .documents import END, documents_sha256, hold_out, load_documents
from .errors import ArgumentError, RunError, format_chars
from .runs import (DATA, LABELS, LAST, NEXT_DATA, RUNS_DIR, RunLock, holds_run, make_run_dir,
                   mend_metrics)
from .timing import seconds_per_char

# on resume: threads never changes the numbers; the others change what comes next (shards: in
# rounding, as the gradients are summed over other shards)
SAFE_TO_CHANGE = ("max_iters", "learning_rate", "eval_every", "threads", "shards", "time")
INIT_FROM_KEEPS = ("model", "hidden_size", "num_layers")   # a run --init-from keeps these


@dataclass(frozen=True)
class RunPlan:
    """Everything train.train needs, resolved once and checked: the configs, the encoded text,
    the run directory (owned by this process through lock), and the checkpoint it resumes or
    starts from. (A time budget's last say, max_iters, is planned when the run starts, from its
    own measured speed: train.py.)"""
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    corpus: Corpus
    run_dir: Path | None       # None for a dry run
    lock: RunLock | None
    resume: Checkpoint | None = None
    init_from: Checkpoint | None = None
    changed: tuple = ()        # config keys that differ from the resumed run's
    notes: tuple = ()          # what charrnn chose for the run (auto.py), to say

    def release(self):
        if self.lock is not None:
            self.lock.release()


# the words for the arguments in messages: the Python API's, and the command line's
API_WORDS = {"resume": "resume", "init_from": "init_from", "out": "out", "dry_run": "dry_run",
             "new_text": "new_text", "file": "file"}
CLI_WORDS = {"resume": "--resume", "init_from": "--init-from", "out": "--out",
             "dry_run": "--dry-run", "new_text": "--new-text", "file": "FILE"}


def check_arguments(file=None, out=None, resume=None, init_from=None, new_text=False,
                    dry_run=False, words=API_WORDS):
    """The arguments of a run that cannot go together: ArgumentError (words: how to name them)."""
    if resume is not None and (init_from is not None or out is not None or dry_run):
        others = [words[k] for k in ("init_from", "out", "dry_run")
                  if k != "dry_run" or words is CLI_WORDS]
        raise ArgumentError(f"{words['resume']} continues a run in its own directory: it cannot "
                            f"be combined with {', '.join(others[:-1])} or {others[-1]}")
    if new_text and (resume is None or file is None):
        raise ArgumentError(f"{words['new_text']} goes on with {words['file']} in the run of "
                            f"{words['resume']}: it needs both")


def plan(file=None, *, config=None, sets=(), keys=None, out=None, resume=None, init_from=None,
         new_text=False, runs_dir=RUNS_DIR):
    """The RunPlan of `charrnn train` / charrnn.fit: a new run, or the run in resume continued.
    The config is read once (config.Layers); the caller releases the plan's lock."""
    check_arguments(file, out, resume, init_from, new_text)
    layers = Layers.read(config, sets, keys)
    if resume is not None:
        return plan_resume(resume, file, layers, new_text)
    return plan_new_run(file, layers, out, init_from, runs_dir)


def plan_dry_run(file=None, *, config=None, sets=(), keys=None, init_from=None):
    """A new run's RunPlan without a run directory: what `train --dry-run` reports on."""
    layers = _documents_layer(file, Layers.read(config, sets, keys))
    start = _start_from(init_from, layers)
    corpus = _read_corpus(file, None, start.ckpt, start.train_cfg)
    return _with_choices(corpus, layers, start, None, None)


def inputs(file):
    """The training text's paths as a list (file: None for the built-in corpus, a path, or a
    list of files and folders), or None."""
    if file is None:
        return None
    return [Path(f) for f in file] if isinstance(file, (list, tuple)) else [Path(file)]


def _several(file):
    paths = inputs(file)
    return paths is not None and (len(paths) > 1 or paths[0].is_dir())


def _documents_layer(file, layers):
    """Several files or a folder are documents, one per file, unless the documents key says
    otherwise (lines; stream is refused: ConfigError)."""
    if not _several(file):
        return layers
    documents = layers.given().get("documents")
    if documents == "stream":
        raise ConfigError("documents stream reads one text; several files or a folder are read "
                          "as documents: files (each file one) or lines (each line one)",
                          "documents")
    if documents is None:
        return dataclasses.replace(layers, layers=layers.layers + (
            ("several files", {"documents": "files"}),))
    return layers


@dataclass(frozen=True)
class _Start:
    """A new run's config before charrnn's choices, and the checkpoint it starts from."""
    base: dict                 # the checkpoint's model keys, kept (INIT_FROM_KEEPS); or {}
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    ckpt: Checkpoint | None


def _start_from(init_from, layers):
    """The config of a new run, checked before anything is written. A run started from a
    checkpoint's weights keeps its INIT_FROM_KEEPS keys and vocabulary (ConfigError)."""
    if init_from is None:
        return _Start({}, *layers.resolve(), None)
    ckpt = load_checkpoint(init_from)
    base = dataclasses.asdict(ckpt.model_cfg)
    model_cfg, train_cfg = layers.resolve(base)
    for key in INIT_FROM_KEEPS:
        if getattr(model_cfg, key) != base[key]:
            raise ConfigError(f"--init-from: {key} is {base[key]!r} in {init_from}; a run "
                              f"started from its weights cannot change it to "
                              f"{getattr(model_cfg, key)!r}", key)
    if train_cfg.vocab and Vocab.from_text(train_cfg.vocab) != ckpt.vocab:
        raise ConfigError(f"--init-from: {init_from} has a vocabulary of its own, which a run "
                          "started from its weights keeps; leave vocab empty or give exactly "
                          "its characters", "vocab")
    return _Start(base, model_cfg, train_cfg, ckpt)


def _read_corpus(file, cache=None, ckpt=None, train_cfg=TrainConfig(), labels_cache=None):
    """The encoded text (None: the built-in corpus): in ckpt's vocabulary, grown by the text's
    new characters, if one is given (if the vocab key is given too, it is ckpt's, and does not
    grow); else in that of the vocab key's characters if given; else in the text's own.
    Documents (the documents key) are read by documents.load_documents, their end mark in the
    vocabulary."""
    vocab, source, hint, grow = None, "the checkpoint's vocabulary", "", False
    if ckpt is not None and train_cfg.vocab:
        vocab, source = ckpt.vocab, "the vocabulary that the vocab key gives"
        hint = "; leave vocab empty to grow the checkpoint's vocabulary"
    elif ckpt is not None:
        vocab, grow = ckpt.vocab, True
    elif train_cfg.vocab:
        extra = END if train_cfg.documents != "stream" else ""
        vocab = Vocab.from_text(train_cfg.vocab + extra)
        source = "the vocabulary that the vocab key gives"
    if train_cfg.documents == "stream":
        return load_corpus(file, cache, vocab=vocab, vocab_source=source, grow=grow, hint=hint)
    if file is None:
        raise ConfigError(f"documents {train_cfg.documents} needs a text: give FILE (the "
                          "built-in corpus is one stream)", "documents")
    return load_documents(inputs(file), train_cfg.documents, train_cfg.labels,
                          train_cfg.include_patterns, cache, labels_cache, vocab=vocab,
                          vocab_source=source, grow=grow)


def plan_new_run(file, layers, out=None, init_from=None, runs_dir=RUNS_DIR):
    """Check the config, make and own the run directory, encode the text into it (data.npy),
    and resolve the config with charrnn's choices. Nothing is left behind when it is refused."""
    layers = _documents_layer(file, layers)
    start = _start_from(init_from, layers)
    name = inputs(file)[0].stem if file is not None else "builtin"
    run_dir, created = make_run_dir(out, name, runs_dir)
    lock = RunLock(run_dir)
    try:
        lock.acquire()
        if holds_run(run_dir):
            raise RunError(f"{run_dir}: already holds a run; choose another --out, or continue "
                           f"it with --resume {run_dir}")
        corpus = _read_corpus(file, run_dir / DATA, start.ckpt, start.train_cfg,
                              run_dir / LABELS)
        return _with_choices(corpus, layers, start, run_dir, lock)
    except (RunError, DataError, ConfigError, OSError) as e:
        lock.release()
        if created and not isinstance(e, RunError):   # leave nothing half-made behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, OSError):
            raise RunError(f"{run_dir}: cannot write the run directory: {e.strerror}") from None
        raise


def _with_choices(corpus, layers, start, run_dir, lock):
    """The plan, its config resolved with charrnn's choices (auto.py) for the keys the user left
    open. A run started from a checkpoint keeps its model, so only its length and schedule may
    be chosen."""
    model_cfg, train_cfg = start.model_cfg, start.train_cfg
    resolved = as_dict(model_cfg, train_cfg)
    given = {k: resolved[k] for k in set(layers.given()) | set(start.base)}

    end = corpus.end

    def timed(model, N, T):
        """Seconds per training character of a model given by its model keys, here."""
        cfg = ModelConfig(**{**dataclasses.asdict(model_cfg), **model})
        return seconds_per_char(cfg, len(corpus.vocab), corpus.ids, N, T, train_cfg.shards,
                                train_cfg.threads, end=end)

    choices, said = auto.choose(len(corpus.ids), len(corpus.vocab), given, timed,
                                train_cfg.budget_seconds)
    if choices:
        model_cfg, train_cfg = layers.resolve(start.base, choices)
    if end is not None:   # the held-out documents, chosen now that val_frac is known
        labelled = run_dir is not None and corpus.label_ids is not None
        corpus = hold_out(corpus, train_cfg.val_frac,
                          cache=run_dir / DATA if run_dir is not None else None,
                          labels_cache=run_dir / LABELS if labelled else None)
    notes = tuple(note for note in (_grown(start.ckpt, corpus.vocab), said) if note)
    return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, init_from=start.ckpt,
                   notes=notes)


def _grown(ckpt, vocab):
    """A note when a run --init-from ckpt has a larger vocabulary than ckpt (its text brought
    characters ckpt lacks: train.py grows the weights, model.grow_vocab), else ''."""
    if ckpt is None or vocab == ckpt.vocab:
        return ""
    added = ckpt.vocab.missing(vocab.chars)
    return (f"--init-from: grew the vocabulary from {len(ckpt.vocab)} to {len(vocab)} "
            f"characters: {format_chars(added)} (new embedding and output rows)")


def plan_resume(run_dir, file=None, layers=Layers(), new_text=False):
    """Own run_dir, and check that its run can go on exactly: its last.npz, config changes only
    in SAFE_TO_CHANGE, something left to do, the same text (by SHA-256). new_text: go on with
    file instead, another text (see the module docstring), and record the switch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    lock = RunLock(run_dir).acquire()
    try:
        return _resume(run_dir, lock, file, layers, new_text)
    except BaseException:
        lock.release()
        raise


def _resume(run_dir, lock, file, layers, new_text=False):
    last = run_dir / LAST
    if not last.is_file():
        raise DataError(f"{run_dir}: no last.npz to resume from")
    ckpt = load_checkpoint(last)
    # a resumed run's time budget is only what this resume gives (time: that much more);
    # without one it goes on to the max_iters that its budget planned
    base = dict(as_dict(ckpt.model_cfg, ckpt.train_cfg), time="")
    model_cfg, train_cfg = layers.resolve(base)
    new = as_dict(model_cfg, train_cfg)
    changed = tuple(key for key in new if new[key] != base[key])
    for key in changed:
        if key not in SAFE_TO_CHANGE:
            raise ConfigError(f"cannot resume {run_dir} with {key}={new[key]!r}: the run has "
                              f"{key}={base[key]!r}, and only {', '.join(SAFE_TO_CHANGE)} may "
                              "change on resume (start a new run with --init-from instead)", key)
    if train_cfg.max_iters <= ckpt.iteration and not train_cfg.time:
        raise ConfigError(f"{run_dir} is at iteration {ckpt.iteration} and max_iters is "
                          f"{train_cfg.max_iters}: nothing to do; raise it with "
                          "--set max_iters=N", "max_iters")
    if ckpt.train_cfg.documents != "stream":
        corpus = _resume_documents(run_dir, ckpt, file, new_text)
        mended = mend_metrics(run_dir)
        return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, resume=ckpt, changed=changed,
                       notes=(mended,) if mended else ())
    if new_text:
        ckpt, corpus = _switch_text(run_dir, ckpt, file)
        mended = mend_metrics(run_dir)
        return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, resume=ckpt,
                       changed=changed + ("text",), notes=(mended,) if mended else ())
    expected, recorded = ckpt.info.get("data_sha256"), ckpt.info.get("data_source")
    if file is None and recorded != BUILTIN_SOURCE and not Path(recorded).is_file():
        raise DataError(f"{run_dir} was trained on {recorded}, which is no longer there; give "
                        "the text as FILE")
    path = file if file is not None else (None if recorded == BUILTIN_SOURCE else Path(recorded))
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(f"{path or BUILTIN_SOURCE}: not the text {run_dir} was trained on "
                        f"(SHA-256 {actual[:16]}..., the run's is {expected[:16]}...); resume "
                        f"with that text, go on with this one with --new-text, or start a new "
                        f"run with --init-from {run_dir}")
    cache = run_dir / DATA
    if cache.is_file():
        corpus = open_cached(cache, ckpt.vocab, recorded, expected)
    else:
        corpus = load_corpus(path, cache, vocab=ckpt.vocab)
    mended = mend_metrics(run_dir)
    return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, resume=ckpt, changed=changed,
                   notes=(mended,) if mended else ())


def _resume_documents(run_dir, ckpt, file, new_text):
    """The corpus of a run of documents to resume: its cached ids (data.npy, the held-out
    documents last) and labels (labels.npy), split where the run split them; the text given
    again (file) must read the same (SHA-256)."""
    if new_text:
        raise ArgumentError("--new-text goes on with another stream of text; a run of documents "
                            f"cannot switch: start a new run with --init-from {run_dir}")
    cache, labels = run_dir / DATA, run_dir / LABELS
    if not cache.is_file() or (ckpt.labels and not labels.is_file()):
        raise DataError(f"{run_dir}: its documents' cached ids ({DATA}"
                        f"{' and ' + LABELS if ckpt.labels else ''}) are missing; start a new "
                        f"run with --init-from {run_dir}")
    expected, source = ckpt.info.get("data_sha256"), ckpt.info.get("data_source")
    if file is not None:   # the text given again: read (not encoded) to compare
        cfg = ckpt.train_cfg
        given = documents_sha256(inputs(file), cfg.documents, cfg.labels, cfg.include_patterns)
        if given != expected:
            where = ", ".join(str(p) for p in inputs(file))
            raise DataError(f"{where}: not the text {run_dir} was trained on (SHA-256 "
                            f"{given[:16]}..., the run's is {expected[:16]}...); start a "
                            f"new run with --init-from {run_dir}")
    corpus = open_cached(cache, ckpt.vocab, source, expected)
    return dataclasses.replace(
        corpus, documents=ckpt.train_cfg.documents, label_names=ckpt.labels,
        label_ids=np.load(labels, mmap_mode="r") if ckpt.labels else None,
        val_start=ckpt.info.get("val_start"))


def _switch_text(run_dir, ckpt, file):
    """The checkpoint and corpus to go on with on another text, the switch written to run_dir
    (see the module docstring for the order of the files)."""
    info = ckpt.info
    # whole passes over the text so far (before it encodes the new one into data-next.npy)
    passes = info.get("passes_before", 0) + (
        (ckpt.iteration - info.get("text_start", 0))
        // max(1, _iters_per_pass(run_dir, ckpt)))
    corpus = load_corpus(file, run_dir / NEXT_DATA, vocab=ckpt.vocab, hint=(
        "; a resumed run keeps its vocabulary (its optimizer state has a row per character): "
        f"start a new run from its weights with --init-from {run_dir} to grow it"))
    hidden = [tuple(np.zeros_like(s) for s in layer) for layer in ckpt.hidden_state or ()]
    ckpt = dataclasses.replace(ckpt, hidden_state=hidden or None, info={
        **info, "data_sha256": corpus.sha256, "data_source": corpus.source,
        "text_start": ckpt.iteration, "passes_before": passes,
        "best_val_loss": None, "best_iteration": None})
    (run_dir / DATA).unlink(missing_ok=True)
    save_checkpoint(run_dir / LAST, ckpt)
    os.replace(run_dir / NEXT_DATA, run_dir / DATA)   # the memory map follows it
    return ckpt, corpus


def _iters_per_pass(run_dir, ckpt):
    """Iterations per pass over the run's current text: from data.npy, or (if a switch was cut
    short) from the text the checkpoint records."""
    cache = run_dir / DATA
    if cache.is_file():
        n = len(np.load(cache, mmap_mode="r", allow_pickle=False))
    else:
        recorded = ckpt.info.get("data_source")
        path = None if recorded == BUILTIN_SOURCE else Path(recorded)
        if path is not None and not path.is_file():
            raise DataError(f"{run_dir} was trained on {recorded}, which is no longer there "
                            "(its length counts the passes for lr_decay)")
        n = len(load_corpus(path, vocab=ckpt.vocab).ids)
    cfg = ckpt.train_cfg
    return chunks_per_pass(n - int(n * cfg.val_frac), cfg.batch_size, cfg.seq_length)
