/*
 * The sensor demo (CONFIG_FQT_APP_SENSOR): a thread that collects labeled samples and
 * learns from them on the board with no host attached, through the firmware API. The
 * "sensor" reads digits from flash (sensor_digits.h, `python -m fqt.vectors --digits`):
 * the first 120 are collected to train on, the last 40 are held out, and after every
 * epoch the thread logs how many of those the model gets right.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>

#include <fqt/zephyr/api.h>

#include "sensor_digits.h"

LOG_MODULE_REGISTER(fqt_sensor, LOG_LEVEL_INF);

#define CHECK_COUNT 40
#define TRAIN_COUNT (SENSOR_DIGITS_COUNT - CHECK_COUNT)

static const int8_t *reading(int i)
{
	return &sensor_digits[i * SENSOR_DIGITS_INPUT_SIZE];
}

static int held_out_correct(void)
{
	int correct = 0;

	for (int i = TRAIN_COUNT; i < SENSOR_DIGITS_COUNT; i++) {
		uint32_t cls;

		if (fqt_zephyr_predict(reading(i), SENSOR_DIGITS_INPUT_SIZE, &cls) == 0) {
			correct += cls == sensor_digit_labels[i];
		}
	}
	return correct;
}

static void sensor(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);
	struct fqt_zephyr_train_params params = FQT_ZEPHYR_TRAIN_DEFAULTS;
	struct fqt_zephyr_status st;
	int stored = 0;

	if (fqt_zephyr_load(true) != 0 || fqt_zephyr_clear_samples() != 0) {
		LOG_ERR("sensor: no model: %s", fqt_zephyr_last_error());
		return;
	}
	for (int i = 0; i < TRAIN_COUNT; i++) {
		if (fqt_zephyr_add_sample(sensor_digit_labels[i], reading(i),
					  SENSOR_DIGITS_INPUT_SIZE) != 0) {
			break; /* the store is full: train on what it holds */
		}
		stored++;
		k_msleep(CONFIG_FQT_APP_SENSOR_PERIOD_MS);
	}
	const int first = held_out_correct();

	LOG_INF("sensor: collected %d samples; epoch 0 held-out %d/%d correct", stored, first,
		CHECK_COUNT);
	params.batch = 8;
	params.seed = 1;
	int last = first;

	for (int e = 1; e <= CONFIG_FQT_APP_SENSOR_EPOCHS; e++) {
		params.seed = (uint32_t)e;
		if (fqt_zephyr_train_start(&params) != 0) {
			LOG_ERR("sensor: train start: %s", fqt_zephyr_last_error());
			return;
		}
		do {
			k_msleep(200);
			(void)fqt_zephyr_train_status(&st);
		} while (st.busy);
		last = held_out_correct();
		LOG_INF("sensor: epoch %d held-out %d/%d correct", e, last, CHECK_COUNT);
	}
	LOG_INF("sensor: done: held-out %d -> %d of %d correct", first, last, CHECK_COUNT);
}

/* Below the service thread: it waits on the service for every call anyway. */
K_THREAD_DEFINE(fqt_sensor_tid, 1024, sensor, NULL, NULL, NULL, CONFIG_FQT_SERVICE_PRIORITY + 2,
		0, 1000);
