"""Run directories: their layout (the names of the files in one), making one, owning it while
training, and finding the latest.

A run directory holds one training run:

    last.npz       LAST      the latest state (weights, optimizer, RNG, carried state): --resume
    best.npz       BEST      the state with the lowest validation loss so far
    metrics.jsonl  METRICS   one JSON object per evaluation
    data.npy       DATA      the training text's ids, cached for resuming
    labels.npy     LABELS    documents with labels: each position's label id, beside DATA
    lock           LOCK      while a process trains in it: its pid, host and start time
    .start.npz     START     a new run's starting state, until its first checkpoint (rollbacks)

Rules that the command line, the Python API and the tests all go through:

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
- A checkpoint is given as a file or as a run directory (its best.npz, else last.npz); without
  one, commands take the run under ./runs whose checkpoint was written last.

What a run may start from (resume, --init-from, --new-text) is plan.py's.
"""

import errno
import json
import os
import socket
import time
from pathlib import Path

from .errors import CheckpointError, RunError

try:
    import fcntl
except ImportError:      # not POSIX: the pid check alone (see _take)
    fcntl = None

RUNS_DIR = Path("runs")       # where default run directories are made, and the latest is found
LAST = "last.npz"
BEST = "best.npz"
METRICS = "metrics.jsonl"
DATA = "data.npy"
LABELS = "labels.npy"         # documents with labels: the label id of each of DATA's positions
LOCK = "lock"
START = ".start.npz"
NEXT_DATA = "data-next.npy"  # a new text's ids, while a resume with new_text switches to it
PROBE = ".time-probe.npz"    # a time budget's plan times a checkpoint write with it
LOCK_NAME = LOCK


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


# ----------------------------------------------------------------------------- mending a run's files

def mend_metrics(run_dir):
    """Cut a torn last line off run_dir's metrics.jsonl (a full disk or a kill during its write
    leaves one without its newline), so that the rows a resumed run appends start on a line of
    their own. Returns a note saying what was cut, or None when the file is whole."""
    path = Path(run_dir) / METRICS
    try:
        with open(path, "r+b") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return None
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunError(f"{path}: cannot mend it: {e.strerror}") from None
    cut = len(data) - keep
    return (f"{path}: cut off its last line, which a stopped run left unfinished ({cut:,} "
            f"byte{'' if cut == 1 else 's'} without a newline)")


# ----------------------------------------------------------------------------- finding a checkpoint

def holds_run(run_dir):
    """Whether run_dir holds a run already (a checkpoint)."""
    return (Path(run_dir) / LAST).exists() or (Path(run_dir) / BEST).exists()


def checkpoint_file(path):
    """A checkpoint file, or a run directory's best.npz (else last.npz). CheckpointError if
    there is neither."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no {BEST} or {LAST} in this directory")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def latest_run(runs_dir=RUNS_DIR):
    """The run directory under runs_dir whose checkpoint (best.npz or last.npz) was written last."""
    newest = {}
    for d in Path(runs_dir).glob("*"):
        times = [f.stat().st_mtime for f in (d / BEST, d / LAST) if f.is_file()]
        if times:
            newest[d] = max(times)
    if not newest:
        where = runs_dir if Path(runs_dir).is_absolute() else f"./{runs_dir}"
        raise CheckpointError(f"no trained run found under {where}; train one with "
                              "'charrnn train FILE' or give --checkpoint")
    return max(newest, key=lambda d: (newest[d], d.name))
