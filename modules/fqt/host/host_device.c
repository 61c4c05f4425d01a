/*
 * fqt_host_device: the device service on the host, standing in for a board. It speaks the
 * same line protocol as the Zephyr shell (docs/protocol.md) on stdin/stdout:
 *
 *     fqt_host_device [--arena BYTES] [--samples BYTES] [--model-buffer BYTES]
 *                     [--flash FILE] [--slot BYTES] [--model BLOB] [--progress-ms MS]
 *                     [--params BYTES]
 *
 * --model is the "built-in" model (`fqt load builtin`; loaded at start); --flash is a file
 * standing in for the two flash slots (erased bytes are 0xFF; a short file reads as a
 * failed read). --params is the training params pool (trainable weights, gradients and
 * per-channel state; 0 leaves the training engine out). Jobs run one sample per loop turn while stdin is polled, as the Zephyr
 * service thread does between shell messages.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fqt/fqt.h"
#include "fqt/service.h"
#include "fqt/service_trainer.h"

#define LINE_MAX_BYTES 4096

typedef struct flash_file {
	int fd;
	uint32_t slot_size;
} flash_file;

static int flash_read(void *ctx, uint32_t slot, uint32_t offset, void *data, uint32_t size)
{
	const flash_file *f = ctx;
	const off_t at = (off_t)slot * f->slot_size + offset;
	if (offset > f->slot_size || size > f->slot_size - offset) {
		return -1;
	}
	uint8_t *p = data;
	while (size > 0u) {
		const ssize_t n = pread(f->fd, p, size, at + (off_t)(p - (uint8_t *)data));
		if (n <= 0) {
			return -1; /* past the end of a truncated file: the slot is not valid */
		}
		p += n;
		size -= (uint32_t)n;
	}
	return 0;
}

static int flash_write(void *ctx, uint32_t slot, uint32_t offset, const void *data,
		       uint32_t size)
{
	const flash_file *f = ctx;
	if (offset > f->slot_size || size > f->slot_size - offset) {
		return -1;
	}
	const off_t at = (off_t)slot * f->slot_size + offset;
	const uint8_t *p = data;
	while (size > 0u) {
		const ssize_t n = pwrite(f->fd, p, size, at + (off_t)(p - (const uint8_t *)data));
		if (n <= 0) {
			return -1;
		}
		p += n;
		size -= (uint32_t)n;
	}
	return fsync(f->fd) == 0 ? 0 : -1;
}

static int flash_erase(void *ctx, uint32_t slot)
{
	const flash_file *f = ctx;
	uint8_t ff[4096];
	memset(ff, 0xFF, sizeof(ff));
	for (uint32_t off = 0; off < f->slot_size; off += (uint32_t)sizeof(ff)) {
		const uint32_t n = f->slot_size - off < sizeof(ff) ? f->slot_size - off
								   : (uint32_t)sizeof(ff);
		if (flash_write(ctx, slot, off, ff, n) != 0) {
			return -1;
		}
	}
	return 0;
}

static uint32_t clock_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void write_line(void *ctx, const char *line)
{
	(void)ctx;
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void write_stderr(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "fqt_host_device: %s\n", line);
}

static int parse_size(const char *s, size_t *v)
{
	char *end;
	errno = 0;
	const unsigned long long x = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || x > (1ull << 31)) {
		return -1;
	}
	*v = (size_t)x;
	return 0;
}

static void *aligned_zalloc(size_t size)
{
	void *p = NULL;
	if (posix_memalign(&p, 16, size ? size : 16) != 0) {
		return NULL;
	}
	memset(p, 0, size ? size : 16);
	return p;
}

static void usage(void)
{
	fprintf(stderr, "usage: fqt_host_device [--arena BYTES] [--samples BYTES] "
			"[--model-buffer BYTES] [--flash FILE] [--slot BYTES] [--model BLOB] "
			"[--progress-ms MS] [--params BYTES]\n");
}

int main(int argc, char **argv)
{
	size_t arena_size = 64u * 1024u;
	size_t sample_size = 256u * 1024u;
	size_t model_buffer_size = 512u * 1024u;
	size_t slot_size = 256u * 1024u;
	size_t progress_ms = 500u;
	size_t params_size = 0u; /* no training engine unless --params is given */
	const char *flash_path = NULL;
	const char *model_path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t *target = NULL;
		if (strcmp(a, "--arena") == 0) {
			target = &arena_size;
		} else if (strcmp(a, "--samples") == 0) {
			target = &sample_size;
		} else if (strcmp(a, "--model-buffer") == 0) {
			target = &model_buffer_size;
		} else if (strcmp(a, "--slot") == 0) {
			target = &slot_size;
		} else if (strcmp(a, "--progress-ms") == 0) {
			target = &progress_ms;
		} else if (strcmp(a, "--params") == 0) {
			target = &params_size;
		} else if (strcmp(a, "--flash") == 0 && v != NULL) {
			flash_path = v;
			i++;
			continue;
		} else if (strcmp(a, "--model") == 0 && v != NULL) {
			model_path = v;
			i++;
			continue;
		} else {
			usage();
			return 2;
		}
		if (v == NULL || parse_size(v, target) != 0) {
			fprintf(stderr, "fqt_host_device: %s needs a byte count\n", a);
			return 2;
		}
		i++;
	}

	uint8_t *arena = aligned_zalloc(arena_size);
	uint8_t *samples = aligned_zalloc(sample_size);
	uint8_t *model_buffer = aligned_zalloc(model_buffer_size);
	uint8_t *builtin = NULL;
	size_t builtin_size = 0;
	if (arena == NULL || samples == NULL || model_buffer == NULL) {
		fprintf(stderr, "fqt_host_device: out of memory\n");
		return 1;
	}
	if (model_path != NULL) {
		FILE *f = fopen(model_path, "rb");
		struct stat st;
		if (f == NULL || fstat(fileno(f), &st) != 0) {
			fprintf(stderr, "fqt_host_device: cannot read %s\n", model_path);
			return 2;
		}
		builtin_size = (size_t)st.st_size;
		builtin = aligned_zalloc(builtin_size);
		if (builtin == NULL || fread(builtin, 1, builtin_size, f) != builtin_size) {
			fprintf(stderr, "fqt_host_device: cannot read %s\n", model_path);
			return 2;
		}
		fclose(f);
	}
	flash_file flash = {-1, (uint32_t)slot_size};
	fqt_storage storage = {(uint32_t)slot_size, flash_read, flash_write, flash_erase, &flash};
	if (flash_path != NULL) {
		flash.fd = open(flash_path, O_RDWR | O_CREAT, 0644);
		if (flash.fd < 0) {
			fprintf(stderr, "fqt_host_device: cannot open %s\n", flash_path);
			return 2;
		}
	}

	fqt_service_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.arena = arena;
	cfg.arena_size = arena_size;
	cfg.sample_buffer = samples;
	cfg.sample_buffer_size = sample_size;
	cfg.model_buffer = model_buffer;
	cfg.model_buffer_size = model_buffer_size;
	cfg.builtin_blob = builtin;
	cfg.builtin_blob_size = builtin_size;
	cfg.storage = flash_path != NULL ? &storage : NULL;
	/* The training engine: trainable weights and their state in the params pool. */
	static fqt_service_trainer service_trainer;
	static fqt_trainer_ops trainer_ops;
	uint8_t *params = params_size > 0u ? aligned_zalloc(params_size) : NULL;
	cfg.trainer = NULL;
	if (params != NULL &&
	    fqt_service_trainer_init(&service_trainer, params, params_size, &trainer_ops) == FQT_OK) {
		cfg.trainer = &trainer_ops;
	}
	cfg.clock_ms = clock_ms;
	cfg.progress_interval_ms = (uint32_t)progress_ms;

	static fqt_service svc;
	if (fqt_service_init(&svc, &cfg) != FQT_OK) {
		fprintf(stderr, "fqt_host_device: bad configuration\n");
		return 1;
	}
	const fqt_service_output out = {write_line, NULL};
	if (builtin != NULL) {
		char cmd[] = "fqt load builtin";
		const fqt_service_output to_stderr = {write_stderr, NULL};
		(void)fqt_service_dispatch_line(&svc, cmd, &to_stderr);
	}
	write_line(NULL, "ready fqt_host_device " FQT_VERSION_STRING);

	static char buf[LINE_MAX_BYTES + 1];
	size_t have = 0;
	int discarding = 0;
	for (;;) {
		struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
		const int busy = fqt_service_busy(&svc);
		const int r = poll(&pfd, 1, busy ? 0 : -1);
		if (r < 0 && errno != EINTR) {
			return 1;
		}
		if (r > 0) {
			const ssize_t n = read(STDIN_FILENO, buf + have, LINE_MAX_BYTES - have);
			if (n <= 0) {
				return 0; /* stdin closed */
			}
			have += (size_t)n;
			size_t start = 0;
			for (size_t i = 0; i < have; i++) {
				if (buf[i] != '\n') {
					continue;
				}
				buf[i] = '\0';
				if (!discarding) {
					(void)fqt_service_dispatch_line(&svc, buf + start, &out);
				}
				discarding = 0;
				start = i + 1u;
			}
			memmove(buf, buf + start, have - start);
			have -= start;
			if (have == LINE_MAX_BYTES) {
				write_line(NULL, "err line too long");
				have = 0;
				discarding = 1;
			}
		}
		if (fqt_service_busy(&svc)) {
			(void)fqt_service_poll(&svc, &out);
		}
	}
}
