// qs_pe_array: a ROWS x COLS grid of qs_pe, the RTL twin of sim/pe_array.c.
//
// Edge ports are qs_pe_in flattened, element k at [k*W +: W]:
//   west, west_valid, west_shift    one per row    (OS/WS: activation, IS: weight slice)
//   north, north_valid, north_shift one per column (OS: weight slice; WS/IS: value to load)
//   clear (OS), load (WS/IS)
// Outputs, all registered (they change only on the rising edge, so a test
// bench samples them after the edge and compares with what qs_pe_array_tick()
// returned for the same clock):
//   south, south_valid   WS/IS: the last row's partial sums; 0 in OS
//                        (the C model leaves qs_pe_out.south untouched in OS)
//   acc_flat             every PE's accumulator (OS) / partial-sum register
//                        (WS/IS), PE(i,j) at index i*COLS+j: what
//                        qs_pe_array_acc(i,j) returns
//   acc_valid_flat       WS/IS: the partial-sum valid bits (lets a test use the
//                        top-left corner as a smaller array); 0 in OS
//   stat_flat            WS/IS: stationary values (qs_pe_array_stationary); 0 in OS
//   active_cnt, gated_cnt, ovf_cnt
//                        qs_pe_out.active/gated/overflows of the clock that
//                        just ended (popcounts of the PE flags, registered)
//
// LOOKAHEAD = H > 0 (OS): west and west_valid carry a window of H+1 entries
// per row (row i's entry w at index i*(H+1)+w) and north_offset each weight
// slice's window index (docs/timing.md "Lookahead weight skipping"); with
// H = 0 north_offset is not read.
//
// WEST_W / NORTH_W default to OP_W: 17 bits carry a signed or unsigned
// 16-bit activation as a two's-complement operand.
module qs_pe_array #(
    parameter ROWS     = 4,
    parameter COLS     = 4,
    parameter DATAFLOW = 1,  // 0 = WS, 1 = OS, 2 = IS
    // OP_W is only the default of WEST_W and NORTH_W, unused when both are set.
    /* verilator lint_off UNUSEDPARAM */
    parameter OP_W     = 17,
    /* verilator lint_on UNUSEDPARAM */
    parameter WEST_W   = OP_W,
    parameter NORTH_W  = OP_W,
    parameter WPB      = 2,
    parameter SHIFT_W  = 2,
    parameter ACC_W    = 32,
    parameter SATURATE = 0,
    parameter GATE     = 1,
    parameter LOOKAHEAD = 0,
    parameter OFF_W    = (LOOKAHEAD > 0) ? $clog2(LOOKAHEAD + 1) : 1,
    parameter CNT_W    = $clog2(ROWS * COLS + 1)
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      clear,
    input  wire                      load,
    input  wire [ROWS*(LOOKAHEAD+1)*WEST_W-1:0] west,
    input  wire [ROWS*(LOOKAHEAD+1)-1:0]        west_valid,
    // The slice index moving east (WS/IS; an OS PE ignores it).
    input  wire [ROWS*SHIFT_W-1:0]   west_shift,
    input  wire [COLS*NORTH_W-1:0]   north,
    input  wire [COLS-1:0]           north_valid,
    input  wire [COLS*SHIFT_W-1:0]   north_shift,
    input  wire [COLS*OFF_W-1:0]     north_offset,
    output wire [COLS*ACC_W-1:0]     south,
    output wire [COLS-1:0]           south_valid,
    output wire [ROWS*COLS*ACC_W-1:0]   acc_flat,
    output wire [ROWS*COLS-1:0]         acc_valid_flat,
    output wire [ROWS*COLS*NORTH_W-1:0] stat_flat,
    output reg  [CNT_W-1:0]          active_cnt,
    output reg  [CNT_W-1:0]          gated_cnt,
    output reg  [CNT_W-1:0]          ovf_cnt
);
    localparam N = ROWS * COLS;
    localparam IS_OS = (DATAFLOW == 1);
    localparam W = LOOKAHEAD + 1;
    localparam XB = W * WEST_W; // a PE's window bits

    // Every PE's registers, PE(i,j) at index i*COLS+j.
    wire [N*XB-1:0]      x_all;
    wire [N*W-1:0]       xv_all;
    wire [N*OFF_W-1:0]   yo_all;
    wire [N*SHIFT_W-1:0] xs_all;
    wire [N*NORTH_W-1:0] y_all;
    wire [N-1:0]         yv_all;
    wire [N*SHIFT_W-1:0] ys_all;
    // The operands that leave the last column eastwards and the last row
    // southwards have no neighbour to read them: they end here, named one by
    // one, so that lint still reports any other register nobody reads.
    wire [ROWS*(XB+W+SHIFT_W)-1:0]            east_edge;
    wire [COLS*(NORTH_W+1+SHIFT_W+OFF_W)-1:0] south_edge;
    /* verilator lint_off UNUSEDSIGNAL */
    wire edge_sink = ^{east_edge, south_edge};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [N*ACC_W-1:0]   acc_all;
    wire [N-1:0]         accv_all;
    wire [N-1:0]         act_all, gate_all, ovf_all;

    genvar i, j;
    generate
        for (i = 0; i < ROWS; i = i + 1) begin : g_row
            for (j = 0; j < COLS; j = j + 1) begin : g_col
                localparam K = i * COLS + j;
                wire [XB-1:0]      x_in;
                wire [W-1:0]       xv_in;
                wire [OFF_W-1:0]   yo_in;
                wire [SHIFT_W-1:0] xs_in;
                wire [NORTH_W-1:0] y_in;
                wire               yv_in;
                wire [SHIFT_W-1:0] ys_in;
                wire [ACC_W-1:0]   ps_in;
                wire               psv_in;
                if (j == 0) begin : g_west_edge
                    assign x_in  = west[i*XB +: XB];
                    assign xv_in = west_valid[i*W +: W];
                    assign xs_in = west_shift[i*SHIFT_W +: SHIFT_W];
                end else begin : g_west_pe
                    assign x_in  = x_all[(K-1)*XB +: XB];
                    assign xv_in = xv_all[(K-1)*W +: W];
                    assign xs_in = xs_all[(K-1)*SHIFT_W +: SHIFT_W];
                end
                if (i == 0) begin : g_north_edge
                    assign y_in   = north[j*NORTH_W +: NORTH_W];
                    assign yv_in  = north_valid[j];
                    assign ys_in  = north_shift[j*SHIFT_W +: SHIFT_W];
                    assign yo_in  = north_offset[j*OFF_W +: OFF_W];
                    assign ps_in  = {ACC_W{1'b0}};
                    assign psv_in = 1'b0;
                end else begin : g_north_pe
                    assign y_in   = y_all[(K-COLS)*NORTH_W +: NORTH_W];
                    assign yv_in  = yv_all[K-COLS];
                    assign ys_in  = ys_all[(K-COLS)*SHIFT_W +: SHIFT_W];
                    assign yo_in  = yo_all[(K-COLS)*OFF_W +: OFF_W];
                    assign ps_in  = acc_all[(K-COLS)*ACC_W +: ACC_W];
                    assign psv_in = accv_all[K-COLS];
                end
                if (j == COLS - 1) begin : g_east_edge
                    assign east_edge[i*(XB+W+SHIFT_W) +: XB+W+SHIFT_W] =
                        {x_all[K*XB +: XB], xv_all[K*W +: W], xs_all[K*SHIFT_W +: SHIFT_W]};
                end
                if (i == ROWS - 1) begin : g_south_edge
                    assign south_edge[j*(NORTH_W+1+SHIFT_W+OFF_W) +: NORTH_W+1+SHIFT_W+OFF_W] =
                        {y_all[K*NORTH_W +: NORTH_W], yv_all[K], ys_all[K*SHIFT_W +: SHIFT_W],
                         yo_all[K*OFF_W +: OFF_W]};
                end
                qs_pe #(
                    .DATAFLOW(DATAFLOW), .XW(WEST_W), .YW(NORTH_W), .WPB(WPB),
                    .SHIFT_W(SHIFT_W), .ACC_W(ACC_W), .SATURATE(SATURATE), .GATE(GATE),
                    .LOOKAHEAD(LOOKAHEAD), .OFF_W(OFF_W)
                ) pe (
                    .clk(clk), .rst(rst), .clear(clear), .load(load),
                    .x_in(x_in), .x_v_in(xv_in), .x_s_in(xs_in),
                    .y_in(y_in), .y_v_in(yv_in), .y_s_in(ys_in), .y_o_in(yo_in),
                    .psum_in(ps_in), .psum_v_in(psv_in),
                    .x_q(x_all[K*XB +: XB]), .x_v_q(xv_all[K*W +: W]),
                    .x_s_q(xs_all[K*SHIFT_W +: SHIFT_W]),
                    .y_q(y_all[K*NORTH_W +: NORTH_W]), .y_v_q(yv_all[K]),
                    .y_s_q(ys_all[K*SHIFT_W +: SHIFT_W]), .y_o_q(yo_all[K*OFF_W +: OFF_W]),
                    .acc_q(acc_all[K*ACC_W +: ACC_W]), .acc_v_q(accv_all[K]),
                    .active(act_all[K]), .gated(gate_all[K]), .ovf(ovf_all[K])
                );
            end
        end

        if (IS_OS) begin : g_out_os
            assign south          = {(COLS*ACC_W){1'b0}};
            assign south_valid    = {COLS{1'b0}};
            assign stat_flat      = {(N*NORTH_W){1'b0}};
        end else begin : g_out_stat
            assign south          = acc_all[(ROWS-1)*COLS*ACC_W +: COLS*ACC_W];
            assign south_valid    = accv_all[(ROWS-1)*COLS +: COLS];
            assign stat_flat      = y_all;
        end
    endgenerate

    assign acc_flat       = acc_all;
    assign acc_valid_flat = accv_all;

    // Per-clock event counts: population counts of the PE flags, registered
    // so that they line up with the registers they describe.
    reg [CNT_W-1:0] n_act, n_gate, n_ovf;
    integer k;
    always @(*) begin
        n_act = {CNT_W{1'b0}};
        n_gate = {CNT_W{1'b0}};
        n_ovf = {CNT_W{1'b0}};
        for (k = 0; k < N; k = k + 1) begin
            n_act  = n_act  + {{(CNT_W-1){1'b0}}, act_all[k]};
            n_gate = n_gate + {{(CNT_W-1){1'b0}}, gate_all[k]};
            n_ovf  = n_ovf  + {{(CNT_W-1){1'b0}}, ovf_all[k]};
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            active_cnt <= {CNT_W{1'b0}};
            gated_cnt <= {CNT_W{1'b0}};
            ovf_cnt <= {CNT_W{1'b0}};
        end else begin
            active_cnt <= n_act;
            gated_cnt <= n_gate;
            ovf_cnt <= n_ovf;
        end
    end
endmodule
