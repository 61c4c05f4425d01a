/*
 * The device service: `fqt <sub> ...` commands (one dispatcher for the Zephyr shell and
 * the host device), the sample store, staged transfers and the eval/train jobs.
 * Protocol: docs/protocol.md. Save/restore: slots.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fqt/fqt.h"
#include "fqt/service.h"
#include "service_internal.h"

#define XFER_SAMPLES 1u
#define XFER_BLOB 2u
#define BEGIN_PAYLOAD_SIZE 12u
#define MAX_TRAIN_EPOCHS 1000u
#define MAX_TRAIN_BATCH 1024u

/* ---- output helpers ------------------------------------------------------------------ */
void fqt_svc_say(fqt_service *svc, const fqt_service_output *out, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	(void)vsnprintf(svc->line, sizeof(svc->line), format, ap);
	va_end(ap);
	if (out != NULL && out->write != NULL) {
		out->write(out->ctx, svc->line);
	}
}

/* Format micro-units as a decimal ("0.003000"). */
static const char *micro_str(char *buf, size_t cap, uint64_t micro)
{
	(void)snprintf(buf, cap, "%lu.%06lu", (unsigned long)(micro / 1000000u),
		       (unsigned long)(micro % 1000000u));
	return buf;
}

static const char *percent_str(char *buf, size_t cap, uint32_t num, uint32_t den)
{
	const uint64_t bp = den ? ((uint64_t)num * 10000u) / den : 0u; /* basis points */
	(void)snprintf(buf, cap, "%lu.%02lu%%", (unsigned long)(bp / 100u),
		       (unsigned long)(bp % 100u));
	return buf;
}

/* ---- argument parsing: every argument is range checked ------------------------------- */
static int arg_u32(fqt_service *svc, const fqt_service_output *out, const char *name,
		   const char *s, uint32_t min, uint32_t max, uint32_t *value)
{
	uint32_t v;
	if (fqt_svc_parse_u32(s, &v) != 0 || v < min || v > max) {
		fqt_svc_say(svc, out, "err %s must be an integer in [%lu, %lu], got '%s'", name,
			    (unsigned long)min, (unsigned long)max, s);
		return -1;
	}
	*value = v;
	return 0;
}

/* A non-negative decimal ("0.003", "1", "1e-3" is not accepted) as micro-units. */
static int parse_micro(const char *s, uint32_t *micro)
{
	uint64_t whole = 0;
	uint64_t frac = 0;
	uint32_t frac_digits = 0;
	size_t i = 0;
	int digits = 0;
	if (s == NULL) {
		return -1;
	}
	for (; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		whole = whole * 10u + (uint64_t)(s[i] - '0');
		if (whole > 4000u) {
			return -1;
		}
	}
	if (s[i] == '.') {
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (frac_digits < 6u) {
				frac = frac * 10u + (uint64_t)(s[i] - '0');
				frac_digits++;
			}
		}
	}
	if (s[i] != '\0' || digits == 0) {
		return -1;
	}
	for (; frac_digits < 6u; frac_digits++) {
		frac *= 10u;
	}
	*micro = (uint32_t)(whole * 1000000u + frac);
	return 0;
}

static int arg_micro(fqt_service *svc, const fqt_service_output *out, const char *name,
		     const char *s, uint32_t min, uint32_t max, uint32_t *value)
{
	uint32_t v;
	char lo[24];
	char hi[24];
	if (parse_micro(s, &v) != 0 || v < min || v > max) {
		fqt_svc_say(svc, out, "err %s must be a decimal in [%s, %s], got '%s'", name,
			    micro_str(lo, sizeof(lo), min), micro_str(hi, sizeof(hi), max), s);
		return -1;
	}
	*value = v;
	return 0;
}


/* ---- model state ---------------------------------------------------------------------- */
static fqt_model *active_model(fqt_service *svc)
{
	return svc->active < 0 ? NULL : &svc->models[svc->active];
}

static uint32_t model_input_bytes(const fqt_model *m)
{
	return m->inference_buffers[0].size;
}

static uint32_t model_classes(const fqt_model *m)
{
	fqt_tensor t;
	if (fqt_model_tensor(m, m->output_tensor, &t) != FQT_OK) {
		return 0;
	}
	return t.element_count;
}

int fqt_svc_inactive_index(const fqt_service *svc)
{
	return svc->active < 0 ? 0 : 1 - svc->active;
}

/* Validate blob into models[idx]; the active model stays as it is. */
const char *fqt_svc_stage_model(fqt_service *svc, int idx, const uint8_t *blob, size_t size)
{
	fqt_error err;
	const fqt_status st = fqt_model_load(&svc->models[idx], blob, size, &err);
	if (st != FQT_OK) {
		(void)snprintf(svc->why, sizeof(svc->why), "model rejected: %s: %s",
			       fqt_status_str(st), err.message);
		return svc->why;
	}
	const size_t need = fqt_model_inference_arena_size(&svc->models[idx]);
	if (need > svc->cfg.arena_size) {
		(void)snprintf(svc->why, sizeof(svc->why),
			       "model does not fit: needs %lu bytes of arena, the arena has %lu: "
			       "short by %lu bytes",
			       (unsigned long)need, (unsigned long)svc->cfg.arena_size,
			       (unsigned long)(need - svc->cfg.arena_size));
		return svc->why;
	}
	return NULL;
}

/* Make models[idx] (already staged) the active model. */
int fqt_svc_activate(fqt_service *svc, const fqt_service_output *out, int idx, int builtin,
		     const char *source)
{
	size_t short_by = 0;
	fqt_session s;
	const fqt_status st =
		fqt_session_create(&s, &svc->models[idx], svc->cfg.arena, svc->cfg.arena_size,
				   &short_by);
	if (st != FQT_OK) {
		fqt_svc_say(svc, out, "err session: %s (short by %lu bytes)", fqt_status_str(st),
			    (unsigned long)short_by);
		return -1;
	}
	const uint32_t in_bytes = model_input_bytes(&svc->models[idx]);
	const int keep_samples = svc->active >= 0 && in_bytes == svc->sample_bytes;
	svc->session = s;
	svc->active = idx;
	svc->active_builtin = builtin;
	svc->pushed_ready = 0;
	svc->source = source;
	if (!keep_samples) {
		if (svc->sample_count > 0u) {
			fqt_svc_say(svc, out, "note samples cleared: the input size changed");
		}
		svc->sample_bytes = in_bytes;
		svc->record_bytes = 2u + in_bytes;
		svc->sample_count = 0;
		svc->sample_capacity = (uint32_t)(svc->cfg.sample_buffer_size / svc->record_bytes);
	}
	svc->xfer_type = 0;
	return 0;
}

fqt_status fqt_service_init(fqt_service *svc, const fqt_service_config *config)
{
	if (svc == NULL || config == NULL || (config->arena == NULL && config->arena_size) ||
	    (config->sample_buffer == NULL && config->sample_buffer_size) ||
	    (config->model_buffer == NULL && config->model_buffer_size)) {
		return FQT_ERR_ARGUMENT;
	}
	if (((uintptr_t)config->arena % 4u) != 0u || ((uintptr_t)config->model_buffer % 4u) != 0u) {
		return FQT_ERR_ALIGNMENT;
	}
	memset(svc, 0, sizeof(*svc));
	svc->cfg = *config;
	svc->active = -1;
	svc->half_size = (config->model_buffer_size / 2u) & ~(size_t)3u;
	svc->half[0] = config->model_buffer;
	svc->half[1] = config->model_buffer != NULL ? config->model_buffer + svc->half_size : NULL;
	svc->source = "-";
	svc->last_job_result = "none";
	return FQT_OK;
}

static int require_model(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->active < 0) {
		fqt_svc_say(svc, out, "err no model loaded: `fqt load builtin`, push a blob or "
				      "`fqt restore`");
		return -1;
	}
	return 0;
}

static const char *job_name(int job)
{
	return job == FQT_JOB_EVAL ? "eval" : job == FQT_JOB_TRAIN ? "train" : "idle";
}

static int require_idle(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->job != FQT_JOB_NONE) {
		fqt_svc_say(svc, out, "err busy: the %s job is running (`fqt train stop` ends it)",
			    job_name(svc->job));
		return -1;
	}
	return 0;
}

/* ---- commands --------------------------------------------------------------------------- */
typedef int (*cmd_fn)(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

static int cmd_help(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

static int cmd_info(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argc;
	(void)argv;
	const fqt_model *m = active_model(svc);
	fqt_svc_say(svc, out, "version %s", FQT_VERSION_STRING);
	if (m != NULL) {
		fqt_svc_say(svc, out, "name %s", m->name[0] ? m->name : "-");
		fqt_svc_say(svc, out, "layers %u", (unsigned)m->layer_count);
		fqt_svc_say(svc, out, "input_bytes %lu", (unsigned long)model_input_bytes(m));
		fqt_svc_say(svc, out, "classes %lu", (unsigned long)model_classes(m));
		fqt_svc_say(svc, out, "blob_bytes %lu", (unsigned long)m->blob_size);
		fqt_svc_say(svc, out, "blob_crc %08lx", (unsigned long)m->crc32);
		fqt_svc_say(svc, out, "source %s", svc->source);
		fqt_svc_say(svc, out, "arena_used %lu",
			    (unsigned long)fqt_model_inference_arena_size(m));
	} else {
		fqt_svc_say(svc, out, "name -");
	}
	fqt_svc_say(svc, out, "arena_size %lu", (unsigned long)svc->cfg.arena_size);
	fqt_svc_say(svc, out, "model_buffer %lu", (unsigned long)svc->half_size);
	fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
	fqt_svc_say(svc, out, "sample_capacity %lu", (unsigned long)svc->sample_capacity);
	fqt_svc_say(svc, out, "sample_pool %lu/%lu",
		    (unsigned long)(svc->sample_count * svc->record_bytes),
		    (unsigned long)svc->cfg.sample_buffer_size);
	fqt_svc_say(svc, out, "job %s", job_name(svc->job));
	fqt_svc_say(svc, out, "trainer %s", svc->cfg.trainer != NULL ? "built" : "not-built");
	fqt_svc_say(svc, out, "max_payload %u", (unsigned)FQT_FRAME_MAX_PAYLOAD);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

static int cmd_load(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 || (strcmp(argv[1], "builtin") != 0 && strcmp(argv[1], "pushed") != 0)) {
		fqt_svc_say(svc, out, "err usage: fqt load builtin|pushed");
		return -1;
	}
	if (require_idle(svc, out) != 0) {
		return -1;
	}
	const int idx = fqt_svc_inactive_index(svc);
	if (strcmp(argv[1], "pushed") == 0) {
		if (!svc->pushed_ready) {
			fqt_svc_say(svc, out, "err no pushed blob: send one with frames first");
			return -1;
		}
		if (fqt_svc_activate(svc, out, idx, 0, "pushed") != 0) {
			return -1;
		}
	} else {
		if (svc->cfg.builtin_blob == NULL || svc->cfg.builtin_blob_size == 0u) {
			fqt_svc_say(svc, out, "err this firmware has no built-in model");
			return -1;
		}
		/* Copied to RAM when it fits (the trainer updates weights in place); otherwise
		 * used in place, for inference only. */
		const uint8_t *blob = svc->cfg.builtin_blob;
		int in_place = 1;
		if (svc->cfg.builtin_blob_size <= svc->half_size) {
			memcpy(svc->half[idx], blob, svc->cfg.builtin_blob_size);
			blob = svc->half[idx];
			in_place = 0;
		}
		svc->pushed_ready = 0;
		const char *why = fqt_svc_stage_model(svc, idx, blob, svc->cfg.builtin_blob_size);
		if (why != NULL) {
			fqt_svc_say(svc, out, "err %s", why);
			return -1;
		}
		if (fqt_svc_activate(svc, out, idx, in_place, "builtin") != 0) {
			return -1;
		}
	}
	fqt_svc_say(svc, out, "loaded %s layers %u", svc->models[idx].name,
		    (unsigned)svc->models[idx].layer_count);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

/* Decode a hex string of exactly `size` bytes into dst. */
static int decode_hex(const char *hex, uint8_t *dst, size_t size)
{
	if (strlen(hex) != 2u * size) {
		return -1;
	}
	return fqt_svc_decode_hex(hex, 2u * size, dst);
}

static int cmd_data(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc >= 2 && strcmp(argv[1], "status") == 0 && argc == 2) {
		fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
		fqt_svc_say(svc, out, "sample_capacity %lu", (unsigned long)svc->sample_capacity);
		fqt_svc_say(svc, out, "sample_bytes %lu", (unsigned long)svc->sample_bytes);
		fqt_svc_say(svc, out, "staged_bytes %lu",
			    (unsigned long)(svc->xfer_type == XFER_SAMPLES ? svc->xfer_received : 0u));
		fqt_svc_say(svc, out, "ok");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "clear") == 0 && argc == 2) {
		if (require_idle(svc, out) != 0) {
			return -1;
		}
		svc->sample_count = 0;
		if (svc->xfer_type == XFER_SAMPLES) {
			svc->xfer_type = 0;
		}
		fqt_svc_say(svc, out, "samples 0");
		fqt_svc_say(svc, out, "ok");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "push") == 0) {
		/* One sample in one line: data push <label> <hex input>. Bulk: frames. */
		if (argc != 4) {
			fqt_svc_say(svc, out, "err usage: fqt data push <label> <hex input>");
			return -1;
		}
		if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
			return -1;
		}
		uint32_t label;
		const uint32_t classes = model_classes(active_model(svc));
		if (arg_u32(svc, out, "label", argv[2], 0, classes - 1u, &label) != 0) {
			return -1;
		}
		if (svc->xfer_type == XFER_SAMPLES) {
			fqt_svc_say(svc, out, "err a sample transfer is open: commit or abort it");
			return -1;
		}
		if (svc->sample_count >= svc->sample_capacity) {
			fqt_svc_say(svc, out, "err sample store full: %lu of %lu samples",
				    (unsigned long)svc->sample_count,
				    (unsigned long)svc->sample_capacity);
			return -1;
		}
		uint8_t *rec = svc->cfg.sample_buffer + (size_t)svc->sample_count * svc->record_bytes;
		if (decode_hex(argv[3], rec + 2, svc->sample_bytes) != 0) {
			fqt_svc_say(svc, out, "err input must be %lu bytes as %lu hex digits",
				    (unsigned long)svc->sample_bytes,
				    (unsigned long)(2u * svc->sample_bytes));
			return -1;
		}
		rec[0] = (uint8_t)(label & 0xFFu);
		rec[1] = (uint8_t)(label >> 8);
		svc->sample_count++;
		fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
		fqt_svc_say(svc, out, "ok");
		return 0;
	}
	fqt_svc_say(svc, out, "err usage: fqt data push <label> <hex>|clear|status");
	return -1;
}

/* ---- frames and transfers ----------------------------------------------------------------- */
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static const char *xfer_begin(fqt_service *svc, const fqt_frame *f, char *why, size_t cap)
{
	if (f->payload_size != BEGIN_PAYLOAD_SIZE) {
		return "begin payload must be 12 bytes: type, 0, 0, 0, total u32, crc32 u32";
	}
	const uint8_t type = f->payload[0];
	const uint32_t total = rd32(f->payload + 4);
	if (svc->job != FQT_JOB_NONE) {
		return "busy: a job is running";
	}
	if (type == XFER_SAMPLES) {
		if (svc->active < 0) {
			return "no model loaded: samples need its input size";
		}
		if (total == 0u || total % svc->record_bytes != 0u) {
			(void)snprintf(why, cap, "samples: total %lu is not a multiple of %lu "
						 "(u16 label + %lu input bytes)",
				       (unsigned long)total, (unsigned long)svc->record_bytes,
				       (unsigned long)svc->sample_bytes);
			return why;
		}
		const uint32_t adds = total / svc->record_bytes;
		if (adds > svc->sample_capacity - svc->sample_count) {
			(void)snprintf(why, cap,
				       "sample store full: it holds %lu of %lu samples, the "
				       "transfer adds %lu",
				       (unsigned long)svc->sample_count,
				       (unsigned long)svc->sample_capacity, (unsigned long)adds);
			return why;
		}
	} else if (type == XFER_BLOB) {
		if (total < FQT_BLOB_HEADER_SIZE || total > svc->half_size) {
			(void)snprintf(why, cap, "blob of %lu bytes: the model buffer holds %lu",
				       (unsigned long)total, (unsigned long)svc->half_size);
			return why;
		}
		svc->pushed_ready = 0; /* its half is about to be overwritten */
	} else {
		return "begin: type must be 1 (samples) or 2 (blob)";
	}
	svc->xfer_type = type;
	svc->xfer_total = total;
	svc->xfer_received = 0;
	svc->xfer_crc = 0;
	svc->xfer_expected_crc = rd32(f->payload + 8);
	return NULL;
}

static uint8_t *xfer_dest(fqt_service *svc)
{
	if (svc->xfer_type == XFER_SAMPLES) {
		return svc->cfg.sample_buffer + (size_t)svc->sample_count * svc->record_bytes;
	}
	return svc->half[fqt_svc_inactive_index(svc)];
}

static const char *xfer_commit(fqt_service *svc, const fqt_service_output *out, char *why,
			       size_t cap)
{
	if (svc->job != FQT_JOB_NONE) {
		/* begun before the job started: committing now would change the store or the
		 * staged model under the job; the transfer stays open for a later commit */
		return "busy: a job is running (commit again when it ends)";
	}
	if (svc->xfer_received != svc->xfer_total) {
		(void)snprintf(why, cap, "incomplete: %lu of %lu bytes",
			       (unsigned long)svc->xfer_received, (unsigned long)svc->xfer_total);
		return why;
	}
	if (svc->xfer_crc != svc->xfer_expected_crc) {
		svc->xfer_type = 0;
		return "transfer crc mismatch: staged data dropped, send it again";
	}
	const uint8_t *base = xfer_dest(svc);
	if (svc->xfer_type == XFER_SAMPLES) {
		const uint32_t n = svc->xfer_total / svc->record_bytes;
		const uint32_t classes = model_classes(active_model(svc));
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *rec = base + (size_t)i * svc->record_bytes;
			const uint32_t label = (uint32_t)rec[0] | ((uint32_t)rec[1] << 8);
			if (label >= classes) {
				svc->xfer_type = 0;
				(void)snprintf(why, cap,
					       "label %lu of sample %lu is out of range [0, %lu): "
					       "transfer dropped",
					       (unsigned long)label, (unsigned long)i,
					       (unsigned long)classes);
				return why;
			}
		}
		svc->sample_count += n;
		svc->xfer_type = 0;
		fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
		return NULL;
	}
	svc->xfer_type = 0;
	const int idx = fqt_svc_inactive_index(svc);
	const char *rejected = fqt_svc_stage_model(svc, idx, base, svc->xfer_total);
	if (rejected != NULL) {
		(void)snprintf(why, cap, "%s; the active model is unchanged", rejected);
		return why;
	}
	svc->pushed_ready = 1;
	fqt_svc_say(svc, out, "staged %s layers %u arena %lu: `fqt load pushed` activates it",
		    svc->models[idx].name, (unsigned)svc->models[idx].layer_count,
		    (unsigned long)fqt_model_inference_arena_size(&svc->models[idx]));
	return NULL;
}

static int frame_read(fqt_service *svc, const fqt_frame *f, const fqt_service_output *out)
{
	const fqt_model *m = active_model(svc);
	if (m == NULL) {
		fqt_svc_say(svc, out, "err %lu no model loaded", (unsigned long)f->seq);
		return -1;
	}
	if (f->payload_size != 8u) {
		fqt_svc_say(svc, out, "err %lu read payload must be offset u32, length u32",
			    (unsigned long)f->seq);
		return -1;
	}
	const uint32_t offset = rd32(f->payload);
	const uint32_t length = rd32(f->payload + 4);
	if (length > FQT_FRAME_MAX_PAYLOAD || offset > m->blob_size ||
	    length > m->blob_size - offset) {
		fqt_svc_say(svc, out, "err %lu read out of range: blob has %lu bytes, max %u a frame",
			    (unsigned long)f->seq, (unsigned long)m->blob_size,
			    (unsigned)FQT_FRAME_MAX_PAYLOAD);
		return -1;
	}
	if (fqt_frame_encode(svc->line, sizeof(svc->line), f->seq, FQT_FRAME_CHUNK,
			     m->blob + offset, length) == 0u) {
		fqt_svc_say(svc, out, "err %lu internal: line buffer", (unsigned long)f->seq);
		return -1;
	}
	out->write(out->ctx, svc->line);
	fqt_svc_say(svc, out, "ok %lu", (unsigned long)f->seq);
	return 0;
}

static int cmd_frame(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	fqt_frame *f = &svc->frame;
	const char *why = fqt_frame_decode(argc - 1, argv + 1, f);
	if (why != NULL) {
		if (f->seq_valid) {
			fqt_svc_say(svc, out, "err %lu %s", (unsigned long)f->seq, why);
		} else {
			fqt_svc_say(svc, out, "err - %s", why);
		}
		return -1;
	}
	if (f->kind == FQT_FRAME_READ) {
		return frame_read(svc, f, out);
	}
	if (f->kind == FQT_FRAME_CHUNK) {
		fqt_svc_say(svc, out, "err %lu chunk frames go from the device to the host",
			    (unsigned long)f->seq);
		return -1;
	}
	if (svc->have_last_seq && f->seq == svc->last_seq && f->kind == svc->last_kind) {
		fqt_svc_say(svc, out, "ok %lu", (unsigned long)f->seq); /* a resend: done already */
		return 0;
	}
	char why_buf[sizeof(svc->why) + 40];
	why = NULL;
	if (f->kind == FQT_FRAME_BEGIN) {
		why = xfer_begin(svc, f, why_buf, sizeof(why_buf));
	} else if (svc->xfer_type == 0u) {
		why = "no open transfer: send begin first";
	} else if (f->seq != svc->last_seq + 1u) {
		(void)snprintf(why_buf, sizeof(why_buf), "out of order: expected seq %lu",
			       (unsigned long)(svc->last_seq + 1u));
		why = why_buf;
	} else if (f->kind == FQT_FRAME_DATA) {
		if (f->payload_size > svc->xfer_total - svc->xfer_received) {
			why = "data beyond the total declared by begin";
		} else {
			memcpy(xfer_dest(svc) + svc->xfer_received, f->payload, f->payload_size);
			svc->xfer_received += f->payload_size;
			svc->xfer_crc = fqt_crc32(svc->xfer_crc, f->payload, f->payload_size);
		}
	} else if (f->kind == FQT_FRAME_COMMIT) {
		why = xfer_commit(svc, out, why_buf, sizeof(why_buf));
	} else { /* abort */
		svc->xfer_type = 0;
	}
	if (why != NULL) {
		fqt_svc_say(svc, out, "err %lu %s", (unsigned long)f->seq, why);
		return -1;
	}
	svc->have_last_seq = 1;
	svc->last_seq = f->seq;
	svc->last_kind = f->kind;
	fqt_svc_say(svc, out, "ok %lu", (unsigned long)f->seq);
	return 0;
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

static const uint8_t *sample_record(const fqt_service *svc, uint32_t index)
{
	return svc->cfg.sample_buffer + (size_t)index * svc->record_bytes;
}

static int cmd_predict(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 && !(argc == 3 && strcmp(argv[1], "hex") == 0)) {
		fqt_svc_say(svc, out, "err usage: fqt predict <sample index> | fqt predict hex <input>");
		return -1;
	}
	if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
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
		if (decode_hex(argv[2], (uint8_t *)in_buf, in_len) != 0) {
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
		if (arg_u32(svc, out, "index", argv[1], 0, svc->sample_count - 1u, &index) != 0) {
			return -1;
		}
		const uint8_t *rec = sample_record(svc, index);
		label = (uint32_t)rec[0] | ((uint32_t)rec[1] << 8);
		input = (const int8_t *)(rec + 2);
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

static uint32_t now_ms(const fqt_service *svc)
{
	return svc->cfg.clock_ms != NULL ? svc->cfg.clock_ms(svc->cfg.clock_ctx) : 0u;
}

static int cmd_eval(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt eval (takes no arguments)");
		return -1;
	}
	if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
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
	svc->stop_requested = 0;
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
	return l.op == FQT_OP_CONV_2D || l.op == FQT_OP_DEPTHWISE_CONV_2D ||
	       l.op == FQT_OP_FULLY_CONNECTED;
}

static int parse_trainable(fqt_service *svc, const fqt_service_output *out, const char *s,
			   uint64_t *mask)
{
	const fqt_model *m = active_model(svc);
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
			      const fqt_model *m, uint64_t trainable_mask)
{
	size_t arena_need = 0u, params_need = 0u, params_have = 0u;
	const fqt_trainer_ops *t = svc->cfg.trainer;

	if (t->memory == NULL || t->memory(t->ctx, m, trainable_mask, &arena_need, &params_need,
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

static int cmd_train(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	char a[24];
	char b[24];
	if (argc >= 2 && strcmp(argv[1], "status") == 0 && argc == 2) {
		if (svc->job == FQT_JOB_TRAIN) {
			const uint32_t done = svc->job_index;
			fqt_svc_say(svc, out,
				    "train running epoch %lu/%lu sample %lu/%lu loss %s acc %s",
				    (unsigned long)(svc->job_epoch + 1u),
				    (unsigned long)svc->train.epochs, (unsigned long)done,
				    (unsigned long)svc->job_count,
				    micro_str(a, sizeof(a), done ? svc->job_loss_micro / done : 0u),
				    percent_str(b, sizeof(b), svc->job_correct, done));
		} else {
			fqt_svc_say(svc, out, "train idle last %s job %s", svc->last_job_result,
				    job_name(svc->job));
		}
		fqt_svc_say(svc, out, "ok");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "stop") == 0 && argc == 2) {
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
			fqt_svc_say(svc, out, "stopped %s epoch %lu sample %lu", job_name(job),
				    (unsigned long)(svc->job_epoch + 1u),
				    (unsigned long)svc->job_index);
		}
		fqt_svc_say(svc, out, "ok");
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "start") != 0 || argc > 8) {
		fqt_svc_say(svc, out,
			    "err usage: fqt train start [epochs lr batch lambda_min seed trainable] | "
			    "stop | status");
		return -1;
	}
	if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
		return -1;
	}
	fqt_train_config c = {1u, 3000u, 32u, 1000000u, 0u, 0u};
	if ((argc > 2 && arg_u32(svc, out, "epochs", argv[2], 1u, MAX_TRAIN_EPOCHS, &c.epochs)) ||
	    (argc > 3 && arg_micro(svc, out, "lr", argv[3], 1u, 1000000u, &c.lr_micro)) ||
	    (argc > 4 && arg_u32(svc, out, "batch", argv[4], 1u, MAX_TRAIN_BATCH, &c.batch)) ||
	    (argc > 5 &&
	     arg_micro(svc, out, "lambda_min", argv[5], 0u, 1000000u, &c.lambda_min_micro)) ||
	    (argc > 6 && arg_u32(svc, out, "seed", argv[6], 0u, 0xFFFFFFFFu, &c.seed)) ||
	    parse_trainable(svc, out, argc > 7 ? argv[7] : "last", &c.trainable_mask)) {
		return -1;
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
	fqt_model *m = active_model(svc);
	if (train_memory_short(svc, out, m, c.trainable_mask)) {
		return -1;
	}
	const fqt_status st = svc->cfg.trainer->begin(svc->cfg.trainer->ctx, &svc->session, m,
						      svc->half[svc->active], &c);
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
	fqt_svc_say(svc, out, "train started epochs %lu lr %s batch %lu lambda_min %s samples %lu",
		    (unsigned long)c.epochs, micro_str(a, sizeof(a), c.lr_micro),
		    (unsigned long)c.batch, micro_str(b, sizeof(b), c.lambda_min_micro),
		    (unsigned long)svc->job_count);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

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
			    percent_str(b, sizeof(b), svc->job_correct, done));
	} else {
		fqt_svc_say(svc, out, "progress train epoch %lu/%lu sample %lu/%lu loss %s acc %s",
			    (unsigned long)(svc->job_epoch + 1u), (unsigned long)svc->train.epochs,
			    (unsigned long)done, (unsigned long)svc->job_count,
			    micro_str(a, sizeof(a), done ? svc->job_loss_micro / done : 0u),
			    percent_str(b, sizeof(b), svc->job_correct, done));
	}
}

int fqt_service_busy(const fqt_service *svc)
{
	return svc != NULL && svc->job != FQT_JOB_NONE;
}

int fqt_service_poll(fqt_service *svc, const fqt_service_output *out)
{
	if (!fqt_service_busy(svc)) {
		return 0;
	}
	char a[24];
	char b[24];
	if (svc->job == FQT_JOB_EVAL) {
		const uint8_t *rec = sample_record(svc, svc->job_index);
		const uint32_t label = (uint32_t)rec[0] | ((uint32_t)rec[1] << 8);
		const int8_t *y;
		size_t y_len;
		uint32_t cls;
		if (infer_one(svc, (const int8_t *)(rec + 2), &y, &y_len, &cls) != 0) {
			svc->job = FQT_JOB_NONE;
			fqt_svc_say(svc, out, "done eval failed at sample %lu",
				    (unsigned long)svc->job_index);
			return 0;
		}
		svc->job_correct += cls == label ? 1u : 0u;
		svc->job_index++;
		if (svc->job_index >= svc->job_count) {
			svc->job = FQT_JOB_NONE;
			fqt_svc_say(svc, out, "done eval samples %lu correct %lu accuracy %s",
				    (unsigned long)svc->job_count, (unsigned long)svc->job_correct,
				    percent_str(b, sizeof(b), svc->job_correct, svc->job_count));
			return 0;
		}
		progress(svc, out, 0);
		return 1;
	}
	/* train: one sample a poll */
	const fqt_trainer_ops *tr = svc->cfg.trainer;
	const uint32_t n = svc->job_count;
	const uint32_t idx =
		(uint32_t)(((uint64_t)svc->job_index * svc->job_stride + svc->job_offset) % n);
	const uint8_t *rec = sample_record(svc, idx);
	const uint32_t label = (uint32_t)rec[0] | ((uint32_t)rec[1] << 8);
	fqt_train_step_result r = {0u, 0u};
	fqt_status st = tr->step(tr->ctx, (const int8_t *)(rec + 2), label, &r);
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
			    micro_str(a, sizeof(a), svc->job_loss_micro / n),
			    percent_str(b, sizeof(b), svc->job_correct, n));
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
		shuffle_epoch(svc);
		return 1;
	}
	progress(svc, out, 0);
	return 1;
}

/* ---- export: the host reads the active blob with `read` frames ------------------------- */
static int cmd_export(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt export (then read frames)");
		return -1;
	}
	if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
		return -1;
	}
	const fqt_model *m = active_model(svc);
	fqt_svc_say(svc, out, "export bytes %lu crc %08lx name %s max_payload %u",
		    (unsigned long)m->blob_size,
		    (unsigned long)fqt_crc32(0, m->blob, m->blob_size), m->name[0] ? m->name : "-",
		    (unsigned)FQT_FRAME_MAX_PAYLOAD);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

static int cmd_save(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt save (takes no arguments)");
		return -1;
	}
	if (require_model(svc, out) != 0 || require_idle(svc, out) != 0) {
		return -1;
	}
	return fqt_svc_save(svc, out);
}

static int cmd_restore(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt restore (takes no arguments)");
		return -1;
	}
	if (require_idle(svc, out) != 0) {
		return -1;
	}
	return fqt_svc_restore(svc, out);
}

static int cmd_ping(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 || strlen(argv[1]) > 32u) {
		fqt_svc_say(svc, out, "err usage: fqt ping <token of at most 32 characters>");
		return -1;
	}
	fqt_svc_say(svc, out, "pong %s", argv[1]);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

typedef struct command {
	const char *name;
	const char *usage;
	cmd_fn fn;
} command;

static const command commands[] = {
	{"help", "help: this list", cmd_help},
	{"ping", "ping <token>: answers `pong <token>` (the host syncs on it)", cmd_ping},
	{"info", "info: model name, layers, arena and pool use, version", cmd_info},
	{"load", "load builtin|pushed: activate the built-in model or a pushed blob", cmd_load},
	{"data", "data push <label> <hex>|clear|status: the sample store", cmd_data},
	{"train",
	 "train start [epochs 1..1000] [lr 0.000001..1] [batch 1..1024] [lambda_min 0..1] "
	 "[seed] [last|all|i,j]; train stop; train status",
	 cmd_train},
	{"eval", "eval: accuracy over the stored samples (a job; ends with `done eval`)",
	 cmd_eval},
	{"predict", "predict <index> | predict hex <input>: class and int8 output", cmd_predict},
	{"export", "export: size and crc of the active blob, then `read` frames", cmd_export},
	{"save", "save: write the active model to the older flash slot", cmd_save},
	{"restore", "restore: load the newest valid flash slot", cmd_restore},
	{"frame", "frame <seq> <kind> <hex> <crc>: the data protocol (docs/protocol.md)",
	 cmd_frame},
};

static int cmd_help(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fqt_svc_say(svc, out, "help fqt %s", commands[i].usage);
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

const char *fqt_service_command_help(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0) {
			return commands[i].usage;
		}
	}
	return NULL;
}

int fqt_service_dispatch(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (svc == NULL || out == NULL || out->write == NULL) {
		return -1;
	}
	if (argc < 1 || argv == NULL || argv[0] == NULL) {
		return cmd_help(svc, argc, argv, out);
	}
	for (int i = 0; i < argc; i++) {
		if (argv[i] == NULL) {
			fqt_svc_say(svc, out, "err bad argument list");
			return -1;
		}
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, argv[0]) == 0) {
			return commands[i].fn(svc, argc, argv, out);
		}
	}
	char name[24];
	(void)snprintf(name, sizeof(name), "%s", argv[0]);
	fqt_svc_say(svc, out, "err unknown command '%s' (fqt help lists them)", name);
	return -1;
}

int fqt_service_dispatch_line(fqt_service *svc, char *line, const fqt_service_output *out)
{
	char *argv[FQT_SERVICE_MAX_ARGS];
	int argc = 0;
	char *p = line;
	if (line == NULL) {
		return -1;
	}
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			*p++ = '\0';
		}
		if (*p == '\0') {
			break;
		}
		if (argc == FQT_SERVICE_MAX_ARGS) {
			fqt_svc_say(svc, out, "err too many arguments (max %d)",
				    FQT_SERVICE_MAX_ARGS - 1);
			return -1;
		}
		argv[argc++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			p++;
		}
	}
	if (argc == 0) {
		return 0;
	}
	if (strcmp(argv[0], "fqt") == 0) {
		return fqt_service_dispatch(svc, argc - 1, argv + 1, out);
	}
	fqt_svc_say(svc, out, "err unknown command '%.16s': commands start with `fqt`", argv[0]);
	return -1;
}
