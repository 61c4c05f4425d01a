/* fqt_trainer_ops for the device service, on top of fqt_trainer (src/train/). The
 * trained weights are written back into the active RAM blob after every update (CRC
 * refreshed), so inference, save and export see them. */
#include <string.h>

#include "fqt/service_trainer.h"

static fqt_status st_begin(void *ctx, fqt_session *session, fqt_model *model, uint8_t *blob,
			   const fqt_train_config *config)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	fqt_train_options opt;
	fqt_train_options_default(&opt);
	opt.lr = (float)config->lr_micro / 1e6f; /* lr_micro < 2^24: one rounding */
	opt.batch = config->batch;
	opt.lambda_q15 = (int32_t)(((uint64_t)config->lambda_min_micro * 32768u + 500000u) /
				   1000000u);
	opt.seed = config->seed;
	opt.partial_fixed = config->partial_fixed;
	opt.update_rule = config->update_rule;
	opt.grad_state = config->grad_state;
	st->schedule.lr = opt.lr;
	st->schedule.kind = config->schedule;
	opt.lean_memory = config->lean_memory;
	fqt_status s = fqt_trainer_init(&st->trainer, session, st->params, st->params_size,
					config->trainable_mask, &opt);
	if (s == FQT_OK) {
		s = fqt_trainer_attach_blob(&st->trainer, model, blob);
	}
	st->active = s == FQT_OK;
	return s;
}

static fqt_status st_step(void *ctx, const int8_t *sample, uint32_t label,
			  fqt_train_step_result *result)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	if (!st->active) {
		return FQT_ERR_STATE;
	}
	uint32_t loss = 0;
	uint32_t pred = 0;
	const fqt_status s = fqt_trainer_step(&st->trainer, sample, label, &loss, &pred);
	if (result != NULL) {
		result->loss_micro = loss;
		result->correct = pred == label ? 1u : 0u;
	}
	return s;
}

static fqt_status st_end_batch(void *ctx)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	return st->active ? fqt_trainer_flush(&st->trainer) : FQT_ERR_STATE;
}

static fqt_status st_begin_epoch(void *ctx, uint32_t epoch, uint32_t epochs)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	return st->active ? fqt_trainer_set_lr(&st->trainer,
					       fqt_scheduled_lr(&st->schedule, epoch, epochs))
			  : FQT_ERR_STATE;
}

static fqt_status st_end(void *ctx)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	if (!st->active) {
		return FQT_OK;
	}
	st->active = 0;
	return fqt_trainer_flush(&st->trainer);
}

static fqt_status st_memory(void *ctx, const fqt_model *model, const fqt_train_config *config,
			    size_t *arena_bytes, size_t *params_bytes, size_t *params_capacity)
{
	fqt_service_trainer *st = (fqt_service_trainer *)ctx;
	*params_capacity = st->params_size;
	fqt_train_options opt;
	fqt_train_options_default(&opt);
	opt.lean_memory = config->lean_memory;
	opt.grad_state = config->grad_state;
	/* The trainer struct doubles as the query's scratch: no job runs while one asks. */
	return st->active ? FQT_ERR_STATE
			  : fqt_trainer_memory_with(&st->trainer, model, config->trainable_mask,
						    &opt, arena_bytes, params_bytes);
}

fqt_status fqt_service_trainer_init(fqt_service_trainer *st, void *params, size_t params_size,
				    fqt_trainer_ops *ops)
{
	if (st == NULL || ops == NULL || (params == NULL && params_size > 0u)) {
		return FQT_ERR_ARGUMENT;
	}
	memset(st, 0, sizeof(*st));
	st->params = (uint8_t *)params;
	st->params_size = params_size;
	ops->begin = st_begin;
	ops->step = st_step;
	ops->end_batch = st_end_batch;
	ops->begin_epoch = st_begin_epoch;
	ops->end = st_end;
	ops->memory = st_memory;
	ops->ctx = st;
	return FQT_OK;
}
