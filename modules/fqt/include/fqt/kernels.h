/*
 * The int8 kernels, one op family per source file (src/kernels/conv2d.c, ...) with its
 * forward and backward side by side, in the manner of TFLM's reference kernels and
 * CMSIS-NN: explicit shapes and parameters, caller-owned buffers, no allocation. Forward
 * kernels are bit-exact with TFLM's reference int8 kernels (docs/integer-semantics.md).
 * Layouts are TFLite's: activations NHWC, conv filters OHWI, depthwise filters 1HW(I*M),
 * fully-connected weights [out, in]. No kernel knows the model blob.
 */
#ifndef FQT_KERNELS_H_
#define FQT_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An NHWC shape. */
typedef struct fqt_dims {
	int32_t n, h, w, c;
} fqt_dims;

/* Output requantization: (multiplier, shift) per output channel, or one for all when
 * count == 1. */
typedef struct fqt_requant {
	const int32_t *multiplier;
	const int32_t *shift;
	uint32_t count;
} fqt_requant;

/* CONV_2D and DEPTHWISE_CONV_2D. Offsets are TFLM's: input_offset = -input zero point,
 * output_offset = output zero point; weights are symmetric (zero point 0). */
typedef struct fqt_conv_params {
	int32_t input_offset;
	int32_t output_offset;
	int32_t stride_h, stride_w;
	int32_t dilation_h, dilation_w;
	int32_t pad_h, pad_w; /* top/left padding */
	int32_t depth_multiplier; /* depthwise only */
	int32_t act_min, act_max;
} fqt_conv_params;

typedef struct fqt_fully_connected_params {
	int32_t input_offset;
	int32_t output_offset;
	int32_t act_min, act_max;
} fqt_fully_connected_params;

typedef struct fqt_pool_params {
	int32_t stride_h, stride_w;
	int32_t filter_h, filter_w;
	int32_t pad_h, pad_w;
	int32_t act_min, act_max;
} fqt_pool_params;

/* TFLM's ArithmeticParams for int8 ADD. */
typedef struct fqt_add_params {
	int32_t input1_offset, input2_offset, output_offset;
	int32_t left_shift;
	int32_t input1_multiplier, input1_shift;
	int32_t input2_multiplier, input2_shift;
	int32_t output_multiplier, output_shift;
	int32_t act_min, act_max;
} fqt_add_params;

/* TFLM's SoftmaxParams for int8 -> int8 (output zero point -128, scale 1/256). */
typedef struct fqt_softmax_params {
	int32_t input_multiplier;
	int32_t input_left_shift;
	int32_t diff_min;
} fqt_softmax_params;

/* filter: [out_c, kh, kw, in_c]; bias: int32[out_c] or NULL; requant: out_c entries. */
fqt_status fqt_conv2d_forward(const fqt_conv_params *params, const fqt_requant *requant,
			      const fqt_dims *input_dims, const int8_t *input,
			      const fqt_dims *filter_dims, const int8_t *filter, const int32_t *bias,
			      const fqt_dims *output_dims, int8_t *output);

/* The same, computed as an int16 patch matrix (two output positions by two filter rows at
 * a time) in caller scratch of fqt_conv2d_forward_im2col_scratch_size() bytes, 4-byte
 * aligned; with less (or NULL) it runs fqt_conv2d_forward. Identical results. */
size_t fqt_conv2d_forward_im2col_scratch_size(const fqt_dims *input_dims,
					      const fqt_dims *filter_dims);
fqt_status fqt_conv2d_forward_im2col(const fqt_conv_params *params, const fqt_requant *requant,
				     const fqt_dims *input_dims, const int8_t *input,
				     const fqt_dims *filter_dims, const int8_t *filter,
				     const int32_t *bias, const fqt_dims *output_dims,
				     int8_t *output, void *scratch, size_t scratch_size);

/* filter: [1, kh, kw, out_c] with out_c = in_c * depth_multiplier (filter_dims.n = 1). */
fqt_status fqt_depthwise_conv2d_forward(const fqt_conv_params *params,
					const fqt_requant *requant, const fqt_dims *input_dims,
					const int8_t *input, const fqt_dims *filter_dims,
					const int8_t *filter, const int32_t *bias,
					const fqt_dims *output_dims, int8_t *output);

/* input: [batches, accum_depth]; weights: [out_depth, accum_depth]; output:
 * [batches, out_depth]; requant: 1 or out_depth entries. */
fqt_status fqt_fully_connected_forward(const fqt_fully_connected_params *params,
				       const fqt_requant *requant, int32_t batches,
				       int32_t accum_depth, int32_t out_depth, const int8_t *input,
				       const int8_t *weights, const int32_t *bias, int8_t *output);

/* Input and output share their quantization (TFLM requires it); the average rounds half
 * away from zero over the window part inside the input. */
fqt_status fqt_average_pool2d_forward(const fqt_pool_params *params, const fqt_dims *input_dims,
				      const int8_t *input, const fqt_dims *output_dims,
				      int8_t *output);
fqt_status fqt_max_pool2d_forward(const fqt_pool_params *params, const fqt_dims *input_dims,
				  const int8_t *input, const fqt_dims *output_dims, int8_t *output);

/* Element-wise, same shapes: output[i] = a[i] + b[i] in the output's quantization. */
fqt_status fqt_add_forward(const fqt_add_params *params, size_t size, const int8_t *input1,
			   const int8_t *input2, int8_t *output);

/* Softmax along rows of `depth` (1..FQT_SOFTMAX_MAX_DEPTH) for `rows` rows. */
fqt_status fqt_softmax_forward(const fqt_softmax_params *params, size_t rows, int32_t depth,
			       const int8_t *input, int8_t *output);

/* RESHAPE changes no byte: copy `size` bytes (the buffers may overlap). */
fqt_status fqt_reshape_forward(const int8_t *input, size_t size, int8_t *output);


/* ---- training: backward kernels (docs/training-semantics.md section 5) ----------------
 * Errors are int8 (zero point 0) with a power-of-two scale; the weight-gradient kernels
 * add their per-sample int32 gradients into the mini-batch accumulator through a sink,
 * and loop only over the kept channels `kept[0..n_kept)` (ascending). The input-error
 * kernels write int32 accumulators (real value acc * 2^(E - 8 + *fold_exp)) the caller
 * requantizes. */
enum { FQT_GRAD_FIRST = 0, FQT_GRAD_UP = 1, FQT_GRAD_DOWN = 2 };
typedef struct fqt_grad_sink {
	int32_t *acc_w; /* channel-major [c - base][row] */
	int32_t *acc_b; /* [c - base] */
	int32_t row;
	int32_t mode;  /* FQT_GRAD_* */
	int32_t shift; /* 0..31 */
	/* The first channel acc_w / acc_b hold: 0 for a whole layer's int32 accumulator; the
	 * narrow gradient state (train/grad_state.c) passes a chunk of per-sample rows
	 * (FQT_GRAD_FIRST) starting at channel `base`, and only kept channels inside it. */
	int32_t base;
} fqt_grad_sink;

/* The weight gradients run as int16 matrix products in a scratch of *_scratch_size() bytes
 * (4-byte aligned); with a smaller one (or NULL) they take the exact int64 path. Both give
 * the same gradients. */
size_t fqt_conv2d_backward_weights_scratch_size(const fqt_dims *input_dims,
						const fqt_dims *filter_dims,
						const fqt_dims *output_dims);
/* The smallest scratch that still takes the int16 path (the lean plan's): the transposed
 * error 16 kept channels at a time, the input taps rebuilt for each block. */
size_t fqt_conv2d_backward_weights_blocked_scratch_size(const fqt_dims *input_dims,
							const fqt_dims *filter_dims,
							const fqt_dims *output_dims);
fqt_status fqt_conv2d_backward_weights(const fqt_conv_params *params, const fqt_dims *input_dims,
				       const int8_t *input, const fqt_dims *filter_dims,
				       const fqt_dims *output_dims, const int8_t *err,
				       const uint16_t *kept, int32_t n_kept,
				       const fqt_grad_sink *sink, void *scratch,
				       size_t scratch_size);
fqt_status fqt_conv2d_backward_input(const fqt_conv_params *params, const fqt_dims *input_dims,
				     const fqt_dims *filter_dims, const int8_t *filter,
				     const void *scales, uint32_t scale_count,
				     const fqt_dims *output_dims, const int8_t *err,
				     const uint16_t *kept, int32_t n_kept, int32_t *acc,
				     int32_t *fold_exp);
size_t fqt_depthwise_conv2d_backward_weights_scratch_size(const fqt_dims *filter_dims,
							  const fqt_dims *output_dims);
fqt_status fqt_depthwise_conv2d_backward_weights(const fqt_conv_params *params,
						 const fqt_dims *input_dims, const int8_t *input,
						 const fqt_dims *filter_dims,
						 const fqt_dims *output_dims, const int8_t *err,
						 const uint16_t *kept, int32_t n_kept,
						 const fqt_grad_sink *sink, void *scratch,
						 size_t scratch_size);
/* The depthwise input error gathers over a ring of int16 errors in a scratch of
 * *_scratch_size() bytes (4-byte aligned; 0: no gather for these params); with a smaller
 * one (or NULL) it scatters. Both give the same sums. */
size_t fqt_depthwise_conv2d_backward_input_scratch_size(const fqt_conv_params *params,
							const fqt_dims *input_dims,
							const fqt_dims *filter_dims,
							const fqt_dims *output_dims);
fqt_status fqt_depthwise_conv2d_backward_input(const fqt_conv_params *params,
					       const fqt_dims *input_dims,
					       const fqt_dims *filter_dims, const int8_t *filter,
					       const void *scales, uint32_t scale_count,
					       const fqt_dims *output_dims, const int8_t *err,
					       const uint16_t *kept, int32_t n_kept, int32_t *acc,
					       int32_t *fold_exp, void *scratch, size_t scratch_size);
fqt_status fqt_fully_connected_backward_weights(const int8_t *err, const int8_t *input,
						int32_t input_offset, int32_t accum_depth,
						const uint16_t *kept, int32_t n_kept,
						const fqt_grad_sink *sink);
fqt_status fqt_fully_connected_backward_input(const int8_t *err, int32_t out_depth,
					      int32_t accum_depth, const int8_t *weights,
					      const void *scales, uint32_t scale_count,
					      const uint16_t *kept, int32_t n_kept, int32_t *acc,
					      int32_t *fold_exp);
/* acc real = acc * 2^(E - 16). */
fqt_status fqt_average_pool2d_backward(const fqt_pool_params *params, const fqt_dims *input_dims,
				       const fqt_dims *output_dims, const int8_t *err,
				       int32_t *acc);
/* acc real = acc * 2^E; the argmax is recomputed from the kept input. */
fqt_status fqt_max_pool2d_backward(const fqt_pool_params *params, const fqt_dims *input_dims,
				   const int8_t *input, const fqt_dims *output_dims,
				   const int8_t *err, int32_t *acc);
/* Fused RELU / RELU6 mask on the error, from the kept output y (activation: fqt_activation). */
fqt_status fqt_activation_backward(int8_t *err, const int8_t *output, size_t size,
				   int32_t activation, int32_t act_min, int32_t act_max);

#ifdef __cplusplus
}
#endif

#endif /* FQT_KERNELS_H_ */
