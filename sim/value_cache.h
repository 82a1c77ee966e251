/* A loaded network's layer outputs for one input, kept across runs and
 * configurations (docs/api.md, "Re-running a network across
 * configurations"). A CONV/FC layer whose program the compiler proved
 * overflow-free (docs/timing.md, "Accumulator and overflow") computes the
 * exact sum, whatever the array shape, dataflow, zero skipping, tiling,
 * accumulator width or overflow mode; the post-processing layers depend on
 * nothing in the configuration. So when every layer of a program is of those
 * kinds, its outputs are a function of the network and the input alone: a
 * run of such a program on the input the cache holds copies them instead of
 * computing them. Any other program (a layer that may overflow, a MATMUL or
 * a version-2 operator) computes everything and neither reads nor fills it.
 *
 * Beside the outputs it keeps, per CONV/FC layer, which of its GEMM
 * operands are zero (one bit per (group, reduction index, output pixel), and
 * per weight slice one bit per (group, slice, reduction index, output
 * channel)), built by the first run that needs them: the zero statistics of every
 * tiling (schedules, gated products) are counted from those bits.
 *
 * Memory: one copy of every layer output (4 bytes a value) and the input,
 * plus the zero bits, only as far as they fit max_bytes; filled by the first
 * eligible run, replaced by an eligible run on another input once no run
 * uses the kept set. Thread-safe: runs of one network on several threads
 * share it. */
#ifndef QS_VALUE_CACHE_H
#define QS_VALUE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "qs_net.h"
#include "qs_status.h"

typedef struct qs_value_cache qs_value_cache;

typedef struct {
    uint64_t hits;    /* runs that took every layer output from the cache */
    uint64_t stores;  /* eligible runs whose outputs were kept */
    uint64_t misses;  /* eligible runs on another input (or before any store) */
    size_t bytes;     /* held now */
    size_t need;      /* what one set of outputs takes (held or not) */
} qs_value_cache_stats;

/* max_bytes 0: the default, QS_VALUE_CACHE_DEFAULT_BYTES. */
#define QS_VALUE_CACHE_DEFAULT_BYTES ((size_t)256 << 20)
qs_status qs_value_cache_create(const qs_net *net, size_t max_bytes, qs_value_cache **out, qs_error *err);
void qs_value_cache_destroy(qs_value_cache *vc);
/* Forget the outputs (the memory is freed); the next eligible run refills. */
void qs_value_cache_clear(qs_value_cache *vc);
void qs_value_cache_get_stats(qs_value_cache *vc, qs_value_cache_stats *out);

/* For the simulator (sim/sim.c). outputs[i] is layer i's output (CHW);
 * layer 0 is the input. fetch copies the kept outputs of layers 1.. into
 * outputs and returns 1 when the kept input equals outputs[0], else 0; on
 * 1 the run holds the kept set until it calls release (a store does not
 * replace a held set). store keeps them (a failed allocation, a set over
 * max_bytes or a held set keeps nothing: the cache only ever saves work). */
int qs_value_cache_fetch(qs_value_cache *vc, int32_t *const *outputs);
void qs_value_cache_release(qs_value_cache *vc);
void qs_value_cache_store(qs_value_cache *vc, const int32_t *const *outputs);

/* For the array (sim/array.c), while holding the set: layer `layer`'s zero
 * bits, NULL when not built yet. put offers bits built from the held set
 * (`bytes` long, allocated with qs_malloc; the cache takes them) and returns
 * the kept ones: these, another thread's built meanwhile, or NULL when they
 * do not fit max_bytes (then freed). */
const uint64_t *qs_value_cache_zero_bits(qs_value_cache *vc, int32_t layer);
const uint64_t *qs_value_cache_put_zero_bits(qs_value_cache *vc, int32_t layer, uint64_t *bits, size_t bytes);
/* The same for which weight slices are zero (they depend on the weights and
 * on `key`, the slicing: weight path width and slices), kept beside the
 * zero bits and dropped with them. */
const uint64_t *qs_value_cache_weight_bits(qs_value_cache *vc, int32_t layer, int32_t key);
const uint64_t *qs_value_cache_put_weight_bits(qs_value_cache *vc, int32_t layer, int32_t key, uint64_t *bits,
                                               size_t bytes);

#endif
