/* Replays a DRAM request trace (docs/dram.md, "Request traces": the format
 * qsim run --dram-trace writes and DRAMsim3 reads) through qsim's bank-level
 * model, for comparisons with other DRAM simulators (docs/dram.md,
 * "Validation"). Consecutive lines of one cycle and one direction form one
 * transfer (as the simulator issued them). The accelerator clock is set to
 * the DRAM clock, so every figure is in DRAM cycles.
 *
 * usage: dram_replay_tool ARCH.cfg TRACE [section.key=value ...]
 * prints: requests, reads, writes, last data cycle, bytes per cycle from the
 * first arrival to the last data beat, mean read latency (arrival to last
 * data beat), row hits / misses / conflicts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qs_alloc.h"
#include "dram.h"
#include "qs_arch.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dram_replay_tool ARCH.cfg TRACE [section.key=value ...]\n");
        return 2;
    }
    qs_arch a;
    qs_error e;
    if (qs_arch_load(argv[1], (const char *const *)argv + 3, argc - 3, &a, &e)) {
        fprintf(stderr, "dram_replay_tool: %s\n", e.msg);
        return 1;
    }
    if (a.dram_model == QS_DRAM_SIMPLE) {
        fprintf(stderr, "dram_replay_tool: %s: needs a bank-level [dram] model\n", argv[1]);
        return 1;
    }
    qs_dram *d = NULL;
    if (qs_dram_create(&a.dram, 1e6 / a.dram.tck_ps, &d, &e)) {
        fprintf(stderr, "dram_replay_tool: %s\n", e.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        fprintf(stderr, "dram_replay_tool: %s: cannot open\n", argv[2]);
        return 1;
    }
    const uint64_t burst = qs_dram_burst_bytes(d);
    size_t cap = 1 << 16, n = 0;
    uint64_t *first = qs_malloc(cap * sizeof *first), *count = qs_malloc(cap * sizeof *count);
    uint64_t cur_cycle = 0, first_arrival = UINT64_MAX, end = 0, requests = 0;
    int cur_write = 0, line_no = 0, rc = 0;
    char line[256];
    for (;;) {
        char *got = fgets(line, sizeof line, f);
        uint64_t addr = 0, cycle = 0;
        char op[32];
        int is_write = 0, ok = 0;
        if (got) {
            line_no++;
            ok = sscanf(line, "%" SCNx64 " %31s %" SCNu64, &addr, op, &cycle) == 3;
            if (!ok) {
                fprintf(stderr, "dram_replay_tool: %s:%d: expected '0xADDR READ|WRITE CYCLE'\n", argv[2], line_no);
                rc = 1;
                break;
            }
            is_write = strcmp(op, "WRITE") == 0;
        }
        /* a new cycle or direction ends the transfer being gathered */
        if (n && (!got || cycle != cur_cycle || is_write != cur_write)) {
            uint64_t t = qs_dram_transfer(d, cur_cycle, cur_write, first, count, (uint32_t)n, NULL, NULL);
            if (t > end) end = t;
            n = 0;
        }
        if (!got) break;
        if (n == cap) {
            cap *= 2;
            first = qs_realloc(first, cap * sizeof *first);
            count = qs_realloc(count, cap * sizeof *count);
            if (!first || !count) {
                fprintf(stderr, "dram_replay_tool: out of memory\n");
                return 1;
            }
        }
        first[n] = addr;
        count[n] = burst;
        n++;
        cur_cycle = cycle;
        cur_write = is_write;
        if (cycle < first_arrival) first_arrival = cycle;
        requests++;
    }
    fclose(f);
    /* posted writes still buffered go to the DRAM for the counts; the figures end at the last completion */
    qs_dram_drain(d);
    if (!rc) {
        const qs_dram_stats *s = qs_dram_get_stats(d);
        uint64_t span = end > first_arrival ? end - first_arrival : 1;
        printf("requests %" PRIu64 " reads %" PRIu64 " writes %" PRIu64 " end_cycle %" PRIu64
               " bytes_per_cycle %.4f avg_read_latency_cycles %.2f row_hits %" PRIu64 " row_misses %" PRIu64
               " row_conflicts %" PRIu64 " refreshes %" PRIu64 "\n",
               requests, s->reads, s->writes, end, (double)(requests * burst) / (double)span,
               s->reads ? (double)s->read_latency_sum / (double)s->reads : 0.0, s->row_hits, s->row_misses,
               s->row_conflicts, s->refreshes);
    }
    qs_free(first);
    qs_free(count);
    qs_dram_destroy(d);
    return rc;
}
