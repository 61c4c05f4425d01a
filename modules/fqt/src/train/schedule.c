/* The learning rate of each epoch (docs/training-semantics.md 7.2;
 * scripts/fqt/golden/schedule.py). float32 operations only and a fixed Taylor polynomial for
 * the cosine instead of libm's, so the host, which hands the lr to the engine, and the
 * device's train job, which computes it here, get the same bits. */
#include "fqt/trainer.h"

/* (-1)^k / (2k)!, k = 0..7, each the double quotient rounded once to float (folded by the
 * compiler: no double at run time). */
static const float cos_taylor[8] = {
	1.0f,
	(float)(-1.0 / 2.0),
	(float)(1.0 / 24.0),
	(float)(-1.0 / 720.0),
	(float)(1.0 / 40320.0),
	(float)(-1.0 / 3628800.0),
	(float)(1.0 / 479001600.0),
	(float)(-1.0 / 87178291200.0),
};

/* cos(pi/2 * t) for t in [0, 1]: Horner in a^2 from the highest term. */
static float cos_half_turn(float t)
{
	const float a = t * (float)(3.14159265358979323846 / 2.0);
	const float z = a * a;
	float c = cos_taylor[7];
	for (int k = 6; k >= 0; k--) {
		c = c * z + cos_taylor[k];
	}
	return c;
}

float fqt_scheduled_lr(const fqt_lr_schedule *s, uint32_t epoch, uint32_t epochs)
{
	const uint32_t w = s->warmup_epochs;
	if (epoch <= w) {
		return s->lr * (float)epoch / (float)(w + 1u);
	}
	const uint32_t i = epoch - w - 1u;
	if (s->kind == FQT_SCHEDULE_STEP) {
		float p = 1.0f;
		for (uint32_t n = s->step_epochs != 0u ? i / s->step_epochs : 0u; n > 0u; n--) {
			p = p * s->step_gamma;
		}
		return s->lr * p;
	}
	if (s->kind == FQT_SCHEDULE_COSINE) {
		const uint32_t span = epochs > w ? epochs - w : 1u;
		const float c = cos_half_turn((float)i / (float)span);
		return s->lr * (c * c);
	}
	return s->lr;
}
