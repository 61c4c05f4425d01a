/* Decoding the records of a validated model (runtime/model_decode.c). Not public API. */
#ifndef FQT_MODEL_DECODE_H_
#define FQT_MODEL_DECODE_H_

#include <stdint.h>

#include "fqt/model.h"

/* Decode without checks: only for models that fqt_model_load() accepted. */
void fqt_decode_tensor(const fqt_model *model, uint32_t index, fqt_tensor *tensor);
void fqt_decode_layer(const fqt_model *model, uint32_t index, fqt_layer *layer);

/* The plan buffer holding activation tensor `tensor`, or -1 (constants). */
int32_t fqt_model_buffer_of_tensor(const fqt_model *model, uint32_t tensor);

#endif /* FQT_MODEL_DECODE_H_ */
