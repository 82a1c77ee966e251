/* CUnit tests of the waveform writer (traces/trace.c, docs/waveforms.md):
 * exact VCD text, value suppression and masking, identifiers, timescales,
 * every misuse remembered and reported by close, open errors naming the path,
 * write errors (full device, file size limit) in both formats, and that the
 * FST writer never removes something that is not a regular file.
 * The FST contents are checked with GTKWave's tools in tests/test_trace_fst.py.
 *
 * Usage: test_trace [suite]   (no argument: all suites) */
#include <CUnit/Basic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qs_alloc.h"
#include "trace.h"

/* ---- fixtures --------------------------------------------------------- */

static char dir[256];

static int make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qs_trace_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : 1;
}

static int remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

static const char *in_dir(const char *name)
{
    static char path[2][512];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* Whole file as a string (caller frees); NULL if unreadable. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = qs_malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        qs_free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static qs_trace *open_ok(const char *name, qs_trace_format fmt)
{
    qs_trace *t = NULL;
    qs_error err = {{0}};
    qs_status st = qs_trace_open(in_dir(name), fmt, "1ns", &t, &err);
    CU_ASSERT_EQUAL(st, QS_OK);
    if (st != QS_OK) fprintf(stderr, "\n  open: %s\n", err.msg);
    return t;
}

/* ---- format by extension ---------------------------------------------- */

static void test_format_for_path(void)
{
    CU_ASSERT_EQUAL(qs_trace_format_for_path("run.vcd"), QS_TRACE_VCD);
    CU_ASSERT_EQUAL(qs_trace_format_for_path("out/RUN.VCD"), QS_TRACE_VCD);
    CU_ASSERT_EQUAL(qs_trace_format_for_path(".vcd"), QS_TRACE_VCD);
    CU_ASSERT_EQUAL(qs_trace_format_for_path("run.fst"), QS_TRACE_FST);
    CU_ASSERT_EQUAL(qs_trace_format_for_path("run"), QS_TRACE_FST);
    CU_ASSERT_EQUAL(qs_trace_format_for_path("run.vcd.gz"), QS_TRACE_FST);
    CU_ASSERT_EQUAL(qs_trace_format_for_path("vcd"), QS_TRACE_FST);
    CU_ASSERT_EQUAL(qs_trace_format_for_path(""), QS_TRACE_FST);
    CU_ASSERT_EQUAL(qs_trace_format_for_path(NULL), QS_TRACE_FST);
}

/* ---- VCD text ----------------------------------------------------------- */

static void test_vcd_exact(void)
{
    qs_trace *t = open_ok("exact.vcd", QS_TRACE_VCD);
    if (!t) return;
    qs_trace_scope_push(t, "qsim");
    qs_trace_scope_push(t, "queues");
    int32_t pc = qs_trace_var(t, "load_pc", 32);
    int32_t busy = qs_trace_var(t, "load_busy", 1);
    qs_trace_scope_pop(t);
    qs_trace_scope_push(t, "array");
    int32_t layer = qs_trace_var(t, "layer", 16);
    qs_trace_scope_pop(t);
    qs_trace_scope_pop(t);
    CU_ASSERT_EQUAL(pc, 0);
    CU_ASSERT_EQUAL(busy, 1);
    CU_ASSERT_EQUAL(layer, 2);

    qs_trace_time(t, 0);
    qs_trace_value(t, pc, 0);
    qs_trace_value(t, busy, 0);
    qs_trace_value(t, layer, 0);
    qs_trace_time(t, 1);
    qs_trace_value(t, pc, 0); /* unchanged: nothing, not even #1 */
    qs_trace_time(t, 2);
    qs_trace_value(t, pc, 0x10);
    qs_trace_value(t, busy, 1);
    qs_trace_value(t, busy, 0); /* several values in one step: the last one counts (no change) */
    qs_trace_time(t, 2);        /* same time again is fine */
    qs_trace_value(t, layer, 5);
    qs_trace_value(t, layer, 3);
    qs_trace_time(t, 7);
    qs_trace_value(t, busy, 0);
    qs_trace_value(t, busy, 1);
    qs_trace_value(t, pc, 0x11);
    qs_trace_time(t, 8);
    qs_trace_value(t, pc, 0x12); /* pending at close: written at 8 */
    qs_trace_time(t, 8);
    qs_trace_time(t, 9); /* end of run: written by close */
    qs_error err = {{0}};
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);

    char *s = slurp(in_dir("exact.vcd"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *want = "$version qsim traces $end\n"
                       "$timescale 1ns $end\n"
                       "$scope module qsim $end\n"
                       "$scope module queues $end\n"
                       "$var wire 32 ! load_pc $end\n"
                       "$var wire 1 \" load_busy $end\n"
                       "$upscope $end\n"
                       "$scope module array $end\n"
                       "$var wire 16 # layer $end\n"
                       "$upscope $end\n"
                       "$upscope $end\n"
                       "$enddefinitions $end\n"
                       "#0\n"
                       "b0 !\n"
                       "0\"\n"
                       "b0 #\n"
                       "#2\n"
                       "b10000 !\n"
                       "b11 #\n"
                       "#7\n"
                       "1\"\n"
                       "b10001 !\n"
                       "#8\n"
                       "b10010 !\n"
                       "#9\n";
    CU_ASSERT_STRING_EQUAL(s, want);
    if (strcmp(s, want) != 0) fprintf(stderr, "\n--- got:\n%s--- want:\n%s", s, want);
    qs_free(s);
}

static void test_vcd_mask_and_wide(void)
{
    qs_trace *t = open_ok("mask.vcd", QS_TRACE_VCD);
    if (!t) return;
    int32_t b = qs_trace_var(t, "bit", 1);
    int32_t n = qs_trace_var(t, "nib", 4);
    int32_t w = qs_trace_var(t, "wide", 64);
    qs_trace_value(t, b, 2);     /* masked to 0 */
    qs_trace_value(t, n, 0x1F);  /* masked to 1111 */
    qs_trace_value(t, w, UINT64_MAX);
    qs_trace_time(t, 1);
    qs_trace_value(t, b, 4);     /* still 0: suppressed */
    qs_trace_value(t, n, 0xF);   /* same after masking: suppressed */
    qs_trace_value(t, w, UINT64_C(1) << 63);
    qs_error err;
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    char *s = slurp(in_dir("mask.vcd"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *body = strstr(s, "$enddefinitions $end\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_STRING_EQUAL(body, "$enddefinitions $end\n"
                                 "#0\n"
                                 "0!\n"
                                 "b1111 \"\n"
                                 "b1111111111111111111111111111111111111111111111111111111111111111 #\n"
                                 "#1\n"
                                 "b1000000000000000000000000000000000000000000000000000000000000000 #\n");
    qs_free(s);
}

/* Identifiers stay unique past one and two characters (94, 94*94). */
static void test_vcd_many_ids(void)
{
    enum { N = 94 * 94 + 200 };
    qs_trace *t = open_ok("many.vcd", QS_TRACE_VCD);
    if (!t) return;
    qs_trace_scope_push(t, "top");
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%d", i);
        CU_ASSERT_EQUAL(qs_trace_var(t, name, 1 + i % 64), i);
    }
    qs_error err;
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    char *s = slurp(in_dir("many.vcd"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* collect the identifier of every $var and check they are distinct */
    char **ids = qs_calloc(N, sizeof *ids);
    int n = 0;
    for (char *p = s; (p = strstr(p, "$var wire ")) && n < N; n++) {
        int bits, len = 0;
        char id[8];
        CU_ASSERT_EQUAL(sscanf(p, "$var wire %d %7s %n", &bits, id, &len), 2);
        CU_ASSERT_EQUAL(bits, 1 + n % 64);
        ids[n] = qs_strdup(id);
        p += 10;
    }
    CU_ASSERT_EQUAL(n, N);
    int dup = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n && i < 300; j++) dup += strcmp(ids[i], ids[j]) == 0;
    for (int i = n - 300; i < n; i++)
        for (int j = i + 1; j < n; j++) dup += strcmp(ids[i], ids[j]) == 0;
    CU_ASSERT_EQUAL(dup, 0);
    CU_ASSERT_STRING_EQUAL(ids[0], "!");
    CU_ASSERT_STRING_EQUAL(ids[93], "~");
    CU_ASSERT_EQUAL(strlen(ids[94]), 2);
    CU_ASSERT_EQUAL(strlen(ids[94 * 94 - 1]), 2);
    CU_ASSERT_EQUAL(strlen(ids[94 * 94]), 3);
    for (int i = 0; i < n; i++) qs_free(ids[i]);
    qs_free(ids);
    qs_free(s);
}

static void test_vcd_timescales(void)
{
    static const struct {
        const char *in, *out;
    } ok[] = {{NULL, "1ns"}, {"1ns", "1ns"}, {"10ps", "10ps"}, {"100 us", "100us"}, {"1s", "1s"}, {"10 fs", "10fs"},
              {"100ms", "100ms"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        qs_trace *t = NULL;
        qs_error err;
        CU_ASSERT_EQUAL_FATAL(qs_trace_open(in_dir("ts.vcd"), QS_TRACE_VCD, ok[i].in, &t, &err), QS_OK);
        CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
        char *s = slurp(in_dir("ts.vcd"));
        char want[64];
        snprintf(want, sizeof want, "$timescale %s $end\n", ok[i].out);
        CU_ASSERT(s && strstr(s, want));
        qs_free(s);
    }
    static const char *const bad[] = {"2ns", "1", "ns", "1 xs", "1nss", "1000ns", "-1ns", "", "01ns"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int fmt = 0; fmt < 2; fmt++) {
            qs_trace *t = (qs_trace *)&t; /* must be reset to NULL */
            qs_error err = {{0}};
            const char *p = in_dir(fmt ? "bad_ts.vcd" : "bad_ts.fst");
            CU_ASSERT_EQUAL(qs_trace_open(p, fmt ? QS_TRACE_VCD : QS_TRACE_FST, bad[i], &t, &err), QS_ERR_ARG);
            CU_ASSERT_PTR_NULL(t);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, p));
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "timescale"));
            CU_ASSERT_EQUAL(access(p, F_OK), -1); /* nothing created */
        }
    }
}

/* Definitions only; time only; scopes left open are closed at the first step. */
static void test_vcd_edges(void)
{
    qs_error err;
    qs_trace *t = open_ok("empty.vcd", QS_TRACE_VCD);
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    char *s = slurp(in_dir("empty.vcd"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(count(s, "$enddefinitions $end\n"), 1);
    CU_ASSERT_EQUAL(count(s, "#"), 0);
    qs_free(s);

    t = open_ok("open_scopes.vcd", QS_TRACE_VCD);
    qs_trace_scope_push(t, "a");
    qs_trace_scope_push(t, "b");
    int32_t v = qs_trace_var(t, "v", 3);
    qs_trace_time(t, 5);
    qs_trace_time(t, 6);
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    (void)v;
    s = slurp(in_dir("open_scopes.vcd"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "$var wire 3 ! v $end\n$upscope $end\n$upscope $end\n$enddefinitions $end\n#6\n"));
    CU_ASSERT_EQUAL(count(s, "#"), 1); /* only the final time */
    qs_free(s);
}

/* ---- misuse ------------------------------------------------------------- */

typedef void (*misuse_fn)(qs_trace *t);

static void mu_var_late(qs_trace *t)
{
    qs_trace_var(t, "a", 1);
    qs_trace_time(t, 1);
    CU_ASSERT_EQUAL(qs_trace_var(t, "late_var", 1), -1);
}
static void mu_var_after_value(qs_trace *t)
{
    int32_t a = qs_trace_var(t, "a", 1);
    qs_trace_value(t, a, 1);
    CU_ASSERT_EQUAL(qs_trace_var(t, "late_var", 1), -1);
}
static void mu_scope_late(qs_trace *t)
{
    qs_trace_time(t, 0);
    qs_trace_scope_push(t, "late_scope");
}
static void mu_pop_late(qs_trace *t)
{
    qs_trace_scope_push(t, "s");
    qs_trace_time(t, 0);
    qs_trace_scope_pop(t);
}
static void mu_backwards(qs_trace *t)
{
    qs_trace_time(t, 10);
    qs_trace_time(t, 9);
}
static void mu_width0(qs_trace *t) { CU_ASSERT_EQUAL(qs_trace_var(t, "w0", 0), -1); }
static void mu_width65(qs_trace *t) { CU_ASSERT_EQUAL(qs_trace_var(t, "w65", 65), -1); }
static void mu_space(qs_trace *t) { CU_ASSERT_EQUAL(qs_trace_var(t, "a b", 1), -1); }
static void mu_empty(qs_trace *t) { CU_ASSERT_EQUAL(qs_trace_var(t, "", 1), -1); }
static void mu_null(qs_trace *t) { CU_ASSERT_EQUAL(qs_trace_var(t, NULL, 1), -1); }
static void mu_long(qs_trace *t)
{
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    CU_ASSERT_EQUAL(qs_trace_var(t, name, 1), -1);
}
static void mu_scope_name(qs_trace *t) { qs_trace_scope_push(t, "bad\tscope"); }
static void mu_pop(qs_trace *t) { qs_trace_scope_pop(t); }
static void mu_dup(qs_trace *t)
{
    qs_trace_scope_push(t, "u");
    qs_trace_var(t, "x", 1);
    qs_trace_scope_pop(t);
    qs_trace_scope_push(t, "u");
    CU_ASSERT_EQUAL(qs_trace_var(t, "x", 8), -1); /* same full name u.x */
    qs_trace_scope_pop(t);
}
static void mu_handle(qs_trace *t)
{
    qs_trace_var(t, "a", 1);
    qs_trace_value(t, 1, 1);
}
static void mu_handle_neg(qs_trace *t)
{
    qs_trace_var(t, "a", 1);
    qs_trace_value(t, -5, 1);
}

static void test_misuse(void)
{
    static const struct {
        misuse_fn fn;
        const char *needle;
    } cases[] = {
        {mu_var_late, "variable 'late_var' declared after the first time step"},
        {mu_var_after_value, "variable 'late_var' declared after the first time step"},
        {mu_scope_late, "scope 'late_scope' opened after the first time step"},
        {mu_pop_late, "scope closed after the first time step"},
        {mu_backwards, "time went backwards: 9 after 10"},
        {mu_width0, "width 0 (must be 1..64)"},
        {mu_width65, "width 65"},
        {mu_space, "bad variable name 'a b'"},
        {mu_empty, "bad variable name ''"},
        {mu_null, "bad variable name '(null)'"},
        {mu_long, "bad variable name 'nnnn"},
        {mu_scope_name, "bad scope name"},
        {mu_pop, "qs_trace_scope_pop without an open scope"},
        {mu_dup, "variable 'u.x' declared twice"},
        {mu_handle, "unknown variable handle 1"},
        {mu_handle_neg, "unknown variable handle -5"},
    };
    for (int fmt = 0; fmt < 2; fmt++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char name[32];
            snprintf(name, sizeof name, "misuse%zu.%s", i, fmt ? "vcd" : "fst");
            qs_trace *t = open_ok(name, fmt ? QS_TRACE_VCD : QS_TRACE_FST);
            if (!t) continue;
            cases[i].fn(t);
            qs_trace_time(t, 100);
            qs_trace_time(t, 50); /* a second misuse: the first one is reported */
            qs_error err = {{0}};
            CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_ERR_ARG);
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, name)); /* names the file */
            if (!strstr(err.msg, cases[i].needle)) fprintf(stderr, "\n  case %zu: %s\n", i, err.msg);
        }
    }
}

/* A failed qs_trace_var returns -1; using -1 adds no second error and the
 * rest of the dump is still written. */
static void test_failed_var_handle(void)
{
    qs_trace *t = open_ok("minus1.vcd", QS_TRACE_VCD);
    if (!t) return;
    int32_t bad = qs_trace_var(t, "x", 99);
    int32_t good = qs_trace_var(t, "y", 2);
    CU_ASSERT_EQUAL(bad, -1);
    CU_ASSERT_EQUAL(good, 0);
    qs_trace_value(t, bad, 1);
    qs_trace_value(t, good, 3);
    qs_error err;
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'x': width 99"));
    char *s = slurp(in_dir("minus1.vcd"));
    CU_ASSERT(s && strstr(s, "#0\nb11 !\n"));
    qs_free(s);
}

static void test_null_handle(void)
{
    qs_trace_scope_push(NULL, "a");
    qs_trace_scope_pop(NULL);
    CU_ASSERT_EQUAL(qs_trace_var(NULL, "a", 1), -1);
    qs_trace_time(NULL, 1);
    qs_trace_value(NULL, 0, 1);
    CU_ASSERT_EQUAL(qs_trace_close(NULL, NULL), QS_OK);
    qs_error err;
    CU_ASSERT_EQUAL(qs_trace_close(NULL, &err), QS_OK);
}

/* ---- open errors -------------------------------------------------------- */

static void test_open_errors(void)
{
    for (int fmt = 0; fmt < 2; fmt++) {
        qs_trace_format f = fmt ? QS_TRACE_VCD : QS_TRACE_FST;
        qs_trace *t = (qs_trace *)&t;
        qs_error err = {{0}};
        const char *p = fmt ? "/nonexistent-qsim-dir/run.vcd" : "/nonexistent-qsim-dir/run.fst";
        CU_ASSERT_EQUAL(qs_trace_open(p, f, "1ns", &t, &err), QS_ERR_IO);
        CU_ASSERT_PTR_NULL(t);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, p));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "No such file or directory"));

        /* a directory */
        t = (qs_trace *)&t;
        CU_ASSERT_EQUAL(qs_trace_open(dir, f, "1ns", &t, &err), QS_ERR_IO);
        CU_ASSERT_PTR_NULL(t);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, dir));
        struct stat sb;
        CU_ASSERT(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));

        CU_ASSERT_EQUAL(qs_trace_open(NULL, f, "1ns", &t, &err), QS_ERR_ARG);
        CU_ASSERT_EQUAL(qs_trace_open("", f, "1ns", &t, &err), QS_ERR_ARG);
        CU_ASSERT_EQUAL(qs_trace_open(in_dir("x.vcd"), f, "1ns", NULL, &err), QS_ERR_ARG);
    }
    qs_trace *t;
    qs_error err;
    CU_ASSERT_EQUAL(qs_trace_open(in_dir("x.vcd"), (qs_trace_format)7, "1ns", &t, &err), QS_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown trace format 7"));
    CU_ASSERT_EQUAL(qs_trace_open(in_dir("x.vcd"), QS_TRACE_VCD, "1ns", &t, NULL), QS_OK); /* err may be NULL */
    CU_ASSERT_EQUAL(qs_trace_close(t, NULL), QS_OK);
}

/* The FST writer unlink()s its path first: a FIFO (or device) must survive. */
static void test_fst_not_regular(void)
{
    const char *fifo = in_dir("fifo.fst");
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    qs_trace *t = (qs_trace *)&t;
    qs_error err = {{0}};
    CU_ASSERT_EQUAL(qs_trace_open(fifo, QS_TRACE_FST, "1ns", &t, &err), QS_ERR_IO);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, fifo));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    struct stat sb;
    CU_ASSERT(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode));
    unlink(fifo);
}

/* An existing regular file is replaced (truncated) in both formats. */
static void test_overwrite(void)
{
    for (int fmt = 0; fmt < 2; fmt++) {
        const char *p = in_dir(fmt ? "over.vcd" : "over.fst");
        FILE *f = fopen(p, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        for (int i = 0; i < 100000; i++) fputs("old contents ", f);
        fclose(f);
        qs_trace *t = open_ok(fmt ? "over.vcd" : "over.fst", fmt ? QS_TRACE_VCD : QS_TRACE_FST);
        int32_t v = qs_trace_var(t, "v", 8);
        qs_trace_value(t, v, 42);
        qs_error err;
        CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
        struct stat sb;
        CU_ASSERT(stat(p, &sb) == 0 && sb.st_size > 0 && sb.st_size < 100000);
        char *s = slurp(p);
        CU_ASSERT_PTR_NOT_NULL(s);
        if (s && fmt) CU_ASSERT_PTR_NULL(strstr(s, "old contents"));
        qs_free(s);
    }
}

/* ---- FST basics --------------------------------------------------------- */

static void test_fst_basic(void)
{
    qs_trace *t = open_ok("basic.fst", QS_TRACE_FST);
    if (!t) return;
    qs_trace_scope_push(t, "qsim");
    int32_t a = qs_trace_var(t, "a", 1), w = qs_trace_var(t, "w", 64);
    qs_trace_scope_pop(t);
    for (uint64_t c = 0; c < 1000; c++) {
        qs_trace_time(t, c);
        qs_trace_value(t, a, c & 1);
        qs_trace_value(t, w, c * UINT64_C(0x9E3779B97F4A7C15));
    }
    qs_error err = {{0}};
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    char *s = slurp(in_dir("basic.fst"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s[0], 0); /* FST_BL_HDR */
    qs_free(s);
    /* the writer's scratch file next to the dump is gone */
    CU_ASSERT_EQUAL(access(in_dir("basic.fst.hier"), F_OK), -1);

    /* no variables: GTKWave's writer cannot make a readable file of that */
    t = open_ok("none.fst", QS_TRACE_FST);
    qs_trace_time(t, 5);
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "none.fst: no variables declared"));
    /* variables, no values, with and without time steps (the structure check
     * in close rejects the broken file the writer alone would leave) */
    for (int k = 0; k < 3; k++) {
        t = open_ok("novalues.fst", QS_TRACE_FST);
        qs_trace_var(t, "v", 3);
        if (k >= 1) qs_trace_time(t, 10);
        if (k >= 2) qs_trace_time(t, 20);
        CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_OK);
    }
}

/* ---- write errors ------------------------------------------------------- */

static void test_vcd_dev_full(void)
{
    if (access("/dev/full", W_OK) != 0) return; /* not on this system */
    qs_trace *t = NULL;
    qs_error err = {{0}};
    CU_ASSERT_EQUAL_FATAL(qs_trace_open("/dev/full", QS_TRACE_VCD, "1ns", &t, &err), QS_OK);
    int32_t v = qs_trace_var(t, "v", 32);
    for (uint32_t c = 0; c < 100000; c++) {
        qs_trace_time(t, c);
        qs_trace_value(t, v, c);
    }
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/dev/full"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "No space left on device"));

    /* a small dump fails at close (the data was only buffered until then) */
    CU_ASSERT_EQUAL_FATAL(qs_trace_open("/dev/full", QS_TRACE_VCD, "1ns", &t, &err), QS_OK);
    CU_ASSERT_EQUAL(qs_trace_close(t, &err), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/dev/full"));
}

/* In a child with a file size limit (writes past it fail with EFBIG): the
 * dump must be reported as failed, in both formats. Returns the child's
 * status: 0 = close said QS_ERR_IO naming the path, 1 = close said something
 * else, 2 = open failed, other = crashed. */
static int write_past_limit(qs_trace_format fmt, const char *path, rlim_t limit)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        qs_trace *t;
        qs_error err;
        if (qs_trace_open(path, fmt, "1ns", &t, &err) != QS_OK) _exit(2);
        int32_t v[4];
        for (int i = 0; i < 4; i++) {
            char name[8];
            snprintf(name, sizeof name, "v%d", i);
            v[i] = qs_trace_var(t, name, 64);
        }
        uint64_t x = 88172645463325252u;
        for (uint64_t c = 0; c < 20000; c++) {
            qs_trace_time(t, c);
            for (int i = 0; i < 4; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                qs_trace_value(t, v[i], x);
            }
        }
        qs_status st = qs_trace_close(t, &err);
        _exit(st == QS_ERR_IO && strstr(err.msg, path) && strstr(err.msg, "write error") ? 0 : 1);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) return -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 100 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

static void test_size_limit(void)
{
    /* ~1.3 MB of incompressible values; limits cut it at various points */
    static const rlim_t limits[] = {200, 4096, 65536, 300000};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int r = write_past_limit(QS_TRACE_VCD, in_dir("limit.vcd"), limits[i]);
        CU_ASSERT_EQUAL(r, 0);
        if (r) fprintf(stderr, "\n  VCD limit %lu: child status %d\n", (unsigned long)limits[i], r);
        r = write_past_limit(QS_TRACE_FST, in_dir("limit.fst"), limits[i]);
        CU_ASSERT_EQUAL(r, 0);
        if (r) fprintf(stderr, "\n  FST limit %lu: child status %d\n", (unsigned long)limits[i], r);
    }
    /* and without a limit the same dump is fine */
    CU_ASSERT_EQUAL(write_past_limit(QS_TRACE_FST, in_dir("nolimit.fst"), RLIM_INFINITY), 1);
    CU_ASSERT_EQUAL(write_past_limit(QS_TRACE_VCD, in_dir("nolimit.vcd"), RLIM_INFINITY), 1);
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static CU_TestInfo vcd_tests[] = {
        {"format by extension", test_format_for_path},
        {"exact text", test_vcd_exact},
        {"masking and 64-bit values", test_vcd_mask_and_wide},
        {"identifiers past 94 and 94*94", test_vcd_many_ids},
        {"timescales", test_vcd_timescales},
        {"empty dump, open scopes", test_vcd_edges},
        CU_TEST_INFO_NULL};
    static CU_TestInfo misuse_tests[] = {
        {"every misuse reported by close", test_misuse},
        {"failed qs_trace_var handle", test_failed_var_handle},
        {"NULL trace", test_null_handle},
        CU_TEST_INFO_NULL};
    static CU_TestInfo file_tests[] = {
        {"open errors name the path", test_open_errors},
        {"FST keeps a FIFO", test_fst_not_regular},
        {"existing file replaced", test_overwrite},
        {"FST basics", test_fst_basic},
        {"VCD on /dev/full", test_vcd_dev_full},
        {"file size limit, both formats", test_size_limit},
        CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {
        {"vcd", NULL, NULL, NULL, NULL, vcd_tests},
        {"misuse", NULL, NULL, NULL, NULL, misuse_tests},
        {"files", NULL, NULL, NULL, NULL, file_tests},
        CU_SUITE_INFO_NULL};
    if (make_dir() != 0) {
        perror("mkdtemp");
        return 1;
    }
    if (argc > 1) { /* run one suite */
        int k = 0;
        for (int i = 0; suites[i].pName; i++)
            if (strcmp(suites[i].pName, argv[1]) == 0) suites[k++] = suites[i];
        if (k == 0) {
            fprintf(stderr, "unknown suite '%s' (vcd, misuse, files)\n", argv[1]);
            remove_dir();
            return 2;
        }
        suites[k] = (CU_SuiteInfo)CU_SUITE_INFO_NULL;
    }
    if (CU_initialize_registry() != CUE_SUCCESS || CU_register_suites(suites) != CUE_SUCCESS) {
        remove_dir();
        return 1;
    }
    atexit(CU_cleanup_registry); /* after the result is read below (cleanup clears it) */
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    remove_dir();
    return (CU_get_error() || CU_get_number_of_failures()) ? 1 : 0;
}
