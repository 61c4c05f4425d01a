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
