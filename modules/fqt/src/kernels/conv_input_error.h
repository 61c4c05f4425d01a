/*
 * The pointwise (1 x 1, stride 1, no padding) CONV_2D input error as a gather over
 * transposed weights (kernels/conv2d.c's fqt_conv2d_backward_input), static inline for that
 * file only. acc[q][i] = sum over kept o of g[q][o] * w[o][i]: the kept rows of the weights
 * are transposed once per call to W^T[i][k] = w[kept[k]][i] (int8, K4 = n_kept rounded up
 * to 4, zero padded) and each position's folded errors g (requantized once per element)
 * form one int16 row in the order 0, 2, 1, 3 per group of four, so that the two SXTB16
 * halves of a weight word meet one word of g each (SMLAD: two MACs an instruction; two input
 * channels per pass share the g loads). A position whose g are all zero gets zeros (the
 * zero-error skipping of the scatter). The sums are the scatter's exact int32 sums (the
 * caller's bound) in another order.
 *
 * The transposed copy lives in the layer's backward scratch and is rebuilt from the live
 * weights at every call, so it is never stale after an update (its cost, in_c * n_kept
 * bytes moved, is one position's MACs).
 */
#ifndef FQT_CONV_INPUT_ERROR_H_
#define FQT_CONV_INPUT_ERROR_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dot_s8.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

static inline int conv_ie_gather_applies(const fqt_conv_params *params, const fqt_dims *id,
					 const fqt_dims *fd, const fqt_dims *od)
{
	return fd->h == 1 && fd->w == 1 && params->stride_h == 1 && params->stride_w == 1 &&
	       params->pad_h == 0 && params->pad_w == 0 && od->h == id->h && od->w == id->w;
}

/* W^T (in_c rows of K4 int8), the g row (K4 int16), multipliers and shifts (int32 per
 * output channel); K4 = out_c rounded up to 4 (any kept subset fits). */
static inline size_t conv_ie_scratch_size(const fqt_conv_params *params, const fqt_dims *id,
					  const fqt_dims *fd, const fqt_dims *od)
{
	if (!conv_ie_gather_applies(params, id, fd, od)) {
		return 0u;
	}
	const size_t k4 = ((size_t)od->c + 3u) & ~(size_t)3u;
	return (size_t)id->c * k4 + 2u * k4 + 8u * (size_t)od->c;
}

/* Dot of W^T rows r0, r1 with the g row over K4 (a multiple of 4). */
static inline void conv_ie_dot2(const int8_t *r0, const int8_t *r1, const int16_t *g,
				int32_t k4, int32_t *s)
{
	int32_t s0 = 0, s1 = 0;
#if FQT_SIMD_DSP
	for (int32_t k = 0; k < k4; k += 4) {
		int16x2_t g02, g13;
		memcpy(&g02, g + k, sizeof(g02));
		memcpy(&g13, g + k + 2, sizeof(g13));
		const uint32_t w0 = fqt_load_u32(r0 + k), w1 = fqt_load_u32(r1 + k);
		s0 = __smlad(__sxtb16((int8x4_t)w0), g02, s0);
		s0 = __smlad(fqt_sxtb16_ror8(w0), g13, s0);
		s1 = __smlad(__sxtb16((int8x4_t)w1), g02, s1);
		s1 = __smlad(fqt_sxtb16_ror8(w1), g13, s1);
	}
#else
	for (int32_t k = 0; k < k4; k += 4) {
		s0 += r0[k] * g[k] + r0[k + 1] * g[k + 2] + r0[k + 2] * g[k + 1] +
		      r0[k + 3] * g[k + 3];
		s1 += r1[k] * g[k] + r1[k + 1] * g[k + 2] + r1[k + 2] * g[k + 1] +
		      r1[k + 3] * g[k + 3];
	}
#endif
	s[0] = s0;
	s[1] = s1;
}

/* The gather; 0 if some kept channel's g can leave int16 (the caller scatters instead). */
static inline int conv_ie_gather(const fqt_dims *id, const int8_t *filter, const void *scales,
				 uint32_t scale_count, int p, const fqt_dims *od,
				 const int8_t *err, const uint16_t *kept, int32_t n_kept,
				 int32_t *acc, void *scratch)
{
	const int32_t in_c = id->c, out_c = od->c, positions = id->h * id->w;
	const int32_t k4 = (n_kept + 3) & ~3;
	const int32_t c4 = (out_c + 3) & ~3;
	int8_t *wt = (int8_t *)scratch;
	int16_t *g = (int16_t *)(void *)(wt + (size_t)in_c * (size_t)c4);
	int32_t *m = (int32_t *)(void *)(g + c4);
	int *sh = (int *)(void *)(m + out_c); /* int: 32 bits on every target of the core */
	for (int32_t k = 0; k < n_kept; ++k) {
		fqt_fold_multiplier(scales, scale_count, kept[k], p, &m[k], &sh[k]);
		const int32_t hi = fqt_requantize(127 * (1 << FQT_ERROR_FOLD_BITS), m[k], sh[k]);
		const int32_t lo = fqt_requantize(-128 * (1 << FQT_ERROR_FOLD_BITS), m[k], sh[k]);
		if (hi > INT16_MAX || lo < INT16_MIN) {
			return 0;
		}
	}
	for (int32_t i = 0; i < in_c; ++i) {
		int8_t *row = wt + (size_t)i * (size_t)k4;
		for (int32_t k = 0; k < k4; ++k) {
			row[k] = k < n_kept ? filter[(size_t)kept[k] * (size_t)in_c + (size_t)i] : 0;
		}
	}
	for (int32_t k = n_kept; k < k4; ++k) {
		g[(k & ~3) + ((k & 1) << 1) + ((k >> 1) & 1)] = 0;
	}
	for (int32_t q = 0; q < positions; ++q) {
		const int8_t *er = err + (size_t)q * (size_t)out_c;
		int32_t *a = acc + (size_t)q * (size_t)in_c;
		int32_t any = 0;
		for (int32_t k = 0; k < n_kept; ++k) {
			const int32_t e = er[kept[k]];
			const int32_t v =
				e == 0 ? 0 : fqt_requantize(e * (1 << FQT_ERROR_FOLD_BITS), m[k], sh[k]);
			g[(k & ~3) + ((k & 1) << 1) + ((k >> 1) & 1)] = (int16_t)v;
			any |= v;
		}
		if (any == 0) {
			memset(a, 0, (size_t)in_c * sizeof(int32_t));
			continue;
		}
		int32_t i = 0;
		for (; i + 2 <= in_c; i += 2) {
			conv_ie_dot2(wt + (size_t)i * (size_t)k4, wt + (size_t)(i + 1) * (size_t)k4, g,
				     k4, a + i);
		}
		if (i < in_c) {
			int32_t s[2];
			const int8_t *r = wt + (size_t)i * (size_t)k4;
			conv_ie_dot2(r, r, g, k4, s);
			a[i] = s[0];
		}
	}
	return 1;
}

#endif /* FQT_CONV_INPUT_ERROR_H_ */
