#!/usr/bin/python3
"""Export a torch.ao (eager mode) quantized model to .qbin at the widths its fake-quant
modules declare.

    from qsim import torchao_export as tx     # scripts/ on sys.path
    prepared = torch.ao.quantization.prepare_qat(model)   # qconfig with quant_min/quant_max
    ... train ...
    converted = torch.ao.quantization.convert(prepared.eval())
    net = tx.export(converted, prepared, (1, 28, 28), "net.qbin")

Why two models: torch's `convert` keeps the integer weights (clamped to the weight
fake-quant's [quant_min, quant_max]), the scales and zero points, but not the activations'
[quant_min, quant_max]: a converted `QuantizedConvReLU2d` whose fake-quant declared 0..15
clamps its output to quint8's 0..255. The exporter reads the integers from the converted
model and each activation's range from the prepared (QAT or observed) model's
`activation_post_process`, and writes:

- weights: the converted int8 values, stored in the narrowest .qbin dtype holding the
  declared weight range (quant_min -2, quant_max 1 -> int2; -8..7 -> int4; 3 bits -> int4),
  after checking that every value lies in that range; symmetric (zero point 0) only;
- biases: int32, round-half-even(bias / (s_in * s_w)) (what torch's quantized kernels use);
- activations: out_bits = the declared width, clamp [quant_min, quant_max], torch's scale
  and zero point; requantization multiplier s_in * s_w / s_out as a .qbin fixed-point pair.

The graph is traced with torch.fx (quantized modules are leaves). Understood: QuantStub
(`Quantize`, first), `QuantizedConv2d` / `QuantizedConvReLU2d`, `QuantizedLinear` /
`QuantizedLinearReLU`, `MaxPool2d`, `Identity`, `DeQuantStub` (last), `torch.flatten(x, 1)`
before a linear layer. Anything else is refused with `ExportError` naming the layer.

`reference(converted, prepared)` returns the torch model the .qbin equals: the converted
model with every quantized activation's integers clamped to its declared range. docs/torchao_export.md.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
import torch.fx
import torch.nn as nn

from . import export_qbin as eq
from . import qbin as qb


class ExportError(ValueError):
    """The converted model has something .qbin cannot express exactly; names the layer."""


def _kind(mod) -> str:
    return type(mod).__name__


def _bits_of_range(lo: int, hi: int, signed: bool) -> int:
    """Fewest bits whose range holds [lo, hi]."""
    for b in range(1, 33):
        rlo, rhi = qb.int_range(b, signed)
        if rlo <= lo and hi <= rhi:
            return b
    raise ValueError("range [%d, %d] needs more than 32 bits" % (lo, hi))


def single_rounding_multiplier(real: float) -> Tuple[int, int]:
    """(M0, shift) for the real multiplier `real` that rounds once, as torch's float
    requantization does: for real < 1 a right shift would make .qbin's requant round twice
    (srdhm, then rdivpot), which differs from round(acc * real) for a small accumulator, so
    the shift is 0 and M0 = round(real * 2^31) (docs/qbin.md allows any M0 >= 0); M0 keeps
    at least 24 significant bits (a float32 multiplier exactly), else the shift grows.
    real >= 1: the normalized pair (a left shift, one rounding)."""
    if real >= 1.0:
        return qb.quantize_multiplier(real)
    shift = 0
    while real * 2.0 ** (31 + shift) < 2 ** 24 and shift < qb.MAX_SHIFT:
        shift += 1
    m0 = int(np.floor(real * 2.0 ** (31 + shift) + 0.5))
    if m0 >= 2 ** 31:
        return qb.quantize_multiplier(real)
    return m0, shift


def _declared(prepared: nn.Module, name: str, what: str) -> Tuple[int, int]:
    """(quant_min, quant_max) of the prepared model's fake-quant / observer `what` of module `name`."""
    try:
        mod = prepared.get_submodule(name)
    except AttributeError:
        raise ExportError("layer '%s': not in the prepared model" % name)
    fq = getattr(mod, what, None)
    if fq is None or not hasattr(fq, "quant_min"):
        raise ExportError("layer '%s': the prepared model has no %s with quant_min/quant_max" % (name, what))
    return int(fq.quant_min), int(fq.quant_max)


def _plan(converted: nn.Module):
    """The fx graph as a list of (layer name, module or 'flatten')."""
    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):   # every module is one layer
            return True
    try:
        graph = Tracer().trace(converted)
    except Exception as exc:      # noqa: BLE001 - fx raises many kinds; say what happened
        raise ExportError("the model cannot be traced with torch.fx: %s" % exc)
    steps, prev = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            break
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if len(args) != 1 or (prev is not None and args[0] is not prev) or (prev is None and args[0].op != "placeholder"):
            raise ExportError("layer '%s': only a chain of layers is supported (it reads %s)" % (
                node.name, ", ".join(a.name for a in args) or "no tensor"))
        if node.op == "call_module":
            steps.append((node.target, converted.get_submodule(node.target)))
        elif node.op == "call_function" and node.target is torch.flatten and \
                (node.args[1:] + (1,))[0] == 1 and not node.kwargs:
            steps.append((node.name, "flatten"))
        else:
            raise ExportError("layer '%s': %s %s has no .qbin equivalent in this exporter" % (
                node.name, node.op, getattr(node.target, "__name__", node.target)))
        prev = node
    return steps


def _multipliers(s_in: float, ws: np.ndarray, s_out: float, cout: int):
    """torch's requantization scale, computed as its quantized kernels do (float32
    s_in * s_w / s_out), as single-rounding (M0, shift) pairs, one per output channel."""
    f32 = np.float32
    real = (f32(s_in) * ws.astype(f32)) / f32(s_out)
    pairs = [single_rounding_multiplier(float(r)) for r in np.broadcast_to(real, (cout,))]
    return dict(mult=[p[0] for p in pairs], shift=[p[1] for p in pairs])


def _weight_ints(name: str, qw: torch.Tensor, lo: int, hi: int):
    if qw.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        zps, scales = np.array([qw.q_zero_point()]), np.array([qw.q_scale()], np.float64)
    elif qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        if qw.q_per_channel_axis() != 0:
            raise ExportError("layer '%s': per-channel weights must be on axis 0" % name)
        zps = qw.q_per_channel_zero_points().numpy()
        scales = qw.q_per_channel_scales().numpy().astype(np.float64)
    else:
        raise ExportError("layer '%s': weight qscheme %s not supported" % (name, qw.qscheme()))
    if np.any(zps != 0):
        raise ExportError("layer '%s': weight zero point must be 0 (.qbin weights are symmetric)" % name)
    w = qw.int_repr().to(torch.int64).numpy()
    if w.min() < lo or w.max() > hi:
        raise ExportError("layer '%s': weight %d outside the declared range [%d, %d]" % (
            name, int(w.min() if w.min() < lo else w.max()), lo, hi))
    return w, scales


def export(converted: nn.Module, prepared: nn.Module, input_shape, path=None, name="torchao"):
    """Build (and write to path) the .qbin network; returns the qsim_qbin.Net."""
    c, h, w = (int(v) for v in input_shape)
    net = qb.Net(name)
    idx, s_in, zp_in, shape = None, None, 0, (c, h, w)
    steps = _plan(converted)
    if not steps or _kind(steps[0][1]) != "Quantize":
        raise ExportError("layer '%s': the model must start with a QuantStub (converted: Quantize)" % (
            steps[0][0] if steps else "input"))
    for i, (lname, mod) in enumerate(steps):
        kind = "flatten" if isinstance(mod, str) else _kind(mod)
        if kind == "Quantize":
            if i != 0:
                raise ExportError("layer '%s': a second Quantize" % lname)
            if mod.dtype != torch.quint8:
                raise ExportError("layer '%s': input dtype %s (quint8 only)" % (lname, mod.dtype))
            lo, hi = _declared(prepared, lname, "activation_post_process")
            s_in, zp_in = float(mod.scale), int(mod.zero_point)
            idx = net.input(lname, c, h, w, bits=_bits_of_range(lo, hi, False), signed=False, zp=zp_in,
                            scale=s_in, clamp=(lo, hi))
        elif kind in ("ConvReLU2d", "Conv2d", "Linear", "LinearReLU"):
            mod_name = type(mod).__module__
            if "quantized" not in mod_name or "qat" in mod_name:
                raise ExportError("layer '%s': %s is not a converted quantized module" % (lname, kind))
            relu = kind.endswith("ReLU2d") or kind == "LinearReLU"
            wlo, whi = _declared(prepared, lname, "weight_fake_quant")
            wi, ws = _weight_ints(lname, mod.weight(), wlo, whi)
            wbits = _bits_of_range(wlo, whi, True)
            if wbits > 8:
                raise ExportError("layer '%s': %d-bit weights (8 at most)" % (lname, wbits))
            s_acc = s_in * ws
            b = mod.bias()
            if b is None:
                bias = np.zeros(wi.shape[0], np.int64)
            else:
                bias = np.round(b.detach().double().numpy() / s_acc).astype(np.int64)   # half to even
            lo, hi = _declared(prepared, lname, "activation_post_process")
            s_out, zp_out = float(mod.scale), int(mod.zero_point)
            out = dict(bits=_bits_of_range(lo, hi, False), signed=False, zp=zp_out, scale=s_out,
                       act="relu" if relu else None, clamp=(max(lo, zp_out) if relu else lo, hi),
                       **_multipliers(s_in, ws, s_out, wi.shape[0]))
            store = eq.storage_bits(wbits)
            if kind.startswith("Conv"):
                if mod.padding_mode != "zeros" or mod.groups != 1:
                    raise ExportError("layer '%s': only zero padding and groups = 1" % lname)
                (kh, kw), (sh, sw), (ph, pw), (dh, dw) = mod.kernel_size, mod.stride, mod.padding, mod.dilation
                if kh != kw or sh != sw or ph != pw or dh != dw:
                    raise ExportError("layer '%s': only square kernels, strides, pads and dilations" % lname)
                idx = net.conv(lname, idx, wi, bias, stride=sh, pad=ph, dilation=dh, wbits=store, wsigned=True,
                               w_scale=ws if ws.size > 1 else float(ws[0]), **out)
            else:
                idx = net.fc(lname, idx, wi.reshape(wi.shape[0], -1), bias, wbits=store, wsigned=True,
                             w_scale=ws if ws.size > 1 else float(ws[0]), **out)
            s_in, zp_in = s_out, zp_out
        elif kind == "MaxPool2d":
            if mod.ceil_mode or mod.return_indices:
                raise ExportError("layer '%s': MaxPool2d with ceil_mode / return_indices" % lname)
            k, st, pd, dl = (mod.kernel_size, mod.stride, mod.padding, mod.dilation)
            if not all(isinstance(v, int) for v in (k, st, pd, dl)):
                raise ExportError("layer '%s': only square pooling windows" % lname)
            idx = net.maxpool(lname, idx, k, st, pd, dl)
        elif kind in ("Identity", "flatten"):
            continue           # fused-away ReLU; flatten is implicit before an FC (CHW order)
        elif kind == "DeQuantize":
            if i != len(steps) - 1:
                raise ExportError("layer '%s': DeQuantize must be last" % lname)
        else:
            raise ExportError("layer '%s': %s has no .qbin equivalent in this exporter" % (lname, kind))
    if isinstance(steps[-1][1], str) or _kind(steps[-1][1]) != "DeQuantize":
        raise ExportError("layer '%s': the model must end with a DeQuantStub" % steps[-1][0])
    net.validate(name)
    if path is not None:
        net.save(path)
    return net


def input_integers(converted: nn.Module, x: torch.Tensor, prepared: nn.Module) -> np.ndarray:
    """The .qbin input integers of float inputs x: torch's Quantize, clamped to the declared range."""
    steps = _plan(converted)
    qname, q = steps[0]
    lo, hi = _declared(prepared, qname, "activation_post_process")
    return q(x).int_repr().to(torch.int64).clamp(lo, hi).numpy()


@torch.no_grad()
def reference(converted: nn.Module, prepared: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Output integers of torch's converted model with every quantized activation clamped to
    its declared [quant_min, quant_max] (forward hooks that clamp the integers)."""
    hooks = []
    for lname, mod in _plan(converted):
        if isinstance(mod, str) or _kind(mod) in ("MaxPool2d", "Identity", "DeQuantize"):
            continue
        lo, hi = _declared(prepared, lname, "activation_post_process")

        def clamp(m, inp, out, lo=lo, hi=hi):
            # on the integers: torch 1.13's quantized clamp scrambles channels-last tensors
            # (qnnpack's conv outputs), like its quantized hardtanh (docs/onnx_import.md)
            ints = out.int_repr().contiguous().clamp(lo, hi)
            return torch._make_per_tensor_quantized_tensor(ints, out.q_scale(), out.q_zero_point())
        hooks.append(mod.register_forward_hook(clamp))
    try:
        dq = [m for m in converted.modules() if _kind(m) == "DeQuantize"]
        captured: Dict[str, torch.Tensor] = {}
        h = dq[0].register_forward_hook(lambda m, inp, out: captured.setdefault("q", inp[0]))
        hooks.append(h)
        converted(x)
        return captured["q"].int_repr().to(torch.int64).reshape(x.shape[0], -1).numpy()
    finally:
        for h in hooks:
            h.remove()


