/*
 * CMSIS-NN forward kernels behind fqt's kernel interface (Zephyr builds with
 * CONFIG_FQT_CMSIS_NN only; the portable core never includes this header otherwise).
 *
 * Each call returns FQT_ERR_UNSUPPORTED, without touching the output, when CMSIS-NN
 * cannot compute that layer bit-exactly with fqt's own kernel (or its scratch does not
 * fit); the session then runs fqt's kernel. CMSIS-NN's default requantization (no
 * CMSIS_NN_USE_SINGLE_ROUNDING) is TFLM's double rounding, which fqt's kernels reproduce.
 *
 * Scratch: fqt_model_load() adds fqt_cmsis_scratch_size() bytes at the end of the
 * inference arena (fqt_model_inference_arena_size() includes them; model->scratch_size
 * says how many), so the arena size query stays honest.
 */
#ifndef FQT_CMSIS_NN_H_
#define FQT_CMSIS_NN_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/kernels.h"
#include "fqt/model.h"

#if defined(CMSIS_NN_USE_SINGLE_ROUNDING)
#error "fqt needs CMSIS-NN's TFLM (double) rounding: undefine CMSIS_NN_USE_SINGLE_ROUNDING"
#endif

/* Bytes of scratch the CMSIS-NN kernels need for the largest layer of a validated model
 * (a multiple of 4). */
uint32_t fqt_cmsis_scratch_size(const fqt_model *model);

fqt_status fqt_cmsis_conv2d(const fqt_conv_params *params, const fqt_requant *requant,
			    const fqt_dims *input_dims, const int8_t *input,
			    const fqt_dims *filter_dims, const int8_t *filter, const int32_t *bias,
			    const fqt_dims *output_dims, int8_t *output, void *scratch,
			    size_t scratch_size);

fqt_status fqt_cmsis_depthwise_conv2d(const fqt_conv_params *params,
				      const fqt_requant *requant, const fqt_dims *input_dims,
				      const int8_t *input, const fqt_dims *filter_dims,
				      const int8_t *filter, const int32_t *bias,
				      const fqt_dims *output_dims, int8_t *output, void *scratch,
				      size_t scratch_size);

fqt_status fqt_cmsis_fully_connected(const fqt_fully_connected_params *params,
				     const fqt_requant *requant, int32_t batches,
				     int32_t accum_depth, int32_t out_depth, const int8_t *input,
				     const int8_t *weights, const int32_t *bias, int8_t *output,
				     void *scratch, size_t scratch_size);

#endif /* FQT_CMSIS_NN_H_ */
