/*
 * fqt application: the engine runs as the fqt service thread (modules/fqt/src/zephyr);
 * main only checks at boot that the built-in model loads and fits its pool.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>

#include <fqt/fqt.h>
#include <fqt/zephyr/pools.h>

LOG_MODULE_REGISTER(fqt_app, LOG_LEVEL_INF);

extern const uint8_t FQT_BUILTIN_MODEL[];
extern const size_t FQT_BUILTIN_MODEL_LEN;

static fqt_model builtin_model;
static fqt_session boot_session;

int main(void)
{
	const struct fqt_pool *arena = fqt_pool_get("arena");
	fqt_error err;
	size_t shortfall = 0;

	if (arena == NULL) {
		LOG_ERR("no fqt,memory-pool node with fqt,pool = \"arena\" in the devicetree");
		return 0;
	}
	fqt_status st = fqt_model_load(&builtin_model, FQT_BUILTIN_MODEL, FQT_BUILTIN_MODEL_LEN,
				       &err);
	if (st != FQT_OK) {
		LOG_ERR("built-in model rejected: %s", err.message);
		return 0;
	}
	st = fqt_session_create(&boot_session, &builtin_model, arena->base, arena->size,
				&shortfall);
	if (st != FQT_OK) {
		LOG_ERR("built-in model needs %u more bytes of arena", (unsigned int)shortfall);
		return 0;
	}
	LOG_INF("fqt: built-in model loaded, %u-byte arena pool",
		(unsigned int)arena->size);
	return 0;
}
