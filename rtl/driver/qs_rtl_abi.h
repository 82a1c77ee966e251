/* The C interface between qsim and a Verilated PE array built for one
 * parameter set (qs_rtl_driver.cpp, compiled at run time into a shared
 * object by sim/rtl_cosim.c and loaded with dlopen). Plain C types only, so
 * qsim needs neither Verilator nor C++ to use it. Bump QS_RTL_ABI whenever
 * anything here changes: the cache key includes this file, and a loaded
 * object with another number is refused. */
#ifndef QS_RTL_ABI_H
#define QS_RTL_ABI_H

#include <stddef.h>
#include <stdint.h>

#define QS_RTL_ABI 2

/* The RTL parameters of rtl/qs_pe_array.v (rtl/README.md, "Parameters"). */
typedef struct {
    int32_t rows, cols, dataflow;   /* dataflow: 0 WS, 1 OS, 2 IS */
    int32_t west_w, north_w;        /* operand widths incl. sign */
    int32_t wpb, shift_w, acc_w, saturate, gate, lookahead, off_w;
} qs_rtl_params;

typedef struct qs_rtl qs_rtl;

typedef struct {
    int32_t abi;                    /* QS_RTL_ABI */
    qs_rtl_params params;           /* what the model was built with */
    /* fst: NULL, or a file for the RTL's own signals (time unit 1 ps, one
     * clock = 1000 ps). On failure NULL with a message in msg. */
    qs_rtl *(*open)(const char *fst, char *msg, size_t msg_len);
    void (*close)(qs_rtl *r);
    /* Synchronous reset (one clock with rst, not dumped). */
    void (*reset)(qs_rtl *r);
    /* One clock: set the edge inputs (lanes as qs_pe_in, already known to
     * fit the port widths), a falling and a rising edge. dump_time: the
     * rising edge's time in the FST (ps), or UINT64_MAX: not dumped. */
    void (*tick)(qs_rtl *r, const int32_t *west, const uint8_t *west_valid, const uint8_t *west_shift,
                 const int32_t *north, const uint8_t *north_valid, const uint8_t *north_shift,
                 const uint8_t *north_offset, int clear, int load, uint64_t dump_time);
    /* Where the outputs are (the model's own output arrays, built with
     * OBS=1: valid while r is open, updated by every tick): rows*cols
     * accumulators / partial sums, their valid bits and stationaries
     * (row-major, values sign-extended to 32 bits), cols south values and
     * valids. OS ties the valids, stationaries and south edge to 0. */
    void (*view)(qs_rtl *r, const int32_t **acc, const uint8_t **acc_valid, const int32_t **stat,
                 const int32_t **south, const uint8_t **south_valid);
    /* The event counts of the last clock: active, gated, overflows. */
    void (*counts)(qs_rtl *r, uint32_t counts[3]);
} qs_rtl_api;

/* The one symbol the shared object exports. */
typedef const qs_rtl_api *(*qs_rtl_entry_fn)(void);
#define QS_RTL_ENTRY "qs_rtl_entry"

#endif
