/* Energy and area: a technology table (models/tech/NAME.tech, INI, every figure
 * with its source) turns the simulator's event counts into picojoules and
 * the configuration into square millimetres. */
#ifndef QS_ENERGY_H
#define QS_ENERGY_H

#include <stdint.h>

#include "qs_arch.h"
#include "qs_status.h"

/* What the simulator counts. Everything is a plain count; widths come from
 * the arch/layer so the model can scale per-action energies. */
typedef struct {
    uint64_t cycles;
    uint64_t mac_ops;            /* MAC slice operations that did arithmetic */
    uint64_t mac_skipped;        /* slice ops removed by skipping (no cycle spent) */
    uint64_t mac_gated;          /* slice ops in a spent cycle with a zero operand, gated */
    uint64_t pe_idle;            /* PE-cycles with no work (fill, drain, ragged tiles) */
    uint64_t acc_overflows;      /* accumulator additions that overflowed */
    uint64_t reg_bits;           /* bits moved through PE pipeline registers */
    uint64_t sram_read_bytes[3]; /* ifmap, weight, accum */
    uint64_t sram_write_bytes[3];
    uint64_t dram_read_bytes;
    uint64_t dram_write_bytes;
    uint64_t ppu_ops;            /* post-processing element operations */
    uint64_t macs;               /* dense (logical) multiply-accumulates of the layers */
    uint64_t macs_executed;      /* logical MACs whose work was done (not skipped) */
    /* bank-level DRAM only (zero under [dram] model = simple): commands and
     * bank time, for the IDD-based energy (docs/dram.md, "Energy") */
    uint64_t dram_acts;          /* ACT commands (each with its PRE) */
    uint64_t dram_rd_bursts, dram_wr_bursts;
    uint64_t dram_refreshes;     /* all-bank refreshes, per rank */
    uint64_t dram_bank_active;   /* bank-cycles (tCK) with the bank's row open */
} qs_events;

enum { QS_BUF_IFMAP = 0, QS_BUF_WEIGHT = 1, QS_BUF_ACCUM = 2 };

void qs_events_add(qs_events *dst, const qs_events *src);

/* Per-action energies (pJ) and per-component areas (um^2) after scaling to the
 * arch's operand widths, node and voltage. */
typedef struct {
    double mac_pj;          /* one MAC slice op at (weight_path_bits x act bits) + acc */
    double mac_skip_pj;     /* a skipped/gated slice op, per skip_impl */
    double reg_pj_per_bit;
    double sram_pj_per_byte[3];   /* read */
    double sram_wr_pj_per_byte[3];
    double dram_pj_per_byte;
    double ppu_pj_per_op;
    double leak_mw_per_mm2;       /* leakage power density */
    /* area */
    double pe_um2;          /* one PE incl. its skip logic */
    double array_mm2, sram_mm2[3], dma_mm2, ppu_mm2, control_mm2;
    double total_mm2;
    /* added with the implementation (models/energy.c) */
    double pe_idle_pj;      /* one idle PE-cycle (no valid operands) */
    double pe_skip_um2;     /* the part of pe_um2 that is zero-skip logic */
    double pe_lookahead_um2; /* the part of pe_um2 that is the lookahead window, index and multiplexer */
    double lookahead_mux_pj; /* the part of mac_pj that is the lookahead multiplexer */
    double node_area_factor;    /* area x, table node -> arch node */
    double node_energy_factor;  /* on-chip energy x, table node -> arch node */
    double voltage_energy_factor; /* on-chip energy x, table voltage -> arch voltage */
} qs_tech;

typedef struct {
    double mac, registers, sram, dram, ppu, leakage, total;  /* pJ */
    /* the bank-level model's DRAM energy by action (dram is their sum; all
     * zero under model = simple, whose dram is pJ/bit x bits) */
    double dram_act, dram_rd, dram_wr, dram_ref, dram_bg;
} qs_energy_breakdown;

/* Energy of one DRAM action of the bank-level model, pJ (docs/dram.md). */
typedef struct {
    double act;          /* one ACT + its PRE */
    double rd, wr;       /* one burst */
    double ref;          /* one all-bank refresh of a rank */
    double bg_idle_pj_per_cycle;  /* background of all ranks with every bank precharged, per tCK */
    double bg_active_pj_per_bank_cycle; /* extra per bank-cycle with the bank open */
} qs_dram_energy;
qs_dram_energy qs_dram_energy_of(const qs_dram_cfg *c);

/* Load a technology table and derive qs_tech for this arch. */
qs_status qs_tech_load(const char *path, const qs_arch *arch, int act_bits, qs_tech *out, qs_error *err);

/* Parse technology-table text (fuzzable). */
qs_status qs_tech_parse(const char *text, const char *where, const qs_arch *arch, int act_bits,
                        qs_tech *out, qs_error *err);

/* Energy of a run from its counts. */
qs_energy_breakdown qs_energy_of(const qs_tech *t, const qs_arch *arch, const qs_events *ev);

#endif
