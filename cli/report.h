/* The run report: what `qsim run` prints, and writes as JSON (docs/report.md)
 * and CSV. Built from the simulator's per-layer stats and the energy model.
 * A SCALE-Sim topology run (docs/scalesim.md) has its own report over the
 * topology's layers, each simulated as its own network, and can also write
 * SCALE-Sim's three CSV reports. */
#ifndef QS_REPORT_H
#define QS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_prog.h"
#include "qs_scalesim.h"
#include "qs_status.h"
#include "sim.h"

typedef struct {
    const qs_net *net;
    const qs_prog *prog;
    const qs_arch *arch;
    const qs_tech *tech;
    const char *net_path, *arch_path, *engine;
    int32_t n_inferences;
    qs_layer_stats *layers;    /* summed over the inferences */
    int32_t n_correct, n_labelled;
    const int32_t *predictions;  /* argmax of the output per inference, n_inferences of them (batch runs) */
    double wall_seconds;
    const char *command_line;    /* how the run was asked for (the qsim command's argv, or the API caller's
                                    note); NULL: not recorded */
} qs_report;

void qs_report_print(const qs_report *r, FILE *f);
qs_status qs_report_write_json(const qs_report *r, const char *path, qs_error *err);
/* The same JSON text in a malloc'd string (the caller frees it). */
qs_status qs_report_json_text(const qs_report *r, char **text, qs_error *err);
qs_status qs_report_write_csv(const qs_report *r, const char *path, qs_error *err);

/* ---- SCALE-Sim topologies ------------------------------------------------------ */

/* One topology layer's results (kept after its network is freed). */
typedef struct {
    qs_scalesim_layer row;     /* the topology row */
    qs_layer layer;            /* the conv layer (shape and name; requant arrays not kept) */
    qs_layer_map map;          /* its mapping (pointers not kept) */
    qs_layer_stats stats;      /* its simulation */
    int32_t no_operands;       /* not simulated on operands: only stats.ss (SCALE-Sim's figures) and the
                                  layer's shape are set; qsim's own figures are not computed */
} qs_topo_layer;

typedef struct {
    const qs_arch *arch;
    const qs_tech *tech;
    const qs_scalesim_cfg *sscfg;    /* NULL when --arch is a native configuration */
    const qs_scalesim_opts *opts;    /* operand settings (index unused) */
    const char *topo_path, *arch_path, *engine;
    int32_t gemm;                    /* topology read in GEMM form */
    int32_t n;
    const qs_topo_layer *layers;
    double wall_seconds;
    const char *command_line;        /* NULL: not recorded */
} qs_topo_report;

void qs_topo_report_print(const qs_topo_report *r, FILE *f);
qs_status qs_topo_report_write_json(const qs_topo_report *r, const char *path, qs_error *err);
qs_status qs_topo_report_write_csv(const qs_topo_report *r, const char *path, qs_error *err);

/* SCALE-Sim v2's COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and
 * DETAILED_ACCESS_REPORT.csv in dir (created if missing), its headers, column
 * order and number format (Python str()). Needs the scalesim timing
 * convention (the figures come from qs_layer_stats.ss). */
qs_status qs_scalesim_write_reports(const qs_topo_report *r, const char *dir, qs_error *err);

/* What SCALE-Sim v2's scale.py prints on stdout for the same run (its
 * configuration block, then per layer "Running Layer i", "Compute cycles: ",
 * "Stall cycles: ", utilisation, mapping efficiency and average DRAM
 * bandwidths, then "SCALE SIM Run Complete"), for `qsim scalesim`. */
void qs_scalesim_print_stdout(const qs_topo_report *r, const char *topo_arg, FILE *f);

/* Python's repr() of a double ("100.0", "0.1", "1e-05", "1.5e+16"). */
void qs_py_float(char *buf, size_t n, double v);

#endif
