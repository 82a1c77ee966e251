/* The deep libFuzzer harness: a structure-aware generator of VALID but
 * extreme networks and configurations -> .qbin round trip -> compiler ->
 * both engines -> compared field by field.
 *
 * Byte mutation of a CRC-protected file rarely gets past validation, so the
 * fuzz input here is not a file but a list of choices: the accelerator
 * (array shape, dataflow, weight path, zero skipping and its group,
 * accumulator width and overflow mode, buffers, DRAM, PPU), then the network
 * (input shape, width, sign, zero point, clamp) and up to MAX_GEN layers of
 * every kind with their window, groups, widths, zero points, clamps,
 * requantization (multipliers 0 .. INT32_MAX, shifts -31..31), biases up to
 * INT32_MIN/INT32_MAX, add multipliers and weights drawn by a seeded
 * generator in one of several patterns (random, all zero, all extreme,
 * sparse). Every choice is taken inside the documented ranges, so the result
 * must validate: a generated network that does not is a harness bug and
 * aborts. A budget (MAX_MACS, MAX_ELEMS) keeps one execution in milliseconds.
 *
 * Properties:
 *  - the network validates; its .qbin bytes load back and write the same bytes;
 *  - compiling it either works or is refused as not fitting / unsupported,
 *    with a message;
 *  - the fast and detailed engines both run, and agree on every layer's
 *    output, the total cycles, every per-layer stall and cycle field, every
 *    event count and the SCALE-Sim figures;
 *  - every value of a layer lies in its clamp range (docs/qbin.md: every
 *    layer's y = clamp(..., lo, hi)).
 *
 * Built twice (tests/fuzz/CMakeLists.txt): fuzz_net_engines generates the
 * first .qbin version's kinds (conv .. flatten) on the simple DRAM channel;
 * fuzz_net_engines_all (QS_FUZZ_ALL_KINDS) every kind of version 2 besides
 * (lut, mul, softmax, layernorm, rmsnorm, matmul, reshape, dynquant, rope,
 * embed, argmax, kvcache), token-id inputs, OS lookahead, the bank-level
 * DRAM presets with their controller options and the DMA engine's. */
#include <math.h>

#include "qs_alloc.h"
#include "compiler.h"
#include "fuzz_util.h"
#include "qs_arch.h"
#include "qs_net.h"
#include "qs_xfmr.h"
#include "sim.h"

enum { MAX_GEN = 8, MAX_ELEMS = 1024 };
#ifdef QS_FUZZ_ALL_KINDS
enum { ATTN_LAYERS = 9 }; /* the attention block of gen_attention, at most once per network */
#else
enum { ATTN_LAYERS = 0 };
#endif
enum { MAX_LAYERS = 1 + MAX_GEN + ATTN_LAYERS };
#define MAX_MACS 6000

/* ---- the accelerator ------------------------------------------------------ */

static void gen_buffer(fz_bytes *b, qs_buffer_cfg *buf)
{
    /* rows of banks * width must divide the capacity and hold one operand
     * (docs/config.md): powers of two, at least 4 bytes wide */
    static const int KIB[6] = {1, 2, 3, 4, 8, 64};
    buf->size_kib = KIB[fz_range(b, 0, 5)];
    buf->banks = 1 << fz_range(b, 0, 2);
    buf->bank_width_bytes = 4 << fz_range(b, 0, 2);
    buf->ports = (int32_t)fz_range(b, 1, 2);
    buf->double_buffer = (int32_t)fz_range(b, 0, 1);
}

#ifdef QS_FUZZ_ALL_KINDS
/* The second wave's accelerator choices (docs/config.md): OS lookahead
 * where it applies, the DRAM model (simple, or a bank-level preset with its
 * controller: page policy, queues, arbiter, write buffer, address mapping)
 * and the DMA engines (outstanding requests, request size, a separate write
 * engine). */
static void gen_memory_and_lookahead(fz_bytes *b, qs_arch *a)
{
    const int native = a->timing == QS_TIMING_NATIVE;
    if (native && a->dataflow == QS_DF_OS && (a->zero_skip == QS_SKIP_WEIGHTS || a->zero_skip == QS_SKIP_BOTH) &&
        fz_range(b, 0, 1))
        a->lookahead = (int32_t)fz_range(b, 1, 7);
    if (!native) return; /* the SCALE-Sim convention has its own memory model */
    a->dram_model = (qs_dram_model)fz_range(b, QS_DRAM_SIMPLE, QS_DRAM_HBM2);
    if (qs_dram_is_bank_model(a->dram_model)) {
        qs_dram_cfg *d = &a->dram;
        qs_dram_preset(a->dram_model, d);
        d->page_policy = (qs_page_policy)fz_range(b, 0, 1);
        if (fz_range(b, 0, 1)) d->queue_depth = (int32_t)fz_range(b, 1, 64);
        switch (fz_range(b, 0, 2)) {
        case 0: break; /* the preset's two-level controller */
        case 1: /* one queue: the two-level controller's options do not apply */
            d->cmd_queue_depth = 0;
            d->cmd_arbiter = QS_ARB_OLDEST;
            d->write_buffer = 0;
            break;
        default:
            d->cmd_queue_depth = (int32_t)fz_range(b, 1, 16);
            d->cmd_arbiter = (qs_cmd_arbiter)fz_range(b, 0, 1);
            d->write_buffer = (int32_t)(fz_range(b, 0, 1) ? 0 : fz_range(b, 1, 64));
            break;
        }
        if (fz_range(b, 0, 1)) { /* another order of the six address fields */
            static const char *const FIELDS[6] = {"ch", "ra", "bg", "ba", "ro", "co"};
            int order[6] = {0, 1, 2, 3, 4, 5};
            for (int i = 5; i > 0; i--) {
                int j = (int)fz_range(b, 0, i), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int i = 0; i < 6; i++) memcpy(d->address_mapping + 2 * i, FIELDS[order[i]], 2);
            d->address_mapping[12] = '\0';
        }
    }
    if (fz_range(b, 0, 1)) {
        a->dma_outstanding = (int32_t)(fz_range(b, 0, 1) ? fz_range(b, 2, 8) : fz_range(b, 1, 64));
        static const int32_t REQ[6] = {0, 1, 7, 32, 64, 4096};
        a->dma_request_bytes = REQ[fz_range(b, 0, 5)];
        a->dma_separate_write = (int32_t)fz_range(b, 0, 1);
    }
}
#endif

static int gen_arch(fz_bytes *b, qs_arch *a)
{
    qs_arch_defaults(a);
    a->rows = (int32_t)fz_range(b, 1, 8);
    a->cols = (int32_t)fz_range(b, 1, 8);
    a->dataflow = (qs_dataflow)fz_range(b, 0, 2);
    /* widths (docs/config.md): whole weight slices, and the accumulator
     * holds one product */
    static const int WPB[4] = {1, 2, 4, 8};
    a->weight_path_bits = WPB[fz_range(b, 0, 3)];
    int32_t max_slices = 16 / a->weight_path_bits;
    a->max_weight_bits = a->weight_path_bits * (int32_t)fz_range(b, 1, max_slices < 8 ? max_slices : 8);
    if (a->max_weight_bits > 8 && fz_range(b, 0, 3)) a->max_weight_bits = 8 < a->weight_path_bits ? a->weight_path_bits : 8;
    a->max_act_bits = (int32_t)(fz_range(b, 0, 3) ? fz_range(b, 2, 8) : fz_range(b, 1, 16));
    a->zero_skip = (qs_zero_skip)fz_range(b, 0, 4);
    int32_t divs[8], nd = 0;
    for (int32_t d = 1; d <= a->rows; d++)
        if (a->rows % d == 0) divs[nd++] = d;
    a->skip_group = divs[fz_range(b, 0, nd - 1)];
    a->skip_impl = (qs_skip_impl)fz_range(b, 0, 2);
    int32_t acc_min = a->max_weight_bits + a->max_act_bits < 8 ? 8 : a->max_weight_bits + a->max_act_bits;
    /* narrow accumulators (overflow paths) as often as wide ones */
    a->acc_bits = (int32_t)(fz_range(b, 0, 1) ? fz_range(b, acc_min, acc_min + 4 < 32 ? acc_min + 4 : 32)
                                              : fz_range(b, acc_min, 32));
    a->overflow = (qs_overflow)fz_range(b, 0, 1);
    gen_buffer(b, &a->ifmap);
    gen_buffer(b, &a->weight);
    gen_buffer(b, &a->accum);
    static const double BPC[6] = {0.25, 1, 3, 16, 64, 1000};
    a->dram_bytes_per_cycle = BPC[fz_range(b, 0, 5)];
    a->dram_latency = (int32_t)(fz_range(b, 0, 3) == 0 ? fz_range(b, 0, 1000) : fz_range(b, 0, 50));
    a->dram_burst_bytes = 1 << fz_range(b, 0, 8);
    a->ppu_lanes = (int32_t)fz_range(b, 1, 17);
    a->ppu_pool = (int32_t)(fz_range(b, 0, 7) != 0);
    a->ppu_add = (int32_t)(fz_range(b, 0, 7) != 0);
    if (fz_range(b, 0, 7) == 0) {
        a->timing = QS_TIMING_SCALESIM;
        a->scalesim_bandwidth = (int32_t)fz_range(b, 0, 3) * (int32_t)fz_range(b, 1, 8);
    }
#ifdef QS_FUZZ_ALL_KINDS
    gen_memory_and_lookahead(b, a);
#endif
    qs_error e;
    qs_status st = qs_arch_validate(a, "fuzz arch", &e);
    if (st != QS_OK) fz_check_error(st, &e);
    return st == QS_OK;
}

/* ---- the network ---------------------------------------------------------- */

typedef struct {
    qs_net *net;
    int max_wbits, max_abits;   /* the arch's widest weight and activation */
    int32_t cap_layers, cap_tensors;
    int64_t macs;
    uint64_t rng;
    int token_input;            /* layer 0 holds token ids (1 x T x 1, unsigned, zero point 0) */
    int attention_done;         /* gen_attention ran (once per network) */
} gen;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int32_t rng_in(uint64_t *s, int32_t lo, int32_t hi)
{
    return (int32_t)(lo + (int64_t)(rng_next(s) % (uint64_t)((int64_t)hi - lo + 1)));
}

/* An integer in [lo, hi], the ends and the middle likelier than elsewhere. */
static int32_t extreme_in(fz_bytes *b, int32_t lo, int32_t hi)
{
    switch (fz_range(b, 0, 5)) {
    case 0: return lo;
    case 1: return hi;
    case 2: return lo + (int32_t)(((int64_t)hi - lo) / 2);
    default: return (int32_t)fz_range(b, lo, hi);
    }
}

/* Output width, sign, zero point and clamp of a layer. */
static void gen_out_quant(fz_bytes *b, const gen *g, qs_layer *L)
{
    /* mostly what the arch takes; sometimes wider (then the compiler must refuse) */
    int top = g->max_abits < 16 ? g->max_abits : 16;
    L->out_bits = (uint8_t)(fz_range(b, 0, 15) == 0 ? fz_range(b, 1, 16) : fz_range(b, 1, top));
    L->out_signed = (uint8_t)(L->out_bits > 1 && fz_range(b, 0, 1));
}

static void gen_zp_clamp(fz_bytes *b, qs_layer *L, int keep_zp)
{
    int32_t lo, hi;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    if (!keep_zp) L->out_zp = extreme_in(b, lo, hi);
    L->clamp_lo = lo;
    L->clamp_hi = hi;
    if (fz_range(b, 0, 2) == 0) { /* a narrower clamp (ReLU-like or clip) */
        int32_t x = extreme_in(b, lo, hi), y = extreme_in(b, lo, hi);
        L->clamp_lo = x < y ? x : y;
        L->clamp_hi = x < y ? y : x;
        L->act = QS_ACT_CLIP;
    }
    L->out_scale = 0.25f;
}

static void gen_requant(fz_bytes *b, gen *g, qs_layer *L)
{
    int mode = (int)fz_range(b, 0, 2);
    if (mode == 0) return;
    int32_t n = mode == 1 ? 1 : L->out_c;
    L->rq.n = n;
    L->rq.mult = qs_malloc(sizeof(int32_t) * (size_t)n);
    L->rq.shift = qs_malloc((size_t)n);
    if (!L->rq.mult || !L->rq.shift) abort();
    int pattern = (int)fz_range(b, 0, 3);
    int32_t m0 = extreme_in(b, 0, INT32_MAX);
    int8_t s0 = (int8_t)extreme_in(b, -31, 31);
    for (int32_t c = 0; c < n; c++) {
        if (pattern == 0) { /* one value for all */
            L->rq.mult[c] = m0;
            L->rq.shift[c] = s0;
        } else if (pattern == 1) { /* typical: a Q31 multiplier in [2^30, 2^31) and a small right shift */
            L->rq.mult[c] = rng_in(&g->rng, 1 << 30, INT32_MAX);
            L->rq.shift[c] = (int8_t)rng_in(&g->rng, -2, 12);
        } else { /* anything in range */
            L->rq.mult[c] = rng_in(&g->rng, 0, INT32_MAX);
            L->rq.shift[c] = (int8_t)rng_in(&g->rng, -31, 31);
        }
    }
}

static qs_layer *new_layer(gen *g, qs_layer_kind kind, const char *what)
{
    qs_net *net = g->net;
    qs_layer *L = &net->layers[net->n_layers];
    memset(L, 0, sizeof *L);
    snprintf(L->name, sizeof L->name, "%s%d", what, (int)net->n_layers);
    L->kind = kind;
    L->weight = L->bias = -1;
    L->groups = 1;
    L->kh = L->kw = L->stride_h = L->stride_w = L->dil_h = L->dil_w = 1;
    return L;
}

/* Window along one axis for an input of n: kernel, stride, dilation,
 * padding inside the rules of docs/qbin.md; 0 if none fits. */
static int gen_window(fz_bytes *b, int32_t n, int32_t *k, int32_t *s, int32_t *d, int32_t *p0, int32_t *p1,
                      int32_t *out)
{
    *k = (int32_t)fz_range(b, 1, 5);
    *s = (int32_t)(fz_range(b, 0, 2) ? fz_range(b, 1, 2) : fz_range(b, 1, 7));
    *d = (int32_t)(fz_range(b, 0, 3) ? 1 : fz_range(b, 2, 3));
    int32_t ext = *d * (*k - 1) + 1;
    *p0 = (int32_t)fz_range(b, 0, ext - 1);
    *p1 = (int32_t)fz_range(b, 0, ext - 1);
    if (n + *p0 + *p1 < ext) { /* no room: a 1-wide window fits always */
        *k = *d = 1;
        *p0 = *p1 = 0;
        ext = 1;
    }
    *out = (n + *p0 + *p1 - ext) / *s + 1;
    return 1;
}

static int32_t pick_weight(uint64_t *r, int pattern, qs_dtype dt, int32_t lo, int32_t hi)
{
    if (dt == QS_DT_BIPOLAR) return pattern == 1 ? 1 : pattern == 2 ? -1 : (rng_next(r) & 1 ? 1 : -1);
    switch (pattern) {
    case 0: return 0;                 /* all zero */
    case 1: return hi;                /* all at the top */
    case 2: return lo;                /* all at the bottom */
    case 3: return rng_next(r) % 8 ? 0 : rng_in(r, lo, hi); /* sparse */
    default: return rng_in(r, lo, hi);
    }
}

/* Weight (and bias) tensors of a conv/fc layer with `per_out` weights per output channel. */
static void gen_weights(fz_bytes *b, gen *g, qs_layer *L, int ndim, const int32_t *shape, int64_t per_out)
{
    qs_net *net = g->net;
    static const qs_dtype DT[4] = {QS_DT_BIPOLAR, QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
    qs_tensor *W = &net->tensors[net->n_tensors];
    memset(W, 0, sizeof *W);
    snprintf(W->name, sizeof W->name, "%.40s.w", L->name);
    int nd = 1;
    while (nd < 4 && qs_dtype_bits(DT[nd]) <= g->max_wbits) nd++;
    W->dtype = DT[fz_range(b, 0, fz_range(b, 0, 15) == 0 ? 3 : nd - 1)];
    W->is_signed = (uint8_t)(W->dtype == QS_DT_BIPOLAR || fz_range(b, 0, 3) != 0);
    W->ndim = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) W->shape[d] = shape[d];
    W->count = (int64_t)L->out_c * per_out;
    W->data = qs_malloc(sizeof(int32_t) * (size_t)W->count);
    if (!W->data) abort();
    int32_t lo, hi;
    qs_int_range(qs_dtype_bits(W->dtype), W->is_signed, &lo, &hi);
    int pattern = (int)fz_range(b, 0, 7);
    for (int64_t i = 0; i < W->count; i++) W->data[i] = pick_weight(&g->rng, pattern, W->dtype, lo, hi);
    if (fz_range(b, 0, 3) == 0) { /* per-channel quantization record, symmetric */
        W->q_n = L->out_c;
        W->q_axis = 0;
        W->q_scale = qs_malloc(sizeof(float) * (size_t)W->q_n);
        W->q_zp = qs_calloc((size_t)W->q_n, sizeof(int32_t));
        if (!W->q_scale || !W->q_zp) abort();
        for (int32_t c = 0; c < W->q_n; c++) W->q_scale[c] = 0.01f * (float)(c + 1);
    }
    L->weight = net->n_tensors++;
    if (fz_range(b, 0, 2) == 0) return; /* no bias */
    qs_tensor *B = &net->tensors[net->n_tensors];
    memset(B, 0, sizeof *B);
    snprintf(B->name, sizeof B->name, "%.40s.b", L->name);
    B->dtype = QS_DT_INT32;
    B->is_signed = 1;
    B->ndim = 1;
    B->shape[0] = L->out_c;
    B->count = L->out_c;
    B->data = qs_malloc(sizeof(int32_t) * (size_t)L->out_c);
    if (!B->data) abort();
    int bp = (int)fz_range(b, 0, 3);
    for (int32_t c = 0; c < L->out_c; c++)
        B->data[c] = bp == 0 ? INT32_MAX : bp == 1 ? INT32_MIN : rng_in(&g->rng, -100000, 100000);
    L->bias = net->n_tensors++;
}

static int64_t elems(const qs_layer *L) { return (int64_t)L->out_c * L->out_h * L->out_w; }

/* A KV cache feeds only matmuls (docs/decode.md): may layer j be an input of a `kind`? */
static int usable_as_input(const qs_net *net, int32_t j, qs_layer_kind kind)
{
    return net->layers[j].kind != QS_L_KVCACHE || kind == QS_L_MATMUL;
}

#ifdef QS_FUZZ_ALL_KINDS
/* A tensor of layer L (a table of a version-2 kind), `ndim` dimensions of
 * `shape`, its values in one of pick_weight's patterns inside [lo, hi] and
 * the dtype's range; returns its index. */
static int32_t new_tensor(fz_bytes *b, gen *g, const qs_layer *L, const char *what, qs_dtype dt, int is_signed,
                          int ndim, const int32_t *shape, int32_t lo, int32_t hi)
{
    qs_net *net = g->net;
    qs_tensor *T = &net->tensors[net->n_tensors];
    memset(T, 0, sizeof *T);
    snprintf(T->name, sizeof T->name, "%.40s.%s", L->name, what);
    T->dtype = dt;
    T->is_signed = (uint8_t)(dt == QS_DT_INT32 || is_signed);
    T->ndim = (uint8_t)ndim;
    T->count = 1;
    for (int d = 0; d < ndim; d++) {
        T->shape[d] = shape[d];
        T->count *= shape[d];
    }
    T->data = qs_malloc(sizeof(int32_t) * (size_t)T->count);
    if (!T->data) abort();
    int32_t tlo, thi;
    qs_int_range(qs_dtype_bits(dt), T->is_signed, &tlo, &thi);
    if (lo < tlo) lo = tlo;
    if (hi > thi) hi = thi;
    int pattern = (int)fz_range(b, 0, 7);
    for (int64_t i = 0; i < T->count; i++) {
        int32_t v = pick_weight(&g->rng, pattern, dt, lo, hi);
        T->data[i] = v < lo ? lo : v > hi ? hi : v;
    }
    return net->n_tensors++;
}

/* A table's integer type: any but bipolar (docs/qbin.md, version 2). */
static qs_dtype table_dtype(fz_bytes *b)
{
    static const qs_dtype DT[5] = {QS_DT_INT2, QS_DT_INT4, QS_DT_INT8, QS_DT_INT16, QS_DT_INT32};
    return DT[fz_range(b, 0, 4)];
}

/* Requantized output of a version-2 kind: width, zero point, clamp, multipliers. */
static void gen_rq_output(fz_bytes *b, gen *g, qs_layer *L)
{
    gen_out_quant(b, g, L);
    gen_zp_clamp(b, L, 0);
    gen_requant(b, g, L);
}

/* The output quantization of a view (reshape, kvcache): the input's, with a
 * clamp that contains the input's (docs/qbin.md: the values pass unchanged). */
static void view_quant(fz_bytes *b, qs_layer *L, const qs_layer *IN)
{
    L->out_bits = IN->out_bits;
    L->out_signed = IN->out_signed;
    L->out_zp = IN->out_zp;
    if (fz_range(b, 0, 1)) {
        L->clamp_lo = IN->clamp_lo;
        L->clamp_hi = IN->clamp_hi;
    } else {
        qs_int_range(L->out_bits, L->out_signed, &L->clamp_lo, &L->clamp_hi);
    }
    L->out_scale = IN->out_scale;
}

/* One layer of a version-2 kind (docs/qbin.md, "Version 2: transformer
 * layers"), every rule of its graph rules kept; the shape is the input's
 * unless the kind changes it. Returns 0 when the choice does not apply here
 * or does not fit the budget. */
static int gen_v2_layer(fz_bytes *b, gen *g, qs_layer *L, const qs_layer *IN)
{
    qs_net *net = g->net;
    const int32_t li = net->n_layers;
    L->out_c = IN->out_c;
    L->out_h = IN->out_h;
    L->out_w = IN->out_w;
    switch (L->kind) {
    case QS_L_LUT: {
        if (IN->out_bits > QS_TABLE_MAX_BITS) return 0;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        int32_t n = 1 << IN->out_bits;
        L->weight = new_tensor(b, g, L, "table", table_dtype(b), (int)fz_range(b, 0, 1), 1, &n, INT32_MIN, INT32_MAX);
        return 1;
    }
    case QS_L_MUL: {
        const int rowmax = fz_range(b, 0, 2) == 0;
        int32_t cand[MAX_LAYERS], nc = 0;
        for (int32_t j = 0; j < li; j++) {
            const qs_layer *X = &net->layers[j];
            int fits = X->out_h == IN->out_h && X->out_w == IN->out_w &&
                       (rowmax ? X->out_c <= QS_NORM_MAX_ROW : X->out_c == IN->out_c);
            if (fits && usable_as_input(net, j, QS_L_MUL)) cand[nc++] = j;
        }
        if (!nc || IN->out_c > QS_NORM_MAX_ROW) return 0;
        L->param = rowmax ? QS_MUL_ROWMAX : 0;
        L->n_inputs = 2;
        L->inputs[1] = cand[fz_range(b, 0, nc - 1)];
        gen_rq_output(b, g, L);
        return 1;
    }
    case QS_L_SOFTMAX: {
        if (IN->out_bits > QS_TABLE_MAX_BITS) return 0;
        const int axis = (int)fz_range(b, 0, 2), causal = axis != 0 && fz_range(b, 0, 1);
        const int32_t offset = causal ? (int32_t)(fz_range(b, 0, 3) ? fz_range(b, 0, 3) : fz_range(b, 0, 40)) : 0;
        L->param = axis | (causal ? QS_SOFTMAX_CAUSAL_BIT : 0) | offset << QS_SOFTMAX_OFFSET_SHIFT;
        gen_out_quant(b, g, L);
        L->out_signed = 0;
        L->out_zp = 0;
        gen_zp_clamp(b, L, 1);
        int32_t n = 1 << IN->out_bits;
        const int u16 = (int)fz_range(b, 0, 1); /* uint16 or int32 entries */
        L->weight = new_tensor(b, g, L, "exp", u16 ? QS_DT_INT16 : QS_DT_INT32, !u16, 1, &n, 0,
                               QS_SOFTMAX_TABLE_MAX);
        int32_t *t = net->tensors[L->weight].data;
        if (fz_range(b, 0, 1)) { /* the exporter's table: round(65535 exp(-d s)) */
            const double step = 0.01 * (double)fz_range(b, 1, 300);
            for (int32_t d = 0; d < n; d++) t[d] = (int32_t)lround(QS_SOFTMAX_TABLE_MAX * exp(-d * step));
        }
        if (t[0] < 1) t[0] = 1; /* exp(0) >= 1 */
        return 1;
    }
    case QS_L_LAYERNORM:
    case QS_L_RMSNORM:
        if (IN->out_c > QS_NORM_MAX_ROW) return 0;
        gen_rq_output(b, g, L);
        if (fz_range(b, 0, 1)) {
            int32_t c = L->out_c;
            L->bias = new_tensor(b, g, L, "b", QS_DT_INT32, 1, 1, &c, INT32_MIN, INT32_MAX);
        }
        return 1;
    case QS_L_MATMUL: {
        /* every (B, param) that makes op(A) x op(B) legal and fits the budget */
        int32_t cand_j[MAX_LAYERS * 8], cand_p[MAX_LAYERS * 8], nc = 0;
        L->n_inputs = 2;
        for (int32_t j = 0; j < li; j++)
            for (int32_t p = 0; p < 8; p++) {
                const qs_layer *X = &net->layers[j];
                L->inputs[1] = j;
                L->param = p;
                const qs_matmul_dims d = qs_matmul_dims_of(net, li);
                const int grouped = (p & QS_MATMUL_GROUPED) != 0;
                if (!grouped && X->out_c != IN->out_c) continue;
                if (grouped && IN->out_c % X->out_c && X->out_c % IN->out_c) continue;
                if (((p & QS_MATMUL_TRANS_B) ? X->out_w : X->out_h) != d.K) continue;
                const int64_t outs = (int64_t)d.batch * d.M * d.N;
                if (outs > MAX_ELEMS || g->macs + outs * d.K > MAX_MACS) continue;
                cand_j[nc] = j;
                cand_p[nc++] = p;
            }
        if (!nc) return 0;
        const int32_t pick = (int32_t)fz_range(b, 0, nc - 1);
        L->inputs[1] = cand_j[pick];
        L->param = cand_p[pick];
        const qs_matmul_dims d = qs_matmul_dims_of(net, li);
        L->out_c = d.batch;
        L->out_h = d.M;
        L->out_w = d.N;
        g->macs += elems(L) * d.K;
        gen_rq_output(b, g, L);
        return 1;
    }
    case QS_L_RESHAPE: {
        const int64_t n = elems(IN);
        int32_t divs[64], nd = 0;
        for (int64_t d = 1; d <= n && nd < 64; d++)
            if (n % d == 0) divs[nd++] = (int32_t)d;
        L->out_c = divs[fz_range(b, 0, nd - 1)];
        const int64_t rest = n / L->out_c;
        nd = 0;
        for (int64_t d = 1; d <= rest && nd < 64; d++)
            if (rest % d == 0) divs[nd++] = (int32_t)d;
        L->out_h = divs[fz_range(b, 0, nd - 1)];
        L->out_w = (int32_t)(rest / L->out_h);
        view_quant(b, L, IN);
        return 1;
    }
    case QS_L_DYNQUANT: {
        const int top = g->max_abits < 2 ? 2 : g->max_abits < 16 ? g->max_abits : 16;
        L->out_bits = (uint8_t)(fz_range(b, 0, 15) == 0 ? fz_range(b, 2, 16) : fz_range(b, 2, top));
        L->out_signed = 1;
        L->out_zp = 0;
        gen_zp_clamp(b, L, 1);
        L->out_scale = 0;
        return 1;
    }
    case QS_L_ROPE: {
        if (IN->out_w != 1) return 0;
        int32_t dhs[16], nd = 0;
        for (int32_t dh = 2; dh <= IN->out_c && nd < 16; dh += 2)
            if (IN->out_c % dh == 0) dhs[nd++] = dh;
        if (!nd) return 0;
        const int32_t dh = dhs[fz_range(b, 0, nd - 1)];
        const int32_t offset = (int32_t)(fz_range(b, 0, 3) ? fz_range(b, 0, 3) : fz_range(b, 0, 64));
        L->param = dh | offset << 16;
        gen_rq_output(b, g, L);
        const int32_t shape[3] = {IN->out_h + offset + (int32_t)fz_range(b, 0, 2), dh / 2, 2};
        const int q14 = 1 << QS_ROPE_FRAC_BITS;
        L->weight = new_tensor(b, g, L, "rot", fz_range(b, 0, 1) ? QS_DT_INT16 : QS_DT_INT32, 1, 3, shape, -q14, q14);
        int32_t *t = net->tensors[L->weight].data;
        if (fz_range(b, 0, 1)) /* the exporter's table: round(2^14 cos, sin of p theta_i), base 10000 */
            for (int32_t p = 0; p < shape[0]; p++)
                for (int32_t i = 0; i < dh / 2; i++) {
                    const double a = p * pow(10000.0, -2.0 * i / dh);
                    t[((size_t)p * (dh / 2) + i) * 2] = (int32_t)lround(q14 * cos(a));
                    t[((size_t)p * (dh / 2) + i) * 2 + 1] = (int32_t)lround(q14 * sin(a));
                }
        return 1;
    }
    case QS_L_EMBED: {
        /* reads the token ids of layer 0, whatever layer was drawn as its input */
        if (!g->token_input) return 0;
        L->inputs[0] = 0;
        const qs_layer *ids = &net->layers[0];
        const int32_t hidden = (int32_t)fz_range(b, 1, 16), vocab = (int32_t)fz_range(b, 1, 64);
        L->out_c = hidden;
        L->out_h = ids->out_h;
        L->out_w = 1;
        if (elems(L) > MAX_ELEMS) return 0;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        const int32_t shape[4] = {vocab, hidden, 1, 1};
        L->weight = new_tensor(b, g, L, "table", table_dtype(b), (int)fz_range(b, 0, 1), fz_range(b, 0, 1) ? 2 : 4,
                               shape, INT32_MIN, INT32_MAX);
        if (fz_range(b, 0, 1)) { /* a learned position table: rows t + param */
            L->param = (int32_t)fz_range(b, 0, 3);
            const int32_t pshape[2] = {ids->out_h + L->param + (int32_t)fz_range(b, 0, 2), hidden};
            L->bias = new_tensor(b, g, L, "pos", table_dtype(b), (int)fz_range(b, 0, 1), 2, pshape, INT32_MIN,
                                 INT32_MAX);
        }
        return 1;
    }
    case QS_L_ARGMAX: {
        /* an index of C channels passes an unsigned clamp [0, >= C - 1] unchanged */
        int minb = 1;
        while (minb < 16 && ((1 << minb) - 1) < IN->out_c - 1) minb++;
        if (((1 << minb) - 1) < IN->out_c - 1) return 0;
        L->out_c = 1;
        L->out_bits = (uint8_t)fz_range(b, minb, minb + 2 < 16 ? minb + 2 : 16);
        L->out_signed = 0;
        L->out_zp = 0;
        L->clamp_lo = 0;
        L->clamp_hi = (int32_t)fz_range(b, IN->out_c - 1, (1 << L->out_bits) - 1);
        L->out_scale = 1;
        return 1;
    }
    case QS_L_KVCACHE:
        /* the maximum context: the prompt's W or more, now and then far more */
        L->param = fz_range(b, 0, 15) ? IN->out_w + (int32_t)fz_range(b, 0, 4) : extreme_in(b, IN->out_w, INT32_MAX);
        view_quant(b, L, IN);
        return 1;
    default:
        return 0;
    }
}
#endif

#ifdef QS_FUZZ_ALL_KINDS
/* A decoder's attention block over a token sequence IN (C x T x 1), the way
 * docs/qbin.md lays it out without copies: Qh, Kh, Vh = reshapes to
 * (heads, dh, T) of IN and two same-shaped earlier layers; K and V through
 * KV caches (each half the time); S = matmul(Qh, K, trans_a) (heads x T x T);
 * P = softmax of S along axis 2, causal (half the time); O = matmul(V, P,
 * trans_b) (heads x dh x T); a reshape back to C x T x 1. Random wiring
 * rarely builds this, and it is what decode steps and the KV caches run
 * (check_decode). Returns 0 (nothing added) when IN is not a token sequence
 * or the block does not fit the budget. */
static int gen_attention(fz_bytes *b, gen *g, int32_t src)
{
    qs_net *net = g->net;
    const qs_layer *IN = &net->layers[src];
    const int32_t C = IN->out_c, T = IN->out_h;
    if (IN->out_w != 1 || IN->kind == QS_L_KVCACHE) return 0;
    int32_t heads_of[16], nh = 0;
    for (int32_t h = 1; h <= C && nh < 16; h++)
        if (C % h == 0) heads_of[nh++] = h;
    const int32_t heads = heads_of[fz_range(b, 0, nh - 1)], dh = C / heads;
    const int64_t macs = 2 * (int64_t)heads * T * T * dh;
    if ((int64_t)heads * T * T > MAX_ELEMS || g->macs + macs > MAX_MACS) return 0;
    /* K and V come from IN or earlier layers of its shape */
    int32_t cand[MAX_LAYERS], nc = 0;
    for (int32_t j = 0; j < net->n_layers; j++) {
        const qs_layer *X = &net->layers[j];
        if (X->out_c == C && X->out_h == T && X->out_w == 1 && X->kind != QS_L_KVCACHE) cand[nc++] = j;
    }
    g->macs += macs;
    g->attention_done = 1;
    int32_t qkv[3];
    for (int k = 0; k < 3; k++) {
        const int32_t from = k == 0 ? src : cand[fz_range(b, 0, nc - 1)];
        qs_layer *R = new_layer(g, QS_L_RESHAPE, "heads");
        R->n_inputs = 1;
        R->inputs[0] = from;
        R->out_c = heads;
        R->out_h = dh;
        R->out_w = T;
        view_quant(b, R, &net->layers[from]);
        qkv[k] = net->n_layers++;
        if (k > 0 && fz_range(b, 0, 1)) { /* through a KV cache */
            qs_layer *K = new_layer(g, QS_L_KVCACHE, k == 1 ? "k_cache" : "v_cache");
            K->n_inputs = 1;
            K->inputs[0] = qkv[k];
            K->out_c = heads;
            K->out_h = dh;
            K->out_w = T;
            K->param = T + (int32_t)fz_range(b, 0, 4);
            view_quant(b, K, &net->layers[qkv[k]]);
            qkv[k] = net->n_layers++;
        }
    }
    qs_layer *S = new_layer(g, QS_L_MATMUL, "scores");
    S->n_inputs = 2;
    S->inputs[0] = qkv[0];
    S->inputs[1] = qkv[1];
    S->param = QS_MATMUL_TRANS_A;
    S->out_c = heads;
    S->out_h = S->out_w = T;
    gen_rq_output(b, g, S);
    if (S->out_bits > QS_TABLE_MAX_BITS) { /* the softmax takes at most 8 bits */
        S->out_bits = (uint8_t)fz_range(b, 1, QS_TABLE_MAX_BITS);
        S->out_signed = (uint8_t)(S->out_bits > 1 && S->out_signed);
        gen_zp_clamp(b, S, 0);
    }
    const int32_t s_at = net->n_layers++;
    qs_layer *P = new_layer(g, QS_L_SOFTMAX, "probs");
    P->n_inputs = 1;
    P->inputs[0] = s_at;
    P->out_c = heads;
    P->out_h = P->out_w = T;
    P->param = 2 | (fz_range(b, 0, 3) ? QS_SOFTMAX_CAUSAL_BIT : 0);
    gen_out_quant(b, g, P);
    P->out_signed = 0;
    P->out_zp = 0;
    gen_zp_clamp(b, P, 1);
    int32_t n = 1 << net->layers[s_at].out_bits;
    P->weight = new_tensor(b, g, P, "exp", QS_DT_INT32, 1, 1, &n, 0, QS_SOFTMAX_TABLE_MAX);
    int32_t *t = net->tensors[P->weight].data;
    if (fz_range(b, 0, 3)) { /* mostly the exporter's table */
        const double step = 0.01 * (double)fz_range(b, 1, 300);
        for (int32_t d = 0; d < n; d++) t[d] = (int32_t)lround(QS_SOFTMAX_TABLE_MAX * exp(-d * step));
    }
    if (t[0] < 1) t[0] = 1;
    const int32_t p_at = net->n_layers++;
    qs_layer *O = new_layer(g, QS_L_MATMUL, "attn_v");
    O->n_inputs = 2;
    O->inputs[0] = qkv[2];
    O->inputs[1] = p_at;
    O->param = QS_MATMUL_TRANS_B;
    O->out_c = heads;
    O->out_h = dh;
    O->out_w = T;
    gen_rq_output(b, g, O);
    const int32_t o_at = net->n_layers++;
    qs_layer *M = new_layer(g, QS_L_RESHAPE, "merge");
    M->n_inputs = 1;
    M->inputs[0] = o_at;
    M->out_c = C;
    M->out_h = T;
    M->out_w = 1;
    view_quant(b, M, &net->layers[o_at]);
    net->n_layers++;
    return 1;
}
#endif

/* Adds one layer after the existing ones; returns 0 (and adds nothing) when
 * the choice does not fit the budget. */
static int gen_layer(fz_bytes *b, gen *g)
{
    qs_net *net = g->net;
    int32_t li = net->n_layers;
    int32_t src = (int32_t)(fz_range(b, 0, 3) ? li - 1 : fz_range(b, 0, li - 1));
    const qs_layer *IN = &net->layers[src];
#ifdef QS_FUZZ_ALL_KINDS
    if (!g->attention_done && fz_range(b, 0, 5) == 0) return gen_attention(b, g, src);
    qs_layer_kind kind = (qs_layer_kind)fz_range(b, QS_L_CONV, QS_L_KVCACHE);
#else
    qs_layer_kind kind = (qs_layer_kind)fz_range(b, QS_L_CONV, QS_L_FLATTEN);
#endif
    if (!usable_as_input(net, src, kind)) return 0;
    qs_layer *L = new_layer(g, kind, qs_layer_kind_name(kind));
    L->n_inputs = 1;
    L->inputs[0] = src;
    switch (kind) {
    case QS_L_CONV: {
        gen_window(b, IN->out_h, &L->kh, &L->stride_h, &L->dil_h, &L->pad_t, &L->pad_b, &L->out_h);
        gen_window(b, IN->out_w, &L->kw, &L->stride_w, &L->dil_w, &L->pad_l, &L->pad_r, &L->out_w);
        int32_t divs[16], nd = 0;
        for (int32_t d = 1; d <= IN->out_c && nd < 16; d++)
            if (IN->out_c % d == 0) divs[nd++] = d;
        L->groups = fz_range(b, 0, 2) == 0 ? IN->out_c : divs[fz_range(b, 0, nd - 1)];
        if (IN->out_c % L->groups) L->groups = 1;
        L->out_c = L->groups * (int32_t)fz_range(b, 1, L->groups > 4 ? 2 : 8);
        int64_t per_out = (int64_t)(IN->out_c / L->groups) * L->kh * L->kw;
        int64_t macs = elems(L) * per_out;
        if (elems(L) > MAX_ELEMS || g->macs + macs > MAX_MACS) return 0;
        g->macs += macs;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        gen_requant(b, g, L);
        int32_t shape[4] = {L->out_c, IN->out_c / L->groups, L->kh, L->kw};
        gen_weights(b, g, L, 4, shape, per_out);
        break;
    }
    case QS_L_FC: {
        L->out_c = (int32_t)fz_range(b, 1, 16);
        L->out_h = L->out_w = 1;
        int64_t K = elems(IN), macs = K * L->out_c;
        if (g->macs + macs > MAX_MACS) return 0;
        g->macs += macs;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        gen_requant(b, g, L);
        int32_t shape[2] = {L->out_c, (int32_t)K};
        gen_weights(b, g, L, 2, shape, K);
        break;
    }
    case QS_L_MAXPOOL:
    case QS_L_AVGPOOL: {
        L->out_c = IN->out_c;
        gen_window(b, IN->out_h, &L->kh, &L->stride_h, &L->dil_h, &L->pad_t, &L->pad_b, &L->out_h);
        gen_window(b, IN->out_w, &L->kw, &L->stride_w, &L->dil_w, &L->pad_l, &L->pad_r, &L->out_w);
        if (elems(L) * L->kh * L->kw > MAX_MACS) return 0;
        if (kind == QS_L_MAXPOOL) {
            /* maxpool keeps the quantization: no window may lie wholly in padding */
            for (int axis = 0; axis < 2; axis++) {
                int32_t n = axis ? IN->out_w : IN->out_h, o = axis ? L->out_w : L->out_h;
                int32_t k = axis ? L->kw : L->kh, s = axis ? L->stride_w : L->stride_h;
                int32_t d = axis ? L->dil_w : L->dil_h, p0 = axis ? L->pad_l : L->pad_t;
                for (int32_t i = 0; i < o; i++) {
                    int hit = 0;
                    for (int32_t j = 0; j < k && !hit; j++) {
                        int64_t p = (int64_t)i * s - p0 + (int64_t)j * d;
                        hit = p >= 0 && p < n;
                    }
                    if (!hit) return 0;
                }
            }
            L->out_bits = IN->out_bits;
            L->out_signed = IN->out_signed;
            L->out_zp = IN->out_zp;
            gen_zp_clamp(b, L, 1);
        } else {
            gen_out_quant(b, g, L);
            gen_zp_clamp(b, L, 0);
            gen_requant(b, g, L);
        }
        break;
    }
    case QS_L_GAP:
        L->out_c = IN->out_c;
        L->out_h = L->out_w = 1;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        gen_requant(b, g, L);
        break;
    case QS_L_ADD: {
        /* the second input: an earlier layer of the same shape (maybe the same one) */
        int32_t cand[MAX_LAYERS], nc = 0;
        for (int32_t j = 0; j < li; j++) {
            const qs_layer *X = &net->layers[j];
            if (X->out_c == IN->out_c && X->out_h == IN->out_h && X->out_w == IN->out_w &&
                usable_as_input(net, j, kind))
                cand[nc++] = j;
        }
        L->n_inputs = 2;
        L->inputs[1] = cand[fz_range(b, 0, nc - 1)];
        L->out_c = IN->out_c;
        L->out_h = IN->out_h;
        L->out_w = IN->out_w;
        for (int k = 0; k < 2; k++) {
            int m = (int)fz_range(b, 0, 4);
            L->add_mul[k] = m == 0 ? INT32_MAX : m == 1 ? INT32_MIN : m == 2 ? 1 : (int32_t)fz_u32(b);
        }
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        gen_requant(b, g, L);
        break;
    }
    case QS_L_CONCAT: {
        /* inputs of the same H x W and zero point; the output keeps input 0's width */
        int32_t cand[MAX_LAYERS], nc = 0;
        for (int32_t j = 0; j < li; j++) {
            const qs_layer *X = &net->layers[j];
            if (X->out_h == IN->out_h && X->out_w == IN->out_w && X->out_zp == IN->out_zp &&
                usable_as_input(net, j, kind))
                cand[nc++] = j;
        }
        int32_t n = (int32_t)fz_range(b, 1, QS_MAX_INPUTS);
        int64_t c = IN->out_c;
        for (int32_t k = 1; k < n; k++) {
            L->inputs[k] = cand[fz_range(b, 0, nc - 1)];
            c += net->layers[L->inputs[k]].out_c;
        }
        L->n_inputs = n;
        L->out_c = (int32_t)c;
        L->out_h = IN->out_h;
        L->out_w = IN->out_w;
        if (elems(L) > MAX_ELEMS) return 0;
        L->out_bits = IN->out_bits;
        L->out_signed = IN->out_signed;
        L->out_zp = IN->out_zp;
        gen_zp_clamp(b, L, 1);
        break;
    }
    case QS_L_ACT:
    case QS_L_FLATTEN:
        L->out_c = kind == QS_L_FLATTEN ? (int32_t)elems(IN) : IN->out_c;
        L->out_h = kind == QS_L_FLATTEN ? 1 : IN->out_h;
        L->out_w = kind == QS_L_FLATTEN ? 1 : IN->out_w;
        L->out_bits = IN->out_bits;
        L->out_signed = IN->out_signed;
        L->out_zp = IN->out_zp;
        gen_zp_clamp(b, L, 1);
        if (kind == QS_L_FLATTEN) {
            /* a view: its clamp may not narrow its input's (docs/qbin.md);
             * the input's own clamp, or the type's whole range */
            if (fz_range(b, 0, 1)) {
                L->clamp_lo = IN->clamp_lo;
                L->clamp_hi = IN->clamp_hi;
            } else {
                qs_int_range(L->out_bits, L->out_signed, &L->clamp_lo, &L->clamp_hi);
            }
        }
        break;
    case QS_L_REQUANT:
        L->out_c = IN->out_c;
        L->out_h = IN->out_h;
        L->out_w = IN->out_w;
        gen_out_quant(b, g, L);
        gen_zp_clamp(b, L, 0);
        gen_requant(b, g, L);
        break;
    default:
#ifdef QS_FUZZ_ALL_KINDS
        if (!gen_v2_layer(b, g, L, IN)) return 0;
        break;
#else
        return 0;
#endif
    }
    net->n_layers++;
    return 1;
}

static qs_net *gen_net(fz_bytes *b, const qs_arch *arch)
{
    gen g;
    memset(&g, 0, sizeof g);
    g.max_wbits = arch->max_weight_bits;
    g.max_abits = arch->max_act_bits;
    g.rng = fz_u64(b);
    qs_net *net = qs_calloc(1, sizeof *net);
    if (!net) abort();
    g.net = net;
    snprintf(net->name, sizeof net->name, "fuzz");
    net->layers = qs_calloc(MAX_LAYERS, sizeof *net->layers);
    net->tensors = qs_calloc(2 * MAX_LAYERS, sizeof *net->tensors);
    if (!net->layers || !net->tensors) abort();
    qs_layer *in = new_layer(&g, QS_L_INPUT, "input");
    in->out_c = (int32_t)fz_range(b, 1, 8);
    in->out_h = (int32_t)fz_range(b, 1, 12);
    in->out_w = (int32_t)(fz_range(b, 0, 1) ? in->out_h : fz_range(b, 1, 12));
    gen_out_quant(b, &g, in);
    gen_zp_clamp(b, in, 0);
#ifdef QS_FUZZ_ALL_KINDS
    switch (fz_range(b, 0, 3)) {
    case 0: /* token ids for EMBED: 1 x T x 1, unsigned, zero point 0, the whole range */
        g.token_input = 1;
        in->out_c = in->out_w = 1;
        in->out_signed = 0;
        in->out_zp = 0;
        qs_int_range(in->out_bits, 0, &in->clamp_lo, &in->clamp_hi);
        in->act = QS_ACT_NONE;
        break;
    case 1: /* a token sequence of activations: C x T x 1 (ROPE's layout) */
        in->out_w = 1;
        break;
    default:
        break;
    }
#endif
    net->n_layers = 1;
    int n = (int)fz_range(b, 1, MAX_GEN);
    for (int i = 0; i < n; i++) gen_layer(b, &g);
    net->output = net->n_layers - 1;
    if (net->n_layers > 1 && fz_range(b, 0, 3) == 0) net->output = (int32_t)fz_range(b, 0, net->n_layers - 1);
    /* a KV cache is never the output (docs/decode.md): the layer before it then */
    while (net->layers[net->output].kind == QS_L_KVCACHE) net->output--;
    return net;
}

/* ---- run and compare ------------------------------------------------------- */

#define ST_FIELDS(X) X(start) X(end) X(cycles) X(array_busy) X(stall_dram) X(stall_ppu) X(stall_buffer) X(stall_dep)

static int32_t *gen_input(fz_bytes *b, const qs_layer *in, uint64_t seed, int64_t vocab)
{
    int64_t n = elems(in);
    int32_t *x = qs_malloc(sizeof(int32_t) * (size_t)n);
    if (!x) abort();
    int32_t lo, hi;
    qs_int_range(in->out_bits, in->out_signed, &lo, &hi);
    int pattern = (int)fz_range(b, 0, 5);
    for (int64_t i = 0; i < n; i++)
        x[i] = pattern == 0 ? lo : pattern == 1 ? hi : pattern == 2 ? in->out_zp
             : pattern == 3 ? (rng_next(&seed) % 4 ? 0 : rng_in(&seed, lo, hi)) : rng_in(&seed, lo, hi);
    /* token ids below the smallest EMBED vocabulary (the input refuses others) */
    if (vocab > 0)
        for (int64_t i = 0; i < n; i++) x[i] = (int32_t)(x[i] % vocab);
    return x;
}

/* Compiles `net` for `arch` and runs it on both engines with input x, then
 * compares them: every layer's output (and that it lies in the layer's
 * clamp), the total cycles, every per-layer cycle, stall and event field and
 * the SCALE-Sim figures. Returns 0 when the compiler refuses the network as
 * not fitting or unsupported (with a message); else 1, with both simulators
 * in s[] and the program in *prog for the caller to destroy. */
static int run_both_engines(const qs_net *net, const qs_arch *arch, const int32_t *x, qs_sim *s[2], qs_prog **prog)
{
    qs_error e;
    *prog = NULL;
    s[0] = s[1] = NULL;
    qs_status st = qs_compile(net, arch, prog, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(st == QS_ERR_NOFIT || st == QS_ERR_UNSUPPORTED, "compile: unexpected status %d: %s", (int)st, e.msg);
        return 0;
    }
    for (int k = 0; k < 2; k++) {
        st = qs_sim_create(net, *prog, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &s[k], &e);
        FZ_CHECK(st == QS_OK, "sim_create: %s", e.msg);
        st = qs_sim_set_input(s[k], x, elems(&net->layers[0]), &e);
        FZ_CHECK(st == QS_OK, "set_input: %s", e.msg);
        st = qs_sim_run(s[k], &e);
        FZ_CHECK(st == QS_OK, "%s engine: %s", k ? "detailed" : "fast", e.msg);
    }
    FZ_CHECK(qs_sim_total_cycles(s[0]) == qs_sim_total_cycles(s[1]), "total cycles: fast %llu, detailed %llu",
             (unsigned long long)qs_sim_total_cycles(s[0]), (unsigned long long)qs_sim_total_cycles(s[1]));
    for (int32_t li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        const int32_t *o0 = qs_sim_layer_output(s[0], li), *o1 = qs_sim_layer_output(s[1], li);
        for (int64_t i = 0; i < elems(L); i++) {
            FZ_CHECK(o0[i] == o1[i], "layer %d '%s' output %lld: fast %d, detailed %d", li, L->name, (long long)i,
                     o0[i], o1[i]);
            FZ_CHECK(o0[i] >= L->clamp_lo && o0[i] <= L->clamp_hi,
                     "layer %d '%s' (%s) output %lld = %d outside its clamp [%d, %d]", li, L->name,
                     qs_layer_kind_name(L->kind), (long long)i, o0[i], L->clamp_lo, L->clamp_hi);
        }
        const qs_layer_stats *a0 = qs_sim_layer_stats(s[0], li), *a1 = qs_sim_layer_stats(s[1], li);
#define CMP_ST(f)                                                                                                 \
    FZ_CHECK(a0->f == a1->f, "layer %d '%s': " #f " fast %llu, detailed %llu", li, L->name, (unsigned long long)a0->f, \
             (unsigned long long)a1->f);
        ST_FIELDS(CMP_ST)
#undef CMP_ST
        const uint64_t *e0 = (const uint64_t *)&a0->ev, *e1 = (const uint64_t *)&a1->ev;
        for (size_t k = 0; k < sizeof a0->ev / sizeof(uint64_t); k++)
            FZ_CHECK(e0[k] == e1[k], "layer %d '%s': event field %zu fast %llu, detailed %llu", li, L->name, k,
                     (unsigned long long)e0[k], (unsigned long long)e1[k]);
        FZ_CHECK(memcmp(&a0->ss, &a1->ss, sizeof a0->ss) == 0, "layer %d '%s': SCALE-Sim figures differ", li, L->name);
    }
    return 1;
}

static void destroy_both(qs_sim *s[2], qs_prog *prog)
{
    qs_sim_destroy(s[0]);
    qs_sim_destroy(s[1]);
    qs_prog_destroy(prog);
}

#ifdef QS_FUZZ_ALL_KINDS
/* A network that can run in decode steps (docs/decode.md) gets one: the step
 * graph for one new token after the prompt's T, with the prefill's KVCACHE
 * outputs as its caches, runs on both engines (compared as above), and every
 * layer's step output must equal, bit for bit, the same positions of one
 * prefill of the T + 1 tokens (docs/decode.md, "The step graph": "step i's
 * output row equals row T + i of one prefill of T + i + 1 tokens"). A
 * network the roles refuse, or a step its tables or caches are too short
 * for, is refused with a message. */
static void check_decode(const qs_net *net, const qs_arch *arch, qs_sim *prefill, const int32_t *x, fz_bytes *b)
{
    qs_error e;
    uint8_t(*roles)[3] = qs_malloc(sizeof *roles * (size_t)net->n_layers);
    if (!roles) abort();
    qs_status st = qs_decode_roles(net, "generated", roles, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(st == QS_ERR_FORMAT, "decode roles: unexpected status %d: %s", (int)st, e.msg);
        qs_free(roles);
        return;
    }
    const qs_layer *IN = &net->layers[0];
    const int32_t T = IN->out_h, C = IN->out_c, n_caches = qs_decode_n_caches(net);
    const int32_t **caches = qs_calloc((size_t)n_caches + 1, sizeof *caches);
    if (!caches) abort();
    for (int32_t li = 0, k = 0; li < net->n_layers; li++)
        if (net->layers[li].kind == QS_L_KVCACHE) caches[k++] = qs_sim_layer_output(prefill, li);
    /* the new token's row, then the longer prompt: C x (T + 1) x 1 */
    int32_t vocab_layer;
    const qs_layer row_layer = {.out_c = C, .out_h = 1, .out_w = 1, .out_bits = IN->out_bits,
                                .out_signed = IN->out_signed, .out_zp = IN->out_zp};
    int32_t *row = gen_input(b, &row_layer, fz_u64(b), qs_xfmr_vocab(net, &vocab_layer));
    int32_t *xl = qs_malloc(sizeof *xl * (size_t)C * (size_t)(T + 1));
    if (!xl) abort();
    for (int32_t c = 0; c < C; c++)
        for (int32_t t = 0; t <= T; t++) xl[(size_t)c * (T + 1) + t] = t < T ? x[(size_t)c * T + t] : row[c];
    qs_net *step = NULL, *longer = NULL;
    st = qs_decode_step_net(net, "generated", (const uint8_t(*)[3])roles, T, 1, (const int32_t *const *)caches, &step,
                            &e);
    if (st == QS_OK) {
        st = qs_decode_step_net(net, "generated", (const uint8_t(*)[3])roles, 0, T + 1, NULL, &longer, &e);
        FZ_CHECK(st == QS_OK, "the step for 1 token after %d works, a prefill of %d does not: %s", T, T + 1, e.msg);
    } else {
        fz_check_error(st, &e);
        FZ_CHECK(st == QS_ERR_FORMAT, "decode step: unexpected status %d: %s", (int)st, e.msg);
    }
    qs_sim *ss[2], *sl[2];
    qs_prog *ps = NULL, *pl = NULL;
    if (step && run_both_engines(step, arch, row, ss, &ps)) {
        if (run_both_engines(longer, arch, xl, sl, &pl)) {
            for (int32_t li = 0; li < net->n_layers; li++) {
                const qs_layer *S = &step->layers[li], *L = &longer->layers[li];
                const int32_t *os = qs_sim_layer_output(ss[0], li), *ol = qs_sim_layer_output(sl[0], li);
                /* a TOKENS index i of the step is T + i of the longer prompt; KEYS and FIXED indices are the same */
                const int32_t dh = roles[li][1] == QS_ROLE_TOKENS ? T : 0, dw = roles[li][2] == QS_ROLE_TOKENS ? T : 0;
                for (int32_t c = 0; c < S->out_c; c++)
                    for (int32_t h = 0; h < S->out_h; h++)
                        for (int32_t w = 0; w < S->out_w; w++) {
                            const int32_t vs = os[((size_t)c * S->out_h + h) * S->out_w + w];
                            const int32_t vl = ol[((size_t)c * L->out_h + h + dh) * L->out_w + w + dw];
                            FZ_CHECK(vs == vl, "layer %d '%s' (%s) [%d,%d,%d]: decode step %d, prefill of %d tokens "
                                     "%d at [%d,%d,%d]", li, S->name, qs_layer_kind_name(S->kind), c, h, w, vs, T + 1,
                                     vl, c, h + dh, w + dw);
                        }
            }
            destroy_both(sl, pl);
        }
        destroy_both(ss, ps);
    }
    qs_decode_step_free(step);
    qs_decode_step_free(longer);
    qs_free(xl);
    qs_free(row);
    qs_free(caches);
    qs_free(roles);
}
#endif

static void check_engines(const qs_net *net, const qs_arch *arch, fz_bytes *b)
{
    int32_t vocab_layer;
    int32_t *x = gen_input(b, &net->layers[0], fz_u64(b), qs_xfmr_vocab(net, &vocab_layer));
    qs_sim *s[2];
    qs_prog *prog;
    if (run_both_engines(net, arch, x, s, &prog)) {
#ifdef QS_FUZZ_ALL_KINDS
        check_decode(net, arch, s[0], x, b);
#endif
        destroy_both(s, prog);
    }
    qs_free(x);
}

/* QS_FUZZ_DUMP=PREFIX: write the generated case as PREFIX.qbin and
 * PREFIX.cfg, so that a finding replays with the qsim command:
 * qsim run --arch PREFIX.cfg PREFIX.qbin --engine fast|detailed */
static void dump_case(const qs_net *net, const qs_arch *a)
{
    const char *prefix = getenv("QS_FUZZ_DUMP");
    if (!prefix) return;
    char path[4096];
    qs_error e;
    snprintf(path, sizeof path, "%s.qbin", prefix);
    if (qs_net_save(net, path, &e) != QS_OK) fprintf(stderr, "%s\n", e.msg);
    snprintf(path, sizeof path, "%s.cfg", prefix);
    FILE *f = fopen(path, "w");
    if (!f) return;
    static const char *const DF[3] = {"ws", "os", "is"}, *const SK[5] = {"none", "gate", "weights", "activations", "both"};
    static const char *const IMPL[3] = {"hold", "isolate", "clockgate"};
    fprintf(f, "[array]\nrows = %d\ncols = %d\ndataflow = %s\nweight_path_bits = %d\nmax_weight_bits = %d\n"
               "max_act_bits = %d\nzero_skip = %s\nskip_group = %d\nskip_impl = %s\nlookahead = %d\nacc_bits = %d\n"
               "overflow = %s\n",
            a->rows, a->cols, DF[a->dataflow], a->weight_path_bits, a->max_weight_bits, a->max_act_bits,
            SK[a->zero_skip], a->skip_group, IMPL[a->skip_impl], a->lookahead, a->acc_bits,
            a->overflow == QS_OVF_WRAP ? "wrap" : "saturate");
    const qs_buffer_cfg *bufs[3] = {&a->ifmap, &a->weight, &a->accum};
    static const char *const BN[3] = {"ifmap", "weight", "accum"};
    for (int i = 0; i < 3; i++)
        fprintf(f, "[buffer.%s]\nsize_kib = %d\nbanks = %d\nbank_width_bytes = %d\nports = %d\ndouble_buffer = %d\n",
                BN[i], bufs[i]->size_kib, bufs[i]->banks, bufs[i]->bank_width_bytes, bufs[i]->ports,
                bufs[i]->double_buffer);
    fprintf(f, "[dram]\nmodel = %s\nbytes_per_cycle = %.17g\nlatency_cycles = %d\nburst_bytes = %d\n",
            qs_dram_model_name(a->dram_model), a->dram_bytes_per_cycle, a->dram_latency, a->dram_burst_bytes);
    if (qs_dram_is_bank_model(a->dram_model))
        fprintf(f, "page_policy = %s\nqueue_depth = %d\ncmd_queue_depth = %d\ncmd_arbiter = %s\nwrite_buffer = %d\n"
                   "address_mapping = %s\n",
                a->dram.page_policy == QS_PAGE_CLOSED ? "closed" : "open", a->dram.queue_depth,
                a->dram.cmd_queue_depth, a->dram.cmd_arbiter == QS_ARB_ROUND_ROBIN ? "round_robin" : "oldest",
                a->dram.write_buffer, a->dram.address_mapping);
    fprintf(f, "[dma]\noutstanding = %d\nrequest_bytes = %d\nseparate_write_engine = %d\n[ppu]\nlanes = %d\n"
               "pool = %d\nadd = %d\n[timing]\nconvention = %s\nscalesim_bandwidth = %d\n[tech]\n"
               "table = %s/models/tech/default45.tech\n",
            a->dma_outstanding, a->dma_request_bytes, a->dma_separate_write, a->ppu_lanes, a->ppu_pool, a->ppu_add,
            a->timing == QS_TIMING_SCALESIM ? "scalesim" : "native", a->scalesim_bandwidth, QSIM_SOURCE_DIR);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_bytes b = {data, size};
    qs_arch arch;
    if (!gen_arch(&b, &arch)) return 0;
    qs_net *net = gen_net(&b, &arch);
    qs_error e;
    dump_case(net, &arch);
    FZ_CHECK(qs_net_validate(net, "generated", &e) == QS_OK, "generator made an invalid network: %s", e.msg);

    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    qs_net *loaded = NULL;
    FZ_CHECK(qs_net_serialize(net, &b1, &n1, &e) == QS_OK, "serialize: %s", e.msg);
    FZ_CHECK(qs_net_parse(b1, n1, "generated.qbin", &loaded, &e) == QS_OK, "written bytes do not load: %s", e.msg);
    FZ_CHECK(qs_net_serialize(loaded, &b2, &n2, &e) == QS_OK, "serialize: %s", e.msg);
    FZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0, "save(load(save(net))) != save(net)");
    qs_free(b1);
    qs_free(b2);

    /* the engines run on the network as loaded from its file, as `qsim run` does */
    check_engines(loaded, &arch, &b);
    qs_net_destroy(loaded);
    qs_net_destroy(net);
    return 0;
}
