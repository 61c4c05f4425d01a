/*
 * fqt_greedy_plan on small hand-made plans. The expected offsets were worked by hand and
 * agree with scripts/fqt/plan.py greedy_plan (the Python suite checks whole models).
 */
#include "fqt/memory_plan.h"
#include "fqt_test.h"

#define B(size_, first_, last_) {(size_), 0u, (first_), (last_), 0u, 0u}

static void expect_plan(const char *name, fqt_plan_buffer *buffers, size_t count,
			const uint32_t *offsets, uint32_t peak)
{
	uint32_t got_peak = 0;
	CHECK_EQ_INT(fqt_greedy_plan(buffers, count, &got_peak), FQT_OK);
	CHECK_EQ_INT(got_peak, peak);
	for (size_t i = 0; i < count; ++i) {
		if (buffers[i].offset != offsets[i]) {
			fprintf(stderr, "plan %s: buffer %zu at %u, expected %u\n", name, i,
				(unsigned)buffers[i].offset, (unsigned)offsets[i]);
		}
		CHECK_EQ_INT(buffers[i].offset, offsets[i]);
	}
}

int main(void)
{
	/* A and C (100 bytes) never live together: both at 0. B overlaps both in time: it
	 * goes after them at 100. D lives throughout: after B, at 160; peak 160 + 12. */
	fqt_plan_buffer four[] = {B(100, 0, 1), B(60, 1, 2), B(100, 2, 3), B(10, 0, 3)};
	const uint32_t four_offsets[] = {0, 100, 0, 160};
	expect_plan("four", four, 4, four_offsets, 172);

	/* A chain of 40-byte buffers each overlapping the next; the 16-byte D fits in the
	 * hole A leaves at step 3, E (step 0 only) goes right after A. */
	fqt_plan_buffer gap[] = {B(40, 0, 2), B(40, 1, 3), B(40, 2, 4), B(16, 3, 3),
				 B(16, 0, 0)};
	const uint32_t gap_offsets[] = {0, 40, 80, 0, 40};
	expect_plan("gap", gap, 5, gap_offsets, 120);

	/* Equal sizes: earlier first step first (B, C, then A); D's 3 bytes take 4. */
	fqt_plan_buffer ties[] = {B(8, 2, 3), B(8, 0, 1), B(8, 0, 3), B(3, 1, 2)};
	const uint32_t ties_offsets[] = {0, 0, 8, 16};
	expect_plan("ties", ties, 4, ties_offsets, 20);

	/* Two live buffers at the same offset (A and B never meet): D must clear the longer
	 * one; C skips the group at 0 and the one at 64. */
	fqt_plan_buffer group[] = {B(64, 0, 1), B(32, 2, 3), B(16, 0, 3), B(30, 1, 2)};
	const uint32_t group_offsets[] = {0, 0, 96, 64};
	expect_plan("group", group, 4, group_offsets, 112);

	/* Nothing to place. */
	uint32_t peak = 7;
	CHECK_EQ_INT(fqt_greedy_plan(NULL, 0, &peak), FQT_OK);
	CHECK_EQ_INT(peak, 0);
	CHECK_EQ_INT(fqt_greedy_plan(NULL, 1, &peak), FQT_ERR_ARGUMENT);

	/* Past 4 GiB: refused, not wrapped. */
	fqt_plan_buffer huge[] = {B(0xFFFFFFF0u, 0, 1), B(0x100u, 0, 1)};
	CHECK_EQ_INT(fqt_greedy_plan(huge, 2, &peak), FQT_ERR_UNSUPPORTED);
	return fqt_test_summary("test_memory_plan");
}
