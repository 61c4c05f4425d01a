/*
 * The one path from a layer record to its kernels (runtime/layer_ops.c), shared by
 * inference (runtime/session.c), training (train/) and the memory plan's scratch query.
 * Adding an op means a case here and its kernels in kernels/.
 */
#ifndef FQT_LAYER_OPS_H_
#define FQT_LAYER_OPS_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/layer_view.h"
#include "fqt/memory_plan.h"
#include "fqt/model.h"
#include "kernels/forward_wrapper.h"

/* Decode layer `index` of a model fqt_model_load() accepted: what its forward kernel needs
 * (the session calls it per layer per run, so it reads nothing else). */
void fqt_layer_view_decode(const fqt_model *model, uint32_t index, fqt_layer_view *view);

/* The same, plus the tensor-level facts the backward and the update need (tensor indices,
 * element counts, channel counts, scales). */
void fqt_layer_view_decode_for_training(const fqt_model *model, uint32_t index,
					fqt_layer_view *view);

/* Bytes of kernel scratch the layer's forward needs (a multiple of 4; 0 when portable). */
size_t fqt_layer_forward_scratch_size(const fqt_layer_view *view);

/* The layer's forward kernel: input2 is ADD's second input (else unused). */
fqt_status fqt_layer_forward(const fqt_layer_view *view, const int8_t *input,
			     const int8_t *input2, int8_t *output,
			     const fqt_kernel_scratch *scratch);

/* Decode layer `index` and run its forward on the plan `buffers` in `arena` (the session's
 * path: nothing is kept per layer); *macs gets its multiply-accumulates. */
fqt_status fqt_layer_run(const fqt_model *model, uint32_t index, uint8_t *arena,
			 const fqt_plan_buffer *buffers, const fqt_kernel_scratch *scratch,
			 uint64_t *macs);

/* Is op a layer with weights (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)? */
int fqt_op_is_weighted(uint8_t op);

#endif /* FQT_LAYER_OPS_H_ */
