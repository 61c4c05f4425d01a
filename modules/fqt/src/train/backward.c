/*
 * The backward walk of one layer (docs/training-semantics.md section 5; the backward half
 * of scripts/fqt/golden/trainer.py, golden/backward.py): the fused-activation mask, the
 * kept-channel selection of partial updates, the weight gradient into the mini-batch
 * accumulator, and the error delivered to the layer's input(s), combined where a tensor has
 * several consumers.
 */
#include <string.h>

#include "kernels/input_error_exact.h"
#include "kernels/input_error_s8.h"
#include "kernels/kernels_internal.h"
#include "runtime/layer_ops.h"
#include "train_internal.h"

/* Deliver an int8 error to activation buffer b (the input of some layer). A tensor with
 * several consumers keeps one int8 error buffer; each delivery after the first is combined
 * into it (section 2.3). */
static void deliver_s8(fqt_trainer *t, int32_t b, const int8_t *e, int32_t exponent, size_t n)
{
	int8_t *dst = (int8_t *)fqt_train_buffer(t, t->err_buf[b]);
	if (!t->has_err[b]) {
		if (dst != e) {
			memmove(dst, e, n);
		}
		t->err_exp[b] = exponent;
		t->has_err[b] = 1;
		return;
	}
	fqt_train_mark(t, FQT_PHASE_ERROR_QUANT, b - 1, 0);
	fqt_combine_errors_s8(dst, &t->err_exp[b], e, exponent, n, t->opt.fixed_error_scaling);
	fqt_train_mark(t, FQT_PHASE_ERROR_QUANT, b - 1, 1);
}

/* Deliver int32 input-error sums of exponent `base`, quantized with quantize_error. The
 * phase is that of buffer b's producer, the layer whose error this becomes. */
static void deliver_acc(fqt_trainer *t, int32_t b, int32_t *acc, int32_t base, size_t n)
{
	int8_t *dst = (int8_t *)fqt_train_buffer(t, t->err_buf[b]);
	const int fixed = t->opt.fixed_error_scaling;
	fqt_train_mark(t, FQT_PHASE_ERROR_QUANT, b - 1, 0);
	if (!t->has_err[b]) {
		fqt_quantize_error_s32(acc, n, base, fixed, dst, &t->err_exp[b]);
		t->has_err[b] = 1;
	} else {
		int32_t e2;
		fqt_quantize_error_s32(acc, n, base, fixed, (int8_t *)acc, &e2);
		fqt_combine_errors_s8(dst, &t->err_exp[b], (const int8_t *)acc, e2, n, fixed);
	}
	fqt_train_mark(t, FQT_PHASE_ERROR_QUANT, b - 1, 1);
}

/* Does plan buffer b (a layer's input) need an error: is it the output of a layer the
 * backward reaches? */
static int needs_error(const fqt_trainer *t, int32_t b)
{
	return b >= 1 && (uint32_t)(b - 1) >= t->first_bw;
}

static fqt_grad_sink grad_sink(fqt_train_layer *L, int32_t e)
{
	fqt_grad_sink s = {L->acc_w, L->acc_b, L->row, FQT_GRAD_FIRST, 0, 0};
	if (L->count == 0u) {
		L->grad_exp = e;
	} else if (e > L->grad_exp) {
		s.mode = FQT_GRAD_UP;
		s.shift = e - L->grad_exp < 31 ? e - L->grad_exp : 31;
		L->grad_exp = e;
	} else {
		s.mode = FQT_GRAD_DOWN;
		s.shift = L->grad_exp - e < 31 ? L->grad_exp - e : 31;
	}
	L->count++;
	return s;
}

/* Accumulator of the channels outside the kept list: their gradient is 0. */
static void grad_skipped(const fqt_train_layer *L, const fqt_grad_sink *s, const uint16_t *kept,
			 int32_t n_kept)
{
	if (s->mode == FQT_GRAD_DOWN || n_kept == L->n_out) {
		return;
	}
	int32_t j = 0;
	for (int32_t c = 0; c < L->n_out; ++c) {
		if (j < n_kept && kept[j] == c) {
			++j;
			continue;
		}
		int32_t *row = L->acc_w + (size_t)c * (size_t)L->row;
		for (int32_t k = 0; k < L->row; ++k) {
			fqt_grad_put(s, &row[k], 0);
		}
		fqt_grad_put(s, &L->acc_b[c], 0);
	}
}

/* Is layer li the classifier, the model's last weighted layer (section 6)? */
static int is_classifier(const fqt_trainer *t, uint32_t li)
{
	for (uint32_t j = li + 1u; j < t->model->layer_count; ++j) {
		if (fqt_op_is_weighted(t->views[j].op)) {
			return 0;
		}
	}
	return 1;
}

/* Kept output channels of a weighted layer's error (all of them with full updates, and
 * for the classifier with keep_classifier). */
static int32_t select_channels(const fqt_trainer *t, uint32_t li, const int8_t *e, int32_t n_ch,
			       int32_t positions, int32_t frac, uint16_t **kept_out)
{
	uint8_t *sel = fqt_train_buffer(t, t->sel_buf[li]);
	int32_t *score = (int32_t *)(void *)sel;
	uint16_t *kept = (uint16_t *)(void *)(sel + 4u * (size_t)n_ch);
	*kept_out = kept;
	if (t->opt.lambda_q15 < FQT_Q15_ONE && !(t->opt.keep_classifier && is_classifier(t, li))) {
		return fqt_partial_select(e, positions, n_ch, fqt_partial_keep_count(frac, n_ch),
					  score, kept);
	}
	for (int32_t c = 0; c < n_ch; ++c) {
		kept[c] = (uint16_t)c;
	}
	return n_ch;
}

static fqt_status weight_gradient_kernel(fqt_trainer *t, uint32_t li, const fqt_grad_sink *s,
					 const int8_t *e, const uint16_t *kept, int32_t n_kept)
{
	const fqt_layer_view *v = &t->views[li];
	const int8_t *x = (const int8_t *)fqt_train_buffer(t, v->input_buffer[0]);
	const int32_t wb = t->wg_buf[li];
	void *scratch = wb >= 0 ? fqt_train_buffer(t, wb) : NULL;
	const size_t scratch_size = wb >= 0 ? t->buffers[wb].size : 0u;
	switch (v->op) {
	case FQT_OP_CONV_2D:
		return fqt_conv2d_backward_weights(&v->params.conv, &v->input_dims, x,
						   &v->filter_dims, &v->output_dims, e, kept,
						   n_kept, s, scratch, scratch_size);
	case FQT_OP_DEPTHWISE_CONV_2D:
		return fqt_depthwise_conv2d_backward_weights(&v->params.conv, &v->input_dims, x,
							     &v->filter_dims, &v->output_dims, e,
							     kept, n_kept, s, scratch, scratch_size);
	default:
		return fqt_fully_connected_backward_weights(
			e, x, v->params.fully_connected.input_offset,
			(int32_t)v->input_elements, kept, n_kept, s);
	}
}

/* The narrow state (4.1): the kept channels in chunks of at most L->chunk consecutive
 * channel indices, each chunk's per-sample int32 rows computed by the kernel into the
 * arena (FQT_GRAD_FIRST, base = the chunk's first kept channel) and merged at once.
 * Channels outside the kept list are not touched. */
static fqt_status weight_gradient_narrow(fqt_trainer *t, fqt_train_layer *L, const int8_t *e,
					 int32_t ex, const uint16_t *kept, int32_t n_kept)
{
	int32_t *rows = (int32_t *)(void *)fqt_train_buffer(t, L->rows_buf);
	for (int32_t j0 = 0; j0 < n_kept;) {
		int32_t j1 = j0 + 1;
		while (j1 < n_kept && kept[j1] < kept[j0] + L->chunk) {
			++j1;
		}
		const fqt_grad_sink s = {rows, rows + (size_t)L->chunk * (size_t)L->row, L->row,
					 FQT_GRAD_FIRST, 0, kept[j0]};
		const fqt_status st =
			weight_gradient_kernel(t, L->layer, &s, e, kept + j0, j1 - j0);
		if (st != FQT_OK) {
			return st;
		}
		fqt_grad_state_merge(L, &s, kept + j0, j1 - j0, ex, t->opt.grad_nearest);
		j0 = j1;
	}
	L->count++;
	return FQT_OK;
}

static fqt_status weight_gradient(fqt_trainer *t, fqt_train_layer *L, const int8_t *e,
				  int32_t ex, const uint16_t *kept, int32_t n_kept)
{
	fqt_train_mark(t, FQT_PHASE_WEIGHT_GRADIENT, L->layer, 0);
	fqt_status st;
	if (L->acc_w == NULL) {
		st = weight_gradient_narrow(t, L, e, ex, kept, n_kept);
	} else {
		const fqt_grad_sink s = grad_sink(L, ex);
		grad_skipped(L, &s, kept, n_kept);
		st = weight_gradient_kernel(t, L->layer, &s, e, kept, n_kept);
	}
	fqt_train_mark(t, FQT_PHASE_WEIGHT_GRADIENT, L->layer, 1);
	return st;
}

/* Where layer li writes the int8 error of its input buffer b in the lean plan: the error
 * buffer itself for the first delivery, else the int8 copy (tmp_buf) to combine from. */
static int8_t *lean_target(const fqt_trainer *t, uint32_t li, int32_t b)
{
	if (!t->has_err[b]) {
		return (int8_t *)fqt_train_buffer(t, t->err_buf[b]);
	}
	return t->tmp_buf[li] >= 0 ? (int8_t *)fqt_train_buffer(t, t->tmp_buf[li]) : NULL;
}

/* Lean plan: the int8 error (e8, exponent e8_exp) has been written to lean_target(): mark
 * a first delivery, or combine the copy into the error (section 2.3). */
static void lean_delivered(fqt_trainer *t, int32_t b, const int8_t *e8, int32_t e8_exp,
			   size_t n)
{
	if (e8 == (const int8_t *)fqt_train_buffer(t, t->err_buf[b])) {
		t->err_exp[b] = e8_exp;
		t->has_err[b] = 1;
		return;
	}
	deliver_s8(t, b, e8, e8_exp, n);
}

static fqt_status input_error_lean(fqt_trainer *t, uint32_t li, const fqt_layer_view *v,
				   const fqt_input_error_job *job, int32_t ex)
{
	const int32_t b = v->input_buffer[0];
	int8_t *out = lean_target(t, li, b);
	const int32_t sb = t->ie_buf[li];
	if (out == NULL || sb < 0) {
		return FQT_ERR_STATE; /* not planned (train_plan.c gives every case one) */
	}
	void *scratch = fqt_train_buffer(t, sb);
	const size_t size = t->buffers[sb].size;
	const int fixed = t->opt.fixed_error_scaling;
	int32_t e8 = 0;
	fqt_status st = FQT_OK;
	fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 0);
	if (fqt_input_error_bound(job) > (uint64_t)INT32_MAX) {
		fqt_input_error_exact_s8(job, ex - FQT_ERROR_FOLD_BITS + job->p, fixed, out, &e8);
	} else if (v->op == FQT_OP_CONV_2D) {
		st = fqt_conv2d_backward_input_s8(&v->params.conv, &v->input_dims, &v->filter_dims,
						  v->weights, v->weight_scales,
						  v->weight_scale_count, &v->output_dims, job->e,
						  ex, job->kept, job->n_kept, fixed, out, &e8,
						  scratch, size);
	} else if (v->op == FQT_OP_DEPTHWISE_CONV_2D) {
		st = fqt_depthwise_conv2d_backward_input_s8(
			&v->params.conv, &v->input_dims, &v->filter_dims, v->weights,
			v->weight_scales, v->weight_scale_count, &v->output_dims, job->e, ex,
			job->kept, job->n_kept, fixed, out, &e8, scratch, size);
	} else {
		st = fqt_fully_connected_backward_input_s8(
			job->e, v->output_depth, (int32_t)v->input_elements, v->weights,
			v->weight_scales, v->weight_scale_count, ex, job->kept, job->n_kept, fixed,
			out, &e8, scratch, size);
	}
	fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 1);
	if (st == FQT_OK) {
		lean_delivered(t, b, out, e8, v->input_elements);
	}
	return st;
}

static fqt_status input_error(fqt_trainer *t, uint32_t li, const fqt_layer_view *v,
			      const int8_t *e, int32_t ex, const uint16_t *kept, int32_t n_kept)
{
	int32_t *acc = t->acc_buf[li] >= 0
			       ? (int32_t *)(void *)fqt_train_buffer(t, t->acc_buf[li])
			       : NULL;
	const int32_t in_buf = v->input_buffer[0];
	const fqt_input_error_job job = {
		.kind = v->op == FQT_OP_CONV_2D		  ? FQT_INPUT_ERROR_CONV2D
			: v->op == FQT_OP_DEPTHWISE_CONV_2D ? FQT_INPUT_ERROR_DEPTHWISE_CONV2D
							    : FQT_INPUT_ERROR_FULLY_CONNECTED,
		.cp = &v->params.conv,
		.id = v->input_dims,
		.wd = v->filter_dims,
		.od = v->output_dims,
		.w = v->weights,
		.scales = v->weight_scales,
		.scale_count = v->weight_scale_count,
		.p = fqt_fold_exponent(v->weight_scales, v->weight_scale_count),
		.e = e,
		.n_ch = v->output_depth,
		.kept = kept,
		.n_kept = n_kept,
		.in_count = (int32_t)v->input_elements,
	};
	if (t->ie_buf[li] >= 0) {
		return input_error_lean(t, li, v, &job, ex); /* the lean plan's int8 path */
	}
	fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 0);
	if (fqt_input_error_bound(&job) > (uint64_t)INT32_MAX) {
		int32_t base = ex - FQT_ERROR_FOLD_BITS + job.p;
		fqt_input_error_exact(&job, acc, &base, t->opt.fixed_error_scaling);
		fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 1);
		deliver_acc(t, in_buf, acc, base, v->input_elements);
		return FQT_OK;
	}
	int32_t p = 0;
	fqt_status st;
	switch (v->op) {
	case FQT_OP_CONV_2D:
		st = fqt_conv2d_backward_input(&v->params.conv, &v->input_dims, &v->filter_dims,
					       v->weights, v->weight_scales,
					       v->weight_scale_count, &v->output_dims, e, kept,
					       n_kept, acc, &p);
		break;
	case FQT_OP_DEPTHWISE_CONV_2D:
		st = fqt_depthwise_conv2d_backward_input(
			&v->params.conv, &v->input_dims, &v->filter_dims, v->weights,
			v->weight_scales, v->weight_scale_count, &v->output_dims, e, kept, n_kept,
			acc, &p, t->wg_buf[li] >= 0 ? fqt_train_buffer(t, t->wg_buf[li]) : NULL,
			t->wg_buf[li] >= 0 ? t->buffers[t->wg_buf[li]].size : 0u);
		break;
	default:
		st = fqt_fully_connected_backward_input(e, v->output_depth,
							(int32_t)v->input_elements, v->weights,
							v->weight_scales, v->weight_scale_count,
							kept, n_kept, acc, &p);
		break;
	}
	fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 1);
	if (st != FQT_OK) {
		return st;
	}
	deliver_acc(t, in_buf, acc, ex - FQT_ERROR_FOLD_BITS + p, v->input_elements);
	return FQT_OK;
}

static fqt_status backward_weighted(fqt_trainer *t, uint32_t li, const int8_t *e, int32_t ex,
				    int32_t frac, int need_in)
{
	const fqt_layer_view *v = &t->views[li];
	const int slot = t->slot_of_layer[li];
	const int passes = (slot >= 0) + need_in;
	if (passes == 0) {
		return FQT_OK;
	}
	const int32_t n_ch = v->output_depth;
	const int32_t positions = (int32_t)(v->output_elements / (uint32_t)n_ch);
	uint16_t *kept;
	fqt_train_mark(t, FQT_PHASE_SELECT, (int32_t)li, 0);
	const int32_t n_kept = select_channels(t, li, e, n_ch, positions, frac, &kept);
	fqt_train_mark(t, FQT_PHASE_SELECT, (int32_t)li, 1);
	const uint64_t per_ch = v->macs / (uint64_t)n_ch;
	t->counters.backward_macs += (uint64_t)passes * per_ch * (uint64_t)n_kept;
	t->counters.backward_macs_full += (uint64_t)passes * per_ch * (uint64_t)n_ch;
	if (slot >= 0) {
		const fqt_status st = weight_gradient(t, &t->layers[slot], e, ex, kept, n_kept);
		if (st != FQT_OK) {
			return st;
		}
	}
	return need_in ? input_error(t, li, v, e, ex, kept, n_kept) : FQT_OK;
}

fqt_status fqt_train_backward_layer(fqt_trainer *t, uint32_t li, int32_t frac)
{
	const fqt_layer_view *v = &t->views[li];
	const int32_t bo = v->output_buffer;
	if (!t->has_err[bo]) {
		return FQT_OK;
	}
	int8_t *e = (int8_t *)fqt_train_buffer(t, t->err_buf[bo]);
	const int32_t ex = t->err_exp[bo];
	const int8_t *y = (const int8_t *)fqt_train_buffer(t, bo);
	fqt_train_mark(t, FQT_PHASE_ACTIVATION, (int32_t)li, 0);
	fqt_activation_backward(e, y, v->output_elements, v->activation,
				v->act_min, v->act_max);
	if (t->opt.clip_mask && v->activation == FQT_ACTIVATION_RELU) {
		fqt_relu_clip_mask(e, y, v->output_elements, v->act_max);
	} else if (t->opt.clip_mask && v->activation == FQT_ACTIVATION_NONE &&
		   fqt_op_is_weighted(v->op)) {
		fqt_saturation_mask(e, y, v->output_elements, v->act_min, v->act_max);
	}
	fqt_train_mark(t, FQT_PHASE_ACTIVATION, (int32_t)li, 1);
	const int32_t bi = v->input_buffer[0];
	const int need_in = needs_error(t, bi);
	if (fqt_op_is_weighted(v->op)) {
		return backward_weighted(t, li, e, ex, frac, need_in);
	}
	switch (v->op) {
	case FQT_OP_ADD:
		/* Section 5.7: each input that needs an error gets (e, E), independently of the
		 * other (the first input may be the model input or produced before first_bw). */
		if (need_in) {
			deliver_s8(t, bi, e, ex, v->input_elements);
		}
		if (needs_error(t, v->input_buffer[1])) {
			deliver_s8(t, v->input_buffer[1], e, ex, v->input_elements);
		}
		return FQT_OK;
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D: {
		if (!need_in) {
			return FQT_OK;
		}
		fqt_status st;
		if (t->acc_buf[li] < 0) {
			/* No int32 scratch planned (train_plan.c pool_error_direct): the pool's
			 * windows are disjoint, and it is the input's only consumer (default
			 * plan) or writes a later delivery into tmp_buf (lean). */
			int8_t *out = lean_target(t, li, bi);
			int32_t e8 = 0;
			if (out == NULL) {
				return FQT_ERR_STATE;
			}
			fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 0);
			st = fqt_pool2d_backward_s8(
				&v->params.pool, v->op == FQT_OP_AVERAGE_POOL_2D, &v->input_dims,
				(const int8_t *)fqt_train_buffer(t, bi), &v->output_dims, e, ex,
				t->opt.fixed_error_scaling, out, &e8);
			fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 1);
			if (st == FQT_OK) {
				lean_delivered(t, bi, out, e8, v->input_elements);
			}
			return st;
		}
		int32_t *acc = (int32_t *)(void *)fqt_train_buffer(t, t->acc_buf[li]);
		fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 0);
		if (v->op == FQT_OP_AVERAGE_POOL_2D) {
			st = fqt_average_pool2d_backward(&v->params.pool, &v->input_dims,
							 &v->output_dims, e, acc);
		} else {
			st = fqt_max_pool2d_backward(&v->params.pool, &v->input_dims,
						     (const int8_t *)fqt_train_buffer(t, bi),
						     &v->output_dims, e, acc);
		}
		fqt_train_mark(t, FQT_PHASE_INPUT_ERROR, (int32_t)li, 1);
		if (st != FQT_OK) {
			return st;
		}
		deliver_acc(t, bi, acc, v->op == FQT_OP_AVERAGE_POOL_2D ? ex - 16 : ex,
			    v->input_elements);
		return FQT_OK;
	}
	case FQT_OP_RESHAPE:
		/* The identity on the error bytes (kernels/reshape.c). */
		if (need_in) {
			deliver_s8(t, bi, e, ex, v->input_elements);
		}
		return FQT_OK;
	default:
		return need_in ? FQT_ERR_UNSUPPORTED : FQT_OK;
	}
}
