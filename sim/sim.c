/* The three instruction queues, the DMA engine with its DRAM channel, the
 * post-processing unit, and the bookkeeping of cycles and stalls per layer.
 * docs/timing.md ("Queues and tokens", "DMA and DRAM", "Post-processing",
 * "Stall attribution") is the specification. */
#include "sim.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

enum { CH_LD_CMP = 0, CH_CMP_LD, CH_CMP_ST, CH_ST_CMP, CH_ST_LD, CH_COUNT };

/* What a queue is doing. STORE has two phases: post-processing, then DMA. */
typedef enum { Q_IDLE = 0, Q_BUSY, Q_WAIT_DMA_AFTER_PPU } qstate;

typedef struct {
    int32_t pc;          /* next instruction of this queue (index into order[]) */
    qstate state;
    uint64_t done_at;    /* when the current phase ends */
    int32_t cur;         /* program index of the running instruction */
    uint64_t wait_since; /* compute queue: start of the current wait */
} queue_state;

struct qs_sim {
    const qs_net *net;
    const qs_prog *prog;
    qs_engine engine;
    int32_t **outputs;       /* per layer, CHW */
    int32_t *accum;
    qs_array_ctx actx;
    int32_t *qorder[QS_Q_COUNT];  /* per queue: program indices in order */
    int32_t qlen[QS_Q_COUNT];
    qs_layer_stats *stats;
    uint64_t total_cycles;
    int input_set;
};

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- set-up ------------------------------------------------------------------- */

static int64_t layer_elems(const qs_layer *L) { return (int64_t)L->out_c * L->out_h * L->out_w; }

qs_status qs_sim_create(const qs_net *net, const qs_prog *prog, qs_engine engine, qs_sim **out, qs_error *err)
{
    *out = NULL;
    qs_sim *s = calloc(1, sizeof *s);
    if (!s) return qs_fail(err, QS_ERR_NOMEM, "simulator: out of memory");
    s->net = net;
    s->prog = prog;
    s->engine = engine;
    s->outputs = calloc((size_t)net->n_layers, sizeof *s->outputs);
    s->stats = calloc((size_t)net->n_layers, sizeof *s->stats);
    int64_t max_acc = 1;
    if (!s->outputs || !s->stats) goto oom;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        if (L->kind == QS_L_FLATTEN) continue; /* a view of its input */
        s->outputs[i] = calloc((size_t)layer_elems(L) + 1, sizeof(int32_t));
        if (!s->outputs[i]) goto oom;
        const qs_layer_map *m = &prog->maps[i];
        if (m->is_gemm && (int64_t)m->g.groups * m->g.M * m->g.N > max_acc)
            max_acc = (int64_t)m->g.groups * m->g.M * m->g.N;
    }
    for (int32_t i = 0; i < net->n_layers; i++)
        if (net->layers[i].kind == QS_L_FLATTEN) s->outputs[i] = s->outputs[net->layers[i].inputs[0]];
    s->accum = calloc((size_t)max_acc, sizeof(int32_t));
    if (!s->accum) goto oom;
    for (int q = 0; q < QS_Q_COUNT; q++) {
        s->qorder[q] = malloc(sizeof(int32_t) * (size_t)(prog->n_insn + 1));
        if (!s->qorder[q]) goto oom;
    }
    for (int32_t i = 0; i < prog->n_insn; i++) {
        int q = qs_opcode_queue(prog->insn[i].op);
        s->qorder[q][s->qlen[q]++] = i;
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
    if (s->outputs)
        for (int32_t i = 0; i < s->net->n_layers; i++)
            if (s->net->layers[i].kind != QS_L_FLATTEN) free(s->outputs[i]);
    free(s->outputs);
    free(s->stats);
    free(s->accum);
    for (int q = 0; q < QS_Q_COUNT; q++) free(s->qorder[q]);
    qs_array_ctx_free(&s->actx);
    free(s);
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
    memcpy(s->outputs[0], data, sizeof(int32_t) * (size_t)count);
    s->input_set = 1;
    return QS_OK;
}

/* Deterministic pseudo-random input (xorshift) so that a run without --input
 * still exercises data-dependent skipping: about a third zeros. */
static void default_input(qs_sim *s)
{
    const qs_layer *L = &s->net->layers[0];
    int32_t lo, hi;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    uint32_t x = 2463534242u;
    for (int64_t i = 0; i < layer_elems(L); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int32_t v = (x % 3 == 0) ? 0 : lo + (int32_t)((x >> 8) % (uint32_t)((int64_t)hi - lo + 1));
        if (v < lo) v = lo;
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

/* Post-process output tile of a STORE: values into the layer output, and the
 * element operations it costs (docs/timing.md, "Post-processing"). */
static int64_t ppu_execute(qs_sim *s, const qs_insn *in)
{
    const qs_net *net = s->net;
    const qs_layer *L = &net->layers[in->layer];
    const qs_layer_map *m = &s->prog->maps[in->layer];
    int32_t *out = s->outputs[in->layer];
    int64_t ops = 0;
    if (m->is_gemm) {
        int32_t HW = L->out_h * L->out_w;
        for (uint32_t i = 0; i < in->m_len; i++)
            for (uint32_t j = 0; j < in->n_len; j++) {
                int32_t mm = (int32_t)(in->m0 + i), n = (int32_t)(in->n0 + j);
                int32_t oc = in->group * m->g.N + n;
                int64_t acc = s->accum[((size_t)in->group * m->g.M + mm) * m->g.N + n];
                int64_t b = acc + m->bias_folded[oc];
                /* the bias adder is 32 bits wide and saturates */
                if (b > INT32_MAX) b = INT32_MAX;
                if (b < INT32_MIN) b = INT32_MIN;
                out[(size_t)oc * HW + mm] = requant(L, oc, b);
            }
        return (int64_t)in->m_len * in->n_len;
    }
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
            for (int32_t i = 0; i < OH * OW; i++) {
                size_t idx = (size_t)c * OH * OW + (size_t)i;
                int64_t acc = (int64_t)(x[idx] - IN->out_zp) * L->add_mul[0] +
                              (int64_t)(x2[idx] - IN2->out_zp) * L->add_mul[1];
                out[idx] = requant(L, c, acc);
                ops += 2;
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

static uint64_t dma_cycles(const qs_arch *a, uint32_t bytes)
{
    if (bytes == 0) return 0;
    int64_t bursts = ceil_div(bytes, a->dram_burst_bytes);
    double moved = (double)(bursts * a->dram_burst_bytes);
    int64_t xfer = (int64_t)(moved / a->dram_bytes_per_cycle);
    if ((double)xfer * a->dram_bytes_per_cycle < moved) xfer++;
    return (uint64_t)a->dram_latency + (uint64_t)xfer;
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

qs_status qs_sim_run(qs_sim *s, qs_error *err)
{
    const qs_prog *p = s->prog;
    const qs_arch *a = &p->arch;
    const qs_net *net = s->net;
    if (!s->input_set) default_input(s);
    memset(s->stats, 0, sizeof(qs_layer_stats) * (size_t)net->n_layers);

    int64_t tokens[CH_COUNT] = {0};
    tokens[CH_CMP_LD] = p->init_slots;
    tokens[CH_ST_CMP] = p->init_accum;
    queue_state q[QS_Q_COUNT];
    memset(q, 0, sizeof q);
    uint64_t now = 0, dram_free = 0;
    uint64_t ppu_busy_until = 0;
    uint64_t prev_end = 0;
    uint64_t barrier_at = 0; /* when the last layer boundary (its final store) passed */

    for (;;) {
        /* 1. complete phases that end now */
        for (int qi = 0; qi < QS_Q_COUNT; qi++) {
            queue_state *Q = &q[qi];
            if (Q->state == Q_IDLE || Q->done_at > now) continue;
            const qs_insn *in = &p->insn[Q->cur];
            if (Q->state == Q_WAIT_DMA_AFTER_PPU) {
                /* post-processing done: the store's DMA joins the DRAM queue now */
                uint64_t start = dram_free > now ? dram_free : now;
                uint64_t d = dma_cycles(a, in->bytes);
                dram_free = start + d;
                Q->done_at = start + d;
                Q->state = Q_BUSY;
                continue;
            }
            if (in->deps & QS_DEP_PUSH_PREV) tokens[chan_of(qi, 0)]++;
            if (in->deps & QS_DEP_PUSH_NEXT) tokens[chan_of(qi, 1)]++;
            Q->state = Q_IDLE;
            Q->pc++;
            Q->wait_since = now;
            if (in->op == QS_OP_STORE) {
                qs_layer_stats *ls = &s->stats[in->layer];
                ls->end = now;
                if (in->deps & QS_DEP_PUSH_NEXT) barrier_at = now;
            }
        }
        /* 2. start what can start now, LOAD before COMPUTE before STORE */
        int progressed = 1;
        while (progressed) {
            progressed = 0;
            for (int qi = 0; qi < QS_Q_COUNT; qi++) {
                queue_state *Q = &q[qi];
                if (Q->state != Q_IDLE || Q->pc >= s->qlen[qi]) continue;
                int32_t idx = s->qorder[qi][Q->pc];
                const qs_insn *in = &p->insn[idx];
                int cp = (in->deps & QS_DEP_POP_PREV) ? pop_chan(qi, 0) : -1;
                int cn = (in->deps & QS_DEP_POP_NEXT) ? pop_chan(qi, 1) : -1;
                if ((cp >= 0 && tokens[cp] <= 0) || (cn >= 0 && tokens[cn] <= 0)) continue;
                if (cp >= 0) tokens[cp]--;
                if (cn >= 0) tokens[cn]--;
                qs_layer_stats *ls = &s->stats[in->layer];
                Q->cur = idx;
                Q->state = Q_BUSY;
                if (in->op == QS_OP_LOAD) {
                    uint64_t start = dram_free > now ? dram_free : now;
                    uint64_t d = dma_cycles(a, in->bytes);
                    dram_free = start + d;
                    Q->done_at = start + d;
                    ls->ev.dram_read_bytes += in->bytes;
                    ls->ev.sram_write_bytes[in->mem] += in->bytes;
                } else if (in->op == QS_OP_GEMM || in->op == QS_OP_PASS) {
                    /* the array waited since its previous instruction ended */
                    /* waiting before the layer boundary belongs to the previous layer */
                    uint64_t since = Q->wait_since > barrier_at ? Q->wait_since : barrier_at;
                    uint64_t waited = now > since ? now - since : 0;
                    if (waited) {
                        /* cause: loads (DRAM) for a pop of data, the PPU/store for an accumulator slot */
                        if (cn >= 0 && (q[QS_Q_STORE].state != Q_IDLE)) {
                            if (q[QS_Q_STORE].state == Q_WAIT_DMA_AFTER_PPU) ls->stall_ppu += waited;
                            else ls->stall_dram += waited;
                        } else if (cp >= 0) {
                            ls->stall_dram += waited;
                        } else {
                            ls->stall_dep += waited;
                        }
                    }
                    if (in->op == QS_OP_GEMM) {
                        qs_tile_result r;
                        qs_status st = qs_array_gemm(&s->actx, in, &r, err);
                        if (st) return st;
                        Q->done_at = now + r.cycles;
                        ls->array_busy += r.cycles;
                        ls->stall_buffer += r.buffer_stall;
                        qs_events_add(&ls->ev, &r.ev);
                    } else {
                        Q->done_at = now;
                    }
                } else { /* STORE: post-process, then DMA */
                    int64_t ops = ppu_execute(s, in);
                    uint64_t d = (uint64_t)ceil_div(ops, a->ppu_lanes);
                    uint64_t start = ppu_busy_until > now ? ppu_busy_until : now;
                    ppu_busy_until = start + d;
                    Q->done_at = start + d;
                    Q->state = Q_WAIT_DMA_AFTER_PPU;
                    ls->ev.ppu_ops += (uint64_t)ops;
                    ls->ev.dram_write_bytes += in->bytes;
                    ls->ev.sram_read_bytes[QS_BUF_ACCUM] += in->bytes;
                }
                progressed = 1;
            }
        }
        /* 3. advance time to the next phase end */
        uint64_t next = UINT64_MAX;
        for (int qi = 0; qi < QS_Q_COUNT; qi++)
            if (q[qi].state != Q_IDLE && q[qi].done_at < next) next = q[qi].done_at;
        if (next == UINT64_MAX) {
            int done = 1;
            for (int qi = 0; qi < QS_Q_COUNT; qi++)
                if (q[qi].pc < s->qlen[qi]) done = 0;
            if (done) break;
            int32_t blocked = -1;
            for (int qi = 0; qi < QS_Q_COUNT && blocked < 0; qi++)
                if (q[qi].pc < s->qlen[qi]) blocked = s->qorder[qi][q[qi].pc];
            char buf[160];
            qs_insn_format(&p->insn[blocked], buf, sizeof buf);
            return qs_fail(err, QS_ERR_RUN, "deadlock at cycle %llu: instruction %d (%s) of layer '%s' waits for a token "
                           "that no queue will send", (unsigned long long)now, blocked, buf,
                           net->layers[p->insn[blocked].layer].name);
        }
        now = next;
    }

    /* Per-layer spans: layers are separated by the barrier, so each layer
     * spans from the previous layer's last store to its own. */
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
        if (m->is_gemm) {
            uint64_t dense = (uint64_t)qs_layer_macs(net, li) * (uint64_t)m->slices;
            uint64_t done = ls->ev.mac_ops + ls->ev.mac_gated;
            ls->ev.mac_skipped = dense > done ? dense - done : 0;
            ls->ev.macs = (uint64_t)qs_layer_macs(net, li);
            uint64_t pe_cycles = (uint64_t)a->rows * a->cols * ls->cycles;
            ls->ev.pe_idle = pe_cycles > done ? pe_cycles - done : 0;
        }
    }
    s->total_cycles = prev_end;
    return QS_OK;
}

const qs_layer_stats *qs_sim_layer_stats(const qs_sim *s, int32_t layer) { return &s->stats[layer]; }
const int32_t *qs_sim_layer_output(const qs_sim *s, int32_t layer) { return s->outputs[layer]; }
uint64_t qs_sim_total_cycles(const qs_sim *s) { return s->total_cycles; }
