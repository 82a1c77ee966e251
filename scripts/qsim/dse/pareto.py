"""Pareto fronts over 2 or 3 objectives, their table and figure; generic line/bar plots of a sweep."""
from __future__ import annotations

import math
import os

from . import DseError, _meta, need_matplotlib, plotstyle
from .run import write_csv, columns_of


def _val(row, col):
    v = row.get(col)
    if v is None or v == "":
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def dominates(a, b) -> bool:
    """a, b: objective vectors already signed so that smaller is better."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(rows: list, objectives: list) -> list:
    """Indices of the rows not dominated by any other row. objectives: [(column, 'min'|'max'), ...].
    Rows lacking an objective value (failed points) take no part. Rows with equal vectors are all kept."""
    vecs = []
    for i, r in enumerate(rows):
        v = [_val(r, c) for c, _ in objectives]
        if any(x is None for x in v):
            continue
        vecs.append((i, tuple(x if s == "min" else -x for x, (_, s) in zip(v, objectives))))
    vecs.sort(key=lambda t: t[1])
    front = []
    for i, v in vecs:   # sorted lexicographically: a dominator always comes before what it dominates
        if not any(dominates(w, v) for _, w in front):
            front.append((i, v))
    return sorted(i for i, _ in front)


def group_rows(rows: list, per: str) -> dict:
    groups = {}
    for r in rows:
        g = "all" if per in (None, "", "all", "none") else str(r.get(per))
        groups.setdefault(g, []).append(r)
    return groups


def fronts(rows: list, objectives: list, per: str = "network") -> list:
    """[(group, row), ...] of the front rows, per group, sorted by the first objective."""
    out = []
    for g, rs in group_rows([r for r in rows if r.get("status", "ok") == "ok"], per).items():
        idx = pareto_front(rs, objectives)
        front = [rs[i] for i in idx]
        front.sort(key=lambda r: _val(r, objectives[0][0]))
        out += [(g, r) for r in front]
    return out


def write_front_csv(path, front, objectives, per):
    rows = [dict(r, pareto_group=g) for g, r in front]
    cols = columns_of(rows) if rows else []
    obj = [c for c, _ in objectives]
    lead = ["pareto_group", "key", "network"] + obj
    cols = lead + [c for c in cols if c not in lead]
    write_csv(path, rows, cols)


def _sense(sense):
    return "lower is better" if sense == "min" else "higher is better"


def _use_log(vals):
    vals = [v for v in vals if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 30


def plot_front(path_stem, rows, front, objectives, title, per="network"):
    """Every ok point (a colour and marker per group) with the front highlighted; writes .png and .svg.
    Three objectives are drawn as the three pairwise 2-D projections side by side (a 3-D scatter cannot
    be read off), the front being the 3-objective one, so a front point may look dominated in one pair."""
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    groups = sorted(group_rows(ok, per).items())
    fkeys = {(g, r["key"]) for g, r in front}
    cols = [c for c, _ in objectives]
    pairs = [(0, 1)] if len(cols) == 2 else [(0, 1), (0, 2), (1, 2)]
    axes_of = {c: plotstyle.axis(c, [_val(r, c) for r in ok]) for c in cols}
    logs = {c: _use_log([_val(r, c) for r in ok]) for c in cols}
    sty = plotstyle.styles(len(groups), plt)
    fig, axs = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs) + 2.2, 4.6), squeeze=False)
    for ax, (i, j) in zip(axs[0], pairs):
        (xl, fx), (yl, fy) = axes_of[cols[i]], axes_of[cols[j]]
        for gi, (g, rs) in enumerate(groups):
            color, marker = sty[gi]
            keep = [(r, _val(r, cols[i]), _val(r, cols[j])) for r in rs]
            keep = [(r, x * fx, y * fy) for r, x, y in keep if x is not None and y is not None]
            other = [(x, y) for r, x, y in keep if (g, r["key"]) not in fkeys]
            onf = sorted((x, y) for r, x, y in keep if (g, r["key"]) in fkeys)
            lab = g if len(groups) > 1 else "design points"
            if other:
                ax.scatter(*zip(*other), s=16, color=color, marker=marker, alpha=0.35, linewidths=0,
                           label=lab + " (dominated)")
            if onf:
                ax.scatter(*zip(*onf), s=46, color=color, marker=marker, edgecolors="black", linewidths=0.8,
                           label=lab + " (Pareto front)", zorder=3)
                if len(pairs) == 1:   # a 2-objective front is a staircase; a projection of a 3-D one is not
                    xs, ys = zip(*onf)
                    ax.plot(xs, ys, color=color, lw=1.2, zorder=2, drawstyle="steps-post"
                            if objectives[0][1] == objectives[1][1] else "default")
        ax.set_xlabel("%s\n%s" % (xl, _sense(objectives[i][1])), fontsize=9)
        ax.set_ylabel("%s\n%s" % (yl, _sense(objectives[j][1])), fontsize=9)
        if logs[cols[i]]:
            ax.set_xscale("log")
        if logs[cols[j]]:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    plotstyle.legend_outside(axs[0][-1])
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig("%s.%s" % (path_stem, ext), dpi=130, metadata=_meta(ext), bbox_inches="tight")
    plt.close(fig)


def _matches(row, flt):
    for k, v in (flt or {}).items():
        rv = row.get(k)
        if isinstance(v, list):
            if rv not in v and str(rv) not in [str(x) for x in v]:
                return False
        elif rv != v and str(rv) != str(v):
            return False
    return True


def plot_series(path_stem, rows, plot):
    """[[plot]] entry: x, y, optional series (a column), filter {col = value}, kind line|bar|scatter,
    logx, logy, title, xlabel, ylabel. Axes say what the column is and its unit (plotstyle.axis); bars
    on a log y axis would start at an arbitrary floor, so `kind = "bar"` with `logy` draws markers."""
    plt = need_matplotlib()
    x, y, series = plot["x"], plot["y"], plot.get("series")
    kind = plot.get("kind", "line")
    if kind == "bar" and plot.get("logy"):
        kind = "dots"
    rs = [r for r in rows if r.get("status", "ok") == "ok" and _matches(r, plot.get("filter"))]
    groups = {}
    sers = [series] if isinstance(series, str) else list(series or [])
    for r in rs:
        g = ", ".join("%s=%s" % (c.split(".")[-1], r.get(c)) for c in sers) if sers else y
        groups.setdefault(g, []).append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    numeric_x = all(_val(r, x) is not None for r in rs)
    xl, fx = plotstyle.axis(x, [_val(r, x) for r in rs]) if numeric_x else (plotstyle.axis(x)[0], 1.0)
    yl, fy = plotstyle.axis(y, [_val(r, y) for r in rs])
    xcats = []
    if not numeric_x:
        for r in rs:
            if str(r.get(x)) not in xcats:
                xcats.append(str(r.get(x)))
    nser = max(len(groups), 1)
    sty = plotstyle.styles(nser, plt)
    for si, (g, grs) in enumerate(groups.items()):
        pts = []
        for r in grs:
            xv = _val(r, x) * fx if numeric_x else xcats.index(str(r.get(x)))
            yv = _val(r, y)
            if yv is not None:
                pts.append((xv, yv * fy))
        pts.sort()
        if not pts:
            continue
        xs, ys = zip(*pts)
        lab = g if series else None
        color, marker = sty[si]
        if kind == "bar":
            w = 0.8 / nser
            ax.bar([xx - 0.4 + w * (si + 0.5) for xx in (xs if not numeric_x else range(len(xs)))], ys,
                   width=w, label=lab, color=color)
        elif kind == "dots":   # categories side by side, as the bars would be
            w = 0.6 / nser
            ax.scatter([xx - 0.3 + w * (si + 0.5) for xx in xs], ys, label=lab, s=26, color=color, marker=marker)
        elif kind == "scatter":
            ax.scatter(xs, ys, label=lab, s=22, color=color, marker=marker)
        else:
            ax.plot(xs, ys, marker=marker, ms=4, label=lab, color=color)
    if not numeric_x:
        ax.set_xticks(range(len(xcats)))
        ax.set_xticklabels(xcats, rotation=30 if len(xcats) > 6 else 0, ha="right" if len(xcats) > 6 else "center")
    ax.set_xlabel(plot.get("xlabel", xl))
    ax.set_ylabel(plot.get("ylabel", yl))
    if plot.get("logx"):
        ax.set_xscale("log", base=plot.get("logx") if isinstance(plot.get("logx"), int) and plot.get("logx") > 1 else 10)
    if plot.get("logy"):
        ax.set_yscale("log")
        plotstyle.log_ticks(ax.yaxis)
    ax.grid(True, which="major", alpha=0.3)
    if series:
        plotstyle.legend_outside(ax)
    ax.set_title(plot.get("title", "%s vs %s" % (yl, xl)), fontsize=11)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig("%s.%s" % (path_stem, ext), dpi=130, metadata=_meta(ext), bbox_inches="tight")
    plt.close(fig)


def analyze(spec, results, keys, outdir, log):
    """Pareto fronts and [[plot]]s of the spec's points; returns the files written."""
    rows = results.flat_rows(keys)
    written = []
    try:
        need_matplotlib()
        can_plot = True
    except DseError as e:
        print("dse: no figures: %s" % e, file=log)
        can_plot = False
    for p in spec.paretos:
        front = fronts(rows, p["objectives"], p["per"])
        csvp = os.path.join(outdir, "%s.csv" % p["name"])
        write_front_csv(csvp, front, p["objectives"], p["per"])
        written.append(csvp)
        if can_plot and any(r.get("status") == "ok" for r in rows):
            stem = os.path.join(outdir, p["name"])
            title = p.get("title") or "%s: Pareto front of %s" % (
                spec.name, " vs ".join(plotstyle.name(c) for c, _ in p["objectives"]))
            plot_front(stem, rows, front, p["objectives"], title, p["per"])
            written += [stem + ".png", stem + ".svg"]
        print("dse: %s: %d point(s) on the front (%s)" % (p["name"], len(front),
              ", ".join("%s %s" % (s, c) for c, s in p["objectives"])), file=log)
    for i, pl in enumerate(spec.plots if can_plot else []):
        stem = os.path.join(outdir, pl.get("name", "plot%d" % (i + 1)))
        plot_series(stem, rows, pl)
        written += [stem + ".png", stem + ".svg"]
    return written
