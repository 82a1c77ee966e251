/* NumPy .npy arrays (format version 1.0/2.0, C order), the way Python users
 * hand tensors to qsim (--input, --labels) and get them back (--dump-outputs).
 * Integer dtypes only: i1 u1 i2 u2 i4 u4 i8 u8, little-endian or '|'. */
#ifndef QS_NPY_H
#define QS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "qs_status.h"

#define QS_NPY_MAXDIM 8

typedef struct {
    int32_t ndim;
    int64_t shape[QS_NPY_MAXDIM];
    int64_t count;
    int32_t *data;   /* values converted to int32 (out-of-range values are an error) */
} qs_npy;

/* Parse from memory (fuzzable); `where` names the source in messages. */
qs_status qs_npy_parse(const uint8_t *bytes, size_t len, const char *where, qs_npy *out, qs_error *err);
qs_status qs_npy_load(const char *path, qs_npy *out, qs_error *err);
/* Write an int32 array. */
qs_status qs_npy_save_i32(const char *path, const int64_t *shape, int32_t ndim, const int32_t *data, qs_error *err);
void qs_npy_free(qs_npy *a);

#endif
