"""Rounded weights, for exports: float32 as trained; float16; or int8 with one float32 scale per
output unit (the largest magnitude among the weights feeding it, over 127): a matrix W used as
x @ W (Wx, Wh, Why) gets a scale per column, the embedding a scale per row (per character).
Biases stay float32. rounded() gives the weights as every format computes with them (float32
values), so that the page, the .npz and the ONNX model of one `weights` setting compute the same
model.
"""

import dataclasses

import numpy as np

from .errors import ArgumentError

WEIGHTS = ("float32", "float16", "int8")
MATRICES = ("Wx", "Wh", "Why")        # used as x @ W: a scale per column (output unit)


def quantize(params, weights="float32"):
    """{name: (stored, scale)}: each parameter as the format stores it (float32, float16, or
    int8 with a float32 scale per output unit; scale None otherwise). Biases stay float32."""
    if weights not in WEIGHTS:
        raise ArgumentError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    stored = {}
    for name, p in params.items():
        p = np.asarray(p, np.float32)
        if weights == "float32" or p.ndim == 1 or name in ("b", "bhn"):
            stored[name] = (p, None)
        elif weights == "float16":
            stored[name] = (p.astype(np.float16), None)
        else:
            axis = -2 if name in MATRICES else -1          # over the inputs of each output
            scale = np.abs(p).max(axis=axis, keepdims=True) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            q = np.clip(np.rint(p / scale), -127, 127).astype(np.int8)
            stored[name] = (q, np.squeeze(scale, axis=axis))
    return stored


def dequantize(stored):
    """The float32 weights that quantize's arrays stand for."""
    params = {}
    for name, (q, scale) in stored.items():
        if scale is None:
            params[name] = q.astype(np.float32)
        else:
            axis = -2 if name in MATRICES else -1
            params[name] = q.astype(np.float32) * np.expand_dims(scale, axis)
    return params


def rounded(ckpt, weights="float32"):
    """ckpt with its weights as `weights` stores them (itself for float32)."""
    if weights == "float32":
        return ckpt
    return dataclasses.replace(ckpt, params=dequantize(quantize(ckpt.params, weights)))
