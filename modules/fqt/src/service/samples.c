/*
 * The sample store: records of (u16 label LE, the model input's bytes) back to back in
 * cfg.sample_buffer, and `fqt data push|clear|status`. Bulk pushes are sample transfers
 * (transfer.c), staged behind the committed records.
 */
#include <string.h>

#include "service_internal.h"

uint8_t *fqt_svc_sample_record(const fqt_service *svc, uint32_t index)
{
	return svc->cfg.sample_buffer + (size_t)index * svc->record_bytes;
}

uint32_t fqt_svc_sample_label(const uint8_t *record)
{
	return (uint32_t)record[0] | ((uint32_t)record[1] << 8);
}

const int8_t *fqt_svc_sample_input(const uint8_t *record)
{
	return (const int8_t *)(record + 2);
}

static void put_label(uint8_t *record, uint32_t label)
{
	record[0] = (uint8_t)(label & 0xFFu);
	record[1] = (uint8_t)(label >> 8);
}

static int data_status(fqt_service *svc, const fqt_service_output *out)
{
	fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
	fqt_svc_say(svc, out, "sample_capacity %lu", (unsigned long)svc->sample_capacity);
	fqt_svc_say(svc, out, "sample_bytes %lu", (unsigned long)svc->sample_bytes);
	fqt_svc_say(svc, out, "staged_bytes %lu",
		    (unsigned long)(svc->xfer_type == FQT_SVC_XFER_SAMPLES ? svc->xfer_received
									     : 0u));
	fqt_svc_say(svc, out, "ok");
	return 0;
}

static int data_clear(fqt_service *svc, const fqt_service_output *out)
{
	if (fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	svc->sample_count = 0;
	if (svc->xfer_type == FQT_SVC_XFER_SAMPLES) {
		svc->xfer_type = 0;
	}
	fqt_svc_say(svc, out, "samples 0");
	fqt_svc_say(svc, out, "ok");
	return 0;
}

/* Room for one more sample, or an `err` line and -1 (the checks `data push` makes after
 * the label's). */
static int sample_room(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->xfer_type == FQT_SVC_XFER_SAMPLES) {
		fqt_svc_say(svc, out, "err a sample transfer is open: commit or abort it");
		return -1;
	}
	if (svc->sample_count >= svc->sample_capacity) {
		fqt_svc_say(svc, out, "err sample store full: %lu of %lu samples",
			    (unsigned long)svc->sample_count, (unsigned long)svc->sample_capacity);
		return -1;
	}
	return 0;
}

static int sample_stored(fqt_service *svc, const fqt_service_output *out, uint8_t *rec,
			 uint32_t label)
{
	put_label(rec, label);
	svc->sample_count++;
	fqt_svc_say(svc, out, "samples %lu", (unsigned long)svc->sample_count);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

/* One sample in one line: data push <label> <hex input>. Bulk: frames. */
static int data_push(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 4) {
		fqt_svc_say(svc, out, "err usage: fqt data push <label> <hex input>");
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	uint32_t label;
	const uint32_t classes = fqt_svc_model_classes(fqt_svc_active_model(svc));
	if (fqt_svc_arg_u32(svc, out, "label", argv[2], 0, classes - 1u, &label) != 0 ||
	    sample_room(svc, out) != 0) {
		return -1;
	}
	uint8_t *rec = fqt_svc_sample_record(svc, svc->sample_count);
	if (fqt_svc_decode_hex_exact(argv[3], rec + 2, svc->sample_bytes) != 0) {
		fqt_svc_say(svc, out, "err input must be %lu bytes as %lu hex digits",
			    (unsigned long)svc->sample_bytes, (unsigned long)(2u * svc->sample_bytes));
		return -1;
	}
	return sample_stored(svc, out, rec, label);
}

int fqt_service_add_sample(fqt_service *svc, uint32_t label, const int8_t *input, size_t size,
			   const fqt_service_output *out)
{
	if (svc == NULL || input == NULL || out == NULL) {
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	const uint32_t classes = fqt_svc_model_classes(fqt_svc_active_model(svc));
	if (label >= classes) {
		fqt_svc_say(svc, out, "err label must be 0..%lu", (unsigned long)(classes - 1u));
		return -1;
	}
	if (size != svc->sample_bytes) {
		fqt_svc_say(svc, out, "err input must be %lu bytes", (unsigned long)svc->sample_bytes);
		return -1;
	}
	if (sample_room(svc, out) != 0) {
		return -1;
	}
	uint8_t *rec = fqt_svc_sample_record(svc, svc->sample_count);
	memcpy(rec + 2, input, size);
	return sample_stored(svc, out, rec, label);
}

int fqt_svc_cmd_data(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc == 2 && strcmp(argv[1], "status") == 0) {
		return data_status(svc, out);
	}
	if (argc == 2 && strcmp(argv[1], "clear") == 0) {
		return data_clear(svc, out);
	}
	if (argc >= 2 && strcmp(argv[1], "push") == 0) {
		return data_push(svc, argc, argv, out);
	}
	fqt_svc_say(svc, out, "err usage: fqt data push <label> <hex>|clear|status");
	return -1;
}
