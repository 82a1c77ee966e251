#!/usr/bin/python3
"""The tiny ViT exporter (scripts/qsim/train_fmnist_vit.py) keeps the fake-quantized torch model's
integers: for both variants (ternary absmean and LSQ W4, A8), from random weights, the .qbin that
export() builds is run by the NumPy reference evaluator (scripts/qsim/qbin.py, docs/qbin.md) on 8
random images, and every quantized tensor the torch model holds (patch embedding, position conv and
add, LayerNorms, Q/K/V, scores, attention output, projections, residual adds, MLP, table GELU) is
compared, code by code, with the .qbin layer of the same name: on average within MEAN_DIFF codes, at
most MAX_DIFF apart (see there why not equal). Also: the weights are stored at their widths (ternary {-1, 0, 1} as
int2, W4 in [-7, 7] as int4, patch embedding and classifier int8), the MAC count of the docstring's
formula equals the .qbin's, and the predictions equal the fake-quant model's.

usage: test_vit_export.py SOURCE_DIR"""
import os
import sys

import numpy as np

failures = []
# The .qbin requant rounds twice (docs/qbin.md: SaturatingRoundingDoublingHighMul, then a rounding
# right shift), the fake quantization once, so about a quarter of the codes of a layer whose
# multiplier needs a right shift are one apart, and the differences add up over the 2 blocks of a
# random (untrained, unnormalised) network: measured up to 1.46 codes on average and 9 at most.
# A broken rule (the scores' 1/sqrt(dh), a GELU or softmax table, a layout) gives tens of codes.
MEAN_DIFF, MAX_DIFF = 2.0, 16


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    root = sys.argv[1]
    sys.path.insert(0, os.path.join(root, "scripts"))
    try:
        import torch
    except ImportError:
        print("skip: no torch (scripts/setup-deps --training installs it)")
        return 77
    from qsim import qbin as Q
    from qsim import train_fmnist_vit as V
    torch.set_num_threads(1)
    torch.manual_seed(1)
    gen = np.random.default_rng(7)
    x_int = gen.integers(0, 256, size=(8, 1, 28, 28)).astype(np.int64)
    x_int[:, :, :, :6] = 0                                  # some flat regions, as in Fashion-MNIST
    x = V.to_real(x_int)
    fp32 = V.TinyViT()
    for name, (kind, wbits, _abits, _label) in V.VARIANTS.items():
        m = V.TinyViT(kind, wbits)
        V.start_qat(m, fp32, x)
        m.eval()
        net = V.export(m, name)
        names = {l.name: i for i, l in enumerate(net.layers)}
        # the torch model's codes: each quantizer's output / its step, in .qbin layout (C, H, W)
        codes = {}

        def hook(layer, to_qbin):
            def f(mod, _inp, out):
                codes[layer] = to_qbin(torch.round(out / mod.step.detach()).to(torch.int64).numpy())
            return f

        tok = lambda a: a.transpose(0, 2, 1)[..., None]              # (N, T, C) -> (N, C, T, 1)  # noqa: E731
        hooks = [(m.patch.aq, "patch_embed", None), (m.peg.aq, "pos_conv", None), (m.add0, "pos_add", None),
                 (m.norm, "norm", tok)]
        for li, blk in enumerate(m.blocks):
            p = "l%d." % li
            hooks += [(blk.ln1, p + "ln1", tok), (blk.q.aq, p + "q", tok), (blk.k.aq, p + "k", tok),
                      (blk.v.aq, p + "v", tok), (blk.scores, p + "scores", None),
                      (blk.attn_v, p + "attn_v", lambda a: a.transpose(0, 1, 3, 2)),
                      (blk.proj.aq, p + "proj", tok), (blk.res1, p + "res1", tok), (blk.ln2, p + "ln2", tok),
                      (blk.fc1.aq, p + "fc1", tok), (blk.gelu, p + "gelu", tok), (blk.fc2.aq, p + "fc2", tok),
                      (blk.res2, p + "res2", tok)]
        handles = [mod.register_forward_hook(hook(layer, f or (lambda a: a))) for mod, layer, f in hooks]
        with torch.no_grad():
            fq_logits = m(x).numpy()
        for h in handles:
            h.remove()
        outs = [Q.evaluate(net, xi) for xi in x_int]
        worst = []
        for _mod, layer, _f in hooks:
            ref = np.stack([o[names[layer]] for o in outs])
            mine = codes[layer].reshape(ref.shape)
            same = float((ref == mine).mean())
            far = int(np.abs(ref - mine).max())
            mean = float(np.abs(ref - mine).mean())
            worst.append((mean, far, layer))
            if mean > MEAN_DIFF or far > MAX_DIFF:
                check(False, "%s %s: mean |difference| %.3f codes, up to %d (%.2f%% equal)" % (
                    name, layer, mean, far, 100 * same))
        mean, far, layer = max(worst)
        check(all(mn <= MEAN_DIFF and f <= MAX_DIFF for mn, f, _ in worst),
              "%s: %d quantized tensors within %.1f codes on average, %d at most (worst %s: %.3f; max %d)" % (
                  name, len(worst), MEAN_DIFF, MAX_DIFF, layer, mean, max(f for _, f, _ in worst)))
        pred = np.array([int(np.argmax(o[net.output].reshape(-1))) for o in outs])
        check(np.array_equal(pred, fq_logits.argmax(1)), "%s: integer predictions == fake-quant's on %d images" % (
            name, len(pred)))
        # weights at their widths
        for l in net.layers:
            if l.kind_name not in ("CONV", "FC"):
                continue
            t = net.tensors[l.weight]
            vals = np.unique(t.data)
            if l.name in ("patch_embed", "head"):
                ok = Q.dtype_name(t.dtype, True) == "int8" and vals.min() >= -127 and vals.max() <= 127
            elif kind == "ternary":
                ok = Q.dtype_name(t.dtype, True) == "int2" and set(vals.tolist()) <= {-1, 0, 1}
            else:
                ok = Q.dtype_name(t.dtype, True) == "int4" and vals.min() >= -7 and vals.max() <= 7
            if not ok:
                check(False, "%s %s: weights %s stored as %s" % (name, l.name, vals, Q.dtype_name(t.dtype, True)))
        check(not any("weights" in f and name in f for f in failures),
              "%s: weights stored at their widths" % name)
        total = sum(net.macs(i) for i in range(len(net.layers)))
        check(total == V.macs(), "%s: MACs %d == the formula's %d" % (name, total, V.macs()))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
