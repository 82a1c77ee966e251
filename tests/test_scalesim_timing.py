#!/usr/bin/python3
"""SCALE-Sim timing convention: qsim's simulator (both engines) against an
independent re-statement of SCALE-Sim v2's counting rules.

The reference below builds SCALE-Sim's demand matrices literally (per fold:
pad to the array, flip, prefix rows, skew), walks every ofmap word through its
double-buffered write buffer one at a time, and reports what SCALE-Sim's
COMPUTE_REPORT would say. qsim counts the same things analytically inside the
array model (sim/array.c, sim/scalesim_mem.c): different algorithms, one
specification (docs/timing.md, "SCALE-Sim convention").

    test_scalesim_timing.py TOOL ARCH.cfg [--cases N] [--seed S] [--qsim QSIM]
TOOL = tests/scalesim_timing_tool. With --qsim, further cases run SCALE-Sim
topology rows through `qsim run --report-dir` (CALC mode): layers whose last
windows reach past the ifmap edge, so that the reference's ifmap demand marks
those positions as no request (SCALE-Sim's operand matrix: -1) and the SRAM
start/stop cycles come from rows with a real address.
Exit 0 when every case agrees.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from qsim_qbin import Net  # noqa: E402


def skew(mat):
    """Column c delayed by c rows (SCALE-Sim's systolic skew)."""
    rows, cols = mat.shape
    out = np.zeros((rows + cols - 1, cols), dtype=mat.dtype)
    for c in range(cols):
        out[c:c + rows, c] = mat[:, c]
    return out


def ofmap_demand(df, R, C, T, ku, cu):
    """Valid-word mask of one fold's ofmap demand rows."""
    if df == "os":
        block = np.zeros((R, C), dtype=np.int8)
        block[:ku, :cu] = 1
        block = np.flip(block, 0)                       # bottom row leaves first
        mat = np.concatenate([np.zeros((T - 1, C), np.int8), block])
    else:                                               # ws / is: every streamed vector
        block = np.zeros((T, C), dtype=np.int8)
        block[:, :cu] = 1
        mat = np.concatenate([np.zeros((2 * R - 1, C), np.int8), block])
    return skew(mat)


def read_demands(df, R, C, T, ku, cu, fr=0, fc=0, ifmap_valid=None):
    """Valid-request masks of one fold's ifmap and filter demand rows.
    ifmap_valid(p, j): whether ofmap pixel p's window element j is a real
    ifmap address (None: all are); fr, fc: the fold's row and column fold."""
    def stream(width, used, lead, tail, valid=None):
        # `lead` empty rows, T rows of `width` columns (the first `used` valid),
        # `tail` empty rows, skewed
        body = np.zeros((T, width), np.int8)
        body[:, :used] = 1
        if valid is not None:
            for x in range(T):
                for c in range(used):
                    body[x, c] = valid(x, c)
        return skew(np.concatenate([np.zeros((lead, width), np.int8), body, np.zeros((tail, width), np.int8)]))

    def stationary(width, rows_used, cols_used, valid=None):
        # the fold's R x width tile, used rows last (flipped), then idle rows
        block = np.zeros((R, width), np.int8)
        block[:rows_used, :cols_used] = 1
        if valid is not None:
            for r in range(rows_used):
                for c in range(cols_used):
                    block[r, c] = valid(r, c)
        return np.concatenate([np.flip(block, 0), np.zeros((R + C + T - 2, width), np.int8)])

    v = ifmap_valid
    if df == "os":   # ifmap stream: row x = window element, column c = pixel fr*R + c
        return (stream(R, ku, 0, C - 1, v and (lambda x, c: v(fr * R + c, x))),
                stream(C, cu, 0, R - 1))
    if df == "ws":   # ifmap stream: row x = pixel, column c = window element fr*R + c
        return (stream(R, ku, R, C - 1, v and (lambda x, c: v(x, fr * R + c))),
                stationary(C, ku, cu))
    # is: stationary ifmap, row r = window element fr*R + r, column c = pixel fc*C + c
    return (stationary(C, ku, cu, v and (lambda r, c: v(fc * C + c, fr * R + r))),
            stream(R, ku, R, C - 1))


class WriteBuffer:
    """SCALE-Sim's double-buffered ofmap SRAM in front of DRAM, word by word."""

    def __init__(self, words, line):
        self.total = words
        self.active = math.ceil(words * 0.5)
        self.drain = words - self.active
        self.bw = line
        self.free = words
        self.fill = 0
        self.lines = []           # valid words per line handed to DRAM
        self.next = 0
        self.drain_end = 0
        self.dram_words = 0
        self.dram_cycles = []

    def _force(self):
        if self.fill:
            self.lines.append(self.fill)
            self.fill = 0

    def _empty(self, start):
        n = min(math.ceil(self.drain / self.bw), len(self.lines) - self.next)
        assert n > 0
        last = self.lines[self.next + n - 1]
        words = n * self.bw - (self.bw - last)
        self.free += words
        self.dram_words += words
        self.dram_cycles += [start, start + n - 1]
        self.next += n
        return start + n - 1

    def row(self, n, cycle):
        cur = cycle
        for _ in range(n):
            self.free -= 1
            self.fill += 1
            if self.fill == self.bw:
                self.lines.append(self.bw)
                self.fill = 0
            if cur < self.drain_end:      # a drain in flight: wait only when full
                if self.free <= 0:
                    cur = self.drain_end
            elif self.free < self.active:   # start a drain; the array goes on
                self._force()
                self.drain_end = self._empty(cur)
        return cur

    def finish(self, cycle):
        self._force()
        while self.next < len(self.lines):
            cycle = self._empty(cycle) + 1


def reference(df, R, C, M, N, K, ofmap_kib, user_bw, ifmap_valid=None):
    """What SCALE-Sim v2 reports for one layer (GEMM M x K x N); ifmap_valid
    as in read_demands."""
    Sr, Sc, T = {"os": (M, N, K), "ws": (K, N, M), "is": (K, M, N)}[df]
    wb = WriteBuffer(ofmap_kib * 1024, user_bw if user_bw else C)
    rows = stall = 0
    prev_rows, prev_blocks = None, (None, None)
    folds = 0
    sram = {}
    map_eff = comp_util = 0.0
    for fc in range(math.ceil(Sc / C)):
        for fr in range(math.ceil(Sr / R)):
            ku, cu = min(R, Sr - fr * R), min(C, Sc - fc * C)
            folds += 1
            if user_bw and prev_rows is not None:
                # qsim's USER-mode read model (docs/timing.md): tiles not shared
                # with the previous fold are fetched during it
                iw, fw = {"os": (T * ku, T * cu), "ws": (T * ku, ku * cu), "is": (ku * cu, T * ku)}[df]
                blocks = {"os": (fr, fc), "ws": (fr, (fr, fc)), "is": ((fr, fc), fr)}[df]
                need = max(math.ceil(iw / user_bw) if blocks[0] != prev_blocks[0] else 0,
                           math.ceil(fw / user_bw) if blocks[1] != prev_blocks[1] else 0)
                stall += max(0, need - prev_rows)
            prev_blocks = {"os": (fr, fc), "ws": (fr, (fr, fc)), "is": ((fr, fc), fr)}[df]
            counts = ofmap_demand(df, R, C, T, ku, cu).sum(axis=1)
            imask, fmask = read_demands(df, R, C, T, ku, cu, fr, fc, ifmap_valid)
            # Mapping Efficiency and Compute Util %: per fold, from the fold's demand matrix
            # before the skew (OS: its ofmap matrix; WS/IS: the stationary operand's),
            # cycles = rows + cols - 1; averaged over folds in the report
            if df == "os":
                unskewed = (T - 1 + R, C)
            else:
                unskewed = (R + (R + C + T - 2), C)
            fold_cycles = unskewed[0] + unskewed[1] - 1
            map_eff += ku * cu / (R * C)
            comp_util += ku * cu * T / (R * C * fold_cycles)
            assert len(imask) == len(fmask) == len(counts)
            ivalid, fvalid = imask.any(axis=1), fmask.any(axis=1)
            for i, n in enumerate(counts):
                cycle = rows + i + stall
                # reads are served one cycle after the request (hit latency)
                if ivalid[i]:
                    sram.setdefault("ifmap_first", cycle + 1)
                    sram["ifmap_last"] = cycle + 1
                if fvalid[i]:
                    sram.setdefault("filter_first", cycle + 1)
                    sram["filter_last"] = cycle + 1
                done = wb.row(int(n), cycle)
                if n:
                    sram.setdefault("ofmap_first", done)
                    sram["ofmap_last"] = done
                stall += done - cycle
            rows += len(counts)
            prev_rows = len(counts)
    total = rows - 1 + stall
    wb.finish(total)
    first = min(wb.dram_cycles) if wb.dram_cycles else 0
    # SCALE-Sim's stop cycle is the last line of its drain trace (the final
    # flush starts at Total Cycles, even while an earlier drain runs past it)
    last = wb.dram_cycles[-1] if wb.dram_cycles else 0
    return dict({"rows": rows, "folds": folds, "total": total, "stall": stall,
                 "ofmap_dram": wb.dram_words, "first": first, "last": last,
                 "map_eff": map_eff, "comp_util": comp_util}, **sram)


def make_net(path, rng, c, h, w, r, s, n, stride):
    net = Net("ss")
    i = net.input("input", c, h, w, bits=8, signed=False, zp=0, scale=1.0)
    wt = rng.integers(-127, 128, size=(n, c, r, s))
    net.conv("conv", i, wt, stride=stride, pad=0, bits=8, signed=False, mult=1 << 30, shift=20)
    net.save(path)
    e, f = (h - r) // stride + 1, (w - s) // stride + 1
    return e * f, n, r * s * c


def scalesim_ifmap_valid(h, w, c, r, s, stride, ew):
    """SCALE-Sim's operand matrix rule, restated: pixel p = (orow, ocol) of an
    ofmap ew wide, window element j = (crow, ccol, channel) in that order;
    a real address iff the element lies inside the h x w ifmap."""
    def valid(p, j):
        orow, ocol = divmod(p, ew)
        crow, rest = divmod(j, s * c)
        ccol = rest // c
        return int(orow * stride + crow < h and ocol * stride + ccol < w)
    return valid


def padded_cases(qsim, rng, n_cases):
    """Topology rows through `qsim run` against the reference; returns
    (cases that differ, cases with positions past the ifmap edge)."""
    bad = padded = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(n_cases):
            df = ["os", "ws", "is"][case % 3]
            R, C = int(rng.choice([2, 3, 4, 5, 8])), int(rng.choice([2, 3, 4, 7, 8]))
            c = int(rng.integers(1, 4))
            r = int(rng.integers(1, 4))
            stride = int(rng.integers(2, 5))        # strides that leave a remainder
            h = int(rng.integers(r, 16))
            w = int(rng.integers(r, 16))
            n = int(rng.integers(1, 20))
            kib = int(rng.choice([1, 2, 64]))
            eh, ew = -(-(h - r + stride) // stride), -(-(w - r + stride) // stride)
            padded += (eh - 1) * stride + r > h or (ew - 1) * stride + r > w
            cfg = os.path.join(tmp, "p%d.cfg" % case)
            with open(cfg, "w") as f:
                f.write("[general]\nrun_name = p%d\n[architecture_presets]\nArrayHeight: %d\nArrayWidth: %d\n"
                        "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: %d\nIfmapOffset: 0\n"
                        "FilterOffset: 10000000\nOfmapOffset: 20000000\nDataflow: %s\n"
                        "[run_presets]\nInterfaceBandwidth: CALC\n" % (case, R, C, kib, df))
            topo = os.path.join(tmp, "p%d.csv" % case)
            with open(topo, "w") as f:
                f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                        "Num Filter, Strides,\nL, %d, %d, %d, %d, %d, %d, %d,\n" % (h, w, r, r, c, n, stride))
            out = os.path.join(tmp, "r%d" % case)
            p = subprocess.run([qsim, "run", "--arch", cfg, topo, "-q", "--report-dir", out],
                               capture_output=True, text=True)
            desc = "padded case %d: %s %dx%d, %dx%dx%d, %dx%d stride %d, %d filters, ofmap %d KiB" % (
                case, df, R, C, h, w, c, r, r, stride, n, kib)
            if p.returncode:
                print("%s: qsim failed: %s" % (desc, p.stderr.strip()))
                bad += 1
                continue
            want = reference(df, R, C, eh * ew, n, r * r * c, kib, 0,
                             scalesim_ifmap_valid(h, w, c, r, r, stride, ew))
            comp = open(os.path.join(out, "COMPUTE_REPORT.csv")).read().split("\n")[1].split(",")
            det = open(os.path.join(out, "DETAILED_ACCESS_REPORT.csv")).read().split("\n")[1].split(",")
            got = {"total": int(comp[1]), "stall": int(comp[2]),
                   "ifmap_first": float(det[1]), "ifmap_last": float(det[2]),
                   "filter_first": float(det[4]), "filter_last": float(det[5]),
                   "ofmap_first": float(det[7]), "ofmap_last": float(det[8])}
            diffs = ["%s %s != %s" % (k, got[k], want[k]) for k in got if got[k] != want[k]]
            if diffs:
                bad += 1
                print("%s: %s" % (desc, "; ".join(diffs)))
            elif case < 3:
                print("%s: ifmap SRAM %s..%s" % (desc, want["ifmap_first"], want["ifmap_last"]))
    print("%d padded cases, %d with windows past the ifmap edge, %d differ" % (n_cases, padded, bad))
    return bad, padded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("arch")
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--qsim")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    print("seed %d" % a.seed)
    bad = stalled = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(a.cases):
            df = ["os", "ws", "is"][case % 3]
            R, C = int(rng.choice([2, 3, 4, 5, 8])), int(rng.choice([2, 3, 4, 7, 8]))
            c = int(rng.integers(1, 6))
            r = int(rng.integers(1, 4))
            stride = int(rng.integers(1, 3))
            h = int(rng.integers(r, 24))
            w = int(rng.integers(r, 24))
            n = int(rng.integers(1, 48))   # IS instructions span all n: wider than the array
            kib = int(rng.choice([1, 1, 2, 64]))
            user = int(rng.choice([0, 0, 0, 1, 2, 3, 10]))
            path = os.path.join(tmp, "n%d.qbin" % case)
            M, N, K = make_net(path, rng, c, h, w, r, r, n, stride)
            want = reference(df, R, C, M, N, K, kib, user)
            sets = ["array.rows=%d" % R, "array.cols=%d" % C, "array.dataflow=%s" % df,
                    "timing.convention=scalesim", "timing.scalesim_bandwidth=%d" % user,
                    "buffer.accum.size_kib=%d" % kib, "array.skip_group=1"]
            got = {}
            for eng in ("fast", "detailed"):
                p = subprocess.run([a.tool, a.arch, path, eng] + sets, capture_output=True, text=True)
                if p.returncode:
                    print("case %d %s: tool failed: %s" % (case, eng, p.stderr.strip()))
                    bad += 1
                    continue
                f = p.stdout.split()
                got[eng] = {"cycles": int(f[1]), "folds": int(f[2]), "total": int(f[3]), "stall": int(f[4]),
                            "map_eff": float(f[5]), "comp_util": float(f[6]),
                            "ofmap_dram": int(f[10]), "first": int(f[11]), "last": int(f[12])}
                for j, k in enumerate(["ifmap_first", "ifmap_last", "filter_first", "filter_last",
                                       "ofmap_first", "ofmap_last"]):
                    got[eng][k] = int(f[13 + j])
            desc = "case %d: %s %dx%d, M=%d N=%d K=%d, ofmap %d KiB, bw %s" % (
                case, df, R, C, M, N, K, kib, user or "CALC")
            for eng, g in got.items():
                exp = dict(want, cycles=want["rows"] + want["stall"])
                diffs = ["%s %s != %s" % (k, g[k], exp[k]) for k in g
                         if (abs(g[k] - exp[k]) > 1e-9 * max(1.0, abs(exp[k])) if isinstance(exp[k], float)
                             else g[k] != exp[k])]
                if diffs:
                    bad += 1
                    print("%s [%s]: %s" % (desc, eng, "; ".join(diffs)))
            stalled += want["stall"] > 0
            if case < 6 or case % 20 == 0:
                print("%s: total %d stall %d" % (desc, want["total"], want["stall"]))
    if a.qsim:
        pbad, ppadded = padded_cases(a.qsim, rng, max(12, a.cases // 3))
        bad += pbad
        if ppadded == 0:
            print("no topology case had windows past the ifmap edge: widen the generator")
            bad += 1
    print("%d of %d cases differ; %d cases stall" % (bad, a.cases, stalled))
    if a.cases >= 30 and stalled == 0:
        print("no case exercised the stall rules: widen the generator")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
