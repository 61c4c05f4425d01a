/* What the training files share (train/): the plan's buffer lookup and the steps the
 * trainer (train/trainer.c) calls. Not public API. */
#ifndef FQT_TRAIN_INTERNAL_H_
#define FQT_TRAIN_INTERNAL_H_

#include <stdint.h>

#include "fqt/kernels.h"
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

/* train/grad_state.c: the gradient state (docs/training-semantics.md 4, 4.1). */
#define FQT_GRAD_EXP_EMPTY INT32_MIN /* a narrow channel no sample reached in this batch */
uint32_t fqt_grad_state_bytes(uint32_t grad_state);
/* The state's params bytes of a layer: rows (4-byte aligned), int32 bias sums and, narrow,
 * an int32 exponent per channel (plan.py params_bytes). */
uint32_t fqt_grad_state_params_bytes(uint32_t grad_state, uint32_t n_weights, uint32_t n_out);
/* Zero the accumulator (narrow: every channel empty); count = 0. */
void fqt_grad_state_reset(fqt_train_layer *L);
/* Merge one sample's int32 rows of the kept channels kept[0..n_kept) (inside the sink's
 * chunk), of exponent e, into the narrow state; nearest: no stochastic rounding. */
void fqt_grad_state_merge(fqt_train_layer *L, const fqt_grad_sink *s, const uint16_t *kept,
			  int32_t n_kept, int32_t e, int nearest);

/* Channel c's accumulator row as int32 for the update (train/update.c): the int32 state's
 * own row, or a narrow row widened into the layer's per-sample rows buffer (dead between
 * samples; it holds at least one row), valid until the next call for this layer. */
const int32_t *fqt_grad_state_row(const fqt_trainer *t, const fqt_train_layer *L, int32_t c);

/* Channel c's exponent G, either state. */
static inline int32_t fqt_grad_state_exp(const fqt_train_layer *L, int32_t c)
{
	return L->acc_w != NULL ? L->grad_exp : L->grad_exps[c];
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
