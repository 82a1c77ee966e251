/* RTL co-simulation of the user's design point (docs/waveforms.md, "RTL
 * co-simulation"): for each PE-array configuration the detailed engine
 * ticks, rtl/qs_pe_array.v is verilated with those parameters and compiled
 * with rtl/driver/qs_rtl_driver.cpp into a shared object, cached by content
 * hash, loaded with dlopen and driven in lockstep with qs_pe_array through
 * the simulator's array hook (array_hook.h): every clock, every PE's
 * accumulator / partial sum, valid bit and stationary, the south edge and
 * the event counts are compared. qsim itself needs no Verilator: only a run
 * that co-simulates a configuration not yet in the cache runs it. */
#ifndef QS_RTL_COSIM_H
#define QS_RTL_COSIM_H

#include <stdint.h>

#include "array_hook.h"
#include "qs_status.h"

typedef struct qs_rtl_cosim qs_rtl_cosim;

typedef struct {
    int32_t max_act_bits, max_weight_bits;  /* the configuration's ([array]): the RTL's operand widths */
    const char *cache_dir;      /* NULL: $QSIM_RTL_CACHE, else $XDG_CACHE_HOME/qsim/rtl, else ~/.cache/qsim/rtl */
    const char *layer;          /* window: only this layer (NULL: every layer) */
    int64_t tile_from, tile_to; /* window: tiles [from, to] of each co-simulated layer (0, INT64_MAX: all) */
    const char *fst;            /* the RTL's own signals, or NULL */
    uint64_t fst_from, fst_to;  /* cycles of the simulator the FST covers; time 0 = fst_from */
    const char *repro;          /* command line that reran this run without a window (for the mismatch message) */
    /* progress notes ("building the RTL for ..."); NULL: none */
    void (*note)(void *user, const char *msg);
    void *note_user;
} qs_rtl_cosim_opts;

typedef struct {
    uint64_t clocks;            /* clocks compared */
    uint64_t values;            /* values compared (PE registers, edge outputs, counts) */
    uint64_t tiles;             /* tiles co-simulated */
    int32_t models;             /* distinct PE-array configurations co-simulated */
    int32_t built;              /* of them, built by this run (the rest came from the cache) */
    double build_seconds;       /* time spent building */
} qs_rtl_cosim_stats;

/* Finds the RTL sources ($QSIM_RTL_DIR or the source tree qsim was built
 * from) and verilator ($QSIM_VERILATOR or PATH); fails with a clear message
 * when either is missing. */
qs_status qs_rtl_cosim_create(const qs_rtl_cosim_opts *opts, qs_rtl_cosim **out, qs_error *err);
const qs_array_hook *qs_rtl_cosim_hook(qs_rtl_cosim *r);
/* After the run: waits until every clock handed over has been compared
 * (the comparison runs on a thread of its own, up to a few hundred clocks
 * behind the simulator; QSIM_RTL_THREADS=1 compares on the caller's) and
 * returns the first mismatch, if any. The stats are complete after it. */
qs_status qs_rtl_cosim_finish(qs_rtl_cosim *r, qs_error *err);
/* (waits until the clocks handed over are compared, or skipped after a
 * mismatch) */
void qs_rtl_cosim_stats_get(qs_rtl_cosim *r, qs_rtl_cosim_stats *out);
/* Closes the FST. */
void qs_rtl_cosim_destroy(qs_rtl_cosim *r);

/* Build (or find in the cache) the model for one configuration without a
 * run; *dir gets its cache folder (static storage until the next call).
 * For benchmarks and tests. */
qs_status qs_rtl_cosim_prepare(qs_rtl_cosim *r, const qs_pe_array_cfg *cfg, const char **dir, qs_error *err);

#endif
