"""SOFTMAX over the last axis, int8 in, int8 out (scale 1/256, zero point -128).

Per row, with gemmlowp fixed point (Qi.f = FixedPoint<int32, i>):
    d[c]   = in[c] - max(in)                                  (int, <= 0)
    used   = d >= diff_min
    z[c]   = SRDHM(d * 2^input_left_shift, input_multiplier)  (Q5.26: beta * s_in * d)
    e[c]   = exp_on_negative_values(z)                        (Q0.31)
    sum    = sum over used of RoundingDivideByPOT(e, 12)      (Q12.19)
    r, nb  = GetReciprocal(sum, 12)                           (1/sum = r / 2^nb, r Q0.31)
    out[c] = used ? clamp(RoundingDivideByPOT(SRDHM(r, e), nb + 23) - 128, -128, 127) : -128

TFLM: reference/softmax.h Softmax (the templated int8 version).
"""

from __future__ import annotations

import numpy as np

from ..quant import (
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier_greater_than_one,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def softmax_forward(
    x: np.ndarray, *, input_multiplier: int, input_left_shift: int, diff_min: int
) -> np.ndarray:
    """x int8 [..., depth] -> int8 [..., depth]."""
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    # Unused entries are excluded; give them a harmless diff so nothing overflows.
    scaled = multiply_by_quantized_multiplier_greater_than_one(
        np.where(used, diff, 0), input_multiplier, input_left_shift
    )
    exp_q0 = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    exp_acc = rounding_divide_by_pot(exp_q0, ACCUMULATION_INTEGER_BITS)
    sum_of_exps = np.where(used, exp_acc, 0).sum(axis=-1, keepdims=True)
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    unsat = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(shifted_scale, exp_q0), num_bits_over_unit + 31 - 8
    )
    out = np.clip(unsat - 128, -128, 127)
    return np.where(used, out, -128).astype(np.int8)
