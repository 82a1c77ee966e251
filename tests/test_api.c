/* The public API (include/qsim/qsim.h, api/qsim.c), linked against
 * libqsim.so as a user would: bad calls (NULL handles, indices out of range,
 * a caller built for another API version) are a status and a message; the
 * report's figures agree with each other and with the JSON text; a batch is
 * the mean of its inferences; overrides, hooks and traces do what they say.
 * Outputs against the NumPy reference: tests/test_python_api.py. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qsim/qsim.h>

#define NET QSIM_SOURCE_DIR "/models/nets/tiny.qbin"
#define ARCH QSIM_SOURCE_DIR "/models/arch/dlac.cfg"

static qsim_net *g_net;
static qsim_config *g_cfg;

static int suite_init(void)
{
    qsim_error e;
    return qsim_net_load(NET, &g_net, &e) || qsim_config_load(ARCH, &g_cfg, &e);
}

static int suite_clean(void)
{
    qsim_net_free(g_net);
    qsim_config_free(g_cfg);
    return 0;
}

#define HAS(msg, s) CU_ASSERT_PTR_NOT_NULL(strstr((msg), (s)))

static void test_version(void)
{
    qsim_error e = {{0}};
    CU_ASSERT_EQUAL(qsim_check_version(QSIM_API_VERSION, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_api_version(), QSIM_API_VERSION);
    CU_ASSERT_EQUAL(qsim_check_version(QSIM_API_VERSION + 1, &e), QSIM_ERR_VERSION);
    HAS(e.msg, "built for version 2");
    CU_ASSERT_STRING_EQUAL(qsim_version(), QSIM_VERSION);
    CU_ASSERT(strlen(qsim_source_revision()) > 0);
    /* options from a caller built against another struct layout */
    qsim_program *p = NULL;
    qsim_report *r = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    qsim_run_options o;
    qsim_run_options_init(&o);
    o.struct_size = 8;
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_VERSION);
    HAS(e.msg, "options of 8 bytes");
    CU_ASSERT_PTR_NULL(r);
    qsim_program_free(p);
    CU_ASSERT_STRING_EQUAL(qsim_status_name(QSIM_ERR_VERSION), "version mismatch");
    CU_ASSERT_STRING_EQUAL(qsim_status_name((qsim_status)99), "unknown status");
}

static void test_null_and_range(void)
{
    qsim_error e = {{0}};
    qsim_net *n = (qsim_net *)1;
    qsim_config *c = (qsim_config *)1;
    qsim_program *p = (qsim_program *)1;
    qsim_report *r = (qsim_report *)1;
    CU_ASSERT_EQUAL(qsim_net_load(NULL, &n, &e), QSIM_ERR_ARG);
    CU_ASSERT_PTR_NULL(n);
    CU_ASSERT_EQUAL(qsim_net_load(NET, NULL, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_net_from_bytes(NULL, 5, "x", &n, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_load(NULL, &c, &e), QSIM_ERR_ARG);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(qsim_config_parse(NULL, "w", &c, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_set(NULL, "array.rows=4", &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_set(g_cfg, NULL, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_copy(NULL, &c, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_compile(NULL, g_cfg, &p, &e), QSIM_ERR_ARG);
    HAS(e.msg, "qsim_compile: net is NULL");
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(qsim_compile(g_net, NULL, &p, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_run(NULL, NULL, 0, 1, NULL, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "program is NULL");
    CU_ASSERT_PTR_NULL(r);
    qsim_totals t;
    qsim_layer_figures f;
    const char *js;
    const int32_t *d;
    int64_t cnt;
    CU_ASSERT_EQUAL(qsim_report_totals(NULL, &t, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_layer(NULL, 1, &f, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_json(NULL, &js, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_output(NULL, 0, &d, &cnt, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_net_get_info(NULL, NULL, &e), QSIM_ERR_ARG);
    /* err may be NULL */
    CU_ASSERT_EQUAL(qsim_net_get_info(NULL, NULL, NULL), QSIM_ERR_ARG);
    /* freeing NULL is a no-op */
    qsim_net_free(NULL);
    qsim_config_free(NULL);
    qsim_program_free(NULL);
    qsim_report_free(NULL);

    qsim_net_info info;
    CU_ASSERT_EQUAL_FATAL(qsim_net_get_info(g_net, &info, &e), QSIM_OK);
    qsim_layer_info li;
    CU_ASSERT_EQUAL(qsim_net_get_layer(g_net, info.n_layers, &li, &e), QSIM_ERR_ARG);
    HAS(e.msg, "out of range");
    CU_ASSERT_EQUAL(qsim_net_get_layer(g_net, -1, &li, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_net_get_layer(g_net, 0, &li, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(li.kind, "input");

    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, NULL, &r, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_layer(r, 0, &f, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_layer(r, info.n_layers, &f, &e), QSIM_ERR_ARG);
    HAS(e.msg, "out of range 1..");
    CU_ASSERT_EQUAL(qsim_report_output(r, 1, &d, &cnt, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_output(r, -1, &d, &cnt, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_layer_output(r, 1, &d, &cnt, &e), QSIM_ERR_ARG);
    HAS(e.msg, "keep_layer_outputs");
    qsim_report_free(r);
    r = NULL;
    /* inputs that do not match the input layer */
    int32_t x[4] = {0};
    CU_ASSERT_EQUAL(qsim_run(p, x, 4, 1, NULL, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "4 input values for 1 inferences");
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 2, NULL, &r, &e), QSIM_ERR_ARG);
    qsim_run_options o;
    qsim_run_options_init(&o);
    o.engine = (qsim_engine)7;
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "unknown engine 7");
    /* engine rtl: a bad tile window, then no verilator: one clear message, no report */
    qsim_run_options_init(&o);
    o.engine = QSIM_ENGINE_RTL;
    CU_ASSERT_EQUAL(o.rtl_tile_to, INT64_MAX);
    o.rtl_tile_from = 3;
    o.rtl_tile_to = 2;
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "rtl tiles 3..2");
    o.rtl_tile_from = 0;
    o.rtl_tile_to = INT64_MAX;
    o.rtl_layer = "no_such_layer";
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "no layer named 'no_such_layer'");
    o.rtl_layer = NULL;
    char *old_v = getenv("QSIM_VERILATOR") ? strdup(getenv("QSIM_VERILATOR")) : NULL;
    setenv("QSIM_VERILATOR", "/nonexistent/verilator", 1);
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_UNSUPPORTED);
    HAS(e.msg, "--engine rtl needs verilator (apt install verilator)");
    CU_ASSERT_PTR_NULL(r);
    if (old_v) setenv("QSIM_VERILATOR", old_v, 1);
    else unsetenv("QSIM_VERILATOR");
    free(old_v);
    /* the other engines report no co-simulation */
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, NULL, &r, &e), QSIM_OK);
    qsim_rtl_stats rs;
    CU_ASSERT_EQUAL(qsim_report_rtl(r, &rs, &e), QSIM_OK);
    CU_ASSERT_EQUAL(rs.clocks, 0);
    CU_ASSERT_EQUAL(qsim_report_rtl(r, NULL, &e), QSIM_ERR_ARG);
    qsim_report_free(r);
    r = NULL;
    qsim_program_free(p);
}

static void test_config(void)
{
    qsim_error e = {{0}};
    qsim_config *c = NULL;
    char v[64];
    CU_ASSERT_EQUAL_FATAL(qsim_config_copy(g_cfg, &c, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "16");
    CU_ASSERT_EQUAL(qsim_config_set(c, "array.rows=8", &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "8");
    /* the original is untouched */
    CU_ASSERT_EQUAL(qsim_config_get(g_cfg, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "16");
    /* a bad override fails with the core's message and changes nothing */
    CU_ASSERT_EQUAL(qsim_config_set(c, "array.rowz=4", &e), QSIM_ERR_CONFIG);
    HAS(e.msg, "rowz");
    CU_ASSERT_EQUAL(qsim_config_set(c, "array.rows=0", &e), QSIM_ERR_CONFIG);
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "8");
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.nope", v, sizeof v, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_get(c, "general.name", v, 2, &e), QSIM_ERR_ARG);
    HAS(e.msg, "buffer too small");
    qsim_config_free(c);
    /* from text: a relative tech table resolves against `where`'s folder */
    c = NULL;
    CU_ASSERT_EQUAL(qsim_config_parse("[array]\nrows = 4\ncols = 4\n[tech]\ntable = ../tech/default45.tech\n",
                                      QSIM_SOURCE_DIR "/models/arch/mine.cfg", &c, &e),
                    QSIM_OK);
    qsim_program *p = NULL;
    CU_ASSERT_EQUAL(qsim_compile(g_net, c, &p, &e), QSIM_OK);
    qsim_program_free(p);
    qsim_config_free(c);
    c = NULL;
    CU_ASSERT_EQUAL(qsim_config_parse("[array]\nrows = x\n", "text.cfg", &c, &e), QSIM_ERR_CONFIG);
    HAS(e.msg, "text.cfg:2");
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(qsim_config_load("/nonexistent/a.cfg", &c, &e), QSIM_ERR_IO);
    HAS(e.msg, "/nonexistent/a.cfg");
}

static void test_bytes(void)
{
    qsim_error e = {{0}};
    FILE *f = fopen(NET, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    qsim_net *net = NULL;
    CU_ASSERT_EQUAL(qsim_net_from_bytes(buf, n, "mem.qbin", &net, &e), QSIM_OK);
    qsim_net_free(net);
    net = NULL;
    CU_ASSERT_EQUAL(qsim_net_from_bytes(buf, n / 2, "half.qbin", &net, &e), QSIM_ERR_FORMAT);
    HAS(e.msg, "half.qbin");
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_EQUAL(qsim_net_from_bytes(buf, 0, NULL, &net, &e), QSIM_ERR_FORMAT);
}

/* A number out of the JSON text: the first "key": after `after`. */
static double json_number(const char *js, const char *after, const char *key)
{
    const char *p = after ? strstr(js, after) : js;
    if (!p) return NAN;
    char k[80];
    snprintf(k, sizeof k, "\"%s\":", key);
    p = strstr(p, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

static void test_report(void)
{
    qsim_error e = {{0}};
    qsim_program *p = NULL;
    qsim_report *r = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, NULL, &r, &e), QSIM_OK);
    qsim_net_info info;
    qsim_net_get_info(g_net, &info, &e);
    qsim_totals t;
    qsim_energy en;
    qsim_area a;
    CU_ASSERT_EQUAL(qsim_report_totals(r, &t, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_energy(r, &en, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_area(r, &a, &e), QSIM_OK);
    CU_ASSERT(t.cycles > 0 && t.energy_pj > 0 && a.total > 0);
    /* the parts add up to the whole */
    CU_ASSERT_DOUBLE_EQUAL(en.mac + en.registers + en.sram + en.dram + en.ppu + en.leakage, en.total, 1e-6 * en.total);
    CU_ASSERT_DOUBLE_EQUAL(en.total, t.energy_pj, 1e-9 * en.total);
    CU_ASSERT_DOUBLE_EQUAL(a.array + a.sram_ifmap + a.sram_weight + a.sram_accum + a.dma + a.ppu + a.control, a.total,
                           1e-9 * a.total);
    double cyc = 0, rd[3] = {0}, wr[3] = {0}, macs = 0;
    for (int32_t i = 1; i < info.n_layers; i++) {
        qsim_layer_figures f;
        CU_ASSERT_EQUAL_FATAL(qsim_report_layer(r, i, &f, &e), QSIM_OK);
        cyc += f.cycles;
        macs += f.macs;
        for (int b = 0; b < 3; b++) {
            rd[b] += f.sram_read_bytes[b];
            wr[b] += f.sram_write_bytes[b];
        }
    }
    CU_ASSERT_DOUBLE_EQUAL(cyc, t.cycles, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(macs, t.macs, 0.5);
    for (int b = 0; b < 3; b++) {
        CU_ASSERT_DOUBLE_EQUAL(rd[b], t.sram_read_bytes[b], 0.5);
        CU_ASSERT_DOUBLE_EQUAL(wr[b], t.sram_write_bytes[b], 0.5);
    }
    /* the JSON text says the same */
    const char *js = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_report_json(r, &js, &e), QSIM_OK);
    CU_ASSERT_DOUBLE_EQUAL(json_number(js, "\"total\"", "cycles"), t.cycles, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(json_number(js, "\"total\"", "energy_pj"), t.energy_pj, 1e-6 * t.energy_pj);
    CU_ASSERT_DOUBLE_EQUAL(json_number(js, "\"effective_config\"", "array.rows"), 16, 0);
    CU_ASSERT_DOUBLE_EQUAL(json_number(js, "\"sram_bytes\"", "read"), t.sram_read_bytes[0], 0.5);
    HAS(js, qsim_source_revision());
    const int32_t *y;
    int64_t cnt;
    CU_ASSERT_EQUAL(qsim_report_output(r, 0, &y, &cnt, &e), QSIM_OK);
    qsim_layer_info out;
    qsim_net_get_layer(g_net, info.output, &out, &e);
    CU_ASSERT_EQUAL(cnt, (int64_t)out.out_c * out.out_h * out.out_w);
    qsim_report_free(r);
    qsim_program_free(p);
}

static void test_batch(void)
{
    qsim_error e = {{0}};
    qsim_net_info info;
    qsim_net_get_info(g_net, &info, &e);
    int64_t per = (int64_t)info.in_c * info.in_h * info.in_w;
    int32_t *x = calloc((size_t)(2 * per), sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    int32_t hi = info.in_signed ? (1 << (info.in_bits - 1)) - 1 : (1 << info.in_bits) - 1;
    for (int64_t i = 0; i < per; i++) {
        x[i] = (int32_t)((i * 7) % (hi + 1));
        x[per + i] = (int32_t)(i % 3 == 0 ? 0 : (i * 5) % (hi + 1));
    }
    qsim_program *p = NULL;
    qsim_report *r1 = NULL, *r2 = NULL, *rb = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    qsim_run_options o;
    qsim_run_options_init(&o);
    o.keep_layer_outputs = 1;
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, x, per, 1, &o, &r1, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, x + per, per, 1, &o, &r2, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, x, 2 * per, 2, &o, &rb, &e), QSIM_OK);
    qsim_totals t1, t2, tb;
    qsim_report_totals(r1, &t1, &e);
    qsim_report_totals(r2, &t2, &e);
    qsim_report_totals(rb, &tb, &e);
    CU_ASSERT_EQUAL(tb.inferences, 2);
    CU_ASSERT_DOUBLE_EQUAL(tb.cycles, (t1.cycles + t2.cycles) / 2, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(tb.energy_pj, (t1.energy_pj + t2.energy_pj) / 2, 1e-6 * tb.energy_pj);
    const int32_t *a, *b, *l;
    int64_t na, nb, nl;
    qsim_report_output(r2, 0, &a, &na, &e);
    qsim_report_output(rb, 1, &b, &nb, &e);
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT(memcmp(a, b, (size_t)na * sizeof *a) == 0);
    /* the kept output of the output layer is the last inference's output */
    CU_ASSERT_EQUAL(qsim_report_layer_output(rb, info.output, &l, &nl, &e), QSIM_OK);
    CU_ASSERT_EQUAL(nl, nb);
    CU_ASSERT(memcmp(l, b, (size_t)nb * sizeof *b) == 0);
    /* out-of-range input values: the core's message, with the inference */
    x[per + 3] = hi + 1;
    qsim_report *bad = NULL;
    CU_ASSERT_EQUAL(qsim_run(p, x, 2 * per, 2, NULL, &bad, &e), QSIM_ERR_ARG);
    HAS(e.msg, "inference 1");
    CU_ASSERT_PTR_NULL(bad);
    qsim_report_free(r1);
    qsim_report_free(r2);
    qsim_report_free(rb);
    qsim_program_free(p);
    free(x);
}

typedef struct {
    int calls;
    double bytes;
} dma_count;

static void on_dma(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start)
{
    (void)is_write;
    (void)addr;
    (void)start;
    dma_count *c = user;
    c->calls++;
    c->bytes += bytes;
}

static void test_hooks(void)
{
    qsim_error e = {{0}};
    qsim_program *p = NULL;
    qsim_report *r = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    dma_count c = {0, 0};
    char vcd[] = "/tmp/qsim_test_api_XXXXXX";
    int fd = mkstemp(vcd);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    qsim_run_options o;
    qsim_run_options_init(&o);
    o.dma_hook = on_dma;
    o.dma_user = &c;
    o.trace_format = QSIM_TRACE_VCD;
    o.trace_path = vcd;
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_OK);
    qsim_totals t;
    qsim_report_totals(r, &t, &e);
    CU_ASSERT(c.calls > 0);
    /* every DRAM byte the report counts went through the hook, once */
    CU_ASSERT_DOUBLE_EQUAL(c.bytes, t.dram_bytes, 0.5);
    FILE *f = fopen(vcd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char head[64] = "";
    CU_ASSERT(fread(head, 1, sizeof head - 1, f) > 0);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(head, "$"));
    remove(vcd);
    qsim_report_free(r);
    r = NULL;
    o.trace_path = "/nonexistent/dir/t.vcd";
    CU_ASSERT_EQUAL(qsim_run(p, NULL, 0, 1, &o, &r, &e), QSIM_ERR_IO);
    HAS(e.msg, "/nonexistent/dir/t.vcd");
    qsim_program_free(p);
}

/* ---- allocator: every allocation of a whole run through the API fails once ---- */

typedef union {
    size_t size;
    max_align_t align;
} api_block;

typedef struct {
    long fail_at, requests, live, bad_osize;
} api_alloc_state;

static void *api_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    api_alloc_state *st = ud;
    api_block *b = ptr ? (api_block *)ptr - 1 : NULL;
    if (b && b->size != osize) st->bad_osize++;
    if (nsize == 0) {
        if (b) st->live--;
        free(b);
        return NULL;
    }
    if (++st->requests == st->fail_at) return NULL;
    api_block *n = realloc(b, sizeof *n + nsize);
    if (!n) return NULL;
    if (!b) st->live++;
    n->size = nsize;
    return n + 1;
}

/* load, configure (bank-level DRAM preset), compile, both engines, JSON */
static qsim_status api_whole_run(qsim_totals *t, qsim_error *e)
{
    qsim_net *net = NULL;
    qsim_config *cfg = NULL;
    qsim_program *p = NULL;
    qsim_report *r = NULL;
    const char *js;
    qsim_run_options o;
    qsim_run_options_init(&o);
    qsim_status st = qsim_net_load(NET, &net, e);
    if (!st) st = qsim_config_load(ARCH, &cfg, e);
    if (!st) st = qsim_config_set(cfg, "dram.model=hbm2", e);
    if (!st) st = qsim_compile(net, cfg, &p, e);
    if (!st) st = qsim_run(p, NULL, 0, 1, &o, &r, e);
    qsim_report_free(r);
    r = NULL;
    o.engine = QSIM_ENGINE_DETAILED;
    if (!st) st = qsim_run(p, NULL, 0, 1, &o, &r, e);
    if (!st) st = qsim_report_json(r, &js, e);
    if (!st) st = qsim_report_totals(r, t, e);
    qsim_report_free(r);
    qsim_program_free(p);
    qsim_config_free(cfg);
    qsim_net_free(net);
    return st;
}

static void test_allocator(void)
{
    api_alloc_state st = {0, 0, 0, 0};
    qsim_alloc_fn fn0;
    void *ud0;
    qsim_get_allocator(&fn0, &ud0);
    qsim_set_allocator(api_alloc, &st);
    qsim_alloc_fn fn;
    void *ud;
    qsim_get_allocator(&fn, &ud);
    CU_ASSERT(fn == api_alloc && ud == &st);
    qsim_error e = {{0}};
    qsim_totals want, got;
    CU_ASSERT_EQUAL_FATAL(api_whole_run(&want, &e), QSIM_OK);
    CU_ASSERT_EQUAL(st.live, 0);
    const long total = st.requests;
    CU_ASSERT(total > 100);
    long nomem = 0, bad = 0;
    for (long n = 1; n <= total; n++) {
        st.fail_at = n;
        st.requests = 0;
        e.msg[0] = 0;
        qsim_status rs = api_whole_run(&got, &e);
        if (rs == QSIM_ERR_NOMEM) nomem++;
        if ((rs != QSIM_OK && !e.msg[0]) || (rs == QSIM_OK && memcmp(&got, &want, sizeof got) != 0) || st.live != 0) {
            if (!bad++)
                fprintf(stderr, "\n  allocation %ld of %ld: status %d, %ld blocks not given back: %s\n", n, total, (int)rs,
                        st.live, e.msg);
            st.live = 0;
        }
    }
    qsim_set_allocator(NULL, NULL);
    qsim_get_allocator(&fn, &ud);
    CU_ASSERT(fn == fn0 && ud == NULL);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(st.bad_osize, 0);
    CU_ASSERT(nomem > total / 2);
    printf("\n    %ld allocations, each failed once: %ld out of memory ", total, nomem);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("api", suite_init, suite_clean);
    CU_add_test(s, "version", test_version);
    CU_add_test(s, "NULL handles and ranges", test_null_and_range);
    CU_add_test(s, "configuration", test_config);
    CU_add_test(s, "network from bytes", test_bytes);
    CU_add_test(s, "report", test_report);
    CU_add_test(s, "batch", test_batch);
    CU_add_test(s, "hooks and traces", test_hooks);
    CU_add_test(s, "allocator: every allocation of a whole run fails once", test_allocator);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
