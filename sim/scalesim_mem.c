/* SCALE-Sim v2's memory model for the scalesim timing convention
 * (scalesim_mem.h; rules and reasons in docs/timing.md, "SCALE-Sim convention"). */
#include "scalesim_mem.h"

#include <stdlib.h>
#include <string.h>

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t qs_ssmem_fold_rows(qs_dataflow df, int32_t R, int32_t C, int64_t T)
{
    /* OS: T reduction steps stream in, then C-1 rows let the last partial
     * products cross the array, and the skew over R rows adds R-1.
     * WS/IS: R rows preload the stationary operand, T vectors stream, the
     * last needs R+C-2 hops to leave the array. */
    return df == QS_DF_OS ? T + R + C - 2 : 2 * (int64_t)R + C + T - 2;
}

void qs_ssmem_begin(qs_ssmem *m, const qs_arch *a, qs_scalesim_stats *st)
{
    memset(m, 0, sizeof *m);
    memset(st, 0, sizeof *st);
    m->st = st;
    m->df = a->dataflow;
    m->R = a->rows;
    m->C = a->cols;
    int64_t words = (int64_t)a->accum.size_kib * 1024; /* one-byte words */
    m->active_words = ceil_div(words, 2);               /* SCALE-Sim: ceil(total * 0.5) */
    m->drain_words = words - m->active_words;
    m->read_bw = a->scalesim_bandwidth;
    /* CALC mode drains ofmap at one array row of words per cycle; USER mode at
     * the configured bandwidth */
    m->line_words = a->scalesim_bandwidth > 0 ? a->scalesim_bandwidth : a->cols;
    m->free_words = words;
    m->prev_ifmap_block = m->prev_filter_block = -1;
}

static void store_words(qs_ssmem *m, int64_t n)
{
    m->free_words -= n;
    int64_t f = m->line_fill + n;
    m->lines += f / m->line_words;
    m->line_fill = (int32_t)(f % m->line_words);
}

/* Drain up to one buffer half of lines starting at `cycle` (one line per
 * cycle, no latency); *end = the cycle of the last line. 0 = nothing to
 * drain, -1 = out of memory. */
static int drain(qs_ssmem *m, uint64_t cycle, uint64_t *end)
{
    if (m->line_fill) { /* the line being filled is sent as it is */
        if (m->n_partial == m->cap_partial) {
            int32_t cap = m->cap_partial ? 2 * m->cap_partial : 16;
            qs_ssmem_partial *p = realloc(m->partial, sizeof *p * (size_t)cap);
            if (!p) return -1;
            m->partial = p;
            m->cap_partial = cap;
        }
        m->partial[m->n_partial++] = (qs_ssmem_partial){m->lines, m->line_fill};
        if (m->log_drains) {
            if (m->n_forced_log == m->cap_forced_log) {
                int64_t cap = m->cap_forced_log ? 2 * m->cap_forced_log : 64;
                int64_t *l = realloc(m->forced_line, sizeof *l * (size_t)cap);
                if (l) m->forced_line = l;
                int32_t *v = l ? realloc(m->forced_valid, sizeof *v * (size_t)cap) : NULL;
                if (v) m->forced_valid = v;
                if (!l || !v) {
                    m->log_oom = 1;
                    return -1;
                }
                m->cap_forced_log = cap;
            }
            m->forced_line[m->n_forced_log] = m->lines;
            m->forced_valid[m->n_forced_log++] = m->line_fill;
        }
        m->lines++;
        m->line_fill = 0;
    }
    int64_t nl = ceil_div(m->drain_words, m->line_words);
    if (nl > m->lines - m->drain_next) nl = m->lines - m->drain_next;
    if (nl <= 0) return 0;
    int64_t last = m->drain_next + nl - 1;
    int32_t last_valid = m->line_words;
    int32_t keep = 0;
    for (int32_t i = 0; i < m->n_partial; i++) {
        if (m->partial[i].line == last) last_valid = m->partial[i].valid;
        if (m->partial[i].line > last) m->partial[keep++] = m->partial[i];
    }
    m->n_partial = keep;
    /* SCALE-Sim counts the drained words as whole lines, less the empty
     * slots of the last line only (a partial line inside counts as full) */
    int64_t words = nl * m->line_words - (m->line_words - last_valid);
    m->free_words += words;
    m->st->ofmap_dram_writes += (uint64_t)words;
    if (m->drain_next == 0) m->st->ofmap_dram_first = cycle;
    if (m->log_drains) {
        if (m->n_drain_log == m->cap_drain_log) {
            int64_t cap = m->cap_drain_log ? 2 * m->cap_drain_log : 64;
            int64_t *l0 = realloc(m->drain_line0, sizeof *l0 * (size_t)cap);
            if (l0) m->drain_line0 = l0;
            int64_t *n = l0 ? realloc(m->drain_lines, sizeof *n * (size_t)cap) : NULL;
            if (n) m->drain_lines = n;
            uint64_t *c = n ? realloc(m->drain_cycle, sizeof *c * (size_t)cap) : NULL;
            if (c) m->drain_cycle = c;
            if (!l0 || !n || !c) {
                m->log_oom = 1;
                return -1;
            }
            m->cap_drain_log = cap;
        }
        m->drain_line0[m->n_drain_log] = m->drain_next;
        m->drain_lines[m->n_drain_log] = nl;
        m->drain_cycle[m->n_drain_log++] = cycle;
    }
    m->drain_next += nl;
    *end = cycle + (uint64_t)nl - 1;
    /* SCALE-Sim's stop cycle is that of the last line in its trace, i.e. of
     * the last drain started: the final flush starts at Total Cycles even
     * when an earlier drain is still running past it */
    m->st->ofmap_dram_last = *end;
    return 1;
}

/* n ofmap words of one demand row arrive at `cycle`; returns the cycle the
 * row completes. A drain starts (without stalling) on the word that leaves
 * fewer than active_words free, and frees its words at once; the array
 * stalls only when a word finds the buffer full while a drain is still in
 * flight, until that drain ends. */
static uint64_t write_row(qs_ssmem *m, int64_t n, uint64_t cycle, int *oom)
{
    uint64_t cur = cycle;
    while (n > 0) {
        if (cur < m->drain_end) {
            /* words until the buffer is full: that word waits for the drain */
            int64_t k = m->free_words > 1 ? m->free_words : 1;
            if (n < k) {
                store_words(m, n);
                break;
            }
            store_words(m, k);
            n -= k;
            cur = m->drain_end;
            continue;
        }
        /* words until the active half overflows */
        int64_t k = m->free_words - m->active_words + 1;
        if (k < 1) k = 1;
        if (n < k) {
            store_words(m, n);
            break;
        }
        store_words(m, k);
        n -= k;
        uint64_t end = cur;
        int d = drain(m, cur, &end);
        if (d < 0) { *oom = 1; return cur; }
        if (d == 0) { /* nothing drainable (SCALE-Sim would fail here): keep storing */
            store_words(m, n);
            break;
        }
        m->drain_end = end;
    }
    return cur;
}

static void log_stall(qs_ssmem *m, uint64_t row, uint64_t amount)
{
    if (!m->log_stalls || amount == 0) return;
    if (m->n_stall_log == m->cap_stall_log) {
        int64_t cap = m->cap_stall_log ? 2 * m->cap_stall_log : 64;
        uint64_t *r = realloc(m->stall_row, sizeof *r * (size_t)cap);
        if (r) m->stall_row = r;
        uint64_t *a = r ? realloc(m->stall_amount, sizeof *a * (size_t)cap) : NULL;
        if (a) m->stall_amount = a;
        if (!r || !a) {
            m->log_oom = 1;
            return;
        }
        m->cap_stall_log = cap;
    }
    m->stall_row[m->n_stall_log] = row;
    m->stall_amount[m->n_stall_log++] = amount;
}

/* Valid elements on anti-diagonal s of a block of rows x in [x0, x1) and
 * columns c in [0, cu): the count of x + c = s (the skew puts element (x, c)
 * on demand row base + x + c). */
static int64_t diag_count(int64_t s, int64_t x0, int64_t x1, int64_t cu)
{
    int64_t lo = s - x1 + 1 > 0 ? s - x1 + 1 : 0;
    int64_t hi = s - x0 < cu - 1 ? s - x0 : cu - 1;
    return hi >= lo ? hi - lo + 1 : 0;
}

static uint64_t user_fold(qs_ssmem *m, int64_t T, int32_t ku, int32_t cu);

uint64_t qs_ssmem_fold(qs_ssmem *m, int64_t T, int32_t ku, int32_t cu, int64_t ifmap_block, int64_t filter_block)
{
    qs_scalesim_stats *st = m->st;
    const int32_t R = m->R, C = m->C;
    const int64_t rows = qs_ssmem_fold_rows(m->df, R, C, T);
    const double pes = (double)R * C;
    uint64_t stall = 0;

    /* report figures, as SCALE-Sim counts them per fold */
    st->folds++;
    st->mapping_eff_sum += (double)ku * cu / pes;
    int64_t util_cycles = m->df == QS_DF_OS ? T + R + C - 2 : 2 * (int64_t)R + 2 * (int64_t)C + T - 3;
    st->compute_util_sum += (double)ku * cu * (double)T / (pes * (double)util_cycles);
    int64_t ifmap_words, filter_words;
    switch (m->df) {
    case QS_DF_OS:
        ifmap_words = T * ku;
        filter_words = T * cu;
        /* SCALE-Sim v2 adds the padded fold's height + width to its ofmap count */
        st->ofmap_sram_writes += (uint64_t)((int64_t)ku * cu + R + C);
        break;
    case QS_DF_WS:
        ifmap_words = T * ku;
        filter_words = (int64_t)ku * cu;
        st->ofmap_sram_writes += (uint64_t)(T * cu);
        break;
    default: /* IS */
        ifmap_words = (int64_t)ku * cu;
        filter_words = T * ku;
        st->ofmap_sram_writes += (uint64_t)(T * cu);
        break;
    }
    st->ifmap_sram_reads += (uint64_t)ifmap_words;
    st->filter_sram_reads += (uint64_t)filter_words;

    if (m->user) return user_fold(m, T, ku, cu);

    /* USER mode reads (qsim's model, docs/timing.md): the operand tiles a
     * fold does not share with the previous one are prefetched at read_bw
     * words/cycle while the previous fold computes; the first fold's fill is
     * not counted (compute cycles exclude the initial DRAM fill). */
    if (m->read_bw > 0 && st->folds > 1) {
        int64_t fi = ifmap_block != m->prev_ifmap_block ? ceil_div(ifmap_words, m->read_bw) : 0;
        int64_t ff = filter_block != m->prev_filter_block ? ceil_div(filter_words, m->read_bw) : 0;
        int64_t need = fi > ff ? fi : ff;
        if (need > (int64_t)m->prev_fold_rows) stall += (uint64_t)(need - (int64_t)m->prev_fold_rows);
    }
    m->prev_ifmap_block = ifmap_block;
    m->prev_filter_block = filter_block;
    m->stalls += stall;

    /* ofmap writes through the write buffer: block of rows x in [x0, x1),
     * columns [0, cu), element (x, c) on the fold's demand row base + x + c */
    int64_t base, x0, x1;
    if (m->df == QS_DF_OS) {
        /* T-1 empty rows, then the R accumulator rows leave bottom row first:
         * the used rows are the last ku of the flipped block */
        base = T - 1;
        x0 = R - ku;
        x1 = R;
    } else {
        base = 2 * (int64_t)R - 1; /* preload and the first vector's trip down */
        x0 = 0;
        x1 = T;
    }
    /* Rows (within the fold) of the first and last request of each read
     * operand, from the shapes of SCALE-Sim's demand matrices: OS ifmap and
     * filter are skewed from row 0; WS/IS stream their operand after R
     * preload rows, skewed; the stationary operand is flipped (its used rows
     * last) and not skewed. */
    int64_t if_first, if_last, fl_first, fl_last;
    switch (m->df) {
    case QS_DF_OS:
        if_first = fl_first = 0;
        if_last = T - 1 + ku - 1;
        fl_last = T - 1 + cu - 1;
        break;
    case QS_DF_WS:
        if_first = R;
        if_last = R + T - 1 + ku - 1;
        fl_first = R - ku;
        fl_last = R - 1;
        break;
    default:
        if_first = R - ku;
        if_last = R - 1;
        fl_first = R;
        fl_last = R + T - 1 + ku - 1;
        break;
    }
    const uint64_t fold_stall0 = m->stalls;
    uint64_t if_stall = 0, fl_stall = 0; /* stalls before the last read rows */
    int oom = 0;
    for (int64_t s = x0; s <= x1 - 1 + cu - 1; s++) {
        int64_t n = diag_count(s, x0, x1, cu);
        if (n == 0) continue;
        uint64_t cycle = m->rows + (uint64_t)(base + s) + m->stalls;
        uint64_t done = write_row(m, n, cycle, &oom);
        if (oom) return UINT64_MAX;
        if (st->folds == 1 && s == x0) st->ofmap_sram_first = done;
        st->ofmap_sram_last = done;
        if (done > cycle) {
            /* a read row is served at its request cycle (row + stalls of the
             * rows before it) plus one */
            if (base + s < if_last) if_stall += done - cycle;
            if (base + s < fl_last) fl_stall += done - cycle;
        }
        stall += done - cycle;
        m->stalls += done - cycle;
        log_stall(m, m->rows + (uint64_t)(base + s), done - cycle);
    }
    if (st->folds == 1) {
        st->ifmap_sram_first = m->rows + (uint64_t)if_first + fold_stall0 + 1;
        st->filter_sram_first = m->rows + (uint64_t)fl_first + fold_stall0 + 1;
    }
    st->ifmap_sram_last = m->rows + (uint64_t)if_last + fold_stall0 + if_stall + 1;
    st->filter_sram_last = m->rows + (uint64_t)fl_last + fold_stall0 + fl_stall + 1;
    m->rows += (uint64_t)rows;
    m->prev_fold_rows = (uint64_t)rows;
    return stall;
}

/* USER bandwidth mode with SCALE-Sim's read buffers (docs/timing.md,
 * "SCALE-Sim convention"): every demand row of the fold is requested from
 * the ifmap and filter buffers and written to the ofmap buffer at the same
 * cycle (row index + stalls so far); the row's stall is the largest of the
 * three waits (reads: served cycle - request - 1, ofmap: completion -
 * request). */
static uint64_t user_fold(qs_ssmem *m, int64_t T, int32_t ku, int32_t cu)
{
    qs_scalesim_stats *st = m->st;
    const int32_t R = m->R, C = m->C;
    const int64_t rows = qs_ssmem_fold_rows(m->df, R, C, T);
    const int64_t fold = (int64_t)st->folds - 1;
    int64_t base, x0, x1;
    if (m->df == QS_DF_OS) {
        base = T - 1;
        x0 = R - ku;
        x1 = R;
    } else {
        base = 2 * (int64_t)R - 1;
        x0 = 0;
        x1 = T;
    }
    uint64_t stall = 0;
    int oom = 0;
    for (int64_t t = 0; t < rows; t++) {
        uint64_t cycle = m->rows + (uint64_t)t + m->stalls;
        int64_t wait = 0;
        uint64_t served[2] = {cycle + 1, cycle + 1}; /* a row without a request is served after the hit latency */
        for (int op = 0; op < 2; op++) {
            int64_t sv = qs_ssuser_row(m->user, op, fold, t, (int64_t)cycle);
            if (sv < 0) continue;
            served[op] = (uint64_t)sv;
            if (sv - (int64_t)cycle - 1 > wait) wait = sv - (int64_t)cycle - 1;
            uint64_t *first = op == 0 ? &st->ifmap_sram_first : &st->filter_sram_first;
            uint64_t *last = op == 0 ? &st->ifmap_sram_last : &st->filter_sram_last;
            if (m->user_seen[op] == 0) *first = (uint64_t)sv;
            m->user_seen[op] = 1;
            *last = (uint64_t)sv;
        }
        int64_t n = diag_count(t - base, x0, x1, cu);
        uint64_t done = cycle;
        if (n > 0) {
            done = write_row(m, n, cycle, &oom);
            if (oom) return UINT64_MAX;
            if (!m->user_seen[2]) st->ofmap_sram_first = done;
            m->user_seen[2] = 1;
            st->ofmap_sram_last = done;
            if ((int64_t)(done - cycle) > wait) wait = (int64_t)(done - cycle);
        }
        if (m->row_hook) m->row_hook(m->hook_ctx, fold, t, cycle, served[0], served[1], done);
        m->stalls += (uint64_t)wait;
        stall += (uint64_t)wait;
    }
    m->rows += (uint64_t)rows;
    m->prev_fold_rows = (uint64_t)rows;
    return stall;
}

void qs_ssmem_end(qs_ssmem *m)
{
    qs_scalesim_stats *st = m->st;
    if (m->rows > 0) {
        st->stall_cycles = m->stalls;
        st->total_cycles = m->rows - 1 + m->stalls;
        /* SCALE-Sim empties the buffer after the last demand row: each drain
         * starts the cycle after the previous one ended */
        uint64_t cycle = st->total_cycles, end = cycle;
        while ((m->drain_next < m->lines || m->line_fill) && drain(m, cycle, &end) > 0) cycle = end + 1;
    }
    if (m->user) {
        st->dram_reads_replayed = 1;
        for (int op = 0; op < 2; op++)
            qs_ssuser_dram(m->user, op, &st->dram_reads[op], &st->dram_read_first[op], &st->dram_read_last[op]);
        qs_ssuser_destroy(m->user);
        m->user = NULL;
    }
    free(m->partial);
    m->partial = NULL;
    if (!m->log_stalls) { /* a replay frees its log itself */
        free(m->stall_row);
        free(m->stall_amount);
        m->stall_row = m->stall_amount = NULL;
    }
    m->n_partial = m->cap_partial = 0;
}
