// qsim_accel (sim/systemc) in a small virtual platform: an sc_clock, a
// CPU-like thread on the csr socket, a DRAM target on the dram socket that
// logs every b_transport. Each scenario's results are compared with the
// plain C simulator (qs_sim_run) on the same network: cycles, SystemC time
// elapsed, the DMA transfers (direction, address, size, start cycle), DRAM
// bytes against the layers' dram_read/write_bytes, and every layer output.
// One scenario is checked against values worked out by hand from the docs
// instead (a one-tile layer at two DRAM latencies), so that a timing rule
// broken in the C model cannot pass by being broken in the reference too.
//
// Prints one line per scenario and a closing "N passed, M failed"; the exit
// code is nonzero on any failure.
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qsim_sc.h"

extern "C" {
#include "compiler.h"
#include "qs_arch.h"
#include "qs_net.h"
#include "sim.h"
}

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_ZERO_TIME;

namespace {

const std::string kArch = std::string(QSIM_SOURCE_DIR) + "/models/arch/dlac.cfg";
const std::string kNet = std::string(QSIM_SOURCE_DIR) + "/models/nets/demo_w2a4.qbin";

// ---- check bookkeeping ------------------------------------------------------------

struct scenario_result {
    std::string name;
    int failures = 0;
};
std::vector<scenario_result> g_results;
scenario_result *g_cur = nullptr;

void begin(const std::string &name)
{
    g_results.push_back({name, 0});
    g_cur = &g_results.back();
}

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            g_cur->failures++;                                                            \
            std::printf("  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);       \
            std::printf(__VA_ARGS__);                                                     \
            std::printf("\n");                                                            \
        }                                                                                 \
    } while (0)

// ---- the plain C run --------------------------------------------------------------

struct xfer {
    bool write;
    uint64_t addr;
    uint32_t bytes;
    uint64_t cycle;
    bool operator==(const xfer &o) const
    {
        return write == o.write && addr == o.addr && bytes == o.bytes && cycle == o.cycle;
    }
};

struct reference {
    uint64_t total = 0, rd = 0, wr = 0;
    std::vector<xfer> xfers;   // non-empty transfers, in channel order
    std::vector<std::vector<int32_t>> outputs;
};

extern "C" void ref_hook(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start)
{
    if (bytes) static_cast<reference *>(user)->xfers.push_back({is_write != 0, addr, bytes, start});
}

int64_t layer_elems(const qs_layer &L) { return (int64_t)L.out_c * L.out_h * L.out_w; }

bool plain_run(qs_engine engine, const std::vector<int32_t> *input, reference &ref, const std::string &arch_cfg = kArch,
               const std::string &net_qbin = kNet, const std::vector<std::string> &overrides = {})
{
    std::vector<const char *> ov;
    for (const auto &s : overrides) ov.push_back(s.c_str());
    qs_error e{};
    qs_arch arch;
    qs_net *net = nullptr;
    qs_prog *prog = nullptr;
    qs_sim *sim = nullptr;
    bool ok = false;
    if (qs_arch_load(arch_cfg.c_str(), ov.data(), (int)ov.size(), &arch, &e) || qs_net_load(net_qbin.c_str(), &net, &e) ||
        qs_compile(net, &arch, &prog, &e) || qs_sim_create(net, prog, engine, &sim, &e) ||
        (input && qs_sim_set_input(sim, input->data(), (int64_t)input->size(), &e))) {
        std::printf("plain run: %s\n", e.msg);
    } else {
        qs_sim_set_dma_hook(sim, ref_hook, &ref);
        if (qs_sim_run(sim, &e)) {
            std::printf("plain run: %s\n", e.msg);
        } else {
            ref.total = qs_sim_total_cycles(sim);
            for (int32_t i = 0; i < net->n_layers; i++) {
                ref.rd += qs_sim_layer_stats(sim, i)->ev.dram_read_bytes;
                ref.wr += qs_sim_layer_stats(sim, i)->ev.dram_write_bytes;
                const int32_t *o = qs_sim_layer_output(sim, i);
                ref.outputs.emplace_back(o, o + layer_elems(net->layers[i]));
            }
            ok = true;
        }
    }
    qs_sim_destroy(sim);
    if (prog) qs_prog_destroy(prog);
    if (net) qs_net_destroy(net);
    return ok;
}

// ---- the platform -------------------------------------------------------------------

// DRAM: a byte-addressed memory (grows as written; reads of bytes never
// written return `fill`); counts bytes, logs transfers with their time and
// payload, annotates a latency plus `per_byte` per byte moved; optionally
// answers one transaction with an address error.
struct dram_target : sc_core::sc_module {
    tlm_utils::simple_target_socket<dram_target> sock;
    sc_time latency, per_byte = SC_ZERO_TIME;
    int fail_index = -1;   // transaction number to answer with an error
    unsigned char fill = 0xA5;
    std::vector<unsigned char> mem;
    struct seen {
        bool write;
        uint64_t addr;
        uint32_t bytes;
        sc_time at;
        std::vector<unsigned char> data;   // what was written / returned
    };
    std::vector<seen> log;
    uint64_t rd = 0, wr = 0;
    int n = 0;

    dram_target(sc_core::sc_module_name nm, sc_time lat) : sc_module(nm), sock("sock"), latency(lat)
    {
        sock.register_b_transport(this, &dram_target::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload &t, sc_time &delay)
    {
        bool w = t.get_command() == tlm::TLM_WRITE_COMMAND;
        if (n++ == fail_index) {
            t.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        const uint64_t a = t.get_address();
        const uint32_t len = t.get_data_length();
        unsigned char *p = t.get_data_ptr();
        if (w) {
            wr += len;
            if (mem.size() < a + len) mem.resize(a + len, fill);
            std::memcpy(mem.data() + a, p, len);
        } else {
            rd += len;
            for (uint32_t i = 0; i < len; i++) p[i] = a + i < mem.size() ? mem[a + i] : fill;
        }
        log.push_back({w, a, len, sc_core::sc_time_stamp() + delay, std::vector<unsigned char>(p, p + len)});
        delay += latency + per_byte * (double)len;
        t.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

// Values packed LSB first, `bits` each (docs/isa.md), and back (sign-extended when signed).
std::vector<unsigned char> pack(const std::vector<int32_t> &v, int bits)
{
    std::vector<unsigned char> out((v.size() * bits + 7) / 8, 0);
    for (size_t i = 0; i < v.size(); i++)
        for (int b = 0; b < bits; b++)
            if (((uint32_t)v[i] >> b) & 1) out[(i * bits + b) / 8] |= (unsigned char)(1u << ((i * bits + b) % 8));
    return out;
}

std::vector<int32_t> unpack(const std::vector<unsigned char> &mem, uint64_t addr, size_t count, int bits, bool is_signed)
{
    std::vector<int32_t> v(count, 0);
    for (size_t i = 0; i < count; i++) {
        uint32_t x = 0;
        for (int b = 0; b < bits; b++) {
            uint64_t bit = addr * 8 + i * bits + b;
            if (bit / 8 < mem.size() && ((mem[bit / 8] >> (bit % 8)) & 1)) x |= 1u << b;
        }
        if (is_signed && bits < 32 && (x >> (bits - 1)) & 1) x |= ~0u << bits;
        v[i] = (int32_t)x;
    }
    return v;
}

// The first rising edge strictly after t (the clock starts high at 0).
sc_time next_edge(sc_time t, sc_time period)
{
    return sc_time::from_value((t.value() / period.value() + 1) * period.value());
}

// What a CPU thread saw of one run, plus a snapshot of the module afterwards.
struct observed {
    bool finished = false;
    sc_time t_write, t_seen_done, t0, t_done;
    uint32_t status = 0, error = 0, dma_count = 0, rd_lo = 0, wr_lo = 0;
    uint64_t cycles = 0, late = 0, accel_rd = 0, accel_wr = 0, read_mismatches = 0;
    std::vector<unsigned char> mem;   // the DRAM target's memory afterwards
    bool done_signal = false;
    std::vector<dram_target::seen> log;
    uint64_t target_rd = 0, target_wr = 0;
    std::vector<std::vector<int32_t>> outputs;
};

struct cpu : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<cpu> sock;
    qsim_accel *accel;
    dram_target *mem;
    sc_core::sc_signal<bool> *done_sig;
    sc_time period;
    std::function<void(cpu &)> program;
    bool finished = false;
    sc_core::sc_event finished_ev;

    SC_HAS_PROCESS(cpu);
    cpu(sc_core::sc_module_name nm, qsim_accel *a, dram_target *m, sc_core::sc_signal<bool> *d, sc_time p)
        : sc_module(nm), sock("sock"), accel(a), mem(m), done_sig(d), period(p)
    {
        SC_THREAD(main);
    }
    void pause(const sc_time &t) { wait(t); }
    void main()
    {
        if (program) program(*this);
        finished = true;
        finished_ev.notify(SC_ZERO_TIME);
    }

    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, void *data, unsigned len,
                                    unsigned char *be = nullptr, unsigned be_len = 0)
    {
        tlm::tlm_generic_payload t;
        sc_time delay = SC_ZERO_TIME;
        t.set_command(cmd);
        t.set_address(addr);
        t.set_data_ptr(static_cast<unsigned char *>(data));
        t.set_data_length(len);
        t.set_streaming_width(len);
        t.set_byte_enable_ptr(be);
        t.set_byte_enable_length(be_len);
        t.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        sock->b_transport(t, delay);
        wait(delay);
        return t.get_response_status();
    }
    uint32_t rd32(uint32_t off)
    {
        uint32_t v = 0;
        if (access(tlm::TLM_READ_COMMAND, off, &v, 4) != tlm::TLM_OK_RESPONSE) std::printf("  csr read 0x%x failed\n", off);
        return v;
    }
    void wr32(uint32_t off, uint32_t v)
    {
        if (access(tlm::TLM_WRITE_COMMAND, off, &v, 4) != tlm::TLM_OK_RESPONSE) std::printf("  csr write 0x%x failed\n", off);
    }

    // START a run (between clock edges), wait for done by polling STATUS
    // once per clock period (or on done_event()), then read the registers.
    observed run(uint32_t config, bool use_event = false, std::function<void(cpu &)> while_busy = nullptr,
                 bool on_edge = false)
    {
        observed o;
        wr32(qsim_accel::REG_CONFIG, config);
        if (on_edge)   // START at a rising edge's time: cycle 0 must still be the next edge
            wait(next_edge(sc_core::sc_time_stamp(), period) - sc_core::sc_time_stamp());
        else
            wait(period / 3);
        o.t_write = sc_core::sc_time_stamp();
        wr32(qsim_accel::REG_CTRL, qsim_accel::CTRL_START);
        if (while_busy) while_busy(*this);
        const sc_time limit = o.t_write + sc_time(10, sc_core::SC_MS);
        if (use_event) {
            wait(accel->done_event());
            o.status = rd32(qsim_accel::REG_STATUS);
        } else {
            do {
                wait(period);
                o.status = rd32(qsim_accel::REG_STATUS);
            } while (!(o.status & qsim_accel::STATUS_DONE) && sc_core::sc_time_stamp() < limit);
        }
        o.t_seen_done = sc_core::sc_time_stamp();
        wait(SC_ZERO_TIME);   // the done signal is updated a delta after done_event
        wait(SC_ZERO_TIME);
        o.done_signal = done_sig->read();
        uint32_t lo = rd32(qsim_accel::REG_CYCLES_LO), hi = rd32(qsim_accel::REG_CYCLES_HI);
        o.cycles = (uint64_t)hi << 32 | lo;
        o.error = rd32(qsim_accel::REG_ERROR);
        o.dma_count = rd32(qsim_accel::REG_DMA_COUNT);
        o.rd_lo = rd32(qsim_accel::REG_DMA_RD_LO);
        o.wr_lo = rd32(qsim_accel::REG_DMA_WR_LO);
        o.t0 = accel->start_time();
        o.t_done = accel->done_time();
        o.late = accel->late_transfers();
        o.read_mismatches = accel->read_mismatches();
        o.mem = mem->mem;
        o.accel_rd = accel->dram_bytes_read();
        o.accel_wr = accel->dram_bytes_written();
        o.log.swap(mem->log);
        o.target_rd = mem->rd;
        o.target_wr = mem->wr;
        mem->rd = mem->wr = 0;
        for (int32_t i = 0; i < accel->net()->n_layers; i++) {
            const int32_t *p = accel->layer_output(i);
            o.outputs.emplace_back(p, p + layer_elems(accel->net()->layers[i]));
        }
        o.finished = true;
        return o;
    }
};

// One accelerator with its DRAM and CPU on the shared clock.
struct rig {
    std::unique_ptr<qsim_accel> accel;
    std::unique_ptr<dram_target> mem;
    std::unique_ptr<cpu> core;
    sc_core::sc_signal<bool> done_sig;

    rig(const std::string &name, sc_core::sc_clock &clk, sc_time dram_latency, const std::string &arch = kArch,
        const std::string &net = kNet, const std::vector<std::string> &overrides = {})
        : done_sig((name + "_done").c_str())
    {
        accel = std::make_unique<qsim_accel>((name + "_accel").c_str(), arch, net, QS_ENGINE_FAST, overrides);
        mem = std::make_unique<dram_target>((name + "_dram").c_str(), dram_latency);
        core = std::make_unique<cpu>((name + "_cpu").c_str(), accel.get(), mem.get(), &done_sig, clk.period());
        accel->clk(clk);
        accel->done(done_sig);
        accel->dram.bind(mem->sock);
        core->sock.bind(accel->csr);
    }
};

// Everything a normal run must satisfy against its reference.
void check_run(const observed &o, const reference &ref, sc_time period, bool exact_timing)
{
    CHECK(o.finished, "the CPU thread did not finish its run");
    if (!o.finished) return;
    CHECK(o.status == qsim_accel::STATUS_DONE, "STATUS 0x%x, want DONE only", o.status);
    CHECK(o.error == 0, "ERROR register %u", o.error);
    CHECK(o.done_signal, "done output low after the run");
    CHECK(o.cycles == ref.total, "CYCLES %" PRIu64 ", plain run %" PRIu64, o.cycles, ref.total);
    CHECK(o.t0 == next_edge(o.t_write, period), "cycle 0 at %s, START written at %s",
          o.t0.to_string().c_str(), o.t_write.to_string().c_str());
    sc_time want = period * (double)ref.total;
    if (exact_timing) {
        CHECK(o.t_done - o.t0 == want, "SystemC time elapsed %s, cycles*period %s",
              (o.t_done - o.t0).to_string().c_str(), want.to_string().c_str());
        CHECK(o.late == 0, "%" PRIu64 " late transfers", o.late);
    } else {
        CHECK(o.t_done - o.t0 >= want, "elapsed %s < cycles*period %s", (o.t_done - o.t0).to_string().c_str(),
              want.to_string().c_str());
    }
    CHECK(o.t_seen_done >= o.t_done && o.t_seen_done <= o.t_done + period, "CPU saw done at %s, done at %s",
          o.t_seen_done.to_string().c_str(), o.t_done.to_string().c_str());
    CHECK(o.target_rd == ref.rd, "DRAM target read %" PRIu64 " bytes, layers' dram_read_bytes %" PRIu64,
          o.target_rd, ref.rd);
    CHECK(o.target_wr == ref.wr, "DRAM target written %" PRIu64 " bytes, layers' dram_write_bytes %" PRIu64,
          o.target_wr, ref.wr);
    CHECK(o.accel_rd == ref.rd && o.accel_wr == ref.wr, "module counters %" PRIu64 "/%" PRIu64, o.accel_rd,
          o.accel_wr);
    CHECK(o.rd_lo == (uint32_t)ref.rd && o.wr_lo == (uint32_t)ref.wr, "DMA_RD/WR registers %u/%u", o.rd_lo,
          o.wr_lo);
    CHECK(o.dma_count == ref.xfers.size(), "DMA_COUNT %u, plain run %zu transfers", o.dma_count, ref.xfers.size());
    CHECK(o.log.size() == ref.xfers.size(), "DRAM target saw %zu transactions, plain run %zu", o.log.size(),
          ref.xfers.size());
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < o.log.size() && i < ref.xfers.size(); i++) {
        const auto &s = o.log[i];
        const auto &r = ref.xfers[i];
        bool same = s.write == r.write && s.addr == r.addr && s.bytes == r.bytes;
        if (exact_timing) same = same && s.at == o.t0 + period * (double)r.cycle;
        else same = same && s.at >= o.t0 + period * (double)r.cycle;
        if (!same && bad++ == 0) first_bad = i;
    }
    CHECK(bad == 0, "%zu transactions differ from the plain run's DMA, first #%zu", bad, first_bad);
    CHECK(o.outputs == ref.outputs, "layer outputs differ from the plain run's");
}

} // namespace

int sc_main(int, char *[])
{
    // References: the plain C simulator on the same network.
    reference ref_fast, ref_detailed, ref_input;
    std::vector<int32_t> input;
    {
        qs_error e{};
        qs_net *net = nullptr;
        if (qs_net_load(kNet.c_str(), &net, &e)) {
            std::printf("cannot load %s: %s\n0 passed, 1 failed\n", kNet.c_str(), e.msg);
            return 1;
        }
        const qs_layer &L = net->layers[0];
        int32_t lo, hi;
        qs_int_range(L.out_bits, L.out_signed, &lo, &hi);
        for (int64_t i = 0; i < layer_elems(L); i++) input.push_back(lo + (int32_t)((i * 7 + i / 5) % ((int64_t)hi - lo + 1)));
        qs_net_destroy(net);
    }
    if (!plain_run(QS_ENGINE_FAST, nullptr, ref_fast) || !plain_run(QS_ENGINE_DETAILED, nullptr, ref_detailed) ||
        !plain_run(QS_ENGINE_FAST, &input, ref_input)) {
        std::printf("0 passed, 1 failed\n");
        return 1;
    }
    std::printf("plain run: %" PRIu64 " cycles (detailed %" PRIu64 "), %zu DMA transfers, %" PRIu64
                " bytes read, %" PRIu64 " written\n",
                ref_fast.total, ref_detailed.total, ref_fast.xfers.size(), ref_fast.rd, ref_fast.wr);

    qs_arch arch;
    {
        qs_error e{};
        if (qs_arch_load(kArch.c_str(), nullptr, 0, &arch, &e)) {
            std::printf("%s\n0 passed, 1 failed\n", e.msg);
            return 1;
        }
    }
    const sc_time period(1000.0 / arch.freq_mhz, SC_NS);
    sc_core::sc_clock clk("clk", period);

    // A: lockstep (one qs_sim_advance per rising edge), fast DRAM; a second
    // START while busy is ignored; CLEAR; CSR protocol errors; 64-bit read.
    rig a("a", clk, sc_time(2, SC_NS));
    a.accel->set_quantum(1);
    observed a_run, a_csr_probe;
    uint32_t a_after_clear = 0xffffffff, a_id = 0;
    bool a_done_after_clear = true;
    uint64_t a_cycles64 = 0;
    tlm::tlm_response_status a_rs_misaligned{}, a_rs_range{}, a_rs_be{}, a_rs_len{};
    uint32_t a_busy_status = 0;
    a.core->program = [&](cpu &c) {
        a_run = c.run(0, false, [&](cpu &c2) {
            c2.pause(c2.period * 50);
            a_busy_status = c2.rd32(qsim_accel::REG_STATUS);
            c2.wr32(qsim_accel::REG_CTRL, qsim_accel::CTRL_START);   // ignored: busy
        });
        uint64_t v = 0;
        c.access(tlm::TLM_READ_COMMAND, qsim_accel::REG_CYCLES_LO, &v, 8);
        a_cycles64 = v;
        a_id = c.rd32(qsim_accel::REG_ID);
        uint32_t w = 0;
        a_rs_misaligned = c.access(tlm::TLM_READ_COMMAND, 0x06, &w, 4);
        a_rs_range = c.access(tlm::TLM_READ_COMMAND, qsim_accel::REG_SPAN, &w, 4);
        a_rs_len = c.access(tlm::TLM_READ_COMMAND, 0x04, &w, 2);
        unsigned char be[4] = {0xff, 0xff, 0xff, 0xff};
        a_rs_be = c.access(tlm::TLM_READ_COMMAND, 0x04, &w, 4, be, 4);
        c.wr32(qsim_accel::REG_CTRL, qsim_accel::CTRL_CLEAR);
        c.pause(c.period);
        a_after_clear = c.rd32(qsim_accel::REG_STATUS);
        a_done_after_clear = a.done_sig.read();
    };

    // B: default quantum (chunks); a second run switched to the detailed
    // engine through CONFIG, waited for with done_event().
    rig b("b", clk, sc_time(2, SC_NS));
    observed b_run1, b_run2;
    b.core->program = [&](cpu &c) {
        b_run1 = c.run(0);
        b_run2 = c.run(qsim_accel::CONFIG_DETAILED, true);
    };

    // C: the whole run in one qs_sim_advance; an explicit input.
    rig cc("c", clk, SC_ZERO_TIME);
    cc.accel->set_quantum(0);
    cc.accel->set_input(input);
    cc.mem->mem = cc.accel->dram_image();   // the explicit input and the weights
    observed c_run;
    cc.core->program = [&](cpu &c) { c_run = c.run(0); };

    // D: a DRAM much slower than the model's channel: transfers go out late,
    // done waits for them; cycles and data are unchanged.
    rig d("d", clk, sc_time(500, SC_NS));
    observed d_run;
    d.core->program = [&](cpu &c) { d_run = c.run(0); };

    // E: the DRAM answers the third transaction with an error.
    rig e("e", clk, SC_ZERO_TIME);
    e.mem->fail_index = 2;
    observed e_run;
    e.core->program = [&](cpu &c) { e_run = c.run(0); };

    // F: START written exactly at a rising edge's time, lockstep.
    rig f("f", clk, SC_ZERO_TIME);
    f.accel->set_quantum(1);
    observed f_run;
    f.core->program = [&](cpu &c) { f_run = c.run(0, false, nullptr, true); };

    // G: a one-tile layer whose cycles and transfers docs/timing.md gives by
    // hand, independently of the C model: tests/data/fc_one_tile.qbin (27
    // 4-bit inputs = 14 B, an fc of 5 outputs with dense int8 weights = 135 B,
    // 5 B stored) on a 1x8 output-stationary array with an 8-bit weight path,
    // DRAM 3 B/cycle in 16 B bursts with latency L, 2 PPU lanes. Transfers
    // take L + ceil(ceil(n/16)*16/3) cycles: 6+L, 48+L, 6+L; the GEMM takes
    // (27-1) + 1 + 5 - 1 + 1 = 32; the PPU ceil(5/2) = 3. Addresses follow
    // docs/compiler.md section 8: input at 0, weights at 0x40, output at 0x100.
    const std::string one_tile = std::string(QSIM_SOURCE_DIR) + "/tests/data/fc_one_tile.qbin";
    const std::string tpu = std::string(QSIM_SOURCE_DIR) + "/models/arch/tpu_int8.cfg";
    const int lat[2] = {0, 10};
    std::vector<std::unique_ptr<rig>> g;
    observed g_run[2];
    for (int i = 0; i < 2; i++) {
        g.push_back(std::make_unique<rig>("g" + std::to_string(lat[i]), clk, SC_ZERO_TIME, tpu, one_tile,
                                          std::vector<std::string>{"array.rows=1", "array.cols=8", "array.dataflow=os",
                                                                   "array.zero_skip=none", "array.skip_group=1",
                                                                   "array.weight_path_bits=8", "dram.bytes_per_cycle=3",
                                                                   "dram.burst_bytes=16",
                                                                   "dram.latency_cycles=" + std::to_string(lat[i]),
                                                                   "ppu.lanes=2"}));
        g.back()->core->program = [&g_run, i](cpu &c) { g_run[i] = c.run(0); };
    }

    // H: [dram] model = tlm on the same one-tile layer: the target's delay
    // decides. A target that adds D cycles to every transaction makes each
    // transfer (one run each here) take D cycles (docs/timing.md, "Memory
    // backend"), so by hand: input load D, weight load D, GEMM 32, PPU 3,
    // store D: 35 + 3D cycles, transactions at cycles 0, D and 2D + 35. The
    // target's memory starts as dram_image(): the loads must return the
    // input and the weight image (by hand from the .qbin: per reduction
    // position k, the 5 channels' int8 weights), the store must carry the
    // layer's 5 outputs.
    const int tlm_d[2] = {0, 7};
    const std::vector<std::string> one_tile_ov = {"array.rows=1", "array.cols=8", "array.dataflow=os",
                                                  "array.zero_skip=none", "array.skip_group=1",
                                                  "array.weight_path_bits=8", "ppu.lanes=2"};
    reference ref_one_tile;
    if (!plain_run(QS_ENGINE_FAST, nullptr, ref_one_tile, tpu, one_tile, one_tile_ov)) {
        std::printf("0 passed, 1 failed\n");
        return 1;
    }
    std::vector<std::unique_ptr<rig>> h;
    observed h_run[2];
    for (int i = 0; i < 2; i++) {
        std::vector<std::string> ov = one_tile_ov;
        ov.push_back("dram.model=tlm");
        h.push_back(std::make_unique<rig>("h" + std::to_string(tlm_d[i]), clk, period * (double)tlm_d[i], tpu, one_tile, ov));
        h.back()->mem->mem = h.back()->accel->dram_image();
        h.back()->core->program = [&h_run, i](cpu &c) { h_run[i] = c.run(0); };
    }

    // I: model = tlm on the demo network, a target that takes one cycle per
    // byte. By docs/timing.md a request's runs go out back to back, so a
    // request of n bytes takes n cycles: exactly the simple model at
    // latency 0, 1 B/cycle, 1-byte bursts (blocking engine, one request per
    // transfer, one engine). Run i of a transfer starts at the transfer's
    // start plus the bytes of runs 0..i-1. Lockstep and chunked stepping
    // must agree. The memory starts as dram_image(): every read must return
    // what the model reads, and at the end every layer's output must be in
    // the target's memory at its address.
    // (a 1 KiB accumulator makes stores of 8 runs, one per output channel)
    const std::vector<std::string> dma_ov = {"dma.outstanding=1", "dma.request_bytes=0", "dma.separate_write_engine=0",
                                             "buffer.accum.size_kib=1"};
    std::vector<std::string> simple_ov = dma_ov, tlm_ov = dma_ov;
    for (const char *k : {"dram.latency_cycles=0", "dram.bytes_per_cycle=1", "dram.burst_bytes=1"}) simple_ov.push_back(k);
    tlm_ov.push_back("dram.model=tlm");
    reference ref_bytewise;
    if (!plain_run(QS_ENGINE_FAST, nullptr, ref_bytewise, kArch, kNet, simple_ov)) {
        std::printf("0 passed, 1 failed\n");
        return 1;
    }
    std::vector<std::unique_ptr<rig>> ii;
    observed i_run[2];
    for (int i = 0; i < 2; i++) {
        ii.push_back(std::make_unique<rig>("i" + std::to_string(i), clk, SC_ZERO_TIME, kArch, kNet, tlm_ov));
        ii.back()->mem->per_byte = period;
        ii.back()->mem->mem = ii.back()->accel->dram_image();
        if (i == 1) ii.back()->accel->set_quantum(1);
        ii.back()->core->program = [&i_run, i](cpu &c) { i_run[i] = c.run(0); };
    }

    // Stop when every CPU is done (the clock would run forever).
    std::vector<cpu *> cpus = {a.core.get(), b.core.get(), cc.core.get(), d.core.get(), e.core.get(), f.core.get(),
                               g[0]->core.get(), g[1]->core.get(), h[0]->core.get(), h[1]->core.get(),
                               ii[0]->core.get(), ii[1]->core.get()};
    struct stopper : sc_core::sc_module {
        std::vector<cpu *> cpus;
        SC_HAS_PROCESS(stopper);
        stopper(sc_core::sc_module_name nm, std::vector<cpu *> c) : sc_module(nm), cpus(std::move(c))
        {
            SC_THREAD(main);
        }
        void main()
        {
            for (cpu *c : cpus)
                while (!c->finished) wait(c->finished_ev);
            sc_core::sc_stop();
        }
    } stop("stop", cpus);

    sc_core::sc_start(sc_time(100, sc_core::SC_MS));

    begin("lockstep (quantum 1), fast engine");
    check_run(a_run, ref_fast, period, true);
    CHECK(a_busy_status == qsim_accel::STATUS_BUSY, "STATUS while running 0x%x", a_busy_status);
    CHECK(a.accel->quantum() == 1, "quantum");
    CHECK(a.accel->clock_period() == period, "clock period %s", a.accel->clock_period().to_string().c_str());

    begin("CSR block: ID, 64-bit CYCLES read, errors, CLEAR");
    CHECK(a_id == qsim_accel::QSIM_SC_ID, "ID 0x%x", a_id);
    CHECK(a_cycles64 == ref_fast.total, "8-byte CYCLES read %" PRIu64, a_cycles64);
    CHECK(a_rs_misaligned == tlm::TLM_BURST_ERROR_RESPONSE, "misaligned access: %d", (int)a_rs_misaligned);
    CHECK(a_rs_range == tlm::TLM_ADDRESS_ERROR_RESPONSE, "out-of-range access: %d", (int)a_rs_range);
    CHECK(a_rs_len == tlm::TLM_BURST_ERROR_RESPONSE, "2-byte access: %d", (int)a_rs_len);
    CHECK(a_rs_be == tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE, "byte enables: %d", (int)a_rs_be);
    CHECK(a_after_clear == 0, "STATUS after CLEAR 0x%x", a_after_clear);
    CHECK(!a_done_after_clear, "done output still high after CLEAR");

    begin("chunks (default quantum), fast engine");
    check_run(b_run1, ref_fast, period, true);
    CHECK(b.accel->quantum() == qsim_accel::DEFAULT_QUANTUM, "quantum");

    begin("second run, detailed engine via CONFIG, done_event");
    check_run(b_run2, ref_detailed, period, true);

    begin("whole run in one step (quantum 0), explicit input");
    check_run(c_run, ref_input, period, true);
    CHECK(c_run.outputs != ref_fast.outputs, "the explicit input made no difference (test is not testing)");
    // real bytes on the replay path too: every read finds what the model reads, every output lands
    CHECK(c_run.read_mismatches == 0, "%" PRIu64 " reads returned other bytes than the model's", c_run.read_mismatches);
    CHECK(b_run1.read_mismatches > 0, "reads of a memory that does not hold the network all matched (not testing)");
    for (int32_t li = 1; li < cc.accel->net()->n_layers; li++) {
        const qs_layer &L = cc.accel->net()->layers[li];
        CHECK(unpack(c_run.mem, cc.accel->prog()->maps[li].out_addr, (size_t)layer_elems(L), L.out_bits, L.out_signed) ==
                  ref_input.outputs[li],
              "layer %d's output in the target's memory differs from the plain run's", li);
    }

    begin("slow DRAM target: late transfers, done after the last one");
    check_run(d_run, ref_fast, period, false);
    CHECK(d_run.late > 0, "no late transfers with a 500 ns DRAM");
    if (!d_run.log.empty())
        CHECK(d_run.t_done >= d_run.log.back().at + sc_time(500, SC_NS), "done at %s before the last transfer ended",
              d_run.t_done.to_string().c_str());

    begin("DRAM error response");
    CHECK(e_run.finished, "did not finish");
    CHECK(e_run.status == (qsim_accel::STATUS_DONE | qsim_accel::STATUS_ERROR), "STATUS 0x%x", e_run.status);
    CHECK(e_run.error == qsim_accel::ERR_DRAM, "ERROR 0x%x", e_run.error);
    CHECK(e_run.cycles == ref_fast.total, "CYCLES %" PRIu64, e_run.cycles);
    CHECK(e_run.log.size() + 1 == ref_fast.xfers.size(), "%zu good transactions", e_run.log.size());
    CHECK(!e.accel->error_message().empty(), "no error message");

    for (int i = 0; i < 2; i++) {
        const uint64_t L = (uint64_t)lat[i], want = 95 + 3 * L;
        const struct {
            bool write;
            uint64_t addr, bytes, cycle;
        } xf[3] = {{false, 0x0, 14, 0}, {false, 0x40, 135, 6 + L}, {true, 0x100, 5, (6 + L) + (48 + L) + 32 + 3}};
        const observed &o = g_run[i];
        begin("one-tile layer by hand (docs/timing.md), DRAM latency " + std::to_string(L));
        CHECK(o.finished && o.status == qsim_accel::STATUS_DONE, "STATUS 0x%x", o.status);
        CHECK(o.cycles == want, "CYCLES %" PRIu64 ", by hand %" PRIu64, o.cycles, want);
        CHECK(o.t_done - o.t0 == period * (double)want, "elapsed %s, by hand %" PRIu64 " cycles",
              (o.t_done - o.t0).to_string().c_str(), want);
        CHECK(o.log.size() == 3, "%zu DRAM transactions, by hand 3", o.log.size());
        for (size_t k = 0; k < 3 && k < o.log.size(); k++)
            CHECK(o.log[k].write == xf[k].write && o.log[k].addr == xf[k].addr && o.log[k].bytes == xf[k].bytes &&
                      o.log[k].at == o.t0 + period * (double)xf[k].cycle,
                  "transaction %zu: %s 0x%" PRIx64 " %u B at %s; by hand %s 0x%" PRIx64 " %" PRIu64 " B at cycle %" PRIu64,
                  k, o.log[k].write ? "write" : "read", o.log[k].addr, o.log[k].bytes,
                  (o.log[k].at - o.t0).to_string().c_str(), xf[k].write ? "write" : "read", xf[k].addr, xf[k].bytes,
                  xf[k].cycle);
    }

    {
        qs_error err{};
        qs_net *net = nullptr;
        std::vector<unsigned char> w_by_hand;
        if (qs_net_load(one_tile.c_str(), &net, &err) == QS_OK) {
            const qs_tensor &W = net->tensors[net->layers[1].weight];
            for (int k = 0; k < 27; k++)
                for (int n = 0; n < 5; n++) w_by_hand.push_back((unsigned char)(W.data[n * 27 + k] & 0xff));
        }
        for (int i = 0; i < 2; i++) {
            const uint64_t D = (uint64_t)tlm_d[i], want = 35 + 3 * D;
            const observed &o = h_run[i];
            begin("model = tlm, one-tile layer by hand: a target adding " + std::to_string(D) + " cycles");
            CHECK(net != nullptr, "cannot load %s: %s", one_tile.c_str(), err.msg);
            CHECK(o.finished && o.status == qsim_accel::STATUS_DONE, "STATUS 0x%x (%s)", o.status,
                  h[i]->accel->error_message().c_str());
            CHECK(o.cycles == want, "CYCLES %" PRIu64 ", by hand %" PRIu64, o.cycles, want);
            CHECK(o.t_done - o.t0 == period * (double)want, "elapsed %s, by hand %" PRIu64 " cycles",
                  (o.t_done - o.t0).to_string().c_str(), want);
            CHECK(o.late == 0, "%" PRIu64 " late transactions", o.late);
            const uint64_t at[3] = {0, D, 2 * D + 35}, addr[3] = {0x0, 0x40, 0x100};
            CHECK(o.log.size() == 3, "%zu DRAM transactions, by hand 3", o.log.size());
            for (size_t k = 0; k < 3 && k < o.log.size(); k++)
                CHECK(o.log[k].write == (k == 2) && o.log[k].addr == addr[k] && o.log[k].at == o.t0 + period * (double)at[k],
                      "transaction %zu: %s 0x%" PRIx64 " at %s; by hand 0x%" PRIx64 " at cycle %" PRIu64, k,
                      o.log[k].write ? "write" : "read", o.log[k].addr, (o.log[k].at - o.t0).to_string().c_str(), addr[k],
                      at[k]);
            if (o.log.size() == 3 && net) {
                const qs_layer &L0 = net->layers[0], &L1 = net->layers[1];
                CHECK(o.log[0].data == pack(ref_one_tile.outputs[0], L0.out_bits), "the input read is not the input's bytes");
                CHECK(o.log[1].data == w_by_hand, "the weight read (%zu B) is not the .qbin's weights (%zu B) in "
                      "weight-image order", o.log[1].data.size(), w_by_hand.size());
                CHECK(o.log[2].data == pack(ref_one_tile.outputs[1], L1.out_bits), "the store does not carry the outputs");
                CHECK(unpack(o.mem, 0x100, 5, L1.out_bits, L1.out_signed) == ref_one_tile.outputs[1],
                      "the target's memory at 0x100 does not read back as the layer's outputs");
                CHECK(ref_one_tile.outputs[1] != std::vector<int32_t>(5, 0), "all-zero outputs: the test is not testing");
            }
            CHECK(o.read_mismatches == 0, "%" PRIu64 " reads returned other bytes than the model's", o.read_mismatches);
        }
        if (net) qs_net_destroy(net);
    }

    // transfers of several runs: more runs than distinct start cycles
    size_t multi_run_min = 0;
    for (size_t k = 1; k < ref_bytewise.xfers.size(); k++)
        if (ref_bytewise.xfers[k].cycle != ref_bytewise.xfers[k - 1].cycle) multi_run_min++;
    for (int i = 0; i < 2; i++) {
        const observed &o = i_run[i];
        begin(std::string("model = tlm, demo network, 1 cycle per byte = simple model at 1 B/cycle") +
              (i ? " (lockstep)" : ""));
        CHECK(o.finished && o.status == qsim_accel::STATUS_DONE, "STATUS 0x%x (%s)", o.status,
              ii[i]->accel->error_message().c_str());
        CHECK(o.cycles == ref_bytewise.total, "CYCLES %" PRIu64 ", simple model at 1 B/cycle %" PRIu64, o.cycles,
              ref_bytewise.total);
        CHECK(ref_bytewise.total != ref_fast.total, "the byte-wise DRAM changed nothing (the test is not testing)");
        CHECK(o.t_done - o.t0 == period * (double)ref_bytewise.total, "elapsed %s",
              (o.t_done - o.t0).to_string().c_str());
        CHECK(o.log.size() == ref_bytewise.xfers.size(), "%zu transactions, plain run %zu runs", o.log.size(),
              ref_bytewise.xfers.size());
        size_t bad = 0, first_bad = 0;
        uint64_t offset = 0;
        for (size_t k = 0; k < o.log.size() && k < ref_bytewise.xfers.size(); k++) {
            const xfer &r = ref_bytewise.xfers[k];
            if (k == 0 || r.cycle != ref_bytewise.xfers[k - 1].cycle || r.write != ref_bytewise.xfers[k - 1].write) offset = 0;
            bool same = o.log[k].write == r.write && o.log[k].addr == r.addr && o.log[k].bytes == r.bytes &&
                        o.log[k].at == o.t0 + period * (double)(r.cycle + offset);
            offset += r.bytes;
            if (!same && bad++ == 0) first_bad = k;
        }
        CHECK(bad == 0, "%zu transactions differ (address, size, start), first #%zu", bad, first_bad);
        CHECK(o.log.size() > multi_run_min, "only %zu transactions: no transfer of several runs (the test is not testing)",
              o.log.size());
        CHECK(o.read_mismatches == 0, "%" PRIu64 " reads returned other bytes than the model's", o.read_mismatches);
        CHECK(o.outputs == ref_bytewise.outputs, "layer outputs differ from the plain run's");
        const qsim_accel &acc = *ii[i]->accel;
        int32_t wrong = -1;
        for (int32_t li = 1; li < acc.net()->n_layers && li < (int32_t)ref_bytewise.outputs.size(); li++) {
            const qs_layer &L = acc.net()->layers[li];
            if (unpack(o.mem, acc.prog()->maps[li].out_addr, (size_t)layer_elems(L), L.out_bits, L.out_signed) !=
                    ref_bytewise.outputs[li] && wrong < 0)
                wrong = li;
        }
        CHECK(wrong < 0, "layer %d's output in the target's memory differs from the plain run's", wrong);
    }

    begin("START on a clock edge: cycle 0 is the next edge");
    check_run(f_run, ref_fast, period, true);
    CHECK(f_run.t_write.value() % period.value() == 0, "START at %s is not on an edge", f_run.t_write.to_string().c_str());

    int passed = 0, failed = 0;
    for (const auto &r : g_results) {
        std::printf("%s - %s\n", r.failures ? "FAIL" : "ok", r.name.c_str());
        (r.failures ? failed : passed)++;
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
