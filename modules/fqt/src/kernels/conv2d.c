/*
 * CONV_2D, int8. Forward: TFLM reference_integer_ops::ConvPerChannel, bit for bit.
 * Backward (docs/training-semantics.md 5.2, 5.3; scripts/fqt/golden/conv2d.py): the
 * weight gradient into the mini-batch accumulator and the input error as int32 sums.
 */
#include <stddef.h>

#include "dot_s16.h"
#include "dot_s8.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "patch_s16.h"
#include "quant.h"

/* The taps of one output position inside the image: kernel rows [y_lo, y_hi) and columns
 * [x_lo, x_hi) (the in-image taps of a convolution form a rectangle), and the input
 * coordinates of tap (0, 0). Computed once per position, so the loops test no bounds. */
typedef struct conv_window {
	int32_t iy0, ix0;
	int32_t y_lo, y_hi, x_lo, x_hi;
} conv_window;

static void conv_range(int32_t origin, int32_t dilation, int32_t k, int32_t size, int32_t *lo,
		       int32_t *hi)
{
	int32_t l = 0, h = k;
	while (l < k && origin + dilation * l < 0) {
		++l;
	}
	while (h > l && origin + dilation * (h - 1) >= size) {
		--h;
	}
	*lo = l;
	*hi = h;
}

static conv_window conv_window_at(const fqt_conv_params *params, const fqt_dims *input_dims,
				  const fqt_dims *filter_dims, int32_t oy, int32_t ox)
{
	conv_window win;
	win.iy0 = oy * params->stride_h - params->pad_h;
	win.ix0 = ox * params->stride_w - params->pad_w;
	conv_range(win.iy0, params->dilation_h, filter_dims->h, input_dims->h, &win.y_lo,
		   &win.y_hi);
	conv_range(win.ix0, params->dilation_w, filter_dims->w, input_dims->w, &win.x_lo,
		   &win.x_hi);
	return win;
}

/* The raw sums of output channels oc .. oc + rows - 1 (rows 4, or 1 for the tail) at one
 * position. With dilation_w 1 the in-image taps of a kernel row are one contiguous run of
 * (x_hi - x_lo) * C bytes in NHWC input and OHWI filter alike (a 1-channel convolution gets
 * runs of k_w, not of 1); otherwise one run of C per tap. */
static void conv_sums(const fqt_conv_params *params, const fqt_dims *input_dims,
		      const int8_t *in_batch, const fqt_dims *filter_dims, const int8_t *filter,
		      const conv_window *win, int32_t oc, int32_t rows, int32_t out[4])
{
	const size_t in_c = (size_t)input_dims->c;
	const size_t k_w = (size_t)filter_dims->w;
	const size_t stride = (size_t)filter_dims->h * k_w * in_c; /* one filter */
	const int32_t offset = params->input_offset;
	const int contiguous = params->dilation_w == 1;
	const int32_t runs = contiguous ? (win->x_hi > win->x_lo ? 1 : 0) : win->x_hi - win->x_lo;
	const int32_t len = contiguous ? (win->x_hi - win->x_lo) * (int32_t)in_c : (int32_t)in_c;
	const size_t x_step = (size_t)params->dilation_w * in_c;
	const size_t x_row = (size_t)params->dilation_h * (size_t)input_dims->w * in_c;
	const int8_t *x_ky = in_batch + ((size_t)(win->iy0 + params->dilation_h * win->y_lo) *
						 (size_t)input_dims->w +
					 (size_t)(win->ix0 + params->dilation_w * win->x_lo)) *
						in_c;
	const int8_t *w_ky = filter + (((size_t)oc * (size_t)filter_dims->h + (size_t)win->y_lo) * k_w +
				       (size_t)win->x_lo) *
					      in_c;
	int32_t acc[4] = {0, 0, 0, 0};
	for (int32_t ky = win->y_lo; ky < win->y_hi; ++ky, x_ky += x_row, w_ky += k_w * in_c) {
		const int8_t *x = x_ky, *w = w_ky;
		for (int32_t r = 0; r < runs; ++r, x += x_step, w += in_c) {
			if (rows == 4) {
				fqt_dot_s8_offset_1x4(x, offset, w, stride, len, acc);
			} else {
				acc[0] += fqt_dot_s8_offset(x, offset, w, len);
			}
		}
	}
	memcpy(out, acc, sizeof(acc));
}

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
	const int32_t out_c = output_dims->c;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch = input + (size_t)b * (size_t)input_dims->h *
							 (size_t)input_dims->w * (size_t)input_dims->c;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const conv_window win =
					conv_window_at(params, input_dims, filter_dims, oy, ox);
				for (int32_t oc = 0; oc < out_c;) {
					const int32_t rows = out_c - oc >= 4 ? 4 : 1;
					int32_t acc[4];
					conv_sums(params, input_dims, in_batch, filter_dims, filter,
						  &win, oc, rows, acc);
					for (int32_t r = 0; r < rows; ++r, ++oc) {
						int32_t a = acc[r];
						if (bias != NULL) {
							a = fqt_wrapping_add(a, bias[oc]);
						}
						a = fqt_requantize_sum(
							a, requant->multiplier[oc],
							(int)requant->shift[oc]);
						a = fqt_wrapping_add(a, params->output_offset);
						*out++ = (int8_t)fqt_clamp_s32(a, params->act_min,
									       params->act_max);
					}
				}
			}
		}
	}
	return FQT_OK;
}

/* ---- forward as an int16 patch matrix (kernels/patch_s16.h) ---- */

size_t fqt_conv2d_forward_im2col_scratch_size(const fqt_dims *input_dims,
					      const fqt_dims *filter_dims)
{
	if (input_dims == NULL || filter_dims == NULL || filter_dims->h < 1 || filter_dims->w < 1 ||
	    input_dims->c < 1) {
		return 0;
	}
	const int64_t taps = (int64_t)filter_dims->h * filter_dims->w * input_dims->c;
	/* No model holds a filter row this long (tensors are capped far below); the direct
	 * kernel then runs without scratch rather than size arithmetic overflowing. */
	return taps > ((int64_t)1 << 24) ? 0u : fqt_patch_scratch_bytes((int32_t)taps);
}

/* The int8 patch of position (oy, ox): the input itself when it is one in-image run of a
 * whole number of groups (a 1 x n kernel inside the image, pointwise layers), else
 * gathered into `stage` (4G bytes), -offset (the input zero point) at padding taps. */
static const int8_t *patch_source(const fqt_conv_params *params, const fqt_dims *input_dims,
				  const int8_t *in_batch, const fqt_dims *filter_dims,
				  int32_t oy, int32_t ox, int32_t groups, int8_t *stage)
{
	const conv_window win = conv_window_at(params, input_dims, filter_dims, oy, ox);
	const size_t in_c = (size_t)input_dims->c;
	const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
	const size_t row = (size_t)k_w * in_c;
	const int8_t pad = (int8_t)-params->input_offset;
	const int inside = win.y_lo == 0 && win.y_hi == k_h && win.x_lo == 0 && win.x_hi == k_w;
	if (inside && k_h == 1 && (params->dilation_w == 1 || k_w == 1) && row % 4u == 0u) {
		return in_batch +
		       ((size_t)win.iy0 * (size_t)input_dims->w + (size_t)win.ix0) * in_c;
	}
	int8_t *dst = stage;
	for (int32_t ky = 0; ky < k_h; ++ky, dst += row) {
		if (ky < win.y_lo || ky >= win.y_hi) {
			memset(dst, pad, row);
			continue;
		}
		/* Element index of tap (ky, 0), which may lie left of the image (ix0 < 0): kept
		 * signed, and a pointer is formed only for in-image taps. */
		const ptrdiff_t src0 = ((ptrdiff_t)(win.iy0 + params->dilation_h * ky) *
					       (ptrdiff_t)input_dims->w +
				       (ptrdiff_t)win.ix0) *
				      (ptrdiff_t)in_c;
		memset(dst, pad, (size_t)win.x_lo * in_c);
		if (params->dilation_w == 1) {
			memcpy(dst + (size_t)win.x_lo * in_c,
			       in_batch + (src0 + (ptrdiff_t)win.x_lo * (ptrdiff_t)in_c),
			       (size_t)(win.x_hi - win.x_lo) * in_c);
		} else {
			for (int32_t kx = win.x_lo; kx < win.x_hi; ++kx) {
				memcpy(dst + (size_t)kx * in_c,
				       in_batch + (src0 + (ptrdiff_t)(params->dilation_w * kx) *
								  (ptrdiff_t)in_c),
				       in_c);
			}
		}
		memset(dst + (size_t)win.x_hi * in_c, pad, (size_t)(k_w - win.x_hi) * in_c);
	}
	memset(dst, pad, (size_t)(4 * groups) - (size_t)k_h * row); /* the last group's pad */
	return stage;
}

static inline int8_t requantize_out(const fqt_conv_params *params, int32_t acc, int32_t bias,
				    int32_t multiplier, int shift)
{
	int32_t a = fqt_requantize_sum(fqt_wrapping_add(acc, bias), multiplier, shift);
	a = fqt_wrapping_add(a, params->output_offset);
	return (int8_t)fqt_clamp_s32(a, params->act_min, params->act_max);
}

fqt_status fqt_conv2d_forward_im2col(const fqt_conv_params *params, const fqt_requant *requant,
				     const fqt_dims *input_dims, const int8_t *input,
				     const fqt_dims *filter_dims, const int8_t *filter,
				     const int32_t *bias, const fqt_dims *output_dims,
				     int8_t *output, void *scratch, size_t scratch_size)
{
	if (scratch == NULL || ((uintptr_t)scratch % 4u) != 0u ||
	    scratch_size < fqt_conv2d_forward_im2col_scratch_size(input_dims, filter_dims) ||
	    fqt_conv2d_forward_im2col_scratch_size(input_dims, filter_dims) == 0u ||
	    params == NULL || requant == NULL || output_dims == NULL ||
	    filter_dims->c != input_dims->c || filter_dims->n != output_dims->c ||
	    input_dims->n != output_dims->n || requant->count != (uint32_t)output_dims->c) {
		return fqt_conv2d_forward(params, requant, input_dims, input, filter_dims, filter,
					  bias, output_dims, output);
	}
	if (input == NULL || filter == NULL || output == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t taps = filter_dims->h * filter_dims->w * input_dims->c;
	const int32_t groups = fqt_patch_groups(taps);
#if FQT_SIMD_DSP
	uint32_t *pair = (uint32_t *)scratch;
#else
	int16_t *pair = (int16_t *)scratch;
#endif
	int8_t *stage = (int8_t *)scratch + 16u * (size_t)groups;
	const int32_t out_c = output_dims->c, hw = output_dims->h * output_dims->w;
	const int32_t positions = output_dims->n * hw;
	const size_t image = (size_t)input_dims->h * (size_t)input_dims->w * (size_t)input_dims->c;
	for (int32_t p = 0; p < positions; p += 2) {
		/* A lone last position fills both slots; its second results are dropped. */
		const int32_t q = p + 1 < positions ? p + 1 : p;
		for (int slot = 0; slot < 2; ++slot) {
			const int32_t r = slot == 0 ? p : q;
			const int32_t b = r / hw, oy = (r % hw) / output_dims->w,
				      ox = r % output_dims->w;
			const int8_t *src = patch_source(params, input_dims, input + (size_t)b * image,
							 filter_dims, oy, ox, groups, stage);
			fqt_patch_pack(src, groups, params->input_offset, slot, pair);
		}
		int8_t *out0 = output + (size_t)p * (size_t)out_c;
		int8_t *out1 = output + (size_t)q * (size_t)out_c;
		for (int32_t oc = 0; oc < out_c; oc += 2) {
			const int8_t *w0 = filter + (size_t)oc * (size_t)taps;
			const int two = oc + 1 < out_c;
			int32_t s[4];
			fqt_patch_dot_2x2(pair, w0, two ? w0 + taps : w0, taps, s);
			const int32_t b0 = bias != NULL ? bias[oc] : 0;
			const int32_t m0 = requant->multiplier[oc];
			const int sh0 = (int)requant->shift[oc];
			out0[oc] = requantize_out(params, s[0], b0, m0, sh0);
			out1[oc] = requantize_out(params, s[2], b0, m0, sh0);
			if (two) {
				const int32_t b1 = bias != NULL ? bias[oc + 1] : 0;
				const int32_t m1 = requant->multiplier[oc + 1];
				const int sh1 = (int)requant->shift[oc + 1];
				out0[oc + 1] = requantize_out(params, s[1], b1, m1, sh1);
				out1[oc + 1] = requantize_out(params, s[3], b1, m1, sh1);
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
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int32_t *row = fqt_grad_row(sink, o);
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
		fqt_grad_put(sink, fqt_grad_bias(sink, o), gb);
	}
}

/* Rows of input taps transposed per call: (tap x channel) rows of the im2col matrix. */
#define FQT_WG_TAP_ROWS 8
/* The lean plan's weight gradient: kept channels per block of the transposed error. */
#define FQT_WG_BLOCK_CHANNELS 16

/* gw[o][k] = sum_p e[p][o] * xz[k][p] is the product of the error transposed to channel x
 * position (E, kept channels only) and the input to (tap x channel) x position (X, offset
 * folded in, 0 where the tap is padding): contiguous int16 rows, dotted two by two
 * (dot_s16.h). X is built FQT_WG_TAP_ROWS rows at a time, each row read by every kept
 * channel. Scratch: E then X, rows of P2 = even(positions) int16. */
size_t fqt_conv2d_backward_weights_scratch_size(const fqt_dims *input_dims,
						const fqt_dims *filter_dims,
						const fqt_dims *output_dims)
{
	const int32_t taps = filter_dims->h * filter_dims->w * input_dims->c;
	const int32_t tap_rows = taps < FQT_WG_TAP_ROWS ? fqt_s16_pairs_len(taps) : FQT_WG_TAP_ROWS;
	const int32_t p2 = fqt_s16_pairs_len(output_dims->h * output_dims->w);
	return 2u * (size_t)p2 * (size_t)(fqt_s16_pairs_len(output_dims->c) + tap_rows);
}

/* The lean plan's smaller scratch: E for FQT_WG_BLOCK_CHANNELS kept channels at a time
 * (X rebuilt for each block), the same gradients. */
size_t fqt_conv2d_backward_weights_blocked_scratch_size(const fqt_dims *input_dims,
							const fqt_dims *filter_dims,
							const fqt_dims *output_dims)
{
	const int32_t taps = filter_dims->h * filter_dims->w * input_dims->c;
	const int32_t tap_rows = taps < FQT_WG_TAP_ROWS ? fqt_s16_pairs_len(taps) : FQT_WG_TAP_ROWS;
	const int32_t p2 = fqt_s16_pairs_len(output_dims->h * output_dims->w);
	const int32_t ch = fqt_s16_pairs_len(output_dims->c);
	return 2u * (size_t)p2 *
	       (size_t)((ch < FQT_WG_BLOCK_CHANNELS ? ch : FQT_WG_BLOCK_CHANNELS) + tap_rows);
}

/* X rows k0 .. k0 + real - 1 (k = (ky * KW + kx) * C + i) of a block of n rows, the rows
 * past `real` (an odd tap count's pad row) zero. */
static void im2col_rows(const fqt_conv_params *params, const fqt_dims *input_dims,
			const int8_t *input, const fqt_dims *filter_dims,
			const fqt_dims *output_dims, int32_t k0, int32_t n, int32_t real,
			int32_t p2, int16_t *x_t)
{
	const int32_t in_c = input_dims->c;
	memset(x_t, 0, 2u * (size_t)n * (size_t)p2);
	for (int32_t r = 0; r < real; ++r) {
		const int32_t k = k0 + r;
		fqt_tap_row_s16(params, input_dims, input, output_dims, (k / in_c) / filter_dims->w,
				(k / in_c) % filter_dims->w, k % in_c, p2,
				x_t + (size_t)r * (size_t)p2);
	}
}

/* Row sums of E: the bias gradients of the kept channels. */
static void bias_gradients(const int16_t *e_t, int32_t p2, const uint16_t *kept, int32_t n_kept,
			   const fqt_grad_sink *sink)
{
	for (int32_t j = 0; j < n_kept; ++j) {
		const int16_t *row = e_t + (size_t)j * (size_t)p2;
		int32_t gb = 0;
		for (int32_t p = 0; p < p2; ++p) {
			gb += row[p];
		}
		fqt_grad_put(sink, fqt_grad_bias(sink, kept[j]), gb);
	}
}

/* Every 2x2 block of (kept channel, tap row) dot products of E and X rows k0 .. k0 + n - 1,
 * n even; sums of padding rows (j >= n_kept, k >= taps) are dropped. */
static void weight_gradient_rows(const int16_t *e_t, const int16_t *x_t, int32_t p2,
			      const uint16_t *kept, int32_t n_kept, int32_t k0, int32_t n,
			      int32_t taps, const fqt_grad_sink *sink)
{
	for (int32_t j = 0; j < n_kept; j += 2) {
		const int16_t *a0 = e_t + (size_t)j * (size_t)p2;
		int32_t *row0 = fqt_grad_row(sink, kept[j]) + k0;
		int32_t *row1 = j + 1 < n_kept
					? fqt_grad_row(sink, kept[j + 1]) + k0
					: NULL;
		for (int32_t r = 0; r < n; r += 2) {
			const int16_t *b0 = x_t + (size_t)r * (size_t)p2;
			int32_t s[4];
			fqt_dot_s16_2x2(a0, a0 + p2, b0, b0 + p2, p2, s);
			fqt_grad_put(sink, &row0[r], s[0]);
			if (k0 + r + 1 < taps) {
				fqt_grad_put(sink, &row0[r + 1], s[1]);
			}
			if (row1 != NULL) {
				fqt_grad_put(sink, &row1[r], s[2]);
				if (k0 + r + 1 < taps) {
					fqt_grad_put(sink, &row1[r + 1], s[3]);
				}
			}
		}
	}
}

/* The int16 product for the kept channels kept[0 .. n_kept): E (e_rows rows reserved,
 * n_kept <= e_rows) then X in scratch. Inlined into both callers, so that the default
 * path compiles as it did with one (M4: 4 % more instructions as a call). */
__attribute__((always_inline)) static inline void weight_gradient_product(const fqt_conv_params *params, const fqt_dims *input_dims,
				    const int8_t *input, const fqt_dims *filter_dims,
				    const fqt_dims *output_dims, const int8_t *err,
				    const uint16_t *kept, int32_t n_kept,
				    const fqt_grad_sink *sink, int16_t *scratch, int32_t e_rows)
{
	const int32_t positions = output_dims->h * output_dims->w;
	const int32_t p2 = fqt_s16_pairs_len(positions);
	const int32_t taps = filter_dims->h * filter_dims->w * input_dims->c;
	int16_t *e_t = scratch;
	int16_t *x_t = e_t + (size_t)p2 * (size_t)e_rows;
	fqt_transpose_errors_s16(err, positions, output_dims->c, kept, n_kept, p2, e_t);
	bias_gradients(e_t, p2, kept, n_kept, sink);
	for (int32_t k0 = 0; k0 < taps; k0 += FQT_WG_TAP_ROWS) {
		const int32_t n = fqt_s16_pairs_len(taps - k0 < FQT_WG_TAP_ROWS ? taps - k0
										 : FQT_WG_TAP_ROWS);
		const int32_t real = taps - k0 < n ? taps - k0 : n;
		im2col_rows(params, input_dims, input, filter_dims, output_dims, k0, n, real, p2,
			    x_t);
		weight_gradient_rows(e_t, x_t, p2, kept, n_kept, k0, n, taps, sink);
	}
}

fqt_status fqt_conv2d_backward_weights(const fqt_conv_params *params, const fqt_dims *input_dims,
				       const int8_t *input, const fqt_dims *filter_dims,
				       const fqt_dims *output_dims, const int8_t *err,
				       const uint16_t *kept, int32_t n_kept,
				       const fqt_grad_sink *sink, void *scratch,
				       size_t scratch_size)
{
	if (params == NULL || input_dims == NULL || input == NULL || filter_dims == NULL ||
	    output_dims == NULL || err == NULL || kept == NULL || sink == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t positions = output_dims->h * output_dims->w;
	/* |e| <= 127, |x + offset| <= 255: int32 holds every sum below this many positions. */
	if (scratch == NULL || ((uintptr_t)scratch % 4u) != 0u ||
	    scratch_size < fqt_conv2d_backward_weights_blocked_scratch_size(
				   input_dims, filter_dims, output_dims) ||
	    (int64_t)positions * FQT_ERROR_MAX * 255 > INT32_MAX) {
		backward_weights_exact(params, input_dims, input, filter_dims, output_dims, err,
				       kept, n_kept, sink);
		return FQT_OK;
	}
	if (scratch_size >=
	    fqt_conv2d_backward_weights_scratch_size(input_dims, filter_dims, output_dims)) {
		/* every kept channel's E resident */
		weight_gradient_product(params, input_dims, input, filter_dims, output_dims, err,
					kept, n_kept, sink, (int16_t *)scratch,
					fqt_s16_pairs_len(output_dims->c));
		return FQT_OK;
	}
	/* the lean plan's: E of FQT_WG_BLOCK_CHANNELS channels at a time, X rebuilt per block */
	for (int32_t j0 = 0; j0 < n_kept; j0 += FQT_WG_BLOCK_CHANNELS) {
		const int32_t nb = n_kept - j0 < FQT_WG_BLOCK_CHANNELS ? n_kept - j0
									: FQT_WG_BLOCK_CHANNELS;
		weight_gradient_product(params, input_dims, input, filter_dims, output_dims, err,
					kept + j0, nb, sink, (int16_t *)scratch,
					FQT_WG_BLOCK_CHANNELS);
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
	/* Two kept channels a pass where both g fit int16 (section 2.2: unless a scale exceeds
	 * 2^P): each tap's two weight rows go into the input row in one scatter (DSP). */
	const int32_t n4 = FQT_SIMD_DSP ? (in_c & ~3) : 0;
	for (int32_t j = 0; j < n_kept;) {
		int32_t o[2] = {0, 0}, m[2] = {0, 0};
		int sh[2] = {0, 0};
		int32_t n = 1;
		o[0] = kept[j];
		fqt_fold_multiplier(scales, scale_count, o[0], p, &m[0], &sh[0]);
		if (FQT_SIMD_DSP && j + 1 < n_kept) {
			o[1] = kept[j + 1];
			fqt_fold_multiplier(scales, scale_count, o[1], p, &m[1], &sh[1]);
			n = 2;
			for (int r = 0; r < 2; ++r) {
				const int32_t hi = fqt_requantize(127 * 256, m[r], sh[r]);
				const int32_t lo = fqt_requantize(-128 * 256, m[r], sh[r]);
				n = hi > INT16_MAX || lo < INT16_MIN ? 1 : n;
			}
		}
		j += n;
		for (int32_t oy = 0; oy < out_h; ++oy) {
			for (int32_t ox = 0; ox < out_w; ++ox) {
				const int8_t *er = err + ((size_t)oy * (size_t)out_w + (size_t)ox) *
								 (size_t)out_c;
				int32_t g[2] = {0, 0};
				for (int32_t r = 0; r < n; ++r) {
					const int32_t e = er[o[r]];
					g[r] = e == 0 ? 0
						      : fqt_requantize(e * (1 << FQT_ERROR_FOLD_BITS),
								       m[r], sh[r]);
				}
				if ((g[0] | g[1]) == 0) {
					continue;
				}
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
						const size_t tap = (size_t)ky * (size_t)k_w + (size_t)kx;
						int32_t *a = acc + ((size_t)iy * (size_t)in_w +
								    (size_t)ix) *
									   (size_t)in_c;
						fqt_conv_scatter_taps(a, filter, o, g, n, tap,
							     (size_t)k_h * (size_t)k_w, in_c, n4);
					}
				}
			}
		}
	}
	return FQT_OK;
}
