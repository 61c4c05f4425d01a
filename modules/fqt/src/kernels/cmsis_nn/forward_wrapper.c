/*
 * The CMSIS-NN build of forward_wrapper.h (CONFIG_FQT_CMSIS_NN), in the manner of TFLM's
 * kernels/cmsis_nn/: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED through CMSIS-NN
 * where it is bit-exact with fqt's kernels, fqt's portable kernel elsewhere. CMSIS-NN's
 * default requantization (no CMSIS_NN_USE_SINGLE_ROUNDING) is TFLM's double rounding,
 * which fqt's kernels reproduce. Conventions mapped here:
 *
 * - offsets: fqt's kernels already take input_offset = -input_zero_point and
 *   output_offset = output_zero_point, exactly CMSIS-NN's input_offset/output_offset;
 *   weights are symmetric, so FC's filter_offset is 0;
 * - requantization: per output channel for the convolutions (the loader requires one
 *   (multiplier, shift) per channel), per tensor (arm_fully_connected_s8) or per channel
 *   (arm_fully_connected_per_channel_s8) for FC; bias is added before requantization,
 *   the output offset after, then the clamp: fqt's order;
 * - layouts: NHWC activations, OHWI conv filters, 1HWO depthwise filters and [out, in]
 *   FC weights are fqt's (TFLite's) layouts too; bias may be NULL in both.
 */
#include "arm_nnfunctions.h"

#include "kernels/forward_wrapper.h"

#if defined(CMSIS_NN_USE_SINGLE_ROUNDING)
#error "fqt needs CMSIS-NN's TFLM (double) rounding: undefine CMSIS_NN_USE_SINGLE_ROUNDING"
#endif

/* CMSIS-NN's convolutions keep some dimensions in uint16_t. */
#define DIM_MAX 0xFFFF

static int dims_fit(const fqt_dims *d)
{
	return d->n >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1 && d->n <= DIM_MAX &&
	       d->h <= DIM_MAX && d->w <= DIM_MAX && d->c <= DIM_MAX;
}

static cmsis_nn_dims cdims(const fqt_dims *d)
{
	const cmsis_nn_dims c = {d->n, d->h, d->w, d->c};
	return c;
}

static cmsis_nn_conv_params conv_params(const fqt_conv_params *p)
{
	const cmsis_nn_conv_params c = {
		.input_offset = p->input_offset,
		.output_offset = p->output_offset,
		.stride = {p->stride_w, p->stride_h},
		.padding = {p->pad_w, p->pad_h},
		.dilation = {p->dilation_w, p->dilation_h},
		.activation = {p->act_min, p->act_max},
	};
	return c;
}

static cmsis_nn_dw_conv_params dw_params(const fqt_conv_params *p)
{
	const cmsis_nn_dw_conv_params c = {
		.input_offset = p->input_offset,
		.output_offset = p->output_offset,
		.ch_mult = p->depth_multiplier,
		.stride = {p->stride_w, p->stride_h},
		.padding = {p->pad_w, p->pad_h},
		.dilation = {p->dilation_w, p->dilation_h},
		.activation = {p->act_min, p->act_max},
	};
	return c;
}

static int32_t conv_scratch(const fqt_conv_params *p, const fqt_dims *in, const fqt_dims *w,
			    const fqt_dims *out)
{
	const cmsis_nn_conv_params cp = conv_params(p);
	const cmsis_nn_dims i = cdims(in);
	const cmsis_nn_dims f = cdims(w);
	const cmsis_nn_dims o = cdims(out);
	return arm_convolve_wrapper_s8_get_buffer_size(&cp, &i, &f, &o);
}

static int32_t dw_scratch(const fqt_conv_params *p, const fqt_dims *in, const fqt_dims *w,
			  const fqt_dims *out)
{
	const cmsis_nn_dw_conv_params cp = dw_params(p);
	const cmsis_nn_dims i = cdims(in);
	const cmsis_nn_dims f = cdims(w);
	const cmsis_nn_dims o = cdims(out);
	return arm_depthwise_conv_wrapper_s8_get_buffer_size(&cp, &i, &f, &o);
}

static int32_t fc_scratch(int32_t accum_depth, int32_t out_depth)
{
	const cmsis_nn_dims f = {accum_depth, 1, 1, out_depth};
	return arm_fully_connected_s8_get_buffer_size(&f);
}

static size_t round4(int32_t bytes)
{
	return bytes <= 0 ? 0u : ((size_t)bytes + 3u) & ~(size_t)3u;
}

/* CMSIS-NN cannot run these shapes: fqt's kernel does, with no scratch. */
static int conv_unsupported(const fqt_dims *in, const fqt_dims *w, const fqt_dims *out)
{
	return !dims_fit(in) || !dims_fit(w) || !dims_fit(out);
}

size_t fqt_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
					       const fqt_dims *input_dims,
					       const fqt_dims *filter_dims,
					       const fqt_dims *output_dims)
{
	if (conv_unsupported(input_dims, filter_dims, output_dims)) {
		return 0;
	}
	return round4(conv_scratch(params, input_dims, filter_dims, output_dims));
}

size_t fqt_depthwise_conv2d_forward_wrapper_scratch_size(const fqt_conv_params *params,
							 const fqt_dims *input_dims,
							 const fqt_dims *filter_dims,
							 const fqt_dims *output_dims)
{
	if (conv_unsupported(input_dims, filter_dims, output_dims)) {
		return 0;
	}
	return round4(dw_scratch(params, input_dims, filter_dims, output_dims));
}

size_t fqt_fully_connected_forward_wrapper_scratch_size(int32_t accum_depth, int32_t out_depth)
{
	return round4(fc_scratch(accum_depth, out_depth));
}

/* The try_* functions return FQT_ERR_UNSUPPORTED, without touching the output, when
 * CMSIS-NN cannot compute that layer bit-exactly with fqt's kernel or its scratch does
 * not fit. */
static fqt_status status_of(arm_cmsis_nn_status s)
{
	return s == ARM_CMSIS_NN_SUCCESS ? FQT_OK : FQT_ERR_ARGUMENT;
}

static fqt_status try_conv2d(const fqt_conv_params *params, const fqt_requant *requant,
			    const fqt_dims *input_dims, const int8_t *input,
			    const fqt_dims *filter_dims, const int8_t *filter, const int32_t *bias,
			    const fqt_dims *output_dims, int8_t *output, void *scratch,
			    size_t scratch_size)
{
	if (requant->count != (uint32_t)output_dims->c || !dims_fit(input_dims) ||
	    !dims_fit(filter_dims) || !dims_fit(output_dims) ||
	    filter_dims->c != input_dims->c) {
		return FQT_ERR_UNSUPPORTED;
	}
	const int32_t need = conv_scratch(params, input_dims, filter_dims, output_dims);
	if (need > 0 && (size_t)need > scratch_size) {
		return FQT_ERR_UNSUPPORTED;
	}
	const cmsis_nn_context ctx = {scratch, need};
	const cmsis_nn_conv_params cp = conv_params(params);
	const cmsis_nn_per_channel_quant_params q = {(int32_t *)requant->multiplier,
						     (int32_t *)requant->shift};
	const cmsis_nn_dims i = cdims(input_dims);
	const cmsis_nn_dims f = cdims(filter_dims);
	const cmsis_nn_dims b = {1, 1, 1, output_dims->c};
	const cmsis_nn_dims o = cdims(output_dims);
	return status_of(arm_convolve_wrapper_s8(&ctx, &cp, &q, &i, input, &f, filter, &b, bias,
						 &o, output));
}

static fqt_status try_depthwise_conv2d(const fqt_conv_params *params,
				      const fqt_requant *requant, const fqt_dims *input_dims,
				      const int8_t *input, const fqt_dims *filter_dims,
				      const int8_t *filter, const int32_t *bias,
				      const fqt_dims *output_dims, int8_t *output, void *scratch,
				      size_t scratch_size)
{
	if (requant->count != (uint32_t)output_dims->c || !dims_fit(input_dims) ||
	    !dims_fit(filter_dims) || !dims_fit(output_dims) || params->depth_multiplier < 1 ||
	    output_dims->c != input_dims->c * params->depth_multiplier) {
		return FQT_ERR_UNSUPPORTED;
	}
	const int32_t need = dw_scratch(params, input_dims, filter_dims, output_dims);
	if (need > 0 && (size_t)need > scratch_size) {
		return FQT_ERR_UNSUPPORTED;
	}
	const cmsis_nn_context ctx = {scratch, need};
	const cmsis_nn_dw_conv_params cp = dw_params(params);
	const cmsis_nn_per_channel_quant_params q = {(int32_t *)requant->multiplier,
						     (int32_t *)requant->shift};
	const cmsis_nn_dims i = cdims(input_dims);
	const cmsis_nn_dims f = cdims(filter_dims);
	const cmsis_nn_dims b = {1, 1, 1, output_dims->c};
	const cmsis_nn_dims o = cdims(output_dims);
	return status_of(arm_depthwise_conv_wrapper_s8(&ctx, &cp, &q, &i, input, &f, filter, &b,
						       bias, &o, output));
}

static fqt_status try_fully_connected(const fqt_fully_connected_params *params,
				     const fqt_requant *requant, int32_t batches,
				     int32_t accum_depth, int32_t out_depth, const int8_t *input,
				     const int8_t *weights, const int32_t *bias, int8_t *output,
				     void *scratch, size_t scratch_size)
{
	const int per_channel = requant->count != 1u;
	if (per_channel && requant->count != (uint32_t)out_depth) {
		return FQT_ERR_UNSUPPORTED;
	}
	const int32_t need = fc_scratch(accum_depth, out_depth);
	if (need > 0 && (size_t)need > scratch_size) {
		return FQT_ERR_UNSUPPORTED;
	}
	if (need > 0) {
		/* Helium: per-row kernel sums with the input offset and bias folded in, as
		 * TFLM's CMSIS-NN FULLY_CONNECTED prepares them. */
		const arm_cmsis_nn_status s = arm_vector_sum_s8(
			(int32_t *)scratch, accum_depth, out_depth, weights, params->input_offset,
			0, bias);
		if (s != ARM_CMSIS_NN_SUCCESS) {
			return FQT_ERR_ARGUMENT;
		}
	}
	const cmsis_nn_context ctx = {need > 0 ? scratch : NULL, need};
	const cmsis_nn_fc_params fp = {
		.input_offset = params->input_offset,
		.filter_offset = 0,
		.output_offset = params->output_offset,
		.activation = {params->act_min, params->act_max},
	};
	const cmsis_nn_dims i = {batches, 1, 1, accum_depth};
	const cmsis_nn_dims f = {accum_depth, 1, 1, out_depth};
	const cmsis_nn_dims b = {1, 1, 1, out_depth};
	const cmsis_nn_dims o = {batches, 1, 1, out_depth};
	if (per_channel) {
		const cmsis_nn_per_channel_quant_params q = {(int32_t *)requant->multiplier,
							     (int32_t *)requant->shift};
		return status_of(arm_fully_connected_per_channel_s8(&ctx, &fp, &q, &i, input, &f,
								    weights, &b, bias, &o,
								    output));
	}
	const cmsis_nn_per_tensor_quant_params q = {requant->multiplier[0], requant->shift[0]};
	return status_of(arm_fully_connected_s8(&ctx, &fp, &q, &i, input, &f, weights, &b, bias,
						&o, output));
}

fqt_status fqt_conv2d_forward_wrapper(const fqt_conv_params *params, const fqt_requant *requant,
				      const fqt_dims *input_dims, const int8_t *input,
				      const fqt_dims *filter_dims, const int8_t *filter,
				      const int32_t *bias, const fqt_dims *output_dims,
				      int8_t *output, const fqt_kernel_scratch *scratch)
{
	const fqt_status st = try_conv2d(params, requant, input_dims, input, filter_dims, filter,
					 bias, output_dims, output, scratch->buf, scratch->size);
	if (st != FQT_ERR_UNSUPPORTED) {
		return st;
	}
	return fqt_conv2d_forward(params, requant, input_dims, input, filter_dims, filter, bias,
				  output_dims, output);
}

fqt_status fqt_depthwise_conv2d_forward_wrapper(const fqt_conv_params *params,
						const fqt_requant *requant,
						const fqt_dims *input_dims, const int8_t *input,
						const fqt_dims *filter_dims, const int8_t *filter,
						const int32_t *bias, const fqt_dims *output_dims,
						int8_t *output, const fqt_kernel_scratch *scratch)
{
	const fqt_status st = try_depthwise_conv2d(params, requant, input_dims, input,
						   filter_dims, filter, bias, output_dims, output,
						   scratch->buf, scratch->size);
	if (st != FQT_ERR_UNSUPPORTED) {
		return st;
	}
	return fqt_depthwise_conv2d_forward(params, requant, input_dims, input, filter_dims,
					    filter, bias, output_dims, output);
}

fqt_status fqt_fully_connected_forward_wrapper(const fqt_fully_connected_params *params,
					       const fqt_requant *requant, int32_t batches,
					       int32_t accum_depth, int32_t out_depth,
					       const int8_t *input, const int8_t *weights,
					       const int32_t *bias, int8_t *output,
					       const fqt_kernel_scratch *scratch)
{
	const fqt_status st = try_fully_connected(params, requant, batches, accum_depth,
						  out_depth, input, weights, bias, output,
						  scratch->buf, scratch->size);
	if (st != FQT_ERR_UNSUPPORTED) {
		return st;
	}
	return fqt_fully_connected_forward(params, requant, batches, accum_depth, out_depth, input,
					   weights, bias, output);
}
