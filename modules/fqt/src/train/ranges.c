/*
 * Learned activation ranges (docs/training-semantics.md section 7.3), the twin of
 * scripts/fqt/golden/ranges.py: per trainable weighted layer whose output group (the output
 * and the pool / RESHAPE outputs sharing its quantization) is read only by trainable
 * weighted layers, the final SOFTMAX (beta 1) or the loss, an EMA of each sample's int8
 * min/max; at every update the group's scale and zero point are re-derived, the consumers'
 * biases re-expressed in the new input scale and every dependent layer's parameters
 * recomputed as prepare.py does; the blob records follow (export).
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels_internal.h"
#include "kernels/quant.h"
#include "runtime/byte_order.h"
#include "runtime/model_decode.h"
#include "train_internal.h"

#define FQT_RANGE_ALPHA 0.1f
#define FQT_SOFTMAX_DIFF_BITS 5
#define FQT_RANGE_MIN_SCALE 9.5367431640625e-07f /* 2^-20 */

void fqt_train_layer_multipliers(const fqt_layer_view *v, const float *scale, int per_channel,
				 int32_t *mult, int32_t *shift)
{
	/* QuantizeMultiplier((double)s_in * (double)s_w / (double)s_out) as prepare.py and TFLM,
	 * in integers (the update runs no double arithmetic) */
	const uint32_t n = v->op == FQT_OP_FULLY_CONNECTED && !per_channel ? 1u : v->requant.count;
	for (uint32_t c = 0; c < n; ++c) {
		int sh;
		fqt_quantize_multiplier_ratio(v->input_scale, per_channel ? scale[c] : scale[0],
					      v->output_scale, &mult[c], &sh);
		shift[c] = sh;
	}
}

/* TFLM PreprocessSoftmaxScaling(1, s_in, 5) and CalculateInputRadius, in integers: below 32,
 * s_in * 2^26 is an exact float, so its QuantizeMultiplier comes from the float's bits; from
 * 32 on the double is clamped to 2^31 - 1, whose (M, shift) is (2^31 - 1, 31).
 * radius = floor((2^5 - 1) 2^26 / 2^shift). */
void fqt_train_softmax_params(float s_in, fqt_softmax_params *p)
{
	int sh = 31;
	if (s_in < 32.0f) {
		fqt_quantize_multiplier_f32(ldexpf(s_in, 31 - FQT_SOFTMAX_DIFF_BITS),
					    &p->input_multiplier, &sh);
	} else {
		p->input_multiplier = INT32_MAX;
	}
	p->input_left_shift = sh;
	const int64_t r = (int64_t)((1 << FQT_SOFTMAX_DIFF_BITS) - 1) << (31 - FQT_SOFTMAX_DIFF_BITS);
	const int64_t radius = sh >= 0 ? (sh < 63 ? r >> sh : 0)
				       : (-sh < 32 ? r << -sh : (int64_t)INT32_MAX);
	p->diff_min = -(int32_t)(radius < INT32_MAX ? radius : INT32_MAX);
}

static int is_chain(uint8_t op)
{
	return op == FQT_OP_MAX_POOL_2D || op == FQT_OP_AVERAGE_POOL_2D || op == FQT_OP_RESHAPE;
}

static int is_weighted(uint8_t op)
{
	return op == FQT_OP_CONV_2D || op == FQT_OP_DEPTHWISE_CONV_2D ||
	       op == FQT_OP_FULLY_CONNECTED;
}

static int softmax_beta_one(const fqt_layer_view *v)
{
	fqt_softmax_params p;
	fqt_train_softmax_params(v->input_scale, &p);
	return p.input_multiplier == v->params.softmax.input_multiplier &&
	       p.input_left_shift == v->params.softmax.input_left_shift;
}

/* Consumers of tensor `ten` into g; 0 if one of them rules the group out. */
static int add_consumers(const fqt_trainer *t, fqt_range_group *g, int32_t ten)
{
	const fqt_model *m = t->model;
	const uint32_t last = m->layer_count - 1u;
	if ((uint32_t)ten == m->output_tensor && t->opt.loss == FQT_LOSS_MSE) {
		return 0;
	}
	for (uint32_t li = 0; li < m->layer_count; ++li) {
		const fqt_layer_view *c = &t->views[li];
		const int second = c->op == FQT_OP_ADD && c->input_tensor[1] == ten;
		if (c->input_tensor[0] != ten && !second) {
			continue;
		}
		if (g->n_layers >= FQT_RANGE_MAX_LAYERS || second) {
			return 0;
		}
		if (is_chain(c->op)) {
			if (g->n_tensors >= FQT_RANGE_MAX_LAYERS) {
				return 0;
			}
			g->tensors[g->n_tensors++] = c->output_tensor;
		} else if (is_weighted(c->op) && t->slot_of_layer[li] >= 0) {
		} else if (!(c->op == FQT_OP_SOFTMAX && li == last &&
			     (uint32_t)c->output_tensor == m->output_tensor && softmax_beta_one(c))) {
			return 0;
		}
		g->layers[g->n_layers++] = (uint16_t)li;
	}
	return 1;
}

static void sort_u16(uint16_t *a, uint32_t n)
{
	for (uint32_t i = 1; i < n; ++i) {
		for (uint32_t j = i; j > 0u && a[j - 1u] > a[j]; --j) {
			const uint16_t x = a[j];
			a[j] = a[j - 1u];
			a[j - 1u] = x;
		}
	}
}

void fqt_train_ranges_init(fqt_trainer *t)
{
	memset(t->range_of_layer, -1, sizeof(t->range_of_layer));
	t->n_ranges = 0;
	if (!t->opt.learn_ranges) {
		return;
	}
	for (uint32_t i = 0; i < t->n_train; ++i) {
		const uint32_t root = t->layers[i].layer;
		fqt_range_group *g = &t->ranges[t->n_ranges];
		memset(g, 0, sizeof(*g));
		g->root = (uint16_t)root;
		g->tensors[g->n_tensors++] = t->views[root].output_tensor;
		g->layers[g->n_layers++] = (uint16_t)root;
		int ok = 1;
		for (uint32_t k = 0; ok && k < g->n_tensors; ++k) {
			ok = add_consumers(t, g, g->tensors[k]);
		}
		if (!ok) {
			continue;
		}
		sort_u16(g->layers, g->n_layers);
		for (uint32_t k = 0; k < g->n_tensors; ++k) { /* blob offsets for the write-back */
			fqt_tensor ten;
			fqt_decode_tensor(t->model, (uint32_t)g->tensors[k], &ten);
			g->scale_at[k] = (uint32_t)((const uint8_t *)ten.scales - t->model->blob);
			g->zero_point_at[k] =
				(uint32_t)((const uint8_t *)ten.zero_points - t->model->blob);
		}
		fqt_tensor out;
		fqt_decode_tensor(t->model, (uint32_t)g->tensors[0], &out);
		g->scale = fqt_read_f32(out.scales, 0);
		g->zero_point = out.zero_points[0];
		/* float32(int * float): the one rounding of the exact product, as in double */
		g->lo = (float)(-128 - g->zero_point) * g->scale;
		g->hi = (float)(127 - g->zero_point) * g->scale;
		t->range_of_layer[root] = (int8_t)t->n_ranges;
		t->n_ranges++;
	}
}

void fqt_train_range_observe(fqt_trainer *t, uint32_t li, const int8_t *y, uint32_t n)
{
	fqt_range_group *g = &t->ranges[t->range_of_layer[li]];
	int32_t qmin = 127, qmax = -128;
	for (uint32_t i = 0; i < n; ++i) {
		qmin = y[i] < qmin ? y[i] : qmin;
		qmax = y[i] > qmax ? y[i] : qmax;
	}
	/* float32, op by op (section 7.3) */
	const float s = g->scale;
	const float hi = (float)(qmax - g->zero_point) * s * (qmax == 127 ? 2.0f : 1.0f);
	const float lo = (float)(qmin - g->zero_point) * s *
			 (qmin == -128 && t->views[li].act_min == -128 ? 2.0f : 1.0f);
	const float a = FQT_RANGE_ALPHA;
	g->lo = (1.0f - a) * g->lo + a * lo;
	g->hi = (1.0f - a) * g->hi + a * hi;
}

/* CalculateActivationRangeQuantized (prepare.py activation_range). */
static void activation_range(const fqt_layer_view *v, float s, int32_t zp, int32_t *lo,
			     int32_t *hi)
{
	*lo = -128;
	*hi = 127;
	if (v->activation == FQT_ACTIVATION_RELU || v->activation == FQT_ACTIVATION_RELU6) {
		const int32_t z = zp + (int32_t)roundf(0.0f / s);
		*lo = z > -128 ? z : -128;
	}
	if (v->activation == FQT_ACTIVATION_RELU6) {
		const int32_t six = zp + (int32_t)roundf(6.0f / s);
		*hi = six < 127 ? six : 127;
	}
}

static void set_act(fqt_layer_view *v, float s, int32_t zp)
{
	activation_range(v, s, zp, &v->act_min, &v->act_max);
	if (v->op == FQT_OP_CONV_2D || v->op == FQT_OP_DEPTHWISE_CONV_2D) {
		v->params.conv.output_offset = zp;
		v->params.conv.act_min = v->act_min;
		v->params.conv.act_max = v->act_max;
	} else if (v->op == FQT_OP_FULLY_CONNECTED) {
		v->params.fully_connected.output_offset = zp;
		v->params.fully_connected.act_min = v->act_min;
		v->params.fully_connected.act_max = v->act_max;
	} else if (is_chain(v->op) && v->op != FQT_OP_RESHAPE) {
		v->params.pool.act_min = v->act_min;
		v->params.pool.act_max = v->act_max;
	}
}

/* sat32(RDBPOT64(b * M, 31 - shift)); a left shift (ratio >= 2^31) saturates any b != 0 */
static int32_t rescale_bias(int32_t b, int32_t mlt, int sh)
{
	const int64_t x = (int64_t)b * (int64_t)mlt;
	const int e = 31 - sh;
	if (e < 0) {
		return x == 0 ? 0 : (x > 0 ? INT32_MAX : INT32_MIN);
	}
	return (int32_t)fqt_sat32_64(e > 62 ? 0 : fqt_rdbpot64(x, e));
}

/* A consumer's input now has scale s, zero point zp: offsets, bias, bias scale. */
static void set_input(fqt_trainer *t, uint32_t li, float s, int32_t zp)
{
	fqt_layer_view *v = &t->views[li];
	/* b * s_old / s' as a multiplier: QuantizeMultiplier((double)s_old / (double)s'),
	 * exactly, then b * M * 2^(shift - 31) rounded (section 7.3) */
	int32_t mlt;
	int sh;
	fqt_quantize_multiplier_ratio(v->input_scale, 1.0f, s, &mlt, &sh);
	v->input_scale = s;
	if (v->op == FQT_OP_FULLY_CONNECTED) {
		v->params.fully_connected.input_offset = -zp;
	} else {
		v->params.conv.input_offset = -zp;
	}
	fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
	if (L->has_bias) {
		for (int32_t c = 0; c < L->n_out; ++c) {
			L->bias[c] = rescale_bias(L->bias[c], mlt, sh);
		}
	}
}

static void write_back(fqt_trainer *t, const fqt_range_group *g)
{
	if (t->blob == NULL) {
		return;
	}
	const fqt_model *m = t->model;
	uint8_t *blob = t->blob;
	for (uint32_t k = 0; k < g->n_tensors; ++k) {
		memcpy(blob + g->scale_at[k], &g->scale, 4u);
		fqt_write_u32(blob + g->zero_point_at[k], (uint32_t)g->zero_point);
	}
	for (uint32_t k = 0; k < g->n_layers; ++k) {
		const uint32_t li = g->layers[k];
		const fqt_layer_view *v = &t->views[li];
		uint8_t *r = blob + (m->layer_table - m->blob) + li * FQT_BLOB_LAYER_RECORD_SIZE;
		fqt_write_u32(r + FQT_LREC_ACT_MIN, (uint32_t)v->act_min);
		fqt_write_u32(r + FQT_LREC_ACT_MAX, (uint32_t)v->act_max);
		if (v->op == FQT_OP_SOFTMAX) {
			fqt_write_u32(r + FQT_LREC_EXTRAS, (uint32_t)v->params.softmax.input_multiplier);
			fqt_write_u32(r + FQT_LREC_EXTRAS + 4,
				      (uint32_t)v->params.softmax.input_left_shift);
			fqt_write_u32(r + FQT_LREC_EXTRAS + 8, (uint32_t)v->params.softmax.diff_min);
		}
	}
}

void fqt_train_ranges_update(fqt_trainer *t)
{
	for (uint32_t gi = 0; gi < t->n_ranges; ++gi) {
		fqt_range_group *g = &t->ranges[gi];
		const float lo = g->lo < 0.0f ? g->lo : 0.0f;
		const float hi = g->hi > 0.0f ? g->hi : 0.0f;
		if (!(hi - lo > 0.0f)) {
			continue;
		}
		const float s = (hi - lo) / 255.0f;
		if (!(s >= FQT_RANGE_MIN_SCALE)) { /* collapsed; SOFTMAX needs s 2^26 > 1 */
			continue;
		}
		float z = roundf(-128.0f - lo / s);
		z = z < -128.0f ? -128.0f : z > 127.0f ? 127.0f : z;
		const int32_t zp = (int32_t)z;
		if (s == g->scale && zp == g->zero_point) {
			continue;
		}
		g->scale = s;
		g->zero_point = zp;
		for (uint32_t k = 0; k < g->n_layers; ++k) {
			const uint32_t li = g->layers[k];
			fqt_layer_view *v = &t->views[li];
			if (li == g->root) {
				v->output_scale = s;
				set_act(v, s, zp);
			} else if (is_chain(v->op)) {
				v->input_scale = s;
				v->output_scale = s;
				set_act(v, s, zp);
			} else if (v->op == FQT_OP_SOFTMAX) {
				v->input_scale = s;
				fqt_train_softmax_params(s, &v->params.softmax);
			} else {
				set_input(t, li, s, zp);
			}
			if (is_weighted(v->op)) {
				fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
				fqt_train_layer_multipliers(v, L->scale, L->per_channel, L->mult,
							    L->shift);
			}
		}
		int has_output = 0;
		for (uint32_t k = 0; k < g->n_tensors; ++k) {
			has_output |= (uint32_t)g->tensors[k] == t->model->output_tensor;
		}
		if (has_output) {
			if (!t->softmax_at_end) {
				fqt_softmax_params p;
				fqt_train_softmax_params(s, &p);
				t->sm_mult = p.input_multiplier;
				t->sm_shift = p.input_left_shift;
				t->sm_diff_min = p.diff_min;
			}
		}
		write_back(t, g);
	}
}
