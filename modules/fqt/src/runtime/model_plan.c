/*
 * The model-walking half of the memory plan (scripts/fqt/plan.py inference_buffers): which
 * buffers a model's inference needs and when each is live, and the kernels' scratch. The
 * placement is runtime/memory_plan.c's.
 */
#include "model_plan.h"

#include "fqt/memory_plan.h"
#include "layer_ops.h"
#include "model_decode.h"

int32_t fqt_last_reader(const fqt_model *model, uint32_t t)
{
	int32_t last = -1;
	for (uint32_t l = 0; l < model->layer_count; ++l) {
		fqt_layer layer;
		fqt_decode_layer(model, l, &layer);
		for (int k = 0; k < 3; ++k) {
			if (layer.input[k] >= 0 && (uint32_t)layer.input[k] == t) {
				last = (int32_t)l;
			}
		}
	}
	return last;
}

fqt_status fqt_inference_buffers(const fqt_model *model, fqt_plan_buffer *buffers,
				 size_t capacity, size_t *count)
{
	if (model == NULL || buffers == NULL || count == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const size_t n = (size_t)model->layer_count + 1u;
	if (capacity < n) {
		return FQT_ERR_UNSUPPORTED;
	}
	fqt_tensor tensor;
	fqt_decode_tensor(model, model->input_tensor, &tensor);
	const int32_t input_last = fqt_last_reader(model, model->input_tensor);
	buffers[0] = (fqt_plan_buffer){
		.size = tensor.byte_size,
		.first = 0,
		.last = (uint16_t)(input_last > 0 ? input_last : 0),
		.tensor = model->input_tensor,
	};
	const uint16_t last_step = (uint16_t)(model->layer_count - 1u);
	for (uint32_t l = 0; l < model->layer_count; ++l) {
		fqt_layer layer;
		fqt_decode_layer(model, l, &layer);
		const uint32_t t = (uint32_t)layer.output;
		fqt_decode_tensor(model, t, &tensor);
		const int32_t reader = fqt_last_reader(model, t);
		uint16_t last = (uint16_t)(reader > (int32_t)l ? reader : (int32_t)l);
		if (t == model->output_tensor) {
			last = last_step;
		}
		buffers[l + 1u] = (fqt_plan_buffer){
			.size = tensor.byte_size,
			.first = (uint16_t)l,
			.last = last,
			.tensor = (uint16_t)t,
		};
	}
	*count = n;
	return FQT_OK;
}

uint32_t fqt_model_scratch_size(const fqt_model *model)
{
	size_t most = 0;
	for (uint32_t li = 0; li < model->layer_count; ++li) {
		fqt_layer_view v;
		fqt_layer_view_decode(model, li, &v);
		const size_t need = fqt_layer_forward_scratch_size(&v);
		most = need > most ? need : most;
	}
	return (uint32_t)most;
}
