#!/usr/bin/python3
"""Write qsim's deterministic example networks (.qbin, docs/qbin.md).

    make_nets.py                      # models/nets/tiny.qbin and models/nets/demo_w2a4.qbin
    make_nets.py --out-dir DIR        # the same, elsewhere
    make_nets.py --resnet18 [PATH] --wbits 2 --abits 4
    make_nets.py --resnet50 [PATH] --wbits 4 --abits 4

The small nets are committed (a few KB). The ResNets are synthetic (torchvision topology,
224x224x3 input, 1000 classes, random weights) and generated on demand: PATH defaults to
$QSIM_CACHE_DIR or ~/.cache/qsim/nets, named resnet18_w2a4.qbin etc.

How the numbers are chosen, so that the simulator sees realistic data:
- weights are drawn Gaussian (Kaiming: std sqrt(2/fan_in)) and quantized the way LSQ
  initialises its step: step = 2*mean|w|/sqrt(Qp), q = clip(round(w/step), -Qp, Qp) with
  Qp = 2^(b-1)-1 (narrow symmetric; 2 bits = ternary, ~58% zeros; 1 bit = bipolar);
- each conv is followed by a synthetic batch norm folded into an int32 bias and a
  per-channel multiplier, calibrated on deterministic inputs so that every channel's
  pre-activation is normalised; the output scale puts the 99.9th percentile of the
  activations at the top of the output range (so activations use their range); the
  global average pool and the classifier (no batch norm) get calibrated output scales;
- the first conv and the classifier keep 8-bit weights (the usual practice in
  low-precision networks, LSQ included); everything else uses --wbits/--abits.
The values are integers produced by qsim_qbin's reference evaluator, so a simulator
running these nets must reproduce them bit for bit.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim_qbin import (Net, dtype_for_bits, eval_layer, int_range,  # noqa: E402
                       layer_accumulator, DT_INT32)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUANTILE = 0.999


def lsq_weights(rng, shape, bits: int, zero_frac: Optional[float] = None):
    """Gaussian weights quantized with LSQ's step; returns (int array, step)."""
    fan_in = int(np.prod(shape[1:]))
    w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    if bits == 1:
        step = float(np.mean(np.abs(w)))
        return np.where(w >= 0, 1, -1).astype(np.int64), step
    qp = 2 ** (bits - 1) - 1
    if zero_frac is not None:   # pick the step that zeroes this fraction (|w| < step/2)
        step = 2.0 * float(np.quantile(np.abs(w), zero_frac))
    else:
        step = 2.0 * float(np.mean(np.abs(w))) / np.sqrt(qp)
    return np.clip(np.round(w / step), -qp, qp).astype(np.int64), step


class Calibrated:
    """A Net builder that runs every new layer on calibration inputs (with the reference
    evaluator) and picks biases and multipliers from what it sees."""

    def __init__(self, name: str, seed: int, images: List[np.ndarray], c: int, h: int, w: int,
                 bits: int, signed: bool, scale: float):
        self.net = Net(name)
        self.rng = np.random.default_rng(seed)
        self.net.input("input", c, h, w, bits=bits, signed=signed, zp=0, scale=scale)
        self.outs = [[np.asarray(x, np.int64).reshape(c, h, w)] for x in images]

    def _run(self, i: int) -> int:
        for o in self.outs:
            o.append(eval_layer(self.net, i, o))
        return i

    def _accs(self, i: int) -> np.ndarray:
        """Accumulators of layer i over all calibration inputs, shape (N, C, H, W)."""
        return np.stack([layer_accumulator(self.net, i, o) for o in self.outs])

    @staticmethod
    def _out_scale(y: np.ndarray, bits: int, signed: bool) -> float:
        hi = int_range(bits, signed)[1]
        v = np.abs(y) if signed else np.maximum(y, 0)
        top = float(np.quantile(v, QUANTILE)) if v.size else 0.0
        if top <= 0:
            top = float(v.max()) if v.size and v.max() > 0 else 1.0
        return top / hi

    def conv(self, name: str, src: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             relu: bool = True, wbits: int = 2, abits: int = 4, zero_frac=None, fc: bool = False) -> int:
        """conv (or fc) + folded batch norm + optional ReLU, calibrated per channel."""
        net = self.net
        s = net.layers[src]
        if fc:
            shape = (cout, s.out_c * s.out_h * s.out_w)
        else:
            shape = (cout, s.out_c // groups, k, k)
        q, step = lsq_weights(self.rng, shape, wbits, zero_frac)
        signed = not relu
        if fc:
            i = net.fc(name, src, q, wbits=wbits, w_scale=step, bits=abits, signed=signed)
        else:
            i = net.conv(name, src, q, stride=stride, pad=k // 2, groups=groups, wbits=wbits,
                         w_scale=step, bits=abits, signed=signed)
        unit = s.out_scale * step                       # real value of one accumulator step
        z = self._accs(i).astype(np.float64) * unit     # (N, C, H, W)
        if fc:
            return self._classifier(i, z, unit, abits)
        mu = z.mean(axis=(0, 2, 3))
        sd = z.std(axis=(0, 2, 3))
        sd = np.where(sd > 0, sd, unit)                 # a dead channel: keep it finite
        gamma = self.rng.uniform(0.6, 1.4, cout)
        beta = self.rng.normal(0.0, 0.3, cout) if relu else self.rng.normal(0.0, 0.1, cout)
        y = (z - mu[None, :, None, None]) / sd[None, :, None, None] * gamma[None, :, None, None] \
            + beta[None, :, None, None]
        s_out = self._out_scale(y, abits, signed)
        bias = np.clip(np.round((beta * sd / gamma - mu) / unit), -2**31, 2**31 - 1).astype(np.int64)
        l = net.layers[i]
        l.bias = net.add_tensor(name + ".b", bias, DT_INT32, True,
                                scale=np.full(cout, unit, np.float32), axis=0)
        net._apply_out(l, bits=abits, signed=signed, zp=0, scale=s_out,
                       act="relu" if relu else None, multiplier=unit * gamma / (sd * s_out))
        return self._run(i)

    def _classifier(self, i: int, z: np.ndarray, unit: float, abits: int) -> int:
        """A classifier has no batch norm: small random bias, one output scale for all
        logits (per-channel statistics of a 1x1 output would rest on a handful of values)."""
        net = self.net
        l = net.layers[i]
        bias = np.round(self.rng.normal(0.0, 0.1 * float(z.std()) + 1e-12, l.out_c) / unit)
        y = z + (bias * unit)[None, :, None, None]
        s_out = self._out_scale(y, abits, True)
        l.bias = net.add_tensor(l.name + ".b", bias.astype(np.int64), DT_INT32, True,
                                scale=[unit])
        net._apply_out(l, bits=abits, signed=True, zp=0, scale=s_out, multiplier=unit / s_out)
        return self._run(i)

    def gap(self, name: str, src: int) -> int:
        """Global average pool whose output scale is calibrated (the mean of a ReLU map
        is much smaller than its maximum, so keeping the input scale wastes the range)."""
        net = self.net
        s = net.layers[src]
        i = net.gap(name, src, bits=s.out_bits, signed=s.out_signed, zp=0, mult=[0], shift=[0])
        unit = s.out_scale / (s.out_h * s.out_w)
        y = self._accs(i).astype(np.float64) * unit
        s_out = self._out_scale(y, s.out_bits, s.out_signed)
        net._apply_out(net.layers[i], bits=s.out_bits, signed=s.out_signed, zp=0, scale=s_out,
                       multiplier=unit / s_out)
        return self._run(i)

    def add(self, name: str, a: int, b: int, abits: int) -> int:
        """Residual add + ReLU: integer input multipliers from the two scales (14 bits)."""
        net = self.net
        sa, sb = net.layers[a].out_scale, net.layers[b].out_scale
        smax = max(sa, sb)
        k = 1 << 14
        i = net.add(name, a, b, int(round(sa / smax * k)), int(round(sb / smax * k)),
                    bits=abits, signed=False)
        unit = smax / k
        y = self._accs(i).astype(np.float64) * unit
        s_out = self._out_scale(y, abits, False)
        net._apply_out(net.layers[i], bits=abits, signed=False, zp=0, scale=s_out, act="relu",
                       multiplier=unit / s_out)
        return self._run(i)

    def plain(self, i: int) -> int:
        """Register a layer added directly on self.net (pools, concat, ...)."""
        return self._run(i)


# ---------------------------------------------------------------------------- small nets

def smooth_images(rng, n: int, c: int, h: int, w: int, lo: int, hi: int) -> List[np.ndarray]:
    """Deterministic calibration images: blurred noise stretched over [lo, hi]."""
    out = []
    for _ in range(n):
        x = rng.normal(size=(c, h + 2, w + 2))
        x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:] + x[:, 1:-1, :-2] + x[:, :-2, 1:-1]) / 5
        x = (x - x.min()) / (x.max() - x.min() + 1e-12)
        out.append(np.round(lo + x * (hi - lo)).astype(np.int64))
    return out


def make_tiny() -> Net:
    """conv3x3+relu -> maxpool -> conv3x3+relu -> gap -> fc; int8 weights, 8-bit activations."""
    rng = np.random.default_rng(1)
    imgs = smooth_images(rng, 8, 3, 8, 8, -128, 127)
    b = Calibrated("tiny", 11, imgs, 3, 8, 8, bits=8, signed=True, scale=1 / 64)
    x = b.conv("conv1", 0, 4, 3, wbits=8, abits=8)
    x = b.plain(b.net.maxpool("pool1", x, 2))
    x = b.conv("conv2", x, 8, 3, wbits=8, abits=8)
    x = b.gap("gap", x)
    b.conv("fc", x, 10, 1, relu=False, wbits=8, abits=8, fc=True)
    return b.net


def make_demo_w2a4() -> Net:
    """A small CNN on 1x8x8 with ternary (int2, ~40% zeros) weights and 4-bit unsigned
    activations, using every layer kind that tiny does not: residual add, depthwise conv,
    avgpool, concat, standalone act and requant (with a left shift), flatten + fc."""
    rng = np.random.default_rng(2)
    imgs = smooth_images(rng, 8, 1, 8, 8, 0, 15)
    b = Calibrated("demo_w2a4", 22, imgs, 1, 8, 8, bits=4, signed=False, scale=1 / 15)
    net = b.net
    z = 0.40
    c1 = b.conv("conv1", 0, 8, 3, wbits=2, abits=4, zero_frac=z)
    c2 = b.conv("conv2", c1, 8, 3, relu=False, wbits=2, abits=4, zero_frac=z)
    r = b.add("res", c2, c1, abits=4)
    dw = b.conv("dw", r, 8, 3, stride=2, groups=8, wbits=2, abits=4, zero_frac=z)
    s_dw = net.layers[dw].out_scale
    # avgpool into the depthwise branch's scale so the concat has one scale
    ap = b.plain(net.avgpool("avgpool", r, 2, bits=4, signed=False, zp=0, scale=s_dw))
    cat = b.plain(net.concat("concat", [dw, ap]))
    act = b.plain(net.act("clip", cat, act="clip", clamp=(0, 12)))
    # stretch [0, 12] back over [0, 15]: real multiplier 1.25 -> a negative (left) shift
    rq = b.plain(net.requant("requant", act, bits=4, signed=False, zp=0,
                             scale=net.layers[act].out_scale * 12 / 15, multiplier=1.25))
    fl = b.plain(net.flatten("flatten", rq))
    b.conv("fc", fl, 10, 1, relu=False, wbits=2, abits=8, zero_frac=z, fc=True)
    return net


# ---------------------------------------------------------------------------- resnets

def make_resnet(depth: int, wbits: int, abits: int) -> Net:
    """Synthetic torchvision ResNet-18/50 (v1.5: stride in the 3x3 of bottlenecks)."""
    blocks, bottleneck = {18: ([2, 2, 2, 2], False), 50: ([3, 4, 6, 3], True)}[depth]
    rng = np.random.default_rng(100 + depth)
    imgs = smooth_images(rng, 2, 3, 224, 224, -128, 127)
    b = Calibrated("resnet%d_w%da%d" % (depth, wbits, abits), 1000 + depth, imgs, 3, 224, 224,
                   bits=8, signed=True, scale=1 / 48)
    net = b.net
    x = b.conv("conv1", 0, 64, 7, stride=2, wbits=8, abits=abits)
    x = b.plain(net.maxpool("maxpool", x, 3, stride=2, pad=1))
    cin = 64
    for stage, (n, width) in enumerate(zip(blocks, [64, 128, 256, 512])):
        for blk in range(n):
            stride = 2 if stage > 0 and blk == 0 else 1
            p = "layer%d.%d." % (stage + 1, blk)
            cout = width * 4 if bottleneck else width
            if bottleneck:
                y = b.conv(p + "conv1", x, width, 1, wbits=wbits, abits=abits)
                y = b.conv(p + "conv2", y, width, 3, stride=stride, wbits=wbits, abits=abits)
                y = b.conv(p + "conv3", y, cout, 1, relu=False, wbits=wbits, abits=abits)
            else:
                y = b.conv(p + "conv1", x, width, 3, stride=stride, wbits=wbits, abits=abits)
                y = b.conv(p + "conv2", y, width, 3, relu=False, wbits=wbits, abits=abits)
            if stride != 1 or cin != cout:
                sc = b.conv(p + "downsample", x, cout, 1, stride=stride, relu=False,
                            wbits=wbits, abits=abits)
            else:
                sc = x
            x = b.add(p + "add", y, sc, abits)
            cin = cout
    x = b.gap("avgpool", x)
    b.conv("fc", x, 1000, 1, relu=False, wbits=8, abits=8, fc=True)
    return net


def cache_dir() -> str:
    return os.environ.get("QSIM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "qsim", "nets")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "nets"),
                    help="where tiny.qbin and demo_w2a4.qbin go (default models/nets)")
    ap.add_argument("--resnet18", nargs="?", const="", metavar="PATH",
                    help="also write a synthetic ResNet-18 (default path in the cache folder)")
    ap.add_argument("--resnet50", nargs="?", const="", metavar="PATH",
                    help="also write a synthetic ResNet-50")
    ap.add_argument("--wbits", type=int, default=2, choices=[1, 2, 4, 8])
    ap.add_argument("--abits", type=int, default=4, choices=range(2, 17), metavar="2..16")
    ap.add_argument("--no-small", action="store_true", help="skip tiny/demo")
    a = ap.parse_args(argv)

    jobs = []
    if not a.no_small:
        jobs += [(make_tiny, os.path.join(a.out_dir, "tiny.qbin")),
                 (make_demo_w2a4, os.path.join(a.out_dir, "demo_w2a4.qbin"))]
    for depth, path in ((18, a.resnet18), (50, a.resnet50)):
        if path is None:
            continue
        path = path or os.path.join(cache_dir(), "resnet%d_w%da%d.qbin" % (depth, a.wbits, a.abits))
        jobs.append((lambda d=depth: make_resnet(d, a.wbits, a.abits), path))
    for make, path in jobs:
        net = make()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        net.save(path)
        print("wrote %s (%d bytes, %d layers)" % (path, os.path.getsize(path), len(net.layers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
