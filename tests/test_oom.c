/* Allocation-failure injection through qsim's allocation function
 * (models/qs_alloc.h, the lua_Alloc-style hook behind qsim_set_allocator).
 *
 * A representative run (configuration and technology table, network load,
 * compile, both engines, JSON and CSV report; a SCALE-Sim configuration and
 * topology with its read replay and SCALE-Sim's report files) is repeated
 * with the Nth allocation failing, for every N up to the number the run
 * makes. Each attempt must end in a status with a message (out of memory,
 * or another error), never a crash; when it ends, every block the library
 * took must have been given back (the test's allocator counts them, so this
 * leak check needs no sanitizer; the sanitizer build adds LeakSanitizer's
 * and AddressSanitizer's own checks); a run that recovered from a failed
 * allocation (an allocation with a fallback) must give the same report.
 * The allocator also checks the contract qsim promises it: the osize of
 * every free and resize is the size that block was given, and no request
 * is for 0 bytes.
 *
 * The hook is a function pointer, not a link-time wrapper, so this runs the
 * same under GCC, Clang, the sanitizers and any linker; test_api does the
 * same through the public API and the shared library. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler.h"
#include "qs_alloc.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_scalesim.h"
#include "report.h"
#include "scalesim_reads.h"
#include "sim.h"

/* ---- the counting, failing allocator ------------------------------------- */

/* Each block carries the size it was given, so osize can be checked. */
typedef union {
    size_t size;
    max_align_t align;
} test_header;

typedef struct {
    long fail_at;        /* the request that fails (1-based; 0 = none) */
    long requests;       /* allocation and resize requests so far */
    long live_blocks;    /* blocks given out and not yet given back */
    long long live_bytes;
    long bad_osize;      /* frees/resizes whose osize was not the block's size */
    long zero_requests;  /* requests for 0 bytes (never made, says the contract) */
} test_alloc_state;

static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    test_alloc_state *s = ud;
    test_header *h = ptr ? (test_header *)ptr - 1 : NULL;
    if (h && h->size != osize) s->bad_osize++;
    if (nsize == 0) {
        if (!ptr) {
            s->zero_requests++;
            return NULL;
        }
        s->live_blocks--;
        s->live_bytes -= (long long)osize;
        free(h);
        return NULL;
    }
    if (++s->requests == s->fail_at) return NULL;
    test_header *n = realloc(h, sizeof *n + nsize);
    if (!n) return NULL;
    if (!h) s->live_blocks++;
    s->live_bytes += (long long)nsize - (long long)(h ? osize : 0);
    n->size = nsize;
    return n + 1;
}

static test_alloc_state g_alloc;

/* ---- the representative runs ---------------------------------------------- */

/* The configuration overrides of the run: the preset's memory system, or the
 * bank-level DRAM model fed by a non-blocking DMA engine (sim/dram.c, sim/dma.c). */
static const char *const SETS_SIMPLE[] = {"array.zero_skip=both", "buffer.weight.size_kib=1"};
static const char *const SETS_BANK[] = {"array.zero_skip=both", "buffer.weight.size_kib=1", "dram.model=hbm2",
                                        "dma.outstanding=4", "dma.request_bytes=64", "dma.separate_write_engine=1"};
static const char *const *g_sets = SETS_SIMPLE;
static int g_n_sets = 2;

/* One .qbin run; returns the first status that is not QS_OK (QS_OK if all
 * went through) and leaves its message in *e. Everything it made is freed. */
static qs_status net_run(const char *arch_path, const char *net_path, const char *tmpdir, qs_error *e)
{
    qs_arch arch;
    qs_tech tech;
    qs_net *net = NULL;
    qs_prog *prog = NULL;
    qs_sim *sim = NULL;
    qs_layer_stats *layers = NULL;
    qs_status st = qs_arch_load(arch_path, g_sets, g_n_sets, &arch, e);
    if (!st) st = qs_tech_load(arch.tech_table, &arch, 0, &tech, e);
    if (!st) st = qs_net_load(net_path, &net, e);
    if (!st) st = qs_compile(net, &arch, &prog, e);
    for (int k = 0; k < 2 && !st; k++) {
        st = qs_sim_create(net, prog, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &sim, e);
        if (!st) st = qs_sim_run(sim, e);
        if (!st && k == 1) {
            layers = qs_calloc((size_t)net->n_layers, sizeof *layers);
            if (!layers) {
                st = qs_fail(e, QS_ERR_NOMEM, "test: out of memory");
            } else {
                for (int32_t li = 0; li < net->n_layers; li++) layers[li] = *qs_sim_layer_stats(sim, li);
                qs_report rep = {net, prog, &arch, &tech, net_path, arch_path, "detailed", 1, layers, 0, 0, NULL, 0.0, NULL};
                char path[512];
                snprintf(path, sizeof path, "%s/run.json", tmpdir);
                st = qs_report_write_json(&rep, path, e);
                snprintf(path, sizeof path, "%s/run.csv", tmpdir);
                if (!st) st = qs_report_write_csv(&rep, path, e);
            }
        }
        qs_sim_destroy(sim);
        sim = NULL;
    }
    qs_free(layers);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return st;
}

/* One topology layer on one engine, as `qsim scalesim` runs it: its own
 * network, input and program, then SCALE-Sim's read replay (CALC mode). */
static qs_status topo_layer_run(const qs_scalesim_layer *row, int32_t index, const qs_arch *arch, qs_engine engine,
                                qs_topo_layer *res, qs_error *e)
{
    qs_scalesim_opts opts;
    qs_scalesim_opts_default(&opts);
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
        qs_ssreads r;
        st = qs_ssreads_layer(row, arch, QS_SSREADS_DIRECT_LIMIT, &r, e);
        if (!st && r.total_cycles != res->stats.ss.total_cycles)
            st = qs_fail(e, QS_ERR_RUN, "test: the read replay counts %llu cycles, the engine %llu",
                         (unsigned long long)r.total_cycles, (unsigned long long)res->stats.ss.total_cycles);
        if (!st)
            for (int i = 0; i < 2; i++) res->stats.ss.dram_reads[i] = r.dram_reads[i];
    }
    qs_free(x);
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return st;
}

/* A SCALE-Sim run: configuration, topology, technology table, every layer
 * on both engines, the JSON report and SCALE-Sim's report files. */
static qs_status topo_run(const char *cfg_path, const char *topo_path, const char *tmpdir, qs_error *e)
{
    qs_arch arch;
    qs_scalesim_cfg sscfg;
    qs_scalesim_topo topo;
    qs_tech tech;
    qs_topo_layer *res = NULL;
    memset(&topo, 0, sizeof topo);
    qs_status st = qs_scalesim_load_config(cfg_path, NULL, 0, &arch, &sscfg, e);
    if (!st) st = qs_scalesim_load_topology(topo_path, -1, &topo, e);
    if (!st) st = qs_tech_load(arch.tech_table, &arch, 0, &tech, e);
    if (!st && !(res = qs_calloc((size_t)topo.n_layers, sizeof *res))) st = qs_fail(e, QS_ERR_NOMEM, "test: out of memory");
    for (int k = 0; k < 2 && !st; k++)
        for (int32_t i = 0; i < topo.n_layers && !st; i++)
            st = topo_layer_run(&topo.layers[i], i, &arch, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &res[i], e);
    if (!st) {
        qs_scalesim_opts opts;
        qs_scalesim_opts_default(&opts);
        qs_topo_report rep = {&arch, &tech, &sscfg, &opts, topo_path, cfg_path, "detailed", topo.gemm, topo.n_layers,
                              res, 0.0, NULL};
        char path[512];
        snprintf(path, sizeof path, "%s/run.json", tmpdir);
        st = qs_topo_report_write_json(&rep, path, e);
        snprintf(path, sizeof path, "%s/reports", tmpdir);
        if (!st) st = qs_scalesim_write_reports(&rep, path, e);
    }
    qs_free(res);
    qs_scalesim_topo_free(&topo);
    return st;
}

/* ---- every allocation fails once ----------------------------------------- */

/* The whole file, NUL-terminated (the C library's malloc: not counted). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1))) {
            if (fread(b, 1, (size_t)n, f) != (size_t)n) {
                free(b);
                b = NULL;
            } else
                b[n] = 0;
        }
    }
    fclose(f);
    return b;
}

typedef qs_status (*run_fn)(const char *config, const char *input, const char *tmpdir, qs_error *e);

static void remove_outputs(const char *dir)
{
    static const char *const names[] = {"run.json", "run.csv", "reports/COMPUTE_REPORT.csv",
                                        "reports/BANDWIDTH_REPORT.csv", "reports/DETAILED_ACCESS_REPORT.csv",
                                        "reports"};
    char path[1100];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0) rmdir(path);
    }
}

/* Runs `run` once to count its allocations, then once per allocation with
 * that one failing; `min_requests` guards against a run that silently
 * stopped allocating through the hook. */
static void run_every_failure(run_fn run, const char *config, const char *input, const char *name, long min_requests)
{
    char dir[] = "/tmp/qsim_oomXXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    qs_error e;
    memset(&g_alloc, 0, sizeof g_alloc);
    qs_set_allocator(test_alloc, &g_alloc);
    qs_report_route_cjson(1);
    qs_status ok = run(config, input, dir, &e);
    if (ok) fprintf(stderr, "\n  the run itself fails: %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(ok, QS_OK);
    CU_ASSERT_EQUAL(g_alloc.live_blocks, 0);
    CU_ASSERT_EQUAL(g_alloc.live_bytes, 0);
    const long total = g_alloc.requests;
    char jpath[1100];
    snprintf(jpath, sizeof jpath, "%s/run.json", dir);
    char *want = slurp(jpath);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    long nomem = 0, other = 0, passed = 0, leaked = 0;
    for (long n = 1; n <= total; n++) {
        remove_outputs(dir);
        g_alloc.fail_at = n;
        g_alloc.requests = 0;
        e.msg[0] = 0;
        qs_status st = run(config, input, dir, &e);
        if (g_alloc.live_blocks != 0 || g_alloc.live_bytes != 0) {
            if (!leaked++)
                fprintf(stderr, "\n  %s: allocation %ld of %ld failed, %ld blocks (%lld bytes) were not given back\n",
                        name, n, total, g_alloc.live_blocks, g_alloc.live_bytes);
            g_alloc.live_blocks = 0;
            g_alloc.live_bytes = 0;
        }
        if (st == QS_OK) { /* an allocation with a fallback (huge pages, a cache): same answers */
            passed++;
            char *got = slurp(jpath);
            if (!got || strcmp(got, want) != 0) {
                fprintf(stderr, "\n  %s: allocation %ld of %ld failed, the run went on and its report differs\n", name,
                        n, total);
                CU_FAIL("a run that recovered from a failed allocation changed its answers");
            }
            free(got);
        } else if (st == QS_ERR_NOMEM)
            nomem++;
        else
            other++;
        if (st != QS_OK && !e.msg[0]) {
            fprintf(stderr, "\n  %s: allocation %ld of %ld: status %d without a message\n", name, n, total, (int)st);
            CU_FAIL("a failed run without a message");
        }
        if (st != QS_OK && st != QS_ERR_NOMEM && !strstr(e.msg, "memory"))
            fprintf(stderr, "\n  %s: allocation %ld: status %d: %s\n", name, n, (int)st, e.msg);
    }
    qs_set_allocator(NULL, NULL);
    qs_report_route_cjson(0);
    CU_ASSERT_EQUAL(leaked, 0);
    CU_ASSERT_EQUAL(g_alloc.bad_osize, 0);
    CU_ASSERT_EQUAL(g_alloc.zero_requests, 0);
    free(want);
    printf("\n    %s: %ld allocations, each failed once: %ld out of memory, %ld other errors, %ld recovered ", name,
           total, nomem, other, passed);
    CU_ASSERT(total >= min_requests);
    CU_ASSERT(nomem > total / 2);
    remove_outputs(dir);
    rmdir(dir);
}

static void net_every_failure(const char *net_rel, long min_requests)
{
    char arch[1024], net[1024];
    snprintf(arch, sizeof arch, "%s/models/arch/dlac.cfg", QSIM_SOURCE_DIR);
    snprintf(net, sizeof net, "%s/%s", QSIM_SOURCE_DIR, net_rel);
    run_every_failure(net_run, arch, net, net_rel, min_requests);
}

static void test_demo(void) { net_every_failure("models/nets/demo_w2a4.qbin", 100); }
static void test_tiny(void) { net_every_failure("models/nets/tiny.qbin", 50); }
static void test_xfmr(void) { net_every_failure("models/nets/xfmr_tiny.qbin", 50); }
static void test_tiny_bank_dram(void)
{
    g_sets = SETS_BANK;
    g_n_sets = 6;
    net_every_failure("models/nets/tiny.qbin", 50);
    g_sets = SETS_SIMPLE;
    g_n_sets = 2;
}

/* A small topology (a convolution and a GEMM row) on SCALE-Sim's own 32x32
 * example configuration: small enough to run a few hundred times. */
static void test_scalesim_topology(void)
{
    char cfg[1024], topo[] = "/tmp/qsim_oom_topoXXXXXX";
    snprintf(cfg, sizeof cfg, "%s/models/scalesim/scale.cfg", QSIM_SOURCE_DIR);
    int fd = mkstemp(topo);
    CU_ASSERT_FATAL(fd >= 0);
    static const char text[] = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                               "Num Filter, Strides,\n"
                               "Conv1, 8, 8, 3, 3, 4, 8, 1,\n"
                               "Conv2, 6, 6, 3, 3, 8, 40, 2,\n";
    CU_ASSERT_FATAL(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    run_every_failure(topo_run, cfg, topo, "SCALE-Sim scale.cfg, 2-layer topology", 50);
    unlink(topo);
}

/* ---- the allocation layer itself ----------------------------------------- */

static void test_alloc_contract(void)
{
    memset(&g_alloc, 0, sizeof g_alloc);
    qs_set_allocator(test_alloc, &g_alloc);
    char *a = qs_malloc(0); /* never a 0-byte request: the header is asked for */
    CU_ASSERT_PTR_NOT_NULL(a);
    int *b = qs_calloc(10, sizeof *b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(b[i], 0);
    for (int i = 0; i < 10; i++) b[i] = i;
    b = qs_realloc(b, 1000 * sizeof *b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(b[i], i);
    CU_ASSERT_PTR_NULL(qs_calloc(SIZE_MAX / 2, 4)); /* count * size overflows: refused before asking */
    CU_ASSERT_PTR_NULL(qs_malloc(SIZE_MAX - 8));
    /* aligned blocks, from a small to the huge-page alignment; a resize keeps their contents */
    for (size_t al = 64; al <= ((size_t)2 << 20); al *= 32) {
        unsigned char *p = qs_alloc_aligned(al, 100);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL((uintptr_t)p % al, 0);
        memset(p, 7, 100);
        p = qs_realloc(p, 5000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT(p[0] == 7 && p[99] == 7);
        qs_free(p);
    }
    CU_ASSERT_PTR_NULL(qs_alloc_aligned(48, 10)); /* not a power of two */
    char *s = qs_strdup("qsim");
    CU_ASSERT_STRING_EQUAL(s, "qsim");
    /* blocks go back to the allocator that made them, even after a change */
    qs_set_allocator(NULL, NULL);
    qs_alloc_fn fn;
    void *ud;
    qs_get_allocator(&fn, &ud);
    CU_ASSERT(fn != test_alloc && ud == NULL);
    char *plain = qs_malloc(10);
    qs_set_allocator(test_alloc, &g_alloc);
    qs_free(a);
    qs_free(b);
    qs_free(s);
    qs_free(plain);
    qs_free(NULL);
    qs_set_allocator(NULL, NULL);
    CU_ASSERT_EQUAL(g_alloc.live_blocks, 0);
    CU_ASSERT_EQUAL(g_alloc.live_bytes, 0);
    CU_ASSERT_EQUAL(g_alloc.bad_osize, 0);
    CU_ASSERT_EQUAL(g_alloc.zero_requests, 0);
    /* a failing resize leaves the block as it was */
    memset(&g_alloc, 0, sizeof g_alloc);
    qs_set_allocator(test_alloc, &g_alloc);
    char *c = qs_malloc(16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    strcpy(c, "still here");
    g_alloc.fail_at = g_alloc.requests + 1;
    CU_ASSERT_PTR_NULL(qs_realloc(c, 1 << 20));
    CU_ASSERT_STRING_EQUAL(c, "still here");
    qs_free(c);
    qs_set_allocator(NULL, NULL);
    CU_ASSERT_EQUAL(g_alloc.live_blocks, 0);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"qs_alloc: the lua_Alloc contract (sizes, alignment, resize, allocator change)", test_alloc_contract},
        {"demo_w2a4: every allocation fails once", test_demo},
        {"tiny: every allocation fails once", test_tiny},
        {"xfmr_tiny (transformer layers): every allocation fails once", test_xfmr},
        {"tiny on the HBM2 bank model, non-blocking DMA: every allocation fails once", test_tiny_bank_dram},
        {"SCALE-Sim configuration and topology: every allocation fails once", test_scalesim_topology},
        CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"oom", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
