/* SCALE-Sim v2's memory model, as far as it decides the cycle counts it
 * reports, for the `[timing] convention = scalesim` of the simulator
 * (docs/timing.md, "SCALE-Sim convention"). Internal to sim/.
 *
 * The array reports each fold (one array-sized tile of the GEMM, in
 * SCALE-Sim's fold order) here; this model walks the fold's ofmap demand
 * rows (SCALE-Sim's skewed ofmap demand matrix, counted, not built) through
 * SCALE-Sim's double-buffered ofmap write buffer and returns the stall
 * cycles its drains cost, and in USER bandwidth mode the read stalls:
 * SCALE-Sim's read buffers replayed row by row (scalesim_reads.h) when the
 * layer's topology row is known, else qsim's per-fold estimate. It also
 * counts the report figures (SRAM words, mapping efficiency, compute
 * utilisation). */
#ifndef QS_SIM_SCALESIM_MEM_H
#define QS_SIM_SCALESIM_MEM_H

#include <stdint.h>

#include "qs_arch.h"
#include "sim.h"
#include "scalesim_reads.h"

typedef struct {
    int64_t line;   /* trace line id */
    int32_t valid;  /* words in it */
} qs_ssmem_partial;

typedef struct {
    /* configuration */
    qs_dataflow df;
    int32_t R, C;               /* array rows, cols */
    int64_t active_words;       /* half of the ofmap SRAM the array writes into */
    int64_t drain_words;        /* the half being drained */
    int32_t line_words;         /* words per DRAM write request line */
    int32_t read_bw;            /* USER mode words/cycle per read operand; 0 = CALC */
    /* ofmap write buffer state (SCALE-Sim's write_buffer) */
    int64_t free_words;
    int32_t line_fill;          /* words in the line being filled */
    int64_t lines;              /* complete + forced lines so far */
    int64_t drain_next;         /* first line not yet drained */
    uint64_t drain_end;         /* cycle the drain in flight sends its last line */
    qs_ssmem_partial *partial;  /* forced (not full) lines not yet drained, by line id */
    int32_t n_partial, cap_partial;
    /* time */
    uint64_t rows;              /* demand rows so far (SCALE-Sim's row index) */
    uint64_t stalls;            /* stall cycles so far */
    uint64_t prev_fold_rows;    /* USER mode: rows of the previous fold (prefetch window) */
    int64_t prev_ifmap_block, prev_filter_block;  /* USER mode: operand blocks of the previous fold */
    qs_scalesim_stats *st;      /* the layer's figures */
    /* optional log of the stalls, for replays of SCALE-Sim's read buffers
     * (scalesim_reads.c): stall_amount[i] cycles were added after demand
     * row stall_row[i] (SCALE-Sim adds a row's stall after servicing it) */
    int32_t log_stalls;
    uint64_t *stall_row, *stall_amount;
    int64_t n_stall_log, cap_stall_log;
    int32_t log_oom;
    /* USER bandwidth mode with the layer's SCALE-Sim row known: its read
     * buffers, replayed row by row (owned; freed by qs_ssmem_end) */
    qs_ssuser *user;
    int32_t user_seen[3];       /* a row of ifmap, filter, ofmap requests was seen */
    /* optional log of the ofmap drains, for SCALE-Sim's OFMAP DRAM trace
     * (scalesim_reads.c): drain i sent lines drain_line0[i] .. + drain_lines[i]
     * - 1 at cycles drain_cycle[i] ..; forced_line[j] was sent with only
     * forced_valid[j] words (the line being filled when a drain started) */
    int32_t log_drains;
    int64_t *drain_line0, *drain_lines, *forced_line;
    uint64_t *drain_cycle;
    int32_t *forced_valid;
    int64_t n_drain_log, cap_drain_log, n_forced_log, cap_forced_log;
    /* optional per-row callback in USER mode (traces): the row's global
     * index, the fold and row in it, its request cycle, the cycles its
     * ifmap and filter reads are served and its ofmap write completes */
    void (*row_hook)(void *ctx, int64_t fold, int64_t t, uint64_t cycle, uint64_t ifmap_served,
                     uint64_t filter_served, uint64_t ofmap_done);
    void *hook_ctx;
} qs_ssmem;

/* Start a layer: an empty ofmap buffer of `a->accum.size_kib` KiB of one-byte
 * words; figures go to *st (zeroed here). */
void qs_ssmem_begin(qs_ssmem *m, const qs_arch *a, qs_scalesim_stats *st);

/* One fold: T = the streamed dimension (OS: reduction K; WS: ofmap pixels M;
 * IS: filters N), ku = used array rows, cu = used array columns, ifmap_block
 * and filter_block identify the fold's operand tiles (same id = same data,
 * for the USER-mode prefetch). Returns the fold's stall cycles. The fold's
 * compute cycles are the array's (both engines), which must equal
 * qs_ssmem_fold_rows(). Returns UINT64_MAX when out of memory. */
uint64_t qs_ssmem_fold(qs_ssmem *m, int64_t T, int32_t ku, int32_t cu, int64_t ifmap_block, int64_t filter_block);

/* Demand rows (cycles) of one fold under SCALE-Sim's dataflow rules. */
int64_t qs_ssmem_fold_rows(qs_dataflow df, int32_t R, int32_t C, int64_t T);

/* End of the layer: drain what is left (DRAM write figures) and set
 * total_cycles. Frees the model's memory. */
void qs_ssmem_end(qs_ssmem *m);

/* SCALE-Sim's per-layer figures from the topology row alone, without
 * operands: the fold sequence the engines report (column folds outer, each
 * fold's used rows, columns and streamed length) through the same memory
 * model (this model), so every field equals what either engine counts
 * for a layer both can run; in USER mode with SCALE-Sim's read buffers
 * replayed (DRAM read columns included). In CALC mode the DRAM read columns
 * come from qs_ssreads_layer, as for a simulated layer. Memory: the ofmap
 * model's few words per drain, plus in USER mode qs_ssuser_create's. For
 * layers too large to simulate on operands (docs/scalesim.md, "Layers
 * without operands"). Errors: QS_ERR_CONFIG (not the scalesim convention),
 * QS_ERR_NOMEM, QS_ERR_ARG (USER mode, an operand of 2^31 addresses). */
qs_status qs_ssstats_layer(const qs_scalesim_layer *l, const qs_arch *a, qs_scalesim_stats *out, qs_error *err);

#endif
