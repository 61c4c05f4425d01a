/* What the training files share (train/): the plan's buffer lookup and the steps the
 * trainer (train/trainer.c) calls. Not public API. */
#ifndef FQT_TRAIN_INTERNAL_H_
#define FQT_TRAIN_INTERNAL_H_

#include <stdint.h>

#include "fqt/trainer.h"

/* Training step of layer li's backward: the forward runs steps 0..n-1, the backward
 * 2n-1-li (plan.py training_buffers). */
#define FQT_BW_STEP(n, li) ((uint16_t)(2u * (uint32_t)(n) - 1u - (uint32_t)(li)))

/* The lean plan's phases of a step (plan.py PHASE_*): step s, phase f -> 4 s + f. */
#define FQT_PHASES 4u
#define FQT_PLAN_PHASE_MASK 0u
#define FQT_PLAN_PHASE_SELECT 1u
#define FQT_PLAN_PHASE_WGRAD 2u
#define FQT_PLAN_PHASE_IERR 3u

/* The bytes of training-plan buffer b in the arena. */
static inline uint8_t *fqt_train_buffer(const fqt_trainer *t, int32_t b)
{
	return t->arena + t->buffers[b].offset;
}

/* The optional phase hook of the options (benchmarks): begin (end = 0) or end a phase. */
static inline void fqt_train_mark(const fqt_trainer *t, fqt_train_phase phase, int32_t layer,
				  int end)
{
	if (t->opt.phase_hook != NULL) {
		t->opt.phase_hook(t->opt.phase_ctx, phase, layer, end);
	}
}

/* train/train_plan.c: decode every layer into t->views, then lay out the training plan
 * (t->buffers, err_buf, acc_buf, sel_buf, arena_bytes) and the params bytes. */
fqt_status fqt_train_plan_build(fqt_trainer *t, const fqt_model *model, uint64_t trainable_mask,
				int lean);

/* train/backward.c: the backward of layer li for a sample whose kept fraction is frac. */
fqt_status fqt_train_backward_layer(fqt_trainer *t, uint32_t li, int32_t frac);

/* train/update.c: apply the accumulated mini-batch to every layer that has samples and
 * write the result back into the attached blob. */
fqt_status fqt_train_update(fqt_trainer *t);

/* train/ranges.c: layer multipliers as prepare.py (QuantizeMultiplier of s_in s_w / s_out). */
void fqt_train_layer_multipliers(const fqt_layer_view *v, const float *scale, int per_channel,
				 int32_t *mult, int32_t *shift);

/* train/ranges.c: learned activation ranges (section 7.3). */
void fqt_train_softmax_params(float s_in, fqt_softmax_params *p);
void fqt_train_ranges_init(fqt_trainer *t);
void fqt_train_range_observe(fqt_trainer *t, uint32_t li, const int8_t *y, uint32_t n);
void fqt_train_ranges_update(fqt_trainer *t);

#endif /* FQT_TRAIN_INTERNAL_H_ */
