/* The accelerator configuration: INI text -> validated qs_arch.
 *
 * One table (KEYS) describes every key: where it lives in qs_arch, its type
 * and its legal range. Parsing, per-key range checks, duplicate detection and
 * the error messages are all driven by that table, so a key documented in
 * docs/config.md cannot be accepted by one path and refused by another.
 * Cross-field rules (docs/config.md, "Rules between keys") come after every
 * key is known, in check_cross(). */
#include "qs_arch.h"
#include "qs_alloc.h"

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
_Static_assert(sizeof(qs_dram_model) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_page_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(qs_cmd_arbiter) == sizeof(int), "enum size");

/* ---- names ------------------------------------------------------------- */

static const char *const DATAFLOWS[] = {"ws", "os", "is", NULL};
static const char *const ZERO_SKIPS[] = {"none", "gate", "weights", "activations", "both", NULL};
static const char *const SKIP_IMPLS[] = {"hold", "isolate", "clockgate", NULL};
static const char *const OVERFLOWS[] = {"wrap", "saturate", NULL};
static const char *const TIMINGS[] = {"native", "scalesim", NULL};
static const char *const DRAM_TECHS[] = {"lpddr4", "ddr4", "gddr5", "hbm2", NULL};
static const char *const DRAM_MODELS[] = {"simple", "ddr4_3200", "lpddr4_4266", "lpddr5_6400", "hbm2", "tlm", NULL};
static const char *const PAGE_POLICIES[] = {"open", "closed", NULL};
static const char *const CMD_ARBITERS[] = {"oldest", "round_robin", NULL};

static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

const char *qs_dataflow_name(qs_dataflow d) { return name_of(DATAFLOWS, 3, (int)d); }
const char *qs_zero_skip_name(qs_zero_skip z) { return name_of(ZERO_SKIPS, 5, (int)z); }
const char *qs_skip_impl_name(qs_skip_impl s) { return name_of(SKIP_IMPLS, 3, (int)s); }
const char *qs_overflow_name(qs_overflow o) { return name_of(OVERFLOWS, 2, (int)o); }
const char *qs_timing_name(qs_timing t) { return name_of(TIMINGS, 2, (int)t); }
const char *qs_dram_model_name(qs_dram_model m) { return name_of(DRAM_MODELS, QS_DRAM_MODEL_COUNT, (int)m); }
int qs_dram_is_bank_model(qs_dram_model m) { return m != QS_DRAM_SIMPLE && m != QS_DRAM_TLM && m < QS_DRAM_MODEL_COUNT; }

/* ---- DRAM presets (docs/dram.md, "Presets", gives the source of every value;
 * ../shared/reference/dram.md holds the facts) ----------------------------- */

void qs_dram_preset(qs_dram_model m, qs_dram_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->ranks = 1;
    c->queue_depth = 32;       /* DRAMsim3's default trans_queue_size */
    c->cmd_queue_depth = 8;    /* DRAMsim3's cmd_queue_size, per bank (PER_BANK) in its DDR4, LPDDR4, HBM2 configs */
    c->cmd_arbiter = QS_ARB_ROUND_ROBIN; /* DRAMsim3's command scheduling (docs/dram.md "Validation") */
    c->write_buffer = 32;      /* DRAMsim3's write buffer: the size of its transaction queue */
    c->page_policy = QS_PAGE_OPEN;
    snprintf(c->address_mapping, sizeof c->address_mapping, "rochrababgco"); /* DRAMsim3 DDR4 configs */
    c->transfers_per_cycle = 2;
    switch (m) {
    case QS_DRAM_SIMPLE: /* the bank model is not used; DDR4 values keep the struct valid */
    case QS_DRAM_TLM:
    case QS_DRAM_MODEL_COUNT:
    case QS_DRAM_DDR4_3200:
        /* DRAMsim3 DDR4_8Gb_x8_3200.ini (tCK from Ramulator2 DDR4_3200AA); one x64 rank of 8 chips */
        c->tck_ps = 625;
        c->channels = 1; c->bankgroups = 4; c->banks_per_group = 4; c->rows = 65536; c->columns = 1024;
        c->bus_bits = 64; c->burst_length = 8;
        c->tCL = 22; c->tCWL = 16; c->tRCD = 22; c->tRP = 22; c->tRAS = 52; c->tRC = 74;
        c->tRRD_S = 4; c->tRRD_L = 8; c->tFAW = 34; c->tCCD_S = 4; c->tCCD_L = 8;
        c->tWR = 24; c->tWTR_S = 4; c->tWTR_L = 12; c->tRTP = 12; c->tREFI = 12480; c->tRFC = 560;
        /* DRAMsim3 DDR4_8Gb_x8_3200.ini currents */
        c->vdd = 1.2; c->idd0 = 57; c->idd2n = 37; c->idd3n = 52; c->idd4r = 168; c->idd4w = 150; c->idd5 = 250;
        c->devices = 8;
        break;
    case QS_DRAM_LPDDR4_4266:
        /* DRAMSys JEDEC_1Gbx16_LPDDR4-4266; two x16 channels (an x32 package), 8 banks, no bank groups */
        c->tck_ps = 469;
        c->channels = 2; c->bankgroups = 1; c->banks_per_group = 8; c->rows = 65536; c->columns = 1024;
        c->bus_bits = 16; c->burst_length = 16;
        c->tCL = 36; c->tCWL = 18; c->tRCD = 39; c->tRP = 39; c->tRAS = 90; c->tRC = 135;
        c->tRRD_S = 22; c->tRRD_L = 22; c->tFAW = 86; c->tCCD_S = 8; c->tCCD_L = 8;
        c->tWR = 39; c->tWTR_S = 22; c->tWTR_L = 22; c->tRTP = 17; c->tREFI = 8341; c->tRFC = 812;
        /* currents: DRAMsim3 LPDDR4_8Gb_x16_2400.ini (no public LPDDR4-4266 currents; docs/dram.md) */
        c->vdd = 1.2; c->idd0 = 80; c->idd2n = 34; c->idd3n = 47; c->idd4r = 243; c->idd4w = 228; c->idd5 = 280;
        c->devices = 1;
        break;
    case QS_DRAM_LPDDR5_6400:
        /* Ramulator2 LPDDR5_6400 (CK 1.25 ns, WCK:CK 4:1 from gem5): one x16 channel, 4 BG x 4 banks */
        c->tck_ps = 1250;
        c->channels = 1; c->bankgroups = 4; c->banks_per_group = 4; c->rows = 32768; c->columns = 1024;
        c->bus_bits = 16; c->burst_length = 16; c->transfers_per_cycle = 8;
        c->tCL = 17; c->tCWL = 9; c->tRCD = 15; c->tRP = 15; c->tRAS = 34; c->tRC = 49;
        c->tRRD_S = 4; c->tRRD_L = 4; c->tFAW = 16; c->tCCD_S = 2; c->tCCD_L = 4;
        c->tWR = 28; c->tWTR_S = 5; c->tWTR_L = 10; c->tRTP = 8; c->tREFI = 3125; c->tRFC = 168;
        /* currents: no public LPDDR5 figures; DRAMsim3's LPDDR4_8Gb_x16_2400.ini as a stand-in (docs/dram.md) */
        c->vdd = 1.2; c->idd0 = 80; c->idd2n = 34; c->idd3n = 47; c->idd4r = 243; c->idd4w = 228; c->idd5 = 280;
        c->devices = 1;
        break;
    case QS_DRAM_HBM2:
        /* DRAMsim3 HBM2_8Gb_x128.ini: 8 channels of 128 bits, 4 BG x 4 banks, 2 KB page */
        c->tck_ps = 1000;
        c->channels = 8; c->bankgroups = 4; c->banks_per_group = 4; c->rows = 32768; c->columns = 128;
        c->bus_bits = 128; c->burst_length = 4;
        c->tCL = 14; c->tCWL = 4; c->tRCD = 14; c->tRP = 14; c->tRAS = 34; c->tRC = 48;
        c->tRRD_S = 4; c->tRRD_L = 6; c->tFAW = 30; c->tCCD_S = 1; c->tCCD_L = 2;
        c->tWR = 16; c->tWTR_S = 6; c->tWTR_L = 8; c->tRTP = 4; c->tREFI = 3900; c->tRFC = 260;
        /* DRAMsim3 HBM2_8Gb_x128.ini currents, one device per channel */
        c->vdd = 1.2; c->idd0 = 65; c->idd2n = 40; c->idd3n = 55; c->idd4r = 390; c->idd4w = 500; c->idd5 = 250;
        c->devices = 1;
        break;
    default:
        break;
    }
    /* read-to-write turnaround as DRAMsim3 derives it: RL + burst - WL + 2 */
    c->tRTW = c->tCL + c->burst_length / c->transfers_per_cycle - c->tCWL + 2;
}

static int32_t log2i(int64_t v)
{
    int32_t n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

qs_dram_bits qs_dram_bits_of(const qs_dram_cfg *c)
{
    qs_dram_bits b;
    b.offset_bits = log2i((int64_t)c->bus_bits / 8 * c->burst_length);
    b.ch = log2i(c->channels);
    b.ra = log2i(c->ranks);
    b.bg = log2i(c->bankgroups);
    b.ba = log2i(c->banks_per_group);
    b.ro = log2i(c->rows);
    b.co = log2i(c->columns / c->burst_length);
    return b;
}

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
    a->lookahead = 0;
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
    a->dram_model = QS_DRAM_SIMPLE;
    a->dma_outstanding = 1;
    a->dma_request_bytes = 0;
    a->dma_separate_write = 0;
    qs_dram_preset(QS_DRAM_DDR4_3200, &a->dram);
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
    KINT("array", "lookahead", lookahead, 0, 7),
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
    KENUM("dram", "model", dram_model, DRAM_MODELS),
    /* the bank model (first key: tck_ps; is_bank_key relies on the order) */
    KDBL("dram", "tck_ps", dram.tck_ps, 10, 100000, 0),
    KPOW2("dram", "channels", dram.channels, 1, 64),
    KPOW2("dram", "ranks", dram.ranks, 1, 16),
    KPOW2("dram", "bankgroups", dram.bankgroups, 1, 16),
    KPOW2("dram", "banks_per_group", dram.banks_per_group, 1, 64),
    KPOW2("dram", "rows", dram.rows, 1, 1 << 20),
    KPOW2("dram", "columns", dram.columns, 1, 1 << 16),
    KPOW2("dram", "bus_bits", dram.bus_bits, 8, 1024),
    KPOW2("dram", "burst_length", dram.burst_length, 1, 64),
    KPOW2("dram", "transfers_per_cycle", dram.transfers_per_cycle, 1, 16),
    KINT("dram", "tCL", dram.tCL, 1, 1000),
    KINT("dram", "tCWL", dram.tCWL, 1, 1000),
    KINT("dram", "tRCD", dram.tRCD, 1, 1000),
    KINT("dram", "tRP", dram.tRP, 1, 1000),
    KINT("dram", "tRAS", dram.tRAS, 1, 10000),
    KINT("dram", "tRC", dram.tRC, 1, 10000),
    KINT("dram", "tRRD_S", dram.tRRD_S, 1, 1000),
    KINT("dram", "tRRD_L", dram.tRRD_L, 1, 1000),
    KINT("dram", "tFAW", dram.tFAW, 1, 10000),
    KINT("dram", "tCCD_S", dram.tCCD_S, 1, 1000),
    KINT("dram", "tCCD_L", dram.tCCD_L, 1, 1000),
    KINT("dram", "tWR", dram.tWR, 1, 1000),
    KINT("dram", "tWTR_S", dram.tWTR_S, 1, 1000),
    KINT("dram", "tWTR_L", dram.tWTR_L, 1, 1000),
    KINT("dram", "tRTP", dram.tRTP, 1, 1000),
    KINT("dram", "tRTW", dram.tRTW, 1, 1000),
    KINT("dram", "tREFI", dram.tREFI, 1, 10000000),
    KINT("dram", "tRFC", dram.tRFC, 1, 100000),
    KINT("dram", "queue_depth", dram.queue_depth, 1, 4096),
    KINT("dram", "cmd_queue_depth", dram.cmd_queue_depth, 0, 4096),
    KDBL("dram", "vdd", dram.vdd, 0.1, 5, 0),
    KDBL("dram", "idd0", dram.idd0, 0, 10000, 0),
    KDBL("dram", "idd2n", dram.idd2n, 0, 10000, 0),
    KDBL("dram", "idd3n", dram.idd3n, 0, 10000, 0),
    KDBL("dram", "idd4r", dram.idd4r, 0, 10000, 0),
    KDBL("dram", "idd4w", dram.idd4w, 0, 10000, 0),
    KDBL("dram", "idd5", dram.idd5, 0, 10000, 0),
    KINT("dram", "devices", dram.devices, 1, 64),
    KENUM("dram", "page_policy", dram.page_policy, PAGE_POLICIES),
    KENUM("dram", "cmd_arbiter", dram.cmd_arbiter, CMD_ARBITERS),
    KINT("dram", "write_buffer", dram.write_buffer, 0, 4096),
    {"dram", "address_mapping", K_IDENT, OFF(dram.address_mapping), SZ(dram.address_mapping), 0, 0, 0, 0, NULL},
    KINT("dma", "outstanding", dma_outstanding, 1, 1024),
    KINT("dma", "request_bytes", dma_request_bytes, 0, 1 << 24),
    KBOOL("dma", "separate_write_engine", dma_separate_write),
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
                                       "dram", "dma", "clock", "ppu", "tech", "timing", NULL};
enum { NSECTIONS = 11 };

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

/* The bank model's rules (docs/config.md, "Rules between keys"). */
static qs_status check_dram(const qs_arch *a, const vctx *v, qs_error *err)
{
    const qs_dram_cfg *d = &a->dram;
    const int i_model = key_index("dram", "model");
#define DK(name) key_index("dram", name)
    if (a->dram_model == QS_DRAM_SIMPLE) return QS_OK;
    if (a->timing == QS_TIMING_SCALESIM)
        return cross_fail(v, err, i_model, key_index("timing", "convention"),
                          "model = %s: the SCALE-Sim convention has its own memory model; use model = simple",
                          qs_dram_model_name(a->dram_model));
    if (a->dram_model == QS_DRAM_TLM) return QS_OK; /* the memory backend has its own parameters */
    if (d->tRC < d->tRAS + d->tRP)
        return cross_fail(v, err, DK("tRC"), later_of(v, DK("tRAS"), DK("tRP")),
                          "tRC = %d is shorter than tRAS + tRP = %d + %d (a row must open, stay open and close "
                          "within one row cycle)%s",
                          d->tRC, d->tRAS, d->tRP, d->tRAS > d->tRC ? "; tRAS > tRC" : "");
    if (d->burst_length > d->columns)
        return cross_fail(v, err, DK("burst_length"), DK("columns"),
                          "burst_length = %d is longer than the row (columns = %d)", d->burst_length, d->columns);
    if (d->burst_length % d->transfers_per_cycle)
        return cross_fail(v, err, DK("burst_length"), DK("transfers_per_cycle"),
                          "burst_length = %d is not a whole number of cycles of transfers_per_cycle = %d",
                          d->burst_length, d->transfers_per_cycle);
    /* the presets' round robin and write buffer act on command queues: refused with the single queue
     * only when given (from a preset they do not apply) */
    if (d->cmd_arbiter == QS_ARB_ROUND_ROBIN && d->cmd_queue_depth == 0 && origin_of(v, DK("cmd_arbiter")))
        return cross_fail(v, err, DK("cmd_arbiter"), DK("cmd_queue_depth"),
                          "cmd_arbiter = round_robin turns over bank command queues, but cmd_queue_depth = 0 has none");
    if (d->write_buffer > 0 && d->cmd_queue_depth == 0 && origin_of(v, DK("write_buffer")))
        return cross_fail(v, err, DK("write_buffer"), DK("cmd_queue_depth"),
                          "write_buffer = %d needs the two-level controller, but cmd_queue_depth = 0", d->write_buffer);
    if (d->tRRD_L < d->tRRD_S)
        return cross_fail(v, err, DK("tRRD_L"), DK("tRRD_S"), "tRRD_L = %d is shorter than tRRD_S = %d", d->tRRD_L,
                          d->tRRD_S);
    if (d->tCCD_L < d->tCCD_S)
        return cross_fail(v, err, DK("tCCD_L"), DK("tCCD_S"), "tCCD_L = %d is shorter than tCCD_S = %d", d->tCCD_L,
                          d->tCCD_S);
    if (d->tWTR_L < d->tWTR_S)
        return cross_fail(v, err, DK("tWTR_L"), DK("tWTR_S"), "tWTR_L = %d is shorter than tWTR_S = %d", d->tWTR_L,
                          d->tWTR_S);
    if (d->tFAW < d->tRRD_S)
        return cross_fail(v, err, DK("tFAW"), DK("tRRD_S"), "tFAW = %d is shorter than tRRD_S = %d", d->tFAW,
                          d->tRRD_S);
    if (d->idd3n < d->idd2n)
        return cross_fail(v, err, DK("idd3n"), DK("idd2n"), "idd3n = %g is below idd2n = %g (an open bank draws more)",
                          d->idd3n, d->idd2n);
    if (d->idd4r < d->idd3n || d->idd4w < d->idd3n || d->idd5 < d->idd3n)
        return cross_fail(v, err, d->idd4r < d->idd3n ? DK("idd4r") : d->idd4w < d->idd3n ? DK("idd4w") : DK("idd5"),
                          DK("idd3n"), "idd4r, idd4w and idd5 (%g, %g, %g) must not be below idd3n = %g", d->idd4r,
                          d->idd4w, d->idd5, d->idd3n);
    if (d->idd0 * d->tRC < d->idd3n * d->tRAS + d->idd2n * d->tRP)
        return cross_fail(v, err, DK("idd0"), DK("idd3n"),
                          "idd0 * tRC = %g is below idd3n * tRAS + idd2n * tRP = %g (a negative activate energy)",
                          d->idd0 * d->tRC, d->idd3n * d->tRAS + d->idd2n * d->tRP);
    if (d->tREFI <= d->tRFC)
        return cross_fail(v, err, DK("tREFI"), DK("tRFC"),
                          "tREFI = %d leaves no time between refreshes of tRFC = %d", d->tREFI, d->tRFC);
    /* the mapping names each of the six fields exactly once */
    static const char *const FIELDS[6] = {"ch", "ra", "bg", "ba", "ro", "co"};
    const char *mp = d->address_mapping;
    const int i_map = DK("address_mapping");
    if (strlen(mp) != 12)
        return cross_fail(v, err, i_map, i_model,
                          "address_mapping = '%s' must be 6 two-letter fields (ch ra bg ba ro co), MSB first", mp);
    for (int f = 0; f < 6; f++) {
        int seen = 0;
        for (int i = 0; i < 12; i += 2) {
            int known = 0;
            for (int g = 0; g < 6; g++) known |= mp[i] == FIELDS[g][0] && mp[i + 1] == FIELDS[g][1];
            if (!known)
                return cross_fail(v, err, i_map, i_model,
                                  "address_mapping = '%s': '%.2s' is not a field (ch ra bg ba ro co)", mp, mp + i);
            seen += mp[i] == FIELDS[f][0] && mp[i + 1] == FIELDS[f][1];
        }
        if (seen != 1)
            return cross_fail(v, err, i_map, i_model,
                              "address_mapping = '%s' %s the %s bits (each field exactly once)", mp,
                              seen ? "repeats" : "drops", FIELDS[f]);
    }
    qs_dram_bits b = qs_dram_bits_of(d);
    if (b.offset_bits + b.ch + b.ra + b.bg + b.ba + b.ro + b.co > 40)
        return cross_fail(v, err, DK("rows"), DK("columns"), "the DRAM has more than 2^40 bytes");
#undef DK
    return QS_OK;
}

static qs_status check_cross(const qs_arch *a, const vctx *v, qs_error *err)
{
    const int i_rows = key_index("array", "rows"), i_cols = key_index("array", "cols");
    const int i_wpb = key_index("array", "weight_path_bits"), i_mwb = key_index("array", "max_weight_bits");
    const int i_mab = key_index("array", "max_act_bits"), i_acc = key_index("array", "acc_bits");
    const int i_grp = key_index("array", "skip_group");
    const int i_la = key_index("array", "lookahead"), i_zs = key_index("array", "zero_skip");
    const int i_df = key_index("array", "dataflow"), i_conv = key_index("timing", "convention");
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

    /* Lookahead weight skipping (docs/timing.md "Lookahead weight skipping")
     * schedules the weight slices of an output-stationary array's columns;
     * it has nothing to schedule without weight skipping, and the other
     * dataflows and SCALE-Sim's convention have no such schedule. */
    if (a->lookahead > 0) {
        if (a->zero_skip != QS_SKIP_WEIGHTS && a->zero_skip != QS_SKIP_BOTH)
            return cross_fail(v, err, i_la, i_zs, "lookahead = %d needs zero_skip = weights or both, not %s",
                              a->lookahead, qs_zero_skip_name(a->zero_skip));
        if (a->dataflow != QS_DF_OS)
            return cross_fail(v, err, i_la, i_df, "lookahead = %d needs dataflow = os, not %s", a->lookahead,
                              qs_dataflow_name(a->dataflow));
        if (a->timing == QS_TIMING_SCALESIM)
            return cross_fail(v, err, i_la, i_conv, "lookahead = %d is not part of [timing] convention = scalesim",
                              a->lookahead);
    }

    if ((st = check_dram(a, v, err))) return st;

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
    if (a->scalesim_figures_only) {
        /* A SCALE-Sim array over 1024 (models/scalesim.c): only SCALE-Sim's
         * figures use its real size, and every other rule holds as for the
         * 1024-wide mapping the SCALE-Sim reader checked. */
        if (a->rows < 1 || a->rows > 65536 || a->cols < 1 || a->cols > 65536)
            return qs_fail(err, QS_ERR_CONFIG, "%s: array %dx%d outside 1..65536", v.where, (int)a->rows, (int)a->cols);
        qs_arch mapped = *a;
        if (mapped.rows > 1024) mapped.rows = 1024;
        if (mapped.cols > 1024) mapped.cols = 1024;
        mapped.scalesim_figures_only = 0;
        return check_all(&mapped, &v, err);
    }
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
        qs_free(bytes);
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

static int is_bank_key(int idx)
{
    return strcmp(KEYS[idx].section, "dram") == 0 && idx >= key_index("dram", "tck_ps");
}

/* [dram] model: the preset fills every bank-model key the file and --set
 * left alone; under model = simple such a key would be ignored, so it is
 * refused. */
static qs_status apply_dram_preset(parse_ctx *c, qs_error *err)
{
    qs_dram_cfg p;
    qs_dram_preset(c->a.dram_model, &p);
    for (int i = 0; i < NKEYS; i++) {
        if (!is_bank_key(i)) continue;
        if (c->origin[i] == 0) {
            size_t rel = KEYS[i].off - OFF(dram);
            memcpy((char *)&c->a.dram + rel, (const char *)&p + rel, KEYS[i].size);
        } else if (!qs_dram_is_bank_model(c->a.dram_model)) {
            char loc[200];
            key_loc(loc, sizeof loc, c->where, i, c->origin[i]);
            return qs_fail(err, QS_ERR_CONFIG,
                           "%s: a bank-model parameter, but [dram] model = %s ignores it (set model to a "
                           "preset: ddr4_3200, lpddr4_4266, lpddr5_6400, hbm2)",
                           loc, qs_dram_model_name(c->a.dram_model));
        }
    }
    /* tRTW is derived from tCL, the burst and tCWL unless given */
    int i_rtw = key_index("dram", "tRTW");
    if (c->origin[i_rtw] == 0)
        c->a.dram.tRTW = c->a.dram.tCL + c->a.dram.burst_length / c->a.dram.transfers_per_cycle - c->a.dram.tCWL + 2;
    return QS_OK;
}

qs_status qs_arch_parse(const char *text, const char *where, const char *const *overrides, int n_overrides,
                        qs_arch *out, qs_error *err)
{
    if (!out) return qs_fail(err, QS_ERR_ARG, "qs_arch_parse: no output");
    if (n_overrides < 0 || (n_overrides > 0 && !overrides))
        return qs_fail(err, QS_ERR_ARG, "qs_arch_parse: bad overrides");
    /* on the heap: the context holds a whole qs_arch plus bookkeeping */
    parse_ctx *c = qs_calloc(1, sizeof *c);
    if (!c) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    c->where = where ? where : "<config>";
    qs_arch_defaults(&c->a);
    qs_status st = qs_ini_parse(text ? text : "", c->where, on_ini, c, err);
    for (int i = 0; st == QS_OK && i < n_overrides; i++) st = apply_override(c, overrides[i], err);
    if (st == QS_OK) st = apply_dram_preset(c, err);
    if (st == QS_OK) {
        vctx v = {c->where, c->origin};
        st = check_all(&c->a, &v, err);
    }
    if (st == QS_OK) st = resolve_table(c, err);
    if (st == QS_OK) *out = c->a;
    qs_free(c);
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
    qs_free(text);
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
