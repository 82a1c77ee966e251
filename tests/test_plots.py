#!/usr/bin/python3
"""The figures of scripts/dse and scripts/report are readable (docs/dse.md, "Figures").

usage: test_plots.py [SOURCE_DIR]

Every figure is drawn from synthetic rows / a synthetic run report, and inspected through matplotlib's
objects as it is saved (Figure.savefig is wrapped):
- axis labels say what a column is and its unit, never the raw column name (`energy_pj`, `time_s`);
- a 3-objective Pareto front is three 2-D panels (no 3-D axes); 2 objectives, one panel;
- series keep distinct (colour, marker) pairs past ten series (12 and 25), and distinct colours up to 20;
- `kind = "bar"` with `logy` draws no bars (a bar on a log axis starts at an arbitrary floor);
- legends sit outside the axes (their box does not meet the plotting area);
- the roofline's named layers do not overlap one another, and its y axis has at least 4 labelled ticks.
Exit 77 (skipped) without matplotlib.
"""
import os
import sys
import tempfile

root = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "scripts"))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.figure
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
except ImportError:
    print("SKIP: matplotlib is missing (python3-matplotlib)")
    sys.exit(77)

from dse_lib import pareto, plotstyle, report  # noqa: E402

FAILS = []
SAVED = []
_orig_savefig = matplotlib.figure.Figure.savefig


def _record(self, *a, **kw):
    if not any(f is self for f in SAVED):
        self.canvas.draw()
        SAVED.append(self)
    return _orig_savefig(self, *a, **kw)


matplotlib.figure.Figure.savefig = _record
plt.close = lambda *a, **kw: None      # keep figures alive for inspection


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg + ("" if cond or not detail else ": " + str(detail)))
    if not cond:
        FAILS.append(msg)


def figure(fn, *a, **kw):
    SAVED.clear()
    fn(*a, **kw)
    return SAVED[-1]


RAW = {"energy_pj", "time_s", "area_mm2", "cycles", "energy_per_op_pj", "network", "array.cols"}


def labels_ok(fig, what):
    for ax in fig.axes:
        for lab in (ax.get_xlabel(), ax.get_ylabel()):
            first = lab.split("\n")[0]
            check(first and first not in RAW and "_pj" not in first and "time_s" not in first,
                  "%s: axis label %r names the quantity, not the column" % (what, first))


def legend_outside(fig, what):
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        lb, ab = leg.get_window_extent(r), ax.get_window_extent(r)
        check(not lb.overlaps(ab), "%s: the legend does not cover the plotting area" % what)


def rows(n_groups, n_points=6):
    out = []
    for g in range(n_groups):
        for i in range(n_points):
            out.append({"key": "k%d_%d" % (g, i), "status": "ok", "network": "net%d" % g,
                        "time_s": 0.004 * (i + 1) * (1 + g / 10), "energy_pj": 5e9 / (i + 1) * (1 + g / 20),
                        "area_mm2": 0.5 + 0.3 * ((i * 7 + g) % 5), "array.cols": 8 * (i + 1),
                        "energy_per_op_pj": 0.1 * (i + 1), "variant": "v%d" % g})
    return out


def main():
    with tempfile.TemporaryDirectory() as d:
        # 3 objectives: three 2-D panels with labelled axes, legend outside
        rs = rows(3)
        obj3 = [("time_s", "min"), ("energy_pj", "min"), ("area_mm2", "min")]
        fig = figure(pareto.plot_front, os.path.join(d, "p3"), rs, pareto.fronts(rs, obj3, "network"), obj3, "t")
        check(len(fig.axes) == 3 and all(ax.name != "3d" for ax in fig.axes),
              "3 objectives: three 2-D panels", [ax.name for ax in fig.axes])
        labels_ok(fig, "pareto (3 objectives)")
        check("(ms)" in fig.axes[0].get_xlabel() and "(mJ)" in fig.axes[0].get_ylabel(),
              "time in ms, energy in mJ for data of milliseconds and millijoules",
              (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()))
        legend_outside(fig, "pareto (3 objectives)")
        obj2 = obj3[:2]
        fig = figure(pareto.plot_front, os.path.join(d, "p2"), rs, pareto.fronts(rs, obj2, "network"), obj2, "t")
        check(len(fig.axes) == 1, "2 objectives: one panel")
        labels_ok(fig, "pareto (2 objectives)")

        # distinct styles past ten series
        for n in (12, 25):
            st = plotstyle.styles(n, plt)
            pairs = {(tuple(round(c, 4) for c in col), m) for col, m in st}
            check(len(pairs) == n, "%d series: %d distinct (colour, marker) pairs" % (n, len(pairs)))
        st = plotstyle.styles(20, plt)
        check(len({tuple(round(c, 4) for c in col) for col, _ in st}) == 20, "20 series: 20 distinct colours")
        rs = rows(12)
        fig = figure(pareto.plot_series, os.path.join(d, "s12"), rs,
                     {"x": "array.cols", "y": "energy_pj", "series": "variant"})
        lines = fig.axes[0].get_lines()
        styles = {(tuple(round(c, 4) for c in matplotlib.colors.to_rgba(l.get_color())), l.get_marker())
                  for l in lines}
        check(len(lines) == 12 and len(styles) == 12, "a plot of 12 series draws 12 distinct styles",
              "%d lines, %d styles" % (len(lines), len(styles)))
        labels_ok(fig, "[[plot]] line")
        legend_outside(fig, "[[plot]] line")

        # no bars on a log axis
        fig = figure(pareto.plot_series, os.path.join(d, "bar"), rows(2),
                     {"x": "network", "y": "energy_per_op_pj", "series": "variant", "kind": "bar", "logy": True})
        ax = fig.axes[0]
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        check(ax.get_yscale() == "log" and not bars, "bar + logy: markers on the log axis, no bars",
              "%d bars" % len(bars))
        fig = figure(pareto.plot_series, os.path.join(d, "bar2"), rows(2),
                     {"x": "network", "y": "energy_per_op_pj", "series": "variant", "kind": "bar"})
        check(any(isinstance(p, Rectangle) for p in fig.axes[0].patches), "bar on a linear axis: bars")

        # the report: roofline labels apart, y ticks readable, legends outside
        rep = synthetic_report()
        SAVED.clear()
        report.make_figures(rep, d)
        figs = list(SAVED)
        check(len(figs) == 4, "the report draws cycles, energy, utilization, roofline", len(figs))
        roof = figs[-1]
        ax = roof.axes[0]
        r = roof.canvas.get_renderer()
        texts = [t for t in ax.texts if t.get_visible()]
        boxes = [t.get_window_extent(r) for t in texts]
        overlaps = [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes))
                    for j in range(i) if boxes[i].overlaps(boxes[j])]
        check(len(texts) >= 4 and not overlaps, "roofline: %d layer names, none overlapping" % len(texts), overlaps)
        ylabels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()
                   and ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
        check(len(ylabels) >= 4, "roofline: %d labelled y ticks" % len(ylabels), ylabels)
        check(all("e+" not in t and "^" not in t for t in ylabels), "roofline: y ticks read as numbers", ylabels)
        for f, what in zip(figs, ("cycles", "energy", "utilization", "roofline")):
            legend_outside(f, "report " + what)
            for a in f.axes:
                check(a.get_ylabel() and "(" in a.get_ylabel() or what == "cycles",
                      "report %s: y label has a unit (%r)" % (what, a.get_ylabel()))
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


def synthetic_report():
    layers = []
    for i in range(14):
        macs = 1e6 * (1 + (i * 37) % 11)
        layers.append({"name": "layer%d.block.conv%d" % (i // 2, i % 2), "type": "conv", "macs": macs,
                       "cycles": 4000 + 900 * ((i * 5) % 7), "array_busy": 3000 + 800 * ((i * 5) % 7),
                       "dram_read_bytes": 2e4 * (1 + i % 3), "dram_write_bytes": 5e3, "utilization": 0.5,
                       "stall_cycles": {"dram": 500, "dependency": 0, "buffer": 300, "ppu": 100},
                       "energy_pj": 1e6, "energy_breakdown_pj": {"mac": 4e5, "sram": 3e5, "dram": 3e5},
                       "mapping": {"slices": 1 + i % 2}})
    return {"config": {"rows": 16, "cols": 16, "freq_mhz": 1000, "dram_bytes_per_cycle": 12.8},
            "total": {"cycles": sum(L["cycles"] for L in layers), "energy_pj": 1.4e7, "utilization": 0.5},
            "layers": layers}


if __name__ == "__main__":
    sys.exit(main())
