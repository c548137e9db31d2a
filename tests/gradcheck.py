"""Numerical gradients for the tests (test_layers.py, test_model.py): centered differences in
float64 (CS231n's gradient_check). A test helper, not part of the package."""

import numpy as np


def numerical_grad(f, x, dout, h=1e-5):
    """d/dx sum(f(x) * dout), by centered differences; f must not keep a reference to x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        plus = np.sum(f(x.copy()) * dout)
        x[idx] = old - h
        minus = np.sum(f(x.copy()) * dout)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """Relative error ||a - b|| / (||a|| + ||b||) over the whole array (L2 norms).

    Norm-wise, not elementwise: an elementwise ratio is dominated by entries near zero, where the
    centered difference's own noise (~1e-10 absolute in float64) is the whole value."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0
