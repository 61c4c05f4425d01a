/*
 * The depthwise forward's four-channel taps (kernels/depthwise_conv2d.c
 * fqt_depthwise_conv2d_forward, depth multiplier 1): static inline for that file only. With
 * the DSP extension a tap of four channels is a word of input and one of filter, widened to
 * int16 pairs and accumulated per channel (SMLABB / SMLATT); the rows of two and three taps
 * (dilation 1) are inline assembly in optimizing builds (FQT_SIMD_ASM), the same taps in C
 * otherwise. The sums are the reference loop's exact int32 sums in another order.
 */
#ifndef FQT_DW_FORWARD_H_
#define FQT_DW_FORWARD_H_

#include <stddef.h>
#include <stdint.h>

#include "dot_s8.h"
#include "fqt/config.h"

/* The four channel sums of a SIMD group. */
typedef struct dw_acc4 {
	int32_t a0, a1, a2, a3;
} dw_acc4;

#if FQT_SIMD_DSP
/* One tap of four channels: a word of input and of filter each, widened to int16 pairs
 * (bytes 0 and 2, then 1 and 3; SXTAB16 folds the offset in) and accumulated per channel
 * with the 16 x 16 SMLABB / SMLATT. */
static inline dw_acc4 dw_tap4(const int8_t *x, const int8_t *w, int16x2_t off2, dw_acc4 a)
{
	const uint32_t xw = fqt_load_u32(x);
	const uint32_t ww = fqt_load_u32(w);
	const int16x2_t xe = __sxtab16(off2, (int8x4_t)xw);
	const int16x2_t xo = fqt_sxtab16_ror8(off2, xw);
	const int16x2_t we = __sxtb16((int8x4_t)ww);
	const int16x2_t wo = fqt_sxtb16_ror8(ww);
	a.a0 = __smlabb(xe, we, a.a0);
	a.a2 = __smlatt(xe, we, a.a2);
	a.a1 = __smlabb(xo, wo, a.a1);
	a.a3 = __smlatt(xo, wo, a.a3);
	return a;
}

/* Three taps of a kernel row, four channels, dilation 1: input and filter advance by the
 * same column (in_c = out_c with depth multiplier 1). In assembly: GCC's schedule of the
 * unrolled C spills the row pointers (16 live values); a row needs 12 registers, which
 * leaves one with a frame pointer. */
#if FQT_SIMD_ASM
#define FQT_DW_TAP(xa, wa)                                                                   \
	"ldr %[t0], " xa "\n\t"                                                            \
	"ldr %[t2], " wa "\n\t"                                                            \
	"sxtab16 %[t1], %[off], %[t0], ror #8\n\t"                                         \
	"sxtab16 %[t0], %[off], %[t0]\n\t"                                                 \
	"sxtb16 %[t3], %[t2], ror #8\n\t"                                                  \
	"sxtb16 %[t2], %[t2]\n\t"                                                          \
	"smlabb %[a0], %[t0], %[t2], %[a0]\n\t"                                            \
	"smlatt %[a2], %[t0], %[t2], %[a2]\n\t"                                            \
	"smlabb %[a1], %[t1], %[t3], %[a1]\n\t"                                            \
	"smlatt %[a3], %[t1], %[t3], %[a3]\n\t"
#define FQT_DW_ROW3                                                                          \
	FQT_DW_TAP("[%[x]]", "[%[w]]")                                                       \
	FQT_DW_TAP("[%[x], %[c]]", "[%[w], %[c]]")                                           \
	FQT_DW_TAP("[%[x], %[c], lsl #1]", "[%[w], %[c], lsl #1]")
#endif

static inline dw_acc4 dw_row3(const int8_t *x, const int8_t *w, size_t col, int16x2_t off2,
			      dw_acc4 a)
{
#if FQT_SIMD_ASM
	uint32_t t0, t1, t2, t3;
	__asm__(FQT_DW_ROW3
		: [a0] "+r"(a.a0), [a1] "+r"(a.a1), [a2] "+r"(a.a2), [a3] "+r"(a.a3),
		  [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
		: [x] "r"(x), [w] "r"(w), [c] "r"(col), [off] "r"(off2)
		: "memory");
#else
	a = dw_tap4(x, w, off2, a);
	a = dw_tap4(x + col, w + col, off2, a);
	a = dw_tap4(x + 2u * col, w + 2u * col, off2, a);
#endif
	return a;
}

/* The two taps of a row clipped by the left or right edge. */
static inline dw_acc4 dw_row2(const int8_t *x, const int8_t *w, size_t col, int16x2_t off2,
			      dw_acc4 a)
{
#if FQT_SIMD_ASM
	uint32_t t0, t1, t2, t3;
	__asm__(FQT_DW_TAP("[%[x]]", "[%[w]]") FQT_DW_TAP("[%[x], %[c]]", "[%[w], %[c]]")
		: [a0] "+r"(a.a0), [a1] "+r"(a.a1), [a2] "+r"(a.a2), [a3] "+r"(a.a3),
		  [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
		: [x] "r"(x), [w] "r"(w), [c] "r"(col), [off] "r"(off2)
		: "memory");
#else
	a = dw_tap4(x, w, off2, a);
	a = dw_tap4(x + col, w + col, off2, a);
#endif
	return a;
}

/* The whole window of an interior position of a 3 x 3 kernel (filter rows 3 columns): three
 * rows in straight line. One asm block for all nine taps would need 13 registers, which GCC
 * cannot always find once the caller is inlined. */
static inline dw_acc4 dw_window3x3(const int8_t *x, const int8_t *w, size_t col, size_t x_row,
				   int16x2_t off2, dw_acc4 a)
{
	a = dw_row3(x, w, col, off2, a);
	a = dw_row3(x + x_row, w + 3u * col, col, off2, a);
	return dw_row3(x + 2u * x_row, w + 6u * col, col, off2, a);
}

#if FQT_SIMD_ASM
#undef FQT_DW_ROW3
#undef FQT_DW_TAP
#endif
#endif /* FQT_SIMD_DSP */

#endif /* FQT_DW_FORWARD_H_ */
