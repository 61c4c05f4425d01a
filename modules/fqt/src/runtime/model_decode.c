/*
 * Reading a validated model blob (docs/blob-format.md): the tensor and layer records
 * decoded into fqt_tensor / fqt_layer, the plan buffer of a tensor and the MACs of a layer.
 * Only for models fqt_model_load() (runtime/model_validate.c) accepted.
 */
#include "model_decode.h"

#include "byte_order.h"
#include "layer_ops.h"

size_t fqt_model_struct_size(void)
{
	return sizeof(fqt_model);
}

size_t fqt_model_inference_arena_size(const fqt_model *model)
{
	return model == NULL ? 0u : (size_t)model->inference_arena_size;
}

void fqt_decode_tensor(const fqt_model *model, uint32_t index, fqt_tensor *t)
{
	const uint8_t *r = model->tensor_table + (size_t)index * FQT_BLOB_TENSOR_RECORD_SIZE;
	t->dtype = r[FQT_TREC_DTYPE];
	t->rank = r[FQT_TREC_RANK];
	t->flags = r[FQT_TREC_FLAGS];
	t->quant_axis = r[FQT_TREC_QUANT_AXIS];
	uint32_t elements = 1;
	for (int k = 0; k < 4; ++k) {
		t->shape[k] = fqt_read_i32(r + FQT_TREC_SHAPE + 4 * k);
		elements *= (uint32_t)t->shape[k];
	}
	t->element_count = elements;
	t->byte_size = elements * (t->dtype == FQT_DTYPE_INT32 ? 4u : 1u);
	t->quant_count = fqt_read_u32(r + FQT_TREC_QUANT_COUNT);
	t->scales = model->data + fqt_read_u32(r + FQT_TREC_SCALE_OFFSET);
	t->zero_points = (const int32_t *)(const void *)(model->data +
							 fqt_read_u32(r + FQT_TREC_ZERO_POINT_OFFSET));
	t->data = (t->flags & FQT_TENSOR_FLAG_CONSTANT) != 0u
			  ? (const void *)(model->data + fqt_read_u32(r + FQT_TREC_DATA_OFFSET))
			  : NULL;
	t->tflite_index = fqt_read_i32(r + FQT_TREC_TFLITE_INDEX);
}

void fqt_decode_layer(const fqt_model *model, uint32_t index, fqt_layer *l)
{
	const uint8_t *r = model->layer_table + (size_t)index * FQT_BLOB_LAYER_RECORD_SIZE;
	l->op = r[FQT_LREC_OP];
	l->activation = r[FQT_LREC_ACTIVATION];
	l->padding = r[FQT_LREC_PADDING];
	l->flags = r[FQT_LREC_FLAGS];
	for (int k = 0; k < 3; ++k) {
		l->input[k] = fqt_read_i16(r + FQT_LREC_TENSORS + 2 * k);
	}
	l->output = fqt_read_i16(r + FQT_LREC_TENSORS + 6);
	l->stride_h = fqt_read_i16(r + FQT_LREC_STRIDE_H);
	l->stride_w = fqt_read_i16(r + FQT_LREC_STRIDE_W);
	l->filter_h = fqt_read_i16(r + FQT_LREC_FILTER_H);
	l->filter_w = fqt_read_i16(r + FQT_LREC_FILTER_W);
	l->dilation_h = fqt_read_i16(r + FQT_LREC_DILATION_H);
	l->dilation_w = fqt_read_i16(r + FQT_LREC_DILATION_W);
	l->depth_multiplier = fqt_read_i16(r + FQT_LREC_DEPTH_MULTIPLIER);
	l->pad_h = fqt_read_i16(r + FQT_LREC_PAD_H);
	l->pad_w = fqt_read_i16(r + FQT_LREC_PAD_W);
	l->act_min = fqt_read_i32(r + FQT_LREC_ACT_MIN);
	l->act_max = fqt_read_i32(r + FQT_LREC_ACT_MAX);
	l->channel_count = fqt_read_u32(r + FQT_LREC_CHANNEL_COUNT);
	l->multiplier = (const int32_t *)(const void *)(model->data +
							fqt_read_u32(r + FQT_LREC_MULTIPLIER_OFFSET));
	l->shift = (const int32_t *)(const void *)(model->data + fqt_read_u32(r + FQT_LREC_SHIFT_OFFSET));
	for (int k = 0; k < 7; ++k) {
		l->extras[k] = fqt_read_i32(r + FQT_LREC_EXTRAS + 4 * k);
	}
}

fqt_status fqt_model_tensor(const fqt_model *model, uint32_t index, fqt_tensor *tensor)
{
	if (model == NULL || tensor == NULL || index >= model->tensor_count) {
		return FQT_ERR_ARGUMENT;
	}
	fqt_decode_tensor(model, index, tensor);
	return FQT_OK;
}

fqt_status fqt_model_layer(const fqt_model *model, uint32_t index, fqt_layer *layer)
{
	if (model == NULL || layer == NULL || index >= model->layer_count) {
		return FQT_ERR_ARGUMENT;
	}
	fqt_decode_layer(model, index, layer);
	return FQT_OK;
}

int32_t fqt_model_buffer_of_tensor(const fqt_model *model, uint32_t tensor)
{
	for (uint32_t b = 0; b < model->buffer_count; ++b) {
		if (model->inference_buffers[b].tensor == tensor) {
			return (int32_t)b;
		}
	}
	return -1;
}

uint64_t fqt_model_layer_macs(const fqt_model *model, uint32_t index)
{
	if (model == NULL || index >= model->layer_count) {
		return 0;
	}
	fqt_layer_view v;
	fqt_layer_view_decode(model, index, &v);
	return v.macs;
}
