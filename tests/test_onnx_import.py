#!/usr/bin/python3
"""qsim import (scripts/onnx_import.py) end to end.

usage: test_onnx_import.py torch|qonnx|errors QSIM_BINARY SOURCE_DIR

torch:  a small CNN (conv-relu-maxpool-conv-relu-add-gap-fc) trained on synthetic
        oriented gratings, quantized with torch.ao.quantization (qnnpack, 8 bits,
        per-channel conv weights, per-tensor fc), exported with torch.onnx.export (torch
        1.13 writes QDQ); the same network also written in QOperator form (QLinearConv,
        ConvInteger, MatMulInteger, integer MaxPool) with onnx.helper. Both are imported
        with `qsim import`, run with `qsim run` on 64 inputs, and their predictions must
        equal the torch quantized model's; the outputs are also compared with a NumPy
        evaluation of the ONNX graphs (below).
qonnx:  QONNX graphs built with onnx.helper (Quant at 2, 4 and 8 bits, per-channel
        scales, BipolarQuant weights, Trunc versions 1 and 2, QLinearMatMul in a second
        graph) imported and run through qsim: every output integer must equal the NumPy
        evaluation of the same graph.
errors: unsupported op, unsupported attribute, truncated / corrupt / empty files, a float
        (unquantized) conv: each refused with one line naming it and a non-zero status.

The NumPy evaluator here follows the ONNX and QONNX operator definitions in float64; it
shares no code with the importer. Exit 77 (skipped) only when a Python package the mode
needs (onnx; torch for the torch mode) is not installed.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nph
except ImportError:
    print("SKIP: the Python onnx package is not installed (scripts/setup-deps --tests installs python3-onnx)")
    sys.exit(77)

FAILS = []


def check(cond, msg):
    if cond:
        print("ok   " + msg)
    else:
        print("FAIL " + msg)
        FAILS.append(msg)


# ---------------------------------------------------------------------------- NumPy ONNX evaluator

def _conv(x, w, pads, strides, dil, group):
    """float64 / int64 2-D convolution, x (C,H,W), w (M, C/g, kh, kw)."""
    c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.zeros((c, h + pt + pb, wd + pl + pr), x.dtype)
    xp[:, pt:pt + h, pl:pl + wd] = x
    oh_ = (h + pt + pb - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow_ = (wd + pl + pr - dil[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((m, oh_, ow_), np.result_type(x.dtype, w.dtype))
    mg = m // group
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[:, ky * dil[0]:ky * dil[0] + strides[0] * (oh_ - 1) + 1:strides[0],
                     kx * dil[1]:kx * dil[1] + strides[1] * (ow_ - 1) + 1:strides[1]]
            for g in range(group):
                out[g * mg:(g + 1) * mg] += np.einsum("mc,chw->mhw", w[g * mg:(g + 1) * mg, :, ky, kx],
                                                      tap[g * cg:(g + 1) * cg])
    return out


def _pool(x, k, strides, pads, fn, fill):
    c, h, w = x.shape
    pt, pl, pb, pr = pads
    xp = np.full((c, h + pt + pb, w + pl + pr), fill, np.float64)
    xp[:, pt:pt + h, pl:pl + w] = x
    oh_ = (h + pt + pb - k[0]) // strides[0] + 1
    ow_ = (w + pl + pr - k[1]) // strides[1] + 1
    taps = [xp[:, ky:ky + strides[0] * (oh_ - 1) + 1:strides[0], kx:kx + strides[1] * (ow_ - 1) + 1:strides[1]]
            for ky in range(k[0]) for kx in range(k[1])]
    return fn(np.stack(taps), axis=0)


def _bcast(p, x, axis):
    """A per-axis parameter (1-D) shaped to broadcast along `axis` of x; scalars as they are."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    shp = [1] * x.ndim
    shp[axis] = -1
    return p.reshape(shp)


def _qround(v, mode):
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.rint(v)
    if mode == "FLOOR":
        return np.floor(v)
    if mode == "CEIL":
        return np.ceil(v)
    if mode == "HALF_UP":
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    raise ValueError(mode)


def _qlimits(signed, narrow, bits):
    if signed:
        return -(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - narrow


def evaluate_onnx(model, x):
    """Every value of the graph for the input x (batch 1), as float64 / int64 arrays with
    the batch dimension."""
    g = model.graph
    v = {t.name: nph.to_array(t) for t in g.initializer}
    inp = [i for i in g.input if i.name not in v][0]
    v[inp.name] = x
    for n in g.node:
        a = {at.name: oh.get_attribute_value(at) for at in n.attribute}
        a = {k: (val.decode() if isinstance(val, bytes) else val) for k, val in a.items()}
        i = [v[name] if name else None for name in n.input]
        op = n.op_type
        if op == "Constant":
            r = nph.to_array(a["value"])
        elif op == "Identity":
            r = i[0]
        elif op == "Cast":
            r = i[0].astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[a["to"]])
        elif op == "ConstantOfShape":
            val = nph.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            r = np.full(tuple(i[0]), val.ravel()[0], val.dtype)
        elif op == "Reshape":
            r = i[0].reshape([d if d != 0 else i[0].shape[k] for k, d in enumerate(i[1])])
        elif op == "Flatten":
            r = i[0].reshape(i[0].shape[0], -1)
        elif op == "QuantizeLinear":
            zp = i[2] if len(i) > 2 else np.zeros((), np.uint8)
            s = _bcast(i[1], i[0], a.get("axis", 1))
            lo, hi = np.iinfo(zp.dtype).min, np.iinfo(zp.dtype).max
            r = np.clip(np.rint(i[0] / s.astype(np.float64)) + _bcast(zp, i[0], a.get("axis", 1)), lo, hi)
            r = r.astype(zp.dtype)
        elif op == "DequantizeLinear":
            ax = a.get("axis", 1)
            zp = i[2] if len(i) > 2 else np.zeros((), np.int64)
            r = (i[0].astype(np.int64) - _bcast(zp, i[0], ax).astype(np.int64)) * _bcast(i[1], i[0], ax).astype(np.float64)
        elif op in ("Conv", "ConvInteger", "QLinearConv"):
            if op == "Conv":
                xx, w, b = i[0][0].astype(np.float64), i[1].astype(np.float64), i[2] if len(i) > 2 else None
            elif op == "ConvInteger":
                xz = i[2] if len(i) > 2 and i[2] is not None else 0
                wz = i[3] if len(i) > 3 and i[3] is not None else 0
                xx = i[0][0].astype(np.int64) - np.int64(xz)
                w = i[1].astype(np.int64) - _bcast(wz, i[1], 0).astype(np.int64)
                b = None
            else:
                xx = i[0][0].astype(np.int64) - np.int64(i[2])
                w = i[3].astype(np.int64) - _bcast(i[5], i[3], 0).astype(np.int64)
                b = i[8] if len(i) > 8 else None
            y = _conv(xx, w, a.get("pads", [0, 0, 0, 0]), a.get("strides", [1, 1]), a.get("dilations", [1, 1]),
                      a.get("group", 1))
            if b is not None:
                y = y + b.reshape(-1, 1, 1)
            if op == "QLinearConv":
                real = y * (np.float64(i[1]) * _bcast(i[4], y, 0).astype(np.float64)) / np.float64(i[6])
                lo, hi = np.iinfo(i[7].dtype).min, np.iinfo(i[7].dtype).max
                y = np.clip(np.rint(real) + np.int64(i[7]), lo, hi).astype(i[7].dtype)
            elif op == "ConvInteger":
                y = y.astype(np.int32)
            r = y[None]
        elif op == "Gemm":
            b = i[1].T if a.get("transB", 0) else i[1]
            r = a.get("alpha", 1.0) * (i[0].astype(np.float64) @ b.astype(np.float64))
            if len(i) > 2 and i[2] is not None:
                r = r + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            r = i[0].astype(np.float64) @ i[1].astype(np.float64)
        elif op == "MatMulInteger":
            az = i[2] if len(i) > 2 and i[2] is not None else 0
            bz = i[3] if len(i) > 3 and i[3] is not None else 0
            r = ((i[0].astype(np.int64) - np.int64(az)) @ (i[1].astype(np.int64) - np.asarray(bz, np.int64))).astype(np.int32)
        elif op == "QLinearMatMul":
            acc = (i[0].astype(np.int64) - np.int64(i[2])) @ (i[3].astype(np.int64) - np.asarray(i[5], np.int64))
            real = acc * (np.float64(i[1]) * np.asarray(i[4], np.float64)) / np.float64(i[6])
            lo, hi = np.iinfo(i[7].dtype).min, np.iinfo(i[7].dtype).max
            r = np.clip(np.rint(real) + np.int64(i[7]), lo, hi).astype(i[7].dtype)
        elif op == "Add":
            r = i[0] + i[1]
            if np.issubdtype(i[0].dtype, np.integer) and i[0].dtype == i[1].dtype:
                r = r.astype(i[0].dtype)
        elif op == "Mul":
            r = i[0].astype(np.float64) * i[1].astype(np.float64)
        elif op == "Relu":
            r = np.maximum(i[0], 0).astype(i[0].dtype)
        elif op == "MaxPool":
            r = _pool(i[0][0].astype(np.float64), a["kernel_shape"], a.get("strides", [1, 1]),
                      a.get("pads", [0, 0, 0, 0]), np.max, -np.inf)[None].astype(i[0].dtype)
        elif op == "AveragePool":
            r = _pool(i[0][0], a["kernel_shape"], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]),
                      np.mean, 0.0)[None]
        elif op == "GlobalAveragePool":
            r = i[0].astype(np.float64).mean(axis=(2, 3), keepdims=True)
        elif op in ("Quant", "IntQuant"):
            bits = int(np.asarray(i[3]).ravel()[0])
            lo, hi = _qlimits(a.get("signed", 1), a.get("narrow", 0), bits)
            q = _qround(np.clip(i[0] / i[1] + i[2], lo, hi), a.get("rounding_mode", "ROUND"))
            r = (q - i[2]) * i[1]
        elif op == "BipolarQuant":
            r = np.where(i[0] >= 0, 1.0, -1.0) * i[1]
        elif op == "Trunc":
            mode = a.get("rounding_mode", "FLOOR")
            q = np.rint(i[0] / i[1] + i[2])
            if len(i) == 5:      # version 1: X, scale, zeropt, in_bitwidth, out_bitwidth
                t = 2.0 ** (float(i[3]) - float(i[4]))
                r = (_qround(q / t, mode) - i[2]) * i[1]
            else:                # version 2: X, scale, zeropt, in_bitwidth, out_scale, out_bitwidth
                t = 2.0 ** np.round(np.log2(i[4] / i[1]))
                lo, hi = _qlimits(a.get("signed", 1), a.get("narrow", 0), int(i[5]))
                r = (_qround(np.clip(q / t, lo, hi), mode) - i[2] / t) * i[4]
        else:
            raise ValueError("evaluator: no %s" % op)
        v[n.output[0]] = r
    return v


# ---------------------------------------------------------------------------- helpers

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)


def qsim_import(qsim, model, out, extra=()):
    r = run([qsim, "import", model, "-o", out, "--report"] + list(extra))
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    return r


def qsim_outputs(qsim, arch, qbin, xs, tmp, tag):
    """Run qsim on each input (C,H,W) ints; the output layer's values for each."""
    sys.path.insert(0, os.path.join(SRC, "scripts"))
    import qsim_qbin as qb
    net = qb.read(qbin)
    outs = []
    for k, x in enumerate(xs):
        xp = os.path.join(tmp, "%s_x%d.npy" % (tag, k))
        np.save(xp, np.asarray(x, np.int32))
        d = os.path.join(tmp, "%s_d%d" % (tag, k))
        r = run([qsim, "run", "--arch", arch, qbin, "--input", xp, "--dump-outputs", d, "-q"])
        if r.returncode != 0:
            raise SystemExit("qsim run failed: " + r.stderr)
        f = [n for n in os.listdir(d) if n.startswith("%03d_" % net.output)][0]
        outs.append(np.load(os.path.join(d, f)).ravel().astype(np.int64))
    return np.stack(outs), net


# ---------------------------------------------------------------------------- torch

def torch_mode(qsim, tmp):
    try:
        import torch
        import torch.nn as nn
        import torch.ao.quantization as tq
    except ImportError:
        print("SKIP: torch is not installed (scripts/setup-deps --tests installs python3-torch)")
        return 77
    sys.path.insert(0, os.path.join(SRC, "scripts"))
    import qsim_qbin as qb
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        print("SKIP: this torch has no qnnpack engine")
        return 77
    torch.backends.quantized.engine = "qnnpack"
    ncls, size = 10, 14

    class Net(nn.Module):
        def __init__(s):
            super().__init__()
            s.q, s.dq = tq.QuantStub(), tq.DeQuantStub()
            s.c1, s.r1, s.p = nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
            s.c2, s.r2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
            s.add = nn.quantized.FloatFunctional()
            s.gap, s.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, ncls)

        def forward(s, x):
            x = s.p(s.r1(s.c1(s.q(x))))
            x = s.add.add(x, s.r2(s.c2(x)))
            return s.dq(s.fc(torch.flatten(s.gap(x), 1)))

    def data(n, gen):
        """Oriented gratings: the class sets the orientation (and the frequency's parity)."""
        y = torch.randint(0, ncls, (n,), generator=gen)
        ang = y.float() * (np.pi / 5) + 0.05 * torch.randn(n, generator=gen)
        fr = 0.9 + 0.25 * (y % 2).float()
        ph = 2 * np.pi * torch.rand(n, generator=gen)
        yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
        u = xx[None] * torch.cos(ang)[:, None, None] + yy[None] * torch.sin(ang)[:, None, None]
        x = torch.sin(fr[:, None, None] * u + ph[:, None, None]) + 0.2 * torch.randn(n, size, size, generator=gen)
        return x[:, None], y

    gen = torch.Generator().manual_seed(1)
    xtr, ytr = data(2000, gen)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(8):
        for i in range(0, 2000, 50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[i:i + 50]), ytr[i:i + 50]).backward()
            opt.step()
    model.eval()
    model = tq.fuse_modules(model, [["c1", "r1"], ["c2", "r2"]])
    model.qconfig = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=False),
                               weight=tq.default_per_channel_weight_observer)
    model.fc.qconfig = tq.get_default_qconfig("qnnpack")          # per-tensor weights
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        model(xtr[:500])                                          # calibration
    tq.convert(model, inplace=True)
    xte, yte = data(64, torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref_pred = model(xte).argmax(1).numpy()
        xq = model.q(xte).int_repr().numpy().astype(np.int64)     # the input integers
        pooled = model.p(model.c1(model.q(xte)))
        logits = model.fc(torch.flatten(model.gap(model.add.add(pooled, model.c2(pooled))), 1))
        tq_ints = logits.int_repr().numpy().astype(np.int64)
    top2 = np.sort(tq_ints, 1)[:, -2:]
    print("torch quantized model: %.1f%% on 64 test inputs; smallest top-2 logit margin %d steps"
          % (100 * (ref_pred == yte.numpy()).mean(), (top2[:, 1] - top2[:, 0]).min()))

    qdq = os.path.join(tmp, "cnn_qdq.onnx")
    torch.onnx.export(model, xte[:1], qdq, opset_version=13)
    m = onnx.load(qdq)
    ops = sorted(set(n.op_type for n in m.graph.node))
    print("torch %s exports: %s" % (torch.__version__, ", ".join(ops)))
    check("QuantizeLinear" in ops and "DequantizeLinear" in ops and "QLinearConv" not in ops,
          "torch.onnx.export writes the QDQ form")
    qop = os.path.join(tmp, "cnn_qop.onnx")
    onnx.save(qoperator_from_qdq(m), qop)

    arch = os.path.join(SRC, "models", "arch", "tpu_int8.cfg")
    xs_path = os.path.join(tmp, "x64.npy")
    np.save(xs_path, xq.astype(np.int32))
    results = {}
    for tag, path in (("QDQ", qdq), ("QOperator", qop)):
        out = os.path.join(tmp, tag + ".qbin")
        r = qsim_import(qsim, path, out)
        check(r.returncode == 0 and "form" in r.stdout, "%s: qsim import succeeds" % tag)
        if r.returncode:
            continue
        print(r.stdout.rstrip())
        js = os.path.join(tmp, tag + ".json")
        d = os.path.join(tmp, tag + "_dump")
        r = run([qsim, "run", "--arch", arch, out, "--input", xs_path, "--json", js, "--dump-outputs", d,
                 "--dump-index", str(len(xq) - 1), "-q"])    # the last input's layers (a batch dumps them all)
        check(r.returncode == 0, "%s: qsim run on 64 inputs" % tag)
        if r.returncode:
            print(r.stderr)
            continue
        pred = np.array(json.load(open(js))["predictions"])
        same = int((pred == ref_pred).sum())
        check(same == 64, "%s: qsim predictions identical to the torch quantized model's (%d of 64)" % (tag, same))
        net = qb.read(out)
        outs = [qb.evaluate(net, x) for x in xq]
        last = outs[-1]
        dumped = all(np.array_equal(np.load(os.path.join(d, f)).astype(np.int64), last[int(f[:3])])
                     for f in os.listdir(d))
        check(dumped and len(os.listdir(d)) == len(net.layers),
              "%s: qsim's layer outputs (last input) equal the qsim_qbin reference evaluator's" % tag)
        ints = np.stack([o[net.output].ravel() for o in outs])
        # the same graph evaluated by NumPy (ONNX semantics, float64): the logits' integers
        om = onnx.load(path)
        want = []
        for x in xte.numpy():
            vals = evaluate_onnx(om, x[None].astype(np.float32))
            q = [n for n in om.graph.node if n.op_type == "QuantizeLinear"][-1]
            want.append(vals[q.output[0]].ravel().astype(np.int64))
        want = np.stack(want)
        agree = int((want == ints).sum())
        check(agree >= 0.99 * want.size and np.abs(want - ints).max() <= 1,
              "%s: output integers equal the NumPy ONNX evaluation on %d of %d (the rest by one)"
              % (tag, agree, want.size))
        results[tag] = ints
        print("     %s: output integers equal torch's on %d of %d (torch 1.13's exporter truncates the "
              "int32 biases that its qnnpack kernels round)" % (tag, int((tq_ints == ints).sum()), ints.size))
    if len(results) == 2:
        check(np.array_equal(results["QDQ"], results["QOperator"]) or
              (results["QDQ"] != results["QOperator"]).sum() <= 2,
              "QDQ and QOperator forms give the same integers (%d of %d differ)"
              % ((results["QDQ"] != results["QOperator"]).sum(), results["QDQ"].size))
    return 0


def qoperator_from_qdq(m):
    """The torch QDQ export of the test CNN, rewritten in QOperator form: QLinearConv (c1),
    ConvInteger + int32 bias + Cast + Mul + QuantizeLinear (c2), MaxPool on uint8,
    MatMulInteger for the fc; Add and GlobalAveragePool keep DequantizeLinear/QuantizeLinear
    (standard ONNX has no integer versions of them). Same integers and scales as the file."""
    const = {t.name: nph.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            const[n.output[0]] = nph.to_array(n.attribute[0].t)
        if n.op_type == "ConstantOfShape":
            const[n.output[0]] = np.zeros(tuple(const[n.input[0]]), np.float32)
        if n.op_type == "Cast" and n.input[0] in const:
            const[n.output[0]] = const[n.input[0]].astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[n.attribute[0].i])
    prod = {o: n for n in m.graph.node for o in n.output}

    def dq_params(name):
        """(integer source, scale, zero point) of a DequantizeLinear output."""
        n = prod[name]
        assert n.op_type == "DequantizeLinear"
        return n.input[0], const[n.input[1]], const[n.input[2]]

    def quant_of(node_out):
        """The QuantizeLinear consuming node_out (possibly through a Relu)."""
        for n in m.graph.node:
            if node_out in n.input and n.op_type == "Relu":
                return quant_of(n.output[0])
            if node_out in n.input and n.op_type == "QuantizeLinear":
                return n
        raise AssertionError("no quantizer after " + node_out)

    def int_src(dq_out):
        src = prod[dq_out].input[0]
        while prod[src].op_type == "Cast":
            src = prod[src].input[0]
        return src

    nodes, inits = [], []

    def C(name, arr):
        inits.append(nph.from_array(np.asarray(arr), name))
        return name

    qin = [n for n in m.graph.node if n.op_type == "QuantizeLinear"][0]
    xin = m.graph.input[0].name
    nodes.append(oh.make_node("QuantizeLinear", [xin, C("xs", const[qin.input[1]]), C("xz", const[qin.input[2]])],
                              ["xq"], name="quant_in"))
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    names = {}
    names[qin.output[0]] = "xq"
    # c1: QLinearConv
    c1 = convs[0]
    xsrc, xs, xz = dq_params(c1.input[0])
    w, ws, wz = dq_params(c1.input[1])
    b, _, _ = dq_params(c1.input[2])
    q1 = quant_of(c1.output[0])
    nodes.append(oh.make_node("QLinearConv", ["xq", C("c1.xs", xs), C("c1.xz", xz), C("c1.w", const[w]),
                                              C("c1.ws", ws), C("c1.wz", wz), C("c1.ys", const[q1.input[1]]),
                                              C("c1.yz", const[q1.input[2]]), C("c1.b", const[b])], ["c1"],
                              name="c1", **{a.name: oh.get_attribute_value(a) for a in c1.attribute}))
    mp = [n for n in m.graph.node if n.op_type == "MaxPool"][0]
    nodes.append(oh.make_node("MaxPool", ["c1"], ["p"], name="pool",
                              **{a.name: oh.get_attribute_value(a) for a in mp.attribute}))
    # c2: ConvInteger + bias + Cast + Mul + Relu + QuantizeLinear
    c2 = convs[1]
    _, ps, pz = dq_params(c2.input[0])
    w, ws, wz = dq_params(c2.input[1])
    b, _, _ = dq_params(c2.input[2])
    q2 = quant_of(c2.output[0])
    cout = const[w].shape[0]
    nodes += [oh.make_node("ConvInteger", ["p", C("c2.w", const[w]), C("c2.xz", pz)], ["c2.acc"], name="c2",
                           **{a.name: oh.get_attribute_value(a) for a in c2.attribute if a.name != "group"}),
              oh.make_node("Add", ["c2.acc", C("c2.b", const[b].reshape(1, cout, 1, 1))], ["c2.accb"], name="c2.bias"),
              oh.make_node("Cast", ["c2.accb"], ["c2.f"], to=TP.FLOAT, name="c2.cast"),
              oh.make_node("Mul", ["c2.f", C("c2.scale", (np.float32(ps) * ws.astype(np.float32)).reshape(1, cout, 1, 1))],
                           ["c2.real"], name="c2.scale"),
              oh.make_node("Relu", ["c2.real"], ["c2.relu"], name="c2.relu"),
              oh.make_node("QuantizeLinear", ["c2.relu", C("c2.ys", const[q2.input[1]]), C("c2.yz", const[q2.input[2]])],
                           ["c2"], name="c2.q")]
    # residual add and global average pool in QDQ form
    add = [n for n in m.graph.node if n.op_type == "Add"][0]
    qa = quant_of(add.output[0])
    gap = [n for n in m.graph.node if n.op_type == "GlobalAveragePool"][0]
    qg = quant_of(gap.output[0])
    nodes += [oh.make_node("DequantizeLinear", ["p", "c2.xs_", "c2.xz_"], ["p.f"], name="p.dq"),
              oh.make_node("DequantizeLinear", ["c2", "c2.ys", "c2.yz"], ["c2.f2"], name="c2.dq"),
              oh.make_node("Add", ["p.f", "c2.f2"], ["sum"], name="add"),
              oh.make_node("QuantizeLinear", ["sum", C("add.s", const[qa.input[1]]), C("add.z", const[qa.input[2]])],
                           ["a"], name="add.q"),
              oh.make_node("DequantizeLinear", ["a", "add.s", "add.z"], ["a.f"], name="a.dq"),
              oh.make_node("GlobalAveragePool", ["a.f"], ["g.f"], name="gap"),
              oh.make_node("QuantizeLinear", ["g.f", C("gap.s", const[qg.input[1]]), C("gap.z", const[qg.input[2]])],
                           ["g"], name="gap.q"),
              oh.make_node("Flatten", ["g"], ["gflat"], axis=1, name="flatten")]
    C("c2.xs_", ps)
    C("c2.xz_", pz)
    # fc: MatMulInteger + bias + Cast + Mul + QuantizeLinear
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"][0]
    _, gs, gz = dq_params(gemm.input[0])
    w, ws, wz = dq_params(gemm.input[1])
    b, _, _ = dq_params(gemm.input[2])
    qf = quant_of(gemm.output[0])
    nodes += [oh.make_node("MatMulInteger", ["gflat", C("fc.wt", const[w].T.copy()), C("fc.xz", gz)], ["fc.acc"],
                           name="fc"),
              oh.make_node("Add", ["fc.acc", C("fc.b", const[b].reshape(1, -1))], ["fc.accb"], name="fc.bias"),
              oh.make_node("Cast", ["fc.accb"], ["fc.f"], to=TP.FLOAT, name="fc.cast"),
              oh.make_node("Mul", ["fc.f", C("fc.scale", np.float32(gs) * np.float32(ws.ravel()[0]))], ["fc.real"],
                           name="fc.scale"),
              oh.make_node("QuantizeLinear", ["fc.real", C("fc.ys", const[qf.input[1]]), C("fc.yz", const[qf.input[2]])],
                           ["logits.q"], name="fc.q"),
              oh.make_node("DequantizeLinear", ["logits.q", "fc.ys", "fc.yz"], ["logits"], name="out.dq")]
    graph = oh.make_graph(nodes, "cnn_qoperator", [m.graph.input[0]],
                          [oh.make_tensor_value_info("logits", TP.FLOAT, [1, None])], inits)
    out = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    onnx.checker.check_model(out)
    return out


# ---------------------------------------------------------------------------- QONNX

QDOM = "qonnx.custom_op.general"


def qonnx_graphs():
    """Two QONNX graphs with power-of-two activation scales and weight scales odd/2^20,
    so the exact requantization multipliers have 31-bit representations (no halves)."""
    rng = np.random.default_rng(5)
    inits = []

    def C(name, arr, dt=np.float32):
        inits.append(nph.from_array(np.asarray(arr, dt), name))
        return name

    def wscale(n, lo, hi):
        return (2 * rng.integers(lo * 2 ** 19, hi * 2 ** 19, n) + 1) / 2.0 ** 20

    def Q(x, out, scale, bits, signed, narrow=0, zp=0.0, mode="ROUND", name=None):
        return oh.make_node("Quant", [x, C(out + ".s", scale), C(out + ".z", zp), C(out + ".b", bits)], [out],
                            domain=QDOM, signed=signed, narrow=narrow, rounding_mode=mode, name=name or out)

    n = []
    # input: 4-bit unsigned, step 1/16
    n.append(Q("x", "xq", 2.0 ** -4, 4, 0, name="in_quant"))
    # conv1 3x3 pad 1, 1 -> 8: ternary weights (2-bit signed narrow), per-channel scale, int bias
    s1 = wscale(8, 0.2, 0.5)
    n.append(Q(C("w1f", rng.normal(0, 0.15, (8, 1, 3, 3))), "w1q", s1.reshape(8, 1, 1, 1), 2, 1, narrow=1))
    acc1 = 2.0 ** -4 * s1
    n.append(Q(C("b1f", rng.normal(0, 0.3, 8)), "b1q", acc1, 24, 1))
    n.append(oh.make_node("Conv", ["xq", "w1q", "b1q"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], name="conv1"))
    n.append(oh.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    n.append(Q("r1", "a1", 2.0 ** -3, 4, 0, name="act1"))
    n.append(oh.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"))
    # conv2 3x3 pad 1, 8 -> 8, bipolar weights with per-channel scale, no bias, 4-bit signed output
    s2 = wscale(8, 0.05, 0.15)
    n.append(oh.make_node("BipolarQuant", [C("w2f", rng.normal(0, 1, (8, 8, 3, 3))), C("w2s", s2.reshape(8, 1, 1, 1))],
                          ["w2q"], domain=QDOM, name="w2_bipolar"))
    n.append(oh.make_node("Conv", ["p1", "w2q"], ["c2"], pads=[1, 1, 1, 1], name="conv2"))
    n.append(Q("c2", "a2", 2.0 ** -3, 4, 1, name="act2"))
    # residual add, then Relu and a 4-bit unsigned quantizer (step 1/8)
    n.append(oh.make_node("Add", ["p1", "a2"], ["s3"], name="residual"))
    n.append(oh.make_node("Relu", ["s3"], ["r3"], name="relu3"))
    n.append(Q("r3", "a3", 2.0 ** -3, 4, 0, name="act3"))
    # Brevitas-style truncated average pool: AveragePool * 4 = window sum, Trunc v1 by 2 bits (floor)
    n.append(oh.make_node("AveragePool", ["a3"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="avgpool"))
    n.append(oh.make_node("Mul", ["ap", C("four", 4.0)], ["apsum"], name="avgpool_sum"))
    n.append(oh.make_node("Trunc", ["apsum", C("t.s", 2.0 ** -3), C("t.z", 0.0), C("t.ib", 6.0), C("t.ob", 4.0)],
                          ["t1"], domain=QDOM, rounding_mode="FLOOR", name="trunc_pool"))
    # global average pool over 3x3 (divides by 9), 8-bit unsigned
    n.append(oh.make_node("GlobalAveragePool", ["t1"], ["gp"], name="gap"))
    n.append(Q("gp", "g", 2.0 ** -6, 8, 0, name="gap_quant"))
    n.append(oh.make_node("Flatten", ["g"], ["gf"], axis=1, name="flatten"))
    # classifier: 4-bit per-column weights, int bias, 8-bit signed output with step 1/32
    s3 = wscale(10, 0.05, 0.2)
    n.append(Q(C("w3f", rng.normal(0, 1.0, (8, 10))), "w3q", s3.reshape(1, 10), 4, 1, narrow=1))
    n.append(oh.make_node("MatMul", ["gf", "w3q"], ["mm"], name="fc"))
    n.append(Q(C("b3f", rng.normal(0, 0.5, 10)), "b3q", (2.0 ** -6 * s3).reshape(1, 10), 24, 1))
    n.append(oh.make_node("Add", ["mm", "b3q"], ["fcb"], name="fc_bias"))
    n.append(Q("fcb", "y", 2.0 ** -5, 8, 1, name="out_quant"))
    g1 = oh.make_graph(n, "qonnx_cnn", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 1, 12, 12])],
                       [oh.make_tensor_value_info("y", TP.FLOAT, [1, 10])], inits)
    m1 = oh.make_model(g1, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid(QDOM, 1)])

    # graph 2: 8-bit input, AveragePool -> Trunc v2 (ceil) -> 2-bit weights 1x1 conv -> 2-bit
    # activations -> Flatten -> QLinearMatMul-free MatMul with 4-bit weights
    inits = []
    n = [Q("x", "xq", 2.0 ** -7, 8, 1, name="in_quant")]
    n.append(oh.make_node("AveragePool", ["xq"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="avgpool"))
    n.append(oh.make_node("Mul", ["ap", C("four", 4.0)], ["apsum"], name="avgpool_sum"))
    n.append(oh.make_node("Trunc", ["apsum", C("t.s", 2.0 ** -7), C("t.z", 0.0), C("t.ib", 10.0), C("t.os", 2.0 ** -5),
                                    C("t.ob", 8.0)], ["t"], domain=QDOM, rounding_mode="CEIL", signed=1,
                          name="trunc_v2"))
    s1 = wscale(6, 0.1, 0.4)
    n.append(Q(C("w1f", rng.normal(0, 0.4, (6, 3, 1, 1))), "w1q", s1.reshape(6, 1, 1, 1), 2, 1, narrow=1))
    n.append(oh.make_node("Conv", ["t", "w1q"], ["c1"], name="conv1x1"))
    n.append(oh.make_node("Relu", ["c1"], ["r1"], name="relu"))
    n.append(Q("r1", "a1", 2.0 ** -5, 2, 0, name="act_2bit"))
    n.append(oh.make_node("Flatten", ["a1"], ["f"], axis=1, name="flatten"))
    s2 = wscale(5, 0.1, 0.3)
    n.append(Q(C("w2f", rng.normal(0, 0.5, (6 * 4 * 4, 5))), "w2q", s2.reshape(1, 5), 4, 1, narrow=1))
    n.append(oh.make_node("MatMul", ["f", "w2q"], ["mm"], name="fc"))
    n.append(Q("mm", "y", 2.0 ** -6, 8, 1, name="out_quant"))
    g2 = oh.make_graph(n, "qonnx_trunc", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                       [oh.make_tensor_value_info("y", TP.FLOAT, [1, 5])], inits)
    m2 = oh.make_model(g2, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid(QDOM, 2)])
    return [("cnn", m1, (1, 12, 12), 2.0 ** -4, 0, 2.0 ** -5, 0), ("trunc", m2, (3, 8, 8), 2.0 ** -7, 0, 2.0 ** -6, 0)]


def qlinear_matmul_graph():
    """A QOperator MLP on an integer input: QLinearMatMul (per-column weight scales)."""
    rng = np.random.default_rng(9)
    w = rng.integers(-100, 101, (16, 6)).astype(np.int8)
    inits = [nph.from_array(np.array(0.05, np.float32), "xs"), nph.from_array(np.array(7, np.uint8), "xz"),
             nph.from_array(w, "w"), nph.from_array(rng.uniform(0.001, 0.004, 6).astype(np.float32), "ws"),
             nph.from_array(np.zeros(6, np.int8), "wz"), nph.from_array(np.array(0.11, np.float32), "ys"),
             nph.from_array(np.array(-3, np.int8), "yz")]
    nodes = [oh.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qmm")]
    g = oh.make_graph(nodes, "qlinear_mlp", [oh.make_tensor_value_info("x", TP.UINT8, [1, 16])],
                      [oh.make_tensor_value_info("y", TP.INT8, [1, 6])], inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])


def qonnx_mode(qsim, tmp):
    arch = os.path.join(SRC, "models", "arch", "dlac.cfg")
    rng = np.random.default_rng(11)
    for tag, model, shape, s_in, z_in, s_out, z_out in qonnx_graphs():
        path = os.path.join(tmp, tag + ".onnx")
        onnx.save(model, path)
        out = os.path.join(tmp, tag + ".qbin")
        r = qsim_import(qsim, path, out, ["--strict"])
        check(r.returncode == 0, "QONNX %s: qsim import --strict (every requantization proved exact)" % tag)
        if r.returncode:
            continue
        print(r.stdout.rstrip())
        xs = rng.uniform(-1.2, 1.2, (24,) + shape).astype(np.float32)
        want, xints = [], []
        for x in xs:
            vals = evaluate_onnx(model, x[None])
            qn = [nd for nd in model.graph.node if nd.name == "in_quant"][0]
            xints.append(np.rint(vals[qn.output[0]][0] / s_in + z_in).astype(np.int64))
            want.append(np.rint(vals["y"].ravel() / s_out + z_out).astype(np.int64))
        got, net = qsim_outputs(qsim, arch, out, xints, tmp, tag)
        want = np.stack(want)
        check(np.array_equal(got, want), "QONNX %s: qsim's outputs equal the NumPy evaluation on all %d inputs "
              "(%d values, %d distinct)" % (tag, len(xs), want.size, len(np.unique(want))))
        bits = sorted(set((net.tensors[l.weight].dtype, net.tensors[l.weight].signed) for l in net.layers
                          if l.weight >= 0))
        print("     weight dtypes: %s" % ", ".join(
            __import__("qsim_qbin").dtype_name(d, s) for d, s in bits))
    # QLinearMatMul on an integer graph input
    m = qlinear_matmul_graph()
    path = os.path.join(tmp, "qmm.onnx")
    onnx.save(m, path)
    out = os.path.join(tmp, "qmm.qbin")
    r = qsim_import(qsim, path, out)
    check(r.returncode == 0, "QOperator QLinearMatMul on a uint8 graph input: qsim import")
    if r.returncode == 0:
        xi = [rng.integers(0, 256, (16, 1, 1)) for _ in range(12)]
        got, _ = qsim_outputs(qsim, os.path.join(SRC, "models", "arch", "tpu_int8.cfg"), out, xi, tmp, "qmm")
        want = np.stack([evaluate_onnx(m, x.reshape(1, 16).astype(np.uint8))["y"].ravel() for x in xi]).astype(np.int64)
        check(np.abs(got - want).max() <= 1 and (got == want).mean() >= 0.95,
              "QLinearMatMul: qsim equals the NumPy evaluation on %d of %d values (float32 scales: "
              "the rest are near halves)" % ((got == want).sum(), want.size))
    return 0


# ---------------------------------------------------------------------------- errors

def errors_mode(qsim, tmp):
    x = oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 4, 4])
    base = [nph.from_array(np.array(0.1, np.float32), "s"), nph.from_array(np.array(0, np.uint8), "z"),
            nph.from_array(np.ones((3, 2, 1, 1), np.int8), "w"), nph.from_array(np.array([0.01], np.float32), "ws"),
            nph.from_array(np.array([0], np.int8), "wz")]
    qdq = [oh.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="qin"),
           oh.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"], name="dqin"),
           oh.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dqw"),
           oh.make_node("Conv", ["xf", "wf"], ["c"], name="conv"),
           oh.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="qout"),
           oh.make_node("DequantizeLinear", ["cq", "s", "z"], ["cf"], name="dqout")]

    def model(extra_nodes, out_name, out_shape, inits=(), opsets=(("", 13),)):
        g = oh.make_graph(qdq + extra_nodes, "bad", [x], [oh.make_tensor_value_info(out_name, TP.FLOAT, out_shape)],
                          base + list(inits))
        return oh.make_model(g, opset_imports=[oh.make_opsetid(d, v) for d, v in opsets])

    cases = []
    good = model([], "cf", [1, 3, 4, 4])
    cases.append(("good", good, None))
    cases.append(("unsupported op", model([oh.make_node("Softmax", ["cf"], ["p"], name="softmax", axis=1)],
                                          "p", [1, 3, 4, 4]), ["node 'softmax' (Softmax)", "unsupported op"]))
    cases.append(("unsupported attribute value", model([oh.make_node(
        "MaxPool", ["cf"], ["mp"], name="pool", kernel_shape=[3, 3], ceil_mode=1)], "mp", [1, 3, 2, 2]),
        ["node 'pool' (MaxPool)", "unsupported attribute 'ceil_mode'"]))
    cases.append(("unsupported attribute (QONNX)", model([oh.make_node(
        "Quant", ["cf", "qs", "qz", "qb"], ["y"], name="q4", domain=QDOM, signed=0, foo=3)], "y", [1, 3, 4, 4],
        [nph.from_array(np.array(0.1, np.float32), n) if n == "qs" else nph.from_array(np.array(v, np.float32), n)
         for n, v in (("qs", 0), ("qz", 0.0), ("qb", 4.0))], (("", 13), (QDOM, 1))),
        ["node 'q4' (Quant)", "unsupported attribute 'foo'"]))
    cases.append(("unsupported rounding on an activation", model([oh.make_node(
        "Quant", ["cf", "qs", "qz", "qb"], ["y"], name="q4", domain=QDOM, signed=0, rounding_mode="UP")],
        "y", [1, 3, 4, 4], [nph.from_array(np.array(v, np.float32), n) for n, v in
                            (("qs", 0.1), ("qz", 0.0), ("qb", 4.0))], (("", 13), (QDOM, 1))),
        ["node 'q4' (Quant)", "rounding_mode"]))
    fl = [nph.from_array(np.ones((3, 2, 1, 1), np.float32), "wflt")]
    g = oh.make_graph([qdq[0], qdq[1], oh.make_node("Conv", ["xf", "wflt"], ["c"], name="fconv"), qdq[4], qdq[5]],
                      "float_conv", [x], [oh.make_tensor_value_info("cf", TP.FLOAT, [1, 3, 4, 4])], base + fl)
    cases.append(("float weights", oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]),
                  ["node 'fconv' (Conv)", "float constant"]))
    good_bytes = good.SerializeToString()
    cases.append(("truncated file", good_bytes[:len(good_bytes) // 2], ["not a valid ONNX model"]))
    bad = bytearray(good_bytes)
    bad[3:40] = b"\xff" * 37
    cases.append(("corrupt file", bytes(bad), ["ONNX"]))
    cases.append(("empty file", b"", ["empty file"]))
    cases.append(("missing file", None, ["cannot read"]))
    for tag, m, needles in cases:
        path = os.path.join(tmp, tag.replace(" ", "_") + ".onnx")
        if isinstance(m, bytes):
            open(path, "wb").write(m)
        elif m is not None:
            onnx.save(m, path)
        out = os.path.join(tmp, "bad.qbin")
        if os.path.exists(out):
            os.remove(out)
        r = run([qsim, "import", path, "-o", out])
        if needles is None:
            check(r.returncode == 0 and os.path.exists(out), "%s model imports" % tag)
            if r.returncode:
                print(r.stderr)
            continue
        lines = r.stderr.strip().splitlines()
        ok = (r.returncode == 1 and len(lines) == 1 and lines[0].startswith("onnx_import: " + path + ": ")
              and all(nd in lines[0] for nd in needles) and "Traceback" not in r.stderr
              and not os.path.exists(out))
        check(ok, "%s refused: %s" % (tag, lines[0] if lines else "(no message, status %d)" % r.returncode))
        if not ok:
            print(r.stderr)
    # the C side: usage errors
    r = run([qsim, "import"])
    check(r.returncode == 2 and "no model given" in r.stderr, "qsim import without a model: usage error")
    r = run([qsim, "import", "--help"])
    check(r.returncode == 0 and "usage: qsim import" in r.stdout, "qsim import --help")
    r = run([qsim, "--help"])
    check(r.returncode == 0 and "import MODEL.onnx" in r.stdout, "qsim --help lists import")
    return 0


def main():
    global SRC
    if len(sys.argv) != 4 or sys.argv[1] not in ("torch", "qonnx", "errors"):
        sys.stderr.write(__doc__)
        return 2
    mode, qsim, SRC = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    with tempfile.TemporaryDirectory(prefix="qsim_onnx_") as tmp:
        rc = {"torch": torch_mode, "qonnx": qonnx_mode, "errors": errors_mode}[mode](qsim, tmp)
    if rc == 77:
        return 77
    print("%d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


SRC = "."
if __name__ == "__main__":
    sys.exit(main())
