/* MatMul of two activations on the MAC array (docs/timing.md, "MatMul of two
 * activations"). op(A) streams on the activation path, op(B) on the weight
 * path in slices, exactly like a GEMM whose weights arrive at run time: the
 * compiler cannot compress them, so zero skipping of either operand is decided
 * here, from the values, as the operand feeders would. Both engines use this
 * step-level schedule; values are summed whole product by whole product in
 * k order in acc_bits (docs/qbin.md, MATMUL). */
#include <stdlib.h>
#include <string.h>

#include "pe_array.h"

#include "array.h"
#include "qs_vector.h"
#include "qs_xfmr.h"

/* Dot product of n int32 values whose partial sums all fit int32 (vectorized). */
QS_VECTOR_CLONES static int32_t dot32(const int32_t *restrict a, const int32_t *restrict b, int32_t n)
{
    int32_t s = 0;
    for (int32_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

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
    int32_t *cntB;     /* per (slice s, k): non-zero slices of B' over the current column block, [s*K + k] */
    int32_t *cntA;     /* per k: non-zero A' over the current row group / block */
    qs_tile_result *r;
} mm_view;

/* cntB for columns [j0, j0 + ju). */
static void count_b(const mm_view *v, int32_t j0, int32_t ju)
{
    for (int32_t s = 0; s < v->S; s++) {
        qs_slice_field f = qs_slice_field_of(v->m, v->p, s);
        for (int32_t k = 0; k < v->K; k++) {
            int32_t n = 0;
            for (int32_t j = j0; j < j0 + ju; j++) n += qs_slice_of(f, v->B[(size_t)k * v->nlen + j]) != 0;
            v->cntB[(size_t)s * v->K + k] = n;
        }
    }
}

/* cntA for rows [i0, i0 + iu). */
static void count_a(const mm_view *v, int32_t i0, int32_t iu)
{
    for (int32_t k = 0; k < v->K; k++) v->cntA[k] = 0;
    for (int32_t i = i0; i < i0 + iu; i++)
        for (int32_t k = 0; k < v->K; k++) v->cntA[k] += v->A[(size_t)i * v->K + k] != 0;
}

/* The slice operations of step k over rows x cols that reach PEs: a product
 * whose A' or B' slice is zero is gated when gating is on. */
static void count_step(const mm_view *v, int32_t k, int64_t nA, int64_t rows, int64_t cols)
{
    uint64_t live = 0;
    for (int32_t s = 0; s < v->S; s++) live += (uint64_t)(nA * v->cntB[(size_t)s * v->K + k]);
    uint64_t all = (uint64_t)(rows * cols * v->S);
    if (gates(v->a)) {
        v->r->ev.mac_ops += live;
        v->r->ev.mac_gated += all - live;
    } else {
        v->r->ev.mac_ops += all;
    }
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
    for (int32_t c0 = 0; c0 < v->nlen; c0 += C) {
        int32_t cu = min32(C, v->nlen - c0);
        count_b(v, c0, cu);
        for (int32_t r0 = 0; r0 < v->mlen; r0 += R) {
            int32_t ru = min32(R, v->mlen - r0);
            int64_t tmax = 0, tmax1 = 0;
            for (int32_t g0 = r0; g0 < r0 + ru; g0 += G) {
                int32_t gu = min32(G, r0 + ru - g0);
                count_a(v, g0, gu);
                int64_t L = 0;
                for (int32_t k = 0; k < v->K; k++) {
                    if (skip_acts(a) && v->cntA[k] == 0) continue;
                    if (skip_wts(a)) { /* B' row zero across the tile: every slice count is 0 */
                        int any = 0;
                        for (int32_t s = 0; s < v->S && !any; s++) any = v->cntB[(size_t)s * v->K + k] != 0;
                        if (!any) continue;
                    }
                    L++;
                    count_step(v, k, v->cntA[k], gu, cu);
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

static int col_nonzero(const mm_view *v, int32_t k, int32_t j0, int32_t ju)
{
    for (int32_t j = j0; j < j0 + ju; j++)
        if (v->B[(size_t)k * v->nlen + j]) return 1;
    return 0;
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
        count_b(v, c0, cu);
        for (int32_t k = 0; k < v->K; k++)
            if (!skip_wts(a) || col_nonzero(v, k, c0, cu)) klist[kl++] = k;
        for (int32_t kb = 0; kb < kl; kb += R) {
            int32_t ku = min32(R, kl - kb);
            for (int32_t s = 0; s < v->S; s++) {
                int64_t L = 0;
                uint64_t live = 0;
                for (int32_t i = 0; i < v->mlen; i++) {
                    uint64_t li = 0;
                    int keep = !skip_acts(a);
                    for (int32_t q = kb; q < kb + ku; q++)
                        if (v->A[(size_t)i * v->K + klist[q]]) {
                            keep = 1;
                            li += (uint64_t)v->cntB[(size_t)s * v->K + klist[q]];
                        }
                    if (!keep) continue;
                    L++;
                    live += li;
                }
                uint64_t all = (uint64_t)(L * ku * cu);
                v->r->ev.mac_ops += gates(a) ? live : all;
                v->r->ev.mac_gated += gates(a) ? all - live : 0;
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
        count_a(v, i0, mu);
        for (int32_t k0 = 0; k0 < v->K; k0 += R) {
            int32_t ku = min32(R, v->K - k0);
            int64_t n_kept = 0;
            uint64_t live = 0;
            for (int32_t j = 0; j < v->nlen; j++) {
                int keep = !skip_wts(a);
                for (int32_t k = k0; k < k0 + ku && !keep; k++) keep = v->B[(size_t)k * v->nlen + j] != 0;
                if (!keep) continue;
                n_kept++;
                for (int32_t s = 0; s < v->S; s++) {
                    qs_slice_field f = qs_slice_field_of(v->m, v->p, s);
                    for (int32_t k = k0; k < k0 + ku; k++)
                        if (qs_slice_of(f, v->B[(size_t)k * v->nlen + j])) live += (uint64_t)v->cntA[k];
                }
            }
            int64_t L = n_kept * v->S;
            uint64_t all = (uint64_t)(L * ku * mu);
            v->r->ev.mac_ops += gates(a) ? live : all;
            v->r->ev.mac_gated += gates(a) ? all - live : 0;
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

/* Detailed engine, OS: every lockstep group of every array tile runs clock by
 * clock on a G x C qs_pe_array (the same PE model the convolutions tick and
 * the RTL is compared against): element e = (k, s) of the group's schedule
 * enters row i at e*rate + i and column j at e*rate + j; the accumulators
 * give the values (acc[i*nlen + j]), the PE counters the operations. Returns
 * the instruction's cycles: per tile the slowest group plus the drain. */
static qs_status detailed_os(qs_array_ctx *c, const qs_insn *in, const mm_view *v, int32_t *acc, uint64_t *cycles,
                             qs_error *err)
{
    const qs_arch *a = v->a;
    const int32_t R = a->rows, C = a->cols, G = min32(a->skip_group, a->rows);
    /* no lookahead: B arrives at run time, so there is no static weight schedule to look ahead in */
    qs_pe_array_cfg pc = {G, C, QS_DF_OS, v->p, a->acc_bits, a->overflow, gates(a), 0};
    qs_pe_array *pa = NULL;
    qs_status st = qs_pe_array_create(&pc, &pa, err);
    if (st) return st;
    int32_t *west = calloc((size_t)(G + C) * 2 + 2, sizeof(int32_t));
    uint8_t *flags = calloc((size_t)(G + C) * 3 + 3, 1);
    int32_t *sched = malloc(sizeof(int32_t) * ((size_t)v->K + 1));
    if (!west || !flags || !sched) {
        free(west);
        free(flags);
        free(sched);
        qs_pe_array_destroy(pa);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory for the detailed matmul engine");
    }
    int32_t *north = west + G + 1;
    uint8_t *wv = flags, *nv = flags + G + 1, *ns = nv + C + 1, *wsft = ns + C + 1;
    uint64_t t_total = 0;
    for (int32_t c0 = 0; c0 < v->nlen; c0 += C) {
        int32_t cu = min32(C, v->nlen - c0);
        for (int32_t r0 = 0; r0 < v->mlen; r0 += R) {
            int32_t ru = min32(R, v->mlen - r0);
            uint64_t tmax = 0;
            for (int32_t g0 = r0; g0 < r0 + ru; g0 += G) {
                int32_t gu = min32(G, r0 + ru - g0), L = 0;
                for (int32_t k = 0; k < v->K; k++) {
                    int arow = 0, bcol = 0;
                    for (int32_t i = g0; i < g0 + gu && !arow; i++) arow = v->A[(size_t)i * v->K + k] != 0;
                    for (int32_t j = c0; j < c0 + cu && !bcol; j++) bcol = v->B[(size_t)k * v->nlen + j] != 0;
                    if ((skip_acts(a) && !arow) || (skip_wts(a) && !bcol)) continue;
                    sched[L++] = k;
                }
                int64_t E = (int64_t)L * v->S;
                uint64_t T = E ? (uint64_t)((E - 1) * v->rate + gu + cu - 1) : 0;
                qs_pe_array_reset(pa);
                if (c->hook && T > 0) {
                    st = qs_array_hook_tile(c, pa, in, in->m0 + (uint32_t)g0, in->k0, (g0 - r0) / G, err);
                    if (st) goto out;
                }
                for (uint64_t t = 0; t < T; t++) {
                    for (int32_t i = 0; i < G; i++) {
                        int64_t d = (int64_t)t - i;
                        wv[i] = i < gu && d >= 0 && d % v->rate == 0 && d / v->rate < E;
                        west[i] = wv[i] ? v->A[(size_t)(g0 + i) * v->K + sched[d / v->rate / v->S]] : 0;
                        wsft[i] = 0;
                    }
                    for (int32_t j = 0; j < C; j++) {
                        int64_t d = (int64_t)t - j;
                        nv[j] = j < cu && d >= 0 && d % v->rate == 0 && d / v->rate < E;
                        ns[j] = 0;
                        north[j] = 0;
                        if (nv[j]) {
                            int64_t e = d / v->rate;
                            int32_t sl = (int32_t)(e % v->S);
                            north[j] = qs_slice_of(qs_slice_field_of(v->m, v->p, sl),
                                                   v->B[(size_t)sched[e / v->S] * v->nlen + c0 + j]);
                            ns[j] = (uint8_t)sl;
                        }
                    }
                    qs_pe_in pin = {west, wv, wsft, north, nv, ns, (uint8_t)(t == 0), 0, NULL};
                    qs_pe_out po = {NULL, NULL, 0, 0, 0};
                    qs_pe_array_tick(pa, &pin, &po);
                    if (c->hook_follow) {
                        st = qs_array_hook_tick(c, t_total + t, &pin, &po, pa, err);
                        if (st) goto out;
                    }
                    v->r->ev.mac_ops += po.active;
                    v->r->ev.mac_gated += po.gated;
                    v->r->ev.acc_overflows += po.overflows;
                }
                for (int32_t i = 0; i < gu; i++)
                    for (int32_t j = 0; j < cu; j++)
                        acc[(size_t)(g0 + i) * v->nlen + c0 + j] = E ? qs_pe_array_acc(pa, i, j) : 0;
                if (T > tmax) tmax = T;
            }
            t_total += tmax + (uint64_t)ru;
        }
    }
    *cycles = t_total;
out:
    free(west);
    free(flags);
    free(sched);
    qs_pe_array_destroy(pa);
    return st;
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
    const size_t nA = (size_t)mlen * K, nB = (size_t)K * nlen;
    const int32_t S = m->slices;
    int32_t *A = malloc(sizeof *A * (nA + 2 * nB + (size_t)K * (2 + (size_t)S) + 1));
    if (!A) return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory for a matmul tile", L->name);
    int32_t *B = A + nA, *Bt = B + nB, *klist = Bt + nB, *cntA = klist + K, *cntB = cntA + K;
    int32_t amax = 0, bmax = 0;
    for (int32_t i = 0; i < mlen; i++)
        for (int32_t k = 0; k < K; k++) {
            int32_t x = qs_matmul_a(LA, a, &d, b, (int32_t)in->m0 + i, k) - LA->out_zp;
            A[(size_t)i * K + k] = x;
            if (x > amax || -x > amax) amax = x < 0 ? -x : x;
        }
    for (int32_t k = 0; k < K; k++)
        for (int32_t j = 0; j < nlen; j++) {
            int32_t x = qs_matmul_b(LB, bv, &d, b, k, (int32_t)in->n0 + j) - LB->out_zp;
            B[(size_t)k * nlen + j] = x;
            Bt[(size_t)j * K + k] = x; /* column j contiguous, for the dot products */
            if (x > bmax || -x > bmax) bmax = x < 0 ? -x : x;
        }

    /* values: per output, in k order and, within a product, slice by slice
     * (the PE's order, docs/timing.md); when no partial sum can leave acc_bits
     * the plain exact sum is the same number */
    const qs_arch *arch = c->arch;
    const int32_t p = arch->weight_path_bits;
    double slice_sum = 0; /* bound on |partial sums of one product's slices| / |A'| */
    for (int32_t s = 0; s < S; s++) {
        int64_t mx = S == 1 ? bmax : (s == S - 1 && m->weight_signed) ? (1 << (p - 1)) : (1 << p) - 1;
        slice_sum += (double)mx * (double)((int64_t)1 << (p * s));
    }
    const double bound = (double)K * amax * (slice_sum > bmax ? slice_sum : bmax);
    const int ordered = bound > (double)(((int64_t)1 << (arch->acc_bits - 1)) - 1);
    int32_t *accv = c->engine == QS_ENGINE_DETAILED && arch->dataflow == QS_DF_OS ? NULL : c->accum;
    for (int32_t i = 0; i < mlen && accv; i++)
        for (int32_t j = 0; j < nlen; j++) {
            const int32_t *restrict ai = A + (size_t)i * K, *restrict bj = Bt + (size_t)j * K;
            int32_t acc = 0;
            if (!ordered && bound <= (double)INT32_MAX) { /* no int32 partial sum can overflow */
                acc = dot32(ai, bj, K);
            } else if (!ordered) {
                int64_t sum = 0;
                for (int32_t k = 0; k < K; k++) sum += (int64_t)ai[k] * bj[k];
                acc = (int32_t)sum;
            } else {
                for (int32_t k = 0; k < K; k++) {
                    if (!ai[k] || !bj[k]) continue; /* adds 0: never overflows */
                    for (int32_t s = 0; s < S; s++) {
                        int64_t prod = (int64_t)ai[k] * qs_slice_of(qs_slice_field_of(m, p, s), bj[k]) *
                                       ((int64_t)1 << (S == 1 ? 0 : p * s));
                        int o = 0;
                        acc = qs_acc_add(acc, prod, arch->acc_bits, arch->overflow, &o);
                        r->ev.acc_overflows += (uint64_t)o;
                    }
                }
            }
            c->accum[((size_t)b * d.M + in->m0 + (uint32_t)i) * d.N + in->n0 + (uint32_t)j] = acc;
        }

    mm_view v = {arch, m, mlen, nlen, K, S, arch->weight_path_bits, qs_array_stream_rate(arch, m), A, B, cntB, cntA, r};
    if (!accv) { /* detailed engine, OS: the PE array computes values, counts and time */
        int32_t *tile = malloc(sizeof(int32_t) * ((size_t)mlen * nlen + 1));
        qs_status st = tile ? detailed_os(c, in, &v, tile, &r->cycles, err)
                            : qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory", L->name);
        if (st == QS_OK) {
            for (int32_t i = 0; i < mlen; i++)
                for (int32_t j = 0; j < nlen; j++)
                    c->accum[((size_t)b * d.M + in->m0 + (uint32_t)i) * d.N + in->n0 + (uint32_t)j] =
                        tile[(size_t)i * nlen + j];
            /* the events the PE array does not see (SRAM traffic, executed MACs, buffer
             * stalls) follow the same schedule as the fast engine's: counted there */
            mm_view cv = v;
            qs_tile_result side;
            memset(&side, 0, sizeof side);
            cv.r = &side;
            (void)run_os(&cv);
            r->buffer_stall = side.buffer_stall;
            r->ev.macs_executed = side.ev.macs_executed;
            memcpy(r->ev.sram_read_bytes, side.ev.sram_read_bytes, sizeof side.ev.sram_read_bytes);
            memcpy(r->ev.sram_write_bytes, side.ev.sram_write_bytes, sizeof side.ev.sram_write_bytes);
        }
        free(tile);
        free(A);
        return st;
    }
    switch (arch->dataflow) {
    case QS_DF_OS: r->cycles = run_os(&v); break;
    case QS_DF_WS: r->cycles = run_ws(&v, klist); break;
    case QS_DF_IS: r->cycles = run_is(&v); break;
    }
    free(A);
    return QS_OK;
}
