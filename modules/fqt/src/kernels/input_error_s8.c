/*
 * The lean plan's input errors of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
 * (docs/training-semantics.md 5.3, docs/memory-plan.md): the int8 error and its exponent,
 * quantize_error of the same exact int32 sums as fqt_*_backward_input, with no int32
 * tensor. The sums are made a chunk at a time (FQT_IE_CHUNK int32: whole channel vectors
 * of a run of positions of one input row; FC: a run of elements) in the caller's scratch,
 * twice: pass 0 takes the exact max |acc|, pass 1 recomputes each chunk and writes its
 * int8 values (fqt_error_sink, error_quant.c). With fixed error scaling the shift needs no
 * max, so one pass. Each chunk gathers the terms of its elements only, so the two passes
 * cost twice the scatter's multiply-accumulates (a chunk's error rows are folded again, a
 * few per tap). The golden model has no twin: the integers are golden/conv2d.py's etc.
 */
#include "input_error_s8.h"

#include <string.h>

#include "dot_s8.h"
#include "dw_input_error.h"
#include "kernels_internal.h"
#include "quant.h"

/* Output index range [lo, hi] whose taps (stride s, dilation d, k taps, padding pad) can
 * reach input coordinates [i0, i1); lo > hi when none. */
static void reach(int32_t i0, int32_t i1, int32_t s, int32_t d, int32_t k, int32_t pad,
		  int32_t out, int32_t *lo, int32_t *hi)
{
	const int32_t a = i0 + pad - d * (k - 1);
	const int32_t b = i1 - 1 + pad;
	*lo = a <= 0 ? 0 : (a + s - 1) / s;
	*hi = b < 0 ? -1 : (b / s < out - 1 ? b / s : out - 1);
}

/* ---- CONV_2D ------------------------------------------------------------------------ */
size_t fqt_conv2d_backward_input_s8_scratch_size(const fqt_dims *input_dims,
						 const fqt_dims *output_dims)
{
	const int32_t cols = fqt_ie_chunk_columns(input_dims->w, input_dims->c);
	return 12u * (size_t)output_dims->c + 4u * (size_t)cols * (size_t)input_dims->c;
}

typedef struct conv_ie {
	const fqt_conv_params *p;
	const fqt_dims *id, *fd, *od;
	const int8_t *filter, *err;
	const int32_t *m, *sh, *pairs; /* per output channel: fold and whether g fits int16 */
	const uint16_t *kept;
	int32_t n_kept;
} conv_ie;

/* acc = the sums of input row iy, columns [x0, x1) (every channel). */
static void conv_chunk(const conv_ie *c, int32_t iy, int32_t x0, int32_t x1, int32_t *acc)
{
	const fqt_conv_params *p = c->p;
	const int32_t in_c = c->id->c, k_h = c->fd->h, k_w = c->fd->w;
	const int32_t out_w = c->od->w, out_c = c->od->c;
	const size_t taps = (size_t)k_h * (size_t)k_w;
	const int32_t n4 = FQT_SIMD_DSP ? (in_c & ~3) : 0;
	int32_t ox_lo, ox_hi;
	reach(x0, x1, p->stride_w, p->dilation_w, k_w, p->pad_w, out_w, &ox_lo, &ox_hi);
	memset(acc, 0, (size_t)(x1 - x0) * (size_t)in_c * sizeof(int32_t));
	for (int32_t j = 0; j < c->n_kept;) {
		/* the pairing of fqt_conv2d_backward_input */
		int32_t o[2] = {c->kept[j], 0};
		int32_t n = 1;
		if (FQT_SIMD_DSP && j + 1 < c->n_kept && c->pairs[o[0]] && c->pairs[c->kept[j + 1]]) {
			o[1] = c->kept[j + 1];
			n = 2;
		}
		j += n;
		for (int32_t ky = 0; ky < k_h; ++ky) {
			const int32_t ty = iy + p->pad_h - p->dilation_h * ky;
			if (ty < 0 || ty % p->stride_h != 0 || ty / p->stride_h >= c->od->h) {
				continue;
			}
			const int8_t *er0 = c->err + (size_t)(ty / p->stride_h) * (size_t)out_w *
							     (size_t)out_c;
			for (int32_t ox = ox_lo; ox <= ox_hi; ++ox) {
				const int8_t *er = er0 + (size_t)ox * (size_t)out_c;
				int32_t g[2] = {0, 0};
				for (int32_t r = 0; r < n; ++r) {
					const int32_t e = er[o[r]];
					g[r] = e == 0 ? 0
						      : fqt_requantize(e * (1 << FQT_ERROR_FOLD_BITS),
								       c->m[o[r]], (int)c->sh[o[r]]);
				}
				if ((g[0] | g[1]) == 0) {
					continue;
				}
				for (int32_t kx = 0; kx < k_w; ++kx) {
					const int32_t ix = ox * p->stride_w - p->pad_w + p->dilation_w * kx;
					if (ix < x0 || ix >= x1) {
						continue;
					}
					fqt_conv_scatter_taps(acc + (size_t)(ix - x0) * (size_t)in_c,
							      c->filter, o, g, n,
							      (size_t)ky * (size_t)k_w + (size_t)kx, taps,
							      in_c, n4);
				}
			}
		}
	}
}

fqt_status fqt_conv2d_backward_input_s8(const fqt_conv_params *params, const fqt_dims *input_dims,
					const fqt_dims *filter_dims, const int8_t *filter,
					const void *scales, uint32_t scale_count,
					const fqt_dims *output_dims, const int8_t *err,
					int32_t err_exp, const uint16_t *kept, int32_t n_kept,
					int fixed, int8_t *out, int32_t *out_exp, void *scratch,
					size_t scratch_size)
{
	if (params == NULL || input_dims == NULL || filter_dims == NULL || filter == NULL ||
	    scales == NULL || output_dims == NULL || err == NULL || kept == NULL || out == NULL ||
	    out_exp == NULL || scratch == NULL || ((uintptr_t)scratch % 4u) != 0u ||
	    scratch_size < fqt_conv2d_backward_input_s8_scratch_size(input_dims, output_dims) ||
	    params->stride_h < 1 || params->stride_w < 1) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t out_c = output_dims->c, in_w = input_dims->w, in_c = input_dims->c;
	int32_t *m = (int32_t *)scratch;
	int32_t *sh = m + out_c;
	int32_t *pairs = sh + out_c;
	int32_t *acc = pairs + out_c;
	const int p = fqt_fold_exponent(scales, scale_count);
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int s;
		fqt_fold_multiplier(scales, scale_count, o, p, &m[o], &s);
		sh[o] = s;
		const int32_t hi = fqt_requantize(127 * 256, m[o], s);
		const int32_t lo = fqt_requantize(-128 * 256, m[o], s);
		pairs[o] = hi <= INT16_MAX && lo >= INT16_MIN;
	}
	const conv_ie c = {params, input_dims, filter_dims, output_dims, filter, err,
			   m,      sh,         pairs,       kept,        n_kept};
	const int32_t cols = fqt_ie_chunk_columns(in_w, in_c);
	fqt_error_sink sink;
	for (int pass = fqt_error_sink_begin(&sink, out, fixed,
					     err_exp - FQT_ERROR_FOLD_BITS + p, out_exp);
	     pass < 2; ++pass) {
		for (int32_t iy = 0; iy < input_dims->h; ++iy) {
			for (int32_t x0 = 0; x0 < in_w; x0 += cols) {
				const int32_t x1 = x0 + cols < in_w ? x0 + cols : in_w;
				conv_chunk(&c, iy, x0, x1, acc);
				fqt_error_sink_put(&sink,
						   acc, ((size_t)iy * (size_t)in_w + (size_t)x0) *
								(size_t)in_c,
						   (size_t)(x1 - x0) * (size_t)in_c);
			}
		}
		if (pass == 0) {
			fqt_error_sink_next(&sink);
		}
	}
	return FQT_OK;
}

/* ---- DEPTHWISE_CONV_2D ------------------------------------------------------------- */
size_t fqt_depthwise_conv2d_backward_input_s8_scratch_size(const fqt_conv_params *params,
							   const fqt_dims *input_dims,
							   const fqt_dims *filter_dims,
							   const fqt_dims *output_dims)
{
	const size_t chunk = 4u * (size_t)fqt_ie_chunk_columns(input_dims->w, input_dims->c) *
			     (size_t)input_dims->c;
	if (!dw_ie_gather_applies(params, input_dims, output_dims)) {
		return 8u * (size_t)output_dims->c + chunk;
	}
	const size_t gather = dw_ie_gather_scratch_size(input_dims, filter_dims, output_dims) + chunk;
	/* 3x3: at least the planar path's, one channel's plane at a time (every build plans
	 * the same, as fqt_depthwise_conv2d_backward_input_scratch_size) */
	const size_t planar = dw_ie_planar_applies(input_dims, filter_dims)
				      ? dw_ie_planar_scratch_size(input_dims) +
						4u * (size_t)input_dims->h * (size_t)input_dims->w
				      : 0u;
	return gather > planar ? gather : planar;
}

/* acc = the sums of input row iy, columns [x0, x1), each element gathered from its taps
 * (any depth multiplier, stride, dilation); m[o] = 0 for an unkept channel. */
static void dw_chunk(const fqt_conv_params *p, const fqt_dims *id, const fqt_dims *fd,
		     const fqt_dims *od, const int8_t *filter, const int8_t *err,
		     const int32_t *m, const int32_t *sh, int32_t iy, int32_t x0, int32_t x1,
		     int32_t *acc)
{
	const int32_t in_c = id->c, dm = p->depth_multiplier, out_c = od->c;
	for (int32_t ix = x0; ix < x1; ++ix) {
		for (int32_t i = 0; i < in_c; ++i) {
			int32_t s = 0;
			for (int32_t o = i * dm; o < (i + 1) * dm; ++o) {
				if (m[o] == 0) {
					continue;
				}
				for (int32_t ky = 0; ky < fd->h; ++ky) {
					const int32_t ty = iy + p->pad_h - p->dilation_h * ky;
					if (ty < 0 || ty % p->stride_h != 0 || ty / p->stride_h >= od->h) {
						continue;
					}
					for (int32_t kx = 0; kx < fd->w; ++kx) {
						const int32_t tx = ix + p->pad_w - p->dilation_w * kx;
						if (tx < 0 || tx % p->stride_w != 0 ||
						    tx / p->stride_w >= od->w) {
							continue;
						}
						const size_t q = (size_t)(ty / p->stride_h) * (size_t)od->w +
								 (size_t)(tx / p->stride_w);
						const int32_t e = err[q * (size_t)out_c + (size_t)o];
						if (e != 0) {
							s += (int32_t)filter[((size_t)ky * (size_t)fd->w +
									      (size_t)kx) *
										     (size_t)out_c +
									     (size_t)o] *
							     fqt_requantize(e * (1 << FQT_ERROR_FOLD_BITS),
									    m[o], (int)sh[o]);
						}
					}
				}
			}
			acc[(size_t)(ix - x0) * (size_t)in_c + (size_t)i] = s;
		}
	}
}

fqt_status fqt_depthwise_conv2d_backward_input_s8(
	const fqt_conv_params *params, const fqt_dims *input_dims, const fqt_dims *filter_dims,
	const int8_t *filter, const void *scales, uint32_t scale_count, const fqt_dims *output_dims,
	const int8_t *err, int32_t err_exp, const uint16_t *kept, int32_t n_kept, int fixed,
	int8_t *out, int32_t *out_exp, void *scratch, size_t scratch_size)
{
	if (params == NULL || input_dims == NULL || filter_dims == NULL || filter == NULL ||
	    scales == NULL || output_dims == NULL || err == NULL || kept == NULL || out == NULL ||
	    out_exp == NULL || scratch == NULL || ((uintptr_t)scratch % 4u) != 0u ||
	    params->depth_multiplier < 1 || params->stride_h < 1 || params->stride_w < 1 ||
	    scratch_size < fqt_depthwise_conv2d_backward_input_s8_scratch_size(
				   params, input_dims, filter_dims, output_dims)) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t in_w = input_dims->w, in_c = input_dims->c, out_c = output_dims->c;
	const int32_t cols = fqt_ie_chunk_columns(in_w, in_c);
	const int p = fqt_fold_exponent(scales, scale_count);
	const int gather = dw_ie_gather_applies(params, input_dims, output_dims);
	const size_t head = gather ? dw_ie_gather_scratch_size(input_dims, filter_dims, output_dims)
				   : 8u * (size_t)out_c;
	int32_t *acc = (int32_t *)(void *)((uint8_t *)scratch + head);
	int32_t *m = (int32_t *)scratch;
	int32_t *sh = m + out_c;
	fqt_error_sink sink;
	for (int pass = fqt_error_sink_begin(&sink, out, fixed,
					     err_exp - FQT_ERROR_FOLD_BITS + p, out_exp);
	     pass < 2; ++pass) {
		/* the planar path or the ring gather where they apply (their setups say
		 * whether every g fits) */
		int done = 0;
#if FQT_DW_IE_PLANAR
		done = gather && dw_ie_planar_applies(input_dims, filter_dims) &&
		       dw_ie_planar(params, input_dims, filter, scales, scale_count, p, output_dims,
				    err, kept, n_kept,
				    (int32_t *)(void *)((uint8_t *)scratch +
							dw_ie_planar_scratch_size(input_dims)),
				    scratch, &sink);
#endif
		if (!done && !(gather && dw_ie_gather(params, input_dims, filter_dims, filter,
						      scales, scale_count, p, output_dims, err,
						      kept, n_kept, acc, scratch, &sink, cols))) {
			for (int32_t o = 0; o < out_c; ++o) {
				m[o] = 0;
				sh[o] = 0;
			}
			for (int32_t j = 0; j < n_kept; ++j) {
				int s;
				fqt_fold_multiplier(scales, scale_count, kept[j], p, &m[kept[j]], &s);
				sh[kept[j]] = s;
			}
			for (int32_t iy = 0; iy < input_dims->h; ++iy) {
				for (int32_t x0 = 0; x0 < in_w; x0 += cols) {
					const int32_t x1 = x0 + cols < in_w ? x0 + cols : in_w;
					dw_chunk(params, input_dims, filter_dims, output_dims, filter,
						 err, m, sh, iy, x0, x1, acc);
					fqt_error_sink_put(
						&sink, acc,
						((size_t)iy * (size_t)in_w + (size_t)x0) * (size_t)in_c,
						(size_t)(x1 - x0) * (size_t)in_c);
				}
			}
		}
		if (pass == 0) {
			fqt_error_sink_next(&sink);
		}
	}
	return FQT_OK;
}

/* ---- FULLY_CONNECTED --------------------------------------------------------------- */
size_t fqt_fully_connected_backward_input_s8_scratch_size(int32_t out_depth, int32_t accum_depth)
{
	const int32_t chunk = accum_depth < FQT_IE_CHUNK ? accum_depth : FQT_IE_CHUNK;
	return 4u * (size_t)out_depth + 4u * (size_t)chunk;
}

fqt_status fqt_fully_connected_backward_input_s8(const int8_t *err, int32_t out_depth,
						 int32_t accum_depth, const int8_t *weights,
						 const void *scales, uint32_t scale_count,
						 int32_t err_exp, const uint16_t *kept, int32_t n_kept,
						 int fixed, int8_t *out, int32_t *out_exp, void *scratch,
						 size_t scratch_size)
{
	if (err == NULL || weights == NULL || scales == NULL || kept == NULL || out == NULL ||
	    out_exp == NULL || out_depth < 1 || accum_depth < 1 || scratch == NULL ||
	    ((uintptr_t)scratch % 4u) != 0u || n_kept > out_depth ||
	    scratch_size < fqt_fully_connected_backward_input_s8_scratch_size(out_depth,
									       accum_depth)) {
		return FQT_ERR_ARGUMENT;
	}
	int32_t *g = (int32_t *)scratch; /* the folded error of kept channel j */
	int32_t *acc = g + out_depth;
	const int p = fqt_fold_exponent(scales, scale_count);
	for (int32_t j = 0; j < n_kept; ++j) {
		int32_t m;
		int sh;
		fqt_fold_multiplier(scales, scale_count, kept[j], p, &m, &sh);
		g[j] = fqt_requantize((int32_t)err[kept[j]] * (1 << FQT_ERROR_FOLD_BITS), m, sh);
	}
	fqt_error_sink sink;
	for (int pass = fqt_error_sink_begin(&sink, out, fixed,
					     err_exp - FQT_ERROR_FOLD_BITS + p, out_exp);
	     pass < 2; ++pass) {
		for (int32_t k0 = 0; k0 < accum_depth; k0 += FQT_IE_CHUNK) {
			const int32_t n = accum_depth - k0 < FQT_IE_CHUNK ? accum_depth - k0
									 : FQT_IE_CHUNK;
			memset(acc, 0, (size_t)n * sizeof(int32_t));
			const int8_t *held = NULL; /* a row waiting for its pair (DSP) */
			int32_t held_g = 0;
			for (int32_t j = 0; j < n_kept; ++j) {
				if (g[j] == 0) {
					continue;
				}
				const int8_t *w = weights + (size_t)kept[j] * (size_t)accum_depth +
						  (size_t)k0;
#if FQT_SIMD_DSP
				if (g[j] >= INT16_MIN && g[j] <= INT16_MAX) {
					if (held == NULL) {
						held = w;
						held_g = g[j];
						continue;
					}
					const int32_t n4 = n & ~3;
					fqt_scatter2_s8(acc, held, w,
							(uint32_t)(uint16_t)held_g |
								((uint32_t)(uint16_t)g[j] << 16),
							n4);
					for (int32_t k = n4; k < n; ++k) {
						acc[k] += (int32_t)held[k] * held_g + (int32_t)w[k] * g[j];
					}
					held = NULL;
					continue;
				}
#endif
				for (int32_t k = 0; k < n; ++k) {
					acc[k] += (int32_t)w[k] * g[j];
				}
			}
			for (int32_t k = 0; held != NULL && k < n; ++k) {
				acc[k] += (int32_t)held[k] * held_g;
			}
			fqt_error_sink_put(&sink, acc, (size_t)k0, (size_t)n);
		}
		if (pass == 0) {
			fqt_error_sink_next(&sink);
		}
	}
	return FQT_OK;
}
