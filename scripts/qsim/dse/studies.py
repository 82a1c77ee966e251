"""Study pages (docs/studies/NAME.md): the figures and numbers of scripts/studies/NAME.toml.

Each function takes (spec, rows, outdir, results) after the sweep; rows are flat result rows of the
spec's points. The page goes next to the output folder: docs/studies/NAME/ -> docs/studies/NAME.md."""
from __future__ import annotations

import math
import os
import re
import time

from . import REPO, need_matplotlib, _meta, plotstyle
from .pareto import fronts


def _f(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bits(r):
    wb, ab = r.get("net_wbits"), r.get("net_abits")
    if wb is None or ab is None:
        m = re.search(r"w(\d+)a(\d+)", str(r.get("network")))
        if m:
            wb, ab = int(m.group(1)), int(m.group(2))
    return wb, ab


def _rel(path, start):
    return os.path.relpath(path, start)


def _page(spec, outdir, title, headline, sections, rows):
    page = os.path.join(os.path.dirname(outdir), os.path.basename(outdir) + ".md")
    pdir = os.path.dirname(page)
    ok = [r for r in rows if r.get("status") == "ok"]
    versions = sorted({str(r.get("qsim_version")) for r in rows})
    revisions = sorted({str(r.get("source_revision") or "not recorded") for r in rows})
    wall = sum(_f(r.get("wall_s")) or 0 for r in rows)
    lines = ["# Study: %s" % title, "", headline.strip(), "",
             "Run it again (points already in the table are skipped; delete `%s/results.jsonl` to start over):"
             % _rel(outdir, REPO), "",
             "    scripts/dse %s" % _rel(spec.path, REPO), "",
             "%d points (%d ok, %d failed), qsim %s, source revision %s, %.0f s of simulation in all. "
             "`tests/test_studies_fresh.py` (CTest `studies_fresh`) re-simulates one point and fails when this "
             "page no longer matches the code. Files in `%s/`: "
             "`results.csv` (every point: parameters, cycles, time, energy and its breakdown, area, TOPS/W, "
             "utilization, DRAM bytes), `results.jsonl` (the same with per-layer summaries), `pareto*.csv` and "
             "the figures (PNG + SVG), written by `scripts/qsim/dse/studies.py`; last point simulated on %s." % (
                 len(rows), len(ok), len(rows) - len(ok), ", ".join(versions), ", ".join(revisions), wall,
                 _rel(outdir, pdir),
                 max([str(r.get("finished") or "")[:10] for r in rows] or [time.strftime("%Y-%m-%d")])), ""]
    for s in sections:
        lines += [s, ""]
    for pl in spec.plots:
        stem = pl.get("name")
        if stem and os.path.exists(os.path.join(outdir, stem + ".svg")):
            lines += ["%s (a `[[plot]]` of the spec):" % pl.get("title", stem), "", _img(outdir, stem, stem), ""]
    for p in spec.paretos:
        if os.path.exists(os.path.join(outdir, p["name"] + ".svg")):
            lines += ["Pareto front (%s; the points are listed in `%s.csv`):" % (
                ", ".join("%s %s" % ("minimize" if d == "min" else "maximize", c) for c, d in p["objectives"]),
                os.path.join(os.path.basename(outdir), p["name"])), "", _img(outdir, p["name"], p["name"]), ""]
    with open(page, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print("dse: wrote %s" % page)
    return page


def _img(outdir, stem, alt):
    d = os.path.basename(outdir)
    return "![%s](%s/%s.svg)" % (alt, d, stem)


def _md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _save(fig, outdir, stem):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(outdir, "%s.%s" % (stem, ext)), dpi=130, metadata=_meta(ext))


def _stalls(r):
    """DRAM and buffer-bandwidth stall shares of a row's cycles, side by side in every study table."""
    cyc = r.get("cycles") or 0
    return ["%.0f%%" % (100 * (r.get("stall_dram") or 0) / cyc if cyc else 0),
            "%.0f%%" % (100 * (r.get("stall_buffer") or 0) / cyc if cyc else 0)]


def _tech_value(key, default):
    try:
        with open(os.path.join(REPO, "models", "tech", "default45.tech")) as f:
            for line in f:
                m = re.match(r"\s*%s\s*=\s*([0-9.eE+-]+)" % re.escape(key), line)
                if m:
                    return float(m.group(1))
    except OSError:
        pass
    return default


# -- 1. precision -----------------------------------------------------------------------------------
def precision(spec, rows, outdir, results):
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status") == "ok"]
    for r in ok:
        r["wb"], r["ab"] = _bits(r)
    paths = sorted({int(r["array.weight_path_bits"]) for r in ok})
    accs = sorted({int(r["array.acc_bits"]) for r in ok})
    nets = sorted({(r["wb"], r["ab"], r["network"]) for r in ok}, key=lambda t: -(t[0] * t[1]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    markers = {2: "o", 8: "s", 4: "^", 1: "v"}
    styles = {16: "-", 24: "-.", 32: "--"}
    for p in paths:
        for a in accs:
            sel = sorted([r for r in ok if int(r["array.weight_path_bits"]) == p and int(r["array.acc_bits"]) == a],
                         key=lambda r: r["wb"] * r["ab"])
            if not sel:
                continue
            ax.plot([r["wb"] * r["ab"] for r in sel], [r["mac_energy_per_op_pj"] for r in sel],
                    marker=markers.get(p, "o"), ls=styles.get(a, "-"),
                    label="MAC array, %d-bit path, %d-bit acc" % (p, a))
    # ideal: MAC energy proportional to Wa x Wb, anchored at the widest network on the 8-bit path, 16-bit acc
    anchor = [r for r in ok if int(r["array.weight_path_bits"]) == max(paths) and int(r["array.acc_bits"]) == min(accs)]
    if anchor:
        a0 = max(anchor, key=lambda r: r["wb"] * r["ab"])
        xs = sorted({r["wb"] * r["ab"] for r in ok})
        ax.plot(xs, [a0["mac_energy_per_op_pj"] * x / (a0["wb"] * a0["ab"]) for x in xs], color="gray", lw=1,
                ls=":", label="ideal: proportional to Wa x Wb")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plotstyle.log_ticks(ax.yaxis)
    ax.set_xticks(sorted({r["wb"] * r["ab"] for r in ok}))
    ax.set_xticklabels(["%d\n(%s)" % (x, ",".join(sorted({"W%dA%d" % (r["wb"], r["ab"]) for r in ok
                                                          if r["wb"] * r["ab"] == x}))) for x in ax.get_xticks()])
    ax.set_xlabel("weight x activation bits of the network's inner layers")
    ax.set_ylabel("MAC-array energy per dense op (pJ)")
    ax.set_title("Array energy per op vs precision", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    # right: whole-chip energy per op, stacked by part, for each network and datapath
    ax = axes[1]
    parts = [("energy_mac_pj", "MAC"), ("energy_registers_pj", "registers"), ("energy_sram_pj", "SRAM"),
             ("energy_dram_pj", "DRAM"), ("energy_ppu_pj", "PPU"), ("energy_leakage_pj", "leakage")]
    cols = ["#2b7bba", "#9ecae1", "#31a354", "#e6550d", "#74c476", "#969696"]
    labels, stacks = [], []
    acc_show = min(accs)
    for wb, ab, name in nets:
        for p in paths:
            sel = [r for r in ok if r["network"] == name and int(r["array.weight_path_bits"]) == p
                   and int(r["array.acc_bits"]) == acc_show]
            if sel:
                r = sel[0]
                labels.append("W%dA%d\n%d-bit path" % (wb, ab, p))
                stacks.append([(r.get(k) or 0) / (2.0 * r["macs"]) for k, _ in parts])
    bottom = [0.0] * len(stacks)
    for i, (k, lab) in enumerate(parts):
        vals = [s[i] for s in stacks]
        ax.bar(range(len(stacks)), vals, bottom=bottom, color=cols[i], label=lab)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(stacks)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("energy per dense op (pJ), whole accelerator")
    ax.set_title("Where the energy goes (%d-bit accumulator)" % acc_show, fontsize=11)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, outdir, "precision")
    plt.close(fig)

    table = []
    for wb, ab, name in nets:
        for p in paths:
            for a in accs:
                sel = [r for r in ok if r["network"] == name and int(r["array.weight_path_bits"]) == p
                       and int(r["array.acc_bits"]) == a]
                if not sel:
                    continue
                r = sel[0]
                e = r["energy_pj"]
                table.append(["W%dA%d" % (wb, ab), p, a, "%.2f" % (r["time_s"] * 1e3),
                              "%.3f" % r["energy_per_op_pj"], "%.4f" % r["mac_energy_per_op_pj"],
                              "%.0f%%" % (100 * r["energy_mac_pj"] / e), "%.0f%%" % (100 * r["energy_sram_pj"] / e),
                              "%.0f%%" % (100 * r["energy_dram_pj"] / e), "%.0f%%" % (100 * r["energy_leakage_pj"] / e),
                              "%.2f" % r["effective_tops_per_w"], r.get("acc_overflows", "")] + _stalls(r))
    mult = _tech_value("mult_fj_per_bit2", 3.1)
    accf = _tech_value("acc_fj_per_bit", 3.1)

    def mac(name, p, a):
        s = [r for r in ok if r["network"] == name and int(r["array.weight_path_bits"]) == p
             and int(r["array.acc_bits"]) == a]
        return s[0]["mac_energy_per_op_pj"] if s else None
    byname = {(wb, ab): name for wb, ab, name in nets}
    hi, lo = byname.get((8, 8)), byname.get((2, 2)) or byname.get((2, 4))
    head = ""
    if hi and lo and 2 in paths and 8 in paths:
        lwb, lab_ = [k for k, v in byname.items() if v == lo][0]
        ideal = 64.0 / (lwb * lab_)
        r8 = [mac(hi, 8, a) / mac(lo, 8, a) for a in accs if mac(hi, 8, a) and mac(lo, 8, a)]
        r2 = [mac(hi, 2, a) / mac(lo, 2, a) for a in accs if mac(hi, 2, a) and mac(lo, 2, a)]
        accshare = [accf * a / (mult * lab_ * 2 + accf * a) for a in accs]
        tot = [r for r in ok if r["network"] in (hi, lo) and int(r["array.acc_bits"]) == min(accs)
               and int(r["array.weight_path_bits"]) == 2]
        tot_ratio = None
        if len(tot) == 2:
            th = [r for r in tot if r["network"] == hi][0]["energy_per_op_pj"]
            tl = [r for r in tot if r["network"] == lo][0]["energy_per_op_pj"]
            tot_ratio = th / tl
        head = (
            "Going from W8A8 to W%dA%d cuts the Wa x Wb bit product %.0fx, but the MAC array's energy per op falls "
            "only %s on the 2-bit weight path and %s on an 8-bit path (16- / 32-bit accumulator): on the 8-bit path "
            "the multiplier stays 8 bits wide whatever the weights, and on the 2-bit path each slice op pays the "
            "full accumulator (%.1f fJ/bit x Wacc) next to a multiplier of only %.1f x Wa x 2 fJ, so at W%dA%d the "
            "accumulator is %s of a slice op's energy: that is where the quadratic fall stops. For the whole "
            "accelerator the fall is smaller still (%s W8A8 -> W%dA%d on the 2-bit path, 16-bit accumulator), because "
            "DRAM traffic, SRAM and leakage do not shrink with the MAC." % (
                lwb, lab_, ideal, " / ".join("%.1fx" % x for x in r2), " / ".join("%.1fx" % x for x in r8),
                accf, mult, lwb, lab_, " / ".join("%.0f%%" % (100 * s) for s in accshare),
                "%.1fx" % tot_ratio if tot_ratio else "n/a", lwb, lab_))
    if hi and lo and 2 in paths and 8 in paths:
        def row(name, p, a):
            s_ = [r for r in ok if r["network"] == name and int(r["array.weight_path_bits"]) == p
                  and int(r["array.acc_bits"]) == a]
            return s_[0] if s_ else None
        a16, a32 = min(accs), max(accs)
        h2, h8, l2, l8 = row(hi, 2, a32), row(hi, 8, a32), row(lo, 2, a16), row(lo, 8, a16)
        ovf = row(hi, 2, a16)
        extra = []
        if ovf and ovf.get("acc_overflows"):
            extra.append("A %d-bit accumulator saturates %s times in W8A8's ResNet-18 and never in the narrower "
                         "networks, so only W8A8 needs the %d-bit one." % (a16, "{:,}".format(int(ovf["acc_overflows"])),
                                                                        a32))
        if h2 and h8 and l2 and l8:
            extra.append("The 8-bit path runs W8A8 %.1fx faster (one slice instead of four) but spends %.1fx the "
                         "2-bit path's MAC energy per op on W%dA%d." % (
                             h2["time_s"] / h8["time_s"], l8["mac_energy_per_op_pj"] / l2["mac_energy_per_op_pj"],
                             lwb, lab_))
        head += " " + " ".join(extra)
    sec = [_img(outdir, "precision", "energy per op vs precision"),
           "Left: MAC-array energy (the `mac` part of the report) per dense operation (2 per MAC) against the "
           "network's inner-layer bit product; the dotted line is the ideal quadratic scaling. Right: the whole "
           "accelerator's energy per op by component. First conv and classifier keep 8-bit weights in every "
           "network (make_nets.py), so they are included at 8 bits. The weight buffer's banks are 4 B wide for the "
           "2-bit path and 16 B for the 8-bit path, so that each feeds the array one step per cycle.",
           _md_table(["net", "weight path", "acc bits", "time ms", "pJ/op (all)", "pJ/op (MAC)", "MAC", "SRAM",
                      "DRAM", "leakage", "TOPS/W", "acc overflows", "DRAM stall", "buffer stall"], table)]
    _page(spec, outdir, "precision (energy per op vs weight x activation width)", head, sec, rows)


# -- 2. zero skipping -------------------------------------------------------------------------------
def zero_skip(spec, rows, outdir, results):
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status") == "ok"]
    nets = sorted({r["network"] for r in ok})
    modes = [m for m in ("gate", "weights", "activations", "both") if any(r["array.zero_skip"] == m for r in ok)]

    def slices(r):
        return (r["mac_slice_ops"] or 0) + (r["mac_slice_gated"] or 0) + (r["mac_slice_skipped"] or 0)

    def baseline(n, g):
        b = [r for r in ok if r["network"] == n and r["array.zero_skip"] == "none" and int(r["array.skip_group"]) == g]
        b = b or [r for r in ok if r["network"] == n and r["array.zero_skip"] == "none"]
        return b[0] if b else None

    fig, axes = plt.subplots(len(nets), 2, figsize=(11, 3.9 * len(nets)), squeeze=False)
    table = []
    best = {}
    for i, n in enumerate(nets):
        groups = sorted({int(r["array.skip_group"]) for r in ok if r["network"] == n})
        for g in groups:
            b = baseline(n, g)
            if b:
                table.append([n, "none", g, "{:,}".format(int(b["cycles"])), "1.00x", "1.000",
                              "%.3f" % b["energy_per_op_pj"], "%.1f%%" % (100 * b["utilization"]), "0%", "0%"]
                             + _stalls(b))
        for m in modes:
            sel = sorted([r for r in ok if r["network"] == n and r["array.zero_skip"] == m],
                         key=lambda r: int(r["array.skip_group"]))
            pts = []
            for r in sel:
                b = baseline(n, int(r["array.skip_group"]))
                if not b:
                    continue
                sp, en = b["cycles"] / r["cycles"], r["energy_pj"] / b["energy_pj"]
                pts.append((int(r["array.skip_group"]), sp, en))
                table.append([n, m, r["array.skip_group"], "{:,}".format(int(r["cycles"])), "%.2fx" % sp, "%.3f" % en,
                              "%.3f" % r["energy_per_op_pj"], "%.1f%%" % (100 * r["utilization"]),
                              "%.0f%%" % (100 * (r["mac_slice_skipped"] or 0) / max(slices(r), 1)),
                              "%.0f%%" % (100 * (r["mac_slice_gated"] or 0) / max(slices(r), 1))] + _stalls(r))
                if sp > best.get(n, (0,))[0] + 1e-9 or (abs(sp - best.get(n, (0,))[0]) < 1e-9 and en < best[n][2]):
                    best[n] = (sp, r, en)
            if pts:   # modes often coincide (gate/weights, activations/both): marker and dash tell them apart
                mi = modes.index(m)
                kw = dict(marker=plotstyle.MARKERS[mi % len(plotstyle.MARKERS)], ms=5 + (len(modes) - mi),
                          ls=["-", "--", "-.", ":"][mi % 4], label=m, mfc="none" if mi % 2 else None)
                axes[i][0].plot([p[0] for p in pts], [p[1] for p in pts], **kw)
                axes[i][1].plot([p[0] for p in pts], [p[2] for p in pts], **kw)
        for j, (yl, t) in enumerate((("speedup over no skipping", "cycles"),
                                     ("energy / energy without skipping", "energy"))):
            ax = axes[i][j]
            ax.set_xscale("log", base=2)
            ax.set_xticks(groups)
            ax.set_xticklabels([str(g) for g in groups])
            ax.set_xlabel("skip_group (rows in lockstep, sharing a weight feed)")
            ax.set_ylabel(yl)
            ax.set_title("%s: %s (baseline: zero_skip = none, same group)" % (n, t), fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, outdir, "zero_skip")
    plt.close(fig)

    heads = []
    for n in nets:
        if n not in best:
            continue
        sp, r, e = best[n]
        mine = [q for q in ok if q["network"] == n]
        groups = sorted({int(q["array.skip_group"]) for q in mine})

        def get(m, g):
            x = [q for q in mine if q["array.zero_skip"] == m and int(q["array.skip_group"]) == g]
            return x[0] if x else None
        cheap = min(mine, key=lambda q: q["energy_pj"])
        none_best = min([q for q in mine if q["array.zero_skip"] == "none"], key=lambda q: q["energy_pj"], default=None)
        parts = ["On %s the fastest is `%s` with groups of %s row(s): %.2fx fewer cycles and %.0f%% less energy "
                 "than `none` with the same groups" % (n, r["array.zero_skip"], r["array.skip_group"], sp,
                                                       100 * (1 - e))]
        if none_best:
            parts.append("the least energy is `%s` with groups of %s (%.3f pJ/op, %.0f%% below the best `none`, %.2fx "
                         "faster than it)" % (cheap["array.zero_skip"], cheap["array.skip_group"],
                                              cheap["energy_per_op_pj"],
                                              100 * (1 - cheap["energy_pj"] / none_best["energy_pj"]),
                                              none_best["cycles"] / cheap["cycles"]))
        a1, a2 = get("activations", groups[0]), get("activations", groups[-1])
        if a1 and a2:
            parts.append("larger groups skip fewer steps (%.0f%% of slice ops skipped with groups of %d, %.0f%% with "
                         "%d) but read the weight buffer less often (one weight feed per group), which is why energy "
                         "per op falls with the group even without skipping" % (
                             100 * a1["mac_slice_skipped"] / max(slices(a1), 1), groups[0],
                             100 * a2["mac_slice_skipped"] / max(slices(a2), 1), groups[-1]))
        w = get("weights", groups[0])
        g1 = get("gate", groups[0])
        if w and g1:
            parts.append("weight skipping removes only %.2f%% of slice ops (a step is dropped only when the weights "
                         "of all %s columns of an n-block are zero) and its per-step indices cost DRAM traffic, so "
                         "`weights` uses %.0f%% more energy than plain gating and `both` more than `activations`" % (
                             100 * w["mac_slice_skipped"] / max(slices(w), 1), "the", 100 * (w["energy_pj"] / g1["energy_pj"] - 1)))
        if g1:
            b1 = baseline(n, groups[0])
            parts.append("gating alone saves no cycle and %.0f%% of the energy" % (100 * (1 - g1["energy_pj"] / b1["energy_pj"])))
        heads.append("; ".join(parts) + ".")
    note = ("Note on `skip_group` with `zero_skip = none`: docs/config.md says the group is ignored then, but the "
            "simulator still gives each group of rows its own weight feed (docs/timing.md, sim/array.c), so the group "
            "changes the weight-buffer bandwidth a configuration needs even without skipping. With dlac.cfg's "
            "16 B/cycle weight buffer, `none` with groups of 1 stalls about 4x on the buffer; this study widens the "
            "weight banks (4 x 16 B) and compares each mode with `none` at the same group.")
    sec = [_img(outdir, "zero_skip", "zero skipping"),
           "Speedup = cycles of `zero_skip = none` at the same `skip_group` / cycles; energy relative to that "
           "baseline. `skipped` and `gated` are shares of all slice operations.",
           note,
           _md_table(["network", "zero_skip", "skip_group", "cycles", "speedup", "energy (rel.)", "pJ/op",
                      "utilization", "skipped", "gated", "DRAM stall", "buffer stall"], table)]
    _page(spec, outdir, "zero skipping (speedup and energy vs skip mode and group)", " ".join(heads), sec, rows)


# -- 3. accuracy vs energy --------------------------------------------------------------------------
def accuracy(spec, rows, outdir, results):
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status") == "ok" and r.get("accuracy") is not None]
    fig, ax = plt.subplots(figsize=(8, 5))
    objs = [("energy_pj", "min"), ("accuracy", "max")]
    front = {r["key"] for _, r in fronts(ok, objs, "all")}
    cmap = plt.get_cmap("tab10")
    nets = sorted({r["network"] for r in ok})
    other = [k for k in spec.param_names if not k.startswith("buffer.")]
    mk = ["o", "s", "^", "D", "v", "P"]
    combos = sorted({tuple(str(r.get(k)) for k in other) for r in ok})
    for r in ok:
        ci = nets.index(r["network"])
        mi = combos.index(tuple(str(r.get(k)) for k in other))
        on = r["key"] in front
        ax.scatter(r["energy_pj"] / 1e3, 100 * r["accuracy"], s=60 if on else 30, marker=mk[mi % len(mk)],
                   color=cmap(ci % 10), edgecolors="black" if on else "none", linewidths=1.0, zorder=3, alpha=0.9)
    for ci, n in enumerate(nets):
        ax.scatter([], [], color=cmap(ci % 10), marker="o", label=n)
    for mi, c in enumerate(combos):
        ax.scatter([], [], color="gray", marker=mk[mi % len(mk)],
                   label=", ".join("%s=%s" % (k.split(".")[-1], v) for k, v in zip(other, c)))
    ax.scatter([], [], color="white", edgecolors="black", label="on the front")
    fr = sorted([r for r in ok if r["key"] in front], key=lambda r: r["energy_pj"])
    if fr:
        ax.plot([r["energy_pj"] / 1e3 for r in fr], [100 * r["accuracy"] for r in fr], color="black",
                drawstyle="steps-post", lw=0.8, zorder=2)
    ax.set_xlabel("energy per inference (nJ)")
    ax.set_ylabel("top-1 accuracy on the digits test split (%)")
    ax.set_title("Accuracy vs energy (front: fewest nJ for the accuracy)", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if ok and max(r["energy_pj"] for r in ok) / max(min(r["energy_pj"] for r in ok), 1e-9) > 30:
        ax.set_xscale("log")
    fig.tight_layout()
    _save(fig, outdir, "accuracy_energy")
    plt.close(fig)
    table = [[r["network"], _cfg_label(r, spec), "%.2f%%" % (100 * r["accuracy"]), r.get("labelled", ""),
              "%.1f" % (r["energy_pj"] / 1e3), "%.3f" % r["energy_per_op_pj"], "{:,}".format(int(r["cycles"])),
              "%.3f" % r["area_mm2"], "yes" if r["key"] in front else ""]
             for r in sorted(ok, key=lambda r: r["energy_pj"])]
    head = ""
    if fr:
        hi = max(ok, key=lambda r: (r["accuracy"], -r["energy_pj"]))
        lo = fr[0]
        head = ("The most accurate point, %s (%s), reaches %.1f%% at %.1f nJ per image; the cheapest point on the "
                "front, %s (%s), costs %.1f nJ (%.1fx less) at %.1f%%." % (
                    hi["network"], _cfg_label(hi, spec), 100 * hi["accuracy"], hi["energy_pj"] / 1e3, lo["network"],
                    _cfg_label(lo, spec), lo["energy_pj"] / 1e3, hi["energy_pj"] / lo["energy_pj"],
                    100 * lo["accuracy"]))
        nets = sorted({r["network"] for r in ok})
        same = all(len({r["accuracy"] for r in ok if r["network"] == n}) == 1 for n in nets)
        if same and len(ok) > len(nets):
            novf = all(not (_f(r.get("acc_overflows")) or 0) for r in ok)
            head += (" No configuration changes a prediction: each network scores the same on all %d configurations%s, "
                     "so accuracy comes from the network and energy from the network and the datapath." % (
                         len(ok) // len(nets), " (no accumulator saturates on these nets)" if novf else ""))
        w8 = [r for r in ok if "w8a8" in r["network"]]
        if w8:
            c8 = min(w8, key=lambda r: r["energy_pj"])
            head += (" The cheapest W8A8 point (%s) costs %.1f nJ, %.1fx the most accurate point's, for %.1f%%." % (
                _cfg_label(c8, spec), c8["energy_pj"] / 1e3, c8["energy_pj"] / hi["energy_pj"], 100 * c8["accuracy"]))
    sec = [_img(outdir, "accuracy_energy", "accuracy vs energy"),
           "Accuracy is measured by qsim itself on the test split (`--input`/`--labels` from digits_test.npz); "
           "energy is per inference (the batch mean).",
           _md_table(["network", "config", "accuracy", "images", "nJ/inference", "pJ/op", "cycles", "mm^2",
                      "on front"], table)]
    _page(spec, outdir, "accuracy vs energy (digits networks)", head, sec, rows)


def _cfg_label(r, spec):
    return ", ".join("%s=%s" % (k.split(".")[-1], r.get(k)) for k in spec.param_names
                     if r.get(k) is not None and not k.startswith("buffer."))


def _buf_extremes(ok, bufkey):
    out = []
    for rows_ in sorted({int(r["array.rows"]) for r in ok}):
        sel = sorted([r for r in ok if int(r["array.rows"]) == rows_], key=lambda r: int(r[bufkey]))
        if len(sel) >= 2:
            out.append((sel[0], sel[-1]))
    return out


# -- 4. sizing --------------------------------------------------------------------------------------
def sizing(spec, rows, outdir, results):
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status") == "ok"]
    bufkey = "buffer.ifmap.size_kib"
    bufs = sorted({(int(r[bufkey]), int(r["buffer.weight.size_kib"])) for r in ok})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    for bi, bw in enumerate(bufs):
        sel = sorted([r for r in ok if (int(r[bufkey]), int(r["buffer.weight.size_kib"])) == bw],
                     key=lambda r: int(r["array.rows"]) * int(r["array.cols"]))
        pes = [int(r["array.rows"]) * int(r["array.cols"]) for r in sel]
        lab = "ifmap %d KiB, weight %d KiB" % bw
        axes[0].plot(pes, [r["mem_bound_layers"] for r in sel], marker="o", label=lab)
        axes[1].plot(pes, [r["time_s"] * 1e3 for r in sel], marker="o", label=lab)
        axes[2].plot(pes, [100 * r["dram_stall_fraction"] for r in sel], marker="o", label=lab)
    if ok:
        n = max(r["compute_layers"] for r in ok)
        axes[0].axhline(n, color="gray", ls=":", lw=1, label="all %d conv/fc layers" % n)
    allpes = sorted({int(r["array.rows"]) * int(r["array.cols"]) for r in ok})
    names = {int(r["array.rows"]) * int(r["array.cols"]): "%sx%s" % (r["array.rows"], r["array.cols"]) for r in ok}
    for ax, yl in zip(axes, ("memory-bound layers (roofline)", "time per inference (ms)",
                             "cycles stalled on DRAM (%)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(allpes)
        ax.set_xticklabels(["%s\n%d" % (names[p], p) for p in allpes])
        ax.minorticks_off()
        ax.set_xlabel("PEs (rows x cols, square arrays)")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_yscale("log")
    plotstyle.log_ticks(axes[1].yaxis)
    axes[0].legend(fontsize=7)
    fig.suptitle("ResNet-50 sizing on the dLAC-like core", fontsize=11)
    fig.tight_layout()
    _save(fig, outdir, "sizing")
    plt.close(fig)
    table = []
    for r in sorted(ok, key=lambda r: (int(r["array.rows"]), int(r[bufkey]))):
        table.append(["%sx%s" % (r["array.rows"], r["array.cols"]), r[bufkey], r["buffer.weight.size_kib"],
                      "%.2f" % (r["time_s"] * 1e3), "%.1f%%" % (100 * r["utilization"]),
                      "%d / %d" % (r["mem_bound_layers"], r["compute_layers"]),
                      "%.0f%%" % (100 * r["dram_stall_fraction"]),
                      "%.0f%%" % (100 * (r["stall_buffer"] or 0) / r["cycles"]), "%.1f" % (r["dram_bytes"] / 1e6),
                      "%.3f" % r["energy_per_op_pj"], "%.2f" % r["area_mm2"], "%.2f" % r["effective_tops_per_w"]])
    failed = [r for r in rows if r.get("status") != "ok"]
    head = ""
    if ok:
        # the smallest array at which memory-bound layers are the majority, per buffer set
        parts = []
        for bw in bufs:
            sel = sorted([r for r in ok if (int(r[bufkey]), int(r["buffer.weight.size_kib"])) == bw],
                         key=lambda r: int(r["array.rows"]) * int(r["array.cols"]))
            first = next((r for r in sel if r["mem_bound_layers"] * 2 > r["compute_layers"]), None)
            parts.append("%s with %d/%d KiB ifmap/weight buffers" % (
                ("from %sx%s" % (first["array.rows"], first["array.cols"])) if first else "at no size tried",
                bw[0], bw[1]))
        small = min(ok, key=lambda r: (int(r["array.rows"]), -int(r[bufkey])))
        big = max(ok, key=lambda r: (int(r["array.rows"]), int(r[bufkey])))
        head = ("At %sx%s, %d of ResNet-50's %d conv/fc layers are memory-bound (left of their roofline ridge) and "
                "the array is %.0f%% utilized; at %sx%s, %d are, the array is %.0f%% utilized and %.0f%% of the "
                "cycles wait on DRAM. Most layers are memory-bound %s." % (
                    small["array.rows"], small["array.cols"], small["mem_bound_layers"], small["compute_layers"],
                    100 * small["utilization"], big["array.rows"], big["array.cols"], big["mem_bound_layers"],
                    100 * big["utilization"], 100 * big["dram_stall_fraction"], "; ".join(parts)))
        pre = [r for r in ok if int(r[bufkey]) == 64]
        if len(pre) >= 2:
            lo_, hi_ = min(pre, key=lambda r: int(r["array.rows"])), max(pre, key=lambda r: int(r["array.rows"]))
            npe = int(hi_["array.rows"]) * int(hi_["array.cols"]) / (int(lo_["array.rows"]) * int(lo_["array.cols"]))
            head += (" With the preset's buffers, %dx the PEs (%sx%s -> %sx%s) buy %.1fx the speed for %.1fx the area; "
                     "bigger buffers help the big arrays most (%s)." % (
                         npe, lo_["array.rows"], lo_["array.cols"], hi_["array.rows"], hi_["array.cols"],
                         lo_["time_s"] / hi_["time_s"], hi_["area_mm2"] / lo_["area_mm2"],
                         ", ".join("%sx%s: %.2f -> %.2f ms" % (
                             r0["array.rows"], r0["array.cols"], r0["time_s"] * 1e3, r1["time_s"] * 1e3)
                             for r0, r1 in _buf_extremes(ok, bufkey))))
    sec = [_img(outdir, "sizing", "sizing"),
           "A layer is memory-bound when its arithmetic intensity (2 x MACs per DRAM byte read and written) is below "
           "the ridge of its own roofline (peak rows x cols x 2 ops per cycle / weight slices, over the DRAM's bytes "
           "per cycle). Bank widths grow with the array so that buffers feed one array edge per cycle.",
           _md_table(["array", "ifmap KiB", "weight KiB", "ms", "utilization", "memory-bound", "DRAM stall",
                      "buffer stall", "DRAM MB", "pJ/op", "mm^2", "TOPS/W"], table)]
    if failed:
        sec.append("Points qsim refused:\n\n" + "\n".join("- `%s`: %s" % (r.get("overrides"), (r.get("error") or "")
                                                                         .splitlines()[0][:200]) for r in failed))
    _page(spec, outdir, "sizing (array shape and buffers for ResNet-50)", head, sec, rows)


# -- 5. weight skipping that pays -------------------------------------------------------------------
def weight_skip(spec, rows, outdir, results):
    """Array cycles (cycles less the DRAM, dependency and PPU stalls: docs/timing.md charges every idle
    interval to one of them) of each skipping design against dense execution (zero_skip = none, same
    array), and the bound the data sets: dense slice operations / slice operations with both operands
    non-zero (what a design that skipped every ineffectual operation, for free, would reach)."""
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status") == "ok"]
    nets = sorted({r["network"] for r in ok})

    def la(r):
        return int(r.get("array.lookahead") or 0)

    def label(r):
        m = r["array.zero_skip"]
        if la(r):
            return "lookahead %d" % la(r)
        if m in ("none", "gate", "weights"):
            return m
        return "%s, groups of %s" % (m, r["array.skip_group"])

    def busy(r):
        return r["cycles"] - (r.get("stall_dram") or 0) - (r.get("stall_dependency") or 0) - (r.get("stall_ppu") or 0)

    def slices(r):
        return (r["mac_slice_ops"] or 0) + (r["mac_slice_gated"] or 0) + (r["mac_slice_skipped"] or 0)

    table, heads, plot = [], [], {}
    for n in nets:
        mine = [r for r in ok if r["network"] == n]
        base = [r for r in mine if r["array.zero_skip"] == "none"]
        if not base:
            continue
        b = base[0]
        # effectual = slice ops with both operands non-zero: the active ops of any gating design
        gated = [r for r in mine if r["array.zero_skip"] != "none"]
        ideal = slices(b) / max(min(r["mac_slice_ops"] for r in gated), 1) if gated else None
        pts = []
        for r in sorted(mine, key=lambda r: (la(r), r["array.zero_skip"], int(r["array.skip_group"]))):
            sp = busy(b) / max(busy(r), 1)
            tot = b["cycles"] / max(r["cycles"], 1)
            pts.append((label(r), sp))
            table.append([n, label(r), "{:,}".format(int(busy(r))), "%.2fx" % sp, "%.2fx" % tot,
                          "%.3f" % (r["energy_pj"] / b["energy_pj"]), "%.0f" % r["pe_area_um2"],
                          "%.3f" % r["area_mm2"], "%.0f%%" % (100 * r["mac_slice_skipped"] / max(slices(r), 1))])
        plot[n] = (pts, ideal)
        best = max(mine, key=lambda r: busy(b) / max(busy(r), 1))
        bsp = busy(b) / max(busy(best), 1)
        las = [r for r in mine if la(r)]
        part = ("On %s the closest to 3x is %s: %.2fx fewer array cycles than dense (%.2fx in total cycles), energy "
                "x%.3f, PE %.0f um^2 against %.0f um^2 dense" % (
                    n, label(best), bsp, b["cycles"] / best["cycles"], best["energy_pj"] / b["energy_pj"],
                    best["pe_area_um2"], b["pe_area_um2"]))
        if las:
            bl = max(las, key=lambda r: busy(b) / max(busy(r), 1))
            part += ("; the best lookahead (%d) gives %.2fx at PE %.0f um^2 (x%.2f) and energy x%.3f" % (
                la(bl), busy(b) / busy(bl), bl["pe_area_um2"], bl["pe_area_um2"] / b["pe_area_um2"],
                bl["energy_pj"] / b["energy_pj"]))
        if ideal:
            part += ("; skipping every slice operation with a zero operand would give %.2fx (%.0f%% of the dense "
                     "slice operations have a zero weight or activation)" % (ideal, 100 * (1 - 1 / ideal)))
        heads.append(part + ".")
    fig, axes = plt.subplots(1, max(len(plot), 1), figsize=(5.2 * max(len(plot), 1), 4.2), squeeze=False)
    for ax, (n, (pts, ideal)) in zip(axes[0], sorted(plot.items())):
        ax.barh([p[0] for p in pts], [p[1] for p in pts], color="#4a7ab0")
        ax.axvline(3.0, color="#b04a4a", linestyle="--", label="dLAC's ~3x")
        if ideal:
            ax.axvline(ideal, color="#555555", linestyle=":", label="every zero operand skipped (%.2fx)" % ideal)
        ax.set_xlabel("array cycles: dense / design")
        ax.set_title(n, fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    _save(fig, outdir, "weight_skip")
    plt.close(fig)
    sec = [_img(outdir, "weight_skip", "weight skipping"),
           "Array cycles = cycles less the DRAM, dependency and PPU stalls (docs/timing.md charges every idle "
           "interval to one of them; SRAM-bandwidth stalls stay in). Speedups are against `zero_skip = none` on "
           "the same array; `total` compares whole-network cycles, where DRAM time does not shrink. Energy is "
           "relative to dense. `lookahead H` = `zero_skip = weights`, `lookahead = H` (docs/timing.md \"Lookahead "
           "weight skipping\": every column takes its next non-zero weight slice from a window of H + 1 steps; "
           "activation zeros then only gate). `skipped` = slice operations that cost no cycle, as a share of the "
           "dense ones.",
           _md_table(["network", "design", "array cycles", "speedup", "total", "energy (rel.)", "PE um^2",
                      "chip mm^2", "skipped"], table),
           "Why each design stops where it does (the rules are in docs/timing.md). *Compiler weight skipping* "
           "(`weights` without lookahead) drops a step only when all 16 columns of an n-block have a zero weight "
           "there. *Lookahead* lets every column skip its own zero weights, but all columns share the activation "
           "window, so the column with the most non-zero weights in a stretch of steps paces the array, and "
           "activation zeros only gate: its schedule is fixed by the weights, and a per-row-group schedule that "
           "also dropped zero activations would need up to H + 1 weight rows per clock per row group. Each step "
           "of lookahead adds H x (activation bits + 1) window flops, the window index and an (H+1):1 "
           "multiplexer to every PE. *Activation skipping* with groups of 1 lets every row skip its own zero "
           "activations but keeps every weight slice, and needs a weight feed per row (here 4 x 16 B weight "
           "banks). The bound in the last clause of each summary is what skipping both operands' zeros "
           "everywhere, for free, would give; reaching dLAC's ~3x takes a design that combines both kinds of "
           "skipping, which none of these configurations is."]
    _page(spec, outdir, "weight skipping that pays (dLAC's ~3x)", " ".join(heads), sec, rows)
