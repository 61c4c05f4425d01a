/*
 * The narrow gradient state (docs/training-semantics.md 4.1; the twin of
 * scripts/fqt/golden/grad_state.py): int16 or int8 accumulator rows with an exponent per
 * output channel, into which each sample's exact int32 gradient rows (computed by the
 * weight-gradient kernels into a chunk of arena rows, train/backward.c) are merged: both
 * aligned to a common exponent, summed in int64, stored back narrow at the exponent the
 * sum's own max needs, rounded stochastically (the layer's own xorshift32) or to nearest.
 * The int32 bias sum stays int32 at the channel's exponent.
 */
#include "kernels/kernels_internal.h"
#include "train_internal.h"

/* The larger exponent's term is shifted left by at most this: an int32 term stays below
 * 2^62 and the other term is not shifted left, so the sum fits int64. */
#define FQT_GRAD_MAX_ALIGN 31

uint32_t fqt_grad_state_bytes(uint32_t grad_state)
{
	return grad_state == FQT_GRAD_STATE_INT16 ? 2u : (grad_state == FQT_GRAD_STATE_INT8 ? 1u : 4u);
}

uint32_t fqt_grad_state_params_bytes(uint32_t grad_state, uint32_t n_weights, uint32_t n_out)
{
	const uint32_t rows = (fqt_grad_state_bytes(grad_state) * n_weights + 3u) & ~3u;
	return rows + 4u * n_out + (grad_state != FQT_GRAD_STATE_INT32 ? 4u * n_out : 0u);
}

void fqt_grad_state_reset(fqt_train_layer *L)
{
	const size_t n_out = (size_t)L->n_out;
	if (L->acc_w != NULL) {
		memset(L->acc_w, 0, 4u * (size_t)L->n_weights);
	} else {
		memset(L->acc_n, 0, (size_t)L->grad_bytes * (size_t)L->n_weights);
		for (size_t c = 0; c < n_out; ++c) {
			L->grad_exps[c] = FQT_GRAD_EXP_EMPTY;
		}
	}
	memset(L->acc_b, 0, 4u * n_out);
	L->grad_exp = 0;
	L->count = 0;
}

/* x of exponent x_exp at exponent b: x << (x_exp - b), or RDBPOT64 down (shift <= 62). */
static inline int64_t align_to(int64_t x, int32_t x_exp, int32_t b)
{
	if (x_exp >= b) {
		return (int64_t)((uint64_t)x << (uint32_t)(x_exp - b));
	}
	const int32_t d = b - x_exp;
	return fqt_rdbpot64(x, d < 62 ? d : 62);
}

static inline uint64_t abs64(int64_t v)
{
	return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* floor(x / 2^n), 0 <= n <= 62, without relying on >> of a negative value */
static inline int64_t floor_shift(int64_t x, int n)
{
	return x < 0 ? ~(~x >> n) : x >> n;
}

static inline int64_t stored(const fqt_train_layer *L, size_t i)
{
	return L->grad_bytes == 2u ? ((const int16_t *)L->acc_n)[i]
				   : ((const int8_t *)L->acc_n)[i];
}

static inline void store(fqt_train_layer *L, size_t i, int64_t q)
{
	if (L->grad_bytes == 2u) {
		((int16_t *)L->acc_n)[i] = (int16_t)q;
	} else {
		((int8_t *)L->acc_n)[i] = (int8_t)q;
	}
}

/* S / 2^r rounded (r >= 1): to nearest (RDBPOT64), or floor plus one when a draw's top 16
 * bits fall below the 16 fraction bits under the cut. */
static inline int64_t round_sum(int64_t s, int r, uint32_t *rng)
{
	if (rng == NULL) {
		return fqt_rdbpot64(s, r);
	}
	const int64_t frac = r >= 16 ? floor_shift(s, r - 16) : (int64_t)((uint64_t)s << (16 - r));
	const int64_t d = (int64_t)(fqt_prng_next(rng) >> 16);
	return floor_shift(s, r) + (d < (frac & 0xFFFF) ? 1 : 0);
}

/* The same in int32 (r <= 24, |s| < 2^31): the fast path when every term fits. */
static inline int32_t floor_shift32(int32_t x, int n)
{
	return x < 0 ? ~(~x >> n) : x >> n;
}

static inline int32_t round_sum32(int32_t s, int r, uint32_t *rng)
{
	if (rng == NULL) {
		const int32_t mask = (int32_t)((1u << r) - 1u);
		const int32_t threshold = (mask >> 1) + (s < 0 ? 1 : 0);
		return floor_shift32(s, r) + ((s & mask) > threshold ? 1 : 0);
	}
	const int32_t frac = r >= 16 ? floor_shift32(s, r - 16) : (int32_t)((uint32_t)s << (16 - r));
	const int32_t d = (int32_t)(fqt_prng_next(rng) >> 16);
	return floor_shift32(s, r) + (d < (frac & 0xFFFF) ? 1 : 0);
}

static inline uint32_t abs32(int32_t v)
{
	return v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
}

/* A channel's merge where both terms, shifted left (by sa, sg >= 0), stay below 2^30: the
 * sums fit int32, the same values as the int64 path with half the work on a 32-bit core.
 * Returns r, or -1 when it does not apply. bl(max |x|) is taken as bl(OR of |x|). */
static int merge_row32(fqt_train_layer *L, size_t at, const int32_t *g, int empty, int sa,
		       int sg, int bits, int rb, uint32_t *rng)
{
	const size_t k_n = (size_t)L->row;
	uint32_t mg = 0;
	for (size_t k = 0; k < k_n; ++k) {
		mg |= abs32(g[k]);
	}
	if (sa < 0 || sg < 0 || fqt_bit_length64(mg) + sg > 30 || bits + sa > 30) {
		return -1;
	}
	const int16_t *a16 = L->grad_bytes == 2u ? (const int16_t *)L->acc_n + at : NULL;
	const int8_t *a8 = (const int8_t *)L->acc_n + at;
	uint32_t mx = 0;
	for (size_t k = 0; k < k_n; ++k) {
		const int32_t a = empty ? 0 : (a16 != NULL ? a16[k] : a8[k]);
		mx |= abs32((int32_t)((uint32_t)a << sa) + (int32_t)((uint32_t)g[k] << sg));
	}
	int r = fqt_bit_length64(mx) - bits;
	r = r > rb ? r : rb;
	r = r > 0 ? r : 0;
	const int32_t lim = (int32_t)((1u << bits) - 1u);
	for (size_t k = 0; k < k_n; ++k) {
		const int32_t a = empty ? 0 : (a16 != NULL ? a16[k] : a8[k]);
		const int32_t s = (int32_t)((uint32_t)a << sa) + (int32_t)((uint32_t)g[k] << sg);
		int32_t q = r == 0 ? s : round_sum32(s, r, rng);
		q = q > lim ? lim : (q < -lim ? -lim : q);
		store(L, at + k, q);
	}
	return r;
}

/* One channel: stored row (G) + the sample's int32 row g and bias h (E). */
static void merge_channel(fqt_train_layer *L, int32_t c, const int32_t *g, int32_t h, int32_t e,
			  uint32_t *rng)
{
	const size_t k_n = (size_t)L->row;
	const size_t at = (size_t)c * k_n;
	const int32_t gx = L->grad_exps[c];
	const int empty = gx == FQT_GRAD_EXP_EMPTY;
	int32_t b = e;
	if (!empty) {
		const int32_t lo = gx < e ? gx : e;
		const int32_t hi = gx < e ? e : gx;
		b = hi - FQT_GRAD_MAX_ALIGN > lo ? hi - FQT_GRAD_MAX_ALIGN : lo;
	}
	int64_t t = align_to(h, e, b);
	if (!empty) {
		t += align_to(L->acc_b[c], gx, b);
	}
	const int bits = L->grad_bytes == 2u ? 15 : 7;
	const int rb = fqt_bit_length64(abs64(t)) - 31; /* the bias sum must fit int32 too */
	int r = merge_row32(L, at, g, empty, empty ? 0 : gx - b, e - b, bits, rb, rng);
	if (r < 0) {
		/* pass 1: the sum's max |value| (the sums are recomputed in pass 2, not stored) */
		uint64_t mx = 0;
		for (size_t k = 0; k < k_n; ++k) {
			int64_t s = align_to(g[k], e, b);
			if (!empty) {
				s += align_to(stored(L, at + k), gx, b);
			}
			const uint64_t a = abs64(s);
			mx = a > mx ? a : mx;
		}
		const int64_t lim = ((int64_t)1 << bits) - 1;
		r = fqt_bit_length64(mx) - bits;
		r = r > rb ? r : rb;
		r = r > 0 ? r : 0;
		/* pass 2: store the rounded sums */
		for (size_t k = 0; k < k_n; ++k) {
			int64_t s = align_to(g[k], e, b);
			if (!empty) {
				s += align_to(stored(L, at + k), gx, b);
			}
			int64_t q = r == 0 ? s : round_sum(s, r, rng);
			q = q > lim ? lim : (q < -lim ? -lim : q);
			store(L, at + k, q);
		}
	}
	L->acc_b[c] = (int32_t)fqt_sat32_64(fqt_rdbpot64(t, r));
	L->grad_exps[c] = b + r;
}

void fqt_grad_state_merge(fqt_train_layer *L, const fqt_grad_sink *s, const uint16_t *kept,
			  int32_t n_kept, int32_t e, int nearest)
{
	uint32_t *rng = nearest ? NULL : &L->grad_rng;
	for (int32_t j = 0; j < n_kept; ++j) {
		const int32_t c = kept[j];
		merge_channel(L, c, fqt_grad_row(s, c), *fqt_grad_bias(s, c), e, rng);
	}
}

const int32_t *fqt_grad_state_row(const fqt_trainer *t, const fqt_train_layer *L, int32_t c)
{
	const size_t at = (size_t)c * (size_t)L->row;
	if (L->acc_w != NULL) {
		return L->acc_w + at;
	}
	int32_t *row = (int32_t *)(void *)fqt_train_buffer(t, L->rows_buf);
	for (size_t k = 0; k < (size_t)L->row; ++k) {
		row[k] = (int32_t)stored(L, at + k);
	}
	return row;
}
