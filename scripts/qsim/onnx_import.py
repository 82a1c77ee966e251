#!/usr/bin/python3
"""Import a quantized ONNX model into a qsim .qbin network.

    onnx_import.py MODEL.onnx -o NET.qbin [--name NAME] [--input-shape C,H,W]
                   [--strict] [--report] [-q]

Accepted (docs/onnx_import.md has the full mapping and the exactness rules):
- ONNX QDQ graphs: QuantizeLinear / DequantizeLinear around Conv, Gemm, MatMul (weights
  from DequantizeLinear of integer initializers, per-tensor or per-axis scales, int32
  biases), with Relu / Clip, MaxPool, AveragePool, GlobalAveragePool, Add, Concat,
  Flatten / Reshape / Squeeze / Unsqueeze / no-op Transpose between them;
- ONNX QOperator graphs: QLinearConv, QLinearMatMul, ConvInteger and MatMulInteger (the
  latter two followed by an int32 bias Add, Cast to float, Mul by the scale and a
  QuantizeLinear), MaxPool on the integer tensor;
- QONNX graphs (domain qonnx.custom_op.general, or finn.custom_op.general): Quant /
  IntQuant at any bit width (weights up to 8 bits, activations up to 16), BipolarQuant
  weights, Trunc (versions 1 and 2), around the same float operators.

Every requantization is checked against the exact real-number rounding of the ONNX graph
on every accumulator value that can reach the unclamped output range (where that range is
enumerable); --report prints the verdict per layer, --strict refuses anything not proved
exact. An unsupported op, attribute or pattern stops the import with one line naming the
node, e.g. "onnx_import: m.onnx: node 'sm' (Softmax): unsupported op", exit status 1.

Needs NumPy and the onnx package (Debian: python3-onnx; scripts/setup-deps --tests installs it).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

try:
    import numpy as np
except ImportError:
    sys.stderr.write("onnx_import: NumPy is missing (Debian: apt-get install python3-numpy)\n")
    sys.exit(1)

from . import qbin as qb  # noqa: E402

PROG = "onnx_import"
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
VERIFY_LIMIT = 1 << 22          # accumulator values enumerated per (layer, multiplier)
SEARCH_LIMIT = 1 << 20          # ... and tried with neighbouring multipliers


class Refused(Exception):
    """The model cannot be imported; the message names the node and the reason."""


# ---------------------------------------------------------------------------- values

@dataclass
class Const:
    """A constant tensor (initializer, Constant, or folded)."""
    v: np.ndarray


@dataclass
class QConst:
    """A quantized constant: real value = scale * (q - zp); scale/zp are per tensor
    (shape ()) or along `axis` (shape (n,))."""
    q: np.ndarray                 # int64
    scale: np.ndarray             # float64
    zp: np.ndarray                # int64
    axis: int                     # -1 per tensor
    bits: int
    signed: bool
    bipolar: bool = False

    def scale_along(self, axis: int, n: int) -> np.ndarray:
        """Scale per index of `axis` (n entries); refuses other layouts."""
        if self.axis < 0 or self.scale.size == 1:
            return np.full(n, float(self.scale.ravel()[0]))
        if self.axis != axis:
            raise ValueError("per-axis scale on axis %d, expected axis %d" % (self.axis, axis))
        return self.scale.astype(np.float64).ravel()

    def zp_along(self, axis: int, n: int) -> np.ndarray:
        if self.axis < 0 or self.zp.size == 1:
            return np.full(n, int(self.zp.ravel()[0]), np.int64)
        if self.axis != axis:
            raise ValueError("per-axis zero point on axis %d, expected axis %d" % (self.axis, axis))
        return self.zp.astype(np.int64).ravel()


@dataclass
class GraphInput:
    name: str
    shape: Tuple[int, ...]        # full ONNX shape, batch first
    elem: int                     # TensorProto element type


@dataclass
class Act:
    """An integer activation tensor held by a qbin layer. real=True: the ONNX value is the
    dequantized float scale * (q - zp) (a DequantizeLinear or QONNX Quant output);
    real=False: the ONNX value is the integer tensor itself. shape: the ONNX shape
    without the batch dimension (a view: Flatten/Reshape do not create layers)."""
    layer: int
    shape: Tuple[int, ...]
    scale: float
    zp: int
    real: bool


@dataclass
class Pending:
    """A float (or int32, before a Cast) value acc_scale[c] * acc that no quantizer has
    consumed yet. acc is the integer accumulator of `kind` (conv, fc, gap, avgpool, add,
    requant, concat) on the source activations, plus `bias` (accumulator units)."""
    kind: str
    node: object
    srcs: List[Act]
    shape: Tuple[int, ...]
    channels: int
    acc_scale: List[Fraction] = field(default_factory=list)   # per channel
    int_state: bool = False                                    # ConvInteger/MatMulInteger before Cast
    weight: Optional[np.ndarray] = None                        # int64 [Cout][...] (zero point removed)
    wbits: int = 8
    wsigned: bool = True
    w_scale: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None                          # int64 [C] in accumulator units
    geo: dict = field(default_factory=dict)
    lo: Optional[Fraction] = None                              # fused Relu/Clip (real units)
    hi: Optional[Fraction] = None
    act: Optional[str] = None
    notes: List[str] = field(default_factory=list)


@dataclass
class OutQ:
    """How a quantizer maps the real value to its integer: y = zp + R(v / step), then the
    clamp [qmin, qmax]; step is the quantizer's scale (times 2^t for a Trunc)."""
    step: Fraction
    zp: int
    bits: int
    signed: bool
    qmin: int
    qmax: int
    rounding: str                 # ROUND (half to even), HALF_UP, FLOOR, CEIL
    scale: float                  # the output tensor's scale (qbin out_scale)
    node: object = None


# ---------------------------------------------------------------------------- helpers

def node_label(node) -> str:
    return "node '%s' (%s)" % (node.name or (node.output[0] if node.output else "?"), node.op_type)


def refuse(node, msg: str):
    raise Refused("%s: %s" % (node_label(node), msg))


def frac(x) -> Fraction:
    return Fraction(float(x))


def round_frac(v: Fraction, mode: str) -> int:
    """Exact rounding of a rational to an integer."""
    fl = v.numerator // v.denominator
    rem = v - fl
    if mode == "FLOOR":
        return fl
    if mode == "CEIL":
        return fl + (1 if rem else 0)
    if rem > Fraction(1, 2):
        return fl + 1
    if rem < Fraction(1, 2):
        return fl
    if mode == "HALF_UP":                      # QONNX HALF_UP: half away from zero
        return fl + 1 if v > 0 else fl
    return fl + (fl & 1)                       # ROUND: half to even


def round_array(v: np.ndarray, mode: str) -> np.ndarray:
    """Rounding of float64 values (weights, biases): modes of QONNX."""
    if mode in ("ROUND", "HALF_EVEN"):
        return np.rint(v)
    if mode == "FLOOR":
        return np.floor(v)
    if mode == "CEIL":
        return np.ceil(v)
    if mode == "UP":
        return np.sign(v) * np.ceil(np.abs(v))
    if mode == "DOWN":
        return np.trunc(v)
    if mode == "HALF_UP":
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(v) * np.ceil(np.abs(v) - 0.5)
    raise ValueError(mode)


def requant_params(m: Fraction, amax: float) -> Tuple[int, int]:
    """(M0, shift) for the real multiplier m > 0 applied to accumulators |x| <= amax.
    Picks the representation with the smallest worst-case error: shift <= 0 rounds once
    (srdhm); shift > 0 rounds twice (srdhm, then rdivpot), which adds up to 2^-(shift+1)."""
    if m >= 1:
        k = max(1, math.frexp(float(m))[1])
        while True:
            m0 = round(m * 2 ** (31 - k))
            if m0 < 2 ** 31:
                break
            k += 1
        if k > 31:
            raise ValueError("multiplier %.6g too large" % float(m))
        return int(m0), -k
    best = None
    for s in range(0, 32):
        m0 = round(m * 2 ** (31 + s))
        if m0 >= 2 ** 31:
            break
        if m0 == 0:
            continue
        err = float(amax) * abs(float(m - Fraction(m0, 2 ** (31 + s))))
        if s > 0:
            err += 2.0 ** -(s + 1)
        if best is None or err < best[0]:
            best = (err, int(m0), s)
    if best is None:
        raise ValueError("multiplier %.3g underflows (below 2^-62)" % float(m))
    return best[1], best[2]


def reference_round(acc: np.ndarray, m: Fraction, mode: str) -> np.ndarray:
    """R(acc * m) exactly for int64 acc: float64 where safely away from the rounding
    boundary, exact rational arithmetic for the few values near it."""
    v = acc.astype(np.float64) * float(m)
    if mode in ("FLOOR", "CEIL"):
        base = np.floor(v) if mode == "FLOOR" else np.ceil(v)
        near = np.abs(v - np.rint(v)) < 1e-6 * np.maximum(1.0, np.abs(v))
    else:
        base = np.rint(v) if mode == "ROUND" else np.sign(v) * np.floor(np.abs(v) + 0.5)
        near = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-6 * np.maximum(1.0, np.abs(v))
    out = base.astype(np.int64)
    for i in np.flatnonzero(near):
        out[i] = round_frac(int(acc[i]) * m, mode)
    return out


def pick_requant(m: Fraction, amax: float, a_lo: int, a_hi: int, zp: int, lo: int, hi: int,
                 offset: int, mode: str):
    """(M0, shift, values checked, values differing, unverified) for the exact multiplier m on
    accumulators a_lo..a_hi: the output y = clamp(zp + R(acc * m), lo, hi) of the ONNX
    semantics against qbin's requant(acc + offset). Among M0 and its neighbours the one
    with the fewest differences is kept (the rounded multiplier is off by up to 2^-32, so
    values within that of a rounding boundary may round the other way)."""
    m0, sh = requant_params(m, amax)
    u_lo = math.floor((lo - zp - 1) / m) - 1
    u_hi = math.ceil((hi - zp + 1) / m) + 1
    r_lo, r_hi = max(a_lo, u_lo), min(a_hi, u_hi)
    if r_lo > r_hi:
        return m0, sh, 0, (0, 0), False
    n = r_hi - r_lo + 1
    if n > VERIFY_LIMIT:
        return m0, sh, 0, (0, 0), True
    acc = np.arange(r_lo, r_hi + 1, dtype=np.int64)
    ref = np.clip(zp + reference_round(acc, m, mode), lo, hi)
    bad0 = np.flatnonzero(qb.requantize(acc + offset, m0, sh, zp, lo, hi) != ref)
    best = (bad0, m0)
    if bad0.size and n <= SEARCH_LIMIT:
        # the candidates (M0 +- 1, 2) can only disagree where acc * m is near a rounding
        # boundary; evaluate them there, elsewhere they give what M0 gives
        v = (acc + offset).astype(np.float64) * float(m)
        dist = np.abs(v - np.floor(v) - 0.5)
        thr = np.abs(acc + offset) * 3.0 * 2.0 ** (-31 - sh) + (2.0 ** -(sh + 1) if sh > 0 else 0.0) + 1e-9
        sub = np.flatnonzero(dist < thr)
        outside = np.setdiff1d(bad0, sub, assume_unique=True)
        for d in (-1, 1, -2, 2):
            cand = m0 + d
            if not 0 < cand < 2 ** 31:
                continue
            bad = np.concatenate([outside, sub[qb.requantize(acc[sub] + offset, cand, sh, zp, lo, hi) != ref[sub]]])
            if bad.size < best[0].size:
                best = (np.sort(bad), cand)
            if bad.size == 0:
                break
    bad, m0 = best
    halves = sum(1 for i in bad if (2 * int(acc[i]) * m).denominator == 1)
    return m0, sh, n, (bad.size, halves), False


def sanitize(name: str) -> str:
    s = "".join(c if 0x20 <= ord(c) <= 0x7e else "_" for c in name).strip("/").strip()
    return s or "layer"


def np_dtype(elem: int):
    import onnx
    if hasattr(onnx.helper, "tensor_dtype_to_np_dtype"):
        return onnx.helper.tensor_dtype_to_np_dtype(elem)
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[elem]


INT_TYPES = {2: (8, False), 3: (8, True), 4: (16, False), 5: (16, True), 6: (32, True)}  # UINT8 INT8 UINT16 INT16 INT32
FLOAT_TYPES = (1, 10, 11)

# Attributes each op accepts (anything else is refused by name).
CONV_ATTRS = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}
ATTRS = {
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints"},
    "Identity": set(), "Dropout": {"seed"}, "Cast": {"to", "saturate"},
    "Reshape": {"allowzero"}, "Flatten": {"axis"}, "Squeeze": {"axes"}, "Unsqueeze": {"axes"},
    "Transpose": {"perm"}, "Concat": {"axis"}, "Gather": {"axis"}, "Slice": set(),
    "Shape": {"start", "end"}, "ConstantOfShape": {"value"},
    "Add": set(), "Sub": set(), "Mul": set(), "Div": set(), "Neg": set(),
    "QuantizeLinear": {"axis", "saturate"}, "DequantizeLinear": {"axis"},
    "Conv": CONV_ATTRS, "QLinearConv": CONV_ATTRS, "ConvInteger": CONV_ATTRS,
    "Gemm": {"alpha", "beta", "transA", "transB"}, "MatMul": set(), "QLinearMatMul": set(),
    "MatMulInteger": set(), "Relu": set(), "Clip": {"min", "max"},
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                    "strides"},
    "GlobalAveragePool": set(), "GlobalMaxPool": set(), "Pad": {"mode", "pads", "value"},
    # QONNX
    "Quant": {"signed", "narrow", "rounding_mode"}, "IntQuant": {"signed", "narrow", "rounding_mode"},
    "BipolarQuant": set(), "Trunc": {"rounding_mode", "signed", "narrow"},
}
QONNX_OPS = ("Quant", "IntQuant", "BipolarQuant", "Trunc")
FOLDABLE = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
            "Gather", "Slice", "Shape", "ConstantOfShape", "Add", "Sub", "Mul", "Div", "Neg",
            "QuantizeLinear", "Relu", "Clip"}


# ---------------------------------------------------------------------------- importer

class Importer:
    def __init__(self, model, where: str, name: Optional[str] = None, input_shape=None,
                 strict: bool = False):
        self.model = model
        self.g = model.graph
        self.where = where
        self.strict = strict
        self.vals: Dict[str, object] = {}
        self.warnings: List[str] = []
        self.report: List[str] = []
        self.used_names: set = set()
        self.opset = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
        self.input_shape = input_shape
        self.input_act: Optional[Act] = None
        self.consumers: Dict[str, list] = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        stem = os.path.splitext(os.path.basename(where))[0]
        self.net = qb.Net(sanitize(name or self.g.name or stem)[:47])
        self.forms = set()
        self.extra_pads: Dict[str, Tuple[int, int, int, int]] = {}
        self.inferred = {}
        for vi in list(self.g.value_info) + list(self.g.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape") and dims and all(d.HasField("dim_value") for d in dims[1:]):
                self.inferred[vi.name] = (1,) + tuple(d.dim_value for d in dims[1:])

    # ---- bookkeeping
    def warn(self, node, msg: str):
        text = "%s: %s" % (node_label(node), msg) if node is not None else msg
        if self.strict:
            raise Refused(text + " (refused by --strict)")
        self.warnings.append(text)

    def layer_name(self, base: str) -> str:
        s = sanitize(base)[:40]
        n, k = s, 2
        while n in self.used_names:
            n = "%s_%d" % (s, k)
            k += 1
        self.used_names.add(n)
        return n

    def get(self, node, i: int, optional: bool = False):
        if i >= len(node.input) or node.input[i] == "":
            if optional:
                return None
            refuse(node, "input %d is missing" % i)
        name = node.input[i]
        if name not in self.vals:
            refuse(node, "input '%s' is not produced by any earlier node, initializer or graph input"
                   % name)
        return self.vals[name]

    def const(self, node, i: int, optional: bool = False, what: str = "input") -> Optional[np.ndarray]:
        v = self.get(node, i, optional)
        if v is None:
            return None
        if not isinstance(v, Const):
            refuse(node, "%s %d ('%s') must be a constant" % (what, i, node.input[i]))
        return v.v

    def scalar(self, node, i: int, what: str, optional: bool = False, default=None):
        v = self.const(node, i, optional)
        if v is None:
            return default
        if v.size != 1:
            refuse(node, "%s must be a single value (per-tensor), got shape %s" % (what, list(v.shape)))
        return v.ravel()[0]

    def layer(self, a: Act) -> qb.Layer:
        return self.net.layers[a.layer]

    def chw(self, node, a: Act, what: str = "input") -> Tuple[int, int, int]:
        l = self.layer(a)
        if tuple(a.shape) != l.shape:
            refuse(node, "%s of shape %s is a reshaped view of a %dx%dx%d tensor; only (C,H,W) "
                   "tensors feed this op" % (what, list((1,) + tuple(a.shape)), *l.shape))
        return l.shape

    def act_range(self, a: Act) -> Tuple[int, int]:
        l = self.layer(a)
        return l.clamp_lo, l.clamp_hi

    # ---- driver
    def run(self) -> qb.Net:
        from onnx import numpy_helper
        for t in self.g.initializer:
            try:
                self.vals[t.name] = Const(numpy_helper.to_array(t))
            except Exception as e:  # external data missing, bad type...
                raise Refused("initializer '%s': cannot be read (%s)" % (t.name, str(e).splitlines()[0]))
        for t in self.g.sparse_initializer:
            raise Refused("sparse initializer '%s': unsupported" % t.values.name)
        ins = [i for i in self.g.input if i.name not in self.vals]
        if len(ins) != 1:
            raise Refused("the graph has %d inputs (besides initializers); qbin networks have one: %s"
                          % (len(ins), ", ".join(i.name for i in ins) or "none"))
        gi = ins[0]
        tt = gi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if self.input_shape is not None:
            dims = [1] + list(self.input_shape)
        if len(dims) not in (2, 4) or any(d < 1 for d in dims[1:]):
            raise Refused("graph input '%s': shape %s; need [N,C,H,W] or [N,K] with known sizes "
                          "(give --input-shape C,H,W)" % (gi.name, dims))
        if dims[0] not in (1, -1):
            raise Refused("graph input '%s': batch size %d; qbin networks take one input (batch 1)"
                          % (gi.name, dims[0]))
        self.vals[gi.name] = GraphInput(gi.name, tuple([1] + dims[1:]), tt.elem_type)
        for node in self.g.node:
            self.node(node)
        if len(self.g.output) != 1:
            raise Refused("the graph has %d outputs; a qbin network has one" % len(self.g.output))
        out = self.g.output[0].name
        v = self.vals.get(out)
        if isinstance(v, Pending):
            v = self.emit_float_output(v)
        if not isinstance(v, Act):
            raise Refused("graph output '%s' is not computed from the input" % out)
        self.net.output = v.layer
        try:
            self.net.validate(self.where)
        except (qb.QbinError, ValueError) as e:
            raise Refused("the imported network is invalid: %s" % e)
        return self.net

    def node(self, node):
        op = node.op_type
        screen_node(node)
        import onnx
        at = {}
        for a in node.attribute:
            v = onnx.helper.get_attribute_value(a)
            at[a.name] = v.decode() if isinstance(v, bytes) else v
        ins = [self.vals.get(i) if i else None for i in node.input]
        for k, i in enumerate(node.input):
            if i and i not in self.vals:
                refuse(node, "input '%s' is not produced by any earlier node, initializer or graph "
                       "input" % i)
        if op == "Constant":
            return self.set(node, Const(self.constant_value(node, at)))
        if op in FOLDABLE and ins and all(x is None or isinstance(x, Const) for x in ins):
            return self.set(node, Const(self.fold(node, [x.v if x is not None else None for x in ins], at)))
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            refuse(node, "unsupported op on a non-constant input")
        result = handler(node, at)
        self.set(node, result)

    def set(self, node, value):
        outs = [o for o in node.output if o]
        if node.op_type == "Dropout" and len(outs) > 1 and self.consumers.get(outs[1]):
            refuse(node, "its mask output is used")
        if node.op_type == "MaxPool" and len(outs) > 1:
            refuse(node, "the Indices output is unsupported")
        if outs:
            self.vals[outs[0]] = value
            want = self.inferred.get(outs[0])
            if want is not None and isinstance(value, (Act, Pending)) and node.op_type != "Pad":
                have = (1,) + tuple(value.shape)
                if tuple(want) != have:
                    refuse(node, "output shape %s differs from ONNX shape inference %s" % (list(have), list(want)))

    # ---- constants
    def constant_value(self, node, at) -> np.ndarray:
        from onnx import numpy_helper
        if "value" in at:
            return numpy_helper.to_array(at["value"])
        if "value_float" in at:
            return np.array(at["value_float"], np.float32)
        if "value_floats" in at:
            return np.array(at["value_floats"], np.float32)
        if "value_int" in at:
            return np.array(at["value_int"], np.int64)
        if "value_ints" in at:
            return np.array(at["value_ints"], np.int64)
        refuse(node, "no value attribute")

    def fold(self, node, v: list, at) -> np.ndarray:
        op = node.op_type
        try:
            if op == "Identity":
                return v[0]
            if op == "Cast":
                return v[0].astype(np_dtype(at["to"]))
            if op == "Reshape":
                return v[0].reshape(self.reshape_target(node, v[0].shape, v[1], at))
            if op == "Flatten":
                ax = at.get("axis", 1)
                ax = ax + v[0].ndim if ax < 0 else ax
                return v[0].reshape(int(np.prod(v[0].shape[:ax], dtype=np.int64)), -1)
            if op == "Squeeze":
                axes = at.get("axes", None) if len(v) < 2 or v[1] is None else list(v[1])
                return np.squeeze(v[0], axis=None if axes is None else tuple(int(a) for a in axes))
            if op == "Unsqueeze":
                axes = at["axes"] if len(v) < 2 or v[1] is None else [int(a) for a in v[1]]
                out = v[0]
                nd = out.ndim + len(axes)
                for a in sorted((a + nd if a < 0 else a) for a in axes):
                    out = np.expand_dims(out, a)
                return out
            if op == "Transpose":
                return np.transpose(v[0], at.get("perm", None))
            if op == "Concat":
                return np.concatenate([x for x in v if x is not None], axis=at["axis"])
            if op == "Gather":
                return np.take(v[0], v[1].astype(np.int64), axis=at.get("axis", 0))
            if op == "Slice":
                data, starts, ends = v[0], v[1], v[2]
                axes = v[3] if len(v) > 3 and v[3] is not None else np.arange(len(starts))
                steps = v[4] if len(v) > 4 and v[4] is not None else np.ones(len(starts), np.int64)
                sl = [slice(None)] * data.ndim
                for s, e, a, st in zip(starts, ends, axes, steps):
                    sl[int(a)] = slice(int(s), int(e), int(st))
                return data[tuple(sl)]
            if op == "Shape":
                s = np.array(v[0].shape, np.int64)
                return s[at.get("start", 0):at.get("end", None)]
            if op == "ConstantOfShape":
                from onnx import numpy_helper
                val = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
                return np.full(tuple(int(d) for d in v[0]), val.ravel()[0], val.dtype)
            if op in ("Add", "Sub", "Mul", "Div"):
                a, b = v[0], v[1]
                if op == "Add":
                    return (a + b).astype(a.dtype)
                if op == "Sub":
                    return (a - b).astype(a.dtype)
                if op == "Mul":
                    return (a * b).astype(a.dtype)
                if np.issubdtype(a.dtype, np.integer):
                    return np.trunc(a / b).astype(a.dtype)
                return (a / b).astype(a.dtype)
            if op == "Neg":
                return -v[0]
            if op == "Relu":
                return np.maximum(v[0], 0).astype(v[0].dtype)
            if op == "Clip":
                lo = at.get("min", None) if len(v) < 2 or v[1] is None else v[1]
                hi = at.get("max", None) if len(v) < 3 or v[2] is None else v[2]
                out = v[0]
                if lo is not None:
                    out = np.maximum(out, lo)
                if hi is not None:
                    out = np.minimum(out, hi)
                return out.astype(v[0].dtype)
            if op == "QuantizeLinear":
                x, s = v[0].astype(np.float32), v[1].astype(np.float32)
                zp = v[2] if len(v) > 2 and v[2] is not None else np.zeros((), np.uint8)
                ax = at.get("axis", 1)
                if s.size > 1:
                    shp = [1] * x.ndim
                    shp[ax] = -1
                    s, zpb = s.reshape(shp), zp.reshape(shp).astype(np.int64)
                else:
                    zpb = zp.astype(np.int64).ravel()[0]
                bits, sg = INT_TYPES[{np.dtype(np.uint8): 2, np.dtype(np.int8): 3}[zp.dtype]]
                lo, hi = qb.int_range(bits, sg)
                return np.clip(np.rint(x / s) + zpb, lo, hi).astype(zp.dtype)
        except Refused:
            raise
        except Exception as e:
            refuse(node, "cannot evaluate on constants (%s)" % str(e).splitlines()[0])
        refuse(node, "unsupported op on constants")

    def reshape_target(self, node, shape, target, at) -> List[int]:
        t = [int(x) for x in np.asarray(target).ravel()]
        if not at.get("allowzero", 0):
            t = [shape[i] if x == 0 else x for i, x in enumerate(t)]
        return t

    # ---- graph input
    def input_layer(self, node, bits: int, signed: bool, zp: int, scale: float, lo: int, hi: int) -> Act:
        gi = self.get(node, 0)
        shape = gi.shape[1:]
        if self.input_act is not None:
            l = self.layer(self.input_act)
            if (l.out_bits, l.out_signed, l.out_zp, l.clamp_lo, l.clamp_hi) != (bits, signed, zp, lo, hi) \
                    or not (self.input_act.scale == scale or scale == 0):
                refuse(node, "the graph input is quantized twice with different parameters")
            return self.input_act
        c, h, w = (shape + (1, 1))[:3] if len(shape) == 1 else shape
        self.net.input(self.layer_name(gi.name), c, h, w, bits=bits, signed=signed, zp=zp,
                       scale=scale, clamp=(lo, hi))
        self.input_act = Act(0, tuple(shape), scale, zp, True)
        return self.input_act

    def check_input_consumers(self, node, gi: GraphInput):
        for c in self.consumers.get(gi.name, []):
            if c.op_type not in ("QuantizeLinear", "Quant", "IntQuant", "DequantizeLinear", "QLinearConv",
                                 "QLinearMatMul", "ConvInteger", "MatMulInteger"):
                refuse(c, "uses the graph input '%s' directly; the input must go through a quantizer"
                       % gi.name)

    def int_input(self, node, zp: int, scale: float) -> Act:
        """An integer graph input (QOperator models): becomes the input layer on first use."""
        gi = self.get(node, 0)
        if gi.elem not in (2, 3):
            refuse(node, "graph input '%s' must be uint8 or int8" % gi.name)
        bits, sg = INT_TYPES[gi.elem]
        lo, hi = qb.int_range(bits, sg)
        self.check_input_consumers(node, gi)
        a = self.input_layer(node, bits, sg, zp, scale, lo, hi)
        return Act(a.layer, a.shape, scale or a.scale, zp, False)

    # ---- quantization parameters
    def q_params(self, node, si: int, zi: int, at, per_axis_ok: bool):
        """(scale array, zp array, axis, bits, signed) of Quantize/DequantizeLinear-style inputs."""
        s = self.const(node, si, what="scale").astype(np.float64)
        zv = self.get(node, zi, optional=True)
        if zv is None:
            z = np.zeros(s.shape, np.int64)
            bits, sg = 8, False
        else:
            if not isinstance(zv, Const):
                refuse(node, "zero point must be a constant")
            zt = zv.v
            if zt.dtype == np.uint8:
                bits, sg = 8, False
            elif zt.dtype == np.int8:
                bits, sg = 8, True
            elif zt.dtype == np.int32:
                bits, sg = 32, True
            else:
                refuse(node, "zero point type %s is unsupported (uint8, int8, int32)" % zt.dtype)
            z = zt.astype(np.int64)
        if not (np.isfinite(s).all() and (s > 0).all()):
            refuse(node, "scale must be finite and > 0")
        axis = -1
        if s.size > 1:
            if not per_axis_ok:
                refuse(node, "per-axis scales on an activation are unsupported (one scale per tensor)")
            axis = at.get("axis", 1)
            if z.size not in (1, s.size):
                refuse(node, "zero point and scale sizes differ")
        elif s.ndim > 1 and s.size == 1:
            s = s.reshape(())
        return s.reshape(-1) if s.size > 1 else s.reshape(()), \
            (z.reshape(-1) if z.size > 1 else z.reshape(())), axis, bits, sg

    # ---- QuantizeLinear / DequantizeLinear
    def op_QuantizeLinear(self, node, at):
        if at.get("saturate", 1) != 1:
            refuse(node, "unsupported attribute 'saturate' = %d" % at["saturate"])
        x = self.get(node, 0)
        s, z, axis, bits, sg = self.q_params(node, 1, 2, at, per_axis_ok=False)
        if bits > 16:
            refuse(node, "%d-bit activations are unsupported (up to 16)" % bits)
        lo, hi = qb.int_range(bits, sg)
        zp, scale = int(z), float(s)
        if isinstance(x, GraphInput):
            if x.elem not in FLOAT_TYPES:
                refuse(node, "graph input must be float")
            self.check_input_consumers(node, x)
            self.forms.add("QDQ")
            a = self.input_layer(node, bits, sg, zp, scale, lo, hi)
            return Act(a.layer, a.shape, scale, zp, False)
        out = OutQ(frac(scale), zp, bits, sg, lo, hi, "ROUND", scale, node)
        return self.quantize(node, x, out, real_out=False)

    def op_DequantizeLinear(self, node, at):
        x = self.get(node, 0)
        if isinstance(x, Const):
            s, z, axis, bits, sg = self.q_params(node, 1, 2, at, per_axis_ok=True)
            q = x.v
            if not np.issubdtype(q.dtype, np.integer):
                refuse(node, "input must be an integer tensor")
            bits, sg = {np.dtype(np.uint8): (8, False), np.dtype(np.int8): (8, True),
                        np.dtype(np.int32): (32, True)}.get(q.dtype, (0, False))
            if not bits:
                refuse(node, "input type %s is unsupported (uint8, int8, int32)" % q.dtype)
            if axis < 0 and s.size == 1:
                axis = -1
            elif axis < 0:
                axis += q.ndim
            if axis >= 0 and (axis >= q.ndim or q.shape[axis] != s.size):
                refuse(node, "per-axis scale of %d entries does not match axis %d of %s"
                       % (s.size, axis, list(q.shape)))
            return QConst(q.astype(np.int64), s, z, axis, bits, sg)
        s, z, axis, bits, sg = self.q_params(node, 1, 2, at, per_axis_ok=False)
        zp, scale = int(z), float(s)
        if isinstance(x, GraphInput):
            a = self.int_input(node, zp, scale)
            return Act(a.layer, a.shape, scale, zp, True)
        if isinstance(x, Act) and not x.real:
            l = self.layer(x)
            if zp != l.out_zp:
                refuse(node, "zero point %d differs from its tensor's %d" % (zp, l.out_zp))
            if (bits, sg) != (8, l.out_signed) and l.out_bits <= 8:
                refuse(node, "input type does not match the quantized tensor")
            return Act(x.layer, x.shape, scale, zp, True)
        refuse(node, "input is not a quantized tensor")

    # ---- the common quantizer: Pending / Act -> Act
    def quantize(self, node, x, out: OutQ, real_out: bool) -> Act:
        if isinstance(x, Act):
            if not x.real:
                refuse(node, "input is an integer tensor, not a float")
            l = self.layer(x)
            if frac(x.scale) == out.step and x.zp == out.zp:
                # same grid: the integers pass through, only the range may narrow
                lo, hi = max(l.clamp_lo, out.qmin), min(l.clamp_hi, out.qmax)
                if lo > hi:
                    refuse(node, "the quantizer's range does not meet its input's")
                if (lo, hi) == (l.clamp_lo, l.clamp_hi):
                    return Act(x.layer, x.shape, out.scale, out.zp, real_out)
                return self.act_layer(node, x, lo, hi, out.bits, out.signed, real_out, out.scale)
            c = l.out_c
            x = Pending("requant", node, [x], x.shape, c, acc_scale=[frac(x.scale)] * c)
        if isinstance(x, GraphInput):
            refuse(node, "quantizes the graph input a second time")
        if not isinstance(x, Pending):
            refuse(node, "input is not computed from the graph input by supported ops")
        if x.int_state:
            refuse(node, "input is an int32 accumulator; Cast it to float and scale it first")
        return self.emit(x, out, real_out)

    def act_layer(self, node, x: Act, lo: int, hi: int, bits=None, signed=None, real=True, scale=None,
                  act="clip") -> Act:
        l = self.layer(x)
        bits = l.out_bits if bits is None else bits
        signed = l.out_signed if signed is None else signed
        rlo, rhi = qb.int_range(bits, signed)
        lo, hi = max(lo, rlo), min(hi, rhi)
        if lo > hi:
            refuse(node, "clamp leaves no value")
        idx = self.net.act(self.layer_name(node.name or node.op_type), x.layer, act="clip", clamp=(lo, hi),
                           bits=bits, signed=signed)
        L = self.net.layers[idx]
        L.act = qb.ACT_RELU if act == "relu" else qb.ACT_CLIP
        return Act(idx, x.shape, x.scale if scale is None else scale, x.zp, real)

    # ---- emission of a pending accumulator
    def emit(self, p: Pending, out: OutQ, real_out: bool) -> Act:
        node = out.node
        p = replace(p)                        # as_depthwise may rewrite it; others may share it
        c = p.channels
        # fused Relu/Clip -> integer clamp (rounding is monotone, so it commutes)
        lo, hi = out.qmin, out.qmax
        if p.lo is not None:
            lo = max(lo, out.zp + round_frac(p.lo / out.step, out.rounding))
        if p.hi is not None:
            hi = min(hi, out.zp + round_frac(p.hi / out.step, out.rounding))
        if lo > hi:
            refuse(node, "the clamp leaves no value in the output range")
        name = self.layer_name(p.node.name or p.node.op_type)
        outq = dict(bits=out.bits, signed=out.signed, zp=out.zp, scale=out.scale,
                    act=p.act if p.act in ("relu", "clip") else None, clamp=(lo, hi))
        if out.rounding not in ("ROUND", "HALF_UP", "FLOOR", "CEIL"):
            refuse(node, "unsupported attribute 'rounding_mode' = '%s' on an activation" % out.rounding)
        if p.kind in ("add", "concat"):
            if out.rounding in ("FLOOR", "CEIL"):
                refuse(node, "rounding_mode '%s' after %s is not expressible" % (out.rounding, p.kind))
            if p.kind == "concat":
                return self.emit_concat(p, out, lo, hi, real_out, name)
            return self.emit_add(p, out, lo, hi, real_out, name, outq)
        mults = [a / out.step for a in p.acc_scale]                      # exact multipliers
        if min(mults) <= 0:
            refuse(node, "scale product must be > 0")
        # directed rounding via an accumulator offset: floor(a*m) = round_half_up((a - n//2) * m)
        # when 1/m = n is an integer (ceil: offset n - 1 - n//2)
        offset = 0
        if out.rounding in ("FLOOR", "CEIL"):
            invs = set(1 / m for m in mults)
            if len(invs) != 1 or next(iter(invs)).denominator != 1:
                refuse(node, "rounding_mode '%s' is only expressible when the requantization divides "
                       "by an integer (multiplier %.6g)" % (out.rounding, float(mults[0])))
            n = int(next(iter(invs)))
            offset = -(n // 2) if out.rounding == "FLOOR" else n - 1 - n // 2
        kind = p.kind
        if offset and kind in ("gap", "avgpool", "requant"):
            kind = self.as_depthwise(p)
        # accumulator bounds per channel (the ONNX value is R(acc * m); qbin requantizes acc + offset)
        acc_lo, acc_hi = self.acc_bounds(p, kind)
        bias = None
        if kind in ("conv", "fc"):
            pb = p.bias if p.bias is not None else np.zeros(c, np.int64)
            acc_lo, acc_hi = acc_lo + pb, acc_hi + pb
            bias = pb + offset
            if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
                refuse(node, "bias does not fit int32")
            bound = int(max(np.abs(acc_lo).max(), np.abs(acc_hi).max())) + abs(offset)
            if bound > INT32_MAX:
                self.warn(p.node, "the accumulator may exceed int32 (bound %d); qbin wraps or saturates "
                          "where ONNX computes in float" % bound)
        # one (M0, shift) per channel, checked on every accumulator value that reaches the
        # unclamped range (beyond it the output only clamps)
        span = max(abs(lo - out.zp), abs(hi - out.zp)) + 1
        mult, shift = [], []
        checked, diff = 0, [0, 0]
        unverified = False
        memo = {}
        for ch in range(c):
            a_lo, a_hi = int(acc_lo[ch]), int(acc_hi[ch])
            key = (mults[ch], a_lo, a_hi)
            if key not in memo:
                amax = min(float(span / mults[ch]), float(max(abs(a_lo), abs(a_hi))) + abs(offset) + 1)
                try:
                    memo[key] = pick_requant(mults[ch], amax, a_lo, a_hi, out.zp, lo, hi, offset, out.rounding)
                except ValueError as e:
                    refuse(node, str(e))
            m0, sh, n, nd, unv = memo[key]
            mult.append(m0)
            shift.append(sh)
            checked += n
            diff = [diff[0] + nd[0], diff[1] + nd[1]]
            unverified |= unv
        if len(set(zip(mult, shift))) == 1:
            mult, shift = mult[:1], shift[:1]
        rq = dict(mult=mult, shift=shift)
        src = p.srcs[0].layer
        try:
            if kind == "conv":
                g = p.geo
                idx = self.net.conv(name, src, p.weight, bias, stride=g["stride"], pad=g["pads"],
                                    dilation=g["dil"], groups=g["group"], wbits=p.wbits, wsigned=p.wsigned,
                                    w_scale=p.w_scale, **outq, **rq)
            elif kind == "fc":
                idx = self.net.fc(name, src, p.weight, bias, wbits=p.wbits, wsigned=p.wsigned,
                                  w_scale=p.w_scale, **outq, **rq)
            elif kind == "gap":
                idx = self.net.gap(name, src, **outq, **rq)
            elif kind == "avgpool":
                g = p.geo
                idx = self.net.avgpool(name, src, g["kernel"], g["stride"], g["pads"], **outq, **rq)
            elif kind == "requant":
                idx = self.net.requant(name, src, **outq, **rq)
            else:
                refuse(node, "internal: unknown pending kind %s" % kind)
        except (ValueError, qb.QbinError) as e:
            refuse(p.node, str(e))
        self.record(idx, self.net.layers[idx], checked, diff, unverified, p.node, out.rounding)
        return Act(idx, p.shape, out.scale, out.zp, real_out)

    def as_depthwise(self, p: Pending) -> str:
        """gap / avgpool / requant as a depthwise conv with all-ones weights (same
        accumulator), so that a constant offset can go in its bias."""
        src = self.layer(p.srcs[0])
        c = src.out_c
        if p.kind == "gap":
            kh, kw, stride, pads = src.out_h, src.out_w, (1, 1), (0, 0, 0, 0)
        elif p.kind == "avgpool":
            (kh, kw), stride, pads = p.geo["kernel"], p.geo["stride"], p.geo["pads"]
        else:
            kh, kw, stride, pads = 1, 1, (1, 1), (0, 0, 0, 0)
        p.weight = np.ones((c, 1, kh, kw), np.int64)
        p.wbits, p.wsigned, p.w_scale = 2, True, None
        p.geo = dict(stride=stride, pads=pads, dil=(1, 1), group=c)
        p.bias = np.zeros(c, np.int64)
        p.kind = "conv"
        return "conv"

    def acc_bounds(self, p: Pending, kind: str) -> Tuple[np.ndarray, np.ndarray]:
        """Smallest and largest accumulator (without bias) per channel, from the input ranges."""
        c = p.channels
        a = p.srcs[0]
        alo, ahi = self.act_range(a)
        dlo, dhi = alo - a.zp, ahi - a.zp
        if kind in ("conv", "fc"):
            w = p.weight.reshape(c, -1).astype(np.int64)
            lo = np.minimum(w * dlo, w * dhi).sum(1)
            hi = np.maximum(w * dlo, w * dhi).sum(1)
            return lo, hi
        if kind == "gap":
            l = self.layer(a)
            n = l.out_h * l.out_w
        elif kind == "avgpool":
            n = p.geo["kernel"][0] * p.geo["kernel"][1]
        elif kind == "requant":
            n = 1
        else:
            return np.zeros(c, np.int64), np.zeros(c, np.int64)
        return np.full(c, n * dlo, np.int64), np.full(c, n * dhi, np.int64)

    def record(self, idx, L, checked, diff, unverified, node, mode):
        """Keep the exactness verdict of layer idx; diff = (values differing, of which exact
        halves of the real-number result)."""
        what = {"ROUND": "round half to even", "HALF_UP": "round half away from zero",
                "FLOOR": "floor", "CEIL": "ceil"}.get(mode, mode)
        nd, halves = diff
        if unverified:
            line = "%-24s %-8s not enumerated (more than %d accumulator values per channel)" % (
                L.name, L.kind_name, VERIFY_LIMIT)
            self.warn(node, "requantization not verified exhaustively (accumulator range too large)")
        elif nd == 0:
            line = "%-24s %-8s exact: all %d reachable accumulator values give ONNX's integer (%s)" % (
                L.name, L.kind_name, checked, what)
        else:
            line = ("%-24s %-8s %d of %d reachable accumulator values differ by one from ONNX (%s): "
                    "%d exact halves, %d near halves" % (L.name, L.kind_name, nd, checked, what,
                                                                   halves, nd - halves))
            if halves:
                self.warn(node, "exact halves (%d of %d accumulator values) round up in qbin where ONNX "
                          "rounds %s" % (halves, checked, "to even" if mode == "ROUND" else "away from zero"))
            elif self.strict:
                self.warn(node, "requantization differs from ONNX on %d of %d accumulator values" % (
                    nd, checked))
        self.report.append(line)

    def emit_add(self, p: Pending, out: OutQ, lo, hi, real_out, name, outq) -> Act:
        node = out.node
        a, b = p.srcs
        ma, mb = frac(a.scale) / out.step, frac(b.scale) / out.step
        ra, rb = self.act_range(a), self.act_range(b)
        amag = max(abs(ra[0] - a.zp), abs(ra[1] - a.zp))
        bmag = max(abs(rb[0] - b.zp), abs(rb[1] - b.zp))
        # integer multipliers m = round(M * 2^k), the larger in [2^21, 2^22); one rounding by
        # 2^-k. A sum beyond int32 saturates; harmless when 2^(31-k) lies beyond the clamp.
        span = max(abs(lo - out.zp), abs(hi - out.zp)) + 1
        e = math.frexp(float(max(ma, mb)))[1]
        k = min(31, 22 - e)
        while k > 0:
            mua, mub = round(ma * 2 ** k), round(mb * 2 ** k)
            sat_ok = amag * (mua + 1) + bmag * (mub + 1) <= INT32_MAX or 2 ** (31 - k) > span
            if mua < INT32_MAX and mub < INT32_MAX and sat_ok:
                break
            k -= 1
        if k <= 0 or mua == 0 and mub == 0:
            refuse(node, "scale ratios %.3g, %.3g cannot be expressed" % (float(ma), float(mb)))
        # exhaustive check on the grid of input pairs (8-bit inputs: 65536 pairs); among the
        # rounded multipliers and their neighbours keep the pair with the fewest differences
        na, nb = ra[1] - ra[0] + 1, rb[1] - rb[0] + 1
        verdict = None
        if na * nb <= VERIFY_LIMIT:
            xa = np.repeat(np.arange(ra[0], ra[1] + 1, dtype=np.int64) - a.zp, nb)
            xb = np.tile(np.arange(rb[0], rb[1] + 1, dtype=np.int64) - b.zp, na)
            v = xa * float(ma) + xb * float(mb)
            mode = out.rounding
            ref = np.rint(v) if mode == "ROUND" else np.sign(v) * np.floor(np.abs(v) + 0.5)
            near = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-6 * np.maximum(1.0, np.abs(v))
            ref = ref.astype(np.int64)
            for i in np.flatnonzero(near):
                ref[i] = round_frac(int(xa[i]) * ma + int(xb[i]) * mb, mode)
            ref = np.clip(out.zp + ref, lo, hi)
            best = None
            for da in (0, -1, 1):
                for db in (0, -1, 1):
                    ca, cb = mua + da, mub + db
                    if ca < 0 or cb < 0:
                        continue
                    bad = np.flatnonzero(qb.requantize(xa * ca + xb * cb, 1 << (31 - k), 0, out.zp, lo, hi) != ref)
                    if best is None or bad.size < best[0].size:
                        best = (bad, ca, cb)
                    if bad.size == 0:
                        break
                if best[0].size == 0:
                    break
            bad, mua, mub = best
            halves = sum(1 for i in bad if (2 * (int(xa[i]) * ma + int(xb[i]) * mb)).denominator == 1)
            verdict = (xa.size, (bad.size, halves), False)
        try:
            idx = self.net.add(name, a.layer, b.layer, mua, mub, **outq, mult=[1 << (31 - k)], shift=[0])
        except (ValueError, qb.QbinError) as e:
            refuse(p.node, str(e))
        L = self.net.layers[idx]
        if verdict is None:
            self.record(idx, L, 0, (0, 0), True, p.node, out.rounding)
        else:
            self.record(idx, L, verdict[0], verdict[1], verdict[2], p.node, out.rounding)
        return Act(idx, p.shape, out.scale, out.zp, real_out)

    def emit_concat(self, p: Pending, out: OutQ, lo, hi, real_out, name) -> Act:
        parts = []
        for a in p.srcs:
            sub = self.quantize(out.node, a, out, True)
            parts.append(sub.layer)
        try:
            idx = self.net.concat(name, parts, bits=out.bits, signed=out.signed, clamp=(lo, hi))
        except (ValueError, qb.QbinError) as e:
            refuse(p.node, str(e))
        return Act(idx, p.shape, out.scale, out.zp, real_out)

    def emit_float_output(self, p: Pending) -> Act:
        """A float graph output (no final quantizer): int16 values with a power-of-two
        multiple of the accumulator step, so nothing saturates."""
        if p.int_state or p.kind not in ("conv", "fc", "gap", "avgpool"):
            refuse(p.node, "the graph output is a float %s result; end the graph with a quantizer" % p.kind)
        lo_acc, hi_acc = self.acc_bounds(p, p.kind)
        bias = p.bias if p.bias is not None else 0
        bound = float(np.max(np.maximum(np.abs(lo_acc + bias), np.abs(hi_acc + bias)))) + 1
        smax = max(p.acc_scale)
        e = 0
        while bound / 2 ** e > 32767:
            e += 1
        step = smax * 2 ** e
        self.warn(p.node, "the graph output is float: written as int16 with step %.6g" % float(step))
        return self.emit(p, OutQ(step, 0, 16, True, -32768, 32767, "ROUND", float(step), p.node), True)

    # ---- weights
    def weight_int(self, node, w, axis_out: int, nout: int, what="weight"):
        """Integer weights with zero point removed, dtype bits, signedness and per-output scale."""
        if isinstance(w, Const):
            refuse(node, "%s is a float constant; it must be quantized (DequantizeLinear of an integer "
                   "tensor, or a QONNX Quant)" % what)
        if not isinstance(w, QConst):
            refuse(node, "%s must be a constant quantized tensor" % what)
        try:
            scale = w.scale_along(axis_out, nout)
            zp = w.zp_along(axis_out, nout)
        except ValueError as e:
            refuse(node, "%s: %s" % (what, e))
        shp = [1] * w.q.ndim
        shp[axis_out] = nout
        q = w.q - zp.reshape(shp)
        if w.bipolar:
            return q, 1, True, scale
        if (zp == 0).all():
            bits, sg = w.bits, w.signed
        else:
            bits, sg = None, None
        if bits is None or bits > 8:
            for b in (2, 4, 8):
                for s_ in (True, False):
                    lo, hi = qb.int_range(b, s_)
                    if q.min() >= lo and q.max() <= hi:
                        bits, sg = b, s_
                        break
                if bits is not None and bits <= 8:
                    break
            else:
                refuse(node, "%s values %d..%d (zero point removed) do not fit 8 bits" % (what, q.min(), q.max()))
        wb = 2 if bits <= 2 else 4 if bits <= 4 else 8
        return q, wb, sg, scale

    def bias_acc(self, node, b, acc_scale: List[Fraction], c: int) -> np.ndarray:
        """A bias (QConst or float Const) in accumulator units, exact or rounded (warned)."""
        if isinstance(b, QConst):
            try:
                s = b.scale_along(0 if b.q.ndim == 1 else b.axis, c)
                z = b.zp_along(0 if b.q.ndim == 1 else b.axis, c)
            except ValueError as e:
                refuse(node, "bias: %s" % e)
            q = b.q.reshape(-1) - z
            if q.size != c:
                refuse(node, "bias has %d values for %d channels" % (q.size, c))
            vals = [Fraction(int(qi)) * frac(si) for qi, si in zip(q, s)]
        elif isinstance(b, Const):
            v = b.v.astype(np.float64).reshape(-1)
            if v.size != c:
                refuse(node, "bias has %d values for %d channels" % (v.size, c))
            vals = [frac(x) for x in v]
        else:
            refuse(node, "bias must be a constant")
        out = np.zeros(c, np.int64)
        worst = Fraction(0)
        if isinstance(b, QConst):
            # a bias stored with the scale x_scale * w_scale (rounded to float32) is in
            # accumulator units: QLinearConv's rule, which the QDQ exporters follow
            ratio = [frac(si) / a for si, a in zip(s, acc_scale)]
            if all(abs(r - 1) <= Fraction(1, 1 << 22) for r in ratio):
                return q.astype(np.int64)
        for i in range(c):
            r = vals[i] / acc_scale[i]
            out[i] = round_frac(r, "ROUND")
            worst = max(worst, abs(r - out[i]))
        if worst:
            self.warn(node, "bias is not a multiple of the accumulator step: rounded (error up to "
                      "%.3g step)" % float(worst))
        return out

    # ---- convolution
    def conv_geometry(self, node, at, cin, h, w, kh, kw, dims_node=None):
        if "kernel_shape" in at and list(at["kernel_shape"]) != [kh, kw]:
            refuse(node, "kernel_shape %s does not match the weight %dx%d" % (list(at["kernel_shape"]), kh, kw))
        strides = list(at.get("strides", [1, 1]))
        dil = list(at.get("dilations", [1, 1]))
        pads = list(at.get("pads", [0, 0, 0, 0]))
        if len(strides) != 2 or len(dil) != 2 or len(pads) != 4:
            refuse(node, "only 2-D windows are supported")
        ap = at.get("auto_pad", "NOTSET")
        if ap in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0, 0, 0, 0]
            for i, (n, k, s, d) in enumerate(((h, kh, strides[0], dil[0]), (w, kw, strides[1], dil[1]))):
                o = -(-n // s)
                tot = max(0, (o - 1) * s + (k - 1) * d + 1 - n)
                first = tot // 2 if ap == "SAME_UPPER" else tot - tot // 2
                pads[i], pads[i + 2] = first, tot - first
        elif ap == "VALID":
            pads = [0, 0, 0, 0]
        elif ap != "NOTSET":
            refuse(node, "unsupported attribute 'auto_pad' = '%s'" % ap)
        extra = self.extra_pads.get(node.input[0], (0, 0, 0, 0))
        if any(extra) and ap != "NOTSET":
            refuse(node, "a Pad before a window with auto_pad is unsupported")
        pads = [p_ + e for p_, e in zip(pads, extra)]
        return dict(stride=tuple(strides), dil=tuple(dil), pads=(pads[0], pads[1], pads[2], pads[3]))

    def conv_pending(self, node, at, x: Act, wq, bias, acc_in_scale) -> Pending:
        cin, h, w = self.chw(node, x)
        if not isinstance(wq, QConst):
            self.weight_int(node, wq, 0, 1)        # refuses with the reason
        if wq.q.ndim != 4:
            refuse(node, "only 2-D convolutions are supported (weight of %d dimensions)" % wq.q.ndim)
        cout, cin_g, kh, kw = wq.q.shape
        group = int(at.get("group", 1))
        if cin_g * group != cin:
            refuse(node, "weight expects %d input channels, the input has %d" % (cin_g * group, cin))
        geo = self.conv_geometry(node, at, cin, h, w, kh, kw)
        geo["group"] = group
        q, wb, sg, ws = self.weight_int(node, wq, 0, cout)
        acc_scale = [acc_in_scale * frac(s) for s in ws]
        p = Pending("conv", node, [x], (), cout, acc_scale, weight=q, wbits=wb if not wq.bipolar else 1,
                    wsigned=sg, w_scale=ws if ws.size > 1 else float(ws[0]), geo=geo)
        oh = qb.window_out(h, kh, geo["stride"][0], geo["dil"][0], geo["pads"][0], geo["pads"][2])
        ow = qb.window_out(w, kw, geo["stride"][1], geo["dil"][1], geo["pads"][1], geo["pads"][3])
        if oh < 1 or ow < 1:
            refuse(node, "empty output")
        p.shape = (cout, oh, ow)
        if bias is not None:
            p.bias = self.bias_acc(node, bias, acc_scale, cout)
        return p

    def op_Conv(self, node, at):
        x = self.real_act(node, 0)
        w = self.get(node, 1)
        b = self.get(node, 2, optional=True)
        return self.conv_pending(node, at, x, w, b, frac(x.scale))

    def real_act(self, node, i) -> Act:
        x = self.get(node, i)
        if isinstance(x, Act) and x.real:
            return x
        if isinstance(x, Pending):
            refuse(node, "input %d is a float result that no quantizer has quantized" % i)
        if isinstance(x, GraphInput):
            refuse(node, "input %d is the float graph input; it must be quantized first" % i)
        if isinstance(x, Act):
            refuse(node, "input %d is an integer tensor (dequantize it first)" % i)
        refuse(node, "input %d must be a dequantized activation" % i)

    def int_act(self, node, i, zp: int, scale: float) -> Act:
        x = self.get(node, i)
        if isinstance(x, GraphInput):
            return self.int_input(node, zp, scale)
        if not isinstance(x, Act) or x.real:
            refuse(node, "input %d must be a quantized integer tensor" % i)
        l = self.layer(x)
        if l.out_zp != zp:
            refuse(node, "input zero point %d differs from its tensor's %d" % (zp, l.out_zp))
        return Act(x.layer, x.shape, scale, zp, False)

    def qop_scalar(self, node, si, zi, bits_ok=(8,)):
        s = self.scalar(node, si, "scale")
        zv = self.get(node, zi, optional=True) if zi is not None else None
        z, bits, sg = 0, 8, False
        if zv is not None:
            if not isinstance(zv, Const) or zv.v.size != 1:
                refuse(node, "zero point must be a single constant")
            z = int(zv.v.ravel()[0])
            if zv.v.dtype == np.int8:
                sg = True
            elif zv.v.dtype != np.uint8:
                refuse(node, "zero point type %s is unsupported" % zv.v.dtype)
        if not (math.isfinite(float(s)) and float(s) > 0):
            refuse(node, "scale must be finite and > 0")
        return float(s), z, bits, sg

    def qconst_input(self, node, wi, si, zi, axis_out, what="weight") -> QConst:
        w = self.const(node, wi, what=what)
        if w.dtype not in (np.int8, np.uint8):
            refuse(node, "%s must be int8 or uint8" % what)
        s = self.const(node, si, what=what + " scale").astype(np.float64)
        zv = self.const(node, zi, optional=True)
        z = np.zeros(s.shape, np.int64) if zv is None else zv.astype(np.int64)
        if not (np.isfinite(s).all() and (s > 0).all()):
            refuse(node, "%s scale must be finite and > 0" % what)
        if s.size > 1 and s.size != w.shape[axis_out]:
            refuse(node, "%s scale has %d entries for %d channels" % (what, s.size, w.shape[axis_out]))
        return QConst(w.astype(np.int64), s.reshape(-1) if s.size > 1 else s.reshape(()),
                      z.reshape(-1) if z.size > 1 else z.reshape(()), axis_out if s.size > 1 or z.size > 1 else -1,
                      8, w.dtype == np.int8)

    def op_QLinearConv(self, node, at):
        self.forms.add("QOperator")
        xs, xz, _, _ = self.qop_scalar(node, 1, 2)
        x = self.int_act(node, 0, xz, xs)
        wq = self.qconst_input(node, 3, 4, 5, 0)
        ys, yz, bits, sg = self.qop_scalar(node, 6, 7)
        b = self.const(node, 8, optional=True, what="bias")
        xr = Act(x.layer, x.shape, xs, xz, True)
        p = self.conv_pending(node, at, xr, wq, None, frac(xs))
        if b is not None:
            if b.dtype != np.int32 or b.size != p.channels:
                refuse(node, "bias must be int32 with one value per output channel")
            p.bias = b.astype(np.int64).ravel()
        lo, hi = qb.int_range(bits, sg)
        return self.emit(p, OutQ(frac(ys), yz, bits, sg, lo, hi, "ROUND", ys, node), False)

    def input_zero_point(self, node, i):
        """ConvInteger / MatMulInteger: the optional scalar zero point of input i (0 if absent)."""
        zv = self.get(node, i, optional=True)
        if zv is None:
            return 0
        if not isinstance(zv, Const) or zv.v.size != 1:
            refuse(node, "input zero point must be a single constant")
        return int(zv.v.ravel()[0])

    def integer_weight(self, node, axis: int, unit: str) -> QConst:
        """ConvInteger / MatMulInteger: the int8/uint8 weight (input 1) with its optional zero
        point (input 3), per tensor or per `axis` (output channels / columns)."""
        w = self.const(node, 1, what="weight")
        if w.dtype not in (np.int8, np.uint8):
            refuse(node, "weight must be int8 or uint8")
        wz = self.const(node, 3, optional=True)
        z = np.zeros((), np.int64) if wz is None else wz.astype(np.int64)
        if z.size > 1 and z.size != w.shape[axis]:
            refuse(node, "weight zero point has %d entries for %d %s" % (z.size, w.shape[axis], unit))
        return QConst(w.astype(np.int64), np.ones(z.shape), z.reshape(-1) if z.size > 1 else z.reshape(()),
                      axis if z.size > 1 else -1, 8, w.dtype == np.int8)

    def op_ConvInteger(self, node, at):
        self.forms.add("QOperator")
        xz = self.input_zero_point(node, 2)
        x = self.int_act(node, 0, xz, 0.0)
        wq = self.integer_weight(node, 0, "channels")
        p = self.conv_pending(node, at, Act(x.layer, x.shape, 1.0, xz, True), wq, None, Fraction(1))
        p.int_state = True
        return p

    # ---- fully connected
    def fc_pending(self, node, x: Act, wq: QConst, n_axis: int, acc_in_scale, trans: bool) -> Pending:
        l = self.layer(x)
        k = l.out_c * l.out_h * l.out_w
        if len(x.shape) != 1:
            refuse(node, "input must be a [1, K] matrix (got %s); Flatten it first" % list((1,) + x.shape))
        if wq.q.ndim != 2:
            refuse(node, "weight must be a matrix")
        q, wb, sg, ws = self.weight_int(node, wq, n_axis, wq.q.shape[n_axis])
        w = q.T if trans else q
        if w.shape[1] != k:
            refuse(node, "weight has %d inputs, the input has %d values" % (w.shape[1], k))
        n = w.shape[0]
        acc_scale = [acc_in_scale * frac(s) for s in ws]
        return Pending("fc", node, [x], (n,), n, acc_scale, weight=w, wbits=wb if not wq.bipolar else 1,
                       wsigned=sg, w_scale=ws if ws.size > 1 else float(ws[0]))

    def op_Gemm(self, node, at):
        if at.get("transA", 0):
            refuse(node, "unsupported attribute 'transA' = 1")
        x = self.real_act(node, 0)
        wq = self.get(node, 1)
        if not isinstance(wq, QConst):
            self.weight_int(node, wq, 0, 1)
        trans_b = at.get("transB", 0)
        p = self.fc_pending(node, x, wq, 0 if trans_b else 1, frac(x.scale) * frac(at.get("alpha", 1.0)),
                            not trans_b)
        c = self.get(node, 2, optional=True)
        if c is not None:
            beta = at.get("beta", 1.0)
            if isinstance(c, Const):
                c = Const(c.v.astype(np.float64) * beta)
            elif isinstance(c, QConst) and beta != 1.0:
                c = QConst(c.q, c.scale * beta, c.zp, c.axis, c.bits, c.signed)
            p.bias = self.bias_acc(node, self.flat_bias(node, c, p.channels), p.acc_scale, p.channels)
        return p

    def flat_bias(self, node, c, n):
        if isinstance(c, Const):
            v = c.v
            if v.size == n and (v.ndim == 1 or v.shape[-1] == n):
                return Const(v.reshape(-1))
            refuse(node, "bias of shape %s for %d outputs" % (list(v.shape), n))
        if isinstance(c, QConst):
            if c.q.size == n:
                return QConst(c.q.reshape(-1), c.scale, c.zp, 0 if c.axis >= 0 else -1, c.bits, c.signed)
            refuse(node, "bias of shape %s for %d outputs" % (list(c.q.shape), n))
        refuse(node, "bias must be a constant")

    def op_MatMul(self, node, at):
        x = self.real_act(node, 0)
        wq = self.get(node, 1)
        if not isinstance(wq, QConst):
            self.weight_int(node, wq, 1, 1)
        return self.fc_pending(node, x, wq, 1, frac(x.scale), True)

    def op_QLinearMatMul(self, node, at):
        self.forms.add("QOperator")
        xs, xz, _, _ = self.qop_scalar(node, 1, 2)
        x = self.int_act(node, 0, xz, xs)
        wq = self.qconst_input(node, 3, 4, 5, 1)
        ys, yz, bits, sg = self.qop_scalar(node, 6, 7)
        p = self.fc_pending(node, Act(x.layer, x.shape, xs, xz, True), wq, 1, frac(xs), True)
        lo, hi = qb.int_range(bits, sg)
        return self.emit(p, OutQ(frac(ys), yz, bits, sg, lo, hi, "ROUND", ys, node), False)

    def op_MatMulInteger(self, node, at):
        self.forms.add("QOperator")
        xz = self.input_zero_point(node, 2)
        x = self.int_act(node, 0, xz, 0.0)
        if self.const(node, 1, what="weight").ndim != 2:
            refuse(node, "weight must be an int8 or uint8 matrix")
        wq = self.integer_weight(node, 1, "columns")
        p = self.fc_pending(node, Act(x.layer, x.shape, 1.0, xz, True), wq, 1, Fraction(1), True)
        p.int_state = True
        return p

    # ---- elementwise on pending values
    def channel_vector(self, node, v: np.ndarray, p: Pending) -> np.ndarray:
        """A constant that broadcasts against the pending value along its channels only."""
        full = (1,) + tuple(p.shape)
        if v.ndim > len(full):
            refuse(node, "constant of shape %s does not broadcast to %s" % (list(v.shape), list(full)))
        vv = v.reshape((1,) * (len(full) - v.ndim) + v.shape)
        for d, (a, b) in enumerate(zip(vv.shape, full)):
            if a != 1 and a != b:
                refuse(node, "constant of shape %s does not broadcast to %s" % (list(v.shape), list(full)))
            if a != 1 and d != 1:
                refuse(node, "constant of shape %s varies along axis %d, not only along channels"
                       % (list(v.shape), d))
        out = vv.reshape(-1) if vv.size > 1 else np.full(p.channels, vv.ravel()[0])
        if out.size != p.channels:
            refuse(node, "constant has %d values for %d channels" % (out.size, p.channels))
        return out

    def op_Add(self, node, at):
        a, b = self.get(node, 0), self.get(node, 1)
        if isinstance(b, Pending) and not isinstance(a, Pending):
            a, b = b, a
        if isinstance(a, Pending) and isinstance(b, (Const, QConst)):
            a = replace(a)
            if a.kind not in ("conv", "fc"):
                refuse(node, "adds a constant to a %s result; only a conv/gemm bias is supported" % a.kind)
            if a.bias is not None and a.bias.any():
                bias0 = a.bias
            else:
                bias0 = np.zeros(a.channels, np.int64)
            if a.int_state:
                if not isinstance(b, Const) or b.v.dtype != np.int32:
                    refuse(node, "an int32 accumulator takes an int32 constant bias")
                add = self.channel_vector(node, b.v, a).astype(np.int64)
            else:
                if isinstance(b, QConst):
                    vec = self.channel_vector(node, b.q, a)
                    bq = QConst(vec, b.scale.reshape(-1) if b.scale.size > 1 else b.scale,
                                b.zp.reshape(-1) if b.zp.size > 1 else b.zp, 0 if b.scale.size > 1 else -1,
                                b.bits, b.signed)
                    add = self.bias_acc(node, bq, a.acc_scale, a.channels)
                else:
                    add = self.bias_acc(node, Const(self.channel_vector(node, b.v.astype(np.float64), a)),
                                        a.acc_scale, a.channels)
            if a.lo is not None or a.hi is not None:
                refuse(node, "adds a bias after a Relu/Clip")
            a.bias = bias0 + add
            return a
        if isinstance(a, Act) and isinstance(b, Act) and a.real and b.real:
            la, lb = self.layer(a), self.layer(b)
            if la.shape != lb.shape or tuple(a.shape) != tuple(b.shape):
                refuse(node, "adds tensors of different shapes (broadcasting is unsupported)")
            return Pending("add", node, [a, b], a.shape, la.out_c, acc_scale=[Fraction(0)] * la.out_c)
        if isinstance(a, Pending) or isinstance(b, Pending):
            refuse(node, "adds a float result that no quantizer has quantized; quantize both operands")
        refuse(node, "operands must be two dequantized tensors, or a conv/gemm result and a constant bias")

    def op_Mul(self, node, at):
        a, b = self.get(node, 0), self.get(node, 1)
        if isinstance(a, Const) and not isinstance(b, Const):
            a, b = b, a
        if not isinstance(b, Const):
            refuse(node, "multiplies two non-constant tensors")
        if isinstance(a, Pending):
            a = replace(a)
            if a.int_state:
                refuse(node, "multiplies an int32 accumulator; Cast it to float first")
            vec = self.channel_vector(node, b.v.astype(np.float64), a)
            if (vec <= 0).any():
                refuse(node, "scale factors must be > 0")
            a.acc_scale = [s * frac(f) for s, f in zip(a.acc_scale, vec)]
            if a.lo is not None or a.hi is not None:
                a.lo = a.lo * frac(vec[0]) if a.lo is not None else None
                a.hi = a.hi * frac(vec[0]) if a.hi is not None else None
                if len(set(vec.tolist())) > 1:
                    refuse(node, "per-channel scaling after a Relu/Clip")
            return a
        if isinstance(a, Act) and a.real and b.v.size == 1 and float(b.v.ravel()[0]) > 0:
            return Act(a.layer, a.shape, float(frac(a.scale) * frac(b.v.ravel()[0])), a.zp, True)
        refuse(node, "multiplies a tensor that is not a float accumulator result by a constant")

    def op_Div(self, node, at):
        a, b = self.get(node, 0), self.get(node, 1)
        if not isinstance(b, Const):
            refuse(node, "divides by a non-constant")
        if isinstance(a, Pending) and not a.int_state:
            a = replace(a)
            vec = self.channel_vector(node, b.v.astype(np.float64), a)
            if (vec <= 0).any():
                refuse(node, "divisors must be > 0")
            a.acc_scale = [s / frac(f) for s, f in zip(a.acc_scale, vec)]
            if a.lo is not None or a.hi is not None:
                refuse(node, "divides after a Relu/Clip")
            return a
        if isinstance(a, Act) and a.real and b.v.size == 1 and float(b.v.ravel()[0]) > 0:
            return Act(a.layer, a.shape, float(frac(a.scale) / frac(b.v.ravel()[0])), a.zp, True)
        refuse(node, "divides a tensor that is not a float accumulator result")

    def op_Cast(self, node, at):
        x = self.get(node, 0)
        to = at.get("to")
        if isinstance(x, Pending) and x.int_state:
            if to not in FLOAT_TYPES:
                refuse(node, "casts the accumulator to type %d (float expected)" % to)
            return replace(x, int_state=False)
        if isinstance(x, Act) and not x.real:
            l = self.layer(x)
            if to in INT_TYPES and INT_TYPES[to] == (8, l.out_signed) and l.out_bits <= 8:
                return x
            if to in INT_TYPES and to in (6,):
                return x
            if to in FLOAT_TYPES and l.out_zp == 0:
                return Act(x.layer, x.shape, 1.0, 0, True)
        if isinstance(x, Act) and x.real and to in FLOAT_TYPES:
            return x
        if isinstance(x, Pending) and to in FLOAT_TYPES:
            return x
        refuse(node, "unsupported cast to type %d of this tensor" % to)

    def op_Relu(self, node, at):
        x = self.get(node, 0)
        if isinstance(x, Pending):
            x = replace(x)
            if x.int_state:
                refuse(node, "Relu on an int32 accumulator")
            x.lo = Fraction(0) if x.lo is None else max(x.lo, Fraction(0))
            if x.hi is not None and x.hi < 0:
                refuse(node, "empty range")
            x.act = "relu"
            return x
        if isinstance(x, Act):
            l = self.layer(x)
            lo = x.zp if x.real else 0          # real: max(s(q - z), 0); integer: max(q, 0)
            if l.clamp_lo >= lo:
                return x
            return self.act_layer(node, x, lo, l.clamp_hi, real=x.real, act="relu")
        refuse(node, "input is not a quantized tensor or accumulator result")

    def op_Clip(self, node, at):
        x = self.get(node, 0)
        lo = at.get("min", None)
        hi = at.get("max", None)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.scalar(node, 1, "min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.scalar(node, 2, "max"))
        lo = None if lo is None else frac(lo)
        hi = None if hi is None else frac(hi)
        if isinstance(x, Pending):
            x = replace(x)
            if x.int_state:
                refuse(node, "Clip on an int32 accumulator")
            if lo is not None:
                x.lo = lo if x.lo is None else max(lo, x.lo)
            if hi is not None:
                x.hi = hi if x.hi is None else min(hi, x.hi)
            x.act = "clip"
            return x
        if isinstance(x, Act):
            l = self.layer(x)
            if not x.real:
                ilo = l.clamp_lo if lo is None else max(l.clamp_lo, math.ceil(lo))
                ihi = l.clamp_hi if hi is None else min(l.clamp_hi, math.floor(hi))
                return self.act_layer(node, x, ilo, ihi, real=False)
            # real values s*(q - z): the clamped value must lie on the grid unless a quantizer
            # with the same grid follows (then it is rounded the way that quantizer rounds)
            s = frac(x.scale)
            bounds = []
            for v, dflt in ((lo, l.clamp_lo), (hi, l.clamp_hi)):
                if v is None:
                    bounds.append(dflt)
                    continue
                g = v / s + x.zp
                if g.denominator != 1:
                    nxt = self.consumers.get(node.output[0], [])
                    if not nxt or any(n.op_type not in ("QuantizeLinear", "Quant", "IntQuant") for n in nxt):
                        refuse(node, "clip bound %g is not on the input's quantization grid" % float(v))
                    g = Fraction(round_frac(g, "ROUND"))
                bounds.append(int(g))
            return self.act_layer(node, x, max(bounds[0], l.clamp_lo), min(bounds[1], l.clamp_hi), real=True)
        refuse(node, "input is not a quantized tensor or accumulator result")

    # ---- pooling
    def window_attrs(self, node, at, h, w, default_stride_is_1=True):
        ks = list(at.get("kernel_shape", []))
        if len(ks) != 2:
            refuse(node, "only 2-D pooling is supported")
        if at.get("ceil_mode", 0):
            refuse(node, "unsupported attribute 'ceil_mode' = 1")
        if at.get("storage_order", 0):
            refuse(node, "unsupported attribute 'storage_order' = 1")
        geo = self.conv_geometry(node, {k: v for k, v in at.items() if k != "kernel_shape"}, 0, h, w, ks[0], ks[1])
        return ks, geo

    def op_MaxPool(self, node, at):
        x = self.get(node, 0)
        if not isinstance(x, Act):
            refuse(node, "input must be a quantized tensor (dequantized or integer)")
        c, h, w = self.chw(node, x)
        ks, geo = self.window_attrs(node, at, h, w)
        if any(self.extra_pads.get(node.input[0], (0, 0, 0, 0))) and self.layer(x).clamp_lo < x.zp:
            refuse(node, "follows a Pad whose zeros could be the maximum (the input may be negative)")
        try:
            idx = self.net.maxpool(self.layer_name(node.name or "maxpool"), x.layer, tuple(ks), geo["stride"],
                                   geo["pads"], geo["dil"])
        except (ValueError, qb.QbinError) as e:
            refuse(node, str(e))
        L = self.net.layers[idx]
        return Act(idx, L.shape, x.scale, x.zp, x.real)

    def op_GlobalMaxPool(self, node, at):
        x = self.get(node, 0)
        if not isinstance(x, Act):
            refuse(node, "input must be a quantized tensor")
        c, h, w = self.chw(node, x)
        idx = self.net.maxpool(self.layer_name(node.name or "gmp"), x.layer, (h, w), (1, 1), 0, 1)
        return Act(idx, (c, 1, 1), x.scale, x.zp, x.real)

    def op_AveragePool(self, node, at):
        x = self.real_act(node, 0)
        c, h, w = self.chw(node, x)
        ks, geo = self.window_attrs(node, at, h, w)
        if geo["dil"] != (1, 1):
            refuse(node, "unsupported attribute 'dilations' (other than 1)")
        own = [a - e for a, e in zip(geo["pads"], self.extra_pads.get(node.input[0], (0, 0, 0, 0)))]
        if any(own) and not at.get("count_include_pad", 0):
            refuse(node, "padding with count_include_pad = 0 (border windows average fewer values) is "
                   "unsupported")
        oh = qb.window_out(h, ks[0], geo["stride"][0], 1, geo["pads"][0], geo["pads"][2])
        ow = qb.window_out(w, ks[1], geo["stride"][1], 1, geo["pads"][1], geo["pads"][3])
        n = ks[0] * ks[1]
        return Pending("avgpool", node, [x], (c, oh, ow), c, [frac(x.scale) / n] * c,
                       geo=dict(kernel=tuple(ks), stride=geo["stride"], pads=geo["pads"]))

    def op_GlobalAveragePool(self, node, at):
        x = self.real_act(node, 0)
        c, h, w = self.chw(node, x)
        return Pending("gap", node, [x], (c, 1, 1), c, [frac(x.scale) / (h * w)] * c)

    def op_Pad(self, node, at):
        """A constant zero Pad in front of Conv / AveragePool / MaxPool becomes their padding."""
        x = self.get(node, 0)
        if not isinstance(x, Act):
            refuse(node, "input must be a quantized tensor")
        if at.get("mode", "constant") != "constant":
            refuse(node, "unsupported attribute 'mode' = '%s'" % at["mode"])
        pads = at.get("pads", None)
        if len(node.input) > 1 and node.input[1]:
            pads = [int(v) for v in self.const(node, 1, what="pads")]
        value = float(at.get("value", 0.0))
        if len(node.input) > 2 and node.input[2]:
            value = float(self.scalar(node, 2, "constant_value"))
        if len(node.input) > 3 and node.input[3]:
            refuse(node, "the axes input is unsupported")
        if pads is None or len(pads) != 8:
            refuse(node, "pads of a 4-D tensor expected")
        if min(pads) < 0 or pads[0] or pads[1] or pads[4] or pads[5]:
            refuse(node, "only non-negative padding of height and width is supported")
        if value != (0.0 if x.real else x.zp):
            refuse(node, "the pad value must be %s (the zero point)" % ("0" if x.real else x.zp))
        self.chw(node, x)
        if not any(pads):
            return x
        for c in self.consumers.get(node.output[0], []):
            if c.op_type not in ("Conv", "QLinearConv", "ConvInteger", "AveragePool", "MaxPool") or c.input[0] != node.output[0]:
                refuse(node, "padding is supported only in front of Conv, AveragePool or MaxPool (used by '%s')"
                       % (c.name or c.op_type))
        self.extra_pads[node.output[0]] = (pads[2], pads[3], pads[6], pads[7])
        return x

    # ---- shape-only ops
    def view(self, node, x, new_full: Sequence[int]):
        new_full = [int(d) for d in new_full]
        if not new_full or new_full[0] != 1:
            refuse(node, "changes the batch dimension (result shape %s)" % new_full)
        shape = tuple(new_full[1:])
        if isinstance(x, Act):
            return Act(x.layer, shape, x.scale, x.zp, x.real)
        if isinstance(x, Pending):
            if x.kind not in ("fc", "gap") or int(np.prod(shape)) != x.channels:
                refuse(node, "reshapes a float result before its quantizer")
            return replace(x, shape=shape)
        if isinstance(x, QConst):
            refuse(node, "reshapes a quantized constant")
        refuse(node, "input is not an activation")

    def full_shape(self, node, x):
        if isinstance(x, (Act, Pending)):
            return (1,) + tuple(x.shape)
        if isinstance(x, GraphInput):
            refuse(node, "reshapes the float graph input; quantize it first")
        refuse(node, "input is not an activation")

    def op_Shape(self, node, at):
        x = self.get(node, 0)
        full = x.shape if isinstance(x, GraphInput) else self.full_shape(node, x)
        return Const(np.array(full, np.int64)[at.get("start", 0):at.get("end", None)])

    def op_Identity(self, node, at):
        return self.get(node, 0)

    def op_Dropout(self, node, at):
        if len(node.input) > 2 and node.input[2]:
            t = self.const(node, 2, what="training_mode")
            if bool(t.ravel()[0]):
                refuse(node, "training_mode is true")
        return self.get(node, 0)

    def op_Flatten(self, node, at):
        x = self.get(node, 0)
        full = self.full_shape(node, x)
        ax = at.get("axis", 1)
        ax = ax + len(full) if ax < 0 else ax
        if ax != 1:
            refuse(node, "unsupported attribute 'axis' = %d (only 1)" % at.get("axis", 1))
        return self.view(node, x, [1, int(np.prod(full[1:]))])

    def op_Reshape(self, node, at):
        x = self.get(node, 0)
        full = self.full_shape(node, x)
        t = self.const(node, 1, what="shape")
        target = self.reshape_target(node, full, t, at)
        try:
            new = np.empty(full, np.int8).reshape(target).shape
        except ValueError:
            refuse(node, "cannot reshape %s to %s" % (list(full), target))
        return self.view(node, x, new)

    def op_Squeeze(self, node, at):
        x = self.get(node, 0)
        full = self.full_shape(node, x)
        axes = at.get("axes", None)
        if len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in self.const(node, 1, what="axes")]
        if axes is None:
            new = [1] + [d for d in full[1:] if d != 1]
        else:
            axes = [a + len(full) if a < 0 else a for a in axes]
            if 0 in axes or any(full[a] != 1 for a in axes):
                refuse(node, "squeezes a dimension that is not 1 (or the batch)")
            new = [d for i, d in enumerate(full) if i not in axes]
        return self.view(node, x, new)

    def op_Unsqueeze(self, node, at):
        x = self.get(node, 0)
        full = list(self.full_shape(node, x))
        axes = at.get("axes", None)
        if len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in self.const(node, 1, what="axes")]
        if axes is None:
            refuse(node, "no axes")
        nd = len(full) + len(axes)
        for a in sorted(a + nd if a < 0 else a for a in axes):
            full.insert(a, 1)
        return self.view(node, x, full)

    def op_Transpose(self, node, at):
        x = self.get(node, 0)
        full = self.full_shape(node, x)
        perm = at.get("perm", list(range(len(full)))[::-1])
        new = [full[p] for p in perm]
        if [d for d in new if d != 1] != [d for d in full if d != 1] or \
                [p for p in perm if full[p] != 1] != sorted(p for p in perm if full[p] != 1):
            refuse(node, "unsupported attribute 'perm' = %s (only transposes that move size-1 axes)" % list(perm))
        return self.view(node, x, new)

    def op_Concat(self, node, at):
        xs = [self.get(node, i) for i in range(len(node.input))]
        if not all(isinstance(x, Act) for x in xs):
            refuse(node, "inputs must be quantized tensors")
        full = self.full_shape(node, xs[0])
        ax = at.get("axis")
        ax = ax + len(full) if ax < 0 else ax
        if ax != 1 or len(full) != 4:
            refuse(node, "unsupported attribute 'axis' = %d (only channels of NCHW tensors)" % at.get("axis"))
        for x in xs:
            self.chw(node, x)
            if self.layer(x).shape[1:] != self.layer(xs[0]).shape[1:]:
                refuse(node, "inputs differ in height/width")
        if len(xs) > qb.MAX_INPUTS:
            refuse(node, "more than %d inputs" % qb.MAX_INPUTS)
        c = sum(self.layer(x).out_c for x in xs)
        shape = (c,) + self.layer(xs[0]).shape[1:]
        same = all(x.real == xs[0].real and x.zp == xs[0].zp and (not x.real or x.scale == xs[0].scale)
                   for x in xs)
        if same:
            zp = xs[0].zp
            if any(self.layer(x).out_zp != zp for x in xs):
                refuse(node, "inputs have different zero points")
            bits = max(self.layer(x).out_bits for x in xs)
            signed = any(self.layer(x).out_signed for x in xs)
            lo = min(self.layer(x).clamp_lo for x in xs)
            hi = max(self.layer(x).clamp_hi for x in xs)
            try:
                idx = self.net.concat(self.layer_name(node.name or "concat"), [x.layer for x in xs],
                                      bits=bits, signed=signed, clamp=(lo, hi))
            except (ValueError, qb.QbinError) as e:
                refuse(node, str(e))
            return Act(idx, shape, xs[0].scale, zp, xs[0].real)
        if not all(x.real for x in xs):
            refuse(node, "concatenates integer tensors with different zero points")
        return Pending("concat", node, xs, shape, c, [Fraction(0)] * c)

    # ---- QONNX
    def qonnx_params(self, node, at, x_shape=None):
        s = self.const(node, 1, what="scale").astype(np.float64)
        z = self.const(node, 2, what="zeropt").astype(np.float64)
        b = self.const(node, 3, what="bitwidth").astype(np.float64)
        if b.size != 1 or b.ravel()[0] != round(b.ravel()[0]) or not 1 <= b.ravel()[0] <= 32:
            refuse(node, "bitwidth must be one integer in 1..32")
        if not (np.isfinite(s).all() and (s > 0).all()):
            refuse(node, "scale must be finite and > 0")
        if (z != np.round(z)).any():
            refuse(node, "zeropt must be integral")
        mode = str(at.get("rounding_mode", "ROUND")).upper()
        if mode not in ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"):
            refuse(node, "unsupported attribute 'rounding_mode' = '%s'" % mode)
        if mode == "HALF_EVEN":
            mode = "ROUND"
        signed = int(at.get("signed", 1))
        narrow = int(at.get("narrow", 0))
        if signed not in (0, 1) or narrow not in (0, 1):
            refuse(node, "signed and narrow must be 0 or 1")
        bits = int(b.ravel()[0])
        if signed:
            qmin, qmax = -(1 << (bits - 1)) + narrow, (1 << (bits - 1)) - 1
        else:
            qmin, qmax = 0, (1 << bits) - 1 - narrow
        return s, z, bits, bool(signed), qmin, qmax, mode

    def per_axis(self, node, arr: np.ndarray, shape: Tuple[int, ...], what: str):
        """Scale/zero point broadcast against a tensor of `shape`: (values, axis or -1)."""
        if arr.size == 1:
            return arr.reshape(()), -1
        while arr.ndim > len(shape) and arr.shape[0] == 1:
            arr = arr.reshape(arr.shape[1:])         # numpy broadcasting: leading 1s
        if arr.ndim > len(shape):
            refuse(node, "%s of shape %s does not broadcast to %s" % (what, list(arr.shape), list(shape)))
        a = arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape)
        axes = [i for i, d in enumerate(a.shape) if d != 1]
        if len(axes) != 1 or a.shape[axes[0]] != shape[axes[0]]:
            refuse(node, "%s of shape %s: only one scale per tensor or per channel of one axis"
                   % (what, list(arr.shape)))
        return a.reshape(-1), axes[0]

    def op_Quant(self, node, at):
        self.forms.add("QONNX")
        x = self.get(node, 0)
        s, z, bits, sg, qmin, qmax, mode = self.qonnx_params(node, at)
        if isinstance(x, Const):
            v = x.v.astype(np.float64)
            sv, ax = self.per_axis(node, s, v.shape, "scale")
            zv, zax = self.per_axis(node, z, v.shape, "zeropt")
            if ax >= 0 and zax >= 0 and ax != zax:
                refuse(node, "scale and zeropt vary along different axes")
            ax = ax if ax >= 0 else zax
            shp = [1] * v.ndim
            if ax >= 0:
                shp[ax] = -1
            sb = sv.reshape(shp) if sv.ndim else sv
            zb = zv.reshape(shp) if zv.ndim else zv
            q = round_array(np.clip(v / sb + zb, qmin, qmax), mode).astype(np.int64)
            n = v.shape[ax] if ax >= 0 else 1
            sc = np.broadcast_to(sv, (n,)).astype(np.float64).copy() if ax >= 0 else sv.astype(np.float64)
            zz = np.broadcast_to(zv, (n,)).astype(np.int64).copy() if ax >= 0 else zv.astype(np.int64)
            return QConst(q, sc, zz, ax, bits, sg)
        if s.size != 1 or z.size != 1:
            refuse(node, "per-channel scales on an activation are unsupported (one scale per tensor)")
        if bits > 16:
            refuse(node, "%d-bit activations are unsupported (up to 16)" % bits)
        scale, zp = float(s.ravel()[0]), int(z.ravel()[0])
        obits, osg = bits, sg
        if sg and bits == 1:
            obits = 2
        if not qb.int_range(obits, osg)[0] <= zp <= qb.int_range(obits, osg)[1]:
            refuse(node, "zeropt %d outside the %d-bit range" % (zp, bits))
        if isinstance(x, GraphInput):
            if x.elem not in FLOAT_TYPES:
                refuse(node, "graph input must be float")
            self.check_input_consumers(node, x)
            return self.input_layer(node, obits, osg, zp, scale, qmin, qmax)
        if mode not in ("ROUND", "HALF_UP", "FLOOR", "CEIL"):
            refuse(node, "unsupported attribute 'rounding_mode' = '%s' on an activation" % mode)
        out = OutQ(frac(scale), zp, obits, osg, qmin, qmax, mode, scale, node)
        return self.quantize(node, x, out, real_out=True)

    op_IntQuant = op_Quant

    def op_BipolarQuant(self, node, at):
        self.forms.add("QONNX")
        x = self.get(node, 0)
        s = self.const(node, 1, what="scale").astype(np.float64)
        if not (np.isfinite(s).all() and (s > 0).all()):
            refuse(node, "scale must be finite and > 0")
        if not isinstance(x, Const):
            refuse(node, "bipolar activations are unsupported (qbin activations are integers with 0); "
                   "BipolarQuant is accepted on weights")
        v = x.v.astype(np.float64)
        sv, ax = self.per_axis(node, s, v.shape, "scale")
        q = np.where(v >= 0, 1, -1).astype(np.int64)
        n = v.shape[ax] if ax >= 0 else 1
        sc = np.broadcast_to(sv, (n,)).astype(np.float64).copy() if ax >= 0 else sv.astype(np.float64)
        return QConst(q, sc, np.zeros(sc.shape, np.int64), ax, 1, True, bipolar=True)

    def op_Trunc(self, node, at):
        self.forms.add("QONNX")
        x = self.get(node, 0)
        v2 = len(node.input) >= 6
        s = self.scalar(node, 1, "scale")
        z = self.scalar(node, 2, "zeropt")
        in_bits = self.scalar(node, 3, "in_bitwidth")
        if v2:
            out_scale = float(self.scalar(node, 4, "out_scale"))
            out_bits = self.scalar(node, 5, "out_bitwidth")
        else:
            out_bits = self.scalar(node, 4, "out_bitwidth")
            if "signed" in at or "narrow" in at:
                refuse(node, "unsupported attribute '%s' (Trunc version 1 has 5 inputs)"
                       % ("signed" if "signed" in at else "narrow"))
        mode = str(at.get("rounding_mode", "FLOOR")).upper()
        if mode not in ("FLOOR", "CEIL", "ROUND"):
            refuse(node, "unsupported attribute 'rounding_mode' = '%s'" % mode)
        s = float(s)
        if not (math.isfinite(s) and s > 0) or float(z) != 0:
            refuse(node, "scale must be > 0 and zeropt 0 (a non-zero zeropt is unsupported)")
        in_bits, out_bits = int(in_bits), int(out_bits)
        if v2:
            t = int(round(math.log2(out_scale / s)))
            signed = bool(at.get("signed", 1))
            narrow = bool(at.get("narrow", 0))
            out_real_scale = out_scale
        else:
            t = in_bits - out_bits
            out_real_scale = s
        if t < 0 or not 1 <= out_bits <= 16:
            refuse(node, "truncation by %d bits to %d bits is unsupported" % (t, out_bits))
        # the input must be on the grid of `scale`: an accumulator whose step is the scale
        if isinstance(x, Act):
            if not x.real:
                refuse(node, "input is an integer tensor, not a float")
            if frac(x.scale) != frac(s):
                refuse(node, "input scale %g differs from the Trunc scale %g" % (x.scale, s))
            c = self.layer(x).out_c
            x = Pending("requant", node, [x], x.shape, c, acc_scale=[frac(x.scale)] * c)
        if not isinstance(x, Pending) or x.int_state:
            refuse(node, "input must be a quantized tensor or an accumulator result")
        if any(a != frac(s) for a in x.acc_scale):
            refuse(node, "the input's step (%s) differs from the Trunc scale %g: the input is not on the "
                   "integer grid Trunc rounds" % (", ".join("%g" % float(a) for a in sorted(set(x.acc_scale))), s))
        if v2:
            if signed:
                qmin, qmax = -(1 << (out_bits - 1)) + narrow, (1 << (out_bits - 1)) - 1
            else:
                qmin, qmax = 0, (1 << out_bits) - 1 - narrow
            osg = signed
        else:
            # version 1 does not clamp: its output range follows from the input's
            lo_acc, hi_acc = self.acc_bounds(x, x.kind)
            b = x.bias if x.bias is not None else 0
            osg = bool((lo_acc + b).min() < 0)
            qmin, qmax = qb.int_range(out_bits, osg)
            ylo = round_frac(Fraction(int((lo_acc + b).min()), 1 << t), mode)
            yhi = round_frac(Fraction(int((hi_acc + b).max()), 1 << t), mode)
            if ylo < qmin or yhi > qmax:
                self.warn(node, "values %d..%d exceed out_bitwidth %d: clamped" % (ylo, yhi, out_bits))
        obits = max(out_bits, 2) if osg else out_bits
        out = OutQ(frac(s) * (1 << t), 0, obits, osg, qmin, qmax, mode, out_real_scale, node)
        return self.emit(x, out, True)


# ---------------------------------------------------------------------------- entry points

def screen_node(node) -> None:
    """Refuse an unsupported op, op domain or attribute, naming the node."""
    op, dom = node.op_type, node.domain or "ai.onnx"
    if dom in QONNX_DOMAINS:
        if op not in QONNX_OPS:
            refuse(node, "unsupported op (QONNX domain '%s')" % dom)
    elif dom != "ai.onnx":
        refuse(node, "unsupported op domain '%s'" % dom)
    elif op in QONNX_OPS or op not in ATTRS:
        refuse(node, "unsupported op")
    for a in node.attribute:
        if a.name not in ATTRS[op]:
            refuse(node, "unsupported attribute '%s'" % a.name)


def screen(model) -> None:
    """Refuse unsupported ops and attributes by node name before anything else."""
    for node in model.graph.node:
        screen_node(node)


def load_model(path: str):
    try:
        import onnx
    except ImportError:
        raise Refused("the Python onnx package is missing (Debian: apt-get install python3-onnx, or "
                      "scripts/setup-deps --tests)")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Refused("cannot read: %s" % (e.strerror or e))
    if not data:
        raise Refused("empty file")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:
        raise Refused("not a valid ONNX model (%s)" % str(e).splitlines()[0])
    if not model.HasField("graph") or not model.graph.node:
        raise Refused("not an ONNX model (no graph)")
    screen(model)
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise Refused("invalid ONNX model: %s" % str(e).strip().splitlines()[0])
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:
        raise Refused("shape inference failed: %s" % str(e).strip().splitlines()[0])
    return model


def import_model(path: str, name=None, input_shape=None, strict=False) -> Tuple[qb.Net, Importer]:
    model = load_model(path)
    imp = Importer(model, path, name, input_shape, strict)
    net = imp.run()
    return net, imp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="onnx_import.py",
                                 description="Convert a quantized ONNX (QDQ, QOperator) or QONNX model to "
                                             "a qsim .qbin network (docs/onnx_import.md).")
    ap.add_argument("model", help="the .onnx file")
    ap.add_argument("-o", "--output", required=True, help="the .qbin file to write")
    ap.add_argument("--name", help="network name (default: the graph's name or the file's)")
    ap.add_argument("--input-shape", help="C,H,W (or K) when the model's input sizes are symbolic")
    ap.add_argument("--strict", action="store_true",
                    help="refuse anything not proved bit-exact against the ONNX semantics")
    ap.add_argument("--report", action="store_true", help="print the exactness verdict of every layer")
    ap.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    args = ap.parse_args(argv)
    shape = None
    if args.input_shape:
        try:
            shape = [int(v) for v in args.input_shape.replace("x", ",").split(",")]
            if not 1 <= len(shape) <= 3 or min(shape) < 1:
                raise ValueError
        except ValueError:
            sys.stderr.write("%s: --input-shape '%s': give C,H,W or K\n" % (PROG, args.input_shape))
            return 2
        if len(shape) == 2:
            shape = [shape[0], shape[1], 1]
    try:
        net, imp = import_model(args.model, args.name, shape, args.strict)
        net.save(args.output)
    except Refused as e:
        sys.stderr.write("%s: %s: %s\n" % (PROG, args.model, e))
        return 1
    except OSError as e:
        sys.stderr.write("%s: %s: cannot write: %s\n" % (PROG, args.output, e.strerror or e))
        return 1
    except Exception as e:  # a bug or a pattern not foreseen: one line, not a traceback
        where = traceback.extract_tb(e.__traceback__)[-1]
        sys.stderr.write("%s: %s: internal error (%s: %s at onnx_import.py:%d); please report it\n" % (
            PROG, args.model, type(e).__name__, str(e).splitlines()[0] if str(e) else "", where.lineno))
        return 1
    for w in imp.warnings:
        sys.stderr.write("%s: %s: warning: %s\n" % (PROG, args.model, w))
    if args.report:
        for line in imp.report:
            print(line)
    if not args.quiet:
        kinds = {}
        for l in net.layers:
            kinds[l.kind_name] = kinds.get(l.kind_name, 0) + 1
        exact = sum(1 for r in imp.report if " exact:" in r)
        print("%s: %s -> %s: %s form, %d layers (%s), %d of %d requantizations proved exact" % (
            PROG, args.model, args.output, "+".join(sorted(imp.forms)) or "float", len(net.layers),
            ", ".join("%d %s" % (n, k) for k, n in kinds.items()), exact, len(imp.report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
