/*
 * Validation of each layer record of a blob (docs/blob-format.md): op and activation codes,
 * tensor indices and their roles, execution order, per-op shape consistency (TFLM's output
 * size and padding formulas), requantization arrays and their ranges. Part of
 * fqt_model_load() (runtime/model_validate.c).
 */
#include "model_validate.h"

#include <stdbool.h>
#include <string.h>

#include "byte_order.h"
#include "model_decode.h"

enum {
	LR_OP = FQT_LREC_OP,
	LR_ACTIVATION = FQT_LREC_ACTIVATION,
	LR_PADDING = FQT_LREC_PADDING,
	LR_FLAGS = FQT_LREC_FLAGS,
	LR_TENSORS = FQT_LREC_TENSORS,
	LR_STRIDE_H = FQT_LREC_STRIDE_H,
	LR_STRIDE_W = FQT_LREC_STRIDE_W,
	LR_FILTER_H = FQT_LREC_FILTER_H,
	LR_FILTER_W = FQT_LREC_FILTER_W,
	LR_DILATION_H = FQT_LREC_DILATION_H,
	LR_DILATION_W = FQT_LREC_DILATION_W,
	LR_DEPTH_MULTIPLIER = FQT_LREC_DEPTH_MULTIPLIER,
	LR_PAD_H = FQT_LREC_PAD_H,
	LR_PAD_W = FQT_LREC_PAD_W,
	LR_RESERVED = FQT_LREC_RESERVED,
	LR_ACT_MIN = FQT_LREC_ACT_MIN,
	LR_ACT_MAX = FQT_LREC_ACT_MAX,
	LR_CHANNEL_COUNT = FQT_LREC_CHANNEL_COUNT,
	LR_MULTIPLIER_OFFSET = FQT_LREC_MULTIPLIER_OFFSET,
	LR_SHIFT_OFFSET = FQT_LREC_SHIFT_OFFSET,
	LR_EXTRAS = FQT_LREC_EXTRAS,
};

static const char *const op_names[] = {
	"?", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
	"MAX_POOL_2D", "RESHAPE", "ADD", "SOFTMAX",
};

/* TFLM ComputeOutSize. */
static int64_t expected_out_size(uint8_t padding, int64_t in, int64_t filter, int64_t stride,
				 int64_t dilation)
{
	const int64_t effective_filter = (filter - 1) * dilation + 1;
	if (padding == FQT_PADDING_SAME) {
		return (in + stride - 1) / stride;
	}
	return (in + stride - effective_filter) / stride;
}

/* TFLM ComputePadding (top/left). */
static int64_t expected_padding(int64_t stride, int64_t dilation, int64_t in, int64_t filter,
				int64_t out)
{
	const int64_t effective_filter = (filter - 1) * dilation + 1;
	const int64_t padding = ((out - 1) * stride + effective_filter - in) / 2;
	return padding > 0 ? padding : 0;
}

/* Was tensor t written by one of layers [0, before)? */
bool fqt_validate_produced_before(const fqt_model *m, int32_t t, uint32_t before)
{
	for (uint32_t l = 0; l < before; ++l) {
		const uint8_t *r = m->layer_table + (size_t)l * FQT_BLOB_LAYER_RECORD_SIZE;
		if (fqt_read_i16(r + LR_TENSORS + 6) == t) {
			return true;
		}
	}
	return false;
}

/* An activation operand of layer li: int8, not constant, the model input or an earlier
 * layer's output. */
static fqt_status check_activation_input(const fqt_model *m, uint32_t li, const char *op,
					 const char *role, int32_t t, fqt_tensor *out,
					 fqt_error *err)
{
	if (t < 0 || t >= (int32_t)m->tensor_count) {
		FAIL("layer %u %s: %s tensor %d out of range", (unsigned)li, op, role, (int)t);
	}
	fqt_decode_tensor(m, (uint32_t)t, out);
	if (out->dtype != FQT_DTYPE_INT8 || out->data != NULL) {
		FAIL("layer %u %s: %s tensor %d must be a non-constant int8 tensor", (unsigned)li,
		     op, role, (int)t);
	}
	if (t != (int32_t)m->input_tensor && !fqt_validate_produced_before(m, t, li)) {
		FAIL("layer %u %s: reads tensor %d before any layer writes it", (unsigned)li, op,
		     (int)t);
	}
	return FQT_OK;
}

static fqt_status check_constant(const fqt_model *m, uint32_t li, const char *op,
				 const char *role, int32_t t, uint8_t dtype, fqt_tensor *out,
				 fqt_error *err)
{
	if (t < 0 || t >= (int32_t)m->tensor_count) {
		FAIL("layer %u %s: %s tensor %d out of range", (unsigned)li, op, role, (int)t);
	}
	fqt_decode_tensor(m, (uint32_t)t, out);
	if (out->dtype != dtype || out->data == NULL) {
		FAIL("layer %u %s: %s tensor %d must be a constant %s tensor", (unsigned)li, op,
		     role, (int)t, dtype == FQT_DTYPE_INT8 ? "int8" : "int32");
	}
	return FQT_OK;
}

static fqt_status check_requant_arrays(const fqt_model *m, uint32_t li, const char *op,
				       const fqt_layer *l, uint32_t expected_a,
				       uint32_t expected_b, int min_shift, int max_shift,
				       fqt_error *err)
{
	const uint8_t *r = m->layer_table + (size_t)li * FQT_BLOB_LAYER_RECORD_SIZE;
	if (l->channel_count != expected_a && l->channel_count != expected_b) {
		if (expected_a == expected_b) {
			FAIL("layer %u %s: channel_count %u, expected %u", (unsigned)li, op,
			     (unsigned)l->channel_count, (unsigned)expected_a);
		}
		FAIL("layer %u %s: channel_count %u, expected %u or %u", (unsigned)li, op,
		     (unsigned)l->channel_count, (unsigned)expected_a, (unsigned)expected_b);
	}
	if (l->channel_count == 0u) {
		return FQT_OK;
	}
	const uint32_t m_off = fqt_read_u32(r + LR_MULTIPLIER_OFFSET);
	const uint32_t s_off = fqt_read_u32(r + LR_SHIFT_OFFSET);
	if (!fqt_validate_array_in_data(m, m_off, l->channel_count, 4u)) {
		FAIL("layer %u %s: multiplier_offset %u out of bounds or misaligned", (unsigned)li,
		     op, (unsigned)m_off);
	}
	if (!fqt_validate_array_in_data(m, s_off, l->channel_count, 4u)) {
		FAIL("layer %u %s: shift_offset %u out of bounds or misaligned", (unsigned)li, op,
		     (unsigned)s_off);
	}
	for (uint32_t c = 0; c < l->channel_count; ++c) {
		if (l->multiplier[c] < 0) {
			FAIL("layer %u %s: multiplier[%u] = %d is negative", (unsigned)li, op,
			     (unsigned)c, (int)l->multiplier[c]);
		}
		if (l->shift[c] < min_shift || l->shift[c] > max_shift) {
			FAIL("layer %u %s: shift[%u] = %d outside [%d, %d]", (unsigned)li, op,
			     (unsigned)c, (int)l->shift[c], min_shift, max_shift);
		}
	}
	return FQT_OK;
}

/* Output height/width and top/left padding against TFLM's formulas. */
static fqt_status check_window(uint32_t li, const char *op, const fqt_layer *l,
			       const fqt_tensor *in, const fqt_tensor *out, int32_t filter_h,
			       int32_t filter_w, int32_t dilation_h, int32_t dilation_w,
			       fqt_error *err)
{
	if (l->stride_h < 1 || l->stride_w < 1) {
		FAIL("layer %u %s: stride %dx%d", (unsigned)li, op, (int)l->stride_h,
		     (int)l->stride_w);
	}
	if (dilation_h < 1 || dilation_w < 1) {
		FAIL("layer %u %s: dilation %dx%d", (unsigned)li, op, (int)dilation_h,
		     (int)dilation_w);
	}
	if (filter_h < 1 || filter_w < 1) {
		FAIL("layer %u %s: filter %dx%d", (unsigned)li, op, (int)filter_h, (int)filter_w);
	}
	const int64_t oh = expected_out_size(l->padding, in->shape[1], filter_h, l->stride_h,
					     dilation_h);
	const int64_t ow = expected_out_size(l->padding, in->shape[2], filter_w, l->stride_w,
					     dilation_w);
	if (oh != out->shape[1] || ow != out->shape[2]) {
		FAIL("layer %u %s: output %dx%d, input, filter, stride and padding give %dx%d",
		     (unsigned)li, op, (int)out->shape[1], (int)out->shape[2], (int)oh, (int)ow);
	}
	const int64_t ph = expected_padding(l->stride_h, dilation_h, in->shape[1], filter_h, oh);
	const int64_t pw = expected_padding(l->stride_w, dilation_w, in->shape[2], filter_w, ow);
	if (ph != l->pad_h || pw != l->pad_w) {
		FAIL("layer %u %s: pad %dx%d, expected %dx%d", (unsigned)li, op, (int)l->pad_h,
		     (int)l->pad_w, (int)ph, (int)pw);
	}
	return FQT_OK;
}

static bool same_shape(const fqt_tensor *a, const fqt_tensor *b)
{
	return a->rank == b->rank && a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1] &&
	       a->shape[2] == b->shape[2] && a->shape[3] == b->shape[3];
}

static fqt_status check_extras_zero(uint32_t li, const char *op, const fqt_layer *l,
				    int from, fqt_error *err)
{
	for (int k = from; k < 7; ++k) {
		if (l->extras[k] != 0) {
			FAIL("layer %u %s: extras[%d] = %d, must be 0", (unsigned)li, op, k,
			     (int)l->extras[k]);
		}
	}
	return FQT_OK;
}


static fqt_status check_weighted_layer(const fqt_model *m, uint32_t li, const char *op,
				       const fqt_layer *l, const fqt_tensor *in,
				       const fqt_tensor *out, fqt_error *err)
{
	fqt_tensor w;
	fqt_tensor bias;
	CHECK(check_constant(m, li, op, "weights", l->input[1], FQT_DTYPE_INT8, &w, err));
	for (uint32_t q = 0; q < w.quant_count; ++q) {
		if (w.zero_points[q] != 0) {
			FAIL("layer %u %s: weights zero_point[%u] = %d, must be 0 (symmetric)",
			     (unsigned)li, op, (unsigned)q, (int)w.zero_points[q]);
		}
	}
	int32_t out_channels;
	uint64_t accum_depth;
	if (l->op == FQT_OP_FULLY_CONNECTED) {
		if (w.rank != 2u || out->rank < 1u) {
			FAIL("layer %u %s: weights must be 2-D [out, in] (rank %u), output rank >= 1",
			     (unsigned)li, op, (unsigned)w.rank);
		}
		out_channels = w.shape[0];
		accum_depth = (uint64_t)w.shape[1];
		if (out->shape[out->rank - 1u] != out_channels) {
			FAIL("layer %u %s: output depth %d, weights have %d rows", (unsigned)li, op,
			     (int)out->shape[out->rank - 1u], (int)out_channels);
		}
		const uint64_t batches = out->element_count / (uint32_t)out_channels;
		if ((uint64_t)in->element_count != batches * accum_depth) {
			FAIL("layer %u %s: input has %u elements, %u batches x %u inputs expected",
			     (unsigned)li, op, (unsigned)in->element_count, (unsigned)batches,
			     (unsigned)accum_depth);
		}
		CHECK(check_requant_arrays(m, li, op, l, 1u, (uint32_t)out_channels, -31, 30, err));
	} else {
		if (in->rank != 4u || w.rank != 4u || out->rank != 4u) {
			FAIL("layer %u %s: input, weights and output must be 4-D (ranks %u, %u, %u)",
			     (unsigned)li, op, (unsigned)in->rank, (unsigned)w.rank,
			     (unsigned)out->rank);
		}
		if (in->shape[0] != out->shape[0]) {
			FAIL("layer %u %s: batch %d in, %d out", (unsigned)li, op, (int)in->shape[0],
			     (int)out->shape[0]);
		}
		out_channels = out->shape[3];
		if (l->op == FQT_OP_CONV_2D) {
			if (w.shape[0] != out_channels || w.shape[3] != in->shape[3]) {
				FAIL("layer %u %s: weights [%d,%d,%d,%d] do not map %d to %d channels",
				     (unsigned)li, op, (int)w.shape[0], (int)w.shape[1],
				     (int)w.shape[2], (int)w.shape[3], (int)in->shape[3],
				     (int)out_channels);
			}
			accum_depth = (uint64_t)w.shape[1] * (uint64_t)w.shape[2] * (uint64_t)w.shape[3];
		} else {
			/* The depth multiplier is out/in channels (docs/integer-semantics.md), as
			 * TFLite derives it; the record's field may hold it or 1 (not filled in). */
			const int32_t depth_multiplier = out_channels / in->shape[3];
			if (w.shape[0] != 1 || w.shape[3] != out_channels ||
			    out_channels % in->shape[3] != 0 ||
			    (l->depth_multiplier != depth_multiplier && l->depth_multiplier != 1)) {
				FAIL("layer %u %s: weights [%d,%d,%d,%d], depth_multiplier %d do not map "
				     "%d to %d channels",
				     (unsigned)li, op, (int)w.shape[0], (int)w.shape[1],
				     (int)w.shape[2], (int)w.shape[3], (int)l->depth_multiplier,
				     (int)in->shape[3], (int)out_channels);
			}
			accum_depth = (uint64_t)w.shape[1] * (uint64_t)w.shape[2];
		}
		CHECK(check_window(li, op, l, in, out, w.shape[1], w.shape[2], l->dilation_h,
				   l->dilation_w, err));
		CHECK(check_requant_arrays(m, li, op, l, (uint32_t)out_channels,
					   (uint32_t)out_channels, -31, 30, err));
	}
	if (accum_depth > FQT_MAX_ACCUM_DEPTH) {
		fqt_error_format(err, "layer %u %s: %u products per output exceed %u", (unsigned)li,
				 op, (unsigned)accum_depth, (unsigned)FQT_MAX_ACCUM_DEPTH);
		return FQT_ERR_UNSUPPORTED;
	}
	if (l->input[2] != -1) {
		CHECK(check_constant(m, li, op, "bias", l->input[2], FQT_DTYPE_INT32, &bias, err));
		if (bias.element_count != (uint32_t)out_channels) {
			FAIL("layer %u %s: bias has %u elements for %d output channels", (unsigned)li,
			     op, (unsigned)bias.element_count, (int)out_channels);
		}
	}
	return check_extras_zero(li, op, l, 0, err);
}

fqt_status fqt_validate_layer(const fqt_model *m, uint32_t li, fqt_error *err)
{
	const uint8_t *r = m->layer_table + (size_t)li * FQT_BLOB_LAYER_RECORD_SIZE;
	fqt_layer l;
	fqt_decode_layer(m, li, &l);
	if (l.op < FQT_OP_CONV_2D || l.op > FQT_OP_SOFTMAX) {
		FAIL("layer %u: op code %u unknown", (unsigned)li, (unsigned)l.op);
	}
	const char *op = op_names[l.op];
	if (l.activation != FQT_ACTIVATION_NONE && l.activation != FQT_ACTIVATION_RELU &&
	    l.activation != FQT_ACTIVATION_RELU6) {
		FAIL("layer %u %s: activation %u unknown", (unsigned)li, op, (unsigned)l.activation);
	}
	if (l.padding != FQT_PADDING_SAME && l.padding != FQT_PADDING_VALID) {
		FAIL("layer %u %s: padding %u unknown", (unsigned)li, op, (unsigned)l.padding);
	}
	if ((l.flags & ~FQT_LAYER_FLAG_TRAINABLE) != 0u) {
		FAIL("layer %u %s: unknown flags 0x%x", (unsigned)li, op, (unsigned)l.flags);
	}
	if (fqt_read_i16(r + LR_RESERVED) != 0) {
		FAIL("layer %u %s: reserved field not 0", (unsigned)li, op);
	}
	if (l.act_min < -128 || l.act_max > 127 || l.act_min > l.act_max) {
		FAIL("layer %u %s: act_min %d, act_max %d not an int8 range", (unsigned)li, op,
		     (int)l.act_min, (int)l.act_max);
	}

	/* The output: a fresh int8 activation tensor, written once. */
	if (l.output < 0 || l.output >= (int32_t)m->tensor_count) {
		FAIL("layer %u %s: output tensor %d out of range", (unsigned)li, op, (int)l.output);
	}
	fqt_tensor out;
	fqt_decode_tensor(m, (uint32_t)l.output, &out);
	if (out.dtype != FQT_DTYPE_INT8 || out.data != NULL) {
		FAIL("layer %u %s: output tensor %d must be a non-constant int8 tensor", (unsigned)li,
		     op, (int)l.output);
	}
	if (l.output == (int32_t)m->input_tensor || fqt_validate_produced_before(m, l.output, li)) {
		FAIL("layer %u %s: output tensor %d is already written (model input or an earlier "
		     "layer)",
		     (unsigned)li, op, (int)l.output);
	}
	if (out.quant_count != 1u) {
		FAIL("layer %u %s: output tensor %d is quantized per channel", (unsigned)li, op,
		     (int)l.output);
	}

	/* Operand count per op; unused slots are -1. */
	const bool weighted = l.op == FQT_OP_CONV_2D || l.op == FQT_OP_DEPTHWISE_CONV_2D ||
			      l.op == FQT_OP_FULLY_CONNECTED;
	const int used = weighted ? 3 : (l.op == FQT_OP_ADD ? 2 : 1);
	for (int k = used; k < 3; ++k) {
		if (l.input[k] != -1) {
			FAIL("layer %u %s: input%d = %d, must be -1", (unsigned)li, op, k,
			     (int)l.input[k]);
		}
	}
	fqt_tensor in;
	CHECK(check_activation_input(m, li, op, "input", l.input[0], &in, err));
	if (in.quant_count != 1u) {
		FAIL("layer %u %s: input tensor %d is quantized per channel", (unsigned)li, op,
		     (int)l.input[0]);
	}

	switch (l.op) {
	case FQT_OP_CONV_2D:
	case FQT_OP_DEPTHWISE_CONV_2D:
	case FQT_OP_FULLY_CONNECTED:
		return check_weighted_layer(m, li, op, &l, &in, &out, err);
	case FQT_OP_AVERAGE_POOL_2D:
	case FQT_OP_MAX_POOL_2D:
		if (in.rank != 4u || out.rank != 4u || in.shape[0] != out.shape[0] ||
		    in.shape[3] != out.shape[3]) {
			FAIL("layer %u %s: needs 4-D input and output with the same batch and "
			     "channels",
			     (unsigned)li, op);
		}
		CHECK(check_window(li, op, &l, &in, &out, l.filter_h, l.filter_w, 1, 1, err));
		if ((int64_t)l.filter_h * l.filter_w > FQT_MAX_ACCUM_DEPTH) {
			fqt_error_format(err, "layer %u %s: filter %dx%d too large", (unsigned)li, op,
					 (int)l.filter_h, (int)l.filter_w);
			return FQT_ERR_UNSUPPORTED;
		}
		CHECK(check_requant_arrays(m, li, op, &l, 0u, 0u, 0, 0, err));
		return check_extras_zero(li, op, &l, 0, err);
	case FQT_OP_RESHAPE:
		if (in.element_count != out.element_count) {
			FAIL("layer %u %s: %u elements in, %u out", (unsigned)li, op,
			     (unsigned)in.element_count, (unsigned)out.element_count);
		}
		CHECK(check_requant_arrays(m, li, op, &l, 0u, 0u, 0, 0, err));
		return check_extras_zero(li, op, &l, 0, err);
	case FQT_OP_ADD: {
		fqt_tensor in2;
		CHECK(check_activation_input(m, li, op, "input1", l.input[1], &in2, err));
		if (!same_shape(&in, &in2) || !same_shape(&in, &out)) {
			FAIL("layer %u %s: inputs and output must have the same shape", (unsigned)li,
			     op);
		}
		if (in2.quant_count != 1u) {
			FAIL("layer %u %s: input1 tensor %d is quantized per channel", (unsigned)li,
			     op, (int)l.input[1]);
		}
		CHECK(check_requant_arrays(m, li, op, &l, 1u, 1u, -31, 0, err));
		if (l.extras[0] < 0 || l.extras[0] > 30) {
			FAIL("layer %u %s: left_shift %d outside [0, 30]", (unsigned)li, op,
			     (int)l.extras[0]);
		}
		for (int k = 1; k <= 3; k += 2) {
			if (l.extras[k] < 0 || l.extras[k + 1] < -31 || l.extras[k + 1] > 0) {
				FAIL("layer %u %s: input%d multiplier %d / shift %d out of range",
				     (unsigned)li, op, (k + 1) / 2, (int)l.extras[k],
				     (int)l.extras[k + 1]);
			}
		}
		return check_extras_zero(li, op, &l, 5, err);
	}
	case FQT_OP_SOFTMAX:
	default: {
		const int32_t depth = in.rank == 0u ? 1 : in.shape[in.rank - 1u];
		if (in.element_count != out.element_count || out.rank != in.rank ||
		    (in.rank > 0u && out.shape[out.rank - 1u] != depth)) {
			FAIL("layer %u %s: input and output shapes differ", (unsigned)li, op);
		}
		if (depth > FQT_SOFTMAX_MAX_DEPTH) {
			fqt_error_format(err, "layer %u %s: depth %d exceeds %u", (unsigned)li, op,
					 (int)depth, (unsigned)FQT_SOFTMAX_MAX_DEPTH);
			return FQT_ERR_UNSUPPORTED;
		}
		CHECK(check_requant_arrays(m, li, op, &l, 0u, 0u, 0, 0, err));
		if (l.extras[0] < 0 || l.extras[1] < 0 || l.extras[1] > 31 || l.extras[2] > 0) {
			FAIL("layer %u %s: input_multiplier %d, input_left_shift %d, diff_min %d out "
			     "of range",
			     (unsigned)li, op, (int)l.extras[0], (int)l.extras[1], (int)l.extras[2]);
		}
		return check_extras_zero(li, op, &l, 3, err);
	}
	}
}

