"""Helpers shared by the golden kernels: requantization and spatial windows.

Activations carry a leading batch axis N (any N >= 1); every sample is computed
independently, exactly as TFLM computes a batch-1 tensor.
"""

from __future__ import annotations

import numpy as np

from ..quant import multiply_by_quantized_multiplier, rounding_divide_by_pot


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


# --- training (docs/training-semantics.md) -------------------------------------------
# Error tensors are int8, symmetric (zero point 0), with a power-of-two scale per tensor
# per sample: real = e * 2^exp. Exponents are held as int64 arrays of shape [N].

ERROR_MAX = 127  # error int8 values lie in [-127, 127]
ERROR_FOLD_BITS = 8  # extra bits of the weight-scale-folded error (int16 range)
FIXED_ERROR_EXP = -7  # error_scaling="fixed": the paper's fixed [-1, 1] range, as 2^-7 steps
FIXED_SHIFT_CAP = 24  # left shifts of error_scaling="fixed" are capped at 24 bits


def bit_length(m: int) -> int:
    """Bits of a non-negative integer (0 for 0): 64 - CLZ64(m) in C."""
    return int(m).bit_length()


def quantize_error(
    acc: np.ndarray, base_exp: np.ndarray | int, mode: str = "dynamic"
) -> tuple[np.ndarray, np.ndarray]:
    """Integer accumulator acc [N, ...] (real = acc * 2^base_exp[n]) -> int8 errors and
    their exponents [N].

    dynamic: m = max|acc| of the sample, r = max(bit_length(m) - 7, 0),
             e = clamp(RDBPOT(acc, r), -127, 127), exp = base_exp + r.
    fixed:   exp = -7, r = exp - base_exp; r >= 0: e = clamp(RDBPOT(acc, min(r, 62)));
             r < 0: e = clamp(clamp(acc, INT32) << min(-r, 24), -127, 127).
    """
    acc = np.asarray(acc, np.int64)
    n = acc.shape[0]
    base = np.broadcast_to(np.asarray(base_exp, np.int64), (n,)).copy()
    flat = acc.reshape(n, -1)
    out = np.zeros(flat.shape, np.int64)
    exps = np.zeros(n, np.int64)
    for i in range(n):
        if mode == "dynamic":
            m = int(np.abs(flat[i]).max(initial=0))
            r = max(bit_length(m) - 7, 0)
            out[i] = rounding_divide_by_pot(flat[i], r)
            exps[i] = base[i] + r
        elif mode == "fixed":
            r = FIXED_ERROR_EXP - int(base[i])
            if r >= 0:
                out[i] = rounding_divide_by_pot(flat[i], min(r, 62))
            else:
                s = min(-r, FIXED_SHIFT_CAP)
                out[i] = np.clip(flat[i], -(1 << 31), (1 << 31) - 1) << s
            exps[i] = FIXED_ERROR_EXP
        else:
            raise ValueError(f"unknown error scaling {mode!r}")
    q = np.clip(out, -ERROR_MAX, ERROR_MAX).astype(np.int8)
    return q.reshape(acc.shape), exps


def combine_errors(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two int8 errors of one tensor -> one (docs/training-semantics.md 2.3).

    Per sample: E = min(E1, E2); acc = e1 << min(E1 - E, 24) + e2 << min(E2 - E, 24)
    (exact: |acc| < 2^31); then quantize_error(acc, E)."""
    (e1, x1), (e2, x2) = first, second
    x1, x2 = np.asarray(x1, np.int64), np.asarray(x2, np.int64)
    low = np.minimum(x1, x2)
    shape = (-1,) + (1,) * (e1.ndim - 1)
    s1 = np.minimum(x1 - low, 24).reshape(shape)
    s2 = np.minimum(x2 - low, 24).reshape(shape)
    acc = (e1.astype(np.int64) << s1) + (e2.astype(np.int64) << s2)
    return quantize_error(acc, low, mode)


def align_errors(
    parts: list[tuple[np.ndarray, np.ndarray]], mode: str = "dynamic"
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the int8 errors of one tensor with several consumers, in the order they
    were delivered (the backward order: consumers in decreasing layer index; an ADD gives
    its first input's error before its second's). A single part is returned unchanged;
    otherwise folded from the left, two at a time: r = combine_errors(r, part_j). This
    is what the C engine does with its one int8 error buffer per tensor, for any number
    of consumers."""
    out = parts[0]
    for part in parts[1:]:
        out = combine_errors(out, part, mode)
    return out


def weight_scale_fold(scales: np.ndarray, n_channels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel (M, shift) of s_w[c] / 2^P with P = frexp(max_c s_w[c]).exponent,
    by QuantizeMultiplier in double; a per-tensor scale is broadcast. Returns (M, shift, P)."""
    import math

    from ..quant import quantize_multiplier

    s = np.broadcast_to(np.asarray(scales, np.float32), (n_channels,))
    p = math.frexp(float(s.max()))[1]
    ms = [quantize_multiplier(math.ldexp(float(v), -p)) for v in s]
    return (
        np.array([m for m, _ in ms], np.int64),
        np.array([sh for _, sh in ms], np.int64),
        p,
    )


def fold_error(err: np.ndarray, fold_mult: np.ndarray, fold_shift: np.ndarray) -> np.ndarray:
    """g = MBQM(e * 2^8, M[c], shift[c]) along the last (channel) axis: |g| < 2^15.
    real g = g * 2^(exp - 8 + P)."""
    return multiply_by_quantized_multiplier(
        err.astype(np.int64) << ERROR_FOLD_BITS, fold_mult, fold_shift
    )


def activation_backward(
    err: np.ndarray, y: np.ndarray, activation: int, act_min: int, act_max: int
) -> np.ndarray:
    """Fused RELU: pass where y > act_min; RELU6: where act_min < y < act_max; NONE: all."""
    if activation == 1:  # RELU
        return np.where(y > act_min, err, 0).astype(np.int8)
    if activation == 3:  # RELU6
        return np.where((y > act_min) & (y < act_max), err, 0).astype(np.int8)
    return err


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
