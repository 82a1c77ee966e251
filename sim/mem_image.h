/* The DRAM contents a program's DMA moves (docs/systemc.md, "Payloads"):
 * the network input, every conv/fc layer's weight image and every layer's
 * output, at the addresses the compiler gave them (docs/compiler.md, "DRAM
 * allocation"), packed as docs/isa.md ("Access patterns") and
 * docs/compiler.md ("weight image") define. Built on demand from the network
 * tensors and the simulator's layer outputs; used where the real bytes are
 * wanted (the SystemC wrapper's TLM payloads), never on the timing path. */
#ifndef QS_MEM_IMAGE_H
#define QS_MEM_IMAGE_H

#include <stdint.h>

#include "qs_net.h"
#include "qs_prog.h"
#include "qs_status.h"

typedef struct qs_mem_image qs_mem_image;

qs_status qs_mem_image_create(const qs_net *net, const qs_prog *prog, qs_mem_image **out, qs_error *err);
void qs_mem_image_destroy(qs_mem_image *m);

/* Bytes [addr, addr + n) given the layer outputs (CHW, per layer, as the
 * simulator holds them); bytes outside every tensor read as 0. Fails only
 * when out of memory (a weight image is built on first use). */
qs_status qs_mem_image_read(qs_mem_image *m, const int32_t *const *outputs, uint64_t addr, uint8_t *out, uint64_t n,
                            qs_error *err);

/* The weight image of conv/fc layer `layer` (weight_bytes of its map), built
 * on first use and owned by m; NULL for a layer without one. */
const uint8_t *qs_mem_image_weights(qs_mem_image *m, int32_t layer, qs_error *err);

#endif
