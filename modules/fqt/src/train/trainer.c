/*
 * The training step on a session (docs/training-semantics.md), bit-exact with
 * scripts/fqt/golden/trainer.py: forward keeping what the backward needs (the training
 * plan, train/train_plan.c), loss (train/loss.c), backward layer by layer with gradient
 * accumulation (train/backward.c), and the standardized requantizing update at the batch
 * end (train/update.c).
 */
#include <math.h>
#include <string.h>

#include "fqt/trainer.h"
#include "kernels/kernels_internal.h"
#include "kernels/quant.h"
#include "runtime/layer_ops.h"
#include "runtime/model_decode.h"
#include "train_internal.h"


size_t fqt_trainer_struct_size(void)
{
	return sizeof(fqt_trainer);
}

void fqt_trainer_counters(const fqt_trainer *t, fqt_train_counters *out)
{
	*out = t->counters;
}

void fqt_train_options_default(fqt_train_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->lr = 0.01f;
	opt->alpha_norm = 0.85f;
	opt->batch = 32;
	opt->lambda_q15 = FQT_Q15_ONE;
	opt->stochastic_rounding = 1;
	opt->center = 1;
	opt->clip_mask = 1;
	opt->keep_classifier = 1;
}

static uint32_t align4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

/* Lay out layer li's params (the order train_plan.c counts), copy its tensors from the
 * blob, and point its view at the copies. Returns the bytes used. */
static uint32_t init_train_layer(fqt_trainer *t, uint32_t li, uint8_t *p)
{
	const fqt_model *m = t->model;
	fqt_layer_view *v = &t->views[li];
	fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
	const uint8_t *start = p;
	L->layer = (uint16_t)li;
	L->n_out = v->output_depth;
	L->n_weights = (uint32_t)v->filter_dims.n * (uint32_t)v->filter_dims.h *
		       (uint32_t)v->filter_dims.w * (uint32_t)v->filter_dims.c;
	L->row = (int32_t)(L->n_weights / (uint32_t)L->n_out);
	L->per_channel = v->weight_scale_count > 1u;
	L->has_bias = v->bias != NULL;
	const size_t n_out = (size_t)L->n_out;
	L->w = (int8_t *)p;
	p += align4(L->n_weights);
	L->bias = (int32_t *)(void *)p;
	p += 4u * n_out;
	/* The gradient state (train/grad_state.c): int32 rows, or narrow rows and a per-channel
	 * exponent after the bias sums. */
	const uint32_t gs = t->opt.grad_state;
	L->grad_bytes = (uint8_t)fqt_grad_state_bytes(gs);
	L->acc_w = gs == FQT_GRAD_STATE_INT32 ? (int32_t *)(void *)p : NULL;
	L->acc_n = gs == FQT_GRAD_STATE_INT32 ? NULL : (void *)p;
	p += align4(L->grad_bytes * L->n_weights);
	L->acc_b = (int32_t *)(void *)p;
	p += 4u * n_out;
	L->grad_exps = NULL;
	if (gs != FQT_GRAD_STATE_INT32) {
		L->grad_exps = (int32_t *)(void *)p;
		p += 4u * n_out;
		/* one generator per trainable layer (4.1): seed + (slot + 1) * 0x9E3779B9 */
		L->grad_rng = fqt_prng_seed(t->opt.seed + ((uint32_t)t->slot_of_layer[li] + 1u) *
								 0x9E3779B9u);
	}
	L->mult = (int32_t *)(void *)p;
	p += 4u * n_out;
	L->shift = (int32_t *)(void *)p;
	p += 4u * n_out;
	L->scale = (float *)(void *)p;
	p += 4u * n_out;
	L->mu = (float *)(void *)p;
	p += 4u * n_out;
	L->sd = (float *)(void *)p;
	p += 4u * n_out;
	memcpy(L->w, v->weights, L->n_weights);
	fqt_grad_state_reset(L);
	for (size_t c = 0; c < n_out; ++c) {
		L->bias[c] = 0;
		L->mult[c] = 0;
		L->shift[c] = 0;
		L->scale[c] = 0.0f;
		L->mu[c] = 0.0f;
		L->sd[c] = -1.0f;
	}
	if (L->has_bias) {
		memcpy(L->bias, v->bias, 4u * n_out);
		fqt_tensor b;
		fqt_decode_tensor(m, (uint32_t)v->bias_tensor, &b);
		L->blob_bias_scales = b.scales;
		L->bias_scale_count = b.quant_count;
	}
	memcpy(L->mult, v->requant.multiplier, 4u * v->requant.count);
	memcpy(L->shift, v->requant.shift, 4u * v->requant.count);
	memcpy(L->scale, v->weight_scales, 4u * v->weight_scale_count);
	L->blob_weights = v->weights;
	L->blob_weight_scales = v->weight_scales;
	L->weight_scale_count = v->weight_scale_count;
	L->blob_bias = v->bias;
	L->blob_multiplier = v->requant.multiplier;
	L->blob_shift = v->requant.shift;
	/* From here on the layer runs on the trained copies. */
	v->weights = L->w;
	v->bias = L->has_bias ? L->bias : NULL;
	v->requant.multiplier = L->mult;
	v->requant.shift = L->shift;
	v->weight_scales = L->scale;
	v->weight_scale_count = L->per_channel ? (uint32_t)L->n_out : 1u;
	return (uint32_t)(p - start);
}

/* The model does not end in SOFTMAX: the loss applies one, with the parameters
 * PreprocessSoftmaxScaling(beta 1) and CalculateInputRadius give, as prepare.py. */
static void init_loss_softmax(fqt_trainer *t)
{
	fqt_tensor out;
	fqt_decode_tensor(t->model, t->model->output_tensor, &out);
	fqt_softmax_params p;
	fqt_train_softmax_params(fqt_read_f32(out.scales, 0), &p);
	t->sm_mult = p.input_multiplier;
	t->sm_shift = p.input_left_shift;
	t->sm_diff_min = p.diff_min;
}

fqt_status fqt_trainer_init(fqt_trainer *t, fqt_session *session, void *params,
			    size_t params_size, uint64_t trainable_mask,
			    const fqt_train_options *opt)
{
	if (t == NULL || session == NULL || session->model == NULL || opt == NULL ||
	    (params == NULL && params_size > 0u) || opt->batch < 1u || opt->lambda_q15 < 0 ||
	    opt->lambda_q15 > FQT_Q15_ONE || !(opt->lr > 0.0f) || !isfinite(opt->lr) ||
	    opt->update_rule > FQT_UPDATE_SGD || opt->loss > FQT_LOSS_MSE ||
	    opt->learn_ranges > 1u || opt->lean_memory > 1u || opt->grad_state > FQT_GRAD_STATE_INT8) {
		return FQT_ERR_ARGUMENT;
	}
	memset(t, 0, sizeof(*t));
	t->opt = *opt; /* the plan reads grad_state */
	const fqt_model *m = session->model;
	fqt_status st = fqt_train_plan_build(t, m, trainable_mask, opt->lean_memory);
	if (st != FQT_OK) {
		return st;
	}
	if (session->arena_size < t->arena_bytes || params_size < t->params_bytes) {
		return FQT_ERR_ARENA_TOO_SMALL;
	}
	if (((uintptr_t)params % 4u) != 0u) {
		return FQT_ERR_ALIGNMENT;
	}
	t->model = m;
	t->session = session;
	t->arena = session->arena;
	t->opt = *opt;
	t->trainable_mask = trainable_mask;
	t->rng = fqt_prng_seed(opt->seed);
	uint8_t *p = (uint8_t *)params;
	for (uint32_t li = 0; li < m->layer_count; ++li) {
		t->fwd_macs_per_sample += t->views[li].macs;
		if (t->slot_of_layer[li] >= 0) {
			p += init_train_layer(t, li, p);
		}
	}
	const fqt_layer_view *last = &t->views[m->layer_count - 1u];
	t->softmax_at_end =
		last->op == FQT_OP_SOFTMAX && (uint32_t)last->output_tensor == m->output_tensor;
	if (t->softmax_at_end) {
		t->loss_buffer = last->input_buffer[0];
	} else {
		t->loss_buffer = t->output_buffer;
		init_loss_softmax(t);
	}
	if (opt->loss == FQT_LOSS_MSE) {
		if (t->softmax_at_end) {
			t->model = NULL; /* MSE needs a model without a final SOFTMAX */
			return FQT_ERR_ARGUMENT;
		}
		fqt_tensor out;
		fqt_decode_tensor(m, m->output_tensor, &out);
		t->out_scale = fqt_read_f32(out.scales, 0);
		int sh;
		fqt_quantize_multiplier((double)t->out_scale, &t->mse_mult, &sh);
		t->mse_shift = sh;
	}
	fqt_train_ranges_init(t);
	return FQT_OK;
}

fqt_status fqt_trainer_attach_blob(fqt_trainer *t, fqt_model *model, uint8_t *blob)
{
	if (t == NULL || model == NULL || blob == NULL || model != t->model ||
	    blob != model->blob) {
		return FQT_ERR_ARGUMENT;
	}
	t->blob_model = model;
	t->blob = blob;
	return FQT_OK;
}

/* Layer li forward through the one layer-to-kernel path, on the training plan's buffers.
 * The kernels' scratch lies past the training plan (train_plan.c counts it). */
static fqt_status forward_layer(fqt_trainer *t, uint32_t li)
{
	const fqt_layer_view *v = &t->views[li];
	const fqt_kernel_scratch scratch = {t->arena + t->arena_bytes - t->model->scratch_size,
					    t->model->scratch_size};
	const int8_t *x2 = v->input_buffer[1] >= 0
				   ? (const int8_t *)fqt_train_buffer(t, v->input_buffer[1])
				   : NULL;
	return fqt_layer_forward(v, (const int8_t *)fqt_train_buffer(t, v->input_buffer[0]), x2,
				 (int8_t *)fqt_train_buffer(t, v->output_buffer), &scratch);
}

static uint32_t pending(const fqt_trainer *t)
{
	return t->layers[0].count;
}

fqt_status fqt_trainer_set_lr(fqt_trainer *t, float lr)
{
	if (t == NULL || t->model == NULL || !(lr > 0.0f) || !isfinite(lr)) {
		return FQT_ERR_ARGUMENT;
	}
	t->opt.lr = lr;
	return FQT_OK;
}

fqt_status fqt_trainer_flush(fqt_trainer *t)
{
	if (t == NULL || t->model == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	return fqt_train_update(t);
}

static fqt_status forward_all(fqt_trainer *t, const int8_t *input)
{
	memcpy(fqt_train_buffer(t, 0), input, t->buffers[0].size);
	for (uint32_t li = 0; li < t->model->layer_count; ++li) {
		fqt_train_mark(t, FQT_PHASE_FORWARD, (int32_t)li, 0);
		const fqt_status st = forward_layer(t, li);
		if (st == FQT_OK && t->range_of_layer[li] >= 0) {
			const fqt_layer_view *v = &t->views[li];
			fqt_train_range_observe(t, li,
						(const int8_t *)fqt_train_buffer(t, v->output_buffer),
						v->output_elements);
		}
		fqt_train_mark(t, FQT_PHASE_FORWARD, (int32_t)li, 1);
		if (st != FQT_OK) {
			return st;
		}
	}
	t->counters.forward_macs += t->fwd_macs_per_sample;
	memset(t->has_err, 0, sizeof(t->has_err));
	return FQT_OK;
}

/* After the loss wrote the error of loss_buffer: partial fractions, backward, update. */
static fqt_status backward_all(fqt_trainer *t, uint32_t mag)
{
	const uint32_t n = t->model->layer_count;
	t->has_err[t->loss_buffer] = 1;
	int32_t frac = fqt_partial_fraction(mag, &t->l_max, t->opt.lambda_q15);
	if (t->opt.partial_fixed) {
		frac = t->opt.lambda_q15; /* fixed budget: l_max is still tracked */
	}
	fqt_train_mark(t, FQT_PHASE_LOSS, -1, 1);
	for (int32_t li = (int32_t)n - 1; li >= (int32_t)t->first_bw; --li) {
		if (t->softmax_at_end && (uint32_t)li == n - 1u) {
			continue;
		}
		const fqt_status st = fqt_train_backward_layer(t, (uint32_t)li, frac);
		if (st != FQT_OK) {
			return st;
		}
	}
	t->counters.samples++;
	if (pending(t) >= t->opt.batch) {
		return fqt_train_update(t);
	}
	return FQT_OK;
}

fqt_status fqt_trainer_step_target(fqt_trainer *t, const int8_t *input, const int8_t *target,
				   uint32_t *loss_micro)
{
	if (t == NULL || t->model == NULL || input == NULL || target == NULL ||
	    t->opt.loss != FQT_LOSS_MSE) {
		return FQT_ERR_ARGUMENT;
	}
	const fqt_status st = forward_all(t, input);
	if (st != FQT_OK) {
		return st;
	}
	fqt_train_mark(t, FQT_PHASE_LOSS, -1, 0);
	const int32_t depth = (int32_t)t->buffers[t->output_buffer].size;
	const int8_t *y = (const int8_t *)fqt_train_buffer(t, t->output_buffer);
	if (loss_micro != NULL) {
		*loss_micro = fqt_loss_mse_micro(y, target, depth, t->out_scale);
	}
	uint32_t mag;
	const int32_t b = t->loss_buffer;
	fqt_loss_mse_backward(y, target, depth, t->mse_mult, t->mse_shift,
			      t->opt.fixed_error_scaling,
			      (int8_t *)fqt_train_buffer(t, t->err_buf[b]), &t->err_exp[b], &mag);
	return backward_all(t, mag);
}

fqt_status fqt_trainer_step(fqt_trainer *t, const int8_t *input, uint32_t label,
			    uint32_t *loss_micro, uint32_t *predicted)
{
	if (t == NULL || t->model == NULL || input == NULL ||
	    t->opt.loss != FQT_LOSS_CROSS_ENTROPY) {
		return FQT_ERR_ARGUMENT;
	}
	const int32_t depth = (int32_t)t->buffers[t->output_buffer].size;
	if (label >= (uint32_t)depth) {
		return FQT_ERR_ARGUMENT;
	}
	const fqt_status fst = forward_all(t, input);
	if (fst != FQT_OK) {
		return fst;
	}
	fqt_train_mark(t, FQT_PHASE_LOSS, -1, 0);
	const int8_t *output = (const int8_t *)fqt_train_buffer(t, t->output_buffer);
	const int8_t *p = output;
	if (!t->softmax_at_end) {
		int8_t *probs = (int8_t *)fqt_train_buffer(t, t->err_buf[t->loss_buffer]);
		const fqt_softmax_params sp = {t->sm_mult, t->sm_shift, t->sm_diff_min};
		const fqt_status st = fqt_softmax_forward(&sp, 1, depth, output, probs);
		if (st != FQT_OK) {
			return st;
		}
		p = probs;
	}
	uint32_t best = 0;
	for (int32_t c = 1; c < depth; ++c) {
		best = p[c] > p[best] ? (uint32_t)c : best;
	}
	if (predicted != NULL) {
		*predicted = best;
	}
	if (loss_micro != NULL) {
		*loss_micro = fqt_loss_micro(p, label);
	}
	uint32_t mag;
	const int32_t target = t->loss_buffer;
	int8_t *e0 = (int8_t *)fqt_train_buffer(t, t->err_buf[target]);
	fqt_loss_backward(p, depth, label, t->opt.fixed_error_scaling, e0, &t->err_exp[target],
			  &mag);
	return backward_all(t, mag);
}
