/*
 * The forward kernels the runtime calls for CONV_2D, DEPTHWISE_CONV_2D and
 * FULLY_CONNECTED, after CMSIS-NN's arm_*_wrapper_s8: each picks the fastest bit-exact
 * implementation it has for the given shapes. The build links one of two files:
 *
 *   kernels/forward_wrapper.c           the portable kernels (a convolution's int16
 *                                       patch matrix is their only scratch);
 *   kernels/cmsis_nn/forward_wrapper.c  CMSIS-NN where it is bit-exact with them, the
 *                                       portable kernel elsewhere (CONFIG_FQT_CMSIS_NN).
 *
 * Each wrapper has a *_scratch_size() twin (CMSIS-NN's arm_*_get_buffer_size pattern):
 * the bytes of scratch it needs for those shapes, a multiple of 4; the runtime places them
 * at the end of the arena and passes them in. Results are identical either way.
 */
#ifndef FQT_FORWARD_WRAPPER_H_
#define FQT_FORWARD_WRAPPER_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/kernels.h"

/* Caller-owned scratch memory (CMSIS-NN's cmsis_nn_context). */
typedef struct fqt_kernel_scratch {
	void *buf;
	size_t size;
} fqt_kernel_scratch;

size_t fqt_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
					       const fqt_dims *input_dims,
					       const fqt_dims *filter_dims,
					       const fqt_dims *output_dims);
fqt_status fqt_conv2d_forward_wrapper(const fqt_conv_params *params, const fqt_requant *requant,
				      const fqt_dims *input_dims, const int8_t *input,
				      const fqt_dims *filter_dims, const int8_t *filter,
				      const int32_t *bias, const fqt_dims *output_dims,
				      int8_t *output, const fqt_kernel_scratch *scratch);

size_t fqt_depthwise_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
							 const fqt_dims *input_dims,
							 const fqt_dims *filter_dims,
							 const fqt_dims *output_dims);
fqt_status fqt_depthwise_conv2d_forward_wrapper(const fqt_conv_params *params,
						const fqt_requant *requant,
						const fqt_dims *input_dims, const int8_t *input,
						const fqt_dims *filter_dims, const int8_t *filter,
						const int32_t *bias, const fqt_dims *output_dims,
						int8_t *output, const fqt_kernel_scratch *scratch);

size_t fqt_fully_connected_forward_wrapper_scratch_size(int32_t accum_depth, int32_t out_depth);
fqt_status fqt_fully_connected_forward_wrapper(const fqt_fully_connected_params *params,
					       const fqt_requant *requant, int32_t batches,
					       int32_t accum_depth, int32_t out_depth,
					       const int8_t *input, const int8_t *weights,
					       const int32_t *bias, int8_t *output,
					       const fqt_kernel_scratch *scratch);

#endif /* FQT_FORWARD_WRAPPER_H_ */
