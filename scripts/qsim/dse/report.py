"""scripts/report: one qsim run JSON (docs/report.md) -> an HTML page with per-layer figures and tables."""
from __future__ import annotations

import argparse
import html
import json
import os
import sys

from . import DseError, _meta, need_matplotlib, plotstyle

STALLS = ["dram", "dependency", "ppu"]
ENERGY_PARTS = ["mac", "registers", "sram", "dram", "ppu", "leakage"]
COLORS = {"compute": "#2b7bba", "buffer": "#9ecae1", "dram": "#e6550d", "dependency": "#fdae6b",
          "ppu": "#74c476", "other": "#bdbdbd", "mac": "#2b7bba", "registers": "#9ecae1", "sram": "#31a354",
          "leakage": "#969696"}


def layer_cycle_parts(L: dict) -> dict:
    """cycles = array busy + dram + dependency + ppu stalls (docs/timing.md); 'buffer' stalls are part of
    busy time, shown separately; 'other' catches any remainder."""
    st = L.get("stall_cycles") or {}
    busy = L.get("array_busy") or 0
    buf = st.get("buffer") or 0
    parts = {"compute": max(busy - buf, 0), "buffer": min(buf, busy)}
    for s in STALLS:
        parts[s] = st.get(s) or 0
    parts["other"] = max((L.get("cycles") or 0) - busy - sum(st.get(s) or 0 for s in STALLS), 0)
    return parts


def roofline_points(rep: dict) -> tuple:
    """Per MAC layer: arithmetic intensity (2*MACs / DRAM bytes read+written) and attained ops/s
    (2*MACs / layer time); the array peak rows*cols*2*freq and the DRAM roof bytes_per_cycle*freq."""
    cfg = rep["config"]
    f = cfg["freq_mhz"] * 1e6
    peak = cfg["rows"] * cfg["cols"] * 2.0 * f
    bw = cfg["dram_bytes_per_cycle"] * f
    pts = []
    for L in rep.get("layers", []):
        macs = L.get("macs") or 0
        if macs <= 0 or not L.get("cycles"):
            continue
        nbytes = (L.get("dram_read_bytes") or 0) + (L.get("dram_write_bytes") or 0)
        ai = 2.0 * macs / nbytes if nbytes else float("inf")
        perf = 2.0 * macs / (L["cycles"] / f)
        slices = (L.get("mapping") or {}).get("slices") or 1
        ridge = peak / slices / bw
        pts.append({"name": L["name"], "ai": ai, "ops_s": perf, "slices": slices,
                    "bound": "memory" if ai < ridge else "compute", "cycles": L["cycles"]})
    return peak, bw, pts


def _fig_width(n):
    return min(max(6.5, 0.22 * n + 2.5), 40)


def _save(fig, outdir, stem):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(outdir, "%s.%s" % (stem, ext)), dpi=110, metadata=_meta(ext), bbox_inches="tight")


def _si_axis(axis, unit=""):
    """Tick labels as 1.5 M, 200 G op/s: no '1e6' offset to decode."""
    from matplotlib.ticker import FuncFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: plotstyle.si(v, unit) if v else "0"))


def _place_labels(fig, ax, items):
    """Annotate (name, x, y) points without two labels overlapping: each label takes the first of a few
    offsets around its point whose box meets no label placed before it; a label with no free spot is
    left out (the table on the page names every layer)."""
    offsets = [(5, -10), (5, 4), (-5, 4), (-5, -10), (5, -22), (5, 16), (-5, 16), (-5, -22)]
    renderer = fig.canvas.get_renderer()
    placed = []
    for name, x, y in items:
        for dx, dy in offsets:
            t = ax.annotate(name, (x, y), fontsize=7, xytext=(dx, dy), textcoords="offset points",
                            ha="left" if dx > 0 else "right")
            box = t.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            t.remove()


def make_figures(rep: dict, outdir: str) -> list:
    plt = need_matplotlib()
    layers = rep.get("layers", [])
    names = [L["name"] for L in layers]
    x = list(range(len(layers)))
    made = []

    # cycles per layer, stacked by cause
    fig, ax = plt.subplots(figsize=(_fig_width(len(layers)), 4.6))
    bottom = [0.0] * len(layers)
    parts = [layer_cycle_parts(L) for L in layers]
    for k in ["compute", "buffer", "dram", "dependency", "ppu", "other"]:
        vals = [p[k] for p in parts]
        if any(vals):
            ax.bar(x, vals, bottom=bottom, color=COLORS[k], label={"compute": "array busy",
                   "buffer": "buffer stall (in busy)"}.get(k, k + " stall" if k != "other" else "other"), width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("cycles per inference")
    _si_axis(ax.yaxis)
    ax.set_title("Cycles per layer (%s cycles in all)" % _si(rep["total"]["cycles"]))
    _xt(ax, x, names)
    plotstyle.legend_outside(ax)
    fig.tight_layout()
    _save(fig, outdir, "cycles")
    plt.close(fig)
    made.append("cycles")

    # energy per layer, stacked by component
    fig, ax = plt.subplots(figsize=(_fig_width(len(layers)), 4.6))
    bottom = [0.0] * len(layers)
    for k in ENERGY_PARTS:
        vals = [((L.get("energy_breakdown_pj") or {}).get(k) or 0) / 1e6 for L in layers]
        if any(vals):
            ax.bar(x, vals, bottom=bottom, color=COLORS[k], label=k, width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("energy per inference (uJ)")
    ax.set_title("Energy per layer (%.4g uJ in all)" % (rep["total"]["energy_pj"] / 1e6))
    _xt(ax, x, names)
    plotstyle.legend_outside(ax)
    fig.tight_layout()
    _save(fig, outdir, "energy")
    plt.close(fig)
    made.append("energy")

    # utilization per layer
    fig, ax = plt.subplots(figsize=(_fig_width(len(layers)), 3.8))
    ut = [(L.get("utilization") or 0) * 100 for L in layers]
    ax.bar(x, ut, color=COLORS["compute"], width=0.8)
    tot = (rep["total"].get("utilization") or 0) * 100
    ax.axhline(tot, color="black", lw=1, ls="--", label="whole run: %.1f%%" % tot)
    ax.set_ylim(0, 105)
    ax.set_ylabel("PE utilization (%)")
    ax.set_title("Utilization per layer: (slice ops + gated) / (rows x cols x cycles)")
    _xt(ax, x, names)
    plotstyle.legend_outside(ax)
    fig.tight_layout()
    _save(fig, outdir, "utilization")
    plt.close(fig)
    made.append("utilization")

    # roofline
    peak, bw, pts = roofline_points(rep)
    if pts:
        fig, ax = plt.subplots(figsize=(9, 6))
        finite = [p["ai"] for p in pts if p["ai"] != float("inf")]
        lo = min(finite + [peak / bw]) / 4
        hi = max(finite + [peak / bw]) * 4
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax.plot(xs, [min(peak, a * bw) for a in xs], color="black", lw=1.6,
                label="roofline: peak %s op/s, DRAM %s B/s" % (_si(peak), _si(bw)))
        for s in sorted({p["slices"] for p in pts if p["slices"] > 1}):
            ax.plot(xs, [min(peak / s, a * bw) for a in xs], color="gray", lw=1, ls="--",
                    label="peak / %d (weights in %d slices)" % (s, s))
        for b, c in (("compute", COLORS["compute"]), ("memory", COLORS["dram"])):
            sel = [p for p in pts if p["bound"] == b]
            if sel:
                ax.scatter([min(p["ai"], hi) for p in sel], [p["ops_s"] for p in sel], s=22, color=c,
                           edgecolors="black", linewidths=0.4, zorder=3, label="%s-bound layers" % b)
        from matplotlib.ticker import LogLocator
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ys = [p["ops_s"] for p in pts] + [peak, lo * bw]
        ax.set_ylim(min(ys) / 2, max(ys) * 2)
        for axis, unit in ((ax.xaxis, ""), (ax.yaxis, "op/s")):
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            _si_axis(axis, unit)
        ax.set_xlabel("arithmetic intensity (ops per DRAM byte: 2 x MACs / bytes read + written)")
        ax.set_ylabel("attained performance (2 x MACs / layer time)")
        ax.set_title("Roofline per layer (the %d layers with the most cycles named)" % min(len(pts), 8))
        ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        _place_labels(fig, ax, [(p["name"], min(p["ai"], hi), p["ops_s"])
                                for p in sorted(pts, key=lambda p: -p["cycles"])[:8]])
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
        fig.tight_layout()
        _save(fig, outdir, "roofline")
        plt.close(fig)
        made.append("roofline")
    return made


def _xt(ax, x, names):
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=7 if len(names) < 40 else 6)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(True, axis="y", alpha=0.3)


def _si(v):
    v = float(v)
    for unit, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= f:
            return "%.3g %s" % (v / f, unit)
    return "%.3g" % v


def _time(s):
    if s is None:
        return ""
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= f:
            return "%.4g %s" % (s / f, unit)
    return "%.4g ns" % (s * 1e9)


def _num(v, fmt="%.4g"):
    if v is None:
        return ""
    if isinstance(v, int):
        return "{:,}".format(v)
    if isinstance(v, float):
        return fmt % v
    return html.escape(str(v))


def _table(head, rows, cls="") -> str:
    out = ["<table class='%s'><tr>%s</tr>" % (cls, "".join("<th>%s</th>" % html.escape(h) for h in head))]
    for r in rows:
        out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % c for c in r))
    out.append("</table>")
    return "\n".join(out)


CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.6em 0;
font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.kv td:first-child{font-weight:bold}h2{margin-top:1.4em;border-bottom:1px solid #ddd}"""


def write_report(rep: dict, outdir: str, source: str) -> str:
    os.makedirs(outdir, exist_ok=True)
    figs = make_figures(rep, outdir)
    t = rep["total"]
    cfg = rep.get("config", {})
    peak, bw, pts = roofline_points(rep)
    roof = {p["name"]: p for p in pts}
    tc = t.get("cycles") or 1
    te = t.get("energy_pj") or 1
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>qsim report: %s</title><style>%s</style>"
         "</head><body>" % (html.escape(os.path.basename(str(rep.get("network")))), CSS)]
    h.append("<h1>qsim run: %s on %s</h1>" % (html.escape(str(rep.get("network"))), html.escape(str(rep.get("arch")))))
    h.append("<p>From <code>%s</code>: qsim %s, engine %s, %s inference(s); figures are per inference.</p>" % (
        html.escape(source), html.escape(str(rep.get("qsim_version"))), html.escape(str(rep.get("engine"))),
        rep.get("inferences")))
    tot_rows = [("cycles", _num(t.get("cycles"))), ("time", _time(t.get("time_s"))),
                ("inferences/s", _num(t.get("inferences_per_s"))),
                ("dense MACs", _num(t.get("macs"))), ("executed MACs", _num(t.get("macs_executed"))),
                ("energy", "%s uJ" % _num((t.get("energy_pj") or 0) / 1e6)),
                ("energy per dense op", "%s pJ" % _num((t.get("energy_pj") or 0) / max(2 * (t.get("macs") or 0), 1))),
                ("area", "%s mm^2" % _num(t.get("area_mm2"))),
                ("effective TOPS", _num(t.get("effective_tops"))),
                ("effective TOPS/W", _num(t.get("effective_tops_per_w"))),
                ("effective TOPS/mm^2", _num(t.get("effective_tops_per_mm2"))),
                ("utilization", "%.1f%%" % (100 * (t.get("utilization") or 0))),
                ("DRAM bytes", _num(t.get("dram_bytes"))),
                ("stall cycles", ", ".join("%s %s" % (k, _num(v)) for k, v in (t.get("stall_cycles") or {}).items()))]
    if "accuracy" in rep:
        tot_rows.append(("accuracy", "%.2f%% of %d" % (100 * rep["accuracy"], rep.get("labelled", 0))))
    h.append("<h2>Totals</h2>")
    h.append(_table(["figure", "value"], tot_rows, "kv"))
    h.append("<h2>Configuration</h2>")
    h.append(_table(["key", "value"], [(html.escape(k), _num(v)) for k, v in cfg.items()] +
                    [("array peak (rows x cols x 2 x freq)", "%s op/s" % _si(peak)),
                     ("DRAM roof (bytes/cycle x freq)", "%s B/s" % _si(bw)),
                     ("ridge point", "%.3g op/B" % (peak / bw))], "kv"))
    eb = t.get("energy_breakdown_pj") or {}
    ab = t.get("area_breakdown_mm2") or {}
    h.append("<h2>Energy and area breakdown</h2>")
    h.append(_table(["energy part", "uJ", "share"], [(k, _num(v / 1e6), "%.1f%%" % (100 * v / te)) for k, v in eb.items()]))
    at = t.get("area_mm2") or 1
    h.append(_table(["area part", "mm^2", "share"], [(k, _num(v), "%.1f%%" % (100 * v / at)) for k, v in ab.items()]))
    caps = {"cycles": "Cycles per layer, stacked by what the array did (docs/timing.md: busy, and stalls by cause).",
            "energy": "Energy per layer by component (models/energy.c).",
            "utilization": "PE utilization per layer; dashed: the whole run.",
            "roofline": "Roofline: each MAC layer at its arithmetic intensity and attained ops/s. A layer left "
                        "of its ridge (the roof it meets, dashed for weights split into slices) is memory-bound. Ops are dense "
                        "ops, so with zero skipping a layer can sit above the peak."}
    for f in figs:
        h.append("<h2>%s</h2><p>%s</p><img src='%s.svg' alt='%s'><p><a href='%s.png'>PNG</a> "
                 "<a href='%s.svg'>SVG</a></p>" % (f.capitalize(), caps[f], f, f, f, f))
    h.append("<h2>Layers</h2>")
    rows = []
    for L in rep.get("layers", []):
        st = L.get("stall_cycles") or {}
        m = L.get("mapping") or {}
        r = roof.get(L["name"])
        rows.append([html.escape(L["name"]), html.escape(L.get("type", "")),
                     "x".join(str(s) for s in L.get("out_shape", [])), _num(L.get("macs")), _num(L.get("cycles")),
                     "%.1f%%" % (100 * (L.get("cycles") or 0) / tc), _num(L.get("array_busy")),
                     _num(st.get("dram")), _num(st.get("dependency")), _num(st.get("buffer")), _num(st.get("ppu")),
                     "%.1f%%" % (100 * (L.get("utilization") or 0)),
                     _num((L.get("energy_pj") or 0) / 1e6), "%.1f%%" % (100 * (L.get("energy_pj") or 0) / te),
                     _num(L.get("dram_read_bytes")), _num(L.get("dram_write_bytes")),
                     _num(r["ai"]) if r else "", _si(r["ops_s"]) if r else "", r["bound"] if r else "",
                     " ".join("%s=%s" % (k, m[k]) for k in ("M", "N", "K", "slices", "tile_m", "tile_n", "tile_k",
                                                            "loop_order") if k in m)])
    h.append(_table(["layer", "type", "out", "MACs", "cycles", "of all", "busy", "dram st.", "dep. st.", "buf. st.",
                     "ppu st.", "util.", "energy uJ", "of all", "DRAM rd B", "DRAM wr B", "op/B", "op/s", "bound",
                     "mapping"], rows))
    h.append("</body></html>")
    path = os.path.join(outdir, "index.html")
    with open(path, "w") as f:
        f.write("\n".join(h))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/report", description="HTML page of one qsim run JSON "
                                 "(qsim run ... --json run.json): per-layer cycles, energy, utilization, roofline.")
    ap.add_argument("json", help="qsim run --json output")
    ap.add_argument("-o", "--out", help="output folder (default: RUN-report beside the JSON)")
    a = ap.parse_args(argv)
    try:
        try:
            with open(a.json) as f:
                rep = json.load(f)
        except (OSError, ValueError) as e:
            raise DseError("%s: %s" % (a.json, e))
        for k in ("total", "config", "layers"):
            if k not in rep:
                raise DseError("%s: not a qsim run report (no '%s'; see docs/report.md)" % (a.json, k))
        out = a.out or os.path.splitext(a.json)[0] + "-report"
        path = write_report(rep, out, a.json)
    except DseError as e:
        print("report: %s" % e, file=sys.stderr)
        return 1
    print(path)
    return 0
