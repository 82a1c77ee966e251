#!/usr/bin/python3
"""Study: BitNet-style ternary weights against W4A8 and W8A8 on a transformer encoder.

    scripts/studies/xfmr_ternary.py [--net vit_tiny] [--layers N] [--qsim build/cli/qsim]

Builds the encoder with scripts/xfmr_zoo.py at W8A8, W4A8, W2A8 (LSQ-like) and ternary-A8 (absmean),
runs one image through `qsim run` (fast engine) on the dLAC-like core (16x16 output-stationary, 2-bit
weight path, zero skipping of weights and activations) with zero skipping on and off, and on the
int8 TPU-like core, and writes docs/studies/xfmr_ternary.md: cycles, time and energy per image,
where the energy goes, how much zero skipping removed, and the area of each core. A second section does
the same for a decoder's prompt (prefill; `--decoder gpt2_small --decoder-layers 2 --tokens 128` by
default), with BitNet's dynamic per-token activations beside the static ones, per token. A third section
runs real decode steps (`qsim run --decode`, docs/decode.md): the decoder after prompts of several lengths
(`--decode-contexts 16,128,512`), `--decode-steps 4` steps each, and reports tokens/s, DRAM bytes per
token (weights against KV cache) and how much of each step the DRAM transfers alone would take.
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
import xfmr_zoo  # noqa: E402

RUNS = [  # (label, arch, --set overrides)
    ("dLAC, skip both", "dlac", []),
    ("dLAC, no skipping", "dlac", ["array.zero_skip=none"]),
    ("TPU-like int8", "tpu_int8", []),
]
WEIGHTS = ["w8", "w4", "w2", "ternary"]


def run(qsim, arch, sets, qbin, npy, js):
    cmd = [qsim, "run", "--arch", os.path.join(ROOT, "models", "arch", arch + ".cfg"), qbin, "--input", npy,
           "-q", "--json", js]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)
    with open(js) as f:
        r = json.load(f)
    t = r["total"]
    t["matmul_cycles"] = sum(l["cycles"] for l in r["layers"] if l["type"] == "matmul")
    return t


def decode_run(qsim, arch, sets, qbin, npy, js, steps):
    cmd = [qsim, "run", "--arch", os.path.join(ROOT, "models", "arch", arch + ".cfg"), qbin, "--input", npy,
           "--decode", str(steps), "-q", "--json", js]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)
    with open(js) as f:
        return json.load(f)["decode_run"]


def dram_bytes_per_cycle(arch):
    import re
    txt = open(os.path.join(ROOT, "models", "arch", arch + ".cfg")).read()
    return float(re.search(r"^bytes_per_cycle\s*=\s*([\d.]+)", txt, re.M).group(1))


def measure_decode(qsim, weights, net_name, layers, contexts, steps):
    """Decode steps after prompts of each length: rows (weights, core, context, decode report)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in weights:
            for ctx in contexts:
                net, x = xfmr_zoo.build(net_name, w, layers, ctx)
                qbin, npy = os.path.join(tmp, "d.qbin"), os.path.join(tmp, "d.npy")
                net.save(qbin)
                np.save(npy, x)
                for label, arch, sets in (RUNS[0], RUNS[2]):
                    rows.append((w, label, arch, ctx, decode_run(qsim, arch, sets, qbin, npy,
                                                                 os.path.join(tmp, "d.json"), steps)))
    return rows


def measure(qsim, variants, net_name, layers, tokens):
    """Every (label, weights, act) variant of the zoo net through RUNS: rows (label, core, totals) and
    the fraction of zero weights per label."""
    rows, sparsity = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label_w, w, act in variants:
            net, x = xfmr_zoo.build(net_name, w, layers, tokens, act=act)
            qbin, npy = os.path.join(tmp, "n.qbin"), os.path.join(tmp, "n.npy")
            net.save(qbin)
            np.save(npy, x)
            zeros = [float((net.tensors[l.weight].data == 0).mean()) for l in net.layers
                     if l.kind in (1, 2) and l.weight >= 0]
            sparsity[label_w] = float(np.mean(zeros))
            for label, arch, sets in RUNS:
                t = run(qsim, arch, sets, qbin, npy, os.path.join(tmp, "r.json"))
                rows.append((label_w, label, t))
    return rows, sparsity


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="vit_tiny", choices=sorted(xfmr_zoo.NETS))
    ap.add_argument("--layers", type=int)
    ap.add_argument("--qsim", default=os.path.join(ROOT, "build", "cli", "qsim"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "studies", "xfmr_ternary.md"))
    ap.add_argument("--decoder", default="gpt2_small", choices=sorted(n for n in xfmr_zoo.NETS
                                                                       if xfmr_zoo.NETS[n].get("causal")))
    ap.add_argument("--decoder-layers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128, help="the decoder's prompt length")
    ap.add_argument("--decode-contexts", default="16,128,512",
                    help="prompt lengths before the decode steps (comma-separated)")
    ap.add_argument("--decode-steps", type=int, default=4)
    a = ap.parse_args(argv)
    contexts = [int(c) for c in a.decode_contexts.split(",")]
    rows, sparsity = measure(a.qsim, [(w, w, "static") for w in WEIGHTS], a.net, a.layers, None)
    variants = [("w8", "w8", "static"), ("w4", "w4", "static"), ("ternary", "ternary", "static"),
                ("ternary, dynamic", "ternary", "dynamic")]
    drows, dsparsity = measure(a.qsim, variants, a.decoder, a.decoder_layers, a.tokens)
    macs = rows[0][2]["macs"]
    base = {label: t for w, label, t in rows if w == "w8"}
    lines = [
        "# Study: ternary weights on a transformer encoder (%s)" % a.net,
        "",
        "Generated by `scripts/studies/xfmr_ternary.py%s` (do not edit by hand). One image, fast engine; the "
        "network is `scripts/xfmr_zoo.py --net %s` (%s blocks, %.3f GMACs, 8-bit activations, weights as in "
        "docs/model_zoo.md) at each weight format. Energy and area from the default 45 nm technology table."
        % ("" if a.net == "vit_tiny" and a.layers is None else " --net %s%s" % (
            a.net, "" if a.layers is None else " --layers %d" % a.layers), a.net,
           a.layers or xfmr_zoo.NETS[a.net]["layers"], macs / 1e9),
        "",
        "Zero weights in the convolutions and fcs: " + ", ".join(
            "%s %.1f%%" % (w, 100 * sparsity[w]) for w in WEIGHTS) + ".",
        "",
        "| weights | core | cycles | ms at clock | energy uJ | vs W8A8 same core | MAC / SRAM / DRAM / PPU uJ | "
        "slice ops skipped | area mm2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w, label, t in rows:
        e = t["energy_breakdown_pj"]
        ops = t["mac_slice_ops"] + t["mac_slice_gated"] + t["mac_slice_skipped"]
        lines.append("| %s | %s | %d | %.3f | %.1f | %.2fx time, %.2fx energy | %.1f / %.1f / %.1f / %.1f | %.1f%% | %.2f |" % (
            w, label, t["cycles"], 1e3 * t["time_s"], t["energy_pj"] / 1e6,
            t["cycles"] / base[label]["cycles"], t["energy_pj"] / base[label]["energy_pj"],
            e["mac"] / 1e6, e["sram"] / 1e6, e["dram"] / 1e6, e["ppu"] / 1e6,
            100.0 * t["mac_slice_skipped"] / ops if ops else 0.0, t["area_mm2"]))
    by = {(w, label): t for w, label, t in rows}
    tern, w8, w4 = by[("ternary", RUNS[0][0])], by[("w8", RUNS[0][0])], by[("w4", RUNS[0][0])]
    noskip = by[("ternary", RUNS[1][0])]
    cols = 16  # dlac.cfg: a 16 x 16 array
    lines += [
        "",
        "What it shows, in numbers (dLAC core with zero skipping):",
        "",
        "- Ternary weights take one slice of the 2-bit weight path where W8 takes four and W4 two: the "
        "image takes %.2fx the cycles of W8A8 and %.2fx those of W4A8, and %.2fx / %.2fx the energy."
        % (tern["cycles"] / w8["cycles"], tern["cycles"] / w4["cycles"], tern["energy_pj"] / w8["energy_pj"],
           tern["energy_pj"] / w4["energy_pj"]),
        "- Zero skipping on the ternary net changes the cycles by %+.1f%% and the energy by %+.1f%% against the "
        "same core without skipping, although %.0f%% of its weights are zero: a reduction row is skipped only "
        "when its weights are zero in all %d output channels of an n-block (for independent zeros %.2f^%d = "
        "%.1e), and 8-bit activations are rarely zero on a whole lockstep group. Gating still cuts the MAC "
        "energy (%.1f -> %.1f uJ), but the compressed weights carry a 16-bit index per kept row, which adds "
        "DRAM energy (%.1f -> %.1f uJ)."
        % (100 * (tern["cycles"] / noskip["cycles"] - 1), 100 * (tern["energy_pj"] / noskip["energy_pj"] - 1),
           100 * sparsity["ternary"], cols, sparsity["ternary"], cols, sparsity["ternary"] ** cols,
           noskip["energy_breakdown_pj"]["mac"] / 1e6, tern["energy_breakdown_pj"]["mac"] / 1e6,
           noskip["energy_breakdown_pj"]["dram"] / 1e6, tern["energy_breakdown_pj"]["dram"] / 1e6),
        "- DRAM is the largest part of the dLAC core's energy at every weight format (%.0f%% for ternary)." % (
            100 * tern["energy_breakdown_pj"]["dram"] / tern["energy_pj"]),
        "- The attention matmuls (both operands 8-bit activations) gain nothing from ternary weights: their "
        "share of the cycles grows from %.1f%% (W8A8) to %.1f%% (ternary) as the weight layers shrink."
        % (100 * w8["matmul_cycles"] / w8["cycles"], 100 * tern["matmul_cycles"] / tern["cycles"]),
        "- Area: the dLAC core is %.2f mm2, the TPU-like core %.2f mm2 (same technology table)."
        % (tern["area_mm2"], by[("ternary", RUNS[2][0])]["area_mm2"]),
        "",
    ]
    T = a.tokens
    dmacs = drows[0][2]["macs"]
    dbase = {label: t for w, label, t in drows if w == "w8"}
    lines += [
        "## A decoder's prompt (%s, %d blocks, %d tokens)" % (a.decoder, a.decoder_layers, T),
        "",
        "The network is `scripts/xfmr_zoo.py --net %s --layers %d --tokens %d` (%.3f GMACs counted dense; the "
        "causal softmax mask; no embeddings or LM head), the graph of one prompt (prefill). \"dynamic\" is "
        "BitNet b1.58's BitLinear (`--act dynamic`): each token quantized by its own absmax (DYNQUANT) in front "
        "of every projection and its scale re-applied after (row-absmax MUL). Per token = the prompt's figure "
        "/ %d. Zero weights: %s." % (a.decoder, a.decoder_layers, T, dmacs / 1e9, T, ", ".join(
            "%s %.1f%%" % (w, 100 * dsparsity[w]) for w, _, _ in variants)),
        "",
        "| weights | core | cycles | tokens/s at clock | energy per token uJ | vs W8A8 same core | "
        "MAC / SRAM / DRAM / PPU uJ | MACs executed | area mm2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w, label, t in drows:
        e = t["energy_breakdown_pj"]
        lines.append("| %s | %s | %d | %.0f | %.2f | %.2fx time, %.2fx energy | %.1f / %.1f / %.1f / %.1f | %.1f%% | %.2f |"
                     % (w, label, t["cycles"], T / t["time_s"], t["energy_pj"] / 1e6 / T,
                        t["cycles"] / dbase[label]["cycles"], t["energy_pj"] / dbase[label]["energy_pj"],
                        e["mac"] / 1e6, e["sram"] / 1e6, e["dram"] / 1e6, e["ppu"] / 1e6,
                        100.0 * t["macs_executed"] / t["macs"], t["area_mm2"]))
    dby = {(w, label): t for w, label, t in drows}
    s0 = RUNS[0][0]
    dt, dd, d8, d4 = dby[("ternary", s0)], dby[("ternary, dynamic", s0)], dby[("w8", s0)], dby[("w4", s0)]
    lines += [
        "",
        "What it shows, in numbers (dLAC core with zero skipping):",
        "",
        "- The prompt runs at %.0f tokens/s with ternary weights against %.0f (W4A8) and %.0f (W8A8): %.2fx "
        "and %.2fx the cycles; energy per token %.2f uJ against %.2f and %.2f."
        % (T / dt["time_s"], T / d4["time_s"], T / d8["time_s"], dt["cycles"] / d4["cycles"],
           dt["cycles"] / d8["cycles"], dt["energy_pj"] / 1e6 / T, d4["energy_pj"] / 1e6 / T,
           d8["energy_pj"] / 1e6 / T),
        "- The causal mask's zero probabilities are skipped at run time in `P V`: the core executes %.1f%% of "
        "the dense MACs with ternary weights (%.1f%% on the TPU-like core, which does not skip)."
        % (100.0 * dt["macs_executed"] / dt["macs"],
           100.0 * dby[("ternary", RUNS[2][0])]["macs_executed"] / dby[("ternary", RUNS[2][0])]["macs"]),
        "- BitNet's dynamic per-token activations cost %+.1f%% cycles and %+.1f%% energy against static "
        "8-bit scales (the DYNQUANT and rescale passes run on the post-processing unit: PPU energy %.1f -> "
        "%.1f uJ)."
        % (100 * (dd["cycles"] / dt["cycles"] - 1), 100 * (dd["energy_pj"] / dt["energy_pj"] - 1),
           dt["energy_breakdown_pj"]["ppu"] / 1e6, dd["energy_breakdown_pj"]["ppu"] / 1e6),
        "",
    ]
    N = a.decode_steps
    krows = measure_decode(a.qsim, ["w8", "w4", "ternary"], a.decoder, a.decoder_layers, contexts, N)
    lines += [
        "## Decode steps with a KV cache (%s, %d blocks)" % (a.decoder, a.decoder_layers),
        "",
        "`qsim run NET --input X.npy --decode %d` (docs/decode.md) after prompts of %s tokens: the prompt is "
        "the prefill, then %d one-token steps, each reading every weight and every cached key and value from "
        "DRAM and appending one row to each of the %d caches. Figures per decode token are the means over "
        "the %d steps; \"context\" is the prompt length (the steps see %s.. %s cached tokens). \"DRAM time\" "
        "is the step's DRAM bytes at the core's DRAM bandwidth (dlac %.1f B/cycle, tpu_int8 %.1f B/cycle) as a "
        "fraction of the step's cycles; \"DRAM stalls\" the cycles the array waited for DRAM (measured), as a "
        "fraction of the step's cycles: near 100%% the step is DRAM-bound."
        % (N, ", ".join(map(str, contexts)), N, 2 * a.decoder_layers, N, "/".join(map(str, contexts)),
           "/".join(str(c + N - 1) for c in contexts), dram_bytes_per_cycle("dlac"), dram_bytes_per_cycle("tpu_int8")),
        "",
        "| weights | core | context | TTFT ms | decode tokens/s | cycles per token | DRAM per token kB | "
        "of which KV cache | energy per token uJ | DRAM time | DRAM stalls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w, label, arch, ctx, d in krows:
        dec = d["decode"]
        kv = dec["kv_bytes_read"] + dec["kv_bytes_written"]
        lines.append("| %s | %s | %d | %.3f | %.0f | %.0f | %.1f | %.1f%% | %.2f | %.0f%% | %.1f%% |" % (
            w, label, ctx, 1e3 * d["prefill"]["time_to_first_token_s"], dec["tokens_per_s"], dec["cycles"] / N,
            dec["dram_bytes_per_token"] / 1e3, 100.0 * kv / dec["dram_bytes"], dec["energy_pj_per_token"] / 1e6,
            100.0 * dec["dram_bytes"] / dram_bytes_per_cycle(arch) / dec["cycles"],
            100.0 * dec["stall_dram_cycles"] / dec["cycles"]))
    kby = {(w, label, ctx): d for w, label, arch, ctx, d in krows}
    c0, c1 = contexts[0], contexts[-1]
    t0, t1 = kby[("ternary", s0, c0)]["decode"], kby[("ternary", s0, c1)]["decode"]
    w0 = kby[("w8", s0, c1)]["decode"]
    tp = RUNS[2][0]
    p0, p1 = kby[("ternary", tp, c0)]["decode"], kby[("ternary", tp, c1)]["decode"]
    frac = lambda dd, arch: dd["dram_bytes"] / dram_bytes_per_cycle(arch) / dd["cycles"]  # noqa: E731
    lines += [
        "",
        "What it shows, in numbers:",
        "",
        "- A decode step is a one-row GEMM per projection: it reads every weight once per token, so on the "
        "dLAC core with ternary weights a token takes %.0f cycles at %d tokens of context (%.0f tokens/s) "
        "against %.0f cycles per prompt token in the prefill section above; W8A8 at %d tokens: %.0f tokens/s."
        % (t0["cycles"] / N, c0, t0["tokens_per_s"], dby[("ternary", s0)]["cycles"] / T, c1, w0["tokens_per_s"]),
        "- As the context grows from %d to %d tokens the KV cache's share of the DRAM traffic grows from %.1f%% "
        "to %.1f%% (ternary, dLAC) and tokens/s falls from %.0f to %.0f; on the TPU-like core from %.0f to %.0f."
        % (c0, c1, 100.0 * (t0["kv_bytes_read"] + t0["kv_bytes_written"]) / t0["dram_bytes"],
           100.0 * (t1["kv_bytes_read"] + t1["kv_bytes_written"]) / t1["dram_bytes"], t0["tokens_per_s"],
           t1["tokens_per_s"], p0["tokens_per_s"], p1["tokens_per_s"]),
        "- Where decode is DRAM-bound: the DRAM transfers alone take %.0f%% of a ternary step's cycles on the "
        "dLAC core and %.0f%% on the TPU-like core at %d tokens of context (%.0f%% and %.0f%% at %d); the array "
        "waits for DRAM %.1f%% and %.1f%% of the cycles at %d tokens (%.1f%% and %.1f%% at %d). A one-row GEMM "
        "keeps one row of the array busy, so a step is bound by the array unless its DRAM time nears 100%%."
        % (100 * frac(t0, "dlac"), 100 * frac(p0, "tpu_int8"), c0, 100 * frac(t1, "dlac"),
           100 * frac(p1, "tpu_int8"), c1, 100 * t0["stall_dram_cycles"] / t0["cycles"],
           100 * p0["stall_dram_cycles"] / p0["cycles"], c0, 100 * t1["stall_dram_cycles"] / t1["cycles"],
           100 * p1["stall_dram_cycles"] / p1["cycles"], c1),
        "",
    ]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
