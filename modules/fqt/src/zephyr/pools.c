/*
 * One static buffer per "fqt,memory-pool" devicetree node, placed in the linker
 * section of the memory region the node names (DTCM, SDRAM, ...) or in .noinit.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <string.h>

#include <zephyr/devicetree.h>
#include <zephyr/linker/devicetree_regions.h>
#include <zephyr/linker/section_tags.h>
#include <zephyr/sys/util.h>

#include "fqt/zephyr/pools.h"

#define FQT_POOL_SECTION(node)                                                                     \
	COND_CODE_1(DT_NODE_HAS_PROP(node, memory_region),                                         \
		    (Z_GENERIC_SECTION(LINKER_DT_NODE_REGION_NAME(DT_PHANDLE(node, memory_region)))), \
		    (__noinit))

/* 16-byte alignment: the arena holds int32 accumulators read with LDM/LDRD. */
#define FQT_POOL_BUFFER(node)                                                                      \
	static uint8_t fqt_pool_buf_##node[DT_PROP(node, size)] FQT_POOL_SECTION(node) __aligned(16);

#define FQT_POOL_ENTRY(node)                                                                       \
	{.name = DT_PROP(node, fqt_pool), .base = fqt_pool_buf_##node, .size = DT_PROP(node, size)},

DT_FOREACH_STATUS_OKAY(fqt_memory_pool, FQT_POOL_BUFFER)

static const struct fqt_pool fqt_pools[] = {DT_FOREACH_STATUS_OKAY(fqt_memory_pool, FQT_POOL_ENTRY)};

const struct fqt_pool *fqt_pool_get(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fqt_pools); i++) {
		if (strcmp(fqt_pools[i].name, name) == 0) {
			return &fqt_pools[i];
		}
	}
	return NULL;
}
