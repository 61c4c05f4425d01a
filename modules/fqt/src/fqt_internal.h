/* Helpers shared by the core's source files; not part of the public API. */
#ifndef FQT_INTERNAL_H_
#define FQT_INTERNAL_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "fqt/model.h"

/* In-place int32 arrays of the blob are read natively: the core needs a little-endian
 * target (every Cortex-M build and every common host is one). */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
	__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fqt reads the model blob in place and needs a little-endian target"
#endif

/* Little-endian field reads; p may be unaligned. */
static inline uint16_t fqt_read_u16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

static inline int16_t fqt_read_i16(const uint8_t *p)
{
	const uint16_t u = fqt_read_u16(p);
	return u <= 0x7FFFu ? (int16_t)u : (int16_t)(-(int32_t)(uint16_t)~u - 1);
}

static inline uint32_t fqt_read_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static inline int32_t fqt_read_i32(const uint8_t *p)
{
	const uint32_t u = fqt_read_u32(p);
	return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

/*
 * Write a message into err (if not NULL), printf-like but tiny: %s, %d (int), %u
 * (unsigned), %x (unsigned, hex) and %%. Always NUL-terminated, truncated to fit.
 */
void fqt_error_format(fqt_error *err, const char *format, ...);

/* Decode without checks: only for models that fqt_model_load() accepted. */
void fqt_decode_tensor(const fqt_model *model, uint32_t index, fqt_tensor *tensor);
void fqt_decode_layer(const fqt_model *model, uint32_t index, fqt_layer *layer);

/* memory_plan.c: the last layer reading tensor t, or -1. */
int32_t fqt_last_reader(const fqt_model *model, uint32_t t);

/* The plan buffer holding activation tensor `tensor`, or -1 (constants). */
int32_t fqt_model_buffer_of_tensor(const fqt_model *model, uint32_t tensor);

#endif /* FQT_INTERNAL_H_ */
