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

// Packed port words: element k of width w at bit k*w (two spare words so a
// port of any width can be read as 64 bits).
struct Bits {
    std::vector<uint32_t> w;
    void size_for(size_t bits) { w.assign((bits + 31) / 32 + 2, 0); }
    void clear() { std::fill(w.begin(), w.end(), 0u); }
    void put(size_t lsb, unsigned width, uint64_t v)
    {
        for (unsigned b = 0; b < width;) {
            size_t word = (lsb + b) / 32;
            unsigned off = (unsigned)((lsb + b) % 32);
            unsigned n = 32 - off < width - b ? 32 - off : width - b;
            uint32_t mask = (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1u)) << off;
            w[word] = (w[word] & ~mask) | ((uint32_t)(v >> b) << off & mask);
            b += n;
        }
    }
    uint64_t get(size_t lsb, unsigned width) const
    {
        uint64_t v = 0;
        for (unsigned b = 0; b < width;) {
            size_t word = (lsb + b) / 32;
            unsigned off = (unsigned)((lsb + b) % 32);
            unsigned n = 32 - off < width - b ? 32 - off : width - b;
            uint64_t part = (w[word] >> off) & (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1u));
            v |= part << b;
            b += n;
        }
        return v;
    }
    int32_t get_signed(size_t lsb, unsigned width) const
    {
        uint64_t m = 1ull << (width - 1);
        uint64_t v = get(lsb, width) & ((width == 64) ? ~0ull : ((1ull << width) - 1));
        return (int32_t)(int64_t)((v ^ m) - m);
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
template <class T>
typename std::enable_if<std::is_integral<T>::value>::type get_port(const T &p, Bits &b)
{
    uint64_t v = (uint64_t)p;
    b.w[0] = (uint32_t)v;
    b.w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N>
void get_port(const VlWide<N> &p, Bits &b)
{
    for (std::size_t i = 0; i < N; i++) b.w[i] = p[i];
}

} // namespace

struct qs_rtl {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<QS_RTL_MODEL> m;
#if VM_TRACE
    std::unique_ptr<VerilatedFstC> fst;
#endif
    Bits west, west_valid, west_shift, north, north_valid, north_shift, north_offset;
    Bits south, south_valid, acc, acc_valid, stat;
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
    r->south.size_for(C * QS_RTL_ACC_W);
    r->south_valid.size_for(C);
    r->acc.size_for(R * C * QS_RTL_ACC_W);
    r->acc_valid.size_for(R * C);
    r->stat.size_for(R * C * QS_RTL_NORTH_W);
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
    const int R = QS_RTL_ROWS, C = QS_RTL_COLS;
    for (int k = 0; k < R * kWin; k++) {
        r->west.put((size_t)k * QS_RTL_WEST_W, QS_RTL_WEST_W, (uint64_t)(int64_t)west[k]);
        r->west_valid.put((size_t)k, 1, west_valid[k]);
    }
    for (int i = 0; i < R; i++) r->west_shift.put((size_t)i * QS_RTL_SHIFT_W, QS_RTL_SHIFT_W, west_shift ? west_shift[i] : 0);
    for (int j = 0; j < C; j++) {
        r->north.put((size_t)j * QS_RTL_NORTH_W, QS_RTL_NORTH_W, (uint64_t)(int64_t)north[j]);
        r->north_valid.put((size_t)j, 1, north_valid[j]);
        r->north_shift.put((size_t)j * QS_RTL_SHIFT_W, QS_RTL_SHIFT_W, north_shift ? north_shift[j] : 0);
        r->north_offset.put((size_t)j * QS_RTL_OFF_W, QS_RTL_OFF_W, north_offset ? north_offset[j] : 0);
    }
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

void rtl_read(qs_rtl *r, int32_t *acc, uint8_t *acc_valid, int32_t *stat, int32_t *south, uint8_t *south_valid,
              uint32_t counts[3])
{
    const size_t n = (size_t)QS_RTL_ROWS * QS_RTL_COLS;
    get_port(r->m->acc_flat, r->acc);
    for (size_t k = 0; k < n; k++) acc[k] = r->acc.get_signed(k * QS_RTL_ACC_W, QS_RTL_ACC_W);
    // OS has no partial-sum valids, stationaries or south edge (the RTL ties
    // them to 0 and the host compares none of them): not read
    if (QS_RTL_DATAFLOW != 1) {
        get_port(r->m->acc_valid_flat, r->acc_valid);
        get_port(r->m->stat_flat, r->stat);
        get_port(r->m->south, r->south);
        get_port(r->m->south_valid, r->south_valid);
        for (size_t k = 0; k < n; k++) {
            acc_valid[k] = (uint8_t)r->acc_valid.get(k, 1);
            stat[k] = r->stat.get_signed(k * QS_RTL_NORTH_W, QS_RTL_NORTH_W);
        }
        for (size_t j = 0; j < (size_t)QS_RTL_COLS; j++) {
            south[j] = r->south.get_signed(j * QS_RTL_ACC_W, QS_RTL_ACC_W);
            south_valid[j] = (uint8_t)r->south_valid.get(j, 1);
        }
    }
    counts[0] = r->m->active_cnt;
    counts[1] = r->m->gated_cnt;
    counts[2] = r->m->ovf_cnt;
}

const qs_rtl_api kApi = {QS_RTL_ABI, kParams, rtl_open, rtl_close, rtl_reset, rtl_tick, rtl_read};

} // namespace

extern "C" __attribute__((visibility("default"))) const qs_rtl_api *qs_rtl_entry(void) { return &kApi; }
