"""qsim from Python: ctypes bindings to libqsim (the C API of include/qsim/qsim.h, docs/api.md).

Load a network once, run it on many configurations in one process:

    import qsim
    net = qsim.load("models/nets/demo_w2a4.qbin")
    rep = net.run("models/arch/dlac.cfg", set={"array.rows": 8, "array.cols": 8})
    rep["total"]["cycles"], rep["total"]["energy_pj"]      # the JSON report of `qsim run --json`, as a dict
    rep["outputs"]                                          # network outputs, NumPy int32 (N, C, H, W)

The package also holds qsim's Python tools as modules (docs/api.md, "Python"): qsim.qbin (the .qbin
reader/writer and NumPy reference evaluator), qsim.array_ref, qsim.zoo, qsim.xfmr_zoo, qsim.onnx_import,
qsim.export_qbin, qsim.qat_train, qsim.train_digits, qsim.train_fmnist, qsim.fmnist_data and qsim.dse;
importing this package loads none of them and no library.

Every failure of the library is a QsimError carrying qsim's message (and .status); an argument of the
wrong type is a TypeError raised before the library is called. The library is found, in this order, at
$QSIM_LIBRARY, next to an installed package (<prefix>/lib*/libqsim.so.N), in the source tree's build/
folder, then wherever the dynamic linker finds libqsim.so.N.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import os
import threading

import numpy as np

# the C API version these bindings are written for (QSIM_API_VERSION in qsim.h)
API_VERSION = 1

__all__ = ["load", "load_bytes", "Network", "Config", "QsimError", "version", "source_revision",
           "library_path", "check_version", "API_VERSION"]

_STATUS = ["ok", "io error", "format error", "config error", "unsupported", "does not fit", "out of memory",
           "bad argument", "run error", "version mismatch"]


class QsimError(Exception):
    """A qsim library call failed: .status (the qsim_status number), .status_name, .message."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.status_name = _STATUS[status] if 0 <= status < len(_STATUS) else "unknown status"
        self.message = message
        super().__init__(message)


class _Error(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 512)]


class _NetInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n_layers", ctypes.c_int32), ("output", ctypes.c_int32),
                ("in_c", ctypes.c_int32), ("in_h", ctypes.c_int32), ("in_w", ctypes.c_int32),
                ("in_bits", ctypes.c_int32), ("in_signed", ctypes.c_int32)]


class _LayerInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("kind", ctypes.c_char_p), ("out_c", ctypes.c_int32),
                ("out_h", ctypes.c_int32), ("out_w", ctypes.c_int32), ("macs", ctypes.c_int64)]


_DMA_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64)


class _RunOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("engine", ctypes.c_int), ("dma_hook", _DMA_HOOK),
                ("dma_user", ctypes.c_void_p), ("trace_format", ctypes.c_int), ("trace_path", ctypes.c_char_p),
                ("trace_from", ctypes.c_uint64), ("trace_to", ctypes.c_uint64),
                ("keep_layer_outputs", ctypes.c_int32), ("labels", ctypes.POINTER(ctypes.c_int32)),
                ("net_path", ctypes.c_char_p),
                ("config_path", ctypes.c_char_p), ("command_line", ctypes.c_char_p),
                # engine rtl (2) only; left at qsim_run_options_init's values here
                ("rtl_cache", ctypes.c_char_p), ("rtl_layer", ctypes.c_char_p),
                ("rtl_tile_from", ctypes.c_int64), ("rtl_tile_to", ctypes.c_int64),
                ("rtl_fst", ctypes.c_char_p), ("rtl_repro", ctypes.c_char_p)]


_PROGRESS_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64)


class _RunExtras(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("jobs", ctypes.c_int32), ("dump_dir", ctypes.c_char_p),
                ("dump_index", ctypes.c_int32), ("dram_trace_path", ctypes.c_char_p),
                ("trace_layer", ctypes.c_char_p), ("progress", _PROGRESS_HOOK), ("progress_user", ctypes.c_void_p),
                ("input_name", ctypes.c_char_p)]


class _DecodeOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("steps", ctypes.c_int32),
                ("step_inputs", ctypes.POINTER(ctypes.c_int32))]


_lib = None
_lib_path = None
_lock = threading.Lock()


def _candidates():
    env = os.environ.get("QSIM_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    so = "libqsim.so.%d" % API_VERSION
    # installed: <prefix>/share/qsim/qsim/__init__.py -> <prefix>/lib*/libqsim.so.N
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    for p in sorted(glob.glob(os.path.join(prefix, "lib*", so)) + glob.glob(os.path.join(prefix, "lib*", "*", so))):
        yield p
    # source tree: scripts/qsim -> <repo>/build*/api/libqsim.so.N
    repo = os.path.dirname(os.path.dirname(here))
    for p in sorted(glob.glob(os.path.join(repo, "build*", "api", so))):
        yield p
    found = ctypes.util.find_library("qsim")
    if found:
        yield found


def _declare(lib):
    c = ctypes
    P = c.c_void_p
    E = c.POINTER(_Error)
    sigs = {
        "qsim_version": ([], c.c_char_p), "qsim_source_revision": ([], c.c_char_p),
        "qsim_api_version": ([], c.c_int), "qsim_check_version": ([c.c_int, E], c.c_int),
        "qsim_net_load": ([c.c_char_p, c.POINTER(P), E], c.c_int),
        "qsim_net_from_bytes": ([c.c_char_p, c.c_size_t, c.c_char_p, c.POINTER(P), E], c.c_int),
        "qsim_net_free": ([P], None),
        "qsim_net_get_info": ([P, c.POINTER(_NetInfo), E], c.c_int),
        "qsim_net_get_layer": ([P, c.c_int32, c.POINTER(_LayerInfo), E], c.c_int),
        "qsim_config_load": ([c.c_char_p, c.POINTER(P), E], c.c_int),
        "qsim_config_parse": ([c.c_char_p, c.c_char_p, c.POINTER(P), E], c.c_int),
        "qsim_config_set": ([P, c.c_char_p, E], c.c_int),
        "qsim_config_copy": ([P, c.POINTER(P), E], c.c_int),
        "qsim_config_get": ([P, c.c_char_p, c.c_char_p, c.c_size_t, E], c.c_int),
        "qsim_config_free": ([P], None),
        "qsim_compile": ([P, P, c.POINTER(P), E], c.c_int),
        "qsim_program_free": ([P], None),
        "qsim_run_options_init": ([c.POINTER(_RunOptions)], None),
        "qsim_run": ([P, c.POINTER(c.c_int32), c.c_int64, c.c_int32, c.POINTER(_RunOptions), c.POINTER(P), E],
                     c.c_int),
        "qsim_run_extras_init": ([c.POINTER(_RunExtras)], None),
        "qsim_run_with": ([P, c.POINTER(c.c_int32), c.c_int64, c.c_int32, c.POINTER(_RunOptions),
                           c.POINTER(_RunExtras), c.POINTER(P), E], c.c_int),
        "qsim_report_free": ([P], None),
        "qsim_decode_options_init": ([c.POINTER(_DecodeOptions)], None),
        "qsim_decode": ([P, P, c.POINTER(c.c_int32), c.c_int64, c.POINTER(_DecodeOptions), c.POINTER(_RunOptions),
                         c.POINTER(P), E], c.c_int),
        "qsim_decode_report_free": ([P], None),
        "qsim_decode_report_json": ([P, c.POINTER(c.c_char_p), E], c.c_int),
        "qsim_decode_report_output": ([P, c.c_int32, c.POINTER(c.POINTER(c.c_int32)), c.POINTER(c.c_int64), E],
                                      c.c_int),
        "qsim_report_json": ([P, c.POINTER(c.c_char_p), E], c.c_int),
        "qsim_report_output": ([P, c.c_int32, c.POINTER(c.POINTER(c.c_int32)), c.POINTER(c.c_int64), E], c.c_int),
        "qsim_report_layer_output": ([P, c.c_int32, c.POINTER(c.POINTER(c.c_int32)), c.POINTER(c.c_int64), E],
                                     c.c_int),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = res


def _instrumented(path: str) -> bool:
    """True for a library built with AddressSanitizer (scripts/test --sanitize): loading one into an
    uninstrumented Python aborts the process instead of raising, so it is skipped. Its dynamic symbol
    names hold the sanitizer's entry point."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def _library():
    global _lib, _lib_path
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in _candidates():
            if _instrumented(path):
                tried.append("%s (built with AddressSanitizer: Python cannot load it)" % path)
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
                continue
            if not hasattr(lib, "qsim_api_version"):
                tried.append("%s (no qsim_api_version: not libqsim)" % path)
                continue
            lib.qsim_api_version.restype = ctypes.c_int
            have = lib.qsim_api_version()
            if have != API_VERSION:
                raise QsimError(9, "%s implements qsim API version %d, these bindings need version %d"
                                % (path, have, API_VERSION))
            _declare(lib)
            _lib, _lib_path = lib, path
            return lib
        raise QsimError(1, "libqsim.so.%d not found (build qsim, or set QSIM_LIBRARY); tried: %s"
                        % (API_VERSION, "; ".join(tried) or "nothing"))


def available() -> bool:
    """True when libqsim can be loaded (scripts/dse falls back to the qsim command otherwise)."""
    try:
        _library()
        return True
    except QsimError:
        return False


def library_path() -> str:
    _library()
    return _lib_path


def version() -> str:
    return _library().qsim_version().decode()


def source_revision() -> str:
    return _library().qsim_source_revision().decode()


def check_version(api_version: int) -> None:
    """QsimError unless the loaded library implements api_version."""
    if not isinstance(api_version, int) or isinstance(api_version, bool):
        raise TypeError("api_version must be an int, not %s" % type(api_version).__name__)
    err = _Error()
    _check(_library().qsim_check_version(api_version, ctypes.byref(err)), err)


def _check(status: int, err: _Error) -> None:
    if status != 0:
        raise QsimError(status, err.msg.decode(errors="replace"))


def _path(p, what: str) -> bytes:
    if isinstance(p, bytes):
        return p
    if isinstance(p, (str, os.PathLike)):
        return os.fsencode(p)
    raise TypeError("%s must be a path (str or os.PathLike), not %s" % (what, type(p).__name__))


def _set_value(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise TypeError("a --set value must be str, int, float or bool, not %s" % type(v).__name__)


def _assignments(set) -> list:
    if set is None:
        return []
    if isinstance(set, dict):
        out = []
        for k, v in set.items():
            if not isinstance(k, str):
                raise TypeError("set= keys must be str ('section.key'), not %s" % type(k).__name__)
            out.append("%s=%s" % (k, _set_value(v)))
        return out
    if isinstance(set, (list, tuple)):
        for a in set:
            if not isinstance(a, str):
                raise TypeError("set= items must be 'section.key=value' strings, not %s" % type(a).__name__)
        return list(set)
    raise TypeError("set= must be a dict or a list of 'section.key=value' strings, not %s" % type(set).__name__)


class Config:
    """An accelerator configuration (docs/config.md): a file or INI text, plus overrides."""

    def __init__(self, path=None, text=None, where=None, set=None):
        lib = _library()
        self._h = ctypes.c_void_p()
        err = _Error()
        if (path is None) == (text is None):
            raise TypeError("Config needs a path or a text (one of them)")
        if path is not None:
            p = _path(path, "path")
            _check(lib.qsim_config_load(p, ctypes.byref(self._h), ctypes.byref(err)), err)
            self.where = os.fsdecode(p)
        else:
            if not isinstance(text, str):
                raise TypeError("text must be str, not %s" % type(text).__name__)
            w = None if where is None else _path(where, "where")
            _check(lib.qsim_config_parse(text.encode(), w, ctypes.byref(self._h), ctypes.byref(err)), err)
            self.where = os.fsdecode(w) if w else "<config>"
        for a in _assignments(set):
            self.set(a)

    def set(self, assignment: str) -> None:
        """Override one key: 'section.key=value'; the configuration is unchanged if it is refused."""
        if not isinstance(assignment, str):
            raise TypeError("assignment must be a 'section.key=value' str, not %s" % type(assignment).__name__)
        err = _Error()
        _check(_library().qsim_config_set(self._h, assignment.encode(), ctypes.byref(err)), err)

    def get(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError("key must be a 'section.key' str, not %s" % type(key).__name__)
        buf = ctypes.create_string_buffer(512)
        err = _Error()
        _check(_library().qsim_config_get(self._h, key.encode(), buf, len(buf), ctypes.byref(err)), err)
        return buf.value.decode()

    def copy(self) -> "Config":
        c = Config.__new__(Config)
        c._h = ctypes.c_void_p()
        c.where = self.where
        err = _Error()
        _check(_library().qsim_config_copy(self._h, ctypes.byref(c._h), ctypes.byref(err)), err)
        return c

    def __del__(self):
        h = getattr(self, "_h", None)
        if h and _lib is not None:
            _lib.qsim_config_free(h)
            self._h = None


_ENGINES = {"fast": 0, "detailed": 1}


class Network:
    """A loaded .qbin network (docs/qbin.md). run() compiles it for a configuration and simulates it."""

    def __init__(self, handle, path: str):
        self._h = handle
        self.path = path
        info = _NetInfo()
        err = _Error()
        _check(_library().qsim_net_get_info(self._h, ctypes.byref(info), ctypes.byref(err)), err)
        self.name = info.name.decode()
        self.n_layers = info.n_layers
        self.output = info.output
        self.input_shape = (info.in_c, info.in_h, info.in_w)
        self.input_bits, self.input_signed = info.in_bits, bool(info.in_signed)
        self._configs = {}

    def layer(self, index: int) -> dict:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError("layer index must be an int, not %s" % type(index).__name__)
        li = _LayerInfo()
        err = _Error()
        _check(_library().qsim_net_get_layer(self._h, index, ctypes.byref(li), ctypes.byref(err)), err)
        return {"name": li.name.decode(), "kind": li.kind.decode(), "out_shape": (li.out_c, li.out_h, li.out_w),
                "macs": li.macs}

    def _config(self, arch, overrides) -> Config:
        if isinstance(arch, Config):
            base = arch
        else:
            key = _path(arch, "arch")
            base = self._configs.get(key)
            if base is None:    # a file is read once per network, then copied for each run
                base = self._configs[key] = Config(path=key)
        cfg = base.copy()
        for a in overrides:
            cfg.set(a)
        return cfg

    def run(self, arch, set=None, inputs=None, engine: str = "fast", keep_layer_outputs: bool = False,
            trace=None, trace_window=None, dma_hook=None, command_line=None, labels=None, jobs: int = 1) -> dict:
        """Compile for `arch` (a .cfg path or a Config) with overrides `set` ({"section.key": value} or
        ["section.key=value", ...]) and simulate. inputs: integers shaped (C,H,W) or (N,C,H,W); None runs
        qsim's deterministic input. Returns the JSON report (docs/report.md) as a dict, with "outputs"
        (NumPy int32, (N, C, H, W)) and, with keep_layer_outputs, "layer_outputs" (the last inference's,
        one array per layer). labels: one class per inference; the report gets top-1 "accuracy" and
        "labelled" (as `qsim run --labels`). trace: a .vcd or .fst path for a waveform of the first inference
        (trace_window=(from, to) in cycles); dma_hook(is_write, addr, bytes, start_cycle) is called for
        every DRAM transfer (from every thread when jobs > 1). jobs: threads sharing a batch's inferences
        (as `qsim run --jobs`); no figure depends on it."""
        lib = _library()
        overrides = _assignments(set)
        if not isinstance(engine, str) or engine not in _ENGINES:
            raise (TypeError if not isinstance(engine, str) else ValueError)(
                "engine must be 'fast' or 'detailed', not %r" % (engine,))
        per = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
        if inputs is None:
            x, n = None, 1
        else:
            if not isinstance(inputs, np.ndarray):
                if isinstance(inputs, (list, tuple)):
                    inputs = np.asarray(inputs)
                else:
                    raise TypeError("inputs must be a NumPy array of integers, not %s" % type(inputs).__name__)
            if inputs.dtype.kind not in "iub":
                raise TypeError("inputs must hold integers, not %s" % inputs.dtype)
            if inputs.ndim == 3:
                inputs = inputs[None]
            if inputs.ndim != 4 or tuple(inputs.shape[1:]) != self.input_shape:
                raise ValueError("inputs of shape %s; the input layer takes (%d,%d,%d) or (N,%d,%d,%d)"
                                 % ((tuple(inputs.shape),) + self.input_shape + self.input_shape))
            info = np.iinfo(np.int32)
            if inputs.size and (inputs.min() < info.min or inputs.max() > info.max):
                raise ValueError("inputs outside int32")
            x = np.ascontiguousarray(inputs, dtype=np.int32)
            n = int(x.shape[0])
            if n < 1:
                raise ValueError("inputs hold no inference")
        y = None
        if labels is not None:
            if x is None:
                raise ValueError("labels need inputs")
            if not isinstance(labels, np.ndarray):
                if not isinstance(labels, (list, tuple)):
                    raise TypeError("labels must be a NumPy array of integers, not %s" % type(labels).__name__)
                labels = np.asarray(labels)
            if labels.dtype.kind not in "iub":
                raise TypeError("labels must hold integers, not %s" % labels.dtype)
            if labels.size != n:
                raise ValueError("%d labels for %d inputs" % (labels.size, n))
            y = np.ascontiguousarray(labels.reshape(-1), dtype=np.int32)
        opts = _RunOptions()
        lib.qsim_run_options_init(ctypes.byref(opts))
        opts.engine = _ENGINES[engine]
        opts.keep_layer_outputs = 1 if keep_layer_outputs else 0
        opts.net_path = self.path.encode()
        if y is not None:
            opts.labels = y.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        if command_line is not None:
            if not isinstance(command_line, str):
                raise TypeError("command_line must be str")
            opts.command_line = command_line.encode()
        hook_ref = None
        if dma_hook is not None:
            if not callable(dma_hook):
                raise TypeError("dma_hook must be callable")
            hook_ref = _DMA_HOOK(lambda user, w, addr, nbytes, start: dma_hook(bool(w), addr, nbytes, start))
            opts.dma_hook = hook_ref
        if trace is not None:
            tp = _path(trace, "trace")
            opts.trace_path = tp
            opts.trace_format = 2 if tp.lower().endswith(b".vcd") else 1
            if trace_window is not None:
                if (not isinstance(trace_window, (tuple, list)) or len(trace_window) != 2
                        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in trace_window)):
                    raise TypeError("trace_window must be (from, to): two cycle numbers")
                opts.trace_from, opts.trace_to = trace_window
        if not isinstance(jobs, int) or isinstance(jobs, bool):
            raise TypeError("jobs must be an int, not %s" % type(jobs).__name__)
        if not 1 <= jobs <= 256:
            raise ValueError("jobs %d: 1..256 threads" % jobs)
        extras = _RunExtras()
        lib.qsim_run_extras_init(ctypes.byref(extras))
        extras.jobs = jobs
        cfg = self._config(arch, overrides)
        opts.config_path = cfg.where.encode()
        err = _Error()
        prog = ctypes.c_void_p()
        rep = ctypes.c_void_p()
        try:
            _check(lib.qsim_compile(self._h, cfg._h, ctypes.byref(prog), ctypes.byref(err)), err)
            xp = x.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)) if x is not None else None
            _check(lib.qsim_run_with(prog, xp, 0 if x is None else x.size, n, ctypes.byref(opts),
                                     ctypes.byref(extras), ctypes.byref(rep), ctypes.byref(err)), err)
            js = ctypes.c_char_p()
            _check(lib.qsim_report_json(rep, ctypes.byref(js), ctypes.byref(err)), err)
            report = json.loads(js.value.decode())
            out_layer = self.layer(self.output)["out_shape"]
            outs = np.empty((n,) + tuple(out_layer), dtype=np.int32)
            for i in range(n):
                outs[i] = self._array(lib.qsim_report_output, rep, i).reshape(out_layer)
            report["outputs"] = outs
            if keep_layer_outputs:
                report["layer_outputs"] = [
                    self._array(lib.qsim_report_layer_output, rep, i).reshape(self.layer(i)["out_shape"])
                    for i in range(self.n_layers)]
            return report
        finally:
            lib.qsim_report_free(rep)
            lib.qsim_program_free(prog)
            del hook_ref

    def decode(self, arch, steps: int, set=None, prompt=None, step_inputs=None, engine: str = "fast") -> dict:
        """The prompt (the file's tokens; None: qsim's deterministic input), then `steps` one-token decode
        steps with the KV caches growing (docs/decode.md; `qsim run --decode`). step_inputs: (steps, C)
        integers, each step's input row; None: the last output row before each step is fed back. Returns
        the decode report (docs/report.md, "Decode runs") as a dict with "prefill_output" (the output
        layer's shape) and "step_outputs" (steps, n): each step's output values in CHW order (a decoder
        whose output is C x tokens x 1: the new token's C values)."""
        lib = _library()
        if engine not in ("fast", "detailed"):
            raise ValueError("decode runs the fast or detailed engine, not %r" % (engine,))
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError("steps must be an int >= 1")
        x = None if prompt is None else np.ascontiguousarray(np.asarray(prompt).reshape(-1), dtype=np.int32)
        si = None
        if step_inputs is not None:
            si = np.ascontiguousarray(np.asarray(step_inputs), dtype=np.int32)
            if si.shape[0] != steps or si.size != steps * self.input_shape[0]:
                raise ValueError("step_inputs must be (%d, %d)" % (steps, self.input_shape[0]))
        d = _DecodeOptions()
        lib.qsim_decode_options_init(ctypes.byref(d))
        d.steps = steps
        if si is not None:
            d.step_inputs = si.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        opts = _RunOptions()
        lib.qsim_run_options_init(ctypes.byref(opts))
        opts.engine = _ENGINES[engine]
        opts.net_path = self.path.encode()
        cfg = self._config(arch, _assignments(set))
        opts.config_path = cfg.where.encode()
        err = _Error()
        rep = ctypes.c_void_p()
        try:
            xp = x.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)) if x is not None else None
            _check(lib.qsim_decode(self._h, cfg._h, xp, 0 if x is None else x.size, ctypes.byref(d), ctypes.byref(opts),
                                   ctypes.byref(rep), ctypes.byref(err)), err)
            js = ctypes.c_char_p()
            _check(lib.qsim_decode_report_json(rep, ctypes.byref(js), ctypes.byref(err)), err)
            report = json.loads(js.value.decode())["decode_run"]
            out = self.layer(self.output)["out_shape"]
            report["prefill_output"] = self._array(lib.qsim_decode_report_output, rep, -1).reshape(out)
            report["step_outputs"] = np.stack([self._array(lib.qsim_decode_report_output, rep, k)
                                               for k in range(steps)])
            return report
        finally:
            lib.qsim_decode_report_free(rep)

    @staticmethod
    def _array(fn, rep, index: int) -> np.ndarray:
        data = ctypes.POINTER(ctypes.c_int32)()
        count = ctypes.c_int64()
        err = _Error()
        _check(fn(rep, index, ctypes.byref(data), ctypes.byref(count), ctypes.byref(err)), err)
        if count.value == 0:
            return np.empty(0, dtype=np.int32)
        return np.ctypeslib.as_array(data, shape=(count.value,)).copy()

    def __del__(self):
        h = getattr(self, "_h", None)
        if h and _lib is not None:
            self._configs = {}
            _lib.qsim_net_free(h)
            self._h = None


def load(path) -> Network:
    """Load a .qbin network from a file."""
    p = _path(path, "path")
    lib = _library()
    h = ctypes.c_void_p()
    err = _Error()
    _check(lib.qsim_net_load(p, ctypes.byref(h), ctypes.byref(err)), err)
    return Network(h, os.fsdecode(p))


def load_bytes(data, name: str = "<bytes>") -> Network:
    """A .qbin network from its bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes, not %s" % type(data).__name__)
    if not isinstance(name, str):
        raise TypeError("name must be str, not %s" % type(name).__name__)
    data = bytes(data)
    lib = _library()
    h = ctypes.c_void_p()
    err = _Error()
    _check(lib.qsim_net_from_bytes(data, len(data), name.encode(), ctypes.byref(h), ctypes.byref(err)), err)
    return Network(h, name)
