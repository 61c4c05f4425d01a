/*
 * The arena planner: the same greedy placement as scripts/fqt/plan.py greedy_plan(), so
 * the device and the host tools agree on every offset and on the peak.
 *
 * It works in place on the caller's buffer array, with no scratch: the placement order
 * (size descending, then first step, then array index) is a strict total order, so
 * "placed before b" is just "precedes b in that order", and the buffers placed so far are
 * walked in offset order by repeated minimum search. O(n^3) for n buffers, which is a few
 * hundred thousand steps for the largest models this engine takes.
 */
#include <stdbool.h>

#include "fqt/memory_plan.h"

static uint64_t aligned_size(uint32_t size)
{
	return ((uint64_t)size + FQT_PLAN_ALIGN - 1u) / FQT_PLAN_ALIGN * FQT_PLAN_ALIGN;
}

/* true if buffer a is placed before buffer b. */
static bool placed_before(const fqt_plan_buffer *buffers, size_t a, size_t b)
{
	if (buffers[a].size != buffers[b].size) {
		return buffers[a].size > buffers[b].size;
	}
	if (buffers[a].first != buffers[b].first) {
		return buffers[a].first < buffers[b].first;
	}
	return a < b;
}

static bool live_together(const fqt_plan_buffer *a, const fqt_plan_buffer *b)
{
	return a->first <= b->last && b->first <= a->last;
}

/* The lowest offset for buffer b given the buffers placed before it (Python's walk over
 * the live placed buffers sorted by offset). Buffers at equal offsets act as one group. */
static uint64_t lowest_free_offset(const fqt_plan_buffer *buffers, size_t count, size_t b)
{
	const uint64_t need = aligned_size(buffers[b].size);
	uint64_t offset = 0;
	bool have_previous = false;
	uint32_t previous = 0;
	for (;;) {
		bool found = false;
		uint32_t group_offset = 0;
		for (size_t p = 0; p < count; ++p) {
			if (p == b || !placed_before(buffers, p, b) ||
			    !live_together(&buffers[p], &buffers[b])) {
				continue;
			}
			const uint32_t o = buffers[p].offset;
			if ((!have_previous || o > previous) && (!found || o < group_offset)) {
				group_offset = o;
				found = true;
			}
		}
		if (!found || offset + need <= group_offset) {
			return offset;
		}
		for (size_t p = 0; p < count; ++p) {
			if (p != b && placed_before(buffers, p, b) &&
			    live_together(&buffers[p], &buffers[b]) &&
			    buffers[p].offset == group_offset) {
				const uint64_t end = group_offset + aligned_size(buffers[p].size);
				offset = end > offset ? end : offset;
			}
		}
		previous = group_offset;
		have_previous = true;
	}
}

fqt_status fqt_greedy_plan(fqt_plan_buffer *buffers, size_t count, uint32_t *peak_bytes)
{
	if ((buffers == NULL && count > 0u) || peak_bytes == NULL) {
		return FQT_ERR_ARGUMENT;
	}
	uint64_t peak = 0;
	size_t previous = 0;
	for (size_t step = 0; step < count; ++step) {
		/* The next buffer in placement order. */
		size_t b = count;
		for (size_t i = 0; i < count; ++i) {
			if (step > 0u && !placed_before(buffers, previous, i)) {
				continue;
			}
			if (b == count || placed_before(buffers, i, b)) {
				b = i;
			}
		}
		const uint64_t offset = lowest_free_offset(buffers, count, b);
		const uint64_t end = offset + aligned_size(buffers[b].size);
		if (end > UINT32_MAX) {
			return FQT_ERR_UNSUPPORTED;
		}
		buffers[b].offset = (uint32_t)offset;
		peak = end > peak ? end : peak;
		previous = b;
	}
	*peak_bytes = (uint32_t)peak;
	return FQT_OK;
}
