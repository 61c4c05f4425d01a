"""DEPTHWISE_CONV_2D, int8, any depth multiplier D (output channel o = i * D + d).

    acc[n,y,x,o] = sum_{fy,fx} w[0,fy,fx,o] * (in[n, y*sh + fy*dh - pad_h, x*sw + fx*dw - pad_w,
                                                 o // D] - zp_in)    (taps outside: skipped)
                   + bias[o]
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + zp_out, act_min, act_max)

TFLM: integer_ops/depthwise_conv.h DepthwiseConvPerChannel.
"""

from __future__ import annotations

import numpy as np

from .common import pad_spatial, requantize, window_taps


def depthwise_conv2d_forward(
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
    """x int8 [N, H, W, Cin], weights int8 [1, KH, KW, Cin*D], bias int32 [Cin*D] or None
    -> int8 [N, OH, OW, Cin*D]."""
    n, _, _, cin = x.shape
    _, kh, kw, cout = weights.shape
    depth_multiplier = cout // cin
    in_channel = np.arange(cout) // depth_multiplier
    # int32 like TFLM's accumulator: |w * (x - zp)| <= 127 * 255 and few taps.
    xs = x.astype(np.int32) - np.int32(input_zero_point)
    xp = pad_spatial(xs, pad, (kh, kw), stride, dilation, out_hw, 0)
    w = weights.astype(np.int32)
    acc = np.zeros((n, out_hw[0], out_hw[1], cout), np.int32)
    for fy, fx, tap in window_taps(xp, (kh, kw), stride, dilation, out_hw):
        acc += (tap if depth_multiplier == 1 else tap[..., in_channel]) * w[0, fy, fx]
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return requantize(acc, output_multiplier, output_shift, output_zero_point, act_min, act_max)
