/* CUnit tests of the arch configuration loader (models/qs_arch.h,
 * docs/config.md): the presets load, every error path names the file and
 * line (or the --set), overrides apply, and the derived helpers agree with
 * the documented rules. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_arch.h"

#ifndef QSIM_SOURCE_DIR
#define QSIM_SOURCE_DIR "."
#endif

static const char *const PRESETS[] = {"dlac", "tpu_int8", "edge"};

static void preset_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/models/arch/%s.cfg", QSIM_SOURCE_DIR, name);
}

/* ---- presets ---------------------------------------------------------- */

static void test_presets_load(void)
{
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        char path[512];
        qs_arch a;
        qs_error e = {{0}};
        preset_path(path, sizeof path, PRESETS[i]);
        qs_status st = qs_arch_load(path, NULL, 0, &a, &e);
        if (st != QS_OK) fprintf(stderr, "\n%s\n", e.msg);
        CU_ASSERT_EQUAL_FATAL(st, QS_OK);
        CU_ASSERT_STRING_EQUAL(a.name, PRESETS[i]);
        CU_ASSERT_EQUAL(qs_arch_validate(&a, path, &e), QS_OK);
        /* the table path is resolved against the preset's folder */
        FILE *f = fopen(a.tech_table, "r");
        CU_ASSERT_PTR_NOT_NULL(f);
        if (f) fclose(f);
    }
}

static void test_preset_values(void)
{
    char path[512];
    qs_arch a;
    qs_error e;
    preset_path(path, sizeof path, "dlac");
    CU_ASSERT_EQUAL_FATAL(qs_arch_load(path, NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.rows, 16);
    CU_ASSERT_EQUAL(a.cols, 16);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_OS);
    CU_ASSERT_EQUAL(a.weight_path_bits, 2);
    CU_ASSERT_EQUAL(a.max_act_bits, 8);
    CU_ASSERT_EQUAL(a.zero_skip, QS_SKIP_BOTH);
    CU_ASSERT_STRING_EQUAL(a.dram_tech, "lpddr4");
    CU_ASSERT_DOUBLE_EQUAL(a.dram_bytes_per_cycle, 12.8, 1e-12);

    preset_path(path, sizeof path, "tpu_int8");
    CU_ASSERT_EQUAL_FATAL(qs_arch_load(path, NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.rows, 128);
    CU_ASSERT_EQUAL(a.dataflow, QS_DF_WS);
    CU_ASSERT_EQUAL(a.weight_path_bits, 8);
    CU_ASSERT_EQUAL(a.zero_skip, QS_SKIP_NONE);
    CU_ASSERT_STRING_EQUAL(a.dram_tech, "hbm2");

    preset_path(path, sizeof path, "edge");
    CU_ASSERT_EQUAL_FATAL(qs_arch_load(path, NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.rows, 8);
    CU_ASSERT_EQUAL(a.acc_bits, 16);
    CU_ASSERT_EQUAL(a.overflow, QS_OVF_SATURATE);
    CU_ASSERT_EQUAL(a.accum.size_kib, 4);
}

static void test_defaults_valid(void)
{
    qs_arch a, b;
    qs_error e;
    qs_arch_defaults(&a);
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "defaults", &e), QS_OK);
    /* an empty file is the defaults (the table path is relative to the folder) */
    CU_ASSERT_EQUAL_FATAL(qs_arch_parse("", "cfgdir/empty.cfg", NULL, 0, &b, &e), QS_OK);
    CU_ASSERT_EQUAL(b.rows, a.rows);
    CU_ASSERT_EQUAL(b.acc_bits, a.acc_bits);
    CU_ASSERT_STRING_EQUAL(b.tech_table, "cfgdir/../tech/default45.tech");
}

/* ---- error paths ---------------------------------------------------------- */

typedef struct {
    const char *text;
    const char *set;        /* one override or NULL */
    const char *expect;     /* substring of the message */
} bad_case;

/* Each names "t/bad.cfg" and the line, or the --set key. */
static const bad_case BAD[] = {
    {"[foo]\n", NULL, "bad.cfg:1: [foo]: unknown section"},
    {"[general]\nname = x\n\n[arrays]\nrows = 4\n", NULL, "bad.cfg:4: [arrays]: unknown section"},
    {"[array]\nrowz = 4\n", NULL, "bad.cfg:2: [array] rowz: unknown key"},
    {"[array]\nrows = 8\ncols = 8\nrows = 16\n", NULL, "bad.cfg:4: [array] rows: duplicate key (first at line 2)"},
    {"[array]\nrows = 12x\n", NULL, "bad.cfg:2: [array] rows: '12x' is not an integer"},
    {"[array]\nrows = 0x10\n", NULL, "bad.cfg:2: [array] rows: '0x10' is not an integer"},
    {"[array]\nrows = 16.0\n", NULL, "bad.cfg:2: [array] rows: '16.0' is not an integer"},
    {"[array]\nrows =\n", NULL, "bad.cfg:2: [array] rows: empty value"},
    {"[dram]\nbytes_per_cycle = 1.5.2\n", NULL, "bad.cfg:2: [dram] bytes_per_cycle: '1.5.2' is not a finite number"},
    {"[dram]\nbytes_per_cycle = inf\n", NULL, "bad.cfg:2: [dram] bytes_per_cycle"},
    {"[array]\nrows = 0\n", NULL, "bad.cfg:2: [array] rows: 0 is out of range"},
    {"[array]\nacc_bits = 33\n", NULL, "bad.cfg:2: [array] acc_bits: 33 is out of range 8..32"},
    {"[array]\nrows = 99999999999999999999\n", NULL, "bad.cfg:2: [array] rows:"},
    {"[dram]\nbytes_per_cycle = 0\n", NULL, "bad.cfg:2: [dram] bytes_per_cycle: 0 is out of range"},
    {"[tech]\nnode_nm = 3\n", NULL, "bad.cfg:2: [tech] node_nm: 3 is out of range 5..180"},
    {"[tech]\nvoltage = -1\n", NULL, "bad.cfg:2: [tech] voltage"},
    {"[ppu]\npool = 2\n", NULL, "bad.cfg:2: [ppu] pool: 2 is out of range 0..1"},
    {"[array]\nweight_path_bits = 3\n", NULL, "bad.cfg:2: [array] weight_path_bits: 3 is not a power of two"},
    {"[dram]\nburst_bytes = 48\n", NULL, "bad.cfg:2: [dram] burst_bytes: 48 is not a power of two"},
    {"[array]\ndataflow = rs\n", NULL, "bad.cfg:2: [array] dataflow: 'rs' is not one of ws, os, is"},
    {"[array]\nzero_skip = all\n", NULL, "bad.cfg:2: [array] zero_skip: 'all' is not one of"},
    {"[array]\nskip_impl = gate\n", NULL, "bad.cfg:2: [array] skip_impl"},
    {"[array]\noverflow = clip\n", NULL, "bad.cfg:2: [array] overflow"},
    {"[timing]\nconvention = timeloop\n", NULL, "bad.cfg:2: [timing] convention"},
    {"[dram]\ntechnology = ddr5\n", NULL, "bad.cfg:2: [dram] technology: 'ddr5' is not one of"},
    {"[general]\nname = a/b\n", NULL, "bad.cfg:2: [general] name"},
    /* cross-field: reported at the key set last, naming the other */
    {"[array]\nrows = 16\nskip_group = 5\n", NULL, "bad.cfg:3: [array] skip_group: skip_group = 5 does not divide rows = 16 ([array] rows: line 2)"},
    {"[array]\nlookahead = 8\n", NULL, "bad.cfg:2: [array] lookahead: 8 is out of range 0..7"},
    {"[array]\nzero_skip = gate\nlookahead = 2\n", NULL, "bad.cfg:3: [array] lookahead: lookahead = 2 needs zero_skip = weights or both, not gate ([array] zero_skip: line 2)"},
    {"[array]\nlookahead = 1\nzero_skip = weights\ndataflow = ws\n", NULL, "bad.cfg:4: [array] dataflow: lookahead = 1 needs dataflow = os, not ws ([array] lookahead: line 2)"},
    {"[array]\nskip_group = 32\n", NULL, "bad.cfg:2: [array] skip_group: skip_group = 32 exceeds rows = 16"},
    {"[array]\nskip_group = 8\nrows = 4\n", NULL, "bad.cfg:3: [array] rows: skip_group = 8 exceeds rows = 4 ([array] skip_group: line 2)"},
    {"[array]\nweight_path_bits = 8\nmax_weight_bits = 4\n", NULL, "bad.cfg:3: [array] max_weight_bits: max_weight_bits = 4 is narrower than weight_path_bits = 8"},
    {"[array]\nmax_weight_bits = 7\n", NULL, "bad.cfg:2: [array] max_weight_bits: max_weight_bits = 7 is not a multiple of weight_path_bits = 2"},
    {"[array]\nacc_bits = 12\n", NULL, "bad.cfg:2: [array] acc_bits: acc_bits = 12 cannot hold one product"},
    {"[array]\ncols = 1024\n[buffer.accum]\nsize_kib = 4\n", NULL, "bad.cfg:4: [buffer.accum] size_kib:"},
    {"[buffer.accum]\nbanks = 1\nbank_width_bytes = 2\n", NULL, "bad.cfg:3: [buffer.accum] bank_width_bytes:"},
    {"[buffer.ifmap]\nbanks = 3\n", NULL, "bad.cfg:2: [buffer.ifmap] banks: [buffer.ifmap] size_kib = 64 (65536 bytes) is not a whole number"},
    {"[buffer.weight]\nsize_kib = 1\nbanks = 1\nbank_width_bytes = 1024\n", NULL, "bad.cfg:4: [buffer.weight] bank_width_bytes:"},
    /* [dram] bank model (docs/config.md, "Rules between keys" 6-10) */
    {"[dram]\nmodel = ddr5\n", NULL, "bad.cfg:2: [dram] model: 'ddr5' is not one of simple, ddr4_3200"},
    {"[dram]\nmodel = ddr4_3200\ntRAS = 80\n", NULL,
     "bad.cfg:3: [dram] tRAS: tRC = 74 is shorter than tRAS + tRP = 80 + 22 (a row must open, stay open and close "
     "within one row cycle); tRAS > tRC ([dram] tRC: default)"},
    {"[dram]\nmodel = hbm2\ntRC = 40\n", NULL, "bad.cfg:3: [dram] tRC: tRC = 40 is shorter than tRAS + tRP = 34 + 14"},
    {"[dram]\nmodel = ddr4_3200\nburst_length = 16\ncolumns = 8\n", NULL,
     "bad.cfg:4: [dram] columns: burst_length = 16 is longer than the row (columns = 8) ([dram] burst_length: line 3)"},
    {"[dram]\nmodel = ddr4_3200\nqueue_depth = 0\n", NULL, "bad.cfg:3: [dram] queue_depth: 0 is out of range 1..4096"},
    {"[dram]\nmodel = ddr4_3200\naddress_mapping = rochrababgba\n", NULL,
     "bad.cfg:3: [dram] address_mapping: address_mapping = 'rochrababgba' repeats the ba bits"},
    {"[dram]\nmodel = lpddr5_6400\naddress_mapping = rochrababg\n", NULL,
     "bad.cfg:3: [dram] address_mapping: address_mapping = 'rochrababg' must be 6 two-letter fields"},
    {"[dram]\nmodel = lpddr5_6400\naddress_mapping = rochrababgxx\n", NULL,
     "bad.cfg:3: [dram] address_mapping: address_mapping = 'rochrababgxx': 'xx' is not a field"},
    {"[dram]\nmodel = ddr4_3200\ncolumns = 1000\n", NULL, "bad.cfg:3: [dram] columns: 1000 is not a power of two"},
    {"[dram]\ntCL = 20\n", NULL, "bad.cfg:2: [dram] tCL: a bank-model parameter, but [dram] model = simple ignores it"},
    {"[dram]\nmodel = ddr4_3200\ncmd_queue_depth = -1\n", NULL, "bad.cfg:3: [dram] cmd_queue_depth: -1 is out of range 0..4096"},
    {"[dram]\ncmd_queue_depth = 8\n", NULL, "bad.cfg:2: [dram] cmd_queue_depth: a bank-model parameter, but [dram] model = simple ignores it"},
    {"[dram]\nmodel = ddr4_3200\ncmd_queue_depth = 0\ncmd_arbiter = round_robin\n", NULL,
     "bad.cfg:4: [dram] cmd_arbiter: cmd_arbiter = round_robin turns over bank command queues, but cmd_queue_depth = 0 has none"},
    {"[dram]\nmodel = ddr4_3200\nwrite_buffer = 32\ncmd_queue_depth = 0\n", NULL,
     "bad.cfg:4: [dram] cmd_queue_depth: write_buffer = 32 needs the two-level controller, but cmd_queue_depth = 0"},
    {"[dram]\nmodel = ddr4_3200\ncmd_queue_depth = 8\n", "dram.cmd_arbiter=fair",
     "bad.cfg: --set dram.cmd_arbiter: 'fair' is not one of oldest, round_robin"},
    {"[dram]\nmodel = tlm\ntCL = 20\n", NULL, "bad.cfg:3: [dram] tCL: a bank-model parameter, but [dram] model = tlm ignores it"},
    {"[dram]\nmodel = tlm\n[timing]\nconvention = scalesim\n", NULL, "bad.cfg:4: [timing] convention: model = tlm: the SCALE-Sim convention"},
    {"[dram]\nmodel = ddr4_3200\ntRRD_L = 2\n", NULL, "bad.cfg:3: [dram] tRRD_L: tRRD_L = 2 is shorter than tRRD_S = 4"},
    {"[dram]\nmodel = ddr4_3200\ntCCD_S = 9\n", NULL, "bad.cfg:3: [dram] tCCD_S: tCCD_L = 8 is shorter than tCCD_S = 9"},
    {"[dram]\nmodel = ddr4_3200\ntREFI = 500\n", NULL, "bad.cfg:3: [dram] tREFI: tREFI = 500 leaves no time between refreshes of tRFC = 560"},
    {"[dram]\nmodel = ddr4_3200\n[timing]\nconvention = scalesim\n", NULL, "bad.cfg:4: [timing] convention: model = ddr4_3200: the SCALE-Sim convention"},
    {"", "dram.page_policy=lazy", "bad.cfg: --set dram.page_policy: 'lazy' is not one of open, closed"},
    {"[dram]\nmodel = hbm2\n", "dram.tRAS=60", "bad.cfg: --set dram.tRAS: tRC = 48 is shorter than tRAS + tRP = 60 + 14"},
    /* the INI dialect */
    {"[array]\n  rows = 8\n", NULL, "bad.cfg:2: indented line"},
    {"[array] rows = 8\n", NULL, "bad.cfg:1: text after the section header"},
    {"[array\n", NULL, "bad.cfg:1: syntax error"},
    {"[array]\nrows 8\n", NULL, "bad.cfg:2: syntax error"},
    {"rows = 8\n", NULL, "bad.cfg:1: rows: key before any [section]"},
    {"[array]\n[dram]\n[array]\n", NULL, "bad.cfg:3: [array]: section repeated (first at line 1)"},
    {"[array]\nrows = 8 # not a comment here\n", NULL, "bad.cfg:2: [array] rows"},
    /* overrides */
    {"", "array.rowz=4", "bad.cfg: --set array.rowz: unknown key"},
    {"", "arrays.rows=4", "bad.cfg: --set arrays.rows: unknown section [arrays]"},
    {"", "foo", "bad.cfg: --set foo: expected section.key=value"},
    {"", "rows=4", "bad.cfg: --set rows=4: expected section.key=value"},
    {"", "array.=4", "bad.cfg: --set array.=4: expected section.key=value"},
    {"", "array.rows=12x", "bad.cfg: --set array.rows: '12x' is not an integer"},
    {"", "array.rows=2000", "bad.cfg: --set array.rows: 2000 is out of range"},
    {"", "buffer.ifmap.banks=3", "bad.cfg: --set buffer.ifmap.banks:"},
    {"[array]\nrows = 16\nskip_group = 4\n", "array.rows=6", "bad.cfg: --set array.rows: skip_group = 4 does not divide rows = 6 ([array] skip_group: line 3)"},
};

static void test_error_paths(void)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        qs_arch a;
        qs_error e = {{0}};
        const char *ov[1] = {BAD[i].set};
        qs_status st = qs_arch_parse(BAD[i].text, "t/bad.cfg", ov, BAD[i].set ? 1 : 0, &a, &e);
        CU_ASSERT_EQUAL(st, QS_ERR_CONFIG);
        if (st != QS_ERR_CONFIG || !strstr(e.msg, BAD[i].expect))
            fprintf(stderr, "\ncase %zu: got \"%s\", want \"%s\"\n", i, e.msg, BAD[i].expect);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, BAD[i].expect));
    }
}

static void test_long_line(void)
{
    char text[600];
    qs_arch a;
    qs_error e = {{0}};
    memset(text, 0, sizeof text);
    strcpy(text, "[general]\n; ");
    memset(text + strlen(text), 'x', 300);
    strcat(text, "\n");
    CU_ASSERT_EQUAL(qs_arch_parse(text, "t/long.cfg", NULL, 0, &a, &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "long.cfg:2: line longer than"));
}

/* Writes `text` to a fresh temporary file; returns its path in buf. */
static int write_temp(char *buf, size_t n, const char *text, size_t len)
{
    snprintf(buf, n, "/tmp/qsim_test_arch_XXXXXX");
    int fd = mkstemp(buf);
    if (fd < 0) return 0;
    ssize_t w = write(fd, text, len);
    close(fd);
    return w == (ssize_t)len;
}

static void test_files(void)
{
    qs_arch a;
    qs_error e = {{0}};
    char path[64];

    CU_ASSERT_EQUAL(qs_arch_load("/nonexistent/dir/x.cfg", NULL, 0, &a, &e), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent/dir/x.cfg"));

    const char bad[] = "[array]\nrows = 16\ncols = 1x\n";
    CU_ASSERT_FATAL(write_temp(path, sizeof path, bad, sizeof bad - 1));
    CU_ASSERT_EQUAL(qs_arch_load(path, NULL, 0, &a, &e), QS_ERR_CONFIG);
    char want[128];
    snprintf(want, sizeof want, "%s:3: [array] cols", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want));
    unlink(path);

    /* a NUL byte would silently cut the text short */
    const char nul[] = "[array]\nrows = 8\n\0[foo]\n";
    CU_ASSERT_FATAL(write_temp(path, sizeof path, nul, sizeof nul - 1));
    CU_ASSERT_EQUAL(qs_arch_load(path, NULL, 0, &a, &e), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "NUL"));
    unlink(path);

    /* a file's table path is relative to its folder */
    const char ok[] = "\xEF\xBB\xBF[tech]\r\ntable = mine.tech ; comment\r\n";
    CU_ASSERT_FATAL(write_temp(path, sizeof path, ok, sizeof ok - 1));
    CU_ASSERT_EQUAL(qs_arch_load(path, NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_STRING_EQUAL(a.tech_table, "/tmp/mine.tech");
    unlink(path);
}

/* ---- overrides ----------------------------------------------------------------- */

static void test_overrides(void)
{
    char path[512];
    qs_arch a;
    qs_error e = {{0}};
    preset_path(path, sizeof path, "dlac");
    const char *ov[] = {"array.rows=8", " buffer.ifmap.size_kib = 128 ", "array.zero_skip=none", "tech.node_nm=7",
                        "dram.technology=hbm2", "tech.table=t/x.tech", "general.name=sweep-1"};
    qs_status st = qs_arch_load(path, ov, 7, &a, &e);
    if (st) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    CU_ASSERT_EQUAL(a.rows, 8);
    CU_ASSERT_EQUAL(a.cols, 16); /* untouched keys keep the file's value */
    CU_ASSERT_EQUAL(a.ifmap.size_kib, 128);
    CU_ASSERT_EQUAL(a.zero_skip, QS_SKIP_NONE);
    CU_ASSERT_EQUAL(a.node_nm, 7);
    CU_ASSERT_STRING_EQUAL(a.dram_tech, "hbm2");
    CU_ASSERT_STRING_EQUAL(a.tech_table, "t/x.tech"); /* --set paths: relative to the cwd */
    CU_ASSERT_STRING_EQUAL(a.name, "sweep-1");

    /* the same key twice on the command line is a mistake */
    const char *twice[] = {"array.rows=8", "array.rows=4"};
    CU_ASSERT_EQUAL(qs_arch_load(path, twice, 2, &a, &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "--set array.rows: given twice"));

    /* an override can repair what the file alone gets wrong */
    const char *fix[] = {"array.skip_group=4"};
    CU_ASSERT_EQUAL(qs_arch_parse("[array]\nskip_group = 5\n", "t.cfg", fix, 1, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.skip_group, 4);
}

/* ---- derived quantities and names --------------------------------------------------- */

static void test_slices(void)
{
    qs_arch a;
    qs_arch_defaults(&a);
    a.weight_path_bits = 2;
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 8), 4);
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 3), 2);
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 2), 1);
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 1), 1); /* bipolar */
    a.weight_path_bits = 8;
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 8), 1);
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 4), 1);
    CU_ASSERT_EQUAL(qs_arch_weight_slices(&a, 16), 2);
    a.weight_path_bits = 1;
    a.max_weight_bits = 8;
    CU_ASSERT_EQUAL(qs_arch_max_slices(&a), 8);
}

static void test_validate_struct(void)
{
    qs_arch a;
    qs_error e = {{0}};
    qs_arch_defaults(&a);
    a.skip_group = 3;
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "mine", &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "mine: [array] skip_group"));
    qs_arch_defaults(&a);
    a.dataflow = (qs_dataflow)7;
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "mine", &e), QS_ERR_CONFIG);
    qs_arch_defaults(&a);
    a.freq_mhz = 0;
    CU_ASSERT_EQUAL(qs_arch_validate(&a, "mine", &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "[clock] freq_mhz"));
}

/* [dram] model: the preset fills the bank keys the file leaves alone, a key
 * given overrides it, tRTW is derived (tCL + burst cycles - tCWL + 2) unless
 * given; every preset is a valid configuration. */
static void test_dram_presets(void)
{
    static const char *const MODELS[4] = {"ddr4_3200", "lpddr4_4266", "lpddr5_6400", "hbm2"};
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "[dram]\nmodel = %s\n", MODELS[i]);
        qs_arch a;
        qs_error e = {{0}};
        CU_ASSERT_EQUAL_FATAL(qs_arch_parse(text, "p.cfg", NULL, 0, &a, &e), QS_OK);
        CU_ASSERT_STRING_EQUAL(qs_dram_model_name(a.dram_model), MODELS[i]);
        qs_dram_cfg p;
        qs_dram_preset(a.dram_model, &p);
        CU_ASSERT_EQUAL(memcmp(&p, &a.dram, sizeof p), 0);
    }
    qs_arch a;
    qs_error e = {{0}};
    const char *ov[1] = {"dram.tRCD=20"};
    CU_ASSERT_EQUAL_FATAL(qs_arch_parse("[dram]\nmodel = hbm2\ntCL = 15\n", "p.cfg", ov, 1, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dram.tCL, 15);
    CU_ASSERT_EQUAL(a.dram.tRCD, 20);
    CU_ASSERT_EQUAL(a.dram.tRP, 14);            /* DRAMsim3 HBM2_8Gb_x128 */
    CU_ASSERT_EQUAL(a.dram.channels, 8);
    CU_ASSERT_EQUAL(a.dram.tRTW, 15 + 4 / 2 - 4 + 2);
    CU_ASSERT_EQUAL(qs_arch_parse("[dram]\nmodel = ddr4_3200\ntRTW = 3\n", "p.cfg", NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dram.tRTW, 3);
    CU_ASSERT_EQUAL(a.dram.tCL, 22);            /* DRAMsim3 DDR4_8Gb_x8_3200 */
    CU_ASSERT_EQUAL(a.dram.tFAW, 34);
    /* the controller DRAMsim3 validated (docs/dram.md "Validation"): command queues of 8, round robin,
     * a write buffer of 32; the single queue alone takes cmd_queue_depth = 0 (the other two then do not
     * apply) */
    CU_ASSERT_EQUAL(a.dram.cmd_queue_depth, 8);
    CU_ASSERT_EQUAL(a.dram.cmd_arbiter, QS_ARB_ROUND_ROBIN);
    CU_ASSERT_EQUAL(a.dram.write_buffer, 32);
    CU_ASSERT_EQUAL(qs_arch_parse("[dram]\nmodel = ddr4_3200\ncmd_queue_depth = 0\n", "p.cfg", NULL, 0, &a, &e), QS_OK);
    /* absent model: simple, today's four keys */
    CU_ASSERT_EQUAL(qs_arch_parse("", "p.cfg", NULL, 0, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.dram_model, QS_DRAM_SIMPLE);
}

static void test_names(void)
{
    CU_ASSERT_STRING_EQUAL(qs_dataflow_name(QS_DF_IS), "is");
    CU_ASSERT_STRING_EQUAL(qs_zero_skip_name(QS_SKIP_ACTIVATIONS), "activations");
    CU_ASSERT_STRING_EQUAL(qs_skip_impl_name(QS_SKIPIMPL_ISOLATE), "isolate");
    CU_ASSERT_STRING_EQUAL(qs_overflow_name(QS_OVF_SATURATE), "saturate");
    CU_ASSERT_STRING_EQUAL(qs_timing_name(QS_TIMING_SCALESIM), "scalesim");
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s1 = CU_add_suite("arch_presets", NULL, NULL);
    CU_add_test(s1, "presets load", test_presets_load);
    CU_add_test(s1, "preset values", test_preset_values);
    CU_add_test(s1, "defaults valid", test_defaults_valid);
    CU_add_test(s1, "dram presets", test_dram_presets);
    CU_pSuite s2 = CU_add_suite("arch_errors", NULL, NULL);
    CU_add_test(s2, "error paths", test_error_paths);
    CU_add_test(s2, "long line", test_long_line);
    CU_add_test(s2, "files", test_files);
    CU_add_test(s2, "validate struct", test_validate_struct);
    CU_pSuite s3 = CU_add_suite("arch_overrides", NULL, NULL);
    CU_add_test(s3, "overrides", test_overrides);
    CU_pSuite s4 = CU_add_suite("arch_derived", NULL, NULL);
    CU_add_test(s4, "slices", test_slices);
    CU_add_test(s4, "names", test_names);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
