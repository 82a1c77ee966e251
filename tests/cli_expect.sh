# Shared by the CLI tests (tests/test_cli.sh, tests/test_scalesim_cli.sh), sourced after
# they set T (a scratch folder) and the counters pass=0 fail=0.
# shellcheck shell=bash

# expect NAME CODE NEEDLE [NEEDLE2] -- COMMAND...
#   CODE: exact exit code, or "nz" for any failure code 1..127
#   NEEDLE(s): fixed strings the message (stderr) must contain
#   exit 1: stderr must be exactly one line starting with "qsim: "
#   exit 2: stderr is one line starting with "qsim: " that ends with the hint
#           "(see 'qsim [COMMAND] --help')", not the whole usage text
expect() {
    local name=$1 code=$2
    shift 2
    local needles=()
    while [ "$1" != "--" ]; do needles+=("$1"); shift; done
    shift
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local why=""
    if [ $rc -ge 128 ]; then why="killed by a signal (exit $rc)"
    elif [ "$code" = nz ] && [ $rc -eq 0 ]; then why="exit 0, expected a failure"
    elif [ "$code" != nz ] && [ $rc -ne "$code" ]; then why="exit $rc, expected $code"
    elif grep -q -i "sanitizer\|runtime error:\|Segmentation\|Aborted" "$T/err"; then why="sanitizer/crash report in stderr"
    fi
    if [ -z "$why" ] && [ "$code" != 0 ]; then
        local lines first
        lines=$(grep -c . "$T/err")
        first=$(head -n 1 "$T/err")
        case "$first" in
        qsim:\ *) ;;
        *) why="message does not start with 'qsim: ': '$first'" ;;
        esac
        if [ -z "$why" ] && [ $rc -le 2 ] && [ "$lines" -ne 1 ]; then why="$lines lines on stderr, expected one"; fi
        if [ -z "$why" ] && [ $rc -eq 2 ] && ! grep -q -E "\(see 'qsim ([a-z]+ )?--help'\)\$" "$T/err"; then
            why="usage error without the hint \"(see 'qsim COMMAND --help')\""
        fi
        for n in "${needles[@]}"; do
            if [ -z "$why" ] && ! grep -q -F -- "$n" "$T/err"; then why="message lacks '$n'"; fi
        done
    fi
    if [ -z "$why" ] && [ "$code" = 0 ]; then
        for n in "${needles[@]}"; do
            if ! grep -q -F -- "$n" "$T/out"; then why="stdout lacks '$n'"; fi
        done
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1))
        printf 'ok   %-34s %s\n' "$name" "$(head -n 1 "$T/err")"
    else
        fail=$((fail + 1))
        printf 'FAIL %-34s %s\n' "$name" "$why"
        printf '     command: %s\n' "$*"
        sed 's/^/     stderr: /' "$T/err" | head -n 8
    fi
}
