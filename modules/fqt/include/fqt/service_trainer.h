/*
 * The training engine behind the device service: fqt_trainer_ops on top of fqt_trainer.
 *
 *     static fqt_service_trainer st;
 *     static fqt_trainer_ops ops;
 *     fqt_service_trainer_init(&st, params_pool, params_size, &ops);
 *     cfg.trainer = &ops;
 */
#ifndef FQT_SERVICE_TRAINER_H_
#define FQT_SERVICE_TRAINER_H_

#include <stddef.h>

#include "fqt/service.h"
#include "fqt/trainer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fqt_service_trainer {
	fqt_trainer trainer;
	uint8_t *params;
	size_t params_size;
	fqt_lr_schedule schedule; /* the job's base lr and schedule kind */
	int active;
} fqt_service_trainer;

/* Fill `ops` with this engine; `params` (4-byte aligned) holds the trainable weights. */
fqt_status fqt_service_trainer_init(fqt_service_trainer *st, void *params, size_t params_size,
				    fqt_trainer_ops *ops);

#ifdef __cplusplus
}
#endif

#endif /* FQT_SERVICE_TRAINER_H_ */
