/*
 * The fqt service for application threads: a sensor thread adds the labeled samples it
 * collects, starts and stops training, asks how it goes, predicts and saves, with no
 * host attached. Every call is a request on the service thread's queue (the one owner of
 * the engine), answered with the same checks as the `fqt` shell commands
 * (docs/protocol.md), so any thread may call any of them at any time; a call waits until
 * the service thread has run it (at most one training sample, when a job runs). Not
 * from an ISR.
 *
 * Each returns 0 or a negative errno:
 *   -EBUSY    a train or eval job runs (only train_stop/status answer then);
 *   -ENOSPC   the sample store is full;
 *   -ENOENT   no model is active, or nothing saved to restore;
 *   -ENOTSUP  the firmware has no training engine, or no storage;
 *   -EINVAL   an argument the service rejected;
 *   -EIO      storage or inference failed;
 *   -ENODEV   the service did not start (see the boot log).
 * The service's one-line reason is logged at LOG_WRN and kept for fqt_zephyr_last_error().
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef FQT_ZEPHYR_API_H_
#define FQT_ZEPHYR_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* `fqt train start` arguments; FQT_ZEPHYR_TRAIN_DEFAULTS is what the command defaults to. */
struct fqt_zephyr_train_params {
	uint32_t epochs;           /* 1..1000 */
	uint32_t lr_micro;         /* learning rate x 1e6: 1..1000000 */
	uint32_t batch;            /* 1..1024 */
	uint32_t lambda_min_micro; /* dynamic partial updates x 1e6; 1000000 = off */
	uint32_t seed;
	uint64_t trainable_mask;   /* bit l: train layer l; 0: the last trainable layer */
	uint8_t update_rule;       /* FQT_ZEPHYR_UPDATE_* */
	uint8_t schedule;          /* FQT_ZEPHYR_SCHEDULE_*: the lr over the job's epochs */
};

/* update_rule: plain SGD on the batch-mean gradient (lr about 0.03..1), or the paper's
 * per-channel standardization (lr about 0.001..0.01) */
#define FQT_ZEPHYR_UPDATE_SGD 0u
#define FQT_ZEPHYR_UPDATE_STANDARDIZED 1u
#define FQT_ZEPHYR_SCHEDULE_COSINE 0u
#define FQT_ZEPHYR_SCHEDULE_CONSTANT 1u

#define FQT_ZEPHYR_TRAIN_DEFAULTS                                                              \
	{.epochs = 1, .lr_micro = 300000, .batch = 32, .lambda_min_micro = 1000000, .seed = 0,    \
	 .trainable_mask = 0, .update_rule = FQT_ZEPHYR_UPDATE_SGD,                               \
	 .schedule = FQT_ZEPHYR_SCHEDULE_COSINE}

struct fqt_zephyr_status {
	bool training;            /* a train job runs */
	bool busy;                /* a train or eval job runs */
	uint32_t epoch, epochs;   /* 1-based epoch of the running job, of its epochs */
	uint32_t sample, samples; /* samples done in this epoch, of the epoch's */
	uint32_t correct;         /* argmax == label among `sample` */
	uint32_t loss_micro;      /* mean cross-entropy x 1e6 over `sample` */
	uint32_t stored;          /* samples in the store */
	uint32_t capacity;        /* samples the store holds */
	const char *last;         /* the last train job: "done", "stopped", "failed", "none" */
};

/* Activate the model linked into flash (copied to RAM where it fits, so it can be
 * trained), or the blob a host pushed. */
int fqt_zephyr_load(bool builtin);

/* Add one sample of `len` bytes (the model's input bytes, int8) with class `label`. */
int fqt_zephyr_add_sample(uint32_t label, const int8_t *data, size_t len);

/* Empty the sample store. */
int fqt_zephyr_clear_samples(void);

/* Start training over the stored samples (`params` NULL: the defaults). The job runs on
 * the service thread; its progress and `epoch` lines are logged. */
int fqt_zephyr_train_start(const struct fqt_zephyr_train_params *params);

/* End the running job (train or eval) within one sample; 0 also when none ran. */
int fqt_zephyr_train_stop(void);

int fqt_zephyr_train_status(struct fqt_zephyr_status *status);

/* The class of one input of `len` bytes (refused with -EBUSY while a job runs). */
int fqt_zephyr_predict(const int8_t *data, size_t len, uint32_t *class_out);

/* Write the active model to the older flash slot / load the newest valid slot. */
int fqt_zephyr_save(void);
int fqt_zephyr_restore(void);

/* The reason the last failing call of this API gave ("" when none failed yet). The text
 * is overwritten by the next failing call of any thread. */
const char *fqt_zephyr_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* FQT_ZEPHYR_API_H_ */
