"""Run directories: making one, owning it while training, and what a run may start from.

A run directory holds one training run (the files train.py writes). Rules that the command line,
the Python API and the tests all go through:

- A default run directory, runs/<YYYYmmdd-HHMMSS>-<text name>, is made with an exclusive mkdir;
  when that name is taken (runs started in the same second), the next free one of <name>-2,
  <name>-3, ... is made instead, so every process gets its own, whatever the timing.
- A run directory belongs to one live process at a time: the process that trains in it holds an
  exclusive lock (flock) on its file `lock`, which names the process (pid, host, start time).
  Another process that wants the directory (train --out, --resume) is refused with a RunError
  naming the owner. The kernel drops the lock when its process ends, however it ends, so a lock
  file left by a killed process blocks nothing. (On a file system without flock, a process on
  the same host that no longer exists does not block either; one on another host does, and the
  message says which file to delete once that process is gone.)
- A new run refuses a directory that already holds a run (last.npz or best.npz); --resume
  continues one only with the same text (SHA-256) and config, but for SAFE_TO_CHANGE; a run
  started --init-from a checkpoint keeps its model keys and vocabulary.
- A resume with new_text (--new-text) continues the run (weights, optimizer state, RNG,
  iteration, learning-rate scale) on another text, in the run's vocabulary, read from its
  beginning with the hidden state reset; the config rules are those of any resume. The switch is
  recorded at once: last.npz gets the new text's SHA-256 and source, text_start (the iteration
  of the switch), passes_before (whole passes over the earlier texts, for lr_decay) and a reset
  best_val_loss (the validation text changed), and the new ids replace data.npy. The files are
  replaced in an order that never leaves a data.npy beside a last.npz of another text: the new
  ids are encoded under another name, data.npy is removed, last.npz is written, and the new ids
  are renamed data.npy (a resume that finds no data.npy reads the recorded text again).
"""

import dataclasses
import errno
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import auto
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import (ConfigError, ModelConfig, TrainConfig, as_dict, given_keys, load_config,
                     parse_duration)
from .data import (BUILTIN_SOURCE, Batches, Corpus, DataError, Vocab, chunks_per_pass,
                   file_sha256, load_corpus, open_cached)
from .model import init_params
from .parallel import Shards
from .train import seconds_per_iteration

try:
    import fcntl
except ImportError:      # not POSIX: the pid check alone (see _take)
    fcntl = None

RUNS_DIR = Path("runs")
LOCK_NAME = "lock"
SAFE_TO_CHANGE = ("max_iters", "learning_rate", "eval_every", "threads", "time")  # on resume
INIT_FROM_KEEPS = ("model", "hidden_size", "num_layers")   # a run --init-from keeps these
NEXT_CACHE = "data-next.npy"   # a new text's ids, while a resume with new_text switches to it


class RunError(RuntimeError):
    """A run directory that cannot be used: owned by another live process, holding a run
    already, or not writable. The message names the directory (and the owner)."""


# ----------------------------------------------------------------------------- making a directory

def make_run_dir(out=None, name="builtin", runs_dir=RUNS_DIR):
    """Make the run directory: out if given (it may exist, empty or left by a run that never
    wrote a checkpoint), else runs_dir/<time>-<name>, made exclusively (see the module
    docstring). Returns (path, whether this call made it)."""
    if out is not None:
        out = Path(out)
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"{out}: cannot write the run directory: {e.strerror}") from None
        return out, created
    runs_dir = Path(runs_dir)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for k in range(1, 10_000):
            path = runs_dir / (base if k == 1 else f"{base}-{k}")
            try:
                path.mkdir()
                return path, True
            except FileExistsError:
                continue
    except OSError as e:
        raise RunError(f"{runs_dir}: cannot make a run directory there: {e.strerror}") from None
    raise RunError(f"{runs_dir}: no free run directory name left for {base}")


# ----------------------------------------------------------------------------- owning a directory

class RunLock:
    """This process's ownership of a run directory (see the module docstring). acquire() takes
    it or raises RunError naming the owner; release() gives it back and removes the file."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd = None

    def acquire(self):
        while self.fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise RunError(f"{self.run_dir}: cannot write the run directory: "
                               f"{e.strerror}") from None
            try:
                if self._take(fd):
                    self.fd, fd = fd, None
            finally:
                if fd is not None:
                    os.close(fd)
        return self

    def _take(self, fd):
        """Lock fd's file, True if it is still the one at self.path (a previous owner may have
        removed it between our open and our lock: then try again). RunError if owned."""
        try:
            if fcntl is None:
                raise OSError(errno.ENOLCK, "no flock")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(self._in_use(_read_owner(fd))) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise RunError(f"{self.run_dir}: cannot lock the run directory: "
                               f"{e.strerror}") from None
            owner = _read_owner(fd)          # no flock here: is the recorded owner alive?
            if owner and not _gone(owner):
                raise RunError(self._in_use(owner) + f" (if it is not, delete {self.path})") \
                    from None
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return False
        except FileNotFoundError:
            return False
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        return True

    def _in_use(self, owner):
        who = (f"process {owner.get('pid', '?')} on host {owner.get('host', '?')}, training "
               f"since {owner.get('started', '?')}" if owner else "another process")
        return f"{self.run_dir}: in use by {who}; a run directory belongs to one process at a time"

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)       # while still holding the lock (see _take)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_owner(fd):
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def _gone(owner):
    """Whether the process an owner record names is known to have ended (same host only)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    if owner["pid"] == os.getpid():
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


# ----------------------------------------------------------------------------- what a run starts from

@dataclass
class RunPlan:
    """Everything train.train needs, checked: the configs, the encoded text, the run directory
    (owned by this process through lock), and the checkpoint it resumes or starts from."""
    model_cfg: object
    train_cfg: object
    corpus: Corpus
    run_dir: Path
    lock: RunLock
    resume: Checkpoint | None = None
    init_from: Checkpoint | None = None
    changed: tuple = ()        # config keys that differ from the resumed run's
    notes: tuple = ()          # what charrnn chose for the run (auto.py), to say

    def release(self):
        self.lock.release()


def new_run_config(config=None, sets=(), init_from=None, overrides=None):
    """(ModelConfig, TrainConfig, the init_from Checkpoint or None) for a new run. A run started
    from a checkpoint's weights keeps its INIT_FROM_KEEPS keys (ConfigError if changed)."""
    if init_from is None:
        return *load_config(config, sets, overrides=overrides), None
    ckpt = load_checkpoint(init_from)
    base = dataclasses.asdict(ckpt.model_cfg)
    model_cfg, train_cfg = load_config(config, sets, base=base, overrides=overrides)
    for key in INIT_FROM_KEEPS:
        if getattr(model_cfg, key) != base[key]:
            raise ConfigError(f"--init-from: {key} is {base[key]!r} in {init_from}; a run "
                              f"started from its weights cannot change it to "
                              f"{getattr(model_cfg, key)!r}", key)
    if train_cfg.vocab and Vocab.from_text(train_cfg.vocab) != ckpt.vocab:
        raise ConfigError(f"--init-from: {init_from} has a vocabulary of its own, which a run "
                          "started from its weights keeps; leave vocab empty or give exactly "
                          "its characters", "vocab")
    return model_cfg, train_cfg, ckpt


def read_corpus(file, cache=None, ckpt=None, vocab=""):
    """The encoded text (None: the built-in corpus): in ckpt's vocabulary if one is given, else
    in that of the vocab key's characters if given, else in the text's own."""
    if ckpt is not None:
        return load_corpus(file, cache, vocab=ckpt.vocab)
    if vocab:
        return load_corpus(file, cache, vocab=Vocab.from_text(vocab),
                           vocab_source="the vocabulary that the vocab key gives")
    return load_corpus(file, cache)


def plan_new_run(file=None, config=None, sets=(), out=None, init_from=None, overrides=None,
                 runs_dir=RUNS_DIR):
    """Check the config, make and own the run directory, encode the text into it (data.npy).
    Nothing is left behind when the text is refused."""
    model_cfg, train_cfg, ckpt = new_run_config(config, sets, init_from, overrides)
    name = Path(file).stem if file is not None else "builtin"
    run_dir, created = make_run_dir(out, name, runs_dir)
    lock = RunLock(run_dir)
    try:
        lock.acquire()
        if (run_dir / "last.npz").exists() or (run_dir / "best.npz").exists():
            raise RunError(f"{run_dir}: already holds a run; choose another --out, or continue "
                           f"it with --resume {run_dir}")
        corpus = read_corpus(file, run_dir / "data.npy", ckpt, train_cfg.vocab)
        model_cfg, train_cfg, chosen = open_choices(corpus, config, sets, overrides, ckpt)
    except (RunError, DataError, ConfigError, OSError) as e:
        lock.release()
        if created and not isinstance(e, RunError):   # leave nothing half-made behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, OSError):
            raise RunError(f"{run_dir}: cannot write the run directory: {e.strerror}") from None
        raise
    return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, init_from=ckpt,
                   notes=(chosen,) if chosen else ())


def open_choices(corpus, config=None, sets=(), overrides=None, init_from=None):
    """The config resolved again with charrnn's choices (auto.py) for the keys the user left
    open: (ModelConfig, TrainConfig, the line saying what was chosen, or ""). A run started from
    a checkpoint keeps its model, so only its length and schedule may be chosen."""
    base = dataclasses.asdict(init_from.model_cfg) if init_from is not None else {}
    model_cfg, train_cfg = load_config(config, sets, base=base, overrides=overrides)
    resolved = as_dict(model_cfg, train_cfg)
    given = {k: resolved[k] for k in given_keys(config, sets, overrides) | set(base)}
    budget = parse_duration(train_cfg.time) if train_cfg.time else None

    def seconds_per_char(model, N, T):
        """Timed on a few throwaway iterations, on the text repeated if it is short."""
        cfg = ModelConfig(**{**dataclasses.asdict(model_cfg), **model})
        params = init_params(cfg.model, len(corpus.vocab), cfg.hidden_size, cfg.num_layers,
                             np.random.default_rng(0))
        ids = np.resize(np.asarray(corpus.ids[:4 * N * T + 1]), 4 * N * T + 1)
        timing = TrainConfig(batch_size=N, seq_length=T, threads=train_cfg.threads)
        with Shards(train_cfg.threads) as shards:
            per_iter = seconds_per_iteration(params, cfg, timing, Batches(ids, N, T), shards,
                                             timed_iters=2)
        return per_iter / (N * T)

    choices, said = auto.choose(len(corpus.ids), len(corpus.vocab), given, seconds_per_char,
                                budget)
    if choices:
        model_cfg, train_cfg = load_config(config, sets, base={**base, **choices},
                                           overrides=overrides)
    return model_cfg, train_cfg, said


def plan_resume(run_dir, file=None, config=None, sets=(), overrides=None, new_text=False):
    """Own run_dir, and check that its run can go on exactly: its last.npz, config changes only
    in SAFE_TO_CHANGE, something left to do, the same text (by SHA-256). new_text: go on with
    file instead, another text (see the module docstring), and record the switch."""
    run_dir = Path(run_dir)
    if new_text and file is None:
        raise ConfigError("new_text continues a run on another text: give that text (FILE)")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    lock = RunLock(run_dir).acquire()
    try:
        return _resume(run_dir, lock, file, config, sets, overrides, new_text)
    except BaseException:
        lock.release()
        raise


def _resume(run_dir, lock, file, config, sets, overrides, new_text=False):
    last = run_dir / "last.npz"
    if not last.is_file():
        raise DataError(f"{run_dir}: no last.npz to resume from")
    ckpt = load_checkpoint(last)
    # a resumed run's time budget is only what this resume gives (time: that much more);
    # without one it goes on to the max_iters that its budget planned
    base = dict(as_dict(ckpt.model_cfg, ckpt.train_cfg), time="")
    model_cfg, train_cfg = load_config(config, sets, base=base, overrides=overrides)
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
    if new_text:
        ckpt, corpus = _switch_text(run_dir, ckpt, file)
        return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, resume=ckpt,
                       changed=changed + ("text",))
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
    cache = run_dir / "data.npy"
    if cache.is_file():
        corpus = open_cached(cache, ckpt.vocab, recorded, expected)
    else:
        corpus = load_corpus(path, cache, vocab=ckpt.vocab)
    return RunPlan(model_cfg, train_cfg, corpus, run_dir, lock, resume=ckpt, changed=changed)


def _switch_text(run_dir, ckpt, file):
    """The checkpoint and corpus to go on with on another text, the switch written to run_dir
    (see the module docstring for the order of the files)."""
    info = ckpt.info
    # whole passes over the text so far (before it encodes the new one into data-next.npy)
    passes = info.get("passes_before", 0) + (
        (ckpt.iteration - info.get("text_start", 0))
        // max(1, _iters_per_pass(run_dir, ckpt)))
    corpus = load_corpus(file, run_dir / NEXT_CACHE, vocab=ckpt.vocab)
    hidden = [tuple(np.zeros_like(s) for s in layer) for layer in ckpt.hidden_state or ()]
    ckpt = dataclasses.replace(ckpt, hidden_state=hidden or None, info={
        **info, "data_sha256": corpus.sha256, "data_source": corpus.source,
        "text_start": ckpt.iteration, "passes_before": passes,
        "best_val_loss": None, "best_iteration": None})
    (run_dir / "data.npy").unlink(missing_ok=True)
    save_checkpoint(run_dir / "last.npz", ckpt)
    os.replace(run_dir / NEXT_CACHE, run_dir / "data.npy")   # the memory map follows it
    return ckpt, corpus


def _iters_per_pass(run_dir, ckpt):
    """Iterations per pass over the run's current text: from data.npy, or (if a switch was cut
    short) from the text the checkpoint records."""
    cache = run_dir / "data.npy"
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
