/* The MAC array, one clock at a time: the reference that the detailed engine
 * runs and that the Verilog in rtl/ is compared against on every clock.
 * The edge protocol and the per-PE rules are in docs/timing.md ("PE array").
 *
 * Output-stationary (OS): operands enter at the west (activations, one per
 * row) and north (weight slices, one per column) edges and move one PE per
 * clock east / south; PE(i,j) multiplies what it holds and adds into its own
 * accumulator. `clear` zeroes every accumulator (tile start).
 *
 * Weight-/input-stationary (WS/IS): `load` shifts the north inputs down into
 * the stationary registers (one row per clock); otherwise the west inputs
 * move east and each PE adds stationary*streaming into the partial sum that
 * moves south; column sums leave at the south edge.
 *
 * A product is x * y << (weight_path_bits * shift) where shift is the slice
 * index of whichever operand is the weight. With gating on, a product with a
 * zero operand is not added (counted as gated). Accumulator and partial-sum
 * additions wrap or saturate at acc_bits and count overflows. */
#ifndef QS_PE_ARRAY_H
#define QS_PE_ARRAY_H

#include <stdint.h>

#include "qs_arch.h"
#include "qs_status.h"

typedef struct qs_pe_array qs_pe_array;

typedef struct {
    int32_t rows, cols;
    qs_dataflow dataflow;
    int32_t weight_path_bits;
    int32_t acc_bits;
    qs_overflow overflow;
    int32_t gate;            /* 1: zero-operand products are gated */
    int32_t lookahead;       /* OS: H > 0 moves a window of H + 1 activations per row east and
                              * each weight slice selects one of them (docs/timing.md
                              * "Lookahead weight skipping"); 0: one activation per row */
} qs_pe_array_cfg;

/* One clock's edge inputs. Arrays are rows long (west) or cols long (north);
 * with lookahead H > 0 (OS) west and west_valid are rows * (H + 1) long, the
 * window of row i at [i * (H + 1), (i + 1) * (H + 1)). */
typedef struct {
    const int32_t *west;         /* OS: activation; WS: activation; IS: weight slice */
    const uint8_t *west_valid;
    const uint8_t *west_shift;   /* IS: slice index of the weight; else 0 */
    const int32_t *north;        /* OS: weight slice; WS/IS: value to load */
    const uint8_t *north_valid;  /* OS: weight valid; WS/IS load: the loaded value is real */
    const uint8_t *north_shift;  /* OS/WS: slice index of the weight */
    uint8_t clear;               /* OS: zero all accumulators before this clock */
    uint8_t load;                /* WS/IS: this clock shifts north values down */
    const uint8_t *north_offset; /* OS lookahead: window entry the weight slice multiplies; NULL: 0 */
} qs_pe_in;

/* What one clock did. south/south_valid are cols long (WS/IS). */
typedef struct {
    int32_t *south;
    uint8_t *south_valid;
    uint32_t active;     /* PEs that added a product */
    uint32_t gated;      /* PEs with valid operands whose product was gated */
    uint32_t overflows;  /* additions that overflowed */
} qs_pe_out;

qs_status qs_pe_array_create(const qs_pe_array_cfg *cfg, qs_pe_array **out, qs_error *err);
void qs_pe_array_destroy(qs_pe_array *a);
/* Zero every register (power-on reset). */
void qs_pe_array_reset(qs_pe_array *a);
/* Advance one clock. `out` may be NULL. Allocates nothing. */
void qs_pe_array_tick(qs_pe_array *a, const qs_pe_in *in, qs_pe_out *out);
/* OS: accumulator of PE(i,j). WS/IS: the partial sum PE(i,j) sent south at
 * the last clock (the stationary value has its own accessor). */
int32_t qs_pe_array_acc(const qs_pe_array *a, int32_t i, int32_t j);
int32_t qs_pe_array_stationary(const qs_pe_array *a, int32_t i, int32_t j);
/* WS/IS: the valid bit of PE(i,j)'s partial-sum register; OS: 0. */
int32_t qs_pe_array_acc_valid(const qs_pe_array *a, int32_t i, int32_t j);
/* Every PE's qs_pe_array_acc, _acc_valid and _stationary at once, row-major
 * (rows*cols each; any pointer may be NULL): one pass for a per-clock
 * comparison of the whole array (sim/rtl_cosim.c). */
void qs_pe_array_observe(const qs_pe_array *a, int32_t *acc, uint8_t *acc_valid, int32_t *stat);
/* The configuration the array was created with. */
const qs_pe_array_cfg *qs_pe_array_config(const qs_pe_array *a);

/* Add b to a in a `bits`-wide two's-complement accumulator, wrapping or
 * saturating; *ovf is set to 1 when the exact sum is out of range. */
static inline int32_t qs_acc_add(int32_t a, int64_t b, int bits, qs_overflow mode, int *ovf)
{
    int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    int64_t s = (int64_t)a + b;
    if (s >= lo && s <= hi) return (int32_t)s;
    *ovf = 1;
    if (mode == QS_OVF_SATURATE) return (int32_t)(s < lo ? lo : hi);
    uint64_t m = ((uint64_t)1 << bits) - 1;
    uint64_t u = (uint64_t)s & m;
    if (u & ((uint64_t)1 << (bits - 1))) return (int32_t)((int64_t)u - ((int64_t)1 << bits));
    return (int32_t)u;
}

#endif
