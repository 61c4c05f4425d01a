/*
 * ADD, int8, same shapes: TFLM reference_integer_ops::Add (AddFunc), bit for bit. Both
 * inputs are rescaled to a common scale with 20 bits of headroom (left_shift), summed,
 * then rescaled to the output.
 */
#include <stddef.h>

#include "fqt/kernels.h"
#include "quant.h"

fqt_status fqt_add_forward(const fqt_add_params *params, size_t size, const int8_t *input1,
			   const int8_t *input2, int8_t *output)
{
	if (params == NULL || ((input1 == NULL || input2 == NULL || output == NULL) && size > 0u) ||
	    params->left_shift < 0 || params->left_shift > 30 || params->input1_shift > 0 ||
	    params->input1_shift < -31 || params->input2_shift > 0 || params->input2_shift < -31 ||
	    params->output_shift > 0 || params->output_shift < -31) {
		return FQT_ERR_ARGUMENT;
	}
	const int left_shift = (int)params->left_shift;
	for (size_t i = 0; i < size; ++i) {
		const int32_t input1_val = params->input1_offset + input1[i];
		const int32_t input2_val = params->input2_offset + input2[i];
		const int32_t scaled_input1_val =
			fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(
				fqt_wrapping_shift_left(input1_val, left_shift),
				params->input1_multiplier, (int)params->input1_shift);
		const int32_t scaled_input2_val =
			fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(
				fqt_wrapping_shift_left(input2_val, left_shift),
				params->input2_multiplier, (int)params->input2_shift);
		const int32_t raw_sum = fqt_wrapping_add(scaled_input1_val, scaled_input2_val);
		const int32_t raw_output = fqt_wrapping_add(
			fqt_multiply_by_quantized_multiplier_smaller_than_one_exp(
				raw_sum, params->output_multiplier, (int)params->output_shift),
			params->output_offset);
		output[i] = (int8_t)fqt_clamp_s32(raw_output, params->act_min, params->act_max);
	}
	return FQT_OK;
}
