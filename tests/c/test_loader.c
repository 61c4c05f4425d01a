/*
 * fqt_model_load: accepts a small hand-built blob (FULLY_CONNECTED + SOFTMAX), runs it to
 * hand-worked outputs, and rejects each kind of corruption with a message naming the
 * field. Corruptions past the CRC check are made with the CRC recomputed, so the deeper
 * checks are the ones that fire. Finally every byte of the tables is flipped (CRC fixed)
 * and the loader must answer without crashing (run under -DFQT_SANITIZE=ON to be sure).
 */
#include <stdlib.h>

#include "fqt/fqt.h"
#include "fqt_test.h"

enum { N_TENSORS = 5, N_LAYERS = 2, CAPACITY = 1024 };
#define TENSOR(i) (64u + 48u * (i))
#define LAYER(j) (64u + 48u * N_TENSORS + 80u * (j))
#define DATA_OFFSET (64u + 48u * N_TENSORS + 80u * N_LAYERS)

typedef struct blob_buffer {
	_Alignas(16) uint8_t bytes[CAPACITY];
	size_t size;
} blob_buffer;

static blob_buffer base;

static void put_u16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; ++k) {
		p[k] = (uint8_t)(v >> (8 * k));
	}
}

static uint32_t add_array(blob_buffer *b, const void *data, size_t size)
{
	while ((b->size - DATA_OFFSET) % 4u != 0u) {
		b->bytes[b->size++] = 0;
	}
	const uint32_t off = (uint32_t)(b->size - DATA_OFFSET);
	memcpy(b->bytes + b->size, data, size);
	b->size += size;
	return off;
}

static void fix_crc(blob_buffer *b)
{
	put_u32(b->bytes + 12, fqt_crc32(0, b->bytes + 16, b->size - 16u));
}

static void put_tensor(blob_buffer *b, uint32_t i, uint8_t dtype, uint8_t rank, const int32_t *shape,
		       const void *data, uint32_t data_size, int32_t zero_point)
{
	uint8_t *r = b->bytes + TENSOR(i);
	const float scale = 0.25f;
	r[0] = dtype;
	r[1] = rank;
	r[2] = data != NULL ? 1u : 0u;
	r[3] = 0;
	for (uint32_t k = 0; k < 4u; ++k) {
		put_u32(r + 4 + 4 * k, (uint32_t)(k < rank ? shape[k] : 1));
	}
	put_u32(r + 20, 1);
	put_u32(r + 24, add_array(b, &scale, 4));
	put_u32(r + 28, add_array(b, &zero_point, 4));
	put_u32(r + 32, data != NULL ? add_array(b, data, data_size) : 0u);
	put_u32(r + 36, data != NULL ? data_size : 0u);
	put_u32(r + 40, i);
	put_u32(r + 44, 0);
}

static void put_layer(blob_buffer *b, uint32_t j, uint8_t op, int16_t in0, int16_t in1,
		      int16_t in2, int16_t out)
{
	uint8_t *r = b->bytes + LAYER(j);
	memset(r, 0, 80);
	r[0] = op;
	r[2] = 1; /* VALID */
	put_u16(r + 4, (uint16_t)in0);
	put_u16(r + 6, (uint16_t)in1);
	put_u16(r + 8, (uint16_t)in2);
	put_u16(r + 10, (uint16_t)out);
	for (int k = 0; k < 7; ++k) {
		put_u16(r + 12 + 2 * k, 1); /* strides, filter, dilation, depth multiplier */
	}
	put_u16(r + 26, 0); /* pad_h */
	put_u32(r + 32, (uint32_t)-128);
	put_u32(r + 36, 127);
}

/* input [1,4] -> FC (weights [3,4], bias [3], multiplier 0.5) -> [1,3] -> SOFTMAX -> [1,3] */
static void build_base(void)
{
	blob_buffer *b = &base;
	memset(b, 0, sizeof(*b));
	b->size = DATA_OFFSET;
	const int32_t in_shape[2] = {1, 4};
	const int32_t w_shape[2] = {3, 4};
	const int32_t bias_shape[1] = {3};
	const int32_t out_shape[2] = {1, 3};
	const int8_t weights[12] = {1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1};
	const int32_t bias[3] = {0, 10, -4};
	put_tensor(b, 0, 1, 2, in_shape, NULL, 0, 0);
	put_tensor(b, 1, 1, 2, w_shape, weights, sizeof(weights), 0);
	put_tensor(b, 2, 2, 1, bias_shape, bias, sizeof(bias), 0);
	put_tensor(b, 3, 1, 2, out_shape, NULL, 0, 0);
	put_tensor(b, 4, 1, 2, out_shape, NULL, 0, -128);
	put_layer(b, 0, FQT_OP_FULLY_CONNECTED, 0, 1, 2, 3);
	const int32_t multiplier = 1 << 30;
	const int32_t shift = 0;
	put_u32(b->bytes + LAYER(0) + 40, 1);
	put_u32(b->bytes + LAYER(0) + 44, add_array(b, &multiplier, 4));
	put_u32(b->bytes + LAYER(0) + 48, add_array(b, &shift, 4));
	put_layer(b, 1, FQT_OP_SOFTMAX, 3, -1, -1, 4);
	put_u32(b->bytes + LAYER(1) + 52, 1u << 30); /* input_multiplier: 0.5 */
	put_u32(b->bytes + LAYER(1) + 56, 22);       /* input_left_shift */
	put_u32(b->bytes + LAYER(1) + 60, (uint32_t)-1000); /* diff_min */
	while (b->size % 4u != 0u) {
		b->bytes[b->size++] = 0;
	}
	uint8_t *h = b->bytes;
	put_u32(h + 0, FQT_BLOB_MAGIC);
	put_u16(h + 4, 1);
	put_u16(h + 6, 0);
	put_u32(h + 8, (uint32_t)b->size);
	put_u16(h + 16, 64);
	put_u16(h + 18, N_TENSORS);
	put_u16(h + 20, N_LAYERS);
	put_u16(h + 22, 48);
	put_u16(h + 24, 80);
	put_u16(h + 26, 0);
	put_u16(h + 28, 4);
	put_u16(h + 30, 0);
	put_u32(h + 32, TENSOR(0));
	put_u32(h + 36, LAYER(0));
	put_u32(h + 40, DATA_OFFSET);
	put_u32(h + 44, (uint32_t)(b->size - DATA_OFFSET));
	memcpy(h + 48, "loader_test", 11);
	fix_crc(b);
}

static fqt_model model;

static void test_valid_blob_runs(void)
{
	fqt_error err;
	CHECK_EQ_INT(fqt_model_load(&model, base.bytes, base.size, &err), FQT_OK);
	CHECK(strcmp(model.name, "loader_test") == 0);
	CHECK_EQ_INT(model.layer_count, 2);
	/* Buffers: input 4 bytes (steps 0..0), fc out 3 -> 4 (0..1), softmax out 3 -> 4
	 * (1..1): the input goes first at 0, the fc output after it at 4, the softmax output
	 * (not live with the input) back at 0. */
	CHECK_EQ_INT(fqt_model_inference_arena_size(&model), 8);
	CHECK_EQ_INT(model.inference_buffers[0].offset, 0);
	CHECK_EQ_INT(model.inference_buffers[1].offset, 4);
	CHECK_EQ_INT(model.inference_buffers[2].offset, 0);

	_Alignas(4) uint8_t arena[8];
	fqt_session s;
	size_t shortfall = 99;
	CHECK_EQ_INT(fqt_session_create(&s, &model, arena, 5, &shortfall), FQT_ERR_ARENA_TOO_SMALL);
	CHECK_EQ_INT(shortfall, 3);
	CHECK_EQ_INT(fqt_session_create(&s, &model, arena + 1, 7, &shortfall), FQT_ERR_ARENA_TOO_SMALL);
	CHECK_EQ_INT(fqt_session_create(&s, &model, arena, sizeof(arena), &shortfall), FQT_OK);
	CHECK_EQ_INT(shortfall, 0);
	const int8_t x[4] = {1, 2, 3, 4};
	CHECK_EQ_INT(fqt_session_set_input(&s, x, 3), FQT_ERR_ARGUMENT);
	CHECK_EQ_INT(fqt_session_set_input(&s, x, 4), FQT_OK);
	/* FC: acc = [1, 2 + 10, 10 - 4] * 0.5 = [0.5 -> 1, 6, 3]. */
	CHECK_EQ_INT(fqt_session_run_layers(&s, 0, 1), FQT_OK);
	const void *data = NULL;
	size_t size = 0;
	CHECK_EQ_INT(fqt_session_tensor(&s, 3, &data, &size), FQT_OK);
	CHECK_EQ_INT(size, 3);
	const int8_t *fc = (const int8_t *)data;
	CHECK_EQ_INT(fc[0], 1);
	CHECK_EQ_INT(fc[1], 6);
	CHECK_EQ_INT(fc[2], 3);
	const int8_t *y = NULL;
	CHECK_EQ_INT(fqt_session_output(&s, &y, &size), FQT_ERR_STATE);
	CHECK_EQ_INT(fqt_session_run_layers(&s, 1, 1), FQT_OK);
	/* Softmax of [1, 6, 3] / 32 (scale 1/32): 256 * p - 128 = [-48.8, -35.4, -43.7];
	 * TFLM's fixed point gives [-49, -35, -44]. */
	CHECK_EQ_INT(fqt_session_output(&s, &y, &size), FQT_OK);
	CHECK_EQ_INT(size, 3);
	CHECK_EQ_INT(y[0], -49);
	CHECK_EQ_INT(y[1], -35);
	CHECK_EQ_INT(y[2], -44);
	/* The input buffer was reused by the softmax output: reading it is refused, and so
	 * is running again before a new input. */
	CHECK_EQ_INT(fqt_session_tensor(&s, 0, &data, &size), FQT_ERR_STATE);
	CHECK_EQ_INT(fqt_session_run(&s), FQT_ERR_STATE);
	CHECK_EQ_INT(fqt_session_tensor(&s, 1, &data, &size), FQT_OK); /* a constant */
	CHECK_EQ_INT(size, 12);
	CHECK_EQ_INT(fqt_session_macs(&s), 12);
	CHECK_EQ_INT(fqt_session_set_input(&s, x, 4), FQT_OK);
	CHECK_EQ_INT(fqt_session_run(&s), FQT_OK);
	CHECK_EQ_INT(fqt_session_macs(&s), 24);
	CHECK_EQ_INT(s.inferences, 2);
}

/* Load a corrupted copy; expect `status` and a message containing `needle`. */
static void expect_reject(const char *what, const blob_buffer *b, size_t size, fqt_status status,
			  const char *needle)
{
	fqt_error err;
	const fqt_status got = fqt_model_load(&model, b->bytes, size, &err);
	if (got != status) {
		fprintf(stderr, "corruption '%s': status %d (%s), expected %d\n", what, (int)got,
			err.message, (int)status);
	}
	CHECK_EQ_INT(got, status);
	CHECK_CONTAINS(err.message, needle);
	CHECK_EQ_INT(model.layer_count, 0); /* a rejected model is left unusable */
}

typedef struct corruption {
	const char *what;
	uint32_t offset;
	uint32_t value;
	int width; /* 1, 2 or 4 bytes */
	fqt_status status;
	const char *needle;
} corruption;

static const corruption corruptions[] = {
	{"version", 4, 2, 2, FQT_ERR_BLOB_FORMAT, "version_major 2"},
	{"header_size", 16, 65, 2, FQT_ERR_BLOB_FORMAT, "header_size 65"},
	{"tensor count 0", 18, 0, 2, FQT_ERR_BLOB_FORMAT, "tensor_count 0"},
	{"layer count 0", 20, 0, 2, FQT_ERR_BLOB_FORMAT, "layer_count 0"},
	{"too many tensors", 18, 60000, 2, FQT_ERR_UNSUPPORTED, "FQT_MAX_TENSORS"},
	{"too many layers", 20, 1000, 2, FQT_ERR_UNSUPPORTED, "FQT_MAX_LAYERS"},
	{"more tensors than the table", 18, 9, 2, FQT_ERR_BLOB_FORMAT, "tensors_offset"},
	{"tensor record size", 22, 49, 2, FQT_ERR_BLOB_FORMAT, "tensor_record_size 49"},
	{"layer record size", 24, 81, 2, FQT_ERR_BLOB_FORMAT, "layer_record_size 81"},
	{"input index", 26, 9, 2, FQT_ERR_BLOB_FORMAT, "input_tensor 9 out of range"},
	{"input is a constant", 26, 1, 2, FQT_ERR_BLOB_FORMAT, "input_tensor 1"},
	{"output index", 28, 5, 2, FQT_ERR_BLOB_FORMAT, "output_tensor 5 out of range"},
	{"output never written", 28, 0, 2, FQT_ERR_BLOB_FORMAT, "output_tensor 0 is not written"},
	{"tensors offset misaligned", 32, 66, 4, FQT_ERR_BLOB_FORMAT, "tensors_offset 66"},
	{"tensors offset huge", 32, 0xFFFFFFF0u, 4, FQT_ERR_BLOB_FORMAT, "tensors_offset"},
	{"layers offset into data", 36, DATA_OFFSET, 4, FQT_ERR_BLOB_FORMAT, "layers_offset"},
	{"tables overlap", 36, TENSOR(1), 4, FQT_ERR_BLOB_FORMAT, "overlaps"},
	{"data offset", 40, DATA_OFFSET + 4, 4, FQT_ERR_BLOB_FORMAT, "data_offset"},
	{"data size", 44, 4, 4, FQT_ERR_BLOB_FORMAT, "data_size"},
	/* tensor records */
	{"dtype", TENSOR(3) + 0, 3, 1, FQT_ERR_BLOB_FORMAT, "tensor 3: dtype 3"},
	{"rank", TENSOR(3) + 1, 5, 1, FQT_ERR_BLOB_FORMAT, "tensor 3: rank 5"},
	{"tensor flags", TENSOR(3) + 2, 0x80, 1, FQT_ERR_BLOB_FORMAT, "tensor 3: unknown flags"},
	{"shape 0", TENSOR(3) + 8, 0, 4, FQT_ERR_BLOB_FORMAT, "tensor 3: shape[1] = 0"},
	{"shape negative", TENSOR(0) + 4, 0xFFFFFFFFu, 4, FQT_ERR_BLOB_FORMAT, "shape[0] = -1"},
	{"shape past rank", TENSOR(3) + 16, 2, 4, FQT_ERR_BLOB_FORMAT, "shape[3] = 2"},
	{"shape overflow", TENSOR(3) + 8, 0x7FFFFFFFu, 4, FQT_ERR_UNSUPPORTED,
	 "FQT_MAX_TENSOR_BYTES"},
	{"quant count", TENSOR(3) + 20, 3, 4, FQT_ERR_BLOB_FORMAT, "quant_count 3"},
	{"scale offset", TENSOR(3) + 24, 0x10000, 4, FQT_ERR_BLOB_FORMAT, "scale_offset"},
	{"zero point offset misaligned", TENSOR(3) + 28, 2, 4, FQT_ERR_BLOB_FORMAT,
	 "zero_point_offset 2"},
	{"data offset out of bounds", TENSOR(1) + 32, 0xFFFFFFFCu, 4, FQT_ERR_BLOB_FORMAT,
	 "tensor 1: data_offset"},
	{"data size", TENSOR(1) + 36, 11, 4, FQT_ERR_BLOB_FORMAT, "tensor 1: data_size 11"},
	{"data on activation", TENSOR(3) + 36, 4, 4, FQT_ERR_BLOB_FORMAT, "non-constant"},
	{"tensor reserved", TENSOR(2) + 44, 1, 4, FQT_ERR_BLOB_FORMAT, "tensor 2: reserved"},
	/* layer records */
	{"op code", LAYER(1) + 0, 9, 1, FQT_ERR_BLOB_FORMAT, "layer 1: op code 9"},
	{"op code 0", LAYER(0) + 0, 0, 1, FQT_ERR_BLOB_FORMAT, "layer 0: op code 0"},
	{"activation", LAYER(0) + 1, 2, 1, FQT_ERR_BLOB_FORMAT, "activation 2"},
	{"padding", LAYER(0) + 2, 7, 1, FQT_ERR_BLOB_FORMAT, "padding 7"},
	{"layer flags", LAYER(0) + 3, 4, 1, FQT_ERR_BLOB_FORMAT, "unknown flags"},
	{"input out of range", LAYER(0) + 4, 77, 2, FQT_ERR_BLOB_FORMAT, "input tensor 77"},
	{"input negative", LAYER(0) + 4, 0xFFFF, 2, FQT_ERR_BLOB_FORMAT, "input tensor -1"},
	{"weights are an activation", LAYER(0) + 6, 0, 2, FQT_ERR_BLOB_FORMAT,
	 "weights tensor 0 must be a constant int8"},
	{"bias is int8", LAYER(0) + 8, 1, 2, FQT_ERR_BLOB_FORMAT, "bias tensor 1 must be"},
	{"output out of range", LAYER(0) + 10, 5, 2, FQT_ERR_BLOB_FORMAT, "output tensor 5"},
	{"output is a constant", LAYER(0) + 10, 1, 2, FQT_ERR_BLOB_FORMAT, "output tensor 1"},
	{"output is the input", LAYER(0) + 10, 0, 2, FQT_ERR_BLOB_FORMAT, "already written"},
	{"output written twice", LAYER(1) + 10, 3, 2, FQT_ERR_BLOB_FORMAT, "already written"},
	{"read before write", LAYER(1) + 4, 4, 2, FQT_ERR_BLOB_FORMAT, "before any layer"},
	{"unused slot", LAYER(1) + 6, 2, 2, FQT_ERR_BLOB_FORMAT, "input1 = 2, must be -1"},
	{"layer reserved", LAYER(0) + 30, 1, 2, FQT_ERR_BLOB_FORMAT, "reserved"},
	{"act range", LAYER(0) + 32, (uint32_t)-200, 4, FQT_ERR_BLOB_FORMAT, "act_min -200"},
	{"act max", LAYER(0) + 36, 200, 4, FQT_ERR_BLOB_FORMAT, "act_max 200"},
	{"channel count", LAYER(0) + 40, 2, 4, FQT_ERR_BLOB_FORMAT, "channel_count 2"},
	{"multiplier offset", LAYER(0) + 44, 0x7FFFFFFCu, 4, FQT_ERR_BLOB_FORMAT,
	 "multiplier_offset"},
	{"shift offset misaligned", LAYER(0) + 48, 1, 4, FQT_ERR_BLOB_FORMAT, "shift_offset 1"},
	{"softmax channel count", LAYER(1) + 40, 1, 4, FQT_ERR_BLOB_FORMAT, "channel_count 1"},
	{"softmax diff_min", LAYER(1) + 60, 1, 4, FQT_ERR_BLOB_FORMAT, "diff_min 1"},
	{"softmax left shift", LAYER(1) + 56, 40, 4, FQT_ERR_BLOB_FORMAT, "input_left_shift 40"},
	{"softmax extras", LAYER(1) + 64, 1, 4, FQT_ERR_BLOB_FORMAT, "extras[3] = 1"},
	{"fc extras", LAYER(0) + 52, 1, 4, FQT_ERR_BLOB_FORMAT, "extras[0] = 1"},
	/* shapes across tensors */
	{"fc rows", TENSOR(3) + 8, 2, 4, FQT_ERR_BLOB_FORMAT, "output depth 2, weights have 3"},
	{"fc inputs", TENSOR(0) + 8, 5, 4, FQT_ERR_BLOB_FORMAT, "input has 5 elements"},
	{"softmax shape", TENSOR(4) + 4, 2, 4, FQT_ERR_BLOB_FORMAT, "shapes differ"},
	{"zero point range", 0, 0, 0, FQT_ERR_BLOB_FORMAT, "zero_point[0] = 200"},
	{"shift range", 0, 0, 0, FQT_ERR_BLOB_FORMAT, "shift[0] = 31"},
	{"negative multiplier", 0, 0, 0, FQT_ERR_BLOB_FORMAT, "multiplier[0] = -1"},
};

/* Data-section corruptions: where the array lies is read from the blob. */
static void corrupt_data(blob_buffer *b, const char *what)
{
	uint8_t *data = b->bytes + DATA_OFFSET;
	if (strcmp(what, "zero point range") == 0) {
		const uint32_t zp_off = (uint32_t)b->bytes[TENSOR(3) + 28] |
					((uint32_t)b->bytes[TENSOR(3) + 29] << 8);
		put_u32(data + zp_off, 200);
	} else if (strcmp(what, "shift range") == 0) {
		const uint32_t off = (uint32_t)b->bytes[LAYER(0) + 48] |
				     ((uint32_t)b->bytes[LAYER(0) + 49] << 8);
		put_u32(data + off, 31);
	} else if (strcmp(what, "negative multiplier") == 0) {
		const uint32_t off = (uint32_t)b->bytes[LAYER(0) + 44] |
				     ((uint32_t)b->bytes[LAYER(0) + 45] << 8);
		put_u32(data + off, 0xFFFFFFFFu);
	}
}

static void test_rejections(void)
{
	static blob_buffer b;
	fqt_error err;
	CHECK_EQ_INT(fqt_model_load(NULL, base.bytes, base.size, &err), FQT_ERR_ARGUMENT);
	CHECK_EQ_INT(fqt_model_load(&model, NULL, base.size, &err), FQT_ERR_ARGUMENT);
	/* Misaligned: the int32 arrays are read in place. */
	memcpy(b.bytes + 1, base.bytes, base.size);
	CHECK_EQ_INT(fqt_model_load(&model, b.bytes + 1, base.size, &err), FQT_ERR_ALIGNMENT);
	CHECK_CONTAINS(err.message, "aligned");

	expect_reject("short", &base, 63, FQT_ERR_BLOB_FORMAT, "shorter than the 64-byte header");
	expect_reject("truncated", &base, base.size - 1, FQT_ERR_BLOB_FORMAT, "total_size");
	b = base;
	b.bytes[0] ^= 1;
	expect_reject("magic", &b, b.size, FQT_ERR_BLOB_FORMAT, "magic");
	b = base;
	b.bytes[b.size - 5] ^= 0x40;
	expect_reject("crc", &b, b.size, FQT_ERR_BLOB_FORMAT, "crc32");

	for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); ++i) {
		const corruption *c = &corruptions[i];
		b = base;
		if (c->width == 1) {
			b.bytes[c->offset] = (uint8_t)c->value;
		} else if (c->width == 2) {
			put_u16(b.bytes + c->offset, c->value);
		} else if (c->width == 4) {
			put_u32(b.bytes + c->offset, c->value);
		} else {
			corrupt_data(&b, c->what);
		}
		fix_crc(&b);
		expect_reject(c->what, &b, b.size, c->status, c->needle);
	}
	/* A NULL err is allowed. */
	b = base;
	b.bytes[0] = 0;
	CHECK_EQ_INT(fqt_model_load(&model, b.bytes, b.size, NULL), FQT_ERR_BLOB_FORMAT);
}

/* Every byte of header fields and tables, set to a few values, CRC fixed: the loader
 * must return (anything) without touching memory outside the blob. */
static void test_byte_flips_never_crash(void)
{
	static blob_buffer b;
	static const uint8_t values[] = {0x00, 0x01, 0x7F, 0x80, 0xFF};
	unsigned accepted = 0;
	unsigned total = 0;
	for (uint32_t pos = 16; pos < base.size; ++pos) {
		for (size_t v = 0; v < sizeof(values); ++v) {
			b = base;
			if (b.bytes[pos] == values[v]) {
				continue;
			}
			b.bytes[pos] = values[v];
			fix_crc(&b);
			fqt_error err;
			const fqt_status s = fqt_model_load(&model, b.bytes, b.size, &err);
			++total;
			if (s == FQT_OK) {
				++accepted;
				/* Whatever was accepted must also run safely. */
				static _Alignas(4) uint8_t arena[256];
				fqt_session session;
				if (fqt_session_create(&session, &model, arena, sizeof(arena), NULL) ==
				    FQT_OK) {
					int8_t *in = NULL;
					size_t n = 0;
					CHECK_EQ_INT(fqt_session_input(&session, &in, &n), FQT_OK);
					memset(in, 0x55, n);
					CHECK_EQ_INT(fqt_session_run(&session), FQT_OK);
				}
			} else {
				CHECK(err.message[0] != '\0');
			}
		}
	}
	printf("byte flips: %u blobs, %u accepted (names, scales, values)\n", total, accepted);
}

int main(void)
{
	build_base();
	CHECK_EQ_INT(fqt_model_struct_size(), sizeof(fqt_model));
	CHECK(strcmp(fqt_status_str(FQT_ERR_BLOB_FORMAT), "bad model blob") == 0);
	CHECK(strcmp(fqt_status_str((fqt_status)99), "unknown status") == 0);
	test_valid_blob_runs();
	test_rejections();
	test_byte_flips_never_crash();
	return fqt_test_summary("test_loader");
}
