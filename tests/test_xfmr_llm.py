#!/usr/bin/python3
"""The language-model operators of docs/qbin.md (EMBED, ARGMAX, grouped MATMUL) against values worked
out by hand, through the NumPy reference evaluator and `qsim run` with both engines; the grouped
matmul's shared operand loaded once per group (docs/compiler.md), token ids at or above the
vocabulary refused by C and Python, and an LM head of GPT-2's 50257 vocabulary channels compiled and
run to an argmax on the dlac and tpu_int8 presets.

By hand:
  EMBED, table [[1, 2], [3, 4], [5, 6]] (vocab 3, hidden 2), ids [2, 0, 2, 1]:
      y[c=0] = [5, 1, 5, 3], y[c=1] = [6, 2, 6, 4]; with the position table [[10, 20], [30, 40], [50, 60],
      [70, 80], [90, 100]] at offset 1 (rows 1..4 added): [35, 51, 75, 93], [46, 62, 86, 104]
  ARGMAX over 3 channels: the columns of a second embedding, [-1, -1, -1] (all equal: 0),
      [1, 1, 0] (tie: the lower index 0), [-1, -1, -1], [0, 2, 2] (tie: 1) -> [0, 0, 0, 1]
  grouped MATMULs on views of the embeddings, worked out below (WANT): one with B shared by two
      matrices of A, one with A shared by two matrices of B

usage: test_xfmr_llm.py QSIM_BINARY [SOURCE_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
fails = []


def check(cond, msg):
    if not cond:
        fails.append(msg)
        print("FAIL " + msg)


def run(qsim, root, arch, qbin, npy, out=None, engine="fast", js=None):
    cmd = [qsim, "run", "--arch", os.path.join(root, "models", "arch", arch + ".cfg"), qbin, "--input", npy,
           "--engine", engine, "-q"]
    if out:
        cmd += ["--dump-outputs", out]
    if js:
        cmd += ["--json", js]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


def hand_net(Q):
    """ids (1, 4, 1) -> three embeddings, an argmax and two grouped matmuls on views of them."""
    net = Q.Net("llm_ops")
    ids = net.input("ids", c=1, h=4, w=1, bits=16, signed=False, zp=0, scale=0.0)
    emb = net.embed("emb", ids, [[1, 2], [3, 4], [5, 6]], bits=8, signed=True, zp=0, scale=0.1)
    cols = net.embed("emb_cols", ids, [[1, 1, 0], [0, 2, 2], [-1, -1, -1], [0, 0, 5]], bits=8, signed=True,
                     zp=0, scale=0.1)
    am = net.argmax("argmax", cols, bits=8)
    pe = net.embed("emb_pos", ids, [[1, 2], [3, 4], [5, 6]], positions=[[10, 20], [30, 40], [50, 60], [70, 80],
                                                                     [90, 100]], offset=1, bits=8, signed=True, zp=0,
                   scale=0.1)
    ab = net.embed("emb_ab", ids, [[1, 1], [2, 3], [1, 2], [4, 0]], bits=8, signed=True, zp=0, scale=0.1)
    out = dict(bits=16, signed=True, zp=0, scale=0.0)   # no requantization: the accumulators themselves
    mb = net.matmul("mm_b_shared", net.reshape("a2", ab, 2, 1, 4), net.reshape("b42", emb, 1, 4, 2),
                    grouped=True, **out)
    ma = net.matmul("mm_a_shared", net.reshape("a_one", ab, 1, 2, 4), net.reshape("b2", ab, 2, 4, 1),
                    grouped=True, **out)
    return net, {"emb": emb, "argmax": am, "mm_b_shared": mb, "mm_a_shared": ma, "emb_pos": pe}


IDS = np.array([2, 0, 2, 1], np.uint16).reshape(1, 4, 1)
# by hand (see the module docstring; ids [2, 0, 2, 1]):
#   emb: c0 = [5, 1, 5, 3], c1 = [6, 2, 6, 4]
#   emb_cols: token t takes row id_t: columns [-1,-1,-1], [1,1,0], [-1,-1,-1], [0,2,2]
#       argmax -> [0, 0, 0, 1]
#   emb_ab: c0 = [1, 1, 1, 2], c1 = [2, 1, 2, 3]; a2 = 2 matrices 1 x 4: [1, 1, 1, 2], [2, 1, 2, 3]
#   b42 = e1 as 4 x 2 rows [5, 1], [5, 3], [6, 2], [6, 4]
#   mm_b_shared[0] = [1*5 + 1*5 + 1*6 + 2*6, 1*1 + 1*3 + 1*2 + 2*4] = [28, 14]
#   mm_b_shared[1] = [2*5 + 1*5 + 2*6 + 3*6, 2*1 + 1*3 + 2*2 + 3*4] = [45, 21]
#   a_one = emb_ab as 1 matrix 2 x 4: rows [1, 1, 1, 2], [2, 1, 2, 3]; b2 = emb_ab as 2 matrices 4 x 1:
#       [1, 1, 1, 2]^T, [2, 1, 2, 3]^T
#   mm_a_shared[0] = [[1+1+1+4], [2+1+2+6]] = [[7], [11]]; mm_a_shared[1] = [[2+1+2+6], [4+1+4+9]] = [[11], [18]]
WANT = {
    "emb": np.array([[5, 1, 5, 3], [6, 2, 6, 4]]).reshape(2, 4, 1),
    # emb plus position rows 1..4: [30, 40], [50, 60], [70, 80], [90, 100]
    "emb_pos": np.array([[35, 51, 75, 93], [46, 62, 86, 104]]).reshape(2, 4, 1),
    "argmax": np.array([0, 0, 0, 1]).reshape(1, 4, 1),
    "mm_b_shared": np.array([[[28, 14]], [[45, 21]]]),
    "mm_a_shared": np.array([[[7], [11]], [[11], [18]]]),
}


def test_hand(Q, qsim, root, tmp):
    net, idx = hand_net(Q)
    ref = Q.evaluate(net, IDS)
    for name, w in WANT.items():
        check(np.array_equal(ref[idx[name]], w), "reference '%s': %s, by hand %s" % (name, ref[idx[name]].ravel().tolist(),
                                                                                  w.ravel().tolist()))
    qbin, npy = os.path.join(tmp, "h.qbin"), os.path.join(tmp, "ids.npy")
    net.save(qbin)
    np.save(npy, IDS)
    reports = {}
    for engine in ("fast", "detailed"):
        out, js = os.path.join(tmp, "h_" + engine), os.path.join(tmp, "h_%s.json" % engine)
        p = run(qsim, root, "dlac", qbin, npy, out, engine, js)
        check(p.returncode == 0, "%s: qsim run exit %d: %s" % (engine, p.returncode, p.stderr.strip()))
        if p.returncode:
            continue
        for name, w in WANT.items():
            i = idx[name]
            got = np.load(os.path.join(out, "%03d_%s.npy" % (i, net.layers[i].name)))
            check(np.array_equal(got.reshape(w.shape), w), "%s '%s': %s, by hand %s" % (
                engine, name, got.ravel().tolist(), w.ravel().tolist()))
        with open(js) as f:
            reports[engine] = json.load(f)["layers"]
    if len(reports) == 2:
        check(reports["fast"] == reports["detailed"], "the engines' per-layer reports differ")

    # a token id at or above the vocabulary (3 rows in 'emb', the smallest table) is refused by both
    bad = np.array([2, 0, 3, 1], np.uint16).reshape(1, 4, 1)
    bad_npy = os.path.join(tmp, "bad_ids.npy")
    np.save(bad_npy, bad)
    p = run(qsim, root, "dlac", qbin, bad_npy)
    needle = "token id 3 at index 2 is not below the vocabulary of 3 rows of embed layer 1 'emb'"
    check(p.returncode != 0 and needle in p.stderr and "bad_ids.npy" in p.stderr,
          "C refuses an id beyond the vocabulary naming the input file, id and layer (rc %d: %s)"
          % (p.returncode, p.stderr.strip()))
    try:
        Q.evaluate(net, bad)
        check(False, "Python accepted a token id beyond the vocabulary")
    except ValueError as e:
        check("token id 3 is not below the vocabulary of 3 rows of embed layer 1 'emb'" in str(e),
              "Python's message for an id beyond the vocabulary: %s" % e)


def test_gqa_traffic(Q, qsim, root, tmp):
    """lm_tiny's scores = Q_h^T K: 4 query heads of (4, 24) over 2 key heads of (4, 24), int8. On
    tpu_int8 each operand fits one tile, so by hand: the weight buffer receives each key head once,
    2 x 4 x 24 B = 192 B (not 4 x 96 = 384), the ifmap buffer each query head once, 4 x 96 = 384 B;
    attn_v = V_h^T P^T: the 2 value heads (A, the shared operand) once each, 192 B, and P's 4 heads
    (B) 4 x 24 x 24 = 2304 B."""
    qbin = os.path.join(root, "models", "nets", "lm_tiny.qbin")
    net = Q.read(qbin)
    ids = np.arange(24, dtype=np.uint16).reshape(1, 24, 1) * 7 % 300
    npy = os.path.join(tmp, "lm_ids.npy")
    np.save(npy, ids.astype(np.uint16))
    js = os.path.join(tmp, "lm.json")
    p = run(qsim, root, "tpu_int8", qbin, npy, js=js)
    check(p.returncode == 0, "lm_tiny on tpu_int8: exit %d: %s" % (p.returncode, p.stderr.strip()))
    if p.returncode:
        return
    with open(js) as f:
        layers = {l["name"]: l for l in json.load(f)["layers"]}
    for name, ifmap, weight in (("scores", 384, 192), ("attn_v", 192, 2304)):
        s = layers[name]["sram_bytes"]
        check(s["ifmap"]["write"] == ifmap and s["weight"]["write"] == weight,
              "%s: ifmap/weight SRAM writes %d/%d B, by hand %d/%d" % (name, s["ifmap"]["write"],
                                                                     s["weight"]["write"], ifmap, weight))
    # and its values: the whole model, both engines, every layer, against the reference
    ref = Q.evaluate(net, ids)
    for engine in ("fast", "detailed"):
        out = os.path.join(tmp, "lm_" + engine)
        p = run(qsim, root, "dlac", qbin, npy, out, engine)
        check(p.returncode == 0, "lm_tiny %s: exit %d: %s" % (engine, p.returncode, p.stderr.strip()))
        for i, l in enumerate(net.layers):
            f = os.path.join(out, "%03d_%s.npy" % (i, l.name))
            if p.returncode == 0 and os.path.exists(f):
                check(np.array_equal(np.load(f).reshape(ref[i].shape), ref[i]), "lm_tiny %s layer %s differs from the "
                      "reference" % (engine, l.name))


def test_gpt2_vocab(Q, qsim, root, tmp):
    """An LM head of 50257 output channels (GPT-2's vocabulary) and an argmax over them: compile and
    run on dlac (32 KiB ifmap tiles: the argmax streams the channels) and tpu_int8; the next-token
    ids equal the reference's."""
    rng = np.random.default_rng(3)
    V, d, T = 50257, 32, 4
    net = Q.Net("gpt2_head")
    ids = net.input("ids", c=1, h=T, w=1, bits=16, signed=False, zp=0, scale=0.0)
    e = net.embed("wte", ids, rng.integers(-100, 100, size=(V, d)), bits=8, signed=True, zp=0, scale=0.05)
    lg = net.conv("lm_head", e, rng.integers(-127, 128, size=(V, d, 1, 1)), wbits=8, bits=8, signed=True, zp=0,
                  scale=0.1, multiplier=1e-4)
    am = net.argmax("next_token", lg, bits=16)
    qbin, npy = os.path.join(tmp, "head.qbin"), os.path.join(tmp, "head_ids.npy")
    net.save(qbin)
    x = np.array([50256, 0, 31337, 198], np.uint16).reshape(1, T, 1)
    np.save(npy, x)
    want = Q.evaluate(net, x)[am].ravel()
    for arch in ("dlac", "tpu_int8"):
        out = os.path.join(tmp, "head_" + arch)
        p = run(qsim, root, arch, qbin, npy, out)
        check(p.returncode == 0, "50257-channel LM head on %s: exit %d: %s" % (arch, p.returncode, p.stderr.strip()))
        if p.returncode == 0:
            got = np.load(os.path.join(out, "%03d_next_token.npy" % am)).ravel()
            check(np.array_equal(got, want), "%s: next tokens %s, reference %s" % (arch, got.tolist(), want.tolist()))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    qsim = os.path.abspath(argv[1])
    root = os.path.abspath(argv[2] if len(argv) > 2 else os.path.join(HERE, ".."))
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as Q
    with tempfile.TemporaryDirectory(prefix="qsim_llm_") as tmp:
        test_hand(Q, qsim, root, tmp)
        test_gqa_traffic(Q, qsim, root, tmp)
        test_gpt2_vocab(Q, qsim, root, tmp)
    print("%d failure(s)" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
