#!/usr/bin/python3
"""Fashion-MNIST through the simulator: every shipped fmnist network (models/nets/
fmnist_accuracy.json, written by scripts/train_fmnist.py) run by `qsim run --input
--labels` on dlac.cfg over the 10,000 test images (read from Debian's
dataset-fashion-mnist by scripts/fmnist_data.py) must predict, image by image, what the
recorded integer model predicted (int_predictions: the CNNs' PyTorch integer model,
export_qbin.int_forward; the tiny ViTs' NumPy reference evaluator, scripts/qsim/train_fmnist_vit.py),
and reach the accuracy the training script recorded (the variants of --full, default the six
first shipped and the two ViTs, on every image; the later CNNs on the first --subset-n, default 2,000). The detailed engine is checked on
the first --detailed-n images (default 100), and the NumPy reference
(scripts/qsim_qbin.evaluate) on the first --numpy-n (default 20).
Exit 77 (skipped) when the dataset is not installed.

usage: test_fmnist_qsim.py QSIM SOURCE_DIR [--limit N] [--detailed-n N] [--numpy-n N] [--jobs N]
       [--full V1,V2,..] [--subset-n N]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsim")
    ap.add_argument("root")
    ap.add_argument("--limit", type=int, default=0, help="first N test images (0: all 10,000)")
    ap.add_argument("--detailed-n", type=int, default=100)
    ap.add_argument("--numpy-n", type=int, default=20)
    ap.add_argument("--jobs", default=None)
    ap.add_argument("--full", default="w8a8,w4a4,w2a4,ter_a4,bin_a4,w2a2,vit_ter_a8,vit_w4a8",
                    help="variants checked on all --limit images; the others (W3A3, FAQ, WRPN x2, Apprentice: "
                         "added later) on the first --subset-n, to keep the test's run time sane")
    ap.add_argument("--subset-n", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    import fmnist_data
    import qsim_qbin as q
    try:
        x, y = fmnist_data.load("test")
    except fmnist_data.DatasetError as exc:
        print("skip: %s" % exc)
        return 77
    nets = os.path.join(args.root, "models", "nets")
    acc = json.load(open(os.path.join(nets, "fmnist_accuracy.json")))
    n = args.limit or len(y)
    arch = os.path.join(args.root, "models", "arch", "dlac.cfg")
    full = set(args.full.split(","))
    ns = min(n, args.subset_n)
    with tempfile.TemporaryDirectory() as tmp:
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x[:n].astype(np.int32))
        np.save(yp, y[:n].astype(np.int32))
        xs, ys = os.path.join(tmp, "xs.npy"), os.path.join(tmp, "ys.npy")
        np.save(xs, x[:ns].astype(np.int32))
        np.save(ys, y[:ns].astype(np.int32))
        xd, yd = os.path.join(tmp, "xd.npy"), os.path.join(tmp, "yd.npy")
        np.save(xd, x[:args.detailed_n].astype(np.int32))
        np.save(yd, y[:args.detailed_n].astype(np.int32))
        for name, v in sorted(acc["variants"].items()):
            path = os.path.join(nets, v["file"])
            torch_pred = np.array([int(c) for c in v["int_predictions"]])
            check(len(torch_pred) == len(y) and int((torch_pred == y).sum()) == v["n_correct"],
                  "%s: recorded predictions give the recorded %d correct" % (name, v["n_correct"]))
            net = q.Net.load(path)
            ref = np.array([int(np.argmax(q.evaluate(net, xi)[net.output].reshape(-1))) for xi in x[:args.numpy_n]])
            check(np.array_equal(ref, torch_pred[:args.numpy_n]),
                  "%s: NumPy reference == the recorded integer model on the first %d images" % (name, args.numpy_n))
            fast = (xp, yp, n) if name in full else (xs, ys, ns)
            for engine, xin, yin, m in (("fast",) + fast, ("detailed", xd, yd, args.detailed_n)):
                js = os.path.join(tmp, "%s_%s.json" % (name, engine))
                cmd = [args.qsim, "run", "--arch", arch, path, "--input", xin, "--labels", yin, "--engine", engine,
                       "--json", js, "-q"] + (["--jobs", args.jobs] if args.jobs else [])
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True)
                dt = time.time() - t0
                if r.returncode:
                    check(False, "%s %s: qsim failed: %s" % (name, engine, r.stderr.strip()))
                    continue
                rep = json.load(open(js))
                pred = np.array(rep["predictions"])
                bad = np.nonzero(pred != torch_pred[:m])[0]
                check(len(bad) == 0, "%s %s: %d predictions == the recorded integer model's%s (%.1f s)" % (
                    name, engine, m, "" if not len(bad) else ", %d differ, first image %d" % (len(bad), bad[0]), dt))
                want = float((torch_pred[:m] == y[:m]).mean())
                check(abs(rep["accuracy"] - want) < 1e-9, "%s %s: accuracy %.4f == %.4f%s" % (
                    name, engine, rep["accuracy"], want, " (the training script's)" if m == len(y) else ""))
                if engine == "fast":
                    print("     %s: %.0f cycles, %.2f nJ per inference, %.0f accumulator overflows in the batch" % (
                        name, rep["total"]["cycles"], rep["total"]["energy_pj"] / 1e3,
                        sum(float(ly["acc_overflows"]) for ly in rep["layers"]) * m))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
