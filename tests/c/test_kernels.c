/* The kernels on small hand-worked cases (the Python suite compares whole models with
 * the golden model bit for bit). */
#include "fqt/kernels.h"
#include "fqt_test.h"
#include "kernels/input_error_exact.h"
#include "kernels/kernels_internal.h"

static const int32_t half_multiplier[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30}; /* 0.5 */
static const int32_t zero_shift[4] = {0, 0, 0, 0};

static void test_conv2d(void)
{
	/* 3x3x1 input 1..9, one 2x2 filter of ones, VALID: window sums 12, 16, 24, 28;
	 * bias 2, times 0.5, plus output zero point -10. */
	const int8_t input[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	const int8_t filter[4] = {1, 1, 1, 1};
	const int32_t bias[1] = {2};
	int8_t output[4] = {0};
	const fqt_conv_params p = {.input_offset = 0, .output_offset = -10, .stride_h = 1,
				   .stride_w = 1, .dilation_h = 1, .dilation_w = 1,
				   .depth_multiplier = 1, .act_min = -128, .act_max = 127};
	const fqt_requant rq = {half_multiplier, zero_shift, 1};
	const fqt_dims in = {1, 3, 3, 1}, f = {1, 2, 2, 1}, out = {1, 2, 2, 1};
	CHECK_EQ_INT(fqt_conv2d_forward(&p, &rq, &in, input, &f, filter, bias, &out, output),
		     FQT_OK);
	CHECK_EQ_INT(output[0], 7 - 10);
	CHECK_EQ_INT(output[1], 9 - 10);
	CHECK_EQ_INT(output[2], 13 - 10);
	CHECK_EQ_INT(output[3], 15 - 10);
	/* SAME, stride 2, pad 0 top/left on a 3x3 input with a 2x2 filter: a 2x2 output
	 * whose right/bottom windows are clipped; input offset 1 (zero point -1), output
	 * offset -5, clamp at 0. */
	const fqt_conv_params q = {.input_offset = 1, .output_offset = -5, .stride_h = 2,
				   .stride_w = 2, .dilation_h = 1, .dilation_w = 1,
				   .depth_multiplier = 1, .act_min = 0, .act_max = 127};
	CHECK_EQ_INT(fqt_conv2d_forward(&q, &rq, &in, input, &f, filter, NULL, &out, output),
		     FQT_OK);
	/* windows: (1+2+4+5)+4 = 16 -> 8 - 5 = 3; (3+6)+2 = 11 -> 5.5 -> 6 - 5 = 1;
	 * (7+8)+2 = 17 -> 8.5 -> 9 - 5 = 4; 9+1 = 10 -> 5 - 5 = 0 */
	CHECK_EQ_INT(output[0], 3);
	CHECK_EQ_INT(output[1], 1);
	CHECK_EQ_INT(output[2], 4);
	CHECK_EQ_INT(output[3], 0);
	/* A filter/input channel mismatch is refused. */
	const fqt_dims f_bad = {1, 2, 2, 2};
	CHECK_EQ_INT(fqt_conv2d_forward(&p, &rq, &in, input, &f_bad, filter, bias, &out, output),
		     FQT_ERR_ARGUMENT);
}

static void test_depthwise_conv2d(void)
{
	/* 2x2x2 input, depth multiplier 2 -> 4 channels, 2x2 filter VALID -> 1x1x4. */
	const int8_t input[8] = {1, 10, 2, 20, 3, 30, 4, 40};
	const int8_t filter[16] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1};
	int8_t output[4] = {0};
	const fqt_conv_params p = {.stride_h = 1, .stride_w = 1, .dilation_h = 1,
				   .dilation_w = 1, .depth_multiplier = 2, .act_min = -128,
				   .act_max = 127};
	const fqt_requant rq = {half_multiplier, zero_shift, 4};
	const fqt_dims in = {1, 2, 2, 2}, f = {1, 2, 2, 4}, out = {1, 1, 1, 4};
	CHECK_EQ_INT(fqt_depthwise_conv2d_forward(&p, &rq, &in, input, &f, filter, NULL, &out,
						  output),
		     FQT_OK);
	/* channel 0 (input 0, m 0): 1+2+3+4 = 10 -> 5; channel 1: 0; channel 2 (input 1):
	 * 10+20+30+40 = 100 -> 50; channel 3: 40 -> 20 */
	CHECK_EQ_INT(output[0], 5);
	CHECK_EQ_INT(output[1], 0);
	CHECK_EQ_INT(output[2], 50);
	CHECK_EQ_INT(output[3], 20);
}

static void test_pooling(void)
{
	/* 2x3x1 input, 2x2 window stride 2 SAME (pad 0): windows {1,2,4,5} and {3,6}. */
	const int8_t input[6] = {1, 2, 3, 4, 5, -6};
	int8_t output[2] = {0};
	const fqt_pool_params p = {.stride_h = 2, .stride_w = 2, .filter_h = 2, .filter_w = 2,
				   .act_min = -128, .act_max = 127};
	const fqt_dims in = {1, 2, 3, 1}, out = {1, 1, 2, 1};
	CHECK_EQ_INT(fqt_average_pool2d_forward(&p, &in, input, &out, output), FQT_OK);
	CHECK_EQ_INT(output[0], 3);  /* 12 / 4 */
	CHECK_EQ_INT(output[1], -2); /* -3 / 2 = -1.5 -> -2 (half away from zero) */
	CHECK_EQ_INT(fqt_max_pool2d_forward(&p, &in, input, &out, output), FQT_OK);
	CHECK_EQ_INT(output[0], 5);
	CHECK_EQ_INT(output[1], 3);
	/* A window entirely in the padding: average pool refuses, max pool gives -128. */
	const fqt_pool_params far = {.stride_h = 1, .stride_w = 1, .filter_h = 1, .filter_w = 1,
				     .pad_h = 5, .act_min = -128, .act_max = 127};
	CHECK_EQ_INT(fqt_average_pool2d_forward(&far, &in, input, &out, output), FQT_ERR_ARGUMENT);
}

static void test_add(void)
{
	/* Inputs shifted left by 20 for headroom, each scaled by 0.5, the sum scaled by
	 * 0.5 * 2^-20: y = (a + b) / 4 + output zero point 1. */
	const int8_t a[3] = {10, -10, 100};
	const int8_t b[3] = {6, -7, 100};
	int8_t y[3] = {0};
	const fqt_add_params p = {.input1_offset = 0, .input2_offset = 0, .output_offset = 1,
				  .left_shift = 20, .input1_multiplier = 1 << 30, .input1_shift = 0,
				  .input2_multiplier = 1 << 30, .input2_shift = 0,
				  .output_multiplier = 1 << 30, .output_shift = -20,
				  .act_min = -128, .act_max = 127};
	CHECK_EQ_INT(fqt_add_forward(&p, 3, a, b, y), FQT_OK);
	CHECK_EQ_INT(y[0], 5);   /* (16 / 4 = 4) + 1 */
	CHECK_EQ_INT(y[1], -3);  /* -17 / 4 = -4.25 -> -4, + 1 */
	CHECK_EQ_INT(y[2], 51);  /* 200 / 4 + 1 */
}

static void test_softmax_uniform(void)
{
	/* Equal inputs: each of 4 gets 1/4 -> 64 - 128 = -64. */
	const int8_t x[4] = {7, 7, 7, 7};
	int8_t y[4] = {0};
	const fqt_softmax_params p = {1 << 30, 22, -1000};
	CHECK_EQ_INT(fqt_softmax_forward(&p, 1, 4, x, y), FQT_OK);
	for (int i = 0; i < 4; ++i) {
		CHECK_EQ_INT(y[i], -64);
	}
	/* One dominant input takes everything: 256 -> clamped to 127. */
	const int8_t z[2] = {127, -128};
	CHECK_EQ_INT(fqt_softmax_forward(&p, 1, 2, z, y), FQT_OK);
	CHECK_EQ_INT(y[0], 127);
	CHECK_EQ_INT(y[1], -128);
	CHECK_EQ_INT(fqt_softmax_forward(&p, 1, 5000, z, y), FQT_ERR_ARGUMENT);
}

/* The exact input error past int32 (training-semantics 5.3), the lean plan's int8 form
 * against the int32-scratch form: 600 FC channels of error 127 at g ~ 2^15 through weights
 * of 127 sum to about 2.5e9 per input element. */
static void test_input_error_exact_s8(void)
{
	enum { N = 600, K = 3 };
	static int8_t w[N * K], e[N], out[K];
	static uint16_t kept[N];
	static int32_t acc[K];
	const float scale = 0.99f;
	for (int o = 0; o < N; ++o) {
		e[o] = 127;
		kept[o] = (uint16_t)o;
		for (int k = 0; k < K; ++k) {
			w[o * K + k] = (int8_t)(k == 1 ? -127 : 127 - k);
		}
	}
	const fqt_input_error_job job = {.kind = FQT_INPUT_ERROR_FULLY_CONNECTED,
					 .w = w,
					 .scales = &scale,
					 .scale_count = 1u,
					 .p = fqt_fold_exponent(&scale, 1u),
					 .e = e,
					 .n_ch = N,
					 .kept = kept,
					 .n_kept = N,
					 .in_count = K};
	CHECK(fqt_input_error_bound(&job) > (uint64_t)INT32_MAX);
	for (int fixed = 0; fixed < 2; ++fixed) {
		int32_t base = -20, exp8 = 0;
		fqt_input_error_exact(&job, acc, &base, fixed);
		fqt_input_error_exact_s8(&job, -20, fixed, out, &exp8);
		CHECK(base != -20); /* the sums left int32: acc holds int8 values */
		CHECK_EQ_INT(exp8, base);
		for (int k = 0; k < K; ++k) {
			CHECK_EQ_INT(out[k], acc[k]);
		}
	}
	CHECK_EQ_INT(out[1], -127);
}

int main(void)
{
	test_input_error_exact_s8();
	test_conv2d();
	test_depthwise_conv2d();
	test_pooling();
	test_add();
	test_softmax_uniform();
	return fqt_test_summary("test_kernels");
}
