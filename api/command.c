/* The part of the public API (include/qsim/qsim.h) that the qsim command is
 * built on: the texts it prints (network table, mapping listing, report
 * table, warnings), the files it writes, and SCALE-Sim topology runs. The code
 * is the command's, moved here unchanged in what it computes and prints, so
 * `qsim` and a library user get the same bytes. */
#include "qsim_impl.h"

#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include "array.h"
#include "qs_npy.h"
#include "qs_xfmr.h"
#include "scalesim_reads.h"

void qsim_text_free(char *text) { qs_free(text); }

/* What a FILE-writing core function prints, as a malloc'd string. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} text_sink;

static qsim_status sink_open(text_sink *s, qsim_error *err)
{
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    return s->f ? QSIM_OK : fail(err, QSIM_ERR_NOMEM, "out of memory");
}

static qsim_status sink_close(text_sink *s, char **text, qsim_error *err)
{
    int bad = ferror(s->f);
    int closed = fclose(s->f);
    char *copy = NULL;
    if (closed == 0 && !bad && s->buf) {
        copy = qs_malloc(s->len + 1);
        if (copy) memcpy(copy, s->buf, s->len + 1);
    }
    /* open_memstream's buffer comes from libc's malloc, not from the library's
     * allocation function (docs/api.md, "Allocator"): the caller gets a copy it
     * can give back with qsim_text_free. */
    free(s->buf);
    *text = copy;
    if (!copy) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    return QSIM_OK;
}

/* ---- qsim info ------------------------------------------------------------------------ */

qsim_status qsim_net_describe(const qsim_net *h, char **text, qsim_error *err)
{
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_net_describe: text is NULL");
    *text = NULL;
    if (!h) return fail(err, QSIM_ERR_ARG, "qsim_net_describe: net is NULL");
    const qs_net *net = h->net;
    text_sink s;
    if (sink_open(&s, err)) return QSIM_ERR_NOMEM;
    FILE *f = s.f;
    int64_t params = 0, macs = 0, bytes = 0;
    int name_w = 4; /* the name column fits the longest name: cut names are ambiguous (features.1.conv.0, .1, ...) */
    for (int32_t i = 0; i < net->n_layers; i++) {
        int len = (int)strlen(net->layers[i].name);
        if (len > name_w) name_w = len;
    }
    fprintf(f, "network '%s' (%s): %d layers, %d tensors\n", net->name, h->path, net->n_layers, net->n_tensors);
    const qs_layer *IN = &net->layers[0];
    /* what a user needs to quantize real data for --input: q = round(real / scale) + zero point */
    fprintf(f, "input '%s': %dx%dx%d %s%d, scale %.9g, zero point %d (real = scale * (q - zero point))\n\n", IN->name,
            IN->out_c, IN->out_h, IN->out_w, IN->out_signed ? "int" : "uint", IN->out_bits, (double)IN->out_scale,
            (int)IN->out_zp);
    fprintf(f, "%3s %-*s %-9s %-10s %-14s %-9s %-10s %12s\n", "#", name_w, "name", "kind", "inputs", "out CxHxW", "out",
            "weights", "MACs");
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        char ins[32] = "", shape[32], outq[16], w[40] = "-";
        for (int32_t k = 0; k < L->n_inputs && k < 3; k++) {
            char t[12];
            snprintf(t, sizeof t, "%s%d", k ? "," : "", L->inputs[k]);
            strncat(ins, t, sizeof ins - strlen(ins) - 1);
        }
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        snprintf(outq, sizeof outq, "%s%d", L->out_signed ? "int" : "uint", L->out_bits);
        if (L->kind == QS_L_SOFTMAX && QS_SOFTMAX_IS_CAUSAL(L->param)) { /* the mask says more than the table */
            if (QS_SOFTMAX_OFFSET(L->param))
                snprintf(w, sizeof w, "causal+%d", (int)QS_SOFTMAX_OFFSET(L->param));
            else
                snprintf(w, sizeof w, "causal");
        } else if (L->kind == QS_L_LUT || L->kind == QS_L_SOFTMAX) { /* a table of the PPU, not weights */
            snprintf(w, sizeof w, "table[%lld]", (long long)net->tensors[L->weight].count);
        } else if (L->kind == QS_L_ROPE) { /* cos/sin table: positions x pairs */
            snprintf(w, sizeof w, "rope[%lldx%lld]", (long long)net->tensors[L->weight].shape[0],
                     (long long)net->tensors[L->weight].shape[1]);
        } else if (L->kind == QS_L_MUL && L->param == QS_MUL_ROWMAX) {
            snprintf(w, sizeof w, "x rowmax(%d)", (int)L->inputs[1]);
        } else if (L->kind == QS_L_KVCACHE) { /* the cache's maximum context (docs/decode.md) */
            snprintf(w, sizeof w, "max %d", (int)L->param);
        } else if (L->kind == QS_L_MATMUL) {
            snprintf(w, sizeof w, "%s%s", (const char *[]){"A x B", "A^T x B", "A x B^T", "A^T x B^T"}[L->param & 3],
                     (L->param & QS_MATMUL_GROUPED) ? " gqa" : "");
        } else if (L->kind == QS_L_EMBED) { /* table rows x hidden: parameters, but no MACs */
            const qs_tensor *T = &net->tensors[L->weight];
            snprintf(w, sizeof w, "%s[%lldx%lld]", qs_dtype_name(T->dtype, T->is_signed), (long long)T->shape[0],
                     (long long)T->shape[1]);
            params += T->count;
            bytes += qs_tensor_packed_bytes(T->count, T->dtype);
            if (L->bias >= 0) { /* the position table */
                const qs_tensor *P = &net->tensors[L->bias];
                params += P->count;
                bytes += qs_tensor_packed_bytes(P->count, P->dtype);
                snprintf(w, sizeof w, "%s[%lldx%lld]+pos", qs_dtype_name(T->dtype, T->is_signed),
                         (long long)T->shape[0], (long long)T->shape[1]);
            }
        } else if (L->weight >= 0) {
            const qs_tensor *T = &net->tensors[L->weight];
            int tied = 0; /* an LM head whose weight is an EMBED's table: counted there */
            for (int32_t j = 0; j < net->n_layers; j++)
                tied |= net->layers[j].kind == QS_L_EMBED && net->layers[j].weight == L->weight;
            snprintf(w, sizeof w, "%s%s", qs_dtype_name(T->dtype, T->is_signed), tied ? " tied" : "");
            if (!tied) {
                params += T->count;
                bytes += qs_tensor_packed_bytes(T->count, T->dtype);
            }
        }
        int64_t m = qs_layer_macs(net, i);
        macs += m;
        fprintf(f, "%3d %-*s %-9s %-10s %-14s %-9s %-10s %12lld\n", i, name_w, L->name, qs_layer_kind_name(L->kind),
                ins, shape, outq, w, (long long)m);
    }
    fprintf(f, "\nparameters: %lld weights, %lld bytes packed; MACs per inference: %lld\n", (long long)params,
            (long long)bytes, (long long)macs);
    return sink_close(&s, text, err);
}

/* ---- qsim compile ------------------------------------------------------------------------ */

qsim_status qsim_program_get_info(const qsim_program *prog, qsim_program_info *out, qsim_error *err)
{
    if (!prog) return fail(err, QSIM_ERR_ARG, "qsim_program_get_info: program is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_program_get_info: out is NULL");
    out->n_instructions = prog->prog->n_insn;
    out->dram_bytes = prog->prog->dram_bytes;
    return QSIM_OK;
}

qsim_status qsim_program_listing(const qsim_program *prog, int with_instructions, char **text, qsim_error *err)
{
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_program_listing: text is NULL");
    *text = NULL;
    if (!prog) return fail(err, QSIM_ERR_ARG, "qsim_program_listing: program is NULL");
    text_sink s;
    if (sink_open(&s, err)) return QSIM_ERR_NOMEM;
    qs_compile_listing(prog->prog, prog->net->net, with_instructions ? 1 : 0, s.f);
    return sink_close(&s, text, err);
}

/* Buffer bandwidth that does not grow with the array (docs/timing.md, "Buffer
 * bandwidth") can make a bigger array slower; a sweep shows only the cycles, so
 * say it where the user looks. The layer whose stream is slowed most names the
 * buffer, what it delivers and what the array reads. Run: when buffer stalls
 * are at least a quarter of the cycles; compile (no cycles yet): when layers
 * holding at least a quarter of the dense MACs stream slower than one step per
 * cycle. */
#define THROTTLE_WARN_FRACTION 0.25

int qi_throttle_warning(const qs_net *net, const qs_prog *p, const qs_arch *a, uint64_t stall_buffer,
                               uint64_t cycles, char **text)
{
    static const char *const BUF[3] = {"ifmap", "weight", "accum"};
    int32_t worst_rate = 1, worst_buf = -1;
    int64_t worst_need = 0, worst_bw = 0;
    double macs_all = 0.0, macs_slow = 0.0;
    for (int32_t i = 0; i < net->n_layers && i < p->n_layers; i++) {
        if (!p->maps[i].is_gemm) continue;
        int64_t need[3], bw[3];
        int32_t rate = qs_array_stream_needs(a, &p->maps[i], need, bw);
        double m = (double)qs_layer_macs(net, i);
        macs_all += m;
        if (rate > 1) macs_slow += m;
        for (int b = 0; b < 3; b++) {
            if (bw[b] <= 0 || need[b] <= bw[b]) continue;
            int32_t rb = (int32_t)((need[b] + bw[b] - 1) / bw[b]);
            if (rb > worst_rate) {
                worst_rate = rb;
                worst_buf = b;
                worst_need = need[b];
                worst_bw = bw[b];
            }
        }
    }
    if (worst_buf < 0) return 0;
    char why[400];
    snprintf(why, sizeof why,
             "the %s buffer delivers %lld B/cycle, the %dx%d array reads %lld B per step (%d cycles a step); "
             "raise buffer.%s.banks or buffer.%s.bank_width_bytes (docs/timing.md, Buffer bandwidth)",
             BUF[worst_buf], (long long)worst_bw, a->rows, a->cols, (long long)worst_need, (int)worst_rate,
             BUF[worst_buf], BUF[worst_buf]);
    if (cycles > 0) {
        double frac = (double)stall_buffer / (double)cycles;
        if (frac >= THROTTLE_WARN_FRACTION)
            return qi_add_message(text, "warning: buffer bandwidth throttles the array: %llu of %llu cycles "
                                               "(%.1f%%) are buffer stalls: %s",
                                         (unsigned long long)stall_buffer, (unsigned long long)cycles, 100.0 * frac, why);
    } else if (macs_all > 0 && macs_slow / macs_all >= THROTTLE_WARN_FRACTION) {
        return qi_add_message(text, "warning: buffer bandwidth throttles the array in layers with %.1f%% of the "
                                           "MACs: %s",
                                     100.0 * macs_slow / macs_all, why);
    }
    return 0;
}

qsim_status qsim_program_warnings(const qsim_program *prog, char **text, qsim_error *err)
{
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_program_warnings: text is NULL");
    *text = NULL;
    if (!prog) return fail(err, QSIM_ERR_ARG, "qsim_program_warnings: program is NULL");
    char *t = dup_str("");
    if (!t || qi_throttle_warning(prog->net->net, prog->prog, &prog->arch, 0, 0, &t)) {
        qs_free(t);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    *text = t;
    return QSIM_OK;
}

/* ---- reports: text and files ------------------------------------------------------------ */

static void topo_view(const qsim_report *r, qs_topo_report *v)
{
    qs_topo_report t = {&r->arch,      &r->tech,      r->has_sscfg ? &r->sscfg : NULL,
                        &r->ssopts,    r->net_path,   r->config_path,
                        r->engine,     r->topo_gemm,  r->topo_n,
                        r->topo_layers, r->wall_seconds, r->command_line};
    *v = t;
}

qsim_status qsim_report_text(const qsim_report *r, char **text, qsim_error *err)
{
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_report_text: text is NULL");
    *text = NULL;
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_text: report is NULL");
    text_sink s;
    if (sink_open(&s, err)) return QSIM_ERR_NOMEM;
    if (r->is_topology) {
        qs_topo_report v;
        topo_view(r, &v);
        qs_topo_report_print(&v, s.f);
    } else {
        qs_report v;
        qi_report_view(r, &v);
        qs_report_print(&v, s.f);
    }
    return sink_close(&s, text, err);
}

qsim_status qsim_report_write_json(const qsim_report *r, const char *path, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_write_json: report is NULL");
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_report_write_json: path is NULL");
    qs_error e;
    qs_status st;
    if (r->is_topology) {
        qs_topo_report v;
        topo_view(r, &v);
        st = qs_topo_report_write_json(&v, path, &e);
    } else {
        qs_report v;
        qi_report_view(r, &v);
        st = qs_report_write_json(&v, path, &e);
    }
    return pass(err, st, &e);
}

qsim_status qsim_report_write_csv(const qsim_report *r, const char *path, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_write_csv: report is NULL");
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_report_write_csv: path is NULL");
    qs_error e;
    qs_status st;
    if (r->is_topology) {
        qs_topo_report v;
        topo_view(r, &v);
        st = qs_topo_report_write_csv(&v, path, &e);
    } else {
        qs_report v;
        qi_report_view(r, &v);
        st = qs_report_write_csv(&v, path, &e);
    }
    return pass(err, st, &e);
}

qsim_status qsim_report_messages(const qsim_report *r, const char **text, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_messages: report is NULL");
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_report_messages: text is NULL");
    *text = r->messages;
    return QSIM_OK;
}

/* ---- SCALE-Sim topologies (docs/scalesim.md) ---------------------------------------------- */

void qsim_topology_options_init(qsim_topology_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->engine = QSIM_ENGINE_FAST;
    opts->gemm = -1;
    qs_scalesim_opts d;
    qs_scalesim_opts_default(&d);
    opts->weight_sparsity = d.weight_sparsity;
    opts->act_sparsity = d.act_sparsity;
    opts->weight_bits = d.weight_bits;
    opts->act_bits = d.act_bits;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The replayed figures of SCALE-Sim's CALC read buffers into the layer's
 * statistics. */
static void apply_read_replay(const qs_ssreads *r, qs_scalesim_stats *ss)
{
    ss->dram_reads_replayed = 1;
    for (int i = 0; i < 2; i++) {
        ss->dram_reads[i] = r->dram_reads[i];
        ss->dram_read_first[i] = r->dram_start[i];
        ss->dram_read_last[i] = r->dram_stop[i];
    }
    ss->ifmap_sram_first = (uint64_t)r->sram_start[0];
    ss->ifmap_sram_last = (uint64_t)r->sram_stop[0];
    ss->filter_sram_first = (uint64_t)r->sram_start[1];
    ss->filter_sram_last = (uint64_t)r->sram_stop[1];
}

/* CALC mode under the scalesim convention: the DRAM read columns and the
 * read operands' SRAM start/stop cycles from a replay of SCALE-Sim's read
 * buffers (docs/scalesim.md, "DRAM reads"); its own ofmap timeline must agree
 * with the engine's. With trace_dir, SCALE-Sim's six trace files of the
 * layer go to <trace_dir>/layer<index>/ (docs/scalesim.md, "Traces"), from
 * the same replay (in either bandwidth mode). */
static qs_status scalesim_read_replay(const qs_scalesim_layer *row, int32_t index, const qs_arch *arch,
                                      const char *trace_dir, const int64_t offsets[3], qs_scalesim_stats *ss,
                                      qs_error *e)
{
    if (arch->timing != QS_TIMING_SCALESIM || ss->folds == 0) return QS_OK;
    const int calc = arch->scalesim_bandwidth <= 0;
    if (!trace_dir && !calc) return QS_OK;
    qs_ssreads r;
    qs_status st;
    if (trace_dir) {
        char layer_dir[4096];
        if ((size_t)snprintf(layer_dir, sizeof layer_dir, "%s/layer%d", trace_dir, (int)index) >= sizeof layer_dir)
            return qs_fail(e, QS_ERR_ARG, "%s: path too long", trace_dir);
        if (mkdir(layer_dir, 0777) && errno != EEXIST)
            return qs_fail(e, QS_ERR_IO, "%s: cannot create directory: %s", layer_dir, strerror(errno));
        st = qs_sstrace_layer(row, arch, offsets, layer_dir, &r, e);
    } else {
        st = qs_ssreads_layer(row, arch, QS_SSREADS_DIRECT_LIMIT, &r, e);
    }
    if (st) return st;
    if (r.total_cycles != ss->total_cycles || r.stall_cycles != ss->stall_cycles)
        return qs_fail(e, QS_ERR_RUN, "layer '%s': SCALE-Sim read replay counts %llu cycles, the engine %llu",
                       row->name, (unsigned long long)r.total_cycles, (unsigned long long)ss->total_cycles);
    if (calc) apply_read_replay(&r, ss);
    return QS_OK;
}

/* One topology layer: its own network, compiled and simulated, then freed;
 * what the report needs is copied to *res. */
static qs_status run_topology_layer(const qs_scalesim_layer *row, int32_t index, const qs_arch *arch,
                                    qs_engine engine, const qs_scalesim_opts *base, int timing_only, int replay_reads,
                                    const char *trace_dir, const int64_t trace_offsets[3], qs_topo_layer *res,
                                    qs_error *e)
{
    if (timing_only || row->no_operands) {
        /* SCALE-Sim's figures from the row alone (docs/scalesim.md, "Layers
         * without operands"): no network, no qsim cycles or energy */
        memset(res, 0, sizeof *res);
        res->row = *row;
        res->no_operands = 1;
        snprintf(res->layer.name, sizeof res->layer.name, "%.40s", row->name);
        res->layer.kind = QS_L_CONV;
        int32_t oh, ow;
        qs_scalesim_ofmap_dims(row, &oh, &ow);
        res->layer.out_c = row->num_filters;
        res->layer.out_h = row->is_gemm ? row->gemm_m : oh;
        res->layer.out_w = row->is_gemm ? 1 : ow;
        qs_status st = qs_ssstats_layer(row, arch, &res->stats.ss, e);
        if (!st && (replay_reads || trace_dir))
            st = scalesim_read_replay(row, index, arch, trace_dir, trace_offsets, &res->stats.ss, e);
        return st;
    }
    qs_scalesim_opts opts = *base;
    opts.index = index;
    qs_net *net = NULL;
    qs_prog *prog = NULL;
    qs_sim *sim = NULL;
    int32_t *x = NULL;
    int64_t n = 0;
    qs_status st = qs_scalesim_layer_net(row, &opts, &net, e);
    if (!st) st = qs_compile(net, arch, &prog, e);
    if (!st) st = qs_sim_create(net, prog, engine, &sim, e);
    if (!st) st = qs_scalesim_layer_input(net, row, &opts, &x, &n, e);
    if (!st) st = qs_sim_set_input(sim, x, n, e);
    if (!st) qs_sim_set_scalesim_layer(sim, 1, row);
    if (!st) st = qs_sim_run(sim, e);
    if (!st) {
        res->row = *row;
        res->layer = net->layers[1];
        res->layer.rq.n = 0;
        res->layer.rq.mult = NULL;
        res->layer.rq.shift = NULL;
        res->map = prog->maps[1];
        res->map.list_off = res->map.list = res->map.bias_folded = NULL;
        res->stats = *qs_sim_layer_stats(sim, 1);
        if (replay_reads || trace_dir)
            st = scalesim_read_replay(row, index, arch, trace_dir, trace_offsets, &res->stats.ss, e);
    }
    qs_free(x);
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return st;
}

qsim_status qsim_topology_run(const qsim_config *cfg, const char *topology_path, const qsim_topology_options *o,
                              qsim_report **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_topology_run: out is NULL");
    *out = NULL;
    if (!cfg) return fail(err, QSIM_ERR_ARG, "qsim_topology_run: cfg is NULL");
    if (!topology_path) return fail(err, QSIM_ERR_ARG, "qsim_topology_run: topology_path is NULL");
    qsim_topology_options def;
    qsim_topology_options_init(&def);
    if (!o) o = &def;
    if (o->struct_size != sizeof *o)
        return fail(err, QSIM_ERR_VERSION, "qsim_topology_run: options of %u bytes, this library's are %zu (call "
                                           "qsim_topology_options_init; rebuild against this qsim.h)",
                    (unsigned)o->struct_size, sizeof *o);
    if (o->engine != QSIM_ENGINE_FAST && o->engine != QSIM_ENGINE_DETAILED)
        return fail(err, QSIM_ERR_ARG, "qsim_topology_run: unknown engine %d (fast 0, detailed 1)", (int)o->engine);
    if (o->gemm < -1 || o->gemm > 1) return fail(err, QSIM_ERR_ARG, "qsim_topology_run: gemm %d (-1, 0 or 1)", o->gemm);
    if (!(o->weight_sparsity >= 0.0 && o->weight_sparsity <= 1.0) || !(o->act_sparsity >= 0.0 && o->act_sparsity <= 1.0))
        return fail(err, QSIM_ERR_ARG, "qsim_topology_run: sparsity %g, %g: fractions 0..1", o->weight_sparsity,
                    o->act_sparsity);
    if (o->weight_bits != 1 && o->weight_bits != 2 && o->weight_bits != 4 && o->weight_bits != 8)
        return fail(err, QSIM_ERR_ARG, "qsim_topology_run: weight_bits %d: 1 (bipolar), 2, 4 or 8", o->weight_bits);
    if (o->act_bits < 1 || o->act_bits > 16)
        return fail(err, QSIM_ERR_ARG, "qsim_topology_run: act_bits %d: 1..16", o->act_bits);
    if (o->weight_bits == 1 && o->weight_sparsity > 0.0)
        return fail(err, QSIM_ERR_ARG, "qsim_topology_run: bipolar weights are +-1: they cannot be sparse");
    double t0 = now_seconds();
    const char *arch_path = o->config_path ? o->config_path : cfg->where;
    const char *topo_name = o->topology_name ? o->topology_name : topology_path;
    qs_scalesim_topo topo = {0};
    qs_error e;
    qs_status st = QS_OK;
    qsim_report *r = qs_calloc(1, sizeof *r);
    if (!r) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    r->is_topology = 1;
    r->n_inferences = 1;
    r->arch = cfg->arch;
    r->has_sscfg = cfg->is_scalesim;
    r->sscfg = cfg->ss;
    r->engine = o->engine == QSIM_ENGINE_DETAILED ? "detailed" : "fast";
    qs_scalesim_opts_default(&r->ssopts);
    r->ssopts.weight_sparsity = o->weight_sparsity;
    r->ssopts.act_sparsity = o->act_sparsity;
    r->ssopts.weight_bits = o->weight_bits;
    r->ssopts.act_bits = o->act_bits;
    r->net_path = dup_str(topo_name);
    r->config_path = dup_str(arch_path);
    r->command_line = o->command_line ? dup_str(o->command_line) : NULL;
    r->messages = dup_str("");
    if (!r->net_path || !r->config_path || !r->messages || (o->command_line && !r->command_line)) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    const qs_arch *arch = &r->arch;
    if (o->act_bits > arch->max_act_bits) {
        st = qs_fail(&e, QS_ERR_CONFIG, "%s: --act-bits %d exceeds [array] max_act_bits = %d (--set array.max_act_bits=%d)",
                     arch_path, o->act_bits, arch->max_act_bits, o->act_bits);
        goto out;
    }
    if (o->report_dir && arch->timing != QS_TIMING_SCALESIM) {
        st = qs_fail(&e, QS_ERR_CONFIG, "--report-dir: SCALE-Sim's reports need [timing] convention = scalesim (%s gives %s)",
                     arch_path, qs_timing_name(arch->timing));
        goto out;
    }
    if (o->scalesim_outdir) {
        /* SCALE-Sim's layout: <-p dir>/<run_name>/, both made if missing */
        if (!cfg->is_scalesim) {
            st = qs_fail(&e, QS_ERR_CONFIG, "%s: qsim scalesim needs a SCALE-Sim configuration", arch_path);
            goto out;
        }
        if (mkdir(o->scalesim_outdir, 0777) && errno != EEXIST) {
            st = qs_fail(&e, QS_ERR_IO, "%s: cannot create directory: %s", o->scalesim_outdir, strerror(errno));
            goto out;
        }
        char dir[4096];
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", o->scalesim_outdir, cfg->ss.run_name) >= sizeof dir) {
            st = qs_fail(&e, QS_ERR_ARG, "%s: path too long", o->scalesim_outdir);
            goto out;
        }
        r->report_dir = dup_str(dir);
    } else if (o->report_dir) {
        r->report_dir = dup_str(o->report_dir);
    }
    if ((o->scalesim_outdir || o->report_dir) && !r->report_dir) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (o->traces) {
        if (!r->report_dir) {
            st = qs_fail(&e, QS_ERR_ARG, "--traces needs --report-dir (the traces go to DIR/layer<i>/)");
            goto out;
        }
        if (mkdir(r->report_dir, 0777) && errno != EEXIST) {
            st = qs_fail(&e, QS_ERR_IO, "%s: cannot create directory: %s", r->report_dir, strerror(errno));
            goto out;
        }
    }
    if ((st = qs_scalesim_load_topology(topology_path, o->gemm, &topo, &e))) goto out;
    {
        /* an array over the engines' limit runs SCALE-Sim's figures only, which
         * use no technology figure (energy and area are not computed): the
         * table is loaded for the largest array the engines hold */
        qs_arch tech_arch = r->arch;
        if (tech_arch.scalesim_figures_only) {
            tech_arch.rows = tech_arch.rows < 1024 ? tech_arch.rows : 1024;
            tech_arch.cols = tech_arch.cols < 1024 ? tech_arch.cols : 1024;
            tech_arch.scalesim_figures_only = 0;
        }
        if ((st = qs_tech_load(arch->tech_table, &tech_arch, o->act_bits, &r->tech, &e))) goto out;
    }
    r->topo_gemm = topo.gemm;
    r->topo_layers = qs_calloc(topo.n_layers ? (size_t)topo.n_layers : 1, sizeof *r->topo_layers);
    if (!r->topo_layers) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    qs_engine engine = o->engine == QSIM_ENGINE_DETAILED ? QS_ENGINE_DETAILED : QS_ENGINE_FAST;
    /* SCALE-Sim's defaults when the configuration is a native one */
    const int is_ss = cfg->is_scalesim;
    const int64_t trace_offsets[3] = {is_ss ? cfg->ss.ifmap_offset : 0, is_ss ? cfg->ss.filter_offset : 10000000,
                                      is_ss ? cfg->ss.ofmap_offset : 20000000};
    for (int32_t i = 0; i < topo.n_layers; i++) {
        qs_error le;
        if (run_topology_layer(&topo.layers[i], i, &r->arch, engine, &r->ssopts,
                               o->timing_only || r->arch.scalesim_figures_only, o->replay_reads,
                               o->traces ? r->report_dir : NULL, trace_offsets, &r->topo_layers[i], &le)) {
            st = qs_fail(&e, QS_ERR_RUN, "%.300s:%d: %.400s", topology_path, (int)topo.layers[i].line, le.msg);
            goto out;
        }
        r->topo_n = i + 1;
        if (o->progress) o->progress(o->progress_user, QSIM_PROGRESS_LAYER, (uint64_t)i + 1, (uint64_t)topo.n_layers);
    }
    int oom = 0;
    for (int i = 0; cfg->is_scalesim && i < cfg->ss.n_notes; i++)
        oom |= qi_add_message(&r->messages, "note: %s", cfg->ss.notes[i]);
    for (int i = 0; i < topo.n_notes; i++) oom |= qi_add_message(&r->messages, "note: %s", topo.notes[i]);
    /* sparse operands only count where the configuration does something with zeros (docs/scalesim.md) */
    if (o->weight_sparsity > 0.0 || o->act_sparsity > 0.0) {
        if (arch->zero_skip == QS_SKIP_NONE)
            oom |= qi_add_message(&r->messages,
                                         "note: the zero operands change nothing here: [array] zero_skip = none neither "
                                         "gates nor skips them (--set array.zero_skip=gate saves energy; for cycles too: "
                                         "--set timing.convention=native --set array.zero_skip=both --set "
                                         "array.skip_group=1)");
        else if (arch->timing == QS_TIMING_SCALESIM)
            oom |= qi_add_message(&r->messages,
                                         "note: under SCALE-Sim's timing the zero operands save energy, not cycles (for "
                                         "cycles too: --set timing.convention=native --set array.skip_group=1)");
    }
    if (oom) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    r->wall_seconds = now_seconds() - t0;
out:
    qs_scalesim_topo_free(&topo);
    if (st) {
        qsim_report_free(r);
        return pass(err, st, &e);
    }
    *out = r;
    return QSIM_OK;
}

qsim_status qsim_report_write_scalesim(const qsim_report *r, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_write_scalesim: report is NULL");
    if (!r->is_topology) return fail(err, QSIM_ERR_ARG, "qsim_report_write_scalesim: not a topology report");
    if (!r->report_dir)
        return fail(err, QSIM_ERR_ARG, "qsim_report_write_scalesim: the run had no report_dir or scalesim_outdir");
    qs_topo_report v;
    topo_view(r, &v);
    qs_error e;
    return pass(err, qs_scalesim_write_reports(&v, r->report_dir, &e), &e);
}

qsim_status qsim_report_scalesim_stdout(const qsim_report *r, char **text, qsim_error *err)
{
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_report_scalesim_stdout: text is NULL");
    *text = NULL;
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_scalesim_stdout: report is NULL");
    if (!r->is_topology) return fail(err, QSIM_ERR_ARG, "qsim_report_scalesim_stdout: not a topology report");
    qs_topo_report v;
    topo_view(r, &v);
    text_sink s;
    if (sink_open(&s, err)) return QSIM_ERR_NOMEM;
    qs_scalesim_print_stdout(&v, r->net_path, s.f);
    return sink_close(&s, text, err);
}

/* ---- .npy ------------------------------------------------------------------------------------ */

_Static_assert(QSIM_NPY_MAXDIM == QS_NPY_MAXDIM, "qsim_array and qs_npy must agree");

qsim_status qsim_npy_load(const char *path, qsim_array *out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_npy_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_npy_load: path is NULL");
    qs_npy a = {0};
    qs_error e;
    qs_status st = qs_npy_load(path, &a, &e);
    if (st) return pass(err, st, &e);
    out->ndim = a.ndim;
    for (int i = 0; i < QS_NPY_MAXDIM; i++) out->shape[i] = a.shape[i];
    out->count = a.count;
    out->data = a.data;
    return QSIM_OK;
}

void qsim_array_free(qsim_array *a)
{
    if (!a) return;
    qs_free(a->data);
    a->data = NULL;
}
