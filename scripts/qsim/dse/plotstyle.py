"""What every DSE / report figure shares: axis labels with units, series styles that stay distinct
past ten series, legends that do not cover data."""
from __future__ import annotations

import math

# column -> (what it is, unit family); families scale to a readable unit from the data
COLUMNS = {
    "cycles": ("cycles per inference", "count"),
    "time_s": ("time per inference", "s"),
    "inferences_per_s": ("inferences per second", "rate"),
    "energy_pj": ("energy per inference", "pJ"),
    "energy_mac_pj": ("MAC energy per inference", "pJ"),
    "energy_sram_pj": ("SRAM energy per inference", "pJ"),
    "energy_dram_pj": ("DRAM energy per inference", "pJ"),
    "energy_leakage_pj": ("leakage energy per inference", "pJ"),
    "energy_per_op_pj": ("energy per dense op", "pJ"),
    "mac_energy_per_op_pj": ("MAC-array energy per dense op", "pJ"),
    "edp_pj_s": ("energy x delay (pJ s)", None),
    "area_mm2": ("area (mm²)", None),
    "area_sram_mm2": ("SRAM area (mm²)", None),
    "area_array_mm2": ("array area (mm²)", None),
    "pe_area_um2": ("PE area (µm²)", None),
    "dram_bytes": ("DRAM traffic per inference", "B"),
    "effective_tops": ("effective throughput (TOPS, dense ops)", None),
    "executed_tops": ("executed throughput (TOPS)", None),
    "effective_tops_per_w": ("effective efficiency (TOPS/W, dense ops)", None),
    "executed_tops_per_w": ("executed efficiency (TOPS/W)", None),
    "effective_tops_per_mm2": ("effective throughput per area (TOPS/mm²)", None),
    "utilization": ("PE utilization (fraction of rows x cols x cycles)", None),
    "accuracy": ("top-1 accuracy (fraction)", None),
    "dram_stall_fraction": ("cycles stalled on DRAM (fraction)", None),
    "buffer_stall_fraction": ("cycles stalled on buffer bandwidth (fraction)", None),
    "macs": ("dense MACs per inference", "count"),
    "macs_executed": ("executed MACs per inference", "count"),
    "array.rows": ("PE rows", None),
    "array.cols": ("PE columns", None),
    "array.skip_group": ("skip group (rows in lockstep)", None),
    "array.weight_path_bits": ("weight path (bits)", None),
    "array.acc_bits": ("accumulator (bits)", None),
    "dram.bytes_per_cycle": ("DRAM bandwidth (B/cycle)", None),
    "net_wbits": ("weight bits", None),
    "net_abits": ("activation bits", None),
}

_SCALES = {
    "s": [("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)],
    "pJ": [("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3), ("pJ", 1.0)],
    "B": [("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)],
    "count": [("billions", 1e9), ("millions", 1e6), ("thousands", 1e3), ("", 1.0)],
    "rate": [("", 1.0)],
}


def _suffix_label(col: str) -> str:
    """A column nobody listed: its name, with the unit its suffix says."""
    for suf, unit in (("_size_kib", "KiB"), ("_kib", "KiB"), ("_bytes", "B"), ("_mm2", "mm²"), ("_pj", "pJ"),
                      ("_s", "s"), ("_mhz", "MHz"), ("_bits", "bits"), ("_fraction", "fraction")):
        if col.endswith(suf):
            return "%s (%s)" % (col, unit)
    return col


def axis(col: str, values=()) -> tuple:
    """(label with unit, factor): plot value * factor against the label. The unit of a family (time,
    energy, bytes, counts) is the largest one in which the data's median is at least 1."""
    name, fam = COLUMNS.get(col, (None, None))
    if name is None:
        if col.startswith("buffer.") and col.endswith("size_kib"):
            return "%s buffer (KiB)" % col.split(".")[1], 1.0
        if col.startswith("buffer.") and col.endswith("bank_width_bytes"):
            return "%s bank width (B)" % col.split(".")[1], 1.0
        return _suffix_label(col), 1.0
    if fam is None:
        return name, 1.0
    vals = sorted(abs(float(v)) for v in values if v is not None and math.isfinite(float(v)))
    med = vals[len(vals) // 2] if vals else 0.0
    scales = _SCALES[fam]
    unit, f = scales[-1]
    for u, s in scales:
        if med >= s:
            unit, f = u, s
            break
    base = _SCALES[fam][-1][0] if fam != "count" else ""
    if fam == "count":
        return ("%s (%s)" % (name, unit) if unit else name), 1.0 / f
    if fam == "rate":
        return name, 1.0
    return "%s (%s)" % (name, unit or base), 1.0 / f


def name(col: str) -> str:
    """What a column is, without a unit (titles)."""
    return COLUMNS.get(col, (col, None))[0]


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]


def styles(n: int, plt) -> list:
    """n (colour, marker) pairs that stay tellable apart: tab10 up to 10 series, tab20 up to 20, beyond
    that colours spaced over a perceptual map with markers cycling, so two series never share both."""
    if n <= 10:
        cmap = plt.get_cmap("tab10")
        return [(cmap(i), MARKERS[0]) for i in range(n)]
    if n <= 20:
        cmap = plt.get_cmap("tab20")
        return [(cmap(i), MARKERS[(i // 10) % len(MARKERS)]) for i in range(n)]
    cmap = plt.get_cmap("turbo")
    return [(cmap(0.05 + 0.9 * i / (n - 1)), MARKERS[i % len(MARKERS)]) for i in range(n)]


def legend_outside(ax, **kw):
    """The legend right of the axes, where it cannot cover a point (save with bbox_inches='tight')."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=kw.pop("fontsize", 8), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, frameon=False, **kw)


def log_ticks(axis):
    """A log axis labelled 0.2, 0.5, 1, 2, 5 ... as plain numbers, not 6x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % float("%.3g" % v)))
    axis.set_minor_formatter(NullFormatter())


def si(v: float, unit: str = "") -> str:
    v = float(v)
    for p, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= f:
            return "%.3g %s%s" % (v / f, p, unit)
    return "%.3g %s" % (v, unit) if unit else "%.3g" % v
