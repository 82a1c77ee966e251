// The Verilated PE array (rtl/qs_pe_array.v) behind the plain C interface of
// qs_rtl_abi.h. sim/rtl_cosim.c compiles this file with the model Verilator
// generated for one parameter set into a shared object and loads it with
// dlopen; the parameters come from qs_rtl_params.h (QS_RTL_*), the model's
// class name is QS_RTL_MODEL.
#include "qs_rtl_params.h" // written beside the generated model by sim/rtl_cosim.c
#ifndef QS_RTL_MODEL
#define QS_RTL_MODEL Vqs_rtl
#define QS_RTL_MODEL_HEADER "Vqs_rtl.h"
#endif
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif

#include QS_RTL_MODEL_HEADER

extern "C" {
#include "qs_rtl_abi.h"
}

namespace {

const qs_rtl_params kParams = {QS_RTL_ROWS,  QS_RTL_COLS,   QS_RTL_DATAFLOW, QS_RTL_WEST_W,    QS_RTL_NORTH_W,
                               QS_RTL_WPB,   QS_RTL_SHIFT_W, QS_RTL_ACC_W,   QS_RTL_SATURATE,  QS_RTL_GATE,
                               QS_RTL_LOOKAHEAD, QS_RTL_OFF_W};

// Packed input port words: lane k of width w at bit k*w (two spare words so
// that a port of any width can be set from 64 bits). The lanes of qs_pe_array
// are at most 17 bits wide.
static_assert(QS_RTL_WEST_W <= 32 && QS_RTL_NORTH_W <= 32 && QS_RTL_SHIFT_W <= 32 && QS_RTL_OFF_W <= 32,
              "a port lane wider than 32 bits");
struct Bits {
    std::vector<uint32_t> w;
    void size_for(size_t bits) { w.assign((bits + 31) / 32 + 2, 0); }
    // All `count` lanes at once, in order (v == nullptr: zeros), through one
    // 64-bit accumulator written out a word at a time: the port is rewritten
    // every clock, so this is the driver's share of a clock's cost.
    template <class T>
    void pack(const T *v, size_t count, unsigned width)
    {
        const uint64_t mask = (1ull << width) - 1;
        uint64_t acc = 0;
        unsigned fill = 0;
        size_t i = 0;
        for (size_t k = 0; k < count; k++) {
            if (v) acc |= ((uint64_t)(int64_t)v[k] & mask) << fill;
            fill += width;
            if (fill >= 32) {
                w[i++] = (uint32_t)acc;
                acc >>= 32;
                fill -= 32;
            }
        }
        if (fill) w[i] = (uint32_t)acc;
    }
};

template <class T>
typename std::enable_if<std::is_integral<T>::value>::type set_port(T &p, const Bits &b)
{
    p = (T)((uint64_t)b.w[0] | (uint64_t)b.w[1] << 32);
}
template <std::size_t N>
void set_port(VlWide<N> &p, const Bits &b)
{
    for (std::size_t i = 0; i < N; i++) p[i] = b.w[i];
}
} // namespace

struct qs_rtl {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<QS_RTL_MODEL> m;
#if VM_TRACE
    std::unique_ptr<VerilatedFstC> fst;
#endif
    Bits west, west_valid, west_shift, north, north_valid, north_shift, north_offset;
    uint64_t last_dump = 0;
    bool dumped = false;
};

namespace {

const int kWin = QS_RTL_LOOKAHEAD + 1;

qs_rtl *rtl_open(const char *fst, char *msg, size_t msg_len)
{
    qs_rtl *r = new (std::nothrow) qs_rtl;
    if (!r) {
        snprintf(msg, msg_len, "out of memory for the RTL model");
        return nullptr;
    }
    r->ctx.reset(new VerilatedContext);
#if VM_TRACE
    if (fst) r->ctx->traceEverOn(true);
#endif
    r->m.reset(new QS_RTL_MODEL(r->ctx.get(), "TOP"));
#if VM_TRACE
    if (fst) {
        r->fst.reset(new VerilatedFstC);
        r->m->trace(r->fst.get(), 99);
        r->fst->open(fst);
        if (!r->fst->isOpen()) {
            snprintf(msg, msg_len, "%s: cannot write the RTL waveform", fst);
            r->fst.reset();
            r->m->final();
            delete r;
            return nullptr;
        }
    }
#else
    if (fst) {
        snprintf(msg, msg_len, "%s: this RTL model was built without tracing", fst);
        r->m->final();
        delete r;
        return nullptr;
    }
#endif
    const size_t R = QS_RTL_ROWS, C = QS_RTL_COLS;
    r->west.size_for(R * kWin * QS_RTL_WEST_W);
    r->west_valid.size_for(R * kWin);
    r->west_shift.size_for(R * QS_RTL_SHIFT_W);
    r->north.size_for(C * QS_RTL_NORTH_W);
    r->north_valid.size_for(C);
    r->north_shift.size_for(C * QS_RTL_SHIFT_W);
    r->north_offset.size_for(C * QS_RTL_OFF_W);
    return r;
}

void rtl_close(qs_rtl *r)
{
    if (!r) return;
#if VM_TRACE
    if (r->fst) r->fst->close();
#endif
    r->m->final();
    delete r;
}

void rtl_reset(qs_rtl *r)
{
    r->m->rst = 1;
    r->m->clear = 0;
    r->m->load = 0;
    r->m->clk = 0;
    r->m->eval();
    r->m->clk = 1;
    r->m->eval();
    r->m->rst = 0;
}

void rtl_tick(qs_rtl *r, const int32_t *west, const uint8_t *west_valid, const uint8_t *west_shift,
              const int32_t *north, const uint8_t *north_valid, const uint8_t *north_shift,
              const uint8_t *north_offset, int clear, int load, uint64_t dump_time)
{
    const size_t R = QS_RTL_ROWS, C = QS_RTL_COLS;
    r->west.pack(west, R * kWin, QS_RTL_WEST_W);
    r->west_valid.pack(west_valid, R * kWin, 1);
    r->west_shift.pack(west_shift, R, QS_RTL_SHIFT_W);
    r->north.pack(north, C, QS_RTL_NORTH_W);
    r->north_valid.pack(north_valid, C, 1);
    r->north_shift.pack(north_shift, C, QS_RTL_SHIFT_W);
    r->north_offset.pack(north_offset, C, QS_RTL_OFF_W);
    set_port(r->m->west, r->west);
    set_port(r->m->west_valid, r->west_valid);
    set_port(r->m->west_shift, r->west_shift);
    set_port(r->m->north, r->north);
    set_port(r->m->north_valid, r->north_valid);
    set_port(r->m->north_shift, r->north_shift);
    set_port(r->m->north_offset, r->north_offset);
    r->m->clear = (uint8_t)clear;
    r->m->load = (uint8_t)load;
    // FST times must not go back: with lockstep row groups several arrays
    // run the same cycles one after the other, and the first one is dumped
#if VM_TRACE
    const bool dump = r->fst && dump_time != UINT64_MAX && dump_time >= 500 &&
                      (!r->dumped || dump_time - 500 > r->last_dump);
#else
    const bool dump = false;
    (void)dump_time;
#endif
    r->m->clk = 0;
    r->m->eval();
#if VM_TRACE
    if (dump) r->fst->dump(dump_time - 500);
#endif
    r->m->clk = 1;
    r->m->eval();
    if (dump) {
#if VM_TRACE
        r->fst->dump(dump_time);
#endif
        r->last_dump = dump_time;
        r->dumped = true;
    }
}

// The word ports (OBS=1) are arrays of 32-bit (IData) or 8-bit (CData)
// elements: their storage is what the host compares, no copy.
static_assert(sizeof(QS_RTL_MODEL::acc_w[0]) == 4 && sizeof(QS_RTL_MODEL::stat_w[0]) == 4 &&
                  sizeof(QS_RTL_MODEL::south_w[0]) == 4 && sizeof(QS_RTL_MODEL::acc_v_w[0]) == 1 &&
                  sizeof(QS_RTL_MODEL::south_v_w[0]) == 1,
              "qs_pe_array's word ports are not 32/8-bit arrays");

void rtl_view(qs_rtl *r, const int32_t **acc, const uint8_t **acc_valid, const int32_t **stat, const int32_t **south,
              const uint8_t **south_valid)
{
    *acc = reinterpret_cast<const int32_t *>(&r->m->acc_w[0]);
    *acc_valid = reinterpret_cast<const uint8_t *>(&r->m->acc_v_w[0]);
    *stat = reinterpret_cast<const int32_t *>(&r->m->stat_w[0]);
    *south = reinterpret_cast<const int32_t *>(&r->m->south_w[0]);
    *south_valid = reinterpret_cast<const uint8_t *>(&r->m->south_v_w[0]);
}

void rtl_counts(qs_rtl *r, uint32_t counts[3])
{
    counts[0] = r->m->active_cnt;
    counts[1] = r->m->gated_cnt;
    counts[2] = r->m->ovf_cnt;
}

const qs_rtl_api kApi = {QS_RTL_ABI, kParams, rtl_open, rtl_close, rtl_reset, rtl_tick, rtl_view, rtl_counts};

} // namespace

extern "C" __attribute__((visibility("default"))) const qs_rtl_api *qs_rtl_entry(void) { return &kApi; }
