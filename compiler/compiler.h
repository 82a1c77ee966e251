/* The compiler: a validated network + an accelerator configuration -> a
 * program (models/qs_prog.h). Mapping rules are in docs/compiler.md. */
#ifndef QS_COMPILER_H
#define QS_COMPILER_H

#include <stdio.h>

#include "qs_arch.h"
#include "qs_net.h"
#include "qs_prog.h"
#include "qs_status.h"

/* Map every layer, allocate DRAM, schedule the three queues. A layer that
 * cannot be mapped fails with QS_ERR_NOFIT / QS_ERR_UNSUPPORTED naming it. */
qs_status qs_compile(const qs_net *net, const qs_arch *arch, qs_prog **out, qs_error *err);

/* Human-readable listing: per layer the mapping summary, then (if
 * with_insns) the disassembled instructions. */
void qs_compile_listing(const qs_prog *p, const qs_net *net, int with_insns, FILE *f);

#endif
