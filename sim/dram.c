/* The bank-level DRAM model; rules and their sources in docs/dram.md, the
 * cycle rules in docs/timing.md ("Bank-level DRAM"). */
#include "dram.h"
#include "qs_alloc.h"

#include <stdlib.h>
#include <string.h>

#define NONE_ROW (-1)

/* ---- device state: per bank, bank group, rank, channel ---------------------- */

typedef struct {
    int64_t open_row;    /* NONE_ROW when precharged */
    uint64_t act_ready;  /* earliest ACT: tRP after the last PRE, tRC after the last ACT, tRFC after REF */
    uint64_t col_ready;  /* earliest RD/WR: tRCD after ACT */
    uint64_t pre_ready;  /* earliest PRE: tRAS after ACT, tRTP after RD, tWR after write data */
    uint64_t act_at;     /* the open row's ACT (bank active time) */
    int32_t row_hits;    /* column commands to the open row since its ACT (round-robin arbiter) */
} bank_state;

typedef struct {
    uint64_t act_ready;  /* tRRD_L after the group's last ACT */
    uint64_t col_ready;  /* tCCD_L after the group's last RD/WR */
    uint64_t rd_ready;   /* tWTR_L after the group's last write data */
} group_state;

typedef struct {
    uint64_t act_ready;  /* tRRD_S after the rank's last ACT */
    uint64_t col_ready;  /* tCCD_S after the rank's last RD/WR */
    uint64_t rd_ready;   /* tWTR_S after the rank's last write data */
    uint64_t wr_ready;   /* tRTW after the rank's last RD */
    uint64_t faw[4];     /* the last four ACTs, oldest first once four are in */
    int32_t n_acts;      /* ACTs so far, saturating at 4 */
    uint64_t next_ref;   /* when the next all-bank refresh is due */
} rank_state;

typedef struct {
    uint64_t bus_free;   /* first cycle the data bus is free */
} chan_state;

/* A request waiting in a channel's controller queue. */
typedef struct {
    uint64_t addr, arrive;
    qs_dram_addr at;
    uint64_t ready, seq;  /* two-level controller: in its bank's command queue from `ready`; age */
    int opened;           /* round-robin arbiter: its own ACT opened its row (counted a miss or conflict) */
} queued;

struct qs_dram {
    qs_dram_cfg c;
    qs_dram_bits bits;
    int32_t field_shift[6]; /* ch ra bg ba ro co: bit position of each field above the burst offset */
    uint64_t tck_fs, accel_fs;
    int32_t burst_cycles;
    bank_state *banks;
    group_state *groups;
    rank_state *ranks;
    chan_state *chans;
    queued *queue;          /* queue_depth entries, one channel at a time */
    queued *cq;             /* cmd_queue_depth > 0: per bank of a channel, its command queue */
    int32_t *cq_n;
    int32_t banks_per_channel;
    int32_t *rr_last;       /* round-robin arbiter, per channel: the bank queue served last */
    uint64_t *wb;           /* write_buffer > 0: per channel, the posted writes' addresses, oldest first */
    int32_t *wb_n;
    uint64_t *wb_since;     /* per channel: the last write posted */
    uint64_t *idle_from;    /* per channel: the last column command (its command queues are empty after it) */
    uint64_t last_move;     /* the last move of a two-level transfer into the command queues */
    struct seen_bank {
        const bank_state *bank;
        int hit;
    } *seen;                /* FR-FCFS scratch: (bank, hit) pairs already weighed */
    uint64_t *req_addr;     /* a transfer's requests, grouped per channel */
    int32_t *req_chan;
    size_t req_cap;
    int oom;
    qs_dram_stats st;
};

enum { F_CH, F_RA, F_BG, F_BA, F_RO, F_CO };

static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- set-up -------------------------------------------------------------------- */

qs_status qs_dram_create(const qs_dram_cfg *cfg, double accel_mhz, qs_dram **out, qs_error *err)
{
    *out = NULL;
    qs_dram *d = qs_calloc(1, sizeof *d);
    if (!d) return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DRAM model");
    d->c = *cfg;
    d->bits = qs_dram_bits_of(cfg);
    /* address_mapping names the fields MSB first; the last one sits right
     * above the burst offset */
    static const char *const NAMES[6] = {"ch", "ra", "bg", "ba", "ro", "co"};
    const int32_t width[6] = {d->bits.ch, d->bits.ra, d->bits.bg, d->bits.ba, d->bits.ro, d->bits.co};
    int32_t shift = 0;
    for (int i = 10; i >= 0; i -= 2)
        for (int f = 0; f < 6; f++)
            if (cfg->address_mapping[i] == NAMES[f][0] && cfg->address_mapping[i + 1] == NAMES[f][1]) {
                d->field_shift[f] = shift;
                shift += width[f];
            }
    d->tck_fs = (uint64_t)(cfg->tck_ps * 1000.0 + 0.5);
    d->accel_fs = (uint64_t)(1e9 / accel_mhz + 0.5);
    d->burst_cycles = cfg->burst_length / cfg->transfers_per_cycle;
    size_t n_ranks = (size_t)cfg->channels * (size_t)cfg->ranks;
    size_t n_groups = n_ranks * (size_t)cfg->bankgroups;
    size_t n_banks = n_groups * (size_t)cfg->banks_per_group;
    d->banks = qs_calloc(n_banks, sizeof *d->banks);
    d->groups = qs_calloc(n_groups, sizeof *d->groups);
    d->ranks = qs_calloc(n_ranks, sizeof *d->ranks);
    d->chans = qs_calloc((size_t)cfg->channels, sizeof *d->chans);
    d->queue = qs_calloc((size_t)cfg->queue_depth, sizeof *d->queue);
    d->seen = qs_calloc((size_t)cfg->queue_depth, sizeof *d->seen);
    d->banks_per_channel = cfg->ranks * cfg->bankgroups * cfg->banks_per_group;
    d->rr_last = qs_calloc((size_t)cfg->channels, sizeof *d->rr_last);
    /* (+ 1: a block even when write_buffer = 0) */
    d->wb = qs_calloc((size_t)cfg->channels * (size_t)(cfg->write_buffer + 1), sizeof *d->wb);
    d->wb_n = qs_calloc((size_t)cfg->channels, sizeof *d->wb_n);
    d->wb_since = qs_calloc((size_t)cfg->channels, sizeof *d->wb_since);
    d->idle_from = qs_calloc((size_t)cfg->channels, sizeof *d->idle_from);
    if (cfg->cmd_queue_depth > 0) {
        d->cq = qs_calloc((size_t)d->banks_per_channel * (size_t)cfg->cmd_queue_depth, sizeof *d->cq);
        d->cq_n = qs_calloc((size_t)d->banks_per_channel, sizeof *d->cq_n);
        if (!d->cq || !d->cq_n) {
            qs_dram_destroy(d);
            return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DRAM model");
        }
    }
    if (!d->banks || !d->groups || !d->ranks || !d->chans || !d->rr_last || !d->wb || !d->wb_n || !d->wb_since ||
        !d->idle_from || !d->queue || !d->seen || !d->tck_fs || !d->accel_fs) {
        qs_dram_destroy(d);
        return qs_fail(err, QS_ERR_NOMEM, "out of memory for the DRAM model");
    }
    qs_dram_reset(d);
    *out = d;
    return QS_OK;
}

void qs_dram_destroy(qs_dram *d)
{
    if (!d) return;
    qs_free(d->banks);
    qs_free(d->groups);
    qs_free(d->ranks);
    qs_free(d->chans);
    qs_free(d->rr_last);
    qs_free(d->wb);
    qs_free(d->wb_n);
    qs_free(d->wb_since);
    qs_free(d->idle_from);
    qs_free(d->queue);
    qs_free(d->seen);
    qs_free(d->cq);
    qs_free(d->cq_n);
    qs_free(d->req_addr);
    qs_free(d->req_chan);
    qs_free(d);
}

void qs_dram_reset(qs_dram *d)
{
    const qs_dram_cfg *c = &d->c;
    size_t n_ranks = (size_t)c->channels * (size_t)c->ranks;
    size_t n_groups = n_ranks * (size_t)c->bankgroups;
    size_t n_banks = n_groups * (size_t)c->banks_per_group;
    memset(d->banks, 0, n_banks * sizeof *d->banks);
    for (size_t i = 0; i < n_banks; i++) d->banks[i].open_row = NONE_ROW;
    memset(d->groups, 0, n_groups * sizeof *d->groups);
    memset(d->ranks, 0, n_ranks * sizeof *d->ranks);
    for (size_t i = 0; i < n_ranks; i++) d->ranks[i].next_ref = (uint64_t)c->tREFI;
    memset(d->chans, 0, (size_t)c->channels * sizeof *d->chans);
    memset(d->rr_last, 0, (size_t)c->channels * sizeof *d->rr_last);
    memset(d->wb_n, 0, (size_t)c->channels * sizeof *d->wb_n);
    memset(d->wb_since, 0, (size_t)c->channels * sizeof *d->wb_since);
    memset(d->idle_from, 0, (size_t)c->channels * sizeof *d->idle_from);
    memset(&d->st, 0, sizeof d->st);
    d->oom = 0;
}

uint32_t qs_dram_burst_bytes(const qs_dram *d) { return (uint32_t)(d->c.bus_bits / 8 * d->c.burst_length); }

qs_dram_addr qs_dram_decode(const qs_dram *d, uint64_t addr)
{
    uint64_t a = addr >> d->bits.offset_bits;
    const int32_t width[6] = {d->bits.ch, d->bits.ra, d->bits.bg, d->bits.ba, d->bits.ro, d->bits.co};
    int32_t v[6];
    for (int f = 0; f < 6; f++) v[f] = (int32_t)((a >> d->field_shift[f]) & (((uint64_t)1 << width[f]) - 1));
    /* addresses past the device's capacity wrap (the row field keeps its low bits) */
    qs_dram_addr r = {v[F_CH], v[F_RA], v[F_BG], v[F_BA], v[F_RO], v[F_CO]};
    return r;
}

const qs_dram_stats *qs_dram_get_stats(const qs_dram *d) { return &d->st; }

void qs_dram_stats_add_delta(qs_dram_stats *dst, const qs_dram_stats *a, const qs_dram_stats *b)
{
    dst->reads += a->reads - b->reads;
    dst->writes += a->writes - b->writes;
    dst->acts += a->acts - b->acts;
    dst->pres += a->pres - b->pres;
    dst->refreshes += a->refreshes - b->refreshes;
    dst->row_hits += a->row_hits - b->row_hits;
    dst->row_misses += a->row_misses - b->row_misses;
    dst->row_conflicts += a->row_conflicts - b->row_conflicts;
    dst->read_latency_sum += a->read_latency_sum - b->read_latency_sum;
    dst->bank_active += a->bank_active - b->bank_active;
}

/* A bank precharges at cycle pre: its row was open since its ACT. */
static void close_row(qs_dram *d, bank_state *b, uint64_t pre)
{
    d->st.bank_active += pre > b->act_at ? pre - b->act_at : 0;
    b->open_row = NONE_ROW;
    d->st.pres++;
}

void qs_dram_finish(qs_dram *d, uint64_t t_end)
{
    const qs_dram_cfg *c = &d->c;
    size_t n = (size_t)c->channels * c->ranks * c->bankgroups * c->banks_per_group;
    for (size_t i = 0; i < n; i++)
        if (d->banks[i].open_row != NONE_ROW)
            d->st.bank_active += t_end > d->banks[i].act_at ? t_end - d->banks[i].act_at : 0;
}

uint64_t qs_dram_to_dram_cycle(const qs_dram *d, uint64_t accel_cycle)
{
    /* ceil(accel_cycle * accel_period / tCK), in 128 bits against overflow */
    unsigned __int128 fs = (unsigned __int128)accel_cycle * d->accel_fs;
    return (uint64_t)((fs + d->tck_fs - 1) / d->tck_fs);
}

uint64_t qs_dram_to_accel_cycle(const qs_dram *d, uint64_t dram_cycle)
{
    unsigned __int128 fs = (unsigned __int128)dram_cycle * d->tck_fs;
    return (uint64_t)((fs + d->accel_fs - 1) / d->accel_fs);
}

/* ---- the rules ------------------------------------------------------------------- */

static bank_state *bank_of(qs_dram *d, const qs_dram_addr *a)
{
    const qs_dram_cfg *c = &d->c;
    size_t i = (((size_t)a->ch * c->ranks + a->ra) * c->bankgroups + a->bg) * c->banks_per_group + a->ba;
    return &d->banks[i];
}

static group_state *group_of(qs_dram *d, const qs_dram_addr *a)
{
    return &d->groups[((size_t)a->ch * d->c.ranks + a->ra) * d->c.bankgroups + a->bg];
}

static rank_state *rank_of(qs_dram *d, const qs_dram_addr *a) { return &d->ranks[(size_t)a->ch * d->c.ranks + a->ra]; }

/* All-bank refreshes of a rank due at or before cycle t: each waits until
 * every bank may be precharged (open ones are closed, tRP), then blocks ACTs
 * for tRFC. A long idle stretch is jumped over: after one refresh every bank
 * is closed, so the following ones happen exactly when due. */
static void refresh_upto(qs_dram *d, const qs_dram_addr *a, uint64_t t)
{
    rank_state *r = rank_of(d, a);
    const qs_dram_cfg *c = &d->c;
    size_t nb = (size_t)c->bankgroups * c->banks_per_group;
    bank_state *b0 = &d->banks[((size_t)a->ch * c->ranks + a->ra) * nb];
    int first = 1;
    while (r->next_ref <= t) {
        uint64_t ref = r->next_ref;
        if (first) {
            for (size_t i = 0; i < nb; i++) {
                bank_state *b = &b0[i];
                if (b->open_row != NONE_ROW) {
                    uint64_t pre = b->pre_ready;
                    b->act_ready = max64(b->act_ready, pre + (uint64_t)c->tRP);
                    close_row(d, b, pre);
                }
                ref = max64(ref, b->act_ready);
            }
            first = 0;
        } else {
            /* every bank closed and idle: jump over the whole refreshes left */
            uint64_t k = (t - r->next_ref) / (uint64_t)c->tREFI;
            ref = r->next_ref + k * (uint64_t)c->tREFI;
            d->st.refreshes += k;
            r->next_ref = ref;
            for (size_t i = 0; i < nb; i++) ref = max64(ref, b0[i].act_ready);
        }
        for (size_t i = 0; i < nb; i++) b0[i].act_ready = max64(b0[i].act_ready, ref + (uint64_t)c->tRFC);
        d->st.refreshes++;
        r->next_ref += (uint64_t)c->tREFI;
    }
}

/* Place one request's commands at the earliest cycles the rules allow, with
 * t0 the earliest issue cycle; the state is only read. */
typedef struct {
    qs_dram_served s;
    uint64_t first_cmd;
} plan;

static plan plan_request(qs_dram *d, const qs_dram_addr *a, uint64_t t0, int is_write)
{
    const qs_dram_cfg *c = &d->c;
    bank_state *b = bank_of(d, a);
    group_state *g = group_of(d, a);
    rank_state *r = rank_of(d, a);
    chan_state *ch = &d->chans[a->ch];
    plan p;
    memset(&p, 0, sizeof p);
    uint64_t t = t0, col_from = t0;
    if (b->open_row == a->ro) {
        p.s.outcome = QS_ROW_HIT;
        col_from = max64(t, b->col_ready);
        p.first_cmd = col_from;
    } else {
        uint64_t act_from = max64(t, b->act_ready);
        if (b->open_row != NONE_ROW) {
            p.s.outcome = QS_ROW_CONFLICT;
            p.s.pre = max64(t, b->pre_ready);
            act_from = max64(act_from, p.s.pre + (uint64_t)c->tRP);
            p.first_cmd = p.s.pre;
        } else {
            p.s.outcome = QS_ROW_MISS;
        }
        act_from = max64(act_from, r->act_ready);
        act_from = max64(act_from, g->act_ready);
        if (r->n_acts >= 4) act_from = max64(act_from, r->faw[0] + (uint64_t)c->tFAW);
        p.s.act = act_from;
        if (p.s.outcome == QS_ROW_MISS) p.first_cmd = act_from;
        col_from = act_from + (uint64_t)c->tRCD;
    }
    uint64_t col = max64(col_from, max64(r->col_ready, g->col_ready));
    uint64_t lat = is_write ? (uint64_t)c->tCWL : (uint64_t)c->tCL;
    if (is_write) col = max64(col, r->wr_ready);
    else col = max64(col, max64(r->rd_ready, g->rd_ready));
    /* the data burst needs the channel's bus */
    if (ch->bus_free > col + lat) col = ch->bus_free - lat;
    p.s.col = col;
    p.s.data_end = col + lat + (uint64_t)d->burst_cycles;
    if (p.s.outcome == QS_ROW_HIT) p.first_cmd = col;
    return p;
}

/* Commit a planned request to the state. */
/* An ACT of row a->ro at cycle act (the bank is closed). */
static void place_act(qs_dram *d, const qs_dram_addr *a, uint64_t act)
{
    const qs_dram_cfg *c = &d->c;
    bank_state *b = bank_of(d, a);
    group_state *g = group_of(d, a);
    rank_state *r = rank_of(d, a);
    b->open_row = a->ro;
    b->act_at = act;
    b->col_ready = act + (uint64_t)c->tRCD;
    b->pre_ready = act + (uint64_t)c->tRAS;
    b->act_ready = act + (uint64_t)c->tRC;
    r->act_ready = max64(r->act_ready, act + (uint64_t)c->tRRD_S);
    g->act_ready = max64(g->act_ready, act + (uint64_t)c->tRRD_L);
    if (r->n_acts < 4) r->faw[r->n_acts++] = act;
    else {
        memmove(r->faw, r->faw + 1, 3 * sizeof r->faw[0]);
        r->faw[3] = act;
    }
    b->row_hits = 0;
    d->st.acts++;
}

/* An explicit PRE at cycle pre (the bank's row is open). */
static void place_pre(qs_dram *d, const qs_dram_addr *a, uint64_t pre)
{
    bank_state *b = bank_of(d, a);
    b->act_ready = max64(b->act_ready, pre + (uint64_t)d->c.tRP);
    close_row(d, b, pre);
}

/* The RD/WR of a planned request, its row open. */
static void place_col(qs_dram *d, const qs_dram_addr *a, const plan *p, int is_write)
{
    const qs_dram_cfg *c = &d->c;
    bank_state *b = bank_of(d, a);
    group_state *g = group_of(d, a);
    rank_state *r = rank_of(d, a);
    chan_state *ch = &d->chans[a->ch];
    b->row_hits++;
    uint64_t col = p->s.col;
    r->col_ready = max64(r->col_ready, col + (uint64_t)c->tCCD_S);
    g->col_ready = max64(g->col_ready, col + (uint64_t)c->tCCD_L);
    if (is_write) {
        b->pre_ready = max64(b->pre_ready, p->s.data_end + (uint64_t)c->tWR);
        r->rd_ready = max64(r->rd_ready, p->s.data_end + (uint64_t)c->tWTR_S);
        g->rd_ready = max64(g->rd_ready, p->s.data_end + (uint64_t)c->tWTR_L);
        d->st.writes++;
    } else {
        b->pre_ready = max64(b->pre_ready, col + (uint64_t)c->tRTP);
        r->wr_ready = max64(r->wr_ready, col + (uint64_t)c->tRTW);
        d->st.reads++;
    }
    ch->bus_free = p->s.data_end;
    if (c->page_policy == QS_PAGE_CLOSED) { /* auto-precharge as soon as the bank allows */
        b->act_ready = max64(b->act_ready, b->pre_ready + (uint64_t)c->tRP);
        close_row(d, b, b->pre_ready);
    }
}

/* Commit a planned request to the state: its PRE, ACT and RD/WR. */
static void commit(qs_dram *d, const qs_dram_addr *a, const plan *p, int is_write)
{
    if (p->s.outcome != QS_ROW_HIT) {
        if (p->s.outcome == QS_ROW_CONFLICT) close_row(d, bank_of(d, a), p->s.pre);
        place_act(d, a, p->s.act);
        if (p->s.outcome == QS_ROW_MISS) d->st.row_misses++;
        else d->st.row_conflicts++;
    } else {
        d->st.row_hits++;
    }
    place_col(d, a, p, is_write);
}

/* Plan with refresh: a refresh due before the request's first command comes
 * first (and may close its row). */
static plan plan_with_refresh(qs_dram *d, const qs_dram_addr *a, uint64_t t0, int is_write)
{
    plan p = plan_request(d, a, t0, is_write);
    while (rank_of(d, a)->next_ref <= p.first_cmd) {
        refresh_upto(d, a, p.first_cmd);
        p = plan_request(d, a, t0, is_write);
    }
    return p;
}

qs_dram_served qs_dram_serve(qs_dram *d, uint64_t arrive, uint64_t addr, int is_write)
{
    qs_dram_addr a = qs_dram_decode(d, addr);
    plan p = plan_with_refresh(d, &a, arrive, is_write);
    commit(d, &a, &p, is_write);
    if (!is_write) d->st.read_latency_sum += p.s.data_end - arrive;
    return p.s;
}

/* ---- the controller: per channel, FR-FCFS over a queue of queue_depth --------- */

static int grow_requests(qs_dram *d, size_t n)
{
    if (n <= d->req_cap) return 1;
    size_t cap = d->req_cap ? d->req_cap : 256;
    while (cap < n) cap *= 2;
    uint64_t *a = qs_realloc(d->req_addr, cap * sizeof *a);
    if (!a) return 0;
    d->req_addr = a;
    int32_t *c = qs_realloc(d->req_chan, cap * sizeof *c);
    if (!c) return 0;
    d->req_chan = c;
    d->req_cap = cap;
    return 1;
}

qs_status qs_dram_reserve(qs_dram *d, size_t n, qs_error *err)
{
    if (!grow_requests(d, n)) return qs_fail(err, QS_ERR_NOMEM, "out of memory for DRAM requests");
    return QS_OK;
}

int qs_dram_out_of_memory(const qs_dram *d) { return d->oom; }

/* ---- the two-level controller (cmd_queue_depth > 0), as DRAMsim3's: a
 * transaction queue of queue_depth feeding per-bank command queues of
 * cmd_queue_depth; one transaction moves per cycle, the first in order whose
 * bank queue has room; the scheduler sees the command queues only. */

typedef struct {
    qs_dram *d;
    const uint64_t *addr;  /* the requests; chan[i] their channels (NULL: all of channel ch) */
    const int32_t *chan;
    int32_t ch;
    size_t n, next, tn;
    uint64_t seq, last_move;
    int moved;
} two_level;

static int32_t bank_in_channel(const qs_dram *d, const qs_dram_addr *a)
{
    return (a->ra * d->c.bankgroups + a->bg) * d->c.banks_per_group + a->ba;
}

/* Requests of the channel enter the transaction queue while it has room, at `time`. */
static void tl_fill(two_level *s, uint64_t time)
{
    qs_dram *d = s->d;
    while (s->tn < (size_t)d->c.queue_depth && s->next < s->n) {
        if (!s->chan || s->chan[s->next] == s->ch) {
            queued *q = &d->queue[s->tn++];
            q->addr = s->addr[s->next];
            q->arrive = time;
            q->at = qs_dram_decode(d, q->addr);
            q->seq = s->seq++;
            q->opened = 0;
        }
        s->next++;
    }
}

/* Move transactions whose bank queue has room (from `time`), in order, one per cycle. */
static void tl_move(two_level *s, uint64_t time)
{
    qs_dram *d = s->d;
    const int32_t depth = d->c.cmd_queue_depth;
    for (size_t i = 0; i < s->tn;) {
        queued *q = &d->queue[i];
        int32_t b = bank_in_channel(d, &q->at);
        if (d->cq_n[b] >= depth) {
            i++;
            continue;
        }
        uint64_t t = max64(time, q->arrive);
        if (s->moved) t = max64(t, s->last_move + 1);
        s->last_move = t;
        s->moved = 1;
        queued *e = &d->cq[(size_t)b * (size_t)depth + (size_t)d->cq_n[b]++];
        *e = *q;
        e->ready = t;
        memmove(q, q + 1, (s->tn - i - 1) * sizeof *q);
        s->tn--;
        tl_fill(s, t); /* its slot takes the next request */
    }
}

/* The oldest-first arbiter (cmd_arbiter = oldest): FR-FCFS over the bank
 * queues' entries arrived by decision cycle t. */
static const queued *oldest_pick(qs_dram *d, uint64_t t, int is_write)
{
    const int32_t depth = d->c.cmd_queue_depth, nb = d->banks_per_channel;
    const queued *pick = NULL;
    /* FR-FCFS: the oldest ready row hit, else the oldest ready; then first ready */
    int hit = 0;
    for (int32_t b = 0; b < nb; b++)
        for (int32_t k = 0; k < d->cq_n[b]; k++) {
            const queued *q = &d->cq[(size_t)b * depth + k];
            if (q->ready > t) break; /* a bank's queue is in the order its entries came */
            int h = d->c.page_policy == QS_PAGE_OPEN && bank_of(d, &q->at)->open_row == q->at.ro;
            if (h > hit || (h == hit && (!pick || q->seq < pick->seq))) {
                pick = q;
                hit = h;
            }
        }
    uint64_t best = plan_request(d, &pick->at, max64(t, pick->ready), is_write).s.col;
    for (int32_t b = 0; b < nb; b++) {
        /* of a bank's queue only its oldest row hit and its oldest entry can be first */
        const queued *head = d->cq_n[b] ? &d->cq[(size_t)b * depth] : NULL, *h = NULL;
        for (int32_t k = 0; k < d->cq_n[b] && !h; k++) {
            const queued *q = &d->cq[(size_t)b * depth + k];
            if (bank_of(d, &q->at)->open_row == q->at.ro) h = q;
        }
        const queued *cand[2] = {head, h};
        for (int c = 0; c < 2; c++) {
            const queued *q = cand[c];
            if (!q || q == pick) continue;
            uint64_t col = plan_request(d, &q->at, max64(t, q->ready), is_write).s.col;
            if (col < best || (col == best && !hit && q->seq < pick->seq)) {
                best = col;
                pick = q;
            }
        }
    }
    return pick;
}

static uint64_t transfer_two_level(qs_dram *d, const uint64_t *addr, const int32_t *chan, int32_t ch, size_t n,
                                   uint64_t t_start, int is_write)
{
    two_level s = {d, addr, chan, ch, n, 0, 0, 0, 0, 0};
    const int32_t depth = d->c.cmd_queue_depth, nb = d->banks_per_channel;
    memset(d->cq_n, 0, (size_t)nb * sizeof *d->cq_n);
    uint64_t now = t_start, end = t_start;
    tl_fill(&s, t_start);
    tl_move(&s, t_start);
    for (;;) {
        /* the decision cycle: the earliest a queued command may go */
        const queued *pick = NULL;
        uint64_t tmin = UINT64_MAX;
        for (int32_t b = 0; b < nb; b++)
            if (d->cq_n[b] && d->cq[(size_t)b * depth].ready < tmin) tmin = d->cq[(size_t)b * depth].ready;
        if (tmin == UINT64_MAX) break;
        uint64_t t = max64(now, tmin);
        pick = oldest_pick(d, t, is_write);
        t = max64(t, pick->ready);
        queued q = *pick;
        int32_t b = bank_in_channel(d, &q.at);
        queued *base = &d->cq[(size_t)b * depth];
        size_t at = (size_t)(pick - base);
        memmove(base + at, base + at + 1, ((size_t)d->cq_n[b] - at - 1) * sizeof *base);
        d->cq_n[b]--;
        plan p = plan_with_refresh(d, &q.at, t, is_write);
        commit(d, &q.at, &p, is_write);
        if (!is_write) d->st.read_latency_sum += p.s.data_end - q.arrive;
        end = max64(end, p.s.data_end);
        now = t;
        d->idle_from[ch] = max64(d->idle_from[ch], p.s.col);
        tl_move(&s, p.s.col); /* its column command frees its place in the bank queue */
    }
    d->last_move = s.last_move;
    return end;
}

/* The round-robin arbiter (cmd_arbiter = round_robin), DRAMsim3's: one
 * command (PRE, ACT or RD/WR) per DRAM cycle, each placed at the cycle it is
 * chosen. At cycle t the bank command queues are visited in turn from the one
 * after the queue that issued last; a queue offers its first entry (in queue
 * order) whose next command may issue at t, and the first offer issues. A
 * PRE comes only from the queue's head, and not while an entry of the queue
 * hits the open row, unless that row has served ROW_HIT_CAP column commands
 * (the cap keeps a stream of hits from starving the head). With no offer at
 * t, the next decision is at the earliest cycle an offer may be. */
enum { ROW_HIT_CAP = 4 };

static uint64_t transfer_round_robin(qs_dram *d, const uint64_t *addr, const int32_t *chan, int32_t ch, size_t n,
                                     uint64_t t_start, int is_write)
{
    two_level s = {d, addr, chan, ch, n, 0, 0, 0, 0, 0};
    const int32_t depth = d->c.cmd_queue_depth, nb = d->banks_per_channel;
    memset(d->cq_n, 0, (size_t)nb * sizeof *d->cq_n);
    uint64_t t = t_start, end = t_start;
    tl_fill(&s, t_start);
    tl_move(&s, t_start);
    for (;;) {
        queued *pick = NULL;
        plan p;
        int32_t pick_bank = 0, any = 0;
        /* with an entry queued, some entry gives a finite t_next: a head that may not precharge waits
         * for a hit of its queue, which does */
        uint64_t t_next = UINT64_MAX;
        for (int32_t k = 1; k <= nb && !pick; k++) {
            int32_t b = (d->rr_last[ch] + k) % nb;
            queued *base = &d->cq[(size_t)b * depth];
            for (int32_t i = 0; i < d->cq_n[b]; i++) {
                queued *q = &base[i];
                any = 1;
                if (q->ready > t) {
                    t_next = q->ready < t_next ? q->ready : t_next;
                    break; /* a bank's queue is in the order its entries came */
                }
                const bank_state *bs = bank_of(d, &q->at);
                if (bs->open_row != NONE_ROW && bs->open_row != q->at.ro) {
                    if (i > 0) continue;
                    if (bs->row_hits < ROW_HIT_CAP) {
                        int hit_pending = 0;
                        for (int32_t j = 1; j < d->cq_n[b] && !hit_pending; j++)
                            hit_pending = base[j].at.ro == bs->open_row;
                        if (hit_pending) continue;
                    }
                }
                p = plan_request(d, &q->at, t, is_write);
                if (p.first_cmd <= t) {
                    pick = q;
                    pick_bank = b;
                    break;
                }
                t_next = p.first_cmd < t_next ? p.first_cmd : t_next;
                /* the later entries that are not conflicts would plan the same first command (a row hit's
                 * RD/WR or a closed bank's ACT depends on the bank, not the entry), the later conflicts
                 * may not precharge: none can offer */
                if (p.s.outcome != QS_ROW_CONFLICT) break;
            }
        }
        if (!any) break;
        if (!pick) {
            t = t_next;
            continue;
        }
        if (rank_of(d, &pick->at)->next_ref <= t) { /* a refresh due goes first */
            refresh_upto(d, &pick->at, t);
            continue;
        }
        d->rr_last[ch] = pick_bank;
        if (p.s.outcome == QS_ROW_CONFLICT) {
            place_pre(d, &pick->at, t);
            pick->opened = 2;
        } else if (p.s.outcome == QS_ROW_MISS) {
            place_act(d, &pick->at, t);
            if (pick->opened == 2) d->st.row_conflicts++;
            else if (!pick->opened) d->st.row_misses++;
            pick->opened = 1; /* (a refresh may close the row again: the ACT then repeats, counted once) */
        } else {
            if (pick->opened == 2) d->st.row_conflicts++; /* its row was reopened by another entry */
            else if (!pick->opened) d->st.row_hits++;
            place_col(d, &pick->at, &p, is_write);
            if (!is_write) d->st.read_latency_sum += p.s.data_end - pick->arrive;
            end = max64(end, p.s.data_end);
            queued *base = &d->cq[(size_t)pick_bank * depth];
            size_t at = (size_t)(pick - base);
            memmove(base + at, base + at + 1, ((size_t)d->cq_n[pick_bank] - at - 1) * sizeof *base);
            d->cq_n[pick_bank]--;
            d->idle_from[ch] = max64(d->idle_from[ch], t);
            tl_move(&s, t); /* its column command frees its place in the bank queue */
        }
        t++; /* one command per cycle */
    }
    d->last_move = s.last_move;
    return end;
}

/* One channel's requests through the two-level controller (the arbiter chosen). */
static uint64_t serve_two_level(qs_dram *d, const uint64_t *addr, const int32_t *chan, int32_t ch, size_t n,
                                uint64_t t_start, int is_write)
{
    return d->c.cmd_arbiter == QS_ARB_ROUND_ROBIN ? transfer_round_robin(d, addr, chan, ch, n, t_start, is_write)
                                                   : transfer_two_level(d, addr, chan, ch, n, t_start, is_write);
}

/* ---- the write buffer (write_buffer = N > 0), as DRAMsim3's: a write is
 * posted (done for its sender) when the buffer takes it; a write to an
 * address already posted merges with it; a read of a posted address is
 * answered from the buffer in one cycle. The buffer drains, all its writes
 * through the controller as one batch, when a write finds it full (from that
 * cycle; the write is taken when the batch has moved into the command queues)
 * or, holding more than WB_LOW writes, once the controller is idle: from
 * max(the last column command, the last write posted), when the next
 * transfer comes (or the run ends). */
enum { WB_LOW = 8 };

static int64_t wb_find(const qs_dram *d, int32_t ch, uint64_t addr)
{
    const uint64_t *wb = &d->wb[(size_t)ch * (size_t)d->c.write_buffer];
    for (int32_t i = 0; i < d->wb_n[ch]; i++)
        if (wb[i] == addr) return i;
    return -1;
}

/* Drain channel ch's buffer from cycle t; returns when the batch has moved into the command queues. */
static uint64_t wb_drain(qs_dram *d, int32_t ch, uint64_t t)
{
    if (!d->wb_n[ch]) return t;
    serve_two_level(d, &d->wb[(size_t)ch * (size_t)d->c.write_buffer], NULL, ch, (size_t)d->wb_n[ch], t, 1);
    d->wb_n[ch] = 0;
    return d->last_move;
}

static void wb_drain_if_idle(qs_dram *d, int32_t ch, uint64_t t)
{
    uint64_t idle = max64(d->idle_from[ch], d->wb_since[ch]);
    if (d->wb_n[ch] > WB_LOW && idle < t) wb_drain(d, ch, idle);
}

/* A transfer with the write buffer: returns its last DRAM cycle (writes: when the buffer took the last one). */
static uint64_t transfer_buffered(qs_dram *d, size_t n, uint64_t t_start, int is_write)
{
    uint64_t end = t_start;
    const int32_t cap = d->c.write_buffer;
    for (int32_t ch = 0; ch < d->c.channels; ch++) {
        wb_drain_if_idle(d, ch, t_start);
        size_t n_ch = 0;
        for (size_t i = 0; i < n; i++) {
            if (d->req_chan[i] != ch) continue;
            if (!is_write) {
                if (wb_find(d, ch, d->req_addr[i]) >= 0) { /* answered from the buffer */
                    d->req_chan[i] = -1;
                    end = max64(end, t_start + 1);
                } else {
                    n_ch++;
                }
                continue;
            }
            if (wb_find(d, ch, d->req_addr[i]) >= 0) continue; /* merged */
            uint64_t taken = t_start;
            if (d->wb_n[ch] == cap) taken = max64(taken, wb_drain(d, ch, t_start));
            d->wb[(size_t)ch * (size_t)cap + (size_t)d->wb_n[ch]++] = d->req_addr[i];
            d->wb_since[ch] = max64(d->wb_since[ch], taken);
            end = max64(end, taken);
        }
        if (n_ch) end = max64(end, serve_two_level(d, d->req_addr, d->req_chan, ch, n, t_start, 0));
    }
    return end;
}

void qs_dram_drain(qs_dram *d)
{
    if (d->c.cmd_queue_depth <= 0 || d->c.write_buffer <= 0) return;
    for (int32_t ch = 0; ch < d->c.channels; ch++) wb_drain(d, ch, max64(d->idle_from[ch], d->wb_since[ch]));
}

uint64_t qs_dram_transfer(qs_dram *d, uint64_t start, int is_write, const uint64_t *first, const uint64_t *count,
                          uint32_t n_runs, qs_dram_trace_fn trace, void *trace_user)
{
    const uint64_t burst = qs_dram_burst_bytes(d);
    const uint64_t t_start = qs_dram_to_dram_cycle(d, start);
    /* the bursts that cover the runs, in address order per run */
    size_t n = 0;
    for (uint32_t i = 0; i < n_runs; i++) {
        if (!count[i]) continue;
        uint64_t a0 = first[i] / burst * burst, a1 = first[i] + count[i];
        for (uint64_t a = a0; a < a1; a += burst) {
            if (!grow_requests(d, n + 1)) { /* the caller sees it (qs_dram_out_of_memory) and fails */
                d->oom = 1;
                return start;
            }
            d->req_addr[n] = a;
            d->req_chan[n] = qs_dram_decode(d, a).ch;
            if (trace) trace(trace_user, t_start, a, is_write, (uint32_t)burst);
            n++;
        }
    }
    if (!n) return start;
    uint64_t end = t_start;
    const size_t depth = (size_t)d->c.queue_depth;
    if (d->c.cmd_queue_depth > 0) {
        if (d->c.write_buffer > 0) return qs_dram_to_accel_cycle(d, transfer_buffered(d, n, t_start, is_write));
        for (int32_t ch = 0; ch < d->c.channels; ch++)
            end = max64(end, serve_two_level(d, d->req_addr, d->req_chan, ch, n, t_start, is_write));
        return qs_dram_to_accel_cycle(d, end);
    }
    for (int32_t ch = 0; ch < d->c.channels; ch++) {
        size_t next = 0, qn = 0;
        uint64_t now = t_start;
        for (;;) {
            /* at the start the requests fill the queue in order */
            while (qn < depth && next < n) {
                if (d->req_chan[next] == ch) {
                    queued *q = &d->queue[qn++];
                    q->addr = d->req_addr[next];
                    q->arrive = t_start;
                    q->at = qs_dram_decode(d, q->addr);
                }
                next++;
            }
            if (!qn) break;
            /* FR-FCFS among the requests arrived by the decision cycle: the
             * oldest whose row is open; else the one whose column command
             * can issue first (the oldest on a tie) */
            size_t pick = 0;
            for (size_t i = 1; i < qn; i++)
                if (d->queue[i].arrive < d->queue[pick].arrive) pick = i;
            uint64_t t = max64(now, d->queue[pick].arrive);
            int hit = 0;
            if (d->c.page_policy == QS_PAGE_OPEN)
                for (size_t i = 0; i < qn && !hit; i++) {
                    const queued *q = &d->queue[i];
                    if (q->arrive <= t && bank_of(d, &q->at)->open_row == q->at.ro) {
                        pick = i;
                        hit = 1;
                    }
                }
            if (qn > 1) {
                /* every queued request, from when it arrives: a later arrival
                 * to an idle bank may well go before a bank still busy */
                uint64_t best = plan_request(d, &d->queue[pick].at, t, is_write).s.col;
                /* the queue is in arrival order; of the requests of one bank
                 * only the oldest hit and the oldest other one can be first */
                size_t n_seen = 0;
                for (size_t i = 0; i < qn; i++) {
                    const queued *q = &d->queue[i];
                    bank_state *b = bank_of(d, &q->at);
                    int is_hit = b->open_row == q->at.ro, seen = 0;
                    for (size_t k = 0; k < n_seen && !seen; k++)
                        seen = d->seen[k].bank == b && d->seen[k].hit == is_hit;
                    if (seen) continue;
                    d->seen[n_seen].bank = b;
                    d->seen[n_seen++].hit = is_hit;
                    if (i == pick) continue;
                    uint64_t col = plan_request(d, &q->at, max64(t, q->arrive), is_write).s.col;
                    if (col < best || (col == best && !hit && q->arrive < d->queue[pick].arrive)) {
                        best = col;
                        pick = i;
                    }
                }
                t = max64(t, d->queue[pick].arrive);
            }
            queued q = d->queue[pick];
            int was_full = qn == depth;
            memmove(&d->queue[pick], &d->queue[pick + 1], (qn - pick - 1) * sizeof d->queue[0]);
            qn--;
            plan p = plan_with_refresh(d, &q.at, t, is_write);
            commit(d, &q.at, &p, is_write);
            if (!is_write) d->st.read_latency_sum += p.s.data_end - q.arrive;
            end = max64(end, p.s.data_end);
            /* decisions follow the arrivals; the commands of the next request
             * may go before this one's where the rules allow (other banks) */
            now = t;
            /* a full queue takes the next request when this one's column
             * command frees its slot */
            if (was_full) {
                while (next < n && d->req_chan[next] != ch) next++;
                if (next < n) {
                    queued *nq = &d->queue[qn++];
                    nq->addr = d->req_addr[next];
                    nq->arrive = p.s.col;
                    nq->at = qs_dram_decode(d, nq->addr);
                    next++;
                }
            }
        }
    }
    return qs_dram_to_accel_cycle(d, end);
}
