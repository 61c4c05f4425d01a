/*
 * A session runs a loaded model in a caller-given arena: no allocation, no OS calls.
 *
 *     fqt_model model;            // static: it holds the memory plan
 *     fqt_error err;
 *     if (fqt_model_load(&model, blob, blob_len, &err) != FQT_OK) { report(err.message); }
 *     static uint8_t arena[ARENA_BYTES] __aligned(4);
 *     fqt_session s;
 *     size_t short_by;
 *     fqt_session_create(&s, &model, arena, sizeof(arena), &short_by);
 *     fqt_session_set_input(&s, x, x_len);
 *     fqt_session_run(&s);
 *     fqt_session_output(&s, &y, &y_len);
 */
#ifndef FQT_SESSION_H_
#define FQT_SESSION_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/model.h"
#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fqt_session {
	const fqt_model *model;
	uint8_t *arena;
	size_t arena_size;
	uint64_t macs;       /* multiply-accumulates of the layers run since create/reset */
	uint32_t inferences; /* complete forward passes since create */
	uint16_t layers_done; /* layers of the current pass run so far */
} fqt_session;

/*
 * Bind `session` to `model` and a 4-byte aligned arena. If the arena is smaller than
 * fqt_model_inference_arena_size(), fails with FQT_ERR_ARENA_TOO_SMALL and writes the
 * missing byte count to *shortfall_bytes (which may be NULL; it is 0 on success).
 */
fqt_status fqt_session_create(fqt_session *session, const fqt_model *model, void *arena,
			      size_t arena_size, size_t *shortfall_bytes);

/* The model input buffer inside the arena, to fill in place. */
fqt_status fqt_session_input(fqt_session *session, int8_t **data, size_t *size);

/* Copy `size` bytes (exactly the input tensor's size) into the input buffer. */
fqt_status fqt_session_set_input(fqt_session *session, const int8_t *data, size_t size);

/* Run every layer on the current input. */
fqt_status fqt_session_run(fqt_session *session);

/* Run layers [first, first + count) of the current pass; layers must run in order from
 * 0, so a pass can be stopped after any layer to read its output. */
fqt_status fqt_session_run_layers(fqt_session *session, uint32_t first, uint32_t count);

/* The model output of the last complete run. */
fqt_status fqt_session_output(const fqt_session *session, const int8_t **data, size_t *size);

/*
 * Tensor `index`: a constant (in the blob) or an activation in the arena. Activations
 * share arena space, so one holds its values only from the layer that writes it until the
 * plan reuses its bytes: read a layer's output right after running up to that layer
 * (fqt_session_run_layers). Fails with FQT_ERR_STATE if that layer has not run.
 */
fqt_status fqt_session_tensor(const fqt_session *session, uint32_t index, const void **data,
			      size_t *size);

/* Multiply-accumulates run since create or the last reset. */
uint64_t fqt_session_macs(const fqt_session *session);
void fqt_session_reset_macs(fqt_session *session);

/* sizeof(fqt_session) of this build, for bindings that allocate it opaquely. */
size_t fqt_session_struct_size(void);

#ifdef __cplusplus
}
#endif

#endif /* FQT_SESSION_H_ */
