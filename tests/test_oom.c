/* Allocation-failure injection: a representative run (configuration and
 * technology table, .qbin load, compile, both engines, energy, JSON and CSV
 * report) is repeated with the Nth heap allocation failing, for every N up
 * to the number the run makes. Each attempt must end in a status (out of
 * memory, or another error with a message), never a crash; the sanitizer
 * build of this test (scripts/test --sanitize) also requires that nothing
 * leaks on any of these paths (LeakSanitizer at exit).
 *
 * The library's allocations are intercepted at link time (-Wl,--wrap of
 * malloc, calloc, realloc and posix_memalign, see tests/CMakeLists.txt), so
 * every allocation of every module is covered without a hook in the code. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "report.h"
#include "sim.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);

/* The allocation that fails (1-based; 0 = none) and the count so far. */
static long g_fail_at, g_count;

static int should_fail(void) { return ++g_count == g_fail_at; }

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { return should_fail() ? 12 /* ENOMEM */ : __real_posix_memalign(p, a, n); }

/* One run; returns the first status that is not QS_OK (QS_OK if all went
 * through) and leaves its message in *e. Everything it made is freed. */
/* The configuration overrides of the run: the preset's memory system, or the
 * bank-level DRAM model fed by a non-blocking DMA engine (sim/dram.c, sim/dma.c). */
static const char *const SETS_SIMPLE[] = {"array.zero_skip=both", "buffer.weight.size_kib=1"};
static const char *const SETS_BANK[] = {"array.zero_skip=both", "buffer.weight.size_kib=1", "dram.model=hbm2",
                                        "dma.outstanding=4", "dma.request_bytes=64", "dma.separate_write_engine=1"};
static const char *const *g_sets = SETS_SIMPLE;
static int g_n_sets = 2;

static qs_status one_run(const char *arch_path, const char *net_path, const char *tmpdir, qs_error *e)
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
            layers = calloc((size_t)net->n_layers, sizeof *layers);
            if (!layers) {
                st = QS_ERR_NOMEM;
                snprintf(e->msg, sizeof e->msg, "test: out of memory");
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
    free(layers);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return st;
}

/* The whole file, NUL-terminated (read with allocations that never fail). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long saved = g_fail_at;
    g_fail_at = 0;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    g_fail_at = saved;
    return b;
}

static void run_every_failure(const char *net_rel)
{
    char arch[1024], net[1024], dir[] = "/tmp/qsim_oomXXXXXX";
    snprintf(arch, sizeof arch, "%s/models/arch/dlac.cfg", QSIM_SOURCE_DIR);
    snprintf(net, sizeof net, "%s/%s", QSIM_SOURCE_DIR, net_rel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    qs_error e;
    g_fail_at = 0;
    g_count = 0;
    qs_status ok = one_run(arch, net, dir, &e);
    if (ok) fprintf(stderr, "\n  the run itself fails: %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(ok, QS_OK);
    const long total = g_count;
    char jpath[1100];
    snprintf(jpath, sizeof jpath, "%s/run.json", dir);
    char *want = slurp(jpath);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    long nomem = 0, other = 0, passed = 0;
    for (long n = 1; n <= total; n++) {
        g_fail_at = n;
        g_count = 0;
        e.msg[0] = 0;
        qs_status st = one_run(arch, net, dir, &e);
        if (st == QS_OK) { /* an allocation with a fallback (huge pages, a cache): same answers */
            passed++;
            g_fail_at = 0;
            char *got = slurp(jpath);
            if (!got || strcmp(got, want) != 0) {
                fprintf(stderr, "\n  allocation %ld of %ld failed, the run went on and its report differs\n", n, total);
                CU_FAIL("a run that recovered from a failed allocation changed its answers");
            }
            free(got);
        }
        else if (st == QS_ERR_NOMEM) nomem++;
        else other++;
        if (st != QS_OK && !e.msg[0]) {
            fprintf(stderr, "\n  allocation %ld of %ld: status %d without a message\n", n, total, (int)st);
            CU_FAIL("a failed run without a message");
        }
        if (st != QS_OK && st != QS_ERR_NOMEM && !strstr(e.msg, "memory"))
            fprintf(stderr, "\n  allocation %ld: status %d: %s\n", n, (int)st, e.msg);
    }
    g_fail_at = 0;
    free(want);
    printf("\n    %s: %ld allocations, each failed once: %ld out of memory, %ld other errors, %ld recovered ",
           net_rel, total, nomem, other, passed);
    CU_ASSERT(total > 20);
    CU_ASSERT(nomem > total / 2);
    char path[1100];
    snprintf(path, sizeof path, "%s/run.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/run.csv", dir);
    unlink(path);
    rmdir(dir);
}

static void test_demo(void) { run_every_failure("models/nets/demo_w2a4.qbin"); }
static void test_tiny(void) { run_every_failure("models/nets/tiny.qbin"); }
static void test_xfmr(void) { run_every_failure("models/nets/xfmr_tiny.qbin"); }
static void test_tiny_bank_dram(void)
{
    g_sets = SETS_BANK;
    g_n_sets = 6;
    run_every_failure("models/nets/tiny.qbin");
    g_sets = SETS_SIMPLE;
    g_n_sets = 2;
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"demo_w2a4: every allocation fails once", test_demo},
        {"tiny: every allocation fails once", test_tiny},
        {"xfmr_tiny (transformer layers): every allocation fails once", test_xfmr},
        {"tiny on the HBM2 bank model, non-blocking DMA: every allocation fails once", test_tiny_bank_dram},
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
