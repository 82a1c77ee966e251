#!/usr/bin/python3
"""Accuracy through the simulator: every shipped digits network, run by qsim on
the held-out test split, must predict exactly what the independent NumPy
integer reference (scripts/qsim_qbin.evaluate) predicts, image by image, and
reach the accuracy the training script recorded (models/nets/digits_accuracy.json).

usage: test_digits_qsim.py QSIM SOURCE_DIR"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    qsim, root = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as q

    nets = os.path.join(root, "models", "nets")
    acc = json.load(open(os.path.join(nets, "digits_accuracy.json")))
    data = np.load(os.path.join(nets, "digits_test.npz"))
    x, y = data["x"].astype(np.int32), data["y"].astype(np.int32)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        for name, v in sorted(acc["variants"].items()):
            path = os.path.join(nets, v["file"])
            net = q.Net.load(path)
            ref = np.array([int(np.argmax(q.evaluate(net, xi)[net.output].reshape(-1))) for xi in x])
            for engine in ("fast", "detailed"):
                js = os.path.join(tmp, f"{name}_{engine}.json")
                r = subprocess.run([qsim, "run", "--arch", os.path.join(root, "models", "arch", "dlac.cfg"), path,
                                    "--input", xp, "--labels", yp, "--engine", engine, "--json", js, "-q"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{name} {engine}: qsim failed: {r.stderr.strip()}")
                    failed += 1
                    continue
                rep = json.load(open(js))
                pred = np.array(rep["predictions"])
                ok = True
                if not np.array_equal(pred, ref):
                    bad = np.nonzero(pred != ref)[0]
                    print(f"{name} {engine}: {len(bad)} predictions differ from the NumPy reference, first image {bad[0]}")
                    ok = False
                if abs(rep["accuracy"] - v["int_acc"]) > 1e-6:
                    print(f"{name} {engine}: accuracy {rep['accuracy']:.6f}, training script recorded {v['int_acc']:.6f}")
                    ok = False
                print(f"{name:8s} {engine:8s} accuracy {rep['accuracy']*100:.2f}%  cycles/inference "
                      f"{rep['total']['cycles']:.0f}  energy {rep['total']['energy_pj']/1e3:.1f} nJ  "
                      f"{'ok' if ok else 'FAIL'}")
                passed += ok
                failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
