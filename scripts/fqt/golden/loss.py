"""Softmax cross-entropy on int8 probabilities (docs/training-semantics.md section 3).

The probabilities are the SOFTMAX output p (scale 1/256, zero point -128), so the real
p = (p_q + 128) / 256. The error at the softmax input, dL/dz = p - onehot, in 1/256 units:

    d[c] = (p_q[c] + 128) - 256 * (c == label)          int in [-256, 255]
    loss magnitude l = sum_c |d[c]|                     int in [0, 512] (drives partial updates)
    (e, exp) = quantize_error(d, -8)

The float cross-entropy -ln(max(p_q[label] + 128, 1) / 256) is only reported, never used.
"""

from __future__ import annotations

import numpy as np

from .error_quant import quantize_error

PROB_ZERO_POINT = -128
PROB_BITS = 8


def softmax_cross_entropy_backward(
    p: np.ndarray, labels: np.ndarray, mode: str = "dynamic"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p int8 [N, C], labels int [N] -> (error int8 [N, C], exponents [N], magnitudes [N])."""
    pi = p.astype(np.int64).reshape(p.shape[0], -1) - PROB_ZERO_POINT
    onehot = np.zeros_like(pi)
    onehot[np.arange(len(pi)), np.asarray(labels, np.int64)] = 1 << PROB_BITS
    d = pi - onehot
    e, exp = quantize_error(d, -PROB_BITS, mode)
    return e.reshape(p.shape), exp, np.abs(d).sum(axis=1)


def cross_entropy(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Reported loss per sample (float64), from the int8 probabilities."""
    pi = p.astype(np.int64).reshape(p.shape[0], -1) - PROB_ZERO_POINT
    py = pi[np.arange(len(pi)), np.asarray(labels, np.int64)]
    return -np.log(np.maximum(py, 1) / float(1 << PROB_BITS))
