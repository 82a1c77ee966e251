// qs_pe_step.vh: one PE's clock as a task, included inside qs_pe (one PE) and
// qs_pe_array (ARRAY_STYLE = 1: every PE in one loop), so that both describe
// the same datapath once. The including module defines IS_OS, XW,
// YW, W (= LOOKAHEAD + 1) and has the parameters WPB, SHIFT_W, ACC_W,
// SATURATE, GATE, LOOKAHEAD and OFF_W (meanings: qs_pe.v).
    localparam PW    = XW + YW;
    // Largest shift: OS uses one index, WS/IS the sum of two.
    localparam MAXSH = WPB * ((1 << SHIFT_W) - 1) * (IS_OS ? 1 : 2);
    localparam SPW   = PW + MAXSH;
    localparam SW    = (SPW > ACC_W ? SPW : ACC_W) + 1;

    // One clock's datapath as a task of the inputs and the registers, so that
    // the same logic serves both REG_FLAGS settings (qs_pe.v) and the array's
    // loop. Its results are separate outputs rather than one packed word (a
    // function's value): Verilator then keeps each in a variable of its own,
    // where packing and unpacking cost a sixth of the array's clock
    // (docs/performance-rtl.md). Outputs: o_en (the product is added:
    // active), o_gated, o_ovf (the addition overflows), o_x_ok (the west
    // operand is valid), o_yv (the weight's valid as passed south), o_yo (its
    // window index as passed south), o_res (the new accumulator / partial sum
    // when o_en).
    //   Lookahead: the window entry the weight names (entry 0 without
    //   lookahead); an index past the window (only when H+1 is not a power of
    //   two) selects nothing.
    //   Operand isolation: see the header.
    //   OS adds to the accumulator (or 0 on clear), WS/IS to the partial sum
    //   from the north; a WS/IS load clock does no arithmetic at all.
    task pe_step;
        input [W*XW-1:0]    xi;
        input [W-1:0]       xvi;
        input [SHIFT_W-1:0] xsi;
        input [YW-1:0]      yi;
        input               yvi;
        input [SHIFT_W-1:0] ysi;
        input [OFF_W-1:0]   yoi;
        input [ACC_W-1:0]   psi;
        input               clr;
        input               ld;
        input [YW-1:0]      yr;
        input               yvr;
        input [SHIFT_W-1:0] ysr;
        input [ACC_W-1:0]   accr;
        output              o_en, o_gated, o_ovf, o_x_ok, o_yv;
        output [OFF_W-1:0]  o_yo;
        output [ACC_W-1:0]  o_res;
        reg               yo_ok, yv_use, x_ok, y_ok, both, zero, en, out_of_range;
        reg [OFF_W-1:0]   yo_use;
        reg [XW-1:0]      x_op, mx;
        reg [YW-1:0]      y_op, my;
        reg [SHIFT_W:0]   sh;
        reg signed [PW-1:0] prod;
        reg [31:0]        sha;
        reg [SW-1:0]      prod_sh, sum;
        reg [ACC_W-1:0]   base, sat_val, res;
        integer           wi;
        begin
            if (LOOKAHEAD > 0 && (1 << OFF_W) > LOOKAHEAD + 1)
                yo_ok = {{(32 - OFF_W){1'b0}}, yoi} <= LOOKAHEAD;
            else
                yo_ok = 1'b1;
            yo_use = (LOOKAHEAD > 0 && yo_ok) ? yoi : {OFF_W{1'b0}};
            yv_use = yvi & yo_ok;
            x_op = xi[XW-1:0];
            x_ok = xvi[0];
            for (wi = 1; wi <= LOOKAHEAD; wi = wi + 1)
                if (yo_use == wi[OFF_W-1:0]) begin
                    x_op = xi[wi*XW +: XW];
                    x_ok = xvi[wi];
                end
            y_op = IS_OS ? yi : yr;
            y_ok = IS_OS ? yv_use : yvr;
            sh   = IS_OS ? {1'b0, ysi} : ({1'b0, xsi} + {1'b0, ysr});
            both = x_ok & y_ok & (IS_OS ? 1'b1 : ~ld);
            zero = (x_op == {XW{1'b0}}) | (y_op == {YW{1'b0}});
            en   = both & ~((GATE != 0) & zero);
            mx   = (GATE != 0) ? (x_op & {XW{en}}) : x_op;
            my   = (GATE != 0) ? (y_op & {YW{en}}) : y_op;
            prod = $signed(mx) * $signed(my);
            sha  = WPB * {{(31 - SHIFT_W){1'b0}}, sh};
            prod_sh = {{(SW - PW){prod[PW-1]}}, prod} << sha;
            base = IS_OS ? (clr ? {ACC_W{1'b0}} : accr) : psi;
            sum  = {{(SW - ACC_W){base[ACC_W-1]}}, base} + prod_sh;
            out_of_range = sum[SW-1:ACC_W-1] != {(SW - ACC_W + 1){sum[SW-1]}};
            sat_val = sum[SW-1] ? {1'b1, {(ACC_W - 1){1'b0}}} : {1'b0, {(ACC_W - 1){1'b1}}};
            res  = ((SATURATE != 0) & out_of_range) ? sat_val : sum[ACC_W-1:0];
            o_en    = en;
            o_gated = both & (GATE != 0) & zero;
            o_ovf   = en & out_of_range;
            o_x_ok  = x_ok;
            o_yv    = yv_use;
            o_yo    = yo_use;
            o_res   = res;
        end
    endtask

