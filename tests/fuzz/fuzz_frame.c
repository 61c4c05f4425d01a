/*
 * libFuzzer target: the device service's line protocol. The input is split into lines;
 * each goes through fqt_service_dispatch_line (the frame decoder, transfers, commits of
 * blobs and samples, every command), then the job is polled to its end. A built-in model
 * is loaded first when the first line is "fqt load builtin" and the corpus provides no
 * blob: the point is that no line sequence crashes or reads out of bounds.
 *
 *   cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DFQT_FUZZ=ON
 *   cmake --build build/fuzz --target fuzz_frame && build/fuzz/fuzz_frame -max_total_time=30
 */
#include <stdint.h>
#include <string.h>

#include "fqt/service.h"

#define FUZZ_SLOT_BYTES 4096u
#include "fuzz_service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t arena[2048] __attribute__((aligned(16)));
	static uint8_t samples[1024];
	static uint8_t model_buffer[8192] __attribute__((aligned(16)));
	static fqt_service svc;
	fqt_service_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.arena = arena;
	cfg.arena_size = sizeof(arena);
	cfg.sample_buffer = samples;
	cfg.sample_buffer_size = sizeof(samples);
	cfg.model_buffer = model_buffer;
	cfg.model_buffer_size = sizeof(model_buffer);
	cfg.storage = &fuzz_storage;
	cfg.clock_ms = fake_clock;
	cfg.progress_interval_ms = 10;
	if (fqt_service_init(&svc, &cfg) != FQT_OK) {
		__builtin_trap();
	}
	const fqt_service_output out = {sink, NULL};
	static char line[1024];
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			size_t n = i - start;
			if (n >= sizeof(line)) {
				n = sizeof(line) - 1u;
			}
			memcpy(line, data + start, n);
			line[n] = '\0';
			(void)fqt_service_dispatch_line(&svc, line, &out);
			for (int k = 0; k < 10000 && fqt_service_poll(&svc, &out); k++) {
			}
			start = i + 1u;
		}
	}
	/* The frame decoder alone, on the raw words. */
	char *argv[4];
	char words[4][80];
	for (int w = 0; w < 4; w++) {
		const size_t off = (size_t)w * 79u;
		size_t n = off < size ? size - off : 0u;
		n = n > 79u ? 79u : n;
		memcpy(words[w], data + (off < size ? off : 0u), n);
		words[w][n] = '\0';
		argv[w] = words[w];
	}
	fqt_frame f;
	(void)fqt_frame_decode(4, argv, &f);
	return 0;
}
