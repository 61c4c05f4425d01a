/* What the generated model file (cortex_m.py writes model_data.c) gives the harness. */
#ifndef FQT_BENCH_H_
#define FQT_BENCH_H_

#include <stdint.h>

typedef struct fqt_bench_config {
	uint32_t samples;    /* training samples, fqt_bench_inputs holds them in order */
	uint32_t input_size; /* bytes per sample */
	uint32_t batch;
	uint32_t seed;
	uint32_t lr_micro;   /* learning rate * 1e6 */
	uint64_t trainable_mask;
	uint8_t lean_memory; /* fqt_train_options.lean_memory */
	uint32_t grad_state; /* FQT_GRAD_STATE_* */
} fqt_bench_config;

extern uint8_t fqt_bench_blob[];
extern const uint32_t fqt_bench_blob_size;
extern const int8_t fqt_bench_inputs[];
extern const uint8_t fqt_bench_labels[];
extern const fqt_bench_config fqt_bench;
/* The session arena (inference and training) and the trainer's params, host-sized. */
extern uint8_t fqt_bench_arena[];
extern const uint32_t fqt_bench_arena_size;
extern uint8_t fqt_bench_params[];
extern const uint32_t fqt_bench_params_size;

#endif /* FQT_BENCH_H_ */
