/* DRAM contents of a program: see mem_image.h. */
#include "mem_image.h"
#include "qs_alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t addr, bytes;
    int32_t layer;
    int is_weights;
} region;

struct qs_mem_image {
    const qs_net *net;
    const qs_prog *prog;
    region *r;        /* sorted by address, disjoint */
    int32_t n;
    uint8_t **weights; /* per layer, built on first use */
};

static int by_addr(const void *a, const void *b)
{
    const region *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int is_view(const qs_layer *L)
{ /* a kvcache over a prompt (no cached rows) is its input itself (docs/decode.md) */
    return L->kind == QS_L_FLATTEN || L->kind == QS_L_RESHAPE || (L->kind == QS_L_KVCACHE && L->weight < 0);
}

qs_status qs_mem_image_create(const qs_net *net, const qs_prog *prog, qs_mem_image **out, qs_error *err)
{
    *out = NULL;
    qs_mem_image *m = qs_calloc(1, sizeof *m);
    if (!m) return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DRAM image");
    m->net = net;
    m->prog = prog;
    m->r = qs_calloc(2 * (size_t)net->n_layers, sizeof *m->r);
    m->weights = qs_calloc((size_t)net->n_layers, sizeof *m->weights);
    if (!m->r || !m->weights) {
        qs_mem_image_destroy(m);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DRAM image");
    }
    for (int32_t li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        const qs_layer_map *lm = &prog->maps[li];
        if (is_view(L)) continue; /* its input's bytes */
        uint64_t bits = (uint64_t)L->out_c * (uint64_t)L->out_h * (uint64_t)L->out_w * L->out_bits;
        m->r[m->n++] = (region){lm->out_addr, (bits + 7) / 8, li, 0};
        if (lm->is_gemm && !lm->is_matmul && lm->weight_bytes > 0)
            m->r[m->n++] = (region){lm->weight_addr, (uint64_t)lm->weight_bytes, li, 1};
    }
    qsort(m->r, (size_t)m->n, sizeof *m->r, by_addr);
    *out = m;
    return QS_OK;
}

void qs_mem_image_destroy(qs_mem_image *m)
{
    if (!m) return;
    if (m->weights)
        for (int32_t i = 0; i < m->net->n_layers; i++) qs_free(m->weights[i]);
    qs_free(m->weights);
    qs_free(m->r);
    qs_free(m);
}

/* ---- the weight image (docs/compiler.md, "DRAM allocation") ------------------ */

/* Bit stream writer, LSB first (the .qbin packing). */
typedef struct {
    uint8_t *p;
    uint64_t bit;
} bitw;

static void put_bits(bitw *w, uint32_t v, int bits)
{
    for (int b = 0; b < bits; b++, w->bit++)
        if ((v >> b) & 1) w->p[w->bit / 8] |= (uint8_t)(1u << (w->bit % 8));
}

/* A weight's code as the .qbin stores it: two's complement bits; bipolar 1 for +1, 0 for -1. */
static uint32_t weight_code(const qs_tensor *W, int bits, int64_t idx)
{
    int32_t v = W->data[idx];
    if (W->dtype == QS_DT_BIPOLAR) return v > 0;
    return bits >= 32 ? (uint32_t)v : (uint32_t)v & ((1u << bits) - 1);
}

static void put_index(uint8_t *p, int32_t v) /* 16-bit little-endian */
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
}

static uint64_t bits_to_bytes(uint64_t b) { return (b + 7) / 8; }

static void build_weights(const qs_net *net, const qs_prog *prog, int32_t li, uint8_t *img)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer_map *m = &prog->maps[li];
    const qs_arch *a = &prog->arch;
    const qs_tensor *W = &net->tensors[L->weight];
    const qs_gemm_dims d = m->g;
    const int wb = m->weight_bits;
    const int compressed = a->zero_skip == QS_SKIP_WEIGHTS || a->zero_skip == QS_SKIP_BOTH;
    uint64_t off = 0;
    for (int32_t g = 0; g < d.groups; g++)
        for (int32_t b = 0; b < m->blocks_per_group; b++) {
            int32_t li0 = m->list_off[g * m->blocks_per_group + b];
            int32_t ll = m->list_off[g * m->blocks_per_group + b + 1] - li0;
            const int32_t *lst = m->list + li0;
            if (a->dataflow == QS_DF_IS) {
                /* a k-block of `rows` reduction rows: per kept output channel, its rows */
                bitw w = {img + off, 0};
                for (int32_t p = 0; p < ll; p++)
                    for (int32_t r = 0; r < a->rows; r++) {
                        int32_t k = b * a->rows + r;
                        uint32_t v = k < d.K ? weight_code(W, wb, ((int64_t)g * d.N + lst[p]) * d.K + k) : 0;
                        put_bits(&w, v, wb);
                    }
                off += bits_to_bytes((uint64_t)a->rows * (uint64_t)ll * (uint64_t)wb);
                if (compressed)
                    for (int32_t p = 0; p < ll; p++, off += 2) put_index(img + off, lst[p]);
                continue;
            }
            /* OS/WS: an n-block of up to `cols` output channels, its k-chunks
             * of tk list positions; per position, the block's channels */
            int32_t ncols = d.N - b * a->cols < a->cols ? d.N - b * a->cols : a->cols;
            for (int32_t k0 = 0; k0 < ll; k0 += m->tk) {
                int32_t chunk = ll - k0 < m->tk ? ll - k0 : m->tk;
                bitw w = {img + off, 0};
                for (int32_t p = k0; p < k0 + chunk; p++)
                    for (int32_t c = 0; c < ncols; c++)
                        put_bits(&w, weight_code(W, wb, ((int64_t)g * d.N + b * a->cols + c) * d.K + lst[p]), wb);
                off += bits_to_bytes((uint64_t)ncols * (uint64_t)chunk * (uint64_t)wb);
                if (compressed)
                    for (int32_t p = k0; p < k0 + chunk; p++, off += 2) put_index(img + off, lst[p]);
            }
        }
}

const uint8_t *qs_mem_image_weights(qs_mem_image *m, int32_t layer, qs_error *err)
{
    if (layer < 0 || layer >= m->net->n_layers) return NULL;
    const qs_layer_map *lm = &m->prog->maps[layer];
    if (!lm->is_gemm || lm->is_matmul || lm->weight_bytes <= 0) return NULL;
    if (!m->weights[layer]) {
        uint8_t *img = qs_calloc((size_t)lm->weight_bytes, 1);
        if (!img) {
            qs_fail(err, QS_ERR_NOMEM, "out of memory for the weight image of layer '%s'", m->net->layers[layer].name);
            return NULL;
        }
        build_weights(m->net, m->prog, layer, img);
        m->weights[layer] = img;
    }
    return m->weights[layer];
}

/* ---- reading ------------------------------------------------------------------ */

/* Byte j of a packed activation tensor (bits per element, LSB first). */
static uint8_t act_byte(const int32_t *x, int64_t count, int bits, uint64_t j)
{
    uint8_t byte = 0;
    if (bits % 8 == 0) { /* whole bytes: byte j % (bits / 8) of element j / (bits / 8) */
        uint64_t per = (uint64_t)bits / 8, e = j / per;
        return (int64_t)e < count ? (uint8_t)((uint32_t)x[e] >> (8 * (j % per))) : 0;
    }
    if (8 % bits == 0) { /* whole elements per byte */
        uint64_t per = 8 / (uint64_t)bits, e0 = j * per;
        for (uint64_t k = 0; k < per && (int64_t)(e0 + k) < count; k++)
            byte |= (uint8_t)(((uint32_t)x[e0 + k] & ((1u << bits) - 1)) << (k * (uint64_t)bits));
        return byte;
    }
    for (int b = 0; b < 8; b++) {
        uint64_t gb = j * 8 + (uint64_t)b, e = gb / (uint64_t)bits;
        if ((int64_t)e >= count) break;
        if (((uint32_t)x[e] >> (gb % (uint64_t)bits)) & 1) byte |= (uint8_t)(1u << b);
    }
    return byte;
}

qs_status qs_mem_image_read(qs_mem_image *m, const int32_t *const *outputs, uint64_t addr, uint8_t *out, uint64_t n,
                            qs_error *err)
{
    memset(out, 0, (size_t)n);
    for (int32_t i = 0; i < m->n; i++) {
        const region *r = &m->r[i];
        if (r->addr >= addr + n || r->addr + r->bytes <= addr) continue;
        uint64_t lo = r->addr > addr ? r->addr : addr;
        uint64_t hi = r->addr + r->bytes < addr + n ? r->addr + r->bytes : addr + n;
        if (r->is_weights) {
            const uint8_t *w = qs_mem_image_weights(m, r->layer, err);
            if (!w) return QS_ERR_NOMEM;
            memcpy(out + (lo - addr), w + (lo - r->addr), (size_t)(hi - lo));
        } else {
            const qs_layer *L = &m->net->layers[r->layer];
            int64_t count = (int64_t)L->out_c * L->out_h * L->out_w;
            for (uint64_t a = lo; a < hi; a++) out[a - addr] = act_byte(outputs[r->layer], count, L->out_bits, a - r->addr);
        }
    }
    return QS_OK;
}
