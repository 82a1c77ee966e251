/* CUnit tests of the simulator (sim/sim.c, sim/array.c, sim/pe_array.c;
 * docs/timing.md) on randomized layers from the generator of
 * tests/test_compiler.c:
 *
 *  - fast == detailed: every layer's output, total and per-layer cycles,
 *    every stall field and every qs_events field are identical, over every
 *    dataflow, weight widths 1 (bipolar), 2, 4, 8 (signed and unsigned),
 *    activations 2..8 bits signed and unsigned, 0..90% zeros in weights and
 *    activations, odd shapes, every zero_skip mode, skip groups 1..rows,
 *    and narrow accumulators that wrap or saturate;
 *  - values equal a direct C reference (int64 conv loops + qs_requant_apply)
 *    whenever no accumulator overflowed;
 *  - the array's busy cycles equal the documented closed forms (OS group
 *    time and drain, WS/IS preload and stream, buffer rate), recomputed here
 *    from the program and the data;
 *  - dedicated timing rules: activation skipping saves cycles only when a
 *    whole group's step is zero, wider weights cost proportionally more
 *    cycles, DRAM bandwidth removes DRAM stalls on a memory-bound layer,
 *    narrow SRAM banks add buffer stalls, a slow PPU shows as ppu stalls;
 *  - the shipped networks (every layer kind) agree between the engines;
 *  - saturating/wrapping accumulators in OS layers the compiler cannot prove
 *    overflow-free: the fast engine's exact-sum shortcut (sim/array.c,
 *    values_checked) is taken at its bound and not beyond, including an
 *    overflow inside one weight's slices whose final sum would fit, and each
 *    of its paths is exercised by random layers. */
#define QS_RANDNET_ONLY
#include "qs_alloc.h"
#include "test_compiler.c"

#include "array.h"
#include "qs_xfmr.h"
#include "sim.h"

/* EXPECT is test_compiler.c's CHECK: same counters, same message format. */
#define EXPECT CHECK

static int64_t cdiv64(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- arch from parameters -------------------------------------------------- */

typedef struct {
    int rows, cols;
    qs_dataflow df;
    int wpb, mwb, mab;
    qs_zero_skip skip;
    int group;
    int acc_bits;
    qs_overflow ovf;
    int ikib, wkib, akib, dbl;
    int ibanks, iwidth, wbanks, wwidth, abanks, awidth, aports;
    double dram_bpc;
    int dram_lat, burst, lanes;
    int lookahead;
    char mem[320];  /* more [dram] keys, then a [dma] section (empty: the simple channel, a blocking engine) */
} sim_cfg;

static const char *const DFN[3] = {"ws", "os", "is"};
static const char *const SKN[5] = {"none", "gate", "weights", "activations", "both"};

static int make_arch(const sim_cfg *c, qs_arch *a)
{
    char ini[3000];
    snprintf(ini, sizeof ini,
             "[array]\nrows = %d\ncols = %d\ndataflow = %s\nweight_path_bits = %d\nmax_weight_bits = %d\n"
             "max_act_bits = %d\nzero_skip = %s\nskip_group = %d\nacc_bits = %d\noverflow = %s\nlookahead = %d\n"
             "[buffer.ifmap]\nsize_kib = %d\nbanks = %d\nbank_width_bytes = %d\ndouble_buffer = %d\n"
             "[buffer.weight]\nsize_kib = %d\nbanks = %d\nbank_width_bytes = %d\ndouble_buffer = %d\n"
             "[buffer.accum]\nsize_kib = %d\nbanks = %d\nbank_width_bytes = %d\nports = %d\ndouble_buffer = %d\n"
             "[dram]\nbytes_per_cycle = %g\nlatency_cycles = %d\nburst_bytes = %d\n%s"
             "[ppu]\nlanes = %d\n",
             c->rows, c->cols, DFN[c->df], c->wpb, c->mwb, c->mab, SKN[c->skip], c->group, c->acc_bits,
             c->ovf == QS_OVF_WRAP ? "wrap" : "saturate", c->lookahead, c->ikib, c->ibanks, c->iwidth, c->dbl, c->wkib, c->wbanks,
             c->wwidth, c->dbl, c->akib, c->abanks, c->awidth, c->aports, c->dbl, c->dram_bpc, c->dram_lat, c->burst,
             c->mem, c->lanes);
    return rn_arch(ini, NULL, 0, a);
}

static sim_cfg default_cfg(void)
{
    sim_cfg c = {4, 4, QS_DF_OS, 2, 8, 8, QS_SKIP_NONE, 1, 32, QS_OVF_WRAP, 8, 8, 8, 1, 2, 8, 2, 8, 2, 8, 1,
                 16.0, 20, 64, 4, 0, ""};
    return c;
}

/* ---- the reference ---------------------------------------------------------- */

/* Activation a[m][k] of group g (docs/compiler.md "GEMM view"), written from
 * the conv definition rather than from qs_gemm_act. */
static int32_t ref_act(const qs_layer *L, const qs_layer *IN, const int32_t *in, int g, int m, int k, int *pad)
{
    *pad = 0;
    if (L->kind == QS_L_FC) return in[k];
    int cg = IN->out_c / L->groups;
    int kx = k % L->kw, ky = (k / L->kw) % L->kh, c = k / (L->kw * L->kh);
    int oy = m / L->out_w, ox = m % L->out_w;
    int iy = oy * L->stride_h - L->pad_t + ky * L->dil_h, ix = ox * L->stride_w - L->pad_l + kx * L->dil_w;
    if (iy < 0 || ix < 0 || iy >= IN->out_h || ix >= IN->out_w) {
        *pad = 1;
        return IN->out_zp;
    }
    return in[((g * cg + c) * IN->out_h + iy) * IN->out_w + ix];
}

/* Output of conv/fc layer li from its input tensor, exactly (int64). */
static void ref_layer(const qs_net *net, int li, const int32_t *in, int32_t *out)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const qs_tensor *W = &net->tensors[L->weight];
    const qs_tensor *B = L->bias >= 0 ? &net->tensors[L->bias] : NULL;
    int G = L->kind == QS_L_FC ? 1 : L->groups;
    int N = L->out_c / G, M = L->out_h * L->out_w;
    int K = L->kind == QS_L_FC ? IN->out_c * IN->out_h * IN->out_w : IN->out_c / G * L->kh * L->kw;
    for (int oc = 0; oc < L->out_c; oc++) {
        int g = oc / N;
        for (int m = 0; m < M; m++) {
            int64_t acc = 0;
            for (int k = 0; k < K; k++) {
                int pad;
                int32_t a = ref_act(L, IN, in, g, m, k, &pad);
                acc += (int64_t)(pad ? 0 : a - IN->out_zp) * W->data[(size_t)oc * K + k];
            }
            if (B) acc += B->data[oc];
            int32_t y;
            if (L->rq.n == 0) {
                int64_t x = acc > INT32_MAX ? INT32_MAX : acc < INT32_MIN ? INT32_MIN : acc;
                x += L->out_zp;
                y = (int32_t)(x < L->clamp_lo ? L->clamp_lo : x > L->clamp_hi ? L->clamp_hi : x);
            } else {
                int i = L->rq.n == 1 ? 0 : oc;
                y = qs_requant_apply(acc, L->rq.mult[i], L->rq.shift[i], L->out_zp, L->clamp_lo, L->clamp_hi);
            }
            out[(size_t)oc * M + m] = y;
        }
    }
}

/* ---- expected busy cycles from the documented closed forms ---------------------- */

static int rate_of(const qs_arch *a, int act_bits)
{
    int64_t bw_i = (int64_t)a->ifmap.banks * a->ifmap.bank_width_bytes * a->ifmap.ports;
    int64_t bw_w = (int64_t)a->weight.banks * a->weight.bank_width_bytes * a->weight.ports;
    int64_t bw_a = (int64_t)a->accum.banks * a->accum.bank_width_bytes * a->accum.ports;
    int64_t r = 1, need;
    int R = a->rows, C = a->cols;
    switch (a->dataflow) {
    case QS_DF_OS: {
        /* lookahead: H + 1 steps of activations a clock; one weight feed for
         * all rows, each slice with its window index */
        const int H = a->lookahead, ob = H >= 4 ? 3 : H >= 2 ? 2 : H;
        need = cdiv64((int64_t)(H + 1) * R * act_bits, 8);
        if (cdiv64(need, bw_i) > r) r = cdiv64(need, bw_i);
        need = cdiv64(cdiv64(R, H ? R : a->skip_group) * C * (a->weight_path_bits + ob), 8);
        if (cdiv64(need, bw_w) > r) r = cdiv64(need, bw_w);
        break;
    }
    case QS_DF_WS:
        need = cdiv64((int64_t)R * act_bits, 8);
        if (cdiv64(need, bw_i) > r) r = cdiv64(need, bw_i);
        if (cdiv64((int64_t)C * 4, bw_a) > r) r = cdiv64((int64_t)C * 4, bw_a);
        break;
    case QS_DF_IS:
        need = cdiv64((int64_t)R * a->weight_path_bits, 8);
        if (cdiv64(need, bw_w) > r) r = cdiv64(need, bw_w);
        if (cdiv64((int64_t)C * 4, bw_a) > r) r = cdiv64((int64_t)C * 4, bw_a);
        break;
    }
    return (int)r;
}

static int act_skipping(const qs_arch *a) { return a->zero_skip == QS_SKIP_ACTIVATIONS || a->zero_skip == QS_SKIP_BOTH; }

/* docs/timing.md "Lookahead weight skipping", written from the text: the
 * schedule of GEMM instruction g's n-block (list lst) as its number of
 * cycles, effectual slots (non-zero weight slices) and (list position,
 * column) pairs whose weight is not zero. Slice s < S-1 of a weight is its
 * unsigned bits [p*s, p*(s+1)), slice S-1 the rest with the sign (a bipolar
 * weight is its one slice). */
static void la_reference(const qs_net *net, const qs_prog *p, int li, const qs_insn *g, const int32_t *lst,
                         int64_t *cycles, int64_t *slots, int64_t *pos_cols)
{
    const qs_layer_map *m = &p->maps[li];
    const int S = m->slices, wpb = p->arch.weight_path_bits, H = p->arch.lookahead;
    const int K = m->g.K, N = m->g.N, Cu = (int)g->n_len, kl = (int)g->k_len;
    const int32_t *w = net->tensors[net->layers[li].weight].data;
    int *eff = qs_malloc(sizeof(int) * (size_t)(Cu * kl * S + 1)), *cnt = qs_calloc((size_t)Cu, sizeof(int)),
        *at = qs_calloc((size_t)Cu, sizeof(int));
    *cycles = *slots = *pos_cols = 0;
    for (int j = 0; j < Cu; j++)
        for (int q = 0; q < kl; q++) {
            int32_t wv = w[((int64_t)g->group * N + g->n0 + j) * K + lst[g->k0 + (uint32_t)q]];
            int any = 0;
            for (int sl = 0; sl < S; sl++) {
                int32_t piece = sl < S - 1 ? (wv >> (wpb * sl)) & ((1 << wpb) - 1) : wv >> (wpb * sl);
                if (piece != 0) {
                    eff[j * kl * S + cnt[j]++] = q * S + sl;
                    any = 1;
                }
            }
            *pos_cols += any;
        }
    for (;;) {
        int head = INT32_MAX;
        for (int j = 0; j < Cu; j++)
            if (at[j] < cnt[j] && eff[j * kl * S + at[j]] < head) head = eff[j * kl * S + at[j]];
        if (head == INT32_MAX) break;
        for (int j = 0; j < Cu; j++)
            if (at[j] < cnt[j] && eff[j * kl * S + at[j]] - head <= H) {
                at[j]++;
                (*slots)++;
            }
        (*cycles)++;
    }
    qs_free(eff);
    qs_free(cnt);
    qs_free(at);
}

/* Busy cycles and buffer stalls of GEMM layer li, from docs/timing.md "Array". */
static void expected_busy_ev(const qs_net *net, const qs_prog *p, int li, const int32_t *in, uint64_t *busy,
                             uint64_t *bstall, qs_events *ev);
static void expected_busy(const qs_net *net, const qs_prog *p, int li, const int32_t *in, uint64_t *busy,
                          uint64_t *bstall)
{
    qs_events ev;
    expected_busy_ev(net, p, li, in, busy, bstall, &ev);
}

/* ... and the layer's GEMM events by docs/timing.md "Events": SRAM bytes per
 * operand, PE operations (active + gated), register bits, executed MACs. */
static void expected_busy_ev(const qs_net *net, const qs_prog *p, int li, const int32_t *in, uint64_t *busy,
                             uint64_t *bstall, qs_events *ev)
{
    memset(ev, 0, sizeof *ev);
    const int wpb = p->arch.weight_path_bits, ab = p->maps[li].act_bits;
    const qs_arch *a = &p->arch;
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const qs_layer_map *m = &p->maps[li];
    const int R = a->rows, C = a->cols, S = m->slices;
    const int rate = rate_of(a, m->act_bits);
    const int askip = act_skipping(a);
    *busy = *bstall = 0;
    for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn; i++) {
        const qs_insn *g = &p->insn[i];
        if (g->op != QS_OP_GEMM) continue;
        int pad;
        if (a->dataflow == QS_DF_OS || a->dataflow == QS_DF_WS) {
            int nb = (int)g->n0 / C;
            const int32_t *lst = m->list + m->list_off[g->group * m->blocks_per_group + nb];
            int Cu = (int)g->n_len;
            if (a->dataflow == QS_DF_OS && a->lookahead > 0) {
                const int H = a->lookahead, ob = H >= 4 ? 3 : H >= 2 ? 2 : H;
                int64_t Lc, slots, pc;
                la_reference(net, p, li, g, lst, &Lc, &slots, &pc);
                for (int mb = (int)g->m0; mb < (int)(g->m0 + g->m_len); mb += R) {
                    int ru = (int)(g->m0 + g->m_len) - mb < R ? (int)(g->m0 + g->m_len) - mb : R;
                    int64_t t = Lc ? (Lc - 1) * rate + ru + Cu - 1 : 0, t1 = Lc ? Lc + ru + Cu - 2 : 0;
                    *busy += (uint64_t)(t + ru);
                    *bstall += (uint64_t)(t - t1);
                    ev->sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)cdiv64((int64_t)g->k_len * ru * ab, 8);
                    ev->sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)cdiv64(Lc * Cu * (wpb + ob), 8);
                    ev->macs_executed += (uint64_t)(pc * ru);
                    ev->mac_ops += (uint64_t)(slots * ru); /* active + gated */
                    ev->reg_bits += (uint64_t)(Lc * ru * Cu * ((H + 1) * ab + wpb + ob));
                    ev->sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
                    if (!(g->flags & QS_GEMM_FIRST_K)) ev->sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
                }
            } else if (a->dataflow == QS_DF_OS) {
                int G = a->skip_group < R ? a->skip_group : R;
                for (int mb = (int)g->m0; mb < (int)(g->m0 + g->m_len); mb += R) {
                    int ru = (int)(g->m0 + g->m_len) - mb < R ? (int)(g->m0 + g->m_len) - mb : R;
                    int64_t tmax = 0, tmax1 = 0;
                    for (int r0 = 0; r0 < ru; r0 += G) {
                        int r1 = r0 + G < ru ? r0 + G : ru, Gu = r1 - r0;
                        int64_t len = 0;
                        for (uint32_t pp = g->k0; pp < g->k0 + g->k_len; pp++) {
                            int keep = !askip;
                            for (int r = r0; r < r1 && !keep; r++) keep = ref_act(L, IN, in, g->group, mb + r, lst[pp], &pad) != 0;
                            len += keep;
                        }
                        int64_t Lg = len * S;
                        ev->sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)cdiv64(len * Gu * ab, 8);
                        ev->sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)cdiv64(Lg * Cu * wpb, 8);
                        ev->macs_executed += (uint64_t)(len * Gu * Cu);
                        ev->mac_ops += (uint64_t)(Lg * Gu * Cu); /* active + gated */
                        ev->reg_bits += (uint64_t)(Lg * Gu * Cu * (ab + wpb));
                        int64_t t = Lg ? (Lg - 1) * rate + Gu + Cu - 1 : 0;
                        int64_t t1 = Lg ? Lg + Gu + Cu - 2 : 0;
                        if (t > tmax) tmax = t;
                        if (t1 > tmax1) tmax1 = t1;
                    }
                    *busy += (uint64_t)(tmax + ru);
                    *bstall += (uint64_t)(tmax - tmax1);
                    ev->sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
                    if (!(g->flags & QS_GEMM_FIRST_K)) ev->sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)ru * Cu * 4;
                }
            } else {
                for (uint32_t p0 = g->k0; p0 < g->k0 + g->k_len; p0 += (uint32_t)R) {
                    int Ku = (int)(g->k0 + g->k_len - p0) < R ? (int)(g->k0 + g->k_len - p0) : R;
                    int64_t Lm = 0;
                    for (uint32_t mm = g->m0; mm < g->m0 + g->m_len; mm++) {
                        int keep = !askip;
                        for (int r = 0; r < Ku && !keep; r++) keep = ref_act(L, IN, in, g->group, (int)mm, lst[p0 + r], &pad) != 0;
                        Lm += keep;
                    }
                    for (int s = 0; s < S; s++) {
                        *busy += (uint64_t)(Ku + (Lm ? (Lm - 1) * rate + R + Cu - 1 : 0));
                        *bstall += Lm ? (uint64_t)((Lm - 1) * (rate - 1)) : 0;
                        ev->sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)cdiv64(Lm * Ku * ab, 8);
                        ev->sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)cdiv64((int64_t)Ku * Cu * wpb, 8);
                        ev->sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)(Lm * Cu * 4);
                        ev->sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)(Lm * Cu * 4);
                        ev->mac_ops += (uint64_t)(Lm * Ku * Cu);
                        ev->reg_bits += (uint64_t)(Lm * Ku * Cu * (ab + wpb));
                    }
                    ev->macs_executed += (uint64_t)(Lm * Ku * Cu); /* once, not per slice */
                }
            }
        } else { /* IS */
            for (uint32_t k0 = g->k0; k0 < g->k0 + g->k_len; k0 += (uint32_t)R) {
                int Ku = (int)(g->k0 + g->k_len - k0) < R ? (int)(g->k0 + g->k_len - k0) : R;
                int kb = (int)k0 / R, li2 = g->group * m->blocks_per_group + kb;
                int64_t Lw = (int64_t)(m->list_off[li2 + 1] - m->list_off[li2]) * S;
                for (uint32_t mb = g->m0; mb < g->m0 + g->m_len; mb += (uint32_t)C) {
                    int Mu = (int)(g->m0 + g->m_len - mb) < C ? (int)(g->m0 + g->m_len - mb) : C;
                    *busy += (uint64_t)(Ku + (Lw ? (Lw - 1) * rate + R + Mu - 1 : 0));
                    *bstall += Lw ? (uint64_t)((Lw - 1) * (rate - 1)) : 0;
                    ev->sram_read_bytes[QS_BUF_IFMAP] += (uint64_t)cdiv64((int64_t)Ku * Mu * ab, 8);
                    ev->sram_read_bytes[QS_BUF_WEIGHT] += (uint64_t)cdiv64(Lw * Ku * wpb, 8);
                    ev->sram_read_bytes[QS_BUF_ACCUM] += (uint64_t)(Lw * Mu * 4);
                    ev->sram_write_bytes[QS_BUF_ACCUM] += (uint64_t)(Lw * Mu * 4);
                    ev->macs_executed += (uint64_t)(Lw / S * Ku * Mu);
                    ev->mac_ops += (uint64_t)(Lw * Ku * Mu);
                    ev->reg_bits += (uint64_t)(Lw * Ku * Mu * (ab + wpb));
                }
            }
        }
    }
}

/* ---- the schedule, replayed from docs/timing.md ------------------------------------- */

/* What the simulator reports of one instruction (qs_sim_set_insn_hook) and of
 * each DRAM transfer (qs_sim_set_dma_hook), in the order they happen. */
typedef struct {
    uint64_t start, ppu_end, end;
    int done;
} insn_times;

typedef struct {
    insn_times *t;
    int32_t n_insn;
    uint64_t *dma_start;
    int32_t *dma_insn_bytes;
    int n_dma, cap_dma;
} sched_log;

static void log_insn(void *user, int32_t insn, uint64_t start, uint64_t ppu_end, uint64_t end)
{
    sched_log *l = user;
    if (insn < 0 || insn >= l->n_insn) return;
    l->t[insn] = (insn_times){start, ppu_end, end, 1};
}

/* The DMA hook is called once per run of a transfer's access pattern (a
 * transfer of no byte: once, with 0 bytes), all with the transfer's start:
 * runs of one transfer are gathered into one entry. Under native timing a
 * transfer of bytes takes at least one cycle, so two transfers never share a
 * start unless the first moved nothing. */
static void log_dma(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start)
{
    (void)is_write;
    (void)addr;
    sched_log *l = user;
    if (l->n_dma && bytes && l->dma_start[l->n_dma - 1] == start && l->dma_insn_bytes[l->n_dma - 1] > 0) {
        l->dma_insn_bytes[l->n_dma - 1] += (int32_t)bytes;
        return;
    }
    if (l->n_dma == l->cap_dma) {
        l->cap_dma = l->cap_dma ? 2 * l->cap_dma : 64;
        l->dma_start = qs_realloc(l->dma_start, sizeof *l->dma_start * (size_t)l->cap_dma);
        l->dma_insn_bytes = qs_realloc(l->dma_insn_bytes, sizeof *l->dma_insn_bytes * (size_t)l->cap_dma);
    }
    l->dma_start[l->n_dma] = start;
    l->dma_insn_bytes[l->n_dma++] = (int32_t)bytes;
}

static void sched_log_free(sched_log *l)
{
    qs_free(l->t);
    qs_free(l->dma_start);
    qs_free(l->dma_insn_bytes);
    memset(l, 0, sizeof *l);
}

/* "DMA and DRAM": latency + ceil(ceil(n / burst) * burst / bytes_per_cycle); no transfer, no time. */
static uint64_t doc_dma_cycles(const qs_arch *a, uint64_t n)
{
    if (n == 0) return 0;
    uint64_t moved = (n + (uint64_t)a->dram_burst_bytes - 1) / (uint64_t)a->dram_burst_bytes * (uint64_t)a->dram_burst_bytes;
    return (uint64_t)a->dram_latency + (uint64_t)ceil((double)moved / a->dram_bytes_per_cycle);
}

/* "Post-processing": element operations of a STORE's tile. */
static uint64_t doc_ppu_ops(const qs_net *net, const qs_insn *in)
{
    const qs_layer *L = &net->layers[in->layer];
    if (L->kind == QS_L_CONV || L->kind == QS_L_FC || L->kind == QS_L_MATMUL)
        return (uint64_t)in->m_len * in->n_len;
    const qs_layer *IN = &net->layers[L->inputs[0]];
    /* transformer layers: rows across channels (m = positions) for norms and softmax over axis 0 */
    const uint64_t C = (uint64_t)L->out_c;
    if (L->kind == QS_L_LAYERNORM) return (uint64_t)in->m_len * (3 * C + 32);
    if (L->kind == QS_L_RMSNORM) return (uint64_t)in->m_len * (2 * C + 32);
    if (L->kind == QS_L_DYNQUANT) return (uint64_t)in->m_len * (2 * C + 32);
    if (L->kind == QS_L_ROPE) return (uint64_t)in->m_len * 3 * C;
    if (L->kind == QS_L_EMBED) /* m = tokens: one write per element, one add more with a position table */
        return (uint64_t)in->m_len * C * (L->bias >= 0 ? 2 : 1);
    if (L->kind == QS_L_ARGMAX) return (uint64_t)in->m_len * (uint64_t)IN->out_c; /* one compare per channel */
    if (L->kind == QS_L_MUL && L->param == 1) /* row absmax of input 2, then multiply + requantize */
        return (uint64_t)in->m_len * ((uint64_t)net->layers[L->inputs[1]].out_c + 2 * C);
    if (L->kind == QS_L_SOFTMAX && (L->param & 15) == 0) return (uint64_t)in->m_len * 3 * C;
    if (L->kind == QS_L_SOFTMAX && (L->param & 15) == 2) return (uint64_t)in->m_len * 3 * (uint64_t)L->out_w; /* m = lines */
    uint64_t outs = (uint64_t)in->m_len * (uint64_t)L->out_h * (uint64_t)L->out_w; /* m = channels */
    if (L->kind == QS_L_SOFTMAX) return 3 * outs;
    if (L->kind == QS_L_MUL) return 2 * outs;
    switch (L->kind) {
    case QS_L_MAXPOOL:
    case QS_L_AVGPOOL: return outs * (uint64_t)L->kh * (uint64_t)L->kw;
    case QS_L_GAP: return outs * (uint64_t)IN->out_h * (uint64_t)IN->out_w;
    case QS_L_ADD: return 2 * outs;
    default: return outs;
    }
}

/* Replays the program by the rules of docs/timing.md ("Queues and tokens",
 * "DMA and DRAM", "Post-processing"), written here without the simulator's
 * code: three in-order queues, tokens on the ring LOAD->COMPUTE->STORE->LOAD
 * (pop "prev" takes a token sent to this queue by the one before it, push
 * "prev" sends one back), one first-come-first-served DRAM channel, one PPU.
 * GEMM durations are taken from the simulator (the array's closed forms are
 * checked separately); every other time must come out equal. Returns the
 * number of disagreements (each reported). */
static int replay_schedule(const qs_net *net, const qs_prog *p, const sched_log *log, uint64_t total, const char *engine)
{
    int bad = 0;
    const qs_arch *a = &p->arch;
    enum { LD = 0, CMP = 1, ST = 2 };
    int32_t *order[3], len[3] = {0, 0, 0};
    for (int q = 0; q < 3; q++) order[q] = qs_malloc(sizeof(int32_t) * (size_t)(p->n_insn + 1));
    for (int32_t i = 0; i < p->n_insn; i++) {
        uint8_t op = p->insn[i].op;
        int q = op == QS_OP_LOAD ? LD : op == QS_OP_STORE ? ST : CMP;
        order[q][len[q]++] = i;
    }
    int64_t tok[3][3]; /* tok[from][to] */
    memset(tok, 0, sizeof tok);
    tok[CMP][LD] = p->init_slots;
    tok[ST][CMP] = p->init_accum;
    struct {
        int32_t pc, cur;
        int busy, in_ppu;
        uint64_t done_at, start, ppu_end;
    } Q[3];
    memset(Q, 0, sizeof Q);
    uint64_t now = 0, dram_free = 0, ppu_free = 0, end = 0;
    int n_dma = 0;
#define DMA_AT(insn_, t_)                                                                                          \
    do {                                                                                                           \
        uint64_t s_ = (t_) > dram_free ? (t_) : dram_free;                                                         \
        if (n_dma >= log->n_dma || log->dma_start[n_dma] != s_)                                                    \
            EXPECT(0, "%s: transfer %d (insn %d, %u bytes) starts at %llu by docs/timing.md, simulator %lld", engine, \
                   n_dma, (int)(insn_), p->insn[insn_].bytes, (unsigned long long)s_,                              \
                   n_dma < log->n_dma ? (long long)log->dma_start[n_dma] : -1LL);                                  \
        n_dma++;                                                                                                   \
        dram_free = s_ + doc_dma_cycles(a, p->insn[insn_].bytes);                                                  \
    } while (0)
    /* each pass completes at least one phase (a STORE has two), so the passes are bounded */
    for (int64_t pass = 0; pass <= 2 * (int64_t)p->n_insn + 2 && bad < 5; pass++) {
        /* phases that end now complete first, in queue order */
        for (int q = 0; q < 3; q++) {
            if (!Q[q].busy || Q[q].done_at > now) continue;
            const qs_insn *in = &p->insn[Q[q].cur];
            if (q == ST && Q[q].in_ppu) { /* post-processing done: the DMA is requested now */
                Q[q].in_ppu = 0;
                Q[q].ppu_end = now;
                DMA_AT(Q[q].cur, now);
                Q[q].done_at = dram_free;
                continue;
            }
            int prev = (q + 2) % 3, next = (q + 1) % 3;
            if (in->deps & QS_DEP_PUSH_PREV) tok[q][prev]++;
            if (in->deps & QS_DEP_PUSH_NEXT) tok[q][next]++;
            const insn_times *t = &log->t[Q[q].cur];
            EXPECT(t->done && t->start == Q[q].start && t->end == now && t->ppu_end == Q[q].ppu_end,
                   "%s: insn %d (op %d, layer %d): start/ppu end/end %llu/%llu/%llu by docs/timing.md, simulator "
                   "%llu/%llu/%llu", engine, (int)Q[q].cur, in->op, in->layer, (unsigned long long)Q[q].start,
                   (unsigned long long)Q[q].ppu_end, (unsigned long long)now, (unsigned long long)t->start,
                   (unsigned long long)t->ppu_end, (unsigned long long)t->end);
            if (in->op == QS_OP_STORE) end = now;
            Q[q].busy = 0;
            Q[q].pc++;
        }
        /* then whatever can start now, LOAD before COMPUTE before STORE, until nothing can */
        for (int progressed = 1; progressed;) {
            progressed = 0;
            for (int q = 0; q < 3; q++) {
                if (Q[q].busy || Q[q].pc >= len[q]) continue;
                int32_t idx = order[q][Q[q].pc];
                const qs_insn *in = &p->insn[idx];
                int prev = (q + 2) % 3, next = (q + 1) % 3;
                if (((in->deps & QS_DEP_POP_PREV) && tok[prev][q] <= 0) || ((in->deps & QS_DEP_POP_NEXT) && tok[next][q] <= 0))
                    continue;
                if (in->deps & QS_DEP_POP_PREV) tok[prev][q]--;
                if (in->deps & QS_DEP_POP_NEXT) tok[next][q]--;
                Q[q].busy = 1;
                Q[q].cur = idx;
                Q[q].start = Q[q].ppu_end = now;
                if (in->op == QS_OP_LOAD) {
                    DMA_AT(idx, now);
                    Q[q].done_at = dram_free;
                } else if (in->op == QS_OP_GEMM) {
                    const insn_times *t = &log->t[idx];
                    Q[q].done_at = now + (t->done && t->end >= t->start ? t->end - t->start : 0);
                } else if (in->op == QS_OP_PASS) {
                    Q[q].done_at = now;
                } else { /* STORE: the PPU first, one tile at a time */
                    uint64_t s0 = now > ppu_free ? now : ppu_free;
                    uint64_t ops = doc_ppu_ops(net, in);
                    ppu_free = s0 + (ops + (uint64_t)a->ppu_lanes - 1) / (uint64_t)a->ppu_lanes;
                    Q[q].done_at = ppu_free;
                    Q[q].in_ppu = 1;
                }
                progressed = 1;
            }
        }
        uint64_t next_t = UINT64_MAX;
        for (int q = 0; q < 3; q++)
            if (Q[q].busy && Q[q].done_at < next_t) next_t = Q[q].done_at;
        if (next_t == UINT64_MAX) break;
        now = next_t;
    }
#undef DMA_AT
    for (int q = 0; q < 3; q++)
        EXPECT(Q[q].pc == len[q], "%s: replay stopped with queue %d at %d of %d", engine, q, (int)Q[q].pc, (int)len[q]);
    EXPECT(n_dma == log->n_dma, "%s: %d transfers by docs/timing.md, simulator %d", engine, n_dma, log->n_dma);
    EXPECT(end == total, "%s: total cycles %llu by docs/timing.md, simulator %llu", engine, (unsigned long long)end,
           (unsigned long long)total);
    for (int q = 0; q < 3; q++) qs_free(order[q]);
    return bad;
}

/* ---- one case: both engines, compared ------------------------------------------------ */

typedef struct {
    int ran, skipped_nofit, ref_checked, overflowed, busy_checked, chunked;
} sim_tally;

static sim_tally g_tally;

#define EV_FIELDS(X)                                                                                              \
    X(cycles) X(mac_ops) X(mac_skipped) X(mac_gated) X(pe_idle) X(acc_overflows) X(reg_bits) X(sram_read_bytes[0]) \
    X(sram_read_bytes[1]) X(sram_read_bytes[2]) X(sram_write_bytes[0]) X(sram_write_bytes[1])                    \
    X(sram_write_bytes[2]) X(dram_read_bytes) X(dram_write_bytes) X(ppu_ops) X(macs) X(macs_executed)            \
    X(dram_acts) X(dram_rd_bursts) X(dram_wr_bursts) X(dram_refreshes) X(dram_bank_active)
#define ST_FIELDS(X) X(start) X(end) X(cycles) X(array_busy) X(stall_dram) X(stall_ppu) X(stall_buffer) X(stall_dep) \
    X(dram.reads) X(dram.writes) X(dram.acts) X(dram.pres) X(dram.refreshes) X(dram.row_hits) X(dram.row_misses)      \
    X(dram.row_conflicts) X(dram.read_latency_sum) X(dram.bank_active)

/* Results of one engine kept for comparisons across configurations. */
typedef struct {
    uint64_t total;
    qs_layer_stats st[8];
} run_result;

/* Compile, run both engines on x, compare everything. Returns the number of
 * failed checks, or -1 when the network does not fit the arch. */
static int run_both(const qs_net *net, const qs_arch *a, const int32_t *x, run_result *res)
{
    int bad = 0;
    qs_prog *p = NULL;
    qs_error e;
    qs_status st = qs_compile(net, a, &p, &e);
    if (st == QS_ERR_NOFIT) return -1;
    EXPECT(st == QS_OK, "compile: %s", e.msg);
    if (st) return bad;
    qs_sim *s[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        st = qs_sim_create(net, p, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &s[k], &e);
        EXPECT(st == QS_OK, "sim_create: %s", e.msg);
        if (st) goto out;
        const qs_layer *IN = &net->layers[0];
        st = qs_sim_set_input(s[k], x, (int64_t)IN->out_c * IN->out_h * IN->out_w, &e);
        EXPECT(st == QS_OK, "set_input: %s", e.msg);
        if (st) goto out;
        sched_log log = {qs_calloc((size_t)p->n_insn + 1, sizeof(insn_times)), p->n_insn, NULL, NULL, 0, 0};
        qs_sim_set_insn_hook(s[k], log_insn, &log);
        qs_sim_set_dma_hook(s[k], log_dma, &log);
        st = qs_sim_run(s[k], &e);
        EXPECT(st == QS_OK, "%s engine: %s", k ? "detailed" : "fast", e.msg);
        /* the replay knows the blocking engine on the simple channel (docs/timing.md "DMA and DRAM");
         * the bank-level model and the other DMA engines are pinned by tests/test_dram.c */
        if (!st && a->timing == QS_TIMING_NATIVE && a->dram_model == QS_DRAM_SIMPLE && a->dma_outstanding == 1 &&
            a->dma_request_bytes == 0 && !a->dma_separate_write)
            bad += replay_schedule(net, p, &log, qs_sim_total_cycles(s[k]), k ? "detailed" : "fast");
        qs_sim_set_insn_hook(s[k], NULL, NULL);
        qs_sim_set_dma_hook(s[k], NULL, NULL);
        sched_log_free(&log);
        if (st) goto out;
    }
    EXPECT(qs_sim_total_cycles(s[0]) == qs_sim_total_cycles(s[1]), "total cycles fast %llu detailed %llu",
           (unsigned long long)qs_sim_total_cycles(s[0]), (unsigned long long)qs_sim_total_cycles(s[1]));
    EXPECT(qs_sim_total_cycles(s[0]) > 0, "no cycles");
    if (res) res->total = qs_sim_total_cycles(s[1]);
    for (int li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        int64_t n = (int64_t)L->out_c * L->out_h * L->out_w;
        const int32_t *o0 = qs_sim_layer_output(s[0], li), *o1 = qs_sim_layer_output(s[1], li);
        int64_t diff = -1;
        for (int64_t i = 0; i < n && diff < 0; i++)
            if (o0[i] != o1[i]) diff = i;
        EXPECT(diff < 0, "layer %d '%s': output %lld fast %d detailed %d", li, L->name, (long long)diff,
               diff >= 0 ? o0[diff] : 0, diff >= 0 ? o1[diff] : 0);
        const qs_layer_stats *a0 = qs_sim_layer_stats(s[0], li), *a1 = qs_sim_layer_stats(s[1], li);
        if (res && li < 8) res->st[li] = *a1;
#define CMP_ST(f) EXPECT(a0->f == a1->f, "layer %d '%s': " #f " fast %llu detailed %llu", li, L->name, \
                         (unsigned long long)a0->f, (unsigned long long)a1->f);
#define CMP_EV(f) EXPECT(a0->ev.f == a1->ev.f, "layer %d '%s': ev." #f " fast %llu detailed %llu", li, L->name, \
                         (unsigned long long)a0->ev.f, (unsigned long long)a1->ev.f);
        ST_FIELDS(CMP_ST)
        EV_FIELDS(CMP_EV)
#undef CMP_ST
#undef CMP_EV
        if (L->kind != QS_L_CONV && L->kind != QS_L_FC) continue;
        /* cycles against the closed forms, from the layer's real input */
        const int32_t *lin = qs_sim_layer_output(s[1], L->inputs[0]);
        uint64_t busy, bstall;
        qs_events wev;
        expected_busy_ev(net, p, li, lin, &busy, &bstall, &wev);
        /* the layer's loads and stores: "Events" in docs/timing.md */
        for (int32_t i = p->maps[li].first_insn; i < p->maps[li].first_insn + p->maps[li].n_insn; i++) {
            const qs_insn *in = &p->insn[i];
            if (in->op == QS_OP_LOAD) {
                wev.dram_read_bytes += in->bytes;
                wev.sram_write_bytes[in->mem] += in->bytes;
            } else if (in->op == QS_OP_STORE) {
                wev.dram_write_bytes += in->bytes;
                wev.sram_read_bytes[QS_BUF_ACCUM] += in->bytes;
                wev.ppu_ops += doc_ppu_ops(net, in);
            }
        }
#define CMP_DOC(f) EXPECT(a1->ev.f == wev.f, "layer %d '%s': ev." #f " %llu, docs/timing.md gives %llu", li, L->name, \
                          (unsigned long long)a1->ev.f, (unsigned long long)wev.f);
        CMP_DOC(reg_bits) CMP_DOC(macs_executed) CMP_DOC(sram_read_bytes[0]) CMP_DOC(sram_read_bytes[1])
        CMP_DOC(sram_read_bytes[2]) CMP_DOC(sram_write_bytes[0]) CMP_DOC(sram_write_bytes[1]) CMP_DOC(sram_write_bytes[2])
        CMP_DOC(dram_read_bytes) CMP_DOC(dram_write_bytes) CMP_DOC(ppu_ops)
#undef CMP_DOC
        EXPECT(a1->ev.mac_ops + a1->ev.mac_gated == wev.mac_ops, "layer %d '%s': %llu active + %llu gated PE operations, "
               "docs/timing.md gives %llu", li, L->name, (unsigned long long)a1->ev.mac_ops,
               (unsigned long long)a1->ev.mac_gated, (unsigned long long)wev.mac_ops);
        EXPECT(a1->array_busy == busy && a0->array_busy == busy,
               "layer %d '%s': array busy fast %llu detailed %llu, docs/timing.md gives %llu", li, L->name,
               (unsigned long long)a0->array_busy, (unsigned long long)a1->array_busy, (unsigned long long)busy);
        EXPECT(a1->stall_buffer == bstall, "layer %d '%s': buffer stall %llu, docs/timing.md gives %llu", li, L->name,
               (unsigned long long)a1->stall_buffer, (unsigned long long)bstall);
        g_tally.busy_checked++;
        for (int32_t i = p->maps[li].first_insn; i < p->maps[li].first_insn + p->maps[li].n_insn; i++)
            if (p->insn[i].op == QS_OP_GEMM && !(p->insn[i].flags & QS_GEMM_FIRST_K)) {
                g_tally.chunked++;
                break;
            }
        /* values against the reference when no accumulator overflowed */
        const qs_layer_map *m = &p->maps[li];
        if (m->overflow_free)
            EXPECT(a0->ev.acc_overflows == 0 && a1->ev.acc_overflows == 0,
                   "layer %d '%s' proven overflow-free but %llu overflows counted", li, L->name,
                   (unsigned long long)a1->ev.acc_overflows);
        if (m->overflow_free || a1->ev.acc_overflows == 0) {
            int32_t *ref = qs_malloc(sizeof(int32_t) * (size_t)n);
            ref_layer(net, li, lin, ref);
            int64_t d2 = -1;
            for (int64_t i = 0; i < n && d2 < 0; i++)
                if (ref[i] != o1[i]) d2 = i;
            EXPECT(d2 < 0, "layer %d '%s': output %lld is %d, reference %d", li, L->name, (long long)d2,
                   d2 >= 0 ? o1[d2] : 0, d2 >= 0 ? ref[d2] : 0);
            qs_free(ref);
            g_tally.ref_checked++;
        } else {
            g_tally.overflowed++;
        }
    }
out:
    qs_sim_destroy(s[0]);
    qs_sim_destroy(s[1]);
    qs_prog_destroy(p);
    return bad;
}

static void describe_cfg(const sim_cfg *c, char *buf, size_t n)
{
    snprintf(buf, n, "%dx%d %s wpb %d mwb %d mab %d skip %s/%d lookahead %d acc %d %s buf %d/%d/%d%s banks %dx%d %dx%d %dx%dx%d "
             "dram %g/%d/%d lanes %d %s",
             c->rows, c->cols, DFN[c->df], c->wpb, c->mwb, c->mab, SKN[c->skip], c->group, c->lookahead, c->acc_bits,
             c->ovf == QS_OVF_WRAP ? "wrap" : "sat", c->ikib, c->wkib, c->akib, c->dbl ? "d" : "", c->ibanks, c->iwidth,
             c->wbanks, c->wwidth, c->abanks, c->awidth, c->aports, c->dram_bpc, c->dram_lat, c->burst, c->lanes,
             c->mem);
}

/* ---- randomized equivalence --------------------------------------------------------- */

static void test_random_equivalence(void)
{
    static const qs_dtype WDT[4] = {QS_DT_BIPOLAR, QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
    static const int WB[4] = {1, 2, 4, 8};
    rn_rng r = {0x5EED5111ull};
    rn_rng rla = {0x100CA4EADull}; /* lookahead draws apart, so the other cases stay as they were */
    rn_rng rcq = {0x2C0DEC0Full};  /* command-queue draws apart likewise */
    memset(&g_tally, 0, sizeof g_tally);
    int la_cases = 0;
    int n_cases = 3000;
    for (int it = 0; it < n_cases; it++) {
        sim_cfg c = default_cfg();
        c.df = (qs_dataflow)(it % 3);
        int wide_arr = rn_chance(&r, 0.2);
        c.rows = rn_int(&r, 1, wide_arr ? 16 : 8);
        c.cols = rn_int(&r, 1, wide_arr ? 16 : 8);
        static const int WPB[4] = {1, 2, 4, 8};
        c.wpb = WPB[rn_int(&r, 0, 3)];
        c.skip = (qs_zero_skip)((it / 3) % 5);
        int narrow = rn_chance(&r, 0.35);
        int wi = (it / 15) % 4;            /* weight width of this case */
        int abits = rn_int(&r, 2, narrow ? 4 : 8);
        if (narrow && wi == 3) wi = rn_int(&r, 0, 2);
        int big = rn_chance(&r, 0.3); /* larger layers on tiny buffers: tiles and k-chunks */
        rn_limits lim = {WB[wi], abits, big ? 12 : 8, narrow || big ? 12 : 6, big ? 16 : 10, big ? 30000 : 3000, 2, big ? 0.5 : 0.25};
        rn_spec s;
        rn_random_spec(&r, &lim, &s);
        int wsign = rn_chance(&r, 0.6);
        int maxw = 1;
        for (int i = 0; i < s.n; i++) {
            s.l[i].wdt = WDT[wi];
            s.l[i].wsigned = WDT[wi] == QS_DT_BIPOLAR ? 1 : wsign;
            if (narrow) {
                s.l[i].wzero = s.l[i].wrowzero = s.l[i].wcolzero = 0.0;
                s.l[i].out_signed = 0; /* same-sign operands: sums grow */
                s.l[i].out_zp = 0;
                s.l[i].relu = 0;
            }
            if (WB[wi] > maxw) maxw = WB[wi];
        }
        c.mwb = (int)cdiv64(maxw, c.wpb) * c.wpb;
        if (c.mwb < c.wpb) c.mwb = c.wpb;
        c.mab = abits;
        if (narrow) {
            c.acc_bits = c.mwb + c.mab < 8 ? 8 : c.mwb + c.mab;
            c.acc_bits += rn_int(&r, 0, 1);
            s.sgn = 0;
            s.zp = 0;
        } else {
            c.acc_bits = rn_chance(&r, 0.5) ? 32 : rn_int(&r, c.mwb + c.mab > 16 ? c.mwb + c.mab : 16, 32);
        }
        c.ovf = rn_chance(&r, 0.5) ? QS_OVF_WRAP : QS_OVF_SATURATE;
        /* skip group: a divisor of rows */
        c.group = 1;
        for (int t = 0; t < 6; t++) {
            int gg = rn_int(&r, 1, c.rows);
            if (c.rows % gg == 0) c.group = gg;
        }
        if (rn_chance(&r, 0.3)) c.group = c.rows;
        c.ikib = big ? 1 : rn_int(&r, 1, 4);
        c.wkib = big ? 1 : rn_int(&r, 1, 2);
        c.akib = big ? 1 : rn_int(&r, 1, 2);
        c.dbl = rn_chance(&r, 0.8);
        static const int P2[4] = {1, 2, 4, 8};
        c.ibanks = P2[rn_int(&r, 0, 2)];
        c.iwidth = P2[rn_int(&r, 0, 3)];
        c.wbanks = P2[rn_int(&r, 0, 2)];
        c.wwidth = P2[rn_int(&r, 0, 3)];
        c.abanks = P2[rn_int(&r, 0, 2)];
        c.awidth = P2[rn_int(&r, 2, 3)]; /* at least one 4-byte accumulator */
        c.aports = rn_int(&r, 1, 2);
        static const double BPC[4] = {1.0, 4.0, 16.5, 64.0};
        c.dram_bpc = BPC[rn_int(&r, 0, 3)];
        c.dram_lat = rn_int(&r, 0, 2) * 50;
        c.burst = rn_chance(&r, 0.5) ? 16 : 64;
        c.lanes = P2[rn_int(&r, 0, 3)];
        if (c.df == QS_DF_OS && (c.skip == QS_SKIP_WEIGHTS || c.skip == QS_SKIP_BOTH) && rn_chance(&rla, 0.6))
            c.lookahead = rn_int(&rla, 1, 4);
        /* the memory system: a bank-level DRAM preset with a random queue
         * depth and page policy, and DMA engines with outstanding requests */
        if (rn_chance(&r, 0.4)) {
            static const char *const MODELS[4] = {"ddr4_3200", "lpddr4_4266", "lpddr5_6400", "hbm2"};
            static const int QD[4] = {1, 2, 8, 32};
            static const int RB[4] = {0, 32, 64, 256};
            static const int WB[3] = {0, 4, 32};
            const char *model = MODELS[rn_int(&r, 0, 3)];
            int qd = QD[rn_int(&r, 0, 3)];
            const char *page = rn_chance(&r, 0.7) ? "open" : "closed";
            int cqd = rn_chance(&rcq, 0.5) ? 0 : (int)QD[rn_int(&rcq, 0, 2)];
            /* with command queues: either arbiter, with or without the write buffer */
            int rr = cqd && rn_chance(&rcq, 0.5), wb = cqd ? WB[rn_int(&rcq, 0, 2)] : 0;
            snprintf(c.mem, sizeof c.mem,
                     "model = %s\nqueue_depth = %d\npage_policy = %s\ncmd_queue_depth = %d\ncmd_arbiter = %s\n"
                     "write_buffer = %d\n[dma]\noutstanding = %d\nrequest_bytes = %d\nseparate_write_engine = %d\n",
                     model, qd, page, cqd, rr ? "round_robin" : "oldest", wb, P2[rn_int(&r, 0, 3)], RB[rn_int(&r, 0, 3)],
                     rn_int(&r, 0, 1));
        } else if (rn_chance(&r, 0.3)) {
            snprintf(c.mem, sizeof c.mem, "[dma]\noutstanding = %d\nrequest_bytes = %d\nseparate_write_engine = %d\n",
                     P2[rn_int(&r, 0, 3)], 16 << rn_int(&r, 0, 4), rn_int(&r, 0, 1));
        }
        qs_arch a;
        if (!make_arch(&c, &a)) continue;
        la_cases += c.lookahead > 0;
        qs_net *net = rn_build(&s);
        qs_error e;
        if (qs_net_validate(net, "rand", &e) != QS_OK) {
            fprintf(stderr, "\n  generated network invalid: %s\n", e.msg);
            CU_FAIL("generated network invalid");
            qs_net_destroy(net);
            continue;
        }
        double zf = (double)rn_int(&r, 0, 9) / 10.0, cz = rn_chance(&r, 0.4) ? 0.4 : 0.0;
        if (narrow) zf = cz = 0.0; /* dense operands: make the narrow accumulator overflow */
        int32_t *x = rn_input(&r, net, zf, cz);
        char d1[1024], d2[512], ctx[1700];
        rn_describe(&s, d1, sizeof d1);
        describe_cfg(&c, d2, sizeof d2);
        snprintf(ctx, sizeof ctx, "sim case %d: %s; act zeros %.1f/%.1f; %s", it, d2, zf, cz, d1);
        g_case = ctx;
        int rc = run_both(net, &a, x, NULL);
        if (rc < 0) g_tally.skipped_nofit++;
        else g_tally.ran++;
        qs_free(x);
        qs_net_destroy(net);
    }
    g_case = "";
    printf("\n    %d cases run (%d refused as NOFIT), %d layers checked against the closed-form cycles, %d against the "
           "reference, %d overflowed, %d split into k-chunks ",
           g_tally.ran, g_tally.skipped_nofit, g_tally.busy_checked, g_tally.ref_checked, g_tally.overflowed,
           g_tally.chunked);
    printf("(%d with lookahead) ", la_cases);
    CU_ASSERT(g_tally.ran >= n_cases * 8 / 10);
    CU_ASSERT(la_cases >= 200);
    CU_ASSERT(g_tally.overflowed >= 150);
    CU_ASSERT(g_tally.chunked >= 150);
    CU_ASSERT(g_tally.ref_checked >= 100);
}

/* ---- dedicated timing rules ----------------------------------------------------------- */

/* A single conv layer with given shape and weight dtype; weights dense nonzero. */
static qs_net *timing_net(int c, int h, int w, int k, int out_c, qs_dtype wdt, int abits, uint64_t seed)
{
    return rn_one_conv(c, h, w, k, out_c, wdt, abits, 8, seed);
}

/* Nonzero input everywhere except where zero(c, m) says. */
static int32_t *timing_input(const qs_net *net, int (*zero)(int c, int m))
{
    const qs_layer *L = &net->layers[0];
    int hw = L->out_h * L->out_w;
    int32_t *x = qs_malloc(sizeof(int32_t) * (size_t)(L->out_c * hw));
    int32_t lo, hi;
    qs_int_range(L->out_bits, L->out_signed, &lo, &hi);
    for (int c = 0; c < L->out_c; c++)
        for (int m = 0; m < hw; m++) x[c * hw + m] = zero && zero(c, m) ? 0 : 1 + (c * 7 + m * 3) % hi;
    return x;
}

static int z_none(int c, int m) { (void)c; (void)m; return 0; }
static int z_half_channels(int c, int m) { (void)m; return c % 2 == 1; }
static int z_checker(int c, int m) { return (c + m) % 2 == 1; }

static uint64_t busy_of(const qs_net *net, const sim_cfg *c, const int32_t *x, run_result *rr)
{
    qs_arch a;
    if (!make_arch(c, &a)) return 0;
    int bad = run_both(net, &a, x, rr);
    CU_ASSERT_EQUAL(bad, 0);
    return rr->st[1].array_busy;
}

static void test_os_tile_formula(void)
{
    /* one array tile: M = 4 pixels <= rows, N = 3 <= cols, K = 6 (1x1 conv over 6 channels) */
    int bad = 0;
    g_case = "os tile formula";
    g_fail_msgs = 0;
    qs_net *net = timing_net(6, 2, 2, 1, 3, QS_DT_INT2, 4, 11);
    int32_t *x = timing_input(net, z_none);
    for (int G = 1; G <= 4; G *= 2) {
        sim_cfg c = default_cfg();
        c.mab = 4;
        c.skip = QS_SKIP_ACTIVATIONS;
        c.group = G;
        run_result rr;
        uint64_t busy = busy_of(net, &c, x, &rr);
        /* L = 6 steps x 1 slice, rate 1: (6-1) + G + 3 - 1, + 4 rows of drain */
        uint64_t want = (uint64_t)((6 - 1) * 1 + G + 3 - 1 + 4);
        EXPECT(busy == want, "G %d: busy %llu, want %llu", G, (unsigned long long)busy, (unsigned long long)want);
    }
    /* rate 2 from a 1-byte-wide ifmap bank: 4 rows x 4 bits = 2 bytes per step */
    sim_cfg c = default_cfg();
    c.mab = 4;
    c.ibanks = 1;
    c.iwidth = 1;
    run_result rr;
    uint64_t busy = busy_of(net, &c, x, &rr);
    EXPECT(busy == (uint64_t)((6 - 1) * 2 + 1 + 3 - 1 + 4), "rate 2: busy %llu", (unsigned long long)busy);
    EXPECT(rr.st[1].stall_buffer == 5, "rate 2: buffer stall %llu, want (L-1)*(rate-1) = 5",
           (unsigned long long)rr.st[1].stall_buffer);
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

static void test_activation_skipping(void)
{
    int bad = 0;
    g_case = "activation skipping";
    g_fail_msgs = 0;
    /* 1x1 conv over 8 channels, 4x4 pixels on a 4x4 OS array */
    qs_net *net = timing_net(8, 4, 4, 1, 4, QS_DT_INT4, 4, 12);
    int32_t *dense = timing_input(net, z_none), *halfc = timing_input(net, z_half_channels),
            *chk = timing_input(net, z_checker);
    for (int G = 1; G <= 4; G *= 2) {
        sim_cfg gate = default_cfg(), act = default_cfg();
        gate.mab = act.mab = 4;
        gate.skip = QS_SKIP_GATE;
        act.skip = QS_SKIP_ACTIVATIONS;
        gate.group = act.group = G;
        run_result r1, r2;
        /* no zero activations: skipping changes nothing */
        EXPECT(busy_of(net, &gate, dense, &r1) == busy_of(net, &act, dense, &r2), "G %d dense: %llu vs %llu", G,
               (unsigned long long)r1.st[1].array_busy, (unsigned long long)r2.st[1].array_busy);
        /* whole channels zero: every group skips those steps */
        uint64_t bg = busy_of(net, &gate, halfc, &r1), ba = busy_of(net, &act, halfc, &r2);
        EXPECT(ba < bg, "G %d zero channels: skipping %llu, gating %llu", G, (unsigned long long)ba,
               (unsigned long long)bg);
        EXPECT(r2.st[1].ev.mac_skipped > 0, "G %d: no MAC counted as skipped", G);
        /* zeros in a checkerboard of (channel, pixel): every single row has half
         * its steps zero, but two neighbouring rows never share a zero step */
        bg = busy_of(net, &gate, chk, &r1);
        ba = busy_of(net, &act, chk, &r2);
        if (G == 1) EXPECT(ba < bg, "G 1 checkerboard: skipping %llu, gating %llu", (unsigned long long)ba, (unsigned long long)bg);
        else EXPECT(ba == bg, "G %d checkerboard: skipping %llu, gating %llu", G, (unsigned long long)ba, (unsigned long long)bg);
    }
    qs_free(dense);
    qs_free(halfc);
    qs_free(chk);
    qs_net_destroy(net);
    g_case = "";
}

/* Under [timing] convention = scalesim all rows of the OS array move together
 * (sim/array.c lockstep_group: SCALE-Sim has no skip groups), so skip_group
 * changes nothing, and both engines agree. Found by tests/fuzz/fuzz_net_engines:
 * the fast engine counted zero activations per skip_group rows while it
 * scheduled whole-array groups, so with skip_group < rows its gated MACs (and,
 * with activation skipping, its cycles) differed from the detailed engine's. */
static void test_scalesim_ignores_skip_group(void)
{
    int bad = 0;
    g_case = "scalesim skip_group";
    g_fail_msgs = 0;
    qs_net *net = timing_net(8, 4, 4, 1, 4, QS_DT_INT4, 4, 12);
    int32_t *chk = timing_input(net, z_checker);
    const qs_zero_skip modes[3] = {QS_SKIP_GATE, QS_SKIP_ACTIVATIONS, QS_SKIP_BOTH};
    for (int mi = 0; mi < 3; mi++) {
        run_result base;
        memset(&base, 0, sizeof base);
        for (int G = 1; G <= 4; G *= 2) {
            sim_cfg c = default_cfg();
            c.mab = 4;
            c.skip = modes[mi];
            c.group = G;
            qs_arch a;
            if (!make_arch(&c, &a)) continue;
            a.timing = QS_TIMING_SCALESIM;
            run_result r;
            /* run_both's closed forms are the native convention's: compare the engines here */
            qs_prog *p = NULL;
            qs_error e;
            EXPECT(qs_compile(net, &a, &p, &e) == QS_OK, "compile: %s", e.msg);
            if (!p) continue;
            qs_sim *s[2] = {NULL, NULL};
            for (int k = 0; k < 2; k++) {
                EXPECT(qs_sim_create(net, p, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &s[k], &e) == QS_OK, "%s", e.msg);
                EXPECT(s[k] && qs_sim_set_input(s[k], chk, 8 * 4 * 4, &e) == QS_OK && qs_sim_run(s[k], &e) == QS_OK,
                       "run: %s", e.msg);
            }
            if (s[0] && s[1]) {
                const qs_layer_stats *a0 = qs_sim_layer_stats(s[0], 1), *a1 = qs_sim_layer_stats(s[1], 1);
#define CMP_ST(f) EXPECT(a0->f == a1->f, "%s G %d: " #f " fast %llu detailed %llu", SKN[c.skip], G, \
                         (unsigned long long)a0->f, (unsigned long long)a1->f);
#define CMP_EV(f) EXPECT(a0->ev.f == a1->ev.f, "%s G %d: ev." #f " fast %llu detailed %llu", SKN[c.skip], G, \
                         (unsigned long long)a0->ev.f, (unsigned long long)a1->ev.f);
                ST_FIELDS(CMP_ST)
                EV_FIELDS(CMP_EV)
#undef CMP_ST
#undef CMP_EV
                EXPECT(memcmp(&a0->ss, &a1->ss, sizeof a0->ss) == 0, "%s G %d: SCALE-Sim figures differ", SKN[c.skip], G);
                r.total = qs_sim_total_cycles(s[1]);
                r.st[1] = *a1;
            }
            qs_sim_destroy(s[0]);
            qs_sim_destroy(s[1]);
            qs_prog_destroy(p);
            if (!s[0] || !s[1]) continue;
            if (G == 1) {
                base = r;
                continue;
            }
            EXPECT(r.total == base.total, "%s G %d: %llu cycles, G 1 %llu", SKN[c.skip], G,
                   (unsigned long long)r.total, (unsigned long long)base.total);
            EXPECT(r.st[1].ev.mac_gated == base.st[1].ev.mac_gated && r.st[1].ev.mac_ops == base.st[1].ev.mac_ops,
                   "%s G %d: gated %llu ops %llu, G 1 gated %llu ops %llu", SKN[c.skip], G,
                   (unsigned long long)r.st[1].ev.mac_gated, (unsigned long long)r.st[1].ev.mac_ops,
                   (unsigned long long)base.st[1].ev.mac_gated, (unsigned long long)base.st[1].ev.mac_ops);
        }
    }
    qs_free(chk);
    qs_net_destroy(net);
    g_case = "";
}

/* Lookahead by hand (docs/timing.md "Lookahead weight skipping"): a 1x1 conv
 * of 4 pixels over K = 2 or 4 channels into 2 output channels whose weights
 * interleave, on a 4x4 OS array (rate 1, Cu = 2, ru = 4). */
static void set_weights(qs_net *net, const int32_t *w, int n)
{
    int32_t *d = net->tensors[net->layers[1].weight].data;
    for (int i = 0; i < n; i++) d[i] = w[i];
}

static int z_channel0(int c, int m) { (void)m; return c == 0; }

static void test_lookahead_by_hand(void)
{
    int bad = 0;
    g_case = "lookahead by hand";
    g_fail_msgs = 0;
    /* int2 weights (one slice): column 0 = (1, 0, 0, 1), column 1 = (0, 1, 1, 0).
     * Effectual steps: column 0 {0, 3}, column 1 {1, 2}.
     *   H = 1: head 0 takes 0 (col 0) and 1 (col 1); head 2 takes 3 and 2: 2 cycles.
     *   H = 2: the same 2 cycles (each column holds two steps, one a cycle).
     *   H = 3: the same.
     * All 4 rows move in lockstep: busy = (Lc - 1) + ru + Cu - 1 + ru (drain)
     * = Lc + 8. Without lookahead (skip_group = 4, the same lockstep) the list
     * keeps all 4 positions (none is zero in both columns): 12, and every
     * step feeds both columns: 4 x 2 x 4 = 32 PE operations, against 16. */
    static const int32_t W1[8] = {1, 0, 0, 1, 0, 1, 1, 0};
    /* int4 weights on a 2-bit path (two slices): column 0 = (1, 4): slices
     * (1, 0), (0, 1), so steps {0, 3}; column 1 = (4, 1): steps {1, 2}. */
    static const int32_t W2[4] = {1, 4, 4, 1};
    /* zero activations on channel 0: the slots of list position 0 gate on
     * every row: column 0's in case 0 (4 products), both columns' in case 1 (8) */
    static const int GATED[2] = {4, 8};
    for (int v = 0; v < 2; v++) {
        qs_net *net = timing_net(v ? 2 : 4, 2, 2, 1, 2, v ? QS_DT_INT4 : QS_DT_INT2, 4, 21);
        set_weights(net, v ? W2 : W1, v ? 4 : 8);
        int32_t *x = timing_input(net, z_none), *x0 = timing_input(net, z_channel0);
        sim_cfg c = default_cfg();
        c.mab = 4;
        c.mwb = 4;
        c.skip = QS_SKIP_WEIGHTS;
        c.group = 4;
        run_result rr;
        uint64_t plain = busy_of(net, &c, x, &rr);
        EXPECT(plain == 12, "case %d without lookahead: busy %llu, want 12", v, (unsigned long long)plain);
        EXPECT(rr.st[1].ev.mac_ops + rr.st[1].ev.mac_gated == 32, "case %d without lookahead: %llu PE operations, "
               "want 32", v, (unsigned long long)(rr.st[1].ev.mac_ops + rr.st[1].ev.mac_gated));
        for (int H = 1; H <= 3; H++) {
            c.lookahead = H;
            uint64_t busy = busy_of(net, &c, x, &rr);
            EXPECT(busy == 2 + 8, "case %d H %d: busy %llu, want 10", v, H, (unsigned long long)busy);
            /* 4 effectual slots x 4 rows are PE operations; no idle slot is one */
            EXPECT(rr.st[1].ev.mac_ops + rr.st[1].ev.mac_gated == 16, "case %d H %d: %llu PE operations, want 16", v,
                   H, (unsigned long long)(rr.st[1].ev.mac_ops + rr.st[1].ev.mac_gated));
            /* time is the weights' alone: zero activations only gate */
            busy = busy_of(net, &c, x0, &rr);
            EXPECT(busy == 2 + 8, "case %d H %d zero channel: busy %llu", v, H, (unsigned long long)busy);
            EXPECT(rr.st[1].ev.mac_gated == (uint64_t)GATED[v], "case %d H %d: gated %llu, want %d", v, H,
                   (unsigned long long)rr.st[1].ev.mac_gated, GATED[v]);
            /* weight reads ceil(Lc * Cu * (p + ob) / 8), ob = ceil(log2(H + 1)) */
            int ob = H >= 2 ? 2 : 1;
            uint64_t wb = (uint64_t)((2 * 2 * (2 + ob) + 7) / 8);
            EXPECT(rr.st[1].ev.sram_read_bytes[QS_BUF_WEIGHT] == wb, "case %d H %d: weight reads %llu, want %llu", v, H,
                   (unsigned long long)rr.st[1].ev.sram_read_bytes[QS_BUF_WEIGHT], (unsigned long long)wb);
        }
        /* the window needs (H + 1) x 4 rows x 4 bits a clock: a 1-byte-wide ifmap
         * bank pair (2 bytes) gives rate 2 at H = 1: (2 - 1) x 2 + 4 + 2 - 1 + 4 = 11 */
        c.lookahead = 1;
        c.ibanks = 2;
        c.iwidth = 1;
        uint64_t busy = busy_of(net, &c, x, &rr);
        EXPECT(busy == (uint64_t)(2 - 1) * 2 + 4 + 2 - 1 + 4, "case %d rate 2: busy %llu, want 11", v,
               (unsigned long long)busy);
        qs_free(x);
        qs_free(x0);
        qs_net_destroy(net);
    }
    g_case = "";
}

static void test_weight_width(void)
{
    int bad = 0;
    g_case = "weight width";
    g_fail_msgs = 0;
    static const qs_dtype DT[3] = {QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
    for (int df = 0; df < 3; df++) {
        uint64_t b[3];
        for (int i = 0; i < 3; i++) {
            /* one tile: 4 pixels, 3 channels, K = 5 */
            qs_net *net = timing_net(5, 2, 2, 1, 3, DT[i], 4, 13);
            int32_t *x = timing_input(net, z_none);
            sim_cfg c = default_cfg();
            c.df = (qs_dataflow)df;
            c.mab = 4;
            c.rows = df == QS_DF_OS ? 4 : 8; /* WS/IS: all of K in one pass */
            c.group = 1;
            run_result rr;
            b[i] = busy_of(net, &c, x, &rr);
            qs_free(x);
            qs_net_destroy(net);
        }
        /* slices 1, 2, 4 on the 2-bit path */
        EXPECT(b[0] < b[1] && b[1] < b[2], "%s: busy %llu %llu %llu not increasing", DFN[df], (unsigned long long)b[0],
               (unsigned long long)b[1], (unsigned long long)b[2]);
        if (df == QS_DF_OS) {
            /* (K*S - 1) + G + C - 1 + rows: each extra slice adds K cycles */
            EXPECT(b[1] - b[0] == 5 && b[2] - b[0] == 15, "OS: busy %llu %llu %llu", (unsigned long long)b[0],
                   (unsigned long long)b[1], (unsigned long long)b[2]);
        } else if (df == QS_DF_WS) {
            /* one full pass (preload + stream) per slice */
            EXPECT(b[1] == 2 * b[0] && b[2] == 4 * b[0], "WS: busy %llu %llu %llu", (unsigned long long)b[0],
                   (unsigned long long)b[1], (unsigned long long)b[2]);
        } else {
            /* the stream of 3 columns gets S times longer */
            EXPECT(b[1] - b[0] == 3 && b[2] - b[0] == 9, "IS: busy %llu %llu %llu", (unsigned long long)b[0],
                   (unsigned long long)b[1], (unsigned long long)b[2]);
        }
    }
    g_case = "";
}

static void test_dram_bandwidth(void)
{
    int bad = 0;
    g_case = "dram bandwidth";
    g_fail_msgs = 0;
    /* fc 1x16x16 -> 32 with int8 weights: 8 KiB of weights for 8 Ki MACs */
    rn_spec s;
    memset(&s, 0, sizeof s);
    s.c = 1;
    s.h = s.w = 16;
    s.bits = 4;
    s.n = 1;
    s.seed = 14;
    s.l[0].kind = QS_L_FC;
    s.l[0].out_c = 32;
    s.l[0].wdt = QS_DT_INT8;
    s.l[0].wsigned = 1;
    s.l[0].out_bits = 8;
    s.l[0].rq_mode = 1;
    s.l[0].rq_gain = 1.0;
    qs_net *net = rn_build(&s);
    int32_t *x = timing_input(net, z_none);
    for (int df = 0; df < 3; df++) {
        sim_cfg slow = default_cfg(), fast = default_cfg();
        slow.df = fast.df = (qs_dataflow)df;
        slow.mab = fast.mab = 4;
        slow.wpb = fast.wpb = 8; /* one slice: little compute per weight byte */
        slow.dram_bpc = 0.25;
        slow.dram_lat = 100;
        fast.dram_bpc = 65536.0;
        fast.dram_lat = 0;
        fast.burst = slow.burst = 16;
        run_result rs, rf;
        busy_of(net, &slow, x, &rs);
        busy_of(net, &fast, x, &rf);
        uint64_t ss = rs.st[1].stall_dram, sf = rf.st[1].stall_dram;
        EXPECT(ss > rs.st[1].array_busy, "%s: slow DRAM stalls %llu not above busy %llu (not memory-bound)", DFN[df],
               (unsigned long long)ss, (unsigned long long)rs.st[1].array_busy);
        /* with the DRAM out of the way only the first load and the last store's
         * transfer (the layer's unavoidable fill and tail) remain */
        EXPECT(sf <= 4, "%s: fast DRAM still stalls %llu cycles (slow: %llu)", DFN[df], (unsigned long long)sf,
               (unsigned long long)ss);
        EXPECT(rf.total < rs.total, "%s: cycles %llu with fast DRAM, %llu with slow", DFN[df],
               (unsigned long long)rf.total, (unsigned long long)rs.total);
        EXPECT(rf.st[1].array_busy == rs.st[1].array_busy, "%s: DRAM changed the busy time", DFN[df]);
    }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

/* Outstanding requests hide DRAM latency: a depthwise layer (one small
 * input window and 9 weights per group, each its own LOAD) is latency-bound
 * on a blocking engine; with 8 outstanding requests the next group's loads
 * issue while the previous ones are in flight, so the layer takes fewer
 * cycles and fewer DRAM stalls, with the same array time and the same
 * traffic; on the simple channel and on the DDR4 bank model. */
static void test_outstanding_requests(void)
{
    int bad = 0;
    g_case = "outstanding requests";
    g_fail_msgs = 0;
    rn_spec s;
    memset(&s, 0, sizeof s);
    s.c = 32;
    s.h = s.w = 6;
    s.bits = 8;
    s.n = 1;
    s.seed = 21;
    s.l[0].kind = QS_L_CONV;
    s.l[0].out_c = 32;
    s.l[0].groups = 32;
    s.l[0].kh = s.l[0].kw = 3;
    s.l[0].sh = s.l[0].sw = s.l[0].dh = s.l[0].dw = 1;
    s.l[0].pt = s.l[0].pb = s.l[0].pl = s.l[0].pr = 1;
    s.l[0].wdt = QS_DT_INT8;
    s.l[0].wsigned = 1;
    s.l[0].out_bits = 8;
    s.l[0].rq_mode = 1;
    s.l[0].rq_gain = 1.0;
    qs_net *net = rn_build(&s);
    int32_t *x = timing_input(net, z_none);
    for (int bank = 0; bank < 2; bank++) {
        sim_cfg blk = default_cfg(), nb = default_cfg();
        blk.dram_lat = nb.dram_lat = 200;
        snprintf(blk.mem, sizeof blk.mem, "%s", bank ? "model = ddr4_3200\n" : "");
        snprintf(nb.mem, sizeof nb.mem, "%s[dma]\noutstanding = 8\n", bank ? "model = ddr4_3200\n" : "");
        run_result rb, rn;
        busy_of(net, &blk, x, &rb);
        busy_of(net, &nb, x, &rn);
        EXPECT(rn.total < rb.total, "%s: %llu cycles with 8 outstanding, %llu blocking", bank ? "ddr4" : "simple",
               (unsigned long long)rn.total, (unsigned long long)rb.total);
        EXPECT(rn.st[1].stall_dram < rb.st[1].stall_dram, "%s: DRAM stalls %llu with 8 outstanding, %llu blocking",
               bank ? "ddr4" : "simple", (unsigned long long)rn.st[1].stall_dram,
               (unsigned long long)rb.st[1].stall_dram);
        EXPECT(rn.st[1].array_busy == rb.st[1].array_busy, "array time changed");
        EXPECT(rn.st[1].ev.dram_read_bytes == rb.st[1].ev.dram_read_bytes, "traffic changed");
    }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

static void test_bank_width(void)
{
    int bad = 0;
    g_case = "bank width";
    g_fail_msgs = 0;
    qs_net *net = timing_net(6, 5, 5, 3, 5, QS_DT_INT4, 8, 15);
    int32_t *x = timing_input(net, z_none);
    for (int df = 0; df < 3; df++) {
        sim_cfg wide = default_cfg(), narrow = default_cfg();
        wide.df = narrow.df = (qs_dataflow)df;
        wide.mab = narrow.mab = 8;
        /* wide: 16 B per cycle everywhere, more than any edge needs */
        /* narrow: one bank of 1 byte on the buffer this dataflow streams from */
        if (df == QS_DF_IS) {
            narrow.wbanks = 1;
            narrow.wwidth = 1;
            narrow.rows = wide.rows = 8; /* 8 rows x 2 bits = 2 B per element */
        } else {
            narrow.ibanks = 1;
            narrow.iwidth = 1;
        }
        run_result rw, rn;
        uint64_t bw = busy_of(net, &wide, x, &rw);
        uint64_t bn = busy_of(net, &narrow, x, &rn);
        EXPECT(rw.st[1].stall_buffer == 0, "%s: wide banks stall %llu", DFN[df], (unsigned long long)rw.st[1].stall_buffer);
        EXPECT(rn.st[1].stall_buffer > 0, "%s: a 1-byte bank adds no buffer stall", DFN[df]);
        EXPECT(bn == bw + rn.st[1].stall_buffer, "%s: busy %llu narrow vs %llu wide + %llu buffer stall", DFN[df],
               (unsigned long long)bn, (unsigned long long)bw, (unsigned long long)rn.st[1].stall_buffer);
    }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

/* A PPU slower than the array shows up as ppu stalls; a wide one removes them. */
static void test_ppu_stalls(void)
{
    int bad = 0;
    g_case = "ppu stalls";
    g_fail_msgs = 0;
    /* 1x1 conv, 16 channels out of 2: little compute per output */
    qs_net *net = timing_net(2, 8, 8, 1, 16, QS_DT_INT2, 4, 16);
    int32_t *x = timing_input(net, z_none);
    for (int df = 0; df < 3; df++) {
        sim_cfg slow = default_cfg(), wide = default_cfg();
        slow.df = wide.df = (qs_dataflow)df;
        slow.mab = wide.mab = 4;
        slow.dram_lat = wide.dram_lat = 0;
        slow.dram_bpc = wide.dram_bpc = 1024.0;
        slow.lanes = 1;
        wide.lanes = 256;
        run_result rs, rw;
        busy_of(net, &slow, x, &rs);
        busy_of(net, &wide, x, &rw);
        EXPECT(rs.st[1].stall_ppu > 0,
               "%s: one PPU lane causes no ppu stall (cycles %llu: busy %llu, dram %llu, ppu %llu, dep %llu)", DFN[df],
               (unsigned long long)rs.st[1].cycles, (unsigned long long)rs.st[1].array_busy,
               (unsigned long long)rs.st[1].stall_dram, (unsigned long long)rs.st[1].stall_ppu,
               (unsigned long long)rs.st[1].stall_dep);
        /* with 256 lanes only the last tile's post-processing (a few cycles of tail) remains */
        EXPECT(rw.st[1].stall_ppu <= 4 && rw.st[1].stall_ppu * 50 < rs.st[1].stall_ppu,
               "%s: 256 PPU lanes still stall %llu", DFN[df],
               (unsigned long long)rw.st[1].stall_ppu);
        EXPECT(rs.total > rw.total, "%s: %llu cycles with 1 lane, %llu with 256", DFN[df],
               (unsigned long long)rs.total, (unsigned long long)rw.total);
        EXPECT(rs.st[1].ev.ppu_ops == rw.st[1].ev.ppu_ops && rs.st[1].ev.ppu_ops == 16 * 64,
               "%s: ppu ops %llu / %llu, want one per output", DFN[df], (unsigned long long)rs.st[1].ev.ppu_ops,
               (unsigned long long)rw.st[1].ev.ppu_ops);
    }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

/* "DMA and DRAM" and "Post-processing" by hand on a one-tile layer: its two
 * loads, its GEMM, its post-processing and its store run one after another,
 * so the run takes d(weights) + d(input) + GEMM + ceil(ops / lanes) + d(store)
 * with d(n) = latency + ceil(ceil(n / burst) * burst / bytes_per_cycle), and
 * each cycle of latency adds exactly three cycles (three transfers). */
static void test_dma_ppu_by_hand(void)
{
    int bad = 0;
    g_case = "dma/ppu by hand";
    g_fail_msgs = 0;
    rn_spec s;
    memset(&s, 0, sizeof s);
    s.c = 3;
    s.h = s.w = 3; /* 27 int4 inputs: 14 bytes, not a whole burst */
    s.bits = 4;
    s.n = 1;
    s.seed = 5;
    s.l[0].kind = QS_L_FC;
    s.l[0].out_c = 5; /* 5 outputs of 8 bits: 5 bytes stored, 5 PPU operations */
    s.l[0].wdt = QS_DT_INT8;
    s.l[0].wsigned = 1;
    s.l[0].out_bits = 8;
    s.l[0].rq_mode = 1;
    s.l[0].rq_gain = 1.0;
    qs_net *net = rn_build(&s);
    int32_t *x = timing_input(net, z_none);
    for (int df = 0; df < 3; df++) {
        uint64_t total0 = 0;
        static const int LAT[4] = {0, 1, 13, 100};
        for (int li = 0; li < 4; li++) {
            sim_cfg c = default_cfg();
            c.df = (qs_dataflow)df;
            c.rows = c.cols = 8;
            c.mab = 4;
            c.dram_bpc = 3.0; /* not a power of two: the division rounds up */
            c.burst = 16;
            c.dram_lat = LAT[li];
            c.lanes = 2; /* 5 outputs: 3 cycles, not 2 */
            qs_arch a;
            CU_ASSERT_FATAL(make_arch(&c, &a));
            qs_prog *p;
            qs_error e;
            CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
            const qs_layer_map *m = &p->maps[1];
            EXPECT(m->n_insn == 4, "%s: %d instructions, want LOAD LOAD GEMM STORE", DFN[df], (int)m->n_insn);
            if (m->n_insn != 4) {
                qs_prog_destroy(p);
                continue;
            }
            uint64_t want = 0;
            for (int32_t i = m->first_insn; i < m->first_insn + m->n_insn; i++) {
                const qs_insn *in = &p->insn[i];
                if (in->op == QS_OP_LOAD || in->op == QS_OP_STORE) {
                    uint64_t moved = (in->bytes + 15) / 16 * 16;
                    want += (uint64_t)LAT[li] + (moved + 2) / 3;
                }
                if (in->op == QS_OP_STORE) {
                    EXPECT(in->bytes == 5, "%s: store of %u bytes, want 5 (5 outputs x 8 bits)", DFN[df], in->bytes);
                    want += 3; /* ceil(5 outputs / 2 lanes) */
                }
            }
            uint64_t busy, bstall;
            expected_busy(net, p, 1, x, &busy, &bstall);
            want += busy;
            qs_sim *sim;
            CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_DETAILED, &sim, &e), QS_OK);
            CU_ASSERT_EQUAL(qs_sim_set_input(sim, x, 27, &e), QS_OK);
            CU_ASSERT_EQUAL(qs_sim_run(sim, &e), QS_OK);
            uint64_t total = qs_sim_total_cycles(sim);
            EXPECT(total == want, "%s latency %d: %llu cycles, by hand %llu", DFN[df], LAT[li], (unsigned long long)total,
                   (unsigned long long)want);
            if (li == 0) total0 = total;
            EXPECT(total - total0 == 3 * (uint64_t)LAT[li], "%s: latency %d adds %llu cycles, want 3 x %d", DFN[df],
                   LAT[li], (unsigned long long)(total - total0), LAT[li]);
            qs_sim_destroy(sim);
            qs_prog_destroy(p);
        }
    }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

/* The shipped networks (pools, add, concat, act, requant, flatten) on every
 * dataflow and skip mode: both engines agree on every layer. */
static void test_shipped_nets(void)
{
    static const char *NETS[6] = {"models/nets/tiny.qbin", "models/nets/demo_w2a4.qbin",
                                  "models/nets/xfmr_tiny.qbin", "models/nets/decoder_tiny.qbin",
                                  "models/nets/lm_tiny.qbin", "models/nets/decoder_kv.qbin"};
    rn_rng r = {31337};
    int ran = 0;
    for (int k = 0; k < 6; k++) {
        char path[1024], ctx[800];
        snprintf(path, sizeof path, "%s/%s", QSIM_SOURCE_DIR, NETS[k]);
        qs_net *net = NULL;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_net_load(path, &net, &e), QS_OK);
        for (int it = 0; it < 15; it++) {
            sim_cfg c = default_cfg();
            c.df = (qs_dataflow)(it % 3);
            c.skip = (qs_zero_skip)(it % 5);
            c.rows = rn_int(&r, 2, 8);
            c.cols = rn_int(&r, 2, 8);
            c.group = c.rows % 2 == 0 && rn_chance(&r, 0.5) ? 2 : 1;
            c.acc_bits = rn_chance(&r, 0.3) ? 18 : 32;
            c.ovf = rn_chance(&r, 0.5) ? QS_OVF_SATURATE : QS_OVF_WRAP;
            c.lanes = rn_chance(&r, 0.5) ? 1 : 8;
            c.ikib = c.wkib = c.akib = rn_int(&r, 2, 8);
            qs_arch a;
            if (!make_arch(&c, &a)) continue;
            char d[512];
            describe_cfg(&c, d, sizeof d);
            snprintf(ctx, sizeof ctx, "%s on %s", NETS[k], d);
            g_case = ctx;
            if (it == 0 && k == 0) g_fail_msgs = 0;
            rn_rng xr = {(uint64_t)it + 1};
            int32_t *x = rn_input(&xr, net, 0.3, 0.2);
            int rc = run_both(net, &a, x, NULL);
            CU_ASSERT(rc == 0 || rc == -1);
            ran += rc == 0;
            qs_free(x);
        }
        qs_net_destroy(net);
    }
    g_case = "";
    printf("\n    %d of 90 runs compared ", ran);
    CU_ASSERT(ran >= 60);
}

/* ---- matmul of two activations and the transformer PPU layers (docs/timing.md) ---- */

/* x (2, 3, 4) and y = matmul(x, x) with param (2: x x^T per channel, 1: x^T x), no
 * requantization (16-bit output = the accumulator). */
static qs_net *matmul_net(int bits, int is_signed, int zp, int param)
{
    qs_net *n = qs_calloc(1, sizeof *n);
    n->layers = qs_calloc(2, sizeof(qs_layer));
    n->n_layers = 2;
    n->output = 1;
    strcpy(n->name, "mm");
    for (int i = 0; i < 2; i++) {
        qs_layer *L = &n->layers[i];
        for (int k = 0; k < QS_MAX_INPUTS; k++) L->inputs[k] = -1;
        L->weight = L->bias = -1;
    }
    qs_layer *X = &n->layers[0], *M = &n->layers[1];
    strcpy(X->name, "x");
    X->kind = QS_L_INPUT;
    X->out_c = 2, X->out_h = 3, X->out_w = 4;
    X->out_bits = (uint8_t)bits, X->out_signed = (uint8_t)is_signed, X->out_zp = zp;
    qs_int_range(bits, is_signed, &X->clamp_lo, &X->clamp_hi);
    strcpy(M->name, "mm");
    M->kind = QS_L_MATMUL;
    M->n_inputs = 2;
    M->inputs[0] = M->inputs[1] = 0;
    M->param = param;
    M->out_c = 2, M->out_h = param == 2 ? 3 : 4, M->out_w = param == 2 ? 3 : 4;
    M->out_bits = 16, M->out_signed = 1;
    qs_int_range(16, 1, &M->clamp_lo, &M->clamp_hi);
    return n;
}

/* x[b][m][k]: zp (a centered 0) where zero(b, m, k), else zp + a nonzero value. */
static int32_t *matmul_input(int bits, int is_signed, int zp, int (*zero)(int b, int m, int k))
{
    int32_t *x = qs_malloc(sizeof(int32_t) * 24), lo, hi;
    qs_int_range(bits, is_signed, &lo, &hi);
    for (int b = 0; b < 2; b++)
        for (int m = 0; m < 3; m++)
            for (int k = 0; k < 4; k++) {
                int32_t v = zp + 1 + (b * 5 + m * 3 + k) % 3;
                if (v > hi) v = zp - 1;
                x[(b * 3 + m) * 4 + k] = zero && zero(b, m, k) ? zp : v;
            }
    return x;
}
static int mz_first_two_k_of_batch0(int b, int m, int k) { (void)m; return b == 0 && k < 2; }

static void test_matmul_timing(void)
{
    int bad = 0;
    g_case = "matmul timing";
    g_fail_msgs = 0;
    struct {
        qs_dataflow df;
        qs_zero_skip skip;
        int is_signed, zp;
        int (*zero)(int, int, int);
        uint64_t busy;
        const char *why;
    } cases[] = {
        /* OS 4x4, G 1, B = x^T 4-bit unsigned zp 0: 4-bit centered width, S = 2 slices; one array tile
         * per batch (M = N = 3, K = 4): (4*2 - 1) + 1 + 3 - 1 = 10, + 3 rows of drain = 13, x 2 batches */
        {QS_DF_OS, QS_SKIP_NONE, 0, 0, NULL, 26, "OS dense"},
        /* signed 4-bit with zp -3: B - zb spans [-5, 10], a 5-bit signed value: S = 3 -> (12-1)+3 = 14, +3 */
        {QS_DF_OS, QS_SKIP_NONE, 1, -3, NULL, 34, "OS, zero point widens B to 3 slices"},
        /* batch 0 has A = zp at k = 0, 1 on every row: each 1-row group keeps L = 2: (4-1)+3 = 6, +3 = 9;
         * batch 1 stays 13 */
        {QS_DF_OS, QS_SKIP_ACTIVATIONS, 0, 0, mz_first_two_k_of_batch0, 22, "OS activation skipping"},
        /* the same k rows of B = x^T are all zero across the tile's columns: weight skipping at run time */
        {QS_DF_OS, QS_SKIP_WEIGHTS, 0, 0, mz_first_two_k_of_batch0, 22, "OS run-time weight skipping"},
        {QS_DF_OS, QS_SKIP_GATE, 0, 0, mz_first_two_k_of_batch0, 26, "OS gating saves no cycle"},
        /* WS: per slice, preload K = 4, then 3 rows: (3-1) + R 4 + 3 - 1 -> 12, two slices, two batches */
        {QS_DF_WS, QS_SKIP_NONE, 0, 0, NULL, 48, "WS dense"},
        /* WS with weight skipping: batch 0 keeps k = 2, 3: per slice 2 + 2 + 4 + 3 - 1 = 10 */
        {QS_DF_WS, QS_SKIP_WEIGHTS, 0, 0, mz_first_two_k_of_batch0, 44, "WS run-time weight skipping"},
        /* IS: A stationary (4 k x 3 rows), stream 3 columns x 2 slices: 4 + (6-1) + 4 + 3 - 1 = 15 */
        {QS_DF_IS, QS_SKIP_NONE, 0, 0, NULL, 30, "IS dense"},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        qs_net *net = matmul_net(4, cases[ci].is_signed, cases[ci].zp, 2);
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "mm", &e), QS_OK);
        int32_t *x = matmul_input(4, cases[ci].is_signed, cases[ci].zp, cases[ci].zero);
        sim_cfg c = default_cfg();
        c.df = cases[ci].df;
        c.skip = cases[ci].skip;
        c.mab = 4;
        run_result rr;
        uint64_t busy = busy_of(net, &c, x, &rr);
        EXPECT(busy == cases[ci].busy, "%s: busy %llu, docs/timing.md gives %llu", cases[ci].why,
               (unsigned long long)busy, (unsigned long long)cases[ci].busy);
        /* values: a direct loop over the definition (docs/qbin.md, MATMUL) */
        qs_arch a;
        make_arch(&c, &a);
        qs_prog *p = NULL;
        qs_sim *s = NULL;
        CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_DETAILED, &s, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_set_input(s, x, 24, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_run(s, &e), QS_OK);
        const int32_t *y = qs_sim_layer_output(s, 1);
        int zp = cases[ci].zp, wrong = 0;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    int64_t acc = 0;
                    for (int k = 0; k < 4; k++)
                        acc += (int64_t)(x[(b * 3 + i) * 4 + k] - zp) * (x[(b * 3 + j) * 4 + k] - zp);
                    wrong += y[(b * 3 + i) * 3 + j] != acc;
                }
        EXPECT(wrong == 0, "%s: %d matmul values differ from the definition", cases[ci].why, wrong);
        EXPECT(qs_sim_layer_stats(s, 1)->ev.ppu_ops == 18, "%s: ppu ops %llu, want one per output (18)",
               cases[ci].why, (unsigned long long)qs_sim_layer_stats(s, 1)->ev.ppu_ops);
        qs_sim_destroy(s);
        qs_prog_destroy(p);
        qs_free(x);
        qs_net_destroy(net);
    }
    g_case = "";
}

typedef struct {
    int layer;
    uint64_t ops;
    const char *why;
} ppu_want;

/* Runs a shipped network on the fast engine with 3 PPU lanes on a random input and
 * checks the PPU element operations of the listed layers against counts worked out
 * by hand from the table of docs/timing.md ("Post-processing"). */
static void check_ppu_ops(const char *case_name, const char *net_file, uint64_t seed, int64_t n_in,
                          const ppu_want *want, size_t n_want)
{
    int bad = 0;
    g_case = case_name;
    g_fail_msgs = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/nets/%s", QSIM_SOURCE_DIR, net_file);
    qs_net *net = NULL;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_net_load(path, &net, &e), QS_OK);
    sim_cfg c = default_cfg();
    c.lanes = 3;
    qs_arch a;
    CU_ASSERT_FATAL(make_arch(&c, &a));
    qs_prog *p = NULL;
    qs_sim *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
    CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_FAST, &s, &e), QS_OK);
    rn_rng xr = {seed};
    int32_t *x = rn_input(&xr, net, 0.2, 0.0);
    CU_ASSERT_EQUAL_FATAL(qs_sim_set_input(s, x, n_in, &e), QS_OK);
    CU_ASSERT_EQUAL_FATAL(qs_sim_run(s, &e), QS_OK);
    for (size_t i = 0; i < n_want; i++) {
        uint64_t got = qs_sim_layer_stats(s, want[i].layer)->ev.ppu_ops;
        EXPECT(got == want[i].ops, "%s: %llu ops, want %llu", want[i].why, (unsigned long long)got,
               (unsigned long long)want[i].ops);
    }
    qs_prog_destroy(p);
    qs_sim_destroy(s);
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
}

/* A decode step's traffic (docs/timing.md, "Decode steps"), on the shipped
 * decoder_kv (16 channels, 2 heads of 8, prompt 8 tokens, 8-bit values): over
 * the prompt a kvcache is a view (no pass, no bytes); in the step after it
 * (past 8) each cache loads the 2 x 8 new values (16 B), stores them one byte
 * per line (16 runs of 1 B at stride 9) and costs 16 PPU operations; the
 * scores read op(A) = the new query (2 heads x 8 B) and all 9 keys of each
 * head (2 x 8 x 9 = 144 B); attn_v reads all 9 values of each head (2 x 72 B)
 * and the 2 x 9 probabilities. Both engines. */
static void test_decode_step_traffic(void)
{
    int bad = 0;
    g_case = "decode step traffic";
    char path[1024];
    snprintf(path, sizeof path, "%s/models/nets/decoder_kv.qbin", QSIM_SOURCE_DIR);
    qs_net *net = NULL;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_net_load(path, &net, &e), QS_OK);
    sim_cfg c = default_cfg();
    qs_arch a;
    CU_ASSERT_FATAL(make_arch(&c, &a));
    uint8_t(*roles)[3] = qs_malloc(sizeof *roles * (size_t)net->n_layers);
    CU_ASSERT_EQUAL_FATAL(qs_decode_roles(net, "kv", roles, &e), QS_OK);
    for (int eng = 0; eng < 2; eng++) {
        const qs_engine engine = eng ? QS_ENGINE_DETAILED : QS_ENGINE_FAST;
        qs_prog *p = NULL, *sp = NULL;
        qs_sim *s = NULL, *ss = NULL;
        CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, engine, &s, &e), QS_OK);
        rn_rng xr = {99};
        int32_t *x = rn_input(&xr, net, 0.1, 0.0);
        CU_ASSERT_EQUAL_FATAL(qs_sim_set_input(s, x, 16 * 8, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_run(s, &e), QS_OK);
        for (int li = 8; li <= 9; li++) {
            const qs_layer_stats *st = qs_sim_layer_stats(s, li);
            EXPECT(st->ev.dram_read_bytes == 0 && st->ev.dram_write_bytes == 0 && st->ev.ppu_ops == 0,
                   "prefill kvcache %d: %llu B read, %llu written, %llu ops: a view moves nothing", li,
                   (unsigned long long)st->ev.dram_read_bytes, (unsigned long long)st->ev.dram_write_bytes,
                   (unsigned long long)st->ev.ppu_ops);
        }
        const int32_t *caches[2] = {qs_sim_layer_output(s, 8), qs_sim_layer_output(s, 9)};
        qs_net *step = NULL;
        CU_ASSERT_EQUAL_FATAL(qs_decode_step_net(net, "kv", (const uint8_t(*)[3])roles, 8, 1, caches, &step, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_compile(step, &a, &sp, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(step, sp, engine, &ss, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_set_input(ss, x, 16, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_run(ss, &e), QS_OK);
        static const struct { int layer; uint64_t rd, wr, ops; const char *why; } want[] = {
            {8, 16, 16, 16, "k_cache: the new row in, one byte per line out"},
            {9, 16, 16, 16, "v_cache"},
            {10, 16 + 144, 2 * 1 * 9, 2 * 9, "scores: the query and all 9 keys per head"},
            {12, 144 + 18, 2 * 8, 2 * 8, "attn_v: all 9 values per head and the probabilities"}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            const qs_layer_stats *st = qs_sim_layer_stats(ss, want[i].layer);
            EXPECT(st->ev.dram_read_bytes == want[i].rd && st->ev.dram_write_bytes == want[i].wr &&
                       st->ev.ppu_ops == want[i].ops,
                   "%s engine, %s: read %llu (want %llu), written %llu (want %llu), ops %llu (want %llu)",
                   eng ? "detailed" : "fast", want[i].why, (unsigned long long)st->ev.dram_read_bytes,
                   (unsigned long long)want[i].rd, (unsigned long long)st->ev.dram_write_bytes,
                   (unsigned long long)want[i].wr, (unsigned long long)st->ev.ppu_ops, (unsigned long long)want[i].ops);
        }
        /* the step's cache holds the prompt's rows, then the new one, on every line */
        const int32_t *kc = qs_sim_layer_output(ss, 8), *kn = qs_sim_layer_output(ss, 6);
        int same = 1;
        for (int line = 0; line < 16; line++) {
            for (int w = 0; w < 8; w++) same &= kc[line * 9 + w] == caches[0][line * 8 + w];
            same &= kc[line * 9 + 8] == kn[line];
        }
        CU_ASSERT(same);
        qs_sim_destroy(ss);
        qs_prog_destroy(sp);
        qs_decode_step_free(step);
        qs_sim_destroy(s);
        qs_prog_destroy(p);
        qs_free(x);
    }
    qs_free(roles);
    qs_net_destroy(net);
    CU_ASSERT_EQUAL(bad, 0);
    g_case = "";
}

/* Element operations of the transformer PPU layers on the shipped xfmr_tiny block:
 * 8 channels x 6 tokens, scores 2 x 6 x 6, MLP 16 x 6. */
static void test_xfmr_ppu_ops(void)
{
    static const ppu_want want[] = {
        {1, 6 * (3 * 8 + 32), "layernorm: 3 passes over 8 channels + 32 for the square root, per token"},
        {14, 6 * (2 * 8 + 32), "rmsnorm: 2 passes + 32 per token"},
        {9, 3 * 2 * 6 * 6, "softmax: 3 passes (max, exp+sum, divide) per element"},
        {17, 16 * 6, "lut: 1 per element"},
        {18, 2 * 16 * 6, "mul: 2 per element"},
        {8, 2 * 6 * 6, "matmul: 1 per output (requantize)"},
        {5, 0, "reshape: a view, no instruction"},
    };
    check_ppu_ops("transformer ppu ops", "xfmr_tiny.qbin", 5, 48, want, sizeof want / sizeof want[0]);
}

/* The decoder's PPU layers on the shipped decoder_tiny block: 16 channels x 24
 * tokens, 2 heads, scores 2 x 24 x 24. */
static void test_decoder_ppu_ops(void)
{
    static const ppu_want want[] = {
        {2, 24 * (2 * 16 + 32), "dynquant: absmax pass + scale pass over 16 channels + 32 for the reciprocal, per token"},
        {4, 24 * (16 + 2 * 16), "row-absmax mul: absmax over input 2's 16 channels + multiply and requantize 16, per token"},
        {23, 24 * (16 + 2 * 32), "row-absmax mul: 16-channel absmax + 2 x 32 outputs, per token"},
        {15, 3 * 2 * 24 * 24, "causal softmax: 3 per element, masked ones included"},
        {9, 3 * 16 * 24, "rope: 3 per output (two multiplies and an add, requantize)"},
    };
    check_ppu_ops("decoder ppu ops", "decoder_tiny.qbin", 7, 16 * 24, want, sizeof want / sizeof want[0]);
}

/* The language-model layers on the shipped lm_tiny: 24 token ids, embedding [300][16],
 * LM head to 300 channels. */
static void test_lm_ppu_ops(void)
{
    static const ppu_want want[] = {
        {1, 24 * 16 * 2, "embed with positions: 2 per output element (the gathered row written as the token's "
                         "column, plus the position row's add)"},
        {17, 24 * 300, "argmax: 1 per input element (compare and select against the running maximum)"},
        {9, 4 * 24 * 24, "grouped matmul: 1 per output of all 4 query heads"},
    };
    check_ppu_ops("language-model ppu ops", "lm_tiny.qbin", 9, 24, want, sizeof want / sizeof want[0]);
}

/* Running the same simulator twice gives the same answer (state is reset). */
static void test_rerun(void)
{
    int bad = 0;
    g_case = "rerun";
    g_fail_msgs = 0;
    rn_rng r = {77};
    rn_limits lim = {8, 8, 6, 4, 6, 2000, 2, 0.3};
    rn_spec s;
    rn_random_spec(&r, &lim, &s);
    qs_net *net = rn_build(&s);
    sim_cfg c = default_cfg();
    c.skip = QS_SKIP_BOTH;
    qs_arch a;
    CU_ASSERT_FATAL(make_arch(&c, &a));
    qs_prog *p;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
    for (int k = 0; k < 2; k++) {
        qs_sim *sim;
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &sim, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_run(sim, &e), QS_OK);
        uint64_t t1 = qs_sim_total_cycles(sim);
        const qs_layer *O = &net->layers[net->output];
        int64_t n = (int64_t)O->out_c * O->out_h * O->out_w;
        int32_t *o1 = qs_malloc(sizeof(int32_t) * (size_t)n);
        memcpy(o1, qs_sim_layer_output(sim, net->output), sizeof(int32_t) * (size_t)n);
        CU_ASSERT_EQUAL(qs_sim_run(sim, &e), QS_OK);
        EXPECT(qs_sim_total_cycles(sim) == t1, "second run %llu cycles, first %llu", (unsigned long long)qs_sim_total_cycles(sim),
               (unsigned long long)t1);
        EXPECT(memcmp(o1, qs_sim_layer_output(sim, net->output), sizeof(int32_t) * (size_t)n) == 0, "second run differs");
        /* inputs are range-checked */
        const qs_layer *IN = &net->layers[0];
        int64_t cnt = (int64_t)IN->out_c * IN->out_h * IN->out_w;
        int32_t *bad_in = qs_calloc((size_t)cnt, sizeof(int32_t));
        int32_t lo, hi;
        qs_int_range(IN->out_bits, IN->out_signed, &lo, &hi);
        bad_in[cnt - 1] = hi + 1;
        CU_ASSERT_EQUAL(qs_sim_set_input(sim, bad_in, cnt, &e), QS_ERR_ARG);
        CU_ASSERT_EQUAL(qs_sim_set_input(sim, bad_in, cnt - 1, &e), QS_ERR_ARG);
        qs_free(bad_in);
        qs_free(o1);
        qs_sim_destroy(sim);
    }
    qs_prog_destroy(p);
    qs_net_destroy(net);
    g_case = "";
}

/* A second run with a new input must not reuse anything the fast engine kept
 * from the first (sim/array.c keeps an instruction's activation rows for the
 * next n-block): a one-layer network with one m-tile and one n-block, whose
 * first instruction of the second run looks like the last of the first. */
/* ---- [dram] model = tlm: the memory backend (docs/timing.md, "Memory backend") ---- */

/* Completes every request `user` cycles (+1) after its issue. */
static uint64_t fixed_backend(void *user, uint64_t issue, int is_write, const uint64_t *first, const uint64_t *count,
                              uint32_t n_runs)
{
    (void)is_write, (void)first, (void)count, (void)n_runs;
    return issue + *(const uint64_t *)user + 1;
}

static qs_status run_demo(const char *const *ov, int n_ov, qs_engine eng, const qs_mem_backend *b, uint64_t *cycles,
                          qs_layer_stats *stats, qs_error *e)
{
    char cfg[1024], netp[1024];
    snprintf(cfg, sizeof cfg, "%s/models/arch/dlac.cfg", QSIM_SOURCE_DIR);
    snprintf(netp, sizeof netp, "%s/models/nets/demo_w2a4.qbin", QSIM_SOURCE_DIR);
    qs_arch a;
    qs_net *net = NULL;
    qs_prog *p = NULL;
    qs_sim *sim = NULL;
    qs_status st = qs_arch_load(cfg, ov, n_ov, &a, e);
    if (!st) st = qs_net_load(netp, &net, e);
    if (!st) st = qs_compile(net, &a, &p, e);
    if (!st) st = qs_sim_create(net, p, eng, &sim, e);
    if (!st && b) qs_sim_set_memory_backend(sim, b);
    if (!st) st = qs_sim_run(sim, e);
    if (!st) {
        *cycles = qs_sim_total_cycles(sim);
        for (int32_t i = 0; i < net->n_layers && i < 16; i++) stats[i] = *qs_sim_layer_stats(sim, i);
    }
    qs_sim_destroy(sim);
    if (p) qs_prog_destroy(p);
    qs_net_destroy(net);
    return st;
}

static void test_tlm_backend(void)
{
    qs_error e;
    uint64_t cyc[3] = {0, 0, 0};
    static qs_layer_stats ls[3][16];
    /* no backend: a clear error, not a run */
    const char *tlm[] = {"dram.model=tlm"};
    CU_ASSERT_EQUAL(run_demo(tlm, 1, QS_ENGINE_FAST, NULL, &cyc[0], ls[0], &e), QS_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "[dram] model = tlm: no memory backend"));
    /* a backend answering latency + 1 cycles equals the simple channel at that latency and a bandwidth that
     * moves any of the demo's transfers (at most 1152 B) in one cycle; both engines agree field by field */
    uint64_t lat = 25;
    const qs_mem_backend b = {fixed_backend, &lat};
    CU_ASSERT_EQUAL_FATAL(run_demo(tlm, 1, QS_ENGINE_FAST, &b, &cyc[0], ls[0], &e), QS_OK);
    CU_ASSERT_EQUAL_FATAL(run_demo(tlm, 1, QS_ENGINE_DETAILED, &b, &cyc[1], ls[1], &e), QS_OK);
    const char *simple[] = {"dram.latency_cycles=25", "dram.bytes_per_cycle=4096"};
    CU_ASSERT_EQUAL_FATAL(run_demo(simple, 2, QS_ENGINE_FAST, NULL, &cyc[2], ls[2], &e), QS_OK);
    CU_ASSERT_EQUAL(cyc[0], cyc[2]);
    CU_ASSERT_EQUAL(cyc[1], cyc[0]);
    CU_ASSERT(memcmp(ls[0], ls[1], sizeof ls[0]) == 0);
    for (int i = 0; i < 11; i++) {
        CU_ASSERT_EQUAL(ls[0][i].cycles, ls[2][i].cycles);
        CU_ASSERT_EQUAL(ls[0][i].stall_dram, ls[2][i].stall_dram);
    }
    /* a slower backend changes the cycles */
    lat = 200;
    uint64_t slow = 0;
    CU_ASSERT_EQUAL_FATAL(run_demo(tlm, 1, QS_ENGINE_FAST, &b, &slow, ls[1], &e), QS_OK);
    CU_ASSERT(slow > cyc[0]);
}

/* qs_sim_read_dram: the weight images decoded as docs/compiler.md section 8 describes them equal the
 * .qbin's weights (every dataflow, dense and compressed), and each layer's output region unpacks to the
 * layer's output after a run. */
static int32_t bits_at(const uint8_t *p, uint64_t bit, int bits, int sign)
{
    uint32_t v = 0;
    for (int b = 0; b < bits; b++, bit++)
        if ((p[bit / 8] >> (bit % 8)) & 1) v |= 1u << b;
    if (sign && bits < 32 && ((v >> (bits - 1)) & 1)) v |= ~0u << bits;
    return (int32_t)v;
}

static int weight_of(const qs_tensor *W, int bits, int32_t code)
{
    if (W->dtype == QS_DT_BIPOLAR) return code ? 1 : -1;
    (void)bits;
    return code;
}

static void test_dram_image(void)
{
    static const char *NETS[2] = {"models/nets/tiny.qbin", "models/nets/demo_w2a4.qbin"};
    static const qs_zero_skip SK[3] = {QS_SKIP_NONE, QS_SKIP_WEIGHTS, QS_SKIP_BOTH};
    int bad = 0, layers = 0, compressed_layers = 0;
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", QSIM_SOURCE_DIR, NETS[k]);
        qs_net *net = NULL;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_net_load(path, &net, &e), QS_OK);
        for (int df = 0; df < 3; df++)
            for (int sk = 0; sk < 3; sk++) {
                sim_cfg c = default_cfg();
                c.df = (qs_dataflow)df;
                c.skip = SK[sk];
                qs_arch a;
                if (!make_arch(&c, &a)) continue;
                qs_prog *p = NULL;
                qs_sim *sim = NULL;
                if (qs_compile(net, &a, &p, &e)) continue;
                CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_FAST, &sim, &e), QS_OK);
                CU_ASSERT_EQUAL_FATAL(qs_sim_run(sim, &e), QS_OK);
                const int comp = SK[sk] != QS_SKIP_NONE;
                for (int32_t li = 1; li < net->n_layers; li++) {
                    const qs_layer *L = &net->layers[li];
                    const qs_layer_map *m = &p->maps[li];
                    /* the output, unpacked from its region */
                    uint64_t ob = ((uint64_t)L->out_c * L->out_h * L->out_w * L->out_bits + 7) / 8;
                    uint8_t *buf = qs_malloc(ob + 1);
                    CU_ASSERT_EQUAL_FATAL(qs_sim_read_dram(sim, m->out_addr, buf, ob, &e), QS_OK);
                    const int32_t *o = qs_sim_layer_output(sim, li);
                    for (int64_t i = 0; i < (int64_t)L->out_c * L->out_h * L->out_w; i++)
                        if (bits_at(buf, (uint64_t)i * L->out_bits, L->out_bits, L->out_signed) != o[i]) {
                            bad++;
                            break;
                        }
                    qs_free(buf);
                    if (!m->is_gemm || m->is_matmul || m->weight_bytes <= 0) continue;
                    layers++;
                    compressed_layers += comp;
                    const qs_tensor *W = &net->tensors[L->weight];
                    const int wb = m->weight_bits, sign = W->dtype != QS_DT_BIPOLAR && W->is_signed;
                    uint8_t *img = qs_malloc((size_t)m->weight_bytes);
                    CU_ASSERT_EQUAL_FATAL(qs_sim_read_dram(sim, m->weight_addr, img, (uint64_t)m->weight_bytes, &e), QS_OK);
                    const qs_gemm_dims d = m->g;
                    uint64_t off = 0;
                    int wrong = 0;
                    for (int32_t g = 0; g < d.groups; g++)
                        for (int32_t b = 0; b < m->blocks_per_group; b++) {
                            const int32_t *lst = m->list + m->list_off[g * m->blocks_per_group + b];
                            int32_t ll = m->list_off[g * m->blocks_per_group + b + 1] - m->list_off[g * m->blocks_per_group + b];
                            if (a.dataflow == QS_DF_IS) {
                                for (int32_t q = 0; q < ll; q++)
                                    for (int32_t r = 0; r < a.rows; r++) {
                                        int32_t kk = b * a.rows + r;
                                        int32_t code = bits_at(img + off, ((uint64_t)q * a.rows + r) * wb, wb, sign);
                                        int32_t want = kk < d.K ? W->data[((int64_t)g * d.N + lst[q]) * d.K + kk] : 0;
                                        if (kk < d.K ? weight_of(W, wb, code) != want : code != 0) wrong++;
                                    }
                                off += ((uint64_t)a.rows * ll * wb + 7) / 8;
                                for (int32_t q = 0; comp && q < ll; q++, off += 2)
                                    if (img[off] + 256 * img[off + 1] != (lst[q] & 0xffff)) wrong++;
                                continue;
                            }
                            int32_t ncols = d.N - b * a.cols < a.cols ? d.N - b * a.cols : a.cols;
                            for (int32_t k0 = 0; k0 < ll; k0 += m->tk) {
                                int32_t ch = ll - k0 < m->tk ? ll - k0 : m->tk;
                                for (int32_t q = 0; q < ch; q++)
                                    for (int32_t cc = 0; cc < ncols; cc++) {
                                        int32_t code = bits_at(img + off, ((uint64_t)q * ncols + cc) * wb, wb, sign);
                                        if (weight_of(W, wb, code) !=
                                            W->data[((int64_t)g * d.N + b * a.cols + cc) * d.K + lst[k0 + q]])
                                            wrong++;
                                    }
                                off += ((uint64_t)ncols * ch * wb + 7) / 8;
                                for (int32_t q = 0; comp && q < ch; q++, off += 2)
                                    if (img[off] + 256 * img[off + 1] != (lst[k0 + q] & 0xffff)) wrong++;
                            }
                        }
                    if (wrong || off != (uint64_t)m->weight_bytes) {
                        bad++;
                        fprintf(stderr, "\n  %s layer %s df %d skip %d: %d weights or indices differ, %llu of %lld bytes",
                                NETS[k], L->name, df, (int)SK[sk], wrong, (unsigned long long)off,
                                (long long)m->weight_bytes);
                    }
                    qs_free(img);
                }
                qs_sim_destroy(sim);
                qs_prog_destroy(p);
            }
        qs_net_destroy(net);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(layers >= 20 && compressed_layers >= 10);
}

static void test_rerun_new_input(void)
{
    int bad = 0;
    g_case = "rerun with a new input";
    g_fail_msgs = 0;
    qs_net *net = timing_net(6, 2, 2, 1, 3, QS_DT_INT2, 4, 21);
    int32_t *x1 = timing_input(net, z_none), *x2 = timing_input(net, z_checker);
    const qs_layer *IN = &net->layers[0], *O = &net->layers[1];
    const int64_t nin = (int64_t)IN->out_c * IN->out_h * IN->out_w, nout = (int64_t)O->out_c * O->out_h * O->out_w;
    for (int narrow = 0; narrow < 2; narrow++) {
        sim_cfg c = default_cfg();
        c.mab = 4;
        c.mwb = 2;
        c.skip = QS_SKIP_BOTH;
        c.acc_bits = narrow ? 8 : 32; /* not proven overflow-free (6 x 15 x 2 > 127) / proven */
        qs_arch a;
        CU_ASSERT_FATAL(make_arch(&c, &a));
        qs_prog *p;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
        EXPECT(p->maps[1].overflow_free == !narrow, "acc_bits %d: overflow_free %d", c.acc_bits, p->maps[1].overflow_free);
        qs_sim *twice, *once;
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_FAST, &twice, &e), QS_OK);
        CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, QS_ENGINE_DETAILED, &once, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_set_input(twice, x1, nin, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_run(twice, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_set_input(twice, x2, nin, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_run(twice, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_set_input(once, x2, nin, &e), QS_OK);
        CU_ASSERT_EQUAL(qs_sim_run(once, &e), QS_OK);
        EXPECT(memcmp(qs_sim_layer_output(twice, 1), qs_sim_layer_output(once, 1), sizeof(int32_t) * (size_t)nout) == 0,
               "acc_bits %d: second fast run differs from a detailed run of its input", c.acc_bits);
        EXPECT(qs_sim_total_cycles(twice) == qs_sim_total_cycles(once), "acc_bits %d: cycles %llu, detailed %llu",
               c.acc_bits, (unsigned long long)qs_sim_total_cycles(twice), (unsigned long long)qs_sim_total_cycles(once));
        qs_sim_destroy(twice);
        qs_sim_destroy(once);
        qs_prog_destroy(p);
    }
    qs_free(x1);
    qs_free(x2);
    qs_net_destroy(net);
    g_case = "";
    CU_ASSERT_EQUAL(bad, 0);
}

/* 16-bit unsigned activations do not fit int16: the fast engine keeps its
 * rows in int32 and takes its int32 dot products. Both engines and the
 * reference must agree, in layers proven overflow-free (acc 32) and not. */
static void test_wide_activations(void)
{
    int bad = 0;
    g_fail_msgs = 0;
    qs_net *net = timing_net(4, 5, 5, 3, 5, QS_DT_INT8, 16, 31);
    int32_t *x = timing_input(net, z_checker);
    for (int i = 0; i < 4 * 25; i++) /* most above 32767 */
        if (x[i]) x[i] = 30000 + (i * 7919) % 35536;
    for (int df = 0; df < 3; df++)
        for (int acc = 24; acc <= 32; acc += 8) {
            char buf[96];
            snprintf(buf, sizeof buf, "16-bit activations, %s, acc_bits %d", DFN[df], acc);
            g_case = buf;
            sim_cfg c = default_cfg();
            c.df = (qs_dataflow)df;
            c.mab = 16;
            c.acc_bits = acc;
            c.skip = QS_SKIP_BOTH;
            c.ikib = c.wkib = c.akib = 16;
            qs_arch a;
            CU_ASSERT_FATAL(make_arch(&c, &a));
            run_result rr;
            bad += run_both(net, &a, x, &rr) != 0;
        }
    qs_free(x);
    qs_net_destroy(net);
    g_case = "";
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- accumulators that may overflow (OS) ----------------------------------------------- */

/* One 1x1 conv from cin channels (1x1 input, A2 unsigned) to one output
 * channel, with the given weights and activations; both engines compared by
 * run_both. Returns the detailed engine's overflow count of the conv. */
static uint64_t one_output(const sim_cfg *c, qs_dtype wdt, int cin, const int32_t *w, const int32_t *x, int *bad_out)
{
    qs_net *net = timing_net(cin, 1, 1, 1, 1, wdt, 2, 5);
    qs_tensor *W = &net->tensors[net->layers[1].weight];
    memcpy(W->data, w, sizeof(int32_t) * (size_t)cin);
    qs_arch a;
    int ok = make_arch(c, &a);
    run_result rr;
    memset(&rr, 0, sizeof rr);
    int bad = ok ? run_both(net, &a, x, &rr) : 1;
    *bad_out += bad;
    CU_ASSERT(ok);
    qs_net_destroy(net);
    return rr.st[1].ev.acc_overflows;
}

static void test_overflow_bounds(void)
{
    int bad = 0;
    g_fail_msgs = 0;
    int32_t w[200], x[200];
    /* everything twice: with the fast engine's 32-bit kernels where they
     * apply (everywhere here), then with its 64-bit ones only */
    for (int wide = 0; wide < 2; wide++) {
        qs_array_wide_lanes_only(wide);
        sim_cfg c = default_cfg();
        c.mab = 2;
        c.acc_bits = 10; /* [-512, 511] */
        c.ovf = QS_OVF_SATURATE;

        /* A weight's slices overshoot: partial sums 420 + 3 * (3, 15, 63, -1)
         * reach 609 although the exact sum 417 fits. The hardware saturates at
         * 511 and ends at 319 with one overflow; wrapping, it overflows twice
         * (609 -> -415, -607 -> 417). An exact-sum shortcut that only bounded
         * sum |x| |w| (423) would count none. */
        g_case = "overflow inside a weight's slices";
        for (int i = 0; i < 4; i++) w[i] = 35;
        w[4] = -1;
        for (int i = 0; i < 5; i++) x[i] = 3;
        c.wpb = 2;
        c.mwb = 8;
        uint64_t o = one_output(&c, QS_DT_INT8, 5, w, x, &bad);
        EXPECT(o == 1, "saturating: %llu overflows, want 1", (unsigned long long)o);
        c.ovf = QS_OVF_WRAP;
        o = one_output(&c, QS_DT_INT8, 5, w, x, &bad);
        EXPECT(o == 2, "wrapping: %llu overflows, want 2", (unsigned long long)o);

        /* The same overshoot where sum |x| * max |w| = 3 * 121 = 363 fits easily:
         * 120 weights of 1, then -1, on activations of 3. The partial sums reach
         * 360 + 3 * 63 = 549: saturating, one overflow. */
        g_case = "overshoot within sum |x| max |w|";
        for (int i = 0; i < 120; i++) w[i] = 1;
        w[120] = -1;
        for (int i = 0; i < 121; i++) x[i] = 3;
        c.ovf = QS_OVF_SATURATE;
        o = one_output(&c, QS_DT_INT8, 121, w, x, &bad);
        EXPECT(o == 1, "saturating: %llu overflows, want 1", (unsigned long long)o);

        /* One slice per weight (no overshoot): a sum of exactly 511 fits, 512
         * does not; -512 fits. 170 activations of 3 plus one of 1 or 2. */
        c.wpb = 2;
        c.mwb = 2;
        c.acc_bits = 10;
        for (int ovf = 0; ovf < 2; ovf++) {
            c.ovf = ovf ? QS_OVF_WRAP : QS_OVF_SATURATE;
            for (int last = 1; last <= 2; last++)
                for (int sign = 1; sign >= -1; sign -= 2) {
                    char buf[128];
                    snprintf(buf, sizeof buf, "sum %d, %s", sign * (510 + last), ovf ? "wrap" : "saturate");
                    g_case = buf;
                    for (int i = 0; i < 171; i++) {
                        w[i] = sign;
                        x[i] = i < 170 ? 3 : last;
                    }
                    o = one_output(&c, QS_DT_INT2, 171, w, x, &bad);
                    uint64_t want = sign > 0 && last == 2 ? 1 : 0;
                    EXPECT(o == want, "%llu overflows, want %llu", (unsigned long long)o, (unsigned long long)want);
                }
        }

        /* Random OS layers whose accumulators are just wide enough for some
         * outputs and not for others: fast == detailed on everything, and every
         * path of the fast engine taken. */
        qs_value_paths p0, p1;
        qs_array_value_paths(&p0);
        static const qs_dtype WDT[3] = {QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
        static const int WB[3] = {2, 4, 8};
        rn_rng r = {0xACC0B175ull};
        int ran = 0, overflowed = 0;
        for (int it = 0; it < 1500; it++) {
            c = default_cfg();
            c.df = QS_DF_OS;
            c.rows = rn_int(&r, 1, 8);
            c.cols = rn_int(&r, 1, 8);
            static const int WPB[4] = {1, 2, 4, 8};
            c.wpb = WPB[rn_int(&r, 0, 3)];
            c.skip = (qs_zero_skip)rn_int(&r, 0, 4);
            int wi = rn_int(&r, 0, 2), abits = rn_int(&r, 2, 4);
            rn_limits lim = {WB[wi], abits, 8, 12, 8, 4000, 1, 0.25};
            rn_spec s;
            rn_random_spec(&r, &lim, &s);
            int wsign = rn_chance(&r, 0.7), dense = rn_chance(&r, 0.6);
            for (int i = 0; i < s.n; i++) {
                s.l[i].wdt = WDT[wi];
                s.l[i].wsigned = wsign;
                if (dense) { /* as in test_random_equivalence's narrow cases: sums grow */
                    s.l[i].wzero = s.l[i].wrowzero = s.l[i].wcolzero = 0.0;
                    s.l[i].out_signed = 0;
                    s.l[i].out_zp = 0;
                    s.l[i].relu = 0;
                }
            }
            if (dense) s.sgn = s.zp = 0;
            c.mwb = (WB[wi] + c.wpb - 1) / c.wpb * c.wpb;
            c.mab = abits;
            int amin = c.mwb + c.mab < 8 ? 8 : c.mwb + c.mab;
            c.acc_bits = amin + rn_int(&r, 0, 3);
            c.ovf = rn_chance(&r, 0.5) ? QS_OVF_WRAP : QS_OVF_SATURATE;
            c.group = c.rows % 2 == 0 && rn_chance(&r, 0.5) ? 2 : 1;
            qs_arch a;
            if (!make_arch(&c, &a)) continue;
            qs_net *net = rn_build(&s);
            int32_t *xin = rn_input(&r, net, dense ? 0.0 : 0.1 * rn_int(&r, 0, 6), 0.0);
            char d1[1024], d2[512], ctx[1700];
            rn_describe(&s, d1, sizeof d1);
            describe_cfg(&c, d2, sizeof d2);
            snprintf(ctx, sizeof ctx, "overflow case %d%s: %s; %s", it, wide ? " (64-bit lanes)" : "", d2, d1);
            g_case = ctx;
            run_result rr;
            memset(&rr, 0, sizeof rr);
            int rc = run_both(net, &a, xin, &rr);
            if (rc >= 0) {
                ran++;
                for (int li = 1; li < net->n_layers && li < 8; li++) overflowed += rr.st[li].ev.acc_overflows > 0;
            }
            qs_free(xin);
            qs_net_destroy(net);
        }
        g_case = "";
        qs_array_value_paths(&p1);
        uint64_t by_row = p1.row_bound - p0.row_bound, by_out = p1.prefix - p0.prefix,
                 ordered = p1.ordered_rows - p0.ordered_rows;
        printf("\n    %s: %d cases run, %d layers overflowed; outputs by row bound %llu, by partial sums %llu; ordered rows %llu ",
               wide ? "64-bit lanes" : "32-bit lanes", ran, overflowed, (unsigned long long)by_row, (unsigned long long)by_out, (unsigned long long)ordered);
        CU_ASSERT(ran >= 1200);
        CU_ASSERT(overflowed >= 200);
        CU_ASSERT(by_row >= 1000);
        CU_ASSERT(by_out >= 1000);
        CU_ASSERT(ordered >= 1000);
        CU_ASSERT_EQUAL(bad, 0);
    }
    qs_array_wide_lanes_only(0);
    CU_ASSERT_EQUAL(bad, 0);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("sim", NULL, NULL);
    CU_add_test(s, "fast == detailed == reference on random layers", test_random_equivalence);
    CU_add_test(s, "OS tile time (group time + drain, rate)", test_os_tile_formula);
    CU_add_test(s, "activation skipping needs a whole group's step zero", test_activation_skipping);
    CU_add_test(s, "scalesim convention: skip_group changes nothing, engines agree", test_scalesim_ignores_skip_group);
    CU_add_test(s, "wider weights take proportionally more cycles", test_weight_width);
    CU_add_test(s, "lookahead weight skipping by hand", test_lookahead_by_hand);
    CU_add_test(s, "DRAM bandwidth removes DRAM stalls", test_dram_bandwidth);
    CU_add_test(s, "narrow banks add buffer stalls", test_bank_width);
    CU_add_test(s, "outstanding DMA requests hide DRAM latency", test_outstanding_requests);
    CU_add_test(s, "a slow PPU shows as ppu stalls", test_ppu_stalls);
    CU_add_test(s, "DMA, DRAM and PPU time of a one-tile layer by hand, latency sweep", test_dma_ppu_by_hand);
    CU_add_test(s, "shipped networks: fast == detailed on every layer kind", test_shipped_nets);
    CU_add_test(s, "matmul of two activations: OS/WS/IS times, run-time skipping, values", test_matmul_timing);
    CU_add_test(s, "transformer PPU layers: element operations", test_xfmr_ppu_ops);
    CU_add_test(s, "decoder PPU layers: element operations", test_decoder_ppu_ops);
    CU_add_test(s, "language-model PPU layers (embed, argmax, grouped matmul): element operations", test_lm_ppu_ops);
    CU_add_test(s, "decode step: KV cache traffic", test_decode_step_traffic);
    CU_add_test(s, "rerun and input checks", test_rerun);
    CU_add_test(s, "rerun with a new input reuses nothing stale", test_rerun_new_input);
    CU_add_test(s, "[dram] model = tlm: memory backend, no backend refused", test_tlm_backend);
    CU_add_test(s, "DRAM contents: weight images decoded, outputs unpacked", test_dram_image);
    CU_add_test(s, "16-bit activations (int32 rows)", test_wide_activations);
    CU_add_test(s, "accumulators that may overflow: exact sums only within the bound", test_overflow_bounds);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
