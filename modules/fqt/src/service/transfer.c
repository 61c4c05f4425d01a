/*
 * `fqt frame ...` (docs/protocol.md): staged transfers (begin, data, commit, abort) of
 * samples or a model blob, and `read` frames of the active blob. Data is staged; only a
 * commit that checks out changes the device's state. The codec is frame.c.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/byte_order.h"
#include "service_internal.h"

#define BEGIN_PAYLOAD_SIZE 12u

static const char *xfer_begin(fqt_service *svc, const fqt_frame *f, char *why, size_t cap)
{
	if (f->payload_size != BEGIN_PAYLOAD_SIZE) {
		return "begin payload must be 12 bytes: type, 0, 0, 0, total u32, crc32 u32";
	}
	const uint8_t type = f->payload[0];
	const uint32_t total = fqt_read_u32(f->payload + 4);
	if (svc->job != FQT_JOB_NONE) {
		return "busy: a job is running";
	}
	if (type == FQT_SVC_XFER_SAMPLES) {
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
	} else if (type == FQT_SVC_XFER_BLOB) {
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
	svc->xfer_expected_crc = fqt_read_u32(f->payload + 8);
	return NULL;
}

/* Where the open transfer's bytes go: behind the committed samples, or the free half. */
static uint8_t *xfer_dest(fqt_service *svc)
{
	if (svc->xfer_type == FQT_SVC_XFER_SAMPLES) {
		return fqt_svc_sample_record(svc, svc->sample_count);
	}
	return svc->half[fqt_svc_inactive_index(svc)];
}

static const char *commit_samples(fqt_service *svc, const fqt_service_output *out,
				  const uint8_t *base, char *why, size_t cap)
{
	const uint32_t n = svc->xfer_total / svc->record_bytes;
	const uint32_t classes = fqt_svc_model_classes(fqt_svc_active_model(svc));
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t label = fqt_svc_sample_label(base + (size_t)i * svc->record_bytes);
		if (label >= classes) {
			svc->xfer_type = 0;
			(void)snprintf(why, cap,
				       "label %lu of sample %lu is out of range [0, %lu): "
				       "transfer dropped",
				       (unsigned long)label, (unsigned long)i, (unsigned long)classes);
			return why;
		}
	}
	svc->sample_count += n;
	svc->xfer_type = 0;
	fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
	return NULL;
}

static const char *commit_blob(fqt_service *svc, const fqt_service_output *out,
			       const uint8_t *base, char *why, size_t cap)
{
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
	if (svc->xfer_type == FQT_SVC_XFER_SAMPLES) {
		return commit_samples(svc, out, base, why, cap);
	}
	return commit_blob(svc, out, base, why, cap);
}

/* A `read` frame: one chunk of the active blob as a device -> host frame, then the ack. */
static int frame_read(fqt_service *svc, const fqt_frame *f, const fqt_service_output *out)
{
	const fqt_model *m = fqt_svc_active_model(svc);
	if (m == NULL) {
		fqt_svc_say(svc, out, "err %lu no model loaded", (unsigned long)f->seq);
		return -1;
	}
	if (f->payload_size != 8u) {
		fqt_svc_say(svc, out, "err %lu read payload must be offset u32, length u32",
			    (unsigned long)f->seq);
		return -1;
	}
	const uint32_t offset = fqt_read_u32(f->payload);
	const uint32_t length = fqt_read_u32(f->payload + 4);
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

/* `cmd` frames: the command's reply lines pass through, its final `ok`/`err` is kept. */
typedef struct cmd_capture {
	fqt_service *svc;
	const fqt_service_output *out;
	int final_seen;
} cmd_capture;

static void cmd_capture_write(void *ctx, const char *line)
{
	cmd_capture *c = (cmd_capture *)ctx;
	if (!c->final_seen && (strcmp(line, "ok") == 0 || strncmp(line, "err ", 4) == 0)) {
		c->final_seen = 1;
		(void)snprintf(c->svc->cmd_result, sizeof(c->svc->cmd_result), "%s", line);
		return;
	}
	c->out->write(c->out->ctx, line);
}

/* `fqt frame <seq> cmd <hex of "train start 2 ...">`: the words after `fqt`, run once. A
 * resend of the last cmd seq answers its stored final line again without running it. */
static int frame_cmd(fqt_service *svc, const fqt_frame *f, const fqt_service_output *out)
{
	const unsigned long seq = (unsigned long)f->seq;
	if (svc->have_cmd_seq && f->seq == svc->cmd_seq) {
		if (strcmp(svc->cmd_result, "ok") == 0) {
			fqt_svc_say(svc, out, "ok %lu", seq);
			return 0;
		}
		fqt_svc_say(svc, out, "err %lu %s", seq, svc->cmd_result + 4);
		return -1;
	}
	if (f->payload_size == 0u || memchr(f->payload, '\0', f->payload_size) != NULL ||
	    (f->payload_size >= 5u && memcmp(f->payload, "frame", 5) == 0 &&
	     (f->payload_size == 5u || f->payload[5] == ' '))) {
		fqt_svc_say(svc, out, "err %lu cmd payload: a command other than frame", seq);
		return -1;
	}
	memcpy(svc->cmd_line, "fqt ", 4);
	memcpy(svc->cmd_line + 4, f->payload, f->payload_size);
	svc->cmd_line[4u + f->payload_size] = '\0';
	cmd_capture cap = {svc, out, 0};
	const fqt_service_output wrapped = {cmd_capture_write, &cap};
	svc->have_cmd_seq = 0; /* until this one has its final line */
	(void)fqt_service_dispatch_line(svc, svc->cmd_line, &wrapped);
	if (!cap.final_seen) {
		(void)snprintf(svc->cmd_result, sizeof(svc->cmd_result), "ok");
	}
	svc->have_cmd_seq = 1;
	svc->cmd_seq = f->seq;
	if (strcmp(svc->cmd_result, "ok") == 0) {
		fqt_svc_say(svc, out, "ok %lu", seq);
		return 0;
	}
	fqt_svc_say(svc, out, "err %lu %s", seq, svc->cmd_result + 4);
	return -1;
}

int fqt_svc_cmd_frame(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
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
	if (f->kind == FQT_FRAME_CMD) {
		return frame_cmd(svc, f, out);
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
