"""AVERAGE_POOL_2D and MAX_POOL_2D, int8 (input and output share scale and zero point).

Only taps inside the image count (padding-aware window):
    avg: acc = sum of raw int8 inputs in the window, cnt = number of such taps,
         out = clamp(acc > 0 ? (acc + cnt/2) / cnt : (acc - cnt/2) / cnt, act_min, act_max)
         (C division, truncating: round half away from zero)
    max: out = clamp(max of raw int8 inputs in the window, act_min, act_max)

TFLM: integer_ops/pooling.h AveragePool / MaxPool.
"""

from __future__ import annotations

import numpy as np

from .common import col2im_add, pad_spatial, window_taps
from .error_quant import quantize_error


def _valid_taps(in_size: int, out_size: int, stride: int, pad: int, filt: int) -> np.ndarray:
    """Number of in-image filter taps per output position along one axis."""
    origin = np.arange(out_size) * stride - pad
    start = np.maximum(0, -origin)
    end = np.minimum(filt, in_size - origin)
    return end - start


def average_pool2d_forward(
    x: np.ndarray,
    *,
    filter_hw: tuple[int, int],
    act_min: int,
    act_max: int,
    out_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """x int8 [N, H, W, C] -> int8 [N, OH, OW, C]."""
    _, h, w, _ = x.shape
    xp = pad_spatial(x.astype(np.int64), pad, filter_hw, stride, (1, 1), out_hw, 0)
    acc = sum(t for _, _, t in window_taps(xp, filter_hw, stride, (1, 1), out_hw))
    count = np.outer(
        _valid_taps(h, out_hw[0], stride[0], pad[0], filter_hw[0]),
        _valid_taps(w, out_hw[1], stride[1], pad[1], filter_hw[1]),
    )[None, :, :, None].astype(np.int64)
    half = count // 2
    avg = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
    return np.clip(avg, act_min, act_max).astype(np.int8)


def max_pool2d_forward(
    x: np.ndarray,
    *,
    filter_hw: tuple[int, int],
    act_min: int,
    act_max: int,
    out_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """x int8 [N, H, W, C] -> int8 [N, OH, OW, C]."""
    # -128 padding never wins over the in-image taps (TFLM starts its max at -128 too).
    xp = pad_spatial(x, pad, filter_hw, stride, (1, 1), out_hw, -128)
    out = None
    for _, _, t in window_taps(xp, filter_hw, stride, (1, 1), out_hw):
        out = t.copy() if out is None else np.maximum(out, t)
    assert out is not None
    return np.clip(out, act_min, act_max).astype(np.int8)


# --- backward (docs/training-semantics.md section 5) -----------------------------------

AVG_RECIPROCAL_BITS = 16


def average_pool2d_backward(
    err: np.ndarray,
    err_exp: np.ndarray,
    *,
    in_hw: tuple[int, int],
    filter_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    mode: str = "dynamic",
) -> tuple[np.ndarray, np.ndarray]:
    """err int8 [N, OH, OW, C] -> error at the input int8 [N, H, W, C], exponents [N]:

    R(n)    = (2^16 + n / 2) / n          (n = in-image taps of the window; C division)
    acc[i]  = sum_{windows w containing i} err[w] * R(n_w)
    (e_in, exp_in) = quantize_error(acc, err_exp - 16)
    """
    n, oh, ow, c = err.shape
    h, w = in_hw
    count = np.outer(
        _valid_taps(h, oh, stride[0], pad[0], filter_hw[0]),
        _valid_taps(w, ow, stride[1], pad[1], filter_hw[1]),
    ).astype(np.int64)
    recip = ((1 << AVG_RECIPROCAL_BITS) + count // 2) // count
    g = err.astype(np.int64) * recip[None, :, :, None]
    cols = np.broadcast_to(g[:, :, :, None, None, :], (n, oh, ow, *filter_hw, c))
    acc = col2im_add(cols, (n, h, w, c), filter_hw, stride, (1, 1), pad, (oh, ow))
    return quantize_error(acc, np.asarray(err_exp, np.int64) - AVG_RECIPROCAL_BITS, mode)


def max_pool2d_backward(
    err: np.ndarray,
    err_exp: np.ndarray,
    x: np.ndarray,
    *,
    filter_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    mode: str = "dynamic",
) -> tuple[np.ndarray, np.ndarray]:
    """Route each output error to the argmax of its window, recomputed from the kept input
    x (in-image taps only, scanned fy-major then fx, ties to the first):

        acc[i] = sum_{windows w whose argmax is i} err[w]     (int32)
        (e_in, exp_in) = quantize_error(acc, err_exp)         (exact while |acc| <= 127)
    """
    n, oh, ow, c = err.shape
    h, w = x.shape[1], x.shape[2]
    xp = pad_spatial(x.astype(np.int16), pad, filter_hw, stride, (1, 1), (oh, ow), -129)
    best = None
    best_tap = np.zeros((n, oh, ow, c), np.int64)
    for t_index, (_, _, t) in enumerate(window_taps(xp, filter_hw, stride, (1, 1), (oh, ow))):
        if best is None:
            best = t.copy()
            continue
        better = t > best
        best = np.where(better, t, best)
        best_tap = np.where(better, t_index, best_tap)
    e = err.astype(np.int64)
    cols = np.zeros((n, oh, ow, filter_hw[0] * filter_hw[1], c), np.int64)
    np.put_along_axis(cols, best_tap[:, :, :, None, :], e[:, :, :, None, :], axis=3)
    cols = cols.reshape(n, oh, ow, filter_hw[0], filter_hw[1], c)
    acc = col2im_add(cols, (n, h, w, c), filter_hw, stride, (1, 1), pad, (oh, ow))
    return quantize_error(acc, np.asarray(err_exp, np.int64), mode)
