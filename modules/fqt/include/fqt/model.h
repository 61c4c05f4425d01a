/*
 * The model blob (docs/blob-format.md): load, validate, and read its tables.
 *
 * fqt_model_load() checks every field of the blob before anything uses it, then the
 * model refers to the blob in place (flash or RAM): weights, biases, multipliers and
 * zero points are read where they lie, so the blob must outlive the model and must be
 * 4-byte aligned. A blob that fails any check is rejected whole.
 */
#ifndef FQT_MODEL_H_
#define FQT_MODEL_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/config.h"
#include "fqt/memory_plan.h"
#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Blob layout constants (version 1). */
#define FQT_BLOB_MAGIC 0x42545146u /* "FQTB" little-endian */
#define FQT_BLOB_VERSION_MAJOR 1u
#define FQT_BLOB_HEADER_SIZE 64u
#define FQT_BLOB_TENSOR_RECORD_SIZE 48u
#define FQT_BLOB_LAYER_RECORD_SIZE 80u
#define FQT_BLOB_NAME_SIZE 16u

/* Field offsets inside a tensor record (docs/blob-format.md). Records lie 4-aligned in a
 * 4-aligned blob, so every 32-bit field is 4-aligned and every 16-bit field 2-aligned. */
enum {
	FQT_TREC_DTYPE = 0,
	FQT_TREC_RANK = 1,
	FQT_TREC_FLAGS = 2,
	FQT_TREC_QUANT_AXIS = 3,
	FQT_TREC_SHAPE = 4, /* i32[4] */
	FQT_TREC_QUANT_COUNT = 20,
	FQT_TREC_SCALE_OFFSET = 24,
	FQT_TREC_ZERO_POINT_OFFSET = 28,
	FQT_TREC_DATA_OFFSET = 32,
	FQT_TREC_DATA_SIZE = 36,
	FQT_TREC_TFLITE_INDEX = 40,
	FQT_TREC_RESERVED = 44,
};

/* Field offsets inside a layer record (docs/blob-format.md). */
enum {
	FQT_LREC_OP = 0,
	FQT_LREC_ACTIVATION = 1,
	FQT_LREC_PADDING = 2,
	FQT_LREC_FLAGS = 3,
	FQT_LREC_TENSORS = 4, /* i16 input0, input1, input2, output */
	FQT_LREC_STRIDE_H = 12,
	FQT_LREC_STRIDE_W = 14,
	FQT_LREC_FILTER_H = 16,
	FQT_LREC_FILTER_W = 18,
	FQT_LREC_DILATION_H = 20,
	FQT_LREC_DILATION_W = 22,
	FQT_LREC_DEPTH_MULTIPLIER = 24,
	FQT_LREC_PAD_H = 26,
	FQT_LREC_PAD_W = 28,
	FQT_LREC_RESERVED = 30,
	FQT_LREC_ACT_MIN = 32,
	FQT_LREC_ACT_MAX = 36,
	FQT_LREC_CHANNEL_COUNT = 40,
	FQT_LREC_MULTIPLIER_OFFSET = 44,
	FQT_LREC_SHIFT_OFFSET = 48,
	FQT_LREC_EXTRAS = 52, /* i32[7] */
};

#define FQT_MODEL_FLAG_FLOAT_INPUT 0x1u
#define FQT_MODEL_FLAG_FLOAT_OUTPUT 0x2u
#define FQT_TENSOR_FLAG_CONSTANT 0x1u
#define FQT_LAYER_FLAG_TRAINABLE 0x1u

/* Operator codes: the same numbers as the blob and scripts/fqt/ir.py OpType. */
typedef enum fqt_op {
	FQT_OP_CONV_2D = 1,
	FQT_OP_DEPTHWISE_CONV_2D = 2,
	FQT_OP_FULLY_CONNECTED = 3,
	FQT_OP_AVERAGE_POOL_2D = 4,
	FQT_OP_MAX_POOL_2D = 5,
	FQT_OP_RESHAPE = 6,
	FQT_OP_ADD = 7,
	FQT_OP_SOFTMAX = 8,
} fqt_op;

typedef enum fqt_dtype {
	FQT_DTYPE_INT8 = 1,
	FQT_DTYPE_INT32 = 2,
} fqt_dtype;

typedef enum fqt_activation {
	FQT_ACTIVATION_NONE = 0,
	FQT_ACTIVATION_RELU = 1,
	FQT_ACTIVATION_RELU6 = 3,
} fqt_activation;

typedef enum fqt_padding {
	FQT_PADDING_SAME = 0,
	FQT_PADDING_VALID = 1,
} fqt_padding;

/* Where fqt_model_load() writes why it rejected a blob, naming the failing field. */
typedef struct fqt_error {
	char message[FQT_ERROR_MESSAGE_SIZE];
} fqt_error;

/* One tensor record, decoded. Arrays point into the blob. */
typedef struct fqt_tensor {
	uint8_t dtype;      /* fqt_dtype */
	uint8_t rank;       /* 0..4; shape[] past rank is 1 */
	uint8_t flags;      /* FQT_TENSOR_FLAG_* */
	uint8_t quant_axis; /* channel axis when quant_count > 1 */
	int32_t shape[4];
	uint32_t element_count;
	uint32_t byte_size;
	uint32_t quant_count;
	const void *scales;          /* f32[quant_count]: for re-deriving multipliers after training */
	const int32_t *zero_points;  /* i32[quant_count] */
	const void *data;            /* constants only (int8 or int32, row-major); else NULL */
	int32_t tflite_index;
} fqt_tensor;

/* One layer record, decoded. Arrays point into the blob. */
typedef struct fqt_layer {
	uint8_t op;         /* fqt_op */
	uint8_t activation; /* fqt_activation, already folded into act_min/act_max */
	uint8_t padding;    /* fqt_padding */
	uint8_t flags;      /* FQT_LAYER_FLAG_* */
	int16_t input[3];   /* conv/dw/fc: input, weights, bias (-1: none); ADD: a, b */
	int16_t output;
	int16_t stride_h, stride_w;
	int16_t filter_h, filter_w; /* pools */
	int16_t dilation_h, dilation_w;
	int16_t depth_multiplier; /* depthwise: out/in channels, or 1 if the importer left it */
	int16_t pad_h, pad_w;
	int32_t act_min, act_max;
	uint32_t channel_count;     /* length of multiplier[] and shift[] */
	const int32_t *multiplier;  /* per output channel (or one) */
	const int32_t *shift;
	/* ADD: left_shift, input1_multiplier, input1_shift, input2_multiplier, input2_shift.
	 * SOFTMAX: input_multiplier, input_left_shift, diff_min. */
	int32_t extras[7];
} fqt_layer;

/* A loaded model. Fill it with fqt_model_load(); treat the fields as read-only. */
typedef struct fqt_model {
	const uint8_t *blob;
	uint32_t blob_size;
	const uint8_t *tensor_table;
	const uint8_t *layer_table;
	const uint8_t *data;
	uint32_t data_size;
	uint32_t crc32;
	uint16_t version_minor;
	uint16_t tensor_count;
	uint16_t layer_count;
	uint16_t input_tensor;
	uint16_t output_tensor;
	uint16_t flags; /* FQT_MODEL_FLAG_* */
	char name[FQT_BLOB_NAME_SIZE + 1];
	/* The inference memory plan (same offsets as scripts/fqt/plan.py): buffer 0 is the
	 * model input, buffer l + 1 the output of layer l. */
	uint32_t inference_arena_size;
	/* Bytes at the end of the inference arena (included in inference_arena_size) that
	 * optional accelerated kernels use as scratch (CONFIG_FQT_CMSIS_NN); 0 otherwise. */
	uint32_t scratch_size;
	uint16_t buffer_count;
	fqt_plan_buffer inference_buffers[FQT_MAX_LAYERS + 1];
} fqt_model;

/*
 * Validate `blob` (`size` bytes, 4-byte aligned) and fill `model`. On failure returns
 * FQT_ERR_BLOB_FORMAT (or _ALIGNMENT/_UNSUPPORTED/_ARGUMENT), leaves `model` unusable and,
 * if `err` is not NULL, writes a one-line reason naming the failing field.
 */
fqt_status fqt_model_load(fqt_model *model, const void *blob, size_t size, fqt_error *err);

/* Bytes of arena fqt_session_create() needs for inference. */
size_t fqt_model_inference_arena_size(const fqt_model *model);

/* Decode tensor/layer `index` of a loaded model. */
fqt_status fqt_model_tensor(const fqt_model *model, uint32_t index, fqt_tensor *tensor);
fqt_status fqt_model_layer(const fqt_model *model, uint32_t index, fqt_layer *layer);

/* Forward multiply-accumulates of layer `index` (pools, add, softmax, reshape: 0),
 * counted as scripts/fqt/plan.py layer_macs does. */
uint64_t fqt_model_layer_macs(const fqt_model *model, uint32_t index);

/* zlib-compatible CRC-32 (IEEE 802.3, reflected 0xEDB88320): pass crc = 0 to start. */
uint32_t fqt_crc32(uint32_t crc, const void *data, size_t size);

/* sizeof(fqt_model) of this build, for bindings that allocate it opaquely. */
size_t fqt_model_struct_size(void);

#ifdef __cplusplus
}
#endif

#endif /* FQT_MODEL_H_ */
