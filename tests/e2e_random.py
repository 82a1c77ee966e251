#!/usr/bin/python3
"""End-to-end check of qsim against the independent NumPy reference.

Generates random quantized networks with scripts/qsim_qbin.py that together use
every layer kind (conv incl. grouped / depthwise / strided / padded / dilated,
fc, maxpool, avgpool with padding, gap, add, concat, act, requant, flatten), every
weight width (bipolar, 2, 4, 8 bits, signed and unsigned), activations of 2..8
bits signed and unsigned with zero points, and requantization with per-channel and
per-tensor multipliers including negative (left) shifts. Each network is written
to a temporary .qbin with a random input .npy, run through

    qsim run --arch models/arch/X.cfg NET --input X.npy --dump-outputs DIR -q

on the dlac, tpu_int8 and edge presets (plus edge as input-stationary), with both
engines, and every layer's output is compared bit-exactly with evaluate(net, x).
Presets get --set overrides where the network exceeds them (8-bit activations on
dlac) and acc_bits=32 + overflow=wrap so the accumulator matches the reference's
32-bit wrap.

usage: e2e_random.py QSIM_BINARY [SOURCE_DIR] [--nets N] [--seed S] [--keep]
Prints one line per network and a closing 'N passed, M failed'; exit 1 on failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# (preset, extra --set overrides) x engines; every network runs on all of them
CONFIGS = [
    ("dlac", ["array.max_act_bits=8", "array.acc_bits=32", "array.overflow=wrap"]),
    # lookahead weight skipping (docs/timing.md): each column runs its own non-zero weights
    ("dlac", ["array.max_act_bits=8", "array.acc_bits=32", "array.overflow=wrap", "array.lookahead=3"]),
    ("tpu_int8", []),
    ("edge", ["array.acc_bits=32", "array.overflow=wrap"]),
    ("edge", ["array.acc_bits=32", "array.overflow=wrap", "array.dataflow=is"]),
]
ENGINES = ["fast", "detailed"]


class Gen:
    """Builds one random network layer by layer, evaluating as it goes so that
    every requantization can be tuned to the real accumulator range."""

    def __init__(self, Q, rng, name):
        self.Q = Q
        self.rng = rng
        self.net = Q.Net(name)
        self.outs = []
        self.x = None
        self.kinds = set()
        self.wkinds = set()
        self.shifts = set()
        self.n = 0

    # ---- helpers
    def r(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def p(self, prob):
        return self.rng.random() < prob

    def L(self, i):
        return self.net.layers[i]

    def name(self, kind):
        self.n += 1
        return "%s%d" % (kind, self.n)

    def out_q(self):
        bits = self.r(2, 8)
        signed = self.p(0.5)
        lo, hi = self.Q.int_range(bits, signed)
        zp = 0 if self.p(0.4) else self.r(lo, hi)
        return dict(bits=bits, signed=signed, zp=zp, scale=0.05)

    def tune(self, i, per_channel=None, gain=None):
        """(M0, shift) so that the accumulator spread maps onto the output range."""
        Q, l = self.Q, self.L(i)
        acc = Q.layer_accumulator(self.net, i, self.outs, 32).astype(np.float64)
        if per_channel is None:
            per_channel = self.p(0.5)
        if gain is None:
            gain = 32.0 if self.p(0.15) else 0.5 + 1.5 * self.rng.random()
        span = float(l.clamp_hi - l.clamp_lo + 1)
        if per_channel and l.out_c > 1:
            spread = np.abs(acc - np.median(acc, axis=(1, 2), keepdims=True)).max(axis=(1, 2)) + 1.0
            reals = span / (2.0 * spread) * gain * (0.7 + 0.6 * self.rng.random(l.out_c))
        else:
            reals = np.array([span / (2.0 * (np.abs(acc - np.median(acc)).max() + 1.0)) * gain])
        pairs = [Q.quantize_multiplier(float(v)) for v in reals]
        l.rq_mult = np.array([m for m, _ in pairs], np.int64).astype(np.int32)
        l.rq_shift = np.array([s for _, s in pairs], np.int64).astype(np.int8)
        self.shifts.update(int(s) for _, s in pairs)

    def done(self, i, tune=False, **kw):
        if tune:
            self.tune(i, **kw)
        self.kinds.add(self.L(i).kind_name)
        self.outs.append(self.Q.eval_layer(self.net, i, self.outs, 32, self.x))
        return i

    def weights(self, shape):
        wbits = [1, 2, 4, 8][self.r(0, 3)]
        wsigned = True if wbits == 1 else self.p(0.7)
        if wbits == 1:
            w = self.rng.choice(np.array([-1, 1]), size=shape)
        else:
            lo, hi = self.Q.int_range(wbits, wsigned)
            w = self.rng.integers(lo, hi + 1, size=shape)
            w[self.rng.random(shape) < self.rng.choice([0.0, 0.3, 0.6, 0.9])] = 0
        self.wkinds.add("bipolar" if wbits == 1 else ("int%d" if wsigned else "uint%d") % wbits)
        return w.astype(np.int64), wbits, wsigned

    def bias(self, n, w):
        if self.p(0.3):
            return None
        span = int(np.abs(w).max()) * 64 + 8
        return self.rng.integers(-span, span + 1, size=n)

    # ---- layers
    def input(self):
        c, h = self.r(1, 6), self.r(4, 11)
        w = h if self.p(0.6) else self.r(4, 11)
        bits = self.r(2, 8)
        signed = self.p(0.5)
        lo, hi = self.Q.int_range(bits, signed)
        zp = 0 if self.p(0.4) else self.r(lo, hi)
        # a narrower input clamp now and then: values outside it (but inside the range) are clamped
        clamp = (self.r(lo, zp), self.r(zp, hi)) if self.p(0.3) else None
        i = self.net.input("in", c=c, h=h, w=w, bits=bits, signed=signed, zp=zp, scale=0.1, clamp=clamp)
        x = self.rng.integers(lo, hi + 1, size=(c, h, w))
        x[self.rng.random(x.shape) < self.rng.choice([0.0, 0.3, 0.7])] = 0 if lo <= 0 else lo
        self.x = x.astype(np.int32)
        return self.done(i)

    def conv(self, src, out_c=None, k=None, keep_shape=False, zp=None):
        s = self.L(src)
        for _ in range(100):
            kh = k or self.r(1, 3)
            kw = k or (kh if self.p(0.7) else self.r(1, 3))
            dh = 1 if keep_shape or self.p(0.8) else 2
            dw = 1 if keep_shape or self.p(0.8) else 2
            sh = 1 if keep_shape or self.p(0.6) else 2
            sw = sh if self.p(0.7) else (1 if keep_shape else self.r(1, 2))
            eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
            if keep_shape:
                pad = ((kh - 1) // 2, (kw - 1) // 2, kh - 1 - (kh - 1) // 2, kw - 1 - (kw - 1) // 2)
            else:
                pad = (self.r(0, min(2, eh - 1)), self.r(0, min(2, ew - 1)),
                       self.r(0, min(2, eh - 1)), self.r(0, min(2, ew - 1)))
            if s.out_h + pad[0] + pad[2] < eh or s.out_w + pad[1] + pad[3] < ew:
                continue
            break
        else:
            kh = kw = 1
            dh = dw = sh = sw = 1
            pad = 0
        u = self.r(0, 3)
        if out_c is not None:
            groups = 1 if u < 3 or out_c % s.out_c else s.out_c
        elif u <= 1:
            groups = 1
        elif u == 2:
            groups = s.out_c
        else:
            groups = int(self.rng.choice([d for d in range(1, s.out_c + 1) if s.out_c % d == 0]))
        if out_c is None:
            out_c = groups * (self.r(1, 2) if groups == s.out_c else self.r(1, max(1, 12 // groups)))
        w, wbits, wsigned = self.weights((out_c, s.out_c // groups, kh, kw))
        q = self.out_q()
        if zp is not None:
            q["zp"] = zp
            q["bits"], q["signed"] = s.out_bits, s.out_signed
        act = "relu" if self.p(0.3) else None
        i = self.net.conv(self.name("conv"), src, w, self.bias(out_c, w), stride=(sh, sw), pad=pad,
                          dilation=(dh, dw), groups=groups, wbits=wbits, wsigned=wsigned, act=act,
                          mult=[1 << 30], shift=[0], **q)
        if groups > 1:
            self.kinds.add("conv-depthwise" if groups == s.out_c else "conv-grouped")
        if sh > 1 or sw > 1:
            self.kinds.add("conv-stride")
        if dh > 1 or dw > 1:
            self.kinds.add("conv-dilation")
        if isinstance(pad, tuple) and any(pad):
            self.kinds.add("conv-padding")
        if self.p(0.1):  # no requantization at all (rq_n = 0): clamp only
            self.L(i).rq_mult = np.zeros(0, np.int32)
            self.L(i).rq_shift = np.zeros(0, np.int8)
            return self.done(i)
        return self.done(i, tune=True)

    def fc(self, src):
        s = self.L(src)
        k = s.out_c * s.out_h * s.out_w
        n = self.r(1, 12)
        w, wbits, wsigned = self.weights((n, k))
        i = self.net.fc(self.name("fc"), src, w, self.bias(n, w), wbits=wbits, wsigned=wsigned,
                        mult=[1 << 30], shift=[0], **self.out_q())
        return self.done(i, tune=True)

    def maxpool(self, src):
        s = self.L(src)
        k = self.r(2, 3)
        if s.out_h < k or s.out_w < k:
            return src
        pad = self.r(0, k - 1) if self.p(0.5) else 0
        i = self.net.maxpool(self.name("maxpool"), src, k, stride=self.r(1, 2), pad=pad)
        return self.done(i)

    def avgpool(self, src):
        s = self.L(src)
        k = self.r(2, 3)
        if s.out_h < k or s.out_w < k:
            return src
        pad = self.r(1, k - 1) if self.p(0.7) else 0
        q = self.out_q()
        i = self.net.avgpool(self.name("avgpool"), src, k, stride=self.r(1, 2), pad=pad, mult=[1 << 30],
                             shift=[0], **q)
        if pad:
            self.kinds.add("avgpool-padding")
        return self.done(i, tune=True)

    def gap(self, src):
        i = self.net.gap(self.name("gap"), src, mult=[1 << 30], shift=[0], **self.out_q())
        return self.done(i, tune=True)

    def add(self, src):
        s = self.L(src)
        b = self.conv(src, out_c=s.out_c, k=self.r(1, 3), keep_shape=True)
        ma = self.r(1, 300) * (1 if self.p(0.8) else -1)
        mb = self.r(1, 300) * (1 if self.p(0.8) else -1)
        i = self.net.add(self.name("add"), src, b, ma, mb, mult=[1 << 30], shift=[0], **self.out_q())
        return self.done(i, tune=True)

    def concat(self, src):
        s = self.L(src)
        parts = [src]
        for _ in range(self.r(1, 2)):
            if self.p(0.5) and s.out_h >= 3 and s.out_w >= 3:
                j = self.done(self.net.maxpool(self.name("maxpool"), src, 3, stride=1, pad=1))
            else:
                j = self.conv(src, out_c=self.r(1, 6), k=self.r(1, 3), keep_shape=True, zp=s.out_zp)
            parts.append(j)
        i = self.net.concat(self.name("concat"), parts)
        return self.done(i)

    def act(self, src):
        s = self.L(src)
        if self.p(0.5) and s.out_zp < self.Q.int_range(s.out_bits, s.out_signed)[1]:
            i = self.net.act(self.name("relu"), src, act="relu")
        else:
            lo, hi = self.Q.int_range(s.out_bits, s.out_signed)
            a = self.r(lo, hi)
            b = self.r(a, hi)
            if not a <= s.out_zp:  # keep the zero point representable in the clamp range
                a = min(a, s.out_zp)
            if not s.out_zp <= b:
                b = max(b, s.out_zp)
            i = self.net.act(self.name("clip"), src, act="clip", clamp=(a, b))
        return self.done(i)

    def requant(self, src):
        i = self.net.requant(self.name("requant"), src, mult=[1 << 30], shift=[0], **self.out_q())
        return self.done(i, tune=True, gain=(8.0 if self.p(0.5) else None))

    def flatten(self, src):
        return self.done(self.net.flatten(self.name("flatten"), src))


SPATIAL = ["conv", "conv", "maxpool", "avgpool", "add", "concat", "act", "requant"]


def random_net(Q, seed, idx):
    rng = np.random.default_rng(seed)
    g = Gen(Q, rng, "e2e%02d" % idx)
    cur = g.input()
    cur = g.conv(cur)
    # a different emphasis per network so that 20 of them cover every kind
    must = SPATIAL[idx % len(SPATIAL)]
    ops = [must] + [SPATIAL[g.r(0, len(SPATIAL) - 1)] for _ in range(g.r(2, 5))]
    for op in ops:
        cur = getattr(g, op)(cur)
    tail = idx % 4
    if tail == 0:
        cur = g.gap(cur)
        cur = g.fc(cur)
    elif tail == 1:
        cur = g.flatten(cur)
        cur = g.fc(cur)
        if g.p(0.5):
            cur = g.act(cur)
    elif tail == 2:
        cur = g.fc(cur)  # fc straight on a C x H x W tensor
        cur = g.requant(cur)
    net = g.net
    net.validate()
    return g


def run_qsim(qsim, root, qbin, npy, preset, sets, engine, outdir):
    cmd = [qsim, "run", "--arch", os.path.join(root, "models", "arch", preset + ".cfg"), qbin, "--input", npy,
           "--dump-outputs", outdir, "-q", "--engine", engine]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    return p.returncode, p.stderr.strip(), cmd


def compare(net, ref, outdir):
    """First mismatch as a message, or None."""
    for i, l in enumerate(net.layers):
        path = os.path.join(outdir, "%03d_%s.npy" % (i, l.name.replace("/", "_")))
        if not os.path.exists(path):
            return "layer %d '%s': no dump %s" % (i, l.name, path)
        got = np.load(path)
        want = np.asarray(ref[i])
        if got.shape != want.shape:
            return "layer %d '%s' (%s): shape %s, reference %s" % (i, l.name, l.kind_name, got.shape, want.shape)
        bad = np.argwhere(got != want)
        if bad.size:
            j = tuple(bad[0])
            return "layer %d '%s' (%s): %d of %d values differ, first at %s: qsim %d, reference %d" % (
                i, l.name, l.kind_name, len(bad), got.size, j, got[j], want[j])
    return None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("qsim")
    ap.add_argument("root", nargs="?", default=os.path.dirname(HERE))
    ap.add_argument("--nets", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    import qsim_qbin as Q

    tmp = tempfile.mkdtemp(prefix="qsim_e2e_")
    passed = failed = 0
    kinds, wkinds, shifts = set(), set(), set()
    t0 = time.time()
    try:
        for idx in range(args.nets):
            g = random_net(Q, args.seed + idx, idx)
            net, x = g.net, g.x
            kinds |= g.kinds
            wkinds |= g.wkinds
            shifts |= g.shifts
            qbin = os.path.join(tmp, "%s.qbin" % net.name)
            npy = os.path.join(tmp, "%s_x.npy" % net.name)
            net.save(qbin)
            np.save(npy, x)
            ref = Q.evaluate(Q.read(qbin), x, acc_bits=32)
            problems = []
            for preset, sets in CONFIGS:
                for engine in ENGINES:
                    tag = "%s%s%s/%s" % (preset, "(is)" if "array.dataflow=is" in sets else "",
                                         "(lookahead)" if any(x.startswith("array.lookahead") for x in sets) else "",
                                         engine)
                    outdir = os.path.join(tmp, "%s_%s" % (net.name, tag.replace("/", "_").replace("(", "").replace(")", "")))
                    rc, err, cmd = run_qsim(args.qsim, args.root, qbin, npy, preset, sets, engine, outdir)
                    if rc != 0:
                        problems.append("%s: exit %d: %s\n      %s" % (tag, rc, err, " ".join(cmd)))
                        continue
                    msg = compare(net, ref, outdir)
                    if msg:
                        problems.append("%s: %s" % (tag, msg))
                    shutil.rmtree(outdir, ignore_errors=True)
            layers = ",".join(l.kind_name for l in net.layers[1:])
            if problems:
                failed += 1
                print("FAIL %s (%d layers: %s)" % (net.name, len(net.layers), layers))
                for p in problems:
                    print("    " + p)
                print("    files: %s %s (seed %d)" % (qbin, npy, args.seed + idx))
            else:
                passed += 1
                print("ok   %s (%d layers: %s)" % (net.name, len(net.layers), layers))
        print("covered layer kinds: %s" % ", ".join(sorted(kinds)))
        print("covered weights: %s; requant shifts %d..%d" % (", ".join(sorted(wkinds)), min(shifts), max(shifts)))
        need = {"conv", "fc", "maxpool", "avgpool", "gap", "add", "concat", "act", "requant", "flatten",
                "conv-depthwise", "conv-grouped", "conv-stride", "conv-padding", "conv-dilation", "avgpool-padding"}
        missing = need - kinds
        if args.nets >= 20 and (missing or min(shifts) >= 0 or len(wkinds) < 5):
            print("coverage incomplete: missing %s, shifts %s, weights %s" % (sorted(missing), sorted(shifts), wkinds))
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
