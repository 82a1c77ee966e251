#!/bin/bash
# add_subdirectory(qsim) from another project: configures without CUnit being asked for, defines no qsim
# test, builds the library and the example against qsim::qsim, and the example runs.
# usage: test_add_subdirectory.sh SOURCE_DIR
set -eu
src=$1
tmp=$(mktemp -d /tmp/qsim_addsub_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# a pkg-config that has no cunit: configuring must not need it
mkdir -p "$tmp/bin"
cat >"$tmp/bin/pkg-config" <<'PC'
#!/bin/sh
for a in "$@"; do case "$a" in cunit*) exit 1;; esac; done
exec /usr/bin/pkg-config "$@"
PC
chmod +x "$tmp/bin/pkg-config"
PATH=$tmp/bin:$PATH cmake -S "$src/tests/add_subdirectory" -B "$tmp/b" -DQSIM_SOURCE="$src" \
  -DPKG_CONFIG_EXECUTABLE="$tmp/bin/pkg-config" -DCMAKE_BUILD_TYPE=Release >"$tmp/cfg.log" 2>&1 \
  || { cat "$tmp/cfg.log"; fail "configure"; }
grep -qi cunit "$tmp/cfg.log" && { cat "$tmp/cfg.log"; fail "CUnit was looked for"; }
cmake --build "$tmp/b" --target help | grep -q "test_api" && fail "qsim's tests are defined"
[ -e "$tmp/b/qsim/tests" ] && fail "qsim's tests folder was configured"
nice cmake --build "$tmp/b" --target outer_app -j2 >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; fail "build"; }
"$tmp/b/outer_app" "$src/models/nets/tiny.qbin" "$src/models/arch/dlac.cfg" >"$tmp/out" || { cat "$tmp/out"; fail "run"; }
grep -q "cycles" "$tmp/out" || fail "no report"
echo "add_subdirectory test passed"
