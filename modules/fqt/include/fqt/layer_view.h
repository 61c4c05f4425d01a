/*
 * One layer of a loaded model decoded into what its kernels take: plan buffers, shapes,
 * kernel parameters and constant arrays. runtime/layer_ops.c makes it from the blob's
 * layer record (the one place that maps a record to kernel parameters) and runs the
 * forward kernel from it; the session decodes one per layer as it runs, the trainer
 * decodes every layer once at init and points the views of trainable layers at its own
 * copies of their weights.
 */
#ifndef FQT_LAYER_VIEW_H_
#define FQT_LAYER_VIEW_H_

#include <stdint.h>

#include "fqt/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fqt_layer_view {
	uint8_t op;         /* fqt_op */
	uint8_t activation; /* fqt_activation, already folded into the act_min/act_max */
	int16_t input_buffer[2]; /* plan buffers read: input, ADD's second input (else -1) */
	int16_t output_buffer;   /* layer index + 1 */
	uint32_t output_elements;
	int32_t input_depth; /* last dimension (SOFTMAX's row length) */
	/* Shapes padded with 1 past rank: input/output for CONV/DW/pools (all ops when decoded
	 * for training), filter for CONV/DW/FC. */
	fqt_dims input_dims, filter_dims, output_dims;
	int32_t act_min, act_max; /* the output clamp (every op's record has one) */
	uint64_t macs; /* forward multiply-accumulates, as fqt_model_layer_macs */
	union {
		fqt_conv_params conv; /* CONV_2D, DEPTHWISE_CONV_2D */
		fqt_fully_connected_params fully_connected;
		fqt_pool_params pool;
		fqt_add_params add;
		fqt_softmax_params softmax;
	} params;
	/* CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED */
	const int8_t *weights;
	const int32_t *bias; /* NULL: none */
	fqt_requant requant;
	/* Training only (fqt_layer_view_decode_for_training). */
	int16_t input_tensor[2]; /* input; weights (CONV/DW/FC) or ADD's second input */
	int16_t bias_tensor;     /* -1: none */
	int16_t output_tensor;
	uint32_t input_elements;
	int32_t output_depth; /* last dimension: channels, classes, FC units */
	float input_scale, output_scale;
	const void *weight_scales; /* f32, per channel or one */
	uint32_t weight_scale_count;
} fqt_layer_view;

#ifdef __cplusplus
}
#endif

#endif /* FQT_LAYER_VIEW_H_ */
