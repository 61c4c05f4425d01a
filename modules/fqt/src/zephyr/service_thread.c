/*
 * The fqt service under Zephyr: a kernel thread owns the engine and takes shell
 * commands from a message queue, so a training or eval job runs in this thread while
 * the shell stays responsive. All command logic is in the portable dispatcher
 * (src/service/); this file only moves argv and output lines between threads.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <string.h>

#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/shell/shell.h>

#include <fqt/service.h>
#include <fqt/service_trainer.h>
#include <fqt/zephyr/pools.h>
#include <fqt/zephyr/storage.h>

LOG_MODULE_REGISTER(fqt, CONFIG_FQT_LOG_LEVEL);

#ifdef FQT_BUILTIN_MODEL /* set by the app's CMake from its FQT_MODEL */
extern const uint8_t FQT_BUILTIN_MODEL[];
extern const size_t FQT_BUILTIN_MODEL_LEN;
#endif

/* One shell command, copied so the shell's argv may be reused while it waits. */
struct fqt_job {
	const struct shell *sh;
	int argc;
	char *argv[FQT_SERVICE_MAX_ARGS];
	char text[FQT_SERVICE_LINE_MAX];
	int result;
};

static uint8_t sample_store[CONFIG_FQT_SAMPLE_STORE_SIZE] __aligned(4);
/* Pushed and restored blobs (two halves); the trainer updates the active one in place. */
static uint8_t model_buffer[CONFIG_FQT_MODEL_BUFFER_SIZE] __aligned(4);
/* The training engine: trainable weights, gradients and per-channel state in the params
 * pool. */
static fqt_service_trainer service_trainer;
static fqt_trainer_ops trainer_ops;
static fqt_service service;
static struct fqt_job job;
static const struct shell *progress_shell; /* where a job's progress lines go */
K_MSGQ_DEFINE(fqt_job_queue, sizeof(struct fqt_job *), 1, 4);
static K_SEM_DEFINE(fqt_job_done, 0, 1);
static K_MUTEX_DEFINE(fqt_job_lock); /* one shell command in flight at a time */

static void write_line(void *ctx, const char *line)
{
	const struct shell *sh = ctx;

	if (sh != NULL) {
		shell_fprintf(sh, SHELL_NORMAL, "%s\n", line);
	}
}

static uint32_t clock_ms(void *ctx)
{
	ARG_UNUSED(ctx);
	return k_uptime_get_32();
}

static int service_start(void)
{
	const struct fqt_pool *arena = fqt_pool_get("arena");
	const struct fqt_pool *params = fqt_pool_get("params");
	fqt_service_config cfg = {0};

	if (arena == NULL || params == NULL) {
		LOG_ERR("devicetree needs fqt,memory-pool nodes for \"arena\" and \"params\"");
		return -ENODEV;
	}
	cfg.arena = arena->base;
	cfg.arena_size = arena->size;
	cfg.sample_buffer = sample_store;
	cfg.sample_buffer_size = sizeof(sample_store);
	cfg.model_buffer = model_buffer;
	cfg.model_buffer_size = sizeof(model_buffer);
	if (fqt_service_trainer_init(&service_trainer, params->base, params->size,
				     &trainer_ops) == FQT_OK) {
		cfg.trainer = &trainer_ops;
	}
#ifdef FQT_BUILTIN_MODEL
	cfg.builtin_blob = FQT_BUILTIN_MODEL;
	cfg.builtin_blob_size = FQT_BUILTIN_MODEL_LEN;
#endif
	cfg.storage = fqt_zephyr_storage(); /* NULL: save/restore answer "no storage" */
	cfg.clock_ms = clock_ms;
	cfg.progress_interval_ms = CONFIG_FQT_PROGRESS_INTERVAL_MS;
	fqt_status st = fqt_service_init(&service, &cfg);

	if (st != FQT_OK) {
		LOG_ERR("fqt service init: %s", fqt_status_str(st));
		return -EINVAL;
	}
	LOG_INF("fqt service: arena %u B, params %u B, sample store %u B, model buffer %u B",
		(unsigned int)arena->size, (unsigned int)params->size,
		(unsigned int)sizeof(sample_store), (unsigned int)sizeof(model_buffer));
	return 0;
}

static void service_thread(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);
	if (service_start() != 0) {
		/* Keep answering, so the shell never waits on a service that is not there. */
		for (;;) {
			struct fqt_job *next;

			k_msgq_get(&fqt_job_queue, &next, K_FOREVER);
			write_line((void *)next->sh, "err fqt service not started: see the boot log");
			next->result = -1;
			k_sem_give(&fqt_job_done);
		}
	}
	for (;;) {
		struct fqt_job *next;
		/* A running job yields between samples; otherwise sleep until a command. */
		k_timeout_t wait = fqt_service_busy(&service) ? K_NO_WAIT : K_FOREVER;

		if (k_msgq_get(&fqt_job_queue, &next, wait) == 0) {
			fqt_service_output out = {.write = write_line, .ctx = (void *)next->sh};

			next->result = fqt_service_dispatch(&service, next->argc, next->argv, &out);
			progress_shell = next->sh;
			k_sem_give(&fqt_job_done);
		}
		if (fqt_service_busy(&service)) {
			fqt_service_output out = {.write = write_line, .ctx = (void *)progress_shell};

			fqt_service_poll(&service, &out);
		}
	}
}

K_THREAD_DEFINE(fqt_service_tid, CONFIG_FQT_SERVICE_STACK_SIZE, service_thread, NULL, NULL, NULL,
		CONFIG_FQT_SERVICE_PRIORITY, 0, 0);

#if defined(CONFIG_FQT_SHELL)
/* A training job never sleeps between samples: a shell thread of equal or lower priority
 * (Zephyr's default is the lowest) would never run again to read `fqt train stop`. */
#if !defined(CONFIG_SHELL_THREAD_PRIORITY_OVERRIDE) ||                                         \
	CONFIG_SHELL_THREAD_PRIORITY >= CONFIG_FQT_SERVICE_PRIORITY
#error "fqt: set CONFIG_SHELL_THREAD_PRIORITY_OVERRIDE=y, CONFIG_SHELL_THREAD_PRIORITY < CONFIG_FQT_SERVICE_PRIORITY"
#endif

/* `fqt <subcommand> ...`: copy argv into the job and wait for the service thread. */
static int cmd_fqt(const struct shell *sh, size_t argc, char **argv)
{
	size_t used = 0;

	if (argc < 2) {
		shell_help(sh);
		return SHELL_CMD_HELP_PRINTED;
	}
	if (argc - 1 > FQT_SERVICE_MAX_ARGS) {
		shell_error(sh, "err too many arguments (at most %d)", FQT_SERVICE_MAX_ARGS);
		return -EINVAL;
	}
	k_mutex_lock(&fqt_job_lock, K_FOREVER);
	job.sh = sh;
	job.argc = (int)argc - 1;
	for (size_t i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;

		if (used + n > sizeof(job.text)) {
			k_mutex_unlock(&fqt_job_lock);
			shell_error(sh, "err command line longer than %u bytes",
				    (unsigned int)sizeof(job.text));
			return -EINVAL;
		}
		memcpy(&job.text[used], argv[i], n);
		job.argv[i - 1] = &job.text[used];
		used += n;
	}
	struct fqt_job *p = &job;

	k_msgq_put(&fqt_job_queue, &p, K_FOREVER);
	k_sem_take(&fqt_job_done, K_FOREVER);
	int result = job.result;

	k_mutex_unlock(&fqt_job_lock);
	return result == 0 ? 0 : -EINVAL;
}

SHELL_CMD_ARG_REGISTER(fqt, NULL,
		       "fqt on-device training: help, ping, info, load, data, train, eval, "
		       "predict, export, save, restore, frame (fqt help gives their usage)",
		       cmd_fqt, 1, FQT_SERVICE_MAX_ARGS);
#endif
