/* Network -> program. The rules (what a tile is per dataflow, how tiles are
 * sized to the buffers, how the loop order is chosen, how tokens are placed)
 * are written down in docs/compiler.md; this file follows it section by
 * section. */
#include "compiler.h"
#include "qs_alloc.h"

#include "qs_xfmr.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------- */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t bits_to_bytes(int64_t bits) { return (bits + 7) / 8; }

static int skip_weights(const qs_arch *a)
{
    return a->zero_skip == QS_SKIP_WEIGHTS || a->zero_skip == QS_SKIP_BOTH;
}

/* Growable instruction vector. */
typedef struct {
    qs_insn *v;
    int32_t n, cap;
} insn_vec;

static qs_status push_insn(insn_vec *iv, const qs_insn *in, qs_error *err)
{
    if (iv->n == iv->cap) {
        int32_t cap = iv->cap ? iv->cap * 2 : 1024;
        if (cap > (1 << 26)) return qs_fail(err, QS_ERR_NOFIT, "program exceeds %d instructions", 1 << 26);
        qs_insn *v = qs_realloc(iv->v, (size_t)cap * sizeof *v);
        if (!v) return qs_fail(err, QS_ERR_NOMEM, "out of memory for the instruction stream");
        iv->v = v;
        iv->cap = cap;
    }
    iv->v[iv->n++] = *in;
    return QS_OK;
}

/* Weight w[k][n] of group g in GEMM orientation from the OIHW tensor. */
static int32_t weight_at(const qs_layer *L, const qs_tensor *W, const qs_gemm_dims *d, int32_t g, int32_t k,
                         int32_t n)
{
    /* OIHW flattened: ((o * Cin_g + c) * KH + ky) * KW + kx == o * K + k */
    (void)L;
    return W->data[(size_t)(g * d->N + n) * (size_t)d->K + (size_t)k];
}

/* ---- per-layer preparation: slices, folded bias, compressed lists -------- */

static qs_status prepare_gemm(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                              qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const qs_tensor *W = &net->tensors[L->weight];
    const qs_gemm_dims d = m->g;
    const int32_t p = arch->weight_path_bits;

    m->weight_bipolar = W->dtype == QS_DT_BIPOLAR;
    m->weight_signed = m->weight_bipolar || W->is_signed;
    m->weight_bits = qs_dtype_bits(W->dtype);
    m->act_bits = IN->out_bits;
    m->act_signed = IN->out_signed;
    if (m->weight_bits > arch->max_weight_bits)
        return qs_fail(err, QS_ERR_UNSUPPORTED,
                       "layer '%s': %d-bit weights exceed the datapath's max_weight_bits %d", L->name,
                       m->weight_bits, arch->max_weight_bits);
    if (m->act_bits > arch->max_act_bits)
        return qs_fail(err, QS_ERR_UNSUPPORTED,
                       "layer '%s': %d-bit activations exceed the datapath's max_act_bits %d", L->name,
                       m->act_bits, arch->max_act_bits);
    /* A bipolar +-1 weight needs a signed 2-bit lane. */
    int32_t slice_bits = m->weight_bipolar ? 2 : m->weight_bits;
    m->slices = (int32_t)ceil_div(slice_bits, p);
    if (m->weight_bipolar && p < 2) m->slices = 1;

    m->bias_folded = qs_malloc(sizeof(int32_t) * (size_t)L->out_c);
    if (!m->bias_folded) return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory", L->name);

    const int32_t mask = (1 << p) - 1;
    int64_t max_slice_sum = 0; /* sum over slices of max |slice| << (p*s): bound on partial sums */
    for (int32_t s = 0; s < m->slices; s++) {
        int64_t mx = (s == m->slices - 1 && m->weight_signed) ? (1 << (p - 1)) : mask;
        if (m->weight_bipolar) mx = 1;
        max_slice_sum += mx << (p * s);
    }

    /* Fold the input zero point into the bias: sum (a - za) w = sum a w - za sum w. */
    const qs_tensor *B = L->bias >= 0 ? &net->tensors[L->bias] : NULL;
    for (int32_t g = 0; g < d.groups; g++)
        for (int32_t n = 0; n < d.N; n++) {
            int64_t sw = 0;
            for (int32_t k = 0; k < d.K; k++) sw += weight_at(L, W, &d, g, k, n);
            int32_t oc = g * d.N + n;
            int64_t b = (B ? B->data[oc] : 0) - (int64_t)IN->out_zp * sw;
            if (b < INT32_MIN || b > INT32_MAX)
                return qs_fail(err, QS_ERR_UNSUPPORTED,
                               "layer '%s': bias of channel %d minus the folded input zero point overflows int32",
                               L->name, oc);
            m->bias_folded[oc] = (int32_t)b;
        }

    /* Static overflow bound: K products each at most max|a| * max_slice_sum. */
    int32_t alo, ahi;
    qs_int_range(m->act_bits, m->act_signed, &alo, &ahi);
    int64_t amax = -(int64_t)alo > ahi ? -(int64_t)alo : ahi;
    double bound = (double)d.K * (double)amax * (double)max_slice_sum;
    m->overflow_free = bound <= (double)(((int64_t)1 << (arch->acc_bits - 1)) - 1);

    /* Compressed index lists. */
    const int is_is = arch->dataflow == QS_DF_IS;
    const int32_t blk = is_is ? arch->rows : arch->cols;     /* block along k (IS) or n (OS/WS) */
    const int32_t span = is_is ? d.K : d.N;                  /* what is blocked */
    const int32_t len = is_is ? d.N : d.K;                   /* what the list indexes */
    m->blocks_per_group = (int32_t)ceil_div(span, blk);
    m->n_lists = d.groups * m->blocks_per_group;
    m->list_off = qs_malloc(sizeof(int32_t) * (size_t)(m->n_lists + 1));
    m->list = qs_malloc(sizeof(int32_t) * (size_t)m->n_lists * (size_t)len + 1);
    if (!m->list_off || !m->list) return qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory", L->name);
    int32_t pos = 0;
    for (int32_t g = 0; g < d.groups; g++)
        for (int32_t b = 0; b < m->blocks_per_group; b++) {
            m->list_off[g * m->blocks_per_group + b] = pos;
            int32_t lo = b * blk, hi = lo + blk < span ? lo + blk : span;
            for (int32_t i = 0; i < len; i++) {
                int keep = !skip_weights(arch);
                for (int32_t j = lo; j < hi && !keep; j++) {
                    int32_t k = is_is ? j : i, n = is_is ? i : j;
                    keep = weight_at(L, W, &d, g, k, n) != 0;
                }
                if (keep) m->list[pos++] = i;
            }
        }
    m->list_off[m->n_lists] = pos;
    return QS_OK;
}

/* ---- tiling --------------------------------------------------------------- */

typedef struct {
    int64_t cap_ifmap, cap_weight, cap_accum; /* bytes usable per tile */
} caps;

static caps caps_of(const qs_arch *a)
{
    caps c;
    c.cap_ifmap = (int64_t)a->ifmap.size_kib * 1024 / (a->ifmap.double_buffer ? 2 : 1);
    c.cap_weight = (int64_t)a->weight.size_kib * 1024 / (a->weight.double_buffer ? 2 : 1);
    c.cap_accum = (int64_t)a->accum.size_kib * 1024 / (a->accum.double_buffer ? 2 : 1);
    return c;
}

/* Bytes of input a tile needs: the input window rows of output rows
 * [m0, m0+mlen) over the channels that reduction indices [kfirst, klast]
 * touch (a real DMA fetches the window, not the im2col matrix). */
/* Input rows a tile of output rows [m0, m0+mlen) reads (conv), clipped to the input. */
static int64_t window_rows_from(const qs_layer *L, const qs_layer *IN, int32_t m0, int32_t mlen, int32_t *first)
{
    int32_t oy0 = m0 / L->out_w, oy1 = (m0 + mlen - 1) / L->out_w;
    int32_t iy0 = oy0 * L->stride_h - L->pad_t, iy1 = oy1 * L->stride_h - L->pad_t + (L->kh - 1) * L->dil_h;
    if (iy0 < 0) iy0 = 0;
    if (iy1 >= IN->out_h) iy1 = IN->out_h - 1;
    if (first) *first = iy0;
    return iy1 >= iy0 ? iy1 - iy0 + 1 : 0;
}

static int64_t window_rows(const qs_layer *L, const qs_layer *IN, int32_t m0, int32_t mlen)
{
    return window_rows_from(L, IN, m0, mlen, NULL);
}

/* A DMA access pattern before encoding (docs/isa.md, "Access patterns"):
 * `rows` runs of `run_bits` bits, run r starting at bit base*8 + start_bit +
 * r*stride_bits. */
typedef struct {
    uint32_t base;
    int64_t start_bit, rows, run_bits, stride_bits;
} dma_pat;

static dma_pat pat_runs(uint32_t base, int64_t start_bit, int64_t rows, int64_t run_bits, int64_t stride_bits)
{
    dma_pat p = {base, start_bit, rows, run_bits, stride_bits};
    if (rows <= 0 || run_bits <= 0) p.rows = p.run_bits = p.stride_bits = p.start_bit = 0;
    if (p.rows > 1 && p.stride_bits == p.run_bits) { /* back-to-back runs are one run */
        p.run_bits *= p.rows;
        p.rows = 1;
    }
    if (p.rows == 1) p.stride_bits = 0;
    return p;
}

static dma_pat pat_bytes(uint32_t base, int64_t offset, int64_t bytes)
{
    return pat_runs(base, offset * 8, 1, bytes * 8, 0);
}

/* Bytes a pattern moves: per run, every byte it touches (as qs_dma_row). */
static int64_t pat_moved(const dma_pat *p)
{
    int64_t sum = 0;
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t b0 = p->start_bit + r * p->stride_bits;
        sum += (b0 + p->run_bits + 7) / 8 - b0 / 8;
    }
    return sum;
}

/* The input window of a conv/fc tile in the input tensor (CHW at in_addr):
 * per input channel the reduction indices [kfirst, klast] of group g touch,
 * the window's input rows, full width. */
static dma_pat ifmap_pattern(const qs_layer *L, const qs_layer *IN, uint32_t in_addr, int32_t g, int32_t m0,
                             int32_t mlen, int32_t kfirst, int32_t klast, int32_t abits)
{
    if (mlen <= 0 || klast < kfirst) return pat_runs(in_addr, 0, 0, 0, 0);
    if (L->kind == QS_L_FC) return pat_runs(in_addr, (int64_t)kfirst * abits, 1, (int64_t)(klast - kfirst + 1) * abits, 0);
    int32_t khw = L->kh * L->kw, cg = IN->out_c / L->groups, iy0 = 0;
    int64_t nrows = window_rows_from(L, IN, m0, mlen, &iy0);
    int64_t c0 = (int64_t)g * cg + kfirst / khw, chans = klast / khw - kfirst / khw + 1;
    int64_t row_bits = (int64_t)IN->out_w * abits, plane_bits = (int64_t)IN->out_h * row_bits;
    return pat_runs(in_addr, c0 * plane_bits + iy0 * row_bits, chans, nrows * row_bits, plane_bits);
}

/* Extra bytes a window may move over ifmap_bytes because its runs start and
 * end inside bytes (sub-byte activations whose rows are not whole bytes). */
static int64_t window_slack(const qs_layer *L, const qs_layer *IN, int64_t chans, int32_t abits)
{
    if (L->kind == QS_L_FC) return abits % 8 ? 1 : 0;
    return ((int64_t)IN->out_w * abits) % 8 ? chans : 0;
}

static int64_t ifmap_bytes(const qs_layer *L, const qs_layer *IN, int32_t m0, int32_t mlen, int32_t kfirst,
                           int32_t klast, int32_t abits)
{
    if (mlen <= 0 || klast < kfirst) return 0;
    if (L->kind == QS_L_FC) return bits_to_bytes((int64_t)(klast - kfirst + 1) * abits);
    int32_t khw = L->kh * L->kw;
    int64_t chans = klast / khw - kfirst / khw + 1;
    return bits_to_bytes(window_rows(L, IN, m0, mlen) * IN->out_w * chans * abits);
}

static int64_t weight_bytes(const qs_layer_map *m, int32_t ncols, int32_t klen, int compressed)
{
    /* compressed tiles carry a 16-bit index per kept reduction row */
    return bits_to_bytes((int64_t)ncols * klen * m->weight_bits) + (compressed ? 2 * (int64_t)klen : 0);
}

static int32_t list_len(const qs_layer_map *m, int32_t g, int32_t b)
{
    int32_t i = g * m->blocks_per_group + b;
    return m->list_off[i + 1] - m->list_off[i];
}

static const int32_t *list_at(const qs_layer_map *m, int32_t g, int32_t b)
{
    return m->list + m->list_off[g * m->blocks_per_group + b];
}

/* The largest input window, weight tile and accumulator tile over every tile
 * a (tm, tk) tiling produces: each must fit its buffer half, not just the first
 * (later tiles lose the top padding; a compressed chunk can span many channels). */
typedef struct {
    int64_t ifmap, weight, accum;
} tile_bytes;

static tile_bytes max_tile_bytes(const qs_layer *L, const qs_layer *IN, const qs_arch *arch, const qs_layer_map *m,
                                 int32_t tm, int32_t tk)
{
    const qs_gemm_dims d = m->g;
    const int is_is = arch->dataflow == QS_DF_IS;
    const int comp = skip_weights(arch);
    tile_bytes t = {0, 0, 0};
    int64_t max_k_elems = 0;  /* FC: reduction elements of a chunk; conv: channels */
    for (int32_t g = 0; g < d.groups; g++) {
        if (is_is) {
            for (int32_t k0 = 0; k0 < d.K; k0 += tk) {
                int32_t k1 = k0 + tk < d.K ? k0 + tk - 1 : d.K - 1;
                int64_t span = L->kind == QS_L_FC ? k1 - k0 + 1 : k1 / (L->kh * L->kw) - k0 / (L->kh * L->kw) + 1;
                if (span > max_k_elems) max_k_elems = span;
                int64_t wb = 0;
                for (int32_t b = k0 / arch->rows; b * arch->rows <= k1; b++)
                    wb += weight_bytes(m, arch->rows, list_len(m, g, b), comp);
                if (wb > t.weight) t.weight = wb;
            }
            continue;
        }
        for (int32_t b = 0; b < m->blocks_per_group; b++) {
            const int32_t *lst = list_at(m, g, b);
            int32_t len = list_len(m, g, b);
            int32_t ncols = d.N - b * arch->cols < arch->cols ? d.N - b * arch->cols : arch->cols;
            for (int32_t k0 = 0; k0 < len; k0 += tk) {
                int32_t k1 = k0 + tk < len ? k0 + tk - 1 : len - 1;
                int64_t span = L->kind == QS_L_FC ? lst[k1] - lst[k0] + 1
                                                  : lst[k1] / (L->kh * L->kw) - lst[k0] / (L->kh * L->kw) + 1;
                if (span > max_k_elems) max_k_elems = span;
                int64_t wb = weight_bytes(m, ncols, k1 - k0 + 1, comp);
                if (wb > t.weight) t.weight = wb;
            }
        }
    }
    if (L->kind == QS_L_FC) {
        t.ifmap = bits_to_bytes(max_k_elems * m->act_bits);
    } else {
        int64_t rows = 0;
        for (int32_t m0 = 0; m0 < d.M; m0 += tm) {
            int64_t r = window_rows(L, IN, m0, d.M - m0 < tm ? d.M - m0 : tm);
            if (r > rows) rows = r;
        }
        t.ifmap = bits_to_bytes(rows * IN->out_w * max_k_elems * m->act_bits);
    }
    t.ifmap += window_slack(L, IN, max_k_elems, m->act_bits);
    t.accum = (int64_t)tm * (is_is ? d.N : (d.N < arch->cols ? d.N : arch->cols)) * 4;
    return t;
}

/* Choose (tm, tn, tk) so that every tile fits its buffer. Largest reduction
 * chunk first (it avoids partial-sum traffic), then the most rows. */
static qs_status choose_tiles(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                              qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const caps c = caps_of(arch);
    const qs_gemm_dims d = m->g;
    const int is_is = arch->dataflow == QS_DF_IS;
    int32_t kmax = 0;
    for (int32_t g = 0; g < d.groups; g++)
        for (int32_t b = 0; b < m->blocks_per_group; b++)
            if (list_len(m, g, b) > kmax) kmax = list_len(m, g, b);
    /* OS/WS: columns are one n-block and tk counts positions of its k list.
     * IS: tk counts plain k (multiples of rows); the whole n list streams. */
    int32_t munit = arch->dataflow == QS_DF_OS ? arch->rows : is_is ? arch->cols : 1;
    int32_t kunit = arch->dataflow == QS_DF_OS ? 1 : arch->rows;
    int32_t kfull = is_is ? d.K : kmax;
    if (kfull < 1) kfull = 1;
    int32_t tn = is_is ? d.N : (d.N < arch->cols ? d.N : arch->cols);
    int32_t tm1 = munit < d.M ? munit : d.M;
    if (arch->timing == QS_TIMING_SCALESIM) {
        /* SCALE-Sim's folds stream the whole of the other dimensions whatever
         * the SRAM sizes (its buffers only decide DRAM traffic): one tile of
         * all rows and the whole reduction (docs/timing.md, "SCALE-Sim convention") */
        m->tm = d.M;
        m->tk = kfull;
        m->tn = tn;
        return QS_OK;
    }

    for (int32_t tk = kfull;;) {
        tile_bytes one = max_tile_bytes(L, IN, arch, m, tm1, tk);
        if (one.weight <= c.cap_weight && one.ifmap <= c.cap_ifmap && one.accum <= c.cap_accum) {
            /* largest tm (multiple of munit, or all of M) whose tiles all fit */
            int32_t lo = 1, hi = (int32_t)ceil_div(d.M, munit);
            while (lo < hi) {
                int32_t mid = lo + (hi - lo + 1) / 2;
                int32_t tm = mid * munit > d.M ? d.M : mid * munit;
                tile_bytes tb = max_tile_bytes(L, IN, arch, m, tm, tk);
                if (tb.ifmap <= c.cap_ifmap && tb.accum <= c.cap_accum) lo = mid;
                else hi = mid - 1;
            }
            m->tm = lo * munit > d.M ? d.M : lo * munit;
            m->tk = tk;
            m->tn = tn;
            return QS_OK;
        }
        if (tk <= kunit)
            return qs_fail(err, QS_ERR_NOFIT,
                           "layer '%s': no tiling fits: the smallest tile (%d rows, %d reduction %s) needs %lld B of "
                           "weights (weight buffer tile %lld B), %lld B of input (ifmap buffer tile %lld B), %lld B "
                           "of accumulators (accum buffer tile %lld B)",
                           L->name, tm1, tk, is_is ? "rows" : "positions", (long long)one.weight,
                           (long long)c.cap_weight, (long long)one.ifmap, (long long)c.cap_ifmap,
                           (long long)one.accum, (long long)c.cap_accum);
        int32_t next = (int32_t)ceil_div(tk, 2);
        next = (int32_t)(ceil_div(next, kunit) * kunit);
        if (next >= tk) next = tk - kunit;
        if (next < kunit) next = kunit;
        tk = next;
    }
}

/* ---- emission --------------------------------------------------------------- */

typedef struct {
    insn_vec iv;
    int barrier_pending;  /* a STORE->LOAD "layer stored" token is owed to the next load */
    uint32_t dram_top;
    int dram_overflow;    /* an allocation passed the 32-bit address space */
} emitter;

/* Encode a pattern into a LOAD/STORE; *moved gets its bytes. */
static qs_status set_pattern(qs_insn *in, const dma_pat *p, int64_t *moved, qs_error *err)
{
    int64_t addr = (int64_t)p->base + p->start_bit / 8, bytes = pat_moved(p);
    if (addr > UINT32_MAX || bytes > UINT32_MAX || p->rows > UINT32_MAX || p->run_bits > UINT32_MAX ||
        p->stride_bits > UINT32_MAX)
        return qs_fail(err, QS_ERR_NOFIT,
                       "layer %u: a transfer of %lld B at 0x%llx (%lld runs of %lld bits) exceeds the 32-bit "
                       "DMA fields",
                       in->layer, (long long)bytes, (long long)addr, (long long)p->rows, (long long)p->run_bits);
    in->addr = (uint32_t)addr;
    in->bit0 = (uint8_t)(p->start_bit % 8);
    in->rows = (uint32_t)p->rows;
    in->run_bits = (uint32_t)p->run_bits;
    in->stride_bits = (uint32_t)p->stride_bits;
    in->bytes = (uint32_t)bytes;
    *moved = bytes;
    return QS_OK;
}

static qs_status emit_load(emitter *e, int32_t layer, int32_t group, qs_mem mem, const dma_pat *pat,
                           int64_t *moved, int first, int last, qs_error *err)
{
    qs_insn in;
    memset(&in, 0, sizeof in);
    in.op = QS_OP_LOAD;
    in.mem = (uint8_t)mem;
    in.layer = (uint16_t)layer;
    in.group = (uint16_t)group;
    qs_status st = set_pattern(&in, pat, moved, err);
    if (st) return st;
    if (first) in.deps |= QS_DEP_POP_NEXT;
    if (last) in.deps |= QS_DEP_PUSH_NEXT;
    if (e->barrier_pending) {
        in.deps |= QS_DEP_POP_PREV;
        e->barrier_pending = 0;
    }
    return push_insn(&e->iv, &in, err);
}

/* The STORE of a tile's results from the accumulator buffer to DRAM (always
 * behind the compute or PPU step that made them); adds its bytes to *dram_out. */
static qs_status emit_store(emitter *e, int32_t layer, int32_t group, int64_t m0, int64_t m_len, int64_t n0,
                            int64_t n_len, const dma_pat *pat, int64_t *dram_out, qs_error *err)
{
    qs_insn s;
    memset(&s, 0, sizeof s);
    s.op = QS_OP_STORE;
    s.mem = QS_MEM_ACCUM;
    s.layer = (uint16_t)layer;
    s.group = (uint16_t)group;
    s.m0 = (uint32_t)m0;
    s.m_len = (uint32_t)m_len;
    s.n0 = (uint32_t)n0;
    s.n_len = (uint32_t)n_len;
    int64_t moved = 0;
    qs_status st = set_pattern(&s, pat, &moved, err);
    if (st) return st;
    s.deps = QS_DEP_POP_PREV | QS_DEP_PUSH_PREV;
    *dram_out += moved;
    return push_insn(&e->iv, &s, err);
}

/* A post-processing step of one tile, ordered by deps like a compute step. */
static qs_status emit_pass(emitter *e, int32_t layer, uint32_t deps, qs_error *err)
{
    qs_insn p;
    memset(&p, 0, sizeof p);
    p.op = QS_OP_PASS;
    p.layer = (uint16_t)layer;
    p.deps = deps;
    return push_insn(&e->iv, &p, err);
}

static uint32_t dram_alloc(emitter *e, int64_t bytes)
{
    uint32_t a = e->dram_top;
    int64_t top = (int64_t)e->dram_top + ((bytes + 63) & ~(int64_t)63);
    if (top > UINT32_MAX) {
        e->dram_overflow = 1;
        return 0;
    }
    e->dram_top = (uint32_t)top;
    return a;
}

static int64_t layer_out_bytes(const qs_layer *L)
{
    return bits_to_bytes((int64_t)L->out_c * L->out_h * L->out_w * L->out_bits);
}

/* The weight image the compiler lays out in DRAM (docs/compiler.md, "DRAM
 * allocation"): block by block (group-major), each block's tiles in the order
 * the GEMM loads them, so that every weight LOAD is one contiguous run. OS/WS:
 * block (g, n-block) is its k-chunks of tk list positions, each
 * weight_bytes(cols, chunk). IS: block (g, k-block) is weight_bytes(rows,
 * list length). block_off gets n_lists + 1 offsets; returns the image size. */
static int64_t weight_image(const qs_arch *arch, const qs_layer_map *m, int64_t *block_off)
{
    const qs_gemm_dims d = m->g;
    const int is_is = arch->dataflow == QS_DF_IS;
    const int comp = skip_weights(arch);
    int64_t off = 0;
    for (int32_t g = 0; g < d.groups; g++)
        for (int32_t b = 0; b < m->blocks_per_group; b++) {
            block_off[g * m->blocks_per_group + b] = off;
            int32_t ll = list_len(m, g, b);
            if (is_is) {
                off += weight_bytes(m, arch->rows, ll, comp);
                continue;
            }
            int32_t ncols = d.N - b * arch->cols < arch->cols ? d.N - b * arch->cols : arch->cols;
            for (int32_t k0 = 0; k0 < ll; k0 += m->tk)
                off += weight_bytes(m, ncols, ll - k0 < m->tk ? ll - k0 : m->tk, comp);
        }
    block_off[m->n_lists] = off;
    return off;
}

/* OS/WS: the reduction indices any n-block of group g keeps (first of the
 * first list entries .. last of the last ones); kl < kf when all are empty. */
static void resident_k_range(const qs_layer_map *m, int32_t g, int32_t *kf, int32_t *kl)
{
    *kf = INT32_MAX;
    *kl = -1;
    for (int32_t b = 0; b < m->blocks_per_group; b++) {
        int32_t len = list_len(m, g, b);
        if (!len) continue;
        if (list_at(m, g, b)[0] < *kf) *kf = list_at(m, g, b)[0];
        if (list_at(m, g, b)[len - 1] > *kl) *kl = list_at(m, g, b)[len - 1];
    }
    if (*kl < 0) *kf = 0;
}

static qs_status emit_gemm_layer(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                 uint32_t in_addr, uint32_t w_addr, const int64_t *w_off, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const qs_gemm_dims d = m->g;
    const int is_is = arch->dataflow == QS_DF_IS;
    const int comp = skip_weights(arch);
    qs_status st;

    /* DRAM traffic of both loop orders (docs/compiler.md, "Loop order"). */
    int64_t ifmap_total = 0, weight_total = 0;
    int32_t n_mt = (int32_t)ceil_div(d.M, m->tm);
    int32_t n_nb = is_is ? 1 : m->blocks_per_group;
    int32_t max_kc = 1;
    for (int32_t g = 0; g < d.groups; g++) {
        ifmap_total += ifmap_bytes(L, IN, 0, d.M, 0, d.K - 1, m->act_bits);
        for (int32_t b = 0; b < m->blocks_per_group; b++) {
            int32_t ll = list_len(m, g, b);
            int32_t cols = is_is ? arch->rows : (d.N - b * arch->cols < arch->cols ? d.N - b * arch->cols : arch->cols);
            if (is_is) cols = (d.K - b * arch->rows < arch->rows ? d.K - b * arch->rows : arch->rows);
            weight_total += weight_bytes(m, cols, ll, comp);
            int32_t kc = (int32_t)ceil_div(is_is ? d.K : (ll ? ll : 1), m->tk);
            if (kc > max_kc) max_kc = kc;
        }
    }
    /* A resident input tile serves every n-block, so it is the window of the
     * union of the blocks' reduction ranges; it is resident only if that
     * window fits the ifmap buffer half for every m-tile (under the SCALE-Sim
     * convention tiles ignore the buffer sizes, docs/timing.md). */
    int can_keep_ifmap = max_kc == 1;
    for (int32_t g = 0; g < d.groups && can_keep_ifmap && !is_is && arch->timing != QS_TIMING_SCALESIM; g++) {
        int32_t kf, kl;
        resident_k_range(m, g, &kf, &kl);
        for (int32_t m0 = 0; m0 < d.M && can_keep_ifmap; m0 += m->tm) {
            int32_t mlen = d.M - m0 < m->tm ? d.M - m0 : m->tm;
            dma_pat w = ifmap_pattern(L, IN, 0, g, m0, mlen, kf, kl, m->act_bits);
            can_keep_ifmap = pat_moved(&w) <= caps_of(arch).cap_ifmap;
        }
    }
    int64_t t_n_outer = ifmap_total * n_nb + weight_total * (max_kc > 1 ? n_mt : 1);
    int64_t t_m_outer = ifmap_total * (can_keep_ifmap ? 1 : n_nb) + weight_total * n_mt;
    m->order = t_m_outer < t_n_outer ? QS_ORDER_M_OUTER : QS_ORDER_N_OUTER;
    m->weight_resident = m->order == QS_ORDER_N_OUTER && max_kc == 1;
    m->ifmap_resident = m->order == QS_ORDER_M_OUTER && can_keep_ifmap;

    const int32_t n_outer = m->order == QS_ORDER_N_OUTER ? n_nb : n_mt;
    const int32_t n_inner = m->order == QS_ORDER_N_OUTER ? n_mt : n_nb;
    for (int32_t g = 0; g < d.groups; g++) {
        for (int32_t o = 0; o < n_outer; o++) {
            for (int32_t i = 0; i < n_inner; i++) {
                int32_t mt = m->order == QS_ORDER_N_OUTER ? i : o;
                int32_t nb = m->order == QS_ORDER_N_OUTER ? o : i;
                int32_t m0 = mt * m->tm, mlen = d.M - m0 < m->tm ? d.M - m0 : m->tm;
                /* OS/WS: the n-block is array-width wide and has its own k list.
                 * IS: all n at once, streamed in chunks of tn list positions per k-chunk. */
                int32_t n0 = is_is ? 0 : nb * arch->cols;
                int32_t nlen = is_is ? d.N : (d.N - n0 < arch->cols ? d.N - n0 : arch->cols);
                int32_t ktot = is_is ? d.K : list_len(m, g, nb);
                int32_t n_kc = ktot ? (int32_t)ceil_div(ktot, m->tk) : 1;
                for (int32_t kc = 0; kc < n_kc; kc++) {
                    int32_t k0 = kc * m->tk, klen = ktot - k0 < m->tk ? ktot - k0 : m->tk;
                    if (klen < 0) klen = 0;
                    int32_t kfirst = 0, klast = -1;
                    if (klen > 0) {
                        if (is_is) { kfirst = k0; klast = k0 + klen - 1; }
                        else { kfirst = list_at(m, g, nb)[k0]; klast = list_at(m, g, nb)[k0 + klen - 1]; }
                    }
                    if (m->ifmap_resident && !is_is) resident_k_range(m, g, &kfirst, &klast);
                    int need_i = !(m->ifmap_resident && nb > 0);
                    int need_w = !(m->weight_resident && mt > 0);
                    dma_pat ip = need_i ? ifmap_pattern(L, IN, in_addr, g, m0, mlen, kfirst, klast, m->act_bits)
                                        : pat_runs(in_addr, 0, 0, 0, 0);
                    int64_t ib = pat_moved(&ip);
                    int64_t wb = 0, woff = 0;
                    if (need_w) {
                        if (is_is) {
                            woff = w_off[g * m->blocks_per_group + k0 / arch->rows];
                            for (int32_t b = k0 / arch->rows; b * arch->rows < k0 + klen; b++)
                                wb += weight_bytes(m, arch->rows, list_len(m, g, b), comp);
                        } else {
                            woff = w_off[g * m->blocks_per_group + nb] + (int64_t)kc * weight_bytes(m, nlen, m->tk, comp);
                            wb = weight_bytes(m, nlen, klen, comp);
                        }
                    }
                    need_w = need_w && wb > 0;
                    /* A tile with nothing to load (every weight of the layer zero
                     * under weight skipping) still owes the previous layer's
                     * "layer stored" token: a LOAD of 0 bytes carries it. */
                    need_i = need_i && (ib > 0 || (e->barrier_pending && !need_w));
                    int64_t moved;
                    if (need_i) {
                        if ((st = emit_load(e, li, g, QS_MEM_IFMAP, &ip, &moved, 1, !need_w, err))) return st;
                        m->dram_ifmap += moved;
                    }
                    if (need_w) {
                        dma_pat wp = pat_bytes(w_addr, woff, wb);
                        if ((st = emit_load(e, li, g, QS_MEM_WEIGHT, &wp, &moved, !need_i, 1, err))) return st;
                        m->dram_weight += moved;
                    }
                    qs_insn c;
                    memset(&c, 0, sizeof c);
                    c.op = QS_OP_GEMM;
                    c.layer = (uint16_t)li;
                    c.group = (uint16_t)g;
                    c.m0 = (uint32_t)m0; c.m_len = (uint32_t)mlen;
                    c.n0 = (uint32_t)n0; c.n_len = (uint32_t)nlen;
                    c.k0 = (uint32_t)k0; c.k_len = (uint32_t)klen;
                    if (kc == 0) { c.flags |= QS_GEMM_FIRST_K; c.deps |= QS_DEP_POP_NEXT; }
                    if (kc == n_kc - 1) { c.flags |= QS_GEMM_LAST_K; c.deps |= QS_DEP_PUSH_NEXT; }
                    if (need_i || need_w) c.deps |= QS_DEP_POP_PREV | QS_DEP_PUSH_PREV;
                    if ((st = push_insn(&e->iv, &c, err))) return st;
                }
                /* channels g*N + n0 .. +nlen of the CHW output, pixels m0 .. +mlen of each */
                int64_t plane = (int64_t)d.M * L->out_bits;
                dma_pat op = pat_runs(m->out_addr, ((int64_t)g * d.N + n0) * plane + (int64_t)m0 * L->out_bits, nlen,
                                      (int64_t)mlen * L->out_bits, plane);
                if ((st = emit_store(e, li, g, m0, mlen, n0, nlen, &op, &m->dram_out, err))) return st;
            }
        }
    }
    return QS_OK;
}

/* Layers that only the post-processing unit touches: tiled by output
 * channels so each input chunk fits the ifmap buffer and the result the
 * accumulator buffer. */
static qs_status emit_ppu_layer(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const caps c = caps_of(arch);
    qs_status st;
    /* input bytes per output channel, summed over inputs */
    /* (concat: output channel c reads one input's channel; the widest input
     * bounds a channel's bytes) */
    int64_t in_per_c = 0, slack = 0;
    for (int32_t i = 0; i < L->n_inputs; i++) {
        const qs_layer *IN = &net->layers[L->inputs[i]];
        int64_t plane_bits = (int64_t)IN->out_h * IN->out_w * IN->out_bits;
        int64_t b = bits_to_bytes(plane_bits);
        if (L->kind == QS_L_CONCAT) in_per_c = b > in_per_c ? b : in_per_c;
        else in_per_c += b;
        /* a run of whole channels that are not whole bytes may touch one byte more */
        if (plane_bits % 8) slack++;
    }
    int64_t out_per_c = (int64_t)L->out_h * L->out_w * 4;
    if (in_per_c > c.cap_ifmap || out_per_c > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT,
                       "layer '%s': one channel needs %lld B of input (ifmap buffer tile %lld B) and %lld B of "
                       "output (accum buffer tile %lld B)",
                       L->name, (long long)in_per_c, (long long)c.cap_ifmap, (long long)out_per_c,
                       (long long)c.cap_accum);
    int64_t chunk = (c.cap_ifmap - slack) / in_per_c;
    if (chunk < 1) chunk = 1;
    if (c.cap_accum / out_per_c < chunk) chunk = c.cap_accum / out_per_c;
    if (chunk > L->out_c) chunk = L->out_c;
    m->tm = (int32_t)chunk;
    for (int32_t c0 = 0; c0 < L->out_c; c0 += (int32_t)chunk) {
        int32_t cl = L->out_c - c0 < chunk ? L->out_c - c0 : (int32_t)chunk;
        /* the input channels output channels [c0, c0+cl) read: the same
         * channels of every input, or for concat the part of each input that
         * falls in the range (inputs outside it load nothing) */
        dma_pat pats[QS_MAX_INPUTS];
        int32_t n_pats = 0, coff = 0;
        for (int32_t i = 0; i < L->n_inputs; i++) {
            const qs_layer *IN = &net->layers[L->inputs[i]];
            int64_t plane_bits = (int64_t)IN->out_h * IN->out_w * IN->out_bits;
            int32_t lo = c0, hi = c0 + cl; /* channels of this input, in its own numbering */
            if (L->kind == QS_L_CONCAT) {
                lo = c0 > coff ? c0 - coff : 0;
                hi = c0 + cl < coff + IN->out_c ? c0 + cl - coff : IN->out_c;
                coff += IN->out_c;
                if (hi <= lo) continue;
            }
            pats[n_pats++] = pat_runs(addr_of[L->inputs[i]], lo * plane_bits, 1, (int64_t)(hi - lo) * plane_bits, 0);
        }
        for (int32_t i = 0; i < n_pats; i++) {
            int64_t moved;
            if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &pats[i], &moved, i == 0, i == n_pats - 1, err))) return st;
            m->dram_ifmap += moved;
        }
        if ((st = emit_pass(e, li, QS_DEP_POP_PREV | QS_DEP_PUSH_PREV | QS_DEP_POP_NEXT | QS_DEP_PUSH_NEXT, err)))
            return st;
        int64_t plane_bits = (int64_t)L->out_h * L->out_w * L->out_bits;
        dma_pat op = pat_runs(m->out_addr, c0 * plane_bits, 1, cl * plane_bits, 0);
        if ((st = emit_store(e, li, 0, c0, cl, 0, 0, &op, &m->dram_out, err))) return st;
    }
    return QS_OK;
}

/* ---- transformer layers (docs/compiler.md, "Transformer layers") ---------- */

/* A decode step's KVCACHE (docs/decode.md, "Where the cache lives"): its
 * output region holds the cached rows (written by earlier steps, never moved
 * again) followed on each line (c, h) by the new ones. The step loads the new
 * rows only (channel tiles as a post-processing layer) and stores each line's
 * new elements at W offset past: runs of Wn elements, stride W. */
static qs_status emit_kvcache_append(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                     const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li], *IN = &net->layers[L->inputs[0]];
    const caps c = caps_of(arch);
    const int64_t H = L->out_h, W = L->out_w, Wn = IN->out_w, past = W - Wn, bits = L->out_bits;
    const int64_t in_per_c = bits_to_bytes(H * Wn * bits) + 1, out_per_c = H * Wn * 4;
    qs_status st;
    if (in_per_c > c.cap_ifmap || out_per_c > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT, "layer '%s': one channel's new rows need %lld B of input (ifmap buffer "
                       "tile %lld B) and %lld B of output (accum buffer tile %lld B)", L->name, (long long)in_per_c,
                       (long long)c.cap_ifmap, (long long)out_per_c, (long long)c.cap_accum);
    int64_t chunk = c.cap_ifmap / in_per_c;
    if (c.cap_accum / out_per_c < chunk) chunk = c.cap_accum / out_per_c;
    if (chunk > L->out_c) chunk = L->out_c;
    m->tm = (int32_t)chunk;
    for (int32_t c0 = 0; c0 < L->out_c; c0 += (int32_t)chunk) {
        int32_t cl = L->out_c - c0 < chunk ? L->out_c - c0 : (int32_t)chunk;
        int64_t moved;
        dma_pat ip = pat_runs(addr_of[L->inputs[0]], c0 * H * Wn * bits, 1, cl * H * Wn * bits, 0);
        if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &ip, &moved, 1, 1, err))) return st;
        m->dram_ifmap += moved;
        if ((st = emit_pass(e, li, QS_DEP_POP_PREV | QS_DEP_PUSH_PREV | QS_DEP_POP_NEXT | QS_DEP_PUSH_NEXT, err)))
            return st;
        dma_pat op = pat_runs(m->out_addr, (c0 * H * W + past) * bits, cl * H, Wn * bits, W * bits);
        if ((st = emit_store(e, li, 0, c0, cl, 0, 0, &op, &m->dram_out, err))) return st;
    }
    return QS_OK;
}

/* Post-processing layers that reduce along rows of their own (docs/timing.md,
 * "Where a row lives"): norms and softmax over channels (a row = one
 * position's C channels), softmax over W (a row = one line of W elements).
 * Tiled by rows, each tile holding whole rows in the ifmap buffer and their
 * results in the accumulator buffer; a row that does not fit is refused. */
static qs_status emit_ppu_rows(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                               const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const caps c = caps_of(arch);
    qs_status st;
    int64_t P = 0, C = 0;
    qs_xfmr_rows(L, &P, &C);
    /* a row-absmax MUL also holds its second input's row (C2 channels) */
    const qs_layer *IN2 = L->n_inputs > 1 ? &net->layers[L->inputs[1]] : NULL;
    const int64_t C2 = IN2 ? IN2->out_c : 0, bits2 = IN2 ? IN2->out_bits : 0;
    int64_t in_row = bits_to_bytes(C * IN->out_bits) + C + bits_to_bytes(C2 * bits2) + C2, out_row = C * 4;
    if (in_row > c.cap_ifmap || out_row > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT,
                       "layer '%s': one row of %lld elements needs %lld B of input (ifmap buffer tile %lld B) and "
                       "%lld B of results (accum buffer tile %lld B)",
                       L->name, (long long)C, (long long)in_row, (long long)c.cap_ifmap, (long long)out_row,
                       (long long)c.cap_accum);
    int64_t chunk = (c.cap_ifmap - C - C2) * 8 / (C * IN->out_bits + C2 * bits2); /* a run may touch one byte more */
    if (chunk < 1) chunk = 1;
    if (c.cap_accum / out_row < chunk) chunk = c.cap_accum / out_row;
    if (chunk > P) chunk = P;
    m->tm = (int32_t)chunk;
    /* positions: a row is one position's C channels, strided by the channel plane;
     * lines: a row is W contiguous elements */
    const int by_position = !(L->kind == QS_L_SOFTMAX && QS_SOFTMAX_AXIS(L->param) == 2);
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        int64_t pl = P - p0 < chunk ? P - p0 : chunk, moved;
        dma_pat ip = by_position ? pat_runs(addr_of[L->inputs[0]], p0 * IN->out_bits, C, pl * IN->out_bits,
                                            P * IN->out_bits)
                                 : pat_runs(addr_of[L->inputs[0]], p0 * C * IN->out_bits, 1, pl * C * IN->out_bits, 0);
        if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &ip, &moved, 1, !IN2, err))) return st;
        m->dram_ifmap += moved;
        if (IN2) { /* by position: C2 runs of the same positions */
            dma_pat ip2 = pat_runs(addr_of[L->inputs[1]], p0 * bits2, C2, pl * bits2, P * bits2);
            if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &ip2, &moved, 0, 1, err))) return st;
            m->dram_ifmap += moved;
        }
        if ((st = emit_pass(e, li, QS_DEP_POP_PREV | QS_DEP_PUSH_PREV | QS_DEP_POP_NEXT | QS_DEP_PUSH_NEXT, err)))
            return st;
        dma_pat op = by_position ? pat_runs(m->out_addr, p0 * L->out_bits, C, pl * L->out_bits, P * L->out_bits)
                                 : pat_runs(m->out_addr, p0 * C * L->out_bits, 1, pl * C * L->out_bits, 0);
        if ((st = emit_store(e, li, 0, p0, pl, 0, 0, &op, &m->dram_out, err))) return st;
    }
    return QS_OK;
}

/* Token embedding (docs/compiler.md section 12, EMBED): per tile of tokens,
 * the DMA reads the tile's ids, then gathers one table row of d elements per
 * token into the ifmap buffer; the PPU writes each row out as the token's
 * column of the (d, T, 1) output. The rows' addresses depend on the ids, which
 * the program does not know: the i-th token of a tile of n is timed at table
 * row i * floor(V / n) (rows spread over the table, so each run starts a DRAM
 * access of its own, as random ids do; a tile holds at most V tokens). */
static qs_status emit_embed_layer(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                  const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IDS = &net->layers[L->inputs[0]];
    const qs_tensor *tab = &net->tensors[L->weight];
    const caps c = caps_of(arch);
    qs_status st;
    const int64_t T = L->out_h, d = L->out_c, V = tab->shape[0], tbits = qs_dtype_bits(tab->dtype);
    const int64_t row_bits = d * tbits;
    /* a position table (GPT-2's wpe) sits right after the token table; its rows t + param are consecutive */
    const qs_tensor *pos = L->bias >= 0 ? &net->tensors[L->bias] : NULL;
    const int64_t prow_bits = pos ? d * qs_dtype_bits(pos->dtype) : 0, tab_bytes = bits_to_bytes(V * row_bits);
    m->weight_bytes = tab_bytes + (pos ? bits_to_bytes((int64_t)pos->shape[0] * prow_bits) : 0);
    m->weight_addr = dram_alloc(e, m->weight_bytes);
    /* per token: its row (one run, one byte of slack), its id and its position row; results d int32 each */
    const int64_t in_tok = bits_to_bytes(row_bits) + 1 + bits_to_bytes(IDS->out_bits) + 1 +
                           (pos ? bits_to_bytes(prow_bits) + 1 : 0),
                  out_tok = d * 4;
    if (in_tok > c.cap_ifmap || out_tok > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT,
                       "layer '%s': one token's embedding row of %lld elements needs %lld B of input (ifmap buffer "
                       "tile %lld B) and %lld B of results (accum buffer tile %lld B)", L->name, (long long)d,
                       (long long)in_tok, (long long)c.cap_ifmap, (long long)out_tok, (long long)c.cap_accum);
    int64_t chunk = c.cap_ifmap / in_tok;
    if (c.cap_accum / out_tok < chunk) chunk = c.cap_accum / out_tok;
    if (chunk > T) chunk = T;
    if (chunk > V) chunk = V; /* the stand-in rows of a tile are distinct rows of the table */
    m->tm = (int32_t)chunk;
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
        int64_t tl = T - t0 < chunk ? T - t0 : chunk, moved, stride_rows = V / tl;
        dma_pat ip = pat_runs(addr_of[L->inputs[0]], t0 * IDS->out_bits, 1, tl * IDS->out_bits, 0);
        if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &ip, &moved, 1, 0, err))) return st;
        m->dram_ifmap += moved;
        /* tl rows from row 0, stride_rows table rows apart (inside the table: (tl - 1) * floor(V / tl) < V);
         * a stride of one row (V < 2 tl) merges them into one run, as the DMA would for consecutive rows */
        dma_pat rp = pat_runs(m->weight_addr, 0, tl, row_bits, stride_rows * row_bits);
        if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &rp, &moved, 0, !pos, err))) return st;
        m->dram_weight += moved;
        if (pos) { /* the tile's position rows t0 + param ..: one run */
            dma_pat pp = pat_runs(m->weight_addr, tab_bytes * 8 + (t0 + L->param) * prow_bits, 1, tl * prow_bits, 0);
            if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &pp, &moved, 0, 1, err))) return st;
            m->dram_weight += moved;
        }
        if ((st = emit_pass(e, li, QS_DEP_POP_PREV | QS_DEP_PUSH_PREV | QS_DEP_POP_NEXT | QS_DEP_PUSH_NEXT, err)))
            return st;
        dma_pat op = pat_runs(m->out_addr, t0 * L->out_bits, d, tl * L->out_bits, T * L->out_bits);
        if ((st = emit_store(e, li, 0, t0, tl, 0, 0, &op, &m->dram_out, err))) return st;
    }
    return QS_OK;
}

/* Argmax over channels (docs/compiler.md section 12, ARGMAX): per chunk
 * of positions, the channels stream through the ifmap buffer in chunks (the
 * PPU keeps a running maximum and its index per position, so a row need not
 * fit: an LM head's 50257 channels do not); after the last channel chunk the
 * STORE writes one index per position. */
static qs_status emit_argmax_layer(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                   const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const caps c = caps_of(arch);
    qs_status st;
    const int64_t P = (int64_t)L->out_h * L->out_w, C = IN->out_c, ib = IN->out_bits;
    /* positions per tile: a channel's run of them (one byte of slack) fits the ifmap, the indices the accum */
    int64_t pchunk = P;
    while (pchunk > 1 && (bits_to_bytes(pchunk * ib) + 1 > c.cap_ifmap || pchunk * 4 > c.cap_accum)) pchunk = (pchunk + 1) / 2;
    if (bits_to_bytes(pchunk * ib) + 1 > c.cap_ifmap || pchunk * 4 > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT, "layer '%s': one position does not fit the ifmap and accum buffer tiles "
                       "(%lld, %lld B)", L->name, (long long)c.cap_ifmap, (long long)c.cap_accum);
    m->tm = (int32_t)pchunk;
    for (int64_t p0 = 0; p0 < P; p0 += pchunk) {
        const int64_t pl = P - p0 < pchunk ? P - p0 : pchunk;
        int64_t cchunk = c.cap_ifmap / (bits_to_bytes(pl * ib) + 1);
        if (cchunk > C) cchunk = C;
        for (int64_t c0 = 0; c0 < C; c0 += cchunk) {
            const int64_t cl = C - c0 < cchunk ? C - c0 : cchunk;
            int64_t moved;
            dma_pat ip = pat_runs(addr_of[L->inputs[0]], (c0 * P + p0) * ib, cl, pl * ib, P * ib);
            if ((st = emit_load(e, li, 0, QS_MEM_IFMAP, &ip, &moved, 1, 1, err))) return st;
            m->dram_ifmap += moved;
            qs_insn p;
            memset(&p, 0, sizeof p);
            p.op = QS_OP_PASS;
            p.layer = (uint16_t)li;
            p.deps = QS_DEP_POP_PREV | QS_DEP_PUSH_PREV;
            if (c0 == 0) p.deps |= QS_DEP_POP_NEXT;
            if (c0 + cl == C) p.deps |= QS_DEP_PUSH_NEXT;
            if ((st = push_insn(&e->iv, &p, err))) return st;
        }
        dma_pat op = pat_runs(m->out_addr, p0 * L->out_bits, 1, pl * L->out_bits, 0);
        if ((st = emit_store(e, li, 0, p0, pl, 0, 0, &op, &m->dram_out, err))) return st;
    }
    return QS_OK;
}

/* Bits of a signed or unsigned field that holds every value in [lo, hi];
 * *is_signed says which. */
static int32_t width_of_range(int64_t lo, int64_t hi, int32_t *is_signed)
{
    int32_t w = 1;
    *is_signed = lo < 0;
    if (*is_signed)
        while (lo < -((int64_t)1 << (w - 1)) || hi > ((int64_t)1 << (w - 1)) - 1) w++;
    else
        while (hi > ((int64_t)1 << w) - 1) w++;
    return w;
}

/* MatMul of two activations: op(A) on the activation path, op(B) - zb on the
 * weight path in slices of its centered width; tiles of tm rows x tn columns
 * with the whole reduction; per batch, n-blocks outer (the B tile stays
 * resident across the m-tiles), m-tiles inner (A re-read once per n-block,
 * unless all of M fits in one tile). */
static qs_status emit_matmul_layer(const qs_net *net, const qs_arch *arch, int32_t li, qs_layer_map *m,
                                   const uint32_t *addr_of, emitter *e, qs_error *err)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *LA = &net->layers[L->inputs[0]], *LB = &net->layers[L->inputs[1]];
    const qs_matmul_dims d = qs_matmul_dims_of(net, li);
    const caps c = caps_of(arch);
    qs_status st;
    if (arch->timing == QS_TIMING_SCALESIM)
        return qs_fail(err, QS_ERR_UNSUPPORTED,
                       "layer '%s': a matmul of two activations has no SCALE-Sim counterpart "
                       "([timing] convention = scalesim)", L->name);
    m->is_matmul = 1;
    m->g.M = d.M;
    m->g.N = d.N;
    m->g.K = d.K;
    m->g.groups = d.batch;
    m->act_bits = LA->out_bits;
    m->act_signed = LA->out_signed;
    if (m->act_bits > arch->max_act_bits)
        return qs_fail(err, QS_ERR_UNSUPPORTED,
                       "layer '%s': %d-bit operand A exceeds the datapath's max_act_bits %d", L->name,
                       m->act_bits, arch->max_act_bits);
    int32_t blo, bhi;
    qs_int_range(LB->out_bits, LB->out_signed, &blo, &bhi);
    m->weight_bits = width_of_range((int64_t)blo - LB->out_zp, (int64_t)bhi - LB->out_zp, &m->weight_signed);
    m->slices = (int32_t)ceil_div(m->weight_bits, arch->weight_path_bits);
    m->weight_bipolar = 0;

    /* tiles: tn columns (at most the array width), tm rows, whole K */
    /* bytes of a tile, with one byte of slack per DMA run (a run of bit-packed values may touch one
     * byte more than its bits) */
#define MM_A_BYTES(tm_) (bits_to_bytes((int64_t)(tm_) * d.K * LA->out_bits) + (d.trans_a ? d.K : 1))
#define MM_B_BYTES(tn_) (bits_to_bytes((int64_t)d.K * (tn_) * LB->out_bits) + (d.trans_b ? 1 : d.K))
    int64_t tn = d.N < arch->cols ? d.N : arch->cols;
    while (tn > 1 && MM_B_BYTES(tn) > c.cap_weight) tn--;
    int64_t tm = d.M;
    while (tm > 1 && (MM_A_BYTES(tm) > c.cap_ifmap || tm * tn * 4 > c.cap_accum)) tm--;
    if (MM_B_BYTES(tn) > c.cap_weight || MM_A_BYTES(tm) > c.cap_ifmap || tm * tn * 4 > c.cap_accum)
        return qs_fail(err, QS_ERR_NOFIT,
                       "layer '%s': one row of A (%d x %d bits), one column of B (%d x %d bits) and one "
                       "accumulator do not fit the ifmap, weight and accum buffer tiles (%lld, %lld, %lld B)",
                       L->name, d.K, LA->out_bits, d.K, LB->out_bits, (long long)c.cap_ifmap,
                       (long long)c.cap_weight, (long long)c.cap_accum);
    m->tm = (int32_t)tm;
    m->tn = (int32_t)tn;
    m->tk = d.K;
    m->order = QS_ORDER_N_OUTER;
    m->weight_resident = 1;
    /* grouped (docs/compiler.md section 12, "Grouped MATMUL"): the output's batch runs in groups of g consecutive
     * matrices that share one matrix of the smaller operand; per group and n-block that shared tile is
     * loaded once and the g matrices run against it one after the other. A stays resident across
     * n-blocks (and across its group) when all of M fits one tile and B is not the shared operand. */
    const int32_t g = d.group_a > d.group_b ? d.group_a : d.group_b;
    m->ifmap_resident = tm >= d.M && d.group_b == 1;
    for (int32_t grp = 0; grp < d.batch / g; grp++)
        for (int32_t n0 = 0; n0 < d.N; n0 += (int32_t)tn)
            for (int32_t b = grp * g; b < (grp + 1) * g; b++) {
            int32_t nlen = d.N - n0 < tn ? d.N - n0 : (int32_t)tn;
            const int32_t ba = b / d.group_a, bbat = b / d.group_b, first = b == grp * g;
            for (int32_t m0 = 0; m0 < d.M; m0 += (int32_t)tm) {
                int32_t mlen = d.M - m0 < tm ? d.M - m0 : (int32_t)tm;
                int need_a = !(m->ifmap_resident && (n0 > 0 || !first)), need_b = m0 == 0 && (d.group_b == 1 || first);
                const int64_t ab_ = LA->out_bits, bb_ = LB->out_bits;
                const int64_t HA = LA->out_h, WA = LA->out_w, HB = LB->out_h, WB = LB->out_w;
                /* op(A) rows m0..: A's rows (contiguous) or, transposed, a column block of each of its K rows */
                dma_pat ap = d.trans_a ? pat_runs(addr_of[L->inputs[0]], ((int64_t)ba * HA * WA + m0) * ab_, HA,
                                                  (int64_t)mlen * ab_, WA * ab_)
                                       : pat_runs(addr_of[L->inputs[0]], ((int64_t)ba * HA + m0) * WA * ab_, 1,
                                                  (int64_t)mlen * WA * ab_, 0);
                /* op(B) columns n0..: a column block of each of B's K rows or, transposed, B's rows */
                dma_pat bp = d.trans_b ? pat_runs(addr_of[L->inputs[1]], ((int64_t)bbat * HB + n0) * WB * bb_, 1,
                                                  (int64_t)nlen * WB * bb_, 0)
                                       : pat_runs(addr_of[L->inputs[1]], ((int64_t)bbat * HB * WB + n0) * bb_, HB,
                                                  (int64_t)nlen * bb_, WB * bb_);
                int64_t moved;
                if (need_a) {
                    if ((st = emit_load(e, li, b, QS_MEM_IFMAP, &ap, &moved, 1, !need_b, err))) return st;
                    m->dram_ifmap += moved;
                }
                if (need_b) {
                    if ((st = emit_load(e, li, b, QS_MEM_WEIGHT, &bp, &moved, !need_a, 1, err))) return st;
                    m->dram_weight += moved;
                }
                qs_insn g;
                memset(&g, 0, sizeof g);
                g.op = QS_OP_GEMM;
                g.layer = (uint16_t)li;
                g.group = (uint16_t)b;
                g.m0 = (uint32_t)m0; g.m_len = (uint32_t)mlen;
                g.n0 = (uint32_t)n0; g.n_len = (uint32_t)nlen;
                g.k0 = 0; g.k_len = (uint32_t)d.K;
                g.flags = QS_GEMM_FIRST_K | QS_GEMM_LAST_K;
                g.deps = QS_DEP_POP_NEXT | QS_DEP_PUSH_NEXT;
                if (need_a || need_b) g.deps |= QS_DEP_POP_PREV | QS_DEP_PUSH_PREV;
                if ((st = push_insn(&e->iv, &g, err))) return st;
                dma_pat op = pat_runs(m->out_addr, (((int64_t)b * d.M + m0) * d.N + n0) * L->out_bits, mlen,
                                      (int64_t)nlen * L->out_bits, (int64_t)d.N * L->out_bits);
                if ((st = emit_store(e, li, b, m0, mlen, n0, nlen, &op, &m->dram_out, err))) return st;
            }
        }
#undef MM_A_BYTES
#undef MM_B_BYTES
    return QS_OK;
}

static qs_status check_ppu_support(const qs_layer *L, const qs_arch *arch, qs_error *err)
{
    int pool = L->kind == QS_L_MAXPOOL || L->kind == QS_L_AVGPOOL || L->kind == QS_L_GAP;
    if (pool && !arch->ppu_pool)
        return qs_fail(err, QS_ERR_UNSUPPORTED, "layer '%s': %s needs [ppu] pool = 1", L->name,
                       qs_layer_kind_name(L->kind));
    if (L->kind == QS_L_ADD && !arch->ppu_add)
        return qs_fail(err, QS_ERR_UNSUPPORTED, "layer '%s': add needs [ppu] add = 1", L->name);
    return QS_OK;
}

qs_status qs_compile(const qs_net *net, const qs_arch *arch, qs_prog **out, qs_error *err)
{
    *out = NULL;
    if (arch->scalesim_figures_only)
        return qs_fail(err, QS_ERR_CONFIG, "a %dx%d array: qsim's engines simulate at most 1024 rows and columns "
                       "(SCALE-Sim's figures only, for a topology: docs/scalesim.md)", (int)arch->rows, (int)arch->cols);
    qs_status st = QS_OK;
    qs_prog *p = qs_calloc(1, sizeof *p);
    uint32_t *addr_of = qs_calloc((size_t)net->n_layers, sizeof *addr_of);
    emitter e;
    memset(&e, 0, sizeof e);
    if (!p || !addr_of) {
        qs_free(p);
        qs_free(addr_of);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    }
    p->arch = *arch;
    p->n_layers = net->n_layers;
    p->maps = qs_calloc((size_t)net->n_layers, sizeof *p->maps);
    if (!p->maps) {
        st = qs_fail(err, QS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    p->init_slots = (arch->ifmap.double_buffer && arch->weight.double_buffer) ? 2 : 1;
    p->init_accum = arch->accum.double_buffer ? 2 : 1;

    /* DRAM: the input first, then every layer's weights, then outputs as they come. */
    addr_of[0] = dram_alloc(&e, layer_out_bytes(&net->layers[0]));
    p->maps[0].out_addr = addr_of[0];
    for (int32_t li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        qs_layer_map *m = &p->maps[li];
        m->layer = li;
        m->first_insn = e.iv.n;
        if (li == 0) continue;
        if ((st = check_ppu_support(L, arch, err))) goto fail;
        if (L->kind == QS_L_FLATTEN || L->kind == QS_L_RESHAPE || (L->kind == QS_L_KVCACHE && L->weight < 0)) {
            /* a view: same bytes, new shape (a kvcache over the prompt: the projection's rows are the cache) */
            addr_of[li] = addr_of[L->inputs[0]];
            m->out_addr = addr_of[li];
            continue;
        }
        if (L->kind == QS_L_CONV || L->kind == QS_L_FC) {
            m->is_gemm = 1;
            m->g = qs_gemm_dims_of(net, li);
            if ((st = prepare_gemm(net, arch, li, m, err))) goto fail;
            if ((st = choose_tiles(net, arch, li, m, err))) goto fail;
            int64_t *w_off = qs_malloc(sizeof(int64_t) * (size_t)(m->n_lists + 1));
            if (!w_off) {
                st = qs_fail(err, QS_ERR_NOMEM, "layer '%s': out of memory", L->name);
                goto fail;
            }
            m->weight_bytes = weight_image(arch, m, w_off);
            m->weight_addr = dram_alloc(&e, m->weight_bytes);
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            st = emit_gemm_layer(net, arch, li, m, addr_of[L->inputs[0]], m->weight_addr, w_off, &e, err);
            qs_free(w_off);
            if (st) goto fail;
        } else if (L->kind == QS_L_MATMUL) {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_matmul_layer(net, arch, li, m, addr_of, &e, err))) goto fail;
        } else if (L->kind == QS_L_EMBED) {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_embed_layer(net, arch, li, m, addr_of, &e, err))) goto fail;
        } else if (L->kind == QS_L_ARGMAX) {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_argmax_layer(net, arch, li, m, addr_of, &e, err))) goto fail;
        } else if (L->kind == QS_L_KVCACHE) {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_kvcache_append(net, arch, li, m, addr_of, &e, err))) goto fail;
        } else if (qs_xfmr_rows(L, &(int64_t){0}, &(int64_t){0})) {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_ppu_rows(net, arch, li, m, addr_of, &e, err))) goto fail;
        } else {
            addr_of[li] = m->out_addr = dram_alloc(&e, layer_out_bytes(L));
            if ((st = emit_ppu_layer(net, arch, li, m, addr_of, &e, err))) goto fail;
        }
        if (e.dram_overflow) {
            st = qs_fail(err, QS_ERR_NOFIT, "layer '%s': the network's tensors exceed the 4 GiB DRAM address space",
                         L->name);
            goto fail;
        }
        m->n_insn = e.iv.n - m->first_insn;
        /* the last STORE of the layer tells the load queue the layer is in DRAM */
        for (int32_t i = e.iv.n - 1; i >= m->first_insn; i--)
            if (e.iv.v[i].op == QS_OP_STORE) {
                e.iv.v[i].deps |= QS_DEP_PUSH_NEXT;
                e.barrier_pending = 1;
                break;
            }
    }
    /* No layer consumes the final barrier token: drop it so queues end empty. */
    for (int32_t i = e.iv.n - 1; i >= 0; i--)
        if (e.iv.v[i].op == QS_OP_STORE) {
            e.iv.v[i].deps &= (uint8_t)~QS_DEP_PUSH_NEXT;
            break;
        }
    p->insn = e.iv.v;
    p->n_insn = e.iv.n;
    p->dram_bytes = e.dram_top;
    qs_free(addr_of);
    *out = p;
    return QS_OK;
fail:
    qs_free(e.iv.v);
    qs_free(addr_of);
    qs_prog_destroy(p);
    return st;
}

/* ---- listing ---------------------------------------------------------------- */

void qs_compile_listing(const qs_prog *p, const qs_net *net, int with_insns, FILE *f)
{
    const qs_arch *a = &p->arch;
    caps c = caps_of(a);
    fprintf(f, "; qsim program for '%s' on %s: %dx%d %s array, %d-bit weight path, zero skip %s\n", net->name,
            a->name, a->rows, a->cols, qs_dataflow_name(a->dataflow), a->weight_path_bits,
            qs_zero_skip_name(a->zero_skip));
    fprintf(f, "; %d instructions, DRAM footprint %u B, input slots %d, accumulator slots %d\n", p->n_insn,
            p->dram_bytes, p->init_slots, p->init_accum);
    for (int32_t li = 1; li < p->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        const qs_layer_map *m = &p->maps[li];
        fprintf(f, "\n; layer %d '%s' %s -> %dx%dx%d, %d-bit out\n", li, L->name, qs_layer_kind_name(L->kind),
                L->out_c, L->out_h, L->out_w, L->out_bits);
        if (m->is_gemm) {
            int64_t kept = m->list_off[m->n_lists], total = (int64_t)m->n_lists *
                (a->dataflow == QS_DF_IS ? m->g.N : m->g.K);
            fprintf(f, ";   GEMM M=%d N=%d K=%d groups=%d, W%d%s A%d%s, %d slice%s, MACs %lld\n", m->g.M, m->g.N,
                    m->g.K, m->g.groups, m->weight_bits, m->weight_bipolar ? "(bipolar)" : m->weight_signed ? "s" : "u",
                    m->act_bits, m->act_signed ? "s" : "u", m->slices, m->slices > 1 ? "s" : "",
                    (long long)qs_layer_macs(net, li));
            tile_bytes tb = max_tile_bytes(L, &net->layers[L->inputs[0]], a, m, m->tm, m->tk);
            int64_t ib = tb.ifmap, wb = tb.weight, ab = tb.accum;
            fprintf(f, ";   tile m=%d n=%d k=%d, order %s%s%s; buffers ifmap %.0f%% weight %.0f%% accum %.0f%%\n",
                    m->tm, m->tn, m->tk, m->order == QS_ORDER_N_OUTER ? "n-outer" : "m-outer",
                    m->weight_resident ? ", weights resident" : "", m->ifmap_resident ? ", ifmap resident" : "",
                    100.0 * (double)ib / (double)c.cap_ifmap, 100.0 * (double)wb / (double)c.cap_weight,
                    100.0 * (double)ab / (double)c.cap_accum);
            fprintf(f, ";   compressed lists keep %lld of %lld entries (%.1f%%)%s\n", (long long)kept,
                    (long long)total, total ? 100.0 * (double)kept / (double)total : 100.0,
                    m->overflow_free ? "" : "; accumulator may overflow: ordered adds");
        } else if (m->is_matmul) {
            const qs_matmul_dims md = qs_matmul_dims_of(net, li);
            fprintf(f, ";   MATMUL of two activations, batch %d%s%.0d: M=%d N=%d K=%d, A%d%s, B centered %d bits in %d "
                    "slice%s, MACs %lld; tile m=%d n=%d k=%d%s\n", m->g.groups, md.group_a * md.group_b > 1 ? " grouped by " : "",
                    md.group_a * md.group_b > 1 ? md.group_a * md.group_b : 0, m->g.M, m->g.N, m->g.K, m->act_bits,
                    m->act_signed ? "s" : "u", m->weight_bits, m->slices, m->slices > 1 ? "s" : "",
                    (long long)qs_layer_macs(net, li), m->tm, m->tn, m->tk, m->ifmap_resident ? ", A resident" : "");
        } else if (qs_xfmr_rows(L, &(int64_t){0}, &(int64_t){0})) {
            fprintf(f, ";   post-processing by rows, %d rows per tile\n", m->tm);
        } else if (L->kind == QS_L_KVCACHE) {
            const int32_t wn = net->layers[L->inputs[0]].out_w;
            if (L->weight >= 0)
                fprintf(f, ";   kv cache: appends %d new rows after %d cached, %d channels per tile\n", wn,
                        L->out_w - wn, m->tm);
            else
                fprintf(f, ";   kv cache over the prompt: %d rows, a view of its input\n", wn);
        } else if (L->kind != QS_L_FLATTEN && L->kind != QS_L_RESHAPE) {
            fprintf(f, ";   post-processing, %d channels per tile\n", m->tm);
        }
        fprintf(f, ";   DRAM ifmap %lld B, weights %lld B, out %lld B, %d instructions\n", (long long)m->dram_ifmap,
                (long long)m->dram_weight, (long long)m->dram_out, m->n_insn);
        if (with_insns) {
            char buf[160];
            for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn; i++) {
                qs_insn_format(&p->insn[i], buf, sizeof buf);
                fprintf(f, "%7d  %s\n", i, buf);
            }
        }
    }
}
