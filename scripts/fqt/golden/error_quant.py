"""The int8 backward errors (docs/training-semantics.md section 2), the twin of
modules/fqt/src/kernels/error_quant.c: quantize_error (2.1) turns an integer accumulator
into int8 errors with a power-of-two scale per sample; weight_scale_fold/fold_error (2.2)
fold per-channel weight scales into an error before the input-error product;
combine_errors/align_errors (2.3) sum the errors of a tensor with several consumers.
"""

from __future__ import annotations

import math

import numpy as np

from ..quant import multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot

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
    by QuantizeMultiplier in double; a per-tensor scale is broadcast. Returns (M, shift, P).
    The max is taken as C does (the first of the largest, a NaN never larger); a non-finite
    max gives P = 0 and a non-finite scale (0, 0): only a diverged run reaches one."""
    s = np.broadcast_to(np.asarray(scales, np.float32), (n_channels,))
    mx = float(s[0])
    for v in s[1:]:
        mx = float(v) if float(v) > mx else mx
    p = math.frexp(mx)[1] if math.isfinite(mx) else 0
    ms = [
        quantize_multiplier(math.ldexp(float(v), -p)) if math.isfinite(float(v)) else (0, 0)
        for v in s
    ]
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
