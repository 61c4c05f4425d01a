/*
 * The inference interpreter: runs the layers of a loaded model in order, each reading
 * and writing buffers placed in the caller's arena by the model's memory plan.
 */
#include <string.h>

#include "fqt/session.h"
#include "layer_ops.h"
#include "model_decode.h"

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
	/* The kernels' scratch: the model's scratch_size bytes at the end of the arena. */
	const fqt_model *m = session->model;
	const fqt_kernel_scratch scratch = {
		session->arena + m->inference_arena_size - m->scratch_size, m->scratch_size};
	for (uint32_t l = first; l < first + count; ++l) {
		uint64_t macs = 0;
		const fqt_status status =
			fqt_layer_run(m, l, session->arena, m->inference_buffers, &scratch, &macs);
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
