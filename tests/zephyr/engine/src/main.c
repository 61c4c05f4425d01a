/*
 * The fqt engine on the target, bit for bit against golden vectors that the Python
 * package generates (python -m fqt.vectors; tests/python/test_vectors.py keeps the
 * header in step with the golden model).
 * SPDX-License-Identifier: Apache-2.0
 */
#include <string.h>

#include <zephyr/ztest.h>

#include <fqt/fqt.h>

#include "golden_vectors.h"

static uint8_t arena[8192] __aligned(16);
static fqt_model model;
static fqt_session session;

static void *engine_setup(void)
{
	fqt_error err;

	zassert_equal(fqt_model_load(&model, vector_model_blob, sizeof(vector_model_blob), &err),
		      FQT_OK, "%s", err.message);
	return NULL;
}

ZTEST(fqt_engine, test_forward_matches_golden)
{
	size_t shortfall = 0;

	zassert_equal(fqt_session_create(&session, &model, arena, sizeof(arena), &shortfall),
		      FQT_OK, "arena short by %u bytes", (unsigned int)shortfall);
	for (int i = 0; i < VECTOR_COUNT; i++) {
		const int8_t *out;
		size_t out_size;

		zassert_equal(fqt_session_set_input(&session, &vector_inputs[i * VECTOR_INPUT_SIZE],
						    VECTOR_INPUT_SIZE),
			      FQT_OK);
		zassert_equal(fqt_session_run(&session), FQT_OK);
		zassert_equal(fqt_session_output(&session, &out, &out_size), FQT_OK);
		zassert_equal(out_size, VECTOR_OUTPUT_SIZE);
		zassert_mem_equal(out, &vector_outputs[i * VECTOR_OUTPUT_SIZE], VECTOR_OUTPUT_SIZE,
				  "vector %d differs from the golden model", i);
	}
}

ZTEST(fqt_engine, test_corrupt_blob_is_rejected)
{
	static uint8_t copy[sizeof(vector_model_blob)] __aligned(16);
	static fqt_model bad; /* large: keep it off the test stack */
	fqt_error err;

	memcpy(copy, vector_model_blob, sizeof(copy));
	copy[sizeof(copy) / 2] ^= 0x40;
	zassert_not_equal(fqt_model_load(&bad, copy, sizeof(copy), &err), FQT_OK);
	zassert_true(strlen(err.message) > 0);
	copy[sizeof(copy) / 2] ^= 0x40;
	zassert_equal(fqt_model_load(&bad, copy, sizeof(copy) - 8, &err) == FQT_OK, false);
}

ZTEST_SUITE(fqt_engine, NULL, engine_setup, NULL, NULL, NULL);
