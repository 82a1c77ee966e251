/* Formatting of the run report. Every figure is computed here from counts;
 * nothing is typed in. Field meanings: docs/report.md. */
#include "report.h"
#include "qs_revision.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    uint64_t cycles, macs, macs_exec, slice_ops, gated, skipped, dram_bytes, stall[4];
    double energy_pj;
    qs_energy_breakdown e;
    qs_dram_stats dram;   /* bank-level model */
} totals;

static double per_inf(const qs_report *r, double v) { return v / (r->n_inferences ? r->n_inferences : 1); }

/* The bank-level DRAM model's figures of a layer or the run (docs/report.md):
 * energy by action, row-buffer hit rate, bandwidth used, read latency. */
typedef struct {
    double hit_rate, gbps, read_latency_ns;
} dram_figures;

static dram_figures dram_figures_of(const qs_arch *a, const qs_dram_stats *d, uint64_t bytes, uint64_t cycles)
{
    dram_figures f = {0, 0, 0};
    uint64_t acc = d->row_hits + d->row_misses + d->row_conflicts;
    if (acc) f.hit_rate = (double)d->row_hits / (double)acc;
    if (cycles) f.gbps = (double)bytes / ((double)cycles * 1e3 / a->freq_mhz); /* bytes per ns = GB/s */
    if (d->reads) f.read_latency_ns = (double)d->read_latency_sum / (double)d->reads * a->dram.tck_ps / 1000.0;
    return f;
}

static cJSON *dram_json(const qs_arch *a, const qs_dram_stats *d, const qs_energy_breakdown *e, uint64_t bytes,
                        uint64_t cycles, double k)
{
    cJSON *o = cJSON_CreateObject();
    dram_figures f = dram_figures_of(a, d, bytes, cycles);
    cJSON_AddStringToObject(o, "model", qs_dram_model_name(a->dram_model));
    cJSON *en = cJSON_AddObjectToObject(o, "energy_pj");
    cJSON_AddNumberToObject(en, "activate_precharge", e->dram_act * k);
    cJSON_AddNumberToObject(en, "read", e->dram_rd * k);
    cJSON_AddNumberToObject(en, "write", e->dram_wr * k);
    cJSON_AddNumberToObject(en, "refresh", e->dram_ref * k);
    cJSON_AddNumberToObject(en, "background", e->dram_bg * k);
    cJSON_AddNumberToObject(o, "activates", (double)d->acts * k);
    cJSON_AddNumberToObject(o, "read_bursts", (double)d->reads * k);
    cJSON_AddNumberToObject(o, "write_bursts", (double)d->writes * k);
    cJSON_AddNumberToObject(o, "refreshes", (double)d->refreshes * k);
    cJSON_AddNumberToObject(o, "row_hits", (double)d->row_hits * k);
    cJSON_AddNumberToObject(o, "row_misses", (double)d->row_misses * k);
    cJSON_AddNumberToObject(o, "row_conflicts", (double)d->row_conflicts * k);
    cJSON_AddNumberToObject(o, "row_hit_rate", f.hit_rate);
    cJSON_AddNumberToObject(o, "bandwidth_gbps", f.gbps);
    cJSON_AddNumberToObject(o, "avg_read_latency_ns", f.read_latency_ns);
    return o;
}

static void dram_stats_sum(qs_dram_stats *t, const qs_dram_stats *d)
{
    qs_dram_stats zero;
    memset(&zero, 0, sizeof zero);
    qs_dram_stats_add_delta(t, d, &zero);
}

/* Totals over layers: add each layer's stats, then finish (energy of the sum). */
static void totals_add(totals *t, qs_events *all, const qs_layer_stats *s)
{
    qs_events_add(all, &s->ev);
    t->stall[0] += s->stall_dram;
    t->stall[1] += s->stall_dep;
    t->stall[2] += s->stall_buffer;
    t->stall[3] += s->stall_ppu;
    dram_stats_sum(&t->dram, &s->dram);
}

static void totals_finish(totals *t, const qs_events *all, const qs_tech *tech, const qs_arch *arch)
{
    t->cycles = all->cycles;
    t->macs = all->macs;
    t->macs_exec = all->macs_executed;
    t->slice_ops = all->mac_ops;
    t->gated = all->mac_gated;
    t->skipped = all->mac_skipped;
    t->dram_bytes = all->dram_read_bytes + all->dram_write_bytes;
    t->e = qs_energy_of(tech, arch, all);
    t->energy_pj = t->e.total;
}

static totals sum_events(const qs_report *r, qs_events *all)
{
    totals t;
    memset(&t, 0, sizeof t);
    memset(all, 0, sizeof *all);
    for (int32_t i = 1; i < r->net->n_layers; i++) totals_add(&t, all, &r->layers[i]);
    totals_finish(&t, all, r->tech, r->arch);
    return t;
}

static totals sum_all(const qs_report *r)
{
    qs_events all;
    return sum_events(r, &all);
}

/* The terminal report shows energy in one unit, chosen once from the total so
 * that it prints with 1..4 digits before the point; per-layer figures and the
 * totals use it alike (JSON and CSV stay in pJ, named *_pj). */
typedef struct {
    const char *name;
    double pj; /* picojoules per unit */
} energy_unit;

static energy_unit energy_unit_for(double total_pj)
{
    static const energy_unit UNITS[] = {{"pJ", 1.0}, {"nJ", 1e3}, {"uJ", 1e6}, {"mJ", 1e9}, {"J", 1e12}};
    int u = 0;
    while (u < 4 && total_pj >= 1e4 * UNITS[u].pj) u++;
    return UNITS[u];
}

/* Width of a name column: the longest name (at least the header's). */
static int name_width(int w, const char *name)
{
    int len = (int)strlen(name);
    return len > w ? len : w;
}

static void print_bytes(char *buf, size_t n, double b)
{
    if (b >= 1e6) snprintf(buf, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f kB", b / 1e3);
    else snprintf(buf, n, "%.0f B", b);
}

/* The bank-level model's block of the table: DRAM energy by action, then
 * per layer the row-buffer hit rate, bandwidth used and read latency. */
static void print_dram(const qs_report *r, const totals *t, FILE *f)
{
    const qs_arch *a = r->arch;
    const qs_energy_breakdown *e = &t->e;
    double d = e->dram > 0 ? e->dram : 1;
    dram_figures tf = dram_figures_of(a, &t->dram, t->dram_bytes, t->cycles);
    fprintf(f, "DRAM %s: %.3f uJ (activate/precharge %.1f%%, read %.1f%%, write %.1f%%, refresh %.1f%%, "
               "background %.1f%%); row hits %.1f%%, %.2f GB/s, read latency %.1f ns\n",
            qs_dram_model_name(a->dram_model), per_inf(r, e->dram) / 1e6, 100 * e->dram_act / d, 100 * e->dram_rd / d,
            100 * e->dram_wr / d, 100 * e->dram_ref / d, 100 * e->dram_bg / d, 100 * tf.hit_rate, tf.gbps,
            tf.read_latency_ns);
    fprintf(f, "%-14s %7s %9s %11s %10s %10s %10s %10s %10s\n", "DRAM by layer", "hit%", "GB/s", "rd lat ns",
            "act nJ", "rd nJ", "wr nJ", "ref nJ", "bg nJ");
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer_stats *s = &r->layers[i];
        if (!s->cycles) continue;
        qs_energy_breakdown le = qs_energy_of(r->tech, a, &s->ev);
        dram_figures lf = dram_figures_of(a, &s->dram, s->ev.dram_read_bytes + s->ev.dram_write_bytes, s->cycles);
        fprintf(f, "%-14.14s %7.1f %9.2f %11.1f %10.2f %10.2f %10.2f %10.2f %10.2f\n", r->net->layers[i].name,
                100 * lf.hit_rate, lf.gbps, lf.read_latency_ns, per_inf(r, le.dram_act) / 1e3,
                per_inf(r, le.dram_rd) / 1e3, per_inf(r, le.dram_wr) / 1e3, per_inf(r, le.dram_ref) / 1e3,
                per_inf(r, le.dram_bg) / 1e3);
    }
}

void qs_report_print(const qs_report *r, FILE *f)
{
    const qs_arch *a = r->arch;
    fprintf(f, "qsim %s (source %s) | %s on %s (%dx%d %s, W-path %d b, skip %s, %s engine)", QSIM_VERSION, qs_source_revision, r->net->name,
            a->name, a->rows, a->cols, qs_dataflow_name(a->dataflow), a->weight_path_bits,
            qs_zero_skip_name(a->zero_skip), r->engine);
    if (r->n_inferences > 1) fprintf(f, ", per inference over %d", r->n_inferences);
    totals t = sum_all(r);
    energy_unit eu = energy_unit_for(per_inf(r, t.energy_pj));
    char energy_head[16];
    snprintf(energy_head, sizeof energy_head, "energy %s", eu.name);
    int nw = 5;
    for (int32_t i = 1; i < r->net->n_layers; i++) nw = name_width(nw, r->net->layers[i].name);
    fprintf(f, "\n\n%-*s %-7s %-13s %10s %10s %6s %9s %9s %9s %9s %6s %9s %10s\n", nw, "layer", "type", "out CxHxW",
            "MACs", "cycles", "util%", "st.dram", "st.dep", "st.buf", "st.ppu", "skip%", "DRAM", energy_head);
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer *L = &r->net->layers[i];
        const qs_layer_stats *s = &r->layers[i];
        char shape[32], dram[16];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        print_bytes(dram, sizeof dram, per_inf(r, (double)(s->ev.dram_read_bytes + s->ev.dram_write_bytes)));
        double util = s->cycles ? 100.0 * (double)(s->ev.mac_ops + s->ev.mac_gated) /
                                      ((double)a->rows * a->cols * (double)s->cycles) : 0.0;
        double dense = (double)s->ev.macs * r->prog->maps[i].slices;
        double skip = dense > 0 ? 100.0 * (double)s->ev.mac_skipped / dense : 0.0;
        qs_energy_breakdown e = qs_energy_of(r->tech, a, &s->ev);
        fprintf(f, "%-*s %-7.7s %-13s %10.0f %10.0f %6.1f %9.0f %9.0f %9.0f %9.0f %6.1f %9s %10.3f\n", nw, L->name,
                qs_layer_kind_name(L->kind), shape, per_inf(r, (double)s->ev.macs), per_inf(r, (double)s->cycles), util,
                per_inf(r, (double)s->stall_dram), per_inf(r, (double)s->stall_dep), per_inf(r, (double)s->stall_buffer),
                per_inf(r, (double)s->stall_ppu), skip, dram, per_inf(r, e.total) / eu.pj);
    }
    double cyc = per_inf(r, (double)t.cycles);
    double secs = cyc / (a->freq_mhz * 1e6);
    double epj = per_inf(r, t.energy_pj);
    double macs = per_inf(r, (double)t.macs), macs_exec = per_inf(r, (double)t.macs_exec);
    fprintf(f, "\ntotal: %.0f cycles = %.3f us at %.0f MHz -> %.1f inferences/s\n", cyc, secs * 1e6, a->freq_mhz,
            secs > 0 ? 1.0 / secs : 0.0);
    fprintf(f, "MACs: %.0f dense, %.0f executed (%.1f%% skipped or compressed away)\n", macs, macs_exec,
            macs > 0 ? 100.0 * (1.0 - macs_exec / macs) : 0.0);
    fprintf(f, "stalls: dram %.0f, dependency %.0f, buffer %.0f, ppu %.0f cycles\n", per_inf(r, (double)t.stall[0]),
            per_inf(r, (double)t.stall[1]), per_inf(r, (double)t.stall[2]), per_inf(r, (double)t.stall[3]));
    fprintf(f, "energy per inference: %.3f %s  (MAC %.1f%%, registers %.1f%%, SRAM %.1f%%, DRAM %.1f%%, PPU %.1f%%, "
               "leakage %.1f%%)\n",
            epj / eu.pj, eu.name, 100 * t.e.mac / t.energy_pj, 100 * t.e.registers / t.energy_pj, 100 * t.e.sram / t.energy_pj,
            100 * t.e.dram / t.energy_pj, 100 * t.e.ppu / t.energy_pj, 100 * t.e.leakage / t.energy_pj);
    if (qs_dram_is_bank_model(a->dram_model)) print_dram(r, &t, f);
    const qs_tech *T = r->tech;
    fprintf(f, "area: %.3f mm^2  (array %.3f, SRAM ifmap %.3f weight %.3f accum %.3f, DMA %.3f, PPU %.3f, control %.3f) "
               "at %d nm, %.2f V\n",
            T->total_mm2, T->array_mm2, T->sram_mm2[0], T->sram_mm2[1], T->sram_mm2[2], T->dma_mm2, T->ppu_mm2,
            T->control_mm2, a->node_nm, a->voltage);
    double ops_eff = 2.0 * macs, ops_exec = 2.0 * macs_exec;
    if (secs > 0 && epj > 0) {
        fprintf(f, "effective (dense ops counted): %.4f TOPS, %.3f TOPS/W, %.4f TOPS/mm^2\n", ops_eff / secs / 1e12,
                ops_eff / epj, ops_eff / secs / 1e12 / T->total_mm2);
        fprintf(f, "executed  (ops actually done): %.4f TOPS, %.3f TOPS/W, %.4f TOPS/mm^2\n", ops_exec / secs / 1e12,
                ops_exec / epj, ops_exec / secs / 1e12 / T->total_mm2);
        fprintf(f, "FP32-equivalent (each dense MAC as 2 FP32 FLOPs, dLAC's headline metric): %.4f TFLOP/s/mm^2\n",
                ops_eff / secs / 1e12 / T->total_mm2);
    }
    if (r->n_labelled)
        fprintf(f, "accuracy: %.2f%% top-1 (%d of %d)\n", 100.0 * r->n_correct / r->n_labelled, r->n_correct,
                r->n_labelled);
}

static cJSON *energy_json(const qs_energy_breakdown *e, double scale)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mac", e->mac * scale);
    cJSON_AddNumberToObject(o, "registers", e->registers * scale);
    cJSON_AddNumberToObject(o, "sram", e->sram * scale);
    cJSON_AddNumberToObject(o, "dram", e->dram * scale);
    cJSON_AddNumberToObject(o, "ppu", e->ppu * scale);
    cJSON_AddNumberToObject(o, "leakage", e->leakage * scale);
    return o;
}

static void config_json(cJSON *root, const qs_arch *a)
{
    cJSON *ar = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(ar, "name", a->name);
    cJSON_AddNumberToObject(ar, "rows", a->rows);
    cJSON_AddNumberToObject(ar, "cols", a->cols);
    cJSON_AddStringToObject(ar, "dataflow", qs_dataflow_name(a->dataflow));
    cJSON_AddNumberToObject(ar, "weight_path_bits", a->weight_path_bits);
    cJSON_AddStringToObject(ar, "zero_skip", qs_zero_skip_name(a->zero_skip));
    cJSON_AddNumberToObject(ar, "skip_group", a->skip_group);
    cJSON_AddNumberToObject(ar, "lookahead", a->lookahead);
    cJSON_AddNumberToObject(ar, "acc_bits", a->acc_bits);
    cJSON_AddNumberToObject(ar, "freq_mhz", a->freq_mhz);
    cJSON_AddNumberToObject(ar, "node_nm", a->node_nm);
    cJSON_AddNumberToObject(ar, "dram_bytes_per_cycle", a->dram_bytes_per_cycle);
    cJSON_AddStringToObject(ar, "dram_model", qs_dram_model_name(a->dram_model));
    cJSON_AddNumberToObject(ar, "dma_outstanding", a->dma_outstanding);
    cJSON_AddNumberToObject(ar, "dma_request_bytes", a->dma_request_bytes);
    cJSON_AddNumberToObject(ar, "dma_separate_write_engine", a->dma_separate_write);
}

/* SRAM traffic per buffer: {"ifmap": {"read": B, "write": B}, ...}, bytes scaled by k. */
static void sram_json(cJSON *o, const qs_events *ev, double k)
{
    static const char *const BUF[3] = {"ifmap", "weight", "accum"};
    cJSON *sb = cJSON_AddObjectToObject(o, "sram_bytes");
    for (int b = 0; b < 3; b++) {
        cJSON *x = cJSON_AddObjectToObject(sb, BUF[b]);
        cJSON_AddNumberToObject(x, "read", (double)ev->sram_read_bytes[b] * k);
        cJSON_AddNumberToObject(x, "write", (double)ev->sram_write_bytes[b] * k);
    }
}

/* Every configuration key after the file and the overrides, "section.key": value. */
static void effective_config_json(cJSON *root, const qs_arch *a)
{
    cJSON *o = cJSON_AddObjectToObject(root, "effective_config");
    for (int32_t i = 0; i < qs_arch_n_keys(); i++) {
        const char *sec, *key;
        char val[300], name[80];
        int num;
        if (!qs_arch_key_value(a, i, &sec, &key, val, sizeof val, &num)) continue;
        snprintf(name, sizeof name, "%s.%s", sec, key);
        if (num) cJSON_AddNumberToObject(o, name, strtod(val, NULL));
        else cJSON_AddStringToObject(o, name, val);
    }
}

/* The "total" object; k scales per-inference figures. */
static cJSON *totals_json(cJSON *root, const qs_arch *a, const qs_tech *T, const totals *t, double k)
{
    double secs = (double)t->cycles * k / (a->freq_mhz * 1e6);
    double epj = t->energy_pj * k;
    cJSON *tot = cJSON_AddObjectToObject(root, "total");
    cJSON_AddNumberToObject(tot, "cycles", (double)t->cycles * k);
    cJSON_AddNumberToObject(tot, "time_s", secs);
    cJSON_AddNumberToObject(tot, "inferences_per_s", secs > 0 ? 1.0 / secs : 0);
    cJSON_AddNumberToObject(tot, "macs", (double)t->macs * k);
    cJSON_AddNumberToObject(tot, "macs_executed", (double)t->macs_exec * k);
    cJSON_AddNumberToObject(tot, "mac_slice_ops", (double)t->slice_ops * k);
    cJSON_AddNumberToObject(tot, "mac_slice_gated", (double)t->gated * k);
    cJSON_AddNumberToObject(tot, "mac_slice_skipped", (double)t->skipped * k);
    cJSON_AddNumberToObject(tot, "dram_bytes", (double)t->dram_bytes * k);
    cJSON *st = cJSON_AddObjectToObject(tot, "stall_cycles");
    cJSON_AddNumberToObject(st, "dram", (double)t->stall[0] * k);
    cJSON_AddNumberToObject(st, "dependency", (double)t->stall[1] * k);
    cJSON_AddNumberToObject(st, "buffer", (double)t->stall[2] * k);
    cJSON_AddNumberToObject(st, "ppu", (double)t->stall[3] * k);
    cJSON_AddNumberToObject(tot, "energy_pj", epj);
    cJSON_AddItemToObject(tot, "energy_breakdown_pj", energy_json(&t->e, k));
    if (qs_dram_is_bank_model(a->dram_model))
        cJSON_AddItemToObject(tot, "dram", dram_json(a, &t->dram, &t->e, t->dram_bytes, t->cycles, k));
    cJSON_AddNumberToObject(tot, "area_mm2", T->total_mm2);
    cJSON *area = cJSON_AddObjectToObject(tot, "area_breakdown_mm2");
    cJSON_AddNumberToObject(area, "array", T->array_mm2);
    cJSON_AddNumberToObject(area, "sram_ifmap", T->sram_mm2[0]);
    cJSON_AddNumberToObject(area, "sram_weight", T->sram_mm2[1]);
    cJSON_AddNumberToObject(area, "sram_accum", T->sram_mm2[2]);
    cJSON_AddNumberToObject(area, "dma", T->dma_mm2);
    cJSON_AddNumberToObject(area, "ppu", T->ppu_mm2);
    cJSON_AddNumberToObject(area, "control", T->control_mm2);
    cJSON_AddNumberToObject(tot, "pe_area_um2", T->pe_um2);
    double ops_eff = 2.0 * (double)t->macs * k, ops_exec = 2.0 * (double)t->macs_exec * k;
    cJSON_AddNumberToObject(tot, "effective_tops", secs > 0 ? ops_eff / secs / 1e12 : 0);
    cJSON_AddNumberToObject(tot, "executed_tops", secs > 0 ? ops_exec / secs / 1e12 : 0);
    cJSON_AddNumberToObject(tot, "effective_tops_per_w", epj > 0 ? ops_eff / epj : 0);
    cJSON_AddNumberToObject(tot, "executed_tops_per_w", epj > 0 ? ops_exec / epj : 0);
    cJSON_AddNumberToObject(tot, "effective_tops_per_mm2", secs > 0 ? ops_eff / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "executed_tops_per_mm2", secs > 0 ? ops_exec / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "fp32_equivalent_tflops_per_mm2", secs > 0 ? ops_eff / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "utilization", t->cycles ? (double)(t->slice_ops + t->gated) /
                                                    ((double)a->rows * a->cols * (double)t->cycles) : 0);
    return tot;
}

/* One entry of "layers". */
static cJSON *layer_json(const qs_arch *a, const qs_tech *T, const qs_layer *L, const qs_layer_stats *s,
                         const qs_layer_map *m, double k)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", L->name);
    cJSON_AddStringToObject(o, "type", qs_layer_kind_name(L->kind));
    int shp[3] = {L->out_c, L->out_h, L->out_w};
    cJSON_AddItemToObject(o, "out_shape", cJSON_CreateIntArray(shp, 3));
    cJSON_AddNumberToObject(o, "macs", (double)s->ev.macs * k);
    cJSON_AddNumberToObject(o, "macs_executed", (double)s->ev.macs_executed * k);
    cJSON_AddNumberToObject(o, "cycles", (double)s->cycles * k);
    cJSON_AddNumberToObject(o, "array_busy", (double)s->array_busy * k);
    cJSON_AddNumberToObject(o, "utilization", s->cycles ? (double)(s->ev.mac_ops + s->ev.mac_gated) /
                                                  ((double)a->rows * a->cols * (double)s->cycles) : 0);
    cJSON *ls = cJSON_AddObjectToObject(o, "stall_cycles");
    cJSON_AddNumberToObject(ls, "dram", (double)s->stall_dram * k);
    cJSON_AddNumberToObject(ls, "dependency", (double)s->stall_dep * k);
    cJSON_AddNumberToObject(ls, "buffer", (double)s->stall_buffer * k);
    cJSON_AddNumberToObject(ls, "ppu", (double)s->stall_ppu * k);
    double dense = (double)s->ev.macs * m->slices;
    cJSON_AddNumberToObject(o, "skipped_fraction", dense > 0 ? (double)s->ev.mac_skipped / dense : 0);
    cJSON_AddNumberToObject(o, "gated_fraction", dense > 0 ? (double)s->ev.mac_gated / dense : 0);
    cJSON_AddNumberToObject(o, "acc_overflows", (double)s->ev.acc_overflows * k);
    cJSON_AddNumberToObject(o, "dram_read_bytes", (double)s->ev.dram_read_bytes * k);
    cJSON_AddNumberToObject(o, "dram_write_bytes", (double)s->ev.dram_write_bytes * k);
    sram_json(o, &s->ev, k);
    qs_energy_breakdown e = qs_energy_of(T, a, &s->ev);
    cJSON_AddNumberToObject(o, "energy_pj", e.total * k);
    cJSON_AddItemToObject(o, "energy_breakdown_pj", energy_json(&e, k));
    if (qs_dram_is_bank_model(a->dram_model))
        cJSON_AddItemToObject(o, "dram", dram_json(a, &s->dram, &e, s->ev.dram_read_bytes + s->ev.dram_write_bytes,
                                                   s->cycles, k));
    if (m->is_gemm) {
        cJSON *mp = cJSON_AddObjectToObject(o, "mapping");
        cJSON_AddNumberToObject(mp, "M", m->g.M);
        cJSON_AddNumberToObject(mp, "N", m->g.N);
        cJSON_AddNumberToObject(mp, "K", m->g.K);
        cJSON_AddNumberToObject(mp, "groups", m->g.groups);
        cJSON_AddNumberToObject(mp, "weight_bits", m->weight_bits);
        cJSON_AddNumberToObject(mp, "act_bits", m->act_bits);
        cJSON_AddNumberToObject(mp, "slices", m->slices);
        cJSON_AddNumberToObject(mp, "tile_m", m->tm);
        cJSON_AddNumberToObject(mp, "tile_n", m->tn);
        cJSON_AddNumberToObject(mp, "tile_k", m->tk);
        cJSON_AddStringToObject(mp, "loop_order", m->order == QS_ORDER_N_OUTER ? "n-outer" : "m-outer");
    }
    return o;
}

/* Print root to path (and free it). */
static qs_status write_json_file(cJSON *root, const char *path, qs_error *err)
{
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return qs_fail(err, QS_ERR_NOMEM, "out of memory writing JSON");
    FILE *f = fopen(path, "w");
    if (!f) {
        free(text);
        return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    }
    fputs(text, f);
    fputc('\n', f);
    free(text);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

static cJSON *report_json(const qs_report *r)
{
    double k = 1.0 / (r->n_inferences ? r->n_inferences : 1);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "qsim_version", QSIM_VERSION);
    cJSON_AddStringToObject(root, "source_revision", qs_source_revision);
    if (r->command_line) cJSON_AddStringToObject(root, "command_line", r->command_line);
    cJSON_AddStringToObject(root, "network", r->net_path);
    cJSON_AddStringToObject(root, "arch", r->arch_path);
    cJSON_AddStringToObject(root, "engine", r->engine);
    cJSON_AddNumberToObject(root, "inferences", r->n_inferences);
    config_json(root, r->arch);
    effective_config_json(root, r->arch);
    qs_events all;
    totals t = sum_events(r, &all);
    cJSON *tot = totals_json(root, r->arch, r->tech, &t, k);
    sram_json(tot, &all, k);
    if (r->n_labelled) {
        cJSON_AddNumberToObject(root, "accuracy", (double)r->n_correct / r->n_labelled);
        cJSON_AddNumberToObject(root, "labelled", r->n_labelled);
    }
    if (r->predictions) cJSON_AddItemToObject(root, "predictions", cJSON_CreateIntArray(r->predictions, r->n_inferences));
    cJSON_AddNumberToObject(root, "wall_seconds", r->wall_seconds);

    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int32_t i = 1; i < r->net->n_layers; i++)
        cJSON_AddItemToArray(layers, layer_json(r->arch, r->tech, &r->net->layers[i], &r->layers[i],
                                                &r->prog->maps[i], k));
    return root;
}

qs_status qs_report_write_json(const qs_report *r, const char *path, qs_error *err)
{
    cJSON *root = report_json(r);
    if (!root) return qs_fail(err, QS_ERR_NOMEM, "out of memory writing JSON");
    return write_json_file(root, path, err);
}

qs_status qs_report_json_text(const qs_report *r, char **text, qs_error *err)
{
    cJSON *root = report_json(r);
    if (!root) return qs_fail(err, QS_ERR_NOMEM, "out of memory writing JSON");
    *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!*text) return qs_fail(err, QS_ERR_NOMEM, "out of memory writing JSON");
    return QS_OK;
}

qs_status qs_report_write_csv(const qs_report *r, const char *path, qs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    double k = 1.0 / (r->n_inferences ? r->n_inferences : 1);
    fprintf(f, "layer,type,out_c,out_h,out_w,macs,macs_executed,cycles,utilization,stall_dram,stall_dependency,"
               "stall_buffer,stall_ppu,skipped_fraction,dram_bytes,energy_pj\n");
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer *L = &r->net->layers[i];
        const qs_layer_stats *s = &r->layers[i];
        double dense = (double)s->ev.macs * r->prog->maps[i].slices;
        qs_energy_breakdown e = qs_energy_of(r->tech, r->arch, &s->ev);
        fprintf(f, "%s,%s,%d,%d,%d,%.0f,%.0f,%.0f,%.6f,%.0f,%.0f,%.0f,%.0f,%.6f,%.0f,%.3f\n", L->name,
                qs_layer_kind_name(L->kind), L->out_c, L->out_h, L->out_w, (double)s->ev.macs * k,
                (double)s->ev.macs_executed * k, (double)s->cycles * k,
                s->cycles ? (double)(s->ev.mac_ops + s->ev.mac_gated) /
                                ((double)r->arch->rows * r->arch->cols * (double)s->cycles) : 0.0,
                (double)s->stall_dram * k, (double)s->stall_dep * k, (double)s->stall_buffer * k,
                (double)s->stall_ppu * k, dense > 0 ? (double)s->ev.mac_skipped / dense : 0.0,
                (double)(s->ev.dram_read_bytes + s->ev.dram_write_bytes) * k, e.total * k);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

/* ==== SCALE-Sim topologies (docs/scalesim.md) ================================== */

void qs_py_float(char *buf, size_t n, double v)
{
    /* Python's repr(): the shortest digits that read back as v; positional
     * for decimal exponents -4..15, else d.ddde+XX */
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == 0.0) {
        snprintf(buf, n, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    const char *p = tmp;
    int neg = *p == '-';
    if (neg) p++;
    char dig[32];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 30) dig[nd++] = *p;
    int e = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    dig[nd] = '\0';
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (e >= -4 && e < 16) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) out[o++] = i < nd ? dig[i] : '0';
            out[o++] = '.';
            if (nd > e + 1)
                for (int i = e + 1; i < nd; i++) out[o++] = dig[i];
            else
                out[o++] = '0';
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -e - 1; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = dig[i];
        }
        out[o] = '\0';
    } else {
        out[o++] = dig[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = dig[i];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(buf, n, "%s", out);
}

/* SCALE-Sim's report figures of one layer, from qs_layer_stats.ss and the
 * compiler's DRAM plan (docs/scalesim.md, "Reports"). */
typedef struct {
    int valid;                       /* scalesim timing produced figures */
    uint64_t total, stall;
    double overall_util, mapping_eff, compute_util;
    uint64_t sram_access[3];         /* ifmap reads, filter reads, ofmap writes */
    double sram_start[3], sram_stop[3];
    uint64_t dram_access[3];         /* ifmap reads, filter reads, ofmap writes */
    double dram_start[3], dram_stop[3];
    double sram_bw[3], dram_bw[3];
} ss_figures;

static double ratio(double a, double b) { return b != 0.0 ? a / b : 0.0; }

static ss_figures figures_of(const qs_topo_layer *tl, const qs_arch *a)
{
    ss_figures f;
    memset(&f, 0, sizeof f);
    const qs_scalesim_stats *s = &tl->stats.ss;
    f.valid = a->timing == QS_TIMING_SCALESIM && s->folds > 0;
    if (!f.valid) return f;
    int64_t m, n, k;
    qs_scalesim_mnk(&tl->row, &m, &n, &k);
    f.total = s->total_cycles;
    f.stall = s->stall_cycles;
    /* single_layer_sim: num_compute = ofmap pixels (all filters) x window */
    double num_compute = (double)m * (double)n * (double)k;
    f.overall_util = ratio(num_compute * 100.0, (double)f.total * ((double)a->rows * a->cols));
    f.mapping_eff = ratio(s->mapping_eff_sum, (double)s->folds) * 100.0;
    f.compute_util = ratio(s->compute_util_sum, (double)s->folds) * 100.0;
    f.sram_access[0] = s->ifmap_sram_reads;
    f.sram_access[1] = s->filter_sram_reads;
    f.sram_access[2] = s->ofmap_sram_writes;
    f.sram_start[0] = (double)s->ifmap_sram_first;
    f.sram_stop[0] = (double)s->ifmap_sram_last;
    f.sram_start[1] = (double)s->filter_sram_first;
    f.sram_stop[1] = (double)s->filter_sram_last;
    f.sram_start[2] = (double)s->ofmap_sram_first;
    f.sram_stop[2] = (double)s->ofmap_sram_last;
    for (int i = 0; i < 3; i++) f.sram_bw[i] = ratio((double)f.sram_access[i], (double)f.total);
    /* DRAM reads: the compiler's planned ifmap and weight traffic in bytes
     * (= SCALE-Sim's one-byte words), over the layer's compute span */
    if (s->dram_reads_replayed) {
        /* SCALE-Sim's read buffers replayed (CALC mode, docs/scalesim.md) */
        for (int i = 0; i < 2; i++) {
            f.dram_access[i] = s->dram_reads[i];
            f.dram_start[i] = (double)s->dram_read_first[i];
            f.dram_stop[i] = (double)s->dram_read_last[i];
        }
    } else {
        /* USER mode: the compiler's planned ifmap and weight traffic */
        f.dram_access[0] = (uint64_t)tl->map.dram_ifmap;
        f.dram_access[1] = (uint64_t)tl->map.dram_weight;
        for (int i = 0; i < 2; i++) {
            f.dram_start[i] = 0.0;
            f.dram_stop[i] = f.total ? (double)(f.total - 1) : 0.0;
        }
    }
    f.dram_access[2] = s->ofmap_dram_writes;
    f.dram_start[2] = (double)s->ofmap_dram_first;
    f.dram_stop[2] = (double)s->ofmap_dram_last;
    for (int i = 0; i < 3; i++)
        f.dram_bw[i] = ratio((double)f.dram_access[i], f.dram_stop[i] - f.dram_start[i] + 1.0);
    return f;
}

static totals topo_totals(const qs_topo_report *r)
{
    totals t;
    memset(&t, 0, sizeof t);
    qs_events all;
    memset(&all, 0, sizeof all);
    for (int32_t i = 0; i < r->n; i++)
        if (!r->layers[i].no_operands) totals_add(&t, &all, &r->layers[i].stats);
    totals_finish(&t, &all, r->tech, r->arch);
    return t;
}

/* layers run without operands: qsim's own totals are not computed when any is */
static int32_t topo_no_operands(const qs_topo_report *r)
{
    int32_t n = 0;
    for (int32_t i = 0; i < r->n; i++) n += r->layers[i].no_operands != 0;
    return n;
}

static void operands_text(char *buf, size_t n, const qs_scalesim_opts *o)
{
    char ws[32] = "", as[32] = "";
    if (o->weight_bits == 1) snprintf(ws, sizeof ws, "bipolar");
    else snprintf(ws, sizeof ws, "W%d", o->weight_bits);
    snprintf(as, sizeof as, "A%d", o->act_bits);
    if (o->weight_sparsity == 0.0 && o->act_sparsity == 0.0)
        snprintf(buf, n, "%s%s dense", ws, as);
    else
        snprintf(buf, n, "%s%s, %.0f%% zero weights, %.0f%% zero activations", ws, as, 100.0 * o->weight_sparsity,
                 100.0 * o->act_sparsity);
}

void qs_topo_report_print(const qs_topo_report *r, FILE *f)
{
    const qs_arch *a = r->arch;
    char ops[96];
    operands_text(ops, sizeof ops, r->opts);
    fprintf(f, "qsim %s (source %s) | %s (%s, %d layers) on %s (%dx%d %s, %s, skip %s, %s timing, %s engine)\n\n", QSIM_VERSION, qs_source_revision,
            r->topo_path, r->gemm ? "GEMM" : "conv", r->n, a->name, a->rows, a->cols, qs_dataflow_name(a->dataflow),
            ops, qs_zero_skip_name(a->zero_skip), qs_timing_name(a->timing), r->engine);
    totals t = topo_totals(r);
    energy_unit eu = energy_unit_for(t.energy_pj);
    char energy_head[16];
    snprintf(energy_head, sizeof energy_head, "energy %s", eu.name);
    int nw = 5;
    for (int32_t i = 0; i < r->n; i++) nw = name_width(nw, r->layers[i].row.name);
    fprintf(f, "%3s %-*s %-13s %-18s %10s %10s %9s %7s %7s %6s %10s\n", "id", nw, "layer", "ofmap CxHxW", "M x N x K",
            "cycles", "SS total", "SS stall", "SS util", "SS map", "util%", energy_head);
    uint64_t ss_total = 0, ss_stall = 0;
    double num_compute = 0.0;
    int any_ss = 0;
    for (int32_t i = 0; i < r->n; i++) {
        const qs_topo_layer *tl = &r->layers[i];
        const qs_layer_stats *s = &tl->stats;
        int64_t m, n, k;
        qs_scalesim_mnk(&tl->row, &m, &n, &k);
        char shape[40], mnk[48], st[16] = "-", ss[16] = "-", su[16] = "-", sm[16] = "-";
        snprintf(shape, sizeof shape, "%dx%dx%d", tl->layer.out_c, tl->layer.out_h, tl->layer.out_w);
        snprintf(mnk, sizeof mnk, "%lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
        ss_figures fg = figures_of(tl, a);
        if (fg.valid) {
            any_ss = 1;
            ss_total += fg.total;
            ss_stall += fg.stall;
            snprintf(st, sizeof st, "%" PRIu64, fg.total);
            snprintf(ss, sizeof ss, "%" PRIu64, fg.stall);
            snprintf(su, sizeof su, "%.2f", fg.overall_util);
            snprintf(sm, sizeof sm, "%.2f", fg.mapping_eff);
        }
        num_compute += (double)m * (double)n * (double)k;
        if (tl->no_operands) {
            fprintf(f, "%3d %-*s %-13s %-18s %10s %10s %9s %7s %7s %6s %10s\n", (int)i, nw, tl->row.name, shape, mnk,
                    "-", st, ss, su, sm, "-", "-");
            continue;
        }
        double util = s->cycles ? 100.0 * (double)(s->ev.mac_ops + s->ev.mac_gated) /
                                      ((double)a->rows * a->cols * (double)s->cycles) : 0.0;
        qs_energy_breakdown e = qs_energy_of(r->tech, a, &s->ev);
        fprintf(f, "%3d %-*s %-13s %-18s %10" PRIu64 " %10s %9s %7s %7s %6.1f %10.3f\n", (int)i, nw, tl->row.name,
                shape, mnk, s->cycles, st, ss, su, sm, util, e.total / eu.pj);
    }
    const int32_t no_ops = topo_no_operands(r);
    if (no_ops) {
        /* qsim's cycles, MACs and energy need every layer simulated on operands */
        fprintf(f, "\n%d of %d layers ran without operands (SCALE-Sim's figures only): qsim's own cycles, MACs and "
                   "energy are not computed (docs/scalesim.md)\n",
                (int)no_ops, (int)r->n);
        if (any_ss)
            fprintf(f, "SCALE-Sim figures: Total Cycles %" PRIu64 ", Stall Cycles %" PRIu64 ", Overall Util %.2f%%\n",
                    ss_total, ss_stall,
                    ss_total ? num_compute * 100.0 / ((double)ss_total * a->rows * a->cols) : 0.0);
        return;
    }
    double secs = (double)t.cycles / (a->freq_mhz * 1e6);
    fprintf(f, "\ntotal: %" PRIu64 " cycles = %.3f us at %.0f MHz (layers one after another)\n", t.cycles, secs * 1e6,
            a->freq_mhz);
    if (any_ss)
        fprintf(f, "SCALE-Sim figures: Total Cycles %" PRIu64 ", Stall Cycles %" PRIu64 ", Overall Util %.2f%%\n",
                ss_total, ss_stall,
                ss_total ? num_compute * 100.0 / ((double)ss_total * a->rows * a->cols) : 0.0);
    fprintf(f, "MACs: %" PRIu64 " dense, %" PRIu64 " executed (%.1f%% skipped or compressed away)\n", t.macs,
            t.macs_exec, t.macs ? 100.0 * (1.0 - (double)t.macs_exec / (double)t.macs) : 0.0);
    /* a header-only topology has no energy at all: 0%, not NaN */
    const double pct = t.energy_pj > 0 ? 100 / t.energy_pj : 0.0;
    fprintf(f, "energy: %.3f %s  (MAC %.1f%%, registers %.1f%%, SRAM %.1f%%, DRAM %.1f%%, PPU %.1f%%, leakage %.1f%%)\n",
            t.energy_pj / eu.pj, eu.name, pct * t.e.mac, pct * t.e.registers, pct * t.e.sram, pct * t.e.dram,
            pct * t.e.ppu, pct * t.e.leakage);
    const qs_tech *T = r->tech;
    fprintf(f, "area: %.3f mm^2  (array %.3f, SRAM ifmap %.3f weight %.3f accum %.3f, DMA %.3f, PPU %.3f, control %.3f) "
               "at %d nm, %.2f V\n",
            T->total_mm2, T->array_mm2, T->sram_mm2[0], T->sram_mm2[1], T->sram_mm2[2], T->dma_mm2, T->ppu_mm2,
            T->control_mm2, a->node_nm, a->voltage);
    if (secs > 0 && t.energy_pj > 0)
        fprintf(f, "effective: %.4f TOPS, %.3f TOPS/W, %.4f TOPS/mm^2\n", 2.0 * (double)t.macs / secs / 1e12,
                2.0 * (double)t.macs / t.energy_pj, 2.0 * (double)t.macs / secs / 1e12 / T->total_mm2);
}

static cJSON *ss_layer_json(const qs_topo_layer *tl, const qs_arch *a)
{
    const qs_scalesim_stats *s = &tl->stats.ss;
    ss_figures fg = figures_of(tl, a);
    int64_t sr, sc, t;
    qs_scalesim_spatiotemporal(&tl->row, a->dataflow, &sr, &sc, &t);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "Sr", (double)sr);
    cJSON_AddNumberToObject(o, "Sc", (double)sc);
    cJSON_AddNumberToObject(o, "T", (double)t);
    if (!fg.valid) return o;
    cJSON_AddNumberToObject(o, "folds", (double)s->folds);
    cJSON_AddNumberToObject(o, "total_cycles", (double)fg.total);
    cJSON_AddNumberToObject(o, "stall_cycles", (double)fg.stall);
    cJSON_AddNumberToObject(o, "overall_util_pct", fg.overall_util);
    cJSON_AddNumberToObject(o, "mapping_efficiency_pct", fg.mapping_eff);
    cJSON_AddNumberToObject(o, "compute_util_pct", fg.compute_util);
    cJSON_AddNumberToObject(o, "ifmap_sram_reads", (double)fg.sram_access[0]);
    cJSON_AddNumberToObject(o, "filter_sram_reads", (double)fg.sram_access[1]);
    cJSON_AddNumberToObject(o, "ofmap_sram_writes", (double)fg.sram_access[2]);
    cJSON_AddNumberToObject(o, "ifmap_dram_reads", (double)fg.dram_access[0]);
    cJSON_AddNumberToObject(o, "filter_dram_reads", (double)fg.dram_access[1]);
    cJSON_AddNumberToObject(o, "ofmap_dram_writes", (double)fg.dram_access[2]);
    cJSON_AddNumberToObject(o, "ifmap_sram_first_cycle", (double)s->ifmap_sram_first);
    cJSON_AddNumberToObject(o, "ifmap_sram_last_cycle", (double)s->ifmap_sram_last);
    cJSON_AddNumberToObject(o, "filter_sram_first_cycle", (double)s->filter_sram_first);
    cJSON_AddNumberToObject(o, "filter_sram_last_cycle", (double)s->filter_sram_last);
    cJSON_AddNumberToObject(o, "ofmap_sram_first_cycle", (double)s->ofmap_sram_first);
    cJSON_AddNumberToObject(o, "ofmap_sram_last_cycle", (double)s->ofmap_sram_last);
    cJSON_AddNumberToObject(o, "ofmap_dram_first_cycle", (double)s->ofmap_dram_first);
    cJSON_AddNumberToObject(o, "ofmap_dram_last_cycle", (double)s->ofmap_dram_last);
    return o;
}

qs_status qs_topo_report_write_json(const qs_topo_report *r, const char *path, qs_error *err)
{
    const qs_arch *a = r->arch;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "qsim_version", QSIM_VERSION);
    cJSON_AddStringToObject(root, "source_revision", qs_source_revision);
    if (r->command_line) cJSON_AddStringToObject(root, "command_line", r->command_line);
    cJSON_AddStringToObject(root, "network", r->topo_path);
    cJSON_AddStringToObject(root, "arch", r->arch_path);
    cJSON_AddStringToObject(root, "engine", r->engine);
    cJSON_AddNumberToObject(root, "inferences", 1);
    config_json(root, a);
    cJSON_AddStringToObject(cJSON_GetObjectItem(root, "config"), "timing", qs_timing_name(a->timing));
    effective_config_json(root, a);
    cJSON *tp = cJSON_AddObjectToObject(root, "topology");
    cJSON_AddStringToObject(tp, "path", r->topo_path);
    cJSON_AddStringToObject(tp, "form", r->gemm ? "gemm" : "conv");
    cJSON_AddNumberToObject(tp, "layers", r->n);
    cJSON *op = cJSON_AddObjectToObject(root, "operands");
    cJSON_AddNumberToObject(op, "weight_bits", r->opts->weight_bits);
    cJSON_AddNumberToObject(op, "act_bits", r->opts->act_bits);
    cJSON_AddNumberToObject(op, "weight_sparsity", r->opts->weight_sparsity);
    cJSON_AddNumberToObject(op, "act_sparsity", r->opts->act_sparsity);
    if (r->sscfg) {
        const qs_scalesim_cfg *g = r->sscfg;
        cJSON *c = cJSON_AddObjectToObject(root, "scalesim_config");
        cJSON_AddStringToObject(c, "run_name", g->run_name);
        cJSON_AddNumberToObject(c, "ArrayHeight", g->array_h);
        cJSON_AddNumberToObject(c, "ArrayWidth", g->array_w);
        cJSON_AddNumberToObject(c, "IfmapSramSzkB", g->ifmap_kb);
        cJSON_AddNumberToObject(c, "FilterSramSzkB", g->filter_kb);
        cJSON_AddNumberToObject(c, "OfmapSramSzkB", g->ofmap_kb);
        cJSON_AddStringToObject(c, "Dataflow", qs_dataflow_name(g->dataflow));
        cJSON_AddNumberToObject(c, "Bandwidth", g->bandwidth);
        cJSON_AddStringToObject(c, "InterfaceBandwidth", g->user_bandwidth ? "USER" : "CALC");
    }
    totals t = topo_totals(r);
    const int32_t no_ops = topo_no_operands(r);
    cJSON *tot;
    if (no_ops) {
        /* qsim's own totals need every layer simulated on operands */
        cJSON_AddNumberToObject(root, "layers_without_operands", no_ops);
        tot = cJSON_AddObjectToObject(root, "total");
    } else {
        tot = totals_json(root, a, r->tech, &t, 1.0);
    }
    if (a->timing == QS_TIMING_SCALESIM) {
        uint64_t st = 0, ss = 0;
        for (int32_t i = 0; i < r->n; i++) {
            st += r->layers[i].stats.ss.total_cycles;
            ss += r->layers[i].stats.ss.stall_cycles;
        }
        cJSON *so = cJSON_AddObjectToObject(tot, "scalesim");
        cJSON_AddNumberToObject(so, "total_cycles", (double)st);
        cJSON_AddNumberToObject(so, "stall_cycles", (double)ss);
    }
    cJSON_AddNumberToObject(root, "wall_seconds", r->wall_seconds);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int32_t i = 0; i < r->n; i++) {
        const qs_topo_layer *tl = &r->layers[i];
        cJSON *o;
        if (tl->no_operands) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", tl->row.name);
            cJSON_AddBoolToObject(o, "no_operands", 1);
            cJSON_AddNumberToObject(o, "out_c", tl->layer.out_c);
            cJSON_AddNumberToObject(o, "out_h", tl->layer.out_h);
            cJSON_AddNumberToObject(o, "out_w", tl->layer.out_w);
        } else {
            o = layer_json(a, r->tech, &tl->layer, &tl->stats, &tl->map, 1.0);
        }
        /* the topology's own name (the network's is cut to 47 printable characters) */
        cJSON_ReplaceItemInObject(o, "name", cJSON_CreateString(tl->row.name));
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddNumberToObject(o, "line", tl->row.line);
        cJSON_AddItemToObject(o, "scalesim", ss_layer_json(tl, a));
        cJSON_AddItemToArray(layers, o);
    }
    return write_json_file(root, path, err);
}

/* CSV fields are written as they are; a topology name with a comma or quote is quoted. */
static void csv_name(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

qs_status qs_topo_report_write_csv(const qs_topo_report *r, const char *path, qs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    const qs_arch *a = r->arch;
    fprintf(f, "layer,type,out_c,out_h,out_w,macs,macs_executed,cycles,utilization,stall_dram,stall_dependency,"
               "stall_buffer,stall_ppu,skipped_fraction,dram_bytes,energy_pj,M,N,K,ss_total_cycles,ss_stall_cycles,"
               "ss_overall_util,ss_mapping_efficiency,ss_compute_util\n");
    for (int32_t i = 0; i < r->n; i++) {
        const qs_topo_layer *tl = &r->layers[i];
        const qs_layer_stats *s = &tl->stats;
        double dense = (double)s->ev.macs * tl->map.slices;
        qs_energy_breakdown e = qs_energy_of(r->tech, a, &s->ev);
        int64_t m, n, k;
        qs_scalesim_mnk(&tl->row, &m, &n, &k);
        csv_name(f, tl->row.name);
        if (tl->no_operands) /* qsim's own columns are not computed: empty */
            fprintf(f, ",%s,%d,%d,%d,,,,,,,,,,,,%lld,%lld,%lld", qs_layer_kind_name(tl->layer.kind), tl->layer.out_c,
                    tl->layer.out_h, tl->layer.out_w, (long long)m, (long long)n, (long long)k);
        else {
            fprintf(f, ",%s,%d,%d,%d,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.6f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
                       ",%.6f,%" PRIu64 ",%.3f,%lld,%lld,%lld",
                    qs_layer_kind_name(tl->layer.kind), tl->layer.out_c, tl->layer.out_h, tl->layer.out_w, s->ev.macs,
                    s->ev.macs_executed, s->cycles,
                    s->cycles ? (double)(s->ev.mac_ops + s->ev.mac_gated) / ((double)a->rows * a->cols * (double)s->cycles)
                              : 0.0,
                    s->stall_dram, s->stall_dep, s->stall_buffer, s->stall_ppu,
                    dense > 0 ? (double)s->ev.mac_skipped / dense : 0.0, s->ev.dram_read_bytes + s->ev.dram_write_bytes,
                    e.total, (long long)m, (long long)n, (long long)k);
        }
        ss_figures fg = figures_of(tl, a);
        if (fg.valid)
            fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%.6f\n", fg.total, fg.stall, fg.overall_util,
                    fg.mapping_eff, fg.compute_util);
        else
            fprintf(f, ",,,,,\n");
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

/* ---- SCALE-Sim's own CSV reports ---------------------------------------------- */

/* One report line as SCALE-Sim writes it: str(lid) + ', ' + ', '.join(str(x)) + ',\n'. */
typedef struct {
    FILE *f;
} ss_line;

static void ss_begin(ss_line *l, FILE *f, int32_t lid)
{
    l->f = f;
    fprintf(f, "%d", (int)lid);
}

static void ss_int(ss_line *l, uint64_t v) { fprintf(l->f, ", %" PRIu64, v); }

static void ss_float(ss_line *l, double v)
{
    char b[48];
    qs_py_float(b, sizeof b, v);
    fprintf(l->f, ", %s", b);
}

static void ss_end(ss_line *l) { fputs(",\n", l->f); }

static FILE *open_in(const char *dir, const char *name, char *path, size_t n, qs_error *err)
{
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) qs_fail(err, QS_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    return f;
}

static qs_status close_report(FILE *f, const char *path, qs_error *err)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

qs_status qs_scalesim_write_reports(const qs_topo_report *r, const char *dir, qs_error *err)
{
    if (r->arch->timing != QS_TIMING_SCALESIM)
        return qs_fail(err, QS_ERR_ARG,
                       "%s: SCALE-Sim's reports need [timing] convention = scalesim (this run uses %s timing)", dir,
                       qs_timing_name(r->arch->timing));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return qs_fail(err, QS_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    char path[3][1024];
    FILE *f[3] = {NULL, NULL, NULL};
    static const char *const NAMES[3] = {"COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"};
    for (int i = 0; i < 3; i++)
        if (!(f[i] = open_in(dir, NAMES[i], path[i], sizeof path[i], err))) {
            for (int j = 0; j < i; j++) fclose(f[j]);
            return QS_ERR_IO;
        }
    /* simulator.py generate_reports(): headers verbatim */
    fputs("LayerID, Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,\n", f[0]);
    fputs("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
          "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n",
          f[1]);
    fputs("LayerID, "
          "SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
          "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
          "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
          "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
          "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
          "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,\n",
          f[2]);
    for (int32_t i = 0; i < r->n; i++) {
        ss_figures fg = figures_of(&r->layers[i], r->arch);
        ss_line l;
        /* single_layer_sim.py: ints stay ints, ratios are floats, cycles
         * taken from its (float) trace matrices print as floats */
        ss_begin(&l, f[0], i);
        ss_int(&l, fg.total);
        ss_int(&l, fg.stall);
        ss_float(&l, fg.overall_util);
        ss_float(&l, fg.mapping_eff);
        ss_float(&l, fg.compute_util);
        ss_end(&l);
        ss_begin(&l, f[1], i);
        for (int k = 0; k < 3; k++) ss_float(&l, fg.sram_bw[k]);
        for (int k = 0; k < 3; k++) ss_float(&l, fg.dram_bw[k]);
        ss_end(&l);
        ss_begin(&l, f[2], i);
        for (int k = 0; k < 3; k++) {
            ss_float(&l, fg.sram_start[k]);
            ss_float(&l, fg.sram_stop[k]);
            ss_int(&l, fg.sram_access[k]);
        }
        for (int k = 0; k < 3; k++) {
            ss_float(&l, fg.dram_start[k]);
            ss_float(&l, fg.dram_stop[k]);
            ss_int(&l, fg.dram_access[k]);
        }
        ss_end(&l);
    }
    qs_status st = QS_OK;
    for (int i = 0; i < 3; i++) {
        qs_status s2 = close_report(f[i], path[i], err);
        if (st == QS_OK) st = s2;
    }
    return st;
}

void qs_scalesim_print_stdout(const qs_topo_report *r, const char *topo_arg, FILE *f)
{
    const qs_arch *a = r->arch;
    const qs_scalesim_cfg *c = r->sscfg;
    static const char *const DF[] = {"Output Stationary", "Weight Stationary", "Input Stationary"};
    fprintf(f, "====================================================\n");
    fprintf(f, "******************* SCALE SIM **********************\n");
    fprintf(f, "====================================================\n");
    fprintf(f, "Array Size: \t%dx%d\n", a->rows, a->cols);
    fprintf(f, "SRAM IFMAP (kB): \t%d\n", c ? c->ifmap_kb : a->ifmap.size_kib);
    fprintf(f, "SRAM Filter (kB): \t%d\n", c ? c->filter_kb : a->weight.size_kib);
    fprintf(f, "SRAM OFMAP (kB): \t%d\n", c ? c->ofmap_kb : a->accum.size_kib);
    fprintf(f, "Dataflow: \t%s\n", DF[a->dataflow == QS_DF_WS ? 1 : a->dataflow == QS_DF_IS ? 2 : 0]);
    fprintf(f, "CSV file path: \t%s\n", topo_arg);
    if (a->scalesim_bandwidth > 0) {
        fprintf(f, "Bandwidth: \t");
        if (c && c->n_bandwidths > 0) fprintf(f, "%s\n", c->bandwidth_text);
        else fprintf(f, "%d\n", a->scalesim_bandwidth);
        fprintf(f, "Working in USE USER BANDWIDTH mode.\n");
    } else {
        fprintf(f, "Working in ESTIMATE BANDWIDTH mode.\n");
    }
    fprintf(f, "====================================================\n");
    for (int32_t i = 0; i < r->n; i++) {
        ss_figures fg = figures_of(&r->layers[i], a);
        /* Python's "{:.2f}" and "{:.3f}" round the binary value as printf does */
        fprintf(f, "\nRunning Layer %d\n", (int)i);
        fprintf(f, "Compute cycles: %" PRIu64 "\n", fg.total);
        fprintf(f, "Stall cycles: %" PRIu64 "\n", fg.stall);
        fprintf(f, "Overall utilization: %.2f%%\n", fg.overall_util);
        fprintf(f, "Mapping efficiency: %.2f%%\n", fg.mapping_eff);
        fprintf(f, "Average IFMAP DRAM BW: %.3f words/cycle\n", fg.dram_bw[0]);
        fprintf(f, "Average Filter DRAM BW: %.3f words/cycle\n", fg.dram_bw[1]);
        fprintf(f, "Average OFMAP DRAM BW: %.3f words/cycle\n", fg.dram_bw[2]);
    }
    fprintf(f, "************ SCALE SIM Run Complete ****************\n");
}
