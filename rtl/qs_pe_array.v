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
    parameter CNT_W    = $clog2(ROWS * COLS + 1),
    // Which observation ports carry the PE state (the others are tied to 0):
    // 0: the flattened vectors acc_flat .. south_valid; 1: one 32-bit word
    // (8-bit for valid bits) per PE / column, values sign-extended, in the
    // unpacked arrays acc_w .. south_v_w. A Verilated model's arrays are
    // plain C arrays that a test bench compares with memcmp; filling
    // flattened vectors wider than 64 bits costs a bit-insert per PE.
    parameter OBS      = 0,
    // How the RTL is written (the registers and what they load are the same):
    // 0: a grid of qs_pe instances wired to their neighbours; 1: the PE
    // state as arrays updated by one clocked loop that applies qs_pe's step
    // task (qs_pe_step.vh) to every PE. A Verilated model of style 1 is
    // one loop body for any array size, where style 0 is one function per
    // PE: 1 runs several times faster and builds in seconds even at 128x128
    // (docs/performance-rtl.md).
    parameter ARRAY_STYLE = 0
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
    output wire [31:0]               acc_w     [0:ROWS*COLS-1],
    output wire [7:0]                acc_v_w   [0:ROWS*COLS-1],
    output wire [31:0]               stat_w    [0:ROWS*COLS-1],
    output wire [31:0]               south_w   [0:COLS-1],
    output wire [7:0]                south_v_w [0:COLS-1],
    output wire [CNT_W-1:0]          active_cnt,
    output wire [CNT_W-1:0]          gated_cnt,
    output wire [CNT_W-1:0]          ovf_cnt
);
    localparam N = ROWS * COLS;
    localparam IS_OS = (DATAFLOW == 1);
    localparam W = LOOKAHEAD + 1;
    localparam XB = W * WEST_W; // a PE's window bits
    localparam XW = WEST_W, YW = NORTH_W;
    // PW, SW and pe_step (used by ARRAY_STYLE = 1).
`include "qs_pe_step.vh"

    // ---- ARRAY_STYLE = 0: a grid of qs_pe instances ----
    // Every PE's registers, PE(i,j) at index i*COLS+j: one array element per
    // PE rather than slices of wide vectors, so that Verilator writes each
    // PE's outputs in place (a slice of a vector wider than 64 bits costs a
    // copy of the whole vector per PE: quadratic in the PE count). Style 1
    // neither drives nor reads them (its loop has its own arrays, below).
    /* verilator lint_off UNUSEDSIGNAL */
    /* verilator lint_off UNDRIVEN */
    wire [XB-1:0]      x_arr  [0:N-1];
    wire [W-1:0]       xv_arr [0:N-1];
    wire [OFF_W-1:0]   yo_arr [0:N-1];
    wire [SHIFT_W-1:0] xs_arr [0:N-1];
    wire [NORTH_W-1:0] y_arr  [0:N-1];
    wire               yv_arr [0:N-1];
    wire [SHIFT_W-1:0] ys_arr [0:N-1];
    wire [ACC_W-1:0]   acc_arr  [0:N-1];
    wire               accv_arr [0:N-1];
    wire               act_arr  [0:N-1];
    wire               gate_arr [0:N-1];
    wire               ovf_arr  [0:N-1];
    /* verilator lint_on UNDRIVEN */
    /* verilator lint_on UNUSEDSIGNAL */
    // Style 1 generates no per-PE scopes at all (16,384 of them at 128x128
    // cost Verilator minutes and gigabytes): the grid loops run 0 times.
    localparam GRID_ROWS = ARRAY_STYLE == 0 ? ROWS : 0;

    genvar i, j;
    generate
        if (ARRAY_STYLE == 0) begin : g_edges
            // The operands that leave the last column eastwards and the last
            // row southwards have no neighbour to read them: they end here,
            // named one by one, so that lint still reports any other register
            // nobody reads.
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
            for (i = 0; i < ROWS; i = i + 1) begin : g_east
                assign east_edge[i] = {x_arr[i*COLS+COLS-1], xv_arr[i*COLS+COLS-1], xs_arr[i*COLS+COLS-1]};
            end
            for (j = 0; j < COLS; j = j + 1) begin : g_south
                localparam KS = (ROWS - 1) * COLS + j;
                assign south_edge[j] = {y_arr[KS], yv_arr[KS], ys_arr[KS], yo_arr[KS]};
                // the word ports of the south edge (OBS = 1)
                assign south_w[j]   = (OBS == 0 || IS_OS) ? 32'd0 : {{(32-ACC_W){acc_arr[KS][ACC_W-1]}}, acc_arr[KS]};
                assign south_v_w[j] = (OBS == 0 || IS_OS) ? 8'd0 : {7'd0, accv_arr[KS]};
            end
        end
        for (i = 0; i < GRID_ROWS; i = i + 1) begin : g_row
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
                // the word ports of this PE (OBS = 1)
                assign acc_w[K]   = OBS == 0 ? 32'd0 : {{(32-ACC_W){acc_arr[K][ACC_W-1]}}, acc_arr[K]};
                assign acc_v_w[K] = (OBS == 0 || IS_OS) ? 8'd0 : {7'd0, accv_arr[K]};
                assign stat_w[K]  = (OBS == 0 || IS_OS) ? 32'd0 : {{(32-NORTH_W){y_arr[K][NORTH_W-1]}}, y_arr[K]};
                qs_pe #(
                    .DATAFLOW(DATAFLOW), .XW(WEST_W), .YW(NORTH_W), .WPB(WPB),
                    .SHIFT_W(SHIFT_W), .ACC_W(ACC_W), .SATURATE(SATURATE), .GATE(GATE),
                    .LOOKAHEAD(LOOKAHEAD), .OFF_W(OFF_W), .REG_FLAGS(1)
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

    // ARRAY_STYLE = 1: every PE's registers, PE(i,j) at index i*COLS+j, the
    // same registers as qs_pe's (an OS PE has no x slice index or partial-sum
    // valid, a WS/IS PE no window index: those stay 0 from reset, as qs_pe's
    // constant outputs). Style 0 neither drives nor reads them.
    /* verilator lint_off UNUSEDSIGNAL */
    /* verilator lint_off UNDRIVEN */
    reg [XB-1:0]      x_q     [0:N-1];
    reg [W-1:0]       xv_q    [0:N-1];
    reg [SHIFT_W-1:0] xs_q    [0:N-1];
    reg [NORTH_W-1:0] y_q     [0:N-1];
    reg               yv_q    [0:N-1];
    reg [SHIFT_W-1:0] ys_q    [0:N-1];
    reg [OFF_W-1:0]   yo_q    [0:N-1];
    reg [ACC_W-1:0]   acc_q   [0:N-1];
    reg               accv_q  [0:N-1];
    /* verilator lint_on UNDRIVEN */
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (ARRAY_STYLE != 0) begin : g_loop
            // This clock's event counts (the registered counts of style 0's
            // popcounts).
            reg [CNT_W-1:0]   cnt_act, cnt_gate, cnt_ovf;
            // The word ports (OBS = 1), kept by the loop beside the registers
            // they show.
            reg [31:0]        accw_q    [0:N-1];
            reg [7:0]         accvw_q   [0:N-1];
            reg [31:0]        statw_q   [0:N-1];
            reg [31:0]        southw_q  [0:COLS-1];
            reg [7:0]         southvw_q [0:COLS-1];
            assign acc_w     = accw_q;
            assign acc_v_w   = accvw_q;
            assign stat_w    = statw_q;
            assign south_w   = southw_q;
            assign south_v_w = southvw_q;
            assign active_cnt = cnt_act;
            assign gated_cnt  = cnt_gate;
            assign ovf_cnt    = cnt_ovf;
            // One clock of the whole array: for each PE its inputs (the west
            // and north neighbours' registers of the last clock, or the edge
            // ports), its step, its register writes, and this clock's event
            // counts summed over the PEs. A task so that the generated C++
            // has the temporaries as locals of one function: Verilator keeps
            // a module-level temporary as a member of the model, which the
            // compiler must store and reload around every register write.
            //
            // Blocking writes, south-east corner first (as sim/pe_array.c
            // walks the array): a PE reads its west (k-1) and north (k-COLS)
            // neighbours before the loop reaches and overwrites them, so every
            // register loads its neighbour's value of the last clock, as the
            // nonblocking registers of style 0 do. Nothing else reads these
            // arrays during the edge (the outputs are continuous assignments).
            /* verilator lint_off BLKSEQ */
            task array_clock;
                output [CNT_W-1:0] n_act, n_gate, n_ovf;
                integer           li, lj;
                reg [XB-1:0]      l_x;
                reg [W-1:0]       l_xv;
                reg [SHIFT_W-1:0] l_xs, l_ys;
                reg [NORTH_W-1:0] l_y;
                reg               l_yv, l_psv;
                reg [OFF_W-1:0]   l_yo;
                reg [ACC_W-1:0]   l_ps;
                reg               s_en, s_gated, s_ovf, s_x_ok, s_yv; // pe_step's results
                reg [OFF_W-1:0]   s_yo;
                reg [ACC_W-1:0]   s_res;
                reg [ACC_W-1:0]   l_acc;
                integer           lk;
                begin
                    n_act = {CNT_W{1'b0}};
                    n_gate = {CNT_W{1'b0}};
                    n_ovf = {CNT_W{1'b0}};
                    for (li = ROWS - 1; li >= 0; li = li - 1)
                        for (lj = COLS - 1; lj >= 0; lj = lj - 1) begin
                            lk = li * COLS + lj;
                            if (lj == 0) begin
                                l_x  = west[li*XB +: XB];
                                l_xv = west_valid[li*W +: W];
                                l_xs = west_shift[li*SHIFT_W +: SHIFT_W];
                            end else begin
                                l_x  = x_q[lk-1];
                                l_xv = xv_q[lk-1];
                                l_xs = xs_q[lk-1];
                            end
                            if (li == 0) begin
                                l_y   = north[lj*NORTH_W +: NORTH_W];
                                l_yv  = north_valid[lj];
                                l_ys  = north_shift[lj*SHIFT_W +: SHIFT_W];
                                l_yo  = north_offset[lj*OFF_W +: OFF_W];
                                l_ps  = {ACC_W{1'b0}};
                                l_psv = 1'b0;
                            end else begin
                                l_y   = y_q[lk-COLS];
                                l_yv  = yv_q[lk-COLS];
                                l_ys  = ys_q[lk-COLS];
                                l_yo  = yo_q[lk-COLS];
                                l_ps  = acc_q[lk-COLS];
                                l_psv = accv_q[lk-COLS];
                            end
                            pe_step(l_x, l_xv, l_xs, l_y, l_yv, l_ys, l_yo, l_ps, clear, load,
                                    y_q[lk], yv_q[lk], ys_q[lk], acc_q[lk],
                                    s_en, s_gated, s_ovf, s_x_ok, s_yv, s_yo, s_res);
                            n_act  = n_act  + {{(CNT_W-1){1'b0}}, s_en};
                            n_gate = n_gate + {{(CNT_W-1){1'b0}}, s_gated};
                            n_ovf  = n_ovf  + {{(CNT_W-1){1'b0}}, s_ovf};
                            if (rst) begin
                                x_q[lk] = {XB{1'b0}};
                                xv_q[lk] = {W{1'b0}};
                                xs_q[lk] = {SHIFT_W{1'b0}};
                                y_q[lk] = {NORTH_W{1'b0}};
                                yv_q[lk] = 1'b0;
                                ys_q[lk] = {SHIFT_W{1'b0}};
                                yo_q[lk] = {OFF_W{1'b0}};
                                acc_q[lk] = {ACC_W{1'b0}};
                                accv_q[lk] = 1'b0;
                            end else if (IS_OS) begin
                                x_q[lk] = l_x;
                                xv_q[lk] = l_xv;
                                y_q[lk] = l_y;
                                yv_q[lk] = s_yv;
                                ys_q[lk] = l_ys;
                                yo_q[lk] = s_yo;
                                if (s_en)
                                    acc_q[lk] = s_res;
                                else if (clear)
                                    acc_q[lk] = {ACC_W{1'b0}};
                            end else if (load) begin
                                y_q[lk] = l_y;
                                yv_q[lk] = l_yv;
                                ys_q[lk] = l_ys;
                                xv_q[lk] = {W{1'b0}};
                                accv_q[lk] = 1'b0;
                            end else begin
                                x_q[lk] = l_x;
                                xv_q[lk] = l_xv;
                                xs_q[lk] = l_xs;
                                acc_q[lk] = s_en ? s_res : l_ps;
                                accv_q[lk] = s_x_ok | l_psv;
                            end
                            // (what OS or OBS = 0 ties to 0 is written on reset only)
                            l_acc = acc_q[lk];
                            if (OBS != 0 || rst)
                                accw_q[lk] = OBS == 0 ? 32'd0 : {{(32-ACC_W){l_acc[ACC_W-1]}}, l_acc};
                            if ((OBS != 0 && !IS_OS) || rst) begin
                                accvw_q[lk] = (OBS == 0 || IS_OS) ? 8'd0 : {7'd0, accv_q[lk]};
                                statw_q[lk] = (OBS == 0 || IS_OS) ? 32'd0
                                              : {{(32-NORTH_W){y_q[lk][NORTH_W-1]}}, y_q[lk]};
                                if (li == ROWS - 1) begin
                                    southw_q[lj] = (OBS == 0 || IS_OS) ? 32'd0 : accw_q[lk];
                                    southvw_q[lj] = accvw_q[lk];
                                end
                            end
                        end
                end
            endtask
            always @(posedge clk) begin : pe_loop
                reg [CNT_W-1:0] l_act, l_gate, l_ovf;
                array_clock(l_act, l_gate, l_ovf);
                cnt_act = rst ? {CNT_W{1'b0}} : l_act;
                cnt_gate = rst ? {CNT_W{1'b0}} : l_gate;
                cnt_ovf = rst ? {CNT_W{1'b0}} : l_ovf;
            end
            /* verilator lint_on BLKSEQ */
        end
    endgenerate

    // The flattened outputs (OBS = 0), filled slice by slice in one block:
    // one continuous assignment per slice becomes, in Verilator, nested
    // concatenations of the whole port (quadratic in the PE count), a loop
    // becomes in-place writes.
    reg [N*ACC_W-1:0]   acc_flat_r;
    reg [N-1:0]         accv_flat_r;
    reg [N*NORTH_W-1:0] stat_flat_r;
    reg [COLS*ACC_W-1:0] south_r;
    reg [COLS-1:0]       south_v_r;
    integer q;
    always @(*) begin
        for (q = 0; q < N; q = q + 1) begin
            acc_flat_r[q*ACC_W +: ACC_W]    = OBS != 0 ? {ACC_W{1'b0}} : ARRAY_STYLE != 0 ? acc_q[q] : acc_arr[q];
            accv_flat_r[q]                  = OBS != 0 ? 1'b0 : ARRAY_STYLE != 0 ? accv_q[q] : accv_arr[q];
            stat_flat_r[q*NORTH_W +: NORTH_W] = (IS_OS || OBS != 0) ? {NORTH_W{1'b0}}
                                                : ARRAY_STYLE != 0 ? y_q[q] : y_arr[q];
        end
        for (q = 0; q < COLS; q = q + 1) begin
            south_r[q*ACC_W +: ACC_W] = (IS_OS || OBS != 0) ? {ACC_W{1'b0}}
                                        : ARRAY_STYLE != 0 ? acc_q[(ROWS-1)*COLS+q] : acc_arr[(ROWS-1)*COLS+q];
            south_v_r[q]              = (IS_OS || OBS != 0) ? 1'b0
                                        : ARRAY_STYLE != 0 ? accv_q[(ROWS-1)*COLS+q] : accv_arr[(ROWS-1)*COLS+q];
        end
    end
    assign acc_flat       = acc_flat_r;
    assign acc_valid_flat = accv_flat_r;
    assign stat_flat      = stat_flat_r;
    assign south          = south_r;
    assign south_valid    = south_v_r;

    // Per-clock event counts (style 0): population counts of the PE flags,
    // which the PEs register (REG_FLAGS = 1), so that after edge n they count
    // clock n. Style 1 sums them in its loop.
    generate
        if (ARRAY_STYLE == 0) begin : g_count
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
            assign active_cnt = n_act;
            assign gated_cnt  = n_gate;
            assign ovf_cnt    = n_ovf;
        end
    endgenerate
endmodule
