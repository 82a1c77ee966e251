#!/usr/bin/python3
"""SCALE-Sim layers too large to simulate on operands, against closed forms.

Runs a cut of SCALE-Sim v2's own `topologies/GEMM_mnk/unet2d.csv` (Conv1a,
M = 4,186,116, and Conv10, M = 3,474,496: both over qsim's 2^20 operand limit;
Conv1a's output alone is 268 million words) with `qsim run --report-dir` on
SCALE-Sim's example configuration (32x32 output stationary, 64 KiB SRAMs, CALC),
a weight-stationary variant, and Conv10 on a 2048x8 array (over the engines'
1024). The expected cells are computed here from SCALE-Sim's fold rules
(docs/scalesim.md, docs/timing.md), not by qsim's code:

  OS: Sr = M, Sc = N, T = K; WS: Sr = K, Sc = N, T = M
  folds = ceil(Sr/R) * ceil(Sc/C); demand rows per fold OS: T + R + C - 2,
  WS: 2R + C + T - 2; Total Cycles = folds * rows - 1 + Stall Cycles
  SRAM reads per fold (ku, cu used rows, columns): OS ifmap T ku, filter T cu,
  ofmap writes ku cu + R + C; WS ifmap T ku, filter ku cu, ofmap T cu
  Overall Util = M N K * 100 / (Total * R * C); Mapping Efficiency = mean ku cu / (R C)
  Compute Util = mean ku cu T / (R C U), U = T + R + C - 2 (OS), 2R + 2C + T - 3 (WS)
  DRAM Filter Reads = N K when the filter fits half its SRAM (read once);
  OS DRAM IFMAP Reads = ceil(N/C) M K: every column fold walks the whole
  M x K ifmap, far larger than the 50-set window, and row folds share no row.

Stall Cycles are SCALE-Sim's write-buffer stalls (no closed form): the test
takes qsim's and checks Total against it. The qsim-only columns must be empty
(CSV) or absent (JSON), and the peak memory of each run must stay under 160 MB
(the engines would keep the whole 268-million-word output).

    test_scalesim_big.py QSIM
"""
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNET = ("Layer,M,N,K,\n"
        "Conv1a,4186116,64,9,\n"
        "Conv10,3474496,2,64,\n")   # rows 2 and 20 of SCALE-Sim v2's unet2d.csv, as written there
RSS_LIMIT_KB = 160 * 1024


def ceil_div(a, b):
    return -(-a // b)


def expected(df, R, C, M, N, K, stall):
    if df == "os":
        sr, sc, t = M, N, K
        rows, util_cycles = t + R + C - 2, t + R + C - 2
    else:
        sr, sc, t = K, N, M
        rows, util_cycles = 2 * R + C + t - 2, 2 * R + 2 * C + t - 3
    rf, cf = ceil_div(sr, R), ceil_div(sc, C)
    folds = rf * cf
    ifr = fil = ofw = 0
    map_sum = util_sum = 0.0
    for fc in range(cf):
        cu = min(C, sc - fc * C)
        for fr in (0, rf - 1) if rf > 1 else (0,):
            # all row folds but the last are full: weight them
            ku = min(R, sr - fr * R)
            n = (rf - 1) if (fr == 0 and rf > 1) else 1
            map_sum += n * ku * cu / (R * C)
            util_sum += n * ku * cu * t / (R * C * util_cycles)
            if df == "os":
                ifr += n * t * ku
                fil += n * t * cu
                ofw += n * (ku * cu + R + C)
            else:
                ifr += n * t * ku
                fil += n * ku * cu
                ofw += n * t * cu
    total = folds * rows - 1 + stall
    return {
        "Total Cycles": total,
        "Overall Util %": M * N * K * 100 / (total * R * C),
        "Mapping Efficiency %": map_sum / folds * 100,
        "Compute Util %": util_sum / folds * 100,
        "SRAM IFMAP Reads": ifr,
        "SRAM Filter Reads": fil,
        "SRAM OFMAP Writes": ofw,
    }


def read_report(path):
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f)]
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:]]


def config(tmp, name, R, C, df, kib):
    path = os.path.join(tmp, name + ".cfg")
    with open(path, "w") as f:
        f.write("[general]\nrun_name = %s\n\n[architecture_presets]\nArrayHeight: %d\nArrayWidth: %d\n"
                "IfmapSramSzkB: %d\nFilterSramSzkB: %d\nOfmapSramSzkB: %d\nIfmapOffset: 0\nFilterOffset: 10000000\n"
                "OfmapOffset: 20000000\nDataflow : %s\n\n[run_presets]\nInterfaceBandwidth: CALC\n"
                % (name, R, C, kib, kib, kib, df))
    return path


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    qsim = sys.argv[1]
    bad = checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        topo = os.path.join(tmp, "unet2d_cut.csv")
        with open(topo, "w") as f:
            f.write(UNET)
        runs = [("scale_os", 32, 32, "os", 64, topo), ("scale_ws", 32, 32, "ws", 64, topo)]
        topo10 = os.path.join(tmp, "unet2d_conv10.csv")
        with open(topo10, "w") as f:
            f.write("Layer,M,N,K,\n" + UNET.split("\n")[2] + "\n")
        runs.append(("tall_2048x8", 2048, 8, "os", 64, topo10))
        for name, R, C, df, kib, tp in runs:
            cfg = config(tmp, name, R, C, df, kib)
            out = os.path.join(tmp, name)
            js, cs = out + ".json", out + ".csv"
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            p = subprocess.run([qsim, "run", "--arch", cfg, tp, "--report-dir", out, "--json", js, "--csv", cs],
                               capture_output=True, text=True)
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if p.returncode:
                print("%s: qsim failed: %s" % (name, p.stderr.strip()[:400]))
                bad += 1
                continue
            if rss > RSS_LIMIT_KB and rss > before:
                print("%s: peak memory %d kB, limit %d kB" % (name, rss, RSS_LIMIT_KB))
                bad += 1
            compute = read_report(os.path.join(out, "COMPUTE_REPORT.csv"))
            access = read_report(os.path.join(out, "DETAILED_ACCESS_REPORT.csv"))
            layers = [l.split(",") for l in open(tp).read().split("\n")[1:] if l.strip()]
            doc = json.load(open(js))
            qcsv = list(csv.DictReader(open(cs)))
            for i, row in enumerate(layers):
                M, N, K = int(row[1]), int(row[2]), int(row[3])
                stall = int(compute[i]["Stall Cycles"])
                want = expected(df, R, C, M, N, K, stall)
                got = dict(compute[i])
                got.update(access[i])
                if df == "os":
                    want["DRAM IFMAP Reads"] = ceil_div(N, C) * M * K
                want["DRAM Filter Reads"] = N * K
                for col, w in want.items():
                    g = float(got[col])
                    checked += 1
                    if not close(g, w):
                        print("%s %s %s: qsim %s, expected %r" % (name, row[0], col, got[col], w))
                        bad += 1
                lj = doc["layers"][i]
                if not lj.get("no_operands") or "cycles" in lj or "energy_pj" in lj:
                    print("%s %s: JSON layer not marked no_operands or has qsim figures" % (name, row[0]))
                    bad += 1
                if qcsv[i]["cycles"] or qcsv[i]["energy_pj"] or int(qcsv[i]["ss_total_cycles"]) != want["Total Cycles"]:
                    print("%s %s: CSV qsim columns not empty or SCALE-Sim total wrong" % (name, row[0]))
                    bad += 1
            if doc.get("layers_without_operands") != len(layers) or "energy_pj" in doc["total"]:
                print("%s: JSON totals claim qsim figures" % name)
                bad += 1
            print("%s: %d layers, peak memory of the runs so far %d kB" % (name, len(layers), rss))
    print("%d cells checked, %d problems" % (checked, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
