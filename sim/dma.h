/* DMA engines and the simple DRAM channel (docs/timing.md, "DMA engines").
 *
 * An engine has `outstanding` request slots. A LOAD/STORE is cut into
 * requests (each run of its access pattern, docs/isa.md, in pieces of at most
 * `request_bytes`; 0 = the whole transfer is one request); requests issue in
 * order, each when a slot is free (the slot of the request `outstanding`
 * places before it completes), and the memory model tells when each
 * completes. Loads use the read engine; stores the write engine when
 * `separate_write_engine` = 1, else the same one. The memory is either the
 * simple channel (latency + bandwidth, one data bus) or the bank-level model
 * (sim/dram.h). */
#ifndef QS_DMA_H
#define QS_DMA_H

#include <stdint.h>

#include "dram.h"
#include "mem_backend.h"
#include "qs_arch.h"
#include "qs_isa.h"
#include "qs_status.h"

typedef struct qs_dma qs_dma;

/* The time line of one transfer, accelerator cycles. */
typedef struct {
    uint64_t issued;  /* its last request took a slot */
    uint64_t done;    /* its last request completed (in order: never before the previous transfer of its engine) */
} qs_dma_times;

/* dram: the bank-level model or NULL for the simple channel (not owned). */
qs_status qs_dma_create(const qs_arch *arch, qs_dram *dram, uint32_t max_runs, qs_dma **out, qs_error *err);
void qs_dma_destroy(qs_dma *d);
void qs_dma_reset(qs_dma *d);
/* [dram] model = tlm: the backend that serves every request (copied; NULL
 * detaches it). Without one, a request under model = tlm fails the run
 * (qs_dma_backend_missing). */
void qs_dma_set_backend(qs_dma *d, const qs_mem_backend *b);
/* 1 once a request under model = tlm found no backend. */
int qs_dma_backend_missing(const qs_dma *d);

/* Issue a LOAD/STORE at cycle `now`. trace (may be NULL) sees every DRAM
 * request of the bank-level model. */
qs_dma_times qs_dma_transfer(qs_dma *d, uint64_t now, const qs_insn *in, qs_dram_trace_fn trace, void *trace_user);

/* 1 when an instruction holds its queue until its data has moved (one
 * outstanding request: a blocking engine). */
int qs_dma_blocking(const qs_dma *d);

/* Cycles of a transfer of n bytes on the simple channel, latency included
 * (0 under the SCALE-Sim convention, whose memory model is separate). */
uint64_t qs_dma_simple_cycles(const qs_arch *a, uint64_t bytes);

#endif
