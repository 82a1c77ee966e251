#!/usr/bin/python3
"""The value cache (docs/api.md, "Re-running a network across configurations") never changes an answer:
a sweep of configurations (array shapes, dataflows, zero-skip modes and lockstep groups, lookahead,
accumulator widths, wrap and saturate, two inputs, a two-thread batch) run in one process on one loaded
network with the cache, and every point again on a fresh network without it, gives byte-identical JSON
reports (wall time taken out) and identical layer outputs. The test also checks that the cache served
(hits, zero bits built), that some points overflow their accumulator (so that they must not take the
cached exact values) and that the C calls refuse bad arguments through Python.

usage: test_value_cache.py SOURCE_DIR"""
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import qsim  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


# the report's JSON text as the library wrote it: Network.run parses it with qsim's json.loads
_texts = []
_loads = qsim.json.loads


def _capture(text, *a, **k):
    _texts.append(text)
    return _loads(text, *a, **k)


qsim.json.loads = _capture
WALL = re.compile(r'"wall_seconds":\s*[-0-9.eE+]+')


def run(net, arch, sets, inputs=None, jobs=1):
    del _texts[:]
    rep = net.run(arch, set=sets, inputs=inputs, keep_layer_outputs=True, jobs=jobs)
    text = WALL.sub('"wall_seconds": 0', _texts[-1])
    outs = b"".join(np.ascontiguousarray(o).tobytes() for o in rep.get("layer_outputs", []))
    return text, outs, rep


DLAC = os.path.join(ROOT, "models", "arch", "dlac.cfg")
EDGE = os.path.join(ROOT, "models", "arch", "edge.cfg")


def points():
    """(arch, overrides): shapes x dataflows x skip modes, then accumulator widths and overflow modes, some
    of which overflow (8-bit first layers on 16-bit accumulators) and some that the compiler proves safe."""
    pts = []
    for rows, cols in ((4, 4), (8, 16), (16, 8)):
        for df in ("os", "ws", "is"):
            for zs in ("none", "gate", "weights", "activations", "both"):
                pts.append((DLAC, {"array.rows": rows, "array.cols": cols, "array.dataflow": df,
                                   "array.zero_skip": zs}))
    for acc in (16, 18, 20, 24):
        for ovf in ("wrap", "saturate"):
            for df in ("os", "ws"):
                pts.append((DLAC, {"array.acc_bits": acc, "array.overflow": ovf, "array.dataflow": df,
                                   "array.rows": 8, "array.cols": 8}))
    pts.append((DLAC, {"array.skip_group": 1, "array.rows": 8}))
    pts.append((DLAC, {"array.skip_group": 2, "array.rows": 8, "array.dataflow": "ws"}))
    pts.append((DLAC, {"array.lookahead": 2, "array.zero_skip": "weights"}))
    pts.append((EDGE, {}))
    pts.append((EDGE, {"array.dataflow": "ws", "array.zero_skip": "both"}))
    return pts


def sweep(path):
    cached = qsim.load(path)          # one network, the cache on (the default), every point in turn
    rng = np.random.default_rng(7)
    lo, hi = (-(1 << (cached.input_bits - 1)), (1 << (cached.input_bits - 1)) - 1) if cached.input_signed \
        else (0, (1 << cached.input_bits) - 1)
    other = rng.integers(lo, hi + 1, size=cached.input_shape)
    batch = rng.integers(lo, hi + 1, size=(3,) + cached.input_shape)
    pts = points()
    n = same = overflowed = 0
    for i, (arch, sets) in enumerate(pts):
        # the network's own input, then another one for a stretch of points, then back (miss, replace)
        x = other if i % 7 == 3 else None
        jobs = 2 if i % 11 == 5 else 1
        xi = batch if jobs == 2 else x
        try:
            text_c, outs_c, rep = run(cached, arch, sets, xi, jobs)
        except qsim.QsimError as e:      # a configuration the compiler refuses: refused without the cache too
            fresh = qsim.load(path)
            fresh.set_cache(False)
            try:
                run(fresh, arch, sets, xi, jobs)
                check(False, "%s %s: refused with the cache (%s), not without" % (os.path.basename(path), sets, e))
            except qsim.QsimError:
                pass
            continue
        fresh = qsim.load(path)
        fresh.set_cache(False)
        text_f, outs_f, _ = run(fresh, arch, sets, xi, jobs)
        n += 1
        overflowed += any((L.get("acc_overflows") or 0) > 0 for L in rep.get("layers", []))
        if text_c == text_f and outs_c == outs_f:
            same += 1
        else:
            a, b = json.loads(text_c), json.loads(text_f)
            diff = [k for k in sorted(set(a.get("total", {})) | set(b.get("total", {})))
                    if a.get("total", {}).get(k) != b.get("total", {}).get(k)]
            check(False, "%s point %d %s: the cached run differs (%s; totals %s)" % (
                os.path.basename(path), i, sets, "outputs" if outs_c != outs_f else "report", diff[:6]))
    info = cached.cache_info()
    print("%s: %d points, %d identical, %d with accumulator overflows; cache %s" % (
        os.path.basename(path), n, same, overflowed, info))
    return n, overflowed, info


def main():
    total = ovf = 0
    # fmnist_w4a4's first layer may overflow 24-bit accumulators (dlac.cfg): most of its points must not
    # touch the cache at all
    for name in ("digits_w2a4.qbin", "demo_w2a4.qbin", "fmnist_w4a4.qbin", "tiny.qbin"):
        n, o, info = sweep(os.path.join(ROOT, "models", "nets", name))
        total += n
        ovf += o
        if name != "fmnist_w4a4.qbin":
            check(info["enabled"] and info["hits"] > 0 and info["stores"] > 0,
                  "%s: the cache never served: %s" % (name, info))
            check(info["bytes"] > info["need_bytes"], "%s: no zero bits were kept: %s" % (name, info))
    check(total >= 60, "only %d points ran" % total)
    check(ovf > 0, "no point overflowed its accumulator: the test would not see a cache keyed too loosely")
    # the calls' bad arguments: exceptions with a message, never a crash
    net = qsim.load(os.path.join(ROOT, "models", "nets", "tiny.qbin"))
    for bad in ((1,), (True, -1), (True, "x")):
        try:
            net.set_cache(*bad)
            check(False, "set_cache%r accepted" % (bad,))
        except TypeError:
            pass
    net.set_cache(True, 1)   # a bound no network fits: runs stay correct, nothing is kept
    net.run(DLAC)
    info = net.cache_info()
    check(info["bytes"] == 0 and info["stores"] == 0, "a 1-byte cache kept something: %s" % info)
    print("%d failure(s)" % len(failures) if failures else "value cache: every report identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
