/*
 * The depthwise weight gradient with stride 1 and dilation 1 (kernels/depthwise_conv2d.c's
 * fqt_depthwise_conv2d_backward_weights), static inline for that file only: per channel one
 * padded image. With the error of channel o laid out at a padded width Wp (columns
 * ox >= out_w zero), tap (ky, kx) of output q = oy * Wp + ox reads the padded input at
 * q + ky * Wp + kx: the gradient of each tap is one contiguous dot product of
 * L = even(out_h * Wp) int16 (the zero error columns cancel the wrap to the next row), three
 * adjacent taps of a filter row (two rows: six) sharing the error's loads.
 *
 * Where the scratch holds four channels' images (depth multiplier 1, four consecutive kept
 * channels), the four are built at once from one word of four channels per input / error
 * element (SXTAB16 / SXTB16 on DSP cores) instead of four strided byte gathers. The sums are
 * exact int32 (the caller's bound); the order of the additions does not change them.
 */
#ifndef FQT_DW_WEIGHT_GRAD_H_
#define FQT_DW_WEIGHT_GRAD_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dot_s16.h"
#include "dot_s8.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

/* The scratch is sized for Wp = out_w + k_w - 1 (the size query has no padding): the error
 * (L), then the image (L + (k_h - 1) * Wp + k_w - 1, even), both int16. */
static inline int32_t dw_wg_full_width(const fqt_dims *fd, const fqt_dims *od)
{
	return od->w + fd->w - 1;
}

static inline size_t dw_wg_padded_scratch_size(const fqt_dims *fd, const fqt_dims *od)
{
	const int32_t wp = dw_wg_full_width(fd, od);
	const int32_t l = fqt_s16_pairs_len(od->h * wp);
	const int32_t x = fqt_s16_pairs_len(l + (fd->h - 1) * wp + fd->w - 1);
	return 2u * (size_t)(l + x);
}

/* The narrowest Wp that works: a tap reading past column Wp - 1 lands in the next row's
 * left padding, whose true input (ix >= in_w) is padding too, when
 * Wp >= max(out_w, pad_w + in_w, out_w + k_w - 1 - pad_w); never wider than the above
 * (pad_w >= 0, the right padding >= 0). KWS: 6 columns instead of 7. */
static inline int32_t dw_wg_tight_width(const fqt_conv_params *params, const fqt_dims *id,
					const fqt_dims *fd, const fqt_dims *od)
{
	const int32_t full = dw_wg_full_width(fd, od);
	if (params->pad_w < 0 || params->pad_w + id->w > full) {
		return full;
	}
	int32_t wp = od->w;
	wp = params->pad_w + id->w > wp ? params->pad_w + id->w : wp;
	const int32_t right = od->w + fd->w - 1 - params->pad_w;
	return right > wp ? right : wp;
}

/* fqt_grad_put of an int32 sum s, in int32 for FIRST and DOWN when |s| < 2^30 (small):
 * RDBPOT(s, shift) = floor((s + 2^(shift-1) - [s < 0]) / 2^shift) and the saturating add
 * (the int64 helper costs a few dozen instructions a tap). */
static void dw_wg_put(const fqt_grad_sink *sink, int32_t *acc, int32_t s, int small)
{
	if (small && sink->mode == FQT_GRAD_FIRST) {
		*acc = s;
	} else if (small && sink->mode == FQT_GRAD_DOWN) {
		const int sh = sink->shift;
		const int32_t q = sh > 0 ? fqt_arithmetic_shift_right(
						   s + ((int32_t)1 << (sh - 1)) - (s < 0), sh)
					 : s;
		*acc = (int32_t)fqt_sat32_64((int64_t)*acc + q);
	} else {
		fqt_grad_put(sink, acc, s);
	}
}

/* dw_wg_put of n sums into n adjacent accumulators: one call a dot pass, not one a tap. */
static void dw_wg_put_run(const fqt_grad_sink *sink, int32_t *acc, const int32_t *s, int32_t n,
			  int small)
{
	if (small && sink->mode == FQT_GRAD_FIRST) {
		for (int32_t k = 0; k < n; ++k) {
			acc[k] = s[k];
		}
		return;
	}
	for (int32_t k = 0; k < n; ++k) {
		dw_wg_put(sink, &acc[k], s[k], small);
	}
}

/* The geometry of the padded images. */
typedef struct dw_wg_geo {
	int32_t wp, l, per;     /* padded width, error length, int16 per channel (error + image) */
	int32_t r0, r1, c0, c1; /* the in-image rectangle of the padded image */
} dw_wg_geo;

/* The gradient row of one channel from its error (e) and image (e + l). */
static inline void dw_wg_taps(const dw_wg_geo *g, const int16_t *e, const fqt_dims *fd,
			      const fqt_grad_sink *sink, int32_t *row, int small)
{
	const int16_t *x = e + g->l;
	const int32_t k_w = fd->w;
	for (int32_t ky = 0; ky < fd->h;) {
		const int16_t *xr = x + (size_t)ky * (size_t)g->wp;
		int32_t *gr = row + (size_t)ky * (size_t)k_w;
		int32_t kx = 0;
		if (ky + 1 < fd->h) {
			/* two filter rows at once */
			for (; kx + 3 <= k_w; kx += 3) {
				int32_t s[6];
				fqt_dot_s16_2x3_adjacent(e, xr + kx, xr + g->wp + kx, g->l, s);
				dw_wg_put_run(sink, &gr[kx], s, 3, small);
				dw_wg_put_run(sink, &gr[k_w + kx], s + 3, 3, small);
			}
			if (kx < k_w) {
				/* the one or two taps left of both rows: the last repeated */
				const int32_t k1 = kx + 1 < k_w ? kx + 1 : kx;
				for (int32_t r = 0; r < 2; ++r) {
					int32_t s[3];
					const int16_t *xq = xr + (size_t)r * (size_t)g->wp;
					fqt_dot_s16_1x3(e, xq + kx, xq + k1, xq + k1, g->l, s);
					dw_wg_put(sink, &gr[r * k_w + kx], s[0], small);
					if (k1 != kx) {
						dw_wg_put(sink, &gr[r * k_w + k1], s[1], small);
					}
				}
			}
			ky += 2;
			continue;
		}
		for (; kx + 3 <= k_w; kx += 3) {
			int32_t s[3];
			fqt_dot_s16_1x3_adjacent(e, xr + kx, g->l, s);
			dw_wg_put_run(sink, &gr[kx], s, 3, small);
		}
		if (kx < k_w) {
			const int32_t k1 = kx + 1 < k_w ? kx + 1 : kx;
			int32_t s[3];
			fqt_dot_s16_1x3(e, xr + kx, xr + k1, xr + k1, g->l, s);
			dw_wg_put(sink, &gr[kx], s[0], small);
			if (k1 != kx) {
				dw_wg_put(sink, &gr[k1], s[1], small);
			}
		}
		ky += 1;
	}
}

#if FQT_SIMD_DSP
/* Four channels' images from words of four channels: rows rows of n words (src_col apart,
 * src_row from row to row) into dst (channel k at dst + k * per, rows dst_row apart), one
 * SXTAB16 pair per word (the offset folded in) and four halfword stores. Own function:
 * inlined into the kernel it spills most of its registers. */
__attribute__((noinline)) static void dw_wg_x4(const int8_t *src, size_t src_col, size_t src_row,
					       int32_t rows, int32_t n, int16_t *dst, size_t dst_row,
					       size_t per, int16_t offset)
{
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)offset) * 0x00010001u);
	for (int32_t r = 0; r < rows; ++r, src += src_row, dst += dst_row) {
		const int8_t *s = src;
		int16_t *d = dst;
		for (int32_t k = 0; k < n; ++k, s += src_col, ++d) {
			const uint32_t w = fqt_load_u32(s);
			const uint32_t p02 = (uint32_t)__sxtab16(off2, (int8x4_t)w);
			const uint32_t p13 = (uint32_t)fqt_sxtab16_ror8(off2, w);
			d[0] = (int16_t)p02;
			d[per] = (int16_t)p13;
			d[2u * per] = (int16_t)(p02 >> 16);
			d[3u * per] = (int16_t)(p13 >> 16);
		}
	}
}

/* The same for the error (no offset), gb[k] += the channel's values. */
__attribute__((noinline)) static void dw_wg_e4(const int8_t *src, size_t src_col, int32_t rows,
					       int32_t n, int16_t *dst, size_t dst_row, size_t per,
					       int32_t gb[4])
{
	int32_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
	for (int32_t r = 0; r < rows; ++r, dst += dst_row) {
		int16_t *d = dst;
		for (int32_t k = 0; k < n; ++k, src += src_col, ++d) {
			const uint32_t w = fqt_load_u32(src);
			const uint32_t p02 = (uint32_t)__sxtb16((int8x4_t)w);
			const uint32_t p13 = (uint32_t)fqt_sxtb16_ror8(w);
			const int32_t v0 = (int16_t)p02, v1 = (int16_t)p13;
			const int32_t v2 = (int32_t)p02 >> 16, v3 = (int32_t)p13 >> 16;
			d[0] = (int16_t)v0;
			d[per] = (int16_t)v1;
			d[2u * per] = (int16_t)v2;
			d[3u * per] = (int16_t)v3;
			g0 += v0;
			g1 += v1;
			g2 += v2;
			g3 += v3;
		}
	}
	gb[0] = g0;
	gb[1] = g1;
	gb[2] = g2;
	gb[3] = g3;
}
#endif

/* Image and error of channels i.. (input) and o.. (error), n = 1 or 4 of them (n = 4: the
 * four channels of one word, i = o), into slots 0..n-1; gb[k] = the bias gradient. */
static inline void dw_wg_build(const dw_wg_geo *g, const fqt_conv_params *params,
			       const fqt_dims *id, const int8_t *input, const fqt_dims *od,
			       const int8_t *err, int32_t i, int32_t o, int32_t n, int build_x,
			       int16_t *scratch, int32_t gb[4])
{
	const int32_t in_c = id->c, out_c = od->c, wp = g->wp;
	const int16_t offset = (int16_t)params->input_offset;
	const size_t per = (size_t)g->per;
	const int8_t *xs = input + ((size_t)(g->r0 - params->pad_h) * (size_t)id->w +
				    (size_t)(g->c0 - params->pad_w)) *
					   (size_t)in_c +
			   (size_t)i;
	int16_t *xd = scratch + (size_t)g->l + (size_t)g->r0 * (size_t)wp + (size_t)g->c0;
	const size_t x_row = (size_t)id->w * (size_t)in_c;
	const int32_t cols = g->c1 - g->c0;
	for (int32_t k = 0; k < 4; ++k) {
		gb[k] = 0;
	}
#if FQT_SIMD_DSP
	if (n == 4) {
		if (build_x && g->r1 > g->r0 && cols > 0) {
			dw_wg_x4(xs, (size_t)in_c, x_row, g->r1 - g->r0, cols, xd, (size_t)wp, per,
				 offset);
		}
		dw_wg_e4(err + o, (size_t)out_c, od->h, od->w, scratch, (size_t)wp, per, gb);
		return;
	}
#endif
	for (int32_t r = g->r0; build_x && r < g->r1; ++r, xs += x_row, xd += wp) {
		const int8_t *src = xs;
		for (int32_t c = 0; c < cols; ++c, src += in_c) {
			for (int32_t k = 0; k < n; ++k) {
				xd[(size_t)k * per + (size_t)c] = (int16_t)(src[k] + offset);
			}
		}
	}
	const int8_t *src = err + o;
	for (int32_t oy = 0; oy < od->h; ++oy) {
		int16_t *e = scratch + (size_t)oy * (size_t)wp;
		for (int32_t ox = 0; ox < od->w; ++ox, src += out_c) {
			for (int32_t k = 0; k < n; ++k) {
				const int32_t v = src[k];
				e[(size_t)k * per + (size_t)ox] = (int16_t)v;
				gb[k] += v;
			}
		}
	}
}

static inline void dw_wg_padded(const fqt_conv_params *params, const fqt_dims *id,
				const int8_t *input, const fqt_dims *fd, const fqt_dims *od,
				const int8_t *err, const uint16_t *kept, int32_t n_kept,
				const fqt_grad_sink *sink, int16_t *scratch, size_t scratch_size,
				int small)
{
	dw_wg_geo g;
	g.wp = dw_wg_tight_width(params, id, fd, od);
	g.l = fqt_s16_pairs_len(od->h * g.wp);
	g.per = g.l + fqt_s16_pairs_len(g.l + (fd->h - 1) * g.wp + fd->w - 1);
	const int32_t hp = od->h + fd->h - 1;
	g.r0 = params->pad_h > 0 ? params->pad_h : 0;
	g.c0 = params->pad_w > 0 ? params->pad_w : 0;
	g.r1 = params->pad_h + id->h < hp ? params->pad_h + id->h : hp;
	g.c1 = params->pad_w + id->w < g.wp ? params->pad_w + id->w : g.wp;
	const int four = params->depth_multiplier == 1 &&
			 8u * (size_t)g.per <= scratch_size;
	/* Zeroed once: every channel writes the same in-image / in-output entries. */
	memset(scratch, 0, 2u * (size_t)g.per * (four ? 4u : 1u));
	int32_t built = -1; /* the input channel slot 0's image holds */
	for (int32_t j = 0; j < n_kept;) {
		const int32_t o = kept[j];
		int32_t gb[4];
		if (four && j + 3 < n_kept && kept[j + 3] == o + 3) {
			dw_wg_build(&g, params, id, input, od, err, o, o, 4, 1, scratch, gb);
			for (int32_t k = 0; k < 4; ++k) {
				dw_wg_taps(&g, scratch + (size_t)k * (size_t)g.per, fd, sink,
					   fqt_grad_row(sink, o + k), small);
				dw_wg_put(sink, fqt_grad_bias(sink, o + k), gb[k], small);
			}
			built = o;
			j += 4;
			continue;
		}
		const int32_t i = o / params->depth_multiplier;
		dw_wg_build(&g, params, id, input, od, err, i, o, 1, i != built, scratch, gb);
		built = i;
		dw_wg_taps(&g, scratch, fd, sink, fqt_grad_row(sink, o),
			   small);
		dw_wg_put(sink, fqt_grad_bias(sink, o), gb[0], small);
		j += 1;
	}
}

#endif /* FQT_DW_WEIGHT_GRAD_H_ */
