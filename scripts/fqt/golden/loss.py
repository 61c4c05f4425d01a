"""The losses (docs/training-semantics.md section 3): softmax cross-entropy on int8
probabilities, and the squared error of a regression head (3.1).

The probabilities are the SOFTMAX output p (scale 1/256, zero point -128), so the real
p = (p_q + 128) / 256. The error at the softmax input, dL/dz = p - onehot, in 1/256 units:

    d[c] = (p_q[c] + 128) - 256 * (c == label)          int in [-256, 255]
    loss magnitude l = sum_c |d[c]|                     int in [0, 512] (drives partial updates)
    (e, exp) = quantize_error(d, -8)

The float cross-entropy -ln(max(p_q[label] + 128, 1) / 256) is only reported, never used.
"""

from __future__ import annotations

import numpy as np

from ..quant import quantize_multiplier
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


def mse_multiplier(output_scale: float) -> tuple[int, int]:
    """(M, shift) = QuantizeMultiplier(s_out): s_out = M * 2^(shift - 31)."""
    return quantize_multiplier(float(np.float32(output_scale)))


def mse_backward(
    y: np.ndarray, target: np.ndarray, mult: int, shift: int, mode: str = "dynamic"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared error L = 1/2 sum (s_out (y - t))^2 on int8 outputs y [N, D] and int8 targets
    of the same quantization (docs/training-semantics.md section 3.1):
        d = y - t;  acc = d * M (int64);  (e, E) = quantize_error(acc, shift - 31);  l = sum |d|
    (real(acc) = s_out * d = dL/dy_real). Returns (e [N, D], exponents [N], magnitudes [N])."""
    d = y.astype(np.int64).reshape(len(y), -1) - target.astype(np.int64).reshape(len(y), -1)
    e, exp = quantize_error(d * int(mult), int(shift) - 31, mode)
    return e.reshape(y.shape), exp, np.abs(d).sum(axis=1)


def squared_error(y: np.ndarray, target: np.ndarray, output_scale: float) -> np.ndarray:
    """Reported loss per sample: 1/2 sum (s_out (y - t))^2 (float64; also the anomaly score,
    the reconstruction error, of an autoencoder)."""
    d = y.astype(np.int64).reshape(len(y), -1) - target.astype(np.int64).reshape(len(y), -1)
    s = float(np.float32(output_scale))
    return 0.5 * (d * d).sum(axis=1).astype(np.float64) * s * s
