/* The cycle-level simulator: runs a compiled program (models/qs_prog.h) on
 * real data and returns bit-exact layer outputs, cycles, stalls by cause and
 * event counts. Timing rules: docs/timing.md. */
#ifndef QS_SIM_H
#define QS_SIM_H

#include <stdint.h>

#include "qs_energy.h"
#include "qs_net.h"
#include "qs_prog.h"
#include "qs_scalesim.h"
#include "qs_status.h"
#include "trace.h"
#include "dram.h"
#include "mem_backend.h"
#include "array_hook.h"

typedef enum { QS_ENGINE_FAST = 0, QS_ENGINE_DETAILED } qs_engine;

/* SCALE-Sim v2's per-layer report figures (COMPUTE_REPORT.csv and the SRAM
 * columns of BANDWIDTH_REPORT / DETAILED_ACCESS_REPORT), in its units (words). */
typedef struct {
    uint64_t folds;             /* row folds x column folds */
    uint64_t total_cycles;      /* "Total Cycles": index of the last ofmap write = demand rows - 1 + stalls */
    uint64_t stall_cycles;      /* "Stall Cycles" */
    double mapping_eff_sum;     /* sum over folds of used PEs / all PEs ("Mapping Efficiency %" = 100 * sum / folds) */
    double compute_util_sum;    /* sum over folds of MACs / (PEs x fold cycles) ("Compute Util %" likewise) */
    uint64_t ifmap_sram_reads;  /* words the array requested, SCALE-Sim's count */
    uint64_t filter_sram_reads;
    uint64_t ofmap_sram_writes;
    /* first and last cycle the array requested each operand from its SRAM
     * (reads: the cycle the word is served, one after the request) */
    uint64_t ifmap_sram_first, ifmap_sram_last;
    uint64_t filter_sram_first, filter_sram_last;
    uint64_t ofmap_sram_first, ofmap_sram_last;
    uint64_t ofmap_dram_writes; /* words the ofmap buffer drained to DRAM */
    uint64_t ofmap_dram_first, ofmap_dram_last;  /* first and last cycle of an ofmap drain (0,0 if none) */
    /* Set by the SCALE-Sim topology path from a replay of SCALE-Sim's CALC-mode
     * read buffers (scalesim_reads.h), not by the engines: [0] ifmap, [1] filter. */
    int32_t dram_reads_replayed;
    uint64_t dram_reads[2];
    int64_t dram_read_first[2], dram_read_last[2];  /* negative: before compute starts */
} qs_scalesim_stats;

/* Per-layer results. Stall cycles are those in which the array waited, by cause. */
typedef struct {
    uint64_t start, end;        /* cycle span: from the previous layer's end */
    uint64_t cycles;            /* end - start */
    uint64_t array_busy;        /* cycles the array spent on this layer's tiles */
    uint64_t stall_dram;        /* array idle waiting for loads or stores stuck on DRAM */
    uint64_t stall_ppu;         /* array idle waiting for the post-processing unit */
    uint64_t stall_buffer;      /* array slowed by SRAM bank/port bandwidth (inside busy) */
    uint64_t stall_dep;         /* other waiting: pipeline fill/drain, layer barrier */
    qs_events ev;
    /* Under [timing] convention = scalesim only (docs/timing.md, "SCALE-Sim
     * convention"): the figures SCALE-Sim v2 reports for this layer, counted
     * fold by fold by the array and its memory model. */
    qs_scalesim_stats ss;
    /* Under a bank-level [dram] model: what this layer's transfers did in the
     * DRAM (docs/dram.md); zero under model = simple. */
    qs_dram_stats dram;
} qs_layer_stats;

typedef struct qs_sim qs_sim;


qs_status qs_sim_create(const qs_net *net, const qs_prog *prog, qs_engine engine, qs_sim **out, qs_error *err);
void qs_sim_destroy(qs_sim *s);

/* Under the scalesim convention in USER bandwidth mode: the SCALE-Sim
 * topology row that network layer `layer` simulates, so that the array waits
 * on SCALE-Sim's read buffers replayed for that row (docs/timing.md,
 * "SCALE-Sim convention"). `row` must outlive qs_sim_run. Without it USER
 * mode reads use qsim's per-fold estimate. */
void qs_sim_set_scalesim_layer(qs_sim *s, int32_t layer, const qs_scalesim_layer *row);

/* Input activations (CHW, out_c*out_h*out_w of layer 0), checked against the
 * input layer's range. Without a call the input is deterministic pseudo-random. */
qs_status qs_sim_set_input(qs_sim *s, const int32_t *data, int64_t count, qs_error *err);

/* Run the whole program once (can be called again after set_input). */
qs_status qs_sim_run(qs_sim *s, qs_error *err);

/* Step by step (for clocked wrappers such as sim/systemc): start, then
 * advance to a cycle; *done says the program finished. qs_sim_run is
 * start + advance to the end. */
qs_status qs_sim_start(qs_sim *s, qs_error *err);
qs_status qs_sim_advance(qs_sim *s, uint64_t until, int *done, qs_error *err);
uint64_t qs_sim_now(const qs_sim *s);

/* Called when a transfer takes the DRAM channel (TLM initiators use it),
 * once per run of its access pattern (docs/isa.md) with that run's bytes
 * (a transfer of no byte: once, with 0 bytes at its address). */
typedef void (*qs_sim_dma_fn)(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle);
void qs_sim_set_dma_hook(qs_sim *s, qs_sim_dma_fn fn, void *user);

/* [dram] model = tlm: the memory backend that says when each DMA request
 * completes (sim/mem_backend.h; docs/timing.md, "Memory backend"). Copied;
 * NULL detaches. A run under model = tlm without one fails at qs_sim_start
 * (the `qsim` command has none: only the SystemC wrapper attaches one). */
void qs_sim_set_memory_backend(qs_sim *s, const qs_mem_backend *b);

/* The DRAM bytes [addr, addr + n) as the model holds them now: the input,
 * the weight images and the layer outputs computed so far, packed as
 * docs/isa.md and docs/compiler.md define (docs/systemc.md, "Payloads"). A
 * STORE's bytes are complete when its DMA is handed over (the hook and the
 * backend are called then); bytes no tensor covers read 0. Fails only when
 * out of memory. */
qs_status qs_sim_read_dram(qs_sim *s, uint64_t addr, uint8_t *out, uint64_t n, qs_error *err);

/* Every DRAM request of the next runs, as the bank-level model receives it
 * (no call under model = simple). */
void qs_sim_set_dram_trace(qs_sim *s, qs_dram_trace_fn fn, void *user);

/* Called as each instruction completes: its index in the program, the cycle it
 * started (its tokens taken), for a STORE the cycle its post-processing ended
 * (and its DMA was requested; otherwise equal to start), and the cycle it
 * completed. Lets a test replay the schedule from docs/timing.md. */
typedef void (*qs_sim_insn_fn)(void *user, int32_t insn, uint64_t start, uint64_t ppu_end, uint64_t end);
void qs_sim_set_insn_hook(qs_sim *s, qs_sim_insn_fn fn, void *user);

/* A per-clock observer of the detailed engine's PE arrays (array_hook.h),
 * for RTL co-simulation; NULL removes it. With a fast-engine simulator the
 * layers the hook asks for run on the detailed engine. `hook` must outlive
 * the runs. */
qs_status qs_sim_set_array_hook(qs_sim *s, const qs_array_hook *hook, qs_error *err);

/* Waveform of the next runs: queues, tokens, DMA, PPU, and the array's PE
 * activity (per clock with the detailed engine), cycles [from, to] only
 * (times in the file start at `from`). t stays owned by the caller. */
void qs_sim_set_trace(qs_sim *s, qs_trace *t, uint64_t from, uint64_t to);

/* The network's value cache (value_cache.h; NULL: none), shared by every
 * simulator of the network: a fast-engine run of a program whose outputs
 * depend on the network and the input alone copies them from it when it
 * holds this input's, else computes them and keeps them there. Reports are
 * the same byte for byte either way. */
struct qs_value_cache;
void qs_sim_set_value_cache(qs_sim *s, struct qs_value_cache *vc);

const qs_layer_stats *qs_sim_layer_stats(const qs_sim *s, int32_t layer);
const int32_t *qs_sim_layer_output(const qs_sim *s, int32_t layer);
uint64_t qs_sim_total_cycles(const qs_sim *s);

#endif
