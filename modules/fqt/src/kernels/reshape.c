/* RESHAPE: the bytes stay as they are; only the shape changes. Its backward is the same
 * identity on the error bytes, so the trainer hands the error on without a kernel
 * (train/backward.c). */
#include <string.h>

#include "fqt/kernels.h"

fqt_status fqt_reshape_forward(const int8_t *input, size_t size, int8_t *output)
{
	if ((input == NULL || output == NULL) && size > 0u) {
		return FQT_ERR_ARGUMENT;
	}
	if (input != output && size > 0u) {
		memmove(output, input, size);
	}
	return FQT_OK;
}
