/* Status names and the loader's tiny message formatter (no libc printf: it would pull
 * kilobytes into a Cortex-M image for one line of text). */
#include <stdarg.h>
#include <stddef.h>

#include "fqt/status.h"
#include "error_message.h"

const char *fqt_status_str(fqt_status status)
{
	switch (status) {
	case FQT_OK:
		return "ok";
	case FQT_ERR_ARGUMENT:
		return "invalid argument";
	case FQT_ERR_ALIGNMENT:
		return "misaligned buffer";
	case FQT_ERR_BLOB_FORMAT:
		return "bad model blob";
	case FQT_ERR_UNSUPPORTED:
		return "unsupported by this build";
	case FQT_ERR_ARENA_TOO_SMALL:
		return "arena too small";
	case FQT_ERR_STATE:
		return "call out of order";
	}
	return "unknown status";
}

typedef struct message_writer {
	char *buf;
	size_t size;
	size_t len;
} message_writer;

static void put_char(message_writer *w, char c)
{
	if (w->len + 1u < w->size) {
		w->buf[w->len++] = c;
	}
}

static void put_unsigned(message_writer *w, unsigned value, unsigned base)
{
	char digits[12];
	size_t n = 0;
	do {
		const unsigned d = value % base;
		digits[n++] = (char)(d < 10u ? '0' + (int)d : 'a' + (int)(d - 10u));
		value /= base;
	} while (value != 0u && n < sizeof(digits));
	while (n > 0u) {
		put_char(w, digits[--n]);
	}
}

void fqt_error_format(fqt_error *err, const char *format, ...)
{
	if (err == NULL) {
		return;
	}
	message_writer w = {err->message, sizeof(err->message), 0};
	va_list args;
	va_start(args, format);
	for (const char *p = format; *p != '\0'; ++p) {
		if (*p != '%' || p[1] == '\0') {
			put_char(&w, *p);
			continue;
		}
		++p;
		switch (*p) {
		case 's': {
			const char *s = va_arg(args, const char *);
			for (; s != NULL && *s != '\0'; ++s) {
				put_char(&w, *s);
			}
			break;
		}
		case 'd': {
			const int v = va_arg(args, int);
			if (v < 0) {
				put_char(&w, '-');
				put_unsigned(&w, 0u - (unsigned)v, 10u);
			} else {
				put_unsigned(&w, (unsigned)v, 10u);
			}
			break;
		}
		case 'u':
			put_unsigned(&w, va_arg(args, unsigned), 10u);
			break;
		case 'x':
			put_unsigned(&w, va_arg(args, unsigned), 16u);
			break;
		default:
			put_char(&w, *p);
			break;
		}
	}
	va_end(args);
	w.buf[w.len] = '\0';
}
