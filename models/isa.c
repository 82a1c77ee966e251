#include "qs_isa.h"

#include <stdio.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Layout (docs/isa.md): 0 op, 1 deps, 2 mem, 3 flags, 4 layer, 6 group,
 * 8 m0, 12 m_len, 16 n0, 20 n_len, 24 k0 | addr, 28 k_len | bytes,
 * 32 rows, 36 run_bits, 40 stride_bits, 44 bit0, 45..47 zero.
 * GEMM uses k0/k_len; LOAD/STORE use addr/bytes in the same words and the
 * access pattern in 32..47, which GEMM and PASS leave zero. */
void qs_insn_encode(const qs_insn *in, uint8_t out[QS_INSN_BYTES])
{
    memset(out, 0, QS_INSN_BYTES);
    out[0] = in->op;
    out[1] = in->deps;
    out[2] = in->mem;
    out[3] = in->flags;
    put16(out + 4, in->layer);
    put16(out + 6, in->group);
    put32(out + 8, in->m0);
    put32(out + 12, in->m_len);
    put32(out + 16, in->n0);
    put32(out + 20, in->n_len);
    if (in->op == QS_OP_GEMM) {
        put32(out + 24, in->k0);
        put32(out + 28, in->k_len);
    } else {
        put32(out + 24, in->addr);
        put32(out + 28, in->bytes);
    }
    if (in->op == QS_OP_LOAD || in->op == QS_OP_STORE) {
        put32(out + 32, in->rows);
        put32(out + 36, in->run_bits);
        put32(out + 40, in->stride_bits);
        out[44] = in->bit0;
    }
}

qs_status qs_insn_decode(const uint8_t in[QS_INSN_BYTES], qs_insn *out, qs_error *err)
{
    memset(out, 0, sizeof *out);
    out->op = in[0];
    if (out->op < QS_OP_LOAD || out->op > QS_OP_STORE)
        return qs_fail(err, QS_ERR_FORMAT, "unknown opcode %u", in[0]);
    out->deps = in[1];
    if (out->deps & ~0x0Fu) return qs_fail(err, QS_ERR_FORMAT, "bad dependency bits 0x%02x", in[1]);
    out->mem = in[2];
    if (out->mem > QS_MEM_ACCUM) return qs_fail(err, QS_ERR_FORMAT, "bad memory id %u", in[2]);
    out->flags = in[3];
    if (out->flags & ~0x03u) return qs_fail(err, QS_ERR_FORMAT, "bad flag bits 0x%02x", in[3]);
    out->layer = get16(in + 4);
    out->group = get16(in + 6);
    out->m0 = get32(in + 8);
    out->m_len = get32(in + 12);
    out->n0 = get32(in + 16);
    out->n_len = get32(in + 20);
    if (out->op == QS_OP_GEMM) {
        out->k0 = get32(in + 24);
        out->k_len = get32(in + 28);
    } else {
        out->addr = get32(in + 24);
        out->bytes = get32(in + 28);
    }
    if (out->op == QS_OP_LOAD || out->op == QS_OP_STORE) {
        out->rows = get32(in + 32);
        out->run_bits = get32(in + 36);
        out->stride_bits = get32(in + 40);
        out->bit0 = in[44];
        if (out->bit0 > 7) return qs_fail(err, QS_ERR_FORMAT, "bad access-pattern bit offset %u", in[44]);
        if (in[45] | in[46] | in[47]) return qs_fail(err, QS_ERR_FORMAT, "nonzero reserved pattern bytes");
    } else {
        for (int i = 32; i < QS_INSN_BYTES; i++)
            if (in[i]) return qs_fail(err, QS_ERR_FORMAT, "nonzero access-pattern byte %d in a %s", i,
                                      qs_opcode_name(out->op));
    }
    return QS_OK;
}

const char *qs_opcode_name(uint8_t op)
{
    switch (op) {
    case QS_OP_LOAD: return "LOAD";
    case QS_OP_GEMM: return "GEMM";
    case QS_OP_PASS: return "PASS";
    case QS_OP_STORE: return "STORE";
    }
    return "???";
}

qs_queue qs_opcode_queue(uint8_t op)
{
    if (op == QS_OP_LOAD) return QS_Q_LOAD;
    if (op == QS_OP_STORE) return QS_Q_STORE;
    return QS_Q_COMPUTE;
}

static const char *mem_name(uint8_t m)
{
    return m == QS_MEM_IFMAP ? "ifmap" : m == QS_MEM_WEIGHT ? "weight" : "accum";
}

void qs_insn_format(const qs_insn *in, char *buf, size_t len)
{
    char deps[16];
    snprintf(deps, sizeof deps, "%s%s%s%s",
             (in->deps & QS_DEP_POP_PREV) ? "<p" : "", (in->deps & QS_DEP_POP_NEXT) ? "<n" : "",
             (in->deps & QS_DEP_PUSH_PREV) ? ">p" : "", (in->deps & QS_DEP_PUSH_NEXT) ? ">n" : "");
    switch (in->op) {
    case QS_OP_LOAD:
        snprintf(buf, len, "LOAD  %-6s L%u g%u dram[0x%08x] %u B %ux%ub@%ub+%u  %s", mem_name(in->mem), in->layer,
                 in->group, in->addr, in->bytes, in->rows, in->run_bits, in->stride_bits, in->bit0, deps);
        break;
    case QS_OP_GEMM:
        snprintf(buf, len, "GEMM  L%u g%u m[%u+%u] n[%u+%u] k[%u+%u]%s%s  %s", in->layer, in->group,
                 in->m0, in->m_len, in->n0, in->n_len, in->k0, in->k_len,
                 (in->flags & QS_GEMM_FIRST_K) ? " first" : "", (in->flags & QS_GEMM_LAST_K) ? " last" : "",
                 deps);
        break;
    case QS_OP_PASS:
        snprintf(buf, len, "PASS  L%u  %s", in->layer, deps);
        break;
    case QS_OP_STORE:
        snprintf(buf, len, "STORE L%u g%u m[%u+%u] n[%u+%u] dram[0x%08x] %u B %ux%ub@%ub+%u  %s", in->layer,
                 in->group, in->m0, in->m_len, in->n0, in->n_len, in->addr, in->bytes, in->rows, in->run_bits,
                 in->stride_bits, in->bit0, deps);
        break;
    default:
        snprintf(buf, len, "???");
    }
}
