/* The portable build of forward_wrapper.h: fqt's own kernels; the convolution's int16 patch
 * matrix is the only scratch (kernels/patch_s16.h). */
#include "forward_wrapper.h"

size_t fqt_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
					       const fqt_dims *input_dims,
					       const fqt_dims *filter_dims,
					       const fqt_dims *output_dims)
{
	(void)params;
	(void)output_dims;
	return fqt_conv2d_forward_im2col_scratch_size(input_dims, filter_dims);
}

fqt_status fqt_conv2d_forward_wrapper(const fqt_conv_params *params, const fqt_requant *requant,
				      const fqt_dims *input_dims, const int8_t *input,
				      const fqt_dims *filter_dims, const int8_t *filter,
				      const int32_t *bias, const fqt_dims *output_dims,
				      int8_t *output, const fqt_kernel_scratch *scratch)
{
	return fqt_conv2d_forward_im2col(params, requant, input_dims, input, filter_dims, filter,
					 bias, output_dims, output,
					 scratch != NULL ? scratch->buf : NULL,
					 scratch != NULL ? scratch->size : 0u);
}

size_t fqt_depthwise_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
							 const fqt_dims *input_dims,
							 const fqt_dims *filter_dims,
							 const fqt_dims *output_dims)
{
	(void)params;
	(void)input_dims;
	(void)filter_dims;
	(void)output_dims;
	return 0;
}

fqt_status fqt_depthwise_conv2d_forward_wrapper(const fqt_conv_params *params,
						const fqt_requant *requant,
						const fqt_dims *input_dims, const int8_t *input,
						const fqt_dims *filter_dims, const int8_t *filter,
						const int32_t *bias, const fqt_dims *output_dims,
						int8_t *output, const fqt_kernel_scratch *scratch)
{
	(void)scratch;
	return fqt_depthwise_conv2d_forward(params, requant, input_dims, input, filter_dims,
					    filter, bias, output_dims, output);
}

size_t fqt_fully_connected_forward_wrapper_scratch_size(int32_t accum_depth, int32_t out_depth)
{
	(void)accum_depth;
	(void)out_depth;
	return 0;
}

fqt_status fqt_fully_connected_forward_wrapper(const fqt_fully_connected_params *params,
					       const fqt_requant *requant, int32_t batches,
					       int32_t accum_depth, int32_t out_depth,
					       const int8_t *input, const int8_t *weights,
					       const int32_t *bias, int8_t *output,
					       const fqt_kernel_scratch *scratch)
{
	(void)scratch;
	return fqt_fully_connected_forward(params, requant, batches, accum_depth, out_depth, input,
					   weights, bias, output);
}
