/* Integer primitives: see quant.h and docs/integer-semantics.md. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "fqt/config.h"
#include "kernels_internal.h"

#if FQT_SIMD_DSP
#include <arm_acle.h>
#endif

int fqt_count_leading_zeros(uint32_t x)
{
	if (x == 0u) {
		return 32;
	}
#if defined(__GNUC__) || defined(__clang__)
	return __builtin_clz(x);
#else
	int n = 0;
	while ((x & 0x80000000u) == 0u) {
		x <<= 1;
		++n;
	}
	return n;
#endif
}

/* Division by 2^31 truncating toward zero, as C++ `/ (1ll << 31)` in gemmlowp, without a
 * 64-bit division call on cores that lack one. */
static int32_t divide_by_2_pow_31_toward_zero(int64_t v)
{
	if (v >= 0) {
		return (int32_t)((uint64_t)v >> 31);
	}
	return (int32_t)-(int64_t)((uint64_t)(-v) >> 31);
}

int32_t fqt_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
	if (a == b && a == INT32_MIN) {
		return INT32_MAX;
	}
	const int64_t ab = (int64_t)a * (int64_t)b;
	const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
	return divide_by_2_pow_31_toward_zero(ab + nudge);
}

int32_t fqt_rounding_divide_by_pot(int32_t x, int exponent)
{
	const uint32_t mask = ((uint32_t)1 << exponent) - 1u;
	const int32_t remainder = (int32_t)((uint32_t)x & mask);
	const int32_t threshold = (int32_t)(mask >> 1) + (x < 0 ? 1 : 0);
	return fqt_arithmetic_shift_right(x, exponent) + (remainder > threshold ? 1 : 0);
}

int32_t fqt_rounding_divide_by_pot_wide(int32_t x, int exponent)
{
	if (exponent <= 31) {
		return fqt_rounding_divide_by_pot(x, exponent);
	}
	/* |x| <= 2^31 <= 2^(exponent-1): rounds to 0, except -2^31 / 2^32 = -0.5 -> -1. */
	return (exponent == 32 && x == INT32_MIN) ? -1 : 0;
}

int32_t fqt_saturating_rounding_multiply_by_pot(int32_t x, int exponent)
{
	if (exponent == 0) {
		return x;
	}
	if (exponent < 0) {
		return fqt_rounding_divide_by_pot(x, -exponent);
	}
	const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
	if (x > threshold) {
		return INT32_MAX;
	}
	if (x < -threshold) {
		return INT32_MIN;
	}
	return fqt_wrapping_shift_left(x, exponent);
}

int32_t fqt_rounding_half_sum(int32_t a, int32_t b)
{
	const int64_t sum = (int64_t)a + (int64_t)b;
	const int64_t sign = sum >= 0 ? 1 : -1;
	return (int32_t)((sum + sign) / 2);
}

int32_t fqt_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
	const int left_shift = shift > 0 ? shift : 0;
	const int right_shift = shift > 0 ? 0 : -shift;
	return fqt_rounding_divide_by_pot(
		fqt_saturating_rounding_doubling_high_mul(fqt_wrapping_shift_left(x, left_shift),
							  multiplier),
		right_shift);
}

int32_t fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(int32_t x, int32_t multiplier,
								  int left_shift)
{
	return fqt_rounding_divide_by_pot(fqt_saturating_rounding_doubling_high_mul(x, multiplier),
					  -left_shift);
}

int32_t fqt_multiply_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier,
							      int left_shift)
{
	return fqt_saturating_rounding_doubling_high_mul(fqt_wrapping_shift_left(x, left_shift),
							 multiplier);
}

int32_t fqt_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
	const int32_t constant_term = 1895147668;     /* exp(-1/8) in Q0.31 */
	const int32_t constant_1_over_3 = 715827883; /* 1/3 in Q0.31 */
	/* Taylor expansion around -1/8: x = a + 1/8. */
	const int32_t x = fqt_wrapping_add(a, (int32_t)1 << 28);
	const int32_t x2 = fqt_saturating_rounding_doubling_high_mul(x, x);
	const int32_t x3 = fqt_saturating_rounding_doubling_high_mul(x2, x);
	const int32_t x4 = fqt_saturating_rounding_doubling_high_mul(x2, x2);
	const int32_t x4_over_4 = fqt_rounding_divide_by_pot(x4, 2);
	const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 = fqt_rounding_divide_by_pot(
		fqt_wrapping_add(fqt_saturating_rounding_doubling_high_mul(
					 fqt_wrapping_add(x4_over_4, x3), constant_1_over_3),
				 x2),
		1);
	return fqt_wrapping_add(
		constant_term,
		fqt_saturating_rounding_doubling_high_mul(
			constant_term, fqt_wrapping_add(x, x4_over_24_plus_x3_over_6_plus_x2_over_2)));
}

int32_t fqt_exp_on_negative_values_q5(int32_t a)
{
	/* Input Q5.26: 5 integer bits, 26 fractional bits. */
	enum { kFractionalBits = 26 };
	static const int32_t barrel_multipliers[7] = {
		1672461947, /* exp(-1/4) */
		1302514674, /* exp(-1/2) */
		790015084,  /* exp(-1) */
		290630308,  /* exp(-2) */
		39332535,   /* exp(-4) */
		720401,     /* exp(-8) */
		242,        /* exp(-16) */
	};
	const int32_t one_quarter = (int32_t)1 << (kFractionalBits - 2);
	const int32_t mask = one_quarter - 1;
	const int32_t a_mod_quarter_minus_one_quarter = fqt_wrapping_sub(a & mask, one_quarter);
	int32_t result = fqt_exp_on_interval_between_negative_one_quarter_and_0_excl(
		fqt_saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, 5));
	const int32_t remainder = fqt_wrapping_sub(a_mod_quarter_minus_one_quarter, a);
	for (int i = 0; i < 7; ++i) {
		/* Bit (26 + exponent) of the remainder stands for exp(-2^exponent), exponent -2..4. */
		const int shift = kFractionalBits - 2 + i;
		if (((uint32_t)remainder & ((uint32_t)1 << shift)) != 0u) {
			result = fqt_saturating_rounding_doubling_high_mul(result,
									   barrel_multipliers[i]);
		}
	}
	if (a == 0) {
		result = INT32_MAX; /* exactly one */
	}
	return result;
}

int32_t fqt_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
	/* Newton-Raphson on half the denominator, in Q2.29. */
	const int32_t half_denominator = fqt_rounding_half_sum(a, INT32_MAX);
	const int32_t constant_48_over_17 = 1515870810;
	const int32_t constant_neg_32_over_17 = -1010580540;
	const int32_t one_q2 = (int32_t)1 << 29; /* 1.0 in Q2.29 */
	int32_t x = fqt_wrapping_add(constant_48_over_17,
				     fqt_saturating_rounding_doubling_high_mul(
					     half_denominator, constant_neg_32_over_17));
	for (int i = 0; i < 3; ++i) {
		const int32_t half_denominator_times_x =
			fqt_saturating_rounding_doubling_high_mul(half_denominator, x);
		const int32_t one_minus_half_denominator_times_x =
			fqt_wrapping_sub(one_q2, half_denominator_times_x);
		x = fqt_wrapping_add(
			x, fqt_saturating_rounding_multiply_by_pot(
				   fqt_saturating_rounding_doubling_high_mul(
					   x, one_minus_half_denominator_times_x),
				   2));
	}
	/* x / 2 as Q1.30 -> Q0.31 */
	return fqt_saturating_rounding_multiply_by_pot(x, 1);
}

int32_t fqt_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit)
{
	const int headroom_plus_one = fqt_count_leading_zeros((uint32_t)x);
	*num_bits_over_unit = x_integer_digits - headroom_plus_one;
	const int32_t shifted_sum_minus_one =
		fqt_wrap_s32(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
	return fqt_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

int32_t fqt_dot_s8_offset(const int8_t *a, int32_t a_offset, const int8_t *b, int32_t count)
{
	int32_t acc = 0;
	int32_t i = 0;
#if FQT_SIMD_DSP
	/* Bytes 0 and 2, then (rotated by 8) bytes 1 and 3, as 16-bit lanes: (a + offset) fits int16 since |a + offset| <= 255. */
	const int16x2_t offset_pair = (int16x2_t)(((uint32_t)(uint16_t)a_offset) * 0x00010001u);
	for (; i + 4 <= count; i += 4) {
		uint32_t a4;
		uint32_t b4;
		memcpy(&a4, a + i, 4);
		memcpy(&b4, b + i, 4);
		const int16x2_t a_even = __sxtab16(offset_pair, (int8x4_t)a4);
		const int16x2_t a_odd = __sxtab16(offset_pair, (int8x4_t)((a4 >> 8) | (a4 << 24)));
		const int16x2_t b_even = __sxtb16((int8x4_t)b4);
		const int16x2_t b_odd = __sxtb16((int8x4_t)((b4 >> 8) | (b4 << 24)));
		acc = __smlad(a_even, b_even, acc);
		acc = __smlad(a_odd, b_odd, acc);
	}
#endif
	for (; i < count; ++i) {
		acc += ((int32_t)a[i] + a_offset) * (int32_t)b[i];
	}
	return acc;
}

/* QuantizeMultiplier's tail: a q_fixed rounded up to 2^31 halves, a shift below -31 is 0. */
static void multiplier_tail(int64_t q_fixed, int sh, int32_t *multiplier, int *shift)
{
	if (q_fixed == ((int64_t)1 << 31)) {
		q_fixed /= 2;
		++sh;
	}
	if (sh < -31) {
		sh = 0;
		q_fixed = 0;
	}
	*multiplier = (int32_t)q_fixed;
	*shift = sh;
}

void fqt_quantize_multiplier(double d, int32_t *multiplier, int *shift)
{
	if (d == 0.0) {
		*multiplier = 0;
		*shift = 0;
		return;
	}
	int sh;
	const double q = frexp(d, &sh);
	const int64_t q_fixed = (int64_t)round(q * 2147483648.0);
	multiplier_tail(q_fixed, sh, multiplier, shift);
}

void fqt_quantize_multiplier_f32(float d, int32_t *multiplier, int *shift)
{
	const uint32_t u = fqt_f32_bits(d);
	int32_t mant;
	int k;
	/* frexp(d) = mant * 2^-24, exponent k + 24 */
	const int sh = fqt_f32_mantissa(u, &mant, &k) ? k + 24 : -32;
	if (sh < -31) {
		*multiplier = 0;
		*shift = 0;
		return;
	}
	*multiplier = (u >> 31) != 0u ? -(mant << 7) : (mant << 7);
	*shift = sh;
}

void fqt_quantize_multiplier_ratio(float a, float b, float c, int32_t *multiplier, int *shift)
{
	int32_t ma, mb, mc;
	int ka, kb, kc;
	const uint32_t ua = fqt_f32_bits(a), ub = fqt_f32_bits(b), uc = fqt_f32_bits(c);
	if (((ua | ub | uc) >> 31) != 0u || !fqt_f32_mantissa(ua, &ma, &ka) ||
	    !fqt_f32_mantissa(ub, &mb, &kb) || !fqt_f32_mantissa(uc, &mc, &kc)) {
		*multiplier = 0;
		*shift = 0;
		return;
	}
	/* a * b / c = (P / mc) * 2^(ka + kb - kc), P = ma * mb in [2^46, 2^48): the double
	 * product is exact and no double range is left. Q = floor(P * 2^38 / mc). */
	const uint64_t p = (uint64_t)ma * (uint64_t)mb;
	const uint64_t d = (uint64_t)mc;
	const uint64_t q0 = p / d;
	const uint64_t r0 = p % d;
	const uint64_t lo = (r0 << 38) / d;
	const int sticky = ((r0 << 38) % d) != 0u;
	const uint64_t q = (q0 << 38) | lo;
	const int drop = fqt_bit_length64(q) - 53;
	/* round to the double's 53 bits: nearest, ties to even */
	const uint64_t low = q & (((uint64_t)1 << drop) - 1u);
	const uint64_t half = (uint64_t)1 << (drop - 1);
	uint64_t m53 = q >> drop;
	int e = ka + kb - kc - 38 + drop;
	if (low > half || (low == half && (sticky || (m53 & 1u) != 0u))) {
		++m53;
		if (m53 == ((uint64_t)1 << 53)) {
			m53 >>= 1;
			++e;
		}
	}
	/* frexp: q = m53 / 2^53, exponent e + 53; round(q * 2^31) ties away from zero */
	const int64_t q_fixed = (int64_t)((m53 + ((uint64_t)1 << 21)) >> 22);
	multiplier_tail(q_fixed, e + 53, multiplier, shift);
}
