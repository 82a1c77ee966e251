#!/usr/bin/python3
"""qsim's model zoo: torchvision networks as quantized .qbin files (docs/model_zoo.md).

    model_zoo.py --net resnet18 --wbits 2 --abits 4            # cached, printed
    model_zoo.py --net mobilenet_v2 --wbits 4 --abits 4 --resolution 64 -o mnv2.qbin
    model_zoo.py --net vgg16 --wbits 8 --abits 8 --force       # rebuild the cached file

ResNet-18, ResNet-50, VGG-16 and MobileNetV2 are built from torchvision's own definitions
(weights=None: no pretrained weights exist offline): the module graph is traced with
torch.fx and every node is translated into .qbin layers (Conv2d + BatchNorm2d + ReLU/ReLU6
fused into one conv, MaxPool2d, adaptive average pooling, flatten, Linear (+ReLU), the
residual add (+ReLU), Dropout = identity). A node it cannot translate is refused by name.

The values are synthetic but drawn to look like a trained quantized network:
- weights have torchvision's shapes and LSQ's quantization: Gaussian draws, step =
  2*mean|w|/sqrt(Qp), q = clip(round(w/step), -Qp, Qp), Qp = 2^(b-1)-1 (2 bits = ternary
  with ~57% zeros, 1 bit = bipolar);
- every batch norm is synthetic (gamma, beta drawn, mean/variance measured on calibration
  inputs) and folded into an int32 bias and a per-channel requantization multiplier;
  output scales put the 99.9th percentile of each activation at the top of its range;
- the first conv and the classifier keep --first-bits/--last-bits weights (8 by default).
Calibration runs the layers on deterministic smooth-noise images with qsim_qbin's integer
reference evaluator, so the .qbin holds exactly what a bit-exact simulator must compute.

Outputs are cached in $QSIM_CACHE_DIR (default ~/.cache/qsim/nets) as
<net>_w<W>a<A>[_r<res>]... .qbin with a .json stamp beside it; a cached file is reused only
if the stamp matches the options, the generator's sources and the file itself.

This module also holds the calibration machinery (lsq_weights, Calibrated, smooth_images)
that scripts/make_nets.py uses for its small example networks. torch and torchvision are
needed only for the zoo itself (Debian: python3-torch python3-torchvision).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import operator
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from .qbin import (DT_INT32, REQUANT_KINDS, Net, eval_layer, int_range,  # noqa: E402
                       layer_accumulators, layer_requant)

HERE = os.path.dirname(os.path.abspath(__file__))
QUANTILE = 0.999          # the activation quantile put at the top of the output range
NETS = ("resnet18", "resnet50", "vgg16", "mobilenet_v2")
LOGIT_BITS = 8            # the classifier's output (signed logits)
INPUT_SCALE = 1.0 / 48    # int8 image: about the range of a normalised ImageNet image
DEFAULTS = dict(first_bits=8, last_bits=8, resolution=224, seed=0, calib=None, zero_frac=None)


class ZooError(ValueError):
    """A network the zoo cannot translate, or bad options; the message names the place."""


# ---------------------------------------------------------------------------- weights

def storage_bits(bits: int) -> int:
    """Bits of the .qbin dtype that stores n-bit weights (1, 2, 4 or 8): 3 -> 4, 5..7 -> 8."""
    for b in (1, 2, 4, 8):
        if bits <= b:
            return b
    raise ValueError("weights of %d bits: at most 8" % bits)


def lsq_weights(rng, shape, bits: int, zero_frac: Optional[float] = None):
    """Gaussian weights quantized with LSQ's initial step; returns (int array, step).
    zero_frac (2+ bits): pick the step that rounds this fraction of weights to 0 instead."""
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
    # clip(round(w / step)), in place: VGG-16's first classifier layer has 103 M weights
    np.divide(w, step, out=w)
    np.rint(w, out=w)
    np.clip(w, -qp, qp, out=w)
    return w.astype(np.int8), step


def smooth_images(rng, n: int, c: int, h: int, w: int, lo: int, hi: int) -> List[np.ndarray]:
    """Deterministic calibration images: blurred noise stretched over [lo, hi]."""
    out = []
    for _ in range(n):
        x = rng.normal(size=(c, h + 2, w + 2))
        x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:] + x[:, 1:-1, :-2] + x[:, :-2, 1:-1]) / 5
        x = (x - x.min()) / (x.max() - x.min() + 1e-12)
        out.append(np.round(lo + x * (hi - lo)).astype(np.int64))
    return out


# ---------------------------------------------------------------------------- calibration

def _act_values(y: np.ndarray, act: Optional[str]) -> np.ndarray:
    """Real values after the activation (what the output quantizer has to cover)."""
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    return y


class Calibrated:
    """A Net builder that runs every new layer on calibration inputs (with the reference
    evaluator's integer semantics) and picks biases and multipliers from what it sees."""

    def __init__(self, name: str, seed, images: List[np.ndarray], c: int, h: int, w: int,
                 bits: int, signed: bool, scale: float):
        self.net = Net(name)
        self.rng = np.random.default_rng(seed)
        self.net.input("input", c, h, w, bits=bits, signed=signed, zp=0, scale=scale)
        self.net.weight_bits = {}   # layer index -> the quantizer's weight bits
        self.outs = [[np.asarray(x, np.int64).reshape(c, h, w)] for x in images]

    def _run(self, i: int, accs: Optional[np.ndarray] = None) -> int:
        """Append layer i's output for every calibration input. accs: the accumulators
        already computed by _accs (a requantizing layer: saves computing them twice)."""
        l = self.net.layers[i]
        if l.out_h < 1 or l.out_w < 1:
            raise ZooError("layer %d '%s': output %dx%dx%d is empty (input too small)" %
                           (i, l.name, l.out_c, l.out_h, l.out_w))
        if accs is not None and l.kind in REQUANT_KINDS:
            for o, a in zip(self.outs, accs):
                o.append(layer_requant(l, a))
        else:
            for o in self.outs:
                o.append(eval_layer(self.net, i, o))
        return i

    def _accs(self, i: int) -> np.ndarray:
        """Accumulators of layer i over all calibration inputs, shape (N, C, H, W)."""
        return layer_accumulators(self.net, i, self.outs)

    @staticmethod
    def _out_scale(y: np.ndarray, bits: int, signed: bool) -> float:
        hi = int_range(bits, signed)[1]
        v = np.abs(y) if signed else np.maximum(y, 0)
        top = float(np.quantile(v, QUANTILE)) if v.size else 0.0
        if top <= 0:
            top = float(v.max()) if v.size and v.max() > 0 else 1.0
        return top / hi

    def conv(self, name: str, src: int, cout: int, k, stride=1, pad=None, dilation=1,
             groups: int = 1, act: Optional[str] = "relu", bn: bool = True, wbits: int = 2,
             abits: int = 4, zero_frac=None) -> int:
        """conv + folded batch norm (bn=False: a conv bias instead) + optional ReLU/ReLU6.
        k, stride, pad, dilation: int or pair; pad defaults to k//2."""
        net = self.net
        s = net.layers[src]
        kh, kw = (k, k) if isinstance(k, int) else tuple(k)
        if pad is None:
            pad = (kh // 2, kw // 2)
        q, step = lsq_weights(self.rng, (cout, s.out_c // groups, kh, kw), wbits, zero_frac)
        signed = act is None
        i = net.conv(name, src, q, stride=stride, pad=pad, dilation=dilation, groups=groups,
                     wbits=storage_bits(wbits), w_scale=step, bits=abits, signed=signed)
        net.weight_bits[i] = wbits
        unit = s.out_scale * step                       # real value of one accumulator step
        accs = self._accs(i)
        z = accs.astype(np.float64) * unit              # (N, C, H, W)
        if not bn:
            return self._biased(i, accs, z, unit, act, abits)
        mu = z.mean(axis=(0, 2, 3))
        sd = z.std(axis=(0, 2, 3))
        sd = np.where(sd > 0, sd, unit)                 # a dead channel: keep it finite
        gamma = self.rng.uniform(0.6, 1.4, cout)
        beta = self.rng.normal(0.0, 0.3, cout) if act else self.rng.normal(0.0, 0.1, cout)
        y = (z - mu[None, :, None, None]) / sd[None, :, None, None] * gamma[None, :, None, None] \
            + beta[None, :, None, None]
        s_out = self._out_scale(_act_values(y, act), abits, signed)
        bias = np.clip(np.round((beta * sd / gamma - mu) / unit), -2**31, 2**31 - 1).astype(np.int64)
        l = net.layers[i]
        l.bias = net.add_tensor(name + ".b", bias, DT_INT32, True,
                                scale=np.full(cout, unit, np.float32), axis=0)
        net._apply_out(l, bits=abits, signed=signed, zp=0, scale=s_out, act=act,
                       multiplier=unit * gamma / (sd * s_out))
        return self._run(i, accs + bias[None, :, None, None])

    def fc(self, name: str, src: int, cout: int, act: Optional[str] = None, wbits: int = 8,
           abits: int = 8, zero_frac=None) -> int:
        """Fully connected (on the flattened input) + bias + optional ReLU/ReLU6."""
        net = self.net
        s = net.layers[src]
        q, step = lsq_weights(self.rng, (cout, s.out_c * s.out_h * s.out_w), wbits, zero_frac)
        i = net.fc(name, src, q, wbits=storage_bits(wbits), w_scale=step, bits=abits,
                   signed=act is None)
        net.weight_bits[i] = wbits
        unit = s.out_scale * step
        accs = self._accs(i)
        return self._biased(i, accs, accs.astype(np.float64) * unit, unit, act, abits)

    def _biased(self, i: int, accs: np.ndarray, z: np.ndarray, unit: float, act, abits: int) -> int:
        """A layer without batch norm (a classifier, VGG's convs): small random bias, one
        output scale for the whole layer (per-channel statistics of a classifier's 1x1
        output would rest on a handful of values)."""
        net = self.net
        l = net.layers[i]
        signed = act is None
        bias = np.round(self.rng.normal(0.0, 0.1 * float(z.std()) + 1e-12, l.out_c) / unit)
        y = z + (bias * unit)[None, :, None, None]
        s_out = self._out_scale(_act_values(y, act), abits, signed)
        l.bias = net.add_tensor(l.name + ".b", bias.astype(np.int64), DT_INT32, True,
                                scale=[unit])
        net._apply_out(l, bits=abits, signed=signed, zp=0, scale=s_out, act=act,
                       multiplier=unit / s_out)
        return self._run(i, accs + bias.astype(np.int64)[None, :, None, None])

    def gap(self, name: str, src: int) -> int:
        """Global average pool whose output scale is calibrated (the mean of a ReLU map
        is much smaller than its maximum, so keeping the input scale wastes the range)."""
        net = self.net
        s = net.layers[src]
        i = net.gap(name, src, bits=s.out_bits, signed=s.out_signed, zp=0, mult=[0], shift=[0])
        unit = s.out_scale / (s.out_h * s.out_w)
        accs = self._accs(i)
        s_out = self._out_scale(accs.astype(np.float64) * unit, s.out_bits, s.out_signed)
        net._apply_out(net.layers[i], bits=s.out_bits, signed=s.out_signed, zp=0, scale=s_out,
                       multiplier=unit / s_out)
        return self._run(i, accs)

    def add(self, name: str, a: int, b: int, abits: int, act: Optional[str] = "relu") -> int:
        """Residual add (+ optional ReLU/ReLU6): integer input multipliers from the two
        scales (14 bits); signed output without an activation."""
        net = self.net
        sa, sb = net.layers[a].out_scale, net.layers[b].out_scale
        smax = max(sa, sb)
        k = 1 << 14
        signed = act is None
        i = net.add(name, a, b, int(round(sa / smax * k)), int(round(sb / smax * k)),
                    bits=abits, signed=signed)
        unit = smax / k
        accs = self._accs(i)
        s_out = self._out_scale(_act_values(accs.astype(np.float64) * unit, act), abits, signed)
        net._apply_out(net.layers[i], bits=abits, signed=signed, zp=0, scale=s_out, act=act,
                       multiplier=unit / s_out)
        return self._run(i, accs)

    def plain(self, i: int) -> int:
        """Register a layer added directly on self.net (pools, concat, ...)."""
        return self._run(i)


# ---------------------------------------------------------------------------- torchvision

def torch_model(name: str, seed: int = 0):
    """torchvision's definition of `name`, weights=None, eval mode, deterministic init."""
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ZooError("the model zoo needs torch and torchvision (Debian: python3-torch "
                       "python3-torchvision): %s" % e)
    if name not in NETS:
        raise ZooError("unknown network '%s' (known: %s)" % (name, ", ".join(NETS)))
    torch.manual_seed(seed)
    return getattr(torchvision.models, name)(weights=None).eval()


def trace(model):
    """torch.fx trace of `model` whose nodes carry meta['scope'], the path of the module
    whose forward created them (names the residual adds: 'layer1.0.add')."""
    import torch.fx as fx

    class ScopeTracer(fx.Tracer):
        def __init__(self):
            super().__init__()
            self.scope = [""]

        def call_module(self, m, forward, args, kwargs):
            self.scope.append(self.path_of_module(m))
            try:
                return super().call_module(m, forward, args, kwargs)
            finally:
                self.scope.pop()

        def create_node(self, *args, **kwargs):
            node = super().create_node(*args, **kwargs)
            node.meta["scope"] = self.scope[-1]
            return node

    tracer = ScopeTracer()
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _calib_count(resolution: int) -> int:
    """Calibration images: 2 at 224 (each channel's statistics rest on 2*H*W values), more
    at small resolutions where the last stages are 1x1 or 2x2 (at most 16)."""
    return int(min(16, max(2, math.ceil(2.0 * (224.0 / resolution) ** 2))))


class _Translator:
    """Walks a traced graph in order and emits fused .qbin layers through Calibrated."""

    def __init__(self, gm, b: Calibrated, shapes: Dict[str, tuple], wbits: int, abits: int,
                 first_bits: int, last_bits: int, zero_frac):
        import torch.nn as nn
        import torch.nn.functional as F
        import torch
        self.nn, self.F, self.torch = nn, F, torch
        self.gm, self.b, self.net = gm, b, b.net
        self.mods = dict(gm.named_modules())
        self.shapes = shapes
        self.wbits, self.abits = wbits, abits
        self.first_bits, self.last_bits = first_bits, last_bits
        self.zero_frac = zero_frac
        self.env = {}            # fx node -> layer index
        self.replicated = set()  # layer indices holding a 1x1 -> HxW replication (see adaptive)
        self.done = set()        # nodes absorbed into an earlier layer
        self.names = set()
        out = [n for n in gm.graph.nodes if n.op == "output"][0]
        self.last = self._through_identity(out.args[0])

    # -- helpers
    def refuse(self, n, why: str):
        if n.op == "call_module":
            what = "%s '%s'" % (type(self.mods[n.target]).__name__, n.target)
        else:
            what = getattr(n.target, "__name__", str(n.target))
        raise ZooError("node '%s' (%s %s): %s" % (n.name, n.op, what, why))

    def mod(self, n):
        return self.mods[n.target] if n.op == "call_module" else None

    def is_identity(self, n) -> bool:
        m = self.mod(n)
        if m is not None:
            return isinstance(m, (self.nn.Dropout, self.nn.Identity))
        return n.op == "call_function" and n.target is self.F.dropout

    def _through_identity(self, n):
        while self.is_identity(n):
            n = n.args[0]
        return n

    def act_of(self, n) -> Optional[str]:
        """'relu' / 'relu6' if node n is such an activation, else None."""
        m = self.mod(n)
        if m is not None:
            if isinstance(m, self.nn.ReLU6):
                return "relu6"
            if isinstance(m, self.nn.ReLU):
                return "relu"
            return None
        if n.op == "call_function":
            if n.target in (self.F.relu, self.torch.relu, self.torch.relu_):
                return "relu"
            if n.target is self.F.relu6:
                return "relu6"
        if n.op == "call_method" and n.target in ("relu", "relu_"):
            return "relu"
        return None

    @staticmethod
    def sole_user(n):
        users = list(n.users)
        return users[0] if len(users) == 1 else None

    def fuse_act(self, n):
        """(activation, last node) for node n followed by its only user being ReLU/ReLU6."""
        u = self.sole_user(n)
        if u is not None and self.act_of(u):
            self.done.add(u)
            return self.act_of(u), u
        return None, n

    def name(self, base: str) -> str:
        """A unique layer name; at most 44 characters so that '<name>.w' fits the format."""
        base = (base or "layer")[-40:]
        name, k = base, 1
        while name in self.names:
            k += 1
            name = "%s_%d" % (base, k)
        self.names.add(name)
        return name

    def scoped(self, n, what: str) -> str:
        scope = n.meta.get("scope", "")
        return self.name(scope + "." + what if scope else what)

    def src(self, n, arg):
        if arg not in self.env:
            self.refuse(n, "input '%s' is not a translated tensor" % getattr(arg, "name", arg))
        return self.env[arg]

    def check_shape(self, n, i: int):
        """The .qbin layer must have torch's output shape (numel for a replication)."""
        want = self.shapes.get(n.name)
        l = self.net.layers[i]
        if want is None:
            return
        want = tuple(want[1:]) if len(want) == 4 else (want[1], 1, 1)
        got = (l.out_c, l.out_h, l.out_w)
        if i in self.replicated:
            ok = int(np.prod(want)) == int(np.prod(got))
        else:
            ok = want == got
        if not ok:
            self.refuse(n, "translated to shape %s but torch computes %s" % (got, want))

    def bits_for(self, first: bool, tail) -> int:
        if first:
            return self.first_bits
        if tail is self.last:
            return self.last_bits
        return self.wbits

    # -- the walk
    def run(self) -> int:
        for n in self.gm.graph.nodes:
            if n in self.done:
                continue
            if n.op == "placeholder":
                if self.env:
                    self.refuse(n, "only one input is supported")
                self.env[n] = 0
                continue
            if n.op == "output":
                res = n.args[0]
                if res not in self.env:
                    self.refuse(n, "the output must be one tensor")
                self.net.output = self.env[res]
                return self.net.output
            if self.is_identity(n):
                self.env[n] = self.src(n, n.args[0])
                continue
            m = self.mod(n)
            if isinstance(m, self.nn.Conv2d):
                tail, i = self.conv(n, m)
            elif isinstance(m, self.nn.Linear):
                tail, i = self.linear(n, m)
            elif isinstance(m, self.nn.MaxPool2d):
                tail, i = n, self.maxpool(n, m)
            elif isinstance(m, self.nn.AdaptiveAvgPool2d):
                tail, i = n, self.adaptive(n, n.args[0], m.output_size)
            elif isinstance(m, self.nn.Flatten):
                tail, i = n, self.flatten(n, n.args[0], m.start_dim, m.end_dim)
            elif n.op == "call_function" and n.target is self.F.adaptive_avg_pool2d:
                size = n.kwargs.get("output_size", n.args[1] if len(n.args) > 1 else None)
                tail, i = n, self.adaptive(n, n.args[0], size)
            elif (n.op == "call_function" and n.target is self.torch.flatten) or \
                    (n.op == "call_method" and n.target == "flatten"):
                start = n.kwargs.get("start_dim", n.args[1] if len(n.args) > 1 else 0)
                end = n.kwargs.get("end_dim", n.args[2] if len(n.args) > 2 else -1)
                tail, i = n, self.flatten(n, n.args[0], start, end)
            elif (n.op == "call_function" and n.target in (operator.add, operator.iadd,
                                                            self.torch.add)) or \
                    (n.op == "call_method" and n.target in ("add", "add_")):
                tail, i = self.add(n)
            elif m is not None and isinstance(m, self.nn.BatchNorm2d):
                self.refuse(n, "a batch norm must directly follow the conv it is folded into")
            elif self.act_of(n):
                self.refuse(n, "an activation must directly follow a conv, linear or add "
                               "(whose only user it is)")
            else:
                self.refuse(n, "not supported (the zoo translates Conv2d [+BatchNorm2d] [+ReLU/"
                               "ReLU6], Linear [+ReLU], MaxPool2d, adaptive average pooling, "
                               "flatten, residual add [+ReLU], Dropout/Identity)")
            self.env[tail] = i
            self.check_shape(tail, i)
        raise ZooError("the graph has no output node")

    def conv(self, n, m):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            self.refuse(n, "padding %r / padding_mode %r not supported" % (m.padding, m.padding_mode))
        x = n.args[0]
        src = self.src(n, x)
        s = self.net.layers[src]
        if s.out_c != m.in_channels or src in self.replicated:
            self.refuse(n, "input has %d channels, the conv wants %d" % (s.out_c, m.in_channels))
        first = x.op == "placeholder"
        tail = n
        u = self.sole_user(n)
        bn = u is not None and isinstance(self.mod(u), self.nn.BatchNorm2d)
        if bn:
            if self.mod(u).num_features != m.out_channels:
                self.refuse(u, "batch norm of %d channels after a conv of %d" %
                            (self.mod(u).num_features, m.out_channels))
            self.done.add(u)
            tail = u
        act, tail = self.fuse_act(tail)
        bits = self.bits_for(first, tail)
        i = self.b.conv(self.name(n.target), src, m.out_channels, tuple(m.kernel_size),
                        stride=tuple(m.stride), pad=tuple(m.padding), dilation=tuple(m.dilation),
                        groups=m.groups, act=act, bn=bn, wbits=bits, abits=self._abits(tail, act),
                        zero_frac=self.zero_frac if bits == 2 else None)
        return tail, i

    def _abits(self, tail, act) -> int:
        return LOGIT_BITS if tail is self.last and act is None else self.abits

    def linear(self, n, m):
        src = self.src(n, n.args[0])
        s = self.net.layers[src]
        if s.out_c * s.out_h * s.out_w != m.in_features:
            self.refuse(n, "input has %d values, the layer wants %d" %
                        (s.out_c * s.out_h * s.out_w, m.in_features))
        act, tail = self.fuse_act(n)
        bits = self.bits_for(False, tail)
        i = self.b.fc(self.name(n.target), src, m.out_features, act=act, wbits=bits,
                      abits=self._abits(tail, act), zero_frac=self.zero_frac if bits == 2 else None)
        return tail, i

    def maxpool(self, n, m) -> int:
        if m.ceil_mode or m.return_indices:
            self.refuse(n, "ceil_mode / return_indices not supported")
        src = self.src(n, n.args[0])
        k = m.kernel_size
        return self.b.plain(self.net.maxpool(self.name(n.target), src, k,
                                             stride=m.stride if m.stride is not None else k,
                                             pad=m.padding, dilation=m.dilation))

    def adaptive(self, n, x, size) -> int:
        """AdaptiveAvgPool2d: 1x1 -> global average pool; same size -> identity; H a
        multiple of the output -> avgpool; a 1x1 input (VGG-16 below 64x64: its 7x7 pool
        then copies the pixel 49 times) -> channel concat of copies (the flatten + Linear
        that follow see the copies in pixel-major instead of channel-major order: a fixed
        permutation of the Linear's input columns, immaterial for synthetic weights)."""
        src = self.src(n, x)
        s = self.net.layers[src]
        if isinstance(size, int):
            size = (size, size)
        oh, ow = [s.out_h if v is None else int(v) for v in (tuple(size) if size is not None
                                                              else (None, None))]
        name = self.scoped(n, "avgpool") if n.op != "call_module" else self.name(n.target)
        if (oh, ow) == (1, 1):
            return self.b.gap(name, src)
        if (oh, ow) == (s.out_h, s.out_w):
            self.names.discard(name)
            return src
        if s.out_h % oh == 0 and s.out_w % ow == 0:
            k = (s.out_h // oh, s.out_w // ow)
            return self.b.plain(self.net.avgpool(name, src, k, stride=k))
        if (s.out_h, s.out_w) == (1, 1):
            i = self._replicate(name, src, oh * ow)
            self.replicated.add(i)
            return i
        self.refuse(n, "average pooling %dx%d to %dx%d has overlapping or uneven bins (use a "
                       "resolution where the input is a multiple of the output, or 1x1)" %
                    (s.out_h, s.out_w, oh, ow))

    def _replicate(self, name: str, src: int, copies: int) -> int:
        """`copies` channel-concatenated copies of src, in a tree of concats of <= 8 inputs."""
        parts, level = [src] * copies, 0
        while len(parts) > 1:
            groups = [parts[j:j + 8] for j in range(0, len(parts), 8)]
            # equal-size groups (e.g. 7 x 7 for 49 copies) keep every level uniform
            for g in range(2, 9):
                if len(parts) % g == 0 and len(parts) // g <= 8:
                    groups = [parts[j:j + g] for j in range(0, len(parts), g)]
                    break
            nxt = []
            for gi, grp in enumerate(groups):
                last = len(groups) == 1
                nm = name if last else self.name("%s.copy%d_%d" % (name, level, gi))
                nxt.append(self.b.plain(self.net.concat(nm, grp)))
            parts, level = nxt, level + 1
        return parts[0]

    def flatten(self, n, x, start, end) -> int:
        if start != 1 or end not in (-1, 3):
            self.refuse(n, "only flatten(x, 1) is supported (start_dim %s, end_dim %s)" % (start, end))
        src = self.src(n, x)
        name = self.scoped(n, "flatten") if n.op != "call_module" else self.name(n.target)
        i = self.b.plain(self.net.flatten(name, src))
        if src in self.replicated:
            self.replicated.add(i)
        return i

    def add(self, n):
        if len(n.args) != 2 or n.kwargs:
            self.refuse(n, "only the add of two tensors is supported")
        a, b = (self.src(n, v) for v in n.args)
        la, lb = self.net.layers[a], self.net.layers[b]
        if la.shape != lb.shape:
            self.refuse(n, "adds %s and %s" % (la.shape, lb.shape))
        act, tail = self.fuse_act(n)
        return tail, self.b.add(self.scoped(n, "add"), a, b, self._abits(tail, act), act=act)


def translate(model, name: str, resolution: int = 224, wbits: int = 2, abits: int = 4,
              first_bits: int = 8, last_bits: int = 8, seed: int = 0, calib: Optional[int] = None,
              zero_frac: Optional[float] = None, in_channels: int = 3,
              release_weights: bool = False) -> Net:
    """Any torch model built from the supported modules -> a calibrated .qbin Net whose
    input is an int8 signed in_channels x resolution x resolution image. Only the module
    graph and hyper-parameters are used (release_weights: empty the model's parameter
    tensors once traced, to save memory)."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp
    gm = trace(model)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, in_channels, resolution, resolution))
    except Exception as e:  # torch's own complaint, e.g. an input too small for the net
        raise ZooError("%s at %dx%d: torch cannot run it: %s" % (name, resolution, resolution, e))
    shapes = {n.name: tuple(n.meta["tensor_meta"].shape) for n in gm.graph.nodes
              if "tensor_meta" in n.meta and hasattr(n.meta["tensor_meta"], "shape")}
    if release_weights:   # only the modules' hyper-parameters are needed from here on
        for p in gm.parameters():
            p.data = torch.empty(0)
    calib = calib or _calib_count(resolution)
    images = smooth_images(np.random.default_rng([seed, 2]), calib, in_channels, resolution,
                           resolution, -128, 127)
    b = Calibrated(name, [seed, 1], images, in_channels, resolution, resolution, bits=8,
                   signed=True, scale=INPUT_SCALE)
    _Translator(gm, b, shapes, wbits, abits, first_bits, last_bits, zero_frac).run()
    b.net.validate(name)
    return b.net


def check_options(wbits, abits, first_bits=8, last_bits=8, resolution=224, zero_frac=None,
                  calib=None):
    for what, v, lo, hi in (("--wbits", wbits, 1, 8), ("--abits", abits, 2, 8),
                            ("--first-bits", first_bits, 1, 8), ("--last-bits", last_bits, 1, 8),
                            ("--resolution", resolution, 8, 4096)):
        if not lo <= int(v) <= hi:
            raise ZooError("%s %s outside %d..%d" % (what, v, lo, hi))
    if zero_frac is not None and not 0.0 < zero_frac < 1.0:
        raise ZooError("--zero-frac %s outside (0, 1)" % zero_frac)
    if calib is not None and not 1 <= calib <= 256:
        raise ZooError("--calib %s outside 1..256" % calib)


def build(net: str, wbits: int, abits: int, first_bits: int = 8, last_bits: int = 8,
          resolution: int = 224, seed: int = 0, calib: Optional[int] = None,
          zero_frac: Optional[float] = None) -> Net:
    """One zoo network as a Net (not written). Deterministic in all arguments."""
    check_options(wbits, abits, first_bits, last_bits, resolution, zero_frac, calib)
    model = torch_model(net, seed)
    return translate(model, stem(net, wbits, abits, resolution=resolution, seed=seed,
                                 first_bits=first_bits, last_bits=last_bits, calib=calib,
                                 zero_frac=zero_frac),
                     resolution, wbits, abits, first_bits, last_bits, seed, calib, zero_frac,
                     release_weights=True)


# ---------------------------------------------------------------------------- cache

def cache_dir() -> str:
    return os.environ.get("QSIM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "qsim", "nets")


def stem(net: str, wbits: int, abits: int, **opts) -> str:
    """<net>_w<W>a<A>, then a suffix for every option away from its default:
    _r<res>, _f<first bits>, _l<last bits>, _s<seed>, _c<calibration images>, _z<zero %>."""
    s = "%s_w%da%d" % (net, wbits, abits)
    o = dict(DEFAULTS, **opts)
    for key, tag in (("resolution", "r"), ("first_bits", "f"), ("last_bits", "l"),
                     ("seed", "s"), ("calib", "c")):
        if o[key] != DEFAULTS[key]:
            s += "_%s%d" % (tag, o[key])
    if o["zero_frac"] is not None:
        s += "_z%g" % (100 * o["zero_frac"])
    return s


def default_path(net: str, wbits: int, abits: int, **opts) -> str:
    return os.path.join(cache_dir(), stem(net, wbits, abits, **opts) + ".qbin")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_stamp() -> dict:
    """What a cached file depends on besides the options: this generator, the .qbin
    writer/evaluator, and the library versions (torchvision's graphs, NumPy's streams)."""
    h = hashlib.sha256()
    for f in ("zoo.py", "qbin.py"):
        with open(os.path.join(HERE, f), "rb") as fh:
            h.update(fh.read())
    import torch
    import torchvision
    return {"sources_sha256": h.hexdigest(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__}


def stamp_path(path: str) -> str:
    return path + ".json"


def read_stamp(path: str) -> Optional[dict]:
    try:
        with open(stamp_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def layer_table(net: Net) -> list:
    """[index, kind, name, [c, h, w], weight bits (0: none), MACs] per layer. The weight
    bits are the quantizer's (net.weight_bits, set by Calibrated), else the dtype's."""
    from .qbin import DTYPE_BITS
    logical = getattr(net, "weight_bits", {})
    rows = []
    for i, l in enumerate(net.layers):
        wb = logical.get(i, DTYPE_BITS[net.tensors[l.weight].dtype]) if l.weight >= 0 else 0
        rows.append([i, l.kind_name, l.name, [l.out_c, l.out_h, l.out_w], wb, net.macs(i)])
    return rows


def zero_fraction(net: Net, bits: int = 2) -> Optional[float]:
    """Fraction of zero weights over the layers stored with `bits`-bit dtype."""
    from .qbin import dtype_for_bits
    dt = dtype_for_bits(bits)
    n = z = 0
    for l in net.layers:
        if l.weight >= 0 and net.tensors[l.weight].dtype == dt:
            d = net.tensors[l.weight].data
            n += d.size
            z += int((d == 0).sum())
    return z / n if n else None


def ensure(net: str, wbits: int, abits: int, path: Optional[str] = None, force: bool = False,
           log=None, **opts) -> dict:
    """Build (or reuse) one zoo network at `path` (default: the cache). Returns its stamp
    (options, MACs, layer table, build seconds, 'cached': whether it was reused)."""
    o = dict(DEFAULTS, **opts)
    check_options(wbits, abits, o["first_bits"], o["last_bits"], o["resolution"],
                  o["zero_frac"], o["calib"])
    path = path or default_path(net, wbits, abits, **opts)
    want = {"generator": "scripts/model_zoo.py", "net": net, "wbits": wbits, "abits": abits}
    want.update(o)
    want.update(source_stamp())
    if not force and os.path.exists(path):
        st = read_stamp(path)
        if st and all(st.get(k) == v for k, v in want.items()) and \
                st.get("qbin_sha256") == _sha256(path):
            st["cached"] = True
            return st
    if log:
        log("model_zoo: building %s W%dA%d at %dx%d ..." % (net, wbits, abits, o["resolution"],
                                                           o["resolution"]))
    t0 = time.perf_counter()
    n = build(net, wbits, abits, **o)
    secs = time.perf_counter() - t0
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    n.save(tmp)
    os.replace(tmp, path)
    st = dict(want)
    st.update({"path": os.path.abspath(path), "qbin_sha256": _sha256(path),
               "bytes": os.path.getsize(path), "build_seconds": round(secs, 2),
               "calib_images": o["calib"] or _calib_count(o["resolution"]),
               "macs": int(sum(n.macs(i) for i in range(len(n.layers)))),
               "weights": int(sum(n.tensors[l.weight].data.size for l in n.layers if l.weight >= 0)),
               "zero_fraction_2bit": zero_fraction(n, 2), "layers": layer_table(n)})
    with open(stamp_path(path) + ".tmp", "w") as f:
        json.dump(st, f, indent=1)
    os.replace(stamp_path(path) + ".tmp", stamp_path(path))
    st["cached"] = False
    return st


def describe(st: dict, table: bool = True) -> str:
    counts = {}
    for row in st["layers"]:
        counts[row[1]] = counts.get(row[1], 0) + 1
    kinds = ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    zf = st.get("zero_fraction_2bit")
    lines = []
    if table:
        lines.append("  %3s  %-8s %-28s %-16s %5s %14s" % ("#", "kind", "name", "output", "wbits", "MACs"))
        for i, kind, name, shp, wb, macs in st["layers"]:
            lines.append("  %3d  %-8s %-28s %-16s %5s %14s" % (
                i, kind, name, "x".join(str(v) for v in shp), wb or "", "{:,}".format(macs) if macs else ""))
    lines.append("%s: %s W%dA%d (first %d, last %d bits) at %dx%d: %.3f GMACs, %d layers (%s), "
                 "%.2f M weights%s" % (
                     os.path.basename(st["path"]), st["net"], st["wbits"], st["abits"],
                     st["first_bits"], st["last_bits"], st["resolution"], st["resolution"],
                     st["macs"] / 1e9, len(st["layers"]), kinds, st["weights"] / 1e6,
                     ", %.1f%% zeros in 2-bit weights" % (100 * zf) if zf is not None else ""))
    lines.append("%s %s (%.1f MB; built in %.1f s with %d calibration images)" % (
        "cached:" if st.get("cached") else "wrote", st["path"], st["bytes"] / 1e6,
        st["build_seconds"], st["calib_images"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Details: docs/model_zoo.md")
    ap.add_argument("--net", required=True, choices=NETS)
    ap.add_argument("--wbits", type=int, default=2, metavar="1..8",
                    help="weight bits of the inner layers (default 2)")
    ap.add_argument("--abits", type=int, default=4, metavar="2..8",
                    help="activation bits (default 4)")
    ap.add_argument("--first-bits", type=int, default=8, metavar="1..8",
                    help="weight bits of the first conv (default 8)")
    ap.add_argument("--last-bits", type=int, default=8, metavar="1..8",
                    help="weight bits of the classifier (default 8; its logits are 8-bit)")
    ap.add_argument("--resolution", type=int, default=224, help="input H = W (default 224)")
    ap.add_argument("--seed", type=int, default=0, help="weights, batch norms, calibration (default 0)")
    ap.add_argument("--calib", type=int, default=None, metavar="N",
                    help="calibration images (default 2 at 224, up to 16 at small resolutions)")
    ap.add_argument("--zero-frac", type=float, default=None, metavar="F",
                    help="2-bit layers: pick the step so this fraction of their weights is 0 "
                         "(default: LSQ's initial step, about 57%%)")
    ap.add_argument("-o", "--output", metavar="PATH",
                    help="write here (default: the cache, $QSIM_CACHE_DIR or ~/.cache/qsim/nets)")
    ap.add_argument("--force", action="store_true", help="rebuild even if a matching file exists")
    ap.add_argument("-q", "--quiet", action="store_true", help="no layer table")
    a = ap.parse_args(argv)
    try:
        st = ensure(a.net, a.wbits, a.abits, path=a.output, force=a.force,
                    log=lambda m: print(m, file=sys.stderr, flush=True),
                    first_bits=a.first_bits, last_bits=a.last_bits, resolution=a.resolution,
                    seed=a.seed, calib=a.calib, zero_frac=a.zero_frac)
    except ZooError as e:
        print("model_zoo: %s" % e, file=sys.stderr)
        return 1
    print(describe(st, table=not a.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(main())
