/*
 * save/restore storage on Zephyr's flash map: the "storage" fixed partition, split
 * into the service's two slots (src/service/slots.c keeps the two-slot rule).
 * SPDX-License-Identifier: Apache-2.0
 */
#include <zephyr/devicetree.h>
#include <zephyr/logging/log.h>

#include "fqt/zephyr/storage.h"

LOG_MODULE_DECLARE(fqt, CONFIG_FQT_LOG_LEVEL);

#if defined(CONFIG_FLASH_MAP) && DT_NODE_EXISTS(DT_NODELABEL(storage_partition))
#include <zephyr/storage/flash_map.h>

static const struct flash_area *storage_area;

static int slot_read(void *ctx, uint32_t slot, uint32_t offset, void *data, uint32_t size)
{
	const fqt_storage *st = ctx;

	return flash_area_read(storage_area, (off_t)(slot * st->slot_size + offset), data, size);
}

static int slot_write(void *ctx, uint32_t slot, uint32_t offset, const void *data,
		      uint32_t size)
{
	const fqt_storage *st = ctx;

	return flash_area_write(storage_area, (off_t)(slot * st->slot_size + offset), data, size);
}

static int slot_erase(void *ctx, uint32_t slot)
{
	const fqt_storage *st = ctx;

	return flash_area_erase(storage_area, (off_t)(slot * st->slot_size), st->slot_size);
}

static fqt_storage flash_storage = {
	.read = slot_read,
	.write = slot_write,
	.erase = slot_erase,
	.ctx = &flash_storage,
};

const fqt_storage *fqt_zephyr_storage(void)
{
	if (storage_area == NULL) {
		if (flash_area_open(FIXED_PARTITION_ID(storage_partition), &storage_area) != 0) {
			LOG_ERR("cannot open the storage partition: save/restore are off");
			return NULL;
		}
		/* Each slot must start on an erase-block boundary: boards give the
		 * partition as a whole number of equal sectors (nucleo_f767zi: 2 x 32 KB).
		 */
		flash_storage.slot_size = (uint32_t)storage_area->fa_size / 2u;
	}
	return &flash_storage;
}
#else
const fqt_storage *fqt_zephyr_storage(void)
{
	return NULL; /* no storage partition: `fqt save` answers that it has nowhere to write */
}
#endif
