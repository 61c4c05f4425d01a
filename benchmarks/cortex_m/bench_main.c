/*
 * The Cortex-M benchmark (README "Cortex-M benchmark"): on one model blob, calibrate the
 * tick counter, time an inference layer by layer, then train on the given samples with the
 * trainer's phase hook timing every phase of every layer. Prints one record a line for
 * cortex_m.py; the forward output and the trained blob's CRC let it check bit-exactness
 * against the host.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "fqt/fqt.h"
#include "fqt/trainer.h"
#include "semihost.h"

static fqt_model model;
static fqt_session session;
static fqt_trainer trainer;
static fqt_error load_error;

/* Ticks and calls per (phase, layer + 1). */
static uint64_t phase_ticks[FQT_PHASE_COUNT][FQT_MAX_LAYERS + 1];
static uint32_t phase_calls[FQT_PHASE_COUNT][FQT_MAX_LAYERS + 1];
static uint32_t phase_start;

static void phase_hook(void *ctx, fqt_train_phase phase, int32_t layer, int end)
{
	const uint32_t now = timer_ticks();
	(void)ctx;
	if (!end) {
		phase_start = now;
		return;
	}
	phase_ticks[phase][layer + 1] += now - phase_start;
	phase_calls[phase][layer + 1] += 1u;
}

/* ---- output ------------------------------------------------------------------------ */

static char line[256];
static size_t line_len;

static void put(const char *s)
{
	while (*s != '\0' && line_len + 1u < sizeof(line)) {
		line[line_len++] = *s++;
	}
}

static void put_digits(uint64_t v)
{
	char d[24];
	int n = 0;
	do {
		d[n++] = (char)('0' + (int)(v % 10u));
		v /= 10u;
	} while (v != 0u);
	while (n > 0 && line_len + 1u < sizeof(line)) {
		line[line_len++] = d[--n];
	}
}

static void put_u64(uint64_t v)
{
	put(" ");
	put_digits(v);
}

static void put_i64(int64_t v)
{
	put(v < 0 ? " -" : " ");
	put_digits(v < 0 ? (uint64_t)-v : (uint64_t)v);
}

static void end_line(void)
{
	line[line_len++] = '\n';
	line[line_len] = '\0';
	semihost_write(line);
	line_len = 0;
}

static void record(const char *key)
{
	line_len = 0;
	put(key);
}

static void put_hex(const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	put(" ");
	for (size_t i = 0; i < n && line_len + 3u < sizeof(line); ++i) {
		line[line_len++] = hex[p[i] >> 4];
		line[line_len++] = hex[p[i] & 15u];
	}
}

static int fail(const char *what, int status)
{
	record("error");
	put(" ");
	put(what);
	put_i64(status);
	end_line();
	return 1;
}

/* ---- measurements ------------------------------------------------------------------- */

static void calibrate(void)
{
	static const uint32_t loops[2] = {1000u, 101000u};
	for (int i = 0; i < 2; ++i) {
		const uint32_t t0 = timer_ticks();
		calibration_loop(loops[i]);
		const uint32_t t1 = timer_ticks();
		record("calib");
		put_u64(loops[i]);
		put_u64(t1 - t0);
		end_line();
	}
	/* What a begin/end pair of the hook adds to a phase: timed back to back. */
	for (int i = 0; i < 4; ++i) {
		phase_hook(NULL, FQT_PHASE_COUNT - 1, -1, 0);
		phase_hook(NULL, FQT_PHASE_COUNT - 1, -1, 1);
	}
	record("hook");
	put_u64(phase_ticks[FQT_PHASE_COUNT - 1][0]);
	put_u64(phase_calls[FQT_PHASE_COUNT - 1][0]);
	end_line();
	memset(phase_ticks, 0, sizeof(phase_ticks));
	memset(phase_calls, 0, sizeof(phase_calls));
}

static int inference(void)
{
	fqt_status st = fqt_session_set_input(&session, fqt_bench_inputs, fqt_bench.input_size);
	if (st != FQT_OK) {
		return fail("set_input", st);
	}
	for (uint32_t li = 0; li < model.layer_count; ++li) {
		fqt_layer layer;
		fqt_model_layer(&model, li, &layer);
		const uint32_t t0 = timer_ticks();
		st = fqt_session_run_layers(&session, li, 1u);
		const uint32_t t1 = timer_ticks();
		if (st != FQT_OK) {
			return fail("run_layers", st);
		}
		record("infer_layer");
		put_u64(li);
		put_u64(layer.op);
		put_u64(fqt_model_layer_macs(&model, li));
		put_u64(t1 - t0);
		end_line();
	}
	/* The layers' outputs may have overwritten the input: set it again for the whole run. */
	st = fqt_session_set_input(&session, fqt_bench_inputs, fqt_bench.input_size);
	const uint32_t t0 = timer_ticks();
	if (st == FQT_OK) {
		st = fqt_session_run(&session);
	}
	const uint32_t t1 = timer_ticks();
	if (st != FQT_OK) {
		return fail("run", st);
	}
	const int8_t *out;
	size_t size;
	fqt_session_output(&session, &out, &size);
	record("infer");
	put_u64(t1 - t0);
	put_hex((const uint8_t *)out, size);
	end_line();
	return 0;
}

static int train(void)
{
	size_t arena_need, params_need;
	fqt_train_options opt;
	fqt_train_options_default(&opt);
	opt.lean_memory = fqt_bench.lean_memory;
	opt.grad_state = (uint8_t)fqt_bench.grad_state;
	fqt_status st = fqt_trainer_memory_with(&trainer, &model, fqt_bench.trainable_mask, &opt,
						&arena_need, &params_need);
	if (st != FQT_OK) {
		return fail("trainer_memory", st);
	}
	record("memory");
	put_u64(arena_need);
	put_u64(params_need);
	end_line();
	opt.lr = (float)fqt_bench.lr_micro / 1e6f;
	opt.batch = fqt_bench.batch;
	opt.seed = fqt_bench.seed;
	opt.grad_state = (uint8_t)fqt_bench.grad_state;
	opt.phase_hook = phase_hook;
	st = fqt_trainer_init(&trainer, &session, fqt_bench_params, fqt_bench_params_size,
			      fqt_bench.trainable_mask, &opt);
	if (st == FQT_OK) {
		st = fqt_trainer_attach_blob(&trainer, &model, fqt_bench_blob);
	}
	if (st != FQT_OK) {
		return fail("trainer_init", st);
	}
	for (uint32_t k = 0; k < fqt_bench.samples; ++k) {
		uint32_t loss, pred;
		const uint32_t t0 = timer_ticks();
		st = fqt_trainer_step(&trainer, fqt_bench_inputs + (size_t)k * fqt_bench.input_size,
				      fqt_bench_labels[k], &loss, &pred);
		const uint32_t t1 = timer_ticks();
		if (st != FQT_OK) {
			return fail("step", st);
		}
		record("step");
		put_u64(k);
		put_u64(t1 - t0);
		put_u64(loss);
		put_u64(pred);
		end_line();
	}
	st = fqt_trainer_flush(&trainer);
	if (st != FQT_OK) {
		return fail("flush", st);
	}
	for (int ph = 0; ph < FQT_PHASE_COUNT; ++ph) {
		for (uint32_t i = 0; i <= model.layer_count; ++i) {
			if (phase_calls[ph][i] == 0u) {
				continue;
			}
			record("phase");
			put_u64((uint64_t)ph);
			put_i64((int64_t)i - 1);
			put_u64(phase_calls[ph][i]);
			put_u64(phase_ticks[ph][i]);
			end_line();
		}
	}
	fqt_train_counters c;
	fqt_trainer_counters(&trainer, &c);
	record("counters");
	put_u64(c.samples);
	put_u64(c.updates);
	put_u64(c.forward_macs);
	put_u64(c.backward_macs);
	end_line();
	record("blob_crc");
	put_u64(fqt_crc32(0u, fqt_bench_blob, fqt_bench_blob_size));
	end_line();
	return 0;
}

int main(void)
{
	timer_start();
	calibrate();
	fqt_status st = fqt_model_load(&model, fqt_bench_blob, fqt_bench_blob_size, &load_error);
	if (st != FQT_OK) {
		semihost_write(load_error.message);
		return fail("model_load", st);
	}
	size_t shortfall = 0;
	st = fqt_session_create(&session, &model, fqt_bench_arena, fqt_bench_arena_size,
				&shortfall);
	if (st != FQT_OK) {
		return fail("session_create", (int)shortfall);
	}
	if (inference() != 0 || train() != 0) {
		return 1;
	}
	record("done");
	end_line();
	return 0;
}
