/* MatMul of two activations on the MAC array (docs/timing.md, "MatMul of two
 * activations"). op(A) streams on the activation path, op(B) on the weight
 * path in slices, exactly like a GEMM whose weights arrive at run time: the
 * compiler cannot compress them, so zero skipping of either operand is decided
 * here, from the values, as the operand feeders would. Both engines use this
 * step-level schedule; values are summed whole product by whole product in
 * k order in acc_bits (docs/qbin.md, MATMUL). */
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "qs_xfmr.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

static int skip_acts(const qs_arch *a) { return a->zero_skip == QS_SKIP_ACTIVATIONS || a->zero_skip == QS_SKIP_BOTH; }
static int skip_wts(const qs_arch *a) { return a->zero_skip == QS_SKIP_WEIGHTS || a->zero_skip == QS_SKIP_BOTH; }
static int gates(const qs_arch *a) { return a->zero_skip != QS_SKIP_NONE; }

typedef struct {
    const qs_arch *a;
    const qs_layer_map *m;
    int32_t mlen, nlen, K, S, p, rate;
    const int32_t *A;  /* centered op(A) of the instruction's rows: A[i*K + k] */
    const int32_t *B;  /* centered op(B) of its columns: B[k*nlen + j] */
    qs_tile_result *r;
} mm_view;

/* Slice operations of the products A[i][k] x slices of B[k][j], i in rows, j in
 * cols, that reach PEs: gated when an operand (slice) is zero and gating is on. */
static void count_ops(const mm_view *v, int32_t i0, int32_t iu, int32_t k, int32_t j0, int32_t ju)
{
    uint64_t ops = 0, gated = 0;
    for (int32_t s = 0; s < v->S; s++) {
        qs_slice_field f = qs_slice_field_of(v->m, v->p, s);
        for (int32_t j = j0; j < j0 + ju; j++) {
            int bz = qs_slice_of(f, v->B[(size_t)k * v->nlen + j]) == 0;
            for (int32_t i = i0; i < i0 + iu; i++) {
                if (gates(v->a) && (bz || v->A[(size_t)i * v->K + k] == 0)) gated++;
                else ops++;
            }
        }
    }
    v->r->ev.mac_ops += ops;
    v->r->ev.mac_gated += gated;
}

static int row_nonzero(const mm_view *v, int32_t i0, int32_t iu, int32_t k)
{
    for (int32_t i = i0; i < i0 + iu; i++)
        if (v->A[(size_t)i * v->K + k]) return 1;
    return 0;
}

static int col_nonzero(const mm_view *v, int32_t k, int32_t j0, int32_t ju)
{
    for (int32_t j = j0; j < j0 + ju; j++)
        if (v->B[(size_t)k * v->nlen + j]) return 1;
    return 0;
}

/* OS: array tile = R output rows x C output columns, all K steps; rows move
 * in lockstep groups of G; a step survives in a group unless its A values
 * there (activation skipping) or its B values across the tile (weight
 * skipping) are all zero. */
static uint64_t run_os(const mm_view *v)
{
    const qs_arch *a = v->a;
    const int32_t R = a->rows, C = a->cols, G = min32(a->skip_group, a->rows);
    uint64_t t = 0;
    for (int32_t r0 = 0; r0 < v->mlen; r0 += R) {
        int32_t ru = min32(R, v->mlen - r0);
        for (int32_t c0 = 0; c0 < v->nlen; c0 += C) {
            int32_t cu = min32(C, v->nlen - c0);
            int64_t tmax = 0, tmax1 = 0;
            for (int32_t g0 = r0; g0 < r0 + ru; g0 += G) {
                int32_t gu = min32(G, r0 + ru - g0);
                int64_t L = 0;
                for (int32_t k = 0; k < v->K; k++) {
                    if (skip_acts(a) && !row_nonzero(v, g0, gu, k)) continue;
                    if (skip_wts(a) && !col_nonzero(v, k, c0, cu)) continue;
                    L++;
                    count_ops(v, g0, gu, k, c0, cu);
                }
                int64_t T = L ? (L * v->S - 1) * v->rate + gu + cu - 1 : 0;
                int64_t T1 = L ? (L * v->S - 1) + gu + cu - 1 : 0;
                if (T > tmax) tmax = T;
                if (T1 > tmax1) tmax1 = T1;
                v->r->ev.macs_executed += (uint64_t)(L * gu * cu);
                v->r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div(L * gu * v->m->act_bits, 8);
                v->r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div(L * v->S * cu * v->p, 8);
            }
            t += (uint64_t)(tmax + ru);
            v->r->buffer_stall += (uint64_t)(tmax - tmax1);
            v->r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)ru * cu * 4;
        }
    }
    return t;
}

/* WS: op(B) stationary. Per n-block of C columns, the k steps kept (weight
 * skipping: those with a non-zero B value in the block) in blocks of R rows;
 * per slice: preload ku clocks, then stream the rows of op(A) that are not
 * all zero on the block's k (activation skipping). */
static uint64_t run_ws(const mm_view *v, int32_t *klist)
{
    const qs_arch *a = v->a;
    const int32_t R = a->rows, C = a->cols;
    uint64_t t = 0;
    for (int32_t c0 = 0; c0 < v->nlen; c0 += C) {
        int32_t cu = min32(C, v->nlen - c0), kl = 0;
        for (int32_t k = 0; k < v->K; k++)
            if (!skip_wts(a) || col_nonzero(v, k, c0, cu)) klist[kl++] = k;
        for (int32_t kb = 0; kb < kl; kb += R) {
            int32_t ku = min32(R, kl - kb);
            for (int32_t s = 0; s < v->S; s++) {
                /* slice ops of the pass: rows kept x ku x cu, gated by operand */
                int64_t L = 0;
                qs_slice_field f = qs_slice_field_of(v->m, v->p, s);
                for (int32_t i = 0; i < v->mlen; i++) {
                    int keep = !skip_acts(a);
                    for (int32_t q = kb; q < kb + ku && !keep; q++) keep = v->A[(size_t)i * v->K + klist[q]] != 0;
                    if (!keep) continue;
                    L++;
                    for (int32_t q = kb; q < kb + ku; q++)
                        for (int32_t j = c0; j < c0 + cu; j++) {
                            int z = v->A[(size_t)i * v->K + klist[q]] == 0 ||
                                    qs_slice_of(f, v->B[(size_t)klist[q] * v->nlen + j]) == 0;
                            if (gates(a) && z) v->r->ev.mac_gated++;
                            else v->r->ev.mac_ops++;
                        }
                }
                t += (uint64_t)ku + (L ? (uint64_t)((L - 1) * v->rate + R + cu - 1) : 0);
                v->r->buffer_stall += L ? (uint64_t)((L - 1) * (v->rate - 1)) : 0;
                if (s == 0) v->r->ev.macs_executed += (uint64_t)(L * ku * cu);
                v->r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div((int64_t)ku * cu * v->p, 8);
                v->r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div(L * ku * v->m->act_bits, 8);
                v->r->ev.sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)(L * cu * 4);
                v->r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)(L * cu * 4);
            }
        }
    }
    return t;
}

/* IS: op(A) stationary, PE(k, i). Per block of C output rows and R k steps:
 * preload ku clocks, then stream the slices (n, s) of the columns n whose B
 * values on the block's k are not all zero (weight skipping). */
static uint64_t run_is(const mm_view *v)
{
    const qs_arch *a = v->a;
    const int32_t R = a->rows, C = a->cols;
    uint64_t t = 0;
    for (int32_t i0 = 0; i0 < v->mlen; i0 += C) {
        int32_t mu = min32(C, v->mlen - i0);
        for (int32_t k0 = 0; k0 < v->K; k0 += R) {
            int32_t ku = min32(R, v->K - k0);
            int64_t n_kept = 0;
            for (int32_t j = 0; j < v->nlen; j++) {
                int keep = !skip_wts(a);
                for (int32_t k = k0; k < k0 + ku && !keep; k++) keep = v->B[(size_t)k * v->nlen + j] != 0;
                if (!keep) continue;
                n_kept++;
                for (int32_t k = k0; k < k0 + ku; k++) count_ops(v, i0, mu, k, j, 1);
            }
            int64_t L = n_kept * v->S;
            t += (uint64_t)ku + (L ? (uint64_t)((L - 1) * v->rate + R + mu - 1) : 0);
            v->r->buffer_stall += L ? (uint64_t)((L - 1) * (v->rate - 1)) : 0;
            v->r->ev.macs_executed += (uint64_t)(n_kept * ku * mu);
            v->r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div((int64_t)ku * mu * v->m->act_bits, 8);
            v->r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div(L * ku * v->p, 8);
            v->r->ev.sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)(L * mu * 4);
            v->r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)(L * mu * 4);
        }
    }
    return t;
}

qs_status qs_array_matmul(qs_array_ctx *c, const qs_insn *in, qs_tile_result *r, qs_error *err)
{
    memset(r, 0, sizeof *r);
    const qs_net *net = c->net;
    const qs_layer *L = &net->layers[in->layer];
    const qs_layer *LA = &net->layers[L->inputs[0]], *LB = &net->layers[L->inputs[1]];
    const qs_layer_map *m = &c->prog->maps[in->layer];
    const qs_matmul_dims d = qs_matmul_dims_of(net, in->layer);
    const int32_t *a = c->outputs[L->inputs[0]], *bv = c->outputs[L->inputs[1]];
    const int32_t b = in->group, mlen = (int32_t)in->m_len, nlen = (int32_t)in->n_len, K = d.K;
    int32_t *A = malloc(sizeof *A * ((size_t)mlen * K + (size_t)K * nlen + (size_t)K + 1));
    if (!A) return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory for a matmul tile", L->name);
    int32_t *B = A + (size_t)mlen * K, *klist = B + (size_t)K * nlen;
    for (int32_t i = 0; i < mlen; i++)
        for (int32_t k = 0; k < K; k++)
            A[(size_t)i * K + k] = qs_matmul_a(LA, a, &d, b, (int32_t)in->m0 + i, k) - LA->out_zp;
    for (int32_t k = 0; k < K; k++)
        for (int32_t j = 0; j < nlen; j++)
            B[(size_t)k * nlen + j] = qs_matmul_b(LB, bv, &d, b, k, (int32_t)in->n0 + j) - LB->out_zp;

    /* values: one accumulator per output, whole products in k order */
    const qs_arch *arch = c->arch;
    for (int32_t i = 0; i < mlen; i++)
        for (int32_t j = 0; j < nlen; j++) {
            int32_t acc = 0;
            for (int32_t k = 0; k < K; k++) {
                int64_t prod = (int64_t)A[(size_t)i * K + k] * B[(size_t)k * nlen + j];
                if (!prod) continue; /* adds 0: never overflows */
                int o = 0;
                acc = qs_acc_add(acc, prod, arch->acc_bits, arch->overflow, &o);
                r->ev.acc_overflows += (uint64_t)o;
            }
            c->accum[((size_t)b * d.M + in->m0 + (uint32_t)i) * d.N + in->n0 + (uint32_t)j] = acc;
        }

    mm_view v = {arch, m, mlen, nlen, K, m->slices, arch->weight_path_bits,
                 qs_array_stream_rate(arch, m), A, B, r};
    switch (arch->dataflow) {
    case QS_DF_OS: r->cycles = run_os(&v); break;
    case QS_DF_WS: r->cycles = run_ws(&v, klist); break;
    case QS_DF_IS: r->cycles = run_is(&v); break;
    }
    free(A);
    return QS_OK;
}
