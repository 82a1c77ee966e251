/* Decoding with a KV cache (docs/decode.md): the prefill runs the network as
 * it is; each step runs the step network qs_decode_step_net derives for one
 * new token after `past` cached ones, and the KVCACHE outputs of a step are
 * the caches of the next. Figures per phase and per step: docs/report.md,
 * "Decode runs". */
#include <inttypes.h>

#include "qsim_impl.h"
#include "qs_npy.h"
#include "qs_xfmr.h"

typedef struct {
    int32_t past;
    double cycles, time_s, energy_pj, dram_bytes, kv_read, kv_written, stall_dram;
} phase_figures;

struct qsim_decode_report {
    char *json;
    char *net_path, *config_path;
    const char *engine;
    int32_t tokens, steps, fed_back, n_caches;
    double freq_mhz;
    phase_figures prefill, *step;
    int32_t *prefill_out, *step_out; /* prefill: its whole output; steps: N x step_count */
    int64_t prefill_count, step_count;
    int32_t step_shape[3];
};

void qsim_decode_options_init(qsim_decode_options *d)
{
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
}

void qsim_decode_report_free(qsim_decode_report *r)
{
    if (!r) return;
    qs_free(r->json);
    qs_free(r->net_path);
    qs_free(r->config_path);
    qs_free(r->step);
    qs_free(r->prefill_out);
    qs_free(r->step_out);
    qs_free(r);
}

/* KV traffic of a compiled program: bytes the matmuls load from KVCACHE
 * outputs, and bytes the KVCACHE layers store (new rows). */
static void kv_bytes(const qs_net *net, const qs_prog *p, double *read, double *written)
{
    *read = *written = 0;
    for (int32_t li = 1; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        if (L->kind == QS_L_KVCACHE) *written += (double)p->maps[li].dram_out;
        if (L->kind != QS_L_MATMUL) continue;
        if (net->layers[L->inputs[0]].kind == QS_L_KVCACHE) *read += (double)p->maps[li].dram_ifmap;
        if (net->layers[L->inputs[1]].kind == QS_L_KVCACHE) *read += (double)p->maps[li].dram_weight;
    }
}

/* One run of `run_net` (the file's network or a step network): figures, its
 * output, and every KVCACHE's output as the next caches (replacing *caches). */
static qsim_status run_phase(const qsim_net *handle, const qsim_config *cfg, const int32_t *in, int64_t count,
                             const qsim_run_options *base, phase_figures *f, int32_t *out, int64_t out_count,
                             int32_t **caches, int64_t *cache_counts, qsim_error *err)
{
    const qs_net *net = handle->net;
    qsim_program *prog = NULL;
    qsim_report *rep = NULL;
    qsim_run_options o = *base;
    o.keep_layer_outputs = 1;
    qsim_status st = qsim_compile(handle, cfg, &prog, err);
    if (!st) st = qsim_run(prog, in, count, 1, &o, &rep, err);
    qsim_totals t;
    if (!st) st = qsim_report_totals(rep, &t, err);
    if (!st) {
        f->cycles = t.cycles;
        f->time_s = t.time_s;
        f->energy_pj = t.energy_pj;
        f->dram_bytes = t.dram_bytes;
        f->stall_dram = t.stall_dram;
        kv_bytes(net, prog->prog, &f->kv_read, &f->kv_written);
        const int32_t *data;
        int64_t n;
        st = qsim_report_output(rep, 0, &data, &n, err);
        if (!st && n != out_count) st = fail(err, QSIM_ERR_ARG, "decode: output of %lld values, %lld expected",
                                             (long long)n, (long long)out_count);
        if (!st) memcpy(out, data, sizeof *out * (size_t)n);
        for (int32_t li = 0, ci = 0; !st && li < net->n_layers; li++) {
            if (net->layers[li].kind != QS_L_KVCACHE) continue;
            if ((st = qsim_report_layer_output(rep, li, &data, &n, err))) break;
            int32_t *c = qs_malloc(sizeof *c * (size_t)n);
            if (!c) {
                st = fail(err, QSIM_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(c, data, sizeof *c * (size_t)n);
            qs_free(caches[ci]);
            caches[ci] = c;
            cache_counts[ci++] = n;
        }
    }
    qsim_report_free(rep);
    qsim_program_free(prog);
    return st;
}

static int add_text(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int add_text(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return 1;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        size_t nc = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *nb = qs_realloc(*buf, nc);
        if (!nb) return 1;
        *buf = nb;
        *cap = nc;
    }
}

/* Phase totals of the decode steps. */
static phase_figures decode_sum(const qsim_decode_report *r)
{
    phase_figures s;
    memset(&s, 0, sizeof s);
    for (int32_t i = 0; i < r->steps; i++) {
        s.cycles += r->step[i].cycles;
        s.time_s += r->step[i].time_s;
        s.energy_pj += r->step[i].energy_pj;
        s.dram_bytes += r->step[i].dram_bytes;
        s.kv_read += r->step[i].kv_read;
        s.kv_written += r->step[i].kv_written;
        s.stall_dram += r->step[i].stall_dram;
    }
    return s;
}

static void json_escape_into(char **b, size_t *n, size_t *c, const char *s, int *bad)
{
    *bad |= add_text(b, n, c, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') *bad |= add_text(b, n, c, "\\%c", ch);
        else if (ch < 0x20) *bad |= add_text(b, n, c, "\\u%04x", ch);
        else *bad |= add_text(b, n, c, "%c", ch);
    }
    *bad |= add_text(b, n, c, "\"");
}

static qsim_status make_json(qsim_decode_report *r, qsim_error *err)
{
    char *b = NULL;
    size_t n = 0, c = 0;
    int bad = 0;
    const phase_figures p = r->prefill, d = decode_sum(r);
    bad |= add_text(&b, &n, &c, "{\n  \"decode_run\": {\n    \"net\": ");
    json_escape_into(&b, &n, &c, r->net_path, &bad);
    bad |= add_text(&b, &n, &c, ",\n    \"config\": ");
    json_escape_into(&b, &n, &c, r->config_path, &bad);
    bad |= add_text(&b, &n, &c, ",\n    \"engine\": \"%s\",\n    \"freq_mhz\": %.17g,\n    \"prompt_tokens\": %d,\n"
                    "    \"decode_steps\": %d,\n    \"step_input\": \"%s\",\n    \"kv_caches\": %d,\n",
                    r->engine, r->freq_mhz, (int)r->tokens, (int)r->steps, r->fed_back ? "fed_back" : "given",
                    (int)r->n_caches);
    bad |= add_text(&b, &n, &c, "    \"prefill\": {\"tokens\": %d, \"cycles\": %.17g, \"time_s\": %.17g, "
                    "\"time_to_first_token_s\": %.17g, \"energy_pj\": %.17g, \"energy_pj_per_token\": %.17g, "
                    "\"dram_bytes\": %.17g, \"dram_bytes_per_token\": %.17g, \"kv_bytes_read\": %.17g, "
                    "\"kv_bytes_written\": %.17g, \"stall_dram_cycles\": %.17g},\n",
                    (int)r->tokens, p.cycles, p.time_s, p.time_s, p.energy_pj, p.energy_pj / r->tokens, p.dram_bytes,
                    p.dram_bytes / r->tokens, p.kv_read, p.kv_written, p.stall_dram);
    bad |= add_text(&b, &n, &c, "    \"decode\": {\"tokens\": %d, \"cycles\": %.17g, \"time_s\": %.17g, "
                    "\"tokens_per_s\": %.17g, \"energy_pj\": %.17g, \"energy_pj_per_token\": %.17g, "
                    "\"dram_bytes\": %.17g, \"dram_bytes_per_token\": %.17g, \"kv_bytes_read\": %.17g, "
                    "\"kv_bytes_written\": %.17g, \"stall_dram_cycles\": %.17g},\n    \"steps\": [",
                    (int)r->steps, d.cycles, d.time_s, d.time_s > 0 ? r->steps / d.time_s : 0.0, d.energy_pj,
                    d.energy_pj / r->steps, d.dram_bytes, d.dram_bytes / r->steps, d.kv_read, d.kv_written,
                    d.stall_dram);
    for (int32_t i = 0; i < r->steps; i++) {
        const phase_figures *s = &r->step[i];
        bad |= add_text(&b, &n, &c, "%s\n      {\"step\": %d, \"past\": %d, \"cycles\": %.17g, \"time_s\": %.17g, "
                        "\"energy_pj\": %.17g, \"dram_bytes\": %.17g, \"kv_bytes_read\": %.17g, "
                        "\"kv_bytes_written\": %.17g, \"stall_dram_cycles\": %.17g}", i ? "," : "", (int)i, (int)s->past,
                        s->cycles, s->time_s, s->energy_pj, s->dram_bytes, s->kv_read, s->kv_written, s->stall_dram);
    }
    bad |= add_text(&b, &n, &c, "\n    ]\n  }\n}\n");
    if (bad) {
        qs_free(b);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    r->json = b;
    return QSIM_OK;
}

qsim_status qsim_decode(const qsim_net *net, const qsim_config *cfg, const int32_t *prompt, int64_t count,
                        const qsim_decode_options *d, const qsim_run_options *opts, qsim_decode_report **out,
                        qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_decode: out is NULL");
    *out = NULL;
    if (!net || !cfg || !d) return fail(err, QSIM_ERR_ARG, "qsim_decode: net, cfg or options is NULL");
    if (d->struct_size != sizeof *d)
        return fail(err, QSIM_ERR_VERSION, "qsim_decode: options of %u bytes, this library's are %zu (call "
                    "qsim_decode_options_init)", (unsigned)d->struct_size, sizeof *d);
    qsim_run_options base;
    qsim_run_options_init(&base);
    if (opts) {
        if (opts->struct_size != sizeof *opts)
            return fail(err, QSIM_ERR_VERSION, "qsim_decode: run options of %u bytes, this library's are %zu",
                        (unsigned)opts->struct_size, sizeof *opts);
        if (opts->trace_format != QSIM_TRACE_NONE || opts->dma_hook || opts->labels || opts->engine == QSIM_ENGINE_RTL)
            return fail(err, QSIM_ERR_ARG, "qsim_decode: traces, DMA hooks, labels and the rtl engine are not "
                                           "available for decode runs");
        base.engine = opts->engine;
        base.net_path = opts->net_path;
        base.config_path = opts->config_path;
    }
    const qs_net *N = net->net;
    const char *where = opts && opts->net_path ? opts->net_path : net->path ? net->path : "network";
    if (d->steps < 1 || d->steps > 1000000)
        return fail(err, QSIM_ERR_ARG, "qsim_decode: %d decode steps (1..1000000)", (int)d->steps);
    const qs_layer *IN = &N->layers[0], *OUT = &N->layers[N->output];
    const int64_t in_count = (int64_t)IN->out_c * IN->out_h * IN->out_w;
    if (prompt ? count != in_count : count != 0)
        return fail(err, QSIM_ERR_ARG, "qsim_decode: %lld prompt values; input layer '%s' takes %dx%dx%d = %lld",
                    (long long)count, IN->name, IN->out_c, IN->out_h, IN->out_w, (long long)in_count);
    qs_error e;
    uint8_t(*roles)[3] = qs_malloc(sizeof *roles * (size_t)N->n_layers);
    if (!roles) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    qs_status qst = qs_decode_roles(N, where, roles, &e);
    if (qst) {
        qs_free(roles);
        return pass(err, qst, &e);
    }
    const uint8_t *ro = roles[N->output];
    const int fed_back = d->step_inputs == NULL;
    if (fed_back && (ro[1] != QS_ROLE_TOKENS || ro[2] != QS_ROLE_FIXED || OUT->out_w != 1 || OUT->out_c != IN->out_c ||
                     OUT->out_bits != IN->out_bits || OUT->out_signed != IN->out_signed)) {
        qs_free(roles);
        return fail(err, QSIM_ERR_ARG, "%s: the output layer '%s' (%dx%dx%d, %d-bit) is not shaped like the input "
                    "(%d channels x tokens, %d-bit): its last row cannot be fed back; give the steps' inputs "
                    "(--decode-input)", where, OUT->name, OUT->out_c, OUT->out_h, OUT->out_w, OUT->out_bits,
                    IN->out_c, IN->out_bits);
    }
    for (int32_t li = 0; li < N->n_layers; li++) /* refused before anything runs, not at the step that overflows */
        if (N->layers[li].kind == QS_L_KVCACHE && (int64_t)IN->out_h + d->steps > N->layers[li].param) {
            qs_free(roles);
            return fail(err, QSIM_ERR_FORMAT, "%s: layer %d '%s' (kvcache): a KV cache longer than its maximum: %lld "
                        "tokens (a prompt of %d + %d decode steps) exceed the maximum context %d", where, (int)li,
                        N->layers[li].name, (long long)IN->out_h + d->steps, (int)IN->out_h, (int)d->steps,
                        (int)N->layers[li].param);
        }
    const int32_t n_caches = qs_decode_n_caches(N);
    qsim_decode_report *r = qs_calloc(1, sizeof *r);
    int32_t **caches = qs_calloc((size_t)n_caches + 1, sizeof *caches);
    int64_t *cache_counts = qs_calloc((size_t)n_caches + 1, sizeof *cache_counts);
    int32_t *row = qs_malloc(sizeof *row * (size_t)IN->out_c);
    qsim_status st = QSIM_OK;
    if (!r || !caches || !cache_counts || !row) {
        st = fail(err, QSIM_ERR_NOMEM, "out of memory");
        goto done;
    }
    r->tokens = IN->out_h;
    r->steps = d->steps;
    r->fed_back = fed_back;
    r->n_caches = n_caches;
    r->freq_mhz = cfg->arch.freq_mhz;
    r->engine = base.engine == QSIM_ENGINE_DETAILED ? "detailed" : "fast";
    r->net_path = dup_str(where);
    r->config_path = dup_str(base.config_path ? base.config_path : cfg->where ? cfg->where : "configuration");
    r->step = qs_calloc((size_t)d->steps, sizeof *r->step);
    r->prefill_count = (int64_t)OUT->out_c * OUT->out_h * OUT->out_w;
    r->prefill_out = qs_malloc(sizeof *r->prefill_out * (size_t)r->prefill_count);
    if (!r->net_path || !r->config_path || !r->step || !r->prefill_out) {
        st = fail(err, QSIM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = run_phase(net, cfg, prompt, count, &base, &r->prefill, r->prefill_out, r->prefill_count, caches,
                        cache_counts, err)))
        goto done;
    for (int32_t i = 0; i < d->steps; i++) {
        const int32_t past = r->tokens + i;
        qs_net *sn = NULL;
        if ((qst = qs_decode_step_net(N, where, (const uint8_t(*)[3])roles, past, 1, (const int32_t *const *)caches,
                                      &sn, &e))) {
            st = pass(err, qst, &e);
            goto done;
        }
        if (i == 0) { /* the step output's shape is the same every step */
            const qs_layer *SO = &sn->layers[sn->output];
            r->step_shape[0] = SO->out_c;
            r->step_shape[1] = SO->out_h;
            r->step_shape[2] = SO->out_w;
            r->step_count = (int64_t)SO->out_c * SO->out_h * SO->out_w;
            r->step_out = qs_malloc(sizeof *r->step_out * (size_t)r->step_count * (size_t)d->steps);
            if (!r->step_out) {
                qs_decode_step_free(sn);
                st = fail(err, QSIM_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
        if (fed_back) { /* the last output row before this step: channel c at row (tokens - 1) */
            const int32_t *prev = i ? r->step_out + (size_t)(i - 1) * (size_t)r->step_count : r->prefill_out;
            const int64_t rows = i ? 1 : r->tokens;
            for (int32_t c = 0; c < IN->out_c; c++) row[c] = prev[(int64_t)c * rows + rows - 1];
        } else {
            memcpy(row, d->step_inputs + (size_t)i * (size_t)IN->out_c, sizeof *row * (size_t)IN->out_c);
        }
        struct qsim_net sh = {sn, net->path};
        r->step[i].past = past;
        st = run_phase(&sh, cfg, row, IN->out_c, &base, &r->step[i], r->step_out + (size_t)i * (size_t)r->step_count,
                       r->step_count, caches, cache_counts, err);
        qs_decode_step_free(sn);
        if (st) goto done;
    }
    st = make_json(r, err);
done:
    for (int32_t i = 0; caches && i < n_caches; i++) qs_free(caches[i]);
    qs_free(caches);
    qs_free(cache_counts);
    qs_free(row);
    qs_free(roles);
    if (st) {
        qsim_decode_report_free(r);
        return st;
    }
    *out = r;
    return QSIM_OK;
}

qsim_status qsim_decode_report_json(const qsim_decode_report *r, const char **json, qsim_error *err)
{
    if (!r || !json) return fail(err, QSIM_ERR_ARG, "qsim_decode_report_json: report or json is NULL");
    *json = r->json;
    return QSIM_OK;
}

qsim_status qsim_decode_report_text(const qsim_decode_report *r, char **text, qsim_error *err)
{
    if (!r || !text) return fail(err, QSIM_ERR_ARG, "qsim_decode_report_text: report or text is NULL");
    *text = NULL;
    char *b = NULL;
    size_t n = 0, c = 0;
    int bad = 0;
    const phase_figures p = r->prefill, d = decode_sum(r);
    bad |= add_text(&b, &n, &c, "decode run of %s on %s (%s engine, %.0f MHz): prompt %d tokens, %d decode steps "
                    "(step inputs %s), %d KV caches\n", r->net_path, r->config_path, r->engine, r->freq_mhz,
                    (int)r->tokens, (int)r->steps, r->fed_back ? "fed back" : "given", (int)r->n_caches);
    bad |= add_text(&b, &n, &c, "  prefill: %.0f cycles, time to first token %.6g s, %.6g uJ (%.6g uJ/token), "
                    "DRAM %.0f B (%.0f B/token)\n", p.cycles, p.time_s, p.energy_pj * 1e-6,
                    p.energy_pj * 1e-6 / r->tokens, p.dram_bytes, p.dram_bytes / r->tokens);
    bad |= add_text(&b, &n, &c, "  decode:  %.0f cycles, %.6g tokens/s, %.6g uJ/token, DRAM %.0f B/token "
                    "(KV cache: %.0f B read, %.0f B written in all)\n", d.cycles,
                    d.time_s > 0 ? r->steps / d.time_s : 0.0, d.energy_pj * 1e-6 / r->steps, d.dram_bytes / r->steps,
                    d.kv_read, d.kv_written);
    bad |= add_text(&b, &n, &c, "  %5s %6s %12s %12s %12s %12s\n", "step", "past", "cycles", "energy_uJ", "dram_B",
                    "kv_read_B");
    for (int32_t i = 0; i < r->steps; i++) {
        const phase_figures *s = &r->step[i];
        bad |= add_text(&b, &n, &c, "  %5d %6d %12.0f %12.6g %12.0f %12.0f\n", (int)i, (int)s->past, s->cycles,
                        s->energy_pj * 1e-6, s->dram_bytes, s->kv_read);
    }
    if (bad) {
        qs_free(b);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    *text = b;
    return QSIM_OK;
}

qsim_status qsim_decode_report_output(const qsim_decode_report *r, int32_t step, const int32_t **data,
                                      int64_t *count, qsim_error *err)
{
    if (!r || !data || !count) return fail(err, QSIM_ERR_ARG, "qsim_decode_report_output: a NULL argument");
    if (step < -1 || step >= r->steps)
        return fail(err, QSIM_ERR_ARG, "qsim_decode_report_output: step %d out of range -1..%d", (int)step,
                    (int)r->steps - 1);
    *data = step < 0 ? r->prefill_out : r->step_out + (size_t)step * (size_t)r->step_count;
    *count = step < 0 ? r->prefill_count : r->step_count;
    return QSIM_OK;
}

qsim_status qsim_decode_report_write_outputs(const qsim_decode_report *r, const char *path, qsim_error *err)
{
    if (!r || !path) return fail(err, QSIM_ERR_ARG, "qsim_decode_report_write_outputs: report or path is NULL");
    const int64_t shape[4] = {r->steps, r->step_shape[0], r->step_shape[1], r->step_shape[2]};
    qs_error e;
    qs_status st = qs_npy_save_i32(path, shape, 4, r->step_out, &e);
    return pass(err, st, &e);
}
