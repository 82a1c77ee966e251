// qs_pe: one integer MAC processing element of the qsim systolic array.
//
// The per-clock reference is the C model in sim/pe_array.c; this module is
// one iteration of its inner loop turned into registers. Every register here
// is loaded on the rising clock edge from the neighbours' registers of the
// previous clock (the C model gets the same effect by walking the array from
// the south-east corner backwards).
//
// Ports are named after the neighbour they come from:
//   x_*  : from the west  (OS/WS: activation, IS: weight slice); moves east.
//   y_*  : from the north (OS: weight slice, moves south every clock;
//          WS/IS: the stationary operand, moves south only while `load`).
//   psum : from the north (WS/IS only): the partial sum moving south.
// The y register doubles as the stationary register in WS/IS so that the
// load chain and the OS weight chain are the same wires.
//
// A product is x * y << (WPB * shift). shift is the weight's slice index:
// OS: the north operand's index; WS/IS: x_s + y_s (the C model adds the
// streaming operand's index and the stationary one's, so either side can
// carry the weight).
//
// The sum is formed exactly, one bit wider than both the accumulator and the
// largest shifted product, so overflow (exact sum outside ACC_W bits) is
// detected as in qs_acc_add(): the bits from ACC_W-1 up are not all equal.
// Wrap keeps the low ACC_W bits; saturate picks the extreme of the sum's sign.
//
// Zero gating and operand isolation (GATE=1): a valid product with a zero
// operand is not added and is counted as gated. The multiplier's inputs are
// AND-ed with the add enable, so while products are gated or operands are
// invalid the multiplier sees constant zeros and does not toggle, whatever
// moves through the operand registers; the accumulator register is then not
// written either (its enable is a clock-gating candidate). GATE=0 has neither
// the zero detectors nor the AND gates: the multiplier follows its operands,
// and products with a zero operand are added (and counted active).
//
// Lookahead (OS, LOOKAHEAD = H > 0; docs/timing.md "Lookahead weight
// skipping"): the west operand is a window of H+1 activations with a valid
// bit each, all moving east; the weight slice brings a window index
// (y_o_in, moving south with it) that picks the activation it multiplies. An
// index past the window selects nothing: the weight is treated as invalid and
// forwarded with index 0, as the C model does.
//
// Reset is synchronous and zeroes every register, like qs_pe_array_reset().
// Verilog-2005, accepted by Verilator 5.006 (-Wall clean), Icarus 11 and
// Yosys 0.23.
module qs_pe #(
    parameter DATAFLOW = 1,  // 0 = WS, 1 = OS, 2 = IS (qs_dataflow)
    parameter XW       = 17, // west operand width, two's complement
    parameter YW       = 17, // north operand width, two's complement
    parameter WPB      = 2,  // weight_path_bits
    parameter SHIFT_W  = 2,  // width of a slice index
    parameter ACC_W    = 32, // acc_bits
    parameter SATURATE = 0,  // 0 wrap, 1 saturate
    parameter GATE     = 1,  // 1: zero-operand products are gated
    parameter LOOKAHEAD = 0, // OS: H > 0 moves a window of H+1 activations east (see above)
    parameter OFF_W    = 1,  // width of a window index (>= ceil(log2(H+1)), at least 1)
    parameter REG_FLAGS = 0  // 1: active/gated/ovf registered (see "REG_FLAGS" below)
) (
    input  wire               clk,
    input  wire               rst,
    // OS: zero the accumulator before this clock's add (ignored in WS/IS).
    // WS/IS: shift the stationary chain down (ignored in OS).
    input  wire               clear,
    input  wire               load,
    input  wire [(LOOKAHEAD+1)*XW-1:0] x_in,   // window entry w at [w*XW +: XW]
    input  wire [LOOKAHEAD:0] x_v_in,
    input  wire [SHIFT_W-1:0] x_s_in,   // WS/IS only
    input  wire [YW-1:0]      y_in,
    input  wire               y_v_in,
    input  wire [SHIFT_W-1:0] y_s_in,
    // Without lookahead the window index is never read.
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [OFF_W-1:0]   y_o_in,   // OS lookahead only
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [ACC_W-1:0]   psum_in,  // WS/IS only
    // The only input an OS PE never reads (it has no partial sum from the
    // north); the waiver names it alone so lint still sees every other port.
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire               psum_v_in,// WS/IS only
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [(LOOKAHEAD+1)*XW-1:0] x_q,
    output wire [LOOKAHEAD:0] x_v_q,
    output wire [SHIFT_W-1:0] x_s_q,
    output wire [YW-1:0]      y_q,
    output wire               y_v_q,
    output wire [SHIFT_W-1:0] y_s_q,
    output wire [OFF_W-1:0]   y_o_q,
    output wire [ACC_W-1:0]   acc_q,    // OS: accumulator; WS/IS: partial sum
    output wire               acc_v_q,  // WS/IS: partial sum is valid
    output wire               active,   // this clock adds a product
    output wire               gated,    // this clock gates a valid product
    output wire               ovf       // this clock's addition overflows
);
    localparam IS_OS = (DATAFLOW == 1);
    localparam W     = LOOKAHEAD + 1;
    // PW, SW and pe_step: one clock of the datapath.
`include "qs_pe_step.vh"

    // REG_FLAGS = 0: the datapath is combinational logic in front of the
    // registers and active/gated/ovf are this clock's flags (the PE alone, as
    // tb/tb_qs_pe.v and scripts/rtl-area use it). REG_FLAGS = 1 (what
    // qs_pe_array uses): the same task is evaluated inside the clocked
    // process and the three flags are registered, so they show the clock that
    // just ended, as the array's counts do. The registers load the same values
    // either way. The difference is for a cycle simulator: Verilator
    // evaluates combinational logic fed by the array's input ports on every
    // eval() (twice a clock) and again after the registers change, a clocked
    // process once per rising edge (docs/performance-rtl.md).
    reg  [W*XW-1:0]    x_r;
    reg  [W-1:0]       x_v_r;
    reg  [YW-1:0]      y_r;
    reg                y_v_r;
    reg  [SHIFT_W-1:0] y_s_r;
    reg  [ACC_W-1:0]   acc_r;
    reg  [2:0]         flags_r;     // REG_FLAGS = 1: {active, gated, ovf} of the last clock
    // s_*: this clock's step (pe_step's outputs), temporaries of the one
    // clocked process below (set before they are read; never registers of
    // their own). c_*: the same, combinational, with REG_FLAGS = 0.
    // (an OS PE does not use x_ok, a WS/IS PE not the weight's valid and
    // window index)
    /* verilator lint_off UNUSEDSIGNAL */
    reg                s_en, s_gated, s_ovf, s_x_ok, s_yv;
    reg  [OFF_W-1:0]   s_yo;
    reg  [ACC_W-1:0]   s_res;
    reg                c_en, c_gated, c_ovf, c_x_ok, c_yv;
    reg  [OFF_W-1:0]   c_yo;
    reg  [ACC_W-1:0]   c_res;
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (REG_FLAGS == 0) begin : g_comb
            always @(*)
                pe_step(x_in, x_v_in, x_s_in, y_in, y_v_in, y_s_in, y_o_in, psum_in, clear, load,
                        y_r, y_v_r, y_s_r, acc_r, c_en, c_gated, c_ovf, c_x_ok, c_yv, c_yo, c_res);
        end else begin : g_no_comb
            always @(*) begin
                {c_en, c_gated, c_ovf, c_x_ok, c_yv} = 5'b0;
                c_yo = {OFF_W{1'b0}};
                c_res = {ACC_W{1'b0}};
            end
        end
    endgenerate
    assign active = (REG_FLAGS != 0) ? flags_r[2] : c_en;
    assign gated  = (REG_FLAGS != 0) ? flags_r[1] : c_gated;
    assign ovf    = (REG_FLAGS != 0) ? flags_r[0] : c_ovf;
    // This clock's step inside the clocked process: evaluated there
    // (REG_FLAGS = 1) or taken from the combinational one.
    /* verilator lint_off BLKSEQ */
    task step_now;
        begin
            if (REG_FLAGS != 0)
                pe_step(x_in, x_v_in, x_s_in, y_in, y_v_in, y_s_in, y_o_in, psum_in, clear, load,
                        y_r, y_v_r, y_s_r, acc_r, s_en, s_gated, s_ovf, s_x_ok, s_yv, s_yo, s_res);
            else begin
                s_en = c_en;
                s_gated = c_gated;
                s_ovf = c_ovf;
                s_x_ok = c_x_ok;
                s_yv = c_yv;
                s_yo = c_yo;
                s_res = c_res;
            end
        end
    endtask
    /* verilator lint_on BLKSEQ */

    assign x_q   = x_r;
    assign x_v_q = x_v_r;
    assign y_q   = y_r;
    assign y_v_q = y_v_r;
    assign y_s_q = y_s_r;
    assign acc_q = acc_r;

    // The registers live in the generate branches: OS has no slice index
    // moving east and no partial-sum valid, so those outputs are constant.
    /* verilator lint_off BLKSEQ */
    generate
        if (IS_OS) begin : g_os
            reg [OFF_W-1:0] y_o_r;
            assign x_s_q   = {SHIFT_W{1'b0}};
            assign acc_v_q = 1'b0;
            assign y_o_q   = y_o_r;
            always @(posedge clk) begin
                step_now;
                if (rst) begin
                    x_r <= {(W*XW){1'b0}};
                    x_v_r <= {W{1'b0}};
                    y_r <= {YW{1'b0}};
                    y_v_r <= 1'b0;
                    y_s_r <= {SHIFT_W{1'b0}};
                    y_o_r <= {OFF_W{1'b0}};
                    acc_r <= {ACC_W{1'b0}};
                    if (REG_FLAGS != 0) flags_r <= 3'b000;
                end else begin
                    x_r <= x_in;
                    x_v_r <= x_v_in;
                    y_r <= y_in;
                    y_v_r <= s_yv;
                    y_s_r <= y_s_in;
                    y_o_r <= s_yo;
                    if (s_en)
                        acc_r <= s_res;
                    else if (clear)
                        acc_r <= {ACC_W{1'b0}};
                    if (REG_FLAGS != 0) flags_r <= {s_en, s_gated, s_ovf};
                end
            end
        end else begin : g_stat
            reg [SHIFT_W-1:0] x_s_r;
            reg               acc_v_r;
            assign x_s_q   = x_s_r;
            assign acc_v_q = acc_v_r;
            assign y_o_q   = {OFF_W{1'b0}};
            always @(posedge clk) begin
                step_now;
                if (rst) begin
                    x_r <= {(W*XW){1'b0}};
                    x_v_r <= {W{1'b0}};
                    x_s_r <= {SHIFT_W{1'b0}};
                    y_r <= {YW{1'b0}};
                    y_v_r <= 1'b0;
                    y_s_r <= {SHIFT_W{1'b0}};
                    acc_r <= {ACC_W{1'b0}};
                    acc_v_r <= 1'b0;
                    if (REG_FLAGS != 0) flags_r <= 3'b000;
                end else if (load) begin
                    // The stationary chain shifts down; nothing streams, the
                    // streaming and partial-sum values are held but marked
                    // invalid (as the C model does).
                    y_r <= y_in;
                    y_v_r <= y_v_in;
                    y_s_r <= y_s_in;
                    x_v_r <= {W{1'b0}};
                    acc_v_r <= 1'b0;
                    if (REG_FLAGS != 0) flags_r <= {s_en, s_gated, s_ovf};
                end else begin
                    x_r <= x_in;
                    x_v_r <= x_v_in;
                    x_s_r <= x_s_in;
                    acc_r <= s_en ? s_res : psum_in;
                    acc_v_r <= s_x_ok | psum_v_in;
                    if (REG_FLAGS != 0) flags_r <= {s_en, s_gated, s_ovf};
                end
            end
        end
    endgenerate
    /* verilator lint_on BLKSEQ */
endmodule
