/*
 * The training step on a session (docs/training-semantics.md), bit-exact with
 * scripts/fqt/golden/trainer.py: forward keeping what the backward needs (the training
 * plan of scripts/fqt/plan.py training_buffers), loss, backward layer by layer, gradient
 * accumulation, and the standardized requantizing update at the batch end.
 */
#include <math.h>
#include <string.h>

#include "fqt/kernels.h"
#include "fqt/trainer.h"
#include "fqt_internal.h"
#include "quant.h"
#include "train_internal.h"

#define FQT_FRAC_BITS 16
#define FQT_U_LIMIT ((int64_t)1 << 40)
#define FQT_STAT_BITS 15
#define FQT_SELECT_BYTES_PER_CHANNEL 6u
#define FQT_SOFTMAX_DIFF_BITS 5

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
	opt->lr = 0.01;
	opt->alpha_norm = 0.85;
	opt->batch = 32;
	opt->lambda_q15 = FQT_Q15_ONE;
	opt->stochastic_rounding = 1;
	opt->center = 1;
	opt->clip_mask = 1;
}

static uint32_t align4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

static int is_weighted(uint8_t op)
{
	return op == FQT_OP_CONV_2D || op == FQT_OP_DEPTHWISE_CONV_2D ||
	       op == FQT_OP_FULLY_CONNECTED;
}

static int32_t last_dim(const fqt_tensor *t)
{
	return t->rank == 0u ? 1 : t->shape[t->rank - 1u];
}

/* Last layer reading activation tensor t (constants have no readers to plan for). */
static int32_t max_user(const fqt_model *m, uint32_t t)
{
	fqt_tensor tt;
	fqt_decode_tensor(m, t, &tt);
	return (tt.flags & FQT_TENSOR_FLAG_CONSTANT) != 0u ? -1 : fqt_last_reader(m, t);
}

static uint32_t layer_params_bytes(const fqt_model *m, const fqt_layer *l)
{
	fqt_tensor w;
	fqt_tensor out;
	fqt_decode_tensor(m, (uint32_t)l->input[1], &w);
	fqt_decode_tensor(m, (uint32_t)l->output, &out);
	const uint32_t n_out = (uint32_t)last_dim(&out);
	return align4(w.element_count) + 4u * n_out + 4u * w.element_count + 4u * n_out +
	       20u * n_out;
}

/* The training plan (plan.py training_buffers) and the params bytes. */
static fqt_status build_plan(fqt_trainer *t, const fqt_model *m, uint64_t mask)
{
	const uint32_t n = m->layer_count;
	if (n > FQT_MAX_LAYERS || n > 64u) {
		return FQT_ERR_UNSUPPORTED;
	}
	int32_t first = -1;
	uint32_t params = 0;
	uint32_t n_train = 0;
	for (uint32_t l = 0; l < n; ++l) {
		t->slot_of_layer[l] = -1;
		if ((mask >> l) & 1u) {
			fqt_layer layer;
			fqt_decode_layer(m, l, &layer);
			if (!is_weighted(layer.op)) {
				return FQT_ERR_ARGUMENT;
			}
			if (first < 0) {
				first = (int32_t)l;
			}
			if (n_train >= FQT_TRAIN_MAX_TRAINABLE) {
				return FQT_ERR_UNSUPPORTED;
			}
			t->slot_of_layer[l] = (int8_t)n_train++;
			params += layer_params_bytes(m, &layer);
		}
	}
	if ((mask >> n) != 0u || first < 0) {
		return FQT_ERR_ARGUMENT;
	}
	t->first_bw = (uint16_t)first;
	t->n_train = (uint16_t)n_train;
	size_t count = 0;
	fqt_status st = fqt_inference_buffers(m, t->buffers, FQT_TRAIN_MAX_BUFFERS, &count);
	if (st != FQT_OK) {
		return st;
	}
#define BW_STEP(li) ((uint16_t)(2u * n - 1u - (uint32_t)(li)))
	for (size_t b = 0; b < count; ++b) {
		const uint32_t ti = t->buffers[b].tensor;
		uint16_t keep = t->buffers[b].last;
		for (uint32_t li = (uint32_t)first; li < n; ++li) {
			fqt_layer layer;
			fqt_decode_layer(m, li, &layer);
			const uint16_t s = BW_STEP(li);
			if ((((mask >> li) & 1u) || layer.op == FQT_OP_MAX_POOL_2D) &&
			    (uint32_t)layer.input[0] == ti) {
				keep = s > keep ? s : keep;
			}
			if ((uint32_t)layer.output == ti &&
			    (layer.activation != FQT_ACTIVATION_NONE || layer.op == FQT_OP_SOFTMAX)) {
				keep = s > keep ? s : keep;
			}
		}
		if (ti == m->output_tensor) {
			const uint16_t s = BW_STEP(n - 1u);
			keep = s > keep ? s : keep;
		}
		t->buffers[b].last = keep;
	}
	for (uint32_t b = 0; b <= n; ++b) {
		t->err_buf[b] = -1;
	}
	for (uint32_t li = 0; li < n; ++li) {
		t->acc_buf[li] = -1;
		t->sel_buf[li] = -1;
	}
	for (uint32_t li = (uint32_t)first; li < n; ++li) {
		fqt_layer layer;
		fqt_decode_layer(m, li, &layer);
		const uint32_t ti = (uint32_t)layer.output;
		fqt_tensor tt;
		fqt_decode_tensor(m, ti, &tt);
		const int32_t u = max_user(m, ti);
		const uint16_t born = u >= 0 ? BW_STEP(u) : BW_STEP(n - 1u);
		if (count + 3u > FQT_TRAIN_MAX_BUFFERS) {
			return FQT_ERR_UNSUPPORTED;
		}
		t->err_buf[li + 1u] = (int16_t)count;
		t->buffers[count++] = (fqt_plan_buffer){.size = tt.byte_size,
							.first = born,
							.last = BW_STEP(li),
							.tensor = (uint16_t)ti};
		const int32_t in_buf = fqt_model_buffer_of_tensor(m, (uint32_t)layer.input[0]);
		if (li > (uint32_t)first && in_buf >= 1) {
			fqt_tensor x;
			fqt_decode_tensor(m, (uint32_t)layer.input[0], &x);
			t->acc_buf[li] = (int16_t)count;
			t->buffers[count++] = (fqt_plan_buffer){.size = 4u * x.element_count,
								.first = BW_STEP(li),
								.last = BW_STEP(li),
								.tensor = (uint16_t)layer.input[0]};
		}
		if (is_weighted(layer.op)) {
			t->sel_buf[li] = (int16_t)count;
			t->buffers[count++] = (fqt_plan_buffer){
				.size = FQT_SELECT_BYTES_PER_CHANNEL * (uint32_t)last_dim(&tt),
				.first = BW_STEP(li),
				.last = BW_STEP(li),
				.tensor = (uint16_t)ti};
		}
	}
#undef BW_STEP
	t->buffer_count = (uint16_t)count;
	uint32_t peak = 0;
	st = fqt_greedy_plan(t->buffers, count, &peak);
	if (st != FQT_OK) {
		return st;
	}
	t->arena_bytes = peak;
	t->params_bytes = params;
	return FQT_OK;
}

fqt_status fqt_trainer_memory(fqt_trainer *scratch, const fqt_model *model,
			      uint64_t trainable_mask, size_t *arena_bytes, size_t *params_bytes)
{
	if (scratch == NULL || model == NULL || arena_bytes == NULL || params_bytes == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const fqt_status st = build_plan(scratch, model, trainable_mask);
	if (st != FQT_OK) {
		return st;
	}
	*arena_bytes = scratch->arena_bytes;
	*params_bytes = scratch->params_bytes;
	return FQT_OK;
}

static uint8_t *buf_ptr(const fqt_trainer *t, int32_t b)
{
	return t->arena + t->buffers[b].offset;
}

static int8_t *act(const fqt_trainer *t, int32_t tensor)
{
	return (int8_t *)buf_ptr(t, fqt_model_buffer_of_tensor(t->model, (uint32_t)tensor));
}

/* (M, shift) = QuantizeMultiplier(s_in * s_w[c] / s_out) as prepare.py, per channel or the
 * per-tensor FC float32 product. */
static void layer_multipliers(const fqt_model *m, const fqt_layer *l, const float *scale,
			      int per_channel, int32_t *mult, int32_t *shift)
{
	fqt_tensor x;
	fqt_tensor out;
	fqt_decode_tensor(m, (uint32_t)l->input[0], &x);
	fqt_decode_tensor(m, (uint32_t)l->output, &out);
	const float s_in = fqt_read_f32(x.scales, 0);
	const float s_out = fqt_read_f32(out.scales, 0);
	if (l->op == FQT_OP_FULLY_CONNECTED && !per_channel) {
		const float product = s_in * scale[0];
		int sh;
		fqt_quantize_multiplier((double)product / (double)s_out, &mult[0], &sh);
		shift[0] = sh;
		return;
	}
	for (uint32_t c = 0; c < l->channel_count; ++c) {
		const double s_w = (double)(per_channel ? scale[c] : scale[0]);
		int sh;
		fqt_quantize_multiplier((double)s_in * s_w / (double)s_out, &mult[c], &sh);
		shift[c] = sh;
	}
}

fqt_status fqt_trainer_init(fqt_trainer *t, fqt_session *session, void *params,
			    size_t params_size, uint64_t trainable_mask,
			    const fqt_train_options *opt)
{
	if (t == NULL || session == NULL || session->model == NULL || opt == NULL ||
	    (params == NULL && params_size > 0u) || opt->batch < 1u || opt->lambda_q15 < 0 ||
	    opt->lambda_q15 > FQT_Q15_ONE || !(opt->lr > 0.0)) {
		return FQT_ERR_ARGUMENT;
	}
	memset(t, 0, sizeof(*t));
	const fqt_model *m = session->model;
	fqt_status st = build_plan(t, m, trainable_mask);
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
		t->fwd_macs_per_sample += fqt_model_layer_macs(m, li);
		if (t->slot_of_layer[li] < 0) {
			continue;
		}
		fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
		fqt_layer l;
		fqt_tensor w;
		fqt_tensor out;
		fqt_decode_layer(m, li, &l);
		fqt_decode_tensor(m, (uint32_t)l.input[1], &w);
		fqt_decode_tensor(m, (uint32_t)l.output, &out);
		L->layer = (uint16_t)li;
		L->n_out = last_dim(&out);
		L->n_weights = w.element_count;
		L->row = (int32_t)(w.element_count / (uint32_t)L->n_out);
		L->per_channel = w.quant_count > 1u;
		L->has_bias = l.input[2] >= 0;
		const size_t n_out = (size_t)L->n_out;
		L->w = (int8_t *)p;
		p += align4(w.element_count);
		L->bias = (int32_t *)(void *)p;
		p += 4u * n_out;
		L->acc_w = (int32_t *)(void *)p;
		p += 4u * (size_t)w.element_count;
		L->acc_b = (int32_t *)(void *)p;
		p += 4u * n_out;
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
		memcpy(L->w, w.data, w.element_count);
		memset(L->acc_w, 0, 4u * (size_t)w.element_count);
		for (size_t c = 0; c < n_out; ++c) {
			L->bias[c] = 0;
			L->acc_b[c] = 0;
			L->mult[c] = 0;
			L->shift[c] = 0;
			L->scale[c] = 0.0f;
			L->mu[c] = 0.0f;
			L->sd[c] = -1.0f;
		}
		if (L->has_bias) {
			fqt_tensor b;
			fqt_decode_tensor(m, (uint32_t)l.input[2], &b);
			memcpy(L->bias, b.data, 4u * n_out);
		}
		memcpy(L->mult, l.multiplier, 4u * l.channel_count);
		memcpy(L->shift, l.shift, 4u * l.channel_count);
		memcpy(L->scale, w.scales, 4u * w.quant_count);
	}
	fqt_layer last;
	fqt_decode_layer(m, m->layer_count - 1u, &last);
	t->softmax_at_end = last.op == FQT_OP_SOFTMAX && (uint32_t)last.output == m->output_tensor;
	if (!t->softmax_at_end) {
		fqt_tensor out;
		fqt_decode_tensor(m, m->output_tensor, &out);
		/* PreprocessSoftmaxScaling(beta 1) and CalculateInputRadius, as prepare.py. */
		double real = (double)fqt_read_f32(out.scales, 0) *
			      (double)(1u << (31 - FQT_SOFTMAX_DIFF_BITS));
		real = real < 2147483647.0 ? real : 2147483647.0;
		int sh;
		fqt_quantize_multiplier(real, &t->sm_mult, &sh);
		t->sm_shift = sh;
		const double radius = 1.0 * (double)((1 << FQT_SOFTMAX_DIFF_BITS) - 1) *
				      (double)(1u << (31 - FQT_SOFTMAX_DIFF_BITS)) /
				      ldexp(1.0, sh);
		t->sm_diff_min = -(int32_t)floor(radius);
	}
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

/* ---- forward ---------------------------------------------------------------------------- */
static fqt_dims dims_of(const fqt_tensor *x)
{
	const fqt_dims d = {x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
	return d;
}

typedef struct weights_view {
	const int8_t *w;
	const int32_t *bias;
	const int32_t *mult, *shift;
	const void *scales;
	uint32_t scale_count;
} weights_view;

static void weights_of(const fqt_trainer *t, const fqt_layer *l, uint32_t li, weights_view *v)
{
	fqt_tensor w;
	fqt_decode_tensor(t->model, (uint32_t)l->input[1], &w);
	const int slot = t->slot_of_layer[li];
	if (slot >= 0) {
		const fqt_train_layer *L = &t->layers[slot];
		v->w = L->w;
		v->bias = L->has_bias ? L->bias : NULL;
		v->mult = L->mult;
		v->shift = L->shift;
		v->scales = L->scale;
		v->scale_count = L->per_channel ? (uint32_t)L->n_out : 1u;
		return;
	}
	v->w = (const int8_t *)w.data;
	v->bias = NULL;
	if (l->input[2] >= 0) {
		fqt_tensor b;
		fqt_decode_tensor(t->model, (uint32_t)l->input[2], &b);
		v->bias = (const int32_t *)b.data;
	}
	v->mult = l->multiplier;
	v->shift = l->shift;
	v->scales = w.scales;
	v->scale_count = w.quant_count;
}

static fqt_conv_params conv_params(const fqt_layer *l, const fqt_tensor *in, const fqt_tensor *out)
{
	const fqt_conv_params p = {
		.input_offset = -in->zero_points[0],
		.output_offset = out->zero_points[0],
		.stride_h = l->stride_h,
		.stride_w = l->stride_w,
		.dilation_h = l->dilation_h,
		.dilation_w = l->dilation_w,
		.pad_h = l->pad_h,
		.pad_w = l->pad_w,
		.depth_multiplier = out->shape[3] / (in->shape[3] > 0 ? in->shape[3] : 1),
		.act_min = l->act_min,
		.act_max = l->act_max,
	};
	return p;
}

static fqt_pool_params pool_params(const fqt_layer *l)
{
	const fqt_pool_params p = {l->stride_h, l->stride_w, l->filter_h, l->filter_w,
				   l->pad_h,    l->pad_w,    l->act_min,  l->act_max};
	return p;
}

static fqt_status forward_layer(fqt_trainer *t, uint32_t li)
{
	const fqt_model *m = t->model;
	fqt_layer l;
	fqt_tensor in;
	fqt_tensor out;
	fqt_decode_layer(m, li, &l);
	fqt_decode_tensor(m, (uint32_t)l.input[0], &in);
	fqt_decode_tensor(m, (uint32_t)l.output, &out);
	const int8_t *x = act(t, l.input[0]);
	int8_t *y = act(t, l.output);
	switch (l.op) {
	case FQT_OP_CONV_2D:
	case FQT_OP_DEPTHWISE_CONV_2D:
	case FQT_OP_FULLY_CONNECTED: {
		weights_view v;
		weights_of(t, &l, li, &v);
		fqt_tensor w;
		fqt_decode_tensor(m, (uint32_t)l.input[1], &w);
		const fqt_requant rq = {v.mult, v.shift, l.channel_count};
		if (l.op == FQT_OP_FULLY_CONNECTED) {
			const fqt_fully_connected_params p = {-in.zero_points[0], out.zero_points[0],
							      l.act_min, l.act_max};
			const int32_t out_depth = w.shape[0];
			return fqt_fully_connected_forward(
				&p, &rq, (int32_t)(out.element_count / (uint32_t)out_depth),
				w.shape[1], out_depth, x, v.w, v.bias, y);
		}
		const fqt_conv_params p = conv_params(&l, &in, &out);
		const fqt_dims id = dims_of(&in), wd = dims_of(&w), od = dims_of(&out);
		if (l.op == FQT_OP_CONV_2D) {
			return fqt_conv2d_forward(&p, &rq, &id, x, &wd, v.w, v.bias, &od, y);
		}
		return fqt_depthwise_conv2d_forward(&p, &rq, &id, x, &wd, v.w, v.bias, &od, y);
	}
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D: {
		const fqt_pool_params p = pool_params(&l);
		const fqt_dims id = dims_of(&in), od = dims_of(&out);
		return l.op == FQT_OP_AVERAGE_POOL_2D
			       ? fqt_average_pool2d_forward(&p, &id, x, &od, y)
			       : fqt_max_pool2d_forward(&p, &id, x, &od, y);
	}
	case FQT_OP_ADD: {
		fqt_tensor in2;
		fqt_decode_tensor(m, (uint32_t)l.input[1], &in2);
		const fqt_add_params p = {
			.input1_offset = -in.zero_points[0],
			.input2_offset = -in2.zero_points[0],
			.output_offset = out.zero_points[0],
			.left_shift = l.extras[0],
			.input1_multiplier = l.extras[1],
			.input1_shift = l.extras[2],
			.input2_multiplier = l.extras[3],
			.input2_shift = l.extras[4],
			.output_multiplier = l.multiplier[0],
			.output_shift = l.shift[0],
			.act_min = l.act_min,
			.act_max = l.act_max,
		};
		return fqt_add_forward(&p, out.element_count, x, act(t, l.input[1]), y);
	}
	case FQT_OP_SOFTMAX: {
		const fqt_softmax_params p = {l.extras[0], l.extras[1], l.extras[2]};
		const int32_t depth = last_dim(&in);
		return fqt_softmax_forward(&p, in.element_count / (uint32_t)depth, depth, x, y);
	}
	case FQT_OP_RESHAPE:
		return fqt_reshape_forward(x, out.byte_size, y);
	default:
		return FQT_ERR_ARGUMENT;
	}
}

/* ---- errors ----------------------------------------------------------------------------- */
/* e1 (in dst, exponent *e1_exp) + e2 (int8 src, or int32 holding int8 values): section 2.3.
 * A tensor with several consumers keeps one int8 error buffer; each delivery after the
 * first is combined into it here, two at a time in delivery order, for any number of
 * consumers (the golden align_errors folds the same way). */
static void combine_errors(const fqt_trainer *t, int8_t *dst, int32_t *e1_exp, const int8_t *src8,
			   const int32_t *src32, int32_t e2_exp, size_t n)
{
	const int32_t lo = *e1_exp < e2_exp ? *e1_exp : e2_exp;
	const int s1 = *e1_exp - lo < 24 ? *e1_exp - lo : 24;
	const int s2 = e2_exp - lo < 24 ? e2_exp - lo : 24;
	uint64_t mx = 0;
	for (size_t i = 0; i < n; ++i) {
		const int64_t b = src8 != NULL ? src8[i] : src32[i];
		const int64_t v = (int64_t)dst[i] * ((int64_t)1 << s1) + b * ((int64_t)1 << s2);
		const uint64_t a = (uint64_t)(v < 0 ? -v : v);
		mx = a > mx ? a : mx;
	}
	const int fixed = t->opt.fixed_error_scaling;
	const int r = fqt_error_shift(mx, lo, fixed, e1_exp);
	for (size_t i = 0; i < n; ++i) {
		const int64_t b = src8 != NULL ? src8[i] : src32[i];
		const int64_t v = (int64_t)dst[i] * ((int64_t)1 << s1) + b * ((int64_t)1 << s2);
		dst[i] = fqt_error_quantize_one(v, fixed, r);
	}
}

/* Deliver the error of activation buffer b (the input of some layer). */
static void deliver_s8(fqt_trainer *t, int32_t b, const int8_t *e, int32_t exponent, size_t n)
{
	int8_t *dst = (int8_t *)buf_ptr(t, t->err_buf[b]);
	if (!t->has_err[b]) {
		if (dst != e) {
			memmove(dst, e, n);
		}
		t->err_exp[b] = exponent;
		t->has_err[b] = 1;
		return;
	}
	combine_errors(t, dst, &t->err_exp[b], e, NULL, exponent, n);
}

static void deliver_acc(fqt_trainer *t, int32_t b, int32_t *acc, int32_t base, size_t n)
{
	int8_t *dst = (int8_t *)buf_ptr(t, t->err_buf[b]);
	const int fixed = t->opt.fixed_error_scaling;
	if (!t->has_err[b]) {
		fqt_quantize_error_s32(acc, n, base, fixed, dst, &t->err_exp[b]);
		t->has_err[b] = 1;
		return;
	}
	int32_t e2;
	fqt_quantize_error_s32(acc, n, base, fixed, (int8_t *)acc, &e2);
	combine_errors(t, dst, &t->err_exp[b], (const int8_t *)acc, NULL, e2, n);
}

/* ---- backward ------------------------------------------------------------------------- */
static int needs_error(const fqt_trainer *t, int32_t tensor)
{
	const int32_t b = fqt_model_buffer_of_tensor(t->model, (uint32_t)tensor);
	return b >= 1 && (uint32_t)(b - 1) >= t->first_bw;
}

static fqt_grad_sink grad_sink(fqt_train_layer *L, int32_t e)
{
	fqt_grad_sink s = {L->acc_w, L->acc_b, L->row, FQT_GRAD_FIRST, 0};
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

/* ---- error at the input of a weighted layer, section 5.3 ------------------------------- */
/* The kernels accumulate acc += w * g in int32, exact while no partial sum can leave int32;
 * past that the input error is computed here, exactly in int64, element by element. */
#define FQT_GATHER_CHUNK 16

typedef struct in_err_job {
	uint8_t op;
	const fqt_conv_params *cp;
	fqt_dims id, wd, od;
	const int8_t *w;
	const void *scales;
	uint32_t scale_count;
	int p;
	const int8_t *e;
	int32_t n_ch;
	const uint16_t *kept;
	int32_t n_kept;
	int32_t in_count; /* FC: accum depth */
} in_err_job;

static int32_t fold_g(int32_t e, int32_t m, int sh)
{
	return fqt_multiply_by_quantized_multiplier(e * (1 << FQT_ERROR_FOLD_BITS), m, sh);
}

/* An upper bound of sum |w * g| over the terms of any one input element (the kernels'
 * partial sums are sums of some of them). */
static uint64_t in_err_bound(const in_err_job *j)
{
	const int32_t positions = j->op == FQT_OP_FULLY_CONNECTED ? 1 : j->od.h * j->od.w;
	const int32_t taps = j->op == FQT_OP_FULLY_CONNECTED ? 1 : j->wd.h * j->wd.w;
	const int32_t dm = j->op == FQT_OP_DEPTHWISE_CONV_2D ? j->cp->depth_multiplier : 1;
	uint64_t total = 0;
	for (int32_t k = 0; k < j->n_kept; ++k) {
		const int32_t o = j->kept[k];
		int32_t emax = 0;
		for (int32_t q = 0; q < positions; ++q) {
			const int32_t v = j->e[(size_t)q * (size_t)j->n_ch + (size_t)o];
			emax = (v < 0 ? -v : v) > emax ? (v < 0 ? -v : v) : emax;
		}
		int32_t wmax = 0;
		if (j->op == FQT_OP_DEPTHWISE_CONV_2D) {
			for (int32_t q = 0; q < taps; ++q) {
				const int32_t v = j->w[(size_t)q * (size_t)j->n_ch + (size_t)o];
				wmax = (v < 0 ? -v : v) > wmax ? (v < 0 ? -v : v) : wmax;
			}
		} else {
			const size_t row = j->op == FQT_OP_FULLY_CONNECTED
						   ? (size_t)j->in_count
						   : (size_t)taps * (size_t)j->id.c;
			for (size_t q = 0; q < row; ++q) {
				const int32_t v = j->w[(size_t)o * row + q];
				wmax = (v < 0 ? -v : v) > wmax ? (v < 0 ? -v : v) : wmax;
			}
		}
		int32_t m;
		int sh;
		fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
		const int32_t g = fold_g(emax, m, sh);
		const uint64_t term = (uint64_t)taps * (uint64_t)(g + 1) * (uint64_t)wmax;
		if (j->op == FQT_OP_DEPTHWISE_CONV_2D) {
			/* an input channel receives from its DM output channels only */
			total = term > total ? term : total;
		} else {
			total += term;
		}
	}
	return j->op == FQT_OP_DEPTHWISE_CONV_2D ? total * (uint64_t)dm : total;
}

/* v[0..nc) = the exact input errors of channels c0.. at input position pos (FC: of
 * elements c0..). */
static void in_err_gather(const in_err_job *j, int32_t pos, int32_t c0, int32_t nc, int64_t *v)
{
	for (int32_t c = 0; c < nc; ++c) {
		v[c] = 0;
	}
	if (j->op == FQT_OP_FULLY_CONNECTED) {
		for (int32_t k = 0; k < j->n_kept; ++k) {
			const int32_t o = j->kept[k];
			int32_t m;
			int sh;
			fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
			const int64_t g = fold_g(j->e[o], m, sh);
			const int8_t *w = j->w + (size_t)o * (size_t)j->in_count + (size_t)c0;
			for (int32_t c = 0; c < nc; ++c) {
				v[c] += (int64_t)w[c] * g;
			}
		}
		return;
	}
	const fqt_conv_params *cp = j->cp;
	const int32_t iy = pos / j->id.w, ix = pos % j->id.w;
	const int32_t k_h = j->wd.h, k_w = j->wd.w, in_c = j->id.c;
	const int dw = j->op == FQT_OP_DEPTHWISE_CONV_2D;
	const int32_t dm = dw ? cp->depth_multiplier : 1;
	for (int32_t k = 0; k < j->n_kept; ++k) {
		const int32_t o = j->kept[k];
		if (dw && (o / dm < c0 || o / dm >= c0 + nc)) {
			continue;
		}
		int32_t m;
		int sh;
		fqt_fold_multiplier(j->scales, j->scale_count, o, j->p, &m, &sh);
		for (int32_t ky = 0; ky < k_h; ++ky) {
			const int32_t ty = iy + cp->pad_h - cp->dilation_h * ky;
			if (ty < 0 || ty % cp->stride_h != 0 || ty / cp->stride_h >= j->od.h) {
				continue;
			}
			const int32_t oy = ty / cp->stride_h;
			for (int32_t kx = 0; kx < k_w; ++kx) {
				const int32_t tx = ix + cp->pad_w - cp->dilation_w * kx;
				if (tx < 0 || tx % cp->stride_w != 0 || tx / cp->stride_w >= j->od.w) {
					continue;
				}
				const int32_t ox = tx / cp->stride_w;
				const int32_t ev = j->e[((size_t)oy * (size_t)j->od.w + (size_t)ox) *
							      (size_t)j->n_ch +
						      (size_t)o];
				if (ev == 0) {
					continue;
				}
				const int64_t g = fold_g(ev, m, sh);
				if (dw) {
					v[o / dm - c0] += (int64_t)j->w[((size_t)ky * (size_t)k_w +
									 (size_t)kx) *
										(size_t)j->n_ch +
									(size_t)o] *
							  g;
					continue;
				}
				const int8_t *w = j->w + (((size_t)o * (size_t)k_h + (size_t)ky) *
								  (size_t)k_w +
							  (size_t)kx) *
								 (size_t)in_c +
						  (size_t)c0;
				for (int32_t c = 0; c < nc; ++c) {
					v[c] += (int64_t)w[c] * g;
				}
			}
		}
	}
}

/* The exact input error into acc (int32 elements): pass 1 stores sat32(v); if some |v|
 * left int32, pass 2 recomputes v and stores quantize_error's int8 values (section 2.1,
 * from the exact int64 max) and moves *base to their exponent, so that deliver_acc's
 * quantize_error passes them through unchanged. Either way the result equals
 * quantize_error of the exact int64 accumulator. */
static void in_err_exact(const in_err_job *j, int32_t *acc, int32_t *base, int fixed)
{
	const int fc = j->op == FQT_OP_FULLY_CONNECTED;
	const int32_t positions = fc ? 1 : j->id.h * j->id.w;
	const int32_t depth = fc ? j->in_count : j->id.c;
	int64_t v[FQT_GATHER_CHUNK];
	uint64_t mx = 0;
	int r = 0;
	int32_t exponent = *base;
	for (int pass = 0; pass < 2; ++pass) {
		for (int32_t q = 0; q < positions; ++q) {
			for (int32_t c0 = 0; c0 < depth; c0 += FQT_GATHER_CHUNK) {
				const int32_t nc = depth - c0 < FQT_GATHER_CHUNK ? depth - c0
										 : FQT_GATHER_CHUNK;
				in_err_gather(j, q, c0, nc, v);
				int32_t *a = acc + (size_t)q * (size_t)depth + (size_t)c0;
				for (int32_t c = 0; c < nc; ++c) {
					if (pass == 0) {
						const uint64_t av =
							(uint64_t)(v[c] < 0 ? -v[c] : v[c]);
						mx = av > mx ? av : mx;
						a[c] = (int32_t)fqt_sat32_64(v[c]);
					} else {
						a[c] = fqt_error_quantize_one(v[c], fixed, r);
					}
				}
			}
		}
		if (pass == 0) {
			if (mx <= (uint64_t)INT32_MAX) {
				return;
			}
			r = fqt_error_shift(mx, *base, fixed, &exponent);
		}
	}
	*base = exponent;
}

static fqt_status backward_weighted(fqt_trainer *t, uint32_t li, const fqt_layer *l, int8_t *e,
				    int32_t ex, int32_t frac, int need_in)
{
	const fqt_model *m = t->model;
	fqt_tensor in;
	fqt_tensor out;
	fqt_tensor w;
	fqt_decode_tensor(m, (uint32_t)l->input[0], &in);
	fqt_decode_tensor(m, (uint32_t)l->output, &out);
	fqt_decode_tensor(m, (uint32_t)l->input[1], &w);
	const int slot = t->slot_of_layer[li];
	const int trainable = slot >= 0;
	const int passes = trainable + need_in;
	if (passes == 0) {
		return FQT_OK;
	}
	const int32_t n_ch = last_dim(&out);
	const int32_t positions = (int32_t)(out.element_count / (uint32_t)n_ch);
	uint8_t *sel = buf_ptr(t, t->sel_buf[li]);
	int32_t *score = (int32_t *)(void *)sel;
	uint16_t *kept = (uint16_t *)(void *)(sel + 4u * (size_t)n_ch);
	int32_t n_kept = n_ch;
	if (t->opt.lambda_q15 < FQT_Q15_ONE) {
		n_kept = fqt_partial_select(e, positions, n_ch, fqt_partial_keep_count(frac, n_ch),
					    score, kept);
	} else {
		for (int32_t c = 0; c < n_ch; ++c) {
			kept[c] = (uint16_t)c;
		}
	}
	const uint64_t per_ch = fqt_model_layer_macs(m, li) / (uint64_t)n_ch;
	t->counters.backward_macs += (uint64_t)passes * per_ch * (uint64_t)n_kept;
	t->counters.backward_macs_full += (uint64_t)passes * per_ch * (uint64_t)n_ch;
	const int8_t *x = act(t, l->input[0]);
	const fqt_conv_params cp = conv_params(l, &in, &out);
	const fqt_dims id = dims_of(&in), wd = dims_of(&w), od = dims_of(&out);
	fqt_status st = FQT_OK;
	if (trainable) {
		fqt_train_layer *L = &t->layers[slot];
		const fqt_grad_sink s = grad_sink(L, ex);
		grad_skipped(L, &s, kept, n_kept);
		if (l->op == FQT_OP_CONV_2D) {
			st = fqt_conv2d_backward_weights(&cp, &id, x, &wd, &od, e, kept, n_kept, &s);
		} else if (l->op == FQT_OP_DEPTHWISE_CONV_2D) {
			st = fqt_depthwise_conv2d_backward_weights(&cp, &id, x, &wd, &od, e, kept,
								   n_kept, &s);
		} else {
			st = fqt_fully_connected_backward_weights(e, x, cp.input_offset,
								  (int32_t)in.element_count, kept,
								  n_kept, &s);
		}
		if (st != FQT_OK) {
			return st;
		}
	}
	if (need_in) {
		weights_view v;
		weights_of(t, l, li, &v);
		int32_t *acc = (int32_t *)(void *)buf_ptr(t, t->acc_buf[li]);
		int32_t p = 0;
		const in_err_job job = {
			.op = l->op,
			.cp = &cp,
			.id = id,
			.wd = wd,
			.od = od,
			.w = v.w,
			.scales = v.scales,
			.scale_count = v.scale_count,
			.p = fqt_fold_exponent(v.scales, v.scale_count),
			.e = e,
			.n_ch = n_ch,
			.kept = kept,
			.n_kept = n_kept,
			.in_count = (int32_t)in.element_count,
		};
		if (in_err_bound(&job) > (uint64_t)INT32_MAX) {
			int32_t base = ex - FQT_ERROR_FOLD_BITS + job.p;
			in_err_exact(&job, acc, &base, t->opt.fixed_error_scaling);
			deliver_acc(t, fqt_model_buffer_of_tensor(m, (uint32_t)l->input[0]), acc,
				    base, in.element_count);
			return FQT_OK;
		}
		if (l->op == FQT_OP_CONV_2D) {
			st = fqt_conv2d_backward_input(&cp, &id, &wd, v.w, v.scales, v.scale_count, &od,
						       e, kept, n_kept, acc, &p);
		} else if (l->op == FQT_OP_DEPTHWISE_CONV_2D) {
			st = fqt_depthwise_conv2d_backward_input(&cp, &id, &wd, v.w, v.scales,
								 v.scale_count, &od, e, kept,
								 n_kept, acc, &p);
		} else {
			st = fqt_fully_connected_backward_input(e, n_ch, (int32_t)in.element_count,
								v.w, v.scales, v.scale_count, kept,
								n_kept, acc, &p);
		}
		if (st != FQT_OK) {
			return st;
		}
		deliver_acc(t, fqt_model_buffer_of_tensor(m, (uint32_t)l->input[0]), acc,
			    ex - FQT_ERROR_FOLD_BITS + p, in.element_count);
	}
	return FQT_OK;
}

static fqt_status backward_layer(fqt_trainer *t, uint32_t li, int32_t frac)
{
	const fqt_model *m = t->model;
	fqt_layer l;
	fqt_decode_layer(m, li, &l);
	const int32_t bo = (int32_t)li + 1;
	if (!t->has_err[bo]) {
		return FQT_OK;
	}
	fqt_tensor in;
	fqt_tensor out;
	fqt_decode_tensor(m, (uint32_t)l.input[0], &in);
	fqt_decode_tensor(m, (uint32_t)l.output, &out);
	int8_t *e = (int8_t *)buf_ptr(t, t->err_buf[bo]);
	const int32_t ex = t->err_exp[bo];
	fqt_activation_backward(e, act(t, l.output), out.element_count, l.activation, l.act_min,
				l.act_max);
	if (t->opt.clip_mask && l.activation == 1) {
		/* Section 5.1: RELU outputs clamped at act_max have zero derivative. */
		const int8_t *y = act(t, l.output);
		for (uint32_t i = 0; i < out.element_count; ++i) {
			e[i] = y[i] < l.act_max ? e[i] : 0;
		}
	}
	const int need_in = needs_error(t, l.input[0]);
	if (is_weighted(l.op)) {
		return backward_weighted(t, li, &l, e, ex, frac, need_in);
	}
	if (l.op == FQT_OP_ADD) {
		/* Section 5.7: each input that needs an error gets (e, E), independently of the
		 * other (the first input may be the model input or produced before first_bw). */
		if (need_in) {
			deliver_s8(t, fqt_model_buffer_of_tensor(m, (uint32_t)l.input[0]), e, ex,
				   in.element_count);
		}
		if (needs_error(t, l.input[1])) {
			deliver_s8(t, fqt_model_buffer_of_tensor(m, (uint32_t)l.input[1]), e, ex,
				   in.element_count);
		}
		return FQT_OK;
	}
	if (!need_in) {
		return FQT_OK;
	}
	const int32_t bi = fqt_model_buffer_of_tensor(m, (uint32_t)l.input[0]);
	const fqt_dims id = dims_of(&in), od = dims_of(&out);
	switch (l.op) {
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D: {
		const fqt_pool_params p = pool_params(&l);
		int32_t *acc = (int32_t *)(void *)buf_ptr(t, t->acc_buf[li]);
		fqt_status st;
		if (l.op == FQT_OP_AVERAGE_POOL_2D) {
			st = fqt_average_pool2d_backward(&p, &id, &od, e, acc);
		} else {
			st = fqt_max_pool2d_backward(&p, &id, act(t, l.input[0]), &od, e, acc);
		}
		if (st != FQT_OK) {
			return st;
		}
		deliver_acc(t, bi, acc, l.op == FQT_OP_AVERAGE_POOL_2D ? ex - 16 : ex,
			    in.element_count);
		return FQT_OK;
	}
	case FQT_OP_RESHAPE:
		deliver_s8(t, bi, e, ex, in.element_count);
		return FQT_OK;
	default:
		return FQT_ERR_UNSUPPORTED;
	}
}

/* ---- update (section 7) ------------------------------------------------------------------ */
static int64_t mul_fixed(int64_t x, double d)
{
	int32_t mlt;
	int sh;
	fqt_quantize_multiplier(d < 1073741824.0 ? d : 1073741824.0, &mlt, &sh);
	return fqt_rdbpot64(x * (int64_t)mlt, 31 - sh);
}

static size_t weight_index(const fqt_train_layer *L, int dw, int32_t c, int32_t k)
{
	return dw ? (size_t)k * (size_t)L->n_out + (size_t)c
		  : (size_t)c * (size_t)L->row + (size_t)k;
}

static int channel_zero(const fqt_train_layer *L, int32_t c)
{
	const int32_t *a = L->acc_w + (size_t)c * (size_t)L->row;
	for (int32_t k = 0; k < L->row; ++k) {
		if (a[k] != 0) {
			return 0;
		}
	}
	return L->acc_b[c] == 0;
}

typedef struct channel_rule {
	int updated;
	int64_t b_fx;
	int32_t wm;
	int wsh;
	int64_t v;
} channel_rule;

static int64_t round_clamp_fx(double x)
{
	const double lim = 1099511627776.0; /* 2^40 */
	double r = round(x);
	r = r > lim ? lim : (r < -lim ? -lim : r);
	return (int64_t)r;
}

static void rule_of(const fqt_trainer *t, const fqt_train_layer *L, int32_t c, double s_in,
		    channel_rule *r)
{
	const int64_t bias = L->has_bias ? L->bias[c] : 0;
	r->v = bias * ((int64_t)1 << FQT_FRAC_BITS);
	r->updated = 0;
	if (channel_zero(L, c) || !(L->sd[c] > 0.0f)) {
		return;
	}
	const double unit = ldexp(s_in, L->grad_exp);
	const double unit_b = ldexp(1.0, L->grad_exp);
	const double sd = (double)L->sd[c];
	const double s_w = (double)(L->per_channel ? L->scale[c] : L->scale[0]);
	const double lr_sd = t->opt.lr / sd;
	const double mu = t->opt.center ? (double)L->mu[c] : 0.0;
	r->b_fx = round_clamp_fx(lr_sd * mu / s_w * 65536.0);
	const double d = lr_sd * unit / s_w * 65536.0;
	fqt_quantize_multiplier(d < 1073741824.0 ? d : 1073741824.0, &r->wm, &r->wsh);
	if (L->has_bias) {
		const double d_b = lr_sd * unit_b / (s_in * s_w) * 65536.0;
		r->v -= mul_fixed(L->acc_b[c], d_b);
	}
	r->updated = 1;
}

static int64_t new_u(const fqt_train_layer *L, int dw, int32_t c, int32_t k, const channel_rule *r)
{
	const int64_t w = L->w[weight_index(L, dw, c, k)];
	int64_t u = w * ((int64_t)1 << FQT_FRAC_BITS);
	if (!r->updated) {
		return u;
	}
	const int64_t a = L->acc_w[(size_t)c * (size_t)L->row + (size_t)k];
	u = u - fqt_rdbpot64(a * (int64_t)r->wm, 31 - r->wsh) + r->b_fx;
	return u > FQT_U_LIMIT ? FQT_U_LIMIT : (u < -FQT_U_LIMIT ? -FQT_U_LIMIT : u);
}

static int64_t round_div(int64_t num, int64_t m)
{
	const int64_t q = ((num < 0 ? -num : num) + m / 2) / m;
	return num < 0 ? -q : q;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0))) {
		--q;
	}
	return q;
}

static void requant_channel(fqt_trainer *t, fqt_train_layer *L, int dw, int32_t c,
			    const channel_rule *r, int64_t m)
{
	for (int32_t k = 0; k < L->row; ++k) {
		const int64_t num = new_u(L, dw, c, k, r) * 127;
		int64_t q;
		if (t->opt.stochastic_rounding) {
			q = floor_div(num, m);
			const int64_t f = ((num - q * m) << 16) / m;
			const int64_t draw = (int64_t)(fqt_prng_next(&t->rng) >> 16);
			q += draw < f ? 1 : 0;
		} else {
			q = round_div(num, m);
		}
		L->w[weight_index(L, dw, c, k)] = (int8_t)q;
	}
	if (L->has_bias) {
		L->bias[c] = (int32_t)fqt_sat32_64(round_div(r->v * 127, m));
	}
}

static void update_layer(fqt_trainer *t, fqt_train_layer *L)
{
	const fqt_model *m = t->model;
	fqt_layer l;
	fqt_tensor x;
	fqt_decode_layer(m, L->layer, &l);
	fqt_decode_tensor(m, (uint32_t)l.input[0], &x);
	const int dw = l.op == FQT_OP_DEPTHWISE_CONV_2D;
	const float s_in_f = fqt_read_f32(x.scales, 0);
	const double s_in = (double)s_in_f;
	const double unit = ldexp(s_in, L->grad_exp);
	const double a = t->opt.alpha_norm;
	/* moments and EMA */
	for (int32_t c = 0; c < L->n_out; ++c) {
		if (channel_zero(L, c)) {
			continue;
		}
		const int32_t *row = L->acc_w + (size_t)c * (size_t)L->row;
		uint64_t mx = 0;
		for (int32_t k = 0; k < L->row; ++k) {
			const int64_t v = row[k];
			const uint64_t av = (uint64_t)(v < 0 ? -v : v);
			mx = av > mx ? av : mx;
		}
		const int bl = fqt_bit_length64(mx);
		const int s = bl - FQT_STAT_BITS > 0 ? bl - FQT_STAT_BITS : 0;
		int64_t s1 = 0;
		int64_t s2 = 0;
		for (int32_t k = 0; k < L->row; ++k) {
			const int64_t v = fqt_rdbpot64(row[k], s);
			s1 += v;
			s2 += v * v;
		}
		const double n = (double)L->row;
		const double mm = (double)s1 / n;
		const double var = (double)s2 / n - mm * mm;
		const double mean = ldexp(mm, s);
		const double stdv = ldexp(sqrt(var > 0.0 ? var : 0.0), s);
		const double mean_r = mean * unit;
		const double std_r = stdv * unit;
		if (L->sd[c] < 0.0f) {
			L->mu[c] = (float)mean_r;
			L->sd[c] = (float)std_r;
		} else {
			L->mu[c] = (float)(a * (double)L->mu[c] + (1.0 - a) * mean_r);
			L->sd[c] = (float)(a * (double)L->sd[c] + (1.0 - a) * std_r);
		}
	}
	/* new weights, requantized */
	channel_rule r;
	if (L->per_channel) {
		for (int32_t c = 0; c < L->n_out; ++c) {
			rule_of(t, L, c, s_in, &r);
			if (!r.updated) {
				continue;
			}
			int64_t mx = 0;
			for (int32_t k = 0; k < L->row; ++k) {
				const int64_t u = new_u(L, dw, c, k, &r);
				mx = (u < 0 ? -u : u) > mx ? (u < 0 ? -u : u) : mx;
			}
			if (mx == 0) {
				for (int32_t k = 0; k < L->row; ++k) {
					L->w[weight_index(L, dw, c, k)] = 0;
				}
				continue;
			}
			const float ns = (float)((double)mx * (double)L->scale[c] / (65536.0 * 127.0));
			requant_channel(t, L, dw, c, &r, mx);
			L->scale[c] = ns;
		}
	} else {
		int any = 0;
		int64_t mx = 0;
		for (int32_t c = 0; c < L->n_out; ++c) {
			rule_of(t, L, c, s_in, &r);
			any |= r.updated;
			for (int32_t k = 0; k < L->row; ++k) {
				const int64_t u = new_u(L, dw, c, k, &r);
				mx = (u < 0 ? -u : u) > mx ? (u < 0 ? -u : u) : mx;
			}
		}
		if (any) {
			if (mx == 0) {
				memset(L->w, 0, L->n_weights);
			} else {
				const float ns =
					(float)((double)mx * (double)L->scale[0] / (65536.0 * 127.0));
				for (int32_t c = 0; c < L->n_out; ++c) {
					rule_of(t, L, c, s_in, &r);
					requant_channel(t, L, dw, c, &r, mx);
				}
				L->scale[0] = ns;
			}
		}
	}
	layer_multipliers(m, &l, L->scale, L->per_channel, L->mult, L->shift);
	memset(L->acc_w, 0, 4u * (size_t)L->n_weights);
	memset(L->acc_b, 0, 4u * (size_t)L->n_out);
	L->grad_exp = 0;
	L->count = 0;
}

static void write_f32(uint8_t *p, float f)
{
	memcpy(p, &f, sizeof(f));
}

fqt_status fqt_trainer_sync_blob(fqt_trainer *t)
{
	if (t == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	if (t->blob == NULL) {
		return FQT_OK;
	}
	const fqt_model *m = t->model;
	uint8_t *blob = t->blob;
#define AT(ptr) (blob + ((const uint8_t *)(ptr) - m->blob))
	for (uint32_t i = 0; i < t->n_train; ++i) {
		const fqt_train_layer *L = &t->layers[i];
		fqt_layer l;
		fqt_tensor x;
		fqt_tensor w;
		fqt_decode_layer(m, L->layer, &l);
		fqt_decode_tensor(m, (uint32_t)l.input[0], &x);
		fqt_decode_tensor(m, (uint32_t)l.input[1], &w);
		memcpy(AT(w.data), L->w, L->n_weights);
		for (uint32_t c = 0; c < w.quant_count; ++c) {
			write_f32(AT(w.scales) + 4u * c, L->scale[c]);
		}
		if (L->has_bias) {
			fqt_tensor b;
			fqt_decode_tensor(m, (uint32_t)l.input[2], &b);
			memcpy(AT(b.data), L->bias, 4u * (size_t)L->n_out);
			const float s_in = fqt_read_f32(x.scales, 0);
			const uint32_t nq = w.quant_count;
			for (uint32_t c = 0; c < b.quant_count; ++c) {
				write_f32(AT(b.scales) + 4u * c, s_in * L->scale[c % nq]);
			}
		}
		memcpy(AT(l.multiplier), L->mult, 4u * l.channel_count);
		memcpy(AT(l.shift), L->shift, 4u * l.channel_count);
	}
#undef AT
	const uint32_t crc = fqt_crc32(0, blob + 16, m->blob_size - 16u);
	blob[12] = (uint8_t)crc;
	blob[13] = (uint8_t)(crc >> 8);
	blob[14] = (uint8_t)(crc >> 16);
	blob[15] = (uint8_t)(crc >> 24);
	if (t->blob_model != NULL) {
		t->blob_model->crc32 = crc;
	}
	return FQT_OK;
}

static fqt_status update(fqt_trainer *t)
{
	int any = 0;
	for (uint32_t i = 0; i < t->n_train; ++i) {
		any |= t->layers[i].count != 0u;
	}
	if (!any) {
		return FQT_OK;
	}
	for (uint32_t i = 0; i < t->n_train; ++i) {
		if (t->layers[i].count != 0u) {
			update_layer(t, &t->layers[i]);
		}
	}
	t->counters.updates++;
	return fqt_trainer_sync_blob(t);
}

static uint32_t pending(const fqt_trainer *t)
{
	return t->layers[0].count;
}

fqt_status fqt_trainer_flush(fqt_trainer *t)
{
	if (t == NULL || t->model == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	return update(t);
}

fqt_status fqt_trainer_step(fqt_trainer *t, const int8_t *input, uint32_t label,
			    uint32_t *loss_micro, uint32_t *predicted)
{
	if (t == NULL || t->model == NULL || input == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	const fqt_model *m = t->model;
	const uint32_t n = m->layer_count;
	fqt_tensor tin;
	fqt_decode_tensor(m, m->input_tensor, &tin);
	memcpy(act(t, (int32_t)m->input_tensor), input, tin.byte_size);
	for (uint32_t li = 0; li < n; ++li) {
		const fqt_status st = forward_layer(t, li);
		if (st != FQT_OK) {
			return st;
		}
	}
	t->counters.forward_macs += t->fwd_macs_per_sample;
	/* loss */
	fqt_tensor out;
	fqt_decode_tensor(m, m->output_tensor, &out);
	const int32_t depth = (int32_t)out.element_count;
	if (label >= (uint32_t)depth) {
		return FQT_ERR_ARGUMENT;
	}
	memset(t->has_err, 0, sizeof(t->has_err));
	const int8_t *p;
	int32_t target;
	if (t->softmax_at_end) {
		fqt_layer last;
		fqt_decode_layer(m, n - 1u, &last);
		p = act(t, (int32_t)m->output_tensor);
		target = fqt_model_buffer_of_tensor(m, (uint32_t)last.input[0]);
	} else {
		target = fqt_model_buffer_of_tensor(m, m->output_tensor);
		int8_t *probs = (int8_t *)buf_ptr(t, t->err_buf[target]);
		const fqt_softmax_params sp = {t->sm_mult, t->sm_shift, t->sm_diff_min};
		const fqt_status st =
			fqt_softmax_forward(&sp, 1, depth, act(t, (int32_t)m->output_tensor), probs);
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
	int8_t *e0 = (int8_t *)buf_ptr(t, t->err_buf[target]);
	fqt_loss_backward(p, depth, label, t->opt.fixed_error_scaling, e0, &t->err_exp[target],
			  &mag);
	t->has_err[target] = 1;
	const int32_t frac = fqt_partial_fraction(mag, &t->l_max, t->opt.lambda_q15);
	for (int32_t li = (int32_t)n - 1; li >= (int32_t)t->first_bw; --li) {
		if (t->softmax_at_end && (uint32_t)li == n - 1u) {
			continue;
		}
		const fqt_status st = backward_layer(t, (uint32_t)li, frac);
		if (st != FQT_OK) {
			return st;
		}
	}
	t->counters.samples++;
	if (pending(t) >= t->opt.batch) {
		return update(t);
	}
	return FQT_OK;
}
