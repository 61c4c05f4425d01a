/*
 * The inference interpreter: runs the layers of a loaded model in order, each reading
 * and writing buffers placed in the caller's arena by the model's memory plan.
 */
#include <string.h>

#include "fqt/kernels.h"
#include "fqt/session.h"
#include "fqt_internal.h"

/* Zephyr builds with CONFIG_FQT_CMSIS_NN run the forward pass of CONV_2D,
 * DEPTHWISE_CONV_2D and FULLY_CONNECTED through CMSIS-NN where it is bit-exact
 * (src/cmsis_nn/); the portable core never depends on it. */
#if defined(CONFIG_FQT_CMSIS_NN)
#include "cmsis_nn/fqt_cmsis_nn.h"
#define FQT_USE_CMSIS_NN 1
/* The kernels' scratch: model->scratch_size bytes at the end of the inference arena. */
#define SCRATCH(s)                                                                         \
	(void *)((s)->arena + (s)->model->inference_arena_size - (s)->model->scratch_size), \
		(size_t)(s)->model->scratch_size
#else
#define FQT_USE_CMSIS_NN 0
#endif

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

/*
 * A layer run reads only the record fields its kernel needs, straight from the blob:
 * no whole-record decode, nothing cached per layer. The model was validated by
 * fqt_model_load(), and its records lie 4-aligned in a 4-aligned blob, so 32-bit fields
 * are read as aligned native words (the core is little-endian only, fqt_internal.h).
 */
static inline const uint8_t *layer_rec(const fqt_model *m, uint32_t index)
{
	return m->layer_table + (size_t)index * FQT_BLOB_LAYER_RECORD_SIZE;
}

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

static inline fqt_dims tensor_dims(const uint8_t *t)
{
	const fqt_dims d = {rec_i32(t, FQT_TREC_SHAPE), rec_i32(t, FQT_TREC_SHAPE + 4),
			    rec_i32(t, FQT_TREC_SHAPE + 8), rec_i32(t, FQT_TREC_SHAPE + 12)};
	return d;
}

/* The plan buffer of activation `tensor` read by layer `index`: written by an earlier
 * layer (buffer l + 1 is layer l's output) or the model input (buffer 0). Searched
 * backwards: most layers read the previous layer's output. */
static inline int32_t input_buffer(const fqt_model *m, uint32_t index, int32_t tensor)
{
	int32_t b = (int32_t)index;
	while (b > 0 && m->inference_buffers[b].tensor != (uint32_t)tensor) {
		--b;
	}
	return b;
}

static fqt_status run_layer(fqt_session *s, uint32_t index, uint64_t *macs)
{
	const fqt_model *m = s->model;
	const uint8_t *r = layer_rec(m, index);
	const uint8_t op = r[FQT_LREC_OP];
	const int32_t in_tensor = rec_i16(r, FQT_LREC_TENSORS);
	const fqt_plan_buffer *out_buf = &m->inference_buffers[index + 1u];
	const int8_t *x = (const int8_t *)buffer_data(s, input_buffer(m, index, in_tensor));
	int8_t *y = (int8_t *)(s->arena + out_buf->offset);
	const uint32_t out_elements = out_buf->size; /* int8 activations: bytes = elements */

	if (op == FQT_OP_RESHAPE) {
		return fqt_reshape_forward(x, out_elements, y);
	}
	const uint8_t *ti = tensor_rec(m, in_tensor);
	const uint8_t *to = tensor_rec(m, rec_i16(r, FQT_LREC_TENSORS + 6));
	const int32_t input_offset = -tensor_zero_point(m, ti);
	const int32_t output_offset = tensor_zero_point(m, to);
	const int32_t act_min = rec_i32(r, FQT_LREC_ACT_MIN);
	const int32_t act_max = rec_i32(r, FQT_LREC_ACT_MAX);

	switch (op) {
	case FQT_OP_CONV_2D:
	case FQT_OP_DEPTHWISE_CONV_2D:
	case FQT_OP_FULLY_CONNECTED: {
		const uint8_t *tw = tensor_rec(m, rec_i16(r, FQT_LREC_TENSORS + 2));
		const int8_t *w = (const int8_t *)rec_array(m, tw, FQT_TREC_DATA_OFFSET);
		const int32_t bias_tensor = rec_i16(r, FQT_LREC_TENSORS + 4);
		const int32_t *bias =
			bias_tensor < 0 ? NULL
					: (const int32_t *)rec_array(m, tensor_rec(m, bias_tensor),
								     FQT_TREC_DATA_OFFSET);
		const fqt_requant requant = {
			(const int32_t *)rec_array(m, r, FQT_LREC_MULTIPLIER_OFFSET),
			(const int32_t *)rec_array(m, r, FQT_LREC_SHIFT_OFFSET),
			(uint32_t)rec_i32(r, FQT_LREC_CHANNEL_COUNT)};
		const fqt_dims w_dims = tensor_dims(tw);
		if (op == FQT_OP_FULLY_CONNECTED) {
			/* weights [out_depth, accum_depth]; MACs as fqt_model_layer_macs */
			*macs = (uint64_t)w_dims.n * (uint64_t)w_dims.h;
			const fqt_fully_connected_params p = {input_offset, output_offset, act_min,
							      act_max};
			const int32_t batches = (int32_t)(out_elements / (uint32_t)w_dims.n);
#if FQT_USE_CMSIS_NN
			const fqt_status cs = fqt_cmsis_fully_connected(
				&p, &requant, batches, w_dims.h, w_dims.n, x, w, bias, y,
				SCRATCH(s));
			if (cs != FQT_ERR_UNSUPPORTED) {
				return cs;
			}
#endif
			return fqt_fully_connected_forward(&p, &requant, batches, w_dims.h,
							   w_dims.n, x, w, bias, y);
		}
		const fqt_dims in_dims = tensor_dims(ti);
		const fqt_dims out_dims = tensor_dims(to);
		const fqt_conv_params p = {
			.input_offset = input_offset,
			.output_offset = output_offset,
			.stride_h = rec_i16(r, FQT_LREC_STRIDE_H),
			.stride_w = rec_i16(r, FQT_LREC_STRIDE_W),
			.dilation_h = rec_i16(r, FQT_LREC_DILATION_H),
			.dilation_w = rec_i16(r, FQT_LREC_DILATION_W),
			.pad_h = rec_i16(r, FQT_LREC_PAD_H),
			.pad_w = rec_i16(r, FQT_LREC_PAD_W),
			.depth_multiplier = out_dims.c / in_dims.c, /* the record may hold 1 */
			.act_min = act_min,
			.act_max = act_max,
		};
		if (op == FQT_OP_CONV_2D) {
			*macs = (uint64_t)out_elements * (uint64_t)w_dims.h * (uint64_t)w_dims.w *
				(uint64_t)w_dims.c;
#if FQT_USE_CMSIS_NN
			const fqt_status cs = fqt_cmsis_conv2d(&p, &requant, &in_dims, x, &w_dims,
							       w, bias, &out_dims, y,
							       SCRATCH(s));
			if (cs != FQT_ERR_UNSUPPORTED) {
				return cs;
			}
#endif
			return fqt_conv2d_forward(&p, &requant, &in_dims, x, &w_dims, w, bias,
						  &out_dims, y);
		}
		*macs = (uint64_t)out_elements * (uint64_t)w_dims.h * (uint64_t)w_dims.w;
#if FQT_USE_CMSIS_NN
		const fqt_status cs = fqt_cmsis_depthwise_conv2d(&p, &requant, &in_dims, x, &w_dims,
								 w, bias, &out_dims, y,
								 SCRATCH(s));
		if (cs != FQT_ERR_UNSUPPORTED) {
			return cs;
		}
#endif
		return fqt_depthwise_conv2d_forward(&p, &requant, &in_dims, x, &w_dims, w, bias,
						    &out_dims, y);
	}
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D: {
		const fqt_pool_params p = {
			.stride_h = rec_i16(r, FQT_LREC_STRIDE_H),
			.stride_w = rec_i16(r, FQT_LREC_STRIDE_W),
			.filter_h = rec_i16(r, FQT_LREC_FILTER_H),
			.filter_w = rec_i16(r, FQT_LREC_FILTER_W),
			.pad_h = rec_i16(r, FQT_LREC_PAD_H),
			.pad_w = rec_i16(r, FQT_LREC_PAD_W),
			.act_min = act_min,
			.act_max = act_max,
		};
		const fqt_dims in_dims = tensor_dims(ti);
		const fqt_dims out_dims = tensor_dims(to);
		if (op == FQT_OP_AVERAGE_POOL_2D) {
			return fqt_average_pool2d_forward(&p, &in_dims, x, &out_dims, y);
		}
		return fqt_max_pool2d_forward(&p, &in_dims, x, &out_dims, y);
	}
	case FQT_OP_ADD: {
		const int32_t in2_tensor = rec_i16(r, FQT_LREC_TENSORS + 2);
		const fqt_add_params p = {
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
		const int8_t *x2 =
			(const int8_t *)buffer_data(s, input_buffer(m, index, in2_tensor));
		return fqt_add_forward(&p, out_elements, x, x2, y);
	}
	case FQT_OP_SOFTMAX: {
		const fqt_softmax_params p = {rec_i32(r, FQT_LREC_EXTRAS),
					      rec_i32(r, FQT_LREC_EXTRAS + 4),
					      rec_i32(r, FQT_LREC_EXTRAS + 8)};
		const uint32_t rank = ti[FQT_TREC_RANK];
		const int32_t depth = rank == 0u ? 1 : rec_i32(ti, FQT_TREC_SHAPE + 4u * (rank - 1u));
		/* input and output have the same element count (checked at load) */
		return fqt_softmax_forward(&p, out_elements / (uint32_t)depth, depth, x, y);
	}
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
		uint64_t macs = 0;
		const fqt_status status = run_layer(session, l, &macs);
		if (status != FQT_OK) {
			return status;
		}
		session->macs += macs;
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
