/*
 * The inference interpreter: runs the layers of a loaded model in order, each reading
 * and writing buffers placed in the caller's arena by the model's memory plan.
 */
#include <string.h>

#include "fqt/kernels.h"
#include "fqt/session.h"
#include "fqt_internal.h"

size_t fqt_session_struct_size(void)
{
	return sizeof(fqt_session);
}

fqt_status fqt_session_create(fqt_session *session, const fqt_model *model, void *arena,
			      size_t arena_size, size_t *shortfall_bytes)
{
	if (shortfall_bytes != NULL) {
		*shortfall_bytes = 0;
	}
	if (session == NULL || model == NULL || model->layer_count == 0u ||
	    (arena == NULL && arena_size > 0u)) {
		return FQT_ERR_ARGUMENT;
	}
	const size_t need = model->inference_arena_size;
	if (arena_size < need) {
		if (shortfall_bytes != NULL) {
			*shortfall_bytes = need - arena_size;
		}
		return FQT_ERR_ARENA_TOO_SMALL;
	}
	if (((uintptr_t)arena % 4u) != 0u) {
		return FQT_ERR_ALIGNMENT;
	}
	memset(session, 0, sizeof(*session));
	session->model = model;
	session->arena = (uint8_t *)arena;
	session->arena_size = arena_size;
	return FQT_OK;
}

static uint8_t *buffer_data(const fqt_session *s, int32_t buffer)
{
	return s->arena + s->model->inference_buffers[buffer].offset;
}

static int8_t *activation(const fqt_session *s, int32_t tensor)
{
	return (int8_t *)buffer_data(s, fqt_model_buffer_of_tensor(s->model, (uint32_t)tensor));
}

fqt_status fqt_session_input(fqt_session *session, int8_t **data, size_t *size)
{
	if (session == NULL || session->model == NULL || data == NULL || size == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	*data = (int8_t *)buffer_data(session, 0);
	*size = session->model->inference_buffers[0].size;
	session->layers_done = 0; /* the caller writes a new input: a new pass begins */
	return FQT_OK;
}

fqt_status fqt_session_set_input(fqt_session *session, const int8_t *data, size_t size)
{
	if (session == NULL || session->model == NULL || data == NULL ||
	    size != session->model->inference_buffers[0].size) {
		return FQT_ERR_ARGUMENT;
	}
	memcpy(buffer_data(session, 0), data, size);
	session->layers_done = 0;
	return FQT_OK;
}

static int buffer_intact(const fqt_session *s, int32_t b);

static fqt_dims dims_of(const fqt_tensor *t)
{
	const fqt_dims d = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
	return d;
}

static fqt_status run_layer(fqt_session *s, uint32_t index)
{
	const fqt_model *m = s->model;
	fqt_layer l;
	fqt_tensor in;
	fqt_tensor out;
	fqt_tensor w;
	fqt_decode_layer(m, index, &l);
	fqt_decode_tensor(m, (uint32_t)l.input[0], &in);
	fqt_decode_tensor(m, (uint32_t)l.output, &out);
	const int8_t *x = activation(s, l.input[0]);
	int8_t *y = activation(s, l.output);
	const int32_t input_offset = -in.zero_points[0];
	const int32_t output_offset = out.zero_points[0];

	switch (l.op) {
	case FQT_OP_CONV_2D:
	case FQT_OP_DEPTHWISE_CONV_2D:
	case FQT_OP_FULLY_CONNECTED: {
		fqt_decode_tensor(m, (uint32_t)l.input[1], &w);
		const int32_t *bias = NULL;
		if (l.input[2] >= 0) {
			fqt_tensor b;
			fqt_decode_tensor(m, (uint32_t)l.input[2], &b);
			bias = (const int32_t *)b.data;
		}
		const fqt_requant requant = {l.multiplier, l.shift, l.channel_count};
		if (l.op == FQT_OP_FULLY_CONNECTED) {
			const fqt_fully_connected_params p = {input_offset, output_offset, l.act_min,
							      l.act_max};
			const int32_t out_depth = w.shape[0];
			const int32_t accum_depth = w.shape[1];
			const int32_t batches = (int32_t)(out.element_count / (uint32_t)out_depth);
			return fqt_fully_connected_forward(&p, &requant, batches, accum_depth,
							   out_depth, x, (const int8_t *)w.data, bias,
							   y);
		}
		const fqt_conv_params p = {
			.input_offset = input_offset,
			.output_offset = output_offset,
			.stride_h = l.stride_h,
			.stride_w = l.stride_w,
			.dilation_h = l.dilation_h,
			.dilation_w = l.dilation_w,
			.pad_h = l.pad_h,
			.pad_w = l.pad_w,
			.depth_multiplier = out.shape[3] / in.shape[3], /* the record may hold 1 */
			.act_min = l.act_min,
			.act_max = l.act_max,
		};
		const fqt_dims in_dims = dims_of(&in);
		const fqt_dims w_dims = dims_of(&w);
		const fqt_dims out_dims = dims_of(&out);
		if (l.op == FQT_OP_CONV_2D) {
			return fqt_conv2d_forward(&p, &requant, &in_dims, x, &w_dims,
						  (const int8_t *)w.data, bias, &out_dims, y);
		}
		return fqt_depthwise_conv2d_forward(&p, &requant, &in_dims, x, &w_dims,
						    (const int8_t *)w.data, bias, &out_dims, y);
	}
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D: {
		const fqt_pool_params p = {
			.stride_h = l.stride_h,
			.stride_w = l.stride_w,
			.filter_h = l.filter_h,
			.filter_w = l.filter_w,
			.pad_h = l.pad_h,
			.pad_w = l.pad_w,
			.act_min = l.act_min,
			.act_max = l.act_max,
		};
		const fqt_dims in_dims = dims_of(&in);
		const fqt_dims out_dims = dims_of(&out);
		if (l.op == FQT_OP_AVERAGE_POOL_2D) {
			return fqt_average_pool2d_forward(&p, &in_dims, x, &out_dims, y);
		}
		return fqt_max_pool2d_forward(&p, &in_dims, x, &out_dims, y);
	}
	case FQT_OP_ADD: {
		fqt_tensor in2;
		fqt_decode_tensor(m, (uint32_t)l.input[1], &in2);
		const fqt_add_params p = {
			.input1_offset = input_offset,
			.input2_offset = -in2.zero_points[0],
			.output_offset = output_offset,
			.left_shift = l.extras[0],
			.input1_multiplier = l.extras[1],
			.input1_shift = l.extras[2],
			.input2_multiplier = l.extras[3],
			.input2_shift = l.extras[4],
			.output_multiplier = l.multiplier[0],
			.output_shift = l.shift[0],
			.act_min = l.act_min,
			.act_max = l.act_max,
		};
		return fqt_add_forward(&p, out.element_count, x, activation(s, l.input[1]), y);
	}
	case FQT_OP_SOFTMAX: {
		const fqt_softmax_params p = {l.extras[0], l.extras[1], l.extras[2]};
		const int32_t depth = in.rank == 0u ? 1 : in.shape[in.rank - 1u];
		return fqt_softmax_forward(&p, in.element_count / (uint32_t)depth, depth, x, y);
	}
	case FQT_OP_RESHAPE:
		return fqt_reshape_forward(x, out.byte_size, y);
	default:
		return FQT_ERR_ARGUMENT; /* unreachable for a loaded model */
	}
}

fqt_status fqt_session_run_layers(fqt_session *session, uint32_t first, uint32_t count)
{
	if (session == NULL || session->model == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const uint32_t n = session->model->layer_count;
	if (first > n || count > n - first) {
		return FQT_ERR_ARGUMENT;
	}
	if (first == 0u) {
		/* A new pass reads the input buffer, which the last pass may have reused. */
		if (session->layers_done > 0u && !buffer_intact(session, 0)) {
			return FQT_ERR_STATE;
		}
		session->layers_done = 0;
	} else if (first != session->layers_done) {
		return FQT_ERR_STATE; /* layers run in order */
	}
	for (uint32_t l = first; l < first + count; ++l) {
		const fqt_status status = run_layer(session, l);
		if (status != FQT_OK) {
			return status;
		}
		session->macs += fqt_model_layer_macs(session->model, l);
		session->layers_done = (uint16_t)(l + 1u);
	}
	if (count > 0u && session->layers_done == n) {
		session->inferences++;
	}
	return FQT_OK;
}

fqt_status fqt_session_run(fqt_session *session)
{
	if (session == NULL || session->model == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	return fqt_session_run_layers(session, 0, session->model->layer_count);
}

/* Does buffer b still hold what was written to it in the current pass? It was written at
 * step b.first (the input: before step 0) and is intact unless a buffer overlapping it
 * in the arena was written at a later step that has already run. */
static int buffer_intact(const fqt_session *s, int32_t b)
{
	const fqt_model *m = s->model;
	const fqt_plan_buffer *buf = &m->inference_buffers[b];
	const int32_t written = b == 0 ? -1 : (int32_t)buf->first;
	if (written >= (int32_t)s->layers_done) {
		return 0; /* its layer has not run in this pass */
	}
	const uint32_t start = buf->offset;
	const uint32_t end = buf->offset + buf->size;
	for (int32_t o = 1; o < (int32_t)m->buffer_count; ++o) {
		const fqt_plan_buffer *other = &m->inference_buffers[o];
		const int32_t other_written = (int32_t)other->first;
		if (o == b || other_written <= written || other_written >= (int32_t)s->layers_done) {
			continue;
		}
		if (other->offset < end && start < other->offset + other->size) {
			return 0;
		}
	}
	return 1;
}

fqt_status fqt_session_tensor(const fqt_session *session, uint32_t index, const void **data,
			      size_t *size)
{
	if (session == NULL || session->model == NULL || data == NULL || size == NULL ||
	    index >= session->model->tensor_count) {
		return FQT_ERR_ARGUMENT;
	}
	fqt_tensor t;
	fqt_decode_tensor(session->model, index, &t);
	if (t.data != NULL) {
		*data = t.data;
		*size = t.byte_size;
		return FQT_OK;
	}
	const int32_t b = fqt_model_buffer_of_tensor(session->model, index);
	if (b < 0) {
		return FQT_ERR_ARGUMENT; /* a tensor no layer writes */
	}
	if (!buffer_intact(session, b)) {
		return FQT_ERR_STATE;
	}
	*data = buffer_data(session, b);
	*size = t.byte_size;
	return FQT_OK;
}

fqt_status fqt_session_output(const fqt_session *session, const int8_t **data, size_t *size)
{
	if (session == NULL || session->model == NULL || data == NULL || size == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	if (session->layers_done != session->model->layer_count) {
		return FQT_ERR_STATE;
	}
	const void *p = NULL;
	const fqt_status status =
		fqt_session_tensor(session, session->model->output_tensor, &p, size);
	*data = (const int8_t *)p;
	return status;
}

uint64_t fqt_session_macs(const fqt_session *session)
{
	return session == NULL ? 0u : session->macs;
}

void fqt_session_reset_macs(fqt_session *session)
{
	if (session != NULL) {
		session->macs = 0;
	}
}
