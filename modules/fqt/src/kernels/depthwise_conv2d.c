/*
 * DEPTHWISE_CONV_2D, int8: TFLM reference_integer_ops::DepthwiseConvPerChannel, bit for
 * bit. Output channel ic * depth_multiplier + m reads input channel ic.
 */
#include <stddef.h>
#include <string.h>

#include "dot_s16.h"
#include "dot_s8.h"
#include "dw_input_error.h"
#include "dw_weight_grad.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

#if FQT_SIMD_DSP
/* Depth multiplier 1, four channels at a time: NHWC input and HWC filter hold channels
 * c .. c + 3 of one tap in one word each, widened to int16 pairs (bytes 0 and 2, then 1
 * and 3, the offset folded in by SXTAB16) and accumulated per channel with the 16 x 16
 * SMLABB / SMLATT, four MACs for two loads. Returns the channels done (a multiple of 4);
 * the caller's scalar loop does the rest. Same int32 sums as the reference loop. */
static int32_t dw_forward_simd4(const fqt_conv_params *params, const fqt_requant *requant,
				const fqt_dims *input_dims, const int8_t *in_batch,
				const fqt_dims *filter_dims, const int8_t *filter,
				const int32_t *bias, int32_t oy, int32_t ox, int8_t *out)
{
	const int32_t in_w = input_dims->w, in_c = input_dims->c, k_w = filter_dims->w;
	const int32_t iy0 = oy * params->stride_h - params->pad_h;
	const int32_t ix0 = ox * params->stride_w - params->pad_w;
	/* The in-image taps form a rectangle [y_lo, y_hi) x [x_lo, x_hi): no bounds tests in
	 * the tap loops, whose pointers step by a row / a column of input and filter. */
	int32_t y_lo = 0, y_hi = filter_dims->h, x_lo = 0, x_hi = k_w;
	while (y_lo < y_hi && iy0 + params->dilation_h * y_lo < 0) {
		++y_lo;
	}
	while (y_hi > y_lo && iy0 + params->dilation_h * (y_hi - 1) >= input_dims->h) {
		--y_hi;
	}
	while (x_lo < x_hi && ix0 + params->dilation_w * x_lo < 0) {
		++x_lo;
	}
	while (x_hi > x_lo && ix0 + params->dilation_w * (x_hi - 1) >= in_w) {
		--x_hi;
	}
	const int32_t n_x = x_hi - x_lo;
	const size_t x_col = (size_t)params->dilation_w * (size_t)in_c;
	const size_t x_row = (size_t)params->dilation_h * (size_t)in_w * (size_t)in_c;
	const size_t w_row = (size_t)k_w * (size_t)in_c;
	const int8_t *x_base =
		in_batch + ((size_t)(iy0 + params->dilation_h * y_lo) * (size_t)in_w +
			    (size_t)(ix0 + params->dilation_w * x_lo)) *
				   (size_t)in_c;
	const int8_t *w_base = filter + ((size_t)y_lo * (size_t)k_w + (size_t)x_lo) * (size_t)in_c;
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)params->input_offset) * 0x00010001u);
	int32_t c = 0;
	for (; c + 4 <= in_c; c += 4) {
		int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
		const int8_t *x_ky = x_base + c, *w_ky = w_base + c;
		for (int32_t ky = y_lo; ky < y_hi; ++ky, x_ky += x_row, w_ky += w_row) {
			const int8_t *x = x_ky, *w = w_ky;
			for (int32_t k = 0; k < n_x; ++k, x += x_col, w += in_c) {
				const uint32_t xw = fqt_load_u32(x);
				const uint32_t ww = fqt_load_u32(w);
				const int16x2_t xe = __sxtab16(off2, (int8x4_t)xw);
				const int16x2_t xo = fqt_sxtab16_ror8(off2, xw);
				const int16x2_t we = __sxtb16((int8x4_t)ww);
				const int16x2_t wo = fqt_sxtb16_ror8(ww);
				a0 = __smlabb(xe, we, a0);
				a2 = __smlatt(xe, we, a2);
				a1 = __smlabb(xo, wo, a1);
				a3 = __smlatt(xo, wo, a3);
			}
		}
		const int32_t sums[4] = {a0, a1, a2, a3};
		for (int32_t r = 0; r < 4; ++r) {
			const int32_t oc = c + r;
			int32_t acc = sums[r];
			if (bias != NULL) {
				acc = fqt_wrapping_add(acc, bias[oc]);
			}
			acc = fqt_requantize(acc, requant->multiplier[oc], (int)requant->shift[oc]);
			acc = fqt_wrapping_add(acc, params->output_offset);
			out[oc] = (int8_t)fqt_clamp_s32(acc, params->act_min, params->act_max);
		}
	}
	return c;
}
#endif

fqt_status fqt_depthwise_conv2d_forward(const fqt_conv_params *params,
					const fqt_requant *requant, const fqt_dims *input_dims,
					const int8_t *input, const fqt_dims *filter_dims,
					const int8_t *filter, const int32_t *bias,
					const fqt_dims *output_dims, int8_t *output)
{
	if (params == NULL || requant == NULL || input_dims == NULL || input == NULL ||
	    filter_dims == NULL || filter == NULL || output_dims == NULL || output == NULL ||
	    params->depth_multiplier < 1 || filter_dims->n != 1 ||
	    filter_dims->c != output_dims->c ||
	    (int64_t)input_dims->c * params->depth_multiplier != output_dims->c ||
	    input_dims->n != output_dims->n || requant->count != (uint32_t)output_dims->c) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_h = input_dims->h;
	const int32_t in_w = input_dims->w;
	const int32_t in_c = input_dims->c;
	const int32_t k_h = filter_dims->h;
	const int32_t k_w = filter_dims->w;
	const int32_t out_c = output_dims->c;
	const int32_t depth_multiplier = params->depth_multiplier;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch = input + (size_t)b * (size_t)in_h * (size_t)in_w * (size_t)in_c;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			const int32_t in_y_origin = oy * params->stride_h - params->pad_h;
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const int32_t in_x_origin = ox * params->stride_w - params->pad_w;
				int32_t ic = 0;
#if FQT_SIMD_DSP
				if (depth_multiplier == 1) {
					ic = dw_forward_simd4(params, requant, input_dims, in_batch,
							      filter_dims, filter, bias, oy, ox, out);
				}
#endif
				for (; ic < in_c; ++ic) {
					for (int32_t m = 0; m < depth_multiplier; ++m) {
						const int32_t oc = ic * depth_multiplier + m;
						int32_t acc = 0;
						for (int32_t ky = 0; ky < k_h; ++ky) {
							const int32_t in_y =
								in_y_origin + params->dilation_h * ky;
							if (in_y < 0 || in_y >= in_h) {
								continue;
							}
							for (int32_t kx = 0; kx < k_w; ++kx) {
								const int32_t in_x =
									in_x_origin +
									params->dilation_w * kx;
								if (in_x < 0 || in_x >= in_w) {
									continue;
								}
								const int32_t x = in_batch
									[((size_t)in_y * (size_t)in_w +
									  (size_t)in_x) *
										 (size_t)in_c +
									 (size_t)ic];
								const int32_t w = filter
									[((size_t)ky * (size_t)k_w +
									  (size_t)kx) *
										 (size_t)out_c +
									 (size_t)oc];
								acc += w * (x + params->input_offset);
							}
						}
						if (bias != NULL) {
							acc = fqt_wrapping_add(acc, bias[oc]);
						}
						acc = fqt_requantize(
							acc, requant->multiplier[oc],
							(int)requant->shift[oc]);
						acc = fqt_wrapping_add(acc, params->output_offset);
						out[oc] = (int8_t)fqt_clamp_s32(acc, params->act_min,
										params->act_max);
					}
				}
				out += out_c;
			}
		}
	}
	return FQT_OK;
}

/* ---- backward (docs/training-semantics.md 5.2, 5.3) ------------------------------------ */

/* The exact int64 path: any number of positions (the golden model's int32 saturation). */
static void backward_weights_exact(const fqt_conv_params *params, const fqt_dims *input_dims,
				   const int8_t *input, const fqt_dims *filter_dims,
				   const fqt_dims *output_dims, const int8_t *err,
				   const uint16_t *kept, int32_t n_kept, const fqt_grad_sink *sink)
{
	const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
	const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
	const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
	const int32_t dm = params->depth_multiplier;
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		const int32_t i = o / dm;
		int32_t *row = sink->acc_w + (size_t)o * (size_t)sink->row;
		for (int32_t ky = 0; ky < k_h; ++ky) {
			for (int32_t kx = 0; kx < k_w; ++kx) {
				int64_t sum = 0;
				for (int32_t oy = 0; oy < out_h; ++oy) {
					const int32_t iy = oy * params->stride_h - params->pad_h +
							   params->dilation_h * ky;
					if (iy < 0 || iy >= in_h) {
						continue;
					}
					for (int32_t ox = 0; ox < out_w; ++ox) {
						const int32_t ix = ox * params->stride_w - params->pad_w +
								   params->dilation_w * kx;
						if (ix < 0 || ix >= in_w) {
							continue;
						}
						const int32_t e =
							err[((size_t)oy * (size_t)out_w + (size_t)ox) *
								    (size_t)out_c +
							    (size_t)o];
						const int32_t xv =
							input[((size_t)iy * (size_t)in_w + (size_t)ix) *
								      (size_t)in_c +
							      (size_t)i] +
							params->input_offset;
						sum += (int64_t)e * xv;
					}
				}
				fqt_grad_put(sink, &row[(size_t)ky * (size_t)k_w + (size_t)kx], sum);
			}
		}
		int64_t gb = 0;
		for (int32_t p = 0; p < out_h * out_w; ++p) {
			gb += err[(size_t)p * (size_t)out_c + (size_t)o];
		}
		fqt_grad_put(sink, &sink->acc_b[o], gb);
	}
}

/* Otherwise, per kept channel o the gradient row is a 1 x T matrix product: the error of
 * channel o over the positions (one int16 row) against the T tap rows of input channel
 * o / DM (the offset folded in, built once per input channel: channels of one input are
 * adjacent). Scratch: the error row, then even(T) tap rows, each of P2 = even(positions)
 * int16. The scratch is the larger of the two layouts (the size query has no strides). */
size_t fqt_depthwise_conv2d_backward_weights_scratch_size(const fqt_dims *filter_dims,
							  const fqt_dims *output_dims)
{
	const int32_t p2 = fqt_s16_pairs_len(output_dims->h * output_dims->w);
	const int32_t taps = filter_dims->h * filter_dims->w;
	const size_t rows = 2u * (size_t)p2 * (size_t)(1 + fqt_s16_pairs_len(taps));
	const size_t padded = dw_wg_padded_scratch_size(filter_dims, output_dims);
	return rows > padded ? rows : padded;
}

fqt_status fqt_depthwise_conv2d_backward_weights(const fqt_conv_params *params,
						 const fqt_dims *input_dims, const int8_t *input,
						 const fqt_dims *filter_dims,
						 const fqt_dims *output_dims, const int8_t *err,
						 const uint16_t *kept, int32_t n_kept,
						 const fqt_grad_sink *sink, void *scratch,
						 size_t scratch_size)
{
	if (params == NULL || input_dims == NULL || input == NULL || filter_dims == NULL ||
	    output_dims == NULL || err == NULL || kept == NULL || sink == NULL ||
	    params->depth_multiplier < 1) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t positions = output_dims->h * output_dims->w;
	/* |e| <= 127, |x + offset| <= 255: int32 holds every sum below this many positions. */
	if (scratch == NULL || ((uintptr_t)scratch % 4u) != 0u ||
	    scratch_size <
		    fqt_depthwise_conv2d_backward_weights_scratch_size(filter_dims, output_dims) ||
	    (int64_t)positions * FQT_ERROR_MAX * 255 > INT32_MAX) {
		backward_weights_exact(params, input_dims, input, filter_dims, output_dims, err,
				       kept, n_kept, sink);
		return FQT_OK;
	}
	const int small = (int64_t)positions * 128 * 255 < ((int64_t)1 << 30);
	if (params->stride_h == 1 && params->stride_w == 1 && params->dilation_h == 1 &&
	    params->dilation_w == 1) {
		dw_wg_padded(params, input_dims, input, filter_dims, output_dims, err, kept, n_kept,
			     sink, (int16_t *)scratch, scratch_size, small);
		return FQT_OK;
	}
	const int32_t p2 = fqt_s16_pairs_len(positions);
	const int32_t k_w = filter_dims->w;
	const int32_t taps = filter_dims->h * k_w;
	const int32_t rows = fqt_s16_pairs_len(taps);
	int16_t *e_row = (int16_t *)scratch;
	int16_t *x_t = e_row + p2;
	/* Zeroed once: every channel writes the same in-image entries of the tap rows. */
	memset(x_t, 0, 2u * (size_t)rows * (size_t)p2);
	int32_t built = -1; /* the input channel whose tap rows x_t holds */
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		const int32_t i = o / params->depth_multiplier;
		if (i != built) {
			for (int32_t t = 0; t < taps; ++t) {
				fqt_tap_row_s16(params, input_dims, input, output_dims, t / k_w, t % k_w,
						i, p2, x_t + (size_t)t * (size_t)p2);
			}
			built = i;
		}
		int32_t gb = 0;
		e_row[p2 - 1] = 0;
		for (int32_t p = 0; p < positions; ++p) {
			e_row[p] = err[(size_t)p * (size_t)output_dims->c + (size_t)o];
			gb += e_row[p];
		}
		int32_t *row = sink->acc_w + (size_t)o * (size_t)sink->row;
		for (int32_t t = 0; t < taps; t += 2) {
			int32_t s[2];
			fqt_dot_s16_1x2(e_row, x_t + (size_t)t * (size_t)p2,
					x_t + (size_t)(t + 1) * (size_t)p2, p2, s);
			dw_wg_put(sink, &row[t], s[0], small);
			if (t + 1 < taps) {
				dw_wg_put(sink, &row[t + 1], s[1], small);
			}
		}
		dw_wg_put(sink, &sink->acc_b[o], gb, small);
	}
	return FQT_OK;
}

/* The gather's scratch (kernels/dw_input_error.h); 0 where the kernel has no gather (depth
 * multiplier > 1, strides or dilations > 1). */
size_t fqt_depthwise_conv2d_backward_input_scratch_size(const fqt_conv_params *params,
							const fqt_dims *input_dims,
							const fqt_dims *filter_dims,
							const fqt_dims *output_dims)
{
	if (params == NULL || input_dims == NULL || filter_dims == NULL || output_dims == NULL) {
		return 0u;
	}
	return dw_ie_scratch_size(params, input_dims, filter_dims, output_dims);
}

fqt_status fqt_depthwise_conv2d_backward_input(const fqt_conv_params *params,
					       const fqt_dims *input_dims,
					       const fqt_dims *filter_dims, const int8_t *filter,
					       const void *scales, uint32_t scale_count,
					       const fqt_dims *output_dims, const int8_t *err,
					       const uint16_t *kept, int32_t n_kept, int32_t *acc,
					       int32_t *fold_exp, void *scratch, size_t scratch_size)
{
	if (params == NULL || input_dims == NULL || filter_dims == NULL || filter == NULL ||
	    scales == NULL || output_dims == NULL || err == NULL || kept == NULL || acc == NULL ||
	    fold_exp == NULL || params->depth_multiplier < 1) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
	const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
	const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
	const int32_t dm = params->depth_multiplier;
	const int p = fqt_fold_exponent(scales, scale_count);
	*fold_exp = p;
	const size_t need = dw_ie_scratch_size(params, input_dims, filter_dims, output_dims);
#if FQT_DW_IE_PLANAR
	if (need > 0u && dw_ie_planar_applies(input_dims, filter_dims) && scratch != NULL &&
	    scratch_size >= dw_ie_planar_scratch_size(input_dims) &&
	    dw_ie_planar(params, input_dims, filter, scales, scale_count, p, output_dims, err,
			 kept, n_kept, acc, scratch)) {
		return FQT_OK;
	}
#endif
	if (need > 0u && scratch != NULL && scratch_size >= need &&
	    dw_ie_gather(params, input_dims, filter_dims, filter, scales, scale_count, p,
			 output_dims, err, kept, n_kept, acc, scratch)) {
		return FQT_OK;
	}
	memset(acc, 0, (size_t)in_h * (size_t)in_w * (size_t)in_c * sizeof(int32_t));
	if (dm == 1 && out_c == in_c) {
		dw_ie_scatter(params, input_dims, filter_dims, filter, scales, scale_count, p,
			      output_dims, err, kept, n_kept, acc);
		return FQT_OK;
	}
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		const int32_t i = o / dm;
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
				const int32_t g = fqt_requantize(
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
						const int32_t w =
							filter[((size_t)ky * (size_t)k_w + (size_t)kx) *
								       (size_t)out_c +
							       (size_t)o];
						acc[((size_t)iy * (size_t)in_w + (size_t)ix) *
							    (size_t)in_c +
						    (size_t)i] += w * g;
					}
				}
			}
		}
	}
	return FQT_OK;
}
