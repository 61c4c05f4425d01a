/*
 * libFuzzer target: the model loader and, for blobs it accepts, one inference.
 *
 *     cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DFQT_FUZZ=ON
 *     cmake --build build/fuzz --target fuzz_model_loader
 *     build/fuzz/fuzz_model_loader -max_total_time=60 tests/fuzz/corpus/model_loader
 *
 * The bytes are copied into a 4-byte aligned buffer (the loader's contract) and, when
 * the header's total_size is within them, the CRC field is recomputed so that mutations
 * reach the checks behind the CRC instead of all being rejected by it. A blob that loads
 * gets a session in an arena of at most FUZZ_MAX_ARENA bytes and runs once on a fixed
 * input, unless its work (MACs and pooling window reads) exceeds FUZZ_MAX_WORK: the
 * fuzzer hunts for memory errors and undefined behaviour, not for slow models.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fqt/fqt.h"

#define FUZZ_MAX_ARENA (256u * 1024u)
#define FUZZ_MAX_WORK (4u * 1024u * 1024u)
#define FUZZ_MAX_BLOB (1024u * 1024u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t read_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static void write_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Upper bound of the inner-loop iterations of one pass. */
static uint64_t model_work(const fqt_model *model)
{
	uint64_t work = 0;
	for (uint32_t i = 0; i < model->layer_count; ++i) {
		fqt_layer layer;
		fqt_tensor out;
		if (fqt_model_layer(model, i, &layer) != FQT_OK ||
		    fqt_model_tensor(model, (uint32_t)layer.output, &out) != FQT_OK) {
			return UINT64_MAX;
		}
		work += fqt_model_layer_macs(model, i) + out.element_count;
		if (layer.op == FQT_OP_AVERAGE_POOL_2D || layer.op == FQT_OP_MAX_POOL_2D) {
			work += (uint64_t)out.element_count * (uint64_t)layer.filter_h *
				(uint64_t)layer.filter_w;
		}
	}
	return work;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX_BLOB) {
		return 0;
	}
	/* A fresh heap copy of exactly `size` bytes: ASan catches any read past its end,
	 * and malloc's alignment satisfies the loader's 4-byte rule. */
	uint8_t *blob = malloc(size > 0u ? size : 1u);
	if (blob == NULL) {
		return 0;
	}
	if (size > 0u) {
		memcpy(blob, data, size);
	}
	if (size >= FQT_BLOB_HEADER_SIZE) {
		const uint32_t total = read_u32(blob + 8);
		if (total >= 16u && total <= size) {
			write_u32(blob + 12, fqt_crc32(0, blob + 16, total - 16u));
		}
	}

	static fqt_model model; /* large (it holds the plan): not on the stack */
	fqt_error err;
	if (fqt_model_load(&model, blob, size, &err) == FQT_OK) {
		const size_t arena_size = fqt_model_inference_arena_size(&model);
		if (arena_size <= FUZZ_MAX_ARENA && model_work(&model) <= FUZZ_MAX_WORK) {
			uint8_t *arena = malloc(arena_size > 0u ? arena_size : 1u);
			fqt_session session;
			size_t shortfall = 0;
			if (arena != NULL && fqt_session_create(&session, &model, arena, arena_size,
								&shortfall) == FQT_OK) {
				int8_t *input = NULL;
				size_t input_size = 0;
				if (fqt_session_input(&session, &input, &input_size) == FQT_OK) {
					for (size_t k = 0; k < input_size; ++k) {
						input[k] = (int8_t)(uint8_t)(k * 37u + 11u);
					}
				}
				if (fqt_session_run(&session) == FQT_OK) {
					const int8_t *output = NULL;
					size_t output_size = 0;
					if (fqt_session_output(&session, &output, &output_size) ==
					    FQT_OK) {
						/* Touch every output byte so ASan checks the range. */
						volatile uint32_t sink =
							fqt_crc32(0, output, output_size);
						(void)sink;
					}
				}
			}
			free(arena);
		}
	}
	free(blob);
	return 0;
}
