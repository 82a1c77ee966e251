#!/bin/bash
# `cmake --install` into a temporary prefix, then the example program
# (examples/qsim_example.c) built against it twice, with pkg-config and with
# find_package(qsim), and run on an installed preset; plus the installed
# command, presets, views, docs and Python package where docs/api.md says.
# usage: test_install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d /tmp/qsim_install_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
libdir=$(cd "$prefix" && ls -d lib* | head -1)
for f in bin/qsim include/qsim/qsim.h "$libdir/libqsim.a" "$libdir/pkgconfig/qsim.pc" \
         "$libdir/cmake/qsim/qsimConfig.cmake" "$libdir/cmake/qsim/qsimTargets.cmake" \
         share/qsim/arch/dlac.cfg share/qsim/tech/default45.tech share/qsim/gtkwave/accelerator.gtkw \
         share/qsim/onnx_import.py share/qsim/qsim/__init__.py share/doc/qsim/api.md share/doc/qsim/architecture.md; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
# the shared library carries its soname (libqsim.so.<API version>)
so=$(ls "$prefix/$libdir"/libqsim.so.* | head -1)
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[[ "$soname" =~ ^libqsim\.so\.[0-9]+$ ]] || fail "soname '$soname'"
"$prefix/bin/qsim" --version | grep -q "^qsim .* (source " || fail "qsim --version has no source revision"

net=$src/models/nets/tiny.qbin
cfg=$prefix/share/qsim/arch/dlac.cfg
# 1. pkg-config
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
cc -Wall -Wextra -Werror -o "$tmp/ex_pc" "$src/examples/qsim_example.c" $(pkg-config --cflags --libs qsim) \
  || fail "example with pkg-config"
LD_LIBRARY_PATH=$prefix/$libdir "$tmp/ex_pc" "$net" "$cfg" >"$tmp/out_pc" || { cat "$tmp/out_pc"; fail "example (pkg-config) run"; }
# statically: the .pc file's private dependencies complete the link
cc -o "$tmp/ex_static" "$src/examples/qsim_example.c" $(pkg-config --cflags qsim) "$prefix/$libdir/libqsim.a" \
  $(pkg-config --libs-only-l --static qsim | sed 's/-lqsim//') || fail "example static link"
"$tmp/ex_static" "$net" "$cfg" >"$tmp/out_static" || fail "example (static) run"
# 2. find_package from a separate project
cmake -S "$prefix/share/doc/qsim/examples" -B "$tmp/ex_build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/cfg.log" 2>&1 || { cat "$tmp/cfg.log"; fail "find_package(qsim) configure"; }
cmake --build "$tmp/ex_build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "find_package build"; }
"$tmp/ex_build/qsim_example" "$net" "$cfg" >"$tmp/out_fp" || { cat "$tmp/out_fp"; fail "example (find_package) run"; }
cmp -s "$tmp/out_pc" "$tmp/out_fp" || fail "pkg-config and find_package builds print different reports"
cmp -s "$tmp/out_pc" "$tmp/out_static" || fail "shared and static builds print different reports"
# the example's figures are the installed command's
cyc=$("$prefix/bin/qsim" run --arch "$cfg" --set array.rows=16 --set array.cols=16 "$net" -q --json "$tmp/r.json" \
      && python3 -c "import json,sys; print('%.0f' % json.load(open(sys.argv[1]))['total']['cycles'])" "$tmp/r.json")
grep -q "array.rows=16 array.cols=16: $cyc cycles" "$tmp/out_pc" || { cat "$tmp/out_pc"; fail "example's cycles differ from qsim run ($cyc)"; }
# the installed Python package finds the installed library, and gives the command's figures
env -u QSIM_LIBRARY PYTHONPATH=$prefix/share/qsim /usr/bin/python3 -c "
import qsim, sys
assert qsim.library_path().startswith(sys.argv[3]), qsim.library_path()
r = qsim.load(sys.argv[1]).run(sys.argv[2], set={'array.rows': 16, 'array.cols': 16})
assert '%.0f' % r['total']['cycles'] == sys.argv[4], (r['total']['cycles'], sys.argv[4])
" "$net" "$cfg" "$prefix" "$cyc" || fail "installed Python package"
# the tools are modules of the installed package; the old script paths are wrappers around them
env -u QSIM_LIBRARY PYTHONPATH=$prefix/share/qsim /usr/bin/python3 -c "
import sys, qsim.qbin, qsim.dse, qsim.zoo, qsim.xfmr_zoo, qsim.onnx_import, qsim.array_ref
assert qsim.qbin.__file__.startswith(sys.argv[1]), qsim.qbin.__file__
assert len(qsim.qbin.read(sys.argv[2]).layers) > 0
" "$prefix" "$net" || fail "installed package modules"
/usr/bin/python3 "$prefix/share/qsim/qsim_qbin.py" info "$net" | grep -q "layers" || fail "installed qsim_qbin.py wrapper"
/usr/bin/python3 "$prefix/share/qsim/model_zoo.py" --help | grep -q "usage:" || fail "installed model_zoo.py wrapper"
head -3 "$tmp/out_pc"
echo "install test passed ($prefix)"
