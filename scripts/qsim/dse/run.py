"""Running one point (qsim run ... --json), its table row, and the results table on disk."""
from __future__ import annotations

import atexit
import base64
import csv
import datetime
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

from . import DseError

# Columns taken from a qsim report (docs/report.md): name -> path in the JSON.
REPORT_COLUMNS = [
    ("cycles", ("total", "cycles")),
    ("time_s", ("total", "time_s")),
    ("inferences_per_s", ("total", "inferences_per_s")),
    ("macs", ("total", "macs")),
    ("macs_executed", ("total", "macs_executed")),
    ("mac_slice_ops", ("total", "mac_slice_ops")),
    ("mac_slice_gated", ("total", "mac_slice_gated")),
    ("mac_slice_skipped", ("total", "mac_slice_skipped")),
    ("dram_bytes", ("total", "dram_bytes")),
    ("stall_dram", ("total", "stall_cycles", "dram")),
    ("stall_dependency", ("total", "stall_cycles", "dependency")),
    ("stall_buffer", ("total", "stall_cycles", "buffer")),
    ("stall_ppu", ("total", "stall_cycles", "ppu")),
    ("energy_pj", ("total", "energy_pj")),
    ("energy_mac_pj", ("total", "energy_breakdown_pj", "mac")),
    ("energy_registers_pj", ("total", "energy_breakdown_pj", "registers")),
    ("energy_sram_pj", ("total", "energy_breakdown_pj", "sram")),
    ("energy_dram_pj", ("total", "energy_breakdown_pj", "dram")),
    ("energy_ppu_pj", ("total", "energy_breakdown_pj", "ppu")),
    ("energy_leakage_pj", ("total", "energy_breakdown_pj", "leakage")),
    ("area_mm2", ("total", "area_mm2")),
    ("area_array_mm2", ("total", "area_breakdown_mm2", "array")),
    ("area_sram_mm2", None),   # derived: ifmap + weight + accum
    ("pe_area_um2", ("total", "pe_area_um2")),
    ("effective_tops", ("total", "effective_tops")),
    ("executed_tops", ("total", "executed_tops")),
    ("effective_tops_per_w", ("total", "effective_tops_per_w")),
    ("executed_tops_per_w", ("total", "executed_tops_per_w")),
    ("effective_tops_per_mm2", ("total", "effective_tops_per_mm2")),
    ("utilization", ("total", "utilization")),
    ("accuracy", ("accuracy",)),
    ("labelled", ("labelled",)),
]
DERIVED_COLUMNS = ["energy_per_op_pj", "mac_energy_per_op_pj", "edp_pj_s", "dram_stall_fraction",
                   "buffer_stall_fraction",
                   "compute_layers", "mem_bound_layers", "acc_overflows"]
METRIC_COLUMNS = [c for c, _ in REPORT_COLUMNS] + DERIVED_COLUMNS
HEAD_COLUMNS = ["key", "status", "network", "net_wbits", "net_abits"]
TAIL_COLUMNS = ["qsim_version", "source_revision", "net_path", "arch", "overrides", "host", "wall_s", "finished", "error"]


def _get(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def layer_bound(layer: dict, cfg: dict) -> str | None:
    """'memory' when the layer's arithmetic intensity (2*MACs per DRAM byte, read + written) is below the
    ridge of its own roofline (peak = rows*cols*2 ops/cycle / weight slices, roof = DRAM bytes/cycle);
    'compute' otherwise; None for layers without MACs."""
    macs = layer.get("macs") or 0
    if macs <= 0:
        return None
    nbytes = (layer.get("dram_read_bytes") or 0) + (layer.get("dram_write_bytes") or 0)
    if nbytes <= 0:
        return "compute"
    slices = (layer.get("mapping") or {}).get("slices") or 1
    peak = cfg["rows"] * cfg["cols"] * 2.0 / slices
    ridge = peak / cfg["dram_bytes_per_cycle"]
    return "memory" if 2.0 * macs / nbytes < ridge else "compute"


def row_from_report(point: dict, rep: dict) -> dict:
    row = base_row(point)
    row["status"] = "ok"
    for col, path in REPORT_COLUMNS:
        if path:
            row[col] = _get(rep, path)
    ab = _get(rep, ("total", "area_breakdown_mm2")) or {}
    row["area_sram_mm2"] = sum(ab.get(k, 0) for k in ("sram_ifmap", "sram_weight", "sram_accum")) or None
    macs = row.get("macs") or 0
    if macs:
        row["energy_per_op_pj"] = row["energy_pj"] / (2.0 * macs)
        if row.get("energy_mac_pj") is not None:
            row["mac_energy_per_op_pj"] = row["energy_mac_pj"] / (2.0 * macs)
    if row.get("energy_pj") is not None and row.get("time_s") is not None:
        row["edp_pj_s"] = row["energy_pj"] * row["time_s"]
    if row.get("cycles"):
        row["dram_stall_fraction"] = (row.get("stall_dram") or 0) / row["cycles"]
        # buffer stalls sit inside the array's busy time (docs/timing.md): a bigger array with the same
        # bank widths can be slower, and only this column says why
        row["buffer_stall_fraction"] = (row.get("stall_buffer") or 0) / row["cycles"]
    cfg = rep.get("config", {})
    layers = rep.get("layers", [])
    brief = []
    nbound = ncomp = novf = 0
    for L in layers:
        b = layer_bound(L, cfg) if cfg.get("rows") else None
        if b:
            ncomp += 1
            nbound += b == "memory"
        novf += L.get("acc_overflows") or 0
        brief.append({"name": L.get("name"), "type": L.get("type"), "cycles": L.get("cycles"),
                      "macs": L.get("macs"), "energy_pj": L.get("energy_pj"),
                      "utilization": L.get("utilization"),
                      "stall_dram": _get(L, ("stall_cycles", "dram")),
                      "dram_bytes": (L.get("dram_read_bytes") or 0) + (L.get("dram_write_bytes") or 0),
                      "slices": _get(L, ("mapping", "slices")), "bound": b})
    row["compute_layers"] = ncomp
    row["mem_bound_layers"] = nbound
    row["acc_overflows"] = novf
    row["qsim_version"] = rep.get("qsim_version", point["qsim_version"])
    row["layers"] = brief
    return row


def base_row(point: dict) -> dict:
    row = {"key": point["key"], "status": None, "network": point["network"], "params": point["params"],
           "qsim_version": point["qsim_version"], "source_revision": point.get("source_revision"),
           "net_path": point["net_path"], "arch": point["arch"],
           "overrides": " ".join(point["overrides"]), "host": socket.gethostname(), "error": None}
    for k, v in (point.get("net_bits") or {}).items():   # generated networks: their widths
        row["net_" + k] = v
    return row


def qsim_command(point: dict, json_path: str) -> list:
    cmd = [point["qsim"], "run", "--arch", point["arch_abs"], point["net_abs"], "--json", json_path, "-q",
           "--engine", point.get("engine", "fast")]
    for o in point["overrides"]:
        cmd += ["--set", o]
    if point.get("input"):
        cmd += ["--input", point["input"]]
    if point.get("labels"):
        cmd += ["--labels", point["labels"]]
    return cmd + list(point.get("qsim_args", []))


# -- in-process runs through libqsim (scripts/qsim) -------------------------------------------------
# A point runs through the Python bindings instead of a `qsim run` process when the qsim asked for is the
# command built (or installed) with the library the bindings load, and the point needs nothing only the
# command does (extra qsim arguments). The row is the same either way (tests/test_dse_bindings.py); what
# differs: no process start, the network is read and validated once per process, and a running point
# cannot be killed (its timeout is not enforced; a stopped sweep finishes the points already running).
# QSIM_DSE_RUNNER=subprocess (or bindings) forces one path.
_bind_lock = threading.Lock()
_bind_nets = {}
_bind_ok = {}


def _bindings():
    try:
        import qsim
    except ImportError:
        return None
    return qsim if qsim.available() else None


def bindings_for(qsim_path: str):
    """The qsim package when `qsim_path` is the command built with the library it loads, else None."""
    mode = os.environ.get("QSIM_DSE_RUNNER", "auto")
    if mode == "subprocess":
        return None
    with _bind_lock:
        if qsim_path in _bind_ok:
            return _bind_ok[qsim_path]
        q = _bindings()
        ok = None
        if q is not None:
            lib = os.path.realpath(q.library_path())
            libdir = os.path.dirname(lib)
            # build tree: build/api/libqsim.so.N <-> build/cli/qsim; installed: P/lib*/libqsim.so.N <-> P/bin/qsim
            mates = [os.path.join(os.path.dirname(libdir), "cli", "qsim"),
                     os.path.join(os.path.dirname(libdir), "bin", "qsim"),
                     os.path.join(os.path.dirname(os.path.dirname(libdir)), "bin", "qsim")]
            if mode == "bindings" or os.path.realpath(qsim_path) in [os.path.realpath(m) for m in mates]:
                ok = q
        elif mode == "bindings":
            raise DseError("QSIM_DSE_RUNNER=bindings but libqsim cannot be loaded")
        _bind_ok[qsim_path] = ok
        return ok


def _network(q, path: str):
    with _bind_lock:
        net = _bind_nets.get(path)
        if net is None:
            net = _bind_nets[path] = q.load(path)
        return net


_workers = threading.local()
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bindings_worker.py")


def run_point_worker(point: dict, keep_json: str | None = None, on_start=None, stopped=lambda: False):
    """One point through libqsim in this thread's worker process (qsim/dse/bindings_worker.py, started once
    per thread, which keeps the library and the networks loaded). A process per thread, not the library in
    this process: two simulations in one process's threads ran 15-30% slower than in two processes
    (docs/performance.md). Returns the row, or None when the sweep was stopped (the worker is killed)."""
    w = getattr(_workers, "proc", None)
    if w is None or w.poll() is not None:
        w = subprocess.Popen([sys.executable, _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, start_new_session=True, env=dict(os.environ, QSIM_DSE_RUNNER="bindings"))
        _workers.proc = w
    if on_start:
        on_start(w)
    try:
        w.stdin.write(json.dumps({"point": point, "keep_json": keep_json}) + "\n")
        w.stdin.flush()
        line = w.stdout.readline()
    except OSError:
        line = ""
    if stopped():
        return None
    if not line:
        _workers.proc = None
        row = base_row(point)
        row.update(status="failed", error="the bindings worker ended (status %s)" % w.wait())
        return row
    return json.loads(line)


def run_point_bindings(q, point: dict, keep_json: str | None = None) -> dict:
    """One point through libqsim: the report `qsim run --json` would write, then the same row."""
    import numpy as np
    t0 = time.time()
    row = None
    try:
        try:
            x = np.load(point["input"]) if point.get("input") else None
            y = np.load(point["labels"]) if point.get("labels") else None
            if x is not None and x.ndim == 3:
                x = x[None]
            if y is not None and (x is None or y.size != x.shape[0]):
                raise q.QsimError(7, "%s: %d labels for %d inputs" % (point["labels"], y.size,
                                                                        0 if x is None else x.shape[0]))
            net = _network(q, point["net_abs"])
            rep = net.run(point["arch_abs"], set=list(point["overrides"]), inputs=x, labels=y,
                          engine=point.get("engine", "fast"))
        except (q.QsimError, OSError, ValueError, TypeError) as e:
            row = base_row(point)
            # as the command prints it
            row.update(status="failed", error=("qsim: %s" % e)[-4000:])
            return row
        rep.pop("outputs", None)
        row = row_from_report(point, rep)
        if keep_json:
            os.makedirs(keep_json, exist_ok=True)
            with open(os.path.join(keep_json, point["key"] + ".json"), "w") as f:
                json.dump(rep, f, indent=2)
        return row
    finally:
        if row is not None:
            row["wall_s"] = round(time.time() - t0, 4)
            row["finished"] = datetime.datetime.now().isoformat(timespec="seconds")


def run_point(point: dict, workdir: str | None = None, keep_json: str | None = None, on_start=None,
              stopped=lambda: False) -> dict | None:
    """Runs one point; returns its row (status ok or failed), or None when the sweep was stopped while
    it ran (the point is then left for the next run)."""
    if not point.get("qsim_args"):
        q = bindings_for(point["qsim"])
        if q is not None:
            return run_point_worker(point, keep_json, on_start, stopped)
    tmpd = tempfile.mkdtemp(prefix="dse-", dir=workdir)
    jpath = os.path.join(tmpd, "run.json")
    t0 = time.time()
    row = None
    try:
        try:
            p = subprocess.Popen(qsim_command(point, jpath), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, errors="replace", start_new_session=True)
        except OSError as e:
            row = base_row(point)
            row.update(status="failed", error="cannot run qsim: %s" % e)
            return row
        if on_start:
            on_start(p)
        try:
            _, err = p.communicate(timeout=point.get("timeout_s") or None)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            if stopped():
                return None
            row = base_row(point)
            row.update(status="failed", error="timeout after %g s" % point["timeout_s"])
            return row
        if stopped():
            return None
        if p.returncode != 0:
            row = base_row(point)
            msg = (err or "").strip()
            if p.returncode < 0:
                msg = (msg + "\n" if msg else "") + "killed by signal %d" % -p.returncode
            row.update(status="failed", error=msg[-4000:] or "exit status %d" % p.returncode)
            return row
        try:
            with open(jpath) as f:
                rep = json.load(f)
        except (OSError, ValueError) as e:
            row = base_row(point)
            row.update(status="failed", error="unreadable report %s: %s" % (jpath, e))
            return row
        row = row_from_report(point, rep)
        if keep_json:
            os.makedirs(keep_json, exist_ok=True)
            os.replace(jpath, os.path.join(keep_json, point["key"] + ".json"))
        return row
    finally:
        if row is not None:
            row["wall_s"] = round(time.time() - t0, 4)
            row["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        for fn in os.listdir(tmpd) if os.path.isdir(tmpd) else []:
            try:
                os.unlink(os.path.join(tmpd, fn))
            except OSError:
                pass
        try:
            os.rmdir(tmpd)
        except OSError:
            pass


# -- points as command-line tokens (GNU parallel / Slurm job files) ----------------------------------
def encode_point(point: dict) -> str:
    raw = zlib.compress(json.dumps(point, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(raw).decode()


def decode_point(token: str) -> dict:
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(token.strip().encode())))


# -- the results table ---------------------------------------------------------------------------
def flat(row: dict) -> dict:
    """A row with its parameters as top-level columns (CSV, Pareto, plots)."""
    f = {k: v for k, v in row.items() if k not in ("params", "layers")}
    for k, v in (row.get("params") or {}).items():
        f[k] = v
    return f


class Results:
    """results.jsonl (the record: one JSON object per finished point, appended, last one per key wins)
    and results.csv (rewritten from it)."""

    def __init__(self, outdir: str, lock: bool = True):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.jsonl = os.path.join(outdir, "results.jsonl")
        self.csv = os.path.join(outdir, "results.csv")
        self._lockf = None
        if lock:
            lp = os.path.join(outdir, ".dse.lock")
            self._lockf = open(lp, "w")
            try:
                fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise DseError("another dse run is using %s" % outdir)
            atexit.register(self._unlock, lp)
        self.rows = {}
        self.order = []
        self._load()

    def _unlock(self, path):
        try:
            os.unlink(path)
        except OSError:
            pass
        self._lockf.close()

    def _load(self):
        if not os.path.exists(self.jsonl):
            return
        with open(self.jsonl, "rb") as f:
            data = f.read()
        for line in data.split(b"\n"):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue   # a line cut by a crash: that point is simply run again
            if isinstance(r, dict) and "key" in r:
                self._put(r)
        if data and not data.endswith(b"\n"):
            with open(self.jsonl, "ab") as f:
                f.write(b"\n")

    def _put(self, r):
        if r["key"] not in self.rows:
            self.order.append(r["key"])
        self.rows[r["key"]] = r

    def done(self, key: str, retry_failed: bool = False) -> bool:
        r = self.rows.get(key)
        return r is not None and (r.get("status") == "ok" or not retry_failed)

    def append(self, row: dict):
        line = json.dumps(row, separators=(",", ":"), default=str) + "\n"
        with open(self.jsonl, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._put(row)

    def prune(self, keys) -> int:
        """Rewrites results.jsonl with only the latest row of each of `keys` (drops other sweeps' rows)."""
        keep = [k for k in self.order if k in set(keys)]
        dropped = len(self.order) - len(keep)
        tmp = self.jsonl + ".tmp"
        with open(tmp, "w") as f:
            for k in keep:
                f.write(json.dumps(self.rows[k], separators=(",", ":"), default=str) + "\n")
        os.replace(tmp, self.jsonl)
        self.rows = {k: self.rows[k] for k in keep}
        self.order = keep
        return dropped

    def flat_rows(self, keys=None) -> list:
        ks = self.order if keys is None else [k for k in keys if k in self.rows]
        return [flat(self.rows[k]) for k in ks]

    def write_csv(self, path: str | None = None, order=None):
        """All rows; those of `order` (the current sweep's keys) first, in that order."""
        first = [k for k in (order or []) if k in self.rows]
        fs = set(first)
        write_csv(path or self.csv, self.flat_rows(first + [k for k in self.order if k not in fs]))


def columns_of(rows: list) -> list:
    params = []
    seen = set(HEAD_COLUMNS + METRIC_COLUMNS + TAIL_COLUMNS)
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                params.append(k)
    return HEAD_COLUMNS + params + METRIC_COLUMNS + TAIL_COLUMNS


def write_csv(path: str, rows: list, columns: list | None = None):
    cols = columns or columns_of(rows)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _fmt(r.get(c)) for c in cols])
    os.replace(tmp, path)


def _fmt(v):
    if isinstance(v, float):
        return "%.10g" % v
    if isinstance(v, str):
        return v.replace("\r", " ").replace("\n", " | ")
    return v


def install_stop_handlers(callback):
    """SIGTERM/SIGINT/SIGHUP call callback once (stop dispatching, kill running points); a second
    signal of the same kind falls back to the default action."""
    def h(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        callback(signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, h)
