#!/usr/bin/python3
"""scripts/export_qbin.py on small random models (no training):

- refusals: a module without a .qbin equivalent, a model not in quantized mode, reflect
  padding, a non-square kernel: each raises ExportError naming the layer;
- full-range 2-bit LSQ weights (wfull) reach the .qbin as int2 holding -2..1 (all four
  values used), ternary ones as int2 holding -1..1;
- int_forward's exact float32 convolution (taken when every partial sum is below 2^24)
  gives the same integers as the int64 tap-by-tap path, and export() checks both against
  qsim_qbin.evaluate. Exit 77 (skipped) without torch.

usage: test_export_qbin.py SOURCE_DIR"""
import os
import sys

import numpy as np

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    root = sys.argv[1]
    sys.path.insert(0, os.path.join(root, "scripts"))
    try:
        import torch
        import torch.nn as nn
    except ImportError:
        print("skip: no torch")
        return 77
    import export_qbin as eq
    import qsim_qbin as qb
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x_int = rng.integers(0, 256, size=(6, 1, 12, 12)).astype(np.uint8)
    xr = torch.as_tensor(x_int.astype(np.float32) / 255.0)

    def net(wbits=4, wfull=False, conv_kw=None):
        layers = [eq.QInput(1 / 255.0, name="input"),
                  eq.QConv2d(1, 8, 3, pad=1, wbits=8, abits=4, name="conv1"),
                  eq.QConv2d(8, 16, 3, pad=1, wbits=wbits, abits=4, wfull=wfull, name="conv2", **(conv_kw or {})),
                  eq.QMaxPool(2, name="pool"),
                  eq.QLinear(16 * 6 * 6, 10, wbits=8, name="fc")]
        m = eq.QNet(layers)
        m.eval()
        m.fold_bn_()
        m.set_quant(True)
        m.train()
        with torch.no_grad():
            m(xr)
        m.eval()
        return m

    def refused(m, layer, what):
        try:
            eq.export(m, "t", x_int)
        except eq.ExportError as exc:
            check(("'%s'" % layer) in str(exc), "%s: ExportError naming '%s': %s" % (what, layer, exc))
            return
        check(False, "%s: exported" % what)

    relu = nn.ReLU()
    relu.lname = "act"
    m = net()
    m.layers.insert(3, relu)
    refused(m, "act", "a bare nn.ReLU")
    m = net()
    m.set_quant(False)
    refused(m, "input", "a model not in quantized mode")
    m = net()
    m.layers[2].conv.padding_mode = "reflect"
    refused(m, "conv2", "reflect padding")
    m = eq.QNet([eq.QInput(1 / 255.0, name="input"), eq.QConv2d(1, 4, (3, 1), pad=0, name="tall")])
    m.set_quant(True)
    m.train()
    with torch.no_grad():
        m(xr)
    refused(m, "tall", "a 3x1 kernel")

    for wfull, lo, vals in ((True, -2, {-2, -1, 0, 1}), (False, -1, {-1, 0, 1})):
        m = net(wbits=2, wfull=wfull)
        with torch.no_grad():          # a small step, so that the range's ends are reached
            m.layers[2].wq.step.fill_(float(m.layers[2].folded()[0].abs().mean()) * 0.6)
        netq, logits = eq.export(m, "w2", x_int)
        w = np.asarray(m.layers[2].int_params(m.layers[1].aq.step)[0].numpy(), dtype=np.int64)
        check(set(np.unique(w).tolist()) == vals, "2-bit weights, full range %s: values %s" % (
            wfull, sorted(set(np.unique(w).tolist()))))
        lw = [t for t in netq.summary().split("\n") if "conv2" in t]
        check(len(lw) == 1 and "int2" in lw[0], "2-bit weights stored as int2: %s" % (lw[0].strip() if lw else "?"))

    # 3-bit weights (W3A3): values [-4, 3] unchanged, stored in int4, the outputs 3 bits (0..7)
    check([eq.storage_bits(b) for b in (1, 2, 3, 4, 5, 8)] == [1, 2, 4, 4, 8, 8],
          "storage bits of 1, 2, 3, 4, 5, 8-bit weights: 1, 2, 4, 4, 8, 8")
    m = net(wbits=3, wfull=True)
    with torch.no_grad():
        m.layers[2].wq.step.fill_(float(m.layers[2].folded()[0].abs().mean()) * 0.4)
    netq, logits = eq.export(m, "w3", x_int)
    w = np.asarray(m.layers[2].int_params(m.layers[1].aq.step)[0].numpy(), dtype=np.int64)
    check(w.min() == -4 and w.max() == 3, "3-bit weights, full range: values %d..%d (-4..3)" % (w.min(), w.max()))
    lw = [t for t in netq.summary().split("\n") if "conv2" in t]
    check(len(lw) == 1 and "int4" in lw[0], "3-bit weights stored as int4: %s" % (lw[0].strip() if lw else "?"))
    wt = netq.tensors[[l for l in netq.layers if l.name == "conv2"][0].weight]
    check(np.array_equal(np.asarray(wt.data).reshape(w.shape), w), "the stored int4 values are the 3-bit integers")

    m = net()
    ir = eq.lower(m, x_int.shape[1:])
    calls = []
    saved = eq.F.conv2d
    eq.F.conv2d = lambda *a, **k: calls.append(1) or saved(*a, **k)
    try:
        fast = eq.int_forward(ir, x_int).numpy()
    finally:
        eq.F.conv2d = saved
    check(len(calls) == 2, "the float32 convolution is taken for both convs (partial sums below 2^24)")
    eq.EXACT_F32_CONV = False
    slow = eq.int_forward(ir, x_int).numpy()
    eq.EXACT_F32_CONV = True
    check(np.array_equal(fast, slow), "float32-path int_forward == the int64 tap-by-tap path, every output")
    netq, logits = eq.export(m, "f32", x_int)
    ref = np.stack([qb.evaluate(netq, xi)[netq.output].ravel() for xi in x_int])
    check(np.array_equal(ref, fast.reshape(len(x_int), -1)), "float32-path int_forward == qsim_qbin.evaluate")
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
