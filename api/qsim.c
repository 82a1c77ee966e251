/* The public API (include/qsim/qsim.h) over the core: models/ (formats,
 * config, energy), compiler/, sim/ and the report writer of cli/report.c.
 * It adds handle checks and ownership, nothing else: every figure comes from
 * the same code the qsim command runs. */
#include "qsim/qsim.h"
#include "qs_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_revision.h"
#include "qs_scalesim.h"
#include "report.h"
#include "rtl_cosim.h"
#include "sim.h"
#include "trace.h"

/* The core's status codes are the API's, value for value. */
_Static_assert((int)QS_ERR_RUN == (int)QSIM_ERR_RUN && (int)QS_ERR_ARG == (int)QSIM_ERR_ARG &&
                   (int)QS_ERR_IO == (int)QSIM_ERR_IO && (int)QS_ERR_NOMEM == (int)QSIM_ERR_NOMEM,
               "qs_status and qsim_status must agree");
_Static_assert(sizeof(qsim_error) == sizeof(qs_error), "qsim_error and qs_error must agree");

#define MAX_OVERRIDES 4096

struct qsim_net {
    qs_net *net;
    char *path; /* as given (file) or the caller's name (bytes) */
};

struct qsim_config {
    char *text, *where;
    char **sets;
    int n_sets, cap_sets;
    qs_arch arch;
};

struct qsim_program {
    const qsim_net *net;
    qs_arch arch;
    qs_tech tech;
    qs_prog *prog;
    char *config_where;
};

struct qsim_report {
    const qs_net *net;
    int32_t n_inferences;
    qs_arch arch;
    qs_tech tech;
    qs_layer_stats *layers; /* summed over the inferences */
    int32_t *outputs;       /* n_inferences x out_count */
    int64_t out_count;
    int32_t **layer_outputs; /* last inference, when kept */
    int64_t *layer_counts;
    char *json;
    qsim_rtl_stats rtl;      /* QSIM_ENGINE_RTL: what was compared */
};

/* ---- errors ----------------------------------------------------------------- */

static qsim_status fail(qsim_error *err, qsim_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qsim_status fail(qsim_error *err, qsim_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* A core call's error into the caller's (err may be NULL). */
static qsim_status pass(qsim_error *err, qs_status st, const qs_error *e)
{
    if (st != QS_OK && err) memcpy(err->msg, e->msg, sizeof err->msg);
    return (qsim_status)st;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = qs_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- version ------------------------------------------------------------------ */

const char *qsim_version(void) { return QSIM_VERSION; }
const char *qsim_source_revision(void) { return qs_source_revision; }
int qsim_api_version(void) { return QSIM_API_VERSION; }

qsim_status qsim_check_version(int api_version, qsim_error *err)
{
    if (api_version != QSIM_API_VERSION)
        return fail(err, QSIM_ERR_VERSION,
                    "libqsim %s implements API version %d, the caller was built for version %d: rebuild it "
                    "against this library's qsim.h",
                    QSIM_VERSION, QSIM_API_VERSION, api_version);
    return QSIM_OK;
}

const char *qsim_status_name(qsim_status st)
{
    if (st == QSIM_ERR_VERSION) return "version mismatch";
    if ((int)st < 0 || st > QSIM_ERR_VERSION) return "unknown status";
    return qs_status_name((qs_status)st);
}

/* ---- networks ------------------------------------------------------------------- */

static qsim_status wrap_net(qs_net *n, const char *path, qsim_net **out, qsim_error *err)
{
    qsim_net *h = qs_calloc(1, sizeof *h);
    char *p = dup_str(path);
    if (!h || !p) {
        qs_free(h);
        qs_free(p);
        qs_net_destroy(n);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    h->net = n;
    h->path = p;
    *out = h;
    return QSIM_OK;
}

qsim_status qsim_net_load(const char *path, qsim_net **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_net_load: out is NULL");
    *out = NULL;
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_net_load: path is NULL");
    qs_net *n;
    qs_error e;
    qs_status st = qs_net_load(path, &n, &e);
    if (st) return pass(err, st, &e);
    return wrap_net(n, path, out, err);
}

qsim_status qsim_net_from_bytes(const void *bytes, size_t len, const char *name, qsim_net **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_net_from_bytes: out is NULL");
    *out = NULL;
    if (!bytes && len) return fail(err, QSIM_ERR_ARG, "qsim_net_from_bytes: bytes is NULL");
    if (!name) name = "<bytes>";
    qs_net *n;
    qs_error e;
    qs_status st = qs_net_parse(bytes ? bytes : (const void *)"", len, name, &n, &e);
    if (st) return pass(err, st, &e);
    return wrap_net(n, name, out, err);
}

void qsim_net_free(qsim_net *net)
{
    if (!net) return;
    qs_net_destroy(net->net);
    qs_free(net->path);
    qs_free(net);
}

qsim_status qsim_net_get_info(const qsim_net *net, qsim_net_info *out, qsim_error *err)
{
    if (!net) return fail(err, QSIM_ERR_ARG, "qsim_net_get_info: net is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_net_get_info: out is NULL");
    const qs_layer *in = &net->net->layers[0];
    out->name = net->net->name;
    out->n_layers = net->net->n_layers;
    out->output = net->net->output;
    out->in_c = in->out_c;
    out->in_h = in->out_h;
    out->in_w = in->out_w;
    out->in_bits = in->out_bits;
    out->in_signed = in->out_signed;
    return QSIM_OK;
}

qsim_status qsim_net_get_layer(const qsim_net *net, int32_t index, qsim_layer_info *out, qsim_error *err)
{
    if (!net) return fail(err, QSIM_ERR_ARG, "qsim_net_get_layer: net is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_net_get_layer: out is NULL");
    if (index < 0 || index >= net->net->n_layers)
        return fail(err, QSIM_ERR_ARG, "qsim_net_get_layer: layer %d out of range 0..%d of '%s'", (int)index,
                    (int)net->net->n_layers - 1, net->net->name);
    const qs_layer *L = &net->net->layers[index];
    out->name = L->name;
    out->kind = qs_layer_kind_name(L->kind);
    out->out_c = L->out_c;
    out->out_h = L->out_h;
    out->out_w = L->out_w;
    out->macs = qs_layer_macs(net->net, index);
    return QSIM_OK;
}

/* ---- configurations --------------------------------------------------------------- */

/* Parse text + overrides into *arch: a native qsim configuration or a
 * SCALE-Sim one (docs/scalesim.md), as `qsim run --arch` accepts. */
static qsim_status parse_config(const char *text, const char *where, char *const *sets, int n_sets, qs_arch *arch,
                                qsim_error *err)
{
    qs_error e;
    qs_status st;
    const char *const *ov = (const char *const *)sets;
    if (qs_scalesim_is_config(text)) {
        qs_scalesim_cfg ss;
        memset(&ss, 0, sizeof ss);
        st = qs_scalesim_parse_config(text, where, ov, n_sets, arch, &ss, &e);
    } else {
        st = qs_arch_parse(text, where, ov, n_sets, arch, &e);
    }
    return pass(err, st, &e);
}

static qsim_status new_config(char *text, const char *where, qsim_config **out, qsim_error *err)
{
    qsim_config *c = qs_calloc(1, sizeof *c);
    char *w = dup_str(where);
    if (!c || !w) {
        qs_free(c);
        qs_free(w);
        qs_free(text);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    c->text = text;
    c->where = w;
    qsim_status st = parse_config(text, w, NULL, 0, &c->arch, err);
    if (st) {
        qsim_config_free(c);
        return st;
    }
    *out = c;
    return QSIM_OK;
}

qsim_status qsim_config_load(const char *path, qsim_config **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_config_load: out is NULL");
    *out = NULL;
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_config_load: path is NULL");
    char *text;
    qs_error e;
    qs_status st = qs_read_text_file(path, &text, &e);
    if (st) return pass(err, st, &e);
    return new_config(text, path, out, err);
}

qsim_status qsim_config_parse(const char *text, const char *where, qsim_config **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_config_parse: out is NULL");
    *out = NULL;
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_config_parse: text is NULL");
    char *t = dup_str(text);
    if (!t) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    return new_config(t, where ? where : "<config>", out, err);
}

qsim_status qsim_config_set(qsim_config *cfg, const char *assignment, qsim_error *err)
{
    if (!cfg) return fail(err, QSIM_ERR_ARG, "qsim_config_set: cfg is NULL");
    if (!assignment) return fail(err, QSIM_ERR_ARG, "qsim_config_set: assignment is NULL");
    if (cfg->n_sets >= MAX_OVERRIDES)
        return fail(err, QSIM_ERR_ARG, "qsim_config_set: more than %d overrides", MAX_OVERRIDES);
    if (cfg->n_sets == cfg->cap_sets) {
        int cap = cfg->cap_sets ? 2 * cfg->cap_sets : 8;
        char **s = qs_realloc(cfg->sets, (size_t)cap * sizeof *s);
        if (!s) return fail(err, QSIM_ERR_NOMEM, "out of memory");
        cfg->sets = s;
        cfg->cap_sets = cap;
    }
    char *a = dup_str(assignment);
    if (!a) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    cfg->sets[cfg->n_sets] = a;
    qs_arch arch;
    qsim_status st = parse_config(cfg->text, cfg->where, cfg->sets, cfg->n_sets + 1, &arch, err);
    if (st) {
        qs_free(a);
        return st;
    }
    cfg->n_sets++;
    cfg->arch = arch;
    return QSIM_OK;
}

qsim_status qsim_config_copy(const qsim_config *cfg, qsim_config **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_config_copy: out is NULL");
    *out = NULL;
    if (!cfg) return fail(err, QSIM_ERR_ARG, "qsim_config_copy: cfg is NULL");
    qsim_config *c = qs_calloc(1, sizeof *c);
    if (!c) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    c->text = dup_str(cfg->text);
    c->where = dup_str(cfg->where);
    c->sets = cfg->n_sets ? qs_calloc((size_t)cfg->n_sets, sizeof *c->sets) : NULL;
    int ok = c->text && c->where && (c->sets || !cfg->n_sets);
    for (int i = 0; ok && i < cfg->n_sets; i++) {
        c->sets[i] = dup_str(cfg->sets[i]);
        ok = c->sets[i] != NULL;
        c->n_sets = i + 1;
    }
    c->cap_sets = cfg->n_sets;
    c->arch = cfg->arch;
    if (!ok) {
        qsim_config_free(c);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return QSIM_OK;
}

qsim_status qsim_config_get(const qsim_config *cfg, const char *key, char *buf, size_t n, qsim_error *err)
{
    if (!cfg) return fail(err, QSIM_ERR_ARG, "qsim_config_get: cfg is NULL");
    if (!key) return fail(err, QSIM_ERR_ARG, "qsim_config_get: key is NULL");
    if (!buf || n == 0) return fail(err, QSIM_ERR_ARG, "qsim_config_get: no buffer");
    for (int32_t i = 0; i < qs_arch_n_keys(); i++) {
        const char *sec, *k;
        char val[300];
        int num;
        if (!qs_arch_key_value(&cfg->arch, i, &sec, &k, val, sizeof val, &num)) continue;
        size_t ls = strlen(sec);
        if (strncmp(key, sec, ls) || key[ls] != '.' || strcmp(key + ls + 1, k)) continue;
        if (strlen(val) >= n) return fail(err, QSIM_ERR_ARG, "qsim_config_get: %s: buffer too small", key);
        memcpy(buf, val, strlen(val) + 1);
        return QSIM_OK;
    }
    return fail(err, QSIM_ERR_ARG, "qsim_config_get: no key '%s' (docs/config.md lists them)", key);
}

void qsim_config_free(qsim_config *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->n_sets; i++) qs_free(cfg->sets[i]);
    qs_free(cfg->sets);
    qs_free(cfg->text);
    qs_free(cfg->where);
    qs_free(cfg);
}

/* ---- compile ---------------------------------------------------------------------- */

qsim_status qsim_compile(const qsim_net *net, const qsim_config *cfg, qsim_program **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_compile: out is NULL");
    *out = NULL;
    if (!net) return fail(err, QSIM_ERR_ARG, "qsim_compile: net is NULL");
    if (!cfg) return fail(err, QSIM_ERR_ARG, "qsim_compile: cfg is NULL");
    qsim_program *p = qs_calloc(1, sizeof *p);
    if (!p) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    p->net = net;
    p->arch = cfg->arch;
    p->config_where = dup_str(cfg->where);
    if (!p->config_where) {
        qs_free(p);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
    qs_error e;
    qs_status st = qs_compile(net->net, &p->arch, &p->prog, &e);
    if (st == QS_OK) st = qs_tech_load(p->arch.tech_table, &p->arch, 0, &p->tech, &e);
    if (st) {
        qsim_program_free(p);
        return pass(err, st, &e);
    }
    *out = p;
    return QSIM_OK;
}

void qsim_program_free(qsim_program *prog)
{
    if (!prog) return;
    qs_prog_destroy(prog->prog);
    qs_free(prog->config_where);
    qs_free(prog);
}

/* ---- run ---------------------------------------------------------------------------- */

void qsim_run_options_init(qsim_run_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->engine = QSIM_ENGINE_FAST;
    opts->trace_to = UINT64_MAX;
    opts->rtl_tile_to = INT64_MAX;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t argmax(const int32_t *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

qsim_status qsim_run(const qsim_program *prog, const int32_t *inputs, int64_t count, int32_t n_inputs,
                     const qsim_run_options *opts, qsim_report **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_run: out is NULL");
    *out = NULL;
    if (!prog) return fail(err, QSIM_ERR_ARG, "qsim_run: program is NULL");
    qsim_run_options def;
    qsim_run_options_init(&def);
    if (!opts) opts = &def;
    if (opts->struct_size != sizeof *opts)
        return fail(err, QSIM_ERR_VERSION, "qsim_run: options of %u bytes, this library's are %zu (call "
                                           "qsim_run_options_init; rebuild against this qsim.h)",
                    (unsigned)opts->struct_size, sizeof *opts);
    if (opts->engine != QSIM_ENGINE_FAST && opts->engine != QSIM_ENGINE_DETAILED && opts->engine != QSIM_ENGINE_RTL)
        return fail(err, QSIM_ERR_ARG, "qsim_run: unknown engine %d (fast 0, detailed 1, rtl 2)", (int)opts->engine);
    if (opts->engine == QSIM_ENGINE_RTL && (opts->rtl_tile_from < 0 || opts->rtl_tile_to < opts->rtl_tile_from))
        return fail(err, QSIM_ERR_ARG, "qsim_run: rtl tiles %lld..%lld: need 0 <= from <= to",
                    (long long)opts->rtl_tile_from, (long long)opts->rtl_tile_to);
    if (opts->trace_format != QSIM_TRACE_NONE && (opts->trace_format != QSIM_TRACE_FST &&
                                                  opts->trace_format != QSIM_TRACE_VCD))
        return fail(err, QSIM_ERR_ARG, "qsim_run: unknown trace format %d", (int)opts->trace_format);
    if (opts->trace_format != QSIM_TRACE_NONE && !opts->trace_path)
        return fail(err, QSIM_ERR_ARG, "qsim_run: a trace format without trace_path");
    if (opts->trace_to < opts->trace_from)
        return fail(err, QSIM_ERR_ARG, "qsim_run: trace_to %llu is before trace_from %llu",
                    (unsigned long long)opts->trace_to, (unsigned long long)opts->trace_from);
    const qs_net *net = prog->net->net;
    const qs_layer *IN = &net->layers[0];
    int64_t per = (int64_t)IN->out_c * IN->out_h * IN->out_w;
    if (!inputs) {
        if (count != 0 || n_inputs != 1)
            return fail(err, QSIM_ERR_ARG, "qsim_run: no inputs: count must be 0 and n_inputs 1 (got %lld, %d)",
                        (long long)count, (int)n_inputs);
    } else if (n_inputs < 1 || count / per != n_inputs || count % per != 0) {
        return fail(err, QSIM_ERR_ARG,
                    "qsim_run: %lld input values for %d inferences; input layer '%s' takes %dx%dx%d = %lld each",
                    (long long)count, (int)n_inputs, IN->name, IN->out_c, IN->out_h, IN->out_w, (long long)per);
    }
    if (opts->labels && !inputs)
        return fail(err, QSIM_ERR_ARG, "qsim_run: labels need inputs");
    const qs_layer *OUT = &net->layers[net->output];
    double t0 = now_seconds();
    int32_t n_correct = 0;
    qs_error e;
    qs_status st = QS_OK;
    qs_sim *sim = NULL;
    qs_trace *trace = NULL;
    qs_rtl_cosim *cosim = NULL;
    int32_t *preds = NULL;
    qsim_report *r = qs_calloc(1, sizeof *r);
    if (!r) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    r->net = net;
    r->arch = prog->arch;
    r->tech = prog->tech;
    r->n_inferences = n_inputs;
    r->out_count = (int64_t)OUT->out_c * OUT->out_h * OUT->out_w;
    r->layers = qs_calloc((size_t)net->n_layers, sizeof *r->layers);
    r->outputs = qs_calloc((size_t)n_inputs, (size_t)r->out_count * sizeof *r->outputs);
    preds = qs_calloc((size_t)n_inputs, sizeof *preds);
    if (!r->layers || !r->outputs || !preds) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qs_sim_create(net, prog->prog, opts->engine == QSIM_ENGINE_DETAILED ? QS_ENGINE_DETAILED : QS_ENGINE_FAST,
                       &sim, &e);
    if (st) goto out;
    if (opts->dma_hook) qs_sim_set_dma_hook(sim, opts->dma_hook, opts->dma_user);
    if (opts->engine == QSIM_ENGINE_RTL) { /* fast outside the co-simulated layers */
        if (opts->rtl_layer) {
            int32_t li = 1;
            while (li < net->n_layers && strcmp(net->layers[li].name, opts->rtl_layer)) li++;
            if (li == net->n_layers) {
                st = qs_fail(&e, QS_ERR_ARG, "rtl_layer: no layer named '%s'", opts->rtl_layer);
                goto out;
            }
        }
        qs_rtl_cosim_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.max_act_bits = r->arch.max_act_bits;
        ro.max_weight_bits = r->arch.max_weight_bits;
        ro.cache_dir = opts->rtl_cache;
        ro.layer = opts->rtl_layer;
        ro.tile_from = opts->rtl_tile_from;
        ro.tile_to = opts->rtl_tile_to;
        ro.fst = opts->rtl_fst;
        ro.fst_from = opts->trace_from;
        ro.fst_to = opts->trace_to;
        ro.repro = opts->rtl_repro;
        st = qs_rtl_cosim_create(&ro, &cosim, &e);
        if (!st) st = qs_sim_set_array_hook(sim, qs_rtl_cosim_hook(cosim), &e);
        if (st) goto out;
    }
    if (opts->trace_format != QSIM_TRACE_NONE) {
        st = qs_trace_open(opts->trace_path, opts->trace_format == QSIM_TRACE_FST ? QS_TRACE_FST : QS_TRACE_VCD,
                           "1ns", &trace, &e);
        if (st) goto out;
        qs_sim_set_trace(sim, trace, opts->trace_from, opts->trace_to);
    }
    for (int32_t b = 0; b < n_inputs; b++) {
        if (inputs) {
            qs_error ie;
            st = qs_sim_set_input(sim, inputs + (size_t)b * (size_t)per, per, &ie);
            if (st) {
                qs_fail(&e, st, "inference %d: %.450s", (int)b, ie.msg);
                goto out;
            }
        }
        st = qs_sim_run(sim, &e);
        if (st) goto out;
        if (trace) {
            qs_sim_set_trace(sim, NULL, 0, 0);
            st = qs_trace_close(trace, &e);
            trace = NULL;
            if (st) goto out;
        }
        for (int32_t i = 0; i < net->n_layers; i++) {
            const qs_layer_stats *s = qs_sim_layer_stats(sim, i);
            qs_layer_stats *a = &r->layers[i];
            a->cycles += s->cycles;
            a->array_busy += s->array_busy;
            a->stall_dram += s->stall_dram;
            a->stall_ppu += s->stall_ppu;
            a->stall_buffer += s->stall_buffer;
            a->stall_dep += s->stall_dep;
            qs_events_add(&a->ev, &s->ev);
        }
        const int32_t *o = qs_sim_layer_output(sim, net->output);
        memcpy(r->outputs + (size_t)b * (size_t)r->out_count, o, (size_t)r->out_count * sizeof *o);
        preds[b] = argmax(o, r->out_count);
        if (opts->labels) n_correct += preds[b] == opts->labels[b];
    }
    if (opts->keep_layer_outputs) {
        r->layer_outputs = qs_calloc((size_t)net->n_layers, sizeof *r->layer_outputs);
        r->layer_counts = qs_calloc((size_t)net->n_layers, sizeof *r->layer_counts);
        if (!r->layer_outputs || !r->layer_counts) {
            st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (int32_t i = 0; i < net->n_layers; i++) {
            const qs_layer *L = &net->layers[i];
            int64_t c = (int64_t)L->out_c * L->out_h * L->out_w;
            r->layer_outputs[i] = qs_malloc((size_t)(c ? c : 1) * sizeof(int32_t));
            if (!r->layer_outputs[i]) {
                st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
                goto out;
            }
            memcpy(r->layer_outputs[i], qs_sim_layer_output(sim, i), (size_t)c * sizeof(int32_t));
            r->layer_counts[i] = c;
        }
    }
    {
        qs_report rep = {net,
                         prog->prog,
                         &r->arch,
                         &r->tech,
                         opts->net_path ? opts->net_path : prog->net->path,
                         opts->config_path ? opts->config_path : prog->config_where,
                         opts->engine == QSIM_ENGINE_RTL ? "rtl" : opts->engine == QSIM_ENGINE_DETAILED ? "detailed" : "fast",
                         n_inputs,
                         r->layers,
                         n_correct,
                         opts->labels ? n_inputs : 0,
                         inputs ? preds : NULL,
                         now_seconds() - t0,
                         opts->command_line};
        st = qs_report_json_text(&rep, &r->json, &e);
    }
out:
    if (trace) {
        qs_error te;
        qs_sim_set_trace(sim, NULL, 0, 0);
        qs_trace_close(trace, &te);
    }
    if (cosim) {
        qs_rtl_cosim_stats cs;
        qs_rtl_cosim_stats_get(cosim, &cs);
        r->rtl.clocks = cs.clocks;
        r->rtl.values = cs.values;
        r->rtl.tiles = cs.tiles;
        r->rtl.models = cs.models;
        r->rtl.built = cs.built;
        r->rtl.build_seconds = cs.build_seconds;
    }
    qs_sim_destroy(sim);
    qs_rtl_cosim_destroy(cosim);
    qs_free(preds);
    if (st) {
        qsim_report_free(r);
        return pass(err, st, &e);
    }
    *out = r;
    return QSIM_OK;
}

void qsim_report_free(qsim_report *r)
{
    if (!r) return;
    if (r->layer_outputs)
        for (int32_t i = 0; i < r->net->n_layers; i++) qs_free(r->layer_outputs[i]);
    qs_free(r->layer_outputs);
    qs_free(r->layer_counts);
    qs_free(r->layers);
    qs_free(r->outputs);
    qs_free(r->json);
    qs_free(r);
}

/* ---- report ----------------------------------------------------------------------------- */

static void energy_of(const qsim_report *r, const qs_events *ev, double k, qsim_energy *out)
{
    qs_energy_breakdown e = qs_energy_of(&r->tech, &r->arch, ev);
    out->mac = e.mac * k;
    out->registers = e.registers * k;
    out->sram = e.sram * k;
    out->dram = e.dram * k;
    out->ppu = e.ppu * k;
    out->leakage = e.leakage * k;
    out->total = e.total * k;
}

static void sum_events(const qsim_report *r, qs_events *all, qs_layer_stats *st)
{
    memset(all, 0, sizeof *all);
    memset(st, 0, sizeof *st);
    for (int32_t i = 1; i < r->net->n_layers; i++) {
        const qs_layer_stats *s = &r->layers[i];
        qs_events_add(all, &s->ev);
        st->stall_dram += s->stall_dram;
        st->stall_dep += s->stall_dep;
        st->stall_buffer += s->stall_buffer;
        st->stall_ppu += s->stall_ppu;
    }
}

qsim_status qsim_report_totals(const qsim_report *r, qsim_totals *out, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_totals: report is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_report_totals: out is NULL");
    qs_events all;
    qs_layer_stats st;
    sum_events(r, &all, &st);
    double k = 1.0 / r->n_inferences;
    memset(out, 0, sizeof *out);
    out->inferences = r->n_inferences;
    out->cycles = (double)all.cycles * k;
    out->time_s = out->cycles / (r->arch.freq_mhz * 1e6);
    out->macs = (double)all.macs * k;
    out->macs_executed = (double)all.macs_executed * k;
    out->mac_slice_ops = (double)all.mac_ops * k;
    out->mac_slice_gated = (double)all.mac_gated * k;
    out->mac_slice_skipped = (double)all.mac_skipped * k;
    out->dram_bytes = (double)(all.dram_read_bytes + all.dram_write_bytes) * k;
    out->stall_dram = (double)st.stall_dram * k;
    out->stall_dependency = (double)st.stall_dep * k;
    out->stall_buffer = (double)st.stall_buffer * k;
    out->stall_ppu = (double)st.stall_ppu * k;
    for (int b = 0; b < 3; b++) {
        out->sram_read_bytes[b] = (double)all.sram_read_bytes[b] * k;
        out->sram_write_bytes[b] = (double)all.sram_write_bytes[b] * k;
    }
    out->energy_pj = qs_energy_of(&r->tech, &r->arch, &all).total * k;
    out->utilization = all.cycles ? (double)(all.mac_ops + all.mac_gated) /
                                        ((double)r->arch.rows * r->arch.cols * (double)all.cycles)
                                  : 0.0;
    return QSIM_OK;
}

qsim_status qsim_report_rtl(const qsim_report *r, qsim_rtl_stats *out, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_rtl: report is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_report_rtl: out is NULL");
    *out = r->rtl;
    return QSIM_OK;
}

qsim_status qsim_report_energy(const qsim_report *r, qsim_energy *out, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_energy: report is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_report_energy: out is NULL");
    qs_events all;
    qs_layer_stats st;
    sum_events(r, &all, &st);
    energy_of(r, &all, 1.0 / r->n_inferences, out);
    return QSIM_OK;
}

qsim_status qsim_report_area(const qsim_report *r, qsim_area *out, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_area: report is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_report_area: out is NULL");
    const qs_tech *T = &r->tech;
    out->total = T->total_mm2;
    out->array = T->array_mm2;
    out->sram_ifmap = T->sram_mm2[0];
    out->sram_weight = T->sram_mm2[1];
    out->sram_accum = T->sram_mm2[2];
    out->dma = T->dma_mm2;
    out->ppu = T->ppu_mm2;
    out->control = T->control_mm2;
    out->pe_um2 = T->pe_um2;
    return QSIM_OK;
}

qsim_status qsim_report_layer(const qsim_report *r, int32_t layer, qsim_layer_figures *out, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_layer: report is NULL");
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_report_layer: out is NULL");
    if (layer < 1 || layer >= r->net->n_layers)
        return fail(err, QSIM_ERR_ARG, "qsim_report_layer: layer %d out of range 1..%d", (int)layer,
                    (int)r->net->n_layers - 1);
    const qs_layer *L = &r->net->layers[layer];
    const qs_layer_stats *s = &r->layers[layer];
    double k = 1.0 / r->n_inferences;
    out->name = L->name;
    out->kind = qs_layer_kind_name(L->kind);
    out->cycles = (double)s->cycles * k;
    out->array_busy = (double)s->array_busy * k;
    out->macs = (double)s->ev.macs * k;
    out->macs_executed = (double)s->ev.macs_executed * k;
    out->stall_dram = (double)s->stall_dram * k;
    out->stall_dependency = (double)s->stall_dep * k;
    out->stall_buffer = (double)s->stall_buffer * k;
    out->stall_ppu = (double)s->stall_ppu * k;
    out->dram_read_bytes = (double)s->ev.dram_read_bytes * k;
    out->dram_write_bytes = (double)s->ev.dram_write_bytes * k;
    for (int b = 0; b < 3; b++) {
        out->sram_read_bytes[b] = (double)s->ev.sram_read_bytes[b] * k;
        out->sram_write_bytes[b] = (double)s->ev.sram_write_bytes[b] * k;
    }
    out->acc_overflows = (double)s->ev.acc_overflows * k;
    energy_of(r, &s->ev, k, &out->energy);
    return QSIM_OK;
}

qsim_status qsim_report_json(const qsim_report *r, const char **json, qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_json: report is NULL");
    if (!json) return fail(err, QSIM_ERR_ARG, "qsim_report_json: json is NULL");
    *json = r->json;
    return QSIM_OK;
}

qsim_status qsim_report_output(const qsim_report *r, int32_t inference, const int32_t **data, int64_t *count,
                               qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_output: report is NULL");
    if (!data || !count) return fail(err, QSIM_ERR_ARG, "qsim_report_output: data or count is NULL");
    if (inference < 0 || inference >= r->n_inferences)
        return fail(err, QSIM_ERR_ARG, "qsim_report_output: inference %d out of range 0..%d", (int)inference,
                    (int)r->n_inferences - 1);
    *data = r->outputs + (size_t)inference * (size_t)r->out_count;
    *count = r->out_count;
    return QSIM_OK;
}

qsim_status qsim_report_layer_output(const qsim_report *r, int32_t layer, const int32_t **data, int64_t *count,
                                     qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_layer_output: report is NULL");
    if (!data || !count) return fail(err, QSIM_ERR_ARG, "qsim_report_layer_output: data or count is NULL");
    if (!r->layer_outputs)
        return fail(err, QSIM_ERR_ARG, "qsim_report_layer_output: layer outputs were not kept "
                                       "(qsim_run_options.keep_layer_outputs = 1)");
    if (layer < 0 || layer >= r->net->n_layers)
        return fail(err, QSIM_ERR_ARG, "qsim_report_layer_output: layer %d out of range 0..%d", (int)layer,
                    (int)r->net->n_layers - 1);
    *data = r->layer_outputs[layer];
    *count = r->layer_counts[layer];
    return QSIM_OK;
}

/* ---- memory --------------------------------------------------------------- */

void qsim_set_allocator(qsim_alloc_fn fn, void *ud)
{
    qs_set_allocator(fn, ud);
    qs_report_route_cjson(fn != NULL);
}

void qsim_get_allocator(qsim_alloc_fn *fn, void **ud) { qs_get_allocator(fn, ud); }
