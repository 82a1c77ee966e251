/* Execution of one GEMM instruction on the MAC array (internal to sim/).
 * Both engines share the schedule (which steps survive zero skipping) and
 * differ in how they produce values, cycles and PE activity: the fast engine
 * in bulk, the detailed engine by ticking qs_pe_array every clock. */
#ifndef QS_SIM_ARRAY_H
#define QS_SIM_ARRAY_H

#include <stdint.h>

#include "array_hook.h"
#include "pe_array.h"
#include "qs_energy.h"
#include "qs_isa.h"
#include "qs_net.h"
#include "qs_prog.h"
#include "scalesim_mem.h"
#include "sim.h"
#include "value_cache.h"

typedef struct {
    const qs_net *net;
    const qs_prog *prog;
    const qs_arch *arch;
    qs_engine engine;
    int32_t *const *outputs;   /* per layer output tensors (CHW) */
    int32_t *accum;            /* accumulator buffer: [g][m][n] of the current layer */
    int values_known;          /* fast engine: every layer output is already in place (the value cache,
                                * sim/value_cache.h): GEMMs compute timing and counts only */
    struct qs_value_cache *vc; /* with values_known: the cache, whose zero bits give the zero statistics */
    int32_t zb_layer;          /* the layer zb describes (-1: none looked up this run) */
    const uint64_t *zb;        /* its zero bits (NULL: not available, gather instead) */
    int32_t ws_len;            /* WS with zero bits: rows in sched */
    int32_t wzb_layer;         /* the layer wzb describes (-1: none looked up this run) */
    const uint64_t *wzb;       /* its zero weight-slice bits (NULL: not available, slices instead) */
    /* scratch, sized at create for the largest layer / array */
    int32_t *sched;            /* step list of one row group */
    int32_t *kidx;             /* reduction indices of a dense dot product */
    int32_t *sched_len;        /* per row group */
    int32_t *sched_all;        /* rows/G lists of up to K entries */
    int32_t *tile_acc;         /* OS: per-PE accumulators of one array tile (fast engine) */
    int32_t *colcount;         /* detailed engine: psums seen per column */
    int32_t *edge_i;           /* detailed engine edge buffers */
    uint8_t *edge_v, *edge_s;
    int32_t *edge_n;
    uint8_t *edge_nv, *edge_ns;
    uint8_t *edge_o;           /* lookahead: window index of each north weight slice */
    int32_t *south;
    uint8_t *south_v;
    /* fast engine scratch that grows to the largest instruction seen (kept
     * across instructions: allocating it per instruction costs page faults) */
    void *val_buf, *aux_buf;   /* values: gathered int16 weights; bounds and ordered sums */
    size_t val_cap, aux_cap;   /* their sizes in bytes */
    /* fast engine, OS: facts about the current layer's weights that every
     * instruction of the layer needs, computed when its first one runs */
    struct qs_layer_facts {
        int32_t layer;         /* whose facts these are; -1: none yet */
        int32_t *nzk;          /* per entry of the layer's list: non-zero weight slices across its n-block */
        int32_t *wmax, *ovmax; /* layers not overflow_free, per output column g*N + n: max |w| and max
                                * overshoot of the partial slice sums beyond |w|, over all k */
        void *buf;
        size_t cap;
    } facts;
    /* fast engine, OS/WS: the current layer's weights per n-block in the
     * order of its list, for dense dot products (sim/array.c, dense_weights) */
    struct qs_layer_dense {
        int32_t layer;          /* whose weights these are; -1: none yet */
        int32_t fit16;          /* every weight fits int16: w16 is filled */
        size_t *off;            /* per list (group, n-block): its first element in w32 / w16 */
        int32_t *w32;
        int16_t *w16;
        void *buf;
        size_t cap;
    } dense;
    /* fast engine: the current layer's weight slices side by side, slice s
     * of w[k][n] of group g at w[((g*slices + s)*K + k)*N + n], built when a
     * vectorized loop first needs them (WS/IS passes that gate or may
     * overflow, OS layers that may overflow; sim/array.c, layer_slices) */
    struct qs_layer_slices {
        int32_t layer;          /* whose slices these are; -1: none yet */
        int16_t *w;
        void *buf;
        size_t cap;
    } slices;
    /* fast engine, OS: what an instruction's activation rows gave, kept for
     * the instructions of the layer's other n-blocks that read the same rows
     * (sim/array.c, os_rows): one slot per (group, m-tile, k-chunk) of the
     * current layer while they fit rows_budget bytes, else a spare one */
    struct qs_os_rows {
        int32_t valid;
        int32_t layer, group, n0;     /* n0 of the last instruction that used them */
        uint32_t m0, m_len, k0, k_len;
        int32_t *klist;               /* copy of the list positions' reduction indices */
        int32_t *a;                   /* [i*k_len + q]: activation of row m0+i at list position k0+q */
        int16_t *a16;                 /* [i*lp + q], lp = k_len rounded up to 16, zero tail; NULL if some
                                       * activation does not fit int16 */
        int32_t *za;                  /* [g*k_len + q]: zero activations of the g-th row group at q */
        int64_t *sum_abs;             /* per row: sum of |activation| */
        void *buf;
        size_t cap;
    } *rows, rows_spare;
    int32_t n_rows;                   /* slots in rows */
    size_t rows_bytes, rows_budget;   /* bytes the slots hold, and at most */
    /* fast engine, OS lookahead: the schedule's counts per (group, n-block,
     * k-chunk) of the current layer (sim/array.c, la_counts_of) */
    struct qs_la_cache {
        int32_t layer;              /* -1: none yet */
        int64_t n, cap;             /* slots in use, allocated */
        struct qs_la_slot {
            int32_t valid;
            uint32_t k_len, n_len;
            int64_t cycles, slots, pos_cols;
        } *slot;
    } la_cache;
    void *la_buf;              /* lookahead: the columns' effectual step lists (sim/array.c, la_schedule) */
    size_t la_cap;
    qs_pe_array **groups;      /* detailed: OS one sub-array per row group; WS/IS one */
    int32_t n_groups;
    int32_t max_k;
    /* per-clock PE activity of the last GEMM (detailed engine, when logging
     * for a waveform): log[t] for t in [0, log_len) */
    struct qs_pe_log { uint32_t active, gated, overflows; } *log;
    uint64_t log_len, log_cap;
    int logging;
    /* [timing] convention = scalesim: SCALE-Sim's memory model of the
     * current layer (owned by the simulator), else NULL */
    qs_ssmem *ssm;
    /* a per-clock observer of the detailed engine (array_hook.h; NULL: none),
     * with the cycle the current instruction started, its index, whether the
     * current tile is followed and the tiles of each layer so far */
    const qs_array_hook *hook;
    uint64_t insn_start;
    int32_t insn;
    const qs_insn *hook_in;     /* the GEMM instruction running */
    int32_t hook_follow;
    int64_t *tile_count;        /* per layer: array tiles announced to the hook this run */
} qs_array_ctx;

typedef struct {
    uint64_t cycles;
    uint64_t buffer_stall;
    uint64_t mem_stall;        /* scalesim convention: stalls of SCALE-Sim's memory model (inside cycles) */
    qs_events ev;
} qs_tile_result;

qs_status qs_array_ctx_init(qs_array_ctx *c, qs_error *err);
/* The detailed engine's PE arrays (made by init for that engine; a hook that
 * switches layers of a fast-engine simulator to it needs them too). */
qs_status qs_array_ctx_make_groups(qs_array_ctx *c, qs_error *err);
/* For the hook: tell it a tile starts on pa (just reset), and pass it a clock. */
qs_status qs_array_hook_tile(qs_array_ctx *c, const qs_pe_array *pa, const qs_insn *in, uint32_t m0, uint32_t k0,
                             int32_t group, qs_error *err);
qs_status qs_array_hook_tick(qs_array_ctx *c, uint64_t rel_cycle, const qs_pe_in *pin, const qs_pe_out *po,
                             const qs_pe_array *pa, qs_error *err);
void qs_array_ctx_free(qs_array_ctx *c);

/* Execute GEMM instruction `in`: update c->accum, return timing and counts. */
qs_status qs_array_gemm(qs_array_ctx *c, const qs_insn *in, qs_tile_result *r, qs_error *err);

/* How the fast engine produced the values of OS layers that the compiler
 * could not prove overflow-free (sim/array.c, values_checked), summed over
 * the process: outputs given the exact sum under the row bound, outputs given
 * it after following their partial sums (no addition overflows), and output
 * rows accumulated slice by slice in the hardware's order (one does).
 * tests/test_sim.c checks that each path is exercised. */
typedef struct {
    uint64_t row_bound, prefix, ordered_rows;
} qs_value_paths;
void qs_array_value_paths(qs_value_paths *out);
/* For tests: 1 makes values_checked use its 64-bit kernels even where the
 * 32-bit ones apply (which is everywhere but near 32-bit accumulators). */
void qs_array_wide_lanes_only(int on);

/* Execute a GEMM instruction of a MATMUL layer (sim/matmul.c): both
 * operands are activations; qs_array_gemm hands such instructions here. */
qs_status qs_array_matmul(qs_array_ctx *c, const qs_insn *in, qs_tile_result *r, qs_error *err);

/* Cycles per stream element forced by SRAM bandwidth (>= 1). */
int32_t qs_array_stream_rate(const qs_arch *a, const qs_layer_map *m);

/* The same, with what each buffer (0 ifmap, 1 weight, 2 accumulator) must
 * deliver per stream element and delivers per cycle, in bytes (need 0: the
 * dataflow does not read that buffer per element). For messages that say
 * which buffer throttles the array. */
int32_t qs_array_stream_needs(const qs_arch *a, const qs_layer_map *m, int64_t need[3], int64_t bw[3]);

#endif
