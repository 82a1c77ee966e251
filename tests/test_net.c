/* CUnit tests of the .qbin container (models/net.c, docs/qbin.md):
 * bit packing, requantization arithmetic, round trips of the shipped nets,
 * semantic validation, and every malformed-input path of the parser
 * (every prefix, every flipped byte, crafted files with valid CRCs).
 *
 * Usage: test_net [suite]   (no argument: all suites) */
#include <CUnit/Basic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "qs_alloc.h"
#include "qs_net.h"
#include "qs_xfmr.h"

#ifndef QSIM_SOURCE_DIR
#define QSIM_SOURCE_DIR "."
#endif

/* ---- fixtures --------------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n;
} blob;

static blob read_blob(const char *rel)
{
    char path[1024];
    blob r = {NULL, 0};
    snprintf(path, sizeof path, "%s/%s", QSIM_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return r;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n > 0) {
        r.b = qs_malloc((size_t)n);
        if (r.b && fread(r.b, 1, (size_t)n, f) == (size_t)n)
            r.n = (size_t)n;
    }
    fclose(f);
    return r;
}

static blob tiny, demo, xfmr, decoder, lm, decoder_kv;

static int init_nets(void)
{
    tiny = read_blob("models/nets/tiny.qbin");
    demo = read_blob("models/nets/demo_w2a4.qbin");
    xfmr = read_blob("models/nets/xfmr_tiny.qbin");
    decoder = read_blob("models/nets/decoder_tiny.qbin");
    lm = read_blob("models/nets/lm_tiny.qbin");
    decoder_kv = read_blob("models/nets/decoder_kv.qbin");
    return tiny.n && demo.n && xfmr.n && decoder.n && lm.n && decoder_kv.n ? 0 : 1;
}

static int free_nets(void)
{
    qs_free(tiny.b);
    qs_free(demo.b);
    qs_free(xfmr.b);
    qs_free(decoder.b);
    qs_free(lm.b);
    qs_free(decoder_kv.b);
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Recompute every section CRC and the header CRC, so that a test can change
 * a field and reach the semantic check behind the CRCs. */
static void fix_crcs(uint8_t *b, size_t n)
{
    uint32_t ns = get32(b + 24);
    for (uint32_t i = 0; i < ns && 32 + 24 * (size_t)(i + 1) <= n; i++) {
        uint8_t *e = b + 32 + 24 * i;
        uint64_t off = get64(e + 8), size = get64(e + 16);
        if (off <= n && size <= n - off)
            put32(e + 4, (uint32_t)crc32(0, b + off, (uInt)size));
    }
    uint64_t table = 24 * (uint64_t)ns; /* the count may be the corrupted field */
    if (table > n - 32)
        table = n - 32;
    uLong c = crc32(0, b, 28);
    put32(b + 28, (uint32_t)crc32(c, b + 32, (uInt)table));
}

static uint8_t *copy_blob(const blob *x)
{
    uint8_t *c = qs_malloc(x->n);
    memcpy(c, x->b, x->n);
    return c;
}

/* offsets of the three sections of a file written by qsim (table order) */
static uint64_t sect_off(const uint8_t *b, int i) { return get64(b + 32 + 24 * i + 8); }
static uint64_t layer_rec(const uint8_t *b, int li) { return sect_off(b, 2) + 192u * (unsigned)li; }
static uint64_t tensor_rec(const uint8_t *b, int ti)
{
    uint64_t cur = sect_off(b, 1);
    for (int t = 0; t < ti; t++)
        cur += 88 + 8u * get32(b + cur + 68) + get64(b + cur + 80);
    return cur;
}

/* Parse buf and expect a format error whose message names the source and
 * contains `needle` (if given). */
static void expect_format(const uint8_t *b, size_t n, const char *needle, int line)
{
    qs_net *net = (qs_net *)0x1;
    qs_error err;
    err.msg[0] = 0;
    qs_status st = qs_net_parse(b, n, "bad.qbin", &net, &err);
    if (st != QS_ERR_FORMAT || net != NULL || !strstr(err.msg, "bad.qbin") ||
        (needle && !strstr(err.msg, needle)))
        fprintf(stderr, "\n  line %d: status %d, message '%s' (wanted '%s')\n", line, (int)st,
                err.msg, needle ? needle : "");
    CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad.qbin"));
    if (needle)
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
    if (st == QS_OK)
        qs_net_destroy(net);
}
#define EXPECT_FORMAT(b, n, needle) expect_format((b), (n), (needle), __LINE__)

/* Mutate the tiny file at byte `at` (a 32-bit little-endian field), fix the
 * CRCs and expect a format error mentioning needle. */
static void mutate32(uint64_t at, uint32_t v, const char *needle, int line)
{
    uint8_t *c = copy_blob(&tiny);
    put32(c + at, v);
    fix_crcs(c, tiny.n);
    expect_format(c, tiny.n, needle, line);
    qs_free(c);
}
#define MUTATE32(at, v, needle) mutate32((at), (uint32_t)(v), (needle), __LINE__)

static qs_net *parse_ok(const blob *x)
{
    qs_net *net = NULL;
    qs_error err;
    qs_status st = qs_net_parse(x->b, x->n, "ok.qbin", &net, &err);
    if (st != QS_OK)
        fprintf(stderr, "\n  unexpected: %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, QS_OK);
    return net;
}

/* ---- suite: dtypes and packing --------------------------------------- */

static void test_dtype_names_ranges(void)
{
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_BIPOLAR), 1);
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_INT2), 2);
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_INT4), 4);
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_INT8), 8);
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_INT16), 16);
    CU_ASSERT_EQUAL(qs_dtype_bits(QS_DT_INT32), 32);
    CU_ASSERT_EQUAL(qs_dtype_bits((qs_dtype)9), 0);
    CU_ASSERT_STRING_EQUAL(qs_dtype_name(QS_DT_INT4, 0), "uint4");
    CU_ASSERT_STRING_EQUAL(qs_dtype_name(QS_DT_INT2, 1), "int2");
    CU_ASSERT_STRING_EQUAL(qs_dtype_name(QS_DT_BIPOLAR, 1), "bipolar");
    CU_ASSERT_STRING_EQUAL(qs_layer_kind_name(QS_L_CONV), "conv");
    CU_ASSERT_STRING_EQUAL(qs_layer_kind_name(QS_L_FLATTEN), "flatten");
    CU_ASSERT_STRING_EQUAL(qs_layer_kind_name(QS_L_KIND_COUNT), "?");
    int32_t lo, hi;
    qs_int_range(2, 1, &lo, &hi);
    CU_ASSERT(lo == -2 && hi == 1);
    qs_int_range(4, 0, &lo, &hi);
    CU_ASSERT(lo == 0 && hi == 15);
    qs_int_range(1, 0, &lo, &hi);
    CU_ASSERT(lo == 0 && hi == 1);
    qs_int_range(16, 1, &lo, &hi);
    CU_ASSERT(lo == -32768 && hi == 32767);
    qs_int_range(32, 1, &lo, &hi);
    CU_ASSERT(lo == INT32_MIN && hi == INT32_MAX);
    qs_int_range(32, 0, &lo, &hi);
    CU_ASSERT(lo == 0 && hi == INT32_MAX);
    qs_int_range(0, 1, &lo, &hi);
    CU_ASSERT(lo == 0 && hi == 0);
}

static void test_pack_known_bytes(void)
{
    qs_error err;
    uint8_t out[8];
    /* int2 [1, -1, 0, -2]: codes 01 11 00 10, LSB first -> 0b10001101 */
    const int32_t v2[] = {1, -1, 0, -2};
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(4, QS_DT_INT2), 4);
    CU_ASSERT_EQUAL(qs_tensor_pack(v2, 4, QS_DT_INT2, 1, out, sizeof out, &err), QS_OK);
    CU_ASSERT_EQUAL(out[0], 0x8D);
    CU_ASSERT(out[1] == 0 && out[2] == 0 && out[3] == 0);
    /* int4 [-8, 7, 3]: 0x78, 0x03 */
    const int32_t v4[] = {-8, 7, 3};
    CU_ASSERT_EQUAL(qs_tensor_pack(v4, 3, QS_DT_INT4, 1, out, sizeof out, &err), QS_OK);
    CU_ASSERT(out[0] == 0x78 && out[1] == 0x03);
    /* bipolar [-1, +1, +1, -1, +1, -1, -1, -1, +1] -> bits 0 1 1 0 1 0 0 0 | 1 */
    const int32_t vb[] = {-1, 1, 1, -1, 1, -1, -1, -1, 1};
    CU_ASSERT_EQUAL(qs_tensor_pack(vb, 9, QS_DT_BIPOLAR, 0, out, sizeof out, &err), QS_OK);
    CU_ASSERT(out[0] == 0x16 && out[1] == 0x01);
    /* int16 little-endian, uint8 plain */
    const int32_t v16[] = {-2, 0x1234};
    CU_ASSERT_EQUAL(qs_tensor_pack(v16, 2, QS_DT_INT16, 1, out, sizeof out, &err), QS_OK);
    CU_ASSERT(out[0] == 0xFE && out[1] == 0xFF && out[2] == 0x34 && out[3] == 0x12);
    const int32_t v32[] = {INT32_MIN};
    CU_ASSERT_EQUAL(qs_tensor_pack(v32, 1, QS_DT_INT32, 1, out, sizeof out, &err), QS_OK);
    CU_ASSERT(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0x80);
    /* sizes are padded to 4 */
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(0, QS_DT_INT8), 0);
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(1, QS_DT_BIPOLAR), 4);
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(33, QS_DT_BIPOLAR), 8);
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(5, QS_DT_INT8), 8);
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(3, QS_DT_INT32), 12);
    CU_ASSERT_EQUAL(qs_tensor_packed_bytes(-1, QS_DT_INT32), -1);
}

static void test_pack_rejects(void)
{
    qs_error err;
    uint8_t out[8];
    const int32_t zero = 0, two = 2, neg = -1, big = 16;
    CU_ASSERT_EQUAL(qs_tensor_pack(&zero, 1, QS_DT_BIPOLAR, 0, out, sizeof out, &err), QS_ERR_ARG);
    CU_ASSERT_EQUAL(qs_tensor_pack(&two, 1, QS_DT_INT2, 1, out, sizeof out, &err), QS_ERR_ARG);
    CU_ASSERT_EQUAL(qs_tensor_pack(&neg, 1, QS_DT_INT4, 0, out, sizeof out, &err), QS_ERR_ARG);
    CU_ASSERT_EQUAL(qs_tensor_pack(&big, 1, QS_DT_INT4, 0, out, sizeof out, &err), QS_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "uint4"));
    CU_ASSERT_EQUAL(qs_tensor_pack(&two, 1, QS_DT_INT8, 1, out, 3, &err), QS_ERR_ARG);
    /* a uint32 code above INT32_MAX cannot be held in int32_t */
    const uint8_t hi[4] = {0, 0, 0, 0x80};
    int32_t v;
    CU_ASSERT_EQUAL(qs_tensor_unpack(hi, 4, 1, QS_DT_INT32, 0, &v, &err), QS_ERR_FORMAT);
    CU_ASSERT_EQUAL(qs_tensor_unpack(hi, 4, 1, QS_DT_INT32, 1, &v, &err), QS_OK);
    CU_ASSERT_EQUAL(v, INT32_MIN);
    CU_ASSERT_EQUAL(qs_tensor_unpack(hi, 3, 1, QS_DT_INT32, 1, &v, &err), QS_ERR_ARG);
}

/* Every dtype and signedness: boundary values and a pseudo-random sweep
 * survive pack -> unpack, and the buffer padding stays zero. */
static void test_pack_roundtrip_all(void)
{
    enum { N = 1001 };
    int32_t *in = qs_malloc(N * sizeof *in), *back = qs_malloc(N * sizeof *back);
    uint8_t *buf = qs_malloc(4 * N + 8);
    qs_error err;
    uint32_t seed = 12345;
    for (int dt = QS_DT_BIPOLAR; dt <= QS_DT_INT32; dt++) {
        for (int sg = 0; sg <= 1; sg++) {
            int32_t lo, hi;
            if (dt == QS_DT_BIPOLAR) {
                lo = -1;
                hi = 1;
            } else {
                qs_int_range(qs_dtype_bits((qs_dtype)dt), sg, &lo, &hi);
            }
            for (int i = 0; i < N; i++) {
                seed = seed * 1664525u + 1013904223u;
                int64_t span = (int64_t)hi - lo + 1;
                int64_t v = lo + (int64_t)(((uint64_t)seed << 16 ^ seed) % (uint64_t)span);
                if (i == 0)
                    v = lo;
                if (i == 1)
                    v = hi;
                if (dt == QS_DT_BIPOLAR)
                    v = (seed >> 7) & 1 ? 1 : -1;
                in[i] = (int32_t)v;
            }
            int64_t nb = qs_tensor_packed_bytes(N, (qs_dtype)dt);
            CU_ASSERT_FATAL(nb > 0 && nb <= 4 * N + 8);
            memset(buf, 0xAB, (size_t)nb);
            CU_ASSERT_EQUAL(qs_tensor_pack(in, N, (qs_dtype)dt, sg, buf, (size_t)nb, &err), QS_OK);
            CU_ASSERT_EQUAL(qs_tensor_unpack(buf, (size_t)nb, N, (qs_dtype)dt, sg, back, &err),
                            QS_OK);
            CU_ASSERT_EQUAL(memcmp(in, back, N * sizeof *in), 0);
            int64_t used = ((int64_t)N * qs_dtype_bits((qs_dtype)dt) + 7) / 8;
            for (int64_t k = used; k < nb; k++)
                CU_ASSERT_EQUAL(buf[k], 0);
        }
    }
    qs_free(in);
    qs_free(back);
    qs_free(buf);
}

/* Big-array allocation: zeroed where asked, writable to the last byte at
 * sizes below and above the huge-page rounding, refused on size overflow. */
static void test_alloc_big(void)
{
    const size_t sizes[] = {0, 1, 4096, ((size_t)1 << 20) - 1, (size_t)1 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *z = qs_calloc_big(sizes[i], 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        int nonzero = 0;
        for (size_t k = 0; k < sizes[i]; k++) nonzero |= z[k];
        CU_ASSERT_EQUAL(nonzero, 0);
        qs_free(z);
        uint8_t *p = qs_alloc_big(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        if (sizes[i]) p[0] = p[sizes[i] - 1] = 0x5A;
        qs_free(p);
    }
    CU_ASSERT_PTR_NULL(qs_calloc_big(SIZE_MAX / 2, 4));
}

/* ---- suite: requantization ------------------------------------------- */

static void test_requant_cases(void)
{
    /* the worked example of docs/qbin.md */
    CU_ASSERT_EQUAL(qs_requant_apply(1023, 1518500250, 3, 0, -1000, 1000), 90);
    CU_ASSERT_EQUAL(qs_requant_apply(1023, 1518500250, 3, 0, 0, 15), 15);
    CU_ASSERT_EQUAL(qs_requant_apply(1023, 1518500250, -2, 0, -5000, 5000), 2893);
    /* M0 = 2^30 is x/2: srdhm rounds halves up, rdivpot away from zero */
    CU_ASSERT_EQUAL(qs_requant_apply(3, 1 << 30, 0, 0, -100, 100), 2);
    CU_ASSERT_EQUAL(qs_requant_apply(-3, 1 << 30, 0, 0, -100, 100), -1);
    CU_ASSERT_EQUAL(qs_requant_apply(-1, 1 << 30, 0, 0, -100, 100), 0);
    CU_ASSERT_EQUAL(qs_requant_apply(1000, 1 << 30, 0, 0, -1000, 1000), 500);
    /* x * 0.5 * 2^-1: 5 -> 2.5 -> srdhm gives 3 (5*2^30/2^31 = 2.5 up), rdivpot(3,1) = 2 */
    CU_ASSERT_EQUAL(qs_requant_apply(5, 1 << 30, 1, 0, -100, 100), 2);
    /* rdivpot ties: x = 5 with M0 ~ 1 (2^31-1), shift 1 -> 5*(1-2^-31) = 4.99.. -> 5, /2 = 2.5 -> 3 */
    CU_ASSERT_EQUAL(qs_requant_apply(5, INT32_MAX, 1, 0, -100, 100), 3);
    CU_ASSERT_EQUAL(qs_requant_apply(-5, INT32_MAX, 1, 0, -100, 100), -3);
    CU_ASSERT_EQUAL(qs_requant_apply(-6, INT32_MAX, 2, 0, -100, 100), -2);
    CU_ASSERT_EQUAL(qs_requant_apply(7, INT32_MAX, 2, 0, -100, 100), 2);
    /* zero point and clamp */
    CU_ASSERT_EQUAL(qs_requant_apply(10, INT32_MAX, 0, 5, 0, 255), 15);
    CU_ASSERT_EQUAL(qs_requant_apply(-100, INT32_MAX, 0, 5, 0, 255), 0);
    CU_ASSERT_EQUAL(qs_requant_apply(1000, INT32_MAX, 0, 5, 0, 255), 255);
    /* int64 accumulator saturates to int32 first */
    CU_ASSERT_EQUAL(qs_requant_apply((int64_t)1 << 40, 1 << 30, 0, 0, INT32_MIN, INT32_MAX),
                    1 << 30);
    CU_ASSERT_EQUAL(qs_requant_apply(-((int64_t)1 << 40), 1 << 30, 0, 0, INT32_MIN, INT32_MAX),
                    -(1 << 30));
    /* negative shift: saturating left shift before the multiply */
    CU_ASSERT_EQUAL(qs_requant_apply((int64_t)1 << 40, 1518500250, -1, 0, INT32_MIN, INT32_MAX),
                    1518500249);
    CU_ASSERT_EQUAL(qs_requant_apply(1 << 30, 1 << 30, -4, 0, INT32_MIN, INT32_MAX), 1 << 30);
    CU_ASSERT_EQUAL(qs_requant_apply(-(1 << 30), 1 << 30, -4, 0, INT32_MIN, INT32_MAX),
                    INT32_MIN / 2);
    CU_ASSERT_EQUAL(qs_requant_apply(3, 1 << 30, -4, 0, INT32_MIN, INT32_MAX), 24);
    /* srdhm's only overflow: INT32_MIN * INT32_MIN (reachable through sat32 of the acc) */
    CU_ASSERT_EQUAL(qs_requant_apply(INT64_MIN, INT32_MIN, 0, 0, INT32_MIN, INT32_MAX),
                    INT32_MAX);
    /* shift 31 with the largest values stays defined */
    CU_ASSERT_EQUAL(qs_requant_apply(INT32_MAX, INT32_MAX, 31, 0, INT32_MIN, INT32_MAX), 1);
    CU_ASSERT_EQUAL(qs_requant_apply(INT32_MIN, INT32_MAX, 31, 0, INT32_MIN, INT32_MAX), -1);
    /* zp + r never overflows */
    CU_ASSERT_EQUAL(qs_requant_apply(INT32_MAX, INT32_MAX, -31, 32767, -32768, 32767), 32767);
    /* M0 = 0 */
    CU_ASSERT_EQUAL(qs_requant_apply(123456, 0, 5, 7, -100, 100), 7);
}

/* The bulk requantization gives qs_requant_apply's value for every
 * accumulator: edges (saturation both ways, the INT32_MIN * INT32_MIN
 * product, shifts beyond +-31, ties) and a pseudo-random sweep. */
static void test_requant_many_matches(void)
{
    enum { N = 64 };
    static const int64_t edge[] = {0, 1, -1, 2, -2, 3, -3, 5, -5, 1023, -1023, INT32_MAX, INT32_MIN,
                                   (int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1, (int64_t)1 << 40,
                                   -((int64_t)1 << 40), INT64_MAX, INT64_MIN, 1 << 30, -(1 << 30)};
    static const int32_t mults[] = {0, 1, -1, 1 << 30, INT32_MAX, INT32_MIN, 1518500250, -1518500250, 123456789};
    static const int32_t clamps[][3] = {{0, INT32_MIN, INT32_MAX}, {5, 0, 255}, {-128, -128, 127}, {32767, -32768, 32767}};
    int64_t acc[N];
    int32_t got[N];
    uint64_t seed = 99;
    int bad = 0;
    for (int shift = -40; shift <= 40; shift++)
        for (size_t mi = 0; mi < sizeof mults / sizeof mults[0]; mi++)
            for (size_t ci = 0; ci < sizeof clamps / sizeof clamps[0]; ci++) {
                const int8_t sh = (int8_t)shift;
                for (int i = 0; i < N; i++) {
                    seed = seed * 6364136223846793005u + 1442695040888963407u;
                    const int64_t r = (int64_t)(seed >> 1) >> (seed % 40); /* magnitudes from 2^23 to 2^62 */
                    acc[i] = i < (int)(sizeof edge / sizeof edge[0]) ? edge[i] : (seed & 1) ? r : -r;
                }
                qs_requant_many(acc, N, mults[mi], sh, clamps[ci][0], clamps[ci][1], clamps[ci][2], got);
                for (int i = 0; i < N; i++) {
                    const int32_t want = qs_requant_apply(acc[i], mults[mi], sh, clamps[ci][0], clamps[ci][1], clamps[ci][2]);
                    if (got[i] != want && bad++ < 5)
                        printf("\n  requant_many(%lld, %d, %d) = %d, qs_requant_apply %d", (long long)acc[i],
                               (int)mults[mi], shift, (int)got[i], (int)want);
                }
            }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_layer_requant(void)
{
    int32_t mult[3] = {1 << 30, 1 << 30, INT32_MAX};
    int8_t shift[3] = {0, 1, 0};
    qs_layer l;
    memset(&l, 0, sizeof l);
    l.out_c = 3;
    l.out_zp = 1;
    l.clamp_lo = -8;
    l.clamp_hi = 7;
    l.rq.n = 0; /* no scaling: zp + sat32(x), clamped */
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 0, 3), 4);
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 0, (int64_t)1 << 40), 7);
    l.rq.mult = mult;
    l.rq.shift = shift;
    l.rq.n = 3; /* per channel */
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 0, 6), 4);
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 1, 6), 3);   /* 6/2 = 3 then /2 = 1.5 -> 2, +1 */
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 2, 6), 7);
    l.rq.n = 1; /* one for all */
    CU_ASSERT_EQUAL(qs_layer_requant(&l, 2, 6), 4);
}

/* ---- suite: round trips ---------------------------------------------- */

static void roundtrip_blob(const blob *x)
{
    qs_net *net = parse_ok(x);
    uint8_t *b = NULL;
    size_t n = 0;
    qs_error err;
    CU_ASSERT_EQUAL_FATAL(qs_net_serialize(net, &b, &n, &err), QS_OK);
    CU_ASSERT_EQUAL(n, x->n);
    CU_ASSERT(n == x->n && memcmp(b, x->b, n) == 0); /* canonical: byte for byte */
    qs_net *again = NULL;
    CU_ASSERT_EQUAL(qs_net_parse(b, n, "again", &again, &err), QS_OK);
    CU_ASSERT_EQUAL(again->n_layers, net->n_layers);
    qs_free(b);
    qs_net_destroy(again);
    qs_net_destroy(net);
}

static void test_roundtrip_tiny(void) { roundtrip_blob(&tiny); }
static void test_roundtrip_demo(void) { roundtrip_blob(&demo); }
static void test_roundtrip_xfmr(void) { roundtrip_blob(&xfmr); }
static void test_roundtrip_decoder(void) { roundtrip_blob(&decoder); }

static void test_shipped_cover_all_kinds(void)
{
    int seen[QS_L_KIND_COUNT] = {0};
    const blob *bs[6] = {&tiny, &demo, &xfmr, &decoder, &lm, &decoder_kv};
    for (int k = 0; k < 6; k++) {
        qs_net *net = parse_ok(bs[k]);
        for (int32_t i = 0; i < net->n_layers; i++)
            seen[net->layers[i].kind] = 1;
        qs_net_destroy(net);
    }
    for (int k = 0; k < QS_L_KIND_COUNT; k++) {
        if (k == 20 || k == 21) continue; /* reserved for EMBED and ARGMAX (another branch) */
        if (!seen[k])
            fprintf(stderr, "\n  kind %s missing from the shipped nets\n",
                    qs_layer_kind_name((qs_layer_kind)k));
        CU_ASSERT(seen[k]);
    }
}

static void test_macs(void)
{
    qs_net *net = parse_ok(&tiny);
    /* conv1: 4 x 8 x 8 outputs, 3 x 3 x 3 taps; conv2: 8 x 4 x 4, 4 x 3 x 3; fc 10 x 8 */
    CU_ASSERT_EQUAL(qs_layer_macs(net, 1), 4 * 64 * 27);
    CU_ASSERT_EQUAL(qs_layer_macs(net, 3), 8 * 16 * 36);
    CU_ASSERT_EQUAL(qs_layer_macs(net, 5), 80);
    CU_ASSERT_EQUAL(qs_layer_macs(net, 2), 0);
    CU_ASSERT_EQUAL(qs_layer_macs(net, 99), 0);
    CU_ASSERT_EQUAL(qs_layer_macs(net, -1), 0);
    qs_net_destroy(net);
    net = parse_ok(&demo);
    CU_ASSERT_EQUAL(qs_layer_macs(net, 4), 8 * 16 * 9); /* depthwise: 1 input channel a group */
    qs_net_destroy(net);
}

/* A network built in memory the way a compiler or importer would, with
 * every dtype and a per-channel quant record, survives serialize/parse. */
static void test_inmemory_build(void)
{
    qs_net *net = qs_calloc(1, sizeof *net);
    strcpy(net->name, "built");
    net->n_tensors = 7;
    net->tensors = qs_calloc(7, sizeof *net->tensors);
    const qs_dtype dts[6] = {QS_DT_BIPOLAR, QS_DT_INT2, QS_DT_INT4, QS_DT_INT8, QS_DT_INT16, QS_DT_INT32};
    for (int t = 0; t < 6; t++) {
        qs_tensor *x = &net->tensors[t];
        snprintf(x->name, sizeof x->name, "t%d", t);
        x->dtype = dts[t];
        x->is_signed = 1;
        x->ndim = 2;
        x->shape[0] = 3;
        x->shape[1] = 5;
        x->count = 15;
        x->data = qs_malloc(15 * sizeof *x->data);
        for (int i = 0; i < 15; i++)
            x->data[i] = dts[t] == QS_DT_BIPOLAR ? (i % 3 ? 1 : -1) : (i % 4) - 2;
    }
    /* the conv's weight, per-channel quantized, and its bias */
    qs_tensor *w = &net->tensors[2];
    w->ndim = 4;
    w->shape[0] = 3;
    w->shape[1] = 5;
    w->shape[2] = 1;
    w->shape[3] = 1;
    w->q_n = 3;
    w->q_axis = 0;
    w->q_scale = qs_malloc(3 * sizeof(float));
    w->q_zp = qs_calloc(3, sizeof(int32_t));
    for (int c = 0; c < 3; c++)
        w->q_scale[c] = 0.25f * (float)(c + 1);
    qs_tensor *b = &net->tensors[6];
    strcpy(b->name, "bias");
    b->dtype = QS_DT_INT32;
    b->is_signed = 1;
    b->ndim = 1;
    b->shape[0] = 3;
    b->count = 3;
    b->data = qs_malloc(3 * sizeof *b->data);
    b->data[0] = INT32_MIN;
    b->data[1] = 0;
    b->data[2] = INT32_MAX;

    net->n_layers = 2;
    net->layers = qs_calloc(2, sizeof *net->layers);
    qs_layer *in = &net->layers[0];
    strcpy(in->name, "in");
    in->kind = QS_L_INPUT;
    in->weight = in->bias = -1;
    in->out_c = 5;
    in->out_h = in->out_w = 4;
    in->out_bits = 8;
    in->out_zp = 128;
    in->clamp_hi = 255;
    in->out_scale = 0.5f;
    qs_layer *cv = &net->layers[1];
    strcpy(cv->name, "conv");
    cv->kind = QS_L_CONV;
    cv->n_inputs = 1;
    cv->inputs[0] = 0;
    cv->kh = cv->kw = cv->stride_h = cv->stride_w = cv->dil_h = cv->dil_w = cv->groups = 1;
    cv->weight = 2;
    cv->bias = 6;
    cv->out_c = 3;
    cv->out_h = cv->out_w = 4;
    cv->out_bits = 4;
    cv->out_signed = 1;
    cv->clamp_lo = -8;
    cv->clamp_hi = 7;
    cv->rq.n = 3;
    cv->rq.mult = qs_malloc(3 * sizeof(int32_t));
    cv->rq.shift = qs_malloc(3);
    for (int c = 0; c < 3; c++) {
        cv->rq.mult[c] = (1 << 30) + c;
        cv->rq.shift[c] = (int8_t)(c - 1);
    }
    net->output = 1;

    qs_error err;
    CU_ASSERT_EQUAL_FATAL(qs_net_validate(net, "mem", &err), QS_OK);
    uint8_t *bytes;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(qs_net_serialize(net, &bytes, &n, &err), QS_OK);
    qs_net *back = NULL;
    CU_ASSERT_EQUAL_FATAL(qs_net_parse(bytes, n, "built", &back, &err), QS_OK);
    CU_ASSERT_EQUAL(back->n_tensors, 7);
    for (int t = 0; t < 7; t++) {
        CU_ASSERT_EQUAL(back->tensors[t].dtype, net->tensors[t].dtype);
        CU_ASSERT_EQUAL(back->tensors[t].count, net->tensors[t].count);
        CU_ASSERT_EQUAL(memcmp(back->tensors[t].data, net->tensors[t].data,
                               (size_t)net->tensors[t].count * sizeof(int32_t)), 0);
        CU_ASSERT_EQUAL(back->tensors[t].shape[3], t == 2 ? 1 : 1); /* unused dims read as 1 */
    }
    CU_ASSERT_EQUAL(back->tensors[2].q_n, 3);
    CU_ASSERT_EQUAL(back->tensors[2].q_axis, 0);
    CU_ASSERT(back->tensors[2].q_scale[2] == 0.75f);
    CU_ASSERT_EQUAL(back->tensors[0].q_n, 0);
    CU_ASSERT_EQUAL(back->layers[1].rq.shift[0], -1);
    CU_ASSERT_EQUAL(back->layers[1].rq.mult[2], (1 << 30) + 2);
    CU_ASSERT_EQUAL(back->layers[0].out_zp, 128);
    CU_ASSERT(back->layers[0].out_scale == 0.5f);
    CU_ASSERT_EQUAL(back->layers[1].inputs[1], -1); /* unused slot canonical */
    /* serialize again: identical bytes */
    uint8_t *bytes2;
    size_t n2;
    CU_ASSERT_EQUAL(qs_net_serialize(back, &bytes2, &n2, &err), QS_OK);
    CU_ASSERT(n2 == n && memcmp(bytes, bytes2, n) == 0);
    qs_free(bytes2);
    /* serialize refuses an invalid net, and says so */
    net->tensors[3].data[0] = 300; /* int8 */
    CU_ASSERT_EQUAL(qs_net_serialize(net, &bytes2, &n2, &err), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "t3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "serialize"));
    qs_free(bytes);
    qs_net_destroy(back);
    qs_net_destroy(net);
}

static void test_load_save(void)
{
    char path[] = "/tmp/qsim_test_net_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    qs_net *net = parse_ok(&demo), *back = NULL;
    qs_error err;
    CU_ASSERT_EQUAL(qs_net_save(net, path, &err), QS_OK);
    CU_ASSERT_EQUAL(qs_net_load(path, &back, &err), QS_OK);
    CU_ASSERT_PTR_NOT_NULL(back);
    if (back)
        CU_ASSERT_STRING_EQUAL(back->name, "demo_w2a4");
    qs_net_destroy(back);
    /* a truncated file names the path */
    FILE *f = fopen(path, "wb");
    fwrite(demo.b, 1, 100, f);
    fclose(f);
    CU_ASSERT_EQUAL(qs_net_load(path, &back, &err), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_PTR_NULL(back);
    remove(path);
    CU_ASSERT_EQUAL(qs_net_load("/nonexistent/x.qbin", &back, &err), QS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/x.qbin"));
    CU_ASSERT_EQUAL(qs_net_save(net, "/nonexistent/dir/x.qbin", &err), QS_ERR_IO);
    qs_net_destroy(net);
}

/* ---- suite: malformed files ------------------------------------------ */

static void test_every_prefix(void)
{
    /* every proper prefix, including the empty one, is refused cleanly */
    for (size_t n = 0; n < tiny.n; n++) {
        uint8_t *c = qs_malloc(n ? n : 1); /* exact-size copy: ASan sees any over-read */
        memcpy(c, tiny.b, n);
        qs_net *net = NULL;
        qs_error err;
        err.msg[0] = 0;
        qs_status st = qs_net_parse(c, n, "bad.qbin", &net, &err);
        CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(net);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad.qbin"));
        qs_free(c);
    }
    CU_ASSERT_EQUAL(qs_net_parse(NULL, 0, NULL, &(qs_net *){NULL}, &(qs_error){{0}}), QS_ERR_FORMAT);
}

static void test_every_byte_flip(void)
{
    /* flipping any bit of any byte is detected: every byte is covered by a
     * CRC, a zero-padding rule or a structural check */
    int crc_msgs = 0;
    for (size_t i = 0; i < tiny.n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t *c = copy_blob(&tiny);
            c[i] ^= (uint8_t)(1u << bit);
            qs_net *net = NULL;
            qs_error err;
            qs_status st = qs_net_parse(c, tiny.n, "bad.qbin", &net, &err);
            if (st != QS_ERR_FORMAT)
                fprintf(stderr, "\n  flip of byte %zu bit %d not detected\n", i, bit);
            CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
            CU_ASSERT_PTR_NULL(net);
            if (st == QS_OK)
                qs_net_destroy(net);
            crc_msgs += strstr(err.msg, "CRC") != NULL;
            qs_free(c);
        }
    }
    CU_ASSERT(crc_msgs > (int)tiny.n); /* most flips land in a section: a CRC error */
    /* a flip inside the tensor data is a section CRC error at that section */
    uint8_t *c = copy_blob(&tiny);
    c[tensor_rec(c, 0) + 90] ^= 0x10;
    EXPECT_FORMAT(c, tiny.n, "section CRC mismatch");
    qs_free(c);
}

static void test_header_errors(void)
{
    uint8_t *c = copy_blob(&tiny);
    c[0] = 'X';
    EXPECT_FORMAT(c, tiny.n, "bad magic");
    qs_free(c);
    c = copy_blob(&tiny);
    put32(c + 8, 3);
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, "unsupported version 3");
    qs_free(c);
    c = copy_blob(&tiny); /* version 2 is for nets that need it: one canonical encoding */
    put32(c + 8, 2);
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, "no layer needs it");
    qs_free(c);
    c = copy_blob(&xfmr); /* version-2 kinds in a version-1 file */
    put32(c + 8, 1);
    fix_crcs(c, xfmr.n);
    EXPECT_FORMAT(c, xfmr.n, "needs format version 2");
    qs_free(c);
    MUTATE32(12, 1, "flags");
    MUTATE32(16, 5, "file size");
    MUTATE32(24, 0, "section count 0");
    MUTATE32(24, 17, "section count 17");
    MUTATE32(24, 0xFFFFFFFFu, "section count");
    c = copy_blob(&tiny);
    c[28] ^= 1;
    EXPECT_FORMAT(c, tiny.n, "header CRC");
    qs_free(c);
    /* trailing garbage: the size field no longer matches */
    c = qs_malloc(tiny.n + 8);
    memcpy(c, tiny.b, tiny.n);
    memset(c + tiny.n, 0, 8);
    EXPECT_FORMAT(c, tiny.n + 8, "file size");
    /* zero bytes after the last section, with a size field that admits them: not canonical */
    put64(c + 16, tiny.n + 8);
    fix_crcs(c, tiny.n + 8);
    EXPECT_FORMAT(c, tiny.n + 8, "8 bytes after the last section");
    qs_free(c);
    /* 8 zero bytes of padding before the last section (layers, entry 2): not canonical */
    {
        const uint64_t e2 = 32 + 48, off = get64(tiny.b + e2 + 8);
        c = qs_calloc(tiny.n + 8, 1);
        memcpy(c, tiny.b, off);
        memcpy(c + off + 8, tiny.b + off, tiny.n - off);
        put64(c + e2 + 8, off + 8);
        put64(c + 16, tiny.n + 8);
        fix_crcs(c, tiny.n + 8);
        EXPECT_FORMAT(c, tiny.n + 8, "bytes of padding before the section at byte");
        qs_free(c);
    }
}

/* A stream (here a FIFO) is refused as soon as it runs past the length its
 * header declares, and a stream of zeros as soon as its magic is wrong,
 * instead of being read up to the 4 GiB limit. */
static void test_stream_bounded(void)
{
    qs_net *net = NULL;
    qs_error err;
    CU_ASSERT_EQUAL(qs_net_load("/dev/zero", &net, &err), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad magic"));
    CU_ASSERT_PTR_NULL(net);
    char dir[] = "/tmp/qsim_fifoXXXXXX", path[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/net.qbin", dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) { /* writer: a valid file, then 64 MiB of zeros (or until the reader leaves) */
        signal(SIGPIPE, SIG_DFL);
        FILE *f = fopen(path, "wb");
        if (!f) _exit(1);
        fwrite(tiny.b, 1, tiny.n, f);
        static uint8_t zeros[1 << 16];
        for (int i = 0; i < 1024; i++)
            if (fwrite(zeros, 1, sizeof zeros, f) != sizeof zeros) break;
        fclose(f);
        _exit(0);
    }
    CU_ASSERT_EQUAL(qs_net_load(path, &net, &err), QS_ERR_FORMAT);
    char want[96];
    snprintf(want, sizeof want, "longer than the %zu bytes its header declares", tiny.n);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
    if (!strstr(err.msg, want)) fprintf(stderr, "\n  got: %s\n", err.msg);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(path);
    rmdir(dir);
}

static void test_section_table_errors(void)
{
    const uint64_t e1 = 32 + 24, e2 = 32 + 48;
    MUTATE32(e1 + 8, 4, "outside the file body");                 /* misaligned */
    MUTATE32(e1 + 8, 8, "outside the file body");                 /* inside the table */
    MUTATE32(e1 + 16, 0x7FFFFFF0u, "outside the file body");      /* past the end */
    {   /* a 64-bit offset that would wrap */
        uint8_t *c = copy_blob(&tiny);
        put64(c + e1 + 8, UINT64_MAX - 7);
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "outside the file body");
        qs_free(c);
    }
    MUTATE32(e2, 2, "duplicate section kind 2");
    MUTATE32(e2, 7, "unknown required section kind 7");
    {   /* overlap: the layers section starts inside the tensors section */
        uint8_t *c = copy_blob(&tiny);
        put64(c + e2 + 8, get64(c + e1 + 8) + 8);
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "overlap");
        qs_free(c);
    }
    {   /* a shrunken section leaves non-zero bytes outside every section */
        uint8_t *c = copy_blob(&tiny);
        put64(c + e1 + 16, get64(c + e1 + 16) - 88);
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, NULL);
        qs_free(c);
    }
}

/* Build a file from section payloads laid out as the writer does; used to
 * test optional and missing sections. */
static uint8_t *build_file(const uint32_t *kinds, const uint8_t *const *pay, const uint64_t *sz,
                           uint32_t n, size_t *len)
{
    uint64_t pos = (32 + 24 * (uint64_t)n + 7) & ~(uint64_t)7, offs[8];
    for (uint32_t i = 0; i < n; i++) {
        pos = (pos + 7) & ~(uint64_t)7;
        offs[i] = pos;
        pos += sz[i];
    }
    uint8_t *b = qs_calloc(1, pos);
    memcpy(b, "QSIMNET", 8);
    put32(b + 8, 1);
    put64(b + 16, pos);
    put32(b + 24, n);
    for (uint32_t i = 0; i < n; i++) {
        put32(b + 32 + 24 * i, kinds[i]);
        put64(b + 32 + 24 * i + 8, offs[i]);
        put64(b + 32 + 24 * i + 16, sz[i]);
        memcpy(b + offs[i], pay[i], sz[i]);
    }
    fix_crcs(b, pos);
    *len = pos;
    return b;
}

static void test_optional_and_missing_sections(void)
{
    const uint8_t *b = tiny.b;
    const uint8_t *pay[4];
    uint64_t sz[4];
    for (int i = 0; i < 3; i++) {
        pay[i] = b + sect_off(b, i);
        sz[i] = get64(b + 32 + 24 * i + 16);
    }
    static const uint8_t extra[5] = {1, 2, 3, 4, 5};
    pay[3] = extra;
    sz[3] = sizeof extra;
    uint32_t kinds[4] = {1, 2, 3, 0x80000001u};
    size_t n;
    uint8_t *f = build_file(kinds, pay, sz, 4, &n);
    qs_net *net = NULL;
    qs_error err;
    CU_ASSERT_EQUAL(qs_net_parse(f, n, "opt.qbin", &net, &err), QS_OK); /* skipped */
    qs_net_destroy(net);
    f[n - 1] ^= 1; /* but its CRC is checked */
    EXPECT_FORMAT(f, n, "CRC");
    qs_free(f);
    kinds[3] = 4; /* same, but required and unknown */
    f = build_file(kinds, pay, sz, 4, &n);
    EXPECT_FORMAT(f, n, "unknown required section kind 4");
    qs_free(f);
    /* the required sections in another order: refused (docs/qbin.md, one order
     * only, so that a file saves back to its own bytes) */
    const uint8_t *pay2[3] = {pay[2], pay[0], pay[1]};
    uint64_t sz2[3] = {sz[2], sz[0], sz[1]};
    uint32_t kinds2[3] = {3, 1, 2};
    f = build_file(kinds2, pay2, sz2, 3, &n);
    EXPECT_FORMAT(f, n, "section kind 1 after kind 3");
    qs_free(f);
    /* the table not in file order: an optional section stored after LAYERS but
     * listed before it */
    kinds[3] = 0x80000001u;
    f = build_file(kinds, pay, sz, 4, &n);
    uint8_t entry[24];
    memcpy(entry, f + 32 + 24 * 2, 24);
    memcpy(f + 32 + 24 * 2, f + 32 + 24 * 3, 24);
    memcpy(f + 32 + 24 * 3, entry, 24);
    fix_crcs(f, n);
    EXPECT_FORMAT(f, n, "the table lists sections in file order");
    qs_free(f);
    f = build_file(kinds, pay, sz, 2, &n); /* no layers section */
    EXPECT_FORMAT(f, n, "missing");
    qs_free(f);
    uint8_t big_net[72] = {0}; /* a net section of the wrong size */
    memcpy(big_net, pay[0], 64);
    pay[0] = big_net;
    sz[0] = sizeof big_net;
    f = build_file(kinds, pay, sz, 3, &n);
    EXPECT_FORMAT(f, n, "net section");
    qs_free(f);
}

static void test_count_errors(void)
{
    const uint64_t net = sect_off(tiny.b, 0);
    MUTATE32(net + 48, 0xFFFFFFFFu, "tensors cannot fit");  /* absurd tensor count */
    MUTATE32(net + 48, 1000, "tensors cannot fit");
    MUTATE32(net + 52, 0xFFFFFFFFu, "layers");               /* absurd layer count */
    MUTATE32(net + 52, 0, "layers");
    MUTATE32(net + 56, 6, "output layer 6");
    MUTATE32(net + 56, 0xFFFFFFFFu, "output layer -1");
    MUTATE32(net + 60, 1, "reserved");
    MUTATE32(net + 48, 5, "unexplained bytes");              /* fewer tensors than stored */
    MUTATE32(net + 52, 5, NULL);                             /* fewer layers than stored */
    {   /* a net name without a terminator */
        uint8_t *c = copy_blob(&tiny);
        memset(c + net, 'a', 48);
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "NUL");
        qs_free(c);
    }
    {   /* garbage after the terminator */
        uint8_t *c = copy_blob(&tiny);
        c[net + 40] = 'x';
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "after the name");
        qs_free(c);
    }
}

static void test_tensor_record_errors(void)
{
    const uint64_t t0 = tensor_rec(tiny.b, 0), t1 = tensor_rec(tiny.b, 1);
    uint8_t *c;
#define MUT8(at, v, needle)                       \
    do {                                          \
        c = copy_blob(&tiny);                           \
        c[(at)] = (uint8_t)(v);                   \
        fix_crcs(c, tiny.n);                      \
        EXPECT_FORMAT(c, tiny.n, (needle));       \
        qs_free(c);                                  \
    } while (0)
    MUT8(t0 + 48, 6, "unknown dtype 6");
    MUT8(t0 + 48, 255, "unknown dtype");
    MUT8(t0 + 49, 2, "is_signed");
    MUT8(t0 + 50, 0, "ndim 0");
    MUT8(t0 + 50, 5, "ndim 5");
    MUT8(t0 + 51, 1, "reserved");
    MUT8(t0 + 4, 1, "non-printable");
    MUTATE32(t0 + 52, 0, "shape[0] = 0");
    MUTATE32(t0 + 52, 0x7FFFFFFF, "more data than");           /* absurd dimension */
    MUTATE32(t1 + 56, 2, "beyond ndim must be 1");             /* the bias is 1-D */
    MUTATE32(t0 + 68, 0xFFFFFFFFu, "quantization entries");    /* absurd quant count */
    MUTATE32(t0 + 68, 2, "quantization count 2");
    MUTATE32(t0 + 72, 7, "axis 7");
    MUTATE32(t0 + 76, 1, "reserved");
    MUTATE32(t0 + 80, 4, "data size 4");
    MUTATE32(t0 + 84, 1, "data size");                          /* 2^32 + n */
    /* the name of the tensor is in the message */
    MUTATE32(t0 + 80, 4, "conv1.w");
    /* shape that is self-consistent but wrong for the layer: [4][3][3][3] -> [3][3][3][4] */
    c = copy_blob(&tiny);
    put32(c + t0 + 52, 3);
    put32(c + t0 + 64, 4);
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, "does not match");
    qs_free(c);
    /* non-zero weight zero point (conv1.w has a per-tensor record: q_n 1) */
    CU_ASSERT_EQUAL(get32(tiny.b + t0 + 68), 1);
    MUTATE32(t0 + 88 + 4, 3, "zero point 3");
    MUTATE32(t0 + 88 + 4, 1000, "zero point[0] = 1000");       /* outside int8 */
    MUTATE32(t0 + 88, 0x7FC00000u, "scale");                    /* NaN */
    MUTATE32(t0 + 88, 0, "scale");
    MUTATE32(t0 + 88, 0xBF800000u, "scale");                    /* -1.0 */
    /* bias must be int32: tiny's tensor 1 is conv1.b; make it int16 */
    c = copy_blob(&tiny);
    CU_ASSERT_EQUAL(c[t1 + 48], QS_DT_INT32);
    c[t1 + 48] = QS_DT_INT16;
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, NULL); /* data size no longer matches; either way refused */
    qs_free(c);
    /* weights of the wrong dtype: int8 -> int16 keeps nothing consistent; use the in-memory path below */
#undef MUT8
}

static void test_layer_record_errors(void)
{
    const uint64_t l0 = layer_rec(tiny.b, 0), l1 = layer_rec(tiny.b, 1), l3 = layer_rec(tiny.b, 3);
    const uint64_t l5 = layer_rec(tiny.b, 5);
    MUTATE32(l1 + 48, QS_L_KIND_COUNT, "unknown layer kind 23");
    MUTATE32(l1 + 48, QS_L_LUT, "layer kind 11 (lut) needs format version 2");
    MUTATE32(l1 + 48, 0x80000000u, "unknown layer kind");
    MUTATE32(l1 + 48, QS_L_INPUT, "only layer 0 may be an input");
    MUTATE32(l0 + 48, QS_L_CONV, "layer 0 must be the input");
    MUTATE32(l1 + 52, 9, "input count 9");
    MUTATE32(l1 + 52, 0xFFFFFFFFu, "input count -1");
    MUTATE32(l1 + 60, 0, "unused input slot");
    /* forward reference and self reference (what a cycle needs) */
    MUTATE32(l3 + 56, 4, "must be earlier layers");
    MUTATE32(l3 + 56, 3, "must be earlier layers");
    MUTATE32(l3 + 56, 0xFFFFFFFFu, "refers to layer -1");
    MUTATE32(l1 + 56, 0x7FFFFFFF, "refers to layer 2147483647");
    /* window parameters */
    MUTATE32(l1 + 88, 0, "must all be >= 1");                   /* kh 0 */
    MUTATE32(l1 + 96, 0, "must all be >= 1");                   /* stride 0 */
    MUTATE32(l1 + 120, 0, "must all be >= 1");                  /* dilation 0 */
    MUTATE32(l1 + 104, 3, "padding");                           /* pad_t = extent */
    MUTATE32(l1 + 108, 0xFFFFFFFFu, "padding");                 /* pad_l = -1 */
    MUTATE32(l1 + 128, 0, "groups 0");
    MUTATE32(l1 + 128, 3, "groups 3");                          /* 3 | 3 but not 4 */
    /* shape */
    MUTATE32(l1 + 160, 5, "must be 0, 1 or 5");                 /* rq count follows out_c */
    MUTATE32(l1 + 164, 7, "does not match");
    MUTATE32(l1 + 164, 0x7FFFFFFF, "at most 2^31-1");           /* absurd dims */
    MUTATE32(l1 + 160, 0, "each >= 1");
    /* weight / bias references */
    MUTATE32(l1 + 132, 99, "weight tensor index 99");
    MUTATE32(l1 + 132, 0xFFFFFFFFu, "weight tensor index -1");
    MUTATE32(l1 + 136, 0, "bias 'conv1.w'");                    /* an int8 tensor as bias */
    MUTATE32(l1 + 136, 5, "bias");                              /* wrong length / dtype */
    MUTATE32(l1 + 132, 1, "weight 'conv1.b'");                  /* int32 as weights */
    MUTATE32(layer_rec(tiny.b, 2) + 132, 0, "has no weight");   /* pool with a weight */
    /* quantization of the output */
    {
        uint8_t *c = copy_blob(&tiny);
        c[l1 + 172] = 17;
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "out_bits 17");
        qs_free(c);
        c = copy_blob(&tiny);
        c[l1 + 172] = 1;
        c[l1 + 173] = 1;
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "1-bit activations must be unsigned");
        qs_free(c);
        c = copy_blob(&tiny);
        c[l1 + 173] = 2;
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "out_signed");
        qs_free(c);
        c = copy_blob(&tiny);
        c[l1 + 174] = 1;
        fix_crcs(c, tiny.n);
        EXPECT_FORMAT(c, tiny.n, "reserved");
        qs_free(c);
    }
    MUTATE32(l1 + 156, 256, "clamp");                           /* hi outside u8 */
    MUTATE32(l1 + 152, 0xFFFFFFFFu, "clamp [-1");               /* lo outside u8 */
    MUTATE32(l1 + 176, 300, "zero point 300");
    MUTATE32(l1 + 148, 4, "unknown activation 4");
    MUTATE32(l1 + 180, 0x7F800000u, "output scale");            /* inf */
    MUTATE32(l1 + 188, 1, "reserved");
    /* requant count: 2 is neither 1 nor out_c (4); absurd counts are bounded by the bytes */
    MUTATE32(l1 + 184, 2, NULL);
    MUTATE32(l1 + 184, 0x7FFFFFFF, "multipliers need");
    MUTATE32(l1 + 184, 0xFFFFFFFFu, "negative requant count");
    MUTATE32(layer_rec(tiny.b, 2) + 184, 1, NULL);              /* maxpool with requant */
    /* fc weight shape vs the flattened input */
    MUTATE32(l5 + 160, 11, "shape [10][8] does not match [11][8]"); /* fc: one multiplier */
    /* the layer name and byte offset are in the message */
    MUTATE32(l3 + 56, 4, "layer 3 'conv2'");
    {
        char want[64];
        snprintf(want, sizeof want, "byte %llu", (unsigned long long)l3);
        MUTATE32(l3 + 56, 4, want);
    }
}

static void test_requant_array_errors(void)
{
    /* the requant arrays of conv1 follow the 6 layer records */
    const uint64_t a = layer_rec(tiny.b, 6);
    CU_ASSERT_EQUAL(get32(tiny.b + layer_rec(tiny.b, 1) + 184), 4);
    MUTATE32(a, 0x80000000u, "multiplier[0] = -2147483648 is negative");
    uint8_t *c = copy_blob(&tiny);
    c[a + 16] = 32; /* shift[0] */
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, "shift[0] = 32");
    qs_free(c);
    c = copy_blob(&tiny);
    c[a + 16] = (uint8_t)-32;
    fix_crcs(c, tiny.n);
    EXPECT_FORMAT(c, tiny.n, "shift[0] = -32");
    qs_free(c);
}

/* Random mutations with repaired CRCs reach the checks behind the CRCs: the
 * parser must refuse cleanly or accept a net that then round-trips. */
static void test_random_mutations(void)
{
    const blob *bs[2] = {&tiny, &demo};
    uint32_t seed = 2024;
    int accepted = 0;
    for (int k = 0; k < 2; k++) {
        for (int iter = 0; iter < 6000; iter++) {
            uint8_t *c = copy_blob(bs[k]);
            int nmut = 1 + iter % 4;
            for (int m = 0; m < nmut; m++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = 32 + (seed >> 8) % (bs[k]->n - 32);
                seed = seed * 1103515245u + 12345u;
                /* small numbers, sign flips and extremes hit the range checks best */
                static const uint8_t vals[] = {0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0xFE, 16, 64};
                c[at] = (seed >> 16) & 1 ? vals[(seed >> 8) % sizeof vals] : (uint8_t)(seed >> 8);
            }
            fix_crcs(c, bs[k]->n);
            qs_net *net = NULL;
            qs_error err;
            err.msg[0] = 0;
            qs_status st = qs_net_parse(c, bs[k]->n, "fuzz.qbin", &net, &err);
            CU_ASSERT(st == QS_OK || st == QS_ERR_FORMAT);
            if (st == QS_OK) {
                uint8_t *b2;
                size_t n2;
                accepted++;
                CU_ASSERT_EQUAL(qs_net_serialize(net, &b2, &n2, &err), QS_OK);
                if (n2 == bs[k]->n)
                    CU_ASSERT_EQUAL(memcmp(b2, c, n2), 0); /* still canonical */
                qs_free(b2);
                qs_net_destroy(net);
            } else {
                CU_ASSERT_PTR_NULL(net);
                CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "fuzz.qbin"));
            }
            qs_free(c);
        }
    }
    CU_ASSERT(accepted > 0); /* some mutations (weights, scales) are legal */
}

/* ---- suite: in-memory validation ------------------------------------- */

typedef void (*mutator)(qs_net *);

static void check_invalid(mutator m, const blob *x, const char *needle, int line)
{
    qs_net *net = parse_ok(x);
    m(net);
    qs_error err;
    err.msg[0] = 0;
    qs_status st = qs_net_validate(net, "mem", &err);
    if (st != QS_ERR_FORMAT || !strstr(err.msg, "mem") || (needle && !strstr(err.msg, needle)))
        fprintf(stderr, "\n  line %d: status %d, message '%s' (wanted '%s')\n", line, (int)st,
                err.msg, needle ? needle : "");
    CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "mem"));
    if (needle)
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
    qs_net_destroy(net);
}
#define INVALID(fn, x, needle) check_invalid((fn), (x), (needle), __LINE__)

/* tiny: 0 input 3x8x8 s8, 1 conv1 4x8x8, 2 pool1 4x4x4, 3 conv2 8x4x4, 4 gap 8x1x1, 5 fc 10
 * demo: 0 input 1x8x8, 1 conv1, 2 conv2, 3 res (add), 4 dw, 5 avgpool, 6 concat, 7 clip (act),
 *       8 requant, 9 flatten, 10 fc */
static void m_value_range(qs_net *n) { n->tensors[0].data[0] = 128; }
static void m_count(qs_net *n) { n->tensors[0].count++; }
static void m_weight_dtype(qs_net *n) { n->tensors[0].dtype = QS_DT_INT16; }
static void m_bias_unsigned(qs_net *n)
{
    n->tensors[1].is_signed = 0;
    memset(n->tensors[1].data, 0, (size_t)n->tensors[1].count * sizeof(int32_t));
}
static void m_bias_len(qs_net *n)
{
    n->tensors[1].shape[0] = 3;
    n->tensors[1].count = 3;
    n->tensors[1].q_n = 0;
}
static void m_rq_n(qs_net *n) { n->layers[1].rq.n = 2; }
static void m_rq_on_pool(qs_net *n) { n->layers[2].rq.n = 1; }
static void m_pool_shape(qs_net *n) { n->layers[2].out_h = 3; }
static void m_pool_zp(qs_net *n) { n->layers[2].out_zp = 1; }
static void m_pool_allpad(qs_net *n)
{
    /* 2 taps 9 apart with padding 1 on an 8-high input: taps at -1 and 8, both padding */
    qs_layer *l = &n->layers[2];
    l->kh = 2;
    l->dil_h = 9;
    l->pad_t = 1;
    l->pad_b = 1;
    l->out_h = 1;
}
static void m_gap_shape(qs_net *n) { n->layers[4].out_h = 2; }
static void m_fc_in(qs_net *n) { n->layers[4].out_c = 9; }
static void m_input_twice(qs_net *n) { n->layers[2].kind = QS_L_INPUT; n->layers[2].n_inputs = 0; }
static void m_output(qs_net *n) { n->output = n->n_layers; }
static void m_clamp_order(qs_net *n) { n->layers[3].clamp_lo = 10; n->layers[3].clamp_hi = 9; }
static void m_name(qs_net *n) { memset(n->layers[3].name, 'x', QS_NAME_MAX); }
static void m_name_ctrl(qs_net *n) { n->tensors[2].name[0] = '\n'; }
static void m_no_layers(qs_net *n)
{
    for (int32_t i = 0; i < n->n_layers; i++) { /* destroy() will not see them any more */
        qs_free(n->layers[i].rq.mult);
        qs_free(n->layers[i].rq.shift);
        n->layers[i].rq.mult = NULL;
        n->layers[i].rq.shift = NULL;
    }
    n->n_layers = 0;
}
static void m_quant_axis(qs_net *n) { n->tensors[0].q_axis = 3; n->tensors[0].q_n = 2; }
static void m_kernel_too_big(qs_net *n)
{
    qs_layer *l = &n->layers[3]; /* 4x4 input, pad 1: extent 7 > 6 */
    l->dil_h = 3;
    l->dil_w = 3;
}
static void m_add_shape(qs_net *n) { n->layers[3].inputs[1] = 0; }
static void m_add_inputs(qs_net *n) { n->layers[3].n_inputs = 1; }
static void m_concat_hw(qs_net *n) { n->layers[6].inputs[1] = 3; }
static void m_concat_c(qs_net *n) { n->layers[6].out_c = 15; }
static void m_concat_zp(qs_net *n) { n->layers[5].out_zp = 1; }
static void m_act_zp(qs_net *n) { n->layers[7].out_zp = 2; n->layers[7].clamp_lo = 2; }
static void m_flatten(qs_net *n) { n->layers[9].out_c = 255; }
/* a flatten is a view: a clamp narrower than its input's is refused */
static void m_flatten_clamp(qs_net *n) { n->layers[9].clamp_hi = n->layers[8].clamp_hi - 1; }
/* 2^21 x 2^21 x 2^22 = 2^64 elements must not wrap to 0 */
static void m_shape_wrap(qs_net *n)
{
    n->layers[0].out_c = 1 << 21;
    n->layers[0].out_h = 1 << 21;
    n->layers[0].out_w = 1 << 22;
}
static void m_dw_groups(qs_net *n) { n->layers[4].groups = 3; }
static void m_requant_shape(qs_net *n) { n->layers[8].out_c = 8; }
static void m_shift(qs_net *n) { n->layers[8].rq.shift[0] = 40; }
static void m_bipolar_zero(qs_net *n)
{
    n->tensors[0].dtype = QS_DT_BIPOLAR;
    for (int64_t i = 0; i < n->tensors[0].count; i++)
        n->tensors[0].data[i] = 1;
    n->tensors[0].data[5] = 0;
}

/* xfmr_tiny: 0 x 8x6x1, 1 ln1, 2 wq, 3 wk, 4 wv, 5 q_heads 2x4x6, 6 k_heads, 7 v_heads,
 * 8 scores (matmul, A^T B) 2x6x6, 9 softmax (axis 2), 10 attn_v (A B^T) 2x4x6, 11 merge_heads,
 * 12 wo, 13 res1, 14 rms2, 15 w_up 16x6x1, 16 w_gate, 17 silu (lut), 18 swiglu (mul), 19 w_down,
 * 20 res2 */
static void m_heads(qs_net *n) { n->layers[5].out_c = 3; n->layers[5].out_h = 2; } /* 3 heads of 8 */
static void m_mm_shape(qs_net *n) { n->layers[8].param = 0; }   /* (4 x 6) x (4 x 6) */
static void m_mm_batch(qs_net *n) { n->layers[8].inputs[1] = 1; }
static void m_mm_param(qs_net *n) { n->layers[8].param = 8; } /* bits 0-2 are defined; 4 (grouped) is valid */
/* lm_tiny: 0 ids 1x24x1 u16, 1 wte (embed [300][16]), 3 wq 16ch, 4 wk 8ch, 7 k_heads (2, 4, 24),
 * 9 scores (grouped, 4 heads over 2), 16 lm_head 300ch, 17 next_token (argmax) */
static void m_gqa_not_multiple(qs_net *n) /* k_heads viewed as 3 matrices of 64 x 1: 4 query heads over 3 */
{
    n->layers[7].out_c = 3;
    n->layers[7].out_h = 64;
    n->layers[7].out_w = 1;
}
static void m_embed_input(qs_net *n) { n->layers[0].out_signed = 1, n->layers[0].clamp_hi = 32767; }
static void m_embed_table(qs_net *n) /* the same 4800 values as a vector */
{
    qs_tensor *t = &n->tensors[n->layers[1].weight];
    t->ndim = 1;
    t->shape[0] = (int32_t)t->count;
    t->shape[1] = 1;
}
static void m_argmax_clamp(qs_net *n) { n->layers[17].clamp_hi = 298; }
static void m_embed_pos_short(qs_net *n) { n->layers[1].param = 9; } /* rows 9..32 of a 32-row table */
static void m_embed_param(qs_net *n) { n->layers[1].bias = -1; }      /* offset 2 without a position table */
static void m_argmax_signed(qs_net *n) { n->layers[17].out_signed = 1, n->layers[17].clamp_hi = 32767; }
static void m_table_len(qs_net *n)
{
    qs_tensor *t = &n->tensors[n->layers[9].weight];
    t->shape[0] = 255;
    t->count = 255;
}
static void m_lut_len(qs_net *n)
{
    qs_tensor *t = &n->tensors[n->layers[17].weight];
    t->shape[0] = 128;
    t->count = 128;
}
static void m_axis(qs_net *n) { n->layers[9].param = 3; }
static void m_axis_neg(qs_net *n) { n->layers[9].param = -1; }
static void m_softmax_signed(qs_net *n) { n->layers[9].out_signed = 1; n->layers[9].clamp_hi = 127; }
static void m_softmax_table_neg(qs_net *n) { n->tensors[n->layers[9].weight].data[7] = -1; }
static void m_softmax_wide(qs_net *n) { n->layers[8].out_bits = 9; }
static void m_lut_wide(qs_net *n) { n->layers[16].out_bits = 9; }
static void m_param_on_conv(qs_net *n) { n->layers[2].param = 1; }
static void m_norm_bias(qs_net *n) { n->layers[1].bias = n->layers[2].weight; }
static void m_reshape_zp(qs_net *n) { n->layers[5].out_zp = 1; }
static void m_mul_shape(qs_net *n) { n->layers[18].inputs[1] = 1; }
static void m_mul_inputs(qs_net *n) { n->layers[18].n_inputs = 1; }
static void m_causal_axis0(qs_net *n) { n->layers[9].param = QS_SOFTMAX_CAUSAL_BIT; }
static void m_softmax_bit5(qs_net *n) { n->layers[9].param = 2 | 32; }
static void m_offset_no_causal(qs_net *n) { n->layers[9].param = 2 | (7 << QS_SOFTMAX_OFFSET_SHIFT); }
static void m_mul_param(qs_net *n) { n->layers[18].param = 2; }
static void m_rowmax_positions(qs_net *n) /* scores 2x6x6 has other positions than w_up 16x6x1 */
{
    n->layers[18].param = QS_MUL_ROWMAX;
    n->layers[18].inputs[1] = 8;
}
static void m_dynquant_zp(qs_net *n) /* the silu lut made a dynquant with a zero point */
{
    qs_layer *l = &n->layers[17];
    l->kind = QS_L_DYNQUANT;
    l->weight = -1;
    l->out_bits = 8;
    l->out_signed = 1;
    l->out_zp = 3;
    l->clamp_lo = -127;
    l->clamp_hi = 127;
}

/* decoder_tiny: 9 rope_q (16x24x1, head size 8, table [24][4][2]) */
static void m_rope_dh(qs_net *n) { n->layers[9].param = 3; }
static void m_rope_offset(qs_net *n) { n->layers[9].param = 8 | (1 << 16); } /* needs 25 positions, has 24 */
static void m_rope_entry(qs_net *n) { n->tensors[n->layers[9].weight].data[3] = 16385; }

/* decoder_kv: 0 x 16x8x1, 1 ln1, 2-4 wq wk wv, 5-7 q/k/v_heads 2x8x8, 8 k_cache, 9 v_cache (max 32),
 * 10 scores 2x8x8, 11 softmax (causal), 12 attn_v, 13 merge_heads, 14 wo, 15 res1, ..., 20 res2 */
static void m_kv_max(qs_net *n) { n->layers[8].param = 7; }
static void m_kv_zero(qs_net *n) { n->layers[9].param = 0; }
static void m_kv_zp(qs_net *n) { n->layers[8].out_zp = 1; }
static void m_kv_feeds_softmax(qs_net *n) { n->layers[11].inputs[0] = 8; } /* k_cache is 2x8x8 like scores */
static void m_kv_weight(qs_net *n) { n->layers[8].weight = 0; }

static void test_validate_kvcache(void)
{
    INVALID(m_kv_max, &decoder_kv, "layer 8 'k_cache', kvcache");
    INVALID(m_kv_max, &decoder_kv, "a KV cache longer than its maximum: the prompt's 8 tokens (W of 2x8x8) exceed "
                                   "the maximum context 7");
    INVALID(m_kv_zero, &decoder_kv, "layer 9 'v_cache', kvcache");
    INVALID(m_kv_zero, &decoder_kv, "maximum context 0 must be >= 1");
    INVALID(m_kv_zp, &decoder_kv, "keeps the input's bits");
    INVALID(m_kv_feeds_softmax, &decoder_kv, "a kvcache feeds only matmuls; layer 11 'softmax' is a softmax");
    INVALID(m_kv_weight, &decoder_kv, "a kvcache has no weight");
    /* a kvcache record read as kind 21 (ARGMAX) keeps its maximum context as param, which ARGMAX refuses */
    uint8_t *c = copy_blob(&decoder_kv);
    put32(c + layer_rec(c, 8) + 48, 21);
    fix_crcs(c, decoder_kv.n);
    EXPECT_FORMAT(c, decoder_kv.n, "a argmax has no parameter, but param is 32");
    qs_free(c);
}

/* The step graph (docs/decode.md): roles, shapes, offsets, and what is refused. */
static void test_decode_steps(void)
{
    qs_net *net = parse_ok(&decoder_kv);
    uint8_t(*roles)[3] = qs_malloc(sizeof *roles * (size_t)net->n_layers);
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_decode_roles(net, "kv.qbin", roles, &e), QS_OK);
    /* by hand: x (F,T,F); k_heads (F,F,T); k_cache (F,F,K); scores = Qh^T Kc: (F,T,K); attn_v = Vc P^T: (F,F,T) */
    const uint8_t want[][4] = {{0, 0, 1, 0}, {6, 0, 0, 1}, {8, 0, 0, 2}, {10, 0, 1, 2}, {11, 0, 1, 2},
                               {12, 0, 0, 1}, {13, 0, 1, 0}, {20, 0, 1, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CU_ASSERT(!memcmp(roles[want[i][0]], want[i] + 1, 3));
    CU_ASSERT_EQUAL(qs_decode_n_caches(net), 2);
    static int32_t past[2][2 * 8 * 31];
    const int32_t *caches[2] = {past[0], past[1]};
    qs_net *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qs_decode_step_net(net, "kv.qbin", (const uint8_t(*)[3])roles, 31, 1, caches, &s, &e), QS_OK);
    CU_ASSERT_EQUAL(s->layers[0].out_h, 1);
    CU_ASSERT(s->layers[8].out_c == 2 && s->layers[8].out_h == 8 && s->layers[8].out_w == 32);
    CU_ASSERT(s->layers[10].out_c == 2 && s->layers[10].out_h == 1 && s->layers[10].out_w == 32);
    CU_ASSERT_EQUAL(QS_SOFTMAX_OFFSET(s->layers[11].param), 31);
    CU_ASSERT(QS_SOFTMAX_IS_CAUSAL(s->layers[11].param) && QS_SOFTMAX_AXIS(s->layers[11].param) == 2);
    CU_ASSERT(s->layers[13].out_c == 16 && s->layers[13].out_h == 1 && s->layers[13].out_w == 1);
    CU_ASSERT(s->layers[8].weight == net->n_tensors && s->tensors[s->layers[8].weight].data == past[0]);
    CU_ASSERT_EQUAL(s->tensors[s->layers[9].weight].shape[2], 31);
    qs_decode_step_free(s);
    /* 32 cached + 1 new > 32 */
    CU_ASSERT_EQUAL(qs_decode_step_net(net, "kv.qbin", (const uint8_t(*)[3])roles, 32, 1, caches, &s, &e),
                    QS_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "kv.qbin: layer 8 'k_cache' (kvcache): a KV cache longer than its maximum: "
                                         "33 tokens (32 cached + 1 new) exceed the maximum context 32"));
    /* a softmax over cached keys without the causal mask: a step would see no future keys, a prefill would */
    net->layers[11].param = 2;
    CU_ASSERT_EQUAL(qs_decode_roles(net, "kv.qbin", roles, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "layer 11 'softmax' (softmax): cannot run in decode steps: a softmax over "
                                         "cached keys needs the causal mask"));
    net->layers[11].param = 2 | QS_SOFTMAX_CAUSAL_BIT;
    /* K not cached: the scores' keys are the new tokens only, and the softmax would run along them */
    net->layers[10].inputs[1] = 6;
    CU_ASSERT_EQUAL(qs_decode_roles(net, "kv.qbin", roles, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "layer 11 'softmax' (softmax): cannot run in decode steps: a softmax along "
                                         "the tokens mixes them"));
    net->layers[10].inputs[1] = 8;
    /* V not cached: P V would pair the cached keys' probabilities with the new tokens' values */
    net->layers[12].inputs[0] = 7;
    CU_ASSERT_EQUAL(qs_decode_roles(net, "kv.qbin", roles, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "layer 12 'attn_v' (matmul): cannot run in decode steps: A and B reduce over "
                                         "axes of different roles"));
    net->layers[12].inputs[0] = 9;
    /* a kvcache on the (C, tokens, 1) layout */
    net->layers[8].inputs[0] = 3;
    CU_ASSERT_EQUAL(qs_decode_roles(net, "kv.qbin", roles, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "layer 8 'k_cache' (kvcache): cannot run in decode steps: a kvcache's input "
                                         "holds the new tokens along W"));
    qs_free(roles);
    qs_net_destroy(net);
}

static void test_validate_v2(void)
{
    INVALID(m_rope_dh, &decoder, "layer 9 'rope_q', rope");
    INVALID(m_rope_dh, &decoder, "head size 3 must be even");
    INVALID(m_rope_offset, &decoder, "holds 24 positions; tokens 24 at offset 1 need 25");
    INVALID(m_rope_entry, &decoder, "entry 3 = 16385 outside -16384..16384");
    INVALID(m_heads, &xfmr, "layer 5 'q_heads', reshape");
    INVALID(m_heads, &xfmr, "changes the element count");
    INVALID(m_mm_shape, &xfmr, "layer 8 'scores', matmul");
    INVALID(m_mm_shape, &xfmr, "mismatched shapes: op(A) is 4 x 6, op(B) is 4 x 6");
    INVALID(m_mm_batch, &xfmr, "batch must match");
    INVALID(m_mm_param, &xfmr, "param 8");
    INVALID(m_gqa_not_multiple, &lm, "layer 9 'scores', matmul");
    INVALID(m_gqa_not_multiple, &lm, "grouped: A has 4 matrices (heads), B 3: one must be a multiple of the other");
    INVALID(m_embed_input, &lm, "layer 1 'wte', embed");
    INVALID(m_embed_input, &lm, "unsigned token ids");
    INVALID(m_embed_table, &lm, "must be an integer tensor [vocab][hidden]");
    INVALID(m_embed_pos_short, &lm, "position table 'wte.positions' holds 32 positions; tokens 24 at position 9 need 33");
    INVALID(m_embed_param, &lm, "embed param 2: the position of token 0, only with a position table");
    INVALID(m_argmax_clamp, &lm, "layer 17 'next_token', argmax");
    INVALID(m_argmax_clamp, &lm, "argmax over 300 channels needs an unsigned output with zero point 0 and a clamp [0, >= 299]");
    INVALID(m_argmax_signed, &lm, "argmax over 300 channels");
    INVALID(m_table_len, &xfmr, "layer 9 'softmax', softmax");
    INVALID(m_table_len, &xfmr, "has 255 entries");
    INVALID(m_lut_len, &xfmr, "layer 17 'silu', lut");
    INVALID(m_lut_len, &xfmr, "needs a vector of 256");
    INVALID(m_axis, &xfmr, "softmax axis 3 does not exist");
    INVALID(m_axis_neg, &xfmr, "softmax axis -1 does not exist");
    INVALID(m_softmax_signed, &xfmr, "unsigned");
    INVALID(m_softmax_table_neg, &xfmr, "entry 7 = -1");
    INVALID(m_softmax_wide, &xfmr, "at most 8");
    INVALID(m_lut_wide, &xfmr, "at most 8");
    INVALID(m_param_on_conv, &xfmr, "no parameter");
    INVALID(m_norm_bias, &xfmr, "not an int32 vector of 8");
    INVALID(m_reshape_zp, &xfmr, "keeps the input's bits");
    INVALID(m_mul_shape, &xfmr, "different shapes");
    INVALID(m_mul_inputs, &xfmr, "1 inputs");
    INVALID(m_causal_axis0, &xfmr, "layer 9 'softmax', softmax");
    INVALID(m_causal_axis0, &xfmr, "causal softmax runs along axis 1 or 2");
    INVALID(m_softmax_bit5, &xfmr, "bits 5-7 must be 0");
    INVALID(m_offset_no_causal, &xfmr, "offset 7 without the causal bit");
    INVALID(m_mul_param, &xfmr, "layer 18 'swiglu', mul");
    INVALID(m_mul_param, &xfmr, "mul param 2");
    INVALID(m_rowmax_positions, &xfmr, "different positions 6x1 and 6x6");
    INVALID(m_dynquant_zp, &xfmr, "layer 17 'silu', dynquant");
    INVALID(m_dynquant_zp, &xfmr, "zero point 3");
    /* the same refusals from a file name the file, the byte and the layer */
    uint8_t *c = copy_blob(&xfmr);
    uint64_t l9 = layer_rec(c, 9);
    put32(c + l9 + 188, 5);
    fix_crcs(c, xfmr.n);
    EXPECT_FORMAT(c, xfmr.n, "layer 9 'softmax', softmax): softmax axis 5 does not exist");
    qs_free(c);
}

/* The integer operators against values worked out by hand from docs/qbin.md. */
static void test_xfmr_integer_ops(void)
{
    /* isqrt = floor(sqrt(n)): exhaustive below 2^20, and the edges */
    int ok = 1;
    for (uint64_t n = 0; n < (1u << 20) && ok; n++) {
        uint64_t r = qs_isqrt_u64(n);
        ok = r * r <= n && (r + 1) * (r + 1) > n;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(qs_isqrt_u64(UINT64_MAX), 4294967295u);
    CU_ASSERT_EQUAL(qs_isqrt_u64((uint64_t)1 << 62), (uint64_t)1 << 31);
    CU_ASSERT_EQUAL(qs_isqrt_u64(((uint64_t)1 << 62) - 1), ((uint64_t)1 << 31) - 1);
    /* layernorm of [1, 2, 3, 6]: mean floor(28/8) = 3, V = 14, g = 15,
     * sigma = isqrt(14 * 2^30 / 4) = 61303, z = round(d 2^31 / 61303) */
    const int32_t row[4] = {1, 2, 3, 6};
    qs_norm_stats st = qs_norm_stats_of(1, row, 0, 4, 1);
    CU_ASSERT_EQUAL(st.mean, 3);
    CU_ASSERT_EQUAL(st.g, 15);
    CU_ASSERT_EQUAL(st.sigma, 61303);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 1), -70061);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 2), -35031);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 3), 0);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 6), 105092);
    /* rmsnorm of the same row: V = 50, sigma = isqrt(50 * 2^30 / 4) = 115852 */
    st = qs_norm_stats_of(0, row, 0, 4, 1);
    CU_ASSERT_EQUAL(st.mean, 0);
    CU_ASSERT_EQUAL(st.sigma, 115852);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 1), 18536);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 6), 111219);
    /* the mean rounds half up with floor division: [-6, -3, -1] (zp 0) -> floor(-17/6) = -3;
     * with zero point 2 the same row is [-8, -5, -3] -> floor(-26/6) = -5; stride 2 */
    const int32_t neg[6] = {-6, 99, -3, 99, -1, 99};
    CU_ASSERT_EQUAL(qs_norm_stats_of(1, neg, 0, 3, 2).mean, -3);
    CU_ASSERT_EQUAL(qs_norm_stats_of(1, neg, 2, 3, 2).mean, -5);
    const int32_t flat[3] = {7, 7, 7}; /* variance 0: every z is 0 */
    st = qs_norm_stats_of(1, flat, 0, 3, 1);
    CU_ASSERT_EQUAL(st.sigma, 0);
    CU_ASSERT_EQUAL(qs_norm_value(&st, 7), 0);
}

static void test_validate_inmemory(void)
{
    INVALID(m_value_range, &tiny, "value 128");
    INVALID(m_value_range, &tiny, "conv1.w");
    INVALID(m_count, &tiny, "count");
    INVALID(m_weight_dtype, &tiny, "int16");
    INVALID(m_bias_unsigned, &tiny, "not int32");
    INVALID(m_bias_len, &tiny, "vector of 4");
    INVALID(m_rq_n, &tiny, "must be 0, 1 or 4");
    INVALID(m_rq_on_pool, &tiny, "no requantization");
    INVALID(m_pool_shape, &tiny, "layer 2 'pool1', maxpool");
    INVALID(m_pool_zp, &tiny, "zero point");
    INVALID(m_pool_allpad, &tiny, "entirely in the padding");
    INVALID(m_gap_shape, &tiny, "8x2x1");
    INVALID(m_fc_in, &tiny, NULL);
    INVALID(m_input_twice, &tiny, "only layer 0");
    INVALID(m_output, &tiny, "output layer 6");
    INVALID(m_clamp_order, &tiny, "clamp [10, 9]");
    INVALID(m_name, &tiny, "name");
    INVALID(m_name_ctrl, &tiny, "name");
    INVALID(m_no_layers, &tiny, "no layers");
    INVALID(m_quant_axis, &tiny, "axis 3");
    INVALID(m_kernel_too_big, &tiny, "exceeds the padded input");
    INVALID(m_bipolar_zero, &tiny, "value 0");
    INVALID(m_add_shape, &demo, "different shapes");
    INVALID(m_add_inputs, &demo, "1 inputs");
    INVALID(m_concat_hw, &demo, "H x W must match");
    INVALID(m_concat_c, &demo, "does not match");
    INVALID(m_concat_zp, &demo, NULL);
    INVALID(m_act_zp, &demo, "zero point");
    INVALID(m_flatten, &demo, "255x1x1");
    INVALID(m_flatten_clamp, &demo, "narrower than its input's");
    INVALID(m_shape_wrap, &tiny, "at most 2^31-1 elements");
    INVALID(m_dw_groups, &demo, "groups 3");
    INVALID(m_requant_shape, &demo, NULL);
    INVALID(m_shift, &demo, "shift[0] = 40");
    qs_error err;
    CU_ASSERT_EQUAL(qs_net_validate(NULL, "mem", &err), QS_ERR_ARG);
}

/* ---- main ------------------------------------------------------------- */

typedef struct {
    const char *name;
    CU_TestInfo *tests;
} suite_def;

int main(int argc, char **argv)
{
    static CU_TestInfo dtype_tests[] = {
        {"names and ranges", test_dtype_names_ranges},
        {"known packed bytes", test_pack_known_bytes},
        {"pack rejects out-of-range values", test_pack_rejects},
        {"pack/unpack every dtype", test_pack_roundtrip_all},
        {"big-array allocation", test_alloc_big},
        CU_TEST_INFO_NULL};
    static CU_TestInfo requant_tests[] = {
        {"hand-computed cases", test_requant_cases},
        {"per-layer selection", test_layer_requant},
        {"bulk = one by one", test_requant_many_matches},
        CU_TEST_INFO_NULL};
    static CU_TestInfo roundtrip_tests[] = {
        {"tiny byte for byte", test_roundtrip_tiny},
        {"demo byte for byte", test_roundtrip_demo},
        {"xfmr_tiny (version 2) byte for byte", test_roundtrip_xfmr},
        {"decoder_tiny (version 2) byte for byte", test_roundtrip_decoder},
        {"shipped nets cover every kind", test_shipped_cover_all_kinds},
        {"macs", test_macs},
        {"in-memory build", test_inmemory_build},
        {"load and save", test_load_save},
        CU_TEST_INFO_NULL};
    static CU_TestInfo bad_tests[] = {
        {"every prefix", test_every_prefix},
        {"every byte flip", test_every_byte_flip},
        {"header", test_header_errors},
        {"section table", test_section_table_errors},
        {"streams bounded by their header", test_stream_bounded},
        {"optional and missing sections", test_optional_and_missing_sections},
        {"counts", test_count_errors},
        {"tensor records", test_tensor_record_errors},
        {"layer records", test_layer_record_errors},
        {"requant arrays", test_requant_array_errors},
        {"random mutations", test_random_mutations},
        CU_TEST_INFO_NULL};
    static CU_TestInfo validate_tests[] = {
        {"in-memory nets", test_validate_inmemory},
        {"version-2 layers", test_validate_v2},
        {"transformer integer operators", test_xfmr_integer_ops},
        {"kvcache layers", test_validate_kvcache},
        {"decode step graph", test_decode_steps},
        CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {
        {"dtype", NULL, NULL, NULL, NULL, dtype_tests},
        {"requant", NULL, NULL, NULL, NULL, requant_tests},
        {"roundtrip", init_nets, free_nets, NULL, NULL, roundtrip_tests},
        {"bad_input", init_nets, free_nets, NULL, NULL, bad_tests},
        {"validate", init_nets, free_nets, NULL, NULL, validate_tests},
        CU_SUITE_INFO_NULL};
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    if (argc > 1) { /* run one suite: keep only the named one */
        int k = 0;
        for (int i = 0; suites[i].pName; i++)
            if (strcmp(suites[i].pName, argv[1]) == 0)
                suites[k++] = suites[i];
        if (k == 0) {
            fprintf(stderr, "no suite named %s\n", argv[1]);
            CU_cleanup_registry();
            return 2;
        }
        suites[k] = (CU_SuiteInfo)CU_SUITE_INFO_NULL;
    }
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = CU_get_error() || CU_get_number_of_failures() || CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
