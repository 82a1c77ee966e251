#!/usr/bin/python3
"""Quantization-aware layers (LSQ) and their exact export to qsim's .qbin format.

Used by scripts/train_digits.py; usable for any network written with these layers:

    QNet([QInput(scale=1/240, bits=8),
          QConv2d(1, 16, 3, pad=1, bn=True, relu=True, wbits=8, abits=4), QMaxPool(2),
          QGap(abits=8), QLinear(16, 10, wbits=8)])

Every layer's forward takes and returns (x, step): the activation and the real value of
one of its integer steps (None in floating-point mode). `QNet.set_quant(True)` switches
from plain fp32 (conv -> batch norm -> ReLU) to fake quantization with Learned Step Size
Quantization (Esser et al., ICLR 2020):

- weights: the batch-norm-folded weight w' = w * gamma / sqrt(var + eps) (running
  statistics frozen) is quantized q = clip(round(w' / s), -Qp, Qp), Qp = 2^(b-1) - 1
  (narrow symmetric: 8 bits [-127, 127], 4 bits [-7, 7], 2 bits ternary {-1, 0, 1});
  1 bit is bipolar q = +-1 (w' >= 0 -> +1); the step s is learned (one per layer, or one
  per output channel with per_channel=True);
- activations after ReLU: q = clip(round(x / s), 0, 2^b - 1), s learned;
- the folded bias is rounded to the accumulator's step s_in * s_w (straight-through),
  so training sees the int32 bias that the exporter writes;
- rounding uses the straight-through estimator; the gradient of every step is scaled
  by 1 / sqrt(N * Qp) (N = weights in the layer, or features per sample); steps start at
  2 * mean|x| / sqrt(Qp) (bipolar: mean|w|) on the first batch.

`lower(model)` turns the fake-quantized model into integer layers (refusing, with the
layer's name, anything the .qbin integer semantics cannot express exactly),
`build_net` writes them with qsim_qbin's builder, `int_forward` runs them with integer
arithmetic on torch int64 tensors (written from docs/qbin.md, independently of
qsim_qbin.evaluate), and `export` checks that qsim_qbin.evaluate gives the same output
integers, hence the same predictions, on the given inputs.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import qbin as qb  # noqa: E402

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


class ExportError(ValueError):
    """The model cannot be expressed exactly in .qbin integer semantics."""


# ---------------------------------------------------------------------------- LSQ

class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _SignSTE(torch.autograd.Function):
    """Bipolar: x >= 0 -> +1 else -1; gradient passed where |x| <= 1 (clipped STE)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class _GradScale(torch.autograd.Function):
    """Identity forward (bit for bit), gradient multiplied by g."""

    @staticmethod
    def forward(ctx, x, g):
        ctx.g = g
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.g, None


class LsqQuantizer(nn.Module):
    """LSQ quantizer. weight=True: signed narrow-range (or bipolar at 1 bit; full_range:
    [-2^(b-1), 2^(b-1) - 1], e.g. 2 bits -2..1), N = numel,
    optionally one step per output channel (axis 0). weight=False: activations,
    unsigned [0, 2^b - 1] (signed=True: [-2^(b-1), 2^(b-1) - 1]), N = features/sample."""

    def __init__(self, bits: int, signed: bool, weight: bool, channels: int = 0,
                 full_range: bool = False):
        super().__init__()
        if not 1 <= bits <= 16 or (bits == 1 and not (signed and weight)):
            raise ValueError("LSQ: %d-bit %s %s not supported" % (
                bits, "signed" if signed else "unsigned", "weights" if weight else "activations"))
        self.bits, self.signed, self.weight = bits, signed, weight
        self.bipolar = weight and bits == 1
        if self.bipolar:
            self.qn, self.qp = 1, 1
        elif weight and full_range:        # LSQ's paper: [-2^(b-1), 2^(b-1) - 1], 2 bits -2..1
            self.qn, self.qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        elif weight:
            self.qn = self.qp = 2 ** (bits - 1) - 1
        elif signed:
            self.qn, self.qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        else:
            self.qn, self.qp = 0, 2 ** bits - 1
        self.channels = channels
        self.step = nn.Parameter(torch.ones(max(1, channels)))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.enabled = False

    def extra_repr(self):
        return "bits=%d, %s, range=[%d, %d], channels=%d" % (
            self.bits, "bipolar" if self.bipolar else ("signed" if self.signed else "unsigned"),
            -self.qn, self.qp, self.channels)

    def init_step(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            if self.channels:
                m = x.detach().abs().reshape(x.shape[0], -1).mean(1)
            else:
                m = x.detach().abs().mean().reshape(1)
            s = m if self.bipolar else 2.0 * m / math.sqrt(self.qp)
            self.step.copy_(s.clamp_min(1e-6))
            self.initialized.fill_(True)

    def _step_view(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        s = self.step
        if train:
            n = x.numel() if self.weight else x[0].numel()
            s = _GradScale.apply(s, 1.0 / math.sqrt(n * self.qp))
        if self.channels:
            s = s.view(-1, *([1] * (x.dim() - 1)))
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if not bool(self.initialized):
            self.init_step(x)
        s = self._step_view(x, True)
        if self.bipolar:
            return _SignSTE.apply(x / s) * s
        return _RoundSTE.apply(torch.clamp(x / s, -self.qn, self.qp)) * s

    @torch.no_grad()
    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The integers forward() multiplies by the step (same float32 operations)."""
        s = self._step_view(x, False)
        v = x / s
        if self.bipolar:
            return torch.where(v >= 0, torch.ones_like(v), -torch.ones_like(v))
        return torch.round(torch.clamp(v, -self.qn, self.qp))


# ---------------------------------------------------------------------------- layers

class QInput(nn.Module):
    """The network input: integers q (bits, unsigned or signed, zero point 0) whose real
    value is q * scale. forward expects the real values (q * scale in float32)."""

    def __init__(self, scale: float, bits: int = 8, signed: bool = False, name: str = "input"):
        super().__init__()
        self.bits, self.signed, self.lname = bits, signed, name
        self.register_buffer("step", torch.tensor([scale], dtype=torch.float32))
        self.quant = False

    def forward(self, x, s_in=None):
        return x, (self.step if self.quant else None)


class QConv2d(nn.Module):
    """Conv2d (+ batch norm) (+ ReLU) with LSQ weights and output activations.
    abits=0: no output quantizer (only allowed for a network's last layer)."""

    def __init__(self, cin, cout, k, stride=1, pad=0, bn=True, relu=True, wbits=8, abits=8,
                 per_channel=False, name="conv", wfull=False):
        super().__init__()
        self.lname = name
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.relu = relu
        self.wq = LsqQuantizer(wbits, True, True, cout if per_channel else 0, wfull)
        self.aq = LsqQuantizer(abits, not relu, False) if abits else None
        self.quant = False

    def folded(self):
        """Weight and bias with the batch norm (running statistics) folded in."""
        w = self.conv.weight
        b = self.conv.bias if self.conv.bias is not None else torch.zeros_like(w[:, 0, 0, 0])
        if self.bn is not None:
            f = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
            w = w * f.view(-1, 1, 1, 1)
            b = self.bn.bias + (b - self.bn.running_mean) * f
        return w, b

    @torch.no_grad()
    def fold_bn_(self) -> None:
        """Fold the batch norm (running statistics) into the weight and bias, in place,
        and drop it: fine-tuning then trains the weights that are deployed."""
        if self.bn is None:
            return
        w, b = self.folded()
        self.conv.weight.copy_(w)
        self.conv.bias = nn.Parameter(b.detach().clone())
        self.bn = None

    def _op(self, x, w, b):
        return F.conv2d(x, w, b, self.conv.stride, self.conv.padding, self.conv.dilation,
                        self.conv.groups)

    def forward(self, x, s_in=None):
        if not self.quant:
            y = self.conv(x)
            if self.bn is not None:
                y = self.bn(y)
            return (F.relu(y) if self.relu else y), None
        w, b = self.folded()
        wq = self.wq(w)
        s_acc = (s_in * self.wq.step).detach()
        bq = _RoundSTE.apply(b / s_acc) * s_acc
        y = self._op(x, wq, bq)
        if self.aq is None:
            return (F.relu(y) if self.relu else y), None
        return self.aq(y), self.aq.step

    @torch.no_grad()
    def int_params(self, s_in):
        """(integer weights, integer bias, weight step(s)) exactly as forward uses them."""
        w, b = self.folded()
        s_acc = s_in * self.wq.step
        return self.wq.integers(w), torch.round(b / s_acc), self.wq.step.detach().clone()


class QLinear(QConv2d):
    """Fully connected layer on the flattened (CHW) input; same options as QConv2d
    (bn=False, relu=False, abits=0 by default: the classifier producing logits)."""

    def __init__(self, cin, cout, bn=False, relu=False, wbits=8, abits=0, per_channel=False,
                 name="fc", wfull=False):
        nn.Module.__init__(self)
        self.lname = name
        self.conv = nn.Linear(cin, cout, bias=not bn)
        self.bn = nn.BatchNorm1d(cout) if bn else None
        self.relu = relu
        self.wq = LsqQuantizer(wbits, True, True, cout if per_channel else 0, wfull)
        self.aq = LsqQuantizer(abits, not relu, False) if abits else None
        self.quant = False

    def folded(self):
        w = self.conv.weight
        b = self.conv.bias if self.conv.bias is not None else torch.zeros_like(w[:, 0])
        if self.bn is not None:
            f = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
            w = w * f.view(-1, 1)
            b = self.bn.bias + (b - self.bn.running_mean) * f
        return w, b

    def _op(self, x, w, b):
        return F.linear(x.flatten(1), w, b)

    def forward(self, x, s_in=None):
        if not self.quant:
            y = self.conv(x.flatten(1))
            if self.bn is not None:
                y = self.bn(y)
            return (F.relu(y) if self.relu else y), None
        return QConv2d.forward(self, x, s_in)


class QMaxPool(nn.Module):
    def __init__(self, k, stride=None, pad=0, name="maxpool"):
        super().__init__()
        self.k, self.stride, self.pad, self.lname = k, (k if stride is None else stride), pad, name
        self.quant = False

    def forward(self, x, s_in=None):
        return F.max_pool2d(x, self.k, self.stride, self.pad), s_in


class QGap(nn.Module):
    """Global average pool with its own LSQ output quantizer (abits; unsigned if the
    input is, which is the only case exported)."""

    def __init__(self, abits=8, signed=False, name="gap"):
        super().__init__()
        self.lname = name
        self.aq = LsqQuantizer(abits, signed, False)
        self.quant = False

    def forward(self, x, s_in=None):
        y = x.mean(dim=(2, 3), keepdim=True)
        if not self.quant:
            return y, None
        return self.aq(y), self.aq.step


class QNet(nn.Module):
    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def set_quant(self, on: bool) -> None:
        for m in self.modules():
            if hasattr(m, "quant"):
                m.quant = on
            if isinstance(m, LsqQuantizer):
                m.enabled = on

    def fold_bn_(self) -> None:
        """Fold every batch norm into its conv / fc (see QConv2d.fold_bn_)."""
        for m in self.modules():
            if isinstance(m, QConv2d):
                m.fold_bn_()

    def forward(self, x):
        s = None
        for l in self.layers:
            x, s = l(x, s)
        return x


# ---------------------------------------------------------------------------- lowering

@dataclass
class IntLayer:
    """One integer layer (the .qbin semantics of docs/qbin.md, zero points all 0 here
    except where stated)."""
    name: str
    kind: str                    # input | conv | fc | maxpool | gap
    c: int
    h: int
    w: int
    bits: int
    signed: bool
    zp: int
    scale: float
    lo: int
    hi: int
    act: Optional[str] = None
    weight: Optional[np.ndarray] = None
    wbits: int = 8
    w_scale: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    mult: List[int] = field(default_factory=list)
    shift: List[int] = field(default_factory=list)
    k: int = 1
    stride: int = 1
    pad: int = 0
    dil: int = 1
    groups: int = 1


def _refuse(name: str, msg: str):
    raise ExportError("layer '%s': %s" % (name, msg))


def _multipliers(name: str, real: np.ndarray):
    """quantize_multiplier for each channel; refuse what it cannot hold."""
    mult, shift = [], []
    for m in np.asarray(real, np.float64).ravel():
        if not (math.isfinite(m) and m > 0):
            _refuse(name, "requant multiplier %r is not finite and > 0" % m)
        m0, sh = qb.quantize_multiplier(float(m))
        if m0 == 0:
            _refuse(name, "requant multiplier %.3g underflows (shift > 31)" % m)
        if sh < -31 or (sh == -31 and m0 == INT32_MAX and m >= 2.0 ** 31):
            _refuse(name, "requant multiplier %.3g saturates" % m)
        mult.append(int(m0))
        shift.append(int(sh))
    return mult, shift


def _range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _window_out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@torch.no_grad()
def lower(model: QNet, input_shape) -> List[IntLayer]:
    """Integer layers of a fake-quantized QNet (quant mode) with input shape (C, H, W)."""
    layers = list(model.layers)
    if not layers or not isinstance(layers[0], QInput):
        raise ExportError("layer 0: the network must start with QInput")
    out: List[IntLayer] = []
    c, h, w = (int(v) for v in input_shape)
    s_in = None
    for idx, m in enumerate(layers):
        name = getattr(m, "lname", "layer%d" % idx)
        if any(getattr(x, "lname", None) == name for x in layers[:idx]):
            _refuse(name, "duplicate layer name")
        if not isinstance(m, (QInput, QConv2d, QMaxPool, QGap)):
            _refuse(name, "module %s has no .qbin equivalent" % type(m).__name__)
        if not getattr(m, "quant", False):
            _refuse(name, "not in quantized mode (call QNet.set_quant(True))")
        prev = out[-1] if out else None
        if isinstance(m, QInput):
            if idx != 0:
                _refuse(name, "QInput must be the first layer")
            lo, hi = _range(m.bits, m.signed)
            s_in = m.step
            out.append(IntLayer(name, "input", c, h, w, m.bits, m.signed, 0,
                                float(m.step.item()), lo, hi))
        elif isinstance(m, QConv2d):       # QLinear too
            fc = isinstance(m, QLinear)
            if prev.zp != 0:
                _refuse(name, "input zero point must be 0")
            if not bool(m.wq.initialized):
                _refuse(name, "weight step not initialised (run a batch in quant mode)")
            wi, bi, sw = m.int_params(s_in)
            if not torch.isfinite(sw).all() or (sw <= 0).any():
                _refuse(name, "weight step must be finite and > 0")
            if not torch.isfinite(bi).all():
                _refuse(name, "bias is not finite")
            wi64 = wi.to(torch.int64).numpy()
            bi64 = bi.to(torch.float64).numpy()
            if bi64.min() < INT32_MIN or bi64.max() > INT32_MAX:
                _refuse(name, "bias %g does not fit int32" % bi64[np.argmax(np.abs(bi64))])
            bi64 = bi64.astype(np.int64)
            cout = wi64.shape[0]
            if fc:
                if wi64.shape[1] != c * h * w:
                    _refuse(name, "expects %d inputs, gets %dx%dx%d" % (wi64.shape[1], c, h, w))
                oh = ow = 1
                geo = {}
            else:
                conv = m.conv
                if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
                    _refuse(name, "only explicit zero padding is supported")
                kh, kw = conv.kernel_size
                (sh_, sw_), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
                if kh != kw or sh_ != sw_ or ph != pw or dh != dw:
                    _refuse(name, "only square kernels, strides, pads and dilations")
                if wi64.shape[1] * conv.groups != c:
                    _refuse(name, "expects %d input channels, gets %d" % (
                        wi64.shape[1] * conv.groups, c))
                oh, ow = _window_out(h, kh, sh_, ph, dh), _window_out(w, kw, sw_, pw, dw)
                geo = dict(k=kh, stride=sh_, pad=ph, dil=dh, groups=conv.groups)
            # the accumulator must not wrap at 32 bits for any input in range
            amax = max(abs(prev.lo - prev.zp), abs(prev.hi - prev.zp))
            bound = np.abs(wi64).reshape(cout, -1).sum(1) * amax + np.abs(bi64)
            if bound.max() > INT32_MAX:
                _refuse(name, "accumulator may exceed int32 (bound %d)" % bound.max())
            s_acc = s_in.double().numpy() * sw.double().numpy()       # per channel or scalar
            s_acc = np.broadcast_to(s_acc, (cout,))
            if m.aq is not None:
                if not bool(m.aq.initialized):
                    _refuse(name, "activation step not initialised")
                s_out = float(m.aq.step.item())
                if not s_out > 0:
                    _refuse(name, "activation step must be > 0")
                bits, signed = m.aq.bits, m.aq.signed
                lo, hi = -m.aq.qn, m.aq.qp
                act = "relu" if m.relu else "clip"
                if m.relu and (m.aq.signed or lo != 0):
                    _refuse(name, "ReLU output must be unsigned")
            else:
                if m.relu:
                    _refuse(name, "ReLU without an output quantizer")
                if idx != len(layers) - 1:
                    _refuse(name, "only the last layer may lack an output quantizer")
                # logits: int16 with a power-of-two step fine enough that nothing saturates
                bits, signed, act = 16, True, None
                lo, hi = _range(16, True)
                e = 0
                while bound.max() / 2.0 ** e > hi:
                    e += 1
                s_out = None
            if s_out is None:
                real = np.full(cout, 2.0 ** -e)
                scale = float(s_acc[0]) * 2.0 ** e if np.all(s_acc == s_acc[0]) else 0.0
            else:
                real = s_acc / s_out
                scale = s_out
            mult, shift = _multipliers(name, real)
            ws = sw.double().numpy()
            out.append(IntLayer(name, "fc" if fc else "conv", cout, oh, ow, bits, signed, 0,
                                scale, lo, hi, act, wi64, m.wq.bits, ws, bi64, mult, shift,
                                **geo))
            if m.aq is not None:
                s_in = m.aq.step
        elif isinstance(m, QMaxPool):
            oh, ow = _window_out(h, m.k, m.stride, m.pad), _window_out(w, m.k, m.stride, m.pad)
            out.append(IntLayer(name, "maxpool", c, oh, ow, prev.bits, prev.signed, prev.zp,
                                prev.scale, prev.lo, prev.hi, k=m.k, stride=m.stride, pad=m.pad))
        elif isinstance(m, QGap):
            if prev.signed or prev.zp != 0 or m.aq.signed:
                _refuse(name, "only unsigned inputs and outputs with zero point 0")
            if not bool(m.aq.initialized):
                _refuse(name, "activation step not initialised")
            s_out = float(m.aq.step.item())
            real = np.full(c, float(s_in.double().item()) / (h * w * s_out))
            mult, shift = _multipliers(name, real)
            out.append(IntLayer(name, "gap", c, 1, 1, m.aq.bits, False, 0, s_out, 0, m.aq.qp,
                                None, mult=mult, shift=shift))
            s_in = m.aq.step
        else:
            _refuse(name, "module %s has no .qbin equivalent" % type(m).__name__)
        c, h, w = out[-1].c, out[-1].h, out[-1].w
        if h < 1 or w < 1:
            _refuse(name, "empty output")
    return out


def build_net(ir: Sequence[IntLayer], name: str) -> qb.Net:
    """The .qbin network of the integer layers (qsim_qbin's builder)."""
    net = qb.Net(name)
    idx = -1
    for l in ir:
        outq = dict(bits=l.bits, signed=l.signed, zp=l.zp, scale=l.scale)
        if l.kind == "input":
            idx = net.input(l.name, l.c, l.h, l.w, clamp=(l.lo, l.hi), **outq)
            continue
        if l.kind in ("conv", "fc"):
            rq = dict(act=l.act, clamp=(l.lo, l.hi), mult=l.mult, shift=l.shift, **outq)
            ws = l.w_scale if l.w_scale.size > 1 else float(l.w_scale[0])
            if l.kind == "conv":
                idx = net.conv(l.name, idx, l.weight, l.bias, stride=l.stride, pad=l.pad,
                               dilation=l.dil, groups=l.groups, wbits=l.wbits, wsigned=True,
                               w_scale=ws, **rq)
            else:
                idx = net.fc(l.name, idx, l.weight, l.bias, wbits=l.wbits, wsigned=True,
                             w_scale=ws, **rq)
        elif l.kind == "maxpool":
            idx = net.maxpool(l.name, idx, l.k, l.stride, l.pad)
        elif l.kind == "gap":
            idx = net.gap(l.name, idx, clamp=(l.lo, l.hi), mult=l.mult, shift=l.shift, **outq)
        else:
            raise ExportError("layer '%s': unknown kind %s" % (l.name, l.kind))
    net.validate(name)
    return net


# ---------------------------------------------------------------------------- integer model

def _sat32(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, INT32_MIN, INT32_MAX)


def _requant_int(acc: torch.Tensor, mult, shift, zp: int, lo: int, hi: int) -> torch.Tensor:
    """docs/qbin.md requant_c on int64 tensor acc (N, C, ...); mult/shift per channel."""
    view = (1, -1) + (1,) * (acc.dim() - 2)
    m = torch.tensor(mult, dtype=torch.int64).view(view)
    s = torch.tensor(shift, dtype=torch.int64).view(view)
    x = _sat32(acc)
    x = _sat32(x * torch.pow(2, torch.clamp(-s, min=0)))        # saturating left shift
    # SaturatingRoundingDoublingHighMul (M0 >= 0, so the -2^31 * -2^31 case cannot occur)
    ab = x * m
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    hi_mul = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    hi_mul = torch.where((x == INT32_MIN) & (m == INT32_MIN), torch.full_like(ab, INT32_MAX),
                         hi_mul)
    # RoundingDivideByPOT by the right shift
    e = torch.clamp(s, min=0)
    mask = torch.pow(2, e) - 1
    rem = torch.bitwise_and(hi_mul, mask)
    thr = torch.bitwise_right_shift(mask, 1) + (hi_mul < 0).to(torch.int64)
    r = torch.bitwise_right_shift(hi_mul, e) + (rem > thr).to(torch.int64)
    return torch.clamp(zp + r, lo, hi)


def _requant_selftest() -> None:
    """The worked examples of docs/qbin.md (requant section) through _requant_int."""
    wide = (INT32_MIN, INT32_MAX)
    cases = [(1000, 1 << 30, 0, 500), (3, 1 << 30, 0, 2), (-3, 1 << 30, 0, -1),
             (-1, 1 << 30, 0, 0), (1023, 1518500250, 3, 90), (1023, 1518500250, -2, 2893),
             (1 << 40, 1518500250, -1, 1518500249)]
    for acc, m0, sh, want in cases:
        got = int(_requant_int(torch.tensor([[acc]], dtype=torch.int64), [m0], [sh], 0, *wide))
        if got != want:
            raise AssertionError("requant(%d, %d, %d) = %d, docs/qbin.md says %d" % (
                acc, m0, sh, got, want))
    if int(_requant_int(torch.tensor([[1023]]), [1518500250], [3], 0, 0, 15)) != 15:
        raise AssertionError("requant clamp")


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + (1 << 31), 1 << 32) - (1 << 31)


# int_forward may compute a convolution in float32 when that is exact (tests switch it off
# to compare with the int64 tap-by-tap path)
EXACT_F32_CONV = True


@torch.no_grad()
def int_forward(ir: Sequence[IntLayer], x_int, upto: Optional[int] = None) -> torch.Tensor:
    """Run the integer layers on a batch of input integers (N, C, H, W) with int64 torch
    arithmetic (convolution products and sums in float64, or float32 when every partial sum
    is below 2^24: exact either way). Returns the last layer's (or layer `upto`'s) output,
    (N, C, H, W) int64."""
    a = torch.as_tensor(np.asarray(x_int)).to(torch.int64)
    n = a.shape[0]
    prev = None
    for li, l in enumerate(ir):
        if l.kind == "input":
            if tuple(a.shape[1:]) != (l.c, l.h, l.w):
                raise ValueError("input shape %s, expected %s" % (tuple(a.shape[1:]), (l.c, l.h, l.w)))
            rlo, rhi = _range(l.bits, l.signed)
            if a.min() < rlo or a.max() > rhi:
                raise ValueError("input values outside %d..%d" % (rlo, rhi))
            a = torch.clamp(a, l.lo, l.hi)
        elif l.kind == "conv":
            x = a - prev.zp
            if l.pad:
                x = F.pad(x, (l.pad,) * 4, value=0)
            wt = torch.as_tensor(l.weight, dtype=torch.int64)
            cin_g, cout_g = wt.shape[1], l.c // l.groups
            if EXACT_F32_CONV and int(wt.abs().sum(dim=(1, 2, 3)).max()) * int(x.abs().max()) < 2 ** 24:
                # every product and partial sum is an integer below 2^24 in magnitude, so a
                # float32 convolution (oneDNN, any summation order) is exact: fast for 10,000 images
                acc = F.conv2d(x.float(), wt.float(), None, l.stride, 0, l.dil, l.groups)
                a = _requant_int(_wrap32(acc.round().to(torch.int64)) + torch.as_tensor(l.bias).view(1, -1, 1, 1),
                                 l.mult, l.shift, l.zp, l.lo, l.hi)
                prev = l
                if upto is not None and li == upto:
                    break
                continue
            acc = torch.zeros((n, l.c, l.h, l.w), dtype=torch.int64)
            span_h, span_w = l.stride * (l.h - 1) + 1, l.stride * (l.w - 1) + 1
            for ky in range(l.k):          # one tap at a time: acc += w[:, :, ky, kx] . x_shifted
                for kx in range(l.k):
                    y0, x0 = ky * l.dil, kx * l.dil
                    tap = x[:, :, y0:y0 + span_h:l.stride, x0:x0 + span_w:l.stride]
                    for g in range(l.groups):
                        # float64 products and sums of these integers are exact (lower()
                        # bounds every accumulator by int32, far below 2^53) and run in
                        # BLAS, unlike int64 einsum (minutes for 10,000 28x28 images)
                        acc[:, g * cout_g:(g + 1) * cout_g] += torch.einsum(
                            "oc,nchw->nohw", wt[g * cout_g:(g + 1) * cout_g, :, ky, kx].double(),
                            tap[:, g * cin_g:(g + 1) * cin_g].double()).round().to(torch.int64)
            acc = _wrap32(acc) + torch.as_tensor(l.bias).view(1, -1, 1, 1)
            a = _requant_int(acc, l.mult, l.shift, l.zp, l.lo, l.hi)
        elif l.kind == "fc":
            x = (a - prev.zp).reshape(n, -1)
            wt = torch.as_tensor(l.weight, dtype=torch.int64)
            acc = _wrap32(x @ wt.t()) + torch.as_tensor(l.bias).view(1, -1)
            a = _requant_int(acc, l.mult, l.shift, l.zp, l.lo, l.hi).view(n, l.c, 1, 1)
        elif l.kind == "maxpool":
            x = a
            if l.pad:
                x = F.pad(x, (l.pad,) * 4, value=torch.iinfo(torch.int64).min)
            best = None
            for ky in range(l.k):
                for kx in range(l.k):
                    tap = x[:, :, ky:ky + l.stride * (l.h - 1) + 1:l.stride,
                            kx:kx + l.stride * (l.w - 1) + 1:l.stride]
                    best = tap if best is None else torch.maximum(best, tap)
            a = torch.clamp(best, l.lo, l.hi)
        elif l.kind == "gap":
            acc = (a - prev.zp).sum(dim=(2, 3), keepdim=True)
            a = _requant_int(acc, l.mult, l.shift, l.zp, l.lo, l.hi)
        else:
            raise ExportError("layer '%s': unknown kind %s" % (l.name, l.kind))
        prev = l
        if upto is not None and li == upto:
            break
    return a


def evaluate_qbin(net: qb.Net, x_int) -> np.ndarray:
    """qsim_qbin.evaluate on every input; returns the output layer's values (N, K)."""
    return np.stack([qb.evaluate(net, x)[net.output].ravel() for x in np.asarray(x_int)])


def int_forward_chunked(ir: Sequence[IntLayer], x_int, chunk: int = 500) -> np.ndarray:
    """int_forward's output (N, K) on `chunk` inputs at a time (bounded memory: the int64
    activations of 10,000 Fashion-MNIST images would need gigabytes)."""
    x_int = np.asarray(x_int)
    return np.concatenate([int_forward(ir, x_int[i:i + chunk]).reshape(len(x_int[i:i + chunk]), -1).numpy()
                           for i in range(0, len(x_int), chunk)])


def export(model: QNet, name: str, x_int, path: Optional[str] = None, layer_check: bool = True,
           check_n: Optional[int] = None):
    """Lower `model`, build the .qbin net, run the integer torch model on x_int (N, C, H, W)
    and check that qsim_qbin.evaluate gives the same output integers for every input (or
    for the first check_n: evaluate is one image at a time in NumPy) (and, with
    layer_check, the same integers at every layer for the first input).
    Writes the net to `path` (re-read and compared) when given.
    Returns (net, int_logits (N, K) numpy int64)."""
    _requant_selftest()
    x_int = np.asarray(x_int)
    ir = lower(model, x_int.shape[1:])
    net = build_net(ir, name)
    logits = int_forward_chunked(ir, x_int)
    if check_n is not None:
        x_int, logits_all, logits = x_int[:check_n], logits, logits[:check_n]
    ref = evaluate_qbin(net, x_int)
    if layer_check:
        outs = qb.evaluate(net, x_int[0])
        for i, l in enumerate(ir):
            mine = int_forward(ir, x_int[:1], upto=i)[0].numpy()
            if not np.array_equal(mine, outs[i]):
                raise ExportError("layer '%s': the integer torch model and qsim_qbin.evaluate "
                                  "disagree on input 0" % l.name)
    if not np.array_equal(ref, logits):
        bad = np.flatnonzero((ref != logits).any(1))
        raise ExportError("%s: integer torch model and qsim_qbin.evaluate differ on %d of %d "
                          "inputs (first: %d)" % (name, bad.size, len(x_int), bad[0]))
    if not np.array_equal(ref.argmax(1), logits.argmax(1)):
        raise ExportError("%s: predictions differ" % name)
    if path is not None:
        net.save(path)
        back = qb.read(path)
        d = qb.diff(net, back)
        if d is not None:
            raise ExportError("%s: re-read differs: %s" % (path, d))
    return net, (logits if check_n is None else logits_all)


if __name__ == "__main__":
    # a library (train_digits.py imports it); run as a program it says what it is
    print(__doc__)
    sys.exit(0 if sys.argv[1:] in ([], ["-h"], ["--help"]) else 2)
