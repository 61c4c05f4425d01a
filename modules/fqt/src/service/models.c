/*
 * The models: the active one and the one being staged, in the two halves of the model
 * buffer (A/B), and the commands on them: info, load, export, save and restore (the storage
 * of save/restore is slots.c; the replies and the activation are here).
 */
#include <stdio.h>
#include <string.h>

#include "fqt/fqt.h"
#include "service_internal.h"

fqt_model *fqt_svc_active_model(fqt_service *svc)
{
	return svc->active < 0 ? NULL : &svc->models[svc->active];
}

uint32_t fqt_svc_model_input_bytes(const fqt_model *m)
{
	return m->inference_buffers[0].size;
}

uint32_t fqt_svc_model_classes(const fqt_model *m)
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

/* Make models[idx] (already staged) the active model. The sample store is kept when the
 * input size stays the same; an open transfer is dropped. */
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
	const uint32_t in_bytes = fqt_svc_model_input_bytes(&svc->models[idx]);
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

/* ---- commands --------------------------------------------------------------------------- */
int fqt_svc_cmd_info(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt info (takes no arguments)");
		return -1;
	}
	const fqt_model *m = fqt_svc_active_model(svc);
	fqt_svc_say(svc, out, "version %s", FQT_VERSION_STRING);
	if (m != NULL) {
		fqt_svc_say(svc, out, "name %s", m->name[0] ? m->name : "-");
		fqt_svc_say(svc, out, "layers %u", (unsigned)m->layer_count);
		fqt_svc_say(svc, out, "input_bytes %lu",
			    (unsigned long)fqt_svc_model_input_bytes(m));
		fqt_svc_say(svc, out, "classes %lu", (unsigned long)fqt_svc_model_classes(m));
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
	fqt_svc_say(svc, out, "job %s", fqt_svc_job_name(svc->job));
	fqt_svc_say(svc, out, "trainer %s", svc->cfg.trainer != NULL ? "built" : "not-built");
	fqt_svc_say(svc, out, "max_payload %u", (unsigned)FQT_FRAME_MAX_PAYLOAD);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_cmd_load(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 || (strcmp(argv[1], "builtin") != 0 && strcmp(argv[1], "pushed") != 0)) {
		fqt_svc_say(svc, out, "err usage: fqt load builtin|pushed");
		return -1;
	}
	if (fqt_svc_require_idle(svc, out) != 0) {
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

/* export: the host then reads the active blob with `read` frames (transfer.c). */
int fqt_svc_cmd_export(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt export (then read frames)");
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	const fqt_model *m = fqt_svc_active_model(svc);
	fqt_svc_say(svc, out, "export bytes %lu crc %08lx name %s max_payload %u",
		    (unsigned long)m->blob_size,
		    (unsigned long)fqt_crc32(0, m->blob, m->blob_size), m->name[0] ? m->name : "-",
		    (unsigned)FQT_FRAME_MAX_PAYLOAD);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

static int say_no_storage(fqt_service *svc, const fqt_service_output *out)
{
	fqt_svc_say(svc, out, "err no storage for save/restore in this build");
	return -1;
}

int fqt_svc_cmd_save(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt save (takes no arguments)");
		return -1;
	}
	if (fqt_svc_require_model(svc, out) != 0 || fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	const fqt_model *m = fqt_svc_active_model(svc);
	fqt_slot_result r;
	switch (fqt_slots_write_older(svc->cfg.storage, m->blob, m->blob_size, &r)) {
	case FQT_SLOT_OK:
		break;
	case FQT_SLOT_TOO_BIG:
		fqt_svc_say(svc, out, "err blob of %lu bytes does not fit a %lu-byte slot",
			    (unsigned long)r.size, (unsigned long)r.capacity);
		return -1;
	case FQT_SLOT_WRITE_FAILED:
		fqt_svc_say(svc, out, "err storage write failed: slot %c is invalid, the last good "
				      "copy is kept",
			    (char)('A' + r.slot));
		return -1;
	case FQT_SLOT_READBACK_FAILED:
		fqt_svc_say(svc, out, "err read-back of slot %c failed: the last good copy is kept",
			    (char)('A' + r.slot));
		return -1;
	default:
		return say_no_storage(svc, out);
	}
	fqt_svc_say(svc, out, "saved slot %c seq %lu bytes %lu crc %08lx", (char)('A' + r.slot),
		    (unsigned long)r.seq, (unsigned long)r.size, (unsigned long)r.crc);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_cmd_restore(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt restore (takes no arguments)");
		return -1;
	}
	if (fqt_svc_require_idle(svc, out) != 0) {
		return -1;
	}
	const fqt_storage *st = svc->cfg.storage;
	fqt_slot_result s;
	const fqt_slot_status found = fqt_slots_find_newest(st, &s);
	if (found == FQT_SLOT_NONE_VALID) {
		fqt_svc_say(svc, out, "err no valid saved model in either slot");
		return -1;
	}
	if (found != FQT_SLOT_OK) {
		return say_no_storage(svc, out);
	}
	/* The newest valid slot, else the older one: a copy that fails the size, read or fit
	 * check is skipped (`skipped slot X seq S: why`) and the other is tried. */
	const int idx = fqt_svc_inactive_index(svc);
	svc->pushed_ready = 0;
	uint8_t *dst = svc->half[idx];
	const char *why = NULL;
	for (uint32_t rank = 0u; rank < 2u; ++rank) {
		if (rank == 1u) {
			fqt_svc_say(svc, out, "skipped slot %c seq %lu: %s", (char)('A' + s.slot),
				    (unsigned long)s.seq, why);
			if (fqt_slots_find(st, 1u, &s) != FQT_SLOT_OK) {
				break;
			}
		}
		if (s.size > svc->half_size) {
			why = "the saved blob does not fit the model buffer";
		} else if (fqt_slots_read(st, &s, dst) != FQT_SLOT_OK) {
			why = "changed while reading";
		} else {
			why = fqt_svc_stage_model(svc, idx, dst, s.size);
		}
		if (why == NULL) {
			break;
		}
	}
	if (why != NULL) {
		fqt_svc_say(svc, out, "err slot %c: %s: nothing restored", (char)('A' + s.slot),
			    why);
		return -1;
	}
	if (fqt_svc_activate(svc, out, idx, 0, "restored") != 0) {
		return -1;
	}
	fqt_svc_say(svc, out, "restored slot %c seq %lu name %s bytes %lu", (char)('A' + s.slot),
		    (unsigned long)s.seq, svc->models[idx].name, (unsigned long)s.size);
	fqt_svc_say(svc, out, "ok");
	return 0;
}
