/* DMA engines and the simple DRAM channel; rules in docs/timing.md ("DMA and
 * DRAM", "DMA engines"). */
#include "dma.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t *slot_done;  /* completion of the request that holds each slot, a ring */
    int32_t head;         /* the slot the next request takes (the oldest) */
    uint64_t last_issue;  /* requests issue in order */
    uint64_t last_done;   /* transfers complete in order */
} engine;

struct qs_dma {
    const qs_arch *arch;
    qs_dram *dram;
    engine eng[2];        /* read, write (write = read unless separate_write_engine) */
    uint64_t bus_free;    /* simple channel: first cycle its data bus is free */
    uint64_t *run_first, *run_count;
    qs_mem_backend backend;  /* model = tlm */
    int backend_missing;
};

static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

uint64_t qs_dma_simple_cycles(const qs_arch *a, uint64_t bytes)
{
    /* SCALE-Sim's DRAM traffic is modelled by its own memory model
     * (docs/timing.md, "SCALE-Sim convention"): DMA itself takes no time */
    if (bytes == 0 || a->timing == QS_TIMING_SCALESIM) return 0;
    int64_t bursts = ceil_div((int64_t)bytes, a->dram_burst_bytes);
    double moved = (double)(bursts * a->dram_burst_bytes);
    int64_t xfer = (int64_t)(moved / a->dram_bytes_per_cycle);
    if ((double)xfer * a->dram_bytes_per_cycle < moved) xfer++;
    return (uint64_t)a->dram_latency + (uint64_t)xfer;
}

qs_status qs_dma_create(const qs_arch *arch, qs_dram *dram, uint32_t max_runs, qs_dma **out, qs_error *err)
{
    *out = NULL;
    qs_dma *d = calloc(1, sizeof *d);
    if (!d) return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DMA engines");
    d->arch = arch;
    d->dram = dram;
    if (max_runs < 1) max_runs = 1;
    d->run_first = malloc(sizeof(uint64_t) * max_runs);
    d->run_count = malloc(sizeof(uint64_t) * max_runs);
    for (int e = 0; e < 2; e++) d->eng[e].slot_done = calloc((size_t)arch->dma_outstanding, sizeof(uint64_t));
    if (!d->run_first || !d->run_count || !d->eng[0].slot_done || !d->eng[1].slot_done) {
        qs_dma_destroy(d);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DMA engines");
    }
    *out = d;
    return QS_OK;
}

void qs_dma_destroy(qs_dma *d)
{
    if (!d) return;
    free(d->eng[0].slot_done);
    free(d->eng[1].slot_done);
    free(d->run_first);
    free(d->run_count);
    free(d);
}

void qs_dma_reset(qs_dma *d)
{
    for (int e = 0; e < 2; e++) {
        memset(d->eng[e].slot_done, 0, sizeof(uint64_t) * (size_t)d->arch->dma_outstanding);
        d->eng[e].head = 0;
        d->eng[e].last_issue = d->eng[e].last_done = 0;
    }
    d->bus_free = 0;
    d->backend_missing = 0;
}

void qs_dma_set_backend(qs_dma *d, const qs_mem_backend *b)
{
    if (b) d->backend = *b;
    else memset(&d->backend, 0, sizeof d->backend);
}

int qs_dma_backend_missing(const qs_dma *d) { return d->backend_missing; }

int qs_dma_blocking(const qs_dma *d) { return d->arch->dma_outstanding == 1; }

/* One request on the memory: the simple channel's latency overlaps other
 * requests', its data phase takes the one data bus; the bank model serves
 * the bursts of its byte ranges. */
static uint64_t serve(qs_dma *d, uint64_t issue, int is_write, const uint64_t *first, const uint64_t *count,
                      uint32_t n, qs_dram_trace_fn trace, void *trace_user)
{
    const qs_arch *a = d->arch;
    if (a->dram_model == QS_DRAM_TLM) {
        /* the backend decides (docs/timing.md, "Memory backend") */
        if (!d->backend.request) {
            d->backend_missing = 1;
            return issue;
        }
        uint64_t done = d->backend.request(d->backend.user, issue, is_write, first, count, n);
        return done > issue ? done : issue;
    }
    if (d->dram && a->timing != QS_TIMING_SCALESIM)
        return qs_dram_transfer(d->dram, issue, is_write, first, count, n, trace, trace_user);
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) bytes += count[i];
    uint64_t cyc = qs_dma_simple_cycles(a, bytes);
    if (!cyc) return issue;
    uint64_t lat = (uint64_t)a->dram_latency;
    uint64_t data_start = max64(issue + lat, d->bus_free);
    d->bus_free = data_start + (cyc - lat);
    return d->bus_free;
}

/* Issue one request on engine e: it takes the oldest slot when that frees. */
static void issue_request(qs_dma *d, engine *e, uint64_t now, int is_write, const uint64_t *first,
                          const uint64_t *count, uint32_t n, qs_dram_trace_fn trace, void *trace_user,
                          qs_dma_times *t)
{
    uint64_t issue = max64(max64(now, e->last_issue), e->slot_done[e->head]);
    uint64_t done = serve(d, issue, is_write, first, count, n, trace, trace_user);
    e->slot_done[e->head] = done;
    e->head = (e->head + 1) % d->arch->dma_outstanding;
    e->last_issue = issue;
    t->issued = issue;
    t->done = max64(t->done, done);
}

qs_dma_times qs_dma_transfer(qs_dma *d, uint64_t now, const qs_insn *in, qs_dram_trace_fn trace, void *trace_user)
{
    const int is_write = in->op == QS_OP_STORE;
    engine *e = &d->eng[is_write && d->arch->dma_separate_write ? 1 : 0];
    qs_dma_times t = {now, now};
    uint32_t n = 0;
    for (uint32_t r = 0; r < in->rows; r++) {
        qs_dma_row(in, r, &d->run_first[n], &d->run_count[n]);
        if (d->run_count[n]) n++;
    }
    const uint64_t rb = (uint64_t)d->arch->dma_request_bytes;
    if (n == 0 || rb == 0) {
        /* one request for the whole transfer (a transfer of nothing still
         * takes its turn on the engine) */
        issue_request(d, e, now, is_write, d->run_first, d->run_count, n, trace, trace_user, &t);
    } else {
        for (uint32_t r = 0; r < n; r++)
            for (uint64_t off = 0; off < d->run_count[r]; off += rb) {
                uint64_t f = d->run_first[r] + off, c = d->run_count[r] - off < rb ? d->run_count[r] - off : rb;
                issue_request(d, e, now, is_write, &f, &c, 1, trace, trace_user, &t);
            }
    }
    t.done = max64(t.done, e->last_done);
    e->last_done = t.done;
    return t;
}
