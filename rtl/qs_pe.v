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
    parameter OFF_W    = 1   // width of a window index (>= ceil(log2(H+1)), at least 1)
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
    localparam PW    = XW + YW;
    // Largest shift: OS uses one index, WS/IS the sum of two.
    localparam MAXSH = WPB * ((1 << SHIFT_W) - 1) * (IS_OS ? 1 : 2);
    localparam SPW   = PW + MAXSH;
    localparam SW    = (SPW > ACC_W ? SPW : ACC_W) + 1;

    localparam W     = LOOKAHEAD + 1;

    // Lookahead: the window entry the weight names (entry 0 without lookahead).
    wire             yo_ok;
    generate
        // An index can point past the window only when H+1 is not a power of two.
        if (LOOKAHEAD > 0 && (1 << OFF_W) > LOOKAHEAD + 1) begin : g_yo_check
            assign yo_ok = {{(32 - OFF_W){1'b0}}, y_o_in} <= LOOKAHEAD;
        end else begin : g_yo_any
            assign yo_ok = 1'b1;
        end
    endgenerate
    wire [OFF_W-1:0] y_o_use = (LOOKAHEAD > 0 && yo_ok) ? y_o_in : {OFF_W{1'b0}};
    wire             y_v_use = y_v_in & yo_ok;
    reg  [XW-1:0]    x_op;
    reg              x_ok;
    integer          w;
    always @(*) begin
        x_op = x_in[XW-1:0];
        x_ok = x_v_in[0];
        for (w = 1; w <= LOOKAHEAD; w = w + 1)
            if (y_o_use == w[OFF_W-1:0]) begin
                x_op = x_in[w*XW +: XW];
                x_ok = x_v_in[w];
            end
    end

    // The operands of this clock's product.
    wire [YW-1:0]    y_op = IS_OS ? y_in : y_r;
    wire             y_ok = IS_OS ? y_v_use : y_v_r;
    wire [SHIFT_W:0] sh   = IS_OS ? {1'b0, y_s_in} : ({1'b0, x_s_in} + {1'b0, y_s_r});
    // WS/IS: a load clock does no arithmetic at all.
    wire             both = x_ok & y_ok & (IS_OS ? 1'b1 : ~load);
    wire             zero = (x_op == {XW{1'b0}}) | (y_op == {YW{1'b0}});
    wire             en   = both & ~((GATE != 0) & zero);

    assign active = en;
    assign gated  = both & (GATE != 0) & zero;

    // Operand isolation (see the header).
    wire [XW-1:0] mx = (GATE != 0) ? (x_op & {XW{en}}) : x_op;
    wire [YW-1:0] my = (GATE != 0) ? (y_op & {YW{en}}) : y_op;

    wire signed [PW-1:0] prod = $signed(mx) * $signed(my);
    wire [31:0]          sha  = WPB * {{(31 - SHIFT_W){1'b0}}, sh};
    wire [SW-1:0]        prod_sh = {{(SW - PW){prod[PW-1]}}, prod} << sha;

    // What the product is added to: OS: the accumulator (or 0 on clear);
    // WS/IS: the partial sum from the north.
    wire [ACC_W-1:0] base = IS_OS ? (clear ? {ACC_W{1'b0}} : acc_r) : psum_in;
    wire [SW-1:0]    sum  = {{(SW - ACC_W){base[ACC_W-1]}}, base} + prod_sh;
    wire             out_of_range = sum[SW-1:ACC_W-1] != {(SW - ACC_W + 1){sum[SW-1]}};
    wire [ACC_W-1:0] sat_val = sum[SW-1] ? {1'b1, {(ACC_W - 1){1'b0}}}
                                         : {1'b0, {(ACC_W - 1){1'b1}}};
    wire [ACC_W-1:0] res = ((SATURATE != 0) & out_of_range) ? sat_val : sum[ACC_W-1:0];

    assign ovf = en & out_of_range;

    // The registers live in the generate branches: OS has no slice index
    // moving east and no partial-sum valid, so those outputs are constant.
    reg [W*XW-1:0]    x_r;
    reg [W-1:0]       x_v_r;
    reg [YW-1:0]      y_r;
    reg               y_v_r;
    reg [SHIFT_W-1:0] y_s_r;
    reg [ACC_W-1:0]   acc_r;
    assign x_q   = x_r;
    assign x_v_q = x_v_r;
    assign y_q   = y_r;
    assign y_v_q = y_v_r;
    assign y_s_q = y_s_r;
    assign acc_q = acc_r;

    generate
        if (IS_OS) begin : g_os
            reg [OFF_W-1:0] y_o_r;
            assign x_s_q   = {SHIFT_W{1'b0}};
            assign acc_v_q = 1'b0;
            assign y_o_q   = y_o_r;
            always @(posedge clk) begin
                if (rst) begin
                    x_r <= {(W*XW){1'b0}};
                    x_v_r <= {W{1'b0}};
                    y_r <= {YW{1'b0}};
                    y_v_r <= 1'b0;
                    y_s_r <= {SHIFT_W{1'b0}};
                    y_o_r <= {OFF_W{1'b0}};
                    acc_r <= {ACC_W{1'b0}};
                end else begin
                    x_r <= x_in;
                    x_v_r <= x_v_in;
                    y_r <= y_in;
                    y_v_r <= y_v_use;
                    y_s_r <= y_s_in;
                    y_o_r <= y_o_use;
                    if (en)
                        acc_r <= res;
                    else if (clear)
                        acc_r <= {ACC_W{1'b0}};
                end
            end
        end else begin : g_stat
            reg [SHIFT_W-1:0] x_s_r;
            reg               acc_v_r;
            assign x_s_q   = x_s_r;
            assign acc_v_q = acc_v_r;
            assign y_o_q   = {OFF_W{1'b0}};
            always @(posedge clk) begin
                if (rst) begin
                    x_r <= {(W*XW){1'b0}};
                    x_v_r <= {W{1'b0}};
                    x_s_r <= {SHIFT_W{1'b0}};
                    y_r <= {YW{1'b0}};
                    y_v_r <= 1'b0;
                    y_s_r <= {SHIFT_W{1'b0}};
                    acc_r <= {ACC_W{1'b0}};
                    acc_v_r <= 1'b0;
                end else if (load) begin
                    // The stationary chain shifts down; nothing streams, the
                    // streaming and partial-sum values are held but marked
                    // invalid (as the C model does).
                    y_r <= y_in;
                    y_v_r <= y_v_in;
                    y_s_r <= y_s_in;
                    x_v_r <= {W{1'b0}};
                    acc_v_r <= 1'b0;
                end else begin
                    x_r <= x_in;
                    x_v_r <= x_v_in;
                    x_s_r <= x_s_in;
                    acc_r <= en ? res : psum_in;
                    acc_v_r <= x_ok | psum_v_in;
                end
            end
        end
    endgenerate
endmodule
