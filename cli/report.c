/* Formatting of the run report. Every figure is computed here from counts;
 * nothing is typed in. Field meanings: docs/report.md. */
#include "report.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t cycles, macs, macs_exec, slice_ops, gated, skipped, dram_bytes, stall[4];
    double energy_pj;
    qs_energy_breakdown e;
} totals;

static double per_inf(const qs_report *r, double v) { return v / (r->n_inferences ? r->n_inferences : 1); }

static totals sum_all(const qs_report *r)
{
    totals t;
    memset(&t, 0, sizeof t);
    qs_events all;
    memset(&all, 0, sizeof all);
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer_stats *s = &r->layers[i];
        qs_events_add(&all, &s->ev);
        t.stall[0] += s->stall_dram;
        t.stall[1] += s->stall_dep;
        t.stall[2] += s->stall_buffer;
        t.stall[3] += s->stall_ppu;
    }
    t.cycles = all.cycles;
    t.macs = all.macs;
    t.macs_exec = all.macs_executed;
    t.slice_ops = all.mac_ops;
    t.gated = all.mac_gated;
    t.skipped = all.mac_skipped;
    t.dram_bytes = all.dram_read_bytes + all.dram_write_bytes;
    t.e = qs_energy_of(r->tech, r->arch, &all);
    t.energy_pj = t.e.total;
    return t;
}

static void print_bytes(char *buf, size_t n, double b)
{
    if (b >= 1e6) snprintf(buf, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f kB", b / 1e3);
    else snprintf(buf, n, "%.0f B", b);
}

void qs_report_print(const qs_report *r, FILE *f)
{
    const qs_arch *a = r->arch;
    fprintf(f, "qsim %s | %s on %s (%dx%d %s, W-path %d b, skip %s, %s engine)", QSIM_VERSION, r->net->name,
            a->name, a->rows, a->cols, qs_dataflow_name(a->dataflow), a->weight_path_bits,
            qs_zero_skip_name(a->zero_skip), r->engine);
    if (r->n_inferences > 1) fprintf(f, ", per inference over %d", r->n_inferences);
    fprintf(f, "\n\n%-14s %-7s %-13s %10s %10s %6s %9s %9s %9s %9s %6s %9s %10s\n", "layer", "type", "out CxHxW", "MACs",
            "cycles", "util%", "st.dram", "st.dep", "st.buf", "st.ppu", "skip%", "DRAM", "energy nJ");
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
        fprintf(f, "%-14.14s %-7.7s %-13s %10.0f %10.0f %6.1f %9.0f %9.0f %9.0f %9.0f %6.1f %9s %10.2f\n", L->name,
                qs_layer_kind_name(L->kind), shape, per_inf(r, (double)s->ev.macs), per_inf(r, (double)s->cycles), util,
                per_inf(r, (double)s->stall_dram), per_inf(r, (double)s->stall_dep), per_inf(r, (double)s->stall_buffer),
                per_inf(r, (double)s->stall_ppu), skip, dram, per_inf(r, e.total) / 1e3);
    }
    totals t = sum_all(r);
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
    fprintf(f, "energy per inference: %.3f uJ  (MAC %.1f%%, registers %.1f%%, SRAM %.1f%%, DRAM %.1f%%, PPU %.1f%%, "
               "leakage %.1f%%)\n",
            epj / 1e6, 100 * t.e.mac / t.energy_pj, 100 * t.e.registers / t.energy_pj, 100 * t.e.sram / t.energy_pj,
            100 * t.e.dram / t.energy_pj, 100 * t.e.ppu / t.energy_pj, 100 * t.e.leakage / t.energy_pj);
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

qs_status qs_report_write_json(const qs_report *r, const char *path, qs_error *err)
{
    const qs_arch *a = r->arch;
    const qs_tech *T = r->tech;
    double k = 1.0 / (r->n_inferences ? r->n_inferences : 1);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "qsim_version", QSIM_VERSION);
    cJSON_AddStringToObject(root, "network", r->net_path);
    cJSON_AddStringToObject(root, "arch", r->arch_path);
    cJSON_AddStringToObject(root, "engine", r->engine);
    cJSON_AddNumberToObject(root, "inferences", r->n_inferences);
    cJSON *ar = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(ar, "name", a->name);
    cJSON_AddNumberToObject(ar, "rows", a->rows);
    cJSON_AddNumberToObject(ar, "cols", a->cols);
    cJSON_AddStringToObject(ar, "dataflow", qs_dataflow_name(a->dataflow));
    cJSON_AddNumberToObject(ar, "weight_path_bits", a->weight_path_bits);
    cJSON_AddStringToObject(ar, "zero_skip", qs_zero_skip_name(a->zero_skip));
    cJSON_AddNumberToObject(ar, "skip_group", a->skip_group);
    cJSON_AddNumberToObject(ar, "acc_bits", a->acc_bits);
    cJSON_AddNumberToObject(ar, "freq_mhz", a->freq_mhz);
    cJSON_AddNumberToObject(ar, "node_nm", a->node_nm);
    cJSON_AddNumberToObject(ar, "dram_bytes_per_cycle", a->dram_bytes_per_cycle);

    totals t = sum_all(r);
    double secs = (double)t.cycles * k / (a->freq_mhz * 1e6);
    double epj = t.energy_pj * k;
    cJSON *tot = cJSON_AddObjectToObject(root, "total");
    cJSON_AddNumberToObject(tot, "cycles", (double)t.cycles * k);
    cJSON_AddNumberToObject(tot, "time_s", secs);
    cJSON_AddNumberToObject(tot, "inferences_per_s", secs > 0 ? 1.0 / secs : 0);
    cJSON_AddNumberToObject(tot, "macs", (double)t.macs * k);
    cJSON_AddNumberToObject(tot, "macs_executed", (double)t.macs_exec * k);
    cJSON_AddNumberToObject(tot, "mac_slice_ops", (double)t.slice_ops * k);
    cJSON_AddNumberToObject(tot, "mac_slice_gated", (double)t.gated * k);
    cJSON_AddNumberToObject(tot, "mac_slice_skipped", (double)t.skipped * k);
    cJSON_AddNumberToObject(tot, "dram_bytes", (double)t.dram_bytes * k);
    cJSON *st = cJSON_AddObjectToObject(tot, "stall_cycles");
    cJSON_AddNumberToObject(st, "dram", (double)t.stall[0] * k);
    cJSON_AddNumberToObject(st, "dependency", (double)t.stall[1] * k);
    cJSON_AddNumberToObject(st, "buffer", (double)t.stall[2] * k);
    cJSON_AddNumberToObject(st, "ppu", (double)t.stall[3] * k);
    cJSON_AddNumberToObject(tot, "energy_pj", epj);
    cJSON_AddItemToObject(tot, "energy_breakdown_pj", energy_json(&t.e, k));
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
    double ops_eff = 2.0 * (double)t.macs * k, ops_exec = 2.0 * (double)t.macs_exec * k;
    cJSON_AddNumberToObject(tot, "effective_tops", secs > 0 ? ops_eff / secs / 1e12 : 0);
    cJSON_AddNumberToObject(tot, "executed_tops", secs > 0 ? ops_exec / secs / 1e12 : 0);
    cJSON_AddNumberToObject(tot, "effective_tops_per_w", epj > 0 ? ops_eff / epj : 0);
    cJSON_AddNumberToObject(tot, "executed_tops_per_w", epj > 0 ? ops_exec / epj : 0);
    cJSON_AddNumberToObject(tot, "effective_tops_per_mm2", secs > 0 ? ops_eff / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "executed_tops_per_mm2", secs > 0 ? ops_exec / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "fp32_equivalent_tflops_per_mm2", secs > 0 ? ops_eff / secs / 1e12 / T->total_mm2 : 0);
    cJSON_AddNumberToObject(tot, "utilization", t.cycles ? (double)(t.slice_ops + t.gated) /
                                                   ((double)a->rows * a->cols * (double)t.cycles) : 0);
    if (r->n_labelled) {
        cJSON_AddNumberToObject(root, "accuracy", (double)r->n_correct / r->n_labelled);
        cJSON_AddNumberToObject(root, "labelled", r->n_labelled);
    }
    if (r->predictions) cJSON_AddItemToObject(root, "predictions", cJSON_CreateIntArray(r->predictions, r->n_inferences));
    cJSON_AddNumberToObject(root, "wall_seconds", r->wall_seconds);

    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer *L = &r->net->layers[i];
        const qs_layer_stats *s = &r->layers[i];
        const qs_layer_map *m = &r->prog->maps[i];
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
        qs_energy_breakdown e = qs_energy_of(r->tech, a, &s->ev);
        cJSON_AddNumberToObject(o, "energy_pj", e.total * k);
        cJSON_AddItemToObject(o, "energy_breakdown_pj", energy_json(&e, k));
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
        cJSON_AddItemToArray(layers, o);
    }
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
