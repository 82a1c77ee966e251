#!/bin/bash
# `qsim run --arch SCALE.cfg TOPOLOGY.csv` end to end (cli/main.c, docs/scalesim.md):
#  - the shipped ResNet-18 topology on the shipped 32x32 OS config with --report-dir: SCALE-Sim's three
#    CSV reports with its exact headers, one row per layer, Python's number format; --json and --csv;
#  - the other shipped files run unchanged;
#  - --engine detailed gives the same figures as fast on a small topology;
#  - bad files exit 1 with one "qsim: file:line: reason" line; usage errors exit 2.
#
# usage: test_scalesim_cli.sh QSIM_BINARY [SOURCE_DIR]
set -u
QSIM=${1:?usage: test_scalesim_cli.sh QSIM_BINARY [SOURCE_DIR]}
ROOT=${2:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
SS=$ROOT/models/scalesim
T=$(mktemp -d /tmp/qsim_scalesim_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

. "$(dirname "$0")/cli_expect.sh"

# a small topology: strided, stride larger than the filter, a classifier
cat >"$T/small.csv" <<'EOF'
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 20, 20, 3, 3, 3, 40, 2,
Conv2, 9, 9, 3, 3, 40, 33, 1,
Short, 9, 9, 1, 1, 40, 70, 2,
FC, 1, 1, 1, 1, 64, 10, 1,
EOF

# ---- ResNet-18 on scale.cfg with --report-dir ------------------------------------------------
if "$QSIM" run --arch "$SS/scale.cfg" "$SS/resnet18.csv" --report-dir "$T/rep" --json "$T/r.json" \
        --csv "$T/r.csv" >"$T/table" 2>"$T/err"; then
    ok "resnet18 on scale.cfg runs"
else
    bad "resnet18 on scale.cfg runs" "exit $?: $(head -n 3 "$T/err")"
fi
[ -s "$T/err" ] && bad "resnet18: nothing on stderr" "$(head -n 2 "$T/err")" || ok "resnet18: nothing on stderr"
grep -q "SCALE-Sim figures: Total Cycles" "$T/table" && ok "table has SCALE-Sim totals" || bad "table" "no totals line"

"$PY" - "$T" <<'EOF' && ok "report files: headers, rows, number format, JSON, CSV" || bad "report files" "see above"
import csv, json, math, sys
t = sys.argv[1]
HEAD = {
    "COMPUTE_REPORT.csv": "LayerID, Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,",
    "BANDWIDTH_REPORT.csv": "LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                            "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,",
    "DETAILED_ACCESS_REPORT.csv": "LayerID, "
        "SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, "
        "SRAM Filter Start Cycle, SRAM Filter Stop Cycle, SRAM Filter Reads, "
        "SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, SRAM OFMAP Writes, "
        "DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
        "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, "
        "DRAM OFMAP Start Cycle, DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,",
}
# which columns SCALE-Sim writes as Python ints (the rest are floats)
INTS = {"COMPUTE_REPORT.csv": {0, 1, 2}, "BANDWIDTH_REPORT.csv": {0},
        "DETAILED_ACCESS_REPORT.csv": {0, 3, 6, 9, 12, 15, 18}}
ok = True
def fail(msg):
    global ok
    print("   ", msg)
    ok = False
rows = {}
for name, head in HEAD.items():
    lines = open(f"{t}/rep/{name}").read().split("\n")
    if lines[0] != head: fail(f"{name}: header {lines[0]!r}")
    if lines[-1] != "": fail(f"{name}: no final newline")
    body = lines[1:-1]
    if len(body) != 21: fail(f"{name}: {len(body)} rows, expected 21")
    ncols = head.count(",")
    for i, line in enumerate(body):
        if not line.endswith(","): fail(f"{name} row {i}: no trailing comma")
        vals = line[:-1].split(", ")
        if len(vals) != ncols: fail(f"{name} row {i}: {len(vals)} values, expected {ncols}")
        for j, v in enumerate(vals):
            if j in INTS[name]:
                if str(int(v)) != v: fail(f"{name} row {i} col {j}: {v!r} is not str(int)")
            elif repr(float(v)) != v: fail(f"{name} row {i} col {j}: {v!r} is not Python's repr of a float")
        if int(vals[0]) != i: fail(f"{name} row {i}: LayerID {vals[0]}")
    rows[name] = [l[:-1].split(", ") for l in body]
# the reports agree with each other and with the JSON
d = json.load(open(f"{t}/r.json"))
if len(d["layers"]) != 21: fail("json: layers")
if d["topology"]["form"] != "conv" or d["scalesim_config"]["run_name"] != "scale_example_run_32x32_os": fail("json header")
tot = 0
for i, (c, b, a, L) in enumerate(zip(rows["COMPUTE_REPORT.csv"], rows["BANDWIDTH_REPORT.csv"],
                                     rows["DETAILED_ACCESS_REPORT.csv"], d["layers"])):
    s = L["scalesim"]
    total = int(c[1]); tot += total
    if total != s["total_cycles"] or int(c[2]) != s["stall_cycles"]: fail(f"layer {i}: compute report vs json")
    if total + 1 != L["cycles"]: fail(f"layer {i}: Total Cycles {total} vs qsim cycles {L['cycles']}")
    m, n, k = L["mapping"]["M"], L["mapping"]["N"], L["mapping"]["K"]
    if abs(float(c[3]) - m * n * k * 100 / (total * 32 * 32)) > 1e-9: fail(f"layer {i}: Overall Util %")
    for col, key in ((1, "ifmap_sram_reads"), (2, "filter_sram_reads"), (3, "ofmap_sram_writes")):
        if abs(float(b[col]) - s[key] / total) > 1e-12: fail(f"layer {i}: SRAM BW {col}")
    if int(a[3]) != s["ifmap_sram_reads"] or int(a[18]) != s["ofmap_dram_writes"]: fail(f"layer {i}: detailed")
if tot != d["total"]["scalesim"]["total_cycles"]: fail("json total")
# SCALE-Sim's shapes: no padding, ceil((H - R + S) / S)
if d["layers"][0]["out_shape"] != [64, 110, 110] or d["layers"][7]["out_shape"] != [128, 29, 29]: fail("shapes")
# Conv1's ifmap (224 x 224 x 3 one-byte words, 7x7 stride 2 touches every one)
# exceeds half of the 64 KiB SRAM: SCALE-Sim refetches what left its window
if int(rows["DETAILED_ACCESS_REPORT.csv"][0][12]) <= 224 * 224 * 3: fail("Conv1 DRAM IFMAP Reads")
q = list(csv.DictReader(open(f"{t}/r.csv")))
if len(q) != 21 or q[0]["layer"] != "Conv1" or int(q[0]["ss_total_cycles"]) != int(rows["COMPUTE_REPORT.csv"][0][1]):
    fail("--csv")
sys.exit(0 if ok else 1)
EOF

# ---- the other shipped files run unchanged --------------------------------------------------
for cfg in scale google eyeriss; do
    if "$QSIM" run --arch "$SS/$cfg.cfg" "$SS/gemm_example.csv" -q --report-dir "$T/g_$cfg" 2>"$T/err" &&
       [ "$(wc -l <"$T/g_$cfg/COMPUTE_REPORT.csv")" = 6 ]; then ok "gemm_example.csv on $cfg.cfg"
    else bad "gemm_example.csv on $cfg.cfg" "$(head -n 2 "$T/err")"; fi
done
"$QSIM" run --arch "$SS/scale.cfg" "$SS/alexnet.csv" -q --report-dir "$T/alex" 2>"$T/err" &&
    [ "$(wc -l <"$T/alex/COMPUTE_REPORT.csv")" = 6 ] && ok "alexnet.csv on scale.cfg" ||
    bad "alexnet.csv on scale.cfg" "$(head -n 2 "$T/err")"
# a native qsim configuration takes topologies too
"$QSIM" run --arch "$ROOT/models/arch/edge.cfg" "$T/small.csv" -q 2>"$T/err" &&
    ok "topology on a native config" || bad "topology on a native config" "$(head -n 2 "$T/err")"
# exploration: 4-bit weights, half zeros, zero skipping with qsim's own timing, one-row skip groups
"$QSIM" run --arch "$SS/scale.cfg" "$SS/gemm_example.csv" --weight-bits 4 --sparsity 0.5 \
    --set array.zero_skip=both --set array.weight_path_bits=2 --set timing.convention=native \
    --set array.skip_group=1 --json "$T/x.json" -q 2>"$T/err" &&
    "$PY" -c "import json,sys; d=json.load(open('$T/x.json')); sys.exit(0 if d['total']['macs_executed'] < d['total']['macs'] and d['operands']['weight_bits'] == 4 else 1)" &&
    ok "--weight-bits/--sparsity/zero_skip skip work" || bad "exploration flags" "$(head -n 2 "$T/err")"

# ---- detailed engine == fast engine --------------------------------------------------------
for df in os ws is; do
    "$QSIM" run --arch "$SS/scale.cfg" --set array.dataflow=$df "$T/small.csv" -q --report-dir "$T/f_$df" \
        --csv "$T/f_$df.csv" --engine fast 2>"$T/err1" &&
    "$QSIM" run --arch "$SS/scale.cfg" --set array.dataflow=$df "$T/small.csv" -q --report-dir "$T/d_$df" \
        --csv "$T/d_$df.csv" --engine detailed 2>"$T/err2" &&
    diff -r "$T/f_$df" "$T/d_$df" >/dev/null && diff "$T/f_$df.csv" "$T/d_$df.csv" >/dev/null &&
        ok "detailed == fast ($df)" || bad "detailed == fast ($df)" "$(cat "$T/err1" "$T/err2" | head -n 2)"
done

# ---- bad files: exit 1, file:line -----------------------------------------------------------
HDR='Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,'
printf '%s\nConv1, 224, 224, 7, 7, 3, 64, 2,\nConv2, 56, 56, 3, 3, 64,\n' "$HDR" >"$T/cols.csv"
printf '%s\nConv1, 224, 0, 7, 7, 3, 64, 2,\n' "$HDR" >"$T/zero.csv"
printf '%s\nConv1, 224, 224, 7, 7, -3, 64, 2,\n' "$HDR" >"$T/neg.csv"
printf '%s\nConv1, 5, 224, 7, 7, 3, 64, 2,\n' "$HDR" >"$T/filter.csv"
printf '%s\nConv1, 224, 224, seven, 7, 3, 64, 2,\n' "$HDR" >"$T/text.csv"
printf '' >"$T/empty.csv"
printf '%s\n' "$HDR" >"$T/header.csv"
printf 'Layer, M, N, K,\nG1, 64, 0, 32,\n' >"$T/gemm0.csv"
sed 's/^Dataflow : os/Dataflow : xs/' "$SS/scale.cfg" >"$T/df.cfg"
DFLINE=$(grep -n '^Dataflow' "$T/df.cfg" | cut -d: -f1)
grep -v '^\[run_presets\]' "$SS/scale.cfg" | grep -v InterfaceBandwidth >"$T/nosec.cfg"
sed 's/^ArrayWidth:.*/ArrayWidth: wide/' "$SS/scale.cfg" >"$T/num.cfg"
AWLINE=$(grep -n '^ArrayWidth' "$T/num.cfg" | cut -d: -f1)
grep -v '^ArrayHeight' "$SS/scale.cfg" >"$T/nokey.cfg"

A=(run --arch "$SS/scale.cfg")
expect "wrong column count" 1 "$T/cols.csv:3:" "6 columns" -- "$QSIM" "${A[@]}" "$T/cols.csv"
expect "zero size" 1 "$T/zero.csv:2:" "IFMAP Width = 0" -- "$QSIM" "${A[@]}" "$T/zero.csv"
expect "negative size" 1 "$T/neg.csv:2:" "Channels = -3" -- "$QSIM" "${A[@]}" "$T/neg.csv"
expect "filter larger than input" 1 "$T/filter.csv:2:" "larger than IFMAP Height" -- "$QSIM" "${A[@]}" "$T/filter.csv"
expect "text for a number" 1 "$T/text.csv:2:" "'seven'" -- "$QSIM" "${A[@]}" "$T/text.csv"
expect "empty topology" 1 "$T/empty.csv" "empty" -- "$QSIM" "${A[@]}" "$T/empty.csv"
expect "scalesim without -c" 2 "no -c CONFIG" -- "$QSIM" scalesim -t "$SS/alexnet.csv" -p "$T/ssp"
expect "scalesim bad -i" 2 "-i 'mnk'" -- "$QSIM" scalesim -c "$SS/scale.cfg" -t "$SS/alexnet.csv" -i mnk
expect "scalesim unknown option" 2 "unknown option '-x'" -- "$QSIM" scalesim -x 1
# scale.py's layout and stdout: <-p>/<run_name>/ and one "Compute cycles:" line per layer
if "$QSIM" scalesim -c "$SS/scale.cfg" -t "$SS/alexnet.csv" -p "$T/ssp" >"$T/ssp.out" 2>"$T/err" &&
   [ -f "$T/ssp/scale_example_run_32x32_os/COMPUTE_REPORT.csv" ] && [ "$(grep -c '^Compute cycles: ' "$T/ssp.out")" = 5 ]
then ok "qsim scalesim: reports in <dir>/<run_name>/, stdout lines"
else bad "qsim scalesim: reports in <dir>/<run_name>/, stdout lines" "$(head -n 2 "$T/err")"; fi
# header only: SCALE-Sim v2 runs nothing and writes its three reports with their headers only; qsim too, with a note
if "$QSIM" "${A[@]}" "$T/header.csv" -q --report-dir "$T/hdr_rep" 2>"$T/err" &&
   grep -q "qsim: note: $T/header.csv: no layers" "$T/err" && [ "$(cat "$T"/hdr_rep/*.csv | wc -l)" = 3 ]; then
    ok "header only: empty reports, a note"
else bad "header only: empty reports, a note" "$(head -n 2 "$T/err")"; fi
expect "GEMM zero" 1 "$T/gemm0.csv:2:" "N = 0" -- "$QSIM" "${A[@]}" "$T/gemm0.csv"
expect "missing topology" 1 "$T/none.csv" -- "$QSIM" "${A[@]}" "$T/none.csv"
expect "unknown dataflow" 1 "$T/df.cfg:$DFLINE:" "xs" -- "$QSIM" run --arch "$T/df.cfg" "$SS/gemm_example.csv"
expect "missing section" 1 "$T/nosec.cfg: missing section [run_presets]" -- "$QSIM" run --arch "$T/nosec.cfg" "$SS/gemm_example.csv"
expect "text in config" 1 "$T/num.cfg:$AWLINE:" "'wide'" -- "$QSIM" run --arch "$T/num.cfg" "$SS/gemm_example.csv"
expect "missing key" 1 "$T/nokey.cfg:" "missing key ArrayHeight" -- "$QSIM" run --arch "$T/nokey.cfg" "$SS/gemm_example.csv"
expect "bad --set on a SCALE-Sim config" 1 "--set array.rowz" -- "$QSIM" "${A[@]}" --set array.rowz=3 "$SS/gemm_example.csv"
expect "--report-dir needs scalesim timing" 1 "convention = scalesim" -- "$QSIM" "${A[@]}" --set timing.convention=native "$SS/gemm_example.csv" --report-dir "$T/x"
expect "unwritable --report-dir" 1 "/nonexistent/dir" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" -q --report-dir /nonexistent/dir/x
expect "--act-bits above the arch" 1 "max_act_bits" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --act-bits 12
sed 's/^IfmapOffset:.*/IfmapOffset: -5/' "$SS/scale.cfg" >"$T/negoff.cfg"
expect "--traces with a negative offset" 1 "IfmapOffset = -5" -- "$QSIM" run --arch "$T/negoff.cfg" "$SS/gemm_example.csv" -q --report-dir "$T/negoff" --traces
# usage errors: exit 2
expect "--sparsity out of range" 2 "--sparsity" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --sparsity 1.5
expect "--weight-bits 3" 2 "--weight-bits" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --weight-bits 3
expect "--act-bits 0" 2 "--act-bits" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --act-bits 0
expect "sparse bipolar" 2 "bipolar" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --weight-bits 1 --sparsity 0.1
expect "--input with a topology" 2 "synthetic" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --input x.npy
expect "topology flags on a .qbin" 2 "topologies" -- "$QSIM" "${A[@]}" "$ROOT/models/nets/tiny.qbin" --sparsity 0.5
expect "--gemm without a topology" 2 "topology" -- "$QSIM" "${A[@]}" --gemm
expect "--traces without --report-dir" 2 "--traces needs --report-dir" -- "$QSIM" "${A[@]}" "$SS/gemm_example.csv" --traces
expect "--traces on a .qbin" 2 "--traces apply" -- "$QSIM" "${A[@]}" "$ROOT/models/nets/tiny.qbin" --traces
expect "--timing-only on a .qbin" 2 "--timing-only" -- "$QSIM" "${A[@]}" "$ROOT/models/nets/tiny.qbin" --timing-only
expect "--timing-only, native timing" 1 "resnet18.csv:2: layer 'Conv1': SCALE-Sim's figures need" -- \
    "$QSIM" "${A[@]}" "$SS/resnet18.csv" --timing-only --set timing.convention=native
expect "a 2048x8 array on a .qbin" 1 "at most 1024 rows and columns" -- \
    "$QSIM" run --arch "$ROOT/tests/scalesim_v2/cases/c_2048x8_os.cfg" "$ROOT/models/nets/tiny.qbin"

# sparse operands: on the SCALE-Sim config (zero_skip = none) they change no figure, and the run says so;
# with native timing and skipping (the README's example) they skip about the zero fraction of the MACs
SPARSE=(--weight-bits 4 --sparsity 0.5)
"$QSIM" run --arch "$SS/scale.cfg" "$SS/resnet18.csv" --weight-bits 4 -q --json "$T/dense.json" 2>/dev/null
"$QSIM" run --arch "$SS/scale.cfg" "$SS/resnet18.csv" "${SPARSE[@]}" -q --json "$T/sparse.json" 2>"$T/sparse.err"
if grep -q "^qsim: note: the zero operands change nothing here" "$T/sparse.err" && $PY - "$T/dense.json" "$T/sparse.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(a["total"] != b["total"])
EOF
then ok "--sparsity on zero_skip = none: same figures, and a note says so"
else bad "--sparsity on zero_skip = none" "figures differ or no note: $(cat "$T/sparse.err")"; fi
"$QSIM" run --arch "$SS/scale.cfg" "$SS/resnet18.csv" "${SPARSE[@]}" -q --set array.zero_skip=gate 2>"$T/gate.err"
if grep -q "^qsim: note: under SCALE-Sim's timing the zero operands save energy, not cycles" "$T/gate.err"; then
    ok "--sparsity with gating under SCALE-Sim timing: a note"
else bad "--sparsity with gating under SCALE-Sim timing" "no note: $(cat "$T/gate.err")"; fi
NATIVE=(--set timing.convention=native --set array.zero_skip=both --set array.skip_group=1)
"$QSIM" run --arch "$SS/scale.cfg" "$SS/resnet18.csv" "${SPARSE[@]}" "${NATIVE[@]}" -q --json "$T/skip.json" 2>"$T/skip.err"
if [ ! -s "$T/skip.err" ] && $PY - "$T/skip.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["total"]
sys.exit(not 0.4 <= 1 - t["macs_executed"] / t["macs"] <= 0.6)
EOF
then ok "README's sparsity example skips about half the MACs, without a note"
else bad "README's sparsity example" "$(cat "$T/skip.err")"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
