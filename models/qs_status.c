#include "qs_status.h"
#include "qs_alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qs_status qs_vfail(qs_error *err, qs_status st, const char *fmt, va_list ap)
{
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return st;
}

qs_status qs_fail(qs_error *err, qs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qs_vfail(err, st, fmt, ap);
    va_end(ap);
    return st;
}

const char *qs_status_name(qs_status st)
{
    switch (st) {
    case QS_OK: return "ok";
    case QS_ERR_IO: return "i/o error";
    case QS_ERR_FORMAT: return "format error";
    case QS_ERR_CONFIG: return "config error";
    case QS_ERR_UNSUPPORTED: return "unsupported";
    case QS_ERR_NOFIT: return "does not fit";
    case QS_ERR_NOMEM: return "out of memory";
    case QS_ERR_ARG: return "bad argument";
    case QS_ERR_RUN: return "run error";
    }
    return "unknown error";
}

qs_status qs_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, qs_error *err)
{
    return qs_read_file_declared(path, max_bytes, NULL, out, len, err);
}

qs_status qs_read_file_declared(const char *path, size_t max_bytes, qs_declared_size_fn declared_size,
                                uint8_t **out, size_t *len, qs_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return qs_read_stream_declared(f, path, max_bytes, declared_size, out, len, err);
}

qs_status qs_read_stream_declared(FILE *f, const char *path, size_t max_bytes, qs_declared_size_fn declared_size,
                                  uint8_t **out, size_t *len, qs_error *err)
{
    *out = NULL;
    *len = 0;
    size_t cap = 1 << 14, n = 0;
    /* limit: the most bytes worth reading; once the header has declared the
     * length, one byte past it is enough to know the stream is too long */
    uint64_t limit = max_bytes, declared = 0;
    int known = declared_size ? 0 : -1;
    uint8_t *buf = qs_malloc(cap);
    qs_status st = QS_OK;
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > limit) {
                if (known == 1)
                    st = qs_fail(err, QS_ERR_FORMAT, "%s: longer than the %llu bytes its header declares", path,
                                 (unsigned long long)declared);
                else
                    st = qs_fail(err, QS_ERR_IO, "%s: file larger than %zu bytes", path, max_bytes);
                break;
            }
            uint8_t *nb = qs_realloc(buf, cap * 2);
            if (!nb) {
                st = qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - 1 - n;
        if (known == 1 && want > limit + 1 - n) want = (size_t)(limit + 1 - n);
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (known == 0) {
            known = declared_size(buf, n, &declared);
            if (known == -1) break; /* not this format: the parser says why */
            if (known == 1 && declared < limit) limit = declared;
        }
        if (known == 1 && n > limit) {
            st = qs_fail(err, QS_ERR_FORMAT, "%s: longer than the %llu bytes its header declares", path,
                         (unsigned long long)declared);
            break;
        }
        if (got == 0) {
            if (ferror(f)) st = qs_fail(err, QS_ERR_IO, "%s: read error", path);
            else if (n > max_bytes) st = qs_fail(err, QS_ERR_IO, "%s: file larger than %zu bytes", path, max_bytes);
            break;
        }
    }
    fclose(f);
    if (!buf) return qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", path);
    if (st != QS_OK) {
        qs_free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return QS_OK;
}
