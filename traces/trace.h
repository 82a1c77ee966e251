/* Waveform writer: FST (GTKWave's compressed format) or VCD (IEEE 1364 text).
 *
 * Used by the simulator and the RTL harnesses to dump per-cycle signals that
 * GTKWave opens directly (`gtkwave run.fst traces/accelerator.gtkw`).
 *
 * Life cycle of one dump:
 *
 *     qs_trace *t;  qs_error err;
 *     if (qs_trace_open("run.fst", qs_trace_format_for_path("run.fst"), "1ns", &t, &err)) ...
 *     qs_trace_scope_push(t, "qsim");
 *     qs_trace_scope_push(t, "queues");
 *     int32_t pc = qs_trace_var(t, "load_pc", 32);
 *     qs_trace_scope_pop(t);
 *     qs_trace_scope_pop(t);
 *     for (cycle...) { qs_trace_time(t, cycle); qs_trace_value(t, pc, x); }
 *     if (qs_trace_close(t, &err)) ...
 *
 * 1. Declare: scopes and variables, all before the first qs_trace_time() or
 *    qs_trace_value(); scopes still open then are closed automatically.
 * 2. Dump: qs_trace_time() moves time forward (never backwards);
 *    qs_trace_value() sets a variable's value at the current time (time 0 if
 *    qs_trace_time() was never called). Values are sampled per time step: if
 *    a variable is given several values at one time, the last one counts, and
 *    it is written only if it differs from the value the file already has
 *    for it (the first value of each variable is always written). So a file
 *    has at most one change per variable and time, and no zero-width pulses.
 *    Bits above the variable's width are ignored. A time step at which
 *    nothing changes writes nothing, except that the last time given is
 *    written on close so viewers show the whole run.
 * 3. qs_trace_close() finishes the file and reports every error of the dump.
 *
 * The void calls never fail loudly: a misuse (variable declared after the
 * first time step, time going backwards, bad width or name, unknown handle,
 * unbalanced scope pop) or an allocation failure is remembered, the call is
 * ignored, and qs_trace_close() returns the first such error (QS_ERR_ARG or
 * QS_ERR_NOMEM). Write errors (disk full, file size limit) are reported by
 * qs_trace_close() as QS_ERR_IO naming the path. All calls accept a NULL
 * qs_trace (and do nothing), so a disabled trace needs no checks at the call
 * sites. The library has no global state; one qs_trace must not be used from
 * two threads at once.
 *
 * Names (scopes and variables) are 1..255 printable ASCII characters without
 * spaces. Widths are 1..64 bits. */
#ifndef QS_TRACE_H
#define QS_TRACE_H

#include <stdint.h>

#include "qs_status.h"

typedef struct qs_trace qs_trace;

typedef enum { QS_TRACE_FST, QS_TRACE_VCD } qs_trace_format;

/* Creates (truncates) path and writes a dump in format fmt. timescale is the
 * unit of qs_trace_time(): "1ns", "10ps", "100 us" ... (1, 10 or 100 and one of
 * s ms us ns ps fs); NULL means "1ns". On failure *out is NULL and err names
 * the path: QS_ERR_IO (cannot create; for FST also: path exists and is not a
 * regular file), QS_ERR_ARG (bad timescale/format/NULL), QS_ERR_NOMEM. */
qs_status qs_trace_open(const char *path, qs_trace_format fmt, const char *timescale, qs_trace **out,
                        qs_error *err);

/* QS_TRACE_VCD for a path ending in ".vcd" (any case), else QS_TRACE_FST. */
qs_trace_format qs_trace_format_for_path(const char *path);

/* Enters / leaves a scope (a Verilog module in the viewer's hierarchy). */
void qs_trace_scope_push(qs_trace *t, const char *name);
void qs_trace_scope_pop(qs_trace *t);

/* Declares a bits-wide variable in the current scope. Returns its handle
 * (>= 0), or -1 after a misuse (then qs_trace_value ignores it). */
int32_t qs_trace_var(qs_trace *t, const char *name, int bits);

/* Sets the current time, in timescale units; t must not decrease. */
void qs_trace_time(qs_trace *t, uint64_t time);

/* Sets var = value at the current time (the last value given in a time step
 * is written when time moves on, and only if it changed). */
void qs_trace_value(qs_trace *t, int32_t var, uint64_t value);

/* Writes the end of the dump, closes the file and frees t (also on error).
 * Returns QS_OK, the first remembered misuse, or a write error. NULL t: QS_OK. */
qs_status qs_trace_close(qs_trace *t, qs_error *err);

#endif
