/*
 * The exact input error of a weighted layer (docs/training-semantics.md section 5.3).
 *
 * The input-error kernels (fqt_*_backward_input) accumulate acc += w * g in int32, exact
 * while no partial sum can leave int32. fqt_input_error_bound() says whether that can
 * happen for a given error; past it the caller uses fqt_input_error_exact(), which
 * computes each input element in int64 (slowly, in chunks, with no scratch beyond a few
 * words of stack).
 */
#ifndef FQT_INPUT_ERROR_EXACT_H_
#define FQT_INPUT_ERROR_EXACT_H_

#include <stdint.h>

#include "fqt/kernels.h"

typedef enum fqt_input_error_kind {
	FQT_INPUT_ERROR_CONV2D,
	FQT_INPUT_ERROR_DEPTHWISE_CONV2D,
	FQT_INPUT_ERROR_FULLY_CONNECTED,
} fqt_input_error_kind;

/* The arguments of one input-error computation, as the fqt_*_backward_input kernels take
 * them. */
typedef struct fqt_input_error_job {
	fqt_input_error_kind kind;
	const fqt_conv_params *cp; /* convolutions */
	fqt_dims id, wd, od;       /* convolutions */
	const int8_t *w;
	const void *scales;        /* f32 weight scales, per channel or one */
	uint32_t scale_count;
	int p;                     /* fqt_fold_exponent(scales, scale_count) */
	const int8_t *e;           /* the output error, [positions][n_ch] */
	int32_t n_ch;
	const uint16_t *kept;      /* kept output channels, ascending */
	int32_t n_kept;
	int32_t in_count;          /* fully connected: accum depth */
} fqt_input_error_job;

/* An upper bound of sum |w * g| over the terms of any one input element (the kernels'
 * partial sums are sums of some of them). */
uint64_t fqt_input_error_bound(const fqt_input_error_job *job);

/* The exact input error into acc (int32 elements): pass 1 stores sat32(v); if some |v|
 * left int32, pass 2 recomputes v and stores quantize_error's int8 values (section 2.1,
 * from the exact int64 max) and moves *base to their exponent, so that the caller's
 * quantize_error passes them through unchanged. Either way the result equals
 * quantize_error of the exact int64 accumulator. */
void fqt_input_error_exact(const fqt_input_error_job *job, int32_t *acc, int32_t *base,
			   int fixed);

/* The lean plan's form: no int32 tensor; pass 1 takes the exact max, pass 2 writes
 * quantize_error(acc, base)'s int8 values into out[in elements] and its exponent. */
void fqt_input_error_exact_s8(const fqt_input_error_job *job, int32_t base, int fixed,
			      int8_t *out, int32_t *exponent);

#endif /* FQT_INPUT_ERROR_EXACT_H_ */
