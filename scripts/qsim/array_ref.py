"""The accelerator's arithmetic for CONV/FC layers, written from docs/compiler.md section 9
("Values on the array") alone: stored operands with the input zero point folded into the bias,
weights cut into slices of the weight path, and every accumulator addition done at the array's
`acc_bits` with wrap or saturation, in the order the dataflow and the mapping set.

qsim_qbin.evaluate gives what a network means (docs/qbin.md); this module gives what the
accelerator computes, which differs only when a narrow accumulator overflows. The mapping
(which list positions each GEMM instruction covers, and which are its first and last k-chunks)
is read from `qsim compile --listing` (docs/compiler.md section 10).

    gemms = parse_listing(text)                 # {layer: [Gemm, ...]} in program order
    outs = evaluate_on_array(net, x, arch, gemms)
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from . import qbin as Q


@dataclass
class ArrayArch:
    """The parameters section 9 depends on (`[array]` keys of docs/config.md)."""
    rows: int
    cols: int
    dataflow: str          # "os" | "ws" | "is"
    weight_path_bits: int
    acc_bits: int
    overflow: str          # "wrap" | "saturate"
    zero_skip: str         # "none" | "gate" | "weights" | "activations" | "both"


@dataclass
class Gemm:
    group: int
    m0: int
    m_len: int
    n0: int
    n_len: int
    k0: int
    k_len: int
    first: bool
    last: bool


_GEMM = re.compile(r"^\s*\d+\s+GEMM\s+L(\d+) g(\d+) m\[(\d+)\+(\d+)\] n\[(\d+)\+(\d+)\] "
                   r"k\[(\d+)\+(\d+)\]( first)?( last)?")


def parse_listing(text: str) -> Dict[int, List[Gemm]]:
    """GEMM instructions of a `qsim compile --listing`, per layer, in program order."""
    out: Dict[int, List[Gemm]] = {}
    for line in text.splitlines():
        m = _GEMM.match(line)
        if m:
            v = [int(g) for g in m.groups()[:8]]
            out.setdefault(v[0], []).append(Gemm(*v[1:], first=bool(m.group(9)), last=bool(m.group(10))))
    return out


class _Adder:
    """add(a, b) of section 9: exact sum, wrapped or saturated to `bits`; counts overflows."""

    def __init__(self, bits: int, mode: str):
        self.lo, self.hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.bits, self.saturate = bits, mode == "saturate"
        self.overflows = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = a + b
        out = (s < self.lo) | (s > self.hi)
        self.overflows += int(np.count_nonzero(out))
        if self.saturate:
            return np.clip(s, self.lo, self.hi)
        return Q.wrap(s, self.bits)


def _slices(w: np.ndarray, t: Q.Tensor, p: int) -> List[np.ndarray]:
    """Section 9 step 3: slice s of every weight, least significant first."""
    if t.dtype == Q.DT_BIPOLAR:
        return [w]
    n = -(-Q.DTYPE_BITS[t.dtype] // p)
    if n == 1:
        return [w]
    out = []
    for s in range(n):
        if s == n - 1 and t.signed:
            out.append(w >> (p * s))
        else:
            out.append((w >> (p * s)) & ((1 << p) - 1))
    return out


def _operands(net: Q.Net, i: int, outs: Sequence[np.ndarray]):
    """Per group: A[m][k] (stored values, padding = za) and W[k][n] (section 9 step 1)."""
    l = net.layers[i]
    src = net.layers[l.inputs[0]]
    a = np.asarray(outs[l.inputs[0]], np.int64)
    za = src.out_zp
    w = net.tensors[l.weight].data.astype(np.int64)
    if l.kind == Q.L_FC:
        return [a.reshape(1, -1)], [w.T], 1
    g = l.groups
    cin_g, cout_g = a.shape[0] // g, l.out_c // g
    # im2col with k = (c*KH + ky)*KW + kx; padding positions hold za
    pad = np.full((a.shape[0], a.shape[1] + l.pad_t + l.pad_b, a.shape[2] + l.pad_l + l.pad_r), za, np.int64)
    pad[:, l.pad_t:l.pad_t + a.shape[1], l.pad_l:l.pad_l + a.shape[2]] = a
    taps = []
    for ky in range(l.kh):
        for kx in range(l.kw):
            y0, x0 = ky * l.dil_h, kx * l.dil_w
            taps.append(pad[:, y0:y0 + (l.out_h - 1) * l.stride_h + 1:l.stride_h,
                            x0:x0 + (l.out_w - 1) * l.stride_w + 1:l.stride_w])
    cols = np.stack(taps, axis=1).reshape(a.shape[0], l.kh * l.kw, l.out_h * l.out_w)
    A, W = [], []
    for gi in range(g):
        A.append(cols[gi * cin_g:(gi + 1) * cin_g].reshape(cin_g * l.kh * l.kw, -1).T)   # (M, K)
        W.append(w[gi * cout_g:(gi + 1) * cout_g].reshape(cout_g, -1).T)              # (K, N)
    return A, W, g


def array_accumulators(net: Q.Net, i: int, outs: Sequence[np.ndarray], arch: ArrayArch,
                       gemms: Sequence[Gemm]):
    """Layer i (CONV/FC) as the accelerator computes it: (the int64 values requant_c takes,
    shape (out_c, out_h, out_w), the number of accumulator additions that overflowed)."""
    l = net.layers[i]
    t = net.tensors[l.weight]
    za = net.layers[l.inputs[0]].out_zp
    A, W, G = _operands(net, i, outs)
    p, R, C = arch.weight_path_bits, arch.rows, arch.cols
    add = _Adder(arch.acc_bits, arch.overflow)
    skip_w = arch.zero_skip in ("weights", "both")
    K, N = W[0].shape
    M = A[0].shape[0]
    bias = (net.tensors[l.bias].data.astype(np.int64) if l.bias >= 0 else np.zeros(l.out_c, np.int64))
    result = np.empty((l.out_c, M), np.int64)
    for g in range(G):
        a, w = A[g], W[g]
        sl = _slices(w, t, p)
        # step 4: lists
        if arch.dataflow in ("os", "ws"):
            lists = []
            for b0 in range(0, N, C):
                blk = w[:, b0:b0 + C]
                ks = np.nonzero((blk != 0).any(axis=1))[0] if skip_w else np.arange(K)
                lists.append(ks)
        else:
            lists = []
            for k0 in range(0, K, R):
                blk = w[k0:k0 + R, :]
                lists.append(np.nonzero((blk != 0).any(axis=0))[0] if skip_w else np.arange(N))
        entry = np.zeros((M, N), np.int64)

        def product(ms, k, ns, s):
            return a[ms, k][:, None] * sl[s][k, ns][None, :] * (1 << (p * s))

        for gm in gemms:
            if gm.group != g:
                continue
            ms = np.arange(gm.m0, gm.m0 + gm.m_len)
            ns = np.arange(gm.n0, gm.n0 + gm.n_len)
            if arch.dataflow == "os":
                lst = lists[gm.n0 // C]
                reg = np.zeros((len(ms), len(ns)), np.int64)
                for pos in range(gm.k0, gm.k0 + gm.k_len):
                    for s in range(len(sl)):
                        reg = add(reg, product(ms, lst[pos], ns, s))
                cur = entry[np.ix_(ms, ns)]
                entry[np.ix_(ms, ns)] = reg if gm.first else add(cur, reg)
            elif arch.dataflow == "ws":
                lst = lists[gm.n0 // C]
                if gm.first:
                    entry[np.ix_(ms, ns)] = 0
                for b0 in range(gm.k0, gm.k0 + gm.k_len, R):
                    for s in range(len(sl)):
                        psum = np.zeros((len(ms), len(ns)), np.int64)
                        for pos in range(b0, min(b0 + R, gm.k0 + gm.k_len)):
                            psum = add(psum, product(ms, lst[pos], ns, s))
                        entry[np.ix_(ms, ns)] = add(entry[np.ix_(ms, ns)], psum)
            else:  # is
                if gm.first:
                    entry[np.ix_(ms, ns)] = 0
                for b0 in range(gm.k0, gm.k0 + gm.k_len, R):
                    nl = lists[b0 // R]
                    for s in range(len(sl)):
                        psum = np.zeros((len(ms), len(nl)), np.int64)
                        for k in range(b0, min(b0 + R, gm.k0 + gm.k_len)):
                            psum = add(psum, product(ms, k, nl, s))
                        entry[np.ix_(ms, nl)] = add(entry[np.ix_(ms, nl)], psum)
        # steps 2 and 6: the folded bias through a 32-bit saturating adder
        folded = bias[g * N:(g + 1) * N] - za * w.sum(axis=0)
        result[g * N:(g + 1) * N] = Q.sat32(entry + folded[None, :]).T
    return result.reshape(l.out_c, l.out_h, l.out_w), add.overflows


def evaluate_on_array(net: Q.Net, x, arch: ArrayArch, gemms: Dict[int, List[Gemm]]):
    """Every layer's output as the accelerator computes it: CONV/FC by section 9, the other
    kinds as qsim_qbin.eval_layer. Returns (outputs, overflows per layer)."""
    outs: List[np.ndarray] = []
    ovf: List[int] = []
    for i, l in enumerate(net.layers):
        if l.kind in (Q.L_CONV, Q.L_FC):
            acc, n = array_accumulators(net, i, outs, arch, gemms.get(i, []))
            outs.append(Q.layer_requant(l, acc))
            ovf.append(n)
        else:
            outs.append(Q.eval_layer(net, i, outs, 32, x))
            ovf.append(0)
    return outs, ovf
