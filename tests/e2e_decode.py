#!/usr/bin/python3
"""Decoding with a KV cache, end to end (docs/decode.md).

Random decoder blocks (GPT-2-like: layernorm, table GELU; Llama-like: rmsnorm, rope of Q and K,
SwiGLU; sometimes BitNet's dynquant in front of the projections; 1..3 heads, 1..2 blocks, 4- or
8-bit activations, random zero points) are built twice from the same draws: for a prompt of T
tokens and for T + N tokens. Every parameter is drawn independently of the token count, so the
two files differ in their token axis only. Then, for each net:

- the NumPy reference's decode (qbin.decode: prefill of T, N one-token steps, the caches grown
  by its own step rule) gives, for every step, exactly the output row that one prefill of T + N
  tokens gives (qbin.evaluate) -- the reference checked against itself by a different route;
- `qsim run NET_T --input P.npy --decode N --decode-input S.npy --decode-outputs O.npy` gives
  those rows too, with the fast and the detailed engine, on two presets (dlac with a 32-bit
  accumulator, tpu_int8); the two engines' decode JSON agree on every field but the engine name;
- two language models (token ids -> embedding with a position table -> blocks -> LM head ->
  argmax) decoded greedily, each step's input the previous step's id: every chosen id equals the
  prefill of the prompt plus the ids chosen before it, for both engines and the reference;
- without --decode-input (each step's input the last output row before it), qsim equals
  qbin.decode with the same feedback;
- the per-step cycles and KV bytes read grow with the context (the cache is re-read each step).

usage: e2e_decode.py QSIM_BINARY [SOURCE_DIR] [--nets N] [--seed S]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = [("dlac", ["array.acc_bits=32", "array.overflow=wrap"]), ("tpu_int8", [])]


def build(Q, spec, tokens):
    """A decoder of spec (drawn once) for a prompt of `tokens` tokens."""
    rng = np.random.default_rng(spec["seed"])
    d, heads, abits, maxctx = spec["d"], spec["heads"], spec["abits"], spec["max"]
    dh = d // heads
    net = Q.Net("dec")
    lo, hi = Q.int_range(abits, True)
    s_act = 1 / 16

    def out(scale=s_act, zp=0):
        return dict(bits=abits, signed=True, zp=zp, scale=scale)

    def conv(name, src, oc):
        ic = net.layers[src].out_c
        w = rng.integers(-1 if spec["wbits"] == 2 else -7, 2 if spec["wbits"] == 2 else 8, size=(oc, ic, 1, 1))
        mult = 1.0 / (math.sqrt(ic) * (1 if spec["wbits"] == 2 else 4)) * rng.uniform(0.7, 1.4)
        return net.conv(name, src, w, wbits=spec["wbits"], multiplier=mult, **out(zp=int(rng.integers(-3, 4))))

    def norm(name, src):
        if spec["llama"]:
            return net.rmsnorm(name, src, gamma=rng.uniform(0.5, 1.5, d), **out())
        return net.layernorm(name, src, gamma=rng.uniform(0.5, 1.5, d), beta=rng.uniform(-0.2, 0.2, d), **out())

    def proj(name, src, oc, aq):
        if not spec["dyn"]:
            return conv(name, src, oc)
        if src not in aq:
            aq[src] = net.dynquant(net.layers[src].name + ".q", src, bits=abits)
        c = conv(name, aq[src], oc)
        return net.mul(name + ".rescale", c, src, rowmax=True, multiplier=rng.uniform(0.002, 0.01) * 16 / (1 << abits),
                       **out())

    if spec.get("vocab"):  # a language model: token ids -> embedding with positions
        V = spec["vocab"]
        ids = net.input("ids", c=1, h=tokens, w=1, bits=16, signed=False, zp=0, scale=0.0)
        cur = net.embed("wte", ids, rng.integers(lo, hi + 1, size=(V, d)), tbits=abits,
                        positions=rng.integers(lo // 2, hi // 2 + 1, size=(spec.get("pos_rows", maxctx), d)),
                        pbits=abits, **out())
    else:
        cur = net.input("x", c=d, h=tokens, w=1, bits=abits, signed=True, zp=0, scale=s_act)
    for b in range(spec["blocks"]):
        p = "b%d." % b
        aq = {}
        h = norm(p + "ln1", cur)
        q, k, v = (proj(p + n, h, d, aq) for n in "qkv")
        if spec["llama"]:
            q = net.rope(p + "rope_q", q, dh, positions=maxctx, **out())
            k = net.rope(p + "rope_k", k, dh, positions=maxctx, **out())
        qh, kh, vh = (net.reshape(p + n + "h", src, heads, dh, tokens) for n, src in (("q", q), ("k", k), ("v", v)))
        kc = net.kvcache(p + "k_cache", kh, maxctx)
        vc = net.kvcache(p + "v_cache", vh, maxctx)
        sc = net.matmul(p + "scores", qh, kc, trans_a=True, multiplier=rng.uniform(0.5, 1.5) / (dh * 4), **out())
        pr = net.softmax(p + "softmax", sc, axis=2, bits=8, causal=True)
        o = net.matmul(p + "attn_v", vc, pr, trans_b=True, multiplier=rng.uniform(0.5, 1.5) / 64, **out())
        om = net.reshape(p + "merge", o, d, tokens, 1)
        cur = net.add(p + "res1", cur, proj(p + "proj", om, d, aq), 1, 1, **out())
        h2 = norm(p + "ln2", cur)
        aq2 = {}
        if spec["llama"]:
            g = net.lut(p + "silu", proj(p + "gate", h2, 2 * d, aq2), fn=lambda t: t / (1 + math.exp(-t)), **out())
            f = net.mul(p + "swiglu", g, proj(p + "up", h2, 2 * d, aq2), **out())
        else:
            f = net.lut(p + "gelu", proj(p + "fc1", h2, 2 * d, aq2),
                        fn=lambda t: 0.5 * t * (1 + math.erf(t / math.sqrt(2))), **out())
        cur = net.add(p + "res2", cur, proj(p + "fc2", f, d, aq2), 1, 1, **out())
    if spec.get("vocab"):  # final norm, LM head, the greedy choice: the next token's id
        logits = conv("lm_head", norm("norm_f", cur), spec["vocab"])
        net.argmax("next_token", logits, bits=16)
    net.validate()
    return net


def check_greedy(Q, a, tmp, rng, n):
    """A language model (ids -> embedding with positions -> blocks -> LM head -> argmax) decoded
    greedily: each step's input is the previous step's next-token id. Step i's id must equal
    what one prefill of the prompt followed by the ids chosen so far gives at position T + i --
    for qsim (both engines) and for the reference's decode."""
    heads = int(rng.integers(1, 3))
    spec = dict(seed=int(rng.integers(1 << 30)), heads=heads, d=heads * 2 * int(rng.integers(2, 4)), abits=8,
                wbits=int(rng.choice([2, 4, 8])), blocks=int(rng.integers(1, 3)), llama=bool(n % 2), dyn=False,
                vocab=int(rng.integers(20, 60)))
    T, N = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    spec["max"] = T + N
    net_t, net_tn = build(Q, spec, T), build(Q, spec, T + N)
    prompt = rng.integers(0, spec["vocab"], size=(1, T, 1))
    _, ref = Q.decode(net_t, prompt, N)
    base = os.path.join(tmp, "lm%d" % n)
    net_t.save(base + ".qbin")
    np.save(base + ".prompt.npy", prompt.astype(np.uint16))
    arch = os.path.join(a.src, "models", "arch", "dlac.cfg")
    reports = {}
    for eng in ("fast", "detailed"):
        o, js = "%s.%s.npy" % (base, eng), "%s.%s.json" % (base, eng)
        run([a.qsim, "run", "--arch", arch, base + ".qbin", "--input", base + ".prompt.npy", "--decode", str(N),
             "--decode-outputs", o, "--json", js, "-q", "--engine", eng]
            + [t for s_ in CONFIGS[0][1] for t in ("--set", s_)])
        got = np.load(o).reshape(N)
        first = Q.evaluate(net_t, prompt)[net_t.output][0, T - 1, 0]
        chosen = np.concatenate([prompt.ravel(), [first], got[:N - 1]])
        full = Q.evaluate(net_tn, chosen.reshape(1, T + N, 1))[net_tn.output][0, :, 0]
        for i in range(N):
            if got[i] != full[T + i] or got[i] != np.asarray(ref[i]).ravel()[0]:
                raise SystemExit("FAIL lm %d %s (%s): step %d chose %d; the prefill of the chosen ids gives %d, "
                                 "the reference's decode %d" % (n, spec, eng, i, got[i], full[T + i],
                                                                 np.asarray(ref[i]).ravel()[0]))
        reports[eng] = json.load(open(js))["decode_run"]
        reports[eng].pop("engine")
    if reports["fast"] != reports["detailed"]:
        raise SystemExit("FAIL lm %d: fast and detailed decode reports differ" % n)
    # a position table one row longer than the prompt: the second step is refused, naming the layer
    short = build(Q, dict(spec, pos_rows=T + 1), T)
    short.save(base + ".short.qbin")
    r = subprocess.run([a.qsim, "run", "--arch", arch, base + ".short.qbin", "--input", base + ".prompt.npy",
                        "--decode", "2", "-q"], capture_output=True, text=True)
    want = "layer 1 'wte' (embed): position table 'wte.positions' holds %d positions; a decode step at " \
           "position %d needs %d" % (T + 1, T + 1, T + 2)
    if r.returncode != 1 or want not in r.stderr:
        raise SystemExit("FAIL lm %d: a position table too short for step 2: rc %d, %s (want '%s')"
                         % (n, r.returncode, r.stderr.strip(), want))
    print("lm %d: vocab %d, d %d, %d blocks, %s, W%d: prompt %s, greedy %s: bit-exact, fast == detailed"
          % (n, spec["vocab"], spec["d"], spec["blocks"], "llama" if spec["llama"] else "gpt2", spec["wbits"],
             prompt.ravel().tolist(), got.tolist()))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("FAIL: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qsim")
    ap.add_argument("src", nargs="?", default=os.path.dirname(HERE))
    ap.add_argument("--nets", type=int, default=6)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.src, "scripts"))
    from qsim import qbin as Q
    rng = np.random.default_rng(a.seed)
    tmp = tempfile.mkdtemp(prefix="e2e_decode_")
    checked = 0
    for n in range(a.nets):
        heads = int(rng.integers(1, 4))
        spec = dict(seed=int(rng.integers(1 << 30)), heads=heads, d=heads * 2 * int(rng.integers(2, 5)),
                    abits=int(rng.choice([4, 8])), wbits=int(rng.choice([2, 4, 8])), blocks=int(rng.integers(1, 3)),
                    llama=bool(n % 2), dyn=bool(rng.integers(0, 2)) and n % 3 == 2)
        T, N = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        spec["max"] = T + N + int(rng.integers(0, 3))
        net_t, net_tn = build(Q, spec, T), build(Q, spec, T + N)
        lo, hi = Q.int_range(spec["abits"], True)
        x = rng.integers(lo, hi + 1, size=(spec["d"], T + N, 1))
        full = Q.evaluate(net_tn, x)[net_tn.output]
        _, steps = Q.decode(net_t, x[:, :T], N, step_inputs=[x[:, T + i, 0] for i in range(N)])
        for i in range(N):
            if not np.array_equal(steps[i][:, 0, 0], full[:, T + i, 0]):
                raise SystemExit("FAIL net %d %s: reference decode step %d != prefill of %d tokens" % (n, spec, i, T + N))
        _, fed = Q.decode(net_t, x[:, :T], N)
        base = os.path.join(tmp, "n%d" % n)
        net_t.save(base + ".qbin")
        np.save(base + ".prompt.npy", x[:, :T].astype(np.int32))
        np.save(base + ".steps.npy", x[:, T:, 0].T.astype(np.int32).copy())
        for cfg, sets in CONFIGS:
            arch = os.path.join(a.src, "models", "arch", cfg + ".cfg")
            setargs = [t for s_ in sets for t in ("--set", s_)]
            reports = {}
            for eng in ("fast", "detailed"):
                js, o = "%s.%s.%s.json" % (base, cfg, eng), "%s.%s.%s.npy" % (base, cfg, eng)
                run([a.qsim, "run", "--arch", arch, base + ".qbin", "--input", base + ".prompt.npy", "--decode", str(N),
                     "--decode-input", base + ".steps.npy", "--decode-outputs", o, "--json", js, "-q", "--engine", eng]
                    + setargs)
                got = np.load(o)
                for i in range(N):
                    if not np.array_equal(got[i, :, 0, 0], full[:, T + i, 0]):
                        raise SystemExit("FAIL net %d %s on %s (%s): step %d output %s != prefill of %d tokens %s"
                                         % (n, spec, cfg, eng, i, got[i, :, 0, 0], T + N, full[:, T + i, 0]))
                reports[eng] = json.load(open(js))["decode_run"]
                checked += 1
            f_, d_ = reports["fast"], reports["detailed"]
            f_.pop("engine"), d_.pop("engine")
            if f_ != d_:
                raise SystemExit("FAIL net %d on %s: fast and detailed decode reports differ:\n%s\n%s" % (n, cfg, f_, d_))
            st = f_["steps"]
            for i in range(1, N):
                if st[i]["kv_bytes_read"] < st[i - 1]["kv_bytes_read"] or st[i]["past"] != T + i:
                    raise SystemExit("FAIL net %d: KV bytes read do not grow with the context: %s" % (n, st))
            if st[0]["kv_bytes_written"] <= 0 or f_["prefill"]["kv_bytes_written"] != 0:
                raise SystemExit("FAIL net %d: KV bytes written: prefill %s (a view: 0), step 0 %s"
                                 % (n, f_["prefill"]["kv_bytes_written"], st[0]["kv_bytes_written"]))
            if cfg == "dlac" and spec["abits"] == 8 and not spec["dyn"]:  # fed back: the output row is the next input
                o = base + ".fed.npy"
                run([a.qsim, "run", "--arch", arch, base + ".qbin", "--input", base + ".prompt.npy", "--decode", str(N),
                     "--decode-outputs", o, "-q"] + setargs)
                got = np.load(o)
                for i in range(N):
                    if not np.array_equal(got[i], fed[i]):
                        raise SystemExit("FAIL net %d: fed-back step %d: qsim %s, reference %s"
                                         % (n, i, got[i].ravel(), fed[i].ravel()))
        print("net %d: d %d heads %d blocks %d T %d + %d steps, %s%s, W%d A%d: bit-exact, fast == detailed"
              % (n, spec["d"], spec["heads"], spec["blocks"], T, N, "llama" if spec["llama"] else "gpt2",
                 " dynquant" if spec["dyn"] else "", spec["wbits"], spec["abits"]))
    for n in range(2):
        check_greedy(Q, a, tmp, rng, n)
        checked += 2
    print("e2e_decode: %d nets and 2 language models, %d runs: every step equals the prefill of T + N tokens"
          % (a.nets, checked))


if __name__ == "__main__":
    main()
