#include "pe_array.h"
#include "qs_alloc.h"

#include <stdlib.h>
#include <string.h>

/* One PE's registers. Operand registers hold what arrived last clock and
 * are what the east/south neighbour sees this clock. */
typedef struct {
    int32_t x;       /* OS: activation moving east; WS/IS: streaming operand moving east */
    uint8_t xv, xs;  /* valid, slice index (IS) */
    int32_t y;       /* OS: weight slice moving south */
    uint8_t yv, ys;
    int32_t stat;    /* WS/IS: stationary operand */
    uint8_t stat_s;  /* WS: its slice index */
    uint8_t stat_v;  /* WS/IS: a value was loaded (unused columns hold none) */
    int32_t acc;     /* OS: accumulator; WS/IS: partial sum moving south */
    uint8_t accv;
    uint8_t yo;      /* OS lookahead: the weight's window entry */
} qs_pe;

/* OS lookahead: the activation window each PE holds and forwards east, H + 1
 * entries per PE (entry 0 is the oldest step), kept apart from qs_pe so that
 * arrays without lookahead stay as small as before. */
#define QS_PE_MAX_WINDOW 8

struct qs_pe_array {
    qs_pe_array_cfg cfg;
    qs_pe *pe;       /* rows*cols, row-major */
    int32_t *xw;     /* lookahead: rows*cols*(H+1) window values */
    uint8_t *xwv;    /* and their valid bits */
};

qs_status qs_pe_array_create(const qs_pe_array_cfg *cfg, qs_pe_array **out, qs_error *err)
{
    *out = NULL;
    if (cfg->rows < 1 || cfg->cols < 1 || cfg->rows > 4096 || cfg->cols > 4096)
        return qs_fail(err, QS_ERR_ARG, "pe array: %dx%d is out of range", cfg->rows, cfg->cols);
    /* products are shifted by weight_path_bits * slice index with slices of
     * weights up to 16 bits: keep the shift well inside int64 */
    if (cfg->weight_path_bits < 1 || cfg->weight_path_bits > 8)
        return qs_fail(err, QS_ERR_ARG, "pe array: weight_path_bits %d out of range 1..8", cfg->weight_path_bits);
    if (cfg->acc_bits < 2 || cfg->acc_bits > 32)
        return qs_fail(err, QS_ERR_ARG, "pe array: acc_bits %d out of range", cfg->acc_bits);
    if (cfg->lookahead < 0 || cfg->lookahead >= QS_PE_MAX_WINDOW || (cfg->lookahead > 0 && cfg->dataflow != QS_DF_OS))
        return qs_fail(err, QS_ERR_ARG, "pe array: lookahead %d out of range 0..%d (OS only)", cfg->lookahead,
                       QS_PE_MAX_WINDOW - 1);
    qs_pe_array *a = qs_calloc(1, sizeof *a);
    if (!a) return qs_fail(err, QS_ERR_NOMEM, "pe array: out of memory");
    a->cfg = *cfg;
    a->pe = qs_calloc((size_t)cfg->rows * (size_t)cfg->cols, sizeof *a->pe);
    size_t win = cfg->lookahead > 0 ? (size_t)cfg->rows * (size_t)cfg->cols * (size_t)(cfg->lookahead + 1) : 0;
    if (win) {
        a->xw = qs_calloc(win, sizeof *a->xw);
        a->xwv = qs_calloc(win, 1);
    }
    if (!a->pe || (win && (!a->xw || !a->xwv))) {
        qs_pe_array_destroy(a);
        return qs_fail(err, QS_ERR_NOMEM, "pe array: out of memory");
    }
    *out = a;
    return QS_OK;
}

void qs_pe_array_destroy(qs_pe_array *a)
{
    if (!a) return;
    qs_free(a->pe);
    qs_free(a->xw);
    qs_free(a->xwv);
    qs_free(a);
}

void qs_pe_array_reset(qs_pe_array *a)
{
    memset(a->pe, 0, (size_t)a->cfg.rows * (size_t)a->cfg.cols * sizeof *a->pe);
    if (a->xw) {
        size_t win = (size_t)a->cfg.rows * (size_t)a->cfg.cols * (size_t)(a->cfg.lookahead + 1);
        memset(a->xw, 0, win * sizeof *a->xw);
        memset(a->xwv, 0, win);
    }
}

int32_t qs_pe_array_acc(const qs_pe_array *a, int32_t i, int32_t j)
{
    return a->pe[(size_t)i * (size_t)a->cfg.cols + (size_t)j].acc;
}

int32_t qs_pe_array_stationary(const qs_pe_array *a, int32_t i, int32_t j)
{
    return a->pe[(size_t)i * (size_t)a->cfg.cols + (size_t)j].stat;
}

int32_t qs_pe_array_acc_valid(const qs_pe_array *a, int32_t i, int32_t j)
{
    return a->pe[(size_t)i * (size_t)a->cfg.cols + (size_t)j].accv;
}

void qs_pe_array_observe(const qs_pe_array *a, int32_t *acc, uint8_t *acc_valid, int32_t *stat)
{
    /* one loop per array: called every co-simulated clock */
    const size_t n = (size_t)a->cfg.rows * (size_t)a->cfg.cols;
    if (acc)
        for (size_t k = 0; k < n; k++) acc[k] = a->pe[k].acc;
    if (acc_valid)
        for (size_t k = 0; k < n; k++) acc_valid[k] = a->pe[k].accv;
    if (stat)
        for (size_t k = 0; k < n; k++) stat[k] = a->pe[k].stat;
}

const qs_pe_array_cfg *qs_pe_array_config(const qs_pe_array *a) { return &a->cfg; }

/* An output-stationary PE's step with both operands valid: gated when
 * zero-skip gating sees a zero operand, else the product, shifted to its
 * weight slice's place, goes into the accumulator (with or without lookahead,
 * the same datapath). */
static inline void os_mac(const qs_pe_array_cfg *c, qs_pe *p, int32_t x, int32_t y, uint8_t ys, uint32_t *active,
                          uint32_t *gated, uint32_t *ovfs)
{
    if (c->gate && (x == 0 || y == 0)) {
        (*gated)++;
        return;
    }
    int ovf = 0;
    p->acc = qs_acc_add(p->acc, ((int64_t)x * y) * ((int64_t)1 << (c->weight_path_bits * ys)), c->acc_bits,
                        c->overflow, &ovf);
    *ovfs += (uint32_t)ovf;
    (*active)++;
}

/* Registers update from their west/north neighbours' values of the previous
 * clock, so PEs are visited from the south-east corner backwards: a PE reads
 * its neighbours before they are overwritten. */
void qs_pe_array_tick(qs_pe_array *a, const qs_pe_in *in, qs_pe_out *out)
{
    const qs_pe_array_cfg *c = &a->cfg;
    const int R = c->rows, C = c->cols, wpb = c->weight_path_bits;
    uint32_t active = 0, gated = 0, ovfs = 0;

    if (c->dataflow == QS_DF_OS && c->lookahead > 0) {
        /* the window moves east like a single activation; the weight slice
         * brings the index of the entry it multiplies */
        const int W = c->lookahead + 1;
        for (int i = R - 1; i >= 0; i--) {
            for (int j = C - 1; j >= 0; j--) {
                size_t at = (size_t)i * C + j;
                qs_pe *p = &a->pe[at];
                int32_t *xw = &a->xw[at * W];
                uint8_t *xwv = &a->xwv[at * W];
                const int32_t *wx = j ? xw - W : &in->west[(size_t)i * W];
                const uint8_t *wxv = j ? xwv - W : &in->west_valid[(size_t)i * W];
                const qs_pe *n = i ? p - C : NULL;
                int32_t y = n ? n->y : in->north[j];
                uint8_t yv = n ? n->yv : in->north_valid[j];
                uint8_t ys = n ? n->ys : (in->north_shift ? in->north_shift[j] : 0);
                uint8_t yo = n ? n->yo : (in->north_offset ? in->north_offset[j] : 0);
                if (yo >= W) { /* an entry the window does not have selects nothing */
                    yo = 0;
                    yv = 0;
                }
                if (in->clear) p->acc = 0;
                int32_t x = wx[yo];
                if (wxv[yo] && yv) os_mac(c, p, x, y, ys, &active, &gated, &ovfs);
                for (int w = 0; w < W; w++) {
                    xw[w] = wx[w];
                    xwv[w] = wxv[w];
                }
                p->y = y; p->yv = yv; p->ys = ys; p->yo = yo;
            }
        }
    } else if (c->dataflow == QS_DF_OS) {
        for (int i = R - 1; i >= 0; i--) {
            for (int j = C - 1; j >= 0; j--) {
                qs_pe *p = &a->pe[(size_t)i * C + j];
                const qs_pe *w = j ? p - 1 : NULL, *n = i ? p - C : NULL;
                int32_t x = w ? w->x : in->west[i];
                uint8_t xv = w ? w->xv : in->west_valid[i];
                int32_t y = n ? n->y : in->north[j];
                uint8_t yv = n ? n->yv : in->north_valid[j];
                uint8_t ys = n ? n->ys : (in->north_shift ? in->north_shift[j] : 0);
                if (in->clear) p->acc = 0;
                if (xv && yv) os_mac(c, p, x, y, ys, &active, &gated, &ovfs);
                p->x = x; p->xv = xv;
                p->y = y; p->yv = yv; p->ys = ys;
            }
        }
    } else {
        for (int i = R - 1; i >= 0; i--) {
            for (int j = C - 1; j >= 0; j--) {
                qs_pe *p = &a->pe[(size_t)i * C + j];
                const qs_pe *w = j ? p - 1 : NULL, *n = i ? p - C : NULL;
                if (in->load) {
                    /* stationary values shift down one row per clock */
                    p->stat = n ? n->stat : in->north[j];
                    p->stat_s = n ? n->stat_s : (in->north_shift ? in->north_shift[j] : 0);
                    p->stat_v = n ? n->stat_v : in->north_valid[j];
                    p->xv = 0; p->accv = 0;
                    continue;
                }
                int32_t x = w ? w->x : in->west[i];
                uint8_t xv = w ? w->xv : in->west_valid[i];
                uint8_t xs = w ? w->xs : (in->west_shift ? in->west_shift[i] : 0);
                int32_t psum = n ? n->acc : 0;
                uint8_t psumv = n ? n->accv : 0;
                int32_t acc = psum;
                if (xv && p->stat_v) {
                    if (c->gate && (x == 0 || p->stat == 0)) {
                        gated++;
                    } else {
                        int ovf = 0;
                        acc = qs_acc_add(psum, ((int64_t)x * p->stat) * ((int64_t)1 << (wpb * (xs + p->stat_s))),
                                         c->acc_bits, c->overflow, &ovf);
                        ovfs += (uint32_t)ovf;
                        active++;
                    }
                }
                p->x = x; p->xv = xv; p->xs = xs;
                p->acc = acc; p->accv = (uint8_t)(xv | psumv);
            }
        }
        if (out && out->south) {
            for (int j = 0; j < C; j++) {
                const qs_pe *p = &a->pe[(size_t)(R - 1) * C + j];
                out->south[j] = p->acc;
                out->south_valid[j] = p->accv;
            }
        }
    }
    if (c->dataflow == QS_DF_OS && out && out->south) { /* nothing leaves south in OS */
        for (int j = 0; j < C; j++) {
            out->south[j] = 0;
            out->south_valid[j] = 0;
        }
    }
    if (out) {
        out->active = active;
        out->gated = gated;
        out->overflows = ovfs;
    }
}
