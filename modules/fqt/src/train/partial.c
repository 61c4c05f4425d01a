/* Dynamic partial gradient updates (docs/training-semantics.md section 6;
 * scripts/fqt/golden/partial.py). */
#include "fqt/trainer.h"

int32_t fqt_partial_fraction(uint32_t magnitude, uint32_t *l_max, int32_t lambda_q15)
{
	if (magnitude > *l_max) {
		*l_max = magnitude;
	}
	const int64_t eps = *l_max != 0u ? ((int64_t)magnitude << 15) / (int64_t)*l_max : 0;
	int64_t frac = lambda_q15 + ((eps * (FQT_Q15_ONE - lambda_q15)) >> 15);
	if (frac > FQT_Q15_ONE) {
		frac = FQT_Q15_ONE;
	}
	return (int32_t)frac;
}

int32_t fqt_partial_keep_count(int32_t frac_q15, int32_t n_channels)
{
	const int32_t k = (int32_t)(((int64_t)frac_q15 * n_channels) >> 15);
	return k > 1 ? k : 1;
}

/* score[c] = sum over positions |err[p][c]|; the k largest, ties to the lower index; the
 * kept list comes out ascending. O(k N) selection, no sorting scratch. */
int32_t fqt_partial_select(const int8_t *err, int32_t positions, int32_t n_channels, int32_t k,
			   int32_t *score, uint16_t *kept)
{
	for (int32_t c = 0; c < n_channels; ++c) {
		score[c] = 0;
	}
	for (int32_t p = 0; p < positions; ++p) {
		const int8_t *e = err + (size_t)p * (size_t)n_channels;
		for (int32_t c = 0; c < n_channels; ++c) {
			score[c] += e[c] < 0 ? -(int32_t)e[c] : e[c];
		}
	}
	if (k > n_channels) {
		k = n_channels;
	}
	for (int32_t j = 0; j < k; ++j) {
		int32_t best = -1;
		for (int32_t c = 0; c < n_channels; ++c) {
			if (score[c] >= 0 && (best < 0 || score[c] > score[best])) {
				best = c;
			}
		}
		score[best] = -1; /* taken */
	}
	int32_t n = 0;
	for (int32_t c = 0; c < n_channels; ++c) {
		if (score[c] < 0) {
			kept[n++] = (uint16_t)c;
		}
	}
	return n;
}
