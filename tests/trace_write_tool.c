/* Writes a waveform with the simulator's trace signals (traces/accelerator.gtkw)
 * plus two self-test variables, through qs_trace (format by extension), and a
 * plain-text log of every call so a checker can rebuild the expected waveform.
 *
 *   trace_write_tool OUT.fst|OUT.vcd LOG.txt [CYCLES]
 *
 * LOG lines:  var FULL.NAME BITS  |  val TIME FULL.NAME VALUE  |  end TIME
 * (VALUE as given to qs_trace_value, decimal, possibly wider than BITS; a
 * variable may get several values at one time: the last one counts).
 * Used by tests/test_trace_fst.py. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "trace.h"

typedef struct {
    const char *scope, *name;
    int bits;
} sig;

static const sig SIGS[] = {
    {"queues", "load_pc", 32},       {"queues", "compute_pc", 32},  {"queues", "store_pc", 32},
    {"queues", "load_busy", 1},      {"queues", "compute_busy", 1}, {"queues", "store_busy", 1},
    {"queues", "tok_ld_cmp", 8},     {"queues", "tok_cmp_ld", 8},   {"queues", "tok_cmp_st", 8},
    {"queues", "tok_st_cmp", 8},     {"queues", "tok_st_ld", 8},    {"dma", "dram_busy", 1},
    {"dma", "dram_bytes_in_flight", 32}, {"array", "layer", 16},    {"array", "active_pes", 32},
    {"array", "gated_pes", 32},      {"array", "idle_pes", 32},     {"array", "overflows", 32},
    {"ppu", "busy", 1},              {"selftest", "wide", 64},      {"selftest", "masked", 4},
};
#define NSIGS ((int)(sizeof SIGS / sizeof SIGS[0]))

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUT.fst|OUT.vcd LOG.txt [CYCLES]\n", argv[0]);
        return 2;
    }
    uint64_t cycles = argc > 3 ? strtoull(argv[3], NULL, 10) : 200;
    FILE *log = fopen(argv[2], "w");
    if (!log) {
        perror(argv[2]);
        return 1;
    }
    qs_trace *t;
    qs_error err;
    if (qs_trace_open(argv[1], qs_trace_format_for_path(argv[1]), "1ns", &t, &err) != QS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t h[NSIGS];
    qs_trace_scope_push(t, "qsim");
    for (int i = 0; i < NSIGS; i++) {
        if (i == 0 || SIGS[i].scope != SIGS[i - 1].scope) {
            if (i) qs_trace_scope_pop(t);
            qs_trace_scope_push(t, SIGS[i].scope);
        }
        h[i] = qs_trace_var(t, SIGS[i].name, SIGS[i].bits);
        fprintf(log, "var qsim.%s.%s %d\n", SIGS[i].scope, SIGS[i].name, SIGS[i].bits);
    }
    qs_trace_scope_pop(t);
    qs_trace_scope_pop(t);

    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (uint64_t c = 0; c < cycles; c++) {
        uint64_t time = c * 10; /* 10 ns per cycle */
        qs_trace_time(t, time);
        for (int i = 0; i < NSIGS; i++) {
            uint64_t r = xorshift(&seed), v;
            if (SIGS[i].bits == 64)
                v = r;                        /* full width, changes every cycle */
            else if (SIGS[i].bits == 4)
                v = (c / 3) * 7;              /* exceeds 4 bits: the writer masks it */
            else if (SIGS[i].bits == 1)
                v = (r >> 60) < 6;            /* mostly steady */
            else if (c % 4 == 0)
                v = r % 1000;                 /* changes every 4th cycle at most */
            else
                continue;                     /* no call: the old value holds */
            if (SIGS[i].bits == 1 && c % 5 == 2) { /* a pulse inside one step: must not show */
                qs_trace_value(t, h[i], !v);
                fprintf(log, "val %" PRIu64 " qsim.%s.%s %d\n", time, SIGS[i].scope, SIGS[i].name, !v);
            }
            qs_trace_value(t, h[i], v);
            fprintf(log, "val %" PRIu64 " qsim.%s.%s %" PRIu64 "\n", time, SIGS[i].scope, SIGS[i].name, v);
        }
    }
    uint64_t end = cycles * 10;
    qs_trace_time(t, end);
    fprintf(log, "end %" PRIu64 "\n", end);
    if (fclose(log) != 0) {
        perror(argv[2]);
        return 1;
    }
    if (qs_trace_close(t, &err) != QS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}
