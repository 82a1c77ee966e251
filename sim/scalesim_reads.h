/* SCALE-Sim v2's read side in CALC bandwidth mode, replayed exactly for its
 * reports (docs/scalesim.md, "DRAM reads"; docs/timing.md, "SCALE-Sim
 * convention"). Internal to sim/, used by the scalesim command path.
 *
 * In CALC mode SCALE-Sim's read buffers never stall the array; what they
 * decide is the DRAM read columns: its "estimate bandwidth" buffer groups
 * the distinct addresses the array requests, in demand order, into sets of
 * floor(SRAM words / 100), keeps a window of 50 sets, and fetches a set
 * again once it has left the window. This module walks the layer's ifmap
 * and filter demand matrices (row by row, each row's columns in order,
 * generated from the topology row, never stored) through that rule, with
 * each row's cycle taken from the ofmap write-buffer stalls (scalesim_mem.c),
 * and returns the DRAM words, first and last DRAM cycle, and the SRAM
 * start/stop cycles of the two read operands (first and last demand row with
 * a real address, so window positions past the ifmap edge count as none). */
#ifndef QS_SIM_SCALESIM_READS_H
#define QS_SIM_SCALESIM_READS_H

#include <stdint.h>

#include "qs_arch.h"
#include "qs_scalesim.h"
#include "qs_status.h"

typedef struct {
    uint64_t dram_reads[2];          /* [0] ifmap, [1] filter: words fetched from DRAM */
    int64_t dram_start[2], dram_stop[2];  /* first and last response cycle of the DRAM trace */
    int64_t sram_start[2], sram_stop[2];  /* first and last SRAM read (request cycle + 1) */
    uint64_t total_cycles;           /* of the replay's own ofmap model, to cross-check the engine */
    uint64_t stall_cycles;
} qs_ssreads;

/* Replay layer `l` on `a` (dataflow, array, SRAM sizes; CALC mode:
 * a->scalesim_bandwidth == 0). Memory: an operand of at most direct_limit
 * addresses gets one int32 per address, a larger one a table of twice the
 * words of half its SRAM (8 bytes each), whichever the answers are the same
 * (QS_SSREADS_DIRECT_LIMIT is the default); plus a few words per window
 * position and ofmap pixel. Errors: QS_ERR_UNSUPPORTED for USER mode,
 * QS_ERR_NOMEM, QS_ERR_ARG for a layer too large to index. */
#define QS_SSREADS_DIRECT_LIMIT ((int64_t)1 << 22)
qs_status qs_ssreads_layer(const qs_scalesim_layer *l, const qs_arch *a, int64_t direct_limit, qs_ssreads *out,
                           qs_error *err);

/* USER bandwidth mode: SCALE-Sim's read buffers, which do stall the array.
 * Each operand's buffer is filled from its fetch order (SCALE-Sim's prefetch
 * matrix: the operand's folds, read by anti-diagonals where SCALE-Sim does)
 * at the configured words per cycle: the first active half before cycle 0,
 * then, whenever a requested address is in none of the lines of the sliding
 * window, the next prefetch half, serially, the row waiting for its last
 * response. Memory: one int32 per element of each fetch order. */
typedef struct qs_ssuser qs_ssuser;

qs_status qs_ssuser_create(const qs_scalesim_layer *l, const qs_arch *a, qs_ssuser **out, qs_error *err);

/* Demand row t of fold `fold` (SCALE-Sim's order: column folds outer) of
 * operand op (0 ifmap, 1 filter), requested at `cycle`: the cycle it is
 * served (cycle + 1 without a miss), or -1 when it requests nothing. */
int64_t qs_ssuser_row(qs_ssuser *u, int op, int64_t fold, int64_t t, int64_t cycle);

/* DRAM figures so far: words requested, first and last response cycle. */
void qs_ssuser_dram(const qs_ssuser *u, int op, uint64_t *reads, int64_t *first, int64_t *last);

/* ku, cu of fold `fold` in SCALE-Sim's order (to check the engine's). */
void qs_ssuser_fold_dims(const qs_ssuser *u, int64_t fold, int32_t *ku, int32_t *cu);

void qs_ssuser_destroy(qs_ssuser *u);

/* SCALE-Sim v2's six trace files of layer l (docs/scalesim.md, "Traces"):
 * IFMAP_SRAM_TRACE.csv, FILTER_SRAM_TRACE.csv, OFMAP_SRAM_TRACE.csv,
 * IFMAP_DRAM_TRACE.csv, FILTER_DRAM_TRACE.csv, OFMAP_DRAM_TRACE.csv, written
 * into the existing directory `dir` as SCALE-Sim writes them (same rows,
 * same number format), with offsets[3] = IfmapOffset, FilterOffset,
 * OfmapOffset added to the real addresses. Streamed: rows are generated
 * and written one at a time. out gets the replay's total and stall cycles
 * (the caller checks them against the engine's). Errors: QS_ERR_IO,
 * QS_ERR_NOMEM, QS_ERR_ARG (layer too large to index), QS_ERR_UNSUPPORTED
 * (cases SCALE-Sim v2 itself fails on). */
qs_status qs_sstrace_layer(const qs_scalesim_layer *l, const qs_arch *a, const int64_t offsets[3], const char *dir,
                           qs_ssreads *out, qs_error *err);

#endif
