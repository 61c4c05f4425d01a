/*
 * The arena planner: TFLM's greedy-by-size placement, made deterministic so that it
 * produces exactly the offsets of scripts/fqt/plan.py greedy_plan().
 */
#ifndef FQT_MEMORY_PLAN_H_
#define FQT_MEMORY_PLAN_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every buffer starts on this boundary and takes its size rounded up to it. */
#define FQT_PLAN_ALIGN 4u

/* A buffer live from step `first` to step `last` (both inclusive). */
typedef struct fqt_plan_buffer {
	uint32_t size;   /* bytes, before alignment */
	uint32_t offset; /* set by fqt_greedy_plan() */
	uint16_t first;
	uint16_t last;
	uint16_t tensor; /* the tensor it holds (for the caller; the planner ignores it) */
	uint16_t reserved;
} fqt_plan_buffer;

/*
 * Place `count` buffers and write the peak bytes to *peak_bytes. Largest first (ties:
 * earlier first step, then array order); each goes at the lowest aligned offset where it
 * overlaps no already placed buffer live at the same time. Needs no scratch memory.
 * Fails with FQT_ERR_UNSUPPORTED if the peak does not fit in 32 bits.
 */
fqt_status fqt_greedy_plan(fqt_plan_buffer *buffers, size_t count, uint32_t *peak_bytes);

struct fqt_model;

/*
 * The inference buffers of a model, as scripts/fqt/plan.py inference_buffers(): the
 * model input (live from step 0 to its last reader), then each layer's output (from
 * its layer to its last reader; the model output to the last step).
 */
fqt_status fqt_inference_buffers(const struct fqt_model *model, fqt_plan_buffer *buffers,
				 size_t capacity, size_t *count);

#ifdef __cplusplus
}
#endif

#endif /* FQT_MEMORY_PLAN_H_ */
