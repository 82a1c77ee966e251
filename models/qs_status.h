/* Status codes and the error record every qsim library call fills in.
 *
 * Libraries never print or exit: they return a qs_status and write one
 * human-readable line into a qs_error that says where (file, line, byte
 * offset, layer) and what went wrong. The qsim command prints it.
 * (Modelled on SQLite's errcode/errmsg pair and jansson's json_error_t.) */
#ifndef QS_STATUS_H
#define QS_STATUS_H

#include <stddef.h>
#include <stdio.h>
#include <stdarg.h>
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
/* The same with a va_list (for wrappers such as the public API's, whose error
 * struct has qs_error's layout). */
qs_status qs_vfail(qs_error *err, qs_status st, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Read a whole file into a qs_malloc'd buffer (freed with qs_free) with a NUL after the last byte
 * (so text parsers can use it as a string). Reads in growing chunks, so pipes
 * work and no size is trusted; refuses files over max_bytes. */
qs_status qs_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, qs_error *err);

/* How long a file says it is, from its first n bytes: returns 1 and sets
 * *declared when the header tells the whole length, 0 when more bytes are
 * needed to know, -1 when the bytes are no header of this format (the reader
 * then stops, and the parser reports what is wrong with them). */
typedef int (*qs_declared_size_fn)(const uint8_t *head, size_t n, uint64_t *declared);

/* qs_read_file for a binary format whose header declares its length: a
 * stream (a pipe, /dev/zero) is refused as soon as it runs past what its own
 * header declares, instead of being read up to max_bytes. */
qs_status qs_read_file_declared(const char *path, size_t max_bytes, qs_declared_size_fn declared_size,
                                uint8_t **out, size_t *len, qs_error *err);
/* The same from a file already open (a FIFO cannot be opened twice); takes
 * ownership of f and closes it. `path` names it in messages. */
qs_status qs_read_stream_declared(FILE *f, const char *path, size_t max_bytes, qs_declared_size_fn declared_size,
                                  uint8_t **out, size_t *len, qs_error *err);

/* Short name of a status ("format error", ...). */
const char *qs_status_name(qs_status st);

#endif
