/* The quantized network as qsim sees it: tensors and a graph of layers,
 * loaded from / saved to the .qbin container (docs/qbin.md).
 *
 * Integer semantics (the contract the compiler, simulator, Python
 * reference and exporters all implement; docs/qbin.md spells it out):
 *  - Activations are CHW, batch 1. Conv weights are [Cout][Cin/groups][KH][KW]
 *    (PyTorch OIHW); FC weights are [out][in]; FC input is the flattened CHW vector.
 *  - Weights are symmetric (zero point 0). An activation tensor has one scale and
 *    one zero point; padding positions hold the input's zero point.
 *  - conv/fc:   acc = sum_k (a_k - za) * w_k            (accumulated in acc_bits
 *               of the arch; compilers may fold -za*sum(w) into the bias)
 *               y   = requant(acc + bias)
 *  - add:       acc = (a - za) * mul_a + (b - zb) * mul_b ; y = requant(acc)
 *  - avgpool / global avgpool: acc = sum over window of (a - za), a padded
 *               position counting as 0 (PyTorch's count_include_pad); y = requant(acc)
 *  - maxpool:   y = max over window (same quantization as input; pad = no value)
 *  - requant(x) = clamp(out_zp + rdivpot(srdhm(x << lshift, M0), rshift), lo, hi)
 *               with gemmlowp's SaturatingRoundingDoublingHighMul (srdhm) and
 *               RoundingDivideByPOT (rdivpot); shift > 0 is a right shift,
 *               shift < 0 a left shift. M0 and shift are per output channel
 *               (or one value for all). lo/hi carry ReLU / ReLU6 / clip.
 *  - act (standalone relu/clip): y = clamp(x, lo, hi)
 *  - concat along channels; flatten/reshape keep data order. */
#ifndef QS_NET_H
#define QS_NET_H

#include <stddef.h>
#include <stdint.h>

#include "qs_status.h"

#define QS_NAME_MAX 48
#define QS_MAX_INPUTS 8

/* Element types of stored tensors. Value ranges:
 * BIPOLAR: {-1,+1} stored as 1 bit (0 -> -1, 1 -> +1); INTn signed or unsigned. */
typedef enum {
    QS_DT_BIPOLAR = 0,
    QS_DT_INT2,
    QS_DT_INT4,
    QS_DT_INT8,
    QS_DT_INT16,
    QS_DT_INT32
} qs_dtype;

/* Storage bits of a dtype (1, 2, 4, 8, 16, 32). */
int qs_dtype_bits(qs_dtype dt);
const char *qs_dtype_name(qs_dtype dt, int is_signed);

typedef struct {
    char name[QS_NAME_MAX];
    qs_dtype dtype;
    uint8_t is_signed;  /* ignored for BIPOLAR */
    uint8_t ndim;       /* 1..4 */
    int32_t shape[4];
    int64_t count;      /* product of shape */
    int32_t *data;      /* unpacked values, count of them */
    /* Optional quantization record, kept so that save(load(f)) == f byte for
     * byte: real = q_scale[c] * (v - q_zp[c]), c = index along q_axis.
     * q_n = 0: none (q_axis ignored, so a zeroed struct is valid); 1: per
     * tensor (q_axis -1, or an axis of extent 1); else shape[q_axis]. */
    int32_t q_n;
    int32_t q_axis;
    float *q_scale;     /* q_n of them, qs_malloc'd */
    int32_t *q_zp;      /* q_n of them, qs_malloc'd; 0 for weights and biases */
} qs_tensor;

typedef enum {
    QS_L_INPUT = 0,  /* the network input; shape from out_c/out_h/out_w */
    QS_L_CONV,       /* conv2d incl. grouped / depthwise */
    QS_L_FC,         /* fully connected / matmul with constant weights */
    QS_L_MAXPOOL,
    QS_L_AVGPOOL,
    QS_L_GAP,        /* global average pool -> C x 1 x 1 */
    QS_L_ADD,        /* element-wise add of two inputs (residual) */
    QS_L_CONCAT,     /* channel concat of n inputs */
    QS_L_ACT,        /* standalone clamp (ReLU / ReLU6 / clip) */
    QS_L_REQUANT,    /* standalone requantization of one input */
    QS_L_FLATTEN,    /* C x H x W -> (C*H*W) x 1 x 1 */
    /* format version 2 (docs/qbin.md, "Version 2: transformer layers") */
    QS_L_LUT,        /* element-wise table lookup (weight = the table tensor) */
    QS_L_MUL,        /* element-wise product of two inputs, requantized */
    QS_L_SOFTMAX,    /* integer softmax along axis `param` (exp table = weight tensor) */
    QS_L_LAYERNORM,  /* integer layer norm over channels, affine = bias + requant */
    QS_L_RMSNORM,    /* integer RMS norm over channels, affine = bias + requant */
    QS_L_MATMUL,     /* per batch (channel): op(A) x op(B) of two activations */
    QS_L_RESHAPE,    /* same values in the same order, new (C, H, W) */
    QS_L_DYNQUANT,   /* per-position absmax quantization over channels (BitNet b1.58) */
    QS_L_ROPE,       /* rotary position embedding: integer rotation by cos/sin tables (weight) */
    QS_L_EMBED,      /* token embedding: row id of the table (weight) per token of the input ids */
    QS_L_ARGMAX,     /* per position, the index of the largest channel (lowest on ties) */
    QS_L_KVCACHE = 22, /* a decoder's K or V cache: cached rows + new rows along W (docs/decode.md) */
    QS_L_KIND_COUNT
} qs_layer_kind;

const char *qs_layer_kind_name(qs_layer_kind k);

/* Activation fused into the output clamp (for listing; lo/hi are authoritative). */
typedef enum { QS_ACT_NONE = 0, QS_ACT_RELU, QS_ACT_RELU6, QS_ACT_CLIP } qs_act;

/* Requantization of an int32 accumulator to the layer's output type. */
typedef struct {
    int32_t n;          /* number of (M0, shift) pairs: 1 or out channels; 0 = none */
    int32_t *mult;      /* Q31 multipliers M0, n of them */
    int8_t *shift;      /* right shift (>0) or left shift (<0), n of them */
} qs_requant;

typedef struct {
    char name[QS_NAME_MAX];
    qs_layer_kind kind;
    int32_t n_inputs;
    int32_t inputs[QS_MAX_INPUTS];  /* indices of earlier layers */

    /* window parameters: conv, pools */
    int32_t kh, kw, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w;
    int32_t groups;
    int32_t weight;      /* tensor index or -1 (conv, fc) */
    int32_t bias;        /* int32 tensor index or -1 (conv, fc) */

    /* add: integer input multipliers */
    int32_t add_mul[2];

    /* version-2 kinds: softmax: the axis (0 C, 1 H, 2 W) in bits 0-3, bit 4
     * a causal mask, bits 8-30 its offset (QS_SOFTMAX_* in qs_xfmr.h); matmul: bit 0
     * transposes A, bit 1 transposes B; 0 for every other kind */
    int32_t param;

    qs_requant rq;       /* conv, fc, add, avgpool, gap, requant */
    qs_act act;
    int32_t clamp_lo, clamp_hi;   /* applied to every output */

    /* output: shape and quantization */
    int32_t out_c, out_h, out_w;
    uint8_t out_bits;    /* 1..16 (1 = bipolar not allowed for activations) */
    uint8_t out_signed;
    int32_t out_zp;
    float out_scale;     /* real-valued scale, for users and importers */
} qs_layer;

/* 1 for the layer kinds that need format version 2. */
int qs_layer_kind_is_v2(qs_layer_kind k);

/* Opaque network handle. */
typedef struct qs_net qs_net;

struct qs_net {
    char name[QS_NAME_MAX];
    int32_t n_tensors;
    qs_tensor *tensors;
    int32_t n_layers;
    qs_layer *layers;     /* topologically ordered; layer 0 is the INPUT */
    int32_t output;       /* index of the output layer */
};

/* Parse a .qbin image from memory (fuzzable: bytes + length). `where` names the
 * source in messages (usually the file path). Validates everything: CRCs,
 * ranges, shapes, graph order. On failure *out is NULL and err says where. */
qs_status qs_net_parse(const uint8_t *bytes, size_t len, const char *where,
                       qs_net **out, qs_error *err);

/* Read and parse a file. */
qs_status qs_net_load(const char *path, qs_net **out, qs_error *err);

/* Serialize to a freshly qs_malloc'd buffer (qs_free) / to a file. */
qs_status qs_net_serialize(const qs_net *net, uint8_t **bytes, size_t *len, qs_error *err);
qs_status qs_net_save(const qs_net *net, const char *path, qs_error *err);

/* Semantic validation (shapes, ranges, references); used by parse and by
 * builders of in-memory networks. */
qs_status qs_net_validate(const qs_net *net, const char *where, qs_error *err);

void qs_net_destroy(qs_net *net);

/* Multiply-accumulate count of a layer (conv/fc), 0 for others. */
int64_t qs_layer_macs(const qs_net *net, int32_t layer);

/* Value range of an n-bit signed/unsigned integer (bits 1..32; unsigned 32
 * is limited to INT32_MAX; other bits give lo = hi = 0). */
void qs_int_range(int bits, int is_signed, int32_t *lo, int32_t *hi);

/* gemmlowp-style integer requantization of one accumulator (see header comment). */
int32_t qs_requant_apply(int64_t acc, int32_t mult, int8_t shift, int32_t zp,
                         int32_t lo, int32_t hi);

/* out[i] = qs_requant_apply(acc[i], mult, shift, zp, lo, hi) for i < n, in a
 * loop without branches (post-processing a whole tile). */
void qs_requant_many(const int64_t *acc, int64_t n, int32_t mult, int8_t shift, int32_t zp, int32_t lo,
                     int32_t hi, int32_t *out);

/* requant_c of docs/qbin.md for output channel c of layer l: picks the
 * (M0, shift) pair for c (rq.n = 1 or out_c), or no scaling when rq.n = 0,
 * then adds out_zp and clamps to [clamp_lo, clamp_hi]. */
int32_t qs_layer_requant(const qs_layer *l, int32_t c, int64_t acc);

/* Bytes of packed data for count values of dtype dt, padded to 4 (docs/qbin.md). */
int64_t qs_tensor_packed_bytes(int64_t count, qs_dtype dt);

/* Pack count values LSB-first into out (out_len >= qs_tensor_packed_bytes;
 * padding is zeroed). Fails with QS_ERR_ARG if a value is outside the dtype's
 * range (BIPOLAR: only -1 and +1). */
qs_status qs_tensor_pack(const int32_t *vals, int64_t count, qs_dtype dt, int is_signed,
                         uint8_t *out, size_t out_len, qs_error *err);

/* qs_malloc / qs_calloc for big arrays (tensor data, layer buffers), freed with
 * qs_free(): where the system offers transparent huge pages on request, asks
 * for them, so that first touching the memory takes far fewer page faults. */
void *qs_alloc_big(size_t bytes);
void *qs_calloc_big(size_t n, size_t size);

/* Unpack count values (in_len >= qs_tensor_packed_bytes). Fails with
 * QS_ERR_FORMAT for an unsigned 32-bit value above INT32_MAX. */
qs_status qs_tensor_unpack(const uint8_t *in, size_t in_len, int64_t count, qs_dtype dt,
                           int is_signed, int32_t *out, qs_error *err);

#endif
