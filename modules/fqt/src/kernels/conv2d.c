/*
 * CONV_2D, int8. Forward: TFLM reference_integer_ops::ConvPerChannel, bit for bit.
 * Backward (docs/training-semantics.md 5.2, 5.3; scripts/fqt/golden/conv2d.py): the
 * weight gradient into the mini-batch accumulator and the input error as int32 sums.
 */
#include <stddef.h>

#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

fqt_status fqt_conv2d_forward(const fqt_conv_params *params, const fqt_requant *requant,
			      const fqt_dims *input_dims, const int8_t *input,
			      const fqt_dims *filter_dims, const int8_t *filter, const int32_t *bias,
			      const fqt_dims *output_dims, int8_t *output)
{
	if (params == NULL || requant == NULL || input_dims == NULL || input == NULL ||
	    filter_dims == NULL || filter == NULL || output_dims == NULL || output == NULL ||
	    filter_dims->c != input_dims->c || filter_dims->n != output_dims->c ||
	    input_dims->n != output_dims->n || requant->count != (uint32_t)output_dims->c) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_h = input_dims->h;
	const int32_t in_w = input_dims->w;
	const int32_t in_c = input_dims->c;
	const int32_t k_h = filter_dims->h;
	const int32_t k_w = filter_dims->w;
	const int32_t out_c = output_dims->c;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch = input + (size_t)b * (size_t)in_h * (size_t)in_w * (size_t)in_c;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			const int32_t in_y_origin = oy * params->stride_h - params->pad_h;
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const int32_t in_x_origin = ox * params->stride_w - params->pad_w;
				for (int32_t oc = 0; oc < out_c; ++oc) {
					int32_t acc = 0;
					for (int32_t ky = 0; ky < k_h; ++ky) {
						const int32_t in_y = in_y_origin + params->dilation_h * ky;
						if (in_y < 0 || in_y >= in_h) {
							continue; /* zero padding contributes nothing */
						}
						for (int32_t kx = 0; kx < k_w; ++kx) {
							const int32_t in_x =
								in_x_origin + params->dilation_w * kx;
							if (in_x < 0 || in_x >= in_w) {
								continue;
							}
							/* NHWC and OHWI: the channel run is contiguous in
							 * both, the dot product the SIMD path speeds up. */
							acc += fqt_dot_s8_offset(
								in_batch + ((size_t)in_y * (size_t)in_w +
									    (size_t)in_x) *
										   (size_t)in_c,
								params->input_offset,
								filter + (((size_t)oc * (size_t)k_h +
									   (size_t)ky) *
										  (size_t)k_w +
									  (size_t)kx) *
										 (size_t)in_c,
								in_c);
						}
					}
					if (bias != NULL) {
						acc = fqt_wrapping_add(acc, bias[oc]);
					}
					acc = fqt_multiply_by_quantized_multiplier(
						acc, requant->multiplier[oc], (int)requant->shift[oc]);
					acc = fqt_wrapping_add(acc, params->output_offset);
					*out++ = (int8_t)fqt_clamp_s32(acc, params->act_min,
								       params->act_max);
				}
			}
		}
	}
	return FQT_OK;
}

/* ---- backward (docs/training-semantics.md 5.2, 5.3) ------------------------------------ */

fqt_status fqt_conv2d_backward_weights(const fqt_conv_params *params, const fqt_dims *input_dims,
				       const int8_t *input, const fqt_dims *filter_dims,
				       const fqt_dims *output_dims, const int8_t *err,
				       const uint16_t *kept, int32_t n_kept,
				       const fqt_grad_sink *sink)
{
	if (params == NULL || input_dims == NULL || input == NULL || filter_dims == NULL ||
	    output_dims == NULL || err == NULL || kept == NULL || sink == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
	const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
	const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int32_t *row = sink->acc_w + (size_t)o * (size_t)sink->row;
		for (int32_t ky = 0; ky < k_h; ++ky) {
			for (int32_t kx = 0; kx < k_w; ++kx) {
				for (int32_t i = 0; i < in_c; ++i) {
					int64_t sum = 0;
					for (int32_t oy = 0; oy < out_h; ++oy) {
						const int32_t iy = oy * params->stride_h - params->pad_h +
								   params->dilation_h * ky;
						if (iy < 0 || iy >= in_h) {
							continue;
						}
						for (int32_t ox = 0; ox < out_w; ++ox) {
							const int32_t ix = ox * params->stride_w -
									   params->pad_w +
									   params->dilation_w * kx;
							if (ix < 0 || ix >= in_w) {
								continue;
							}
							const int32_t e =
								err[((size_t)oy * (size_t)out_w + (size_t)ox) *
									    (size_t)out_c +
								    (size_t)o];
							const int32_t xv =
								input[((size_t)iy * (size_t)in_w +
								       (size_t)ix) *
									      (size_t)in_c +
								      (size_t)i] +
								params->input_offset;
							sum += (int64_t)e * xv;
						}
					}
					fqt_grad_put(sink,
						     &row[((size_t)ky * (size_t)k_w + (size_t)kx) *
								  (size_t)in_c +
							  (size_t)i],
						     sum);
				}
			}
		}
		int64_t gb = 0;
		for (int32_t p = 0; p < out_h * out_w; ++p) {
			gb += err[(size_t)p * (size_t)out_c + (size_t)o];
		}
		fqt_grad_put(sink, &sink->acc_b[o], gb);
	}
	return FQT_OK;
}

fqt_status fqt_conv2d_backward_input(const fqt_conv_params *params, const fqt_dims *input_dims,
				     const fqt_dims *filter_dims, const int8_t *filter,
				     const void *scales, uint32_t scale_count,
				     const fqt_dims *output_dims, const int8_t *err,
				     const uint16_t *kept, int32_t n_kept, int32_t *acc,
				     int32_t *fold_exp)
{
	if (params == NULL || input_dims == NULL || filter_dims == NULL || filter == NULL ||
	    scales == NULL || output_dims == NULL || err == NULL || kept == NULL || acc == NULL ||
	    fold_exp == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
	const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
	const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
	const int p = fqt_fold_exponent(scales, scale_count);
	*fold_exp = p;
	memset(acc, 0, (size_t)in_h * (size_t)in_w * (size_t)in_c * sizeof(int32_t));
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int32_t m;
		int sh;
		fqt_fold_multiplier(scales, scale_count, o, p, &m, &sh);
		for (int32_t oy = 0; oy < out_h; ++oy) {
			for (int32_t ox = 0; ox < out_w; ++ox) {
				const int32_t e = err[((size_t)oy * (size_t)out_w + (size_t)ox) *
							      (size_t)out_c +
						      (size_t)o];
				if (e == 0) {
					continue;
				}
				const int32_t g = fqt_multiply_by_quantized_multiplier(
					e * (1 << FQT_ERROR_FOLD_BITS), m, sh);
				for (int32_t ky = 0; ky < k_h; ++ky) {
					const int32_t iy = oy * params->stride_h - params->pad_h +
							   params->dilation_h * ky;
					if (iy < 0 || iy >= in_h) {
						continue;
					}
					for (int32_t kx = 0; kx < k_w; ++kx) {
						const int32_t ix = ox * params->stride_w -
								   params->pad_w +
								   params->dilation_w * kx;
						if (ix < 0 || ix >= in_w) {
							continue;
						}
						const int8_t *w =
							filter + (((size_t)o * (size_t)k_h + (size_t)ky) *
									  (size_t)k_w +
								  (size_t)kx) *
									 (size_t)in_c;
						int32_t *a = acc + ((size_t)iy * (size_t)in_w +
								    (size_t)ix) *
									   (size_t)in_c;
						for (int32_t i = 0; i < in_c; ++i) {
							a[i] += (int32_t)w[i] * g;
						}
					}
				}
			}
		}
	}
	return FQT_OK;
}
