#!/usr/bin/python3
"""qsim's --traces against SCALE-Sim v2's own trace files, byte for byte.

tests/scalesim_v2/traces/<topology>/<run_name>/layer<i>/<NAME>.csv.xz are trace
files SCALE-Sim v2 wrote (xz-compressed, otherwise untouched; provenance in
tests/scalesim_v2/README.md) for the topology cases/<topology>.csv and the
configuration cases/<run_name>.cfg. For every stored run this runs
`qsim run --arch CFG TOPO --report-dir DIR --traces` with each engine and
compares every stored file with DIR/layer<i>/<NAME>.csv, byte for byte; then
`qsim scalesim -c CFG -t TOPO -p DIR --traces` once, which must put the same
files under DIR/<run_name>/layer<i>/.

    test_scalesim_traces.py QSIM [--engines fast,detailed,timing-only] [--only SUBSTR]
("engine" timing-only: `--timing-only`, SCALE-Sim's figures from the rows alone)
Exit 0 when every stored file is reproduced exactly.
"""
import argparse
import lzma
import os
import subprocess
import sys
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scalesim_v2")


def stored_runs():
    base = os.path.join(HERE, "traces")
    for topo in sorted(os.listdir(base)):
        for run in sorted(os.listdir(os.path.join(base, topo))):
            files = []
            for layer in sorted(os.listdir(os.path.join(base, topo, run))):
                for name in sorted(os.listdir(os.path.join(base, topo, run, layer))):
                    if name.endswith(".csv.xz"):
                        files.append((layer, name[:-3], os.path.join(base, topo, run, layer, name)))
            yield topo, run, files


def first_difference(want, got):
    """line number and both lines where two byte strings first differ"""
    wl, gl = want.split(b"\n"), got.split(b"\n")
    for i in range(max(len(wl), len(gl))):
        w = wl[i] if i < len(wl) else b"<end of file>"
        g = gl[i] if i < len(gl) else b"<end of file>"
        if w != g:
            return i + 1, w[:160], g[:160]
    return 0, b"", b""


def compare(files, out_dir, label):
    bad = 0
    nbytes = 0
    for layer, name, xz in files:
        with lzma.open(xz) as f:
            want = f.read()
        path = os.path.join(out_dir, layer, name)
        if not os.path.exists(path):
            print("%s: %s/%s not written" % (label, layer, name))
            bad += 1
            continue
        with open(path, "rb") as f:
            got = f.read()
        nbytes += len(want)
        if got != want:
            line, w, g = first_difference(want, got)
            print("%s: %s/%s differs at line %d:\n  SCALE-Sim: %s\n  qsim:      %s" %
                  (label, layer, name, line, w.decode(), g.decode()))
            bad += 1
    return bad, nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsim")
    ap.add_argument("--engines", default="fast,detailed,timing-only")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    runs = bad_files = files_compared = bytes_compared = 0
    cli_checked = False
    with tempfile.TemporaryDirectory() as tmp:
        for topo, run, files in stored_runs():
            if a.only not in "%s/%s" % (topo, run):
                continue
            cfg = os.path.join(HERE, "cases", run + ".cfg")
            topo_csv = os.path.join(HERE, "cases", topo + ".csv")
            gemm = topo.startswith("gemm")
            for eng in a.engines.split(","):
                out = os.path.join(tmp, "%s.%s.%s" % (topo, run, eng))
                how = ["--timing-only"] if eng == "timing-only" else ["--engine", eng]
                p = subprocess.run([a.qsim, "run"] + how + ["--arch", cfg, topo_csv, "-q",
                                    "--report-dir", out, "--traces"] + (["--gemm"] if gemm else []),
                                   capture_output=True, text=True)
                runs += 1
                label = "%s/%s [%s]" % (topo, run, eng)
                if p.returncode:
                    print("%s: qsim failed: %s" % (label, p.stderr.strip()[:300]))
                    bad_files += len(files)
                    continue
                bad, n = compare(files, out, label)
                bad_files += bad
                files_compared += len(files)
                bytes_compared += n
            if not cli_checked:
                # SCALE-Sim's own command line: OUTDIR/<run_name>/layer<i>/
                cli_checked = True
                out = os.path.join(tmp, "cli")
                p = subprocess.run([a.qsim, "scalesim", "-c", cfg, "-t", topo_csv, "-p", out, "--traces"] +
                                   (["-i", "gemm"] if gemm else []), capture_output=True, text=True)
                runs += 1
                if p.returncode:
                    print("qsim scalesim --traces failed: %s" % p.stderr.strip()[:300])
                    bad_files += len(files)
                else:
                    bad, _ = compare(files, os.path.join(out, run), "qsim scalesim %s/%s" % (topo, run))
                    bad_files += bad
                    files_compared += len(files)
    print("%d qsim runs, %d trace files (%d bytes) compared with SCALE-Sim v2's, %d differ" %
          (runs, files_compared, bytes_compared, bad_files))
    if files_compared == 0:
        print("no stored trace compared")
        return 1
    return 1 if bad_files else 0


if __name__ == "__main__":
    sys.exit(main())
