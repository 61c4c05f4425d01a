/*
 * libFuzzer target: the dispatcher with a model loaded, samples stored and the training
 * engine bound. Every input starts from the same state: a fresh service whose built-in
 * model (FQT_FUZZ_DISPATCH_MODEL, a committed blob of tests/fuzz/corpus/model_loader/:
 * fc_softmax, two FC layers and a SOFTMAX, so that training steps cost microseconds and the
 * executions go to the dispatcher; the kernels have tests of their own, and the loader
 * fuzzer runs the forward kernels on mutated models) is loaded, four samples pushed with `fqt data push`, and a real fqt_service_trainer with a
 * params pool configured, as modules/fqt/host/host_device.c sets it up. That state is built
 * once and copied back before each input (the portable core keeps no state of its own
 * outside the structures and pools it is given): a copy, where re-running the set-up cost
 * about a third of an execution. The input is then
 * split into lines and each goes through fqt_service_dispatch_line; a running job is polled
 * a bounded number of samples after each line and stopped at the end. So the argument
 * parsing and the bodies of `train`, `predict`, `data`, `eval`, `save`, `restore`, `export`
 * and frames all run on a live model.
 *
 *   cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DFQT_FUZZ=ON
 *   cmake --build build/fuzz --target fuzz_dispatch
 *   build/fuzz/fuzz_dispatch -max_total_time=60 tests/fuzz/corpus/dispatch
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fqt/service.h"
#include "fqt/service_trainer.h"

#define FUZZ_SLOT_BYTES 8192u
#include "fuzz_service.h"

#ifndef FQT_FUZZ_DISPATCH_MODEL
#error "FQT_FUZZ_DISPATCH_MODEL: the path of the built-in blob (set by CMakeLists.txt)"
#endif

#define POLLS_PER_LINE 2
#define N_SAMPLES 4

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t builtin[16384] __attribute__((aligned(16)));
static size_t builtin_size;
/* The preamble's `fqt data push` lines, built once from the model's input size. */
static char push_lines[N_SAMPLES][2 * 4096 + 64];

/* The model's input size from `fqt info` (the line `input_bytes N`). */
static size_t info_input_bytes;

static void info_sink(void *ctx, const char *line)
{
	(void)ctx;
	if (strncmp(line, "input_bytes ", 12) == 0) {
		info_input_bytes = (size_t)strtoul(line + 12, NULL, 10);
	}
}

/* Everything the service and its trainer may write: each input starts from a copy. */
struct harness_state {
	fqt_service svc;
	fqt_service_trainer service_trainer;
	fqt_trainer_ops trainer_ops;
	uint8_t arena[32768] __attribute__((aligned(16)));
	uint8_t samples[4096];
	uint8_t model_buffer[32768] __attribute__((aligned(16)));
	uint8_t params[32768] __attribute__((aligned(16)));
	uint8_t slots[sizeof(slots)];
};

static struct harness_state live;
static struct harness_state start_state;

static void setup(const fqt_service_output *out)
{
	fqt_service_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	memset(slots, 0xFF, sizeof(slots));
	cfg.arena = live.arena;
	cfg.arena_size = sizeof(live.arena);
	cfg.sample_buffer = live.samples;
	cfg.sample_buffer_size = sizeof(live.samples);
	cfg.model_buffer = live.model_buffer;
	cfg.model_buffer_size = sizeof(live.model_buffer);
	cfg.builtin_blob = builtin;
	cfg.builtin_blob_size = builtin_size;
	cfg.storage = &fuzz_storage;
	cfg.clock_ms = fake_clock;
	cfg.progress_interval_ms = 10;
	if (fqt_service_trainer_init(&live.service_trainer, live.params, sizeof(live.params),
				     &live.trainer_ops) != FQT_OK) {
		__builtin_trap();
	}
	cfg.trainer = &live.trainer_ops;
	if (fqt_service_init(&live.svc, &cfg) != FQT_OK) {
		__builtin_trap();
	}
	char load[] = "fqt load builtin";
	if (fqt_service_dispatch_line(&live.svc, load, out) != 0) {
		__builtin_trap();
	}
}

static int dispatch(char *line, const fqt_service_output *out)
{
	const int r = fqt_service_dispatch_line(&live.svc, line, out);
	for (int k = 0; k < POLLS_PER_LINE && fqt_service_poll(&live.svc, out); k++) {
	}
	return r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FILE *f = fopen(FQT_FUZZ_DISPATCH_MODEL, "rb");
	if (f == NULL) {
		fprintf(stderr, "fuzz_dispatch: cannot open %s\n", FQT_FUZZ_DISPATCH_MODEL);
		abort();
	}
	builtin_size = fread(builtin, 1, sizeof(builtin), f);
	fclose(f);
	const fqt_service_output quiet = {sink, NULL};
	setup(&quiet);
	char info[] = "fqt info";
	const fqt_service_output grab = {info_sink, NULL};
	(void)fqt_service_dispatch_line(&live.svc, info, &grab);
	if (info_input_bytes == 0u || info_input_bytes > 4096u) {
		fprintf(stderr, "fuzz_dispatch: the model did not load (input_bytes %zu)\n",
			info_input_bytes);
		abort();
	}
	for (int s = 0; s < N_SAMPLES; s++) {
		char *p = push_lines[s];
		p += sprintf(p, "fqt data push %d ", s % 2);
		for (size_t i = 0; i < info_input_bytes; i++) {
			p += sprintf(p, "%02x", (unsigned)((i * 37u + (size_t)s * 11u) & 0xFFu));
		}
	}
	/* The state every input starts from: the service above with the samples pushed. */
	static char line[sizeof(push_lines[0])];
	for (int s = 0; s < N_SAMPLES; s++) {
		memcpy(line, push_lines[s], sizeof(line));
		if (dispatch(line, &quiet) != 0) {
			__builtin_trap();
		}
	}
	start_state = live;
	memcpy(start_state.slots, slots, sizeof(slots));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const fqt_service_output out = {sink, NULL};
	live = start_state;
	memcpy(slots, start_state.slots, sizeof(slots));
	static char line[sizeof(push_lines[0])];
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			size_t n = i - start;
			if (n >= sizeof(line)) {
				n = sizeof(line) - 1u;
			}
			memcpy(line, data + start, n);
			line[n] = '\0';
			(void)dispatch(line, &out);
			start = i + 1u;
		}
	}
	char stop[] = "fqt train stop";
	(void)fqt_service_dispatch_line(&live.svc, stop, &out);
	if (fqt_service_busy(&live.svc)) {
		__builtin_trap(); /* `train stop` ends any job at once (docs/protocol.md) */
	}
	return 0;
}
