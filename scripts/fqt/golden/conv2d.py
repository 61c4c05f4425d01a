"""CONV_2D, int8 with per-channel (or broadcast per-tensor) weight scales.

    acc[n,y,x,o] = sum_{fy,fx,i} w[o,fy,fx,i]
                       * (in[n, y*sh + fy*dh - pad_h, x*sw + fx*dw - pad_w, i] - zp_in)
                   + bias[o]                                        (taps outside: skipped)
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + zp_out, act_min, act_max)

TFLM: integer_ops/conv.h ConvPerChannel.
"""

from __future__ import annotations

import numpy as np

from .common import col2im_add, exact_int_matmul, pad_spatial, requantize, window_taps
from .error_quant import fold_error, quantize_error, weight_scale_fold


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


# --- backward (docs/training-semantics.md section 5) -----------------------------------


def _kept_mask(kept: np.ndarray | None, n: int, cout: int) -> np.ndarray:
    return np.ones((n, cout), bool) if kept is None else np.asarray(kept, bool)


def conv2d_backward_input(
    err: np.ndarray,
    err_exp: np.ndarray,
    weights: np.ndarray,
    weight_scale: np.ndarray,
    *,
    in_hw: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    kept: np.ndarray | None = None,
    mode: str = "dynamic",
) -> tuple[np.ndarray, np.ndarray]:
    """Error at the output err int8 [N, OH, OW, Cout] (real err * 2^err_exp[n]) -> error at
    the input int8 [N, H, W, Cin] and its exponents [N].

        g[n,oy,ox,o] = MBQM(err * 2^8, Mf[o], shf[o])              (kept channels only)
        acc[n,iy,ix,i] = sum_{o kept, fy, fx : iy = oy*sh + fy*dh - pad_h, ...}
                             w[o,fy,fx,i] * g[n,oy,ox,o]            (transposed conv)
        (e_in, exp_in) = quantize_error(acc, err_exp - 8 + P)
    """
    n, oh, ow, cout = err.shape
    _, kh, kw, cin = weights.shape
    fm, fs, p = weight_scale_fold(weight_scale, cout)
    g = fold_error(err, fm, fs) * _kept_mask(kept, n, cout)[:, None, None, :]
    cols = exact_int_matmul(g.reshape(n * oh * ow, cout), weights.reshape(cout, -1))
    cols = cols.reshape(n, oh, ow, kh, kw, cin)
    acc = col2im_add(cols, (n, in_hw[0], in_hw[1], cin), (kh, kw), stride, dilation, pad, (oh, ow))
    return quantize_error(acc, np.asarray(err_exp, np.int64) - 8 + p, mode)


def conv2d_backward_weights(
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
    """Per-sample int32 gradients (held in int64, saturated to int32):

        gw[n,o,fy,fx,i] = sum_{oy,ox} err[n,oy,ox,o] * (x[n,iy,ix,i] - zp_x)   (taps outside: 0)
        gb[n,o]         = sum_{oy,ox} err[n,oy,ox,o]
    real gw = gw * 2^err_exp * s_x, real gb = gb * 2^err_exp. Skipped channels are 0."""
    n, oh, ow, cout = err.shape
    kh, kw = kernel_hw
    cin = x.shape[3]
    xs = x.astype(np.int64) - input_zero_point
    xp = pad_spatial(xs, pad, (kh, kw), stride, dilation, (oh, ow), 0)
    taps = [t for _, _, t in window_taps(xp, (kh, kw), stride, dilation, (oh, ow))]
    cols = np.stack(taps, axis=3).reshape(n, oh * ow, kh * kw * cin)
    e = err.astype(np.int64).reshape(n, oh * ow, cout) * _kept_mask(kept, n, cout)[:, None, :]
    gw = exact_int_matmul(np.swapaxes(e, 1, 2), cols).reshape(n, cout, kh, kw, cin)
    gb = e.sum(axis=1)
    return np.clip(gw, -(1 << 31), (1 << 31) - 1), np.clip(gb, -(1 << 31), (1 << 31) - 1)
