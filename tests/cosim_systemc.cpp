// SystemC co-simulation: the Verilated MAC array as an SC_MODULE (Verilator
// --sc), clocked by an sc_clock, beside the C model sim/pe_array.c; a checker
// thread feeds both the same random edge stream and compares every clock.
//
//   qs_cosim_sc [CYCLES [SEED]]      (QSIM_COSIM_SEED / QSIM_COSIM_CYCLES too)
//
// Timing: the checker acts on the falling edge. At falling edge n it reads
// what the array registered at rising edge n (the result of the inputs it
// drove at falling edge n-1), compares that with the C model ticked with the
// same inputs, then drives the next inputs. Driving and sampling half a
// clock away from the active edge keeps the test free of delta-cycle races.
//
// The configuration comes from rtl/CMakeLists.txt (QS_SC_* definitions, the
// same values it passes to Verilator as -G parameters).
#include <systemc.h>

#include <chrono>
#include <cinttypes>
#include <cstdlib>
#include <string>
#include <vector>

#include "Vsc_pe_array.h"
#include "qs_cosim.h"

using namespace qs_cosim;

namespace {

constexpr int R = QS_SC_ROWS, C = QS_SC_COLS, OPW = QS_SC_OPW, SHW = QS_SC_SHW, ACCW = QS_SC_ACCW;
constexpr int N = R * C;
constexpr int clog2(int v)
{
    int b = 0;
    while ((1 << b) < v) b++;
    return b;
}
constexpr int CNTW = clog2(N + 1);
static_assert(R >= 2 && C >= 2 && CNTW >= 2, "with --pins-bv 2 every vector port must be 2+ bits");

template <int W>
sc_bv<W> to_bv(const std::vector<uint32_t> &w)
{
    sc_bv<W> b;
    for (int i = 0; i < (W + 31) / 32; i++) b.set_word(i, w[i]);
    return b;
}
template <int W>
void from_bv(const sc_bv<W> &b, std::vector<uint32_t> &w)
{
    for (int i = 0; i < (W + 31) / 32; i++) w[i] = b.get_word(i);
}

SC_MODULE(Checker)
{
    sc_in<bool> clk;
    sc_out<bool> rst, clear, load;
    sc_out<sc_bv<R * OPW>> west;
    sc_out<sc_bv<R>> west_valid;
    sc_out<sc_bv<R * SHW>> west_shift;
    sc_out<sc_bv<C * OPW>> north;
    sc_out<sc_bv<C>> north_valid;
    sc_out<sc_bv<C * SHW>> north_shift;
    sc_in<sc_bv<C * ACCW>> south;
    sc_in<sc_bv<C>> south_valid;
    sc_in<sc_bv<N * ACCW>> acc_flat;
    sc_in<sc_bv<N>> acc_valid_flat;
    sc_in<sc_bv<N * OPW>> stat_flat;
    sc_in<sc_bv<CNTW>> active_cnt, gated_cnt, ovf_cnt;

    Variant v;
    uint64_t seed = 1, cycles = 0, done = 0;
    int failed = 0;

    SC_CTOR(Checker)
    {
        v = Variant{"sc", R, C, QS_SC_DF, OPW, QS_SC_WPB, SHW, ACCW, QS_SC_SAT, QS_SC_GATE, 0};
        SC_THREAD(run);
    }

    void drive(const PackedIn &p)
    {
        west.write(to_bv<R * OPW>(p.west));
        west_valid.write(to_bv<R>(p.west_valid));
        west_shift.write(to_bv<R * SHW>(p.west_shift));
        north.write(to_bv<C * OPW>(p.north));
        north_valid.write(to_bv<C>(p.north_valid));
        north_shift.write(to_bv<C * SHW>(p.north_shift));
        clear.write(p.clear != 0);
        load.write(p.load != 0);
    }

    void sample(PackedOut &o)
    {
        from_bv<C * ACCW>(south.read(), o.south);
        from_bv<C>(south_valid.read(), o.south_valid);
        from_bv<N * ACCW>(acc_flat.read(), o.acc);
        from_bv<N>(acc_valid_flat.read(), o.accv);
        from_bv<N * OPW>(stat_flat.read(), o.stat);
        o.active = (uint32_t)active_cnt.read().to_uint();
        o.gated = (uint32_t)gated_cnt.read().to_uint();
        o.overflows = (uint32_t)ovf_cnt.read().to_uint();
    }

    void run()
    {
        Stimulus st(v, seed);
        Reference ref;
        Edge e;
        PackedIn pin;
        PackedOut pout;
        Observed obs;
        pout.size_for(v);
        e.resize(R, C);
        pack_edge(v, e, pin);
        drive(pin);
        bool pending = false; // inputs driven last falling edge, not yet checked
        bool in_reset = false;
        uint64_t episodes = 0;
        std::string desc;
        while (done < cycles) {
            wait(clk.negedge_event());
            if (pending) {
                sample(pout);
                unpack_out(v, pout, obs);
                std::string diff = compare(v, ref, obs);
                if (!diff.empty()) {
                    printf("MISMATCH (SystemC) seed %" PRIu64 " at operand cycle %" PRIu64 ", %s: %s\n%s",
                           seed, done, sc_time_stamp().to_string().c_str(), desc.c_str(), diff.c_str());
                    failed = 1;
                    sc_stop();
                    return;
                }
                done++;
                pending = false;
            }
            if (in_reset) {
                rst.write(false);
                in_reset = false;
            }
            if (!st.next(e)) {
                const EpisodeDesc &d = st.new_episode();
                episodes++;
                desc = d.describe();
                if (d.reset) {
                    std::string msg;
                    if (!ref.setup(v, d.r, d.c, &msg)) {
                        fprintf(stderr, "qs_cosim_sc: %s\n", msg.c_str());
                        failed = 1;
                        sc_stop();
                        return;
                    }
                    ref.reset();
                    // One clock of synchronous reset before the episode.
                    rst.write(true);
                    in_reset = true;
                    continue;
                }
                st.next(e);
            }
            ref.tick(e);
            pack_edge(v, e, pin);
            drive(pin);
            pending = true;
        }
        printf("SystemC co-simulation: %" PRIu64 " cycles in %" PRIu64 " episodes agree (seed %" PRIu64
               ", %s)\n",
               done, episodes, seed, sc_time_stamp().to_string().c_str());
        sc_stop();
    }
};

} // namespace

int sc_main(int argc, char **argv)
{
    uint64_t cycles = 20000, seed;
    if (argc > 1) cycles = strtoull(argv[1], nullptr, 0);
    if (const char *s = getenv("QSIM_COSIM_CYCLES")) cycles = strtoull(s, nullptr, 0);
    if (argc > 2)
        seed = strtoull(argv[2], nullptr, 0);
    else if (const char *s = getenv("QSIM_COSIM_SEED"))
        seed = strtoull(s, nullptr, 0);
    else
        seed = (uint64_t)std::chrono::system_clock::now().time_since_epoch().count();
    printf("qs_cosim_sc: %dx%d %s acc %d %s gate %d, seed %" PRIu64 ", %" PRIu64 " cycles\n", R, C,
           df_name(QS_SC_DF), ACCW, QS_SC_SAT ? "saturate" : "wrap", QS_SC_GATE, seed, cycles);

    sc_clock clk("clk", 10, SC_NS);
    sc_signal<bool> rst, clear, load;
    sc_signal<sc_bv<R * OPW>> west;
    sc_signal<sc_bv<R>> west_valid;
    sc_signal<sc_bv<R * SHW>> west_shift;
    sc_signal<sc_bv<C * OPW>> north;
    sc_signal<sc_bv<C>> north_valid;
    sc_signal<sc_bv<C * SHW>> north_shift;
    sc_signal<sc_bv<C>> north_offset; // no lookahead: one index bit per column, never read, held at 0
    sc_signal<sc_bv<C * ACCW>> south;
    sc_signal<sc_bv<C>> south_valid;
    sc_signal<sc_bv<N * ACCW>> acc_flat;
    sc_signal<sc_bv<N>> acc_valid_flat;
    sc_signal<sc_bv<N * OPW>> stat_flat;
    sc_signal<sc_bv<CNTW>> active_cnt, gated_cnt, ovf_cnt;
    // The word observation ports (OBS=1, rtl/README.md): this bench reads the
    // flattened ones (OBS=0, the words tied to 0), but SystemC needs every
    // port bound.
    sc_signal<sc_bv<32>> acc_w[N], stat_w[N], south_w[C];
    sc_signal<sc_bv<8>> acc_v_w[N], south_v_w[C];

    Vsc_pe_array top("top");
    top.clk(clk);
    top.rst(rst);
    top.clear(clear);
    top.load(load);
    top.west(west);
    top.west_valid(west_valid);
    top.west_shift(west_shift);
    top.north(north);
    top.north_valid(north_valid);
    top.north_shift(north_shift);
    top.north_offset(north_offset);
    top.south(south);
    top.south_valid(south_valid);
    top.acc_flat(acc_flat);
    top.acc_valid_flat(acc_valid_flat);
    top.stat_flat(stat_flat);
    top.active_cnt(active_cnt);
    top.gated_cnt(gated_cnt);
    top.ovf_cnt(ovf_cnt);
    for (int k = 0; k < N; k++) {
        top.acc_w[k](acc_w[k]);
        top.acc_v_w[k](acc_v_w[k]);
        top.stat_w[k](stat_w[k]);
    }
    for (int j = 0; j < C; j++) {
        top.south_w[j](south_w[j]);
        top.south_v_w[j](south_v_w[j]);
    }

    Checker chk("checker");
    chk.seed = seed;
    chk.cycles = cycles;
    chk.clk(clk);
    chk.rst(rst);
    chk.clear(clear);
    chk.load(load);
    chk.west(west);
    chk.west_valid(west_valid);
    chk.west_shift(west_shift);
    chk.north(north);
    chk.north_valid(north_valid);
    chk.north_shift(north_shift);
    chk.south(south);
    chk.south_valid(south_valid);
    chk.acc_flat(acc_flat);
    chk.acc_valid_flat(acc_valid_flat);
    chk.stat_flat(stat_flat);
    chk.active_cnt(active_cnt);
    chk.gated_cnt(gated_cnt);
    chk.ovf_cnt(ovf_cnt);

    sc_start();
    top.final();
    if (chk.failed || chk.done < cycles) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("1 passed, 0 failed\n");
    return 0;
}
