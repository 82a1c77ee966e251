/* The accelerator configuration: parsed once from an INI file
 * (models/arch/NAME.cfg, documented key by key in docs/config.md) into this
 * plain, validated struct. Nothing here changes while a simulation runs. */
#ifndef QS_ARCH_H
#define QS_ARCH_H

#include <stdint.h>

#include "qs_status.h"

typedef enum { QS_DF_WS = 0, QS_DF_OS, QS_DF_IS } qs_dataflow;
typedef enum { QS_SKIP_NONE = 0, QS_SKIP_GATE, QS_SKIP_WEIGHTS, QS_SKIP_ACTIVATIONS, QS_SKIP_BOTH } qs_zero_skip;
/* How a skipped/gated MAC is implemented, which decides its energy
 * (../shared/reference/energy-area.md, "Zero skipping and energy"). */
typedef enum { QS_SKIPIMPL_HOLD = 0, QS_SKIPIMPL_ISOLATE, QS_SKIPIMPL_CLOCKGATE } qs_skip_impl;
typedef enum { QS_OVF_WRAP = 0, QS_OVF_SATURATE } qs_overflow;
typedef enum { QS_TIMING_NATIVE = 0, QS_TIMING_SCALESIM } qs_timing;

/* [dram] model: the simple bandwidth + latency channel, the bank-level
 * model (sim/dram.h) with one of the presets' parameters (docs/dram.md), or
 * tlm: a memory backend attached by the embedding program (the SystemC
 * wrapper's TLM-2.0 socket; qs_sim_set_memory_backend) says when each DMA
 * request completes. */
typedef enum {
    QS_DRAM_SIMPLE = 0,
    QS_DRAM_DDR4_3200,
    QS_DRAM_LPDDR4_4266,
    QS_DRAM_LPDDR5_6400,
    QS_DRAM_HBM2,
    QS_DRAM_TLM,
    QS_DRAM_MODEL_COUNT
} qs_dram_model;

/* 1 for the presets of the bank-level model (not simple, not tlm). */
int qs_dram_is_bank_model(qs_dram_model m);
typedef enum { QS_PAGE_OPEN = 0, QS_PAGE_CLOSED } qs_page_policy;
/* How the two-level controller picks among its bank command queues (docs/timing.md). */
typedef enum { QS_ARB_OLDEST = 0, QS_ARB_ROUND_ROBIN } qs_cmd_arbiter;

/* The bank-level model's device and controller (times in DRAM clock cycles
 * tCK unless named otherwise). Field order = the preset table's order. */
typedef struct {
    double tck_ps;                 /* DRAM command clock period */
    int32_t channels, ranks, bankgroups, banks_per_group, rows, columns;
    int32_t bus_bits;              /* data bus width of one channel */
    int32_t burst_length;          /* transfers per burst (BL) */
    int32_t transfers_per_cycle;   /* data transfers per tCK: 2 (DDR), 8 (LPDDR5 WCK:CK 4:1) */
    int32_t tCL, tCWL, tRCD, tRP, tRAS, tRC, tRRD_S, tRRD_L, tFAW, tCCD_S, tCCD_L;
    int32_t tWR, tWTR_S, tWTR_L, tRTP, tRTW, tREFI, tRFC;
    int32_t queue_depth;           /* requests per channel the controller can reorder (the transaction queue) */
    int32_t cmd_queue_depth;       /* 0: one queue; else per-bank command queues of this depth behind it */
    /* currents (mA) and supply (V) of one device, chips per rank (energy) */
    double vdd, idd0, idd2n, idd3n, idd4r, idd4w, idd5;
    int32_t devices;
    qs_page_policy page_policy;
    char address_mapping[16];      /* 6 two-letter fields MSB->LSB: ch ra bg ba ro co */
    qs_cmd_arbiter cmd_arbiter;    /* two-level controller: oldest first, or round robin over the bank queues */
    int32_t write_buffer;          /* two-level controller: 0 serves writes as they come; N posts them to a buffer of N */
} qs_dram_cfg;

typedef struct {
    int32_t size_kib;          /* capacity in KiB */
    int32_t banks;             /* independent banks */
    int32_t bank_width_bytes;  /* bytes one bank delivers per cycle per port */
    int32_t ports;             /* ports per bank (1 or 2) */
    int32_t double_buffer;     /* 0/1: halves alternate between DMA and array */
} qs_buffer_cfg;

typedef struct {
    /* [general] */
    char name[64];
    /* [array] */
    int32_t rows, cols;
    qs_dataflow dataflow;
    int32_t weight_path_bits;      /* bits of weight per PE per cycle (2 for dLAC) */
    int32_t max_weight_bits;       /* widest weight the datapath accepts (slices) */
    int32_t max_act_bits;          /* widest activation operand */
    qs_zero_skip zero_skip;
    int32_t skip_group;            /* lanes moving in lockstep when skipping */
    qs_skip_impl skip_impl;
    int32_t lookahead;             /* OS weight skipping: steps a column may run ahead (0: off) */
    int32_t acc_bits;              /* accumulator width, 8..32 */
    qs_overflow overflow;
    /* [buffer.ifmap] [buffer.weight] [buffer.accum] */
    qs_buffer_cfg ifmap, weight, accum;
    /* [dram] */
    double dram_bytes_per_cycle;
    int32_t dram_latency;          /* cycles from request to first data */
    int32_t dram_burst_bytes;      /* transfers are rounded up to bursts */
    char dram_tech[16];            /* lpddr4 | ddr4 | gddr5 | hbm2 */
    double dram_pj_per_bit;        /* 0 = from dram_tech */
    qs_dram_model dram_model;      /* simple: the four keys above; tlm: a memory backend; else the bank model */
    qs_dram_cfg dram;              /* bank model parameters (preset, then per-key overrides) */
    /* [dma] (docs/timing.md, "DMA engines") */
    int32_t dma_outstanding;       /* requests in flight per engine; 1 = a blocking engine */
    int32_t dma_request_bytes;     /* largest request; 0 = one request per transfer */
    int32_t dma_separate_write;    /* 1: stores have their own engine (reads and writes in parallel) */
    /* [clock] */
    double freq_mhz;
    /* [ppu] */
    int32_t ppu_lanes;             /* outputs per cycle */
    int32_t ppu_pool, ppu_add;     /* 0/1 ops supported (requant+activation always) */
    /* [tech] */
    int32_t node_nm;
    double voltage;
    char tech_table[256];          /* path of the technology table (resolved) */
    /* [timing] */
    qs_timing timing;
    /* Under the scalesim convention: DRAM interface of SCALE-Sim's memory model,
     * 0 = its CALC mode (stall-free reads, ofmap drained at `cols` words per
     * cycle), else its USER mode with this many words per cycle per operand. */
    int32_t scalesim_bandwidth;
    /* Set by a SCALE-Sim configuration whose array exceeds the engines'
     * 1024 rows or columns (rows/cols then hold its size): only SCALE-Sim's
     * figures can be computed (docs/scalesim.md); qs_compile refuses it. */
    int32_t scalesim_figures_only;
} qs_arch;

/* Defaults (the values docs/config.md lists). */
void qs_arch_defaults(qs_arch *a);

/* Parse INI text (fuzzable). `where` names the source (file path) for messages;
 * overrides: n strings "section.key=value" applied after the file, each checked
 * as if it were a line of the file. Unknown sections/keys, bad values and
 * inconsistent combinations fail with file:line. */
qs_status qs_arch_parse(const char *text, const char *where,
                        const char *const *overrides, int n_overrides,
                        qs_arch *out, qs_error *err);

/* Read a file then qs_arch_parse. tech_table paths are resolved relative to
 * the config file's folder. */
qs_status qs_arch_load(const char *path, const char *const *overrides, int n_overrides,
                       qs_arch *out, qs_error *err);

/* Cross-field checks (also called by parse). */
qs_status qs_arch_validate(const qs_arch *a, const char *where, qs_error *err);

const char *qs_dataflow_name(qs_dataflow d);
const char *qs_zero_skip_name(qs_zero_skip z);

/* Weight slices a b-bit weight needs on the weight path (bipolar: 1). */
int32_t qs_arch_weight_slices(const qs_arch *a, int weight_bits);

const char *qs_skip_impl_name(qs_skip_impl s);
const char *qs_overflow_name(qs_overflow o);
const char *qs_timing_name(qs_timing t);
const char *qs_dram_model_name(qs_dram_model m);

/* The parameters of a bank-model preset (docs/dram.md names every source). */
void qs_dram_preset(qs_dram_model m, qs_dram_cfg *out);

/* Address field widths of the bank model: burst offset, then ch ra bg ba ro co. */
typedef struct {
    int32_t offset_bits, ch, ra, bg, ba, ro, co;
} qs_dram_bits;
qs_dram_bits qs_dram_bits_of(const qs_dram_cfg *c);

/* Weight slices of the widest weight the arch accepts (max_weight_bits). */
int32_t qs_arch_max_slices(const qs_arch *a);

/* The INI dialect shared by .cfg and .tech files, read with inih but with
 * exact line numbers and the traps of inih's defaults closed: indented lines
 * (inih would glue them to the previous value), over-long lines (inih would
 * split them) and text after "[section]" are errors. `fn` is called once per
 * section header (key == value == NULL) and once per key; it returns QS_OK or
 * fills err (prefixing "where:line:") and returns an error, which stops the
 * parse. A malformed line is QS_ERR_CONFIG "where:line: syntax error". */
typedef qs_status (*qs_ini_fn)(void *user, const char *section, const char *key,
                               const char *value, int line, qs_error *err);
qs_status qs_ini_parse(const char *text, const char *where, qs_ini_fn fn, void *user,
                       qs_error *err);

/* Read a whole text file (NUL-free) into a qs_malloc'd string; QS_ERR_IO names
 * the path. The caller frees *out with qs_free. */
qs_status qs_read_text_file(const char *path, char **out, qs_error *err);

/* The effective configuration key by key (every key of docs/config.md, after
 * the file and the overrides): qs_arch_n_keys() keys; key `index` gets its
 * section, name and value as text (numbers exactly: "%.17g"), *is_number
 * saying whether the value is a number. Returns 0 for an index out of range. */
int32_t qs_arch_n_keys(void);
int qs_arch_key_value(const qs_arch *a, int32_t index, const char **section, const char **key, char *buf,
                      size_t n, int *is_number);

#endif
