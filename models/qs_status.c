#include "qs_status.h"

#include <stdarg.h>
#include <stdio.h>

qs_status qs_fail(qs_error *err, qs_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
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
