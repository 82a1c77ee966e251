#!/usr/bin/python3
"""Float fidelity of the integer transformer operators (docs/qbin.md, "Version 2").

The integer definitions are exact by contract (tests/e2e_xfmr.py holds qsim to them bit for
bit); this test shows they are also *faithful*: on real inputs covering each operator's whole
input range, the integer result, read back through its scale, stays within a stated bound of
PyTorch's float operator (torch.softmax, torch.nn.functional.layer_norm with eps = 0, an RMS
norm written with torch ops, torch's GELU/SiLU/sigmoid/tanh/exp for tables):

  softmax, k-bit output, n per line:  |p - p_float| <= 0.5/(2^k - 1) + (n + 1)/(2 * 65535)
  layernorm z (before the affine):    |z - z_float| <= 0.5/sigma + |z| (0.125/sigma^2 + 2^-13) + 2^-17
  rmsnorm z:                          |z - z_float| <= |z| 2^-13 + 2^-17
  lut:                                |y - f(x)| <= out_scale / 2 (inside the output range)
  rope (output scale = input scale s): |y - y_float| <= s (0.5 + (|x_a| + |x_b|) 2^-15)

(sigma: the row's float standard deviation in input steps). The integers come from the NumPy
reference evaluator (scripts/qsim_qbin.py), which qsim equals bit for bit. Prints the worst
error seen against each bound; exit 1 when a bound is broken.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
import qsim_qbin as Q  # noqa: E402

failures = []


def report(name, worst_ratio, worst_err):
    ok = worst_ratio <= 1.0
    print("%-34s worst error %.3g, %.1f%% of its bound %s" % (name, worst_err, 100 * worst_ratio,
                                                              "ok" if ok else "BROKEN"))
    if not ok:
        failures.append(name)


def one_layer(kind_fn, c, h, w, bits, signed, zp, scale, x):
    net = Q.Net("f")
    i = net.input("x", c=c, h=h, w=w, bits=bits, signed=signed, zp=zp, scale=scale)
    kind_fn(net, i)
    return net, Q.evaluate(net, x)[-1]


def test_softmax(rng):
    for k in (4, 8, 12, 16):
        worst, werr = 0.0, 0.0
        for trial in range(30):
            n = int(rng.integers(1, 300))
            in_bits = int(rng.integers(2, 9))
            scale = float(rng.choice([0.01, 0.05, 0.1, 0.3, 1.0]))
            lo, hi = Q.int_range(in_bits, True)
            x = rng.integers(lo, hi + 1, size=(3, 2, n))
            net, y = one_layer(lambda nt, i: nt.softmax("sm", i, axis=2, bits=k), 3, 2, n, in_bits, True, 0,
                               scale, x)
            p = y / ((1 << k) - 1)
            pf = torch.softmax(torch.tensor(x * scale, dtype=torch.float64), dim=2).numpy()
            err = np.abs(p - pf).max()
            bound = 0.5 / ((1 << k) - 1) + (n + 1) / (2 * 65535)
            worst, werr = max(worst, err / bound), max(werr, err)
        report("softmax %2d-bit output" % k, worst, werr)


def norm_case(rng, layernorm):
    worst, werr = 0.0, 0.0
    for trial in range(60):
        n = int(rng.integers(2, 1025))
        bits = int(rng.integers(4, 17))
        signed = bool(rng.integers(0, 2))
        lo, hi = Q.int_range(bits, signed)
        zp = int(rng.integers(lo, hi + 1)) // 2
        spread = float(rng.choice([0.02, 0.2, 1.0]))
        mid = rng.integers(lo, hi + 1)
        x = np.clip(np.round(mid + rng.normal(size=(n, 3, 1)) * spread * (hi - lo) / 4), lo, hi).astype(np.int64)
        xc = torch.tensor((x - zp)[:, :, 0].T, dtype=torch.float64)   # (positions, n)
        z = Q.norm_q16(x - zp, layernorm)[:, :, 0].T / 65536.0
        if layernorm:
            zf = torch.nn.functional.layer_norm(xc, (n,), eps=0.0).numpy()
            sigma = xc.std(dim=1, unbiased=False).numpy()[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = 0.5 / sigma + np.abs(zf) * (0.125 / sigma ** 2 + 2.0 ** -13) + 2.0 ** -17
            live = sigma[:, 0] > 0
        else:
            rms = torch.sqrt((xc * xc).mean(dim=1, keepdim=True))
            zf = (xc / rms).numpy()
            bound = np.abs(zf) * 2.0 ** -13 + 2.0 ** -17
            live = rms.numpy()[:, 0] > 0
        if not live.any():
            continue
        err = np.abs(z - zf)[live]
        worst, werr = max(worst, float((err / bound[live]).max())), max(werr, float(err.max()))
    report(("layernorm" if layernorm else "rmsnorm") + " z", worst, werr)


def test_luts(rng):
    fns = {
        "gelu": lambda t: torch.nn.functional.gelu(t),
        "silu": lambda t: torch.nn.functional.silu(t),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "exp": torch.exp,
    }
    for name, f in fns.items():
        worst, werr = 0.0, 0.0
        for bits in (4, 6, 8):
            for signed in (False, True):
                lo, hi = Q.int_range(bits, signed)
                zp = 0 if signed else (hi + 1) // 2
                s_in = 8.0 / (hi - lo)
                a = np.arange(lo, hi + 1).reshape(-1, 1, 1)
                real = torch.tensor((a - zp) * s_in, dtype=torch.float64)
                ref = f(real).numpy()
                s_out = float(max(ref.max(), 0) - min(ref.min(), 0)) / 255 * 1.001
                ozp = int(round(-min(ref.min(), 0) / s_out)) - 128
                scalar = lambda v, f=f: float(f(torch.tensor(v, dtype=torch.float64)))
                net, y = one_layer(lambda nt, i: nt.lut("t", i, fn=scalar, bits=8, signed=True, zp=ozp,
                                                        scale=s_out), a.shape[0], 1, 1, bits, signed, zp, s_in, a)
                err = np.abs((y - ozp) * s_out - ref).max()
                worst, werr = max(worst, err / (s_out / 2 * (1 + 1e-9))), max(werr, err)
        report("lut %s" % name, worst, werr)


def test_rope(rng):
    """ROPE against the float rotation (torch cos/sin of position * base^(-2i/dh)), output scale =
    input scale (multiplier 2^-14, exact), 16-bit output so nothing clips: the Q14 table rounds each
    cos/sin by at most 2^-15, the requantization by half a step."""
    worst, werr = 0.0, 0.0
    for trial in range(30):
        dh = 2 * int(rng.integers(1, 33))
        heads, T, off = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(0, 2000))
        scale = float(rng.choice([0.01, 0.1, 1.0]))
        x = rng.integers(-128, 128, size=(heads * dh, T, 1))
        net, y = one_layer(lambda nt, i: nt.rope("rope", i, dh, offset=off, bits=16, signed=True, zp=0,
                                                 scale=scale, multiplier=2.0 ** -14),
                           heads * dh, T, 1, 8, True, 0, scale, x)
        xf = torch.tensor(x[:, :, 0] * scale, dtype=torch.float64).reshape(heads, dh, T)
        theta = 10000.0 ** (-2.0 * torch.arange(dh // 2, dtype=torch.float64) / dh)
        ang = theta.reshape(-1, 1) * torch.arange(off, off + T, dtype=torch.float64).reshape(1, -1)
        xa, xb = xf[:, :dh // 2], xf[:, dh // 2:]
        yf = torch.cat([xa * torch.cos(ang) - xb * torch.sin(ang), xa * torch.sin(ang) + xb * torch.cos(ang)],
                       dim=1).reshape(heads * dh, T).numpy()
        err = np.abs(y[:, :, 0] * scale - yf)
        xi = np.abs(x[:, :, 0]).reshape(heads, dh, T)
        pair = np.concatenate([xi[:, :dh // 2] + xi[:, dh // 2:]] * 2, axis=1).reshape(heads * dh, T)
        bound = scale * (pair * 2.0 ** -15 + 0.5) + 1e-12
        worst, werr = max(worst, float((err / bound).max())), max(werr, float(err.max()))
    report("rope (Q14 table)", worst, werr)


def main():
    rng = np.random.default_rng(2026)
    test_rope(rng)
    test_softmax(rng)
    norm_case(rng, True)
    norm_case(rng, False)
    test_luts(rng)
    print("%d bound(s) broken" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
