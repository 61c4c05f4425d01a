/* Training pieces on hand-worked values: xorshift32, the softmax cross-entropy error,
 * quantize_error and the partial-update selection (docs/training-semantics.md). */
#include <stdio.h>
#include <string.h>

#include "fqt/trainer.h"
#include "fqt_test.h"
#include "kernels/kernels_internal.h"
#include "kernels/quant.h"
#include "train/train_internal.h"
#include <math.h>

static void test_prng(void)
{
	/* seed 0 -> state 0x9E3779B9; x ^= x << 13; x ^= x >> 17; x ^= x << 5. */
	uint32_t s = fqt_prng_seed(0);
	CHECK_EQ_INT(s, 0x9E3779B9u);
	CHECK_EQ_INT(fqt_prng_next(&s), 0x510C4619u);
	CHECK_EQ_INT(fqt_prng_next(&s), 0xE02E553Eu);
	CHECK_EQ_INT(fqt_prng_next(&s), 0x7BB98F3Au);
	/* seed == the mix constant would give state 0: replaced by the constant. */
	s = fqt_prng_seed(0x9E3779B9u);
	CHECK_EQ_INT(s, 0x9E3779B9u);
	/* state 1: 1 ^ 1<<13 = 0x2001; ^ >>17 = 0x2001; ^ <<5 = 0x2001 ^ 0x40020 = 0x42021. */
	s = 1u;
	CHECK_EQ_INT(fqt_prng_next(&s), 0x42021u);
}

static void test_loss(void)
{
	int8_t e[4];
	int32_t ex = 0;
	uint32_t l = 0;
	/* p = (0, 255, 0, 0)/256, label 1: d = (0, -1, 0, 0), exact: r = 0, E = -8, l = 1. */
	const int8_t p1[4] = {-128, 127, -128, -128};
	fqt_loss_backward(p1, 4, 1, 0, e, &ex, &l);
	CHECK_EQ_INT(e[0], 0);
	CHECK_EQ_INT(e[1], -1);
	CHECK_EQ_INT(ex, -8);
	CHECK_EQ_INT(l, 1);
	/* label 0: d = (-256, 255, 0, 0), max 256 has 9 bits: r = 2, E = -6,
	 * e = (RDBPOT(-256, 2), RDBPOT(255, 2)) = (-64, 64 (63.75 rounds up)), l = 511. */
	fqt_loss_backward(p1, 4, 0, 0, e, &ex, &l);
	CHECK_EQ_INT(e[0], -64);
	CHECK_EQ_INT(e[1], 64);
	CHECK_EQ_INT(e[2], 0);
	CHECK_EQ_INT(ex, -6);
	CHECK_EQ_INT(l, 511);
	/* fixed scaling: E = -7, r = 1: (-128 -> -127 clamped, 127.5 -> 128 -> 127). */
	fqt_loss_backward(p1, 4, 0, 1, e, &ex, &l);
	CHECK_EQ_INT(e[0], -127);
	CHECK_EQ_INT(e[1], 127);
	CHECK_EQ_INT(ex, -7);
	/* uniform p = 64/256 each, label 2: d = (64, 64, -192, 64): 8 bits, r = 1, E = -7,
	 * e = (32, 32, -96, 32), l = 384. */
	const int8_t p2[4] = {-64, -64, -64, -64};
	fqt_loss_backward(p2, 4, 2, 0, e, &ex, &l);
	CHECK_EQ_INT(e[0], 32);
	CHECK_EQ_INT(e[2], -96);
	CHECK_EQ_INT(ex, -7);
	CHECK_EQ_INT(l, 384);
	/* reported loss: -ln(64/256) = 1.386294 */
	CHECK_EQ_INT(fqt_loss_micro(p2, 2), 1386294);
	CHECK_EQ_INT(fqt_loss_micro(p1, 0), 5545177); /* -ln(1/256) */
}

static void test_quantize_error(void)
{
	const int32_t acc[3] = {1000, -3, 0};
	int8_t out[3];
	int32_t ex;
	/* 1000 has 10 bits: r = 3, 1000/8 = 125, -3/8 = -0.375 -> 0. */
	fqt_quantize_error_s32(acc, 3, -10, 0, out, &ex);
	CHECK_EQ_INT(out[0], 125);
	CHECK_EQ_INT(out[1], 0);
	CHECK_EQ_INT(ex, -7);
	/* fixed, base -5: r = -2 < 0: shifted left by 2 and clamped. */
	fqt_quantize_error_s32(acc, 3, -5, 1, out, &ex);
	CHECK_EQ_INT(out[0], 127);
	CHECK_EQ_INT(out[1], -12);
	CHECK_EQ_INT(ex, -7);
}

static void test_partial(void)
{
	uint32_t l_max = 0;
	/* lambda 0.5 (16384): first sample eps = 1, frac = 1; then l = l_max / 2: 0.75. */
	CHECK_EQ_INT(fqt_partial_fraction(200, &l_max, 16384), 32768);
	CHECK_EQ_INT(fqt_partial_fraction(100, &l_max, 16384), 24576);
	CHECK_EQ_INT(l_max, 200);
	CHECK_EQ_INT(fqt_partial_keep_count(24576, 4), 3);
	CHECK_EQ_INT(fqt_partial_keep_count(0, 4), 1);
	/* two positions, 4 channels: scores (2, 5, 5, 1): top 2 = channels 1, 2 (tie: lower). */
	const int8_t err[8] = {1, -3, 4, 0, 1, 2, -1, -1};
	int32_t score[4];
	uint16_t kept[4];
	CHECK_EQ_INT(fqt_partial_select(err, 2, 4, 2, score, kept), 2);
	CHECK_EQ_INT(kept[0], 1);
	CHECK_EQ_INT(kept[1], 2);
	CHECK_EQ_INT(fqt_partial_select(err, 2, 4, 3, score, kept), 3);
	CHECK_EQ_INT(kept[0], 0);
	CHECK_EQ_INT(kept[2], 2);
}

/* The integer softmax parameters equal TFLM's double PreprocessSoftmaxScaling(1, s, 5) and
 * CalculateInputRadius(5, shift) on random scales of every exponent below 32. */
static void test_softmax_params_without_double(void)
{
	uint32_t x = 99u;
	int bad = 0;
	for (int i = 0; i < 200000; ++i) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		const uint32_t bits = ((60u + (x >> 26)) << 23) | (x & 0x7FFFFFu); /* 2^-67 .. 2^-4 */
		const uint32_t bits2 = i & 1 ? bits : bits + (64u << 23);          /* .. 2^60 */
		float s;
		memcpy(&s, &bits2, sizeof(s));
		double real = s * (double)(1u << 26);
		real = real < 2147483647.0 ? real : 2147483647.0;
		int32_t m;
		int sh;
		fqt_quantize_multiplier(real, &m, &sh);
		const double radius = 31.0 * (double)(1u << 26) / ldexp(1.0, sh);
		fqt_softmax_params p;
		fqt_train_softmax_params(s, &p);
		bad += p.input_multiplier != m || p.input_left_shift != sh ||
		       (radius < 2147483647.0 && p.diff_min != -(int32_t)floor(radius));
	}
	CHECK_EQ_INT(bad, 0);
}

/* The narrow gradient state's merge (docs/training-semantics.md 4.1) on hand-worked rows:
 * an int8 layer of 2 channels x 3 weights. */
static void test_grad_state_merge(void)
{
	int8_t rows[6] = {0};
	int32_t bias[2] = {0};
	int32_t exps[2];
	fqt_train_layer L;
	memset(&L, 0, sizeof(L));
	L.n_out = 2;
	L.row = 3;
	L.n_weights = 6;
	L.acc_n = rows;
	L.acc_b = bias;
	L.grad_exps = exps;
	L.grad_bytes = 1;
	fqt_grad_state_reset(&L);
	CHECK_EQ_INT(exps[0], FQT_GRAD_EXP_EMPTY);
	CHECK_EQ_INT(exps[1], FQT_GRAD_EXP_EMPTY);
	/* per-sample rows of channel 1 only (a chunk from base 1): sink rows [1][3], bias [1] */
	int32_t g[3] = {300, -5, 0};
	int32_t h = 1000;
	fqt_grad_sink s = {g, &h, 3, FQT_GRAD_FIRST, 0, 1};
	const uint16_t one = 1;
	/* empty: B = E = -3; max 300 needs r = 2: 75, -1 (-1.25), 0; bias 250; G = -1 */
	fqt_grad_state_merge(&L, &s, &one, 1, -3, 1);
	CHECK_EQ_INT(rows[3], 75);
	CHECK_EQ_INT(rows[4], -1);
	CHECK_EQ_INT(rows[5], 0);
	CHECK_EQ_INT(bias[1], 250);
	CHECK_EQ_INT(exps[1], -1);
	CHECK_EQ_INT(exps[0], FQT_GRAD_EXP_EMPTY); /* not kept: untouched */
	CHECK_EQ_INT(rows[0], 0);
	/* same exponent: S = {75 - 300, -1 + 8, 0 + 4} = {-225, 7, 4}, r = 1, nearest half
	 * away from zero: -113, 4, 2; bias (250 - 1000) / 2 = -375; G = 0 */
	g[0] = -300;
	g[1] = 8;
	g[2] = 4;
	h = -1000;
	fqt_grad_state_merge(&L, &s, &one, 1, -1, 1);
	CHECK_EQ_INT(rows[3], -113);
	CHECK_EQ_INT(rows[4], 4);
	CHECK_EQ_INT(rows[5], 2);
	CHECK_EQ_INT(bias[1], -375);
	CHECK_EQ_INT(exps[1], 0);
	/* a gap past 31: stored {100, -100, 1} at -40, sample {1, 2, 3} at 0: B = -31, the
	 * stored row rounds to 0 (/ 2^9), the sample's is << 31: max 3 * 2^31 needs r = 26:
	 * {32, 64, 96} at -5 (= {1, 2, 3} exactly); bias 7 / 2^9 -> 0 */
	rows[3] = 100;
	rows[4] = -100;
	rows[5] = 1;
	bias[1] = 7;
	exps[1] = -40;
	g[0] = 1;
	g[1] = 2;
	g[2] = 3;
	h = 0;
	fqt_grad_state_merge(&L, &s, &one, 1, 0, 1);
	CHECK_EQ_INT(rows[3], 32);
	CHECK_EQ_INT(rows[4], 64);
	CHECK_EQ_INT(rows[5], 96);
	CHECK_EQ_INT(bias[1], 0);
	CHECK_EQ_INT(exps[1], -5);
	/* stochastic, channel 0 empty: {101, 1000, 0}, r = 3; one draw per element from the
	 * layer's generator (seed 0: 0x510C4619, 0xE02E553E, 0x7BB98F3A): 101 / 8 = 12 + 5/8,
	 * fraction 5 << 13 = 40960 > 0x510C: 13; 1000 / 8 = 125 exactly; 0 */
	int32_t g0[3] = {101, 1000, 0};
	int32_t h0 = 0;
	fqt_grad_sink s0 = {g0, &h0, 3, FQT_GRAD_FIRST, 0, 0};
	const uint16_t zero = 0;
	L.grad_rng = fqt_prng_seed(0);
	fqt_grad_state_merge(&L, &s0, &zero, 1, 2, 0);
	CHECK_EQ_INT(rows[0], 13);
	CHECK_EQ_INT(rows[1], 125);
	CHECK_EQ_INT(rows[2], 0);
	CHECK_EQ_INT(exps[0], 5);
	CHECK_EQ_INT(L.grad_rng, 0x7BB98F3Au);
	/* the int8 limit: 255 at r = 1 rounds to 128 (nearest), clamped to 127 */
	g0[0] = 255;
	g0[1] = 0;
	g0[2] = -1;
	exps[0] = FQT_GRAD_EXP_EMPTY;
	fqt_grad_state_merge(&L, &s0, &zero, 1, 0, 1);
	CHECK_EQ_INT(rows[0], 127);
	CHECK_EQ_INT(rows[2], -1); /* -0.5 rounds away from zero */
	CHECK_EQ_INT(exps[0], 1);
	/* params: int8 rows 4-aligned + bias sums + exponents; int32: rows + bias sums */
	CHECK_EQ_INT(fqt_grad_state_params_bytes(FQT_GRAD_STATE_INT8, 6, 2), 8 + 8 + 8);
	CHECK_EQ_INT(fqt_grad_state_params_bytes(FQT_GRAD_STATE_INT16, 6, 2), 12 + 8 + 8);
	CHECK_EQ_INT(fqt_grad_state_params_bytes(FQT_GRAD_STATE_INT32, 6, 2), 24 + 8);
}

int main(void)
{
	test_grad_state_merge();
	test_softmax_params_without_double();
	test_prng();
	test_loss();
	test_quantize_error();
	test_partial();
	return fqt_test_summary("test_train");
}
