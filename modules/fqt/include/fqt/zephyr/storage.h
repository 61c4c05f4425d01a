/*
 * save/restore storage for the fqt service under Zephyr.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef FQT_ZEPHYR_STORAGE_H_
#define FQT_ZEPHYR_STORAGE_H_

#include <fqt/service.h>

/* The board's "storage" flash partition as two slots, or NULL where there is none. */
const fqt_storage *fqt_zephyr_storage(void);

#endif /* FQT_ZEPHYR_STORAGE_H_ */
