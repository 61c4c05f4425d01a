/*
 * Reply lines, the number formatters of the replies, and argument parsing: every argument
 * is range checked, and a rejected one answers `err <why>`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "service_internal.h"

void fqt_svc_say(fqt_service *svc, const fqt_service_output *out, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	(void)vsnprintf(svc->line, sizeof(svc->line), format, ap);
	va_end(ap);
	if (out != NULL && out->write != NULL) {
		out->write(out->ctx, svc->line);
	}
}

const char *fqt_svc_micro_str(char *buf, size_t cap, uint64_t micro)
{
	(void)snprintf(buf, cap, "%lu.%06lu", (unsigned long)(micro / 1000000u),
		       (unsigned long)(micro % 1000000u));
	return buf;
}

const char *fqt_svc_percent_str(char *buf, size_t cap, uint32_t num, uint32_t den)
{
	const uint64_t bp = den ? ((uint64_t)num * 10000u) / den : 0u; /* basis points */
	(void)snprintf(buf, cap, "%lu.%02lu%%", (unsigned long)(bp / 100u),
		       (unsigned long)(bp % 100u));
	return buf;
}

int fqt_svc_arg_u32(fqt_service *svc, const fqt_service_output *out, const char *name,
		    const char *s, uint32_t min, uint32_t max, uint32_t *value)
{
	uint32_t v;
	if (fqt_svc_parse_u32(s, &v) != 0 || v < min || v > max) {
		fqt_svc_say(svc, out, "err %s must be an integer in [%lu, %lu], got '%s'", name,
			    (unsigned long)min, (unsigned long)max, s);
		return -1;
	}
	*value = v;
	return 0;
}

int fqt_svc_parse_micro(const char *s, uint32_t *micro)
{
	uint64_t whole = 0;
	uint64_t frac = 0;
	uint32_t frac_digits = 0;
	size_t i = 0;
	int digits = 0;
	if (s == NULL) {
		return -1;
	}
	for (; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		whole = whole * 10u + (uint64_t)(s[i] - '0');
		if (whole > 4000u) {
			return -1;
		}
	}
	if (s[i] == '.') {
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			if (frac_digits < 6u) {
				frac = frac * 10u + (uint64_t)(s[i] - '0');
				frac_digits++;
			}
		}
	}
	if (s[i] != '\0' || digits == 0) {
		return -1;
	}
	for (; frac_digits < 6u; frac_digits++) {
		frac *= 10u;
	}
	*micro = (uint32_t)(whole * 1000000u + frac);
	return 0;
}

int fqt_svc_arg_micro(fqt_service *svc, const fqt_service_output *out, const char *name,
		      const char *s, uint32_t min, uint32_t max, uint32_t *value)
{
	uint32_t v;
	char lo[24];
	char hi[24];
	if (fqt_svc_parse_micro(s, &v) != 0 || v < min || v > max) {
		fqt_svc_say(svc, out, "err %s must be a decimal in [%s, %s], got '%s'", name,
			    fqt_svc_micro_str(lo, sizeof(lo), min),
			    fqt_svc_micro_str(hi, sizeof(hi), max), s);
		return -1;
	}
	*value = v;
	return 0;
}

int fqt_svc_decode_hex_exact(const char *hex, uint8_t *dst, size_t size)
{
	if (strlen(hex) != 2u * size) {
		return -1;
	}
	return fqt_svc_decode_hex(hex, 2u * size, dst);
}

int fqt_svc_require_model(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->active < 0) {
		fqt_svc_say(svc, out, "err no model loaded: `fqt load builtin`, push a blob or "
				      "`fqt restore`");
		return -1;
	}
	return 0;
}

const char *fqt_svc_job_name(int job)
{
	return job == FQT_JOB_EVAL ? "eval" : job == FQT_JOB_TRAIN ? "train" : "idle";
}

int fqt_svc_require_idle(fqt_service *svc, const fqt_service_output *out)
{
	if (svc->job != FQT_JOB_NONE) {
		fqt_svc_say(svc, out, "err busy: the %s job is running (`fqt train stop` ends it)",
			    fqt_svc_job_name(svc->job));
		return -1;
	}
	return 0;
}
