/* Status codes and the error record every qsim library call fills in.
 *
 * Libraries never print or exit: they return a qs_status and write one
 * human-readable line into a qs_error that says where (file, line, byte
 * offset, layer) and what went wrong. The qsim command prints it.
 * (Modelled on SQLite's errcode/errmsg pair and jansson's json_error_t.) */
#ifndef QS_STATUS_H
#define QS_STATUS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QS_OK = 0,
    QS_ERR_IO,          /* cannot open/read/write a file */
    QS_ERR_FORMAT,      /* malformed file contents (.qbin, .npy, .qprog, topology) */
    QS_ERR_CONFIG,      /* bad key, value or combination in an arch .cfg */
    QS_ERR_UNSUPPORTED, /* well-formed but not supported by this arch/op set */
    QS_ERR_NOFIT,       /* a layer cannot be mapped onto the buffers/array */
    QS_ERR_NOMEM,       /* allocation failed */
    QS_ERR_ARG,         /* bad argument from the caller */
    QS_ERR_RUN          /* simulation could not complete (deadlock, mismatch) */
} qs_status;

/* One diagnostic line, filled by the callee on failure. */
typedef struct {
    char msg[512];
} qs_error;

/* printf-style setter; returns st so callers can write `return qs_fail(...)`. */
qs_status qs_fail(qs_error *err, qs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Read a whole file into a malloc'd buffer with a NUL after the last byte
 * (so text parsers can use it as a string). Reads in growing chunks, so pipes
 * work and no size is trusted; refuses files over max_bytes. */
qs_status qs_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, qs_error *err);

/* Short name of a status ("format error", ...). */
const char *qs_status_name(qs_status st);

#endif
