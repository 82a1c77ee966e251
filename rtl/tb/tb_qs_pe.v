// Icarus self-check of qs_pe: two PEs (OS saturating with gating, WS
// wrapping without) driven with random operands and compared every clock
// with a behavioural model written with plain integers. A second simulator
// guards against relying on a Verilator-only reading of the Verilog.
// Prints "PASS" or "FAIL ..." and finishes.
module tb_qs_pe;
    localparam ACC_W = 8;
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg clear = 1'b0, load = 1'b0;
    reg signed [8:0] x = 0;
    reg signed [2:0] y = 0;
    reg xv = 1'b0, yv = 1'b0;
    reg [1:0] xs = 0, ys = 0;
    reg signed [ACC_W-1:0] psum = 0;
    reg psv = 1'b0;

    wire [8:0] os_x, ws_x;
    wire os_xv, ws_xv, os_yv, ws_yv, os_accv, ws_accv;
    wire [1:0] os_xs, ws_xs, os_ys, ws_ys;
    wire [2:0] os_y, ws_y;
    wire signed [ACC_W-1:0] os_acc, ws_acc;
    wire os_act, os_gat, os_ovf, ws_act, ws_gat, ws_ovf;

    qs_pe #(.DATAFLOW(1), .XW(9), .YW(3), .WPB(2), .SHIFT_W(2), .ACC_W(ACC_W),
            .SATURATE(1), .GATE(1)) os (
        .clk(clk), .rst(rst), .clear(clear), .load(load),
        .x_in(x), .x_v_in(xv), .x_s_in(xs), .y_in(y), .y_v_in(yv), .y_s_in(ys),
        .psum_in(psum), .psum_v_in(psv),
        .x_q(os_x), .x_v_q(os_xv), .x_s_q(os_xs), .y_q(os_y), .y_v_q(os_yv), .y_s_q(os_ys),
        .acc_q(os_acc), .acc_v_q(os_accv), .active(os_act), .gated(os_gat), .ovf(os_ovf));

    qs_pe #(.DATAFLOW(0), .XW(9), .YW(3), .WPB(2), .SHIFT_W(2), .ACC_W(ACC_W),
            .SATURATE(0), .GATE(0)) ws (
        .clk(clk), .rst(rst), .clear(clear), .load(load),
        .x_in(x), .x_v_in(xv), .x_s_in(xs), .y_in(y), .y_v_in(yv), .y_s_in(ys),
        .psum_in(psum), .psum_v_in(psv),
        .x_q(ws_x), .x_v_q(ws_xv), .x_s_q(ws_xs), .y_q(ws_y), .y_v_q(ws_yv), .y_s_q(ws_ys),
        .acc_q(ws_acc), .acc_v_q(ws_accv), .active(ws_act), .gated(ws_gat), .ovf(ws_ovf));

    always #5 clk = ~clk;

    // Behavioural reference state.
    integer os_ref, ws_ref, ws_stat, ws_stat_s, s, lo, hi, cyc, errors;
    integer ws_stat_v, exp_os_act, exp_os_gat, exp_os_ovf, exp_ws_act, exp_ws_ovf;
    initial begin
        lo = -(1 << (ACC_W - 1));
        hi = (1 << (ACC_W - 1)) - 1;
        os_ref = 0; ws_ref = 0; ws_stat = 0; ws_stat_s = 0; ws_stat_v = 0;
        errors = 0;
        @(negedge clk);
        @(negedge clk);
        rst = 1'b0;
        for (cyc = 0; cyc < 4000; cyc = cyc + 1) begin
            // New inputs half a clock before the edge.
            x = (($random & 3) == 0) ? 9'sd0 : $random;
            y = (($random & 3) == 0) ? 3'sd0 : $random;
            xv = ($random & 7) != 0;
            yv = ($random & 7) != 0;
            xs = $random;
            ys = $random;
            psum = $random;
            psv = $random;
            clear = ($random & 15) == 0;
            load = ($random & 7) == 0;
            #1;
            // OS reference: acc (+)= x*y << 2*ys, saturating, zero-gated.
            exp_os_act = 0; exp_os_gat = 0; exp_os_ovf = 0;
            if (clear) os_ref = 0;
            if (xv && yv) begin
                if (x == 0 || y == 0) exp_os_gat = 1;
                else begin
                    exp_os_act = 1;
                    s = os_ref + x * y * (1 << (2 * ys));
                    if (s < lo) begin os_ref = lo; exp_os_ovf = 1; end
                    else if (s > hi) begin os_ref = hi; exp_os_ovf = 1; end
                    else os_ref = s;
                end
            end
            // WS reference: load shifts the stationary in; otherwise
            // psum + x*stat << 2*(xs+stat_s), wrapping, not gated.
            exp_ws_act = 0; exp_ws_ovf = 0;
            if (load) begin
                ws_stat = y; ws_stat_s = ys; ws_stat_v = yv;
            end else begin
                s = psum;
                if (xv && ws_stat_v) begin
                    exp_ws_act = 1;
                    s = psum + x * ws_stat * (1 << (2 * (xs + ws_stat_s)));
                    if (s < lo || s > hi) exp_ws_ovf = 1;
                end
                ws_ref = ((s % 256) + 256) % 256;
                if (ws_ref > hi) ws_ref = ws_ref - 256;
            end
            if (os_act !== exp_os_act[0] || os_gat !== exp_os_gat[0] || os_ovf !== exp_os_ovf[0] ||
                ws_act !== exp_ws_act[0] || ws_gat !== 1'b0 || ws_ovf !== exp_ws_ovf[0]) begin
                $display("FAIL cycle %0d flags: os %b%b%b (exp %0d%0d%0d) ws %b%b%b (exp %0d0%0d)", cyc,
                         os_act, os_gat, os_ovf, exp_os_act, exp_os_gat, exp_os_ovf,
                         ws_act, ws_gat, ws_ovf, exp_ws_act, exp_ws_ovf);
                errors = errors + 1;
            end
            @(posedge clk);
            #1;
            if (os_acc !== os_ref[ACC_W-1:0]) begin
                $display("FAIL cycle %0d OS acc %0d expected %0d", cyc, os_acc, os_ref);
                errors = errors + 1;
            end
            if (ws_acc !== ws_ref[ACC_W-1:0] || ws_y !== ws_stat[2:0]) begin
                $display("FAIL cycle %0d WS psum %0d expected %0d, stat %0d expected %0d",
                         cyc, ws_acc, ws_ref, $signed(ws_y), ws_stat);
                errors = errors + 1;
            end
            if (errors > 10) begin
                $display("FAIL too many errors");
                $finish;
            end
            @(negedge clk);
        end
        if (errors == 0) $display("PASS: 4000 clocks, OS and WS PE agree with the behavioural model");
        else $display("FAIL: %0d errors", errors);
        $finish;
    end
endmodule
