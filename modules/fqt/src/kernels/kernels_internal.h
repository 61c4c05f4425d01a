/* The kernels' private arithmetic of training (docs/training-semantics.md): int64
 * rounding helpers, the error-tensor quantization (kernels/error_quant.c) and gradient
 * accumulation, shared by the backward kernels, the loss, the update and the trainer. */
#ifndef FQT_KERNELS_INTERNAL_H_
#define FQT_KERNELS_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fqt/kernels.h"

#define FQT_ERROR_MAX 127
#define FQT_FIXED_ERROR_EXP (-7)
#define FQT_FIXED_SHIFT_CAP 24
#define FQT_ERROR_FOLD_BITS 8

static inline int64_t fqt_sat32_64(int64_t v)
{
	return v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v);
}

/* RDBPOT on int64, 0 <= e <= 62. */
static inline int64_t fqt_rdbpot64(int64_t x, int e)
{
	if (e <= 0) {
		return x;
	}
	const uint64_t mask = ((uint64_t)1 << e) - 1u;
	const int64_t remainder = (int64_t)((uint64_t)x & mask);
	const int64_t threshold = (int64_t)(mask >> 1) + (x < 0 ? 1 : 0);
	const int64_t shifted = x < 0 ? ~(~x >> e) : x >> e;
	return shifted + (remainder > threshold ? 1 : 0);
}

static inline int fqt_bit_length64(uint64_t m)
{
	int n = 0;
	while (m != 0u) {
		m >>= 1;
		++n;
	}
	return n;
}

static inline float fqt_read_f32(const void *p, size_t i)
{
	float f;
	memcpy(&f, (const uint8_t *)p + 4u * i, sizeof(f));
	return f;
}

/* quantize_error (section 2.1) of n int32 accumulators of base exponent `base`. `out` may
 * be the same memory as `acc` (read before written). */
void fqt_quantize_error_s32(const int32_t *acc, size_t n, int32_t base, int fixed,
			    int8_t *out, int32_t *exponent);

/* quantize_error of a tensor whose int32 sums come a chunk at a time, computed twice (the
 * lean plan's input errors, docs/training-semantics.md 5.3): in pass 0 the sink keeps the
 * exact max |acc|, in pass 1 it writes each chunk's int8 values, the same integers as
 * fqt_quantize_error_s32 of the whole tensor. Chunks hold FQT_IE_CHUNK int32 (a
 * convolution: the channel vectors of fqt_ie_chunk_columns positions of one row). */
#define FQT_IE_CHUNK 256
static inline int32_t fqt_ie_chunk_columns(int32_t in_w, int32_t in_c)
{
	const int32_t cols = in_c > 0 && in_c < FQT_IE_CHUNK ? FQT_IE_CHUNK / in_c : 1;
	return cols < in_w ? cols : in_w;
}
typedef struct fqt_error_sink {
	int8_t *out;
	int32_t *exponent;
	int32_t base;
	int fixed, pass, r;
	uint64_t max_abs;
} fqt_error_sink;
/* Start: returns the first pass (1 with fixed scaling, whose shift needs no max). */
int fqt_error_sink_begin(fqt_error_sink *s, int8_t *out, int fixed, int32_t base,
			 int32_t *exponent);
/* The n sums of elements at .. at + n - 1 (pass 0: their max; pass 1: quantized). */
void fqt_error_sink_put(fqt_error_sink *s, const int32_t *acc, size_t at, size_t n);
/* The same for n sums of elements at, at + stride, ... */
void fqt_error_sink_put_strided(fqt_error_sink *s, const int32_t *acc, size_t at, size_t n,
				size_t stride);
/* Between the passes: the shift from the exact max, and *exponent. */
void fqt_error_sink_next(fqt_error_sink *s);

/* quantize_error's shift r for a max |acc| (sets *exponent), and one element. */
int fqt_error_shift(uint64_t max_abs, int32_t base, int fixed, int32_t *exponent);
int8_t fqt_error_quantize_one(int64_t a, int fixed, int r);

/* The weight-scale fold (section 2.2): P from the scales, then per channel (M, shift). */
int fqt_fold_exponent(const void *scales, uint32_t count);
void fqt_fold_multiplier(const void *scales, uint32_t count, int32_t channel, int p,
			 int32_t *multiplier, int *shift);

/* Section 2.3: dst (int8, exponent *dst_exp) += src (int8, exponent src_exp), requantized
 * into dst with quantize_error; *dst_exp becomes the sum's exponent. */
void fqt_combine_errors_s8(int8_t *dst, int32_t *dst_exp, const int8_t *src, int32_t src_exp,
			   size_t n, int fixed);

/* Section 5.1, the clip mask: RELU outputs clamped at act_max have zero derivative. */
void fqt_relu_clip_mask(int8_t *err, const int8_t *output, size_t size, int32_t act_max);

/* Section 5.1, the saturation mask of a NONE-activation weighted layer: an output at the top
 * of its int8 range drops the errors asking it to grow (e < 0), one at the bottom those
 * asking it to shrink (e > 0). */
void fqt_saturation_mask(int8_t *err, const int8_t *output, size_t size, int32_t act_min,
			 int32_t act_max);

/* The sink's row and bias of output channel c (c - base inside the chunk it holds). */
static inline int32_t *fqt_grad_row(const fqt_grad_sink *s, int32_t c)
{
	return s->acc_w + (size_t)(c - s->base) * (size_t)s->row;
}

static inline int32_t *fqt_grad_bias(const fqt_grad_sink *s, int32_t c)
{
	return s->acc_b + (c - s->base);
}

/* Gradient accumulation (section 4) of one element. */
static inline void fqt_grad_put(const fqt_grad_sink *s, int32_t *acc, int64_t g)
{
	const int64_t g32 = fqt_sat32_64(g);
	if (s->mode == FQT_GRAD_FIRST) {
		*acc = (int32_t)g32;
	} else if (s->mode == FQT_GRAD_UP) {
		*acc = (int32_t)fqt_sat32_64(fqt_rdbpot64(*acc, s->shift) + g32);
	} else {
		*acc = (int32_t)fqt_sat32_64((int64_t)*acc + fqt_rdbpot64(g32, s->shift));
	}
}

/* Pools whose windows do not overlap (docs/training-semantics.md 5.4, 5.5): the input
 * error written as int8 directly, no int32 scratch (kernels/pooling.c). avg: AVERAGE_POOL_2D,
 * else MAX_POOL_2D (input: the kept input, for the argmax). */
int fqt_pool2d_windows_disjoint(const fqt_pool_params *params, const fqt_dims *output_dims);
fqt_status fqt_pool2d_backward_s8(const fqt_pool_params *params, int avg,
				  const fqt_dims *input_dims, const int8_t *input,
				  const fqt_dims *output_dims, const int8_t *err, int32_t err_exp,
				  int fixed, int8_t *out, int32_t *out_exp);

#endif /* FQT_KERNELS_INTERNAL_H_ */
