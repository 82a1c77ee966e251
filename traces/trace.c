/* Waveform writer: VCD (own code, IEEE 1364-2005 section 18) and FST
 * (GTKWave's writer, fstapi.c as shipped with Verilator). See trace.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, fseeko, ftello, off_t */
#endif
#include "trace.h"
#include "qs_alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fstapi.h"

#define NAME_MAX_LEN 255

typedef struct {
    int bits;
    bool has_value; /* something was written; last is valid */
    bool dirty;     /* given a value in the current time step (in pending list) */
    uint64_t last;  /* last value written to the file */
    uint64_t next;  /* last value given in the current time step */
    fstHandle fst;  /* FST handle; for VCD the identifier comes from the index */
    char *full;     /* dotted name, for duplicate checks and messages */
} trace_var;

struct qs_trace {
    char *path;
    FILE *vcd;
    void *fst;
    int io_errno; /* VCD: errno of the first failed write (-1: failed, errno unknown) */

    /* declarations */
    bool dumping; /* definitions are over */
    int depth;
    char *scope;         /* dotted path of the current scope ("" at top) */
    size_t scope_len, scope_cap;
    size_t *scope_marks; /* scope_len before each push */
    int marks_cap;
    trace_var *vars;
    int32_t nvars, vars_cap;
    int32_t *pending; /* vars given a value in the current time step; capacity vars_cap */
    int32_t npending;
    int32_t *hash; /* open addressing over vars[].full; -1 = empty */
    size_t hash_cap;

    /* dump */
    uint64_t now;
    bool time_set;     /* qs_trace_time() was called */
    bool emitted;      /* a time marker was written */
    bool any_value;    /* a value change was written */
    uint64_t emitted_time;

    /* first misuse or allocation failure; returned by close */
    qs_status st;
    qs_error first;
};

/* ---- errors ---- */

/* Remembers the first misuse; later ones are dropped (they often follow from it). */
static void misuse(qs_trace *t, qs_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void misuse(qs_trace *t, qs_status st, const char *fmt, ...)
{
    if (t->st != QS_OK) return;
    t->st = st;
    int n = snprintf(t->first.msg, sizeof t->first.msg, "%s: ", t->path);
    if (n < 0 || (size_t)n >= sizeof t->first.msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->first.msg + n, sizeof t->first.msg - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- small helpers ---- */

static bool valid_name(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c <= ' ' || c > '~' || n >= NAME_MAX_LEN) return false;
    }
    return true;
}

/* Parses "1ns", "10 ps", "100us"... into a canonical "<n><unit>" string. */
static bool parse_timescale(const char *s, char out[8])
{
    static const char *const units[] = {"s", "ms", "us", "ns", "ps", "fs"};
    int mag;
    if (strncmp(s, "100", 3) == 0) {
        mag = 100;
        s += 3;
    } else if (strncmp(s, "10", 2) == 0) {
        mag = 10;
        s += 2;
    } else if (s[0] == '1') {
        mag = 1;
        s += 1;
    } else {
        return false;
    }
    while (*s == ' ') s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i]) == 0) {
            snprintf(out, 8, "%d%s", mag, units[i]);
            return true;
        }
    }
    return false;
}

static uint64_t mask_of(int bits)
{
    return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

/* Remembers the first VCD write failure with its errno (stdio drops the data
 * of a failed write, so fclose() may not see it again). */
static void vcd_check(qs_trace *t, bool ok)
{
    if (!ok && !t->io_errno) t->io_errno = errno ? errno : -1;
}

/* VCD identifier of variable i: base-94 digits '!'..'~', least significant first. */
static size_t vcd_id(int32_t i, char *out)
{
    size_t n = 0;
    uint32_t v = (uint32_t)i;
    do {
        out[n++] = (char)('!' + v % 94);
        v /= 94;
    } while (v);
    out[n] = '\0';
    return n;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

/* Returns the slot for name: an empty one (-1 inside) or the one holding it. */
static size_t hash_slot(const qs_trace *t, const char *full)
{
    size_t i = (size_t)fnv1a(full) & (t->hash_cap - 1);
    while (t->hash[i] >= 0 && strcmp(t->vars[t->hash[i]].full, full) != 0) i = (i + 1) & (t->hash_cap - 1);
    return i;
}

static bool hash_grow(qs_trace *t)
{
    size_t cap = t->hash_cap ? t->hash_cap * 2 : 64;
    int32_t *h = qs_malloc(cap * sizeof *h);
    if (!h) return false;
    for (size_t i = 0; i < cap; i++) h[i] = -1;
    qs_free(t->hash);
    t->hash = h;
    t->hash_cap = cap;
    for (int32_t v = 0; v < t->nvars; v++) t->hash[hash_slot(t, t->vars[v].full)] = v;
    return true;
}

/* ---- open ---- */

qs_trace_format qs_trace_format_for_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n >= 4) {
        const char *e = path + n - 4;
        if (e[0] == '.' && (e[1] | 0x20) == 'v' && (e[2] | 0x20) == 'c' && (e[3] | 0x20) == 'd') return QS_TRACE_VCD;
    }
    return QS_TRACE_FST;
}

qs_status qs_trace_open(const char *path, qs_trace_format fmt, const char *timescale, qs_trace **out,
                        qs_error *err)
{
    if (out) *out = NULL;
    if (!path || !*path || !out) return qs_fail(err, QS_ERR_ARG, "qs_trace_open: no path or no result pointer");
    if (fmt != QS_TRACE_FST && fmt != QS_TRACE_VCD)
        return qs_fail(err, QS_ERR_ARG, "%s: unknown trace format %d", path, (int)fmt);
    char ts[8];
    if (!timescale) timescale = "1ns";
    if (!parse_timescale(timescale, ts))
        return qs_fail(err, QS_ERR_ARG, "%s: bad timescale '%s' (expected 1, 10 or 100 and s, ms, us, ns, ps or fs)",
                       path, timescale);

    qs_trace *t = qs_calloc(1, sizeof *t);
    if (!t) return qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", path);
    t->path = qs_strdup(path);
    t->scope_cap = 64;
    t->scope = qs_malloc(t->scope_cap);
    if (!t->path || !t->scope) {
        qs_free(t->path);
        qs_free(t->scope);
        qs_free(t);
        return qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", path);
    }
    t->scope[0] = '\0';

    if (fmt == QS_TRACE_VCD) {
        t->vcd = fopen(path, "w");
        if (!t->vcd) {
            int e = errno;
            qs_free(t->path);
            qs_free(t->scope);
            qs_free(t);
            return qs_fail(err, QS_ERR_IO, "%s: cannot create: %s", path, strerror(e));
        }
        setvbuf(t->vcd, NULL, _IOFBF, 1 << 16);
        vcd_check(t, fprintf(t->vcd, "$version qsim traces $end\n$timescale %s $end\n", ts) > 0);
    } else {
        /* fstWriterCreate() unlink()s the path before creating it: never let it
         * remove a device node or a directory entry that is not a plain file. */
        struct stat sb;
        int e = 0;
        if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
            qs_free(t->path);
            qs_free(t->scope);
            qs_free(t);
            return qs_fail(err, QS_ERR_IO, "%s: cannot create: exists and is not a regular file", path);
        }
        errno = 0;
        t->fst = fstWriterCreate(path, 1);
        e = errno;
        if (!t->fst) {
            qs_free(t->path);
            qs_free(t->scope);
            qs_free(t);
            return qs_fail(err, QS_ERR_IO, "%s: cannot create: %s", path, e ? strerror(e) : "FST writer failed");
        }
        fstWriterSetTimescaleFromString(t->fst, ts);
        fstWriterSetVersion(t->fst, "qsim traces");
    }
    *out = t;
    return QS_OK;
}

/* ---- declarations ---- */

static void end_definitions(qs_trace *t)
{
    if (t->dumping) return;
    while (t->depth > 0) qs_trace_scope_pop(t);
    if (t->vcd) vcd_check(t, fputs("$enddefinitions $end\n", t->vcd) >= 0);
    t->dumping = true;
}

void qs_trace_scope_push(qs_trace *t, const char *name)
{
    if (!t) return;
    if (t->dumping) {
        misuse(t, QS_ERR_ARG, "scope '%s' opened after the first time step", name ? name : "(null)");
        return;
    }
    if (!valid_name(name)) {
        misuse(t, QS_ERR_ARG, "bad scope name '%s' in '%s' (1..%d printable characters, no spaces)",
               name ? name : "(null)", t->scope, NAME_MAX_LEN);
        return;
    }
    size_t n = strlen(name);
    if (t->depth >= t->marks_cap) {
        int cap = t->marks_cap ? t->marks_cap * 2 : 16;
        size_t *m = qs_realloc(t->scope_marks, (size_t)cap * sizeof *m);
        if (!m) {
            misuse(t, QS_ERR_NOMEM, "out of memory");
            return;
        }
        t->scope_marks = m;
        t->marks_cap = cap;
    }
    if (t->scope_len + n + 2 > t->scope_cap) {
        size_t cap = (t->scope_len + n + 2) * 2;
        char *s = qs_realloc(t->scope, cap);
        if (!s) {
            misuse(t, QS_ERR_NOMEM, "out of memory");
            return;
        }
        t->scope = s;
        t->scope_cap = cap;
    }
    t->scope_marks[t->depth++] = t->scope_len;
    if (t->scope_len) t->scope[t->scope_len++] = '.';
    memcpy(t->scope + t->scope_len, name, n + 1);
    t->scope_len += n;

    if (t->vcd)
        vcd_check(t, fprintf(t->vcd, "$scope module %s $end\n", name) > 0);
    else
        fstWriterSetScope(t->fst, FST_ST_VCD_MODULE, name, NULL);
}

void qs_trace_scope_pop(qs_trace *t)
{
    if (!t) return;
    if (t->dumping) {
        misuse(t, QS_ERR_ARG, "scope closed after the first time step");
        return;
    }
    if (t->depth == 0) {
        misuse(t, QS_ERR_ARG, "qs_trace_scope_pop without an open scope");
        return;
    }
    t->scope_len = t->scope_marks[--t->depth];
    t->scope[t->scope_len] = '\0';
    if (t->vcd)
        vcd_check(t, fputs("$upscope $end\n", t->vcd) >= 0);
    else
        fstWriterSetUpscope(t->fst);
}

int32_t qs_trace_var(qs_trace *t, const char *name, int bits)
{
    if (!t) return -1;
    const char *nm = name ? name : "(null)";
    if (t->dumping) {
        misuse(t, QS_ERR_ARG, "variable '%s' declared after the first time step", nm);
        return -1;
    }
    if (!valid_name(name)) {
        misuse(t, QS_ERR_ARG, "bad variable name '%s' in '%s' (1..%d printable characters, no spaces)", nm, t->scope,
               NAME_MAX_LEN);
        return -1;
    }
    if (bits < 1 || bits > 64) {
        misuse(t, QS_ERR_ARG, "variable '%s%s%s': width %d (must be 1..64)", t->scope, t->scope_len ? "." : "", nm,
               bits);
        return -1;
    }
    if (t->nvars == INT32_MAX) {
        misuse(t, QS_ERR_ARG, "too many variables");
        return -1;
    }
    size_t n = strlen(name);
    char *full = qs_malloc(t->scope_len + n + 2);
    if (!full) {
        misuse(t, QS_ERR_NOMEM, "out of memory");
        return -1;
    }
    memcpy(full, t->scope, t->scope_len);
    size_t o = t->scope_len;
    if (o) full[o++] = '.';
    memcpy(full + o, name, n + 1);

    if (t->nvars >= t->vars_cap) {
        int32_t cap = t->vars_cap ? (t->vars_cap > INT32_MAX / 2 ? INT32_MAX : t->vars_cap * 2) : 32;
        trace_var *v = qs_realloc(t->vars, (size_t)cap * sizeof *v);
        if (v) t->vars = v;
        int32_t *p = v ? qs_realloc(t->pending, (size_t)cap * sizeof *p) : NULL;
        if (!p) {
            qs_free(full);
            misuse(t, QS_ERR_NOMEM, "out of memory");
            return -1;
        }
        t->pending = p;
        t->vars_cap = cap;
    }
    if ((size_t)(t->nvars + 1) * 2 > t->hash_cap && !hash_grow(t)) {
        qs_free(full);
        misuse(t, QS_ERR_NOMEM, "out of memory");
        return -1;
    }
    size_t slot = hash_slot(t, full);
    if (t->hash[slot] >= 0) {
        misuse(t, QS_ERR_ARG, "variable '%s' declared twice", full);
        qs_free(full);
        return -1;
    }

    int32_t id = t->nvars;
    trace_var *v = &t->vars[id];
    memset(v, 0, sizeof *v);
    v->bits = bits;
    v->full = full;
    if (t->vcd) {
        char code[8];
        vcd_id(id, code);
        vcd_check(t, fprintf(t->vcd, "$var wire %d %s %s $end\n", bits, code, name) > 0);
    } else {
        v->fst = fstWriterCreateVar(t->fst, FST_VT_VCD_WIRE, FST_VD_IMPLICIT, (uint32_t)bits, name, 0);
    }
    t->hash[slot] = id;
    t->nvars++;
    return id;
}

/* ---- dump ---- */

static void emit_time(qs_trace *t)
{
    if (t->emitted && t->emitted_time == t->now) return;
    if (t->vcd)
        vcd_check(t, fprintf(t->vcd, "#%llu\n", (unsigned long long)t->now) > 0);
    else
        fstWriterEmitTimeChange(t->fst, t->now);
    t->emitted = true;
    t->emitted_time = t->now;
}

static void emit_value(qs_trace *t, int32_t var, const trace_var *v)
{
    uint64_t value = v->last;
    char buf[80];
    if (t->vcd) {
        char code[8];
        size_t n = 0;
        if (v->bits == 1) {
            buf[n++] = value ? '1' : '0';
        } else {
            /* binary without leading zeros (a VCD vector is zero-extended on the left) */
            int top = 63;
            while (top > 0 && !((value >> top) & 1)) top--;
            buf[n++] = 'b';
            for (int b = top; b >= 0; b--) buf[n++] = (char)('0' + ((value >> b) & 1));
            buf[n++] = ' ';
        }
        size_t c = vcd_id(var, code);
        memcpy(buf + n, code, c);
        n += c;
        buf[n++] = '\n';
        vcd_check(t, fwrite(buf, 1, n, t->vcd) == n);
    } else {
        for (int b = 0; b < v->bits; b++) buf[b] = (char)('0' + ((value >> (v->bits - 1 - b)) & 1));
        buf[v->bits] = '\0';
        fstWriterEmitValueChange(t->fst, v->fst, buf);
    }
}

/* Ends the current time step: writes each variable given a value in it whose
 * last value differs from what the file already has, in the order they were
 * first given. The time marker is written only if something changed. */
static void flush_step(qs_trace *t)
{
    for (int32_t i = 0; i < t->npending; i++) {
        int32_t var = t->pending[i];
        trace_var *v = &t->vars[var];
        v->dirty = false;
        if (v->has_value && v->next == v->last) continue;
        v->has_value = true;
        v->last = v->next;
        t->any_value = true;
        emit_time(t);
        emit_value(t, var, v);
    }
    t->npending = 0;
}

void qs_trace_time(qs_trace *t, uint64_t time)
{
    if (!t) return;
    end_definitions(t);
    if (t->time_set && time < t->now) {
        misuse(t, QS_ERR_ARG, "time went backwards: %llu after %llu", (unsigned long long)time,
               (unsigned long long)t->now);
        return;
    }
    if (time != t->now) flush_step(t);
    t->now = time;
    t->time_set = true;
}

void qs_trace_value(qs_trace *t, int32_t var, uint64_t value)
{
    if (!t) return;
    end_definitions(t);
    if (var < 0 || var >= t->nvars) {
        /* -1 comes from a failed qs_trace_var, whose error is already recorded */
        if (var != -1) misuse(t, QS_ERR_ARG, "qs_trace_value: unknown variable handle %ld", (long)var);
        return;
    }
    trace_var *v = &t->vars[var];
    v->next = value & mask_of(v->bits);
    if (!v->dirty) {
        v->dirty = true;
        t->pending[t->npending++] = var;
    }
}

/* ---- close ---- */

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* fstWriterClose() does not report write errors (full disk, file size limit),
 * so check the finished file's block structure: every block ([tag][8-byte
 * big-endian length incl. itself][payload]) must lie inside the file and the
 * last one must end at its end, with a header that counts our variables and,
 * when there are any, a geometry and a hierarchy block. A short write leaves a
 * block reaching past the end of the file or a missing block. (This is a
 * structural check, not the reader: fstReaderOpen() calls exit() on some
 * corrupt files.) Returns NULL if fine, else what is wrong. */
static const char *fst_check(const char *path, int32_t nvars)
{
    FILE *f = fopen(path, "rb");
    if (!f) return "cannot reopen it to check it";
    const char *why = NULL;
    if (fseeko(f, 0, SEEK_END) != 0) why = "cannot seek";
    off_t size = why ? 0 : ftello(f);
    off_t pos = 0;
    bool hdr = false, geom = false, hier = false;
    while (!why && pos < size) {
        unsigned char h[1 + 8 + 8 * 8];
        size_t want = sizeof h;
        if (fseeko(f, pos, SEEK_SET) != 0) {
            why = "cannot seek";
            break;
        }
        size_t got = fread(h, 1, want, f);
        if (got < 9) {
            why = "truncated block header";
            break;
        }
        uint64_t len = be64(h + 1);
        if (len < 8 || len > (uint64_t)(size - pos - 1)) {
            why = "truncated block";
            break;
        }
        switch (h[0]) {
        case FST_BL_HDR:
            if (pos != 0 || got < 1 + 8 * 7) {
                why = "bad header block";
                break;
            }
            /* tag, length, start, end, endian double, mem used, scopes, vars */
            if (be64(h + 1 + 6 * 8) != (uint64_t)nvars) why = "header does not count all variables";
            hdr = true;
            break;
        case FST_BL_VCDATA:
        case FST_BL_VCDATA_DYN_ALIAS:
        case FST_BL_VCDATA_DYN_ALIAS2:
        case FST_BL_BLACKOUT: break;
        case FST_BL_GEOM: geom = true; break;
        case FST_BL_HIER:
        case FST_BL_HIER_LZ4:
        case FST_BL_HIER_LZ4DUO: hier = true; break;
        default: why = "unfinished or unknown block"; break;
        }
        if (!hdr && !why) why = "no header block";
        pos += 1 + (off_t)len;
    }
    if (!why && !hdr) why = "empty file";
    if (!why && nvars > 0 && (!geom || !hier)) why = "missing geometry or hierarchy block";
    fclose(f);
    return why;
}

static void free_trace(qs_trace *t)
{
    for (int32_t i = 0; i < t->nvars; i++) qs_free(t->vars[i].full);
    qs_free(t->vars);
    qs_free(t->pending);
    qs_free(t->hash);
    qs_free(t->scope);
    qs_free(t->scope_marks);
    qs_free(t->path);
    qs_free(t);
}

qs_status qs_trace_close(qs_trace *t, qs_error *err)
{
    if (!t) return QS_OK;
    end_definitions(t);
    flush_step(t);
    /* write the final time so the dump covers the whole run */
    if (t->time_set) emit_time(t);

    qs_status st = QS_OK;
    if (t->vcd) {
        vcd_check(t, fflush(t->vcd) == 0);
        vcd_check(t, !ferror(t->vcd));
        vcd_check(t, fclose(t->vcd) == 0);
        if (t->io_errno)
            st = qs_fail(err, QS_ERR_IO, "%s: write error: %s", t->path,
                         t->io_errno > 0 ? strerror(t->io_errno) : "unknown cause");
    } else {
        /* fstWriterClose() leaves a file GTKWave cannot open when there are
         * no variables, or time changes without any value change. */
        if (t->nvars == 0) {
            misuse(t, QS_ERR_ARG, "no variables declared (an FST dump needs at least one)");
        } else if (t->time_set && !t->any_value) {
            /* only time steps: give the first variable its unknown value */
            char x[65];
            memset(x, 'x', (size_t)t->vars[0].bits);
            x[t->vars[0].bits] = '\0';
            fstWriterEmitValueChange(t->fst, t->vars[0].fst, x);
        }
        bool seek_failed = fstWriterGetFseekFailed(t->fst) != 0;
        fstWriterClose(t->fst);
        const char *why = seek_failed ? "seek failed while writing" : t->nvars ? fst_check(t->path, t->nvars) : NULL;
        if (why) st = qs_fail(err, QS_ERR_IO, "%s: write error: FST file incomplete (%s)", t->path, why);
    }
    if (st == QS_OK && t->st != QS_OK) {
        st = t->st;
        if (err) *err = t->first;
    }
    free_trace(t);
    return st;
}
