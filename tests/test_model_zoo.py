#!/usr/bin/python3
"""The model zoo (scripts/model_zoo.py, docs/model_zoo.md) against torchvision and qsim.

For ResNet-18, ResNet-50, VGG-16 and MobileNetV2 at small resolutions and several
precisions, built through the command line into a temporary cache:
- structure: every torchvision Conv2d / Linear has a .qbin layer of the same name with the
  same weight shape, groups (MobileNetV2's depthwise convs), stride, padding, dilation; no
  other conv/fc layers; the MAC count equals a count taken with forward hooks on the
  torchvision model at the same resolution (and qsim's report agrees);
- quantization: weights inside the LSQ range of their bits, stored in the right dtype; first
  conv / classifier at --first-bits / --last-bits; batch norms folded (int32 bias, one
  multiplier per channel), ReLU6 as the requant clamp; 2-bit layers have a realistic
  fraction of zeros;
- qsim (dlac preset with acc_bits=32, overflow=wrap, max_act_bits=8) dumps every layer's
  output, which must equal qsim_qbin's NumPy reference bit for bit;
and the cache (reuse, --force, a stale stamp), determinism, the refusal of an untranslatable
module by name, and make_nets.py --resnet18 delegating to the zoo.

usage: test_model_zoo.py QSIM SOURCE_DIR      (exit 77 = skipped: torch/torchvision missing)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torchvision  # noqa: F401
except ImportError as e:
    print("skipped: %s (Debian: python3-numpy python3-torch python3-torchvision)" % e)
    sys.exit(77)

# (net, wbits, abits, resolution, extra options); MobileNetV2 W2A4 also runs the detailed engine
CASES = [
    ("resnet18", 2, 4, 32, []),
    ("resnet50", 4, 4, 32, []),
    ("vgg16", 2, 4, 32, []),
    ("mobilenet_v2", 2, 4, 32, []),
    ("mobilenet_v2", 8, 8, 64, ["--first-bits", "4", "--last-bits", "6"]),
]
QSIM_SETS = ["array.max_act_bits=8", "array.acc_bits=32", "array.overflow=wrap"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def opt(extra, name, default):
    return int(extra[extra.index(name) + 1]) if name in extra else default


def torch_counts(net_name, res):
    """Conv2d / Linear modules of the torchvision model and its MACs from forward hooks."""
    m = getattr(torchvision.models, net_name)(weights=None).eval()
    mods = {n: x for n, x in m.named_modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear))}
    macs = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            macs[0] += out[0].numel() * (mod.in_channels // mod.groups) * \
                mod.kernel_size[0] * mod.kernel_size[1]
        else:
            macs[0] += mod.in_features * mod.out_features
    for x in mods.values():
        x.register_forward_hook(hook)
    with torch.no_grad():
        m(torch.zeros(1, 3, res, res))
    info = {n: dict(kind="conv" if isinstance(x, torch.nn.Conv2d) else "fc",
                    shape=tuple(x.weight.shape),
                    groups=getattr(x, "groups", 1), stride=getattr(x, "stride", None),
                    padding=getattr(x, "padding", None), dilation=getattr(x, "dilation", None))
            for n, x in mods.items()}
    return info, macs[0]


def check_structure(Q, net, st, case):
    name, wb, ab, res, extra = case
    tag = "%s W%dA%d r%d" % (name, wb, ab, res)
    want, hook_macs = torch_counts(name, res)
    convs = {l.name: (i, l) for i, l in enumerate(net.layers) if l.kind == Q.L_CONV}
    fcs = {l.name: (i, l) for i, l in enumerate(net.layers) if l.kind == Q.L_FC}
    check(len(convs) == sum(v["kind"] == "conv" for v in want.values()),
          "%s: %d conv layers, torchvision has %d" % (tag, len(convs), sum(v["kind"] == "conv" for v in want.values())))
    check(len(fcs) == sum(v["kind"] == "fc" for v in want.values()),
          "%s: %d fc layers, torchvision has %d" % (tag, len(fcs), sum(v["kind"] == "fc" for v in want.values())))
    first_bits, last_bits = opt(extra, "--first-bits", 8), opt(extra, "--last-bits", 8)
    first = next(n for n, (i, l) in convs.items() if l.inputs == [0])
    last = net.layers[net.output].name
    depthwise = 0
    for mname, v in want.items():
        layers = convs if v["kind"] == "conv" else fcs
        if not check(mname in layers, "%s: no %s layer named %s" % (tag, v["kind"], mname)):
            continue
        i, l = layers[mname]
        w = net.tensors[l.weight]
        check(w.shape == v["shape"], "%s: %s weight %s, torchvision %s" % (tag, mname, w.shape, v["shape"]))
        if v["kind"] == "conv":
            check((l.groups, (l.stride_h, l.stride_w), (l.pad_t, l.pad_l), (l.dil_h, l.dil_w)) ==
                  (v["groups"], v["stride"], v["padding"], v["dilation"]),
                  "%s: %s groups/stride/pad/dilation differ" % (tag, mname))
            depthwise += v["groups"] > 1 and v["groups"] == v["shape"][0]
        bits = first_bits if mname == first else last_bits if mname == last else wb
        store = 1 if bits == 1 else 2 if bits == 2 else 4 if bits <= 4 else 8
        qp = 1 if bits == 1 else 2 ** (bits - 1) - 1
        check(Q.DTYPE_BITS[w.dtype] == store and int(np.abs(w.data).max()) <= qp,
              "%s: %s weights should be %d-bit (|q| <= %d in a %d-bit dtype), got %d-bit dtype, max %d" % (
                  tag, mname, bits, qp, store, Q.DTYPE_BITS[w.dtype], int(np.abs(w.data).max())))
        check(st["layers"][i][4] == bits, "%s: stamp says %s has %s-bit weights, want %d" %
              (tag, mname, st["layers"][i][4], bits))
        check(l.bias >= 0 and net.tensors[l.bias].dtype == Q.DT_INT32, "%s: %s has no int32 bias" % (tag, mname))
        per_channel = v["kind"] == "conv" and name != "vgg16"      # folded batch norm
        check(len(l.rq_mult) == (l.out_c if per_channel else 1),
              "%s: %s has %d multipliers" % (tag, mname, len(l.rq_mult)))
    if name == "mobilenet_v2":
        check(depthwise == 17, "%s: %d depthwise convs, want 17" % (tag, depthwise))
        r6 = [l for l in net.layers if l.act == Q.ACT_RELU6]
        check(len(r6) == 35, "%s: %d ReLU6 layers, want 35" % (tag, len(r6)))
        check(all(l.clamp_lo == 0 and l.clamp_hi == 2 ** ab - 1 and l.out_scale * l.clamp_hi <= 6.0 * (1 + 1e-6)
                  for l in r6), "%s: ReLU6 clamps are not [0, 2^abits-1] with 6 at or beyond the top" % tag)
    macs = sum(net.macs(i) for i in range(len(net.layers)))
    check(macs == hook_macs == st["macs"], "%s: MACs %d, torchvision hooks %d, stamp %d" %
          (tag, macs, hook_macs, st["macs"]))
    if wb == 2:
        n = z = 0
        for mname in want:
            if mname in (first, last):
                continue
            i, l = (convs if mname in convs else fcs)[mname]
            d = net.tensors[l.weight].data
            n, z = n + d.size, z + int((d == 0).sum())
            if d.size >= 4096:
                check(0.45 <= (d == 0).mean() <= 0.70, "%s: %s has %.1f%% zero weights" % (tag, mname, 100 * (d == 0).mean()))
        check(0.50 <= z / n <= 0.65, "%s: %.1f%% zeros over the 2-bit layers (want 50..65%%)" % (tag, 100 * z / n))
        check(abs(st["zero_fraction_2bit"] - z / n) < 1e-9, "%s: the stamp's zero fraction" % tag)
    return macs


def run_qsim(Q, qsim, root, path, net, tmp, tag, engine="fast"):
    l0 = net.layers[0]
    rng = np.random.default_rng(12345)
    x = rng.integers(-128, 128, size=(l0.out_c, l0.out_h, l0.out_w)).astype(np.int32)
    tag += " " + engine
    xp, out, js = os.path.join(tmp, "x.npy"), os.path.join(tmp, "dump_" + tag.replace(" ", "_")), os.path.join(tmp, "r.json")
    np.save(xp, x)
    cmd = [qsim, "run", "--arch", os.path.join(root, "models", "arch", "dlac.cfg"), path, "--input", xp,
           "--dump-outputs", out, "--json", js, "-q", "--engine", engine]
    for s in QSIM_SETS:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    tq = time.perf_counter() - t0
    if not check(p.returncode == 0, "%s: qsim failed (%d): %s\n  %s" % (tag, p.returncode, p.stderr.strip(), " ".join(cmd))):
        return None
    t0 = time.perf_counter()
    ref = Q.evaluate(net, x)
    tr = time.perf_counter() - t0
    bad = 0
    for i, l in enumerate(net.layers):
        f = os.path.join(out, "%03d_%s.npy" % (i, l.name.replace("/", "_")))
        if not check(os.path.exists(f), "%s: no dump %s" % (tag, f)):
            bad += 1
            continue
        got, want = np.load(f), ref[i]
        if not check(got.shape == want.shape and np.array_equal(got, want),
                     "%s: layer %d '%s' (%s): qsim differs from the reference (%s values)" % (
                         tag, i, l.name, l.kind_name,
                         int((got != want).sum()) if got.shape == want.shape else "shape %s vs %s" % (got.shape, want.shape))):
            bad += 1
    with open(js) as f:
        rep = json.load(f)
    return bad, rep["total"]["macs"], rep["total"]["cycles"], tq, tr


def zoo(root, env, *args):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(root, "scripts", "model_zoo.py")] + list(args),
                       capture_output=True, text=True, env=env)
    return p, time.perf_counter() - t0


def main():
    qsim, root = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    sys.path.insert(0, os.path.join(root, "scripts"))
    import qsim_qbin as Q
    import model_zoo as Z
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, QSIM_CACHE_DIR=os.path.join(tmp, "cache"))
        for case in CASES:
            name, wb, ab, res, extra = case
            tag = "%s W%dA%d r%d" % (name, wb, ab, res)
            p, secs = zoo(root, env, "--net", name, "--wbits", str(wb), "--abits", str(ab),
                          "--resolution", str(res), "-q", *extra)
            if not check(p.returncode == 0, "%s: model_zoo.py failed: %s" % (tag, p.stderr.strip()[-3000:])):
                continue
            path = os.path.join(tmp, "cache", Z.stem(name, wb, ab, resolution=res,
                                                     first_bits=opt(extra, "--first-bits", 8),
                                                     last_bits=opt(extra, "--last-bits", 8)) + ".qbin")
            if not check(os.path.exists(path), "%s: %s not written (%s)" % (tag, path, p.stdout.strip())):
                continue
            st = Z.read_stamp(path)
            net = Q.read(path)
            macs = check_structure(Q, net, st, case)
            engines = ["fast", "detailed"] if (name, wb, res) == ("mobilenet_v2", 2, 32) else ["fast"]
            cycles = {}
            for engine in engines:
                r = run_qsim(Q, qsim, root, path, net, tmp, tag, engine)
                if r is None:
                    continue
                bad, qmacs, cycles[engine], tq, tr = r
                check(qmacs == macs, "%s: qsim reports %d MACs, the net has %d" % (tag, qmacs, macs))
                print("%-24s %-8s %3d layers %7.1f MMACs  build %5.1f s  qsim %4.1f s  reference %4.1f s  %s" % (
                    tag, engine, len(net.layers), macs / 1e6, secs, tq, tr,
                    "ok" if bad == 0 else "%d layers differ" % bad), flush=True)
            check(len(set(cycles.values())) <= 1, "%s: the engines' cycle counts differ: %s" % (tag, cycles))

        # the cache: reused, rebuilt identically with --force, rebuilt when its stamp is stale
        args = ["--net", "mobilenet_v2", "--wbits", "2", "--abits", "4", "--resolution", "32", "-q"]
        path = os.path.join(tmp, "cache", "mobilenet_v2_w2a4_r32.qbin")
        before = Z.read_stamp(path)
        p, secs = zoo(root, env, *args)
        check(p.returncode == 0 and "cached:" in p.stdout, "cache not reused: %s %s" % (p.stdout, p.stderr))
        p, _ = zoo(root, env, *args, "--force")
        after = Z.read_stamp(path)
        check(p.returncode == 0 and "wrote" in p.stdout and before and after and
              before["qbin_sha256"] == after["qbin_sha256"], "--force does not rebuild the same bytes")
        st = dict(after, seed=7)
        with open(Z.stamp_path(path), "w") as f:
            json.dump(st, f)
        p, _ = zoo(root, env, *args)
        check(p.returncode == 0 and "wrote" in p.stdout, "a stale stamp did not cause a rebuild")
        p, _ = zoo(root, env, *args, "--seed", "1", "-o", os.path.join(tmp, "s1.qbin"))
        check(p.returncode == 0 and Z.read_stamp(os.path.join(tmp, "s1.qbin"))["qbin_sha256"] != after["qbin_sha256"],
              "--seed 1 -o PATH: not written or identical to seed 0")
        print("cache: reuse %.1f s, --force identical, stale stamp rebuilt, --seed/-o ok" % secs, flush=True)

        # refusals by name, and bad options
        m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.GELU())
        try:
            Z.translate(m, "gelu", resolution=8)
            check(False, "a GELU was not refused")
        except Z.ZooError as e:
            check("GELU" in str(e) and "'2'" in str(e), "the refusal does not name the GELU module: %s" % e)
            print("refused: %s" % e)
        m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AvgPool2d(2))
        try:
            Z.translate(m, "avgpool", resolution=8)
            check(False, "an AvgPool2d was not refused")
        except Z.ZooError as e:
            check("AvgPool2d" in str(e), "the refusal does not name the AvgPool2d: %s" % e)
        p, _ = zoo(root, env, "--net", "resnet18", "--wbits", "9")
        check(p.returncode == 1 and "--wbits 9" in p.stderr, "--wbits 9 accepted: %s" % p.stderr)

        # make_nets.py --resnet18 PATH is the zoo's ResNet-18 at 224 (what bench and dse use)
        out = os.path.join(tmp, "mk", "r18.qbin")
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(root, "scripts", "make_nets.py"), "--no-small",
                            "--resnet18", out, "--wbits", "2", "--abits", "4"], capture_output=True, text=True, env=env)
        if check(p.returncode == 0, "make_nets.py --resnet18 failed: %s" % p.stderr[-2000:]):
            st = Z.read_stamp(out)
            net = Q.read(out)
            check(st["net"] == "resnet18" and st["resolution"] == 224 and net.layers[0].shape == (3, 224, 224),
                  "make_nets.py --resnet18 did not write the zoo's 224x224 ResNet-18")
            _, hook_macs = torch_counts("resnet18", 224)
            check(st["macs"] == hook_macs, "ResNet-18 at 224: %d MACs, torchvision %d" % (st["macs"], hook_macs))
            print("make_nets.py --resnet18: %d layers, %.3f GMACs, %.1f s" % (
                len(net.layers), st["macs"] / 1e9, time.perf_counter() - t0))
            # one name, one network: the zoo's resnet18_w2a4 is the same file, byte for byte
            out2 = os.path.join(tmp, "zoo2", "r18.qbin")
            p, _ = zoo(root, env, "--net", "resnet18", "--wbits", "2", "--abits", "4", "-o", out2)
            check(p.returncode == 0 and open(out, "rb").read() == open(out2, "rb").read(),
                  "make_nets.py --resnet18 and model_zoo.py --net resnet18 (W2A4) wrote different networks")
    print("%d failure(s), %.0f s" % (len(failures), time.perf_counter() - t_all))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
