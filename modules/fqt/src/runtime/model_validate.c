/*
 * fqt_model_load(): validate a model blob (docs/blob-format.md) completely before any of
 * it is used, so that a corrupt or hostile blob is rejected with a one-line reason and
 * can never make the engine read or write out of bounds.
 *
 * Checks, in order: the header (magic, version, sizes, CRC, table bounds), every tensor
 * record (dtype, rank, shape, quantization arrays, constant data), every layer record
 * (codes, tensor indices and their roles, execution order, per-op shape consistency,
 * requantization arrays and their ranges), then the memory plan.
 */
#include <stdbool.h>
#include <string.h>

#include "byte_order.h"
#include "error_message.h"
#include "fqt/memory_plan.h"
#include "fqt/model.h"
#include "model_decode.h"
#include "model_plan.h"

#define FAIL(...)                                       \
	do {                                            \
		fqt_error_format(err, __VA_ARGS__);     \
		return FQT_ERR_BLOB_FORMAT;             \
	} while (0)

/* Header field offsets. */
enum {
	HDR_MAGIC = 0,
	HDR_VERSION_MAJOR = 4,
	HDR_VERSION_MINOR = 6,
	HDR_TOTAL_SIZE = 8,
	HDR_CRC32 = 12,
	HDR_HEADER_SIZE = 16,
	HDR_TENSOR_COUNT = 18,
	HDR_LAYER_COUNT = 20,
	HDR_TENSOR_RECORD_SIZE = 22,
	HDR_LAYER_RECORD_SIZE = 24,
	HDR_INPUT_TENSOR = 26,
	HDR_OUTPUT_TENSOR = 28,
	HDR_FLAGS = 30,
	HDR_TENSORS_OFFSET = 32,
	HDR_LAYERS_OFFSET = 36,
	HDR_DATA_OFFSET = 40,
	HDR_DATA_SIZE = 44,
	HDR_NAME = 48,
};

/* Tensor and layer record field offsets: model.h. */
enum {
	TR_DTYPE = FQT_TREC_DTYPE,
	TR_RANK = FQT_TREC_RANK,
	TR_FLAGS = FQT_TREC_FLAGS,
	TR_QUANT_AXIS = FQT_TREC_QUANT_AXIS,
	TR_SHAPE = FQT_TREC_SHAPE,
	TR_QUANT_COUNT = FQT_TREC_QUANT_COUNT,
	TR_SCALE_OFFSET = FQT_TREC_SCALE_OFFSET,
	TR_ZERO_POINT_OFFSET = FQT_TREC_ZERO_POINT_OFFSET,
	TR_DATA_OFFSET = FQT_TREC_DATA_OFFSET,
	TR_DATA_SIZE = FQT_TREC_DATA_SIZE,
	TR_TFLITE_INDEX = FQT_TREC_TFLITE_INDEX,
	TR_RESERVED = FQT_TREC_RESERVED,
};

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

/* ---- checks ------------------------------------------------------------------------ */

/* An array of count elements of elem_size bytes at data offset off: aligned and inside
 * the data section. */
static bool array_in_data(const fqt_model *m, uint32_t off, uint32_t count, uint32_t elem_size)
{
	return off % 4u == 0u &&
	       (uint64_t)off + (uint64_t)count * elem_size <= (uint64_t)m->data_size;
}

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

static fqt_status check_header(fqt_model *m, const uint8_t *b, size_t size, fqt_error *err)
{
	if (size < FQT_BLOB_HEADER_SIZE) {
		FAIL("blob is %u bytes, shorter than the 64-byte header", (unsigned)size);
	}
	const uint32_t magic = fqt_read_u32(b + HDR_MAGIC);
	if (magic != FQT_BLOB_MAGIC) {
		FAIL("magic 0x%x, expected 0x%x (FQTB)", (unsigned)magic, (unsigned)FQT_BLOB_MAGIC);
	}
	const unsigned major = fqt_read_u16(b + HDR_VERSION_MAJOR);
	if (major != FQT_BLOB_VERSION_MAJOR) {
		FAIL("version_major %u, this engine reads 1", major);
	}
	const uint32_t total = fqt_read_u32(b + HDR_TOTAL_SIZE);
	if (total < FQT_BLOB_HEADER_SIZE || total > size) {
		FAIL("total_size %u, but the buffer holds %u bytes", (unsigned)total, (unsigned)size);
	}
	const uint32_t crc = fqt_read_u32(b + HDR_CRC32);
	const uint32_t actual_crc = fqt_crc32(0, b + 16, total - 16u);
	if (crc != actual_crc) {
		FAIL("crc32 0x%x, but the bytes give 0x%x", (unsigned)crc, (unsigned)actual_crc);
	}
	if (fqt_read_u16(b + HDR_HEADER_SIZE) != FQT_BLOB_HEADER_SIZE) {
		FAIL("header_size %u, expected 64", (unsigned)fqt_read_u16(b + HDR_HEADER_SIZE));
	}
	if (fqt_read_u16(b + HDR_TENSOR_RECORD_SIZE) != FQT_BLOB_TENSOR_RECORD_SIZE) {
		FAIL("tensor_record_size %u, expected 48",
		     (unsigned)fqt_read_u16(b + HDR_TENSOR_RECORD_SIZE));
	}
	if (fqt_read_u16(b + HDR_LAYER_RECORD_SIZE) != FQT_BLOB_LAYER_RECORD_SIZE) {
		FAIL("layer_record_size %u, expected 80",
		     (unsigned)fqt_read_u16(b + HDR_LAYER_RECORD_SIZE));
	}
	const unsigned n_tensors = fqt_read_u16(b + HDR_TENSOR_COUNT);
	const unsigned n_layers = fqt_read_u16(b + HDR_LAYER_COUNT);
	if (n_tensors == 0u) {
		FAIL("tensor_count 0");
	}
	if (n_layers == 0u) {
		FAIL("layer_count 0");
	}
	if (n_tensors > FQT_MAX_TENSORS) {
		fqt_error_format(err, "tensor_count %u exceeds FQT_MAX_TENSORS %u", n_tensors,
				 (unsigned)FQT_MAX_TENSORS);
		return FQT_ERR_UNSUPPORTED;
	}
	if (n_layers > FQT_MAX_LAYERS) {
		fqt_error_format(err, "layer_count %u exceeds FQT_MAX_LAYERS %u", n_layers,
				 (unsigned)FQT_MAX_LAYERS);
		return FQT_ERR_UNSUPPORTED;
	}
	const uint32_t t_off = fqt_read_u32(b + HDR_TENSORS_OFFSET);
	const uint32_t l_off = fqt_read_u32(b + HDR_LAYERS_OFFSET);
	const uint32_t d_off = fqt_read_u32(b + HDR_DATA_OFFSET);
	const uint32_t d_size = fqt_read_u32(b + HDR_DATA_SIZE);
	const uint64_t t_end = (uint64_t)t_off + (uint64_t)n_tensors * FQT_BLOB_TENSOR_RECORD_SIZE;
	const uint64_t l_end = (uint64_t)l_off + (uint64_t)n_layers * FQT_BLOB_LAYER_RECORD_SIZE;
	if (d_off % 4u != 0u || d_off < FQT_BLOB_HEADER_SIZE || (uint64_t)d_off + d_size != total) {
		FAIL("data_offset %u + data_size %u must be 4-aligned, after the header and end at "
		     "total_size %u",
		     (unsigned)d_off, (unsigned)d_size, (unsigned)total);
	}
	/* Tables: 4-aligned, between the header and the data section, not overlapping. */
	if (t_off % 4u != 0u || t_off < FQT_BLOB_HEADER_SIZE || t_end > d_off) {
		FAIL("tensors_offset %u (%u records) out of bounds or misaligned", (unsigned)t_off,
		     n_tensors);
	}
	if (l_off % 4u != 0u || l_off < FQT_BLOB_HEADER_SIZE || l_end > d_off) {
		FAIL("layers_offset %u (%u records) out of bounds or misaligned", (unsigned)l_off,
		     n_layers);
	}
	if (t_off < l_end && l_off < t_end) {
		FAIL("tensor table [%u, %u) overlaps layer table [%u, %u)", (unsigned)t_off,
		     (unsigned)t_end, (unsigned)l_off, (unsigned)l_end);
	}
	m->blob = b;
	m->blob_size = total;
	m->crc32 = crc;
	m->version_minor = fqt_read_u16(b + HDR_VERSION_MINOR);
	m->tensor_count = (uint16_t)n_tensors;
	m->layer_count = (uint16_t)n_layers;
	m->input_tensor = fqt_read_u16(b + HDR_INPUT_TENSOR);
	m->output_tensor = fqt_read_u16(b + HDR_OUTPUT_TENSOR);
	m->flags = fqt_read_u16(b + HDR_FLAGS);
	m->tensor_table = b + t_off;
	m->layer_table = b + l_off;
	m->data = b + d_off;
	m->data_size = d_size;
	memcpy(m->name, b + HDR_NAME, FQT_BLOB_NAME_SIZE);
	m->name[FQT_BLOB_NAME_SIZE] = '\0';
	return FQT_OK;
}

static fqt_status check_tensor(const fqt_model *m, uint32_t i, fqt_error *err)
{
	const uint8_t *r = m->tensor_table + (size_t)i * FQT_BLOB_TENSOR_RECORD_SIZE;
	const unsigned dtype = r[TR_DTYPE];
	const unsigned rank = r[TR_RANK];
	const unsigned flags = r[TR_FLAGS];
	const unsigned axis = r[TR_QUANT_AXIS];
	if (dtype != FQT_DTYPE_INT8 && dtype != FQT_DTYPE_INT32) {
		FAIL("tensor %u: dtype %u (1 int8, 2 int32)", (unsigned)i, dtype);
	}
	if (rank > 4u) {
		FAIL("tensor %u: rank %u > 4", (unsigned)i, rank);
	}
	if ((flags & ~FQT_TENSOR_FLAG_CONSTANT) != 0u) {
		FAIL("tensor %u: unknown flags 0x%x", (unsigned)i, flags);
	}
	if (fqt_read_u32(r + TR_RESERVED) != 0u) {
		FAIL("tensor %u: reserved field not 0", (unsigned)i);
	}
	const uint32_t elem_size = dtype == FQT_DTYPE_INT32 ? 4u : 1u;
	uint64_t bytes = elem_size;
	int32_t shape[4];
	for (unsigned k = 0; k < 4u; ++k) {
		shape[k] = fqt_read_i32(r + TR_SHAPE + 4u * k);
		if (shape[k] < 1 || (k >= rank && shape[k] != 1)) {
			FAIL("tensor %u: shape[%u] = %d (rank %u; must be >= 1, and 1 past the rank)",
			     (unsigned)i, k, (int)shape[k], rank);
		}
		bytes *= (uint64_t)shape[k];
		if (bytes > FQT_MAX_TENSOR_BYTES) {
			fqt_error_format(err, "tensor %u: more than FQT_MAX_TENSOR_BYTES (%u) bytes",
					 (unsigned)i, (unsigned)FQT_MAX_TENSOR_BYTES);
			return FQT_ERR_UNSUPPORTED;
		}
	}
	const uint32_t quant_count = fqt_read_u32(r + TR_QUANT_COUNT);
	if (quant_count != 1u &&
	    (axis >= rank || quant_count != (uint32_t)shape[axis])) {
		FAIL("tensor %u: quant_count %u does not match quant_axis %u of its shape",
		     (unsigned)i, (unsigned)quant_count, axis);
	}
	const uint32_t scale_off = fqt_read_u32(r + TR_SCALE_OFFSET);
	if (!array_in_data(m, scale_off, quant_count, 4u)) {
		FAIL("tensor %u: scale_offset %u out of bounds or misaligned", (unsigned)i,
		     (unsigned)scale_off);
	}
	const uint32_t zp_off = fqt_read_u32(r + TR_ZERO_POINT_OFFSET);
	if (!array_in_data(m, zp_off, quant_count, 4u)) {
		FAIL("tensor %u: zero_point_offset %u out of bounds or misaligned", (unsigned)i,
		     (unsigned)zp_off);
	}
	if (dtype == FQT_DTYPE_INT8) {
		const int32_t *zp = (const int32_t *)(const void *)(m->data + zp_off);
		for (uint32_t q = 0; q < quant_count; ++q) {
			if (zp[q] < -128 || zp[q] > 127) {
				FAIL("tensor %u: zero_point[%u] = %d outside int8", (unsigned)i,
				     (unsigned)q, (int)zp[q]);
			}
		}
	}
	const uint32_t data_off = fqt_read_u32(r + TR_DATA_OFFSET);
	const uint32_t data_size = fqt_read_u32(r + TR_DATA_SIZE);
	if ((flags & FQT_TENSOR_FLAG_CONSTANT) != 0u) {
		if (data_size != bytes) {
			FAIL("tensor %u: data_size %u, its shape needs %u", (unsigned)i,
			     (unsigned)data_size, (unsigned)bytes);
		}
		if (!array_in_data(m, data_off, data_size, 1u)) {
			FAIL("tensor %u: data_offset %u out of bounds or misaligned", (unsigned)i,
			     (unsigned)data_off);
		}
	} else if (data_size != 0u) {
		FAIL("tensor %u: data_size %u on a non-constant tensor", (unsigned)i,
		     (unsigned)data_size);
	}
	return FQT_OK;
}

/* Was tensor t written by one of layers [0, before)? */
static bool produced_before(const fqt_model *m, int32_t t, uint32_t before)
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
	if (t != (int32_t)m->input_tensor && !produced_before(m, t, li)) {
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
	if (!array_in_data(m, m_off, l->channel_count, 4u)) {
		FAIL("layer %u %s: multiplier_offset %u out of bounds or misaligned", (unsigned)li,
		     op, (unsigned)m_off);
	}
	if (!array_in_data(m, s_off, l->channel_count, 4u)) {
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

#define CHECK(call)                              \
	do {                                     \
		const fqt_status s_ = (call);    \
		if (s_ != FQT_OK) {              \
			return s_;               \
		}                                \
	} while (0)

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

static fqt_status check_layer(const fqt_model *m, uint32_t li, fqt_error *err)
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
	if (l.output == (int32_t)m->input_tensor || produced_before(m, l.output, li)) {
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

static fqt_status load(fqt_model *m, const void *blob, size_t size, fqt_error *err)
{
	CHECK(check_header(m, (const uint8_t *)blob, size, err));
	for (uint32_t t = 0; t < m->tensor_count; ++t) {
		CHECK(check_tensor(m, t, err));
	}
	fqt_tensor io;
	for (int k = 0; k < 2; ++k) {
		const uint16_t t = k == 0 ? m->input_tensor : m->output_tensor;
		const char *what = k == 0 ? "input_tensor" : "output_tensor";
		if (t >= m->tensor_count) {
			FAIL("%s %u out of range (%u tensors)", what, (unsigned)t,
			     (unsigned)m->tensor_count);
		}
		fqt_decode_tensor(m, t, &io);
		if (io.dtype != FQT_DTYPE_INT8 || io.data != NULL || io.quant_count != 1u) {
			FAIL("%s %u must be a non-constant, per-tensor int8 tensor", what, (unsigned)t);
		}
	}
	for (uint32_t l = 0; l < m->layer_count; ++l) {
		CHECK(check_layer(m, l, err));
	}
	if (!produced_before(m, (int32_t)m->output_tensor, m->layer_count)) {
		FAIL("output_tensor %u is not written by any layer", (unsigned)m->output_tensor);
	}
	bool input_read = false;
	for (uint32_t l = 0; l < m->layer_count && !input_read; ++l) {
		fqt_layer layer;
		fqt_decode_layer(m, l, &layer);
		input_read = layer.input[0] == (int32_t)m->input_tensor ||
			     (layer.op == FQT_OP_ADD && layer.input[1] == (int32_t)m->input_tensor);
	}
	if (!input_read) {
		FAIL("input_tensor %u is not read by any layer", (unsigned)m->input_tensor);
	}

	size_t count = 0;
	CHECK(fqt_inference_buffers(m, m->inference_buffers, FQT_MAX_LAYERS + 1u, &count));
	m->buffer_count = (uint16_t)count;
	const fqt_status s = fqt_greedy_plan(m->inference_buffers, count, &m->inference_arena_size);
	if (s != FQT_OK) {
		fqt_error_format(err, "the inference arena exceeds 4 GiB");
		return s;
	}
	/* The kernels' scratch (kernels/forward_wrapper.h; CMSIS-NN's, or none) goes after the
	 * planned buffers, so the arena size query counts it. */
	m->scratch_size = fqt_model_scratch_size(m);
	if (m->scratch_size > 0u) {
		const uint64_t planned = ((uint64_t)m->inference_arena_size + 3u) & ~(uint64_t)3u;
		if (planned + m->scratch_size > UINT32_MAX) {
			fqt_error_format(err, "the inference arena exceeds 4 GiB");
			return FQT_ERR_UNSUPPORTED;
		}
		m->inference_arena_size = (uint32_t)(planned + m->scratch_size);
	}
	return FQT_OK;
}

fqt_status fqt_model_load(fqt_model *model, const void *blob, size_t size, fqt_error *err)
{
	if (err != NULL) {
		err->message[0] = '\0';
	}
	if (model == NULL || blob == NULL) {
		fqt_error_format(err, "model or blob is NULL");
		return FQT_ERR_ARGUMENT;
	}
	memset(model, 0, sizeof(*model));
	if (((uintptr_t)blob % 4u) != 0u) {
		fqt_error_format(err, "blob address is not 4-byte aligned");
		return FQT_ERR_ALIGNMENT;
	}
	/* Filled in place (the struct holds the plan: no second copy on the stack); cleared
	 * again on failure so that a rejected model cannot be used by accident. */
	const fqt_status s = load(model, blob, size, err);
	if (s != FQT_OK) {
		memset(model, 0, sizeof(*model));
	}
	return s;
}
