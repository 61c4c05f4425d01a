/*
 * Fully quantized training on a session (docs/training-semantics.md), bit-exact with the
 * golden model scripts/fqt/golden/trainer.py. No allocation, no OS calls: the arena is the
 * session's, the trainable weights, their gradient accumulators and per-channel state live
 * in a caller-given params buffer; everything else is in the fqt_trainer struct.
 *
 *     fqt_trainer t;                        // static: it holds the training plan
 *     size_t arena_need, params_need;
 *     fqt_trainer_memory(&t, &model, mask, &arena_need, &params_need);
 *     fqt_trainer_init(&t, &session, params, params_size, mask, &options);
 *     fqt_trainer_attach_blob(&t, &model, blob);   // optional: write updates back
 *     for each sample: fqt_trainer_step(&t, x, label, &loss, &pred);
 *     at the end of an epoch: fqt_trainer_flush(&t);
 */
#ifndef FQT_TRAINER_H_
#define FQT_TRAINER_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/config.h"
#include "fqt/layer_view.h"
#include "fqt/memory_plan.h"
#include "fqt/model.h"
#include "fqt/session.h"
#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FQT_Q15_ONE 32768
/* act (layers + 1), then per layer at most err, acc or tmp, sel, wg, ie; plus per trainable
 * layer a narrow gradient state's per-sample rows */
#define FQT_TRAIN_MAX_BUFFERS (5u * FQT_MAX_LAYERS + 1u + FQT_TRAIN_MAX_TRAINABLE)

/* The phases of a training step a phase hook sees (benchmarks/cortex_m/ times them). */
typedef enum fqt_train_phase {
	FQT_PHASE_FORWARD = 0,      /* one layer's forward (the inference path) */
	FQT_PHASE_LOSS,             /* softmax cross-entropy and the partial-update fraction */
	FQT_PHASE_ACTIVATION,       /* fused-activation mask and clip mask of one layer's error */
	FQT_PHASE_SELECT,           /* kept-channel selection of one weighted layer */
	FQT_PHASE_WEIGHT_GRADIENT,  /* one layer's weight and bias gradient */
	FQT_PHASE_INPUT_ERROR,      /* one layer's input-error sums (weighted layers and pools) */
	FQT_PHASE_ERROR_QUANT,      /* quantize_error / combining of one delivered error */
	FQT_PHASE_UPDATE,           /* one trainable layer's update and requantization */
	FQT_PHASE_COUNT
} fqt_train_phase;

/* Called at the start (end = 0) and the end (end = 1) of each phase of a step, for layer
 * `layer` (-1 for the loss). Never per element: a NULL check per phase is its whole cost. */
typedef void (*fqt_train_phase_hook)(void *ctx, fqt_train_phase phase, int32_t layer, int end);

typedef struct fqt_train_options {
	float lr;                   /* float32: the update runs no double arithmetic */
	float alpha_norm;           /* EMA weight of the old mean/std (0.85) */
	uint32_t batch;             /* samples per update */
	int32_t lambda_q15;         /* round(lambda_min * 2^15), 32768 = full updates */
	uint32_t seed;
	uint8_t stochastic_rounding;
	uint8_t fixed_error_scaling; /* 0: dynamic, 1: fixed 2^-7 */
	uint8_t center;              /* subtract the EMA mean (default 1) */
	uint8_t clip_mask;           /* RELU: drop errors where y == act_max (default 1) */
	uint8_t update_rule;         /* FQT_UPDATE_STANDARDIZED (default) or FQT_UPDATE_SGD */
	uint8_t loss;                /* FQT_LOSS_CROSS_ENTROPY (default) or FQT_LOSS_MSE */
	uint8_t learn_ranges;        /* EMA activation ranges (section 7.3; default 0) */
	uint8_t partial_fixed;       /* 1: every sample keeps lambda (fixed budget); 0: dynamic */
	uint8_t keep_classifier;     /* the last weighted layer is never cut by top-k (default 1) */
	uint8_t lean_memory;         /* 1: the lean training plan (docs/memory-plan.md; same bits,
				      * less arena, a slower input error); default 0 */
	uint8_t grad_state;          /* FQT_GRAD_STATE_INT32 (default), _INT16 or _INT8 (4.1) */
	uint8_t grad_nearest;        /* narrow state merges rounded to nearest (0: stochastic) */
	fqt_train_phase_hook phase_hook; /* optional phase timer (NULL: none) */
	void *phase_ctx;                 /* its first argument */
} fqt_train_options;

/* fqt_train_options.update_rule (docs/training-semantics.md section 7) */
#define FQT_UPDATE_STANDARDIZED 0u /* the paper's per-channel gradient standardization */
#define FQT_UPDATE_SGD 1u          /* plain SGD on the batch-mean real-unit gradient (7.1) */
/* fqt_train_options.grad_state (section 4 / 4.1): the mini-batch accumulator per weight */
#define FQT_GRAD_STATE_INT32 0u /* int32, one exponent per layer */
#define FQT_GRAD_STATE_INT16 1u /* int16 rows, an exponent per output channel */
#define FQT_GRAD_STATE_INT8 2u  /* int8 rows, an exponent per output channel */
/* fqt_train_options.loss (section 3) */
#define FQT_LOSS_CROSS_ENTROPY 0u
#define FQT_LOSS_MSE 1u /* squared error against an int8 target of the output's shape */

/* Per trainable layer: pointers into the params buffer plus the accumulator header. */
typedef struct fqt_train_layer {
	uint16_t layer;
	uint16_t per_channel; /* weight scale per channel */
	int32_t n_out, row;   /* output channels, weights per channel */
	uint32_t n_weights;
	int32_t has_bias;
	int8_t *w;
	int32_t *bias;
	int32_t *acc_w; /* int32 state: channel-major [n_out][row]; NULL for a narrow one */
	void *acc_n;    /* narrow state (int16 or int8): channel-major [n_out][row] */
	int32_t *acc_b; /* int32 bias sums [n_out] */
	int32_t *grad_exps; /* narrow state: exponent per channel (FQT_GRAD_EXP_EMPTY: none) */
	uint32_t grad_rng;  /* narrow state: the layer's stochastic-rounding generator */
	uint8_t grad_bytes; /* 4, 2 or 1 */
	int16_t rows_buf;   /* narrow state: plan buffer of the per-sample int32 rows */
	int32_t chunk;      /* channels those rows hold */
	int32_t *mult, *shift;
	float *scale; /* weight scale per channel (per tensor: scale[0]) */
	float *mu, *sd; /* EMA; sd < 0: not valid yet */
	int32_t grad_exp;
	uint32_t count;
	/* Where the layer's tensors lie in the blob the model was loaded from, for the
	 * write-back (fqt_trainer_sync_blob). */
	const int8_t *blob_weights;
	const void *blob_weight_scales;
	uint32_t weight_scale_count;
	const int32_t *blob_bias;
	const void *blob_bias_scales;
	uint32_t bias_scale_count;
	const int32_t *blob_multiplier, *blob_shift;
} fqt_train_layer;

/* A learned activation range (train/ranges.c): the output of trainable layer `root` and
 * the pool / RESHAPE outputs sharing its quantization, the layers that depend on it. */
#define FQT_RANGE_MAX_LAYERS 16u
typedef struct fqt_range_group {
	uint16_t root;
	uint8_t n_tensors, n_layers;
	int16_t tensors[FQT_RANGE_MAX_LAYERS];
	uint16_t layers[FQT_RANGE_MAX_LAYERS]; /* increasing index */
	float lo, hi;   /* EMA of the real min / max */
	float scale;    /* current quantization */
	int32_t zero_point;
	uint32_t scale_at[FQT_RANGE_MAX_LAYERS], zero_point_at[FQT_RANGE_MAX_LAYERS]; /* blob */
} fqt_range_group;

typedef struct fqt_train_counters {
	uint64_t samples, updates, forward_macs, backward_macs, backward_macs_full;
} fqt_train_counters;

typedef struct fqt_trainer {
	const fqt_model *model;
	fqt_session *session;
	uint8_t *arena;
	fqt_train_options opt;
	uint64_t trainable_mask;
	uint16_t first_bw;
	uint16_t n_train;
	/* Every layer decoded once (runtime/layer_ops.c); trainable layers' views point at
	 * the params buffer's weights. A step decodes no record. */
	fqt_layer_view views[FQT_MAX_LAYERS];
	int16_t output_buffer; /* plan buffer of the model output */
	int16_t loss_buffer;   /* plan buffer whose error the loss writes (the logits) */
	int8_t slot_of_layer[FQT_MAX_LAYERS]; /* index into layers[] or -1 */
	fqt_train_layer layers[FQT_TRAIN_MAX_TRAINABLE];
	/* training plan (train/train_plan.c): act (layer_count + 1), then err/acc/sel */
	uint16_t buffer_count;
	uint32_t arena_bytes, params_bytes;
	int16_t err_buf[FQT_MAX_LAYERS + 1]; /* per activation buffer b: its error buffer */
	int16_t acc_buf[FQT_MAX_LAYERS];     /* per layer: int32 input-error buffer */
	int16_t sel_buf[FQT_MAX_LAYERS];     /* per layer: channel selection scratch */
	int16_t wg_buf[FQT_MAX_LAYERS];      /* per trainable conv: weight-gradient scratch */
	int16_t ie_buf[FQT_MAX_LAYERS];      /* lean: per weighted layer: input-error scratch */
	int16_t tmp_buf[FQT_MAX_LAYERS];     /* lean: int8 copy of an input error to combine */
	int32_t err_exp[FQT_MAX_LAYERS + 1];
	uint8_t has_err[FQT_MAX_LAYERS + 1];
	fqt_plan_buffer buffers[FQT_TRAIN_MAX_BUFFERS];
	uint32_t l_max;
	uint32_t rng;
	uint64_t fwd_macs_per_sample;
	fqt_train_counters counters;
	int softmax_at_end;
	int32_t sm_mult, sm_shift, sm_diff_min; /* when the model does not end in SOFTMAX */
	int32_t mse_mult, mse_shift;            /* QuantizeMultiplier(s_out), loss MSE */
	float out_scale;
	fqt_range_group ranges[FQT_TRAIN_MAX_TRAINABLE];
	uint16_t n_ranges;
	int8_t range_of_layer[FQT_MAX_LAYERS]; /* group whose root is the layer, or -1 */
	fqt_model *blob_model;
	uint8_t *blob; /* writable blob: updates are written back, CRC refreshed */
} fqt_trainer;

/* Default options of the golden TrainConfig. */
void fqt_train_options_default(fqt_train_options *opt);

/* Bytes of arena and params a training session of `model` with the layers of
 * `trainable_mask` needs (scripts/fqt/plan.py training_arena / training_params), with the
 * int32 gradient state. `scratch` is used as workspace. */
fqt_status fqt_trainer_memory(fqt_trainer *scratch, const fqt_model *model,
			      uint64_t trainable_mask, size_t *arena_bytes, size_t *params_bytes);
/* The same for the plan `opt` selects (opt->lean_memory, opt->grad_state; NULL: the
 * defaults; plan.py plan_memory(memory=..., grad_state=...)). */
fqt_status fqt_trainer_memory_with(fqt_trainer *scratch, const fqt_model *model,
				   uint64_t trainable_mask, const fqt_train_options *opt,
				   size_t *arena_bytes, size_t *params_bytes);

/* Bind a trainer to a session (its model and arena) and a params buffer; copies the
 * trainable weights from the blob into params. */
fqt_status fqt_trainer_init(fqt_trainer *t, fqt_session *session, void *params,
			    size_t params_size, uint64_t trainable_mask,
			    const fqt_train_options *opt);

/* After every update write the trained tensors, scales and multipliers into `blob` (the
 * writable blob `model` was loaded from) and refresh its CRC. */
fqt_status fqt_trainer_attach_blob(fqt_trainer *t, fqt_model *model, uint8_t *blob);

/* One sample: forward, loss, backward, accumulation; the update runs when `batch`
 * samples have accumulated. loss_micro: reported loss x 1e6; predicted: argmax. */
fqt_status fqt_trainer_step(fqt_trainer *t, const int8_t *input, uint32_t label,
			    uint32_t *loss_micro, uint32_t *predicted);

/* Set the learning rate of the next updates (fqt_scheduled_lr's, before each epoch).
 * lr must be finite and > 0. */
fqt_status fqt_trainer_set_lr(fqt_trainer *t, float lr);

/* Learning-rate schedules (docs/training-semantics.md 7.2), per epoch. */
#define FQT_SCHEDULE_CONSTANT 0u
#define FQT_SCHEDULE_COSINE 1u
#define FQT_SCHEDULE_STEP 2u
typedef struct fqt_lr_schedule {
	float lr;             /* the base lr */
	uint8_t kind;         /* FQT_SCHEDULE_* */
	uint32_t warmup_epochs; /* linear warm-up epochs before the schedule */
	uint32_t step_epochs; /* STEP: epochs per step (0: no step) */
	float step_gamma;     /* STEP: lr factor per step */
} fqt_lr_schedule;

/* The lr of epoch `epoch` (1-based) of `epochs`, in float32 (train/schedule.c). */
float fqt_scheduled_lr(const fqt_lr_schedule *s, uint32_t epoch, uint32_t epochs);

/* One sample with the squared-error loss (options.loss FQT_LOSS_MSE): `target` holds the
 * int8 target of the model output's shape and quantization. loss_micro: reported loss
 * x 1e6 (saturated). */
fqt_status fqt_trainer_step_target(fqt_trainer *t, const int8_t *input, const int8_t *target,
				   uint32_t *loss_micro);

/* Apply a partial mini-batch (end of an epoch). */
fqt_status fqt_trainer_flush(fqt_trainer *t);

/* Write the current trained parameters into the attached blob (done after each update). */
fqt_status fqt_trainer_sync_blob(fqt_trainer *t);

size_t fqt_trainer_struct_size(void);

/* Samples, updates and MAC counters (forward / backward) since init. */
void fqt_trainer_counters(const fqt_trainer *t, fqt_train_counters *out);

/* ---- the pieces, exposed for tests ---------------------------------------------------- */
/* xorshift32: state from seed, next draw. */
uint32_t fqt_prng_seed(uint32_t seed);
uint32_t fqt_prng_next(uint32_t *state);

/* Softmax cross-entropy backward on int8 probabilities p[depth] (scale 1/256, zp -128):
 * error e[depth] (int8), its exponent and the magnitude l. */
void fqt_loss_backward(const int8_t *p, int32_t depth, uint32_t label, int fixed_scaling,
		       int8_t *e, int32_t *exponent, uint32_t *magnitude);
/* -ln(max(p[label] + 128, 1) / 256) x 1e6, rounded. */
uint32_t fqt_loss_micro(const int8_t *p, uint32_t label);
/* Squared-error backward (section 3.1): int8 output y and target (the output's
 * quantization), (mult, shift) = QuantizeMultiplier(s_out). */
void fqt_loss_mse_backward(const int8_t *y, const int8_t *target, int32_t depth, int32_t mult,
			   int32_t shift, int fixed_scaling, int8_t *e, int32_t *exponent,
			   uint32_t *magnitude);
/* 1/2 sum (s_out (y - t))^2 x 1e6, rounded, saturated. */
uint32_t fqt_loss_mse_micro(const int8_t *y, const int8_t *target, int32_t depth, float s_out);

/* Partial updates: fraction (Q15) of channels kept for a sample of loss magnitude l
 * (updates *l_max), and the kept-channel selection (ascending list, returns its length). */
int32_t fqt_partial_fraction(uint32_t magnitude, uint32_t *l_max, int32_t lambda_q15);
int32_t fqt_partial_keep_count(int32_t frac_q15, int32_t n_channels);
int32_t fqt_partial_select(const int8_t *err, int32_t positions, int32_t n_channels, int32_t k,
			   int32_t *score, uint16_t *kept);

#ifdef __cplusplus
}
#endif

#endif /* FQT_TRAINER_H_ */
