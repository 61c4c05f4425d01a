"""ADD of two int8 tensors of the same shape, rescaled to a common scale (left_shift 20).

    a' = MBQMSmallerThanOneExp((a - zp_a) * 2^left_shift, M_a, shift_a)
    b' = MBQMSmallerThanOneExp((b - zp_b) * 2^left_shift, M_b, shift_b)
    out = clamp(MBQMSmallerThanOneExp(a' + b', M_out, shift_out) + zp_out, act_min, act_max)

TFLM: integer_ops/add.h AddElementwise.
"""

from __future__ import annotations

import numpy as np

from ..quant import multiply_by_quantized_multiplier_smaller_than_one_exp as mbqm_lt1


def add_forward(
    a: np.ndarray,
    b: np.ndarray,
    *,
    input1_zero_point: int,
    input2_zero_point: int,
    output_zero_point: int,
    left_shift: int,
    input1_multiplier: int,
    input1_shift: int,
    input2_multiplier: int,
    input2_shift: int,
    output_multiplier: int,
    output_shift: int,
    act_min: int,
    act_max: int,
) -> np.ndarray:
    shifted_a = (a.astype(np.int64) - input1_zero_point) << left_shift
    shifted_b = (b.astype(np.int64) - input2_zero_point) << left_shift
    scaled_a = mbqm_lt1(shifted_a, input1_multiplier, input1_shift)
    scaled_b = mbqm_lt1(shifted_b, input2_multiplier, input2_shift)
    raw_sum = scaled_a + scaled_b
    raw_out = mbqm_lt1(raw_sum, output_multiplier, output_shift) + output_zero_point
    return np.clip(raw_out, act_min, act_max).astype(np.int8)


def add_backward(
    err: np.ndarray, err_exp: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Errors are w.r.t. real values and y_real = a_real + b_real, so both branches get the
    output error unchanged (bytes and exponent); the input scales s_a, s_b enter only the
    forward. (The fused activation's mask is applied before, by the caller, which then
    delivers each part to its input if that input needs an error, the two independently:
    docs/training-semantics.md 5.7.)"""
    return (err, err_exp), (err.copy(), np.asarray(err_exp).copy())
