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

    // Every PE's registers, PE(i,j) at index i*COLS+j: one array element per
    // PE rather than slices of wide vectors, so that Verilator writes each
    // PE's outputs in place (a slice of a vector wider than 64 bits costs a
    // copy of the whole vector per PE: quadratic in the PE count).
    wire [XB-1:0]      x_arr  [0:N-1];
    wire [W-1:0]       xv_arr [0:N-1];
    wire [OFF_W-1:0]   yo_arr [0:N-1];
    wire [SHIFT_W-1:0] xs_arr [0:N-1];
    wire [NORTH_W-1:0] y_arr  [0:N-1];
    wire               yv_arr [0:N-1];
    wire [SHIFT_W-1:0] ys_arr [0:N-1];
    // The operands that leave the last column eastwards and the last row
    // southwards have no neighbour to read them: they end here, named one by
    // one, so that lint still reports any other register nobody reads.
    wire [XB+W+SHIFT_W-1:0]            east_edge  [0:ROWS-1];
    wire [NORTH_W+1+SHIFT_W+OFF_W-1:0] south_edge [0:COLS-1];
    /* verilator lint_off UNUSEDSIGNAL */
    reg edge_sink;
    integer e;
    always @(*) begin
        edge_sink = 1'b0;
        for (e = 0; e < ROWS; e = e + 1) edge_sink = edge_sink ^ (^east_edge[e]);
        for (e = 0; e < COLS; e = e + 1) edge_sink = edge_sink ^ (^south_edge[e]);
    end
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACC_W-1:0]   acc_arr  [0:N-1];
    wire               accv_arr [0:N-1];
    wire               act_arr  [0:N-1];
    wire               gate_arr [0:N-1];
    wire               ovf_arr  [0:N-1];

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
                    assign x_in  = x_arr[K-1];
                    assign xv_in = xv_arr[K-1];
                    assign xs_in = xs_arr[K-1];
                end
                if (i == 0) begin : g_north_edge
                    assign y_in   = north[j*NORTH_W +: NORTH_W];
                    assign yv_in  = north_valid[j];
                    assign ys_in  = north_shift[j*SHIFT_W +: SHIFT_W];
                    assign yo_in  = north_offset[j*OFF_W +: OFF_W];
                    assign ps_in  = {ACC_W{1'b0}};
                    assign psv_in = 1'b0;
                end else begin : g_north_pe
                    assign y_in   = y_arr[K-COLS];
                    assign yv_in  = yv_arr[K-COLS];
                    assign ys_in  = ys_arr[K-COLS];
                    assign yo_in  = yo_arr[K-COLS];
                    assign ps_in  = acc_arr[K-COLS];
                    assign psv_in = accv_arr[K-COLS];
                end
                if (j == COLS - 1) begin : g_east_edge
                    assign east_edge[i] = {x_arr[K], xv_arr[K], xs_arr[K]};
                end
                if (i == ROWS - 1) begin : g_south_edge
                    assign south_edge[j] = {y_arr[K], yv_arr[K], ys_arr[K], yo_arr[K]};
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
                    .x_q(x_arr[K]), .x_v_q(xv_arr[K]), .x_s_q(xs_arr[K]),
                    .y_q(y_arr[K]), .y_v_q(yv_arr[K]), .y_s_q(ys_arr[K]), .y_o_q(yo_arr[K]),
                    .acc_q(acc_arr[K]), .acc_v_q(accv_arr[K]),
                    .active(act_arr[K]), .gated(gate_arr[K]), .ovf(ovf_arr[K])
                );

            end
        end

    endgenerate


    // The flattened outputs, filled slice by slice in one block: Verilator
    // turns one continuous assignment per slice into nested concatenations of
    // the whole port (quadratic in the PE count), a loop into in-place writes.
    reg [N*ACC_W-1:0]   acc_flat_r;
    reg [N-1:0]         accv_flat_r;
    reg [N*NORTH_W-1:0] stat_flat_r;
    reg [COLS*ACC_W-1:0] south_r;
    reg [COLS-1:0]       south_v_r;
    integer q;
    always @(*) begin
        for (q = 0; q < N; q = q + 1) begin
            acc_flat_r[q*ACC_W +: ACC_W]    = acc_arr[q];
            accv_flat_r[q]                  = accv_arr[q];
            stat_flat_r[q*NORTH_W +: NORTH_W] = IS_OS ? {NORTH_W{1'b0}} : y_arr[q];
        end
        for (q = 0; q < COLS; q = q + 1) begin
            south_r[q*ACC_W +: ACC_W] = IS_OS ? {ACC_W{1'b0}} : acc_arr[(ROWS-1)*COLS+q];
            south_v_r[q]              = IS_OS ? 1'b0 : accv_arr[(ROWS-1)*COLS+q];
        end
    end
    assign acc_flat       = acc_flat_r;
    assign acc_valid_flat = accv_flat_r;
    assign stat_flat      = stat_flat_r;
    assign south          = south_r;
    assign south_valid    = south_v_r;

    // Per-clock event counts: population counts of the PE flags, registered
    // so that they line up with the registers they describe.
    reg [CNT_W-1:0] n_act, n_gate, n_ovf;
    integer k;
    always @(*) begin
        n_act = {CNT_W{1'b0}};
        n_gate = {CNT_W{1'b0}};
        n_ovf = {CNT_W{1'b0}};
        for (k = 0; k < N; k = k + 1) begin
            n_act  = n_act  + {{(CNT_W-1){1'b0}}, act_arr[k]};
            n_gate = n_gate + {{(CNT_W-1){1'b0}}, gate_arr[k]};
            n_ovf  = n_ovf  + {{(CNT_W-1){1'b0}}, ovf_arr[k]};
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
