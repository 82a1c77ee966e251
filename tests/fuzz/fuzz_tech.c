/* libFuzzer harness of the technology table (models/energy.c,
 * docs/config.md "Energy and area model").
 *
 * Input: bytes 0..3 vary the configuration the table is derived for (array
 * shape, weight path, accumulator, zero skipping, node, voltage, activation
 * width); the rest is the table text.
 *
 * Properties of an accepted table: every derived energy and area is finite
 * and not negative, the total area is the sum of its parts' order of
 * magnitude (positive), and the energy of a run with any counts up to 2^40
 * is finite, not negative, and the sum of its parts. */
#include <math.h>

#include "qs_alloc.h"
#include "fuzz_util.h"
#include "qs_energy.h"

static int finite_nonneg(double x) { return isfinite(x) && x >= 0.0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_bytes b = {data, size < 4 ? size : 4};
    qs_arch a;
    qs_arch_defaults(&a);
    static const int WPB[4] = {1, 2, 4, 8};
    uint32_t v = fz_u32(&b);
    a.rows = 1 + (int32_t)(v & 63);
    a.cols = 1 + (int32_t)((v >> 6) & 63);
    a.weight_path_bits = WPB[(v >> 12) & 3];
    a.acc_bits = 8 + (int32_t)((v >> 14) % 25);
    a.zero_skip = (qs_zero_skip)((v >> 19) % 5);
    a.skip_impl = (qs_skip_impl)((v >> 22) % 3);
    static const int NODE[8] = {5, 7, 16, 22, 28, 45, 90, 180};
    a.node_nm = NODE[(v >> 24) & 7];
    a.voltage = 0.3 + 0.1 * ((v >> 27) & 15);
    int act_bits = (int)(v >> 31) ? 4 : 0; /* 0: the arch's widest */

    size_t skip = size < 4 ? size : 4;
    char *text = qs_malloc(size - skip + 1);
    if (!text) abort();
    memcpy(text, data + skip, size - skip);
    text[size - skip] = '\0';
    qs_tech t;
    qs_error e;
    qs_status st = qs_tech_parse(text, "fuzz/table.tech", &a, act_bits, &t, &e);
    qs_free(text);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        return 0;
    }
    const double fields[] = {t.mac_pj, t.mac_skip_pj, t.reg_pj_per_bit, t.sram_pj_per_byte[0], t.sram_pj_per_byte[1],
                             t.sram_pj_per_byte[2], t.sram_wr_pj_per_byte[0], t.sram_wr_pj_per_byte[1],
                             t.sram_wr_pj_per_byte[2], t.dram_pj_per_byte, t.ppu_pj_per_op, t.leak_mw_per_mm2,
                             t.pe_um2, t.array_mm2, t.sram_mm2[0], t.sram_mm2[1], t.sram_mm2[2], t.dma_mm2, t.ppu_mm2,
                             t.control_mm2, t.total_mm2, t.pe_idle_pj, t.pe_skip_um2, t.node_area_factor,
                             t.node_energy_factor, t.voltage_energy_factor};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        FZ_CHECK(finite_nonneg(fields[i]), "derived figure %zu is %g", i, fields[i]);
    FZ_CHECK(t.total_mm2 > 0.0, "total area %g", t.total_mm2);
    qs_events ev;
    memset(&ev, 0, sizeof ev);
    fz_bytes c = {data + skip, size - skip};
    uint64_t *cnt = (uint64_t *)&ev;
    for (size_t i = 0; i < sizeof ev / sizeof(uint64_t); i++) cnt[i] = fz_u64(&c) >> 24;
    qs_energy_breakdown en = qs_energy_of(&t, &a, &ev);
    const double parts[] = {en.mac, en.registers, en.sram, en.dram, en.ppu, en.leakage, en.total};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        FZ_CHECK(finite_nonneg(parts[i]), "energy part %zu is %g", i, parts[i]);
    double sum = en.mac + en.registers + en.sram + en.dram + en.ppu + en.leakage;
    FZ_CHECK(fabs(sum - en.total) <= 1e-9 * en.total, "total %g, parts sum to %g", en.total, sum);
    return 0;
}
