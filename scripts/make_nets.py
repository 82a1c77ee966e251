#!/usr/bin/python3
"""Write qsim's deterministic example networks (.qbin, docs/qbin.md).

    make_nets.py                      # models/nets/tiny.qbin, demo_w2a4.qbin, xfmr_tiny.qbin, decoder_tiny.qbin,
                                      # lm_tiny.qbin, decoder_kv.qbin
    make_nets.py --out-dir DIR        # the same, elsewhere
    make_nets.py --resnet18 [PATH] --wbits 2 --abits 4
    make_nets.py --resnet50 [PATH] --wbits 4 --abits 4

The small nets are committed (a few KB); their layers are calibrated with the machinery of
scripts/model_zoo.py (LSQ-quantized Gaussian weights, synthetic batch norms folded into
int32 biases and per-channel multipliers, output scales at the 99.9th percentile), so a
simulator running them must reproduce qsim_qbin's reference evaluator bit for bit.

--resnet18/--resnet50 are the model zoo's torchvision-defined ResNets at 224x224 (first
conv and classifier with 8-bit weights), always rebuilt and written to PATH, by default
$QSIM_CACHE_DIR or ~/.cache/qsim/nets/resnet18_w2a4.qbin etc.: the same file as
`model_zoo.py --net resnet18 --wbits 2 --abits 4` (docs/model_zoo.md), which has more
networks and options. They need torch and torchvision; the small nets need only NumPy.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim_qbin import Net  # noqa: E402
from model_zoo import Calibrated, ZooError, smooth_images  # noqa: E402
import model_zoo  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------- small nets

def make_tiny() -> Net:
    """conv3x3+relu -> maxpool -> conv3x3+relu -> gap -> fc; int8 weights, 8-bit activations."""
    rng = np.random.default_rng(1)
    imgs = smooth_images(rng, 8, 3, 8, 8, -128, 127)
    b = Calibrated("tiny", 11, imgs, 3, 8, 8, bits=8, signed=True, scale=1 / 64)
    x = b.conv("conv1", 0, 4, 3, wbits=8, abits=8)
    x = b.plain(b.net.maxpool("pool1", x, 2))
    x = b.conv("conv2", x, 8, 3, wbits=8, abits=8)
    x = b.gap("gap", x)
    b.fc("fc", x, 10, wbits=8, abits=8)
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
    c2 = b.conv("conv2", c1, 8, 3, act=None, wbits=2, abits=4, zero_frac=z)
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
    b.fc("fc", fl, 10, wbits=2, abits=8, zero_frac=z)
    return net


def calibrating(net, x):
    """A function to call on each layer just added to net, in order: it sets a requantizing
    layer's multiplier so that its accumulators (on input x) fill half the output range, then
    evaluates the layer with the reference, and returns the layer's index."""
    import qsim_qbin as Q
    outs = []

    def done(i):
        l = net.layers[i]
        if l.kind in Q.REQUANT_KINDS and l.kind not in (Q.L_LAYERNORM, Q.L_RMSNORM):
            acc = Q.layer_accumulator(net, i, outs, 32).astype(np.float64)
            m, sh = Q.quantize_multiplier((l.clamp_hi - l.clamp_lo) / (2.0 * (np.abs(acc).max() + 1.0)))
            l.rq_mult, l.rq_shift = np.array([m], np.int32), np.array([sh], np.int8)
        outs.append(Q.eval_layer(net, i, outs, 32, x))
        return i
    return done


def make_xfmr_tiny() -> Net:
    """A pre-norm transformer block (format version 2): 8 hidden channels x 6 tokens, 2
    heads; layernorm, ternary 1x1-conv projections, head split/merge by reshape, both
    attention matmuls, softmax over the keys, residual adds, rmsnorm, a table SiLU gating
    a second projection (SwiGLU's mul). Multipliers are calibrated on one input so that
    each accumulator's spread fills its output range."""
    rng = np.random.default_rng(13)
    d, heads, T = 8, 2, 6
    net = Net("xfmr_tiny")
    x = rng.integers(-100, 100, size=(d, T, 1))
    done = calibrating(net, x)

    def ternary(shape):
        return np.clip(np.round(rng.normal(size=shape) / 1.25), -1, 1).astype(np.int64)

    q8 = dict(bits=8, signed=True, zp=0, scale=0.05, multiplier=0.01)
    x0 = done(net.input("x", c=d, h=T, w=1, bits=8, signed=True, zp=0, scale=0.05))
    h = done(net.layernorm("ln1", x0, gamma=np.linspace(0.8, 1.2, d), beta=np.linspace(-0.1, 0.1, d),
                           bits=8, signed=True, zp=0, scale=0.03))
    q, k, v = (done(net.conv(n, h, ternary((d, d, 1, 1)), wbits=2, **q8)) for n in ("wq", "wk", "wv"))
    qh, kh, vh = (done(net.reshape(n + "_heads", src, heads, d // heads, T))
                  for n, src in (("q", q), ("k", k), ("v", v)))
    s = done(net.matmul("scores", qh, kh, trans_a=True, bits=8, signed=True, zp=-3, scale=0.1, multiplier=0.01))
    p = done(net.softmax("softmax", s, axis=2, bits=8))
    o = done(net.matmul("attn_v", vh, p, trans_b=True, **q8))
    om = done(net.reshape("merge_heads", o, d, T, 1))
    r1 = done(net.add("res1", x0, done(net.conv("wo", om, ternary((d, d, 1, 1)), wbits=2, **q8)), 1, 1, **q8))
    h2 = done(net.rmsnorm("rms2", r1, gamma=np.ones(d), bits=8, signed=True, zp=0, scale=0.03))
    up = done(net.conv("w_up", h2, ternary((2 * d, d, 1, 1)), wbits=2, **q8))
    gate = done(net.conv("w_gate", h2, ternary((2 * d, d, 1, 1)), wbits=2, **q8))
    act = done(net.lut("silu", gate, fn=lambda t: t / (1.0 + np.exp(-t)), bits=8, signed=True, zp=0, scale=0.05))
    g = done(net.mul("swiglu", act, up, **q8))
    done(net.add("res2", r1, done(net.conv("w_down", g, ternary((d, 2 * d, 1, 1)), wbits=2, **q8)), 1, 1, **q8))
    return net


def make_decoder_tiny() -> Net:
    """A BitNet-b1.58-style decoder block (format version 2): 16 hidden channels x 24 tokens,
    2 heads; rmsnorm, per-token absmax quantization (dynquant) in front of the ternary
    projections with each token's scale re-applied after them (row-absmax mul), rotary
    position embeddings of Q and K, a causal softmax, a table SiLU and residual adds.
    Calibrated like xfmr_tiny."""
    rng = np.random.default_rng(17)
    d, heads, T = 16, 2, 24   # 24 tokens: small ifmap buffers need several row tiles (tests/test_compiler.c)
    net = Net("decoder_tiny")
    x = rng.integers(-100, 100, size=(d, T, 1))
    done = calibrating(net, x)

    def ternary(shape):
        return np.clip(np.round(rng.normal(size=shape) / 1.25), -1, 1).astype(np.int64)

    q8 = dict(bits=8, signed=True, zp=0, scale=0.05, multiplier=0.01)

    def bitlinear(name, src_norm, src_q, out_c):
        """ternary 1x1 conv of the quantized tokens, then the token's absmax re-applied"""
        c = done(net.conv(name, src_q, ternary((out_c, net.layers[src_q].out_c, 1, 1)), wbits=2, **q8))
        return done(net.mul(name + "_scale", c, src_norm, rowmax=True, **q8))

    x0 = done(net.input("x", c=d, h=T, w=1, bits=8, signed=True, zp=0, scale=0.05))
    h = done(net.rmsnorm("rms1", x0, gamma=np.linspace(0.8, 1.2, d), bits=8, signed=True, zp=0, scale=0.03))
    hq = done(net.dynquant("h_q", h, bits=8))
    q, k, v = (bitlinear(n, h, hq, d) for n in ("wq", "wk", "wv"))
    # rotary position embeddings of Q and K (Q14 cos/sin table; multiplier 2^-14: the same scale)
    q, k = (done(net.rope("rope_" + n, src, d // heads, bits=8, signed=True, zp=0, scale=0.05,
                          multiplier=2.0 ** -14)) for n, src in (("q", q), ("k", k)))
    qh, kh, vh = (done(net.reshape(n + "_heads", src, heads, d // heads, T))
                  for n, src in (("q", q), ("k", k), ("v", v)))
    s = done(net.matmul("scores", qh, kh, trans_a=True, bits=8, signed=True, zp=0, scale=0.1, multiplier=0.01))
    p = done(net.softmax("softmax", s, axis=2, bits=8, causal=True))
    o = done(net.matmul("attn_v", vh, p, trans_b=True, **q8))
    om = done(net.reshape("merge_heads", o, d, T, 1))
    r1 = done(net.add("res1", x0, done(net.conv("wo", om, ternary((d, d, 1, 1)), wbits=2, **q8)), 1, 1, **q8))
    h2 = done(net.rmsnorm("rms2", r1, gamma=np.ones(d), bits=8, signed=True, zp=0, scale=0.03))
    h2q = done(net.dynquant("h2_q", h2, bits=8))
    up = bitlinear("w_up", h2, h2q, 2 * d)
    act = done(net.lut("silu", up, fn=lambda t: t / (1.0 + np.exp(-t)), bits=8, signed=True, zp=0, scale=0.05))
    done(net.add("res2", r1, done(net.conv("w_down", act, ternary((d, 2 * d, 1, 1)), wbits=2, **q8)), 1, 1, **q8))
    return net


def make_lm_tiny() -> Net:
    """A whole tiny decoder language model (format version 2): 24 token ids (uint16) ->
    embedding table [300][16] plus position rows 2..25 of a [32][16] table -> one block with grouped-query attention (4 query heads
    sharing 2 key/value heads, dh = 4, causal) -> final rmsnorm -> LM head (1x1 conv to the 300
    vocabulary channels) -> argmax per token. Calibrated like xfmr_tiny."""
    rng = np.random.default_rng(23)
    d, heads, kv_heads, T, vocab = 16, 4, 2, 24, 300
    dh = d // heads
    net = Net("lm_tiny")
    ids = rng.integers(0, vocab, size=(1, T, 1))
    done = calibrating(net, ids)

    def w8(shape):
        return np.clip(np.round(rng.normal(size=shape) * 40), -127, 127).astype(np.int64)

    q8 = dict(bits=8, signed=True, zp=0, scale=0.05, multiplier=0.01)
    x = done(net.input("ids", c=1, h=T, w=1, bits=16, signed=False, zp=0, scale=0.0))
    # token rows plus learned position rows 2 .. 25 of a [32][16] table (GPT-2's wpe, at a position offset)
    x0 = done(net.embed("wte", x, w8((vocab, d)), positions=w8((32, d)) // 4, offset=2, bits=8, signed=True, zp=0,
                        scale=0.05))
    h = done(net.rmsnorm("rms1", x0, gamma=np.linspace(0.8, 1.2, d), bits=8, signed=True, zp=0, scale=0.03))
    q = done(net.conv("wq", h, w8((d, d, 1, 1)), wbits=8, **q8))
    k, v = (done(net.conv(n, h, w8((kv_heads * dh, d, 1, 1)), wbits=8, **q8)) for n in ("wk", "wv"))
    qh = done(net.reshape("q_heads", q, heads, dh, T))
    kh, vh = (done(net.reshape(n + "_heads", src, kv_heads, dh, T)) for n, src in (("k", k), ("v", v)))
    s = done(net.matmul("scores", qh, kh, trans_a=True, grouped=True, bits=8, signed=True, zp=0, scale=0.1,
                        multiplier=0.01))
    p = done(net.softmax("softmax", s, axis=2, bits=8, causal=True))
    o = done(net.matmul("attn_v", vh, p, trans_b=True, grouped=True, **q8))
    om = done(net.reshape("merge_heads", o, d, T, 1))
    r1 = done(net.add("res1", x0, done(net.conv("wo", om, w8((d, d, 1, 1)), wbits=8, **q8)), 1, 1, **q8))
    hf = done(net.rmsnorm("norm_f", r1, gamma=np.ones(d), bits=8, signed=True, zp=0, scale=0.03))
    logits = done(net.conv("lm_head", hf, w8((vocab, d, 1, 1)), wbits=8, **q8))
    done(net.argmax("next_token", logits, bits=16))
    return net


def make_decoder_kv() -> Net:
    """A GPT-2-style decoder block with KV caches (docs/decode.md): 16 hidden channels, a prompt
    of 8 tokens, 2 heads, K and V cached (maximum context 32, so up to 24 decode steps):
    layernorm, 1x1 projections, kvcache, causal softmax, table GELU, residual adds. Its output is
    shaped like its input, so `qsim run ... --decode N` feeds each output row back."""
    import qsim_qbin as Q
    rng = np.random.default_rng(23)
    d, heads, T, max_ctx = 16, 2, 8, 32
    net = Net("decoder_kv")
    x = rng.integers(-100, 100, size=(d, T, 1))
    outs = []

    def done(i):
        outs.append(Q.eval_layer(net, i, outs, 32, x))
        return i

    q8 = dict(bits=8, signed=True, zp=0, scale=0.05)

    def proj(name, src, out_c, mult):
        w = rng.integers(-7, 8, size=(out_c, net.layers[src].out_c, 1, 1))
        return done(net.conv(name, src, w, wbits=4, multiplier=mult, **q8))

    x0 = done(net.input("x", c=d, h=T, w=1, bits=8, signed=True, zp=0, scale=0.05))
    h = done(net.layernorm("ln1", x0, gamma=np.linspace(0.8, 1.2, d), **q8))
    q, k, v = (proj(n, h, d, 0.02) for n in ("wq", "wk", "wv"))
    qh, kh, vh = (done(net.reshape(n + "_heads", src, heads, d // heads, T))
                  for n, src in (("q", q), ("k", k), ("v", v)))
    kc = done(net.kvcache("k_cache", kh, max_ctx))
    vc = done(net.kvcache("v_cache", vh, max_ctx))
    s = done(net.matmul("scores", qh, kc, trans_a=True, bits=8, signed=True, zp=0, scale=0.1, multiplier=0.005))
    p = done(net.softmax("softmax", s, axis=2, bits=8, causal=True))
    o = done(net.matmul("attn_v", vc, p, trans_b=True, multiplier=0.02, **q8))
    om = done(net.reshape("merge_heads", o, d, T, 1))
    r1 = done(net.add("res1", x0, proj("wo", om, d, 0.03), 1, 1, multiplier=0.5, **q8))
    h2 = done(net.layernorm("ln2", r1, gamma=np.ones(d), **q8))
    f = done(net.lut("gelu", proj("fc1", h2, 2 * d, 0.02), fn=lambda t: 0.5 * t * (1 + math.erf(t / math.sqrt(2))),
                     **q8))
    done(net.add("res2", r1, proj("fc2", f, d, 0.015), 1, 1, multiplier=0.5, **q8))
    return net


# ---------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "nets"),
                    help="where tiny.qbin, demo_w2a4.qbin, xfmr_tiny.qbin, decoder_tiny.qbin and decoder_kv.qbin "
                         "go (default models/nets)")
    ap.add_argument("--resnet18", nargs="?", const="", metavar="PATH",
                    help="also write the zoo's ResNet-18 (default path in the cache folder)")
    ap.add_argument("--resnet50", nargs="?", const="", metavar="PATH",
                    help="also write the zoo's ResNet-50")
    ap.add_argument("--wbits", type=int, default=2, choices=range(1, 9), metavar="1..8")
    ap.add_argument("--abits", type=int, default=4, choices=range(2, 9), metavar="2..8")
    ap.add_argument("--no-small", action="store_true", help="skip tiny/demo")
    a = ap.parse_args(argv)

    if not a.no_small:
        for make, path in ((make_tiny, os.path.join(a.out_dir, "tiny.qbin")),
                           (make_demo_w2a4, os.path.join(a.out_dir, "demo_w2a4.qbin")),
                           (make_xfmr_tiny, os.path.join(a.out_dir, "xfmr_tiny.qbin")),
                           (make_decoder_tiny, os.path.join(a.out_dir, "decoder_tiny.qbin")),
                           (make_lm_tiny, os.path.join(a.out_dir, "lm_tiny.qbin")),
                           (make_decoder_kv, os.path.join(a.out_dir, "decoder_kv.qbin"))):
            net = make()
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            net.save(path)
            print("wrote %s (%d bytes, %d layers)" % (path, os.path.getsize(path), len(net.layers)))
    for name, path in (("resnet18", a.resnet18), ("resnet50", a.resnet50)):
        if path is None:
            continue
        try:
            st = model_zoo.ensure(name, a.wbits, a.abits, path=path or None, force=True)
        except ZooError as e:
            print("make_nets: %s" % e, file=sys.stderr)
            return 1
        print(model_zoo.describe(st, table=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
