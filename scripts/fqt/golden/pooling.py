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

from .common import pad_spatial, window_taps


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
