/*
 * The error tensors' arithmetic (docs/training-semantics.md section 2;
 * scripts/fqt/golden/error_quant.py): quantize_error of int32/int64 accumulators to int8
 * with a power-of-two exponent (2.1), the weight-scale fold of the input-error kernels (2.2)
 * and the combination of two errors of one tensor (2.3).
 */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"
#include "quant.h"

static int8_t clamp_error(int64_t v)
{
	return (int8_t)(v < -FQT_ERROR_MAX ? -FQT_ERROR_MAX : (v > FQT_ERROR_MAX ? FQT_ERROR_MAX : v));
}

/* The shift r (dynamic) or the fixed-mode conversion of one element. */
int8_t fqt_error_quantize_one(int64_t a, int fixed, int r)
{
	if (!fixed || r >= 0) {
		return clamp_error(fqt_rdbpot64(a, r > 62 ? 62 : r));
	}
	const int s = -r < FQT_FIXED_SHIFT_CAP ? -r : FQT_FIXED_SHIFT_CAP;
	return clamp_error(fqt_sat32_64(a) * ((int64_t)1 << s));
}

int fqt_error_shift(uint64_t max_abs, int32_t base, int fixed, int32_t *exponent)
{
	if (fixed) {
		*exponent = FQT_FIXED_ERROR_EXP;
		return FQT_FIXED_ERROR_EXP - base;
	}
	const int bl = fqt_bit_length64(max_abs);
	const int r = bl > 7 ? bl - 7 : 0;
	*exponent = base + r;
	return r;
}

/* The int32 form of fqt_error_quantize_one for the dynamic case (0 < r <= 30, |a| < 2^30):
 * RDBPOT(a, r) = floor((a + 2^(r-1) - [a < 0]) / 2^r), which cannot overflow here; then the
 * clamp to +-127. Same integers as the int64 path, a few instructions an element. */
static inline void quantize_shift32(const int32_t *acc, size_t n, int r, int8_t *out,
				    size_t stride)
{
	const int32_t half = (int32_t)1 << (r - 1);
	for (size_t i = 0; i < n; ++i) {
		const int32_t a = acc[i];
		int32_t q = fqt_arithmetic_shift_right(a + half - (a < 0), r);
		q = q > FQT_ERROR_MAX ? FQT_ERROR_MAX : q;
		q = q < -FQT_ERROR_MAX ? -FQT_ERROR_MAX : q;
		out[i * stride] = (int8_t)q;
	}
}

/* max |a| from the int32 extremes: |INT32_MIN| = 2^31 in uint64 */
static uint64_t max_abs_s32(const int32_t *acc, size_t n)
{
	int32_t hi = 0, lo = 0;
	for (size_t i = 0; i < n; ++i) {
		const int32_t a = acc[i];
		hi = a > hi ? a : hi;
		lo = a < lo ? a : lo;
	}
	const uint64_t neg = (uint64_t)(-(int64_t)lo);
	return neg > (uint64_t)hi ? neg : (uint64_t)hi;
}

/* The elements of quantize_error with shift r, m = max |acc| of these n (any subset of the
 * tensor: each branch gives fqt_error_quantize_one's integers, m only picks the fastest),
 * written `stride` bytes apart (inline: the default path's constant stride 1 stays the plain
 * loop it was; out of line it cost 64 K instructions a KWS step on M4). */
static inline void quantize_shifted(const int32_t *acc, size_t n, int r, int fixed, uint64_t m,
				    int8_t *out, size_t stride)
{
	if (r == 0 && m <= (uint64_t)FQT_ERROR_MAX) {
		for (size_t i = 0; i < n; ++i) {
			out[i * stride] = (int8_t)acc[i]; /* |a| <= 127: unchanged */
		}
		return;
	}
	if (r > 0 && r <= 30 && m < ((uint64_t)1 << 30)) {
		quantize_shift32(acc, n, r, out, stride);
		return;
	}
	for (size_t i = 0; i < n; ++i) {
		out[i * stride] = fqt_error_quantize_one(acc[i], fixed, r);
	}
}

void fqt_quantize_error_s32(const int32_t *acc, size_t n, int32_t base, int fixed,
			    int8_t *out, int32_t *exponent)
{
	const uint64_t m = max_abs_s32(acc, n);
	const int r = fqt_error_shift(m, base, fixed, exponent);
	quantize_shifted(acc, n, r, fixed, m, out, 1u);
}

void fqt_error_sink_put(fqt_error_sink *s, const int32_t *acc, size_t at, size_t n)
{
	const uint64_t m = max_abs_s32(acc, n);
	if (s->pass == 0) {
		s->max_abs = m > s->max_abs ? m : s->max_abs;
		return;
	}
	quantize_shifted(acc, n, s->r, s->fixed, m, s->out + at, 1u);
}

void fqt_error_sink_put_strided(fqt_error_sink *s, const int32_t *acc, size_t at, size_t n,
				size_t stride)
{
	const uint64_t m = max_abs_s32(acc, n);
	if (s->pass == 0) {
		s->max_abs = m > s->max_abs ? m : s->max_abs;
		return;
	}
	quantize_shifted(acc, n, s->r, s->fixed, m, s->out + at, stride);
}

int fqt_error_sink_begin(fqt_error_sink *s, int8_t *out, int fixed, int32_t base,
			 int32_t *exponent)
{
	s->out = out;
	s->fixed = fixed;
	s->max_abs = 0u;
	s->base = base;
	s->exponent = exponent;
	/* fixed scaling: r does not depend on the sums, so one pass */
	s->pass = fixed ? 1 : 0;
	s->r = fixed ? fqt_error_shift(0u, base, fixed, exponent) : 0;
	return s->pass;
}

void fqt_error_sink_next(fqt_error_sink *s)
{
	s->r = fqt_error_shift(s->max_abs, s->base, s->fixed, s->exponent);
	s->pass = 1;
}

/* The fold from the float's bits (section 2.2), no double arithmetic (soft-float calls on
 * M3/M4, a few hundred instructions a channel): a finite float s = +-M * 2^k with M in
 * [2^23, 2^24) (a denormal's mantissa normalized) has frexp exponent k + 24, and
 * QuantizeMultiplier(ldexp(s, -P)) is exact: q * 2^31 = M * 2^7, shift k + 24 - P (ldexp
 * by P in [-148, 129] stays inside double's normal range). Inf and NaN: exponent 0,
 * multiplier (0, 0), in golden error_quant.py too. */
static uint32_t f32_bits(const void *p, size_t i)
{
	uint32_t u;
	memcpy(&u, (const uint8_t *)p + 4u * i, sizeof(u));
	return u;
}

int fqt_fold_exponent(const void *scales, uint32_t count)
{
	float mx = fqt_read_f32(scales, 0);
	uint32_t at = 0;
	for (uint32_t c = 1; c < count; ++c) {
		const float s = fqt_read_f32(scales, c);
		if (s > mx) {
			mx = s;
			at = c;
		}
	}
	const uint32_t u = f32_bits(scales, at);
	int32_t mant;
	int k;
	if ((u & 0x7FFFFFFFu) == 0u) {
		return 0; /* frexp(0) */
	}
	if (fqt_f32_mantissa(u, &mant, &k)) {
		return k + 24;
	}
	return 0; /* Inf or NaN (a diverged run): no exponent */
}

void fqt_fold_multiplier(const void *scales, uint32_t count, int32_t channel, int p,
			 int32_t *multiplier, int *shift)
{
	const size_t i = count > 1u ? (size_t)channel : 0u;
	const uint32_t u = f32_bits(scales, i);
	int32_t mant;
	int k;
	if ((u & 0x7FFFFFFFu) == 0u) {
		*multiplier = 0;
		*shift = 0;
		return;
	}
	if (fqt_f32_mantissa(u, &mant, &k)) {
		const int sh = k + 24 - p;
		if (sh < -31) {
			*multiplier = 0;
			*shift = 0;
			return;
		}
		*multiplier = (u >> 31) != 0u ? -(mant << 7) : (mant << 7);
		*shift = sh;
		return;
	}
	*multiplier = 0; /* Inf or NaN (a diverged run) */
	*shift = 0;
}

/* Two at a time, in delivery order, for any number of consumers (the golden align_errors
 * folds the same way). */
void fqt_combine_errors_s8(int8_t *dst, int32_t *dst_exp, const int8_t *src, int32_t src_exp,
			   size_t n, int fixed)
{
	const int32_t lo = *dst_exp < src_exp ? *dst_exp : src_exp;
	const int s1 = *dst_exp - lo < 24 ? *dst_exp - lo : 24;
	const int s2 = src_exp - lo < 24 ? src_exp - lo : 24;
	uint64_t mx = 0;
	for (size_t i = 0; i < n; ++i) {
		const int64_t v = (int64_t)dst[i] * ((int64_t)1 << s1) +
				  (int64_t)src[i] * ((int64_t)1 << s2);
		const uint64_t a = (uint64_t)(v < 0 ? -v : v);
		mx = a > mx ? a : mx;
	}
	const int r = fqt_error_shift(mx, lo, fixed, dst_exp);
	for (size_t i = 0; i < n; ++i) {
		const int64_t v = (int64_t)dst[i] * ((int64_t)1 << s1) +
				  (int64_t)src[i] * ((int64_t)1 << s2);
		dst[i] = fqt_error_quantize_one(v, fixed, r);
	}
}
