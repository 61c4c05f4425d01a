"""Integer primitives of int8 inference, bit-exact with TFLite Micro / gemmlowp.

The names follow TFLM (tensorflow/lite/kernels/internal/common.h, quantization_util.cc)
and gemmlowp (fixedpoint.h). The spec is docs/integer-semantics.md.

Array functions take numpy integer arrays (or Python ints), compute in int64 and return
int64 values that lie in the int32 range, exactly as the C code's int32 results.
The float -> integer conversions (quantize_multiplier & co) take Python floats, i.e.
C doubles, and return Python ints; the caller decides which products are float32.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

ArrayLike = np.ndarray | int


def _i64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


# --- gemmlowp / TFLM integer primitives ---------------------------------------------


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties toward +inf.

    C: ab = a * b (int64); nudge = ab >= 0 ? 2^30 : 1 - 2^30;
    result = (ab + nudge) / 2^31 with C's truncating division; a == b == INT32_MIN (the only
    overflow) gives INT32_MAX. Truncating (ab + 1 - 2^30) / 2^31 for negative ab equals
    flooring (ab + 2^30) / 2^31, so both signs reduce to one arithmetic shift.
    """
    ab = _i64(a) * _i64(b)
    return np.minimum((ab + (1 << 30)) >> 31, INT32_MAX)


def saturating_rounding_doubling_high_mul_c(a: int, b: int) -> int:
    """The literal C form of saturating_rounding_doubling_high_mul, on Python ints."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    q = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return q >> 31 if q >= 0 else -((-q) >> 31)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from 0.

    mask = 2^e - 1; remainder = x & mask; threshold = (mask >> 1) + (x < 0);
    result = (x >> e) + (remainder > threshold)   (>> is arithmetic).
    """
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x: ArrayLike, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>: x * 2^exponent.

    exponent > 0: left shift saturated to int32; exponent < 0: rounding_divide_by_pot.
    """
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return np.clip(x << exponent, INT32_MIN, INT32_MAX)


def multiply_by_quantized_multiplier(
    x: ArrayLike, quantized_multiplier: ArrayLike, shift: ArrayLike
) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier (default, double rounding): x * M * 2^shift.

    left = max(shift, 0), right = max(-shift, 0):
    RoundingDivideByPOT(SRDHM(x * 2^left, M), right).
    """
    x, m, s = _i64(x), _i64(quantized_multiplier), _i64(shift)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x << left, m), right)


def multiply_by_quantized_multiplier_smaller_than_one_exp(
    x: ArrayLike, quantized_multiplier: ArrayLike, left_shift: ArrayLike
) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0)."""
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, quantized_multiplier), -_i64(left_shift)
    )


def multiply_by_quantized_multiplier_greater_than_one(
    x: ArrayLike, quantized_multiplier: ArrayLike, left_shift: ArrayLike
) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplierGreaterThanOne: SRDHM(x * 2^left_shift, M)."""
    return saturating_rounding_doubling_high_mul(_i64(x) << _i64(left_shift), quantized_multiplier)


def rounding_half_sum(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp RoundingHalfSum for int32: (a + b + sign(a + b)) / 2, truncating."""
    s = _i64(a) + _i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))


def count_leading_zeros_u32(x: ArrayLike) -> np.ndarray:
    """Leading zero bits of x taken as uint32 (32 for 0)."""
    u = _i64(x) & 0xFFFFFFFF
    n = np.zeros(u.shape, np.int64)
    for bits in (16, 8, 4, 2, 1):
        small = u < (np.int64(1) << (32 - bits))
        n = np.where(small, n + bits, n)
        u = np.where(small, u << bits, u)
    return np.where(_i64(x) & 0xFFFFFFFF == 0, 32, n)


# --- gemmlowp fixed-point transcendental helpers (int32 raw values) -------------------
# FixedPoint<int32, I> holds raw / 2^(31 - I). Products of two fixed-point numbers are
# SRDHM of the raws (the result has I1 + I2 integer bits); sums are plain int32 sums.

_F0_ONE = INT32_MAX  # FixedPoint<int32, 0>::One() saturates to the largest raw value


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: ArrayLike) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), a and result FixedPoint<int32, 0>.

    Taylor series around -1/8: x = a + 1/8;
    exp(a) = e^(-1/8) * (1 + x + (x^2 + (x^3 + x^4/4) / 3) / 2).
    """
    srdhm = saturating_rounding_doubling_high_mul
    constant_term = 1895147668  # e^(-1/8) in Q0.31
    constant_1_over_3 = 715827883  # 1/3 in Q0.31
    x = _i64(a) + (1 << 28)  # + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return constant_term + srdhm(constant_term, x + poly)


# exp(-2^k) in Q0.31 for the barrel shifter, k = -2 .. 4
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # fmt: skip


def exp_on_negative_values(a: ArrayLike, integer_bits: int = 5) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a is FixedPoint<int32, integer_bits> <= 0, the
    result FixedPoint<int32, 0>.

    a = -(k/4 + r) with r in (0, 1/4]: exp(a) = exp(r - 1/4) * prod over the set bits
    2^j of (-a rounded down to quarters) of exp(-2^j).
    """
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (fractional_bits + exponent)
            result = np.where(
                (remainder & bit) != 0,
                saturating_rounding_doubling_high_mul(result, multiplier),
                result,
            )
    if integer_bits > 5:
        clamp = -(1 << (fractional_bits + 5))  # exp(-32) underflows to 0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, _F0_ONE, result)


def one_over_one_plus_x_for_x_in_0_1(a: ArrayLike) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1), a FixedPoint<int32, 0>, result too.

    Newton-Raphson on the half denominator d = (1 + a) / 2 in FixedPoint<int32, 2>:
    x0 = 48/17 - 32/17 d;  x <- x + x (1 - d x) three times;  result = x / 2.
    """
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, _F0_ONE)  # F0
    constant_48_over_17 = 1515870810  # F2
    constant_neg_32_over_17 = -1010580540  # F2
    f2_one = 1 << 29
    x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17)  # F2
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)  # F2
        one_minus_half_denominator_times_x = f2_one - half_denominator_times_x  # F2
        # F2 * F2 = F4, Rescale<2>: multiply by 2^(4 - 2)
        x = x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus_half_denominator_times_x), 2)
    # ExactMulByPot<-1> turns F2 into F1 with the same raw; Rescale<0>: multiply by 2^1
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x: ArrayLike, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLM GetReciprocal: 1 / x for x > 0 in FixedPoint<int32, x_integer_digits>.

    Returns (shifted_scale, num_bits_over_unit) with
    1 / x = shifted_scale (Q0.31) / 2^num_bits_over_unit.
    """
    x = _i64(x)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)  # uint32 wrap
    shifted_sum_minus_one = np.where(shifted >= (1 << 31), shifted - (1 << 32), shifted)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# --- float scales -> integer parameters (Prepare time only) ---------------------------


def quantize_multiplier_ratio(a: float, b: float, c: float) -> tuple[int, int]:
    """QuantizeMultiplier(a * b / c) in double for positive finite a, b, c; any other
    argument gives (0, 0), as C's fqt_quantize_multiplier_ratio (the importer refuses such
    scales; a diverging training run can reach one)."""
    if not all(math.isfinite(v) and v > 0.0 for v in (a, b, c)):
        return 0, 0
    return quantize_multiplier(float(a) * float(b) / float(c))


def tflite_round(x: float) -> int:
    """TfLiteRound / std::round: round half away from zero."""
    t = math.trunc(x)
    frac = x - t
    if frac >= 0.5:
        t += 1
    elif frac <= -0.5:
        t -= 1
    return int(t)


def quantize_multiplier(double_multiplier: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: double -> (int32 M, shift), double_multiplier ~ M 2^(shift-31).

    q, shift = frexp(d) (q in [0.5, 1)); M = round_half_away(q * 2^31); M == 2^31 -> M/2,
    shift + 1; shift < -31 -> (0, 0).
    """
    if double_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(double_multiplier)
    q_fixed = tflite_round(q * float(1 << 31))
    assert q_fixed <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    assert q_fixed <= INT32_MAX
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(double_multiplier: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplierSmallerThanOneExp: 0 < d < 1, returns (M, left_shift <= 0)."""
    if not 0.0 < double_multiplier < 1.0:
        raise ValueError(f"multiplier {double_multiplier} not in (0, 1)")
    m, shift = quantize_multiplier(double_multiplier)
    assert shift <= 0
    return m, shift


def quantize_multiplier_greater_than_one(double_multiplier: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplierGreaterThanOne: d > 1, returns (M, left_shift >= 0)."""
    if not double_multiplier > 1.0:
        raise ValueError(f"multiplier {double_multiplier} not > 1")
    m, shift = quantize_multiplier(double_multiplier)
    assert shift >= 0
    return m, shift


def preprocess_softmax_scaling(
    beta: float, input_scale: float, input_integer_bits: int
) -> tuple[int, int]:
    """TFLM PreprocessSoftmaxScaling (doubles): min(beta * s * 2^(31 - ib), 2^31 - 1)."""
    real = min(beta * input_scale * float(1 << (31 - input_integer_bits)), float((1 << 31) - 1))
    return quantize_multiplier_greater_than_one(real)


def calculate_input_radius(
    input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31
) -> int:
    """TFLM CalculateInputRadius: floor((2^ib - 1) 2^(31 - ib) / 2^left_shift) in double."""
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return math.floor(max_input_rescaled)


def quantize_float32(f: float, scale: float, zero_point: int) -> int:
    """TFLM's Quantize in CalculateActivationRangeQuantized: zp + (int)roundf(f / scale),
    the division in float32."""
    ratio = float(np.float32(f) / np.float32(scale))
    return int(zero_point) + tflite_round(ratio)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """TFLite's rounding (std::round): halves go away from zero, not to even."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float inputs to int8 as TFLite's QUANTIZE does: round(x / scale) + zero_point,
    rounded half away from zero, clamped to [-128, 127]."""
    q = round_half_away(np.asarray(x, np.float64) / float(scale)) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)
