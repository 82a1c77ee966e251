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
expect "--input of float dtype" 1 "$T/float.npy" "dtype" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/float.npy" -q
expect "--input corrupt .npy" 1 "$T/corrupt.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/corrupt.npy" -q
expect "--input not a .npy" 1 "$T/garbage.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/garbage.npy" -q
expect "--input missing" 1 "$T/none.npy" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/none.npy" -q
expect "--input values out of range" 1 "$T/range.npy" "1000" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/range.npy" -q
expect "unwritable --json" 1 "/nonexistent/x.json" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --json /nonexistent/x.json -q
expect "unwritable --csv" 1 "/nonexistent/x.csv" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --csv /nonexistent/x.csv -q
expect "unwritable --dump-outputs" 1 "$T/good.npy/sub" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --dump-outputs "$T/good.npy/sub" -q
expect "unwritable compile -o" 1 "/nonexistent/p.qprog" -- "$QSIM" compile --arch "$ARCH" --set array.max_act_bits=8 "$NET" -o /nonexistent/p.qprog
expect "activations too wide for the arch" 1 "conv" "max_act_bits" -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=4 "$NET" -q
expect "network does not fit" 1 "wide_conv" "fit" -- "$QSIM" run --arch "$ARCH" --set buffer.ifmap.size_kib=1 --set buffer.weight.size_kib=1 --set buffer.accum.size_kib=1 "$T/wide.qbin" -q
expect "network does not fit (compile)" 1 "wide_conv" "fit" -- "$QSIM" compile --arch "$ARCH" --set buffer.ifmap.size_kib=1 "$T/wide.qbin"

# ---- usage errors (exit 2) -------------------------------------------------------------
expect "unknown option" 2 "--bogus" "--help" -- "$QSIM" run --arch "$ARCH" "$NET" --bogus
expect "unknown option (compile)" 2 "--engine" -- "$QSIM" compile --arch "$ARCH" "$NET" --engine fast
expect "option without value" 2 "--arch" -- "$QSIM" run "$NET" --arch
expect "unknown engine" 2 "turbo" -- "$QSIM" run --arch "$ARCH" "$NET" --engine turbo
expect "no --arch" 2 "--arch" -- "$QSIM" run "$NET"
expect "no network" 2 "network" -- "$QSIM" run --arch "$ARCH"
expect "two networks" 2 "more than one network" -- "$QSIM" run --arch "$ARCH" "$NET" "$NET"
expect "--labels without --input" 2 "--labels" -- "$QSIM" run --arch "$ARCH" "$NET" --labels "$T/good.npy"
expect "unknown command" 2 "frobnicate" -- "$QSIM" frobnicate
expect "no command" 2 "usage" -- "$QSIM"

# ---- help and version (exit 0) -----------------------------------------------------------
expect "--help" 0 "usage: qsim" "run" -- "$QSIM" --help
expect "--version" 0 "qsim " -- "$QSIM" --version
expect "run --help" 0 "usage: qsim run" "--engine" -- "$QSIM" run --help
expect "compile --help" 0 "usage: qsim compile" -- "$QSIM" compile --help
expect "info --help" 0 "usage: qsim info" -- "$QSIM" info --help
# and a good run still works with the same fixtures
expect "good run" 0 -- "$QSIM" run --arch "$ARCH" --set array.max_act_bits=8 "$NET" --input "$T/good.npy" -q

# on a terminal a single inference reports its progress (cycles simulated) while it
# runs; the answers must be those of a run without a terminal (`script` gives a pty)
if command -v script >/dev/null; then
    script -qec "'$QSIM' run --arch '$ARCH' --engine detailed '$ROOT/models/nets/demo_w2a4.qbin' --json '$T/tty.json' -q" \
        /dev/null >/dev/null 2>&1
    "$QSIM" run --arch "$ARCH" --engine detailed "$ROOT/models/nets/demo_w2a4.qbin" --json "$T/notty.json" -q
    if $PY -c "
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop('wall_seconds'); b.pop('wall_seconds')
sys.exit(a != b)" "$T/tty.json" "$T/notty.json" 2>/dev/null; then
        pass=$((pass + 1))
    else
        echo "FAIL: a run on a terminal (progress shown) gives other answers than one without"
        fail=$((fail + 1))
    fi
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
