/* RTL co-simulation host: builds, caches and loads the Verilated PE array of
 * each configuration and compares it with qs_pe_array every clock. See
 * rtl_cosim.h and docs/waveforms.md ("RTL co-simulation"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "rtl_cosim.h"
#include "qs_alloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../rtl/driver/qs_rtl_abi.h"

#ifndef QSIM_RTL_SOURCE_DIR
#define QSIM_RTL_SOURCE_DIR ""
#endif

#define MAX_MODELS 8

typedef struct {
    qs_pe_array_cfg cfg;
    qs_rtl_params params;
    void *dl;
    const qs_rtl_api *api;
    qs_rtl *rtl;
    int traced;                 /* built with FST tracing (the model that dumps) */
    /* the model's output arrays (qs_rtl_api.view) */
    const int32_t *v_acc, *v_stat, *v_south;
    const uint8_t *v_accv, *v_south_v;
    char dir[1024];
} model;

struct qs_rtl_cosim {
    qs_rtl_cosim_opts o;
    char cache[1024], src[1024], verilator[1024];
    char vversion[256];
    model models[MAX_MODELS];
    int32_t n_models;
    model *cur;                 /* the model of the followed tile */
    qs_array_tile_info tile;    /* where it is */
    char tile_layer[256];
    uint64_t tile_clock;        /* clocks since the tile began */
    int fst_taken;              /* the FST goes to the first model co-simulated */
    /* per clock: what the C model shows (acc, accv, stat: row-major, as
     * qs_pe_array_observe writes them), and a copy of the RTL's accumulators
     * for the one clock that QSIM_RTL_FLIP alters */
    int32_t *acc, *stat, *flipped;
    uint8_t *accv;
    size_t cap;
    /* test-only: QSIM_RTL_FLIP=CYCLE,ROW,COL flips bit 0 of that PE's RTL
     * accumulator as read at that simulator cycle (#N,ROW,COL: at the N-th
     * compared clock, from 0), to show a mismatch is caught and reported */
    int flip, flip_by_clock;
    uint64_t flip_cycle;
    int32_t flip_row, flip_col;
    qs_rtl_cosim_stats st;
    qs_array_hook hook;
};

/* ---- small helpers ---- */

/* snprintf for paths and messages: a too long one is cut (the folders and
 * names here are far shorter than the buffers) */
__attribute__((format(printf, 3, 4))) static void sfmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    sfmt(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static int is_file(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* Hash a file's bytes into h; -1 when it cannot be read. */
static int hash_file(const char *path, uint64_t *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = fnv(*h, buf, n);
    fclose(f);
    return 0;
}

/* Run argv with stdout/stderr appended to log (or into out, up to n bytes,
 * when out is given); returns the exit status, -1 when it could not start. */
static int run(char *const argv[], const char *log, char *out, size_t n)
{
    int pfd[2] = {-1, -1};
    if (out && pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = out ? pfd[1] : open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        if (out) close(pfd[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (out) {
        close(pfd[1]);
        size_t got = 0;
        ssize_t k;
        char sink[256];
        while ((k = read(pfd[0], got + 1 < n ? out + got : sink, got + 1 < n ? n - 1 - got : sizeof sink)) > 0)
            if (got + 1 < n) got += (size_t)k;
        out[got] = 0;
        close(pfd[0]);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static int find_in_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t len = e ? (size_t)(e - path) : strlen(path);
        sfmt(out, n, "%.*s/%s", (int)len, path, name);
        if (access(out, X_OK) == 0) return 0;
        path += len + (e ? 1 : 0);
    }
    return -1;
}

static int32_t clog2(int64_t v)
{
    int32_t b = 0;
    while (((int64_t)1 << b) < v) b++;
    return b;
}

/* The RTL parameters of a PE-array configuration. Operand widths hold every
 * value the engines put on the edges: activations up to max_act_bits wide
 * (signed or unsigned, so one bit more; a MATMUL's zero-point-shifted A
 * still fits), weight slices of weight_path_bits (the top slice signed, the
 * lower ones unsigned: one bit more), slice indices of up to
 * ceil(max_weight_bits / weight_path_bits) slices (a bipolar weight is 2 bits). */
static void params_of(const qs_pe_array_cfg *c, int32_t max_act_bits, int32_t max_weight_bits, qs_rtl_params *p)
{
    int32_t act_w = max_act_bits + 1, slice_w = c->weight_path_bits + 1;
    int32_t wb = max_weight_bits < 2 ? 2 : max_weight_bits;
    int32_t slices = (wb + c->weight_path_bits - 1) / c->weight_path_bits;
    memset(p, 0, sizeof *p);
    p->rows = c->rows;
    p->cols = c->cols;
    p->dataflow = c->dataflow == QS_DF_WS ? 0 : c->dataflow == QS_DF_OS ? 1 : 2;
    p->west_w = c->dataflow == QS_DF_IS ? slice_w : act_w;
    p->north_w = c->dataflow == QS_DF_IS ? act_w : slice_w;
    p->wpb = c->weight_path_bits;
    p->shift_w = clog2(slices) < 1 ? 1 : clog2(slices);
    p->acc_w = c->acc_bits;
    p->saturate = c->overflow == QS_OVF_SATURATE;
    p->gate = c->gate;
    p->lookahead = c->lookahead;
    p->off_w = c->lookahead > 0 ? (clog2(c->lookahead + 1) < 1 ? 1 : clog2(c->lookahead + 1)) : 1;
}

static const char *df_name(int32_t d) { return d == 0 ? "WS" : d == 1 ? "OS" : "IS"; }

/* ---- building and loading one model ---- */

static qs_status build_model(qs_rtl_cosim *r, model *m, qs_error *err)
{
    const qs_rtl_params *p = &m->params;
    char pstr[512];
    sfmt(pstr, sizeof pstr,
             "ROWS=%d COLS=%d DATAFLOW=%d WEST_W=%d NORTH_W=%d WPB=%d SHIFT_W=%d ACC_W=%d SATURATE=%d GATE=%d "
             "LOOKAHEAD=%d OFF_W=%d",
             p->rows, p->cols, p->dataflow, p->west_w, p->north_w, p->wpb, p->shift_w, p->acc_w, p->saturate,
             p->gate, p->lookahead, p->off_w);
    /* the key: RTL and driver sources, parameters, Verilator's version */
    static const char *const files[] = {"qs_pe_array.v", "qs_pe.v", "qs_pe_step.vh", "driver/qs_rtl_driver.cpp",
                                        "driver/qs_rtl_abi.h"};
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1200];
        sfmt(path, sizeof path, "%s/%s", r->src, files[i]);
        if (hash_file(path, &h1) || hash_file(path, &h2))
            return qs_fail(err, QS_ERR_IO, "--engine rtl: cannot read %s (set QSIM_RTL_DIR to qsim's rtl/ folder)",
                           path);
    }
    /* FST tracing doubles the generated code: only models that dump have it */
    const int trace = r->o.fst != NULL && !r->fst_taken;
    m->traced = trace;
    char key[900];
    sfmt(key, sizeof key, "%s trace=%d cflags=%s", pstr, trace,
         getenv("QSIM_RTL_CFLAGS") ? getenv("QSIM_RTL_CFLAGS") : "");
    h1 = fnv(fnv(h1, key, strlen(key)), r->vversion, strlen(r->vversion));
    h2 = fnv(fnv(h2, key, strlen(key)), r->vversion, strlen(r->vversion));
    sfmt(m->dir, sizeof m->dir, "%s/%016" PRIx64 "%016" PRIx64, r->cache, h1, h2);
    char so[1200];
    sfmt(so, sizeof so, "%s/qs_rtl.so", m->dir);
    if (!is_file(so)) {
        char msg[700];
        sfmt(msg, sizeof msg, "building the RTL of the %dx%d %s array (%s) with %s into %s", p->rows, p->cols,
                 df_name(p->dataflow), pstr, r->vversion, m->dir);
        if (r->o.note) r->o.note(r->o.note_user, msg);
        double t0 = now_s();
        char tmp[1200], obj[1300], log[1300];
        sfmt(tmp, sizeof tmp, "%s.tmp%ld", m->dir, (long)getpid());
        sfmt(obj, sizeof obj, "%s/obj", tmp);
        sfmt(log, sizeof log, "%s/build.log", tmp);
        if (mkdirs(obj)) return qs_fail(err, QS_ERR_IO, "--engine rtl: cannot create %s: %s", obj, strerror(errno));
        char g[14][48], v1[1200], v2[1200], tscale[] = "--timescale", ts[] = "1ns/1ps";
        sfmt(g[0], 48, "-GROWS=%d", p->rows);
        sfmt(g[1], 48, "-GCOLS=%d", p->cols);
        sfmt(g[2], 48, "-GDATAFLOW=%d", p->dataflow);
        sfmt(g[3], 48, "-GWEST_W=%d", p->west_w);
        sfmt(g[4], 48, "-GNORTH_W=%d", p->north_w);
        sfmt(g[5], 48, "-GWPB=%d", p->wpb);
        sfmt(g[6], 48, "-GSHIFT_W=%d", p->shift_w);
        sfmt(g[7], 48, "-GACC_W=%d", p->acc_w);
        sfmt(g[8], 48, "-GSATURATE=%d", p->saturate);
        sfmt(g[9], 48, "-GGATE=%d", p->gate);
        sfmt(g[10], 48, "-GLOOKAHEAD=%d", p->lookahead);
        sfmt(g[11], 48, "-GOFF_W=%d", p->off_w);
        /* the word observation ports the driver hands out, and the array
         * written as one loop over the PEs' state (rtl/README.md) */
        sfmt(g[12], 48, "-GOBS=1");
        sfmt(g[13], 48, "-GARRAY_STYLE=1");
        sfmt(v1, sizeof v1, "%s/qs_pe_array.v", r->src);
        sfmt(v2, sizeof v2, "%s/qs_pe.v", r->src);
        /* the parameters, for the driver (found through the build folder's -I.) */
        char ph[1300];
        sfmt(ph, sizeof ph, "%s/qs_rtl_params.h", obj);
        FILE *pf = fopen(ph, "w");
        if (!pf) return qs_fail(err, QS_ERR_IO, "--engine rtl: cannot write %s: %s", ph, strerror(errno));
        fprintf(pf,
                "/* written by qsim (sim/rtl_cosim.c): %s */\n#define QS_RTL_ROWS %d\n#define QS_RTL_COLS %d\n"
                "#define QS_RTL_DATAFLOW %d\n#define QS_RTL_WEST_W %d\n#define QS_RTL_NORTH_W %d\n"
                "#define QS_RTL_WPB %d\n#define QS_RTL_SHIFT_W %d\n#define QS_RTL_ACC_W %d\n"
                "#define QS_RTL_SATURATE %d\n#define QS_RTL_GATE %d\n#define QS_RTL_LOOKAHEAD %d\n"
                "#define QS_RTL_OFF_W %d\n",
                pstr, p->rows, p->cols, p->dataflow, p->west_w, p->north_w, p->wpb, p->shift_w, p->acc_w,
                p->saturate, p->gate, p->lookahead, p->off_w);
        if (fclose(pf)) return qs_fail(err, QS_ERR_IO, "--engine rtl: cannot write %s", ph);
        /* one Verilator run builds the model, its runtime and the driver into
         * a shared object (Verilator's "executable", linked with -shared) */
        const char *opt = getenv("QSIM_RTL_CFLAGS");
        char cflags[512], drv[1200], so_name[] = "qs_rtl.so", inc[1200], vinc[1200];
        sfmt(cflags, sizeof cflags, "-fPIC %s", opt ? opt : "-O1 -g0");
        sfmt(inc, sizeof inc, "-I%s/driver", r->src);
        sfmt(vinc, sizeof vinc, "-I%s", r->src); /* qs_pe_step.vh */
        sfmt(drv, sizeof drv, "%s/driver/qs_rtl_driver.cpp", r->src);
        char *va[64]; /* the fixed arguments, 1 optional, 14 parameters, 3 sources and NULL: 45 */
        int na = 0;
        char *fixed[] = {r->verilator, "--cc", "--exe", "--build", "-j", "2", "--Mdir", obj, "--top-module",
                         "qs_pe_array", "--prefix", "Vqs_rtl", tscale, ts, "-CFLAGS", cflags, "-CFLAGS", inc,
                         "-CFLAGS", "-fvisibility=hidden", "-LDFLAGS", "-shared", "-o", so_name, vinc};
        _Static_assert(sizeof fixed / sizeof *fixed + 1 + 14 + 3 + 1 <= sizeof va / sizeof *va, "va too small");
        for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) va[na++] = fixed[k];
        if (trace) va[na++] = "--trace-fst";
        for (int k = 0; k < 14; k++) va[na++] = g[k];
        va[na++] = v1;
        va[na++] = v2;
        va[na++] = drv;
        va[na] = NULL;
        int rc = run(va, log, NULL, 0);
        if (rc)
            return qs_fail(err, QS_ERR_RUN, "--engine rtl: verilator failed (exit %d) for %s; see %s", rc, pstr, log);
        char built[1400], dest[1400];
        sfmt(built, sizeof built, "%s/qs_rtl.so", obj);
        sfmt(dest, sizeof dest, "%s/qs_rtl.so", tmp);
        if (rename(built, dest))
            return qs_fail(err, QS_ERR_IO, "--engine rtl: verilator made no %s; see %s", built, log);
        /* publish atomically: another qsim may have built the same model meanwhile */
        if (rename(tmp, m->dir) != 0 && !is_file(so))
            return qs_fail(err, QS_ERR_IO, "--engine rtl: cannot move %s to %s: %s", tmp, m->dir, strerror(errno));
        if (is_file(so) && strcmp(tmp, m->dir)) {
            char *rm[] = {"rm", "-rf", tmp, NULL};
            (void)run(rm, "/dev/null", NULL, 0);
        }
        r->st.built++;
        r->st.build_seconds += now_s() - t0;
        sfmt(msg, sizeof msg, "built in %.1f s", now_s() - t0);
        if (r->o.note) r->o.note(r->o.note_user, msg);
    }
    m->dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) return qs_fail(err, QS_ERR_RUN, "--engine rtl: cannot load %s: %s", so, dlerror());
    qs_rtl_entry_fn entry;
    *(void **)&entry = dlsym(m->dl, QS_RTL_ENTRY);
    m->api = entry ? entry() : NULL;
    if (!m->api || m->api->abi != QS_RTL_ABI || memcmp(&m->api->params, p, sizeof *p))
        return qs_fail(err, QS_ERR_RUN, "--engine rtl: %s is not the model of %s (delete %s to rebuild it)", so, pstr,
                       m->dir);
    return QS_OK;
}

static qs_status get_model(qs_rtl_cosim *r, const qs_pe_array_cfg *cfg, model **out, qs_error *err)
{
    for (int32_t i = 0; i < r->n_models; i++)
        if (!memcmp(&r->models[i].cfg, cfg, sizeof *cfg)) {
            *out = &r->models[i];
            return QS_OK;
        }
    if (r->n_models == MAX_MODELS)
        return qs_fail(err, QS_ERR_UNSUPPORTED, "--engine rtl: more than %d PE-array configurations", MAX_MODELS);
    model *m = &r->models[r->n_models];
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    /* widths: the network's operands are checked against them at each clock */
    params_of(cfg, r->o.max_act_bits, r->o.max_weight_bits, &m->params);
    qs_status st = build_model(r, m, err);
    if (st) {
        if (m->dl) dlclose(m->dl);
        return st;
    }
    char msg[256];
    const char *fst = NULL;
    if (m->traced) {
        fst = r->o.fst;
        r->fst_taken = 1;
    }
    m->rtl = m->api->open(fst, msg, sizeof msg);
    if (!m->rtl) {
        dlclose(m->dl);
        return qs_fail(err, QS_ERR_RUN, "--engine rtl: %s", msg);
    }
    m->api->view(m->rtl, &m->v_acc, &m->v_accv, &m->v_stat, &m->v_south, &m->v_south_v);
    size_t n = (size_t)cfg->rows * (size_t)cfg->cols;
    if (n > r->cap) {
        qs_free(r->acc);
        qs_free(r->stat);
        qs_free(r->flipped);
        qs_free(r->accv);
        r->acc = qs_malloc(n * sizeof *r->acc);
        r->stat = qs_malloc(n * sizeof *r->stat);
        r->flipped = qs_malloc(n * sizeof *r->flipped);
        r->accv = qs_malloc(n);
        r->cap = n;
        if (!r->acc || !r->stat || !r->flipped || !r->accv) {
            r->cap = 0;
            return qs_fail(err, QS_ERR_NOMEM, "--engine rtl: out of memory");
        }
    }
    r->n_models++;
    r->st.models = r->n_models;
    *out = m;
    return QS_OK;
}

/* ---- the hook ---- */

static int wants_layer(void *user, int32_t layer, const char *name)
{
    qs_rtl_cosim *r = user;
    (void)layer;
    return !r->o.layer || !strcmp(r->o.layer, name);
}

static qs_status tile_begin(void *user, const qs_array_tile_info *t, const qs_pe_array_cfg *cfg, int *follow,
                            qs_error *err)
{
    qs_rtl_cosim *r = user;
    *follow = 0;
    r->cur = NULL;
    if (r->o.layer && strcmp(r->o.layer, t->layer_name)) return QS_OK;
    if (t->tile < r->o.tile_from || t->tile > r->o.tile_to) return QS_OK;
    model *m;
    qs_status st = get_model(r, cfg, &m, err);
    if (st) return st;
    m->api->reset(m->rtl);
    r->cur = m;
    r->tile = *t;
    sfmt(r->tile_layer, sizeof r->tile_layer, "%s", t->layer_name);
    r->tile.layer_name = r->tile_layer;
    r->tile_clock = 0;
    r->st.tiles++;
    *follow = 1;
    return QS_OK;
}

static qs_status mismatch(qs_rtl_cosim *r, uint64_t cycle, const char *what, qs_error *err)
{
    const qs_array_tile_info *t = &r->tile;
    return qs_fail(err, QS_ERR_RUN,
                   "RTL co-simulation mismatch at cycle %" PRIu64 " (clock %" PRIu64 " of tile %" PRId64
                   " of layer '%s', row group %d, outputs from row %u column %u): %s; reproduce: %s --engine rtl"
                   " --trace-layer %s --rtl-tiles %" PRId64 ":%" PRId64,
                   cycle, r->tile_clock, t->tile, t->layer_name, t->group, t->m0, t->n0, what,
                   r->o.repro ? r->o.repro : "qsim run ...", t->layer_name, t->tile, t->tile);
}

static qs_status tick(void *user, uint64_t cycle, const qs_pe_in *in, const qs_pe_out *out, const qs_pe_array *pa,
                      qs_error *err)
{
    qs_rtl_cosim *r = user;
    model *m = r->cur;
    const qs_rtl_params *p = &m->params;
    const int32_t R = p->rows, C = p->cols, W = p->lookahead + 1;
    const int os = p->dataflow == 1;
    char what[300];
    /* the edge inputs must fit the RTL's ports (else the RTL would see other numbers) */
    const int32_t wlo = -(1 << (p->west_w - 1)), whi = (1 << (p->west_w - 1)) - 1;
    const int32_t nlo = -(1 << (p->north_w - 1)), nhi = (1 << (p->north_w - 1)) - 1;
    for (int32_t k = 0; k < R * W; k++)
        if (in->west_valid[k] && (in->west[k] < wlo || in->west[k] > whi)) {
            sfmt(what, sizeof what, "west operand %d of row %d does not fit the RTL's %d-bit port", in->west[k],
                     k / W, p->west_w);
            return mismatch(r, cycle, what, err);
        }
    for (int32_t j = 0; j < C; j++)
        if ((in->north_valid[j] || in->load) && (in->north[j] < nlo || in->north[j] > nhi)) {
            sfmt(what, sizeof what, "north operand %d of column %d does not fit the RTL's %d-bit port",
                     in->north[j], j, p->north_w);
            return mismatch(r, cycle, what, err);
        }
    uint64_t dump = UINT64_MAX;
    if (r->o.fst && cycle >= r->o.fst_from && cycle <= r->o.fst_to) dump = (cycle - r->o.fst_from) * 1000 + 500;
    m->api->tick(m->rtl, in->west, in->west_valid, in->west_shift, in->north, in->north_valid, in->north_shift,
                 in->north_offset, in->clear, in->load, dump);
    uint32_t cnt[3];
    m->api->counts(m->rtl, cnt);
    const size_t n = (size_t)R * (size_t)C;
    const int32_t *acc = m->v_acc;
    if (r->flip && (r->flip_by_clock ? r->st.clocks == r->flip_cycle : cycle == r->flip_cycle) && r->flip_row < R &&
        r->flip_col < C) {
        memcpy(r->flipped, acc, n * sizeof *acc);
        r->flipped[(size_t)r->flip_row * C + r->flip_col] ^= 1;
        acc = r->flipped;
        r->flip = 0; /* once */
    }
    r->st.clocks++;
    r->tile_clock++;
    const uint32_t want[3] = {out->active, out->gated, out->overflows};
    static const char *const cname[3] = {"active (products added)", "gated", "overflow"};
    for (int k = 0; k < 3; k++)
        if (cnt[k] != want[k]) {
            sfmt(what, sizeof what, "%s count: RTL %u, C model %u", cname[k], cnt[k], want[k]);
            return mismatch(r, cycle, what, err);
        }
    /* every PE's state: the C model's gathered into the same layout as the
     * RTL's word ports, compared whole; only a difference walks the PEs (in
     * row-major order, accumulator before valid before stationary) to name
     * the first one */
    qs_pe_array_observe(pa, r->acc, os ? NULL : r->accv, os ? NULL : r->stat);
    if (memcmp(acc, r->acc, n * sizeof *acc) ||
        (!os && (memcmp(m->v_accv, r->accv, n) || memcmp(m->v_stat, r->stat, n * sizeof *r->stat))))
        for (size_t k = 0; k < n; k++) {
            int32_t i = (int32_t)(k / (size_t)C), j = (int32_t)(k % (size_t)C);
            if (acc[k] != r->acc[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) %s: RTL %d, C model %d", i, j, os ? "accumulator" : "partial sum",
                     acc[k], r->acc[k]);
                return mismatch(r, cycle, what, err);
            }
            if (!os && m->v_accv[k] != r->accv[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) partial-sum valid: RTL %u, C model %u", i, j, m->v_accv[k],
                     r->accv[k]);
                return mismatch(r, cycle, what, err);
            }
            if (!os && m->v_stat[k] != r->stat[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) stationary: RTL %d, C model %d", i, j, m->v_stat[k], r->stat[k]);
                return mismatch(r, cycle, what, err);
            }
        }
    r->st.values += 3 + (uint64_t)n * (os ? 1 : 3);
    if (out->south) {
        for (int32_t j = 0; j < C; j++)
            if (m->v_south[j] != out->south[j] || m->v_south_v[j] != out->south_valid[j]) {
                sfmt(what, sizeof what, "south output of column %d (value/valid): RTL %d/%u, C model %d/%u", j,
                     m->v_south[j], m->v_south_v[j], out->south[j], out->south_valid[j]);
                return mismatch(r, cycle, what, err);
            }
        r->st.values += 2 * (uint64_t)C;
    }
    return QS_OK;
}

/* ---- lifetime ---- */

qs_status qs_rtl_cosim_create(const qs_rtl_cosim_opts *opts, qs_rtl_cosim **out, qs_error *err)
{
    *out = NULL;
    qs_rtl_cosim *r = qs_calloc(1, sizeof *r);
    if (!r) return qs_fail(err, QS_ERR_NOMEM, "--engine rtl: out of memory");
    r->o = *opts;
    const char *v = getenv("QSIM_VERILATOR");
    if (v && *v) sfmt(r->verilator, sizeof r->verilator, "%s", v);
    else if (find_in_path("verilator", r->verilator, sizeof r->verilator)) {
        qs_free(r);
        return qs_fail(err, QS_ERR_UNSUPPORTED, "--engine rtl needs verilator (apt install verilator)");
    }
    char *va[] = {r->verilator, "--version", NULL};
    if (run(va, NULL, r->vversion, sizeof r->vversion) != 0 || strncmp(r->vversion, "Verilator", 9)) {
        qs_fail(err, QS_ERR_UNSUPPORTED, "--engine rtl needs verilator (apt install verilator): '%s --version' failed",
                r->verilator);
        qs_free(r);
        return QS_ERR_UNSUPPORTED;
    }
    r->vversion[strcspn(r->vversion, "\r\n")] = 0;
    const char *src = getenv("QSIM_RTL_DIR");
    sfmt(r->src, sizeof r->src, "%s", src && *src ? src : QSIM_RTL_SOURCE_DIR);
    char probe[1200];
    sfmt(probe, sizeof probe, "%s/qs_pe_array.v", r->src);
    if (!r->src[0] || !is_file(probe)) {
        qs_fail(err, QS_ERR_IO, "--engine rtl: no RTL sources at '%s' (set QSIM_RTL_DIR to qsim's rtl/ folder)", r->src);
        qs_free(r);
        return QS_ERR_IO;
    }
    const char *c = opts->cache_dir ? opts->cache_dir : getenv("QSIM_RTL_CACHE");
    if (c && *c) sfmt(r->cache, sizeof r->cache, "%s", c);
    else if ((c = getenv("XDG_CACHE_HOME")) && *c) sfmt(r->cache, sizeof r->cache, "%s/qsim/rtl", c);
    else sfmt(r->cache, sizeof r->cache, "%s/.cache/qsim/rtl", getenv("HOME") ? getenv("HOME") : "/tmp");
    if (mkdirs(r->cache)) {
        qs_fail(err, QS_ERR_IO, "--engine rtl: cannot create the cache folder %s: %s", r->cache, strerror(errno));
        qs_free(r);
        return QS_ERR_IO;
    }
    const char *flip = getenv("QSIM_RTL_FLIP");
    if (flip && *flip) {
        unsigned long long cy;
        int32_t i, j;
        r->flip_by_clock = flip[0] == '#';
        if (sscanf(flip + r->flip_by_clock, "%llu,%d,%d", &cy, &i, &j) != 3 || i < 0 || j < 0) {
            qs_fail(err, QS_ERR_ARG, "QSIM_RTL_FLIP='%s': expected CYCLE,ROW,COL or #CLOCK,ROW,COL", flip);
            qs_free(r);
            return QS_ERR_ARG;
        }
        r->flip = 1;
        r->flip_cycle = cy;
        r->flip_row = i;
        r->flip_col = j;
    }
    r->hook.user = r;
    r->hook.wants_layer = wants_layer;
    r->hook.tile_begin = tile_begin;
    r->hook.tick = tick;
    *out = r;
    return QS_OK;
}

const qs_array_hook *qs_rtl_cosim_hook(qs_rtl_cosim *r) { return &r->hook; }

void qs_rtl_cosim_stats_get(const qs_rtl_cosim *r, qs_rtl_cosim_stats *out) { *out = r->st; }

qs_status qs_rtl_cosim_prepare(qs_rtl_cosim *r, const qs_pe_array_cfg *cfg, const char **dir, qs_error *err)
{
    model *m;
    qs_status st = get_model(r, cfg, &m, err);
    if (!st && dir) *dir = m->dir;
    return st;
}

void qs_rtl_cosim_destroy(qs_rtl_cosim *r)
{
    if (!r) return;
    for (int32_t i = 0; i < r->n_models; i++) {
        if (r->models[i].rtl) r->models[i].api->close(r->models[i].rtl);
        /* the shared object stays loaded: Verilator's runtime registers
         * process-wide state (atexit handlers) that must not be unmapped */
    }
    qs_free(r->acc);
    qs_free(r->stat);
    qs_free(r->flipped);
    qs_free(r->accv);
    qs_free(r);
}
