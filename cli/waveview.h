/* GTKWave save file for one traced run (docs/waveforms.md). */
#ifndef QSIM_WAVEVIEW_H
#define QSIM_WAVEVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "qs_net.h"
#include "qs_status.h"

/* Writes, beside the dump DUMP.fst / DUMP.vcd, DUMP.gtkw (the view of
 * traces/accelerator.gtkw naming this dump, opened on cycles from..to) and
 * DUMP.layers.txt (GTKWave translate file: layer index -> name, so
 * qsim.array.layer shows names). per_clock_overflows: the engine traces
 * qsim.array.overflows (detailed); without it the view leaves the signal out.
 * view_path gets the .gtkw path. */
qs_status qs_write_wave_view(const char *dump_path, const qs_net *net, int per_clock_overflows, uint64_t from,
                             uint64_t to, char *view_path, size_t view_path_size, qs_error *err);

#endif
