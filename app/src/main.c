/*
 * fqt application. The engine runs in the fqt service thread (modules/fqt/src/zephyr/),
 * driven from the shell: `fqt info`, `fqt data push`, `fqt train start`, ...
 * SPDX-License-Identifier: Apache-2.0
 */
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>

LOG_MODULE_REGISTER(fqt_app, LOG_LEVEL_INF);

int main(void)
{
	LOG_INF("fqt app on %s: type 'fqt help'", CONFIG_BOARD_TARGET);
	return 0;
}
