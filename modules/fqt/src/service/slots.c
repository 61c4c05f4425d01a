/*
 * save/restore: the model blob in one of two storage slots (A/B). Each slot starts with a
 * 32-byte header written last:
 *
 *     u32 magic "FQTS", u32 sequence, u32 blob size, u32 blob crc32, u32 header crc32
 *     (of the 16 bytes before it), 12 bytes 0
 *
 * save writes the slot that does not hold the newest valid copy (erase, blob, then the
 * header), so a reset at any point leaves the previous copy valid; restore loads the
 * valid slot with the highest sequence number.
 */
#include <string.h>

#include "fqt/model.h"
#include "service_internal.h"

#define SLOT_MAGIC 0x53545146u /* "FQTS" */
#define SLOT_HEADER_SIZE 32u
#define SLOT_CHUNK 64u

typedef struct slot_info {
	int valid;
	uint32_t seq;
	uint32_t size;
	uint32_t crc;
} slot_info;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Read the slot header and check the whole blob's CRC, chunk by chunk. */
static slot_info inspect(const fqt_storage *st, uint32_t slot)
{
	slot_info info = {0, 0, 0, 0};
	uint8_t h[SLOT_HEADER_SIZE];
	if (st->read(st->ctx, slot, 0, h, SLOT_HEADER_SIZE) != 0 || rd32(h) != SLOT_MAGIC ||
	    rd32(h + 16) != fqt_crc32(0, h, 16)) {
		return info;
	}
	const uint32_t size = rd32(h + 8);
	if (size < FQT_BLOB_HEADER_SIZE || size > st->slot_size - SLOT_HEADER_SIZE) {
		return info;
	}
	uint8_t buf[SLOT_CHUNK];
	uint32_t crc = 0;
	for (uint32_t off = 0; off < size; off += SLOT_CHUNK) {
		const uint32_t n = size - off < SLOT_CHUNK ? size - off : SLOT_CHUNK;
		if (st->read(st->ctx, slot, SLOT_HEADER_SIZE + off, buf, n) != 0) {
			return info;
		}
		crc = fqt_crc32(crc, buf, n);
	}
	if (crc != rd32(h + 12)) {
		return info;
	}
	info.valid = 1;
	info.seq = rd32(h + 4);
	info.size = size;
	info.crc = crc;
	return info;
}

/* The newest valid slot, or -1. */
static int newest(const fqt_storage *st, slot_info info[2])
{
	info[0] = inspect(st, 0);
	info[1] = inspect(st, 1);
	if (info[0].valid && info[1].valid) {
		/* wrap-safe: the later of two sequence numbers */
		return (int32_t)(info[1].seq - info[0].seq) > 0 ? 1 : 0;
	}
	return info[0].valid ? 0 : info[1].valid ? 1 : -1;
}

static int require_storage(fqt_service *svc, const fqt_service_output *out)
{
	const fqt_storage *st = svc->cfg.storage;
	if (st == NULL || st->read == NULL || st->write == NULL || st->erase == NULL ||
	    st->slot_size <= SLOT_HEADER_SIZE) {
		fqt_svc_say(svc, out, "err no storage for save/restore in this build");
		return -1;
	}
	return 0;
}

int fqt_svc_save(fqt_service *svc, const fqt_service_output *out)
{
	if (require_storage(svc, out) != 0) {
		return -1;
	}
	const fqt_storage *st = svc->cfg.storage;
	const fqt_model *m = &svc->models[svc->active];
	if (m->blob_size > st->slot_size - SLOT_HEADER_SIZE) {
		fqt_svc_say(svc, out, "err blob of %lu bytes does not fit a %lu-byte slot",
			    (unsigned long)m->blob_size,
			    (unsigned long)(st->slot_size - SLOT_HEADER_SIZE));
		return -1;
	}
	slot_info info[2];
	const int cur = newest(st, info);
	const uint32_t target = cur == 0 ? 1u : 0u;
	const uint32_t seq = cur < 0 ? 1u : info[cur].seq + 1u;
	const uint32_t crc = fqt_crc32(0, m->blob, m->blob_size);
	uint8_t h[SLOT_HEADER_SIZE];
	memset(h, 0, sizeof(h));
	wr32(h, SLOT_MAGIC);
	wr32(h + 4, seq);
	wr32(h + 8, m->blob_size);
	wr32(h + 12, crc);
	wr32(h + 16, fqt_crc32(0, h, 16));
	if (st->erase(st->ctx, target) != 0 ||
	    st->write(st->ctx, target, SLOT_HEADER_SIZE, m->blob, m->blob_size) != 0 ||
	    st->write(st->ctx, target, 0, h, SLOT_HEADER_SIZE) != 0) {
		fqt_svc_say(svc, out, "err storage write failed: slot %c is invalid, the last good "
				      "copy is kept",
			    (char)('A' + target));
		return -1;
	}
	const slot_info check = inspect(st, target);
	if (!check.valid || check.seq != seq) {
		fqt_svc_say(svc, out, "err read-back of slot %c failed: the last good copy is kept",
			    (char)('A' + target));
		return -1;
	}
	fqt_svc_say(svc, out, "saved slot %c seq %lu bytes %lu crc %08lx", (char)('A' + target),
		    (unsigned long)seq, (unsigned long)m->blob_size, (unsigned long)crc);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_svc_restore(fqt_service *svc, const fqt_service_output *out)
{
	if (require_storage(svc, out) != 0) {
		return -1;
	}
	const fqt_storage *st = svc->cfg.storage;
	slot_info info[2];
	const int cur = newest(st, info);
	if (cur < 0) {
		fqt_svc_say(svc, out, "err no valid saved model in either slot");
		return -1;
	}
	const slot_info *s = &info[cur];
	if (s->size > svc->half_size) {
		fqt_svc_say(svc, out, "err saved blob of %lu bytes: the model buffer holds %lu",
			    (unsigned long)s->size, (unsigned long)svc->half_size);
		return -1;
	}
	const int idx = fqt_svc_inactive_index(svc);
	svc->pushed_ready = 0;
	uint8_t *dst = svc->half[idx];
	if (st->read(st->ctx, (uint32_t)cur, SLOT_HEADER_SIZE, dst, s->size) != 0 ||
	    fqt_crc32(0, dst, s->size) != s->crc) {
		fqt_svc_say(svc, out, "err slot %c changed while reading: nothing restored",
			    (char)('A' + cur));
		return -1;
	}
	const char *why = fqt_svc_stage_model(svc, idx, dst, s->size);
	if (why != NULL) {
		fqt_svc_say(svc, out, "err slot %c: %s", (char)('A' + cur), why);
		return -1;
	}
	if (fqt_svc_activate(svc, out, idx, 0, "restored") != 0) {
		return -1;
	}
	fqt_svc_say(svc, out, "restored slot %c seq %lu name %s bytes %lu", (char)('A' + cur),
		    (unsigned long)s->seq, svc->models[idx].name, (unsigned long)s->size);
	fqt_svc_say(svc, out, "ok");
	return 0;
}
