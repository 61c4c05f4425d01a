/*
 * Inference and the jobs: `predict` (at once), `eval` and `train start|stop|status`. A job
 * runs one sample per fqt_service_poll() on the owner thread, so commands are answered
 * between two samples; training drives the pluggable engine of cfg.trainer.
 */
#include <string.h>

#include "fqt/model.h"
#include "fqt/trainer.h"
#include "runtime/layer_ops.h"
#include "service_internal.h"

#define MAX_TRAIN_EPOCHS 1000u
/* `train start`'s lr when none is given, per rule: the sgd lr is an fp32-like lr, the
 * standardized rule's moves each weight by about one lr (docs/training-semantics.md 7.1). */
#define DEFAULT_SGD_LR_MICRO 300000u
#define DEFAULT_STANDARDIZED_LR_MICRO 3000u
/* epochs lr batch lambda_min seed trainable */
#define TRAIN_POSITIONALS 6
#define MAX_TRAIN_BATCH 1024u

static uint32_t now_ms(const fqt_service *svc)
{
	return svc->cfg.clock_ms != NULL ? svc->cfg.clock_ms(svc->cfg.clock_ctx) : 0u;
}

/* ---- inference: predict and the eval job ------------------------------------------------ */
static int infer_one(fqt_service *svc, const int8_t *input, const int8_t **y, size_t *y_len,
		     uint32_t *argmax)
{
	if (fqt_session_set_input(&svc->session, input, svc->sample_bytes) != FQT_OK ||
	    fqt_session_run(&svc->session) != FQT_OK ||
	    fqt_session_output(&svc->session, y, y_len) != FQT_OK || *y_len == 0u) {
		return -1;
	}
	uint32_t best = 0;
	for (uint32_t i = 1; i < *y_len; i++) {
		if ((*y)[i] > (*y)[best]) {
			best = i;
		}
	}
	*argmax = best;
	return 0;
}

int fqt_service_infer(fqt_service *svc, const int8_t *input, size_t size, uint32_t *cls,
		      const fqt_service_output *out)
{
	const int8_t *y;
	size_t y_len;
	if (svc == NULL || input == NULL || cls == NULL || out == NULL) {
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	if (size != svc->sample_bytes) {
		fqt_svc_say(svc, out, "err input must be %lu bytes", (unsigned long)svc->sample_bytes);
		return -1;
	}
	if (infer_one(svc, input, &y, &y_len, cls) != 0) {
		fqt_svc_say(svc, out, "err inference failed");
		return -1;
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_cmd_predict(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 && !(argc == 3 && strcmp(argv[1], "hex") == 0)) {
		fqt_svc_say(svc, out, "err usage: fqt predict <sample index> | fqt predict hex <input>");
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	const int8_t *input;
	uint32_t label = 0xFFFFFFFFu;
	uint32_t index = 0;
	if (argc == 3) {
		int8_t *in_buf; /* decoded straight into the session's input buffer */
		size_t in_len;
		if (fqt_session_input(&svc->session, &in_buf, &in_len) != FQT_OK) {
			fqt_svc_say(svc, out, "err internal: no input buffer");
			return -1;
		}
		if (fqt_svc_decode_hex_exact(argv[2], (uint8_t *)in_buf, in_len) != 0) {
			fqt_svc_say(svc, out, "err input must be %lu bytes as %lu hex digits",
				    (unsigned long)in_len, (unsigned long)(2u * in_len));
			return -1;
		}
		input = in_buf;
	} else {
		if (svc->sample_count == 0u) {
			fqt_svc_say(svc, out, "err the sample store is empty");
			return -1;
		}
		if (fqt_svc_arg_u32(svc, out, "index", argv[1], 0, svc->sample_count - 1u,
				    &index) != 0) {
			return -1;
		}
		const uint8_t *rec = fqt_svc_sample_record(svc, index);
		label = fqt_svc_sample_label(rec);
		input = fqt_svc_sample_input(rec);
	}
	const int8_t *y;
	size_t y_len;
	uint32_t cls;
	if (infer_one(svc, input, &y, &y_len, &cls) != 0) {
		fqt_svc_say(svc, out, "err inference failed");
		return -1;
	}
	static const char digits[] = "0123456789abcdef";
	char hex[2u * 64u + 1u];
	size_t n = 0;
	for (size_t i = 0; i < y_len && i < 64u; i++) {
		const uint8_t b = (uint8_t)y[i];
		hex[n++] = digits[b >> 4];
		hex[n++] = digits[b & 0x0Fu];
	}
	hex[n] = '\0';
	if (label != 0xFFFFFFFFu) {
		fqt_svc_say(svc, out, "predict %lu class %lu label %lu output %s",
			    (unsigned long)index, (unsigned long)cls, (unsigned long)label, hex);
	} else {
		fqt_svc_say(svc, out, "predict - class %lu output %s", (unsigned long)cls, hex);
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_cmd_eval(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt eval (takes no arguments)");
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	if (svc->sample_count == 0u) {
		fqt_svc_say(svc, out, "err the sample store is empty");
		return -1;
	}
	svc->job = FQT_JOB_EVAL;
	svc->job_index = 0;
	svc->job_count = svc->sample_count;
	svc->job_correct = 0;
	svc->last_progress_ms = now_ms(svc);
	fqt_svc_say(svc, out, "eval started samples %lu", (unsigned long)svc->job_count);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

/* ---- training: the job drives a pluggable engine -------------------------------------- */
static int is_trainable_op(const fqt_model *m, uint32_t index)
{
	fqt_layer l;
	if (fqt_model_layer(m, index, &l) != FQT_OK) {
		return 0;
	}
	return fqt_op_is_weighted(l.op);
}

/* `last`, `all` or comma-separated indices of conv/dw/fc layers as a layer mask. */
static int parse_trainable(fqt_service *svc, const fqt_service_output *out, const char *s,
			   uint64_t *mask)
{
	const fqt_model *m = fqt_svc_active_model(svc);
	const uint32_t n = m->layer_count < 64u ? m->layer_count : 64u;
	*mask = 0;
	if (strcmp(s, "all") == 0 || strcmp(s, "last") == 0) {
		for (uint32_t i = n; i-- > 0u;) {
			if (is_trainable_op(m, i)) {
				*mask |= (uint64_t)1u << i;
				if (s[0] == 'l') {
					break;
				}
			}
		}
		return 0;
	}
	const char *p = s;
	while (*p != '\0') {
		char word[12];
		size_t k = 0;
		while (*p != '\0' && *p != ',' && k < sizeof(word) - 1u) {
			word[k++] = *p++;
		}
		word[k] = '\0';
		uint32_t idx;
		if (fqt_svc_parse_u32(word, &idx) != 0 || idx >= n || !is_trainable_op(m, idx)) {
			fqt_svc_say(svc, out,
				    "err trainable must be 'last', 'all' or comma-separated conv/fc "
				    "layer indices < %lu, got '%s'",
				    (unsigned long)n, s);
			return -1;
		}
		*mask |= (uint64_t)1u << idx;
		if (*p == ',' && p[1] != '\0') {
			p++;
		} else if (*p != '\0') { /* a trailing comma or an over-long index */
			fqt_svc_say(svc, out, "err trainable: '%s' is malformed", s);
			return -1;
		}
	}
	if (*mask == 0u) {
		fqt_svc_say(svc, out, "err trainable: no layer chosen");
		return -1;
	}
	return 0;
}

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
	while (b != 0u) {
		const uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* A per-epoch permutation without memory: index = (offset + i * stride) mod n. */
static void shuffle_epoch(fqt_service *svc)
{
	const uint32_t n = svc->job_count;
	uint32_t x = svc->train.seed * 2654435761u + svc->job_epoch * 40503u + 1u;
	x ^= x >> 15;
	svc->job_offset = n ? x % n : 0u;
	uint32_t stride = n > 2u ? 1u + (x >> 7) % (n - 1u) : 1u;
	while (n > 1u && gcd_u32(stride, n) != 1u) {
		stride = stride % (n - 1u) + 1u;
	}
	svc->job_stride = stride;
}

static void train_end(fqt_service *svc)
{
	if (svc->cfg.trainer != NULL && svc->cfg.trainer->end != NULL) {
		(void)svc->cfg.trainer->end(svc->cfg.trainer->ctx);
	}
	svc->job = FQT_JOB_NONE;
}

/* Training needs more than inference: say by how many bytes a pool falls short. */
static int train_memory_short(fqt_service *svc, const fqt_service_output *out,
			      const fqt_model *m, const fqt_train_config *c)
{
	size_t arena_need = 0u, params_need = 0u, params_have = 0u;
	const fqt_trainer_ops *t = svc->cfg.trainer;

	if (t->memory == NULL || t->memory(t->ctx, m, c, &arena_need, &params_need,
					   &params_have) != FQT_OK) {
		return 0; /* begin() still checks, with a less precise message */
	}
	if (arena_need > svc->cfg.arena_size) {
		fqt_svc_say(svc, out,
			    "err training needs %lu B of arena, the pool has %lu B: short by %lu bytes",
			    (unsigned long)arena_need, (unsigned long)svc->cfg.arena_size,
			    (unsigned long)(arena_need - svc->cfg.arena_size));
		return 1;
	}
	if (params_need > params_have) {
		fqt_svc_say(svc, out,
			    "err training needs %lu B of params, the pool has %lu B: short by %lu bytes",
			    (unsigned long)params_need, (unsigned long)params_have,
			    (unsigned long)(params_need - params_have));
		return 1;
	}
	return 0;
}

static int train_status(fqt_service *svc, const fqt_service_output *out)
{
	char a[24];
	char b[24];
	if (svc->job == FQT_JOB_TRAIN) {
		const uint32_t done = svc->job_index;
		fqt_svc_say(svc, out, "train running epoch %lu/%lu sample %lu/%lu loss %s acc %s",
			    (unsigned long)(svc->job_epoch + 1u), (unsigned long)svc->train.epochs,
			    (unsigned long)done, (unsigned long)svc->job_count,
			    fqt_svc_micro_str(a, sizeof(a), done ? svc->job_loss_micro / done : 0u),
			    fqt_svc_percent_str(b, sizeof(b), svc->job_correct, done));
	} else {
		fqt_svc_say(svc, out, "train idle last %s job %s", svc->last_job_result,
			    fqt_svc_job_name(svc->job));
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

static int train_stop(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->job == FQT_JOB_NONE) {
		fqt_svc_say(svc, out, "train idle: nothing to stop");
	} else {
		/* Takes effect now: the owner thread runs this between two samples. */
		const int job = svc->job;
		if (job == FQT_JOB_TRAIN) {
			train_end(svc);
			svc->last_job_result = "stopped";
		}
		svc->job = FQT_JOB_NONE;
		fqt_svc_say(svc, out, "stopped %s epoch %lu sample %lu", fqt_svc_job_name(job),
			    (unsigned long)(svc->job_epoch + 1u), (unsigned long)svc->job_index);
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

/* One option word of `train start` (partial mode, update rule, lr schedule, memory plan,
 * gradient state of docs/training-semantics.md 4.1) into `c`: returns its kind's bit, or 0
 * for a word that is no option (a positional argument). No word looks like a positional
 * (numbers, `last`, `all`, `i,j`). */
static unsigned int train_option(const char *w, fqt_train_config *c)
{
	if (strcmp(w, "dynamic") == 0 || strcmp(w, "fixed") == 0) {
		c->partial_fixed = w[0] == 'f';
		return 1u;
	}
	if (strcmp(w, "sgd") == 0 || strcmp(w, "standardized") == 0) {
		c->update_rule = w[1] == 'g' ? FQT_UPDATE_SGD : FQT_UPDATE_STANDARDIZED;
		return 2u;
	}
	if (strcmp(w, "cosine") == 0 || strcmp(w, "constant") == 0) {
		c->schedule = w[2] == 's' ? FQT_SCHEDULE_COSINE : FQT_SCHEDULE_CONSTANT;
		return 4u;
	}
	if (strcmp(w, "default") == 0 || strcmp(w, "lean") == 0) {
		c->lean_memory = w[0] == 'l'; /* the training memory plan, docs/memory-plan.md */
		return 8u;
	}
	if (strcmp(w, "int32") == 0 || strcmp(w, "int16") == 0 || strcmp(w, "int8") == 0) {
		c->grad_state = w[3] == '3' ? 0u : (w[3] == '1' ? 1u : 2u); /* FQT_GRAD_STATE_* */
		return 16u;
	}
	return 0u;
}

/* Split argv[2..argc) into the option words (any order and place, each kind once) and the
 * positional arguments, in order, into pos[0..*n_pos). */
static int split_train_args(fqt_service *svc, const fqt_service_output *out, int argc,
			    char **argv, fqt_train_config *c, const char **pos, int *n_pos)
{
	unsigned int seen = 0u;
	*n_pos = 0;
	for (int i = 2; i < argc; i++) {
		const unsigned int kind = train_option(argv[i], c);
		if (kind == 0u) {
			if (*n_pos == TRAIN_POSITIONALS) {
				fqt_svc_say(svc, out, "err argument '%s': not an option (fqt help "
						      "lists the option words)", argv[i]);
				return -1;
			}
			pos[(*n_pos)++] = argv[i];
		} else if (seen & kind) {
			fqt_svc_say(svc, out, "err option '%s': that kind of option is given twice",
				    argv[i]);
			return -1;
		} else {
			seen |= kind;
		}
	}
	return 0;
}

/* The schedule's lr of the epoch about to start (`epoch` 0-based). */
static fqt_status begin_epoch(const fqt_service *svc, uint32_t epoch, uint32_t epochs)
{
	const fqt_trainer_ops *tr = svc->cfg.trainer;
	return tr->begin_epoch == NULL ? FQT_OK : tr->begin_epoch(tr->ctx, epoch + 1u, epochs);
}

static int train_start(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	char a[24];
	char b[24];
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	/* The product's default: plain SGD with a cosine schedule (docs/training-semantics.md
	 * 7.1, 7.2); lr 0 until parsed: the rule's default lr then. */
	fqt_train_config c = {1u, 0u, 32u, 1000000u, 0u, 0u, 0u, FQT_UPDATE_SGD,
			      FQT_SCHEDULE_COSINE, 0u, 0u};
	const char *pos[TRAIN_POSITIONALS];
	int n = 0;
	if (split_train_args(svc, out, argc, argv, &c, pos, &n) != 0 ||
	    (n > 0 && fqt_svc_arg_u32(svc, out, "epochs", pos[0], 1u, MAX_TRAIN_EPOCHS, &c.epochs)) ||
	    (n > 1 && fqt_svc_arg_micro(svc, out, "lr", pos[1], 1u, 1000000u, &c.lr_micro)) ||
	    (n > 2 && fqt_svc_arg_u32(svc, out, "batch", pos[2], 1u, MAX_TRAIN_BATCH, &c.batch)) ||
	    (n > 3 && fqt_svc_arg_micro(svc, out, "lambda_min", pos[3], 0u, 1000000u,
					&c.lambda_min_micro)) ||
	    (n > 4 && fqt_svc_arg_u32(svc, out, "seed", pos[4], 0u, 0xFFFFFFFFu, &c.seed)) ||
	    parse_trainable(svc, out, n > 5 ? pos[5] : "last", &c.trainable_mask)) {
		return -1;
	}
	if (n < 2) {
		c.lr_micro = c.update_rule == FQT_UPDATE_SGD ? DEFAULT_SGD_LR_MICRO
							      : DEFAULT_STANDARDIZED_LR_MICRO;
	}
	if (svc->cfg.trainer == NULL || svc->cfg.trainer->begin == NULL ||
	    svc->cfg.trainer->step == NULL) {
		fqt_svc_say(svc, out, "err training engine not built: this firmware has no "
				      "training kernels (inference, eval and predict work)");
		return -1;
	}
	if (svc->sample_count == 0u) {
		fqt_svc_say(svc, out, "err the sample store is empty");
		return -1;
	}
	if (svc->active_builtin) {
		fqt_svc_say(svc, out, "err the model is used in place from flash: it cannot be "
				      "trained (enlarge the model buffer)");
		return -1;
	}
	fqt_model *m = fqt_svc_active_model(svc);
	if (train_memory_short(svc, out, m, &c)) {
		return -1;
	}
	fqt_status st = svc->cfg.trainer->begin(svc->cfg.trainer->ctx, &svc->session, m,
						svc->half[svc->active], &c);
	if (st == FQT_OK) {
		st = begin_epoch(svc, 0u, c.epochs);
		if (st != FQT_OK) {
			train_end(svc);
		}
	}
	if (st != FQT_OK) {
		fqt_svc_say(svc, out, "err training engine refused: %s", fqt_status_str(st));
		return -1;
	}
	svc->train = c;
	svc->job = FQT_JOB_TRAIN;
	svc->job_epoch = 0;
	svc->job_index = 0;
	svc->job_count = svc->sample_count;
	svc->job_correct = 0;
	svc->job_loss_micro = 0;
	svc->train_samples_done = 0;
	svc->last_progress_ms = now_ms(svc);
	shuffle_epoch(svc);
	fqt_svc_say(svc, out,
		    "train started epochs %lu lr %s batch %lu lambda_min %s samples %lu update %s "
		    "schedule %s",
		    (unsigned long)c.epochs, fqt_svc_micro_str(a, sizeof(a), c.lr_micro),
		    (unsigned long)c.batch, fqt_svc_micro_str(b, sizeof(b), c.lambda_min_micro),
		    (unsigned long)svc->job_count,
		    c.update_rule == FQT_UPDATE_SGD ? "sgd" : "standardized",
		    c.schedule == FQT_SCHEDULE_COSINE ? "cosine" : "constant");
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_cmd_train(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc == 2 && strcmp(argv[1], "status") == 0) {
		return train_status(svc, out);
	}
	if (argc == 2 && strcmp(argv[1], "stop") == 0) {
		return train_stop(svc, out);
	}
	if (argc < 2 || strcmp(argv[1], "start") != 0 || argc > 13) {
		fqt_svc_say(svc, out, "err usage: fqt train start [epochs lr batch lambda_min seed "
				      "trainable] [option words, see fqt help] | stop | status");
		return -1;
	}
	return train_start(svc, argc, argv, out);
}

/* ---- the owner thread's poll: one sample of the running job ----------------------------- */
static void progress(fqt_service *svc, const fqt_service_output *out, int force)
{
	const uint32_t t = now_ms(svc);
	if (!force && (svc->cfg.clock_ms == NULL ||
		       t - svc->last_progress_ms < svc->cfg.progress_interval_ms)) {
		return;
	}
	svc->last_progress_ms = t;
	char a[24];
	char b[24];
	const uint32_t done = svc->job_index;
	if (svc->job == FQT_JOB_EVAL) {
		fqt_svc_say(svc, out, "progress eval sample %lu/%lu acc %s", (unsigned long)done,
			    (unsigned long)svc->job_count,
			    fqt_svc_percent_str(b, sizeof(b), svc->job_correct, done));
	} else {
		fqt_svc_say(svc, out, "progress train epoch %lu/%lu sample %lu/%lu loss %s acc %s",
			    (unsigned long)(svc->job_epoch + 1u), (unsigned long)svc->train.epochs,
			    (unsigned long)done, (unsigned long)svc->job_count,
			    fqt_svc_micro_str(a, sizeof(a), done ? svc->job_loss_micro / done : 0u),
			    fqt_svc_percent_str(b, sizeof(b), svc->job_correct, done));
	}
}

int fqt_service_busy(const fqt_service *svc)
{
	return svc != NULL && svc->job != FQT_JOB_NONE;
}

static int poll_eval(fqt_service *svc, const fqt_service_output *out)
{
	char b[24];
	const uint8_t *rec = fqt_svc_sample_record(svc, svc->job_index);
	const uint32_t label = fqt_svc_sample_label(rec);
	const int8_t *y;
	size_t y_len;
	uint32_t cls;
	if (infer_one(svc, fqt_svc_sample_input(rec), &y, &y_len, &cls) != 0) {
		svc->job = FQT_JOB_NONE;
		fqt_svc_say(svc, out, "done eval failed at sample %lu", (unsigned long)svc->job_index);
		return 0;
	}
	svc->job_correct += cls == label ? 1u : 0u;
	svc->job_index++;
	if (svc->job_index >= svc->job_count) {
		svc->job = FQT_JOB_NONE;
		fqt_svc_say(svc, out, "done eval samples %lu correct %lu accuracy %s",
			    (unsigned long)svc->job_count, (unsigned long)svc->job_correct,
			    fqt_svc_percent_str(b, sizeof(b), svc->job_correct, svc->job_count));
		return 0;
	}
	progress(svc, out, 0);
	return 1;
}

/* train: one sample a poll */
static int poll_train(fqt_service *svc, const fqt_service_output *out)
{
	char a[24];
	char b[24];
	const fqt_trainer_ops *tr = svc->cfg.trainer;
	const uint32_t n = svc->job_count;
	const uint32_t idx =
		(uint32_t)(((uint64_t)svc->job_index * svc->job_stride + svc->job_offset) % n);
	const uint8_t *rec = fqt_svc_sample_record(svc, idx);
	fqt_train_step_result r = {0u, 0u};
	fqt_status st =
		tr->step(tr->ctx, fqt_svc_sample_input(rec), fqt_svc_sample_label(rec), &r);
	svc->job_index++;
	svc->train_samples_done++;
	if (st == FQT_OK && (svc->job_index % svc->train.batch == 0u || svc->job_index == n) &&
	    tr->end_batch != NULL) {
		st = tr->end_batch(tr->ctx);
	}
	if (st != FQT_OK) {
		train_end(svc);
		svc->last_job_result = "failed";
		fqt_svc_say(svc, out, "done train failed: %s", fqt_status_str(st));
		return 0;
	}
	svc->job_loss_micro += r.loss_micro;
	svc->job_correct += r.correct ? 1u : 0u;
	if (svc->job_index >= n) {
		fqt_svc_say(svc, out, "epoch %lu loss %s acc %s", (unsigned long)(svc->job_epoch + 1u),
			    fqt_svc_micro_str(a, sizeof(a), svc->job_loss_micro / n),
			    fqt_svc_percent_str(b, sizeof(b), svc->job_correct, n));
		svc->job_epoch++;
		svc->job_index = 0;
		svc->job_loss_micro = 0;
		svc->job_correct = 0;
		if (svc->job_epoch >= svc->train.epochs) {
			train_end(svc);
			svc->last_job_result = "done";
			fqt_svc_say(svc, out, "done train epochs %lu samples %lu",
				    (unsigned long)svc->train.epochs,
				    (unsigned long)svc->train_samples_done);
			return 0;
		}
		st = begin_epoch(svc, svc->job_epoch, svc->train.epochs);
		if (st != FQT_OK) {
			train_end(svc);
			svc->last_job_result = "failed";
			fqt_svc_say(svc, out, "done train failed: %s", fqt_status_str(st));
			return 0;
		}
		shuffle_epoch(svc);
		return 1;
	}
	progress(svc, out, 0);
	return 1;
}

int fqt_service_poll(fqt_service *svc, const fqt_service_output *out)
{
	if (!fqt_service_busy(svc)) {
		return 0;
	}
	if (svc->job == FQT_JOB_EVAL) {
		return poll_eval(svc, out);
	}
	return poll_train(svc, out);
}
