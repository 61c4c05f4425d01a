/*
 * The training plan (docs/memory-plan.md; the twin of scripts/fqt/plan.py
 * training_buffers): the inference buffers kept until their backward step, the error of
 * every layer output from first_bw on, the int32 input-error scratch, the channel
 * selection scratch and the weight-gradient scratch of trainable convolutions, placed by
 * the same greedy planner; and the params buffer's bytes. The lean plan times every
 * buffer by the phase of a step that uses it and gives weighted layers an int8 input error
 * with chunk-sized scratch (ie) instead of the int32 tensor (acc).
 */
#include "fqt/memory_plan.h"
#include "kernels/input_error_s8.h"
#include "kernels/kernels_internal.h"
#include "runtime/layer_ops.h"
#include "runtime/model_decode.h"
#include "runtime/model_plan.h"
#include "train_internal.h"

#define FQT_SELECT_BYTES_PER_CHANNEL 6u

static uint32_t align4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

static uint32_t layer_weights(const fqt_layer_view *v)
{
	return (uint32_t)v->filter_dims.n * (uint32_t)v->filter_dims.h *
	       (uint32_t)v->filter_dims.w * (uint32_t)v->filter_dims.c;
}

/* int8 weights, int32 bias, the gradient state (train/grad_state.c), and per channel
 * multiplier, shift, scale, EMA mean and std (train/trainer.c lays them out). */
static uint32_t layer_params_bytes(const fqt_layer_view *v, uint32_t grad_state)
{
	const uint32_t n_weights = layer_weights(v);
	const uint32_t n_out = (uint32_t)v->output_depth;
	return align4(n_weights) + 4u * n_out +
	       fqt_grad_state_params_bytes(grad_state, n_weights, n_out) + 20u * n_out;
}

/* The weight-gradient scratch of a trainable CONV_2D / DEPTHWISE_CONV_2D (the kernels'
 * *_scratch_size(); plan.py weight_gradient_scratch; lean: a CONV_2D's blocked one), 0 for
 * other layers. */
static uint32_t weight_gradient_scratch(const fqt_trainer *t, uint32_t li, int lean)
{
	const fqt_layer_view *v = &t->views[li];
	if (t->slot_of_layer[li] < 0) {
		return 0u;
	}
	if (v->op == FQT_OP_CONV_2D && lean) {
		/* the transposed error a block of channels at a time */
		return (uint32_t)fqt_conv2d_backward_weights_blocked_scratch_size(
			&v->input_dims, &v->filter_dims, &v->output_dims);
	}
	if (v->op == FQT_OP_CONV_2D) {
		return (uint32_t)fqt_conv2d_backward_weights_scratch_size(
			&v->input_dims, &v->filter_dims, &v->output_dims);
	}
	if (v->op == FQT_OP_DEPTHWISE_CONV_2D) {
		return (uint32_t)fqt_depthwise_conv2d_backward_weights_scratch_size(
			&v->filter_dims, &v->output_dims);
	}
	return 0u;
}

static fqt_status choose_layers(fqt_trainer *t, const fqt_model *m, uint64_t mask)
{
	const uint32_t n = m->layer_count;
	int32_t first = -1;
	uint32_t params = 0;
	uint32_t n_train = 0;
	for (uint32_t l = 0; l < n; ++l) {
		t->slot_of_layer[l] = -1;
		if (((mask >> l) & 1u) == 0u) {
			continue;
		}
		if (!fqt_op_is_weighted(t->views[l].op)) {
			return FQT_ERR_ARGUMENT;
		}
		if (first < 0) {
			first = (int32_t)l;
		}
		if (n_train >= FQT_TRAIN_MAX_TRAINABLE) {
			return FQT_ERR_UNSUPPORTED;
		}
		t->slot_of_layer[l] = (int8_t)n_train++;
		params += layer_params_bytes(&t->views[l], t->opt.grad_state);
	}
	if ((n < 64u && (mask >> n) != 0u) || first < 0) {
		return FQT_ERR_ARGUMENT;
	}
	t->first_bw = (uint16_t)first;
	t->n_train = (uint16_t)n_train;
	t->params_bytes = params;
	return FQT_OK;
}

/* The inference buffers, each kept until the last backward step that reads it: the input
 * of a trainable layer or a MAX_POOL (its argmax), the output of a fused activation or a
 * SOFTMAX (their derivative), the model output (the loss). */
/* Step s at phase f of the lean plan (plan.py at), s itself in the default plan. */
static uint16_t at(int lean, uint32_t s, uint32_t f)
{
	return (uint16_t)(lean ? FQT_PHASES * s + f : s);
}

static uint16_t bw_at(int lean, uint32_t n, uint32_t li, uint32_t f)
{
	return at(lean, FQT_BW_STEP(n, li), f);
}

static uint16_t max16(uint16_t a, uint16_t b)
{
	return a > b ? a : b;
}

static void keep_for_backward(fqt_trainer *t, const fqt_model *m, uint64_t mask, size_t count,
			      int lean)
{
	const uint32_t n = m->layer_count;
	for (size_t b = 0; b < count; ++b) {
		t->buffers[b].first = at(lean, t->buffers[b].first, 0u);
		uint16_t keep = at(lean, t->buffers[b].last, 0u);
		for (uint32_t li = t->first_bw; li < n; ++li) {
			const fqt_layer_view *v = &t->views[li];
			if (v->input_buffer[0] == (int32_t)b && ((mask >> li) & 1u)) {
				/* the weight gradient reads the input */
				keep = max16(keep, bw_at(lean, n, li, FQT_PLAN_PHASE_WGRAD));
			}
			if (v->input_buffer[0] == (int32_t)b && v->op == FQT_OP_MAX_POOL_2D) {
				/* the input error routes to the argmax */
				keep = max16(keep, bw_at(lean, n, li, FQT_PLAN_PHASE_IERR));
			}
			if (v->output_buffer == (int32_t)b &&
			    (v->activation != FQT_ACTIVATION_NONE || v->op == FQT_OP_SOFTMAX ||
			     fqt_op_is_weighted(v->op))) {
				/* the clamp / saturation mask, the loss gradient */
				keep = max16(keep, bw_at(lean, n, li, FQT_PLAN_PHASE_MASK));
			}
		}
		if (t->buffers[b].tensor == m->output_tensor) {
			keep = max16(keep, bw_at(lean, n, n - 1u, FQT_PLAN_PHASE_MASK));
		}
		t->buffers[b].last = keep;
	}
}

/* plan.py pool_error_direct: a pool whose input error needs no int32 scratch (written as
 * int8 straight into the input's error buffer): its windows are disjoint and it is the
 * only reader of its input, which is not the model output (so no other error is there). */
static int pool_error_direct(const fqt_trainer *t, const fqt_model *m, uint32_t li, int lean)
{
	const fqt_layer_view *v = &t->views[li];
	if ((v->op != FQT_OP_AVERAGE_POOL_2D && v->op != FQT_OP_MAX_POOL_2D) ||
	    !fqt_pool2d_windows_disjoint(&v->params.pool, &v->output_dims)) {
		return 0;
	}
	if (lean) {
		return 1; /* a shared input gets an int8 copy to combine from (tmp) */
	}
	if ((uint32_t)v->input_tensor[0] == m->output_tensor) {
		return 0;
	}
	int readers = 0;
	for (uint32_t l = 0; l < m->layer_count; ++l) {
		readers += (t->views[l].input_buffer[0] == v->input_buffer[0]) +
			   (t->views[l].input_buffer[1] == v->input_buffer[0]);
	}
	return readers == 1;
}

/* Lean plan (plan.py _needs_copy): may layer li's input already hold an error when li
 * delivers its own (from a reader of higher index, or the loss on the model output)? */
static int needs_copy(const fqt_trainer *t, const fqt_model *m, uint32_t li)
{
	const fqt_layer_view *v = &t->views[li];
	if ((uint32_t)v->input_tensor[0] == m->output_tensor) {
		return 1;
	}
	return fqt_last_reader(m, (uint32_t)v->input_tensor[0]) != (int32_t)li;
}

/* The lean input error's scratch of a weighted layer (plan.py lean_input_error_scratch). */
static uint32_t lean_input_error_scratch(const fqt_layer_view *v)
{
	switch (v->op) {
	case FQT_OP_CONV_2D:
		return (uint32_t)fqt_conv2d_backward_input_s8_scratch_size(&v->input_dims,
									    &v->output_dims);
	case FQT_OP_DEPTHWISE_CONV_2D:
		return (uint32_t)fqt_depthwise_conv2d_backward_input_s8_scratch_size(
			&v->params.conv, &v->input_dims, &v->filter_dims, &v->output_dims);
	default:
		return (uint32_t)fqt_fully_connected_backward_input_s8_scratch_size(
			v->output_depth, (int32_t)v->input_elements);
	}
}

/* plan.py lean_input_error: the int8 input error with no int32 tensor, for a pool with
 * disjoint windows, and for a weighted layer whose chunk scratch (and int8 copy) is
 * smaller than the int32 tensor. */
static int lean_input_error(const fqt_trainer *t, const fqt_model *m, uint32_t li)
{
	const fqt_layer_view *v = &t->views[li];
	if (v->op == FQT_OP_AVERAGE_POOL_2D || v->op == FQT_OP_MAX_POOL_2D) {
		return pool_error_direct(t, m, li, 1);
	}
	if (!fqt_op_is_weighted(v->op)) {
		return 0;
	}
	const uint32_t copy = needs_copy(t, m, li) ? v->input_elements : 0u;
	return lean_input_error_scratch(v) + copy < 4u * v->input_elements;
}

static int16_t add_buffer(fqt_trainer *t, size_t *count, uint32_t size, uint16_t first,
			  uint16_t last, int32_t tensor)
{
	t->buffers[*count] = (fqt_plan_buffer){
		.size = size, .first = first, .last = last, .tensor = (uint16_t)tensor};
	return (int16_t)(*count)++;
}

/* Bytes of a narrow gradient state's per-sample rows of `chunk` channels: int32 weight
 * rows, then the biases (plan.py grad_rows_bytes). */
static uint32_t grad_rows_bytes(const fqt_layer_view *v, uint32_t chunk)
{
	const uint32_t row = layer_weights(v) / (uint32_t)v->output_depth;
	return 4u * chunk * (row + 1u);
}

/* The greedy peak of the first count buffers with the last one holding `chunk` rows. */
static uint32_t peak_with(fqt_trainer *t, size_t count, const fqt_layer_view *v, uint32_t chunk,
			  fqt_status *st)
{
	uint32_t peak = 0;
	t->buffers[count - 1u].size = grad_rows_bytes(v, chunk);
	if (*st == FQT_OK) {
		*st = fqt_greedy_plan(t->buffers, count, &peak);
	}
	return peak;
}

/* plan.py grad_rows_buffers: with a narrow gradient state, each trainable layer (in
 * increasing index) gets an arena buffer of per-sample int32 rows for its backward step,
 * of the most channels (a binary search over 1..n_out, n_out first) whose peak stays
 * within the plan's so far, or within that of one channel when even one raises it. More
 * channels per kernel call: fewer calls, each rebuilding its own transposed input. */
static fqt_status grad_rows_buffers(fqt_trainer *t, const fqt_model *m, size_t *count, int lean)
{
	if (t->opt.grad_state == FQT_GRAD_STATE_INT32) {
		return FQT_OK;
	}
	const uint32_t n = m->layer_count;
	uint32_t cur = 0;
	fqt_status st = fqt_greedy_plan(t->buffers, *count, &cur);
	for (uint32_t li = t->first_bw; li < n && st == FQT_OK; ++li) {
		if (t->slot_of_layer[li] < 0) {
			continue;
		}
		if (*count + 1u > FQT_TRAIN_MAX_BUFFERS) {
			return FQT_ERR_UNSUPPORTED;
		}
		const fqt_layer_view *v = &t->views[li];
		const size_t k = *count + 1u;
		const uint16_t s = bw_at(lean, n, li, FQT_PLAN_PHASE_WGRAD);
		t->buffers[*count] = (fqt_plan_buffer){
			.size = 0u, .first = s, .last = s, .tensor = (uint16_t)v->output_tensor};
		const uint32_t one = peak_with(t, k, v, 1u, &st);
		const uint32_t limit = one > cur ? one : cur;
		const uint32_t n_out = (uint32_t)v->output_depth;
		uint32_t ok = 1u;         /* the largest chunk known to fit */
		uint32_t bad = n_out + 1u; /* the smallest known not to */
		while (bad - ok > 1u && st == FQT_OK) {
			const uint32_t mid = bad == n_out + 1u ? n_out : ok + (bad - ok) / 2u;
			if (peak_with(t, k, v, mid, &st) <= limit) {
				ok = mid;
			} else {
				bad = mid;
			}
		}
		fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
		L->chunk = (int32_t)ok;
		L->rows_buf = (int16_t)*count;
		cur = peak_with(t, k, v, ok, &st);
		*count = k;
	}
	return st;
}

fqt_status fqt_train_plan_build(fqt_trainer *t, const fqt_model *m, uint64_t mask, int lean)
{
	const uint32_t n = m->layer_count;
	if (n > FQT_MAX_LAYERS || n > 64u) {
		return FQT_ERR_UNSUPPORTED;
	}
	for (uint32_t l = 0; l < n; ++l) {
		fqt_layer_view_decode_for_training(m, l, &t->views[l]);
	}
	fqt_status st = choose_layers(t, m, mask);
	if (st != FQT_OK) {
		return st;
	}
	size_t count = 0;
	st = fqt_inference_buffers(m, t->buffers, FQT_TRAIN_MAX_BUFFERS, &count);
	if (st != FQT_OK) {
		return st;
	}
	keep_for_backward(t, m, mask, count, lean);
	for (uint32_t b = 0; b <= n; ++b) {
		t->err_buf[b] = -1;
	}
	for (uint32_t li = 0; li < n; ++li) {
		t->acc_buf[li] = -1;
		t->sel_buf[li] = -1;
		t->wg_buf[li] = -1;
		t->ie_buf[li] = -1;
		t->tmp_buf[li] = -1;
	}
	for (uint32_t li = t->first_bw; li < n; ++li) {
		const fqt_layer_view *v = &t->views[li];
		const int weighted = fqt_op_is_weighted(v->op);
		/* an input error is planned (backward.c needs_error decides at run time) */
		const int passes = li > t->first_bw && v->input_buffer[0] >= 1;
		/* A layer output's error is born at the backward step of its last reader (its
		 * input-error phase), or of the last layer when the loss writes it. */
		const int32_t reader = fqt_last_reader(m, (uint32_t)v->output_tensor);
		const int by_loss = reader < 0 || t->views[reader].op == FQT_OP_SOFTMAX;
		const uint16_t born =
			bw_at(lean, n, reader >= 0 ? (uint32_t)reader : n - 1u,
			      by_loss ? FQT_PLAN_PHASE_MASK : FQT_PLAN_PHASE_IERR);
		const uint16_t ie = bw_at(lean, n, li, FQT_PLAN_PHASE_IERR);
		if (count + 5u > FQT_TRAIN_MAX_BUFFERS) {
			return FQT_ERR_UNSUPPORTED;
		}
		t->err_buf[li + 1u] = add_buffer(
			t, &count, v->output_elements, born,
			bw_at(lean, n, li,
			      passes || !weighted ? FQT_PLAN_PHASE_IERR : FQT_PLAN_PHASE_WGRAD),
			v->output_tensor);
		const int lean_ie = lean && passes && lean_input_error(t, m, li);
		if (lean_ie) {
			/* int8 straight into the input's error, or via an int8 copy to combine */
			if (needs_copy(t, m, li)) {
				t->tmp_buf[li] = add_buffer(t, &count, v->input_elements, ie, ie,
							    v->input_tensor[0]);
			}
		} else if (lean && !weighted && v->op != FQT_OP_AVERAGE_POOL_2D &&
			   v->op != FQT_OP_MAX_POOL_2D) {
			/* ADD / RESHAPE pass int8 bytes on, the loss writes the SOFTMAX's: no
			 * scratch (the default plan has one, unused) */
		} else if (passes && !pool_error_direct(t, m, li, 0)) {
			t->acc_buf[li] = add_buffer(t, &count, 4u * v->input_elements, ie, ie,
						    v->input_tensor[0]);
		}
		if (weighted) {
			t->sel_buf[li] = add_buffer(
				t, &count, FQT_SELECT_BYTES_PER_CHANNEL * (uint32_t)v->output_depth,
				bw_at(lean, n, li, FQT_PLAN_PHASE_SELECT), ie, v->output_tensor);
		}
		/* One backward scratch per layer (wg_buf): the weight gradient's, and in the
		 * default plan the depthwise input error's gather ring when the layer passes an
		 * error on (it runs after the weight gradient, in the same step); the lean plan
		 * gives the input error its own (ie_buf), one phase later. */
		uint32_t wg = weight_gradient_scratch(t, li, lean);
		if (!lean && passes && v->op == FQT_OP_DEPTHWISE_CONV_2D) {
			const uint32_t dw = (uint32_t)fqt_depthwise_conv2d_backward_input_scratch_size(
				&v->params.conv, &v->input_dims, &v->filter_dims, &v->output_dims);
			wg = dw > wg ? dw : wg;
		}
		if (wg > 0u) {
			const uint16_t s = bw_at(lean, n, li, FQT_PLAN_PHASE_WGRAD);
			t->wg_buf[li] = add_buffer(t, &count, wg, s, s, v->output_tensor);
		}
		if (lean_ie && weighted) {
			t->ie_buf[li] = add_buffer(t, &count, lean_input_error_scratch(v), ie, ie,
						   v->output_tensor);
		}
	}
	st = grad_rows_buffers(t, m, &count, lean);
	if (st != FQT_OK) {
		return st;
	}
	t->buffer_count = (uint16_t)count;
	uint32_t peak = 0;
	st = fqt_greedy_plan(t->buffers, count, &peak);
	if (st != FQT_OK) {
		return st;
	}
	t->arena_bytes = peak;
	if (m->scratch_size > 0u) {
		/* The kernels' scratch (kernels/forward_wrapper.h) after the plan, as in
		 * inference; none with the portable kernels, so host plans equal plan.py's. */
		t->arena_bytes = align4(peak) + m->scratch_size;
	}
	t->output_buffer = (int16_t)fqt_model_buffer_of_tensor(m, m->output_tensor);
	return FQT_OK;
}

fqt_status fqt_trainer_memory(fqt_trainer *scratch, const fqt_model *model,
			      uint64_t trainable_mask, size_t *arena_bytes, size_t *params_bytes)
{
	return fqt_trainer_memory_with(scratch, model, trainable_mask, NULL, arena_bytes,
				       params_bytes);
}

fqt_status fqt_trainer_memory_with(fqt_trainer *scratch, const fqt_model *model,
				   uint64_t trainable_mask, const fqt_train_options *opt,
				   size_t *arena_bytes, size_t *params_bytes)
{
	const uint8_t grad_state = opt != NULL ? opt->grad_state : FQT_GRAD_STATE_INT32;
	if (scratch == NULL || model == NULL || arena_bytes == NULL || params_bytes == NULL ||
	    grad_state > FQT_GRAD_STATE_INT8) {
		return FQT_ERR_ARGUMENT;
	}
	scratch->opt.grad_state = grad_state;
	const fqt_status st = fqt_train_plan_build(scratch, model, trainable_mask,
						   opt != NULL && opt->lean_memory != 0u);
	if (st != FQT_OK) {
		return st;
	}
	*arena_bytes = scratch->arena_bytes;
	*params_bytes = scratch->params_bytes;
	return FQT_OK;
}
