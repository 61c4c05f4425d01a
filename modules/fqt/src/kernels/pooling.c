/*
 * AVERAGE_POOL_2D and MAX_POOL_2D, int8: TFLM reference_integer_ops::AveragePool and
 * MaxPool, bit for bit. Windows are clipped to the input (padding is not counted).
 */
#include <stddef.h>
#include <string.h>

#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

static int pool_arguments_ok(const fqt_pool_params *params, const fqt_dims *input_dims,
			     const int8_t *input, const fqt_dims *output_dims,
			     const int8_t *output)
{
	return params != NULL && input_dims != NULL && input != NULL && output_dims != NULL &&
	       output != NULL && input_dims->n == output_dims->n &&
	       input_dims->c == output_dims->c && params->filter_h >= 1 && params->filter_w >= 1;
}

/* The part of the window of output (oy, ox) inside the input: [y0, y1) x [x0, x1). */
typedef struct pool_window {
	int32_t y0, y1, x0, x1;
} pool_window;

static pool_window clip_window(const fqt_pool_params *params, const fqt_dims *input_dims,
			       int32_t oy, int32_t ox)
{
	const int32_t in_y_origin = oy * params->stride_h - params->pad_h;
	const int32_t in_x_origin = ox * params->stride_w - params->pad_w;
	pool_window w;
	w.y0 = in_y_origin > 0 ? in_y_origin : 0;
	w.x0 = in_x_origin > 0 ? in_x_origin : 0;
	w.y1 = in_y_origin + params->filter_h;
	w.x1 = in_x_origin + params->filter_w;
	w.y1 = w.y1 < input_dims->h ? w.y1 : input_dims->h;
	w.x1 = w.x1 < input_dims->w ? w.x1 : input_dims->w;
	return w;
}

fqt_status fqt_average_pool2d_forward(const fqt_pool_params *params, const fqt_dims *input_dims,
				      const int8_t *input, const fqt_dims *output_dims,
				      int8_t *output)
{
	if (!pool_arguments_ok(params, input_dims, input, output_dims, output)) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_w = input_dims->w;
	const int32_t depth = input_dims->c;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch =
			input + (size_t)b * (size_t)input_dims->h * (size_t)in_w * (size_t)depth;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const pool_window w = clip_window(params, input_dims, oy, ox);
				if (w.y1 <= w.y0 || w.x1 <= w.x0) {
					/* An empty window: TFLM fails the op here. */
					return FQT_ERR_ARGUMENT;
				}
				const int32_t count = (w.y1 - w.y0) * (w.x1 - w.x0);
				for (int32_t c = 0; c < depth; ++c) {
					int32_t acc = 0;
					for (int32_t y = w.y0; y < w.y1; ++y) {
						for (int32_t x = w.x0; x < w.x1; ++x) {
							acc += in_batch[((size_t)y * (size_t)in_w +
									 (size_t)x) *
										(size_t)depth +
									(size_t)c];
						}
					}
					/* Round half away from zero, as TFLM. */
					acc = acc > 0 ? (acc + count / 2) / count
						      : (acc - count / 2) / count;
					*out++ = (int8_t)fqt_clamp_s32(acc, params->act_min,
								       params->act_max);
				}
			}
		}
	}
	return FQT_OK;
}

fqt_status fqt_max_pool2d_forward(const fqt_pool_params *params, const fqt_dims *input_dims,
				  const int8_t *input, const fqt_dims *output_dims, int8_t *output)
{
	if (!pool_arguments_ok(params, input_dims, input, output_dims, output)) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_w = input_dims->w;
	const int32_t depth = input_dims->c;
	int8_t *out = output;
	for (int32_t b = 0; b < output_dims->n; ++b) {
		const int8_t *in_batch =
			input + (size_t)b * (size_t)input_dims->h * (size_t)in_w * (size_t)depth;
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const pool_window w = clip_window(params, input_dims, oy, ox);
				for (int32_t c = 0; c < depth; ++c) {
					int32_t max = INT8_MIN; /* an empty window gives -128 */
					for (int32_t y = w.y0; y < w.y1; ++y) {
						for (int32_t x = w.x0; x < w.x1; ++x) {
							const int32_t v =
								in_batch[((size_t)y * (size_t)in_w +
									  (size_t)x) *
										 (size_t)depth +
									 (size_t)c];
							max = v > max ? v : max;
						}
					}
					*out++ = (int8_t)fqt_clamp_s32(max, params->act_min,
								       params->act_max);
				}
			}
		}
	}
	return FQT_OK;
}

/* ---- backward (docs/training-semantics.md 5.4, 5.5) ------------------------------------ */

#define FQT_AVG_RECIPROCAL_BITS 16

fqt_status fqt_average_pool2d_backward(const fqt_pool_params *params, const fqt_dims *input_dims,
				       const fqt_dims *output_dims, const int8_t *err,
				       int32_t *acc)
{
	if (params == NULL || input_dims == NULL || output_dims == NULL || err == NULL ||
	    acc == NULL || input_dims->c != output_dims->c) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_w = input_dims->w, depth = input_dims->c;
	memset(acc, 0, (size_t)input_dims->h * (size_t)in_w * (size_t)depth * sizeof(int32_t));
	for (int32_t oy = 0; oy < output_dims->h; ++oy) {
		for (int32_t ox = 0; ox < output_dims->w; ++ox) {
			const pool_window w = clip_window(params, input_dims, oy, ox);
			if (w.y1 <= w.y0 || w.x1 <= w.x0) {
				return FQT_ERR_ARGUMENT;
			}
			const int32_t n = (w.y1 - w.y0) * (w.x1 - w.x0);
			const int32_t r = ((1 << FQT_AVG_RECIPROCAL_BITS) + n / 2) / n;
			const int8_t *e = err + ((size_t)oy * (size_t)output_dims->w + (size_t)ox) *
							(size_t)depth;
			for (int32_t iy = w.y0; iy < w.y1; ++iy) {
				for (int32_t ix = w.x0; ix < w.x1; ++ix) {
					int32_t *a = acc + ((size_t)iy * (size_t)in_w + (size_t)ix) *
								   (size_t)depth;
					for (int32_t c = 0; c < depth; ++c) {
						a[c] += (int32_t)e[c] * r;
					}
				}
			}
		}
	}
	return FQT_OK;
}

fqt_status fqt_max_pool2d_backward(const fqt_pool_params *params, const fqt_dims *input_dims,
				   const int8_t *input, const fqt_dims *output_dims,
				   const int8_t *err, int32_t *acc)
{
	if (params == NULL || input_dims == NULL || input == NULL || output_dims == NULL ||
	    err == NULL || acc == NULL || input_dims->c != output_dims->c) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_w = input_dims->w, depth = input_dims->c;
	memset(acc, 0, (size_t)input_dims->h * (size_t)in_w * (size_t)depth * sizeof(int32_t));
	for (int32_t oy = 0; oy < output_dims->h; ++oy) {
		for (int32_t ox = 0; ox < output_dims->w; ++ox) {
			const pool_window w = clip_window(params, input_dims, oy, ox);
			if (w.y1 <= w.y0 || w.x1 <= w.x0) {
				return FQT_ERR_ARGUMENT;
			}
			for (int32_t c = 0; c < depth; ++c) {
				size_t best_at = ((size_t)w.y0 * (size_t)in_w + (size_t)w.x0) *
							 (size_t)depth +
						 (size_t)c;
				int32_t best = input[best_at];
				for (int32_t iy = w.y0; iy < w.y1; ++iy) {
					for (int32_t ix = w.x0; ix < w.x1; ++ix) {
						const size_t at = ((size_t)iy * (size_t)in_w +
								   (size_t)ix) *
									  (size_t)depth +
								  (size_t)c;
						if (input[at] > best) {
							best = input[at];
							best_at = at;
						}
					}
				}
				acc[best_at] += err[((size_t)oy * (size_t)output_dims->w +
						     (size_t)ox) *
							    (size_t)depth +
						    (size_t)c];
			}
		}
	}
	return FQT_OK;
}

/* Section 5.4 / 5.5 without the int32 scratch, for windows that do not overlap (each input
 * element lies in at most one window): the element's sum is its window's one term, so the
 * exact max |acc| is the max over the windows' terms and the int8 errors are written
 * directly, identical to quantize_error of the int32 sums. Two passes: max, then write. */
static int32_t pool_term(const fqt_pool_params *params, const fqt_dims *input_dims,
			 const int8_t *input, const pool_window *w, int32_t c, int8_t e, int avg,
			 size_t *at)
{
	const int32_t in_w = input_dims->w, depth = input_dims->c;
	*at = ((size_t)w->y0 * (size_t)in_w + (size_t)w->x0) * (size_t)depth + (size_t)c;
	if (avg) {
		const int32_t n = (w->y1 - w->y0) * (w->x1 - w->x0);
		return (int32_t)e * (((1 << FQT_AVG_RECIPROCAL_BITS) + n / 2) / n);
	}
	int32_t best = input[*at];
	for (int32_t iy = w->y0; iy < w->y1; ++iy) {
		for (int32_t ix = w->x0; ix < w->x1; ++ix) {
			const size_t a = ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)depth +
					 (size_t)c;
			if (input[a] > best) {
				best = input[a];
				*at = a;
			}
		}
	}
	(void)params;
	return e;
}

int fqt_pool2d_windows_disjoint(const fqt_pool_params *params, const fqt_dims *output_dims)
{
	return (output_dims->h == 1 || params->stride_h >= params->filter_h) &&
	       (output_dims->w == 1 || params->stride_w >= params->filter_w);
}

fqt_status fqt_pool2d_backward_s8(const fqt_pool_params *params, int avg,
				  const fqt_dims *input_dims, const int8_t *input,
				  const fqt_dims *output_dims, const int8_t *err, int32_t err_exp,
				  int fixed, int8_t *out, int32_t *out_exp)
{
	if (params == NULL || input_dims == NULL || (input == NULL && !avg) ||
	    output_dims == NULL || err == NULL || out == NULL || out_exp == NULL ||
	    input_dims->c != output_dims->c || !fqt_pool2d_windows_disjoint(params, output_dims)) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t depth = input_dims->c;
	uint64_t m = 0;
	for (int pass = 0; pass < 2; ++pass) {
		int r = 0;
		if (pass == 1) {
			r = fqt_error_shift(m, avg ? err_exp - FQT_AVG_RECIPROCAL_BITS : err_exp,
					    fixed, out_exp);
			memset(out, 0, (size_t)input_dims->h * (size_t)input_dims->w * (size_t)depth);
		}
		for (int32_t oy = 0; oy < output_dims->h; ++oy) {
			for (int32_t ox = 0; ox < output_dims->w; ++ox) {
				const pool_window w = clip_window(params, input_dims, oy, ox);
				if (w.y1 <= w.y0 || w.x1 <= w.x0) {
					return FQT_ERR_ARGUMENT;
				}
				const int8_t *e = err + ((size_t)oy * (size_t)output_dims->w +
							 (size_t)ox) * (size_t)depth;
				for (int32_t c = 0; c < depth; ++c) {
					size_t at;
					const int32_t v = pool_term(params, input_dims, input, &w, c,
								    e[c], avg, &at);
					if (pass == 0) {
						const uint64_t a = (uint64_t)(v < 0 ? -(int64_t)v : v);
						m = a > m ? a : m;
						continue;
					}
					const int8_t q = fqt_error_quantize_one(v, fixed, r);
					if (!avg) {
						out[at] = q;
						continue;
					}
					for (int32_t iy = w.y0; iy < w.y1; ++iy) {
						for (int32_t ix = w.x0; ix < w.x1; ++ix) {
							out[((size_t)iy * (size_t)input_dims->w +
							     (size_t)ix) * (size_t)depth +
							    (size_t)c] = q;
						}
					}
				}
			}
		}
	}
	return FQT_OK;
}
