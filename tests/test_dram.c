/* CUnit tests of the bank-level DRAM model (sim/dram.c, docs/dram.md,
 * docs/timing.md "Bank-level DRAM"). Every expected cycle is worked out by
 * hand below from the documented rules on a small device with distinct
 * timings (so each rule changes a number when removed):
 *
 *   tCK = accelerator cycle (1000 ps at 1000 MHz), BL8 on a 64-bit bus:
 *   64-byte bursts of 4 cycles; 2 bank groups x 4 banks, 1024 rows,
 *   128 columns (16 bursts per row); mapping ro ch ra ba bg co (MSB first).
 *   tCL 10, tCWL 8, tRCD 12, tRP 14, tRAS 30, tRC 50, tRRD_S 3, tRRD_L 5,
 *   tFAW 20, tCCD_S 5, tCCD_L 7, tWR 15, tWTR_S 3, tWTR_L 7, tRTP 6,
 *   tRTW 8, tREFI 10000, tRFC 200. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "dma.h"
#include "dram.h"

static qs_dram_cfg small_cfg(void)
{
    qs_dram_cfg c;
    memset(&c, 0, sizeof c);
    c.tck_ps = 1000;
    c.channels = 1;
    c.ranks = 1;
    c.bankgroups = 2;
    c.banks_per_group = 4;
    c.rows = 1024;
    c.columns = 128;
    c.bus_bits = 64;
    c.burst_length = 8;
    c.transfers_per_cycle = 2;
    c.tCL = 10; c.tCWL = 8; c.tRCD = 12; c.tRP = 14; c.tRAS = 30; c.tRC = 50;
    c.tRRD_S = 3; c.tRRD_L = 5; c.tFAW = 20; c.tCCD_S = 5; c.tCCD_L = 7;
    c.tWR = 15; c.tWTR_S = 3; c.tWTR_L = 7; c.tRTP = 6; c.tRTW = 8; c.tREFI = 10000; c.tRFC = 200;
    c.queue_depth = 8;
    c.page_policy = QS_PAGE_OPEN;
    snprintf(c.address_mapping, sizeof c.address_mapping, "rochrababgco");
    return c;
}

/* byte address of (row, bank group, bank, burst column) under rochrababgco:
 * 6 offset bits, 4 column bits, 1 bank-group bit, 2 bank bits, then the row */
static uint64_t at(int row, int bg, int ba, int col)
{
    return ((((uint64_t)row * 4 + (uint64_t)ba) * 2 + (uint64_t)bg) * 16 + (uint64_t)col) * 64;
}

static qs_dram *make(const qs_dram_cfg *c)
{
    qs_dram *d = NULL;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_dram_create(c, 1000.0, &d, &e), QS_OK);
    return d;
}

#define EXPECT(got, want)                                                                            \
    do {                                                                                             \
        uint64_t g_ = (got), w_ = (want);                                                            \
        if (g_ != w_) fprintf(stderr, "\n  line %d: %s = %llu, want %llu\n", __LINE__, #got,         \
                              (unsigned long long)g_, (unsigned long long)w_);                      \
        CU_ASSERT_EQUAL(g_, w_);                                                                     \
    } while (0)

static void test_decode(void)
{
    qs_dram_cfg c = small_cfg();
    qs_dram *d = make(&c);
    qs_dram_addr a = qs_dram_decode(d, at(777, 1, 3, 9) + 17);
    EXPECT(a.ro, 777);
    EXPECT(a.bg, 1);
    EXPECT(a.ba, 3);
    EXPECT(a.co, 9);
    EXPECT(qs_dram_burst_bytes(d), 64);
    qs_dram_destroy(d);
    /* another bit order: bank group right above the offset, then column */
    snprintf(c.address_mapping, sizeof c.address_mapping, "rochrabacobg");
    d = make(&c);
    a = qs_dram_decode(d, (((5ull * 4 + 2) * 16 + 11) * 2 + 1) * 64);
    EXPECT(a.ro, 5);
    EXPECT(a.ba, 2);
    EXPECT(a.co, 11);
    EXPECT(a.bg, 1);
    qs_dram_destroy(d);
}

/* Row miss, hit and conflict, and the PRE rules tRAS, tRTP, tWR, tRC. */
static void test_row_buffer(void)
{
    qs_dram_cfg c = small_cfg();
    qs_dram *d = make(&c);
    /* miss (bank closed): ACT 0, RD at tRCD 12, data 12+10 .. +4 */
    qs_dram_served s = qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    EXPECT(s.outcome, QS_ROW_MISS);
    EXPECT(s.act, 0);
    EXPECT(s.col, 12);
    EXPECT(s.data_end, 26);
    /* hit at 100: RD at once, tCL + burst */
    s = qs_dram_serve(d, 100, at(1, 0, 0, 5), 0);
    EXPECT(s.outcome, QS_ROW_HIT);
    EXPECT(s.col, 100);
    EXPECT(s.data_end, 114);
    /* conflict at 101: PRE waits for tRTP after the RD at 100 (106), ACT tRP later (120,
     * tRC after ACT 0 long passed), RD 132, data to 146 */
    s = qs_dram_serve(d, 101, at(2, 0, 0, 0), 0);
    EXPECT(s.outcome, QS_ROW_CONFLICT);
    EXPECT(s.pre, 106);
    EXPECT(s.act, 120);
    EXPECT(s.col, 132);
    EXPECT(s.data_end, 146);
    /* conflict right after ACT 120: PRE waits for tRAS (150), ACT for tRC after 120
     * (170 > 150 + 14) */
    s = qs_dram_serve(d, 133, at(3, 0, 0, 0), 0);
    EXPECT(s.pre, 150);
    EXPECT(s.act, 170);
    EXPECT(s.data_end, 170 + 12 + 10 + 4);
    qs_dram_destroy(d);

    /* write recovery: WR miss at 0 (ACT 0, WR 12, data 20..24); a conflict at 25
     * precharges at 24 + tWR = 39 (> tRAS 30), ACT at 53 (> tRC 50), RD 65, data to 79 */
    d = make(&c);
    s = qs_dram_serve(d, 0, at(1, 1, 2, 0), 1);
    EXPECT(s.col, 12);
    EXPECT(s.data_end, 24);
    s = qs_dram_serve(d, 25, at(2, 1, 2, 0), 0);
    EXPECT(s.pre, 39);
    EXPECT(s.act, 53);
    EXPECT(s.data_end, 79);
    const qs_dram_stats *st = qs_dram_get_stats(d);
    EXPECT(st->acts, 2);
    EXPECT(st->pres, 1);
    EXPECT(st->row_misses, 1);
    EXPECT(st->row_conflicts, 1);
    EXPECT(st->reads, 1);
    EXPECT(st->writes, 1);
    EXPECT(st->read_latency_sum, 79 - 25);
    qs_dram_destroy(d);
}

/* Closed page: every access opens its row and auto-precharges. */
static void test_closed_page(void)
{
    qs_dram_cfg c = small_cfg();
    c.page_policy = QS_PAGE_CLOSED;
    qs_dram *d = make(&c);
    qs_dram_served s = qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    EXPECT(s.data_end, 26);
    /* same row at 40: a miss; auto-precharge at max(tRAS 30, RD 12 + tRTP) = 30, ACT at
     * max(30 + tRP, tRC 50) = 50 */
    s = qs_dram_serve(d, 40, at(1, 0, 0, 1), 0);
    EXPECT(s.outcome, QS_ROW_MISS);
    EXPECT(s.act, 50);
    EXPECT(s.data_end, 76);
    EXPECT(qs_dram_get_stats(d)->pres, 2);
    qs_dram_destroy(d);
}

/* tRRD_S / tRRD_L and the four-activate window. Five ACTs at 0 to banks
 * alternating between the groups: 0; 3 (tRRD_S); 6 (group 0 was at 0: tRRD_L 5,
 * rank 3 + 3); 9; then group 0 allows 11, the rank 12, but the first four
 * ACTs span 0..9 and a fifth must wait for 0 + tFAW = 20. */
static void test_act_window(void)
{
    qs_dram_cfg c = small_cfg();
    qs_dram *d = make(&c);
    static const int BG[5] = {0, 1, 0, 1, 0}, BA[5] = {0, 0, 1, 1, 2};
    static const uint64_t ACT[5] = {0, 3, 6, 9, 20};
    for (int i = 0; i < 5; i++) {
        qs_dram_served s = qs_dram_serve(d, 0, at(1, BG[i], BA[i], 0), 0);
        EXPECT(s.act, ACT[i]);
    }
    qs_dram_destroy(d);
    /* two ACTs in one bank group: tRRD_L (5), not tRRD_S (3) */
    d = make(&c);
    qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    EXPECT(qs_dram_serve(d, 0, at(1, 0, 1, 0), 0).act, 5);
    qs_dram_destroy(d);
}

/* Column to column: tCCD_L in one bank group, tCCD_S across groups (5 > the
 * 4-cycle burst, so the data bus does not hide it). */
static void test_ccd(void)
{
    qs_dram_cfg c = small_cfg();
    for (int same = 0; same < 2; same++) {
        qs_dram *d = make(&c);
        qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);              /* open both rows */
        qs_dram_serve(d, 0, at(1, same ? 0 : 1, 1, 0), 0);
        qs_dram_served a = qs_dram_serve(d, 1000, at(1, 0, 0, 1), 0);
        qs_dram_served b = qs_dram_serve(d, 1000, at(1, same ? 0 : 1, 1, 1), 0);
        EXPECT(a.col, 1000);
        EXPECT(b.outcome, QS_ROW_HIT);
        EXPECT(b.col, same ? 1007 : 1005);
        qs_dram_destroy(d);
    }
    /* with tCCD shorter than a burst the data bus decides: the second burst
     * starts when the first ends, RD at 1000 + 4 = 1004 */
    c.tCCD_S = c.tCCD_L = 2;
    qs_dram *d = make(&c);
    qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    qs_dram_serve(d, 0, at(1, 1, 1, 0), 0);
    EXPECT(qs_dram_serve(d, 1000, at(1, 0, 0, 1), 0).data_end, 1014);
    EXPECT(qs_dram_serve(d, 1000, at(1, 1, 1, 1), 0).col, 1004);
    qs_dram_destroy(d);
}

/* Read/write turnarounds: a read after write data waits tWTR_L (same group)
 * or tWTR_S; a write after a read waits tRTW. */
static void test_turnaround(void)
{
    qs_dram_cfg c = small_cfg();
    for (int same = 0; same < 2; same++) {
        qs_dram *d = make(&c);
        qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
        qs_dram_serve(d, 0, at(1, same ? 0 : 1, 1, 0), 0);
        qs_dram_served w = qs_dram_serve(d, 1000, at(1, 0, 0, 1), 1);
        EXPECT(w.col, 1000);
        EXPECT(w.data_end, 1012);
        qs_dram_served r = qs_dram_serve(d, 1001, at(1, same ? 0 : 1, 1, 1), 0);
        EXPECT(r.col, same ? 1012 + 7 : 1012 + 3);
        qs_dram_destroy(d);
    }
    qs_dram *d = make(&c);
    qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    qs_dram_serve(d, 0, at(1, 1, 1, 0), 0);
    qs_dram_served r = qs_dram_serve(d, 1000, at(1, 0, 0, 1), 0);
    EXPECT(r.col, 1000);
    /* the bus alone would allow 1000 + 10 + 4 - 8 = 1006; tRTW says 1008 */
    qs_dram_served w = qs_dram_serve(d, 1001, at(1, 1, 1, 1), 1);
    EXPECT(w.col, 1008);
    qs_dram_destroy(d);
}

/* All-bank refresh every tREFI: a request due after it finds every bank
 * closed and waits tRFC. */
static void test_refresh(void)
{
    qs_dram_cfg c = small_cfg();
    qs_dram *d = make(&c);
    qs_dram_served s = qs_dram_serve(d, 9000, at(1, 0, 0, 0), 0);  /* opens row 1 at 9000 */
    EXPECT(s.act, 9000);
    /* a hit at 10005 comes after the refresh due at 10000: the row was closed
     * (PRE at 9030, tRAS), the refresh ran at 10000, ACT at 10200 */
    s = qs_dram_serve(d, 10005, at(1, 0, 0, 1), 0);
    EXPECT(s.outcome, QS_ROW_MISS);
    EXPECT(s.act, 10200);
    EXPECT(s.data_end, 10226);
    EXPECT(qs_dram_get_stats(d)->refreshes, 1);
    /* a long idle stretch: refreshes at 20000, 30000, ..., 100000; the last ends at 100200 */
    s = qs_dram_serve(d, 100100, at(2, 1, 1, 0), 0);
    EXPECT(s.act, 100200);
    EXPECT(qs_dram_get_stats(d)->refreshes, 10);
    qs_dram_destroy(d);
    /* a hit just before the due time is served; a request whose first command
     * would come after it waits for the refresh, which itself waits until the
     * open bank may precharge: ACT 9998 (RD 10010) leaves PRE at tRAS 10028 and
     * the next ACT at tRC 10048, so REF at 10048 and the second request's ACT
     * (10001 by tRRD_S) moves to 10048 + tRFC = 10248 */
    d = make(&c);
    qs_dram_serve(d, 0, at(1, 0, 0, 0), 0);
    s = qs_dram_serve(d, 9990, at(1, 0, 0, 1), 0);
    EXPECT(s.outcome, QS_ROW_HIT);
    EXPECT(s.col, 9990);
    qs_dram_destroy(d);
    d = make(&c);
    s = qs_dram_serve(d, 9998, at(1, 0, 0, 0), 0);
    EXPECT(s.act, 9998);
    EXPECT(s.col, 10010);
    s = qs_dram_serve(d, 9999, at(1, 1, 0, 0), 0);
    EXPECT(s.act, 10248);
    qs_dram_destroy(d);
}

/* FR-FCFS through a transfer: rows A and B of one bank interleaved A0 B0 A1 B1.
 * Queue of 4: A0 (miss: ACT 0, RD 12, data to 26), then A1, a hit (RD at the
 * group's tCCD_L 12 + 7 = 19, data to 33), then B0 (PRE at tRAS 30, ACT at tRC 50,
 * RD 62, data to 76), then B1 a hit (RD 69, data to 83): done at 83, 2 hits.
 * Queue of 1 (first come first served, each request enters when the one before
 * issues its RD): A0 to 26; B0 enters at 12: PRE 30, ACT 50, RD 62, to 76; A1
 * enters at 62: PRE at ACT 50 + tRAS = 80, ACT 100 (tRC), RD 112, to 126; B1 enters
 * at 112: PRE 130, ACT 150, RD 162, to 176: done at 176, no hit. */
static void test_fr_fcfs(void)
{
    qs_dram_cfg c = small_cfg();
    const uint64_t first[4] = {at(1, 0, 0, 0), at(2, 0, 0, 0), at(1, 0, 0, 1), at(2, 0, 0, 1)};
    const uint64_t count[4] = {64, 64, 64, 64};
    for (int k = 0; k < 2; k++) {
        c.queue_depth = k ? 1 : 4;
        qs_dram *d = make(&c);
        uint64_t end = qs_dram_transfer(d, 0, 0, first, count, 4, NULL, NULL);
        EXPECT(end, k ? 176 : 83);
        EXPECT(qs_dram_get_stats(d)->row_hits, k ? 0 : 2);
        EXPECT(qs_dram_get_stats(d)->reads, 4);
        qs_dram_destroy(d);
    }
}

/* First ready is the column command that can issue first: four hits to an
 * open row of bank group 0 and a miss in bank group 1, all at 100. Hits RD at
 * 100 and 107 (tCCD_L); the miss's ACT goes at 100, so its RD could go at 112,
 * before the third hit's 114: it is served third (RD 112, the rank's tCCD_S
 * after 107), the hits follow at 117 (tCCD_S, and the bus: data to 126) and
 * 124 (tCCD_L): done at 124 + 14 = 138. Serving every hit first would end at 140. */
static void test_first_ready(void)
{
    qs_dram_cfg c = small_cfg();
    qs_dram *d = make(&c);
    qs_dram_serve(d, 0, at(1, 0, 0, 0), 0); /* opens row 1 of bank (0, 0) */
    const uint64_t first[5] = {at(1, 0, 0, 1), at(1, 0, 0, 2), at(1, 0, 0, 3), at(1, 0, 0, 4), at(1, 1, 0, 0)};
    const uint64_t count[5] = {64, 64, 64, 64, 64};
    EXPECT(qs_dram_transfer(d, 100, 0, first, count, 5, NULL, NULL), 138);
    EXPECT(qs_dram_get_stats(d)->row_hits, 4);
    qs_dram_destroy(d);
}

/* The queue bounds the requests in flight: two reads to banks of different
 * groups. With a queue of 2 both are there at 0: ACTs 0 and 3 (tRRD_S), RDs 12
 * and 17 (tCCD_S), done at 17 + 10 + 4 = 31. With a queue of 1 the second
 * enters when the first issues its RD at 12: ACT 12, RD 24, done at 38. */
static void test_queue_depth(void)
{
    qs_dram_cfg c = small_cfg();
    const uint64_t first[2] = {at(1, 0, 0, 0), at(1, 1, 0, 0)};
    const uint64_t count[2] = {64, 64};
    for (int depth = 1; depth <= 2; depth++) {
        c.queue_depth = depth;
        qs_dram *d = make(&c);
        EXPECT(qs_dram_transfer(d, 0, 0, first, count, 2, NULL, NULL), depth == 1 ? 38 : 31);
        qs_dram_destroy(d);
    }
}

/* The two-level controller (cmd_queue_depth > 0, docs/timing.md "Bank-level
 * DRAM"): a transaction queue feeding per-bank command queues, one move per
 * cycle, read latency from the transaction queue. */
static void test_two_level_queues(void)
{
    qs_dram_cfg c = small_cfg();
    /* three reads of one open row, transaction queue 1, command queue 1: req 0 enters both at 0 (ACT 0, RD 12,
     * data to 26); req 1 enters the transaction queue at 0, its bank queue at 12 (req 0's RD frees it): RD at
     * 19 (tCCD_L), data to 33; req 2 enters at 12, moves at 19, RD 26, data to 40. Latencies from the
     * transaction queue: 26 + 33 + 28 = 87. (One queue of 1: 26 + 21 + 21 = 68.) */
    const uint64_t row[1] = {at(1, 0, 0, 0)}, three[1] = {192};
    for (int two = 0; two < 2; two++) {
        c.queue_depth = 1;
        c.cmd_queue_depth = two;
        qs_dram *d = make(&c);
        EXPECT(qs_dram_transfer(d, 0, 0, row, three, 1, NULL, NULL), 40);
        EXPECT(qs_dram_get_stats(d)->read_latency_sum, two ? 87 : 68);
        qs_dram_destroy(d);
    }
    /* one move per cycle: reads of three banks, transaction queue 1, command queues 8. Req 0 moves at 0, req 1
     * enters at 0 and moves at 1, req 2 enters at 1 and moves at 2. Req 0: ACT 0, RD 12, data 22..26; req 1
     * (bg 1): ACT 3 (tRRD_S), RD 17 (tCCD_S), data to 31; req 2 (bg 0, bank 1): ACT 6, RD 22, data to 36.
     * Latencies 26 + 31 + (36 - 1) = 92. */
    const uint64_t banks[3] = {at(1, 0, 0, 0), at(1, 1, 0, 0), at(1, 0, 1, 0)}, one[3] = {64, 64, 64};
    c.queue_depth = 1;
    c.cmd_queue_depth = 8;
    qs_dram *d = make(&c);
    EXPECT(qs_dram_transfer(d, 0, 0, banks, one, 3, NULL, NULL), 36);
    EXPECT(qs_dram_get_stats(d)->read_latency_sum, 92);
    EXPECT(qs_dram_get_stats(d)->acts, 3);
    qs_dram_destroy(d);
}

/* The round-robin arbiter (cmd_arbiter = round_robin, docs/timing.md
 * "Bank-level DRAM"): equal column times go to the bank queue after the one
 * served last; a row serves at most 4 column commands while its queue's head
 * waits to precharge. Expected times worked out by hand in the comments. */
static void test_round_robin(void)
{
    qs_dram_cfg c = small_cfg();
    c.cmd_queue_depth = 8;
    /* in turn: A = (bg 0, ba 0) and B = (bg 0, ba 1) each get reads of row 1 at columns 0..2; they move at
     * 0..5. A0: ACT 0, RD 12. Then A1 (hit) and B0 (ACT 5, tRRD_L) can both read at 19 (tCCD_L): round robin
     * serves B0 (the queue after A), then A1 and B1 tie at 26 and A1 goes (the queue after B), and so on:
     * A0 12, B0 19, A1 26, B1 33, A2 40, B2 47. Oldest first: A0 12, A1 19, A2 26, B0 33, B1 40, B2 47 (data
     * to 61 either way). A second transfer, a read of A's row 2: PRE at A's last RD + tRTP (46 / 32; tRAS
     * ends at 30), ACT at PRE + tRP or tRC after ACT 0 (60 / 50), RD + tRCD (72 / 62), data + tCL + 4 (86 /
     * 76). (A pointer that does not move on would serve B1 and B2 before A1: A's last RD 47, data 93.) */
    const uint64_t first[2] = {at(1, 0, 0, 0), at(1, 0, 1, 0)}, count[2] = {192, 192};
    const uint64_t conflict[1] = {at(2, 0, 0, 0)}, one[1] = {64};
    for (int rr = 0; rr < 2; rr++) {
        c.cmd_arbiter = rr ? QS_ARB_ROUND_ROBIN : QS_ARB_OLDEST;
        qs_dram *d = make(&c);
        EXPECT(qs_dram_transfer(d, 0, 0, first, count, 2, NULL, NULL), 61);
        EXPECT(qs_dram_transfer(d, 0, 0, conflict, one, 1, NULL, NULL), rr ? 86 : 76);
        qs_dram_destroy(d);
    }
    /* the row-hit cap: one bank, reads of row 1 (col 0), row 2, row 1 (cols 1..5), all queued by cycle 6.
     * Round robin: row 1 serves RD 12, 19, 26, 33 (tCCD_L; latencies 26, 33, 40, 47), then its 4 column
     * commands let the head (row 2) precharge: PRE 39 (RD 33 + tRTP), ACT 53, RD 65, data 79; then row 1
     * again: PRE 83 (ACT 53 + tRAS), ACT 103 (tRC), RD 115, data 129; RD 122, data 136. Sum 490, 3 ACTs.
     * Oldest first serves all five hits first (sum 354, 2 ACTs: 26, 33, 40, 47, 54, 61, then row 2 at 93). */
    const uint64_t cap[3] = {at(1, 0, 0, 0), at(2, 0, 0, 0), at(1, 0, 0, 1)}, cap_n[3] = {64, 64, 320};
    for (int rr = 0; rr < 2; rr++) {
        c.cmd_arbiter = rr ? QS_ARB_ROUND_ROBIN : QS_ARB_OLDEST;
        qs_dram *d = make(&c);
        EXPECT(qs_dram_transfer(d, 0, 0, cap, cap_n, 3, NULL, NULL), rr ? 136 : 93);
        EXPECT(qs_dram_get_stats(d)->read_latency_sum, rr ? 490 : 354);
        EXPECT(qs_dram_get_stats(d)->acts, rr ? 3 : 2);
        qs_dram_destroy(d);
    }
    /* one command per cycle: reads of A = (bg 0, ba 0) and C = (bg 1, ba 0), row 1: ACT A 0, ACT C 3 (tRRD_S),
     * RD A 12, RD C 17 (tCCD_S), data to 26 and 31. Then at 29 a read of A's row 2 (moves at 29) and of C's
     * row 1 (moves at 30): A's PRE may go at 30 (ACT 0 + tRAS) and C's RD at 30 too; A comes first in turn
     * (C issued last), so PRE 30 and C's RD 31, data to 45 (latency 16; 15 with two commands at 30). A: ACT 50
     * (tRC), RD 62, data to 76 (latency 47). Sum 26 + 31 + 16 + 47 = 120. */
    c.cmd_arbiter = QS_ARB_ROUND_ROBIN;
    const uint64_t two[2] = {at(1, 0, 0, 0), at(1, 1, 0, 0)}, next[2] = {at(2, 0, 0, 0), at(1, 1, 0, 1)};
    const uint64_t ones[2] = {64, 64};
    qs_dram *d = make(&c);
    EXPECT(qs_dram_transfer(d, 0, 0, two, ones, 2, NULL, NULL), 31);
    EXPECT(qs_dram_transfer(d, 29, 0, next, ones, 2, NULL, NULL), 76);
    EXPECT(qs_dram_get_stats(d)->read_latency_sum, 120);
    qs_dram_destroy(d);
}

/* The write buffer (write_buffer = N, docs/timing.md "Bank-level DRAM"):
 * writes are posted; a full buffer drains (the write waits for the batch to
 * move into the command queues); more than 8 posted drain once the controller
 * is idle; a read of a posted address is answered in one cycle. */
static void test_write_buffer(void)
{
    qs_dram_cfg c = small_cfg();
    c.cmd_queue_depth = 8;
    c.cmd_arbiter = QS_ARB_ROUND_ROBIN;
    /* buffer of 2, three writes of bank A's row 1 at 0: two are posted, the third finds the buffer full: the
     * two drain from 0 (ACT 0, WR 12 and 19, data to 24 and 31; they move at 0 and 1), the third is taken at 1.
     * A read of A's row 2 at 5: PRE at the last write data + tWR (46), ACT 60, RD 72, data to 86. */
    c.write_buffer = 2;
    const uint64_t row1[1] = {at(1, 0, 0, 0)}, three[1] = {192}, row2[1] = {at(2, 0, 0, 0)}, one[1] = {64};
    qs_dram *d = make(&c);
    EXPECT(qs_dram_transfer(d, 0, 1, row1, three, 1, NULL, NULL), 1);
    EXPECT(qs_dram_get_stats(d)->writes, 2);
    EXPECT(qs_dram_transfer(d, 5, 0, row2, one, 1, NULL, NULL), 86);
    EXPECT(qs_dram_get_stats(d)->read_latency_sum, 81);
    qs_dram_drain(d);
    EXPECT(qs_dram_get_stats(d)->writes, 3);
    qs_dram_destroy(d);
    /* buffer of 16: 9 writes of A's row 1 at 0 are posted (done at 0); a read of A's row 2 at 100 finds the
     * controller idle with more than 8 posted: they drain from 0 first (ACT 0; moves at 0..7, the 9th at 12
     * when the first WR frees its place; WR 12, 19, ..., 68, data to 80), so the read precharges at 100
     * (data end 80 + tWR = 95), ACT 114, RD 126, data to 140. With 8 posted nothing drains: bank A is closed,
     * ACT 100, RD 112, data to 126; and a read of a posted address (row 1) is answered at 101, where after the
     * drain it is a DRAM read again: PRE 200 (row 2 opened at 114: tRAS), ACT 214, RD 226, data to 240. */
    c.write_buffer = 16;
    for (int nine = 0; nine < 2; nine++) {
        const uint64_t w[1] = {nine ? 576 : 512};
        d = make(&c);
        EXPECT(qs_dram_transfer(d, 0, 1, row1, w, 1, NULL, NULL), 0);
        EXPECT(qs_dram_get_stats(d)->writes, 0);
        EXPECT(qs_dram_transfer(d, 100, 0, row2, one, 1, NULL, NULL), nine ? 140 : 126);
        EXPECT(qs_dram_get_stats(d)->writes, nine ? 9 : 0);
        EXPECT(qs_dram_transfer(d, 200, 0, row1, one, 1, NULL, NULL), nine ? 240 : 201);
        qs_dram_destroy(d);
    }
}

/* A transfer covers every burst its runs touch; times convert between the
 * accelerator clock and tCK rounding up. */
static int g_traced;
static uint64_t g_trace_addr[8];
static void trace_fn(void *user, uint64_t cyc, uint64_t addr, int is_write, uint32_t bytes)
{
    (void)user;
    CU_ASSERT_EQUAL(cyc, 16);
    CU_ASSERT_EQUAL(is_write, 1);
    CU_ASSERT_EQUAL(bytes, 64);
    if (g_traced < 8) g_trace_addr[g_traced] = addr;
    g_traced++;
}

static void test_transfer_and_clock(void)
{
    qs_dram_cfg c = small_cfg();
    c.tck_ps = 625;
    qs_dram *d = NULL;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_dram_create(&c, 1000.0, &d, &e), QS_OK);
    EXPECT(qs_dram_to_dram_cycle(d, 10), 16);   /* 10 ns / 0.625 ns */
    EXPECT(qs_dram_to_dram_cycle(d, 11), 18);   /* 17.6 -> 18 */
    EXPECT(qs_dram_to_accel_cycle(d, 17), 11);  /* 10.625 ns -> 11 */
    /* bytes 60..130 touch bursts 0, 64 and 128; 200..200 none */
    const uint64_t first[2] = {60, 200}, count[2] = {71, 0};
    uint64_t end = qs_dram_transfer(d, 10, 1, first, count, 2, trace_fn, NULL);
    EXPECT(g_traced, 3);
    EXPECT(g_trace_addr[0], 0);
    EXPECT(g_trace_addr[1], 64);
    EXPECT(g_trace_addr[2], 128);
    EXPECT(qs_dram_get_stats(d)->writes, 3);
    /* all three in row 0 of bank 0: ACT 16, WR 28, 35, 42 (tCCD_L 7 within the group);
     * the last data ends 42 + 8 + 4 = 54 tCK = 33.75 ns -> 34 */
    EXPECT(end, 34);
    /* a transfer of nothing takes no time */
    EXPECT(qs_dram_transfer(d, 500, 0, first + 1, count + 1, 1, NULL, NULL), 500);
    qs_dram_destroy(d);
}

/* ---- DMA engines on the simple channel (sim/dma.c, docs/timing.md "DMA
 * engines"): latency 100, 16 bytes per cycle, 64-byte bursts, so a 64-byte
 * request's data takes 4 cycles and a 256-byte transfer's 16. */

static qs_insn xfer(int op, uint32_t addr, uint32_t bytes)
{
    qs_insn in;
    memset(&in, 0, sizeof in);
    in.op = (uint8_t)op;
    in.addr = addr;
    in.bytes = bytes;
    in.rows = bytes ? 1 : 0;
    in.run_bits = bytes * 8;
    return in;
}

static qs_dma *make_dma(qs_arch *a, int outstanding, int request_bytes, int separate)
{
    qs_arch_defaults(a);
    a->dram_latency = 100;
    a->dram_bytes_per_cycle = 16;
    a->dram_burst_bytes = 64;
    a->dma_outstanding = outstanding;
    a->dma_request_bytes = request_bytes;
    a->dma_separate_write = separate;
    qs_dma *d = NULL;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_dma_create(a, NULL, 4, &d, &e), QS_OK);
    qs_dma_reset(d);
    return d;
}

static void test_dma_engines(void)
{
    qs_arch a;
    const qs_insn ld = xfer(QS_OP_LOAD, 0, 256), st = xfer(QS_OP_STORE, 4096, 256), none = xfer(QS_OP_LOAD, 0, 0);
    /* blocking (one outstanding request, one request per transfer): latency + data, one after the other;
     * a transfer of nothing waits for its turn */
    qs_dma *d = make_dma(&a, 1, 0, 0);
    CU_ASSERT(qs_dma_blocking(d));
    qs_dma_times t = qs_dma_transfer(d, 0, &ld, NULL, NULL);
    EXPECT(t.done, 116);
    t = qs_dma_transfer(d, 10, &ld, NULL, NULL);
    EXPECT(t.issued, 116);
    EXPECT(t.done, 232);
    EXPECT(qs_dma_transfer(d, 5, &none, NULL, NULL).done, 232);
    qs_dma_destroy(d);
    /* four outstanding 64-byte requests: the first transfer's latencies overlap (data 100..116); the
     * second's requests take the slots as the first's complete at 104, 108, 112, 116 and their data
     * follows on the bus from 204: done at 220 (blocking: 232) */
    d = make_dma(&a, 4, 64, 0);
    CU_ASSERT(!qs_dma_blocking(d));
    t = qs_dma_transfer(d, 0, &ld, NULL, NULL);
    EXPECT(t.issued, 0);
    EXPECT(t.done, 116);
    t = qs_dma_transfer(d, 1, &ld, NULL, NULL);
    EXPECT(t.issued, 116);
    EXPECT(t.done, 220);
    qs_dma_destroy(d);
    /* two slots: requests 3 and 4 wait for 1 and 2 (104, 108): data 204..212 */
    d = make_dma(&a, 2, 64, 0);
    t = qs_dma_transfer(d, 0, &ld, NULL, NULL);
    EXPECT(t.issued, 108);
    EXPECT(t.done, 212);
    qs_dma_destroy(d);
    /* a store on its own engine overlaps its latency with a load's: it only waits for the bus (116..132) */
    for (int sep = 0; sep < 2; sep++) {
        d = make_dma(&a, 1, 0, sep);
        EXPECT(qs_dma_transfer(d, 0, &ld, NULL, NULL).done, 116);
        EXPECT(qs_dma_transfer(d, 0, &st, NULL, NULL).done, sep ? 132 : 232);
        qs_dma_destroy(d);
    }
    /* transfers of an engine complete in order: on the bank model with two channels, two bursts of one
     * row on channel 0 (ACT 0, RD 12 and 19 (tCCD_L), data to 33), then one burst on channel 1 (data to
     * 26): the second is reported done at 33 */
    qs_dram_cfg c = small_cfg();
    c.channels = 2;
    qs_dram *dr = make(&c);
    qs_arch_defaults(&a);
    a.dma_outstanding = 2;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_dma_create(&a, dr, 4, &d, &e), QS_OK);
    qs_dma_reset(d);
    const qs_insn two = xfer(QS_OP_LOAD, 0, 128), other = xfer(QS_OP_LOAD, 8192, 64);
    EXPECT(qs_dram_decode(dr, 8192).ch, 1);
    EXPECT(qs_dma_transfer(d, 0, &two, NULL, NULL).done, 33);
    EXPECT(qs_dma_transfer(d, 0, &other, NULL, NULL).done, 33);
    qs_dma_destroy(d);
    qs_dram_destroy(dr);
}

/* ---- the memory backend (model = tlm; docs/timing.md "Memory backend"): a
 * backend that completes a request 10 cycles plus a cycle per 16 bytes after
 * its issue, with no shared bus, and logs every call. */
typedef struct {
    int calls;
    uint64_t issue[8], first[8][2], count[8][2];
    uint32_t runs[8];
    int write[8];
    int early; /* 1: answer a cycle before the issue */
} backend_log;

static uint64_t log_backend(void *user, uint64_t issue, int is_write, const uint64_t *first, const uint64_t *count,
                            uint32_t n_runs)
{
    backend_log *l = user;
    uint64_t bytes = 0;
    if (l->calls < 8) {
        l->issue[l->calls] = issue;
        l->write[l->calls] = is_write;
        l->runs[l->calls] = n_runs;
        for (uint32_t i = 0; i < n_runs && i < 2; i++) {
            l->first[l->calls][i] = first[i];
            l->count[l->calls][i] = count[i];
        }
    }
    l->calls++;
    for (uint32_t i = 0; i < n_runs; i++) bytes += count[i];
    if (l->early) return issue ? issue - 1 : 0;
    return issue + 10 + bytes / 16;
}

static void test_dma_backend(void)
{
    qs_arch a;
    backend_log l;
    const qs_mem_backend b = {log_backend, &l};
    const qs_insn ld = xfer(QS_OP_LOAD, 0, 256);
    /* blocking, one request per transfer: 10 + 256/16 = 26 cycles each, back to back */
    qs_dma *d = make_dma(&a, 1, 0, 0);
    a.dram_model = QS_DRAM_TLM;
    memset(&l, 0, sizeof l);
    qs_dma_set_backend(d, &b);
    EXPECT(qs_dma_transfer(d, 0, &ld, NULL, NULL).done, 26);
    qs_dma_times t = qs_dma_transfer(d, 3, &ld, NULL, NULL);
    EXPECT(t.issued, 26);
    EXPECT(t.done, 52);
    EXPECT(l.calls, 2);
    EXPECT(l.issue[1], 26);
    EXPECT(l.runs[0], 1);
    EXPECT(l.count[0][0], 256);
    qs_dma_destroy(d);
    /* four outstanding 64-byte requests: all issue at 0 and complete at 10 + 4 = 14 (the simple channel's
     * shared bus made this 116); with two slots, requests 3 and 4 issue at 14: done 28 */
    for (int slots = 4; slots >= 2; slots -= 2) {
        d = make_dma(&a, slots, 64, 0);
        a.dram_model = QS_DRAM_TLM;
        memset(&l, 0, sizeof l);
        qs_dma_set_backend(d, &b);
        t = qs_dma_transfer(d, 0, &ld, NULL, NULL);
        EXPECT(t.issued, slots == 4 ? 0 : 14);
        EXPECT(t.done, slots == 4 ? 14 : 28);
        EXPECT(l.calls, 4);
        EXPECT(l.first[3][0], 192);
        EXPECT(l.count[3][0], 64);
        qs_dma_destroy(d);
    }
    /* a store of two runs of 32 bytes 100 bytes apart is one request with both runs: 10 + 64/16 = 14 */
    qs_insn st = xfer(QS_OP_STORE, 4096, 64);
    st.rows = 2;
    st.run_bits = 32 * 8;
    st.stride_bits = 100 * 8;
    d = make_dma(&a, 1, 0, 0);
    a.dram_model = QS_DRAM_TLM;
    memset(&l, 0, sizeof l);
    qs_dma_set_backend(d, &b);
    EXPECT(qs_dma_transfer(d, 5, &st, NULL, NULL).done, 19);
    EXPECT(l.write[0], 1);
    EXPECT(l.runs[0], 2);
    EXPECT(l.first[0][0], 4096);
    EXPECT(l.first[0][1], 4196);
    EXPECT(l.count[0][1], 32);
    /* an answer before the issue counts as the issue; no backend: the request is flagged */
    l.early = 1;
    EXPECT(qs_dma_transfer(d, 40, &st, NULL, NULL).done, 40);
    CU_ASSERT(!qs_dma_backend_missing(d));
    qs_dma_set_backend(d, NULL);
    qs_dma_transfer(d, 50, &st, NULL, NULL);
    CU_ASSERT(qs_dma_backend_missing(d));
    qs_dma_destroy(d);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("dram", NULL, NULL);
    CU_add_test(s, "address decode", test_decode);
    CU_add_test(s, "row hit, miss, conflict; tRAS tRTP tWR tRC", test_row_buffer);
    CU_add_test(s, "closed page", test_closed_page);
    CU_add_test(s, "tRRD_S/L and tFAW", test_act_window);
    CU_add_test(s, "tCCD_S vs tCCD_L", test_ccd);
    CU_add_test(s, "read/write turnaround tWTR tRTW", test_turnaround);
    CU_add_test(s, "refresh", test_refresh);
    CU_add_test(s, "FR-FCFS and queue depth", test_fr_fcfs);
    CU_add_test(s, "queue depth bounds requests in flight", test_queue_depth);
    CU_add_test(s, "two-level queues: transaction queue, per-bank command queues", test_two_level_queues);
    CU_add_test(s, "round-robin arbiter: bank queues in turn, row-hit cap, one command per cycle", test_round_robin);
    CU_add_test(s, "write buffer: posted writes, drains when full or idle, reads answered", test_write_buffer);
    CU_add_test(s, "first ready: the earliest column command", test_first_ready);
    CU_add_test(s, "transfer bursts and clock conversion", test_transfer_and_clock);
    CU_add_test(s, "DMA engines: outstanding requests, request size, separate write engine", test_dma_engines);
    CU_add_test(s, "memory backend (model = tlm): the backend's completions", test_dma_backend);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int fail = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return fail ? 1 : 0;
}
