"""Optimizers: sgd (with momentum), adagrad, rmsprop, adam; the learning-rate schedule.

Every piece of optimizer state is a per-parameter array of the parameter's dtype, kept in a flat
dict keyed "<slot>/<param name>" (e.g. "m/Wx"), so checkpoints store it as it is. Updates are in
place on the parameters and the state. The update count, which adam's bias correction needs, is
the training iteration and is passed in rather than stored.

    sgd:      v = momentum * v + g;            p -= lr * v          (v only when momentum > 0)
    adagrad:  m += g^2;                        p -= lr * g / sqrt(m + eps)        (min-char-rnn)
    rmsprop:  m = a * m + (1 - a) * g^2;       p -= lr * g / (sqrt(m) + eps)      (a = 0.95, char-rnn)
    adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
              p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (Kingma & Ba 2015)

Decoupled weight decay (AdamW, Loshchilov & Hutter 2019), with any of them: before the update,
p -= lr * weight_decay * p, computed as p *= (1 - lr * weight_decay), for the weights only
(DECAYED: embed, Wx, Wh, Why, Wv), never the biases. By name, not by ndim >= 2: the layers'
biases b (L, G) and bhn (L, H) are stacked on a layer axis, so they have two dimensions too.
"""

import math

import numpy as np

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "cosine")
EPS = 1e-8
RMSPROP_DECAY = 0.95
ADAM_BETAS = (0.9, 0.999)
DECAYED = ("embed", "Wx", "Wh", "Why", "Wv")   # the weights weight_decay shrinks; not b, bhn, by


def state_slots(optimizer, momentum=0.0):
    """Names of the per-parameter state arrays the optimizer keeps."""
    return {"sgd": ("v",) if momentum > 0 else (), "adagrad": ("m",), "rmsprop": ("m",),
            "adam": ("m", "v")}[optimizer]


def init_state(optimizer, params, momentum=0.0):
    return {f"{slot}/{name}": np.zeros_like(p)
            for slot in state_slots(optimizer, momentum) for name, p in params.items()}


def learning_rate_at(learning_rate, lr_decay, iteration, iters_per_pass, schedule="constant",
                     warmup_iters=0, max_iters=None, lr_floor=0.1, passes=None):
    """lr for an iteration (0 for the first update), derived from the iteration alone, so that
    a resumed run is at the same point of its schedule:

        1) multiplied by lr_decay after each whole pass over the training data (passes: how
           many there were, when not iteration // iters_per_pass: a run that switched texts);
        2) warm-up: times (iteration + 1) / warmup_iters while iteration < warmup_iters;
        3) cosine: then times lr_floor + (1 - lr_floor) (1 + cos(pi p)) / 2, where p goes from 0
           at the end of warm-up to 1 at max_iters, so the last update is made near lr_floor.
    """
    lr = learning_rate * lr_decay ** (iteration // iters_per_pass if passes is None else passes)
    if iteration < warmup_iters:
        return lr * (iteration + 1) / warmup_iters
    if schedule == "cosine":
        progress = min(1.0, (iteration - warmup_iters) / max(1, max_iters - warmup_iters))
        lr *= lr_floor + (1.0 - lr_floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr


def update(optimizer, params, grads, state, lr, step, momentum=0.0, weight_decay=0.0):
    """Apply one update in place. step: 1 for the first update (adam's bias correction)."""
    for name, p in params.items():
        g = grads[name]
        if weight_decay and name in DECAYED:
            # p -= lr * weight_decay * p (decoupled: not through g, so not through adam's v)
            p *= p.dtype.type(1.0 - lr * weight_decay)
        if optimizer == "sgd":
            if momentum > 0:
                v = state[f"v/{name}"]
                v *= momentum
                v += g
                g = v
            p -= lr * g
        elif optimizer == "adagrad":
            m = state[f"m/{name}"]
            m += g * g
            p -= lr * g / np.sqrt(m + EPS)
        elif optimizer == "rmsprop":
            m = state[f"m/{name}"]
            m *= RMSPROP_DECAY
            m += (1.0 - RMSPROP_DECAY) * g * g
            p -= lr * g / (np.sqrt(m) + EPS)
        else:
            b1, b2 = ADAM_BETAS
            m, v = state[f"m/{name}"], state[f"v/{name}"]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            step_size = lr / (1.0 - b1 ** step)
            denom = np.sqrt(v * (1.0 / (1.0 - b2 ** step)))
            denom += EPS
            p -= step_size * m / denom


class FlatOptimizer:
    """The same updates as update(), on all parameters at once.

    On creation it moves every parameter and state array into one contiguous buffer per kind and
    puts views of those buffers back into the caller's dicts (same keys, shapes and values), so
    checkpoints, in-place restores and the model see per-parameter arrays as before. step() then
    copies the gradients into one buffer and applies the rule with a handful of ufunc calls
    instead of a dozen per parameter (which, for small models, is most of an update's time).
    update() stays the per-parameter reference it is tested against.

    weight_decay: as update()'s, on the slices of the flat buffer that hold the DECAYED
    parameters (adjacent ones merged: embed, Wx and Wh are one).

    ema: with a decay d in (0, 1), state also holds a moving average of the weights, "ema/<name>"
    (train.py starts it at the weights), and step() updates it after each update: ema = d ema +
    (1 - d) p, on its flat buffer too.
    """

    def __init__(self, optimizer, params, state, momentum=0.0, ema=0.0, weight_decay=0.0):
        self.optimizer, self.momentum, self.ema = optimizer, momentum, ema
        self.weight_decay = weight_decay
        self.names = list(params)
        self.decayed = self._decayed_slices(params, self.names)
        self.p = self._flatten(params, self.names)
        slots = state_slots(optimizer, momentum) + (("ema",) if ema else ())
        self.slots = {slot: self._flatten(state, [f"{slot}/{n}" for n in self.names])
                      for slot in slots}

    @staticmethod
    def _flatten(arrays, keys):
        """One buffer holding arrays[k] for every k; arrays[k] becomes a view of it."""
        flat = np.concatenate([arrays[k].ravel() for k in keys])
        start = 0
        for k in keys:
            shape, size = arrays[k].shape, arrays[k].size
            arrays[k] = flat[start:start + size].reshape(shape)
            start += size
        return flat

    @staticmethod
    def _decayed_slices(params, names):
        """The slices of the flat buffer that hold DECAYED parameters, adjacent ones merged."""
        slices, start = [], 0
        for name in names:
            size = params[name].size
            if name in DECAYED:
                if slices and slices[-1].stop == start:
                    slices[-1] = slice(slices[-1].start, start + size)
                else:
                    slices.append(slice(start, start + size))
            start += size
        return slices

    def step(self, grads, lr, step):
        """Apply one update in place; grads: name -> array, as model.backward returns them."""
        # made per step, not kept: at the peak of training (mid-backward) they do not exist
        g = np.concatenate([grads[n].ravel() for n in self.names])
        p, tmp, slots = self.p, np.empty_like(self.p), self.slots
        dtype = p.dtype.type
        if self.weight_decay:
            # p -= lr * weight_decay * p on the weights, as update() does
            for part in self.decayed:
                p[part] *= dtype(1.0 - lr * self.weight_decay)
        if self.optimizer == "sgd":
            if self.momentum > 0:
                v = slots["v"]
                v *= dtype(self.momentum)
                v += g
                g = v
            np.multiply(g, dtype(lr), out=tmp)
        elif self.optimizer == "adagrad":
            m = slots["m"]
            np.multiply(g, g, out=tmp)
            m += tmp
            np.add(m, dtype(EPS), out=tmp)
            np.sqrt(tmp, out=tmp)
            np.divide(g, tmp, out=tmp)
            tmp *= dtype(lr)
        elif self.optimizer == "rmsprop":
            m = slots["m"]
            m *= dtype(RMSPROP_DECAY)
            np.multiply(g, g, out=tmp)
            tmp *= dtype(1.0 - RMSPROP_DECAY)
            m += tmp
            np.sqrt(m, out=tmp)
            tmp += dtype(EPS)
            np.divide(g, tmp, out=tmp)
            tmp *= dtype(lr)
        else:
            b1, b2 = ADAM_BETAS
            m, v = slots["m"], slots["v"]
            m *= dtype(b1)
            np.multiply(g, dtype(1.0 - b1), out=tmp)
            m += tmp
            v *= dtype(b2)
            np.multiply(g, g, out=tmp)
            tmp *= dtype(1.0 - b2)
            v += tmp
            # p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
            np.multiply(v, dtype(1.0 / (1.0 - b2 ** step)), out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += dtype(EPS)
            np.divide(m, tmp, out=tmp)
            tmp *= dtype(lr / (1.0 - b1 ** step))
        p -= tmp
        if self.ema:
            average = slots["ema"]
            average *= dtype(self.ema)
            np.multiply(p, dtype(1.0 - self.ema), out=tmp)
            average += tmp
