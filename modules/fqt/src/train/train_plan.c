/*
 * The training plan (docs/memory-plan.md; the twin of scripts/fqt/plan.py
 * training_buffers): the inference buffers kept until their backward step, the error of
 * every layer output from first_bw on, the int32 input-error scratch, the channel
 * selection scratch and the weight-gradient scratch of trainable convolutions, placed by the same greedy planner; and the params buffer's bytes.
 */
#include "fqt/memory_plan.h"
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
 * *_scratch_size(); plan.py weight_gradient_scratch), 0 for other layers. */
static uint32_t weight_gradient_scratch(const fqt_trainer *t, uint32_t li)
{
	const fqt_layer_view *v = &t->views[li];
	if (t->slot_of_layer[li] < 0) {
		return 0u;
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
static void keep_for_backward(fqt_trainer *t, const fqt_model *m, uint64_t mask, size_t count)
{
	const uint32_t n = m->layer_count;
	for (size_t b = 0; b < count; ++b) {
		uint16_t keep = t->buffers[b].last;
		for (uint32_t li = t->first_bw; li < n; ++li) {
			const fqt_layer_view *v = &t->views[li];
			const uint16_t s = FQT_BW_STEP(n, li);
			if ((((mask >> li) & 1u) || v->op == FQT_OP_MAX_POOL_2D) &&
			    v->input_buffer[0] == (int32_t)b) {
				keep = s > keep ? s : keep;
			}
			if (v->output_buffer == (int32_t)b &&
			    (v->activation != FQT_ACTIVATION_NONE || v->op == FQT_OP_SOFTMAX ||
			     fqt_op_is_weighted(v->op))) {
				keep = s > keep ? s : keep;
			}
		}
		if (t->buffers[b].tensor == m->output_tensor) {
			const uint16_t s = FQT_BW_STEP(n, n - 1u);
			keep = s > keep ? s : keep;
		}
		t->buffers[b].last = keep;
	}
}

/* plan.py pool_error_direct: a pool whose input error needs no int32 scratch (written as
 * int8 straight into the input's error buffer): its windows are disjoint and it is the
 * only reader of its input, which is not the model output (so no other error is there). */
static int pool_error_direct(const fqt_trainer *t, const fqt_model *m, uint32_t li)
{
	const fqt_layer_view *v = &t->views[li];
	if ((v->op != FQT_OP_AVERAGE_POOL_2D && v->op != FQT_OP_MAX_POOL_2D) ||
	    !fqt_pool2d_windows_disjoint(&v->params.pool, &v->output_dims) ||
	    (uint32_t)v->input_tensor[0] == m->output_tensor) {
		return 0;
	}
	int readers = 0;
	for (uint32_t l = 0; l < m->layer_count; ++l) {
		readers += (t->views[l].input_buffer[0] == v->input_buffer[0]) +
			   (t->views[l].input_buffer[1] == v->input_buffer[0]);
	}
	return readers == 1;
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
static fqt_status grad_rows_buffers(fqt_trainer *t, const fqt_model *m, size_t *count)
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
		t->buffers[*count] = (fqt_plan_buffer){.size = 0u,
						       .first = FQT_BW_STEP(n, li),
						       .last = FQT_BW_STEP(n, li),
						       .tensor = (uint16_t)v->output_tensor};
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

fqt_status fqt_train_plan_build(fqt_trainer *t, const fqt_model *m, uint64_t mask)
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
	keep_for_backward(t, m, mask, count);
	for (uint32_t b = 0; b <= n; ++b) {
		t->err_buf[b] = -1;
	}
	for (uint32_t li = 0; li < n; ++li) {
		t->acc_buf[li] = -1;
		t->sel_buf[li] = -1;
		t->wg_buf[li] = -1;
	}
	for (uint32_t li = t->first_bw; li < n; ++li) {
		const fqt_layer_view *v = &t->views[li];
		/* A layer output's error is born at the backward step of its last reader. */
		const int32_t reader = fqt_last_reader(m, (uint32_t)v->output_tensor);
		const uint16_t born = reader >= 0 ? FQT_BW_STEP(n, reader) : FQT_BW_STEP(n, n - 1u);
		if (count + 4u > FQT_TRAIN_MAX_BUFFERS) {
			return FQT_ERR_UNSUPPORTED;
		}
		t->err_buf[li + 1u] = (int16_t)count;
		t->buffers[count++] = (fqt_plan_buffer){.size = v->output_elements,
							.first = born,
							.last = FQT_BW_STEP(n, li),
							.tensor = (uint16_t)v->output_tensor};
		if (li > t->first_bw && v->input_buffer[0] >= 1 && !pool_error_direct(t, m, li)) {
			t->acc_buf[li] = (int16_t)count;
			t->buffers[count++] = (fqt_plan_buffer){.size = 4u * v->input_elements,
								.first = FQT_BW_STEP(n, li),
								.last = FQT_BW_STEP(n, li),
								.tensor = (uint16_t)v->input_tensor[0]};
		}
		if (fqt_op_is_weighted(v->op)) {
			t->sel_buf[li] = (int16_t)count;
			t->buffers[count++] = (fqt_plan_buffer){
				.size = FQT_SELECT_BYTES_PER_CHANNEL * (uint32_t)v->output_depth,
				.first = FQT_BW_STEP(n, li),
				.last = FQT_BW_STEP(n, li),
				.tensor = (uint16_t)v->output_tensor};
		}
		/* One backward scratch per layer (wg_buf): the weight gradient's, and the depthwise
		 * input error's gather ring when the layer passes an error on (it runs after the
		 * weight gradient, in the same step). */
		uint32_t wg = weight_gradient_scratch(t, li);
		if (li > t->first_bw && v->input_buffer[0] >= 1 &&
		    v->op == FQT_OP_DEPTHWISE_CONV_2D) {
			const uint32_t ie = (uint32_t)fqt_depthwise_conv2d_backward_input_scratch_size(
				&v->params.conv, &v->input_dims, &v->filter_dims, &v->output_dims);
			wg = ie > wg ? ie : wg;
		}
		if (wg > 0u) {
			t->wg_buf[li] = (int16_t)count;
			t->buffers[count++] = (fqt_plan_buffer){.size = wg,
								.first = FQT_BW_STEP(n, li),
								.last = FQT_BW_STEP(n, li),
								.tensor = (uint16_t)v->output_tensor};
		}
	}
	st = grad_rows_buffers(t, m, &count);
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
	return fqt_trainer_memory_grad(scratch, model, trainable_mask, FQT_GRAD_STATE_INT32,
				       arena_bytes, params_bytes);
}

fqt_status fqt_trainer_memory_grad(fqt_trainer *scratch, const fqt_model *model,
				   uint64_t trainable_mask, uint32_t grad_state,
				   size_t *arena_bytes, size_t *params_bytes)
{
	if (scratch == NULL || model == NULL || arena_bytes == NULL || params_bytes == NULL ||
	    grad_state > FQT_GRAD_STATE_INT8) {
		return FQT_ERR_ARGUMENT;
	}
	scratch->opt.grad_state = (uint8_t)grad_state;
	const fqt_status st = fqt_train_plan_build(scratch, model, trainable_mask);
	if (st != FQT_OK) {
		return st;
	}
	*arena_bytes = scratch->arena_bytes;
	*params_bytes = scratch->params_bytes;
	return FQT_OK;
}
