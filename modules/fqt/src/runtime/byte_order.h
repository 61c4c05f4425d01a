/* Little-endian reads and writes of the blob's and the frames' fields. */
#ifndef FQT_BYTE_ORDER_H_
#define FQT_BYTE_ORDER_H_

#include <stdint.h>

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

static inline void fqt_write_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif /* FQT_BYTE_ORDER_H_ */
