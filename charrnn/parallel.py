"""Data parallelism on one machine: a chunk's streams split into shards, whose losses and gradients
are computed at the same time in worker threads and then summed.

Why: NumPy's elementwise ufuncs (the gates' tanh alone is a third of an LSTM step at N = 64) run on
one core, and OpenBLAS spreads a step's small matmul over two cores poorly (here a (1024, 256) @
(256, 50) product ran at 110 GFLOP/s on two threads, 69 on one). The N streams of a chunk are
independent through the forward and backward passes, so each shard of n streams is the same
computation on fewer streams; with the loss of every shard divided by the whole batch's N, the
shards' gradients add up to the batch's. NumPy releases the GIL inside ufuncs and BLAS calls, so
the shards' threads run on separate cores, each asking OpenBLAS for a single thread of its own
(`openblas_set_num_threads_local`, OpenBLAS >= 0.3.27, found among the loaded libraries) so that
two shards do not start four BLAS threads on two cores. (NumPy's bundled OpenBLAS 0.3.31 applies
that "local" setting to the whole process, so Shards.map also sets it around the shards and then
puts back what the caller had.) Measured here, two shards against one: LSTM 2 x 256, batch 50,
5-20 % faster; LSTM 2 x 512, batch 64, 5-10 %; GRU 2 x 256, batch 64, about the same.

Memory: glibc gives each new thread a malloc arena of its own, and memory freed in one arena is not
reused by the others, so the shards' arenas would each hold their own peak (C3 in scripts/bench.py:
393 MB against 325 MB in one thread). Shards therefore ask glibc for one arena (mallopt
M_ARENA_MAX), before any other thread is started (train makes its Shards before tqdm starts its
monitor thread): C3 then peaks at about 341 MB, the rest being the shards' second set of gradients.

The numbers depend on `threads` and N only (how many shards, which streams, the order of the sums),
never on where they run: without that OpenBLAS call (another BLAS, an older OpenBLAS), or with one
core to run on, the shards run one after the other in the calling thread, and give the same
results, without the speed-up.
"""

import contextvars
import ctypes
import functools
import glob
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import model

# a shard's state block, streams x hidden units, is at least this many floats: below it the Python
# work of each ufunc call, which holds the GIL, outweighs the second core (scripts/bench.py, this
# machine: C1, 16 x 128 per shard, was 0-20 % slower in two shards; C2, 25 x 256, 5-20 % faster)
MIN_SHARD_FLOATS = 4096
M_ARENA_MAX = -8        # glibc's mallopt parameter number (malloc.h)
_LOCAL_THREADS_SYMBOLS = ("openblas_set_num_threads_local",
                          "scipy_openblas_set_num_threads_local64_")


def shard_bounds(batch_size, hidden_size, threads):
    """Stream ranges [lo, hi) of the shards for a batch: as many as threads allows with at least
    MIN_SHARD_FLOATS state floats (streams x hidden_size) each, sizes within 1."""
    k = max(1, min(threads, batch_size, batch_size * hidden_size // MIN_SHARD_FLOATS))
    edges = [batch_size * i // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


@functools.cache
def blas_local_threads():
    """OpenBLAS's per-thread thread-count setter, as a Python callable taking an int, or None.

    Looked for in the shared libraries this process has loaded (numpy's own OpenBLAS among them),
    then in numpy's wheel directory."""
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
        for name in _LOCAL_THREADS_SYMBOLS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
                return setter
    return None


@functools.cache
def one_malloc_arena():
    """Ask glibc to serve every thread from one malloc arena (see the module docstring); True if
    it agreed. Elsewhere (macOS, musl) there is no such call or it does nothing: False."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1


def _cores():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Shards:
    """Worker threads for up to `threads` shards of a chunk; use as a context manager (or call
    close()). threads = 1, or no per-thread OpenBLAS setting: shards run in the calling thread."""

    def __init__(self, threads):
        self.threads = threads
        # one core (e.g. taskset): shards in turn, the same numbers without the threads' overhead
        self.setter = setter = (blas_local_threads() if threads > 1 and _cores() > 1 else None)
        if setter is not None:
            one_malloc_arena()
        self.pool = (ThreadPoolExecutor(threads, thread_name_prefix="charrnn-shard",
                                        initializer=setter, initargs=(1,))
                     if setter is not None else None)

    @property
    def parallel(self):
        return self.pool is not None

    def map(self, jobs):
        """Results of calling each job (no arguments), in order."""
        if self.pool is None or len(jobs) == 1:
            return [job() for job in jobs]
        # numpy's bundled OpenBLAS 0.3.31 applies the "local" setting to every thread, so it is
        # also made here and undone after the shards: the caller's own products keep all threads
        before = self.setter(1)
        try:
            # each job in a copy of the caller's context: its np.errstate (a context variable)
            futures = [self.pool.submit(contextvars.copy_context().run, job) for job in jobs]
            return [f.result() for f in futures]
        finally:
            self.setter(before)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def loss_and_grads(params, cell, inputs, targets, state, dropout=0.0, rng=None, shards=None):
    """model.loss_and_grads over shards of the streams (see the module docstring); the same
    arguments and results. shards: a Shards, or None for one shard (exactly model.loss_and_grads).

    With dropout, each shard draws its masks from its own generator, seeded from rng (so rng
    still holds all the randomness of training, and resumes exactly)."""
    N, T = inputs.shape
    threads = shards.threads if shards is not None else 1
    bounds = shard_bounds(N, params["Wh"].shape[1], threads)
    if len(bounds) == 1:
        return model.loss_and_grads(params, cell, inputs, targets, state, dropout, rng)
    rngs = [None] * len(bounds)      # no generator shared between threads: dropout's are their own
    if rng is not None and dropout > 0.0:
        rngs = [np.random.default_rng(seed) for seed in rng.integers(0, 2**63 - 1, len(bounds))]
    jobs = [functools.partial(model.loss_and_grads, params, cell, inputs[lo:hi], targets[lo:hi],
                              [tuple(s[:, lo:hi] for s in layer) for layer in state],
                              dropout, shard_rng, batch_size=N)
            for (lo, hi), shard_rng in zip(bounds, rngs)]
    results = shards.map(jobs)
    # every shard's loss is per character of that shard; each has (hi - lo) * T characters
    loss = sum(r[0] * (hi - lo) for r, (lo, hi) in zip(results, bounds)) / N
    grads = results[0][1]
    for _, more, _ in results[1:]:
        for name, g in grads.items():
            g += more[name]
    new_state = [tuple(np.concatenate(parts, axis=1) for parts in zip(*layers))
                 for layers in zip(*(r[2] for r in results))]
    return loss, grads, new_state
