/*
 * Cycles per inference and per training sample, measured with k_cycle_get_32 on the
 * digits CNN (under QEMU with icount these are instructions times a fixed factor:
 * benchmarks/zephyr_bench.py converts them). Prints `bench ...` lines.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <zephyr/kernel.h>
#include <zephyr/ztest.h>

#include <fqt/fqt.h>
#include <fqt/trainer.h>

#include "golden_vectors.h"

#define RUNS 8

static uint8_t arena[8192] __aligned(16);
static uint8_t params[16384] __aligned(16);
static fqt_model model;
static fqt_session session;
static fqt_trainer trainer;

static void *bench_setup(void)
{
	fqt_error err;

	zassert_equal(fqt_model_load(&model, vector_model_blob, sizeof(vector_model_blob), &err),
		      FQT_OK, "%s", err.message);
	return NULL;
}

ZTEST(fqt_bench, test_cycles_per_inference)
{
	size_t shortfall = 0;

	zassert_equal(fqt_session_create(&session, &model, arena, sizeof(arena), &shortfall),
		      FQT_OK);
	uint32_t start = k_cycle_get_32();

	for (int i = 0; i < RUNS; i++) {
		fqt_session_set_input(&session, &vector_inputs[(i % VECTOR_COUNT) * VECTOR_INPUT_SIZE],
				      VECTOR_INPUT_SIZE);
		zassert_equal(fqt_session_run(&session), FQT_OK);
	}
	uint32_t cycles = (k_cycle_get_32() - start) / RUNS;

	printk("bench inference cycles %u hz %u macs %u\n", cycles,
	       (unsigned int)sys_clock_hw_cycles_per_sec(),
	       (unsigned int)(fqt_session_macs(&session) / RUNS));
	zassert_true(cycles > 0);
}

static void bench_training(const char *name, uint64_t trainable_mask)
{
	size_t shortfall = 0;
	size_t arena_need = 0, params_need = 0;
	fqt_train_options opt;

	fqt_train_options_default(&opt);
	opt.batch = 4;
	zassert_equal(fqt_trainer_memory(&trainer, &model, trainable_mask, &arena_need,
					 &params_need),
		      FQT_OK);
	zassert_true(arena_need <= sizeof(arena) && params_need <= sizeof(params));
	zassert_equal(fqt_session_create(&session, &model, arena, sizeof(arena), &shortfall),
		      FQT_OK);
	zassert_equal(fqt_trainer_init(&trainer, &session, params, sizeof(params),
				       trainable_mask, &opt),
		      FQT_OK);
	uint32_t start = k_cycle_get_32();

	for (int i = 0; i < RUNS; i++) {
		uint32_t loss = 0, predicted = 0;

		zassert_equal(fqt_trainer_step(&trainer,
					       &vector_inputs[(i % VECTOR_COUNT) * VECTOR_INPUT_SIZE],
					       (uint32_t)(i % 10), &loss, &predicted),
			      FQT_OK);
	}
	uint32_t cycles = (k_cycle_get_32() - start) / RUNS;
	fqt_train_counters c;

	fqt_trainer_counters(&trainer, &c);
	printk("bench train %s cycles %u hz %u arena %u params %u fwd_macs %u bwd_macs %u\n",
	       name, cycles, (unsigned int)sys_clock_hw_cycles_per_sec(),
	       (unsigned int)arena_need, (unsigned int)params_need,
	       (unsigned int)(c.forward_macs / RUNS), (unsigned int)(c.backward_macs / RUNS));
	zassert_true(cycles > 0);
}

ZTEST(fqt_bench, test_cycles_per_training_sample)
{
	uint64_t head = 0, all = 0;

	for (uint32_t l = 0; l < model.layer_count; l++) {
		fqt_layer layer;

		zassert_equal(fqt_model_layer(&model, l, &layer), FQT_OK);
		uint8_t op = layer.op;

		if (op == FQT_OP_CONV_2D || op == FQT_OP_DEPTHWISE_CONV_2D ||
		    op == FQT_OP_FULLY_CONNECTED) {
			head = 1ull << l; /* the last weighted layer */
			all |= 1ull << l;
		}
	}
	bench_training("head", head);
	bench_training("all", all);
}

ZTEST_SUITE(fqt_bench, NULL, bench_setup, NULL, NULL, NULL);
