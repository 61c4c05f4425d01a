/*
 * What the service fuzzers share: a quiet output sink, a fake clock, and two storage slots
 * in RAM. Define FUZZ_SLOT_BYTES before including this header: the slot size is each
 * target's own (it bounds what `save` can write there).
 */
#ifndef FQT_FUZZ_SERVICE_H
#define FQT_FUZZ_SERVICE_H

#include <stdint.h>
#include <string.h>

#include "fqt/service.h"

#ifndef FUZZ_SLOT_BYTES
#error "define FUZZ_SLOT_BYTES before including fuzz_service.h"
#endif

static uint8_t slots[2][FUZZ_SLOT_BYTES];

static void sink(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static uint32_t fake_clock(void *ctx)
{
	static uint32_t t;
	(void)ctx;
	return t += 7u;
}

static int st_read(void *ctx, uint32_t slot, uint32_t off, void *d, uint32_t n)
{
	(void)ctx;
	if (slot > 1u || off > sizeof(slots[0]) || n > sizeof(slots[0]) - off) {
		return -1;
	}
	memcpy(d, &slots[slot][off], n);
	return 0;
}

static int st_write(void *ctx, uint32_t slot, uint32_t off, const void *d, uint32_t n)
{
	(void)ctx;
	if (slot > 1u || off > sizeof(slots[0]) || n > sizeof(slots[0]) - off) {
		return -1;
	}
	memcpy(&slots[slot][off], d, n);
	return 0;
}

static int st_erase(void *ctx, uint32_t slot)
{
	(void)ctx;
	if (slot > 1u) {
		return -1;
	}
	memset(slots[slot], 0xFF, sizeof(slots[0]));
	return 0;
}

static const fqt_storage fuzz_storage = {FUZZ_SLOT_BYTES, st_read, st_write, st_erase, NULL};

#endif /* FQT_FUZZ_SERVICE_H */
