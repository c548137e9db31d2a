"""Data parallelism on one machine: a chunk's streams split into shards, whose losses and gradients
are computed at the same time in worker threads and then summed.

Why: NumPy's elementwise ufuncs (the gates' tanh alone is a third of an LSTM step at N = 64) run on
one core, and OpenBLAS spreads a step's small matmul over two cores poorly (here a (1024, 256) @
(256, 50) product ran at 110 GFLOP/s on two threads, 69 on one). The N streams of a chunk are
independent through the forward and backward passes, so each shard of n streams is the same
computation on fewer streams; with the loss of every shard divided by the whole batch's N, the
shards' gradients add up to the batch's. NumPy releases the GIL inside ufuncs and BLAS calls, so
the shards' threads run on separate cores, each asking OpenBLAS for its part of the cores
(`openblas_set_num_threads_local`, OpenBLAS >= 0.3.27, found among the loaded libraries): with
as many cores as shards running, one BLAS thread each, so that two shards do not start four BLAS
threads on two cores; with more cores, cores // shards each (16 cores, 2 shards: 8 each), so the
extra cores are not idle. (NumPy's bundled OpenBLAS 0.3.31 applies that "local" setting to the
whole process, so Shards.map also sets it around the shards and then puts back what the caller
had.) Measured here, two shards against one: LSTM 2 x 256, batch 50, 5-20 % faster; LSTM 2 x 512,
batch 64, 5-10 %; GRU 2 x 256, batch 64, about the same.

Memory: glibc gives each new thread a malloc arena of its own, and memory freed in one arena is not
reused by the others, so the shards' arenas would each hold their own peak (C3 in scripts/bench.py:
393 MB against 325 MB in one thread). Shards therefore ask glibc for one arena (mallopt
M_ARENA_MAX), before any other thread is started (train makes its Shards before tqdm starts its
monitor thread): C3 then peaks at about 341 MB, the rest being the shards' second set of gradients.

Two keys, two questions. `shards` (default 2) is how many shards a batch is cut into, at most
(shard_bounds: fewer for a small batch x hidden); `threads` (default 0: every core) caps the
cores. How many cores a process computes on at a given moment (its `threads`, its CPUs, the BLAS
environment variables and its share among the charrnn processes on the host) is cores.py's
business. The numbers depend on `shards`, N and H only (how many shards, which streams, the order
of the sums), never on the cores: with fewer cores than shards the shards take turns, with one
core (or without that OpenBLAS call: another BLAS, an older OpenBLAS) they run one after the other
in the calling thread, with one BLAS thread, and give the same results, without the speed-up.
"""

import contextvars
import ctypes
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import model
from .cores import CoreShare, blas_local_threads, blas_threads, set_blas_threads

# a shard's state block, streams x hidden units, is at least this many floats: below it the Python
# work of each ufunc call, which holds the GIL, outweighs the second core (scripts/bench.py, this
# machine: C1, 16 x 128 per shard, was 0-20 % slower in two shards; C2, 25 x 256, 5-20 % faster)
MIN_SHARD_FLOATS = 4096
M_ARENA_MAX = -8        # glibc's mallopt parameter number (malloc.h)


def shard_bounds(batch_size, hidden_size, shards):
    """Stream ranges [lo, hi) of the shards for a batch: at most `shards` of them, as many as
    have at least MIN_SHARD_FLOATS state floats (streams x hidden_size) each, sizes within 1."""
    k = max(1, min(shards, batch_size, batch_size * hidden_size // MIN_SHARD_FLOATS))
    edges = [batch_size * i // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


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


class Shards:
    """Runs the shards of a chunk on the cores this process may use now (cores.py), and sets
    OpenBLAS's thread count to those cores for the products made outside the shards. Use as a
    context manager (or call close()): it registers among this host's charrnn processes, and
    puts OpenBLAS's thread count back as it found it when it ends.

    count: the `shards` setting, how many shards a batch is cut into at most (shard_bounds).
    threads: the `threads` setting, the most cores to use (0: every core, cores.py). Shards run
    at the same time, in worker threads, when this process may use two cores or more and
    OpenBLAS has its per-thread setting: as many at once as there are cores, each with
    cores // (shards running) OpenBLAS threads (at least 1); else in turn, in the calling
    thread: the same numbers either way."""

    def __init__(self, count, threads=0):
        self.count = count
        self.share = CoreShare(threads)
        workers = min(self.share.limit, count)
        self.setter = setter = blas_local_threads() if workers > 1 else None
        if setter is not None:
            one_malloc_arena()
        self.pool = (ThreadPoolExecutor(workers, thread_name_prefix="charrnn-shard")
                     if setter is not None else None)
        self._worker = threading.local()     # each worker thread's OpenBLAS setting
        self._blas_before = blas_threads()
        self.cores = None
        self.update()

    def update(self):
        """Look again at the cores this process may use (at most once a second, cores.py) and
        set OpenBLAS's thread count to them. Cheap: call it once per iteration."""
        if self.share is None:           # closed
            return self.cores
        cores = self.share.cores()
        if cores != self.cores:
            self.cores = cores
            set_blas_threads(cores)
        return cores

    @property
    def parallel(self):
        """Whether shards run at the same time now."""
        return self.pool is not None and self.cores > 1

    def blas_per_shard(self, n_jobs):
        """OpenBLAS threads for each of n_jobs shards run at once: the cores split among the
        shards running at the same time (at most one per core), at least 1."""
        return max(1, self.cores // max(1, min(n_jobs, self.cores)))

    def map(self, jobs):
        """Results of calling each job (no arguments), in order."""
        self.update()
        if not self.parallel or len(jobs) == 1:
            return [job() for job in jobs]
        per_shard = self.blas_per_shard(len(jobs))
        # numpy's bundled OpenBLAS 0.3.31 applies the "local" setting to every thread, so it is
        # also made here and undone after the shards: the caller's own products keep their cores
        before = self.setter(per_shard)
        running = threading.BoundedSemaphore(self.cores)   # at most `cores` shards at a time
        setter, worker = self.setter, self._worker

        def limited(job):
            with running:
                # the worker's own setting, where "local" means the thread; made only when it
                # changes (numpy's OpenBLAS: already made above, the same value)
                if getattr(worker, "blas", None) != per_shard:
                    setter(per_shard)
                    worker.blas = per_shard
                return job()
        try:
            # each job in a copy of the caller's context: its np.errstate (a context variable)
            futures = [self.pool.submit(contextvars.copy_context().run, limited, job)
                       for job in jobs]
            return [f.result() for f in futures]
        finally:
            self.setter(before)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self.share is not None:
            self.share.close()
            self.share = None
            set_blas_threads(self._blas_before)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InTurn:
    """Shards' interface for callers that give none: one shard, one thread, the jobs in turn."""
    count = 1
    parallel = False

    def update(self):
        return 1

    def map(self, jobs):
        return [job() for job in jobs]


def loss_and_grads(params, cell, inputs, targets, state, dropout=0.0, rng=None, shards=None,
                   end=None, labels=None, weight_drop=0.0, embed_drop=0.0, variational=False,
                   context=None):
    """model.loss_and_grads over shards of the streams (see the module docstring); the same
    arguments and results. shards: a Shards, or None for one shard (exactly model.loss_and_grads).

    With dropout, each shard draws its masks from its own generator, seeded from rng (so rng
    still holds all the randomness of training, and resumes exactly). weight_drop's and
    embed_drop's masks belong to the whole batch: drawn once from rng before the shards' seeds
    (as model.loss_and_grads draws them before dropout's), applied to the weights once, and the
    summed gradient masked once, so that the shards' gradients still add up to the batch's."""
    N, T = inputs.shape
    bounds = shard_bounds(N, params["Wh"].shape[1], shards.count if shards is not None else 1)
    if len(bounds) == 1:
        return model.loss_and_grads(params, cell, inputs, targets, state, dropout, rng,
                                    end=end, labels=labels, weight_drop=weight_drop,
                                    embed_drop=embed_drop, variational=variational,
                                    context=context)
    masks = model.draw_masks(params, weight_drop, embed_drop, rng)
    used = model.apply_masks(params, masks)
    rngs = [None] * len(bounds)      # no generator shared between threads: dropout's are their own
    if rng is not None and dropout > 0.0:
        rngs = [np.random.default_rng(seed) for seed in rng.integers(0, 2**63 - 1, len(bounds))]
    jobs = [functools.partial(model.loss_and_grads, used, cell, inputs[lo:hi], targets[lo:hi],
                              [tuple(s[:, lo:hi] for s in layer) for layer in state],
                              dropout, shard_rng, batch_size=N, end=end,
                              labels=None if labels is None else labels[lo:hi],
                              variational=variational,
                              context=None if context is None else context[lo:hi])
            for (lo, hi), shard_rng in zip(bounds, rngs)]
    results = shards.map(jobs)
    # every shard's loss is per counted character of that shard: (hi - lo) * T of them, or
    # fewer where targets are -1 (a completion setting), maybe none
    counts = [int((targets[lo:hi] >= 0).sum()) for lo, hi in bounds]
    loss = sum(r[0] * c for r, c in zip(results, counts)) / sum(counts) if sum(counts) else 0.0
    grads = results[0][1]
    for _, more, _ in results[1:]:
        for name, g in grads.items():
            g += more[name]
    model.mask_grads(grads, masks)
    new_state = [tuple(np.concatenate(parts, axis=1) for parts in zip(*layers))
                 for layers in zip(*(r[2] for r in results))]
    return loss, grads, new_state
