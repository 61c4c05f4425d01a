/*
 * fqt_bench: load a model blob and time N inferences on seeded random int8 inputs.
 *
 *     fqt_bench model.fqtb [iterations=100] [seed=1]
 *
 * Prints the arena size, MACs per inference, time per inference and a checksum of the
 * outputs (the same seed gives the same checksum on every build of the core). A host
 * program, so it may use stdio and the clock; the core it links does neither.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fqt/fqt.h"

static uint32_t xorshift32(uint32_t *state)
{
	uint32_t x = *state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s model.fqtb [iterations] [seed]\n", argv[0]);
		return 2;
	}
	const long iterations = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	uint32_t seed = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1u;
	if (seed == 0u) {
		seed = 1u;
	}
	FILE *f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	const long file_size = ftell(f);
	fseek(f, 0, SEEK_SET);
	/* malloc returns memory aligned for any type: the blob needs 4. */
	uint8_t *blob = malloc(file_size > 0 ? (size_t)file_size : 1u);
	if (blob == NULL || fread(blob, 1, (size_t)file_size, f) != (size_t)file_size) {
		fprintf(stderr, "%s: cannot read\n", argv[1]);
		fclose(f);
		return 2;
	}
	fclose(f);

	static fqt_model model;
	fqt_error err;
	fqt_status status = fqt_model_load(&model, blob, (size_t)file_size, &err);
	if (status != FQT_OK) {
		fprintf(stderr, "%s: %s: %s\n", argv[1], fqt_status_str(status), err.message);
		return 1;
	}
	const size_t arena_size = fqt_model_inference_arena_size(&model);
	void *arena = malloc(arena_size > 0u ? arena_size : 1u);
	fqt_session session;
	status = fqt_session_create(&session, &model, arena, arena_size, NULL);
	if (status != FQT_OK) {
		fprintf(stderr, "session: %s\n", fqt_status_str(status));
		return 1;
	}
	uint32_t checksum = 0;
	double elapsed = 0.0;
	for (long i = 0; i < iterations; ++i) {
		int8_t *input = NULL;
		size_t input_size = 0;
		fqt_session_input(&session, &input, &input_size);
		for (size_t k = 0; k < input_size; ++k) {
			input[k] = (int8_t)(xorshift32(&seed) & 0xFFu);
		}
		const double t0 = now_seconds();
		status = fqt_session_run(&session);
		elapsed += now_seconds() - t0;
		if (status != FQT_OK) {
			fprintf(stderr, "run: %s\n", fqt_status_str(status));
			return 1;
		}
		const int8_t *output = NULL;
		size_t output_size = 0;
		fqt_session_output(&session, &output, &output_size);
		checksum = fqt_crc32(checksum, output, output_size);
	}
	const double per_inference = iterations > 0 ? elapsed / (double)iterations : 0.0;
	const unsigned long long macs =
		iterations > 0 ? (unsigned long long)(fqt_session_macs(&session) /
						      (uint64_t)iterations)
			       : 0ull;
	printf("model          %s (%u layers, %ld bytes)\n", model.name,
	       (unsigned)model.layer_count, file_size);
	printf("arena          %zu bytes\n", arena_size);
	printf("macs           %llu per inference\n", macs);
	printf("iterations     %ld\n", iterations);
	printf("time           %.3f us per inference\n", per_inference * 1e6);
	printf("throughput     %.1f MMAC/s\n",
	       per_inference > 0.0 ? (double)macs / per_inference * 1e-6 : 0.0);
	printf("checksum       0x%08x\n", (unsigned)checksum);
	free(arena);
	free(blob);
	return 0;
}
