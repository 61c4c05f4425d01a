/*
 * Shared by the service's source files; not part of the public API.
 *
 * The files and who calls whom (no cycles; an arrow is "calls"):
 *
 *     dispatch.c  (init, the command table, help, ping, the dispatchers)
 *        -> models.c, samples.c, transfer.c, jobs.c (the command handlers), reply.c
 *     jobs.c      (predict, eval, train, progress, poll)  -> samples.c, models.c, frame.c,
 *                                                            reply.c
 *     transfer.c  (frames: begin/data/commit/abort, read) -> samples.c, models.c, frame.c,
 *                                                            reply.c
 *     samples.c   (data push|clear|status, the records)   -> models.c, reply.c
 *     models.c    (the A/B halves, info, load, export, save, restore)
 *                                                         -> slots.c, reply.c
 *     reply.c     (reply lines, formatters, argument checks) -> frame.c
 *     slots.c     (the two storage slots: no reply text)  -> runtime only
 *     frame.c     (the frame codec)                       -> runtime only
 */
#ifndef FQT_SERVICE_INTERNAL_H_
#define FQT_SERVICE_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>

#include "fqt/service.h"

#if defined(__GNUC__)
#define FQT_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define FQT_PRINTF_LIKE(f, a)
#endif

/* svc->xfer_type: what the open transfer stages (0: none). */
#define FQT_SVC_XFER_SAMPLES 1u
#define FQT_SVC_XFER_BLOB 2u

/* A command handler: argv[0] is the command's name. */
typedef int (*fqt_svc_cmd_fn)(fqt_service *svc, int argc, char **argv,
			      const fqt_service_output *out);

/* ---- reply.c: reply lines, formatters, argument parsing --------------------------------- */
/* Format one reply line into svc->line and write it. */
void fqt_svc_say(fqt_service *svc, const fqt_service_output *out, const char *format, ...)
	FQT_PRINTF_LIKE(3, 4);
/* Micro-units as a decimal ("0.003000") into buf[cap]; returns buf. */
const char *fqt_svc_micro_str(char *buf, size_t cap, uint64_t micro);
/* num / den as a percentage with two decimals ("81.23%") into buf[cap]; returns buf. */
const char *fqt_svc_percent_str(char *buf, size_t cap, uint32_t num, uint32_t den);
/* A non-negative decimal ("0.003", "1"; "1e-3" is not accepted) as micro-units: 0 or -1. */
int fqt_svc_parse_micro(const char *s, uint32_t *micro);
/* Argument `name` as an integer / a decimal in [min, max]; else an `err` line and -1. */
int fqt_svc_arg_u32(fqt_service *svc, const fqt_service_output *out, const char *name,
		    const char *s, uint32_t min, uint32_t max, uint32_t *value);
int fqt_svc_arg_micro(fqt_service *svc, const fqt_service_output *out, const char *name,
		      const char *s, uint32_t min, uint32_t max, uint32_t *value);
/* A hex string of exactly `size` bytes into dst: 0, or -1. */
int fqt_svc_decode_hex_exact(const char *hex, uint8_t *dst, size_t size);
/* 0 when a model is active / no job runs; else an `err` line and -1. */
int fqt_svc_require_model(fqt_service *svc, const fqt_service_output *out);
int fqt_svc_require_idle(fqt_service *svc, const fqt_service_output *out);
/* "eval", "train" or "idle". */
const char *fqt_svc_job_name(int job);

/* ---- frame.c: the frame codec's parsers ------------------------------------------------- */
/* A decimal u32 without sign, at most 10 digits; 0, or -1 when not one. */
int fqt_svc_parse_u32(const char *s, uint32_t *value);
/* `hex_len` hex digits into hex_len / 2 bytes; 0, or -1 when not hex. */
int fqt_svc_decode_hex(const char *hex, size_t hex_len, uint8_t *dst);

/* ---- models.c: the active model and the A/B halves of the model buffer ------------------ */
/* The active model, or NULL. */
fqt_model *fqt_svc_active_model(fqt_service *svc);
uint32_t fqt_svc_model_input_bytes(const fqt_model *m);
/* Element count of the output tensor (0 if it cannot be read). */
uint32_t fqt_svc_model_classes(const fqt_model *m);
/* The half (and models[] entry) the active model does not use. */
int fqt_svc_inactive_index(const fqt_service *svc);
/* Validate a blob into models[idx]: NULL, or why not (in svc->why). */
const char *fqt_svc_stage_model(fqt_service *svc, int idx, const uint8_t *blob, size_t size);
/* Make models[idx] (already staged) the active model; on failure an `err` line and -1. */
int fqt_svc_activate(fqt_service *svc, const fqt_service_output *out, int idx, int builtin,
		     const char *source);
int fqt_svc_cmd_info(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);
int fqt_svc_cmd_load(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);
int fqt_svc_cmd_export(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);
int fqt_svc_cmd_save(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);
int fqt_svc_cmd_restore(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

/* ---- samples.c: the sample store, records of (u16 label LE, input bytes) ----------------- */
/* Record `index` of the store (index == sample_count: where the next one goes). */
uint8_t *fqt_svc_sample_record(const fqt_service *svc, uint32_t index);
/* The label of a record. */
uint32_t fqt_svc_sample_label(const uint8_t *record);
/* The input bytes of a record. */
const int8_t *fqt_svc_sample_input(const uint8_t *record);
int fqt_svc_cmd_data(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

/* ---- transfer.c: staged transfers and `read` frames ------------------------------------- */
int fqt_svc_cmd_frame(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

/* ---- jobs.c: inference and the eval/train jobs ------------------------------------------ */
int fqt_svc_cmd_predict(fqt_service *svc, int argc, char **argv,
			const fqt_service_output *out);
int fqt_svc_cmd_eval(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);
int fqt_svc_cmd_train(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

/* ---- slots.c: the model blob in two storage slots (A/B); storage only ------------------- */
typedef enum fqt_slot_status {
	FQT_SLOT_OK = 0,
	FQT_SLOT_NO_STORAGE,     /* no storage driver, or slots too small for a header */
	FQT_SLOT_TOO_BIG,        /* the blob does not fit a slot (capacity: the most that does) */
	FQT_SLOT_WRITE_FAILED,   /* erase or write failed: that slot is invalid, the other kept */
	FQT_SLOT_READBACK_FAILED, /* written, but it does not read back as the newest valid copy */
	FQT_SLOT_NONE_VALID,     /* neither slot holds a valid copy */
	FQT_SLOT_CHANGED,        /* the blob read back does not match the header's CRC */
} fqt_slot_status;

typedef struct fqt_slot_result {
	uint32_t slot;     /* 0 (A) or 1 (B): the slot written or found */
	uint32_t seq;      /* its sequence number */
	uint32_t size;     /* blob bytes */
	uint32_t crc;      /* blob CRC-32 */
	uint32_t capacity; /* blob bytes a slot holds */
} fqt_slot_result;

/* FQT_SLOT_OK when `st` can hold the slots, else FQT_SLOT_NO_STORAGE. */
fqt_slot_status fqt_slots_check(const fqt_storage *st);
/* Write blob[size] to the slot that does not hold the newest valid copy (erase, blob, then
 * the header) and read it back; result names the slot, seq, size and crc written. */
fqt_slot_status fqt_slots_write_older(const fqt_storage *st, const uint8_t *blob,
				      uint32_t size, fqt_slot_result *result);
/* The newest valid slot: its slot, seq, size and crc (FQT_SLOT_NONE_VALID when none). */
fqt_slot_status fqt_slots_find_newest(const fqt_storage *st, fqt_slot_result *result);
/* The valid slot of rank 0 (the newest) or 1 (the older one, when both are valid). */
fqt_slot_status fqt_slots_find(const fqt_storage *st, uint32_t rank, fqt_slot_result *result);
/* Read the blob of a slot fqt_slots_find_newest found into dst[found->size] and check its
 * CRC again (FQT_SLOT_CHANGED when the read fails or it differs). */
fqt_slot_status fqt_slots_read(const fqt_storage *st, const fqt_slot_result *found,
			       uint8_t *dst);

#endif /* FQT_SERVICE_INTERNAL_H_ */
