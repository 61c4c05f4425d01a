/*
 * The firmware API (include/fqt/zephyr/api.h): each call becomes a request on the service
 * thread's queue and runs there through the portable service, with the same checks and
 * `err` reasons as the shell commands; this file only turns arguments into argv (or into
 * the service's in-memory entry points) and the service's reply into an errno.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdio.h>
#include <string.h>

#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>

#include <fqt/zephyr/api.h>

#include "zephyr/service_queue.h"

LOG_MODULE_DECLARE(fqt, CONFIG_FQT_LOG_LEVEL);

enum api_op { OP_ARGV, OP_ADD_SAMPLE, OP_PREDICT, OP_STATUS };

struct api_request {
	struct fqt_request req;
	enum api_op op;
	int argc;
	char *argv[FQT_SERVICE_MAX_ARGS];
	uint32_t label;
	const int8_t *data;
	size_t len;
	uint32_t cls;
	struct fqt_zephyr_status *status;
	int err; /* errno of the service's `err` line */
};

/* Written by the service thread only (from its reply lines). */
static char last_error[FQT_ERROR_MESSAGE_SIZE + 64];

static int errno_of(const char *reason)
{
	static const struct {
		const char *prefix;
		int err;
	} map[] = {
		{"busy", -EBUSY},
		{"sample store full", -ENOSPC},
		{"no model", -ENOENT},
		{"no valid saved model", -ENOENT},
		{"no pushed blob", -ENOENT},
		{"training engine not built", -ENOTSUP},
		{"no storage", -ENOTSUP},
		{"this firmware has no built", -ENOTSUP},
		{"storage", -EIO},
		{"read", -EIO},
		{"slot", -EIO},
		{"inference failed", -EIO},
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (strncmp(reason, map[i].prefix, strlen(map[i].prefix)) == 0) {
			return map[i].err;
		}
	}
	return -EINVAL;
}

/* The reply lines of a request: only an `err` line matters to the caller. */
static void capture(void *ctx, const char *line)
{
	struct api_request *r = ctx;

	if (strncmp(line, "err ", 4) == 0) {
		(void)snprintf(last_error, sizeof(last_error), "%s", line + 4);
		r->err = errno_of(line + 4);
		LOG_WRN("%s", line);
	}
}

static void read_status(const fqt_service *svc, struct fqt_zephyr_status *st)
{
	const uint32_t done = svc->job_index;

	memset(st, 0, sizeof(*st));
	st->busy = svc->job != FQT_JOB_NONE;
	st->training = svc->job == FQT_JOB_TRAIN;
	if (st->training) {
		st->epoch = svc->job_epoch + 1u;
		st->epochs = svc->train.epochs;
		st->sample = done;
		st->samples = svc->job_count;
		st->correct = svc->job_correct;
		st->loss_micro = done ? (uint32_t)(svc->job_loss_micro / done) : 0u;
	}
	st->stored = svc->sample_count;
	st->capacity = svc->sample_capacity;
	st->last = svc->last_job_result;
}

static int run_api_request(fqt_service *svc, struct fqt_request *req)
{
	struct api_request *r = CONTAINER_OF(req, struct api_request, req);
	fqt_service_output out = {.write = capture, .ctx = r};
	int rc;

	if (svc == NULL) {
		(void)snprintf(last_error, sizeof(last_error), "fqt service not started");
		return -ENODEV;
	}
	switch (r->op) {
	case OP_ADD_SAMPLE:
		rc = fqt_service_add_sample(svc, r->label, r->data, r->len, &out);
		break;
	case OP_PREDICT:
		rc = fqt_service_infer(svc, r->data, r->len, &r->cls, &out);
		break;
	case OP_STATUS:
		read_status(svc, r->status);
		rc = 0;
		break;
	default:
		rc = fqt_service_dispatch(svc, r->argc, r->argv, &out);
		break;
	}
	return rc == 0 ? 0 : (r->err != 0 ? r->err : -EINVAL);
}

static int submit(struct api_request *r)
{
	r->req.run = run_api_request;
	r->req.progress = (fqt_service_output){0}; /* a job's lines go to the log */
	return fqt_zephyr_submit(&r->req);
}

static int command(int argc, const char *const *argv)
{
	struct api_request r = {.op = OP_ARGV, .argc = argc};

	for (int i = 0; i < argc; i++) {
		r.argv[i] = (char *)argv[i]; /* the service's handlers do not write to argv */
	}
	return submit(&r);
}

int fqt_zephyr_load(bool builtin)
{
	const char *argv[] = {"load", builtin ? "builtin" : "pushed"};

	return command(ARRAY_SIZE(argv), argv);
}

int fqt_zephyr_add_sample(uint32_t label, const int8_t *data, size_t len)
{
	struct api_request r = {.op = OP_ADD_SAMPLE, .label = label, .data = data, .len = len};

	return data == NULL ? -EINVAL : submit(&r);
}

int fqt_zephyr_clear_samples(void)
{
	const char *argv[] = {"data", "clear"};

	return command(ARRAY_SIZE(argv), argv);
}

/* A layer mask as `train start` takes it: "last", or "i,j,..." (at most 64 layers). */
static void format_trainable(char *buf, size_t cap, uint64_t mask)
{
	size_t used = 0;

	buf[0] = '\0';
	if (mask == 0u) {
		(void)snprintf(buf, cap, "last");
		return;
	}
	for (unsigned int l = 0; l < 64u && used < cap; l++) {
		if (mask & ((uint64_t)1 << l)) {
			int n = snprintf(buf + used, cap - used, used ? ",%u" : "%u", l);

			used += n > 0 ? (size_t)n : 0u;
		}
	}
}

int fqt_zephyr_train_start(const struct fqt_zephyr_train_params *params)
{
	static const struct fqt_zephyr_train_params defaults = FQT_ZEPHYR_TRAIN_DEFAULTS;
	const struct fqt_zephyr_train_params *p = params != NULL ? params : &defaults;
	char epochs[12], lr[16], batch[12], lambda[16], seed[12], trainable[192];

	(void)snprintf(epochs, sizeof(epochs), "%u", p->epochs);
	(void)snprintf(lr, sizeof(lr), "%u.%06u", p->lr_micro / 1000000u, p->lr_micro % 1000000u);
	(void)snprintf(batch, sizeof(batch), "%u", p->batch);
	(void)snprintf(lambda, sizeof(lambda), "%u.%06u", p->lambda_min_micro / 1000000u,
		       p->lambda_min_micro % 1000000u);
	(void)snprintf(seed, sizeof(seed), "%u", p->seed);
	format_trainable(trainable, sizeof(trainable), p->trainable_mask);
	const char *argv[] = {
		"train", "start", epochs, lr, batch, lambda, seed, trainable,
		p->update_rule == FQT_ZEPHYR_UPDATE_STANDARDIZED ? "standardized" : "sgd",
		p->schedule == FQT_ZEPHYR_SCHEDULE_CONSTANT ? "constant" : "cosine"};

	return command(ARRAY_SIZE(argv), argv);
}

int fqt_zephyr_train_stop(void)
{
	const char *argv[] = {"train", "stop"};

	return command(ARRAY_SIZE(argv), argv);
}

int fqt_zephyr_train_status(struct fqt_zephyr_status *status)
{
	struct api_request r = {.op = OP_STATUS, .status = status};

	return status == NULL ? -EINVAL : submit(&r);
}

int fqt_zephyr_predict(const int8_t *data, size_t len, uint32_t *class_out)
{
	struct api_request r = {.op = OP_PREDICT, .data = data, .len = len};

	if (data == NULL || class_out == NULL) {
		return -EINVAL;
	}
	int rc = submit(&r);

	if (rc == 0) {
		*class_out = r.cls;
	}
	return rc;
}

int fqt_zephyr_save(void)
{
	const char *argv[] = {"save"};

	return command(ARRAY_SIZE(argv), argv);
}

int fqt_zephyr_restore(void)
{
	const char *argv[] = {"restore"};

	return command(ARRAY_SIZE(argv), argv);
}

const char *fqt_zephyr_last_error(void)
{
	return last_error;
}
