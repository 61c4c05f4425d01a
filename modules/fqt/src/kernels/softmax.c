/*
 * SOFTMAX, int8 in and out: TFLM reference_ops::Softmax<int8_t, int8_t>, bit for bit
 * (gemmlowp fixed point: differences in Q5.26, exponentials summed in Q12.19).
 */
#include <stddef.h>

#include "fqt/config.h"
#include "fqt/kernels.h"
#include "quant.h"

enum {
	kScaledDiffIntegerBits = 5,
	kAccumulationIntegerBits = 12,
};

fqt_status fqt_softmax_forward(const fqt_softmax_params *params, size_t rows, int32_t depth,
			       const int8_t *input, int8_t *output)
{
	if (params == NULL || input == NULL || output == NULL || depth < 1 ||
	    depth > FQT_SOFTMAX_MAX_DEPTH || params->input_multiplier < 0 ||
	    params->input_left_shift < 0 || params->input_left_shift > 31 || params->diff_min > 0) {
		return FQT_ERR_ARGUMENT;
	}
	const int left_shift = (int)params->input_left_shift;
	for (size_t r = 0; r < rows; ++r) {
		const int8_t *x = input + r * (size_t)depth;
		int8_t *y = output + r * (size_t)depth;
		int32_t max_in_row = INT8_MIN;
		for (int32_t c = 0; c < depth; ++c) {
			max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
		}
		/* The row maximum contributes exp(0) = 2^19 in Q12.19, so the sum is > 0 and,
		 * with depth <= 4095, below 2^31. */
		int32_t sum_of_exps = 0;
		for (int32_t c = 0; c < depth; ++c) {
			const int32_t input_diff = (int32_t)x[c] - max_in_row;
			if (input_diff >= params->diff_min) {
				const int32_t input_diff_rescaled =
					fqt_multiply_by_quantized_multiplier_greater_than_one(
						input_diff, params->input_multiplier, left_shift);
				const int32_t exp_q0 = fqt_exp_on_negative_values_q5(input_diff_rescaled);
				sum_of_exps = fqt_wrapping_add(
					sum_of_exps, fqt_saturating_rounding_multiply_by_pot(
							     exp_q0, -kAccumulationIntegerBits));
			}
		}
		int num_bits_over_unit = 0;
		const int32_t shifted_scale =
			fqt_get_reciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
		/* TFLM checks 0 <= exponent <= 31; it can only exceed 31 for rows of 512+ ties. */
		const int exponent = num_bits_over_unit + 31 - 8;
		for (int32_t c = 0; c < depth; ++c) {
			const int32_t input_diff = (int32_t)x[c] - max_in_row;
			if (input_diff >= params->diff_min) {
				const int32_t input_diff_rescaled =
					fqt_multiply_by_quantized_multiplier_greater_than_one(
						input_diff, params->input_multiplier, left_shift);
				const int32_t exp_q0 = fqt_exp_on_negative_values_q5(input_diff_rescaled);
				const int32_t unsat_output = fqt_rounding_divide_by_pot_wide(
					fqt_saturating_rounding_doubling_high_mul(shifted_scale, exp_q0),
					exponent);
				y[c] = (int8_t)fqt_clamp_s32(unsat_output + INT8_MIN, INT8_MIN,
							     INT8_MAX);
			} else {
				y[c] = INT8_MIN;
			}
		}
	}
	return FQT_OK;
}
