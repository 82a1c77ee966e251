/* SCALE-Sim v2's CALC-mode read buffers, replayed (scalesim_reads.h; rules
 * and reasons in docs/scalesim.md, "DRAM reads"). */
#include "scalesim_reads.h"
#include "qs_alloc.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
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
    /* traces (scalesim_reads.h, qs_sstrace_layer): the cycles of the rows
     * that moved the window, and the DRAM trace writer */
    int32_t log_triggers, trigger_oom;
    int64_t *trigger, n_trigger, cap_trigger;
    struct est_emit *emit;
} est_buf;

static void emit_insert(struct est_emit *e, int64_t addr);
static void emit_window(struct est_emit *e, int64_t cycle);

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
    if (b->emit) emit_insert(b->emit, addr);
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
        if (b->log_triggers) {
            if (b->n_trigger == b->cap_trigger) {
                int64_t cap = b->cap_trigger ? 2 * b->cap_trigger : 64;
                int64_t *t = qs_realloc(b->trigger, sizeof *t * (size_t)cap);
                if (!t) {
                    b->trigger_oom = 1;
                    return;
                }
                b->trigger = t;
                b->cap_trigger = cap;
            }
            b->trigger[b->n_trigger++] = cycle;
        }
        if (b->emit) emit_window(b->emit, cycle);
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
/* The lanes [*c0, *c1] of operand op (0 ifmap, 1 filter) that demand data in
 * cycle t of a fold with ku used rows and cu used columns (an empty range:
 * *c1 < *c0); the rule of docs/scalesim.md's demand matrices, shared by the
 * read replay and the trace writer. */
static void demand_lanes(const fold_shape *f, int op, int64_t t, int64_t ku, int64_t cu, int64_t *c0, int64_t *c1)
{
    const int64_t R = f->R, T = f->T;
    *c0 = 0;
    *c1 = -1;
    if (f->df == QS_DF_OS) {
        *c0 = max64(0, t - T + 1);
        *c1 = min64((op == 0 ? ku : cu) - 1, t);
    } else if ((f->df == QS_DF_WS && op == 0) || (f->df == QS_DF_IS && op == 1)) {
        *c0 = max64(0, t - R - T + 1);
        *c1 = min64(ku - 1, t - R);
    } else if (t < R && R - 1 - t < ku) {
        *c1 = cu - 1;
    }
}

static int32_t demand_row(const geom *g, const fold_shape *f, int op, int64_t fr, int64_t fc, int64_t t,
                          int64_t *addrs)
{
    const int64_t R = f->R, C = f->C;
    int64_t ku = min64(R, f->Sr - fr * R), cu = min64(C, f->Sc - fc * C);
    int64_t c0, c1;
    demand_lanes(f, op, t, ku, cu, &c0, &c1);
    int32_t n = 0;
    /* one loop per dataflow and operand (the hot path of the replay: the
     * choice is made once per row, not per address) */
    if (f->df == QS_DF_OS && op == 0) {
        for (int64_t c = c0; c <= c1; c++) {
            int64_t addr = ifmap_addr(g, fr * R + c, t - c);
            if (addr >= 0) addrs[n++] = addr;
        }
    } else if (f->df == QS_DF_OS) {
        for (int64_t c = c0; c <= c1; c++) addrs[n++] = filter_addr(g, t - c, fc * C + c);
    } else if (f->df == QS_DF_WS && op == 0) {
        for (int64_t c = c0; c <= c1; c++) {
            int64_t addr = ifmap_addr(g, t - R - c, fr * R + c);
            if (addr >= 0) addrs[n++] = addr;
        }
    } else if (f->df == QS_DF_WS) {
        for (int64_t c = c0; c <= c1; c++) addrs[n++] = filter_addr(g, fr * R + R - 1 - t, fc * C + c);
    } else if (op == 0) {
        for (int64_t c = c0; c <= c1; c++) {
            int64_t addr = ifmap_addr(g, fc * C + c, fr * R + R - 1 - t);
            if (addr >= 0) addrs[n++] = addr;
        }
    } else {
        for (int64_t c = c0; c <= c1; c++) addrs[n++] = filter_addr(g, fr * R + c, t - R - c);
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

/* The report figures of operand op from its replayed CALC buffer. */
static void est_figures(const est_buf *b, int op, qs_ssreads *out)
{
    out->dram_reads[op] = b->reads;
    out->sram_start[op] = b->sram_first_row_cycle + 1; /* one-cycle hit latency */
    out->sram_stop[op] = b->sram_last_row_cycle + 1;
    if (b->active_done) {
        /* the first window was fetched at 10 words/cycle, ending two
         * cycles before the first request (one for the DRAM latency);
         * the last fetch ends on the row that completed the last window,
         * and responses come one cycle after their request */
        int64_t first_fetch = (int64_t)SETS_ACTIVE * b->per_set / CALC_READ_BW; /* 5 x per_set, exact */
        out->dram_start[op] = b->first_request - 2 - first_fetch + 1 + 1;
        out->dram_stop[op] = b->last_trigger + 1;
    } else {
        /* everything fits the window: fetched before cycle 0, ending at
         * cycle -2, responses one later */
        int64_t sets = (int64_t)b->cur_set + (b->elems > 0 ? 1 : 0);
        int64_t cycles = (sets * b->per_set + CALC_READ_BW - 1) / CALC_READ_BW;
        out->dram_start[op] = -2 - cycles + 1 + 1;
        out->dram_stop[op] = -1;
    }
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
    /* operands of 2^31 addresses or more (layers too large to simulate on
     * operands) take the hashed window, whose addresses are 64-bit */
    if (K > INT32_MAX || M > INT32_MAX)
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
        est_figures(&b, op, out);
    }
    geom_free(&g);
    qs_free(addrs);
    qs_free(m.stall_row);
    qs_free(m.stall_amount);
    return rc;
}

qs_status qs_ssstats_layer(const qs_scalesim_layer *l, const qs_arch *a, qs_scalesim_stats *out, qs_error *err)
{
    memset(out, 0, sizeof *out);
    if (a->timing != QS_TIMING_SCALESIM)
        return qs_fail(err, QS_ERR_CONFIG, "layer '%s': SCALE-Sim's figures need [timing] convention = scalesim",
                       l->name);
    fold_shape f;
    fold_shape_init(&f, l, a);
    qs_ssmem m;
    qs_ssmem_begin(&m, a, out);
    qs_status rc = QS_OK;
    if (a->scalesim_bandwidth > 0) rc = qs_ssuser_create(l, a, &m.user, err);
    /* the engines' fold order (column folds outer), each fold's used rows and columns */
    for (int64_t fc = 0; fc < f.col_folds && !rc; fc++)
        for (int64_t fr = 0; fr < f.row_folds && !rc; fr++) {
            int32_t ku = (int32_t)min64(f.R, f.Sr - fr * f.R), cu = (int32_t)min64(f.C, f.Sc - fc * f.C);
            if (qs_ssmem_fold(&m, f.T, ku, cu, fr, fc) == UINT64_MAX)
                rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim figures: out of memory");
        }
    if (rc) {
        qs_ssuser_destroy(m.user);
        m.user = NULL;
    }
    qs_ssmem_end(&m);
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

struct user_trace;

struct qs_ssuser {
    geom g;
    fold_shape f;
    user_buf b[2];
    int64_t *addrs;
    struct user_trace *trace[2]; /* DRAM trace writers (qs_sstrace_layer), or NULL */
};

static int user_trace_prefetch(struct user_trace *t);

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
            if (u->trace[op]) user_trace_prefetch(u->trace[op]);
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

/* ---- SCALE-Sim's trace files (qs_sstrace_layer) ----------------------------------- */

/* A buffered CSV writer: SCALE-Sim writes its traces with numpy's savetxt,
 * the SRAM ones with '%i' (integers), the DRAM ones with '%s' of float64
 * values (Python's repr: "12.0", "-1.0"). */
typedef struct digits4 digits4;

typedef struct {
    FILE *f;
    const digits4 *dig;
    char buf[1 << 18];
    size_t n;
    int failed;
} trace_out;

static void out_flush(trace_out *o)
{
    if (o->n && fwrite(o->buf, 1, o->n, o->f) != o->n) o->failed = 1;
    o->n = 0;
}

static inline void out_room(trace_out *o, size_t need)
{
    if (o->n + need > sizeof o->buf) out_flush(o);
}

static inline void out_char(trace_out *o, char c)
{
    out_room(o, 1);
    o->buf[o->n++] = c;
}

/* four decimal digits of every number below 10000, for the writers below
 * (filled once per trace run: no shared state) */
struct digits4 {
    char d[10000][4];
};

static void digits4_fill(digits4 *t)
{
    for (int i = 0; i < 10000; i++) {
        t->d[i][0] = (char)('0' + i / 1000);
        t->d[i][1] = (char)('0' + i / 100 % 10);
        t->d[i][2] = (char)('0' + i / 10 % 10);
        t->d[i][3] = (char)('0' + i % 10);
    }
}

/* the last `len` of the four digits of v < 10000 */
static inline char *put_head(char *p, const digits4 *t, unsigned v)
{
    int skip = v >= 1000 ? 0 : v >= 100 ? 1 : v >= 10 ? 2 : 3;
    memcpy(p, t->d[v] + skip, 4);
    return p + 4 - skip;
}

/* v in decimal at o->buf + o->n; the caller made room for 21 bytes */
static inline void out_int_unchecked(trace_out *o, int64_t v)
{
    char *p = o->buf + o->n;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (v < 0) *p++ = '-';
    if (u < 10000) {
        p = put_head(p, o->dig, (unsigned)u);
    } else if (u < 100000000) {
        p = put_head(p, o->dig, (unsigned)(u / 10000));
        memcpy(p, o->dig->d[u % 10000], 4);
        p += 4;
    } else {
        char tmp[24];
        int k = 24;
        while (u >= 10000) {
            k -= 4;
            memcpy(tmp + k, o->dig->d[u % 10000], 4);
            u /= 10000;
        }
        p = put_head(p, o->dig, (unsigned)u);
        memcpy(p, tmp + k, (size_t)(24 - k));
        p += 24 - k;
    }
    o->n = (size_t)(p - o->buf);
}

static inline void out_int(trace_out *o, int64_t v)
{
    out_room(o, 24);
    out_int_unchecked(o, v);
}

/* Python's repr of float(v): "v.0" below 1e16, else the shortest
 * round-tripping mantissa with an exponent ("1e+16", "1.2345e+17"). */
static void out_float(trace_out *o, int64_t v)
{
    if (v > -10000000000000000LL && v < 10000000000000000LL) {
        out_room(o, 26);
        out_int_unchecked(o, v);
        o->buf[o->n++] = '.';
        o->buf[o->n++] = '0';
        return;
    }
    double d = (double)v;
    char tmp[40];
    for (int p = 0; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p, d);
        if (strtod(tmp, NULL) == d) break;
    }
    char *e = strchr(tmp, 'e'), mant[40];
    size_t ml = (size_t)(e - tmp);
    memcpy(mant, tmp, ml);
    mant[ml] = 0;
    if (strchr(mant, '.')) {
        while (ml > 0 && mant[ml - 1] == '0') mant[--ml] = 0;
        if (ml > 0 && mant[ml - 1] == '.') mant[--ml] = 0;
    }
    int ex = atoi(e + 1);
    char full[64];
    int len = snprintf(full, sizeof full, "%se%c%02d", mant, ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    out_room(o, (size_t)len);
    memcpy(o->buf + o->n, full, (size_t)len);
    o->n += (size_t)len;
}

/* The whole demand row t of fold (fr, fc) of operand op (0 ifmap, 1
 * filter, 2 ofmap) as SCALE-Sim builds it, -1 where nothing is requested;
 * returns its width (ifmap: R columns, except the IS ifmap: C; filter: C,
 * except the IS filter: R; ofmap: C). Addresses are offset-free. */
static int64_t demand_row_full(const geom *g, const fold_shape *f, int64_t N, int op, int64_t fr, int64_t fc,
                               int64_t t, int64_t *row)
{
    const int64_t R = f->R, C = f->C, T = f->T;
    const int64_t ku = min64(R, f->Sr - fr * R), cu = min64(C, f->Sc - fc * C);
    int64_t width;
    if (op == 2) width = C;
    else if (f->df == QS_DF_IS) width = op == 0 ? C : R;
    else width = op == 0 ? R : C;
    for (int64_t c = 0; c < width; c++) row[c] = -1;
    if (op < 2) {
        int64_t c0, c1;
        demand_lanes(f, op, t, ku, cu, &c0, &c1);
        for (int64_t c = c0; c <= c1; c++) {
            if (f->df == QS_DF_OS)
                row[c] = op == 0 ? ifmap_addr(g, fr * R + c, t - c) : filter_addr(g, t - c, fc * C + c);
            else if (f->df == QS_DF_WS)
                row[c] = op == 0 ? ifmap_addr(g, t - R - c, fr * R + c) : filter_addr(g, fr * R + R - 1 - t, fc * C + c);
            else
                row[c] = op == 0 ? ifmap_addr(g, fc * C + c, fr * R + R - 1 - t) : filter_addr(g, fr * R + c, t - R - c);
        }
        return width;
    }
    /* ofmap: element (y, c) of the unskewed fold block is on row y + c */
    for (int64_t c = 0; c < cu && c <= t; c++) {
        int64_t y = t - c;
        if (f->df == QS_DF_OS) {
            /* T - 1 empty rows, then the R accumulator rows flipped */
            int64_t x = y - (T - 1);
            if (x < 0 || x >= R) continue;
            int64_t i = R - 1 - x;
            if (i >= ku) continue;
            row[c] = N * (fr * R + i) + fc * C + c;
        } else {
            int64_t x = y - (2 * R - 1); /* preload and the first vector's trip */
            if (x < 0 || x >= T) continue;
            row[c] = f->df == QS_DF_WS ? N * x + fc * C + c : N * (fc * C + c) + x;
        }
    }
    return width;
}

/* CPython's set iteration order (Objects/setobject.c, 3.x: open addressing,
 * 9 linear probes then perturbation, growth to 4x the used slots): SCALE-Sim's
 * CALC read buffer lists each set of addresses with list(set), so its DRAM
 * trace has them in that order. Keys are integers (numpy float64 of an
 * integer value hashes as that integer). */
typedef struct {
    int64_t *key;
    uint8_t *full;
    uint64_t mask;
    int64_t fill;
    size_t cap;
} py_set;

static uint64_t py_hash(int64_t v)
{
    const int64_t P = ((int64_t)1 << 61) - 1;
    if (v >= 0 && v < P) return (uint64_t)v; /* every address: no division */
    int64_t h = v >= 0 ? v % P : -((-(v + 1) % P + 1) % P);
    if (h == -1) h = -2;
    return (uint64_t)h;
}

static uint64_t py_slot(const uint8_t *full, uint64_t mask, uint64_t hash)
{
    uint64_t perturb = hash, i = hash & mask;
    for (;;) {
        if (!full[i]) return i;
        if (i + 9 <= mask)
            for (uint64_t j = 1; j <= 9; j++)
                if (!full[i + j]) return i + j;
        perturb >>= 5;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

static int py_set_reset(py_set *s, uint64_t size)
{
    if (size > s->cap) {
        int64_t *k = qs_realloc(s->key, sizeof *k * size);
        if (k) s->key = k;
        uint8_t *f = k ? qs_realloc(s->full, size) : NULL;
        if (f) s->full = f;
        if (!k || !f) return -1;
        s->cap = size;
    }
    memset(s->full, 0, size);
    s->mask = size - 1;
    s->fill = 0;
    return 0;
}

/* Order the n distinct keys (inserted in this order) as list(set(keys)). */
static int py_set_order(py_set *s, int64_t *keys, int64_t n, int64_t *scratch)
{
    if (py_set_reset(s, 8)) return -1;
    for (int64_t k = 0; k < n; k++) {
        uint64_t i = py_slot(s->full, s->mask, py_hash(keys[k]));
        s->full[i] = 1;
        s->key[i] = keys[k];
        s->fill++;
        if ((uint64_t)s->fill * 5 < s->mask * 3) continue;
        /* resize: the live keys, in table order, into a table of the
         * smallest power of two above used x 4 (x 2 past 50,000) */
        int64_t m = 0;
        for (uint64_t j = 0; j <= s->mask; j++)
            if (s->full[j]) scratch[m++] = s->key[j];
        uint64_t minused = (uint64_t)s->fill > 50000 ? (uint64_t)s->fill * 2 : (uint64_t)s->fill * 4, size = 8;
        while (size <= minused) size <<= 1;
        if (py_set_reset(s, size)) return -1;
        for (int64_t j = 0; j < m; j++) {
            uint64_t slot = py_slot(s->full, s->mask, py_hash(scratch[j]));
            s->full[slot] = 1;
            s->key[slot] = scratch[j];
        }
        s->fill = m;
    }
    int64_t m = 0;
    for (uint64_t j = 0; j <= s->mask; j++)
        if (s->full[j]) keys[m++] = s->key[j];
    return 0;
}

/* CALC mode: SCALE-Sim's estimate-bandwidth buffer writes each window of 50
 * sets when the row that completes the next window arrives, over the cycles
 * since the previous window (the first: ahead of the first request, at 10
 * words per cycle), and the rest at the end. */
struct est_emit {
    trace_out *o;
    int64_t offset, per_set, width;
    int64_t *win, n_win;        /* addresses inserted since the window moved, in order */
    int64_t *scratch;
    py_set set;
    const int64_t *trigger;     /* cycles of the window moves (from the first walk) */
    int64_t n_trigger, k;       /* triggers, triggers seen */
    int64_t first_request;
    int failed;
};

static void emit_insert(struct est_emit *e, int64_t addr) { e->win[e->n_win++] = addr + e->offset; }

static int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Write the addresses of win[0 .. n) (sets of per_set, each listed in
 * CPython's set order) over `rows` rows answered from first_request + 1,
 * `bw` words per row, -1 after the last address, 1.0 cells up to the
 * file's width. */
static void emit_sets(struct est_emit *e, int64_t n, int64_t first_request, int64_t rows, int64_t bw)
{
    for (int64_t s0 = 0; s0 < n; s0 += e->per_set) {
        int64_t k = n - s0 < e->per_set ? n - s0 : e->per_set;
        if (py_set_order(&e->set, e->win + s0, k, e->scratch)) e->failed = 1;
    }
    trace_out *o = e->o;
    const size_t row_bytes = (size_t)(e->width + 1) * 26 + 2;
    int64_t i = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (row_bytes > sizeof o->buf) { /* rows wider than the buffer: checked writes */
            out_float(o, first_request + 1 + r);
            for (int64_t c = 0; c < bw; c++, i++) {
                out_char(o, ',');
                out_float(o, i < n ? e->win[i] : -1);
            }
            for (int64_t c = bw; c < e->width; c++) {
                out_char(o, ',');
                out_float(o, 1);
            }
            out_char(o, '\n');
            continue;
        }
        out_room(o, row_bytes);
        char *p;
        out_int_unchecked(o, first_request + 1 + r);
        p = o->buf + o->n;
        *p++ = '.';
        *p++ = '0';
        o->n = (size_t)(p - o->buf);
        for (int64_t c = 0; c < bw; c++, i++) {
            o->buf[o->n++] = ',';
            if (i < n) {
                out_int_unchecked(o, e->win[i]);
                o->buf[o->n++] = '.';
                o->buf[o->n++] = '0';
            } else {
                memcpy(o->buf + o->n, "-1.0", 4);
                o->n += 4;
            }
        }
        for (int64_t c = bw; c < e->width; c++) {
            memcpy(o->buf + o->n, ",1.0", 4);
            o->n += 4;
        }
        o->buf[o->n++] = '\n';
    }
}

/* the request cycles of the prefetch at window move k (1-based): the first
 * ends two cycles before the first request; move k >= 2 spans the cycles
 * from the move before the previous one (exclusive) to the previous one */
static void est_interval(const struct est_emit *e, int64_t k, int64_t *start, int64_t *end)
{
    int64_t prev2 = k >= 3 ? e->trigger[k - 3] : e->first_request - 2;
    *start = prev2 + 1;
    *end = e->trigger[k - 2];
}

static void emit_window(struct est_emit *e, int64_t cycle)
{
    (void)cycle;
    int64_t k = ++e->k;
    int64_t words = (int64_t)SETS_ACTIVE * e->per_set;
    if (k == 1) {
        int64_t rows = ceil_div64(words, CALC_READ_BW);
        emit_sets(e, e->n_win, e->first_request - 2 - rows + 1, rows, CALC_READ_BW);
    } else {
        int64_t s, t;
        est_interval(e, k, &s, &t);
        emit_sets(e, e->n_win, s, t - s + 1, ceil_div64(words, t - s + 1));
    }
    e->n_win = 0;
}

/* The final flush (SCALE-Sim's complete_all_prefetches): the sets since the
 * last move, a partial set counted as a whole one for the bandwidth. */
static void est_final_shape(const est_buf *b, int64_t first_request, const int64_t *trigger, int64_t n_trigger,
                            int64_t *start, int64_t *rows, int64_t *bw)
{
    int64_t sets_done = b->cur_set - (int64_t)b->window_id * SETS_ACTIVE;
    int64_t sets = sets_done + (b->elems > 0 ? 1 : 0);
    if (n_trigger == 0) {
        *rows = ceil_div64(sets * b->per_set, CALC_READ_BW);
        *start = -2 - *rows + 1;
        *bw = CALC_READ_BW;
        return;
    }
    int64_t s = n_trigger >= 2 ? trigger[n_trigger - 2] + 1 : first_request - 1, t = trigger[n_trigger - 1];
    *start = s;
    *rows = t - s + 1;
    *bw = ceil_div64(sets * b->per_set, *rows);
}

/* USER mode: SCALE-Sim's read buffer writes the lines of its fetch matrix
 * (the operand's prefetch matrix, bw words a line) it requests: the active
 * half before the first request, then the prefetch half on every miss,
 * always from the same line (its next-line index is not advanced past the
 * previous prefetch); the words of the first and last line it drops are
 * written as -1 into the fetch matrix itself, except when the prefetch wraps
 * around its end (a copy). */
typedef struct {
    int64_t row, c0, c1; /* fetch line, columns [c0, c1) set to -1 */
} fetch_mask;

struct user_trace {
    trace_out *o;
    const geom *g;
    const fold_shape *f;
    const user_buf *b;
    int op;
    int64_t offset;
    int64_t rows_m, cols_m; /* the prefetch matrix */
    int diag;
    int64_t n_elems, fetch_rows, active_words;
    int64_t next_line, next_col;
    fetch_mask *mask;
    int64_t n_mask, cap_mask;
    int failed;
};

/* element k of the fetch order (prefetch matrix read by anti-diagonals or
 * by rows), -1 past its end */
static int64_t diag_prefix(int64_t d, int64_t rows, int64_t cols)
{
    int64_t a = rows - 1, b = cols - 1, s;
    s = d <= a + 1 ? d * (d + 1) / 2 : (a + 1) * (a + 2) / 2 + (d - a - 1) * (a + 1);
    if (d > b + 1) {
        int64_t n = d - 1 - b;
        s -= n * (n + 1) / 2;
    }
    return s;
}

static int64_t fetch_elem(const struct user_trace *t, int64_t k)
{
    if (k >= t->n_elems) return -1;
    int64_t y, c;
    if (!t->diag) {
        y = k / t->cols_m;
        c = k % t->cols_m;
    } else {
        int64_t lo = 0, hi = t->rows_m + t->cols_m - 1; /* the d with prefix(d) <= k < prefix(d + 1) */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo + 1) / 2;
            if (diag_prefix(mid, t->rows_m, t->cols_m) <= k) lo = mid;
            else hi = mid - 1;
        }
        int64_t d = lo, top = d < t->rows_m - 1 ? d : t->rows_m - 1;
        y = top - (k - diag_prefix(d, t->rows_m, t->cols_m));
        c = d - y;
    }
    int64_t a = prefetch_elem(t->g, t->f, t->op, y, c);
    return a >= 0 ? a + t->offset : -1;
}

static int user_mask_add(struct user_trace *t, int64_t row, int64_t c0, int64_t c1)
{
    if (c0 >= c1) return 0;
    for (int64_t i = 0; i < t->n_mask; i++)
        if (t->mask[i].row == row && t->mask[i].c0 == c0 && t->mask[i].c1 == c1) return 0;
    if (t->n_mask == t->cap_mask) {
        int64_t cap = t->cap_mask ? 2 * t->cap_mask : 8;
        fetch_mask *m = qs_realloc(t->mask, sizeof *m * (size_t)cap);
        if (!m) return -1;
        t->mask = m;
        t->cap_mask = cap;
    }
    t->mask[t->n_mask++] = (fetch_mask){row, c0, c1};
    return 0;
}

/* write fetch line `row` as one trace row answered at `cycle`; columns below
 * drop_lo and from drop_hi on are -1 */
static void user_line(struct user_trace *t, int64_t row, int64_t cycle, int64_t drop_lo, int64_t drop_hi)
{
    trace_out *o = t->o;
    out_float(o, cycle);
    for (int64_t c = 0; c < t->b->bw; c++) {
        int64_t v = -1;
        int masked = c < drop_lo || c >= drop_hi;
        for (int64_t i = 0; i < t->n_mask && !masked; i++)
            if (t->mask[i].row == row && c >= t->mask[i].c0 && c < t->mask[i].c1) masked = 1;
        if (!masked) v = fetch_elem(t, row * t->b->bw + c);
        out_char(o, ',');
        out_float(o, v);
    }
    out_char(o, '\n');
}

/* the active half, answered at cycles -lines .. -1 */
static void user_trace_first(struct user_trace *t)
{
    const int64_t bw = t->b->bw;
    int64_t lines = ceil_div64(t->active_words, bw);
    if (lines >= t->fetch_rows) lines = t->fetch_rows;
    t->next_col = 0;
    int over = lines * bw > t->active_words;
    if (over) {
        t->next_col = t->active_words % bw;
        if (user_mask_add(t, lines - 1, t->next_col, bw)) t->failed = 1;
    }
    for (int64_t i = 0; i < lines; i++) user_line(t, i, i - lines, 0, bw);
    t->next_line = over ? lines % t->fetch_rows : (lines + 1) % t->fetch_rows;
}

static int user_trace_prefetch(struct user_trace *t)
{
    const int64_t bw = t->b->bw;
    const int64_t start = t->next_line, lines = ceil_div64(t->b->prefetch_words, bw), end = start + lines;
    const int over = lines * bw > t->active_words;
    const int64_t valid_cols = over ? t->active_words % bw : bw;
    const int64_t last = t->b->last_response;
    if (end > t->fetch_rows) {
        /* a copy of the lines from start to the end and from the start */
        int64_t wrap = end - t->fetch_rows;
        if (wrap > start) { /* SCALE-Sim fails here (fewer lines than cycles) */
            t->failed = 2;
            return -1;
        }
        for (int64_t i = 0; i < lines; i++) {
            int64_t row = (start + i) % t->fetch_rows;
            user_line(t, row, last + i + 2, i == 0 ? t->next_col : 0, i == lines - 1 ? valid_cols : bw);
        }
    } else {
        /* a view: the dropped words stay dropped in the fetch matrix */
        if (user_mask_add(t, start, 0, t->next_col) || user_mask_add(t, end - 1, valid_cols, bw)) t->failed = 1;
        for (int64_t i = 0; i < lines; i++) user_line(t, start + i, last + i + 2, 0, bw);
    }
    t->next_line = over ? lines % t->fetch_rows : (lines + 1) % t->fetch_rows;
    return 0;
}

/* SRAM trace rows: the cycle (served, or written for the ofmap), then the
 * demand row, with offsets on the real addresses */
typedef struct {
    trace_out *o[6];
    const geom *g;
    const fold_shape *f;
    int64_t N;
    int64_t off[3];
    int64_t *row;
} sram_writer;

static void sram_row(sram_writer *w, int op, int64_t fold, int64_t t, int64_t cycle)
{
    int64_t fr = fold % w->f->row_folds, fc = fold / w->f->row_folds;
    int64_t width = demand_row_full(w->g, w->f, w->N, op, fr, fc, t, w->row);
    trace_out *o = w->o[op];
    if ((size_t)(width + 1) * 24 + 1 <= sizeof o->buf) {
        /* the whole row fits the buffer: no check per number */
        out_room(o, (size_t)(width + 1) * 24 + 1);
        out_int_unchecked(o, cycle);
        for (int64_t c = 0; c < width; c++) {
            o->buf[o->n++] = ',';
            if (w->row[c] >= 0) out_int_unchecked(o, w->row[c] + w->off[op]);
            else {
                o->buf[o->n++] = '-';
                o->buf[o->n++] = '1';
            }
        }
        o->buf[o->n++] = '\n';
        return;
    }
    out_int(o, cycle);
    for (int64_t c = 0; c < width; c++) {
        out_char(o, ',');
        out_int(o, w->row[c] >= 0 ? w->row[c] + w->off[op] : -1);
    }
    out_char(o, '\n');
}

static void user_row_hook(void *ctx, int64_t fold, int64_t t, uint64_t cycle, uint64_t ifmap_served,
                          uint64_t filter_served, uint64_t ofmap_done)
{
    (void)cycle;
    sram_writer *w = ctx;
    sram_row(w, 0, fold, t, (int64_t)ifmap_served);
    sram_row(w, 1, fold, t, (int64_t)filter_served);
    sram_row(w, 2, fold, t, (int64_t)ofmap_done);
}

static const char *const TRACE_NAMES[6] = {"IFMAP_SRAM_TRACE.csv", "FILTER_SRAM_TRACE.csv", "OFMAP_SRAM_TRACE.csv",
                                           "IFMAP_DRAM_TRACE.csv", "FILTER_DRAM_TRACE.csv", "OFMAP_DRAM_TRACE.csv"};

qs_status qs_sstrace_layer(const qs_scalesim_layer *l, const qs_arch *a, const int64_t offsets[3], const char *dir,
                           qs_ssreads *out, qs_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t M, N, K;
    qs_scalesim_mnk(l, &M, &N, &K);
    int64_t n_addr[2] = {(int64_t)l->ifmap_h * l->ifmap_w * l->channels, K * N};
    if (n_addr[0] > INT32_MAX || n_addr[1] > INT32_MAX || K > INT32_MAX)
        return qs_fail(err, QS_ERR_ARG, "layer '%s': too large for SCALE-Sim's traces", l->name);
    /* SCALE-Sim marks "no request" with -1, and its DRAM traces print
     * float64 values, integers only below 2^53: offsets keep every address
     * a non-negative integer the fast writers print exactly */
    const int64_t span[3] = {n_addr[0], n_addr[1], M * N};
    static const char *const OFFSET_KEYS[3] = {"IfmapOffset", "FilterOffset", "OfmapOffset"};
    for (int i = 0; i < 3; i++)
        if (offsets[i] < 0 || offsets[i] > ((int64_t)1 << 50) - span[i])
            return qs_fail(err, QS_ERR_UNSUPPORTED, "%s = %lld: traces need addresses from 0 to 2^50",
                           OFFSET_KEYS[i], (long long)offsets[i]);
    fold_shape f;
    fold_shape_init(&f, l, a);
    const int user = a->scalesim_bandwidth > 0;
    const int64_t words[2] = {(int64_t)a->ifmap.size_kib * 1024, (int64_t)a->weight.size_kib * 1024};
    if (!user && (words[0] < 100 || words[1] < 100))
        return qs_fail(err, QS_ERR_UNSUPPORTED, "layer '%s': SCALE-Sim writes no CALC-mode DRAM trace for an SRAM under "
                                                "100 words", l->name);

    trace_out *o[6] = {0};
    char path[4096];
    qs_status rc = QS_OK;
    digits4 *dig = qs_malloc(sizeof *dig);
    if (!dig) return qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
    digits4_fill(dig);
    for (int i = 0; i < 6 && !rc; i++) {
        o[i] = qs_calloc(1, sizeof *o[i]);
        if (o[i]) o[i]->dig = dig;
        if (!o[i]) {
            rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
            break;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, TRACE_NAMES[i]) >= (int)sizeof path) {
            rc = qs_fail(err, QS_ERR_ARG, "%s: path too long", dir);
            break;
        }
        o[i]->f = fopen(path, "wb");
        if (!o[i]->f) rc = qs_fail(err, QS_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    geom g;
    memset(&g, 0, sizeof g);
    if (!rc) rc = geom_init(&g, l, err);
    sram_writer w = {{o[0], o[1], o[2], o[3], o[4], o[5]}, &g, &f, N, {offsets[0], offsets[1], offsets[2]}, NULL};
    w.row = qs_malloc(sizeof *w.row * (size_t)(f.R > f.C ? f.R : f.C));
    if (!rc && !w.row) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");

    /* 1. the timeline: SCALE-Sim's folds through its memories (USER mode:
     *    the SRAM rows and the read buffers' DRAM lines are written as they
     *    are served) */
    qs_ssmem m;
    qs_scalesim_stats st;
    qs_ssmem_begin(&m, a, &st);
    m.log_stalls = !user;
    m.log_drains = 1;
    struct user_trace ut[2];
    memset(ut, 0, sizeof ut);
    if (!rc && user) {
        rc = qs_ssuser_create(l, a, &m.user, err);
        for (int op = 0; op < 2 && !rc; op++) {
            struct user_trace *t = &ut[op];
            t->o = o[3 + op];
            t->g = &m.user->g;
            t->f = &m.user->f;
            t->b = &m.user->b[op];
            t->op = op;
            t->offset = offsets[op];
            prefetch_shape(&m.user->f, op, &t->rows_m, &t->cols_m, &t->diag);
            t->n_elems = t->rows_m * t->cols_m;
            t->fetch_rows = t->b->fetch_rows;
            t->active_words = words[op] - t->b->prefetch_words;
            user_trace_first(t);
            m.user->trace[op] = t;
        }
        m.row_hook = user_row_hook;
        m.hook_ctx = &w;
    }
    for (int64_t fc = 0; fc < f.col_folds && !rc; fc++)
        for (int64_t fr = 0; fr < f.row_folds && !rc; fr++) {
            int32_t ku = (int32_t)min64(f.R, f.Sr - fr * f.R), cu = (int32_t)min64(f.C, f.Sc - fc * f.C);
            if (qs_ssmem_fold(&m, f.T, ku, cu, 0, 0) == UINT64_MAX || m.log_oom)
                rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
            if (!rc && user && (ut[0].failed == 2 || ut[1].failed == 2))
                rc = qs_fail(err, QS_ERR_UNSUPPORTED,
                             "layer '%s': SCALE-Sim v2 fails on this layer (a prefetch wraps past its fetch order)",
                             l->name);
        }
    if (user && (ut[0].failed == 1 || ut[1].failed == 1) && !rc)
        rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
    if (!user) {
        if (!rc) qs_ssmem_end(&m);
    } else {
        /* the read figures are kept by qs_ssmem_end, which frees the replay */
        if (!rc) qs_ssmem_end(&m);
        else {
            qs_ssuser_destroy(m.user);
            m.user = NULL;
        }
    }
    if (!rc && m.log_oom) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
    out->total_cycles = st.total_cycles;
    out->stall_cycles = st.stall_cycles;

    /* 2. CALC mode: the SRAM rows, each row's cycle from the stalls before it */
    const int64_t rows = qs_ssmem_fold_rows(f.df, (int32_t)f.R, (int32_t)f.C, f.T), folds = f.row_folds * f.col_folds;
    if (!rc && !user) {
        stall_cursor sc = {m.stall_row, m.stall_amount, m.n_stall_log, 0, 0};
        int64_t r = 0, next_stall = 0;
        for (int64_t fold = 0; fold < folds; fold++)
            for (int64_t t = 0; t < rows; t++, r++) {
                int64_t cycle = row_cycle(&sc, (uint64_t)r);
                while (next_stall < m.n_stall_log && m.stall_row[next_stall] < (uint64_t)r) next_stall++;
                int64_t own = next_stall < m.n_stall_log && m.stall_row[next_stall] == (uint64_t)r
                                  ? (int64_t)m.stall_amount[next_stall]
                                  : 0;
                sram_row(&w, 0, fold, t, cycle + 1);
                sram_row(&w, 1, fold, t, cycle + 1);
                sram_row(&w, 2, fold, t, cycle + own);
            }
    }

    /* 3. the OFMAP DRAM trace: the ofmap words in demand order, in lines of
     *    the drain width (forced lines shorter), each line at its drain cycle */
    if (!rc) {
        int64_t line = 0, fill = 0, forced = 0, drain = 0;
        const int64_t lw = m.line_words;
        int64_t *buf = qs_malloc(sizeof *buf * (size_t)lw);
        if (!buf) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
        for (int64_t fold = 0; fold < folds && !rc; fold++) {
            int64_t fr = fold % f.row_folds, fc = fold / f.row_folds;
            for (int64_t t = 0; t < rows; t++) {
                int64_t width = demand_row_full(&g, &f, N, 2, fr, fc, t, w.row);
                for (int64_t c = 0; c < width; c++) {
                    if (w.row[c] < 0) continue;
                    buf[fill++] = w.row[c] + offsets[2];
                    int64_t target = forced < m.n_forced_log && m.forced_line[forced] == line
                                         ? m.forced_valid[forced]
                                         : lw;
                    if (fill < target) continue;
                    while (drain < m.n_drain_log && m.drain_line0[drain] + m.drain_lines[drain] <= line) drain++;
                    int64_t cyc = drain < m.n_drain_log ? (int64_t)m.drain_cycle[drain] + (line - m.drain_line0[drain]) : 0;
                    out_float(o[5], cyc);
                    for (int64_t k = 0; k < lw; k++) {
                        out_char(o[5], ',');
                        out_float(o[5], k < fill ? buf[k] : -1);
                    }
                    out_char(o[5], '\n');
                    if (forced < m.n_forced_log && m.forced_line[forced] == line) forced++;
                    line++;
                    fill = 0;
                }
            }
        }
        qs_free(buf);
    }

    /* 4. CALC mode: the read buffers' DRAM traces, walked twice: once for
     *    the window moves (the rows' widths), once writing */
    for (int op = 0; op < 2 && !rc && !user; op++) {
        est_buf b;
        memset(&b, 0, sizeof b);
        b.per_set = (int32_t)(words[op] / 100);
        b.window_words = (int64_t)SETS_ACTIVE * b.per_set;
        /* a window id per address, or for large operands the window's
         * addresses hashed (bounded by the SRAM), as qs_ssreads_layer */
        int64_t table_size = 0;
        if (n_addr[op] <= QS_SSREADS_DIRECT_LIMIT) {
            b.joined = qs_calloc((size_t)n_addr[op], sizeof *b.joined);
        } else {
            int64_t need = b.window_words < n_addr[op] ? b.window_words : n_addr[op];
            table_size = 16;
            while (table_size < 2 * need) table_size *= 2;
            b.mask = table_size - 1;
            b.table = qs_malloc(sizeof *b.table * (size_t)table_size);
            if (b.table) memset(b.table, 0xff, sizeof *b.table * (size_t)table_size);
        }
        b.log_triggers = 1;
        int64_t *addrs = qs_malloc(sizeof *addrs * (size_t)(f.R > f.C ? f.R : f.C));
        if ((!b.joined && !b.table) || !addrs) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
        if (!rc) rc = walk(&g, &f, op, &b, &m, addrs, err);
        if (!rc && b.trigger_oom) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
        if (!rc) est_figures(&b, op, out); /* the report's figures too: one replay serves both */
        struct est_emit e;
        memset(&e, 0, sizeof e);
        if (!rc) {
            int64_t start, nrows, bw;
            est_final_shape(&b, b.first_request, b.trigger, b.n_trigger, &start, &nrows, &bw);
            e.width = bw > CALC_READ_BW ? bw : CALC_READ_BW;
            e.o = o[3 + op];
            e.offset = offsets[op];
            e.per_set = b.per_set;
            e.trigger = b.trigger;
            e.n_trigger = b.n_trigger;
            e.first_request = b.first_request;
            for (int64_t k = 2; k <= b.n_trigger; k++) {
                int64_t s, t;
                est_interval(&e, k, &s, &t);
                int64_t wk = ceil_div64((int64_t)SETS_ACTIVE * b.per_set, t - s + 1);
                if (wk > e.width) e.width = wk;
            }
            e.win = qs_malloc(sizeof *e.win * (size_t)(b.window_words + b.per_set));
            e.scratch = qs_malloc(sizeof *e.scratch * (size_t)(b.per_set + 1));
            if (!e.win || !e.scratch) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
            /* the second walk, from a fresh buffer, writing */
            est_buf b2;
            memset(&b2, 0, sizeof b2);
            b2.per_set = b.per_set;
            b2.window_words = b.window_words;
            b2.joined = b.joined;
            b2.table = b.table;
            b2.mask = b.mask;
            if (b2.joined) memset(b2.joined, 0, sizeof *b2.joined * (size_t)n_addr[op]);
            if (b2.table) memset(b2.table, 0xff, sizeof *b2.table * (size_t)table_size);
            b2.emit = &e;
            if (!rc) rc = walk(&g, &f, op, &b2, &m, addrs, err);
            if (!rc) {
                est_final_shape(&b2, b2.first_request, b.trigger, b.n_trigger, &start, &nrows, &bw);
                emit_sets(&e, e.n_win, start, nrows, bw);
                if (e.failed) rc = qs_fail(err, QS_ERR_NOMEM, "SCALE-Sim traces: out of memory");
            }
        }
        qs_free(e.win);
        qs_free(e.scratch);
        qs_free(e.set.key);
        qs_free(e.set.full);
        qs_free(b.joined);
        qs_free(b.table);
        qs_free(b.trigger);
        qs_free(addrs);
    }

    for (int i = 0; i < 6; i++) {
        if (!o[i]) continue;
        if (o[i]->f) {
            out_flush(o[i]);
            if (fclose(o[i]->f) || o[i]->failed) {
                if (!rc) {
                    snprintf(path, sizeof path, "%s/%s", dir, TRACE_NAMES[i]);
                    rc = qs_fail(err, QS_ERR_IO, "%s: write failed", path);
                }
            }
        }
        qs_free(o[i]);
    }
    for (int op = 0; op < 2; op++) qs_free(ut[op].mask);
    qs_free(dig);
    qs_free(w.row);
    geom_free(&g);
    qs_free(m.stall_row);
    qs_free(m.stall_amount);
    qs_free(m.drain_line0);
    qs_free(m.drain_lines);
    qs_free(m.drain_cycle);
    qs_free(m.forced_line);
    qs_free(m.forced_valid);
    return rc;
}
