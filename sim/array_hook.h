/* A per-clock observer of the detailed engine's PE arrays (for RTL
 * co-simulation, sim/rtl_cosim.c; docs/waveforms.md "RTL co-simulation").
 *
 * The simulator knows nothing about what observes it: it tells the hook
 * which GEMM layers it is about to run and which array tile starts on which
 * qs_pe_array, and, for the tiles the hook follows, hands it every clock's
 * edge inputs and outputs right after qs_pe_array_tick(). A hook status other
 * than QS_OK stops the run with the hook's message. */
#ifndef QS_ARRAY_HOOK_H
#define QS_ARRAY_HOOK_H

#include <stdint.h>

#include "pe_array.h"
#include "qs_status.h"

/* Where an array tile is: layer, the GEMM instruction and its tile. */
typedef struct {
    int32_t layer;            /* network layer index */
    const char *layer_name;
    int32_t insn;             /* index of the GEMM instruction in the program */
    int64_t tile;             /* index of this tile among the layer's array tiles (0, 1, ...) */
    uint32_t m0, n0, k0;      /* the tile's first output row / column and reduction index */
    int32_t group;            /* OS: lockstep row group of the tile; else 0 */
} qs_array_tile_info;

typedef struct {
    void *user;
    /* A GEMM instruction of `layer` is about to run: return 1 to run it on the
     * detailed engine (a fast-engine simulator then switches for it). */
    int (*wants_layer)(void *user, int32_t layer, const char *name);
    /* A tile starts on `pa` (configuration `cfg`), which has just been reset;
     * set *follow to 1 to receive its clocks. */
    qs_status (*tile_begin)(void *user, const qs_array_tile_info *tile, const qs_pe_array_cfg *cfg, int *follow,
                            qs_error *err);
    /* One clock of a followed tile, after qs_pe_array_tick(pa, in, out);
     * cycle is the simulator's cycle of that clock. */
    qs_status (*tick)(void *user, uint64_t cycle, const qs_pe_in *in, const qs_pe_out *out, const qs_pe_array *pa,
                      qs_error *err);
} qs_array_hook;

#endif
