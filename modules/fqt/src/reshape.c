/* RESHAPE: the bytes stay as they are; only the shape changes. */
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

fqt_status fqt_reshape_backward(const int8_t *err, size_t size, int8_t *err_in)
{
	if ((err == NULL || err_in == NULL) && size > 0u) {
		return FQT_ERR_ARGUMENT;
	}
	if (size > 0u && err != err_in) {
		memmove(err_in, err, size);
	}
	return FQT_OK;
}
