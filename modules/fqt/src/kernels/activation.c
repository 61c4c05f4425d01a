/*
 * The fused activations' backward (docs/training-semantics.md section 5.1;
 * scripts/fqt/golden/activation.py): the error passes where the kept output y is inside
 * the activation's open range and is zeroed where the activation clamped it.
 */
#include <stddef.h>

#include "fqt/kernels.h"
#include "kernels_internal.h"

fqt_status fqt_activation_backward(int8_t *err, const int8_t *output, size_t size,
				   int32_t activation, int32_t act_min, int32_t act_max)
{
	if ((err == NULL || output == NULL) && size > 0u) {
		return FQT_ERR_ARGUMENT;
	}
	if (activation == 1) { /* FQT_ACTIVATION_RELU */
		for (size_t i = 0; i < size; ++i) {
			err[i] = output[i] > act_min ? err[i] : 0;
		}
	} else if (activation == 3) { /* FQT_ACTIVATION_RELU6 */
		for (size_t i = 0; i < size; ++i) {
			err[i] = (output[i] > act_min && output[i] < act_max) ? err[i] : 0;
		}
	}
	return FQT_OK;
}

void fqt_relu_clip_mask(int8_t *err, const int8_t *output, size_t size, int32_t act_max)
{
	for (size_t i = 0; i < size; ++i) {
		err[i] = output[i] < act_max ? err[i] : 0;
	}
}
