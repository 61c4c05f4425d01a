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
from .error_quant import fold_error, quantize_error, weight_scale_fold


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


# --- backward (docs/training-semantics.md section 5) -----------------------------------


def fully_connected_backward_input(
    err: np.ndarray,
    err_exp: np.ndarray,
    weights: np.ndarray,
    weight_scale: np.ndarray,
    *,
    kept: np.ndarray | None = None,
    mode: str = "dynamic",
) -> tuple[np.ndarray, np.ndarray]:
    """err int8 [N, out] -> error at the flattened input int8 [N, in] and exponents [N]:

    g[n,o]   = MBQM(err * 2^8, Mf[o], shf[o])          (kept rows only)
    acc[n,k] = sum_{o kept} w[o,k] * g[n,o]             (transposed weights)
    (e_in, exp_in) = quantize_error(acc, err_exp - 8 + P)
    """
    _n, cout = err.shape
    fm, fs, p = weight_scale_fold(weight_scale, cout)
    g = fold_error(err, fm, fs)
    if kept is not None:
        g = g * np.asarray(kept, bool)
    acc = exact_int_matmul(g, weights.astype(np.int64))
    return quantize_error(acc, np.asarray(err_exp, np.int64) - 8 + p, mode)


def fully_connected_backward_weights(
    err: np.ndarray, x: np.ndarray, *, input_zero_point: int, kept: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """gw[n,o,k] = err[n,o] * (x[n,k] - zp_x), gb[n,o] = err[n,o] (int32 per sample)."""
    n, _cout = err.shape
    e = err.astype(np.int64)
    if kept is not None:
        e = e * np.asarray(kept, bool)
    xs = x.reshape(n, -1).astype(np.int64) - input_zero_point
    return e[:, :, None] * xs[:, None, :], e
