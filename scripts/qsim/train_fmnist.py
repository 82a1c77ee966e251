#!/usr/bin/python3
"""Train a small CNN on Fashion-MNIST, quantize it with LSQ, export .qbin nets at true widths.

    train_fmnist.py                          # the key variants -> models/nets/fmnist_*.qbin
    train_fmnist.py --variants w4a4,w2a4     # some of them
    train_fmnist.py --out-dir /tmp/f         # write elsewhere (the shipped files stay)

Data: Debian's dataset-fashion-mnist (scripts/fmnist_data.py: IDX files checked as they
are read), 28x28: the first --train-limit (default 30,000) of the 60,000 training images,
all 10,000 test images. The network input is the pixel
itself, unsigned 8-bit 0..255, real value q / 255.

Network (sized for the 16x16 dLAC-like array, 1.95 M MACs):
conv3x3 16 -> BN -> ReLU -> maxpool 2 -> conv3x3 32 -> BN -> ReLU -> maxpool 2
-> conv3x3 64 -> BN -> ReLU -> fc 10 on the 64x7x7 outputs (--head gap: global average
pool, then fc 10).

Method: the one of scripts/train_digits.py, with the shared code of scripts/qat_train.py
(training loop) and scripts/export_qbin.py (LSQ quantizers, batch-norm folding, integer
lowering, .qbin export and its checks): fp32 training (SGD + Nesterov, cosine LR, +-1 pixel
shifts and horizontal flips), then per variant an LSQ fine-tune from the fp32 weights.
Variants (first conv weights and the classifier's weights and input at --first-bits /
--last-bits, default 8): w8a8, w4a4, w2a4 (2-bit weights -2..1, LSQ's range),
ter_a4 (ternary weights {-1, 0, 1}), bin_a4 (bipolar weights +-1).

Writes DIR/fmnist_<variant>.qbin and DIR/fmnist_accuracy.json (per variant: accuracies,
and the integer model's prediction for each of the 10,000 test images as a string of
digits, which tests/test_fmnist_qsim.py compares with qsim's), and prints the table.
Deterministic (fixed seeds, fixed threads, deterministic algorithms).
"""
from __future__ import annotations

import argparse
import copy
import fcntl
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see train_digits.py

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import export_qbin as eq  # noqa: E402
from . import fmnist_data  # noqa: E402
from .qat_train import accuracy, machine_info, predict, start_faq, start_lsq, train  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_SCALE = 1.0 / 255.0      # input integer q = pixel, real q / 255
VARIANTS = {                # name: (weight bits, activation bits, full-range weights, label)
    "w8a8": (8, 8, False, "int8 [-127, 127]"),
    "w4a4": (4, 4, False, "int4 [-7, 7]"),
    "w2a4": (2, 4, True, "int2 [-2, 1]"),
    "ter_a4": (2, 4, False, "ternary {-1, 0, 1}"),
    "bin_a4": (1, 4, False, "bipolar {-1, +1}"),
    "w2a2": (2, 2, True, "int2 [-2, 1]"),
    "w3a3": (3, 3, True, "int3 [-4, 3] stored as int4"),
    "faq_w8a8": (8, 8, False, "int8 [-127, 127]"),
    "faq_w4a4": (4, 4, False, "int4 [-7, 7]"),
    "w2a2_x2": (2, 2, True, "int2 [-2, 1]"),
    "ter_a4_x2": (2, 4, False, "ternary {-1, 0, 1}"),
    "kd_w2a4": (2, 4, True, "int2 [-2, 1]"),
    "kd_ter_a4": (2, 4, False, "ternary {-1, 0, 1}"),
    "kd_w2a2": (2, 2, True, "int2 [-2, 1]"),
}
# how each variant is trained (default: LSQ fine-tune from the fp32 network of width 1)
METHOD = {v: "faq" for v in ("faq_w8a8", "faq_w4a4")}
METHOD.update({v: "kd" for v in ("kd_w2a4", "kd_ter_a4", "kd_w2a2")})
WIDTH = {"w2a2_x2": 2, "ter_a4_x2": 2}     # WRPN: every hidden layer twice as wide
KD = (0.5, 0.5, 1.0)        # Apprentice: beta (hard labels), gamma (teacher), temperature T
FAQ_PCT = 99.99             # FAQ: calibration percentile of the frozen quantizer ranges
FAQ_LR_DIV, FAQ_BATCH_MUL = 10, 2   # FAQ: 10x smaller learning rate, 2x larger batch than LSQ
DEFAULT_VARIANTS = ("w8a8", "w4a4", "w2a4", "ter_a4", "bin_a4")


def make_model(width=1, wbits=8, abits=8, wfull=False, first_bits=8, last_bits=8, head="flat"):
    c1, c2, c3 = 16 * width, 32 * width, 64 * width
    if head == "gap":
        tail = [eq.QGap(abits=last_bits, name="gap"), eq.QLinear(c3, 10, wbits=last_bits, name="fc")]
    else:                   # the classifier reads conv3's 64x7x7 outputs
        tail = [eq.QLinear(c3 * 7 * 7, 10, wbits=last_bits, name="fc")]
    return eq.QNet([
        eq.QInput(IN_SCALE, bits=8, signed=False, name="input"),
        eq.QConv2d(1, c1, 3, pad=1, wbits=first_bits, abits=abits, name="conv1"),
        eq.QMaxPool(2, name="pool1"),
        eq.QConv2d(c1, c2, 3, pad=1, wbits=wbits, abits=abits, wfull=wfull, name="conv2"),
        eq.QMaxPool(2, name="pool2"),
        eq.QConv2d(c2, c3, 3, pad=1, wbits=wbits, abits=abits, wfull=wfull, name="conv3"),
    ] + tail)


def macs(width=1, head="flat"):
    """Multiply-accumulates per image of make_model(width)."""
    c1, c2, c3 = 16 * width, 32 * width, 64 * width
    conv = 28 * 28 * c1 * 9 + 14 * 14 * c2 * c1 * 9 + 7 * 7 * c3 * c2 * 9
    return conv + (c3 * 10 if head == "gap" else c3 * 7 * 7 * 10)


def to_real(x_int) -> torch.Tensor:
    return torch.as_tensor(np.array(x_int), dtype=torch.float32) * torch.tensor(IN_SCALE, dtype=torch.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help="comma-separated subset of %s" % ",".join(VARIANTS))
    ap.add_argument("--add", action="store_true",
                    help="add the variants to the existing accuracy JSON instead of replacing it; refused unless "
                         "that JSON was written with the same settings and the fp32 network trains to the same "
                         "accuracy (deterministic runs)")
    ap.add_argument("--data-dir", default=fmnist_data.DEFAULT_DIR)
    ap.add_argument("--head", choices=("flat", "gap"), default="flat",
                    help="classifier on conv3's flattened 64x7x7 outputs (flat, 31,360 MACs) or on their "
                         "global average (gap, 640 MACs, with its own quantizer at --last-bits)")
    ap.add_argument("--first-bits", type=int, default=8, help="first conv weight bits")
    ap.add_argument("--last-bits", type=int, default=8, help="classifier weight bits and its input (GAP) bits")
    ap.add_argument("--train-limit", type=int, default=30000,
                    help="train on the first N training images (0: all 60,000); the default keeps a run within "
                         "minutes on a shared 2-core machine")
    ap.add_argument("--epochs-fp32", type=int, default=4)
    ap.add_argument("--epochs-qat", type=int, default=1)
    ap.add_argument("--lr-fp32", type=float, default=0.05)
    ap.add_argument("--lr-qat", type=float, default=0.01)
    ap.add_argument("--wd-fp32", type=float, default=5e-4)
    ap.add_argument("--wd-qat", type=float, default=1e-4, help="halved at 2 bits, 0 for bipolar weights")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--shift", type=int, default=1, help="random shift augmentation (pixels)")
    ap.add_argument("--check-n", type=int, default=300,
                    help="test images on which qsim_qbin.evaluate (NumPy, slow) must equal the integer torch model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "nets"))
    args = ap.parse_args(argv)

    names = [v for v in args.variants.split(",") if v]
    for v in names:
        if v not in VARIANTS:
            ap.error("unknown variant %r (have %s)" % (v, ", ".join(VARIANTS)))
    suffix = "" if (args.first_bits, args.last_bits) == (8, 8) else "_f%dl%d" % (args.first_bits, args.last_bits)
    jpath = os.path.join(args.out_dir, "fmnist_accuracy%s.json" % suffix)
    old = None
    if args.add:
        try:
            with open(jpath) as f:
                old = json.load(f)
        except (OSError, ValueError) as exc:
            print("train_fmnist: --add: cannot read %s: %s" % (jpath, exc), file=sys.stderr)
            return 1
    try:
        xtr_i, ytr_np = fmnist_data.load("train", args.data_dir)
        xte_i, yte_np = fmnist_data.load("test", args.data_dir)
    except fmnist_data.DatasetError as exc:
        print("train_fmnist: %s" % exc, file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out_dir, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t_all = time.time()
    if args.train_limit > 0:
        xtr_i, ytr_np = xtr_i[:args.train_limit], ytr_np[:args.train_limit]
    xtr, xte = to_real(xtr_i), to_real(xte_i)
    ytr, yte = torch.as_tensor(ytr_np), torch.as_tensor(yte_np)
    log("fashion-mnist: %d train, %d test" % (len(ytr), len(yte)))

    same = ("n_train", "epochs_fp32", "epochs_qat", "head", "check_n", "threads")
    now = {"n_train": int(len(ytr)), "epochs_fp32": args.epochs_fp32, "epochs_qat": args.epochs_qat,
           "head": args.head, "check_n": args.check_n, "threads": args.threads}
    if old is not None:
        bad = [k for k in same if old.get(k) != now[k]]
        if bad:
            print("train_fmnist: --add: %s was written with other settings (%s)" % (jpath, ", ".join(bad)),
                  file=sys.stderr)
            return 1
    fp32_wide = {}
    fp32 = fp32_acc = t_fp32 = None
    # --add with only widened variants needs no fp32 network of width 1 (the settings are checked)
    if old is None or any(WIDTH.get(v, 1) == 1 for v in names):
        t0 = time.time()
        torch.manual_seed(args.seed)
        fp32 = make_model(head=args.head)
        train(fp32, xtr, ytr, epochs=args.epochs_fp32, lr=args.lr_fp32, wd=args.wd_fp32, batch=args.batch,
              seed=args.seed, shift=args.shift, hflip=True, log=log)
        fp32_acc = accuracy(fp32, xte, yte, batch=1000)
        t_fp32 = time.time() - t0
        log("fp32: test accuracy %.2f%% (%.1f s)" % (100 * fp32_acc, t_fp32))
        fp32_wide[1] = (fp32, fp32_acc, t_fp32)
        if old is not None and old.get("fp32_acc") != round(fp32_acc, 6):
            print("train_fmnist: --add: %s was written with another fp32 network (fp32_acc %s, now %s)" % (
                jpath, old.get("fp32_acc"), round(fp32_acc, 6)), file=sys.stderr)
            return 1

    def save(results, total):
        """Write the JSON (after every variant: an interrupted run keeps what it finished)."""
        info = {
            "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist): the first n_train training images, "
                       "all 10,000 test images",
            "input": "uint8 q = pixel, real q/255",
            "n_train": int(len(ytr)), "n_test": int(len(yte)),
            "fp32_acc": None if fp32_acc is None else round(fp32_acc, 6),
            "fp32_seconds": None if t_fp32 is None else round(t_fp32, 1),
            "head": args.head, "epochs_fp32": args.epochs_fp32, "epochs_qat": args.epochs_qat,
            "check_n": args.check_n, "total_seconds": round(total, 1), "threads": args.threads,
            "torch": torch.__version__, "machine": machine_info(),
            "load_average": os.getloadavg()[0],
            "command": command,
            "variants": results,
        }
        lock = os.open(args.out_dir, os.O_RDONLY) if old is not None else None
        if lock is not None:
            # two --add runs may go on at once (one per core): re-read under a lock, keep both
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(jpath) as f:
                prev = json.load(f)
            for k in ("fp32_acc", "fp32_seconds", "total_seconds", "load_average", "command", "add_seconds"):
                if k in prev:
                    info[k] = prev[k]
            info["variants"] = dict(prev["variants"], **results)
        with open(jpath + ".tmp", "w") as f:
            json.dump(info, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(jpath + ".tmp", jpath)
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)

    command = " ".join(["scripts/train_fmnist.py"] + list(sys.argv[1:] if argv is None else argv))
    results = {}
    for v in names:
        vi = list(VARIANTS).index(v)       # seeds by variant, whichever subset runs
        wbits, abits, wfull, label = VARIANTS[v]
        width, method = WIDTH.get(v, 1), METHOD.get(v, "lsq")
        if width not in fp32_wide:         # WRPN: its own fp32 network, same recipe and seed
            t0 = time.time()
            torch.manual_seed(args.seed)
            wide = make_model(width, head=args.head)
            log("fp32 x%d (WRPN widening)" % width)
            train(wide, xtr, ytr, epochs=args.epochs_fp32, lr=args.lr_fp32, wd=args.wd_fp32, batch=args.batch,
                  seed=args.seed, shift=args.shift, hflip=True, log=log)
            fp32_wide[width] = (wide, accuracy(wide, xte, yte, batch=1000), time.time() - t0)
            log("fp32 x%d: test accuracy %.2f%% (%.1f s)" % (width, 100 * fp32_wide[width][1],
                                                              fp32_wide[width][2]))
        base, base_acc, base_seconds = fp32_wide[width]
        t0 = time.time()
        torch.manual_seed(args.seed + 1 + vi)
        m = make_model(width, wbits, abits, wfull, args.first_bits, args.last_bits, args.head)
        wd = args.wd_qat * (0.0 if wbits == 1 else (0.5 if wbits == 2 else 1.0))
        lr, batch, teacher = args.lr_qat, args.batch, None
        if method == "faq":
            start_faq(m, base, xtr[:256], FAQ_PCT)
            lr, batch = args.lr_qat / FAQ_LR_DIV, args.batch * FAQ_BATCH_MUL
        else:
            start_lsq(m, base, xtr[:256])
        if method == "kd":
            teacher = base
        log("%s: %s fine-tune (W%d%s A%d, first %d, last %d bits, width x%d, lr %g, batch %d)" % (
            v, {"lsq": "LSQ", "faq": "FAQ", "kd": "LSQ + Apprentice distillation"}[method], wbits,
            " full range" if wfull else "", abits, args.first_bits, args.last_bits, width, lr, batch))
        train(m, xtr, ytr, epochs=args.epochs_qat, lr=lr, wd=wd, batch=batch, teacher=teacher, kd=KD,
              seed=args.seed + 100 + vi, shift=args.shift, hflip=True, log=log)
        t_train = time.time() - t0
        fq_pred = predict(m, xte, batch=1000).numpy()
        fname = "fmnist_%s%s.qbin" % (v, suffix)
        path = os.path.join(args.out_dir, fname)
        net, logits = eq.export(m, "fmnist_%s%s" % (v, suffix), xte_i, path, check_n=args.check_n)
        pred = logits.argmax(1)
        n_ok = int((pred == yte_np).sum())
        dt = time.time() - t0
        results[v] = {
            "file": fname, "weight_bits": wbits, "act_bits": abits, "weights": label,
            "first_bits": args.first_bits, "last_bits": args.last_bits, "width": width, "method": method,
            "storage_bits": eq.storage_bits(wbits), "macs": macs(width, args.head),
            "fp32_acc": round(base_acc, 6), "fakequant_acc": round(float((fq_pred == yte_np).mean()), 6),
            "int_acc": round(n_ok / len(yte_np), 6), "n_correct": n_ok, "n_test": len(yte_np),
            "fakequant_int_agreement": round(float((fq_pred == pred).mean()), 6),
            "int_predictions": "".join(str(int(p)) for p in pred),
            "bytes": os.path.getsize(path), "finetune_seconds": round(t_train, 1),
            "export_seconds": round(dt - t_train, 1),
        }
        if width != 1:
            results[v]["fp32_width_seconds"] = round(base_seconds, 1)
        if method == "faq":
            results[v].update(faq_percentile=FAQ_PCT, lr=lr, batch=batch)
        if method == "kd":
            results[v].update(kd_beta=KD[0], kd_gamma=KD[1], kd_temperature=KD[2], teacher="fp32 x1")
        results[v].update(command=command, load_average=round(os.getloadavg()[0], 2))
        save(results, time.time() - t_all)
        log("%s: fake-quant %.2f%%, integer %.2f%% (%d/%d), %d bytes, fine-tune %.1f s, export %.1f s" % (
            v, 100 * results[v]["fakequant_acc"], 100 * n_ok / len(yte_np), n_ok, len(yte_np),
            results[v]["bytes"], t_train, dt - t_train))

    total = time.time() - t_all
    save(results, total)
    print()
    print("| variant | weights | act bits | first/last | fp32 | fake-quant | integer (.qbin) | bytes | fine-tune s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for v, r in results.items():
        print("| %s%s | %s | %d | %d/%d | %.2f%% | %.2f%% | %.2f%% (%d/%d) | %d | %.0f |" % (
            v, suffix, r["weights"], r["act_bits"], r["first_bits"], r["last_bits"], 100 * r["fp32_acc"],
            100 * r["fakequant_acc"], 100 * r["int_acc"], r["n_correct"], r["n_test"], r["bytes"],
            r["finetune_seconds"]))
    # t_fp32 is None when an --add run trained only widened variants (no fp32 network of width 1)
    print("\ntotal %.1f s (fp32 x1 %s), %d threads; wrote %s" % (
        total, "not trained" if t_fp32 is None else "%.1f s" % t_fp32, args.threads, jpath))
    return 0


if __name__ == "__main__":
    sys.exit(main())
