#!/usr/bin/python3
"""The Python bindings (scripts/qsim, docs/api.md) against independent references:

- every layer's output equals the NumPy reference evaluator (scripts/qsim_qbin.py evaluate), batch and
  both engines;
- the report dict equals what `qsim run --json` writes for the same network, configuration and input
  (apart from wall time and command line);
- wrong types are TypeError/ValueError, library failures QsimError with qsim's message, never a crash;
- a library of another API version, or no libqsim at all, is refused with a message.

usage: test_python_api.py QSIM_BINARY SOURCE_DIR"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

QSIM, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import qsim  # noqa: E402
import qsim_qbin as Q  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def raises(exc, fn, what, msg=None):
    try:
        fn()
    except exc as e:
        if msg is not None:
            check(msg in str(e), "%s: message %r lacks %r" % (what, str(e), msg))
        return
    except Exception as e:  # noqa: BLE001
        check(False, "%s: raised %s (%s), wanted %s" % (what, type(e).__name__, e, exc.__name__))
        return
    check(False, "%s: no exception, wanted %s" % (what, exc.__name__))


ARCH = os.path.join(ROOT, "models", "arch", "dlac.cfg")
NETS = [os.path.join(ROOT, "models", "nets", n) for n in ("tiny.qbin", "digits_w2a4.qbin")]
rng = np.random.default_rng(20261207)


def random_input(net, n):
    lo, hi = Q.int_range(net.input_bits, net.input_signed)
    return rng.integers(lo, hi + 1, size=(n,) + net.input_shape, dtype=np.int64)


# 1. outputs against the reference evaluator (acc_bits 32: the reference's wrap width)
for path in NETS:
    net = qsim.load(path)
    ref_net = Q.read(path)
    x = random_input(net, 3)
    for engine in ("fast", "detailed"):
        rep = net.run(ARCH, set={"array.acc_bits": 32}, inputs=x, engine=engine, keep_layer_outputs=True)
        check(rep["outputs"].shape == (3,) + net.layer(net.output)["out_shape"], "outputs shape")
        for b in range(3):
            ref = Q.evaluate(ref_net, x[b], acc_bits=32)
            check(np.array_equal(rep["outputs"][b], ref[ref_net.output]),
                  "%s/%s inference %d: output differs from the NumPy reference" % (os.path.basename(path), engine, b))
        for i, out in enumerate(rep["layer_outputs"]):
            check(np.array_equal(out, ref[i]), "%s/%s layer %d differs from the reference" % (path, engine, i))
        check(rep["inferences"] == 3 and rep["engine"] == engine, "report header")

# 2. the report dict is `qsim run --json`'s
tmp = tempfile.mkdtemp(prefix="qsim_pyapi_")
net = qsim.load(NETS[1])
x = random_input(net, 2)
np.save(os.path.join(tmp, "x.npy"), x.astype(np.int32))
for sets in ({}, {"array.rows": 8, "array.cols": 4, "array.zero_skip": "weights"}, {"array.dataflow": "ws"}):
    jpath = os.path.join(tmp, "r.json")
    cmd = [QSIM, "run", "--arch", ARCH, NETS[1], "--input", os.path.join(tmp, "x.npy"), "-q", "--json", jpath]
    for k, v in sets.items():
        cmd += ["--set", "%s=%s" % (k, v)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "qsim run %s: %s" % (sets, p.stderr))
    cli = json.load(open(jpath))
    api = net.run(ARCH, set=sets, inputs=x)
    for d in (cli, api):
        d.pop("wall_seconds", None)
        d.pop("command_line", None)
    outs = api.pop("outputs")
    check(api == cli, "report for %s differs from qsim run --json: %s" % (
        sets, [k for k in set(api) | set(cli) if api.get(k) != cli.get(k)]))
    check(api["predictions"] == [int(np.argmax(o)) for o in outs.reshape(len(outs), -1)], "predictions")

# the effective configuration holds every key after the overrides
rep = net.run(ARCH, set={"array.rows": 8, "buffer.weight.banks": 2})
cfg = rep["effective_config"]
check(cfg["array.rows"] == 8 and cfg["buffer.weight.banks"] == 2 and cfg["array.cols"] == 16,
      "effective_config after overrides: %r" % {k: cfg.get(k) for k in ("array.rows", "array.cols")})
# every key the preset sets is there with the preset's value (read here with configparser, not qsim)
import configparser  # noqa: E402
ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
ini.read(ARCH)
for sec in ini.sections():
    for k, v in ini[sec].items():
        name = "%s.%s" % (sec, k)
        want = {"array.rows": 8, "buffer.weight.banks": 2}.get(name, v)
        got = cfg.get(name)
        if name == "tech.table":
            check(os.path.realpath(got) == os.path.realpath(os.path.join(os.path.dirname(ARCH), v)), "tech.table")
            continue
        check(got is not None and str(got) == str(want) or (isinstance(got, (int, float)) and float(got) == float(want)),
              "effective_config %s = %r, the preset says %r" % (name, got, want))
sb = rep["total"]["sram_bytes"]
for b in ("ifmap", "weight", "accum"):
    check(sb[b]["read"] == sum(L["sram_bytes"][b]["read"] for L in rep["layers"]), "sram %s reads sum" % b)
check(rep["source_revision"] == qsim.source_revision(), "source revision")

# a configuration from text; bytes
c = qsim.Config(text=open(ARCH).read(), where=ARCH, set={"array.rows": 4})
check(c.get("array.rows") == "4", "Config set/get")
raises(qsim.QsimError, lambda: c.set("array.rows=0"), "bad override", "array.rows")
check(c.get("array.rows") == "4", "a refused override changes nothing")
nb = qsim.load_bytes(open(NETS[0], "rb").read(), "mem.qbin")
net_name0 = nb.name
check(nb.run(c)["total"]["cycles"] == qsim.load(NETS[0]).run(ARCH, set=["array.rows=4"])["total"]["cycles"],
      "Config object == path + set")
calls = []
r = nb.run(ARCH, dma_hook=lambda w, a, n, s: calls.append(n), trace=os.path.join(tmp, "t.vcd"))
check(sum(calls) == r["total"]["dram_bytes"], "DMA hook bytes")
check(os.path.getsize(os.path.join(tmp, "t.vcd")) > 0, "trace written")

# the package's format and DSE modules (the loose scripts, as package members)
from qsim import qbin as QB  # noqa: E402
from qsim import dse as QD  # noqa: E402
check(QB.evaluate is Q.evaluate and QB.read(NETS[0]).name == net_name0, "qsim.qbin is qsim_qbin")
check(callable(QD.pareto_front) and QD.Spec is not None, "qsim.dse")

# 3. bad input: exceptions with messages, no crash
raises(TypeError, lambda: qsim.load(3), "load(int)")
raises(TypeError, lambda: qsim.load(None), "load(None)")
raises(qsim.QsimError, lambda: qsim.load(os.path.join(tmp, "none.qbin")), "missing file", "none.qbin")
raises(qsim.QsimError, lambda: qsim.load_bytes(b"QBIN" + b"\0" * 20, "junk"), "junk bytes", "junk")
raises(TypeError, lambda: qsim.load_bytes("text"), "load_bytes(str)")
raises(TypeError, lambda: net.run(None), "run(None)")
raises(TypeError, lambda: net.run(ARCH, set=5), "set=int")
raises(TypeError, lambda: net.run(ARCH, set={1: 2}), "set key int")
raises(TypeError, lambda: net.run(ARCH, set={"array.rows": [8]}), "set value list")
raises(qsim.QsimError, lambda: net.run(ARCH, set={"array.rowz": 8}), "unknown key", "rowz")
raises(qsim.QsimError, lambda: net.run(ARCH, set={"array.rows": 0}), "bad value", "array.rows")
raises(TypeError, lambda: net.run(ARCH, inputs="abc"), "inputs str")
raises(TypeError, lambda: net.run(ARCH, inputs=np.zeros(net.input_shape, dtype=np.float32)), "float inputs")
raises(ValueError, lambda: net.run(ARCH, inputs=np.zeros((2, 3), dtype=np.int32)), "input shape")
raises(ValueError, lambda: net.run(ARCH, inputs=np.zeros((0,) + net.input_shape, dtype=np.int32)), "no inference")
raises(qsim.QsimError, lambda: net.run(ARCH, inputs=np.full(net.input_shape, 1 << 20, dtype=np.int32)),
       "input out of range", "inference 0")
raises(ValueError, lambda: net.run(ARCH, engine="slow"), "engine name")
raises(TypeError, lambda: net.run(ARCH, engine=1), "engine int")
raises(TypeError, lambda: net.run(ARCH, dma_hook=5), "hook not callable")
raises(TypeError, lambda: net.run(ARCH, trace=os.path.join(tmp, "t.vcd"), trace_window=(5,)), "trace window")
raises(TypeError, lambda: net.layer("1"), "layer index str")
raises(qsim.QsimError, lambda: net.layer(10 ** 6), "layer out of range", "out of range")
raises(qsim.QsimError, lambda: net.layer(-1), "layer -1", "out of range")
raises(TypeError, lambda: qsim.check_version("1"), "check_version(str)")
raises(qsim.QsimError, lambda: qsim.check_version(qsim.API_VERSION + 1), "other API version", "built for version")
check(qsim.check_version(qsim.API_VERSION) is None, "own API version")

# 4. a library of another API version, and no libqsim at all, in fresh interpreters
fake_c = os.path.join(tmp, "fake.c")
with open(fake_c, "w") as f:
    f.write("int qsim_api_version(void) { return %d; }\n" % (qsim.API_VERSION + 1))
fake_so = os.path.join(tmp, "libfake.so")
if subprocess.run(["cc", "-shared", "-fPIC", "-o", fake_so, fake_c]).returncode == 0:
    probe = "import qsim\ntry:\n    qsim.version()\nexcept qsim.QsimError as e:\n    print('ERR', e.status_name, e)\n"
    for lib, want in ((fake_so, "implements qsim API version %d" % (qsim.API_VERSION + 1)),
                      ("/nonexistent/libqsim.so.1", "not found")):
        env = dict(os.environ, QSIM_LIBRARY=lib, PYTHONPATH=os.path.join(ROOT, "scripts"))
        p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and "ERR" in p.stdout and want in p.stdout,
              "QSIM_LIBRARY=%s: %r %r" % (lib, p.stdout, p.stderr))
else:
    check(False, "no C compiler for the wrong-version library")

# 4b. jobs: threads sharing a batch give the same report (host time and command line aside) and outputs
xb = random_input(net, 5)
r1 = net.run(ARCH, inputs=xb, jobs=1)
r3 = net.run(ARCH, inputs=xb, jobs=3)
for r in (r1, r3):
    r.pop("wall_seconds", None)
check(np.array_equal(r1.pop("outputs"), r3.pop("outputs")) and r1 == r3, "jobs=3 report equals jobs=1")
raises(TypeError, lambda: net.run(ARCH, jobs="2"), "jobs str")
raises(TypeError, lambda: net.run(ARCH, jobs=True), "jobs bool")
raises(ValueError, lambda: net.run(ARCH, jobs=0), "jobs 0")

# 5. the package holds the Python tools; the old scripts/ paths are thin wrappers: imported they are the
#    package's very modules (one copy, so classes compare equal), run they are its command lines
import importlib  # noqa: E402
for old, new in (("qsim_qbin", "qsim.qbin"), ("qsim_array_ref", "qsim.array_ref"), ("fmnist_data", "qsim.fmnist_data"),
                 ("xfmr_zoo", "qsim.xfmr_zoo"), ("model_zoo", "qsim.zoo"), ("dse_lib", "qsim.dse"),
                 ("dse_lib.run", "qsim.dse.run"), ("dse_lib.pareto", "qsim.dse.pareto")):
    check(importlib.import_module(old) is importlib.import_module(new), "import %s is %s" % (old, new))
check(Q.Net is importlib.import_module("qsim.qbin").Net, "one Net class")
demo = os.path.join(ROOT, "models", "nets", "demo_w2a4.qbin")
env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "scripts"))
for cmd in ([os.path.join(ROOT, "scripts", "qsim_qbin.py"), "info", demo], [sys.executable, "-m", "qsim.qbin", "info", demo]):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    check(p.returncode == 0 and p.stdout.startswith("net 'demo_w2a4': 11 layers"),
          "%s: %r %r" % (" ".join(cmd[-3:]), p.stdout[:200], p.stderr[-300:]))
for script in ("model_zoo.py", "xfmr_zoo.py", "fmnist_data.py", "onnx_import.py"):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "usage:" in p.stdout, "scripts/%s --help: %r" % (script, p.stderr[-300:]))

# decoding with a KV cache (docs/decode.md): Network.decode is `qsim run --decode`, and the NumPy reference's
# own decode (qbin.decode) gives the same outputs
kv_path = os.path.join(ROOT, "models", "nets", "decoder_kv.qbin")
kv = qsim.load(kv_path)
kv_ref = Q.read(kv_path)
prompt = random_input(kv, 1)[0]
steps_in = np.random.default_rng(5).integers(-128, 128, size=(3, 16))
for engine in ("fast", "detailed"):
    d = kv.decode(ARCH, 3, prompt=prompt, step_inputs=steps_in, engine=engine)
    _, ref_steps = Q.decode(kv_ref, prompt, 3, step_inputs=list(steps_in))
    check(all(np.array_equal(d["step_outputs"][k], ref_steps[k].ravel()) for k in range(3)),
          "decode/%s: step outputs differ from qbin.decode" % engine)
    check(d["prompt_tokens"] == 8 and d["decode_steps"] == 3 and len(d["steps"]) == 3, "decode report header")
np.save(os.path.join(tmp, "p.npy"), prompt.astype(np.int32))
jpath = os.path.join(tmp, "d.json")
p = subprocess.run([QSIM, "run", "--arch", ARCH, kv_path, "--input", os.path.join(tmp, "p.npy"), "--decode", "2",
                    "-q", "--json", jpath], capture_output=True, text=True)
check(p.returncode == 0, "qsim run --decode: %s" % p.stderr)
api = kv.decode(ARCH, 2, prompt=prompt)
for k in ("prefill_output", "step_outputs"):
    api.pop(k)
cli = json.load(open(jpath))["decode_run"]
api.pop("net"), cli.pop("net"), api.pop("config"), cli.pop("config")
check(api == cli, "decode report differs from qsim run --decode --json: %s"
      % [k for k in set(api) | set(cli) if api.get(k) != cli.get(k)])
raises(qsim.QsimError, lambda: kv.decode(ARCH, 25), "decode of 25 steps after 8 into caches of 32", "a KV cache longer than its maximum")

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("python api: all checks passed")
