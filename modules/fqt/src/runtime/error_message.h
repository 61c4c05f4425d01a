/* The one-line reasons the loader writes into an fqt_error. */
#ifndef FQT_ERROR_MESSAGE_H_
#define FQT_ERROR_MESSAGE_H_

#include "fqt/model.h"

/*
 * Write a message into err (if not NULL), printf-like but tiny: %s, %d (int), %u
 * (unsigned), %x (unsigned, hex) and %%. Always NUL-terminated, truncated to fit.
 */
void fqt_error_format(fqt_error *err, const char *format, ...);

#endif /* FQT_ERROR_MESSAGE_H_ */
