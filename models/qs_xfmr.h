/* Integer transformer operators of .qbin format version 2 (docs/qbin.md,
 * "Version 2: transformer layers"): lut, mul, softmax, layernorm, rmsnorm,
 * matmul of two activations, reshape. The C side of the contract; the NumPy
 * reference (scripts/qsim_qbin.py) implements the same document separately. */
#ifndef QS_XFMR_H
#define QS_XFMR_H

#include <stdint.h>

#include "qs_net.h"

/* Fraction bits of a normalized value (layernorm/rmsnorm): z = d / sigma * 2^16. */
#define QS_NORM_FRAC_BITS 16
/* Longest row a norm may reduce (keeps |z| * 2^16 below 2^24, docs/qbin.md). */
#define QS_NORM_MAX_ROW 16384
/* Widest input of a table lookup or a softmax (the table has 2^bits entries). */
#define QS_TABLE_MAX_BITS 8
/* Largest entry of a softmax exponent table (16 bits unsigned). */
#define QS_SOFTMAX_TABLE_MAX 65535

/* SOFTMAX's param (docs/qbin.md, SOFTMAX): bits 0-3 the axis, bit 4 the causal
 * mask, bits 5-7 zero, bits 8-30 the mask's offset: along axis 2 the line
 * (c, h) keeps elements w <= h + offset, along axis 1 the line (c, w) keeps
 * h <= w + offset; the others are masked out (excluded from max and sum,
 * output 0). */
#define QS_SOFTMAX_AXIS(param) ((param) & 15)
#define QS_SOFTMAX_CAUSAL_BIT 16
#define QS_SOFTMAX_OFFSET_SHIFT 8
#define QS_SOFTMAX_IS_CAUSAL(param) (((param) & QS_SOFTMAX_CAUSAL_BIT) != 0)
#define QS_SOFTMAX_OFFSET(param) ((param) >> QS_SOFTMAX_OFFSET_SHIFT)

/* MUL's param: 0 the element-wise product; QS_MUL_ROWMAX multiplies each
 * element of input 1 by the absmax over channels of input 2 at the same
 * position (re-applies a DYNQUANT's per-token scale). */
#define QS_MUL_ROWMAX 1

/* ROPE's param: bits 0-15 the head size dh (even), bits 16-30 the position
 * of token 0 (a decode step's offset); weight = table [P][dh/2][2] of
 * round(2^14 cos), round(2^14 sin), P >= tokens + offset. */
#define QS_ROPE_HEAD_DIM(param) ((param) & 0xffff)
#define QS_ROPE_OFFSET(param) ((param) >> 16)
#define QS_ROPE_FRAC_BITS 14

/* The smallest vocabulary (table rows) of the network's EMBED layers, and in
 * *layer the EMBED layer that has it; 0 (and *layer -1) without one. Every
 * token id of the input must be below it (checked when the input is set). */
int64_t qs_xfmr_vocab(const qs_net *net, int32_t *layer);

/* floor(sqrt(n)), exactly (Newton's iteration of docs/qbin.md). */
uint64_t qs_isqrt_u64(uint64_t n);

/* One norm row a[i * stride], i < n, with zero point za: its rounded mean
 * (0 for RMSNORM), sigma = isqrt(floor(V 4^g / n)) and the scale exponent g
 * (docs/qbin.md, LAYERNORM). */
typedef struct {
    int64_t mean, sigma;
    int g;
} qs_norm_stats;
qs_norm_stats qs_norm_stats_of(int is_layernorm, const int32_t *a, int32_t za, int32_t n, int64_t stride);
/* z = round((x - mean) 2^(16+g) / sigma), half away from zero; 0 when sigma = 0. */
int64_t qs_norm_value(const qs_norm_stats *st, int32_t x);

/* MATMUL's param: bit 0 op(A) = A^T, bit 1 op(B) = B^T, bit 2 grouped
 * (grouped-query attention): one operand has g times the other's matrices;
 * the output has the larger batch and its matrix b reads the smaller operand's
 * matrix floor(b / g) (B = the keys in Q K^T, A = the values in V^T P^T). */
#define QS_MATMUL_TRANS_A 1
#define QS_MATMUL_TRANS_B 2
#define QS_MATMUL_GROUPED 4

/* Shape of a MATMUL layer: batch (the output's matrices), rows of op(A),
 * columns of op(B), reduction, and per operand how many consecutive output
 * matrices share one of its matrices (group_a = batch / A's batch, group_b
 * likewise; both 1 unless grouped). */
typedef struct {
    int32_t batch, M, N, K, trans_a, trans_b, group_a, group_b;
} qs_matmul_dims;
qs_matmul_dims qs_matmul_dims_of(const qs_net *net, int32_t layer);

/* op(A)[b / group_a][m][k] and op(B)[b / group_b][k][n] as stored values (zero
 * points not removed), b the output's matrix. */
static inline int32_t qs_matmul_a(const qs_layer *A, const int32_t *a, const qs_matmul_dims *d, int32_t b,
                                  int32_t m, int32_t k)
{
    int64_t base = (int64_t)(b / d->group_a) * A->out_h * A->out_w;
    return d->trans_a ? a[base + (int64_t)k * A->out_w + m] : a[base + (int64_t)m * A->out_w + k];
}
static inline int32_t qs_matmul_b(const qs_layer *B, const int32_t *bv, const qs_matmul_dims *d, int32_t b,
                                  int32_t k, int32_t n)
{
    int64_t base = (int64_t)(b / d->group_b) * B->out_h * B->out_w;
    return d->trans_b ? bv[base + (int64_t)n * B->out_w + k] : bv[base + (int64_t)k * B->out_w + n];
}

/* Does the post-processing unit walk this layer by rows of its own rather
 * than by channels? Norms, DYNQUANT, ROPE, the row-absmax MUL and softmax
 * over axis 0: a row is a position (h, w) with all its channels; softmax over axis 2: a row is one line
 * (c, h) of W elements. Sets *units (rows) and *elems (elements per row). */
int qs_xfmr_rows(const qs_layer *L, int64_t *units, int64_t *elems);

/* Post-process units [u0, u1) (channels, or the rows of qs_xfmr_rows) of a
 * LUT, MUL, SOFTMAX, LAYERNORM, RMSNORM, DYNQUANT or ROPE
 * layer from its inputs' outputs (CHW int32, indexed by layer) into out.
 * Returns the element operations it costs (docs/timing.md, "Post-processing"). */
int64_t qs_xfmr_ppu(const qs_net *net, int32_t layer, const int32_t *const *outputs, int32_t *out, int32_t u0,
                    int32_t u1);

/* Post-processing element operations per output element / per row that do
 * not depend on the data (docs/timing.md): a norm row also pays
 * QS_PPU_SQRT_OPS for its square root and reciprocal. */
#define QS_PPU_SQRT_OPS 32

/* ---- decoding with a KV cache (docs/decode.md) ------------------------------ */

/* The role of one axis (C, H, W) of a layer's output in a decode step:
 * fixed extent, the new tokens (extent T_new), or the keys (cached + new). */
enum { QS_ROLE_FIXED = 0, QS_ROLE_TOKENS = 1, QS_ROLE_KEYS = 2 };

/* Derives the role of every axis of every layer by the rule of
 * docs/decode.md ("The step graph"); roles[li][axis]. A network that cannot
 * run in decode steps is refused naming `where` and the layer. */
qs_status qs_decode_roles(const qs_net *net, const char *where, uint8_t (*roles)[3], qs_error *err);

/* The number of KVCACHE layers of net. */
int32_t qs_decode_n_caches(const qs_net *net);

/* The step network for `tokens` new tokens after `past` cached ones: the
 * same layers with every TOKENS axis of extent `tokens`, every KEYS axis of
 * past + tokens, causal softmax and rope offsets advanced by past, and each
 * KVCACHE's cached rows (its output of the step before: C x H x past, in the
 * order of the KVCACHE layers) as its weight tensor. Tensor data and
 * requantization arrays are shared with net and caches (both must outlive
 * the step); free with qs_decode_step_free. A cache longer than its layer's
 * maximum (past + tokens > param) or a rope table too short is refused
 * naming `where` and the layer. */
qs_status qs_decode_step_net(const qs_net *net, const char *where, const uint8_t (*roles)[3], int32_t past,
                             int32_t tokens, const int32_t *const *caches, qs_net **out, qs_error *err);
void qs_decode_step_free(qs_net *step);

#endif
