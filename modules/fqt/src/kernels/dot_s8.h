/*
 * Dot products of int8 runs with an offset on the activations, the inner loops of the
 * forward kernels (kernels/conv2d.c, kernels/depthwise_conv2d.c). One activation run is
 * read once for four weight rows (1 x 4 register blocking, as CMSIS-NN's convolution
 * kernels block their output channels): with the DSP extension one word of four int8 is
 * widened to two int16 pairs (bytes 0 and 2, then 1 and 3: SXTAB16 folds the offset in,
 * |x + offset| <= 255 fits int16), and each SMLAD does two multiply-accumulates. The sums
 * are the exact int32 sums of the reference loops (TFLM's int32 accumulator), in another
 * order: integer addition is associative, so every path gives the same result.
 */
#ifndef FQT_DOT_S8_H_
#define FQT_DOT_S8_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fqt/config.h"

/* The few inner loops written as inline assembly (exact register use, no spill) need an
 * optimizing build: at -O0 GCC keeps their operands in memory and cannot find the twelve
 * registers. Unoptimized builds take the same loops in C. */
#if FQT_SIMD_DSP && defined(__OPTIMIZE__)
#define FQT_SIMD_ASM 1
#else
#define FQT_SIMD_ASM 0
#endif

#if FQT_SIMD_DSP
#include <arm_acle.h>

static inline uint32_t fqt_load_u32(const int8_t *p)
{
	uint32_t w;
	memcpy(&w, p, sizeof(w)); /* LDR: unaligned word loads are allowed on M4/M7 */
	return w;
}

/* SXTB16 / SXTAB16 of the word rotated by 8 (bytes 1 and 3) in one instruction: ACLE has
 * no rotate operand, and GCC does not fold a separate ROR into them. */
static inline int16x2_t fqt_sxtb16_ror8(uint32_t w)
{
	int16x2_t r;
	__asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
	return r;
}

static inline int16x2_t fqt_sxtab16_ror8(int16x2_t a, uint32_t w)
{
	int16x2_t r;
	__asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(w));
	return r;
}

/* PKHBT (bottom of a, bottom of b on top) and PKHTB (top of a at the bottom, top of b):
 * GCC builds neither from the masks and shifts. */
static inline uint32_t fqt_pack_bottoms(uint32_t a, uint32_t b)
{
	uint32_t r;
	__asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
	return r;
}

static inline uint32_t fqt_pack_tops(uint32_t a, uint32_t b)
{
	uint32_t r;
	__asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
	return r;
}

/* SMULBB / SMULTB (bottom / top halfword of a times the bottom of b): not in GCC's ACLE. */
static inline int32_t fqt_smulbb(int16x2_t a, int16x2_t b)
{
	int32_t r;
	__asm__("smulbb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
	return r;
}

static inline int32_t fqt_smultb(int16x2_t a, int16x2_t b)
{
	int32_t r;
	__asm__("smultb %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
	return r;
}
#endif

#if FQT_SIMD_DSP
/* acc[k] += w0[k] * g0 + w1[k] * g1 for k < n4 (a multiple of 4, acc word-aligned), the
 * input-error scatter of two error rows (g0, g1 int16; g01 = g0 in the bottom halfword, g1
 * in the top): four int8 of each weight row widened by SXTB16, each term one SMLAxy, four
 * accumulators per LDM / STM (GCC splits C's into single loads and stores). */
static inline void fqt_scatter2_s8(int32_t *acc, const int8_t *w0, const int8_t *w1,
				   uint32_t g01, int32_t n4)
{
	if (n4 <= 0) {
		return;
	}
	const int32_t *end = acc + n4;
	uint32_t a, b, t;
	__asm__ volatile("1:\n\t"
			 "ldr %[a], [%[w0]], #4\n\t"
			 "ldr %[b], [%[w1]], #4\n\t"
			 "ldm %[acc], {r8, r9, r10, r11}\n\t"
			 "sxtb16 %[t], %[a]\n\t"
			 "smlabb r8, %[t], %[g], r8\n\t"
			 "smlatb r10, %[t], %[g], r10\n\t"
			 "sxtb16 %[t], %[a], ror #8\n\t"
			 "smlabb r9, %[t], %[g], r9\n\t"
			 "smlatb r11, %[t], %[g], r11\n\t"
			 "sxtb16 %[t], %[b]\n\t"
			 "smlabt r8, %[t], %[g], r8\n\t"
			 "smlatt r10, %[t], %[g], r10\n\t"
			 "sxtb16 %[t], %[b], ror #8\n\t"
			 "smlabt r9, %[t], %[g], r9\n\t"
			 "smlatt r11, %[t], %[g], r11\n\t"
			 "stm %[acc]!, {r8, r9, r10, r11}\n\t"
			 "cmp %[acc], %[end]\n\t"
			 "bne 1b"
			 : [acc] "+r"(acc), [w0] "+r"(w0), [w1] "+r"(w1), [a] "=&r"(a),
			   [b] "=&r"(b), [t] "=&r"(t)
			 : [g] "r"(g01), [end] "r"(end)
			 : "r8", "r9", "r10", "r11", "cc", "memory");
}
#endif

/* acc[r] += sum_k (x[k] + offset) * w[r * stride + k] for r = 0..3, k < n. */
static inline void fqt_dot_s8_offset_1x4(const int8_t *x, int32_t offset, const int8_t *w,
					 size_t stride, int32_t n, int32_t acc[4])
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
	const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2u * stride, *w3 = w + 3u * stride;
	int32_t k = 0;
#if FQT_SIMD_DSP
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)offset) * 0x00010001u);
	/* Two weight pointers (rows 0 and 2) and the stride as a register offset (rows 1
	 * and 3): the four accumulators, both widened activation pairs and the loop state
	 * then fit the register file. */
	const int8_t *xp = x, *wp = w, *wq = w + 2u * stride;
	const int8_t *xend = x + (n & ~3);
	for (; xp < xend; xp += 4, wp += 4, wq += 4) {
		const uint32_t xw = fqt_load_u32(xp);
		const int16x2_t xe = __sxtab16(off2, (int8x4_t)xw);
		const int16x2_t xo = fqt_sxtab16_ror8(off2, xw);
		uint32_t ww = fqt_load_u32(wp);
		a0 = __smlad(xe, __sxtb16((int8x4_t)ww), a0);
		a0 = __smlad(xo, fqt_sxtb16_ror8(ww), a0);
		ww = fqt_load_u32(wp + stride);
		a1 = __smlad(xe, __sxtb16((int8x4_t)ww), a1);
		a1 = __smlad(xo, fqt_sxtb16_ror8(ww), a1);
		ww = fqt_load_u32(wq);
		a2 = __smlad(xe, __sxtb16((int8x4_t)ww), a2);
		a2 = __smlad(xo, fqt_sxtb16_ror8(ww), a2);
		ww = fqt_load_u32(wq + stride);
		a3 = __smlad(xe, __sxtb16((int8x4_t)ww), a3);
		a3 = __smlad(xo, fqt_sxtb16_ror8(ww), a3);
	}
	k = n & ~3;
#endif
	for (; k < n; ++k) {
		const int32_t xv = (int32_t)x[k] + offset;
		a0 += xv * w0[k];
		a1 += xv * w1[k];
		a2 += xv * w2[k];
		a3 += xv * w3[k];
	}
	acc[0] = a0;
	acc[1] = a1;
	acc[2] = a2;
	acc[3] = a3;
}

/* The CONV_2D input error's scatter (kernels/conv2d.c, input_error_s8.c): a[i] += w_r[i] *
 * g_r over the n (1 or 2) channels o_r of one tap: the DSP pair scatter when both g are
 * nonzero, else one scalar row. */
static inline void fqt_conv_scatter_taps(int32_t *a, const int8_t *filter, const int32_t *o,
					 const int32_t *g, int32_t n, size_t tap, size_t taps,
					 int32_t in_c, int32_t n4)
{
	const int8_t *w0 = filter + ((size_t)o[0] * taps + tap) * (size_t)in_c;
	int32_t i = 0;
#if FQT_SIMD_DSP
	if (n == 2 && g[0] != 0 && g[1] != 0) {
		const int8_t *w1 = filter + ((size_t)o[1] * taps + tap) * (size_t)in_c;
		fqt_scatter2_s8(a, w0, w1, (uint32_t)(uint16_t)g[0] | ((uint32_t)(uint16_t)g[1] << 16),
				n4);
		for (i = n4; i < in_c; ++i) {
			a[i] += (int32_t)w0[i] * g[0] + (int32_t)w1[i] * g[1];
		}
		return;
	}
#else
	(void)n4;
#endif
	for (int32_t r = 0; r < n; ++r) {
		if (g[r] == 0) {
			continue;
		}
		const int8_t *w = filter + ((size_t)o[r] * taps + tap) * (size_t)in_c;
		for (i = 0; i < in_c; ++i) {
			a[i] += (int32_t)w[i] * g[r];
		}
	}
	(void)w0;
}

#endif /* FQT_DOT_S8_H_ */
