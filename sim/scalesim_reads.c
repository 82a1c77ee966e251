/* SCALE-Sim v2's CALC-mode read buffers, replayed (scalesim_reads.h; rules
 * and reasons in docs/scalesim.md, "DRAM reads"). */
#include "scalesim_reads.h"
#include "qs_alloc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "scalesim_mem.h"

/* SCALE-Sim's estimate-bandwidth read buffer: 100 sets of floor(words/100)
 * distinct addresses, the first 50 the active window, 50 prefetched; its
 * CALC-mode default DRAM bandwidth is 10 words per cycle. */
enum { SETS_ACTIVE = 50, SETS_PREFETCH = 50, CALC_READ_BW = 10 };

typedef struct {
    int32_t per_set;         /* addresses per set */
    /* the addresses of the sets in the window and of the set being filled,
     * as an open-addressing table (empty slots -1): at most 50 sets' worth,
     * so the table is bounded by the SRAM size, not by the operand */
    int64_t *table;
    int64_t mask;            /* table size - 1 (a power of two, at least twice the window) */
    /* or, for operands of at most direct_limit addresses, one int32 per
     * address: 1 + the window it joined (0: none) */
    int32_t *joined;
    int64_t window_words;    /* 50 x per_set: insertions that complete a window */
    int64_t in_window;       /* insertions since the window last moved */
    int64_t cur_set;         /* set being filled */
    int32_t elems;           /* addresses in it */
    int32_t active_done;     /* the window moved at least once */
    int32_t have_first;
    int64_t first_request;   /* cycle of the first demand row with an address */
    int64_t last_trigger;    /* cycle of the row that completed the last window */
    int64_t window_id;       /* times the window moved (for the fold skip) */
    uint64_t reads;          /* addresses fetched = set insertions */
    int64_t sram_first_row_cycle, sram_last_row_cycle;
} est_buf;

static uint64_t hash_addr(int64_t a)
{
    uint64_t x = (uint64_t)a * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

/* One requested address at `cycle`: SCALE-Sim's manage_prefetches. A hit in
 * a set of the window, or an address already in the set being filled,
 * fetches nothing; any other joins the set being filled. The window only
 * holds the sets completed since it last moved (when the 50th of them is
 * complete it moves past all of them), so the table holds exactly the
 * addresses inserted since then and is emptied when it moves. */
static void est_access(est_buf *b, int64_t addr, int64_t cycle)
{
    if (b->joined) {
        if (b->joined[addr] == (int32_t)(b->window_id + 1)) return;
        b->joined[addr] = (int32_t)(b->window_id + 1);
    } else {
        uint64_t i = hash_addr(addr) & (uint64_t)b->mask;
        while (b->table[i] >= 0) {
            if (b->table[i] == addr) return;
            i = (i + 1) & (uint64_t)b->mask;
        }
        b->table[i] = addr;
    }
    b->reads++;
    b->in_window++;
    if (++b->elems != b->per_set) return;
    b->cur_set++;
    b->elems = 0;
    if (b->in_window == b->window_words) {
        /* the window is complete: its sets are fetched (the first time
         * ahead of the first request), and the window moves past them */
        b->active_done = 1;
        b->window_id++;
        b->in_window = 0;
        b->last_trigger = cycle;
        if (b->table) memset(b->table, 0xff, sizeof *b->table * (size_t)(b->mask + 1));
    }
}

static void est_row_seen(est_buf *b, int64_t cycle)
{
    if (!b->have_first) {
        b->have_first = 1;
        b->first_request = cycle;
        b->sram_first_row_cycle = cycle;
    }
    b->sram_last_row_cycle = cycle;
}

/* The layer's addresses, SCALE-Sim's operand_matrix without offsets. */
typedef struct {
    int64_t H, W, Ch, Ew, sh, sw, K;
    int32_t *win_r, *win_c;  /* per window index j: filter row, column */
    int64_t *win_off;        /* per window index j: address offset inside the window */
    int32_t *pix_r, *pix_c;  /* per ofmap pixel p: first ifmap row, column of its window */
    int64_t *pix_base;       /* per ofmap pixel p: address of its window's first element */
} geom;

/* ifmap address of ofmap pixel p, window element j; -1 past the ifmap edge
 * (tables: no division per request) */
static inline int64_t ifmap_addr(const geom *g, int64_t p, int64_t j)
{
    if (g->pix_r[p] + g->win_r[j] >= g->H || g->pix_c[p] + g->win_c[j] >= g->W) return -1;
    return g->pix_base[p] + g->win_off[j];
}

static int64_t filter_addr(const geom *g, int64_t j, int64_t n) { return n * g->K + j; }

typedef struct {
    const uint64_t *row, *amount;
    int64_t n, next;
    uint64_t cum;
} stall_cursor;

/* cycle of demand row r (rows visited in increasing order) */
static int64_t row_cycle(stall_cursor *s, uint64_t r)
{
    while (s->next < s->n && s->row[s->next] < r) s->cum += s->amount[s->next++];
    return (int64_t)(r + s->cum);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct {
    qs_dataflow df;
    int64_t R, C, Sr, Sc, T, row_folds, col_folds;
} fold_shape;

static void fold_shape_init(fold_shape *f, const qs_scalesim_layer *l, const qs_arch *a)
{
    f->df = a->dataflow;
    f->R = a->rows;
    f->C = a->cols;
    qs_scalesim_spatiotemporal(l, a->dataflow, &f->Sr, &f->Sc, &f->T);
    f->row_folds = (f->Sr + f->R - 1) / f->R;
    f->col_folds = (f->Sc + f->C - 1) / f->C;
}

/* The real addresses of demand row t of fold (fr, fc) of operand op (0
 * ifmap, 1 filter), in column order, into addrs (room for max(R, C));
 * returns how many. Streamed operands are skewed (column c delayed by c;
 * WS ifmap and IS filter after R preload rows), stationary ones (WS filter,
 * IS ifmap) flipped over the first R rows; folds of fewer rows or columns
 * and window positions past the ifmap edge request nothing. */
static int32_t demand_row(const geom *g, const fold_shape *f, int op, int64_t fr, int64_t fc, int64_t t,
                          int64_t *addrs)
{
    const int64_t R = f->R, C = f->C, T = f->T;
    int64_t ku = min64(R, f->Sr - fr * R), cu = min64(C, f->Sc - fc * C);
    int64_t c0 = 0, c1 = -1;
    if (f->df == QS_DF_OS) {
        c0 = max64(0, t - T + 1);
        c1 = min64((op == 0 ? ku : cu) - 1, t);
    } else if ((f->df == QS_DF_WS && op == 0) || (f->df == QS_DF_IS && op == 1)) {
        c0 = max64(0, t - R - T + 1);
        c1 = min64(ku - 1, t - R);
    } else if (t < R && R - 1 - t < ku) {
        c1 = cu - 1;
    }
    int32_t n = 0;
    for (int64_t c = c0; c <= c1; c++) {
        int64_t addr;
        if (f->df == QS_DF_OS)
            addr = op == 0 ? ifmap_addr(g, fr * R + c, t - c) : filter_addr(g, t - c, fc * C + c);
        else if (f->df == QS_DF_WS)
            addr = op == 0 ? ifmap_addr(g, t - R - c, fr * R + c) : filter_addr(g, fr * R + R - 1 - t, fc * C + c);
        else
            addr = op == 0 ? ifmap_addr(g, fc * C + c, fr * R + R - 1 - t) : filter_addr(g, fr * R + c, t - R - c);
        if (addr >= 0) addrs[n++] = addr;
    }
    return n;
}

/* The operand block fold (fr, fc) reads, for folds that read the same block
 * again later (OS ifmap per row fold, filter per column fold; WS ifmap, IS
 * filter per row fold); -1 when no other fold reads it. */
static int64_t repeated_block(const fold_shape *f, int op, int64_t fr, int64_t fc)
{
    if (f->df == QS_DF_OS) return op == 0 ? fr : fc;
    if ((f->df == QS_DF_WS && op == 0) || (f->df == QS_DF_IS && op == 1)) return fr;
    return -1;
}

/* Walk operand `op` of every fold in SCALE-Sim's order (column folds
 * outer, row folds inner) through buffer b. A fold whose block was last
 * read with no window move during that read, and with none since, is in
 * the window entirely: all hits, nothing changes but its last row's cycle,
 * so it is not walked (a faster path, same figures). */
static qs_status walk(const geom *g, const fold_shape *f, int op, est_buf *b, const qs_ssmem *m, int64_t *addrs,
                      qs_error *err)
{
    stall_cursor sc = {m->stall_row, m->stall_amount, m->n_stall_log, 0, 0};
    uint64_t base = 0;
    const int64_t rows = qs_ssmem_fold_rows(f->df, (int32_t)f->R, (int32_t)f->C, f->T);
    const int64_t n_blocks = f->df == QS_DF_OS && op == 1 ? f->col_folds : f->row_folds;
    int64_t *block_window = qs_malloc(sizeof *block_window * (size_t)n_blocks);
    if (!block_window) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    for (int64_t i = 0; i < n_blocks; i++) block_window[i] = -1;
    for (int64_t fc = 0; fc < f->col_folds; fc++)
        for (int64_t fr = 0; fr < f->row_folds; fr++) {
            int64_t blk = repeated_block(f, op, fr, fc);
            if (blk >= 0 && block_window[blk] == b->window_id) {
                for (int64_t t = rows - 1; t >= 0; t--)
                    if (demand_row(g, f, op, fr, fc, t, addrs) > 0) {
                        stall_cursor peek = sc;
                        b->sram_last_row_cycle = row_cycle(&peek, base + (uint64_t)t);
                        break;
                    }
                base += (uint64_t)rows;
                continue;
            }
            int64_t window0 = b->window_id;
            for (int64_t t = 0; t < rows; t++) {
                int32_t n = demand_row(g, f, op, fr, fc, t, addrs);
                if (n == 0) continue;
                int64_t cycle = row_cycle(&sc, base + (uint64_t)t);
                est_row_seen(b, cycle);
                for (int32_t i = 0; i < n; i++) est_access(b, addrs[i], cycle);
            }
            if (blk >= 0 && b->window_id == window0) block_window[blk] = window0;
            base += (uint64_t)rows;
        }
    qs_free(block_window);
    return QS_OK;
}

static qs_status geom_init(geom *g, const qs_scalesim_layer *l, qs_error *err)
{
    int64_t M, N, K;
    qs_scalesim_mnk(l, &M, &N, &K);
    int32_t oh, ow;
    qs_scalesim_ofmap_dims(l, &oh, &ow);
    *g = (geom){l->ifmap_h, l->ifmap_w, l->channels, ow, l->stride_h, l->stride_w, K, NULL, NULL, NULL,
                NULL, NULL, NULL};
    (void)N;
    g->pix_r = qs_malloc(sizeof *g->pix_r * (size_t)M);
    g->pix_c = qs_malloc(sizeof *g->pix_c * (size_t)M);
    g->pix_base = qs_malloc(sizeof *g->pix_base * (size_t)M);
    if (!g->pix_r || !g->pix_c || !g->pix_base) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    for (int64_t p = 0; p < M; p++) {
        int64_t ir = (p / g->Ew) * g->sh, ic = (p % g->Ew) * g->sw;
        g->pix_r[p] = (int32_t)ir;
        g->pix_c[p] = (int32_t)ic;
        g->pix_base[p] = (ir * g->W + ic) * g->Ch;
    }
    g->win_r = qs_malloc(sizeof *g->win_r * (size_t)K);
    g->win_c = qs_malloc(sizeof *g->win_c * (size_t)K);
    g->win_off = qs_malloc(sizeof *g->win_off * (size_t)K);
    if (!g->win_r || !g->win_c || !g->win_off) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    for (int64_t j = 0; j < K; j++) {
        int64_t fs_ch = (int64_t)l->filter_w * g->Ch;
        int64_t cr = j / fs_ch, k = j % fs_ch, cc = k / g->Ch, ch = k % g->Ch;
        g->win_r[j] = (int32_t)cr;
        g->win_c[j] = (int32_t)cc;
        g->win_off[j] = (cr * g->W + cc) * g->Ch + ch;
    }
    return QS_OK;
}

static void geom_free(geom *g)
{
    qs_free(g->win_r);
    qs_free(g->win_c);
    qs_free(g->win_off);
    qs_free(g->pix_r);
    qs_free(g->pix_c);
    qs_free(g->pix_base);
    g->win_r = g->win_c = g->pix_r = g->pix_c = NULL;
    g->win_off = g->pix_base = NULL;
}

qs_status qs_ssreads_layer(const qs_scalesim_layer *l, const qs_arch *a, int64_t direct_limit, qs_ssreads *out,
                           qs_error *err)
{
    memset(out, 0, sizeof *out);
    if (a->scalesim_bandwidth > 0)
        return qs_fail(err, QS_ERR_UNSUPPORTED, "SCALE-Sim read replay: CALC bandwidth mode only");
    int64_t M, N, K;
    qs_scalesim_mnk(l, &M, &N, &K);
    int64_t n_addr[2] = {(int64_t)l->ifmap_h * l->ifmap_w * l->channels, K * N};
    if (n_addr[0] > INT32_MAX || n_addr[1] > INT32_MAX || K > INT32_MAX)
        return qs_fail(err, QS_ERR_ARG, "layer '%s': too large for SCALE-Sim's read replay", l->name);
    fold_shape f;
    fold_shape_init(&f, l, a);

    /* the stall timeline: SCALE-Sim's folds through the ofmap write buffer */
    qs_ssmem m;
    qs_scalesim_stats st;
    qs_ssmem_begin(&m, a, &st);
    m.log_stalls = 1;
    qs_status rc = QS_OK;
    for (int64_t fc = 0; fc < f.col_folds && !rc; fc++)
        for (int64_t fr = 0; fr < f.row_folds && !rc; fr++) {
            int32_t ku = (int32_t)min64(f.R, f.Sr - fr * f.R), cu = (int32_t)min64(f.C, f.Sc - fc * f.C);
            if (qs_ssmem_fold(&m, f.T, ku, cu, 0, 0) == UINT64_MAX || m.log_oom)
                rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
        }
    if (qs_ssmem_end(&m) < 0 && !rc) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    out->total_cycles = st.total_cycles;
    out->stall_cycles = st.stall_cycles;

    geom g;
    memset(&g, 0, sizeof g);
    int64_t *addrs = qs_malloc(sizeof *addrs * (size_t)(f.R > f.C ? f.R : f.C));
    if (!rc) rc = geom_init(&g, l, err);
    if (!rc && !addrs) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    const int64_t words[2] = {(int64_t)a->ifmap.size_kib * 1024, (int64_t)a->weight.size_kib * 1024};
    for (int op = 0; op < 2 && !rc; op++) {
        est_buf b;
        memset(&b, 0, sizeof b);
        b.per_set = (int32_t)(words[op] / 100);
        b.window_words = (int64_t)SETS_ACTIVE * b.per_set;
        if (b.window_words < 1) b.window_words = INT64_MAX; /* sets never complete (SRAM under 100 words) */
        /* a window id per address (fast) for operands up to direct_limit
         * addresses, else the window's addresses hashed (memory bounded by
         * the SRAM): the same answers. A layer cannot move the window 2^31
         * times on a direct table (that needs 2^31 x 500 requests). */
        if (n_addr[op] <= direct_limit) {
            b.joined = qs_calloc((size_t)n_addr[op], sizeof *b.joined);
            if (!b.joined) {
                rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
                break;
            }
        } else {
            int64_t need = b.window_words < n_addr[op] ? b.window_words : n_addr[op];
            int64_t size = 16;
            while (size < 2 * need) size *= 2;
            b.mask = size - 1;
            b.table = qs_malloc(sizeof *b.table * (size_t)size);
            if (!b.table) {
                rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
                break;
            }
            memset(b.table, 0xff, sizeof *b.table * (size_t)size);
        }
        rc = walk(&g, &f, op, &b, &m, addrs, err);
        qs_free(b.table);
        qs_free(b.joined);
        if (rc) break;
        out->dram_reads[op] = b.reads;
        out->sram_start[op] = b.sram_first_row_cycle + 1; /* one-cycle hit latency */
        out->sram_stop[op] = b.sram_last_row_cycle + 1;
        if (b.active_done) {
            /* the first window was fetched at 10 words/cycle, ending two
             * cycles before the first request (one for the DRAM latency);
             * the last fetch ends on the row that completed the last window,
             * and responses come one cycle after their request */
            int64_t first_fetch = (int64_t)SETS_ACTIVE * b.per_set / CALC_READ_BW; /* 5 x per_set, exact */
            out->dram_start[op] = b.first_request - 2 - first_fetch + 1 + 1;
            out->dram_stop[op] = b.last_trigger + 1;
        } else {
            /* everything fits the window: fetched before cycle 0, ending at
             * cycle -2, responses one later */
            int64_t sets = (int64_t)b.cur_set + (b.elems > 0 ? 1 : 0);
            int64_t cycles = (sets * b.per_set + CALC_READ_BW - 1) / CALC_READ_BW;
            out->dram_start[op] = -2 - cycles + 1 + 1;
            out->dram_stop[op] = -1;
        }
    }
    geom_free(&g);
    qs_free(addrs);
    qs_free(m.stall_row);
    qs_free(m.stall_amount);
    return rc;
}

/* ---- USER bandwidth mode ----------------------------------------------------------- */

typedef struct {
    /* hashed lines: the k-th real address of the fetch order is in line
     * k / per_line; occ_start[a] .. occ_start[a + 1] lists the lines
     * holding address a, increasing */
    int32_t *occ_start;      /* fetch-order entries < 2^31: the operand tensors are */
    int32_t *occ_line;
    int64_t n_lines;             /* lines (the last may be empty) */
    int64_t active_lines, prefetch_lines;
    int64_t win_start, win_end;  /* window of lines [start, end), circular; start == end: all */
    int64_t fetch_rows;          /* bandwidth-wide rows of the fetch order */
    int64_t bw;
    int64_t prefetch_words;      /* half of the SRAM refetched per miss */
    int64_t last_response;       /* cycle of the last DRAM response */
    uint64_t reads;              /* words requested (whole bandwidth rows) */
    int64_t first_response;
    int32_t filled;              /* the active half was fetched */
} user_buf;

struct qs_ssuser {
    geom g;
    fold_shape f;
    user_buf b[2];
    int64_t *addrs;
};

/* Element (y, c) of operand op's prefetch matrix, -1 for none; *rows and
 * *cols its shape, *diag whether SCALE-Sim reads it by anti-diagonals. */
static void prefetch_shape(const fold_shape *f, int op, int64_t *rows, int64_t *cols, int *diag)
{
    int streamed_by_rows = (f->df == QS_DF_OS) || (f->df == QS_DF_WS && op == 0) || (f->df == QS_DF_IS && op == 1);
    if (f->df == QS_DF_OS && op == 1) {
        *rows = f->T * f->col_folds;
        *cols = f->C;
    } else if (streamed_by_rows) {
        *rows = f->T * f->row_folds;
        *cols = f->R;
    } else { /* WS filter, IS ifmap: the stationary operand, one block per column fold */
        *rows = f->Sr * f->col_folds;
        *cols = f->C;
    }
    *diag = streamed_by_rows;
}

static int64_t prefetch_elem(const geom *g, const fold_shape *f, int op, int64_t y, int64_t c)
{
    if (f->df == QS_DF_OS) {
        int64_t blk = y / f->T, x = y % f->T;
        if (op == 0) {
            int64_t p = blk * f->R + c;
            return p < f->Sr ? ifmap_addr(g, p, x) : -1;
        }
        int64_t n = blk * f->C + c;
        return n < f->Sc ? filter_addr(g, x, n) : -1;
    }
    if ((f->df == QS_DF_WS && op == 0) || (f->df == QS_DF_IS && op == 1)) {
        int64_t fr = y / f->T, x = y % f->T, j = fr * f->R + c;
        if (j >= f->Sr) return -1;
        return op == 0 ? ifmap_addr(g, x, j) : filter_addr(g, j, x);
    }
    int64_t fc = y / f->Sr, j = y % f->Sr, k = fc * f->C + c;
    if (k >= f->Sc) return -1;
    return op == 1 ? filter_addr(g, j, k) : ifmap_addr(g, k, j);
}

/* Visit the prefetch matrix in SCALE-Sim's fetch order. */
#define FOR_FETCH_ORDER(g, f, op, ADDR, BODY)                                                                     \
    do {                                                                                                          \
        int64_t rows_, cols_;                                                                                     \
        int diag_;                                                                                                \
        prefetch_shape(f, op, &rows_, &cols_, &diag_);                                                            \
        if (diag_) {                                                                                              \
            for (int64_t d_ = 0; d_ < rows_ + cols_ - 1; d_++) {                                                  \
                int64_t hi_ = d_ < rows_ - 1 ? d_ : rows_ - 1, lo_ = d_ - cols_ + 1 > 0 ? d_ - cols_ + 1 : 0;     \
                for (int64_t y_ = hi_; y_ >= lo_; y_--) {                                                         \
                    int64_t ADDR = prefetch_elem(g, f, op, y_, d_ - y_);                                          \
                    BODY                                                                                          \
                }                                                                                                 \
            }                                                                                                     \
        } else {                                                                                                  \
            for (int64_t y_ = 0; y_ < rows_; y_++)                                                                \
                for (int64_t c_ = 0; c_ < cols_; c_++) {                                                          \
                    int64_t ADDR = prefetch_elem(g, f, op, y_, c_);                                               \
                    BODY                                                                                          \
                }                                                                                                 \
        }                                                                                                         \
    } while (0)

static qs_status user_buf_init(user_buf *b, const geom *g, const fold_shape *f, int op, int64_t n_addr,
                               int64_t total_words, int64_t bw, qs_error *err)
{
    memset(b, 0, sizeof *b);
    b->bw = bw;
    int64_t active = (total_words + 1) / 2; /* SCALE-Sim: ceil(total * 0.5) */
    b->prefetch_words = total_words - active;
    int64_t per_line = (total_words + 99) / 100; /* ceil(total / 100) */
    b->occ_start = qs_calloc((size_t)n_addr + 1, sizeof *b->occ_start);
    if (!b->occ_start) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    int64_t valid = 0, all = 0;
    FOR_FETCH_ORDER(g, f, op, a, {
        all++;
        if (a >= 0) {
            b->occ_start[a + 1]++;
            valid++;
        }
    });
    if (valid > INT32_MAX)
        return qs_fail(err, QS_ERR_ARG, "layer too large for SCALE-Sim's read replay (2^31 fetched words)");
    for (int64_t i = 0; i < n_addr; i++) b->occ_start[i + 1] += b->occ_start[i];
    b->occ_line = qs_malloc(sizeof *b->occ_line * (size_t)(valid ? valid : 1));
    int32_t *fill = qs_calloc((size_t)n_addr, sizeof *fill);
    if (!b->occ_line || !fill) {
        qs_free(fill);
        return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    }
    int64_t k = 0;
    FOR_FETCH_ORDER(g, f, op, a, {
        if (a >= 0) {
            b->occ_line[b->occ_start[a] + fill[a]++] = (int32_t)(k / per_line);
            k++;
        }
    });
    qs_free(fill);
    b->n_lines = valid / per_line + 1;
    int64_t max_active = (active + per_line - 1) / per_line, max_prefetch = (b->prefetch_words + per_line - 1) / per_line;
    b->active_lines = b->n_lines < max_active ? b->n_lines : max_active;
    int64_t rest = b->n_lines - b->active_lines;
    b->prefetch_lines = rest < max_prefetch ? rest : max_prefetch;
    b->win_start = 0;
    b->win_end = b->active_lines;
    b->fetch_rows = (all + bw - 1) / bw;
    /* the active half (or the whole fetch order) before the first request:
     * its last response at cycle -1 */
    int64_t first_rows = (active + bw - 1) / bw;
    if (first_rows > b->fetch_rows) first_rows = b->fetch_rows;
    b->reads = (uint64_t)(first_rows * bw);
    b->first_response = -first_rows;
    b->last_response = -1;
    return QS_OK;
}

static int user_hit(const user_buf *b, int64_t addr)
{
    const int32_t *lo = b->occ_line + b->occ_start[addr], *hi = b->occ_line + b->occ_start[addr + 1];
    if (lo == hi) return 1; /* not in the fetch order (cannot happen): never wait for it */
    if (b->win_start == b->win_end) return 1;
    /* first line >= win_start */
    const int32_t *l = lo, *h = hi;
    while (l < h) {
        const int32_t *mid = l + (h - l) / 2;
        if (*mid < b->win_start) l = mid + 1;
        else h = mid;
    }
    if (b->win_start < b->win_end) return l < hi && *l < b->win_end;
    return l < hi || *lo < b->win_end;
}

qs_status qs_ssuser_create(const qs_scalesim_layer *l, const qs_arch *a, qs_ssuser **out, qs_error *err)
{
    *out = NULL;
    if (a->scalesim_bandwidth <= 0) return qs_fail(err, QS_ERR_ARG, "SCALE-Sim USER replay: no bandwidth");
    int64_t M, N, K;
    qs_scalesim_mnk(l, &M, &N, &K);
    int64_t n_addr[2] = {(int64_t)l->ifmap_h * l->ifmap_w * l->channels, K * N};
    if (n_addr[0] > INT32_MAX || n_addr[1] > INT32_MAX || K > INT32_MAX)
        return qs_fail(err, QS_ERR_ARG, "layer '%s': too large for SCALE-Sim's read replay", l->name);
    qs_ssuser *u = qs_calloc(1, sizeof *u);
    if (!u) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    fold_shape_init(&u->f, l, a);
    qs_status rc = geom_init(&u->g, l, err);
    u->addrs = qs_malloc(sizeof *u->addrs * (size_t)(u->f.R > u->f.C ? u->f.R : u->f.C));
    if (!rc && !u->addrs) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim read replay: out of memory");
    const int64_t words[2] = {(int64_t)a->ifmap.size_kib * 1024, (int64_t)a->weight.size_kib * 1024};
    for (int op = 0; op < 2 && !rc; op++)
        rc = user_buf_init(&u->b[op], &u->g, &u->f, op, n_addr[op], words[op], a->scalesim_bandwidth, err);
    if (rc) {
        qs_ssuser_destroy(u);
        return rc;
    }
    *out = u;
    return QS_OK;
}

int64_t qs_ssuser_row(qs_ssuser *u, int op, int64_t fold, int64_t t, int64_t cycle)
{
    int64_t fr = fold % u->f.row_folds, fc = fold / u->f.row_folds;
    int32_t n = demand_row(&u->g, &u->f, op, fr, fc, t, u->addrs);
    if (n == 0) return -1;
    user_buf *b = &u->b[op];
    int64_t offset = 1; /* hit latency */
    const int64_t rows_per_prefetch = (b->prefetch_words + b->bw - 1) / b->bw;
    for (int32_t i = 0; i < n; i++)
        while (!user_hit(b, u->addrs[i])) {
            /* the window moves on by the prefetch half; its rows are
             * requested one per cycle after the last response, each answered
             * one cycle later */
            b->win_start = (b->win_start + b->prefetch_lines) % b->n_lines;
            b->win_end = (b->win_start + b->active_lines) % b->n_lines;
            b->reads += (uint64_t)(rows_per_prefetch * b->bw);
            b->last_response += rows_per_prefetch + 1;
            if (b->last_response - (cycle + offset) > 0) offset = b->last_response - cycle;
        }
    return cycle + offset;
}

void qs_ssuser_dram(const qs_ssuser *u, int op, uint64_t *reads, int64_t *first, int64_t *last)
{
    *reads = u->b[op].reads;
    *first = u->b[op].first_response;
    *last = u->b[op].last_response;
}

void qs_ssuser_fold_dims(const qs_ssuser *u, int64_t fold, int32_t *ku, int32_t *cu)
{
    int64_t fr = fold % u->f.row_folds, fc = fold / u->f.row_folds;
    *ku = (int32_t)min64(u->f.R, u->f.Sr - fr * u->f.R);
    *cu = (int32_t)min64(u->f.C, u->f.Sc - fc * u->f.C);
}

void qs_ssuser_destroy(qs_ssuser *u)
{
    if (!u) return;
    for (int op = 0; op < 2; op++) {
        qs_free(u->b[op].occ_start);
        qs_free(u->b[op].occ_line);
    }
    geom_free(&u->g);
    qs_free(u->addrs);
    qs_free(u);
}
