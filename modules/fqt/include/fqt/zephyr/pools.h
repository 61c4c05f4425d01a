/*
 * fqt memory pools from devicetree (compatible "fqt,memory-pool").
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef FQT_ZEPHYR_POOLS_H_
#define FQT_ZEPHYR_POOLS_H_

#include <stddef.h>
#include <stdint.h>

struct fqt_pool {
	const char *name; /* the node's fqt,pool: "arena" or "params" */
	uint8_t *base;
	size_t size;
};

/* The pool named `name`, or NULL when the devicetree defines none. */
const struct fqt_pool *fqt_pool_get(const char *name);

#endif /* FQT_ZEPHYR_POOLS_H_ */
