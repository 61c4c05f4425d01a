/*
 * The firmware API (fqt/zephyr/api.h) from application threads, against the service
 * thread: samples from two threads at once, training that raises held-out accuracy,
 * refusals while a job runs, stop, save/restore where the board has storage, and a
 * thread below the service's priority that runs during training (with the time it got:
 * the cost of the job's pauses).
 * SPDX-License-Identifier: Apache-2.0
 */
#include <errno.h>
#include <string.h>

#include <zephyr/kernel.h>
#include <zephyr/ztest.h>

#include <fqt/zephyr/api.h>

#include "sensor_digits.h"

#define INPUT SENSOR_DIGITS_INPUT_SIZE
#define TRAIN_COUNT 80
#define CHECK_FIRST 80
#define CHECK_COUNT 40

static const int8_t *digit(int i)
{
	return &sensor_digits[i * INPUT];
}

static int held_out_correct(void)
{
	int correct = 0;

	for (int i = CHECK_FIRST; i < CHECK_FIRST + CHECK_COUNT; i++) {
		uint32_t cls;

		zassert_ok(fqt_zephyr_predict(digit(i), INPUT, &cls), "%s", fqt_zephyr_last_error());
		correct += cls == sensor_digit_labels[i];
	}
	return correct;
}

static void wait_idle(int timeout_s)
{
	struct fqt_zephyr_status st;

	for (int t = 0; t < timeout_s * 10; t++) {
		zassert_ok(fqt_zephyr_train_status(&st));
		if (!st.busy) {
			return;
		}
		k_msleep(100);
	}
	ztest_test_fail();
}

/* Half of the training samples come from a second thread, at the same time. */
static K_THREAD_STACK_DEFINE(producer_stack, 1024);
static struct k_thread producer;

static void produce(void *first, void *count, void *p3)
{
	ARG_UNUSED(p3);
	for (int i = (int)(intptr_t)first; i < (int)(intptr_t)first + (int)(intptr_t)count; i++) {
		zassert_ok(fqt_zephyr_add_sample(sensor_digit_labels[i], digit(i), INPUT));
	}
}

/* Every test starts from the flash model (its fresh head) and an empty store. */
static void before(void *f)
{
	ARG_UNUSED(f);
	wait_idle(60);
	zassert_ok(fqt_zephyr_load(true), "%s", fqt_zephyr_last_error());
	zassert_ok(fqt_zephyr_clear_samples());
}

ZTEST(fqt_api, test_samples_are_checked_and_bounded)
{
	struct fqt_zephyr_status st;

	zassert_equal(fqt_zephyr_add_sample(0, digit(0), INPUT - 1), -EINVAL);
	zassert_equal(fqt_zephyr_add_sample(10, digit(0), INPUT), -EINVAL); /* 10 classes */
	zassert_equal(fqt_zephyr_add_sample(0, NULL, INPUT), -EINVAL);
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_equal(st.stored, 0);
	zassert_true(st.capacity > 0);
	for (uint32_t i = 0; i < st.capacity; i++) {
		int k = (int)(i % SENSOR_DIGITS_COUNT);

		zassert_ok(fqt_zephyr_add_sample(sensor_digit_labels[k], digit(k), INPUT));
	}
	zassert_equal(fqt_zephyr_add_sample(0, digit(0), INPUT), -ENOSPC);
	zassert_true(strstr(fqt_zephyr_last_error(), "sample store full") != NULL);
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_equal(st.stored, st.capacity);
}

ZTEST(fqt_api, test_training_from_threads_raises_accuracy)
{
	struct fqt_zephyr_train_params p = FQT_ZEPHYR_TRAIN_DEFAULTS;
	struct fqt_zephyr_status st;
	uint32_t cls;

	k_thread_create(&producer, producer_stack, K_THREAD_STACK_SIZEOF(producer_stack), produce,
			(void *)(intptr_t)(TRAIN_COUNT / 2), (void *)(intptr_t)(TRAIN_COUNT / 2),
			NULL, K_PRIO_PREEMPT(8), 0, K_NO_WAIT);
	produce((void *)0, (void *)(intptr_t)(TRAIN_COUNT / 2), NULL);
	k_thread_join(&producer, K_FOREVER);
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_equal(st.stored, TRAIN_COUNT);

	const int before = held_out_correct();

	p.epochs = 10;
	p.batch = 8;
	p.seed = 1;
	zassert_ok(fqt_zephyr_train_start(&p), "%s", fqt_zephyr_last_error());
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_true(st.training && st.epochs == 10 && st.samples == TRAIN_COUNT);
	/* While the job runs, what would touch the model or the store waits its turn. */
	zassert_equal(fqt_zephyr_predict(digit(0), INPUT, &cls), -EBUSY);
	zassert_equal(fqt_zephyr_add_sample(0, digit(0), INPUT), -EBUSY);
	zassert_equal(fqt_zephyr_train_start(&p), -EBUSY);
	wait_idle(600);
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_str_equal(st.last, "done");

	const int after = held_out_correct();

	TC_PRINT("held-out digits: %d -> %d of %d correct\n", before, after, CHECK_COUNT);
	zassert_true(after >= before + CHECK_COUNT / 4, "%d -> %d", before, after);
}

ZTEST(fqt_api, test_stop_ends_the_job)
{
	struct fqt_zephyr_train_params p = FQT_ZEPHYR_TRAIN_DEFAULTS;
	struct fqt_zephyr_status st;

	p.trainable_mask = 0;
	p.epochs = 1000;
	zassert_equal(fqt_zephyr_train_start(&p), -EINVAL); /* the store is empty */
	for (int i = 0; i < 16; i++) {
		zassert_ok(fqt_zephyr_add_sample(sensor_digit_labels[i], digit(i), INPUT));
	}
	p.lr_micro = 0; /* out of range: refused, nothing starts */
	zassert_equal(fqt_zephyr_train_start(&p), -EINVAL);
	p.lr_micro = 3000;
	zassert_ok(fqt_zephyr_train_start(&p), "%s", fqt_zephyr_last_error());
	/* No sleep first: on native_sim a job runs in zero simulated time, so 1000 epochs
	 * would end in any sleep; the stop request lands within one sample. */
	zassert_ok(fqt_zephyr_train_stop());
	zassert_ok(fqt_zephyr_train_status(&st));
	zassert_false(st.busy);
	zassert_str_equal(st.last, "stopped");
	zassert_ok(fqt_zephyr_train_stop()); /* nothing to stop is not an error */
}

ZTEST(fqt_api, test_save_and_restore)
{
	int rc = fqt_zephyr_save();

	if (rc == -ENOTSUP) {
		TC_PRINT("no storage partition on this board: %s\n", fqt_zephyr_last_error());
		zassert_equal(fqt_zephyr_restore(), -ENOTSUP);
		ztest_test_skip();
	}
	zassert_ok(rc, "%s", fqt_zephyr_last_error());
	zassert_ok(fqt_zephyr_restore(), "%s", fqt_zephyr_last_error());
}

/* ---- a thread below the service's priority during training ------------------------ */
static K_THREAD_STACK_DEFINE(low_stack, 512);
static struct k_thread low;
static volatile uint32_t low_loops;

static void spin(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);
	for (;;) {
		low_loops++;
		/* Burns 100 us of CPU; on native_sim it is also what lets simulated time pass
		 * (code there runs in zero time, and a bare loop would never give way). */
		k_busy_wait(100);
	}
}

/* Train 2 epochs over 32 stored samples; the wall time in ms. */
static int64_t timed_training(void)
{
	struct fqt_zephyr_train_params p = FQT_ZEPHYR_TRAIN_DEFAULTS;

	p.epochs = 2;
	const int64_t t0 = k_uptime_get();

	zassert_ok(fqt_zephyr_train_start(&p), "%s", fqt_zephyr_last_error());
	/* This thread sleeps while it waits, so only the service (and `low`) want the CPU. */
	wait_idle(600);
	return k_uptime_get() - t0;
}

ZTEST(fqt_api, test_lower_priority_thread_runs_during_training)
{
	k_thread_runtime_stats_t low0, low1;
	const uint32_t hz = sys_clock_hw_cycles_per_sec();

	for (int i = 0; i < 32; i++) {
		zassert_ok(fqt_zephyr_add_sample(sensor_digit_labels[i], digit(i), INPUT));
	}
	/* No other thread wants the CPU: the pauses should cost next to nothing. */
	const int64_t alone_ms = timed_training();

	k_tid_t tid = k_thread_create(&low, low_stack, K_THREAD_STACK_SIZEOF(low_stack), spin,
				      NULL, NULL, NULL, CONFIG_FQT_SERVICE_PRIORITY + 2, 0,
				      K_NO_WAIT);
	k_msleep(10);
	zassert_ok(fqt_zephyr_load(true));
	const uint32_t loops0 = low_loops;

	k_thread_runtime_stats_get(tid, &low0);
	/* A thread below the service that never blocks: it gets the whole pause each time. */
	const int64_t spin_ms = timed_training();

	k_thread_runtime_stats_get(tid, &low1);
	const uint32_t loops = low_loops - loops0;

	k_thread_abort(tid);
	const uint32_t low_ms =
		(uint32_t)((low1.execution_cycles - low0.execution_cycles) * 1000u / hz);

	TC_PRINT("train 2 epochs x 32 samples (head), slice %d ms, pause <= %d tick(s) at %d/s: "
		 "%lld ms alone; %lld ms beside a spinning lower-priority thread, which ran "
		 "%u ms (%u loops)\n",
		 CONFIG_FQT_SERVICE_JOB_SLICE_MS, CONFIG_FQT_SERVICE_JOB_PAUSE_TICKS,
		 CONFIG_SYS_CLOCK_TICKS_PER_SEC, alone_ms, spin_ms, low_ms, loops);
	if (CONFIG_FQT_SERVICE_JOB_PAUSE_TICKS > 0) {
		zassert_true(loops > 0, "the lower-priority thread never ran during training");
	} else {
		/* The busy loop: starved until the job ended; it only gets the last 100 ms
		 * poll interval of wait_idle(). */
		zassert_true(low_ms < 150u, "ran %u ms", low_ms);
	}
}

ZTEST_SUITE(fqt_api, NULL, NULL, before, NULL, NULL);
