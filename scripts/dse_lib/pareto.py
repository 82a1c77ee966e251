"""Pareto fronts over 2 or 3 objectives, their table and figure; generic line/bar plots of a sweep."""
from __future__ import annotations

import math
import os

from . import DseError, _meta, need_matplotlib
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


def _label(col, sense):
    return "%s (%s)" % (col, "lower is better" if sense == "min" else "higher is better")


def _use_log(vals):
    vals = [v for v in vals if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 30


def plot_front(path_stem, rows, front, objectives, title, per="network"):
    """Scatter of every ok point (colour per group) with the front highlighted; writes .png and .svg."""
    plt = need_matplotlib()
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    groups = group_rows(ok, per)
    fkeys = {(g, r["key"]) for g, r in front}
    cmap = plt.get_cmap("tab10")
    three = len(objectives) == 3
    fig = plt.figure(figsize=(7.5, 5.6) if not three else (8, 6.5))
    ax = fig.add_subplot(111, projection="3d") if three else fig.add_subplot(111)
    cols = [c for c, _ in objectives]
    for gi, (g, rs) in enumerate(sorted(groups.items())):
        color = cmap(gi % 10)
        pts = [[_val(r, c) for c in cols] for r in rs]
        keep = [(r, p) for r, p in zip(rs, pts) if all(x is not None for x in p)]
        if not keep:
            continue
        other = [p for r, p in keep if (g, r["key"]) not in fkeys]
        onf = [p for r, p in keep if (g, r["key"]) in fkeys]
        lab = g if len(groups) > 1 else "design points"
        kw = {"depthshade": False} if three else {}
        if other:
            ax.scatter(*zip(*other), s=14, color=color, alpha=0.35, label=lab + " (dominated)", linewidths=0, **kw)
        if onf:
            ax.scatter(*zip(*onf), s=46, color=color, edgecolors="black", linewidths=0.8,
                       label=lab + " (Pareto front)", zorder=3, **kw)
            if not three:
                onf.sort()
                xs, ys = zip(*onf)
                ax.plot(xs, ys, color=color, lw=1.2, drawstyle="steps-post"
                        if objectives[0][1] == objectives[1][1] else "default", zorder=2)
    logs = [_use_log([_val(r, c) for r in ok]) for c in cols]
    ax.set_xlabel(_label(*objectives[0]))
    ax.set_ylabel(_label(*objectives[1]))
    if three:
        ax.set_zlabel(_label(*objectives[2]))
    else:
        if logs[0]:
            ax.set_xscale("log")
        if logs[1]:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig("%s.%s" % (path_stem, ext), dpi=130, metadata=_meta(ext))
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
    logx, logy, title."""
    plt = need_matplotlib()
    x, y, series = plot["x"], plot["y"], plot.get("series")
    kind = plot.get("kind", "line")
    rs = [r for r in rows if r.get("status", "ok") == "ok" and _matches(r, plot.get("filter"))]
    groups = {}
    sers = [series] if isinstance(series, str) else list(series or [])
    for r in rs:
        g = ", ".join("%s=%s" % (c.split(".")[-1], r.get(c)) for c in sers) if sers else y
        groups.setdefault(g, []).append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    numeric_x = all(_val(r, x) is not None for r in rs)
    xcats = []
    if not numeric_x:
        for r in rs:
            if str(r.get(x)) not in xcats:
                xcats.append(str(r.get(x)))
    nser = max(len(groups), 1)
    for si, (g, grs) in enumerate(groups.items()):
        pts = []
        for r in grs:
            xv = _val(r, x) if numeric_x else xcats.index(str(r.get(x)))
            yv = _val(r, y)
            if yv is not None:
                pts.append((xv, yv))
        pts.sort()
        if not pts:
            continue
        xs, ys = zip(*pts)
        lab = g if series else None
        if kind == "bar":
            w = 0.8 / nser
            ax.bar([xx - 0.4 + w * (si + 0.5) for xx in (xs if not numeric_x else range(len(xs)))], ys,
                   width=w, label=lab)
        elif kind == "scatter":
            ax.scatter(xs, ys, label=lab, s=18)
        else:
            ax.plot(xs, ys, marker="o", ms=4, label=lab)
    if not numeric_x:
        ax.set_xticks(range(len(xcats)))
        ax.set_xticklabels(xcats, rotation=30 if len(xcats) > 6 else 0, ha="right" if len(xcats) > 6 else "center")
    ax.set_xlabel(plot.get("xlabel", x))
    ax.set_ylabel(plot.get("ylabel", y))
    if plot.get("logx"):
        ax.set_xscale("log", base=plot.get("logx") if isinstance(plot.get("logx"), int) and plot.get("logx") > 1 else 10)
    if plot.get("logy"):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    ax.set_title(plot.get("title", "%s vs %s" % (y, x)), fontsize=11)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig("%s.%s" % (path_stem, ext), dpi=130, metadata=_meta(ext))
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
            title = p.get("title") or "%s: Pareto front of %s" % (spec.name, " vs ".join(c for c, _ in p["objectives"]))
            plot_front(stem, rows, front, p["objectives"], title, p["per"])
            written += [stem + ".png", stem + ".svg"]
        print("dse: %s: %d point(s) on the front (%s)" % (p["name"], len(front),
              ", ".join("%s %s" % (s, c) for c, s in p["objectives"])), file=log)
    for i, pl in enumerate(spec.plots if can_plot else []):
        stem = os.path.join(outdir, pl.get("name", "plot%d" % (i + 1)))
        plot_series(stem, rows, pl)
        written += [stem + ".png", stem + ".svg"]
    return written
