/* Driver for tests/test_scalesim_timing.py: compiles and simulates a .qbin on
 * an architecture (with --set overrides) and prints, per GEMM layer, the
 * SCALE-Sim figures the simulator counted (sim.h qs_scalesim_stats):
 *   scalesim_timing_tool ARCH.cfg NET.qbin fast|detailed [S.K=V ...]
 * one line per layer:
 *   layer cycles folds total stall mapping_eff_sum compute_util_sum
 *   ifmap_sram filter_sram ofmap_sram ofmap_dram dram_first dram_last
 *   ifmap_first ifmap_last filter_first filter_last ofmap_first ofmap_last
 * Exit codes: 0 ok, 1 the library refused, 2 usage. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "compiler.h"
#include "qs_arch.h"
#include "qs_net.h"
#include "sim.h"

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "fast") && strcmp(argv[3], "detailed"))) {
        fprintf(stderr, "usage: %s ARCH.cfg NET.qbin fast|detailed [S.K=V ...]\n", argv[0]);
        return 2;
    }
    qs_error err;
    qs_arch arch;
    qs_net *net = NULL;
    qs_prog *prog = NULL;
    qs_sim *sim = NULL;
    int rc = 1;
    if (qs_arch_load(argv[1], (const char *const *)argv + 4, argc - 4, &arch, &err) ||
        qs_net_load(argv[2], &net, &err) || qs_compile(net, &arch, &prog, &err) ||
        qs_sim_create(net, prog, strcmp(argv[3], "fast") ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &sim, &err) ||
        qs_sim_run(sim, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    for (int32_t li = 1; li < net->n_layers; li++) {
        const qs_layer_stats *ls = qs_sim_layer_stats(sim, li);
        const qs_scalesim_stats *s = &ls->ss;
        if (!s->folds) continue;
        printf("%d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %.12g %.12g %" PRIu64 " %" PRIu64 " %" PRIu64
               " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
               " %" PRIu64 "\n",
               (int)li, ls->cycles, s->folds, s->total_cycles, s->stall_cycles, s->mapping_eff_sum,
               s->compute_util_sum, s->ifmap_sram_reads, s->filter_sram_reads, s->ofmap_sram_writes,
               s->ofmap_dram_writes, s->ofmap_dram_first, s->ofmap_dram_last, s->ifmap_sram_first,
               s->ifmap_sram_last, s->filter_sram_first, s->filter_sram_last, s->ofmap_sram_first, s->ofmap_sram_last);
    }
    rc = 0;
out:
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return rc;
}
