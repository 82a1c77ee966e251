#!/usr/bin/python3
"""Transformers at low precision as .qbin (format version 2, docs/qbin.md).

    xfmr_zoo.py --net vit_tiny --weights ternary [--layers N] [--tokens T] [-o PATH]
    xfmr_zoo.py --net bert_base --weights w4 --layers 2
    xfmr_zoo.py --net gpt2_small --weights w8 --tokens 128
    xfmr_zoo.py --net llama_style --weights ternary --layers 2

Nets, from their published shapes (../shared/reference/transformers.md, section 5):
  vit_tiny   timm vit_tiny_patch16_224: d 192, 3 heads, MLP 768, 12 layers, 224x224 image
  vit_base   timm vit_base_patch16_224: d 768, 12 heads, MLP 3072, 12 layers
  bert_base  HF bert-base-uncased:      d 768, 12 heads, MLP 3072, 12 layers, sequence 128
  gpt2_small HF gpt2:                   d 768, 12 heads, MLP 3072 (GELU), 12 layers, LayerNorm,
                                        causal; the prompt of --tokens (default 128)
  llama_style TinyLlama-1.1B's shape:   d 2048, 32 heads, MLP 5632 (SwiGLU), 22 layers, RMSNorm,
                                        rotary embeddings (base 10000), causal
Weights: w8, w4, w2 (LSQ-like: step 2 mean|W| / sqrt(Qp), Qp = 2^(b-1) - 1, per output
channel) or ternary (BitNet b1.58 absmean: gamma = mean|W| per tensor, round(W / gamma)
clipped to [-1, 1]); 8-bit activations everywhere (softmax output 8-bit unsigned). --act dynamic
quantizes each token's activations by their absmax in front of every projection (BitNet b1.58's
BitLinear: DYNQUANT, the ternary 1x1 conv, a row-absmax MUL that re-applies the token's scale).

Each block is pre-norm: layernorm, Q/K/V as 1x1 convolutions over (d, T, 1) (channels =
hidden, height = tokens), heads split by reshape, scores = matmul(Qh, Kh, trans_a) scaled by
1/sqrt(dh) in its multiplier, softmax over the keys, O^T = matmul(Vh, P, trans_b), heads merged
by reshape, output projection, residual add, layernorm, MLP with a table GELU, residual add.
ViT: the 16x16/16 patch embedding is a conv on the 3x224x224 image, reshaped to (d, 196, 1); the
class token and position embeddings are left out (no op concatenates along tokens yet), so the
sequence is 196 tokens; a final layernorm, mean over tokens (gap) and a 1000-way fc. BERT: the
input is the embedded sequence (d, T, 1), 8-bit; no pooler. Decoders: the same pre-norm block with
the causal softmax mask (docs/qbin.md), the prompt graph of T tokens (prefill); GPT-2 with LayerNorm and
a table GELU, the Llama-style decoder with RMSNorm, rotary position embeddings of Q and K (ROPE: an
integer rotation by a Q14 cos/sin table, docs/qbin.md) and SwiGLU (a table SiLU of the gate times the up
projection, by MUL) and TinyLlama's grouped-query attention (32 query heads over 4 key/value heads: the
attention matmuls' grouped bit, docs/qbin.md). --embed makes the input token ids (uint16) through an
EMBED table [vocab][d] (GPT-2 50257, Llama 32000); --lm-head ends the decoder with the final norm, the
LM head (a 1x1 conv to the vocabulary at the net's weight precision) and an ARGMAX per token (the greedy
next token); GPT-2's EMBED also adds its learned position embedding (wpe, [1024][768], rows 0..T-1), and
its LM head is tied to the token embedding as in GPT-2 (one tensor [50257][768][1][1], quantized with one
step so that the EMBED's single output scale is exact; stored and loaded once).
K and V (per KV head, after the split) go through KVCACHE layers (maximum context 1024 for GPT-2, 2048 for
the Llama-style decoder; its rope table holds 2048 positions), so `qsim run NET --decode N` runs the prompt
and then N decode steps with the caches growing in DRAM (docs/decode.md).

Weights are Gaussian (std 1/sqrt(fan_in)), LayerNorm gamma 1 and beta 0; every requantization is
calibrated on one synthetic input: each output scale puts the 99.9th percentile of the real
values at the top of its 8-bit range, multipliers are the exact real ratios. Deterministic
(seeded). Prints a summary; `qsim info PATH` shows the file.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from . import qbin as Q  # noqa: E402

NETS = {
    "vit_tiny": dict(d=192, heads=3, mlp=768, layers=12, image=224, patch=16, classes=1000),
    "vit_base": dict(d=768, heads=12, mlp=3072, layers=12, image=224, patch=16, classes=1000),
    "bert_base": dict(d=768, heads=12, mlp=3072, layers=12, tokens=128),
    # decoders: the prompt (prefill) graph with a causal mask; no LM head (see the docstring)
    "gpt2_small": dict(d=768, heads=12, mlp=3072, layers=12, tokens=128, causal=True, max_context=1024, vocab=50257,
                       positions=1024, tied=True),   # GPT-2's LM head is its token embedding (tied)
    # TinyLlama: 32 query heads sharing 4 key/value heads (grouped-query attention), vocabulary 32000
    "llama_style": dict(d=2048, heads=32, kv_heads=4, mlp=5632, layers=22, tokens=128, causal=True, norm="rms",
                        ffn="swiglu", rope=10000.0, max_context=2048, vocab=32000),
}
WEIGHTS = {"w8": 8, "w4": 4, "w2": 2, "ternary": 2}


class Builder:
    def __init__(self, name, weights, seed):
        self.net = Q.Net(name)
        self.rng = np.random.default_rng(seed)
        self.weights = weights
        self.outs = []
        self.x = None

    def done(self, i):
        self.outs.append(Q.eval_layer(self.net, i, self.outs, 32, self.x))
        return i

    def calib(self, real):
        """Output scale of a signed 8-bit tensor holding `real`."""
        return max(float(np.percentile(np.abs(real), 99.9)), 1e-6) / 127.0

    def quant_weights(self, w, per_tensor=False):
        """Integer weights and per-output-channel scales (per_tensor: one step for all, e.g. a tied
        embedding whose rows share the EMBED's one output scale)."""
        if self.weights == "ternary":
            gamma = max(float(np.abs(w).mean()), 1e-5)
            return np.clip(np.round(w / gamma), -1, 1).astype(np.int64), np.full(w.shape[0], gamma), 2
        b = WEIGHTS[self.weights]
        qp = 2 ** (b - 1) - 1
        axes = tuple(range(1, w.ndim))
        step = 2.0 * np.abs(w).mean(axis=axes) / math.sqrt(qp)
        if per_tensor:
            step = np.full(w.shape[0], float(step.mean()))
        q = np.clip(np.round(w / step.reshape((-1,) + (1,) * (w.ndim - 1))), -qp - 1, qp)
        return q.astype(np.int64), step, b

    def conv(self, name, src, out_c, k=1, stride=1, in_scale=None):
        """in_scale: the input's real step when its out_scale is not one (a dynquant's: 1/127 of
        the token's absmax, counted here in units of that absmax)"""
        s = self.net.layers[src]
        s_in = s.out_scale if in_scale is None else in_scale
        fan_in = s.out_c * k * k
        w = self.rng.normal(size=(out_c, s.out_c, k, k)) / math.sqrt(fan_in)
        q, step, bits = self.quant_weights(w)
        i = self.net.conv(name, src, q, stride=stride, wbits=bits, w_scale=step, bits=8, signed=True, zp=0,
                          scale=1.0, multiplier=1e-3)
        acc = Q.layer_accumulator(self.net, i, self.outs, 32).astype(np.float64)
        real = acc * s_in * step.reshape(-1, 1, 1)
        out = self.calib(real)
        self.set_rq(i, s_in * step / out, out)
        return self.done(i)

    def bitlinear(self, name, src_q, src, out_c):
        """BitNet b1.58's BitLinear on a per-token-quantized input src_q = dynquant(src): the
        conv sees x q / m (m the token's absmax over channels), then a row-absmax mul
        multiplies by m: real = conv * m * s_src / 127."""
        c = self.conv(name, src_q, out_c, in_scale=1.0 / 127)
        lc, ls = self.net.layers[c], self.net.layers[src]
        i = self.net.mul(name + ".rescale", c, src, rowmax=True, bits=8, signed=True, zp=0, scale=1.0,
                         multiplier=1e-3)
        real = Q.layer_accumulator(self.net, i, self.outs, 32) * lc.out_scale * ls.out_scale
        out = self.calib(real)
        self.set_rq(i, lc.out_scale * ls.out_scale / out, out)
        return self.done(i)

    def linear(self, name, src, out_c, act_q):
        """A per-token projection: a 1x1 conv on static 8-bit activations, or, with act_q
        ("dynamic"), BitNet's absmax per-token quantization first (one dynquant per input,
        shared by the projections that read it: act_q caches it)."""
        if act_q is None:
            return self.conv(name, src, out_c)
        if src not in act_q:
            act_q[src] = self.done(self.net.dynquant(self.net.layers[src].name + ".q", src, bits=8))
        return self.bitlinear(name, act_q[src], src, out_c)

    def set_rq(self, i, reals, out_scale):
        l = self.net.layers[i]
        pairs = [Q.quantize_multiplier(float(v)) for v in np.atleast_1d(reals)]
        l.rq_mult = np.array([m for m, _ in pairs], np.int64).astype(np.int32)
        l.rq_shift = np.array([s for _, s in pairs], np.int64).astype(np.int8)
        l.out_scale = float(out_scale)

    def layernorm(self, name, src):
        s = self.net.layers[src]
        i = self.net.layernorm(name, src, gamma=np.ones(s.out_c), bits=8, signed=True, zp=0, scale=1.0)
        z = Q.layer_accumulator(self.net, i, self.outs, 32) / 65536.0
        out = self.calib(z)
        self.set_rq(i, 2.0 ** -16 / out, out)
        return self.done(i)

    def matmul(self, name, a, b, trans_a=False, trans_b=False, factor=1.0, grouped=False):
        la, lb = self.net.layers[a], self.net.layers[b]
        i = self.net.matmul(name, a, b, trans_a=trans_a, trans_b=trans_b, grouped=grouped, bits=8, signed=True,
                            zp=0, scale=1.0, multiplier=1e-3)
        real = Q.layer_accumulator(self.net, i, self.outs, 32) * la.out_scale * lb.out_scale * factor
        out = self.calib(real)
        self.set_rq(i, la.out_scale * lb.out_scale * factor / out, out)
        return self.done(i)

    def add(self, name, a, b):
        la, lb = self.net.layers[a], self.net.layers[b]
        big = max(la.out_scale, lb.out_scale)
        ma, mb = int(round(1024 * la.out_scale / big)), int(round(1024 * lb.out_scale / big))
        i = self.net.add(name, a, b, max(ma, 1), max(mb, 1), bits=8, signed=True, zp=0, scale=1.0, multiplier=1e-3)
        real = Q.layer_accumulator(self.net, i, self.outs, 32) * big / 1024
        out = self.calib(real)
        self.set_rq(i, big / 1024 / out, out)
        return self.done(i)

    def rmsnorm(self, name, src):
        s = self.net.layers[src]
        i = self.net.rmsnorm(name, src, gamma=np.ones(s.out_c), bits=8, signed=True, zp=0, scale=1.0)
        z = Q.layer_accumulator(self.net, i, self.outs, 32) / 65536.0
        out = self.calib(z)
        self.set_rq(i, 2.0 ** -16 / out, out)
        return self.done(i)

    def mul(self, name, a, b):
        la, lb = self.net.layers[a], self.net.layers[b]
        i = self.net.mul(name, a, b, bits=8, signed=True, zp=0, scale=1.0, multiplier=1e-3)
        real = Q.layer_accumulator(self.net, i, self.outs, 32) * la.out_scale * lb.out_scale
        out = self.calib(real)
        self.set_rq(i, la.out_scale * lb.out_scale / out, out)
        return self.done(i)

    def rope(self, name, src, head_dim, base, positions=None):
        s = self.net.layers[src]
        i = self.net.rope(name, src, head_dim, positions=positions, base=base, bits=8, signed=True, zp=0, scale=1.0,
                          multiplier=1e-3)
        real = Q.layer_accumulator(self.net, i, self.outs, 32) * s.out_scale * 2.0 ** -Q.ROPE_FRAC_BITS
        out = self.calib(real)
        self.set_rq(i, s.out_scale * 2.0 ** -Q.ROPE_FRAC_BITS / out, out)
        return self.done(i)

    def silu(self, name, src):
        s = self.net.layers[src]
        fn = lambda v: v / (1.0 + math.exp(-v))  # noqa: E731
        real = np.array([fn(v) for v in s.out_scale * np.arange(-128, 128)])
        out = max(float(np.abs(real).max()), 1e-6) / 127.0
        return self.done(self.net.lut(name, src, fn=fn, bits=8, signed=True, zp=0, scale=out))

    def gelu(self, name, src):
        s = self.net.layers[src]
        codes = np.arange(-128, 128)
        real = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in s.out_scale * codes])
        out = max(float(np.abs(real).max()), 1e-6) / 127.0
        i = self.net.lut(name, src, fn=lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))), bits=8, signed=True,
                         zp=0, scale=out)
        return self.done(i)


def build(net_name, weights, layers=None, tokens=None, seed=2026, act="static", embed=False, lm_head=False):
    """act: "static" (8-bit activations with calibrated scales) or "dynamic" (BitNet b1.58:
    per-token absmax int8 in front of every projection, its scale re-applied after). Decoders:
    embed = the input is token ids through an EMBED table [vocab][d]; lm_head = a final norm, the
    LM head (1x1 conv to vocab channels, weights at the net's precision) and an ARGMAX per token."""
    cfg = NETS[net_name]
    L = cfg["layers"] if layers is None else layers
    d, H = cfg["d"], cfg["heads"]
    KVH = cfg.get("kv_heads", H)
    tied = embed and lm_head and cfg.get("tied", False)
    dh = d // H
    tag = "%s_%s%s%s%s%s" % (net_name, weights, "_dyn" if act == "dynamic" else "",
                             "" if layers is None else "_l%d" % layers, "_emb" if embed else "",
                             "_head" if lm_head else "")
    b = Builder(tag, weights, seed)
    net = b.net
    if "image" in cfg:
        n = cfg["image"]
        x0 = net.input("image", c=3, h=n, w=n, bits=8, signed=True, zp=0, scale=1 / 64)
        b.x = np.clip(np.round(b.rng.normal(size=(3, n, n)) * 40), -128, 127).astype(np.int32)
        b.done(x0)
        pe = b.conv("patch_embed", x0, d, k=cfg["patch"], stride=cfg["patch"])
        T = net.layers[pe].out_h * net.layers[pe].out_w
        cur = b.done(net.reshape("tokens", pe, d, T, 1))
    elif embed:   # token ids (uint16: GPT-2's 50257 and Llama's 32000 fit) through the embedding table
        T = tokens or cfg["tokens"]
        x0 = net.input("token_ids", c=1, h=T, w=1, bits=16, signed=False, zp=0, scale=0.0)
        b.x = b.rng.integers(0, cfg["vocab"], size=(1, T, 1)).astype(np.int32)
        b.done(x0)
        pos = None   # GPT-2's learned position embedding (wpe), added to the token rows in the EMBED
        if cfg.get("positions"):
            pos = np.clip(np.round(b.rng.normal(size=(cfg["positions"], d)) * 8), -127, 127).astype(np.int64)
        if tied:     # one tensor [vocab][d][1][1]: the embedding rows and the LM head's weights
            w = b.rng.normal(size=(cfg["vocab"], d, 1, 1)) / math.sqrt(d)
            q, step, wbits = b.quant_weights(w, per_tensor=True)
            table = net.add_tensor("wte", q, Q.dtype_for_bits(wbits), True, scale=step, axis=0)
            cur = b.done(net.embed("embed_tokens", x0, table, positions=pos, pbits=8, bits=8, signed=True, zp=0,
                                   scale=float(step[0])))
        else:
            table = np.clip(np.round(b.rng.normal(size=(cfg["vocab"], d)) * 24), -127, 127).astype(np.int64)
            cur = b.done(net.embed("embed_tokens", x0, table, tbits=8, positions=pos, pbits=8, bits=8, signed=True,
                                   zp=0, scale=1 / 32))
    else:
        T = tokens or cfg["tokens"]
        x0 = net.input("embeddings", c=d, h=T, w=1, bits=8, signed=True, zp=0, scale=1 / 32)
        b.x = np.clip(np.round(b.rng.normal(size=(d, T, 1)) * 32), -128, 127).astype(np.int32)
        cur = b.done(x0)
    norm = b.rmsnorm if cfg.get("norm") == "rms" else b.layernorm
    for li in range(L):
        p = "l%d." % li
        aq = {} if act == "dynamic" else None
        h = norm(p + "ln1", cur)
        # grouped-query attention: K and V have KVH heads, each shared by H / KVH query heads
        q, k, v = b.linear(p + "q", h, d, aq), b.linear(p + "k", h, KVH * dh, aq), b.linear(p + "v", h, KVH * dh, aq)
        if cfg.get("rope"):  # rotary position embeddings of Q and K, tokens at positions 0..T-1 (table: max context)
            mc = cfg.get("max_context")
            q, k = b.rope(p + "rope_q", q, dh, cfg["rope"], mc), b.rope(p + "rope_k", k, dh, cfg["rope"], mc)
        qh = b.done(net.reshape(p + "q_heads", q, H, dh, T))
        kh, vh = (b.done(net.reshape(p + n + "_heads", src, KVH, dh, T)) for n, src in (("k", k), ("v", v)))
        if cfg.get("max_context"):  # decoders: K and V cached for decode steps (docs/decode.md)
            kh = b.done(net.kvcache(p + "k_cache", kh, cfg["max_context"]))
            vh = b.done(net.kvcache(p + "v_cache", vh, cfg["max_context"]))
        gqa = KVH != H
        s = b.matmul(p + "scores", qh, kh, trans_a=True, factor=1 / math.sqrt(dh), grouped=gqa)
        # decoders: query i sees keys j <= i (docs/qbin.md, SOFTMAX causal mask, offset 0 for a prompt)
        pr = b.done(net.softmax(p + "softmax", s, axis=2, bits=8, causal=bool(cfg.get("causal"))))
        o = b.matmul(p + "attn_v", vh, pr, trans_b=True, grouped=gqa)
        om = b.done(net.reshape(p + "merge_heads", o, d, T, 1))
        cur = b.add(p + "res1", cur, b.linear(p + "proj", om, d, aq))
        h2 = norm(p + "ln2", cur)
        if cfg.get("ffn") == "swiglu":  # down(silu(gate(h)) * up(h))
            g = b.silu(p + "silu", b.linear(p + "gate", h2, cfg["mlp"], aq))
            f = b.mul(p + "swiglu", g, b.linear(p + "up", h2, cfg["mlp"], aq))
        else:
            f = b.gelu(p + "gelu", b.linear(p + "fc1", h2, cfg["mlp"], aq))
        cur = b.add(p + "res2", cur, b.linear(p + ("down" if cfg.get("ffn") == "swiglu" else "fc2"), f, d, aq))
    if "classes" in cfg:
        h = b.layernorm("norm", cur)
        g = net.gap("pool", h, bits=8, signed=True, zp=0, scale=net.layers[h].out_scale)
        g = b.done(g)
        w = b.rng.normal(size=(cfg["classes"], d)) / math.sqrt(d)
        qw, step, bits = b.quant_weights(w)
        i = net.fc("head", g, qw, wbits=bits, w_scale=step, bits=8, signed=True, zp=0, scale=1.0, multiplier=1e-3)
        real = Q.layer_accumulator(net, i, b.outs, 32) * net.layers[g].out_scale * step.reshape(-1, 1, 1)
        out = b.calib(real)
        b.set_rq(i, net.layers[g].out_scale * step / out, out)
        b.done(i)
    if lm_head:   # final norm, LM head to the vocabulary, greedy choice of the next token per position
        h = norm("norm_f", cur)
        if tied:      # the LM head's weight is the embedding table
            s_in, step = net.layers[h].out_scale, net.tensors[table].q_scale.astype(np.float64)
            i = net.conv("lm_head", h, table, bits=8, signed=True, zp=0, scale=1.0, multiplier=1e-3)
            real = Q.layer_accumulator(net, i, b.outs, 32).astype(np.float64) * s_in * step.reshape(-1, 1, 1)
            out = b.calib(real)
            b.set_rq(i, s_in * step / out, out)
            logits = b.done(i)
        else:
            logits = b.conv("lm_head", h, cfg["vocab"])
        b.done(net.argmax("next_token", logits, bits=16))
    net.validate()
    return net, b.x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=sorted(NETS), required=True)
    ap.add_argument("--weights", choices=sorted(WEIGHTS), default="w8")
    ap.add_argument("--layers", type=int, help="blocks (default: the published depth)")
    ap.add_argument("--tokens", type=int, help="sequence length (bert_base, decoders' prompt; default 128)")
    ap.add_argument("--act", choices=("static", "dynamic"), default="static",
                    help="activations: static 8-bit scales, or BitNet's dynamic per-token absmax int8 "
                         "(dynquant before every projection, its scale re-applied by a row-absmax mul)")
    ap.add_argument("--embed", action="store_true",
                    help="decoders: the input is token ids (uint16) through the embedding table (EMBED)")
    ap.add_argument("--lm-head", action="store_true",
                    help="decoders: end with a final norm, the LM head (1x1 conv to the vocabulary) and ARGMAX")
    ap.add_argument("-o", "--out", help="output .qbin (default NET_WEIGHTS[_lN][_emb][_head].qbin here)")
    ap.add_argument("--input-out", help="also write the calibration input as .npy")
    a = ap.parse_args(argv)
    if a.layers is not None and not 1 <= a.layers <= NETS[a.net]["layers"]:
        ap.error("--layers must be 1..%d" % NETS[a.net]["layers"])
    top = NETS[a.net].get("max_context", 2048)
    if a.tokens is not None and ("tokens" not in NETS[a.net] or not 1 <= a.tokens <= top):
        ap.error("--tokens applies to bert_base (1..2048), gpt2_small (1..1024: its maximum context) and "
                 "llama_style (1..2048)")
    if (a.embed or a.lm_head) and "vocab" not in NETS[a.net]:
        ap.error("--embed and --lm-head apply to the decoders (gpt2_small, llama_style)")
    net, x = build(a.net, a.weights, a.layers, a.tokens, act=a.act, embed=a.embed, lm_head=a.lm_head)
    path = a.out or net.name + ".qbin"
    net.save(path)
    if a.input_out:
        np.save(a.input_out, x)
    macs = sum(net.macs(i) for i in range(len(net.layers)))
    print("wrote %s: %d layers, %.3f GMACs, %d bytes" % (path, len(net.layers), macs / 1e9, os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
