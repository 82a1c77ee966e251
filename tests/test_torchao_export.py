#!/usr/bin/python3
"""torch.ao sub-8-bit route, end to end (docs/torchao_export.md, the worked example):
a small CNN whose qconfig declares 2-bit weights (quant_min -2, quant_max 1) and 4-bit
activations (0..15) is trained a few QAT steps on Fashion-MNIST, converted with torch.ao,
exported by scripts/qsim/torchao_export.py, run by `qsim run --input --labels` on dlac.cfg, and
qsim's predictions must equal torch's (the converted model with the declared activation
clamps), image by image; the .qbin must hold int2 weights and 4-bit activations; the NumPy
reference (qsim_qbin.evaluate) must give torch's output integers. Then the refusals:
an operator the exporter cannot express (naming the layer), a weight outside its declared
range. Exit 77 when torch or the dataset is missing.

usage: test_torchao_export.py QSIM SOURCE_DIR [--n N]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def build(torch, nn, tq, extra=None):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.extra = extra if extra is not None else nn.Identity()
            self.fc = nn.Linear(16 * 7 * 7, 10)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(self.quant(x))))
            x = self.extra(self.pool2(self.relu2(self.conv2(x))))
            return self.dequant(self.fc(torch.flatten(x, 1)))

    m = Net()
    act = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=15,
                                    dtype=torch.quint8)
    wt = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=-2, quant_max=1,
                                   dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    m.qconfig = tq.QConfig(activation=act, weight=wt)
    m.train()
    tq.fuse_modules_qat(m, [["conv1", "relu1"], ["conv2", "relu2"]], inplace=True)
    return tq.prepare_qat(m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsim")
    ap.add_argument("root")
    ap.add_argument("--n", type=int, default=500, help="test images through qsim")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    try:
        import torch
        import torch.nn as nn
        import torch.ao.quantization as tq
    except ImportError as exc:
        print("skip: %s" % exc)
        return 77
    import fmnist_data
    import qsim_qbin as qb
    from qsim import torchao_export as tx
    try:
        xtr, ytr = fmnist_data.load("train")
        xte, yte = fmnist_data.load("test")
    except fmnist_data.DatasetError as exc:
        print("skip: %s" % exc)
        return 77
    torch.manual_seed(0)
    torch.set_num_threads(2)
    torch.backends.quantized.engine = "qnnpack"
    x = torch.as_tensor(xtr[:4096].copy(), dtype=torch.float32) / 255.0
    y = torch.as_tensor(ytr[:4096].astype(np.int64))
    prepared = build(torch, nn, tq)
    opt = torch.optim.Adam(prepared.parameters(), lr=2e-3)
    for step in range(96):                       # a few QAT steps (batch 128)
        i = (step * 128) % 4096
        loss = nn.functional.cross_entropy(prepared(x[i:i + 128]), y[i:i + 128])
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.eval()
    converted = tq.convert(prepared)
    xt = torch.as_tensor(xte[:args.n], dtype=torch.float32) / 255.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ao.qbin")
        net = tx.export(converted, prepared, (1, 28, 28), path, name="ao_w2a4")
        back = qb.read(path)
        wdt = sorted({qb.dtype_name(back.tensors[l.weight].dtype, True) for l in back.layers if l.weight >= 0})
        check(wdt == ["int2"], "weights stored as %s (declared -2..1: int2)" % ",".join(wdt))
        bits = sorted({l.out_bits for l in back.layers})
        check(bits == [4], "every activation (input, conv, fc output) 4 bits (declared 0..15): %s" % bits)
        ref = tx.reference(converted, prepared, xt)                 # torch, declared clamps
        plain = converted(xt).argmax(1).numpy()                     # torch as converted (0..255)
        xin = tx.input_integers(converted, xt, prepared)
        numpy_out = np.array([qb.evaluate(net, xi)[net.output].reshape(-1) for xi in xin[:50]])
        same = int((numpy_out == ref[:50]).all(1).sum())
        check(same == 50, "NumPy reference output integers == torch's on %d of 50 images" % same)
        xp, yp, js = (os.path.join(tmp, f) for f in ("x.npy", "y.npy", "r.json"))
        np.save(xp, xin.astype(np.int32))
        np.save(yp, yte[:args.n].astype(np.int32))
        r = subprocess.run([args.qsim, "run", "--arch", os.path.join(args.root, "models", "arch", "dlac.cfg"),
                            path, "--input", xp, "--labels", yp, "--json", js, "-q"], capture_output=True, text=True)
        check(r.returncode == 0, "qsim run: %s" % r.stderr.strip())
        if r.returncode == 0:
            pred = np.array(json.load(open(js))["predictions"])
            tpred = ref.argmax(1)
            bad = np.nonzero(pred != tpred)[0]
            check(len(bad) == 0, "qsim predictions == torch's (declared clamps) on %d of %d test images" % (
                args.n - len(bad), args.n))
            acc = float((tpred == yte[:args.n]).mean())
            print("     accuracy %.4f; torch's converted model without the declared clamps agrees on %d of %d" % (
                acc, int((plain == tpred).sum()), args.n))
            check(acc > 0.5, "the few QAT steps learned something (accuracy %.4f > 0.5)" % acc)

        # refusals
        bad_model = tq.convert(build(torch, nn, tq, extra=nn.Hardswish()).eval())
        try:
            tx.export(bad_model, build(torch, nn, tq, extra=nn.Hardswish()), (1, 28, 28))
            check(False, "Hardswish refused")
        except tx.ExportError as exc:
            check("'extra'" in str(exc) and "Hardswish" in str(exc), "Hardswish refused: %s" % exc)
        wrong = build(torch, nn, tq)
        wrong.conv2.weight_fake_quant.quant_min = -1      # converted weights hold -2: out of range
        try:
            tx.export(converted, wrong, (1, 28, 28))
            check(False, "weight outside the declared range refused")
        except tx.ExportError as exc:
            check("'conv2'" in str(exc) and "outside the declared range" in str(exc),
                  "weight outside the declared range refused: %s" % exc)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
