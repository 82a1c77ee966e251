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
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* One entry of the pipeline between the simulator's thread and the worker
 * (see "the hook" below): a tile's start, or one clock's edge inputs and what
 * the C model shows after it (acc, accv, stat row-major, as
 * qs_pe_array_observe writes them). */
enum { SLOT_TILE, SLOT_CLOCK };
typedef struct {
    int kind;
    /* SLOT_TILE */
    model *m;
    qs_array_tile_info tile;
    char layer[256];
    /* SLOT_CLOCK */
    uint64_t cycle, dump;
    int32_t *west, *north, *south, *acc, *stat;
    uint8_t *west_valid, *west_shift, *north_valid, *north_shift, *north_offset, *south_valid, *accv;
    uint8_t clear, load, has_south;
    uint32_t want[3]; /* active, gated, overflow counts */
    int32_t *i32;
    uint8_t *u8;      /* the storage the arrays point into */
} slot;

/* Slots in flight: as many as fit in RING_BYTES (so that their copies stay
 * in the caches), at most RING_MAX, at least RING_MIN. The simulator's
 * thread, finding the ring full, sleeps until half of it is consumed: the
 * more slots, the fewer times the two threads wake each other. */
#define RING_BYTES (1u << 20)
#define RING_MAX 512
#define RING_MIN 4

struct qs_rtl_cosim {
    qs_rtl_cosim_opts o;
    char cache[1024], src[1024], verilator[1024];
    char vversion[256];
    model models[MAX_MODELS];
    int32_t n_models;
    model *cur;                 /* the model of the followed tile (simulator's side) */
    int fst_taken;              /* the FST goes to the first model co-simulated */
    /* the pipeline: slots [tail, head) are filled and not yet consumed */
    slot *ring;
    uint64_t ring_cap;          /* slots */
    size_t slot_lanes, slot_pes;
    _Atomic uint64_t head, tail;
    _Atomic int failed, quit, worker_sleeps, sim_sleeps;
    _Atomic uint64_t sim_target; /* the simulator's thread sleeps until at most this many slots are left */
    int threaded;               /* a worker thread consumes the slots (else post() does) */
    int sync_made;              /* mu and the two conditions exist */
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t wake_worker, wake_sim;
    /* the worker's side: the model and tile of the slots it consumes, and
     * the first mismatch */
    model *w_cur;
    qs_array_tile_info w_tile;
    char w_tile_layer[256];
    uint64_t w_tile_clock;      /* clocks since the tile began */
    qs_error w_err;
    /* a copy of the RTL's accumulators for the one clock that QSIM_RTL_FLIP alters */
    int32_t *flipped;
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
    /* the model's optimization flags: -O2 (docs/performance-rtl.md) */
    const char *opt = getenv("QSIM_RTL_CFLAGS") && *getenv("QSIM_RTL_CFLAGS") ? getenv("QSIM_RTL_CFLAGS") : "-O2";
    sfmt(key, sizeof key, "%s trace=%d opt=%s", pstr, trace, opt);
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
        char cflags[600], drv[1200], so_name[] = "qs_rtl.so", inc[1200], vinc[1200];
        char opt_fast[] = "OPT_FAST=", opt_global[] = "OPT_GLOBAL=";
        /* Verilator's makefile puts OPT_FAST (the per-clock code) and
         * OPT_GLOBAL (its runtime and the driver) after CFLAGS, with -Os as
         * their default, which would override the -O level here: both are
         * emptied (make gets them unquoted, so they cannot carry the flags) */
        sfmt(cflags, sizeof cflags, "-fPIC -g0 %s", opt);
        sfmt(inc, sizeof inc, "-I%s/driver", r->src);
        sfmt(vinc, sizeof vinc, "-I%s", r->src); /* qs_pe_step.vh */
        sfmt(drv, sizeof drv, "%s/driver/qs_rtl_driver.cpp", r->src);
        char *va[64]; /* the fixed arguments, 1 optional, 14 parameters, 3 sources and NULL: 45 */
        int na = 0;
        /* -O3: Verilator's own slower optimizations (3% fewer instructions
         * per clock on a 16x16 array, docs/performance-rtl.md) */
        char *fixed[] = {r->verilator, "-O3", "--cc", "--exe", "--build", "-j", "2", "--Mdir", obj, "--top-module",
                         "qs_pe_array", "--prefix", "Vqs_rtl", tscale, ts, "-CFLAGS", cflags, "-CFLAGS", inc,
                         "-CFLAGS", "-fvisibility=hidden", "-LDFLAGS", "-shared", "-o", so_name, vinc,
                         "-MAKEFLAGS", opt_fast, "-MAKEFLAGS", opt_global};
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

static void wait_for_worker(qs_rtl_cosim *r, uint64_t left);

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
        if (r->threaded) wait_for_worker(r, 0); /* it may be using the old copy */
        qs_free(r->flipped);
        r->flipped = qs_malloc(n * sizeof *r->flipped);
        r->cap = n;
        if (!r->flipped) {
            r->cap = 0;
            return qs_fail(err, QS_ERR_NOMEM, "--engine rtl: out of memory");
        }
    }
    r->n_models++;
    r->st.models = r->n_models;
    *out = m;
    return QS_OK;
}

/* ---- the hook: a two-stage pipeline ----
 *
 * The simulator's thread runs the C model and, for every followed clock,
 * copies the edge inputs and the C model's state (qs_pe_array_observe) into a
 * slot of a ring; a worker thread ticks the Verilated model with the slot's
 * inputs and compares. The two halves of a co-simulated clock then run on two
 * cores at once (docs/performance-rtl.md). The worker takes the slots in
 * order and stops at the first difference, so the message is the one a
 * single thread gives; the simulator's thread learns of it at its next clock
 * (or in qs_rtl_cosim_finish) and stops the run. QSIM_RTL_THREADS=1 compares
 * each clock on the simulator's thread instead, through the same code. */

static int wants_layer(void *user, int32_t layer, const char *name)
{
    qs_rtl_cosim *r = user;
    (void)layer;
    return !r->o.layer || !strcmp(r->o.layer, name);
}

static qs_status mismatch(qs_rtl_cosim *r, uint64_t cycle, const char *what, qs_error *err)
{
    const qs_array_tile_info *t = &r->w_tile;
    return qs_fail(err, QS_ERR_RUN,
                   "RTL co-simulation mismatch at cycle %" PRIu64 " (clock %" PRIu64 " of tile %" PRId64
                   " of layer '%s', row group %d, outputs from row %u column %u): %s; reproduce: %s --engine rtl"
                   " --trace-layer %s --rtl-tiles %" PRId64 ":%" PRId64,
                   cycle, r->w_tile_clock, t->tile, t->layer_name, t->group, t->m0, t->n0, what,
                   r->o.repro ? r->o.repro : "qsim run ...", t->layer_name, t->tile, t->tile);
}

/* A tile starts: reset the model, remember where we are (worker side). */
static void begin_tile(qs_rtl_cosim *r, slot *s)
{
    s->m->api->reset(s->m->rtl);
    r->w_cur = s->m;
    r->w_tile = s->tile;
    sfmt(r->w_tile_layer, sizeof r->w_tile_layer, "%s", s->layer);
    r->w_tile.layer_name = r->w_tile_layer;
    r->w_tile_clock = 0;
}

/* One clock: tick the RTL with the slot's inputs and compare it with the C
 * model's state the slot holds (worker side, or inline). */
static qs_status check_clock(qs_rtl_cosim *r, const slot *s, qs_error *err)
{
    model *m = r->w_cur;
    const qs_rtl_params *p = &m->params;
    const int32_t R = p->rows, C = p->cols, W = p->lookahead + 1;
    const int os = p->dataflow == 1;
    const uint64_t cycle = s->cycle;
    char what[300];
    /* the edge inputs must fit the RTL's ports (else the RTL would see other numbers) */
    const int32_t wlo = -(1 << (p->west_w - 1)), whi = (1 << (p->west_w - 1)) - 1;
    const int32_t nlo = -(1 << (p->north_w - 1)), nhi = (1 << (p->north_w - 1)) - 1;
    for (int32_t k = 0; k < R * W; k++)
        if (s->west_valid[k] && (s->west[k] < wlo || s->west[k] > whi)) {
            sfmt(what, sizeof what, "west operand %d of row %d does not fit the RTL's %d-bit port", s->west[k],
                 k / W, p->west_w);
            return mismatch(r, cycle, what, err);
        }
    for (int32_t j = 0; j < C; j++)
        if ((s->north_valid[j] || s->load) && (s->north[j] < nlo || s->north[j] > nhi)) {
            sfmt(what, sizeof what, "north operand %d of column %d does not fit the RTL's %d-bit port", s->north[j],
                 j, p->north_w);
            return mismatch(r, cycle, what, err);
        }
    m->api->tick(m->rtl, s->west, s->west_valid, s->west_shift, s->north, s->north_valid, s->north_shift,
                 s->north_offset, s->clear, s->load, s->dump);
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
    r->w_tile_clock++;
    static const char *const cname[3] = {"active (products added)", "gated", "overflow"};
    for (int k = 0; k < 3; k++)
        if (cnt[k] != s->want[k]) {
            sfmt(what, sizeof what, "%s count: RTL %u, C model %u", cname[k], cnt[k], s->want[k]);
            return mismatch(r, cycle, what, err);
        }
    /* every PE's state: the C model's, gathered into the same layout as the
     * RTL's word ports, compared whole; only a difference walks the PEs (in
     * row-major order, accumulator before valid before stationary) to name
     * the first one */
    if (memcmp(acc, s->acc, n * sizeof *acc) ||
        (!os && (memcmp(m->v_accv, s->accv, n) || memcmp(m->v_stat, s->stat, n * sizeof *s->stat))))
        for (size_t k = 0; k < n; k++) {
            int32_t i = (int32_t)(k / (size_t)C), j = (int32_t)(k % (size_t)C);
            if (acc[k] != s->acc[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) %s: RTL %d, C model %d", i, j, os ? "accumulator" : "partial sum",
                     acc[k], s->acc[k]);
                return mismatch(r, cycle, what, err);
            }
            if (!os && m->v_accv[k] != s->accv[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) partial-sum valid: RTL %u, C model %u", i, j, m->v_accv[k],
                     s->accv[k]);
                return mismatch(r, cycle, what, err);
            }
            if (!os && m->v_stat[k] != s->stat[k]) {
                sfmt(what, sizeof what, "PE(%d,%d) stationary: RTL %d, C model %d", i, j, m->v_stat[k], s->stat[k]);
                return mismatch(r, cycle, what, err);
            }
        }
    r->st.values += 3 + (uint64_t)n * (os ? 1 : 3);
    if (s->has_south) {
        for (int32_t j = 0; j < C; j++)
            if (m->v_south[j] != s->south[j] || m->v_south_v[j] != s->south_valid[j]) {
                sfmt(what, sizeof what, "south output of column %d (value/valid): RTL %d/%u, C model %d/%u", j,
                     m->v_south[j], m->v_south_v[j], s->south[j], s->south_valid[j]);
                return mismatch(r, cycle, what, err);
            }
        r->st.values += 2 * (uint64_t)C;
    }
    return QS_OK;
}

/* Carry out one slot; the first failure is kept and every later slot is
 * skipped, as is every slot left when the run is torn down. */
static void consume(qs_rtl_cosim *r, slot *s)
{
    if (atomic_load(&r->failed) || atomic_load(&r->quit)) return;
    if (s->kind == SLOT_TILE) {
        begin_tile(r, s);
        return;
    }
    if (check_clock(r, s, &r->w_err)) atomic_store(&r->failed, 1);
}

/* A short spin before sleeping: the other side usually answers within a
 * slot's time (microseconds), and a sleep and wake-up cost more. */
enum { SPIN = 2000 };

static void *worker_main(void *arg)
{
    qs_rtl_cosim *r = arg;
    uint64_t tail = atomic_load(&r->tail);
    for (;;) {
        uint64_t head = atomic_load(&r->head);
        for (int k = 0; head == tail && k < SPIN; k++) head = atomic_load(&r->head);
        if (head == tail) {
            pthread_mutex_lock(&r->mu);
            atomic_store(&r->worker_sleeps, 1);
            while ((head = atomic_load(&r->head)) == tail && !atomic_load(&r->quit))
                pthread_cond_wait(&r->wake_worker, &r->mu);
            atomic_store(&r->worker_sleeps, 0);
            pthread_mutex_unlock(&r->mu);
            if (head == tail) return NULL; /* quit, nothing left */
        }
        consume(r, &r->ring[tail % r->ring_cap]);
        atomic_store(&r->tail, ++tail);
        if (atomic_load(&r->sim_sleeps) && atomic_load(&r->head) - tail <= atomic_load(&r->sim_target)) {
            pthread_mutex_lock(&r->mu);
            pthread_cond_signal(&r->wake_sim);
            pthread_mutex_unlock(&r->mu);
        }
    }
}

/* The simulator's side: wait until at most `left` slots are unconsumed. */
static void wait_for_worker(qs_rtl_cosim *r, uint64_t left)
{
    uint64_t head = atomic_load(&r->head);
    for (int k = 0; head - atomic_load(&r->tail) > left && k < SPIN; k++)
        ;
    if (head - atomic_load(&r->tail) <= left) return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->sim_target, left);
    atomic_store(&r->sim_sleeps, 1);
    while (head - atomic_load(&r->tail) > left) pthread_cond_wait(&r->wake_sim, &r->mu);
    atomic_store(&r->sim_sleeps, 0);
    pthread_mutex_unlock(&r->mu);
}

/* A free slot to fill (the simulator's side). */
static slot *claim(qs_rtl_cosim *r)
{
    /* a full ring: let the worker drain half of it before filling again, so
     * that the two threads do not wake each other at every clock */
    if (r->threaded && atomic_load(&r->head) - atomic_load(&r->tail) == r->ring_cap)
        wait_for_worker(r, r->ring_cap / 2);
    return &r->ring[atomic_load(&r->head) % r->ring_cap];
}

/* Hand the filled slot over (or carry it out now without a worker). */
static qs_status post(qs_rtl_cosim *r, qs_error *err)
{
    if (!r->threaded) {
        consume(r, &r->ring[atomic_load(&r->head) % r->ring_cap]);
    } else {
        atomic_store(&r->head, atomic_load(&r->head) + 1);
        if (atomic_load(&r->worker_sleeps)) {
            pthread_mutex_lock(&r->mu);
            pthread_cond_signal(&r->wake_worker);
            pthread_mutex_unlock(&r->mu);
        }
    }
    if (atomic_load(&r->failed)) {
        *err = r->w_err;
        return QS_ERR_RUN;
    }
    return QS_OK;
}

static void free_slots(qs_rtl_cosim *r)
{
    for (uint64_t k = 0; r->ring && k < r->ring_cap; k++) {
        qs_free(r->ring[k].i32);
        qs_free(r->ring[k].u8);
    }
    qs_free(r->ring);
    r->ring = NULL;
    r->ring_cap = 0;
    r->slot_lanes = r->slot_pes = 0;
}

/* The ring, its slots sized for arrays up to `lanes` edge lanes and `n` PEs
 * (the worker must be idle: it may be reading the old ones). */
static qs_status size_slots(qs_rtl_cosim *r, size_t lanes, size_t n, qs_error *err)
{
    if (lanes <= r->slot_lanes && n <= r->slot_pes) return QS_OK;
    if (r->threaded) wait_for_worker(r, 0);
    lanes = lanes > r->slot_lanes ? lanes : r->slot_lanes;
    n = n > r->slot_pes ? n : r->slot_pes;
    free_slots(r);
    /* west, north, south | acc, stat ; west_valid, west_shift, north_valid,
     * north_shift, north_offset, south_valid | accv */
    const size_t n32 = 3 * lanes + 2 * n, n8 = 6 * lanes + n;
    uint64_t cap = RING_BYTES / (n32 * sizeof(int32_t) + n8 + sizeof(slot));
    cap = cap > RING_MAX ? RING_MAX : cap < RING_MIN ? RING_MIN : cap;
    r->ring = qs_calloc(cap, sizeof *r->ring);
    if (!r->ring) return qs_fail(err, QS_ERR_NOMEM, "--engine rtl: out of memory");
    r->ring_cap = cap;
    for (uint64_t k = 0; k < cap; k++) {
        slot *s = &r->ring[k];
        s->i32 = qs_malloc(n32 * sizeof *s->i32);
        s->u8 = qs_malloc(n8);
        if (!s->i32 || !s->u8) {
            free_slots(r);
            return qs_fail(err, QS_ERR_NOMEM, "--engine rtl: out of memory");
        }
        s->west = s->i32;
        s->north = s->i32 + lanes;
        s->south = s->i32 + 2 * lanes;
        s->acc = s->i32 + 3 * lanes;
        s->stat = s->acc + n;
        s->west_valid = s->u8;
        s->west_shift = s->u8 + lanes;
        s->north_valid = s->u8 + 2 * lanes;
        s->north_shift = s->u8 + 3 * lanes;
        s->north_offset = s->u8 + 4 * lanes;
        s->south_valid = s->u8 + 5 * lanes;
        s->accv = s->u8 + 6 * lanes;
    }
    r->slot_lanes = lanes;
    r->slot_pes = n;
    return QS_OK;
}

static qs_status tile_begin(void *user, const qs_array_tile_info *t, const qs_pe_array_cfg *cfg, int *follow,
                            qs_error *err)
{
    qs_rtl_cosim *r = user;
    *follow = 0;
    r->cur = NULL;
    if (atomic_load(&r->failed)) {
        *err = r->w_err;
        return QS_ERR_RUN;
    }
    if (r->o.layer && strcmp(r->o.layer, t->layer_name)) return QS_OK;
    if (t->tile < r->o.tile_from || t->tile > r->o.tile_to) return QS_OK;
    model *m;
    qs_status st = get_model(r, cfg, &m, err);
    if (st) return st;
    const qs_rtl_params *p = &m->params;
    size_t lanes = (size_t)p->rows * (size_t)(p->lookahead + 1);
    if ((size_t)p->cols > lanes) lanes = (size_t)p->cols;
    st = size_slots(r, lanes, (size_t)p->rows * (size_t)p->cols, err);
    if (st) return st;
    slot *s = claim(r);
    s->kind = SLOT_TILE;
    s->m = m;
    s->tile = *t;
    sfmt(s->layer, sizeof s->layer, "%s", t->layer_name);
    r->cur = m;
    r->st.tiles++;
    *follow = 1;
    return post(r, err);
}

static qs_status tick(void *user, uint64_t cycle, const qs_pe_in *in, const qs_pe_out *out, const qs_pe_array *pa,
                      qs_error *err)
{
    qs_rtl_cosim *r = user;
    const qs_rtl_params *p = &r->cur->params;
    const size_t R = (size_t)p->rows, C = (size_t)p->cols, W = (size_t)p->lookahead + 1;
    const int os = p->dataflow == 1;
    slot *s = claim(r);
    s->kind = SLOT_CLOCK;
    s->cycle = cycle;
    s->dump = UINT64_MAX;
    if (r->o.fst && cycle >= r->o.fst_from && cycle <= r->o.fst_to) s->dump = (cycle - r->o.fst_from) * 1000 + 500;
    memcpy(s->west, in->west, R * W * sizeof *s->west);
    memcpy(s->west_valid, in->west_valid, R * W);
    if (in->west_shift) memcpy(s->west_shift, in->west_shift, R);
    else memset(s->west_shift, 0, R);
    memcpy(s->north, in->north, C * sizeof *s->north);
    memcpy(s->north_valid, in->north_valid, C);
    if (in->north_shift) memcpy(s->north_shift, in->north_shift, C);
    else memset(s->north_shift, 0, C);
    if (in->north_offset) memcpy(s->north_offset, in->north_offset, C);
    else memset(s->north_offset, 0, C);
    s->clear = in->clear;
    s->load = in->load;
    s->want[0] = out->active;
    s->want[1] = out->gated;
    s->want[2] = out->overflows;
    qs_pe_array_observe(pa, s->acc, os ? NULL : s->accv, os ? NULL : s->stat);
    s->has_south = out->south != NULL;
    if (out->south) {
        memcpy(s->south, out->south, C * sizeof *s->south);
        memcpy(s->south_valid, out->south_valid, C);
    }
    return post(r, err);
}

qs_status qs_rtl_cosim_finish(qs_rtl_cosim *r, qs_error *err)
{
    if (r->threaded) wait_for_worker(r, 0);
    if (atomic_load(&r->failed)) {
        *err = r->w_err;
        return QS_ERR_RUN;
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
    /* the worker (QSIM_RTL_THREADS=1: none; a thread that cannot start: none) */
    const char *nt = getenv("QSIM_RTL_THREADS");
    if (nt && *nt && strcmp(nt, "1") && strcmp(nt, "2")) {
        qs_fail(err, QS_ERR_ARG, "QSIM_RTL_THREADS='%s': expected 1 (compare on the simulator's thread) or 2", nt);
        qs_free(r);
        return QS_ERR_ARG;
    }
    if (!(nt && !strcmp(nt, "1"))) {
        r->sync_made = !pthread_mutex_init(&r->mu, NULL);
        if (r->sync_made && pthread_cond_init(&r->wake_worker, NULL)) {
            pthread_mutex_destroy(&r->mu);
            r->sync_made = 0;
        }
        if (r->sync_made && pthread_cond_init(&r->wake_sim, NULL)) {
            pthread_cond_destroy(&r->wake_worker);
            pthread_mutex_destroy(&r->mu);
            r->sync_made = 0;
        }
        r->threaded = r->sync_made && !pthread_create(&r->worker, NULL, worker_main, r);
    }
    r->hook.user = r;
    r->hook.wants_layer = wants_layer;
    r->hook.tile_begin = tile_begin;
    r->hook.tick = tick;
    *out = r;
    return QS_OK;
}

const qs_array_hook *qs_rtl_cosim_hook(qs_rtl_cosim *r) { return &r->hook; }

void qs_rtl_cosim_stats_get(qs_rtl_cosim *r, qs_rtl_cosim_stats *out)
{
    if (r->threaded) wait_for_worker(r, 0); /* it counts the clocks it compares */
    *out = r->st;
}

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
    if (r->threaded) { /* first: the worker uses the models (slots not yet taken are skipped) */
        pthread_mutex_lock(&r->mu);
        atomic_store(&r->quit, 1);
        pthread_cond_signal(&r->wake_worker);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->worker, NULL);
    }
    for (int32_t i = 0; i < r->n_models; i++) {
        if (r->models[i].rtl) r->models[i].api->close(r->models[i].rtl);
        /* the shared object stays loaded: Verilator's runtime registers
         * process-wide state (atexit handlers) that must not be unmapped */
    }
    if (r->sync_made) {
        pthread_cond_destroy(&r->wake_sim);
        pthread_cond_destroy(&r->wake_worker);
        pthread_mutex_destroy(&r->mu);
    }
    free_slots(r);
    qs_free(r->flipped);
    qs_free(r);
}
