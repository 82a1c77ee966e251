/* The .qbin container: parse, validate, serialize (docs/qbin.md).
 *
 * The reader is written to be fed hostile bytes: every count is bounded by
 * the bytes that remain before anything is allocated, every offset is checked
 * in 64-bit arithmetic before it is used, and every failure is one
 * QS_ERR_FORMAT message naming the source, the byte offset or section, and
 * the tensor/layer concerned. The writer produces the canonical encoding, so
 * serialize(parse(f)) == f for every valid file. */
#define _DEFAULT_SOURCE /* glibc: MADV_HUGEPAGE and MAP_POPULATE besides POSIX */
#include "qs_net.h"
#include "qs_alloc.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "qs_vector.h"
#include "qs_xfmr.h"

/* ---- layout constants (docs/qbin.md) ---------------------------------- */

#define QBIN_VERSION 2u   /* newest; a net without version-2 kinds is written as 1 */
#define QBIN_HEADER_SIZE 32u
#define QBIN_ENTRY_SIZE 24u
#define QBIN_MAX_SECTIONS 16u
#define QBIN_NET_SIZE 64u
#define QBIN_TENSOR_FIXED 88u
#define QBIN_LAYER_SIZE 192u
#define QBIN_SECT_NET 1u
#define QBIN_SECT_TENSORS 2u
#define QBIN_SECT_LAYERS 3u
#define QBIN_SECT_OPTIONAL 0x80000000u
#define QBIN_MAX_ELEMS ((int64_t)INT32_MAX)   /* per tensor / activation */
#define QBIN_MAX_SHIFT 31

static const uint8_t qbin_magic[8] = {'Q', 'S', 'I', 'M', 'N', 'E', 'T', 0};

/* ---- little-endian access (byte by byte: no alignment or host-order assumptions) */

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }
static int32_t rd_i32(const uint8_t *p)
{
    uint32_t u = rd_u32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation without UB */
    return v;
}
static float rd_f32(const uint8_t *p)
{
    uint32_t u = rd_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static void wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static void wr_u64(uint8_t *p, uint64_t v)
{
    wr_u32(p, (uint32_t)v);
    wr_u32(p + 4, (uint32_t)(v >> 32));
}
static void wr_i32(uint8_t *p, int32_t v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    wr_u32(p, u);
}
static void wr_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    wr_u32(p, u);
}

/* zlib's crc32 takes a uInt length; feed large buffers in chunks. */
static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint64_t n)
{
    uLong c = crc;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

static uint64_t pad4(uint64_t x) { return (x + 3u) & ~(uint64_t)3u; }
static uint64_t pad8(uint64_t x) { return (x + 7u) & ~(uint64_t)7u; }

/* ---- names and ranges ------------------------------------------------- */

int qs_dtype_bits(qs_dtype dt)
{
    switch (dt) {
    case QS_DT_BIPOLAR: return 1;
    case QS_DT_INT2: return 2;
    case QS_DT_INT4: return 4;
    case QS_DT_INT8: return 8;
    case QS_DT_INT16: return 16;
    case QS_DT_INT32: return 32;
    }
    return 0;
}

const char *qs_dtype_name(qs_dtype dt, int is_signed)
{
    switch (dt) {
    case QS_DT_BIPOLAR: return "bipolar";
    case QS_DT_INT2: return is_signed ? "int2" : "uint2";
    case QS_DT_INT4: return is_signed ? "int4" : "uint4";
    case QS_DT_INT8: return is_signed ? "int8" : "uint8";
    case QS_DT_INT16: return is_signed ? "int16" : "uint16";
    case QS_DT_INT32: return is_signed ? "int32" : "uint32";
    }
    return "?";
}

const char *qs_layer_kind_name(qs_layer_kind k)
{
    static const char *const names[QS_L_KIND_COUNT] = {
        "input", "conv", "fc", "maxpool", "avgpool", "gap",
        "add", "concat", "act", "requant", "flatten",
        "lut", "mul", "softmax", "layernorm", "rmsnorm", "matmul", "reshape", "dynquant", "rope",
        "embed", "argmax", "kvcache"};
    if ((int)k < 0 || k >= QS_L_KIND_COUNT || !names[k])
        return "?";
    return names[k];
}

int qs_layer_kind_is_v2(qs_layer_kind k) { return k >= QS_L_LUT && k < QS_L_KIND_COUNT; }

/* The format version a network needs: 2 when it uses a version-2 kind. */
static uint32_t net_version(const qs_net *net)
{
    for (int32_t i = 0; i < net->n_layers; i++)
        if (qs_layer_kind_is_v2(net->layers[i].kind)) return 2;
    return 1;
}

void qs_int_range(int bits, int is_signed, int32_t *lo, int32_t *hi)
{
    int64_t l = 0, h = 0;
    if (bits >= 1 && bits <= 32) {
        if (is_signed) {
            l = -((int64_t)1 << (bits - 1));
            h = ((int64_t)1 << (bits - 1)) - 1;
        } else {
            l = 0;
            h = ((int64_t)1 << bits) - 1;
            if (h > INT32_MAX) /* values live in int32_t */
                h = INT32_MAX;
        }
    }
    if (lo)
        *lo = (int32_t)l;
    if (hi)
        *hi = (int32_t)h;
}

/* Is v a storable value of this dtype? */
static int dtype_holds(qs_dtype dt, int is_signed, int64_t v)
{
    int32_t lo, hi;
    if (dt == QS_DT_BIPOLAR)
        return v == -1 || v == 1;
    qs_int_range(qs_dtype_bits(dt), is_signed, &lo, &hi);
    return v >= lo && v <= hi;
}

/* ---- integer requantization (gemmlowp) -------------------------------- */

static int32_t sat32(int64_t x)
{
    if (x > INT32_MAX)
        return INT32_MAX;
    if (x < INT32_MIN)
        return INT32_MIN;
    return (int32_t)x;
}

/* SaturatingRoundingDoublingHighMul: a*b/2^31, halves rounded up. */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates, as gemmlowp */
}

/* RoundingDivideByPOT: x/2^e, halves rounded away from zero. Done in int64 so
 * e = 31 needs no special case; >> of a negative value is arithmetic on every
 * compiler we target (gcc/clang document it). */
static int32_t rdivpot(int32_t x, int e)
{
    int64_t mask = ((int64_t)1 << e) - 1;
    int64_t rem = (int64_t)x & mask;
    int64_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> e) + (rem > thr ? 1 : 0));
}

static int32_t clamp_out(int64_t v, int32_t lo, int32_t hi)
{
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return (int32_t)v;
}

int32_t qs_requant_apply(int64_t acc, int32_t mult, int8_t shift, int32_t zp,
                         int32_t lo, int32_t hi)
{
    int32_t x = sat32(acc);
    int32_t r;
    int s = shift;
    if (s > QBIN_MAX_SHIFT) /* validated files never get here; keep it defined */
        s = QBIN_MAX_SHIFT;
    if (s < -QBIN_MAX_SHIFT)
        s = -QBIN_MAX_SHIFT;
    if (s < 0)
        r = srdhm(sat32((int64_t)x * ((int64_t)1 << -s)), mult);
    else
        r = rdivpot(srdhm(x, mult), s);
    return clamp_out((int64_t)zp + r, lo, hi);
}

/* qs_requant_apply for many accumulators of one (mult, shift) pair: the
 * shift's clamping and split computed once, and per value the same steps
 * without branches, in int32 lanes wherever a product does not need int64,
 * so that compilers vectorize the loops:
 *   x = sat32(sat32(acc) * 2^left), left = -shift when shift < 0: acc itself
 *       when 2^left * acc fits int32, else the bound on its side
 *   q = srdhm(x, mult): ab + nudge divided by 2^31 truncating, i.e. shifted
 *       after adding 2^31 - 1 to a negative dividend; the quotient fits
 *       int32, so its low 32 bits are those of a logical shift; INT32_MAX
 *       for the one overflowing product INT32_MIN * INT32_MIN
 *   r = rdivpot(q, right), right = shift when shift > 0 (0: r = q)
 *   out = clamp(zp + r, lo, hi)
 * In chunks of x held on the stack: one loop with both steps defeats GCC's
 * vectorizer. tests/test_net.c checks it against qs_requant_apply value by
 * value. */
/* The versions are of a file-local function behind a plain exported one:
 * Clang 14 names the dispatcher of an external target_clones function
 * "f.ifunc", so callers in other files (which see only the prototype) find
 * no symbol "f" and the link fails. */
QS_VECTOR_CLONES static void requant_many(const int64_t *restrict acc, int64_t n, int32_t mult, int8_t shift,
                                          int32_t zp, int32_t lo, int32_t hi, int32_t *restrict out)
{
    enum { CHUNK = 256 };
    int s = shift;
    if (s > QBIN_MAX_SHIFT)
        s = QBIN_MAX_SHIFT;
    if (s < -QBIN_MAX_SHIFT)
        s = -QBIN_MAX_SHIFT;
    const int left = s < 0 ? -s : 0, right = s > 0 ? s : 0;
    const int64_t acc_hi = INT32_MAX >> left, acc_lo = -acc_hi - 1; /* where 2^left * acc fits int32 */
    const int32_t rmask = (int32_t)(((int64_t)1 << right) - 1), rhalf = rmask >> 1;
    const int64_t trunc_bias = ((int64_t)1 << 31) - 1, half = (int64_t)1 << 30;
    const int32_t min_fix = mult == INT32_MIN ? INT32_MIN : 0; /* the x that overflows srdhm, or none */
    int32_t xs[CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        const int len = n - i0 < CHUNK ? (int)(n - i0) : CHUNK;
        for (int i = 0; i < len; i++) {
            const int64_t a = acc[i0 + i];
            xs[i] = a > acc_hi ? INT32_MAX : a < acc_lo ? INT32_MIN : (int32_t)((uint32_t)a << left);
        }
        for (int i = 0; i < len; i++) {
            const int32_t x = xs[i];
            const int64_t ab = (int64_t)x * mult;
            const int64_t v = ab + (ab >= 0 ? half : 1 - half);
            int32_t q = (int32_t)(uint32_t)((uint64_t)(v + (v < 0 ? trunc_bias : 0)) >> 31);
            q = min_fix != 0 && x == min_fix ? INT32_MAX : q;
            const int32_t r = (q >> right) + ((q & rmask) > rhalf + (q < 0));
            const int64_t y = (int64_t)zp + r;
            out[i0 + i] = (int32_t)(y < lo ? lo : y > hi ? hi : y);
        }
    }
}

void qs_requant_many(const int64_t *acc, int64_t n, int32_t mult, int8_t shift, int32_t zp, int32_t lo, int32_t hi,
                     int32_t *out)
{
    requant_many(acc, n, mult, shift, zp, lo, hi, out);
}

int32_t qs_layer_requant(const qs_layer *l, int32_t c, int64_t acc)
{
    if (l->rq.n <= 0)
        return clamp_out((int64_t)l->out_zp + sat32(acc), l->clamp_lo, l->clamp_hi);
    int32_t i = (l->rq.n == 1 || c < 0 || c >= l->rq.n) ? 0 : c;
    return qs_requant_apply(acc, l->rq.mult[i], l->rq.shift[i], l->out_zp,
                            l->clamp_lo, l->clamp_hi);
}

/* ---- big arrays -------------------------------------------------------- */

/* Where the kernel offers transparent huge pages on request (Linux), a big
 * block is placed on 2 MiB boundaries, rounded up to whole huge pages, and
 * advised to use them: first touching it then costs one page fault per
 * 2 MiB instead of one per 4 KiB (on virtual machines a fault is dear). From
 * half a huge page up, rounding wastes less than the faults it saves. Advice
 * only: where it is refused, or elsewhere, this is qs_malloc. Both go through
 * the allocator (models/qs_alloc.h), which is asked for one huge page more. */
void *qs_alloc_big(size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= huge / 2 && bytes <= SIZE_MAX - huge) {
        const size_t rounded = (bytes + huge - 1) / huge * huge;
        void *p = qs_alloc_aligned(huge, rounded);
        if (p) {
            (void)madvise(p, rounded, MADV_HUGEPAGE);
            return p;
        }
    }
#endif
    return qs_malloc(bytes ? bytes : 1);
}

void *qs_calloc_big(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = qs_alloc_big(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

/* ---- bit packing ------------------------------------------------------ */

int64_t qs_tensor_packed_bytes(int64_t count, qs_dtype dt)
{
    int bits = qs_dtype_bits(dt);
    if (count < 0 || bits == 0 || count > QBIN_MAX_ELEMS)
        return -1;
    return (int64_t)pad4(((uint64_t)count * (uint64_t)bits + 7u) / 8u);
}

qs_status qs_tensor_pack(const int32_t *vals, int64_t count, qs_dtype dt, int is_signed,
                         uint8_t *out, size_t out_len, qs_error *err)
{
    int64_t need = qs_tensor_packed_bytes(count, dt);
    if (need < 0)
        return qs_fail(err, QS_ERR_ARG, "pack: bad dtype %d or count %lld", (int)dt,
                       (long long)count);
    if ((uint64_t)need > (uint64_t)out_len || (count > 0 && !vals) || (need > 0 && !out))
        return qs_fail(err, QS_ERR_ARG, "pack: output buffer of %zu bytes, need %lld",
                       out_len, (long long)need);
    int bits = qs_dtype_bits(dt);
    memset(out, 0, (size_t)need);
    for (int64_t i = 0; i < count; i++) {
        int32_t v = vals[i];
        if (!dtype_holds(dt, is_signed, v))
            return qs_fail(err, QS_ERR_ARG, "pack: value %d at element %lld outside %s",
                           (int)v, (long long)i, qs_dtype_name(dt, is_signed));
        uint32_t code;
        if (dt == QS_DT_BIPOLAR)
            code = v > 0 ? 1u : 0u;
        else
            memcpy(&code, &v, sizeof code); /* two's complement bits, masked below */
        if (bits < 32)
            code &= (1u << bits) - 1u;
        if (bits >= 8) {
            uint8_t *p = out + (size_t)i * (size_t)(bits / 8);
            for (int b = 0; b < bits / 8; b++)
                p[b] = (uint8_t)(code >> (8 * b));
        } else {
            uint64_t bit = (uint64_t)i * (uint64_t)bits; /* never straddles a byte: bits divides 8 */
            out[bit / 8] |= (uint8_t)(code << (bit % 8));
        }
    }
    return QS_OK;
}

/* Sub-byte codes (1, 2 or 4 bits, LSB first, never straddling a byte) of
 * count values; sign is 2^(bits-1) for signed values (two's complement:
 * (code ^ sign) - sign sign-extends), 0 for unsigned; bipolar codes 0/1 are
 * -1/+1. Written per byte with the values of a byte side by side so that
 * compilers vectorize it for each constant `bits`. */
static inline void unpack_sub_byte(const uint8_t *in, int64_t count, int bits, int32_t sign, int bipolar,
                                   int32_t *out)
{
    const int per_byte = 8 / bits;
    const uint32_t mask = (1u << bits) - 1u;
    const int64_t full = count / per_byte;
    for (int64_t b = 0; b < full; b++)
        for (int j = 0; j < per_byte; j++) {
            const int32_t code = (int32_t)(((uint32_t)in[b] >> (j * bits)) & mask);
            out[b * per_byte + j] = bipolar ? 2 * code - 1 : (code ^ sign) - sign;
        }
    for (int64_t i = full * per_byte; i < count; i++) {
        const int32_t code = (int32_t)(((uint32_t)in[i / per_byte] >> (i % per_byte * bits)) & mask);
        out[i] = bipolar ? 2 * code - 1 : (code ^ sign) - sign;
    }
}

qs_status qs_tensor_unpack(const uint8_t *in, size_t in_len, int64_t count, qs_dtype dt,
                           int is_signed, int32_t *out, qs_error *err)
{
    int64_t need = qs_tensor_packed_bytes(count, dt);
    if (need < 0 || (uint64_t)need > (uint64_t)in_len || (count > 0 && (!in || !out)))
        return qs_fail(err, QS_ERR_ARG, "unpack: %zu bytes cannot hold %lld %s values", in_len,
                       (long long)count, qs_dtype_name(dt, is_signed));
    int bits = qs_dtype_bits(dt);
    const int bipolar = dt == QS_DT_BIPOLAR;
    const int32_t sign = is_signed && !bipolar && bits < 32 ? (int32_t)1 << (bits - 1) : 0;
    /* the common widths (every weight tensor) in loops without branches */
    switch (bits) {
    case 1: unpack_sub_byte(in, count, 1, sign, bipolar, out); return QS_OK;
    case 2: unpack_sub_byte(in, count, 2, sign, 0, out); return QS_OK;
    case 4: unpack_sub_byte(in, count, 4, sign, 0, out); return QS_OK;
    case 8:
        for (int64_t i = 0; i < count; i++) out[i] = ((int32_t)in[i] ^ sign) - sign;
        return QS_OK;
    default:
        break;
    }
    for (int64_t i = 0; i < count; i++) {
        uint32_t code = 0;
        const uint8_t *p = in + (size_t)i * (size_t)(bits / 8);
        for (int b = 0; b < bits / 8; b++)
            code |= (uint32_t)p[b] << (8 * b);
        int64_t v;
        if (is_signed && bits < 32 && (code >> (bits - 1)) & 1u)
            v = (int64_t)code - ((int64_t)1 << bits);
        else if (is_signed && bits == 32) {
            int32_t s32;
            memcpy(&s32, &code, sizeof s32); /* two's complement reinterpretation */
            v = s32;
        } else
            v = (int64_t)code;
        if (v > INT32_MAX)
            return qs_fail(err, QS_ERR_FORMAT,
                           "element %lld: uint32 value %lld does not fit int32 (limit 2^31-1)",
                           (long long)i, (long long)v);
        out[i] = (int32_t)v;
    }
    return QS_OK;
}

/* ---- messages --------------------------------------------------------- */

/* One diagnostic: "<where>: byte N (<ctx>): <what>"; byte omitted when off < 0. */
static qs_status vfail_at(qs_error *err, const char *where, int64_t off, const char *ctx, const char *fmt,
                          va_list ap) __attribute__((format(printf, 5, 0)));
static qs_status vfail_at(qs_error *err, const char *where, int64_t off, const char *ctx, const char *fmt,
                          va_list ap)
{
    char what[384];
    vsnprintf(what, sizeof what, fmt, ap);
    if (off >= 0)
        return qs_fail(err, QS_ERR_FORMAT, "%s: byte %lld (%s): %s", where, (long long)off,
                       ctx, what);
    return qs_fail(err, QS_ERR_FORMAT, "%s: %s: %s", where, ctx, what);
}

static qs_status fail_at(qs_error *err, const char *where, int64_t off, const char *ctx,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static qs_status fail_at(qs_error *err, const char *where, int64_t off, const char *ctx,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qs_status st = vfail_at(err, where, off, ctx, fmt, ap);
    va_end(ap);
    return st;
}

/* A name is printable ASCII terminated within QS_NAME_MAX. Also used on
 * in-memory structs, so it must not read past the array. */
static int name_ok(const char *name)
{
    const char *nul = memchr(name, 0, QS_NAME_MAX);
    if (!nul)
        return 0;
    for (const char *p = name; p < nul; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return 0;
    return 1;
}

static const char *safe_name(const char *name) { return name_ok(name) ? name : "<bad name>"; }

/* ---- validation ------------------------------------------------------- */

/* Byte offsets of records when validating a freshly parsed file, so that
 * semantic errors still point into the file; NULL for in-memory nets. */
typedef struct {
    const int64_t *tensor_off;
    const int64_t *layer_off;
} qbin_layout;

typedef struct {
    const qs_net *net;
    const char *where;
    qs_error *err;
    const qbin_layout *lay;
} vctx;

static qs_status tensor_fail(const vctx *v, int32_t t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static qs_status tensor_fail(const vctx *v, int32_t t, const char *fmt, ...)
{
    char ctx[96];
    snprintf(ctx, sizeof ctx, "tensor %d '%s'", (int)t, safe_name(v->net->tensors[t].name));
    va_list ap;
    va_start(ap, fmt);
    qs_status st = vfail_at(v->err, v->where, v->lay ? v->lay->tensor_off[t] : -1, ctx, fmt, ap);
    va_end(ap);
    return st;
}

static qs_status layer_fail(const vctx *v, int32_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static qs_status layer_fail(const vctx *v, int32_t i, const char *fmt, ...)
{
    char ctx[112];
    const qs_layer *l = &v->net->layers[i];
    snprintf(ctx, sizeof ctx, "layer %d '%s', %s", (int)i, safe_name(l->name),
             qs_layer_kind_name(l->kind));
    va_list ap;
    va_start(ap, fmt);
    qs_status st = vfail_at(v->err, v->where, v->lay ? v->lay->layer_off[i] : -1, ctx, fmt, ap);
    va_end(ap);
    return st;
}

static qs_status validate_tensor(const vctx *v, int32_t ti)
{
    const qs_tensor *t = &v->net->tensors[ti];
    if (!name_ok(t->name))
        return tensor_fail(v, ti, "name is not printable ASCII terminated within %d bytes",
                           QS_NAME_MAX);
    if ((int)t->dtype < 0 || t->dtype > QS_DT_INT32)
        return tensor_fail(v, ti, "unknown dtype %d", (int)t->dtype);
    if (t->is_signed > 1)
        return tensor_fail(v, ti, "is_signed %u is not 0 or 1", (unsigned)t->is_signed);
    if (t->ndim < 1 || t->ndim > 4)
        return tensor_fail(v, ti, "ndim %u outside 1..4", (unsigned)t->ndim);
    int64_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 1)
            return tensor_fail(v, ti, "shape[%d] = %d must be >= 1", d, (int)t->shape[d]);
        count *= t->shape[d]; /* <= 2^31 * 2^31: no overflow before the check */
        if (count > QBIN_MAX_ELEMS)
            return tensor_fail(v, ti, "more than 2^31-1 elements");
    }
    if (t->count != count)
        return tensor_fail(v, ti, "count %lld does not match the shape (%lld)",
                           (long long)t->count, (long long)count);
    if (count > 0 && !t->data)
        return tensor_fail(v, ti, "no data");
    /* one pass that only looks for a bad value; the message is made by a second */
    int32_t lo, hi;
    qs_int_range(qs_dtype_bits(t->dtype), t->is_signed, &lo, &hi);
    if (t->dtype == QS_DT_BIPOLAR)
        lo = -1, hi = 1; /* and not 0: checked below */
    int32_t outside = 0;
    for (int64_t i = 0; i < count; i++)
        outside |= (t->data[i] < lo) | (t->data[i] > hi) | (t->dtype == QS_DT_BIPOLAR && t->data[i] == 0);
    for (int64_t i = 0; outside && i < count; i++)
        if (!dtype_holds(t->dtype, t->is_signed, t->data[i]))
            return tensor_fail(v, ti, "value %d at element %lld outside the range of %s",
                               (int)t->data[i], (long long)i,
                               qs_dtype_name(t->dtype, t->is_signed));
    if (t->q_n < 0)
        return tensor_fail(v, ti, "negative quantization count %d", (int)t->q_n);
    if (t->q_n > 0) {
        if (t->q_axis == -1) {
            if (t->q_n != 1)
                return tensor_fail(v, ti, "per-tensor quantization with %d entries", (int)t->q_n);
        } else if (t->q_axis < 0 || t->q_axis >= t->ndim) {
            return tensor_fail(v, ti, "quantization axis %d outside -1..%d", (int)t->q_axis,
                               t->ndim - 1);
        } else if (t->q_n != t->shape[t->q_axis]) {
            return tensor_fail(v, ti, "%d quantization entries for axis %d of extent %d",
                               (int)t->q_n, (int)t->q_axis, (int)t->shape[t->q_axis]);
        }
        if (!t->q_scale || !t->q_zp)
            return tensor_fail(v, ti, "quantization arrays missing");
        for (int32_t c = 0; c < t->q_n; c++) {
            if (!isfinite(t->q_scale[c]) || !(t->q_scale[c] > 0.0f))
                return tensor_fail(v, ti, "scale[%d] = %g is not finite and > 0", (int)c,
                                   (double)t->q_scale[c]);
            int zp_ok = t->dtype == QS_DT_BIPOLAR ? t->q_zp[c] == 0
                                                  : dtype_holds(t->dtype, t->is_signed, t->q_zp[c]);
            if (!zp_ok)
                return tensor_fail(v, ti, "zero point[%d] = %d outside the range of %s", (int)c,
                                   (int)t->q_zp[c], qs_dtype_name(t->dtype, t->is_signed));
        }
    }
    return QS_OK;
}

static int kind_has_requant(qs_layer_kind k)
{
    return k == QS_L_CONV || k == QS_L_FC || k == QS_L_AVGPOOL || k == QS_L_GAP ||
           k == QS_L_ADD || k == QS_L_REQUANT || k == QS_L_MUL || k == QS_L_LAYERNORM ||
           k == QS_L_RMSNORM || k == QS_L_MATMUL || k == QS_L_ROPE;
}

/* Window geometry shared by conv and pools: checks parameters and computes
 * the output extent along one axis. */
static qs_status window_axis(const vctx *v, int32_t li, const char *axis, int32_t in, int32_t k,
                             int32_t stride, int32_t dil, int32_t pad0, int32_t pad1,
                             int32_t *out)
{
    if (k < 1 || stride < 1 || dil < 1)
        return layer_fail(v, li, "kernel %s %d, stride %d, dilation %d must all be >= 1", axis,
                          (int)k, (int)stride, (int)dil);
    int64_t extent = (int64_t)dil * (k - 1) + 1;
    if (pad0 < 0 || pad1 < 0 || pad0 >= extent || pad1 >= extent)
        return layer_fail(v, li, "padding %d/%d along %s outside 0..%lld (kernel extent - 1)",
                          (int)pad0, (int)pad1, axis, (long long)(extent - 1));
    int64_t padded = (int64_t)in + pad0 + pad1;
    if (padded < extent)
        return layer_fail(v, li, "kernel extent %lld exceeds the padded input %s %lld",
                          (long long)extent, axis, (long long)padded);
    *out = (int32_t)((padded - extent) / stride + 1);
    return QS_OK;
}

/* Does every window along one axis contain a real input position? (maxpool
 * has no value for an all-padding window). */
static int windows_touch_input(int32_t in, int32_t outn, int32_t k, int32_t stride, int32_t dil,
                               int32_t pad0)
{
    for (int64_t o = 0; o < outn; o++) {
        int hit = 0;
        for (int64_t j = 0; j < k && !hit; j++) {
            int64_t p = o * stride - pad0 + j * dil;
            hit = p >= 0 && p < in;
        }
        if (!hit)
            return 0;
    }
    return 1;
}

static qs_status check_weight(const vctx *v, int32_t li, const qs_layer *l, int ndim,
                              const int32_t *want)
{
    const qs_net *net = v->net;
    if (l->weight < 0 || l->weight >= net->n_tensors)
        return layer_fail(v, li, "weight tensor index %d outside 0..%d", (int)l->weight,
                          (int)net->n_tensors - 1);
    const qs_tensor *w = &net->tensors[l->weight];
    if (w->dtype != QS_DT_BIPOLAR && w->dtype != QS_DT_INT2 && w->dtype != QS_DT_INT4 &&
        w->dtype != QS_DT_INT8)
        return layer_fail(v, li, "weight '%s' has dtype %s; weights are bipolar, int2, int4 or int8",
                          w->name, qs_dtype_name(w->dtype, w->is_signed));
    int same = w->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = w->shape[d] == want[d];
    if (!same) {
        char got[64] = "", exp[64] = "";
        for (int d = 0; d < w->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "[%d]", (int)w->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "[%d]", (int)want[d]);
        return layer_fail(v, li, "weight '%s' shape %s does not match %s implied by the layer",
                          w->name, got, exp);
    }
    for (int32_t c = 0; c < w->q_n; c++)
        if (w->q_zp[c] != 0)
            return layer_fail(v, li, "weight '%s' has zero point %d (weights are symmetric)",
                              w->name, (int)w->q_zp[c]);
    if (l->bias != -1) {
        if (l->bias < 0 || l->bias >= net->n_tensors)
            return layer_fail(v, li, "bias tensor index %d outside -1..%d", (int)l->bias,
                              (int)net->n_tensors - 1);
        const qs_tensor *b = &net->tensors[l->bias];
        if (b->dtype != QS_DT_INT32 || !b->is_signed)
            return layer_fail(v, li, "bias '%s' has dtype %s, not int32", b->name,
                              qs_dtype_name(b->dtype, b->is_signed));
        if (b->ndim != 1 || b->shape[0] != l->out_c)
            return layer_fail(v, li, "bias '%s' is not a vector of %d (out channels)", b->name,
                              (int)l->out_c);
        for (int32_t c = 0; c < b->q_n; c++)
            if (b->q_zp[c] != 0)
                return layer_fail(v, li, "bias '%s' has zero point %d", b->name, (int)b->q_zp[c]);
    }
    return QS_OK;
}

static qs_status expect_shape(const vctx *v, int32_t li, int64_t c, int64_t h, int64_t w)
{
    const qs_layer *l = &v->net->layers[li];
    if (l->out_c != c || l->out_h != h || l->out_w != w)
        return layer_fail(v, li, "output shape %dx%dx%d does not match %lldx%lldx%lld implied "
                          "by its inputs and parameters",
                          (int)l->out_c, (int)l->out_h, (int)l->out_w, (long long)c,
                          (long long)h, (long long)w);
    return QS_OK;
}

/* A 1-D table tensor of 2^bits entries for LUT/SOFTMAX, every entry in [lo, hi]. */
static qs_status check_table(const vctx *v, int32_t li, const qs_layer *l, int bits, int64_t lo,
                             int64_t hi)
{
    const qs_net *net = v->net;
    if (l->weight < 0 || l->weight >= net->n_tensors)
        return layer_fail(v, li, "table tensor index %d outside 0..%d", (int)l->weight,
                          (int)net->n_tensors - 1);
    const qs_tensor *t = &net->tensors[l->weight];
    if (t->dtype == QS_DT_BIPOLAR)
        return layer_fail(v, li, "table '%s' is bipolar; a table holds integers", t->name);
    if (t->ndim != 1 || t->shape[0] != (1 << bits))
        return layer_fail(v, li, "table '%s' has %lld entries in %d dimension(s); a %d-bit input "
                          "needs a vector of %d", t->name, (long long)t->count, (int)t->ndim, bits,
                          1 << bits);
    for (int64_t i = 0; i < t->count; i++)
        if (t->data[i] < lo || t->data[i] > hi)
            return layer_fail(v, li, "table '%s' entry %lld = %d outside %lld..%lld", t->name,
                              (long long)i, (int)t->data[i], (long long)lo, (long long)hi);
    return QS_OK;
}

/* Version-2 kinds (docs/qbin.md, "Version 2: transformer layers"). */
static qs_status validate_v2_layer(const vctx *v, int32_t li)
{
    const qs_net *net = v->net;
    const qs_layer *l = &net->layers[li];
    const qs_layer *in = &net->layers[l->inputs[0]];
    qs_status st;
    switch (l->kind) {
    case QS_L_LUT:
        if (in->out_bits > QS_TABLE_MAX_BITS)
            return layer_fail(v, li, "input has %d bits; a table takes at most %d", (int)in->out_bits,
                              QS_TABLE_MAX_BITS);
        if ((st = check_table(v, li, l, in->out_bits, INT32_MIN, INT32_MAX)) != QS_OK)
            return st;
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_MUL: {
        const qs_layer *b = &net->layers[l->inputs[1]];
        if (l->param != 0 && l->param != QS_MUL_ROWMAX)
            return layer_fail(v, li, "mul param %d: 0 (element-wise) or 1 (times input 2's row absmax)",
                              (int)l->param);
        if (l->param == QS_MUL_ROWMAX) {
            if (b->out_h != in->out_h || b->out_w != in->out_w)
                return layer_fail(v, li, "row-absmax mul: inputs have different positions %dx%d and %dx%d",
                                  (int)in->out_h, (int)in->out_w, (int)b->out_h, (int)b->out_w);
            if (in->out_c > QS_NORM_MAX_ROW || b->out_c > QS_NORM_MAX_ROW)
                return layer_fail(v, li, "row-absmax mul: rows of %d and %d channels; at most %d",
                                  (int)in->out_c, (int)b->out_c, QS_NORM_MAX_ROW);
            return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
        }
        if (b->out_c != in->out_c || b->out_h != in->out_h || b->out_w != in->out_w)
            return layer_fail(v, li, "inputs have different shapes %dx%dx%d and %dx%dx%d",
                              (int)in->out_c, (int)in->out_h, (int)in->out_w, (int)b->out_c,
                              (int)b->out_h, (int)b->out_w);
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    }
    case QS_L_SOFTMAX: {
        const int axis = l->param < 0 ? l->param : QS_SOFTMAX_AXIS(l->param);
        if (axis < 0 || axis > 2)
            return layer_fail(v, li, "softmax axis %d does not exist; the axes of a C x H x W "
                              "tensor are 0, 1 and 2", axis);
        if (l->param & 0xe0)
            return layer_fail(v, li, "softmax param 0x%x: bits 5-7 must be 0 (bits 0-3 axis, bit 4 causal, "
                              "bits 8-30 offset)", (unsigned)l->param);
        if (!QS_SOFTMAX_IS_CAUSAL(l->param) && QS_SOFTMAX_OFFSET(l->param) != 0)
            return layer_fail(v, li, "softmax offset %d without the causal bit", (int)QS_SOFTMAX_OFFSET(l->param));
        if (QS_SOFTMAX_IS_CAUSAL(l->param) && axis == 0)
            return layer_fail(v, li, "a causal softmax runs along axis 1 or 2 (keys), not over channels");
        if (in->out_bits > QS_TABLE_MAX_BITS)
            return layer_fail(v, li, "input has %d bits; softmax's exponent table takes at most %d",
                              (int)in->out_bits, QS_TABLE_MAX_BITS);
        if (l->out_signed || l->out_zp != 0)
            return layer_fail(v, li, "softmax output must be unsigned with zero point 0");
        if ((st = check_table(v, li, l, in->out_bits, 0, QS_SOFTMAX_TABLE_MAX)) != QS_OK)
            return st;
        if (net->tensors[l->weight].data[0] < 1)
            return layer_fail(v, li, "exponent table entry 0 (exp(0)) must be >= 1");
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    }
    case QS_L_ROPE: {
        const int32_t dh = QS_ROPE_HEAD_DIM(l->param), off = QS_ROPE_OFFSET(l->param);
        if (l->param < 0 || dh < 2 || dh % 2 || in->out_c % dh)
            return layer_fail(v, li, "rope head size %d must be even, >= 2 and divide the %d channels",
                              (int)dh, (int)in->out_c);
        if (in->out_w != 1)
            return layer_fail(v, li, "rope input %dx%dx%d: tokens run along H, W must be 1", (int)in->out_c,
                              (int)in->out_h, (int)in->out_w);
        if (l->weight < 0 || l->weight >= net->n_tensors)
            return layer_fail(v, li, "table tensor index %d outside 0..%d", (int)l->weight,
                              (int)net->n_tensors - 1);
        const qs_tensor *t = &net->tensors[l->weight];
        if ((t->dtype != QS_DT_INT16 && t->dtype != QS_DT_INT32) || !t->is_signed || t->ndim != 3 ||
            t->shape[1] != dh / 2 || t->shape[2] != 2)
            return layer_fail(v, li, "rope table '%s' must be signed int16/int32 of shape [positions][%d][2]",
                              t->name, (int)dh / 2);
        if (t->shape[0] < (int64_t)in->out_h + off)
            return layer_fail(v, li, "rope table '%s' holds %lld positions; tokens %d at offset %d need %lld",
                              t->name, (long long)t->shape[0], (int)in->out_h, (int)off,
                              (long long)in->out_h + off);
        for (int64_t i = 0; i < t->count; i++)
            if (t->data[i] < -(1 << QS_ROPE_FRAC_BITS) || t->data[i] > (1 << QS_ROPE_FRAC_BITS))
                return layer_fail(v, li, "rope table '%s' entry %lld = %d outside -16384..16384 (Q14 cos/sin)",
                                  t->name, (long long)i, (int)t->data[i]);
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    }
    case QS_L_DYNQUANT:
        if (!l->out_signed || l->out_zp != 0 || l->out_bits < 2)
            return layer_fail(v, li, "dynquant output must be signed, at least 2 bits, zero point 0 "
                              "(it is %s %d-bit, zero point %d)", l->out_signed ? "signed" : "unsigned",
                              (int)l->out_bits, (int)l->out_zp);
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_LAYERNORM:
    case QS_L_RMSNORM:
        if (in->out_c > QS_NORM_MAX_ROW)
            return layer_fail(v, li, "normalizes rows of %d channels; at most %d", (int)in->out_c,
                              QS_NORM_MAX_ROW);
        if (l->bias != -1) {
            if (l->bias < 0 || l->bias >= net->n_tensors)
                return layer_fail(v, li, "bias tensor index %d outside -1..%d", (int)l->bias,
                                  (int)net->n_tensors - 1);
            const qs_tensor *b = &net->tensors[l->bias];
            if (b->dtype != QS_DT_INT32 || !b->is_signed || b->ndim != 1 || b->shape[0] != l->out_c)
                return layer_fail(v, li, "bias '%s' is not an int32 vector of %d (channels)", b->name,
                                  (int)l->out_c);
        }
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_MATMUL: {
        const qs_layer *b = &net->layers[l->inputs[1]];
        if (l->param < 0 || l->param > 7)
            return layer_fail(v, li, "matmul param %d: bit 0 transposes A, bit 1 B, bit 2 groups; 0..7",
                              (int)l->param);
        qs_matmul_dims d = qs_matmul_dims_of(net, li);
        int32_t kb = (l->param & QS_MATMUL_TRANS_B) ? b->out_w : b->out_h;
        if (!(l->param & QS_MATMUL_GROUPED) && b->out_c != in->out_c)
            return layer_fail(v, li, "A has %d matrices (channels), B %d: the batch must match",
                              (int)in->out_c, (int)b->out_c);
        if ((l->param & QS_MATMUL_GROUPED) && in->out_c % b->out_c != 0 && b->out_c % in->out_c != 0)
            return layer_fail(v, li, "grouped: A has %d matrices (heads), B %d: one must be a multiple of the "
                              "other", (int)in->out_c, (int)b->out_c);
        if (kb != d.K)
            return layer_fail(v, li, "mismatched shapes: op(A) is %d x %d, op(B) is %d x %d (A %dx%dx%d, "
                              "B %dx%dx%d, param %d)", (int)d.M, (int)d.K, (int)kb, (int)d.N,
                              (int)in->out_c, (int)in->out_h, (int)in->out_w, (int)b->out_c,
                              (int)b->out_h, (int)b->out_w, (int)l->param);
        return expect_shape(v, li, d.batch, d.M, d.N);
    }
    case QS_L_EMBED: {
        if (l->inputs[0] != 0 || in->out_signed || in->out_zp != 0 || in->out_c != 1 || in->out_w != 1)
            return layer_fail(v, li, "embed input must be the network input (layer 0) of unsigned token ids "
                              "with zero point 0, shape 1 x T x 1 (is layer %d, %s%d zp %d, %dx%dx%d)",
                              (int)l->inputs[0], in->out_signed ? "int" : "uint", (int)in->out_bits,
                              (int)in->out_zp, (int)in->out_c, (int)in->out_h, (int)in->out_w);
        if (l->weight < 0 || l->weight >= net->n_tensors)
            return layer_fail(v, li, "table tensor index %d outside 0..%d", (int)l->weight,
                              (int)net->n_tensors - 1);
        const qs_tensor *t = &net->tensors[l->weight];
        /* [vocab][hidden], or [vocab][hidden][1][1]: an LM head's 1x1 conv weight, tied (as GPT-2's) */
        if (t->dtype == QS_DT_BIPOLAR || (t->ndim != 2 && !(t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)))
            return layer_fail(v, li, "embedding table '%s' must be an integer tensor [vocab][hidden] "
                              "or [vocab][hidden][1][1] (is %s, %d dimension(s))", t->name,
                              qs_dtype_name(t->dtype, t->is_signed), (int)t->ndim);
        if (l->param < 0 || (l->bias == -1 && l->param != 0))
            return layer_fail(v, li, "embed param %d: the position of token 0, only with a position table",
                              (int)l->param);
        if (l->bias != -1) { /* learned position embedding (GPT-2's wpe): rows t + param */
            if (l->bias < 0 || l->bias >= net->n_tensors)
                return layer_fail(v, li, "position table index %d outside -1..%d", (int)l->bias,
                                  (int)net->n_tensors - 1);
            const qs_tensor *pt = &net->tensors[l->bias];
            if (pt->dtype == QS_DT_BIPOLAR || pt->ndim != 2 || pt->shape[1] != t->shape[1])
                return layer_fail(v, li, "position table '%s' must be an integer tensor [positions][%d]", pt->name,
                                  (int)t->shape[1]);
            if ((int64_t)pt->shape[0] < (int64_t)in->out_h + l->param)
                return layer_fail(v, li, "position table '%s' holds %d positions; tokens %d at position %d need %lld",
                                  pt->name, (int)pt->shape[0], (int)in->out_h, (int)l->param,
                                  (long long)in->out_h + l->param);
        }
        return expect_shape(v, li, t->shape[1], in->out_h, 1);
    }
    case QS_L_ARGMAX:
        if (l->out_signed || l->out_zp != 0 || l->clamp_lo != 0 || l->clamp_hi < in->out_c - 1)
            return layer_fail(v, li, "argmax over %d channels needs an unsigned output with zero point 0 "
                              "and a clamp [0, >= %d] (is %s%d zp %d clamp [%d, %d])", (int)in->out_c,
                              (int)in->out_c - 1, l->out_signed ? "int" : "uint", (int)l->out_bits,
                              (int)l->out_zp, (int)l->clamp_lo, (int)l->clamp_hi);
        return expect_shape(v, li, 1, in->out_h, in->out_w);
    case QS_L_KVCACHE: /* docs/decode.md: identity over the prompt; param = the maximum context */
        if (l->param < 1)
            return layer_fail(v, li, "kvcache maximum context %d must be >= 1", (int)l->param);
        if (in->out_w > l->param)
            return layer_fail(v, li, "a KV cache longer than its maximum: the prompt's %d tokens (W of %dx%dx%d) "
                              "exceed the maximum context %d", (int)in->out_w, (int)in->out_c, (int)in->out_h,
                              (int)in->out_w, (int)l->param);
        if (l->out_bits != in->out_bits || l->out_signed != in->out_signed || l->out_zp != in->out_zp ||
            l->clamp_lo > in->clamp_lo || l->clamp_hi < in->clamp_hi)
            return layer_fail(v, li, "a kvcache keeps the input's bits, signedness and zero point, "
                              "and its clamp must contain the input's [%d, %d]",
                              (int)in->clamp_lo, (int)in->clamp_hi);
        for (int32_t j = li + 1; j < net->n_layers; j++)
            for (int32_t k = 0; k < net->layers[j].n_inputs; k++)
                if (net->layers[j].inputs[k] == li && net->layers[j].kind != QS_L_MATMUL)
                    return layer_fail(v, li, "a kvcache feeds only matmuls; layer %d '%s' is a %s", (int)j,
                                      safe_name(net->layers[j].name), qs_layer_kind_name(net->layers[j].kind));
        if (net->output == li)
            return layer_fail(v, li, "a kvcache cannot be the network's output");
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_RESHAPE:
        if ((int64_t)l->out_c * l->out_h * l->out_w != (int64_t)in->out_c * in->out_h * in->out_w)
            return layer_fail(v, li, "reshape %dx%dx%d -> %dx%dx%d changes the element count",
                              (int)in->out_c, (int)in->out_h, (int)in->out_w, (int)l->out_c,
                              (int)l->out_h, (int)l->out_w);
        if (l->out_bits != in->out_bits || l->out_signed != in->out_signed || l->out_zp != in->out_zp ||
            l->clamp_lo > in->clamp_lo || l->clamp_hi < in->clamp_hi)
            return layer_fail(v, li, "a reshape keeps the input's bits, signedness and zero point, "
                              "and its clamp must contain the input's [%d, %d]",
                              (int)in->clamp_lo, (int)in->clamp_hi);
        return QS_OK;
    default:
        return QS_OK;
    }
}

static qs_status validate_layer(const vctx *v, int32_t li)
{
    const qs_net *net = v->net;
    const qs_layer *l = &net->layers[li];
    qs_status st;

    if (!name_ok(l->name))
        return layer_fail(v, li, "name is not printable ASCII terminated within %d bytes",
                          QS_NAME_MAX);
    if ((int)l->kind < 0 || l->kind >= QS_L_KIND_COUNT)
        return layer_fail(v, li, "unknown layer kind %d", (int)l->kind);
    if ((li == 0) != (l->kind == QS_L_INPUT))
        return layer_fail(v, li, li == 0 ? "layer 0 must be the input"
                                         : "only layer 0 may be an input");

    /* inputs: count per kind, and only earlier layers (this is what rules out cycles) */
    int32_t lo_n = 1, hi_n = 1;
    if (l->kind == QS_L_INPUT)
        lo_n = hi_n = 0;
    else if (l->kind == QS_L_ADD || l->kind == QS_L_MUL || l->kind == QS_L_MATMUL)
        lo_n = hi_n = 2;
    else if (l->kind == QS_L_CONCAT)
        hi_n = QS_MAX_INPUTS;
    if (l->n_inputs < lo_n || l->n_inputs > hi_n)
        return layer_fail(v, li, "%d inputs; a %s takes %d..%d", (int)l->n_inputs,
                          qs_layer_kind_name(l->kind), (int)lo_n, (int)hi_n);
    for (int32_t k = 0; k < l->n_inputs; k++)
        if (l->inputs[k] < 0 || l->inputs[k] >= li)
            return layer_fail(v, li, "input %d refers to layer %d; inputs must be earlier layers "
                              "(0..%d)", (int)k, (int)l->inputs[k], (int)li - 1);

    /* output shape and quantization */
    /* each factor is below 2^31, so c*h fits int64; test it before multiplying by w */
    if (l->out_c < 1 || l->out_h < 1 || l->out_w < 1 ||
        (int64_t)l->out_c * l->out_h > QBIN_MAX_ELEMS ||
        (int64_t)l->out_c * l->out_h * l->out_w > QBIN_MAX_ELEMS)
        return layer_fail(v, li, "output shape %dx%dx%d: each >= 1, at most 2^31-1 elements",
                          (int)l->out_c, (int)l->out_h, (int)l->out_w);
    if (l->out_bits < 1 || l->out_bits > 16)
        return layer_fail(v, li, "out_bits %u outside 1..16", (unsigned)l->out_bits);
    if (l->out_signed > 1)
        return layer_fail(v, li, "out_signed %u is not 0 or 1", (unsigned)l->out_signed);
    if (l->out_bits == 1 && l->out_signed)
        return layer_fail(v, li, "1-bit activations must be unsigned");
    int32_t rlo, rhi;
    qs_int_range(l->out_bits, l->out_signed, &rlo, &rhi);
    if (l->out_zp < rlo || l->out_zp > rhi)
        return layer_fail(v, li, "output zero point %d outside %d..%d", (int)l->out_zp, (int)rlo,
                          (int)rhi);
    if (l->clamp_lo > l->clamp_hi || l->clamp_lo < rlo || l->clamp_hi > rhi)
        return layer_fail(v, li, "clamp [%d, %d] must be ordered and inside %d..%d",
                          (int)l->clamp_lo, (int)l->clamp_hi, (int)rlo, (int)rhi);
    if ((int)l->act < 0 || l->act > QS_ACT_CLIP)
        return layer_fail(v, li, "unknown activation %d", (int)l->act);
    if (!isfinite(l->out_scale) || l->out_scale < 0.0f)
        return layer_fail(v, li, "output scale %g is not finite and >= 0", (double)l->out_scale);

    /* requantization */
    if (l->rq.n < 0)
        return layer_fail(v, li, "negative requant count %d", (int)l->rq.n);
    if (!kind_has_requant(l->kind) && l->rq.n != 0)
        return layer_fail(v, li, "a %s has no requantization, but %d multipliers are given",
                          qs_layer_kind_name(l->kind), (int)l->rq.n);
    if (l->rq.n != 0 && l->rq.n != 1 && l->rq.n != l->out_c)
        return layer_fail(v, li, "%d requant multipliers; must be 0, 1 or %d (out channels)",
                          (int)l->rq.n, (int)l->out_c);
    if (l->rq.n > 0 && (!l->rq.mult || !l->rq.shift))
        return layer_fail(v, li, "requant arrays missing");
    for (int32_t c = 0; c < l->rq.n; c++) {
        if (l->rq.mult[c] < 0)
            return layer_fail(v, li, "requant multiplier[%d] = %d is negative", (int)c,
                              (int)l->rq.mult[c]);
        if (l->rq.shift[c] < -QBIN_MAX_SHIFT || l->rq.shift[c] > QBIN_MAX_SHIFT)
            return layer_fail(v, li, "requant shift[%d] = %d outside -31..31", (int)c,
                              (int)l->rq.shift[c]);
    }
    int has_w = l->kind == QS_L_CONV || l->kind == QS_L_FC || l->kind == QS_L_LUT ||
                l->kind == QS_L_SOFTMAX || l->kind == QS_L_ROPE || l->kind == QS_L_EMBED;
    int has_b = l->kind == QS_L_CONV || l->kind == QS_L_FC || l->kind == QS_L_LAYERNORM ||
                l->kind == QS_L_RMSNORM || l->kind == QS_L_EMBED;
    if ((!has_w && l->weight != -1) || (!has_b && l->bias != -1))
        return layer_fail(v, li, "a %s has no %s, but refers to tensors %d/%d",
                          qs_layer_kind_name(l->kind), has_w ? "bias" : has_b ? "weight" : "weight/bias",
                          (int)l->weight, (int)l->bias);
    if (l->kind != QS_L_SOFTMAX && l->kind != QS_L_MATMUL && l->kind != QS_L_MUL && l->kind != QS_L_ROPE &&
        l->kind != QS_L_EMBED && l->kind != QS_L_KVCACHE && l->param != 0)
        return layer_fail(v, li, "a %s has no parameter, but param is %d",
                          qs_layer_kind_name(l->kind), (int)l->param);
    if (qs_layer_kind_is_v2(l->kind))
        return validate_v2_layer(v, li);

    if (l->kind == QS_L_INPUT)
        return QS_OK;

    const qs_layer *in = &net->layers[l->inputs[0]];
    int32_t oh = 0, ow = 0;
    switch (l->kind) {
    case QS_L_CONV: {
        if ((st = window_axis(v, li, "height", in->out_h, l->kh, l->stride_h, l->dil_h, l->pad_t,
                              l->pad_b, &oh)) != QS_OK ||
            (st = window_axis(v, li, "width", in->out_w, l->kw, l->stride_w, l->dil_w, l->pad_l,
                              l->pad_r, &ow)) != QS_OK)
            return st;
        if (l->groups < 1 || in->out_c % l->groups != 0 || l->out_c % l->groups != 0)
            return layer_fail(v, li, "groups %d must be >= 1 and divide input channels %d and "
                              "output channels %d", (int)l->groups, (int)in->out_c, (int)l->out_c);
        if ((st = expect_shape(v, li, l->out_c, oh, ow)) != QS_OK)
            return st;
        int32_t want[4] = {l->out_c, in->out_c / l->groups, l->kh, l->kw};
        return check_weight(v, li, l, 4, want);
    }
    case QS_L_FC: {
        int64_t k = (int64_t)in->out_c * in->out_h * in->out_w; /* <= 2^31-1, checked on input */
        if ((st = expect_shape(v, li, l->out_c, 1, 1)) != QS_OK)
            return st;
        int32_t want[2] = {l->out_c, (int32_t)k};
        return check_weight(v, li, l, 2, want);
    }
    case QS_L_MAXPOOL:
    case QS_L_AVGPOOL:
        if ((st = window_axis(v, li, "height", in->out_h, l->kh, l->stride_h, l->dil_h, l->pad_t,
                              l->pad_b, &oh)) != QS_OK ||
            (st = window_axis(v, li, "width", in->out_w, l->kw, l->stride_w, l->dil_w, l->pad_l,
                              l->pad_r, &ow)) != QS_OK)
            return st;
        if ((st = expect_shape(v, li, in->out_c, oh, ow)) != QS_OK)
            return st;
        if (l->kind == QS_L_MAXPOOL) {
            if (!windows_touch_input(in->out_h, oh, l->kh, l->stride_h, l->dil_h, l->pad_t) ||
                !windows_touch_input(in->out_w, ow, l->kw, l->stride_w, l->dil_w, l->pad_l))
                return layer_fail(v, li, "a pooling window lies entirely in the padding");
            if (l->out_zp != in->out_zp)
                return layer_fail(v, li, "output zero point %d differs from the input's %d "
                                  "(max pooling keeps the quantization)",
                                  (int)l->out_zp, (int)in->out_zp);
        }
        return QS_OK;
    case QS_L_GAP:
        return expect_shape(v, li, in->out_c, 1, 1);
    case QS_L_ADD: {
        const qs_layer *b = &net->layers[l->inputs[1]];
        if (b->out_c != in->out_c || b->out_h != in->out_h || b->out_w != in->out_w)
            return layer_fail(v, li, "inputs have different shapes %dx%dx%d and %dx%dx%d",
                              (int)in->out_c, (int)in->out_h, (int)in->out_w, (int)b->out_c,
                              (int)b->out_h, (int)b->out_w);
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    }
    case QS_L_CONCAT: {
        int64_t c = 0;
        for (int32_t k = 0; k < l->n_inputs; k++) {
            const qs_layer *x = &net->layers[l->inputs[k]];
            if (x->out_h != in->out_h || x->out_w != in->out_w)
                return layer_fail(v, li, "input %d is %dx%d, input 0 is %dx%d (H x W must match)",
                                  (int)k, (int)x->out_h, (int)x->out_w, (int)in->out_h,
                                  (int)in->out_w);
            if (x->out_zp != l->out_zp)
                return layer_fail(v, li, "input %d has zero point %d, the output %d (concat "
                                  "copies values)", (int)k, (int)x->out_zp, (int)l->out_zp);
            c += x->out_c;
        }
        return expect_shape(v, li, c, in->out_h, in->out_w);
    }
    case QS_L_ACT:
    case QS_L_FLATTEN:
        if (l->out_zp != in->out_zp)
            return layer_fail(v, li, "output zero point %d differs from the input's %d",
                              (int)l->out_zp, (int)in->out_zp);
        if (l->kind == QS_L_FLATTEN) {
            /* A flatten is a view of its input's bytes (no hardware pass), so its clamp must
             * leave every value the input can hold unchanged: clamp(v, lo, hi) == v. */
            if (l->clamp_lo > in->clamp_lo || l->clamp_hi < in->clamp_hi)
                return layer_fail(v, li, "clamp [%d, %d] is narrower than its input's [%d, %d]; a "
                                  "flatten is a view and cannot clamp (clamp with an act layer "
                                  "before it)", (int)l->clamp_lo, (int)l->clamp_hi,
                                  (int)in->clamp_lo, (int)in->clamp_hi);
            return expect_shape(v, li, (int64_t)in->out_c * in->out_h * in->out_w, 1, 1);
        }
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_REQUANT:
        return expect_shape(v, li, in->out_c, in->out_h, in->out_w);
    case QS_L_INPUT:
    case QS_L_KIND_COUNT:
    default: /* version-2 kinds returned above */
        break;
    }
    return QS_OK;
}

static qs_status validate_impl(const qs_net *net, const char *where, qs_error *err,
                               const qbin_layout *lay)
{
    if (!where)
        where = "net";
    if (!net)
        return qs_fail(err, QS_ERR_ARG, "%s: no network", where);
    vctx v = {net, where, err, lay};
    if (!name_ok(net->name))
        return fail_at(err, where, -1, "net", "name is not printable ASCII terminated within %d "
                       "bytes", QS_NAME_MAX);
    if (net->n_tensors < 0 || (net->n_tensors > 0 && !net->tensors))
        return fail_at(err, where, -1, "net", "bad tensor count %d or no tensor array",
                       (int)net->n_tensors);
    if (net->n_layers < 1 || !net->layers)
        return fail_at(err, where, -1, "net", "no layers (%d); layer 0 must be the input",
                       (int)net->n_layers);
    if (net->output < 0 || net->output >= net->n_layers)
        return fail_at(err, where, -1, "net", "output layer %d outside 0..%d", (int)net->output,
                       (int)net->n_layers - 1);
    qs_status st;
    for (int32_t t = 0; t < net->n_tensors; t++)
        if ((st = validate_tensor(&v, t)) != QS_OK)
            return st;
    for (int32_t i = 0; i < net->n_layers; i++)
        if ((st = validate_layer(&v, i)) != QS_OK)
            return st;
    return QS_OK;
}

qs_status qs_net_validate(const qs_net *net, const char *where, qs_error *err)
{
    return validate_impl(net, where, err, NULL);
}

int64_t qs_layer_macs(const qs_net *net, int32_t li)
{
    if (!net || li < 0 || li >= net->n_layers)
        return 0;
    const qs_layer *l = &net->layers[li];
    if (l->n_inputs < 1 || l->inputs[0] < 0 || l->inputs[0] >= net->n_layers)
        return 0;
    const qs_layer *in = &net->layers[l->inputs[0]];
    int64_t outs = (int64_t)l->out_c * l->out_h * l->out_w;
    if (l->kind == QS_L_CONV && l->groups > 0)
        return outs * (in->out_c / l->groups) * l->kh * l->kw;
    if (l->kind == QS_L_FC)
        return outs * ((int64_t)in->out_c * in->out_h * in->out_w);
    if (l->kind == QS_L_MATMUL && l->n_inputs == 2 && l->inputs[1] >= 0 && l->inputs[1] < net->n_layers)
        return outs * ((l->param & 1) ? in->out_h : in->out_w);
    return 0;
}

/* ---- destroy ---------------------------------------------------------- */

void qs_net_destroy(qs_net *net)
{
    if (!net)
        return;
    if (net->tensors) {
        for (int32_t t = 0; t < net->n_tensors; t++) {
            qs_free(net->tensors[t].data);
            qs_free(net->tensors[t].q_scale);
            qs_free(net->tensors[t].q_zp);
        }
    }
    if (net->layers) {
        for (int32_t i = 0; i < net->n_layers; i++) {
            qs_free(net->layers[i].rq.mult);
            qs_free(net->layers[i].rq.shift);
        }
    }
    qs_free(net->tensors);
    qs_free(net->layers);
    qs_free(net);
}

/* ---- parse ------------------------------------------------------------ */

typedef struct {
    const uint8_t *b;
    uint64_t len;
    const char *where;
    qs_error *err;
} pctx;

/* Read a name field: printable, NUL-terminated, zero after the NUL (canonical). */
static qs_status read_name(const pctx *p, uint64_t off, const char *ctx, char *dst)
{
    const uint8_t *s = p->b + off;
    const uint8_t *nul = memchr(s, 0, QS_NAME_MAX);
    if (!nul)
        return fail_at(p->err, p->where, (int64_t)off, ctx, "name not NUL-terminated within %d "
                       "bytes", QS_NAME_MAX);
    for (const uint8_t *q = s; q < nul; q++)
        if (*q < 0x20 || *q > 0x7e)
            return fail_at(p->err, p->where, (int64_t)(off + (uint64_t)(q - s)), ctx,
                           "name has a non-printable byte 0x%02x", *q);
    for (const uint8_t *q = nul; q < s + QS_NAME_MAX; q++)
        if (*q)
            return fail_at(p->err, p->where, (int64_t)(off + (uint64_t)(q - s)), ctx,
                           "non-zero byte after the name's terminator");
    memcpy(dst, s, QS_NAME_MAX);
    return QS_OK;
}

typedef struct {
    uint32_t kind, crc;
    uint64_t off, size;
} qbin_section;

static qs_status parse_header(const pctx *p, qbin_section *net_s, qbin_section *ten_s,
                              qbin_section *lay_s)
{
    const uint8_t *b = p->b;
    if (p->len < QBIN_HEADER_SIZE)
        return fail_at(p->err, p->where, (int64_t)p->len, "header",
                       "file truncated: %llu bytes, the header alone is %u",
                       (unsigned long long)p->len, QBIN_HEADER_SIZE);
    if (memcmp(b, qbin_magic, sizeof qbin_magic) != 0)
        return fail_at(p->err, p->where, 0, "header", "bad magic (not a .qbin file)");
    uint32_t version = rd_u32(b + 8);
    if (version < 1 || version > QBIN_VERSION)
        return fail_at(p->err, p->where, 8, "header", "unsupported version %u (this reader "
                       "implements 1..%u)", version, QBIN_VERSION);
    if (rd_u32(b + 12) != 0)
        return fail_at(p->err, p->where, 12, "header", "flags 0x%08x must be 0 in version %u",
                       rd_u32(b + 12), version);
    uint64_t fsize = rd_u64(b + 16);
    if (fsize != p->len)
        return fail_at(p->err, p->where, 16, "header", "file size field says %llu bytes, have %llu "
                       "(truncated or padded file)", (unsigned long long)fsize,
                       (unsigned long long)p->len);
    uint32_t n = rd_u32(b + 24);
    if (n < 1 || n > QBIN_MAX_SECTIONS)
        return fail_at(p->err, p->where, 24, "header", "section count %u outside 1..%u", n,
                       QBIN_MAX_SECTIONS);
    uint64_t table_end = QBIN_HEADER_SIZE + (uint64_t)n * QBIN_ENTRY_SIZE;
    if (table_end > p->len)
        return fail_at(p->err, p->where, (int64_t)p->len, "section table",
                       "file truncated inside the section table (%u entries)", n);
    uint32_t crc = crc_update(crc_update(0, b, 28), b + QBIN_HEADER_SIZE, table_end - QBIN_HEADER_SIZE);
    if (crc != rd_u32(b + 28))
        return fail_at(p->err, p->where, 28, "header", "header CRC mismatch (stored 0x%08x, "
                       "computed 0x%08x)", rd_u32(b + 28), crc);

    qbin_section s[QBIN_MAX_SECTIONS];
    int have_net = 0, have_ten = 0, have_lay = 0;
    uint32_t last_required = 0; /* kind of the last required section in the table */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = b + QBIN_HEADER_SIZE + (uint64_t)i * QBIN_ENTRY_SIZE;
        int64_t eoff = (int64_t)(QBIN_HEADER_SIZE + (uint64_t)i * QBIN_ENTRY_SIZE);
        char ctx[48];
        snprintf(ctx, sizeof ctx, "section table entry %u", i);
        s[i].kind = rd_u32(e);
        s[i].crc = rd_u32(e + 4);
        s[i].off = rd_u64(e + 8);
        s[i].size = rd_u64(e + 16);
        if (s[i].off % 8 != 0 || s[i].off < table_end || s[i].off > p->len ||
            s[i].size > p->len - s[i].off)
            return fail_at(p->err, p->where, eoff, ctx, "section [%llu, +%llu) is misaligned or "
                           "outside the file body [%llu, %llu)", (unsigned long long)s[i].off,
                           (unsigned long long)s[i].size, (unsigned long long)table_end,
                           (unsigned long long)p->len);
        int *seen = NULL;
        qbin_section *dst = NULL;
        if (s[i].kind == QBIN_SECT_NET) {
            seen = &have_net;
            dst = net_s;
        } else if (s[i].kind == QBIN_SECT_TENSORS) {
            seen = &have_ten;
            dst = ten_s;
        } else if (s[i].kind == QBIN_SECT_LAYERS) {
            seen = &have_lay;
            dst = lay_s;
        } else if (!(s[i].kind & QBIN_SECT_OPTIONAL)) {
            return fail_at(p->err, p->where, eoff, ctx, "unknown required section kind %u",
                           s[i].kind);
        }
        if (seen) {
            if (*seen)
                return fail_at(p->err, p->where, eoff, ctx, "duplicate section kind %u",
                               s[i].kind);
            /* one order only (NET, TENSORS, LAYERS), so that every file without an
             * optional section saves back to its own bytes */
            if (s[i].kind < last_required)
                return fail_at(p->err, p->where, eoff, ctx, "section kind %u after kind %u: the "
                               "required sections come in the order net (1), tensors (2), "
                               "layers (3)", s[i].kind, last_required);
            last_required = s[i].kind;
            *seen = 1;
            *dst = s[i];
        }
        /* the table lists the sections in the order they are stored */
        if (i > 0 && s[i].off < s[i - 1].off)
            return fail_at(p->err, p->where, eoff, ctx, "section at byte %llu is listed after "
                           "the one at byte %llu; the table lists sections in file order",
                           (unsigned long long)s[i].off, (unsigned long long)s[i - 1].off);
        if (crc_update(0, b + s[i].off, s[i].size) != s[i].crc)
            return fail_at(p->err, p->where, (int64_t)s[i].off, ctx, "section CRC mismatch "
                           "(kind %u, %llu bytes): the file is corrupt", s[i].kind,
                           (unsigned long long)s[i].size);
    }
    if (!have_net || !have_ten || !have_lay)
        return fail_at(p->err, p->where, QBIN_HEADER_SIZE, "section table",
                       "missing required section(s):%s%s%s", have_net ? "" : " net",
                       have_ten ? "" : " tensors", have_lay ? "" : " layers");

    /* The table is in file order (checked above): require no overlap and zero
     * bytes in every gap, so that no byte of the file escapes checking. */
    uint64_t pos = table_end;
    for (uint32_t i = 0; i <= n; i++) {
        uint64_t next = i < n ? s[i].off : p->len;
        if (next < pos)
            return fail_at(p->err, p->where, (int64_t)next, "section table",
                           "sections overlap at byte %llu", (unsigned long long)next);
        for (uint64_t k = pos; k < next; k++)
            if (b[k])
                return fail_at(p->err, p->where, (int64_t)k, "padding",
                               "non-zero byte outside every section");
        /* canonical layout: each section at the first multiple of 8 after the one
         * before, and the file ends where the last section does, so that a file
         * that loads saves back to the same bytes */
        uint64_t want = i < n ? (pos + 7) & ~(uint64_t)7 : pos;
        if (next != want)
            return fail_at(p->err, p->where, (int64_t)want, i < n ? "padding" : "end of file",
                           i < n ? "%llu bytes of padding before the section at byte %llu; a "
                                   "canonical file has fewer than 8"
                                 : "%llu bytes after the last section (which ends at byte %llu); "
                                   "a canonical file ends there",
                           (unsigned long long)(next - pos),
                           (unsigned long long)(i < n ? next : pos));
        if (i < n)
            pos = s[i].off + s[i].size;
    }
    return QS_OK;
}

static qs_status parse_tensor(const pctx *p, uint64_t sec_off, uint64_t sec_end, uint64_t *cur,
                              int32_t ti, qs_tensor *t)
{
    uint64_t off = *cur;
    char ctx[96];
    snprintf(ctx, sizeof ctx, "tensors section, tensor %d", (int)ti);
    if (sec_end - off < QBIN_TENSOR_FIXED)
        return fail_at(p->err, p->where, (int64_t)off, ctx, "section ends inside the tensor "
                       "record (%llu bytes left of %u)", (unsigned long long)(sec_end - off),
                       QBIN_TENSOR_FIXED);
    qs_status st = read_name(p, off, ctx, t->name);
    if (st != QS_OK)
        return st;
    snprintf(ctx, sizeof ctx, "tensors section, tensor %d '%s'", (int)ti, t->name);
    const uint8_t *r = p->b + off;
    uint8_t dt = r[48];
    if (dt > QS_DT_INT32)
        return fail_at(p->err, p->where, (int64_t)off + 48, ctx, "unknown dtype %u", dt);
    if (r[49] > 1)
        return fail_at(p->err, p->where, (int64_t)off + 49, ctx, "is_signed %u is not 0 or 1",
                       r[49]);
    if (r[50] < 1 || r[50] > 4)
        return fail_at(p->err, p->where, (int64_t)off + 50, ctx, "ndim %u outside 1..4", r[50]);
    if (r[51] != 0 || rd_u32(r + 76) != 0)
        return fail_at(p->err, p->where, (int64_t)off + (r[51] ? 51 : 76), ctx,
                       "reserved field is not 0");
    t->dtype = (qs_dtype)dt;
    t->is_signed = r[49];
    t->ndim = r[50];
    int bits = qs_dtype_bits(t->dtype);
    uint64_t room = sec_end - off - QBIN_TENSOR_FIXED;
    int64_t count = 1;
    for (int d = 0; d < 4; d++) {
        int32_t e = rd_i32(r + 52 + 4 * d);
        if (d >= t->ndim ? e != 1 : e < 1)
            return fail_at(p->err, p->where, (int64_t)off + 52 + 4 * d, ctx,
                           d >= t->ndim ? "shape[%d] = %d beyond ndim must be 1"
                                        : "shape[%d] = %d must be >= 1", d, (int)e);
        t->shape[d] = e;
        count *= e;
        /* bound by the bytes present before anything is allocated */
        if (count > QBIN_MAX_ELEMS || (uint64_t)count * (uint64_t)bits > room * 8u)
            return fail_at(p->err, p->where, (int64_t)off + 52 + 4 * d, ctx,
                           "shape needs more data than the %llu bytes left in the section",
                           (unsigned long long)room);
    }
    t->count = count;
    uint32_t qn = rd_u32(r + 68);
    int32_t qaxis = rd_i32(r + 72);
    if (qn > room / 8u)
        return fail_at(p->err, p->where, (int64_t)off + 68, ctx, "%u quantization entries do not "
                       "fit in the %llu bytes left", qn, (unsigned long long)room);
    if (qn == 0 ? qaxis != -1
                : (qaxis == -1 ? qn != 1
                               : (qaxis < 0 || qaxis >= t->ndim || (int64_t)qn != t->shape[qaxis])))
        return fail_at(p->err, p->where, (int64_t)off + 68, ctx, "quantization count %u does not "
                       "fit axis %d", qn, (int)qaxis);
    uint64_t data_bytes = rd_u64(r + 80);
    int64_t want = qs_tensor_packed_bytes(count, t->dtype);
    if (data_bytes != (uint64_t)want)
        return fail_at(p->err, p->where, (int64_t)off + 80, ctx, "data size %llu, expected %lld "
                       "for %lld %s values", (unsigned long long)data_bytes, (long long)want,
                       (long long)count, qs_dtype_name(t->dtype, t->is_signed));
    if ((uint64_t)qn * 8u + data_bytes > room)
        return fail_at(p->err, p->where, (int64_t)sec_end, ctx, "section ends inside the tensor "
                       "data (needs %llu bytes, %llu left)",
                       (unsigned long long)((uint64_t)qn * 8u + data_bytes),
                       (unsigned long long)room);

    uint64_t q = off + QBIN_TENSOR_FIXED;
    t->q_n = (int32_t)qn;
    t->q_axis = qaxis;
    if (qn > 0) {
        t->q_scale = qs_malloc(qn * sizeof *t->q_scale);
        t->q_zp = qs_malloc(qn * sizeof *t->q_zp);
        if (!t->q_scale || !t->q_zp)
            return qs_fail(p->err, QS_ERR_NOMEM, "%s: out of memory reading %s", p->where, ctx);
        for (uint32_t c = 0; c < qn; c++) {
            t->q_scale[c] = rd_f32(p->b + q + 4u * c);
            t->q_zp[c] = rd_i32(p->b + q + 4u * qn + 4u * c);
        }
    }
    uint64_t d0 = q + 8u * qn;
    if (count > 0) {
        t->data = qs_alloc_big((size_t)count * sizeof *t->data);
        if (!t->data)
            return qs_fail(p->err, QS_ERR_NOMEM, "%s: out of memory reading %s", p->where, ctx);
        qs_error e2;
        if (qs_tensor_unpack(p->b + d0, (size_t)data_bytes, count, t->dtype, t->is_signed,
                             t->data, &e2) != QS_OK)
            return fail_at(p->err, p->where, (int64_t)d0, ctx, "%s", e2.msg);
    }
    /* padding bits after the last value must be zero (canonical encoding) */
    uint64_t used_bits = (uint64_t)count * (uint64_t)bits;
    for (uint64_t k = used_bits / 8; k < data_bytes; k++) {
        uint8_t byte = p->b[d0 + k];
        if (k == used_bits / 8 && used_bits % 8)
            byte = (uint8_t)(byte >> (used_bits % 8));
        if (byte)
            return fail_at(p->err, p->where, (int64_t)(d0 + k), ctx,
                           "non-zero padding after the tensor data");
    }
    (void)sec_off;
    *cur = d0 + data_bytes;
    return QS_OK;
}

static qs_status parse_layers(const pctx *p, const qbin_section *s, qs_net *net, int64_t *loff)
{
    const uint8_t *b = p->b;
    uint64_t cur = s->off;
    uint64_t end = s->off + s->size;
    const uint32_t version = rd_u32(b + 8); /* 1 or 2, checked with the header */
    int uses_v2 = 0;
    qs_status st;
    /* n_layers * 192 <= size was checked before allocation */
    for (int32_t i = 0; i < net->n_layers; i++, cur += QBIN_LAYER_SIZE) {
        qs_layer *l = &net->layers[i];
        const uint8_t *r = b + cur;
        char ctx[112];
        loff[i] = (int64_t)cur;
        snprintf(ctx, sizeof ctx, "layers section, layer %d", (int)i);
        if ((st = read_name(p, cur, ctx, l->name)) != QS_OK)
            return st;
        snprintf(ctx, sizeof ctx, "layers section, layer %d '%s'", (int)i, l->name);
        int32_t kind = rd_i32(r + 48);
        if (kind < 0 || kind >= QS_L_KIND_COUNT)
            return fail_at(p->err, p->where, (int64_t)cur + 48, ctx, "unknown layer kind %d",
                           (int)kind);
        l->kind = (qs_layer_kind)kind;
        if (version < 2 && qs_layer_kind_is_v2(l->kind))
            return fail_at(p->err, p->where, (int64_t)cur + 48, ctx, "layer kind %d (%s) needs "
                           "format version 2; the file says version %u", (int)kind,
                           qs_layer_kind_name(l->kind), version);
        uses_v2 |= qs_layer_kind_is_v2(l->kind);
        l->n_inputs = rd_i32(r + 52);
        if (l->n_inputs < 0 || l->n_inputs > QS_MAX_INPUTS)
            return fail_at(p->err, p->where, (int64_t)cur + 52, ctx, "input count %d outside "
                           "0..%d", (int)l->n_inputs, QS_MAX_INPUTS);
        for (int k = 0; k < QS_MAX_INPUTS; k++) {
            l->inputs[k] = rd_i32(r + 56 + 4 * k);
            if (k >= l->n_inputs && l->inputs[k] != -1)
                return fail_at(p->err, p->where, (int64_t)cur + 56 + 4 * k, ctx,
                               "unused input slot %d holds %d, not -1", k, (int)l->inputs[k]);
        }
        int32_t *win[] = {&l->kh, &l->kw, &l->stride_h, &l->stride_w, &l->pad_t, &l->pad_l,
                          &l->pad_b, &l->pad_r, &l->dil_h, &l->dil_w, &l->groups, &l->weight,
                          &l->bias, &l->add_mul[0], &l->add_mul[1]};
        for (size_t k = 0; k < sizeof win / sizeof win[0]; k++)
            *win[k] = rd_i32(r + 88 + 4 * k);
        int32_t act = rd_i32(r + 148);
        if (act < 0 || act > QS_ACT_CLIP)
            return fail_at(p->err, p->where, (int64_t)cur + 148, ctx, "unknown activation %d",
                           (int)act);
        l->act = (qs_act)act;
        l->clamp_lo = rd_i32(r + 152);
        l->clamp_hi = rd_i32(r + 156);
        l->out_c = rd_i32(r + 160);
        l->out_h = rd_i32(r + 164);
        l->out_w = rd_i32(r + 168);
        l->out_bits = r[172];
        l->out_signed = r[173];
        if (r[174] || r[175] || (version < 2 && rd_u32(r + 188)))
            return fail_at(p->err, p->where, (int64_t)cur + (r[174] || r[175] ? 174 : 188), ctx,
                           "reserved field is not 0");
        l->param = version >= 2 ? rd_i32(r + 188) : 0;
        l->out_zp = rd_i32(r + 176);
        l->out_scale = rd_f32(r + 180);
        l->rq.n = rd_i32(r + 184);
        if (l->rq.n < 0)
            return fail_at(p->err, p->where, (int64_t)cur + 184, ctx, "negative requant count %d",
                           (int)l->rq.n);
    }
    if (version == 2 && !uses_v2)
        return fail_at(p->err, p->where, 8, "header", "version 2, but no layer needs it: a "
                       "network without version-2 layer kinds is written as version 1");
    /* requant arrays follow the records, in layer order */
    for (int32_t i = 0; i < net->n_layers; i++) {
        qs_layer *l = &net->layers[i];
        if (l->rq.n == 0)
            continue;
        char ctx[112];
        snprintf(ctx, sizeof ctx, "layers section, requant arrays of layer %d '%s'", (int)i,
                 l->name);
        uint64_t n = (uint64_t)l->rq.n;
        uint64_t need = 4u * n + pad4(n);
        if (need > end - cur)
            return fail_at(p->err, p->where, (int64_t)cur, ctx, "%llu multipliers need %llu "
                           "bytes, %llu left in the section", (unsigned long long)n,
                           (unsigned long long)need, (unsigned long long)(end - cur));
        l->rq.mult = qs_malloc(n * sizeof *l->rq.mult);
        l->rq.shift = qs_malloc(n * sizeof *l->rq.shift);
        if (!l->rq.mult || !l->rq.shift)
            return qs_fail(p->err, QS_ERR_NOMEM, "%s: out of memory reading %s", p->where, ctx);
        for (uint64_t c = 0; c < n; c++) {
            l->rq.mult[c] = rd_i32(b + cur + 4u * c);
            l->rq.shift[c] = (int8_t)b[cur + 4u * n + c]; /* two's complement byte */
        }
        for (uint64_t k = cur + 5u * n; k < cur + need; k++)
            if (b[k])
                return fail_at(p->err, p->where, (int64_t)k, ctx, "non-zero padding");
        cur += need;
    }
    if (cur != end)
        return fail_at(p->err, p->where, (int64_t)cur, "layers section",
                       "%llu unexplained bytes at the end of the section",
                       (unsigned long long)(end - cur));
    return QS_OK;
}

qs_status qs_net_parse(const uint8_t *bytes, size_t len, const char *where, qs_net **out,
                       qs_error *err)
{
    if (!where)
        where = "<memory>";
    if (!out)
        return qs_fail(err, QS_ERR_ARG, "%s: no output handle", where);
    *out = NULL;
    if (!bytes && len > 0)
        return qs_fail(err, QS_ERR_ARG, "%s: no data", where);
    static const uint8_t empty[1] = {0};
    pctx p = {bytes ? bytes : empty, (uint64_t)len, where, err};
    qbin_section ns, ts, ls;
    qs_status st = parse_header(&p, &ns, &ts, &ls);
    if (st != QS_OK)
        return st;

    if (ns.size != QBIN_NET_SIZE)
        return fail_at(err, where, (int64_t)ns.off, "net section", "size %llu, must be %u",
                       (unsigned long long)ns.size, QBIN_NET_SIZE);
    const uint8_t *nr = p.b + ns.off;
    uint32_t n_t = rd_u32(nr + 48), n_l = rd_u32(nr + 52);
    int32_t output = rd_i32(nr + 56);
    if (n_t > ts.size / QBIN_TENSOR_FIXED)
        return fail_at(err, where, (int64_t)ns.off + 48, "net section", "%u tensors cannot fit "
                       "in a tensors section of %llu bytes", n_t, (unsigned long long)ts.size);
    if (n_l < 1 || n_l > ls.size / QBIN_LAYER_SIZE)
        return fail_at(err, where, (int64_t)ns.off + 52, "net section", "%u layers: need >= 1 "
                       "and a layers section of %u bytes each (have %llu)", n_l, QBIN_LAYER_SIZE,
                       (unsigned long long)ls.size);
    if (output < 0 || (uint32_t)output >= n_l)
        return fail_at(err, where, (int64_t)ns.off + 56, "net section", "output layer %d outside "
                       "0..%u", (int)output, n_l - 1);
    if (rd_u32(nr + 60) != 0)
        return fail_at(err, where, (int64_t)ns.off + 60, "net section", "reserved field is not 0");

    qs_net *net = qs_calloc(1, sizeof *net);
    int64_t *offs = qs_calloc((size_t)n_t + n_l + 1, sizeof *offs);
    if (!net || !offs) {
        qs_free(net);
        qs_free(offs);
        return qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", where);
    }
    if ((st = read_name(&p, ns.off, "net section", net->name)) != QS_OK)
        goto fail;
    net->output = output;
    /* counts are set as the arrays appear so destroy() frees exactly what exists */
    net->tensors = n_t ? qs_calloc(n_t, sizeof *net->tensors) : NULL;
    net->layers = qs_calloc(n_l, sizeof *net->layers);
    if ((n_t && !net->tensors) || !net->layers) {
        st = qs_fail(err, QS_ERR_NOMEM, "%s: out of memory", where);
        goto fail;
    }
    net->n_tensors = (int32_t)n_t;
    net->n_layers = (int32_t)n_l;

    uint64_t cur = ts.off;
    for (uint32_t t = 0; t < n_t; t++) {
        offs[t] = (int64_t)cur;
        if ((st = parse_tensor(&p, ts.off, ts.off + ts.size, &cur, (int32_t)t, &net->tensors[t])) !=
            QS_OK)
            goto fail;
    }
    if (cur != ts.off + ts.size) {
        st = fail_at(err, where, (int64_t)cur, "tensors section", "%llu unexplained bytes at the "
                     "end of the section", (unsigned long long)(ts.off + ts.size - cur));
        goto fail;
    }
    if ((st = parse_layers(&p, &ls, net, offs + n_t)) != QS_OK)
        goto fail;

    qbin_layout lay = {offs, offs + n_t};
    if ((st = validate_impl(net, where, err, &lay)) != QS_OK)
        goto fail;
    qs_free(offs);
    *out = net;
    return QS_OK;
fail:
    qs_free(offs);
    qs_net_destroy(net);
    return st;
}

/* A .qbin's length from its header (qs_declared_size_fn): the file_size field. */
static int qbin_declared_size(const uint8_t *head, size_t n, uint64_t *declared)
{
    if (n < 24)
        return memcmp(head, qbin_magic, n < sizeof qbin_magic ? n : sizeof qbin_magic) == 0 ? 0 : -1;
    if (memcmp(head, qbin_magic, sizeof qbin_magic) != 0)
        return -1;
    *declared = rd_u64(head + 16);
    return 1;
}

/* A regular file is mapped rather than read (prefaulted where the system
 * can): no copy and no fresh pages to fault in for a file that is mostly
 * weights; anything else (pipes, systems without mmap) is read. */
qs_status qs_net_load(const char *path, qs_net **out, qs_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return qs_fail(err, QS_ERR_ARG, "qs_net_load: no path or output handle");
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        (uint64_t)sb.st_size <= ((uint64_t)1 << 32)) {
        int flags = MAP_PRIVATE;
#if defined(MAP_POPULATE)
        flags |= MAP_POPULATE;
#endif
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, flags, fd, 0);
        if (map != MAP_FAILED) {
            close(fd);
            qs_status st = qs_net_parse(map, (size_t)sb.st_size, path, out, err);
            munmap(map, (size_t)sb.st_size);
            return st;
        }
    }
    uint8_t *buf;
    size_t len;
    /* read from the descriptor already open: a FIFO's writer is met only once */
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f && fd >= 0)
        close(fd);
    qs_status rd = f ? qs_read_stream_declared(f, path, (size_t)1 << 32, qbin_declared_size, &buf, &len, err)
                     : qs_read_file_declared(path, (size_t)1 << 32, qbin_declared_size, &buf, &len, err);
    if (rd)
        return rd;
    qs_status st = qs_net_parse(buf, len, path, out, err);
    qs_free(buf);
    return st;
}

/* ---- serialize -------------------------------------------------------- */

static void put_name(uint8_t *dst, const char *name)
{
    size_t n = strnlen(name, QS_NAME_MAX - 1);
    memcpy(dst, name, n); /* rest already zero: canonical */
}

qs_status qs_net_serialize(const qs_net *net, uint8_t **bytes, size_t *len, qs_error *err)
{
    if (!bytes || !len)
        return qs_fail(err, QS_ERR_ARG, "qs_net_serialize: no output buffer");
    *bytes = NULL;
    *len = 0;
    /* never write what a reader would refuse */
    qs_status st = validate_impl(net, "serialize", err, NULL);
    if (st != QS_OK)
        return st;

    uint64_t tsize = 0;
    for (int32_t t = 0; t < net->n_tensors; t++)
        tsize += QBIN_TENSOR_FIXED + 8u * (uint64_t)net->tensors[t].q_n +
                 (uint64_t)qs_tensor_packed_bytes(net->tensors[t].count, net->tensors[t].dtype);
    uint64_t lsize = (uint64_t)QBIN_LAYER_SIZE * (uint64_t)net->n_layers;
    for (int32_t i = 0; i < net->n_layers; i++)
        lsize += 4u * (uint64_t)net->layers[i].rq.n + pad4((uint64_t)net->layers[i].rq.n);
    const uint32_t n_sect = 3;
    uint64_t net_off = pad8(QBIN_HEADER_SIZE + n_sect * QBIN_ENTRY_SIZE);
    uint64_t ten_off = pad8(net_off + QBIN_NET_SIZE);
    uint64_t lay_off = pad8(ten_off + tsize);
    uint64_t total = lay_off + lsize;
    if (total > SIZE_MAX)
        return qs_fail(err, QS_ERR_NOMEM, "serialize: %llu bytes do not fit in memory",
                       (unsigned long long)total);
    uint8_t *b = qs_calloc(1, (size_t)total);
    if (!b)
        return qs_fail(err, QS_ERR_NOMEM, "serialize: out of memory for %llu bytes",
                       (unsigned long long)total);

    /* NET */
    uint8_t *r = b + net_off;
    put_name(r, net->name);
    wr_u32(r + 48, (uint32_t)net->n_tensors);
    wr_u32(r + 52, (uint32_t)net->n_layers);
    wr_i32(r + 56, net->output);

    /* TENSORS */
    uint64_t cur = ten_off;
    for (int32_t ti = 0; ti < net->n_tensors; ti++) {
        const qs_tensor *t = &net->tensors[ti];
        r = b + cur;
        put_name(r, t->name);
        r[48] = (uint8_t)t->dtype;
        r[49] = t->is_signed;
        r[50] = t->ndim;
        for (int d = 0; d < 4; d++)
            wr_i32(r + 52 + 4 * d, d < t->ndim ? t->shape[d] : 1);
        wr_u32(r + 68, (uint32_t)t->q_n);
        wr_i32(r + 72, t->q_n > 0 ? t->q_axis : -1);
        int64_t db = qs_tensor_packed_bytes(t->count, t->dtype);
        wr_u64(r + 80, (uint64_t)db);
        uint8_t *q = r + QBIN_TENSOR_FIXED;
        for (int32_t c = 0; c < t->q_n; c++) {
            wr_f32(q + 4 * c, t->q_scale[c]);
            wr_i32(q + 4 * (size_t)t->q_n + 4 * c, t->q_zp[c]);
        }
        uint8_t *d0 = q + 8 * (size_t)t->q_n;
        if ((st = qs_tensor_pack(t->data, t->count, t->dtype, t->is_signed, d0, (size_t)db, err)) !=
            QS_OK) { /* cannot happen after validation; kept for safety */
            qs_free(b);
            return st;
        }
        cur += QBIN_TENSOR_FIXED + 8u * (uint64_t)t->q_n + (uint64_t)db;
    }

    /* LAYERS */
    cur = lay_off;
    for (int32_t i = 0; i < net->n_layers; i++, cur += QBIN_LAYER_SIZE) {
        const qs_layer *l = &net->layers[i];
        r = b + cur;
        put_name(r, l->name);
        wr_i32(r + 48, (int32_t)l->kind);
        wr_i32(r + 52, l->n_inputs);
        for (int k = 0; k < QS_MAX_INPUTS; k++)
            wr_i32(r + 56 + 4 * k, k < l->n_inputs ? l->inputs[k] : -1);
        const int32_t win[] = {l->kh, l->kw, l->stride_h, l->stride_w, l->pad_t, l->pad_l,
                               l->pad_b, l->pad_r, l->dil_h, l->dil_w, l->groups, l->weight,
                               l->bias, l->add_mul[0], l->add_mul[1]};
        for (size_t k = 0; k < sizeof win / sizeof win[0]; k++)
            wr_i32(r + 88 + 4 * k, win[k]);
        wr_i32(r + 148, (int32_t)l->act);
        wr_i32(r + 152, l->clamp_lo);
        wr_i32(r + 156, l->clamp_hi);
        wr_i32(r + 160, l->out_c);
        wr_i32(r + 164, l->out_h);
        wr_i32(r + 168, l->out_w);
        r[172] = l->out_bits;
        r[173] = l->out_signed;
        wr_i32(r + 176, l->out_zp);
        wr_f32(r + 180, l->out_scale);
        wr_i32(r + 184, l->rq.n);
        wr_i32(r + 188, l->param); /* version 1: reserved, and 0 for every version-1 kind */
    }
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *l = &net->layers[i];
        for (int32_t c = 0; c < l->rq.n; c++) {
            wr_i32(b + cur + 4 * (size_t)c, l->rq.mult[c]);
            b[cur + 4 * (size_t)l->rq.n + (size_t)c] = (uint8_t)l->rq.shift[c];
        }
        cur += 4u * (uint64_t)l->rq.n + pad4((uint64_t)l->rq.n);
    }

    /* header and section table last: they carry the CRCs */
    const uint64_t offs[3] = {net_off, ten_off, lay_off};
    const uint64_t sizes[3] = {QBIN_NET_SIZE, tsize, lsize};
    const uint32_t kinds[3] = {QBIN_SECT_NET, QBIN_SECT_TENSORS, QBIN_SECT_LAYERS};
    memcpy(b, qbin_magic, sizeof qbin_magic);
    wr_u32(b + 8, net_version(net));
    wr_u32(b + 12, 0);
    wr_u64(b + 16, total);
    wr_u32(b + 24, n_sect);
    for (uint32_t s = 0; s < n_sect; s++) {
        uint8_t *e = b + QBIN_HEADER_SIZE + s * QBIN_ENTRY_SIZE;
        wr_u32(e, kinds[s]);
        wr_u32(e + 4, crc_update(0, b + offs[s], sizes[s]));
        wr_u64(e + 8, offs[s]);
        wr_u64(e + 16, sizes[s]);
    }
    wr_u32(b + 28, crc_update(crc_update(0, b, 28), b + QBIN_HEADER_SIZE,
                              (uint64_t)n_sect * QBIN_ENTRY_SIZE));
    *bytes = b;
    *len = (size_t)total;
    return QS_OK;
}

qs_status qs_net_save(const qs_net *net, const char *path, qs_error *err)
{
    if (!path)
        return qs_fail(err, QS_ERR_ARG, "qs_net_save: no path");
    uint8_t *b;
    size_t n;
    qs_status st = qs_net_serialize(net, &b, &n, err);
    if (st != QS_OK)
        return st;
    FILE *f = fopen(path, "wb");
    if (!f) {
        qs_free(b);
        return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    }
    size_t put = fwrite(b, 1, n, f);
    int bad = put != n || ferror(f);
    bad |= fclose(f) != 0;
    qs_free(b);
    if (bad)
        return qs_fail(err, QS_ERR_IO, "%s: write error", path);
    return QS_OK;
}
