/*
 * The fqt service under Zephyr: a kernel thread owns the engine and takes requests from a
 * message queue (shell commands and the firmware API, zephyr/api.c), so a training or
 * eval job runs in this thread while the shell and the application stay responsive. All
 * command logic is in the portable dispatcher (src/service/); this file only moves
 * requests, argv and output lines between threads, and builds the `fqt` shell command
 * from the one command table (service/command_table.h).
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

#include "service/command_table.h"
#include "zephyr/service_queue.h"

LOG_MODULE_REGISTER(fqt, CONFIG_FQT_LOG_LEVEL);

#ifdef FQT_BUILTIN_MODEL /* set by the app's CMake from its FQT_MODEL */
extern const uint8_t FQT_BUILTIN_MODEL[];
extern const size_t FQT_BUILTIN_MODEL_LEN;
#endif

static uint8_t sample_store[CONFIG_FQT_SAMPLE_STORE_SIZE] __aligned(4);
/* Pushed and restored blobs (two halves); the trainer updates the active one in place. */
static uint8_t model_buffer[CONFIG_FQT_MODEL_BUFFER_SIZE] __aligned(4);
/* The training engine: trainable weights, gradients and per-channel state in the params
 * pool. */
static fqt_service_trainer service_trainer;
static fqt_trainer_ops trainer_ops;
static fqt_service service;
static bool service_ready;
extern const k_tid_t fqt_service_tid;
/* Several API callers and the shell may wait at once; each waits on its own semaphore. */
K_MSGQ_DEFINE(fqt_request_queue, sizeof(struct fqt_request *), 4, 4);

static void log_line(void *ctx, const char *line)
{
	ARG_UNUSED(ctx);
	LOG_INF("%s", line);
}

static uint32_t clock_ms(void *ctx)
{
	ARG_UNUSED(ctx);
	return k_uptime_get_32();
}

int fqt_zephyr_submit(struct fqt_request *req)
{
	if (k_is_in_isr()) {
		return -EWOULDBLOCK; /* the caller would have to sleep until the thread answers */
	}
	k_sem_init(&req->done, 0, 1);
	k_msgq_put(&fqt_request_queue, &req, K_FOREVER);
	k_sem_take(&req->done, K_FOREVER);
	return req->result;
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

/* The end of a pause: the service thread takes its own priority back even when a thread
 * below it never blocks. */
static void pause_over(struct k_timer *timer)
{
	ARG_UNUSED(timer);
	k_thread_priority_set(fqt_service_tid, CONFIG_FQT_SERVICE_PRIORITY);
}

static K_TIMER_DEFINE(pause_timer, pause_over, NULL);

/* Between two slices of a job, let every thread below this one's priority that wants the
 * CPU (logging, the application) run, for at most FQT_SERVICE_JOB_PAUSE_TICKS: drop to
 * the lowest application priority and yield. When none is ready this returns at once, so
 * an idle system loses no training time; a request ends the pause at the next slice.
 */
static void give_way(void)
{
	k_timer_start(&pause_timer, K_TICKS(CONFIG_FQT_SERVICE_JOB_PAUSE_TICKS), K_NO_WAIT);
	k_thread_priority_set(k_current_get(), K_LOWEST_APPLICATION_THREAD_PRIO);
	k_yield();
	k_timer_stop(&pause_timer);
	k_thread_priority_set(k_current_get(), CONFIG_FQT_SERVICE_PRIORITY);
}

static void service_thread(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);
	/* Where a running job's lines go: the output of the request that started it. */
	fqt_service_output progress = {.write = log_line};
	uint32_t slice_start = k_uptime_get_32();

	service_ready = service_start() == 0;
	for (;;) {
		struct fqt_request *req;
		const bool busy = service_ready && fqt_service_busy(&service);

		/* Sleep until a request when idle; between samples, only look. */
		if (k_msgq_get(&fqt_request_queue, &req, busy ? K_NO_WAIT : K_FOREVER) == 0) {
			req->result = req->run(service_ready ? &service : NULL, req);
			if (!busy && service_ready && fqt_service_busy(&service)) {
				progress = req->progress;
				if (progress.write == NULL) {
					progress.write = log_line;
				}
				slice_start = k_uptime_get_32();
			}
			k_sem_give(&req->done);
		}
		if (!service_ready || !fqt_service_busy(&service)) {
			continue;
		}
		fqt_service_poll(&service, &progress);
		if (CONFIG_FQT_SERVICE_JOB_PAUSE_TICKS > 0 &&
		    k_uptime_get_32() - slice_start >= CONFIG_FQT_SERVICE_JOB_SLICE_MS) {
			give_way();
			slice_start = k_uptime_get_32();
		}
	}
}

K_THREAD_DEFINE(fqt_service_tid, CONFIG_FQT_SERVICE_STACK_SIZE, service_thread, NULL, NULL, NULL,
		CONFIG_FQT_SERVICE_PRIORITY, 0, 0);

#if defined(CONFIG_FQT_SHELL)
/* The shell must outrank the service thread: between two pauses a job does not sleep, so
 * a shell thread at or below its priority (Zephyr's default is the lowest) would read
 * `fqt train stop` only in the pauses, and not at all with FQT_SERVICE_JOB_PAUSE_TICKS=0.
 */
#if !defined(CONFIG_SHELL_THREAD_PRIORITY_OVERRIDE) ||                                         \
	CONFIG_SHELL_THREAD_PRIORITY >= CONFIG_FQT_SERVICE_PRIORITY
#error "fqt: set CONFIG_SHELL_THREAD_PRIORITY_OVERRIDE=y, CONFIG_SHELL_THREAD_PRIORITY < CONFIG_FQT_SERVICE_PRIORITY"
#endif

/* One shell command, copied so the shell's argv may be reused while it waits. */
struct shell_request {
	struct fqt_request req;
	const struct shell *sh;
	int argc;
	char *argv[FQT_SERVICE_MAX_ARGS];
	char text[FQT_SERVICE_LINE_MAX];
};

static struct shell_request shell_req;
static K_MUTEX_DEFINE(shell_req_lock); /* one shell command in flight at a time */

static void shell_line(void *ctx, const char *line)
{
	shell_fprintf((const struct shell *)ctx, SHELL_NORMAL, "%s\n", line);
}

static int run_shell_request(fqt_service *svc, struct fqt_request *req)
{
	struct shell_request *r = CONTAINER_OF(req, struct shell_request, req);
	fqt_service_output out = {.write = shell_line, .ctx = (void *)r->sh};

	if (svc == NULL) {
		shell_line((void *)r->sh, "err fqt service not started: see the boot log");
		return -1;
	}
	return fqt_service_dispatch(svc, r->argc, r->argv, &out);
}

/* Queue `fqt [parent] argv...` for the service thread and wait for its answer. The shell
 * has already checked the argument counts against the command table. */
static int forward(const struct shell *sh, const char *parent, size_t argc, char **argv)
{
	struct shell_request *r = &shell_req;
	const size_t words = argc + (parent != NULL ? 1u : 0u);
	size_t used = 0;

	if (words > FQT_SERVICE_MAX_ARGS) {
		shell_error(sh, "err too many arguments (at most %d)", FQT_SERVICE_MAX_ARGS);
		return -EINVAL;
	}
	k_mutex_lock(&shell_req_lock, K_FOREVER);
	r->sh = sh;
	r->argc = 0;
	for (size_t i = 0; i < words; i++) {
		const char *w = (parent != NULL) ? (i == 0 ? parent : argv[i - 1]) : argv[i];
		size_t n = strlen(w) + 1;

		if (used + n > sizeof(r->text)) {
			k_mutex_unlock(&shell_req_lock);
			shell_error(sh, "err command line longer than %u bytes",
				    (unsigned int)sizeof(r->text));
			return -EINVAL;
		}
		memcpy(&r->text[used], w, n);
		r->argv[r->argc++] = &r->text[used];
		used += n;
	}
	r->req.run = run_shell_request;
	r->req.progress = (fqt_service_output){.write = shell_line, .ctx = (void *)sh};
	int result = fqt_zephyr_submit(&r->req);

	k_mutex_unlock(&shell_req_lock);
	return result == 0 ? 0 : -EINVAL;
}

/* Handlers: a top-level command forwards its argv as is; a subcommand's gets its group's
 * name in front (the service's handlers take `data push ...` whole). */
static int sh_top(const struct shell *sh, size_t argc, char **argv)
{
	return forward(sh, NULL, argc, argv);
}

#define SKIP_CMD(name, fn, mandatory, optional, usage)
#define SUB_HANDLER(name, fn, mandatory, optional, usage)                                       \
	static int sh_sub_##name(const struct shell *sh, size_t argc, char **argv)              \
	{                                                                                      \
		return forward(sh, #name, argc, argv);                                          \
	}
FQT_COMMANDS(SKIP_CMD, SUB_HANDLER)

/* The subcommand sets of the groups: `fqt data push|clear|status`, ... */
#define SUB_ENTRY(parent, name, mandatory, optional, help)                                      \
	SHELL_CMD_ARG(name, NULL, help, sh_sub_##parent, mandatory, optional),
#define SUB_SET(name, fn, mandatory, optional, usage)                                           \
	SHELL_STATIC_SUBCMD_SET_CREATE(sub_fqt_##name, FQT_SUBCOMMANDS_##name(SUB_ENTRY)        \
						       SHELL_SUBCMD_SET_END);
FQT_COMMANDS(SKIP_CMD, SUB_SET)

/* The `fqt` set: a group with mandatory 0 has no handler of its own (the shell prints its
 * help); one with arguments takes the words that name no subcommand (`fqt predict 3`). */
#define TOP_ENTRY(name, fn, mandatory, optional, usage)                                         \
	SHELL_CMD_ARG(name, NULL, usage, sh_top, mandatory, optional),
#define TOP_GROUP(name, fn, mandatory, optional, usage)                                         \
	SHELL_CMD_ARG(name, &sub_fqt_##name, usage, (mandatory) > 0 ? sh_top : NULL, mandatory, \
		      optional),
SHELL_STATIC_SUBCMD_SET_CREATE(sub_fqt, FQT_COMMANDS(TOP_ENTRY, TOP_GROUP) SHELL_SUBCMD_SET_END);

SHELL_CMD_REGISTER(fqt, &sub_fqt,
		   "fqt on-device training: help, ping, info, load, data, train, eval, "
		   "predict, export, save, restore, frame (fqt help gives their usage)",
		   NULL);
#endif
