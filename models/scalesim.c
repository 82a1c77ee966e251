/* SCALE-Sim's configuration and topology files, read as SCALE-Sim v2/v3 read
 * them (docs/scalesim.md), and one topology layer as a synthetic qs_net.
 *
 * The configuration is mapped onto qsim's own keys by writing them as a
 * native configuration text and handing that, with the user's --set
 * overrides, to qs_arch_parse: overrides then mean exactly what they mean on
 * a native file, and one validator checks both. Messages from that second
 * parse that point into the generated text are translated back to the line
 * of the SCALE-Sim key the value came from. */
#include "qs_scalesim.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef QSIM_TECH_DEFAULT
#define QSIM_TECH_DEFAULT "models/tech/default45.tech"
#endif

const char *qs_scalesim_default_tech(void) { return QSIM_TECH_DEFAULT; }

/* ---- small text helpers --------------------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Trim in place; returns s. */
static char *trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && is_space(s[n - 1])) s[--n] = '\0';
    while (is_space(s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
    return s;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* A whole decimal integer with an optional sign ("+64", "-3"); what Python's
 * int() takes from SCALE-Sim's files, less the underscores. */
static int parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end) return 0;
    *out = v;
    return 1;
}

/* ---- the configuration ------------------------------------------------------------ */

int qs_scalesim_is_config(const char *text)
{
    if (!text) return 0;
    for (const char *p = text; *p;) {
        while (is_space(*p)) p++;
        if (*p == '[') {
            const char *q = p + 1, *close = strchr(q, ']'), *nl = strchr(q, '\n');
            if (close && (!nl || close < nl)) {
                while (is_space(*q)) q++;
                const char *e = close;
                while (e > q && is_space(e[-1])) e--;
                if ((size_t)(e - q) == strlen("architecture_presets") &&
                    strncasecmp(q, "architecture_presets", (size_t)(e - q)) == 0)
                    return 1;
            }
        }
        p = strchr(p, '\n');
        if (!p) break;
        p++;
    }
    return 0;
}

/* Sections SCALE-Sim v2 and v3 read (configparser: any other is ignored). */
enum { S_GENERAL, S_ARCH, S_RUN, S_LAYOUT, S_SPARSITY, S_NETWORK, S_MEMMAP, NSECT };
static const char *const SECT_NAMES[NSECT] = {"general", "architecture_presets", "run_presets", "layout",
                                              "sparsity", "network_presets", "memory_map_files"};

/* Keys qsim maps (or checks). */
enum {
    K_RUN_NAME, K_ARRAY_H, K_ARRAY_W, K_IFMAP_KB, K_FILTER_KB, K_OFMAP_KB, K_IFMAP_OFF, K_FILTER_OFF,
    K_OFMAP_OFF, K_BANDWIDTH, K_DATAFLOW, K_MEMORY_BANKS, K_INTERFACE_BW, K_SPARSITY_SUPPORT, NKEYS
};

typedef struct {
    int section;
    const char *name;   /* as SCALE-Sim's configs spell it (matching ignores case) */
    int required;
} sskey;

static const sskey KEYS[NKEYS] = {
    [K_RUN_NAME] = {S_GENERAL, "run_name", 1},
    [K_ARRAY_H] = {S_ARCH, "ArrayHeight", 1},
    [K_ARRAY_W] = {S_ARCH, "ArrayWidth", 1},
    [K_IFMAP_KB] = {S_ARCH, "IfmapSramSzkB", 1},
    [K_FILTER_KB] = {S_ARCH, "FilterSramSzkB", 1},
    [K_OFMAP_KB] = {S_ARCH, "OfmapSramSzkB", 1},
    [K_IFMAP_OFF] = {S_ARCH, "IfmapOffset", 1},
    [K_FILTER_OFF] = {S_ARCH, "FilterOffset", 1},
    [K_OFMAP_OFF] = {S_ARCH, "OfmapOffset", 1},
    [K_BANDWIDTH] = {S_ARCH, "Bandwidth", 0},
    [K_DATAFLOW] = {S_ARCH, "Dataflow", 1},
    [K_MEMORY_BANKS] = {S_ARCH, "MemoryBanks", 0},
    [K_INTERFACE_BW] = {S_RUN, "InterfaceBandwidth", 1},
    [K_SPARSITY_SUPPORT] = {S_SPARSITY, "SparsitySupport", 0},
};

/* Keys of SCALE-Sim v2/v3 that qsim accepts and does not use. Those whose
 * "true" changes what SCALE-Sim computes get a note (note_if_true). */
typedef struct {
    int section; /* -1: any section */
    const char *name;
    int note_if_true;
} ignored_key;

static const ignored_key IGNORED[] = {
    {S_ARCH, "ReadRequestBuffer", 0},      {S_ARCH, "WriteRequestBuffer", 0},
    {S_ARCH, "OnChipMemoryBanks", 0},      {S_ARCH, "OnChipMemoryBankPorts", 0},
    {-1, "IfmapCustomLayout", 1},          {-1, "FilterCustomLayout", 1},
    {-1, "IfmapSRAMBankBandwidth", 0},     {-1, "IfmapSRAMBankNum", 0},
    {-1, "IfmapSRAMBankPort", 0},          {-1, "FilterSRAMBankBandwidth", 0},
    {-1, "FilterSRAMBankNum", 0},          {-1, "FilterSRAMBankPort", 0},
    {S_RUN, "UseRamulatorTrace", 1},       {S_RUN, "SRAM_row_size", 0},
    {S_RUN, "SRAM_bank_size", 0},          {S_RUN, "DRAM_row_size", 0},
    {S_RUN, "DRAM_bank_size", 0},          {S_SPARSITY, "SparseRep", 0},
    {S_SPARSITY, "OptimizedMapping", 0},   {S_SPARSITY, "BlockSize", 0},
    {S_SPARSITY, "RandomNumberGeneratorSeed", 0},
    {S_NETWORK, "TopologyCsvLoc", 0},      {S_NETWORK, "LayoutCsvLoc", 0},
};

typedef struct {
    const char *where;
    qs_scalesim_cfg cfg;
    int key_line[NKEYS];
    int sect_line[NSECT];
    int unknown_sects;
} cfg_ctx;

static void add_note(cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(cfg_ctx *c, const char *fmt, ...)
{
    if (c->cfg.n_notes >= QS_SCALESIM_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->cfg.notes[c->cfg.n_notes++], sizeof c->cfg.notes[0], fmt, ap);
    va_end(ap);
}

static int section_of(const char *name)
{
    char buf[128];
    copy_str(buf, sizeof buf, name);
    trim(buf);
    for (int i = 0; i < NSECT; i++)
        if (strcasecmp(buf, SECT_NAMES[i]) == 0) return i;
    return -1;
}

static int is_true(const char *v) { return strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0; }

static qs_status int_value(const cfg_ctx *c, int line, const char *key, const char *v, int64_t lo, int64_t hi,
                           int64_t *out, qs_error *err)
{
    int64_t x;
    if (!parse_i64(v, &x))
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: '%s' is not an integer", c->where, line, key, v);
    if (x < lo || x > hi)
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s = %lld is outside %lld..%lld%s", c->where, line, key,
                       (long long)x, (long long)lo, (long long)hi,
                       hi == QS_SCALESIM_ARRAY_MAX ? " (qsim's limit for SCALE-Sim's figures; the engines simulate "
                                                     "up to 1024)" : "");
    *out = x;
    return QS_OK;
}

static qs_status set_mapped(cfg_ctx *c, int k, const char *v, int line, qs_error *err)
{
    qs_scalesim_cfg *g = &c->cfg;
    const char *name = KEYS[k].name;
    int64_t x = 0;
    qs_status st = QS_OK;
    switch (k) {
    case K_RUN_NAME:
        copy_str(g->run_name, sizeof g->run_name, v);
        break;
    case K_ARRAY_H:
    case K_ARRAY_W:
        /* over 1024: SCALE-Sim's figures only (the engines' limit) */
        if ((st = int_value(c, line, name, v, 1, QS_SCALESIM_ARRAY_MAX, &x, err))) return st;
        *(k == K_ARRAY_H ? &g->array_h : &g->array_w) = (int32_t)x;
        break;
    case K_IFMAP_KB:
    case K_FILTER_KB:
    case K_OFMAP_KB:
        if ((st = int_value(c, line, name, v, 1, 1048576, &x, err))) return st;
        *(k == K_IFMAP_KB ? &g->ifmap_kb : k == K_FILTER_KB ? &g->filter_kb : &g->ofmap_kb) = (int32_t)x;
        break;
    case K_IFMAP_OFF:
    case K_FILTER_OFF:
    case K_OFMAP_OFF:
        if ((st = int_value(c, line, name, v, 0, INT64_MAX, &x, err))) return st;
        *(k == K_IFMAP_OFF ? &g->ifmap_offset : k == K_FILTER_OFF ? &g->filter_offset : &g->ofmap_offset) = x;
        break;
    case K_BANDWIDTH: {
        /* one value per memory bank, comma-separated; SCALE-Sim uses the first */
        char buf[256];
        copy_str(buf, sizeof buf, v);
        g->n_bandwidths = 0;
        for (char *tok = buf, *comma;; tok = comma + 1) {
            comma = strchr(tok, ',');
            if (comma) *comma = '\0';
            trim(tok);
            if ((st = int_value(c, line, name, tok, 1, 1048576, &x, err))) return st;
            if (g->n_bandwidths++ == 0) {
                g->bandwidth = (int32_t)x;
                g->bandwidth_text[0] = '\0';
            }
            size_t used = strlen(g->bandwidth_text);
            snprintf(g->bandwidth_text + used, sizeof g->bandwidth_text - used, "%s%lld", used ? "," : "",
                     (long long)x);
            if (!comma) break;
        }
        break;
    }
    case K_DATAFLOW:
        if (!strcasecmp(v, "os")) g->dataflow = QS_DF_OS;
        else if (!strcasecmp(v, "ws")) g->dataflow = QS_DF_WS;
        else if (!strcasecmp(v, "is")) g->dataflow = QS_DF_IS;
        else
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: Dataflow: unknown dataflow '%s' (os, ws or is)", c->where,
                           line, v);
        /* SCALE-Sim v2 compares the value with 'os', 'ws', 'is' as written:
         * anything else only warns and runs output stationary, surely not what
         * the file's author meant */
        if (strcmp(v, "os") && strcmp(v, "ws") && strcmp(v, "is") && g->dataflow != QS_DF_OS)
            add_note(c, "%s:%d: Dataflow '%s': qsim runs %s; SCALE-Sim v2 accepts only lower case and runs output "
                        "stationary (os) for '%s'",
                     c->where, line, v, qs_dataflow_name(g->dataflow), v);
        break;
    case K_MEMORY_BANKS:
        if ((st = int_value(c, line, name, v, 1, 1024, &x, err))) return st;
        g->memory_banks = (int32_t)x;
        if (x > 1)
            add_note(c, "%s:%d: MemoryBanks = %lld: qsim models one bank; the memory-map files are ignored", c->where,
                     line, (long long)x);
        break;
    case K_INTERFACE_BW:
        if (!strcasecmp(v, "CALC")) g->user_bandwidth = 0;
        else if (!strcasecmp(v, "USER")) g->user_bandwidth = 1;
        else
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: InterfaceBandwidth: '%s' is neither CALC nor USER", c->where,
                           line, v);
        break;
    case K_SPARSITY_SUPPORT:
        g->sparsity_support = is_true(v);
        if (g->sparsity_support)
            add_note(c, "%s:%d: SparsitySupport = %s is ignored: qsim's sparsity comes from the operands "
                        "(--sparsity) and [array] zero_skip", c->where, line, v);
        break;
    }
    return QS_OK;
}

static qs_status on_cfg(void *user, const char *section, const char *key, const char *value, int line,
                        qs_error *err)
{
    cfg_ctx *c = user;
    if (!key) {
        int s = section_of(section);
        if (s < 0) {
            c->unknown_sects++;
            add_note(c, "%s:%d: [%s]: not a section SCALE-Sim reads; ignored", c->where, line, section);
            return QS_OK;
        }
        /* configparser refuses a repeated section: so do we */
        if (c->sect_line[s])
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: section repeated (first at line %d)", c->where, line,
                           SECT_NAMES[s], c->sect_line[s]);
        c->sect_line[s] = line;
        return QS_OK;
    }
    if (!section[0])
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: key before any [section]", c->where, line, key);
    int s = section_of(section);
    if (s < 0) return QS_OK; /* noted at the header */

    char v[512];
    copy_str(v, sizeof v, value ? value : "");
    /* inih drops " ; comment"; drop " # comment" too */
    for (char *h = strchr(v, '#'); h; h = strchr(h + 1, '#'))
        if (h == v || is_space(h[-1])) {
            *h = '\0';
            break;
        }
    trim(v);

    for (int k = 0; k < NKEYS; k++) {
        if (KEYS[k].section != s || strcasecmp(KEYS[k].name, key) != 0) continue;
        /* configparser (strict) refuses a repeated option */
        if (c->key_line[k])
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: duplicate key (first at line %d)", c->where, line,
                           KEYS[k].name, c->key_line[k]);
        if (!v[0] && k != K_RUN_NAME)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: empty value", c->where, line, KEYS[k].name);
        qs_status st = set_mapped(c, k, v, line, err);
        if (st) return st;
        c->key_line[k] = line;
        return QS_OK;
    }
    for (size_t i = 0; i < sizeof IGNORED / sizeof IGNORED[0]; i++) {
        if ((IGNORED[i].section >= 0 && IGNORED[i].section != s) || strcasecmp(IGNORED[i].name, key) != 0)
            continue;
        if (IGNORED[i].note_if_true && is_true(v))
            add_note(c, "%s:%d: %s = %s is ignored (qsim does not model it; docs/scalesim.md)", c->where, line,
                     IGNORED[i].name, v);
        return QS_OK;
    }
    /* [layout], [sparsity], [network_presets] and [memory_map_files] hold
     * settings qsim does not model: take any key there */
    if (s == S_GENERAL || s == S_ARCH || s == S_RUN)
        add_note(c, "%s:%d: [%s] %s: unknown key, ignored (as SCALE-Sim does)", c->where, line, SECT_NAMES[s], key);
    return QS_OK;
}

/* ---- the mapping, written as native configuration text ----------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int line;            /* lines written */
    int *origin;         /* per written line: SCALE-Sim key it came from, -1 = qsim's choice */
    int ocap;
    int oom;
} textbuf;

static void emit(textbuf *t, int origin, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(textbuf *t, int origin, const char *fmt, ...)
{
    if (t->oom) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    if (t->len + (size_t)n + 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 2048;
        while (cap < t->len + (size_t)n + 2) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->oom = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    if (t->line + 2 > t->ocap) {
        int oc = t->ocap ? t->ocap * 2 : 64;
        int *o = realloc(t->origin, sizeof(int) * (size_t)oc);
        if (!o) {
            t->oom = 1;
            return;
        }
        t->origin = o;
        t->ocap = oc;
    }
    memcpy(t->buf + t->len, line, (size_t)n);
    t->len += (size_t)n;
    t->buf[t->len++] = '\n';
    t->buf[t->len] = '\0';
    t->origin[++t->line] = origin; /* 1-based */
}

/* [general] name: the identifier rules of a native name ([A-Za-z0-9_.+-], 1..63). */
static void sanitize_name(char *dst, size_t n, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[j++] = (isalnum(ch) || ch == '_' || ch == '.' || ch == '+' || ch == '-') ? (char)ch : '_';
    }
    dst[j] = '\0';
    if (!j) copy_str(dst, n, "scalesim");
}

static int32_t pow2_at_least(int64_t x)
{
    int32_t p = 1;
    while (p < x && p < (1 << 30)) p <<= 1;
    return p;
}

/* A buffer whose banks deliver one array edge (`edge` bytes) per cycle, up to
 * 1 KiB a cycle (more only matters for qsim's native timing; SCALE-Sim's
 * SRAMs never stall the array). */
static void emit_buffer(textbuf *t, const char *section, int size_key, int32_t size_kib, int edge_key, int64_t edge)
{
    int32_t row = pow2_at_least(edge < 8 ? 8 : edge);
    if (row > 1024) row = 1024;
    emit(t, -1, "[%s]", section);
    emit(t, size_key, "size_kib = %d", size_kib);
    emit(t, -1, "banks = 8");
    emit(t, edge_key, "bank_width_bytes = %d", row / 8);
    emit(t, -1, "ports = 1");
    emit(t, -1, "double_buffer = 1");
}

static void emit_mapping(textbuf *t, const qs_scalesim_cfg *g)
{
    char name[64];
    sanitize_name(name, sizeof name, g->run_name);
    emit(t, -1, "[general]");
    emit(t, K_RUN_NAME, "name = %s", name);
    emit(t, -1, "[array]");
    emit(t, K_ARRAY_H, "rows = %d", g->array_h < 1024 ? g->array_h : 1024);
    emit(t, K_ARRAY_W, "cols = %d", g->array_w < 1024 ? g->array_w : 1024);
    emit(t, K_DATAFLOW, "dataflow = %s", qs_dataflow_name(g->dataflow));
    emit(t, -1, "weight_path_bits = 8");
    emit(t, -1, "max_weight_bits = 8");
    emit(t, -1, "max_act_bits = 8");
    emit(t, -1, "zero_skip = none");
    emit(t, K_ARRAY_H, "skip_group = %d", g->array_h < 1024 ? g->array_h : 1024);
    emit(t, -1, "acc_bits = 32");
    emit(t, -1, "overflow = wrap");
    emit_buffer(t, "buffer.ifmap", K_IFMAP_KB, g->ifmap_kb, K_ARRAY_H, g->array_h);
    emit_buffer(t, "buffer.weight", K_FILTER_KB, g->filter_kb, K_ARRAY_W, g->array_w);
    emit_buffer(t, "buffer.accum", K_OFMAP_KB, g->ofmap_kb, K_ARRAY_W, (int64_t)g->array_w * 4);
    if (g->bandwidth > 0) {
        emit(t, -1, "[dram]");
        emit(t, K_BANDWIDTH, "bytes_per_cycle = %d", g->bandwidth);
    }
    emit(t, -1, "[timing]");
    emit(t, -1, "convention = scalesim");
    emit(t, K_INTERFACE_BW, "scalesim_bandwidth = %d", g->user_bandwidth ? g->bandwidth : 0);
    emit(t, -1, "[tech]");
    emit(t, -1, "table = %s", qs_scalesim_default_tech());
}

/* Messages of qs_arch_parse on the generated text name its lines: point them
 * at the SCALE-Sim key instead ("where:N:" -> "where:L:", "line N)" ->
 * "line L)"), or say the value is qsim's choice for SCALE-Sim configs. */
static void translate(char *msg, size_t size, const char *where, const textbuf *t, const cfg_ctx *c)
{
    char out[sizeof ((qs_error *)0)->msg];
    size_t o = 0, wl = strlen(where);
    const char *p = msg;
    while (*p && o + 1 < sizeof out) {
        const char *q = NULL;
        int n = 0, kind = 0;
        if (strncmp(p, where, wl) == 0 && p[wl] == ':' && isdigit((unsigned char)p[wl + 1])) {
            q = p + wl + 1;
            kind = 1;
        } else if (strncmp(p, "line ", 5) == 0 && isdigit((unsigned char)p[5])) {
            q = p + 5;
            kind = 2;
        }
        if (kind) {
            const char *d = q;
            while (isdigit((unsigned char)*d) && n < 1000000) n = n * 10 + (*d++ - '0');
            if ((kind == 1 && *d == ':') || (kind == 2 && *d == ')')) {
                if (n >= 1 && n <= t->line) {
                    int k = t->origin[n];
                    int l = k >= 0 ? c->key_line[k] : 0;
                    int w;
                    if (kind == 1)
                        w = l > 0 ? snprintf(out + o, sizeof out - o, "%s:%d: %s ->", where, l, KEYS[k].name)
                                  : snprintf(out + o, sizeof out - o, "%s: (qsim's mapping of a SCALE-Sim config)",
                                             where);
                    else
                        w = l > 0 ? snprintf(out + o, sizeof out - o, "line %d, %s)", l, KEYS[k].name)
                                  : snprintf(out + o, sizeof out - o, "qsim's mapping)");
                    if (w < 0) break;
                    o += (size_t)w < sizeof out - o ? (size_t)w : sizeof out - o - 1;
                    p = d + 1;
                    continue;
                }
            }
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    copy_str(msg, size, out);
}

qs_status qs_scalesim_parse_config(const char *text, const char *where, const char *const *overrides,
                                   int n_overrides, qs_arch *out, qs_scalesim_cfg *cfg, qs_error *err)
{
    if (!out) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_parse_config: no output");
    if (n_overrides < 0 || (n_overrides > 0 && !overrides))
        return qs_fail(err, QS_ERR_ARG, "qs_scalesim_parse_config: bad overrides");
    if (!where) where = "<scalesim config>";
    cfg_ctx *c = calloc(1, sizeof *c);
    if (!c) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    c->where = where;
    c->cfg.memory_banks = 1;
    c->cfg.dataflow = QS_DF_OS;
    qs_status st = qs_ini_parse(text ? text : "", where, on_cfg, c, err);

    /* what configparser.get() would fail on */
    static const int REQUIRED_SECTIONS[] = {S_GENERAL, S_ARCH, S_RUN};
    for (size_t i = 0; st == QS_OK && i < sizeof REQUIRED_SECTIONS / sizeof REQUIRED_SECTIONS[0]; i++)
        if (!c->sect_line[REQUIRED_SECTIONS[i]])
            st = qs_fail(err, QS_ERR_CONFIG, "%s: missing section [%s]", where, SECT_NAMES[REQUIRED_SECTIONS[i]]);
    for (int k = 0; st == QS_OK && k < NKEYS; k++)
        if (KEYS[k].required && !c->key_line[k])
            st = qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: missing key %s", where, c->sect_line[KEYS[k].section],
                         SECT_NAMES[KEYS[k].section], KEYS[k].name);
    if (st == QS_OK && c->cfg.user_bandwidth) {
        if (!c->key_line[K_BANDWIDTH])
            st = qs_fail(err, QS_ERR_CONFIG,
                         "%s:%d: InterfaceBandwidth = USER needs [architecture_presets] Bandwidth (words per cycle)",
                         where, c->key_line[K_INTERFACE_BW]);
        else if (c->cfg.n_bandwidths != c->cfg.memory_banks)
            /* SCALE-Sim v2 reads every value and uses the first for all
             * three memories, whatever MemoryBanks says */
            add_note(c, "%s:%d: Bandwidth gives %d value%s for MemoryBanks = %d: the first, %d words/cycle, is used "
                        "(as SCALE-Sim v2 does)",
                     where, c->key_line[K_BANDWIDTH], c->cfg.n_bandwidths, c->cfg.n_bandwidths == 1 ? "" : "s",
                     c->cfg.memory_banks, c->cfg.bandwidth);
    }

    textbuf t = {0};
    if (st == QS_OK) {
        emit_mapping(&t, &c->cfg);
        if (t.oom) st = qs_fail(err, QS_ERR_NOMEM, "out of memory");
    }
    if (st == QS_OK) {
        st = qs_arch_parse(t.buf, where, overrides, n_overrides, out, err);
        if (st != QS_OK && err) translate(err->msg, sizeof err->msg, where, &t, c);
    }
    if (st == QS_OK && (c->cfg.array_h > 1024 || c->cfg.array_w > 1024)) {
        /* an array the engines cannot hold: the mapping was written at
         * 1024; the real size goes into the result, which only SCALE-Sim's
         * figures may use (a --set of the size is not overridden) */
        if (c->cfg.array_h > 1024 && out->rows == 1024) out->rows = c->cfg.array_h;
        if (c->cfg.array_w > 1024 && out->cols == 1024) out->cols = c->cfg.array_w;
        out->scalesim_figures_only = out->rows > 1024 || out->cols > 1024;
        if (out->scalesim_figures_only)
            add_note(c, "%s: a %dx%d array is larger than qsim's engines hold (1024): every layer gets SCALE-Sim's "
                        "figures only, without operands",
                     where, (int)out->rows, (int)out->cols);
    }
    if (st == QS_OK && cfg) *cfg = c->cfg;
    free(t.buf);
    free(t.origin);
    free(c);
    return st;
}

qs_status qs_scalesim_load_config(const char *path, const char *const *overrides, int n_overrides, qs_arch *out,
                                  qs_scalesim_cfg *cfg, qs_error *err)
{
    char *text;
    if (!path) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_load_config: no path");
    qs_status st = qs_read_text_file(path, &text, err);
    if (st) return st;
    st = qs_scalesim_parse_config(text, path, overrides, n_overrides, out, cfg, err);
    free(text);
    return st;
}

/* ---- topology -------------------------------------------------------------------- */

/* Sizes qsim simulates on operands (each tensor also of at most
 * OPERANDS_MAX_ELEMS elements: the engines keep whole tensors, 4 bytes an
 * element, and the compiler's transfers have 32-bit fields);
 * a larger layer gets SCALE-Sim's figures only (no_operands), up to
 * FIG_DIM_MAX per field and FIG_MNK_MAX ofmap pixels per filter and window
 * elements (the read replay keeps 16 bytes of tables for each). */
#define DIM_MAX (1 << 20)
#define FIG_DIM_MAX (1 << 30)
#define OPERANDS_MAX_ELEMS ((int64_t)1 << 26)
#define FIG_MNK_MAX ((int64_t)1 << 24)

/* a * b, saturated at INT64_MAX (operands >= 0) */
static int64_t mul_sat(int64_t a, int64_t b)
{
    if (a != 0 && b > INT64_MAX / a) return INT64_MAX;
    return a * b;
}

static const char *const CONV_COLS[] = {"Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                                        "Channels", "Num Filter", "Strides"};
static const char *const GEMM_COLS[] = {"Layer", "M", "N", "K"};

#define MAX_FIELDS 64

typedef struct {
    char *f[MAX_FIELDS];
    int n;
} fields;

/* Split a (trimmed, writable) line at commas, as SCALE-Sim does (no quoting);
 * n = -1 if there are more than MAX_FIELDS. */
static void split(char *line, fields *fs)
{
    fs->n = 0;
    for (char *p = line;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (fs->n == MAX_FIELDS) {
            fs->n = -1;
            return;
        }
        fs->f[fs->n++] = trim(p);
        if (!comma) break;
        p = comma + 1;
    }
}

/* SCALE-Sim drops the field after the last comma (`row.split(',')[:-1]`):
 * the trailing comma it requires, or a "#dw" note after it. qsim drops that
 * field when it is empty or a '#' note, and keeps a value there (a row
 * without the trailing comma), then ignores trailing empty fields. */
static int used_fields(const fields *fs)
{
    int n = fs->n;
    if (n > 1 && (fs->f[n - 1][0] == '\0' || fs->f[n - 1][0] == '#')) n--;
    while (n > 1 && fs->f[n - 1][0] == '\0') n--;
    return n;
}

static int all_empty(const fields *fs)
{
    for (int i = 0; i < fs->n; i++)
        if (fs->f[i][0]) return 0;
    return 1;
}

static int is_ratio(const char *s)
{
    /* v3's N:M sparsity column, e.g. "1:4" */
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1]) return 0;
    for (const char *p = s; *p; p++)
        if (p != colon && !isdigit((unsigned char)*p)) return 0;
    return 1;
}

static qs_status field_int(const char *where, int line, const char *col, const char *v, int32_t *out, qs_error *err)
{
    int64_t x;
    if (!v[0]) return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %s is empty (a number belongs here)", where, line, col);
    if (!parse_i64(v, &x))
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %s: '%s' is not an integer", where, line, col, v);
    if (x < 1)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %s = %lld: sizes and strides must be at least 1", where, line, col,
                       (long long)x);
    if (x > FIG_DIM_MAX)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %s = %lld is larger than qsim's limit %d", where, line, col,
                       (long long)x, FIG_DIM_MAX);
    *out = (int32_t)x;
    return QS_OK;
}

static qs_status check_sizes(const char *where, qs_scalesim_layer *l, qs_error *err)
{
    if (l->filter_h > l->ifmap_h)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: layer '%s': Filter Height %d is larger than IFMAP Height %d", where,
                       l->line, l->name, l->filter_h, l->ifmap_h);
    if (l->filter_w > l->ifmap_w)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: layer '%s': Filter Width %d is larger than IFMAP Width %d", where,
                       l->line, l->name, l->filter_w, l->ifmap_w);
    int32_t oh, ow;
    qs_scalesim_ofmap_dims(l, &oh, &ow);
    /* the input as qsim builds it: SCALE-Sim's ceil rule adds windows past the input's edge,
     * which read zero rows/columns appended to it (fewer than a stride each way) */
    int64_t ih = l->ifmap_h, iw = l->ifmap_w;
    if ((int64_t)(oh - 1) * l->stride_h + l->filter_h > ih) ih = (int64_t)(oh - 1) * l->stride_h + l->filter_h;
    if ((int64_t)(ow - 1) * l->stride_w + l->filter_w > iw) iw = (int64_t)(ow - 1) * l->stride_w + l->filter_w;
    /* A stride far above the input puts whole windows in that zero margin; bound the
     * margin by what the row justifies (at most the real input again, or 2^24 elements),
     * so that a 23-byte row cannot ask for gigabytes of zeros. */
    const int64_t real = mul_sat(l->channels, mul_sat(l->ifmap_h, l->ifmap_w)),
                  built = mul_sat(l->channels, mul_sat(ih, iw));
    if (built - real > real && built - real > ((int64_t)1 << 24))
        return qs_fail(err, QS_ERR_FORMAT,
                       "%s:%d: layer '%s': strides %dx%d put whole windows past the %dx%d input (SCALE-Sim's ofmap "
                       "is %dx%d); qsim would build a %lldx%lld zero-extended input of %lld elements for them. Use "
                       "strides that keep each window on the input",
                       where, l->line, l->name, l->stride_h, l->stride_w, l->ifmap_h, l->ifmap_w, oh, ow,
                       (long long)ih, (long long)iw, (long long)built);
    /* qs_scalesim_mnk's products, without overflow for any field up to 2^30 */
    const int64_t M = mul_sat(oh, ow), K = mul_sat(mul_sat(l->filter_h, l->filter_w), l->channels);
    if (M > FIG_MNK_MAX || K > FIG_MNK_MAX)
        return qs_fail(err, QS_ERR_FORMAT,
                       "%s:%d: layer '%s': %lld ofmap pixels per filter and a window of %lld elements; qsim computes "
                       "SCALE-Sim's figures for at most %lld of each",
                       where, l->line, l->name, (long long)M, (long long)K, (long long)FIG_MNK_MAX);
    /* too large to simulate on operands (the engines keep whole tensors; a
     * GEMM's ifmap is M x K, as SCALE-Sim builds it):
     * SCALE-Sim's figures only (docs/scalesim.md, "Layers without operands") */
    const int32_t dims[] = {l->ifmap_h, l->ifmap_w, l->filter_h, l->filter_w, l->channels, l->num_filters,
                            l->stride_h, l->stride_w};
    l->no_operands = 0;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i] > DIM_MAX) l->no_operands = 1;
    if (mul_sat(l->channels, mul_sat(ih, iw)) > OPERANDS_MAX_ELEMS ||
        mul_sat(mul_sat(l->num_filters, l->channels), mul_sat(l->filter_h, l->filter_w)) > OPERANDS_MAX_ELEMS ||
        mul_sat(l->num_filters, mul_sat(oh, ow)) > OPERANDS_MAX_ELEMS)
        l->no_operands = 1;
    return QS_OK;
}

typedef struct {
    qs_scalesim_layer *v;
    int32_t n, cap;
} layer_vec;

static qs_status push_layer(layer_vec *lv, const qs_scalesim_layer *l, qs_error *err)
{
    if (lv->n == lv->cap) {
        if (lv->cap >= (1 << 22)) return qs_fail(err, QS_ERR_FORMAT, "more than %d layers", 1 << 22);
        int32_t cap = lv->cap ? lv->cap * 2 : 32;
        qs_scalesim_layer *v = realloc(lv->v, sizeof *v * (size_t)cap);
        if (!v) return qs_fail(err, QS_ERR_NOMEM, "out of memory for the topology");
        lv->v = v;
        lv->cap = cap;
    }
    lv->v[lv->n++] = *l;
    return QS_OK;
}

static int header_is_gemm(const fields *h)
{
    return h->n >= 4 && !strcasecmp(h->f[1], "M") && !strcasecmp(h->f[2], "N") && !strcasecmp(h->f[3], "K");
}

/* A first line whose columns after the name are all numbers is a layer, not
 * the header SCALE-Sim skips. */
static int header_is_data(const fields *h)
{
    int nums = 0;
    for (int i = 1; i < h->n; i++) {
        int64_t x;
        if (!h->f[i][0]) continue;
        if (!parse_i64(h->f[i], &x)) return 0;
        nums++;
    }
    return nums >= 3;
}

static void topo_note(qs_scalesim_topo *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void topo_note(qs_scalesim_topo *t, const char *fmt, ...)
{
    if (t->n_notes >= QS_SCALESIM_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->notes[t->n_notes++], sizeof t->notes[0], fmt, ap);
    va_end(ap);
}

static qs_status parse_row(const char *where, int line, fields *fs, int gemm, int header_cols, layer_vec *lv,
                           qs_scalesim_topo *nt, qs_error *err)
{
    qs_scalesim_layer l;
    memset(&l, 0, sizeof l);
    l.line = line;
    int n = used_fields(fs);
    const int need = gemm ? 4 : 8;
    const char *const *cols = gemm ? GEMM_COLS : CONV_COLS;
    if (fs->n < 0)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: more than %d columns", where, line, MAX_FIELDS);
    if (n < need) {
        if (gemm)
            return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %d column%s; a GEMM row has 4 (Layer, M, N, K) and a trailing "
                                               "comma",
                           where, line, n, n == 1 ? "" : "s");
        return qs_fail(err, QS_ERR_FORMAT,
                       "%s:%d: %d column%s; a convolution row has 8 (Layer name, IFMAP Height, IFMAP Width, Filter "
                       "Height, Filter Width, Channels, Num Filter, Strides) and a trailing comma",
                       where, line, n, n == 1 ? "" : "s");
    }
    if (!fs->f[0][0]) return qs_fail(err, QS_ERR_FORMAT, "%s:%d: the layer name (column 1) is empty", where, line);
    copy_str(l.name, sizeof l.name, fs->f[0]);
    qs_status st;
    int32_t v[7];
    for (int i = 1; i < need; i++)
        if ((st = field_int(where, line, cols[i], fs->f[i], &v[i - 1], err))) return st;
    /* the optional column after the last required one: a stride width, or v3's N:M sparsity */
    int extra_from = need;
    if (n > need) {
        const char *x = fs->f[need];
        if (is_ratio(x)) {
            copy_str(l.sparsity, sizeof l.sparsity, x);
            extra_from = need + 1;
        } else if (!gemm) {
            if (x[0] && (st = field_int(where, line, "Stride width (column 9)", x, &l.stride_w, err))) return st;
            extra_from = need + 1;
        }
    }
    /* further columns only where the header declares them (notes such as
     * Resnet50.csv's Eh, Ew, e2); their contents are not read */
    if (n > extra_from && n > header_cols)
        return qs_fail(err, QS_ERR_FORMAT, "%s:%d: %d columns, but the header has %d and a %s row needs %d", where,
                       line, n, header_cols, gemm ? "GEMM" : "convolution", need);
    if (gemm) {
        /* SCALE-Sim's load_arrays_gemm: [m, k, 1, k, 1, n, 1, 1] */
        l.is_gemm = 1;
        l.gemm_m = v[0];
        l.gemm_n = v[1];
        l.gemm_k = v[2];
        l.ifmap_h = v[0];
        l.ifmap_w = v[2];
        l.filter_h = 1;
        l.filter_w = v[2];
        l.channels = 1;
        l.num_filters = v[1];
        l.stride_h = l.stride_w = 1;
    } else {
        l.ifmap_h = v[0];
        l.ifmap_w = v[1];
        l.filter_h = v[2];
        l.filter_w = v[3];
        l.channels = v[4];
        l.num_filters = v[5];
        l.stride_h = v[6];
        if (!l.stride_w) l.stride_w = l.stride_h;
        /* SCALE-Sim v2 drops the field after the last comma: without the
         * trailing comma that is the stride width, and it strides both axes
         * by the height's. Surely not what the row says: qsim reads it. */
        if (n == fs->n && n == need + 1 && !l.sparsity[0] && l.stride_w != l.stride_h)
            topo_note(nt,
                      "%s:%d: no trailing comma: qsim strides %d x %d; SCALE-Sim v2 drops the last field and strides "
                      "%d x %d",
                      where, line, (int)l.stride_h, (int)l.stride_w, (int)l.stride_h, (int)l.stride_h);
    }
    if ((st = check_sizes(where, &l, err))) return st;
    /* SCALE-Sim v2 runs a row whose name contains "DP" (depthwise) as one
     * single-channel layer per channel, named <name>Channel_<c> */
    if (!gemm && strstr(l.name, "DP")) {
        char base[128];
        copy_str(base, sizeof base, l.name);
        int32_t ch = l.channels;
        l.channels = 1;
        for (int32_t c = 0; c < ch; c++) {
            snprintf(l.name, sizeof l.name, "%.100sChannel_%d", base, (int)c);
            if ((st = push_layer(lv, &l, err))) return st;
        }
        return QS_OK;
    }
    return push_layer(lv, &l, err);
}

qs_status qs_scalesim_parse_topology(const char *text, const char *where, int gemm_mode, qs_scalesim_topo *out,
                                     qs_error *err)
{
    if (!out) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_parse_topology: no output");
    memset(out, 0, sizeof *out);
    if (!where) where = "<topology>";
    if (!text) text = "";
    layer_vec lv = {0};
    qs_status st = QS_OK;
    int line = 0, gemm = gemm_mode > 0, header_cols = 0, seen_header = 0;
    char buf[4096];
    for (const char *p = text; *p && st == QS_OK;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        if (len >= sizeof buf) {
            st = qs_fail(err, QS_ERR_FORMAT, "%s:%d: line longer than %zu characters", where, line, sizeof buf - 1);
            break;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        p = nl ? nl + 1 : p + len;
        if (line == 1 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
            (unsigned char)buf[2] == 0xBF)
            memmove(buf, buf + 3, len - 2); /* UTF-8 BOM */
        trim(buf);
        if (!seen_header) {
            /* SCALE-Sim always skips the first line as the header */
            if (!buf[0]) continue; /* leading blank lines: qsim skips them */
            seen_header = 1;
            fields h;
            split(buf, &h);
            if (h.n < 0) {
                st = qs_fail(err, QS_ERR_FORMAT, "%s:%d: more than %d columns", where, line, MAX_FIELDS);
                break;
            }
            if (header_is_data(&h)) {
                st = qs_fail(err, QS_ERR_FORMAT,
                             "%s:%d: the first line is a layer, not a header (SCALE-Sim skips the first line: "
                             "start with 'Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                             "Channels, Num Filter, Strides,' or 'Layer, M, N, K,')",
                             where, line);
                break;
            }
            if (gemm_mode < 0) gemm = header_is_gemm(&h);
            header_cols = used_fields(&h);
            continue;
        }
        if (!buf[0] || buf[0] == '#') continue;
        fields fs;
        split(buf, &fs);
        if (fs.n > 0 && all_empty(&fs)) continue; /* ",,,,,,,," separator rows of some shipped files */
        st = parse_row(where, line, &fs, gemm, header_cols, &lv, out, err);
    }
    if (st == QS_OK && !seen_header)
        st = qs_fail(err, QS_ERR_FORMAT, "%s: empty file (a topology is a header line, then one layer per line)",
                     where);
    if (st == QS_OK && lv.n == 0)
        topo_note(out, "%s: no layers (only the header line): the reports have their headers only, as SCALE-Sim v2 "
                       "writes them",
                  where);
    if (st != QS_OK) {
        free(lv.v);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->gemm = gemm;
    out->n_layers = lv.n;
    out->layers = lv.v;
    return QS_OK;
}

qs_status qs_scalesim_load_topology(const char *path, int gemm_mode, qs_scalesim_topo *out, qs_error *err)
{
    char *text;
    if (out) memset(out, 0, sizeof *out);
    if (!path) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_load_topology: no path");
    qs_status st = qs_read_text_file(path, &text, err);
    if (st) return st;
    st = qs_scalesim_parse_topology(text, path, gemm_mode, out, err);
    free(text);
    return st;
}

void qs_scalesim_topo_free(qs_scalesim_topo *t)
{
    if (!t) return;
    free(t->layers);
    memset(t, 0, sizeof *t);
}

void qs_scalesim_ofmap_dims(const qs_scalesim_layer *l, int32_t *oh, int32_t *ow)
{
    /* ceil((H - R + S) / S) with H >= R */
    *oh = (int32_t)(((int64_t)l->ifmap_h - l->filter_h + 2 * (int64_t)l->stride_h - 1) / l->stride_h);
    *ow = (int32_t)(((int64_t)l->ifmap_w - l->filter_w + 2 * (int64_t)l->stride_w - 1) / l->stride_w);
}

void qs_scalesim_mnk(const qs_scalesim_layer *l, int64_t *m, int64_t *n, int64_t *k)
{
    int32_t oh, ow;
    qs_scalesim_ofmap_dims(l, &oh, &ow);
    *m = (int64_t)oh * ow;
    *n = l->num_filters;
    *k = (int64_t)l->filter_h * l->filter_w * l->channels;
}

void qs_scalesim_spatiotemporal(const qs_scalesim_layer *l, qs_dataflow df, int64_t *sr, int64_t *sc, int64_t *t)
{
    int64_t m, n, k;
    qs_scalesim_mnk(l, &m, &n, &k);
    switch (df) {
    case QS_DF_WS:
        *sr = k, *sc = n, *t = m;
        break;
    case QS_DF_IS:
        *sr = k, *sc = m, *t = n;
        break;
    case QS_DF_OS:
    default:
        *sr = m, *sc = n, *t = k;
        break;
    }
}

/* ---- one layer as a network ---------------------------------------------------------- */

void qs_scalesim_opts_default(qs_scalesim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->weight_bits = 8;
    o->act_bits = 8;
    o->seed = QS_SCALESIM_SEED;
}

/* splitmix64: small, fast, the same numbers on every platform */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t stream_seed(const qs_scalesim_opts *o, uint64_t stream)
{
    uint64_t s = o->seed ^ ((uint64_t)(uint32_t)o->index * 0xD1B54A32D192ED03ull) ^ (stream * 0x8CB92BA72F3D8DD7ull);
    next_u64(&s);
    return s;
}

/* 1 with probability p (53-bit uniform) */
static int draw_zero(uint64_t *s, double p)
{
    if (p <= 0.0) return 0;
    return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0) < p;
}

/* A nonzero signed b-bit weight (b >= 2), uniform over the 2^b - 1 of them;
 * b = 1: bipolar +-1. */
static int32_t draw_weight(uint64_t *s, int bits)
{
    uint64_t r = next_u64(s);
    if (bits <= 1) return (r >> 63) ? 1 : -1;
    int64_t half = (int64_t)1 << (bits - 1);
    int64_t v = (int64_t)(r % (uint64_t)(2 * half - 1)) - half;
    if (v >= 0) v++;
    return (int32_t)v;
}

static int32_t draw_act(uint64_t *s, int bits)
{
    uint64_t hi = ((uint64_t)1 << bits) - 1; /* nonzero: 1..2^b - 1 */
    return (int32_t)(1 + next_u64(s) % hi);
}

static qs_status check_opts(const qs_scalesim_opts *o, qs_error *err)
{
    if (!o) return qs_fail(err, QS_ERR_ARG, "no operand options");
    if (o->weight_bits != 1 && o->weight_bits != 2 && o->weight_bits != 4 && o->weight_bits != 8)
        return qs_fail(err, QS_ERR_ARG, "weight bits %d: must be 1 (bipolar), 2, 4 or 8", o->weight_bits);
    if (o->act_bits < 1 || o->act_bits > 16)
        return qs_fail(err, QS_ERR_ARG, "activation bits %d: must be 1..16", o->act_bits);
    if (!(o->weight_sparsity >= 0.0 && o->weight_sparsity <= 1.0) ||
        !(o->act_sparsity >= 0.0 && o->act_sparsity <= 1.0))
        return qs_fail(err, QS_ERR_ARG, "sparsity must be a fraction 0..1");
    if (o->weight_bits == 1 && o->weight_sparsity > 0.0)
        return qs_fail(err, QS_ERR_ARG, "bipolar (1-bit) weights are +-1: they cannot be sparse");
    return QS_OK;
}

/* Padding (or added zero rows) that gives SCALE-Sim's ofmap size along one axis. */
static void axis_fit(int32_t in, int32_t k, int32_t stride, int32_t out, int32_t *pad, int32_t *extra)
{
    int64_t need = (int64_t)(out - 1) * stride + k - in; /* >= 0: the last window's overhang */
    *pad = *extra = 0;
    if (need <= 0) return;
    if (need < k) *pad = (int32_t)need; /* qbin padding must stay below the kernel extent */
    else *extra = (int32_t)need;
}

static void layer_name(char *dst, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < QS_NAME_MAX; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[j++] = ch >= 0x20 && ch <= 0x7e ? (char)ch : '_';
    }
    dst[j] = '\0';
    if (!j) snprintf(dst, QS_NAME_MAX, "layer");
}

qs_status qs_scalesim_layer_net(const qs_scalesim_layer *l, const qs_scalesim_opts *opts, qs_net **out,
                                qs_error *err)
{
    if (!out) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_layer_net: no output");
    *out = NULL;
    if (l && l->no_operands)
        return qs_fail(err, QS_ERR_UNSUPPORTED, "layer '%s': too large to simulate on operands (SCALE-Sim's figures "
                       "only)", l->name);
    if (!l) return qs_fail(err, QS_ERR_ARG, "qs_scalesim_layer_net: no layer");
    qs_status st = check_opts(opts, err);
    if (st) return st;
    int32_t oh, ow, pad_b, pad_r, extra_h, extra_w;
    qs_scalesim_ofmap_dims(l, &oh, &ow);
    axis_fit(l->ifmap_h, l->filter_h, l->stride_h, oh, &pad_b, &extra_h);
    axis_fit(l->ifmap_w, l->filter_w, l->stride_w, ow, &pad_r, &extra_w);
    /* A GEMM row is built as a 1x1 convolution of a K-channel M x 1 ifmap: the
     * same M x N x K GEMM as SCALE-Sim's 1 x K filter over an M x K image, but
     * the reduction runs over channels, which qsim's native tiling can split
     * when buffers are small. */
    const int gemm = l->is_gemm;
    const int32_t in_c = gemm ? l->gemm_k : l->channels, kh = gemm ? 1 : l->filter_h, kw = gemm ? 1 : l->filter_w;

    qs_net *net = calloc(1, sizeof *net);
    if (!net) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    net->n_layers = 2;
    net->n_tensors = 1;
    net->output = 1;
    net->layers = calloc(2, sizeof *net->layers);
    net->tensors = calloc(1, sizeof *net->tensors);
    if (!net->layers || !net->tensors) goto oom;
    layer_name(net->name, l->name);

    qs_layer *in = &net->layers[0];
    snprintf(in->name, sizeof in->name, "input");
    in->kind = QS_L_INPUT;
    in->weight = in->bias = -1;
    in->out_c = in_c;
    in->out_h = gemm ? l->gemm_m : l->ifmap_h + extra_h;
    in->out_w = gemm ? 1 : l->ifmap_w + extra_w;
    in->out_bits = (uint8_t)opts->act_bits;
    in->out_signed = 0;
    qs_int_range(opts->act_bits, 0, &in->clamp_lo, &in->clamp_hi);
    in->out_scale = 1.0f;

    qs_tensor *w = &net->tensors[0];
    snprintf(w->name, sizeof w->name, "weight");
    w->dtype = opts->weight_bits == 1 ? QS_DT_BIPOLAR
               : opts->weight_bits == 2 ? QS_DT_INT2
               : opts->weight_bits == 4 ? QS_DT_INT4
                                        : QS_DT_INT8;
    w->is_signed = 1;
    w->ndim = 4;
    w->shape[0] = l->num_filters;
    w->shape[1] = in_c;
    w->shape[2] = kh;
    w->shape[3] = kw;
    w->count = (int64_t)l->num_filters * in_c * kh * kw;
    w->data = malloc(sizeof(int32_t) * (size_t)w->count);
    if (!w->data) goto oom;
    uint64_t s = stream_seed(opts, 1);
    for (int64_t i = 0; i < w->count; i++)
        w->data[i] = draw_zero(&s, opts->weight_sparsity) ? 0 : draw_weight(&s, opts->weight_bits);

    qs_layer *cv = &net->layers[1];
    layer_name(cv->name, l->name);
    cv->kind = QS_L_CONV;
    cv->n_inputs = 1;
    cv->inputs[0] = 0;
    cv->kh = kh;
    cv->kw = kw;
    cv->stride_h = gemm ? 1 : l->stride_h;
    cv->stride_w = gemm ? 1 : l->stride_w;
    cv->pad_b = gemm ? 0 : pad_b;
    cv->pad_r = gemm ? 0 : pad_r;
    cv->dil_h = cv->dil_w = 1;
    cv->groups = 1;
    cv->weight = 0;
    cv->bias = -1;
    cv->out_c = l->num_filters;
    cv->out_h = oh;
    cv->out_w = ow;
    cv->out_bits = 8;
    cv->out_signed = 0;
    cv->out_zp = 0;
    cv->out_scale = 1.0f;
    cv->act = QS_ACT_RELU;
    cv->clamp_lo = 0;
    cv->clamp_hi = 255;
    /* any valid requantization: 0.5 * 2^-shift brings the largest possible
     * accumulator near the 8-bit range */
    cv->rq.n = 1;
    cv->rq.mult = malloc(sizeof(int32_t));
    cv->rq.shift = malloc(sizeof(int8_t));
    if (!cv->rq.mult || !cv->rq.shift) goto oom;
    {
        int64_t k = (int64_t)l->channels * l->filter_h * l->filter_w;
        int64_t wmax = opts->weight_bits == 1 ? 1 : (int64_t)1 << (opts->weight_bits - 1);
        int64_t amax = ((int64_t)1 << opts->act_bits) - 1;
        int bits = 0;
        for (uint64_t b = (uint64_t)(k * wmax * amax); b; b >>= 1) bits++;
        int shift = bits - 8;
        if (shift < 0) shift = 0;
        if (shift > 31) shift = 31;
        cv->rq.mult[0] = 1 << 30;
        cv->rq.shift[0] = (int8_t)shift;
    }
    st = qs_net_validate(net, net->name, err);
    if (st) {
        qs_net_destroy(net);
        return st;
    }
    *out = net;
    return QS_OK;
oom:
    qs_net_destroy(net);
    return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory for its synthetic operands", l->name);
}

qs_status qs_scalesim_layer_input(const qs_net *net, const qs_scalesim_layer *l, const qs_scalesim_opts *opts,
                                  int32_t **data, int64_t *count, qs_error *err)
{
    if (!data || !count || !net || !l || net->n_layers < 1)
        return qs_fail(err, QS_ERR_ARG, "qs_scalesim_layer_input: bad arguments");
    *data = NULL;
    *count = 0;
    qs_status st = check_opts(opts, err);
    if (st) return st;
    const qs_layer *in = &net->layers[0];
    if (l->is_gemm ? (in->out_c != l->gemm_k || in->out_h != l->gemm_m || in->out_w != 1)
                   : (in->out_c != l->channels || in->out_h < l->ifmap_h || in->out_w < l->ifmap_w))
        return qs_fail(err, QS_ERR_ARG, "qs_scalesim_layer_input: the network is not this layer's");
    int64_t n = (int64_t)in->out_c * in->out_h * in->out_w;
    int32_t *v = calloc((size_t)n, sizeof *v);
    if (!v) return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory for its input", l->name);
    uint64_t s = stream_seed(opts, 2);
    if (l->is_gemm) {
        /* A[m][k], row by row as SCALE-Sim's M x K ifmap; stored as channel k of pixel m */
        for (int32_t m = 0; m < l->gemm_m; m++)
            for (int32_t k = 0; k < l->gemm_k; k++)
                v[(int64_t)k * l->gemm_m + m] = draw_zero(&s, opts->act_sparsity) ? 0 : draw_act(&s, opts->act_bits);
        *data = v;
        *count = n;
        return QS_OK;
    }
    for (int32_t c = 0; c < l->channels; c++)
        for (int32_t y = 0; y < l->ifmap_h; y++)
            for (int32_t x = 0; x < l->ifmap_w; x++)
                v[((int64_t)c * in->out_h + y) * in->out_w + x] =
                    draw_zero(&s, opts->act_sparsity) ? 0 : draw_act(&s, opts->act_bits);
    *data = v;
    *count = n;
    return QS_OK;
}
