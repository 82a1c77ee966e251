/* Integer transformer operators (docs/qbin.md, "Version 2: transformer
 * layers"). Every step below is a line of that document; the NumPy reference
 * in scripts/qsim_qbin.py implements the same lines independently. */
#include "qs_xfmr.h"

#include <string.h>

#include "qs_alloc.h"
#include "qs_status.h"

int64_t qs_xfmr_vocab(const qs_net *net, int32_t *layer)
{
    int64_t vocab = 0;
    *layer = -1;
    for (int32_t li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        if (L->kind != QS_L_EMBED || L->weight < 0 || L->weight >= net->n_tensors) continue;
        const int64_t v = net->tensors[L->weight].shape[0];
        if (*layer < 0 || v < vocab) {
            vocab = v;
            *layer = li;
        }
    }
    return vocab;
}

uint64_t qs_isqrt_u64(uint64_t n)
{
    /* Newton from above (I-BERT Alg. 4): x0 = 2^ceil(bitlen(n)/2) >= sqrt(n);
     * x_{i+1} = floor((x_i + floor(n / x_i)) / 2) decreases strictly while
     * x_i > floor(sqrt(n)); the first x_i with x_{i+1} >= x_i is the answer. */
    if (n == 0) return 0;
    int bits = 0;
    for (uint64_t t = n; t; t >>= 1) bits++;
    uint64_t x = (uint64_t)1 << ((bits + 1) / 2);
    for (;;) {
        uint64_t y = (x + n / x) / 2;
        if (y >= x) return x;
        x = y;
    }
}

/* floor(a / b) for b > 0 (C division truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

qs_norm_stats qs_norm_stats_of(int is_layernorm, const int32_t *a, int32_t za, int32_t n, int64_t stride)
{
    qs_norm_stats st = {0, 0, 0};
    if (is_layernorm) {
        int64_t s = 0;
        for (int32_t i = 0; i < n; i++) s += a[i * stride] - za;
        st.mean = floor_div(2 * s + n, 2 * (int64_t)n); /* the mean rounded half up */
    }
    uint64_t V = 0; /* < 2^48: |d| < 2^17, n <= 2^14 */
    for (int32_t i = 0; i < n; i++) {
        int64_t d = a[i * stride] - za - st.mean;
        V += (uint64_t)(d * d);
    }
    if (V == 0) return st; /* sigma 0: every z is 0 */
    int bl = 0;
    for (uint64_t t = V; t; t >>= 1) bl++;
    st.g = (62 - bl) / 2;
    if (st.g > 15) st.g = 15;
    st.sigma = (int64_t)qs_isqrt_u64((V << (2 * st.g)) / (uint64_t)n); /* >= 1: V 4^g >= 4^7 >= n */
    return st;
}

int64_t qs_norm_value(const qs_norm_stats *st, int32_t x)
{
    if (st->sigma == 0) return 0;
    int64_t num = (x - st->mean) * ((int64_t)1 << (QS_NORM_FRAC_BITS + st->g));
    uint64_t mag = (uint64_t)(num < 0 ? -num : num);
    int64_t q = (int64_t)((2 * mag + (uint64_t)st->sigma) / (2 * (uint64_t)st->sigma)); /* half away from 0 */
    return num < 0 ? -q : q;
}

qs_matmul_dims qs_matmul_dims_of(const qs_net *net, int32_t li)
{
    qs_matmul_dims d = {0, 0, 0, 0, 0, 0, 1, 1};
    const qs_layer *L = &net->layers[li];
    if (L->kind != QS_L_MATMUL) return d;
    const qs_layer *A = &net->layers[L->inputs[0]], *B = &net->layers[L->inputs[1]];
    d.trans_a = (L->param & QS_MATMUL_TRANS_A) != 0;
    d.trans_b = (L->param & QS_MATMUL_TRANS_B) != 0;
    d.batch = A->out_c;
    /* grouped: the smaller batch divides the larger (checked by qs_net_validate; guarded here so an
     * unvalidated net cannot index outside an operand) */
    if ((L->param & QS_MATMUL_GROUPED) && A->out_c >= 1 && B->out_c >= 1) {
        if (B->out_c > A->out_c && B->out_c % A->out_c == 0) {
            d.batch = B->out_c;
            d.group_a = B->out_c / A->out_c;
        } else if (A->out_c % B->out_c == 0) {
            d.group_b = A->out_c / B->out_c;
        }
    }
    d.M = d.trans_a ? A->out_w : A->out_h;
    d.K = d.trans_a ? A->out_h : A->out_w;
    d.N = d.trans_b ? B->out_h : B->out_w;
    return d;
}

int qs_xfmr_rows(const qs_layer *L, int64_t *units, int64_t *elems)
{
    const int axis = L->kind == QS_L_SOFTMAX ? QS_SOFTMAX_AXIS(L->param) : -1;
    if (L->kind == QS_L_LAYERNORM || L->kind == QS_L_RMSNORM || L->kind == QS_L_DYNQUANT || L->kind == QS_L_ROPE ||
        L->kind == QS_L_EMBED || axis == 0) {
        *units = (int64_t)L->out_h * L->out_w;
        *elems = L->out_c;
        return 1;
    }
    if (L->kind == QS_L_MUL && L->param == QS_MUL_ROWMAX) { /* rows: positions, reading input 2's row too */
        *units = (int64_t)L->out_h * L->out_w;
        *elems = L->out_c;
        return 1;
    }
    if (L->kind == QS_L_ARGMAX) { /* rows: positions, each reducing the input's channels to one index */
        *units = (int64_t)L->out_h * L->out_w;
        *elems = 1;
        return 1;
    }
    if (axis == 2) {
        *units = (int64_t)L->out_c * L->out_h;
        *elems = L->out_w;
        return 1;
    }
    return 0;
}

static int32_t clamp32(int64_t v, int32_t lo, int32_t hi) { return (int32_t)(v < lo ? lo : v > hi ? hi : v); }

/* One softmax line of n values at x[i * stride] (docs/qbin.md, SOFTMAX), of
 * which the first `keep` take part (a causal mask keeps a prefix; keep >= 1)
 * and the rest are masked out to clamp(0). */
static void softmax_line(const qs_layer *L, const int32_t *T, const int32_t *x, int32_t n, int64_t stride,
                         int64_t keep, int32_t *y)
{
    if (keep > n) keep = n;
    int32_t mx = x[0];
    for (int32_t i = 1; i < keep; i++)
        if (x[i * stride] > mx) mx = x[i * stride];
    int64_t s = 0;
    for (int32_t i = 0; i < keep; i++) s += T[mx - x[i * stride]];
    const int64_t q = ((int64_t)1 << L->out_bits) - 1;
    for (int32_t i = 0; i < keep; i++)
        y[i * stride] = clamp32((T[mx - x[i * stride]] * q + s / 2) / s, L->clamp_lo, L->clamp_hi);
    for (int32_t i = (int32_t)keep; i < n; i++) y[i * stride] = clamp32(0, L->clamp_lo, L->clamp_hi);
}

int64_t qs_xfmr_ppu(const qs_net *net, int32_t li, const int32_t *const *outputs, int32_t *out, int32_t u0,
                    int32_t u1)
{
    const qs_layer *L = &net->layers[li];
    const qs_layer *IN = &net->layers[L->inputs[0]];
    const int32_t *x = outputs[L->inputs[0]];
    const int64_t C = L->out_c, H = L->out_h, W = L->out_w, HW = H * W;
    int64_t ops = 0;
    switch (L->kind) {
    case QS_L_LUT: {
        const int32_t *T = net->tensors[L->weight].data;
        int32_t ilo, ihi;
        qs_int_range(IN->out_bits, IN->out_signed, &ilo, &ihi);
        for (int64_t i = (int64_t)u0 * HW; i < (int64_t)u1 * HW; i++)
            out[i] = clamp32(T[x[i] - ilo], L->clamp_lo, L->clamp_hi);
        return ((int64_t)u1 - u0) * HW;
    }
    case QS_L_MUL: {
        const qs_layer *IN2 = &net->layers[L->inputs[1]];
        const int32_t *x2 = outputs[L->inputs[1]];
        if (L->param == QS_MUL_ROWMAX) { /* y = requant_c((a - za) * max_c' |b[c'] - zb|), per position */
            const int64_t C2 = IN2->out_c;
            for (int32_t p = u0; p < u1; p++) {
                int64_t m = 0;
                for (int64_t c = 0; c < C2; c++) {
                    int64_t v = (int64_t)x2[c * HW + p] - IN2->out_zp;
                    if (v < 0) v = -v;
                    if (v > m) m = v;
                }
                for (int64_t c = 0; c < C; c++)
                    out[c * HW + p] = qs_layer_requant(L, (int32_t)c, (int64_t)(x[c * HW + p] - IN->out_zp) * m);
            }
            return ((int64_t)u1 - u0) * (C2 + 2 * C);
        }
        for (int32_t c = u0; c < u1; c++)
            for (int64_t p = 0; p < HW; p++) {
                int64_t i = c * HW + p;
                out[i] = qs_layer_requant(L, c, (int64_t)(x[i] - IN->out_zp) * (x2[i] - IN2->out_zp));
            }
        return 2 * ((int64_t)u1 - u0) * HW;
    }
    case QS_L_SOFTMAX: {
        const int32_t *T = net->tensors[L->weight].data;
        const int axis = QS_SOFTMAX_AXIS(L->param), causal = QS_SOFTMAX_IS_CAUSAL(L->param);
        const int64_t offset = QS_SOFTMAX_OFFSET(L->param);
        if (axis == 0) {
            for (int32_t p = u0; p < u1; p++) softmax_line(L, T, x + p, (int32_t)C, HW, C, out + p);
            return 3 * ((int64_t)u1 - u0) * C;
        }
        if (axis == 2) { /* rows are the lines (c, h), W elements each, side by side */
            for (int64_t r = u0; r < u1; r++) /* query h = r mod H keeps keys w <= h + offset */
                softmax_line(L, T, x + r * W, (int32_t)W, 1, causal ? r % H + offset + 1 : W, out + r * W);
            return 3 * ((int64_t)u1 - u0) * W;
        }
        for (int32_t c = u0; c < u1; c++) /* query w keeps keys h <= w + offset */
            for (int64_t w = 0; w < W; w++)
                softmax_line(L, T, x + c * HW + w, (int32_t)H, W, causal ? w + offset + 1 : H, out + c * HW + w);
        return 3 * ((int64_t)u1 - u0) * HW;
    }
    case QS_L_ROPE: { /* per position p (token t = p, W = 1), per head, pairs (i, i + dh/2) */
        const int32_t *tab = net->tensors[L->weight].data;
        const int64_t dh = QS_ROPE_HEAD_DIM(L->param), half = dh / 2, off = QS_ROPE_OFFSET(L->param);
        for (int32_t p = u0; p < u1; p++) {
            const int32_t *row = tab + (p + off) * dh; /* [dh/2][2] of this position */
            for (int64_t h0 = 0; h0 < C; h0 += dh)
                for (int64_t i = 0; i < half; i++) {
                    const int64_t a = h0 + i, b = h0 + i + half, cs = row[2 * i], sn = row[2 * i + 1];
                    const int64_t xa = (int64_t)x[a * HW + p] - IN->out_zp, xb = (int64_t)x[b * HW + p] - IN->out_zp;
                    out[a * HW + p] = qs_layer_requant(L, (int32_t)a, xa * cs - xb * sn);
                    out[b * HW + p] = qs_layer_requant(L, (int32_t)b, xa * sn + xb * cs);
                }
        }
        return 3 * ((int64_t)u1 - u0) * C;
    }
    case QS_L_EMBED: { /* y[c, t] = clamp(table[id_t][c] (+ pos[t + param][c])); ids < vocab (checked when
                        * the input is set) */
        const qs_tensor *tab = &net->tensors[L->weight];
        const int32_t *pos = L->bias >= 0 ? net->tensors[L->bias].data : NULL;
        const int64_t vocab = tab->shape[0];
        for (int32_t p = u0; p < u1; p++) {
            const int64_t id = x[p] < 0 ? 0 : x[p] >= vocab ? vocab - 1 : x[p]; /* never clamps: a guard */
            const int32_t *prow = pos ? pos + ((int64_t)p + L->param) * C : NULL;
            for (int64_t c = 0; c < C; c++)
                out[c * HW + p] = clamp32((int64_t)tab->data[id * C + c] + (prow ? prow[c] : 0), L->clamp_lo,
                                          L->clamp_hi);
        }
        return ((int64_t)u1 - u0) * C * (pos ? 2 : 1);
    }
    case QS_L_ARGMAX: { /* the lowest channel holding the position's largest value */
        const int64_t CI = IN->out_c;
        for (int32_t p = u0; p < u1; p++) {
            int64_t best = 0;
            for (int64_t c = 1; c < CI; c++)
                if (x[c * HW + p] > x[best * HW + p]) best = c;
            out[p] = clamp32(best, L->clamp_lo, L->clamp_hi);
        }
        return ((int64_t)u1 - u0) * CI;
    }
    case QS_L_KVCACHE: { /* a step (weight = cached rows C x H x past): cached rows, then the new ones along W */
        const int32_t *pastv = L->weight >= 0 ? net->tensors[L->weight].data : NULL;
        const int64_t Wn = IN->out_w, past = W - Wn;
        for (int64_t c = u0; c < u1; c++)
            for (int64_t h = 0; h < H; h++) {
                int32_t *o = out + (c * H + h) * W;
                for (int64_t w = 0; w < past; w++) o[w] = pastv[(c * H + h) * past + w];
                for (int64_t w = 0; w < Wn; w++) o[past + w] = x[(c * H + h) * Wn + w];
            }
        return ((int64_t)u1 - u0) * H * Wn; /* the PPU moves the new rows only */
    }
    case QS_L_DYNQUANT: {
        const int64_t q = ((int64_t)1 << (L->out_bits - 1)) - 1;
        for (int32_t p = u0; p < u1; p++) {
            int64_t m = 0; /* absmax of the position's centered values */
            for (int64_t c = 0; c < C; c++) {
                int64_t v = (int64_t)x[c * HW + p] - IN->out_zp;
                if (v < 0) v = -v;
                if (v > m) m = v;
            }
            for (int64_t c = 0; c < C; c++) {
                int64_t v = (int64_t)x[c * HW + p] - IN->out_zp, y = 0;
                if (m > 0) { /* round(v q / m), halves away from zero */
                    int64_t mag = (2 * (v < 0 ? -v : v) * q + m) / (2 * m);
                    y = v < 0 ? -mag : mag;
                }
                out[c * HW + p] = clamp32(y, L->clamp_lo, L->clamp_hi);
            }
            ops += 2 * C + QS_PPU_SQRT_OPS;
        }
        return ops;
    }
    case QS_L_LAYERNORM:
    case QS_L_RMSNORM: {
        const int32_t *bias = L->bias >= 0 ? net->tensors[L->bias].data : NULL;
        for (int32_t p = u0; p < u1; p++) {
            qs_norm_stats st = qs_norm_stats_of(L->kind == QS_L_LAYERNORM, x + p, IN->out_zp, (int32_t)C, HW);
            for (int64_t c = 0; c < C; c++) {
                int64_t z = qs_norm_value(&st, x[c * HW + p] - IN->out_zp);
                out[c * HW + p] = qs_layer_requant(L, (int32_t)c, z + (bias ? bias[c] : 0));
            }
            ops += (L->kind == QS_L_LAYERNORM ? 3 : 2) * C + QS_PPU_SQRT_OPS;
        }
        return ops;
    }
    default:
        return 0;
    }
}

/* ---- decoding with a KV cache (docs/decode.md, "The step graph") ---------------- */

static qs_status decode_fail(qs_error *err, const char *where, const qs_net *net, int32_t li, const char *why)
{
    return qs_fail(err, QS_ERR_FORMAT, "%s: layer %d '%s' (%s): cannot run in decode steps: %s", where, (int)li,
                   net->layers[li].name, qs_layer_kind_name(net->layers[li].kind), why);
}

int32_t qs_decode_n_caches(const qs_net *net)
{
    int32_t n = 0;
    for (int32_t i = 0; i < net->n_layers; i++) n += net->layers[i].kind == QS_L_KVCACHE;
    return n;
}

qs_status qs_decode_roles(const qs_net *net, const char *where, uint8_t (*roles)[3], qs_error *err)
{
    enum { F = QS_ROLE_FIXED, T = QS_ROLE_TOKENS, K = QS_ROLE_KEYS };
    const int32_t tokens = net->layers[0].out_h;
    if (net->layers[0].out_w != 1)
        return decode_fail(err, where, net, 0, "the prompt's tokens run along H, so its W must be 1");
    for (int32_t li = 0; li < net->n_layers; li++) {
        const qs_layer *L = &net->layers[li];
        uint8_t *r = roles[li];
        r[0] = r[1] = r[2] = F;
        if (li == 0) {
            r[1] = T;
            continue;
        }
        const uint8_t *a = roles[L->inputs[0]];
        int moves = 0; /* does any input carry tokens or keys? */
        for (int32_t k = 0; k < L->n_inputs; k++)
            for (int ax = 0; ax < 3; ax++) moves |= roles[L->inputs[k]][ax] != F;
        if (a[0] != F) return decode_fail(err, where, net, li, "tokens along channels");
        switch (L->kind) {
        case QS_L_CONV:
            if (moves && (L->kh != 1 || L->kw != 1 || L->stride_h != 1 || L->stride_w != 1 || L->pad_t || L->pad_l ||
                          L->pad_b || L->pad_r))
                return decode_fail(err, where, net, li, "a convolution over tokens must be 1x1, stride 1, no padding");
            memcpy(r, a, 3);
            break;
        case QS_L_ACT:
        case QS_L_REQUANT:
        case QS_L_LUT:
        case QS_L_LAYERNORM:
        case QS_L_RMSNORM:
        case QS_L_DYNQUANT:
        case QS_L_EMBED:  /* each token's id -> its row */
        case QS_L_ARGMAX: /* each token's channels -> one index */
            memcpy(r, a, 3);
            break;
        case QS_L_ROPE:
            if (a[1] != T) return decode_fail(err, where, net, li, "rope's positions must be the new tokens (H)");
            memcpy(r, a, 3);
            break;
        case QS_L_ADD:
        case QS_L_MUL:
            if (memcmp(a, roles[L->inputs[1]], 3))
                return decode_fail(err, where, net, li, "its two inputs hold tokens along different axes");
            memcpy(r, a, 3);
            break;
        case QS_L_SOFTMAX: {
            const int axis = QS_SOFTMAX_AXIS(L->param);
            if (a[axis] == T)
                return decode_fail(err, where, net, li, "a softmax along the tokens mixes them (a step has one)");
            if (a[axis] == K && (!QS_SOFTMAX_IS_CAUSAL(L->param) || a[axis == 2 ? 1 : 2] != T))
                return decode_fail(err, where, net, li, "a softmax over cached keys needs the causal mask with the "
                                                        "new tokens as its queries");
            memcpy(r, a, 3);
            break;
        }
        case QS_L_MATMUL: {
            const uint8_t *b = roles[L->inputs[1]];
            const int ta = L->param & 1, tb = (L->param >> 1) & 1;
            const uint8_t ka = a[ta ? 1 : 2], kb = b[tb ? 2 : 1];
            if (b[0] != F) return decode_fail(err, where, net, li, "tokens along B's channels");
            if (ka != kb) return decode_fail(err, where, net, li, "A and B reduce over axes of different roles");
            if (ka == T)
                return decode_fail(err, where, net, li, "it reduces over the new tokens: put a kvcache on the operand "
                                                        "that holds the keys");
            r[1] = a[ta ? 2 : 1];
            r[2] = b[tb ? 1 : 2];
            break;
        }
        case QS_L_RESHAPE: {
            const qs_layer *IN = &net->layers[L->inputs[0]];
            if (!moves) break;
            if (a[1] != F && a[2] == F && IN->out_w == 1 && L->out_w == IN->out_h) {
                r[2] = a[1]; /* (C, X, 1) -> (C1, C2, X): X stays the fastest index */
            } else if (a[1] == F && a[2] != F && L->out_w == 1 && L->out_h == IN->out_w) {
                r[1] = a[2]; /* (C1, C2, X) -> (C, X, 1) */
            } else {
                return decode_fail(err, where, net, li, "a reshape over tokens maps (C, X, 1) to (C1, C2, X) or back");
            }
            break;
        }
        case QS_L_KVCACHE:
            if (a[1] != F || a[2] != T)
                return decode_fail(err, where, net, li, "a kvcache's input holds the new tokens along W "
                                                        "(heads x head size x tokens)");
            r[2] = K;
            break;
        default:
            if (moves) return decode_fail(err, where, net, li, "this kind mixes positions or flattens tokens");
            break;
        }
        const int32_t ext[3] = {L->out_c, L->out_h, L->out_w};
        for (int ax = 1; ax < 3; ax++)
            if (r[ax] != F && ext[ax] != tokens)
                return decode_fail(err, where, net, li, "an axis holding tokens has an extent other than the prompt's");
    }
    return QS_OK;
}

void qs_decode_step_free(qs_net *step)
{
    if (!step) return;
    qs_free(step->layers);
    qs_free(step->tensors);
    qs_free(step);
}

qs_status qs_decode_step_net(const qs_net *net, const char *where, const uint8_t (*roles)[3], int32_t past,
                             int32_t tokens, const int32_t *const *caches, qs_net **out, qs_error *err)
{
    *out = NULL;
    const int32_t n_caches = qs_decode_n_caches(net);
    if (past < 0 || tokens < 1)
        return qs_fail(err, QS_ERR_ARG, "%s: a decode step of %d tokens after %d", where, (int)tokens, (int)past);
    qs_net *s = qs_calloc(1, sizeof *s);
    if (!s) return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    *s = *net;
    s->layers = qs_malloc(sizeof *s->layers * (size_t)net->n_layers);
    s->tensors = qs_calloc((size_t)net->n_tensors + (size_t)n_caches, sizeof *s->tensors);
    if (!s->layers || !s->tensors) {
        qs_decode_step_free(s);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory");
    }
    memcpy(s->layers, net->layers, sizeof *s->layers * (size_t)net->n_layers);
    if (net->n_tensors) memcpy(s->tensors, net->tensors, sizeof *s->tensors * (size_t)net->n_tensors);
    const int64_t keys = (int64_t)past + tokens;
    int32_t ci = 0;
    /* refusals below free the step graph first: their messages name the layer from `net` */
    for (int32_t li = 0; li < net->n_layers; li++) {
        qs_layer *L = &s->layers[li];
        int32_t *ext[3] = {&L->out_c, &L->out_h, &L->out_w};
        for (int ax = 1; ax < 3; ax++)
            if (roles[li][ax] == QS_ROLE_TOKENS) *ext[ax] = tokens;
            else if (roles[li][ax] == QS_ROLE_KEYS) *ext[ax] = (int32_t)keys;
        if (L->kind == QS_L_KVCACHE) {
            if (keys > L->param) {
                qs_decode_step_free(s);
                return qs_fail(err, QS_ERR_FORMAT, "%s: layer %d '%s' (kvcache): a KV cache longer than its maximum: "
                               "%lld tokens (%d cached + %d new) exceed the maximum context %d", where, (int)li,
                               net->layers[li].name, (long long)keys, (int)past, (int)tokens,
                               (int)net->layers[li].param);
            }
            if (past > 0) { /* the cached rows, C x H x past, as a tensor the step reads */
                qs_tensor *t = &s->tensors[net->n_tensors + ci];
                snprintf(t->name, sizeof t->name, "%.40s.past", L->name);
                t->dtype = L->out_bits <= 8 ? QS_DT_INT8 : QS_DT_INT16;
                t->is_signed = L->out_signed;
                t->ndim = 3;
                t->shape[0] = L->out_c;
                t->shape[1] = L->out_h;
                t->shape[2] = past;
                t->shape[3] = 1;
                t->count = (int64_t)L->out_c * L->out_h * past;
                t->data = (int32_t *)caches[ci];
                L->weight = net->n_tensors + ci;
            }
            ci++;
        } else if (L->kind == QS_L_SOFTMAX && QS_SOFTMAX_IS_CAUSAL(L->param)) {
            int64_t off = (int64_t)QS_SOFTMAX_OFFSET(L->param) + past;
            if (off > (INT32_MAX >> QS_SOFTMAX_OFFSET_SHIFT)) {
                qs_decode_step_free(s);
                return qs_fail(err, QS_ERR_FORMAT, "%s: layer %d '%s' (softmax): offset %lld too large", where,
                               (int)li, net->layers[li].name, (long long)off);
            }
            L->param = (int32_t)((L->param & ((1 << QS_SOFTMAX_OFFSET_SHIFT) - 1)) | (off << QS_SOFTMAX_OFFSET_SHIFT));
        } else if (L->kind == QS_L_ROPE) {
            int64_t off = (int64_t)QS_ROPE_OFFSET(L->param) + past;
            const qs_tensor *t = &net->tensors[L->weight];
            if (off + tokens > t->shape[0] || off > 0x7fff) {
                qs_decode_step_free(s);
                return qs_fail(err, QS_ERR_FORMAT, "%s: layer %d '%s' (rope): table '%s' holds %lld positions; a "
                               "decode step at position %lld needs %lld", where, (int)li, net->layers[li].name, t->name,
                               (long long)t->shape[0], (long long)off, (long long)(off + tokens));
            }
            L->param = (int32_t)((L->param & 0xffff) | (off << 16));
        } else if (L->kind == QS_L_EMBED && L->bias >= 0) { /* the position table's rows follow the tokens */
            int64_t off = (int64_t)L->param + past;
            const qs_tensor *t = &net->tensors[L->bias];
            if (off + tokens > t->shape[0]) {
                qs_decode_step_free(s);
                return qs_fail(err, QS_ERR_FORMAT, "%s: layer %d '%s' (embed): position table '%s' holds %lld "
                               "positions; a decode step at position %lld needs %lld", where, (int)li, net->layers[li].name,
                               t->name, (long long)t->shape[0], (long long)off, (long long)(off + tokens));
            }
            L->param = (int32_t)off;
        }
    }
    s->n_tensors = net->n_tensors + n_caches;
    *out = s;
    return QS_OK;
}
