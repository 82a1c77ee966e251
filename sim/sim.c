/* The three instruction queues, the DMA engine with its DRAM channel, the
 * post-processing unit, and the bookkeeping of cycles and stalls per layer.
 * docs/timing.md ("Queues and tokens", "DMA and DRAM", "Post-processing",
 * "Stall attribution") is the specification. */
#include "sim.h"
#include "qs_alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define QS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QS_ASAN 1
#endif
#endif
#ifndef QS_ASAN
#define QS_ASAN 0
#endif
#if QS_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "dma.h"
#include "mem_image.h"
#include "qs_xfmr.h"
#include "value_cache.h"

enum { CH_LD_CMP = 0, CH_CMP_LD, CH_CMP_ST, CH_ST_CMP, CH_ST_LD, CH_COUNT };

/* What a queue is doing. STORE has two phases: post-processing, then DMA. */
typedef enum { Q_IDLE = 0, Q_BUSY, Q_WAIT_DMA_AFTER_PPU } qstate;

typedef struct {
    int32_t pc;          /* next instruction of this queue (index into order[]) */
    qstate state;
    uint64_t done_at;    /* when the current phase ends */
    uint64_t dma_done;   /* LOAD/STORE: when its data has moved (> done_at with a non-blocking engine) */
    int32_t cur;         /* program index of the running instruction */
    uint64_t started;    /* when it started, and (STORE) when its post-processing ended */
    uint64_t ppu_end;
} queue_state;

/* A LOAD/STORE whose requests are issued and whose data still moves: its
 * tokens are pushed when it completes, in program order. */
typedef struct {
    int32_t idx;
    uint64_t done, started, ppu_end;
} in_flight;

struct qs_sim {
    const qs_net *net;
    const qs_prog *prog;
    qs_engine engine;
    int32_t **outputs;       /* per layer, CHW, inside output_block */
    int32_t *output_block;   /* every layer's output, one block (see qs_sim_create) */
    int32_t *accum;
    qs_array_ctx actx;
    qs_ssmem ssm;            /* scalesim convention: SCALE-Sim's memory model of layer ss_layer */
    int32_t ss_layer;        /* -1: none open */
    int32_t ss_row_layer;    /* the layer ss_row describes (-1: none) */
    const qs_scalesim_layer *ss_row;
    int32_t *qorder[QS_Q_COUNT];  /* per queue: program indices in order */
    int32_t qlen[QS_Q_COUNT];
    qs_layer_stats *stats;
    uint64_t total_cycles;
    int input_set;
    /* run state: everything the loop needs between qs_sim_advance calls */
    int running;
    int64_t tokens[CH_COUNT];
    queue_state q[QS_Q_COUNT];
    uint64_t now, dram_free, ppu_busy_until;
    uint64_t dram_bytes;     /* bytes of the transfer on the DRAM channel */
    qs_sim_dma_fn dma_hook;
    qs_sim_insn_fn insn_hook;
    void *insn_user;
    void *dma_user;
    qs_dram *dram;           /* the bank-level model, NULL under model = simple */
    qs_dma *dma;             /* the DMA engines (sim/dma.c) */
    int has_backend;         /* a memory backend is attached (model = tlm) */
    qs_mem_image *img;       /* DRAM contents, built on the first qs_sim_read_dram */
    in_flight *fly[QS_Q_COUNT];       /* per LOAD/STORE queue: a FIFO of transfers in flight */
    int32_t fly_head[QS_Q_COUNT], fly_n[QS_Q_COUNT];
    qs_dram_trace_fn dram_trace;
    void *dram_trace_user;
    /* waveform */
    qs_trace *tr;
    uint64_t tr_from, tr_to;
    uint16_t tr_layer;  /* layer of the GEMM that started last, traced or not */
    int tr_started;     /* the window's first time point has been written */
    int32_t tv[32];
    struct qs_pe_log *pend;  /* PE activity of the running GEMM not yet written */
    uint64_t pend_len, pend_i, pend_cap, pend_t0;
    /* the network's kept layer outputs (value_cache.h; NULL: none), and
     * whether this program's outputs depend on the network and input alone */
    qs_value_cache *vc;
    int vc_eligible;
};

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- set-up ------------------------------------------------------------------- */

/* Layers whose output is their input's memory under a new shape. */
static int is_view(const qs_layer *L)
{ /* a kvcache over a prompt (no cached rows) is its input itself (docs/decode.md) */
    return L->kind == QS_L_FLATTEN || L->kind == QS_L_RESHAPE || (L->kind == QS_L_KVCACHE && L->weight < 0);
}

static int64_t layer_elems(const qs_layer *L) { return (int64_t)L->out_c * L->out_h * L->out_w; }

qs_status qs_sim_create(const qs_net *net, const qs_prog *prog, qs_engine engine, qs_sim **out, qs_error *err)
{
    *out = NULL;
    qs_sim *s = qs_calloc(1, sizeof *s);
    if (!s) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
    s->ss_layer = -1;
    s->ss_row_layer = -1;
    s->net = net;
    s->prog = prog;
    s->engine = engine;
    s->outputs = qs_calloc((size_t)net->n_layers, sizeof *s->outputs);
    s->stats = qs_calloc((size_t)net->n_layers, sizeof *s->stats);
    int64_t max_acc = 1;
    if (!s->outputs || !s->stats) goto oom;
    /* The layers' outputs in one block: one big allocation takes huge pages
     * (qs_calloc_big) where many small ones would each fault page by page.
     * Each output starts on a 64-byte boundary, with one spare element. */
    size_t block = 0;
    for (int32_t i = 0; i < net->n_layers; i++)
        if (!is_view(&net->layers[i])) block += ((size_t)layer_elems(&net->layers[i]) + 1 + 15) & ~(size_t)15;
    s->output_block = qs_calloc_big(block, sizeof(int32_t));
    if (!s->output_block) goto oom;
    block = 0;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        if (is_view(L)) continue; /* a view of its input */
        s->outputs[i] = s->output_block + block;
        block += ((size_t)layer_elems(L) + 1 + 15) & ~(size_t)15;
        const qs_layer_map *m = &prog->maps[i];
        if ((m->is_gemm || m->is_matmul) && (int64_t)m->g.groups * m->g.M * m->g.N > max_acc)
            max_acc = (int64_t)m->g.groups * m->g.M * m->g.N;
    }
    for (int32_t i = 0; i < net->n_layers; i++)
        if (is_view(&net->layers[i])) s->outputs[i] = s->outputs[net->layers[i].inputs[0]];
#if QS_ASAN
    /* sanitizer builds: the gap after each output is poisoned, so that a
     * write past a layer's end is caught as it would be with one block per layer */
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        if (is_view(L)) continue;
        size_t n = (size_t)layer_elems(L), stride = (n + 1 + 15) & ~(size_t)15;
        ASAN_POISON_MEMORY_REGION(s->outputs[i] + n, (stride - n) * sizeof(int32_t));
    }
#endif
    s->accum = qs_calloc_big((size_t)max_acc, sizeof(int32_t));
    if (!s->accum) goto oom;
    for (int q = 0; q < QS_Q_COUNT; q++) {
        s->qorder[q] = qs_malloc(sizeof(int32_t) * (size_t)(prog->n_insn + 1));
        if (!s->qorder[q]) goto oom;
    }
    for (int32_t i = 0; i < prog->n_insn; i++) {
        int q = qs_opcode_queue(prog->insn[i].op);
        s->qorder[q][s->qlen[q]++] = i;
    }
    uint32_t max_rows = 1;
    for (int32_t i = 0; i < prog->n_insn; i++)
        if (prog->insn[i].rows > max_rows) max_rows = prog->insn[i].rows;
    qs_status dst = QS_OK;
    if (qs_dram_is_bank_model(prog->arch.dram_model))
        dst = qs_dram_create(&prog->arch.dram, prog->arch.freq_mhz, &s->dram, err);
    if (!dst && s->dram) {
        /* the largest transfer's bursts: its bytes plus, per run, a partial burst at each end */
        size_t most = 1;
        uint64_t burst = qs_dram_burst_bytes(s->dram);
        for (int32_t i = 0; i < prog->n_insn; i++) {
            const qs_insn *in = &prog->insn[i];
            size_t n = (size_t)(in->bytes / burst) + 2 * (size_t)in->rows + 1;
            if ((in->op == QS_OP_LOAD || in->op == QS_OP_STORE) && n > most) most = n;
        }
        dst = qs_dram_reserve(s->dram, most, err);
    }
    if (!dst) dst = qs_dma_create(&prog->arch, s->dram, max_rows, &s->dma, err);
    if (dst) {
        qs_sim_destroy(s);
        return dst;
    }
    for (int q = 0; q < QS_Q_COUNT; q++) {
        s->fly[q] = qs_malloc(sizeof(in_flight) * (size_t)(s->qlen[q] + 1));
        if (!s->fly[q]) goto oom;
    }
    s->actx.net = net;
    s->actx.prog = prog;
    s->actx.arch = &prog->arch;
    s->actx.engine = engine;
    s->actx.outputs = s->outputs;
    s->actx.accum = s->accum;
    qs_status st = qs_array_ctx_init(&s->actx, err);
    if (st) {
        qs_sim_destroy(s);
        return st;
    }
    *out = s;
    return QS_OK;
oom:
    qs_sim_destroy(s);
    return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for layer buffers");
}

void qs_sim_destroy(qs_sim *s)
{
    if (!s) return;
    if (s->actx.values_known) qs_value_cache_release(s->vc); /* a run abandoned half way */
    if (s->ss_layer >= 0) qs_ssmem_end(&s->ssm);
    qs_free(s->output_block);
    qs_free(s->outputs);
    qs_free(s->stats);
    qs_free(s->accum);
    for (int q = 0; q < QS_Q_COUNT; q++) qs_free(s->qorder[q]);
    qs_array_ctx_free(&s->actx);
    qs_free(s->pend);
    qs_dma_destroy(s->dma);
    qs_dram_destroy(s->dram);
    qs_mem_image_destroy(s->img);
    for (int q = 0; q < QS_Q_COUNT; q++) qs_free(s->fly[q]);
    qs_free(s);
}

void qs_sim_set_scalesim_layer(qs_sim *s, int32_t layer, const qs_scalesim_layer *row)
{
    s->ss_row_layer = layer;
    s->ss_row = row;
}

qs_status qs_sim_set_input(qs_sim *s, const int32_t *data, int64_t count, qs_error *err)
{
    const qs_layer *L = &s->net->layers[0];
    if (count != layer_elems(L))
        return qs_fail(err, QS_ERR_ARG, "input has %lld values, the network's input layer '%s' takes %dx%dx%d = %lld",
                       (long long)count, L->name, L->out_c, L->out_h, L->out_w, (long long)layer_elems(L));
    int32_t lo, hi;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    for (int64_t i = 0; i < count; i++)
        if (data[i] < lo || data[i] > hi)
            return qs_fail(err, QS_ERR_ARG, "input value %d at index %lld is outside the input's %s%d range [%d, %d]",
                           data[i], (long long)i, L->out_signed ? "int" : "uint", L->out_bits, lo, hi);
    int32_t embed;
    const int64_t vocab = qs_xfmr_vocab(s->net, &embed);
    for (int64_t i = 0; i < count && embed >= 0; i++)
        if (data[i] >= vocab)
            return qs_fail(err, QS_ERR_ARG, "token id %d at index %lld is not below the vocabulary of %lld rows of "
                           "embed layer %d '%s'", data[i], (long long)i, (long long)vocab, (int)embed,
                           s->net->layers[embed].name);
    /* docs/qbin.md: the input layer's output is clamp(x, lo, hi); later layers read the clamped values */
    for (int64_t i = 0; i < count; i++)
        s->outputs[0][i] = data[i] < L->clamp_lo ? L->clamp_lo : data[i] > L->clamp_hi ? L->clamp_hi : data[i];
    s->input_set = 1;
    return QS_OK;
}

/* Deterministic pseudo-random input (xorshift) so that a run without --input
 * still exercises data-dependent skipping: about a third zeros. */
static void default_input(qs_sim *s)
{
    const qs_layer *L = &s->net->layers[0];
    int32_t lo, hi, embed;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    const int64_t vocab = qs_xfmr_vocab(s->net, &embed);
    if (embed >= 0 && vocab - 1 < hi) hi = (int32_t)(vocab - 1); /* token ids: below the vocabulary */
    uint32_t x = 2463534242u;
    for (int64_t i = 0; i < layer_elems(L); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int32_t v = (x % 3 == 0) ? 0 : lo + (int32_t)((x >> 8) % (uint32_t)((int64_t)hi - lo + 1));
        if (v < L->clamp_lo) v = L->clamp_lo; /* the input layer's clamp, as for --input */
        if (v > L->clamp_hi) v = L->clamp_hi;
        s->outputs[0][i] = v;
    }
}

/* ---- post-processing unit --------------------------------------------------------- */

static int32_t rq_mult(const qs_requant *rq, int32_t c) { return rq->n > 1 ? rq->mult[c] : rq->n ? rq->mult[0] : 1 << 30; }
static int8_t rq_shift(const qs_requant *rq, int32_t c) { return rq->n > 1 ? rq->shift[c] : rq->n ? rq->shift[0] : -1; }

static int32_t requant(const qs_layer *L, int32_t c, int64_t acc)
{
    if (L->rq.n == 0) { /* no requantization: clamp only */
        int64_t v = acc + L->out_zp;
        return (int32_t)(v < L->clamp_lo ? L->clamp_lo : v > L->clamp_hi ? L->clamp_hi : v);
    }
    return qs_requant_apply(acc, rq_mult(&L->rq, c), rq_shift(&L->rq, c), L->out_zp, L->clamp_lo, L->clamp_hi);
}

/* requant() for n accumulators of channel c, out[i] from acc[i]: the
 * channel's constants looked up once, the values in a loop without
 * branches (qs_requant_many). */
static void requant_many(const qs_layer *L, int32_t c, const int64_t *acc, int32_t n, int32_t *out)
{
    if (L->rq.n == 0) {
        for (int32_t i = 0; i < n; i++) {
            int64_t v = acc[i] + L->out_zp;
            out[i] = (int32_t)(v < L->clamp_lo ? L->clamp_lo : v > L->clamp_hi ? L->clamp_hi : v);
        }
        return;
    }
    qs_requant_many(acc, n, rq_mult(&L->rq, c), rq_shift(&L->rq, c), L->out_zp, L->clamp_lo, L->clamp_hi, out);
}

/* Values the post-processing unit requantizes at a time (a stack buffer). */
#define PPU_CHUNK 256

/* Post-process output tile of a STORE: values into the layer output, and the
 * element operations it costs (docs/timing.md, "Post-processing"). */
static int64_t ppu_execute(qs_sim *s, const qs_insn *in)
{
    const qs_net *net = s->net;
    const qs_layer *L = &net->layers[in->layer];
    const qs_layer_map *m = &s->prog->maps[in->layer];
    int32_t *out = s->outputs[in->layer];
    int64_t ops = 0;
    int64_t sums[PPU_CHUNK];
    if (m->is_gemm && s->actx.values_known) return (int64_t)in->m_len * in->n_len; /* the outputs are in place */
    if (m->is_gemm) {
        /* channel by channel: its outputs m0.. lie side by side in CHW */
        const int32_t HW = L->out_h * L->out_w, N = m->g.N;
        for (uint32_t j = 0; j < in->n_len; j++) {
            const int32_t n = (int32_t)(in->n0 + j), oc = in->group * N + n, bias = m->bias_folded[oc];
            const int32_t *acc = &s->accum[((size_t)in->group * m->g.M + in->m0) * N + n];
            for (uint32_t i0 = 0; i0 < in->m_len; i0 += PPU_CHUNK) {
                const int32_t len = (int32_t)(in->m_len - i0 < PPU_CHUNK ? in->m_len - i0 : PPU_CHUNK);
                for (int32_t i = 0; i < len; i++) {
                    int64_t b = (int64_t)acc[(size_t)(i0 + (uint32_t)i) * N] + bias;
                    /* the bias adder is 32 bits wide and saturates */
                    sums[i] = b > INT32_MAX ? INT32_MAX : b < INT32_MIN ? INT32_MIN : b;
                }
                requant_many(L, oc, sums, len, &out[(size_t)oc * HW + in->m0 + i0]);
            }
        }
        return (int64_t)in->m_len * in->n_len;
    }
    if (m->is_matmul) { /* accumulators [batch][M][N] -> output (batch, M, N), per-batch requant */
        const int32_t M = m->g.M, N = m->g.N, b = in->group;
        for (uint32_t i = 0; i < in->m_len; i++)
            for (uint32_t j = 0; j < in->n_len; j++) {
                size_t at = ((size_t)b * M + in->m0 + i) * N + in->n0 + j;
                out[at] = requant(L, b, s->accum[at]);
            }
        return (int64_t)in->m_len * in->n_len;
    }
    if (qs_layer_kind_is_v2(L->kind)) /* lut, mul, softmax, norms: models/xfmr.c */
        return qs_xfmr_ppu(net, in->layer, (const int32_t *const *)s->outputs, out, (int32_t)in->m0,
                           (int32_t)(in->m0 + in->m_len));
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const int32_t *x = s->outputs[L->inputs[0]];
    int32_t c0 = (int32_t)in->m0, c1 = (int32_t)(in->m0 + in->m_len);
    int32_t OH = L->out_h, OW = L->out_w, IH = IN->out_h, IW = IN->out_w;
    switch (L->kind) {
    case QS_L_MAXPOOL:
    case QS_L_AVGPOOL:
    case QS_L_GAP: {
        int32_t kh = L->kind == QS_L_GAP ? IH : L->kh, kw = L->kind == QS_L_GAP ? IW : L->kw;
        int32_t sh = L->kind == QS_L_GAP ? 1 : L->stride_h, sw = L->kind == QS_L_GAP ? 1 : L->stride_w;
        int32_t pt = L->kind == QS_L_GAP ? 0 : L->pad_t, pl = L->kind == QS_L_GAP ? 0 : L->pad_l;
        int32_t dh = L->kind == QS_L_GAP ? 1 : L->dil_h, dw = L->kind == QS_L_GAP ? 1 : L->dil_w;
        for (int32_t c = c0; c < c1; c++)
            for (int32_t oy = 0; oy < OH; oy++)
                for (int32_t ox = 0; ox < OW; ox++) {
                    int64_t acc = 0;
                    int32_t mx = INT32_MIN;
                    for (int32_t ky = 0; ky < kh; ky++)
                        for (int32_t kx = 0; kx < kw; kx++) {
                            int32_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
                            if (iy < 0 || ix < 0 || iy >= IH || ix >= IW) continue; /* padding: 0 after -za */
                            int32_t v = x[((size_t)c * IH + iy) * IW + ix];
                            if (v > mx) mx = v;
                            acc += v - IN->out_zp;
                        }
                    int32_t y;
                    if (L->kind == QS_L_MAXPOOL) {
                        y = mx < L->clamp_lo ? L->clamp_lo : mx > L->clamp_hi ? L->clamp_hi : mx;
                    } else {
                        y = requant(L, c, acc);
                    }
                    out[((size_t)c * OH + oy) * OW + ox] = y;
                    ops += (int64_t)kh * kw;
                }
        break;
    }
    case QS_L_ADD: {
        const qs_layer *IN2 = &net->layers[L->inputs[1]];
        const int32_t *x2 = s->outputs[L->inputs[1]];
        for (int32_t c = c0; c < c1; c++)
            for (int32_t i0 = 0; i0 < OH * OW; i0 += PPU_CHUNK) {
                const int32_t len = OH * OW - i0 < PPU_CHUNK ? OH * OW - i0 : PPU_CHUNK;
                const size_t at = (size_t)c * OH * OW + (size_t)i0;
                for (int32_t i = 0; i < len; i++)
                    sums[i] = (int64_t)(x[at + (size_t)i] - IN->out_zp) * L->add_mul[0] +
                              (int64_t)(x2[at + (size_t)i] - IN2->out_zp) * L->add_mul[1];
                requant_many(L, c, sums, len, &out[at]);
                ops += 2 * len;
            }
        break;
    }
    case QS_L_CONCAT: {
        int32_t base = 0;
        for (int32_t i = 0; i < L->n_inputs; i++) {
            const qs_layer *Ii = &net->layers[L->inputs[i]];
            const int32_t *xi = s->outputs[L->inputs[i]];
            for (int32_t c = 0; c < Ii->out_c; c++) {
                int32_t oc = base + c;
                if (oc < c0 || oc >= c1) continue;
                for (int32_t p = 0; p < OH * OW; p++) {
                    int32_t v = xi[(size_t)c * OH * OW + (size_t)p];
                    out[(size_t)oc * OH * OW + (size_t)p] = v < L->clamp_lo ? L->clamp_lo : v > L->clamp_hi ? L->clamp_hi : v;
                    ops++;
                }
            }
            base += Ii->out_c;
        }
        break;
    }
    case QS_L_ACT:
    case QS_L_REQUANT:
        for (int32_t c = c0; c < c1; c++)
            for (int32_t i = 0; i < OH * OW; i++) {
                size_t idx = (size_t)c * OH * OW + (size_t)i;
                int32_t y;
                if (L->kind == QS_L_ACT) {
                    int32_t v = x[idx];
                    y = v < L->clamp_lo ? L->clamp_lo : v > L->clamp_hi ? L->clamp_hi : v;
                } else {
                    y = requant(L, c, (int64_t)x[idx] - IN->out_zp);
                }
                out[idx] = y;
                ops++;
            }
        break;
    default:
        break;
    }
    return ops;
}

/* ---- DMA ------------------------------------------------------------------------ */


/* ---- waveforms ---------------------------------------------------------------------- */

/* Signal handles, declared once per trace (names: docs/waveforms.md). */
enum {
    TV_LOAD_PC, TV_COMPUTE_PC, TV_STORE_PC, TV_LOAD_BUSY, TV_COMPUTE_BUSY, TV_STORE_BUSY,
    TV_TOK0, TV_TOK_LAST = TV_TOK0 + CH_COUNT - 1,
    TV_DRAM_BUSY, TV_DRAM_BYTES, TV_LAYER, TV_ACTIVE, TV_GATED, TV_IDLE, TV_OVF, TV_PPU_BUSY, TV_COUNT
};

void qs_sim_set_trace(qs_sim *s, qs_trace *t, uint64_t from, uint64_t to)
{
    s->tr = t;
    s->pend_len = s->pend_i = 0;
    s->tr_from = from;
    s->tr_to = to;
    s->tr_layer = 0;
    s->tr_started = 0;
    if (!t) return;
    static const char *const tok_names[CH_COUNT] = {"tok_ld_cmp", "tok_cmp_ld", "tok_cmp_st", "tok_st_cmp", "tok_st_ld"};
    qs_trace_scope_push(t, "qsim");
    qs_trace_scope_push(t, "queues");
    s->tv[TV_LOAD_PC] = qs_trace_var(t, "load_pc", 32);
    s->tv[TV_COMPUTE_PC] = qs_trace_var(t, "compute_pc", 32);
    s->tv[TV_STORE_PC] = qs_trace_var(t, "store_pc", 32);
    s->tv[TV_LOAD_BUSY] = qs_trace_var(t, "load_busy", 1);
    s->tv[TV_COMPUTE_BUSY] = qs_trace_var(t, "compute_busy", 1);
    s->tv[TV_STORE_BUSY] = qs_trace_var(t, "store_busy", 1);
    for (int c = 0; c < CH_COUNT; c++) s->tv[TV_TOK0 + c] = qs_trace_var(t, tok_names[c], 8);
    qs_trace_scope_pop(t);
    qs_trace_scope_push(t, "dma");
    s->tv[TV_DRAM_BUSY] = qs_trace_var(t, "dram_busy", 1);
    s->tv[TV_DRAM_BYTES] = qs_trace_var(t, "dram_bytes_in_flight", 32);
    qs_trace_scope_pop(t);
    qs_trace_scope_push(t, "array");
    s->tv[TV_LAYER] = qs_trace_var(t, "layer", 16);
    s->tv[TV_ACTIVE] = qs_trace_var(t, "active_pes", 32);
    s->tv[TV_GATED] = qs_trace_var(t, "gated_pes", 32);
    s->tv[TV_IDLE] = qs_trace_var(t, "idle_pes", 32);
    s->tv[TV_OVF] = qs_trace_var(t, "overflows", 32);
    qs_trace_scope_pop(t);
    qs_trace_scope_push(t, "ppu");
    s->tv[TV_PPU_BUSY] = qs_trace_var(t, "busy", 1);
    qs_trace_scope_pop(t);
    qs_trace_scope_pop(t);
}

static int in_window(const qs_sim *s, uint64_t t) { return t >= s->tr_from && t <= s->tr_to; }
static void flush_pending(qs_sim *s, uint64_t upto);

/* Queue, token and DMA state at the current time point. */
static void trace_state(qs_sim *s)
{
    qs_trace *t = s->tr;
    if (!t) return;
    flush_pending(s, s->now);
    if (!in_window(s, s->now)) return;
    /* times are absolute cycles (a window keeps the run's numbering: the listing's and the report's) */
    qs_trace_time(t, s->now);
    if (!s->tr_started) { /* values known at the window's start, so nothing shows as undefined */
        s->tr_started = 1;
        qs_trace_value(t, s->tv[TV_LAYER], s->tr_layer);
        if (s->engine == QS_ENGINE_DETAILED) qs_trace_value(t, s->tv[TV_OVF], 0);
    }
    for (int qi = 0; qi < QS_Q_COUNT; qi++) {
        qs_trace_value(t, s->tv[TV_LOAD_PC + qi], (uint64_t)s->q[qi].pc);
        qs_trace_value(t, s->tv[TV_LOAD_BUSY + qi], s->q[qi].state != Q_IDLE);
    }
    for (int c = 0; c < CH_COUNT; c++) qs_trace_value(t, s->tv[TV_TOK0 + c], (uint64_t)s->tokens[c]);
    int dram = s->dram_free > s->now;
    qs_trace_value(t, s->tv[TV_DRAM_BUSY], (uint64_t)dram);
    qs_trace_value(t, s->tv[TV_DRAM_BYTES], dram ? s->dram_bytes : 0);
    qs_trace_value(t, s->tv[TV_PPU_BUSY], s->ppu_busy_until > s->now);
    if (s->q[QS_Q_COMPUTE].state == Q_IDLE) {
        qs_trace_value(t, s->tv[TV_ACTIVE], 0);
        qs_trace_value(t, s->tv[TV_GATED], 0);
        qs_trace_value(t, s->tv[TV_IDLE], (uint64_t)s->prog->arch.rows * (uint64_t)s->prog->arch.cols);
    }
}

/* Emit the pending per-clock PE activity up to time `upto` (the log of the
 * running GEMM extends into the future, and a waveform only moves forward). */
static void flush_pending(qs_sim *s, uint64_t upto)
{
    qs_trace *t = s->tr;
    uint64_t pes = (uint64_t)s->prog->arch.rows * (uint64_t)s->prog->arch.cols;
    for (; s->pend_i < s->pend_len && s->pend_t0 + s->pend_i <= upto; s->pend_i++) {
        uint64_t at = s->pend_t0 + s->pend_i;
        if (!in_window(s, at)) continue;
        const struct qs_pe_log *l = &s->pend[s->pend_i];
        qs_trace_time(t, at);
        qs_trace_value(t, s->tv[TV_ACTIVE], l->active);
        qs_trace_value(t, s->tv[TV_GATED], l->gated);
        qs_trace_value(t, s->tv[TV_IDLE], pes > (uint64_t)l->active + l->gated ? pes - l->active - l->gated : 0);
        qs_trace_value(t, s->tv[TV_OVF], l->overflows);
    }
}

/* PE activity of a GEMM that starts now: per clock with the detailed engine
 * (its log, emitted as time passes), as the tile's average with the fast one. */
static void trace_gemm(qs_sim *s, const qs_tile_result *r, uint16_t layer)
{
    qs_trace *t = s->tr;
    if (!t) return;
    flush_pending(s, UINT64_MAX);
    uint64_t pes = (uint64_t)s->prog->arch.rows * (uint64_t)s->prog->arch.cols;
    s->tr_layer = layer;
    if (in_window(s, s->now)) {
        qs_trace_time(t, s->now);
        qs_trace_value(t, s->tv[TV_LAYER], layer);
    }
    const qs_array_ctx *c = &s->actx;
    s->pend_len = s->pend_i = 0;
    s->pend_t0 = s->now;
    if (c->log && c->log_len) {
        if (c->log_len > s->pend_cap) {
            struct qs_pe_log *n = qs_realloc(s->pend, c->log_len * sizeof *n);
            if (!n) return; /* the waveform loses this tile's detail, the run goes on */
            s->pend = n;
            s->pend_cap = c->log_len;
        }
        memcpy(s->pend, c->log, c->log_len * sizeof *s->pend);
        s->pend_len = c->log_len;
    } else if (r->cycles && in_window(s, s->now)) {
        uint64_t act = r->ev.mac_ops / r->cycles, gat = r->ev.mac_gated / r->cycles;
        qs_trace_value(t, s->tv[TV_ACTIVE], act);
        qs_trace_value(t, s->tv[TV_GATED], gat);
        qs_trace_value(t, s->tv[TV_IDLE], pes > act + gat ? pes - act - gat : 0);
    }
}

/* ---- the run loop --------------------------------------------------------------------- */

static int chan_of(int q, int dir_next)
{
    /* dir_next: 1 = towards the next queue, 0 = towards the previous */
    switch (q) {
    case QS_Q_LOAD: return dir_next ? CH_LD_CMP : CH_ST_LD;
    case QS_Q_COMPUTE: return dir_next ? CH_CMP_ST : CH_CMP_LD;
    default: return dir_next ? CH_ST_LD : CH_ST_CMP;
    }
}

/* The channel a pop reads: LOAD pops "next" from CMP->LD, "prev" from ST->LD, and so on. */
static int pop_chan(int q, int from_next)
{
    switch (q) {
    case QS_Q_LOAD: return from_next ? CH_CMP_LD : CH_ST_LD;
    case QS_Q_COMPUTE: return from_next ? CH_ST_CMP : CH_LD_CMP;
    default: return from_next ? CH_ST_LD : CH_CMP_ST; /* STORE never pops "next" */
    }
}

/* A LOAD/STORE's DMA (sim/dma.c): returns when its queue may go on (a
 * blocking engine: when its data has moved) and sets *done to when its data
 * has moved. */
static uint64_t dram_request(qs_sim *s, const qs_insn *in, uint64_t *done)
{
    qs_dram_stats before;
    if (s->dram) before = *qs_dram_get_stats(s->dram);
    qs_dma_times t = qs_dma_transfer(s->dma, s->now, in, s->dram_trace, s->dram_trace_user);
    if (s->dram) qs_dram_stats_add_delta(&s->stats[in->layer].dram, qs_dram_get_stats(s->dram), &before);
    if (t.done > s->dram_free) s->dram_free = t.done;
    s->dram_bytes = in->bytes;
    if (s->dma_hook) { /* one call per run of the access pattern: the bytes really moved */
        for (uint32_t r = 0; r < in->rows; r++) {
            uint64_t first, count;
            qs_dma_row(in, r, &first, &count);
            if (count) s->dma_hook(s->dma_user, in->op == QS_OP_STORE, (uint32_t)first, (uint32_t)count, t.issued);
        }
        if (!in->bytes) s->dma_hook(s->dma_user, in->op == QS_OP_STORE, in->addr, 0, t.issued);
    }
    *done = t.done;
    return qs_dma_blocking(s->dma) ? t.done : t.issued;
}

/* A run whose outputs the value cache may give or keep: its program's
 * outputs depend on the network and the input alone (value_cache.h), and
 * nothing watches the values being made (an array hook co-simulates them, a
 * memory backend reads the DRAM image as it fills). */
static int values_cacheable(const qs_sim *s)
{
    return s->vc && s->vc_eligible && !s->actx.hook && !s->has_backend;
}

static int program_values_exact(const qs_net *net, const qs_prog *prog, qs_engine engine)
{
    if (engine != QS_ENGINE_FAST) return 0;
    for (int32_t i = 1; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        const qs_layer_map *m = &prog->maps[i];
        if (qs_layer_kind_is_v2(L->kind) || L->kind == QS_L_MATMUL || m->is_matmul) return 0;
        if (m->is_gemm && !m->overflow_free) return 0;
    }
    return 1;
}

void qs_sim_set_value_cache(qs_sim *s, qs_value_cache *vc)
{
    if (s->actx.values_known) qs_value_cache_release(s->vc);
    s->actx.vc = NULL;
    s->vc = vc;
    s->vc_eligible = vc && program_values_exact(s->net, s->prog, s->engine);
    s->actx.values_known = 0;
}

qs_status qs_sim_start(qs_sim *s, qs_error *err)
{
    if (s->prog->arch.dram_model == QS_DRAM_TLM && !s->has_backend) {
        s->running = 0;
        return qs_fail(err, QS_ERR_ARG, "[dram] model = tlm: no memory backend is attached; only the SystemC wrapper "
                       "(sim/systemc, docs/systemc.md) provides one; outside it use model = simple or a bank-level "
                       "preset (ddr4_3200, lpddr4_4266, lpddr5_6400, hbm2)");
    }
    if (!s->input_set) default_input(s);
    /* outputs that depend on the network and the input alone: from the cache
     * when it holds this input's (the array and the PPU then leave them be) */
    if (s->actx.values_known) qs_value_cache_release(s->vc); /* a run abandoned half way */
    s->actx.values_known = values_cacheable(s) && qs_value_cache_fetch(s->vc, s->outputs);
    s->actx.vc = s->actx.values_known ? s->vc : NULL;
    s->actx.zb_layer = s->actx.wzb_layer = -1; /* the kept set may have been replaced since */
    if (s->ss_layer >= 0) qs_ssmem_end(&s->ssm); /* a run abandoned half way */
    s->ss_layer = -1;
    s->actx.ssm = NULL;
    memset(s->stats, 0, sizeof(qs_layer_stats) * (size_t)s->net->n_layers);
    if (s->actx.tile_count) memset(s->actx.tile_count, 0, sizeof *s->actx.tile_count * (size_t)s->net->n_layers);
    memset(s->tokens, 0, sizeof s->tokens);
    s->tokens[CH_CMP_LD] = s->prog->init_slots;
    s->tokens[CH_ST_CMP] = s->prog->init_accum;
    memset(s->q, 0, sizeof s->q);
    s->now = s->dram_free = s->ppu_busy_until = 0;
    if (s->dram) qs_dram_reset(s->dram);
    qs_dma_reset(s->dma);
    memset(s->fly_head, 0, sizeof s->fly_head);
    memset(s->fly_n, 0, sizeof s->fly_n);
    s->dram_bytes = 0;
    s->total_cycles = 0;
    s->running = 1;
    return QS_OK;
}

/* Per-layer spans once the program is done: layers are separated by the
 * barrier, so each spans from the previous layer's last store to its own. */
static qs_status finish_run(qs_sim *s, qs_error *err)
{
    const qs_prog *p = s->prog;
    const qs_arch *a = &p->arch;
    const qs_net *net = s->net;
    uint64_t prev_end = 0;
    for (int32_t li = 1; li < net->n_layers; li++) {
        qs_layer_stats *ls = &s->stats[li];
        const qs_layer_map *m = &p->maps[li];
        if (m->n_insn == 0) {
            ls->start = ls->end = prev_end;
            continue;
        }
        ls->start = prev_end;
        ls->cycles = ls->end - ls->start;
        prev_end = ls->end;
        uint64_t accounted = ls->array_busy + ls->stall_dram + ls->stall_ppu + ls->stall_dep;
        if (ls->cycles > accounted) ls->stall_dep += ls->cycles - accounted;
        ls->ev.cycles = ls->cycles;
        /* skipped = the layer's dense slice operations that never reached a PE */
        if (m->is_gemm || m->is_matmul) {
            uint64_t dense = (uint64_t)qs_layer_macs(net, li) * (uint64_t)m->slices;
            uint64_t done = ls->ev.mac_ops + ls->ev.mac_gated;
            ls->ev.mac_skipped = dense > done ? dense - done : 0;
            ls->ev.macs = (uint64_t)qs_layer_macs(net, li);
            uint64_t pe_cycles = (uint64_t)a->rows * a->cols * ls->cycles;
            ls->ev.pe_idle = pe_cycles > done ? pe_cycles - done : 0;
        }
    }
    s->total_cycles = prev_end;
    if (s->dram) {
        /* rows still open stay open to the end of the run, and posted writes drain: the last layer's */
        int32_t last = net->n_layers - 1;
        qs_dram_stats before = *qs_dram_get_stats(s->dram);
        qs_dram_drain(s->dram); /* writes still posted count (energy, bursts) in the last layer */
        qs_dram_finish(s->dram, qs_dram_to_dram_cycle(s->dram, s->total_cycles));
        qs_dram_stats_add_delta(&s->stats[last].dram, qs_dram_get_stats(s->dram), &before);
        for (int32_t li = 1; li < net->n_layers; li++) {
            qs_layer_stats *ls = &s->stats[li];
            ls->ev.dram_acts = ls->dram.acts;
            ls->ev.dram_rd_bursts = ls->dram.reads;
            ls->ev.dram_wr_bursts = ls->dram.writes;
            ls->ev.dram_refreshes = ls->dram.refreshes;
            ls->ev.dram_bank_active = ls->dram.bank_active;
        }
    }
    int ss_short = s->ss_layer >= 0 && qs_ssmem_end(&s->ssm) < 0;
    s->ss_layer = -1;
    s->actx.ssm = NULL;
    s->running = 0;
    if (s->tr) flush_pending(s, UINT64_MAX);
    if (ss_short) return qs_fail(err, QS_ERR_NOMEM, "out of memory draining SCALE-Sim's ofmap buffer");
    if (s->actx.values_known) {
        qs_value_cache_release(s->vc);
        s->actx.values_known = 0;
        s->actx.vc = NULL;
    } else if (values_cacheable(s)) {
        qs_value_cache_store(s->vc, (const int32_t *const *)s->outputs);
    }
    return QS_OK;
}

/* Starts what can start at s->now, LOAD before COMPUTE before STORE, until
 * nothing more can (a zero-cycle PASS can unblock the next queue). */
static qs_status start_ready(qs_sim *s, qs_error *err)
{
    const qs_prog *p = s->prog;
    const qs_arch *a = &p->arch;
    int progressed = 1;
    while (progressed) {
        progressed = 0;
        for (int qi = 0; qi < QS_Q_COUNT; qi++) {
            queue_state *Q = &s->q[qi];
            if (Q->state != Q_IDLE || Q->pc >= s->qlen[qi]) continue;
            int32_t idx = s->qorder[qi][Q->pc];
            const qs_insn *in = &p->insn[idx];
            int cp = (in->deps & QS_DEP_POP_PREV) ? pop_chan(qi, 0) : -1;
            int cn = (in->deps & QS_DEP_POP_NEXT) ? pop_chan(qi, 1) : -1;
            if ((cp >= 0 && s->tokens[cp] <= 0) || (cn >= 0 && s->tokens[cn] <= 0)) continue;
            if (cp >= 0) s->tokens[cp]--;
            if (cn >= 0) s->tokens[cn]--;
            qs_layer_stats *ls = &s->stats[in->layer];
            Q->cur = idx;
            Q->state = Q_BUSY;
            Q->started = Q->ppu_end = s->now;
            if (in->op == QS_OP_LOAD) {
                Q->done_at = dram_request(s, in, &Q->dma_done);
                ls->ev.dram_read_bytes += in->bytes;
                ls->ev.sram_write_bytes[in->mem] += in->bytes;
            } else if (in->op == QS_OP_GEMM || in->op == QS_OP_PASS) {
                if (in->op == QS_OP_GEMM) {
                    qs_tile_result r;
                    if (s->actx.log_len) memset(s->actx.log, 0, s->actx.log_len * sizeof *s->actx.log);
                    s->actx.log_len = 0;
                    /* a hook may run some layers of a fast-engine simulator on the detailed
                     * engine (both give the same answers, docs/timing.md) */
                    s->actx.engine = s->engine;
                    if (s->actx.hook && s->engine == QS_ENGINE_FAST && s->actx.hook->wants_layer &&
                        s->actx.hook->wants_layer(s->actx.hook->user, (int32_t)in->layer, s->net->layers[in->layer].name))
                        s->actx.engine = QS_ENGINE_DETAILED;
                    s->actx.insn_start = s->now;
                    s->actx.insn = idx;
                    s->actx.logging = s->tr != NULL && s->actx.engine == QS_ENGINE_DETAILED;
                    if (a->timing == QS_TIMING_SCALESIM && s->ss_layer != in->layer) {
                        /* SCALE-Sim simulates every layer with fresh buffers */
                        if (s->ss_layer >= 0 && qs_ssmem_end(&s->ssm) < 0)
                            return qs_fail(err, QS_ERR_NOMEM, "out of memory draining SCALE-Sim's ofmap buffer");
                        qs_ssmem_begin(&s->ssm, a, &ls->ss);
                        s->ss_layer = in->layer;
                        if (a->scalesim_bandwidth > 0 && s->ss_row && s->ss_row_layer == in->layer) {
                            qs_status ust = qs_ssuser_create(s->ss_row, a, &s->ssm.user, err);
                            if (ust) return ust;
                        }
                        s->actx.ssm = &s->ssm;
                    }
                    qs_status st = qs_array_gemm(&s->actx, in, &r, err);
                    if (st) return st;
                    Q->done_at = s->now + r.cycles;
                    ls->array_busy += r.cycles;
                    ls->stall_buffer += r.buffer_stall + r.mem_stall;
                    qs_events_add(&ls->ev, &r.ev);
                    trace_gemm(s, &r, in->layer);
                } else {
                    Q->done_at = s->now;
                }
            } else { /* STORE: post-process, then DMA */
                int64_t ops = ppu_execute(s, in);
                /* SCALE-Sim has no post-processing: under its convention the PPU takes no time */
                uint64_t d = a->timing == QS_TIMING_SCALESIM ? 0 : (uint64_t)ceil_div(ops, a->ppu_lanes);
                uint64_t start = s->ppu_busy_until > s->now ? s->ppu_busy_until : s->now;
                s->ppu_busy_until = start + d;
                Q->done_at = start + d;
                Q->state = Q_WAIT_DMA_AFTER_PPU;
                ls->ev.ppu_ops += (uint64_t)ops;
                ls->ev.dram_write_bytes += in->bytes;
                ls->ev.sram_read_bytes[QS_BUF_ACCUM] += in->bytes;
            }
            progressed = 1;
        }
    }
    return QS_OK;
}

/* The array is about to sit idle from now to `next`: charge the interval to
 * its cause (docs/timing.md, "Stall attribution"), judged from the state of
 * the queues during it. While the store queue still works on an earlier
 * layer than the array's next instruction, the interval is that layer's tail. */
static void attribute_wait(qs_sim *s, uint64_t next)
{
    const queue_state *C = &s->q[QS_Q_COMPUTE], *S = &s->q[QS_Q_STORE];
    if (C->state != Q_IDLE || next <= s->now) return;
    const qs_insn *cin = C->pc < s->qlen[QS_Q_COMPUTE] ? &s->prog->insn[s->qorder[QS_Q_COMPUTE][C->pc]] : NULL;
    const qs_insn *sin = S->pc < s->qlen[QS_Q_STORE] ? &s->prog->insn[s->qorder[QS_Q_STORE][S->pc]] : NULL;
    uint64_t dt = next - s->now;
    if (sin && (!cin || sin->layer < cin->layer)) {
        qs_layer_stats *ls = &s->stats[sin->layer];
        if (S->state == Q_WAIT_DMA_AFTER_PPU) ls->stall_ppu += dt;
        else if (S->state == Q_BUSY || s->fly_n[QS_Q_STORE]) ls->stall_dram += dt;
        else ls->stall_dep += dt;
        return;
    }
    if (!cin) return;
    qs_layer_stats *ls = &s->stats[cin->layer];
    int need_data = (cin->deps & QS_DEP_POP_PREV) && s->tokens[CH_LD_CMP] <= 0;
    int need_accum = (cin->deps & QS_DEP_POP_NEXT) && s->tokens[CH_ST_CMP] <= 0;
    if (need_data) ls->stall_dram += dt;
    else if (need_accum && S->state == Q_WAIT_DMA_AFTER_PPU) ls->stall_ppu += dt;
    else if (need_accum && (S->state == Q_BUSY || s->fly_n[QS_Q_STORE])) ls->stall_dram += dt;
    else ls->stall_dep += dt;
}

/* An instruction is done: its tokens go out; a STORE ends its layer so far. */
static void complete_insn(qs_sim *s, int qi, int32_t idx, uint64_t started, uint64_t ppu_end)
{
    const qs_insn *in = &s->prog->insn[idx];
    if (s->insn_hook) s->insn_hook(s->insn_user, idx, started, ppu_end, s->now);
    if (in->deps & QS_DEP_PUSH_PREV) s->tokens[chan_of(qi, 0)]++;
    if (in->deps & QS_DEP_PUSH_NEXT) s->tokens[chan_of(qi, 1)]++;
    if (in->op == QS_OP_STORE) s->stats[in->layer].end = s->now;
}

qs_status qs_sim_advance(qs_sim *s, uint64_t until, int *done, qs_error *err)
{
    const qs_prog *p = s->prog;
    *done = 0;
    if (!s->running) {
        *done = 1;
        return QS_OK;
    }
    for (;;) {
        /* 1. complete phases that end now */
        for (int qi = 0; qi < QS_Q_COUNT; qi++) {
            queue_state *Q = &s->q[qi];
            if (Q->state == Q_IDLE || Q->done_at > s->now) continue;
            const qs_insn *in = &p->insn[Q->cur];
            if (Q->state == Q_WAIT_DMA_AFTER_PPU) {
                /* post-processing done: the store's DMA joins the DRAM queue now */
                Q->ppu_end = s->now;
                Q->done_at = dram_request(s, in, &Q->dma_done);
                Q->state = Q_BUSY;
                continue;
            }
            Q->state = Q_IDLE;
            Q->pc++;
            if ((in->op == QS_OP_LOAD || in->op == QS_OP_STORE) && (Q->dma_done > s->now || s->fly_n[qi])) {
                /* a non-blocking engine took its requests; it completes later, in order */
                in_flight *f = &s->fly[qi][(s->fly_head[qi] + s->fly_n[qi]) % (s->qlen[qi] + 1)];
                f->idx = Q->cur;
                f->done = Q->dma_done;
                f->started = Q->started;
                f->ppu_end = Q->ppu_end;
                s->fly_n[qi]++;
                continue;
            }
            complete_insn(s, qi, Q->cur, Q->started, Q->ppu_end);
        }
        /* transfers in flight whose data has moved */
        for (int qi = 0; qi < QS_Q_COUNT; qi++)
            while (s->fly_n[qi] && s->fly[qi][s->fly_head[qi]].done <= s->now) {
                const in_flight *f = &s->fly[qi][s->fly_head[qi]];
                complete_insn(s, qi, f->idx, f->started, f->ppu_end);
                s->fly_head[qi] = (s->fly_head[qi] + 1) % (s->qlen[qi] + 1);
                s->fly_n[qi]--;
            }
        /* 2. start what can start now */
        qs_status st = start_ready(s, err);
        if (st) return st;
        if (s->dram && qs_dram_out_of_memory(s->dram)) {
            s->running = 0;
            return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory for DRAM requests");
        }
        trace_state(s);
        /* 3. advance time to the next phase end */
        uint64_t next = UINT64_MAX;
        for (int qi = 0; qi < QS_Q_COUNT; qi++) {
            if (s->q[qi].state != Q_IDLE && s->q[qi].done_at < next) next = s->q[qi].done_at;
            if (s->fly_n[qi] && s->fly[qi][s->fly_head[qi]].done < next) next = s->fly[qi][s->fly_head[qi]].done;
        }
        if (next == UINT64_MAX) {
            int finished = 1;
            for (int qi = 0; qi < QS_Q_COUNT; qi++)
                if (s->q[qi].pc < s->qlen[qi]) finished = 0;
            if (finished) {
                *done = 1;
                return finish_run(s, err);
            }
            int32_t blocked = -1;
            for (int qi = 0; qi < QS_Q_COUNT && blocked < 0; qi++)
                if (s->q[qi].pc < s->qlen[qi]) blocked = s->qorder[qi][s->q[qi].pc];
            char buf[160];
            qs_insn_format(&p->insn[blocked], buf, sizeof buf);
            s->running = 0;
            return qs_fail(err, QS_ERR_RUN, "deadlock at cycle %llu: instruction %d (%s) of layer '%s' waits for a "
                           "token that no queue will send", (unsigned long long)s->now, blocked, buf,
                           s->net->layers[p->insn[blocked].layer].name);
        }
        if (next > until) return QS_OK;
        attribute_wait(s, next);
        s->now = next;
    }
}

qs_status qs_sim_run(qs_sim *s, qs_error *err)
{
    int done = 0;
    qs_status st = qs_sim_start(s, err);
    if (!st) st = qs_sim_advance(s, UINT64_MAX, &done, err);
    return st;
}

uint64_t qs_sim_now(const qs_sim *s) { return s->now; }

void qs_sim_set_dram_trace(qs_sim *s, qs_dram_trace_fn fn, void *user)
{
    s->dram_trace = fn;
    s->dram_trace_user = user;
}

qs_status qs_sim_set_array_hook(qs_sim *s, const qs_array_hook *hook, qs_error *err)
{
    s->actx.hook = hook;
    if (hook && !s->actx.tile_count) {
        s->actx.tile_count = qs_calloc((size_t)s->net->n_layers, sizeof *s->actx.tile_count);
        if (!s->actx.tile_count) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
    }
    return hook ? qs_array_ctx_make_groups(&s->actx, err) : QS_OK;
}

void qs_sim_set_insn_hook(qs_sim *s, qs_sim_insn_fn fn, void *user)
{
    s->insn_hook = fn;
    s->insn_user = user;
}

void qs_sim_set_memory_backend(qs_sim *s, const qs_mem_backend *b)
{
    s->has_backend = b && b->request;
    qs_dma_set_backend(s->dma, s->has_backend ? b : NULL);
}

qs_status qs_sim_read_dram(qs_sim *s, uint64_t addr, uint8_t *out, uint64_t n, qs_error *err)
{
    if (!s->input_set && !s->running) default_input(s); /* what the next run will read */
    if (!s->img) {
        qs_status st = qs_mem_image_create(s->net, s->prog, &s->img, err);
        if (st) return st;
    }
    return qs_mem_image_read(s->img, (const int32_t *const *)s->outputs, addr, out, n, err);
}

void qs_sim_set_dma_hook(qs_sim *s, qs_sim_dma_fn fn, void *user)
{
    s->dma_hook = fn;
    s->dma_user = user;
}

const qs_layer_stats *qs_sim_layer_stats(const qs_sim *s, int32_t layer) { return &s->stats[layer]; }
const int32_t *qs_sim_layer_output(const qs_sim *s, int32_t layer) { return s->outputs[layer]; }
uint64_t qs_sim_total_cycles(const qs_sim *s) { return s->total_cycles; }
