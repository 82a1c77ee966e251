#!/usr/bin/python3
"""qsim's SCALE-Sim reports against SCALE-Sim v2's own, cell by cell.

tests/scalesim_v2/ holds configurations and topologies (cases/) and the three
reports SCALE-Sim v2 wrote for them (expected/<topology>/<run_name>/), with
their provenance in tests/scalesim_v2/README.md. For every expected run this
runs `qsim run --arch CFG TOPO --report-dir DIR` with each engine and compares
every cell of COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv and
DETAILED_ACCESS_REPORT.csv as text (SCALE-Sim's number format included).
Where SCALE-Sim's stdout was kept (stdout.txt: its lines without the progress
bars), `qsim scalesim -c CFG -t TOPO -p DIR [-i gemm]` must print the same
non-empty lines and write the same reports under DIR/<run_name>/.

"Engine" timing-only runs `--timing-only` (no operands: SCALE-Sim's figures
from the topology rows alone, docs/scalesim.md "Layers without operands"),
which must give the same cells as the engines.

    test_scalesim_reference.py QSIM [--engines fast,detailed,timing-only] [--only SUBSTR]
Exit 0 when every cell of every run agrees.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scalesim_v2")
REPORTS = ["COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"]


def cells(path):
    with open(path, newline="") as f:
        return [[c.strip() for c in row] for row in csv.reader(f)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsim")
    ap.add_argument("--engines", default="fast,detailed,timing-only")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    runs = bad_runs = compared = 0
    expected = os.path.join(HERE, "expected")
    with tempfile.TemporaryDirectory() as tmp:
        for topo in sorted(os.listdir(expected)):
            for run in sorted(os.listdir(os.path.join(expected, topo))):
                want_dir = os.path.join(expected, topo, run)
                if a.only not in "%s/%s" % (topo, run):
                    continue
                cfg = os.path.join(HERE, "cases", run + ".cfg")
                topo_csv = os.path.join(HERE, "cases", topo + ".csv")
                gemm = ["--gemm"] if topo.startswith("gemm") else []
                for eng in a.engines.split(","):
                    out = os.path.join(tmp, "%s.%s.%s" % (topo, run, eng))
                    how = ["--timing-only"] if eng == "timing-only" else ["--engine", eng]
                    p = subprocess.run([a.qsim, "run"] + how + ["--arch", cfg, topo_csv, "-q",
                                        "--report-dir", out] + gemm, capture_output=True, text=True)
                    runs += 1
                    if p.returncode:
                        print("%s/%s [%s]: qsim failed: %s" % (topo, run, eng, p.stderr.strip()[:300]))
                        bad_runs += 1
                        continue
                    diffs = []
                    for rep in REPORTS:
                        want, got = cells(os.path.join(want_dir, rep)), cells(os.path.join(out, rep))
                        if len(want) != len(got):
                            diffs.append("%s: %d rows, SCALE-Sim %d" % (rep, len(got), len(want)))
                            continue
                        head = want[0]
                        for w_row, g_row in zip(want[1:], got[1:]):
                            if len(w_row) != len(g_row):
                                diffs.append("%s layer %s: %d cells, SCALE-Sim %d" % (rep, w_row[0], len(g_row),
                                                                                    len(w_row)))
                                continue
                            for name, w, g in zip(head, w_row, g_row):
                                compared += 1
                                if w != g:
                                    diffs.append("%s layer %s %s: qsim %s, SCALE-Sim %s" % (rep, w_row[0], name,
                                                                                           g, w))
                    want_stdout = os.path.join(want_dir, "stdout.txt")
                    if eng in ("fast", "timing-only") and os.path.exists(want_stdout):
                        pdir = os.path.join(tmp, "p.%s.%s" % (topo, run))
                        q = subprocess.run([a.qsim, "scalesim", "-c", cfg, "-t", topo_csv, "-p", pdir] +
                                           (["-i", "gemm"] if gemm else []) +
                                           (["--timing-only"] if eng == "timing-only" else []),
                                           capture_output=True, text=True)
                        runs += 1
                        with open(want_stdout) as f:
                            want_lines = [x for x in f.read().split("\n") if x.strip()]
                        got_lines = [x for x in q.stdout.split("\n") if x.strip()]
                        if q.returncode:
                            diffs.append("qsim scalesim failed: %s" % q.stderr.strip()[:300])
                        else:
                            for i, (w, g) in enumerate(zip(want_lines, got_lines)):
                                if w != g and "CSV file path" not in w:  # the path differs by construction
                                    diffs.append("stdout line %d: qsim %r, SCALE-Sim %r" % (i + 1, g, w))
                            if len(want_lines) != len(got_lines):
                                diffs.append("stdout: %d lines, SCALE-Sim %d" % (len(got_lines), len(want_lines)))
                            for rep in REPORTS:
                                if cells(os.path.join(pdir, run, rep)) != cells(os.path.join(want_dir, rep)):
                                    diffs.append("qsim scalesim: %s/%s differs" % (run, rep))
                    if diffs:
                        bad_runs += 1
                        print("%s/%s [%s]: %d cells differ" % (topo, run, eng, len(diffs)))
                        for d in diffs[:12]:
                            print("    " + d)
                    else:
                        print("%s/%s [%s]: every cell equal" % (topo, run, eng))
    print("%d runs, %d cells compared, %d runs differ" % (runs, compared, bad_runs))
    if runs == 0:
        print("no expected runs found under %s" % expected)
        return 1
    return 1 if bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
