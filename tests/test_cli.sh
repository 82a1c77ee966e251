#!/bin/bash
# Bad-input paths of the qsim command (cli/main.c). Every case must exit with
# the documented code (1 for a failure, 2 for a usage error; never a signal:
# < 128), print one clear message that names the file / place / option, and
# not trip a sanitizer. Also: --help, --version and COMMAND --help exit 0.
#
# usage: test_cli.sh QSIM_BINARY [SOURCE_DIR]
set -u
QSIM=${1:?usage: test_cli.sh QSIM_BINARY [SOURCE_DIR]}
ROOT=${2:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
ARCH=$ROOT/models/arch/dlac.cfg
NET=$ROOT/models/nets/tiny.qbin
T=$(mktemp -d /tmp/qsim_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT

pass=0
fail=0

. "$(dirname "$0")/cli_expect.sh"

# ---- fixtures ------------------------------------------------------------------
head -c 100 "$NET" >"$T/truncated.qbin"
: >"$T/empty.qbin"
sed 's/^rows = 16 /rowz = 16 /' "$ARCH" >"$T/badkey.cfg"
BADLINE=$(grep -n '^rowz' "$T/badkey.cfg" | cut -d: -f1)
sed 's/^rows = 16 /rows = 16x /' "$ARCH" >"$T/badval.cfg"
"$PY" - "$T" "$ROOT" <<'EOF'
import sys, os
import numpy as np
t, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "scripts"))
import qsim_qbin as Q
np.save(os.path.join(t, "shape.npy"), np.zeros((3, 8, 9), np.int32))       # tiny wants (3, 8, 8)
np.save(os.path.join(t, "float.npy"), np.zeros((3, 8, 8), np.float32))
np.save(os.path.join(t, "range.npy"), np.full((3, 8, 8), 1000, np.int32))  # int8 input
np.save(os.path.join(t, "good.npy"), np.zeros((3, 8, 8), np.int32))
with open(os.path.join(t, "corrupt.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00\x40\x00{'descr': '<i4', 'fortran_order': False, 'shape': (3, 8, 8), }   \n")
    f.write(b"\x01\x02\x03")                                                # data cut short
with open(os.path.join(t, "garbage.npy"), "wb") as f:
    f.write(b"this is not a numpy file at all")
# a layer that cannot fit 1 KiB buffers: a 3x3 conv over a 2000-pixel-wide image
n = Q.Net("wide")
x = n.input("in", c=1, h=4, w=2000, bits=4, signed=False)
w = np.ones((4, 1, 3, 3), np.int64)
n.conv("wide_conv", x, w, pad=1, wbits=2, bits=4, signed=False, multiplier=0.01)
n.save(os.path.join(t, "wide.qbin"))
# names longer than any fixed column, alike in their first 16 characters (MobileNetV2's features.N.conv.M)
n = Q.Net("long_names")
x = n.input("in", c=2, h=4, w=4, bits=4, signed=False, scale=0.25, zp=3)
w = np.ones((2, 2, 1, 1), np.int64)
y = n.conv("features.1.conv.0.long_name_a", x, w, wbits=2, bits=4, signed=False, multiplier=0.25)
n.conv("features.1.conv.0.long_name_b", y, w, wbits=2, bits=4, signed=False, multiplier=0.25)
n.save(os.path.join(t, "long_names.qbin"))
np.save(os.path.join(t, "x_bad.npy"), np.zeros((3, 15), np.int32))   # decode steps of the wrong width
EOF

# ---- missing / malformed inputs ----------------------------------------------------
expect "missing net file" 1 "$T/nonexistent.qbin" -- "$QSIM" run --arch "$ARCH" "$T/nonexistent.qbin"
expect "missing net file (info)" 1 "$T/nonexistent.qbin" -- "$QSIM" info "$T/nonexistent.qbin"
expect "missing net file (compile)" 1 "$T/nonexistent.qbin" -- "$QSIM" compile --arch "$ARCH" "$T/nonexistent.qbin"
expect "truncated .qbin" 1 "$T/truncated.qbin" -- "$QSIM" run --arch "$ARCH" "$T/truncated.qbin"
# an endless stream is refused at its first bytes (it once read 4 GB first)
expect "/dev/zero as .qbin" 1 "/dev/zero: byte 0 (header): bad magic" -- timeout 10 "$QSIM" info /dev/zero
expect "/dev/zero as --input" 1 "/dev/zero: not a .npy file" -- timeout 10 "$QSIM" run --arch "$ARCH" "$NET" --input /dev/zero
expect "truncated .qbin (info)" 1 "$T/truncated.qbin" -- "$QSIM" info "$T/truncated.qbin"
expect "empty .qbin" 1 "$T/empty.qbin" -- "$QSIM" run --arch "$ARCH" "$T/empty.qbin"
expect "not a .qbin (a .cfg)" 1 "$ARCH" -- "$QSIM" info "$ARCH"
expect "missing cfg" 1 "$T/nonexistent.cfg" -- "$QSIM" run --arch "$T/nonexistent.cfg" "$NET"
expect "wrong cfg key (file:line)" 1 "$T/badkey.cfg:$BADLINE" "rowz" -- "$QSIM" run --arch "$T/badkey.cfg" "$NET"
expect "bad cfg value (file:line)" 1 "$T/badval.cfg:$BADLINE" "16x" -- "$QSIM" compile --arch "$T/badval.cfg" "$NET"
expect "unknown --set key" 1 "--set array.rowz" -- "$QSIM" run --arch "$ARCH" --set array.rowz=4 "$NET"
expect "unknown --set section" 1 "--set bogus.rows" -- "$QSIM" run --arch "$ARCH" --set bogus.rows=4 "$NET"
expect "malformed --set" 1 "rows" -- "$QSIM" run --arch "$ARCH" --set rows "$NET"
expect "bad --set value" 1 "--set array.rows" "abc" -- "$QSIM" run --arch "$ARCH" --set array.rows=abc "$NET"
expect "--input of wrong shape" 1 "$T/shape.npy" "(3,8,8)" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/shape.npy" -q
expect "--input of float dtype" 1 "$T/float.npy" "dtype '<f4' is not" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/float.npy" -q
expect "--input corrupt .npy" 1 "$T/corrupt.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/corrupt.npy" -q
expect "--input not a .npy" 1 "$T/garbage.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/garbage.npy" -q
expect "--input missing" 1 "$T/none.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/none.npy" -q
expect "--input values out of range" 1 "$T/range.npy" "1000" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/range.npy" -q
expect "unwritable --json" 1 "/nonexistent/x.json" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --json /nonexistent/x.json -q
expect "unwritable --csv" 1 "/nonexistent/x.csv" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --csv /nonexistent/x.csv -q
expect "unwritable --dump-outputs" 1 "$T/good.npy/sub" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --dump-outputs "$T/good.npy/sub" -q
expect "activations too wide for the arch" 1 "conv" "max_act_bits" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=4 "$NET" -q
expect "network does not fit" 1 "wide_conv" "fit" -- "$QSIM" run --arch "$ARCH" --set buffer.ifmap.size_kib=1 --set buffer.weight.size_kib=1 --set buffer.accum.size_kib=1 "$T/wide.qbin" -q
expect "network does not fit (compile)" 1 "wide_conv" "fit" -- "$QSIM" compile --arch "$ARCH" --set buffer.ifmap.size_kib=1 "$T/wide.qbin"

# ---- usage errors (exit 2) -------------------------------------------------------------
expect "unknown option" 2 "--bogus" "--help" -- "$QSIM" run --arch "$ARCH" "$NET" --bogus
expect "unknown option (compile)" 2 "--engine" -- "$QSIM" compile --arch "$ARCH" "$NET" --engine fast
expect "option without value" 2 "--arch" -- "$QSIM" run "$NET" --arch
expect "unknown engine" 2 "turbo" -- "$QSIM" run --arch "$ARCH" "$NET" --engine turbo
# --engine rtl (docs/waveforms.md): its options, and no verilator (nothing is built in these cases)
expect "rtl tiles reversed" 2 "--rtl-tiles '3:1': a tile range" -- "$QSIM" run --arch "$ARCH" "$NET" --engine rtl --rtl-tiles 3:1
expect "rtl tiles not a number" 2 "--rtl-tiles 'x'" -- "$QSIM" run --arch "$ARCH" "$NET" --engine rtl --rtl-tiles x
expect "rtl tiles without rtl" 2 "need --engine rtl" -- "$QSIM" run --arch "$ARCH" "$NET" --rtl-tiles 0
expect "rtl window: no such layer" 1 "no layer named 'nope'" -- "$QSIM" run --arch "$ARCH" "$NET" --engine rtl --trace-layer nope
expect "rtl without verilator" 1 "--engine rtl needs verilator (apt install verilator)" -- \
    env QSIM_VERILATOR=/nonexistent/verilator "$QSIM" run --arch "$ARCH" "$NET" --engine rtl
expect "rtl without verilator on PATH" 1 "--engine rtl needs verilator (apt install verilator)" -- \
    env -u QSIM_VERILATOR PATH=/nonexistent "$QSIM" run --arch "$ARCH" "$NET" --engine rtl
expect "no --arch" 2 "--arch" -- "$QSIM" run "$NET"
expect "no network" 2 "network" -- "$QSIM" run --arch "$ARCH"
expect "two networks" 2 "more than one network" -- "$QSIM" run --arch "$ARCH" "$NET" "$NET"
expect "--labels without --input" 2 "--labels" -- "$QSIM" run --arch "$ARCH" "$NET" --labels "$T/good.npy"
expect "unknown command" 2 "frobnicate" -- "$QSIM" frobnicate
expect "no command" 2 "no command" -- "$QSIM"
expect "trace window backwards" 2 "--trace-to 5 is before --trace-from" -- "$QSIM" run --arch "$ARCH" "$NET" --fst "$T/w.fst" --trace-from 100 --trace-to 5
expect "trace layer and window" 2 "--trace-layer" -- "$QSIM" run --arch "$ARCH" "$NET" --fst "$T/w.fst" --trace-layer conv1 --trace-to 5
expect "topology to info" 2 "SCALE-Sim topology" "qsim run" -- "$QSIM" info "$ROOT/models/scalesim/resnet18.csv"
expect "topology to compile" 2 "SCALE-Sim topology" -- "$QSIM" compile --arch "$ARCH" "$ROOT/models/scalesim/resnet18.csv"
expect "compile -o is gone" 2 "unknown option '-o'" -- "$QSIM" compile --arch "$ARCH" "$NET" -o "$T/p.qprog"

# ---- help and version (exit 0) -----------------------------------------------------------
expect "--help" 0 "usage: qsim" "run" -- "$QSIM" --help
expect "--version" 0 "qsim " -- "$QSIM" --version
expect "run --help" 0 "usage: qsim run" "--engine" -- "$QSIM" run --help
expect "compile --help" 0 "usage: qsim compile" -- "$QSIM" compile --help
expect "info --help" 0 "usage: qsim info" -- "$QSIM" info --help
# names are printed whole (columns sized to them), and info gives the input's quantization
expect "info: whole names" 0 "features.1.conv.0.long_name_a " "features.1.conv.0.long_name_b " -- "$QSIM" info "$T/long_names.qbin"
expect "info: input scale and zero point" 0 "scale 0.25, zero point 3" -- "$QSIM" info "$T/long_names.qbin"
expect "run: whole names" 0 "features.1.conv.0.long_name_a " "features.1.conv.0.long_name_b " -- "$QSIM" run --arch "$ARCH" "$T/long_names.qbin"
# one energy unit in the terminal report: the table's column and the total name the same one, and the
# layers add up to the total (independently: the report's own rounding is 3 decimals)
for net in "$NET" "$ROOT/models/nets/demo_w2a4.qbin" "$T/long_names.qbin"; do
    "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$net" >"$T/report.txt" 2>&1
    if $PY - "$T/report.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().splitlines()
head = next(i for i, l in enumerate(text) if l.startswith("layer "))
unit = re.search(r"energy (\w+)$", text[head]).group(1)
rows = []
for l in text[head + 1:]:
    if not l.strip():
        break
    rows.append(float(l.split()[-1]))
m = re.search(r"^energy per inference: ([0-9.]+) (\w+) ", "\n".join(text), re.M)
total, tunit = float(m.group(1)), m.group(2)
ok = unit == tunit and abs(sum(rows) - total) <= 0.0005 * (len(rows) + 1) and 1 <= total < 10000
sys.exit(0 if ok else "table unit %s, total %s %s, layers add to %.3f" % (unit, total, tunit, sum(rows)))
EOF
    then pass=$((pass + 1)); else echo "FAIL: energy units of the report of $net"; fail=$((fail + 1)); fi
done
# buffer bandwidth that throttles the array is said on stderr by run and compile (exit 0); on dlac the
# weight stream of OS needs (16 rows / skip_group 4) groups x 16 cols x 2 bits / 8 = 16 B per step, so one
# 1-byte bank takes 16 cycles a step; the preset's 4 x 4 B banks keep up and nothing is said
DEMO=$ROOT/models/nets/demo_w2a4.qbin
THROTTLE=(--set buffer.weight.banks=1 --set buffer.weight.bank_width_bytes=1)
throttle_check() { # NAME WANT(yes/no) COMMAND...
    local name=$1 want=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$? said=no
    grep -q "^qsim: warning: buffer bandwidth throttles the array" "$T/err" && said=yes
    if [ $rc -eq 0 ] && [ $said = "$want" ] && { [ $want = no ] ||
        grep -q "the weight buffer delivers 1 B/cycle, the 16x16 array reads 16 B per step (16 cycles a step)" "$T/err"; }; then
        pass=$((pass + 1)); printf 'ok   %-34s %s\n' "$name" "$(head -n 1 "$T/err" | cut -c1-100)"
    else
        fail=$((fail + 1)); echo "FAIL $name: exit $rc, warning said: $said, wanted: $want"; sed 's/^/     stderr: /' "$T/err"
    fi
}
throttle_check "run warns of buffer throttling" yes "$QSIM" run --arch "$ARCH" "$DEMO" "${THROTTLE[@]}" -q --json "$T/thr.json"
cp "$T/err" "$T/thr.err"
throttle_check "compile warns of buffer throttling" yes "$QSIM" compile --arch "$ARCH" "$DEMO" "${THROTTLE[@]}"
throttle_check "no warning on the preset" no "$QSIM" run --arch "$ARCH" "$DEMO" -q
throttle_check "no warning on the preset (compile)" no "$QSIM" compile --arch "$ARCH" "$DEMO"
# the run's warning quotes the report's own figures: buffer stalls of the cycles, at least a quarter
if $PY - "$T/thr.json" "$T/thr.err" <<'EOF'
import json, re, sys
t = json.load(open(sys.argv[1]))["total"]
stall, cyc = t["stall_cycles"]["buffer"], t["cycles"]
m = re.search(r"(\d+) of (\d+) cycles", open(sys.argv[2]).read())
sys.exit(not (m and int(m.group(1)) == stall and int(m.group(2)) == cyc and stall >= cyc / 4))
EOF
then pass=$((pass + 1)); else echo "FAIL: run's throttle warning does not quote the JSON's stall/cycle figures"; fail=$((fail + 1)); fi
# and a good run still works with the same fixtures
expect "good run" 0 -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/good.npy" -q

# ---- the bank-level DRAM model: --dram-trace and the report's DRAM figures --------------------
expect "--dram-trace needs a bank model" 1 "--dram-trace" "model = simple" -- \
    "$QSIM" run --arch "$ARCH" "$NET" --dram-trace "$T/x.trace" -q
expect "--dram-trace unwritable" 1 "/nonexistent/dir/x.trace" -- \
    "$QSIM" run --arch "$ARCH" "$NET" --set dram.model=ddr4_3200 --dram-trace /nonexistent/dir/x.trace -q
expect "bad DRAM key names file and key" 1 "dlac.cfg: --set dram.tRAS" "tRAS > tRC" -- \
    "$QSIM" run --arch "$ARCH" "$NET" --set dram.model=ddr4_3200 --set dram.tRAS=80 -q
# ---- decoding with a KV cache (docs/decode.md) --------------------------------------
DKV="$ROOT/models/nets/decoder_kv.qbin"
expect "decode: a KV cache longer than its maximum names file and layer" 1 "$DKV: layer 8 'k_cache' (kvcache)" \
    "a KV cache longer than its maximum: 33 tokens (a prompt of 8 + 25 decode steps) exceed the maximum context 32" -- \
    "$QSIM" run --arch "$ARCH" "$DKV" --decode 25 -q
expect "decode: a network without caches is refused naming the layer" 1 "decoder_tiny.qbin: layer 15 'softmax' (softmax)" \
    "a softmax along the tokens mixes them" -- "$QSIM" run --arch "$ARCH" "$ROOT/models/nets/decoder_tiny.qbin" --decode 2 -q
expect "decode: a CNN cannot decode" 1 "tiny.qbin: layer 0 'input'" "its W must be 1" -- \
    "$QSIM" run --arch "$ARCH" "$ROOT/models/nets/tiny.qbin" --decode 2 -q
expect "decode: steps not a number" 2 "--decode 'x'" -- "$QSIM" run --arch "$ARCH" "$DKV" --decode x
expect "decode: --decode-input needs --decode" 2 "need --decode N" -- \
    "$QSIM" run --arch "$ARCH" "$DKV" --decode-input "$T/garbage.npy"
expect "decode: step inputs of the wrong shape" 1 "the steps' inputs have shape (3,16)" -- \
    "$QSIM" run --arch "$ARCH" "$DKV" --decode 3 --decode-input "$T/x_bad.npy"
expect "model = tlm outside SystemC is refused" 1 "dlac.cfg: [dram] model = tlm" "SystemC wrapper" -- \
    "$QSIM" run --arch "$ARCH" "$NET" --set dram.model=tlm -q
expect "model = tlm refuses bank-model keys" 1 "dlac.cfg: --set dram.tCL" "model = tlm ignores it" -- \
    "$QSIM" run --arch "$ARCH" "$NET" --set dram.model=tlm --set dram.tCL=20 -q
# (without the preset's write buffer, which answers reads of posted writes and merges rewrites, every
# trace line is one DRAM burst)
if "$QSIM" run --arch "$ARCH" "$NET" --set dram.model=hbm2 --set dram.write_buffer=0 --set dma.outstanding=4 \
        --dram-trace "$T/d.trace" --json "$T/d.json" -q 2>"$T/err" && $PY - "$T/d.trace" "$T/d.json" <<'EOF2'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
d = json.load(open(sys.argv[2]))
ok = True
def bad(msg):
    global ok
    print("   ", msg)
    ok = False
# docs/dram.md "Request traces": 0x<hex address> READ|WRITE <DRAM cycle>, one 64-byte burst (HBM2) each
cyc = -1
for l in lines:
    m = re.fullmatch(r"0x([0-9a-f]+) (READ|WRITE) ([0-9]+)", l)
    if not m: bad(f"trace line {l!r}"); break
    if int(m.group(1), 16) % 64: bad(f"address not on a burst: {l!r}")
    if int(m.group(3)) < cyc: bad(f"cycles decrease at {l!r}")
    cyc = int(m.group(3))
t = d["total"]["dram"]
if len(lines) != t["read_bursts"] + t["write_bursts"]: bad(f"{len(lines)} trace lines, report {t['read_bursts']} + {t['write_bursts']} bursts")
if sum(1 for l in lines if " WRITE " in l) != t["write_bursts"]: bad("writes")
# the bursts cover the bytes moved: at least bytes / 64 of them
if t["read_bursts"] * 64 < d["total"]["dram_bytes"] - sum(L["dram_write_bytes"] for L in d["layers"]): bad("too few read bursts")
for L in d["layers"] + [d["total"]]:
    x = L["dram"]
    e = x["energy_pj"]
    if abs(sum(e.values()) - L["energy_breakdown_pj"]["dram"]) > 1e-6 * max(1.0, L["energy_breakdown_pj"]["dram"]): bad("DRAM energy parts")
    n = x["row_hits"] + x["row_misses"] + x["row_conflicts"]
    if n and abs(x["row_hit_rate"] - x["row_hits"] / n) > 1e-12: bad("row hit rate")
if d["config"]["dram_model"] != "hbm2" or d["config"]["dma_outstanding"] != 4: bad("config")
sys.exit(0 if ok else 1)
EOF2
then
    pass=$((pass + 1))
else
    echo "FAIL: --dram-trace / the report's DRAM figures: $(head -n 2 "$T/err")"
    fail=$((fail + 1))
fi

# on a terminal a single inference reports its progress (cycles simulated) while it
# runs; the answers must be those of a run without a terminal (`script` gives a pty)
if command -v script >/dev/null; then
    script -qec "'$QSIM' run --arch '$ARCH' --engine detailed '$ROOT/models/nets/demo_w2a4.qbin' --json '$T/tty.json' -q" \
        /dev/null >/dev/null 2>&1
    "$QSIM" run --arch "$ARCH" --engine detailed "$ROOT/models/nets/demo_w2a4.qbin" --json "$T/notty.json" -q
    if $PY -c "
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop('wall_seconds'); b.pop('wall_seconds'); a.pop('command_line'); b.pop('command_line')  # the --json paths differ
sys.exit(a != b)" "$T/tty.json" "$T/notty.json" 2>/dev/null; then
        pass=$((pass + 1))
    else
        echo "FAIL: a run on a terminal (progress shown) gives other answers than one without"
        fail=$((fail + 1))
    fi
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
