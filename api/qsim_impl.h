/* libqsim's private half: the handles' contents and the error helpers shared
 * by api/qsim.c (handles, runs, figures) and api/command.c (what the qsim
 * command prints and writes, SCALE-Sim topologies). Not installed. */
#ifndef QSIM_IMPL_H
#define QSIM_IMPL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qsim/qsim.h"
#include "qs_alloc.h"

#include "compiler.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_scalesim.h"
#include "report.h"
#include "rtl_cosim.h"
#include "sim.h"
#include "value_cache.h"

struct qsim_net {
    qs_net *net;
    char *path; /* as given (file) or the caller's name (bytes) */
    /* layer outputs kept across runs (sim/value_cache.h; docs/api.md,
     * "Re-running a network across configurations"); NULL: turned off */
    struct qs_value_cache *cache;
};

struct qsim_config {
    char *text, *where;
    char **sets;
    int n_sets, cap_sets;
    qs_arch arch;
    int is_scalesim;
    qs_scalesim_cfg ss; /* what a SCALE-Sim configuration said (run name, notes) */
};

struct qsim_program {
    const qsim_net *net;
    qs_arch arch;
    qs_tech tech;
    qs_prog *prog;
    char *config_where;
};

struct qsim_report {
    int is_topology;
    const qs_net *net;         /* network runs: the program's, which must outlive the report for text/CSV */
    const qs_prog *prog;
    int32_t n_inferences;
    qs_arch arch;
    qs_tech tech;
    qs_layer_stats *layers;    /* summed over the inferences */
    int32_t *outputs;          /* n_inferences x out_count */
    int64_t out_count;
    int32_t **layer_outputs;   /* last inference, when kept */
    int64_t *layer_counts;
    int32_t *predictions;      /* argmax per inference; kept only when the run had inputs */
    int32_t n_correct, n_labelled;
    char *net_path, *config_path, *command_line;
    const char *engine;
    double wall_seconds;
    char *json;                /* network runs: the JSON text, made by the run */
    char *messages;            /* "warning: ...\n" lines, "" when none */
    /* topology runs */
    qs_topo_layer *topo_layers;
    int32_t topo_n, topo_gemm;
    int has_sscfg;
    qs_scalesim_cfg sscfg;
    qs_scalesim_opts ssopts;
    char *report_dir;          /* where qsim_report_write_scalesim writes (NULL: nowhere given) */
    qsim_rtl_stats rtl;        /* QSIM_ENGINE_RTL: what was compared */
};

static inline qsim_status fail(qsim_error *err, qsim_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline qsim_status fail(qsim_error *err, qsim_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qs_vfail((qs_error *)err, (qs_status)st, fmt, ap); /* qsim_error has qs_error's layout (api/qsim.c) */
    va_end(ap);
    return st;
}

/* A core call's error into the caller's (err may be NULL). */
static inline qsim_status pass(qsim_error *err, qs_status st, const qs_error *e)
{
    if (st != QS_OK && err) memcpy(err->msg, e->msg, sizeof err->msg);
    return (qsim_status)st;
}

static inline char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = qs_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Append one formatted line to a malloc'd message text (*text may be NULL);
 * returns 0, or 1 when out of memory. */
int qi_add_message(char **text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The core report views of a network run's report (pointers into r). */
void qi_report_view(const qsim_report *r, qs_report *out);

/* The buffer-bandwidth warning (docs/timing.md, "Buffer bandwidth") into
 * *text: after a run (cycles > 0) or for a compiled mapping (cycles 0). */
int qi_throttle_warning(const qs_net *net, const qs_prog *p, const qs_arch *a, uint64_t stall_buffer,
                               uint64_t cycles, char **text);

#endif
