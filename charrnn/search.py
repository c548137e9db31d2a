"""Hyperparameter search (`charrnn tune`): many runs, each a trial of an Optuna study whose
settings are drawn from a search space, pruned when behind the others, counted exactly.

A tune directory (--out DIR) holds:

    study.journal      the study (Optuna's journal file), unless --storage names a database
    study.lock         the lock around "count the trials, then ask for one" (see below)
    trial-0007/        trial 7's run directory (a normal run: resume, sample, plot it), with
      trial.json       its number, state, params, value, seconds and reason, written atomically
    workers/HOST-PID/  one per live worker process, locked while it lives (runs.RunLock)
    best.yaml          the best trial's settings as a config file (charrnn train --config)

How a trial runs: a worker takes the study's lock, fails the trials of dead workers, counts the
trials, and if fewer than N asks Optuna for one and draws its params; then it releases the lock
and trains the trial as a normal run (the fit the API passes in), with on_evaluation reporting
each evaluation's validation loss to the trial at the step "evaluation number k" (k =
ceil(iteration / eval_every): with eval_every sized to a tenth of each trial's length, step k
is about k/10 of every trial, however fast its model) and stopping the run when the pruner
says so. The trial's value is its run's best validation loss.

The count is exact: "count, then ask" runs under one lock per study (a flock on study.lock
for the journal file, on one machine; a PostgreSQL advisory lock for a database, across
machines), so W workers racing end with exactly N trials, each run once. Every trial ends
COMPLETE, PRUNED or FAIL: a worker killed (kill -9) leaves its trial RUNNING, and the next
worker to take the lock fails it, either because the dead worker's directory lock is free
(same host) or, for a database, because its heartbeat stopped (Optuna's, any host). Its run
directory keeps its checkpoints (charrnn train --resume continues it by hand).

Optuna is an optional extra (pip install charrnn[tune]), imported inside the functions here.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import auto, runs
from .config import FIELDS, Layers, parse_duration, read_yaml
from .data import write_atomic
from .errors import (CheckpointError, ConfigError, DataError, RunError, TrainingError,
                     TuneError)

JOURNAL = "study.journal"
STUDY_LOCK = "study.lock"
TRIAL_JSON = "trial.json"
BEST_YAML = "best.yaml"
WORKERS = "workers"
TRIAL_DIR = "trial-{:04d}"

EVALUATIONS = 10              # evaluations per trial, about (eval_every sized to give them)
HEARTBEAT_SECONDS = 20        # a database's trials beat this often (Optuna's heartbeat) ...
GRACE_SECONDS = 120           # ... and are failed when silent this long (a worker on any host)
PRUNERS = ("median", "halving", "none")
STATE_ORDER = ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")
EXPECTED = (ConfigError, DataError, CheckpointError, RunError, TrainingError)

# around charrnn's own choices for a new run (auto.py): its cell and width, the layers on either
# side, dropout up to its cap, Adam's rate a few times either way, its chunk length and half
DEFAULT_SPACE = {
    "model": {"choices": ["gru", "lstm"]},
    "hidden_size": {"choices": [128, 192, 256, 384, 512]},
    "num_layers": {"choices": [1, 2, 3]},
    "dropout": {"low": 0.0, "high": auto.MAX_DROPOUT, "log": False, "step": None},
    "learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True, "step": None},
    "seq_length": {"choices": [50, 100, 200]},
}


# ----------------------------------------------------------------------------- the search space

def read_space(path=None):
    """The search space: {key: {"choices": [...]}} or {key: {"low", "high", "log", "step"}},
    from a YAML file mapping config keys to a list of choices or a range; None: DEFAULT_SPACE.
    ConfigError naming the file and key for an unknown key, a wrong type, a value out of
    range or an empty range."""
    if path is None:
        return json.loads(json.dumps(DEFAULT_SPACE))
    raw = read_yaml(path)
    if not raw:
        raise ConfigError(f"{path}: no keys: a search space maps config keys to a list of "
                          "choices or a range")
    return {key: _dimension(path, key, value) for key, value in raw.items()}


def _dimension(path, key, value):
    if key not in FIELDS:
        raise ConfigError(f"{path}: unknown key {key!r}; valid keys: {', '.join(FIELDS)}", key)
    if key == "time":
        raise ConfigError(f"{path}: time is each trial's budget (--time-per-trial), not a "
                          "setting to search", key)
    if isinstance(value, list) and value:
        return {"choices": [_checked(path, key, v) for v in value]}
    if isinstance(value, dict):
        return _range(path, key, value)
    raise ConfigError(f"{path}: {key} should be a list of choices ([128, 256]) or a range "
                      f"({{low: 1.0e-3, high: 1.0e-2}}), got {value!r}", key)


def _range(path, key, spec):
    unknown = sorted(map(str, set(spec) - {"low", "high", "log", "step"}))
    if unknown or "low" not in spec or "high" not in spec:
        raise ConfigError(f"{path}: {key}: a range has low and high, and may have log or step"
                          + (f"; unknown: {', '.join(unknown)}" if unknown else ""), key)
    if type(FIELDS[key].default) not in (int, float):
        raise ConfigError(f"{path}: {key} is text: give a list of choices, not a range", key)
    low, high = _checked(path, key, spec["low"]), _checked(path, key, spec["high"])
    if not low < high:
        raise ConfigError(f"{path}: {key}: an empty range: low {low!r} is not below high "
                          f"{high!r}", key)
    log, step = spec.get("log", False), spec.get("step")
    if type(log) is not bool:
        raise ConfigError(f"{path}: {key}: log should be true or false, got {log!r}", key)
    if step is not None:
        step = _checked(path, key, step, resolve=False)
        if log or not step > 0 or not _divides(step, high - low):
            raise ConfigError(f"{path}: {key}: step should be > 0, divide high - low, and "
                              f"not go with log; got {step!r}", key)
    if log and not low > 0:
        raise ConfigError(f"{path}: {key}: a log range needs low > 0, got {low!r}", key)
    return {"low": low, "high": high, "log": log, "step": step}


def _divides(step, span):
    ratio = span / step
    return abs(ratio - round(ratio)) < 1e-9 * max(1.0, ratio)


def _checked(path, key, value, resolve=True):
    """value as config key key takes it (an int for a float key becomes a float), checked as
    --config checks it: its type and (resolve) its range. The message names path."""
    try:
        layers = Layers.read(overrides={key: value})
        if resolve:
            layers.resolve()
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).removeprefix('argument: ')}", key) from None
    return layers.given()[key]


def suggest(trial, space):
    """The trial's params, drawn from the space (an Optuna trial's suggest_*)."""
    params = {}
    for key, dim in space.items():
        if "choices" in dim:
            params[key] = trial.suggest_categorical(key, dim["choices"])
        elif type(dim["low"]) is int:
            params[key] = trial.suggest_int(key, dim["low"], dim["high"], step=dim["step"] or 1,
                                            log=dim["log"])
        else:
            params[key] = trial.suggest_float(key, dim["low"], dim["high"], step=dim["step"],
                                              log=dim["log"])
    return params


# ----------------------------------------------------------------------------- what a tune is

@dataclass(frozen=True)
class Search:
    """A tune's inputs, read and checked once: the text, the user's config (file, --set, and
    the trials' budget), the space, and what the tune chooses for the keys nobody gave."""
    file: Path
    config: str | None         # the --config file or preset
    sets: tuple                # --set's
    time: str | None           # --time-per-trial
    space: dict                # read_space's
    fixed: dict                # the keys the user gave (config, --set, time), with their values
    chosen: dict               # the tune's values for keys given by neither fixed nor space
    n_trials: int
    n_chars: int
    corpus: object             # data.Corpus, for timing a trial's model
    pruner: str = "median"
    rng_seed: int | None = None

    def setup(self):
        """What a study records of the tune that made it, and what a joining tune must match."""
        return {"space": self.space, "fixed": self.fixed,
                "text": {"name": Path(self.file).name, "sha256": self.corpus.sha256}}


def prepare(file, trials, time_per_trial, space, config, sets, pruner, rng_seed):
    """The Search of a tune, checked before anything is written (ConfigError, DataError)."""
    from .data import load_corpus

    if pruner not in PRUNERS:
        raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)}; got {pruner!r}")
    if time_per_trial is not None:
        parse_duration(time_per_trial, "--time-per-trial")
    if not (isinstance(trials, int) and trials >= 1):
        raise ConfigError(f"trials must be an int >= 1, got {trials!r}")
    space = read_space(space)
    layers = Layers.read(config, sets, {"time": time_per_trial} if time_per_trial else None)
    layers.resolve()                               # the fixed keys' ranges, before any trial
    fixed = layers.given()
    if not fixed.get("time") and "max_iters" not in fixed and "max_iters" not in space:
        raise ConfigError("charrnn tune needs each trial's length: --time-per-trial (e.g. 30s), "
                          "or max_iters (--set max_iters=500)", "time")
    corpus = load_corpus(file)
    n = len(corpus.ids)
    chosen = {"val_frac": auto.val_frac(n), "lr_schedule": "cosine",
              "lr_floor": auto.LR_FLOOR}
    return Search(Path(file), config, tuple(sets), time_per_trial, space, fixed, chosen, trials,
                  n, corpus, pruner, rng_seed)


def trial_keys(search, params):
    """The keyword arguments of a trial's run beyond the config file and --set: the tune's
    choices for the keys nobody gave (as charrnn chooses them for a new run, auto.py: batch
    size, val_frac, a cosine schedule with warm-up; eval_every and warmup_iters sized to the
    trial's length, measured on this machine for a time budget), the budget, and the params.
    ConfigError for params that cannot go together."""
    from .timing import seconds_per_char

    given = set(search.fixed) | set(search.space)
    keys = {k: v for k, v in search.chosen.items() if k not in given}
    keys.update(params, **({"time": search.time} if search.time else {}))
    model_cfg, train_cfg = Layers.read(search.config, search.sets, keys).resolve()
    if "batch_size" not in given:                  # auto.shape's, for this seq_length
        n_train = int(search.n_chars * (1 - train_cfg.val_frac))
        keys["batch_size"] = auto.batch_size(n_train, train_cfg.seq_length)
    N, T = keys.get("batch_size", train_cfg.batch_size), train_cfg.seq_length
    iterations = train_cfg.max_iters
    if train_cfg.budget_seconds:
        per_char = seconds_per_char(model_cfg, len(search.corpus.vocab), search.corpus.ids, N, T,
                                    train_cfg.shards, train_cfg.threads)
        iterations = int(train_cfg.budget_seconds / (per_char * N * T))
    if "eval_every" not in given:
        keys["eval_every"] = max(1, round(iterations / EVALUATIONS))
    if "warmup_iters" not in given:
        keys["warmup_iters"] = min(auto.WARMUP_ITERS, iterations // 10)
    Layers.read(search.config, search.sets, keys).resolve()
    return keys


# ----------------------------------------------------------------------------- where a study lives

@dataclass(frozen=True)
class Target:
    """Where a study lives: the tune directory, the study's name (named: given, not out's),
    and its storage (url None: the journal file in out; shown: how messages name it, without
    a password)."""
    out: Path
    name: str
    url: str | None
    shown: str
    named: bool = False


def target(out, storage=None, study=None):
    out = Path(out)
    name = study or out.resolve().name
    if storage is None:
        return Target(out, name, None, str(out / JOURNAL), study is not None)
    return Target(out, name, _with_driver(storage), _hide_password(storage), study is not None)


def _with_driver(url):
    """url, a postgresql:// one naming psycopg2 where it is installed (charrnn[tune] installs
    it): SQLAlchemy 2.1 takes psycopg 3 for a URL without a driver, 2.0 psycopg2."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def _hide_password(url):
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:      # not a URL SQLAlchemy reads: show what precedes any '@'
        return url.rsplit("@", 1)[-1] if "@" in url else url


def optuna_module():
    """Optuna, or TuneError saying which extra to install."""
    try:
        import optuna
    except ImportError:
        raise TuneError("charrnn tune needs Optuna: pip install charrnn[tune]") from None
    return optuna


def _cannot_open(where, error):
    """A TuneError for a storage that cannot be opened: the first line of the reason."""
    if isinstance(error, ImportError):
        return TuneError(f"{where}: {error.name or 'a database driver'} is not installed: pip "
                         "install charrnn[tune]")
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    return TuneError(f"{where}: cannot open the study storage: "
                     f"{reason[0] if reason else type(error).__name__}")


def open_storage(where):
    """The Optuna storage of a Target: its journal file (safe for processes on one machine: a
    flock, which the kernel drops when its process dies, guards each append), or the
    database at its URL, with Optuna's heartbeat on. TuneError if it cannot be opened."""
    optuna = optuna_module()
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if where.url is None:
        path = where.out / JOURNAL
        return JournalStorage(JournalFileBackend(str(path), lock_obj=FileLock(f"{path}.lock")))
    try:
        with warnings.catch_warnings():    # the heartbeat is an experimental argument
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(where.url, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS)
    except (ImportError, ValueError) as e:
        raise _cannot_open(where.shown, e) from None
    except Exception as e:    # SQLAlchemy's errors: an unreachable server, a bad URL
        if type(e).__module__.startswith("sqlalchemy"):
            raise _cannot_open(where.shown, e) from None
        raise


# ----------------------------------------------------------------------------- locks

class FileLock:
    """An exclusive flock on a file, waited for; the kernel drops it when its process ends,
    however it ends. Also the journal file's lock (Optuna calls acquire and release)."""

    def __init__(self, path):
        self.path = Path(path)
        self.fd = None

    def acquire(self):
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd = fd
        return True

    def release(self):
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)           # closing drops the flock

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock, keyed by the study's name, on a connection of
    its own; the server drops it when the connection ends (a worker killed included)."""

    def __init__(self, where):
        self.where = where
        digest = hashlib.sha256(f"charrnn tune {where.name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self.engine = self.connection = None

    def acquire(self):
        import sqlalchemy

        try:
            if self.engine is None:
                self.engine = sqlalchemy.create_engine(self.where.url,
                                                       poolclass=sqlalchemy.pool.NullPool)
            self.connection = self.engine.connect()
            self.connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                                    {"key": self.key})
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as e:
            self.release()
            raise _cannot_open(self.where.shown, e) from None
        return True

    def release(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()     # the session ends, and its advisory locks with it

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def study_lock(where):
    """The lock around "count the trials, then ask for one" of a Target's study."""
    if where.url is None:
        return FileLock(where.out / STUDY_LOCK)
    if where.url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        return AdvisoryLock(where)
    raise TuneError(f"{where.shown}: charrnn tune keeps a study's count of trials exact with a "
                    "lock it takes on a journal file (the default) or a PostgreSQL database; "
                    "use one of those")


# ----------------------------------------------------------------------------- workers

class Worker:
    """This process as a worker of a tune directory: its directory out/workers/HOST-PID,
    locked (runs.RunLock) for as long as it lives, so that another worker on this host can
    tell that a trial's worker is gone (the kernel frees the lock of a killed process)."""

    def __init__(self, out):
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.dir = Path(out) / WORKERS / f"{self.host}-{self.pid}"
        self.lock = runs.RunLock(self.dir)

    def record(self):
        return {"host": self.host, "pid": self.pid, "dir": str(self.dir.resolve())}

    def __enter__(self):
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"{self.dir.parent.parent}: cannot write the tune directory: "
                           f"{e.strerror}") from None
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def worker_gone(record):
    """Whether the worker a trial's record names has ended: False for one on another host
    (a database's heartbeat tells), or still holding its directory's lock."""
    if not record:
        return True         # asked for, then died before it could say who it was
    if record.get("host") != socket.gethostname():
        return False
    path = Path(record["dir"]) if record.get("dir") else None
    if path is None or not path.is_dir():     # no lock to try: is its process there?
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    try:
        with runs.RunLock(path):
            pass
    except RunError:
        return False
    with contextlib.suppress(OSError):
        path.rmdir()
    return True


# ----------------------------------------------------------------------------- a study

def _pruner(name, optuna):
    if name == "median":        # the first evaluation is never judged: too early to say
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _sampler(rng_seed, n_done, optuna):
    """TPE, its seed drawn from rng_seed and the trials so far (so one worker's study is
    repeatable, and workers that ask in turn draw differently); constant_liar spreads the
    running trials apart."""
    seed = None if rng_seed is None else (rng_seed * 1_000_003 + n_done) % 2**32
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def open_study(where, lock, search, storage):
    """Create the study or join it, under its lock; a joining tune must have made it with the
    same space, fixed keys and text (TuneError naming what differs). Returns (study, note)."""
    optuna = optuna_module()
    with lock:
        study = optuna.create_study(storage=storage, study_name=where.name, direction="minimize",
                                    load_if_exists=True, pruner=_pruner(search.pruner, optuna))
        recorded, setup = study.user_attrs.get("charrnn"), json.loads(json.dumps(search.setup()))
        if recorded is None:
            study.set_user_attr("charrnn", setup)
            return study, f"study {where.name!r} made in {where.shown}"
        differs = _differences(recorded, setup)
        if differs:
            raise TuneError(f"{where.shown}: study {where.name!r} was made with {differs}; run "
                            "the same tune to join it, or give another --out or --study")
        done = len(study.get_trials(deepcopy=False))
        return study, (f"joining study {where.name!r} in {where.shown}: {done} trial"
                       f"{'' if done == 1 else 's'} so far, the same space, keys and text")


def _differences(recorded, setup):
    """What differs between a study's recorded setup and a tune's, in words ('' if nothing)."""
    there = recorded.get("text") or {}
    if there.get("sha256") != setup["text"]["sha256"]:    # the bytes, whatever the file's name
        return (f"another text ({there.get('name')}, SHA-256 {str(there.get('sha256'))[:16]}...; "
                f"this one is {setup['text']['sha256'][:16]}...)")
    for part, words in (("space", "another search space"), ("fixed", "other fixed keys")):
        there, here = recorded.get(part) or {}, setup[part]
        keys = [k for k in dict.fromkeys([*there, *here]) if there.get(k) != here.get(k)]
        if keys:
            shown = "; ".join(f"{k}: {_shown(there.get(k))} there, {_shown(here.get(k))} here"
                              for k in keys)
            return f"{words} ({shown})"
    return ""


def _shown(value):
    return "absent" if value is None else json.dumps(value)


def fail_stale(study, storage, say):
    """Fail the RUNNING trials whose worker is gone: by a database's heartbeat (Optuna's, any
    host) and by the worker's directory lock (this host). Call under the study's lock."""
    optuna = optuna_module()
    if getattr(storage, "get_heartbeat_interval", lambda: None)():   # a database's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in running:
        record = t.user_attrs.get("worker")
        if not worker_gone(record):
            continue
        who = f"process {record['pid']} on {record['host']}" if record else "its worker"
        reason = f"its worker ({who}) ended during the trial"
        run_dir = t.user_attrs.get("run_dir")
        if run_dir and runs.holds_run(run_dir):
            reason += f"; its run can go on: charrnn train --resume {run_dir}"
        # trial ids are the storage's keys; Optuna's own stale-trial code uses them the same way
        storage.set_trial_user_attr(t._trial_id, "reason", reason)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        if run_dir and Path(run_dir).is_dir():
            write_trial_json(Path(run_dir), study.study_name, _row(storage.get_trial(t._trial_id)))
        say(f"trial {t.number}: FAIL ({reason})")


def claim(study, lock, search, where, storage, worker, say):
    """Under the study's lock: fail stale trials, count, and if fewer than N ask for a trial
    and draw its params. Returns (trial, params), or None when the study has its N trials."""
    optuna = optuna_module()
    with lock:
        fail_stale(study, storage, say)
        n_done = len(study.get_trials(deepcopy=False))
        if n_done >= search.n_trials:
            return None
        study.sampler = _sampler(search.rng_seed, n_done, optuna)
        with warnings.catch_warnings():   # we beat the heartbeat ourselves: heartbeat() below
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed")
            trial = study.ask()
        trial.set_user_attr("worker", worker.record())
        trial.set_user_attr("run_dir", str(where.out / TRIAL_DIR.format(trial.number)))
        return trial, suggest(trial, search.space)


# ----------------------------------------------------------------------------- a trial

def pruning(trial, eval_every):
    """fit's on_evaluation for a trial: report each evaluation's validation loss at step k
    (its number: ceil(iteration / eval_every)), and stop the run when the pruner says so."""
    reported = set()

    def on_evaluation(record):
        step = math.ceil(record["iteration"] / eval_every)
        if step in reported:            # never twice (Optuna would warn and ignore it)
            return None
        reported.add(step)
        trial.report(record["val_loss"], step)
        if trial.should_prune():
            return (f"pruned: behind the other trials at evaluation {step} (iteration "
                    f"{record['iteration']:,})")
        return None
    return on_evaluation


@contextlib.contextmanager
def heartbeat(storage, trial):
    """Beat the trial's heartbeat from a thread while it runs (a database's storage; nothing
    for the journal file), so that a worker on another host can tell when this one dies."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return
    thread = threading.Thread(target=beat, name="charrnn-tune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(study, trial, params, search, storage, fit, say):
    """Train one trial as a normal run in its own run directory, report to it, and tell the
    study how it ended. Expected errors fail the trial and the tune goes on; anything else
    (Interrupted, a bug) fails it and is raised."""
    from .errors import Interrupted

    run_dir = Path(trial.user_attrs["run_dir"])
    say(f"trial {trial.number}: {_params_text(params)}; run directory {run_dir}")
    summary, reason = None, None
    try:
        keys = trial_keys(search, params)
        trial.set_user_attr("keys", keys)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_trial_json(run_dir, study.study_name, _row(_frozen(storage, trial)))
        on_evaluation = pruning(trial, keys.get("eval_every", search.fixed.get("eval_every")))
        with heartbeat(storage, trial):
            summary = fit(search.file, config=search.config, sets=search.sets, out=run_dir,
                          rng_seed=search.rng_seed, on_evaluation=on_evaluation,
                          log=lambda line: say(f"trial {trial.number}: {line}"), **keys)
    except EXPECTED as e:
        reason = str(e)
    except Interrupted as e:
        _finish(study, trial, storage, None, f"interrupted by signal {e.signum} at iteration "
                f"{e.iteration}; its run can go on: charrnn train --resume {run_dir}")
        raise
    except BaseException as e:
        _finish(study, trial, storage, None, f"stopped by {type(e).__name__}: {e}")
        raise
    row = _finish(study, trial, storage, summary, reason)
    say(f"trial {trial.number}: {row['state']}"
        + (f", validation loss {row['value']:.4f}" if row["value"] is not None else "")
        + (f" ({row['reason']})" if row["reason"] else ""))
    return row


def _finish(study, trial, storage, summary, reason):
    """Tell the study how a trial ended (its attributes first: a finished trial is frozen) and
    write its trial.json. A run stopped at its very last evaluation lost nothing: complete."""
    State = optuna_module().trial.TrialState
    if summary is None:
        state, value = State.FAIL, None
    elif summary["stopped"] and summary["iterations"] < summary["config"]["max_iters"]:
        state, value, reason = State.PRUNED, None, summary["stopped"]
    else:
        state, value = State.COMPLETE, summary["best_val_loss"]
    if summary is not None:
        trial.set_user_attr("seconds", summary["seconds"])
        trial.set_user_attr("iterations", summary["iterations"])
    if reason:
        trial.set_user_attr("reason", reason)
    study.tell(trial, value, state=state, skip_if_finished=True)
    row = _row(_frozen(storage, trial))
    with contextlib.suppress(OSError):
        write_trial_json(Path(trial.user_attrs["run_dir"]), study.study_name, row)
    return row


def _frozen(storage, trial):
    # trial ids are the storage's keys; Optuna's own stale-trial code uses them the same way
    return storage.get_trial(trial._trial_id)


def write_trial_json(run_dir, study_name, row):
    """A trial's trial.json in its run directory, written whole (temporary file, os.replace)."""
    write_atomic(Path(run_dir) / TRIAL_JSON,
                 (json.dumps({"study": study_name, **row}, indent=1) + "\n").encode("utf-8"))


def _params_text(params):
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


# ----------------------------------------------------------------------------- a tune

@contextlib.contextmanager
def _quiet(optuna):
    """Optuna's INFO lines off while a tune runs (charrnn says what happens), then back."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def tune(search, where, fit, log=None):
    """Run trials of the study at where (a Target) until it has search.n_trials, each through
    fit (charrnn.fit); then write best.yaml and return the study's Result."""
    say = log or (lambda line: None)
    optuna = optuna_module()
    lock = study_lock(where)
    try:
        where.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"{where.out}: cannot make the tune directory: {e.strerror}") from None
    _check_directory(where)
    with _quiet(optuna), Worker(where.out) as worker:
        with lock:       # a fresh database's tables are made by one worker at a time
            storage = open_storage(where)
        study, note = open_study(where, lock, search, storage)
        say(note)
        while (claimed := claim(study, lock, search, where, storage, worker, say)) is not None:
            run_trial(study, *claimed, search, storage, fit, say)
        with lock:
            return _result(study, where, storage, search.n_trials, write_best=True)


def _check_directory(where):
    """TuneError if the tune directory holds another study's trials (their trial-NNNN
    directories would be this study's)."""
    for path in sorted(where.out.glob(f"trial-*/{TRIAL_JSON}"))[:1]:
        try:
            other = json.loads(path.read_text(encoding="utf-8")).get("study")
        except (OSError, ValueError):
            continue
        if other is not None and other != where.name:
            raise TuneError(f"{where.out}: holds the trials of study {other!r}; give study "
                            f"{where.name!r} another --out (or --study {other} to join that one)")


def results(where):
    """The Result of the study at where, read only (`charrnn tune --show`). TuneError for a
    tune directory, journal or study that does not exist."""
    optuna = optuna_module()
    if where.url is None and not where.out.is_dir():
        raise TuneError(f"{where.out}: no such tune directory")
    if where.url is None and not (where.out / JOURNAL).is_file():
        raise TuneError(f"{where.out}: not a tune directory (no {JOURNAL} in it); for a study "
                        "in a database, give its --storage")
    with _quiet(optuna):
        storage = open_storage(where)
        names = optuna.get_all_study_names(storage)
        name = where.name
        if name not in names and len(names) == 1 and where.url is None and not where.named:
            name = names[0]                # the one study of a journal, whatever its name
        if name not in names:
            raise TuneError(f"{where.shown}: no study named {where.name!r}; studies there: "
                            f"{', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=name, storage=storage)
        return _result(study, dataclasses.replace(where, name=name), storage, None)


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Result:
    """A study's trials, ranked (complete ones by value, then pruned, running, failed), each a
    dict: number, state, value, params, seconds, iterations, run_dir, reason; the best
    complete one (with config: the keys of its run, as best.yaml holds them), and the file
    best.yaml (None where it is not written)."""
    study: str
    storage: str
    out: Path
    trials: tuple
    best: dict | None
    best_config: Path | None
    n_trials: int | None = None      # the count a tune ran to (None for --show)

    def counts(self):
        return {state: sum(t["state"] == state for t in self.trials) for state in STATE_ORDER}

    def as_json(self):
        return {"study": self.study, "storage": self.storage, "out": str(self.out),
                "counts": self.counts(), "trials": list(self.trials), "best": self.best,
                "best_config": None if self.best_config is None else str(self.best_config)}


def _row(frozen):
    attrs = frozen.user_attrs
    seconds = attrs.get("seconds")
    if seconds is None and frozen.datetime_start and frozen.datetime_complete:
        seconds = round((frozen.datetime_complete - frozen.datetime_start).total_seconds(), 3)
    return {"number": frozen.number, "state": frozen.state.name, "value": frozen.value,
            "params": frozen.params, "seconds": seconds, "iterations": attrs.get("iterations"),
            "run_dir": attrs.get("run_dir"), "reason": attrs.get("reason")}


def _rank(row):
    value = row["value"] if row["value"] is not None else math.inf
    return STATE_ORDER.index(row["state"]) if row["state"] in STATE_ORDER else 9, value, \
        row["number"]


def _result(study, where, storage, n_trials, write_best=False):
    frozen = study.get_trials(deepcopy=False)
    rows = sorted((_row(t) for t in frozen), key=_rank)
    complete = [t for t in frozen if t.state.name == "COMPLETE" and t.value is not None]
    best, path = None, where.out / BEST_YAML
    if complete:
        winner = min(complete, key=lambda t: (t.value, t.number))
        setup = study.user_attrs.get("charrnn", {})
        config = {k: v for k, v in {**setup.get("fixed", {}), **winner.user_attrs.get("keys", {}),
                                    **winner.params}.items() if k in FIELDS}
        best = dict(_row(winner), config=dict(sorted(config.items(),
                                                     key=lambda kv: list(FIELDS).index(kv[0]))))
        if write_best:
            text = best_yaml(best, study.study_name, len(frozen), setup, path)
            write_atomic(path, text.encode("utf-8"))
    return Result(study.study_name, where.shown, where.out, tuple(rows), best,
                  path if best and path.is_file() else None, n_trials)


def best_yaml(best, study_name, n_trials, setup, path=BEST_YAML):
    """best.yaml's text: a comment saying where it comes from, then the best trial's keys, in
    YAML that config.read_yaml reads back to the same values."""
    text = (setup.get("text") or {}).get("name", "FILE")
    lines = [f"# charrnn tune: the best of {n_trials} trials of study {study_name!r}: trial "
             f"{best['number']}, best validation loss {best['value']:.4f} nats/char",
             f"# train with it: charrnn train {text} --config {path}"]
    lines += [f"{key}: {_yaml_scalar(value)}" for key, value in best["config"].items()]
    return "\n".join(lines) + "\n"


def _yaml_scalar(value):
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no config key takes {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        # YAML 1.1 reads 1e-05 as text: its floats need a point (1.0e-05)
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return json.dumps(value)          # a double-quoted YAML string, escapes included


# ----------------------------------------------------------------------------- plotting a tune

def trial_dirs(path):
    """A tune directory's trial run directories that hold an evaluation, sorted, and a note for
    those that do not yet; None if path is not a tune directory (it has no metrics.jsonl of
    its own, and trial-* directories with a trial.json)."""
    path = Path(path)
    if (path / runs.METRICS).exists():
        return None
    trials = sorted(d for d in path.glob("trial-*") if (d / TRIAL_JSON).is_file())
    if not trials:
        return None
    found = [d for d in trials if (d / runs.METRICS).is_file()]
    left = len(trials) - len(found)
    notes = (f"{path}: {left} of its {len(trials)} trials have no evaluation yet (left out)",) \
        if left else ()
    return found, notes

