/* CUnit tests of the instruction set (models/qs_isa.h, models/isa.c):
 * the documented byte layout, encode/decode round trips of random
 * instructions of every opcode, decode's rejection of malformed words
 * (opcode, dependency bits, memory id, flag bits), and the disassembler's
 * bounds (qs_insn_format never writes past the buffer it is given). */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qs_isa.h"

/* ---- deterministic random numbers (splitmix64) ------------------------- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t rnd32(void) { return (uint32_t)(rnd64() >> 32); }
/* a 32-bit value biased towards the edges (0, 1, max, powers of two) */
static uint32_t rnd_field(void)
{
    switch (rnd64() % 6) {
    case 0: return 0;
    case 1: return 0xFFFFFFFFu;
    case 2: return 1u << (rnd64() % 32);
    case 3: return (uint32_t)(rnd64() % 256);
    default: return rnd32();
    }
}

static const uint8_t OPS[4] = {QS_OP_LOAD, QS_OP_GEMM, QS_OP_PASS, QS_OP_STORE};

/* A random valid instruction of opcode op: the fields the encoding keeps
 * for that opcode are random, the others zero. */
static qs_insn random_insn(uint8_t op)
{
    qs_insn in;
    memset(&in, 0, sizeof in);
    in.op = op;
    in.deps = (uint8_t)(rnd64() & 0x0F);
    in.mem = (uint8_t)(rnd64() % 3);
    in.flags = (uint8_t)(rnd64() & 0x03);
    in.layer = (uint16_t)rnd_field();
    in.group = (uint16_t)rnd_field();
    in.m0 = rnd_field();
    in.m_len = rnd_field();
    in.n0 = rnd_field();
    in.n_len = rnd_field();
    if (op == QS_OP_GEMM) {
        in.k0 = rnd_field();
        in.k_len = rnd_field();
    } else {
        in.addr = rnd_field();
        in.bytes = rnd_field();
    }
    if (op == QS_OP_LOAD || op == QS_OP_STORE) {
        in.rows = rnd_field();
        in.run_bits = rnd_field();
        in.stride_bits = rnd_field();
        in.bit0 = (uint8_t)(rnd64() % 8);
    }
    return in;
}

static int insn_equal(const qs_insn *a, const qs_insn *b)
{
    return a->op == b->op && a->deps == b->deps && a->mem == b->mem && a->flags == b->flags &&
           a->layer == b->layer && a->group == b->group && a->m0 == b->m0 && a->m_len == b->m_len &&
           a->n0 == b->n0 && a->n_len == b->n_len && a->k0 == b->k0 && a->k_len == b->k_len &&
           a->addr == b->addr && a->bytes == b->bytes && a->rows == b->rows && a->run_bits == b->run_bits &&
           a->stride_bits == b->stride_bits && a->bit0 == b->bit0;
}

/* ---- layout ---------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_layout(void)
{
    CU_ASSERT_EQUAL(QS_INSN_BYTES, 48);
    qs_insn g;
    memset(&g, 0, sizeof g);
    g.op = QS_OP_GEMM;
    g.deps = QS_DEP_POP_PREV | QS_DEP_PUSH_NEXT;
    g.mem = QS_MEM_ACCUM;
    g.flags = QS_GEMM_FIRST_K | QS_GEMM_LAST_K;
    g.layer = 0x1234;
    g.group = 0xBEEF;
    g.m0 = 0x01020304;
    g.m_len = 0x05060708;
    g.n0 = 0x090A0B0C;
    g.n_len = 0x0D0E0F10;
    g.k0 = 0x11121314;
    g.k_len = 0x15161718;
    g.addr = 0xDEADBEEF; /* not part of a GEMM's encoding */
    g.bytes = 0xCAFEBABE;
    uint8_t b[QS_INSN_BYTES];
    memset(b, 0xAA, sizeof b);
    qs_insn_encode(&g, b);
    CU_ASSERT_EQUAL(b[0], QS_OP_GEMM);
    CU_ASSERT_EQUAL(b[1], QS_DEP_POP_PREV | QS_DEP_PUSH_NEXT);
    CU_ASSERT_EQUAL(b[2], QS_MEM_ACCUM);
    CU_ASSERT_EQUAL(b[3], 3);
    CU_ASSERT(b[4] == 0x34 && b[5] == 0x12);
    CU_ASSERT(b[6] == 0xEF && b[7] == 0xBE);
    CU_ASSERT_EQUAL(le32(b + 8), 0x01020304u);
    CU_ASSERT_EQUAL(le32(b + 12), 0x05060708u);
    CU_ASSERT_EQUAL(le32(b + 16), 0x090A0B0Cu);
    CU_ASSERT_EQUAL(le32(b + 20), 0x0D0E0F10u);
    CU_ASSERT_EQUAL(le32(b + 24), 0x11121314u);
    CU_ASSERT_EQUAL(le32(b + 28), 0x15161718u);
    for (int i = 32; i < QS_INSN_BYTES; i++) CU_ASSERT_EQUAL(b[i], 0); /* no pattern in a GEMM */

    /* LOAD/STORE put addr/bytes in the words GEMM uses for k0/k_len, and the
     * access pattern at 32..47 */
    qs_insn l = g;
    l.op = QS_OP_LOAD;
    l.rows = 0x21222324;
    l.run_bits = 0x25262728;
    l.stride_bits = 0x292A2B2C;
    l.bit0 = 5;
    qs_insn_encode(&l, b);
    CU_ASSERT_EQUAL(b[0], QS_OP_LOAD);
    CU_ASSERT_EQUAL(le32(b + 24), 0xDEADBEEFu);
    CU_ASSERT_EQUAL(le32(b + 28), 0xCAFEBABEu);
    CU_ASSERT_EQUAL(le32(b + 32), 0x21222324u);
    CU_ASSERT_EQUAL(le32(b + 36), 0x25262728u);
    CU_ASSERT_EQUAL(le32(b + 40), 0x292A2B2Cu);
    CU_ASSERT(b[44] == 5 && b[45] == 0 && b[46] == 0 && b[47] == 0);

    /* encode clears the whole word first: no stale bytes */
    memset(&l, 0, sizeof l);
    l.op = QS_OP_PASS;
    memset(b, 0xFF, sizeof b);
    qs_insn_encode(&l, b);
    CU_ASSERT_EQUAL(b[0], QS_OP_PASS);
    for (int i = 1; i < QS_INSN_BYTES; i++) CU_ASSERT_EQUAL(b[i], 0);
}

/* ---- round trips --------------------------------------------------------------- */

static void test_roundtrip_random(void)
{
    int checked = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t op = OPS[it % 4];
        qs_insn in = random_insn(op), out;
        uint8_t b[QS_INSN_BYTES], b2[QS_INSN_BYTES];
        qs_insn_encode(&in, b);
        qs_error e = {{0}};
        memset(&out, 0x5A, sizeof out);
        qs_status st = qs_insn_decode(b, &out, &e);
        CU_ASSERT_EQUAL(st, QS_OK);
        if (st != QS_OK) {
            fprintf(stderr, "\n  decode failed for op %u: %s\n", op, e.msg);
            continue;
        }
        if (!insn_equal(&in, &out)) {
            CU_FAIL("decode(encode(x)) != x");
            fprintf(stderr, "\n  round trip mismatch, op %u iteration %d\n", op, it);
            continue;
        }
        /* and the bytes are a fixed point */
        qs_insn_encode(&out, b2);
        CU_ASSERT_EQUAL(memcmp(b, b2, sizeof b), 0);
        /* the queue and name of the opcode */
        CU_ASSERT_EQUAL(qs_opcode_queue(op), op == QS_OP_LOAD ? QS_Q_LOAD : op == QS_OP_STORE ? QS_Q_STORE
                                                                                          : QS_Q_COMPUTE);
        checked++;
    }
    CU_ASSERT_EQUAL(checked, 20000);
}

/* Random valid words (not built from a qs_insn) decode, and encode back to
 * the same bytes. */
static void test_roundtrip_bytes(void)
{
    for (int it = 0; it < 20000; it++) {
        uint8_t b[QS_INSN_BYTES], b2[QS_INSN_BYTES];
        for (int i = 0; i < QS_INSN_BYTES; i++) b[i] = (uint8_t)rnd64();
        b[0] = OPS[rnd64() % 4];
        b[1] &= 0x0F;
        b[2] = (uint8_t)(b[2] % 3);
        b[3] &= 0x03;
        if (b[0] == QS_OP_LOAD || b[0] == QS_OP_STORE) { /* pattern: bit0 < 8, reserved zero */
            b[44] &= 7;
            b[45] = b[46] = b[47] = 0;
        } else {
            memset(b + 32, 0, QS_INSN_BYTES - 32);
        }
        qs_insn in;
        qs_error e = {{0}};
        CU_ASSERT_EQUAL_FATAL(qs_insn_decode(b, &in, &e), QS_OK);
        qs_insn_encode(&in, b2);
        CU_ASSERT_EQUAL(memcmp(b, b2, sizeof b), 0);
        if (in.op == QS_OP_GEMM) {
            CU_ASSERT(in.addr == 0 && in.bytes == 0);
        } else {
            CU_ASSERT(in.k0 == 0 && in.k_len == 0);
        }
    }
}

/* ---- rejection ----------------------------------------------------------------- */

static void expect_reject(const uint8_t b[QS_INSN_BYTES], const char *needle, int line)
{
    qs_insn out;
    qs_error e;
    memset(e.msg, 0, sizeof e.msg);
    qs_status st = qs_insn_decode(b, &out, &e);
    if (st != QS_ERR_FORMAT || !strstr(e.msg, needle))
        fprintf(stderr, "\n  line %d: status %d message '%s' (wanted '%s')\n", line, (int)st, e.msg, needle);
    CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, needle));
}

static void valid_word(uint8_t b[QS_INSN_BYTES], uint8_t op)
{
    qs_insn in = random_insn(op);
    qs_insn_encode(&in, b);
}

static void test_reject(void)
{
    uint8_t b[QS_INSN_BYTES];
    int rejected = 0;
    /* every invalid opcode */
    for (int op = 0; op < 256; op++) {
        if (op >= QS_OP_LOAD && op <= QS_OP_STORE) continue;
        valid_word(b, QS_OP_GEMM);
        b[0] = (uint8_t)op;
        expect_reject(b, "opcode", __LINE__);
        rejected++;
    }
    for (int k = 0; k < 4; k++) {
        /* every dependency byte with a bit above the four defined ones */
        for (int d = 0x10; d < 256; d++) {
            valid_word(b, OPS[k]);
            b[1] = (uint8_t)d;
            expect_reject(b, "dependency", __LINE__);
            rejected++;
        }
        /* every memory id past ACCUM */
        for (int m = QS_MEM_ACCUM + 1; m < 256; m++) {
            valid_word(b, OPS[k]);
            b[2] = (uint8_t)m;
            expect_reject(b, "memory", __LINE__);
            rejected++;
        }
        /* every flag byte with an undefined bit */
        for (int f = 4; f < 256; f++) {
            valid_word(b, OPS[k]);
            b[3] = (uint8_t)f;
            expect_reject(b, "flag", __LINE__);
            rejected++;
        }
    }
    CU_ASSERT_EQUAL(rejected, 252 + 4 * (240 + 253 + 252));
    /* a pattern bit offset past 7, reserved pattern bytes, a pattern in a GEMM or PASS */
    for (int k = 0; k < 4; k++) {
        int ldst = OPS[k] == QS_OP_LOAD || OPS[k] == QS_OP_STORE;
        for (int i = 44; i < QS_INSN_BYTES; i++) {
            valid_word(b, OPS[k]);
            b[i] = i == 44 ? 8 : 1;
            expect_reject(b, ldst ? (i == 44 ? "bit offset" : "reserved") : "access-pattern", __LINE__);
        }
        if (!ldst)
            for (int i = 32; i < 44; i++) {
                valid_word(b, OPS[k]);
                b[i] = 0x80;
                expect_reject(b, "access-pattern", __LINE__);
            }
    }
    /* decode(...) names what it read */
    memset(b, 0, sizeof b);
    b[0] = 7;
    qs_insn out;
    qs_error e;
    CU_ASSERT_EQUAL(qs_insn_decode(b, &out, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "7"));
}

/* ---- disassembly ------------------------------------------------------------------ */

static void test_format_bounds(void)
{
    enum { CANARY = 64 };
    char buf[256 + CANARY];
    /* worst cases: every field at its widest, every dependency bit */
    for (int k = 0; k < 5; k++) {
        qs_insn in;
        memset(&in, 0xFF, sizeof in);
        in.op = k < 4 ? OPS[k] : 0x7F; /* 0x7F: unknown opcode */
        in.deps = 0x0F;
        in.mem = (uint8_t)(k % 4); /* includes an out-of-range mem id: the formatter must not crash */
        in.flags = 0x03;
        /* the full line, with a generous buffer */
        memset(buf, 'Z', sizeof buf);
        qs_insn_format(&in, buf, 256);
        size_t full = strlen(buf);
        CU_ASSERT(full < 256);
        CU_ASSERT(full > 0);
        for (int i = 256; i < (int)sizeof buf; i++) CU_ASSERT_EQUAL(buf[i], 'Z');
        if (k < 4) CU_ASSERT_PTR_NOT_NULL(strstr(buf, qs_opcode_name(in.op)));
        if (k == 4) CU_ASSERT_PTR_NOT_NULL(strstr(buf, "???"));
        if (k == 1) { /* GEMM shows its flags and every dependency */
            CU_ASSERT_PTR_NOT_NULL(strstr(buf, "first"));
            CU_ASSERT_PTR_NOT_NULL(strstr(buf, "last"));
            CU_ASSERT_PTR_NOT_NULL(strstr(buf, "<p<n>p>n"));
            CU_ASSERT_PTR_NOT_NULL(strstr(buf, "4294967295"));
        }
        /* every shorter buffer: truncated, terminated, nothing written past len */
        for (size_t len = 1; len <= full + 2; len++) {
            memset(buf, 'Z', sizeof buf);
            qs_insn_format(&in, buf, len);
            CU_ASSERT(memchr(buf, 0, len) != NULL);
            for (size_t i = len; i < sizeof buf; i++)
                if (buf[i] != 'Z') {
                    CU_FAIL("qs_insn_format wrote past the buffer");
                    fprintf(stderr, "\n  op %u len %zu: byte %zu written\n", in.op, len, i);
                    break;
                }
        }
    }
    /* random instructions into a buffer of the size the compiler listing uses */
    for (int it = 0; it < 4000; it++) {
        qs_insn in = random_insn(OPS[it % 4]);
        char b160[160 + CANARY];
        memset(b160, 'Z', sizeof b160);
        qs_insn_format(&in, b160, 160);
        CU_ASSERT(strlen(b160) < 160);
        /* a listing line must not be cut off: the worst case fits in 160 */
        CU_ASSERT(strlen(b160) < 159);
        for (int i = 160; i < (int)sizeof b160; i++) CU_ASSERT_EQUAL(b160[i], 'Z');
    }
}

static void test_names(void)
{
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(QS_OP_LOAD), "LOAD");
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(QS_OP_GEMM), "GEMM");
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(QS_OP_PASS), "PASS");
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(QS_OP_STORE), "STORE");
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(0), "???");
    CU_ASSERT_STRING_EQUAL(qs_opcode_name(200), "???");
    CU_ASSERT_EQUAL(qs_opcode_queue(QS_OP_LOAD), QS_Q_LOAD);
    CU_ASSERT_EQUAL(qs_opcode_queue(QS_OP_GEMM), QS_Q_COMPUTE);
    CU_ASSERT_EQUAL(qs_opcode_queue(QS_OP_PASS), QS_Q_COMPUTE);
    CU_ASSERT_EQUAL(qs_opcode_queue(QS_OP_STORE), QS_Q_STORE);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("isa", NULL, NULL);
    CU_add_test(s, "byte layout", test_layout);
    CU_add_test(s, "round trip of 20000 random instructions", test_roundtrip_random);
    CU_add_test(s, "round trip of 20000 random words", test_roundtrip_bytes);
    CU_add_test(s, "decode rejects bad opcode/deps/mem/flags", test_reject);
    CU_add_test(s, "format stays in bounds", test_format_bounds);
    CU_add_test(s, "names and queues", test_names);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
