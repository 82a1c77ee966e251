#!/usr/bin/python3
"""scripts/xfmr_zoo.py networks at reduced size through qsim, bit for bit.

    test_xfmr_zoo.py QSIM_BINARY [SOURCE_DIR]

Builds ViT-Ti/16 (one block, every weight format), BERT-base (one block, 16 tokens, W4A8), GPT-2
small (one block, a 16-token prompt, causal, W8A8, and ternary with BitNet's dynamic per-token
activation quantization) and the Llama-style decoder (one block, 8 tokens,
RMSNorm, rotary embeddings, SwiGLU, causal, ternary),
runs each with `qsim run --dump-outputs` on the dlac and tpu_int8 presets (fast engine; the
engines are compared field by field in tests/e2e_xfmr.py) and checks every layer's output
against the NumPy reference (scripts/qsim_qbin.py evaluate); checks the published MAC counts
(ViT-Ti block 102.0 M less the class token: 196 tokens; BERT-base per layer at T tokens:
4 T d^2 + 2 T^2 d + 2 T d f; GPT-2 the same, Llama-style 4 T d^2 + 2 T^2 d + 3 T d f) and that
`qsim info` lists the tables, matmuls and (decoders only) the causal masks.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    qsim = argv[0]
    root = argv[1] if len(argv) > 1 else os.path.dirname(HERE)
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as Q
    import xfmr_zoo as Z

    tmp = tempfile.mkdtemp(prefix="qsim_xzoo_")
    failures = []
    try:
        cases = [("vit_tiny", w, 1, None, "static", False) for w in ("w8", "w4", "w2", "ternary")]
        cases += [("bert_base", "w4", 1, 16, "static", False), ("gpt2_small", "w8", 1, 16, "static", False),
                  ("gpt2_small", "ternary", 1, 16, "dynamic", False), ("llama_style", "ternary", 1, 8, "static", False),
                  # whole language models: token ids -> embedding -> block -> final norm -> LM head -> argmax
                  ("gpt2_small", "w4", 1, 4, "static", True), ("llama_style", "w8", 1, 4, "static", True)]
        for net_name, w, layers, tokens, act, lm in cases:
            net, x = Z.build(net_name, w, layers, tokens, act=act, embed=lm, lm_head=lm)
            path = os.path.join(tmp, net.name + ".qbin")
            npy = os.path.join(tmp, net.name + ".npy")
            net.save(path)
            np.save(npy, x)
            ref = Q.evaluate(Q.read(path), x)
            macs = sum(net.macs(i) for i in range(len(net.layers)))
            if net_name in ("bert_base", "gpt2_small"):  # the causal mask skips nothing in the MAC count
                T, d, f = tokens, 768, 3072
                want = 4 * T * d * d + 2 * T * T * d + 2 * T * d * f + (T * d * 50257 if lm else 0)
            elif net_name == "llama_style":  # SwiGLU: gate, up and down, 3 T d f; K, V: 4 of 32 heads (GQA)
                T, d, f = tokens, 2048, 5632
                want = 2 * T * d * d + 2 * T * d * (d * 4 // 32) + 2 * T * T * d + 3 * T * d * f + \
                    (T * d * 32000 if lm else 0)
            else:  # patch embedding 196 x 192 x 768, one block at 196 tokens, head 192 x 1000
                T, d, f = 196, 192, 768
                want = 196 * 192 * 768 + 4 * T * d * d + 2 * T * T * d + 2 * T * d * f + 192 * 1000
            if macs != want:
                failures.append("%s: %d MACs, the published shapes give %d" % (net.name, macs, want))
            info = subprocess.run([qsim, "info", path], capture_output=True, text=True)
            decoder = net_name in ("gpt2_small", "llama_style")
            if info.returncode or "table[256]" not in info.stdout or "A^T x B" not in info.stdout or \
                    decoder != ("causal" in info.stdout) or (net_name == "llama_style") != ("rmsnorm" in info.stdout and "rope[2048x32]" in info.stdout) or \
                    decoder != ("kvcache" in info.stdout and ("max 1024" if net_name == "gpt2_small" else "max 2048") in info.stdout) or \
                    (act == "dynamic") != ("dynquant" in info.stdout and "x rowmax" in info.stdout) or \
                    (net_name == "llama_style") != ("A^T x B gqa" in info.stdout) or \
                    lm != ("embed" in info.stdout and "[%dx" % (50257 if net_name == "gpt2_small" else 32000)
                           in info.stdout and "argmax" in info.stdout) or \
                    (lm and net_name == "gpt2_small") != ("tied" in info.stdout):   # GPT-2's LM head is wte
                failures.append("%s: qsim info does not list the tables and matmuls:\n%s%s" % (
                    net.name, info.stdout, info.stderr))
            for arch in ("dlac", "tpu_int8"):
                out = os.path.join(tmp, "%s_%s" % (net.name, arch))
                r = subprocess.run([qsim, "run", "--arch", os.path.join(root, "models", "arch", arch + ".cfg"), path,
                                    "--input", npy, "--dump-outputs", out, "-q"], capture_output=True, text=True)
                if r.returncode:
                    failures.append("%s on %s: exit %d: %s" % (net.name, arch, r.returncode, r.stderr.strip()))
                    continue
                bad = []
                for i, l in enumerate(net.layers):
                    got = np.load(os.path.join(out, "%03d_%s.npy" % (i, l.name)))
                    if got.shape != ref[i].shape or (got != ref[i]).any():
                        bad.append(l.name)
                if bad:
                    failures.append("%s on %s: layers differ from the reference: %s" % (net.name, arch, bad[:5]))
                else:
                    print("ok   %s on %s (%d layers, %.1f M MACs)" % (net.name, arch, len(net.layers), macs / 1e6))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL " + f)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
