/*
 * Layer record -> kernel parameters -> kernel: the one mapping, for inference, training and
 * the scratch query.
 *
 * The view is read straight from the blob: the model was validated by fqt_model_load(),
 * and its records lie 4-aligned in a 4-aligned blob, so 32-bit fields are read as aligned
 * native words (the core is little-endian only, runtime/byte_order.h).
 */
#include "layer_ops.h"

#include <string.h>

#include "byte_order.h"

static inline const uint8_t *tensor_rec(const fqt_model *m, int32_t index)
{
	return m->tensor_table + (size_t)index * FQT_BLOB_TENSOR_RECORD_SIZE;
}

static inline int32_t rec_i16(const uint8_t *r, unsigned off)
{
	return *(const int16_t *)(const void *)(r + off);
}

static inline int32_t rec_i32(const uint8_t *r, unsigned off)
{
	return *(const int32_t *)(const void *)(r + off);
}

/* An array of the data section whose offset is the record's field at `off`. */
static inline const void *rec_array(const fqt_model *m, const uint8_t *r, unsigned off)
{
	return m->data + *(const uint32_t *)(const void *)(r + off);
}

static inline int32_t tensor_zero_point(const fqt_model *m, const uint8_t *t)
{
	return *(const int32_t *)rec_array(m, t, FQT_TREC_ZERO_POINT_OFFSET);
}

static inline float tensor_scale(const fqt_model *m, const uint8_t *t)
{
	float f;
	memcpy(&f, rec_array(m, t, FQT_TREC_SCALE_OFFSET), sizeof(f));
	return f;
}

static inline fqt_dims tensor_dims(const uint8_t *t)
{
	const fqt_dims d = {rec_i32(t, FQT_TREC_SHAPE), rec_i32(t, FQT_TREC_SHAPE + 4),
			    rec_i32(t, FQT_TREC_SHAPE + 8), rec_i32(t, FQT_TREC_SHAPE + 12)};
	return d;
}

static inline int32_t tensor_last_dim(const uint8_t *t)
{
	const uint32_t rank = t[FQT_TREC_RANK];
	return rank == 0u ? 1 : rec_i32(t, FQT_TREC_SHAPE + 4u * (rank - 1u));
}

static inline uint32_t dims_elements(const fqt_dims *d)
{
	return (uint32_t)d->n * (uint32_t)d->h * (uint32_t)d->w * (uint32_t)d->c;
}

/* The plan buffer of activation `tensor` read by layer `index`: written by an earlier
 * layer (buffer l + 1 is layer l's output) or the model input (buffer 0). Searched
 * backwards: most layers read the previous layer's output. */
static inline int16_t input_buffer(const fqt_model *m, uint32_t index, int32_t tensor)
{
	int32_t b = (int32_t)index;
	while (b > 0 && m->inference_buffers[b].tensor != (uint32_t)tensor) {
		--b;
	}
	return (int16_t)b;
}

int fqt_op_is_weighted(uint8_t op)
{
	return op == FQT_OP_CONV_2D || op == FQT_OP_DEPTHWISE_CONV_2D ||
	       op == FQT_OP_FULLY_CONNECTED;
}

/* decode() and forward() are static so that fqt_layer_run() gets them inlined: the session
 * runs every layer through it on every inference. */
static inline void decode(const fqt_model *m, uint32_t index, fqt_layer_view *v)
{
	const uint8_t *r = m->layer_table + (size_t)index * FQT_BLOB_LAYER_RECORD_SIZE;
	const uint8_t op = r[FQT_LREC_OP];
	const int32_t in_tensor = rec_i16(r, FQT_LREC_TENSORS);
	const int32_t in2_tensor = rec_i16(r, FQT_LREC_TENSORS + 2);
	const uint8_t *ti = tensor_rec(m, in_tensor);
	const uint8_t *to = tensor_rec(m, rec_i16(r, FQT_LREC_TENSORS + 6));
	v->op = op;
	v->activation = r[FQT_LREC_ACTIVATION];
	v->input_buffer[0] = input_buffer(m, index, in_tensor);
	v->input_buffer[1] = op == FQT_OP_ADD ? input_buffer(m, index, in2_tensor) : -1;
	v->output_buffer = (int16_t)(index + 1u);
	v->output_elements = m->inference_buffers[index + 1u].size; /* int8: bytes = elements */
	v->input_depth = op == FQT_OP_SOFTMAX ? tensor_last_dim(ti) : 0;
	v->macs = 0;
	const int32_t input_offset = -tensor_zero_point(m, ti);
	const int32_t output_offset = tensor_zero_point(m, to);
	const int32_t act_min = rec_i32(r, FQT_LREC_ACT_MIN);
	const int32_t act_max = rec_i32(r, FQT_LREC_ACT_MAX);
	v->act_min = act_min;
	v->act_max = act_max;
	switch (op) {
	case FQT_OP_CONV_2D:
	case FQT_OP_DEPTHWISE_CONV_2D:
	case FQT_OP_FULLY_CONNECTED: {
		const uint8_t *tw = tensor_rec(m, in2_tensor);
		v->weights = (const int8_t *)rec_array(m, tw, FQT_TREC_DATA_OFFSET);
		const int32_t bias_tensor = rec_i16(r, FQT_LREC_TENSORS + 4);
		v->bias = bias_tensor < 0 ? NULL
					  : (const int32_t *)rec_array(m, tensor_rec(m, bias_tensor),
								       FQT_TREC_DATA_OFFSET);
		v->requant = (fqt_requant){
			(const int32_t *)rec_array(m, r, FQT_LREC_MULTIPLIER_OFFSET),
			(const int32_t *)rec_array(m, r, FQT_LREC_SHIFT_OFFSET),
			(uint32_t)rec_i32(r, FQT_LREC_CHANNEL_COUNT)};
		v->filter_dims = tensor_dims(tw);
		const fqt_dims *wd = &v->filter_dims;
		if (op == FQT_OP_FULLY_CONNECTED) { /* shapes from the weights alone */
			/* weights [out_depth, accum_depth] */
			v->macs = (uint64_t)wd->n * (uint64_t)wd->h;
			v->params.fully_connected = (fqt_fully_connected_params){
				input_offset, output_offset, act_min, act_max};
			break;
		}
		v->input_dims = tensor_dims(ti);
		v->output_dims = tensor_dims(to);
		v->macs = (uint64_t)v->output_elements * (uint64_t)wd->h * (uint64_t)wd->w *
			  (op == FQT_OP_CONV_2D ? (uint64_t)wd->c : 1u);
		const int32_t in_c = v->input_dims.c > 0 ? v->input_dims.c : 1;
		v->params.conv = (fqt_conv_params){
			.input_offset = input_offset,
			.output_offset = output_offset,
			.stride_h = rec_i16(r, FQT_LREC_STRIDE_H),
			.stride_w = rec_i16(r, FQT_LREC_STRIDE_W),
			.dilation_h = rec_i16(r, FQT_LREC_DILATION_H),
			.dilation_w = rec_i16(r, FQT_LREC_DILATION_W),
			.pad_h = rec_i16(r, FQT_LREC_PAD_H),
			.pad_w = rec_i16(r, FQT_LREC_PAD_W),
			.depth_multiplier = v->output_dims.c / in_c, /* the record may hold 1 */
			.act_min = act_min,
			.act_max = act_max,
		};
		break;
	}
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D:
		v->input_dims = tensor_dims(ti);
		v->output_dims = tensor_dims(to);
		v->params.pool = (fqt_pool_params){
			.stride_h = rec_i16(r, FQT_LREC_STRIDE_H),
			.stride_w = rec_i16(r, FQT_LREC_STRIDE_W),
			.filter_h = rec_i16(r, FQT_LREC_FILTER_H),
			.filter_w = rec_i16(r, FQT_LREC_FILTER_W),
			.pad_h = rec_i16(r, FQT_LREC_PAD_H),
			.pad_w = rec_i16(r, FQT_LREC_PAD_W),
			.act_min = act_min,
			.act_max = act_max,
		};
		break;
	case FQT_OP_ADD:
		v->params.add = (fqt_add_params){
			.input1_offset = input_offset,
			.input2_offset = -tensor_zero_point(m, tensor_rec(m, in2_tensor)),
			.output_offset = output_offset,
			.left_shift = rec_i32(r, FQT_LREC_EXTRAS),
			.input1_multiplier = rec_i32(r, FQT_LREC_EXTRAS + 4),
			.input1_shift = rec_i32(r, FQT_LREC_EXTRAS + 8),
			.input2_multiplier = rec_i32(r, FQT_LREC_EXTRAS + 12),
			.input2_shift = rec_i32(r, FQT_LREC_EXTRAS + 16),
			.output_multiplier =
				*(const int32_t *)rec_array(m, r, FQT_LREC_MULTIPLIER_OFFSET),
			.output_shift = *(const int32_t *)rec_array(m, r, FQT_LREC_SHIFT_OFFSET),
			.act_min = act_min,
			.act_max = act_max,
		};
		break;
	case FQT_OP_SOFTMAX:
		v->params.softmax = (fqt_softmax_params){rec_i32(r, FQT_LREC_EXTRAS),
							 rec_i32(r, FQT_LREC_EXTRAS + 4),
							 rec_i32(r, FQT_LREC_EXTRAS + 8)};
		break;
	default:
		break; /* RESHAPE: no parameters */
	}
}

void fqt_layer_view_decode(const fqt_model *m, uint32_t index, fqt_layer_view *v)
{
	decode(m, index, v);
}

void fqt_layer_view_decode_for_training(const fqt_model *m, uint32_t index, fqt_layer_view *v)
{
	fqt_layer_view_decode(m, index, v); /* a call, not a third inlined copy: init-time only */
	const uint8_t *r = m->layer_table + (size_t)index * FQT_BLOB_LAYER_RECORD_SIZE;
	v->input_tensor[0] = (int16_t)rec_i16(r, FQT_LREC_TENSORS);
	v->input_tensor[1] = (int16_t)rec_i16(r, FQT_LREC_TENSORS + 2);
	v->bias_tensor = (int16_t)rec_i16(r, FQT_LREC_TENSORS + 4);
	v->output_tensor = (int16_t)rec_i16(r, FQT_LREC_TENSORS + 6);
	const uint8_t *ti = tensor_rec(m, v->input_tensor[0]);
	const uint8_t *to = tensor_rec(m, v->output_tensor);
	v->input_dims = tensor_dims(ti);
	v->output_dims = tensor_dims(to);
	v->input_elements = dims_elements(&v->input_dims);
	v->input_depth = tensor_last_dim(ti);
	v->output_depth = tensor_last_dim(to);
	v->input_scale = tensor_scale(m, ti);
	v->output_scale = tensor_scale(m, to);
	v->weight_scales = NULL;
	v->weight_scale_count = 0;
	if (fqt_op_is_weighted(v->op)) {
		const uint8_t *tw = tensor_rec(m, v->input_tensor[1]);
		v->weight_scales = rec_array(m, tw, FQT_TREC_SCALE_OFFSET);
		v->weight_scale_count = (uint32_t)rec_i32(tw, FQT_TREC_QUANT_COUNT);
	}
}

size_t fqt_layer_forward_scratch_size(const fqt_layer_view *v)
{
	switch (v->op) {
	case FQT_OP_CONV_2D:
		return fqt_conv2d_forward_wrapper_scratch_size(&v->params.conv, &v->input_dims,
							       &v->filter_dims, &v->output_dims);
	case FQT_OP_DEPTHWISE_CONV_2D:
		return fqt_depthwise_conv2d_forward_wrapper_scratch_size(
			&v->params.conv, &v->input_dims, &v->filter_dims, &v->output_dims);
	case FQT_OP_FULLY_CONNECTED:
		return fqt_fully_connected_forward_wrapper_scratch_size(v->filter_dims.h,
									v->filter_dims.n);
	default:
		return 0;
	}
}

static inline fqt_status forward(const fqt_layer_view *v, const int8_t *x, const int8_t *x2,
				 int8_t *y, const fqt_kernel_scratch *scratch)
{
	switch (v->op) {
	case FQT_OP_CONV_2D:
		return fqt_conv2d_forward_wrapper(&v->params.conv, &v->requant, &v->input_dims, x,
						  &v->filter_dims, v->weights, v->bias,
						  &v->output_dims, y, scratch);
	case FQT_OP_DEPTHWISE_CONV_2D:
		return fqt_depthwise_conv2d_forward_wrapper(&v->params.conv, &v->requant,
							    &v->input_dims, x, &v->filter_dims,
							    v->weights, v->bias, &v->output_dims,
							    y, scratch);
	case FQT_OP_FULLY_CONNECTED: {
		const int32_t out_depth = v->filter_dims.n;
		return fqt_fully_connected_forward_wrapper(
			&v->params.fully_connected, &v->requant,
			(int32_t)(v->output_elements / (uint32_t)out_depth), v->filter_dims.h,
			out_depth, x, v->weights, v->bias, y, scratch);
	}
	case FQT_OP_AVERAGE_POOL_2D:
		return fqt_average_pool2d_forward(&v->params.pool, &v->input_dims, x,
						  &v->output_dims, y);
	case FQT_OP_MAX_POOL_2D:
		return fqt_max_pool2d_forward(&v->params.pool, &v->input_dims, x, &v->output_dims,
					      y);
	case FQT_OP_ADD:
		return fqt_add_forward(&v->params.add, v->output_elements, x, x2, y);
	case FQT_OP_SOFTMAX:
		/* input and output have the same element count (checked at load) */
		return fqt_softmax_forward(&v->params.softmax,
					   v->output_elements / (uint32_t)v->input_depth,
					   v->input_depth, x, y);
	case FQT_OP_RESHAPE:
		return fqt_reshape_forward(x, v->output_elements, y);
	default:
		return FQT_ERR_ARGUMENT; /* unreachable for a loaded model */
	}
}

fqt_status fqt_layer_forward(const fqt_layer_view *v, const int8_t *x, const int8_t *x2,
			     int8_t *y, const fqt_kernel_scratch *scratch)
{
	return forward(v, x, x2, y, scratch);
}

fqt_status fqt_layer_run(const fqt_model *m, uint32_t index, uint8_t *arena,
			 const fqt_plan_buffer *buffers, const fqt_kernel_scratch *scratch,
			 uint64_t *macs)
{
	fqt_layer_view v;
	decode(m, index, &v);
	*macs = v.macs;
	const int8_t *x2 = v.input_buffer[1] >= 0
				   ? (const int8_t *)(arena + buffers[v.input_buffer[1]].offset)
				   : NULL;
	return forward(&v, (const int8_t *)(arena + buffers[v.input_buffer[0]].offset), x2,
		       (int8_t *)(arena + buffers[v.output_buffer].offset), scratch);
}
