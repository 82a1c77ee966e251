// qsim_accel: the cycle-level simulator (sim/sim.h) as a SystemC module, so
// the accelerator can sit in a SystemC/TLM-2.0 virtual platform.
//
//   clk   sc_in<bool>                         the accelerator clock (an sc_clock)
//   csr   tlm_utils::simple_target_socket     configuration / start / status registers
//   dram  tlm_utils::simple_initiator_socket  one blocking b_transport per run of a DMA
//                                             transfer's access pattern, real address and bytes
//   done  sc_out<bool>                        high from the end of a run until the next
//                                             START or CLEAR (done_event() fires too)
//
// Register map, timing rules and the choice of how the C model is stepped:
// docs/systemc.md. In short: cycle 0 is the first rising clk edge after a
// START write; the run ends at cycle qs_sim_total_cycles(); every DMA
// transfer is issued to `dram` at the SystemC time of the cycle at which the
// C model gave it the DRAM channel. The C model may run up to quantum()
// cycles ahead of SystemC time; that is invisible to the platform (nothing
// the platform does can change the model's course once started).
// With [dram] model = tlm the DRAM target's annotated delays decide when each
// DMA request completes (loosely timed, temporal decoupling: the model's
// request carries its offset from SystemC time as the annotated delay).
#ifndef QSIM_SC_H
#define QSIM_SC_H

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

extern "C" {
#include "qs_arch.h"
#include "qs_net.h"
#include "qs_prog.h"
#include "sim.h"
}

class qsim_accel;
// The DMA hook given to qs_sim_set_dma_hook (C linkage; internal use).
extern "C" void qsim_accel_dma_hook(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle);
// The memory backend given to qs_sim_set_memory_backend under model = tlm (internal use).
extern "C" uint64_t qsim_accel_mem_request(void *user, uint64_t issue, int is_write, const uint64_t *first,
                                           const uint64_t *count, uint32_t n_runs);

class qsim_accel : public sc_core::sc_module
{
public:
    // CSR offsets (32-bit registers; docs/systemc.md).
    enum : uint32_t {
        REG_CTRL = 0x00,      // W: bit0 START, bit1 CLEAR (done/error)
        REG_STATUS = 0x04,    // R: bit0 BUSY, bit1 DONE, bit2 ERROR
        REG_CYCLES_LO = 0x08, // R: cycles (elapsed while busy, total once done); reading LO latches HI
        REG_CYCLES_HI = 0x0C, // R
        REG_CONFIG = 0x10,    // RW: bit0 engine (0 fast, 1 detailed), applies at the next START
        REG_ERROR = 0x14,     // R: 0, or qs_status of a failed run, or ERR_DRAM
        REG_DMA_COUNT = 0x18, // R: DMA transactions issued in the current/last run
        REG_DMA_RD_LO = 0x1C, // R: bytes read from DRAM (low 32 bits)
        REG_DMA_WR_LO = 0x20, // R: bytes written to DRAM (low 32 bits)
        REG_ID = 0x24,        // R: QSIM_SC_ID
        REG_SPAN = 0x28       // size of the register block
    };
    enum : uint32_t {
        CTRL_START = 1u << 0,
        CTRL_CLEAR = 1u << 1,
        STATUS_BUSY = 1u << 0,
        STATUS_DONE = 1u << 1,
        STATUS_ERROR = 1u << 2,
        CONFIG_DETAILED = 1u << 0,
        ERR_DRAM = 0x100,        // a DRAM transaction came back with a TLM error response
        QSIM_SC_ID = 0x5153494Du // "QSIM"
    };

    sc_core::sc_in<bool> clk;
    sc_core::sc_out<bool> done;
    tlm_utils::simple_target_socket<qsim_accel> csr;
    tlm_utils::simple_initiator_socket<qsim_accel> dram;

    SC_HAS_PROCESS(qsim_accel);

    // Loads the configuration (with optional "section.key=value" overrides)
    // and the network, compiles; owns all three. Throws std::runtime_error
    // with the library's message on failure.
    qsim_accel(sc_core::sc_module_name name, const std::string &arch_cfg, const std::string &net_qbin,
               qs_engine engine = QS_ENGINE_FAST, const std::vector<std::string> &overrides = {});
    // Already loaded and compiled objects; borrowed, they must outlive the module.
    qsim_accel(sc_core::sc_module_name name, const qs_net *net, const qs_prog *prog,
               qs_engine engine = QS_ENGINE_FAST);
    ~qsim_accel() override;

    qsim_accel(const qsim_accel &) = delete;
    qsim_accel &operator=(const qsim_accel &) = delete;

    // How far (cycles) the C model is advanced per step: 1 = one
    // qs_sim_advance per rising clk edge (lockstep); N > 1 = advance N
    // cycles, then wait N clock periods; 0 = the whole run in one step.
    // Observable behaviour (DMA times, done time, registers) is the same for
    // every value. Default: DEFAULT_QUANTUM. Takes effect at the next START.
    static constexpr uint64_t DEFAULT_QUANTUM = 4096;
    void set_quantum(uint64_t cycles) { quantum_ = cycles; }
    uint64_t quantum() const { return quantum_; }

    // Added to every DMA address (the model's DRAM starts at 0). Default 0.
    void set_dram_base(uint64_t base) { dram_base_ = base; }

    // Input activations of layer 0 (CHW) for the following runs; without it
    // the model's deterministic pseudo-random input is used. Throws
    // std::invalid_argument if the values don't fit the input layer.
    void set_input(const std::vector<int32_t> &values);

    // Results and bookkeeping of the current / last run.
    const qs_net *net() const { return net_; }
    const qs_prog *prog() const { return prog_; }
    const qs_sim *sim() const { return sim_; }   // null before the first START
    bool busy() const { return busy_; }
    bool is_done() const { return done_flag_; }
    uint32_t error_code() const { return error_; }
    const std::string &error_message() const { return error_msg_; }
    uint64_t total_cycles() const;
    const int32_t *layer_output(int32_t layer) const;
    sc_core::sc_time clock_period() const { return period_; }
    sc_core::sc_time start_time() const { return t0_; }   // time of cycle 0 (rising edge)
    sc_core::sc_time done_time() const { return t_done_; }
    const sc_core::sc_event &done_event() const { return done_ev_; }
    uint64_t dma_transactions() const { return dma_count_; }
    uint64_t dram_bytes_read() const { return dma_rd_bytes_; }
    uint64_t dram_bytes_written() const { return dma_wr_bytes_; }
    // Transfers issued after their model start cycle because the DRAM
    // target's annotated delays made the channel lag (0 with a fast target,
    // and under model = tlm, where the delays decide the cycles instead).
    uint64_t late_transfers() const { return late_; }
    // 1 when the configuration's [dram] model = tlm: the DRAM target's
    // annotated delays decide when each DMA request completes.
    bool memory_timing() const { return prog_->arch.dram_model == QS_DRAM_TLM; }
    // The DRAM contents a run starts from: the input (set_input's, else the
    // model's pseudo-random one) and every conv/fc weight image at the
    // program's addresses (prog()->dram_bytes bytes; docs/systemc.md,
    // "Payloads"). Load it into the platform's memory before START so that
    // the accelerator's reads return the network's tensors.
    std::vector<unsigned char> dram_image();
    // Read transactions whose returned bytes differed from the bytes the
    // model reads there (the platform's memory does not hold the network's
    // tensors, or something else wrote them) in the current / last run.
    uint64_t read_mismatches() const { return read_mismatch_; }

private:
    struct dma_req {
        bool is_write;
        uint32_t addr, bytes;
        uint64_t start_cycle;
        std::vector<unsigned char> data;   // write: the payload; read: the bytes the model reads there
    };

    void init(qs_engine engine);
    void run_thread();
    void dma_thread();
    void csr_b_transport(tlm::tlm_generic_payload &trans, sc_core::sc_time &delay);
    uint32_t csr_read(uint32_t off, const sc_core::sc_time &at);
    void csr_write(uint32_t off, uint32_t value, const sc_core::sc_time &delay);
    uint64_t cycles_at(const sc_core::sc_time &at) const;
    sc_core::sc_time cycle_time(uint64_t cycle) const { return t0_ + period_ * static_cast<double>(cycle); }
    bool prepare_run();   // (re)create the C simulator for the configured engine
    void finish(uint32_t error, const std::string &msg);
    sc_core::sc_time find_period();

    friend void ::qsim_accel_dma_hook(void *, int, uint32_t, uint32_t, uint64_t);
    friend uint64_t(::qsim_accel_mem_request)(void *, uint64_t, int, const uint64_t *, const uint64_t *, uint32_t);
    void on_dma(bool is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle);
    uint64_t on_mem_request(uint64_t issue, bool is_write, const uint64_t *first, const uint64_t *count,
                            uint32_t n_runs);
    // One DRAM transaction from the calling thread; `delay` in: offset from
    // now at which it starts, out: when it ends. Returns false on an error response.
    bool transact(bool is_write, uint64_t addr, uint32_t bytes, unsigned char *data, sc_core::sc_time &delay);
    std::vector<unsigned char> model_bytes(uint64_t addr, uint32_t bytes);

    // model
    qs_arch arch_{};
    qs_net *owned_net_ = nullptr;
    qs_prog *owned_prog_ = nullptr;
    const qs_net *net_ = nullptr;
    const qs_prog *prog_ = nullptr;
    qs_sim *sim_ = nullptr;
    qs_engine sim_engine_ = QS_ENGINE_FAST;
    std::vector<int32_t> input_;
    bool input_set_ = false;
    uint64_t quantum_ = DEFAULT_QUANTUM;

    // registers / state
    uint32_t config_ = 0;
    bool busy_ = false, done_flag_ = false, start_pending_ = false;
    uint32_t error_ = 0;
    std::string error_msg_;
    uint32_t cycles_hi_latch_ = 0;
    uint64_t total_ = 0;
    sc_core::sc_time period_ = sc_core::SC_ZERO_TIME;
    sc_core::sc_time t0_ = sc_core::SC_ZERO_TIME, t_done_ = sc_core::SC_ZERO_TIME;
    bool running_ = false;   // between cycle 0 and the end of the run

    // DMA
    std::deque<dma_req> dma_q_;
    std::vector<unsigned char> dma_buf_;
    tlm::tlm_generic_payload dma_gp_;
    bool dma_active_ = false;
    uint64_t dma_count_ = 0, dma_rd_bytes_ = 0, dma_wr_bytes_ = 0, late_ = 0, read_mismatch_ = 0;
    std::vector<unsigned char> mem_buf_;   // model = tlm: one run's bytes
    bool dram_error_ = false;
    std::string dram_error_msg_;
    uint64_t dram_base_ = 0;

    sc_core::sc_event start_ev_, dma_ev_, dma_idle_ev_, done_ev_, done_write_ev_;
    bool done_out_value_ = false;
    void done_driver();
};

#endif
