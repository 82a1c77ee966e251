#!/usr/bin/python3
"""Study: the Fashion-MNIST networks (scripts/qsim/train_fmnist.py) -- accuracy against energy per
inference and cycles on the dLAC-like array, the Pareto front, the papers' claims.

    scripts/studies/fmnist.py [--qsim build/cli/qsim] [--n 200]      # writes docs/studies/fmnist.md
    scripts/studies/fmnist.py --check [--qsim build/cli/qsim]          # re-simulate one point, compare

For every variant in models/nets/fmnist_accuracy.json: `qsim run --arch models/arch/dlac.cfg` (fast
engine) on the first --n Fashion-MNIST test images; cycles and energy are the batch mean per inference.
Accuracy is the integer model's on all 10,000 test images (int_acc; tests/test_fmnist_qsim.py checks
that qsim's predictions equal it). Writes docs/studies/fmnist/results.json (with the source revision)
and pareto.svg / pareto.png, then the page. --check re-simulates the cheapest point and fails when its
cycles or energy differ from results.json (CTest fmnist_study_fresh).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import numpy as np  # noqa: E402
from qsim import fmnist_data  # noqa: E402

OUT = os.path.join(ROOT, "docs", "studies", "fmnist")
PAGE = os.path.join(ROOT, "docs", "studies", "fmnist.md")
ARCH = os.path.join(ROOT, "models", "arch", "dlac.cfg")


def simulate(qsim, qbin, x, tmp):
    xp, js = os.path.join(tmp, "x.npy"), os.path.join(tmp, "r.json")
    np.save(xp, x.astype(np.int32))
    subprocess.run([qsim, "run", "--arch", ARCH, qbin, "--input", xp, "--json", js, "-q"], check=True)
    with open(js) as f:
        rep = json.load(f)
    return {"cycles": rep["total"]["cycles"], "energy_pj": rep["total"]["energy_pj"]}


def macs(width, head):
    """Multiply-accumulates per image of train_fmnist.make_model(width) (the JSON of the first
    variants predates its `macs` field)."""
    c1, c2, c3 = 16 * width, 32 * width, 64 * width
    conv = 28 * 28 * c1 * 9 + 14 * 14 * c2 * c1 * 9 + 7 * 7 * c3 * c2 * 9
    return conv + (c3 * 10 if head == "gap" else c3 * 7 * 7 * 10)


def pareto(rows):
    """Rows not dominated in (energy lower, accuracy higher)."""
    front = []
    for r in rows:
        if not any(o is not r and o["energy_pj"] <= r["energy_pj"] and o["int_acc"] >= r["int_acc"] and
                   (o["energy_pj"] < r["energy_pj"] or o["int_acc"] > r["int_acc"]) for o in rows):
            front.append(r["variant"])
    return front


def revision():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qsim", default=os.path.join(ROOT, "build", "cli", "qsim"))
    ap.add_argument("--n", type=int, default=200, help="test images per simulation (batch mean)")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    try:
        x, _ = fmnist_data.load("test")
    except fmnist_data.DatasetError as exc:
        print("skip: %s" % exc)
        return 77
    acc = json.load(open(os.path.join(ROOT, "models", "nets", "fmnist_accuracy.json")))
    if args.check:
        res = json.load(open(os.path.join(OUT, "results.json")))
        r = min(res["rows"], key=lambda r: r["cycles"])
        with tempfile.TemporaryDirectory() as tmp:
            got = simulate(args.qsim, os.path.join(ROOT, "models", "nets", r["file"]), x[:res["n_images"]], tmp)
        ok = got["cycles"] == r["cycles"] and abs(got["energy_pj"] - r["energy_pj"]) <= 1e-9 * r["energy_pj"]
        print("%s %s: cycles %s / %s, energy %s / %s pJ (now / docs/studies/fmnist, revision %s)%s" % (
            "ok  " if ok else "FAIL", r["variant"], got["cycles"], r["cycles"], got["energy_pj"], r["energy_pj"],
            res["source_revision"], "" if ok else "; regenerate: scripts/studies/fmnist.py"))
        return 0 if ok else 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, v in sorted(acc["variants"].items()):
            sim = simulate(args.qsim, os.path.join(ROOT, "models", "nets", v["file"]), x[:args.n], tmp)
            width = v.get("width", 1)
            rows.append(dict(variant=name, file=v["file"], weights=v["weights"], act_bits=v["act_bits"],
                             width=width, method=v.get("method", "lsq"), fp32_acc=v["fp32_acc"],
                             int_acc=v["int_acc"], macs=v.get("macs") or macs(width, acc["head"]),
                             bytes=v["bytes"], **sim))
            print("%-10s %6.2f%%  %8d cycles  %8.1f nJ" % (name, 100 * v["int_acc"], sim["cycles"],
                                                          sim["energy_pj"] / 1e3), flush=True)
    front = pareto(rows)
    os.makedirs(OUT, exist_ok=True)
    res = {"source_revision": revision(), "n_images": args.n, "arch": "models/arch/dlac.cfg", "engine": "fast",
           "rows": rows, "pareto": front}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    plot(rows, front)
    write_page(res, acc)
    return 0


def plot(rows, front):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in rows:
        on = r["variant"] in front
        ax.scatter(r["energy_pj"] / 1e3, 100 * r["int_acc"], c="tab:red" if on else "tab:blue", s=28)
        ax.annotate(r["variant"], (r["energy_pj"] / 1e3, 100 * r["int_acc"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    f = sorted((r for r in rows if r["variant"] in front), key=lambda r: r["energy_pj"])
    ax.plot([r["energy_pj"] / 1e3 for r in f], [100 * r["int_acc"] for r in f], c="tab:red", lw=1)
    ax.set_xlabel("energy per inference (nJ), dlac.cfg")
    ax.set_ylabel("test accuracy (%), 10,000 images")
    ax.set_title("Fashion-MNIST: accuracy vs energy (red: Pareto front)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "pareto.svg"))
    fig.savefig(os.path.join(OUT, "pareto.png"), dpi=110)


def write_page(res, acc):
    rows = sorted(res["rows"], key=lambda r: r["energy_pj"])
    by = {r["variant"]: r for r in rows}

    def a(v, ref=None):
        """Accuracy of variant v, and its difference in points from ref (a variant) or from fp32."""
        if v not in by:
            return "(not trained)"
        base = by[ref]["int_acc"] if ref in by else by[v]["fp32_acc"]
        return "%.2f%% (%+.2f)" % (100 * by[v]["int_acc"], 100 * (by[v]["int_acc"] - base))

    fp32 = acc.get("fp32_acc")
    lines = [
        "# Study: Fashion-MNIST, accuracy against energy and cycles",
        "",
        "Every network `scripts/qsim/train_fmnist.py` shipped (`models/nets/fmnist_*.qbin`, `docs/fmnist.md`), run by "
        "`qsim run` on the dLAC-like array (`models/arch/dlac.cfg`, fast engine) over the first %d test images "
        "(cycles and energy: the batch mean per inference); accuracy is the integer network's on all 10,000 test "
        "images (`int_acc` in `models/nets/fmnist_accuracy.json`; `tests/test_fmnist_qsim.py` checks qsim predicts "
        "the same, image by image). Regenerate:" % res["n_images"],
        "",
        "    scripts/studies/fmnist.py            # writes this page and docs/studies/fmnist/",
        "",
        "Source revision %s. `scripts/studies/fmnist.py --check` (CTest `fmnist_study_fresh`) re-simulates the "
        "cheapest point and fails when the page no longer matches the code." % res["source_revision"],
        "",
        "![accuracy vs energy](fmnist/pareto.svg)",
        "",
        "| variant | method | weights | act bits | width | MACs | accuracy | fp32 of its width | cycles | nJ / inference | on front |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append("| %s | %s | %s | %d | x%d | %s | %.2f%% | %.2f%% | %s | %.1f | %s |" % (
            r["variant"], r["method"], r["weights"], r["act_bits"], r["width"],
            "{:,}".format(r["macs"]) if r["macs"] else "", 100 * r["int_acc"], 100 * r["fp32_acc"],
            "{:,}".format(int(r["cycles"])), r["energy_pj"] / 1e3, "yes" if r["variant"] in res["pareto"] else ""))
    lines += [
        "",
        "Pareto front (energy down, accuracy up): %s." % ", ".join(res["pareto"]),
        "",
        "## The claims, here and in the papers",
        "",
        "fp32 reference: %.2f%% (the same CNN, 4 epochs on 30,000 training images; `docs/fmnist.md`). Public "
        "Fashion-MNIST baselines (upstream README's submitted benchmarks, `../shared/reference/datasets.md`): "
        "2 conv + pool 91.6%%, 2-conv nets 92.2 to 93.9%%, ResNet18 94.9%%, WRN40-4 96.7%%; a binarized CNN "
        "92.86%% (CBCNN, Mobile Information Systems 2023). No LSQ, FAQ, WRPN or Apprentice result on "
        "Fashion-MNIST was found, so the papers' figures below are their ImageNet claims." % (100 * fp32),
        "",
        "| claim (paper, source) | the paper says | here |",
        "| --- | --- | --- |",
        "| LSQ: 4- and 8-bit match full precision; 3-bit reaches the fp32 baseline (Esser et al., ICLR 2020, "
        "arXiv:1902.08153, abstract) | ImageNet, several architectures, 2 to 4 bits: the best accuracy to date; "
        "3-bit models reach full precision | against fp32 %.2f%% (points in brackets): W8A8 %s, W4A4 %s, W3A3 %s, W2A2 %s |" % (100 * fp32,
            a("w8a8"), a("w4a4"), a("w3a3"), a("w2a2")),
        "| FAQ: start from the trained fp32 network, fine-tune (McKinstry et al., arXiv:1809.04191, abstract) | "
        "8-bit exceeds the fp32 baseline after one epoch of fine-tuning; 4-bit ResNet-18/34/50 match it | "
        "against fp32: FAQ W8A8 %s, FAQ W4A4 %s (frozen calibrated ranges, 10x smaller LR, 1 epoch); against "
        "LSQ's: %s, %s |" % (a("faq_w8a8"), a("faq_w4a4"), a("faq_w8a8", "w8a8"), a("faq_w4a4", "w4a4")),
        "| WRPN: widen the layers to recover low-precision accuracy (Mishra et al., arXiv:1709.01134, "
        "introduction) | 4-bit with doubled filters matches or beats the fp32 baseline (AlexNet, ResNet-34) | "
        "against x1 (points): W2A2 x2 %s, ternary-A4 x2 %s (3.9x the MACs); x2 against its own fp32 x2: %s, %s |" % (
            a("w2a2_x2", "w2a2"), a("ter_a4_x2", "ter_a4"), a("w2a2_x2"), a("ter_a4_x2")),
        "| Apprentice: distil from the fp32 teacher (Mishra and Marr, ICLR 2018, arXiv:1711.05852, abstract) | "
        "knowledge distillation significantly improves ternary and 4-bit ResNets on ImageNet | "
        "against plain LSQ (points): W2A4 %s, ternary-A4 %s, W2A2 %s (teacher fp32 x1; beta 0.5, gamma 0.5, T 1) |" % (
            a("kd_w2a4", "w2a4"), a("kd_ter_a4", "ter_a4"), a("kd_w2a2", "w2a2")),
        "| binary weights in the same framework (BNN, UniQ) | binarized CNN on Fashion-MNIST: 92.86%% (CBCNN) | "
        "bipolar-A4 %s against fp32 |" % a("bin_a4"),
        "",
        "Read with care: one seed per variant and one fine-tuning epoch on half the training set; one test image "
        "is 0.01 points; the spread between seeds was not measured, so a difference of a few tenths of a point "
        "may be noise. Energy and cycles are the simulator's for this array; the x2 networks do 3.9x the MACs.",
        "",
    ]
    lines += vit_section(by)
    with open(PAGE, "w") as f:
        f.write("\n".join(lines))


def vit_section(by):
    """What ternary against W4A8 shows for the tiny ViT (scripts/qsim/train_fmnist_vit.py), next to the
    CNNs' ternary-A4 against W4A4: accuracy, energy and cycles, all from the rows above."""
    need = ("vit_ter_a8", "vit_w4a8", "ter_a4", "w4a4")
    if not all(v in by for v in need):
        return []
    vt, vw, ct, cw = (by[v] for v in need)

    def pj_per_mac(r):
        return r["energy_pj"] / r["macs"]

    return [
        "## A tiny ViT against the CNNs",
        "",
        "The tiny ViT (`scripts/qsim/train_fmnist_vit.py`, `docs/fmnist.md`, \"Tiny ViT\": 7x7 patches, 16 tokens, "
        "d 64, 4 heads, MLP 128, 2 blocks, %s MACs) runs every transformer operator of the format on the array: "
        "1x1 convs for the projections, MATMUL for the attention, the integer softmax and LayerNorm in the "
        "post-processing unit, a table GELU. Its fp32 network reaches %.2f%% (the CNN's: %.2f%%)." % (
            "{:,}".format(vt["macs"]), 100 * vt["fp32_acc"], 100 * cw["fp32_acc"]),
        "",
        "| | ViT ternary-A8 | ViT W4A8 | CNN ternary-A4 | CNN W4A4 |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| accuracy | %.2f%% | %.2f%% | %.2f%% | %.2f%% |" % tuple(100 * r["int_acc"] for r in (vt, vw, ct, cw)),
        "| against its fp32 (points) | %+.2f | %+.2f | %+.2f | %+.2f |" % tuple(
            100 * (r["int_acc"] - r["fp32_acc"]) for r in (vt, vw, ct, cw)),
        "| cycles / inference | %s | %s | %s | %s |" % tuple("{:,}".format(int(r["cycles"])) for r in (vt, vw, ct, cw)),
        "| nJ / inference | %.1f | %.1f | %.1f | %.1f |" % tuple(r["energy_pj"] / 1e3 for r in (vt, vw, ct, cw)),
        "| pJ / MAC | %.2f | %.2f | %.2f | %.2f |" % tuple(pj_per_mac(r) for r in (vt, vw, ct, cw)),
        "",
        "Ternary weights cost the ViT %.2f points against W4A8 and the CNN %.2f points against W4A4 (one seed each). "
        "On the 2-bit weight path ternary saves the ViT %.0f%% of the cycles and %.0f%% of the energy of W4A8; the "
        "CNN saves %.0f%% and %.0f%%. %s BitNet b1.58 (Ma et al., arXiv:2402.17764, abstract) reports ternary weights with "
        "8-bit activations matching full precision for LLMs trained from scratch at billions of parameters; this "
        "ViT is fine-tuned from fp32 for two epochs with 70,000 weights, so it is not a test of that claim." % (
            100 * (vw["int_acc"] - vt["int_acc"]), 100 * (cw["int_acc"] - ct["int_acc"]),
            100 * (1 - vt["cycles"] / vw["cycles"]), 100 * (1 - vt["energy_pj"] / vw["energy_pj"]),
            100 * (1 - ct["cycles"] / cw["cycles"]), 100 * (1 - ct["energy_pj"] / cw["energy_pj"]),
            ("The transformer saves less: its attention MATMULs multiply two 8-bit activations whatever the "
             "weights, its softmax, LayerNorm and GELU do not shrink with the weights, and its 8-bit activations "
             "keep the activation traffic at full width." if
             vt["energy_pj"] / vw["energy_pj"] > ct["energy_pj"] / cw["energy_pj"] else
             "The transformer saves at least as much: most of its MACs are weight projections.")),
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
