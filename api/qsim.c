/* The public API (include/qsim/qsim.h) over the core: models/ (formats,
 * config, energy), compiler/, sim/ and the report writer of cli/report.c.
 * It adds handle checks and ownership, nothing else: every figure comes from
 * the same code the qsim command runs. */
#include "qsim_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "qs_npy.h"
#include "qs_revision.h"
#include "trace.h"
#include "waveview.h"

/* The core's status codes are the API's, value for value. */
_Static_assert((int)QS_ERR_RUN == (int)QSIM_ERR_RUN && (int)QS_ERR_ARG == (int)QSIM_ERR_ARG &&
                   (int)QS_ERR_IO == (int)QSIM_ERR_IO && (int)QS_ERR_NOMEM == (int)QSIM_ERR_NOMEM,
               "qs_status and qsim_status must agree");
_Static_assert(sizeof(qsim_error) == sizeof(qs_error), "qsim_error and qs_error must agree");

#define MAX_OVERRIDES 4096

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
    qs_error e;
    if (qs_value_cache_create(n, 0, &h->cache, &e)) { /* on by default */
        qsim_net_free(h);
        return fail(err, QSIM_ERR_NOMEM, "out of memory");
    }
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
    qs_value_cache_destroy(net->cache);
    qs_net_destroy(net->net);
    qs_free(net->path);
    qs_free(net);
}

qsim_status qsim_net_set_cache(qsim_net *net, int enabled, size_t max_bytes, qsim_error *err)
{
    if (!net) return fail(err, QSIM_ERR_ARG, "qsim_net_set_cache: net is NULL");
    qs_value_cache_destroy(net->cache); /* a new bound starts empty */
    net->cache = NULL;
    if (!enabled) return QSIM_OK;
    qs_error e;
    qs_status st = qs_value_cache_create(net->net, max_bytes, &net->cache, &e);
    return st ? pass(err, st, &e) : QSIM_OK;
}

qsim_status qsim_net_get_cache(const qsim_net *net, qsim_cache_info *out, qsim_error *err)
{
    if (!net || !out) return fail(err, QSIM_ERR_ARG, "qsim_net_get_cache: %s is NULL", !net ? "net" : "out");
    memset(out, 0, sizeof *out);
    if (!net->cache) return QSIM_OK;
    qs_value_cache_stats vs;
    qs_value_cache_get_stats(net->cache, &vs);
    out->enabled = 1;
    out->hits = vs.hits;
    out->misses = vs.misses;
    out->stores = vs.stores;
    out->bytes = vs.bytes;
    out->need_bytes = vs.need;
    return QSIM_OK;
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
                                int *is_scalesim, qs_scalesim_cfg *ss_out, qsim_error *err)
{
    qs_error e;
    qs_status st;
    const char *const *ov = (const char *const *)sets;
    int is_ss = qs_scalesim_is_config(text);
    if (is_ss) {
        qs_scalesim_cfg ss;
        memset(&ss, 0, sizeof ss);
        st = qs_scalesim_parse_config(text, where, ov, n_sets, arch, &ss, &e);
        if (st == QS_OK && ss_out) *ss_out = ss;
    } else {
        st = qs_arch_parse(text, where, ov, n_sets, arch, &e);
    }
    if (st == QS_OK && is_scalesim) *is_scalesim = is_ss;
    return pass(err, st, &e);
}

static qsim_status new_config(char *text, const char *where, const char *const *sets, int n_sets, qsim_config **out,
                              qsim_error *err)
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
    if (n_sets > 0) {
        c->sets = qs_calloc((size_t)n_sets, sizeof *c->sets);
        if (!c->sets) {
            qsim_config_free(c);
            return fail(err, QSIM_ERR_NOMEM, "out of memory");
        }
        c->cap_sets = n_sets;
        for (int i = 0; i < n_sets; i++) {
            c->sets[i] = dup_str(sets[i]);
            if (!c->sets[i]) {
                qsim_config_free(c);
                return fail(err, QSIM_ERR_NOMEM, "out of memory");
            }
            c->n_sets = i + 1;
        }
    }
    qsim_status st = parse_config(text, w, c->sets, c->n_sets, &c->arch, &c->is_scalesim, &c->ss, err);
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
    return new_config(text, path, NULL, 0, out, err);
}

qsim_status qsim_config_load_set(const char *path, const char *const *assignments, int n_assignments,
                                 qsim_config **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_config_load_set: out is NULL");
    *out = NULL;
    if (!path) return fail(err, QSIM_ERR_ARG, "qsim_config_load_set: path is NULL");
    if (n_assignments < 0 || n_assignments > MAX_OVERRIDES || (n_assignments > 0 && !assignments))
        return fail(err, QSIM_ERR_ARG, "qsim_config_load_set: %d assignments (0..%d, and a list when not 0)",
                    n_assignments, MAX_OVERRIDES);
    for (int i = 0; i < n_assignments; i++)
        if (!assignments[i]) return fail(err, QSIM_ERR_ARG, "qsim_config_load_set: assignment %d is NULL", i);
    char *text;
    qs_error e;
    qs_status st = qs_read_text_file(path, &text, &e);
    if (st) return pass(err, st, &e);
    return new_config(text, path, assignments, n_assignments, out, err);
}

int qsim_config_is_scalesim(const qsim_config *cfg) { return cfg ? cfg->is_scalesim : 0; }

qsim_status qsim_config_parse(const char *text, const char *where, qsim_config **out, qsim_error *err)
{
    if (!out) return fail(err, QSIM_ERR_ARG, "qsim_config_parse: out is NULL");
    *out = NULL;
    if (!text) return fail(err, QSIM_ERR_ARG, "qsim_config_parse: text is NULL");
    char *t = dup_str(text);
    if (!t) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    return new_config(t, where ? where : "<config>", NULL, 0, out, err);
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
    int is_ss = 0;
    qs_scalesim_cfg ss;
    memset(&ss, 0, sizeof ss);
    qsim_status st = parse_config(cfg->text, cfg->where, cfg->sets, cfg->n_sets + 1, &arch, &is_ss, &ss, err);
    if (st) {
        qs_free(a);
        return st;
    }
    cfg->n_sets++;
    cfg->arch = arch;
    cfg->is_scalesim = is_ss;
    cfg->ss = ss;
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
    c->is_scalesim = cfg->is_scalesim;
    c->ss = cfg->ss;
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

void qsim_run_extras_init(qsim_run_extras *x)
{
    if (!x) return;
    memset(x, 0, sizeof *x);
    x->struct_size = sizeof *x;
    x->dump_index = -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Index of the largest value (first on ties) of the output layer. */
static int32_t argmax(const int32_t *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

int qi_add_message(char **text, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return 1;
    size_t have = *text ? strlen(*text) : 0;
    char *t = qs_realloc(*text, have + (size_t)n + 2);
    if (!t) return 1;
    va_start(ap, fmt);
    vsnprintf(t + have, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t[have + (size_t)n] = '\n';
    t[have + (size_t)n + 1] = '\0';
    *text = t;
    return 0;
}

static qs_status make_dir(const char *dir, qs_error *e)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return qs_fail(e, QS_ERR_IO, "%.400s: cannot create directory: %s", dir, strerror(errno));
    return QS_OK;
}

/* Every layer's output as DIR/<index>_<name>.npy, or with inference >= 0 (one
 * inference of a batch) DIR/<inference, 5 digits>/<index>_<name>.npy. */
static qs_status dump_outputs(const char *top, int32_t inference, const qs_net *net, const qs_sim *sim, qs_error *e)
{
    char dir[900];
    if (inference >= 0) snprintf(dir, sizeof dir, "%s/%05d", top, (int)inference);
    else snprintf(dir, sizeof dir, "%s", top);
    if (make_dir(dir, e)) return QS_ERR_IO;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        char path[1024];
        snprintf(path, sizeof path, "%s/%03d_%s.npy", dir, i, L->name);
        for (char *c = path + strlen(dir) + 1; *c; c++)
            if (*c == '/') *c = '_';
        int64_t shape[3] = {L->out_c, L->out_h, L->out_w};
        qs_status st = qs_npy_save_i32(path, shape, 3, qs_sim_layer_output(sim, i), e);
        if (st) return st;
    }
    return QS_OK;
}

/* dram_trace_path: the bank model's requests, collected during the first
 * inference, written sorted by cycle (docs/dram.md, "Request traces"). */
typedef struct {
    uint64_t cycle, addr, seq;
    int is_write;
} dram_req;

typedef struct {
    dram_req *v;
    size_t n, cap;
    int oom;
} dram_log;

static void dram_log_add(void *user, uint64_t cycle, uint64_t addr, int is_write, uint32_t bytes)
{
    (void)bytes; /* one burst, the same for every request */
    dram_log *l = user;
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        dram_req *v = qs_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    dram_req r = {cycle, addr, l->n, is_write};
    l->v[l->n++] = r;
}

static int dram_req_cmp(const void *a, const void *b)
{
    const dram_req *x = a, *y = b;
    if (x->cycle != y->cycle) return x->cycle < y->cycle ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static qs_status dram_log_write(dram_log *l, const char *path, qs_error *e)
{
    if (l->oom) return qs_fail(e, QS_ERR_NOMEM, "%s: out of memory for the DRAM trace", path);
    qsort(l->v, l->n, sizeof *l->v, dram_req_cmp);
    FILE *f = fopen(path, "w");
    if (!f) return qs_fail(e, QS_ERR_IO, "%s: cannot open for writing", path);
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, "0x%" PRIx64 " %s %" PRIu64 "\n", l->v[i].addr, l->v[i].is_write ? "WRITE" : "READ", l->v[i].cycle);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(e, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

/* One thread's share of a batch: inferences [first, end), on its own simulator.
 * Per-layer sums are integers, so adding the jobs' sums in any order gives the
 * same totals as one job: the report does not depend on the number of jobs. */
typedef struct {
    const qs_net *net;
    const qs_prog *prog;
    qs_engine engine;
    struct qs_value_cache *cache; /* the network's (NULL: off) */
    const qsim_run_options *o;
    const qsim_run_extras *xo;
    qs_sim *sim;                /* the caller's thread's for job 0; else created by the job */
    const int32_t *x;           /* all inputs, `per` values each; NULL: the network's own input */
    int64_t per;
    int32_t first, end, n;
    qs_trace *trace;            /* job 0: closed after its first inference */
    uint64_t tr_from, tr_to;    /* the waveform's window */
    const char *dram_trace;     /* job 0: the DRAM trace file, written after its first inference */
    dram_log *dlog;
    int progress;               /* report inferences (a one-thread batch) or cycles (one inference) */
    qs_layer_stats *acc;        /* net->n_layers sums over this job's inferences */
    int32_t *outputs;           /* the whole batch's output layer values; the job writes [first, end) */
    int64_t out_count;
    int32_t *preds;             /* the whole batch's; the job writes [first, end) */
    int n_correct;
    int failed;
    qs_status status;           /* of the failure */
    char *messages;             /* job 0: where the waveform's view is */
    qs_error e;
} batch_job;

/* qs_sim_run, telling the progress hook the simulated cycles every 65,536
 * cycles. Same result: qs_sim_run is start + advance to the end. */
static qs_status run_showing_cycles(qs_sim *sim, const qsim_run_extras *o, qs_error *e)
{
    qs_status st = qs_sim_start(sim, e);
    int done = 0;
    while (!st && !done) {
        st = qs_sim_advance(sim, qs_sim_now(sim) + 65536, &done, e);
        if (!st) o->progress(o->progress_user, QSIM_PROGRESS_CYCLES, qs_sim_now(sim), 0);
    }
    return st;
}

static void *run_batch_job(void *arg)
{
    batch_job *j = arg;
    qs_error *e = &j->e;
    const qsim_run_options *o = j->o;
    const qsim_run_extras *xo = j->xo;
    qs_sim *own = NULL;
    qs_status st;
    j->failed = 1;
    if (!j->sim) {
        if ((j->status = qs_sim_create(j->net, j->prog, j->engine, &own, e))) return NULL;
        j->sim = own;
        qs_sim_set_value_cache(own, j->cache);
        if (o->dma_hook) qs_sim_set_dma_hook(own, o->dma_hook, o->dma_user);
    }
    const qs_net *net = j->net;
    for (int32_t b = j->first; b < j->end; b++) {
        if (j->x) {
            qs_error ie;
            if ((st = qs_sim_set_input(j->sim, j->x + (size_t)b * (size_t)j->per, j->per, &ie))) {
                if (xo->input_name) qs_fail(e, st, "%s: inference %d: %.400s", xo->input_name, (int)b, ie.msg);
                else qs_fail(e, st, "inference %d: %.450s", (int)b, ie.msg);
                goto out;
            }
        }
        int show_cycles = j->progress && j->n == 1;
        if ((st = show_cycles ? run_showing_cycles(j->sim, xo, e) : qs_sim_run(j->sim, e)) != QS_OK) goto out;
        if (j->dram_trace && b == 0) {
            qs_sim_set_dram_trace(j->sim, NULL, NULL);
            if ((st = dram_log_write(j->dlog, j->dram_trace, e))) goto out;
        }
        if (j->trace) { /* the first inference only */
            qs_sim_set_trace(j->sim, NULL, 0, 0);
            st = qs_trace_close(j->trace, e);
            j->trace = NULL;
            if (st) goto out;
            /* beside the dump, a view that opens on its window, with layer names */
            uint64_t last = qs_sim_now(j->sim), to = j->tr_to < last ? j->tr_to : last,
                     from = j->tr_from < to ? j->tr_from : to;
            char view[4096];
            if ((st = qs_write_wave_view(o->trace_path, net, j->engine == QS_ENGINE_DETAILED, from, to, view,
                                         sizeof view, e)))
                goto out;
            if (qi_add_message(&j->messages, "waveform %s holds cycles %llu..%llu; view it: gtkwave %s",
                                      o->trace_path, (unsigned long long)from, (unsigned long long)to, view)) {
                st = qs_fail(e, QS_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
        for (int32_t i = 0; i < net->n_layers; i++) {
            const qs_layer_stats *s = qs_sim_layer_stats(j->sim, i);
            j->acc[i].cycles += s->cycles;
            j->acc[i].array_busy += s->array_busy;
            j->acc[i].stall_dram += s->stall_dram;
            j->acc[i].stall_ppu += s->stall_ppu;
            j->acc[i].stall_buffer += s->stall_buffer;
            j->acc[i].stall_dep += s->stall_dep;
            qs_events_add(&j->acc[i].ev, &s->ev);
            qs_dram_stats none;
            memset(&none, 0, sizeof none);
            qs_dram_stats_add_delta(&j->acc[i].dram, &s->dram, &none);
        }
        const int32_t *out = qs_sim_layer_output(j->sim, net->output);
        memcpy(j->outputs + (size_t)b * (size_t)j->out_count, out, (size_t)j->out_count * sizeof *out);
        j->preds[b] = argmax(out, j->out_count);
        if (o->labels) j->n_correct += j->preds[b] == o->labels[b];
        if (xo->dump_dir) {
            st = QS_OK;
            if (j->n == 1) st = dump_outputs(xo->dump_dir, -1, net, j->sim, e);
            else if (xo->dump_index < 0) st = dump_outputs(xo->dump_dir, b, net, j->sim, e);
            else if (xo->dump_index == b) st = dump_outputs(xo->dump_dir, -1, net, j->sim, e);
            if (st) goto out;
        }
        if (j->progress && j->n > 1) xo->progress(xo->progress_user, QSIM_PROGRESS_INFERENCE, (uint64_t)b + 1, (uint64_t)j->n);
    }
    j->failed = 0;
    st = QS_OK;
out:
    j->status = st;
    if (own && (j->failed || j->end != j->n)) { /* the last job's simulator stays for keep_layer_outputs */
        qs_sim_destroy(own);
        j->sim = NULL;
    }
    return NULL;
}

qsim_status qsim_run(const qsim_program *prog, const int32_t *inputs, int64_t count, int32_t n_inputs,
                     const qsim_run_options *opts, qsim_report **out, qsim_error *err)
{
    return qsim_run_with(prog, inputs, count, n_inputs, opts, NULL, out, err);
}

qsim_status qsim_run_with(const qsim_program *prog, const int32_t *inputs, int64_t count, int32_t n_inputs,
                          const qsim_run_options *opts, const qsim_run_extras *xo, qsim_report **out,
                          qsim_error *err)
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
    qsim_run_extras xdef;
    qsim_run_extras_init(&xdef);
    if (!xo) xo = &xdef;
    if (xo->struct_size != sizeof *xo)
        return fail(err, QSIM_ERR_VERSION, "qsim_run: extras of %u bytes, this library's are %zu (call "
                                           "qsim_run_extras_init; rebuild against this qsim.h)",
                    (unsigned)xo->struct_size, sizeof *xo);
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
    if (xo->trace_layer && opts->trace_format == QSIM_TRACE_NONE)
        return fail(err, QSIM_ERR_ARG, "qsim_run: trace_layer without a trace format");
    if (xo->dump_index < -1) return fail(err, QSIM_ERR_ARG, "qsim_run: dump_index %d (-1: all)", (int)xo->dump_index);
    if (xo->dump_index >= 0 && !xo->dump_dir)
        return fail(err, QSIM_ERR_ARG, "qsim_run: dump_index without dump_dir");
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
    qs_engine engine = opts->engine == QSIM_ENGINE_DETAILED ? QS_ENGINE_DETAILED : QS_ENGINE_FAST;
    double t0 = now_seconds();
    qs_error e;
    qs_status st = QS_OK;
    qs_sim *sim = NULL;
    qs_trace *trace = NULL;
    batch_job *jobs = NULL;
    pthread_t *threads = NULL;
    qs_layer_stats *acc = NULL;
    dram_log dlog = {NULL, 0, 0, 0};
    qs_rtl_cosim *cosim = NULL;
    int32_t n_jobs = xo->jobs > 1 ? xo->jobs : 1;
    uint64_t tr_from = opts->trace_from, tr_to = opts->trace_to;
    qsim_report *r = qs_calloc(1, sizeof *r);
    if (!r) return fail(err, QSIM_ERR_NOMEM, "out of memory");
    r->net = net;
    r->prog = prog->prog;
    r->arch = prog->arch;
    r->tech = prog->tech;
    r->n_inferences = n_inputs;
    r->engine = opts->engine == QSIM_ENGINE_RTL ? "rtl" : engine == QS_ENGINE_DETAILED ? "detailed" : "fast";
    r->out_count = (int64_t)OUT->out_c * OUT->out_h * OUT->out_w;
    r->net_path = dup_str(opts->net_path ? opts->net_path : prog->net->path);
    r->config_path = dup_str(opts->config_path ? opts->config_path : prog->config_where);
    r->command_line = opts->command_line ? dup_str(opts->command_line) : NULL;
    r->layers = qs_calloc((size_t)net->n_layers, sizeof *r->layers);
    r->outputs = qs_calloc((size_t)n_inputs, (size_t)r->out_count * sizeof *r->outputs);
    r->predictions = qs_calloc((size_t)n_inputs, sizeof *r->predictions);
    r->messages = dup_str("");
    if (!r->layers || !r->outputs || !r->predictions || !r->messages || !r->net_path || !r->config_path ||
        (opts->command_line && !r->command_line)) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (prog->arch.dram_model == QS_DRAM_TLM) {
        /* the memory backend model = tlm needs exists only inside a SystemC platform */
        st = qs_fail(&e, QS_ERR_CONFIG, "%s: [dram] model = tlm: the DRAM is a SystemC/TLM-2.0 platform's memory, "
                     "which only the SystemC wrapper (sim/systemc, docs/systemc.md) connects; qsim run needs model = "
                     "simple or a bank-level preset (ddr4_3200, lpddr4_4266, lpddr5_6400, hbm2)", r->config_path);
        goto out;
    }
    if (xo->dram_trace_path && !qs_dram_is_bank_model(prog->arch.dram_model)) {
        st = qs_fail(&e, QS_ERR_ARG, "--dram-trace %s: needs a bank-level DRAM model (e.g. --set dram.model=ddr4_3200); "
                     "[dram] model = %s has no DRAM requests", xo->dram_trace_path,
                     qs_dram_model_name(prog->arch.dram_model));
        goto out;
    }
    if (xo->dump_index >= n_inputs) {
        st = qs_fail(&e, QS_ERR_ARG, "--dump-index %d: the batch has %d inferences (0..%d)", (int)xo->dump_index,
                     (int)n_inputs, (int)n_inputs - 1);
        goto out;
    }
    st = qs_sim_create(net, prog->prog, engine, &sim, &e);
    if (st) goto out;
    qs_sim_set_value_cache(sim, prog->net->cache);
    if (opts->dma_hook) qs_sim_set_dma_hook(sim, opts->dma_hook, opts->dma_user);
    if (xo->dram_trace_path) qs_sim_set_dram_trace(sim, dram_log_add, &dlog);
    if (xo->dump_dir && (st = make_dir(xo->dump_dir, &e))) goto out;
    if (n_jobs > n_inputs) n_jobs = n_inputs;
    if (opts->trace_format != QSIM_TRACE_NONE) n_jobs = 1; /* the waveform is of the first inference, on this thread */
    if (opts->engine == QSIM_ENGINE_RTL) n_jobs = 1; /* the co-simulation hook is on this thread's simulator */
    acc = qs_calloc((size_t)net->n_layers * (size_t)n_jobs, sizeof *acc);
    jobs = qs_calloc((size_t)n_jobs, sizeof *jobs);
    threads = qs_calloc((size_t)n_jobs, sizeof *threads);
    if (!acc || !jobs || !threads) {
        st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (opts->trace_format != QSIM_TRACE_NONE) {
        if (xo->trace_layer) { /* the window is the layer's span: find it with an untraced run */
            int32_t li = 1;
            while (li < net->n_layers && strcmp(net->layers[li].name, xo->trace_layer)) li++;
            if (li == net->n_layers) {
                st = qs_fail(&e, QS_ERR_ARG, "--trace-layer: no layer named '%s' in %s", xo->trace_layer,
                             r->net_path);
                goto out;
            }
            if (inputs && (st = qs_sim_set_input(sim, inputs, per, &e))) goto out;
            if ((st = qs_sim_run(sim, &e))) goto out;
            tr_from = qs_sim_layer_stats(sim, li)->start;
            tr_to = qs_sim_layer_stats(sim, li)->end;
        }
        st = qs_trace_open(opts->trace_path, opts->trace_format == QSIM_TRACE_FST ? QS_TRACE_FST : QS_TRACE_VCD,
                           "1ns", &trace, &e);
        if (st) goto out;
        qs_sim_set_trace(sim, trace, tr_from, tr_to);
    }
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
        ro.fst_from = tr_from;
        ro.fst_to = tr_to;
        ro.repro = opts->rtl_repro;
        st = qs_rtl_cosim_create(&ro, &cosim, &e);
        if (!st) st = qs_sim_set_array_hook(sim, qs_rtl_cosim_hook(cosim), &e);
        if (st) goto out;
    }
    for (int32_t k = 0; k < n_jobs; k++) { /* contiguous shares, the later ones one longer */
        batch_job *j = &jobs[k];
        j->net = net;
        j->prog = prog->prog;
        j->cache = prog->net->cache;
        j->engine = engine;
        j->o = opts;
        j->xo = xo;
        j->sim = k == 0 ? sim : NULL;
        j->x = inputs;
        j->per = per;
        j->first = (int32_t)((int64_t)n_inputs * k / n_jobs);
        j->end = (int32_t)((int64_t)n_inputs * (k + 1) / n_jobs);
        j->n = n_inputs;
        j->trace = k == 0 ? trace : NULL;
        j->tr_from = tr_from;
        j->tr_to = tr_to;
        j->dram_trace = k == 0 ? xo->dram_trace_path : NULL;
        j->dlog = &dlog;
        j->progress = xo->progress && n_jobs == 1;
        j->acc = acc + (size_t)k * (size_t)net->n_layers;
        j->outputs = r->outputs;
        j->out_count = r->out_count;
        j->preds = r->predictions;
    }
    trace = NULL; /* job 0 closes it */
    int started = 0;
    for (int32_t k = 1; k < n_jobs; k++, started++)
        if (pthread_create(&threads[k], NULL, run_batch_job, &jobs[k]) != 0) break;
    run_batch_job(&jobs[0]);
    for (int32_t k = 1; k <= started; k++) pthread_join(threads[k], NULL);
    if (started < n_jobs - 1) {
        st = qs_fail(&e, QS_ERR_RUN, "cannot start thread %d of --jobs %d", started + 1, (int)n_jobs);
        goto out;
    }
    if (cosim && !jobs[0].failed) { /* the last clocks handed to the comparison */
        st = qs_rtl_cosim_finish(cosim, &e);
        if (st) goto out;
    }
    for (int32_t k = 0; k < n_jobs; k++) /* the first failing inference's message */
        if (jobs[k].failed) {
            e = jobs[k].e;
            st = jobs[k].status;
            if (k == 0 && jobs[0].trace) {
                qs_error te;
                qs_trace_close(jobs[0].trace, &te);
                jobs[0].trace = NULL;
            }
            goto out;
        }
    for (int32_t k = 0; k < n_jobs; k++) {
        for (int32_t i = 0; i < net->n_layers; i++) {
            qs_layer_stats *a = &r->layers[i];
            const qs_layer_stats *s = &jobs[k].acc[i];
            a->cycles += s->cycles;
            a->array_busy += s->array_busy;
            a->stall_dram += s->stall_dram;
            a->stall_ppu += s->stall_ppu;
            a->stall_buffer += s->stall_buffer;
            a->stall_dep += s->stall_dep;
            qs_events_add(&a->ev, &s->ev);
            qs_dram_stats none;
            memset(&none, 0, sizeof none);
            qs_dram_stats_add_delta(&a->dram, &s->dram, &none);
        }
        r->n_correct += jobs[k].n_correct;
    }
    if (jobs[0].messages) {
        qs_free(r->messages);
        r->messages = jobs[0].messages;
        jobs[0].messages = NULL;
    }
    if (!inputs) { /* no batch: predictions are not reported */
        qs_free(r->predictions);
        r->predictions = NULL;
    }
    r->n_labelled = opts->labels ? n_inputs : 0;
    if (opts->keep_layer_outputs) {
        const qs_sim *last = jobs[n_jobs - 1].sim;
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
            memcpy(r->layer_outputs[i], qs_sim_layer_output(last, i), (size_t)c * sizeof(int32_t));
            r->layer_counts[i] = c;
        }
    }
    {
        uint64_t cyc = 0, stall_buffer = 0;
        for (int32_t i = 1; i < net->n_layers; i++) {
            cyc += r->layers[i].cycles;
            stall_buffer += r->layers[i].stall_buffer;
        }
        if (cyc > 0 && qi_throttle_warning(net, prog->prog, &prog->arch, stall_buffer, cyc, &r->messages)) {
            st = qs_fail(&e, QS_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    r->wall_seconds = now_seconds() - t0;
    {
        qs_report rep;
        qi_report_view(r, &rep);
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
    if (jobs) {
        for (int32_t k = 0; k < n_jobs; k++) {
            qs_free(jobs[k].messages);
            if (k > 0) qs_sim_destroy(jobs[k].sim);
        }
    }
    qs_sim_destroy(sim);
    qs_rtl_cosim_destroy(cosim);
    qs_free(jobs);
    qs_free(threads);
    qs_free(acc);
    qs_free(dlog.v);
    if (st) {
        qsim_report_free(r);
        return pass(err, st, &e);
    }
    *out = r;
    return QSIM_OK;
}

void qi_report_view(const qsim_report *r, qs_report *rep)
{
    qs_report v = {r->net,        r->prog,      &r->arch,        &r->tech,      r->net_path,
                   r->config_path, r->engine,   r->n_inferences, r->layers,     r->n_correct,
                   r->n_labelled, r->predictions, r->wall_seconds, r->command_line};
    *rep = v;
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
    qs_free(r->predictions);
    qs_free(r->net_path);
    qs_free(r->config_path);
    qs_free(r->command_line);
    qs_free(r->json);
    qs_free(r->messages);
    qs_free(r->topo_layers);
    qs_free(r->report_dir);
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
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_totals: a topology report has text, JSON and CSV files only");
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
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_energy: a topology report has text, JSON and CSV files only");
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
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_layer: a topology report has text, JSON and CSV files only");
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
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_json: a topology report has text, JSON and CSV files only");
    if (!json) return fail(err, QSIM_ERR_ARG, "qsim_report_json: json is NULL");
    *json = r->json;
    return QSIM_OK;
}

qsim_status qsim_report_output(const qsim_report *r, int32_t inference, const int32_t **data, int64_t *count,
                               qsim_error *err)
{
    if (!r) return fail(err, QSIM_ERR_ARG, "qsim_report_output: report is NULL");
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_output: a topology report has text, JSON and CSV files only");
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
    if (r->is_topology)
        return fail(err, QSIM_ERR_ARG, "qsim_report_layer_output: a topology report has text, JSON and CSV files only");
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
