/* The model-walking half of the memory plan (runtime/model_plan.c); the placement itself
 * is model-blind (runtime/memory_plan.c, fqt/memory_plan.h). Not public API. */
#ifndef FQT_MODEL_PLAN_H_
#define FQT_MODEL_PLAN_H_

#include <stdint.h>

#include "fqt/model.h"

/* The last layer reading tensor t, or -1. */
int32_t fqt_last_reader(const fqt_model *model, uint32_t t);

/* Bytes of kernel scratch (kernels/forward_wrapper.h) the largest layer needs; 0 with the
 * portable kernels. */
uint32_t fqt_model_scratch_size(const fqt_model *model);

#endif /* FQT_MODEL_PLAN_H_ */
