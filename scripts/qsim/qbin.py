#!/usr/bin/python3
"""Reader, writer, builder and integer reference evaluator for qsim's .qbin networks.

The format and the integer semantics are specified in docs/qbin.md; this module is
written from that document alone (it never calls or mirrors qsim's C code), so that the
end-to-end tests can hold the C compiler and simulator against an independent reference.

Typical use:

    from qsim_qbin import Net, evaluate, quantize_multiplier
    net = Net("toy")
    x = net.input("in", c=1, h=8, w=8, bits=8, signed=False)
    y = net.conv("conv1", x, w_int8_array, bias=b_int32, pad=1, bits=4, act="relu",
                 multiplier=0.003)
    net.save("toy.qbin")
    outs = evaluate(Net.load("toy.qbin"), image)   # one int64 array (C, H, W) per layer

Command line: qsim_qbin.py info FILE.qbin   (summary; exit 1 with the message if invalid)

Only NumPy and the standard library are used (zlib for CRC-32).
"""
from __future__ import annotations

import math
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

# ---------------------------------------------------------------------------- constants

VERSION = 2          # newest; a net without version-2 kinds is written as version 1
MAGIC = b"QSIMNET\0"
NAME_MAX = 48
MAX_INPUTS = 8
HEADER_SIZE = 32
ENTRY_SIZE = 24
MAX_SECTIONS = 16
NET_SIZE = 64
TENSOR_FIXED = 88
LAYER_SIZE = 192
SECT_NET, SECT_TENSORS, SECT_LAYERS = 1, 2, 3
SECT_OPTIONAL = 0x80000000
MAX_ELEMS = 2**31 - 1
MAX_SHIFT = 31

DT_BIPOLAR, DT_INT2, DT_INT4, DT_INT8, DT_INT16, DT_INT32 = range(6)
DTYPE_BITS = {DT_BIPOLAR: 1, DT_INT2: 2, DT_INT4: 4, DT_INT8: 8, DT_INT16: 16, DT_INT32: 32}
WEIGHT_DTYPES = (DT_BIPOLAR, DT_INT2, DT_INT4, DT_INT8)

(L_INPUT, L_CONV, L_FC, L_MAXPOOL, L_AVGPOOL, L_GAP, L_ADD, L_CONCAT, L_ACT, L_REQUANT,
 L_FLATTEN, L_LUT, L_MUL, L_SOFTMAX, L_LAYERNORM, L_RMSNORM, L_MATMUL, L_RESHAPE,
 L_DYNQUANT, L_ROPE, L_EMBED, L_ARGMAX, L_KVCACHE) = range(23)
KIND_NAMES = ["input", "conv", "fc", "maxpool", "avgpool", "gap", "add", "concat", "act",
              "requant", "flatten", "lut", "mul", "softmax", "layernorm", "rmsnorm", "matmul",
              "reshape", "dynquant", "rope", "embed", "argmax", "kvcache"]
V2_KINDS = (L_LUT, L_MUL, L_SOFTMAX, L_LAYERNORM, L_RMSNORM, L_MATMUL, L_RESHAPE, L_DYNQUANT, L_ROPE,
            L_EMBED, L_ARGMAX, L_KVCACHE)
ROPE_FRAC_BITS = 14       # ROPE table entries: round(2^14 cos), round(2^14 sin)
# SOFTMAX param: bits 0-3 the axis, bit 4 the causal mask, bits 8-30 the mask's offset
SOFTMAX_CAUSAL = 1 << 4
SOFTMAX_OFFSET_SHIFT = 8
MUL_ROWMAX = 1            # MUL param: input 1 times input 2's absmax over channels, per position
REQUANT_KINDS = (L_CONV, L_FC, L_AVGPOOL, L_GAP, L_ADD, L_REQUANT, L_MUL, L_LAYERNORM, L_RMSNORM,
                 L_MATMUL, L_ROPE)
NORM_FRAC_BITS = 16       # z = (x - mean) / sigma in Q16
NORM_MAX_ROW = 16384      # longest normalized row
TABLE_MAX_BITS = 8        # widest lut / softmax input
SOFTMAX_TABLE_MAX = 65535
KEEP_ZP_KINDS = (L_MAXPOOL, L_CONCAT, L_ACT, L_FLATTEN)

ACT_NONE, ACT_RELU, ACT_RELU6, ACT_CLIP = range(4)
ACT_NAMES = {None: ACT_NONE, "none": ACT_NONE, "relu": ACT_RELU, "relu6": ACT_RELU6,
             "clip": ACT_CLIP}

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class QbinError(ValueError):
    """A malformed file or an invalid network; the message names the source and place."""


def dtype_name(dtype: int, signed: bool) -> str:
    if dtype == DT_BIPOLAR:
        return "bipolar"
    return ("int%d" if signed else "uint%d") % DTYPE_BITS[dtype]


def dtype_for_bits(bits: int) -> int:
    """Storage dtype of an n-bit weight/value: 1 -> BIPOLAR, 2 -> INT2, ... 32 -> INT32."""
    for dt, b in DTYPE_BITS.items():
        if b == bits:
            return dt
    raise ValueError("no dtype stores exactly %d bits" % bits)


def int_range(bits: int, signed: bool) -> Tuple[int, int]:
    """Value range of an n-bit integer; unsigned 32-bit is limited to 2^31-1 (int32 in C)."""
    if not 1 <= bits <= 32:
        raise ValueError("bits %d outside 1..32" % bits)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, min((1 << bits) - 1, MAX_ELEMS)


def dtype_range(dtype: int, signed: bool) -> Tuple[int, int]:
    if dtype == DT_BIPOLAR:
        return -1, 1
    return int_range(DTYPE_BITS[dtype], signed)


# ---------------------------------------------------------------------------- bit packing

def packed_bytes(count: int, dtype: int) -> int:
    """Packed data length: ceil(count*bits/8) rounded up to a multiple of 4."""
    n = (count * DTYPE_BITS[dtype] + 7) // 8
    return (n + 3) & ~3


def pack_values(values, dtype: int, signed: bool) -> bytes:
    """Pack values LSB-first into a bit stream, zero-padded to packed_bytes()."""
    v = np.asarray(values).ravel()
    bits = DTYPE_BITS[dtype]
    lo, hi = dtype_range(dtype, signed)
    if v.size and (v.min() < lo or v.max() > hi or (dtype == DT_BIPOLAR and (v == 0).any())):
        v64 = v.astype(np.int64)
        bad = v64[(v64 < lo) | (v64 > hi) | ((v64 == 0) if dtype == DT_BIPOLAR else False)][0]
        raise QbinError("value %d outside %s" % (bad, dtype_name(dtype, signed)))
    # In chunks (a multiple of every values-per-byte count): a VGG classifier has
    # 10^8 weights, and whole-tensor int64 temporaries would take gigabytes.
    parts = []
    chunk = 1 << 20
    for s0 in range(0, v.size, chunk):
        c64 = v[s0:s0 + chunk].astype(np.int64)
        if dtype == DT_BIPOLAR:
            codes = (c64 > 0).astype(np.uint64)
        else:
            codes = (c64 & ((1 << bits) - 1)).astype(np.uint64)  # two's complement low bits
        if bits >= 8:
            parts.append(codes.astype("<u%d" % (bits // 8)).tobytes())
        else:
            per = 8 // bits
            n = -(-codes.size // per) * per
            c = np.zeros(n, np.uint64)
            c[:codes.size] = codes
            c = c.reshape(-1, per)
            shifts = (np.arange(per, dtype=np.uint64) * np.uint64(bits))
            parts.append((c << shifts).sum(axis=1).astype(np.uint8).tobytes())
    raw = b"".join(parts)
    return raw + b"\0" * (packed_bytes(v.size, dtype) - len(raw))


def unpack_values(buf: bytes, count: int, dtype: int, signed: bool) -> np.ndarray:
    """Inverse of pack_values: count int64 values."""
    bits = DTYPE_BITS[dtype]
    if len(buf) < (count * bits + 7) // 8:
        raise QbinError("%d bytes cannot hold %d %s values" % (len(buf), count,
                                                                 dtype_name(dtype, signed)))
    if bits >= 8:
        nb = bits // 8
        codes = np.frombuffer(bytes(buf[:count * nb]), dtype="<u%d" % nb).astype(np.int64)
    else:
        per = 8 // bits
        raw = np.frombuffer(bytes(buf[:(count * bits + 7) // 8]), np.uint8).astype(np.int64)
        shifts = np.arange(per, dtype=np.int64) * bits
        codes = ((raw[:, None] >> shifts[None, :]) & ((1 << bits) - 1)).ravel()[:count]
    if dtype == DT_BIPOLAR:
        return np.where(codes == 1, 1, -1).astype(np.int64)
    if signed:
        return np.where(codes >= (1 << (bits - 1)), codes - (1 << bits), codes)
    if bits == 32 and count and codes.max() > MAX_ELEMS:
        raise QbinError("uint32 value %d does not fit int32 (limit 2^31-1)" % codes.max())
    return codes


# ---------------------------------------------------------------------------- object model

@dataclass
class Tensor:
    """A constant tensor (weights, bias). data: int64 array of the tensor's shape."""
    name: str
    dtype: int
    signed: bool
    data: np.ndarray
    q_scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    q_zp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    q_axis: int = -1

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def count(self) -> int:
        return int(self.data.size)


@dataclass
class Layer:
    """One graph node; fields mirror qs_layer (models/qs_net.h)."""
    name: str
    kind: int
    inputs: List[int] = field(default_factory=list)
    kh: int = 0
    kw: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_t: int = 0
    pad_l: int = 0
    pad_b: int = 0
    pad_r: int = 0
    dil_h: int = 0
    dil_w: int = 0
    groups: int = 0
    weight: int = -1
    bias: int = -1
    add_mul: List[int] = field(default_factory=lambda: [0, 0])
    rq_mult: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rq_shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    act: int = ACT_NONE
    clamp_lo: int = 0
    clamp_hi: int = 0
    out_c: int = 1
    out_h: int = 1
    out_w: int = 1
    out_bits: int = 8
    out_signed: bool = False
    out_zp: int = 0
    out_scale: float = 0.0
    param: int = 0          # version 2: softmax axis (+ causal, offset); matmul bit 0 = transpose A, bit 1 = B

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.out_c, self.out_h, self.out_w)

    @property
    def kind_name(self) -> str:
        return (KIND_NAMES[self.kind] or "?") if 0 <= self.kind < len(KIND_NAMES) else "?"


def _pair(v, what) -> Tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError("%s: give an int or a pair" % what)
    return v


def _pads(p) -> Tuple[int, int, int, int]:
    """pad: int, (ph, pw) or (top, left, bottom, right)."""
    if isinstance(p, (int, np.integer)):
        return (int(p),) * 4
    p = tuple(int(x) for x in p)
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p
    raise ValueError("pad: give an int, (ph, pw) or (top, left, bottom, right)")


def window_out(n: int, k: int, stride: int, dil: int, p0: int, p1: int) -> int:
    """PyTorch's output extent, floor mode."""
    return (n + p0 + p1 - dil * (k - 1) - 1) // stride + 1


class Net:
    """A quantized network: tensors, topologically ordered layers, an output index.

    Builder methods append a layer, infer its output shape from its inputs, set
    `output` to it, and return its index. Common output keywords (for layers that
    produce a new quantization): bits, signed, zp, scale (real value of one step),
    act ('relu' | 'relu6' | 'clip' | None), clamp=(lo, hi), and the requantization as
    either mult=/shift= (int arrays of length 1 or out_c) or multiplier= (real value(s),
    converted with quantize_multiplier); none of them means no scaling (rq_n = 0).
    """

    def __init__(self, name: str = "net"):
        self.name = name
        self.tensors: List[Tensor] = []
        self.layers: List[Layer] = []
        self.output = 0

    # ---- building blocks
    def add_tensor(self, name: str, data, dtype: int, signed: bool = True, scale=None,
                   zero_point=None, axis: int = -1) -> int:
        """Append a constant tensor. scale/zero_point: None, a scalar, or one per index of
        `axis` (per-channel)."""
        data = np.asarray(data).astype(np.int64)
        if scale is None:
            qs = np.zeros(0, np.float32)
        else:
            qs = np.atleast_1d(np.asarray(scale, np.float32)).ravel()
        if zero_point is None:
            qz = np.zeros(qs.size, np.int32)
        else:
            qz = np.atleast_1d(np.asarray(zero_point, np.int64)).astype(np.int32).ravel()
        if qs.size == 0 or (qs.size == 1 and (axis < 0 or data.shape[axis] != 1)):
            axis = -1                       # none, or one value for the whole tensor
        elif qs.size > 1 and axis < 0:
            axis = 0
        self.tensors.append(Tensor(name, dtype, bool(signed), data, qs, qz, axis))
        return len(self.tensors) - 1

    def _add(self, layer: Layer) -> int:
        self.layers.append(layer)
        self.output = len(self.layers) - 1
        return self.output

    def _apply_out(self, l: Layer, bits=8, signed=False, zp=0, scale=0.0, act=None, clamp=None,
                   mult=None, shift=None, multiplier=None):
        l.out_bits, l.out_signed, l.out_zp, l.out_scale = int(bits), bool(signed), int(zp), float(scale)
        lo, hi = int_range(l.out_bits, l.out_signed)
        a = ACT_NAMES[act]
        if a == ACT_RELU:
            lo = max(lo, l.out_zp)
        elif a == ACT_RELU6:
            if not l.out_scale > 0:
                raise ValueError("%s: relu6 needs the output scale" % l.name)
            lo = max(lo, l.out_zp)
            hi = min(hi, l.out_zp + int(round(6.0 / l.out_scale)))
        elif a == ACT_CLIP and clamp is None:
            raise ValueError("%s: act='clip' needs clamp=(lo, hi)" % l.name)
        if clamp is not None:
            lo, hi = int(clamp[0]), int(clamp[1])
        l.act, l.clamp_lo, l.clamp_hi = a, lo, hi
        if multiplier is not None:
            pairs = [quantize_multiplier(float(m)) for m in np.atleast_1d(multiplier).ravel()]
            mult = [p[0] for p in pairs]
            shift = [p[1] for p in pairs]
        if mult is not None:
            l.rq_mult = np.atleast_1d(np.asarray(mult, np.int64)).astype(np.int32)
            l.rq_shift = np.atleast_1d(np.asarray(shift, np.int64)).astype(np.int8)

    def _keep_out(self, l: Layer, src: Layer, bits=None, signed=None, act=None, clamp=None):
        """Output quantization of a value-preserving layer: the input's, maybe narrowed."""
        self._apply_out(l, src.out_bits if bits is None else bits,
                        src.out_signed if signed is None else signed, src.out_zp, src.out_scale,
                        act, clamp)

    def _window(self, l: Layer, src: Layer, k, stride, pad, dilation):
        l.kh, l.kw = _pair(k, "kernel")
        l.stride_h, l.stride_w = (l.kh, l.kw) if stride is None else _pair(stride, "stride")
        l.pad_t, l.pad_l, l.pad_b, l.pad_r = _pads(pad)
        l.dil_h, l.dil_w = _pair(dilation, "dilation")
        l.out_h = window_out(src.out_h, l.kh, l.stride_h, l.dil_h, l.pad_t, l.pad_b)
        l.out_w = window_out(src.out_w, l.kw, l.stride_w, l.dil_w, l.pad_l, l.pad_r)

    def _weights(self, l: Layer, weight, bias, wbits, wsigned, w_scale, bias_scale):
        if isinstance(weight, (int, np.integer)):
            l.weight = int(weight)
        else:
            l.weight = self.add_tensor(l.name + ".w", weight, dtype_for_bits(wbits), wsigned,
                                       scale=w_scale, axis=0)
        if bias is None:
            l.bias = -1
        elif isinstance(bias, (int, np.integer)):
            l.bias = int(bias)
        else:
            l.bias = self.add_tensor(l.name + ".b", np.asarray(bias).ravel(), DT_INT32, True,
                                     scale=bias_scale, axis=0)

    # ---- layers
    def input(self, name: str, c: int, h: int, w: int, bits: int = 8, signed: bool = False,
              zp: int = 0, scale: float = 1.0, clamp=None) -> int:
        """Layer 0, the network input (C x H x W)."""
        if self.layers:
            raise ValueError("the input must be the first layer")
        l = Layer(name, L_INPUT, [], out_c=c, out_h=h, out_w=w)
        self._apply_out(l, bits, signed, zp, scale, None, clamp)
        return self._add(l)

    def conv(self, name: str, src: int, weight, bias=None, *, stride=1, pad=0, dilation=1,
             groups: int = 1, wbits: int = 8, wsigned: bool = True, w_scale=None,
             bias_scale=None, **out) -> int:
        """Conv2d. weight: int array [Cout][Cin/groups][KH][KW] (stored with `wbits` bits,
        1 = bipolar) or an existing tensor index; bias: int32 array [Cout], index or None."""
        s = self.layers[src]
        l = Layer(name, L_CONV, [src], groups=int(groups))
        self._weights(l, weight, bias, wbits, wsigned, w_scale, bias_scale)
        wt = self.tensors[l.weight]
        if wt.ndim != 4:
            raise ValueError("%s: conv weight must be 4-D" % name)
        l.out_c = wt.shape[0]
        self._window(l, s, (wt.shape[2], wt.shape[3]), stride, pad, dilation)
        self._apply_out(l, **out)
        return self._add(l)

    def fc(self, name: str, src: int, weight, bias=None, *, wbits: int = 8, wsigned: bool = True,
           w_scale=None, bias_scale=None, **out) -> int:
        """Fully connected on the flattened (CHW) input. weight: [out][C*H*W]."""
        l = Layer(name, L_FC, [src])
        self._weights(l, weight, bias, wbits, wsigned, w_scale, bias_scale)
        l.out_c, l.out_h, l.out_w = self.tensors[l.weight].shape[0], 1, 1
        self._apply_out(l, **out)
        return self._add(l)

    def maxpool(self, name: str, src: int, k, stride=None, pad=0, dilation=1, **keep) -> int:
        """Max pooling (stride defaults to the kernel); keeps the input's quantization."""
        s = self.layers[src]
        l = Layer(name, L_MAXPOOL, [src], out_c=s.out_c)
        self._window(l, s, k, stride, pad, dilation)
        self._keep_out(l, s, **keep)
        return self._add(l)

    def avgpool(self, name: str, src: int, k, stride=None, pad=0, **out) -> int:
        """Average pooling: window sum of (a - za), padding counts as 0; the 1/(KH*KW) goes
        in the multiplier (default: exactly the input scale / output scale / (KH*KW))."""
        s = self.layers[src]
        l = Layer(name, L_AVGPOOL, [src], out_c=s.out_c)
        self._window(l, s, k, stride, pad, 1)
        out = self._default_out(s, out, 1.0 / (l.kh * l.kw))
        self._apply_out(l, **out)
        return self._add(l)

    def gap(self, name: str, src: int, **out) -> int:
        """Global average pool -> C x 1 x 1."""
        s = self.layers[src]
        l = Layer(name, L_GAP, [src], out_c=s.out_c, out_h=1, out_w=1)
        out = self._default_out(s, out, 1.0 / (s.out_h * s.out_w))
        self._apply_out(l, **out)
        return self._add(l)

    def add(self, name: str, a: int, b: int, mul_a: int, mul_b: int, **out) -> int:
        """Residual add: (a - za)*mul_a + (b - zb)*mul_b, then requant."""
        s = self.layers[a]
        l = Layer(name, L_ADD, [a, b], add_mul=[int(mul_a), int(mul_b)],
                  out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        self._apply_out(l, **out)
        return self._add(l)

    def concat(self, name: str, srcs: Sequence[int], **keep) -> int:
        """Channel concat; keeps the (common) zero point of its inputs."""
        s = self.layers[srcs[0]]
        l = Layer(name, L_CONCAT, [int(i) for i in srcs], out_c=sum(self.layers[i].out_c for i in srcs),
                  out_h=s.out_h, out_w=s.out_w)
        self._keep_out(l, s, **keep)
        return self._add(l)

    def act(self, name: str, src: int, act="relu", clamp=None, bits=None, signed=None) -> int:
        """Standalone clamp (relu / relu6 / clip with clamp=(lo, hi))."""
        s = self.layers[src]
        l = Layer(name, L_ACT, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        self._keep_out(l, s, bits, signed, act, clamp)
        return self._add(l)

    def requant(self, name: str, src: int, **out) -> int:
        """Standalone requantization: requant(a - za)."""
        s = self.layers[src]
        l = Layer(name, L_REQUANT, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        out = self._default_out(s, out, 1.0)
        self._apply_out(l, **out)
        return self._add(l)

    def flatten(self, name: str, src: int, **keep) -> int:
        """C x H x W -> (C*H*W) x 1 x 1."""
        s = self.layers[src]
        l = Layer(name, L_FLATTEN, [src], out_c=s.out_c * s.out_h * s.out_w)
        self._keep_out(l, s, **keep)
        return self._add(l)

    # ---- version-2 (transformer) layers, docs/qbin.md "Version 2"
    def _table(self, name: str, values) -> int:
        v = np.asarray(values, np.int64).ravel()
        return self.add_tensor(name, v, DT_INT32, True)

    def lut(self, name: str, src: int, table=None, fn=None, **out) -> int:
        """Element-wise table: y = clamp(table[a - lo_in]). Give the table, or fn (a float
        function of the real input) and the output quantization: the table is filled
        with round(fn(s_in * (a - z_in)) / s_out) + z_out for every input code a."""
        s = self.layers[src]
        l = Layer(name, L_LUT, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        self._apply_out(l, **out)
        if table is None:
            lo, hi = int_range(s.out_bits, s.out_signed)
            a = np.arange(lo, hi + 1)
            real = np.array([fn(float(v)) for v in s.out_scale * (a - s.out_zp)])
            table = np.clip(np.round(real / l.out_scale) + l.out_zp, *int_range(l.out_bits, l.out_signed))
        l.weight = self._table(name + ".table", table)
        return self._add(l)

    def mul(self, name: str, a: int, b: int, rowmax: bool = False, **out) -> int:
        """(a - za) * (b - zb), then requant (default multiplier s_a s_b / s_out). rowmax:
        (a - za) * max over b's channels of |b - zb| at the same position (re-applies a
        dynquant's per-token scale: b is the dynquant's input)."""
        sa, sb = self.layers[a], self.layers[b]
        l = Layer(name, L_MUL, [a, b], out_c=sa.out_c, out_h=sa.out_h, out_w=sa.out_w,
                  param=MUL_ROWMAX if rowmax else 0)
        out = dict(out)
        if "mult" not in out and "multiplier" not in out and out.get("scale", 0) > 0:
            out["multiplier"] = sa.out_scale * sb.out_scale / out["scale"]
        self._apply_out(l, **out)
        return self._add(l)

    def softmax(self, name: str, src: int, axis: int = 2, bits: int = 8, table=None,
                causal: bool = False, offset: int = 0) -> int:
        """Integer softmax along axis (0 C, 1 H, 2 W); unsigned output of scale 1/(2^bits-1).
        Default exponent table: T[d] = round(65535 * exp(-d * s_in)). causal: along axis 2 the
        line (c, h) keeps only w <= h + offset (axis 1: the line (c, w) keeps h <= w + offset)."""
        s = self.layers[src]
        param = int(axis) | ((SOFTMAX_CAUSAL | (int(offset) << SOFTMAX_OFFSET_SHIFT)) if causal else 0)
        l = Layer(name, L_SOFTMAX, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w, param=param)
        self._apply_out(l, bits=bits, signed=False, zp=0, scale=1.0 / ((1 << bits) - 1))
        if table is None:
            table = np.round(SOFTMAX_TABLE_MAX * np.exp(-np.arange(1 << s.out_bits) * s.out_scale))
        l.weight = self._table(name + ".exp", table)
        return self._add(l)

    def rope(self, name: str, src: int, head_dim: int, positions: int = None, offset: int = 0,
             base: float = 10000.0, table=None, **out) -> int:
        """Rotary position embedding (Llama's rotate_half pairing: channel i with i + dh/2 of each
        head) of token t at position t + offset: y_a = x_a cos - x_b sin, y_b = x_a sin + x_b cos,
        cos/sin in Q14 from a table of `positions` rows (default tokens + offset); the default
        multiplier is s_in 2^-14 / s_out (output scale needed)."""
        s = self.layers[src]
        l = Layer(name, L_ROPE, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w,
                  param=int(head_dim) | (int(offset) << 16))
        if table is None:
            n = s.out_h + offset if positions is None else positions
            theta = base ** (-2.0 * np.arange(head_dim // 2) / head_dim)
            ang = np.arange(n).reshape(-1, 1) * theta
            table = np.stack([np.round(np.cos(ang) * (1 << ROPE_FRAC_BITS)),
                              np.round(np.sin(ang) * (1 << ROPE_FRAC_BITS))], axis=2)
        l.weight = self.add_tensor(name + ".cos_sin", np.asarray(table, np.int64), DT_INT16, True)
        out = dict(out)
        if "mult" not in out and "multiplier" not in out and out.get("scale", 0) > 0 and s.out_scale > 0:
            out["multiplier"] = s.out_scale * 2.0 ** -ROPE_FRAC_BITS / out["scale"]
        self._apply_out(l, **out)
        return self._add(l)

    def embed(self, name: str, src: int, table, tbits: int = 8, tsigned: bool = True, positions=None,
              pbits: int = 8, offset: int = 0, **out) -> int:
        """Token embedding: src is the input (1, T, 1) of unsigned token ids; table an int array
        [vocab][hidden] (stored as a tbits-bit tensor) or an existing tensor index; output
        (hidden, T, 1), y[c, t] = clamp(table[id_t][c] + positions[t + offset][c]) with the
        optional position table [P][hidden] (GPT-2's wpe, pbits bits; both at the output's scale)."""
        s = self.layers[src]
        if not isinstance(table, (int, np.integer)):
            table = self.add_tensor(name + ".table", table, dtype_for_bits(tbits), tsigned)
        l = Layer(name, L_EMBED, [src], out_c=int(self.tensors[table].shape[1]), out_h=s.out_h, out_w=1)
        l.weight = int(table)
        if positions is not None:
            if not isinstance(positions, (int, np.integer)):
                positions = self.add_tensor(name + ".positions", positions, dtype_for_bits(pbits), True)
            l.bias, l.param = int(positions), int(offset)
        self._apply_out(l, **out)
        return self._add(l)

    def argmax(self, name: str, src: int, bits: int = 16) -> int:
        """Per position, the index of the largest of src's channels (the lowest index on ties),
        as an unsigned bits-bit output (1, H, W)."""
        s = self.layers[src]
        l = Layer(name, L_ARGMAX, [src], out_c=1, out_h=s.out_h, out_w=s.out_w)
        self._apply_out(l, bits=bits, signed=False, zp=0, scale=0.0)
        return self._add(l)

    def dynquant(self, name: str, src: int, bits: int = 8) -> int:
        """Per position, over channels: round((x - zp) q / max|x - zp|), q = 2^(bits-1) - 1
        (BitNet b1.58's absmax activation quantizer). The real scale differs per token, so
        out_scale is left 0 (unknown)."""
        s = self.layers[src]
        l = Layer(name, L_DYNQUANT, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        q = (1 << (bits - 1)) - 1
        self._apply_out(l, bits=bits, signed=True, zp=0, scale=0.0, clamp=(-q, q))
        return self._add(l)

    def _norm(self, kind, name, src, gamma, beta, out):
        s = self.layers[src]
        l = Layer(name, kind, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w)
        out = dict(out)
        if gamma is not None and "mult" not in out and "multiplier" not in out:
            # y = gamma z + beta = gamma 2^-16 (Z + beta 2^16 / gamma), Z the Q16 value
            g = np.asarray(gamma, np.float64).ravel() * np.ones(s.out_c)
            g = np.where(np.abs(g) < 1e-6, 1e-6, g)
            if (g < 0).any():
                raise ValueError("%s: negative gamma (the multiplier is >= 0)" % name)
            out["multiplier"] = g * 2.0 ** -NORM_FRAC_BITS / out["scale"]
            if beta is not None:
                b = np.asarray(beta, np.float64).ravel() * np.ones(s.out_c)
                out_bias = np.round(b * 2.0 ** NORM_FRAC_BITS / g)
                l.bias = self.add_tensor(name + ".b", np.clip(out_bias, INT32_MIN, INT32_MAX), DT_INT32, True)
        self._apply_out(l, **out)
        return self._add(l)

    def layernorm(self, name: str, src: int, gamma=None, beta=None, **out) -> int:
        """Integer layer norm over channels; y = requant_c(z + bias[c]); gamma/beta (floats)
        give the default per-channel multiplier and bias (output scale needed)."""
        return self._norm(L_LAYERNORM, name, src, gamma, beta, out)

    def rmsnorm(self, name: str, src: int, gamma=None, beta=None, **out) -> int:
        return self._norm(L_RMSNORM, name, src, gamma, beta, out)

    def matmul(self, name: str, a: int, b: int, trans_a: bool = False, trans_b: bool = False,
               grouped: bool = False, **out) -> int:
        """Per channel (batch) c: op(A[c]) @ op(B[c]), op = transpose when asked; grouped
        (grouped-query attention, param bit 2): one operand has g times fewer matrices and output
        matrix c uses its matrix c // g. Default multiplier s_a s_b / s_out."""
        sa, sb = self.layers[a], self.layers[b]
        m = sa.out_w if trans_a else sa.out_h
        n = sb.out_h if trans_b else sb.out_w
        l = Layer(name, L_MATMUL, [a, b], out_c=max(sa.out_c, sb.out_c) if grouped else sa.out_c, out_h=m,
                  out_w=n, param=int(bool(trans_a)) | (int(bool(trans_b)) << 1) | (int(bool(grouped)) << 2))
        out = dict(out)
        if "mult" not in out and "multiplier" not in out and out.get("scale", 0) > 0:
            out["multiplier"] = sa.out_scale * sb.out_scale / out["scale"]
        self._apply_out(l, **out)
        return self._add(l)

    def reshape(self, name: str, src: int, c: int, h: int, w: int) -> int:
        """Same values in the same (C order) sequence as a C x H x W tensor."""
        s = self.layers[src]
        l = Layer(name, L_RESHAPE, [src], out_c=c, out_h=h, out_w=w)
        self._keep_out(l, s, clamp=(s.clamp_lo, s.clamp_hi))
        return self._add(l)

    def kvcache(self, name: str, src: int, max_context: int) -> int:
        """A decoder's K or V cache on (heads, head size, tokens): over the prompt its input
        itself; in a decode step the cached rows followed by the new ones along W
        (docs/decode.md). max_context: the longest cache (prompt + decode steps)."""
        s = self.layers[src]
        l = Layer(name, L_KVCACHE, [src], out_c=s.out_c, out_h=s.out_h, out_w=s.out_w, param=int(max_context))
        self._keep_out(l, s, clamp=(s.clamp_lo, s.clamp_hi))
        return self._add(l)

    @staticmethod
    def _default_out(s: Layer, out: dict, factor: float) -> dict:
        """Pools/requant: default to the input's quantization and, when scales are known
        and no requant is given, the exact real multiplier in_scale*factor/out_scale."""
        out = dict(out)
        out.setdefault("bits", s.out_bits)
        out.setdefault("signed", s.out_signed)
        out.setdefault("zp", s.out_zp)
        out.setdefault("scale", s.out_scale)
        if "mult" not in out and "multiplier" not in out and s.out_scale > 0 and out["scale"] > 0:
            out["multiplier"] = s.out_scale * factor / out["scale"]
        return out

    # ---- I/O
    def to_bytes(self) -> bytes:
        return dumps(self)

    @staticmethod
    def from_bytes(data: bytes, where: str = "<bytes>") -> "Net":
        return loads(data, where)

    def save(self, path: str) -> None:
        write(self, path)

    @staticmethod
    def load(path: str) -> "Net":
        return read(path)

    def validate(self, where: str = "net") -> None:
        validate(self, where)

    def macs(self, i: int) -> int:
        l = self.layers[i]
        if l.kind == L_CONV:
            s = self.layers[l.inputs[0]]
            return l.out_c * l.out_h * l.out_w * (s.out_c // l.groups) * l.kh * l.kw
        if l.kind == L_FC:
            s = self.layers[l.inputs[0]]
            return l.out_c * s.out_c * s.out_h * s.out_w
        if l.kind == L_MATMUL:
            s = self.layers[l.inputs[0]]
            return l.out_c * l.out_h * l.out_w * (s.out_h if l.param & 1 else s.out_w)
        return 0

    def summary(self) -> str:
        lines = ["net '%s': %d layers, %d tensors, output layer %d" %
                 (self.name, len(self.layers), len(self.tensors), self.output)]
        for i, l in enumerate(self.layers):
            extra = ""
            if l.weight >= 0:
                t = self.tensors[l.weight]
                extra = " w=%s%s" % (dtype_name(t.dtype, t.signed), list(t.shape))
            lines.append("  %3d %-8s %-24s in=%-12s out=%dx%dx%d %s%d zp=%d rq=%d%s macs=%d" % (
                i, l.kind_name, l.name, l.inputs, l.out_c, l.out_h, l.out_w,
                "s" if l.out_signed else "u", l.out_bits, l.out_zp, len(l.rq_mult), extra,
                self.macs(i)))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- validation

def _check_name(name: str, what: str, fail):
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        fail("%s name is not ASCII" % what)
    if len(raw) >= NAME_MAX or any(c < 0x20 or c > 0x7e for c in raw):
        fail("%s name must be printable ASCII of at most %d characters" % (what, NAME_MAX - 1))


def validate(net: Net, where: str = "net", tensor_off=None, layer_off=None) -> None:
    """Check every rule of docs/qbin.md ("Graph rules"); raise QbinError on the first."""

    def tfail(i, msg):
        t = net.tensors[i]
        at = "byte %d (tensor %d '%s')" % (tensor_off[i], i, t.name) if tensor_off \
            else "tensor %d '%s'" % (i, t.name)
        raise QbinError("%s: %s: %s" % (where, at, msg))

    def lfail(i, msg):
        l = net.layers[i]
        at = "byte %d (layer %d '%s', %s)" % (layer_off[i], i, l.name, l.kind_name) if layer_off \
            else "layer %d '%s' (%s)" % (i, l.name, l.kind_name)
        raise QbinError("%s: %s: %s" % (where, at, msg))

    def nfail(msg):
        raise QbinError("%s: net: %s" % (where, msg))

    _check_name(net.name, "net", nfail)
    if not net.layers:
        nfail("no layers; layer 0 must be the input")
    if not 0 <= net.output < len(net.layers):
        nfail("output layer %d outside 0..%d" % (net.output, len(net.layers) - 1))
    for i, t in enumerate(net.tensors):
        _check_name(t.name, "tensor", lambda m: tfail(i, m))
        if t.dtype not in DTYPE_BITS:
            tfail(i, "unknown dtype %d" % t.dtype)
        if not 1 <= t.ndim <= 4 or min(t.shape) < 1:
            tfail(i, "shape %s: 1..4 dimensions, each >= 1" % (list(t.shape),))
        if t.count > MAX_ELEMS:
            tfail(i, "more than 2^31-1 elements")
        lo, hi = dtype_range(t.dtype, t.signed)
        d = t.data
        if d.size and (d.min() < lo or d.max() > hi or (t.dtype == DT_BIPOLAR and (d == 0).any())):
            tfail(i, "value outside the range of %s" % dtype_name(t.dtype, t.signed))
        n = t.q_scale.size
        if t.q_zp.size != n:
            tfail(i, "%d scales but %d zero points" % (n, t.q_zp.size))
        if n:
            if t.q_axis == -1:
                if n != 1:
                    tfail(i, "per-tensor quantization with %d entries" % n)
            elif not 0 <= t.q_axis < t.ndim or n != t.shape[t.q_axis]:
                tfail(i, "%d quantization entries do not fit axis %d" % (n, t.q_axis))
            if not (np.isfinite(t.q_scale).all() and (t.q_scale > 0).all()):
                tfail(i, "scales must be finite and > 0")
            zlo, zhi = (0, 0) if t.dtype == DT_BIPOLAR else dtype_range(t.dtype, t.signed)
            if t.q_zp.min() < zlo or t.q_zp.max() > zhi:
                tfail(i, "zero point outside the range of %s" % dtype_name(t.dtype, t.signed))

    for i, l in enumerate(net.layers):
        _check_name(l.name, "layer", lambda m: lfail(i, m))
        if not 0 <= l.kind < len(KIND_NAMES) or KIND_NAMES[l.kind] is None:
            lfail(i, "unknown layer kind %d" % l.kind)
        if (i == 0) != (l.kind == L_INPUT):
            lfail(i, "layer 0 must be the input" if i == 0 else "only layer 0 may be an input")
        nmin, nmax = {L_INPUT: (0, 0), L_ADD: (2, 2), L_MUL: (2, 2), L_MATMUL: (2, 2),
                      L_CONCAT: (1, MAX_INPUTS)}.get(l.kind, (1, 1))
        if not nmin <= len(l.inputs) <= nmax:
            lfail(i, "%d inputs; a %s takes %d..%d" % (len(l.inputs), l.kind_name, nmin, nmax))
        for k, j in enumerate(l.inputs):
            if not 0 <= j < i:
                lfail(i, "input %d refers to layer %d; inputs must be earlier layers" % (k, j))
        if min(l.out_c, l.out_h, l.out_w) < 1 or l.out_c * l.out_h * l.out_w > MAX_ELEMS:
            lfail(i, "output shape %dx%dx%d" % l.shape)
        if not 1 <= l.out_bits <= 16 or (l.out_bits == 1 and l.out_signed):
            lfail(i, "out_bits %d (1..16, 1 only unsigned)" % l.out_bits)
        lo, hi = int_range(l.out_bits, l.out_signed)
        if not lo <= l.out_zp <= hi:
            lfail(i, "output zero point %d outside %d..%d" % (l.out_zp, lo, hi))
        if not lo <= l.clamp_lo <= l.clamp_hi <= hi:
            lfail(i, "clamp [%d, %d] must be ordered and inside %d..%d" % (l.clamp_lo, l.clamp_hi, lo, hi))
        if l.act not in (ACT_NONE, ACT_RELU, ACT_RELU6, ACT_CLIP):
            lfail(i, "unknown activation %d" % l.act)
        if not (math.isfinite(l.out_scale) and l.out_scale >= 0):
            lfail(i, "output scale %r must be finite and >= 0" % l.out_scale)
        n = l.rq_mult.size
        if l.rq_shift.size != n:
            lfail(i, "%d multipliers but %d shifts" % (n, l.rq_shift.size))
        if l.kind not in REQUANT_KINDS and n:
            lfail(i, "a %s has no requantization" % l.kind_name)
        if n not in (0, 1, l.out_c):
            lfail(i, "%d requant multipliers; must be 0, 1 or %d" % (n, l.out_c))
        if n and (l.rq_mult.min() < 0 or np.abs(l.rq_shift.astype(np.int64)).max() > MAX_SHIFT):
            lfail(i, "multipliers must be >= 0 and shifts in -31..31")
        if l.kind not in (L_CONV, L_FC, L_LUT, L_SOFTMAX, L_ROPE, L_EMBED) and l.weight != -1:
            lfail(i, "a %s has no weight" % l.kind_name)
        if l.kind not in (L_CONV, L_FC, L_LAYERNORM, L_RMSNORM, L_EMBED) and l.bias != -1:
            lfail(i, "a %s has no bias" % l.kind_name)
        if l.kind not in (L_SOFTMAX, L_MATMUL, L_MUL, L_ROPE, L_EMBED, L_KVCACHE) and l.param != 0:
            lfail(i, "a %s has no parameter, but param is %d" % (l.kind_name, l.param))
        if l.kind == L_INPUT:
            continue
        s = net.layers[l.inputs[0]]

        def window():
            for axis, n_in, k, st, d, p0, p1 in (
                    ("height", s.out_h, l.kh, l.stride_h, l.dil_h, l.pad_t, l.pad_b),
                    ("width", s.out_w, l.kw, l.stride_w, l.dil_w, l.pad_l, l.pad_r)):
                if min(k, st, d) < 1:
                    lfail(i, "kernel/stride/dilation along %s must be >= 1" % axis)
                ext = d * (k - 1) + 1
                if not (0 <= p0 < ext and 0 <= p1 < ext):
                    lfail(i, "padding along %s outside 0..%d" % (axis, ext - 1))
                if n_in + p0 + p1 < ext:
                    lfail(i, "kernel extent %d exceeds the padded input %s" % (ext, axis))
            return (window_out(s.out_h, l.kh, l.stride_h, l.dil_h, l.pad_t, l.pad_b),
                    window_out(s.out_w, l.kw, l.stride_w, l.dil_w, l.pad_l, l.pad_r))

        def expect(c, h, w):
            if (l.out_c, l.out_h, l.out_w) != (c, h, w):
                lfail(i, "output shape %dx%dx%d does not match %dx%dx%d implied by its inputs"
                      % (l.out_c, l.out_h, l.out_w, c, h, w))

        def weights(want):
            if not 0 <= l.weight < len(net.tensors):
                lfail(i, "weight tensor index %d out of range" % l.weight)
            t = net.tensors[l.weight]
            if t.dtype not in WEIGHT_DTYPES:
                lfail(i, "weight '%s' dtype %s (bipolar/int2/int4/int8 only)" % (t.name, dtype_name(t.dtype, t.signed)))
            if tuple(t.shape) != tuple(want):
                lfail(i, "weight '%s' shape %s does not match %s" % (t.name, list(t.shape), list(want)))
            if t.q_zp.size and (t.q_zp != 0).any():
                lfail(i, "weight '%s' has a non-zero zero point" % t.name)
            if l.bias != -1:
                if not 0 <= l.bias < len(net.tensors):
                    lfail(i, "bias tensor index %d out of range" % l.bias)
                b = net.tensors[l.bias]
                if b.dtype != DT_INT32 or not b.signed or tuple(b.shape) != (l.out_c,):
                    lfail(i, "bias '%s' must be an int32 vector of %d" % (b.name, l.out_c))
                if b.q_zp.size and (b.q_zp != 0).any():
                    lfail(i, "bias '%s' has a non-zero zero point" % b.name)

        if l.kind in KEEP_ZP_KINDS:
            for j in l.inputs:
                if net.layers[j].out_zp != l.out_zp:
                    lfail(i, "zero point %d differs from input layer %d's %d"
                          % (l.out_zp, j, net.layers[j].out_zp))
        if l.kind == L_CONV:
            oh, ow = window()
            if l.groups < 1 or s.out_c % l.groups or l.out_c % l.groups:
                lfail(i, "groups %d must divide %d and %d" % (l.groups, s.out_c, l.out_c))
            expect(l.out_c, oh, ow)
            weights((l.out_c, s.out_c // l.groups, l.kh, l.kw))
        elif l.kind == L_FC:
            expect(l.out_c, 1, 1)
            weights((l.out_c, s.out_c * s.out_h * s.out_w))
        elif l.kind in (L_MAXPOOL, L_AVGPOOL):
            oh, ow = window()
            expect(s.out_c, oh, ow)
            if l.kind == L_MAXPOOL:
                for n_in, n_out, k, st, d, p0 in ((s.out_h, oh, l.kh, l.stride_h, l.dil_h, l.pad_t),
                                                  (s.out_w, ow, l.kw, l.stride_w, l.dil_w, l.pad_l)):
                    pos = np.arange(n_out)[:, None] * st - p0 + np.arange(k)[None, :] * d
                    if not ((pos >= 0) & (pos < n_in)).any(axis=1).all():
                        lfail(i, "a pooling window lies entirely in the padding")
        elif l.kind == L_GAP:
            expect(s.out_c, 1, 1)
        elif l.kind == L_ADD:
            if net.layers[l.inputs[1]].shape != s.shape:
                lfail(i, "inputs have different shapes")
            expect(*s.shape)
        elif l.kind == L_CONCAT:
            if any(net.layers[j].shape[1:] != s.shape[1:] for j in l.inputs):
                lfail(i, "inputs differ in H x W")
            expect(sum(net.layers[j].out_c for j in l.inputs), s.out_h, s.out_w)
        elif l.kind in (L_ACT, L_REQUANT):
            expect(*s.shape)
        elif l.kind == L_FLATTEN:
            # a view of its input's bytes: its clamp must leave every input value unchanged
            if l.clamp_lo > s.clamp_lo or l.clamp_hi < s.clamp_hi:
                lfail(i, "clamp [%d, %d] is narrower than its input's [%d, %d]; a flatten is a view "
                      "and cannot clamp" % (l.clamp_lo, l.clamp_hi, s.clamp_lo, s.clamp_hi))
            expect(s.out_c * s.out_h * s.out_w, 1, 1)
        elif l.kind in V2_KINDS:
            _validate_v2(net, i, l, s, lfail, expect)


def _validate_v2(net: Net, i: int, l: Layer, s: Layer, lfail, expect) -> None:
    """Rules of docs/qbin.md, "Version 2: transformer layers"."""

    def table(lo, hi):
        if not 0 <= l.weight < len(net.tensors):
            lfail(i, "table tensor index %d out of range" % l.weight)
        t = net.tensors[l.weight]
        if t.dtype == DT_BIPOLAR:
            lfail(i, "table '%s' is bipolar" % t.name)
        if t.ndim != 1 or t.count != 1 << s.out_bits:
            lfail(i, "table '%s' has %d entries; a %d-bit input needs a vector of %d"
                  % (t.name, t.count, s.out_bits, 1 << s.out_bits))
        if t.data.min() < lo or t.data.max() > hi:
            lfail(i, "table '%s' entries outside %d..%d" % (t.name, lo, hi))
        return t

    if l.kind in (L_LUT, L_SOFTMAX):
        if l.kind == L_SOFTMAX:
            axis = l.param if l.param < 0 else l.param % 16
            if not 0 <= axis <= 2:
                lfail(i, "softmax axis %d does not exist (0, 1, 2)" % axis)
            if l.param & 0xe0:
                lfail(i, "softmax param 0x%x: bits 5-7 must be 0" % l.param)
            causal, offset = l.param & SOFTMAX_CAUSAL, l.param >> SOFTMAX_OFFSET_SHIFT
            if offset and not causal:
                lfail(i, "softmax offset %d without the causal bit" % offset)
            if causal and axis == 0:
                lfail(i, "a causal softmax runs along axis 1 or 2 (keys), not over channels")
        if s.out_bits > TABLE_MAX_BITS:
            lfail(i, "input has %d bits; a table takes at most %d" % (s.out_bits, TABLE_MAX_BITS))
        if l.kind == L_LUT:
            table(INT32_MIN, INT32_MAX)
        else:
            if l.out_signed or l.out_zp:
                lfail(i, "softmax output must be unsigned with zero point 0")
            if table(0, SOFTMAX_TABLE_MAX).data.ravel()[0] < 1:
                lfail(i, "exponent table entry 0 must be >= 1")
        expect(*s.shape)
    elif l.kind == L_ROPE:
        dh, off = l.param & 0xffff, l.param >> 16
        if l.param < 0 or dh < 2 or dh % 2 or s.out_c % dh:
            lfail(i, "rope head size %d must be even, >= 2 and divide the %d channels" % (dh, s.out_c))
        if s.out_w != 1:
            lfail(i, "rope input: tokens run along H, W must be 1")
        if not 0 <= l.weight < len(net.tensors):
            lfail(i, "table tensor index %d out of range" % l.weight)
        t = net.tensors[l.weight]
        if t.dtype not in (DT_INT16, DT_INT32) or not t.signed or tuple(t.shape)[1:] != (dh // 2, 2):
            lfail(i, "rope table '%s' must be signed int16/int32 of shape [positions][%d][2]" % (t.name, dh // 2))
        if t.shape[0] < s.out_h + off:
            lfail(i, "rope table '%s' holds %d positions; tokens %d at offset %d need %d"
                  % (t.name, t.shape[0], s.out_h, off, s.out_h + off))
        if t.data.size and np.abs(t.data).max() > 1 << ROPE_FRAC_BITS:
            lfail(i, "rope table '%s' entries outside -16384..16384 (Q14 cos/sin)" % t.name)
        expect(*s.shape)
    elif l.kind == L_DYNQUANT:
        if not l.out_signed or l.out_zp != 0 or l.out_bits < 2:
            lfail(i, "dynquant output must be signed, at least 2 bits, zero point 0")
        expect(*s.shape)
    elif l.kind == L_MUL and l.param == MUL_ROWMAX:
        b = net.layers[l.inputs[1]]
        if (b.out_h, b.out_w) != (s.out_h, s.out_w):
            lfail(i, "row-absmax mul: inputs have different positions")
        if max(s.out_c, b.out_c) > NORM_MAX_ROW:
            lfail(i, "row-absmax mul: rows of more than %d channels" % NORM_MAX_ROW)
        expect(*s.shape)
    elif l.kind == L_MUL:
        if l.param != 0:
            lfail(i, "mul param %d: 0 (element-wise) or 1 (row absmax)" % l.param)
        if net.layers[l.inputs[1]].shape != s.shape:
            lfail(i, "inputs have different shapes")
        expect(*s.shape)
    elif l.kind in (L_LAYERNORM, L_RMSNORM):
        if s.out_c > NORM_MAX_ROW:
            lfail(i, "rows of %d channels; at most %d" % (s.out_c, NORM_MAX_ROW))
        if l.bias != -1:
            if not 0 <= l.bias < len(net.tensors):
                lfail(i, "bias tensor index %d out of range" % l.bias)
            b = net.tensors[l.bias]
            if b.dtype != DT_INT32 or not b.signed or tuple(b.shape) != (l.out_c,):
                lfail(i, "bias '%s' must be an int32 vector of %d" % (b.name, l.out_c))
        expect(*s.shape)
    elif l.kind == L_MATMUL:
        if not 0 <= l.param <= 7:
            lfail(i, "matmul param %d outside 0..7" % l.param)
        b = net.layers[l.inputs[1]]
        m, k = (s.out_w, s.out_h) if l.param & 1 else (s.out_h, s.out_w)
        kb, n = (b.out_w, b.out_h) if l.param & 2 else (b.out_h, b.out_w)
        if not l.param & 4 and b.out_c != s.out_c:
            lfail(i, "A has %d matrices, B %d: the batch must match" % (s.out_c, b.out_c))
        if l.param & 4 and s.out_c % b.out_c and b.out_c % s.out_c:
            lfail(i, "grouped: A has %d matrices (heads), B %d: one must be a multiple of the other"
                  % (s.out_c, b.out_c))
        if kb != k:
            lfail(i, "mismatched shapes: op(A) is %d x %d, op(B) is %d x %d" % (m, k, kb, n))
        expect(max(s.out_c, b.out_c), m, n)
    elif l.kind == L_EMBED:
        if l.inputs[0] != 0 or s.out_signed or s.out_zp != 0 or s.out_c != 1 or s.out_w != 1:
            lfail(i, "embed input must be the network input (layer 0) of unsigned token ids with zero point 0, "
                  "shape 1 x T x 1")
        if not 0 <= l.weight < len(net.tensors):
            lfail(i, "table tensor index %d out of range" % l.weight)
        t = net.tensors[l.weight]
        if t.dtype == DT_BIPOLAR or not (len(t.shape) == 2 or (len(t.shape) == 4 and t.shape[2:] == (1, 1))):
            lfail(i, "embedding table '%s' must be an integer tensor [vocab][hidden] or [vocab][hidden][1][1]"
                  % t.name)
        if l.param < 0 or (l.bias == -1 and l.param != 0):
            lfail(i, "embed param %d: the position of token 0, only with a position table" % l.param)
        if l.bias != -1:
            if not 0 <= l.bias < len(net.tensors):
                lfail(i, "position table index %d out of range" % l.bias)
            pt = net.tensors[l.bias]
            if pt.dtype == DT_BIPOLAR or len(pt.shape) != 2 or pt.shape[1] != t.shape[1]:
                lfail(i, "position table '%s' must be an integer tensor [positions][%d]" % (pt.name, t.shape[1]))
            if pt.shape[0] < s.out_h + l.param:
                lfail(i, "position table '%s' holds %d positions; tokens %d at position %d need %d"
                      % (pt.name, pt.shape[0], s.out_h, l.param, s.out_h + l.param))
        expect(t.shape[1], s.out_h, 1)
    elif l.kind == L_ARGMAX:
        if l.out_signed or l.out_zp != 0 or l.clamp_lo != 0 or l.clamp_hi < s.out_c - 1:
            lfail(i, "argmax over %d channels needs an unsigned output with zero point 0 and a clamp [0, >= %d]"
                  % (s.out_c, s.out_c - 1))
        expect(1, s.out_h, s.out_w)
    elif l.kind == L_KVCACHE:   # docs/decode.md: identity over the prompt, param = maximum context
        if l.param < 1:
            lfail(i, "kvcache maximum context %d must be >= 1" % l.param)
        if s.out_w > l.param:
            lfail(i, "a KV cache longer than its maximum: the prompt's %d tokens exceed the maximum "
                  "context %d" % (s.out_w, l.param))
        if (l.out_bits, l.out_signed, l.out_zp) != (s.out_bits, s.out_signed, s.out_zp) or \
                l.clamp_lo > s.clamp_lo or l.clamp_hi < s.clamp_hi:
            lfail(i, "a kvcache keeps the input's bits, signedness and zero point, and its clamp "
                  "must contain the input's")
        for j in range(i + 1, len(net.layers)):
            if i in net.layers[j].inputs and net.layers[j].kind != L_MATMUL:
                lfail(i, "a kvcache feeds only matmuls; layer %d '%s' is a %s"
                      % (j, net.layers[j].name, net.layers[j].kind_name))
        if net.output == i:
            lfail(i, "a kvcache cannot be the network's output")
        expect(s.out_c, s.out_h, s.out_w)
    elif l.kind == L_RESHAPE:
        if l.out_c * l.out_h * l.out_w != s.out_c * s.out_h * s.out_w:
            lfail(i, "reshape changes the element count")
        if (l.out_bits, l.out_signed, l.out_zp) != (s.out_bits, s.out_signed, s.out_zp) or \
                l.clamp_lo > s.clamp_lo or l.clamp_hi < s.clamp_hi:
            lfail(i, "a reshape keeps the input's bits, signedness and zero point, and its clamp "
                  "must contain the input's")


# ---------------------------------------------------------------------------- writer

def _name_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    return raw + b"\0" * (NAME_MAX - len(raw))


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def dumps(net: Net) -> bytes:
    """Serialize (canonical encoding; validates first)."""
    validate(net, "serialize")
    net_sec = _name_bytes(net.name) + struct.pack("<IIiI", len(net.tensors), len(net.layers),
                                                  net.output, 0)
    tparts = []
    for t in net.tensors:
        shape = list(t.shape) + [1] * (4 - t.ndim)
        n = t.q_scale.size
        tparts.append(_name_bytes(t.name) + struct.pack(
            "<BBBB4iIiIQ", t.dtype, int(t.signed), t.ndim, 0, *shape, n,
            t.q_axis if n else -1, 0, packed_bytes(t.count, t.dtype)))
        tparts.append(t.q_scale.astype("<f4").tobytes() + t.q_zp.astype("<i4").tobytes())
        tparts.append(pack_values(t.data, t.dtype, t.signed))
    ten_sec = b"".join(tparts)
    lparts, rq = [], []
    for l in net.layers:
        ins = list(l.inputs) + [-1] * (MAX_INPUTS - len(l.inputs))
        lparts.append(_name_bytes(l.name) + struct.pack(
            "<ii8i15iiii3iBBHifiI", l.kind, len(l.inputs), *ins,
            l.kh, l.kw, l.stride_h, l.stride_w, l.pad_t, l.pad_l, l.pad_b, l.pad_r,
            l.dil_h, l.dil_w, l.groups, l.weight, l.bias, l.add_mul[0], l.add_mul[1],
            l.act, l.clamp_lo, l.clamp_hi, l.out_c, l.out_h, l.out_w,
            l.out_bits, int(l.out_signed), 0, l.out_zp, l.out_scale, l.rq_mult.size, l.param))
        n = l.rq_mult.size
        if n:
            rq.append(l.rq_mult.astype("<i4").tobytes() + l.rq_shift.astype("i1").tobytes()
                      + b"\0" * (_pad4(n) - n))
    lay_sec = b"".join(lparts + rq)

    sections = [(SECT_NET, net_sec), (SECT_TENSORS, ten_sec), (SECT_LAYERS, lay_sec)]
    pos = _pad8(HEADER_SIZE + ENTRY_SIZE * len(sections))
    table, body = b"", b""
    body_start = pos
    for kind, payload in sections:
        pos = _pad8(pos)
        body += b"\0" * (pos - body_start - len(body))
        table += struct.pack("<IIQQ", kind, zlib.crc32(payload), pos, len(payload))
        body += payload
        pos += len(payload)
    total = pos
    version = 2 if any(l.kind in V2_KINDS for l in net.layers) else 1
    head = MAGIC + struct.pack("<IIQI", version, 0, total, len(sections))
    hcrc = zlib.crc32(table, zlib.crc32(head))
    out = head + struct.pack("<I", hcrc) + table
    out += b"\0" * (body_start - len(out)) + body
    assert len(out) == total
    return out


def write(net: Net, path: str) -> None:
    data = dumps(net)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------- reader

def loads(data: bytes, where: str = "<bytes>") -> Net:
    """Parse and validate a .qbin image."""
    b = bytes(data)
    n_file = len(b)

    def fail(off, ctx, msg):
        raise QbinError("%s: byte %d (%s): %s" % (where, off, ctx, msg))

    if n_file < HEADER_SIZE:
        fail(n_file, "header", "file truncated: %d bytes, the header alone is %d" % (n_file, HEADER_SIZE))
    if b[:8] != MAGIC:
        fail(0, "header", "bad magic (not a .qbin file)")
    version, flags, fsize, nsec, hcrc = struct.unpack_from("<IIQII", b, 8)
    if not 1 <= version <= VERSION:
        fail(8, "header", "unsupported version %d (this reader implements 1..%d)" % (version, VERSION))
    if flags:
        fail(12, "header", "flags must be 0")
    if fsize != n_file:
        fail(16, "header", "file size field says %d bytes, have %d" % (fsize, n_file))
    if not 1 <= nsec <= MAX_SECTIONS:
        fail(24, "header", "section count %d outside 1..%d" % (nsec, MAX_SECTIONS))
    table_end = HEADER_SIZE + ENTRY_SIZE * nsec
    if table_end > n_file:
        fail(n_file, "section table", "file truncated inside the section table")
    if zlib.crc32(b[HEADER_SIZE:table_end], zlib.crc32(b[:28])) != hcrc:
        fail(28, "header", "header CRC mismatch")
    found = {}
    spans = []
    last_required = 0
    for i in range(nsec):
        eo = HEADER_SIZE + ENTRY_SIZE * i
        kind, crc, off, size = struct.unpack_from("<IIQQ", b, eo)
        ctx = "section table entry %d" % i
        if off % 8 or off < table_end or off > n_file or size > n_file - off:
            fail(eo, ctx, "section misaligned or outside the file body")
        if kind in (SECT_NET, SECT_TENSORS, SECT_LAYERS):
            if kind in found:
                fail(eo, ctx, "duplicate section kind %d" % kind)
            # one order only, so that every file without an optional section saves back
            # to its own bytes
            if kind < last_required:
                fail(eo, ctx, "section kind %d after kind %d: the required sections come in "
                     "the order net (1), tensors (2), layers (3)" % (kind, last_required))
            last_required = kind
            found[kind] = (off, size)
        elif not kind & SECT_OPTIONAL:
            fail(eo, ctx, "unknown required section kind %d" % kind)
        if spans and off < spans[-1][0]:
            fail(eo, ctx, "section at byte %d is listed after the one at byte %d; the table "
                 "lists sections in file order" % (off, spans[-1][0]))
        if zlib.crc32(b[off:off + size]) != crc:
            fail(off, ctx, "section CRC mismatch (kind %d): the file is corrupt" % kind)
        spans.append((off, size))
    missing = [n for k, n in ((SECT_NET, "net"), (SECT_TENSORS, "tensors"), (SECT_LAYERS, "layers"))
               if k not in found]
    if missing:
        fail(HEADER_SIZE, "section table", "missing section(s): " + ", ".join(missing))
    pos = table_end
    for i, (off, size) in enumerate(spans + [(n_file, 0)]):
        if off < pos:
            fail(off, "section table", "sections overlap")
        if any(b[pos:off]):
            fail(pos + next(k for k, c in enumerate(b[pos:off]) if c), "padding",
                 "non-zero byte outside every section")
        # canonical layout: each section at the first multiple of 8 after the one before,
        # and the file ends where the last section does
        if i < len(spans) and off != _pad8(pos):
            fail(_pad8(pos), "padding", "%d bytes of padding before the section at byte %d; "
                 "a canonical file has fewer than 8" % (off - pos, off))
        if i == len(spans) and off != pos:
            fail(pos, "end of file", "%d bytes after the last section (which ends at byte %d); "
                 "a canonical file ends there" % (off - pos, pos))
        pos = max(pos, off + size)

    def name_at(off, ctx):
        raw = b[off:off + NAME_MAX]
        end = raw.find(b"\0")
        if end < 0:
            fail(off, ctx, "name not NUL-terminated within %d bytes" % NAME_MAX)
        if any(c < 0x20 or c > 0x7e for c in raw[:end]):
            fail(off, ctx, "name has a non-printable byte")
        if any(raw[end:]):
            fail(off, ctx, "non-zero byte after the name's terminator")
        return raw[:end].decode("ascii")

    noff, nsize = found[SECT_NET]
    toff, tsize = found[SECT_TENSORS]
    loff, lsize = found[SECT_LAYERS]
    if nsize != NET_SIZE:
        fail(noff, "net section", "size %d, must be %d" % (nsize, NET_SIZE))
    net = Net(name_at(noff, "net section"))
    n_t, n_l, output, res = struct.unpack_from("<IIiI", b, noff + 48)
    if n_t > tsize // TENSOR_FIXED:
        fail(noff + 48, "net section", "%d tensors cannot fit in %d bytes" % (n_t, tsize))
    if not 1 <= n_l <= lsize // LAYER_SIZE:
        fail(noff + 52, "net section", "%d layers do not fit in %d bytes" % (n_l, lsize))
    if not 0 <= output < n_l:
        fail(noff + 56, "net section", "output layer %d outside 0..%d" % (output, n_l - 1))
    if res:
        fail(noff + 60, "net section", "reserved field is not 0")
    net.output = output

    cur, tend = toff, toff + tsize
    tensor_off = []
    for ti in range(n_t):
        ctx = "tensors section, tensor %d" % ti
        tensor_off.append(cur)
        if tend - cur < TENSOR_FIXED:
            fail(cur, ctx, "section ends inside the tensor record")
        name = name_at(cur, ctx)
        ctx += " '%s'" % name
        dt, sg, nd, r0 = b[cur + 48:cur + 52]
        shape = struct.unpack_from("<4i", b, cur + 52)
        qn, qaxis, r1, nbytes = struct.unpack_from("<IiIQ", b, cur + 68)
        if dt not in DTYPE_BITS:
            fail(cur + 48, ctx, "unknown dtype %d" % dt)
        if sg > 1:
            fail(cur + 49, ctx, "is_signed %d is not 0 or 1" % sg)
        if not 1 <= nd <= 4:
            fail(cur + 50, ctx, "ndim %d outside 1..4" % nd)
        if r0 or r1:
            fail(cur + 51 if r0 else cur + 76, ctx, "reserved field is not 0")
        if any(d < 1 for d in shape[:nd]) or any(d != 1 for d in shape[nd:]):
            fail(cur + 52, ctx, "bad shape %s for ndim %d" % (list(shape), nd))
        count = int(np.prod(shape[:nd], dtype=object))
        room = tend - cur - TENSOR_FIXED
        if count > MAX_ELEMS or count * DTYPE_BITS[dt] > room * 8:
            fail(cur + 52, ctx, "shape needs more data than the %d bytes left" % room)
        if qn > room // 8:
            fail(cur + 68, ctx, "%d quantization entries do not fit" % qn)
        ok_q = (qaxis == -1) if qn == 0 else \
            (qn == 1 if qaxis == -1 else (0 <= qaxis < nd and qn == shape[qaxis]))
        if not ok_q:
            fail(cur + 68, ctx, "quantization count %d does not fit axis %d" % (qn, qaxis))
        if nbytes != packed_bytes(count, dt):
            fail(cur + 80, ctx, "data size %d, expected %d" % (nbytes, packed_bytes(count, dt)))
        if 8 * qn + nbytes > room:
            fail(tend, ctx, "section ends inside the tensor data")
        q0 = cur + TENSOR_FIXED
        qs = np.frombuffer(b[q0:q0 + 4 * qn], "<f4").astype(np.float32)
        qz = np.frombuffer(b[q0 + 4 * qn:q0 + 8 * qn], "<i4").astype(np.int32)
        d0 = q0 + 8 * qn
        raw = b[d0:d0 + nbytes]
        try:
            vals = unpack_values(raw, count, dt, bool(sg))
        except QbinError as e:
            fail(d0, ctx, str(e))
        used = count * DTYPE_BITS[dt]
        tail = bytearray(raw[used // 8:])
        if tail and used % 8:
            tail[0] >>= used % 8
        if any(tail):
            fail(d0 + used // 8, ctx, "non-zero padding after the tensor data")
        net.tensors.append(Tensor(name, dt, bool(sg), vals.reshape(shape[:nd]), qs, qz,
                                  qaxis if qn else -1))
        cur = d0 + nbytes
    if cur != tend:
        fail(cur, "tensors section", "%d unexplained bytes at the end" % (tend - cur))

    cur, lend = loff, loff + lsize
    layer_off, rq_n = [], []
    fmt = "<ii8i15iiii3iBBHifiI"
    for li in range(n_l):
        ctx = "layers section, layer %d" % li
        layer_off.append(cur)
        name = name_at(cur, ctx)
        ctx += " '%s'" % name
        v = struct.unpack_from(fmt, b, cur + NAME_MAX)
        kind, nin = v[0], v[1]
        ins = list(v[2:10])
        (kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, groups, weight, bias, m0, m1) = v[10:25]
        act, clo, chi, oc, oh, ow, obits, osg, r0, ozp, oscale, n, r1 = v[25:38]
        if not 0 <= kind < len(KIND_NAMES) or KIND_NAMES[kind] is None:
            fail(cur + 48, ctx, "unknown layer kind %d" % kind)
        if not 0 <= nin <= MAX_INPUTS:
            fail(cur + 52, ctx, "input count %d outside 0..%d" % (nin, MAX_INPUTS))
        if any(x != -1 for x in ins[nin:]):
            fail(cur + 56, ctx, "unused input slots must hold -1")
        if not 0 <= act <= ACT_CLIP:
            fail(cur + 148, ctx, "unknown activation %d" % act)
        if version < 2 and kind in V2_KINDS:
            fail(cur + 48, ctx, "layer kind %d (%s) needs format version 2" % (kind, KIND_NAMES[kind]))
        if r0 or (r1 and version < 2):
            fail(cur + (174 if r0 else 188), ctx, "reserved field is not 0")
        if n < 0:
            fail(cur + 184, ctx, "negative requant count %d" % n)
        net.layers.append(Layer(name, kind, ins[:nin], kh, kw, sh, sw, pt, pl, pb, pr, dh, dw,
                                groups, weight, bias, [m0, m1], act=act, clamp_lo=clo,
                                clamp_hi=chi, out_c=oc, out_h=oh, out_w=ow, out_bits=obits,
                                out_signed=bool(osg), out_zp=ozp,
                                out_scale=float(np.float32(oscale)), param=r1))
        if osg > 1:
            fail(cur + 173, ctx, "out_signed %d is not 0 or 1" % osg)
        rq_n.append(n)
        cur += LAYER_SIZE
    if version == 2 and not any(l.kind in V2_KINDS for l in net.layers):
        fail(8, "header", "version 2, but no layer needs it (written as version 1)")
    for li, n in enumerate(rq_n):
        if not n:
            continue
        ctx = "layers section, requant arrays of layer %d '%s'" % (li, net.layers[li].name)
        need = 4 * n + _pad4(n)
        if need > lend - cur:
            fail(cur, ctx, "%d multipliers need %d bytes, %d left" % (n, need, lend - cur))
        l = net.layers[li]
        l.rq_mult = np.frombuffer(b[cur:cur + 4 * n], "<i4").astype(np.int32)
        l.rq_shift = np.frombuffer(b[cur + 4 * n:cur + 5 * n], "i1").astype(np.int8)
        if any(b[cur + 5 * n:cur + need]):
            fail(cur + 5 * n, ctx, "non-zero padding")
        cur += need
    if cur != lend:
        fail(cur, "layers section", "%d unexplained bytes at the end" % (lend - cur))
    validate(net, where, tensor_off, layer_off)
    return net


def read(path: str) -> Net:
    with open(path, "rb") as f:
        return loads(f.read(), path)


def diff(a: Net, b: Net) -> Optional[str]:
    """First structural difference between two networks, or None."""
    if a.name != b.name or a.output != b.output:
        return "net name/output differ"
    if len(a.tensors) != len(b.tensors) or len(a.layers) != len(b.layers):
        return "tensor/layer counts differ"
    for i, (x, y) in enumerate(zip(a.tensors, b.tensors)):
        for f in ("name", "dtype", "signed", "q_axis"):
            if getattr(x, f) != getattr(y, f) and not (f == "q_axis" and not x.q_scale.size):
                return "tensor %d: %s differs" % (i, f)
        if x.shape != y.shape or not np.array_equal(x.data, y.data):
            return "tensor %d: data differ" % i
        if not (np.array_equal(x.q_scale, y.q_scale) and np.array_equal(x.q_zp, y.q_zp)):
            return "tensor %d: quantization differs" % i
    for i, (x, y) in enumerate(zip(a.layers, b.layers)):
        for f in Layer.__dataclass_fields__:
            u, v = getattr(x, f), getattr(y, f)
            if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
                same = np.array_equal(np.asarray(u, np.int64), np.asarray(v, np.int64))
            elif f == "out_scale":
                same = np.float32(u) == np.float32(v)
            else:
                same = list(u) == list(v) if isinstance(u, list) else u == v
            if not same:
                return "layer %d '%s': %s differs (%r vs %r)" % (i, x.name, f, u, v)
    return None


# ---------------------------------------------------------------------------- integer semantics

def _trunc_div_pow2(x: np.ndarray, n: int) -> np.ndarray:
    """x / 2^n rounded toward zero (C integer division), x int64."""
    q = np.abs(x) >> n
    return np.where(x < 0, -q, q)


def sat32(x) -> np.ndarray:
    return np.clip(np.asarray(x, np.int64), INT32_MIN, INT32_MAX)


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (vectorized)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b                                          # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    r = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, r)


def rdivpot(x, e) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT (0 <= e <= 31), vectorized."""
    x = np.asarray(x, np.int64)
    e = np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def requantize(acc, mult, shift, zp: int, lo: int, hi: int) -> np.ndarray:
    """requant of docs/qbin.md with explicit (M0, shift) (arrays broadcast against acc)."""
    x = sat32(acc)
    shift = np.asarray(shift, np.int64)
    mult = np.asarray(mult, np.int64)
    left = np.where(shift < 0, -shift, 0)
    right = np.where(shift > 0, shift, 0)
    x = sat32(x << left)                                # saturating left shift (<= 2^62)
    r = rdivpot(srdhm(x, mult), right)
    return np.clip(zp + r, lo, hi)


def layer_requant(l: Layer, acc: np.ndarray) -> np.ndarray:
    """requant_c over a (C, H, W) int64 accumulator, channel = axis 0."""
    n = l.rq_mult.size
    if n == 0:
        return np.clip(l.out_zp + sat32(acc), l.clamp_lo, l.clamp_hi)
    m = l.rq_mult.astype(np.int64)
    s = l.rq_shift.astype(np.int64)
    if n > 1:
        m = m.reshape(-1, 1, 1)
        s = s.reshape(-1, 1, 1)
    return requantize(acc, m, s, l.out_zp, l.clamp_lo, l.clamp_hi)


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """TFLite QuantizeMultiplier: real = M0 * 2^-31 * 2^-shift; shift > 0 is a right shift."""
    if real < 0 or not math.isfinite(real):
        raise ValueError("multiplier %r must be finite and >= 0" % real)
    if real == 0:
        return 0, 0
    q, e = math.frexp(real)
    m0 = int(math.floor(q * (1 << 31) + 0.5))          # round half away from zero (q > 0)
    if m0 == 1 << 31:
        m0 //= 2
        e += 1
    shift = -e
    if shift > MAX_SHIFT:
        return 0, 0
    if shift < -MAX_SHIFT:
        return INT32_MAX, -MAX_SHIFT
    return m0, shift


def wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of exact sums to `bits` (the accumulator's width)."""
    if bits >= 64:
        return acc
    half = np.int64(1) << (bits - 1)
    return ((acc + half) & ((np.int64(1) << bits) - 1)) - half


def _exact_matmul(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Exact int64 product. Uses float64 BLAS when every partial sum is an integer below
    2^53 in magnitude (then the result is exact whatever the summation order)."""
    if w.size == 0 or x.size == 0:
        return np.zeros((w.shape[0], x.shape[1]), np.int64)
    bound = float(np.abs(w).max()) * float(np.abs(x).max()) * w.shape[1]
    if bound < 2.0 ** 53:
        return np.rint(w.astype(np.float64) @ x.astype(np.float64)).astype(np.int64)
    return w.astype(np.int64) @ x.astype(np.int64)


def _taps(a: np.ndarray, l: Layer, fill: int):
    """Padded input and the (ky, kx) strided views of every kernel tap, each (C, OH, OW)."""
    c, h, w = a.shape
    p = np.full((c, h + l.pad_t + l.pad_b, w + l.pad_l + l.pad_r), fill, np.int64)
    p[:, l.pad_t:l.pad_t + h, l.pad_l:l.pad_l + w] = a
    for ky in range(l.kh):
        for kx in range(l.kw):
            y0, x0 = ky * l.dil_h, kx * l.dil_w
            yield p[:, y0:y0 + l.stride_h * (l.out_h - 1) + 1:l.stride_h,
                    x0:x0 + l.stride_w * (l.out_w - 1) + 1:l.stride_w]


def layer_accumulator(net: Net, i: int, outs: Sequence[np.ndarray], acc_bits: int = 32) -> np.ndarray:
    """The int64 value a requantizing layer feeds to requant_c (conv/fc: wrapped acc + bias),
    shape (out_c, out_h, out_w). `outs` holds the outputs of the earlier layers."""
    l = net.layers[i]
    a = np.asarray(outs[l.inputs[0]], np.int64)
    za = net.layers[l.inputs[0]].out_zp
    if l.kind == L_CONV:
        wt = net.tensors[l.weight].data.astype(np.int64)
        g = l.groups
        cin_g, cout_g = a.shape[0] // g, l.out_c // g
        # im2col: rows (ci, ky, kx) in the weight's C order, columns output pixels
        taps = np.stack(list(_taps(a - za, l, 0)), axis=1)       # (C, KH*KW, OH, OW)
        cols = taps.reshape(a.shape[0], l.kh * l.kw, -1)
        acc = np.empty((l.out_c, l.out_h * l.out_w), np.int64)
        for gi in range(g):
            x = cols[gi * cin_g:(gi + 1) * cin_g].reshape(cin_g * l.kh * l.kw, -1)
            wg = wt[gi * cout_g:(gi + 1) * cout_g].reshape(cout_g, -1)
            acc[gi * cout_g:(gi + 1) * cout_g] = _exact_matmul(wg, x)
        acc = wrap(acc, acc_bits).reshape(l.out_c, l.out_h, l.out_w)
    elif l.kind == L_FC:
        wt = net.tensors[l.weight].data.astype(np.int64)
        acc = wrap(_exact_matmul(wt, (a - za).reshape(-1, 1)), acc_bits).reshape(l.out_c, 1, 1)
    elif l.kind == L_AVGPOOL:
        acc = sum(_taps(a - za, l, 0))
    elif l.kind == L_GAP:
        acc = (a - za).sum(axis=(1, 2), keepdims=True)
    elif l.kind == L_ADD:
        b = np.asarray(outs[l.inputs[1]], np.int64)
        zb = net.layers[l.inputs[1]].out_zp
        acc = (a - za) * l.add_mul[0] + (b - zb) * l.add_mul[1]
    elif l.kind == L_REQUANT:
        acc = a - za
    elif l.kind == L_MUL:
        b = np.asarray(outs[l.inputs[1]], np.int64) - net.layers[l.inputs[1]].out_zp
        if l.param == MUL_ROWMAX:   # each position's absmax over input 2's channels
            b = np.abs(b).max(axis=0, keepdims=True)
        acc = (a - za) * b
    elif l.kind in (L_LAYERNORM, L_RMSNORM):
        acc = norm_q16(a - za, l.kind == L_LAYERNORM)
        if l.bias >= 0:
            acc = acc + net.tensors[l.bias].data.astype(np.int64).reshape(-1, 1, 1)
    elif l.kind == L_ROPE:   # pairs (i, i + dh/2) of each head rotated by the token's angle
        dh, off = l.param & 0xffff, l.param >> 16
        x = (a - za).reshape(-1, dh, a.shape[1])                  # (heads, dh, T)
        tab = net.tensors[l.weight].data.astype(np.int64)[off:off + a.shape[1]]   # (T, dh/2, 2)
        cs, sn = tab[:, :, 0].T[None], tab[:, :, 1].T[None]     # (1, dh/2, T)
        xa, xb = x[:, :dh // 2], x[:, dh // 2:]
        acc = np.concatenate([xa * cs - xb * sn, xa * sn + xb * cs], axis=1).reshape(a.shape)
    elif l.kind == L_MATMUL:
        b = np.asarray(outs[l.inputs[1]], np.int64) - net.layers[l.inputs[1]].out_zp
        opa = (a - za).transpose(0, 2, 1) if l.param & 1 else a - za
        opb = b.transpose(0, 2, 1) if l.param & 2 else b
        if l.param & 4:      # grouped: each matrix of the smaller operand serves a run of g heads
            heads = max(opa.shape[0], opb.shape[0])
            opa = np.repeat(opa, heads // opa.shape[0], axis=0)
            opb = np.repeat(opb, heads // opb.shape[0], axis=0)
        acc = wrap(np.matmul(opa, opb), acc_bits)
    else:
        raise ValueError("layer %d '%s' (%s) has no accumulator" % (i, l.name, l.kind_name))
    if l.kind in (L_CONV, L_FC) and l.bias >= 0:
        acc = acc + net.tensors[l.bias].data.astype(np.int64).reshape(-1, 1, 1)
    return acc


def layer_accumulators(net: Net, i: int, batch: Sequence[Sequence[np.ndarray]],
                       acc_bits: int = 32) -> np.ndarray:
    """layer_accumulator of layer i for several inputs at once, shape (N, out_c, out_h, out_w);
    batch[n] holds the earlier layers' outputs for input n. An fc layer does one matrix
    product for the whole batch (the same exact sums, the weights converted once, which
    matters for large classifiers); other kinds evaluate input by input."""
    l = net.layers[i]
    if l.kind != L_FC or len(batch) < 2:
        return np.stack([layer_accumulator(net, i, o, acc_bits) for o in batch])
    za = net.layers[l.inputs[0]].out_zp
    x = np.stack([np.asarray(o[l.inputs[0]], np.int64).ravel() - za for o in batch], axis=1)
    acc = wrap(_exact_matmul(np.asarray(net.tensors[l.weight].data, np.int64), x), acc_bits)
    if l.bias >= 0:
        acc = acc + net.tensors[l.bias].data.astype(np.int64).reshape(-1, 1)
    return acc.T.reshape(len(batch), l.out_c, 1, 1)


def eval_layer(net: Net, i: int, outs: Sequence[np.ndarray], acc_bits: int = 32, x=None) -> np.ndarray:
    """Output of layer i (int64, (C, H, W)) given the earlier layers' outputs."""
    l = net.layers[i]
    lo, hi = l.clamp_lo, l.clamp_hi
    if l.kind == L_INPUT:
        v = np.asarray(x)
        if v.size != l.out_c * l.out_h * l.out_w:
            raise ValueError("input has %d values, the net wants %dx%dx%d" % ((v.size,) + l.shape))
        if not np.issubdtype(v.dtype, np.integer):
            if not np.array_equal(v, np.round(v)):
                raise ValueError("input values must be integers")
        v = v.astype(np.int64).reshape(l.shape)
        rlo, rhi = int_range(l.out_bits, l.out_signed)
        if v.size and (v.min() < rlo or v.max() > rhi):
            raise ValueError("input values outside %d..%d" % (rlo, rhi))
        for j, e in enumerate(net.layers):   # token ids index the embedding tables
            if e.kind == L_EMBED and v.size and v.max() >= net.tensors[e.weight].shape[0]:
                raise ValueError("token id %d is not below the vocabulary of %d rows of embed layer %d '%s'"
                                 % (v.max(), net.tensors[e.weight].shape[0], j, e.name))
        return np.clip(v, lo, hi)
    if l.kind in REQUANT_KINDS:
        return layer_requant(l, layer_accumulator(net, i, outs, acc_bits))
    a = np.asarray(outs[l.inputs[0]], np.int64)
    if l.kind == L_MAXPOOL:
        m = np.maximum.reduce(list(_taps(a, l, np.iinfo(np.int64).min)))
        return np.clip(m, lo, hi)
    if l.kind == L_CONCAT:
        return np.clip(np.concatenate([np.asarray(outs[j], np.int64) for j in l.inputs], 0), lo, hi)
    if l.kind == L_ACT:
        return np.clip(a, lo, hi)
    if l.kind == L_FLATTEN:
        return np.clip(a.reshape(-1, 1, 1), lo, hi)
    if l.kind == L_RESHAPE:
        return np.clip(a.reshape(l.shape), lo, hi)
    if l.kind == L_KVCACHE:   # over the prompt: the input itself (decode steps: decode_step)
        return np.clip(a, lo, hi)
    if l.kind == L_LUT:
        t = net.tensors[l.weight].data.astype(np.int64).ravel()
        return np.clip(t[a - int_range(net.layers[l.inputs[0]].out_bits,
                                       net.layers[l.inputs[0]].out_signed)[0]], lo, hi)
    if l.kind == L_SOFTMAX:
        t = net.tensors[l.weight].data.astype(np.int64).ravel()
        axis = l.param % 16
        keep = np.ones(a.shape, bool)
        if l.param & SOFTMAX_CAUSAL:   # keys after query + offset take no part
            off = l.param >> SOFTMAX_OFFSET_SHIFT
            hh = np.arange(a.shape[1]).reshape(1, -1, 1)
            ww = np.arange(a.shape[2]).reshape(1, 1, -1)
            keep = np.broadcast_to(ww <= hh + off if axis == 2 else hh <= ww + off, a.shape)
        mx = np.where(keep, a, np.iinfo(np.int64).min).max(axis=axis, keepdims=True)
        e = np.where(keep, t[np.where(keep, mx - a, 0)], 0)
        s = e.sum(axis=axis, keepdims=True)
        q = (1 << l.out_bits) - 1
        return np.clip(np.where(keep, (e * q + s // 2) // s, 0), lo, hi)
    if l.kind == L_EMBED:     # row id_t of the table is token t's column (plus position row t + param)
        table = net.tensors[l.weight].data.astype(np.int64).reshape(net.tensors[l.weight].shape[:2])
        rows = table[a.reshape(-1)]
        if l.bias >= 0:
            rows = rows + net.tensors[l.bias].data.astype(np.int64)[l.param:l.param + rows.shape[0]]
        return np.clip(rows.T.reshape(l.shape), lo, hi)
    if l.kind == L_ARGMAX:    # np.argmax returns the first (lowest) index of the maximum
        return np.clip(np.argmax(a, axis=0).reshape(l.shape), lo, hi)
    if l.kind == L_DYNQUANT:
        v = a - net.layers[l.inputs[0]].out_zp
        m = np.abs(v).max(axis=0, keepdims=True)
        q = (1 << (l.out_bits - 1)) - 1
        mag = (2 * np.abs(v) * q + m) // np.maximum(2 * m, 1)
        return np.clip(np.where(m > 0, np.sign(v) * mag, 0), lo, hi)
    raise ValueError("layer %d: unknown kind %d" % (i, l.kind))


def norm_q16(x: np.ndarray, layernorm: bool) -> np.ndarray:
    """Normalized values in Q16 over axis 0 (channels) of centered inputs x (C, H, W):
    docs/qbin.md, LAYERNORM / RMSNORM, step by step."""
    n = x.shape[0]
    x = x.astype(np.int64)
    mean = (2 * x.sum(axis=0) + n) // (2 * n) if layernorm else np.zeros(x.shape[1:], np.int64)
    d = x - mean
    v = (d * d).sum(axis=0)
    z = np.zeros_like(d)
    for pos in np.ndindex(*v.shape):
        vv = int(v[pos])
        if vv == 0:
            continue
        g = min(15, (62 - vv.bit_length()) // 2)
        sigma = math.isqrt((vv << (2 * g)) // n)
        num = d[(slice(None),) + pos] * (1 << (NORM_FRAC_BITS + g))
        z[(slice(None),) + pos] = np.sign(num) * ((2 * np.abs(num) + sigma) // (2 * sigma))
    return z


def evaluate(net: Net, x, acc_bits: int = 32) -> List[np.ndarray]:
    """Run the network on input x (integers, C*H*W values) with the integer semantics of
    docs/qbin.md. Returns every layer's output as an int64 array (C, H, W);
    result[net.output] is the network output. acc_bits: conv/fc accumulator width
    (two's complement wrap)."""
    if not 2 <= acc_bits <= 64:
        raise ValueError("acc_bits %d outside 2..64" % acc_bits)
    outs: List[np.ndarray] = []
    for i in range(len(net.layers)):
        outs.append(eval_layer(net, i, outs, acc_bits, x))
    return outs


# ---------------------------------------------------------------------------- decoding

def decode_step(net: Net, caches: dict, x_new, acc_bits: int = 32):
    """One decode step of a network with KVCACHE layers (docs/decode.md), written from the
    document apart from the C code: each layer's step shape is read off the arrays it gets
    (new tokens: the prompt's token axis with its new length; a kvcache: the cached rows of
    `caches[layer]` (C, H, past) then the new ones along W); causal softmax and rope offsets
    advance by `past`. x_new: (C, t, 1) input rows. Returns (outputs of every layer, new caches)."""
    import copy
    past = {int(c.shape[2]) for c in caches.values()}
    if len(past) != 1:
        raise ValueError("caches of different lengths %s" % sorted(past))
    past = past.pop()
    outs: List[np.ndarray] = []
    new_caches = {}
    tok = {}   # the axis (1 H, 2 W) holding the new tokens of each layer's output, None: none
    for i, l0 in enumerate(net.layers):
        l = copy.copy(l0)
        a = np.asarray(outs[l.inputs[0]]) if l.inputs else None
        t_in = tok.get(l.inputs[0]) if l.inputs else None
        tok[i] = t_in
        if l.kind == L_INPUT:
            l.out_h = np.asarray(x_new).size // l.out_c
            tok[i] = 1
        elif l.kind == L_KVCACHE:
            if past + a.shape[2] > l.param:
                raise ValueError("layer %d '%s': a KV cache longer than its maximum: %d > %d"
                                 % (i, l.name, past + a.shape[2], l.param))
            y = np.concatenate([caches[i], a], axis=2)
            new_caches[i] = y
            outs.append(np.clip(y, l.clamp_lo, l.clamp_hi))
            tok[i] = None   # keys: cached + new
            continue
        elif l.kind == L_RESHAPE:
            if t_in == 1:              # (C, X, 1) -> (C1, C / C1, X)
                l.out_h, l.out_w = a.shape[0] // l.out_c, a.shape[1]
                tok[i] = 2
            else:                      # (C1, C2, X) -> (C1 C2, X, 1)
                l.out_h, l.out_w = a.shape[2], 1
                tok[i] = 1
        elif l.kind == L_MATMUL:
            b = np.asarray(outs[l.inputs[1]])
            t_b = tok.get(l.inputs[1])
            l.out_h = a.shape[2] if l.param & 1 else a.shape[1]
            l.out_w = b.shape[1] if l.param & 2 else b.shape[2]
            tok[i] = 1 if t_in == (2 if l.param & 1 else 1) else 2 if t_b == (1 if l.param & 2 else 2) else None
        else:
            if l.kind == L_CONV and (l.kh, l.kw) != (1, 1):
                raise ValueError("layer %d '%s': a convolution over tokens must be 1x1" % (i, l.name))
            l.out_h, l.out_w = a.shape[1], a.shape[2]
            if l.kind == L_SOFTMAX and l.param & SOFTMAX_CAUSAL:
                l.param = (l.param & ((1 << SOFTMAX_OFFSET_SHIFT) - 1)) | \
                    (((l.param >> SOFTMAX_OFFSET_SHIFT) + past) << SOFTMAX_OFFSET_SHIFT)
            elif l.kind == L_ROPE:
                l.param = (l.param & 0xffff) | (((l.param >> 16) + past) << 16)
            elif l.kind == L_EMBED and l.bias >= 0:    # position rows follow the tokens
                l.param += past
        step = Net(net.name)
        step.tensors, step.layers = net.tensors, net.layers[:i] + [l]
        outs.append(eval_layer(step, i, outs, acc_bits, x_new))
    return outs, new_caches


def decode(net: Net, prompt, steps, step_inputs=None, acc_bits: int = 32):
    """The prompt (the file's tokens), then `steps` one-token decode steps. step_inputs:
    (steps, C) rows, or None: each step's input is the last output row before it. Returns
    (the prefill's outputs, [each step's network output])."""
    outs = evaluate(net, prompt, acc_bits)
    caches = {i: outs[i] for i, l in enumerate(net.layers) if l.kind == L_KVCACHE}
    last = outs[net.output]
    results = []
    for k in range(steps):
        row = (np.asarray(step_inputs[k]).reshape(-1, 1, 1) if step_inputs is not None
               else last[:, -1:, :])
        souts, caches = decode_step(net, caches, row, acc_bits)
        last = souts[net.output]
        results.append(last)
    return outs, results


# ---------------------------------------------------------------------------- CLI

def _main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print("usage: qsim_qbin.py info FILE.qbin    (a .qbin's layers; as a module: read, write, evaluate)")
        return 0
    if len(argv) != 3 or argv[1] != "info":
        sys.stderr.write("usage: qsim_qbin.py info FILE.qbin\n")
        return 2
    try:
        net = read(argv[2])
    except (OSError, QbinError) as e:
        sys.stderr.write("%s\n" % e)
        return 1
    print(net.summary())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
