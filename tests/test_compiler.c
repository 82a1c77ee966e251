/* CUnit tests of the compiler (compiler/compiler.c, docs/compiler.md) on
 * random networks built in memory: INPUT + conv/fc layers of random shapes
 * (groups, depthwise, stride, padding, dilation), random integer weights at
 * 1 (bipolar), 2, 4 and 8 bits with 0..90% zeros, compiled for every
 * dataflow on several array shapes with small buffers. Every program is
 * checked against an independent reading of the documented mapping:
 *
 *  - every instruction is well-formed (fields in range, encodes/decodes);
 *  - the slices, folded biases and compressed lists reproduce the weights;
 *  - by enumeration, every (group, m, n, k) with a nonzero weight is covered
 *    by exactly one GEMM, and k rows that are all zero in a block are absent
 *    when weight skipping is on (present when it is off);
 *  - every tile fits its buffer half (window bytes recomputed);
 *  - tokens balance: a token-level run of the three queues finishes, every
 *    pop meets the matching push and the channels end as they started;
 *  - too-large layers and too-wide operands are refused, naming the layer.
 *
 * The first part of this file (random networks) is also used by
 * tests/test_sim.c, which includes it with QS_RANDNET_ONLY defined. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_alloc.h"
#include "compiler.h"
#include "qs_xfmr.h"
#include "qs_arch.h"
#include "qs_isa.h"
#include "qs_net.h"
#include "qs_prog.h"

#ifndef QSIM_SOURCE_DIR
#define QSIM_SOURCE_DIR "."
#endif

/* ======================================================================
 * Random networks (shared with tests/test_sim.c)
 * ====================================================================== */

/* shared helpers: not every includer uses every one */
#define RN_UNUSED __attribute__((unused))

typedef struct {
    uint64_t s;
} rn_rng;

static RN_UNUSED uint64_t rn_next(rn_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform integer in [lo, hi] */
static RN_UNUSED int rn_int(rn_rng *r, int lo, int hi)
{
    if (hi <= lo) return lo;
    return lo + (int)(rn_next(r) % (uint64_t)(hi - lo + 1));
}
static RN_UNUSED double rn_unit(rn_rng *r) { return (double)(rn_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static RN_UNUSED int rn_chance(rn_rng *r, double p) { return rn_unit(r) < p; }

/* One conv/fc layer of a random network. */
typedef struct {
    qs_layer_kind kind;          /* QS_L_CONV or QS_L_FC */
    int flatten_before;          /* fc: insert a FLATTEN layer before it */
    int out_c, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, groups;
    qs_dtype wdt;
    int wsigned;
    double wzero;                /* fraction of single zero weights */
    double wrowzero;             /* fraction of (group, k) rows zero for every n */
    double wcolzero;             /* fraction of output channels whose weights are all zero */
    int has_bias;
    int out_bits, out_signed, out_zp, relu;
    int rq_mode;                 /* 0: no requant (rq.n = 0), 1: per tensor, 2: per channel */
    double rq_gain;              /* extra factor on the multiplier (> 1 gives left shifts) */
} rn_layer;

typedef struct {
    int c, h, w, bits, sgn, zp;  /* the input */
    int n;                       /* conv/fc layers */
    rn_layer l[3];
    uint64_t seed;               /* weights, biases and multipliers */
} rn_spec;

typedef struct {
    int max_wbits;               /* widest weight (1, 2, 4 or 8) */
    int max_abits;               /* widest activation (2..8) */
    int max_hw, max_c, max_n;    /* input extent, channels, output channels per layer */
    int64_t max_macs;            /* per layer */
    int max_layers;              /* 1..3 */
    double p_fc;                 /* probability of an fc layer */
} rn_limits;

static RN_UNUSED int rn_extent(int k, int d) { return d * (k - 1) + 1; }
static RN_UNUSED int rn_out(int n, int k, int s, int d, int p0, int p1) { return (n + p0 + p1 - rn_extent(k, d)) / s + 1; }

/* Random width/sparsity/quantization fields of layer l whose input has act_bits. */
static RN_UNUSED void rn_random_quant(rn_rng *r, const rn_limits *lim, rn_layer *l)
{
    static const qs_dtype DT[4] = {QS_DT_BIPOLAR, QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
    static const int BITS[4] = {1, 2, 4, 8};
    int nd = 0;
    while (nd < 4 && BITS[nd] <= lim->max_wbits) nd++;
    int i = rn_int(r, 0, nd - 1);
    l->wdt = DT[i];
    l->wsigned = l->wdt == QS_DT_BIPOLAR ? 1 : rn_chance(r, 0.7);
    static const double Z[6] = {0.0, 0.0, 0.3, 0.6, 0.9, -1};
    l->wzero = Z[rn_int(r, 0, 5)];
    if (l->wzero < 0) l->wzero = 0.9 * rn_unit(r);
    l->wrowzero = rn_chance(r, 0.5) ? 0.0 : 0.7 * rn_unit(r);
    l->wcolzero = rn_chance(r, 0.7) ? 0.0 : 0.5 * rn_unit(r);
    l->has_bias = rn_chance(r, 0.7);
    l->out_bits = rn_int(r, 2, lim->max_abits);
    l->out_signed = rn_chance(r, 0.5);
    int32_t lo, hi;
    qs_int_range(l->out_bits, l->out_signed, &lo, &hi);
    l->out_zp = rn_chance(r, 0.5) ? (l->out_signed ? 0 : lo) : rn_int(r, lo, hi);
    l->relu = rn_chance(r, 0.3);
    l->rq_mode = rn_int(r, 0, 5) == 0 ? 0 : rn_int(r, 1, 2);
    l->rq_gain = rn_chance(r, 0.15) ? 64.0 : 0.5 + 1.5 * rn_unit(r);
}

/* Random conv geometry for an input c x h x w; returns 0 if it found none. */
static RN_UNUSED int rn_random_conv(rn_rng *r, const rn_limits *lim, int c, int h, int w, rn_layer *l)
{
    for (int tries = 0; tries < 200; tries++) {
        l->kind = QS_L_CONV;
        l->kh = rn_int(r, 1, 3);
        l->kw = rn_chance(r, 0.7) ? l->kh : rn_int(r, 1, 3);
        if (rn_chance(r, 0.1)) l->kh = rn_int(r, 4, 5);
        l->dh = rn_chance(r, 0.2) ? 2 : 1;
        l->dw = rn_chance(r, 0.2) ? rn_int(r, 2, 3) : 1;
        l->sh = rn_chance(r, 0.6) ? 1 : rn_int(r, 2, 3);
        l->sw = rn_chance(r, 0.6) ? l->sh : rn_int(r, 1, 3);
        int eh = rn_extent(l->kh, l->dh), ew = rn_extent(l->kw, l->dw);
        l->pt = rn_int(r, 0, eh - 1 < 2 ? eh - 1 : 2);
        l->pb = rn_chance(r, 0.6) ? l->pt : rn_int(r, 0, eh - 1 < 2 ? eh - 1 : 2);
        l->pl = rn_int(r, 0, ew - 1 < 2 ? ew - 1 : 2);
        l->pr = rn_chance(r, 0.6) ? l->pl : rn_int(r, 0, ew - 1 < 2 ? ew - 1 : 2);
        if (h + l->pt + l->pb < eh || w + l->pl + l->pr < ew) continue;
        int u = rn_int(r, 0, 3);
        if (u <= 1) l->groups = 1;
        else if (u == 2) l->groups = c; /* depthwise */
        else {
            int divs[64], nd = 0;
            for (int d = 1; d <= c && nd < 64; d++)
                if (c % d == 0) divs[nd++] = d;
            l->groups = divs[rn_int(r, 0, nd - 1)];
        }
        int per = l->groups == c ? rn_int(r, 1, 2) : rn_int(r, 1, (lim->max_n + l->groups - 1) / l->groups);
        l->out_c = l->groups * per;
        if (l->out_c > 2 * lim->max_n && l->groups != c) continue;
        int oh = rn_out(h, l->kh, l->sh, l->dh, l->pt, l->pb), ow = rn_out(w, l->kw, l->sw, l->dw, l->pl, l->pr);
        int64_t macs = (int64_t)l->out_c * oh * ow * (c / l->groups) * l->kh * l->kw;
        if (macs > lim->max_macs) continue;
        return 1;
    }
    return 0;
}

static RN_UNUSED void rn_random_spec(rn_rng *r, const rn_limits *lim, rn_spec *s)
{
    memset(s, 0, sizeof *s);
    s->seed = rn_next(r);
    for (;;) {
        s->c = rn_int(r, 1, lim->max_c);
        s->h = rn_int(r, 1, lim->max_hw);
        s->w = rn_chance(r, 0.6) ? s->h : rn_int(r, 1, lim->max_hw);
        s->bits = rn_int(r, 2, lim->max_abits);
        s->sgn = rn_chance(r, 0.5);
        int32_t lo, hi;
        qs_int_range(s->bits, s->sgn, &lo, &hi);
        s->zp = rn_chance(r, 0.5) ? (s->sgn ? 0 : lo) : rn_int(r, lo, hi);
        s->n = rn_int(r, 1, lim->max_layers);
        int c = s->c, h = s->h, w = s->w, ok = 1;
        for (int i = 0; i < s->n && ok; i++) {
            rn_layer *l = &s->l[i];
            memset(l, 0, sizeof *l);
            if (rn_chance(r, lim->p_fc) || !rn_random_conv(r, lim, c, h, w, l)) {
                memset(l, 0, sizeof *l);
                l->kind = QS_L_FC;
                l->flatten_before = (h * w > 1 || rn_chance(r, 0.3)) && rn_chance(r, 0.5);
                l->out_c = rn_int(r, 1, lim->max_n);
                if ((int64_t)l->out_c * c * h * w > lim->max_macs) {
                    ok = 0;
                    break;
                }
                c = l->out_c;
                h = w = 1;
            } else {
                int oh = rn_out(h, l->kh, l->sh, l->dh, l->pt, l->pb), ow = rn_out(w, l->kw, l->sw, l->dw, l->pl, l->pr);
                c = l->out_c;
                h = oh;
                w = ow;
            }
            rn_random_quant(r, lim, l);
        }
        if (ok) return;
    }
}

/* (M0, shift) of a real multiplier, TFLite's QuantizeMultiplier. */
static RN_UNUSED void rn_quantize_multiplier(double real, int32_t *mult, int8_t *shift)
{
    if (!(real > 0)) {
        *mult = 0;
        *shift = 0;
        return;
    }
    int e;
    double q = frexp(real, &e);
    int64_t m = (int64_t)llround(q * 2147483648.0);
    if (m == ((int64_t)1 << 31)) {
        m /= 2;
        e++;
    }
    int sh = -e;
    if (sh > 31) {
        m = 0;
        sh = 0;
    }
    if (sh < -31) {
        m = INT32_MAX;
        sh = -31;
    }
    *mult = (int32_t)m;
    *shift = (int8_t)sh;
}

static RN_UNUSED int rn_wmax(qs_dtype dt, int sgn)
{
    int32_t lo, hi;
    if (dt == QS_DT_BIPOLAR) return 1;
    qs_int_range(qs_dtype_bits(dt), sgn, &lo, &hi);
    return -lo > hi ? -lo : hi;
}

/* Build the network of a spec (malloc ownership as qs_net_destroy expects). */
static RN_UNUSED qs_net *rn_build(const rn_spec *s)
{
    rn_rng r = {s->seed};
    qs_net *net = qs_calloc(1, sizeof *net);
    snprintf(net->name, sizeof net->name, "rand");
    net->layers = qs_calloc(1 + 2 * (size_t)s->n, sizeof *net->layers);
    net->tensors = qs_calloc(2 * (size_t)s->n, sizeof *net->tensors);
    qs_layer *in = &net->layers[0];
    snprintf(in->name, sizeof in->name, "input");
    in->kind = QS_L_INPUT;
    in->weight = in->bias = -1;
    in->out_c = s->c;
    in->out_h = s->h;
    in->out_w = s->w;
    in->out_bits = (uint8_t)s->bits;
    in->out_signed = (uint8_t)s->sgn;
    in->out_zp = s->zp;
    qs_int_range(s->bits, s->sgn, &in->clamp_lo, &in->clamp_hi);
    in->out_scale = 1.0f;
    int nl = 1, nt = 0;
    for (int i = 0; i < s->n; i++) {
        const rn_layer *q = &s->l[i];
        int src = nl - 1;
        if (q->kind == QS_L_FC && q->flatten_before) {
            const qs_layer *p = &net->layers[src];
            qs_layer *f = &net->layers[nl];
            snprintf(f->name, sizeof f->name, "flat%d", i);
            f->kind = QS_L_FLATTEN;
            f->n_inputs = 1;
            f->inputs[0] = src;
            f->weight = f->bias = -1;
            f->out_c = p->out_c * p->out_h * p->out_w;
            f->out_h = f->out_w = 1;
            f->out_bits = p->out_bits;
            f->out_signed = p->out_signed;
            f->out_zp = p->out_zp;
            qs_int_range(p->out_bits, p->out_signed, &f->clamp_lo, &f->clamp_hi);
            src = nl++;
        }
        const qs_layer *IN = &net->layers[src];
        qs_layer *L = &net->layers[nl];
        snprintf(L->name, sizeof L->name, "%s%d", q->kind == QS_L_CONV ? "conv" : "fc", i);
        L->kind = q->kind;
        L->n_inputs = 1;
        L->inputs[0] = src;
        L->groups = 1;
        int K;
        if (q->kind == QS_L_CONV) {
            L->kh = q->kh;
            L->kw = q->kw;
            L->stride_h = q->sh;
            L->stride_w = q->sw;
            L->pad_t = q->pt;
            L->pad_l = q->pl;
            L->pad_b = q->pb;
            L->pad_r = q->pr;
            L->dil_h = q->dh;
            L->dil_w = q->dw;
            L->groups = q->groups;
            L->out_c = q->out_c;
            L->out_h = rn_out(IN->out_h, q->kh, q->sh, q->dh, q->pt, q->pb);
            L->out_w = rn_out(IN->out_w, q->kw, q->sw, q->dw, q->pl, q->pr);
            K = IN->out_c / q->groups * q->kh * q->kw;
        } else {
            L->out_c = q->out_c;
            L->out_h = L->out_w = 1;
            K = IN->out_c * IN->out_h * IN->out_w;
        }
        /* weights [out_c][K] (OIHW flattened) */
        qs_tensor *W = &net->tensors[nt];
        snprintf(W->name, sizeof W->name, "%.40s.w", L->name);
        W->dtype = q->wdt;
        W->is_signed = (uint8_t)(q->wdt == QS_DT_BIPOLAR ? 1 : q->wsigned);
        if (q->kind == QS_L_CONV) {
            W->ndim = 4;
            W->shape[0] = L->out_c;
            W->shape[1] = IN->out_c / q->groups;
            W->shape[2] = q->kh;
            W->shape[3] = q->kw;
        } else {
            W->ndim = 2;
            W->shape[0] = L->out_c;
            W->shape[1] = K;
        }
        W->count = (int64_t)L->out_c * K;
        W->data = qs_malloc(sizeof(int32_t) * (size_t)W->count);
        int32_t wlo, whi;
        qs_int_range(qs_dtype_bits(q->wdt), W->is_signed, &wlo, &whi);
        int N = L->out_c / L->groups;
        for (int64_t e = 0; e < W->count; e++) {
            int32_t v;
            if (q->wdt == QS_DT_BIPOLAR) v = rn_chance(&r, 0.5) ? 1 : -1;
            else if (rn_chance(&r, q->wzero)) v = 0;
            else v = rn_int(&r, wlo, whi);
            W->data[e] = v;
        }
        if (q->wdt != QS_DT_BIPOLAR) {
            for (int g = 0; g < L->groups; g++)
                for (int k = 0; k < K; k++)
                    if (rn_chance(&r, q->wrowzero))
                        for (int n = 0; n < N; n++) W->data[(size_t)(g * N + n) * K + k] = 0;
            for (int oc = 0; oc < L->out_c; oc++)
                if (rn_chance(&r, q->wcolzero))
                    for (int k = 0; k < K; k++) W->data[(size_t)oc * K + k] = 0;
        }
        L->weight = nt++;
        L->bias = -1;
        if (q->has_bias) {
            qs_tensor *B = &net->tensors[nt];
            snprintf(B->name, sizeof B->name, "%.40s.b", L->name);
            B->dtype = QS_DT_INT32;
            B->is_signed = 1;
            B->ndim = 1;
            B->shape[0] = L->out_c;
            B->count = L->out_c;
            B->data = qs_malloc(sizeof(int32_t) * (size_t)L->out_c);
            int span = 4 * K * rn_wmax(q->wdt, W->is_signed) + 8;
            for (int oc = 0; oc < L->out_c; oc++) B->data[oc] = rn_int(&r, -span, span);
            L->bias = nt++;
        }
        /* output quantization and requantization */
        L->out_bits = (uint8_t)q->out_bits;
        L->out_signed = (uint8_t)q->out_signed;
        L->out_zp = q->out_zp;
        qs_int_range(q->out_bits, q->out_signed, &L->clamp_lo, &L->clamp_hi);
        if (q->relu) {
            L->act = QS_ACT_RELU;
            if (L->clamp_lo < L->out_zp) L->clamp_lo = L->out_zp;
        }
        L->out_scale = 0.5f;
        if (q->rq_mode) {
            int32_t alo, ahi;
            qs_int_range(IN->out_bits, IN->out_signed, &alo, &ahi);
            double est = sqrt((double)K) * (double)(ahi - alo + 1) * 0.5 * rn_wmax(q->wdt, W->is_signed) + 1.0;
            double target = 0.5 * (double)(L->clamp_hi - L->clamp_lo + 1);
            int n = q->rq_mode == 2 ? L->out_c : 1;
            L->rq.n = n;
            L->rq.mult = qs_malloc(sizeof(int32_t) * (size_t)n);
            L->rq.shift = qs_malloc((size_t)n);
            for (int c = 0; c < n; c++)
                rn_quantize_multiplier(target / est * q->rq_gain * (0.6 + 0.8 * rn_unit(&r)), &L->rq.mult[c],
                                       &L->rq.shift[c]);
        }
        nl++;
    }
    net->n_layers = nl;
    net->n_tensors = nt;
    net->output = nl - 1;
    return net;
}

/* Input activations: uniform in range, a fraction zero_frac of zeros, and a
 * fraction chan_zero of whole channels zero (so that whole reduction steps
 * can be skipped). */
static RN_UNUSED int32_t *rn_input(rn_rng *r, const qs_net *net, double zero_frac, double chan_zero)
{
    const qs_layer *L = &net->layers[0];
    int64_t hw = (int64_t)L->out_h * L->out_w, n = L->out_c * hw;
    int32_t *x = qs_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int32_t lo, hi, embed;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    const int64_t vocab = qs_xfmr_vocab(net, &embed);
    if (embed >= 0 && vocab - 1 < hi) hi = (int32_t)(vocab - 1); /* token ids index an embedding table */
    for (int c = 0; c < L->out_c; c++) {
        int zc = rn_chance(r, chan_zero);
        for (int64_t i = 0; i < hw; i++)
            x[c * hw + i] = zc || rn_chance(r, zero_frac) ? 0 : rn_int(r, lo, hi);
    }
    return x;
}

static RN_UNUSED void rn_describe(const rn_spec *s, char *buf, size_t n)
{
    int o = snprintf(buf, n, "in %dx%dx%d %s%d zp %d", s->c, s->h, s->w, s->sgn ? "int" : "uint", s->bits, s->zp);
    for (int i = 0; i < s->n && o < (int)n; i++) {
        const rn_layer *l = &s->l[i];
        if (l->kind == QS_L_CONV)
            o += snprintf(buf + o, n - (size_t)o, " | conv%d %d k%dx%d s%d,%d p%d,%d,%d,%d d%d,%d g%d", i, l->out_c, l->kh,
                          l->kw, l->sh, l->sw, l->pt, l->pl, l->pb, l->pr, l->dh, l->dw, l->groups);
        else
            o += snprintf(buf + o, n - (size_t)o, " |%s fc%d %d", l->flatten_before ? " flatten," : "", i, l->out_c);
        if (o < (int)n)
            o += snprintf(buf + o, n - (size_t)o, " %s zero %.2f/%.2f/%.2f out %s%d rq%d", qs_dtype_name(l->wdt, l->wsigned),
                          l->wzero, l->wrowzero, l->wcolzero, l->out_signed ? "int" : "uint", l->out_bits, l->rq_mode);
    }
}

/* An arch from INI text plus overrides; fails the test on error. */
static RN_UNUSED int rn_arch(const char *ini, const char *const *ov, int nov, qs_arch *a)
{
    qs_error e;
    qs_status st = qs_arch_parse(ini, "test.cfg", ov, nov, a, &e);
    if (st != QS_OK) {
        fprintf(stderr, "\n  arch rejected: %s\n%s\n", e.msg, ini);
        CU_FAIL("arch rejected");
        return 0;
    }
    return 1;
}

/* Layers with no pass of their own: their output is their input's bytes (a prompt's KV cache too). */
__attribute__((unused)) static int is_view_layer(const qs_layer *L)
{
    return L->kind == QS_L_FLATTEN || L->kind == QS_L_RESHAPE || (L->kind == QS_L_KVCACHE && L->weight < 0);
}

/* A failed check prints where and why (the first 40); test_sim.c shares it. */
static int g_fail_msgs; /* limit the diagnostics printed */
static const char *g_case = "";

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            CU_FAIL(#cond);                                                   \
            bad++;                                                            \
            if (g_fail_msgs++ < 40) {                                         \
                fprintf(stderr, "\n  [%s] %s:%d: ", g_case, __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                                 \
                fputc('\n', stderr);                                          \
            }                                                                 \
        }                                                                     \
    } while (0)

/* A network of one k x k conv layer (stride 1, no padding) over a c x h x w
 * input of abits-bit activations, weights of dtype wdt drawn from seed. */
static qs_net *rn_one_conv(int c, int h, int w, int k, int out_c, qs_dtype wdt, int abits, int out_bits,
                           uint64_t seed)
{
    rn_spec s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.h = h;
    s.w = w;
    s.bits = abits;
    s.sgn = 0;
    s.n = 1;
    s.seed = seed;
    rn_layer *l = &s.l[0];
    l->kind = QS_L_CONV;
    l->out_c = out_c;
    l->kh = l->kw = k;
    l->sh = l->sw = l->dh = l->dw = 1;
    l->groups = 1;
    l->wdt = wdt;
    l->wsigned = 1;
    l->out_bits = out_bits;
    l->rq_mode = 1;
    l->rq_gain = 1.0;
    return rn_build(&s);
}

#ifndef QS_RANDNET_ONLY

/* ======================================================================
 * Program checks
 * ====================================================================== */


static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

typedef struct {
    int64_t ifmap, weight, accum;
} caps_t;

static caps_t caps_of_arch(const qs_arch *a)
{
    caps_t c;
    c.ifmap = (int64_t)a->ifmap.size_kib * 1024 / (a->ifmap.double_buffer ? 2 : 1);
    c.weight = (int64_t)a->weight.size_kib * 1024 / (a->weight.double_buffer ? 2 : 1);
    c.accum = (int64_t)a->accum.size_kib * 1024 / (a->accum.double_buffer ? 2 : 1);
    return c;
}

static int skip_w(const qs_arch *a) { return a->zero_skip == QS_SKIP_WEIGHTS || a->zero_skip == QS_SKIP_BOTH; }

static int32_t wt(const qs_net *net, int li, int g, int k, int n, const qs_gemm_dims *d)
{
    const qs_tensor *W = &net->tensors[net->layers[li].weight];
    return W->data[(size_t)(g * d->N + n) * (size_t)d->K + (size_t)k];
}

/* Input window bytes of output rows [m0, m0+mlen) and reduction indices
 * [kf, kl] (docs/compiler.md "Tiling": rows touched x width x channels). */
static int64_t window_bytes(const qs_layer *L, const qs_layer *IN, int m0, int mlen, int kf, int kl, int abits)
{
    if (mlen <= 0 || kl < kf) return 0;
    if (L->kind == QS_L_FC) return cdiv((int64_t)(kl - kf + 1) * abits, 8);
    int khw = L->kh * L->kw;
    int c0 = kf / khw, c1 = kl / khw;
    int lo = INT32_MAX, hi = INT32_MIN;
    for (int m = m0; m < m0 + mlen; m++) {
        int oy = m / L->out_w;
        for (int ky = 0; ky < L->kh; ky++) {
            int iy = oy * L->stride_h - L->pad_t + ky * L->dil_h;
            if (iy < lo) lo = iy;
            if (iy > hi) hi = iy;
        }
    }
    if (lo < 0) lo = 0;
    if (hi > IN->out_h - 1) hi = IN->out_h - 1;
    int64_t rows = hi >= lo ? hi - lo + 1 : 0;
    return cdiv(rows * IN->out_w * (int64_t)(c1 - c0 + 1) * abits, 8);
}

static int list_len_of(const qs_layer_map *m, int g, int b)
{
    int i = g * m->blocks_per_group + b;
    return m->list_off[i + 1] - m->list_off[i];
}
static const int32_t *list_of(const qs_layer_map *m, int g, int b)
{
    return m->list + m->list_off[g * m->blocks_per_group + b];
}

/* Per-layer mapping data: dims, slices, folded bias, lists. */
static int check_layer_map(const qs_net *net, const qs_arch *a, const qs_prog *p, int li)
{
    int bad = 0;
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const qs_layer_map *m = &p->maps[li];
    const qs_tensor *W = &net->tensors[L->weight];
    CHECK(m->is_gemm, "layer %d not mapped as GEMM", li);
    if (!m->is_gemm) return bad;
    qs_gemm_dims d = m->g;
    int M = L->kind == QS_L_FC ? 1 : L->out_h * L->out_w;
    int G = L->kind == QS_L_FC ? 1 : L->groups;
    int N = L->out_c / G;
    int K = L->kind == QS_L_FC ? IN->out_c * IN->out_h * IN->out_w : IN->out_c / G * L->kh * L->kw;
    CHECK(d.M == M && d.N == N && d.K == K && d.groups == G, "layer %d dims %d %d %d %d, want %d %d %d %d", li, d.M,
          d.N, d.K, d.groups, M, N, K, G);
    if (bad) return bad;
    int bip = W->dtype == QS_DT_BIPOLAR, wbits = qs_dtype_bits(W->dtype), p_ = a->weight_path_bits;
    int S = bip ? 1 : (wbits + p_ - 1) / p_;
    CHECK(m->slices == S, "layer %d: %d slices, want %d", li, m->slices, S);
    CHECK(m->weight_bits == wbits && m->weight_bipolar == bip, "layer %d weight bits", li);
    CHECK(m->act_bits == IN->out_bits && m->act_signed == IN->out_signed, "layer %d act bits", li);
    if (bad) return bad;
    /* the layer's slices (qs_weight_slice) reproduce the weights, each slice in its lane's range */
    for (int g = 0; g < G && !bad; g++)
        for (int k = 0; k < K && !bad; k++)
            for (int n = 0; n < N && !bad; n++) {
                int64_t sum = 0;
                for (int s = 0; s < S; s++) {
                    int v = qs_weight_slice(m, p_, wt(net, li, g, k, n, &d), s);
                    int lo, hi;
                    if (bip) { lo = -1; hi = 1; }
                    else if (S == 1) { lo = W->is_signed ? -(1 << (wbits - 1)) : 0; hi = W->is_signed ? (1 << (wbits - 1)) - 1 : (1 << wbits) - 1; }
                    else if (s == S - 1 && W->is_signed) { lo = -(1 << (p_ - 1)); hi = (1 << (p_ - 1)) - 1; }
                    else { lo = 0; hi = (1 << p_) - 1; }
                    CHECK(v >= lo && v <= hi, "layer %d slice %d of w[%d][%d][%d] = %d outside [%d, %d]", li, s, g, k, n, v,
                          lo, hi);
                    sum += (int64_t)v * ((int64_t)1 << (p_ * s));
                }
                CHECK(sum == wt(net, li, g, k, n, &d), "layer %d slices of w[%d][%d][%d] sum to %lld, weight %d", li, g, k,
                      n, (long long)sum, wt(net, li, g, k, n, &d));
            }
    /* folded bias */
    for (int oc = 0; oc < L->out_c; oc++) {
        int g = oc / N, n = oc % N;
        int64_t sw = 0;
        for (int k = 0; k < K; k++) sw += wt(net, li, g, k, n, &d);
        int64_t want = (L->bias >= 0 ? net->tensors[L->bias].data[oc] : 0) - (int64_t)IN->out_zp * sw;
        CHECK(m->bias_folded[oc] == want, "layer %d bias_folded[%d] = %d, want %lld", li, oc, m->bias_folded[oc],
              (long long)want);
    }
    /* compressed lists */
    int is_is = a->dataflow == QS_DF_IS;
    int blk = is_is ? a->rows : a->cols, span = is_is ? K : N, len = is_is ? N : K;
    CHECK(m->blocks_per_group == (int)cdiv(span, blk) && m->n_lists == G * m->blocks_per_group,
          "layer %d: %d blocks per group, %d lists", li, m->blocks_per_group, m->n_lists);
    if (bad) return bad;
    for (int g = 0; g < G; g++)
        for (int b = 0; b < m->blocks_per_group; b++) {
            int ll = list_len_of(m, g, b);
            const int32_t *lst = list_of(m, g, b);
            CHECK(ll >= 0 && ll <= len, "layer %d list (%d,%d) has %d entries", li, g, b, ll);
            int pos = 0;
            for (int i = 0; i < len; i++) {
                int nz = 0;
                for (int j = b * blk; j < (b + 1) * blk && j < span && !nz; j++)
                    nz = (is_is ? wt(net, li, g, j, i, &d) : wt(net, li, g, i, j, &d)) != 0;
                int want = !skip_w(a) || nz;
                int present = pos < ll && lst[pos] == i;
                CHECK(present == want, "layer %d list (%d,%d): index %d %s (all-zero block row: %d, skipping %d)", li, g, b,
                      i, present ? "present" : "absent", !nz, skip_w(a));
                if (present) pos++;
                if (bad) return bad;
            }
            CHECK(pos == ll, "layer %d list (%d,%d) not sorted/unique", li, g, b);
        }
    return bad;
}

/* Token channels, as in docs/isa.md. */
enum { CH_LD_CMP, CH_CMP_LD, CH_CMP_ST, CH_ST_CMP, CH_ST_LD, CH_N };
static const char *CH_NAME[CH_N] = {"LD->CMP", "CMP->LD", "CMP->ST", "ST->CMP", "ST->LD"};

static int pop_chan(int q, int next)
{
    if (q == QS_Q_LOAD) return next ? CH_CMP_LD : CH_ST_LD;
    if (q == QS_Q_COMPUTE) return next ? CH_ST_CMP : CH_LD_CMP;
    return next ? -1 : CH_CMP_ST;
}
static int push_chan(int q, int next)
{
    if (q == QS_Q_LOAD) return next ? CH_LD_CMP : -1;
    if (q == QS_Q_COMPUTE) return next ? CH_CMP_ST : CH_CMP_LD;
    return next ? CH_ST_LD : CH_ST_CMP;
}

/* Run the three queues at the token level (every instruction completes at
 * once). Channels are FIFOs of the pushing instruction's index, so the
 * k-th pop is paired with the k-th push and the pairing can be checked. */
static int check_tokens(const qs_net *net, const qs_prog *p)
{
    int bad = 0;
    int32_t n = p->n_insn;
    int32_t *q[3], qlen[3] = {0, 0, 0}, pc[3] = {0, 0, 0};
    int32_t *fifo[CH_N];
    int64_t head[CH_N], tail[CH_N];
    for (int i = 0; i < 3; i++) q[i] = qs_malloc(sizeof(int32_t) * (size_t)(n + 1));
    for (int c = 0; c < CH_N; c++) {
        fifo[c] = qs_malloc(sizeof(int32_t) * (size_t)(n + 8));
        head[c] = tail[c] = 0;
    }
    for (int i = 0; i < n; i++) {
        int qi = qs_opcode_queue(p->insn[i].op);
        q[qi][qlen[qi]++] = i;
    }
    for (int k = 0; k < p->init_slots; k++) fifo[CH_CMP_LD][tail[CH_CMP_LD]++] = -1;
    for (int k = 0; k < p->init_accum; k++) fifo[CH_ST_CMP][tail[CH_ST_CMP]++] = -1;
    CHECK(p->init_slots >= 1 && p->init_accum >= 1, "initial tokens %d %d", p->init_slots, p->init_accum);
    int progressed = 1;
    while (progressed && !bad) {
        progressed = 0;
        for (int qi = 0; qi < 3 && !bad; qi++) {
            while (pc[qi] < qlen[qi] && !bad) {
                int32_t idx = q[qi][pc[qi]];
                const qs_insn *in = &p->insn[idx];
                int cp = (in->deps & QS_DEP_POP_PREV) ? pop_chan(qi, 0) : -2;
                int cn = (in->deps & QS_DEP_POP_NEXT) ? pop_chan(qi, 1) : -2;
                CHECK(cp != -1 && cn != -1, "insn %d pops a channel that does not exist", idx);
                if (bad) break;
                if ((cp >= 0 && head[cp] == tail[cp]) || (cn >= 0 && head[cn] == tail[cn])) break;
                int from_p = cp >= 0 ? fifo[cp][head[cp]++] : -1;
                int from_n = cn >= 0 ? fifo[cn][head[cn]++] : -1;
                /* pairing: data-ready joins a tile's loads to its GEMM/PASS */
                if (cp == CH_LD_CMP) {
                    const qs_insn *ld = &p->insn[from_p];
                    CHECK(ld->layer == in->layer && ld->group == in->group,
                          "insn %d (layer %u group %u) pops data-ready of load %d (layer %u group %u)", idx, in->layer,
                          in->group, from_p, ld->layer, ld->group);
                }
                if (cp == CH_CMP_ST) {
                    const qs_insn *c = &p->insn[from_p];
                    int same = c->layer == in->layer && c->group == in->group;
                    if (c->op == QS_OP_GEMM)
                        same = same && c->m0 == in->m0 && c->m_len == in->m_len && c->n0 == in->n0 && c->n_len == in->n_len;
                    CHECK(same, "STORE %d (L%u g%u m%u+%u n%u+%u) pops the result of insn %d (L%u g%u m%u+%u n%u+%u)", idx,
                          in->layer, in->group, in->m0, in->m_len, in->n0, in->n_len, from_p, c->layer, c->group, c->m0,
                          c->m_len, c->n0, c->n_len);
                }
                if (cp == CH_ST_LD) {
                    const qs_insn *s = &p->insn[from_p];
                    CHECK(s->layer < in->layer, "LOAD %d of layer %u waits on the store of layer %u", idx, in->layer,
                          s->layer);
                }
                (void)from_n;
                int hp = (in->deps & QS_DEP_PUSH_PREV) ? push_chan(qi, 0) : -2;
                int hn = (in->deps & QS_DEP_PUSH_NEXT) ? push_chan(qi, 1) : -2;
                CHECK(hp != -1 && hn != -1, "insn %d pushes a channel that does not exist", idx);
                if (hp >= 0) fifo[hp][tail[hp]++] = idx;
                if (hn >= 0) fifo[hn][tail[hn]++] = idx;
                pc[qi]++;
                progressed = 1;
            }
        }
    }
    for (int qi = 0; qi < 3 && !bad; qi++)
        CHECK(pc[qi] == qlen[qi], "deadlock: queue %d stops at instruction %d of %d (program index %d)", qi, pc[qi],
              qlen[qi], pc[qi] < qlen[qi] ? q[qi][pc[qi]] : -1);
    if (!bad) {
        /* drained: every channel back to its initial count */
        for (int c = 0; c < CH_N; c++) {
            int64_t left = tail[c] - head[c];
            int64_t want = c == CH_CMP_LD ? p->init_slots : c == CH_ST_CMP ? p->init_accum : 0;
            CHECK(left == want, "channel %s ends with %lld tokens, want %lld", CH_NAME[c], (long long)left,
                  (long long)want);
        }
    }
    (void)net;
    for (int i = 0; i < 3; i++) qs_free(q[i]);
    for (int c = 0; c < CH_N; c++) qs_free(fifo[c]);
    return bad;
}

/* Everything about one compiled program. Returns the number of failed checks. */
/* ---- DMA access patterns (docs/isa.md, "Access patterns") ---------------------
 * Recomputed here from the documented meaning of the fields, not through the
 * compiler's helpers: run r of a LOAD/STORE covers bits [addr*8 + bit0 +
 * r*stride_bits, +run_bits) and moves every byte those bits touch. */

typedef struct {
    int64_t lo, hi; /* byte range [lo, hi) */
} brange;

static brange run_bytes(const qs_insn *in, uint32_t r)
{
    int64_t b0 = (int64_t)in->addr * 8 + in->bit0 + (int64_t)r * in->stride_bits;
    brange br = {b0 / 8, cdiv(b0 + in->run_bits, 8)};
    return br;
}

static int64_t tensor_bytes(const qs_layer *L) { return cdiv((int64_t)L->out_c * L->out_h * L->out_w * L->out_bits, 8); }

/* Mark the bytes that hold elements [e0, e1) of a tensor of `bits`-bit elements. */
static void mark_elems(uint8_t *bytes, int64_t e0, int64_t e1, int bits)
{
    if (e1 <= e0) return;
    for (int64_t b = e0 * bits / 8; b < cdiv(e1 * bits, 8); b++) bytes[b] = 1;
}

/* Every LOAD/STORE of every layer:
 *  - its byte count is the bytes its runs touch, bit0 < 8;
 *  - every byte an input LOAD reads lies inside a tensor the layer reads (the
 *    outputs of its input layers), every weight byte inside the layer's
 *    weight image, and the image lies apart from every tensor;
 *  - every byte of the input the layer needs (conv: the receptive fields of
 *    the reduction rows the compressed lists keep; fc: the kept inputs;
 *    post-processing: all of each input) is read, and the weight image is
 *    read whole;
 *  - the stores write every bit of the output tensor exactly once, each store
 *    only the elements of its own tile. */
static int check_dma(const qs_net *net, const qs_arch *a, const qs_prog *p)
{
    int bad = 0;
    const int is_is = a->dataflow == QS_DF_IS;
    for (int li = 1; li < net->n_layers && !bad; li++) {
        const qs_layer *L = &net->layers[li];
        const qs_layer_map *m = &p->maps[li];
        if (is_view_layer(L)) continue;
        /* the tensors the layer reads */
        uint8_t *need[QS_MAX_INPUTS] = {0}, *got[QS_MAX_INPUTS] = {0};
        int64_t in_lo[QS_MAX_INPUTS], in_sz[QS_MAX_INPUTS];
        for (int i = 0; i < L->n_inputs; i++) {
            const qs_layer *IN = &net->layers[L->inputs[i]];
            in_lo[i] = p->maps[L->inputs[i]].out_addr;
            in_sz[i] = tensor_bytes(IN);
            need[i] = qs_calloc((size_t)in_sz[i] + 1, 1);
            got[i] = qs_calloc((size_t)in_sz[i] + 1, 1);
        }
        const qs_layer *IN0 = &net->layers[L->inputs[0]];
        if (!m->is_gemm) {
            for (int i = 0; i < L->n_inputs; i++) memset(need[i], 1, (size_t)in_sz[i]);
        } else if (L->kind == QS_L_FC) {
            for (int g = 0; g < m->g.groups; g++)
                for (int k = 0; k < m->g.K; k++) {
                    int kept = 0;
                    for (int b = 0; b < m->blocks_per_group && !kept; b++) {
                        if (is_is) kept = k / a->rows == b && list_len_of(m, g, b) > 0;
                        else for (int j = 0; j < list_len_of(m, g, b); j++) kept |= list_of(m, g, b)[j] == k;
                    }
                    if (kept) mark_elems(need[0], k, k + 1, IN0->out_bits);
                }
        } else {
            int khw = L->kh * L->kw, cg = IN0->out_c / L->groups;
            for (int g = 0; g < m->g.groups; g++)
                for (int k = 0; k < m->g.K; k++) {
                    int kept = 0;
                    for (int b = 0; b < m->blocks_per_group && !kept; b++) {
                        if (is_is) kept = k / a->rows == b && list_len_of(m, g, b) > 0;
                        else for (int j = 0; j < list_len_of(m, g, b); j++) kept |= list_of(m, g, b)[j] == k;
                    }
                    if (!kept) continue;
                    int c = k / khw, ky = k % khw / L->kw, kx = k % L->kw;
                    for (int oy = 0; oy < L->out_h; oy++)
                        for (int ox = 0; ox < L->out_w; ox++) {
                            int iy = oy * L->stride_h - L->pad_t + ky * L->dil_h;
                            int ix = ox * L->stride_w - L->pad_l + kx * L->dil_w;
                            if (iy < 0 || ix < 0 || iy >= IN0->out_h || ix >= IN0->out_w) continue;
                            int64_t e = ((int64_t)(g * cg + c) * IN0->out_h + iy) * IN0->out_w + ix;
                            mark_elems(need[0], e, e + 1, IN0->out_bits);
                        }
                }
        }
        uint8_t *wgot = qs_calloc((size_t)(m->is_gemm ? m->weight_bytes : 0) + 1, 1);
        int64_t n_out = (int64_t)L->out_c * L->out_h * L->out_w;
        int64_t ob = L->out_bits;
        uint8_t *written = qs_calloc((size_t)n_out + 1, 1);
        int64_t plane = (int64_t)L->out_h * L->out_w;
        for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn && !bad; i++) {
            const qs_insn *in = &p->insn[i];
            if (in->op != QS_OP_LOAD && in->op != QS_OP_STORE) continue;
            int64_t sum = 0;
            for (uint32_t r = 0; r < in->rows; r++) {
                brange br = run_bytes(in, r);
                if (in->run_bits) sum += br.hi - br.lo;
            }
            CHECK(in->bit0 < 8 && sum == (int64_t)in->bytes, "layer %d insn %d: %u B for runs that touch %lld B", li, i,
                  in->bytes, (long long)sum);
            CHECK(in->rows == 0 || in->rows == 1 || in->stride_bits >= in->run_bits,
                  "layer %d insn %d: runs of %u bits every %u bits overlap", li, i, in->run_bits, in->stride_bits);
            for (uint32_t r = 0; r < in->rows && !bad; r++) {
                brange br = run_bytes(in, r);
                if (in->op == QS_OP_LOAD && in->mem == QS_MEM_WEIGHT && !m->is_matmul) {
                    CHECK(m->is_gemm && br.lo >= m->weight_addr && br.hi <= m->weight_addr + m->weight_bytes,
                          "layer %d weight LOAD %d reads [0x%llx, 0x%llx) outside its image [0x%x, +%lld)", li, i,
                          (long long)br.lo, (long long)br.hi, m->weight_addr, (long long)m->weight_bytes);
                    if (bad) break;
                    for (int64_t b = br.lo; b < br.hi; b++) wgot[b - m->weight_addr] = 1;
                } else if (in->op == QS_OP_LOAD && L->kind == QS_L_EMBED && br.lo >= m->weight_addr) {
                    /* the gather of table rows: inside the table the compiler placed in DRAM */
                    const qs_tensor *tt = &net->tensors[L->weight], *pt = L->bias >= 0 ? &net->tensors[L->bias] : NULL;
                    CHECK(br.hi <= m->weight_addr + m->weight_bytes &&
                              m->weight_bytes == cdiv((int64_t)tt->count * qs_dtype_bits(tt->dtype), 8) +
                                                     (pt ? cdiv((int64_t)pt->count * qs_dtype_bits(pt->dtype), 8) : 0),
                          "embed layer %d LOAD %d reads [0x%llx, 0x%llx) outside its table [0x%x, +%lld)", li, i,
                          (long long)br.lo, (long long)br.hi, m->weight_addr, (long long)m->weight_bytes);
                } else if (in->op == QS_OP_LOAD) {
                    int hit = -1;
                    for (int k = 0; k < L->n_inputs && hit < 0; k++)
                        if (br.lo >= in_lo[k] && br.hi <= in_lo[k] + in_sz[k]) hit = k;
                    CHECK(hit >= 0, "layer %d LOAD %d reads [0x%llx, 0x%llx), outside every tensor it reads", li, i,
                          (long long)br.lo, (long long)br.hi);
                    if (bad) break;
                    for (int64_t b = br.lo; b < br.hi; b++) got[hit][b - in_lo[hit]] = 1;
                } else {
                    /* STORE: whole elements of its tile, inside the output */
                    int64_t b0 = (int64_t)in->addr * 8 + in->bit0 + (int64_t)r * in->stride_bits - (int64_t)m->out_addr * 8;
                    CHECK(b0 >= 0 && b0 % ob == 0 && in->run_bits % ob == 0 && b0 + in->run_bits <= n_out * ob,
                          "layer %d STORE %d run %u: bits [%lld, +%u) are not whole elements of the output", li, i, r,
                          (long long)b0, in->run_bits);
                    if (bad) break;
                    for (int64_t e = b0 / ob; e < (b0 + in->run_bits) / ob && !bad; e++) {
                        int64_t ch = e / plane, pix = e % plane;
                        int inside = m->is_gemm
                                         ? ch >= (int64_t)in->group * m->g.N + in->n0 &&
                                               ch < (int64_t)in->group * m->g.N + in->n0 + in->n_len && pix >= in->m0 &&
                                               pix < (int64_t)in->m0 + in->m_len
                                         : ch >= in->m0 && ch < (int64_t)in->m0 + in->m_len;
                        if (m->is_matmul) { /* output (batch, M, N): the tile's rows and columns of its batch */
                            int64_t row = pix / L->out_w, col = pix % L->out_w;
                            inside = ch == in->group && row >= in->m0 && row < (int64_t)in->m0 + in->m_len &&
                                     col >= in->n0 && col < (int64_t)in->n0 + in->n_len;
                        } else if (L->kind == QS_L_SOFTMAX && QS_SOFTMAX_AXIS(L->param) == 2) { /* units: lines (c, h) */
                            int64_t line = e / L->out_w;
                            inside = line >= in->m0 && line < (int64_t)in->m0 + in->m_len;
                        } else if (qs_xfmr_rows(L, &(int64_t){0}, &(int64_t){0})) { /* units: positions */
                            inside = pix >= in->m0 && pix < (int64_t)in->m0 + in->m_len;
                        }
                        CHECK(inside, "layer %d STORE %d writes element %lld (channel %lld, pixel %lld) outside its tile",
                              li, i, (long long)e, (long long)ch, (long long)pix);
                        written[e]++;
                    }
                }
            }
        }
        for (int k = 0; k < L->n_inputs && !bad; k++)
            for (int64_t b = 0; b < in_sz[k] && !bad; b++)
                CHECK(!need[k][b] || got[k][b], "layer %d never reads byte %lld of input %d (0x%llx), which it needs", li,
                      (long long)b, k, (long long)(in_lo[k] + b));
        for (int64_t b = 0; m->is_gemm && b < m->weight_bytes && !bad; b++)
            CHECK(wgot[b], "layer %d never reads byte %lld of its weight image", li, (long long)b);
        for (int64_t e = 0; e < n_out && !bad; e++)
            CHECK(written[e] == 1, "layer %d element %lld of its output is written %u times", li, (long long)e, written[e]);
        /* the weight image lies apart from every tensor */
        for (int lj = 0; m->is_gemm && lj < net->n_layers && !bad; lj++) {
            if (is_view_layer(&net->layers[lj])) continue;
            int64_t t0 = p->maps[lj].out_addr, t1 = t0 + tensor_bytes(&net->layers[lj]);
            CHECK(m->weight_addr + m->weight_bytes <= t0 || t1 <= m->weight_addr ||
                      m->weight_bytes == 0 || t1 == t0,
                  "layer %d weight image overlaps the output of layer %d", li, lj);
        }
        for (int i = 0; i < L->n_inputs; i++) {
            qs_free(need[i]);
            qs_free(got[i]);
        }
        qs_free(wgot);
        qs_free(written);
    }
    return bad;
}

static int check_program(const qs_net *net, const qs_arch *a, const qs_prog *p)
{
    int bad = 0;
    const caps_t cap = caps_of_arch(a);
    const int is_is = a->dataflow == QS_DF_IS;
    CHECK(p->n_layers == net->n_layers, "n_layers %d", p->n_layers);
    CHECK(p->init_slots == ((a->ifmap.double_buffer && a->weight.double_buffer) ? 2 : 1), "init_slots %d",
          p->init_slots);
    CHECK(p->init_accum == (a->accum.double_buffer ? 2 : 1), "init_accum %d", p->init_accum);
    if (bad) return bad;

    /* instruction ranges per layer, well-formed encodings */
    int32_t expect_first = 0;
    for (int li = 1; li < net->n_layers; li++) {
        const qs_layer_map *m = &p->maps[li];
        if (is_view_layer(&net->layers[li])) {
            CHECK(m->n_insn == 0, "view layer %d has %d instructions", li, m->n_insn);
            continue;
        }
        CHECK(m->first_insn == expect_first && m->n_insn > 0, "layer %d instructions [%d, +%d), expected to start at %d",
              li, m->first_insn, m->n_insn, expect_first);
        for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn && i < p->n_insn; i++)
            CHECK(p->insn[i].layer == li, "insn %d has layer %u inside layer %d's range", i, p->insn[i].layer, li);
        expect_first = m->first_insn + m->n_insn;
    }
    CHECK(expect_first == p->n_insn, "layers cover %d of %d instructions", expect_first, p->n_insn);
    for (int32_t i = 0; i < p->n_insn; i++) {
        uint8_t b[QS_INSN_BYTES];
        qs_insn back;
        qs_error e;
        qs_insn_encode(&p->insn[i], b);
        CHECK(qs_insn_decode(b, &back, &e) == QS_OK, "insn %d does not decode: %s", i, e.msg);
    }
    if (bad) return bad;

    /* DRAM: outputs disjoint and inside the footprint */
    for (int li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        if (is_view_layer(L)) continue;
        int64_t ob = cdiv((int64_t)L->out_c * L->out_h * L->out_w * L->out_bits, 8);
        int64_t a0 = p->maps[li].out_addr;
        CHECK(a0 + ob <= (int64_t)p->dram_bytes, "layer %d output [%lld, +%lld) beyond DRAM footprint %u", li,
              (long long)a0, (long long)ob, p->dram_bytes);
        for (int lj = 0; lj < li; lj++) {
            const qs_layer *J = &net->layers[lj];
            if (is_view_layer(J)) continue;
            int64_t jb = cdiv((int64_t)J->out_c * J->out_h * J->out_w * J->out_bits, 8);
            int64_t b0 = p->maps[lj].out_addr;
            CHECK(a0 + ob <= b0 || b0 + jb <= a0, "outputs of layers %d and %d overlap in DRAM", li, lj);
        }
    }

    for (int li = 1; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        if (L->kind == QS_L_CONV || L->kind == QS_L_FC) bad += check_layer_map(net, a, p, li);
    }
    if (bad) return bad;

    /* per instruction, and the coverage count by enumeration */
    int32_t last_compute = -1;
    int seen_layer_load[64] = {0};
    for (int li = 1; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        const qs_layer_map *m = &p->maps[li];
        if (!m->is_gemm) continue;
        const qs_layer *IN = &net->layers[L->inputs[0]];
        qs_gemm_dims d = m->g;
        size_t cells = (size_t)d.groups * d.M * d.N * d.K;
        uint8_t *cov = qs_calloc(cells ? cells : 1, 1);
        uint8_t *first = qs_calloc((size_t)d.groups * d.M * d.N + 1, 1);
        uint8_t *last = qs_calloc((size_t)d.groups * d.M * d.N + 1, 1);
        uint8_t *stored = qs_calloc((size_t)d.groups * d.M * d.N + 1, 1);
        last_compute = m->first_insn - 1; /* loads of other layers are not this layer's */
#define CELL(g, mm, nn, kk) cov[(((size_t)(g) * d.M + (mm)) * d.N + (nn)) * d.K + (kk)]
#define OUTI(g, mm, nn) (((size_t)(g) * d.M + (mm)) * d.N + (nn))
        for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn && !bad; i++) {
            const qs_insn *in = &p->insn[i];
            if (in->op == QS_OP_LOAD) {
                CHECK(in->mem == QS_MEM_IFMAP || in->mem == QS_MEM_WEIGHT, "LOAD %d into memory %u", i, in->mem);
                CHECK(in->bytes > 0 || (in->deps & QS_DEP_POP_PREV), "LOAD %d of 0 bytes that carries no layer-stored token", i);
                CHECK(in->addr < p->dram_bytes, "LOAD %d address %u beyond %u", i, in->addr, p->dram_bytes);
                CHECK(!(in->deps & QS_DEP_PUSH_PREV), "LOAD %d pushes prev", i);
                int64_t c = in->mem == QS_MEM_IFMAP ? cap.ifmap : cap.weight;
                CHECK((int64_t)in->bytes <= c, "LOAD %d of %u B does not fit the %s buffer half (%lld B)", i, in->bytes,
                      in->mem == QS_MEM_IFMAP ? "ifmap" : "weight", (long long)c);
                if (!seen_layer_load[li]) {
                    seen_layer_load[li] = 1;
                    /* the first load of a layer after another layer waits for its last store */
                    CHECK(m->first_insn == 0 || (in->deps & QS_DEP_POP_PREV),
                          "first LOAD %d of layer %d does not wait for the previous layer's store", i, li);
                } else {
                    CHECK(!(in->deps & QS_DEP_POP_PREV), "LOAD %d pops the layer barrier twice", i);
                }
                continue;
            }
            if (in->op == QS_OP_STORE) {
                CHECK(in->mem == QS_MEM_ACCUM, "STORE %d from memory %u", i, in->mem);
                CHECK(in->addr >= m->out_addr, "STORE %d to 0x%x, layer output at 0x%x", i, in->addr, m->out_addr);
                CHECK((in->deps & (QS_DEP_POP_PREV | QS_DEP_PUSH_PREV)) == (QS_DEP_POP_PREV | QS_DEP_PUSH_PREV) &&
                          !(in->deps & QS_DEP_POP_NEXT),
                      "STORE %d deps 0x%x", i, in->deps);
                CHECK(in->group < (uint32_t)d.groups && in->m0 + in->m_len <= (uint32_t)d.M &&
                          in->n0 + in->n_len <= (uint32_t)d.N && in->m_len > 0 && in->n_len > 0,
                      "STORE %d tile out of range", i);
                if (bad) break;
                /* at least the tile's bits; the runs are checked by check_dma */
                CHECK(in->bytes >= (uint32_t)cdiv((int64_t)in->m_len * in->n_len * L->out_bits, 8), "STORE %d bytes %u",
                      i, in->bytes);
                for (uint32_t mm = in->m0; mm < in->m0 + in->m_len; mm++)
                    for (uint32_t nn = in->n0; nn < in->n0 + in->n_len; nn++) {
                        size_t o = OUTI(in->group, mm, nn);
                        CHECK(last[o] == 1, "STORE %d stores (g%u m%u n%u) before its last k-chunk", i, in->group, mm, nn);
                        stored[o]++;
                    }
                continue;
            }
            CHECK(in->op == QS_OP_GEMM, "instruction %d of GEMM layer %d is %s", i, li, qs_opcode_name(in->op));
            if (bad) break;
            /* GEMM */
            CHECK(in->group < (uint32_t)d.groups, "GEMM %d group %u", i, in->group);
            CHECK(in->m_len > 0 && in->m0 + in->m_len <= (uint32_t)d.M && in->m_len <= (uint32_t)m->tm,
                  "GEMM %d m[%u+%u] (M %d, tm %d)", i, in->m0, in->m_len, d.M, m->tm);
            int ktot;
            int nb = 0;
            if (is_is) {
                CHECK(in->n0 == 0 && in->n_len == (uint32_t)d.N, "IS GEMM %d n[%u+%u], N %d", i, in->n0, in->n_len, d.N);
                CHECK(in->k0 % (uint32_t)a->rows == 0, "IS GEMM %d k0 %u not on a k-block boundary", i, in->k0);
                ktot = d.K;
            } else {
                CHECK(in->n0 % (uint32_t)a->cols == 0 && in->n0 < (uint32_t)d.N, "GEMM %d n0 %u", i, in->n0);
                if (bad) break;
                nb = (int)in->n0 / a->cols;
                int want = d.N - (int)in->n0 < a->cols ? d.N - (int)in->n0 : a->cols;
                CHECK(in->n_len == (uint32_t)want, "GEMM %d n_len %u, want %d", i, in->n_len, want);
                ktot = list_len_of(m, in->group, nb);
            }
            CHECK(in->k0 + in->k_len <= (uint32_t)ktot && in->k_len <= (uint32_t)m->tk,
                  "GEMM %d k[%u+%u] (list %d, tk %d)", i, in->k0, in->k_len, ktot, m->tk);
            CHECK(in->k_len > 0 || ktot == 0, "GEMM %d has an empty k range of a nonempty list", i);
            int want_first = in->k0 == 0, want_last = in->k0 + in->k_len == (uint32_t)ktot;
            CHECK(!!(in->flags & QS_GEMM_FIRST_K) == want_first && !!(in->flags & QS_GEMM_LAST_K) == want_last,
                  "GEMM %d flags %u for k[%u+%u] of %d", i, in->flags, in->k0, in->k_len, ktot);
            CHECK(!!(in->deps & QS_DEP_POP_NEXT) == want_first && !!(in->deps & QS_DEP_PUSH_NEXT) == want_last,
                  "GEMM %d deps 0x%x vs first/last", i, in->deps);
            if (bad) break;
            /* accumulators of the tile fit */
            CHECK((int64_t)in->m_len * in->n_len * 4 <= cap.accum,
                  "GEMM %d: %u x %u accumulators (%lld B) do not fit the accum buffer half (%lld B)", i, in->m_len,
                  in->n_len, (long long)in->m_len * in->n_len * 4, (long long)cap.accum);
            /* its loads: those since the previous compute instruction */
            int64_t lb_i = 0, lb_w = 0;
            int nli = 0, nlw = 0;
            for (int32_t j = last_compute + 1; j < i; j++) {
                if (p->insn[j].op != QS_OP_LOAD) continue;
                if (p->insn[j].mem == QS_MEM_IFMAP) { lb_i += p->insn[j].bytes; nli++; }
                else { lb_w += p->insn[j].bytes; nlw++; }
            }
            last_compute = i;
            CHECK(!!(in->deps & QS_DEP_POP_PREV) == (nli + nlw > 0) && !!(in->deps & QS_DEP_PUSH_PREV) == (nli + nlw > 0),
                  "GEMM %d deps 0x%x with %d loads", i, in->deps, nli + nlw);
            CHECK(nli <= 1 && nlw <= 1, "GEMM %d has %d ifmap and %d weight loads", i, nli, nlw);
            int kf = 0, kl = -1;
            if (in->k_len > 0) {
                if (is_is) { kf = (int)in->k0; kl = (int)(in->k0 + in->k_len - 1); }
                else { kf = list_of(m, in->group, nb)[in->k0]; kl = list_of(m, in->group, nb)[in->k0 + in->k_len - 1]; }
            }
            if (m->ifmap_resident && !is_is) { /* a resident window serves every n-block: their union */
                kf = INT32_MAX;
                kl = -1;
                for (int b = 0; b < m->blocks_per_group; b++) {
                    int ll = list_len_of(m, in->group, b);
                    if (!ll) continue;
                    if (list_of(m, in->group, b)[0] < kf) kf = list_of(m, in->group, b)[0];
                    if (list_of(m, in->group, b)[ll - 1] > kl) kl = list_of(m, in->group, b)[ll - 1];
                }
            }
            int64_t need_i = window_bytes(L, IN, (int)in->m0, (int)in->m_len, kf, kl, m->act_bits);
            CHECK(need_i <= cap.ifmap, "GEMM %d (m[%u+%u] k %d..%d) needs an input window of %lld B, ifmap buffer half %lld B",
                  i, in->m0, in->m_len, kf, kl, (long long)need_i, (long long)cap.ifmap);
            /* the runs of a window of sub-byte elements may touch a byte more each (check_dma) */
            if (nli) CHECK(lb_i >= need_i && (lb_i == need_i || m->act_bits % 8),
                           "GEMM %d: ifmap LOAD of %lld B, window is %lld B", i, (long long)lb_i, (long long)need_i);
            else CHECK(need_i == 0 || m->ifmap_resident, "GEMM %d has no ifmap load and the input is not resident", i);
            int64_t need_w = 0;
            int comp = skip_w(a);
            if (is_is) {
                for (int b = kf / a->rows; in->k_len > 0 && b <= kl / a->rows; b++) {
                    int ll = list_len_of(m, in->group, b);
                    int kr = d.K - b * a->rows < a->rows ? d.K - b * a->rows : a->rows;
                    need_w += cdiv((int64_t)kr * ll * m->weight_bits, 8) + (comp ? 2 * (int64_t)ll : 0);
                }
                if (nlw) CHECK(lb_w >= need_w, "IS GEMM %d: weight LOAD of %lld B < tile's %lld B", i, (long long)lb_w, (long long)need_w);
            } else {
                need_w = cdiv((int64_t)in->n_len * in->k_len * m->weight_bits, 8) + (comp ? 2 * (int64_t)in->k_len : 0);
                if (nlw) CHECK(lb_w == need_w, "GEMM %d: weight LOAD of %lld B, tile is %lld B", i, (long long)lb_w, (long long)need_w);
            }
            CHECK(need_w <= cap.weight, "GEMM %d: weight tile of %lld B does not fit the weight buffer half (%lld B)", i,
                  (long long)need_w, (long long)cap.weight);
            if (!nlw) CHECK(need_w == 0 || m->weight_resident, "GEMM %d has no weight load and weights are not resident", i);
            /* coverage */
            for (uint32_t mm = in->m0; mm < in->m0 + in->m_len; mm++)
                for (uint32_t nn = in->n0; nn < in->n0 + in->n_len; nn++) {
                    size_t o = OUTI(in->group, mm, nn);
                    if (in->flags & QS_GEMM_FIRST_K) first[o]++;
                    if (in->flags & QS_GEMM_LAST_K) {
                        CHECK(first[o] == 1, "GEMM %d ends (g%u m%u n%u) that no first chunk started", i, in->group, mm, nn);
                        last[o]++;
                    } else {
                        CHECK(last[o] == 0, "GEMM %d adds to (g%u m%u n%u) after its last chunk", i, in->group, mm, nn);
                    }
                }
            if (is_is) {
                for (uint32_t kk = in->k0; kk < in->k0 + in->k_len; kk++) {
                    int b = (int)kk / a->rows;
                    const int32_t *nl = list_of(m, in->group, b);
                    int ll = list_len_of(m, in->group, b);
                    for (int e = 0; e < ll; e++)
                        for (uint32_t mm = in->m0; mm < in->m0 + in->m_len; mm++) CELL(in->group, mm, nl[e], kk)++;
                }
            } else {
                const int32_t *kl_ = list_of(m, in->group, nb);
                for (uint32_t pp = in->k0; pp < in->k0 + in->k_len; pp++)
                    for (uint32_t mm = in->m0; mm < in->m0 + in->m_len; mm++)
                        for (uint32_t nn = in->n0; nn < in->n0 + in->n_len; nn++) CELL(in->group, mm, nn, kl_[pp])++;
            }
        }
        /* every nonzero weight's MAC exactly once; skipped zero rows absent */
        for (int g = 0; g < d.groups && !bad; g++)
            for (int mm = 0; mm < d.M && !bad; mm++)
                for (int nn = 0; nn < d.N && !bad; nn++) {
                    size_t o = OUTI(g, mm, nn);
                    CHECK(first[o] == 1 && last[o] == 1 && stored[o] == 1,
                          "layer %d output (g%d m%d n%d): %u first chunks, %u last chunks, %u stores", li, g, mm, nn,
                          first[o], last[o], stored[o]);
                    for (int kk = 0; kk < d.K && !bad; kk++) {
                        int w = wt(net, li, g, kk, nn, &d);
                        int c = CELL(g, mm, nn, kk);
                        if (w != 0) {
                            CHECK(c == 1, "layer %d MAC (g%d m%d n%d k%d) with weight %d covered %d times", li, g, mm, nn,
                                  kk, w, c);
                        } else {
                            CHECK(c <= 1, "layer %d MAC (g%d m%d n%d k%d) covered %d times", li, g, mm, nn, kk, c);
                            if (!skip_w(a)) CHECK(c == 1, "layer %d dense MAC (g%d m%d n%d k%d) not covered", li, g, mm, nn, kk);
                        }
                    }
                }
        /* a reduction row whose weights are all zero in its block is never issued */
        if (skip_w(a) && !bad) {
            int blk = is_is ? a->rows : a->cols;
            for (int g = 0; g < d.groups && !bad; g++)
                for (int b = 0; b * blk < (is_is ? d.K : d.N) && !bad; b++)
                    for (int i2 = 0; i2 < (is_is ? d.N : d.K) && !bad; i2++) {
                        int nz = 0;
                        for (int j = b * blk; j < (b + 1) * blk && j < (is_is ? d.K : d.N); j++)
                            nz |= (is_is ? wt(net, li, g, j, i2, &d) : wt(net, li, g, i2, j, &d)) != 0;
                        if (nz) continue;
                        for (int j = b * blk; j < (b + 1) * blk && j < (is_is ? d.K : d.N); j++)
                            for (int mm = 0; mm < d.M; mm++) {
                                int c = is_is ? CELL(g, mm, i2, j) : CELL(g, mm, j, i2);
                                CHECK(c == 0, "layer %d: all-zero %s %d of block %d (group %d) issued", li,
                                      is_is ? "column n" : "row k", i2, b, g);
                                if (c) break;
                            }
                    }
        }
#undef CELL
#undef OUTI
        qs_free(cov);
        qs_free(first);
        qs_free(last);
        qs_free(stored);
    }
    /* post-processing-only layers: input chunks fit, every channel stored once */
    for (int li = 1; li < net->n_layers && !bad; li++) {
        const qs_layer *L = &net->layers[li];
        const qs_layer_map *m = &p->maps[li];
        if (m->is_gemm || is_view_layer(L)) continue;
        if (m->is_matmul) { /* every output (batch, m, n) stored exactly once, each store inside its tile */
            int64_t n_out = (int64_t)L->out_c * L->out_h * L->out_w;
            int *once = qs_calloc((size_t)n_out, sizeof(int));
            for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn; i++) {
                const qs_insn *in = &p->insn[i];
                if (in->op != QS_OP_STORE) continue;
                CHECK(in->group < (uint32_t)L->out_c && in->m0 + in->m_len <= (uint32_t)L->out_h &&
                          in->n0 + in->n_len <= (uint32_t)L->out_w && (int64_t)in->m_len * in->n_len * 4 <= cap.accum,
                      "matmul layer %d: STORE %d batch %u rows [%u, +%u) cols [%u, +%u)", li, i, in->group, in->m0,
                      in->m_len, in->n0, in->n_len);
                if (bad) break;
                for (uint32_t a = in->m0; a < in->m0 + in->m_len; a++)
                    for (uint32_t b = in->n0; b < in->n0 + in->n_len; b++)
                        once[((int64_t)in->group * L->out_h + a) * L->out_w + b]++;
            }
            for (int64_t o = 0; o < n_out && !bad; o++) CHECK(once[o] == 1, "matmul layer %d output %lld stored %d times", li, (long long)o, once[o]);
            qs_free(once);
            continue;
        }
        /* the PPU's units: channels, or rows (positions / lines) for norms and softmax */
        int64_t n_units = L->out_c, unit_elems = (int64_t)L->out_h * L->out_w;
        qs_xfmr_rows(L, &n_units, &unit_elems);
        int *chan = qs_calloc((size_t)n_units, sizeof(int));
        int64_t pending = 0;
        int loads = 0, passes = 0;
        for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn && !bad; i++) {
            const qs_insn *in = &p->insn[i];
            if (in->op == QS_OP_LOAD) {
                CHECK(in->mem == QS_MEM_IFMAP && in->bytes > 0, "PPU layer %d: LOAD %d mem %u bytes %u", li, i, in->mem,
                      in->bytes);
                pending += in->bytes;
                loads++;
                if (!seen_layer_load[li]) {
                    seen_layer_load[li] = 1;
                    CHECK(m->first_insn == 0 || (in->deps & QS_DEP_POP_PREV),
                          "first LOAD %d of layer %d does not wait for the previous layer's store", i, li);
                }
            } else if (in->op == QS_OP_PASS) {
                /* concat: only the inputs whose channels fall in the tile load */
                CHECK(loads >= (L->kind == QS_L_CONCAT ? 1 : L->n_inputs), "PASS %d after %d loads for %d inputs", i, loads,
                      L->n_inputs);
                CHECK(pending <= cap.ifmap, "PPU layer %d: %lld B of inputs before PASS %d exceed the ifmap half %lld B",
                      li, (long long)pending, i, (long long)cap.ifmap);
                if (L->kind == QS_L_ARGMAX) { /* channel chunks of one position tile: like a GEMM's k-chunks */
                    const qs_insn *nx = &p->insn[i + 1];
                    int first_chunk = passes == 0 || p->insn[i - 2].op == QS_OP_STORE || p->insn[i - 2].layer != li;
                    int last_chunk = nx->op == QS_OP_STORE;
                    CHECK(in->deps == (QS_DEP_POP_PREV | QS_DEP_PUSH_PREV | (first_chunk ? QS_DEP_POP_NEXT : 0) |
                                       (last_chunk ? QS_DEP_PUSH_NEXT : 0)),
                          "argmax PASS %d deps 0x%x (first %d last %d)", i, in->deps, first_chunk, last_chunk);
                } else {
                    CHECK(in->deps == (QS_DEP_POP_PREV | QS_DEP_POP_NEXT | QS_DEP_PUSH_PREV | QS_DEP_PUSH_NEXT),
                          "PASS %d deps 0x%x", i, in->deps);
                }
                pending = 0;
                loads = 0;
                passes++;
            } else if (in->op == QS_OP_STORE) {
                CHECK(in->mem == QS_MEM_ACCUM && in->addr >= m->out_addr && in->m_len > 0 &&
                          in->m0 + in->m_len <= (uint64_t)n_units,
                      "PPU layer %d: STORE %d units [%u, +%u) of %lld", li, i, in->m0, in->m_len, (long long)n_units);
                if (bad) break;
                int64_t hw = unit_elems;
                CHECK(in->bytes >= (uint32_t)cdiv((int64_t)in->m_len * hw * L->out_bits, 8), "STORE %d bytes %u", i,
                      in->bytes);
                CHECK((int64_t)in->m_len * hw * 4 <= cap.accum, "PPU layer %d: STORE %d tile of %lld B > accum half %lld B",
                      li, i, (long long)in->m_len * hw * 4, (long long)cap.accum);
                for (uint32_t c = in->m0; c < in->m0 + in->m_len; c++) chan[c]++;
            } else {
                CHECK(0, "PPU layer %d has a %s", li, qs_opcode_name(in->op));
            }
        }
        CHECK(passes > 0, "PPU layer %d has no PASS", li);
        for (int64_t c = 0; c < n_units && !bad; c++)
            CHECK(chan[c] == 1, "PPU layer %d unit %lld stored %d times", li, (long long)c, chan[c]);
        qs_free(chan);
    }
    /* the final store sends no barrier token nobody takes */
    for (int32_t i = p->n_insn - 1; i >= 0; i--)
        if (p->insn[i].op == QS_OP_STORE) {
            CHECK(!(p->insn[i].deps & QS_DEP_PUSH_NEXT), "the last STORE pushes a layer-stored token");
            break;
        }
    if (!bad) bad += check_tokens(net, p);
    if (!bad) bad += check_dma(net, a, p);
    return bad;
}

/* Compile; a program is checked, and the only acceptable failure is "does not
 * fit" (tight buffers). Returns 1 when it compiled. */
static int compile_checked(const qs_net *net, const qs_arch *a)
{
    qs_prog *p = NULL;
    qs_error e;
    qs_status st = qs_compile(net, a, &p, &e);
    if (st == QS_OK) check_program(net, a, p);
    else {
        int bad = 0;
        CHECK(st == QS_ERR_NOFIT, "compile failed (%d): %s", (int)st, e.msg);
    }
    qs_prog_destroy(p);
    return st == QS_OK;
}

/* ======================================================================
 * Tests
 * ====================================================================== */

static const char *const DF_NAME[3] = {"ws", "os", "is"};
static const char *const SKIP_NAME[5] = {"none", "gate", "weights", "activations", "both"};

/* Base INI with small buffers; callers add overrides. */
static void arch_ini(char *buf, size_t n, int rows, int cols, const char *df, int wpb, const char *skip, int group,
                     int ikib, int wkib, int akib, int dbl)
{
    snprintf(buf, n,
             "[general]\nname = t\n"
             "[array]\nrows = %d\ncols = %d\ndataflow = %s\nweight_path_bits = %d\nmax_weight_bits = 8\n"
             "max_act_bits = 8\nzero_skip = %s\nskip_group = %d\nacc_bits = 32\n"
             "[buffer.ifmap]\nsize_kib = %d\nbanks = 2\nbank_width_bytes = 8\ndouble_buffer = %d\n"
             "[buffer.weight]\nsize_kib = %d\nbanks = 2\nbank_width_bytes = 8\ndouble_buffer = %d\n"
             "[buffer.accum]\nsize_kib = %d\nbanks = 2\nbank_width_bytes = 8\ndouble_buffer = %d\n",
             rows, cols, df, wpb, skip, group, ikib, dbl, wkib, dbl, akib, dbl);
}

static int g_cases_compiled, g_cases_nofit, g_insns_checked;

static void run_random_cases(int n_cases, uint64_t seed)
{
    static const int SHAPES[][2] = {{4, 4}, {2, 3}, {8, 4}, {3, 5}, {16, 16}, {1, 6}, {6, 1}, {5, 8}};
    rn_rng r = {seed};
    rn_limits lim = {8, 8, 12, 12, 24, 60000, 2, 0.25};
    for (int it = 0; it < n_cases; it++) {
        rn_spec s;
        rn_random_spec(&r, &lim, &s);
        qs_net *net = rn_build(&s);
        qs_error e;
        if (qs_net_validate(net, "rand", &e) != QS_OK) {
            fprintf(stderr, "\n  generated network invalid: %s\n", e.msg);
            CU_FAIL("generated network invalid");
            qs_net_destroy(net);
            continue;
        }
        int df = it % 3;
        const int *sh = SHAPES[rn_int(&r, 0, 7)];
        static const int WPB[4] = {1, 2, 4, 8};
        int wpb = WPB[rn_int(&r, 0, 3)];
        int skip = rn_int(&r, 0, 4);
        /* a divisor of rows as skip group */
        int grp = 1;
        for (int t = 0; t < 4; t++) {
            int gg = rn_int(&r, 1, sh[0]);
            if (sh[0] % gg == 0) grp = gg;
        }
        int ikib = rn_int(&r, 1, 3), wkib = rn_int(&r, 1, 2), akib = rn_int(&r, 1, 2);
        int dbl = rn_chance(&r, 0.8);
        char ini[2048];
        arch_ini(ini, sizeof ini, 4, 4, "os", 2, "none", 1, ikib, wkib, akib, dbl);
        char o1[64], o2[64], o3[64], o4[64], o5[64], o6[64];
        snprintf(o1, sizeof o1, "array.rows=%d", sh[0]);
        snprintf(o2, sizeof o2, "array.cols=%d", sh[1]);
        snprintf(o3, sizeof o3, "array.dataflow=%s", DF_NAME[df]);
        snprintf(o4, sizeof o4, "array.weight_path_bits=%d", wpb);
        snprintf(o5, sizeof o5, "array.zero_skip=%s", SKIP_NAME[skip]);
        snprintf(o6, sizeof o6, "array.skip_group=%d", grp);
        const char *ov[6] = {o1, o2, o3, o4, o5, o6};
        qs_arch a;
        if (!rn_arch(ini, ov, 6, &a)) {
            qs_net_destroy(net);
            continue;
        }
        char desc[1024], cs[1300];
        rn_describe(&s, desc, sizeof desc);
        snprintf(cs, sizeof cs, "case %d: %dx%d %s wpb %d skip %s buffers %d/%d/%d KiB%s; %s", it, sh[0], sh[1],
                 DF_NAME[df], wpb, SKIP_NAME[skip], ikib, wkib, akib, dbl ? " double" : "", desc);
        g_case = cs;
        qs_prog *p = NULL;
        qs_status st = qs_compile(net, &a, &p, &e);
        if (st == QS_ERR_NOFIT) {
            /* allowed for small buffers, but then the message names a layer */
            int named = 0;
            for (int li = 1; li < net->n_layers; li++)
                if (strstr(e.msg, net->layers[li].name)) named = 1;
            int bad = 0;
            CHECK(named, "NOFIT message names no layer: %s", e.msg);
            g_cases_nofit++;
        } else {
            int bad = 0;
            CHECK(st == QS_OK, "compile failed (%d): %s", (int)st, e.msg);
            if (st == QS_OK) {
                if (check_program(net, &a, p) && getenv("QS_TEST_LISTING")) qs_compile_listing(p, net, 1, stderr);
                g_cases_compiled++;
                g_insns_checked += p->n_insn;
            }
            (void)bad;
        }
        qs_prog_destroy(p);
        qs_net_destroy(net);
    }
    g_case = "";
}

static void test_random_programs(void)
{
    g_cases_compiled = g_cases_nofit = g_insns_checked = 0;
    run_random_cases(1200, 0x51C0FFEEull);
    printf("\n    %d programs checked (%d instructions), %d refused as NOFIT ", g_cases_compiled, g_insns_checked,
           g_cases_nofit);
    CU_ASSERT(g_cases_compiled >= 1000);
}

/* Larger layers against tiny buffers: many tiles and k-chunks per layer. */
static void test_tight_buffers(void)
{
    rn_rng r = {0xB0FFE2ull};
    rn_limits lim = {8, 8, 16, 16, 32, 150000, 1, 0.2};
    int compiled = 0;
    for (int it = 0; it < 300; it++) {
        rn_spec s;
        rn_random_spec(&r, &lim, &s);
        qs_net *net = rn_build(&s);
        int df = it % 3;
        char ini[2048];
        arch_ini(ini, sizeof ini, 4, 4, DF_NAME[df], rn_chance(&r, 0.5) ? 2 : 4, rn_chance(&r, 0.5) ? "both" : "none", 2,
                 1, 1, 1, 1);
        qs_arch a;
        if (!rn_arch(ini, NULL, 0, &a)) {
            qs_net_destroy(net);
            continue;
        }
        char desc[1024], cs[1200];
        rn_describe(&s, desc, sizeof desc);
        snprintf(cs, sizeof cs, "tight %d: %s 1/1/1 KiB; %s", it, DF_NAME[df], desc);
        g_case = cs;
        compiled += compile_checked(net, &a);
        qs_net_destroy(net);
    }
    g_case = "";
    printf("\n    %d of 300 compiled ", compiled);
    CU_ASSERT(compiled >= 150);
}

/* A hand-made conv layer (for the refusal tests). */
static qs_net *one_conv(int c, int h, int w, int k, int out_c, qs_dtype wdt, int abits, const char *name)
{
    qs_net *net = rn_one_conv(c, h, w, k, out_c, wdt, abits, 4, 7);
    snprintf(net->layers[1].name, sizeof net->layers[1].name, "%s", name);
    return net;
}

static void test_nofit(void)
{
    /* a 3-row window of a 3000-pixel-wide 8-bit image does not fit a 512-byte half */
    for (int df = 0; df < 3; df++) {
        qs_net *net = one_conv(1, 4, 3000, 3, 4, QS_DT_INT8, 8, "huge_row_conv");
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "t", &e), QS_OK);
        char ini[2048];
        arch_ini(ini, sizeof ini, 4, 4, DF_NAME[df], 2, "none", 1, 1, 1, 1, 1);
        qs_arch a;
        CU_ASSERT_FATAL(rn_arch(ini, NULL, 0, &a));
        qs_prog *p = (qs_prog *)0x1;
        qs_status st = qs_compile(net, &a, &p, &e);
        if (st != QS_ERR_NOFIT) fprintf(stderr, "\n  %s: status %d: %s\n", DF_NAME[df], (int)st, e.msg);
        CU_ASSERT_EQUAL(st, QS_ERR_NOFIT);
        CU_ASSERT_PTR_NULL(p);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "huge_row_conv"));
        /* the same layer fits once the ifmap buffer is large enough */
        const char *ov[1] = {"buffer.ifmap.size_kib=64"};
        CU_ASSERT_FATAL(rn_arch(ini, ov, 1, &a));
        st = qs_compile(net, &a, &p, &e);
        if (st != QS_OK) fprintf(stderr, "\n  %s: %s\n", DF_NAME[df], e.msg);
        CU_ASSERT_EQUAL(st, QS_OK);
        if (st == QS_OK) {
            g_case = "nofit-then-fits";
            check_program(net, &a, p);
            qs_prog_destroy(p);
        }
        qs_net_destroy(net);
    }
    /* a PPU-only layer whose one channel does not fit */
    {
        qs_net *net = one_conv(1, 64, 64, 1, 2, QS_DT_INT4, 8, "c1");
        /* append a maxpool over the 2x64x64 output: one channel = 4096 B in, 16 KiB out */
        qs_layer *ls = qs_realloc(net->layers, 3 * sizeof *ls);
        net->layers = ls;
        qs_layer *mp = &ls[2];
        memset(mp, 0, sizeof *mp);
        snprintf(mp->name, sizeof mp->name, "bigpool");
        mp->kind = QS_L_MAXPOOL;
        mp->n_inputs = 1;
        mp->inputs[0] = 1;
        mp->weight = mp->bias = -1;
        mp->kh = mp->kw = mp->stride_h = mp->stride_w = 1;
        mp->dil_h = mp->dil_w = 1;
        mp->out_c = 2;
        mp->out_h = mp->out_w = 64;
        mp->out_bits = ls[1].out_bits;
        mp->out_zp = ls[1].out_zp;
        mp->clamp_lo = ls[1].clamp_lo;
        mp->clamp_hi = ls[1].clamp_hi;
        net->n_layers = 3;
        net->output = 2;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "t", &e), QS_OK);
        char ini[2048];
        arch_ini(ini, sizeof ini, 4, 4, "os", 2, "none", 1, 8, 8, 1, 1);
        qs_arch a;
        CU_ASSERT_FATAL(rn_arch(ini, NULL, 0, &a));
        qs_prog *p = NULL;
        qs_status st = qs_compile(net, &a, &p, &e);
        CU_ASSERT_EQUAL(st, QS_ERR_NOFIT);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bigpool"));
        qs_prog_destroy(p);
        qs_net_destroy(net);
    }
}

static void test_unsupported(void)
{
    qs_error e;
    char ini[2048];
    qs_arch a;
    qs_prog *p;
    /* 8-bit weights on a datapath of at most 4 */
    qs_net *net = one_conv(2, 5, 5, 3, 3, QS_DT_INT8, 4, "wide_weights");
    CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "t", &e), QS_OK);
    arch_ini(ini, sizeof ini, 4, 4, "ws", 2, "none", 1, 8, 8, 8, 1);
    const char *ov[1] = {"array.max_weight_bits=4"};
    CU_ASSERT_FATAL(rn_arch(ini, ov, 1, &a));
    p = (qs_prog *)0x1;
    CU_ASSERT_EQUAL(qs_compile(net, &a, &p, &e), QS_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "wide_weights"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "8"));
    qs_net_destroy(net);
    /* 4-bit weights are fine there; 2-bit on a 1-bit datapath are not, bipolar is */
    static const struct { qs_dtype dt; int mwb, wpb; qs_status want; } W[] = {
        {QS_DT_INT4, 4, 2, QS_OK}, {QS_DT_INT2, 1, 1, QS_ERR_UNSUPPORTED}, {QS_DT_BIPOLAR, 1, 1, QS_OK},
        {QS_DT_INT8, 8, 8, QS_OK}, {QS_DT_INT4, 2, 2, QS_ERR_UNSUPPORTED}};
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++) {
        net = one_conv(2, 5, 5, 3, 3, W[i].dt, 4, "wl");
        char o1[48], o2[48];
        snprintf(o1, sizeof o1, "array.max_weight_bits=%d", W[i].mwb);
        snprintf(o2, sizeof o2, "array.weight_path_bits=%d", W[i].wpb);
        const char *ov2[2] = {o1, o2};
        CU_ASSERT_FATAL(rn_arch(ini, ov2, 2, &a));
        p = NULL;
        qs_status st = qs_compile(net, &a, &p, &e);
        if (st != W[i].want) fprintf(stderr, "\n  case %zu: status %d: %s\n", i, (int)st, st ? e.msg : "");
        CU_ASSERT_EQUAL(st, W[i].want);
        if (st) CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "wl"));
        qs_prog_destroy(p);
        qs_net_destroy(net);
    }
    /* 8-bit activations on a 4-bit multiplier */
    net = one_conv(2, 5, 5, 3, 3, QS_DT_INT2, 8, "wide_acts");
    const char *ov3[1] = {"array.max_act_bits=4"};
    CU_ASSERT_FATAL(rn_arch(ini, ov3, 1, &a));
    CU_ASSERT_EQUAL(qs_compile(net, &a, &p, &e), QS_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "wide_acts"));
    qs_net_destroy(net);
    /* pooling without [ppu] pool */
    net = one_conv(1, 6, 6, 1, 2, QS_DT_INT4, 4, "c1");
    qs_layer *ls = qs_realloc(net->layers, 3 * sizeof *ls);
    net->layers = ls;
    memset(&ls[2], 0, sizeof ls[2]);
    snprintf(ls[2].name, sizeof ls[2].name, "the_pool");
    ls[2].kind = QS_L_GAP;
    ls[2].n_inputs = 1;
    ls[2].inputs[0] = 1;
    ls[2].weight = ls[2].bias = -1;
    ls[2].out_c = 2;
    ls[2].out_h = ls[2].out_w = 1;
    ls[2].out_bits = 8;
    ls[2].clamp_hi = 255;
    net->n_layers = 3;
    net->output = 2;
    CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "t", &e), QS_OK);
    const char *ov4[1] = {"ppu.pool=0"};
    CU_ASSERT_FATAL(rn_arch(ini, ov4, 1, &a));
    CU_ASSERT_EQUAL(qs_compile(net, &a, &p, &e), QS_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "the_pool"));
    qs_net_destroy(net);
}

/* The .qprog file holds the header and the instructions as encoded. */
static void test_prog_save(void)
{
    rn_rng r = {99};
    rn_limits lim = {8, 8, 8, 6, 8, 20000, 2, 0.3};
    rn_spec s;
    rn_random_spec(&r, &lim, &s);
    qs_net *net = rn_build(&s);
    char ini[2048];
    arch_ini(ini, sizeof ini, 4, 4, "ws", 2, "weights", 1, 2, 2, 2, 1);
    qs_arch a;
    CU_ASSERT_FATAL(rn_arch(ini, NULL, 0, &a));
    qs_prog *p;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
    char path[] = "/tmp/qsim_test_prog_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(qs_prog_save(p, path, &e), QS_OK);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint8_t hdr[32];
    CU_ASSERT_EQUAL(fread(hdr, 1, 32, f), 32);
    CU_ASSERT_EQUAL(memcmp(hdr, "QSIMPRG", 8), 0);
    uint32_t v[6];
    for (int i = 0; i < 6; i++) v[i] = hdr[8 + 4 * i] | hdr[9 + 4 * i] << 8 | hdr[10 + 4 * i] << 16 | (uint32_t)hdr[11 + 4 * i] << 24;
    CU_ASSERT_EQUAL(v[0], QS_PROG_VERSION);
    CU_ASSERT_EQUAL(v[1], (uint32_t)p->n_insn);
    CU_ASSERT_EQUAL(v[2], p->dram_bytes);
    CU_ASSERT_EQUAL(v[3], (uint32_t)p->init_slots);
    CU_ASSERT_EQUAL(v[4], (uint32_t)p->init_accum);
    CU_ASSERT_EQUAL(v[5], 0);
    for (int32_t i = 0; i < p->n_insn; i++) {
        uint8_t b[QS_INSN_BYTES];
        qs_insn in;
        CU_ASSERT_EQUAL_FATAL(fread(b, 1, sizeof b, f), sizeof b);
        CU_ASSERT_EQUAL_FATAL(qs_insn_decode(b, &in, &e), QS_OK);
        CU_ASSERT(in.op == p->insn[i].op && in.deps == p->insn[i].deps && in.m0 == p->insn[i].m0 &&
                  in.k_len == p->insn[i].k_len);
    }
    CU_ASSERT_EQUAL(fgetc(f), EOF);
    fclose(f);
    unlink(path);
    /* an unwritable path is an I/O error naming it */
    CU_ASSERT_EQUAL(qs_prog_save(p, "/nonexistent/dir/x.qprog", &e), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent/dir/x.qprog"));
    qs_prog_destroy(p);
    qs_net_destroy(net);
}

/* The listing runs on every dataflow without crashing and names each layer. */
static void test_listing(void)
{
    rn_rng r = {1234};
    rn_limits lim = {8, 8, 8, 6, 8, 20000, 2, 0.3};
    for (int df = 0; df < 3; df++) {
        rn_spec s;
        rn_random_spec(&r, &lim, &s);
        qs_net *net = rn_build(&s);
        char ini[2048];
        arch_ini(ini, sizeof ini, 4, 4, DF_NAME[df], 2, "both", 2, 2, 2, 2, 1);
        qs_arch a;
        CU_ASSERT_FATAL(rn_arch(ini, NULL, 0, &a));
        qs_prog *p;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        qs_compile_listing(p, net, 1, f);
        fclose(f);
        for (int li = 1; li < net->n_layers; li++) CU_ASSERT_PTR_NOT_NULL(strstr(buf, net->layers[li].name));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "GEMM"));
        free(buf);
        qs_prog_destroy(p);
        qs_net_destroy(net);
    }
}

/* The shipped networks (every layer kind: pools, add, concat, act, requant,
 * flatten) on random arrays and buffers of every dataflow. */
static void test_shipped_nets(void)
{
    static const char *NETS[6] = {"models/nets/tiny.qbin", "models/nets/demo_w2a4.qbin",
                                  "models/nets/xfmr_tiny.qbin", "models/nets/decoder_tiny.qbin",
                                  "models/nets/lm_tiny.qbin", "models/nets/decoder_kv.qbin"};
    rn_rng r = {4242};
    int compiled = 0;
    for (int k = 0; k < 6; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", QSIM_SOURCE_DIR, NETS[k]);
        qs_net *net = NULL;
        qs_error e;
        qs_status st = qs_net_load(path, &net, &e);
        if (st) fprintf(stderr, "\n  %s\n", e.msg);
        CU_ASSERT_EQUAL_FATAL(st, QS_OK);
        for (int it = 0; it < 60; it++) {
            static const int SH[][2] = {{4, 4}, {8, 8}, {2, 5}, {16, 16}, {3, 1}};
            const int *sh = SH[rn_int(&r, 0, 4)];
            char ini[2048];
            arch_ini(ini, sizeof ini, sh[0], sh[1], DF_NAME[it % 3], rn_chance(&r, 0.5) ? 2 : 4,
                     SKIP_NAME[rn_int(&r, 0, 4)], 1, rn_int(&r, 1, 8), rn_int(&r, 1, 8), rn_int(&r, 1, 4),
                     rn_chance(&r, 0.8));
            qs_arch a;
            if (!rn_arch(ini, NULL, 0, &a)) continue;
            char cs[256];
            snprintf(cs, sizeof cs, "%s on %dx%d %s, %s", NETS[k], sh[0], sh[1], DF_NAME[it % 3], qs_zero_skip_name(a.zero_skip));
            g_case = cs;
            compiled += compile_checked(net, &a);
        }
        qs_net_destroy(net);
    }
    g_case = "";
    printf("\n    %d of 360 compiled ", compiled);
    CU_ASSERT(compiled >= 270);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("compiler", NULL, NULL);
    CU_add_test(s, "random networks x dataflows x arrays x buffers", test_random_programs);
    CU_add_test(s, "tight buffers: many tiles and k-chunks", test_tight_buffers);
    CU_add_test(s, "shipped networks (every layer kind)", test_shipped_nets);
    CU_add_test(s, "NOFIT names the layer", test_nofit);
    CU_add_test(s, "unsupported widths name the layer", test_unsupported);
    CU_add_test(s, "program file", test_prog_save);
    CU_add_test(s, "listing", test_listing);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}

#endif /* QS_RANDNET_ONLY */
