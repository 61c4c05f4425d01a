"""FULLY_CONNECTED, int8, per-tensor or per-channel weight scales.

    acc[n,o] = sum_k (w[o,k] - zp_w) * (in[n,k] - zp_in) + bias[o]      (zp_w == 0 in int8)
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o or 0], shift[o or 0]) + zp_out,
                act_min, act_max)

The input may have any rank; each sample is flattened to [in] (TFLM: batches =
elements / accum_depth, here 1 per sample). TFLM: integer_ops/fully_connected.h.
"""

from __future__ import annotations

import numpy as np

from .common import exact_int_matmul, requantize


def fully_connected_forward(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    *,
    input_zero_point: int,
    output_zero_point: int,
    output_multiplier: np.ndarray,
    output_shift: np.ndarray,
    act_min: int,
    act_max: int,
    weights_zero_point: int = 0,
) -> np.ndarray:
    """x int8 [N, ...] with prod(...) == in, weights int8 [out, in] -> int8 [N, out]."""
    n = x.shape[0]
    xs = x.reshape(n, -1).astype(np.int64) - input_zero_point
    acc = exact_int_matmul(xs, (weights.astype(np.int64) - weights_zero_point).T)
    if bias is not None:
        acc += bias.astype(np.int64)
    return requantize(acc, output_multiplier, output_shift, output_zero_point, act_min, act_max)
