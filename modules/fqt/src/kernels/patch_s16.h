/*
 * The int16 patch matrix of the convolution forward (kernels/conv2d.c
 * fqt_conv2d_forward_im2col): the patches of two output positions, the input offset
 * folded in, each dotted with two int8 filter rows at a time (2 x 2 register blocking, the
 * technique of CMSIS-NN's arm_nn_mat_mult_kernel_s8_s16). A patch of K taps is held in
 * G = ceil(K / 4) groups of four; the pad taps of the last group are 0 (the pad byte of the
 * staging row is -offset), and the filter's bytes past K are never read.
 *
 * With the DSP extension a group of the pair is four words, written by SXTAB16 straight
 * from four input bytes: position 0 (taps 0, 2), (1, 3), then position 1 the same; a
 * filter word widened by SXTB16 (bytes 0 and 2, then 1 and 3) meets them in eight SMLADs,
 * sixteen MACs for one LDM and two filter loads. Without it the two patches are plain
 * int16 rows of 4G. The sums are the exact int32 sums of the reference loop in another
 * order (integer addition is associative).
 *
 * Scratch: the pair's 16G bytes, then a staging row of 4G int8 for a patch gathered from
 * the image (padding taps, several kernel rows).
 */
#ifndef FQT_PATCH_S16_H_
#define FQT_PATCH_S16_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dot_s8.h"
#include "fqt/config.h"

static inline int32_t fqt_patch_groups(int32_t taps)
{
	return (taps + 3) / 4;
}

static inline size_t fqt_patch_scratch_bytes(int32_t taps)
{
	return 20u * (size_t)fqt_patch_groups(taps);
}

#if FQT_SIMD_DSP
/* Patch `slot` (0 or 1) of the pair from 4G int8 bytes at src. */
static inline void fqt_patch_pack(const int8_t *src, int32_t groups, int32_t offset, int slot,
				  uint32_t *pair)
{
	const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)offset) * 0x00010001u);
	uint32_t *dst = pair + 2 * slot;
	for (int32_t g = 0; g < groups; ++g, src += 4, dst += 4) {
		const uint32_t w = fqt_load_u32(src);
		dst[0] = (uint32_t)__sxtab16(off2, (int8x4_t)w);
		dst[1] = (uint32_t)fqt_sxtab16_ror8(off2, w);
	}
}

/* Bytes 0 .. n - 1 (n < 4) of p in a word, the others 0. */
static inline uint32_t fqt_load_tail_u32(const int8_t *p, int32_t n)
{
	uint32_t w = 0;
	for (int32_t i = 0; i < n; ++i) {
		w |= (uint32_t)(uint8_t)p[i] << (8 * i);
	}
	return w;
}

/* s = {p0.w0, p0.w1, p1.w0, p1.w1} over `taps` taps; w0 and w1 may be the same row. */
static inline void fqt_patch_dot_2x2(const uint32_t *pair, const int8_t *w0, const int8_t *w1,
				     int32_t taps, int32_t s[4])
{
	int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
	/* The whole groups in assembly: GCC's own schedule of this loop needs 14 registers and
	 * spills (20-22 instructions a group, depending on the caller); this one holds the pair
	 * in two registers at a time and reloads position 0 once, 19 instructions for 16 MACs
	 * in 12 registers, so it also builds with a frame pointer. LDRD needs the
	 * pair word aligned (the scratch is); the filter loads are unaligned LDRs. */
#if FQT_SIMD_ASM
	int32_t n = taps >> 2;
	if (n > 0) {
		uint32_t t0, t1, t2, t3;
		__asm__("1:\n\t"
			"ldr %[t0], [%[w0]], #4\n\t"
			"sxtb16 %[t1], %[t0], ror #8\n\t"
			"sxtb16 %[t0], %[t0]\n\t"
			"ldrd %[t2], %[t3], [%[x]]\n\t"
			"smlad %[a00], %[t2], %[t0], %[a00]\n\t"
			"smlad %[a00], %[t3], %[t1], %[a00]\n\t"
			"ldrd %[t2], %[t3], [%[x], #8]\n\t"
			"smlad %[a10], %[t2], %[t0], %[a10]\n\t"
			"smlad %[a10], %[t3], %[t1], %[a10]\n\t"
			"ldr %[t0], [%[w1]], #4\n\t"
			"sxtb16 %[t1], %[t0], ror #8\n\t"
			"sxtb16 %[t0], %[t0]\n\t"
			"smlad %[a11], %[t2], %[t0], %[a11]\n\t"
			"smlad %[a11], %[t3], %[t1], %[a11]\n\t"
			"ldrd %[t2], %[t3], [%[x]], #16\n\t"
			"smlad %[a01], %[t2], %[t0], %[a01]\n\t"
			"smlad %[a01], %[t3], %[t1], %[a01]\n\t"
			"subs %[n], %[n], #1\n\t"
			"bne 1b\n\t"
			: [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
			  [x] "+r"(pair), [w0] "+r"(w0), [w1] "+r"(w1), [n] "+r"(n), [t0] "=&r"(t0),
			  [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
			:
			: "cc", "memory");
	}
#else
	for (const int8_t *wend = w0 + (taps & ~3); w0 < wend; w0 += 4, w1 += 4, pair += 4) {
		uint32_t w = fqt_load_u32(w0);
		int16x2_t we = __sxtb16((int8x4_t)w), wo = fqt_sxtb16_ror8(w);
		a00 = __smlad((int16x2_t)pair[1], wo, __smlad((int16x2_t)pair[0], we, a00));
		a10 = __smlad((int16x2_t)pair[3], wo, __smlad((int16x2_t)pair[2], we, a10));
		w = fqt_load_u32(w1);
		we = __sxtb16((int8x4_t)w);
		wo = fqt_sxtb16_ror8(w);
		a01 = __smlad((int16x2_t)pair[1], wo, __smlad((int16x2_t)pair[0], we, a01));
		a11 = __smlad((int16x2_t)pair[3], wo, __smlad((int16x2_t)pair[2], we, a11));
	}
#endif
	if ((taps & 3) != 0) {
		const int16x2_t x0e = (int16x2_t)pair[0], x0o = (int16x2_t)pair[1];
		const int16x2_t x1e = (int16x2_t)pair[2], x1o = (int16x2_t)pair[3];
		uint32_t w = fqt_load_tail_u32(w0, taps & 3);
		int16x2_t we = __sxtb16((int8x4_t)w), wo = fqt_sxtb16_ror8(w);
		a00 = __smlad(x0o, wo, __smlad(x0e, we, a00));
		a10 = __smlad(x1o, wo, __smlad(x1e, we, a10));
		w = fqt_load_tail_u32(w1, taps & 3);
		we = __sxtb16((int8x4_t)w);
		wo = fqt_sxtb16_ror8(w);
		a01 = __smlad(x0o, wo, __smlad(x0e, we, a01));
		a11 = __smlad(x1o, wo, __smlad(x1e, we, a11));
	}
	s[0] = a00;
	s[1] = a01;
	s[2] = a10;
	s[3] = a11;
}
#else
static inline void fqt_patch_pack(const int8_t *src, int32_t groups, int32_t offset, int slot,
				  int16_t *pair)
{
	const int32_t n = 4 * groups;
	int16_t *dst = pair + (size_t)slot * (size_t)n;
	for (int32_t k = 0; k < n; ++k) {
		dst[k] = (int16_t)(src[k] + offset);
	}
}

static inline void fqt_patch_dot_2x2(const int16_t *pair, const int8_t *w0, const int8_t *w1,
				     int32_t taps, int32_t s[4])
{
	const int16_t *x0 = pair, *x1 = pair + 4 * fqt_patch_groups(taps);
	int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
	for (int32_t k = 0; k < taps; ++k) {
		const int32_t u = x0[k], v = x1[k];
		a00 += u * w0[k];
		a01 += u * w1[k];
		a10 += v * w0[k];
		a11 += v * w1[k];
	}
	s[0] = a00;
	s[1] = a01;
	s[2] = a10;
	s[3] = a11;
}
#endif

#endif /* FQT_PATCH_S16_H_ */
