/* Shared by the service's source files; not part of the public API. */
#ifndef FQT_SERVICE_INTERNAL_H_
#define FQT_SERVICE_INTERNAL_H_

#include "fqt/service.h"

#if defined(__GNUC__)
#define FQT_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define FQT_PRINTF_LIKE(f, a)
#endif

/* Format one reply line into svc->line and write it. */
void fqt_svc_say(fqt_service *svc, const fqt_service_output *out, const char *format, ...)
	FQT_PRINTF_LIKE(3, 4);

int fqt_svc_inactive_index(const fqt_service *svc);
/* Validate a blob into models[idx]: NULL, or why not (in svc->why). */
const char *fqt_svc_stage_model(fqt_service *svc, int idx, const uint8_t *blob, size_t size);
int fqt_svc_activate(fqt_service *svc, const fqt_service_output *out, int idx, int builtin,
		     const char *source);

/* frame.c: a decimal u32 without sign, at most 10 digits; 0, or -1 when not one. */
int fqt_svc_parse_u32(const char *s, uint32_t *value);
/* frame.c: `hex_len` hex digits into hex_len / 2 bytes; 0, or -1 when not hex. */
int fqt_svc_decode_hex(const char *hex, size_t hex_len, uint8_t *dst);

/* slots.c */
int fqt_svc_save(fqt_service *svc, const fqt_service_output *out);
int fqt_svc_restore(fqt_service *svc, const fqt_service_output *out);

#endif /* FQT_SERVICE_INTERNAL_H_ */
