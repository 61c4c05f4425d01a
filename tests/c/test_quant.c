/*
 * The integer primitives (src/kernels/quant.c) on hand-worked values. Where a value is not
 * obvious by hand (the fixed-point exp and reciprocal) it comes from a line-by-line
 * Python port of gemmlowp and is also checked against the real function it approximates.
 */
#include <math.h>
#include <string.h>

#include "fqt_test.h"
#include "kernels/quant.h"

static void test_wrapping(void)
{
	CHECK_EQ_INT(fqt_wrap_s32(0xFFFFFFFFu), -1);
	CHECK_EQ_INT(fqt_wrap_s32(0x80000000u), INT32_MIN);
	CHECK_EQ_INT(fqt_wrapping_add(INT32_MAX, 1), INT32_MIN);
	CHECK_EQ_INT(fqt_wrapping_sub(INT32_MIN, 1), INT32_MAX);
	CHECK_EQ_INT(fqt_wrapping_shift_left(3, 30), INT32_MIN + (1 << 30)); /* 3 * 2^30 wraps */
	CHECK_EQ_INT(fqt_arithmetic_shift_right(-5, 1), -3); /* floor(-2.5) */
	CHECK_EQ_INT(fqt_arithmetic_shift_right(INT32_MIN, 31), -1);
	CHECK_EQ_INT(fqt_count_leading_zeros(0), 32);
	CHECK_EQ_INT(fqt_count_leading_zeros(1), 31);
	CHECK_EQ_INT(fqt_count_leading_zeros(0x80000000u), 0);
}

static void test_saturating_rounding_doubling_high_mul(void)
{
	/* a * b / 2^31: 2^30 stands for 0.5. */
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(100, 1 << 30), 50);
	/* 3 * 0.5 = 1.5 rounds up to 2; -3 * 0.5 = -1.5 rounds up to -1 (the nudge for
	 * negative products is 1 - 2^30, then C++ division truncates toward zero). */
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(-5, 1 << 30), -2);
	/* The one overflow: (-1) * (-1) saturates to just under 1. */
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN), INT32_MAX);
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX),
		     -INT32_MAX);
	/* 123456789 * 987654321 / 2^31 = 56779305.6 -> 56779306 */
	CHECK_EQ_INT(fqt_saturating_rounding_doubling_high_mul(123456789, 987654321), 56779306);
}

static void test_rounding_divide_by_pot(void)
{
	/* Round to nearest, ties away from zero. */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(5, 1), 3);   /* 2.5 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(-5, 1), -3); /* -2.5 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(7, 2), 2);   /* 1.75 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(-7, 2), -2);
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(6, 2), 2);   /* 1.5 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(-6, 2), -2); /* -1.5 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(-5, 2), -1); /* -1.25 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(42, 0), 42);
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(INT32_MAX, 31), 1);  /* 0.99999 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot(INT32_MIN, 31), -1); /* -1 exactly */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot_wide(INT32_MAX, 40), 0);
	CHECK_EQ_INT(fqt_rounding_divide_by_pot_wide(-12345, 33), 0);
	CHECK_EQ_INT(fqt_rounding_divide_by_pot_wide(INT32_MIN, 32), -1); /* -0.5 */
	CHECK_EQ_INT(fqt_rounding_divide_by_pot_wide(1 << 20, 21), 1);    /* 0.5 */
}

static void test_saturating_rounding_multiply_by_pot(void)
{
	CHECK_EQ_INT(fqt_saturating_rounding_multiply_by_pot(3, 2), 12);
	CHECK_EQ_INT(fqt_saturating_rounding_multiply_by_pot(1 << 29, 2), INT32_MAX);
	CHECK_EQ_INT(fqt_saturating_rounding_multiply_by_pot(-(1 << 29), 2), INT32_MIN);
	CHECK_EQ_INT(fqt_saturating_rounding_multiply_by_pot((1 << 29) - 1, 2),
		     INT32_MAX - 3);
	CHECK_EQ_INT(fqt_saturating_rounding_multiply_by_pot(6, -2), 2);
	CHECK_EQ_INT(fqt_rounding_half_sum(3, 4), 4);   /* 3.5 -> 4 */
	CHECK_EQ_INT(fqt_rounding_half_sum(-3, -4), -4); /* -3.5 -> -4 */
	CHECK_EQ_INT(fqt_rounding_half_sum(0, INT32_MAX), 1 << 30);
}

static void test_multiply_by_quantized_multiplier(void)
{
	/* multiplier 2^30 is 0.5, shift s scales by 2^s. */
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(100, 1 << 30, 0), 50);
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(100, 1 << 30, -1), 25);
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(17, 1 << 30, 2), 34);
	/* Double rounding: -7 * 0.5 = -3.5 -> -3 (high mul), then -3 / 2 = -1.5 -> -2. */
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(-7, 1 << 30, -1), -2);
	/* 1518500250 / 2^31 = 0.7071: 1000 * 0.7071 / 8 = 88.39 */
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(1000, 1518500250, -3), 88);
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(-1000, 1518500250, -3), -88);
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier(0, 1518500250, -31), 0);
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(1000, 1 << 30, -2),
		     125);
	/* TFLM ADD: (q - zp) << 20 first. */
	CHECK_EQ_INT(fqt_multiply_by_quantized_multiplier_greater_than_one(-3, 1 << 30, 4), -24);
}

/* The kernels' inlined forms (fqt_requantize, fqt_requantize_sum) are the same integer as
 * fqt_multiply_by_quantized_multiplier for every shift and for edge and pseudo-random x
 * and multipliers. */
static void test_requantize_inlined(void)
{
	static const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, 1 << 20, -(1 << 20), INT32_MAX,
				     INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30)};
	static const int32_t ms[] = {0, 1, 1 << 30, 1518500250, INT32_MAX, INT32_MIN};
	uint32_t seed = 12345u;
	int bad = 0;
	for (int shift = -31; shift <= 30; ++shift) {
		for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]) + 200u; ++i) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			const int32_t x = i < sizeof(xs) / sizeof(xs[0])
						  ? xs[i]
						  : fqt_arithmetic_shift_right(fqt_wrap_s32(seed), (int)(seed % 24u));
			for (size_t j = 0; j < sizeof(ms) / sizeof(ms[0]) + 1u; ++j) {
				const int32_t m = j < sizeof(ms) / sizeof(ms[0])
							  ? ms[j]
							  : (int32_t)((1u << 30) | (seed >> 2));
				const int32_t want = fqt_multiply_by_quantized_multiplier(x, m, shift);
				bad += fqt_requantize(x, m, shift) != want;
				bad += fqt_requantize_sum(x, m, shift) != want;
			}
		}
	}
	CHECK_EQ_INT(bad, 0);
}

static float float_of_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/* The update's double-free multipliers equal the double formulas they replace, on random
 * floats of every exponent (denormals included) and on exact ties of both roundings. */
static void test_quantize_multiplier_without_double(void)
{
	uint32_t seed = 777u;
	int bad_ratio = 0, bad_f32 = 0;
	for (int i = 0; i < 400000; ++i) {
		uint32_t u[3];
		for (int j = 0; j < 3; ++j) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			/* exponents around a scale's (2^-40 .. 2^8) and, one in 16, any */
			const uint32_t e = (seed & 0xF0000000u) == 0u ? (seed >> 23) & 0xFFu
								       : 87u + ((seed >> 24) % 48u);
			u[j] = (e << 23) | (seed & 0x7FFFFFu);
			if (e == 0xFFu) {
				u[j] &= 0x7F7FFFFFu;
			}
		}
		const float a = float_of_bits(u[0]), b = float_of_bits(u[1]), c = float_of_bits(u[2]);
		int32_t m1, m2;
		int s1, s2;
		fqt_quantize_multiplier((double)a * (double)b / (double)c, &m1, &s1);
		fqt_quantize_multiplier_ratio(a, b, c, &m2, &s2);
		bad_ratio += m1 != m2 || s1 != s2;
		fqt_quantize_multiplier((double)a, &m1, &s1);
		fqt_quantize_multiplier_f32(a, &m2, &s2);
		bad_f32 += m1 != m2 || s1 != s2;
	}
	/* ties: mantissas (2^23 + 1) * (257 * 2^15) end in 0x8000, so with a power-of-two c the
	 * 22 bits QuantizeMultiplier drops are exactly one half (an exact quotient has at most
	 * 48 bits, so the 53-bit rounding never sees a tie) */
	static const float ties[][3] = {
		{1.00000011920928955078125f, 1.00390625f, 1.0f},
		{1.00000011920928955078125f, 1.00390625f, 0.0078125f},
		{3.0f, 1.0f / 3.0f, 1.0f},
		{0.1f, 0.2f, 0.3f},
	};
	for (size_t i = 0; i < sizeof(ties) / sizeof(ties[0]); ++i) {
		int32_t m1, m2;
		int s1, s2;
		fqt_quantize_multiplier((double)ties[i][0] * (double)ties[i][1] / (double)ties[i][2],
					&m1, &s1);
		fqt_quantize_multiplier_ratio(ties[i][0], ties[i][1], ties[i][2], &m2, &s2);
		CHECK_EQ_INT(m2, m1);
		CHECK_EQ_INT(s2, s1);
	}
	CHECK_EQ_INT(bad_ratio, 0);
	CHECK_EQ_INT(bad_f32, 0);
	int32_t m;
	int sh;
	fqt_quantize_multiplier_ratio(0.0f, 1.0f, 1.0f, &m, &sh);
	CHECK_EQ_INT(m, 0);
	fqt_quantize_multiplier_f32(1.0e-30f, &m, &sh); /* below 2^-31: (0, 0) */
	CHECK_EQ_INT(m, 0);
	CHECK_EQ_INT(sh, 0);
}

static void test_fixed_point_functions(void)
{
	/* exp on Q5.26 inputs, Q0.31 outputs (values from the Python port of gemmlowp). */
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(0), INT32_MAX);
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(-(1 << 26)), 790015308);      /* exp(-1) */
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(-(1 << 24)), 1672462419);     /* exp(-1/4) */
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(-3 * (1 << 27)), 5323081);     /* exp(-6) */
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(-31 * (1 << 26)), 0);
	CHECK_EQ_INT(fqt_exp_on_negative_values_q5(INT32_MIN), 0);
	/* And close to the real exp over the range softmax uses. */
	for (int32_t a = 0; a >= -(16 << 26); a -= 1234567) {
		const double expected = exp((double)a / 67108864.0) * 2147483648.0;
		const double got = (double)fqt_exp_on_negative_values_q5(a);
		CHECK(fabs(got - expected) < 2048.0);
	}
	/* 1 / (1 + x), Q0.31 */
	CHECK_EQ_INT(fqt_one_over_one_plus_x_for_x_in_0_1(0), INT32_MAX);
	CHECK_EQ_INT(fqt_one_over_one_plus_x_for_x_in_0_1(1 << 30), 1431655762); /* 2/3 */
	CHECK_EQ_INT(fqt_one_over_one_plus_x_for_x_in_0_1(INT32_MAX), 1073741820); /* 1/2 */
	int bits = -1;
	/* Reciprocal of a Q12.19 sum: 1.0 -> 1 with 0 bits over unit, 3.0 -> (2/3) * 2^-1 */
	CHECK_EQ_INT(fqt_get_reciprocal(1 << 19, 12, &bits), INT32_MAX);
	CHECK_EQ_INT(bits, 0);
	CHECK_EQ_INT(fqt_get_reciprocal(3 << 19, 12, &bits), 1431655762);
	CHECK_EQ_INT(bits, 1);
	CHECK_EQ_INT(fqt_get_reciprocal((5 << 19) + 12345, 12, &bits), 1709934420);
	CHECK_EQ_INT(bits, 2);
}

static void test_dot_product(void)
{
	const int8_t a[9] = {1, -2, 3, -4, 5, -6, 7, -128, 127};
	const int8_t b[9] = {1, 1, 1, 1, 1, 1, 1, 1, -128};
	/* sum(a + 10) over the first 8, plus (127 + 10) * -128 */
	const int32_t expected = (1 - 2 + 3 - 4 + 5 - 6 + 7 - 128) + 8 * 10 + 137 * -128;
	CHECK_EQ_INT(fqt_dot_s8_offset(a, 10, b, 9), expected);
	CHECK_EQ_INT(fqt_dot_s8_offset(a, 0, b, 0), 0);
	/* Worst case over the maximal accumulation depth stays in int32. */
	static int8_t x[65536];
	static int8_t w[65536];
	memset(x, -128, sizeof(x));
	memset(w, -128, sizeof(w));
	CHECK_EQ_INT(fqt_dot_s8_offset(x, -127, w, 65536), 65536LL * 255 * 128);
}

int main(void)
{
	test_wrapping();
	test_saturating_rounding_doubling_high_mul();
	test_rounding_divide_by_pot();
	test_saturating_rounding_multiply_by_pot();
	test_multiply_by_quantized_multiplier();
	test_requantize_inlined();
	test_quantize_multiplier_without_double();
	test_fixed_point_functions();
	test_dot_product();
	return fqt_test_summary("test_quant");
}
