/* Softmax cross-entropy on the int8 probabilities (docs/training-semantics.md section 3;
 * scripts/fqt/golden/loss.py), and the error-tensor helpers every backward shares:
 * quantize_error (2.1), the weight-scale fold (2.2), the fused-activation mask (5.1). */
#include <math.h>

#include "fqt/trainer.h"
#include "quant.h"
#include "train_internal.h"

void fqt_quantize_multiplier(double d, int32_t *multiplier, int *shift)
{
	if (d == 0.0) {
		*multiplier = 0;
		*shift = 0;
		return;
	}
	int sh;
	const double q = frexp(d, &sh);
	int64_t q_fixed = (int64_t)round(q * 2147483648.0);
	if (q_fixed == ((int64_t)1 << 31)) {
		q_fixed /= 2;
		++sh;
	}
	if (sh < -31) {
		sh = 0;
		q_fixed = 0;
	}
	*multiplier = (int32_t)q_fixed;
	*shift = sh;
}

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

void fqt_quantize_error_s32(const int32_t *acc, size_t n, int32_t base, int fixed,
			    int8_t *out, int32_t *exponent)
{
	uint64_t m = 0;
	for (size_t i = 0; i < n; ++i) {
		const int64_t a = acc[i];
		const uint64_t v = (uint64_t)(a < 0 ? -a : a);
		m = v > m ? v : m;
	}
	const int r = fqt_error_shift(m, base, fixed, exponent);
	for (size_t i = 0; i < n; ++i) {
		const int32_t a = acc[i];
		out[i] = fqt_error_quantize_one(a, fixed, r);
	}
}

int fqt_fold_exponent(const void *scales, uint32_t count)
{
	float mx = fqt_read_f32(scales, 0);
	for (uint32_t c = 1; c < count; ++c) {
		const float s = fqt_read_f32(scales, c);
		mx = s > mx ? s : mx;
	}
	int p;
	(void)frexp((double)mx, &p);
	return p;
}

void fqt_fold_multiplier(const void *scales, uint32_t count, int32_t channel, int p,
			 int32_t *multiplier, int *shift)
{
	const float s = fqt_read_f32(scales, count > 1u ? (size_t)channel : 0u);
	fqt_quantize_multiplier(ldexp((double)s, -p), multiplier, shift);
}

fqt_status fqt_activation_backward(int8_t *err, const int8_t *output, size_t size,
				   int32_t activation, int32_t act_min, int32_t act_max)
{
	if ((err == NULL || output == NULL) && size > 0u) {
		return FQT_ERR_ARGUMENT;
	}
	if (activation == 1) {
		for (size_t i = 0; i < size; ++i) {
			err[i] = output[i] > act_min ? err[i] : 0;
		}
	} else if (activation == 3) {
		for (size_t i = 0; i < size; ++i) {
			err[i] = (output[i] > act_min && output[i] < act_max) ? err[i] : 0;
		}
	}
	return FQT_OK;
}

#define FQT_PROB_ZERO_POINT (-128)

void fqt_loss_backward(const int8_t *p, int32_t depth, uint32_t label, int fixed_scaling,
		       int8_t *e, int32_t *exponent, uint32_t *magnitude)
{
	/* d[c] = (p[c] + 128) - 256 (c == label), recomputed in the second pass so that e
	 * may be the same memory as p. */
	uint64_t m = 0;
	uint32_t l = 0;
	for (int32_t c = 0; c < depth; ++c) {
		const int32_t d = (p[c] - FQT_PROB_ZERO_POINT) - ((uint32_t)c == label ? 256 : 0);
		const uint32_t a = (uint32_t)(d < 0 ? -d : d);
		l += a;
		m = a > m ? a : m;
	}
	const int r = fqt_error_shift(m, -8, fixed_scaling, exponent);
	for (int32_t c = 0; c < depth; ++c) {
		const int32_t d = (p[c] - FQT_PROB_ZERO_POINT) - ((uint32_t)c == label ? 256 : 0);
		e[c] = fqt_error_quantize_one(d, fixed_scaling, r);
	}
	*magnitude = l;
}

uint32_t fqt_loss_micro(const int8_t *p, uint32_t label)
{
	int32_t py = p[label] - FQT_PROB_ZERO_POINT;
	py = py > 1 ? py : 1;
	const double loss = -log((double)py / 256.0);
	return (uint32_t)(loss * 1e6 + 0.5);
}
