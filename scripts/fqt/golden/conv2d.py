"""CONV_2D, int8 with per-channel (or broadcast per-tensor) weight scales.

    acc[n,y,x,o] = sum_{fy,fx,i} w[o,fy,fx,i]
                       * (in[n, y*sh + fy*dh - pad_h, x*sw + fx*dw - pad_w, i] - zp_in)
                   + bias[o]                                        (taps outside: skipped)
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + zp_out, act_min, act_max)

TFLM: integer_ops/conv.h ConvPerChannel.
"""

from __future__ import annotations

import numpy as np

from .common import exact_int_matmul, pad_spatial, requantize, window_taps


def conv2d_forward(
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
    out_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """x int8 [N, H, W, Cin], weights int8 [Cout, KH, KW, Cin], bias int32 [Cout] or None
    -> int8 [N, OH, OW, Cout]."""
    n = x.shape[0]
    cout, kh, kw, cin = weights.shape
    oh, ow = out_hw
    # Offset-corrected input; padding with 0 here == skipping the out-of-image taps.
    xs = x.astype(np.int64) - input_zero_point
    xp = pad_spatial(xs, pad, (kh, kw), stride, dilation, out_hw, 0)
    # im2col: one row per output pixel, columns ordered (fy, fx, i) like OHWI weights.
    taps = [t for _, _, t in window_taps(xp, (kh, kw), stride, dilation, out_hw)]
    cols = np.stack(taps, axis=3).reshape(n * oh * ow, kh * kw * cin)
    acc = exact_int_matmul(cols, weights.reshape(cout, kh * kw * cin).T)
    if bias is not None:
        acc += bias.astype(np.int64)
    out = requantize(acc, output_multiplier, output_shift, output_zero_point, act_min, act_max)
    return out.reshape(n, oh, ow, cout)
