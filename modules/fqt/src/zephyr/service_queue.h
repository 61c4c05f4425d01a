/*
 * The service thread's request queue, shared by the shell glue and the firmware API
 * (zephyr/api.c): the service thread is the only one that touches the engine, so every
 * caller hands it a request and waits for the answer.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef FQT_ZEPHYR_SERVICE_QUEUE_H_
#define FQT_ZEPHYR_SERVICE_QUEUE_H_

#include <zephyr/kernel.h>

#include <fqt/service.h>

struct fqt_request {
	/* Runs on the service thread; its return value becomes `result`. */
	int (*run)(fqt_service *svc, struct fqt_request *req);
	/* Where the lines of a job this request starts go: NULL logs them (LOG_INF). */
	fqt_service_output progress;
	struct k_sem done;
	int result;
};

/* Queue `req` (its `run` and `progress` set) and wait until the service thread ran it.
 * Returns req->result, or -ENODEV when the service did not start. */
int fqt_zephyr_submit(struct fqt_request *req);

#endif /* FQT_ZEPHYR_SERVICE_QUEUE_H_ */
