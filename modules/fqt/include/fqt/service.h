/*
 * The device service: the `fqt` shell commands, the framed data protocol
 * (docs/protocol.md), the sample store, jobs (eval, train) run in steps, and save/restore
 * of the model in two flash slots. Portable: no OS calls, no allocation; the caller gives
 * every buffer, an output callback, a millisecond clock and a storage driver.
 *
 *     static fqt_service svc;
 *     fqt_service_config cfg = { .arena = arena, .arena_size = sizeof(arena), ... };
 *     fqt_service_init(&svc, &cfg);
 *     // shell handler of `fqt <sub> ...` (argv[0] = sub):
 *     fqt_service_dispatch(&svc, argc, argv, &out);
 *     // owner thread, repeatedly while fqt_service_busy(&svc):
 *     fqt_service_poll(&svc, &out);
 *
 * Every command answers with zero or more `key value...` lines and a last line `ok` or
 * `err <reason>`; a frame answers `ok <seq>` or `err <seq> <reason>`. A rejected command
 * changes nothing.
 */
#ifndef FQT_SERVICE_H_
#define FQT_SERVICE_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/config.h"
#include "fqt/model.h"
#include "fqt/session.h"
#include "fqt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A reply or frame line: a frame holds twice FQT_FRAME_MAX_PAYLOAD (fqt/config.h) hex digits
 * plus ~40 characters, which the shell's line buffer must hold too. */
#define FQT_SERVICE_LINE_MAX (2u * FQT_FRAME_MAX_PAYLOAD + 64u)
/* Most words in one command line (fqt_service_dispatch_line), one more than the longest
 * command: `train start` with its 6 positionals and 5 option words. */
#define FQT_SERVICE_MAX_ARGS 14

/* ---- output ------------------------------------------------------------------------ */
/* Called once per reply line (no trailing newline). */
typedef void (*fqt_service_write_fn)(void *ctx, const char *line);
typedef struct fqt_service_output {
	fqt_service_write_fn write;
	void *ctx;
} fqt_service_output;

/* ---- storage: two slots of slot_size bytes (flash pages, or a file on the host) ------ */
typedef struct fqt_storage {
	uint32_t slot_size;
	/* Each returns 0 on success, nonzero on failure (e.g. reading past a short file). */
	int (*read)(void *ctx, uint32_t slot, uint32_t offset, void *data, uint32_t size);
	int (*write)(void *ctx, uint32_t slot, uint32_t offset, const void *data, uint32_t size);
	int (*erase)(void *ctx, uint32_t slot);
	void *ctx;
} fqt_storage;

/* ---- training engine: plugs in behind these calls ------------------------------------ */
typedef struct fqt_train_config {
	uint32_t epochs;
	uint32_t lr_micro;         /* learning rate x 1e6 */
	uint32_t batch;
	uint32_t lambda_min_micro; /* dynamic partial updates: x 1e6, 1000000 = off */
	uint32_t seed;
	uint64_t trainable_mask;   /* bit l: layer l is trained */
	uint8_t partial_fixed;     /* 1: every sample keeps lambda_min (fixed budget) */
	uint8_t update_rule;       /* FQT_UPDATE_SGD (the shell's default) or _STANDARDIZED */
	uint8_t schedule;          /* FQT_SCHEDULE_COSINE (the shell's default) or _CONSTANT */
	uint8_t lean_memory;       /* 1: the lean training plan (fqt_train_options.lean_memory) */
	uint8_t grad_state;        /* FQT_GRAD_STATE_* (fqt/trainer.h): int32, int16, int8 */
} fqt_train_config;

typedef struct fqt_train_step_result {
	uint32_t loss_micro; /* cross-entropy x 1e6 of this sample */
	uint8_t correct;     /* argmax == label */
} fqt_train_step_result;

typedef struct fqt_trainer_ops {
	/* Prepare to train `model` (its blob is writable RAM: the engine updates the weights
	 * in place) with `session`'s arena. */
	fqt_status (*begin)(void *ctx, fqt_session *session, fqt_model *model, uint8_t *blob,
			    const fqt_train_config *config);
	fqt_status (*step)(void *ctx, const int8_t *sample, uint32_t label,
			   fqt_train_step_result *result);
	fqt_status (*end_batch)(void *ctx);
	/* Optional: epoch `epoch` (1-based) of `epochs` starts (the lr schedule's step). */
	fqt_status (*begin_epoch)(void *ctx, uint32_t epoch, uint32_t epochs);
	fqt_status (*end)(void *ctx);
	/* Optional: the arena and params bytes training `model` as `config` says needs (its
	 * trainable_mask, lean_memory and grad_state), and the params bytes the trainer has,
	 * so a refusal can say by how many bytes the pools fall short. */
	fqt_status (*memory)(void *ctx, const fqt_model *model, const fqt_train_config *config,
			     size_t *arena_bytes, size_t *params_bytes, size_t *params_capacity);
	void *ctx;
} fqt_trainer_ops;

/* ---- frames (src/service/frame.c) ---------------------------------------------------- */
typedef enum fqt_frame_kind {
	FQT_FRAME_BEGIN = 1,
	FQT_FRAME_DATA = 2,
	FQT_FRAME_COMMIT = 3,
	FQT_FRAME_ABORT = 4,
	FQT_FRAME_READ = 5,
	FQT_FRAME_CHUNK = 6,
	FQT_FRAME_CMD = 7, /* a command line as the payload: CRC-checked, run at most once */
} fqt_frame_kind;

typedef struct fqt_frame {
	uint32_t seq;
	int seq_valid; /* the seq parsed, so an error ack can name it */
	uint8_t kind;  /* fqt_frame_kind */
	uint32_t payload_size;
	uint8_t payload[FQT_FRAME_MAX_PAYLOAD];
} fqt_frame;

/* ---- configuration ------------------------------------------------------------------ */
typedef struct fqt_service_config {
	uint8_t *arena; /* 4-byte aligned */
	size_t arena_size;
	uint8_t *sample_buffer; /* the sample store */
	size_t sample_buffer_size;
	uint8_t *model_buffer; /* RAM for pushed/restored blobs: split in two halves */
	size_t model_buffer_size;
	const uint8_t *builtin_blob; /* may be NULL */
	size_t builtin_blob_size;
	const fqt_storage *storage;     /* may be NULL: save/restore then fail */
	const fqt_trainer_ops *trainer; /* NULL: `train start` says the engine is not built */
	uint32_t (*clock_ms)(void *ctx);
	void *clock_ctx;
	uint32_t progress_interval_ms; /* at most one progress line per interval */
} fqt_service_config;

enum fqt_service_job { FQT_JOB_NONE = 0, FQT_JOB_EVAL = 1, FQT_JOB_TRAIN = 2 };

typedef struct fqt_service {
	fqt_service_config cfg;
	fqt_model models[2]; /* the active one and the one being staged */
	int active;          /* index into models[], -1: no model */
	int active_builtin;  /* active model is the built-in blob, in place */
	uint8_t *half[2];
	size_t half_size;
	int pushed_ready;    /* models[1 - active] holds a committed pushed blob */
	fqt_session session;
	/* sample store: records of (u16 label, input bytes) */
	uint32_t sample_bytes, record_bytes, sample_count, sample_capacity;
	/* transfer */
	uint8_t xfer_type; /* 0 none, 1 samples, 2 blob */
	uint32_t xfer_total, xfer_received, xfer_crc, xfer_expected_crc;
	int have_last_seq;
	uint32_t last_seq;
	uint8_t last_kind;
	fqt_frame frame;
	/* `cmd` frames: the last one run and its final line, answered again on a resend */
	int have_cmd_seq;
	uint32_t cmd_seq;
	char cmd_result[96];
	char cmd_line[FQT_FRAME_MAX_PAYLOAD + 8];
	/* job */
	int job;
	uint32_t job_index, job_count, job_epoch, job_correct, job_stride, job_offset;
	uint64_t job_loss_micro;
	uint32_t last_progress_ms;
	fqt_train_config train;
	uint32_t train_samples_done;
	const char *last_job_result;
	const char *source; /* where the active model came from */
	char why[FQT_ERROR_MESSAGE_SIZE + 64];
	char line[FQT_SERVICE_LINE_MAX];
} fqt_service;

fqt_status fqt_service_init(fqt_service *svc, const fqt_service_config *config);

/* One `fqt` shell command; argv[0] is the subcommand (`info`, `data`, `frame`, ...: the
 * command table in src/service/dispatch.c; `fqt help` lists it). */
int fqt_service_dispatch(fqt_service *svc, int argc, char **argv,
			 const fqt_service_output *out);

/* Split `line` in place on spaces and dispatch it; a leading `fqt` word is skipped. */
int fqt_service_dispatch_line(fqt_service *svc, char *line, const fqt_service_output *out);

/* For firmware that holds its samples in memory (the Zephyr API, include/fqt/zephyr/api.h):
 * the same checks and answer lines as `fqt data push` and `fqt predict hex`, without the
 * hex. `size` must be the model's input bytes; `*cls` gets the argmax. 0, or -1 after an
 * `err` line. */
int fqt_service_add_sample(fqt_service *svc, uint32_t label, const int8_t *input, size_t size,
			   const fqt_service_output *out);
int fqt_service_infer(fqt_service *svc, const int8_t *input, size_t size, uint32_t *cls,
		      const fqt_service_output *out);

/* Run one step of the current job (one sample); returns 1 while a job remains. */
int fqt_service_poll(fqt_service *svc, const fqt_service_output *out);
int fqt_service_busy(const fqt_service *svc);

/*
 * Decode the words after `frame`: argv = {seq, kind, hex payload or "-", crc32 hex}; the
 * CRC-32 covers "<seq> <kind> <hex>" exactly as sent. Returns NULL on success, else a
 * short reason (frame->seq_valid says whether frame->seq holds the frame's seq).
 */
const char *fqt_frame_decode(int argc, char **argv, fqt_frame *frame);

/* Write "frame <seq> <kind> <hex> <crc>" into line[cap]; returns its length, 0 if short. */
size_t fqt_frame_encode(char *line, size_t cap, uint32_t seq, fqt_frame_kind kind,
			const uint8_t *payload, size_t size);

const char *fqt_frame_kind_name(fqt_frame_kind kind);

#ifdef __cplusplus
}
#endif

#endif /* FQT_SERVICE_H_ */
