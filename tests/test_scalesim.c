/* CUnit tests of SCALE-Sim's files in qsim (models/qs_scalesim.h,
 * docs/scalesim.md): configurations in every dialect real files use, every
 * bad-input path naming file and line, topologies in both forms, the
 * synthetic per-layer network (SCALE-Sim's ofmap size and GEMM dimensions per
 * dataflow, deterministic operands), and SCALE-Sim's report files and number
 * format (cli/report.c). Exact cycle counts are tests/test_scalesim_timing.py's. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_alloc.h"
#include "compiler.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_scalesim.h"
#include "scalesim_reads.h"
#include "scalesim_reads.h"
#include "report.h"
#include "sim.h"

#ifndef QSIM_SOURCE_DIR
#define QSIM_SOURCE_DIR "."
#endif

static void src_path(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/%s", QSIM_SOURCE_DIR, rel); }

/* A SCALE-Sim v2 config as configs/scale.cfg writes it; %s slots let tests
 * change one line. Lines: 1 [general], 2 run_name, 4 [architecture_presets],
 * 5 ArrayHeight, 6 ArrayWidth, 7-9 SRAMs, 10-12 offsets, 13 Bandwidth,
 * 14 Dataflow, 15 MemoryBanks, 17 [run_presets], 18 InterfaceBandwidth. */
static const char *BASE =
    "[general]\n"
    "run_name = scale_example_run_32x32_os\n"
    "\n"
    "[architecture_presets]\n"
    "ArrayHeight:    32\n"
    "ArrayWidth:     32\n"
    "IfmapSramSzkB:    64\n"
    "FilterSramSzkB:   64\n"
    "OfmapSramSzkB:    64\n"
    "IfmapOffset:    0\n"
    "FilterOffset:   10000000\n"
    "OfmapOffset:    20000000\n"
    "Bandwidth : 10\n"
    "Dataflow : os\n"
    "MemoryBanks: 1\n"
    "\n"
    "[run_presets]\n"
    "InterfaceBandwidth: CALC\n";

/* BASE with line `line` (1-based) replaced by `repl` (NULL: deleted). */
static char *with_line(int line, const char *repl)
{
    static char buf[4096];
    size_t o = 0;
    int ln = 1;
    for (const char *p = BASE; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p) + 1;
        if (ln == line) {
            if (repl) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\n", repl);
        } else {
            memcpy(buf + o, p, len);
            o += len;
        }
        p += len;
        ln++;
    }
    buf[o] = '\0';
    return buf;
}

static qs_status parse_cfg(const char *text, const char *const *sets, int n, qs_arch *a, qs_scalesim_cfg *c,
                           qs_error *e)
{
    memset(e, 0, sizeof *e);
    return qs_scalesim_parse_config(text, "my.cfg", sets, n, a, c, e);
}

/* the message names the file and line */
#define CHECK_MSG(e, needle)                                                        \
    do {                                                                            \
        int found_ = strstr((e).msg, needle) != NULL;                               \
        if (!found_) fprintf(stderr, "\n  message '%s' lacks '%s'\n", (e).msg, needle); \
        CU_ASSERT(found_);                                                          \
    } while (0)

/* ---- configuration ----------------------------------------------------------- */

static void test_cfg_base(void)
{
    qs_arch a;
    qs_scalesim_cfg c;
    qs_error e;
    qs_status st = parse_cfg(BASE, NULL, 0, &a, &c, &e);
    if (st) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_STRING_EQUAL(a.name, "scale_example_run_32x32_os");
    CU_ASSERT_EQUAL(a.rows, 32);
    CU_ASSERT_EQUAL(a.cols, 32);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_OS);
    CU_ASSERT_EQUAL(a.ifmap.size_kib, 64);
    CU_ASSERT_EQUAL(a.weight.size_kib, 64);
    CU_ASSERT_EQUAL(a.accum.size_kib, 64);
    CU_ASSERT_EQUAL(a.ifmap.double_buffer, 1);
    CU_ASSERT_EQUAL(a.weight.double_buffer, 1);
    CU_ASSERT_EQUAL(a.accum.double_buffer, 1);
    CU_ASSERT_EQUAL(a.zero_skip, QS_SKIP_NONE);
    CU_ASSERT_EQUAL(a.weight_path_bits, 8);
    CU_ASSERT_EQUAL(a.max_weight_bits, 8);
    CU_ASSERT_EQUAL(a.max_act_bits, 8);
    CU_ASSERT_EQUAL(a.acc_bits, 32);
    CU_ASSERT_EQUAL(a.overflow, QS_OVF_WRAP);
    CU_ASSERT_EQUAL(a.skip_group, 32);
    CU_ASSERT_DOUBLE_EQUAL(a.dram_bytes_per_cycle, 10.0, 1e-12);
    CU_ASSERT_EQUAL(a.timing, QS_TIMING_SCALESIM);
    CU_ASSERT_EQUAL(a.scalesim_bandwidth, 0);
    CU_ASSERT_EQUAL(c.user_bandwidth, 0);
    CU_ASSERT_EQUAL(c.bandwidth, 10);
    CU_ASSERT_EQUAL(c.memory_banks, 1);
    CU_ASSERT_EQUAL(c.ofmap_offset, 20000000);
    CU_ASSERT_EQUAL(c.n_notes, 0);
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "x", &e), QS_OK);
    /* the technology table is found from anywhere */
    CU_ASSERT_EQUAL(access(a.tech_table, R_OK), 0);
    CU_ASSERT_EQUAL(access(qs_scalesim_default_tech(), R_OK), 0);
}

static void test_cfg_dialects(void)
{
    qs_arch a, b;
    qs_scalesim_cfg c;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(parse_cfg(BASE, NULL, 0, &a, NULL, &e), QS_OK);
    /* '=' separators, no spaces, other key case, comments of both kinds,
     * inline comments, a BOM, CRLF, v3 keys and sections */
    const char *v3 =
        "\xEF\xBB\xBF; a SCALE-Sim v3 configuration\r\n"
        "# hash comment\r\n"
        "[ General ]\r\n"
        "RUN_NAME=scale_example_run_32x32_os\r\n"
        "[architecture_presets]\r\n"
        "arrayheight=32\r\n"
        "ARRAYWIDTH = 32   ; inline comment\r\n"
        "ifmapsramszkb = 64\r\n"
        "filtersramszkB:64\r\n"
        "OfmapSramSzkB   :   64   # hash inline comment\r\n"
        "IfmapOffset = 0\r\n"
        "FilterOffset = 10000000\r\n"
        "OfmapOffset = 20000000\r\n"
        "Bandwidth = 10\r\n"
        "Dataflow = OS\r\n"
        "MemoryBanks = 1\r\n"
        "ReadRequestBuffer: 32\r\n"
        "WriteRequestBuffer: 32\r\n"
        "OnChipMemoryBanks:   1\r\n"
        "[layout]\r\n"
        "IfmapCustomLayout: False\r\n"
        "IfmapSRAMBankBandwidth: 10\r\n"
        "SomeFutureKey: 3\r\n"
        "[sparsity]\r\n"
        "SparsitySupport : false\r\n"
        "SparseRep : ellpack_block\r\n"
        "BlockSize : 8\r\n"
        "[run_presets]\r\n"
        "InterfaceBandwidth = calc\r\n"
        "UseRamulatorTrace = False\r\n"
        "SRAM_row_size: 2\r\n";
    qs_status st = parse_cfg(v3, NULL, 0, &b, &c, &e);
    if (st) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(c.n_notes, 0);
    /* same architecture (the name field compared too) */
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);

    /* USER bandwidth: scalesim_bandwidth = Bandwidth; one value per bank */
    CU_ASSERT_EQUAL(parse_cfg(with_line(18, "InterfaceBandwidth: USER"), NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_EQUAL(a.scalesim_bandwidth, 10);
    CU_ASSERT_EQUAL(c.user_bandwidth, 1);
    char two[8192];
    snprintf(two, sizeof two, "%s", with_line(13, "Bandwidth : 20, 30"));
    char *mb = strstr(two, "MemoryBanks: 1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mb);
    mb[13] = '2';
    char *calc = strstr(two, "CALC");
    memcpy(calc, "USER", 4);
    st = parse_cfg(two, NULL, 0, &a, &c, &e);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(a.scalesim_bandwidth, 20);
    CU_ASSERT_EQUAL(c.n_bandwidths, 2);
    CU_ASSERT_EQUAL(c.memory_banks, 2);
    CU_ASSERT_EQUAL(c.n_notes, 1); /* MemoryBanks > 1: memory maps ignored */
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes[0], "my.cfg:15:"));

    /* dataflows */
    CU_ASSERT_EQUAL(parse_cfg(with_line(14, "Dataflow : ws"), NULL, 0, &a, NULL, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_WS);
    CU_ASSERT_EQUAL(parse_cfg(with_line(14, "Dataflow : is"), NULL, 0, &a, NULL, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_IS);
    /* upper case: SCALE-Sim v2 warns and runs os; qsim runs what is written and says so */
    qs_scalesim_cfg uc;
    CU_ASSERT_EQUAL_FATAL(parse_cfg(with_line(14, "Dataflow : WS"), NULL, 0, &a, &uc, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_WS);
    CU_ASSERT_EQUAL_FATAL(uc.n_notes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(uc.notes[0], "my.cfg:14: Dataflow 'WS': qsim runs ws; SCALE-Sim v2"));
    CU_ASSERT_EQUAL_FATAL(parse_cfg(with_line(14, "Dataflow : OS"), NULL, 0, &a, &uc, &e), QS_OK);
    CU_ASSERT_EQUAL(uc.n_notes, 0); /* os either way */
    /* CALC without Bandwidth: SCALE-Sim does not read it then */
    CU_ASSERT_EQUAL(parse_cfg(with_line(13, NULL), NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_EQUAL(c.bandwidth, 0);
    /* run_name made a valid qsim name */
    CU_ASSERT_EQUAL(parse_cfg(with_line(2, "run_name = my run/v2 (test)"), NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_STRING_EQUAL(a.name, "my_run_v2__test_");
    CU_ASSERT_STRING_EQUAL(c.run_name, "my run/v2 (test)");
}

static void test_cfg_notes(void)
{
    qs_arch a;
    qs_scalesim_cfg c;
    qs_error e;
    char text[8192];
    snprintf(text, sizeof text, "%s[sparsity]\nSparsitySupport : true\n[extra]\nfoo = 1\n", with_line(15,
             "MemoryBanks: 1\nIfmapCustomLayout: True\nBogusKey: 4"));
    CU_ASSERT_EQUAL_FATAL(parse_cfg(text, NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_EQUAL(c.n_notes, 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes[0], "my.cfg:16: IfmapCustomLayout"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes[1], "my.cfg:17: [architecture_presets] BogusKey"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes[2], "my.cfg:22: SparsitySupport"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes[3], "my.cfg:23: [extra]"));
    CU_ASSERT_EQUAL(c.sparsity_support, 1);
}

static void test_cfg_overrides(void)
{
    qs_arch a;
    qs_error e;
    const char *s1[] = {"timing.convention=native", "array.zero_skip=both", "array.weight_path_bits=2"};
    CU_ASSERT_EQUAL_FATAL(parse_cfg(BASE, s1, 3, &a, NULL, &e), QS_OK);
    CU_ASSERT_EQUAL(a.timing, QS_TIMING_NATIVE);
    CU_ASSERT_EQUAL(a.zero_skip, QS_SKIP_BOTH);
    CU_ASSERT_EQUAL(a.weight_path_bits, 2);
    CU_ASSERT_EQUAL(a.rows, 32);
    /* unknown key, bad value: the --set is named */
    const char *s2[] = {"array.rowz=4"};
    CU_ASSERT_EQUAL(parse_cfg(BASE, s2, 1, &a, NULL, &e), QS_ERR_CONFIG);
    CHECK_MSG(e, "my.cfg: --set array.rowz");
    const char *s3[] = {"array.rows=abc"};
    CU_ASSERT_EQUAL(parse_cfg(BASE, s3, 1, &a, NULL, &e), QS_ERR_CONFIG);
    CHECK_MSG(e, "--set array.rows");
    /* a rule between a --set key and a mapped one names the SCALE-Sim key and line */
    const char *s4[] = {"array.skip_group=5"};
    CU_ASSERT_EQUAL(parse_cfg(BASE, s4, 1, &a, NULL, &e), QS_ERR_CONFIG);
    CHECK_MSG(e, "--set array.skip_group");
    CHECK_MSG(e, "line 5, ArrayHeight");
    /* a mapped value qsim cannot take: the SCALE-Sim key's line */
    char text[8192];
    snprintf(text, sizeof text, "%s", with_line(9, "OfmapSramSzkB: 1"));
    char *w = strstr(text, "ArrayWidth:     32");
    memcpy(w, "ArrayWidth:   1024", 18);
    CU_ASSERT_EQUAL(parse_cfg(text, NULL, 0, &a, NULL, &e), QS_ERR_CONFIG);
    CU_ASSERT(strstr(e.msg, "my.cfg:9: OfmapSramSzkB") != NULL || strstr(e.msg, "my.cfg:6: ArrayWidth") != NULL);
    CU_ASSERT(strstr(e.msg, "[buffer.accum]") != NULL);
}

/* An array over the engines' 1024: its real size for SCALE-Sim's figures,
 * marked so that nothing compiles for it, with a note. */
static void test_cfg_big_array(void)
{
    qs_arch a;
    qs_scalesim_cfg c;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(parse_cfg(with_line(5, "ArrayHeight: 2048"), NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_EQUAL(a.rows, 2048);
    CU_ASSERT_EQUAL(a.cols, 32);
    CU_ASSERT_EQUAL(a.scalesim_figures_only, 1);
    CU_ASSERT_EQUAL(c.array_h, 2048);
    CU_ASSERT(c.n_notes >= 1 && strstr(c.notes[c.n_notes - 1], "2048x32 array") != NULL);
    /* what the reader accepts, validation accepts (found by fuzz_scalesim_cfg) */
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "my.cfg", &e), QS_OK);
    qs_arch bad = a;
    bad.rows = 65537;
    CU_ASSERT_EQUAL(qs_arch_validate(&bad, "my.cfg", &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outside 1..65536"));
    CU_ASSERT_EQUAL_FATAL(parse_cfg(with_line(5, "ArrayHeight: 1024"), NULL, 0, &a, &c, &e), QS_OK);
    CU_ASSERT_EQUAL(a.rows, 1024);
    CU_ASSERT_EQUAL(a.scalesim_figures_only, 0);
}

static void test_cfg_errors(void)
{
    qs_arch a;
    qs_error e;
    struct {
        int line;
        const char *repl, *needle1, *needle2;
    } C[] = {
        {17, "[run_prests]", "my.cfg: missing section [run_presets]", NULL},
        {4, "[architecture]", "my.cfg: missing section [architecture_presets]", NULL},
        {1, "[generals]", "missing section [general]", NULL},
        {6, NULL, "my.cfg:4: [architecture_presets]: missing key ArrayWidth", NULL},
        {2, NULL, "my.cfg:1: [general]: missing key run_name", NULL},
        {18, NULL, "my.cfg:17: [run_presets]: missing key InterfaceBandwidth", NULL},
        {11, NULL, "missing key FilterOffset", NULL},
        {14, "Dataflow : xs", "my.cfg:14: Dataflow", "'xs'"},
        {14, "Dataflow : os ; os | ws | is", NULL, NULL}, /* inline comment: fine */
        {5, "ArrayHeight: abc", "my.cfg:5: ArrayHeight", "'abc' is not an integer"},
        {5, "ArrayHeight: 32.5", "my.cfg:5:", "32.5"},
        {5, "ArrayHeight: 0", "my.cfg:5: ArrayHeight = 0", NULL},
        {5, "ArrayHeight: 65537", "my.cfg:5:", "65536"},
        {7, "IfmapSramSzkB: -4", "my.cfg:7: IfmapSramSzkB", NULL},
        {7, "IfmapSramSzkB:", "my.cfg:7: IfmapSramSzkB: empty value", NULL},
        {13, "Bandwidth : ten", "my.cfg:13: Bandwidth", "'ten'"},
        {18, "InterfaceBandwidth: FAST", "my.cfg:18: InterfaceBandwidth", "'FAST'"},
        {15, "MemoryBanks: 1\nArrayHeight: 16", "my.cfg:16: ArrayHeight: duplicate key (first at line 5)", NULL},
        {16, "[general]", "my.cfg:16: [general]: section repeated (first at line 1)", NULL},
        {1, "run = x\n[general]", "my.cfg:1:", "before any [section]"},
        {5, "  ArrayHeight: 32", "my.cfg:5:", "indented"},
        {5, "ArrayHeight 32", "my.cfg:5:", "syntax error"},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        qs_status st = parse_cfg(with_line(C[i].line, C[i].repl), NULL, 0, &a, NULL, &e);
        if (!C[i].needle1) {
            if (st) fprintf(stderr, "\n  case %zu: %s\n", i, e.msg);
            CU_ASSERT_EQUAL(st, QS_OK);
            continue;
        }
        if (st != QS_ERR_CONFIG) fprintf(stderr, "\n  case %zu: status %d\n", i, (int)st);
        CU_ASSERT_EQUAL(st, QS_ERR_CONFIG);
        CHECK_MSG(e, C[i].needle1);
        if (C[i].needle2) CHECK_MSG(e, C[i].needle2);
    }
    /* USER mode needs Bandwidth, one value per bank */
    char text[8192];
    snprintf(text, sizeof text, "%s", with_line(13, NULL));
    memcpy(strstr(text, "CALC"), "USER", 4);
    CU_ASSERT_EQUAL(parse_cfg(text, NULL, 0, &a, NULL, &e), QS_ERR_CONFIG);
    CHECK_MSG(e, "my.cfg:17: InterfaceBandwidth = USER needs");
    /* more values than banks: SCALE-Sim v2 uses the first; so does qsim, with a note */
    snprintf(text, sizeof text, "%s", with_line(13, "Bandwidth: 4,10"));
    memcpy(strstr(text, "CALC"), "USER", 4);
    qs_scalesim_cfg nc;
    CU_ASSERT_EQUAL_FATAL(parse_cfg(text, NULL, 0, &a, &nc, &e), QS_OK);
    CU_ASSERT_EQUAL(a.scalesim_bandwidth, 4);
    CU_ASSERT_EQUAL_FATAL(nc.n_notes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(nc.notes[0], "my.cfg:13: Bandwidth gives 2 values for MemoryBanks = 1: the first, 4"));
    /* empty text, files */
    CU_ASSERT_EQUAL(parse_cfg("", NULL, 0, &a, NULL, &e), QS_ERR_CONFIG);
    CHECK_MSG(e, "my.cfg: missing section [general]");
    CU_ASSERT_EQUAL(qs_scalesim_load_config("/nonexistent/x.cfg", NULL, 0, &a, NULL, &e), QS_ERR_IO);
    CHECK_MSG(e, "/nonexistent/x.cfg");
}

static void test_cfg_detect_and_files(void)
{
    char path[512], *text;
    qs_error e;
    CU_ASSERT(qs_scalesim_is_config(BASE));
    CU_ASSERT(qs_scalesim_is_config("; x\n  [ Architecture_Presets ]  \n"));
    CU_ASSERT(!qs_scalesim_is_config("[array]\nrows = 4\n; [architecture_presets]\n"));
    CU_ASSERT(!qs_scalesim_is_config(""));
    src_path(path, sizeof path, "models/arch/dlac.cfg");
    CU_ASSERT_EQUAL_FATAL(qs_read_text_file(path, &text, &e), QS_OK);
    CU_ASSERT(!qs_scalesim_is_config(text));
    qs_free(text);
    const char *SHIPPED[] = {"models/scalesim/scale.cfg", "models/scalesim/google.cfg", "models/scalesim/eyeriss.cfg"};
    const int ROWS[] = {32, 256, 12}, COLS[] = {32, 256, 14};
    const qs_dataflow DF[] = {QS_DF_OS, QS_DF_WS, QS_DF_WS};
    for (int i = 0; i < 3; i++) {
        qs_arch a;
        qs_scalesim_cfg c;
        src_path(path, sizeof path, SHIPPED[i]);
        CU_ASSERT_EQUAL_FATAL(qs_read_text_file(path, &text, &e), QS_OK);
        CU_ASSERT(qs_scalesim_is_config(text));
        qs_free(text);
        qs_status st = qs_scalesim_load_config(path, NULL, 0, &a, &c, &e);
        if (st) fprintf(stderr, "\n%s\n", e.msg);
        CU_ASSERT_EQUAL_FATAL(st, QS_OK);
        CU_ASSERT_EQUAL(a.rows, ROWS[i]);
        CU_ASSERT_EQUAL(a.cols, COLS[i]);
        CU_ASSERT_EQUAL(a.dataflow, DF[i]);
        CU_ASSERT_EQUAL(c.n_notes, 0);
    }
}

/* ---- topology ------------------------------------------------------------------ */

static qs_status parse_topo(const char *text, int mode, qs_scalesim_topo *t, qs_error *e)
{
    memset(e, 0, sizeof *e);
    return qs_scalesim_parse_topology(text, "t.csv", mode, t, e);
}

static void test_topo_conv(void)
{
    qs_scalesim_topo t;
    qs_error e;
    const char *text =
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\r\n"
        "\n"
        ",,,,,,,,\n"
        "Conv1     ,224         ,224        ,11           ,11          ,3       ,96        ,4      ,\n"
        "\tConv2, 27, 27, 5, 5, 96, 256, 1,#dw\n"
        "Conv3,13,13,3,3,256,384,1\n"                /* no trailing comma */
        "Conv4,13,13,3,3,384,384,1,2,\n"             /* stride width */
        "Conv5,13,13,3,3,384,256,2,1:4,\n"           /* v3 sparsity */
        "# a comment line\n"
        "Attn_QxK',1,64,1,1,1,64,1, \n";
    qs_status st = parse_topo(text, -1, &t, &e);
    if (st) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(t.gemm, 0);
    CU_ASSERT_EQUAL_FATAL(t.n_layers, 6);
    const qs_scalesim_layer *l = t.layers;
    CU_ASSERT_STRING_EQUAL(l[0].name, "Conv1");
    CU_ASSERT_EQUAL(l[0].line, 4);
    CU_ASSERT_EQUAL(l[0].ifmap_h, 224);
    CU_ASSERT_EQUAL(l[0].filter_w, 11);
    CU_ASSERT_EQUAL(l[0].channels, 3);
    CU_ASSERT_EQUAL(l[0].num_filters, 96);
    CU_ASSERT_EQUAL(l[0].stride_h, 4);
    CU_ASSERT_EQUAL(l[0].stride_w, 4);
    CU_ASSERT_STRING_EQUAL(l[1].name, "Conv2");
    CU_ASSERT_EQUAL(l[2].stride_w, 1);
    CU_ASSERT_EQUAL(l[3].stride_h, 1);
    CU_ASSERT_EQUAL(l[3].stride_w, 2);
    CU_ASSERT_STRING_EQUAL(l[4].sparsity, "1:4");
    CU_ASSERT_EQUAL(l[4].stride_w, 2);
    CU_ASSERT_STRING_EQUAL(l[5].name, "Attn_QxK'");
    CU_ASSERT_EQUAL(l[5].line, 10);
    qs_scalesim_topo_free(&t);
    CU_ASSERT_EQUAL(t.n_layers, 0);

    /* extra columns the header declares (Resnet50.csv's notes) */
    st = parse_topo("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,,,Eh,Ew,e2\n"
                    ",,,,,,,,,,,,\n"
                    "Conv1,224,224,7,7,3,64,2,,,110,110,12100\n"
                    "CB2a_1,56,56,1,1,64,64,1,,,,,\n",
                    -1, &t, &e);
    if (st) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(t.n_layers, 2);
    CU_ASSERT_EQUAL(t.layers[0].stride_w, 2);
    qs_scalesim_topo_free(&t);

    /* SCALE-Sim v2's depthwise rows: one single-channel layer per channel */
    st = parse_topo("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nConvDP1, 8, 8, 3, 3, 3, 1, 1,\nConv2, 6, 6, 1, 1, 3, 4, 1,\n",
                    -1, &t, &e);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL_FATAL(t.n_layers, 4);
    CU_ASSERT_STRING_EQUAL(t.layers[0].name, "ConvDP1Channel_0");
    CU_ASSERT_STRING_EQUAL(t.layers[2].name, "ConvDP1Channel_2");
    CU_ASSERT_EQUAL(t.layers[2].channels, 1);
    CU_ASSERT_EQUAL(t.layers[2].line, 2);
    CU_ASSERT_STRING_EQUAL(t.layers[3].name, "Conv2");
    qs_scalesim_topo_free(&t);
}

static void test_topo_gemm(void)
{
    qs_scalesim_topo t;
    qs_error e;
    /* detected from the header; SCALE-Sim's mapping [m, k, 1, k, 1, n, 1, 1] */
    qs_status st = parse_topo("Layer Name, M, N, K,\nTest 1, 256, 128, 64,", -1, &t, &e);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(t.gemm, 1);
    CU_ASSERT_EQUAL_FATAL(t.n_layers, 1);
    const qs_scalesim_layer *l = &t.layers[0];
    CU_ASSERT_STRING_EQUAL(l->name, "Test 1");
    CU_ASSERT_EQUAL(l->is_gemm, 1);
    CU_ASSERT_EQUAL(l->gemm_m, 256);
    CU_ASSERT_EQUAL(l->gemm_n, 128);
    CU_ASSERT_EQUAL(l->gemm_k, 64);
    CU_ASSERT_EQUAL(l->ifmap_h, 256);
    CU_ASSERT_EQUAL(l->ifmap_w, 64);
    CU_ASSERT_EQUAL(l->filter_h, 1);
    CU_ASSERT_EQUAL(l->filter_w, 64);
    CU_ASSERT_EQUAL(l->channels, 1);
    CU_ASSERT_EQUAL(l->num_filters, 128);
    CU_ASSERT_EQUAL(l->stride_h, 1);
    int64_t m, n, k;
    qs_scalesim_mnk(l, &m, &n, &k);
    CU_ASSERT_EQUAL(m, 256);
    CU_ASSERT_EQUAL(n, 128);
    CU_ASSERT_EQUAL(k, 64);
    qs_scalesim_topo_free(&t);
    /* no trailing commas (gpt2.csv) */
    st = parse_topo("Layer,M,N,K\nQKT,1024,1024,64\nQKTV,1024,64,1024\n", -1, &t, &e);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(t.n_layers, 2);
    CU_ASSERT_EQUAL(t.layers[1].gemm_k, 1024);
    qs_scalesim_topo_free(&t);
    /* forced GEMM with another header; forced conv on a GEMM file is a column-count error */
    st = parse_topo("name, a, b, c,\nL, 8, 4, 2,\n", 1, &t, &e);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(t.layers[0].gemm_n, 4);
    qs_scalesim_topo_free(&t);
    st = parse_topo("Layer, M, N, K,\nL, 8, 4, 2,\n", 0, &t, &e);
    CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv:2: 4 columns");
    /* the shipped files */
    const char *F[] = {"models/scalesim/resnet18.csv", "models/scalesim/alexnet.csv", "models/scalesim/gemm_example.csv"};
    const int N[] = {21, 5, 5}, G[] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        char path[512];
        src_path(path, sizeof path, F[i]);
        st = qs_scalesim_load_topology(path, -1, &t, &e);
        if (st) fprintf(stderr, "\n%s\n", e.msg);
        CU_ASSERT_EQUAL_FATAL(st, QS_OK);
        CU_ASSERT_EQUAL(t.n_layers, N[i]);
        CU_ASSERT_EQUAL(t.gemm, G[i]);
        qs_scalesim_topo_free(&t);
    }
}

static void test_topo_errors(void)
{
    static const char *HDR =
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";
    struct {
        const char *rows, *needle1, *needle2;
    } C[] = {
        {"Conv1, 224, 224, 7, 7, 3, 64,\n", "t.csv:2: 7 columns", "Strides"},
        {"OK, 8, 8, 3, 3, 1, 1, 1,\nConv1, 224, 224,\n", "t.csv:3: 3 columns", NULL},
        {"Conv1, 224, 224, 7, 7, 3, 64, 2, 5, 6, 7,\n", "t.csv:2: 11 columns", "header has 8"},
        {"Conv1, 0, 224, 7, 7, 3, 64, 2,\n", "t.csv:2: IFMAP Height = 0", "at least 1"},
        {"Conv1, 224, 224, 7, 7, -3, 64, 2,\n", "t.csv:2: Channels = -3", NULL},
        {"Conv1, 224, 224, 7, 7, 3, 64, 0,\n", "t.csv:2: Strides = 0", NULL},
        {"Conv1, 5, 224, 7, 7, 3, 64, 2,\n", "t.csv:2:", "Filter Height 7 is larger than IFMAP Height 5"},
        {"Conv1, 224, 6, 7, 7, 3, 64, 2,\n", "t.csv:2:", "Filter Width 7 is larger than IFMAP Width 6"},
        {"Conv1, 224, abc, 7, 7, 3, 64, 2,\n", "t.csv:2: IFMAP Width: 'abc' is not an integer", NULL},
        {"Conv1, 224, 224, 7.5, 7, 3, 64, 2,\n", "t.csv:2: Filter Height: '7.5'", NULL},
        {"Conv1, 224, 224, 7, 7, 3, 64, x,\n", "t.csv:2: Strides: 'x'", NULL},
        {"Conv1, 224, 224, 7, 7, 3, 64, 2, z,\n", "t.csv:2:", "'z' is not an integer"},
        {"Conv1, 224, , 7, 7, 3, 64, 2,\n", "t.csv:2: IFMAP Width is empty", NULL},
        {", 224, 224, 7, 7, 3, 64, 2,\n", "t.csv:2: the layer name", NULL},
        {"Conv1, 224, 2000000000, 7, 7, 3, 64, 2,\n", "t.csv:2: IFMAP Width = 2000000000", "limit"},
        {"Big, 65536, 65536, 1, 1, 1024, 4, 1,\n", "t.csv:2:", "4294967296 ofmap pixels per filter"},
        /* 23 bytes that once asked for a 6261x6261x40 zero-extended input (6.3 GB) */
        {"C,7,54,5,5,40,5,6256\n", "t.csv:2: layer 'C': strides 6256x6256", "past the 7x54 input"},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", HDR, C[i].rows);
        qs_scalesim_topo t;
        qs_error e;
        qs_status st = parse_topo(text, -1, &t, &e);
        if (st != QS_ERR_FORMAT) fprintf(stderr, "\n  case %zu: status %d\n", i, (int)st);
        CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
        CU_ASSERT_EQUAL(t.n_layers, 0);
        CU_ASSERT_PTR_NULL(t.layers);
        CHECK_MSG(e, C[i].needle1);
        if (C[i].needle2) CHECK_MSG(e, C[i].needle2);
    }
    /* too large to simulate on operands, small enough for SCALE-Sim's figures:
     * a size over 2^20, or a tensor of more than 2^26 elements (docs/scalesim.md) */
    {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", HDR,
                 "Small, 224, 224, 7, 7, 3, 64, 2,\nWide, 3, 1048577, 1, 1, 1, 4, 1,\nEdge, 3, 1048576, 1, 1, 1, 4, 1,\n"
                 "Tensor, 1024, 1024, 1, 1, 65, 1, 1,\nJust, 1024, 1024, 1, 1, 64, 1, 1,\n");
        qs_scalesim_topo h;
        qs_error he;
        CU_ASSERT_EQUAL_FATAL(parse_topo(text, -1, &h, &he), QS_OK);
        CU_ASSERT_EQUAL_FATAL(h.n_layers, 5);
        CU_ASSERT_EQUAL(h.layers[0].no_operands, 0);
        CU_ASSERT_EQUAL(h.layers[1].no_operands, 1);
        CU_ASSERT_EQUAL(h.layers[2].no_operands, 0);
        CU_ASSERT_EQUAL(h.layers[3].no_operands, 1); /* 65 x 1024 x 1024 > 2^26 */
        CU_ASSERT_EQUAL(h.layers[4].no_operands, 0);
        qs_scalesim_opts o;
        qs_scalesim_opts_default(&o);
        qs_net *n = NULL;
        CU_ASSERT_EQUAL(qs_scalesim_layer_net(&h.layers[1], &o, &n, &he), QS_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NULL(n);
        qs_scalesim_topo_free(&h);
    }
    /* header only: SCALE-Sim v2 runs no layer and writes empty reports; so does qsim, with a note */
    {
        const char *const empty[] = {"", "\n\n"};
        for (int i = 0; i < 2; i++) {
            char text[1024];
            snprintf(text, sizeof text, "%s%s", HDR, empty[i]);
            qs_scalesim_topo h;
            qs_error he;
            CU_ASSERT_EQUAL_FATAL(parse_topo(text, -1, &h, &he), QS_OK);
            CU_ASSERT_EQUAL(h.n_layers, 0);
            CU_ASSERT_EQUAL_FATAL(h.n_notes, 1);
            CU_ASSERT_PTR_NOT_NULL(strstr(h.notes[0], "t.csv: no layers"));
            qs_scalesim_topo_free(&h);
        }
    }
    /* nine columns without the trailing comma: SCALE-Sim v2 drops the stride
     * width; qsim reads it and says how SCALE-Sim differs */
    {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", HDR, "L9, 10, 11, 3, 3, 2, 4, 2, 1\nL8, 10, 11, 3, 3, 2, 4, 2, 2\n");
        qs_scalesim_topo h;
        qs_error he;
        CU_ASSERT_EQUAL_FATAL(parse_topo(text, 0, &h, &he), QS_OK);
        CU_ASSERT_EQUAL_FATAL(h.n_layers, 2);
        CU_ASSERT_EQUAL(h.layers[0].stride_h, 2);
        CU_ASSERT_EQUAL(h.layers[0].stride_w, 1);
        CU_ASSERT_EQUAL_FATAL(h.n_notes, 1); /* equal strides: no difference, no note */
        CU_ASSERT_PTR_NOT_NULL(strstr(h.notes[0], "t.csv:2: no trailing comma: qsim strides 2 x 1; SCALE-Sim v2"));
        qs_scalesim_topo_free(&h);
    }
    qs_scalesim_topo t;
    qs_error e;
    CU_ASSERT_EQUAL(parse_topo("", -1, &t, &e), QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv: empty file");
    CU_ASSERT_EQUAL(parse_topo("\n  \n", -1, &t, &e), QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv: empty file");
    /* a first line that is a layer: SCALE-Sim would skip it silently */
    CU_ASSERT_EQUAL(parse_topo("Conv1, 224, 224, 7, 7, 3, 64, 2,\nConv2, 8, 8, 3, 3, 1, 1, 1,\n", -1, &t, &e),
                    QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv:1: the first line is a layer, not a header");
    /* GEMM rows */
    CU_ASSERT_EQUAL(parse_topo("Layer, M, N, K,\nL1, 8, 4,\n", -1, &t, &e), QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv:2: 3 columns; a GEMM row has 4");
    CU_ASSERT_EQUAL(parse_topo("Layer, M, N, K,\nL1, 8, 0, 4,\n", -1, &t, &e), QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv:2: N = 0");
    CU_ASSERT_EQUAL(parse_topo("Layer, M, N, K,\nL1, 8, four, 4,\n", -1, &t, &e), QS_ERR_FORMAT);
    CHECK_MSG(e, "t.csv:2: N: 'four'");
    CU_ASSERT_EQUAL(qs_scalesim_load_topology("/nonexistent/t.csv", -1, &t, &e), QS_ERR_IO);
    CHECK_MSG(e, "/nonexistent/t.csv");
}

/* ---- the synthetic network ------------------------------------------------------- */

static qs_scalesim_layer conv_layer(int h, int w, int r, int s, int c, int n, int st)
{
    qs_scalesim_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "L%dx%d_%dx%d_s%d", h, w, r, s, st);
    l.ifmap_h = h, l.ifmap_w = w, l.filter_h = r, l.filter_w = s, l.channels = c, l.num_filters = n;
    l.stride_h = l.stride_w = st;
    return l;
}

static void test_ofmap_dims(void)
{
    struct {
        int h, r, s, o;
    } C[] = {{224, 7, 2, 110}, {56, 1, 2, 29}, {56, 3, 1, 54}, {227, 11, 4, 55}, {224, 11, 4, 55}, {7, 7, 1, 1},
             {13, 3, 2, 6}, {8, 8, 3, 1}};
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        qs_scalesim_layer l = conv_layer(C[i].h, C[i].h, C[i].r, C[i].r, 1, 1, C[i].s);
        int32_t oh, ow;
        qs_scalesim_ofmap_dims(&l, &oh, &ow);
        /* topology_utils: int(math.ceil((H - R + S) / S)) */
        int ref = (int)ceil((double)(C[i].h - C[i].r + C[i].s) / C[i].s);
        CU_ASSERT_EQUAL(oh, C[i].o);
        CU_ASSERT_EQUAL(oh, ref);
        CU_ASSERT_EQUAL(ow, ref);
    }
}

static void test_layer_net_shapes(void)
{
    char path[512];
    src_path(path, sizeof path, "models/scalesim/scale.cfg");
    qs_scalesim_layer L[] = {conv_layer(224, 224, 7, 7, 3, 8, 2),  conv_layer(56, 56, 1, 1, 4, 8, 2),
                             conv_layer(20, 17, 3, 3, 5, 40, 1),   conv_layer(13, 13, 3, 3, 2, 3, 2),
                             conv_layer(9, 9, 2, 2, 3, 5, 3),      conv_layer(1, 1, 1, 1, 64, 70, 1)};
    qs_scalesim_layer g;
    memset(&g, 0, sizeof g);
    snprintf(g.name, sizeof g.name, "gemm");
    g.is_gemm = 1, g.gemm_m = 40, g.gemm_n = 33, g.gemm_k = 20;
    g.ifmap_h = 40, g.ifmap_w = 20, g.filter_h = 1, g.filter_w = 20, g.channels = 1, g.num_filters = 33;
    g.stride_h = g.stride_w = 1;
    static const char *const DF[] = {"os", "ws", "is"};
    for (int d = 0; d < 3; d++) {
        char set[64];
        snprintf(set, sizeof set, "array.dataflow=%s", DF[d]);
        const char *sets[] = {set};
        qs_arch a;
        qs_error e;
        CU_ASSERT_EQUAL_FATAL(qs_scalesim_load_config(path, sets, 1, &a, NULL, &e), QS_OK);
        for (size_t i = 0; i <= sizeof L / sizeof L[0]; i++) {
            const qs_scalesim_layer *l = i < sizeof L / sizeof L[0] ? &L[i] : &g;
            qs_scalesim_opts o;
            qs_scalesim_opts_default(&o);
            o.index = (int32_t)i;
            qs_net *net = NULL;
            qs_status st = qs_scalesim_layer_net(l, &o, &net, &e);
            if (st) fprintf(stderr, "\n%s\n", e.msg);
            CU_ASSERT_EQUAL_FATAL(st, QS_OK);
            CU_ASSERT_EQUAL(qs_net_validate(net, "x", &e), QS_OK);
            int32_t oh, ow;
            qs_scalesim_ofmap_dims(l, &oh, &ow);
            CU_ASSERT_EQUAL(net->layers[1].out_c, l->num_filters);
            CU_ASSERT_EQUAL(net->layers[1].out_h, oh);
            CU_ASSERT_EQUAL(net->layers[1].out_w, ow);
            int64_t m, n, k, sr, sc, t;
            qs_scalesim_mnk(l, &m, &n, &k);
            qs_gemm_dims gd = qs_gemm_dims_of(net, 1);
            CU_ASSERT_EQUAL(gd.M, m);
            CU_ASSERT_EQUAL(gd.N, n);
            CU_ASSERT_EQUAL(gd.K, k);
            CU_ASSERT_EQUAL(gd.groups, 1);
            CU_ASSERT_EQUAL(qs_layer_macs(net, 1), m * n * k);
            /* SCALE-Sim's spatio-temporal dims per dataflow */
            qs_scalesim_spatiotemporal(l, a.dataflow, &sr, &sc, &t);
            if (a.dataflow == QS_DF_OS) {
                CU_ASSERT(sr == m && sc == n && t == k);
            } else if (a.dataflow == QS_DF_WS) {
                CU_ASSERT(sr == k && sc == n && t == m);
            } else {
                CU_ASSERT(sr == k && sc == m && t == n);
            }
            /* the compiler sees the same GEMM */
            qs_prog *p = NULL;
            st = qs_compile(net, &a, &p, &e);
            if (st) fprintf(stderr, "\n%s\n", e.msg);
            CU_ASSERT_EQUAL_FATAL(st, QS_OK);
            CU_ASSERT_EQUAL(p->maps[1].is_gemm, 1);
            CU_ASSERT_EQUAL(p->maps[1].g.M, m);
            CU_ASSERT_EQUAL(p->maps[1].g.N, n);
            CU_ASSERT_EQUAL(p->maps[1].g.K, k);
            CU_ASSERT_EQUAL(p->maps[1].weight_bits, 8);
            CU_ASSERT_EQUAL(p->maps[1].act_bits, 8);
            CU_ASSERT_EQUAL(p->maps[1].slices, 1);
            qs_prog_destroy(p);
            qs_net_destroy(net);
        }
    }
    /* 224 7x7/2: one bottom/right padding row; 56 1x1/2: one added zero row */
    qs_scalesim_opts o;
    qs_scalesim_opts_default(&o);
    qs_net *net;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&L[0], &o, &net, &e), QS_OK);
    CU_ASSERT_EQUAL(net->layers[0].out_h, 224);
    CU_ASSERT_EQUAL(net->layers[1].pad_b, 1);
    CU_ASSERT_EQUAL(net->layers[1].pad_r, 1);
    CU_ASSERT_EQUAL(net->layers[1].pad_t, 0);
    qs_net_destroy(net);
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&L[1], &o, &net, &e), QS_OK);
    CU_ASSERT_EQUAL(net->layers[0].out_h, 57);
    CU_ASSERT_EQUAL(net->layers[0].out_w, 57);
    CU_ASSERT_EQUAL(net->layers[1].pad_b, 0);
    int32_t *x;
    int64_t n;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_input(net, &L[1], &o, &x, &n, &e), QS_OK);
    CU_ASSERT_EQUAL(n, 4 * 57 * 57);
    int extra_zero = 1, inner_nonzero = 1;
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < 57; y++)
            for (int xx = 0; xx < 57; xx++) {
                int32_t v = x[(c * 57 + y) * 57 + xx];
                if (y == 56 || xx == 56) extra_zero &= v == 0;
                else inner_nonzero &= v >= 1 && v <= 255;
            }
    CU_ASSERT(extra_zero);
    CU_ASSERT(inner_nonzero); /* dense by default */
    qs_free(x);
    qs_net_destroy(net);
}

static void test_operands(void)
{
    qs_scalesim_layer l = conv_layer(30, 30, 3, 3, 16, 32, 1);
    qs_scalesim_opts o;
    qs_error e;
    qs_net *a = NULL, *b = NULL;
    int32_t *xa, *xb;
    int64_t na, nb;
    /* deterministic: the same layer index gives the same operands */
    qs_scalesim_opts_default(&o);
    o.index = 3;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_OK);
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&l, &o, &b, &e), QS_OK);
    CU_ASSERT_EQUAL(memcmp(a->tensors[0].data, b->tensors[0].data, sizeof(int32_t) * (size_t)a->tensors[0].count), 0);
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_input(a, &l, &o, &xa, &na, &e), QS_OK);
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_input(b, &l, &o, &xb, &nb, &e), QS_OK);
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT_EQUAL(memcmp(xa, xb, sizeof(int32_t) * (size_t)na), 0);
    qs_free(xb);
    qs_net_destroy(b);
    /* another index: other operands */
    o.index = 4;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&l, &o, &b, &e), QS_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(a->tensors[0].data, b->tensors[0].data, sizeof(int32_t) * (size_t)a->tensors[0].count),
                        0);
    /* dense: no zero weight, the full signed 8-bit range */
    const qs_tensor *w = &a->tensors[0];
    int zeros = 0, lo = 0, hi = 0;
    for (int64_t i = 0; i < w->count; i++) {
        zeros += w->data[i] == 0;
        if (w->data[i] < lo) lo = w->data[i];
        if (w->data[i] > hi) hi = w->data[i];
    }
    CU_ASSERT_EQUAL(w->dtype, QS_DT_INT8);
    CU_ASSERT_EQUAL(zeros, 0);
    CU_ASSERT_EQUAL(lo, -128);
    CU_ASSERT_EQUAL(hi, 127);
    qs_free(xa);
    qs_net_destroy(a);
    qs_net_destroy(b);

    /* sparsity and narrow operands */
    static const int WB[] = {1, 2, 4, 8};
    static const qs_dtype DT[] = {QS_DT_BIPOLAR, QS_DT_INT2, QS_DT_INT4, QS_DT_INT8};
    for (int i = 0; i < 4; i++) {
        qs_scalesim_opts_default(&o);
        o.weight_bits = WB[i];
        o.act_bits = 4;
        o.weight_sparsity = WB[i] == 1 ? 0.0 : 0.5;
        o.act_sparsity = 0.25;
        CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_OK);
        CU_ASSERT_EQUAL(a->tensors[0].dtype, DT[i]);
        CU_ASSERT_EQUAL(a->layers[0].out_bits, 4);
        int32_t wlo, whi;
        qs_int_range(WB[i] == 1 ? 2 : WB[i], 1, &wlo, &whi);
        w = &a->tensors[0];
        zeros = 0;
        int in_range = 1;
        for (int64_t k = 0; k < w->count; k++) {
            zeros += w->data[k] == 0;
            in_range &= WB[i] == 1 ? (w->data[k] == 1 || w->data[k] == -1) : (w->data[k] >= wlo && w->data[k] <= whi);
        }
        CU_ASSERT(in_range);
        double frac = (double)zeros / (double)w->count;
        if (WB[i] == 1) {
            CU_ASSERT_EQUAL(zeros, 0);
        } else {
            CU_ASSERT(fabs(frac - 0.5) < 0.03);
        }
        CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_input(a, &l, &o, &xa, &na, &e), QS_OK);
        int az = 0, arange = 1;
        for (int64_t k = 0; k < na; k++) {
            az += xa[k] == 0;
            arange &= xa[k] >= 0 && xa[k] <= 15;
        }
        CU_ASSERT(arange);
        CU_ASSERT(fabs((double)az / (double)na - 0.25) < 0.03);
        qs_free(xa);
        qs_net_destroy(a);
    }
    /* refused options */
    qs_scalesim_opts_default(&o);
    o.weight_bits = 3;
    CU_ASSERT_EQUAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_ERR_ARG);
    CU_ASSERT_PTR_NULL(a);
    o.weight_bits = 1;
    o.weight_sparsity = 0.5;
    CU_ASSERT_EQUAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_ERR_ARG);
    o.weight_bits = 8;
    o.weight_sparsity = 1.5;
    CU_ASSERT_EQUAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_ERR_ARG);
    o.weight_sparsity = 0;
    o.act_bits = 17;
    CU_ASSERT_EQUAL(qs_scalesim_layer_net(&l, &o, &a, &e), QS_ERR_ARG);
}

/* ---- reports -------------------------------------------------------------------- */


/* The CALC read replay's two address tables (one window id per address, or
 * the window's addresses hashed, bounded by the SRAM) give the same figures:
 * layers whose window moves many times, padded and strided, every dataflow. */
static void test_read_replay_tables(void)
{
    static const char *const TOPO =
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
        "Pad3, 12, 12, 3, 3, 4, 10, 1,\n"
        "Str2, 13, 13, 3, 3, 3, 9, 2,\n"
        "Big, 30, 30, 3, 3, 16, 40, 1,\n"
        "Odd7, 23, 19, 7, 5, 3, 17, 3,\n";
    qs_scalesim_topo t;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(parse_topo(TOPO, 0, &t, &e), QS_OK);
    static const char *const DF[] = {"Dataflow : os", "Dataflow : ws", "Dataflow : is"};
    int moved = 0;
    for (int d = 0; d < 3; d++) {
        char text[4096];
        snprintf(text, sizeof text, "%s", with_line(14, DF[d]));
        /* 1 KiB SRAMs on an 8x8 array: the window moves */
        char *p = strstr(text, "IfmapSramSzkB:    64");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, "IfmapSramSzkB:     1", 20);
        p = strstr(text, "FilterSramSzkB:   64");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, "FilterSramSzkB:    1", 20);
        p = strstr(text, "ArrayHeight:    32");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, "ArrayHeight:     8", 18);
        p = strstr(text, "ArrayWidth:     32");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, "ArrayWidth:      8", 18);
        qs_arch a;
        qs_status pst = parse_cfg(text, NULL, 0, &a, NULL, &e);
        if (pst) fprintf(stderr, "\n%s\n", e.msg);
        CU_ASSERT_EQUAL_FATAL(pst, QS_OK);
        for (int32_t i = 0; i < t.n_layers; i++) {
            qs_ssreads direct, hashed;
            CU_ASSERT_EQUAL_FATAL(qs_ssreads_layer(&t.layers[i], &a, INT64_MAX, &direct, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_ssreads_layer(&t.layers[i], &a, 0, &hashed, &e), QS_OK);
            CU_ASSERT_EQUAL(memcmp(&direct, &hashed, sizeof direct), 0);
            moved += direct.dram_stop[0] > 0 && direct.dram_stop[1] > 0;
        }
    }
    CU_ASSERT(moved >= 3); /* the cases do move both windows */
    qs_scalesim_topo_free(&t);
}

static void test_py_float(void)
{
    struct {
        double v;
        const char *s;
    } C[] = {{100.0, "100.0"},
             {0.0, "0.0"},
             {0.1, "0.1"},
             {1.0 / 3.0, "0.3333333333333333"},
             {15.619577859553454, "15.619577859553454"},
             {80.50314465408806, "80.50314465408806"},
             {78.125, "78.125"},
             {52417.0, "52417.0"},
             {-3277.0, "-3277.0"},
             {0.0001, "0.0001"},
             {0.00001, "1e-05"},
             {1.5e-7, "1.5e-07"},
             {1e15, "1000000000000000.0"},
             {1e16, "1e+16"},
             {1.2345678901234567e17, "1.2345678901234566e+17"},
             {2.5e100, "2.5e+100"},
             {123456.789, "123456.789"}};
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        char b[64];
        qs_py_float(b, sizeof b, C[i].v);
        if (strcmp(b, C[i].s)) fprintf(stderr, "\n  %.17g -> '%s', Python says '%s'\n", C[i].v, b, C[i].s);
        CU_ASSERT_STRING_EQUAL(b, C[i].s);
    }
}

/* Read a whole small file. */
static char *slurp(const char *path)
{
    char *t = NULL;
    qs_error e;
    if (qs_read_text_file(path, &t, &e)) return NULL;
    return t;
}

static void test_reports(void)
{
    /* two small layers through compile + simulate (both engines), then the reports */
    char path[512];
    src_path(path, sizeof path, "models/scalesim/scale.cfg");
    qs_arch a;
    qs_scalesim_cfg c;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_load_config(path, NULL, 0, &a, &c, &e), QS_OK);
    qs_scalesim_topo t;
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_parse_topology("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter "
                                                     "Width, Channels, Num Filter, Strides,\n"
                                                     "A, 12, 12, 3, 3, 4, 40, 1,\nB, 9, 9, 1, 1, 8, 6, 2,\n",
                                                     "t.csv", -1, &t, &e),
                          QS_OK);
    qs_tech tech;
    CU_ASSERT_EQUAL_FATAL(qs_tech_load(a.tech_table, &a, 8, &tech, &e), QS_OK);
    qs_topo_layer res[2][2];
    qs_scalesim_opts o;
    qs_scalesim_opts_default(&o);
    for (int eng = 0; eng < 2; eng++)
        for (int i = 0; i < 2; i++) {
            qs_scalesim_opts oi = o;
            oi.index = i;
            qs_net *net;
            qs_prog *p;
            qs_sim *s;
            int32_t *x;
            int64_t n;
            CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_net(&t.layers[i], &oi, &net, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_compile(net, &a, &p, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_sim_create(net, p, eng ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &s, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_scalesim_layer_input(net, &t.layers[i], &oi, &x, &n, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_sim_set_input(s, x, n, &e), QS_OK);
            CU_ASSERT_EQUAL_FATAL(qs_sim_run(s, &e), QS_OK);
            qs_topo_layer *r = &res[eng][i];
            memset(r, 0, sizeof *r);
            r->row = t.layers[i];
            r->layer = net->layers[1];
            r->layer.rq.mult = NULL;
            r->layer.rq.shift = NULL;
            r->map = p->maps[1];
            r->map.list_off = r->map.list = r->map.bias_folded = NULL;
            r->stats = *qs_sim_layer_stats(s, 1);
            CU_ASSERT(r->stats.ss.folds > 0);
            CU_ASSERT(r->stats.ss.total_cycles > 0);
            qs_free(x);
            qs_sim_destroy(s);
            qs_prog_destroy(p);
            qs_net_destroy(net);
        }
    /* both engines: the same SCALE-Sim figures */
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(res[0][i].stats.cycles, res[1][i].stats.cycles);
        CU_ASSERT_EQUAL(memcmp(&res[0][i].stats.ss, &res[1][i].stats.ss, sizeof res[0][i].stats.ss), 0);
    }
    char dir[] = "/tmp/qsim_test_scalesim_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    qs_topo_report rep = {&a, &tech, &c, &o, "t.csv", path, "fast", 0, 2, res[0], 0.0, NULL};
    char sub[600];
    snprintf(sub, sizeof sub, "%s/out", dir);
    CU_ASSERT_EQUAL_FATAL(qs_scalesim_write_reports(&rep, sub, &e), QS_OK);
    static const char *const NAMES[] = {"COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"};
    static const char *const HEAD[] = {
        "LayerID, Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,\n",
        "LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, Avg IFMAP DRAM BW, Avg FILTER DRAM BW, "
        "Avg OFMAP DRAM BW,\n",
        "LayerID, SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, SRAM Filter Start Cycle, SRAM "
        "Filter Stop Cycle, SRAM Filter Reads, SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, DRAM "
        "IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, DRAM Filter Start Cycle, DRAM Filter Stop Cycle, "
        "DRAM Filter Reads, DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,\n"};
    static const int COLS[] = {6, 7, 19};
    for (int i = 0; i < 3; i++) {
        char f[700];
        snprintf(f, sizeof f, "%s/%s", sub, NAMES[i]);
        char *text = slurp(f);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_EQUAL(strncmp(text, HEAD[i], strlen(HEAD[i])), 0);
        /* two rows "lid, v, v, ...,": COLS values, ", " separated, trailing "," */
        char *row = text + strlen(HEAD[i]);
        for (int r = 0; r < 2; r++) {
            char *nl = strchr(row, '\n');
            CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
            *nl = '\0';
            CU_ASSERT_EQUAL(row[0], '0' + r);
            CU_ASSERT_EQUAL(nl[-1], ',');
            int commas = 0;
            for (char *q = row; *q; q++) commas += *q == ',';
            CU_ASSERT_EQUAL(commas, COLS[i]);
            CU_ASSERT_PTR_NULL(strstr(row, ",,"));
            row = nl + 1;
        }
        CU_ASSERT_EQUAL(*row, '\0');
        qs_free(text);
    }
    /* COMPUTE_REPORT's figures */
    char f[700];
    snprintf(f, sizeof f, "%s/COMPUTE_REPORT.csv", sub);
    char *text = slurp(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    unsigned long long tc, sc;
    double ou, me, cu;
    char *row1 = strchr(text, '\n') + 1;
    CU_ASSERT_EQUAL(sscanf(row1, "0, %llu, %llu, %lf, %lf, %lf,", &tc, &sc, &ou, &me, &cu), 5);
    CU_ASSERT_EQUAL(tc, res[0][0].stats.ss.total_cycles);
    CU_ASSERT_EQUAL(sc, res[0][0].stats.ss.stall_cycles);
    /* Overall Util % = M*N*K*100 / (Total Cycles x PEs) */
    CU_ASSERT_DOUBLE_EQUAL(ou, 100.0 * 100 * 40 * 36 / ((double)tc * 32 * 32), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(me, 100.0 * res[0][0].stats.ss.mapping_eff_sum / (double)res[0][0].stats.ss.folds, 1e-9);
    CU_ASSERT(me > 0 && me <= 100 && cu > 0 && cu <= 100);
    qs_free(text);
    /* the qsim JSON and CSV of a topology */
    snprintf(f, sizeof f, "%s/r.json", dir);
    CU_ASSERT_EQUAL(qs_topo_report_write_json(&rep, f, &e), QS_OK);
    text = slurp(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"scalesim_config\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"total_cycles\""));
    qs_free(text);
    snprintf(f, sizeof f, "%s/r.csv", dir);
    CU_ASSERT_EQUAL(qs_topo_report_write_csv(&rep, f, &e), QS_OK);
    /* native timing: no SCALE-Sim figures, reports refused */
    qs_arch nat = a;
    nat.timing = QS_TIMING_NATIVE;
    rep.arch = &nat;
    CU_ASSERT_EQUAL(qs_scalesim_write_reports(&rep, sub, &e), QS_ERR_ARG);
    CHECK_MSG(e, "convention = scalesim");
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    qs_scalesim_topo_free(&t);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s1 = CU_add_suite("scalesim_config", NULL, NULL);
    CU_add_test(s1, "scale.cfg mapping", test_cfg_base);
    CU_add_test(s1, "dialects (separators, case, comments, v3)", test_cfg_dialects);
    CU_add_test(s1, "notes on ignored settings", test_cfg_notes);
    CU_add_test(s1, "--set overrides", test_cfg_overrides);
    CU_add_test(s1, "arrays over 1024: SCALE-Sim figures only", test_cfg_big_array);
    CU_add_test(s1, "bad configs name file and line", test_cfg_errors);
    CU_add_test(s1, "detection and shipped configs", test_cfg_detect_and_files);
    CU_pSuite s2 = CU_add_suite("scalesim_topology", NULL, NULL);
    CU_add_test(s2, "convolution form", test_topo_conv);
    CU_add_test(s2, "GEMM form", test_topo_gemm);
    CU_add_test(s2, "bad topologies name file and line", test_topo_errors);
    CU_pSuite s3 = CU_add_suite("scalesim_layer_net", NULL, NULL);
    CU_add_test(s3, "ofmap size", test_ofmap_dims);
    CU_add_test(s3, "shapes and GEMM dims per dataflow", test_layer_net_shapes);
    CU_add_test(s3, "operands: deterministic, sparsity, widths", test_operands);
    CU_pSuite s4 = CU_add_suite("scalesim_reports", NULL, NULL);
    CU_add_test(s4, "Python float format", test_py_float);
    CU_add_test(s4, "report files", test_reports);
    CU_add_test(s4, "read replay: direct and hashed tables agree", test_read_replay_tables);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
