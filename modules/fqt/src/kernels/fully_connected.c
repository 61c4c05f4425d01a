/*
 * FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor, one
 * multiplier) and its per-channel variant, bit for bit. Weights are symmetric, so TFLM's
 * weights_offset is 0.
 */
#include <stddef.h>
#include <string.h>

#include "dot_s8.h"

#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

fqt_status fqt_fully_connected_forward(const fqt_fully_connected_params *params,
				       const fqt_requant *requant, int32_t batches,
				       int32_t accum_depth, int32_t out_depth, const int8_t *input,
				       const int8_t *weights, const int32_t *bias, int8_t *output)
{
	if (params == NULL || requant == NULL || input == NULL || weights == NULL ||
	    output == NULL || batches < 1 || accum_depth < 1 || out_depth < 1 ||
	    (requant->count != 1u && requant->count != (uint32_t)out_depth)) {
		return FQT_ERR_ARGUMENT;
	}
	const int per_channel = requant->count != 1u;
	for (int32_t b = 0; b < batches; ++b) {
		const int8_t *x = input + (size_t)b * (size_t)accum_depth;
		for (int32_t oc = 0; oc < out_depth; ++oc) {
			int32_t acc = fqt_dot_s8_offset(x, params->input_offset,
							weights + (size_t)oc * (size_t)accum_depth,
							accum_depth);
			if (bias != NULL) {
				acc = fqt_wrapping_add(acc, bias[oc]);
			}
			const size_t q = per_channel ? (size_t)oc : 0u;
			acc = fqt_requantize_sum(acc, requant->multiplier[q],
								   (int)requant->shift[q]);
			acc = fqt_wrapping_add(acc, params->output_offset);
			output[(size_t)b * (size_t)out_depth + (size_t)oc] =
				(int8_t)fqt_clamp_s32(acc, params->act_min, params->act_max);
		}
	}
	return FQT_OK;
}

/* ---- backward (docs/training-semantics.md 5.2, 5.3) ------------------------------------ */

/* RDBPOT(g, sh) for 0 < sh <= 31 and |g| < 2^30: floor((g + 2^(sh-1) - [g < 0]) / 2^sh),
 * no overflow on the way. */
static inline int32_t rdbpot_small(int32_t g, int sh, int32_t half)
{
	return fqt_arithmetic_shift_right(g + half - (g < 0), sh);
}

/* row += q (DOWN's int32 saturation), row any int32, |q| < 2^30. */
static inline int32_t sat_add_small(int32_t row, int32_t q)
{
#if FQT_SIMD_DSP
	return __qadd(row, q);
#else
	const int64_t v = (int64_t)row + q;
	return (int32_t)fqt_sat32_64(v);
#endif
}

/* fqt_grad_put of one gradient row in int32 where that is exact: every term
 * g = e * (x + offset) has |g| <= 128 * 383 < 2^16, so FIRST (first = 1) stores g, DOWN
 * (0) adds RDBPOT(g, shift) with the int32 saturation and UP (-1) rescales the row by
 * RDBPOT first (no int64 on the way). */
static void grad_row_int32(int first, int sh, int32_t *row, int32_t e, const int8_t *x,
			   int32_t offset, int32_t k, int32_t n)
{
	if (first < 0) {
		/* UP (1 <= shift <= 31): RDBPOT(row, shift) is int32's rounding divide, |it| <= 2^30,
		 * and adding |g| < 2^16 can neither overflow nor saturate */
		for (; k < n; ++k) {
			row[k] = fqt_rounding_divide_by_pot(row[k], sh) + e * (x[k] + offset);
		}
		return;
	}
	if (first) {
		for (; k < n; ++k) {
			row[k] = e * (x[k] + offset);
		}
		return;
	}
	const int32_t half = sh > 0 ? (int32_t)1 << (sh - 1) : 0;
	for (; k < n; ++k) {
		const int32_t g = e * (x[k] + offset);
		row[k] = sat_add_small(row[k], sh > 0 ? rdbpot_small(g, sh, half) : g);
	}
}

#if FQT_SIMD_DSP
/* DOWN, shift 0, after SMLABB wrapped some row + g (the Q flag): row = wrap(row + g) - g is
 * the old row, exactly; redo those n elements with the int32 saturation. */
static void repair_row(int32_t *row, int32_t e, const int8_t *x, int32_t offset, int32_t n)
{
	for (int32_t k = 0; k < n; ++k) {
		const int32_t g = e * (x[k] + offset);
		const int32_t old = (int32_t)((uint32_t)row[k] - (uint32_t)g);
		row[k] = (int32_t)fqt_sat32_64((int64_t)old + g);
	}
}

/* Two gradient rows from one widening of x (four int8 to two int16 pairs, the offset
 * folded in by SXTAB16), each product one SMULBB / SMULTB with the row's error, four row
 * words per LDM / STM (GCC splits them into single loads and stores, a third of the loop):
 * FIRST stores the products; DOWN with shift 0 accumulates them with SMLABB / SMLATB, whose
 * rare int32 overflow sets the Q flag and is repaired after the loop (QADD would cost an
 * instruction an element); DOWN with a shift (rare: equal exponents are the rule) is left
 * to the scalar int32 rows. Returns the elements done (a multiple of 4). */
static int32_t grad_rows2_dsp(int first, int sh, int32_t *r0, int32_t e0, int32_t *r1,
			      int32_t e1, const int8_t *x, int32_t offset, int32_t n)
{
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)offset) * 0x00010001u);
	const int32_t n4 = n & ~3;
	if (n4 == 0) {
		return 0;
	}
	if (first || sh == 0) {
		/* e0 in the bottom halfword, e1 in the top: ...BB / ...BT */
		const uint32_t f01 = (uint32_t)(uint16_t)e0 | ((uint32_t)(uint16_t)e1 << 16);
		const int8_t *xp = x, *end = x + n4;
		int32_t *p0 = r0, *p1 = r1;
		int16x2_t xe, xo;
		uint32_t q = 0;
		if (first) {
			__asm__ volatile(
				"1:\n\t"
				"ldr %[xo], [%[xp]], #4\n\t"
				"sxtab16 %[xe], %[off], %[xo]\n\t"
				"sxtab16 %[xo], %[off], %[xo], ror #8\n\t"
				"smulbb r8, %[xe], %[f]\n\t"
				"smulbb r9, %[xo], %[f]\n\t"
				"smultb r10, %[xe], %[f]\n\t"
				"smultb r11, %[xo], %[f]\n\t"
				"stm %[p0]!, {r8, r9, r10, r11}\n\t"
				"smulbt r8, %[xe], %[f]\n\t"
				"smulbt r9, %[xo], %[f]\n\t"
				"smultt r10, %[xe], %[f]\n\t"
				"smultt r11, %[xo], %[f]\n\t"
				"stm %[p1]!, {r8, r9, r10, r11}\n\t"
				"cmp %[xp], %[end]\n\t"
				"bne 1b"
				: [xp] "+r"(xp), [p0] "+r"(p0), [p1] "+r"(p1), [xe] "=&r"(xe),
				  [xo] "=&r"(xo)
				: [off] "r"(off2), [f] "r"(f01), [end] "r"(end)
				: "r8", "r9", "r10", "r11", "cc", "memory");
			return n4;
		}
		__asm__ volatile(
			"msr APSR_nzcvq, %[q]\n\t" /* q = 0: clear Q */
			"1:\n\t"
			"ldr %[xo], [%[xp]], #4\n\t"
			"sxtab16 %[xe], %[off], %[xo]\n\t"
			"sxtab16 %[xo], %[off], %[xo], ror #8\n\t"
			"ldm %[p0], {r8, r9, r10, r11}\n\t"
			"smlabb r8, %[xe], %[f], r8\n\t"
			"smlabb r9, %[xo], %[f], r9\n\t"
			"smlatb r10, %[xe], %[f], r10\n\t"
			"smlatb r11, %[xo], %[f], r11\n\t"
			"stm %[p0]!, {r8, r9, r10, r11}\n\t"
			"ldm %[p1], {r8, r9, r10, r11}\n\t"
			"smlabt r8, %[xe], %[f], r8\n\t"
			"smlabt r9, %[xo], %[f], r9\n\t"
			"smlatt r10, %[xe], %[f], r10\n\t"
			"smlatt r11, %[xo], %[f], r11\n\t"
			"stm %[p1]!, {r8, r9, r10, r11}\n\t"
			"cmp %[xp], %[end]\n\t"
			"bne 1b\n\t"
			"mrs %[q], APSR"
			: [xp] "+r"(xp), [p0] "+r"(p0), [p1] "+r"(p1), [xe] "=&r"(xe),
			  [xo] "=&r"(xo), [q] "+r"(q)
			: [off] "r"(off2), [f] "r"(f01), [end] "r"(end)
			: "r8", "r9", "r10", "r11", "cc", "memory");
		if ((q & (1u << 27)) != 0u) {
			repair_row(r0, e0, x, offset, n4);
			repair_row(r1, e1, x, offset, n4);
		}
		return n4;
	}
	return 0;
}
#endif

/* fqt_grad_put of the bias term e (|e| <= 128) in int32, as grad_row_int32. */
static inline void grad_bias(const fqt_grad_sink *s, int32_t *acc, int32_t e)
{
	if (s->mode == FQT_GRAD_FIRST) {
		*acc = e;
	} else if (s->mode == FQT_GRAD_UP && s->shift >= 1 && s->shift <= 31) {
		*acc = fqt_rounding_divide_by_pot(*acc, s->shift) + e;
	} else if (s->mode == FQT_GRAD_DOWN) {
		const int sh = s->shift;
		*acc = sat_add_small(*acc, sh > 0 ? rdbpot_small(e, sh, (int32_t)1 << (sh - 1)) : e);
	} else {
		fqt_grad_put(s, acc, e);
	}
}

fqt_status fqt_fully_connected_backward_weights(const int8_t *err, const int8_t *input,
						int32_t input_offset, int32_t accum_depth,
						const uint16_t *kept, int32_t n_kept,
						const fqt_grad_sink *sink)
{
	if (err == NULL || input == NULL || kept == NULL || sink == NULL || accum_depth < 1) {
		return FQT_ERR_ARGUMENT;
	}
	/* int32 rows for an offset in the int8 zero-point range; first: 1 FIRST, 0 DOWN, -1 UP */
	const int fast = input_offset >= -255 && input_offset <= 255 &&
			 (sink->mode != FQT_GRAD_UP || (sink->shift >= 1 && sink->shift <= 31));
	const int first = sink->mode == FQT_GRAD_FIRST ? 1 : (sink->mode == FQT_GRAD_UP ? -1 : 0);
	const int sh = sink->shift;
	int32_t j = 0;
#if FQT_SIMD_DSP
	for (; fast && first >= 0 && j + 2 <= n_kept; j += 2) {
		const int32_t o0 = kept[j], o1 = kept[j + 1];
		int32_t *r0 = fqt_grad_row(sink, o0);
		int32_t *r1 = fqt_grad_row(sink, o1);
		const int32_t k = grad_rows2_dsp(first, sh, r0, err[o0], r1, err[o1], input,
						 input_offset, accum_depth);
		if (k < accum_depth) {
			grad_row_int32(first, sh, r0, err[o0], input, input_offset, k, accum_depth);
			grad_row_int32(first, sh, r1, err[o1], input, input_offset, k, accum_depth);
		}
		grad_bias(sink, fqt_grad_bias(sink, o0), err[o0]);
		grad_bias(sink, fqt_grad_bias(sink, o1), err[o1]);
	}
#endif
	for (; j < n_kept; ++j) {
		const int32_t o = kept[j];
		const int32_t e = err[o];
		int32_t *row = fqt_grad_row(sink, o);
		if (fast) {
			grad_row_int32(first, sh, row, e, input, input_offset, 0, accum_depth);
		} else {
			for (int32_t k = 0; k < accum_depth; ++k) {
				fqt_grad_put(sink, &row[k],
					     (int64_t)e * (int64_t)(input[k] + input_offset));
			}
		}
		grad_bias(sink, fqt_grad_bias(sink, o), e);
	}
	return FQT_OK;
}

static void scatter_row(int32_t *acc, const int8_t *w, int32_t g, int32_t k, int32_t n)
{
	for (; k < n; ++k) {
		acc[k] += (int32_t)w[k] * g;
	}
}

fqt_status fqt_fully_connected_backward_input(const int8_t *err, int32_t out_depth,
					      int32_t accum_depth, const int8_t *weights,
					      const void *scales, uint32_t scale_count,
					      const uint16_t *kept, int32_t n_kept, int32_t *acc,
					      int32_t *fold_exp)
{
	if (err == NULL || weights == NULL || scales == NULL || kept == NULL || acc == NULL ||
	    fold_exp == NULL || out_depth < 1 || accum_depth < 1) {
		return FQT_ERR_ARGUMENT;
	}
	const int p = fqt_fold_exponent(scales, scale_count);
	*fold_exp = p;
	memset(acc, 0, (size_t)accum_depth * sizeof(int32_t));
	/* Rows with a nonzero g, two at a time where both g fit int16 (always, unless a scale
	 * is larger than 2^P: section 2.2 gives |g| <= 2^15 otherwise). */
	const int8_t *held = NULL; /* a row waiting for its pair */
	int32_t held_g = 0;
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int32_t m;
		int sh;
		fqt_fold_multiplier(scales, scale_count, o, p, &m, &sh);
		const int32_t g = fqt_requantize(
			(int32_t)err[o] * (1 << FQT_ERROR_FOLD_BITS), m, sh);
		if (g == 0) {
			continue;
		}
		const int8_t *w = weights + (size_t)o * (size_t)accum_depth;
#if FQT_SIMD_DSP
		if (g >= INT16_MIN && g <= INT16_MAX) {
			if (held == NULL) {
				held = w;
				held_g = g;
				continue;
			}
			fqt_scatter2_s8(acc, held, w,
					(uint32_t)(uint16_t)held_g | ((uint32_t)(uint16_t)g << 16),
					accum_depth & ~3);
			const int32_t k = accum_depth & ~3;
			scatter_row(acc, held, held_g, k, accum_depth);
			scatter_row(acc, w, g, k, accum_depth);
			held = NULL;
			continue;
		}
#endif
		scatter_row(acc, w, g, 0, accum_depth);
	}
	if (held != NULL) {
		scatter_row(acc, held, held_g, 0, accum_depth);
	}
	return FQT_OK;
}
