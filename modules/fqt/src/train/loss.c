/* Softmax cross-entropy on the int8 probabilities (docs/training-semantics.md section 3;
 * scripts/fqt/golden/loss.py): the error at the logits and the reported loss. */
#include <math.h>

#include "fqt/trainer.h"
#include "kernels/kernels_internal.h"

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

/* Squared error against an int8 target in the output's quantization (section 3.1):
 * d = y - t, acc = d * M with (M, shift) = QuantizeMultiplier(s_out), so that
 * real(acc) = acc * 2^(shift - 31) = s_out * d = dL/dy of L = 1/2 sum (y_real - t_real)^2. */
void fqt_loss_mse_backward(const int8_t *y, const int8_t *target, int32_t depth, int32_t mult,
			   int32_t shift, int fixed_scaling, int8_t *e, int32_t *exponent,
			   uint32_t *magnitude)
{
	uint64_t m = 0;
	uint32_t l = 0;
	for (int32_t c = 0; c < depth; ++c) {
		const int64_t acc = (int64_t)((int32_t)y[c] - (int32_t)target[c]) * (int64_t)mult;
		const int32_t d = (int32_t)y[c] - (int32_t)target[c];
		l += (uint32_t)(d < 0 ? -d : d);
		const uint64_t a = (uint64_t)(acc < 0 ? -acc : acc);
		m = a > m ? a : m;
	}
	const int r = fqt_error_shift(m, shift - 31, fixed_scaling, exponent);
	for (int32_t c = 0; c < depth; ++c) {
		const int64_t acc = (int64_t)((int32_t)y[c] - (int32_t)target[c]) * (int64_t)mult;
		e[c] = fqt_error_quantize_one(acc, fixed_scaling, r);
	}
	*magnitude = l;
}

/* 1/2 sum (s_out (y - t))^2 x 1e6, rounded, saturated to UINT32_MAX. */
uint32_t fqt_loss_mse_micro(const int8_t *y, const int8_t *target, int32_t depth, float s_out)
{
	uint64_t s2 = 0;
	for (int32_t c = 0; c < depth; ++c) {
		const int64_t d = (int64_t)y[c] - (int64_t)target[c];
		s2 += (uint64_t)(d * d);
	}
	const double loss = 0.5 * (double)s2 * (double)s_out * (double)s_out * 1e6 + 0.5;
	return loss >= 4294967295.0 ? 4294967295u : (uint32_t)loss;
}
