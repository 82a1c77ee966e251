#!/usr/bin/python3
"""Train a small CNN on scikit-learn's 8x8 digits, quantize it with LSQ, export .qbin nets.

    train_digits.py                          # all variants -> models/nets/digits_*.qbin
    train_digits.py --variants w4a4,w2a4     # some of them
    train_digits.py --width 2 --distill      # WRPN x2 widths, Apprentice distillation
    train_digits.py --out-dir /tmp/d         # write elsewhere (the shipped files stay)

Data: sklearn.datasets.load_digits() (1797 images, pixels 0..16), a fixed stratified
80/20 split (seed 0): 1437 training and 360 test images. The network input is unsigned
8-bit: q = pixel * 15 (0..240), real value q / 240 (= pixel / 16).

Network (x width multiplier, WRPN): conv3x3 16 -> BN -> ReLU -> conv3x3 32 -> BN -> ReLU
-> maxpool 2 -> conv3x3 32 -> BN -> ReLU -> global average pool -> fc 10.

Method: fp32 training (SGD + Nesterov momentum, cosine LR, +-1 pixel random shifts), then
for each variant a fine-tune from the fp32 weights with Learned Step Size Quantization
(scripts/export_qbin.py: batch norm folded, per-layer learned steps, STE, step gradient
scale 1/sqrt(N*Qp), steps initialised to 2*mean|x|/sqrt(Qp)) and a cosine-annealed LR
(McKinstry et al., "Discovering low-precision networks close to full-precision networks
for efficient inference" (FAQ)). Optionally Apprentice-style distillation from the fp32
teacher (Mishra & Marr, ICLR 2018). Each variant is exported with export_qbin.export,
which checks that qsim_qbin.evaluate and an independent integer torch model give
identical outputs on the whole test split; the reported accuracy is the integer one.

Variants (first conv weights and the classifier's weights and input at --first-bits /
--last-bits, default 8): w8a8, w4a4, w2a4 (ternary weights), bin_a4 (bipolar weights).
Writes DIR/digits_<variant>[_x<width>][_kd][_f<first>l<last>][_pc].qbin, DIR/digits_test.npz (x: input integers
(N,1,8,8) uint8, y: labels) and DIR/digits_accuracy[...].json, and prints a table.
Deterministic (fixed seeds, 2 threads, deterministic algorithms).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

# OpenMP threads that spin while waiting make a loaded 2-core machine crawl (10x slower
# steps measured); passive waiting costs nothing when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import export_qbin as eq  # noqa: E402
from .qat_train import accuracy, machine_info, start_lsq, train  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_SCALE = 1.0 / 240.0      # input integer q = pixel * 15, real q / 240
VARIANTS = {                # name: (weight bits, activation bits)
    "w8a8": (8, 8),
    "w4a4": (4, 4),
    "w2a4": (2, 4),
    "bin_a4": (1, 4),
}


def load_data(seed: int = 0):
    """(x_train, y_train, x_test, y_test): x as input integers (N, 1, 8, 8) uint8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.int64) * 15).astype(np.uint8).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return xtr, ytr, xte, yte


def to_real(x_int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x_int), dtype=torch.float32) * torch.tensor(
        IN_SCALE, dtype=torch.float32)


def make_model(width=1, wbits=8, abits=8, first_bits=8, last_bits=8, per_channel=False):
    c1, c2, c3 = 16 * width, 32 * width, 32 * width
    pc = per_channel
    return eq.QNet([
        eq.QInput(IN_SCALE, bits=8, signed=False, name="input"),
        eq.QConv2d(1, c1, 3, pad=1, wbits=first_bits, abits=abits, per_channel=pc, name="conv1"),
        eq.QConv2d(c1, c2, 3, pad=1, wbits=wbits, abits=abits, per_channel=pc, name="conv2"),
        eq.QMaxPool(2, name="pool"),
        eq.QConv2d(c2, c3, 3, pad=1, wbits=wbits, abits=abits, per_channel=pc, name="conv3"),
        eq.QGap(abits=last_bits, name="gap"),
        eq.QLinear(c3, 10, wbits=last_bits, per_channel=pc, name="fc"),
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset of %s" % ",".join(VARIANTS))
    ap.add_argument("--width", type=int, default=1, help="WRPN width multiplier (1, 2, ...)")
    ap.add_argument("--distill", action="store_true",
                    help="Apprentice distillation from the fp32 teacher during fine-tuning")
    ap.add_argument("--kd", default="0.5,0.5,1.0",
                    help="distillation beta (hard labels), gamma (teacher), temperature")
    ap.add_argument("--first-bits", type=int, default=8, help="first conv weight bits")
    ap.add_argument("--last-bits", type=int, default=8,
                    help="classifier weight bits and its input (GAP output) bits")
    ap.add_argument("--per-channel", action="store_true",
                    help="one learned weight step per output channel (default: per layer)")
    ap.add_argument("--epochs-fp32", type=int, default=30)
    ap.add_argument("--epochs-qat", type=int, default=20)
    ap.add_argument("--lr-fp32", type=float, default=0.05)
    ap.add_argument("--lr-qat", type=float, default=0.01)
    ap.add_argument("--wd-fp32", type=float, default=5e-4)
    ap.add_argument("--wd-qat", type=float, default=1e-4,
                    help="weight decay during fine-tuning (halved at 2 bits, 0 for bipolar)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--shift", type=int, default=1, help="random shift augmentation (pixels)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "nets"))
    args = ap.parse_args(argv)

    names = [v for v in args.variants.split(",") if v]
    for v in names:
        if v not in VARIANTS:
            ap.error("unknown variant %r (have %s)" % (v, ", ".join(VARIANTS)))
    kd = tuple(float(v) for v in args.kd.split(","))
    if len(kd) != 3:
        ap.error("--kd wants beta,gamma,temperature")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out_dir, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t_all = time.time()

    xtr_i, ytr_np, xte_i, yte_np = load_data(0)
    xtr, xte = to_real(xtr_i), to_real(xte_i)
    ytr, yte = torch.as_tensor(ytr_np), torch.as_tensor(yte_np)
    np.savez_compressed(os.path.join(args.out_dir, "digits_test.npz"), x=xte_i, y=yte_np)
    log("digits: %d train, %d test; width %d%s" % (len(ytr), len(yte), args.width,
                                                   ", distillation" if args.distill else ""))

    # ---- fp32
    t0 = time.time()
    torch.manual_seed(args.seed)
    fp32 = make_model(args.width, per_channel=args.per_channel)
    train(fp32, xtr, ytr, epochs=args.epochs_fp32, lr=args.lr_fp32, wd=args.wd_fp32,
          batch=args.batch, seed=args.seed, shift=args.shift, log=log)
    fp32_acc = accuracy(fp32, xte, yte)
    t_fp32 = time.time() - t0
    log("fp32: test accuracy %.2f%% (%.1f s)" % (100 * fp32_acc, t_fp32))
    teacher = None
    if args.distill:
        teacher = copy.deepcopy(fp32).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

    suffix = ("_x%d" % args.width if args.width != 1 else "") + ("_kd" if args.distill else "")
    if (args.first_bits, args.last_bits) != (8, 8):
        suffix += "_f%dl%d" % (args.first_bits, args.last_bits)
    if args.per_channel:
        suffix += "_pc"
    results = {}
    for vi, v in enumerate(names):
        wbits, abits = VARIANTS[v]
        t0 = time.time()
        torch.manual_seed(args.seed + 1 + vi)
        m = make_model(args.width, wbits, abits, args.first_bits, args.last_bits, args.per_channel)
        start_lsq(m, fp32, xtr[:256])          # LSQ step initialisation on one batch
        wd = args.wd_qat * (0.5 if wbits == 2 else (0.0 if wbits == 1 else 1.0))
        log("%s: LSQ fine-tune (W%d A%d, first %d, last %d bits)" % (
            v, wbits, abits, args.first_bits, args.last_bits))
        train(m, xtr, ytr, epochs=args.epochs_qat, lr=args.lr_qat, wd=wd, batch=args.batch,
              seed=args.seed + 100 + vi, shift=args.shift, teacher=teacher, kd=kd, log=log)
        fq_acc = accuracy(m, xte, yte)
        fname = "digits_%s%s.qbin" % (v, suffix)
        path = os.path.join(args.out_dir, fname)
        net, logits = eq.export(m, "digits_%s%s" % (v, suffix), xte_i, path)
        pred = logits.argmax(1)
        n_ok = int((pred == yte_np).sum())
        with torch.no_grad():
            agree = float((m(xte).argmax(1).numpy() == pred).mean())
        dt = time.time() - t0
        results[v] = {
            "file": fname, "weight_bits": wbits, "act_bits": abits,
            "weights": {8: "int8", 4: "int4", 2: "ternary (int2)", 1: "bipolar"}[wbits],
            "first_bits": args.first_bits, "last_bits": args.last_bits, "width": args.width,
            "distill": args.distill, "per_channel_steps": args.per_channel,
            "fp32_acc": round(fp32_acc, 6), "fakequant_acc": round(fq_acc, 6),
            "int_acc": round(n_ok / len(yte_np), 6), "n_correct": n_ok, "n_test": len(yte_np),
            "fakequant_int_agreement": round(agree, 6),
            "bytes": os.path.getsize(path), "finetune_seconds": round(dt, 1),
        }
        log("%s: fake-quant %.2f%%, integer %.2f%% (%d/%d), agree %.1f%%, %d bytes, %.1f s" % (
            v, 100 * fq_acc, 100 * n_ok / len(yte_np), n_ok, len(yte_np), 100 * agree,
            results[v]["bytes"], dt))

    total = time.time() - t_all
    info = {
        "dataset": "sklearn.datasets.load_digits, stratified 80/20 split (random_state 0)",
        "input": "uint8 q = pixel * 15, real q/240",
        "n_train": int(len(ytr)), "n_test": int(len(yte)),
        "fp32_acc": round(fp32_acc, 6), "fp32_seconds": round(t_fp32, 1),
        "total_seconds": round(total, 1), "threads": args.threads,
        "torch": torch.__version__, "machine": machine_info(),
        "command": " ".join(["scripts/train_digits.py"] + list(sys.argv[1:] if argv is None else argv)),
        "variants": results,
    }
    jpath = os.path.join(args.out_dir, "digits_accuracy%s.json" % suffix)
    with open(jpath, "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")

    print()
    print("| variant | weights | act bits | first/last | fp32 | fake-quant | integer (.qbin) | bytes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v, r in results.items():
        print("| %s%s | %s | %d | %d/%d | %.2f%% | %.2f%% | %.2f%% (%d/%d) | %d |" % (
            v, suffix, r["weights"], r["act_bits"], r["first_bits"], r["last_bits"],
            100 * r["fp32_acc"], 100 * r["fakequant_acc"], 100 * r["int_acc"], r["n_correct"],
            r["n_test"], r["bytes"]))
    print("\ntotal %.1f s (fp32 %.1f s), %d threads; wrote %s" % (total, t_fp32, args.threads, jpath))
    return 0


if __name__ == "__main__":
    sys.exit(main())
