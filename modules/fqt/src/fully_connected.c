/*
 * FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor, one
 * multiplier) and its per-channel variant, bit for bit. Weights are symmetric, so TFLM's
 * weights_offset is 0.
 */
#include <stddef.h>

#include "fqt/kernels.h"
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
			acc = fqt_multiply_by_quantized_multiplier(acc, requant->multiplier[q],
								   (int)requant->shift[q]);
			acc = fqt_wrapping_add(acc, params->output_offset);
			output[(size_t)b * (size_t)out_depth + (size_t)oc] =
				(int8_t)fqt_clamp_s32(acc, params->act_min, params->act_max);
		}
	}
	return FQT_OK;
}
