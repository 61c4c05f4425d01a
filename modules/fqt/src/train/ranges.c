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

#define FQT_RANGE_ALPHA 0.1
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

void fqt_train_softmax_params(double s_in, fqt_softmax_params *p)
{
	double real = 1.0 * s_in * (double)(1u << (31 - FQT_SOFTMAX_DIFF_BITS));
	real = real < 2147483647.0 ? real : 2147483647.0;
	int sh;
	fqt_quantize_multiplier(real, &p->input_multiplier, &sh);
	p->input_left_shift = sh;
	const double radius = 1.0 * (double)((1 << FQT_SOFTMAX_DIFF_BITS) - 1) *
			      (double)(1u << (31 - FQT_SOFTMAX_DIFF_BITS)) / ldexp(1.0, sh);
	p->diff_min = -(int32_t)floor(radius);
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
	fqt_train_softmax_params((double)v->input_scale, &p);
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
		g->lo = (float)((double)(-128 - g->zero_point) * (double)g->scale);
		g->hi = (float)((double)(127 - g->zero_point) * (double)g->scale);
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
	const double s = (double)g->scale;
	const double hi = (double)(qmax - g->zero_point) * s * (qmax == 127 ? 2.0 : 1.0);
	const double lo = (double)(qmin - g->zero_point) * s *
			  (qmin == -128 && t->views[li].act_min == -128 ? 2.0 : 1.0);
	const double a = FQT_RANGE_ALPHA;
	g->lo = (float)((1.0 - a) * (double)g->lo + a * lo);
	g->hi = (float)((1.0 - a) * (double)g->hi + a * hi);
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

/* A consumer's input now has scale s, zero point zp: offsets, bias, bias scale. */
static void set_input(fqt_trainer *t, uint32_t li, float s, int32_t zp)
{
	fqt_layer_view *v = &t->views[li];
	const double ratio = (double)v->input_scale / (double)s;
	v->input_scale = s;
	if (v->op == FQT_OP_FULLY_CONNECTED) {
		v->params.fully_connected.input_offset = -zp;
	} else {
		v->params.conv.input_offset = -zp;
	}
	fqt_train_layer *L = &t->layers[t->slot_of_layer[li]];
	if (L->has_bias) {
		for (int32_t c = 0; c < L->n_out; ++c) {
			const double b = round((double)L->bias[c] * ratio);
			L->bias[c] = b >= 2147483647.0 ? INT32_MAX
				     : b <= -2147483648.0 ? INT32_MIN
							  : (int32_t)b;
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
		const double lo = (double)g->lo < 0.0 ? (double)g->lo : 0.0;
		const double hi = (double)g->hi > 0.0 ? (double)g->hi : 0.0;
		if (!(hi - lo > 0.0)) {
			continue;
		}
		const float s = (float)((hi - lo) / 255.0);
		if (!(s >= FQT_RANGE_MIN_SCALE)) { /* collapsed; SOFTMAX needs s 2^26 > 1 */
			continue;
		}
		double z = round(-128.0 - lo / (double)s);
		z = z < -128.0 ? -128.0 : z > 127.0 ? 127.0 : z;
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
				fqt_train_softmax_params((double)s, &v->params.softmax);
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
				fqt_train_softmax_params((double)s, &p);
				t->sm_mult = p.input_multiplier;
				t->sm_shift = p.input_left_shift;
				t->sm_diff_min = p.diff_min;
			}
		}
		write_back(t, g);
	}
}
