#!/usr/bin/python3
"""The decoder operators of docs/qbin.md (causal SOFTMAX, DYNQUANT, row-absmax MUL, ROPE) against
values worked out by hand from the document, through both the NumPy reference evaluator and
`qsim run` with both engines (every layer dumped).

The input x is (3 channels, 3 tokens, 1), zero point 0:
    x[c=0] = [0, 2, 0]
    x[c=1] = [1, 1, 0]
    x[c=2] = [2, -1, 0]
Viewed as (1, 3, 3) by a reshape, row h is channel h. The exponent table is T[0..2] =
100, 50, 25 and 0 beyond; every softmax has 8-bit output (q = 255).

usage: test_xfmr_decoder_ops.py QSIM_BINARY [SOURCE_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

X = np.array([[0, 2, 0], [1, 1, 0], [2, -1, 0]]).reshape(3, 3, 1)
TABLE = [100, 50, 25] + [0] * 253

# causal along axis 2, offset 0: line h keeps keys w <= h
#   h=0 [0]:        e=[100], s=100            -> [255, 0, 0]
#   h=1 [1,1]:      e=[100,100], s=200        -> floor((25500+100)/200) = 128, 128; 0
#   h=2 [2,-1,0]:   d=[0,3,2], e=[100,0,25], s=125 -> floor(25562/125)=204, floor(62/125)=0, floor(6437/125)=51
CAUSAL2 = [[255, 0, 0], [128, 128, 0], [204, 0, 51]]
# offset 1: line h keeps w <= h + 1
#   h=0 [0,2]:      d=[2,0], e=[25,100], s=125 -> 51, 204; 0
#   h=1 [1,1,0]:    e=[100,100,50], s=250     -> floor(25625/250)=102, 102, floor(12875/250)=51
#   h=2: as offset 0
CAUSAL2_OFF1 = [[51, 204, 0], [102, 102, 51], [204, 0, 51]]
# no mask, line h=0 [0,2,0]: e=[25,100,25], s=150 -> floor(6450/150)=43, floor(25575/150)=170, 43
PLAIN2_ROW0 = [43, 170, 43]
# causal along axis 1: the line (c, w) is the column w, keys h <= w
#   w=0 [0,1,2]:    keeps h=0                 -> [255, 0, 0]
#   w=1 [2,1,-1]:   keeps [2,1]: e=[100,50], s=150 -> floor(25575/150)=170, floor(12825/150)=85, 0
#   w=2 [0,0,0]:    e=[100]*3, s=300          -> floor(25650/300)=85 each
CAUSAL1 = [[255, 170, 85], [0, 85, 85], [0, 0, 85]]   # rows h, columns w
# dynquant, 4 bits (q = 7), over channels at each token t, halves away from zero:
#   t=0 [0,1,2]:  m=2: 0, round(3.5)=4, 7
#   t=1 [2,1,-1]: m=2: 7, 4, round(-3.5)=-4
#   t=2 [0,0,0]:  m=0: 0, 0, 0
DYNQUANT = [[0, 7, 0], [4, 4, 0], [7, -4, 0]]         # [c][t]
# row-absmax mul of the dynquant output by x's absmax at the token (2, 2, 0), multiplier 1:
ROWMAX = [[0, 14, 0], [8, 8, 0], [14, -8, 0]]

# ROPE, one head of dh = 4 (pairs (0, 2) and (1, 3)), input (4 channels, 2 tokens): channels
# [10, 0], [0, 5], [0, 10], [7, -5]; table rows (position) of (cos, sin) per pair i, multiplier 1:
#   position 0: i0 (1, 0),  i1 (2, 1);   position 1: i0 (0, 1), i1 (1, -1);   position 2: i0 (-1, 0), i1 (0, 0)
# offset 0: t=0 x=[10,0,0,7]: i0 a=10,b=0 -> 10, 0; i1 a=0,b=7 -> 0*2-7*1 = -7, 0*1+7*2 = 14
#           t=1 x=[0,5,10,-5]: i0 a=0,b=10 (0,1) -> -10, 0; i1 a=5,b=-5 (1,-1) -> 5-5 = 0, -5-5 = -10
# offset 1: t=0 at position 1: i0 (0,1) -> 0, 10; i1 (1,-1) -> 0+7*(-1)*(-1) = 7, 7
#           t=1 at position 2: i0 (-1,0) -> 0, -10; i1 (0,0) -> 0, 0
ROPE_X = np.array([[10, 0], [0, 5], [0, 10], [7, -5]]).reshape(4, 2, 1)
ROPE_TABLE = [[[1, 0], [2, 1]], [[0, 1], [1, -1]], [[-1, 0], [0, 0]]]
ROPE0 = [[10, -10], [-7, 0], [0, 0], [14, -10]]        # [c][t]
ROPE1 = [[0, 0], [7, 0], [10, -10], [7, 0]]


def build_rope(Q):
    net = Q.Net("rope_ops")
    x = net.input("x", c=4, h=2, w=1, bits=8, signed=True, zp=0, scale=0.1)
    want = {net.rope("rope0", x, 4, table=ROPE_TABLE, bits=8, signed=True, zp=0, scale=0.1, multiplier=1.0):
            np.array(ROPE0).reshape(4, 2, 1),
            net.rope("rope1", x, 4, offset=1, table=ROPE_TABLE, bits=8, signed=True, zp=0, scale=0.1,
                     multiplier=1.0): np.array(ROPE1).reshape(4, 2, 1)}
    net.output = len(net.layers) - 1
    return net, want


def build(Q):
    net = Q.Net("decoder_ops")
    x = net.input("x", c=3, h=3, w=1, bits=8, signed=True, zp=0, scale=0.1)
    s = net.reshape("s", x, 1, 3, 3)
    want = {}
    want[net.softmax("causal2", s, axis=2, table=TABLE, causal=True)] = np.array(CAUSAL2).reshape(1, 3, 3)
    want[net.softmax("causal2_off1", s, axis=2, table=TABLE, causal=True, offset=1)] = \
        np.array(CAUSAL2_OFF1).reshape(1, 3, 3)
    plain = net.softmax("plain2", s, axis=2, table=TABLE)
    want[net.softmax("causal1", s, axis=1, table=TABLE, causal=True)] = np.array(CAUSAL1).reshape(1, 3, 3)
    dq = net.dynquant("dynquant", x, bits=4)
    want[dq] = np.array(DYNQUANT).reshape(3, 3, 1)
    want[net.mul("rowmax", dq, x, rowmax=True, bits=8, signed=True, zp=0, scale=0.1, multiplier=1.0)] = \
        np.array(ROWMAX).reshape(3, 3, 1)
    lut = net.lut("lut", x, table=np.arange(256) - 128, bits=8, signed=True, zp=0, scale=0.1)
    net.output = len(net.layers) - 1
    return net, want, plain, dq, lut


def main(argv):
    qsim = argv[1]
    root = argv[2] if len(argv) > 2 else os.path.dirname(HERE)
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as Q
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)
            print("FAIL: " + what)

    net, want, plain, dq, lut = build(Q)
    ref = Q.evaluate(net, X)
    for i, w in want.items():
        check(np.array_equal(ref[i], w), "reference '%s': %s, by hand %s" % (net.layers[i].name, ref[i].ravel().tolist(),
                                                                             w.ravel().tolist()))
    check(ref[plain][0, 0].tolist() == PLAIN2_ROW0, "reference: unmasked row 0 %s" % ref[plain][0, 0].tolist())
    with tempfile.TemporaryDirectory(prefix="qsim_dec_") as tmp:
        qbin, npy = os.path.join(tmp, "n.qbin"), os.path.join(tmp, "x.npy")
        net.save(qbin)
        np.save(npy, X.astype(np.int32))
        reports = {}
        for engine in ("fast", "detailed"):
            out, js = os.path.join(tmp, engine), os.path.join(tmp, engine + ".json")
            p = subprocess.run([qsim, "run", "--arch", os.path.join(root, "models", "arch", "dlac.cfg"), qbin,
                                "--input", npy, "--dump-outputs", out, "--engine", engine, "--json", js, "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            check(p.returncode == 0, "%s: qsim run exit %d: %s" % (engine, p.returncode, p.stderr.strip()))
            if p.returncode:
                continue
            for i, w in want.items():
                got = np.load(os.path.join(out, "%03d_%s.npy" % (i, net.layers[i].name)))
                check(np.array_equal(got, w), "%s '%s': %s, by hand %s" % (engine, net.layers[i].name,
                                                                           got.ravel().tolist(), w.ravel().tolist()))
            with open(js) as f:
                reports[engine] = json.load(f)["layers"]
        if len(reports) == 2:
            check(reports["fast"] == reports["detailed"], "the engines' per-layer reports differ")
            # PPU element operations (docs/timing.md) seen through the PPU energy, which is
            # ops * ppu_pj_per_op: relative to the lut's 9 operations (1 per element)
            rep = reports["fast"]
            by_name = {n["name"]: n["energy_breakdown_pj"]["ppu"] for n in rep}
            ops = {k: v / by_name[net.layers[lut].name] * 9 for k, v in by_name.items()}
            for name, n_ops, why in (("causal2", 27, "3 per element, masked ones too"),
                                     ("dynquant", 3 * (2 * 3 + 32), "2n + 32 per token"),
                                     ("rowmax", 3 * (3 + 2 * 3), "n2 + 2n per token")):
                check(abs(ops[name] - n_ops) < 1e-6, "%s: %.3f PPU operations, want %d (%s)" % (name, ops[name],
                                                                                              n_ops, why))
    rnet, rwant = build_rope(Q)
    rref = Q.evaluate(rnet, ROPE_X)
    for i, w in rwant.items():
        check(np.array_equal(rref[i], w), "reference '%s': %s, by hand %s" % (rnet.layers[i].name,
                                                                              rref[i].ravel().tolist(), w.ravel().tolist()))
    with tempfile.TemporaryDirectory(prefix="qsim_rope_") as tmp:
        qbin, npy = os.path.join(tmp, "r.qbin"), os.path.join(tmp, "x.npy")
        rnet.save(qbin)
        np.save(npy, ROPE_X.astype(np.int32))
        for engine in ("fast", "detailed"):
            out = os.path.join(tmp, engine)
            p = subprocess.run([qsim, "run", "--arch", os.path.join(root, "models", "arch", "dlac.cfg"), qbin,
                                "--input", npy, "--dump-outputs", out, "--engine", engine, "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            check(p.returncode == 0, "%s: qsim run (rope) exit %d: %s" % (engine, p.returncode, p.stderr.strip()))
            for i, w in rwant.items():
                if p.returncode:
                    break
                got = np.load(os.path.join(out, "%03d_%s.npy" % (i, rnet.layers[i].name)))
                check(np.array_equal(got, w), "%s '%s': %s, by hand %s" % (engine, rnet.layers[i].name,
                                                                           got.ravel().tolist(), w.ravel().tolist()))
    print("%d failure(s)" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
