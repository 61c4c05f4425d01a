/* Status codes returned by every fallible fqt function. */
#ifndef FQT_STATUS_H_
#define FQT_STATUS_H_

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fqt_status {
	FQT_OK = 0,
	FQT_ERR_ARGUMENT = 1,        /* NULL pointer, index out of range, size mismatch */
	FQT_ERR_ALIGNMENT = 2,       /* blob or arena not 4-byte aligned */
	FQT_ERR_BLOB_FORMAT = 3,     /* the blob failed validation; see the fqt_error message */
	FQT_ERR_UNSUPPORTED = 4,     /* valid blob, but beyond this build's limits */
	FQT_ERR_ARENA_TOO_SMALL = 5, /* the caller's arena is short; the shortfall is reported */
	FQT_ERR_STATE = 6,           /* call out of order (e.g. reading a tensor before a run) */
} fqt_status;

/* A short constant name for the code ("ok", "bad model blob", ...). Never NULL. */
const char *fqt_status_str(fqt_status status);

#ifdef __cplusplus
}
#endif

#endif /* FQT_STATUS_H_ */
