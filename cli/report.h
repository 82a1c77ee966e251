/* The run report: what `qsim run` prints, and writes as JSON (docs/report.md)
 * and CSV. Built from the simulator's per-layer stats and the energy model. */
#ifndef QS_REPORT_H
#define QS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_prog.h"
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
} qs_report;

void qs_report_print(const qs_report *r, FILE *f);
qs_status qs_report_write_json(const qs_report *r, const char *path, qs_error *err);
qs_status qs_report_write_csv(const qs_report *r, const char *path, qs_error *err);

#endif
