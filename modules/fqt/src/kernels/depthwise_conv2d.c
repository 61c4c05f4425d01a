/*
 * DEPTHWISE_CONV_2D, int8: TFLM reference_integer_ops::DepthwiseConvPerChannel, bit for
 * bit. Output channel ic * depth_multiplier + m reads input channel ic.
 */
#include <stddef.h>
#include <string.h>

#include "dot_s16.h"
#include "dot_s8.h"
#include "dw_forward.h"
#include "dw_input_error.h"
#include "dw_weight_grad.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

/* The in-image taps of one output position form a rectangle of kernel rows x columns: x
 * and w point at its first tap (channel 0) in the input and the filter, the steps are a
 * column and a row of taps in each, so the tap loops test no bounds. */
typedef struct dw_window {
	const int8_t *x, *w;
	int32_t rows, cols;
	size_t x_col, x_row, w_col, w_row;
} dw_window;

static dw_window dw_window_at(const fqt_conv_params *params, const fqt_dims *input_dims,
			      const int8_t *in_batch, const fqt_dims *filter_dims,
			      const int8_t *filter, int32_t out_c, int32_t oy, int32_t ox)
{
	const int32_t iy0 = oy * params->stride_h - params->pad_h;
	const int32_t ix0 = ox * params->stride_w - params->pad_w;
	int32_t y_lo = 0, y_hi = filter_dims->h, x_lo = 0, x_hi = filter_dims->w;
	while (y_lo < y_hi && iy0 + params->dilation_h * y_lo < 0) {
		++y_lo;
	}
	while (y_hi > y_lo && iy0 + params->dilation_h * (y_hi - 1) >= input_dims->h) {
		--y_hi;
	}
	while (x_lo < x_hi && ix0 + params->dilation_w * x_lo < 0) {
		++x_lo;
	}
	while (x_hi > x_lo && ix0 + params->dilation_w * (x_hi - 1) >= input_dims->w) {
		--x_hi;
	}
	const size_t in_c = (size_t)input_dims->c;
	dw_window win = {
		.x = in_batch,
		.w = filter,
		.rows = x_hi > x_lo ? y_hi - y_lo : 0,
		.cols = x_hi - x_lo,
		.x_col = (size_t)params->dilation_w * in_c,
		.x_row = (size_t)params->dilation_h * (size_t)input_dims->w * in_c,
		.w_col = (size_t)out_c,
		.w_row = (size_t)filter_dims->w * (size_t)out_c,
	};
	if (win.rows > 0) {
		win.x += ((size_t)(iy0 + params->dilation_h * y_lo) * (size_t)input_dims->w +
			  (size_t)(ix0 + params->dilation_w * x_lo)) *
			 in_c;
		win.w += (size_t)y_lo * win.w_row + (size_t)x_lo * win.w_col;
	}
	return win;
}

#if FQT_SIMD_DSP
/* Depth multiplier 1, four channels at a time, summed from the bias (SMLA wraps as the
 * reference's int32 sum and bias add do); a row of two or three taps (dilation 1), and a
 * 3 x 3 window inside the image, are unrolled.
 * Returns the channels done (a multiple of 4). */
static int32_t dw_forward_simd4(int32_t input_offset, fqt_out_quant q, int32_t in_c,
				const dw_window *win_p, const int32_t *bias, int8_t *out)
{
	const dw_window w_ = *win_p, *win = &w_; /* a local: int8 stores do not reload it */
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)input_offset) * 0x00010001u);
	const size_t c1 = (size_t)in_c; /* a column, input and filter */
	const int row3 = win->cols == 3 && win->x_col == c1;
	const int row2 = win->cols == 2 && win->x_col == c1;
	const int full3 = row3 && win->rows == 3 && win->w_row == 3u * c1; /* a 3 x 3 kernel */
	int32_t c = 0;
	for (; c + 4 <= in_c; c += 4) {
		dw_acc4 a = {0, 0, 0, 0};
		if (bias != NULL) {
			a = (dw_acc4){bias[c], bias[c + 1], bias[c + 2], bias[c + 3]};
		}
		const int8_t *x = win->x + c, *w = win->w + c;
		if (full3) {
			a = dw_window3x3(x, w, c1, win->x_row, off2, a);
		}
		for (int32_t ky = full3 ? win->rows : 0; ky < win->rows;
		     ++ky, x += win->x_row, w += win->w_row) {
			if (row3) {
				a = dw_row3(x, w, c1, off2, a);
				continue;
			}
			if (row2) {
				a = dw_row2(x, w, c1, off2, a);
				continue;
			}
			const int8_t *xk = x, *wk = w;
			for (int32_t kx = 0; kx < win->cols; ++kx, xk += win->x_col, wk += win->w_col) {
				a = dw_tap4(xk, wk, off2, a);
			}
		}
		out[c] = fqt_out_s8(q, c, a.a0);
		out[c + 1] = fqt_out_s8(q, c + 1, a.a1);
		out[c + 2] = fqt_out_s8(q, c + 2, a.a2);
		out[c + 3] = fqt_out_s8(q, c + 3, a.a3);
	}
	return c;
}
#endif

#if !FQT_SIMD_DSP
/* Depth multiplier 1 without the DSP extension: four channels per walk of the window, so
 * the tap loop's pointer steps and tests are shared by four sums. Returns the channels
 * done (a multiple of 4). */
static int32_t dw_forward_c4(int32_t offset, fqt_out_quant q, int32_t in_c,
			     const dw_window *win_p, const int32_t *bias, int8_t *out)
{
	const dw_window w_ = *win_p, *win = &w_; /* a local: int8 stores do not reload it */
	int32_t c = 0;
	for (; c + 4 <= in_c; c += 4) {
		int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
		const int8_t *x = win->x + c, *w = win->w + c;
		for (int32_t ky = 0; ky < win->rows; ++ky, x += win->x_row, w += win->w_row) {
			const int8_t *xk = x, *wk = w;
			for (int32_t kx = 0; kx < win->cols; ++kx, xk += win->x_col, wk += win->w_col) {
				a0 += (xk[0] + offset) * wk[0];
				a1 += (xk[1] + offset) * wk[1];
				a2 += (xk[2] + offset) * wk[2];
				a3 += (xk[3] + offset) * wk[3];
			}
		}
		if (bias != NULL) {
			a0 = fqt_wrapping_add(a0, bias[c]);
			a1 = fqt_wrapping_add(a1, bias[c + 1]);
			a2 = fqt_wrapping_add(a2, bias[c + 2]);
			a3 = fqt_wrapping_add(a3, bias[c + 3]);
		}
		out[c] = fqt_out_s8(q, c, a0);
		out[c + 1] = fqt_out_s8(q, c + 1, a1);
		out[c + 2] = fqt_out_s8(q, c + 2, a2);
		out[c + 3] = fqt_out_s8(q, c + 3, a3);
	}
	return c;
}
#endif

/* Input channels [c0, in_c), every multiplier: one channel at a time over the window. */
static void dw_forward_scalar(int32_t offset, int32_t dm, fqt_out_quant q, int32_t in_c,
			      const dw_window *win_p, const int32_t *bias, int32_t c0, int8_t *out)
{
	const dw_window w_ = *win_p, *win = &w_; /* a local: int8 stores do not reload it */
	for (int32_t ic = c0; ic < in_c; ++ic) {
		for (int32_t m = 0; m < dm; ++m) {
			const int32_t oc = ic * dm + m;
			const int8_t *x = win->x + ic, *w = win->w + oc;
			int32_t acc = 0;
			for (int32_t ky = 0; ky < win->rows; ++ky, x += win->x_row, w += win->w_row) {
				if (win->cols == 3) {
					acc += (x[0] + offset) * w[0] +
					       (x[win->x_col] + offset) * w[win->w_col] +
					       (x[2u * win->x_col] + offset) * w[2u * win->w_col];
					continue;
				}
				const int8_t *xk = x, *wk = w;
				for (int32_t kx = 0; kx < win->cols;
				     ++kx, xk += win->x_col, wk += win->w_col) {
					acc += (*xk + offset) * *wk;
				}
			}
			if (bias != NULL) {
				acc = fqt_wrapping_add(acc, bias[oc]);
			}
			out[oc] = fqt_out_s8(q, oc, acc);
		}
	}
}

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
	const int32_t in_c = input_dims->c, out_c = output_dims->c;
	const int32_t offset = params->input_offset, dm = params->depth_multiplier;
	const fqt_out_quant q = {requant->multiplier, requant->shift, params->output_offset,
				 params->act_min, params->act_max};
	const size_t image = (size_t)input_dims->h * (size_t)input_dims->w * (size_t)in_c;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch = input + (size_t)b * image;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			for (int32_t ox = 0; ox < output_dims->w; ++ox, out += out_c) {
				const dw_window win = dw_window_at(params, input_dims, in_batch,
								   filter_dims, filter, out_c, oy, ox);
				int32_t c0 = 0;
				if (dm == 1) {
#if FQT_SIMD_DSP
					c0 = dw_forward_simd4(offset, q, in_c, &win, bias, out);
#else
					c0 = dw_forward_c4(offset, q, in_c, &win, bias, out);
#endif
				}
				dw_forward_scalar(offset, dm, q, in_c, &win, bias, c0, out);
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
		int32_t *row = fqt_grad_row(sink, o);
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
		fqt_grad_put(sink, fqt_grad_bias(sink, o), gb);
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
		int32_t *row = fqt_grad_row(sink, o);
		for (int32_t t = 0; t < taps; t += 2) {
			int32_t s[2];
			fqt_dot_s16_1x2(e_row, x_t + (size_t)t * (size_t)p2,
					x_t + (size_t)(t + 1) * (size_t)p2, p2, s);
			dw_wg_put(sink, &row[t], s[0], small);
			if (t + 1 < taps) {
				dw_wg_put(sink, &row[t + 1], s[1], small);
			}
		}
		dw_wg_put(sink, fqt_grad_bias(sink, o), gb, small);
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
			 kept, n_kept, acc, scratch, NULL)) {
		return FQT_OK;
	}
#endif
	if (need > 0u && scratch != NULL && scratch_size >= need &&
	    dw_ie_gather(params, input_dims, filter_dims, filter, scales, scale_count, p,
			 output_dims, err, kept, n_kept, acc, scratch, NULL, 0)) {
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
