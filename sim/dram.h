/* The bank-level DRAM model (docs/dram.md): channels, ranks, bank groups,
 * banks with row buffers (open or closed page), the JEDEC timing rules, a
 * per-channel FR-FCFS controller with a bounded request queue (or a
 * transaction queue feeding per-bank command queues, served oldest first or
 * in turn one command per cycle, with an optional write buffer), all-bank
 * refresh and a configurable address mapping.
 *
 * It works per request, not per cycle: each request's commands (PRE, ACT,
 * RD/WR) are placed at the earliest DRAM cycle every rule allows, given the
 * commands already placed; the state kept per bank, bank group, rank and
 * channel is the time each rule releases. Times inside are DRAM clock cycles
 * (tCK); qs_dram_transfer converts from and to the accelerator clock.
 *
 * The layers, as in DRAMsim3: the configuration (qs_dram_cfg, models/qs_arch.h),
 * the device state (bank/rank/channel timing state), the controller
 * (queue + FR-FCFS), and the transfer front end the DMA calls. */
#ifndef QS_DRAM_H
#define QS_DRAM_H

#include <stddef.h>
#include <stdint.h>

#include "qs_arch.h"
#include "qs_status.h"

typedef struct qs_dram qs_dram;

/* Where an address lands (qs_dram_decode). */
typedef struct {
    int32_t ch, ra, bg, ba, ro, co;
} qs_dram_addr;

/* What serving one request did, in DRAM cycles. */
typedef enum { QS_ROW_HIT = 0, QS_ROW_MISS, QS_ROW_CONFLICT } qs_row_outcome;
typedef struct {
    qs_row_outcome outcome;  /* hit: row open; miss: bank closed; conflict: another row open */
    uint64_t pre, act;       /* PRE / ACT issue cycles (valid when the outcome needs them) */
    uint64_t col;            /* RD / WR issue cycle */
    uint64_t data_end;       /* cycle after the last data beat */
} qs_dram_served;

/* Counts by action, for energy and the report (docs/dram.md). */
typedef struct {
    uint64_t reads, writes;            /* bursts */
    uint64_t acts, pres, refreshes;    /* commands (pres: explicit and auto-precharge) */
    uint64_t row_hits, row_misses, row_conflicts;
    uint64_t read_latency_sum;         /* DRAM cycles, request arrival to last data beat, over reads */
    uint64_t bank_active;              /* bank-cycles from ACT to PRE, counted at the PRE */
} qs_dram_stats;

/* dst += a - b, field by field (the counts of an interval) */
void qs_dram_stats_add_delta(qs_dram_stats *dst, const qs_dram_stats *a, const qs_dram_stats *b);

qs_status qs_dram_create(const qs_dram_cfg *cfg, double accel_mhz, qs_dram **out, qs_error *err);
void qs_dram_destroy(qs_dram *d);
/* Back to power-up: all banks closed, time 0, counters zero. */
void qs_dram_reset(qs_dram *d);

qs_dram_addr qs_dram_decode(const qs_dram *d, uint64_t addr);
/* Bytes one request moves (bus width x burst length). */
uint32_t qs_dram_burst_bytes(const qs_dram *d);

/* Serve one request that arrives at DRAM cycle `arrive`, now, with no other
 * request waiting (the building block; the unit tests use it directly). */
qs_dram_served qs_dram_serve(qs_dram *d, uint64_t arrive, uint64_t addr, int is_write);

/* One DMA transfer: the bursts covering byte ranges [first[i], first[i] +
 * count[i]) all arrive at accelerator cycle `start` and go through each
 * channel's FR-FCFS queue of queue_depth entries. Returns the accelerator
 * cycle at which the last data beat is done (>= start). `trace`, if set, is
 * called for every request as it is issued to the controller. */
typedef void (*qs_dram_trace_fn)(void *user, uint64_t dram_cycle, uint64_t addr, int is_write, uint32_t bytes);
uint64_t qs_dram_transfer(qs_dram *d, uint64_t start, int is_write, const uint64_t *first, const uint64_t *count,
                          uint32_t n_runs, qs_dram_trace_fn trace, void *trace_user);

const qs_dram_stats *qs_dram_get_stats(const qs_dram *d);

/* Room for transfers of up to n bursts, so that qs_dram_transfer allocates
 * nothing (the simulator reserves its largest transfer up front). */
qs_status qs_dram_reserve(qs_dram *d, size_t n, qs_error *err);
/* 1 once a transfer larger than the reserve could not get memory (its
 * requests were then not modelled): the caller must fail the run. */
int qs_dram_out_of_memory(const qs_dram *d);

/* write_buffer > 0: the writes still posted go to the DRAM now (from when the
 * controller went idle), so that they count; the run's cycles do not change. */
void qs_dram_drain(qs_dram *d);

/* End of a run at DRAM cycle t_end: rows still open count as open until
 * then (bank_active), as if precharged there. */
void qs_dram_finish(qs_dram *d, uint64_t t_end);

/* Accelerator cycle -> first DRAM cycle at or after it, and back. */
uint64_t qs_dram_to_dram_cycle(const qs_dram *d, uint64_t accel_cycle);
uint64_t qs_dram_to_accel_cycle(const qs_dram *d, uint64_t dram_cycle);

#endif
