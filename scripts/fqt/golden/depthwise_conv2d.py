"""DEPTHWISE_CONV_2D, int8, any depth multiplier D (output channel o = i * D + d).

    acc[n,y,x,o] = sum_{fy,fx} w[0,fy,fx,o] * (in[n, y*sh + fy*dh - pad_h, x*sw + fx*dw - pad_w,
                                                 o // D] - zp_in)    (taps outside: skipped)
                   + bias[o]
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + zp_out, act_min, act_max)

TFLM: integer_ops/depthwise_conv.h DepthwiseConvPerChannel.
"""

from __future__ import annotations

import numpy as np

from .common import col2im_add, pad_spatial, requantize, window_taps
from .error_quant import fold_error, quantize_error, weight_scale_fold


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


# --- backward (docs/training-semantics.md section 5) -----------------------------------


def depthwise_conv2d_backward_input(
    err: np.ndarray,
    err_exp: np.ndarray,
    weights: np.ndarray,
    weight_scale: np.ndarray,
    *,
    in_hw: tuple[int, int],
    in_channels: int,
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    kept: np.ndarray | None = None,
    mode: str = "dynamic",
) -> tuple[np.ndarray, np.ndarray]:
    """err int8 [N, OH, OW, Cin*D] -> error at the input int8 [N, H, W, Cin], exponents [N]:

    g[n,oy,ox,o]   = MBQM(err * 2^8, Mf[o], shf[o])             (kept channels only)
    acc[n,iy,ix,i] = sum_{m < D, fy, fx : iy = oy*sh + fy*dh - pad_h, ...}
                         w[0,fy,fx,i*D+m] * g[n,oy,ox,i*D+m]
    (e_in, exp_in) = quantize_error(acc, err_exp - 8 + P)
    """
    n, oh, ow, cout = err.shape
    _, kh, kw, _ = weights.shape
    fm, fs, p = weight_scale_fold(weight_scale, cout)
    g = fold_error(err, fm, fs)
    if kept is not None:
        g = g * np.asarray(kept, bool)[:, None, None, :]
    w = weights.astype(np.int64)[0]  # [KH, KW, Cout]
    cols = g[:, :, :, None, None, :] * w[None, None, None]  # [N, OH, OW, KH, KW, Cout]
    cin = in_channels
    cols = cols.reshape(n, oh, ow, kh, kw, cin, cout // cin).sum(axis=-1)
    acc = col2im_add(cols, (n, in_hw[0], in_hw[1], cin), (kh, kw), stride, dilation, pad, (oh, ow))
    return quantize_error(acc, np.asarray(err_exp, np.int64) - 8 + p, mode)


def depthwise_conv2d_backward_weights(
    err: np.ndarray,
    x: np.ndarray,
    *,
    input_zero_point: int,
    kernel_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    kept: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """gw[n,0,fy,fx,o] = sum_{oy,ox} err[n,oy,ox,o] * (x[n,iy,ix,o // D] - zp_x),
    gb[n,o] = sum_{oy,ox} err[n,oy,ox,o] (int32 per sample; skipped channels 0)."""
    n, oh, ow, cout = err.shape
    cin = x.shape[3]
    dm = cout // cin
    in_channel = np.arange(cout) // dm
    e = err.astype(np.int64)
    if kept is not None:
        e = e * np.asarray(kept, bool)[:, None, None, :]
    xs = x.astype(np.int64) - input_zero_point
    xp = pad_spatial(xs, pad, kernel_hw, stride, dilation, (oh, ow), 0)
    gw = np.zeros((n, 1, kernel_hw[0], kernel_hw[1], cout), np.int64)
    for fy, fx, tap in window_taps(xp, kernel_hw, stride, dilation, (oh, ow)):
        gw[:, 0, fy, fx, :] = (tap[..., in_channel] * e).sum(axis=(1, 2))
    gb = e.sum(axis=(1, 2))
    return np.clip(gw, -(1 << 31), (1 << 31) - 1), np.clip(gb, -(1 << 31), (1 << 31) - 1)
