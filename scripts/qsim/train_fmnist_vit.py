#!/usr/bin/python3
"""Train a tiny ViT on Fashion-MNIST, quantize it (ternary-A8, W4A8), export .qbin (format version 2).

    train_fmnist_vit.py                            # both variants -> models/nets/fmnist_vit_*.qbin
    train_fmnist_vit.py --variants vit_w4a8        # one of them
    train_fmnist_vit.py --out-dir /tmp/v           # write elsewhere (the shipped files stay)

Data: as scripts/qsim/train_fmnist.py (Debian's dataset-fashion-mnist, the first --train-limit
training images, all 10,000 test images; input integer q = pixel, real q / 255).

Network (sized for 2 cores; docs/fmnist.md "Tiny ViT"), every piece one of the .qbin kinds:
  patch embedding: conv 7x7 stride 7, 1 -> d = 64 channels, 4x4 = 16 patches;
  position: a conditional position encoding (CPVT's PEG, Chu et al., arXiv:2102.10882): a
      depthwise 3x3 conv (zero padding) over the 4x4 patch grid added to the patches;
      the zero padding tells each patch where it is (no op adds a constant tensor, so no
      learned position table);
  tokens: reshape (d, 4, 4) -> (d, 16, 1) (channels = hidden, height = tokens);
  2 pre-norm blocks: LayerNorm (no affine: the projection after it absorbs gamma and beta),
      Q/K/V as 1x1 convs, 4 heads split by reshape (4, 16, 16), scores = matmul(Qh, Kh,
      trans_a) with 1/sqrt(16) in its multiplier, integer softmax over the keys (8-bit
      unsigned, step 1/255), O^T = matmul(Vh, P, trans_b), heads merged by reshape, output
      projection, residual add; LayerNorm, MLP 64 -> 128 -> 64 with a table GELU (LUT),
      residual add;
  head: LayerNorm, mean over the 16 tokens (GAP), fc 64 -> 10 (int16 logits).
  1,174,144 MACs per image (conv, fc and matmul; macs() below).

Quantization (every tensor the integer network holds is quantized in training, with the
scale the .qbin uses, so the integer model keeps the fake-quant accuracy):
  weights: vit_ter_a8 ternary {-1, 0, 1} by BitNet b1.58's absmean (gamma = mean|W| per
  tensor, round(W / gamma) clipped to [-1, 1], straight-through); vit_w4a8 LSQ 4-bit [-7, 7]
  per output channel. The patch embedding and the classifier at --first-bits / --last-bits
  (default 8, LSQ), as train_fmnist.py does for the CNNs.
  activations: every layer output 8-bit signed with an LSQ step (initialised at the
  99.99th percentile of |x| on a batch, then learned); the softmax output 8-bit unsigned
  with step 1/255; the GELU is applied to the quantized input and its output quantized (the
  table the .qbin holds); biases rounded to the accumulator's step.
Training: fp32 (AdamW, cosine LR with warm-up, +-1 pixel shifts, horizontal flips), then
per variant a quantization-aware fine-tune from the fp32 weights.

Export: scripts/qsim/qbin.py's builder; the integer predictions on all 10,000 test images
are those of the independent NumPy reference evaluator (qbin.evaluate, docs/qbin.md). The
variants are added to DIR/fmnist_accuracy.json (under a lock, as train_fmnist.py --add)
with the fields the CNN variants have. Deterministic (fixed seeds, threads, algorithms).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import multiprocessing
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see train_digits.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from . import fmnist_data  # noqa: E402
from . import qbin as Q  # noqa: E402
from .export_qbin import LsqQuantizer, _RoundSTE  # noqa: E402
from .qat_train import machine_info, shift_batch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_SCALE = 1.0 / 255.0
ARCH = dict(image=28, patch=7, d=64, heads=4, mlp=128, blocks=2, classes=10)
VARIANTS = {   # name: (weights, weight bits, act bits, label)
    "vit_ter_a8": ("ternary", 2, 8, "ternary {-1, 0, 1} (absmean)"),
    "vit_w4a8": ("lsq", 4, 8, "int4 [-7, 7]"),
}
ACT_PCT = 99.99       # activation steps start at this percentile of |x| (then LSQ learns them)


def macs(a=ARCH):
    d, t, m = a["d"], (a["image"] // a["patch"]) ** 2, a["mlp"]
    patch = t * d * a["patch"] ** 2
    peg = t * d * 9
    block = t * (4 * d * d + 2 * d * m) + 2 * t * t * d
    return patch + peg + a["blocks"] * block + d * a["classes"]


class TernaryAbsmean(nn.Module):
    """BitNet b1.58 weights: gamma = mean|W| (per tensor), q = clip(round(W / gamma), -1, 1),
    forward q * gamma, gradient straight through to W."""
    bits = 2

    def __init__(self):
        super().__init__()
        self.enabled = False

    def gamma(self, w):
        return w.detach().abs().mean().clamp_min(1e-5)

    def forward(self, w):
        if not self.enabled:
            return w
        g = self.gamma(w)
        return w + (torch.clamp(torch.round(w / g), -1, 1) * g - w).detach()

    @torch.no_grad()
    def int_and_scale(self, w):
        g = self.gamma(w)
        return torch.clamp(torch.round(w / g), -1, 1), g.reshape(1).expand(w.shape[0]).clone()


class LsqWeights(LsqQuantizer):
    def __init__(self, bits, channels):
        super().__init__(bits, True, True, channels)

    @torch.no_grad()
    def int_and_scale(self, w):
        return self.integers(w), self.step.detach().clone().expand(w.shape[0]).clone()


class QProj(nn.Module):
    """Conv or linear with quantized weights, its bias rounded to the accumulator step
    s_in * s_w (straight-through), then an 8-bit output quantizer (none for the logits)."""

    def __init__(self, mod, wq, out_q=True):
        super().__init__()
        self.mod, self.wq = mod, wq
        self.aq = LsqQuantizer(8, True, False) if out_q else None
        self.quant = False

    def weights(self, s_in):
        w, b = self.mod.weight, self.mod.bias
        if not self.quant:
            return w, b
        wq = self.wq(w)
        sw = self.wq.int_and_scale(w)[1] if isinstance(self.wq, TernaryAbsmean) else self.wq.step.detach()
        s_acc = (s_in * sw.expand(w.shape[0]))
        return wq, _RoundSTE.apply(b / s_acc) * s_acc

    def out(self, y):
        return self.aq(y) if (self.quant and self.aq is not None) else y


def _aq():
    return LsqQuantizer(8, True, False)


class TinyViT(nn.Module):
    def __init__(self, weights="fp", wbits=8, first_bits=8, last_bits=8, a=ARCH):
        super().__init__()
        d, m, p = a["d"], a["mlp"], a["patch"]
        self.a = a
        self.heads = a["heads"]

        def wq(n_out, bits=None):
            if bits is not None:
                return LsqWeights(bits, n_out)
            if weights == "ternary":
                return TernaryAbsmean()
            return LsqWeights(wbits, n_out)

        self.patch = QProj(nn.Conv2d(1, d, p, stride=p), LsqWeights(first_bits, d))
        self.peg = QProj(nn.Conv2d(d, d, 3, padding=1, groups=d), wq(d))
        self.add0 = _aq()
        self.blocks = nn.ModuleList()
        for _ in range(a["blocks"]):
            blk = nn.Module()
            blk.ln1 = _aq()
            blk.q, blk.k, blk.v = (QProj(nn.Linear(d, d), wq(d)) for _ in range(3))
            blk.scores = _aq()
            blk.attn_v = _aq()
            blk.proj = QProj(nn.Linear(d, d), wq(d))
            blk.res1 = _aq()
            blk.ln2 = _aq()
            blk.fc1 = QProj(nn.Linear(d, m), wq(m))
            blk.gelu = _aq()
            blk.fc2 = QProj(nn.Linear(m, d), wq(d))
            blk.res2 = _aq()
            self.blocks.append(blk)
        self.norm = _aq()
        # the classifier: one step per tensor, so the int16 logits share one real scale
        self.head = QProj(nn.Linear(d, a["classes"]), LsqWeights(last_bits, 0), out_q=False)
        self.quant = False

    def set_quant(self, on):
        for mod in self.modules():
            if hasattr(mod, "quant"):
                mod.quant = on
            if isinstance(mod, (LsqQuantizer, TernaryAbsmean)):
                mod.enabled = on

    def aq(self, q, x):
        return q(x) if self.quant else x

    @staticmethod
    def step(q):
        return q.step.detach()

    def ln(self, x):
        # the integer LayerNorm has no epsilon (docs/qbin.md); a tiny one keeps fp32 finite
        return F.layer_norm(x, x.shape[-1:], eps=1e-8)

    def forward(self, x):
        quant = self.quant
        s_in = torch.tensor(IN_SCALE)
        w, b = self.patch.weights(s_in)
        x = self.patch.out(F.conv2d(x, w, b, stride=self.a["patch"]))
        s = self.step(self.patch.aq) if quant else None
        w, b = self.peg.weights(s)
        pe = self.peg.out(F.conv2d(x, w, b, padding=1, groups=x.shape[1]))
        x = self.aq(self.add0, x + pe)
        n, d = x.shape[0], x.shape[1]
        x = x.flatten(2).transpose(1, 2)                      # (N, T, d)
        t, h = x.shape[1], self.heads
        dh = d // h
        for blk in self.blocks:
            y = self.aq(blk.ln1, self.ln(x))
            s = self.step(blk.ln1) if quant else None
            qkv = []
            for pr in (blk.q, blk.k, blk.v):
                w, b = pr.weights(s)
                qkv.append(pr.out(F.linear(y, w, b)).reshape(n, t, h, dh).transpose(1, 2))   # (N, H, T, dh)
            q, k, v = qkv
            sc = self.aq(blk.scores, q @ k.transpose(2, 3) / math.sqrt(dh))
            p = torch.softmax(sc, -1)
            if quant:                                        # 8-bit unsigned, step 1/255
                p = _RoundSTE.apply(p * 255.0) / 255.0
            o = self.aq(blk.attn_v, p @ v).transpose(1, 2).reshape(n, t, d)
            w, b = blk.proj.weights(self.step(blk.attn_v) if quant else None)
            x = self.aq(blk.res1, x + blk.proj.out(F.linear(o, w, b)))
            y = self.aq(blk.ln2, self.ln(x))
            w, b = blk.fc1.weights(self.step(blk.ln2) if quant else None)
            y = self.aq(blk.gelu, F.gelu(blk.fc1.out(F.linear(y, w, b))))
            w, b = blk.fc2.weights(self.step(blk.gelu) if quant else None)
            x = self.aq(blk.res2, x + blk.fc2.out(F.linear(y, w, b)))
        y = self.aq(self.norm, self.ln(x))
        g = y.mean(1)
        if quant:                                             # GAP keeps the norm's step
            s = self.step(self.norm)
            g = torch.clamp(_RoundSTE.apply(g / s), -128, 127) * s
        w, b = self.head.weights(self.step(self.norm) if quant else None)
        return F.linear(g, w, b)


def lsq_quantizers(model):
    return [mod for mod in model.modules() if isinstance(mod, LsqQuantizer)]


@torch.no_grad()
def start_qat(model, fp32, x_calib):
    """The fp32 weights, quantizers on; activation steps calibrated at the ACT_PCT-th
    percentile of |x| on x_calib, weight steps by LSQ's rule; then all steps are learned."""
    model.load_state_dict(fp32.state_dict(), strict=False)
    model.set_quant(True)
    for q in lsq_quantizers(model):
        if not q.weight:
            q.calib_pct = ACT_PCT
    model.train()
    model(x_calib)
    for q in lsq_quantizers(model):
        q.calib_pct = None


def train(model, x, y, *, epochs, lr, wd, batch, seed, shift, log, warmup=0.05):
    """AdamW, per-step cosine LR from lr to 0 after a linear warm-up; weight decay on the
    weight matrices only. Augmentation: +-shift pixels, horizontal flip of half the images."""
    gen = torch.Generator().manual_seed(seed)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if name.endswith("weight") and p.dim() > 1 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    n = x.shape[0]
    steps = epochs * math.ceil(n / batch)
    n_warm = max(1, int(warmup * steps))
    t = 0
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = shift_batch(x[idx], gen, shift), y[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            f = (t + 1) / n_warm if t < n_warm else 0.5 * (1.0 + math.cos(math.pi * (t - n_warm) / (steps - n_warm)))
            for g in opt.param_groups:
                g["lr"] = lr * f
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
            t += 1
        log("    epoch %d/%d  loss %.4f" % (ep + 1, epochs, tot / n))
    model.eval()
    return model


@torch.no_grad()
def predict(model, x, batch=1000):
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


# ---------------------------------------------------------------------------- export

class _Exporter:
    """Builds the .qbin with qbin.Net's builder from the fake-quantized model: every scale
    is a trained quantizer's step, every multiplier the exact real ratio (quantize_multiplier)."""

    def __init__(self, model, name):
        self.m = model
        self.net = Q.Net(name)

    def proj(self, name, src, qp, s_in, k=1, stride=1, pad=0, groups=1, wbits=None):
        w = qp.mod.weight.detach()
        if w.dim() == 2:
            w = w.reshape(w.shape[0], w.shape[1], 1, 1)
        wi, sw = qp.wq.int_and_scale(qp.mod.weight.detach())
        wi = wi.reshape(w.shape).numpy().astype(np.int64)
        sw = sw.double().numpy()
        s_acc = float(s_in) * sw
        # the bias as the forward rounds it: float32 b / (s_in * s_w)
        bi = torch.round(qp.mod.bias.detach() / (torch.tensor(float(s_in)) * torch.as_tensor(sw, dtype=torch.float32)))
        bi = bi.numpy().astype(np.int64)
        kw = {}
        if qp.mod.weight.dim() == 4:
            kw = dict(stride=stride, pad=pad, groups=groups)
        bits = wbits or qp.wq.bits
        if qp.aq is None:          # logits: int16, real step s_acc * 2^e, e the smallest that fits
            lo, hi = Q.int_range(8, True)
            bound = np.abs(wi).reshape(wi.shape[0], -1).sum(1) * 128 + np.abs(bi)
            e = 0
            while bound.max() / 2.0 ** e > 32767:
                e += 1
            return self.net.fc(name, src, wi.reshape(wi.shape[0], -1), bias=bi, wbits=bits, w_scale=sw,
                               bias_scale=s_acc, bits=16, signed=True, zp=0, scale=float(s_acc[0]) * 2 ** e,
                               multiplier=np.full(wi.shape[0], 2.0 ** -e))
        s_out = float(qp.aq.step.item())
        return self.net.conv(name, src, wi, bias=bi, wbits=bits, w_scale=sw, bias_scale=s_acc, bits=8,
                             signed=True, zp=0, scale=s_out, multiplier=s_acc / s_out, **kw)

    def add(self, name, a, b, q):
        la, lb = self.net.layers[a], self.net.layers[b]
        big = max(la.out_scale, lb.out_scale)
        ma, mb = (max(1, int(round(1024 * s / big))) for s in (la.out_scale, lb.out_scale))
        s_out = float(q.step.item())
        return self.net.add(name, a, b, ma, mb, bits=8, signed=True, zp=0, scale=s_out,
                            multiplier=big / 1024 / s_out)

    def layernorm(self, name, src, q):
        s_out = float(q.step.item())
        return self.net.layernorm(name, src, gamma=np.ones(self.net.layers[src].out_c), bits=8, signed=True,
                                  zp=0, scale=s_out)

    def build(self):
        m, net, a = self.m, self.net, self.m.a
        d, h = a["d"], a["heads"]
        dh = d // h
        x = net.input("image", c=1, h=a["image"], w=a["image"], bits=8, signed=False, zp=0, scale=IN_SCALE)
        pe = self.proj("patch_embed", x, m.patch, IN_SCALE, stride=a["patch"])
        s_pe = net.layers[pe].out_scale
        peg = self.proj("pos_conv", pe, m.peg, s_pe, pad=1, groups=d)
        cur = self.add("pos_add", pe, peg, m.add0)
        t = net.layers[cur].out_h * net.layers[cur].out_w
        cur = net.reshape("tokens", cur, d, t, 1)
        for li, blk in enumerate(m.blocks):
            p = "l%d." % li
            y = self.layernorm(p + "ln1", cur, blk.ln1)
            sy = net.layers[y].out_scale
            qkv = [self.proj(p + nm, y, pr, sy) for nm, pr in (("q", blk.q), ("k", blk.k), ("v", blk.v))]
            qh, kh, vh = (net.reshape(p + nm + "_heads", i, h, dh, t) for nm, i in zip("qkv", qkv))
            s_sc = float(blk.scores.step.item())
            sc = net.matmul(p + "scores", qh, kh, trans_a=True, bits=8, signed=True, zp=0, scale=s_sc,
                            multiplier=net.layers[qh].out_scale * net.layers[kh].out_scale / math.sqrt(dh) / s_sc)
            pr = net.softmax(p + "softmax", sc, axis=2, bits=8)
            s_o = float(blk.attn_v.step.item())
            o = net.matmul(p + "attn_v", vh, pr, trans_b=True, bits=8, signed=True, zp=0, scale=s_o)
            om = net.reshape(p + "merge_heads", o, d, t, 1)
            pj = self.proj(p + "proj", om, blk.proj, s_o)
            cur = self.add(p + "res1", cur, pj, blk.res1)
            y = self.layernorm(p + "ln2", cur, blk.ln2)
            f1 = self.proj(p + "fc1", y, blk.fc1, net.layers[y].out_scale)
            g = net.lut(p + "gelu", f1, fn=lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))), bits=8,
                        signed=True, zp=0, scale=float(blk.gelu.step.item()))
            f2 = self.proj(p + "fc2", g, blk.fc2, net.layers[g].out_scale)
            cur = self.add(p + "res2", cur, f2, blk.res2)
        y = self.layernorm("norm", cur, m.norm)
        g = net.gap("pool", y, bits=8, signed=True, zp=0, scale=net.layers[y].out_scale)
        self.proj("head", g, m.head, net.layers[g].out_scale)
        net.validate()
        return net


def export(model, name):
    return _Exporter(model, name).build()


_NET = None


def _ref_init(path):
    global _NET
    _NET = Q.Net.load(path)


def _ref_predict(xs):
    return [int(np.argmax(Q.evaluate(_NET, xi)[_NET.output].reshape(-1))) for xi in xs]


def reference_predictions(path, x_int, jobs=2):
    """The NumPy reference evaluator's prediction for every image (in `jobs` processes)."""
    chunks = [x_int[i:i + 250] for i in range(0, len(x_int), 250)]
    if jobs <= 1:
        _ref_init(path)
        return np.array([p for c in chunks for p in _ref_predict(c)])
    with multiprocessing.get_context("fork").Pool(jobs, _ref_init, (path,)) as pool:
        return np.array([p for part in pool.map(_ref_predict, chunks) for p in part])


def to_real(x_int):
    return torch.as_tensor(np.array(x_int), dtype=torch.float32) * torch.tensor(IN_SCALE, dtype=torch.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of %s" % ",".join(VARIANTS))
    ap.add_argument("--data-dir", default=fmnist_data.DEFAULT_DIR)
    ap.add_argument("--first-bits", type=int, default=8, help="patch embedding weight bits")
    ap.add_argument("--last-bits", type=int, default=8, help="classifier weight bits")
    ap.add_argument("--train-limit", type=int, default=30000, help="first N training images (0: all 60,000)")
    ap.add_argument("--epochs-fp32", type=int, default=5)
    ap.add_argument("--epochs-qat", type=int, default=2)
    ap.add_argument("--lr-fp32", type=float, default=2e-3)
    ap.add_argument("--lr-qat", type=float, default=3e-4)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--shift", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-limit", type=int, default=0, help="reference predictions on the first N test images "
                    "(0: all; anything else is for trying settings and writes nothing)")
    ap.add_argument("--fp32-cache", help="save the trained fp32 network here, or load it when it was saved by a "
                    "run with the same settings (to train the variants in separate runs)")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "nets"))
    args = ap.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    for v in names:
        if v not in VARIANTS:
            ap.error("unknown variant %r (have %s)" % (v, ", ".join(VARIANTS)))
    if (args.first_bits, args.last_bits) != (8, 8):
        ap.error("the shipped table holds first/last 8 bits only")
    jpath = os.path.join(args.out_dir, "fmnist_accuracy.json")
    if args.eval_limit == 0 and not os.path.isfile(jpath):
        print("train_fmnist_vit: %s missing: run scripts/train_fmnist.py first (the ViT rows are added to it)"
              % jpath, file=sys.stderr)
        return 1
    try:
        xtr_i, ytr_np = fmnist_data.load("train", args.data_dir)
        xte_i, yte_np = fmnist_data.load("test", args.data_dir)
    except fmnist_data.DatasetError as exc:
        print("train_fmnist_vit: %s" % exc, file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    if args.train_limit > 0:
        xtr_i, ytr_np = xtr_i[:args.train_limit], ytr_np[:args.train_limit]
    if args.eval_limit:
        xte_i, yte_np = xte_i[:args.eval_limit], yte_np[:args.eval_limit]
    xtr, xte = to_real(xtr_i), to_real(xte_i)
    ytr, yte = torch.as_tensor(ytr_np), torch.as_tensor(yte_np)
    log("fashion-mnist: %d train, %d test; tiny ViT %s, %d MACs" % (len(ytr), len(yte), ARCH, macs()))
    command = " ".join(["scripts/train_fmnist_vit.py"] + list(sys.argv[1:] if argv is None else argv))

    t0 = time.time()
    torch.manual_seed(args.seed)
    fp32 = TinyViT()
    key = dict(vars(args), variants=None, eval_limit=None, out_dir=None, fp32_cache=None)
    cached = torch.load(args.fp32_cache) if args.fp32_cache and os.path.isfile(args.fp32_cache) else None
    if cached is not None and cached["key"] == key:       # the same deterministic run, saved
        fp32.load_state_dict(cached["state"])
        t_fp32 = cached["seconds"]
        log("fp32: from %s" % args.fp32_cache)
    else:
        train(fp32, xtr, ytr, epochs=args.epochs_fp32, lr=args.lr_fp32, wd=args.wd, batch=args.batch,
              seed=args.seed, shift=args.shift, log=log)
        t_fp32 = time.time() - t0
        if args.fp32_cache:
            torch.save({"key": key, "state": fp32.state_dict(), "seconds": t_fp32}, args.fp32_cache)
    fp32_acc = float((predict(fp32, xte) == yte).float().mean())
    log("fp32: test accuracy %.2f%% (%.1f s)" % (100 * fp32_acc, t_fp32))

    for vi, v in enumerate(names):
        kind, wbits, abits, label = VARIANTS[v]
        t0 = time.time()
        torch.manual_seed(args.seed + 1 + list(VARIANTS).index(v))
        m = TinyViT(kind, wbits, args.first_bits, args.last_bits)
        start_qat(m, fp32, xtr[:256])
        log("%s: QAT (%s weights, A%d, first %d, last %d bits, lr %g, %d epochs)" % (
            v, label, abits, args.first_bits, args.last_bits, args.lr_qat, args.epochs_qat))
        train(m, xtr, ytr, epochs=args.epochs_qat, lr=args.lr_qat, wd=0.0 if kind == "ternary" else args.wd / 5,
              batch=args.batch, seed=args.seed + 100 + list(VARIANTS).index(v), shift=args.shift, log=log)
        t_train = time.time() - t0
        fq_pred = predict(m, xte).numpy()
        log("%s: fake-quant %.2f%% (%.1f s)" % (v, 100 * (fq_pred == yte_np).mean(), t_train))
        t1 = time.time()
        fname = "fmnist_%s.qbin" % v
        path = os.path.join(args.out_dir if args.eval_limit == 0 else "/tmp", fname)
        net = export(m, "fmnist_%s" % v)
        net.save(path)
        d = Q.diff(net, Q.read(path))
        if d is not None:
            print("train_fmnist_vit: %s: re-read differs: %s" % (path, d), file=sys.stderr)
            return 1
        pred = reference_predictions(path, xte_i, args.threads)
        n_ok = int((pred == yte_np).sum())
        t_ref = time.time() - t1
        log("%s: integer (NumPy reference) %.2f%% (%d/%d), fake-quant agreement %.2f%%, %d bytes, %.1f s" % (
            v, 100 * n_ok / len(yte_np), n_ok, len(yte_np), 100 * (fq_pred == pred).mean(),
            os.path.getsize(path), t_ref))
        if args.eval_limit:
            continue
        res = {
            "file": fname, "weight_bits": wbits, "act_bits": abits, "weights": label,
            "first_bits": args.first_bits, "last_bits": args.last_bits, "width": 1,
            "method": "absmean" if kind == "ternary" else "lsq", "arch": "vit",
            "storage_bits": 2 if kind == "ternary" else 4,
            "macs": int(sum(net.macs(i) for i in range(len(net.layers)))),
            "fp32_acc": round(fp32_acc, 6), "fakequant_acc": round(float((fq_pred == yte_np).mean()), 6),
            "int_acc": round(n_ok / len(yte_np), 6), "n_correct": n_ok, "n_test": len(yte_np),
            "fakequant_int_agreement": round(float((fq_pred == pred).mean()), 6),
            "int_predictions": "".join(str(int(p)) for p in pred),
            "int_predictions_by": "qbin.evaluate (the NumPy reference evaluator)",
            "bytes": os.path.getsize(path), "fp32_seconds": round(t_fp32, 1),
            "finetune_seconds": round(t_train, 1), "export_seconds": round(t_ref, 1),
            "epochs_fp32": args.epochs_fp32, "epochs_qat": args.epochs_qat, "n_train": int(len(ytr)),
            "vit": dict(ARCH, position="PEG (depthwise 3x3 conv, zero padding)", pool="mean over tokens"),
            "command": command, "load_average": round(os.getloadavg()[0], 2), "threads": args.threads,
            "torch": torch.__version__, "machine": machine_info(),
        }
        lock = os.open(args.out_dir, os.O_RDONLY)
        fcntl.flock(lock, fcntl.LOCK_EX)        # train_fmnist.py --add may write at the same time
        try:
            with open(jpath) as f:
                info = json.load(f)
            info["variants"][v] = res
            with open(jpath + ".tmp", "w") as f:
                json.dump(info, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(jpath + ".tmp", jpath)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
