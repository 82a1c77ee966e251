/* A compiled program: the instruction stream plus, per layer, the mapping
 * the compiler chose (GEMM view, tile sizes, loop order, compressed index
 * lists, folded biases). Produced by compiler/, consumed by sim/; it lives in
 * models/ because both sides must agree on it (like the ISA). */
#ifndef QS_PROG_H
#define QS_PROG_H

#include <stdint.h>

#include "qs_arch.h"
#include "qs_isa.h"
#include "qs_net.h"
#include "qs_status.h"

/* The GEMM view of a conv/fc layer, per group: out[m][n] = sum_k a[m][k] w[k][n]
 * with m = output pixel (oy*OW+ox), n = output channel within the group,
 * k = (c*KH + ky)*KW + kx with c the input channel within the group. */
typedef struct {
    int32_t M, N, K, groups;
} qs_gemm_dims;

typedef enum { QS_ORDER_N_OUTER = 0, QS_ORDER_M_OUTER = 1 } qs_loop_order;

typedef struct {
    int32_t layer;
    int32_t is_gemm;          /* conv/fc on the array; else post-processing only */
    int32_t is_matmul;        /* matmul of two activations on the array (g: M, N, K, groups = batch;
                               * weight_* describe op(B)'s centered values, slices their slices) */
    qs_gemm_dims g;
    int32_t weight_bits, weight_signed, weight_bipolar, act_bits, act_signed;
    int32_t slices;           /* weight slices on the weight path */
    int32_t tm, tn, tk;       /* buffer tile: rows, cols, reduction (list positions) */
    qs_loop_order order;
    int32_t ifmap_resident, weight_resident;
    /* Compressed index lists. OS/WS: per (group, n-block of array cols), the k
     * indices whose weights are not all zero in that block (all k when weight
     * skipping is off). IS: per (group, k-block of array rows), the n indices
     * likewise. list_off has n_lists+1 entries into list. */
    int32_t n_lists, blocks_per_group;
    int32_t *list_off;
    int32_t *list;
    /* Per output channel (group-major, Cout entries): bias - za * sum_k w,
     * the input zero point folded in so the array multiplies raw values. */
    int32_t *bias_folded;
    /* Slice s of a weight is qs_weight_slice() of its value in the network's
     * weight tensor: the program holds no copy of the weights (an engine that
     * wants them sliced in bulk builds them for one layer at a time). */
    /* Static bound: 1 when no ordering of the adds can overflow acc_bits, so
     * engines may sum in any order (see docs/timing.md, "Accumulator"). */
    int32_t overflow_free;
    /* DRAM traffic the compiler planned, bytes */
    int64_t dram_ifmap, dram_weight, dram_out;
    uint32_t out_addr;        /* DRAM address of the layer's output */
    uint32_t weight_addr;     /* conv/fc: DRAM address of the weight image (docs/compiler.md) */
    int64_t weight_bytes;     /* its size */
    int32_t first_insn, n_insn;
} qs_layer_map;

typedef struct {
    qs_arch arch;
    int32_t n_insn;
    qs_insn *insn;
    int32_t n_layers;
    qs_layer_map *maps;      /* one per network layer (input too) */
    uint32_t dram_bytes;     /* DRAM footprint */
    int32_t init_slots;      /* initial compute->load tokens (input buffer slots) */
    int32_t init_accum;      /* initial store->compute tokens (accumulator slots) */
} qs_prog;

void qs_prog_destroy(qs_prog *p);

/* Write the program (header, instructions, per-layer summary) to a .qprog file
 * (docs/isa.md, "Program file"). */
qs_status qs_prog_save(const qs_prog *p, const char *path, qs_error *err);

/* Weight slices. Slice s (0 = least significant) of a weight w of a layer
 * mapped as m on a path_bits-wide weight path is (w >> shift) & mask: the
 * slices, each shifted left by path_bits * s, add up to w. Low slices are
 * unsigned path_bits-bit fields; the top slice of a signed weight keeps the
 * sign (arithmetic shift, mask -1); a weight that takes one slice (bipolar
 * too) is its own slice. A slice fits int16: it is at most 8 bits wide, or
 * a whole weight of at most 16 bits. Loops over many weights take the field
 * once per slice (qs_slice_field_of) so that they vectorize. */
typedef struct {
    int32_t shift, mask;
} qs_slice_field;

static inline qs_slice_field qs_slice_field_of(const qs_layer_map *m, int32_t path_bits, int32_t s)
{
    qs_slice_field f = {path_bits * s, (1 << path_bits) - 1};
    if (m->slices == 1) f.shift = 0;
    if (m->slices == 1 || (m->weight_signed && s == m->slices - 1)) f.mask = -1;
    return f;
}

/* >> of a negative value is arithmetic on every compiler we target */
static inline int32_t qs_slice_of(qs_slice_field f, int32_t w) { return (w >> f.shift) & f.mask; }

static inline int32_t qs_weight_slice(const qs_layer_map *m, int32_t path_bits, int32_t w, int32_t s)
{
    return qs_slice_of(qs_slice_field_of(m, path_bits, s), w);
}

/* GEMM view of a conv/fc layer (zeroes for other kinds). */
qs_gemm_dims qs_gemm_dims_of(const qs_net *net, int32_t layer);

/* Activation a[m][k] of group g for a conv/fc layer, reading the input layer's
 * output tensor `in` (CHW, int32). Padding returns pad_value. */
static inline int32_t qs_gemm_act(const qs_layer *L, const qs_layer *IN, const int32_t *in,
                                  int32_t g, int32_t m, int32_t k, int32_t pad_value)
{
    if (L->kind == QS_L_FC) return in[k];
    int32_t khw = L->kh * L->kw;
    int32_t cg = IN->out_c / L->groups;
    int32_t c = k / khw, r = k % khw, ky = r / L->kw, kx = r % L->kw;
    int32_t oy = m / L->out_w, ox = m % L->out_w;
    int32_t iy = oy * L->stride_h - L->pad_t + ky * L->dil_h;
    int32_t ix = ox * L->stride_w - L->pad_l + kx * L->dil_w;
    if (iy < 0 || ix < 0 || iy >= IN->out_h || ix >= IN->out_w) return pad_value;
    return in[((size_t)(g * cg + c) * IN->out_h + iy) * IN->out_w + ix];
}

#endif
