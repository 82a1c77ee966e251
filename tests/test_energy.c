/* CUnit tests of the energy/area model (models/qs_energy.h) against the
 * rules its table cites (../shared/reference/energy-area.md): the fitted
 * MAC rules at 45 nm, the node and voltage factors, the skip-implementation
 * ordering, the 8x8 PE area cross-check, the SRAM/DRAM figures, the
 * arithmetic of qs_energy_of, and the table parser's error paths. */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qs_alloc.h"
#include "qs_energy.h"

#ifndef QSIM_SOURCE_DIR
#define QSIM_SOURCE_DIR "."
#endif

#define TABLE QSIM_SOURCE_DIR "/models/tech/default45.tech"

static char *g_table_text; /* the default table, read once for the error tests */

static int suite_init(void)
{
    qs_error e;
    return qs_read_text_file(TABLE, &g_table_text, &e) == QS_OK ? 0 : 1;
}

static int suite_clean(void)
{
    qs_free(g_table_text);
    g_table_text = NULL;
    return 0;
}

/* An 8x8 MAC PE with a 32-bit accumulator, output-stationary, no skipping,
 * at the table's own node and voltage. */
static void arch_8x8(qs_arch *a)
{
    qs_arch_defaults(a);
    a->weight_path_bits = 8;
    a->max_weight_bits = 8;
    a->max_act_bits = 8;
    a->acc_bits = 32;
    a->zero_skip = QS_SKIP_NONE;
    a->node_nm = 45;
    a->voltage = 0.9;
}

static qs_tech tech_of(const qs_arch *a, int act_bits)
{
    qs_tech t;
    qs_error e = {{0}};
    qs_status st = qs_tech_load(TABLE, a, act_bits, &t, &e);
    if (st != QS_OK) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_EQUAL(st, QS_OK);
    return t;
}

#define NEAR(x, want, rel) CU_ASSERT(fabs((x) - (want)) <= (rel) * fabs(want))

/* ---- fitted rules at 45 nm ---------------------------------------------- */

static void test_mac_rule(void)
{
    qs_arch a;
    arch_8x8(&a);
    qs_tech t = tech_of(&a, 0);
    /* 3.1 fJ * 8 * 8 + 3.1 fJ * 32 */
    NEAR(t.mac_pj, (3.1 * 64 + 3.1 * 32) * 1e-3, 1e-12);
    NEAR(t.node_area_factor, 1.0, 1e-12);
    NEAR(t.node_energy_factor, 1.0, 1e-12);
    NEAR(t.voltage_energy_factor, 1.0, 1e-12);
    /* 2-bit weight path, 4-bit activations, 24-bit accumulator (dLAC-like) */
    a.weight_path_bits = 2;
    a.max_act_bits = 4;
    a.acc_bits = 24;
    t = tech_of(&a, 0);
    NEAR(t.mac_pj, (3.1 * 4 * 2 + 3.1 * 24) * 1e-3, 1e-12);
    /* a narrower layer activation uses fewer multiplier bits */
    qs_tech t2 = tech_of(&a, 2);
    NEAR(t2.mac_pj, (3.1 * 2 * 2 + 3.1 * 24) * 1e-3, 1e-12);
    /* below 4-bit operands the accumulator dominates (the reference) */
    CU_ASSERT(3.1 * 24 > 3.1 * 4 * 2);
    NEAR(t.reg_pj_per_bit, 0.009, 1e-12);
    NEAR(t.ppu_pj_per_op, 3.1 + 3 * 0.1, 1e-12);
}

static void test_pe_area_crosscheck(void)
{
    qs_arch a;
    arch_8x8(&a);
    qs_tech t = tech_of(&a, 0);
    /* arithmetic 4.4*64 + 4.3*32 plus 6 um^2 per flop bit: act 8 + weight 8
     * + 2 valid bits, no slice index (one slice) */
    NEAR(t.pe_um2, 4.4 * 64 + 4.3 * 32 + 6.0 * 18, 1e-12);
    /* the reference's cross-check: an 8x8 MAC is ~490 um^2 (yosys), the
     * synthesized Bit Fusion PE 444-511 um^2 */
    NEAR(t.pe_um2, 490.0, 0.10);
    NEAR(t.pe_um2 - 6.0 * 18, 490.0, 0.15);
    CU_ASSERT_DOUBLE_EQUAL(t.pe_skip_um2, 0.0, 1e-12);
    NEAR(t.array_mm2, 16 * 16 * t.pe_um2 * 1e-6, 1e-12);
}

/* Lookahead: the window registers, window index and multiplexer by hand
 * (docs/config.md "Area"), and the multiplexer's energy per operation. */
static void test_lookahead_cost(void)
{
    qs_arch a;
    arch_8x8(&a);
    a.weight_path_bits = 2;
    a.max_weight_bits = 2;
    a.max_act_bits = 4;
    a.acc_bits = 24;
    a.zero_skip = QS_SKIP_WEIGHTS;
    qs_tech base = tech_of(&a, 0);
    CU_ASSERT_DOUBLE_EQUAL(base.pe_lookahead_um2, 0.0, 1e-12);
    for (int H = 1; H <= 3; H++) {
        a.lookahead = H;
        qs_tech t = tech_of(&a, 0);
        /* H x (4 activation bits + valid) flops, ceil(log2(H+1)) index flops
         * at 6.0 um^2, H x 4 2:1 mux bits at 1.2 um^2 */
        double want = 6.0 * (H * 5 + (H == 1 ? 1 : 2)) + 1.2 * H * 4;
        NEAR(t.pe_lookahead_um2, want, 1e-12);
        NEAR(t.pe_um2 - base.pe_um2, want, 1e-12);
        /* H x 4 mux bits x 0.009 pJ x 1.2 / 6.0 per operation */
        NEAR(t.mac_pj - base.mac_pj, H * 4 * 0.009 * 1.2 / 6.0, 1e-12);
        NEAR(t.lookahead_mux_pj, H * 4 * 0.009 * 1.2 / 6.0, 1e-12);
    }
}

static void test_skip_impl(void)
{
    qs_arch a;
    arch_8x8(&a);
    a.zero_skip = QS_SKIP_BOTH;
    a.skip_impl = QS_SKIPIMPL_HOLD;
    qs_tech hold = tech_of(&a, 0);
    a.skip_impl = QS_SKIPIMPL_ISOLATE;
    qs_tech iso = tech_of(&a, 0);
    a.skip_impl = QS_SKIPIMPL_CLOCKGATE;
    qs_tech cg = tech_of(&a, 0);
    CU_ASSERT(hold.mac_skip_pj > iso.mac_skip_pj);
    CU_ASSERT(iso.mac_skip_pj > cg.mac_skip_pj);
    CU_ASSERT(cg.mac_skip_pj > 0);
    /* the reference: holding the accumulator still burns 70-90% */
    CU_ASSERT(hold.mac_skip_pj >= 0.7 * hold.mac_pj && hold.mac_skip_pj <= 0.9 * hold.mac_pj);
    CU_ASSERT(iso.mac_skip_pj >= 0.10 * iso.mac_pj && iso.mac_skip_pj <= 0.20 * iso.mac_pj);
    CU_ASSERT(cg.mac_skip_pj >= 0.02 * cg.mac_pj && cg.mac_skip_pj <= 0.05 * cg.mac_pj);
    /* the clock gate also stops idle PEs */
    CU_ASSERT(cg.pe_idle_pj < iso.pe_idle_pj);
    /* skip logic is small but present */
    CU_ASSERT(cg.pe_skip_um2 > 0 && cg.pe_skip_um2 < 0.15 * cg.pe_um2);
    CU_ASSERT(hold.pe_skip_um2 > 0 && hold.pe_skip_um2 < 0.15 * hold.pe_um2);
    /* without skip hardware a zero operand is an ordinary MAC */
    a.zero_skip = QS_SKIP_NONE;
    qs_tech none = tech_of(&a, 0);
    NEAR(none.mac_skip_pj, none.mac_pj, 1e-12);
}

/* ---- node and voltage ------------------------------------------------------ */

static void test_node_scaling(void)
{
    qs_arch a;
    arch_8x8(&a);
    qs_tech t45 = tech_of(&a, 0);
    static const struct { int nm; double area, energy; } TABLE_SB[] = {
        {28, 0.38, 0.51}, {16, 0.19, 0.17}, {7, 0.059, 0.094}};
    for (int i = 0; i < 3; i++) {
        a.node_nm = TABLE_SB[i].nm;
        qs_tech t = tech_of(&a, 0);
        NEAR(t.mac_pj / t45.mac_pj, TABLE_SB[i].energy, 1e-9);
        NEAR(t.reg_pj_per_bit / t45.reg_pj_per_bit, TABLE_SB[i].energy, 1e-9);
        NEAR(t.sram_pj_per_byte[0] / t45.sram_pj_per_byte[0], TABLE_SB[i].energy, 1e-9);
        NEAR(t.pe_um2 / t45.pe_um2, TABLE_SB[i].area, 1e-9);
        NEAR(t.total_mm2 / t45.total_mm2, TABLE_SB[i].area, 1e-9);
        /* DRAM is another chip: the accelerator's node does not change it */
        NEAR(t.dram_pj_per_byte, t45.dram_pj_per_byte, 1e-12);
    }
    /* between and beyond the table: interpolated, monotonic */
    double prev = 0;
    static const int NODES[] = {5, 7, 10, 16, 22, 28, 40, 45, 65, 90, 180};
    for (size_t i = 0; i < sizeof NODES / sizeof NODES[0]; i++) {
        a.node_nm = NODES[i];
        qs_tech t = tech_of(&a, 0);
        CU_ASSERT(t.mac_pj > prev);
        prev = t.mac_pj;
    }
    a.node_nm = 10;
    qs_tech t10 = tech_of(&a, 0);
    CU_ASSERT(t10.node_energy_factor > 0.094 && t10.node_energy_factor < 0.17);
    CU_ASSERT(t10.node_area_factor > 0.059 && t10.node_area_factor < 0.19);
}

static void test_voltage_scaling(void)
{
    qs_arch a;
    arch_8x8(&a);
    qs_tech t09 = tech_of(&a, 0);
    a.voltage = 0.45;
    qs_tech t045 = tech_of(&a, 0);
    NEAR(t045.mac_pj / t09.mac_pj, 0.25, 1e-9);          /* ~V^2 */
    NEAR(t045.ppu_pj_per_op / t09.ppu_pj_per_op, 0.25, 1e-9);
    NEAR(t045.pe_um2, t09.pe_um2, 1e-12);                 /* area does not move */
    NEAR(t045.leak_mw_per_mm2 / t09.leak_mw_per_mm2, 0.5, 1e-9);
    NEAR(t045.voltage_energy_factor, 0.25, 1e-9);
}

/* ---- memories ------------------------------------------------------------------- */

static void test_sram(void)
{
    qs_arch a;
    arch_8x8(&a);
    /* one 8 KiB bank: CACTI's 6.4 pJ per 32-bit read */
    a.weight.size_kib = 8;
    a.weight.banks = 1;
    /* one 128 KiB bank: CACTI's 32.3 pJ per 64-bit read */
    a.ifmap.size_kib = 128;
    a.ifmap.banks = 1;
    /* 64 KiB in 4 banks = 16 KiB per bank: 10.0 pJ per 32-bit read */
    a.accum.size_kib = 64;
    a.accum.banks = 4;
    qs_tech t = tech_of(&a, 0);
    NEAR(t.sram_pj_per_byte[QS_BUF_WEIGHT], 6.4 / 4, 1e-9);
    NEAR(t.sram_pj_per_byte[QS_BUF_IFMAP], 32.3 / 8, 1e-9);
    NEAR(t.sram_pj_per_byte[QS_BUF_ACCUM], 10.0 / 4, 1e-9);
    NEAR(t.sram_wr_pj_per_byte[QS_BUF_IFMAP], 32.3 / 8 * 0.81, 1e-9);
    /* area proportional to the CACTI points */
    NEAR(t.sram_mm2[QS_BUF_WEIGHT], 57500e-6, 1e-9);
    NEAR(t.sram_mm2[QS_BUF_IFMAP], 0.43, 1e-9);
    NEAR(t.sram_mm2[QS_BUF_ACCUM], 4 * 108600e-6, 1e-9);
    /* larger banks cost more per byte; splitting into banks saves energy */
    a.accum.banks = 1;
    qs_tech one = tech_of(&a, 0);
    CU_ASSERT(one.sram_pj_per_byte[QS_BUF_ACCUM] > t.sram_pj_per_byte[QS_BUF_ACCUM]);
    CU_ASSERT(one.sram_pj_per_byte[QS_BUF_ACCUM] < t.sram_pj_per_byte[QS_BUF_IFMAP]);
    /* a 2-port bank is larger, not costlier per access */
    a.accum.ports = 2;
    qs_tech two = tech_of(&a, 0);
    CU_ASSERT(two.sram_mm2[QS_BUF_ACCUM] > one.sram_mm2[QS_BUF_ACCUM]);
    NEAR(two.sram_pj_per_byte[QS_BUF_ACCUM], one.sram_pj_per_byte[QS_BUF_ACCUM], 1e-12);
}

static void test_dram(void)
{
    qs_arch a;
    arch_8x8(&a);
    static const struct { const char *tech; double pj_bit; } D[] = {
        {"lpddr4", 8.0}, {"ddr4", 15.0}, {"gddr5", 14.0}, {"hbm2", 3.9}};
    for (int i = 0; i < 4; i++) {
        snprintf(a.dram_tech, sizeof a.dram_tech, "%s", D[i].tech);
        qs_tech t = tech_of(&a, 0);
        NEAR(t.dram_pj_per_byte, D[i].pj_bit * 8, 1e-12);
    }
    a.dram_pj_per_bit = 5.0; /* the arch's override wins */
    qs_tech t = tech_of(&a, 0);
    NEAR(t.dram_pj_per_byte, 40.0, 1e-12);
}

/* Bank-level DRAM energy by action, IDD-based as DRAMsim3 computes it
 * (docs/dram.md "Energy"), worked by hand from the presets' currents:
 * DDR4-3200 x8, 8 chips, VDD 1.2 V, tCK 0.625 ns:
 *   ACT+PRE 1.2 * (57*74 - (52*52 + 37*22)) * 8 * 0.625 = 4200 pJ
 *   RD      1.2 * (168 - 52) * 4 * 8 * 0.625           = 2784 pJ
 *   WR      1.2 * (150 - 52) * 4 * 8 * 0.625           = 2352 pJ
 *   REF     1.2 * (250 - 52) * 560 * 8 * 0.625         = 665280 pJ
 *   idle background 1.2 * 37 * 8 * 0.625 = 222 pJ per tCK (355.2 mW),
 *   an open bank adds 1.2 * (52 - 37) * 8 * 0.625 / 16 = 5.625 pJ per tCK;
 * HBM2 one 128-bit channel: ACT+PRE 1.2 * (65*48 - (55*34 + 40*14)) = 828 pJ,
 * RD 1.2 * (390 - 55) * 2 = 804 pJ (the reference's 0.83 nJ and 0.80 nJ). */
static void test_dram_actions(void)
{
    qs_dram_cfg c;
    qs_dram_preset(QS_DRAM_DDR4_3200, &c);
    qs_dram_energy e = qs_dram_energy_of(&c);
    NEAR(e.act, 4200.0, 1e-12);
    NEAR(e.rd, 2784.0, 1e-12);
    NEAR(e.wr, 2352.0, 1e-12);
    NEAR(e.ref, 665280.0, 1e-12);
    NEAR(e.bg_idle_pj_per_cycle, 222.0, 1e-12);
    NEAR(e.bg_active_pj_per_bank_cycle, 5.625, 1e-12);
    qs_dram_preset(QS_DRAM_HBM2, &c);
    e = qs_dram_energy_of(&c);
    NEAR(e.act, 828.0, 1e-12);
    NEAR(e.rd, 804.0, 1e-12);
    /* a run's breakdown: counts times the action energies; the background over
     * the run's time in tCK (1000 accelerator cycles at 1 GHz = 1600 tCK) */
    qs_arch a;
    arch_8x8(&a);
    a.dram_model = QS_DRAM_DDR4_3200;
    qs_dram_preset(QS_DRAM_DDR4_3200, &a.dram);
    qs_tech t = tech_of(&a, 0);
    qs_events ev;
    memset(&ev, 0, sizeof ev);
    ev.cycles = 1000;
    ev.dram_acts = 3;
    ev.dram_rd_bursts = 10;
    ev.dram_wr_bursts = 4;
    ev.dram_refreshes = 1;
    ev.dram_bank_active = 800;
    ev.dram_read_bytes = 640; /* the bank model ignores pJ/bit */
    qs_energy_breakdown b = qs_energy_of(&t, &a, &ev);
    NEAR(b.dram_act, 3 * 4200.0, 1e-12);
    NEAR(b.dram_rd, 10 * 2784.0, 1e-12);
    NEAR(b.dram_wr, 4 * 2352.0, 1e-12);
    NEAR(b.dram_ref, 665280.0, 1e-12);
    NEAR(b.dram_bg, 1600 * 222.0 + 800 * 5.625, 1e-12);
    NEAR(b.dram, 12600.0 + 27840.0 + 9408.0 + 665280.0 + 355200.0 + 4500.0, 1e-12);
    /* the simple model: pJ/bit only, no breakdown */
    a.dram_model = QS_DRAM_SIMPLE;
    b = qs_energy_of(&t, &a, &ev);
    NEAR(b.dram, 640 * t.dram_pj_per_byte, 1e-12);
    CU_ASSERT(b.dram_act == 0 && b.dram_bg == 0);
}

/* ---- energy of a run ------------------------------------------------------------- */

static void test_energy_of(void)
{
    qs_arch a;
    arch_8x8(&a);
    a.zero_skip = QS_SKIP_BOTH;
    a.skip_impl = QS_SKIPIMPL_ISOLATE;
    qs_tech t = tech_of(&a, 0);
    qs_events ev;
    memset(&ev, 0, sizeof ev);
    ev.cycles = 1000;
    ev.mac_ops = 100;
    ev.mac_gated = 10;
    ev.mac_skipped = 1000000; /* removed cycles cost nothing */
    ev.pe_idle = 20;
    ev.reg_bits = 1000;
    ev.sram_read_bytes[QS_BUF_IFMAP] = 64;
    ev.sram_write_bytes[QS_BUF_ACCUM] = 32;
    ev.dram_read_bytes = 10;
    ev.dram_write_bytes = 6;
    ev.ppu_ops = 5;
    qs_energy_breakdown b = qs_energy_of(&t, &a, &ev);
    NEAR(b.mac, 100 * t.mac_pj + 10 * t.mac_skip_pj + 20 * t.pe_idle_pj, 1e-12);
    NEAR(b.registers, 1000 * 0.009, 1e-12);
    NEAR(b.sram, 64 * t.sram_pj_per_byte[0] + 32 * t.sram_wr_pj_per_byte[2], 1e-12);
    NEAR(b.dram, 16 * 64.0, 1e-12);
    NEAR(b.ppu, 5 * 3.4, 1e-12);
    /* 1000 cycles at 1 GHz = 1 us; 36 mW/mm^2 * area * 1 us */
    NEAR(b.leakage, 36.0 * t.total_mm2 * 1e-6 * 1e12 * 1e-3, 1e-9);
    NEAR(b.total, b.mac + b.registers + b.sram + b.dram + b.ppu + b.leakage, 1e-12);

    qs_events sum;
    memset(&sum, 0, sizeof sum);
    qs_events_add(&sum, &ev);
    qs_events_add(&sum, &ev);
    CU_ASSERT_EQUAL(sum.mac_ops, 200);
    CU_ASSERT_EQUAL(sum.mac_skipped, 2000000);
    CU_ASSERT_EQUAL(sum.sram_write_bytes[QS_BUF_ACCUM], 64);
    CU_ASSERT_EQUAL(sum.dram_write_bytes, 12);
    CU_ASSERT_EQUAL(sum.cycles, 2000);
}

static void test_presets(void)
{
    static const char *const P[] = {"dlac", "tpu_int8", "edge"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        qs_arch a;
        qs_error e;
        snprintf(path, sizeof path, "%s/models/arch/%s.cfg", QSIM_SOURCE_DIR, P[i]);
        CU_ASSERT_EQUAL_FATAL(qs_arch_load(path, NULL, 0, &a, &e), QS_OK);
        qs_tech t;
        CU_ASSERT_EQUAL_FATAL(qs_tech_load(a.tech_table, &a, 0, &t, &e), QS_OK);
        CU_ASSERT(t.mac_pj > 0 && t.pe_um2 > 0 && t.total_mm2 > t.array_mm2);
    }
}

/* ---- arguments and the table's error paths ---------------------------------------- */

static void test_args(void)
{
    qs_arch a;
    qs_tech t;
    qs_error e = {{0}};
    arch_8x8(&a);
    CU_ASSERT_EQUAL(qs_tech_load(TABLE, &a, 9, &t, &e), QS_ERR_ARG);
    CU_ASSERT_EQUAL(qs_tech_load(TABLE, &a, -1, &t, &e), QS_ERR_ARG);
    CU_ASSERT_EQUAL(qs_tech_load("/nonexistent/x.tech", &a, 0, &t, &e), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent/x.tech"));
    a.rows = 0; /* an invalid arch is refused, not modelled */
    CU_ASSERT_EQUAL(qs_tech_load(TABLE, &a, 0, &t, &e), QS_ERR_CONFIG);
}

/* The default table with `ins` inserted after the first line that starts
 * with `after` (NULL: replace that line by `ins`); *line = line number of
 * the inserted text. Caller frees. */
static char *edited(const char *after, const char *ins, int replace, int *line)
{
    const char *p = strstr(g_table_text, after);
    if (!p) return NULL;
    const char *eol = strchr(p, '\n');
    size_t head = replace ? (size_t)(p - g_table_text) : (size_t)(eol + 1 - g_table_text);
    const char *tail = eol + 1;
    *line = 1;
    for (const char *q = g_table_text; q < g_table_text + head; q++) *line += *q == '\n';
    char *out = qs_malloc(strlen(g_table_text) + strlen(ins) + 2);
    memcpy(out, g_table_text, head);
    strcpy(out + head, ins);
    strcat(out, tail);
    return out;
}

static void test_table_errors(void)
{
    static const struct { const char *after, *ins; int replace; const char *expect; } C[] = {
        {"[mac]\n", "mult_fj_per_bit3 = 3.1\n", 0, "[mac] mult_fj_per_bit3: unknown key"},
        {"[mac]\n", "[macs]\n", 0, "[macs]: unknown section"},
        {"acc_um2_per_bit =", "acc_fj_per_bit = 3.1\n", 0, "[mac] acc_fj_per_bit: duplicate key (first at line"},
        {"mult_fj_per_bit2 =", "mult_fj_per_bit2 = 3.1x\n", 1, "[mac] mult_fj_per_bit2: '3.1x' is not a number"},
        {"mult_fj_per_bit2 =", "mult_fj_per_bit2 = 31000\n", 1, "[mac] mult_fj_per_bit2: 31000 is out of range"},
        {"hold =", "hold = 1.5\n", 1, "[skip] hold: 1.5 is out of range"},
        {"read_point2 =", "read_point2 = 1024 32\n", 1, "[sram] read_point2: expected"},
        {"read_point2 =", "read_point2 = 128 32 1.0\n", 1, "[sram] read_point2: a point at 128 is already given"},
        {"n28 =", "x28 = 0.38 0.51\n", 1, "[node] x28: unknown key"},
        {"n28 =", "n28 = 0.38\n", 1, "[node] n28: expected"},
        {"[mac]\n", "  mult = 1\n", 0, "indented line"},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        int line;
        char *text = edited(C[i].after, C[i].ins, C[i].replace, &line);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        qs_arch a;
        qs_tech t;
        qs_error e = {{0}};
        arch_8x8(&a);
        qs_status st = qs_tech_parse(text, "t/my.tech", &a, 0, &t, &e);
        char want[256];
        snprintf(want, sizeof want, "my.tech:%d: %s", line, C[i].expect);
        CU_ASSERT_EQUAL(st, QS_ERR_CONFIG);
        if (!strstr(e.msg, want)) fprintf(stderr, "\ncase %zu: got \"%s\", want \"%s\"\n", i, e.msg, want);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, want));
        qs_free(text);
    }
    /* Points each in range whose power-law curve gives an infinite factor at
     * the configuration's node: refused (found by tests/fuzz/fuzz_tech.c, which
     * got inf for every energy from n16 = 0.19 1e308 with node_nm = 16) */
    {
        int ln;
        char *steep = edited("n16 =", "n16 = 0.19 1e308\n", 1, &ln);
        qs_arch a16;
        qs_tech t16;
        qs_error e16 = {{0}};
        arch_8x8(&a16);
        a16.node_nm = 16;
        CU_ASSERT_EQUAL(qs_tech_parse(steep, "t/my.tech", &a16, 0, &t16, &e16), QS_ERR_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(e16.msg, "my.tech: the table gives [node] energy factor = inf"));
        /* the same table at its own node (45 nm) stays usable: only the far point is wrong */
        a16.node_nm = 45;
        CU_ASSERT_EQUAL(qs_tech_parse(steep, "t/my.tech", &a16, 0, &t16, &e16), QS_OK);
        qs_free(steep);
    }
    /* a missing figure is an error, not a silent built-in */
    int line;
    char *text = edited("leakage_exponent =", "", 1, &line);
    qs_arch a;
    qs_tech t;
    qs_error e = {{0}};
    arch_8x8(&a);
    CU_ASSERT_EQUAL(qs_tech_parse(text, "t/my.tech", &a, 0, &t, &e), QS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "my.tech: [voltage] leakage_exponent: missing"));
    qs_free(text);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s1 = CU_add_suite("energy_rules", suite_init, suite_clean);
    CU_add_test(s1, "MAC energy rule", test_mac_rule);
    CU_add_test(s1, "8x8 PE area cross-check", test_pe_area_crosscheck);
    CU_add_test(s1, "skip implementation", test_skip_impl);
    CU_add_test(s1, "lookahead window, index and multiplexer", test_lookahead_cost);
    CU_add_test(s1, "node scaling", test_node_scaling);
    CU_add_test(s1, "voltage scaling", test_voltage_scaling);
    CU_add_test(s1, "SRAM", test_sram);
    CU_add_test(s1, "DRAM", test_dram);
    CU_pSuite s2 = CU_add_suite("energy_run", suite_init, suite_clean);
    CU_add_test(s2, "energy of events", test_energy_of);
    CU_add_test(s2, "presets", test_presets);
    CU_add_test(s2, "DRAM energy by action (bank model)", test_dram_actions);
    CU_pSuite s3 = CU_add_suite("energy_table", suite_init, suite_clean);
    CU_add_test(s3, "arguments", test_args);
    CU_add_test(s3, "table errors", test_table_errors);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
