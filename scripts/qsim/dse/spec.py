"""Sweep specifications (TOML) and their expansion into points (docs/dse.md)."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tomllib

from . import REPO, SCRIPTS, DseError

TOP_KEYS = {"name", "arch", "out", "engine", "timeout_s", "analysis", "description", "set", "parameters",
            "sample", "networks", "objectives", "pareto", "plot", "qsim_args"}
NET_KEYS = {"path", "name", "generate", "wbits", "abits", "set", "input", "labels", "npz", "npz_input",
            "npz_labels"}
ZOO_NETS = ("resnet18", "resnet50", "vgg16", "mobilenet_v2")   # scripts/model_zoo.py --net


def resolve(path: str) -> str:
    """Spec paths: absolute, or relative to the repository root."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO, path))


def display_path(path: str) -> str:
    """A path as stored in tables and keys: relative to the repo when inside it."""
    ap = os.path.abspath(path)
    rel = os.path.relpath(ap, REPO)
    return ap if rel.startswith("..") else rel


_hash_cache: dict = {}


def file_sha256(path: str) -> str:
    st = os.stat(path)
    ck = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if ck not in _hash_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _hash_cache[ck] = h.hexdigest()
    return _hash_cache[ck]


def set_value(v) -> str:
    """A parameter value as qsim's --set takes it."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "%.10g" % v
    return str(v)


def _num(v):
    """Round float noise of ranges (0.1 + 0.2) away; keep ints as ints."""
    if isinstance(v, float):
        return float("%.10g" % v)
    return v


def expand_values(name: str, spec) -> list:
    """A [parameters] entry -> list of values."""
    if isinstance(spec, list):
        if not spec:
            raise DseError("parameter %s: empty list" % name)
        return list(spec)
    if not isinstance(spec, dict):
        return [spec]
    if "values" in spec:
        return expand_values(name, spec["values"])
    if "start" not in spec or "stop" not in spec:
        raise DseError("parameter %s: a table needs values, or start and stop (with step or factor)" % name)
    start, stop = spec["start"], spec["stop"]
    out = []
    if "factor" in spec:
        f = spec["factor"]
        if f <= 1 or start <= 0:
            raise DseError("parameter %s: factor must be > 1 and start > 0" % name)
        v = start
        while v <= stop * (1 + 1e-12):
            out.append(_num(v))
            v = v * f
    else:
        step = spec.get("step", 1)
        if step == 0 or (stop - start) * step < 0:
            raise DseError("parameter %s: step %r does not lead from %r to %r" % (name, step, start, stop))
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        out = [_num(start + i * step) for i in range(n)]
    if len(out) > 100000:
        raise DseError("parameter %s: %d values (too many)" % (name, len(out)))
    return out


def draw_sample(name: str, spec, rng: random.Random):
    if not isinstance(spec, dict):
        raise DseError("sample parameter %s: expected {choices = [...]} or {range = [lo, hi]}" % name)
    if "choices" in spec:
        return rng.choice(list(spec["choices"]))
    if "range" in spec:
        lo, hi = spec["range"]
        integer = spec.get("integer", isinstance(lo, int) and isinstance(hi, int))
        if spec.get("log"):
            if lo <= 0:
                raise DseError("sample parameter %s: log range needs lo > 0" % name)
            v = math.exp(rng.uniform(math.log(lo), math.log(hi + (1 if integer else 0) - 1e-9)))
        else:
            v = rng.uniform(lo, hi + (1 if integer else 0) - (1e-9 if integer else 0))
        if integer:
            v = min(int(math.floor(v)), int(hi))
            if spec.get("multiple_of"):
                m = spec["multiple_of"]
                v = max(m, (v // m) * m)
            return v
        return float("%.6g" % v)
    raise DseError("sample parameter %s: expected choices or range" % name)


def split_names(key: str) -> list:
    return [k.strip() for k in key.split(",")]


def parse_objective(o) -> tuple:
    """'energy_pj:min' or ['energy_pj', 'min'] -> ('energy_pj', 'min')."""
    if isinstance(o, (list, tuple)) and len(o) == 2:
        col, sense = o
    elif isinstance(o, str):
        col, _, sense = o.rpartition(":")
        if not col:
            col, sense = sense, "min"
    else:
        raise DseError("objective %r: expected 'column:min' or 'column:max'" % (o,))
    sense = sense.strip().lower()
    if sense in ("minimize", "minimise"):
        sense = "min"
    if sense in ("maximize", "maximise"):
        sense = "max"
    if sense not in ("min", "max"):
        raise DseError("objective %r: direction must be min or max" % (o,))
    return col.strip(), sense


def qsim_version(qsim: str) -> str:
    try:
        p = subprocess.run([qsim, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise DseError("cannot run %s: %s" % (qsim, e))
    if p.returncode != 0:
        raise DseError("%s --version failed: %s" % (qsim, (p.stderr or p.stdout).strip()))
    # "qsim 0.1.0 (source REV)": the version alone (point keys must not change with every commit;
    # every row records the revision apart, in source_revision)
    return p.stdout.strip().replace("qsim ", "", 1).split(" (")[0]


def source_revision() -> str:
    """The git commit of the sources next to these scripts (the tree qsim is built from), with "+dirty" when
    a tracked file of the simulator differs from it; "unknown" outside a git checkout. Every result row
    records it, so a table says which code made it (qsim's version string changes far less often)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--",
                                "models", "compiler", "sim", "cli", "traces", "CMakeLists.txt"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def default_qsim() -> str:
    for c in (os.environ.get("QSIM"), os.path.join(REPO, "build", "cli", "qsim")):
        if c and os.path.exists(c):
            return c
    raise DseError("no qsim binary: build it (cmake --build build --target qsim) or pass --qsim PATH")


def net_cache_dir() -> str:
    return os.environ.get("QSIM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "qsim", "nets")


class Spec:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        try:
            with open(path, "rb") as f:
                self.d = tomllib.load(f)
        except OSError as e:
            raise DseError("%s: %s" % (path, e.strerror or e))
        except tomllib.TOMLDecodeError as e:
            raise DseError("%s: %s" % (path, e))
        d = self.d
        unknown = set(d) - TOP_KEYS
        if unknown:
            raise DseError("%s: unknown key(s) %s (known: %s)" % (path, ", ".join(sorted(unknown)),
                                                                   ", ".join(sorted(TOP_KEYS))))
        self.name = d.get("name") or os.path.splitext(os.path.basename(path))[0]
        if "arch" not in d:
            raise DseError("%s: 'arch' (base configuration, e.g. models/arch/dlac.cfg) is required" % path)
        self.arch = resolve(d["arch"])
        self.engine = d.get("engine", "fast")
        self.timeout_s = float(d.get("timeout_s", 3600))
        self.analysis = d.get("analysis")
        self.qsim_args = list(d.get("qsim_args", []))
        self.base_set = dict(d.get("set", {}))
        self.parameters = d.get("parameters", {})
        self.sample = d.get("sample")
        self.out = resolve(d["out"]) if "out" in d else None
        nets = d.get("networks")
        if not nets:
            raise DseError("%s: at least one [[networks]] entry is required" % path)
        self.networks = [self._network(n, i) for i, n in enumerate(nets)]
        names = [n["name"] for n in self.networks]
        if len(set(names)) != len(names):
            raise DseError("%s: two networks share the name %s: give them distinct 'name's" %
                           (path, sorted(n for n in names if names.count(n) > 1)[0]))
        self.paretos = []
        if "objectives" in d:
            self.paretos.append({"objectives": d["objectives"]})
        self.paretos += list(d.get("pareto", []))
        for i, p in enumerate(self.paretos):
            objs = [parse_objective(o) for o in p.get("objectives", [])]
            if not 2 <= len(objs) <= 3:
                raise DseError("%s: a Pareto front needs 2 or 3 objectives (got %d)" % (path, len(objs)))
            p["objectives"] = objs
            p.setdefault("name", "pareto" if i == 0 else "pareto%d" % (i + 1))
            p.setdefault("per", "network")
        self.plots = list(d.get("plot", []))
        self.param_names = []
        for k in self.parameters:
            self.param_names += split_names(k)
        if self.sample:
            for k in self.sample.get("parameters", {}):
                if k not in self.param_names:
                    self.param_names.append(k)

    def _network(self, n: dict, i: int) -> dict:
        if not isinstance(n, dict):
            raise DseError("%s: networks[%d] must be a table" % (self.path, i))
        unknown = set(n) - NET_KEYS
        if unknown:
            raise DseError("%s: networks[%d]: unknown key(s) %s" % (self.path, i, ", ".join(sorted(unknown))))
        net = dict(n)
        if "generate" in n:
            g = n["generate"]
            if g not in ZOO_NETS:
                raise DseError("%s: networks[%d]: generate must be one of %s (scripts/model_zoo.py)" %
                               (self.path, i, ", ".join(ZOO_NETS)))
            wb, ab = n.get("wbits", 2), n.get("abits", 4)
            for key, v, lo, hi in (("wbits", wb, 1, 8), ("abits", ab, 2, 8)):
                if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                    raise DseError("%s: networks[%d]: %s must be an integer %d..%d (got %r)" %
                                   (self.path, i, key, lo, hi, v))
            stem = "%s_w%da%d" % (g, wb, ab)
            net["path"] = resolve(n["path"]) if "path" in n else os.path.join(net_cache_dir(), stem + ".qbin")
            net.setdefault("name", stem)
            net["wbits"], net["abits"] = wb, ab
        elif "path" in n:
            net["path"] = resolve(n["path"])
            net.setdefault("name", os.path.splitext(os.path.basename(n["path"]))[0])
        else:
            raise DseError("%s: networks[%d] needs path or generate" % (self.path, i))
        net["set"] = dict(n.get("set", {}))
        for k in ("input", "labels", "npz"):
            if k in n:
                net[k] = resolve(n[k])
        return net

    # -- points ---------------------------------------------------------------------------------
    def grid(self) -> list:
        """Parameter assignments of the grid x the random samples (dicts name -> value)."""
        dims = []
        for key, spec in self.parameters.items():
            names = split_names(key)
            vals = expand_values(key, spec)
            if len(names) > 1:
                for v in vals:
                    if not isinstance(v, list) or len(v) != len(names):
                        raise DseError("parameter %s: each value must be a list of %d" % (key, len(names)))
                dims.append([dict(zip(names, v)) for v in vals])
            else:
                dims.append([{names[0]: v} for v in vals])
        combos = []
        for prod in itertools.product(*dims):
            a = {}
            for part in prod:
                a.update(part)
            combos.append(a)
        if self.sample:
            count = int(self.sample.get("count", 10))
            rng = random.Random(self.sample.get("seed", 0))
            sp = self.sample.get("parameters", {})
            if not sp:
                raise DseError("[sample] needs [sample.parameters]")
            draws = []
            for _ in range(count):
                draws.append({k: draw_sample(k, sp[k], rng) for k in sp})
            combos = [dict(c, **s) for c in combos for s in draws]
        return combos

    def prepare_networks(self, log=sys.stderr) -> None:
        """Generate zoo networks (model_zoo.py: it reuses a file whose stamp matches, so a net
        left by an older generator is rebuilt) and convert .npz inputs to .npy."""
        for net in self.networks:
            if "generate" in net:
                print("dse: network %s -> %s (model_zoo.py)" % (net["name"], net["path"]), file=log, flush=True)
                cmd = [sys.executable, os.path.join(SCRIPTS, "model_zoo.py"), "--net", net["generate"],
                       "--wbits", str(net["wbits"]), "--abits", str(net["abits"]), "-o", net["path"], "-q"]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0 and os.path.exists(net["path"]):
                    print("dse: warning: model_zoo.py could not check %s (%s); using the existing file" %
                          (net["path"], p.stderr.strip()[-500:]), file=log, flush=True)
                elif p.returncode != 0:
                    raise DseError("model_zoo.py failed for %s: %s" % (net["name"], p.stderr.strip()[-2000:]))
            if not os.path.exists(net["path"]):
                raise DseError("network %s: %s does not exist" % (net["name"], net["path"]))
            if "npz" in net:
                self._npz_to_npy(net)

    def _npz_to_npy(self, net: dict) -> None:
        try:
            import numpy as np
        except ImportError:
            raise DseError("numpy is missing: run scripts/setup-deps --tests (Debian package python3-numpy)")
        z = np.load(net["npz"])
        def pick(want, defaults):
            for k in ([want] if want else defaults):
                if k in z.files:
                    return k
            raise DseError("%s: no array named %s (has %s)" % (net["npz"], want or "/".join(defaults),
                                                               ", ".join(z.files)))
        kx = pick(net.get("npz_input"), ["x", "X", "images", "inputs", "input", "x_test"])
        ky = pick(net.get("npz_labels"), ["y", "Y", "labels", "label", "y_test"])
        h = file_sha256(net["npz"])[:12]
        d = os.path.join(net_cache_dir(), "npz")
        os.makedirs(d, exist_ok=True)
        for k, field in ((kx, "input"), (ky, "labels")):
            p = os.path.join(d, "%s_%s_%s.npy" % (os.path.basename(net["npz"]).rsplit(".", 1)[0], h, k))
            if not os.path.exists(p):
                tmp = p + ".%d.tmp.npy" % os.getpid()
                np.save(tmp, z[k])
                os.replace(tmp, p)
            net[field] = p

    def points(self, qsim: str, version: str) -> list:
        """Every point of the sweep: network x grid, with its key."""
        arch_sha = file_sha256(self.arch)
        pts = []
        combos = self.grid()
        for net in self.networks:
            net_sha = file_sha256(net["path"])
            in_sha = file_sha256(net["input"]) if net.get("input") else None
            lab_sha = file_sha256(net["labels"]) if net.get("labels") else None
            for params in combos:
                ov = dict(self.base_set)
                ov.update(net["set"])
                ov.update(params)
                overrides = ["%s=%s" % (k, set_value(v)) for k, v in ov.items()]
                ident = {"overrides": sorted(overrides), "network": display_path(net["path"]),
                         "net_sha256": net_sha, "qsim_version": version,
                         "arch": display_path(self.arch), "arch_sha256": arch_sha, "engine": self.engine,
                         "input_sha256": in_sha, "labels_sha256": lab_sha, "qsim_args": self.qsim_args}
                key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
                pts.append({
                    "key": key, "network": net["name"], "net_path": display_path(net["path"]),
                    "net_abs": net["path"], "arch": display_path(self.arch), "arch_abs": self.arch,
                    "params": params, "overrides": overrides, "qsim": os.path.abspath(qsim),
                    "qsim_version": version, "engine": self.engine, "input": net.get("input"),
                    "labels": net.get("labels"), "qsim_args": self.qsim_args, "timeout_s": self.timeout_s,
                    "net_bits": {k: net[k] for k in ("wbits", "abits") if k in net},
                })
        seen = set()
        uniq = []
        for p in pts:
            if p["key"] not in seen:
                seen.add(p["key"])
                uniq.append(p)
        return uniq
