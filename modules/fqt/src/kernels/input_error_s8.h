/*
 * The lean plan's int8 input errors (kernels/input_error_s8.c): quantize_error of the
 * exact int32 sums of fqt_*_backward_input, made a chunk at a time in `scratch`
 * (*_s8_scratch_size() bytes, 4-byte aligned), twice (max, then values). err_exp is the
 * output error's exponent E; out gets the input error, *out_exp its exponent. The caller
 * checks fqt_input_error_bound() first, as for the int32 kernels (past it:
 * fqt_input_error_exact_s8).
 */
#ifndef FQT_INPUT_ERROR_S8_H_
#define FQT_INPUT_ERROR_S8_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/kernels.h"

size_t fqt_conv2d_backward_input_s8_scratch_size(const fqt_dims *input_dims,
						 const fqt_dims *output_dims);
fqt_status fqt_conv2d_backward_input_s8(const fqt_conv_params *params, const fqt_dims *input_dims,
					const fqt_dims *filter_dims, const int8_t *filter,
					const void *scales, uint32_t scale_count,
					const fqt_dims *output_dims, const int8_t *err,
					int32_t err_exp, const uint16_t *kept, int32_t n_kept,
					int fixed, int8_t *out, int32_t *out_exp, void *scratch,
					size_t scratch_size);

size_t fqt_depthwise_conv2d_backward_input_s8_scratch_size(const fqt_conv_params *params,
							   const fqt_dims *input_dims,
							   const fqt_dims *filter_dims,
							   const fqt_dims *output_dims);
fqt_status fqt_depthwise_conv2d_backward_input_s8(
	const fqt_conv_params *params, const fqt_dims *input_dims, const fqt_dims *filter_dims,
	const int8_t *filter, const void *scales, uint32_t scale_count, const fqt_dims *output_dims,
	const int8_t *err, int32_t err_exp, const uint16_t *kept, int32_t n_kept, int fixed,
	int8_t *out, int32_t *out_exp, void *scratch, size_t scratch_size);

size_t fqt_fully_connected_backward_input_s8_scratch_size(int32_t out_depth, int32_t accum_depth);
fqt_status fqt_fully_connected_backward_input_s8(const int8_t *err, int32_t out_depth,
						 int32_t accum_depth, const int8_t *weights,
						 const void *scales, uint32_t scale_count,
						 int32_t err_exp, const uint16_t *kept, int32_t n_kept,
						 int fixed, int8_t *out, int32_t *out_exp, void *scratch,
						 size_t scratch_size);

#endif /* FQT_INPUT_ERROR_S8_H_ */
