/* The accelerator configuration: INI text -> validated qs_arch.
 *
 * One table (KEYS) describes every key: where it lives in qs_arch, its type
 * and its legal range. Parsing, per-key range checks, duplicate detection and
 * the error messages are all driven by that table, so a key documented in
 * docs/config.md cannot be accepted by one path and refused by another.
 * Cross-field rules (docs/config.md, "Rules between keys") come after every
 * key is known, in check_cross(). */
#include "qs_arch.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enum fields are stored through a byte offset; that needs them int-sized. */
_Static_assert(sizeof(qs_dataflow) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_zero_skip) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_skip_impl) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_overflow) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_timing) == sizeof(int), "enum size");

/* ---- names ------------------------------------------------------------- */

static const char *const DATAFLOWS[] = {"ws", "os", "is", NULL};
static const char *const ZERO_SKIPS[] = {"none", "gate", "weights", "activations", "both", NULL};
static const char *const SKIP_IMPLS[] = {"hold", "isolate", "clockgate", NULL};
static const char *const OVERFLOWS[] = {"wrap", "saturate", NULL};
static const char *const TIMINGS[] = {"native", "scalesim", NULL};
static const char *const DRAM_TECHS[] = {"lpddr4", "ddr4", "gddr5", "hbm2", NULL};

static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

const char *qs_dataflow_name(qs_dataflow d) { return name_of(DATAFLOWS, 3, (int)d); }
const char *qs_zero_skip_name(qs_zero_skip z) { return name_of(ZERO_SKIPS, 5, (int)z); }
const char *qs_skip_impl_name(qs_skip_impl s) { return name_of(SKIP_IMPLS, 3, (int)s); }
const char *qs_overflow_name(qs_overflow o) { return name_of(OVERFLOWS, 2, (int)o); }
const char *qs_timing_name(qs_timing t) { return name_of(TIMINGS, 2, (int)t); }

/* ---- defaults ---------------------------------------------------------- */

static void buffer_defaults(qs_buffer_cfg *b)
{
    b->size_kib = 64;
    b->banks = 8;
    b->bank_width_bytes = 8;
    b->ports = 1;
    b->double_buffer = 1;
}

void qs_arch_defaults(qs_arch *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "qsim");
    a->rows = 16;
    a->cols = 16;
    a->dataflow = QS_DF_OS;
    a->weight_path_bits = 2;
    a->max_weight_bits = 8;
    a->max_act_bits = 8;
    a->zero_skip = QS_SKIP_NONE;
    a->skip_group = 1;
    a->skip_impl = QS_SKIPIMPL_CLOCKGATE;
    a->acc_bits = 32;
    a->overflow = QS_OVF_WRAP;
    buffer_defaults(&a->ifmap);
    buffer_defaults(&a->weight);
    buffer_defaults(&a->accum);
    a->dram_bytes_per_cycle = 16.0;
    a->dram_latency = 100;
    a->dram_burst_bytes = 64;
    snprintf(a->dram_tech, sizeof a->dram_tech, "lpddr4");
    a->dram_pj_per_bit = 0.0;
    a->freq_mhz = 1000.0;
    a->ppu_lanes = 16;
    a->ppu_pool = 1;
    a->ppu_add = 1;
    a->node_nm = 45;
    a->voltage = 0.9;
    snprintf(a->tech_table, sizeof a->tech_table, "../tech/default45.tech");
    a->timing = QS_TIMING_NATIVE;
}

/* ---- the key table ----------------------------------------------------- */

typedef enum {
    K_INT,   /* int32_t in [lo, hi]; pow2: also a power of two */
    K_BOOL,  /* int32_t 0 or 1 */
    K_DBL,   /* double in [lo, hi] (lo excluded when lo_open), finite */
    K_ENUM,  /* int-sized enum, value = index in names */
    K_NAME,  /* char[size] holding one of names */
    K_IDENT, /* char[size]: 1..size-1 chars of [A-Za-z0-9_.+-] */
    K_PATH   /* char[size]: non-empty path */
} ktype;

typedef struct {
    const char *section, *key;
    ktype type;
    size_t off, size;
    double lo, hi;
    int lo_open, pow2;
    const char *const *names;
} keydef;

#define OFF(f) offsetof(qs_arch, f)
#define SZ(f) sizeof(((qs_arch *)0)->f)
#define KINT(s, k, f, lo, hi) {s, k, K_INT, OFF(f), SZ(f), lo, hi, 0, 0, NULL}
#define KPOW2(s, k, f, lo, hi) {s, k, K_INT, OFF(f), SZ(f), lo, hi, 0, 1, NULL}
#define KBOOL(s, k, f) {s, k, K_BOOL, OFF(f), SZ(f), 0, 1, 0, 0, NULL}
#define KDBL(s, k, f, lo, hi, open) {s, k, K_DBL, OFF(f), SZ(f), lo, hi, open, 0, NULL}
#define KENUM(s, k, f, n) {s, k, K_ENUM, OFF(f), SZ(f), 0, 0, 0, 0, n}
#define KBUF(s, b)                                                        \
    KINT(s, "size_kib", b.size_kib, 1, 1048576),                          \
    KINT(s, "banks", b.banks, 1, 1024),                                   \
    KINT(s, "bank_width_bytes", b.bank_width_bytes, 1, 4096),             \
    KINT(s, "ports", b.ports, 1, 2),                                      \
    KBOOL(s, "double_buffer", b.double_buffer)

/* Ranges are what the rest of qsim can represent (int32 sizes, the sim's
 * 8-bit slice index, the PE model's 32-bit accumulator), not what is
 * sensible; docs/config.md gives the same numbers. */
static const keydef KEYS[] = {
    {"general", "name", K_IDENT, OFF(name), SZ(name), 0, 0, 0, 0, NULL},
    KINT("array", "rows", rows, 1, 1024),
    KINT("array", "cols", cols, 1, 1024),
    KENUM("array", "dataflow", dataflow, DATAFLOWS),
    KPOW2("array", "weight_path_bits", weight_path_bits, 1, 8),
    KINT("array", "max_weight_bits", max_weight_bits, 1, 16),
    KINT("array", "max_act_bits", max_act_bits, 1, 16),
    KENUM("array", "zero_skip", zero_skip, ZERO_SKIPS),
    KINT("array", "skip_group", skip_group, 1, 1024),
    KENUM("array", "skip_impl", skip_impl, SKIP_IMPLS),
    KINT("array", "acc_bits", acc_bits, 8, 32),
    KENUM("array", "overflow", overflow, OVERFLOWS),
    KBUF("buffer.ifmap", ifmap),
    KBUF("buffer.weight", weight),
    KBUF("buffer.accum", accum),
    KDBL("dram", "bytes_per_cycle", dram_bytes_per_cycle, 0, 65536, 1),
    KINT("dram", "latency_cycles", dram_latency, 0, 1000000),
    KPOW2("dram", "burst_bytes", dram_burst_bytes, 1, 65536),
    {"dram", "technology", K_NAME, OFF(dram_tech), SZ(dram_tech), 0, 0, 0, 0, DRAM_TECHS},
    KDBL("dram", "pj_per_bit", dram_pj_per_bit, 0, 1000, 0),
    KDBL("clock", "freq_mhz", freq_mhz, 1, 100000, 0),
    KINT("ppu", "lanes", ppu_lanes, 1, 4096),
    KBOOL("ppu", "pool", ppu_pool),
    KBOOL("ppu", "add", ppu_add),
    KINT("tech", "node_nm", node_nm, 5, 180),
    KDBL("tech", "voltage", voltage, 0.3, 2.0, 0),
    {"tech", "table", K_PATH, OFF(tech_table), SZ(tech_table), 0, 0, 0, 0, NULL},
    KENUM("timing", "convention", timing, TIMINGS),
    KINT("timing", "scalesim_bandwidth", scalesim_bandwidth, 0, 1048576),
};
enum { NKEYS = sizeof KEYS / sizeof KEYS[0] };

static const char *const SECTIONS[] = {"general", "array", "buffer.ifmap", "buffer.weight", "buffer.accum",
                                       "dram", "clock", "ppu", "tech", "timing", NULL};
enum { NSECTIONS = 10 };

static int section_index(const char *s)
{
    for (int i = 0; SECTIONS[i]; i++)
        if (strcmp(SECTIONS[i], s) == 0) return i;
    return -1;
}

static int key_index(const char *section, const char *key)
{
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0) return i;
    return -1;
}

/* ---- where a key came from, for messages ---------------------------------- */

/* origin[i]: 0 = default, > 0 = line in the file, ORIGIN_SET = --set. */
enum { ORIGIN_SET = -1 };

typedef struct {
    const char *where;
    const int *origin; /* NKEYS entries, or NULL (qs_arch_validate on a struct) */
} vctx;

/* "file:12: [array] rows" / "file: --set array.rows" / "file: [array] rows" */
static void key_loc(char *buf, size_t n, const char *where, int idx, int origin)
{
    const keydef *k = &KEYS[idx];
    if (origin > 0)
        snprintf(buf, n, "%s:%d: [%s] %s", where, origin, k->section, k->key);
    else if (origin == ORIGIN_SET)
        snprintf(buf, n, "%s: --set %s.%s", where, k->section, k->key);
    else
        snprintf(buf, n, "%s: [%s] %s", where, k->section, k->key);
}

/* Short origin of a second key named in a cross-field message. */
static void key_origin(char *buf, size_t n, int origin)
{
    if (origin > 0)
        snprintf(buf, n, "line %d", origin);
    else if (origin == ORIGIN_SET)
        snprintf(buf, n, "from --set");
    else
        snprintf(buf, n, "default");
}

static void join_names(char *buf, size_t n, const char *const *names)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names[i]);
}

static void keys_of_section(char *buf, size_t n, const char *section)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < NKEYS && used < n; i++)
        if (strcmp(KEYS[i].section, section) == 0)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", KEYS[i].key);
}

/* ---- per-key values ------------------------------------------------------ */

static int is_pow2(long v) { return v > 0 && (v & (v - 1)) == 0; }

/* Range check of one key as stored in `a`; reason gets why on failure. */
static int check_value(const keydef *k, const qs_arch *a, char *reason, size_t n)
{
    const char *p = (const char *)a + k->off;
    switch (k->type) {
    case K_INT:
    case K_BOOL: {
        int32_t v;
        memcpy(&v, p, sizeof v);
        if (v < k->lo || v > k->hi) {
            snprintf(reason, n, "%ld is out of range %.0f..%.0f", (long)v, k->lo, k->hi);
            return 0;
        }
        if (k->pow2 && !is_pow2(v)) {
            snprintf(reason, n, "%ld is not a power of two", (long)v);
            return 0;
        }
        return 1;
    }
    case K_DBL: {
        double v;
        memcpy(&v, p, sizeof v);
        if (!isfinite(v) || (k->lo_open ? v <= k->lo : v < k->lo) || v > k->hi) {
            snprintf(reason, n, "%g is out of range %s%g..%g", v, k->lo_open ? "> " : "", k->lo, k->hi);
            return 0;
        }
        return 1;
    }
    case K_ENUM: {
        int v, count = 0;
        memcpy(&v, p, sizeof v);
        while (k->names[count]) count++;
        if (v < 0 || v >= count) {
            snprintf(reason, n, "enum value %d is not valid", v);
            return 0;
        }
        return 1;
    }
    case K_NAME: {
        for (int i = 0; k->names[i]; i++)
            if (strncmp(p, k->names[i], k->size) == 0) return 1;
        char list[160];
        join_names(list, sizeof list, k->names);
        snprintf(reason, n, "'%.*s' is not one of %s", (int)k->size, p, list);
        return 0;
    }
    case K_IDENT: {
        size_t len = strnlen(p, k->size);
        if (len == 0 || len >= k->size) {
            snprintf(reason, n, "must be 1..%zu characters", k->size - 1);
            return 0;
        }
        /* names end up in report file names: keep them shell- and path-safe */
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '+' || c == '-')) {
                snprintf(reason, n, "'%.*s' may only contain letters, digits and _ . + -", (int)len, p);
                return 0;
            }
        }
        return 1;
    }
    case K_PATH: {
        size_t len = strnlen(p, k->size);
        if (len == 0 || len >= k->size) {
            snprintf(reason, n, "path must be 1..%zu characters", k->size - 1);
            return 0;
        }
        return 1;
    }
    }
    return 0;
}

/* Convert text to the key's type and store it; reason on failure. */
static int store_value(const keydef *k, qs_arch *a, const char *v, char *reason, size_t n)
{
    char *p = (char *)a + k->off;
    if (*v == '\0') {
        snprintf(reason, n, "empty value");
        return 0;
    }
    switch (k->type) {
    case K_INT:
    case K_BOOL: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        /* the whole string must be the number: "12x" and "0x10" are errors */
        if (end == v || *end != '\0' || v[0] == ' ') {
            snprintf(reason, n, "'%s' is not an integer", v);
            return 0;
        }
        if (errno == ERANGE || x < k->lo || x > k->hi) {
            snprintf(reason, n, "%s is out of range %.0f..%.0f", v, k->lo, k->hi);
            return 0;
        }
        int32_t x32 = (int32_t)x;
        memcpy(p, &x32, sizeof x32);
        return 1;
    }
    case K_DBL: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (end == v || *end != '\0' || !isfinite(x)) {
            snprintf(reason, n, "'%s' is not a finite number", v);
            return 0;
        }
        memcpy(p, &x, sizeof x);
        return 1;
    }
    case K_ENUM:
        for (int i = 0; k->names[i]; i++) {
            if (strcmp(v, k->names[i]) == 0) {
                memcpy(p, &i, sizeof i);
                return 1;
            }
        }
        {
            char list[160];
            join_names(list, sizeof list, k->names);
            snprintf(reason, n, "'%s' is not one of %s", v, list);
        }
        return 0;
    case K_NAME:
    case K_IDENT:
    case K_PATH:
        if (strlen(v) >= k->size) {
            snprintf(reason, n, "value longer than %zu characters", k->size - 1);
            return 0;
        }
        memset(p, 0, k->size);
        memcpy(p, v, strlen(v));
        return 1;
    }
    return 0;
}

/* ---- cross-field rules ----------------------------------------------------- */

static int origin_of(const vctx *v, int idx) { return v->origin ? v->origin[idx] : 0; }

/* Which of two keys was set last: --set after the file, later lines after
 * earlier ones, anything after a default. A cross-field error is reported
 * there, because that is the setting most likely to have broken the rule. */
static int origin_rank(int origin) { return origin == ORIGIN_SET ? 1 << 30 : origin; }

static int later_of(const vctx *v, int k1, int k2)
{
    return origin_rank(origin_of(v, k2)) > origin_rank(origin_of(v, k1)) ? k2 : k1;
}

/* Report a rule between keys k1 and k2 at whichever was set last, naming
 * the other and where it came from. The reason names both keys itself. */
static qs_status cross_fail(const vctx *v, qs_error *err, int k1, int k2, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static qs_status cross_fail(const vctx *v, qs_error *err, int k1, int k2, const char *fmt, ...)
{
    char loc[160], reason[320], o[24];
    int primary = later_of(v, k1, k2), other = primary == k1 ? k2 : k1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    key_loc(loc, sizeof loc, v->where, primary, origin_of(v, primary));
    key_origin(o, sizeof o, origin_of(v, other));
    return qs_fail(err, QS_ERR_CONFIG, "%s: %s ([%s] %s: %s)", loc, reason, KEYS[other].section, KEYS[other].key,
                   o);
}

static int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* One buffer's rules. `edge_bytes`: one array edge of its operands (what one
 * array row/column holds), named by `edge_what` after key `edge_key`;
 * `word_bytes`: one operand, named likewise. */
static qs_status check_buffer(const vctx *v, qs_error *err, const qs_buffer_cfg *b, const char *section,
                              int64_t edge_bytes, const char *edge_what, int edge_key, int64_t word_bytes,
                              const char *word_what, int word_key)
{
    int i_size = key_index(section, "size_kib"), i_banks = key_index(section, "banks");
    int i_width = key_index(section, "bank_width_bytes"), i_db = key_index(section, "double_buffer");
    int64_t cap = (int64_t)b->size_kib * 1024;
    int64_t half = b->double_buffer ? cap / 2 : cap;
    int64_t row = (int64_t)b->banks * b->bank_width_bytes;
    /* the array could not be given even one edge of operands */
    if (half < edge_bytes)
        return cross_fail(v, err, i_size, edge_key,
                          "[%s] size_kib = %d holds %lld bytes%s, less than one array edge of operands "
                          "(%s = %lld bytes)",
                          section, b->size_kib, (long long)half, b->double_buffer ? " per double-buffer half" : "",
                          edge_what, (long long)edge_bytes);
    /* narrower buffers are legal (the sim stalls on them) but one operand
     * must move in one access */
    if (row < word_bytes)
        return cross_fail(v, err, i_width, word_key,
                          "[%s] banks * bank_width_bytes = %d * %d = %lld bytes is narrower than one operand "
                          "(%s = %lld bytes)",
                          section, b->banks, b->bank_width_bytes, (long long)row, word_what, (long long)word_bytes);
    /* every bank must have a whole number of rows */
    if (cap % row != 0)
        return cross_fail(v, err, i_width, i_banks,
                          "[%s] size_kib = %d (%lld bytes) is not a whole number of rows of banks * "
                          "bank_width_bytes = %d * %d = %lld bytes",
                          section, b->size_kib, (long long)cap, b->banks, b->bank_width_bytes, (long long)row);
    if (cap / row < (b->double_buffer ? 2 : 1))
        return cross_fail(v, err, i_width, i_db,
                          "[%s] banks * bank_width_bytes = %lld bytes leaves fewer than 2 rows, one per "
                          "double-buffer half",
                          section, (long long)row);
    return QS_OK;
}

static qs_status check_cross(const qs_arch *a, const vctx *v, qs_error *err)
{
    const int i_rows = key_index("array", "rows"), i_cols = key_index("array", "cols");
    const int i_wpb = key_index("array", "weight_path_bits"), i_mwb = key_index("array", "max_weight_bits");
    const int i_mab = key_index("array", "max_act_bits"), i_acc = key_index("array", "acc_bits");
    const int i_grp = key_index("array", "skip_group");
    qs_status st;

    /* A path wider than every weight it will carry is a mis-typed config. */
    if (a->max_weight_bits < a->weight_path_bits)
        return cross_fail(v, err, i_mwb, i_wpb, "max_weight_bits = %d is narrower than weight_path_bits = %d",
                          a->max_weight_bits, a->weight_path_bits);
    /* The datapath handles whole slices: N slices accept N*weight_path_bits
     * bits, so any other maximum misstates what the hardware accepts. */
    if (a->max_weight_bits % a->weight_path_bits != 0)
        return cross_fail(v, err, i_mwb, i_wpb,
                          "max_weight_bits = %d is not a multiple of weight_path_bits = %d (whole slices only)",
                          a->max_weight_bits, a->weight_path_bits);
    /* One product must fit the accumulator, else even a single MAC overflows. */
    if (a->acc_bits < a->max_weight_bits + a->max_act_bits)
        return cross_fail(v, err, i_acc, later_of(v, i_mwb, i_mab),
                          "acc_bits = %d cannot hold one product: max_weight_bits + max_act_bits = %d + %d",
                          a->acc_bits, a->max_weight_bits, a->max_act_bits);
    /* Skip groups are row groups that move in lockstep (sim/array.h): a
     * ragged last group would need its own schedule. */
    if (a->skip_group > a->rows)
        return cross_fail(v, err, i_grp, i_rows, "skip_group = %d exceeds rows = %d", a->skip_group, a->rows);
    if (a->rows % a->skip_group != 0)
        return cross_fail(v, err, i_grp, i_rows, "skip_group = %d does not divide rows = %d", a->skip_group,
                          a->rows);

    int64_t act_word = div_up(a->max_act_bits, 8), w_word = div_up(a->max_weight_bits, 8);
    int64_t acc_word = div_up(a->acc_bits, 8);
    if ((st = check_buffer(v, err, &a->ifmap, "buffer.ifmap", div_up((int64_t)a->rows * a->max_act_bits, 8),
                           "[array] rows x max_act_bits", i_rows, act_word, "[array] max_act_bits", i_mab)))
        return st;
    if ((st = check_buffer(v, err, &a->weight, "buffer.weight", div_up((int64_t)a->cols * a->max_weight_bits, 8),
                           "[array] cols x max_weight_bits", i_cols, w_word, "[array] max_weight_bits", i_mwb)))
        return st;
    if ((st = check_buffer(v, err, &a->accum, "buffer.accum", (int64_t)a->cols * acc_word,
                           "[array] cols x acc_bits in whole bytes", i_cols, acc_word, "[array] acc_bits", i_acc)))
        return st;
    return QS_OK;
}

static qs_status check_all(const qs_arch *a, const vctx *v, qs_error *err)
{
    for (int i = 0; i < NKEYS; i++) {
        char reason[240], loc[160];
        if (!check_value(&KEYS[i], a, reason, sizeof reason)) {
            key_loc(loc, sizeof loc, v->where, i, origin_of(v, i));
            return qs_fail(err, QS_ERR_CONFIG, "%s: %s", loc, reason);
        }
    }
    return check_cross(a, v, err);
}

qs_status qs_arch_validate(const qs_arch *a, const char *where, qs_error *err)
{
    vctx v = {where ? where : "<arch>", NULL};
    if (!a) return qs_fail(err, QS_ERR_ARG, "%s: no configuration", v.where);
    return check_all(a, &v, err);
}

/* ---- the INI dialect (shared with energy.c) ---------------------------------- */

typedef struct {
    const char *p;     /* next unread byte of the text */
    int line;          /* line last handed to inih (1-based) */
    const char *where;
    qs_ini_fn fn;
    void *user;
    qs_error *err;
    qs_status st;      /* first failure; once set, reading stops */
} ini_ctx;

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* inih's fgets-style reader: hands over exactly one line per call, so inih's
 * and our line numbers agree, and checks what inih would silently accept. */
static char *read_one_line(char *buf, int size, void *stream)
{
    ini_ctx *c = stream;
    if (c->st != QS_OK || *c->p == '\0') return NULL;
    const char *nl = strchr(c->p, '\n');
    size_t len = nl ? (size_t)(nl - c->p) + 1 : strlen(c->p);
    size_t content = nl ? len - 1 : len;
    c->line++;
    /* inih splits a longer line into two and would parse the tail as a line */
    if (size < 3 || content > (size_t)size - 3) {
        c->st = qs_fail(c->err, QS_ERR_CONFIG, "%s:%d: line longer than %d characters", c->where, c->line,
                        size - 3);
        return NULL;
    }
    memcpy(buf, c->p, len);
    buf[len] = '\0';
    c->p += len;

    const char *q = buf;
    if (c->line == 1 && (unsigned char)q[0] == 0xEF && (unsigned char)q[1] == 0xBB && (unsigned char)q[2] == 0xBF)
        q += 3; /* inih skips a UTF-8 BOM */
    if (is_blank(*q)) {
        while (is_blank(*q)) q++;
        /* inih would append an indented line to the previous key's value */
        if (*q && *q != '\n' && *q != ';' && *q != '#') {
            c->st = qs_fail(c->err, QS_ERR_CONFIG, "%s:%d: indented line (indentation is not allowed)", c->where,
                            c->line);
            return NULL;
        }
    } else if (*q == '[') {
        const char *close = strchr(q, ']');
        if (close) {
            /* inih truncates long section names and ignores trailing text;
             * check the full name here and refuse anything after ']' */
            const char *t = close + 1;
            while (is_blank(*t)) t++;
            if (*t && *t != '\n' && *t != ';' && *t != '#') {
                c->st = qs_fail(c->err, QS_ERR_CONFIG, "%s:%d: text after the section header", c->where, c->line);
                return NULL;
            }
            char name[128];
            size_t n = (size_t)(close - q - 1);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, q + 1, n);
            name[n] = '\0';
            qs_status st = c->fn(c->user, name, NULL, NULL, c->line, c->err);
            if (st != QS_OK) {
                c->st = st;
                return NULL;
            }
        }
    }
    return buf;
}

static int ini_pair(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx *c = user;
    if (c->st != QS_OK) return 0;
    c->st = c->fn(c->user, section, key, value, c->line, c->err);
    return c->st == QS_OK;
}

qs_status qs_ini_parse(const char *text, const char *where, qs_ini_fn fn, void *user, qs_error *err)
{
    ini_ctx c = {text, 0, where ? where : "<text>", fn, user, err, QS_OK};
    if (!text || !fn) return qs_fail(err, QS_ERR_ARG, "%s: no text to parse", c.where);
    int r = ini_parse_stream(read_one_line, &c, ini_pair, &c);
    if (c.st != QS_OK) return c.st;
    if (r > 0)
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: syntax error: expected '[section]' or 'key = value'", c.where,
                       r);
    if (r < 0) return qs_fail(err, QS_ERR_NOMEM, "%s: inih failed (%d)", c.where, r);
    return QS_OK;
}

qs_status qs_read_text_file(const char *path, char **out, qs_error *err)
{
    /* no config or technology table is this big: refuse rather than eat memory */
    uint8_t *bytes;
    size_t len;
    *out = NULL;
    qs_status st = qs_read_file(path, (size_t)64 << 20, &bytes, &len, err);
    if (st) return st;
    /* a NUL would silently end the text early */
    if (strlen((char *)bytes) != len) {
        free(bytes);
        return qs_fail(err, QS_ERR_IO, "%s: contains a NUL byte (not a text file)", path);
    }
    *out = (char *)bytes;
    return QS_OK;
}

/* ---- parsing a .cfg ------------------------------------------------------------ */

typedef struct {
    qs_arch a;
    const char *where;
    int origin[NKEYS];          /* see ORIGIN_SET */
    int section_line[NSECTIONS];
} parse_ctx;

static qs_status set_key(parse_ctx *c, const char *section, const char *key, const char *value, int line,
                         qs_error *err)
{
    char loc[200], reason[240];
    const int origin = line > 0 ? line : ORIGIN_SET;
    int idx = key_index(section, key);
    if (idx < 0) {
        char known[240];
        if (section_index(section) < 0) {
            join_names(known, sizeof known, SECTIONS);
            if (line > 0)
                return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: key outside a known section (sections: %s)",
                               c->where, line, section, key, known);
            return qs_fail(err, QS_ERR_CONFIG, "%s: --set %s.%s: unknown section [%s] (sections: %s)", c->where,
                           section, key, section, known);
        }
        keys_of_section(known, sizeof known, section);
        if (line > 0)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: unknown key (keys: %s)", c->where, line, section,
                           key, known);
        return qs_fail(err, QS_ERR_CONFIG, "%s: --set %s.%s: unknown key (keys of [%s]: %s)", c->where, section,
                       key, section, known);
    }
    key_loc(loc, sizeof loc, c->where, idx, origin);
    if (c->origin[idx] != 0 && (c->origin[idx] > 0) == (line > 0)) {
        /* twice in the file, or twice on the command line: one is a mistake */
        if (line > 0) return qs_fail(err, QS_ERR_CONFIG, "%s: duplicate key (first at line %d)", loc, c->origin[idx]);
        return qs_fail(err, QS_ERR_CONFIG, "%s: given twice", loc);
    }
    if (!store_value(&KEYS[idx], &c->a, value, reason, sizeof reason) ||
        !check_value(&KEYS[idx], &c->a, reason, sizeof reason))
        return qs_fail(err, QS_ERR_CONFIG, "%s: %s", loc, reason);
    c->origin[idx] = origin;
    return QS_OK;
}

static qs_status on_ini(void *user, const char *section, const char *key, const char *value, int line,
                        qs_error *err)
{
    parse_ctx *c = user;
    if (!key) {
        int s = section_index(section);
        char known[240];
        if (s < 0) {
            join_names(known, sizeof known, SECTIONS);
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: unknown section (sections: %s)", c->where, line,
                           section, known);
        }
        /* a repeated section usually means two configs were pasted together */
        if (c->section_line[s])
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: section repeated (first at line %d)", c->where, line,
                           section, c->section_line[s]);
        c->section_line[s] = line;
        return QS_OK;
    }
    if (section[0] == '\0')
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: key before any [section]", c->where, line, key);
    return set_key(c, section, key, value, line, err);
}

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && is_blank(s[n - 1])) s[--n] = '\0';
    while (is_blank(s[i])) i++;
    memmove(s, s + i, n - i + 1);
}

/* "section.key=value"; the section may itself contain dots (buffer.ifmap),
 * so the key is what follows the last dot before '='. */
static qs_status apply_override(parse_ctx *c, const char *ov, qs_error *err)
{
    char buf[512];
    if (!ov || strlen(ov) >= sizeof buf)
        return qs_fail(err, QS_ERR_CONFIG, "%s: --set %.60s: too long or empty", c->where, ov ? ov : "(null)");
    snprintf(buf, sizeof buf, "%s", ov);
    char *eq = strchr(buf, '=');
    char *dot = NULL;
    if (eq) {
        *eq = '\0';
        dot = strrchr(buf, '.');
    }
    if (!eq || !dot || dot == buf || dot[1] == '\0')
        return qs_fail(err, QS_ERR_CONFIG, "%s: --set %.200s: expected section.key=value", c->where, ov);
    *dot = '\0';
    char *section = buf, *key = dot + 1, *value = eq + 1;
    trim(section);
    trim(key);
    trim(value);
    if (!*section || !*key)
        return qs_fail(err, QS_ERR_CONFIG, "%s: --set %.200s: expected section.key=value", c->where, ov);
    return set_key(c, section, key, value, 0, err);
}

/* Relative tech.table paths from the file (or the default) are relative to
 * the config's folder, so presets work from any working directory; a
 * --set path is relative to the working directory, like any path typed on
 * a command line. */
static qs_status resolve_table(parse_ctx *c, qs_error *err)
{
    const int idx = key_index("tech", "table");
    char *t = c->a.tech_table;
    if (t[0] == '/' || c->origin[idx] == ORIGIN_SET) return QS_OK;
    const char *slash = strrchr(c->where, '/');
    if (!slash) return QS_OK;
    char joined[sizeof c->a.tech_table];
    int n = snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - c->where), c->where, t);
    if (n < 0 || (size_t)n >= sizeof joined) {
        char loc[200];
        key_loc(loc, sizeof loc, c->where, idx, c->origin[idx]);
        return qs_fail(err, QS_ERR_CONFIG, "%s: resolved path longer than %zu characters", loc,
                       sizeof joined - 1);
    }
    memcpy(t, joined, sizeof joined);
    return QS_OK;
}

qs_status qs_arch_parse(const char *text, const char *where, const char *const *overrides, int n_overrides,
                        qs_arch *out, qs_error *err)
{
    if (!out) return qs_fail(err, QS_ERR_ARG, "qs_arch_parse: no output");
    if (n_overrides < 0 || (n_overrides > 0 && !overrides))
        return qs_fail(err, QS_ERR_ARG, "qs_arch_parse: bad overrides");
    /* on the heap: the context holds a whole qs_arch plus bookkeeping */
    parse_ctx *c = calloc(1, sizeof *c);
    if (!c) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    c->where = where ? where : "<config>";
    qs_arch_defaults(&c->a);
    qs_status st = qs_ini_parse(text ? text : "", c->where, on_ini, c, err);
    for (int i = 0; st == QS_OK && i < n_overrides; i++) st = apply_override(c, overrides[i], err);
    if (st == QS_OK) {
        vctx v = {c->where, c->origin};
        st = check_all(&c->a, &v, err);
    }
    if (st == QS_OK) st = resolve_table(c, err);
    if (st == QS_OK) *out = c->a;
    free(c);
    return st;
}

qs_status qs_arch_load(const char *path, const char *const *overrides, int n_overrides, qs_arch *out,
                       qs_error *err)
{
    char *text;
    if (!path) return qs_fail(err, QS_ERR_ARG, "qs_arch_load: no path");
    qs_status st = qs_read_text_file(path, &text, err);
    if (st != QS_OK) return st;
    st = qs_arch_parse(text, path, overrides, n_overrides, out, err);
    free(text);
    return st;
}

/* ---- derived quantities -------------------------------------------------------- */

int32_t qs_arch_weight_slices(const qs_arch *a, int weight_bits)
{
    /* bipolar (+-1) weights are one sign bit: one slice on any path */
    if (weight_bits <= 1 || a->weight_path_bits <= 0) return 1;
    return (weight_bits + a->weight_path_bits - 1) / a->weight_path_bits;
}

int32_t qs_arch_max_slices(const qs_arch *a) { return qs_arch_weight_slices(a, a->max_weight_bits); }

/* ---- the effective configuration, key by key ---------------------------------- */

int32_t qs_arch_n_keys(void) { return NKEYS; }

int qs_arch_key_value(const qs_arch *a, int32_t index, const char **section, const char **key, char *buf,
                      size_t n, int *is_number)
{
    if (!a || index < 0 || index >= NKEYS || !buf || n == 0) return 0;
    const keydef *k = &KEYS[index];
    const char *p = (const char *)a + k->off;
    *section = k->section;
    *key = k->key;
    *is_number = k->type == K_INT || k->type == K_BOOL || k->type == K_DBL;
    switch (k->type) {
    case K_INT:
    case K_BOOL: {
        int32_t x;
        memcpy(&x, p, sizeof x);
        snprintf(buf, n, "%d", (int)x);
        break;
    }
    case K_DBL: {
        double x;
        memcpy(&x, p, sizeof x);
        snprintf(buf, n, "%.17g", x);
        break;
    }
    case K_ENUM: {
        int v;
        memcpy(&v, p, sizeof v);
        int count = 0;
        while (k->names[count]) count++;
        snprintf(buf, n, "%s", v >= 0 && v < count ? k->names[v] : "?");
        break;
    }
    case K_NAME:
    case K_IDENT:
    case K_PATH:
        snprintf(buf, n, "%.*s", (int)k->size, p);
        break;
    }
    return 1;
}
