/*
 * FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor, one
 * multiplier) and its per-channel variant, bit for bit. Weights are symmetric, so TFLM's
 * weights_offset is 0.
 */
#include <stddef.h>

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

/* fqt_grad_put of one gradient row in int32 where that is exact: every term
 * g = e * (x + offset) has |g| <= 128 * 255 < 2^15, so FIRST stores g, and DOWN adds
 * RDBPOT(g, shift) = floor((g + 2^(shift-1) - [g < 0]) / 2^shift) with the int32 saturation
 * (no int64 on the way). Returns 0 for UP, whose rescaled accumulator takes the int64 path. */
static int grad_row_int32(const fqt_grad_sink *s, int32_t *row, int32_t e, const int8_t *x,
			  int32_t offset, int32_t n)
{
	if (offset < -255 || offset > 255) {
		return 0; /* outside the int8 zero-point range: the generic path */
	}
	if (s->mode == FQT_GRAD_FIRST) {
		for (int32_t k = 0; k < n; ++k) {
			row[k] = e * (x[k] + offset);
		}
		return 1;
	}
	if (s->mode == FQT_GRAD_UP) {
		return 0;
	}
	const int sh = s->shift;
	const int32_t half = sh > 0 ? (int32_t)1 << (sh - 1) : 0;
	for (int32_t k = 0; k < n; ++k) {
		const int32_t g = e * (x[k] + offset);
		const int32_t q = sh > 0 ? fqt_arithmetic_shift_right(g + half - (g < 0), sh) : g;
		const int64_t v = (int64_t)row[k] + q;
		row[k] = (int32_t)fqt_sat32_64(v);
	}
	return 1;
}

fqt_status fqt_fully_connected_backward_weights(const int8_t *err, const int8_t *input,
						int32_t input_offset, int32_t accum_depth,
						const uint16_t *kept, int32_t n_kept,
						const fqt_grad_sink *sink)
{
	if (err == NULL || input == NULL || kept == NULL || sink == NULL || accum_depth < 1) {
		return FQT_ERR_ARGUMENT;
	}
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		const int32_t e = err[o];
		int32_t *row = sink->acc_w + (size_t)o * (size_t)sink->row;
		if (!grad_row_int32(sink, row, e, input, input_offset, accum_depth)) {
			for (int32_t k = 0; k < accum_depth; ++k) {
				fqt_grad_put(sink, &row[k],
					     (int64_t)e * (int64_t)(input[k] + input_offset));
			}
		}
		fqt_grad_put(sink, &sink->acc_b[o], e);
	}
	return FQT_OK;
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
		for (int32_t k = 0; k < accum_depth; ++k) {
			acc[k] += (int32_t)w[k] * g;
		}
	}
	return FQT_OK;
}
