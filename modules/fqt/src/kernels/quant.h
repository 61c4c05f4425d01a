/*
 * The integer primitives of docs/integer-semantics.md: TFLM's MultiplyByQuantizedMultiplier
 * family (double rounding, the TFLM default) and the gemmlowp fixed-point functions softmax
 * uses, bit-exact with both.
 *
 * Where TFLM/gemmlowp rely on int32 wrap-around (signed overflow, undefined in C), these
 * wrap explicitly through uint32_t, and right shifts of negative values are written so
 * that they are arithmetic on every compiler. No function here has undefined behaviour
 * for any argument in its documented range.
 */
#ifndef FQT_QUANT_H_
#define FQT_QUANT_H_

#include <stdint.h>
#include <string.h>

/* uint32 -> int32 two's complement, without implementation-defined conversion. */
static inline int32_t fqt_wrap_s32(uint32_t u)
{
	return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

static inline int32_t fqt_wrapping_add(int32_t a, int32_t b)
{
	return fqt_wrap_s32((uint32_t)a + (uint32_t)b);
}

static inline int32_t fqt_wrapping_sub(int32_t a, int32_t b)
{
	return fqt_wrap_s32((uint32_t)a - (uint32_t)b);
}

/* x * 2^n modulo 2^32, n in [0, 31] (TFLM's x * (1 << n)). */
static inline int32_t fqt_wrapping_shift_left(int32_t x, int n)
{
	return fqt_wrap_s32((uint32_t)x << n);
}

/* Arithmetic shift right, n in [0, 31]: floor(x / 2^n). */
static inline int32_t fqt_arithmetic_shift_right(int32_t x, int n)
{
	return x < 0 ? ~(~x >> n) : x >> n;
}

static inline int32_t fqt_clamp_s32(int32_t x, int32_t lo, int32_t hi)
{
	return x < lo ? lo : (x > hi ? hi : x);
}

/* Number of leading zero bits; 32 for 0. */
int fqt_count_leading_zeros(uint32_t x);

/* gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH): round(a * b / 2^31),
 * ties toward +infinity, INT32_MIN * INT32_MIN saturating to INT32_MAX. */
int32_t fqt_saturating_rounding_doubling_high_mul(int32_t a, int32_t b);

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
 * exponent in [0, 31]. */
int32_t fqt_rounding_divide_by_pot(int32_t x, int exponent);

/* The same for any exponent >= 0 (softmax's can exceed 31 for very long rows; TFLM
 * aborts there, this returns the correctly rounded quotient: 0 or -1). */
int32_t fqt_rounding_divide_by_pot_wide(int32_t x, int exponent);

/* gemmlowp SaturatingRoundingMultiplyByPOT: x * 2^exponent, saturating for exponent > 0,
 * RoundingDivideByPOT for exponent < 0. exponent in [-31, 31]. */
int32_t fqt_saturating_rounding_multiply_by_pot(int32_t x, int exponent);

/* gemmlowp RoundingHalfSum: (a + b) / 2 rounded away from zero. */
int32_t fqt_rounding_half_sum(int32_t a, int32_t b);

/* TFLM MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift / 2^31.
 * shift in [-31, 30]. */
int32_t fqt_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* The two halves of the inlined requantizations below: the saturating rounding doubling
 * high multiply (floor((x * m + 2^30) / 2^31), see below), and the rounding divide by 2^e
 * (RDBPOT; e = 0 is the identity, mask 0). */
static inline int32_t fqt_requant_high_mul(int32_t x, int32_t multiplier)
{
	if (x == INT32_MIN && multiplier == INT32_MIN) {
		return INT32_MAX;
	}
	const int64_t v = (int64_t)x * (int64_t)multiplier + ((int64_t)1 << 30);
	return (int32_t)(v < 0 ? ~(~v >> 31) : v >> 31); /* floor, whatever >> does */
}

static inline int32_t fqt_requant_rdbpot(int32_t hi, int e)
{
	const uint32_t mask = ((uint32_t)1 << e) - 1u;
	const int32_t remainder = (int32_t)((uint32_t)hi & mask);
	const int32_t threshold = (int32_t)(mask >> 1) + (hi < 0 ? 1 : 0);
	return fqt_arithmetic_shift_right(hi, e) + (remainder > threshold ? 1 : 0);
}

/* fqt_multiply_by_quantized_multiplier inlined for the forward kernels' per-output
 * requantization (a call per output costs as much as the MACs of a depthwise output).
 * The same integer: (ab + nudge) / 2^31 toward zero equals floor((ab + 2^30) / 2^31) for
 * every int64 ab (both round a tie's magnitude down and agree elsewhere; the form of
 * CMSIS-NN's arm_nn_requantize), which is one SMULL and an add on Cortex-M. */
static inline int32_t fqt_requantize(int32_t x, int32_t multiplier, int shift)
{
	if (shift > 0) {
		x = (int32_t)((uint32_t)x << shift);
	}
	const int32_t hi = fqt_requant_high_mul(x, multiplier);
	if (shift >= 0) {
		return hi;
	}
	return fqt_requant_rdbpot(hi, -shift);
}

/* The same integer for the forward kernels' sums: one multiply for either sign of shift
 * and no branch on it (with the early return above GCC emits a full 64 x 64 product on
 * the shift < 0 path, the usual one of an output requantization); RDBPOT by 0 is the
 * identity (mask 0). Slower than fqt_requantize where shift >= 0 is common (the backward's
 * error folds). */
static inline int32_t fqt_requantize_sum(int32_t x, int32_t multiplier, int shift)
{
	const int left = shift > 0 ? shift : 0;
	const int right = left - shift; /* no branch on the sign of shift */
	x = (int32_t)((uint32_t)x << left);
	const int32_t hi = fqt_requant_high_mul(x, multiplier);
	return fqt_requant_rdbpot(hi, right);
}

/* A forward kernel's output requantization, copied out of its parameter structs into
 * locals: int8 output stores may alias anything, so fields read through the structs would
 * be reloaded after every output. */
typedef struct fqt_out_quant {
	const int32_t *multiplier, *shift;
	int32_t offset, act_min, act_max;
} fqt_out_quant;

/* Output channel oc of an int32 sum (bias included): requantize, offset, clamp. */
static inline int8_t fqt_out_s8(fqt_out_quant q, int32_t oc, int32_t acc)
{
	acc = fqt_requantize_sum(acc, q.multiplier[oc], (int)q.shift[oc]);
	acc = fqt_wrapping_add(acc, q.offset);
	return (int8_t)fqt_clamp_s32(acc, q.act_min, q.act_max);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp: left_shift in [-31, 0]. */
int32_t fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(int32_t x, int32_t multiplier,
								  int left_shift);

/* TFLM MultiplyByQuantizedMultiplierGreaterThanOne: left_shift in [0, 31]. */
int32_t fqt_multiply_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier,
							      int left_shift);

/* gemmlowp exp_on_negative_values for a Q5.26 input a <= 0; result Q0.31. */
int32_t fqt_exp_on_negative_values_q5(int32_t a);

/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 in and out. */
int32_t fqt_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a);

/* gemmlowp one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out. */
int32_t fqt_one_over_one_plus_x_for_x_in_0_1(int32_t a);

/* TFLM GetReciprocal: 1 / x for x (> 0) with x_integer_digits integer bits; the result is
 * Q0.31 scaled by 2^-num_bits_over_unit. */
int32_t fqt_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit);

/* Dot product of int8 vectors with an offset on the first: sum (a[i] + a_offset) * b[i].
 * The SMLAD path (FQT_SIMD_DSP) gives the same sum. */
int32_t fqt_dot_s8_offset(const int8_t *a, int32_t a_offset, const int8_t *b, int32_t count);

/* TFLM QuantizeMultiplier: the (M, shift) with d = M * 2^(shift - 31), M in [2^30, 2^31);
 * d = 0 gives (0, 0). Per channel, at load or update time only: never per element. */
void fqt_quantize_multiplier(double d, int32_t *multiplier, int *shift);

static inline uint32_t fqt_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

/* A finite nonzero float as +-mant * 2^exp2 with mant in [2^23, 2^24) (a denormal's
 * mantissa normalized); 0 for zero, Inf and NaN. From the bits: no float arithmetic.
 * Inline: the error fold calls it per channel per sample. */
static inline int fqt_f32_mantissa(uint32_t bits, int32_t *mant, int *exp2)
{
	const uint32_t e = (bits >> 23) & 0xFFu;
	uint32_t f = bits & 0x7FFFFFu;
	if (e == 0xFFu || (bits & 0x7FFFFFFFu) == 0u) {
		return 0;
	}
	int k = (int)e - 150;
	if (e == 0u) { /* a denormal (rare): normalize bit by bit */
		k = -149;
		while ((f & 0x800000u) == 0u) {
			f <<= 1;
			--k;
		}
	} else {
		f |= 0x800000u;
	}
	*mant = (int32_t)f;
	*exp2 = k;
	return 1;
}

/* fqt_quantize_multiplier((double)d) for a finite float d, from its bits (no double
 * arithmetic): q * 2^31 = mant * 2^7 is exact. Inf and NaN give (0, 0). */
void fqt_quantize_multiplier_f32(float d, int32_t *multiplier, int *shift);

/* fqt_quantize_multiplier((double)a * (double)b / (double)c) for positive floats, as TFLM
 * derives a layer's multiplier from its scales, in integers only: the double product is
 * exact, the quotient is rounded to 53 bits (nearest, ties to even) from a 61-63 bit
 * integer quotient and its sticky remainder, then to 31 bits as QuantizeMultiplier does.
 * Any other argument (zero, negative, Inf, NaN) gives (0, 0): no scale of a valid model
 * is one, and the double formula has no defined value for most of them. */
void fqt_quantize_multiplier_ratio(float a, float b, float c, int32_t *multiplier, int *shift);

#endif /* FQT_QUANT_H_ */
