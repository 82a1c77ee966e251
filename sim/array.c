/* GEMM instructions on the MAC array. docs/timing.md ("Array") states every
 * rule used here; the section names below match it.
 *
 * Shared by both engines: which stream steps survive zero skipping (the
 * schedule), the SRAM/register traffic those steps imply, and the stream rate
 * imposed by buffer bandwidth. The fast engine then derives cycles and PE
 * activity from closed forms and computes values with dense dot products; the
 * detailed engine feeds qs_pe_array clock by clock and reads cycles, activity,
 * overflows and values off it. tests/test_sim.c checks that they agree. */
#include "array.h"
#include "qs_alloc.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "qs_vector.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

/* Activation zeros save time (whole steps of a row group). Not with
 * lookahead: its weight schedule is fixed by the compiler, so activations
 * only gate (docs/timing.md "Lookahead weight skipping"). */
static int act_skip(const qs_arch *a)
{
    return (a->zero_skip == QS_SKIP_ACTIVATIONS || a->zero_skip == QS_SKIP_BOTH) && a->lookahead == 0;
}

static int gating(const qs_arch *a) { return a->zero_skip != QS_SKIP_NONE; }

static int scalesim(const qs_arch *a) { return a->timing == QS_TIMING_SCALESIM; }

/* OS rows that share a weight feed and move in lockstep. SCALE-Sim's array
 * has no skip groups: all rows move together; nor has lookahead, whose one
 * weight schedule serves every row. */
static int32_t lockstep_group(const qs_arch *a)
{
    return scalesim(a) || a->lookahead > 0 ? a->rows : min32(a->skip_group, a->rows);
}

static int32_t ceil_log2_32(int32_t v)
{
    int32_t b = 0;
    while (((int32_t)1 << b) < v) b++;
    return b;
}

/* Lookahead: bits of the window index that travels with each weight slice. */
static int32_t offset_bits(const qs_arch *a) { return ceil_log2_32(a->lookahead + 1); }

int32_t qs_array_stream_needs(const qs_arch *a, const qs_layer_map *m, int64_t need[3], int64_t bw[3])
{
    /* Bytes the array consumes per stream element against what each buffer
     * delivers per cycle (banks x width x ports). */
    bw[0] = (int64_t)a->ifmap.banks * a->ifmap.bank_width_bytes * a->ifmap.ports;
    bw[1] = (int64_t)a->weight.banks * a->weight.bank_width_bytes * a->weight.ports;
    bw[2] = (int64_t)a->accum.banks * a->accum.bank_width_bytes * a->accum.ports;
    need[0] = need[1] = need[2] = 0;
    if (scalesim(a)) return 1; /* SCALE-Sim's SRAMs serve the array every cycle */
    int32_t ngroups = (int32_t)ceil_div(a->rows, lockstep_group(a));
    switch (a->dataflow) {
    case QS_DF_OS:
        /* lookahead: the window may advance by up to H + 1 steps a clock and
         * each weight slice carries its window index */
        need[0] = ceil_div((int64_t)(a->lookahead + 1) * a->rows * m->act_bits, 8);
        need[1] = ceil_div((int64_t)ngroups * a->cols * (a->weight_path_bits + offset_bits(a)), 8);
        break;
    case QS_DF_WS:
        need[0] = ceil_div((int64_t)a->rows * m->act_bits, 8);
        need[2] = (int64_t)a->cols * 4;
        break;
    case QS_DF_IS:
        need[1] = ceil_div((int64_t)a->rows * a->weight_path_bits, 8);
        need[2] = (int64_t)a->cols * 4;
        break;
    }
    int64_t r = 1;
    for (int b = 0; b < 3; b++)
        if (bw[b] > 0 && ceil_div(need[b], bw[b]) > r) r = ceil_div(need[b], bw[b]);
    return (int32_t)r;
}

int32_t qs_array_stream_rate(const qs_arch *a, const qs_layer_map *m)
{
    int64_t need[3], bw[3];
    return qs_array_stream_needs(a, m, need, bw);
}

qs_status qs_array_ctx_init(qs_array_ctx *c, qs_error *err)
{
    const qs_arch *a = c->arch;
    int32_t max_k = 1, max_n = 1;
    for (int32_t li = 0; li < c->prog->n_layers; li++) {
        const qs_layer_map *m = &c->prog->maps[li];
        if (!m->is_gemm) continue;
        if (m->g.K > max_k) max_k = m->g.K;
        if (m->g.N > max_n) max_n = m->g.N;
        if (m->g.M > max_k) max_k = m->g.M; /* WS schedules list rows m */
    }
    c->max_k = max_k;
    c->facts.layer = -1;
    c->dense.layer = -1;
    c->slices.layer = -1;
    c->la_cache.layer = -1;
    c->rows_budget = (size_t)96 << 20;
    int32_t R = a->rows, C = a->cols;
    c->n_groups = (int32_t)ceil_div(R, lockstep_group(a));
    size_t edge = (size_t)(R > C ? R : C) + 1;
    c->sched_all = qs_malloc(sizeof(int32_t) * (size_t)c->n_groups * (size_t)max_k);
    c->sched_len = qs_calloc((size_t)c->n_groups, sizeof(int32_t));
    c->sched = qs_malloc(sizeof(int32_t) * (size_t)max_k);
    c->kidx = qs_malloc(sizeof(int32_t) * (size_t)max_k);
    /* tile_acc doubles as the gathered weight matrix [n][p] of the fast engine,
     * followed by one row of its results (an IS instruction spans all n) */
    c->tile_acc = qs_malloc(sizeof(int32_t) * ((size_t)max_n * (size_t)max_k + (size_t)max_n + (size_t)R * C + 16));
    c->colcount = qs_calloc(edge, sizeof(int32_t));
    /* lookahead: a window of H + 1 activations per row */
    c->edge_i = qs_calloc(edge * (size_t)(a->lookahead + 1), sizeof(int32_t));
    c->edge_v = qs_calloc(edge * (size_t)(a->lookahead + 1), 1);
    c->edge_o = qs_calloc(edge, 1);
    c->edge_s = qs_calloc(edge, 1);
    c->edge_n = qs_calloc(edge, sizeof(int32_t));
    c->edge_nv = qs_calloc(edge, 1);
    c->edge_ns = qs_calloc(edge, 1);
    c->south = qs_calloc(edge, sizeof(int32_t));
    c->south_v = qs_calloc(edge, 1);
    if (!c->sched_all || !c->sched_len || !c->sched || !c->kidx || !c->tile_acc || !c->colcount || !c->edge_i ||
        !c->edge_v || !c->edge_o || !c->edge_s || !c->edge_n || !c->edge_nv || !c->edge_ns || !c->south || !c->south_v)
        return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for array scratch");
    if (c->engine == QS_ENGINE_DETAILED) return qs_array_ctx_make_groups(c, err);
    return QS_OK;
}

qs_status qs_array_ctx_make_groups(qs_array_ctx *c, qs_error *err)
{
    const qs_arch *a = c->arch;
    if (c->groups) return QS_OK;
    int32_t n = a->dataflow == QS_DF_OS ? c->n_groups : 1;
    c->groups = qs_calloc((size_t)n, sizeof *c->groups);
    if (!c->groups) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
    for (int32_t i = 0; i < n; i++) {
        qs_pe_array_cfg pc = {a->dataflow == QS_DF_OS ? lockstep_group(a) : a->rows, a->cols, a->dataflow,
                              a->weight_path_bits, a->acc_bits, a->overflow, gating(a), a->lookahead};
        qs_status st = qs_pe_array_create(&pc, &c->groups[i], err);
        if (st) return st;
    }
    return QS_OK;
}

qs_status qs_array_hook_tile(qs_array_ctx *c, const qs_pe_array *pa, const qs_insn *in, uint32_t m0, uint32_t k0,
                             int32_t group, qs_error *err)
{
    c->hook_follow = 0;
    if (!c->hook) return QS_OK;
    /* counted per layer (instructions of two layers may interleave), so
     * that a tile's index names it in a replay of the run */
    qs_array_tile_info t = {(int32_t)in->layer, c->net->layers[in->layer].name, c->insn, c->tile_count[in->layer]++,
                            m0, in->n0, k0, group};
    return c->hook->tile_begin(c->hook->user, &t, qs_pe_array_config(pa), &c->hook_follow, err);
}

qs_status qs_array_hook_tick(qs_array_ctx *c, uint64_t rel_cycle, const qs_pe_in *pin, const qs_pe_out *po,
                             const qs_pe_array *pa, qs_error *err)
{
    return c->hook->tick(c->hook->user, c->insn_start + rel_cycle, pin, po, pa, err);
}

void qs_array_ctx_free(qs_array_ctx *c)
{
    if (c->groups) { /* made all at once: a failure leaves NULLs, which destroy skips */
        int32_t n = c->arch->dataflow == QS_DF_OS ? c->n_groups : 1;
        for (int32_t i = 0; i < n; i++) qs_pe_array_destroy(c->groups[i]);
        qs_free(c->groups);
    }
    qs_free(c->sched_all);
    qs_free(c->sched_len);
    qs_free(c->sched);
    qs_free(c->kidx);
    qs_free(c->tile_acc);
    qs_free(c->colcount);
    qs_free(c->edge_i);
    qs_free(c->edge_v);
    qs_free(c->edge_o);
    qs_free(c->la_cache.slot);
    qs_free(c->la_buf);
    qs_free(c->edge_s);
    qs_free(c->edge_n);
    qs_free(c->edge_nv);
    qs_free(c->edge_ns);
    qs_free(c->south);
    qs_free(c->south_v);
    qs_free(c->log);
    qs_free(c->tile_count);
    for (int32_t i = 0; i < c->n_rows; i++) qs_free(c->rows[i].buf);
    qs_free(c->rows);
    qs_free(c->rows_spare.buf);
    qs_free(c->val_buf);
    qs_free(c->aux_buf);
    qs_free(c->facts.buf);
    qs_free(c->dense.buf);
    qs_free(c->slices.buf);
}

/* Record one clock of PE activity at tile-relative time t (groups that run
 * side by side add up). Grows the log only while a waveform is written. */
static void log_tick(qs_array_ctx *c, uint64_t t, const qs_pe_out *po)
{
    if (!c->logging) return;
    if (t >= c->log_cap) {
        uint64_t cap = c->log_cap ? c->log_cap : 4096;
        while (cap <= t) cap *= 2;
        struct qs_pe_log *n = qs_realloc(c->log, cap * sizeof *n);
        if (!n) { c->logging = 0; return; }
        memset(n + c->log_cap, 0, (cap - c->log_cap) * sizeof *n);
        c->log = n;
        c->log_cap = cap;
    }
    c->log[t].active += po->active;
    c->log[t].gated += po->gated;
    c->log[t].overflows += po->overflows;
    if (t + 1 > c->log_len) c->log_len = t + 1;
}

/* One clock of a tile whose PE outputs are read: the array's tick, the
 * co-simulation hook (it compares this clock), the waveform log and the MAC
 * event counts. `cycle` is the clock's time relative to the layer. */
static qs_status array_clock(qs_array_ctx *c, qs_pe_array *pa, const qs_pe_in *pin, qs_pe_out *po, uint64_t cycle,
                             qs_events *ev, qs_error *err)
{
    qs_pe_array_tick(pa, pin, po);
    if (c->hook_follow) {
        qs_status hs = qs_array_hook_tick(c, cycle, pin, po, pa, err);
        if (hs) return hs;
    }
    log_tick(c, cycle, po);
    ev->mac_ops += po->active;
    ev->mac_gated += po->gated;
    ev->acc_overflows += po->overflows;
    return QS_OK;
}

/* ---- operand access ------------------------------------------------------- */

typedef struct {
    const qs_layer *L, *IN;
    const int32_t *in;
    const qs_layer_map *m;
    int32_t layer;         /* index of L in the network */
    const int32_t *w;      /* the layer's weight tensor: w(k, n) of group g at w[(g*N + n)*K + k] */
    int32_t path_bits;     /* weight path width: what a slice holds */
    int32_t g, za;
    const int32_t *list;   /* OS/WS: k list of the n-block; IS: unused */
} gemm_view;

static inline int32_t act_at(const gemm_view *v, int32_t m, int32_t k)
{
    return qs_gemm_act(v->L, v->IN, v->in, v->g, m, k, v->za);
}

static inline int32_t wslice_at(const gemm_view *v, int32_t s, int32_t k, int32_t n)
{
    const qs_layer_map *m = v->m;
    return qs_weight_slice(m, v->path_bits, v->w[((size_t)v->g * m->g.N + n) * m->g.K + k], s);
}

static inline int32_t *accum_at(qs_array_ctx *c, const gemm_view *v, int32_t m, int32_t n)
{
    return &c->accum[((size_t)v->g * v->m->g.M + m) * v->m->g.N + n];
}

/* Add a partial result into the accumulator buffer (acc_bits arithmetic). */
static inline void accum_add(qs_array_ctx *c, int32_t *dst, int32_t v, uint64_t *ovf)
{
    int o = 0;
    *dst = qs_acc_add(*dst, v, c->arch->acc_bits, c->arch->overflow, &o);
    *ovf += (uint64_t)o;
}

/* ---- values, fast engine --------------------------------------------------- */

/* Activation rows a[m][kidx[0..len)] with qs_gemm_act's values but without its
 * divisions per element: per reduction index the offset of its window tap in
 * the input, per row the window's origin; rows whose window lies inside the
 * input need no bounds checks. */
typedef struct {
    const gemm_view *v;
    const int32_t *kidx;
    int32_t len, fc;
    ptrdiff_t *off;       /* input index of tap kidx[p] for a window at (0, 0) */
    int32_t *dy, *dx;     /* its offsets inside the window */
    int32_t ymax, xmax;   /* largest dy, dx */
} act_rows;

static int act_rows_init(act_rows *g, const gemm_view *v, const int32_t *kidx, int32_t len)
{
    const qs_layer *L = v->L, *IN = v->IN;
    memset(g, 0, sizeof *g);
    g->v = v;
    g->kidx = kidx;
    g->len = len;
    g->fc = L->kind == QS_L_FC;
    if (g->fc) return 0;
    size_t n = len > 0 ? (size_t)len : 1;
    g->off = qs_malloc(n * sizeof *g->off);
    g->dy = qs_malloc(2 * n * sizeof *g->dy);
    if (!g->off || !g->dy) {
        qs_free(g->off);
        qs_free(g->dy);
        return -1;
    }
    g->dx = g->dy + n;
    const int32_t khw = L->kh * L->kw, cg = IN->out_c / L->groups;
    const ptrdiff_t plane = (ptrdiff_t)IN->out_h * IN->out_w;
    for (int32_t p = 0; p < len; p++) {
        int32_t k = kidx[p], ch = k / khw, r = k % khw;
        int32_t dy = r / L->kw * L->dil_h, dx = r % L->kw * L->dil_w;
        g->off[p] = (ptrdiff_t)(v->g * cg + ch) * plane + (ptrdiff_t)dy * IN->out_w + dx;
        g->dy[p] = dy;
        g->dx[p] = dx;
        if (dy > g->ymax) g->ymax = dy;
        if (dx > g->xmax) g->xmax = dx;
    }
    return 0;
}

static void act_rows_free(act_rows *g)
{
    qs_free(g->off);
    qs_free(g->dy);
}

/* out[p] = a[m][kidx[p]] for p < len */
static void act_rows_get(const act_rows *g, int32_t m, int32_t *restrict out)
{
    const int32_t *restrict in = g->v->in;
    const int32_t len = g->len;
    if (g->fc) {
        for (int32_t p = 0; p < len; p++) out[p] = in[g->kidx[p]];
        return;
    }
    const qs_layer *L = g->v->L, *IN = g->v->IN;
    const int32_t H = IN->out_h, W = IN->out_w;
    const int32_t iy0 = m / L->out_w * L->stride_h - L->pad_t, ix0 = m % L->out_w * L->stride_w - L->pad_l;
    const ptrdiff_t b = (ptrdiff_t)iy0 * W + ix0;
    const ptrdiff_t *restrict off = g->off;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + g->ymax < H && ix0 + g->xmax < W) {
        for (int32_t p = 0; p < len; p++) out[p] = in[b + off[p]];
        return;
    }
    const int32_t pad = g->v->za;
    for (int32_t p = 0; p < len; p++) {
        int32_t iy = iy0 + g->dy[p], ix = ix0 + g->dx[p];
        out[p] = iy < 0 || ix < 0 || iy >= H || ix >= W ? pad : in[b + off[p]];
    }
}

/* Four dot products of a[0..n) with b, b + stride, b + 2 stride, b + 3 stride;
 * n a multiple of 16 (written so that compilers vectorize it at -O2). */
static void dot4_i16(const int16_t *restrict a, const int16_t *restrict b, size_t stride, int32_t n, int32_t *s)
{
    n &= ~15;
    const int16_t *restrict b1 = b + stride, *restrict b2 = b1 + stride, *restrict b3 = b2 + stride;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int32_t p = 0; p < n; p++) {
        int32_t x = a[p];
        s0 += x * b[p];
        s1 += x * b1[p];
        s2 += x * b2[p];
        s3 += x * b3[p];
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

static int32_t dot_i16(const int16_t *restrict a, const int16_t *restrict b, int32_t n)
{
    n &= ~15;
    int32_t s = 0;
    for (int32_t p = 0; p < n; p++) s += a[p] * b[p];
    return s;
}

static int fits_i16(int32_t x) { return x >= INT16_MIN && x <= INT16_MAX; }

/* sum_p |x[p]| over p < n, for activations (at most 16 bits, so |x| <= 2^16):
 * chunks of 2^15 add up in uint32 without overflow, which lets the loop
 * vectorize. */
QS_VECTOR_CLONES static int64_t abs_sum(const int32_t *restrict x, int32_t n)
{
    int64_t s = 0;
    for (int32_t p0 = 0; p0 < n; p0 += 1 << 15) {
        const int32_t p1 = n - p0 < (1 << 15) ? n : p0 + (1 << 15);
        uint32_t cs = 0;
        for (int32_t p = p0; p < p1; p++) cs += x[p] < 0 ? 0u - (uint32_t)x[p] : (uint32_t)x[p];
        s += cs;
    }
    return s;
}

/* Whether every activation of the layer's input (and its padding value, the
 * zero point) fits int16: all but 16-bit unsigned inputs. */
static int acts_fit_i16(const qs_layer_map *m, int32_t za)
{
    int32_t lo, hi;
    qs_int_range(m->act_bits, m->act_signed, &lo, &hi);
    return fits_i16(lo) && fits_i16(hi) && fits_i16(za);
}

/* Grow-only scratch: *buf holds at least `bytes` afterwards (old contents
 * lost); NULL when out of memory. */
static void *scratch(void **buf, size_t *cap, size_t bytes)
{
    if (bytes > *cap) {
        qs_free(*buf);
        *cap = 0;
        size_t want = bytes + bytes / 4;  /* room to grow before the next reallocation */
        *buf = qs_malloc(want);
        if (!*buf) return NULL;
        *cap = want;
    }
    return *buf;
}

/* The weights of columns n0 + j (j < nl) of an instruction at reduction
 * indices kidx[0..len), for dense dot products: w16[j*stride16 + p] when
 * every weight fits int16, else w16 = NULL, readable up to p < lp (len
 * rounded up to 16): what lies beyond len there is multiplied by a zero
 * activation; w32[j*stride32 + p] for p < len, or NULL when the int16
 * products always apply (every weight and activation fits int16). a16 is
 * room for one activation row of lp int16 with a zero tail. */
typedef struct {
    int32_t nl, len, lp;
    size_t stride32, stride16;
    const int32_t *w32;
    const int16_t *w16;
    int16_t *a16;
} dense_weights;

/* The layer's weights per n-block, each column the list's reduction indices
 * followed by 16 zeros, built once per layer: every instruction of an OS or
 * WS layer reads a range of list positions of one whole n-block, and a
 * block's columns are read again for each m-tile. */
QS_VECTOR_CLONES static const struct qs_layer_dense *layer_dense(qs_array_ctx *c, const gemm_view *v, int32_t layer)
{
    struct qs_layer_dense *d = &c->dense;
    if (d->layer == layer) return d;
    const qs_tensor *W = &c->net->tensors[v->L->weight];
    const qs_layer_map *m = v->m;
    const int32_t C = c->arch->cols, N = m->g.N, K = m->g.K, nbl = m->blocks_per_group;
    d->layer = -1;
    size_t total = 0;
    for (int32_t li = 0; li < m->n_lists; li++) {
        int32_t nb = li % nbl, len = m->list_off[li + 1] - m->list_off[li];
        total += (size_t)min32(C, N - nb * C) * (size_t)(len + 16);
    }
    /* int16 always; int32 too when the int32 dot products may be needed:
     * some weight or some activation does not fit int16 */
    for (int pass = 0; pass < 2; pass++) {
        const int with32 = pass == 1;
        size_t bytes = sizeof(size_t) * ((size_t)m->n_lists + 1) +
                       (sizeof(int16_t) + (with32 ? sizeof(int32_t) : 0)) * total + 16;
        if (!scratch(&d->buf, &d->cap, bytes)) return NULL;
        d->off = d->buf;
        d->w32 = with32 ? (int32_t *)(d->off + m->n_lists + 1) : NULL;
        d->w16 = (int16_t *)(with32 ? (void *)(d->w32 + total) : (void *)(d->off + m->n_lists + 1));
        int fit = 1;
        size_t o = 0;
        for (int32_t li = 0; li < m->n_lists; li++) {
            const int32_t g = li / nbl, nb = li % nbl, cu = min32(C, N - nb * C);
            const int32_t len = m->list_off[li + 1] - m->list_off[li], *kidx = m->list + m->list_off[li];
            d->off[li] = o;
            for (int32_t j = 0; j < cu; j++, o += (size_t)len + 16) {
                const int32_t *col = &W->data[(size_t)(g * N + nb * C + j) * (size_t)K];
                int16_t *dst = d->w16 + o;
                for (int32_t p = 0; p < len; p++) {
                    dst[p] = (int16_t)col[kidx[p]];
                    fit &= fits_i16(col[kidx[p]]);
                }
                for (int32_t p = len; p < len + 16; p++) dst[p] = 0;
                if (with32) {
                    int32_t *d32 = d->w32 + o;
                    for (int32_t p = 0; p < len; p++) d32[p] = col[kidx[p]];
                    for (int32_t p = len; p < len + 16; p++) d32[p] = 0;
                }
            }
        }
        d->fit16 = fit;
        if (with32 || (fit && acts_fit_i16(m, v->za))) break;
    }
    d->layer = layer;
    return d;
}

static int dense_weights_gather(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, const int32_t *kidx,
                                int32_t len, dense_weights *dw)
{
    const qs_layer_map *m = v->m;
    const int32_t lp = (len + 15) & ~15, nl = (int32_t)in->n_len, n0 = (int32_t)in->n0, C = c->arch->cols;
    int16_t *a16 = scratch(&c->val_buf, &c->val_cap, sizeof(int16_t) * ((size_t)(nl + 1) * (size_t)lp + 16));
    if (!a16) return -1;
    for (int32_t p = len; p < lp; p++) a16[p] = 0;
    /* OS/WS: the instruction covers list positions k0.. of one whole n-block */
    if (c->arch->dataflow != QS_DF_IS && n0 % C == 0 && nl == min32(C, m->g.N - n0) && kidx == v->list + in->k0) {
        const struct qs_layer_dense *d = layer_dense(c, v, (int32_t)in->layer);
        if (!d) return -1;
        const int32_t li = v->g * m->blocks_per_group + n0 / C;
        const size_t o = d->off[li] + in->k0, stride = (size_t)(m->list_off[li + 1] - m->list_off[li]) + 16;
        *dw = (dense_weights){nl, len, lp, stride, stride, d->w32 ? d->w32 + o : NULL, d->fit16 ? d->w16 + o : NULL, a16};
        return 0;
    }
    /* otherwise gathered for this instruction (IS: plain k, all n) */
    const qs_tensor *W = &c->net->tensors[v->L->weight];
    int32_t *wt = c->tile_acc;
    int16_t *w16 = a16 + lp;
    int wfit = 1;
    for (int32_t j = 0; j < nl; j++) {
        const int32_t *col = &W->data[(size_t)(v->g * m->g.N + n0 + j) * (size_t)m->g.K];
        for (int32_t p = 0; p < len; p++) {
            int32_t w = col[kidx[p]];
            wt[(size_t)j * len + p] = w;
            wfit &= fits_i16(w);
        }
    }
    *dw = (dense_weights){nl, len, lp, (size_t)len, (size_t)lp, wt, wfit ? w16 : NULL, a16};
    if (wfit) {
        for (int32_t j = 0; j < nl; j++) {
            int16_t *dst = &w16[(size_t)j * lp];
            for (int32_t p = 0; p < len; p++) dst[p] = (int16_t)wt[(size_t)j * len + p];
            for (int32_t p = len; p < lp; p++) dst[p] = 0;
        }
    }
    return 0;
}

/* s[j] = sum_p row[p] * w[j][p] for every column j. The caller guarantees
 * that no partial sum of these products, in any order, leaves int32. Rows
 * and weights that fit int16 (all but 16-bit unsigned operands) take the
 * vectorized int16 dot products; row16, when given, is the row already in
 * int16 with a zero tail up to lp. */
QS_VECTOR_CLONES static void dense_row(const dense_weights *dw, const int32_t *restrict row, const int16_t *row16, int32_t *s)
{
    const int32_t nl = dw->nl, len = dw->len, lp = dw->lp;
    int fit = dw->w16 != NULL;
    if (fit && !row16) {
        for (int32_t p = 0; p < len; p++) {
            dw->a16[p] = (int16_t)row[p];
            fit &= fits_i16(row[p]);
        }
        row16 = dw->a16;
    }
    int32_t j = 0;
    if (fit) {
        for (; j + 4 <= nl; j += 4) dot4_i16(row16, &dw->w16[(size_t)j * dw->stride16], dw->stride16, lp, &s[j]);
        for (; j < nl; j++) s[j] = dot_i16(row16, &dw->w16[(size_t)j * dw->stride16], lp);
        return;
    }
    for (; j < nl; j++) { /* int32 products; weights from w16 when only those were kept */
        int32_t t = 0;
        if (dw->w32) {
            const int32_t *restrict w = &dw->w32[(size_t)j * dw->stride32];
            for (int32_t p = 0; p < len; p++) t += row[p] * w[p];
        } else {
            const int16_t *restrict w = &dw->w16[(size_t)j * dw->stride16];
            for (int32_t p = 0; p < len; p++) t += row[p] * w[p];
        }
        s[j] = t;
    }
}

/* Write an array tile's result for output (mm, n0 + j): the first k-chunk
 * sets the accumulator buffer, later ones add into it (acc_bits arithmetic). */
static void store_row(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, int32_t mm, const int32_t *val,
                      uint64_t *ovf)
{
    int32_t *acc = accum_at(c, v, mm, (int32_t)in->n0);
    for (int32_t j = 0; j < (int32_t)in->n_len; j++) {
        if (in->flags & QS_GEMM_FIRST_K) acc[j] = val[j];
        else accum_add(c, &acc[j], val[j], ovf);
    }
}

/* Row i of the instruction in int32: kept, or widened from int16 into tmp. */
static const int32_t *os_row32(const struct qs_os_rows *w, int32_t i, int32_t *tmp)
{
    const int32_t kl = (int32_t)w->k_len;
    if (w->a) return w->a + (size_t)i * kl;
    const int16_t *r16 = w->a16 + (size_t)i * ((kl + 15) & ~15);
    for (int32_t q = 0; q < kl; q++) tmp[q] = r16[q];
    return tmp;
}

/* Dense dot products over reduction indices kidx[0..len): exact because the
 * compiler proved no partial sum can leave acc_bits (overflow_free), so any
 * summation order gives the hardware's answer (and no int32 sum overflows).
 * Skipped steps are zero products and change nothing. rows, when given (OS),
 * holds the activation rows a[m0+i][kidx[p]]; else they are gathered here. */
static qs_status values_dense(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, const int32_t *kidx,
                              int32_t len, const struct qs_os_rows *rows, uint64_t *ovf, qs_error *err)
{
    dense_weights dw;
    int32_t *val = scratch(&c->aux_buf, &c->aux_cap, sizeof(int32_t) * ((size_t)in->n_len + 1)); /* one row of results */
    if (!val || dense_weights_gather(c, v, in, kidx, len, &dw))
        return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    int32_t *a = c->sched; /* one gathered row */
    act_rows ar;
    const int have_rows = rows || act_rows_init(&ar, v, kidx, len) == 0;
    for (uint32_t i = 0; i < in->m_len; i++) {
        int32_t mm = (int32_t)(in->m0 + i);
        const int32_t *row = a;
        const int16_t *row16 = NULL;
        if (rows) {
            if (rows->a16) row16 = rows->a16 + (size_t)i * dw.lp;
            if (!row16 || !dw.w16) row = os_row32(rows, (int32_t)i, a);
        } else if (have_rows) {
            act_rows_get(&ar, mm, a);
        } else {
            for (int32_t p = 0; p < len; p++) a[p] = act_at(v, mm, kidx[p]);
        }
        dense_row(&dw, row, row16, val);
        store_row(c, v, in, mm, val, ovf);
    }
    if (!rows && have_rows) act_rows_free(&ar);
    return QS_OK;
}

/* ---- zero bits of a layer's GEMM operands (fast engine, value cache) ------------------ */

/* With the layer outputs from the value cache (c->values_known), which
 * activations are zero is known before the run: the cache keeps, per layer,
 * bit m of word row (g*K + k) set when act(m, k) of group g is 0 (the test
 * os_rows and gemm_ws apply to gathered rows), ceil(M/64) words a row. The
 * zero statistics of any tiling are then counts over those bits instead of
 * gathers: what an instruction needs no longer depends on re-reading the
 * input. Built once per input by the first run that needs them. */
static int32_t zb_words(const qs_layer_map *m) { return (int32_t)ceil_div(m->g.M, 64); }

static const uint64_t *zero_bits(qs_array_ctx *c, const gemm_view *v)
{
    if (c->zb_layer == v->layer) return c->zb;
    c->zb_layer = v->layer;
    c->zb = qs_value_cache_zero_bits(c->vc, v->layer);
    if (c->zb) return c->zb;
    const qs_layer_map *m = v->m;
    const int32_t M = m->g.M, K = m->g.K, W = zb_words(m);
    const size_t bytes = sizeof(uint64_t) * (size_t)m->g.groups * (size_t)K * (size_t)W;
    uint64_t *bits = qs_calloc(bytes / sizeof(uint64_t) + 1, sizeof(uint64_t));
    int32_t *kidx = qs_malloc(sizeof(int32_t) * ((size_t)K * 2 + 1));
    if (!bits || !kidx) { /* no bits: the instructions gather as without the cache */
        qs_free(bits);
        qs_free(kidx);
        return NULL;
    }
    int32_t *row = kidx + K;
    for (int32_t k = 0; k < K; k++) kidx[k] = k;
    for (int32_t g = 0; g < m->g.groups; g++) {
        gemm_view vg = *v;
        vg.g = g;
        act_rows ar;
        const int have_rows = act_rows_init(&ar, &vg, kidx, K) == 0;
        uint64_t *gb = bits + (size_t)g * K * W;
        for (int32_t mm = 0; mm < M; mm++) {
            if (have_rows)
                act_rows_get(&ar, mm, row);
            else
                for (int32_t k = 0; k < K; k++) row[k] = act_at(&vg, mm, k);
            const uint64_t bit = (uint64_t)1 << (mm & 63);
            uint64_t *col = gb + (mm >> 6);
            for (int32_t k = 0; k < K; k++)
                if (row[k] == 0) col[(size_t)k * W] |= bit;
        }
        if (have_rows) act_rows_free(&ar);
    }
    qs_free(kidx);
    c->zb = qs_value_cache_put_zero_bits(c->vc, v->layer, bits, bytes);
    return c->zb;
}

/* Which weight slices of the layer are zero: bit n of word row
 * ((g*S + s)*K + k) set when slice s of w(k, n) of group g is 0,
 * ceil(N/64) words a row; kept in the value cache for this slicing. */
static int32_t wzb_words(const qs_layer_map *m) { return (int32_t)ceil_div(m->g.N, 64); }

static const uint64_t *weight_zero_bits(qs_array_ctx *c, const gemm_view *v)
{
    if (c->wzb_layer == v->layer) return c->wzb;
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, W = wzb_words(m), key = v->path_bits * 64 + S;
    c->wzb_layer = v->layer;
    c->wzb = qs_value_cache_weight_bits(c->vc, v->layer, key);
    if (c->wzb) return c->wzb;
    const size_t bytes = sizeof(uint64_t) * (size_t)m->g.groups * (size_t)S * (size_t)K * (size_t)W;
    uint64_t *bits = qs_calloc(bytes / sizeof(uint64_t) + 1, sizeof(uint64_t));
    if (!bits) return NULL;
    for (int32_t g = 0; g < m->g.groups; g++)
        for (int32_t s = 0; s < S; s++) {
            const qs_slice_field f = qs_slice_field_of(m, v->path_bits, s);
            uint64_t *plane = bits + ((size_t)g * S + s) * K * W;
            for (int32_t n = 0; n < N; n++) {
                const int32_t *col = v->w + ((size_t)g * N + n) * K;
                const uint64_t bit = (uint64_t)1 << (n & 63);
                for (int32_t k = 0; k < K; k++)
                    if (qs_slice_of(f, col[k]) == 0) plane[(size_t)k * W + (n >> 6)] |= bit;
            }
        }
    c->wzb = qs_value_cache_put_weight_bits(c->vc, v->layer, key, bits, bytes);
    return c->wzb;
}

/* Set bits of row w in [lo, hi). */
static inline int32_t bits_in(const uint64_t *w, int32_t lo, int32_t hi)
{
    int32_t n = 0;
    while (lo < hi) {
        const int32_t b = lo & 63, take = hi - lo < 64 - b ? hi - lo : 64 - b;
        const uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << b;
        n += __builtin_popcountll(w[lo >> 6] & mask);
        lo += take;
    }
    return n;
}

/* za of os_rows for one row group (output rows [lo, hi) of group g) from the
 * zero bits: zeros per list position. */
QS_VECTOR_CLONES static void za_from_bits(const uint64_t *zb, const gemm_view *v, const int32_t *klist, int32_t kl, int32_t lo,
                         int32_t hi, int32_t *za)
{
    const int32_t W = zb_words(v->m);
    const uint64_t *gb = zb + (size_t)v->g * v->m->g.K * W;
    if (hi - lo <= 64 - (lo & 63)) { /* the group's rows in one word */
        const int32_t b = lo & 63, take = hi - lo;
        const uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << b;
        const uint64_t *col = gb + (lo >> 6);
        for (int32_t q = 0; q < kl; q++) za[q] = __builtin_popcountll(col[(size_t)klist[q] * W] & mask);
        return;
    }
    for (int32_t q = 0; q < kl; q++) za[q] = bits_in(gb + (size_t)klist[q] * W, lo, hi);
}

/* ---- activation rows of an OS instruction (fast engine) ----------------------------- */

/* The instruction's activation rows and what depends on them alone: the zero
 * counts of each row group (schedule and gating), the rows in int16 and
 * their sums of |x| (values). Every n-block of a layer reads the same rows
 * for a given m-tile and k-chunk, with the same reduction indices unless
 * weight skipping removed different ones (always without it), so they are
 * kept per (group, m-tile, k-chunk) of the current layer and reused when
 * layer, group, rows and list positions match and n0 has grown since the
 * slot was filled or last used: a run (or a restart) reaches every
 * (m-tile, k-chunk) of a layer first with n-block 0, whichever the loop
 * order, so a growing n0 means the same pass over the layer, during which
 * its input does not change. Slots past rows_budget bytes are not kept (the
 * spare slot serves, for consecutive instructions only). Row groups are
 * numbered across the instruction's array tiles: ceil(R/G) per tile. */
QS_VECTOR_CLONES static const struct qs_os_rows *os_rows(qs_array_ctx *c, const gemm_view *v, const qs_insn *in)
{
    const qs_layer_map *m = v->m;
    const int32_t kl = (int32_t)in->k_len, lp = (kl + 15) & ~15, ml = (int32_t)in->m_len;
    const int32_t *klist = v->list + in->k0;
    /* the groups gemm_os schedules (whole columns under the scalesim convention) */
    const int32_t R = c->arch->rows, G = lockstep_group(c->arch), ngt = (int32_t)ceil_div(R, G);
    const int32_t n_groups = (int32_t)ceil_div(ml, R) * ngt;
    /* activations (and the padding value) fit int16 whenever the input does:
     * then only the int16 rows are kept */
    const int fit16 = acts_fit_i16(m, v->za);
    const size_t bytes = sizeof(int64_t) * ((size_t)ml + 1) +
                         sizeof(int32_t) * ((size_t)kl + (fit16 ? 0 : (size_t)ml * kl) + (size_t)n_groups * kl + 1) +
                         sizeof(int16_t) * ((size_t)ml * lp + 16);
    /* the slot: instructions start at multiples of tm and tk */
    struct qs_os_rows *w = &c->rows_spare;
    const int32_t n_mt = (int32_t)ceil_div(m->g.M, m->tm), n_kc = (int32_t)ceil_div(m->g.K, m->tk);
    const int64_t n_slots = (int64_t)m->g.groups * n_mt * n_kc;
    if (in->m0 % (uint32_t)m->tm == 0 && in->k0 % (uint32_t)m->tk == 0 && n_slots <= INT32_MAX / 2) {
        if (n_slots > c->n_rows) {
            struct qs_os_rows *nr = qs_realloc(c->rows, sizeof *nr * (size_t)n_slots);
            if (nr) {
                memset(nr + c->n_rows, 0, sizeof *nr * (size_t)(n_slots - c->n_rows));
                c->rows = nr;
                c->n_rows = (int32_t)n_slots;
            }
        }
        int64_t i = ((int64_t)in->group * n_mt + in->m0 / (uint32_t)m->tm) * n_kc + in->k0 / (uint32_t)m->tk;
        if (i < c->n_rows && (c->rows[i].cap >= bytes || c->rows_bytes + bytes + bytes / 4 - c->rows[i].cap <= c->rows_budget))
            w = &c->rows[i];
    }
    if (w->valid && w->layer == (int32_t)in->layer && w->group == (int32_t)in->group && w->m0 == in->m0 &&
        w->m_len == in->m_len && w->k0 == in->k0 && w->k_len == in->k_len && (int32_t)in->n0 > w->n0 &&
        memcmp(w->klist, klist, sizeof(int32_t) * (size_t)kl) == 0) {
        w->n0 = (int32_t)in->n0;
        return w;
    }
    w->valid = 0;
    const size_t cap0 = w->cap;
    int64_t *sum_abs = scratch(&w->buf, &w->cap, bytes);
    if (w != &c->rows_spare) c->rows_bytes = c->rows_bytes - cap0 + w->cap;
    if (!sum_abs) return NULL;
    w->sum_abs = sum_abs;
    w->klist = (int32_t *)(sum_abs + ml + 1);
    w->za = w->klist + kl;
    w->a = fit16 ? NULL : w->za + (size_t)n_groups * kl;
    w->a16 = (int16_t *)(w->za + (size_t)n_groups * kl + (fit16 ? 0 : (size_t)ml * kl) + 1);
    memcpy(w->klist, klist, sizeof(int32_t) * (size_t)kl);
    memset(w->za, 0, sizeof(int32_t) * (size_t)n_groups * kl);
    act_rows ar;
    const int have_rows = act_rows_init(&ar, v, klist, kl) == 0;
    for (int32_t i = 0; i < ml; i++) {
        int32_t *restrict row = w->a ? w->a + (size_t)i * kl : c->sched;
        if (have_rows)
            act_rows_get(&ar, (int32_t)in->m0 + i, row);
        else
            for (int32_t q = 0; q < kl; q++) row[q] = act_at(v, (int32_t)in->m0 + i, klist[q]);
        int32_t *restrict za = w->za + ((size_t)(i / R) * ngt + (size_t)(i % R) / G) * kl;
        for (int32_t q = 0; q < kl; q++) za[q] += row[q] == 0;
        w->sum_abs[i] = abs_sum(row, kl);
        if (fit16) {
            int16_t *restrict r16 = w->a16 + (size_t)i * lp;
            for (int32_t q = 0; q < kl; q++) r16[q] = (int16_t)row[q];
            for (int32_t q = kl; q < lp; q++) r16[q] = 0;
        }
    }
    if (have_rows) act_rows_free(&ar);
    if (!fit16) w->a16 = NULL;
    w->layer = (int32_t)in->layer;
    w->group = (int32_t)in->group;
    w->n0 = (int32_t)in->n0;
    w->m0 = in->m0;
    w->m_len = in->m_len;
    w->k0 = in->k0;
    w->k_len = in->k_len;
    w->valid = 1;
    return w;
}

/* ---- per-layer weight slices and weight facts (fast engine) -------------------------- */

/* The current layer's weight slices side by side (struct qs_layer_slices),
 * built once per layer into a buffer that is kept. Only loops that run
 * across columns over every slice need them: most layers never do (an OS
 * layer that cannot overflow takes its values and gating counts straight
 * from the weights), so the program does not carry them. NULL when out of
 * memory. */
QS_VECTOR_CLONES static const int16_t *layer_slices(qs_array_ctx *c, const gemm_view *v, int32_t layer)
{
    struct qs_layer_slices *sl = &c->slices;
    if (sl->layer == layer) return sl->w;
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N;
    sl->layer = -1;
    sl->w = scratch(&sl->buf, &sl->cap, sizeof(int16_t) * ((size_t)m->g.groups * S * K * N + 1));
    if (!sl->w) return NULL;
    for (int32_t g = 0; g < m->g.groups; g++)
        for (int32_t s = 0; s < S; s++) {
            const qs_slice_field f = qs_slice_field_of(m, v->path_bits, s);
            int16_t *plane = sl->w + ((size_t)g * S + s) * K * N;
            for (int32_t n = 0; n < N; n++) {
                const int32_t *col = v->w + ((size_t)g * N + n) * K;
                for (int32_t k = 0; k < K; k++) plane[(size_t)k * N + n] = (int16_t)qs_slice_of(f, col[k]);
            }
        }
    sl->layer = layer;
    return sl->w;
}

/* Facts about the weights of the instruction's layer, computed once per
 * layer (a layer's instructions follow each other: the layer barrier) from
 * the weights, without building slices:
 *   nzk (gating on): per entry of m->list (reduction index k of block nb),
 *     the non-zero slices s of w(k, n) over the block's columns n;
 *   wmax, ovmax (layers not overflow_free, see values_checked): per column
 *     g*N + n, the largest |w(k, n)| and the largest overshoot
 *     max_s |W_(k,n,s)| - |w(k, n)| over every k, W_s the partial slice sums.
 * The overshoot of one weight w in closed form: the slices below the top one
 * are unsigned fields, so for s < S-1 the partial sum W_s is w's low
 * p*(s+1) bits, non-negative and growing with s, largest at s = S-2 (w's low
 * p*(S-1) bits); W_(S-1) = w. So max_s |W_s| - |w| = max(0, low - |w|) with
 * low = w & (2^(p*(S-1)) - 1), and 0 for a weight of one slice. Partial
 * slice sums of a weight of at most 16 bits stay well inside int32. */
QS_VECTOR_CLONES static const struct qs_layer_facts *layer_facts(qs_array_ctx *c, const gemm_view *v, int32_t layer)
{
    struct qs_layer_facts *f = &c->facts;
    if (f->layer == layer) return f;
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, C = c->arch->cols, wpb = c->arch->weight_path_bits;
    const int need_bounds = !m->overflow_free;
    const size_t n_list = (size_t)m->list_off[m->n_lists], cols = (size_t)m->g.groups * N;
    const int32_t nbl = m->blocks_per_group, gate = gating(c->arch);
    f->layer = -1;
    /* nzk, wmax, ovmax, then per n-block the non-zero slices per k */
    size_t words = n_list + 2 * cols + (size_t)K + 1;
    if (!scratch(&f->buf, &f->cap, sizeof(int32_t) * words)) return NULL;
    f->nzk = f->buf;
    f->wmax = f->nzk + n_list;
    f->ovmax = f->wmax + cols;
    int32_t *nz_of_k = f->ovmax + cols;
    const int32_t low_mask = S > 1 ? (1 << (wpb * (S - 1))) - 1 : 0; /* w's bits below its top slice */
    for (int32_t g = 0; g < m->g.groups; g++) {
        if (gate)
            for (int32_t nb = 0; nb < nbl; nb++) {
                /* the block's columns are rows of the weight tensor: k runs along them */
                for (int32_t k = 0; k < K; k++) nz_of_k[k] = 0;
                for (int32_t n = nb * C; n < min32(N, (nb + 1) * C); n++) {
                    const int32_t *restrict col = v->w + ((size_t)g * N + n) * K;
                    for (int32_t s = 0; s < S; s++) {
                        const qs_slice_field sf = qs_slice_field_of(m, wpb, s);
                        for (int32_t k = 0; k < K; k++) nz_of_k[k] += qs_slice_of(sf, col[k]) != 0;
                    }
                }
                const int32_t li = g * nbl + nb;
                for (int32_t e = m->list_off[li]; e < m->list_off[li + 1]; e++) f->nzk[e] = nz_of_k[m->list[e]];
            }
        if (need_bounds)
            for (int32_t n = 0; n < N; n++) {
                const int32_t *restrict col = v->w + ((size_t)g * N + n) * K;
                int32_t wmax = 0, ovmax = 0;
                for (int32_t k = 0; k < K; k++) {
                    const int32_t t = col[k] < 0 ? -col[k] : col[k], ov = (col[k] & low_mask) - t;
                    wmax = t > wmax ? t : wmax;
                    ovmax = ov > ovmax ? ov : ovmax;
                }
                f->wmax[(size_t)g * N + n] = wmax;
                f->ovmax[(size_t)g * N + n] = ovmax;
            }
    }
    f->layer = layer;
    return f;
}

/* ---- values, fast engine, OS layers that may overflow ------------------------- */

/* The hardware's ordered accumulation of one output row (OS): acc[j] for the
 * PE of column n0 + j, j < Cu, starting from 0, adding for list positions
 * q = 0..kl-1 (reduction index klist[q], activation row[q]) and slices
 * s = 0..S-1 the product row[q] * slice_s << (p*s) in acc_bits arithmetic;
 * counts the additions that overflow. A skipped step (x = 0 on every lane of
 * the group) and a gated product (a zero operand) add 0, which leaves an
 * in-range accumulator unchanged and never overflows, so visiting every list
 * position and adding zero products is the same as following the schedule.
 * Columns side by side so that the inner loop vectorizes. */
QS_VECTOR_CLONES static void ordered_row(const qs_arch *a, const gemm_view *v, const int16_t *ws, const int32_t *klist,
                                          int32_t kl, const int32_t *row, int32_t n0, int32_t Cu, int64_t *restrict acc,
                                          uint64_t *ovf)
{
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, wpb = a->weight_path_bits;
    const int64_t lo = -((int64_t)1 << (a->acc_bits - 1)), hi = -lo - 1;
    const uint64_t mask = ((uint64_t)1 << a->acc_bits) - 1;
    const int wrap = a->overflow != QS_OVF_SATURATE;
    uint64_t o = 0;
    for (int32_t j = 0; j < Cu; j++) acc[j] = 0;
    for (int32_t q = 0; q < kl; q++) {
        if (row[q] == 0) continue;
        for (int32_t s = 0; s < S; s++) {
            const int16_t *restrict y = &ws[(((size_t)v->g * S + s) * K + klist[q]) * N + n0];
            const int64_t xs = (int64_t)row[q] * ((int64_t)1 << (wpb * s));
            for (int32_t j = 0; j < Cu; j++) {
                int64_t t = acc[j] + xs * y[j];
                int out = t < lo || t > hi;
                o += (uint64_t)out;
                /* wrap: the value in [lo, hi] congruent to t modulo 2^acc_bits */
                acc[j] = wrap ? lo + (int64_t)((uint64_t)(t - lo) & mask) : t < lo ? lo : t > hi ? hi : t;
            }
        }
    }
    *ovf += o;
}

/* Whether the partial sums of one output row, in the hardware's order, stay
 * inside [lo, hi], and the exact final sums. For the PE of column j, with
 * P_q = sum_(q'<=q) x_q' w_q'j after list position q, step q's partial sums
 * are P_(q-1) + x_q * W_(q,j,s) for s < S; they lie between P_(q-1) +
 * x_q * wlo and P_(q-1) + x_q * whi (wlo, whi: min and max over s of
 * W_(q,j,s), at [q*Cu + j]; the other way round for x_q < 0), and since the
 * last one is P_q itself (W_(q,j,S-1) = w_qj, at wq[q*Cu + j]) the bounds
 * are reached. So bad[j] = 0 exactly when no addition of the PE overflows,
 * and then P[j] is its value. A zero activation (skipped step, or gated
 * products) adds nothing and is passed over. */
QS_VECTOR_CLONES static void prefix_row(const int32_t *restrict row, int32_t kl, int32_t Cu, const int32_t *restrict wq,
                       const int32_t *restrict wlo, const int32_t *restrict whi, int64_t lo, int64_t hi,
                       int64_t *restrict P, int32_t *restrict bad)
{
    for (int32_t j = 0; j < Cu; j++) P[j] = bad[j] = 0;
    for (int32_t q = 0; q < kl; q++) {
        const int64_t x = row[q];
        if (x == 0) continue;
        const int32_t *restrict mn = (x > 0 ? wlo : whi) + (size_t)q * Cu, *restrict mx = (x > 0 ? whi : wlo) + (size_t)q * Cu;
        const int32_t *restrict w = wq + (size_t)q * Cu;
        for (int32_t j = 0; j < Cu; j++) {
            const int64_t p = P[j];
            bad[j] |= (p + x * mn[j] < lo) | (p + x * mx[j] > hi);
            P[j] = p + x * w[j];
        }
    }
}

/* prefix_row in 32-bit lanes (twice as many per vector), for when every
 * partial sum it must judge fits int32: |P_(q-1)| <= 2^(acc_bits-1) on a
 * lane not yet found bad, plus |x_q W| <= xwmax, below 2^31. The arithmetic
 * is done modulo 2^32 (uint32): exact on the lanes that matter; a lane found
 * bad keeps its flag whatever its sums become. */
QS_VECTOR_CLONES static void prefix_row32(const int32_t *restrict row, int32_t kl, int32_t Cu, const int32_t *restrict wq,
                         const int32_t *restrict wlo, const int32_t *restrict whi, int32_t lo, int32_t hi,
                         uint32_t *restrict P, int64_t *restrict P64, int32_t *restrict bad)
{
    for (int32_t j = 0; j < Cu; j++) P[j] = 0, bad[j] = 0;
    for (int32_t q = 0; q < kl; q++) {
        const uint32_t x = (uint32_t)row[q];
        if (x == 0) continue;
        const int32_t *restrict mn = (row[q] > 0 ? wlo : whi) + (size_t)q * Cu;
        const int32_t *restrict mx = (row[q] > 0 ? whi : wlo) + (size_t)q * Cu;
        const int32_t *restrict w = wq + (size_t)q * Cu;
        for (int32_t j = 0; j < Cu; j++) {
            const int32_t l = (int32_t)(P[j] + x * (uint32_t)mn[j]), h = (int32_t)(P[j] + x * (uint32_t)mx[j]);
            bad[j] |= (l < lo) | (h > hi);
            P[j] += x * (uint32_t)w[j];
        }
    }
    for (int32_t j = 0; j < Cu; j++) P64[j] = (int32_t)P[j];
}

static _Atomic uint64_t paths_row_bound, paths_prefix, paths_ordered_rows;
static _Atomic int wide_lanes_only;

void qs_array_wide_lanes_only(int on) { atomic_store_explicit(&wide_lanes_only, on, memory_order_relaxed); }

void qs_array_value_paths(qs_value_paths *out)
{
    out->row_bound = atomic_load_explicit(&paths_row_bound, memory_order_relaxed);
    out->prefix = atomic_load_explicit(&paths_prefix, memory_order_relaxed);
    out->ordered_rows = atomic_load_explicit(&paths_ordered_rows, memory_order_relaxed);
}

/* ordered_row in 32-bit lanes, for when acc + x * slice << (p*s) always fits
 * int32: the accumulator stays within [lo, hi] and |x * slice << (p*s)| <=
 * 2 * amax * max |W| (a slice is the difference of two partial sums W), so
 * the caller checks 2^(acc_bits-1) + 2 * amax * max |W| <= INT32_MAX.
 * Wrapping is done modulo 2^32 (uint32), a multiple of 2^acc_bits. */
QS_VECTOR_CLONES static void ordered_row32(const qs_arch *a, const gemm_view *v, const int16_t *ws, const int32_t *klist,
                                            int32_t kl, const int32_t *row, int32_t n0, int32_t Cu, int32_t *restrict acc,
                                            int64_t *acc64, uint64_t *ovf)
{
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, wpb = a->weight_path_bits;
    const int32_t lo = (int32_t)-((int64_t)1 << (a->acc_bits - 1)), hi = -(lo + 1);
    const uint32_t mask = (uint32_t)(((uint64_t)1 << a->acc_bits) - 1);
    const int wrap = a->overflow != QS_OVF_SATURATE;
    uint32_t o = 0;
    for (int32_t j = 0; j < Cu; j++) acc[j] = 0;
    for (int32_t q = 0; q < kl; q++) {
        if (row[q] == 0) continue;
        for (int32_t s = 0; s < S; s++) {
            const int16_t *restrict y = &ws[(((size_t)v->g * S + s) * K + klist[q]) * N + n0];
            const int32_t x = row[q], sh = 1 << (wpb * s);
            for (int32_t j = 0; j < Cu; j++) {
                const int32_t t = acc[j] + x * (y[j] * sh); /* |y << (p*s)| <= 2 max |W| */
                o += (uint32_t)((t < lo) | (t > hi));
                acc[j] = wrap ? lo + (int32_t)(((uint32_t)t - (uint32_t)lo) & mask) : t < lo ? lo : t > hi ? hi : t;
            }
        }
    }
    for (int32_t j = 0; j < Cu; j++) acc64[j] = acc[j];
    *ovf += o;
}

/* Values of an OS instruction (fast engine) in a layer the compiler could not
 * prove overflow-free; rows (os_rows) holds its activation rows.
 *
 * Why most outputs still take the exact sum: PE (i, j) starts the tile at 0
 * and adds, for the surviving steps e in list order and within a step for
 * slices s = 0..S-1, x_e * slice_s(w_e) << (p*s). While nothing has
 * overflowed, its partial sum after slice s of step e is
 *     P_(e-1) + x_e * W_(e,s),  P_(e-1) = sum_(e'<e) x_e' * w_e',
 *                               W_(e,s) = sum_(s'<=s) slice_s'(w_e) << (p*s'),
 * with W_(e,S-1) = w_e (the slices add up to the weight); if all of them lie
 * in the accumulator's range, no addition overflows and the PE ends with the
 * exact sum in either overflow mode (with no overflow counted). Let
 *     ov_e = max_s |W_(e,s)| - |w_e| >= 0
 * be how far step e's partial products overshoot its final one (the low
 * slices of a negative weight are unsigned: w = -1 on a 2-bit path is
 * 3 + 3*4 + 3*16 - 1*64, partials 3, 15, 63, -1, so ov = 62). Then
 *     |P_(e-1) + x_e * W_(e,s)| <= sum_(e'<e) |x_e'| |w_e'| + |x_e| (|w_e| + ov_e)
 *                               <= (sum_e |x_e|) * wmax_j + amax * ovmax_j
 * with wmax_j = max_e |w_e|, ovmax_j = max_e ov_e over the column's weights
 * (layer_facts) and amax >= |x_e| the largest magnitude of the layer's
 * activations. When this row bound, O(1) per output, is <= 2^(acc_bits-1) - 1
 * the output takes the dense dot product. Else the row's partial sums are
 * followed in the hardware's order at step granularity (prefix_row, O(k_len)
 * per output), which decides exactly whether an addition overflows; only
 * rows where one does are accumulated slice by slice (ordered_row). The sums
 * run over all list positions of the instruction: a position a group's
 * schedule skips has x = 0 on its rows and adds nothing. */
static qs_status values_checked(qs_array_ctx *c, const gemm_view *v, const qs_insn *in,
                                const struct qs_os_rows *rows, uint64_t *ovf, qs_error *err)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, wpb = a->weight_path_bits;
    const int32_t kl = (int32_t)in->k_len, Cu = (int32_t)in->n_len, n0 = (int32_t)in->n0;
    const int32_t *klist = v->list + in->k0;
    const int64_t accmax = ((int64_t)1 << (a->acc_bits - 1)) - 1;
    dense_weights dw;
    if (dense_weights_gather(c, v, in, klist, kl, &dw))
        return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    const struct qs_layer_facts *f = layer_facts(c, v, (int32_t)in->layer);
    const int16_t *ws = NULL; /* the layer's slices, built when a row first needs them */
    /* P (also in 32 bits) and ordered_row's sums, one row of results and of
     * flags; per (list position, column), filled when a row first needs
     * prefix_row: w, and the min and max over s of the partial slice sums W */
    int64_t *P = scratch(&c->aux_buf, &c->aux_cap, sizeof(int64_t) * (2 * (size_t)Cu + 1) +
                                                      sizeof(int32_t) * (3 * (size_t)Cu * kl + 4 * (size_t)Cu));
    if (!f || !P) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    int64_t *acc64 = P + Cu;
    int32_t *val = (int32_t *)(acc64 + Cu), *bad = val + Cu, *row_ok = bad + Cu;
    uint32_t *P32 = (uint32_t *)(row_ok + Cu);
    int32_t *wq = (int32_t *)(P32 + Cu), *wlo = wq + (size_t)Cu * kl, *whi = wlo + (size_t)Cu * kl;
    int have_w = 0;
    const int32_t *wmax = f->wmax + (size_t)v->g * N + n0, *ovmax = f->ovmax + (size_t)v->g * N + n0;
    int64_t wmax_all = 0;
    for (int32_t j = 0; j < Cu; j++)
        if (wmax[j] > wmax_all) wmax_all = wmax[j];
    int32_t alo, ahi; /* activations lie in the input's range; padding is its zero point */
    qs_int_range(m->act_bits, m->act_signed, &alo, &ahi);
    int64_t amax = -(int64_t)alo > ahi ? -(int64_t)alo : ahi;
    if (v->za > amax || -(int64_t)v->za > amax) amax = v->za < 0 ? -(int64_t)v->za : v->za;
    int64_t wpart_max = 0; /* >= every |W| of the instruction's columns */
    for (int32_t j = 0; j < Cu; j++)
        if (wmax[j] + ovmax[j] > wpart_max) wpart_max = wmax[j] + ovmax[j];
    const int narrow = !atomic_load_explicit(&wide_lanes_only, memory_order_relaxed);
    const int narrow_ok = narrow && accmax + 1 + amax * wpart_max <= INT32_MAX;       /* prefix_row32 applies */
    const int narrow_ord = narrow && accmax + 1 + 2 * amax * wpart_max <= INT32_MAX; /* ordered_row32 applies */

    uint64_t n_row = 0, n_prefix = 0, n_ordered = 0;
    for (uint32_t i = 0; i < in->m_len; i++) {
        /* the row in int32, made only when needed */
        const int32_t *row = rows->a || !dw.w16 ? os_row32(rows, (int32_t)i, c->sched) : NULL;
        const int64_t sx = rows->sum_abs[i];
        /* every partial sum of the dense products is within sx * wmax_all:
         * the int32 dot products are safe when that fits */
        const int dense_ok = sx * wmax_all <= INT32_MAX;
        if (dense_ok) dense_row(&dw, row, rows->a16 ? rows->a16 + (size_t)i * dw.lp : NULL, val);
        int32_t by_row = 0;
        for (int32_t j = 0; j < Cu; j++) {
            row_ok[j] = dense_ok && sx * wmax[j] + amax * ovmax[j] <= accmax;
            by_row += row_ok[j];
        }
        if (by_row == Cu) {
            n_row += (uint64_t)Cu;
            store_row(c, v, in, (int32_t)in->m0 + (int32_t)i, val, ovf);
            continue;
        }
        if (!have_w) { /* w, min_s W and max_s W of the instruction's weights (see layer_facts) */
            if (!(ws = layer_slices(c, v, (int32_t)in->layer)))
                return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
            for (int32_t q = 0; q < kl; q++) {
                int32_t *wv = wq + (size_t)q * Cu, *mn = wlo + (size_t)q * Cu, *mx = whi + (size_t)q * Cu;
                for (int32_t j = 0; j < Cu; j++) wv[j] = mn[j] = mx[j] = 0;
                for (int32_t s = 0; s < S; s++) {
                    const int16_t *y = &ws[(((size_t)v->g * S + s) * K + klist[q]) * N + n0];
                    for (int32_t j = 0; j < Cu; j++) {
                        wv[j] += (int32_t)y[j] * (1 << (wpb * s));
                        mn[j] = s == 0 || wv[j] < mn[j] ? wv[j] : mn[j];
                        mx[j] = s == 0 || wv[j] > mx[j] ? wv[j] : mx[j];
                    }
                }
            }
            have_w = 1;
        }
        if (!row) row = os_row32(rows, (int32_t)i, c->sched);
        if (narrow_ok)
            prefix_row32(row, kl, Cu, wq, wlo, whi, (int32_t)(-accmax - 1), (int32_t)accmax, P32, P, bad);
        else
            prefix_row(row, kl, Cu, wq, wlo, whi, -accmax - 1, accmax, P, bad);
        int ordered = 0;
        for (int32_t j = 0; j < Cu; j++) {
            if (row_ok[j]) continue;
            ordered |= bad[j];
            val[j] = (int32_t)P[j]; /* in range when !bad[j] */
        }
        if (ordered) {
            if (narrow_ord)
                ordered_row32(a, v, ws, klist, kl, row, n0, Cu, (int32_t *)P32, acc64, ovf);
            else
                ordered_row(a, v, ws, klist, kl, row, n0, Cu, acc64, ovf);
            for (int32_t j = 0; j < Cu; j++) val[j] = (int32_t)acc64[j];
            n_ordered++;
        } else {
            n_row += (uint64_t)by_row;
            n_prefix += (uint64_t)(Cu - by_row);
        }
        store_row(c, v, in, (int32_t)in->m0 + (int32_t)i, val, ovf);
    }
    atomic_fetch_add_explicit(&paths_row_bound, n_row, memory_order_relaxed);
    atomic_fetch_add_explicit(&paths_prefix, n_prefix, memory_order_relaxed);
    atomic_fetch_add_explicit(&paths_ordered_rows, n_ordered, memory_order_relaxed);
    return QS_OK;
}

/* ---- schedules ---------------------------------------------------------------- */

/* OS: for row group rows [r0, r1) of array tile starting at output row mb,
 * the list positions whose step survives activation skipping. */
static int32_t os_schedule(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, int32_t mb, int32_t r0,
                           int32_t r1, int32_t *out)
{
    int32_t n = 0;
    for (uint32_t p = in->k0; p < in->k0 + in->k_len; p++) {
        int keep = !act_skip(c->arch);
        for (int32_t r = r0; r < r1 && !keep; r++) keep = act_at(v, mb + r, v->list[p]) != 0;
        if (keep) out[n++] = (int32_t)p;
    }
    return n;
}

/* OS, fast engine: the length of os_schedule's list for a group of Gu rows
 * whose zero activations per list position k0 + q are za[q] (os_rows), and
 * the MACs gated by a zero operand: each surviving step with za zero
 * activations feeds S slices of Cu columns, nzk[q] of them non-zero, so it
 * gates za * S * Cu + (Gu - za) * (S * Cu - nzk[q]) products, which is
 *     Gu * S * Cu - Gu * nzk[q] + za * nzk[q].
 * The sums over the surviving steps are taken without branches, in uint32
 * over chunks short enough that they cannot wrap (za * nzk <= G * S * C). */
QS_VECTOR_CLONES static int32_t os_schedule_fast(qs_array_ctx *c, const qs_insn *in, const int32_t *restrict za, int32_t Gu,
                                const int32_t *restrict nzk, int32_t S, int32_t Cu, uint64_t *gated)
{
    const int skip = act_skip(c->arch), gate = gating(c->arch);
    const int32_t kl = (int32_t)in->k_len;
    if (!skip && !gate) {
        *gated = 0;
        return kl;
    }
    const int64_t unit = (int64_t)Gu * S * Cu + 1; /* > each term */
    const int32_t chunk = unit >= ((int64_t)1 << 20) ? 1 : (int32_t)(((int64_t)1 << 31) / unit);
    const uint32_t all = skip ? 0u : 1u;
    int64_t n = 0, snz = 0, sznz = 0;
    for (int32_t q0 = 0; q0 < kl; q0 += chunk) {
        const int32_t q1 = kl - q0 < chunk ? kl : q0 + chunk;
        uint32_t cn = 0, cs = 0, cz = 0;
        for (int32_t q = q0; q < q1; q++) {
            const uint32_t keep = all | (uint32_t)(za[q] != Gu), mask = 0u - keep;
            cn += keep;
            if (gate) {
                cs += mask & (uint32_t)nzk[q];
                cz += mask & ((uint32_t)za[q] * (uint32_t)nzk[q]);
            }
        }
        n += cn;
        snz += cs;
        sznz += cz;
    }
    *gated = gate ? (uint64_t)(n * Gu * S * Cu - Gu * snz + sznz) : 0;
    return (int32_t)n;
}

/* ---- lookahead weight schedule (docs/timing.md "Lookahead weight skipping") ---------- */

/* What the schedule of one instruction's n-block gives: schedule cycles,
 * effectual (step, column) slots (a weight slice that is not zero), and
 * (list position, column) pairs whose weight is not zero. */
typedef struct {
    int64_t cycles, slots, pos_cols;
} la_counts;

/* The greedy schedule of the instruction's steps e = q * S + s (list
 * position k0 + q, slice s; L = k_len * S of them) on its Cu columns, which
 * all rows share. Column j is effectual at e when slice s of its weight is
 * not zero. The activation window holds steps [head, head + H]. Each cycle
 * every column whose next effectual step lies in the window takes it (so a
 * column still runs its own steps in order); head then moves to the earliest
 * step some column has not taken (none left: done). With head_out / off_out
 * (detailed engine) the cycle's head and each column's window index (-1:
 * idle) are written, off_out[cycle * Cu + j]. Returns 0 when out of memory
 * for the columns' step lists (c->la_buf). */
static int la_schedule(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, int32_t H, la_counts *out,
                       int32_t *head_out, int8_t *off_out)
{
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, kl = (int32_t)in->k_len, L = kl * S, Cu = (int32_t)in->n_len;
    const size_t per = (size_t)L + 1;
    int32_t *eff = scratch(&c->la_buf, &c->la_cap, sizeof(int32_t) * (per * (size_t)Cu + 2 * (size_t)Cu + 1));
    if (!eff) return 0;
    int32_t *cnt = eff + per * (size_t)Cu, *at = cnt + Cu;
    qs_slice_field f[16];
    for (int32_t s = 0; s < S && s < 16; s++) f[s] = qs_slice_field_of(m, c->arch->weight_path_bits, s);
    la_counts n = {0, 0, 0};
    const int32_t *klist = v->list + in->k0;
    for (int32_t j = 0; j < Cu; j++) {
        const int32_t *restrict col = v->w + ((size_t)v->g * m->g.N + in->n0 + (uint32_t)j) * m->g.K;
        int32_t *restrict ej = eff + per * (size_t)j, k = 0;
        /* appended without branches: ternary-like weights are zero about
         * half the time, which no branch predictor guesses */
        int64_t pc = 0;
        for (int32_t q = 0; q < kl; q++) {
            const int32_t w = col[klist[q]];
            pc += w != 0;
            for (int32_t s = 0; s < S; s++) {
                ej[k] = q * S + s;
                k += qs_slice_of(f[s], w) != 0;
            }
        }
        n.pos_cols += pc;
        ej[k] = L; /* sentinel: no step left */
        cnt[j] = k;
        at[j] = 0;
    }
    int32_t head = L;
    for (int32_t j = 0; j < Cu; j++)
        if (eff[per * (size_t)j] < head) head = eff[per * (size_t)j];
    while (head < L) {
        int32_t next_head = L;
        for (int32_t j = 0; j < Cu; j++) {
            const int32_t *ej = eff + per * (size_t)j;
            const int32_t e = ej[at[j]], take = (e <= head + H) & (at[j] < cnt[j]);
            if (off_out) off_out[(size_t)n.cycles * Cu + j] = (int8_t)(take ? e - head : -1);
            n.slots += take;
            at[j] += take;
            const int32_t e2 = ej[at[j]];
            next_head = e2 < next_head ? e2 : next_head;
        }
        if (head_out) head_out[n.cycles] = head;
        n.cycles++;
        head = next_head;
    }
    *out = n;
    return 1;
}

/* Fast engine: la_schedule's counts, kept per (group, n-block, k-chunk) of
 * the current layer, since every m-tile of the layer has the same weights
 * (struct qs_la_cache). Instructions that do not start on a block or chunk
 * boundary are scheduled afresh. Returns 0 when out of memory. */
static int la_counts_of(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, la_counts *out)
{
    const qs_layer_map *m = v->m;
    const int32_t C = c->arch->cols;
    struct qs_la_cache *lc = &c->la_cache;
    const int32_t n_kc = (int32_t)ceil_div(m->g.K, m->tk);
    const int64_t n_slots = (int64_t)m->n_lists * n_kc;
    int64_t i = -1;
    if (in->n0 % (uint32_t)C == 0 && in->k0 % (uint32_t)m->tk == 0 && n_slots <= INT32_MAX / 4) {
        if (lc->layer != v->layer || lc->n < n_slots) {
            if (lc->cap < n_slots) {
                void *nb = qs_realloc(lc->slot, sizeof *lc->slot * (size_t)n_slots);
                if (!nb) return 0;
                lc->slot = nb;
                lc->cap = n_slots;
            }
            memset(lc->slot, 0, sizeof *lc->slot * (size_t)n_slots);
            lc->layer = v->layer;
            lc->n = n_slots;
        }
        i = ((int64_t)in->group * m->blocks_per_group + in->n0 / (uint32_t)C) * n_kc + in->k0 / (uint32_t)m->tk;
        if (lc->slot[i].valid && lc->slot[i].k_len == in->k_len && lc->slot[i].n_len == in->n_len) {
            out->cycles = lc->slot[i].cycles;
            out->slots = lc->slot[i].slots;
            out->pos_cols = lc->slot[i].pos_cols;
            return 1;
        }
    }
    if (!la_schedule(c, v, in, c->arch->lookahead, out, NULL, NULL)) return 0;
    if (i >= 0) {
        lc->slot[i].valid = 1;
        lc->slot[i].k_len = in->k_len;
        lc->slot[i].n_len = in->n_len;
        lc->slot[i].cycles = out->cycles;
        lc->slot[i].slots = out->slots;
        lc->slot[i].pos_cols = out->pos_cols;
    }
    return 1;
}

/* Per list position k0 + q of the instruction, the non-zero weight slices
 * across its Cu columns (gating counts): from the layer's facts for a whole
 * n-block, else counted into c->kidx. */
static const int32_t *os_nzk(qs_array_ctx *c, const gemm_view *v, const qs_insn *in)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t Cu = (int32_t)in->n_len, S = m->slices, kl = (int32_t)in->k_len;
    /* the layer's counts cover whole n-blocks, as the compiler emits them */
    int32_t nb = (int32_t)in->n0 / a->cols;
    if ((int32_t)in->n0 == nb * a->cols && Cu == min32(a->cols, m->g.N - (int32_t)in->n0)) {
        const struct qs_layer_facts *f = layer_facts(c, v, (int32_t)in->layer);
        if (f) return f->nzk + (v->list - m->list) + in->k0;
    }
    int32_t *cnt = c->kidx;
    for (int32_t q = 0; q < kl; q++) {
        int32_t nz = 0, k = v->list[in->k0 + q];
        for (int32_t s = 0; s < S; s++)
            for (int32_t j = 0; j < Cu; j++) nz += wslice_at(v, s, k, (int32_t)in->n0 + j) != 0;
        cnt[q] = nz;
    }
    return cnt;
}

/* OS with lookahead: every row of an array tile follows the n-block's one
 * weight schedule; activation zeros only gate. */
static qs_status gemm_os_lookahead(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, qs_tile_result *r,
                                   qs_error *err)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t R = a->rows, S = m->slices, wpb = a->weight_path_bits, H = a->lookahead, W = H + 1;
    const int32_t ob = offset_bits(a), rate = qs_array_stream_rate(a, m);
    const int32_t Cu = (int32_t)in->n_len, kl = (int32_t)in->k_len, L = kl * S;
    const struct qs_os_rows *rows = NULL;
    const int32_t *nzk = NULL;
    int32_t *heads = NULL;
    int8_t *offs = NULL;
    la_counts n;
    if (c->engine == QS_ENGINE_FAST) {
        rows = os_rows(c, v, in);
        if (!rows || !la_counts_of(c, v, in, &n))
            return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
        nzk = os_nzk(c, v, in);
    } else {
        /* the cycle heads, then the window indices, in the aux scratch */
        size_t hb = sizeof(int32_t) * ((size_t)L + 1), bytes = hb + (size_t)L * (size_t)Cu + 1;
        char *buf = scratch(&c->aux_buf, &c->aux_cap, bytes);
        if (!buf) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
        heads = (int32_t *)(void *)buf;
        offs = (int8_t *)(buf + hb);
        if (!la_schedule(c, v, in, H, &n, heads, offs))
            return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    }
    const int64_t Lc = n.cycles;
    for (int32_t mb = (int32_t)in->m0; mb < (int32_t)(in->m0 + in->m_len); mb += R) {
        const int32_t ru = min32(R, (int32_t)(in->m0 + in->m_len) - mb);
        const int64_t wave = Lc ? (Lc - 1) * rate + ru + Cu - 1 : 0, wave1 = Lc ? Lc + ru + Cu - 2 : 0;
        r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div((int64_t)kl * ru * m->act_bits, 8);
        r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div(Lc * Cu * (wpb + ob), 8);
        r->ev.macs_executed += (uint64_t)(n.pos_cols * ru);
        r->ev.reg_bits += (uint64_t)(Lc * ru * Cu * ((int64_t)W * m->act_bits + wpb + ob));
        const int64_t pairs = n.slots * ru;
        if (c->engine == QS_ENGINE_FAST) {
            /* of the ru products of a slot, those with a zero activation are gated */
            const int32_t *za = rows->za + (size_t)((mb - (int32_t)in->m0) / R) * kl;
            int64_t gated = 0;
            for (int32_t q = 0; q < kl; q++) gated += (int64_t)za[q] * nzk[q];
            r->ev.mac_gated += (uint64_t)gated;
            r->ev.mac_ops += (uint64_t)(pairs - gated);
        } else {
            qs_pe_array *pa = c->groups[0];
            int64_t consumed = 0, t = 0, limit = Lc * rate + ru + Cu + 8;
            qs_pe_out po = {NULL, NULL, 0, 0, 0};
            qs_pe_in pin = {c->edge_i, c->edge_v, NULL, c->edge_n, c->edge_nv, c->edge_ns, 1, 0, c->edge_o};
            qs_pe_array_reset(pa);
            if (c->hook) {
                qs_status hs = qs_array_hook_tile(c, pa, in, (uint32_t)mb, in->k0, 0, err);
                if (hs) return hs;
            }
            /* until every slot's products are in and the last cycle's wavefront has crossed the tile */
            while (consumed < pairs || t < wave) {
                for (int32_t i = 0; i < R; i++) {
                    int64_t d = t - i, e = d / rate;
                    int ok = i < ru && d >= 0 && d % rate == 0 && e < Lc;
                    for (int32_t w = 0; w < W; w++) {
                        int32_t step = ok ? heads[e] + w : L;
                        c->edge_v[i * W + w] = (uint8_t)(step < L);
                        c->edge_i[i * W + w] = step < L ? act_at(v, mb + i, v->list[in->k0 + (uint32_t)(step / S)]) : 0;
                    }
                }
                for (int32_t j = 0; j < a->cols; j++) {
                    int64_t d = t - j, e = d / rate;
                    int ok = j < Cu && d >= 0 && d % rate == 0 && e < Lc && offs[e * Cu + j] >= 0;
                    int32_t step = ok ? heads[e] + offs[e * Cu + j] : 0;
                    c->edge_nv[j] = (uint8_t)ok;
                    c->edge_ns[j] = ok ? (uint8_t)(step % S) : 0;
                    c->edge_o[j] = ok ? (uint8_t)offs[e * Cu + j] : 0;
                    c->edge_n[j] = ok ? wslice_at(v, step % S, v->list[in->k0 + (uint32_t)(step / S)], (int32_t)in->n0 + j) : 0;
                }
                qs_status cs = array_clock(c, pa, &pin, &po, r->cycles + (uint64_t)t, &r->ev, err);
                if (cs) return cs;
                pin.clear = 0;
                consumed += po.active + po.gated;
                t++;
                if (t > limit)
                    return qs_fail(err, QS_ERR_RUN, "detailed engine: OS lookahead tile of layer %u did not drain (%lld of %lld products, %lld cycles)",
                                   in->layer, (long long)consumed, (long long)pairs, (long long)Lc);
            }
            if (t != wave)
                return qs_fail(err, QS_ERR_RUN, "detailed engine: OS lookahead tile of layer %u took %lld clocks, "
                               "its schedule %lld", in->layer, (long long)t, (long long)wave);
            for (int32_t i = 0; i < ru; i++)
                for (int32_t j = 0; j < Cu; j++) {
                    int32_t *dst = accum_at(c, v, mb + i, (int32_t)in->n0 + j);
                    int32_t val = qs_pe_array_acc(pa, i, j);
                    if (in->flags & QS_GEMM_FIRST_K) *dst = val;
                    else accum_add(c, dst, val, &r->ev.acc_overflows);
                }
        }
        /* drain: one row of accumulators per clock into the accumulator buffer */
        r->cycles += (uint64_t)(wave + ru);
        r->buffer_stall += (uint64_t)(wave - wave1);
        r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
        if (!(in->flags & QS_GEMM_FIRST_K)) r->ev.sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
    }
    /* fast engine values: every column still adds its products in list
     * order (a column takes its own steps in order), as without lookahead */
    if (c->engine == QS_ENGINE_FAST && !c->values_known) {
        qs_status st = m->overflow_free
                           ? values_dense(c, v, in, v->list + in->k0, kl, rows, &r->ev.acc_overflows, err)
                           : values_checked(c, v, in, rows, &r->ev.acc_overflows, err);
        if (st) return st;
    }
    return QS_OK;
}

/* ---- output stationary ----------------------------------------------------------- */

static qs_status gemm_os(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, qs_tile_result *r,
                         qs_error *err)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t R = a->rows, G = lockstep_group(a), S = m->slices, wpb = a->weight_path_bits;
    const int ss = c->ssm != NULL;
    const int32_t rate = qs_array_stream_rate(a, m);
    const int32_t Cu = (int32_t)in->n_len;
    const int gate = gating(a);
    uint64_t pairs_total = 0;
    /* fast engine: the instruction's activation rows (schedule, gating
     * counts, values); per list position the non-zero weight slices of the
     * Cu columns */
    const int32_t kl = (int32_t)in->k_len, ngt = (int32_t)ceil_div(R, G);
    const struct qs_os_rows *rows = NULL;
    const int32_t *nzk = NULL;
    /* values from the cache: the schedule's zero counts from its zero bits
     * (none needed without skipping or gating) instead of the rows */
    const uint64_t *zb = NULL;
    int32_t *za_buf = NULL;
    const int need_za = act_skip(a) || gate;
    if (c->engine == QS_ENGINE_FAST && c->values_known && need_za && (zb = zero_bits(c, v)) != NULL) {
        za_buf = scratch(&c->val_buf, &c->val_cap, sizeof(int32_t) * ((size_t)kl + 1));
        if (!za_buf) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    }
    if (c->engine == QS_ENGINE_FAST) {
        if (!zb && (need_za || !c->values_known)) {
            rows = os_rows(c, v, in);
            if (!rows) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
        }
        if (gate) nzk = os_nzk(c, v, in);
    }

    for (int32_t mb = (int32_t)in->m0; mb < (int32_t)(in->m0 + in->m_len); mb += R) {
        int32_t ru = min32(R, (int32_t)(in->m0 + in->m_len) - mb);
        int32_t ng = (int32_t)ceil_div(ru, G);
        int64_t tmax = 0, tmax1 = 0;
        for (int32_t gi = 0; gi < ng; gi++) {
            int32_t r0 = gi * G, r1 = min32(r0 + G, ru), Gu = r1 - r0;
            int32_t *sched = &c->sched_all[(size_t)gi * c->max_k];
            uint64_t gated = 0;
            const int32_t *za = NULL;
            if (zb) {
                za_from_bits(zb, v, v->list + in->k0, kl, mb + r0, mb + r1, za_buf);
                za = za_buf;
            } else if (rows) {
                za = rows->za + ((size_t)((mb - (int32_t)in->m0) / R) * ngt + gi) * kl;
            }
            int32_t len = c->engine == QS_ENGINE_FAST ? os_schedule_fast(c, in, za, Gu, nzk, S, Cu, &gated)
                                                      : os_schedule(c, v, in, mb, r0, r1, sched);
            c->sched_len[gi] = len;
            int64_t Lg = (int64_t)len * S;
            int64_t pairs = Lg * Gu * Cu;
            pairs_total += (uint64_t)pairs;
            r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div((int64_t)len * Gu * m->act_bits, 8);
            r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div(Lg * Cu * wpb, 8);
            r->ev.macs_executed += (uint64_t)len * Gu * Cu;
            if (c->engine == QS_ENGINE_FAST) {
                /* SCALE-Sim times every fold as if all R x C PEs were used */
                int64_t tg = Lg ? (Lg - 1) * rate + (ss ? R : Gu) + (ss ? a->cols : Cu) - 1 : 0;
                if (tg > tmax) tmax = tg;
                r->ev.mac_gated += gated;
                r->ev.mac_ops += (uint64_t)pairs - gated;
            } else {
                /* detailed: feed the group's sub-array clock by clock */
                qs_pe_array *pa = c->groups[gi];
                int64_t consumed = 0, t = 0, limit = Lg * rate + Gu + Cu + 8;
                qs_pe_out po = {NULL, NULL, 0, 0, 0};
                qs_pe_in pin = {c->edge_i, c->edge_v, NULL, c->edge_n, c->edge_nv, c->edge_ns, 1, 0, NULL};
                qs_pe_array_reset(pa);
                if (c->hook) {
                    qs_status hs = qs_array_hook_tile(c, pa, in, (uint32_t)mb, in->k0, gi, err);
                    if (hs) return hs;
                }
                while (consumed < pairs || t == 0) {
                    for (int32_t i = 0; i < G; i++) {
                        int64_t d = t - i, e = d / rate;
                        int ok = i < Gu && d >= 0 && d % rate == 0 && e < Lg;
                        c->edge_v[i] = (uint8_t)ok;
                        c->edge_i[i] = ok ? act_at(v, mb + r0 + i, v->list[sched[e / S]]) : 0;
                    }
                    for (int32_t j = 0; j < a->cols; j++) {
                        int64_t d = t - j, e = d / rate;
                        int ok = j < Cu && d >= 0 && d % rate == 0 && e < Lg;
                        c->edge_nv[j] = (uint8_t)ok;
                        c->edge_ns[j] = ok ? (uint8_t)(e % S) : 0;
                        c->edge_n[j] = ok ? wslice_at(v, (int32_t)(e % S), v->list[sched[e / S]], (int32_t)in->n0 + j) : 0;
                    }
                    qs_status cs = array_clock(c, pa, &pin, &po, r->cycles + (uint64_t)t, &r->ev, err);
                    if (cs) return cs;
                    pin.clear = 0;
                    consumed += po.active + po.gated;
                    t++;
                    if (t > limit) return qs_fail(err, QS_ERR_RUN, "detailed engine: OS tile of layer %u did not drain", in->layer);
                    if (pairs == 0) { t = 0; break; }
                }
                /* scalesim: the wavefront still crosses the unused rows and columns */
                if (ss && pairs > 0) t += (R - Gu) + (a->cols - Cu);
                if (t > tmax) tmax = t;
                for (int32_t i = 0; i < Gu; i++)
                    for (int32_t j = 0; j < Cu; j++) {
                        int32_t *dst = accum_at(c, v, mb + r0 + i, (int32_t)in->n0 + j);
                        int32_t val = qs_pe_array_acc(pa, i, j);
                        if (in->flags & QS_GEMM_FIRST_K) *dst = val;
                        else accum_add(c, dst, val, &r->ev.acc_overflows);
                    }
            }
            int64_t tg1 = Lg ? Lg + Gu + Cu - 2 : 0;
            if (tg1 > tmax1) tmax1 = tg1;
        }
        if (ss) {
            /* SCALE-Sim: outputs leave while the fold ends (no separate drain);
             * its memory model adds the ofmap buffer's stalls */
            if (tmax > 0) {
                int64_t T = tmax - R - a->cols + 2; /* the fold's stream length */
                uint64_t st = qs_ssmem_fold(c->ssm, T, ru, Cu, mb, (int64_t)in->n0);
                if (st == UINT64_MAX) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
                r->cycles += (uint64_t)tmax + st;
                r->mem_stall += st;
            }
        } else {
            /* drain: one row of accumulators per clock into the accumulator buffer */
            r->cycles += (uint64_t)(tmax + ru);
            r->buffer_stall += (uint64_t)(tmax - tmax1);
        }
        r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
        if (!(in->flags & QS_GEMM_FIRST_K)) r->ev.sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
    }
    /* values of the fast engine: they do not depend on the schedule (see
     * values_checked), so the whole instruction at once */
    if (c->engine == QS_ENGINE_FAST && !c->values_known) {
        qs_status st = m->overflow_free
                           ? values_dense(c, v, in, v->list + in->k0, kl, rows, &r->ev.acc_overflows, err)
                           : values_checked(c, v, in, rows, &r->ev.acc_overflows, err);
        if (st) return st;
    }
    r->ev.reg_bits += pairs_total * (uint64_t)(m->act_bits + wpb);
    return QS_OK;
}

/* ---- weight / input stationary -------------------------------------------------- */

/* One pass of a stationary dataflow: Ku rows of stationary operands, a stream
 * of L elements, outputs to the accumulator buffer. Row r of the pass holds
 * reduction index krow[r]; stream element e is described by the callbacks'
 * arguments below. WS: stationary = weight slice s of (krow[r], n0+j), stream
 * = activation rows m = mlist[e]. IS: stationary = activation (m0+j, krow[r]),
 * stream = weight slices (nlist[e/S], e%S). */
typedef struct {
    int is_is;
    const int32_t *krow; int32_t Ku;
    int32_t cols_used;       /* WS: n columns; IS: m columns */
    int32_t col0;            /* WS: n0; IS: m0 of the block */
    const int32_t *stream; int32_t L;  /* WS: list of m; IS: list of n (each S slices) */
    int32_t s;               /* WS: slice of this pass */
    /* WS, fast engine: the instruction's activations on the pass's rows,
     * a(m, krow[r]) at act[(m - m0) * Ku + r], when gathered */
    const int32_t *act; int32_t m0;
    /* WS, values from the cache: zero stream operands per row among the
     * scheduled activation rows, counted from the zero bits (act unused) */
    const int32_t *zs_known;
} pass_desc;

/* Fast engine, one stationary pass: the operands side by side, X[e*Ku + r]
 * the stream element e on row r and Y[r*Cu + j] the stationary operand of
 * PE (r, j), then the gated products and, when the layer may overflow, the
 * partial sums in the hardware's order: column j's sum enters row 0 as 0 and
 * adds X[e][r] * Y[r][j] << (p * shift) row after row in acc_bits
 * arithmetic (a gated or zero product adds nothing), then joins the
 * accumulator buffer. Columns side by side so that the loops vectorize. */
QS_VECTOR_CLONES static qs_status stationary_fast(qs_array_ctx *c, const gemm_view *v, const pass_desc *pd, int64_t L,
                                                   qs_tile_result *r, qs_error *err)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t S = m->slices, K = m->g.K, N = m->g.N, wpb = a->weight_path_bits;
    const int32_t Ku = pd->Ku, Cu = pd->cols_used;
    const int gate = gating(a);
    if (pd->zs_known) { /* values known (overflow-free): only the gated products are counted */
        const uint64_t *wz = weight_zero_bits(c, v);
        const int16_t *wsl = wz ? NULL : layer_slices(c, v, v->layer);
        int32_t *zc = scratch(&c->aux_buf, &c->aux_cap, sizeof(int32_t) * ((size_t)Ku + 1));
        if ((!wz && !wsl) || !zc) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
        for (int32_t rr = 0; rr < Ku; rr++) {
            if (wz) {
                const int32_t W = wzb_words(m);
                zc[rr] = bits_in(wz + (((size_t)v->g * S + pd->s) * K + pd->krow[rr]) * W, pd->col0, pd->col0 + Cu);
            } else {
                const int16_t *y = &wsl[(((size_t)v->g * S + pd->s) * K + pd->krow[rr]) * N + pd->col0];
                int32_t z = 0;
                for (int32_t j = 0; j < Cu; j++) z += y[j] == 0;
                zc[rr] = z;
            }
        }
        uint64_t gated = 0;
        for (int32_t rr = 0; rr < Ku; rr++)
            gated += (uint64_t)((int64_t)pd->zs_known[rr] * Cu + (L - pd->zs_known[rr]) * zc[rr]);
        r->ev.mac_gated += gated;
        r->ev.mac_ops += (uint64_t)(L * Ku * Cu) - gated;
        return QS_OK;
    }
    const int16_t *ws = layer_slices(c, v, v->layer);
    int64_t *P = scratch(&c->aux_buf, &c->aux_cap, sizeof(int64_t) * ((size_t)Cu + 1) +
                                                      sizeof(int32_t) * ((size_t)L * Ku + (size_t)Ku * Cu + 2 * (size_t)Ku + 1));
    if (!ws || !P) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
    int32_t *X = (int32_t *)(P + Cu), *Y = X + (size_t)L * Ku, *zs = Y + (size_t)Ku * Cu, *zc = zs + Ku;
    if (pd->is_is) {
        for (int64_t e = 0; e < L; e++)
            for (int32_t rr = 0; rr < Ku; rr++)
                X[e * Ku + rr] = ws[(((size_t)v->g * S + (size_t)(e % S)) * K + pd->krow[rr]) * N + pd->stream[e / S]];
        for (int32_t j = 0; j < Cu; j++)
            for (int32_t rr = 0; rr < Ku; rr++) Y[(size_t)rr * Cu + j] = act_at(v, pd->col0 + j, pd->krow[rr]);
    } else {
        for (int64_t e = 0; e < L; e++) {
            int32_t *x = X + e * Ku;
            if (pd->act) {
                memcpy(x, pd->act + (size_t)(pd->stream[e] - pd->m0) * Ku, sizeof(int32_t) * (size_t)Ku);
            } else {
                for (int32_t rr = 0; rr < Ku; rr++) x[rr] = act_at(v, pd->stream[e], pd->krow[rr]);
            }
        }
        for (int32_t rr = 0; rr < Ku; rr++) {
            const int16_t *y = &ws[(((size_t)v->g * S + pd->s) * K + pd->krow[rr]) * N + pd->col0];
            for (int32_t j = 0; j < Cu; j++) Y[(size_t)rr * Cu + j] = y[j];
        }
    }
    uint64_t gated = 0;
    if (gate) { /* per row: zero stream operands, zero stationaries */
        for (int32_t rr = 0; rr < Ku; rr++) zs[rr] = zc[rr] = 0;
        for (int64_t e = 0; e < L; e++)
            for (int32_t rr = 0; rr < Ku; rr++) zs[rr] += X[e * Ku + rr] == 0;
        for (int32_t rr = 0; rr < Ku; rr++)
            for (int32_t j = 0; j < Cu; j++) zc[rr] += Y[(size_t)rr * Cu + j] == 0;
        for (int32_t rr = 0; rr < Ku; rr++) gated += (uint64_t)((int64_t)zs[rr] * Cu + (L - zs[rr]) * zc[rr]);
    }
    r->ev.mac_gated += gated;
    r->ev.mac_ops += (uint64_t)(L * Ku * Cu) - gated;
    if (m->overflow_free) return QS_OK;
    const int64_t lo = -((int64_t)1 << (a->acc_bits - 1)), hi = -lo - 1;
    const uint64_t mask = ((uint64_t)1 << a->acc_bits) - 1;
    const int wrap = a->overflow != QS_OVF_SATURATE;
    uint64_t o = 0;
    for (int64_t e = 0; e < L; e++) {
        const int64_t sh = (int64_t)1 << (wpb * (pd->is_is ? (int32_t)(e % S) : pd->s));
        for (int32_t j = 0; j < Cu; j++) P[j] = 0;
        for (int32_t rr = 0; rr < Ku; rr++) {
            const int64_t x = X[e * Ku + rr] * sh;
            if (x == 0) continue;
            const int32_t *restrict y = Y + (size_t)rr * Cu;
            for (int32_t j = 0; j < Cu; j++) {
                int64_t t = P[j] + x * y[j];
                o += (uint64_t)(t < lo || t > hi);
                P[j] = wrap ? lo + (int64_t)((uint64_t)(t - lo) & mask) : t < lo ? lo : t > hi ? hi : t;
            }
        }
        for (int32_t j = 0; j < Cu; j++) {
            int32_t *dst = pd->is_is ? accum_at(c, v, pd->col0 + j, pd->stream[e / S])
                                     : accum_at(c, v, pd->stream[e], pd->col0 + j);
            accum_add(c, dst, (int32_t)P[j], &r->ev.acc_overflows);
        }
    }
    r->ev.acc_overflows += o;
    return QS_OK;
}

static qs_status stationary_pass(qs_array_ctx *c, const gemm_view *v, const pass_desc *pd, qs_tile_result *r,
                                 qs_error *err)
{
    const qs_arch *a = c->arch;
    const qs_layer_map *m = v->m;
    const int32_t R = a->rows, S = m->slices, wpb = a->weight_path_bits;
    const int32_t rate = qs_array_stream_rate(a, m);
    const int32_t Ku = pd->Ku, Cu = pd->cols_used;
    const int64_t L = pd->is_is ? (int64_t)pd->L * S : pd->L;
    const int gate = gating(a);
    const int64_t pairs = L * Ku * Cu;

    /* traffic (docs/timing.md, "Events") */
    if (pd->is_is) {
        r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div((int64_t)Ku * Cu * m->act_bits, 8);
        r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div(L * Ku * wpb, 8);
        r->ev.macs_executed += (uint64_t)pd->L * Ku * Cu;
    } else {
        r->ev.sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)ceil_div(L * Ku * m->act_bits, 8);
        r->ev.sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)ceil_div((int64_t)Ku * Cu * wpb, 8);
        if (pd->s == 0) r->ev.macs_executed += (uint64_t)L * Ku * Cu;
    }
    r->ev.sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)L * Cu * 4; /* read-modify-write */
    r->ev.sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)L * Cu * 4;
    r->ev.reg_bits += (uint64_t)pairs * (uint64_t)(m->act_bits + wpb); /* psum flops are in the MAC figure */
    int64_t t_stream = L ? (L - 1) * rate + R + Cu - 1 : 0;
    r->buffer_stall += L ? (uint64_t)((L - 1) * (rate - 1)) : 0;

#define STREAM_X(e, rr) (pd->is_is ? wslice_at(v, (int32_t)((e) % S), pd->krow[rr], pd->stream[(e) / S]) \
                                   : act_at(v, pd->stream[e], pd->krow[rr]))
#define STAT_Y(rr, j) (pd->is_is ? act_at(v, pd->col0 + (j), pd->krow[rr]) \
                                 : wslice_at(v, pd->s, pd->krow[rr], pd->col0 + (j)))
#define OUT_AT(e, j) (pd->is_is ? accum_at(c, v, pd->col0 + (j), pd->stream[(e) / S]) \
                                : accum_at(c, v, pd->stream[e], pd->col0 + (j)))
#define SHIFT_OF(e) (pd->is_is ? (int32_t)((e) % S) : pd->s)

    /* SCALE-Sim convention: the preload and the stream's trip take the whole
     * array's R rows and C columns however many are used, and its memory
     * model adds the ofmap buffer's stalls (the fold's id pair names the
     * operand tiles for the USER-mode prefetch) */
    const int ss = c->ssm != NULL && L > 0;
    uint64_t ss_extra = 0;
    if (ss) {
        int64_t blk = (int64_t)pd->krow[0] * 4194304 + pd->col0;
        uint64_t st = qs_ssmem_fold(c->ssm, L, Ku, Cu, pd->is_is ? blk : pd->krow[0], pd->is_is ? pd->krow[0] : blk);
        if (st == UINT64_MAX) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
        ss_extra = (uint64_t)(R - Ku) + (uint64_t)(a->cols - Cu) + st;
        r->mem_stall += st;
    }

    if (c->engine == QS_ENGINE_FAST) {
        r->cycles += (uint64_t)(Ku + t_stream) + ss_extra;
        if (!gate && m->overflow_free) {
            r->ev.mac_ops += (uint64_t)pairs;
            return QS_OK;
        }
        return stationary_fast(c, v, pd, L, r, err);
    }

    /* detailed: load the stationary operands, then stream */
    qs_pe_array *pa = c->groups[0];
    qs_pe_in pin = {c->edge_i, c->edge_v, c->edge_s, c->edge_n, c->edge_nv, c->edge_ns, 0, 1, NULL};
    qs_pe_out po = {c->south, c->south_v, 0, 0, 0};
    if (c->hook) {
        /* a co-simulated pass starts from reset on both sides, so that any
         * one pass can be replayed alone; the stationary registers it uses
         * are all loaded below and the partial sums it reads are cleared
         * by the load, so no value or count depends on an earlier pass */
        qs_pe_array_reset(pa);
        qs_status hs = qs_array_hook_tile(c, pa, c->hook_in, pd->is_is ? (uint32_t)pd->col0 : c->hook_in->m0,
                                          (uint32_t)pd->krow[0], 0, err);
        if (hs) return hs;
    }
    for (int32_t t = 0; t < Ku; t++) {
        int32_t rr = Ku - 1 - t;  /* the value inserted first ends deepest */
        for (int32_t j = 0; j < a->cols; j++) {
            int ok = j < Cu;
            c->edge_n[j] = ok ? STAT_Y(rr, j) : 0;
            c->edge_nv[j] = (uint8_t)ok;
            c->edge_ns[j] = (uint8_t)(pd->is_is ? 0 : pd->s);
        }
        if (c->hook_follow) {
            qs_pe_out lo = {c->south, c->south_v, 0, 0, 0};
            qs_pe_array_tick(pa, &pin, &lo);
            qs_status hs = qs_array_hook_tick(c, r->cycles + (uint64_t)t, &pin, &lo, pa, err);
            if (hs) return hs;
        } else {
            qs_pe_array_tick(pa, &pin, NULL);
        }
    }
    r->cycles += (uint64_t)Ku;
    pin.load = 0;
    memset(c->colcount, 0, sizeof(int32_t) * (size_t)a->cols);
    int64_t got = 0, t = 0, limit = L * rate + R + Cu + 8;
    while (got < L * Cu) {
        for (int32_t i = 0; i < R; i++) {
            int64_t d = t - i, e = d / rate;
            int ok = i < Ku && d >= 0 && d % rate == 0 && e < L;
            c->edge_v[i] = (uint8_t)ok;
            c->edge_i[i] = ok ? STREAM_X(e, i) : 0;
            c->edge_s[i] = (uint8_t)(ok && pd->is_is ? SHIFT_OF(e) : 0);
        }
        qs_status cs = array_clock(c, pa, &pin, &po, r->cycles + (uint64_t)t, &r->ev, err);
        if (cs) return cs;
        for (int32_t j = 0; j < Cu; j++)
            if (c->south_v[j]) {
                int64_t e = c->colcount[j]++;
                accum_add(c, OUT_AT(e, j), c->south[j], &r->ev.acc_overflows);
                got++;
            }
        t++;
        if (t > limit) return qs_fail(err, QS_ERR_RUN, "detailed engine: stationary pass of layer %s did not drain", v->L->name);
    }
    r->cycles += (uint64_t)t + ss_extra;
#undef STREAM_X
#undef STAT_Y
#undef OUT_AT
#undef SHIFT_OF
    return QS_OK;
}

/* WS with the values from the cache: the activation rows m0..m0+m_len that
 * survive skipping (not zero on every row of the pass: krow[0..Ku)) into
 * c->sched (their count in c->ws_len), and per row the zeros among them
 * (zs_known of stationary_fast), from the zero bits as gemm_ws would count
 * them from gathered rows. NULL when out of memory. */
QS_VECTOR_CLONES static const int32_t *ws_zero_rows(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, const uint64_t *zb,
                                   const int32_t *krow, int32_t Ku)
{
    const int32_t W = zb_words(v->m), lo = (int32_t)in->m0, hi = (int32_t)(in->m0 + in->m_len);
    const int32_t w0 = lo >> 6, w1 = (hi - 1) >> 6, nw = w1 - w0 + 1;
    const uint64_t *gb = zb + (size_t)v->g * v->m->g.K * W;
    uint64_t *keep = scratch(&c->val_buf, &c->val_cap, sizeof(uint64_t) * (size_t)nw + sizeof(int32_t) * ((size_t)Ku + 1));
    if (!keep) return NULL;
    int32_t *zs = (int32_t *)(keep + nw);
    const int skip = act_skip(c->arch);
    for (int32_t w = 0; w < nw; w++) {
        uint64_t all_zero = ~(uint64_t)0;
        if (skip)
            for (int32_t rr = 0; rr < Ku; rr++) all_zero &= gb[(size_t)krow[rr] * W + w0 + w];
        else
            all_zero = 0;
        uint64_t range = ~(uint64_t)0;
        if (w == 0) range &= ~(uint64_t)0 << (lo & 63);
        if (w == nw - 1 && (hi & 63)) range &= ~(uint64_t)0 >> (64 - (hi & 63));
        keep[w] = ~all_zero & range;
    }
    int32_t L = 0;
    for (int32_t w = 0; w < nw; w++)
        for (uint64_t b = keep[w]; b; b &= b - 1) c->sched[L++] = ((w0 + w) << 6) + __builtin_ctzll(b);
    c->ws_len = L;
    for (int32_t rr = 0; rr < Ku; rr++) {
        const uint64_t *row = gb + (size_t)krow[rr] * W + w0;
        int32_t z = 0;
        for (int32_t w = 0; w < nw; w++) z += __builtin_popcountll(row[w] & keep[w]);
        zs[rr] = z;
    }
    return zs;
}

static qs_status gemm_ws(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, qs_tile_result *r, qs_error *err)
{
    const qs_arch *a = c->arch;
    const int32_t R = a->rows;
    qs_status st;
    /* values from the cache: the zero bits replace the gathered rows where
     * the schedule or the gating counts need activations */
    const uint64_t *zb = c->engine == QS_ENGINE_FAST && c->values_known && (act_skip(a) || gating(a))
                             ? zero_bits(c, v) : NULL;
    if ((in->flags & QS_GEMM_FIRST_K) && !c->values_known)
        for (uint32_t i = 0; i < in->m_len; i++)
            for (uint32_t j = 0; j < in->n_len; j++) *accum_at(c, v, (int32_t)(in->m0 + i), (int32_t)(in->n0 + j)) = 0;
    for (uint32_t p0 = in->k0; p0 < in->k0 + in->k_len; p0 += (uint32_t)R) {
        int32_t Ku = min32(R, (int32_t)(in->k0 + in->k_len - p0));
        const int32_t *krow = v->list + p0;
        /* values from the cache: schedule and zero counts from the zero bits */
        const int32_t *zs_known = NULL;
        if (zb) {
            zs_known = ws_zero_rows(c, v, in, zb, krow, Ku);
            if (!zs_known) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
            for (int32_t s = 0; s < v->m->slices; s++) {
                pass_desc pd = {0, krow, Ku, (int32_t)in->n_len, (int32_t)in->n0, c->sched, c->ws_len, s, NULL,
                                (int32_t)in->m0, gating(a) ? zs_known : NULL};
                if ((st = stationary_pass(c, v, &pd, r, err))) return st;
            }
            continue;
        }
        /* fast engine: the activations on these rows, gathered once for the
         * schedule and the slices' passes (when they need them) */
        int32_t *act = NULL;
        if (c->engine == QS_ENGINE_FAST && (act_skip(a) || gating(a) || !v->m->overflow_free)) {
            act = scratch(&c->val_buf, &c->val_cap, sizeof(int32_t) * ((size_t)in->m_len * Ku + 1));
            if (!act) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer %s", v->L->name);
            act_rows ar;
            if (act_rows_init(&ar, v, krow, Ku) == 0) {
                for (uint32_t i = 0; i < in->m_len; i++) act_rows_get(&ar, (int32_t)(in->m0 + i), act + (size_t)i * Ku);
                act_rows_free(&ar);
            } else {
                for (uint32_t i = 0; i < in->m_len; i++)
                    for (int32_t rr = 0; rr < Ku; rr++) act[(size_t)i * Ku + rr] = act_at(v, (int32_t)(in->m0 + i), krow[rr]);
            }
        }
        /* activation vectors that survive skipping: not all zero on these rows */
        int32_t L = 0;
        for (uint32_t i = 0; i < in->m_len; i++) {
            int32_t mm = (int32_t)(in->m0 + i);
            int keep = !act_skip(a);
            for (int32_t rr = 0; rr < Ku && !keep; rr++)
                keep = (act ? act[(size_t)i * Ku + rr] : act_at(v, mm, krow[rr])) != 0;
            if (keep) c->sched[L++] = mm;
        }
        for (int32_t s = 0; s < v->m->slices; s++) {
            pass_desc pd = {0, krow, Ku, (int32_t)in->n_len, (int32_t)in->n0, c->sched, L, s, act, (int32_t)in->m0, NULL};
            if ((st = stationary_pass(c, v, &pd, r, err))) return st;
        }
    }
    if (c->engine == QS_ENGINE_FAST && v->m->overflow_free && !c->values_known) {
        qs_insn cont = *in;
        cont.flags &= (uint8_t)~QS_GEMM_FIRST_K; /* accumulators were zeroed above */
        return values_dense(c, v, &cont, v->list + in->k0, (int32_t)in->k_len, NULL, &r->ev.acc_overflows, err);
    }
    return QS_OK;
}

static qs_status gemm_is(qs_array_ctx *c, const gemm_view *v, const qs_insn *in, qs_tile_result *r, qs_error *err)
{
    const qs_arch *a = c->arch;
    const int32_t R = a->rows, C = a->cols;
    const qs_layer_map *m = v->m;
    qs_status st;
    if ((in->flags & QS_GEMM_FIRST_K) && !c->values_known)
        for (uint32_t i = 0; i < in->m_len; i++)
            for (uint32_t j = 0; j < in->n_len; j++) *accum_at(c, v, (int32_t)(in->m0 + i), (int32_t)(in->n0 + j)) = 0;
    int32_t *krow = c->sched_all;
    /* k-blocks outer (each block's partial sums added in k order); SCALE-Sim
     * runs its folds m-block outer, which its memory model needs in order */
    const uint32_t nk = (uint32_t)ceil_div(in->k_len, R), nm = (uint32_t)ceil_div(in->m_len, C);
    const int m_outer = c->ssm != NULL;
    for (uint32_t o = 0; o < (m_outer ? nm : nk); o++)
        for (uint32_t i = 0; i < (m_outer ? nk : nm); i++) {
            uint32_t k0 = in->k0 + (m_outer ? i : o) * (uint32_t)R, mb = in->m0 + (m_outer ? o : i) * (uint32_t)C;
            int32_t Ku = min32(R, (int32_t)(in->k0 + in->k_len - k0));
            for (int32_t rr = 0; rr < Ku; rr++) krow[rr] = (int32_t)k0 + rr;
            int32_t kb = (int32_t)k0 / R;
            const int32_t *nl = m->list + m->list_off[v->g * m->blocks_per_group + kb];
            int32_t nlen = m->list_off[v->g * m->blocks_per_group + kb + 1] - m->list_off[v->g * m->blocks_per_group + kb];
            int32_t Mu = min32(C, (int32_t)(in->m0 + in->m_len - mb));
            pass_desc pd = {1, krow, Ku, Mu, (int32_t)mb, nl, nlen, 0, NULL, 0, NULL};
            if ((st = stationary_pass(c, v, &pd, r, err))) return st;
        }
    if (c->engine == QS_ENGINE_FAST && m->overflow_free && !c->values_known) {
        for (uint32_t p = 0; p < in->k_len; p++) c->kidx[p] = (int32_t)(in->k0 + p);
        qs_insn cont = *in;
        cont.flags &= (uint8_t)~QS_GEMM_FIRST_K; /* accumulators were zeroed above */
        return values_dense(c, v, &cont, c->kidx, (int32_t)in->k_len, NULL, &r->ev.acc_overflows, err);
    }
    return QS_OK;
}

qs_status qs_array_gemm(qs_array_ctx *c, const qs_insn *in, qs_tile_result *r, qs_error *err)
{
    memset(r, 0, sizeof *r);
    c->hook_in = in;
    const qs_layer *L = &c->net->layers[in->layer];
    if (L->kind == QS_L_MATMUL) return qs_array_matmul(c, in, r, err);
    const qs_layer_map *m = &c->prog->maps[in->layer];
    gemm_view v;
    v.L = L;
    v.IN = &c->net->layers[L->inputs[0]];
    v.in = c->outputs[L->inputs[0]];
    v.m = m;
    v.layer = (int32_t)in->layer;
    v.w = c->net->tensors[L->weight].data;
    v.path_bits = c->arch->weight_path_bits;
    v.g = in->group;
    v.za = v.IN->out_zp;
    v.list = NULL;
    if (c->arch->dataflow != QS_DF_IS) {
        int32_t nb = (int32_t)in->n0 / c->arch->cols;
        v.list = m->list + m->list_off[in->group * m->blocks_per_group + nb];
    }
    switch (c->arch->dataflow) {
    case QS_DF_OS: return c->arch->lookahead > 0 ? gemm_os_lookahead(c, &v, in, r, err) : gemm_os(c, &v, in, r, err);
    case QS_DF_WS: return gemm_ws(c, &v, in, r, err);
    case QS_DF_IS: return gemm_is(c, &v, in, r, err);
    }
    return qs_fail(err, QS_ERR_ARG, "unknown dataflow");
}
