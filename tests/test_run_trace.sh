#!/usr/bin/env bash
# `qsim run --fst/--vcd` end to end: the simulator's own waveform is written,
# GTKWave's fst2vcd reads it back, the signals of docs/waveforms.md are there
# with plausible values, a --trace-layer window is smaller than the whole run,
# and traces/accelerator.gtkw opens it (skipped without xvfb-run).
# usage: test_run_trace.sh QSIM SOURCE_DIR
set -u
QSIM=$1; ROOT=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0; pass=0
check() { if eval "$2"; then pass=$((pass+1)); else echo "FAIL: $1"; fail=$((fail+1)); fi; }
ARCH=$ROOT/models/arch/dlac.cfg; NET=$ROOT/models/nets/demo_w2a4.qbin
"$QSIM" run --arch "$ARCH" "$NET" --engine detailed --fst "$T/run.fst" -q
check "run --fst exits 0" '[ $? -eq 0 ]'
fst2vcd "$T/run.fst" > "$T/run.vcd" 2>/dev/null
check "fst2vcd reads the dump" '[ -s "$T/run.vcd" ]'
for s in load_pc compute_pc store_pc tok_ld_cmp dram_busy dram_bytes_in_flight layer active_pes gated_pes idle_pes busy; do
  check "signal $s present" "grep -q ' $s ' '$T/run.vcd'"
done
# some PE was active at some clock: a value change of active_pes that is not zero
id=$(awk '$1=="$var" && $5=="active_pes" {print $4}' "$T/run.vcd")
check "active_pes becomes non-zero" "grep -E '^b[01]*1[01]* $id\$' '$T/run.vcd' | grep -q ."
"$QSIM" run --arch "$ARCH" "$NET" --vcd "$T/conv2.vcd" --trace-layer conv2 -q
check "--trace-layer window is smaller" '[ $(wc -c < "$T/conv2.vcd") -lt $(wc -c < "$T/run.vcd") ]'
"$QSIM" run --arch "$ARCH" "$NET" --vcd "$T/x.vcd" --trace-layer nosuchlayer -q 2>"$T/err"
check "--trace-layer of an unknown layer fails naming it" '[ $? -eq 1 ] && grep -q nosuchlayer "$T/err"'
/usr/bin/python3 "$ROOT/tests/test_trace_fst.py" gtkw "$T/run.fst" "$ROOT/traces/accelerator.gtkw" >"$T/gtkw.log" 2>&1
rc=$?
check "accelerator.gtkw opens the dump (77 = skipped)" '[ $rc -eq 0 ] || [ $rc -eq 77 ]'
# beside each dump, the view for GTKWave (run.gtkw) and the layer names (run.layers.txt): one line
# "index name" per layer, as the .qbin holds them (read here with the independent Python reader)
check "run.gtkw and run.layers.txt written beside the dump" '[ -s "$T/run.gtkw" ] && [ -s "$T/run.layers.txt" ]'
/usr/bin/python3 - "$ROOT" "$NET" "$T/run.layers.txt" <<'EOF' >"$T/names.log" 2>&1
import sys
sys.path.insert(0, sys.argv[1] + "/scripts")
import qsim_qbin
net = qsim_qbin.read(sys.argv[2])
want = ["%d %s" % (i, L.name) for i, L in enumerate(net.layers)]
got = open(sys.argv[3]).read().splitlines()
sys.exit(0 if got == want else "layers.txt %s, expected %s" % (got, want))
EOF
check "run.layers.txt names every layer by index" '[ $? -eq 0 ]'
# the run's view shows what traces/accelerator.gtkw shows (same signals, groups and formats), plus the
# dump, the window and the layer names; overflows only where the engine traces them (detailed)
strip_view() { sed -n '/^\[treeopen\]/,$p' "$1" | sed -e 's/^@2024$/@24/' -e '/^\^1 /d'; }
check "run.gtkw (detailed) = traces/accelerator.gtkw + dump, window, names" \
  'diff <(strip_view "$T/run.gtkw") <(strip_view "$ROOT/traces/accelerator.gtkw") >/dev/null'
check "conv2.gtkw (fast engine) leaves out overflows" \
  'diff <(strip_view "$T/conv2.gtkw") <(strip_view "$ROOT/traces/accelerator.gtkw" | sed '"'"'/^@24$/{N;/overflows/d}'"'"') >/dev/null'
# cycles keep the run's numbering in a window: conv2's span starts where the layers before it end
# (they run one after another: the JSON report's per-layer cycles), and the dump holds exactly that span
"$QSIM" run --arch "$ARCH" "$NET" -q --json "$T/run.json"
read -r C2_FROM C2_TO < <(/usr/bin/python3 -c "
import json, sys
L = json.load(open(sys.argv[1]))['layers']
i = [l['name'] for l in L].index('conv2')
s = int(sum(l['cycles'] for l in L[:i]))
print(s, s + int(L[i]['cycles']))" "$T/run.json")
read -r V_FIRST V_LAST < <(grep '^#' "$T/conv2.vcd" | sed -n '1s/#//p;$s/#//p' | tr '\n' ' ')
check "--trace-layer conv2: the dump spans cycles $C2_FROM..$C2_TO (got $V_FIRST..$V_LAST)" \
  '[ "$V_FIRST" = "$C2_FROM" ] && [ "$V_LAST" = "$C2_TO" ]'
"$QSIM" run --arch "$ARCH" "$NET" --vcd "$T/w.vcd" --trace-from 1000 --trace-to 1500 -q 2>/dev/null
check "--trace-from 1000 --trace-to 1500: every time in 1000..1500" \
  '[ -n "$(grep "^#" "$T/w.vcd")" ] && grep "^#" "$T/w.vcd" | tr -d "#" | awk "\$1 < 1000 || \$1 > 1500 {bad=1} END {exit bad}"'
# GTKWave opens the run's view on the traced window with the layer's name (77 = skipped)
/usr/bin/python3 "$ROOT/tests/test_trace_fst.py" view "$T/conv2.gtkw" "$C2_FROM" "$C2_TO" conv2 >"$T/view.log" 2>&1
rc=$?
check "conv2.gtkw opens on its window, layer by name (77 = skipped): $(tail -1 "$T/view.log")" '[ $rc -eq 0 ] || [ $rc -eq 77 ]'
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
