/*
 * The update at the end of a mini-batch (docs/training-semantics.md section 7; the twin of
 * scripts/fqt/golden/update.py): per-channel gradient moments and their EMA, the
 * standardized step (or plain SGD on the batch-mean gradient) in 16-bit fixed point, the
 * requantization to int8 with a new scale (stochastic or nearest rounding), re-derived
 * multipliers, and the write-back of the trained tensors into the attached blob. Per
 * channel float32, per weight integers only: no double arithmetic (section 7).
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels_internal.h"
#include "kernels/quant.h"
#include "runtime/byte_order.h"
#include "train_internal.h"

#define FQT_FRAC_BITS 16
#define FQT_U_LIMIT ((int64_t)1 << 40)
#define FQT_V_LIMIT ((int64_t)1 << 55) /* |v * 127| < 2^62: the bias requantization stays in int64 */
#define FQT_STAT_BITS 15
#define FQT_RECIPROCAL_BITS 55 /* R = floor(127 * 2^55 / m): |u * R| <= 127 * 2^55 */
#define FQT_MAX_UPDATE_MULTIPLIER 1073741824.0f /* 2^30: QuantizeMultiplier's shift <= 31 */

/* x * d rounded, d a float32 factor: (M, sh) = QuantizeMultiplier(d), exact from the
 * float's bits; RDBPOT64(x * M, 31 - sh). A NaN or a d above 2^30 counts as 2^30. */
static void multiplier_of(float d, int32_t *mlt, int *sh)
{
	fqt_quantize_multiplier_f32(d < FQT_MAX_UPDATE_MULTIPLIER ? d : FQT_MAX_UPDATE_MULTIPLIER,
				    mlt, sh);
}

static int64_t mul_fixed(int64_t x, float d)
{
	int32_t mlt;
	int sh;
	multiplier_of(d, &mlt, &sh);
	return fqt_rdbpot64(x * (int64_t)mlt, 31 - sh);
}

static int64_t clamp_s64(int64_t x, int64_t lim)
{
	return x > lim ? lim : (x < -lim ? -lim : x);
}

static size_t weight_index(const fqt_train_layer *L, int dw, int32_t c, int32_t k)
{
	return dw ? (size_t)k * (size_t)L->n_out + (size_t)c
		  : (size_t)c * (size_t)L->row + (size_t)k;
}

/* a: channel c's accumulator row (fqt_grad_state_row) */
static int channel_zero(const fqt_train_layer *L, int32_t c, const int32_t *a)
{
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

/* clamped to +-2^40 (infinities too), then rounded half away from zero; NaN gives 0. The
 * integral float is converted from its bits: libgcc's float-to-int64 goes through double. */
static int64_t round_clamp_fx(float x)
{
	const float lim = 1099511627776.0f; /* 2^40 */
	if (!(x == x)) {
		return 0;
	}
	const uint32_t bits = fqt_f32_bits(roundf(x > lim ? lim : (x < -lim ? -lim : x)));
	int32_t mant;
	int k;
	if (!fqt_f32_mantissa(bits, &mant, &k)) {
		return 0; /* r == 0 */
	}
	const int64_t mag = k >= 0 ? (int64_t)mant << k : (int64_t)(mant >> -k);
	return (bits >> 31) != 0u ? -mag : mag;
}

/* The step's factors in float32 (section 7): single-precision hardware on M4F/M7, no
 * double arithmetic anywhere in the update. */
static void rule_of(const fqt_trainer *t, const fqt_train_layer *L, int32_t c,
		    const int32_t *acc, float s_in, channel_rule *r)
{
	const int64_t bias = L->has_bias ? L->bias[c] : 0;
	r->v = bias * ((int64_t)1 << FQT_FRAC_BITS);
	r->updated = 0;
	r->b_fx = 0;
	const int sgd = t->opt.update_rule == FQT_UPDATE_SGD;
	if (channel_zero(L, c, acc) || (!sgd && !(L->sd[c] > 0.0f))) {
		return;
	}
	/* the layer's exponent, or the channel's (narrow gradient state, section 4.1) */
	const int32_t g_exp = fqt_grad_state_exp(L, c);
	const float unit = ldexpf(s_in, g_exp);
	const float unit_b = ldexpf(1.0f, g_exp);
	const float s_w = L->per_channel ? L->scale[c] : L->scale[0];
	float lr_sd;
	if (sgd) {
		/* section 7.1: plain SGD on the batch-mean gradient */
		lr_sd = t->opt.lr / (float)(L->count > 0u ? L->count : 1u);
	} else {
		lr_sd = t->opt.lr / L->sd[c];
		const float mu = t->opt.center ? L->mu[c] : 0.0f;
		r->b_fx = round_clamp_fx(lr_sd * mu / s_w * 65536.0f);
	}
	multiplier_of(lr_sd * unit / s_w * 65536.0f, &r->wm, &r->wsh);
	if (L->has_bias) {
		r->v -= mul_fixed(L->acc_b[c], lr_sd * unit_b / (s_in * s_w) * 65536.0f);
		r->v = clamp_s64(r->v, FQT_V_LIMIT);
	}
	r->updated = 1;
}

static int64_t new_u(const fqt_train_layer *L, int dw, int32_t c, int32_t k, const int32_t *acc,
		     const channel_rule *r)
{
	const int64_t w = L->w[weight_index(L, dw, c, k)];
	int64_t u = w * ((int64_t)1 << FQT_FRAC_BITS);
	if (!r->updated) {
		return u;
	}
	const int64_t a = acc[k];
	u = u - fqt_rdbpot64(a * (int64_t)r->wm, 31 - r->wsh) + r->b_fx;
	return clamp_s64(u, FQT_U_LIMIT);
}

static int64_t round_div(int64_t num, int64_t m)
{
	const int64_t q = ((num < 0 ? -num : num) + m / 2) / m;
	return num < 0 ? -q : q;
}

/* floor(x / 2^n) for int64, without relying on >> of a negative value */
static int64_t floor_shift(int64_t x, int n)
{
	return x < 0 ? ~(~x >> n) : x >> n;
}

/* w' = 127 * u / m with 16 fraction bits, t = floor(u * R / 2^39), R = floor(127 * 2^55 / m):
 * one division per channel instead of one per weight; |t| <= 127 * 2^16. */
static void requant_channel(fqt_trainer *t, fqt_train_layer *L, int dw, int32_t c,
			    const int32_t *acc, const channel_rule *r, int64_t m, int64_t recip)
{
	for (int32_t k = 0; k < L->row; ++k) {
		const int64_t q16 = floor_shift(new_u(L, dw, c, k, acc, r) * recip,
						FQT_RECIPROCAL_BITS - FQT_FRAC_BITS);
		int64_t q;
		if (t->opt.stochastic_rounding) {
			const int64_t draw = (int64_t)(fqt_prng_next(&t->rng) >> 16);
			q = floor_shift(q16, 16) + (draw < (q16 & 0xFFFF) ? 1 : 0);
		} else {
			q = floor_shift(q16 + 0x8000, 16);
		}
		L->w[weight_index(L, dw, c, k)] = (int8_t)q;
	}
	if (L->has_bias) {
		L->bias[c] = (int32_t)fqt_sat32_64(round_div(r->v * 127, m));
	}
}

static int64_t reciprocal_of(int64_t m)
{
	return ((int64_t)127 << FQT_RECIPROCAL_BITS) / m;
}

/* s_w' = float32(float32(m) * s_w / (2^16 * 127)) */
static float new_scale(int64_t m, float s_w)
{
	return (float)m * s_w / 8323072.0f;
}

/* The gradient's per-channel mean and std in real units (unit = s_in * 2^G per
 * accumulator step, G the layer's or the channel's exponent), from 15-bit-rounded integer
 * sums, then float32, folded into the EMA (section 7). */
static void update_moments(const fqt_trainer *t, fqt_train_layer *L, float s_in)
{
	const float a = t->opt.alpha_norm;
	const float b = 1.0f - a;
	for (int32_t c = 0; c < L->n_out; ++c) {
		const int32_t *row = fqt_grad_state_row(t, L, c);
		if (channel_zero(L, c, row)) {
			continue;
		}
		const float unit = ldexpf(s_in, fqt_grad_state_exp(L, c));
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
		const float n = (float)L->row;
		const float mm = (float)s1 / n;
		const float var = (float)s2 / n - mm * mm;
		const float mean_r = ldexpf(mm, s) * unit;
		const float std_r = ldexpf(sqrtf(var > 0.0f ? var : 0.0f), s) * unit;
		if (L->sd[c] < 0.0f) {
			L->mu[c] = mean_r;
			L->sd[c] = std_r;
		} else {
			L->mu[c] = a * L->mu[c] + b * mean_r;
			L->sd[c] = a * L->sd[c] + b * std_r;
		}
	}
}

static int64_t channel_max_u(const fqt_train_layer *L, int dw, int32_t c, const int32_t *acc,
			     const channel_rule *r, int64_t mx)
{
	for (int32_t k = 0; k < L->row; ++k) {
		const int64_t u = new_u(L, dw, c, k, acc, r);
		const int64_t au = u < 0 ? -u : u;
		mx = au > mx ? au : mx;
	}
	return mx;
}

static void update_layer(fqt_trainer *t, fqt_train_layer *L)
{
	const fqt_layer_view *v = &t->views[L->layer];
	const int dw = v->op == FQT_OP_DEPTHWISE_CONV_2D;
	const float s_in = v->input_scale;
	if (t->opt.update_rule != FQT_UPDATE_SGD) {
		update_moments(t, L, s_in);
	}
	/* new weights, requantized */
	channel_rule r;
	if (L->per_channel) {
		for (int32_t c = 0; c < L->n_out; ++c) {
			const int32_t *acc = fqt_grad_state_row(t, L, c);
			rule_of(t, L, c, acc, s_in, &r);
			if (!r.updated) {
				continue;
			}
			const int64_t mx = channel_max_u(L, dw, c, acc, &r, 0);
			if (mx == 0) {
				for (int32_t k = 0; k < L->row; ++k) {
					L->w[weight_index(L, dw, c, k)] = 0;
				}
				continue;
			}
			const float ns = new_scale(mx, L->scale[c]);
			requant_channel(t, L, dw, c, acc, &r, mx, reciprocal_of(mx));
			L->scale[c] = ns;
		}
	} else {
		int any = 0;
		int64_t mx = 0;
		for (int32_t c = 0; c < L->n_out; ++c) {
			const int32_t *acc = fqt_grad_state_row(t, L, c);
			rule_of(t, L, c, acc, s_in, &r);
			any |= r.updated;
			mx = channel_max_u(L, dw, c, acc, &r, mx);
		}
		if (any) {
			if (mx == 0) {
				memset(L->w, 0, L->n_weights);
			} else {
				const float ns = new_scale(mx, L->scale[0]);
				const int64_t recip = reciprocal_of(mx);
				for (int32_t c = 0; c < L->n_out; ++c) {
					const int32_t *acc = fqt_grad_state_row(t, L, c);
					rule_of(t, L, c, acc, s_in, &r);
					requant_channel(t, L, dw, c, acc, &r, mx, recip);
				}
				L->scale[0] = ns;
			}
		}
	}
	fqt_train_layer_multipliers(v, L->scale, L->per_channel, L->mult, L->shift);
	fqt_grad_state_reset(L);
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
		const fqt_layer_view *v = &t->views[L->layer];
		memcpy(AT(L->blob_weights), L->w, L->n_weights);
		const uint32_t nq = L->weight_scale_count;
		for (uint32_t c = 0; c < nq; ++c) {
			write_f32(AT(L->blob_weight_scales) + 4u * c, L->scale[c]);
		}
		if (L->has_bias) {
			memcpy(AT(L->blob_bias), L->bias, 4u * (size_t)L->n_out);
			for (uint32_t c = 0; c < L->bias_scale_count; ++c) {
				write_f32(AT(L->blob_bias_scales) + 4u * c,
					  v->input_scale * L->scale[c % nq]);
			}
		}
		memcpy(AT(L->blob_multiplier), L->mult, 4u * v->requant.count);
		memcpy(AT(L->blob_shift), L->shift, 4u * v->requant.count);
	}
#undef AT
	const uint32_t crc = fqt_crc32(0, blob + 16, m->blob_size - 16u);
	fqt_write_u32(blob + 12, crc);
	if (t->blob_model != NULL) {
		t->blob_model->crc32 = crc;
	}
	return FQT_OK;
}

fqt_status fqt_train_update(fqt_trainer *t)
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
			fqt_train_mark(t, FQT_PHASE_UPDATE, t->layers[i].layer, 0);
			update_layer(t, &t->layers[i]);
			fqt_train_mark(t, FQT_PHASE_UPDATE, t->layers[i].layer, 1);
		}
	}
	fqt_train_ranges_update(t);
	t->counters.updates++;
	return fqt_trainer_sync_blob(t);
}
