/* The instruction set shared by the compiler, the simulator and the RTL
 * harness (docs/isa.md). A program is three in-order queues, LOAD, COMPUTE
 * and STORE, that run concurrently and synchronise only through dependency
 * tokens (the decoupled access/execute scheme of VTA's hw_spec.h):
 *
 *   LOAD  --data ready-->  COMPUTE  --result ready-->  STORE
 *   LOAD  <--slot free---  COMPUTE  <--accum free----  STORE
 *   LOAD  <------------- layer stored ---------------  STORE
 *
 * Every instruction encodes to QS_INSN_BYTES bytes, little-endian. */
#ifndef QS_ISA_H
#define QS_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "qs_status.h"

#define QS_INSN_BYTES 48
#define QS_PROG_MAGIC "QSIMPRG"   /* 8 bytes with the NUL */
#define QS_PROG_VERSION 2

typedef enum { QS_Q_LOAD = 0, QS_Q_COMPUTE = 1, QS_Q_STORE = 2, QS_Q_COUNT = 3 } qs_queue;

typedef enum {
    QS_OP_LOAD = 1,    /* DMA DRAM -> SRAM buffer */
    QS_OP_GEMM = 2,    /* array tile: out[m][n] (+)= sum_k a[m][k] w[k][n] */
    QS_OP_PASS = 3,    /* compute-queue placeholder that only moves tokens (PPU-only layers) */
    QS_OP_STORE = 4,   /* post-processing of a tile, then DMA SRAM -> DRAM */
} qs_opcode;

/* Dependency flags (bit set): pop waits for a token, push sends one.
 * "prev" is the queue before this one in LOAD->COMPUTE->STORE, "next" the one after.
 * LOAD's prev and STORE's next name the store->load "layer stored" channel. */
enum {
    QS_DEP_POP_PREV = 1u << 0,
    QS_DEP_POP_NEXT = 1u << 1,
    QS_DEP_PUSH_PREV = 1u << 2,
    QS_DEP_PUSH_NEXT = 1u << 3,
};

/* Which SRAM a LOAD fills / a STORE drains. */
typedef enum { QS_MEM_IFMAP = 0, QS_MEM_WEIGHT = 1, QS_MEM_ACCUM = 2 } qs_mem;

typedef struct {
    uint8_t op;          /* qs_opcode */
    uint8_t deps;        /* QS_DEP_* */
    uint8_t mem;         /* LOAD: qs_mem */
    uint8_t flags;       /* GEMM: bit0 first k-chunk, bit1 last k-chunk */
    uint16_t layer;      /* layer index in the network */
    uint16_t group;      /* conv group */
    uint32_t m0, m_len;  /* GEMM/STORE: rows of the output (pixels) */
    uint32_t n0, n_len;  /* GEMM/STORE: output channels within the group */
    uint32_t k0, k_len;  /* GEMM: reduction range (in the compressed k list); LOAD: bytes in k_len */
    uint32_t addr;       /* LOAD/STORE: DRAM byte address of the first byte moved */
    uint32_t bytes;      /* LOAD/STORE: bytes moved (qs_dma_pattern_bytes of the pattern) */
    /* LOAD/STORE access pattern (docs/isa.md, "Access patterns"): `rows` runs of
     * `run_bits` bits; run r starts at bit addr*8 + bit0 + r*stride_bits. The
     * DMA moves every byte a run touches. */
    uint32_t rows, run_bits, stride_bits;
    uint8_t bit0;        /* 0..7 */
} qs_insn;

/* Bytes run r of a LOAD/STORE moves: [*first, *first + *count). */
static inline void qs_dma_row(const qs_insn *in, uint32_t r, uint64_t *first, uint64_t *count)
{
    uint64_t b0 = (uint64_t)in->addr * 8 + in->bit0 + (uint64_t)r * in->stride_bits;
    uint64_t b1 = b0 + in->run_bits;
    *first = b0 / 8;
    *count = in->run_bits ? (b1 + 7) / 8 - b0 / 8 : 0;
}

/* Bytes the whole pattern moves (a byte two runs share is moved twice). */
static inline uint64_t qs_dma_pattern_bytes(const qs_insn *in)
{
    uint64_t sum = 0, f, c;
    for (uint32_t r = 0; r < in->rows; r++) {
        qs_dma_row(in, r, &f, &c);
        sum += c;
    }
    return sum;
}

enum { QS_GEMM_FIRST_K = 1u << 0, QS_GEMM_LAST_K = 1u << 1 };

/* Encode one instruction into 32 bytes / decode it back. decode validates
 * the opcode and flag bits. */
void qs_insn_encode(const qs_insn *in, uint8_t out[QS_INSN_BYTES]);
qs_status qs_insn_decode(const uint8_t in[QS_INSN_BYTES], qs_insn *out, qs_error *err);

/* Readable one-line disassembly into buf. */
void qs_insn_format(const qs_insn *in, char *buf, size_t len);

const char *qs_opcode_name(uint8_t op);

/* Queue an opcode runs on. */
qs_queue qs_opcode_queue(uint8_t op);

#endif
