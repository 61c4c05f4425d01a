/*
 * The model blob in one of two storage slots (A/B); storage only: the replies and the
 * activation of a restored model are models.c's. Each slot starts with a 32-byte header
 * written last:
 *
 *     u32 magic "FQTS", u32 sequence, u32 blob size, u32 blob crc32, u32 header crc32
 *     (of the 16 bytes before it), 12 bytes 0
 *
 * A save writes the slot that does not hold the newest valid copy (erase, blob, then the
 * header), so a reset at any point leaves the previous copy valid; a restore loads the
 * valid slot with the highest sequence number.
 */
#include <string.h>

#include "fqt/model.h"
#include "runtime/byte_order.h"
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

/* Read the slot header and check the whole blob's CRC, chunk by chunk. */
static slot_info inspect(const fqt_storage *st, uint32_t slot)
{
	slot_info info = {0, 0, 0, 0};
	uint8_t h[SLOT_HEADER_SIZE];
	if (st->read(st->ctx, slot, 0, h, SLOT_HEADER_SIZE) != 0 ||
	    fqt_read_u32(h) != SLOT_MAGIC || fqt_read_u32(h + 16) != fqt_crc32(0, h, 16)) {
		return info;
	}
	for (uint32_t k = 20u; k < SLOT_HEADER_SIZE; ++k) {
		if (h[k] != 0u) { /* reserved header bytes 20..31 must be 0 */
			return info;
		}
	}
	const uint32_t size = fqt_read_u32(h + 8);
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
	if (crc != fqt_read_u32(h + 12)) {
		return info;
	}
	info.valid = 1;
	info.seq = fqt_read_u32(h + 4);
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

fqt_slot_status fqt_slots_check(const fqt_storage *st)
{
	if (st == NULL || st->read == NULL || st->write == NULL || st->erase == NULL ||
	    st->slot_size <= SLOT_HEADER_SIZE) {
		return FQT_SLOT_NO_STORAGE;
	}
	return FQT_SLOT_OK;
}

fqt_slot_status fqt_slots_write_older(const fqt_storage *st, const uint8_t *blob,
				      uint32_t size, fqt_slot_result *result)
{
	memset(result, 0, sizeof(*result));
	if (fqt_slots_check(st) != FQT_SLOT_OK) {
		return FQT_SLOT_NO_STORAGE;
	}
	result->capacity = st->slot_size - SLOT_HEADER_SIZE;
	result->size = size;
	if (size > result->capacity) {
		return FQT_SLOT_TOO_BIG;
	}
	slot_info info[2];
	const int cur = newest(st, info);
	const uint32_t target = cur == 0 ? 1u : 0u;
	const uint32_t seq = cur < 0 ? 1u : info[cur].seq + 1u;
	const uint32_t crc = fqt_crc32(0, blob, size);
	result->slot = target;
	result->seq = seq;
	result->crc = crc;
	uint8_t h[SLOT_HEADER_SIZE];
	memset(h, 0, sizeof(h));
	fqt_write_u32(h, SLOT_MAGIC);
	fqt_write_u32(h + 4, seq);
	fqt_write_u32(h + 8, size);
	fqt_write_u32(h + 12, crc);
	fqt_write_u32(h + 16, fqt_crc32(0, h, 16));
	if (st->erase(st->ctx, target) != 0 ||
	    st->write(st->ctx, target, SLOT_HEADER_SIZE, blob, size) != 0 ||
	    st->write(st->ctx, target, 0, h, SLOT_HEADER_SIZE) != 0) {
		return FQT_SLOT_WRITE_FAILED;
	}
	const slot_info check = inspect(st, target);
	if (!check.valid || check.seq != seq) {
		return FQT_SLOT_READBACK_FAILED;
	}
	return FQT_SLOT_OK;
}

fqt_slot_status fqt_slots_find_newest(const fqt_storage *st, fqt_slot_result *result)
{
	return fqt_slots_find(st, 0u, result);
}

fqt_slot_status fqt_slots_find(const fqt_storage *st, uint32_t rank, fqt_slot_result *result)
{
	memset(result, 0, sizeof(*result));
	if (fqt_slots_check(st) != FQT_SLOT_OK) {
		return FQT_SLOT_NO_STORAGE;
	}
	result->capacity = st->slot_size - SLOT_HEADER_SIZE;
	slot_info info[2];
	int cur = newest(st, info);
	if (cur >= 0 && rank == 1u) {
		cur = info[1 - cur].valid ? 1 - cur : -1; /* the older valid copy, if any */
	} else if (rank > 1u) {
		cur = -1;
	}
	if (cur < 0) {
		return FQT_SLOT_NONE_VALID;
	}
	result->slot = (uint32_t)cur;
	result->seq = info[cur].seq;
	result->size = info[cur].size;
	result->crc = info[cur].crc;
	return FQT_SLOT_OK;
}

fqt_slot_status fqt_slots_read(const fqt_storage *st, const fqt_slot_result *found,
			       uint8_t *dst)
{
	if (fqt_slots_check(st) != FQT_SLOT_OK) {
		return FQT_SLOT_NO_STORAGE;
	}
	if (st->read(st->ctx, found->slot, SLOT_HEADER_SIZE, dst, found->size) != 0 ||
	    fqt_crc32(0, dst, found->size) != found->crc) {
		return FQT_SLOT_CHANGED;
	}
	return FQT_SLOT_OK;
}
