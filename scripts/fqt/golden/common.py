"""Helpers shared by the golden kernels that have no C file of their own: the exact
integer matmul, requantization, spatial padding and windows, and col2im (the C kernels
inline them). The error quantization is in error_quant.py (kernels/error_quant.c), the
activation backward in activation.py (kernels/activation.c).

Activations carry a leading batch axis N (any N >= 1); every sample is computed
independently, exactly as TFLM computes a batch-1 tensor.
"""

from __future__ import annotations

import numpy as np

from ..quant import multiply_by_quantized_multiplier


def exact_int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matrix product a @ b, returned as int64.

    Computed with float64 BLAS when every partial sum is an integer below 2^53 in
    magnitude (then each float operation is exact, in any summation order), else in int64.
    """
    k = a.shape[-1]
    bound = max(int(np.abs(a).max(initial=0)), 1) * max(int(np.abs(b).max(initial=0)), 1) * k
    if bound < (1 << 53):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def requantize(
    acc: np.ndarray,
    output_multiplier: np.ndarray | int,
    output_shift: np.ndarray | int,
    output_zero_point: int,
    act_min: int,
    act_max: int,
) -> np.ndarray:
    """int32 accumulator -> int8: clamp(MBQM(acc, M, shift) + zp_out, act_min, act_max).

    Per-channel M and shift broadcast along the last axis."""
    y = multiply_by_quantized_multiplier(acc, output_multiplier, output_shift) + output_zero_point
    return np.clip(y, act_min, act_max).astype(np.int8)


def pad_spatial(
    x: np.ndarray,
    pad: tuple[int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
    fill: int,
) -> np.ndarray:
    """Pad [N, H, W, C] with `fill`: `pad` rows/columns before, and after as many as the
    last window needs (TFLM skips out-of-image taps; padding with the neutral value is
    the same thing)."""
    n, h, w, c = x.shape
    need_h = (out_hw[0] - 1) * stride[0] + (window[0] - 1) * dilation[0] + 1
    need_w = (out_hw[1] - 1) * stride[1] + (window[1] - 1) * dilation[1] + 1
    after_h = max(0, need_h - h - pad[0])
    after_w = max(0, need_w - w - pad[1])
    xp = np.full((n, pad[0] + h + after_h, pad[1] + w + after_w, c), fill, x.dtype)
    xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w, :] = x
    return xp


def window_taps(
    xp: np.ndarray,
    window: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
):
    """Yield (fy, fx, tap) where tap[n, oy, ox, c] = xp[n, oy*sh + fy*dh, ox*sw + fx*dw, c]."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    for fy in range(window[0]):
        for fx in range(window[1]):
            y0, x0 = fy * dh, fx * dw
            rows = slice(y0, y0 + (oh - 1) * sh + 1, sh)
            cols = slice(x0, x0 + (ow - 1) * sw + 1, sw)
            yield fy, fx, xp[:, rows, cols, :]


def col2im_add(
    cols: np.ndarray,
    in_shape: tuple[int, int, int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pad: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Adjoint of pad_spatial + window_taps: cols [N, OH, OW, KH, KW, C] summed into the
    input positions each tap read; out-of-image taps are dropped. int64 [N, H, W, C]."""
    n, h, w, c = in_shape
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    need_h = (oh - 1) * sh + (window[0] - 1) * dh + 1
    need_w = (ow - 1) * sw + (window[1] - 1) * dw + 1
    hp = pad[0] + h + max(0, need_h - h - pad[0])
    wp = pad[1] + w + max(0, need_w - w - pad[1])
    xp = np.zeros((n, hp, wp, c), np.int64)
    for fy in range(window[0]):
        for fx in range(window[1]):
            y0, x0 = fy * dh, fx * dw
            xp[:, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw, :] += cols[
                :, :, :, fy, fx, :
            ]
    return xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w, :]
