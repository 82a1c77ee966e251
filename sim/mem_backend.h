/* The memory backend of [dram] model = tlm (docs/timing.md, "Memory backend";
 * docs/systemc.md): the program that embeds the simulator (the SystemC
 * wrapper, whose TLM-2.0 socket reaches a virtual platform's memory) decides
 * when each DMA request completes. The C core knows nothing of SystemC: it
 * calls `request` as a request issues and takes the cycle it returns.
 *
 * request(user, issue, is_write, first, count, n_runs): a DMA request issued
 * at accelerator cycle `issue` moving the byte ranges [first[i], first[i] +
 * count[i]) (DRAM addresses, docs/isa.md "Access patterns"; n_runs may be 0
 * for a transfer of no byte). Returns the accelerator cycle at which its last
 * byte has moved; a value below `issue` counts as `issue`. Called in issue
 * order from inside qs_sim_advance / qs_sim_run (write data: see
 * qs_sim_read_dram, which holds the bytes a write carries at that moment).
 * It must not call back into the simulator except qs_sim_read_dram. */
#ifndef QS_MEM_BACKEND_H
#define QS_MEM_BACKEND_H

#include <stdint.h>

typedef uint64_t (*qs_mem_request_fn)(void *user, uint64_t issue, int is_write, const uint64_t *first,
                                      const uint64_t *count, uint32_t n_runs);

typedef struct {
    qs_mem_request_fn request;
    void *user;
} qs_mem_backend;

#endif
