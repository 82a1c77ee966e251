#!/usr/bin/python3
"""qsim run --engine rtl: the Verilated PE array of each preset, beside the C model.

    test_engine_rtl.py QSIM ROOT CACHE_DIR PRESET[:NET[:SET,...]] ...

For each preset (the user's design point as shipped, with a small network and a random
input): `--engine rtl` must report agreement with some clocks and values compared, give
every layer's output the fast engine gives (the engines' contract) and, when no
accumulator overflowed, the network output of the independent NumPy reference
(scripts/qsim/qbin.py evaluate); its JSON figures must be the detailed engine's.

Then, on the first preset, an injected mismatch (QSIM_RTL_FLIP flips bit 0 of one RTL
accumulator as read at one clock) must stop the run (non-zero exit) with the cycle, the
PE, both values (differing in bit 0), the layer and tile, and a command line that
reproduces it: run with the same flip at that cycle, the command must stop at the same
place; without the flip it must agree, on one tile. The comparison runs on a thread of its
own, behind the simulator: with QSIM_RTL_THREADS=1 (on the simulator's thread) the same
flip must give the same message and a clean run the same figures, and a flip at the very
last clock must still be caught.

Models are built once into CACHE_DIR (content-hashed) and reused by later runs.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy as np

FAIL = []


def check(cond, msg):
    if not cond:
        FAIL.append(msg)
        print("FAIL: " + msg)
    return cond


def run(cmd, env=None, timeout=1800):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


AGREE = re.compile(r"RTL co-simulation: agreement: (\d+) clocks compared, (\d+) values compared, (\d+) tiles")
MISMATCH = re.compile(r"RTL co-simulation mismatch at cycle (\d+) \(clock (\d+) of tile (\d+) of layer '([^']+)', "
                      r"row group (\d+), outputs from row (\d+) column (\d+)\): PE\((\d+),(\d+)\) (accumulator|partial "
                      r"sum): RTL (-?\d+), C model (-?\d+); reproduce: (.*)$", re.M)


def strip(js):
    for k in ("wall_seconds", "command_line", "engine"):
        js.pop(k, None)
    return js


def main(argv):
    qsim, root, cache = argv[1], argv[2], argv[3]
    specs = argv[4:]
    sys.path.insert(0, os.path.join(root, "scripts"))
    from qsim import qbin as Q
    env = dict(os.environ, QSIM_RTL_CACHE=cache)
    env.pop("QSIM_RTL_FLIP", None)
    tmp = tempfile.mkdtemp(prefix="qsim_rtl_")
    first = None
    res_rtl_out = {}
    # a verilator that fails: the message names the parameters and the build log (with every optional
    # Verilator argument in use: --fst traces)
    fake = os.path.join(tmp, "fakeverilator")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\nif [ "$1" = --version ]; then echo "Verilator 0.0 fake"; exit 0; fi\nexit 3\n')
    os.chmod(fake, 0o755)
    rc, out, err = run([qsim, "run", "--arch", os.path.join(root, "models", "arch", "edge.cfg"),
                        os.path.join(root, "models", "nets", "tiny.qbin"), "-q", "--engine", "rtl",
                        "--fst", os.path.join(tmp, "f.fst"), "--rtl-cache", os.path.join(tmp, "fakecache")],
                       dict(env, QSIM_VERILATOR=fake))
    check(rc == 1 and "verilator failed (exit 3) for ROWS=1 COLS=8 DATAFLOW=1" in err and "build.log" in err,
          "failing verilator: exit %d, %r" % (rc, err[-500:]))
    for spec in specs:
        parts = spec.split(":")
        preset, net = parts[0], parts[1] if len(parts) > 1 else "tiny"
        sets = []
        for s in (parts[2].split(",") if len(parts) > 2 and parts[2] else []):
            sets += ["--set", s]
        qbin = os.path.join(root, "models", "nets", net + ".qbin")
        cfg = os.path.join(root, "models", "arch", preset + ".cfg")
        qn = Q.read(qbin)
        inl = qn.layers[0]
        rng = np.random.default_rng(7)
        lo, hi = (-(1 << (inl.out_bits - 1)), (1 << (inl.out_bits - 1)) - 1) if inl.out_signed else (0, (1 << inl.out_bits) - 1)
        x = rng.integers(lo, hi + 1, size=(inl.out_c, inl.out_h, inl.out_w)).astype(np.int32)
        npy = os.path.join(tmp, "%s_x.npy" % net)
        np.save(npy, x)
        tag = "%s/%s%s" % (preset, net, "".join(" " + s for s in sets[1::2]))
        base = [qsim, "run", "--arch", cfg, qbin, "--input", npy, "-q"] + sets
        res = {}
        for engine in ("fast", "detailed", "rtl"):
            d = os.path.join(tmp, "%s_%s_%s" % (preset, net, engine))
            js = d + ".json"
            rc, out, err = run(base + ["--engine", engine, "--dump-outputs", d, "--json", js], env)
            if not check(rc == 0, "%s --engine %s: exit %d: %s" % (tag, engine, rc, err.strip()[-2000:])):
                break
            res[engine] = (d, js, out)
        if len(res) < 3:
            continue
        res_rtl_out[tag] = res["rtl"][2]
        m = AGREE.search(res["rtl"][2])
        if check(m is not None, "%s: no agreement line in %r" % (tag, res["rtl"][2][-500:])):
            clocks, values, tiles = int(m.group(1)), int(m.group(2)), int(m.group(3))
            check(clocks > 0 and values > clocks and tiles > 0, "%s: %d clocks, %d values, %d tiles" % (tag, clocks, values, tiles))
            print("%s: %d clocks, %d values, %d tiles agree" % (tag, clocks, values, tiles))
        for f in sorted(os.listdir(res["fast"][0])):
            a, b = np.load(os.path.join(res["fast"][0], f)), np.load(os.path.join(res["rtl"][0], f))
            check(a.shape == b.shape and np.array_equal(a, b), "%s: %s differs from the fast engine's" % (tag, f))
        jd, jr = (strip(json.load(open(res[e][1]))) for e in ("detailed", "rtl"))
        check(jd == jr, "%s: the JSON report differs from the detailed engine's" % tag)
        overflows = sum(l.get("acc_overflows", 0) for l in jr["layers"])
        acc_bits = int(jr.get("config", {}).get("array", {}).get("acc_bits", 32)) if isinstance(jr.get("config"), dict) else 32
        if overflows == 0:
            ref = Q.evaluate(qn, x.reshape(-1), acc_bits=32)[qn.output]
            out_name = "%03d_%s.npy" % (qn.output, qn.layers[qn.output].name.replace("/", "_"))
            got = np.load(os.path.join(res["rtl"][0], out_name))
            check(np.array_equal(got, np.asarray(ref).reshape(got.shape)), "%s: network output differs from the NumPy reference" % tag)
        if first is None:
            first = (tag, base)

    if first is not None:
        tag, base = first
        rc, out, err = run(base + ["--engine", "rtl"], dict(env, QSIM_RTL_FLIP="#40,0,3"))
        m = MISMATCH.search(err)
        if check(rc != 0 and m is not None, "%s: injected flip: exit %d, stderr %r" % (tag, rc, err[-800:])):
            cycle, tile, layer = int(m.group(1)), int(m.group(3)), m.group(4)
            pi, pj, rtl_v, c_v = int(m.group(8)), int(m.group(9)), int(m.group(11)), int(m.group(12))
            check((pi, pj) == (0, 3), "%s: mismatch names PE(%d,%d), the flip was at PE(0,3)" % (tag, pi, pj))
            check(rtl_v ^ c_v == 1, "%s: RTL %d vs C %d should differ in bit 0 only" % (tag, rtl_v, c_v))
            check("--trace-layer %s --rtl-tiles %d:%d" % (layer, tile, tile) in m.group(13), "%s: reproduce line %r" % (tag, m.group(13)))
            repro = shlex.split(m.group(13))
            check(repro[:2] == ["qsim", "run"], "%s: reproduce line starts %r" % (tag, repro[:2]))
            repro[0] = qsim
            rc2, out2, err2 = run(repro, dict(env, QSIM_RTL_FLIP="%d,0,3" % cycle))
            m2 = MISMATCH.search(err2)
            if check(rc2 != 0 and m2 is not None, "%s: the reproduce command with the flip at cycle %d: exit %d, %r" % (tag, cycle, rc2, err2[-800:])):
                check((int(m2.group(1)), int(m2.group(3)), m2.group(4)) == (cycle, tile, layer),
                      "%s: replay stopped at cycle %s tile %s layer %s, the run at %d %d %s" % (tag, m2.group(1), m2.group(3), m2.group(4), cycle, tile, layer))
            rc3, out3, err3 = run(repro, env)
            m3 = AGREE.search(out3)
            if check(rc3 == 0 and m3 is not None, "%s: the reproduce command without a flip: exit %d %r" % (tag, rc3, err3[-800:])):
                check(int(m3.group(3)) == 1, "%s: the window should hold one tile, it held %s" % (tag, m3.group(3)))
            print("%s: injected flip caught at cycle %d, tile %d of layer %s, and replayed" % (tag, cycle, tile, layer))
            # the comparison on the simulator's own thread (QSIM_RTL_THREADS=1) stops with the same message
            rc4, out4, err4 = run(base + ["--engine", "rtl"], dict(env, QSIM_RTL_FLIP="#40,0,3", QSIM_RTL_THREADS="1"))
            check(rc4 == rc and err4 == err, "%s: one thread: exit %d %r, two threads: exit %d %r" % (tag, rc4, err4[-400:], rc, err[-400:]))
    if first is not None:
        # the pipeline's last clocks: a flip at the very last compared clock must still stop the run
        # (qs_rtl_cosim_finish), and one thread must agree on every figure
        tag, base = first
        rc, out, err = run(base + ["--engine", "rtl"], dict(env, QSIM_RTL_THREADS="1"))
        m1 = AGREE.search(out)
        m2 = AGREE.search(res_rtl_out[tag]) if tag in res_rtl_out else None
        if check(rc == 0 and m1 is not None and m2 is not None, "%s: one thread: exit %d %r" % (tag, rc, err[-400:])):
            check(m1.groups()[:3] == m2.groups()[:3], "%s: one thread compared %s, two %s" % (tag, m1.groups()[:3], m2.groups()[:3]))
            last = int(m1.group(1)) - 1
            for threads in ("1", "2"):
                rc5, out5, err5 = run(base + ["--engine", "rtl"], dict(env, QSIM_RTL_FLIP="#%d,0,3" % last, QSIM_RTL_THREADS=threads))
                check(rc5 != 0 and MISMATCH.search(err5) is not None,
                      "%s: a flip at the last clock (#%d), %s thread(s): exit %d %r" % (tag, last, threads, rc5, err5[-400:]))
            print("%s: a flip at the last of %d clocks is caught" % (tag, last + 1))
        rc6, out6, err6 = run(base + ["--engine", "rtl"], dict(env, QSIM_RTL_THREADS="3"))
        check(rc6 != 0 and "QSIM_RTL_THREADS='3'" in err6, "%s: QSIM_RTL_THREADS=3: exit %d %r" % (tag, rc6, err6[-300:]))
    if first is not None:
        # --fst with a layer window: qsim's FST and the RTL's own beside it, whose clocks lie in the window
        tag, base = first
        fst = os.path.join(tmp, "w.fst")
        layer = Q.read(base[4]).layers[-1].name
        rc, out, err = run(base + ["--engine", "rtl", "--fst", fst, "--trace-layer", layer], env)
        rfst = os.path.join(tmp, "w.rtl.fst")
        if check(rc == 0 and os.path.exists(rfst), "%s: --fst: exit %d, %s %s" % (tag, rc, rfst, err[-600:])):
            m = re.search(r"holds cycles (\d+)\.\.(\d+)", err)
            f2v = shutil.which("fst2vcd")
            if check(m is not None, "%s: no window in %r" % (tag, err[-400:])) and f2v:
                vcd = subprocess.run([f2v, rfst], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
                times = [int(t[1:]) for t in vcd.split("\n") if t.startswith("#")]
                span = (int(m.group(2)) - int(m.group(1))) * 1000 + 500
                check("1ps" in vcd and times and max(times) <= span and "acc_q" in vcd,
                      "%s: RTL FST times %s..%s, window %d ps" % (tag, times[:1], times[-1:], span))
                print("%s: RTL FST %d time steps in the %s window" % (tag, len(times), layer))
    if FAIL:
        print("%d failure(s)" % len(FAIL))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
