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
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
