#!/usr/bin/python3
"""C <-> Python checks of the .qbin format (docs/qbin.md).

    test_qbin_roundtrip.py PATH/TO/qbin_roundtrip_tool

- a network using every dtype, quantization form and layer kind, written by Python,
  parsed and re-serialized by C, read back by Python: identical bytes and structure;
- the shipped nets: C and Python both re-serialize them byte for byte, and
  scripts/make_nets.py regenerates them exactly (determinism);
- the two parsers agree (accept / refuse) on hundreds of mutated files;
- Python's requantize equals C's qs_requant_apply on edge and random cases;
- the reference evaluator's im2col conv and pools equal a direct loop written
  from the spec, including groups, dilation, strides, asymmetric padding, zero points
  and accumulator wrap.
Exit status 0 when everything passes.
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
import qsim_qbin as q  # noqa: E402
import make_nets  # noqa: E402

TOOL = None
TMP = None
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def tool(*args, stdin=None):
    return subprocess.run([TOOL] + list(args), input=stdin, capture_output=True, text=True)


def c_roundtrip(data: bytes, name: str) -> bytes:
    src, dst = os.path.join(TMP, name + ".in.qbin"), os.path.join(TMP, name + ".out.qbin")
    with open(src, "wb") as f:
        f.write(data)
    r = tool("roundtrip", src, dst)
    if r.returncode != 0:
        raise AssertionError("C refused %s: %s" % (name, r.stderr.strip()))
    with open(dst, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------- nets

def every_feature_net() -> q.Net:
    """All dtypes (signed and unsigned), per-tensor and per-channel quant, all kinds."""
    rng = np.random.default_rng(7)
    net = q.Net("every_feature")
    x = net.input("in", 4, 9, 7, bits=8, signed=False, zp=3, scale=0.02)
    w = rng.integers(-1, 2, size=(6, 2, 3, 2))
    c = net.conv("conv_g2", x, w, bias=rng.integers(-50, 50, 6), stride=(2, 1), pad=(1, 0, 2, 1),
                 dilation=(1, 2), groups=2, wbits=2, w_scale=rng.uniform(0.1, 1, 6),
                 bits=5, signed=True, zp=-2, scale=0.1, multiplier=rng.uniform(0.01, 0.2, 6))
    d = net.conv("dw", c, np.where(rng.random((6, 1, 3, 3)) < 0.5, -1, 1), pad=1, groups=6,
                 wbits=1, w_scale=0.5, bits=4, signed=False, act="relu", multiplier=0.05)
    m = net.maxpool("mp", d, (2, 3), stride=(1, 2), pad=(1, 1, 0, 0))
    a = net.avgpool("ap", d, 3, stride=1, pad=1, bits=4, signed=False, zp=0, scale=0.3,
                    mult=[1 << 30], shift=[3])
    a2 = net.avgpool("ap2", d, (2, 3), stride=(1, 2), pad=(1, 1, 0, 0), bits=5, signed=True,
                     zp=-3, scale=0.4, mult=[1 << 30], shift=[2])   # same shape as mp
    s = net.add("sum", m, a2, 3, -5,
                bits=6, signed=True, zp=1, scale=0.2, mult=[1518500250], shift=[-2])
    r = net.requant("rq", s, bits=4, signed=False, zp=0, scale=0.5,
                    multiplier=np.linspace(0.1, 1.9, net.layers[s].out_c))
    cat = net.concat("cat", [r, m, r])
    act = net.act("clip", cat, act="clip", clamp=(1, 9))
    g = net.gap("gap", act, bits=8, signed=False, zp=0, scale=0.01)
    fl = net.flatten("flat", act)
    f1 = net.fc("fc_u4", fl, rng.integers(0, 16, size=(5, net.layers[fl].out_c)), wbits=4,
                wsigned=False, bits=16, signed=True, scale=1e-3, multiplier=1e-3)
    f2 = net.fc("fc_i8", g, rng.integers(-128, 128, size=(3, net.layers[g].out_c)), wbits=8,
                bias=[-(2**31), 0, 2**31 - 1], bits=1, signed=False, multiplier=1e-4)
    net.conv("conv_u2_noq", x, rng.integers(0, 4, size=(2, 4, 1, 1)), wbits=2, wsigned=False,
             bits=2, signed=True)
    # unreferenced tensors exercise the wide and unsigned dtypes and odd quant forms
    net.add_tensor("i16", rng.integers(-2**15, 2**15, size=(3, 1, 5)), q.DT_INT16, True,
                   scale=[0.5], zero_point=[-7])
    net.add_tensor("u16", rng.integers(0, 2**16, size=(17,)), q.DT_INT16, False,
                   scale=rng.uniform(0.1, 2, 17), zero_point=rng.integers(0, 9, 17), axis=0)
    net.add_tensor("i32", np.array([[-(2**31), 2**31 - 1], [0, -1]]), q.DT_INT32, True)
    net.add_tensor("u32", np.array([0, 2**31 - 1, 5]), q.DT_INT32, False)
    net.add_tensor("u8_axis2", rng.integers(0, 256, size=(2, 3, 4)), q.DT_INT8, False,
                   scale=[1, 2, 3, 4], zero_point=[0, 1, 255, 128], axis=2)
    net.add_tensor("u2_axis_ext1", rng.integers(0, 4, size=(1, 7)), q.DT_INT2, False,
                   scale=[0.25], axis=0)
    net.add_tensor("bip", np.array([1, -1, -1, 1, 1, 1, -1, 1, -1]), q.DT_BIPOLAR, False)
    net.add_tensor("i4_odd", rng.integers(-8, 8, size=(3, 3)), q.DT_INT4, True)
    net.add_tensor("empty_name_next", np.array([1]), q.DT_INT8, True)
    net.tensors[-1].name = ""
    net.output = f1
    del f2
    return net


def every_v2_net() -> q.Net:
    """Every version-2 kind with its options: softmax on each axis, matmul with each
    transpose combination, lut/softmax tables of odd dtypes, norms with and without bias."""
    rng = np.random.default_rng(8)
    net = q.Net("every_v2")
    x = net.input("in", 6, 4, 3, bits=6, signed=True, zp=-2, scale=0.05)
    lut = net.lut("lut", x, table=rng.integers(-100, 100, 64), bits=8, signed=True, zp=1, scale=0.1)
    mul = net.mul("mul", x, lut, bits=7, signed=True, zp=0, scale=0.2, multiplier=rng.uniform(0.01, 0.1, 6))
    for ax in (0, 1, 2):
        net.softmax("softmax%d" % ax, mul, axis=ax, bits=4 + ax)
    net.softmax("causal1", mul, axis=1, bits=8, causal=True)
    net.softmax("causal2", mul, axis=2, bits=8, causal=True, offset=3)
    tok = net.reshape("tokens", x, 6, 12, 1)
    net.rope("rope", tok, 6, offset=2, positions=16, bits=8, signed=True, zp=-1, scale=0.05)
    dq = net.dynquant("dynquant", x, bits=5)
    net.mul("rowmax", dq, lut, rowmax=True, bits=8, signed=True, zp=0, scale=0.2, multiplier=0.05)
    ln = net.layernorm("ln", x, gamma=np.linspace(0.5, 2, 6), beta=np.linspace(-1, 1, 6), bits=8, signed=True,
                       zp=3, scale=0.02)
    net.rmsnorm("rms", ln, bits=5, signed=False, zp=4, scale=0.1, multiplier=2.0 ** -17)
    r = net.reshape("r", ln, 2, 9, 4)
    for p in range(4):
        b = net.reshape("rb%d" % p, ln, 2, 9 if p & 2 else 4, 4 if p & 2 else 9)
        a = r if not p & 1 else net.reshape("ra%d" % p, ln, 2, 4, 9)
        net.matmul("mm%d" % p, a, b, trans_a=bool(p & 1), trans_b=bool(p & 2), bits=9, signed=True, zp=-5,
                   scale=0.3, mult=[1 << 30, 3 << 29], shift=[4, 5])
    kc = net.kvcache("kv", r, 40)   # (2, 9, 4): 4 tokens along W, at most 40
    net.matmul("mm_kv", r, kc, trans_b=True, bits=8, signed=True, zp=0, scale=0.3, multiplier=0.01)
    return net


def every_lm_net() -> q.Net:
    """The language-model kinds: token ids, an embedding of int4 rows, grouped matmuls with B and with A
    shared, an argmax."""
    rng = np.random.default_rng(9)
    net = q.Net("every_lm")
    ids = net.input("ids", 1, 5, 1, bits=12, signed=False, zp=0, scale=0.0)
    em = net.embed("emb", ids, rng.integers(-8, 8, size=(40, 6)), tbits=4, positions=rng.integers(-2, 2, size=(7, 6)),
                   pbits=2, offset=2, bits=6, signed=True, zp=1, scale=0.1)
    qh, kh = net.reshape("qh", em, 3, 2, 5), net.reshape("kh", em, 1, 6, 5)
    net.matmul("scores", qh, net.reshape("k1", em, 1, 2, 15), trans_a=True, grouped=True, bits=10, signed=True,
               zp=0, scale=0.0, mult=[1 << 30], shift=[2])
    net.matmul("av", kh, net.reshape("p3", em, 3, 5, 2), grouped=True, bits=10, signed=True, zp=0, scale=0.0)
    net.argmax("am", em, bits=4)
    return net


def test_python_c_python():
    net = every_feature_net()
    net2 = every_v2_net()
    net3 = every_lm_net()
    kinds = {l.kind for l in net.layers} | {l.kind for l in net2.layers} | {l.kind for l in net3.layers}
    check(kinds == set(range(len(q.KIND_NAMES))), "every_feature + every_v2 + every_lm cover all kinds (%s)"
          % sorted(kinds))
    data3 = net3.to_bytes()
    check(c_roundtrip(data3, "every_lm") == data3, "C re-serializes the language-model net byte for byte")
    check(q.diff(net3, q.Net.from_bytes(data3)) is None, "the language-model net reads back")
    x3 = np.random.default_rng(3).integers(0, 40, size=net3.layers[0].shape)
    for i, (l, o) in enumerate(zip(net3.layers, q.evaluate(net3, x3))):
        check(o.shape == l.shape and o.min() >= l.clamp_lo and o.max() <= l.clamp_hi, "lm layer %d output" % i)
    check(net.to_bytes()[8] == 1, "a net without version-2 kinds is written as version 1")
    data2 = net2.to_bytes()
    check(data2[8] == 2, "a net with version-2 kinds is written as version 2")
    check(c_roundtrip(data2, "every_v2") == data2, "C re-serializes the version-2 net byte for byte")
    check(q.diff(net2, q.Net.from_bytes(data2)) is None, "version-2 net reads back")
    x2 = np.random.default_rng(2).integers(-32, 32, size=net2.layers[0].shape)
    for i, (l, o) in enumerate(zip(net2.layers, q.evaluate(net2, x2))):
        check(o.shape == l.shape and o.min() >= l.clamp_lo and o.max() <= l.clamp_hi, "v2 layer %d output" % i)
    data = net.to_bytes()
    back_c = c_roundtrip(data, "every_feature")
    check(back_c == data, "C re-serializes the Python net byte for byte")
    again = q.Net.from_bytes(back_c, "c-output")
    d = q.diff(net, again)
    check(d is None, "Python reads back what it wrote through C: %s" % d)
    check(again.to_bytes() == data, "Python re-serializes identically")
    # and the evaluator runs on it
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=net.layers[0].shape)
    outs = q.evaluate(again, x)
    for i, (l, o) in enumerate(zip(again.layers, outs)):
        check(o.shape == l.shape, "layer %d output shape" % i)
        check(o.min() >= l.clamp_lo and o.max() <= l.clamp_hi, "layer %d output in clamp" % i)


def test_shipped_nets():
    for name in ("tiny", "demo_w2a4", "xfmr_tiny"):
        path = os.path.join(REPO, "models", "nets", name + ".qbin")
        with open(path, "rb") as f:
            data = f.read()
        check(len(data) < 8192, "%s is small (%d bytes)" % (name, len(data)))
        check(c_roundtrip(data, name) == data, "C round trip of %s" % name)
        check(q.read(path).to_bytes() == data, "Python round trip of %s" % name)
        r = tool("check", path)
        net = q.read(path)
        c_macs = [int(line.split()[1]) for line in r.stdout.split("\n")[1:] if line.strip()]
        check(c_macs == [net.macs(i) for i in range(len(net.layers))], "MACs agree for %s" % name)
    regen = os.path.join(TMP, "regen")
    make_nets.main(["--out-dir", regen])
    for name in ("tiny", "demo_w2a4", "xfmr_tiny"):
        with open(os.path.join(regen, name + ".qbin"), "rb") as f1, \
                open(os.path.join(REPO, "models", "nets", name + ".qbin"), "rb") as f2:
            check(f1.read() == f2.read(), "make_nets.py regenerates %s exactly" % name)


# ---------------------------------------------------------------------------- parsers agree

def fix_crcs(b: bytearray):
    n = struct.unpack_from("<I", b, 24)[0]
    n_ok = min(n, (len(b) - 32) // 24)
    for i in range(n_ok):
        e = 32 + 24 * i
        off, size = struct.unpack_from("<QQ", b, e + 8)
        if off <= len(b) and size <= len(b) - off:
            struct.pack_into("<I", b, e + 4, zlib.crc32(bytes(b[off:off + size])))
    table = min(24 * n, len(b) - 32)
    struct.pack_into("<I", b, 28, zlib.crc32(bytes(b[32:32 + table]), zlib.crc32(bytes(b[:28]))))


def test_parsers_agree():
    for name in ("tiny", "xfmr_tiny"):
        parsers_agree(name)


def parsers_agree(name):
    with open(os.path.join(REPO, "models", "nets", name + ".qbin"), "rb") as f:
        base = f.read()
    # every prefix is refused by Python too
    for n in range(len(base)):
        try:
            q.loads(base[:n], "prefix")
            check(False, "Python accepted a %d-byte prefix" % n)
        except q.QbinError as e:
            check("prefix" in str(e), "message names the source")
    rng = np.random.default_rng(3)
    agree = accepted = 0
    path = os.path.join(TMP, "mut.qbin")
    for it in range(400):
        b = bytearray(base)
        for _ in range(1 + it % 3):
            at = int(rng.integers(32, len(b)))
            b[at] = int(rng.choice([0, 1, 2, 0x7F, 0x80, 0xFF, rng.integers(0, 256)]))
        fix_crcs(b)
        try:
            q.loads(bytes(b), "mut")
            py_ok = True
        except q.QbinError:
            py_ok = False
        with open(path, "wb") as f:
            f.write(b)
        r = tool("check", path)
        c_ok = r.returncode == 0
        check(r.returncode in (0, 1), "C tool did not crash (rc %d)" % r.returncode)
        if py_ok != c_ok:
            check(False, "parsers disagree on mutation %d: python %s, C %s" % (it, py_ok, r.stdout.strip()))
        agree += py_ok == c_ok
        accepted += py_ok
    check(accepted > 0, "some mutations are legal")
    print("parsers agree on %d/400 mutated %s files (%d accepted)" % (agree, name, accepted))


def test_rules_agree():
    """The rules added for issue 11 hold in both readers alike: a flatten may not narrow its
    input's clamp (it is a view), and no bytes may follow the last section."""
    def both_refuse(data: bytes, needle: str, what: str):
        try:
            q.loads(data, "rule")
            check(False, "Python accepted " + what)
        except q.QbinError as e:
            check(needle in str(e), "Python's message for %s names '%s': %s" % (what, needle, e))
        path = os.path.join(TMP, "rule.qbin")
        with open(path, "wb") as f:
            f.write(data)
        r = tool("check", path)
        check(r.returncode == 1 and needle in r.stdout + r.stderr,
              "C refuses %s naming '%s' (rc %d: %s)" % (what, needle, r.returncode, (r.stdout + r.stderr).strip()))

    net = q.Net("flat")
    x = net.input("in", c=2, h=2, w=2, bits=8, signed=False, zp=0, scale=1.0)
    a = net.act("relu", x, act="clip", clamp=(10, 200))
    f = net.flatten("flat", a)
    net.fc("fc", f, np.ones((3, 8), np.int8), None, multiplier=0.01, bits=8, signed=False)
    net.output = len(net.layers) - 1
    ok = net.to_bytes()
    q.loads(ok, "ok")  # a flatten whose clamp (0..255) contains its input's (10..200) is fine
    check(tool_check(ok), "C accepts a flatten with a wider clamp")
    # the writer validates, so the narrower clamp is patched into the layer record
    b = bytearray(ok)
    _, _, loff, _ = struct.unpack_from("<IIQQ", b, 32 + 48)
    struct.pack_into("<i", b, loff + f * q.LAYER_SIZE + 156, 199)
    fix_crcs(b)
    bad = bytes(b)
    both_refuse(bad, "narrower than its input's", "a flatten that narrows its input's clamp")
    b = bytearray(ok) + bytes(8)
    struct.pack_into("<Q", b, 16, len(b))
    fix_crcs(b)
    both_refuse(bytes(b), "8 bytes after the last section", "zero bytes after the last section")

    # one section order only (net, tensors, layers), the table in file order: rebuild the
    # file with the sections stored as tensors, net, layers, each at the next multiple of 8
    secs = [struct.unpack_from("<IIQQ", ok, 32 + 24 * i) for i in range(3)]
    order = [secs[1], secs[0], secs[2]]
    pos, table, body = 32 + 3 * 24, b"", b""
    pos = (pos + 7) & ~7
    start = pos
    for kind, crc, off, size in order:
        pos = (pos + 7) & ~7
        body += bytes(pos - start - len(body))
        table += struct.pack("<IIQQ", kind, crc, pos, size)
        body += ok[off:off + size]
        pos += size
    b = bytearray(ok[:32] + table + bytes(start - 32 - len(table)) + body)
    struct.pack_into("<Q", b, 16, len(b))
    fix_crcs(b)
    both_refuse(bytes(b), "section kind 1 after kind 2", "sections stored as tensors, net, layers")
    # the same three sections in the writers' place, the table listing layers before tensors
    b = bytearray(ok)
    e1, e2 = bytes(b[32 + 24:32 + 48]), bytes(b[32 + 48:32 + 72])
    b[32 + 24:32 + 48], b[32 + 48:32 + 72] = e2, e1
    fix_crcs(b)
    both_refuse(bytes(b), "section kind 2 after kind 3", "a table listing layers before tensors")

    # the decoder rules (docs/qbin.md): a causal mask needs a key axis, param bits 5-7 are 0,
    # an offset needs the causal bit, dynquant's output is signed with zero point 0, mul's
    # param is 0 or 1 and a row-absmax mul's inputs share their positions
    net = q.Net("dec")
    x = net.input("in", c=4, h=3, w=2, bits=8, signed=True, zp=0, scale=0.1)
    sm = net.softmax("sm", x, axis=2, bits=8, causal=True, offset=1)
    dq = net.dynquant("dq", x, bits=8)
    y = net.reshape("y", x, 4, 6, 1)
    mu = net.mul("mu", dq, x, rowmax=True, bits=8, signed=True, zp=0, scale=0.1, multiplier=0.01)
    ok = net.to_bytes()
    check(tool_check(ok), "C accepts the decoder net")
    _, _, loff, _ = struct.unpack_from("<IIQQ", ok, 32 + 48)

    def patched(layer, off, fmt, value):
        b = bytearray(ok)
        struct.pack_into(fmt, b, loff + layer * q.LAYER_SIZE + off, value)
        fix_crcs(b)
        return bytes(b)
    both_refuse(patched(sm, 188, "<i", 0 | 16), "causal softmax runs along axis 1 or 2", "a causal softmax over channels")
    both_refuse(patched(sm, 188, "<i", 2 | 32), "bits 5-7 must be 0", "softmax param bit 5")
    both_refuse(patched(sm, 188, "<i", 2 | (5 << 8)), "offset 5 without the causal bit", "an offset without the mask")
    both_refuse(patched(dq, 176, "<i", 1), "dynquant output must be signed", "a dynquant with a zero point")
    both_refuse(patched(mu, 188, "<i", 2), "mul param 2", "mul param 2")
    both_refuse(patched(mu, 60, "<i", y), "different positions", "a row-absmax mul over other positions")

    net = q.Net("rope")
    x = net.input("in", c=8, h=3, w=1, bits=8, signed=True, zp=0, scale=0.1)
    ro = net.rope("ro", x, 4, offset=1, positions=5, bits=8, signed=True, zp=0, scale=0.1)
    ok = net.to_bytes()
    check(tool_check(ok), "C accepts the rope net")
    _, _, loff, _ = struct.unpack_from("<IIQQ", ok, 32 + 48)
    both_refuse(patched(ro, 188, "<i", 3), "head size 3 must be even", "a rope of odd head size")
    both_refuse(patched(ro, 188, "<i", 4 | (3 << 16)), "holds 5 positions; tokens 3 at offset 3 need 6",
                "a rope table shorter than the positions")

    # language-model kinds: embed, argmax, grouped matmul
    net = q.Net("lm")
    ids = net.input("ids", c=1, h=3, w=1, bits=16, signed=False, zp=0, scale=0.0)
    em = net.embed("emb", ids, np.arange(12).reshape(4, 3), positions=np.arange(15).reshape(5, 3), offset=1, bits=8,
                   signed=True, zp=0, scale=0.1)
    am = net.argmax("am", em, bits=8)
    qh = net.reshape("qh", em, 3, 1, 3)
    kh = net.reshape("kh", em, 1, 3, 3)
    mm = net.matmul("mm", qh, kh, grouped=True, bits=16, signed=True, zp=0, scale=0.0)
    ok = net.to_bytes()
    check(tool_check(ok), "C accepts the embed/argmax/grouped net")
    _, _, loff, _ = struct.unpack_from("<IIQQ", ok, 32 + 48)
    both_refuse(patched(am, 156, "<i", 1), "argmax over 3 channels needs an unsigned output", "an argmax clamp below C - 1")
    signed_ids = bytearray(ok)   # the input as int16 (clamp to 32767): the embed refuses it
    struct.pack_into("<B", signed_ids, loff + 173, 1)
    struct.pack_into("<i", signed_ids, loff + 156, 32767)
    fix_crcs(signed_ids)
    both_refuse(bytes(signed_ids), "unsigned token ids", "signed token ids")
    both_refuse(patched(mm, 188, "<i", 8), "param 8", "matmul param bit 3")
    both_refuse(patched(em, 188, "<i", 3), "holds 5 positions; tokens 3 at position 3 need 6",
                "a position table shorter than the positions")
    both_refuse(patched(mm, 188, "<i", 0), "the batch must match", "a matmul of 3 over 1 matrices without the group bit")

    # KVCACHE (docs/decode.md): the prompt within the maximum context, only matmuls read it
    net = q.Net("kv")
    x = net.input("in", c=2, h=3, w=4, bits=8, signed=True, zp=0, scale=0.1)
    kc = net.kvcache("kc", x, 8)
    net.matmul("mm", x, kc, trans_b=True, bits=8, signed=True, zp=0, scale=0.1, multiplier=0.01)
    ok = net.to_bytes()
    check(tool_check(ok), "C accepts the kvcache net")
    _, _, loff, _ = struct.unpack_from("<IIQQ", ok, 32 + 48)
    both_refuse(patched(kc, 188, "<i", 3), "a KV cache longer than its maximum", "a prompt longer than the cache")
    both_refuse(patched(kc, 188, "<i", 0), "maximum context 0 must be >= 1", "a cache of maximum 0")


def tool_check(data: bytes) -> bool:
    path = os.path.join(TMP, "rule_ok.qbin")
    with open(path, "wb") as f:
        f.write(data)
    return tool("check", path).returncode == 0


# ---------------------------------------------------------------------------- arithmetic

def test_requant_vs_c():
    rng = np.random.default_rng(11)
    cases = []
    edges_acc = [0, 1, -1, 2, -2, 3, -3, 5, -5, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**40, -2**40,
                 2**62, -2**62, 12345, -12345, 2**30, -2**30]
    edges_m = [0, 1, 2**30, 2**30 + 1, 2**31 - 1, 1518500250, 1073741823]
    for a in edges_acc:
        for m in edges_m:
            for s in (-31, -5, -1, 0, 1, 2, 7, 30, 31):
                cases.append((a, m, s, 0, -2**31, 2**31 - 1))
    for _ in range(20000):
        a = int(rng.integers(-2**40, 2**40)) >> int(rng.integers(0, 40))
        m = int(rng.integers(0, 2**31))
        s = int(rng.integers(-31, 32))
        zp = int(rng.integers(-128, 128))
        lo = int(rng.integers(-2**15, 1))
        hi = int(rng.integers(0, 2**15))
        cases.append((a, m, s, zp, lo, hi))
    text = "".join("%d %d %d %d %d %d\n" % c for c in cases)
    r = tool("requant", stdin=text)
    c_out = np.array([int(v) for v in r.stdout.split()], np.int64)
    arr = np.array(cases, dtype=object)
    py = np.array([int(q.requantize(np.int64(c[0]) if abs(c[0]) < 2**63 else c[0], c[1], c[2],
                                    c[3], c[4], c[5])) for c in cases], np.int64)
    check(len(c_out) == len(cases), "C answered every requant case")
    bad = np.nonzero(c_out != py)[0]
    check(bad.size == 0, "requant agrees (first mismatch %r)" %
          (None if not bad.size else (tuple(arr[bad[0]]), int(c_out[bad[0]]), int(py[bad[0]]))),)
    # documented worked examples
    check(int(q.srdhm(-3, 2**30)) == -1 and int(q.srdhm(3, 2**30)) == 2, "srdhm halves round up")
    check([int(q.rdivpot(v, e)) for v, e in ((5, 1), (-5, 1), (-6, 2), (7, 2))] == [3, -3, -2, 2],
          "rdivpot rounds halves away from zero")
    check(int(q.requantize(1023, 1518500250, 3, 0, -1000, 1000)) == 90, "doc example")


def test_quantize_multiplier():
    check(q.quantize_multiplier(0.5) == (2**30, 0), "M=0.5")
    check(q.quantize_multiplier(0.25) == (2**30, 1), "M=0.25")
    check(q.quantize_multiplier(1.0) == (2**30, -1), "M=1")
    check(q.quantize_multiplier(1.25) == (1342177280, -1), "M=1.25")
    check(q.quantize_multiplier(0.0) == (0, 0), "M=0")
    check(q.quantize_multiplier(1e-12) == (0, 0), "underflow")
    check(q.quantize_multiplier(2.0**40) == (2**31 - 1, -31), "overflow saturates")
    check(q.quantize_multiplier(1 - 2**-40) == (2**30, -1), "rounding up to 2^31 renormalizes")
    rng = np.random.default_rng(5)
    for real in rng.uniform(1e-6, 10, 2000):
        m, s = q.quantize_multiplier(float(real))
        check(2**30 <= m < 2**31 and abs(m * 2.0**-31 * 2.0**-s / real - 1) < 2**-30,
              "multiplier %r" % real)


# ---------------------------------------------------------------------------- evaluator

def naive_conv(a, za, w, bias, l, acc_bits):
    """Direct loops over the definition in docs/qbin.md."""
    cin = a.shape[0]
    g = l.groups
    cin_g, cout_g = cin // g, l.out_c // g
    acc = np.zeros((l.out_c, l.out_h, l.out_w), dtype=object)
    for co in range(l.out_c):
        gi = co // cout_g
        for oy in range(l.out_h):
            for ox in range(l.out_w):
                s = 0
                for ci in range(cin_g):
                    for ky in range(l.kh):
                        for kx in range(l.kw):
                            y = oy * l.stride_h - l.pad_t + ky * l.dil_h
                            x = ox * l.stride_w - l.pad_l + kx * l.dil_w
                            v = int(a[gi * cin_g + ci, y, x]) if 0 <= y < a.shape[1] and 0 <= x < a.shape[2] else za
                            s += (v - za) * int(w[co, ci, ky, kx])
                half = 1 << (acc_bits - 1)
                s = ((s + half) % (1 << acc_bits)) - half
                acc[co, oy, ox] = s + (int(bias[co]) if bias is not None else 0)
    return acc.astype(np.int64)


def naive_pool(a, za, l, kind):
    out = np.zeros((a.shape[0], l.out_h, l.out_w), np.int64)
    for c in range(a.shape[0]):
        for oy in range(l.out_h):
            for ox in range(l.out_w):
                vals = []
                for ky in range(l.kh):
                    for kx in range(l.kw):
                        y = oy * l.stride_h - l.pad_t + ky * l.dil_h
                        x = ox * l.stride_w - l.pad_l + kx * l.dil_w
                        inside = 0 <= y < a.shape[1] and 0 <= x < a.shape[2]
                        if kind == "max" and inside:
                            vals.append(int(a[c, y, x]))
                        elif kind == "avg":
                            vals.append(int(a[c, y, x]) - za if inside else 0)
                out[c, oy, ox] = max(vals) if kind == "max" else sum(vals)
    return out


def test_evaluator_vs_loops():
    rng = np.random.default_rng(21)
    n = 0
    for it in range(60):
        g = int(rng.choice([1, 2, 3]))
        cin = g * int(rng.integers(1, 4))
        cout = g * int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        pads = [int(rng.integers(0, d * (k - 1) + 1)) for d, k in ((dh, kh), (dw, kw), (dh, kh), (dw, kw))]
        h, w = int(rng.integers(dh * (kh - 1) + 1, 9)), int(rng.integers(dw * (kw - 1) + 1, 9))
        bits = int(rng.choice([4, 8]))
        za = int(rng.integers(0, 1 << bits))
        acc_bits = int(rng.choice([32, 12, 8]))
        net = q.Net("t")
        x = net.input("in", cin, h, w, bits=bits, zp=za)
        wt = rng.integers(-8, 8, size=(cout, cin // g, kh, kw))
        bias = rng.integers(-1000, 1000, cout)
        c = net.conv("c", x, wt, bias=bias, stride=(sh, sw), pad=pads, dilation=(dh, dw), groups=g,
                     wbits=4, bits=16, signed=True, mult=[2**31 - 1], shift=[0])
        xin = rng.integers(0, 1 << bits, size=(cin, h, w))
        outs = [xin.astype(np.int64)]
        got = q.layer_accumulator(net, c, outs, acc_bits)
        want = naive_conv(xin, za, wt, bias, net.layers[c], acc_bits)
        check(np.array_equal(got, want), "conv im2col == loops (case %d)" % it)
        # pools on the same input (maxpool only where every window touches the input)
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pp = (int(rng.integers(0, k[0])), int(rng.integers(0, k[1])), 0, 0)
        if h + pp[0] >= k[0] and w + pp[1] >= k[1]:
            p = net.avgpool("ap", x, k, stride=1, pad=pp, bits=bits, zp=za, mult=[2**30], shift=[0])
            check(np.array_equal(q.layer_accumulator(net, p, outs),
                                 naive_pool(xin, za, net.layers[p], "avg")), "avgpool (case %d)" % it)
            m = net.maxpool("mp", x, k, stride=1, pad=pp)
            check(np.array_equal(q.eval_layer(net, m, outs + [None] * (m - 1)),
                                 naive_pool(xin, za, net.layers[m], "max")), "maxpool (case %d)" % it)
        n += 1
    # fc with zero point and wrap
    net = q.Net("f")
    x = net.input("in", 3, 2, 2, bits=8, zp=100)
    wt = rng.integers(-128, 128, size=(4, 12))
    f = net.fc("fc", x, wt, bits=8, signed=True, mult=[2**31 - 1], shift=[0])
    xin = rng.integers(0, 256, size=(3, 2, 2))
    exact = wt.astype(object) @ (xin.reshape(-1).astype(object) - 100)
    for bits in (32, 10):
        half = 1 << (bits - 1)
        want = np.array([((int(v) + half) % (1 << bits)) - half for v in exact], np.int64)
        got = q.layer_accumulator(net, f, [xin], bits).ravel()
        check(np.array_equal(got, want), "fc accumulator wrap to %d bits" % bits)
    print("evaluator checked on %d random conv/pool configurations" % n)


def main():
    global TOOL, TMP
    if len(sys.argv) != 2:
        print("usage: test_qbin_roundtrip.py PATH/TO/qbin_roundtrip_tool")
        return 2
    TOOL = sys.argv[1]
    with tempfile.TemporaryDirectory() as TMP:
        for t in (test_python_c_python, test_shipped_nets, test_parsers_agree, test_rules_agree, test_requant_vs_c,
                  test_quantize_multiplier, test_evaluator_vs_loops):
            before = len(failures)
            try:
                t()
            except Exception as e:  # a crash is a failure, keep going
                failures.append("%s raised %r" % (t.__name__, e))
                print("FAIL: %s raised %r" % (t.__name__, e))
            print("%s: %s" % (t.__name__, "ok" if len(failures) == before else "FAILED"))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
