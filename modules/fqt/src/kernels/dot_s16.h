/*
 * Dot products of int16 rows, the inner loop of the weight gradients shaped as matrix
 * products (kernels/conv2d.c, kernels/depthwise_conv2d.c; docs/training-semantics.md 5.2).
 * Rows have an even length and start 4-byte aligned, so one 32-bit word holds two
 * elements: with the DSP extension each SMLAD does two multiply-accumulates, and a 2x2
 * block of rows (as CMSIS-NN's arm_nn_mat_mult_nt_t_s8 blocks its rows) loads four words
 * for four SMLADs. The caller guarantees that no sum leaves int32 (SMLAD wraps), so every
 * path gives the exact integer sum.
 */
#ifndef FQT_DOT_S16_H_
#define FQT_DOT_S16_H_

#include <stdint.h>
#include <string.h>

#include "fqt/config.h"
#include "fqt/kernels.h"

#if FQT_SIMD_DSP
#include <arm_acle.h>
#endif

/* Length of a row padded to a whole number of int16 pairs. */
static inline int32_t fqt_s16_pairs_len(int32_t n)
{
	return (n + 1) & ~1;
}

#if FQT_SIMD_DSP
static inline int16x2_t fqt_load_s16x2(const int16_t *p)
{
	uint32_t w;
	memcpy(&w, p, sizeof(w));
	return (int16x2_t)w;
}
#endif

/* s[0] = a0.b0, s[1] = a0.b1, s[2] = a1.b0, s[3] = a1.b1 over `len` (even) elements. */
static inline void fqt_dot_s16_2x2(const int16_t *a0, const int16_t *a1, const int16_t *b0,
				   const int16_t *b1, int32_t len, int32_t s[4])
{
	int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
#if FQT_SIMD_DSP
	for (int32_t k = 0; k < len; k += 2) {
		const int16x2_t x0 = fqt_load_s16x2(a0 + k);
		const int16x2_t x1 = fqt_load_s16x2(a1 + k);
		const int16x2_t y0 = fqt_load_s16x2(b0 + k);
		const int16x2_t y1 = fqt_load_s16x2(b1 + k);
		s00 = __smlad(x0, y0, s00);
		s01 = __smlad(x0, y1, s01);
		s10 = __smlad(x1, y0, s10);
		s11 = __smlad(x1, y1, s11);
	}
#else
	for (int32_t k = 0; k < len; ++k) {
		s00 += (int32_t)a0[k] * b0[k];
		s01 += (int32_t)a0[k] * b1[k];
		s10 += (int32_t)a1[k] * b0[k];
		s11 += (int32_t)a1[k] * b1[k];
	}
#endif
	s[0] = s00;
	s[1] = s01;
	s[2] = s10;
	s[3] = s11;
}

/* s[0] = a.b0, s[1] = a.b1 over `len` (even) elements. */
static inline void fqt_dot_s16_1x2(const int16_t *a, const int16_t *b0, const int16_t *b1,
				   int32_t len, int32_t s[2])
{
	int32_t s0 = 0, s1 = 0;
#if FQT_SIMD_DSP
	for (int32_t k = 0; k < len; k += 2) {
		const int16x2_t x = fqt_load_s16x2(a + k);
		s0 = __smlad(x, fqt_load_s16x2(b0 + k), s0);
		s1 = __smlad(x, fqt_load_s16x2(b1 + k), s1);
	}
#else
	for (int32_t k = 0; k < len; ++k) {
		s0 += (int32_t)a[k] * b0[k];
		s1 += (int32_t)a[k] * b1[k];
	}
#endif
	s[0] = s0;
	s[1] = s1;
}

/* s[r] = a.b_r for r = 0..2 over `len` (even) elements; b_r may start at any int16 (the
 * DSP path's word loads are unaligned LDRs, allowed on M4/M7). */
static inline void fqt_dot_s16_1x3(const int16_t *a, const int16_t *b0, const int16_t *b1,
				   const int16_t *b2, int32_t len, int32_t s[3])
{
	int32_t s0 = 0, s1 = 0, s2 = 0;
#if FQT_SIMD_DSP
	for (int32_t k = 0; k < len; k += 2) {
		const int16x2_t x = fqt_load_s16x2(a + k);
		s0 = __smlad(x, fqt_load_s16x2(b0 + k), s0);
		s1 = __smlad(x, fqt_load_s16x2(b1 + k), s1);
		s2 = __smlad(x, fqt_load_s16x2(b2 + k), s2);
	}
#else
	for (int32_t k = 0; k < len; ++k) {
		s0 += (int32_t)a[k] * b0[k];
		s1 += (int32_t)a[k] * b1[k];
		s2 += (int32_t)a[k] * b2[k];
	}
#endif
	s[0] = s0;
	s[1] = s1;
	s[2] = s2;
}

/* s[r] = a.(b + r) for r = 0..2 over `len` (even) elements: three adjacent taps of one
 * filter row in a padded image. The DSP path takes four elements a pass: two words of a
 * and five (unaligned) words of b, b[0..1] .. b[4..5], shared by the three taps' SMLADs. */
static inline void fqt_dot_s16_1x3_adjacent(const int16_t *a, const int16_t *b, int32_t len,
					    int32_t s[3])
{
	int32_t s0 = 0, s1 = 0, s2 = 0;
#if FQT_SIMD_DSP
	const int16_t *end4 = a + (len & ~3);
	while (a != end4) {
		const int16x2_t a01 = fqt_load_s16x2(a), a23 = fqt_load_s16x2(a + 2);
		const int16x2_t b01 = fqt_load_s16x2(b), b12 = fqt_load_s16x2(b + 1);
		const int16x2_t b23 = fqt_load_s16x2(b + 2), b34 = fqt_load_s16x2(b + 3);
		const int16x2_t b45 = fqt_load_s16x2(b + 4);
		s0 = __smlad(a01, b01, s0);
		s1 = __smlad(a01, b12, s1);
		s2 = __smlad(a01, b23, s2);
		s0 = __smlad(a23, b23, s0);
		s1 = __smlad(a23, b34, s1);
		s2 = __smlad(a23, b45, s2);
		a += 4;
		b += 4;
	}
	if ((len & 2) != 0) {
		const int16x2_t a01 = fqt_load_s16x2(a);
		s0 = __smlad(a01, fqt_load_s16x2(b), s0);
		s1 = __smlad(a01, fqt_load_s16x2(b + 1), s1);
		s2 = __smlad(a01, fqt_load_s16x2(b + 2), s2);
	}
#else
	for (int32_t k = 0; k < len; ++k) {
		s0 += (int32_t)a[k] * b[k];
		s1 += (int32_t)a[k] * b[k + 1];
		s2 += (int32_t)a[k] * b[k + 2];
	}
#endif
	s[0] = s0;
	s[1] = s1;
	s[2] = s2;
}

/* s[r] = a.(b0 + r), s[3 + r] = a.(b1 + r) for r = 0..2 over `len` (even) elements: two
 * filter rows of three adjacent taps, a's words shared by six SMLADs (DSP: four elements a
 * pass). */
static inline void fqt_dot_s16_2x3_adjacent(const int16_t *a, const int16_t *b0,
					    const int16_t *b1, int32_t len, int32_t s[6])
{
	int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0;
#if FQT_SIMD_DSP
	const int16_t *end4 = a + (len & ~3);
	while (a != end4) {
		const int16x2_t a01 = fqt_load_s16x2(a), a23 = fqt_load_s16x2(a + 2);
		int16x2_t u = fqt_load_s16x2(b0), v = fqt_load_s16x2(b0 + 2);
		s0 = __smlad(a01, u, s0);
		s2 = __smlad(a01, v, s2);
		s0 = __smlad(a23, v, s0);
		u = fqt_load_s16x2(b0 + 1);
		s1 = __smlad(a01, u, s1);
		u = fqt_load_s16x2(b0 + 3);
		s1 = __smlad(a23, u, s1);
		u = fqt_load_s16x2(b0 + 4);
		s2 = __smlad(a23, u, s2);
		u = fqt_load_s16x2(b1);
		v = fqt_load_s16x2(b1 + 2);
		s3 = __smlad(a01, u, s3);
		s5 = __smlad(a01, v, s5);
		s3 = __smlad(a23, v, s3);
		u = fqt_load_s16x2(b1 + 1);
		s4 = __smlad(a01, u, s4);
		u = fqt_load_s16x2(b1 + 3);
		s4 = __smlad(a23, u, s4);
		u = fqt_load_s16x2(b1 + 4);
		s5 = __smlad(a23, u, s5);
		a += 4;
		b0 += 4;
		b1 += 4;
	}
	if ((len & 2) != 0) {
		const int16x2_t a01 = fqt_load_s16x2(a);
		s0 = __smlad(a01, fqt_load_s16x2(b0), s0);
		s1 = __smlad(a01, fqt_load_s16x2(b0 + 1), s1);
		s2 = __smlad(a01, fqt_load_s16x2(b0 + 2), s2);
		s3 = __smlad(a01, fqt_load_s16x2(b1), s3);
		s4 = __smlad(a01, fqt_load_s16x2(b1 + 1), s4);
		s5 = __smlad(a01, fqt_load_s16x2(b1 + 2), s5);
	}
#else
	for (int32_t k = 0; k < len; ++k) {
		s0 += (int32_t)a[k] * b0[k];
		s1 += (int32_t)a[k] * b0[k + 1];
		s2 += (int32_t)a[k] * b0[k + 2];
		s3 += (int32_t)a[k] * b1[k];
		s4 += (int32_t)a[k] * b1[k + 1];
		s5 += (int32_t)a[k] * b1[k + 2];
	}
#endif
	s[0] = s0;
	s[1] = s1;
	s[2] = s2;
	s[3] = s3;
	s[4] = s4;
	s[5] = s5;
}

/* ---- the rows: errors to channel x position, input taps to tap x position ---- */

/* E[j][p] = err[p][kept[j]]; rows up to an even count, and the pad column, are 0. */
static inline void fqt_transpose_errors_s16(const int8_t *err, int32_t positions, int32_t out_c,
					    const uint16_t *kept, int32_t n_kept, int32_t p2,
					    int16_t *e_t)
{
	memset(e_t, 0, 2u * (size_t)p2 * (size_t)fqt_s16_pairs_len(n_kept));
	for (int32_t j = 0; j < n_kept; ++j) {
		const int8_t *e = err + kept[j];
		int16_t *row = e_t + (size_t)j * (size_t)p2;
		for (int32_t p = 0; p < positions; ++p) {
			row[p] = e[(size_t)p * (size_t)out_c];
		}
	}
}

/* One input tap (ky, kx) of channel i over the output positions, the offset folded in:
 * row[p] = x[iy][ix][i] + offset for output position p. Only the in-image entries are
 * written: the caller zeroes the rows once (padding taps and the pad column p2 - 1 of an
 * odd position count stay 0), since which entries are padding depends on the tap alone. */
static inline void fqt_tap_row_s16(const fqt_conv_params *params, const fqt_dims *input_dims,
				   const int8_t *input, const fqt_dims *output_dims, int32_t ky,
				   int32_t kx, int32_t i, int32_t p2, int16_t *row)
{
	const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
	const int32_t out_w = output_dims->w;
	const int32_t x0 = params->dilation_w * kx - params->pad_w; /* ix of ox = 0 */
	/* The columns whose tap is inside the image, [lo, hi): the same on every row. */
	int32_t lo = 0, hi = out_w;
	while (lo < out_w && lo * params->stride_w + x0 < 0) {
		++lo;
	}
	while (hi > lo && (hi - 1) * params->stride_w + x0 >= in_w) {
		--hi;
	}
	const size_t step = (size_t)params->stride_w * (size_t)in_c;
	const int16_t offset = (int16_t)params->input_offset;
	(void)p2;
	for (int32_t oy = 0; oy < output_dims->h; ++oy) {
		const int32_t iy = oy * params->stride_h - params->pad_h + params->dilation_h * ky;
		int16_t *dst = row + (size_t)oy * (size_t)out_w;
		if (iy < 0 || iy >= in_h || lo == hi) {
			continue;
		}
		const int8_t *src = input + ((size_t)iy * (size_t)in_w +
					     (size_t)(lo * params->stride_w + x0)) *
						    (size_t)in_c +
				    (size_t)i;
		for (int32_t ox = lo; ox < hi; ++ox, src += step) {
			dst[ox] = (int16_t)(*src + offset);
		}
	}
}

#endif /* FQT_DOT_S16_H_ */
