"""Generating text from a checkpoint, one character at a time, for one sample or many at once.

The Stepper runs the model on N streams (N = 1 for one sample) with every buffer allocated once.
At N = 1 a step keeps its state as one contiguous row and the products are row vector times
matrix; for a batch it is feature-major, (H, N), as in layers.py, which makes the step products
about a quarter faster at N = 64. Each layer's new state is multiplied once per step, by
[Wx_{l+1} | Wh_l] (Why on top), which gives the next layer's input part now and this layer's
recurrent part for the next step; biases ride on a constant 1 appended to h. Layer 0's input
part, embed[id] @ Wx[0] + b[0], is a (V, G) table looked up by id. Sigmoid gates are stored
pre-scaled by 1/2 (exact in binary floating point) and, for the LSTM, moved next to each other, so
one tanh serves every gate: sig(a) = (1 + tanh(a/2)) / 2. At batch 1 a step is memory-bound
(every weight is read once per character), so what matters is few, large, contiguous
matrix-vector products and few ufunc calls; at batch 64 the two products are about 60 % of a
step and run near this machine's matmul peak. A long seed is read with the training forward pass
(model.forward), a chunk at a time, and only its last character is stepped.

Characters are drawn with the Gumbel-max trick: argmax(logits / T + g) with g standard Gumbel noise,
drawn in blocks ahead of use, is a draw from softmax(logits / T). Top-k and top-p remove characters
from the argmax; greedy decoding is the plain argmax. The same rng state and options give the same
text on any run.

Many samples at once (--num-samples) are split, like training batches, into shards of streams
that run at the same time in threads (as many as the checkpoint's `threads` allows), each with
its own generator seeded from rng (parallel.py); e.g. 64 samples of a 2 x 256 LSTM as two shards
of 32: 40-43K -> 50-52K characters per second here.
"""

import dataclasses
import functools
import threading
from dataclasses import dataclass

import numpy as np

from .data import DataError, format_chars
from . import direct
from .direct import context_of
from .model import direct_width, forward, zero_state
from .parallel import Shards, shard_bounds

BLOCK = 1 << 20  # random numbers drawn at once, at most (the same stream as drawing all up front)


@dataclass(frozen=True)
class SampleConfig:
    num_chars: int = 200        # characters generated after the seed, per sample (at most, with stop)
    temperature: float = 1.0    # T > 0: the logits are divided by T
    top_k: int = 0              # keep only the k most likely characters; 0 keeps all
    top_p: float = 1.0          # keep the fewest most likely characters whose probability
                                # reaches top_p (nucleus sampling); 1.0 keeps all
    greedy: bool = False        # always the most likely character (top_k = 1 is the same)
    num_samples: int = 1        # independent samples, computed together as one batch
    stop: tuple = ()            # a sample ends right after the first occurrence of any of these

    def __post_init__(self):
        if self.num_chars < 1 or self.num_samples < 1 or self.top_k < 0:
            raise ValueError("num_chars and num_samples must be >= 1, top_k >= 0")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")


@dataclass(frozen=True)
class Sample:
    """One generated sample: the new text (any stop string included), the stop string that ended
    it (None if it ran to num_chars), and, when asked for, the natural log of the model's
    probability of each new character (at temperature 1, before top-k and top-p)."""
    text: str
    stop: str | None = None
    logprobs: np.ndarray | None = None


# --------------------------------------------------------------------------- the model, stepped


def _gate_order(cell):
    """The gate blocks in Stepper order (sigmoid blocks first), and how many are sigmoid."""
    if cell == "lstm":   # i f g o -> i f o g: the three sigmoid blocks become [:3H]
        return [0, 1, 3, 2], 3
    if cell == "gru":    # r z n: the sigmoid blocks are [:2H] already
        return [0, 1, 2], 2
    return [0], 0


def _round16(n):
    """n rounded up to a multiple of 16 floats (64 bytes), so the next block starts aligned."""
    return -(-n // 16) * 16


class Stepper:
    """The model advanced one character at a time on N streams at once, state kept inside.

    At N = 1 a state is a row (1, H) and a step's gates a row (1, G). For a batch (N > 1) they are
    feature-major, (H, N) and (G, N), as in layers.py: every gate block is then a contiguous
    (H, N) block and the step products W^T (W, H+1) @ [h; 1] (H+1, N) run about a quarter faster
    than [h, 1] @ W at N = 64 (measured here with OpenBLAS); at N = 1 the row-vector product is
    the faster one. `_blk(x, lo, hi)` takes gate columns lo:hi in either layout.

    Each layer's new state with a constant 1 appended (which carries the biases) is multiplied
    once per step by [Wx_{l+1} | Wh_l] (Why in place of Wx_{l+1} on the top layer): one product
    gives both the next layer's input part of this step and this layer's recurrent part of the
    next step, so a step costs L products over contiguous weights, none over concatenated inputs.
    logit_scale (1 / temperature) is folded into Why and by.
    """

    def __init__(self, params, cell, batch_size=1, logit_scale=1.0, end=None):
        Wx, Wh, b = params["Wx"], params["Wh"], params["b"]
        L, H, G = Wx.shape
        N, dtype = batch_size, Wx.dtype
        self.cell, self.L, self.H, self.N = cell, L, H, N
        self.fm = fm = N > 1
        order, sigmoid_blocks = _gate_order(cell)
        sigmoid_cols = sigmoid_blocks * H

        def gates(m):
            """(..., G) with the gate blocks in Stepper order, sigmoid blocks halved."""
            m = np.concatenate([m[..., k * H:(k + 1) * H] for k in order], axis=-1)
            m[..., :sigmoid_cols] *= 0.5
            return m

        def state_buffer(width):
            return np.zeros((width, N) if fm else (N, width), dtype)

        # layer 0's input part: embed[id] @ Wx[0] + b[0], a table by id: (V, G), or (G, V)
        table = gates(params["embed"] @ Wx[0] + b[0])
        self.table = np.ascontiguousarray(table.T) if fm else table
        # at N = 1, each row as a (1, G) view, made once
        self.table_rows = [table[i:i + 1] for i in range(len(table))] if not fm else None
        self.a = state_buffer(G)
        self.tmp = state_buffer(H)
        self.c = np.stack([state_buffer(H) for _ in range(L)])
        self.layers = []
        for l in range(L):
            if l + 1 < L:
                out_w, out_b = gates(Wx[l + 1]), gates(b[l + 1])                     # (H, G)
            else:
                out_w, out_b = params["Why"] * logit_scale, params["by"] * logit_scale  # (H, V)
            width = out_w.shape[1]
            split = _round16(width)  # the recurrent part starts 64-byte aligned
            M = np.zeros((H + 1, split + G), dtype)
            M[:H, :width] = out_w
            M[H, :width] = out_b
            M[:H, split:] = gates(Wh[l])
            if cell == "gru":  # r * (h Wh_n + bhn): bhn belongs to the recurrent part
                M[H, split + 2 * H:] = params["bhn"][l]
            h = state_buffer(H + 1)
            out = state_buffer(split + G)
            if fm:
                h[H] = 1.0
                product = (np.ascontiguousarray(M.T), h, out)
            else:
                h[:, H] = 1.0
                product = (h, M, out)
            np.dot(*product)   # the recurrent part of a zero state
            # (the part of out ahead: for the next layer or the logits; the recurrent part; h;
            # the product)
            self.layers.append((self._blk(out, 0, width), self._blk(out, split, split + G),
                                self._blk(h, 0, H), product))
        top = self.layers[-1][0]
        self.logits = top.T if fm else top                  # (N, V), a view of the product
        # sig(x) = (1 + tanh(x / 2)) / 2 on the sigmoid columns, as tanh(a) * 0.5 + 0.5. In rows
        # (N = 1) over the whole row, with (1, G) arrays of 0.5 and 1 (a ufunc with a scalar
        # operand costs twice as much at N = 1); feature-major, the sigmoid blocks are one
        # contiguous block and a scalar operand is cheapest (a broadcast (G, 1) column is not).
        half = dtype.type(0.5)
        if cell == "gru":    # r z live in their own buffer, all sigmoid
            self.rz = state_buffer(2 * H)
            self.sig = (self.rz, half, half) if fm else (
                self.rz, np.full((1, 2 * H), half, dtype), np.full((1, 2 * H), half, dtype))
        elif fm:
            self.sig = (self.a[:sigmoid_cols], half, half)
        else:
            scale, shift = np.ones((1, G), dtype), np.zeros((1, G), dtype)
            scale[:, :sigmoid_cols] = shift[:, :sigmoid_cols] = half
            self.sig = (self.a, scale, shift)
        a, blk = self.a, self._blk
        if cell == "lstm":   # columns: i f o (halved pre-activations), g
            self.gates = (blk(a, 0, H), blk(a, H, 2 * H), blk(a, 2 * H, 3 * H), blk(a, 3 * H, G))
        elif cell == "gru":  # r z (halved)
            self.gates = (blk(self.rz, 0, H), blk(self.rz, H, 2 * H))
        # per layer, in the order a step uses them: its input part (None for layer 0: the
        # table), recurrent part, h, cell state, and the product
        self.plan = [(self.layers[l - 1][0] if l else None, recurrent, h, self.c[l], product)
                     for l, (_, recurrent, h, product) in enumerate(self.layers)]
        self.step = {"lstm": self._step_lstm, "gru": self._step_gru, "rnn": self._step_rnn}[cell]
        # direct features (direct.py): the ids each stream read last, and the tables, times
        # logit_scale as Why; the cell's step is wrapped to add their rows to the logits
        self.direct = None
        if "Wd" in params:
            Wd = params["Wd"] * dtype.type(logit_scale)
            self.direct = (Wd, end)
            self.history = np.full((N, Wd.shape[0] - 1), -1, dtype=np.int64)
            self._cell_step, self.step = self.step, self._step_direct

    def _step_direct(self, ids):
        logits = self._cell_step(ids)
        Wd, end = self.direct
        rows, self.history = direct.step_rows(self.history, ids, Wd.shape[0], Wd.shape[1], end)
        logits += direct.logits_forward(Wd, rows[None])
        return logits

    def _blk(self, x, lo, hi):
        """Gate columns lo:hi of a step buffer: x[lo:hi] feature-major, x[:, lo:hi] in rows."""
        return x[lo:hi] if self.fm else x[:, lo:hi]

    def load_state(self, state, history=None):
        """Start every stream from state, per layer (h,) or (h, c) as model.forward returns
        them, each (H, 1); the recurrent parts are recomputed from it. history: (N, n - 1) the
        ids read before, for direct features (direct.context_of), or None."""
        if history is not None and self.direct is not None:
            self.history = np.broadcast_to(history, self.history.shape).astype(np.int64)
        for l, (_, _, h, product) in enumerate(self.layers):
            h[:] = state[l][0] if self.fm else state[l][0][:, 0]
            if self.cell == "lstm":
                self.c[l] = state[l][1] if self.fm else state[l][1][:, 0]
            np.dot(*product)

    def _input(self, ids):
        """Layer 0's input part for ids: a row of the table (a view, at N = 1), or its columns
        (fancy indexing: several times faster than np.take with out= here)."""
        if self.table_rows is not None:
            return self.table_rows[ids[0]]
        return self.table[:, ids]

    # step(ids): feed one id per stream, ids (N,) intp; returns the logits (N, V) of the next
    # characters, times logit_scale (a buffer that the next call overwrites). One method per cell;
    # ufuncs with positional out arguments and np.dot (less dispatch than np.matmul): at N = 1
    # the Python overhead is most of what is not the products.

    def _step_lstm(self, ids):
        add, mul, tanh, dot = np.add, np.multiply, np.tanh, np.dot
        a, tmp = self.a, self.tmp
        sig, scale, shift = self.sig
        i, f, o, g = self.gates
        inp = self._input(ids)
        for above, recurrent, h, c, (x, W, out) in self.plan:
            if above is not None:
                inp = above
            add(inp, recurrent, a)
            tanh(a, a)
            # sigmoid columns: (1 + tanh(x / 2)) / 2, the weights hold x / 2 already
            mul(sig, scale, sig)
            add(sig, shift, sig)
            # c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
            mul(c, f, c)
            mul(i, g, tmp)
            add(c, tmp, c)
            tanh(c, tmp)
            mul(o, tmp, h)
            dot(x, W, out)
        return self.logits

    def _step_rnn(self, ids):
        inp = self._input(ids)
        for above, recurrent, h, _, (x, W, out) in self.plan:
            if above is not None:
                inp = above
            # h_t = tanh(x_t Wx + b + h_{t-1} Wh)
            np.add(inp, recurrent, self.a)
            np.tanh(self.a, h)
            np.dot(x, W, out)
        return self.logits

    def _step_gru(self, ids):
        H, tmp, rz, blk = self.H, self.tmp, self.rz, self._blk
        _, scale, shift = self.sig
        r, z = self.gates
        inp = self._input(ids)
        for above, recurrent, h, _, (x, W, out) in self.plan:
            if above is not None:
                inp = above
            np.add(blk(inp, 0, 2 * H), blk(recurrent, 0, 2 * H), rz)
            np.tanh(rz, rz)
            np.multiply(rz, scale, rz)
            np.add(rz, shift, rz)
            # n = tanh(x Wx_n + b_n + r * (h Wh_n + bhn))
            np.multiply(r, blk(recurrent, 2 * H, 3 * H), tmp)
            tmp += blk(inp, 2 * H, 3 * H)
            np.tanh(tmp, tmp)
            # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
            h -= tmp
            h *= z
            h += tmp
            np.dot(x, W, out)
        return self.logits


# --------------------------------------------------------------------------- choosing characters


def _gumbel(rng, shape, dtype):
    """Standard Gumbel noise, -log(-log(u)) for u uniform in [0, 1), as dtype. u = 0 gives -inf,
    which only means that character is not drawn at that step."""
    noise = rng.random(shape)
    with np.errstate(divide="ignore"):
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        np.log(noise, out=noise)
    np.negative(noise, out=noise)
    return noise.astype(dtype)


class _Chooser:
    """Picks each stream's next id from the Stepper's logits (N, V), which hold logits / T, into a
    reused (N,) buffer; gives the model's log-probabilities of the picks.

    Sampling is the Gumbel-max trick: argmax(logits / T + g), g standard Gumbel noise drawn ahead
    for each character and stream, is a draw from softmax(logits / T) (Gumbel 1954; Maddison et al.
    2014), two array operations per step instead of a CDF. Top-k and top-p set the logits outside
    the kept set to -inf first; both keep every character tied with the last one kept.
    """

    def __init__(self, logits, cfg):
        N, V = logits.shape
        self.logits, self.V, self.N = logits, V, N
        self.temperature = cfg.temperature
        self.greedy = cfg.greedy or cfg.top_k == 1
        self.top_k = cfg.top_k if 1 < cfg.top_k < V else 0
        self.top_p = cfg.top_p if cfg.top_p < 1.0 else 0.0
        self.noisy = not self.greedy
        self.ids = np.zeros(N, np.intp)
        self.rows = np.arange(N)
        self.w = np.empty((N, V), logits.dtype)
        if N == 1:   # flat views: 1-D argmax is one cheap call
            self.logits1, self.w1 = logits[0], self.w[0]

    def __call__(self, noise):
        """noise: Gumbel noise (N, V), or (V,) at N = 1. Returns the ids, (N,) intp (a reused
        buffer)."""
        ids, logits = self.ids, self.logits
        if self.greedy:
            np.argmax(logits, axis=1, out=ids)
            return ids
        if self.top_k or self.top_p:
            np.add(logits, noise.reshape(self.N, self.V), out=self.w)
            self.w[~self.kept()] = -np.inf
            np.argmax(self.w, axis=1, out=ids)
        elif self.N == 1:
            np.add(self.logits1, noise, self.w1)
            ids[0] = self.w1.argmax()
        else:
            np.add(logits, noise, out=self.w)
            np.argmax(self.w, axis=1, out=ids)
        return ids

    def kept(self):
        """Top-k and top-p: which characters each stream may draw, (N, V) bool."""
        logits, rows = self.logits, self.rows
        ranked = -np.sort(-logits, axis=1)                                  # descending
        count = np.full(self.N, self.top_k or self.V)
        if self.top_p:
            # the fewest most likely characters whose probability reaches top_p (of the top-k
            # mass when top_k is set too): rank j is kept while the mass above it is below
            weights = np.exp(ranked - ranked[:, :1])
            cdf = np.cumsum(weights, axis=1)
            reach = 1 + (cdf[:, :-1] < self.top_p * cdf[rows, count - 1][:, None]).sum(axis=1)
            np.minimum(count, reach, out=count)
        return logits >= ranked[rows, count - 1][:, None]

    def logprobs(self, ids):
        """log softmax(logits)[ids] per stream at temperature 1: (N,) float64."""
        z = self.logits * self.temperature
        z -= z.max(axis=1, keepdims=True)
        return z[self.rows, ids] - np.log(np.exp(z).sum(axis=1, dtype=np.float64))


# --------------------------------------------------------------------------- the samples


def prepare_seed(vocab, seed_text, unk="error"):
    """The seed as the model reads it, and the sorted characters outside its vocabulary.

    unk: 'error' raises DataError listing those characters, 'skip' drops them, 'replace' puts in
    their place a space (if the model knows one; else its first character).
    """
    if not seed_text:
        raise DataError("the seed text is empty")
    missing = vocab.missing(seed_text)
    if missing and unk == "error":
        raise DataError(f"seed has characters not in the model's vocabulary: "
                        f"{format_chars(missing)}")
    if missing:
        known = vocab.stoi
        filler = "" if unk == "skip" else replacement_char(vocab)
        seed_text = "".join(ch if ch in known else filler for ch in seed_text)
        if not seed_text:
            raise DataError("the seed has no character in the model's vocabulary: "
                            f"{format_chars(missing)}")
    return seed_text, missing


def default_seed(vocab):
    """The seed when none is given: a newline if the model knows one, else its first character."""
    return "\n" if "\n" in vocab.stoi else vocab.chars[0]


def replacement_char(vocab):
    """What --unk replace puts in place of an unknown seed character: a space if the model knows
    one, else its first character."""
    return " " if " " in vocab.stoi else vocab.chars[0]


def check_seed(vocab, seed_text):
    """Raises DataError if seed_text is empty or has characters outside the vocabulary."""
    prepare_seed(vocab, seed_text)


def generate_samples(ckpt, seed_text, cfg, rng=None, logprobs=False, on_char=None):
    """cfg.num_samples samples that follow seed_text (all in the vocabulary), as one batch.

    on_char, if given, is called with each new character of sample 0 as soon as it is drawn (to
    stream it). Returns a list of Sample. The same rng state and cfg give the same samples.
    """
    H = ckpt.params["Wh"].shape[1]
    tc = ckpt.train_cfg
    bounds = shard_bounds(cfg.num_samples, H, tc.shards)
    with Shards(tc.shards, tc.threads) as shards:   # also sets OpenBLAS's threads for batch 1 (cores.py)
        if len(bounds) == 1:
            return _collect(ckpt, seed_text, cfg, rng, logprobs, on_char)
        rng = rng if rng is not None else np.random.default_rng()
        seeds = rng.integers(0, 2**63 - 1, len(bounds))
        cancel = threading.Event()   # set when this call ends early (an error, Ctrl-C): shards stop
        jobs = [functools.partial(_collect, ckpt, seed_text,
                                  dataclasses.replace(cfg, num_samples=hi - lo),
                                  np.random.default_rng(seed), logprobs,
                                  on_char if lo == 0 else None, cancel)
                for (lo, hi), seed in zip(bounds, seeds)]
        try:
            return [sample for part in shards.map(jobs) for sample in part]
        finally:
            cancel.set()


def _collect(ckpt, seed_text, cfg, rng, logprobs, on_char, cancel=None):
    """generate_samples on one shard (or all) of the samples, in this thread."""
    run = _run(ckpt, seed_text, cfg, rng, logprobs, cancel)
    while True:
        try:
            ch = next(run)
        except StopIteration as done:
            return done.value
        if on_char is not None:
            on_char(ch)


def stream_chars(ckpt, seed_text, num_chars, temperature=1.0, greedy=False, rng=None, **options):
    """Yield the (up to) num_chars characters that follow seed_text, one sample, as they are
    drawn; options are the other SampleConfig fields (top_k, top_p, stop)."""
    cfg = SampleConfig(num_chars=num_chars, temperature=temperature, greedy=greedy, **options)
    yield from _run(ckpt, seed_text, cfg, rng, logprobs=False)


@dataclass(frozen=True)
class Generation:
    """A sampling request, checked and ready to run: the model, the seed as the model reads it
    (unknown characters skipped or replaced), the settings, the generator, and what to say
    about it (notes: characters skipped or replaced, stop strings that can never match)."""
    ckpt: object
    seed: str
    cfg: SampleConfig
    rng: np.random.Generator
    notes: tuple = ()
    documents = False        # a stream's text (sample_docs.Drawing: whole documents)

    def samples(self, logprobs=False, on_char=None):
        """The list of Sample (generate_samples); on_char gets sample 0's characters as drawn."""
        return generate_samples(self.ckpt, self.seed, self.cfg, self.rng, logprobs, on_char)


def prepare(ckpt, seed_text, cfg, unk="error", rng=None):
    """The Generation of cfg after seed_text (prepare_seed: DataError for a seed the model cannot
    read)."""
    fed, missing = prepare_seed(ckpt.vocab, seed_text, unk)
    notes = []
    if missing:
        count = sum(seed_text.count(ch) for ch in missing)
        what = f"{count} seed character{'s' if count > 1 else ''} not in the model's vocabulary"
        done = (f"skipped {what}" if unk == "skip" else
                f"replaced {what} with {replacement_char(ckpt.vocab)!r}")
        notes.append(f"{done}: {format_chars(missing)}")
    for stop in cfg.stop:
        if ckpt.vocab.missing(stop):
            notes.append(f"--stop {stop!r} can never match: the model cannot generate "
                         f"{format_chars(ckpt.vocab.missing(stop))}")
    return Generation(ckpt, fed, cfg, rng if rng is not None else np.random.default_rng(),
                      tuple(notes))


PRIME_CHUNK = 256  # seed characters per forward pass


def _prime(stepper, params, cell, seed_ids, end=None):
    """Feed the seed: all but its last character through model.forward at batch 1 (a chunk of
    characters per pass instead of one step per character), the last through the Stepper, whose
    logits then predict the first new character of every stream."""
    if len(seed_ids) > 1:
        L, H = params["Wx"].shape[:2]
        state = zero_state(cell, L, 1, H, params["Wx"].dtype)
        ids = seed_ids[None, :-1].astype(np.int32)
        width = direct_width(params)
        for start in range(0, ids.shape[1], PRIME_CHUNK):
            _, state, _ = forward(params, cell, ids[:, start:start + PRIME_CHUNK], state,
                                  keep_cache=False, end=end,
                                  context=context_of(ids, start, width))
        stepper.load_state(state, context_of(ids, ids.shape[1], width))
    stepper.step(np.full(stepper.N, seed_ids[-1], np.intp))


MAX_LOGIT_SCALE = 1e6  # 1 / T at most: below T = 1e-6 sampling is greedy anyway, and float32
                       # weights times 1 / T must not overflow


def _run(ckpt, seed_text, cfg, rng, logprobs, cancel=None):
    """A generator: yields sample 0's new characters as they are drawn, returns [Sample].
    cancel: a threading.Event; once set, the run ends at the next step (what it returns is
    then incomplete, and not used)."""
    check_seed(ckpt.vocab, seed_text)
    rng = rng if rng is not None else np.random.default_rng()
    vocab, N, n, V = ckpt.vocab, cfg.num_samples, cfg.num_chars, len(ckpt.vocab)
    stepper = Stepper(ckpt.params, ckpt.model_cfg.model, N,
                      min(1.0 / cfg.temperature, MAX_LOGIT_SCALE), end=ckpt.end)
    choose = _Chooser(stepper.logits, cfg)
    seed_ids = vocab.encode(seed_text)
    S = len(seed_ids)
    # every stream's ids, seed included, time-major: row S + t holds step t's picks
    history = np.empty((S + n, N), vocab.id_dtype())
    history[:S] = seed_ids[:, None]
    logp = np.zeros((n, N)) if logprobs else None
    stops = _StopMatcher(vocab, cfg.stop, history)
    length = np.full(N, n)          # characters generated per sample, stop string included
    stopped_by = [None] * N
    alive = np.ones(N, bool)
    _prime(stepper, ckpt.params, ckpt.model_cfg.model, seed_ids, ckpt.end)
    step = stepper.step
    block = max(1, BLOCK // (V * N))   # steps of noise per draw
    noise = None
    chars, noisy, stopping, streaming = vocab.chars, choose.noisy, stops.active, True
    for t in range(n):   # the hot loop: locals only
        if cancel is not None and cancel.is_set():
            break
        j = t % block
        if j == 0 and noisy:
            noise = _gumbel(rng, (min(block, n - t), N, V), stepper.logits.dtype)
            if N == 1:
                noise = noise.reshape(-1, V)
        ids = choose(noise[j] if noisy else None)
        history[S + t] = ids
        if logprobs:
            logp[t] = choose.logprobs(ids)
        if streaming:
            yield chars[ids[0]]
        if stopping:
            for k, stop in stops.check(S + t + 1, ids, alive):
                alive[k], length[k], stopped_by[k] = False, t + 1, stop
            streaming = bool(alive[0])
            if not alive.any():
                break
        if t + 1 < n:
            step(ids)
    return [Sample(vocab.decode(history[S:S + length[k], k]), stopped_by[k],
                   logp[:length[k], k].copy() if logprobs else None) for k in range(N)]


class _StopMatcher:
    """Finds the first stop string that a stream's text now ends with (a match may begin in the
    seed but must end in new text). Stop strings with characters outside the vocabulary can
    never be generated and are ignored."""

    def __init__(self, vocab, stop, history):
        self.stop = [s for s in stop if not vocab.missing(s)]
        self.active = bool(self.stop)
        self.vocab, self.history = vocab, history
        self.longest = max((len(s) for s in self.stop), default=0)
        self.last = np.zeros(len(vocab), bool)  # characters that can complete a stop string
        for s in self.stop:
            self.last[vocab.stoi[s[-1]]] = True

    def check(self, end, ids, alive):
        """Streams (still alive) whose text history[:end] ends with a stop string, and which."""
        candidates = np.flatnonzero(self.last[ids] & alive)
        for k in candidates:
            tail = self.vocab.decode(self.history[max(0, end - self.longest):end, k])
            for s in self.stop:
                if tail.endswith(s):
                    yield k, s
                    break

