/*
 * The fused activations' backward (docs/training-semantics.md section 5.1;
 * scripts/fqt/golden/activation.py): the error passes where the kept output y is inside
 * the activation's open range and is zeroed where the activation clamped it.
 */
#include <stddef.h>
#include <string.h>

#include "fqt/config.h"
#include "fqt/kernels.h"
#include "kernels_internal.h"

#if FQT_SIMD_DSP
static inline uint32_t rep4(int32_t v)
{
	return (uint32_t)(uint8_t)(int8_t)v * 0x01010101u;
}

/* err[i] = 0 unless lo <= output[i] <= hi (int8 bounds), four at a time: SSUB8 sets a GE
 * bit per byte where the signed difference is >= 0 and SEL keeps those bytes. Returns the
 * elements done (a multiple of 4). */
static size_t keep_in_range4(int8_t *err, const int8_t *output, size_t size, int32_t lo,
			     int32_t hi)
{
	const uint32_t vlo = rep4(lo), vhi = rep4(hi);
	size_t i = 0;
	for (; i + 4u <= size; i += 4u) {
		uint32_t y, e;
		memcpy(&y, output + i, sizeof(y)); /* unaligned words are fine on M4/M7 */
		memcpy(&e, err + i, sizeof(e));
		uint32_t t;
		/* one asm block: the GE bits must reach SEL untouched */
		__asm__("ssub8 %[t], %[y], %[lo]\n\t"
			"sel %[e], %[e], %[z]\n\t"
			"ssub8 %[t], %[hi], %[y]\n\t"
			"sel %[e], %[e], %[z]"
			: [e] "+r"(e), [t] "=&r"(t)
			: [y] "r"(y), [lo] "r"(vlo), [hi] "r"(vhi), [z] "r"(0u)
			: "cc");
		memcpy(err + i, &e, sizeof(e));
	}
	return i;
}
#endif

/* Where the open range (act_min, act_max) holds some int8 value, the elements before the
 * returned index are done. */
static size_t keep_open_range(int8_t *err, const int8_t *output, size_t size, int32_t act_min,
			      int32_t act_max)
{
#if FQT_SIMD_DSP
	const int32_t lo = act_min + 1, hi = act_max - 1;
	if (lo >= -128 && hi <= 127 && lo <= hi) {
		return keep_in_range4(err, output, size, lo, hi);
	}
#else
	(void)err, (void)output, (void)size, (void)act_min, (void)act_max;
#endif
	return 0u;
}

fqt_status fqt_activation_backward(int8_t *err, const int8_t *output, size_t size,
				   int32_t activation, int32_t act_min, int32_t act_max)
{
	if ((err == NULL || output == NULL) && size > 0u) {
		return FQT_ERR_ARGUMENT;
	}
	if (activation == 1) { /* FQT_ACTIVATION_RELU */
		for (size_t i = keep_open_range(err, output, size, act_min, 128); i < size; ++i) {
			err[i] = output[i] > act_min ? err[i] : 0;
		}
	} else if (activation == 3) { /* FQT_ACTIVATION_RELU6 */
		for (size_t i = keep_open_range(err, output, size, act_min, act_max); i < size;
		     ++i) {
			err[i] = (output[i] > act_min && output[i] < act_max) ? err[i] : 0;
		}
	}
	return FQT_OK;
}

void fqt_relu_clip_mask(int8_t *err, const int8_t *output, size_t size, int32_t act_max)
{
	for (size_t i = keep_open_range(err, output, size, -129, act_max); i < size; ++i) {
		err[i] = output[i] < act_max ? err[i] : 0;
	}
}

void fqt_saturation_mask(int8_t *err, const int8_t *output, size_t size, int32_t act_min,
			 int32_t act_max)
{
	/* Scalar: keep_open_range's SIMD scan zeroes every error outside (act_min, act_max),
	 * this mask only those of one sign there (it made the Cortex-M SIMD builds differ from
	 * the host: tests/python/test_cortex_m.py). */
	for (size_t i = 0; i < size; ++i) {
		const int8_t e = err[i];
		err[i] = (output[i] >= act_max && e < 0) || (output[i] <= act_min && e > 0) ? 0 : e;
	}
}
