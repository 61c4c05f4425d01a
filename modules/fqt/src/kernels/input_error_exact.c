/* The exact int64 input-error path of the weighted layers: input_error_exact.h. */
#include "input_error_exact.h"

#include <stddef.h>
#include <string.h>

#include "kernels_internal.h"
#include "quant.h"

#define FQT_GATHER_CHUNK 16

static int32_t fold_g(int32_t e, int32_t m, int sh)
{
	return fqt_multiply_by_quantized_multiplier(e * (1 << FQT_ERROR_FOLD_BITS), m, sh);
}

/* The bound without reading errors or weights: if every |s_w| < 2^P, each fold multiplier
 * is below 1, so |g| <= 128 * 2^8 (after the two roundings) and |w| <= 128 give every term
 * at most 128 * (2^15 + 1). |s| ordered as the integers of its bits (NaN, inf: no). */
static uint64_t worst_case_bound(const fqt_input_error_job *j, int32_t taps, int32_t dm)
{
	uint32_t mx = 0;
	for (uint32_t c = 0; c < j->scale_count; ++c) {
		uint32_t u;
		memcpy(&u, (const uint8_t *)j->scales + 4u * c, sizeof(u));
		u &= 0x7FFFFFFFu;
		mx = u > mx ? u : mx;
	}
	/* 2^P as float bits; P outside the normal range: no quick bound */
	if (mx >= 0x7F800000u || j->p < -125 || j->p > 127) {
		return UINT64_MAX;
	}
	if (mx >= (uint32_t)(j->p + 127) << 23) {
		return UINT64_MAX;
	}
	const int32_t n = j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D ? dm : j->n_kept;
	return (uint64_t)taps * (uint64_t)n * 128u * (((uint64_t)1 << 15) + 1u);
}

uint64_t fqt_input_error_bound(const fqt_input_error_job *j)
{
	{
		const int32_t t = j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED ? 1 : j->wd.h * j->wd.w;
		const int32_t d = j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D ? j->cp->depth_multiplier
									       : 1;
		const uint64_t quick = worst_case_bound(j, t, d);
		if (quick <= (uint64_t)INT32_MAX) {
			return quick;
		}
	}
	const int32_t positions = j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED ? 1 : j->od.h * j->od.w;
	const int32_t taps = j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED ? 1 : j->wd.h * j->wd.w;
	const int32_t dm = j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D ? j->cp->depth_multiplier : 1;
	uint64_t total = 0;
	for (int32_t k = 0; k < j->n_kept; ++k) {
		const int32_t o = j->kept[k];
		int32_t emax = 0;
		for (int32_t q = 0; q < positions; ++q) {
			const int32_t v = j->e[(size_t)q * (size_t)j->n_ch + (size_t)o];
			emax = (v < 0 ? -v : v) > emax ? (v < 0 ? -v : v) : emax;
		}
		int32_t wmax = 0;
		if (j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D) {
			for (int32_t q = 0; q < taps; ++q) {
				const int32_t v = j->w[(size_t)q * (size_t)j->n_ch + (size_t)o];
				wmax = (v < 0 ? -v : v) > wmax ? (v < 0 ? -v : v) : wmax;
			}
		} else {
			const size_t row = j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED
						   ? (size_t)j->in_count
						   : (size_t)taps * (size_t)j->id.c;
			for (size_t q = 0; q < row; ++q) {
				const int32_t v = j->w[(size_t)o * row + q];
				wmax = (v < 0 ? -v : v) > wmax ? (v < 0 ? -v : v) : wmax;
			}
		}
		int32_t m;
		int sh;
		fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
		const int32_t g = fold_g(emax, m, sh);
		const uint64_t term = (uint64_t)taps * (uint64_t)(g + 1) * (uint64_t)wmax;
		if (j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D) {
			/* an input channel receives from its DM output channels only */
			total = term > total ? term : total;
		} else {
			total += term;
		}
	}
	return j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D ? total * (uint64_t)dm : total;
}

/* v[0..nc) = the exact input errors of channels c0.. at input position pos (FC: of
 * elements c0..). */
static void gather(const fqt_input_error_job *j, int32_t pos, int32_t c0, int32_t nc, int64_t *v)
{
	for (int32_t c = 0; c < nc; ++c) {
		v[c] = 0;
	}
	if (j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED) {
		for (int32_t k = 0; k < j->n_kept; ++k) {
			const int32_t o = j->kept[k];
			int32_t m;
			int sh;
			fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
			const int64_t g = fold_g(j->e[o], m, sh);
			const int8_t *w = j->w + (size_t)o * (size_t)j->in_count + (size_t)c0;
			for (int32_t c = 0; c < nc; ++c) {
				v[c] += (int64_t)w[c] * g;
			}
		}
		return;
	}
	const fqt_conv_params *cp = j->cp;
	const int32_t iy = pos / j->id.w, ix = pos % j->id.w;
	const int32_t k_h = j->wd.h, k_w = j->wd.w, in_c = j->id.c;
	const int dw = j->kind == FQT_INPUT_ERROR_DEPTHWISE_CONV2D;
	const int32_t dm = dw ? cp->depth_multiplier : 1;
	for (int32_t k = 0; k < j->n_kept; ++k) {
		const int32_t o = j->kept[k];
		if (dw && (o / dm < c0 || o / dm >= c0 + nc)) {
			continue;
		}
		int32_t m;
		int sh;
		fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
		for (int32_t ky = 0; ky < k_h; ++ky) {
			const int32_t ty = iy + cp->pad_h - cp->dilation_h * ky;
			if (ty < 0 || ty % cp->stride_h != 0 || ty / cp->stride_h >= j->od.h) {
				continue;
			}
			const int32_t oy = ty / cp->stride_h;
			for (int32_t kx = 0; kx < k_w; ++kx) {
				const int32_t tx = ix + cp->pad_w - cp->dilation_w * kx;
				if (tx < 0 || tx % cp->stride_w != 0 || tx / cp->stride_w >= j->od.w) {
					continue;
				}
				const int32_t ox = tx / cp->stride_w;
				const int32_t ev = j->e[((size_t)oy * (size_t)j->od.w + (size_t)ox) *
							      (size_t)j->n_ch +
						      (size_t)o];
				if (ev == 0) {
					continue;
				}
				const int64_t g = fold_g(ev, m, sh);
				if (dw) {
					v[o / dm - c0] += (int64_t)j->w[((size_t)ky * (size_t)k_w +
									 (size_t)kx) *
										(size_t)j->n_ch +
									(size_t)o] *
							  g;
					continue;
				}
				const int8_t *w = j->w + (((size_t)o * (size_t)k_h + (size_t)ky) *
								  (size_t)k_w +
							  (size_t)kx) *
								 (size_t)in_c +
						  (size_t)c0;
				for (int32_t c = 0; c < nc; ++c) {
					v[c] += (int64_t)w[c] * g;
				}
			}
		}
	}
}

/* Both passes over every element: pass 0 the exact max (and sat32 into acc when acc is
 * given), pass 1 (when acc is NULL or the max left int32) the int8 values into out. */
static int exact_passes(const fqt_input_error_job *j, int32_t *acc, int8_t *out, int32_t *base,
			int fixed)
{
	const int fc = j->kind == FQT_INPUT_ERROR_FULLY_CONNECTED;
	const int32_t positions = fc ? 1 : j->id.h * j->id.w;
	const int32_t depth = fc ? j->in_count : j->id.c;
	int64_t v[FQT_GATHER_CHUNK];
	uint64_t mx = 0;
	int r = 0;
	int32_t exponent = *base;
	for (int pass = 0; pass < 2; ++pass) {
		for (int32_t q = 0; q < positions; ++q) {
			for (int32_t c0 = 0; c0 < depth; c0 += FQT_GATHER_CHUNK) {
				const int32_t nc = depth - c0 < FQT_GATHER_CHUNK ? depth - c0
										 : FQT_GATHER_CHUNK;
				gather(j, q, c0, nc, v);
				const size_t at = (size_t)q * (size_t)depth + (size_t)c0;
				for (int32_t c = 0; c < nc; ++c) {
					if (pass == 0) {
						const uint64_t av =
							(uint64_t)(v[c] < 0 ? -v[c] : v[c]);
						mx = av > mx ? av : mx;
						if (acc != NULL) {
							acc[at + (size_t)c] =
								(int32_t)fqt_sat32_64(v[c]);
						}
					} else if (acc != NULL) {
						acc[at + (size_t)c] =
							fqt_error_quantize_one(v[c], fixed, r);
					} else {
						out[at + (size_t)c] =
							fqt_error_quantize_one(v[c], fixed, r);
					}
				}
			}
		}
		if (pass == 0) {
			if (acc != NULL && mx <= (uint64_t)INT32_MAX) {
				return 0;
			}
			r = fqt_error_shift(mx, *base, fixed, &exponent);
		}
	}
	*base = exponent;
	return 1;
}

void fqt_input_error_exact(const fqt_input_error_job *j, int32_t *acc, int32_t *base, int fixed)
{
	(void)exact_passes(j, acc, NULL, base, fixed);
}

void fqt_input_error_exact_s8(const fqt_input_error_job *j, int32_t base, int fixed, int8_t *out,
			      int32_t *exponent)
{
	(void)exact_passes(j, NULL, out, &base, fixed);
	*exponent = base;
}
