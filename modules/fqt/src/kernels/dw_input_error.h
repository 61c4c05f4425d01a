/*
 * The depthwise input error with depth multiplier 1 (kernels/depthwise_conv2d.c's
 * fqt_depthwise_conv2d_backward_input): the fast paths, static inline for that file only.
 * Every path computes the scalar kernel's exact int32 sums (the caller's bound, section 5.3)
 * in another order; integer addition is associative, so all give the same result.
 *
 * - Gather (stride 1, dilation 1, with scratch): each input element sums its taps' terms in
 *   registers, acc[iy][ix][c] = sum over taps of w[ky][kx][c] * g[iy+ph-ky][ix+pw-kx][c]
 *   (the transposed depthwise weights are the same weights read tap-flipped, so no copy).
 *   g = the folded error (requantized once per element) is kept as int16 for a ring of k_h
 *   output rows, four channels per group in the order 0, 2, 1, 3 so that one SXTB16 pair of
 *   a weight word meets one word of g (SMLABB / SMLATT: four MACs for three loads). An
 *   output position whose g are all zero is skipped (the zero-error skipping of the scatter).
 * - Otherwise channel-contiguous scatter: per output position, g once per element, added to
 *   each tap's input row as one contiguous run; channels in stack chunks.
 */
#ifndef FQT_DW_INPUT_ERROR_H_
#define FQT_DW_INPUT_ERROR_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dot_s8.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"
#include "quant.h"

static inline int dw_ie_gather_applies(const fqt_conv_params *params, const fqt_dims *id,
				       const fqt_dims *od)
{
	return params->depth_multiplier == 1 && od->c == id->c && params->stride_h == 1 &&
	       params->stride_w == 1 && params->dilation_h == 1 && params->dilation_w == 1;
}

/* Scratch of the gather: multipliers and shifts (int32 per channel), the tap list (two
 * int32 per tap), the g ring (int16, k_h rows of out_w positions of C4 = C rounded up to
 * 4 channels) and its nonzero flags (a byte per ring position). */
static inline size_t dw_ie_scratch_size(const fqt_conv_params *params, const fqt_dims *id,
					const fqt_dims *fd, const fqt_dims *od)
{
	if (!dw_ie_gather_applies(params, id, od)) {
		return 0u;
	}
	const size_t c4 = ((size_t)id->c + 3u) & ~(size_t)3u;
	const size_t ring = (size_t)fd->h * (size_t)od->w;
	return 8u * (size_t)id->c + 8u * (size_t)fd->h * (size_t)fd->w + 2u * ring * c4 +
	       ((ring + 3u) & ~(size_t)3u);
}

/* Slot of channel c in its group of four: 0, 2, 1, 3 -> 0, 1, 2, 3. */
static inline int32_t dw_ie_slot(int32_t c)
{
	return (c & ~3) + ((c & 1) << 1) + ((c >> 1) & 1);
}

/* g = MBQM(e * 2^8, m, sh) in five ALU instructions, for m = M * 2^7 (every multiplier of
 * the fold from a finite float scale) and -30 <= sh <= 0, s = -sh: the high multiply is
 * hi = floor((e * m * 2^8 + 2^30) / 2^31) = floor((e * M + 2^15) / 2^16) (|e * M| < 2^31),
 * and RDBPOT(hi, s) = floor((2 hi + 2^s - [hi < 0]) / 2^(s+1)) for every s >= 0 (for
 * s >= 1 the odd numerator never crosses a multiple of 2^(s+1) that the even
 * 2 hi + 2^s - 2 [hi < 0] does not). e = 0 gives 0. */
static inline int dw_ie_fast_fold(int32_t m, int sh)
{
	return (m & 127) == 0 && sh <= 0 && sh >= -30;
}

static inline int32_t dw_ie_g(int32_t e, int32_t big_m, int s)
{
	if (e == 0) {
		return 0;
	}
	const int32_t hi = fqt_arithmetic_shift_right(e * big_m + 32768, 16);
	return fqt_arithmetic_shift_right(2 * hi + ((int32_t)1 << s) - (hi < 0), s + 1);
}

/* g of output row r into ring row r % k_h (channels past C: 0). */
static inline void dw_ie_ring_row(const int8_t *err, int32_t r, int32_t out_w, int32_t C,
				  int32_t c4, int32_t k_h, const int32_t *m, const int *sh,
				  int16_t *ring, uint8_t *nz)
{
	const int32_t c_main = C & ~3;
	for (int32_t ox = 0; ox < out_w; ++ox) {
		const size_t slot = (size_t)(r % k_h) * (size_t)out_w + (size_t)ox;
		const int8_t *er = err + ((size_t)r * (size_t)out_w + (size_t)ox) * (size_t)C;
		int16_t *gr = ring + slot * (size_t)c4;
		int32_t any = 0;
		int32_t c = 0;
		for (; c < c_main; c += 4) {
			uint32_t e4;
			memcpy(&e4, er + c, sizeof(e4));
			if (e4 == 0u) {
				/* four zero errors (common after a ReLU): g = 0 */
				memset(gr + c, 0, 4u * sizeof(int16_t));
				continue;
			}
			const int32_t g0 = dw_ie_g(er[c], m[c], sh[c]);
			const int32_t g1 = dw_ie_g(er[c + 1], m[c + 1], sh[c + 1]);
			const int32_t g2 = dw_ie_g(er[c + 2], m[c + 2], sh[c + 2]);
			const int32_t g3 = dw_ie_g(er[c + 3], m[c + 3], sh[c + 3]);
			gr[c] = (int16_t)g0;
			gr[c + 1] = (int16_t)g2;
			gr[c + 2] = (int16_t)g1;
			gr[c + 3] = (int16_t)g3;
			any |= g0 | g1 | g2 | g3;
		}
		for (; c < c4; ++c) {
			const int32_t g = c < C ? dw_ie_g(er[c], m[c], sh[c]) : 0;
			gr[dw_ie_slot(c)] = (int16_t)g;
			any |= g;
		}
		nz[slot] = any != 0;
	}
}

/* One input element group of four channels over n taps (w offsets, g offsets). */
static inline void dw_ie_group(const int8_t *filter, const int16_t *ring, const int32_t *taps,
			       int32_t n, int32_t c, int32_t *a)
{
#if FQT_SIMD_DSP
	/* In assembly: GCC's loop spills half its registers (19 instructions a tap, 12 here). */
	int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	if (n > 0) {
		const int32_t *tp = taps, *end = taps + 2 * n;
		const int8_t *fc = filter + c;
		const int16_t *rc = ring + c, *rc4 = ring + c + 2;
		uint32_t woff, goff, w, wo;
		__asm__ volatile("1:\n\t"
				 "ldrd %[woff], %[goff], [%[tp]], #8\n\t"
				 "ldr %[w], [%[fc], %[woff]]\n\t"
				 "ldr %[woff], [%[rc4], %[goff], lsl #1]\n\t" /* g1, g3 */
				 "ldr %[goff], [%[rc], %[goff], lsl #1]\n\t"  /* g0, g2 */
				 "sxtb16 %[wo], %[w], ror #8\n\t"
				 "sxtb16 %[w], %[w]\n\t"
				 "smlabb %[a0], %[w], %[goff], %[a0]\n\t"
				 "smlatt %[a2], %[w], %[goff], %[a2]\n\t"
				 "smlabb %[a1], %[wo], %[woff], %[a1]\n\t"
				 "smlatt %[a3], %[wo], %[woff], %[a3]\n\t"
				 "cmp %[tp], %[end]\n\t"
				 "bne 1b"
				 : [tp] "+r"(tp), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),
				   [a3] "+r"(a3), [woff] "=&r"(woff), [goff] "=&r"(goff),
				   [w] "=&r"(w), [wo] "=&r"(wo)
				 : [end] "r"(end), [fc] "r"(fc), [rc] "r"(rc), [rc4] "r"(rc4)
				 : "cc", "memory");
	}
	a[0] = a0;
	a[1] = a1;
	a[2] = a2;
	a[3] = a3;
#else
	int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	for (int32_t t = 0; t < n; ++t) {
		const int8_t *w = filter + taps[2 * t] + c;
		const int16_t *g = ring + taps[2 * t + 1] + c;
		a0 += (int32_t)w[0] * g[0];
		a1 += (int32_t)w[1] * g[2];
		a2 += (int32_t)w[2] * g[1];
		a3 += (int32_t)w[3] * g[3];
	}
	a[0] = a0;
	a[1] = a1;
	a[2] = a2;
	a[3] = a3;
#endif
}

/* The gather; 0 if some channel's g can leave int16 (the caller scatters instead). */
static inline int dw_ie_gather(const fqt_conv_params *params, const fqt_dims *id,
			       const fqt_dims *fd, const int8_t *filter, const void *scales,
			       uint32_t scale_count, int p, const fqt_dims *od, const int8_t *err,
			       const uint16_t *kept, int32_t n_kept, int32_t *acc, void *scratch)
{
	const int32_t in_h = id->h, in_w = id->w, C = id->c, k_h = fd->h, k_w = fd->w;
	const int32_t out_h = od->h, out_w = od->w, c4 = (C + 3) & ~3;
	int32_t *m = (int32_t *)scratch;
	int *sh = (int *)(void *)(m + C); /* int: 32 bits on every target of the core */
	int32_t *taps = (int32_t *)(void *)(sh + C);
	int16_t *ring = (int16_t *)(void *)(taps + 2 * k_h * k_w);
	uint8_t *nz = (uint8_t *)(void *)(ring + (size_t)k_h * (size_t)out_w * (size_t)c4);
	for (int32_t c = 0; c < C; ++c) {
		m[c] = 0; /* unkept: g = 0 */
		sh[c] = 0;
	}
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		fqt_fold_multiplier(scales, scale_count, o, p, &m[o], &sh[o]);
		const int32_t hi = fqt_requantize(127 * (1 << FQT_ERROR_FOLD_BITS), m[o], sh[o]);
		const int32_t lo = fqt_requantize(-128 * (1 << FQT_ERROR_FOLD_BITS), m[o], sh[o]);
		if (hi > INT16_MAX || lo < INT16_MIN || !dw_ie_fast_fold(m[o], sh[o])) {
			return 0;
		}
		m[o] /= 128; /* M (exact: m = M * 2^7), and s = -shift */
		sh[o] = -sh[o];
	}
	const int32_t c_main = C & ~3;
	int32_t next = 0; /* next output row to put in the ring */
	for (int32_t iy = 0; iy < in_h; ++iy) {
		const int32_t top = iy + params->pad_h; /* oy = top - ky */
		for (; next <= top && next < out_h; ++next) {
			dw_ie_ring_row(err, next, out_w, C, c4, k_h, m, sh, ring, nz);
		}
		for (int32_t ix = 0; ix < in_w; ++ix) {
			const int32_t left = ix + params->pad_w; /* ox = left - kx */
			int32_t n = 0;
			for (int32_t ky = 0; ky < k_h; ++ky) {
				const int32_t oy = top - ky;
				if (oy < 0 || oy >= out_h) {
					continue;
				}
				for (int32_t kx = 0; kx < k_w; ++kx) {
					const int32_t ox = left - kx;
					if (ox < 0 || ox >= out_w) {
						continue;
					}
					const int32_t slot = (oy % k_h) * out_w + ox;
					if (!nz[slot]) {
						continue;
					}
					taps[2 * n] = (ky * k_w + kx) * C;
					taps[2 * n + 1] = slot * c4;
					++n;
				}
			}
			int32_t *a = acc + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)C;
			int32_t c = 0;
			for (; c < c_main; c += 4) {
				dw_ie_group(filter, ring, taps, n, c, a + c);
			}
			for (; c < C; ++c) {
				int32_t s = 0;
				for (int32_t t = 0; t < n; ++t) {
					s += (int32_t)filter[taps[2 * t] + c] *
					     ring[taps[2 * t + 1] + dw_ie_slot(c)];
				}
				a[c] = s;
			}
		}
	}
	return 1;
}

/* The channel-contiguous scatter (acc zeroed first): one error row's g (requantized once per element) is scattered to a tap's input row as
 * one contiguous multiply-add run. Channels go in stack chunks (their multipliers computed
 * once per chunk); a chunk without kept channels is skipped, a position whose g are all zero
 * too. The sums are the scalar kernel's: exact int32 (the caller's bound). */
#define FQT_DW_IE_CHUNK 32

static inline void dw_ie_scatter(const fqt_conv_params *params, const fqt_dims *id,
			       const fqt_dims *fd, const int8_t *filter, const void *scales,
			       uint32_t scale_count, int p, const fqt_dims *od, const int8_t *err,
			       const uint16_t *kept, int32_t n_kept, int32_t *acc)
{
	const int32_t in_h = id->h, in_w = id->w, C = id->c;
	const int32_t k_h = fd->h, k_w = fd->w;
	int32_t m[FQT_DW_IE_CHUNK], g[FQT_DW_IE_CHUNK];
	int sh[FQT_DW_IE_CHUNK];
	uint8_t on[FQT_DW_IE_CHUNK];
	int32_t j = 0;
	for (int32_t c0 = 0; c0 < C; c0 += FQT_DW_IE_CHUNK) {
		const int32_t nc = C - c0 < FQT_DW_IE_CHUNK ? C - c0 : FQT_DW_IE_CHUNK;
		int any = 0;
		for (int32_t c = 0; c < nc; ++c) {
			on[c] = 0;
		}
		for (; j < n_kept && kept[j] < c0 + nc; ++j) {
			const int32_t c = kept[j] - c0;
			on[c] = 1;
			any = 1;
			fqt_fold_multiplier(scales, scale_count, kept[j], p, &m[c], &sh[c]);
		}
		if (!any) {
			continue;
		}
		for (int32_t oy = 0; oy < od->h; ++oy) {
			for (int32_t ox = 0; ox < od->w; ++ox) {
				const int8_t *er = err + ((size_t)oy * (size_t)od->w + (size_t)ox) *
								 (size_t)C +
						   (size_t)c0;
				int nz = 0;
				for (int32_t c = 0; c < nc; ++c) {
					const int32_t e = on[c] ? er[c] : 0;
					g[c] = e == 0 ? 0
						      : fqt_requantize(e * (1 << FQT_ERROR_FOLD_BITS),
								       m[c], sh[c]);
					nz |= g[c];
				}
				if (nz == 0) {
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
						const int8_t *w =
							filter +
							((size_t)ky * (size_t)k_w + (size_t)kx) *
								(size_t)C +
							(size_t)c0;
						int32_t *a = acc + ((size_t)iy * (size_t)in_w +
								    (size_t)ix) *
									   (size_t)C +
							     (size_t)c0;
						for (int32_t c = 0; c < nc; ++c) {
							a[c] += (int32_t)w[c] * g[c];
						}
					}
				}
			}
		}
	}
}

#endif /* FQT_DW_INPUT_ERROR_H_ */
