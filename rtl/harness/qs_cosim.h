// Shared pieces of the RTL-vs-C-model co-simulation test benches
// (tests/cosim_pe_array.cpp for plain Verilator, tests/cosim_systemc.cpp for
// the SystemC one): the random operand streams, the C reference wrapper, the
// bit packing of flattened ports and the per-clock comparison.
//
// Both sides see exactly the same edge inputs every clock. The RTL is built
// at a fixed ROWS x COLS; a run may use only its top-left r x c corner as an
// r x c array: the rows and columns outside get invalid operands (with
// garbage values, to show they do not leak in), so they never add anything
// and the event counts of the whole RTL array equal those of the r x c
// C model. The south edge of an r x c corner is row r-1's partial-sum
// register, which the RTL exposes in acc_flat/acc_valid_flat.
#ifndef QS_COSIM_H
#define QS_COSIM_H

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "pe_array.h"
}

namespace qs_cosim {

// One Verilated configuration: the RTL parameters it was built with.
struct Variant {
    const char *name;
    int rows, cols, dataflow, op_w, wpb, shift_w, acc_w, saturate, gate;
    int lookahead; // OS: H > 0: a window of H+1 activations per row, a window index per weight
};

// Bits of the RTL's window index port per column (qs_pe_array's OFF_W).
static inline int offset_width(const Variant &v)
{
    int b = 0;
    while ((1 << b) < v.lookahead + 1) b++;
    return b < 1 ? 1 : b;
}

static inline const char *df_name(int df)
{
    return df == QS_DF_OS ? "OS" : df == QS_DF_WS ? "WS" : "IS";
}

// splitmix64: small, fast, and every seed gives a good stream.
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next()
    {
        uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [lo, hi].
    int64_t range(int64_t lo, int64_t hi) { return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1)); }
    bool chance(double p) { return (double)(next() >> 11) * (1.0 / 9007199254740992.0) < p; }

private:
    uint64_t s_;
};

// One clock's edge inputs at the RTL's full size (rows/cols of the variant).
// With lookahead H, west and west_valid hold H+1 entries per row (row i's
// entry w at i*(H+1)+w) once Stimulus::next() has widened them.
struct Edge {
    std::vector<int32_t> west, north;
    std::vector<uint8_t> west_valid, west_shift, north_valid, north_shift, north_offset;
    uint8_t clear = 0, load = 0;
    void resize(int rows, int cols)
    {
        west.assign(rows, 0);
        west_valid.assign(rows, 0);
        west_shift.assign(rows, 0);
        north.assign(cols, 0);
        north_valid.assign(cols, 0);
        north_shift.assign(cols, 0);
        north_offset.assign(cols, 0);
    }
};

// What the RTL shows after a clock edge, unpacked (full RTL size).
struct Observed {
    std::vector<int32_t> acc, stat, south;
    std::vector<uint8_t> accv, south_valid;
    uint32_t active = 0, gated = 0, overflows = 0;
    void resize(int rows, int cols)
    {
        acc.assign((size_t)rows * cols, 0);
        stat.assign((size_t)rows * cols, 0);
        accv.assign((size_t)rows * cols, 0);
        south.assign(cols, 0);
        south_valid.assign(cols, 0);
    }
};

// ---- bit packing of flattened ports: element k of width w at bit k*w ----

static inline void put_bits(uint32_t *w, unsigned lsb, unsigned width, uint64_t v)
{
    for (unsigned b = 0; b < width;) {
        unsigned word = (lsb + b) / 32, off = (lsb + b) % 32;
        unsigned n = 32 - off < width - b ? 32 - off : width - b;
        uint32_t mask = (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1u)) << off;
        w[word] = (w[word] & ~mask) | ((uint32_t)(v >> b) << off & mask);
        b += n;
    }
}

static inline uint64_t get_bits(const uint32_t *w, unsigned lsb, unsigned width)
{
    uint64_t v = 0;
    for (unsigned b = 0; b < width;) {
        unsigned word = (lsb + b) / 32, off = (lsb + b) % 32;
        unsigned n = 32 - off < width - b ? 32 - off : width - b;
        uint64_t part = (w[word] >> off) & (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1u));
        v |= part << b;
        b += n;
    }
    return v;
}

static inline int32_t sext(uint64_t v, unsigned width)
{
    uint64_t m = 1ull << (width - 1);
    v &= (width == 64 ? ~0ull : (1ull << width) - 1);
    return (int32_t)(int64_t)((v ^ m) - m);
}

// Input ports as packed words, in the order of qs_pe_array's ports.
struct PackedIn {
    std::vector<uint32_t> west, west_valid, west_shift, north, north_valid, north_shift, north_offset;
    uint8_t clear = 0, load = 0;
};

static inline size_t words_for(size_t bits) { return (bits + 31) / 32 + 2; }

static inline void pack_edge(const Variant &v, const Edge &e, PackedIn &p)
{
    const int W = v.lookahead + 1, ow = offset_width(v);
    p.west.assign(words_for((size_t)v.rows * W * v.op_w), 0);
    p.west_valid.assign(words_for((size_t)v.rows * W), 0);
    p.north_offset.assign(words_for((size_t)v.cols * ow), 0);
    p.west_shift.assign(words_for((size_t)v.rows * v.shift_w), 0);
    p.north.assign(words_for((size_t)v.cols * v.op_w), 0);
    p.north_valid.assign(words_for(v.cols), 0);
    p.north_shift.assign(words_for((size_t)v.cols * v.shift_w), 0);
    for (int k = 0; k < v.rows * W; k++) {
        put_bits(p.west.data(), k * v.op_w, v.op_w, (uint64_t)(int64_t)e.west[k]);
        put_bits(p.west_valid.data(), k, 1, e.west_valid[k]);
    }
    for (int i = 0; i < v.rows; i++) put_bits(p.west_shift.data(), i * v.shift_w, v.shift_w, e.west_shift[i]);
    for (int j = 0; j < v.cols; j++) {
        put_bits(p.north.data(), j * v.op_w, v.op_w, (uint64_t)(int64_t)e.north[j]);
        put_bits(p.north_valid.data(), j, 1, e.north_valid[j]);
        put_bits(p.north_shift.data(), j * v.shift_w, v.shift_w, e.north_shift[j]);
        put_bits(p.north_offset.data(), j * ow, ow, e.north_offset[j]);
    }
    p.clear = e.clear;
    p.load = e.load;
}

// Output ports as packed words.
struct PackedOut {
    std::vector<uint32_t> south, south_valid, acc, accv, stat;
    uint32_t active = 0, gated = 0, overflows = 0;
    void size_for(const Variant &v)
    {
        size_t n = (size_t)v.rows * v.cols;
        south.assign(words_for((size_t)v.cols * v.acc_w), 0);
        south_valid.assign(words_for(v.cols), 0);
        acc.assign(words_for(n * v.acc_w), 0);
        accv.assign(words_for(n), 0);
        stat.assign(words_for(n * v.op_w), 0);
    }
};

static inline void unpack_out(const Variant &v, const PackedOut &p, Observed &o)
{
    size_t n = (size_t)v.rows * v.cols;
    o.resize(v.rows, v.cols);
    for (size_t k = 0; k < n; k++) {
        o.acc[k] = sext(get_bits(p.acc.data(), (unsigned)(k * v.acc_w), v.acc_w), v.acc_w);
        o.accv[k] = (uint8_t)get_bits(p.accv.data(), (unsigned)k, 1);
        o.stat[k] = sext(get_bits(p.stat.data(), (unsigned)(k * v.op_w), v.op_w), v.op_w);
    }
    for (int j = 0; j < v.cols; j++) {
        o.south[j] = sext(get_bits(p.south.data(), j * v.acc_w, v.acc_w), v.acc_w);
        o.south_valid[j] = (uint8_t)get_bits(p.south_valid.data(), j, 1);
    }
    o.active = p.active;
    o.gated = p.gated;
    o.overflows = p.overflows;
}

// ---- the C reference, sized to the r x c corner under test ----

class Reference {
public:
    Reference() = default;
    Reference(const Reference &) = delete;
    Reference &operator=(const Reference &) = delete;
    ~Reference() { qs_pe_array_destroy(a_); }

    // (Re)create at r x c; returns false with a message on failure.
    bool setup(const Variant &v, int r, int c, std::string *msg)
    {
        qs_pe_array_destroy(a_);
        a_ = nullptr;
        cfg_.rows = r;
        cfg_.cols = c;
        cfg_.dataflow = (qs_dataflow)v.dataflow;
        cfg_.weight_path_bits = v.wpb;
        cfg_.acc_bits = v.acc_w;
        cfg_.overflow = v.saturate ? QS_OVF_SATURATE : QS_OVF_WRAP;
        cfg_.gate = v.gate;
        cfg_.lookahead = v.lookahead;
        qs_error err;
        err.msg[0] = 0;
        if (qs_pe_array_create(&cfg_, &a_, &err) != QS_OK) {
            if (msg) *msg = err.msg;
            return false;
        }
        south_.assign(c, 0);
        south_valid_.assign(c, 0);
        return true;
    }
    void reset() { qs_pe_array_reset(a_); }
    void tick(const Edge &e)
    {
        qs_pe_in in;
        in.west = e.west.data();
        in.west_valid = e.west_valid.data();
        in.west_shift = e.west_shift.data();
        in.north = e.north.data();
        in.north_valid = e.north_valid.data();
        in.north_shift = e.north_shift.data();
        in.north_offset = e.north_offset.data();
        in.clear = e.clear;
        in.load = e.load;
        qs_pe_out out;
        out.south = south_.data();
        out.south_valid = south_valid_.data();
        qs_pe_array_tick(a_, &in, &out);
        active_ = out.active;
        gated_ = out.gated;
        ovfs_ = out.overflows;
    }
    int rows() const { return cfg_.rows; }
    int cols() const { return cfg_.cols; }
    int32_t acc(int i, int j) const { return qs_pe_array_acc(a_, i, j); }
    int32_t stat(int i, int j) const { return qs_pe_array_stationary(a_, i, j); }
    int32_t south(int j) const { return south_[j]; }
    uint8_t south_valid(int j) const { return south_valid_[j]; }
    uint32_t active() const { return active_; }
    uint32_t gated() const { return gated_; }
    uint32_t overflows() const { return ovfs_; }
    qs_pe_array *raw() { return a_; }
    // qs_pe_array_observe (what `qsim run --engine rtl` compares whole) must
    // give every PE's accessor values: the first PE where it does not, or -1.
    long observe_mismatch() const
    {
        size_t n = (size_t)cfg_.rows * cfg_.cols;
        std::vector<int32_t> acc(n), stat(n);
        std::vector<uint8_t> accv(n);
        qs_pe_array_observe(a_, acc.data(), accv.data(), stat.data());
        for (size_t k = 0; k < n; k++) {
            int i = (int)(k / cfg_.cols), j = (int)(k % cfg_.cols);
            if (acc[k] != qs_pe_array_acc(a_, i, j) || stat[k] != qs_pe_array_stationary(a_, i, j) ||
                accv[k] != qs_pe_array_acc_valid(a_, i, j))
                return (long)k;
        }
        return -1;
    }

private:
    qs_pe_array_cfg cfg_{};
    qs_pe_array *a_ = nullptr;
    std::vector<int32_t> south_;
    std::vector<uint8_t> south_valid_;
    uint32_t active_ = 0, gated_ = 0, ovfs_ = 0;
};

// Compare everything observable after one clock. Returns an empty string on
// agreement, else one line per difference (at most a few).
static inline std::string compare(const Variant &v, const Reference &ref, const Observed &o)
{
    std::string out;
    int shown = 0;
    char line[256];
    auto add = [&](const char *s) {
        if (shown++ < 8) out += s;
    };
    const int r = ref.rows(), c = ref.cols();
    if (o.active != ref.active()) {
        snprintf(line, sizeof line, "  active count: rtl %u, c %u\n", o.active, ref.active());
        add(line);
    }
    if (o.gated != ref.gated()) {
        snprintf(line, sizeof line, "  gated count: rtl %u, c %u\n", o.gated, ref.gated());
        add(line);
    }
    if (o.overflows != ref.overflows()) {
        snprintf(line, sizeof line, "  overflow count: rtl %u, c %u\n", o.overflows, ref.overflows());
        add(line);
    }
    for (int i = 0; i < r; i++) {
        for (int j = 0; j < c; j++) {
            size_t k = (size_t)i * v.cols + j;
            if (o.acc[k] != ref.acc(i, j)) {
                snprintf(line, sizeof line, "  PE(%d,%d) acc: rtl %" PRId32 ", c %" PRId32 "\n", i, j,
                         o.acc[k], ref.acc(i, j));
                add(line);
            }
            if (o.stat[k] != ref.stat(i, j)) {
                snprintf(line, sizeof line, "  PE(%d,%d) stationary: rtl %" PRId32 ", c %" PRId32 "\n",
                         i, j, o.stat[k], ref.stat(i, j));
                add(line);
            }
        }
    }
    if (v.dataflow != QS_DF_OS) {
        for (int j = 0; j < c; j++) {
            size_t k = (size_t)(r - 1) * v.cols + j;
            // The corner's south edge is row r-1's partial-sum register; when
            // the corner is the whole array it is also the south port.
            int32_t s = o.acc[k];
            uint8_t sv = o.accv[k];
            if (r == v.rows && (o.south[j] != s || o.south_valid[j] != sv)) {
                snprintf(line, sizeof line, "  south port %d = %" PRId32 "/%u but PE(%d,%d) holds %" PRId32 "/%u\n",
                         j, o.south[j], o.south_valid[j], r - 1, j, s, sv);
                add(line);
            }
            if (s != ref.south(j) || sv != ref.south_valid(j)) {
                snprintf(line, sizeof line,
                         "  PE(%d,%d) south (value/valid): rtl %" PRId32 "/%u, c %" PRId32 "/%u\n", r - 1, j,
                         s, sv, ref.south(j), ref.south_valid(j));
                add(line);
            }
        }
    } else if (r == v.rows) {
        for (int j = 0; j < c; j++)
            if (o.south[j] != 0 || o.south_valid[j] != 0) {
                snprintf(line, sizeof line, "  OS south port %d not idle\n", j);
                add(line);
            }
    }
    long bad = ref.observe_mismatch();
    if (bad >= 0) {
        snprintf(line, sizeof line, "  qs_pe_array_observe differs from the accessors at PE %ld\n", bad);
        add(line);
    }
    if (shown > 8) out += "  ... more differences\n";
    return out;
}

// ---- the operand streams ----

// An episode: a fixed r x c corner fed one kind of stream, then the next.
struct EpisodeDesc {
    int r = 1, c = 1;
    int kind = 0;          // 0 structured tile stream, 1 random garbage
    int act_bits = 8, act_signed = 1;
    int wt_bits = 2, wt_signed = 1;
    double sparsity = 0.0; // probability that an operand is zero
    double extreme = 0.0;  // probability that an operand takes a range extreme
    bool wide = false;     // garbage only: valid operands span the whole port width
    bool reset = true;     // reset both sides before the episode

    std::string describe() const
    {
        char b[256];
        snprintf(b, sizeof b, "%dx%d %s act %s%d wt %s%d sparsity %.2f extreme %.2f%s%s", r, c,
                 kind == 0 ? "tile-stream" : "garbage", act_signed ? "s" : "u", act_bits,
                 wt_signed ? "s" : "u", wt_bits, sparsity, extreme, wide ? " full-width" : "",
                 reset ? " (reset)" : "");
        return b;
    }
};

// Produces the edge inputs of a run, clock by clock, for one variant.
class Stimulus {
public:
    Stimulus(const Variant &v, uint64_t seed) : v_(v), rng_(seed) {}

    // Starts a new episode with random parameters; returns its description.
    const EpisodeDesc &new_episode()
    {
        EpisodeDesc d;
        bool full = rng_.chance(0.5);
        d.r = full ? v_.rows : (int)rng_.range(1, v_.rows);
        d.c = full ? v_.cols : (int)rng_.range(1, v_.cols);
        d.kind = rng_.chance(0.7) ? 0 : 1;
        d.act_bits = rng_.chance(0.15) ? 16 : (int)rng_.range(1, 8);
        d.act_signed = (int)rng_.range(0, 1);
        d.wt_signed = rng_.chance(0.8) ? 1 : 0;
        int max_wt = v_.wpb * (1 << v_.shift_w);
        if (max_wt > 8) max_wt = 8;
        d.wt_bits = (int)rng_.range(1, d.kind == 0 ? max_wt : 8);
        d.sparsity = (double)rng_.range(0, 90) / 100.0;
        d.extreme = rng_.chance(0.25) ? (double)rng_.range(10, 100) / 100.0 : 0.0;
        // Full-width operands on both edges overflow even a 32-bit accumulator.
        d.wide = d.kind == 1 && rng_.chance(0.25);
        d.reset = !(started_ && d.r == d_.r && d.c == d_.c && rng_.chance(0.4));
        started_ = true;
        d_ = d;
        build();
        return d_;
    }
    const EpisodeDesc &episode() const { return d_; }
    // Next clock of the episode; false when the episode is over.
    bool next(Edge &e)
    {
        if (pos_ >= clocks_.size()) return false;
        e = clocks_[pos_++];
        if (v_.lookahead > 0) widen(e);
        return true;
    }
    Rng &rng() { return rng_; }

private:
    // A value of the given width and signedness, zero with probability
    // `sparsity`, an extreme of its range with probability `extreme`.
    int32_t operand(int bits, int sgn)
    {
        int64_t lo = sgn ? -((int64_t)1 << (bits - 1)) : 0;
        int64_t hi = sgn ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
        if (rng_.chance(d_.sparsity)) return 0;
        if (rng_.chance(d_.extreme)) return (int32_t)(rng_.chance(0.5) ? hi : lo);
        return (int32_t)rng_.range(lo, hi);
    }
    int32_t act() { return d_.wide ? operand(v_.op_w, 1) : operand(d_.act_bits, d_.act_signed); }
    int32_t weight() { return d_.wide ? operand(v_.op_w, 1) : operand(d_.wt_bits, d_.wt_signed); }
    // Anything the port can carry: what lands outside the corner or on an
    // invalid lane.
    int32_t junk() { return (int32_t)rng_.range(-(1 << (v_.op_w - 1)), (1 << (v_.op_w - 1)) - 1); }
    uint8_t junk_shift() { return (uint8_t)rng_.range(0, (1 << v_.shift_w) - 1); }

    // Slices of weight w: WPB bits each, low slices unsigned, the top one
    // signed for a signed weight, so that sum(slice_s << WPB*s) == w.
    int slices_of() const
    {
        int s = (d_.wt_bits + v_.wpb - 1) / v_.wpb;
        // An unsigned weight whose top slice would be read as negative needs
        // no extra slice here: its slices stay unsigned (values 0..2^WPB-1).
        return s < 1 ? 1 : s;
    }
    int32_t slice(int32_t w, int s, int nslices) const
    {
        int64_t mask = ((int64_t)1 << v_.wpb) - 1;
        int64_t part = ((int64_t)w >> (v_.wpb * s)) & mask;
        if (s == nslices - 1 && d_.wt_signed && (part >> (v_.wpb - 1)) & 1) part -= mask + 1;
        return (int32_t)part;
    }

    // Lookahead: the stream's activation becomes window entry 0; entries
    // 1..H get operands of the episode (valid inside the corner with
    // probability 0.8, never outside it, so nothing leaks in) and every
    // weight a random window index, including indices past the window when
    // the index port can carry them (the PE must then ignore the weight).
    void widen(Edge &e)
    {
        const int W = v_.lookahead + 1, ow = offset_width(v_);
        std::vector<int32_t> x((size_t)v_.rows * W);
        std::vector<uint8_t> xv((size_t)v_.rows * W);
        for (int i = 0; i < v_.rows; i++) {
            x[(size_t)i * W] = e.west[i];
            xv[(size_t)i * W] = e.west_valid[i];
            for (int w = 1; w < W; w++) {
                bool in = i < d_.r && rng_.chance(0.8);
                x[(size_t)i * W + w] = in ? act() : junk();
                xv[(size_t)i * W + w] = (uint8_t)in;
            }
        }
        e.west.swap(x);
        e.west_valid.swap(xv);
        for (int j = 0; j < v_.cols; j++)
            e.north_offset[j] = (uint8_t)(rng_.chance(0.1) ? rng_.range(0, (1 << ow) - 1) : rng_.range(0, W - 1));
    }

    Edge blank()
    {
        Edge e;
        e.resize(v_.rows, v_.cols);
        for (int i = 0; i < v_.rows; i++) {
            e.west[i] = junk();
            e.west_shift[i] = junk_shift();
        }
        for (int j = 0; j < v_.cols; j++) {
            e.north[j] = junk();
            e.north_shift[j] = junk_shift();
        }
        return e;
    }

    void build()
    {
        clocks_.clear();
        pos_ = 0;
        if (d_.kind == 1)
            build_garbage();
        else if (v_.dataflow == QS_DF_OS)
            build_os();
        else
            build_stationary();
    }

    void build_garbage()
    {
        int len = (int)rng_.range(20, 300);
        double pv = (double)rng_.range(30, 100) / 100.0;
        bool in_load = false;
        for (int t = 0; t < len; t++) {
            Edge e = blank();
            for (int i = 0; i < d_.r; i++) {
                e.west_valid[i] = rng_.chance(pv);
                e.west[i] = e.west_valid[i] || rng_.chance(0.5) ? (v_.dataflow == QS_DF_IS ? weight() : act()) : junk();
            }
            for (int j = 0; j < d_.c; j++) {
                e.north_valid[j] = rng_.chance(pv);
                e.north[j] = e.north_valid[j] || rng_.chance(0.5) ? (v_.dataflow == QS_DF_IS ? act() : weight()) : junk();
            }
            // Both control lines every dataflow: each must be ignored where
            // it means nothing.
            e.clear = rng_.chance(0.05);
            if (rng_.chance(0.1)) in_load = !in_load;
            e.load = in_load;
            clocks_.push_back(e);
        }
    }

    // OS: a stream of tiles. Each tile multiplies an r x K activation block
    // by K x c weights; a weight of wt_bits enters as `slices` consecutive
    // K-steps, each with its slice index on north_shift. Row i is skewed by
    // i clocks, column j by j; `clear` starts each tile.
    void build_os()
    {
        int tiles = (int)rng_.range(1, 4);
        int ns = slices_of();
        for (int tile = 0; tile < tiles; tile++) {
            int K = (int)rng_.range(1, 40);
            int steps = K * ns;
            std::vector<int32_t> A((size_t)d_.r * K), W((size_t)K * d_.c);
            for (auto &a : A) a = act();
            for (auto &w : W) w = weight();
            int len = steps + d_.r + d_.c - 1;
            // Sometimes the next tile starts before this one has drained.
            int tail = rng_.chance(0.2) ? -(int)rng_.range(0, d_.r + d_.c - 2) : (int)rng_.range(0, 3);
            len += tail;
            if (len < 1) len = 1;
            for (int t = 0; t < len; t++) {
                Edge e = blank();
                for (int i = 0; i < d_.r; i++) {
                    int kk = t - i;
                    if (kk >= 0 && kk < steps) {
                        e.west[i] = A[(size_t)i * K + kk / ns];
                        e.west_valid[i] = 1;
                    }
                }
                for (int j = 0; j < d_.c; j++) {
                    int kk = t - j;
                    if (kk >= 0 && kk < steps) {
                        int s = kk % ns;
                        e.north[j] = slice(W[(size_t)(kk / ns) * d_.c + j], s, ns);
                        e.north_shift[j] = (uint8_t)s;
                        e.north_valid[j] = 1;
                    }
                }
                e.clear = t == 0;
                clocks_.push_back(e);
            }
        }
    }

    // WS / IS: rounds of (load r rows of stationary values, stream M skewed
    // vectors from the west, drain). Row i stands for reduction index k(i)
    // and slice s(i), so a multi-slice weight takes `slices` rows.
    // WS: stationary = weight slices (shift on north_shift), stream = activations.
    // IS: stationary = activations, stream = weight slices (shift on west_shift).
    void build_stationary()
    {
        int rounds = (int)rng_.range(1, 3);
        int ns = slices_of();
        bool ws = v_.dataflow == QS_DF_WS;
        for (int round = 0; round < rounds; round++) {
            int M = (int)rng_.range(1, 40);
            int K = (d_.r + ns - 1) / ns;
            // WS: W[k][j] weights, A[m][k] activations.
            // IS: A[j][k] stationary activations, W[m][k] streamed weights.
            std::vector<int32_t> stat((size_t)K * d_.c), strm((size_t)M * K);
            for (auto &x : stat) x = ws ? weight() : act();
            for (auto &x : strm) x = ws ? act() : weight();
            for (int t = 0; t < d_.r; t++) {
                Edge e = blank();
                int row = d_.r - 1 - t; // the first value loaded sinks to the bottom
                int k = row / ns, s = row % ns;
                for (int j = 0; j < d_.c; j++) {
                    int32_t sv = stat[(size_t)k * d_.c + j];
                    e.north[j] = ws ? slice(sv, s, ns) : sv;
                    e.north_shift[j] = ws ? (uint8_t)s : 0;
                    e.north_valid[j] = 1;
                }
                e.load = 1;
                clocks_.push_back(e);
            }
            int len = M + d_.r + d_.c - 1;
            if (rng_.chance(0.2)) len -= (int)rng_.range(0, d_.r + d_.c - 1);
            for (int t = 0; t < len; t++) {
                Edge e = blank();
                for (int i = 0; i < d_.r; i++) {
                    int m = t - i;
                    if (m >= 0 && m < M) {
                        int k = i / ns, s = i % ns;
                        int32_t x = strm[(size_t)m * K + k];
                        e.west[i] = ws ? x : slice(x, s, ns);
                        e.west_shift[i] = ws ? 0 : (uint8_t)s;
                        e.west_valid[i] = 1;
                    }
                }
                clocks_.push_back(e);
            }
        }
    }

    Variant v_;
    Rng rng_;
    EpisodeDesc d_;
    bool started_ = false;
    std::vector<Edge> clocks_;
    size_t pos_ = 0;
};

} // namespace qs_cosim

#endif
