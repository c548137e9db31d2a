"""Generating text from a checkpoint, one character at a time.

The stepper runs the model at batch 1 with every buffer allocated once: layer 0's input projection
is a (V, G) table looked up by id, and for rnn and lstm layers above it the input and recurrent
matmuls are one, [x, h] @ [Wx; Wh]. Random numbers for the whole sample are drawn up front.
"""

import numpy as np

from .data import DataError, format_chars


def _sigmoid_tanh_affine(cell, H, dtype):
    """Per-column (scale, shift) so that one tanh serves every gate of a (1, G) row:
    sig(a) = 0.5 * tanh(0.5 * a) + 0.5 on sigmoid blocks, tanh(a) on tanh blocks."""
    kinds = {"lstm": "sstS", "gru": "ss"}[cell]  # s/S: sigmoid block, t: tanh block
    scale = np.concatenate([np.full(H, 1.0 if k == "t" else 0.5, dtype) for k in kinds])
    shift = np.concatenate([np.full(H, 0.0 if k == "t" else 0.5, dtype) for k in kinds])
    return scale, shift


class Stepper:
    """The model advanced one character at a time (batch 1), state kept inside."""

    def __init__(self, params, cell):
        self.cell = cell
        self.L, self.H = params["Wx"].shape[:2]
        H, dtype = self.H, params["Wx"].dtype
        self.table = params["embed"] @ params["Wx"][0] + params["b"][0]         # (V, G)
        self.Wh, self.Wx, self.b = params["Wh"], params["Wx"], params["b"]
        self.bhn = params.get("bhn")
        # [x, h] @ [Wx; Wh] for layers above the first (rnn, lstm)
        self.Wcat = [None] + [np.concatenate([params["Wx"][l], params["Wh"][l]])
                              for l in range(1, self.L)]
        self.Why, self.by = params["Why"], params["by"]
        G = params["Wx"].shape[2]
        self.xh = np.zeros((self.L, 1, 2 * H), dtype)   # per layer: [input, own h]
        self.c = np.zeros((self.L, 1, H), dtype)
        self.a = np.empty((1, G), dtype)
        self.ah = np.empty((1, G), dtype)
        self.tmp = np.empty((1, H), dtype)
        self.logits = np.empty((1, len(self.by)), dtype)
        if cell in ("lstm", "gru"):
            self.scale, self.shift = _sigmoid_tanh_affine(cell, H, dtype)

    def step(self, char_id):
        """Feed one id; returns the logits (V,) for the next character (a reused buffer)."""
        H, a = self.H, self.a
        for l in range(self.L):
            xh = self.xh[l]
            h = xh[:, H:]
            if self.cell == "gru":
                self._gru(l, char_id, xh, h)
            else:
                if l == 0:
                    np.matmul(h, self.Wh[0], out=a)
                    a += self.table[char_id]
                else:
                    np.matmul(xh, self.Wcat[l], out=a)
                    a += self.b[l]
                if self.cell == "rnn":
                    np.tanh(a, out=h)
                else:
                    a *= self.scale
                    np.tanh(a, out=a)
                    a *= self.scale
                    a += self.shift
                    c = self.c[l]
                    np.multiply(a[:, H:2 * H], c, out=c)
                    np.multiply(a[:, :H], a[:, 2 * H:3 * H], out=self.tmp)
                    c += self.tmp
                    np.tanh(c, out=self.tmp)
                    np.multiply(a[:, 3 * H:], self.tmp, out=h)
            if l + 1 < self.L:
                self.xh[l + 1, :, :H] = h
        np.matmul(self.xh[self.L - 1, :, H:], self.Why, out=self.logits)
        self.logits += self.by
        return self.logits[0]

    def _gru(self, l, char_id, xh, h):
        H, a, ah = self.H, self.a, self.ah
        if l == 0:
            a[:] = self.table[char_id]
        else:
            np.matmul(xh[:, :H], self.Wx[l], out=a)
            a += self.b[l]
        np.matmul(h, self.Wh[l], out=ah)
        a[:, :2 * H] += ah[:, :2 * H]
        rz = a[:, :2 * H]
        rz *= 0.5
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        n = a[:, 2 * H:]
        ah[:, 2 * H:] += self.bhn[l]
        ah[:, 2 * H:] *= a[:, :H]
        n += ah[:, 2 * H:]
        np.tanh(n, out=n)
        # h = n + z * (h - n)
        h -= n
        h *= a[:, H:2 * H]
        h += n


def check_seed(vocab, seed_text):
    if not seed_text:
        raise DataError("the seed text is empty")
    missing = vocab.missing(seed_text)
    if missing:
        raise DataError(f"seed has characters not in the model's vocabulary: "
                        f"{format_chars(missing)}")


def generate(ckpt, seed_text, num_chars, temperature=1.0, greedy=False, rng=None):
    """Yield num_chars characters that follow seed_text (which must be in the vocabulary)."""
    check_seed(ckpt.vocab, seed_text)
    rng = rng if rng is not None else np.random.default_rng()
    stepper = Stepper(ckpt.params, ckpt.model_cfg.model)
    chars = ckpt.vocab.chars
    for ch in seed_text:
        logits = stepper.step(ckpt.vocab.stoi[ch])
    uniforms = rng.random(num_chars)
    inv_t = 1.0 / temperature
    for k in range(num_chars):
        if greedy:
            idx = int(np.argmax(logits))
        else:
            # sample from softmax(logits / T) by inverting the CDF of the unnormalised weights
            w = np.exp((logits - logits.max()) * inv_t)
            cdf = np.cumsum(w)
            idx = int(np.searchsorted(cdf, uniforms[k] * cdf[-1], side="right"))
            idx = min(idx, len(chars) - 1)
        yield chars[idx]
        logits = stepper.step(idx)
