/*
 * fqt_model_load(): validate a model blob (docs/blob-format.md) completely before any of
 * it is used, so that a corrupt or hostile blob is rejected with a one-line reason and
 * can never make the engine read or write out of bounds.
 *
 * Checks, in order: the header (magic, version, sizes, CRC, table bounds), every tensor
 * record (dtype, rank, shape, quantization arrays, constant data), every layer record
 * (runtime/layer_validate.c), then the memory plan.
 */
#include "model_validate.h"

#include <stdbool.h>
#include <string.h>

#include "byte_order.h"
#include "error_message.h"
#include "fqt/memory_plan.h"
#include "fqt/model.h"
#include "model_decode.h"
#include "model_plan.h"

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

/* ---- checks ------------------------------------------------------------------------ */

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
	if (!fqt_validate_array_in_data(m, scale_off, quant_count, 4u)) {
		FAIL("tensor %u: scale_offset %u out of bounds or misaligned", (unsigned)i,
		     (unsigned)scale_off);
	}
	const uint32_t zp_off = fqt_read_u32(r + TR_ZERO_POINT_OFFSET);
	if (!fqt_validate_array_in_data(m, zp_off, quant_count, 4u)) {
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
		if (!fqt_validate_array_in_data(m, data_off, data_size, 1u)) {
			FAIL("tensor %u: data_offset %u out of bounds or misaligned", (unsigned)i,
			     (unsigned)data_off);
		}
	} else if (data_size != 0u) {
		FAIL("tensor %u: data_size %u on a non-constant tensor", (unsigned)i,
		     (unsigned)data_size);
	}
	return FQT_OK;
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
		CHECK(fqt_validate_layer(m, l, err));
	}
	if (!fqt_validate_produced_before(m, (int32_t)m->output_tensor, m->layer_count)) {
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
