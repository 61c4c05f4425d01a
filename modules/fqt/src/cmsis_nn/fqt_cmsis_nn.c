/*
 * CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED forward through CMSIS-NN
 * (fqt_cmsis_nn.h). Conventions mapped here:
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
#include <string.h>

#include "arm_nnfunctions.h"

#include "cmsis_nn/fqt_cmsis_nn.h"
#include "fqt_internal.h"

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

static uint32_t round4(int32_t bytes)
{
	return bytes <= 0 ? 0u : ((uint32_t)bytes + 3u) & ~3u;
}

static fqt_dims dims_of(const fqt_tensor *t)
{
	const fqt_dims d = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
	return d;
}

uint32_t fqt_cmsis_scratch_size(const fqt_model *m)
{
	uint32_t most = 0;
	for (uint32_t li = 0; li < m->layer_count; ++li) {
		fqt_layer l;
		fqt_tensor in;
		fqt_tensor w;
		fqt_tensor out;
		fqt_decode_layer(m, li, &l);
		if (l.op != FQT_OP_CONV_2D && l.op != FQT_OP_DEPTHWISE_CONV_2D &&
		    l.op != FQT_OP_FULLY_CONNECTED) {
			continue;
		}
		fqt_decode_tensor(m, (uint32_t)l.input[0], &in);
		fqt_decode_tensor(m, (uint32_t)l.input[1], &w);
		fqt_decode_tensor(m, (uint32_t)l.output, &out);
		uint32_t need;
		if (l.op == FQT_OP_FULLY_CONNECTED) {
			need = round4(fc_scratch(w.shape[1], w.shape[0]));
		} else {
			const fqt_dims id = dims_of(&in);
			const fqt_dims wd = dims_of(&w);
			const fqt_dims od = dims_of(&out);
			if (!dims_fit(&id) || !dims_fit(&wd) || !dims_fit(&od)) {
				continue; /* fqt's kernel runs it */
			}
			const fqt_conv_params p = {
				.input_offset = -in.zero_points[0],
				.output_offset = out.zero_points[0],
				.stride_h = l.stride_h,
				.stride_w = l.stride_w,
				.dilation_h = l.dilation_h,
				.dilation_w = l.dilation_w,
				.pad_h = l.pad_h,
				.pad_w = l.pad_w,
				.depth_multiplier = od.c / id.c,
				.act_min = l.act_min,
				.act_max = l.act_max,
			};
			need = round4(l.op == FQT_OP_CONV_2D ? conv_scratch(&p, &id, &wd, &od)
							     : dw_scratch(&p, &id, &wd, &od));
		}
		most = need > most ? need : most;
	}
	return most;
}

static fqt_status status_of(arm_cmsis_nn_status s)
{
	return s == ARM_CMSIS_NN_SUCCESS ? FQT_OK : FQT_ERR_ARGUMENT;
}

fqt_status fqt_cmsis_conv2d(const fqt_conv_params *params, const fqt_requant *requant,
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

fqt_status fqt_cmsis_depthwise_conv2d(const fqt_conv_params *params,
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

fqt_status fqt_cmsis_fully_connected(const fqt_fully_connected_params *params,
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
