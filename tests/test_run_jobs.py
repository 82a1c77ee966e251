#!/usr/bin/python3
"""qsim run --jobs and --dump-outputs of a batch (cli/main.c).

- The JSON and CSV reports of a batch are byte for byte the same with --jobs 1, 2, 3 and 7
  (and the default), apart from the JSON's wall_seconds and command_line lines (which name the
  options), on both engines.
- --dump-outputs of a batch writes every inference as DIR/<inference, 5 digits>/; each
  layer's output equals the independent NumPy reference (scripts/qsim_qbin.evaluate) of
  that image; --dump-index K writes inference K alone as DIR/<index>_<name>.npy.
- With the bank-level DRAM model, the report and the --dram-trace file are the same too.
- Bad values (--jobs 0, --dump-index past the batch, --dump-index without a directory)
  are refused with one message.

usage: test_run_jobs.py QSIM SOURCE_DIR"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

failures = []



def volatile(line):
    """JSON lines that differ between equal runs: the wall time and the command line."""
    return b'"wall_seconds"' in line or b'"command_line"' in line

def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def main():
    qsim, root = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as q
    arch = os.path.join(root, "models", "arch", "dlac.cfg")
    nets = os.path.join(root, "models", "nets")
    data = np.load(os.path.join(nets, "digits_test.npz"))
    x, y = data["x"].astype(np.int32), data["y"].astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x[:61])
        np.save(yp, y[:61])
        for netname in ("digits_w2a4.qbin", "digits_bin_a4.qbin"):
            net = os.path.join(nets, netname)
            for engine, njobs in (("fast", ["1", "2", "3", "7", None]), ("detailed", ["1", "2"])):
                outs = {}
                for j in njobs:
                    js, cs = os.path.join(tmp, "r.json"), os.path.join(tmp, "r.csv")
                    cmd = [qsim, "run", "--arch", arch, net, "--input", xp, "--labels", yp, "--engine", engine,
                           "--json", js, "--csv", cs, "-q"] + (["--jobs", j] if j else [])
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode:
                        check(False, "%s %s --jobs %s: %s" % (netname, engine, j, r.stderr.strip()))
                        continue
                    text = open(js, "rb").read().split(b"\n")
                    outs[j] = (b"\n".join(ln for ln in text if not volatile(ln)), open(cs, "rb").read())
                base = outs.get("1")
                for j, o in outs.items():
                    if j != "1":
                        check(base is not None and o == base, "%s %s: --jobs %s report == --jobs 1 (JSON %d bytes)" % (
                            netname, engine, j or "default", len(o[0])))

        # the bank-level DRAM model: its statistics and the first inference's request trace
        net = os.path.join(nets, "digits_w2a4.qbin")
        outs = {}
        for j in ("1", "3"):
            js, tr = os.path.join(tmp, "d%s.json" % j), os.path.join(tmp, "d%s.trace" % j)
            r = subprocess.run([qsim, "run", "--arch", arch, net, "--set", "dram.model=ddr4_3200", "--input", xp,
                                "--json", js, "--dram-trace", tr, "--jobs", j, "-q"], capture_output=True, text=True)
            if r.returncode:
                check(False, "ddr4_3200 --jobs %s: %s" % (j, r.stderr.strip()))
                continue
            text = open(js, "rb").read().split(b"\n")
            outs[j] = (b"\n".join(ln for ln in text if not volatile(ln)), open(tr, "rb").read())
        check(len(outs) == 2 and outs["1"] == outs["3"] and len(outs["1"][1]) > 0,
              "dram.model=ddr4_3200: --jobs 3 report and --dram-trace == --jobs 1")

        net = os.path.join(nets, "digits_w4a4.qbin")
        ref = q.Net.load(net)
        np.save(xp, x[:5])
        d_all, d_one = os.path.join(tmp, "all"), os.path.join(tmp, "one")
        r = subprocess.run([qsim, "run", "--arch", arch, net, "--input", xp, "--dump-outputs", d_all, "--jobs", "2",
                            "-q"], capture_output=True, text=True)
        check(r.returncode == 0, "batch of 5 with --dump-outputs: %s" % r.stderr.strip())
        check(sorted(os.listdir(d_all)) == ["%05d" % i for i in range(5)], "one directory per inference: %s" % (
            sorted(os.listdir(d_all)) if os.path.isdir(d_all) else "none"))
        for b in range(5):
            outs = q.evaluate(ref, x[b])
            files = sorted(glob.glob(os.path.join(d_all, "%05d" % b, "*.npy")))
            same = len(files) == len(ref.layers) and all(
                np.array_equal(np.load(f).reshape(-1), outs[i].reshape(-1)) for i, f in enumerate(files))
            check(same, "inference %d: every layer's dump == qsim_qbin.evaluate of image %d" % (b, b))
        r = subprocess.run([qsim, "run", "--arch", arch, net, "--input", xp, "--dump-outputs", d_one,
                            "--dump-index", "3", "-q"], capture_output=True, text=True)
        files = sorted(glob.glob(os.path.join(d_one, "*.npy")))
        outs = q.evaluate(ref, x[3])
        check(r.returncode == 0 and len(files) == len(ref.layers) and len(os.listdir(d_one)) == len(ref.layers) and all(
            np.array_equal(np.load(f).reshape(-1), outs[i].reshape(-1)) for i, f in enumerate(files)),
            "--dump-index 3: inference 3 alone, == qsim_qbin.evaluate of image 3")

        bad = [(["--jobs", "0"], 2, "--jobs '0'"), (["--jobs", "x"], 2, "--jobs 'x'"),
               (["--dump-index", "1"], 2, "--dump-index needs --dump-outputs"),
               (["--dump-outputs", d_one, "--dump-index", "5"], 1, "--dump-index 5: the batch has 5 inferences"),
               (["--dump-outputs", d_one, "--dump-index", "-1"], 2, "--dump-index '-1'")]
        for extra, rc, msg in bad:
            r = subprocess.run([qsim, "run", "--arch", arch, net, "--input", xp, "-q"] + extra,
                               capture_output=True, text=True)
            check(r.returncode == rc and msg in r.stderr, "%s: exit %d, '%s' (got %d: %s)" % (
                " ".join(extra), rc, msg, r.returncode, r.stderr.strip().split("\n")[0]))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
