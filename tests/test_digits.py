#!/usr/bin/python3
"""The shipped digits networks, run by the reference evaluator, score what training said.

    test_digits.py [NETS_DIR]        (default: models/nets of this repository)

For every variant in NETS_DIR/digits_accuracy.json: load its .qbin with qsim_qbin, run
qsim_qbin.evaluate on each test input of NETS_DIR/digits_test.npz (the network's input
integers), take the argmax of the output layer, and check that the number of correct
predictions (and so the accuracy) equals the recorded integer-model figure.
Also checks the test file's shape and value range against each network's input layer.
Exit status 0 when everything passes.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
import qsim_qbin as q  # noqa: E402


def main(argv):
    nets = argv[1] if len(argv) > 1 else os.path.join(REPO, "models", "nets")
    with open(os.path.join(nets, "digits_accuracy.json")) as f:
        info = json.load(f)
    data = np.load(os.path.join(nets, "digits_test.npz"))
    x, y = data["x"], data["y"]
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL: " + what)

    check(x.ndim == 4 and x.shape[0] == y.shape[0] == info["n_test"],
          "digits_test.npz: x %s, y %s, n_test %d" % (x.shape, y.shape, info["n_test"]))
    check(np.issubdtype(x.dtype, np.integer), "digits_test.npz: x is not integer")
    check(len(info["variants"]) >= 4, "fewer than 4 variants recorded")
    for name, r in sorted(info["variants"].items()):
        net = q.read(os.path.join(nets, r["file"]))
        inp = net.layers[0]
        lo, hi = q.int_range(inp.out_bits, inp.out_signed)
        check(inp.shape == tuple(x.shape[1:]) and x.min() >= lo and x.max() <= hi,
              "%s: input layer %s %s-bit vs test data %s in %d..%d" % (
                  name, inp.shape, inp.out_bits, x.shape[1:], x.min(), x.max()))
        out = np.stack([q.evaluate(net, xi)[net.output].ravel() for xi in x])
        pred = out.argmax(1)
        n_ok = int((pred == y).sum())
        acc = n_ok / len(y)
        check(n_ok == r["n_correct"] and round(acc, 6) == r["int_acc"],
              "%s: evaluate() gets %d/%d correct (%.6f), digits_accuracy.json says %d (%.6f)" % (
                  name, n_ok, len(y), acc, r["n_correct"], r["int_acc"]))
        print("%-8s %-18s %6.2f%% (%d/%d)  %d bytes" % (
            name, r["file"], 100 * acc, n_ok, len(y), os.path.getsize(os.path.join(nets, r["file"]))))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all digits nets match digits_accuracy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
