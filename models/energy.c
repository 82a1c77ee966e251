/* Energy and area: a technology table (models/tech/NAME.tech) + an arch ->
 * per-action energies and per-component areas (qs_tech); event counts ->
 * picojoules (qs_energy_of).
 *
 * The table holds only sourced primitive figures (per-bit MAC rules, flop,
 * SRAM points, DRAM pJ/bit, Horowitz's 32-bit operators, node factors);
 * everything arch-specific is derived here, so one table serves every
 * configuration and every derivation step is visible in one place.
 * docs/config.md ("Energy and area model") states the same rules. */
#include "qs_energy.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the parsed table ----------------------------------------------------- */

enum { MAX_POINTS = 16 };

typedef struct {
    int n;
    double x[MAX_POINTS];   /* capacity bytes or node nm, strictly ordered */
    double y[MAX_POINTS];   /* value at x */
    double y2[MAX_POINTS];  /* second value (node energy factor) */
    int line[MAX_POINTS];   /* where each point was given (0 = not given) */
} curve;

typedef struct {
    double node_nm, voltage;
    double mult_fj, acc_fj, mult_um2, acc_um2;
    double f_hold, f_isolate, f_clockgate, f_idle;
    double zd_um2, mux_um2, and_um2, icg_um2;
    double reg_pj, reg_um2;
    double write_ratio, extrap_exp, dual_port;
    double dram[4];         /* lpddr4 ddr4 gddr5 hbm2, pJ/bit */
    double add32_pj, add32_um2, mult32_pj, mult32_um2;
    double ppu_adds, ppu_flops;
    double dma_channels, dma_adders, dma_flops, dma_fifo_bursts;
    double control_um2;
    double leak;
    double v_exp, v_leak_exp;
    curve sram_read;        /* capacity -> read pJ per byte */
    curve sram_area;        /* capacity -> um^2 per byte */
    curve node;             /* nm -> area factor (y), energy factor (y2) */
} table;

/* Scalar keys: where they go and what range a physical figure may take
 * (a typo such as 31 for 3.1 fJ is then caught at its line). */
typedef struct {
    const char *section, *key;
    size_t off;
    double lo, hi;
} tkey;

#define T(s, k, f, lo, hi) {s, k, offsetof(table, f), lo, hi}
static const tkey TKEYS[] = {
    T("table", "node_nm", node_nm, 5, 180),
    T("table", "voltage", voltage, 0.3, 2.0),
    T("mac", "mult_fj_per_bit2", mult_fj, 1e-3, 1e3),
    T("mac", "acc_fj_per_bit", acc_fj, 1e-3, 1e3),
    T("mac", "mult_um2_per_bit2", mult_um2, 1e-3, 1e4),
    T("mac", "acc_um2_per_bit", acc_um2, 1e-3, 1e4),
    T("skip", "hold", f_hold, 0, 1),
    T("skip", "isolate", f_isolate, 0, 1),
    T("skip", "clockgate", f_clockgate, 0, 1),
    T("skip", "idle", f_idle, 0, 1),
    T("skip", "zero_detect_um2_per_bit", zd_um2, 0, 1e3),
    T("skip", "mux_um2_per_bit", mux_um2, 0, 1e3),
    T("skip", "and_um2_per_bit", and_um2, 0, 1e3),
    T("skip", "icg_um2", icg_um2, 0, 1e4),
    T("reg", "pj_per_bit", reg_pj, 1e-6, 10),
    T("reg", "um2_per_bit", reg_um2, 1e-3, 1e3),
    T("sram", "write_read_ratio", write_ratio, 0.01, 10),
    T("sram", "extrap_exponent", extrap_exp, 0, 2),
    T("sram", "dual_port_area", dual_port, 1, 4),
    T("dram", "lpddr4", dram[0], 0.01, 1000),
    T("dram", "ddr4", dram[1], 0.01, 1000),
    T("dram", "gddr5", dram[2], 0.01, 1000),
    T("dram", "hbm2", dram[3], 0.01, 1000),
    T("logic", "add32_pj", add32_pj, 1e-4, 1e3),
    T("logic", "add32_um2", add32_um2, 1e-2, 1e6),
    T("logic", "mult32_pj", mult32_pj, 1e-4, 1e3),
    T("logic", "mult32_um2", mult32_um2, 1e-2, 1e6),
    T("ppu", "adds_per_op", ppu_adds, 0, 64),
    T("ppu", "flop_bits_per_lane", ppu_flops, 0, 4096),
    T("dma", "channels", dma_channels, 0, 64),
    T("dma", "addr_adders", dma_adders, 0, 64),
    T("dma", "addr_flop_bits", dma_flops, 0, 65536),
    T("dma", "fifo_bursts", dma_fifo_bursts, 0, 1024),
    T("control", "um2", control_um2, 0, 1e9),
    T("leakage", "mw_per_mm2", leak, 0, 1e5),
    T("voltage", "energy_exponent", v_exp, 0, 4),
    T("voltage", "leakage_exponent", v_leak_exp, 0, 4),
};
enum { NTKEYS = sizeof TKEYS / sizeof TKEYS[0] };

static const char *const TSECTIONS[] = {"table", "mac", "skip", "reg", "sram", "dram", "logic",
                                        "ppu", "dma", "control", "leakage", "node", "voltage", NULL};
static const char *const DRAM_NAMES[] = {"lpddr4", "ddr4", "gddr5", "hbm2"};

typedef struct {
    table t;
    const char *where;
    int seen[NTKEYS];                 /* line of each scalar key, 0 = missing */
    int section_line[sizeof TSECTIONS / sizeof TSECTIONS[0]];
} tctx;

/* "1.5 2 3" -> up to max finite numbers; returns the count, -1 if malformed. */
static int parse_numbers(const char *s, double *out, int max)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return n;
        if (n == max) return -1;
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || (*end != '\0' && *end != ' ' && *end != '\t')) return -1;
        out[n++] = v;
        p = end;
    }
}

/* Add a point to a curve; key suffix (e.g. "3" of read_point3, "28" of n28)
 * is parsed by the caller. Points must come in strictly increasing x (by
 * key order) so a misplaced point is an error at its line, not a silent kink. */
static qs_status add_point(tctx *c, curve *cv, const char *section, const char *key, int line, double x, double y,
                           double y2, qs_error *err)
{
    if (cv->n == MAX_POINTS)
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: more than %d points", c->where, line, section, key,
                       MAX_POINTS);
    for (int i = 0; i < cv->n; i++)
        if (cv->x[i] == x)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: a point at %g is already given at line %d",
                           c->where, line, section, key, x, cv->line[i]);
    /* keep the curve sorted by x whatever the key order */
    int i = cv->n;
    while (i > 0 && cv->x[i - 1] > x) {
        cv->x[i] = cv->x[i - 1];
        cv->y[i] = cv->y[i - 1];
        cv->y2[i] = cv->y2[i - 1];
        cv->line[i] = cv->line[i - 1];
        i--;
    }
    cv->x[i] = x;
    cv->y[i] = y;
    cv->y2[i] = y2;
    cv->line[i] = line;
    cv->n++;
    return QS_OK;
}

/* "read_point12" -> 12; "n28" -> 28; -1 if the key is not prefix+digits. */
static long numbered(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || key[n] == '\0') return -1;
    char *end;
    long v = strtol(key + n, &end, 10);
    if (*end != '\0' || key[n] < '0' || key[n] > '9' || v <= 0 || v > 1000) return -1;
    return v;
}

static qs_status curve_key(tctx *c, const char *section, const char *key, const char *value, int line,
                           qs_error *err, int *handled)
{
    double v[3];
    int n;
    *handled = 1;
    if (strcmp(section, "sram") == 0 && numbered(key, "read_point") > 0) {
        n = parse_numbers(value, v, 3);
        if (n != 3 || v[0] < 1 || v[1] < 1 || v[2] <= 0)
            return qs_fail(err, QS_ERR_CONFIG,
                           "%s:%d: [sram] %s: expected 'capacity_bytes access_bits read_pJ', all > 0, got '%s'",
                           c->where, line, key, value);
        /* per byte, so points measured at different widths compare */
        return add_point(c, &c->t.sram_read, section, key, line, v[0], v[2] / (v[1] / 8.0), 0, err);
    }
    if (strcmp(section, "sram") == 0 && numbered(key, "area_point") > 0) {
        n = parse_numbers(value, v, 2);
        if (n != 2 || v[0] < 1 || v[1] <= 0)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [sram] %s: expected 'capacity_bytes um2', both > 0, got '%s'",
                           c->where, line, key, value);
        return add_point(c, &c->t.sram_area, section, key, line, v[0], v[1] / v[0], 0, err);
    }
    if (strcmp(section, "node") == 0) {
        long nm = numbered(key, "n");
        if (nm < 0)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [node] %s: unknown key (node points are nNN, e.g. n28)",
                           c->where, line, key);
        n = parse_numbers(value, v, 2);
        if (n != 2 || v[0] <= 0 || v[1] <= 0)
            return qs_fail(err, QS_ERR_CONFIG,
                           "%s:%d: [node] %s: expected 'area_factor energy_factor', both > 0, got '%s'", c->where,
                           line, key, value);
        return add_point(c, &c->t.node, section, key, line, (double)nm, v[0], v[1], err);
    }
    *handled = 0;
    return QS_OK;
}

static qs_status on_tech(void *user, const char *section, const char *key, const char *value, int line,
                         qs_error *err)
{
    tctx *c = user;
    if (!key) {
        for (int i = 0; TSECTIONS[i]; i++) {
            if (strcmp(TSECTIONS[i], section) == 0) {
                if (c->section_line[i])
                    return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: section repeated (first at line %d)", c->where,
                                   line, section, c->section_line[i]);
                c->section_line[i] = line;
                return QS_OK;
            }
        }
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s]: unknown section", c->where, line, section);
    }
    if (section[0] == '\0')
        return qs_fail(err, QS_ERR_CONFIG, "%s:%d: %s: key before any [section]", c->where, line, key);
    int handled;
    qs_status st = curve_key(c, section, key, value, line, err, &handled);
    if (handled) return st;
    for (int i = 0; i < NTKEYS; i++) {
        if (strcmp(TKEYS[i].section, section) != 0 || strcmp(TKEYS[i].key, key) != 0) continue;
        if (c->seen[i])
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: duplicate key (first at line %d)", c->where, line,
                           section, key, c->seen[i]);
        double v = 0;
        if (parse_numbers(value, &v, 1) != 1)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: '%s' is not a number", c->where, line, section, key,
                           value);
        if (v < TKEYS[i].lo || v > TKEYS[i].hi)
            return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: %g is out of range %g..%g", c->where, line, section,
                           key, v, TKEYS[i].lo, TKEYS[i].hi);
        memcpy((char *)&c->t + TKEYS[i].off, &v, sizeof v);
        c->seen[i] = line;
        return QS_OK;
    }
    return qs_fail(err, QS_ERR_CONFIG, "%s:%d: [%s] %s: unknown key", c->where, line, section, key);
}

/* Every figure must come from the table: a built-in fallback would be an
 * unsourced number. */
static qs_status check_complete(const tctx *c, qs_error *err)
{
    for (int i = 0; i < NTKEYS; i++)
        if (!c->seen[i])
            return qs_fail(err, QS_ERR_CONFIG, "%s: [%s] %s: missing", c->where, TKEYS[i].section, TKEYS[i].key);
    if (c->t.sram_read.n < 1)
        return qs_fail(err, QS_ERR_CONFIG, "%s: [sram] read_point1: missing (at least one read point)", c->where);
    if (c->t.sram_area.n < 1)
        return qs_fail(err, QS_ERR_CONFIG, "%s: [sram] area_point1: missing (at least one area point)", c->where);
    if (c->t.node.n < 2)
        return qs_fail(err, QS_ERR_CONFIG, "%s: [node]: at least two node points needed", c->where);
    return QS_OK;
}

/* ---- curves ---------------------------------------------------------------- */

/* Power-law (log-log) interpolation of y (which = 0) or y2 (which = 1): a
 * straight line between neighbouring points on log axes, the natural shape
 * for quantities that scale as a power of size or feature length. Out of
 * range: flat, or (extend = 1) the end segment's power law continued. */
static double curve_at(const curve *cv, double x, int which, int extend)
{
    const double *y = which ? cv->y2 : cv->y;
    int n = cv->n;
    if (n == 1) return y[0];
    int i;
    if (x <= cv->x[0]) {
        if (!extend) return y[0];
        i = 0;
    } else if (x >= cv->x[n - 1]) {
        if (!extend) return y[n - 1];
        i = n - 2;
    } else {
        for (i = 0; i < n - 2 && x > cv->x[i + 1]; i++) {}
    }
    double k = log(y[i + 1] / y[i]) / log(cv->x[i + 1] / cv->x[i]);
    return y[i] * pow(x / cv->x[i], k);
}

/* SRAM read energy per byte for one bank of `cap` bytes: interpolated between
 * the points, flat below the first (periphery-dominated), and past the last
 * point growing as depth^extrap_exp at fixed width, i.e. capacity^exp. */
static double sram_read_pj_per_byte(const table *t, double cap)
{
    const curve *cv = &t->sram_read;
    if (cap > cv->x[cv->n - 1]) return cv->y[cv->n - 1] * pow(cap / cv->x[cv->n - 1], t->extrap_exp);
    return curve_at(cv, cap, 0, 0);
}

/* um^2 per byte: interpolated, flat outside the points (proportional to capacity). */
static double sram_um2_per_byte(const table *t, double cap) { return curve_at(&t->sram_area, cap, 0, 0); }

/* ---- derivation ---------------------------------------------------------------- */

static int ceil_log2(int v)
{
    int b = 0;
    while ((1 << b) < v) b++;
    return b;
}

static int dram_index(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, DRAM_NAMES[i]) == 0) return i;
    return -1;
}

/* Operand-checking flags: which operands carry a zero flag for the mode. */
static void checked_operands(qs_zero_skip z, int *acts, int *weights)
{
    *acts = z == QS_SKIP_GATE || z == QS_SKIP_ACTIVATIONS || z == QS_SKIP_BOTH;
    *weights = z == QS_SKIP_GATE || z == QS_SKIP_WEIGHTS || z == QS_SKIP_BOTH;
}

static double buffer_um2(const table *t, const qs_buffer_cfg *b)
{
    /* each bank is its own array with its own periphery */
    double cap = (double)b->size_kib * 1024.0, bank = cap / b->banks;
    return cap * sram_um2_per_byte(t, bank) * (b->ports > 1 ? t->dual_port : 1.0);
}

static qs_status derive(const table *t, const qs_arch *a, int act_bits, const char *where, qs_tech *o,
                        qs_error *err)
{
    memset(o, 0, sizeof *o);
    const double Wa_e = act_bits, Wa = a->max_act_bits, Wb = a->weight_path_bits, Wacc = a->acc_bits;

    /* node and voltage */
    const double fa = curve_at(&t->node, a->node_nm, 0, 1) / curve_at(&t->node, t->node_nm, 0, 1);
    const double fe = curve_at(&t->node, a->node_nm, 1, 1) / curve_at(&t->node, t->node_nm, 1, 1);
    const double fv = pow(a->voltage / t->voltage, t->v_exp);
    const double es = fe * fv; /* on-chip energy scale */
    o->node_area_factor = fa;
    o->node_energy_factor = fe;
    o->voltage_energy_factor = fv;

    /* MAC slice op: the fitted rule at the layer's activation width (the
     * multiplier toggles only the bits in use) on the weight path */
    o->mac_pj = (t->mult_fj * Wa_e * Wb + t->acc_fj * Wacc) * 1e-3 * es;
    /* lookahead: each operation also passes its activation through the
     * (H+1):1 multiplexer, H rows of 2:1 muxes over the activation's bits.
     * No public per-mux energy: a mux bit is taken to switch the capacitance
     * of its area's share of a flop bit (mux_um2 / reg_um2 of a flop's write
     * energy), the same area-for-capacitance rule the SRAM points follow. */
    if (a->lookahead > 0) {
        o->lookahead_mux_pj = a->lookahead * Wa_e * t->reg_pj * (t->mux_um2 / t->reg_um2) * es;
        o->mac_pj += o->lookahead_mux_pj;
    }

    /* A gated op costs a fraction set by how the skip is built (the
     * reference's "Zero skipping and energy"). Without skip hardware a
     * zero-operand op is an ordinary MAC. Skipped ops (mac_skipped) cost
     * nothing here: their cycle is removed, so nothing toggles. */
    double frac = 1.0;
    if (a->zero_skip != QS_SKIP_NONE) {
        switch (a->skip_impl) {
        case QS_SKIPIMPL_HOLD: frac = t->f_hold; break;
        case QS_SKIPIMPL_ISOLATE: frac = t->f_isolate; break;
        case QS_SKIPIMPL_CLOCKGATE: frac = t->f_clockgate; break;
        }
    }
    o->mac_skip_pj = o->mac_pj * frac;
    /* an idle PE holds bubbles like an isolated op; a clock gate built for
     * zero skipping stops it as well */
    double idle = t->f_idle;
    if (a->zero_skip != QS_SKIP_NONE && a->skip_impl == QS_SKIPIMPL_CLOCKGATE && t->f_clockgate < idle)
        idle = t->f_clockgate;
    o->pe_idle_pj = o->mac_pj * idle;

    o->reg_pj_per_bit = t->reg_pj * es;

    /* SRAM: per bank capacity, since an access touches one bank */
    const qs_buffer_cfg *bufs[3] = {&a->ifmap, &a->weight, &a->accum};
    for (int i = 0; i < 3; i++) {
        double bank = (double)bufs[i]->size_kib * 1024.0 / bufs[i]->banks;
        o->sram_pj_per_byte[i] = sram_read_pj_per_byte(t, bank) * es;
        o->sram_wr_pj_per_byte[i] = o->sram_pj_per_byte[i] * t->write_ratio;
    }

    /* DRAM: another chip, so no node/voltage scaling */
    double pjb = a->dram_pj_per_bit;
    if (pjb <= 0) {
        int d = dram_index(a->dram_tech);
        if (d < 0) return qs_fail(err, QS_ERR_CONFIG, "%s: [dram] technology: '%s' is not in the table", where,
                                  a->dram_tech);
        pjb = t->dram[d];
    }
    o->dram_pj_per_byte = pjb * 8.0;

    /* PPU: requantize = one 32b multiply + adds (rounding, zero point, clamp) */
    o->ppu_pj_per_op = (t->mult32_pj + t->ppu_adds * t->add32_pj) * es;

    /* leakage: per-device leakage taken to follow the node's energy factor,
     * per mm^2 therefore energy/area factor; voltage per its own exponent */
    o->leak_mw_per_mm2 = t->leak * (fe / fa) * pow(a->voltage / t->voltage, t->v_leak_exp);

    /* ---- area at the table's node, scaled at the end ---- */
    /* PE registers besides the accumulator (in the Wacc term): the operand
     * registers, the weight's slice index and the valid bits, as the
     * reference PE model (sim/pe_array.c) holds them: OS forwards both
     * operands with a valid each; WS/IS hold one operand stationary and add
     * a valid for it and for the partial sum. */
    const int slices = qs_arch_max_slices(a);
    const int sbits = ceil_log2(slices);
    const double valid = a->dataflow == QS_DF_OS ? 2 : 3;
    const double flops = Wa + Wb + sbits + valid;
    double pe = t->mult_um2 * Wa * Wb + t->acc_um2 * Wacc + t->reg_um2 * flops;
    /* slice shifter (product << slice*Wb): log2(slices) rows of 2:1 muxes
     * over the widest shifted product */
    if (slices > 1) pe += t->mux_um2 * sbits * (Wa + Wb * slices);
    /* lookahead H (docs/timing.md "Lookahead weight skipping"): H more
     * activation registers with their valid bits moving east, the weight's
     * window index of ceil(log2(H+1)) bits, and the (H+1):1 multiplexer that
     * picks the activation, H rows of 2:1 muxes over Wa bits */
    double la = 0;
    if (a->lookahead > 0) {
        const int H = a->lookahead;
        la = t->reg_um2 * (H * (Wa + 1) + ceil_log2(H + 1)) + t->mux_um2 * H * Wa;
    }
    pe += la;
    o->pe_lookahead_um2 = la * fa;

    double skip = 0, edge = 0;
    if (a->zero_skip != QS_SKIP_NONE) {
        int ca, cw;
        checked_operands(a->zero_skip, &ca, &cw);
        skip += t->reg_um2 * (ca + cw); /* zero flags travelling with the operands */
        switch (a->skip_impl) {
        case QS_SKIPIMPL_HOLD: skip += t->mux_um2 * Wacc; break;       /* accumulator hold muxes */
        case QS_SKIPIMPL_ISOLATE: skip += t->mux_um2 * Wacc + t->and_um2 * (Wa + Wb); break;
        case QS_SKIPIMPL_CLOCKGATE: skip += t->icg_um2 + t->and_um2 * (Wa + Wb); break; /* gate replaces hold */
        }
        /* zero detectors once per row/column at the array edge */
        edge = t->zd_um2 * (ca * a->rows * Wa + cw * a->cols * Wb);
    }
    o->pe_skip_um2 = skip * fa;
    o->pe_um2 = (pe + skip) * fa;
    o->array_mm2 = ((double)a->rows * a->cols * (pe + skip) + edge) * fa * 1e-6;

    for (int i = 0; i < 3; i++) o->sram_mm2[i] = buffer_um2(t, bufs[i]) * fa * 1e-6;

    double lane = t->mult32_um2 + t->ppu_adds * t->add32_um2 + t->ppu_flops * t->reg_um2;
    if (a->ppu_pool) lane += t->add32_um2 + 32 * t->reg_um2; /* compare + running max/sum */
    if (a->ppu_add) lane += t->add32_um2;                    /* element-wise add */
    o->ppu_mm2 = a->ppu_lanes * lane * fa * 1e-6;

    double fifo = t->dma_fifo_bursts * a->dram_burst_bytes;
    double chan = t->dma_adders * t->add32_um2 + t->dma_flops * t->reg_um2 +
                  (fifo > 0 ? fifo * sram_um2_per_byte(t, fifo) : 0);
    o->dma_mm2 = t->dma_channels * chan * fa * 1e-6;
    o->control_mm2 = t->control_um2 * fa * 1e-6;

    o->total_mm2 = o->array_mm2 + o->sram_mm2[0] + o->sram_mm2[1] + o->sram_mm2[2] + o->dma_mm2 + o->ppu_mm2 +
                   o->control_mm2;

    /* Curves interpolate and extrapolate as power laws: points that are each
     * positive and finite can still give an infinite or zero factor (steep
     * neighbours, far extrapolation), and then every energy is infinite or
     * NaN. Such a table is refused for this configuration, not reported. */
    const struct {
        const char *what;
        double v;
        int positive;
    } out[] = {
        {"[node] area factor", fa, 1},
        {"[node] energy factor", fe, 1},
        {"[voltage] energy factor", fv, 1},
        {"MAC energy", o->mac_pj, 0},
        {"register energy", o->reg_pj_per_bit, 0},
        {"[sram] ifmap read energy", o->sram_pj_per_byte[0], 0},
        {"[sram] weight read energy", o->sram_pj_per_byte[1], 0},
        {"[sram] accum read energy", o->sram_pj_per_byte[2], 0},
        {"[sram] ifmap write energy", o->sram_wr_pj_per_byte[0], 0},
        {"[sram] weight write energy", o->sram_wr_pj_per_byte[1], 0},
        {"[sram] accum write energy", o->sram_wr_pj_per_byte[2], 0},
        {"PPU energy", o->ppu_pj_per_op, 0},
        {"leakage density", o->leak_mw_per_mm2, 0},
        {"PE area", o->pe_um2, 0},
        {"total area", o->total_mm2, 1},
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        if (!isfinite(out[i].v) || out[i].v < 0 || (out[i].positive && !(out[i].v > 0)))
            return qs_fail(err, QS_ERR_CONFIG,
                           "%s: the table gives %s = %g for this configuration (node %d nm, %g V): its points are "
                           "not physical",
                           where, out[i].what, out[i].v, (int)a->node_nm, a->voltage);
    return QS_OK;
}

/* ---- public ---------------------------------------------------------------------- */

qs_status qs_tech_parse(const char *text, const char *where, const qs_arch *arch, int act_bits, qs_tech *out,
                        qs_error *err)
{
    if (!where) where = "<tech>";
    if (!arch || !out) return qs_fail(err, QS_ERR_ARG, "%s: no arch or output", where);
    if (act_bits == 0) act_bits = arch->max_act_bits;
    if (act_bits < 1 || act_bits > arch->max_act_bits)
        return qs_fail(err, QS_ERR_ARG, "%s: activation width %d outside 1..max_act_bits = %d", where, act_bits,
                       arch->max_act_bits);
    qs_status st = qs_arch_validate(arch, "arch", err);
    if (st != QS_OK) return st;
    /* on the heap: the table with its curves is a few KiB */
    tctx *c = calloc(1, sizeof *c);
    if (!c) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    c->where = where;
    st = qs_ini_parse(text ? text : "", where, on_tech, c, err);
    if (st == QS_OK) st = check_complete(c, err);
    if (st == QS_OK) st = derive(&c->t, arch, act_bits, where, out, err);
    free(c);
    return st;
}

qs_status qs_tech_load(const char *path, const qs_arch *arch, int act_bits, qs_tech *out, qs_error *err)
{
    char *text;
    if (!path) return qs_fail(err, QS_ERR_ARG, "qs_tech_load: no path");
    qs_status st = qs_read_text_file(path, &text, err);
    if (st != QS_OK) return st;
    st = qs_tech_parse(text, path, arch, act_bits, out, err);
    free(text);
    return st;
}

qs_energy_breakdown qs_energy_of(const qs_tech *t, const qs_arch *arch, const qs_events *ev)
{
    qs_energy_breakdown b;
    memset(&b, 0, sizeof b);
    /* skipped ops (ev->mac_skipped) are absent: no cycle, no toggling */
    b.mac = (double)ev->mac_ops * t->mac_pj + (double)ev->mac_gated * t->mac_skip_pj +
            (double)ev->pe_idle * t->pe_idle_pj;
    b.registers = (double)ev->reg_bits * t->reg_pj_per_bit;
    for (int i = 0; i < 3; i++)
        b.sram += (double)ev->sram_read_bytes[i] * t->sram_pj_per_byte[i] +
                  (double)ev->sram_write_bytes[i] * t->sram_wr_pj_per_byte[i];
    if (!qs_dram_is_bank_model(arch->dram_model)) { /* simple, tlm: pJ/bit */
        b.dram = (double)(ev->dram_read_bytes + ev->dram_write_bytes) * t->dram_pj_per_byte;
    } else {
        qs_dram_energy de = qs_dram_energy_of(&arch->dram);
        double dram_cycles = (double)ev->cycles * (1e6 / arch->freq_mhz) / arch->dram.tck_ps;
        b.dram_act = (double)ev->dram_acts * de.act;
        b.dram_rd = (double)ev->dram_rd_bursts * de.rd;
        b.dram_wr = (double)ev->dram_wr_bursts * de.wr;
        b.dram_ref = (double)ev->dram_refreshes * de.ref;
        b.dram_bg = dram_cycles * de.bg_idle_pj_per_cycle + (double)ev->dram_bank_active * de.bg_active_pj_per_bank_cycle;
        b.dram = b.dram_act + b.dram_rd + b.dram_wr + b.dram_ref + b.dram_bg;
    }
    b.ppu = (double)ev->ppu_ops * t->ppu_pj_per_op;
    /* mW/mm^2 * mm^2 = mW; times cycles / (freq_mhz * 1e6) seconds; 1 mW for
     * 1 ns is 1 pJ, hence * 1e3 / freq_mhz */
    if (arch->freq_mhz > 0)
        b.leakage = t->leak_mw_per_mm2 * t->total_mm2 * (double)ev->cycles * 1e3 / arch->freq_mhz;
    b.total = b.mac + b.registers + b.sram + b.dram + b.ppu + b.leakage;
    return b;
}

/* A field added to qs_events must be added here too. */
_Static_assert(sizeof(qs_events) == 23 * sizeof(uint64_t), "qs_events changed: update qs_events_add");

/* DRAMsim3's IDD-based action energies (../shared/reference/dram.md, section 3),
 * per rank of `devices` chips; V x mA x cycles x tCK[ns] = pJ. */
qs_dram_energy qs_dram_energy_of(const qs_dram_cfg *c)
{
    qs_dram_energy e;
    const double k = c->vdd * c->devices * c->tck_ps / 1000.0; /* V x chips x ns */
    const double burst = (double)c->burst_length / c->transfers_per_cycle;
    e.act = k * (c->idd0 * c->tRC - (c->idd3n * c->tRAS + c->idd2n * c->tRP));
    e.rd = k * (c->idd4r - c->idd3n) * burst;
    e.wr = k * (c->idd4w - c->idd3n) * burst;
    e.ref = k * (c->idd5 - c->idd3n) * c->tRFC;
    e.bg_idle_pj_per_cycle = k * c->idd2n * c->channels * c->ranks;
    e.bg_active_pj_per_bank_cycle = k * (c->idd3n - c->idd2n) / (c->bankgroups * c->banks_per_group);
    return e;
}

void qs_events_add(qs_events *dst, const qs_events *src)
{
    dst->cycles += src->cycles;
    dst->mac_ops += src->mac_ops;
    dst->mac_skipped += src->mac_skipped;
    dst->mac_gated += src->mac_gated;
    dst->pe_idle += src->pe_idle;
    dst->acc_overflows += src->acc_overflows;
    dst->reg_bits += src->reg_bits;
    for (int i = 0; i < 3; i++) {
        dst->sram_read_bytes[i] += src->sram_read_bytes[i];
        dst->sram_write_bytes[i] += src->sram_write_bytes[i];
    }
    dst->dram_read_bytes += src->dram_read_bytes;
    dst->dram_write_bytes += src->dram_write_bytes;
    dst->ppu_ops += src->ppu_ops;
    dst->macs += src->macs;
    dst->macs_executed += src->macs_executed;
    dst->dram_acts += src->dram_acts;
    dst->dram_rd_bursts += src->dram_rd_bursts;
    dst->dram_wr_bursts += src->dram_wr_bursts;
    dst->dram_refreshes += src->dram_refreshes;
    dst->dram_bank_active += src->dram_bank_active;
}
