/* What the two halves of blob validation share (runtime/model_validate.c: header, tensors,
 * the whole; runtime/layer_validate.c: each layer record). Not public API. */
#ifndef FQT_MODEL_VALIDATE_H_
#define FQT_MODEL_VALIDATE_H_

#include <stdbool.h>
#include <stdint.h>

#include "error_message.h"
#include "fqt/model.h"

/* Reject the blob with a one-line reason. */
#define FAIL(...)                                       \
	do {                                            \
		fqt_error_format(err, __VA_ARGS__);     \
		return FQT_ERR_BLOB_FORMAT;             \
	} while (0)

#define CHECK(call)                              \
	do {                                     \
		const fqt_status s_ = (call);    \
		if (s_ != FQT_OK) {              \
			return s_;               \
		}                                \
	} while (0)

/* An array of count elements of elem_size bytes at data offset off: aligned and inside
 * the data section. */
static inline bool fqt_validate_array_in_data(const fqt_model *m, uint32_t off, uint32_t count,
					      uint32_t elem_size)
{
	return off % 4u == 0u &&
	       (uint64_t)off + (uint64_t)count * elem_size <= (uint64_t)m->data_size;
}

/* Was tensor t written by one of layers [0, before)? */
bool fqt_validate_produced_before(const fqt_model *m, int32_t t, uint32_t before);

/* Check layer record li: codes, tensor indices and roles, execution order, per-op shape
 * consistency, requantization arrays and their ranges. Tensors are checked already. */
fqt_status fqt_validate_layer(const fqt_model *m, uint32_t li, fqt_error *err);

#endif /* FQT_MODEL_VALIDATE_H_ */
