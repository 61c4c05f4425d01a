/*
 * The depthwise input error with depth multiplier 1 (kernels/depthwise_conv2d.c's
 * fqt_depthwise_conv2d_backward_input, and the gather for kernels/input_error_s8.c): the fast
 * paths, static inline for those two files only.
 * Every path computes the scalar kernel's exact int32 sums (the caller's bound, section 5.3)
 * in another order; integer addition is associative, so all give the same result.
 *
 * - Planar (3x3, stride 1, dilation 1, with scratch; SIMD builds and the host): per channel
 *   the folded errors in an int16 plane of row pairs, SMLAD over two neighbouring rows of a
 *   column (two MACs an instruction); below dw_ie_planar.
 * - Gather (stride 1, dilation 1, with scratch; the rest): each input element sums its taps' terms in
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

/* The channel-planar path (3x3 filters; SIMD builds and the host, whose tests check it):
 * per channel the folded errors in a zero-bordered plane, word (p, x) = the int16 pair of
 * padded rows 2p, 2p + 1 of padded column x, rows pair-major so that the three columns of
 * one output column are adjacent words. Padded row y = oy - pad_h + 2 (x likewise), so
 * acc[iy][ix] = sum over i, j < 3 of w[2 - i][2 - j] * plane[iy + i][ix + j]. */
#if FQT_SIMD_DSP || !defined(__arm__)
#define FQT_DW_IE_PLANAR 1
#else
#define FQT_DW_IE_PLANAR 0
#endif

static inline int dw_ie_planar_applies(const fqt_dims *id, const fqt_dims *fd)
{
	return fd->h == 3 && fd->w == 3 && id->h >= 2;
}

/* Words of the plane: (in_h / 2 + 2) row pairs (the last pair read by an odd in_h's last
 * row) of in_w + 2 columns. */
static inline size_t dw_ie_plane_words(const fqt_dims *id)
{
	return (size_t)(id->h / 2 + 2) * (size_t)(id->w + 2);
}

/* Planar scratch: M and s per channel (int32), the weight pairs (six words) and a flag, the
 * plane. */
static inline size_t dw_ie_planar_scratch_size(const fqt_dims *id)
{
	return 8u * (size_t)id->c + 28u + 4u * dw_ie_plane_words(id);
}

/* Scratch of the gather: multipliers and shifts (int32 per channel), the tap list (two
 * int32 per tap), the g ring (int16, k_h rows of out_w positions of C4 = C rounded up to
 * 4 channels) and its nonzero flags (a byte per ring position); for 3x3 filters at least
 * the planar path's (every build plans the same). */
static inline size_t dw_ie_gather_scratch_size(const fqt_dims *id, const fqt_dims *fd,
					       const fqt_dims *od)
{
	const size_t c4 = ((size_t)id->c + 3u) & ~(size_t)3u;
	const size_t ring = (size_t)fd->h * (size_t)od->w;
	return 8u * (size_t)id->c + 8u * (size_t)fd->h * (size_t)fd->w + 2u * ring * c4 +
	       ((ring + 3u) & ~(size_t)3u);
}

static inline size_t dw_ie_scratch_size(const fqt_conv_params *params, const fqt_dims *id,
					const fqt_dims *fd, const fqt_dims *od)
{
	if (!dw_ie_gather_applies(params, id, od)) {
		return 0u;
	}
	const size_t gather = dw_ie_gather_scratch_size(id, fd, od);
	const size_t planar = dw_ie_planar_applies(id, fd) ? dw_ie_planar_scratch_size(id) : 0u;
	return gather > planar ? gather : planar;
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

/* The gather; 0 if some channel's g can leave int16 (the caller scatters instead). With
 * a sink (the lean plan, kernels/input_error_s8.c) acc holds `cols` positions of a row,
 * handed to the sink as each run of them is complete. */
static inline int dw_ie_gather(const fqt_conv_params *params, const fqt_dims *id,
			       const fqt_dims *fd, const int8_t *filter, const void *scales,
			       uint32_t scale_count, int p, const fqt_dims *od, const int8_t *err,
			       const uint16_t *kept, int32_t n_kept, int32_t *acc, void *scratch,
			       fqt_error_sink *sink, int32_t cols)
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
			const size_t at = ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)C;
			int32_t *a = sink == NULL ? acc + at : acc + (size_t)(ix % cols) * (size_t)C;
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
			if (sink != NULL && (ix % cols == cols - 1 || ix == in_w - 1)) {
				const int32_t run = ix % cols + 1;
				fqt_error_sink_put(sink, acc, at - (size_t)(run - 1) * (size_t)C,
						   (size_t)run * (size_t)C);
			}
		}
	}
	return 1;
}

/* One output column of one channel of the planar path: g at plane word (0, ix), wt the
 * weight pairs P_j = (v0, v1), Q_j = (v1, v2) of column j (v_i = w[2 - i][2 - j]) and the
 * odd-height flag, out at acc[0][ix][c] (rows s4 bytes apart), gs the bytes of a plane word
 * row, pairs = in_h / 2 >= 1. Word p + 1 of a column serves two row pairs: as B (rows 2p + 2,
 * 2p + 3) it ends pair p, out0 += v2 B.lo, out1 += v1 B.lo + v2 B.hi; as A it starts pair
 * p + 1, out0 = v0 A.lo + v1 A.hi, out1 = v0 A.hi. Each word is loaded once (four MACs). */
#if FQT_SIMD_DSP
#define FQT_DW_IE_COL(J, C0, C1, N0, N1, FIRST)                                               \
	"ldrd %[p], %[q], [%[wt], #" #J "*8]\n\t"                                             \
	"ldr %[b], [%[g], #" #J "*4]\n\t"                                                     \
	"smlabt %[" #C0 "], %[b], %[q], %[" #C0 "]\n\t"                                       \
	"smlad %[" #C1 "], %[b], %[q], %[" #C1 "]\n\t" FIRST(N0, N1)
#define FQT_DW_IE_NEW(N0, N1)                                                                  \
	"smuad %[" #N0 "], %[b], %[p]\n\t"                                                     \
	"smultb %[" #N1 "], %[b], %[p]\n\t"
#define FQT_DW_IE_ADD(N0, N1)                                                                  \
	"smlad %[" #N0 "], %[b], %[p], %[" #N0 "]\n\t"                                         \
	"smlatb %[" #N1 "], %[b], %[p], %[" #N1 "]\n\t"
#define FQT_DW_IE_HALF(C0, C1, N0, N1)                                                         \
	FQT_DW_IE_COL(0, C0, C1, N0, N1, FQT_DW_IE_NEW)                                        \
	FQT_DW_IE_COL(1, C0, C1, N0, N1, FQT_DW_IE_ADD)                                        \
	FQT_DW_IE_COL(2, C0, C1, N0, N1, FQT_DW_IE_ADD)                                        \
	"str %[" #C0 "], [%[out]]\n\t"                                                         \
	"str %[" #C1 "], [%[out], %[s4]]\n\t"                                                  \
	"add %[out], %[out], %[s4], lsl #1\n\t"                                                \
	"add %[g], %[g], %[gs]\n\t"                                                            \
	"subs %[n], %[n], #1\n\t"
#endif

static inline void dw_ie_column(const int16_t *g, const uint32_t *wt, int32_t *out, int32_t s4,
				int32_t wc, int32_t pairs)
{
#if FQT_SIMD_DSP
	/* In assembly: thirteen live registers; two row pairs per pass so that the pending
	 * and the ending accumulators swap roles without moves. */
	uint32_t p, q, b;
	int32_t a0, a1, b0, b1;
	const int32_t gs = 4 * wc;
	__asm__ volatile(
		/* word 0: A of pair 0 only */
		"ldrd %[p], %[q], [%[wt]]\n\t"
		"ldr %[b], [%[g]]\n\t"
		"smuad %[a0], %[b], %[p]\n\t"
		"smultb %[a1], %[b], %[p]\n\t"
		"ldrd %[p], %[q], [%[wt], #8]\n\t"
		"ldr %[b], [%[g], #4]\n\t"
		"smlad %[a0], %[b], %[p], %[a0]\n\t"
		"smlatb %[a1], %[b], %[p], %[a1]\n\t"
		"ldrd %[p], %[q], [%[wt], #16]\n\t"
		"ldr %[b], [%[g], #8]\n\t"
		"smlad %[a0], %[b], %[p], %[a0]\n\t"
		"smlatb %[a1], %[b], %[p], %[a1]\n\t"
		"add %[g], %[g], %[gs]\n\t"
		"1:\n\t" FQT_DW_IE_HALF(a0, a1, b0, b1) "beq 2f\n\t"
		FQT_DW_IE_HALF(b0, b1, a0, a1) "bne 1b\n\t"
		"mov %[b0], %[a0]\n\t"
		"2:\n\t"
		/* an odd height: the last row gets its B terms */
		"ldr %[n], [%[wt], #24]\n\t"
		"cmp %[n], #0\n\t"
		"beq 3f\n\t"
		"ldrd %[p], %[q], [%[wt]]\n\t"
		"ldr %[b], [%[g]]\n\t"
		"smlabt %[b0], %[b], %[q], %[b0]\n\t"
		"ldrd %[p], %[q], [%[wt], #8]\n\t"
		"ldr %[b], [%[g], #4]\n\t"
		"smlabt %[b0], %[b], %[q], %[b0]\n\t"
		"ldrd %[p], %[q], [%[wt], #16]\n\t"
		"ldr %[b], [%[g], #8]\n\t"
		"smlabt %[b0], %[b], %[q], %[b0]\n\t"
		"str %[b0], [%[out]]\n\t"
		"3:\n\t"
		: [g] "+r"(g), [out] "+r"(out), [n] "+r"(pairs), [p] "=&r"(p), [q] "=&r"(q),
		  [b] "=&r"(b), [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1)
		: [wt] "r"(wt), [s4] "r"(s4), [gs] "r"(gs)
		: "cc", "memory");
#else
	const int32_t rows = 2 * pairs + (int32_t)wt[6];
	for (int32_t iy = 0; iy < rows; ++iy) {
		int32_t s = 0;
		for (int32_t j = 0; j < 3; ++j) {
			const int32_t v[3] = {(int16_t)(wt[2 * j] & 0xFFFFu),
					      (int16_t)(wt[2 * j] >> 16), (int16_t)(wt[2 * j + 1] >> 16)};
			for (int32_t i = 0; i < 3; ++i) {
				const int32_t yy = iy + i;
				s += v[i] * g[((yy >> 1) * wc + j) * 2 + (yy & 1)];
			}
		}
		out[(size_t)iy * (size_t)s4 / sizeof(int32_t)] = s;
	}
#endif
}

/* g of one error (dw_ie_g without the branch: e = 0 gives 0). */
static inline int16_t dw_ie_g16(int32_t e, int32_t big_m, int s)
{
	const int32_t h = fqt_arithmetic_shift_right(e * big_m + 32768, 16);
	return (int16_t)fqt_arithmetic_shift_right(2 * h + ((int32_t)1 << s) - (h < 0), s + 1);
}

/* g of one error column (output column ox0 + x, errors es bytes apart from e) into plane
 * column x, padded rows y0 <= y < y1; pairs of rows (one plane word) in assembly. */
static inline void dw_ie_fold_column(const int8_t *e, int32_t es, int16_t *col, int32_t wc,
				     int32_t y0, int32_t y1, int32_t big_m, int s)
{
	int32_t y = y0;
	if ((y & 1) != 0 && y < y1) {
		col[(y >> 1) * wc * 2 + 1] = dw_ie_g16(*e, big_m, s);
		e += es;
		++y;
	}
	int32_t n = (y1 - y) >> 1;
#if FQT_SIMD_DSP
	if (n > 0) {
		int16_t *dst = col + (y >> 1) * wc * 2;
		int32_t e0, e1, t;
		const int32_t k = 32768, half = (int32_t)1 << s, s1 = s + 1, gs = 4 * wc;
		__asm__ volatile("1:\n\t"
				 "ldrsb %[e0], [%[e]]\n\t"
				 "ldrsb %[e1], [%[e], %[es]]\n\t"
				 "add %[e], %[e], %[es], lsl #1\n\t"
				 "mla %[e0], %[e0], %[m], %[k]\n\t"
				 "asr %[e0], %[e0], #16\n\t"
				 "add %[t], %[half], %[e0], lsl #1\n\t"
				 "sub %[t], %[t], %[e0], lsr #31\n\t"
				 "asr %[t], %[t], %[s1]\n\t"
				 "strh %[t], [%[dst]]\n\t"
				 "mla %[e1], %[e1], %[m], %[k]\n\t"
				 "asr %[e1], %[e1], #16\n\t"
				 "add %[t], %[half], %[e1], lsl #1\n\t"
				 "sub %[t], %[t], %[e1], lsr #31\n\t"
				 "asr %[t], %[t], %[s1]\n\t"
				 "strh %[t], [%[dst], #2]\n\t"
				 "add %[dst], %[dst], %[gs]\n\t"
				 "subs %[n], %[n], #1\n\t"
				 "bne 1b"
				 : [e] "+r"(e), [dst] "+r"(dst), [n] "+r"(n), [e0] "=&r"(e0),
				   [e1] "=&r"(e1), [t] "=&r"(t)
				 : [es] "r"(es), [m] "r"(big_m), [k] "r"(k), [half] "r"(half),
				   [s1] "r"(s1), [gs] "r"(gs)
				 : "cc", "memory");
		y += 2 * ((y1 - y) >> 1);
	}
#else
	for (; n > 0; --n, y += 2) {
		col[(y >> 1) * wc * 2] = dw_ie_g16(e[0], big_m, s);
		col[(y >> 1) * wc * 2 + 1] = dw_ie_g16(e[es], big_m, s);
		e += 2 * es;
	}
#endif
	if (y < y1) {
		col[(y >> 1) * wc * 2] = dw_ie_g16(*e, big_m, s);
	}
}

/* The planar path; 0 if some channel's g can leave int16 or the fold has no fast form (the
 * caller takes another path). Unkept channels get 0. */
static inline int dw_ie_planar(const fqt_conv_params *params, const fqt_dims *id,
			       const int8_t *filter, const void *scales, uint32_t scale_count,
			       int p, const fqt_dims *od, const int8_t *err, const uint16_t *kept,
			       int32_t n_kept, int32_t *acc, void *scratch, fqt_error_sink *sink)
{
	/* With a sink (the lean plan) acc is one channel's [in_h][in_w] plane, handed to the
	 * sink (elements C apart in the tensor) after each channel. */
	const int32_t cs = sink != NULL ? 1 : id->c;
	const int32_t in_h = id->h, in_w = id->w, C = id->c, out_h = od->h, out_w = od->w;
	const int32_t wc = in_w + 2, ph = params->pad_h, pw = params->pad_w;
	int32_t *mm = (int32_t *)scratch;
	int32_t *ss = mm + C;
	uint32_t *wt = (uint32_t *)(void *)(ss + C);
	int16_t *plane = (int16_t *)(void *)(wt + 7);
	for (int32_t c = 0; c < C; ++c) {
		ss[c] = -1; /* unkept */
	}
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t o = kept[j];
		int32_t m;
		int sh;
		fqt_fold_multiplier(scales, scale_count, o, p, &m, &sh);
		const int32_t hi = fqt_requantize(127 * (1 << FQT_ERROR_FOLD_BITS), m, sh);
		const int32_t lo = fqt_requantize(-128 * (1 << FQT_ERROR_FOLD_BITS), m, sh);
		if (hi > INT16_MAX || lo < INT16_MIN || !dw_ie_fast_fold(m, sh)) {
			return 0;
		}
		mm[o] = m / 128; /* M (exact: m = M * 2^7), and s = -shift */
		ss[o] = -sh;
	}
	memset(plane, 0, 4u * dw_ie_plane_words(id)); /* the border stays 0 */
	wt[6] = (uint32_t)(in_h & 1);
	/* the folded output rows and columns: padded y = oy - ph + 2 <= in_h + 1 */
	const int32_t oy0 = ph > 2 ? ph - 2 : 0, ox0 = pw > 2 ? pw - 2 : 0;
	const int32_t oy1 = out_h < in_h + ph ? out_h : in_h + ph;
	const int32_t ox1 = out_w < in_w + pw ? out_w : in_w + pw;
	const int32_t s4 = in_w * cs * (int32_t)sizeof(int32_t);
	const size_t plane_n = (size_t)in_h * (size_t)in_w;
	for (int32_t c = 0; c < C; ++c) {
		int32_t *ac = sink != NULL ? acc : acc + c;
		if (ss[c] < 0) {
			for (size_t i = 0; i < plane_n; ++i) {
				ac[i * (size_t)cs] = 0;
			}
			if (sink != NULL) {
				fqt_error_sink_put_strided(sink, acc, (size_t)c, plane_n, (size_t)C);
			}
			continue;
		}
		const int32_t big_m = mm[c], s = ss[c];
		for (int32_t ox = ox0; ox < ox1; ++ox) {
			dw_ie_fold_column(err + (size_t)ox * (size_t)C + (size_t)c, out_w * C,
					  plane + (ox - pw + 2) * 2, wc, oy0 - ph + 2, oy1 - ph + 2,
					  big_m, s);
		}
		for (int32_t j = 0; j < 3; ++j) {
			const int8_t *w = filter + (size_t)(2 - j) * (size_t)C + (size_t)c;
			const uint32_t v0 = (uint32_t)(uint16_t)(int16_t)w[6 * C]; /* ky = 2 */
			const uint32_t v1 = (uint32_t)(uint16_t)(int16_t)w[3 * C];
			const uint32_t v2 = (uint32_t)(uint16_t)(int16_t)w[0];
			wt[2 * j] = v0 | (v1 << 16);
			wt[2 * j + 1] = v1 | (v2 << 16);
		}
		for (int32_t ix = 0; ix < in_w; ++ix) {
			dw_ie_column(plane + 2 * ix, wt, ac + (size_t)ix * (size_t)cs, s4, wc,
				     in_h / 2);
		}
		if (sink != NULL) {
			fqt_error_sink_put_strided(sink, acc, (size_t)c, plane_n, (size_t)C);
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
