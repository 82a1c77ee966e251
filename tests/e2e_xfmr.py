#!/usr/bin/python3
"""End-to-end check of qsim's transformer layers against the independent NumPy reference.

Builds random transformer blocks with scripts/qsim_qbin.py (format version 2): random
hidden sizes, head counts, sequence lengths, weight widths (bipolar, ternary int2, int4,
int8), activation widths and zero points; layernorm or rmsnorm, 1x1 convolutions for the
Q/K/V/output/MLP projections (channels = hidden, height = tokens), reshapes that split and
merge heads, both attention matmuls (with and without transposes; 40% of the blocks with more than
one head grouped-query: fewer key/value heads, each shared by a run of query heads), softmax along the keys
(axis 2 or 1, half of them with a causal mask and an offset) and sometimes along channels
(axis 0), sometimes BitNet's per-token absmax quantization (dynquant) before the MLP's up
projection with its scale re-applied by a row-absmax mul, sometimes rotary position embeddings
(rope) of Q and K at a position offset, table GELU/SiLU, a SwiGLU-style
mul and residual adds. Every network runs through

    qsim run --arch models/arch/X.cfg NET --input X.npy --dump-outputs DIR -q --engine E

on the dlac, tpu_int8 and edge presets, edge as input-stationary, and dlac with a 16-bit
wrapping accumulator (narrow accumulators that overflow: the reference then wraps at 16
bits too), with both engines; every layer's output must equal evaluate(net, x) bit for
bit, and the two engines' --json reports must agree on every per-layer field.

usage: e2e_xfmr.py QSIM_BINARY [SOURCE_DIR] [--nets N] [--seed S] [--keep]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# (tag, preset, --set overrides, reference accumulator bits)
CONFIGS = [
    ("dlac", "dlac", ["array.acc_bits=32", "array.overflow=wrap"], 32),
    ("tpu_int8", "tpu_int8", [], 32),
    ("edge", "edge", ["array.acc_bits=32", "array.overflow=wrap"], 32),
    ("edge-is", "edge", ["array.acc_bits=32", "array.overflow=wrap", "array.dataflow=is"], 32),
    ("dlac-acc16", "dlac", ["array.acc_bits=16", "array.overflow=wrap"], 16),
    # the edge preset as shipped: a 16-bit *saturating* accumulator; saturation makes the value depend
    # on the order of the additions, which the reference does not model: only the engines are compared
    ("edge-sat16", "edge", [], None),
    ("dlac-sat16", "dlac", ["array.acc_bits=16", "array.overflow=saturate"], None),
]
ENGINES = ["fast", "detailed"]


class Block:
    """One random transformer block, evaluated as it is built so that every
    requantization is tuned to the real accumulator range."""

    def __init__(self, Q, rng, name, acc_bits=32):
        self.Q, self.rng, self.net = Q, rng, Q.Net(name)
        self.outs, self.kinds, self.x = [], set(), None
        self.acc_bits = acc_bits

    def r(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def p(self, prob):
        return self.rng.random() < prob

    def L(self, i):
        return self.net.layers[i]

    def q_out(self, lo_bits=4, signed=None, conv_input=False):
        """Output quantization. Inputs of convolutions get zero point 0: the compiler folds
        an input zero point into the bias, which is exact only while the accumulator does
        not wrap (docs/qbin.md), and the 16-bit configuration makes them wrap. Matmul
        operands keep zero points: the array subtracts them at run time."""
        bits = self.r(lo_bits, 8)
        signed = self.p(0.6) if signed is None else signed
        lo, hi = self.Q.int_range(bits, signed)
        zp = 0 if conv_input or self.p(0.5) else self.r(lo // 2, hi // 2)
        return dict(bits=bits, signed=signed, zp=zp, scale=0.05 + 0.1 * self.rng.random())

    def tune(self, i, gain=None):
        Q, l = self.Q, self.L(i)
        acc = Q.layer_accumulator(self.net, i, self.outs, 32).astype(np.float64)
        gain = (24.0 if self.p(0.1) else 0.6 + self.rng.random()) if gain is None else gain
        span = float(l.clamp_hi - l.clamp_lo + 1)
        if self.p(0.5) and l.out_c > 1:
            spread = np.abs(acc - np.median(acc, axis=(1, 2), keepdims=True)).max(axis=(1, 2)) + 1.0
            reals = span / (2.0 * spread) * gain
        else:
            reals = np.array([span / (2.0 * (np.abs(acc - np.median(acc)).max() + 1.0)) * gain])
        pairs = [Q.quantize_multiplier(float(v)) for v in reals]
        l.rq_mult = np.array([m for m, _ in pairs], np.int64).astype(np.int32)
        l.rq_shift = np.array([s for _, s in pairs], np.int64).astype(np.int8)

    def done(self, i, tune=False):
        if tune:
            self.tune(i)
        self.kinds.add(self.L(i).kind_name)
        self.outs.append(self.Q.eval_layer(self.net, i, self.outs, 32, self.x))
        return i

    def weights(self, shape):
        wbits = [1, 2, 2, 4, 8][self.r(0, 4)]
        if wbits == 1:
            return self.rng.choice(np.array([-1, 1]), size=shape), 1, True
        if wbits == 2:  # ternary, about a third zeros (absmean rounding of Gaussian weights)
            w = np.clip(np.round(self.rng.normal(size=shape) / 1.25), -1, 1)
            return w.astype(np.int64), 2, True
        lo, hi = self.Q.int_range(wbits, True)
        w = self.rng.integers(lo, hi + 1, size=shape)
        w[self.rng.random(shape) < 0.3] = 0
        return w.astype(np.int64), wbits, True

    def proj(self, src, out_c, loud=False):
        """1x1 conv; loud: 8-bit output driven to its extremes (so that the attention
        matmuls overflow 16-bit accumulators)."""
        s = self.L(src)
        w, wbits, wsigned = self.weights((out_c, s.out_c, 1, 1))
        q = dict(bits=8, signed=True, zp=0, scale=0.1) if loud else self.q_out()
        i = self.net.conv("proj%d" % len(self.net.layers), src, w, wbits=wbits, wsigned=wsigned,
                          multiplier=0.01, **q)
        self.done(i)
        self.outs.pop()
        self.tune(i, gain=24.0 if loud else None)
        self.kinds.add("conv")
        self.outs.append(self.Q.eval_layer(self.net, i, self.outs, 32, self.x))
        return i

    def norm(self, src):
        kind = "layernorm" if self.p(0.5) else "rmsnorm"
        s = self.L(src)
        gamma = 0.5 + self.rng.random(s.out_c)
        beta = self.rng.normal(size=s.out_c) * 0.3 if self.p(0.6) else None
        out = self.q_out(conv_input=True)
        fn = self.net.layernorm if kind == "layernorm" else self.net.rmsnorm
        i = fn("%s%d" % (kind, len(self.net.layers)), src, gamma=gamma, beta=beta, **out)
        return self.done(i)

    def add(self, a, b):
        i = self.net.add("res%d" % len(self.net.layers), a, b, self.r(1, 3), self.r(1, 3),
                         multiplier=0.01, **self.q_out())
        return self.done(i, tune=True)

    def build(self):
        Q = self.Q
        heads, dh, T = self.r(1, 4), self.r(2, 12), self.r(1, 18)
        # grouped-query attention: kvh key/value heads, each shared by a run of g query heads
        kvh = heads
        if self.p(0.4):
            kvh, g = self.r(1, 2), self.r(2, 3)
            heads, dh = kvh * g, min(dh, 8)
        d = heads * dh
        bits = self.r(4, 8)
        signed = self.p(0.7)
        lo, hi = Q.int_range(bits, signed)
        zp = 0 if self.p(0.5) else self.r(lo // 2, hi // 2)
        x0 = self.net.input("x", c=d, h=T, w=1, bits=bits, signed=signed, zp=zp, scale=0.1)
        self.x = self.rng.integers(lo, hi + 1, size=(d, T, 1)).astype(np.int32)
        self.done(x0)
        h = self.norm(x0)
        loud = self.p(0.3)
        gq = dict(grouped=True) if kvh < heads else {}
        if gq:
            self.kinds.add("matmul-grouped")
        q, k, v = self.proj(h, d, loud), self.proj(h, kvh * dh, loud), self.proj(h, kvh * dh)
        if dh % 2 == 0 and self.p(0.4):  # rotary position embeddings of Q and K (tokens at an offset)
            off = self.r(0, 3)
            q, k = (self.done(self.net.rope("rope_" + n, src, dh, offset=off, positions=T + off + self.r(0, 2),
                                            multiplier=0.01, **self.q_out()), tune=True)
                    for n, src in (("q", q), ("k", k)))
        qh = self.done(self.net.reshape("qh", q, heads, dh, T))
        kh = self.done(self.net.reshape("kh", k, kvh, dh, T))
        vh = self.done(self.net.reshape("vh", v, kvh, dh, T))
        keys_on_w = self.p(0.5)
        sq = dict(bits=self.r(4, 8), signed=self.p(0.7), zp=0, scale=0.1)
        if sq["signed"] and self.p(0.5):
            sq["zp"] = self.r(-4, 4)
        if keys_on_w:   # S = Q K^T: (heads, Tq, Tk), softmax over W
            s = self.net.matmul("scores", qh, kh, trans_a=True, multiplier=0.01, **gq, **sq)
        else:           # S^T = K Q^T: (heads, Tk, Tq), softmax over H
            s = self.net.matmul("scores_t", kh, qh, trans_a=True, multiplier=0.01, **gq, **sq)
        self.done(s, tune=True)
        causal = self.p(0.5)   # a decoder's mask: key j takes part for query i when j <= i + offset
        offset = self.r(0, 3) if causal and self.p(0.3) else 0
        pr = self.done(self.net.softmax("softmax", s, axis=2 if keys_on_w else 1, bits=self.r(4, 8),
                                        causal=causal, offset=offset))
        if causal:
            self.kinds.add("softmax-causal")
        if keys_on_w:   # O^T = V^T P^T: (heads, dh, Tq)
            o = self.net.matmul("attn_v", vh, pr, trans_b=True, multiplier=0.01, **gq, **self.q_out(conv_input=True))
        else:           # O^T = V^T P^T with P^T stored: no transpose
            o = self.net.matmul("attn_v", vh, pr, multiplier=0.01, **gq, **self.q_out(conv_input=True))
        o = self.done(o, tune=True)
        om = self.done(self.net.reshape("merge", o, d, T, 1))
        r1 = self.add(x0, self.proj(om, d))
        h2 = self.norm(r1)
        f = min(64, d * self.r(1, 3))  # the edge preset as IS holds 8 x 64 int32 accumulators
        if self.p(0.4):  # BitNet b1.58: per-token absmax quantization, then its scale re-applied
            dq = self.done(self.net.dynquant("dynquant", h2, bits=self.r(4, 8)))
            up = self.proj(dq, f)
            up = self.done(self.net.mul("rescale", up, h2, rowmax=True, multiplier=0.01,
                                        **self.q_out(conv_input=True)), tune=True)
            self.kinds.add("mul-rowmax")
        else:
            up = self.proj(h2, f)
        fn = (lambda t: t / (1.0 + np.exp(-1.702 * t))) if self.p(0.5) else (lambda t: 0.5 * t * (1.0 + np.tanh(0.79788456 * (t + 0.044715 * t ** 3))))
        act = self.done(self.net.lut("act", up, fn=fn, **self.q_out(conv_input=True)))
        if self.p(0.5):  # SwiGLU-style gate
            gate = self.proj(h2, f)
            act = self.done(self.net.mul("gate", act, gate, multiplier=0.01, **self.q_out(conv_input=True)), tune=True)
        r2 = self.add(r1, self.proj(act, d))
        if self.p(0.3):  # a softmax across channels (axis 0) on a narrow copy
            n8 = self.net.requant("narrow", r2, bits=self.r(3, 8), signed=True, zp=0, scale=0.1, multiplier=0.01)
            self.done(n8, tune=True)
            self.done(self.net.softmax("softmax_c", n8, axis=0, bits=self.r(4, 8)))
        self.net.validate()
        return self


def run_qsim(qsim, root, qbin, npy, preset, sets, engine, outdir, js):
    cmd = [qsim, "run", "--arch", os.path.join(root, "models", "arch", preset + ".cfg"), qbin, "--input", npy,
           "--dump-outputs", outdir, "-q", "--engine", engine, "--json", js]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    return p.returncode, p.stderr.strip(), cmd


def compare(net, ref, outdir):
    for i, l in enumerate(net.layers):
        path = os.path.join(outdir, "%03d_%s.npy" % (i, l.name.replace("/", "_")))
        if not os.path.exists(path):
            return "layer %d '%s': no dump %s" % (i, l.name, path)
        got, want = np.load(path), np.asarray(ref[i])
        if got.shape != want.shape:
            return "layer %d '%s' (%s): shape %s, reference %s" % (i, l.name, l.kind_name, got.shape, want.shape)
        bad = np.argwhere(got != want)
        if bad.size:
            j = tuple(bad[0])
            return "layer %d '%s' (%s): %d of %d values differ, first at %s: qsim %d, reference %d" % (
                i, l.name, l.kind_name, len(bad), got.size, j, got[j], want[j])
    return None


def layer_fields(js):
    """Per-layer records of a --json report without the engine's name."""
    with open(js) as f:
        rep = json.load(f)
    return rep["layers"]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("qsim")
    ap.add_argument("root", nargs="?", default=os.path.dirname(HERE))
    ap.add_argument("--nets", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    import qsim_qbin as Q

    tmp = tempfile.mkdtemp(prefix="qsim_xfmr_")
    passed = failed = 0
    kinds, overflowed, saturated = set(), 0, 0
    t0 = time.time()
    try:
        for idx in range(args.nets):
            rng = np.random.default_rng(args.seed + idx)
            g = Block(Q, rng, "blk%d" % idx).build()
            net, x = g.net, g.x
            kinds |= g.kinds
            qbin = os.path.join(tmp, "%s.qbin" % net.name)
            npy = os.path.join(tmp, "%s_x.npy" % net.name)
            net.save(qbin)
            np.save(npy, x)
            loaded = Q.read(qbin)
            refs = {b: Q.evaluate(loaded, x, acc_bits=b) for b in {c[3] for c in CONFIGS} if b}
            problems = []
            for tag, preset, sets, acc in CONFIGS:
                reports = {}
                for engine in ENGINES:
                    outdir = os.path.join(tmp, "%s_%s_%s" % (net.name, tag, engine))
                    js = outdir + ".json"
                    rc, err, cmd = run_qsim(args.qsim, args.root, qbin, npy, preset, sets, engine, outdir, js)
                    if rc != 0:
                        problems.append("%s/%s: exit %d: %s\n      %s" % (tag, engine, rc, err, " ".join(cmd)))
                        continue
                    msg = compare(net, refs[acc], outdir) if acc else None
                    if msg:
                        problems.append("%s/%s: %s" % (tag, engine, msg))
                    reports[engine] = layer_fields(js)
                    if not acc:  # keep the dumps: the engines' values are compared below
                        reports.setdefault("dumps", {})[engine] = outdir
                        continue
                    shutil.rmtree(outdir, ignore_errors=True)
                dumps = reports.pop("dumps", {})
                if len(dumps) == 2:
                    for i, l in enumerate(net.layers):
                        f = "%03d_%s.npy" % (i, l.name)
                        if not np.array_equal(np.load(os.path.join(dumps["fast"], f)),
                                              np.load(os.path.join(dumps["detailed"], f))):
                            problems.append("%s: engines' values differ on layer '%s'" % (tag, l.name))
                            break
                    for dd in dumps.values():
                        shutil.rmtree(dd, ignore_errors=True)
                if len(reports) == 2 and reports["fast"] != reports["detailed"]:
                    for lf, ld in zip(reports["fast"], reports["detailed"]):
                        if lf != ld:
                            keys = [k for k in lf if lf.get(k) != ld.get(k)]
                            problems.append("%s: engines differ on layer '%s': %s" % (tag, lf.get("name"), keys))
                            break
                if (acc is None or acc < 32) and "fast" in reports:
                    n_ovf = sum(1 for l in reports["fast"] if l.get("acc_overflows", 0) and l["type"] == "matmul")
                    if acc is None:
                        saturated += n_ovf
                    else:
                        overflowed += sum(1 for l in reports["fast"] if l.get("acc_overflows", 0))
            if problems:
                failed += 1
                print("FAIL %s (%d layers)" % (net.name, len(net.layers)))
                for p in problems:
                    print("    " + p)
                print("    files: %s %s (seed %d)" % (qbin, npy, args.seed + idx))
            else:
                passed += 1
                L0 = net.layers[0]
                print("ok   %s (hidden %d, tokens %d, %d layers)" % (net.name, L0.out_c, L0.out_h, len(net.layers)))
        print("covered layer kinds: %s" % ", ".join(sorted(kinds)))
        print("layers with accumulator overflows under 16-bit accumulators: %d" % overflowed)
        print("matmul layers that saturated (engines compared): %d" % saturated)
        need = {"layernorm", "rmsnorm", "matmul", "softmax", "lut", "mul", "reshape", "conv", "add",
                "softmax-causal", "dynquant", "mul-rowmax", "rope", "matmul-grouped"}
        if args.nets >= 20 and (need - kinds or overflowed == 0 or saturated == 0):
            print("coverage incomplete: missing %s, overflowing layers %d" % (sorted(need - kinds), overflowed))
            failed += 1
    finally:
        if args.keep or failed:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed (%.1f s)" % (passed, failed, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
