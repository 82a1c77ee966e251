#include "qs_npy.h"
#include "qs_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Find `'key':` in the header dict and return a pointer just past the colon. */
static const char *dict_value(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

/* The header: shape, element count, element size and signedness, and where
 * the data starts. Reads nothing past the header. */
static qs_status npy_header(const uint8_t *b, size_t len, const char *where, qs_npy *out, int *elem_size,
                            int *elem_signed, size_t *data_off, qs_error *err)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return qs_fail(err, QS_ERR_FORMAT, "%s: not a .npy file (bad magic)", where);
    uint8_t major = b[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return qs_fail(err, QS_ERR_FORMAT, "%s: truncated header", where);
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        hoff = 12;
    } else {
        return qs_fail(err, QS_ERR_FORMAT, "%s: unsupported .npy version %u", where, major);
    }
    if (hlen > 65536 || hoff + hlen > len) return qs_fail(err, QS_ERR_FORMAT, "%s: truncated header", where);
    char hdr[65537];
    memcpy(hdr, b + hoff, hlen);
    hdr[hlen] = 0;
    const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *sh = dict_value(hdr, "shape");
    if (!d || !fo || !sh) return qs_fail(err, QS_ERR_FORMAT, "%s: header lacks descr/fortran_order/shape", where);
    if (strncmp(fo, "False", 5) != 0) return qs_fail(err, QS_ERR_FORMAT, "%s: Fortran-order arrays are not supported", where);
    if (*d != '\'' || (d[1] != '<' && d[1] != '|' && d[1] != '=') || (d[2] != 'i' && d[2] != 'u') || !d[3] || d[4] != '\'')
    {
        /* name the dtype as written, up to its closing quote */
        const char *q = *d == '\'' ? strchr(d + 1, '\'') : NULL;
        int dn = q ? (int)(q - d + 1) : 8;
        return qs_fail(err, QS_ERR_FORMAT, "%s: dtype %.*s is not a little-endian integer type (use int8..int64)", where,
                       dn > 16 ? 16 : dn, d);
    }
    int is_signed = d[2] == 'i', size = d[3] - '0';
    *elem_size = size;
    *elem_signed = is_signed;
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return qs_fail(err, QS_ERR_FORMAT, "%s: unsupported integer size %d", where, size);
    if (*sh != '(') return qs_fail(err, QS_ERR_FORMAT, "%s: malformed shape", where);
    const char *p = sh + 1;
    out->count = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > ((int64_t)1 << 40)) return qs_fail(err, QS_ERR_FORMAT, "%s: malformed shape", where);
        if (out->ndim == QS_NPY_MAXDIM) return qs_fail(err, QS_ERR_FORMAT, "%s: more than %d dimensions", where, QS_NPY_MAXDIM);
        out->shape[out->ndim++] = v;
        /* checked before multiplying: two dimensions of 2^32 must not wrap to an empty array */
        if (v != 0 && out->count > ((int64_t)1 << 40) / v)
            return qs_fail(err, QS_ERR_FORMAT, "%s: absurd array size (more than 2^40 elements)", where);
        out->count *= v;
        p = end;
    }
    *data_off = hoff + hlen;
    return QS_OK;
}

qs_status qs_npy_parse(const uint8_t *b, size_t len, const char *where, qs_npy *out, qs_error *err)
{
    int size, is_signed;
    size_t data_off;
    qs_status hs = npy_header(b, len, where, out, &size, &is_signed, &data_off, err);
    if (hs != QS_OK) return hs;
    const uint64_t data_bytes = (uint64_t)out->count * (uint64_t)size;
    if (data_bytes > len - data_off)
        return qs_fail(err, QS_ERR_FORMAT, "%s: truncated data: %lld elements of %d bytes need %lld bytes, %zu present",
                       where, (long long)out->count, size, (long long)data_bytes, len - data_off);
    /* every byte is the header's or an element's: what qs_npy_load, bounded
     * by the declared size, also refuses (the two agree on every input) */
    if (data_bytes < len - data_off) {
        const uint64_t extra = len - data_off - data_bytes;
        return qs_fail(err, QS_ERR_FORMAT, "%s: %llu byte%s after the last element (the header declares %llu bytes)",
                       where, (unsigned long long)extra, extra == 1 ? "" : "s",
                       (unsigned long long)(data_off + data_bytes));
    }
    out->data = qs_malloc(sizeof(int32_t) * (size_t)(out->count ? out->count : 1));
    if (!out->data) return qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", where);
    const uint8_t *q = b + data_off;
    for (int64_t i = 0; i < out->count; i++, q += size) {
        uint64_t u = 0;
        for (int k = 0; k < size; k++) u |= (uint64_t)q[k] << (8 * k);
        int64_t v;
        if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1) v = (int64_t)(u | (~(uint64_t)0 << (8 * size)));
        else v = (int64_t)u;
        if ((!is_signed && size == 8 && u > INT32_MAX) || v < INT32_MIN || v > INT32_MAX) {
            qs_npy_free(out);
            return qs_fail(err, QS_ERR_FORMAT, "%s: element %lld does not fit int32", where, (long long)i);
        }
        out->data[i] = (int32_t)v;
    }
    return QS_OK;
}

/* A .npy's length from its header (qs_declared_size_fn): header + count * element size. */
static int npy_declared_size(const uint8_t *head, size_t n, uint64_t *declared)
{
    if (n < 8) return memcmp(head, "\x93NUMPY", n < 6 ? n : 6) == 0 ? 0 : -1;
    if (memcmp(head, "\x93NUMPY", 6) != 0) return -1;
    size_t hoff = head[6] == 1 ? 10 : 12;
    if (n < hoff) return 0;
    size_t hlen = head[6] == 1 ? ((size_t)head[8] | (size_t)head[9] << 8)
                               : ((size_t)head[8] | (size_t)head[9] << 8 | (size_t)head[10] << 16 | (size_t)head[11] << 24);
    if (hlen <= 65536 && n < hoff + hlen) return 0;
    qs_npy h;
    qs_error e;
    int size, is_signed;
    size_t data_off;
    if (npy_header(head, n, "npy", &h, &size, &is_signed, &data_off, &e) != QS_OK) return -1;
    *declared = (uint64_t)data_off + (uint64_t)h.count * (uint64_t)size; /* count <= 2^40, size <= 8 */
    return 1;
}

qs_status qs_npy_load(const char *path, qs_npy *out, qs_error *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    qs_status st = qs_read_file_declared(path, (size_t)1 << 34, npy_declared_size, &buf, &len, err);
    if (st) return st;
    st = qs_npy_parse(buf, len, path, out, err);
    qs_free(buf);
    return st;
}

qs_status qs_npy_save_i32(const char *path, const int64_t *shape, int32_t ndim, const int32_t *data, qs_error *err)
{
    char dict[256], shp[160] = "";
    int64_t count = 1;
    for (int32_t i = 0; i < ndim; i++) {
        char t[24];
        snprintf(t, sizeof t, "%lld,%s", (long long)shape[i], (ndim > 1 && i < ndim - 1) ? " " : "");
        strncat(shp, t, sizeof shp - strlen(shp) - 1);
        count *= shape[i];
    }
    int n = snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%s), }", shp);
    /* header padded with spaces and a newline so data starts on a 64-byte boundary */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    uint16_t hl = (uint16_t)(n + pad + 1);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)hl, (uint8_t)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    for (int64_t i = 0; i < count; i++) {
        uint32_t u = (uint32_t)data[i];
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        fwrite(b, 1, 4, f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

void qs_npy_free(qs_npy *a)
{
    qs_free(a->data);
    a->data = NULL;
}
