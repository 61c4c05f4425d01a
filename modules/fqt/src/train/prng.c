/* xorshift32 (Marsaglia 2003, shifts 13, 17, 5): the one random source of training
 * (docs/training-semantics.md section 7; scripts/fqt/golden/prng.py). */
#include "fqt/trainer.h"

#define FQT_SEED_MIX 0x9E3779B9u

uint32_t fqt_prng_seed(uint32_t seed)
{
	const uint32_t s = seed ^ FQT_SEED_MIX;
	return s != 0u ? s : FQT_SEED_MIX;
}

uint32_t fqt_prng_next(uint32_t *state)
{
	uint32_t x = *state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}
