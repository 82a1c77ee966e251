// qsim_accel: see qsim_sc.h and docs/systemc.md.
#include "qsim_sc.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

extern "C" {
#include "compiler.h"
}

using sc_core::sc_time;
using sc_core::SC_ZERO_TIME;

// The C model's DMA hook. It runs inside qs_sim_advance, i.e. on the stack
// of run_thread: it only queues the transfer; dma_thread issues it.
extern "C" void qsim_accel_dma_hook(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle)
{
    try {
        static_cast<qsim_accel *>(user)->on_dma(is_write != 0, addr, bytes, start_cycle);
    } catch (...) {
        // no exception may cross the C frames; a lost transfer shows in the
        // counters (and std::bad_alloc here means the host is out of memory)
    }
}

// The memory backend under [dram] model = tlm. It runs inside qs_sim_advance
// (on run_thread's stack) and issues the request's transactions right away,
// loosely timed: each carries its start as an offset from SystemC time.
extern "C" uint64_t qsim_accel_mem_request(void *user, uint64_t issue, int is_write, const uint64_t *first,
                                           const uint64_t *count, uint32_t n_runs)
{
    try {
        return static_cast<qsim_accel *>(user)->on_mem_request(issue, is_write != 0, first, count, n_runs);
    } catch (...) {
        return issue;   // no exception may cross the C frames (std::bad_alloc: the host is out of memory)
    }
}

namespace {

std::string msg_of(const char *what, const qs_error &e)
{
    return std::string(what) + ": " + e.msg;
}

} // namespace

qsim_accel::qsim_accel(sc_core::sc_module_name name, const std::string &arch_cfg, const std::string &net_qbin,
                       qs_engine engine, const std::vector<std::string> &overrides)
    : sc_module(name), clk("clk"), done("done"), csr("csr"), dram("dram")
{
    qs_error e{};
    std::vector<const char *> ov;
    for (const auto &s : overrides) ov.push_back(s.c_str());
    if (qs_arch_load(arch_cfg.c_str(), ov.data(), static_cast<int>(ov.size()), &arch_, &e))
        throw std::runtime_error(msg_of("qsim_accel: configuration", e));
    if (qs_net_load(net_qbin.c_str(), &owned_net_, &e))
        throw std::runtime_error(msg_of("qsim_accel: network", e));
    if (qs_compile(owned_net_, &arch_, &owned_prog_, &e)) {
        qs_net_destroy(owned_net_);
        owned_net_ = nullptr;
        throw std::runtime_error(msg_of("qsim_accel: compile", e));
    }
    net_ = owned_net_;
    prog_ = owned_prog_;
    init(engine);
}

qsim_accel::qsim_accel(sc_core::sc_module_name name, const qs_net *net, const qs_prog *prog, qs_engine engine)
    : sc_module(name), clk("clk"), done("done"), csr("csr"), dram("dram"), net_(net), prog_(prog)
{
    if (!net || !prog) throw std::invalid_argument("qsim_accel: null network or program");
    arch_ = prog->arch;
    init(engine);
}

void qsim_accel::init(qs_engine engine)
{
    sim_engine_ = engine;
    config_ = engine == QS_ENGINE_DETAILED ? static_cast<uint32_t>(CONFIG_DETAILED) : 0u;
    csr.register_b_transport(this, &qsim_accel::csr_b_transport);
    SC_THREAD(run_thread);
    SC_THREAD(dma_thread);
    SC_METHOD(done_driver);
    sensitive << done_write_ev_;
    dont_initialize();
}

qsim_accel::~qsim_accel()
{
    qs_sim_destroy(sim_);
    if (owned_prog_) qs_prog_destroy(owned_prog_);
    if (owned_net_) qs_net_destroy(owned_net_);
}

void qsim_accel::set_input(const std::vector<int32_t> &values)
{
    // Checked now, against a scratch simulator if none exists yet, so that
    // a bad input fails here rather than at START.
    qs_error e{};
    qs_sim *probe = sim_;
    if (!probe && qs_sim_create(net_, prog_, QS_ENGINE_FAST, &probe, &e))
        throw std::runtime_error(msg_of("qsim_accel: simulator", e));
    qs_status st = qs_sim_set_input(probe, values.data(), static_cast<int64_t>(values.size()), &e);
    if (probe != sim_) qs_sim_destroy(probe);
    if (st) throw std::invalid_argument(msg_of("qsim_accel: input", e));
    input_ = values;
    input_set_ = true;
}

uint64_t qsim_accel::total_cycles() const { return done_flag_ ? total_ : 0; }

const int32_t *qsim_accel::layer_output(int32_t layer) const
{
    if (!sim_ || layer < 0 || layer >= net_->n_layers) return nullptr;
    return qs_sim_layer_output(sim_, layer);
}

// ---- the run -------------------------------------------------------------------

sc_time qsim_accel::find_period()
{
    if (auto *c = dynamic_cast<sc_core::sc_clock *>(clk.get_interface())) return c->period();
    // Some other clock source: measure one period (assumed constant).
    wait(clk.posedge_event());
    sc_time a = sc_core::sc_time_stamp();
    wait(clk.posedge_event());
    return sc_core::sc_time_stamp() - a;
}

bool qsim_accel::prepare_run()
{
    qs_engine want = (config_ & CONFIG_DETAILED) ? QS_ENGINE_DETAILED : QS_ENGINE_FAST;
    qs_error e{};
    if (!sim_ || want != sim_engine_) {
        qs_sim_destroy(sim_);
        sim_ = nullptr;
        qs_status st = qs_sim_create(net_, prog_, want, &sim_, &e);
        if (st) {
            finish(st, msg_of("qs_sim_create", e));
            return false;
        }
        sim_engine_ = want;
        if (memory_timing()) {
            const qs_mem_backend b = {qsim_accel_mem_request, this};
            qs_sim_set_memory_backend(sim_, &b);
        } else {
            qs_sim_set_dma_hook(sim_, qsim_accel_dma_hook, this);
        }
        if (input_set_) {
            st = qs_sim_set_input(sim_, input_.data(), static_cast<int64_t>(input_.size()), &e);
            if (st) {
                finish(st, msg_of("qs_sim_set_input", e));
                return false;
            }
        }
    }
    return true;
}

void qsim_accel::run_thread()
{
    for (;;) {
        while (!start_pending_) wait(start_ev_);
        start_pending_ = false;
        const sc_time t_start = sc_core::sc_time_stamp();
        if (period_ == SC_ZERO_TIME) period_ = find_period();
        if (period_ == SC_ZERO_TIME) {
            finish(QS_ERR_ARG, "clk has a zero period");
            continue;
        }
        if (!prepare_run()) continue;
        const uint64_t q = quantum_;
        qs_error e{};
        int fin = 0;

        // Cycle 0: the first rising edge strictly after START, whichever
        // delta of the same time step the clock's edge was notified in.
        do
            wait(clk.posedge_event());
        while (sc_core::sc_time_stamp() == t_start);
        t0_ = sc_core::sc_time_stamp();
        running_ = true;
        qs_status st = qs_sim_start(sim_, &e);
        uint64_t cur = 0;
        while (!st) {
            uint64_t until = q == 0 ? UINT64_MAX : (cur > UINT64_MAX - q ? UINT64_MAX : cur + q);
            st = qs_sim_advance(sim_, until, &fin, &e);
            if (st || fin) break;
            if (q == 1) {
                wait(clk.posedge_event());
            } else {
                wait(sc_time::from_value(period_.value() * (until - cur)));
            }
            cur = until;
        }
        // Cycle at which the run ended (or failed): the model may be ahead
        // of SystemC time by up to one quantum; catch up.
        total_ = st ? qs_sim_now(sim_) : qs_sim_total_cycles(sim_);
        sc_time end = cycle_time(total_);
        if (end > sc_core::sc_time_stamp()) wait(end - sc_core::sc_time_stamp());
        // Transfers still queued or in flight (only if the DRAM target is
        // slower than the model's DRAM channel) complete before done.
        while (dma_active_ || !dma_q_.empty()) wait(dma_idle_ev_);
        if (st)
            finish(st, msg_of("qs_sim_advance", e));
        else if (dram_error_)
            finish(ERR_DRAM, dram_error_msg_);
        else
            finish(0, "");
    }
}

void qsim_accel::finish(uint32_t error, const std::string &msg)
{
    running_ = false;
    busy_ = false;
    done_flag_ = true;
    error_ = error;
    error_msg_ = msg;
    t_done_ = sc_core::sc_time_stamp();
    if (error) SC_REPORT_WARNING(name(), ("run failed: " + msg).c_str());
    done_out_value_ = true;
    done_write_ev_.notify(SC_ZERO_TIME);
    done_ev_.notify(SC_ZERO_TIME);
}

void qsim_accel::done_driver() { done.write(done_out_value_); }

// ---- DMA -------------------------------------------------------------------------

std::vector<unsigned char> qsim_accel::model_bytes(uint64_t addr, uint32_t bytes)
{
    std::vector<unsigned char> v(bytes);
    qs_error e{};
    if (bytes && qs_sim_read_dram(sim_, addr, v.data(), bytes, &e) && !dram_error_) {
        dram_error_ = true;
        dram_error_msg_ = msg_of("qs_sim_read_dram", e);
    }
    return v;
}

std::vector<unsigned char> qsim_accel::dram_image()
{
    qs_error e{};
    qs_sim *probe = sim_;
    if (!probe && qs_sim_create(net_, prog_, QS_ENGINE_FAST, &probe, &e))
        throw std::runtime_error(msg_of("qsim_accel: simulator", e));
    std::vector<unsigned char> img(prog_->dram_bytes);
    qs_status st = QS_OK;
    if (input_set_) st = qs_sim_set_input(probe, input_.data(), static_cast<int64_t>(input_.size()), &e);
    // only the input and the weights: the layer outputs are the run's to write
    for (int32_t li = 0; li < net_->n_layers && !st; li++) {
        const qs_layer_map &m = prog_->maps[li];
        uint64_t a = 0, n = 0;
        if (li == 0) {
            const qs_layer &L = net_->layers[0];
            a = m.out_addr;
            n = ((uint64_t)L.out_c * L.out_h * L.out_w * L.out_bits + 7) / 8;
        } else if (m.is_gemm && !m.is_matmul && m.weight_bytes > 0) {
            a = m.weight_addr;
            n = (uint64_t)m.weight_bytes;
        }
        if (n) st = qs_sim_read_dram(probe, a, img.data() + a, n, &e);
    }
    if (probe != sim_) qs_sim_destroy(probe);
    if (st) throw std::runtime_error(msg_of("qsim_accel: DRAM image", e));
    return img;
}

void qsim_accel::on_dma(bool is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle)
{
    // The bytes as the model holds them now: a store's payload, or what a
    // load should find (the transaction goes out later, at start_cycle).
    dma_q_.push_back(dma_req{is_write, addr, bytes, start_cycle, model_bytes(addr, bytes)});
    dma_ev_.notify(SC_ZERO_TIME);
}

bool qsim_accel::transact(bool is_write, uint64_t addr, uint32_t bytes, unsigned char *data, sc_time &delay)
{
    tlm::tlm_generic_payload &gp = dma_gp_;
    gp.set_command(is_write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    gp.set_address(dram_base_ + addr);
    gp.set_data_ptr(data);
    gp.set_data_length(bytes);
    gp.set_streaming_width(bytes);
    gp.set_byte_enable_ptr(nullptr);
    gp.set_byte_enable_length(0);
    gp.set_dmi_allowed(false);
    gp.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    dram->b_transport(gp, delay);
    dma_count_++;
    if (gp.is_response_error()) {
        if (!dram_error_) {
            char b[160];
            std::snprintf(b, sizeof b, "DRAM %s of %u bytes at 0x%llx: %s", is_write ? "write" : "read", bytes,
                          static_cast<unsigned long long>(dram_base_ + addr), gp.get_response_string().c_str());
            dram_error_msg_ = b;
        }
        dram_error_ = true;
        return false;
    }
    (is_write ? dma_wr_bytes_ : dma_rd_bytes_) += bytes;
    return true;
}

uint64_t qsim_accel::on_mem_request(uint64_t issue, bool is_write, const uint64_t *first, const uint64_t *count,
                                    uint32_t n_runs)
{
    // The runs go out back to back: each starts when the target says the
    // previous one ended (its annotated delay, plus any time it waited).
    sc_time t = cycle_time(issue);
    for (uint32_t i = 0; i < n_runs; i++) {
        if (!count[i]) continue;
        const uint32_t n = static_cast<uint32_t>(count[i]);
        std::vector<unsigned char> want = model_bytes(first[i], n);
        if (is_write)
            mem_buf_ = want;
        else
            mem_buf_.assign(n, 0);
        const sc_time now = sc_core::sc_time_stamp();
        if (t < now) {   // the target waited inside an earlier transaction: it starts now
            late_++;
            t = now;
        }
        sc_time delay = t - now;
        if (transact(is_write, first[i], n, mem_buf_.data(), delay) && !is_write && mem_buf_ != want)
            read_mismatch_++;
        t = sc_core::sc_time_stamp() + delay;
    }
    // completion: the first clock edge at or after the last transaction's end
    const uint64_t span = (t - t0_).value(), p = period_.value();
    const uint64_t done = span / p + (span % p != 0);
    return done > issue ? done : issue;
}

void qsim_accel::dma_thread()
{
    // A member, not a local: a thread's stack is never unwound at the end of
    // the simulation, and the payload owns heap memory (its extension array).
    for (;;) {
        if (dma_q_.empty()) {
            dma_active_ = false;
            dma_idle_ev_.notify(SC_ZERO_TIME);
            wait(dma_ev_);
            continue;
        }
        dma_active_ = true;
        dma_req r = std::move(dma_q_.front());
        dma_q_.pop_front();
        if (r.bytes == 0) continue;   // nothing moves: no transaction
        sc_time when = cycle_time(r.start_cycle), now = sc_core::sc_time_stamp();
        if (when > now)
            wait(when - now);
        else if (when < now)
            late_++;
        // Writes carry the model's output bytes; reads land in a scratch
        // buffer and are compared with what the model reads there (the
        // model computes on its own copy: docs/systemc.md, "Payloads").
        if (r.is_write)
            dma_buf_ = r.data;
        else
            dma_buf_.assign(r.bytes, 0);
        sc_time delay = SC_ZERO_TIME;
        if (transact(r.is_write, r.addr, r.bytes, dma_buf_.data(), delay) && !r.is_write && dma_buf_ != r.data)
            read_mismatch_++;
        // The channel is busy for the target's annotated time.
        if (delay > SC_ZERO_TIME) wait(delay);
    }
}

// ---- registers -----------------------------------------------------------------------

uint64_t qsim_accel::cycles_at(const sc_time &at) const
{
    if (done_flag_) return total_;
    if (!running_ || at < t0_ || period_ == SC_ZERO_TIME) return 0;
    uint64_t c = (at.value() - t0_.value()) / period_.value();
    return c;
}

uint32_t qsim_accel::csr_read(uint32_t off, const sc_time &at)
{
    switch (off) {
    case REG_STATUS:
        return (busy_ ? STATUS_BUSY : 0u) | (done_flag_ ? STATUS_DONE : 0u) | (done_flag_ && error_ ? STATUS_ERROR : 0u);
    case REG_CYCLES_LO: {
        uint64_t c = cycles_at(at);
        cycles_hi_latch_ = static_cast<uint32_t>(c >> 32);
        return static_cast<uint32_t>(c);
    }
    case REG_CYCLES_HI: return cycles_hi_latch_;
    case REG_CONFIG: return config_;
    case REG_ERROR: return error_;
    case REG_DMA_COUNT: return static_cast<uint32_t>(dma_count_);
    case REG_DMA_RD_LO: return static_cast<uint32_t>(dma_rd_bytes_);
    case REG_DMA_WR_LO: return static_cast<uint32_t>(dma_wr_bytes_);
    case REG_ID: return QSIM_SC_ID;
    default: return 0;   // CTRL reads as 0
    }
}

void qsim_accel::csr_write(uint32_t off, uint32_t value, const sc_time &delay)
{
    switch (off) {
    case REG_CTRL:
        if (value & CTRL_CLEAR && !busy_) {
            done_flag_ = false;
            error_ = 0;
            error_msg_.clear();
            done_out_value_ = false;
            done_write_ev_.notify(delay);
        }
        if (value & CTRL_START && !busy_) {   // START while busy is ignored
            busy_ = true;
            done_flag_ = false;
            error_ = 0;
            error_msg_.clear();
            dram_error_ = false;
            dram_error_msg_.clear();
            dma_count_ = dma_rd_bytes_ = dma_wr_bytes_ = late_ = read_mismatch_ = 0;
            total_ = 0;
            start_pending_ = true;
            done_out_value_ = false;
            done_write_ev_.notify(delay);
            start_ev_.notify(delay);
        }
        break;
    case REG_CONFIG: config_ = value & CONFIG_DETAILED; break;
    default: break;   // read-only registers ignore writes
    }
}

void qsim_accel::csr_b_transport(tlm::tlm_generic_payload &trans, sc_time &delay)
{
    const uint64_t addr = trans.get_address();
    const unsigned len = trans.get_data_length();
    unsigned char *ptr = trans.get_data_ptr();
    if (trans.get_byte_enable_ptr()) {
        trans.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
        return;
    }
    if (len == 0 || len % 4 || addr % 4 || trans.get_streaming_width() < len) {
        trans.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    if (addr >= REG_SPAN || len > REG_SPAN - addr) {
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    const tlm::tlm_command cmd = trans.get_command();
    // A loosely-timed initiator's access takes effect at now + delay.
    const sc_time at = sc_core::sc_time_stamp() + delay;
    for (unsigned i = 0; i < len; i += 4) {
        uint32_t off = static_cast<uint32_t>(addr) + i, v;
        if (cmd == tlm::TLM_READ_COMMAND) {
            v = csr_read(off, at);
            std::memcpy(ptr + i, &v, 4);   // host byte order, as TLM-2.0 requires
        } else if (cmd == tlm::TLM_WRITE_COMMAND) {
            std::memcpy(&v, ptr + i, 4);
            csr_write(off, v, delay);
        }
    }
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
}
