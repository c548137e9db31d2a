"""How many cores a charrnn process computes on, BLAS included, and the OpenBLAS calls that set it.

A run's `threads` key is the most cores it may use: 0 (the default) for every core it may run
on, n >= 1 for at most n. The cores it does use at a given moment are the fewest of:

    1. threads, when it is not 0;
    2. the CPUs it may run on: its affinity mask (taskset, a scheduler's cpuset), and its cgroup's
       CPU quota (cpu.max: docker --cpus, a systemd CPUQuota) rounded up;
    3. OPENBLAS_NUM_THREADS, or else OMP_NUM_THREADS, when set to a positive integer;
    4. its share of those CPUs among the charrnn processes computing on this host at that moment
       (its peers, this one included): cores are dealt one at a time, in turn, to every peer that
       wants more, until none is left; every peer gets at least one.

Why 4: OpenBLAS's threads spin while they wait for each other, so processes that each start as
many BLAS threads as there are cores slow each other down many times over once there are more
of them than cores (measured here: 4 runs of a 2 x 256 LSTM at once on 2 cores took 30.6 s with 2
threads each and 109 s with 1 shard thread and 2 BLAS threads each, against 21.6 s one after
another, and 18.4 to 20.3 s at once with 1 BLAS thread each).

Peers find each other through a directory of this user's (under the temporary directory): each
process keeps a file there, named by host and pid, for as long as it computes, and holds an
exclusive flock on it; a file nobody holds a lock on was left by a process that died and is
removed by the next process that looks. Processes of other users and other programs are not
counted. The share is looked at again at most every RECHECK_SECONDS, so runs that start together
settle within a second and a run takes the cores that others leave when they end.

The cores a process computes on never change its numbers: they decide whether the shards of a
batch run at the same time or in turn (parallel.py) and how many threads OpenBLAS uses, while the
shards themselves follow the `shards` key (and the batch and hidden sizes) alone.
"""

import ctypes
import functools
import glob
import json
import math
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:      # not POSIX: no peers are seen, every process takes its CPUs
    fcntl = None

RECHECK_SECONDS = 1.0
_LOCAL_THREADS_SYMBOLS = ("openblas_set_num_threads_local",
                          "scipy_openblas_set_num_threads_local64_")
_SET_THREADS_SYMBOLS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                        "scipy_openblas_set_num_threads")
_GET_THREADS_SYMBOLS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                        "scipy_openblas_get_num_threads")


# ----------------------------------------------------------------------------- the CPUs there are

def affinity():
    """The CPUs this process may run on (its affinity mask), as a sorted tuple of CPU numbers."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def cgroup_quota(path="/sys/fs/cgroup/cpu.max"):
    """The cgroup v2 CPU quota in CPUs (quota / period, rounded up), or None without one."""
    try:
        quota, period = Path(path).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def env_threads(environ=None):
    """OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS, as a positive int; None when neither is."""
    environ = os.environ if environ is None else environ
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def available_cpus():
    """The CPUs this process may run on: its affinity mask, capped by its cgroup's quota."""
    quota = cgroup_quota()
    return min(len(affinity()), quota) if quota is not None else len(affinity())


def cpu_limit(threads):
    """The most cores a process with this `threads` (0: no cap of its own) may use, before
    sharing with its peers (points 1 to 3 of the module docstring)."""
    caps = [available_cpus()]
    if threads > 0:
        caps.append(threads)
    env = env_threads()
    if env is not None:
        caps.append(env)
    return max(1, min(caps))


# ----------------------------------------------------------------------------- peers on this host

def peers_dir():
    """Where this user's charrnn processes on this host register (created when missing)."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"charrnn-{uid}" / "peers"


def deal(cores, wants):
    """Cores dealt to peers, one at a time in turn to every peer that wants more, until none is
    left; wants: the cores each peer would take, in a fixed order. Each gets at least one."""
    got = [0] * len(wants)
    left = cores
    while left > 0 and any(g < w for g, w in zip(got, wants)):
        for i, want in enumerate(wants):
            if left and got[i] < want:
                got[i] += 1
                left -= 1
    return [max(1, g) for g in got]


class Registration:
    """This process's file among its peers', locked while it lives; see the module docstring.

    wanted: the most cores it would use (cpu_limit). cpus: the CPUs it may run on (peers whose
    CPUs do not overlap this one's do not compete with it)."""

    def __init__(self, wanted, cpus, directory=None):
        self.wanted, self.cpus = wanted, tuple(cpus)
        self.directory = Path(directory) if directory is not None else peers_dir()
        self.host = socket.gethostname().replace("/", "_")
        self.name = f"{self.host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.fd = None
        if fcntl is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # written whole and locked under a temporary name, then renamed: a file that others
            # can see is always locked by a live process, or left by a dead one
            tmp = self.directory / f".{self.name}.tmp"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, json.dumps({"wanted": wanted, "cpus": list(self.cpus)}).encode())
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(tmp, self.directory / self.name)
            self.fd = fd
        except OSError:          # an unwritable temporary directory: compute without peers
            self.fd = None

    def peers(self):
        """[(name, wanted)] of the live peers that compete with this process, itself included,
        sorted by name; removes files left by dead processes."""
        found = [(self.name, self.wanted)]
        if self.fd is None:
            return found
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        mine = set(self.cpus)
        for name in names:
            if name == self.name or name.startswith(".") or not name.startswith(self.host + "."):
                continue
            info = _live_peer(self.directory / name)
            if info is not None and mine.intersection(info.get("cpus", ())):
                found.append((name, int(info.get("wanted", 1))))
        return sorted(found)

    def share(self, cpu_count):
        """The cores this process may use now, of cpu_count, dealt among its live peers."""
        peers = self.peers()
        got = deal(cpu_count, [min(w, cpu_count) for _, w in peers])
        return got[[name for name, _ in peers].index(self.name)]

    def __del__(self):       # a CoreShare nobody closed must not count as a peer forever
        self.close()

    def close(self):
        if self.fd is not None:
            try:
                os.unlink(self.directory / self.name)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def _live_peer(path):
    """A peer's registration, or None if it is gone; a file no process holds locked is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:            # locked: its process is alive
            try:
                return json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
            except (OSError, ValueError):
                return None
        except OSError:
            return None
        try:                               # nobody holds it: left by a process that died
            os.unlink(path)
        except OSError:
            pass
        return None
    finally:
        os.close(fd)


class CoreShare:
    """The cores this process computes on now, for a `threads` setting (0: every core it may
    run on; n: at most n): cpu_limit(threads),
    shared with the peers (rechecked at most every RECHECK_SECONDS). Use as a context manager,
    or call close(), to leave the peers."""

    def __init__(self, threads):
        self.limit = cpu_limit(threads)
        self.registration = Registration(self.limit, affinity())
        self._checked = -math.inf
        self._cores = self.limit

    def cores(self):
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            self._cores = min(self.registration.share(available_cpus()), self.limit)
        return self._cores

    def close(self):
        self.registration.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------- OpenBLAS's threads

def _find_symbols(names):
    """The first of these functions found in the OpenBLAS libraries this process has loaded
    (numpy's own among them), then in numpy's wheel directory; None if none is."""
    candidates = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            candidates += [line.split(None, 5)[-1].strip() for line in maps if "blas" in line]
    except OSError:
        pass
    numpy_libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    candidates += glob.glob(os.path.join(numpy_libs, "*openblas*"))
    for path in dict.fromkeys(candidates):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            function = getattr(lib, name, None)
            if function is not None:
                return function
    return None


@functools.cache
def blas_local_threads():
    """OpenBLAS's per-thread thread-count setter (>= 0.3.27), a callable taking an int and
    returning the previous setting, or None."""
    setter = _find_symbols(_LOCAL_THREADS_SYMBOLS)
    if setter is not None:
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


@functools.cache
def _blas_global():
    setter, getter = _find_symbols(_SET_THREADS_SYMBOLS), _find_symbols(_GET_THREADS_SYMBOLS)
    if setter is None or getter is None:
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], None
    getter.argtypes, getter.restype = [], ctypes.c_int
    return setter, getter


def blas_threads():
    """OpenBLAS's thread count for this process, or None where it cannot be read."""
    calls = _blas_global()
    return calls[1]() if calls is not None else None


def set_blas_threads(n):
    """Set OpenBLAS's thread count for this process (nothing without OpenBLAS)."""
    calls = _blas_global()
    if calls is not None and n is not None and calls[1]() != n:
        calls[0](n)
