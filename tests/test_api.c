/* The public API (include/qsim/qsim.h, api/qsim.c), linked against
 * libqsim.so as a user would: bad calls (NULL handles, indices out of range,
 * a caller built for another API version) are a status and a message; the
 * report's figures agree with each other and with the JSON text; a batch is
 * the mean of its inferences; overrides, hooks and traces do what they say.
 * Outputs against the NumPy reference: tests/test_python_api.py. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* beside it, its GTKWave view and layer names, as qsim run writes them; the message says where */
    const char *msgs = NULL;
    CU_ASSERT_EQUAL(qsim_report_messages(r, &msgs, &e), QSIM_OK);
    HAS(msgs, "view it: gtkwave");
    char side[64];
    snprintf(side, sizeof side, "%s.gtkw", vcd);
    CU_ASSERT_EQUAL(remove(side), 0);
    snprintf(side, sizeof side, "%s.layers.txt", vcd);
    CU_ASSERT_EQUAL(remove(side), 0);
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

/* ---- decoding with a KV cache (docs/decode.md, docs/api.md) ---------------------- */

static qsim_status decode_run(int32_t steps, const int32_t *step_inputs, qsim_decode_report **r, qsim_error *e)
{
    qsim_net *net = NULL;
    qsim_status st = qsim_net_load(QSIM_SOURCE_DIR "/models/nets/decoder_kv.qbin", &net, e);
    qsim_decode_options d;
    qsim_decode_options_init(&d);
    d.steps = steps;
    d.step_inputs = step_inputs;
    if (!st) st = qsim_decode(net, g_cfg, NULL, 0, &d, NULL, r, e);
    qsim_net_free(net);
    return st;
}

static void test_decode(void)
{
    qsim_error e = {{0}};
    qsim_decode_report *r = NULL;
    CU_ASSERT_EQUAL_FATAL(decode_run(3, NULL, &r, &e), QSIM_OK);
    const char *json = NULL;
    CU_ASSERT_EQUAL(qsim_decode_report_json(r, &json, &e), QSIM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"prompt_tokens\": 8,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"step_input\": \"fed_back\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "{\"step\": 2, \"past\": 10,"));
    char *text = NULL;
    CU_ASSERT_EQUAL(qsim_decode_report_text(r, &text, &e), QSIM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "prompt 8 tokens, 3 decode steps (step inputs fed back), 2 KV caches"));
    qsim_text_free(text);
    const int32_t *pre, *s0, *s1;
    int64_t npre, n0, n1;
    CU_ASSERT_EQUAL(qsim_decode_report_output(r, -1, &pre, &npre, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_decode_report_output(r, 0, &s0, &n0, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_decode_report_output(r, 2, &s1, &n1, &e), QSIM_OK);
    CU_ASSERT(npre == 16 * 8 && n0 == 16 && n1 == 16);
    CU_ASSERT_EQUAL(qsim_decode_report_output(r, 3, &s1, &n1, &e), QSIM_ERR_ARG);
    /* teacher forcing with the rows that were fed back gives the same outputs */
    int32_t rows[3 * 16];
    for (int c = 0; c < 16; c++) rows[c] = pre[c * 8 + 7];
    for (int k = 1; k < 3; k++) {
        const int32_t *prev;
        qsim_decode_report_output(r, k - 1, &prev, &n0, &e);
        memcpy(rows + 16 * k, prev, 16 * sizeof *rows);
    }
    qsim_decode_report *r2 = NULL;
    CU_ASSERT_EQUAL_FATAL(decode_run(3, rows, &r2, &e), QSIM_OK);
    for (int k = 0; k < 3; k++) {
        const int32_t *a, *b;
        qsim_decode_report_output(r, k, &a, &n0, &e);
        qsim_decode_report_output(r2, k, &b, &n1, &e);
        CU_ASSERT(!memcmp(a, b, 16 * sizeof *a));
    }
    qsim_decode_report_free(r2);
    qsim_decode_report_free(r);
    /* refusals */
    CU_ASSERT_EQUAL(decode_run(25, NULL, &r, &e), QSIM_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "decoder_kv.qbin: layer 8 'k_cache' (kvcache): a KV cache longer than its "
                                         "maximum: 33 tokens (a prompt of 8 + 25 decode steps)"));
    CU_ASSERT_EQUAL(decode_run(0, NULL, &r, &e), QSIM_ERR_ARG);
    qsim_decode_options d;
    qsim_decode_options_init(&d);
    d.steps = 1;
    d.struct_size--;
    CU_ASSERT_EQUAL(qsim_decode(g_net, g_cfg, NULL, 0, &d, NULL, &r, &e), QSIM_ERR_VERSION);
    d.struct_size++;
    CU_ASSERT_EQUAL(qsim_decode(g_net, g_cfg, NULL, 0, &d, NULL, &r, &e), QSIM_ERR_FORMAT); /* tiny: a CNN */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "layer 0 'input'"));
    /* every allocation of a decode run fails once: a clean error, nothing leaked */
    api_alloc_state st = {0, 0, 0, 0};
    qsim_set_allocator(api_alloc, &st);
    CU_ASSERT_EQUAL_FATAL(decode_run(2, NULL, &r, &e), QSIM_OK);
    qsim_decode_report_free(r);
    const long total = st.requests;
    long bad = 0;
    for (long n = 1; n <= total; n++) {
        st.fail_at = n;
        st.requests = 0;
        st.live = 0;
        e.msg[0] = 0;
        r = NULL;
        qsim_status rs = decode_run(2, NULL, &r, &e);
        qsim_decode_report_free(r);
        if ((rs != QSIM_OK && !e.msg[0]) || st.live != 0) {
            if (!bad++)
                fprintf(stderr, "\n  decode: allocation %ld of %ld: status %d, %ld blocks left: %s\n", n, total, (int)rs,
                        st.live, e.msg);
        }
    }
    qsim_set_allocator(NULL, NULL);
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- what the qsim command is built on (docs/api.md, "The command's calls") ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *b = realloc(buf, cap);
            if (!b) break;
            buf = b;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static void test_texts(void)
{
    qsim_error e = {{0}};
    char *text = (char *)1;
    qsim_net_info info;
    CU_ASSERT_EQUAL_FATAL(qsim_net_get_info(g_net, &info, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_net_describe(NULL, &text, &e), QSIM_ERR_ARG);
    CU_ASSERT_PTR_NULL(text);
    CU_ASSERT_EQUAL(qsim_net_describe(g_net, NULL, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL_FATAL(qsim_net_describe(g_net, &text, &e), QSIM_OK);
    /* the header names the file; one row per layer; the MAC total is the layers' sum */
    HAS(text, "network '");
    HAS(text, NET);
    int64_t macs = 0;
    for (int32_t i = 0; i < info.n_layers; i++) {
        qsim_layer_info li;
        CU_ASSERT_EQUAL(qsim_net_get_layer(g_net, i, &li, &e), QSIM_OK);
        macs += li.macs;
        HAS(text, li.name);
    }
    char want[96];
    snprintf(want, sizeof want, "MACs per inference: %lld\n", (long long)macs);
    HAS(text, want);
    CU_ASSERT_EQUAL(count_lines(text), 5 + info.n_layers + 1);
    qsim_text_free(text);
    qsim_text_free(NULL);

    qsim_program *p = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    qsim_program_info pi;
    CU_ASSERT_EQUAL(qsim_program_get_info(NULL, &pi, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_program_get_info(p, NULL, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL_FATAL(qsim_program_get_info(p, &pi, &e), QSIM_OK);
    CU_ASSERT(pi.n_instructions > 0);
    CU_ASSERT(pi.dram_bytes > 0);
    char *summary = NULL, *listing = NULL, *warn = NULL;
    CU_ASSERT_EQUAL(qsim_program_listing(NULL, 0, &summary, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL_FATAL(qsim_program_listing(p, 0, &summary, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_program_listing(p, 1, &listing, &e), QSIM_OK);
    /* the listing is the summary plus every instruction: longer, by at least one line per instruction */
    CU_ASSERT(count_lines(listing) >= count_lines(summary) + pi.n_instructions);
    CU_ASSERT_EQUAL_FATAL(qsim_program_warnings(p, &warn, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(warn, ""); /* dlac.cfg streams the tiny net at full rate */
    qsim_text_free(summary);
    qsim_text_free(listing);
    qsim_text_free(warn);
    qsim_program_free(p);

    /* a narrow weight buffer under a wide array: the bandwidth warning (docs/timing.md, Buffer bandwidth) */
    qsim_config *c = NULL;
    const char *sets[] = {"array.rows=64", "array.cols=64", "buffer.weight.banks=1"};
    CU_ASSERT_EQUAL_FATAL(qsim_config_load_set(ARCH, sets, 3, &c, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, c, &p, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_program_warnings(p, &warn, &e), QSIM_OK);
    HAS(warn, "warning: buffer bandwidth throttles the array");
    HAS(warn, "weight buffer");
    qsim_text_free(warn);
    qsim_report *r = NULL;
    const char *msgs = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, NULL, &r, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_messages(r, &msgs, &e), QSIM_OK);
    HAS(msgs, "are buffer stalls");
    CU_ASSERT_EQUAL(qsim_report_messages(NULL, &msgs, &e), QSIM_ERR_ARG);
    qsim_report_free(r);
    qsim_program_free(p);
    qsim_config_free(c);
}

static void test_config_load_set(void)
{
    qsim_error e = {{0}};
    qsim_config *c = (qsim_config *)1;
    char v[64];
    const char *sets[] = {"array.rows=8", "array.cols=4"};
    CU_ASSERT_EQUAL(qsim_config_load_set(NULL, sets, 2, &c, &e), QSIM_ERR_ARG);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(qsim_config_load_set(ARCH, NULL, 2, &c, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_config_load_set(ARCH, sets, -1, &c, &e), QSIM_ERR_ARG);
    const char *with_null[] = {"array.rows=8", NULL};
    CU_ASSERT_EQUAL(qsim_config_load_set(ARCH, with_null, 2, &c, &e), QSIM_ERR_ARG);
    HAS(e.msg, "assignment 1 is NULL");
    CU_ASSERT_EQUAL_FATAL(qsim_config_load_set(ARCH, sets, 2, &c, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "8");
    CU_ASSERT_EQUAL(qsim_config_get(c, "array.cols", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "4");
    CU_ASSERT_EQUAL(qsim_config_is_scalesim(c), 0);
    CU_ASSERT_EQUAL(qsim_config_is_scalesim(NULL), 0);
    /* the copy keeps the overrides */
    qsim_config *d = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_config_copy(c, &d, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_config_get(d, "array.rows", v, sizeof v, &e), QSIM_OK);
    CU_ASSERT_STRING_EQUAL(v, "8");
    qsim_config_free(d);
    qsim_config_free(c);
    const char *bad[] = {"array.rows=0"};
    CU_ASSERT_EQUAL(qsim_config_load_set(ARCH, bad, 1, &c, &e), QSIM_ERR_CONFIG);
    HAS(e.msg, "array.rows");
    CU_ASSERT_EQUAL(qsim_config_load_set(QSIM_SOURCE_DIR "/models/scalesim/scale.cfg", NULL, 0, &c, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_config_is_scalesim(c), 1);
    qsim_config_free(c);
}

typedef struct {
    int inference_calls, cycle_calls, layer_calls;
    uint64_t last_done, last_total;
} progress_count;

static void on_progress(void *user, qsim_progress_kind kind, uint64_t done, uint64_t total)
{
    progress_count *c = user;
    if (kind == QSIM_PROGRESS_INFERENCE) c->inference_calls++;
    else if (kind == QSIM_PROGRESS_CYCLES) c->cycle_calls++;
    else c->layer_calls++;
    c->last_done = done;
    c->last_total = total;
}

/* the JSON text without its host-time field */
static void strip_wall(char *js)
{
    char *w = strstr(js, "\"wall_seconds\"");
    if (!w) return;
    char *end = strpbrk(w, ",\n}");
    if (end) memmove(w, end, strlen(end) + 1);
}

static void test_jobs_and_files(void)
{
    qsim_error e = {{0}};
    qsim_net_info info;
    qsim_net_get_info(g_net, &info, &e);
    int64_t per = (int64_t)info.in_c * info.in_h * info.in_w;
    enum { N = 5 };
    int32_t *x = calloc((size_t)(N * per), sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    int32_t hi = info.in_signed ? (1 << (info.in_bits - 1)) - 1 : (1 << info.in_bits) - 1;
    for (int64_t i = 0; i < N * per; i++) x[i] = (int32_t)((i * 11 + i / per) % (hi + 1));
    int32_t labels[N] = {0, 1, 2, 3, 4};
    qsim_program *p = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    qsim_run_options o;
    qsim_run_options_init(&o);
    qsim_run_extras x2;
    qsim_run_extras_init(&x2);
    CU_ASSERT_EQUAL(x2.dump_index, -1);
    o.labels = labels;
    o.keep_layer_outputs = 1;
    progress_count pc = {0, 0, 0, 0, 0};
    x2.progress = on_progress;
    x2.progress_user = &pc;
    qsim_report *one = NULL, *three = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_run_with(p, x, N * per, N, &o, &x2, &one, &e), QSIM_OK);
    CU_ASSERT_EQUAL(pc.inference_calls, N);
    CU_ASSERT_EQUAL(pc.last_done, N);
    CU_ASSERT_EQUAL(pc.last_total, N);
    x2.jobs = 3;
    x2.progress = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_run_with(p, x, N * per, N, &o, &x2, &three, &e), QSIM_OK);
    /* no figure depends on the number of threads: same JSON (but host time), outputs, last layer outputs */
    const char *j1, *j3;
    qsim_report_json(one, &j1, &e);
    qsim_report_json(three, &j3, &e);
    char *a = strdup(j1), *b = strdup(j3);
    strip_wall(a);
    strip_wall(b);
    CU_ASSERT_STRING_EQUAL(a, b);
    if (strcmp(a, b)) {
        FILE *fa = fopen("/tmp/qsim_test_api_j1.json", "w"), *fb = fopen("/tmp/qsim_test_api_j3.json", "w");
        if (fa) fputs(a, fa), fclose(fa);
        if (fb) fputs(b, fb), fclose(fb);
    }
    free(a);
    free(b);
    for (int32_t k = 0; k < N; k++) {
        const int32_t *d1, *d3;
        int64_t n1, n3;
        qsim_report_output(one, k, &d1, &n1, &e);
        qsim_report_output(three, k, &d3, &n3, &e);
        CU_ASSERT(n1 == n3 && memcmp(d1, d3, (size_t)n1 * sizeof *d1) == 0);
    }
    const int32_t *l1, *l3;
    int64_t m1, m3;
    CU_ASSERT_EQUAL(qsim_report_layer_output(three, info.output, &l3, &m3, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_layer_output(one, info.output, &l1, &m1, &e), QSIM_OK);
    CU_ASSERT(m1 == m3 && memcmp(l1, l3, (size_t)m1 * sizeof *l1) == 0);

    /* text, JSON and CSV files: the JSON file is the report's JSON; the CSV has a row per layer */
    char dir[] = "/tmp/qsim_test_api_dir_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[256], path2[256];
    snprintf(path, sizeof path, "%s/r.json", dir);
    CU_ASSERT_EQUAL(qsim_report_write_json(three, path, &e), QSIM_OK);
    char *file = read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    CU_ASSERT_EQUAL(strncmp(file, j3, strlen(j3)), 0);
    free(file);
    remove(path);
    snprintf(path, sizeof path, "%s/r.csv", dir);
    CU_ASSERT_EQUAL(qsim_report_write_csv(three, path, &e), QSIM_OK);
    file = read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    CU_ASSERT_EQUAL(count_lines(file), info.n_layers); /* header + layers 1..n-1 */
    free(file);
    remove(path);
    CU_ASSERT_EQUAL(qsim_report_write_csv(three, "/nonexistent/dir/r.csv", &e), QSIM_ERR_IO);
    HAS(e.msg, "/nonexistent/dir/r.csv");
    char *table = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_report_text(three, &table, &e), QSIM_OK);
    qsim_layer_info li;
    qsim_net_get_layer(g_net, info.output, &li, &e);
    HAS(table, li.name);
    qsim_text_free(table);
    CU_ASSERT_EQUAL(qsim_report_text(NULL, &table, &e), QSIM_ERR_ARG);
    qsim_report_free(one);
    qsim_report_free(three);

    /* dumps: one inference of the batch into DIR itself, one .npy per layer, readable back */
    x2.jobs = 2;
    x2.dump_dir = dir;
    x2.dump_index = N; /* out of range */
    qsim_report *r = NULL;
    CU_ASSERT_EQUAL(qsim_run_with(p, x, N * per, N, &o, &x2, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "--dump-index 5: the batch has 5 inferences (0..4)");
    x2.dump_index = 2;
    CU_ASSERT_EQUAL_FATAL(qsim_run_with(p, x, N * per, N, &o, &x2, &r, &e), QSIM_OK);
    for (int32_t i = 0; i < info.n_layers; i++) {
        qsim_net_get_layer(g_net, i, &li, &e);
        snprintf(path, sizeof path, "%s/%03d_%s.npy", dir, (int)i, li.name);
        qsim_array arr;
        CU_ASSERT_EQUAL(qsim_npy_load(path, &arr, &e), QSIM_OK);
        CU_ASSERT_EQUAL(arr.ndim, 3);
        CU_ASSERT_EQUAL(arr.count, (int64_t)li.out_c * li.out_h * li.out_w);
        if (i == 0) CU_ASSERT(memcmp(arr.data, x + 2 * per, (size_t)per * sizeof *x) == 0); /* inference 2's input */
        qsim_array_free(&arr);
        remove(path);
    }
    qsim_report_free(r);
    r = NULL;
    x2.dump_dir = NULL;
    x2.dump_index = -1;
    o.labels = NULL;

    /* the DRAM request trace: refused without a bank-level model; else sorted by cycle */
    snprintf(path2, sizeof path2, "%s/d.trace", dir);
    x2.dram_trace_path = path2;
    CU_ASSERT_EQUAL(qsim_run_with(p, NULL, 0, 1, &o, &x2, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "needs a bank-level DRAM model");
    qsim_config *ddr = NULL;
    const char *dram[] = {"dram.model=ddr4_3200"};
    qsim_program *pd = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_config_load_set(ARCH, dram, 1, &ddr, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, ddr, &pd, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run_with(pd, NULL, 0, 1, &o, &x2, &r, &e), QSIM_OK);
    file = read_file(path2, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    CU_ASSERT(count_lines(file) > 0);
    unsigned long long prev = 0, addr, cyc;
    char kind[8];
    int sorted = 1, lines = 0;
    for (char *line = file; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (sscanf(line, "0x%llx %7s %llu", &addr, kind, &cyc) != 3) {
            sorted = 0;
            break;
        }
        sorted &= cyc >= prev;
        prev = cyc;
        lines++;
    }
    CU_ASSERT(sorted);
    CU_ASSERT_EQUAL(lines, count_lines(file));
    free(file);
    remove(path2);
    qsim_report_free(r);
    r = NULL;
    qsim_program_free(pd);
    qsim_config_free(ddr);
    x2.dram_trace_path = NULL;

    /* a single inference tells the progress hook its cycles */
    pc.cycle_calls = 0;
    x2.progress = on_progress;
    CU_ASSERT_EQUAL_FATAL(qsim_run_with(p, NULL, 0, 1, &o, &x2, &r, &e), QSIM_OK);
    qsim_totals t;
    qsim_report_totals(r, &t, &e);
    CU_ASSERT(pc.cycle_calls >= 1);
    CU_ASSERT(pc.last_done >= (uint64_t)t.cycles);
    qsim_report_free(r);
    r = NULL;

    /* extras of another layout are refused, not read */
    x2.struct_size = 8;
    CU_ASSERT_EQUAL(qsim_run_with(p, NULL, 0, 1, &o, &x2, &r, &e), QSIM_ERR_VERSION);
    HAS(e.msg, "extras of 8 bytes");
    CU_ASSERT_PTR_NULL(r);
    /* NULL extras: the defaults, as qsim_run */
    CU_ASSERT_EQUAL(qsim_run_with(p, NULL, 0, 1, NULL, NULL, &r, &e), QSIM_OK);
    qsim_report_free(r);
    rmdir(dir);
    qsim_program_free(p);
    free(x);
}

static void test_topology(void)
{
    qsim_error e = {{0}};
    qsim_config *ss = NULL;
    qsim_report *r = (qsim_report *)1;
    CU_ASSERT_EQUAL_FATAL(qsim_config_load_set(QSIM_SOURCE_DIR "/models/scalesim/scale.cfg", NULL, 0, &ss, &e), QSIM_OK);
    const char *topo = QSIM_SOURCE_DIR "/models/scalesim/gemm_example.csv";
    CU_ASSERT_EQUAL(qsim_topology_run(NULL, topo, NULL, &r, &e), QSIM_ERR_ARG);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(qsim_topology_run(ss, NULL, NULL, &r, &e), QSIM_ERR_ARG);
    qsim_topology_options o;
    qsim_topology_options_init(&o);
    CU_ASSERT_EQUAL(o.gemm, -1);
    CU_ASSERT_EQUAL(o.weight_bits, 8);
    o.weight_bits = 3;
    CU_ASSERT_EQUAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "weight_bits 3");
    o.weight_bits = 8;
    o.struct_size = 4;
    CU_ASSERT_EQUAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_ERR_VERSION);
    qsim_topology_options_init(&o);
    CU_ASSERT_EQUAL(qsim_topology_run(ss, "/nonexistent.csv", &o, &r, &e), QSIM_ERR_IO);
    HAS(e.msg, "/nonexistent.csv");
    char dir[] = "/tmp/qsim_test_api_ss_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    o.gemm = 1;
    o.report_dir = dir;
    o.replay_reads = 1;
    progress_count pc = {0, 0, 0, 0, 0};
    o.progress = on_progress;
    o.progress_user = &pc;
    CU_ASSERT_EQUAL_FATAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_OK);
    CU_ASSERT(pc.layer_calls >= 1);
    CU_ASSERT_EQUAL(pc.last_done, pc.last_total);
    /* the network-only figures refuse a topology report, with a message */
    qsim_totals t;
    const char *js;
    CU_ASSERT_EQUAL(qsim_report_totals(r, &t, &e), QSIM_ERR_ARG);
    HAS(e.msg, "topology");
    CU_ASSERT_EQUAL(qsim_report_json(r, &js, &e), QSIM_ERR_ARG);
    char *text = NULL, *out = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_report_text(r, &text, &e), QSIM_OK);
    CU_ASSERT(strlen(text) > 0);
    CU_ASSERT_EQUAL_FATAL(qsim_report_scalesim_stdout(r, &out, &e), QSIM_OK);
    CU_ASSERT_EQUAL(count_lines(strstr(out, "Compute cycles") ? out : ""), count_lines(out));
    HAS(out, "Compute cycles:");
    CU_ASSERT_EQUAL(qsim_report_write_scalesim(r, &e), QSIM_OK);
    static const char *const files[] = {"COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        size_t len = 0;
        char *f = read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL(f);
        CU_ASSERT(len > 0);
        free(f);
        remove(path);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/t.json", dir);
    CU_ASSERT_EQUAL(qsim_report_write_json(r, path, &e), QSIM_OK);
    char *f = read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(f);
    if (f) HAS(f, "\"topology\"");
    free(f);
    remove(path);
    rmdir(dir);
    qsim_text_free(text);
    qsim_text_free(out);
    qsim_report_free(r);
    /* a network report has no SCALE-Sim files; a topology run without a directory neither */
    qsim_program *p = NULL;
    qsim_report *nr = NULL;
    CU_ASSERT_EQUAL_FATAL(qsim_compile(g_net, g_cfg, &p, &e), QSIM_OK);
    CU_ASSERT_EQUAL_FATAL(qsim_run(p, NULL, 0, 1, NULL, &nr, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_write_scalesim(nr, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_report_scalesim_stdout(nr, &out, &e), QSIM_ERR_ARG);
    qsim_report_free(nr);
    qsim_program_free(p);
    qsim_topology_options_init(&o);
    o.gemm = 1;
    CU_ASSERT_EQUAL_FATAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_OK);
    CU_ASSERT_EQUAL(qsim_report_write_scalesim(r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "no report_dir");
    qsim_report_free(r);
    /* SCALE-Sim's trace files need a report directory; with one, each layer gets its folder of traces */
    o.traces = 1;
    CU_ASSERT_EQUAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_ERR_ARG);
    HAS(e.msg, "--traces needs --report-dir");
    CU_ASSERT_PTR_NULL(r);
    char tdir[] = "/tmp/qsim_test_api_tr_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tdir));
    o.report_dir = tdir;
    CU_ASSERT_EQUAL_FATAL(qsim_topology_run(ss, topo, &o, &r, &e), QSIM_OK);
    char layer0[96];
    snprintf(layer0, sizeof layer0, "%s/layer0", tdir);
    struct stat sb;
    CU_ASSERT(stat(layer0, &sb) == 0 && S_ISDIR(sb.st_mode));
    qsim_report_free(r);
    r = NULL;
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", tdir);
    CU_ASSERT_EQUAL(system(rm), 0);
    o.traces = 0;
    o.report_dir = NULL;
    /* qsim scalesim's -p needs a SCALE-Sim configuration */
    o.scalesim_outdir = "/tmp";
    CU_ASSERT_EQUAL(qsim_topology_run(g_cfg, topo, &o, &r, &e), QSIM_ERR_CONFIG);
    HAS(e.msg, "needs a SCALE-Sim configuration");
    qsim_config_free(ss);
}

static void test_npy(void)
{
    qsim_error e = {{0}};
    qsim_array a;
    CU_ASSERT_EQUAL(qsim_npy_load(NULL, &a, &e), QSIM_ERR_ARG);
    CU_ASSERT_EQUAL(qsim_npy_load("x.npy", NULL, &e), QSIM_ERR_ARG);
    /* a (2, 3) int16 array written by hand from the format's description (NumPy's .npy v1.0) */
    char path[] = "/tmp/qsim_test_api_npy_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    const char *dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }";
    char header[128];
    memset(header, ' ', sizeof header);
    size_t hl = 128 - 10;
    memcpy(header, dict, strlen(dict));
    header[hl - 1] = '\n';
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char len2[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(len2, 1, 2, f);
    fwrite(header, 1, hl, f);
    int16_t v[6] = {-3, 0, 7, 32767, -32768, 1};
    fwrite(v, sizeof *v, 6, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(qsim_npy_load(path, &a, &e), QSIM_OK);
    CU_ASSERT_EQUAL(a.ndim, 2);
    CU_ASSERT_EQUAL(a.shape[0], 2);
    CU_ASSERT_EQUAL(a.shape[1], 3);
    CU_ASSERT_EQUAL(a.count, 6);
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(a.data[i], v[i]);
    qsim_array_free(&a);
    CU_ASSERT_PTR_NULL(a.data);
    qsim_array_free(NULL);
    /* truncated: the message names the file */
    if (truncate(path, 8 + 2 + (off_t)hl + 4) == 0) {
        CU_ASSERT_EQUAL(qsim_npy_load(path, &a, &e), QSIM_ERR_FORMAT);
        HAS(e.msg, path);
    }
    remove(path);
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
    CU_add_test(s, "texts of the command", test_texts);
    CU_add_test(s, "configuration with overrides", test_config_load_set);
    CU_add_test(s, "threads, dumps, DRAM trace, progress", test_jobs_and_files);
    CU_add_test(s, "decode with a KV cache", test_decode);
    CU_add_test(s, "SCALE-Sim topologies", test_topology);
    CU_add_test(s, ".npy arrays", test_npy);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
