#!/usr/bin/python3
"""qsim's values with narrow accumulators that overflow, against an implementation of
docs/compiler.md section 9 written apart from the simulator (scripts/qsim_array_ref.py).

Random networks (half from tests/e2e_random.py, half conv+fc layers with sums far past 16 bits) run on random small arrays (every dataflow, weight
paths of 1, 2, 4 and 8 bits, every zero_skip mode, lockstep groups) whose accumulators are
16 to 18 bits wide and wrap or saturate, with buffers small enough that reductions split into
k-chunks. The mapping is read from `qsim compile --listing`; every layer's output
(`--dump-outputs`, both engines) and every layer's overflow count (`--json`) must equal the
reference's. Cases whose network does not fit the array are counted and skipped.

usage: e2e_overflow.py QSIM_BINARY [SOURCE_DIR] [--cases N] [--seed S]
Prints one line per failing case and a closing 'N passed, M failed'; exit 1 on failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def random_arch(rng):
    df = ["os", "ws", "is"][int(rng.integers(0, 3))]
    rows, cols = int(rng.choice([2, 3, 4, 8])), int(rng.choice([1, 2, 4, 5]))
    wpb = int(rng.choice([1, 2, 4, 8]))
    acc = int(rng.choice([16, 16, 17, 18]))  # at least one 8x8-bit product (a config rule)
    ovf = "saturate" if rng.random() < 0.5 else "wrap"
    skip = ["none", "gate", "weights", "activations", "both"][int(rng.integers(0, 5))]
    if df == "is" and skip in ("activations", "both"):
        skip = "weights"  # IS cannot skip activations in time (docs/timing.md)
    group = int(rng.choice([g for g in (1, 2, rows) if rows % g == 0]))
    kib = int(rng.choice([1, 2, 64]))  # 1 KiB buffers force k-chunks on the wider layers
    sets = ["array.rows=%d" % rows, "array.cols=%d" % cols, "array.dataflow=%s" % df,
            "array.weight_path_bits=%d" % wpb, "array.max_weight_bits=8", "array.max_act_bits=8",
            "array.acc_bits=%d" % acc, "array.overflow=%s" % ovf, "array.zero_skip=%s" % skip,
            "array.skip_group=%d" % min(group, rows), "buffer.ifmap.size_kib=%d" % kib,
            "buffer.weight.size_kib=%d" % kib, "buffer.accum.size_kib=%d" % max(kib, 2)]
    return dict(rows=rows, cols=cols, dataflow=df, weight_path_bits=wpb, acc_bits=acc, overflow=ovf,
                zero_skip=skip), sets


def wide_net(Q, rng, name):
    """A network whose sums reach far past 16 bits: 8-bit inputs with a zero point, a conv over
    up to 48 channels x 3x3 with dense 2/4/8-bit weights (signed or not), then an fc; outputs
    requantized to 8 bits. With 16..20-bit accumulators most outputs overflow somewhere."""
    net = Q.Net(name)
    c, h, w = int(rng.integers(16, 65)), int(rng.integers(3, 7)), int(rng.integers(3, 7))
    zp = int(rng.integers(0, 256)) if rng.random() < 0.6 else 0
    x0 = net.input("in", c=c, h=h, w=w, bits=8, signed=False, zp=zp, scale=0.05)
    wbits = int(rng.choice([2, 4, 8, 8]))
    wsigned = bool(rng.random() < 0.8)
    lo, hi = Q.int_range(wbits, wsigned)
    oc = int(rng.integers(1, 9))
    wt = rng.integers(lo, hi + 1, size=(oc, c, 3, 3))
    bias = rng.integers(-5000, 5001, size=oc) if rng.random() < 0.5 else None
    x1 = net.conv("conv", x0, wt, bias, pad=1, wbits=wbits, wsigned=wsigned, multiplier=2.0 ** -12,
                  bits=8, signed=True, zp=0, scale=0.1)
    k = oc * h * w
    wf = rng.integers(-128, 128, size=(int(rng.integers(1, 6)), k))
    net.fc("fc", x1, wf, None, wbits=8, multiplier=2.0 ** -10, bits=8, signed=True, zp=0, scale=0.1)
    net.output = len(net.layers) - 1
    x = rng.integers(0, 256, size=(c, h, w)).astype(np.int32)
    return net, x


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("qsim")
    ap.add_argument("root", nargs="?", default=os.path.dirname(HERE))
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=20261207)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    sys.path.insert(0, HERE)
    import qsim_qbin as Q
    import qsim_array_ref as A
    import e2e_random

    tmp = tempfile.mkdtemp(prefix="qsim_ovf_")
    arch_cfg = os.path.join(args.root, "models", "arch", "edge.cfg")
    passed = failed = nofit = 0
    layers_checked = overflowed = chunked = 0
    seen = set()
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    try:
        for case in range(args.cases):
            if case % 2:
                g = e2e_random.random_net(Q, args.seed + case, case)
                net0, x0 = g.net, g.x
            else:
                net0, x0 = wide_net(Q, rng, "wide%03d" % case)
            params, sets = random_arch(rng)
            arch = A.ArrayArch(**params)
            qbin = os.path.join(tmp, "c%03d.qbin" % case)
            npy = os.path.join(tmp, "c%03d_x.npy" % case)
            net0.save(qbin)
            np.save(npy, x0)
            setargs = sum((["--set", s] for s in sets), [])
            p = subprocess.run([args.qsim, "compile", "--arch", arch_cfg, qbin, "--listing"] + setargs,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            if p.returncode != 0:
                if "does not fit" in p.stderr or "exceed" in p.stderr:
                    nofit += 1
                    continue
                failed += 1
                print("FAIL case %d: compile exit %d: %s" % (case, p.returncode, p.stderr.strip()))
                continue
            gemms = A.parse_listing(p.stdout)
            net = Q.read(qbin)
            ref, ref_ovf = A.evaluate_on_array(net, x0, arch, gemms)
            problems = []
            for engine in ("fast", "detailed"):
                out = os.path.join(tmp, "c%03d_%s" % (case, engine))
                js = out + ".json"
                r = subprocess.run([args.qsim, "run", "--arch", arch_cfg, qbin, "--input", npy, "--engine", engine,
                                    "--dump-outputs", out, "--json", js, "-q"] + setargs,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
                if r.returncode != 0:
                    problems.append("%s: run exit %d: %s" % (engine, r.returncode, r.stderr.strip()))
                    continue
                msg = e2e_random.compare(net, ref, out)
                if msg:
                    problems.append("%s: %s" % (engine, msg))
                rep = json.load(open(js))
                by_name = {L["name"]: L for L in rep["layers"]}
                for i, l in enumerate(net.layers):
                    if l.kind in (Q.L_CONV, Q.L_FC):
                        got = by_name.get(l.name, {}).get("acc_overflows")
                        if got != ref_ovf[i]:
                            problems.append("%s: layer %d '%s': %s overflows, section 9 gives %d"
                                            % (engine, i, l.name, got, ref_ovf[i]))
                shutil.rmtree(out, ignore_errors=True)
            desc = "%s %dx%d wpb %d acc %d %s skip %s" % (params["dataflow"], params["rows"], params["cols"],
                                                            params["weight_path_bits"], params["acc_bits"],
                                                            params["overflow"], params["zero_skip"])
            if problems:
                failed += 1
                print("FAIL case %d (%s; seed %d): %s" % (case, desc, args.seed + case, " ".join(sets)))
                for m in problems[:6]:
                    print("    " + m)
                print("    files: %s %s" % (qbin, npy))
            else:
                passed += 1
                seen.add((params["dataflow"], params["overflow"]))
                for i, l in enumerate(net.layers):
                    if l.kind in (Q.L_CONV, Q.L_FC):
                        layers_checked += 1
                        overflowed += ref_ovf[i] > 0
                        chunked += any(not gm.first for gm in gemms.get(i, []))
        print("%d layers checked, %d with overflows, %d split into k-chunks; %d cases did not fit"
              % (layers_checked, overflowed, chunked, nofit))
        # the check means something only if overflows, chunks and every dataflow/mode occurred
        if args.cases >= 40 and (overflowed < 20 or chunked < 5 or len(seen) < 6):
            print("coverage incomplete: %d overflowed, %d chunked, dataflow/mode pairs %s"
                  % (overflowed, chunked, sorted(seen)))
            failed += 1
    finally:
        if failed:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed (%.1f s)" % (passed, failed, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
