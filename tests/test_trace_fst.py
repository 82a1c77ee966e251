#!/usr/bin/python3
"""Checks qs_trace output with GTKWave's own tools.

  test_trace_fst.py dump TOOL       FST and VCD from trace_write_tool, read back
                                    with fst2vcd (and our VCD through vcd2fst),
                                    must hold exactly the logged waveform.
  test_trace_fst.py gtkw TOOL GTKW  gtkwave (under xvfb-run) opens a dump with
                                    the save file and shows every signal it names,
                                    in the save file's groups.
  test_trace_fst.py gtkw DUMP GTKW  the same with an existing .fst/.vcd (e.g. one
                                    written by `qsim run --fst`).
  test_trace_fst.py view VIEW FROM TO LAYER
                                    the view `qsim run --fst` writes beside its dump
                                    (it names the dump) opens on cycles FROM..TO
                                    (start at FROM, the whole window shown, at most
                                    10% more), shows qsim.array.layer at TO as the
                                    name LAYER (translate file), the PE counts as
                                    analog traces and program counters in decimal.
                                    gtkw, view: exit 77 (skip) without gtkwave or xvfb-run.

TOOL is the trace_write_tool binary; its log says which values were written
when. Only the Python standard library is used.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def read_log(path):
    """-> (widths {name: bits}, changes {name: [(t, v)]}, end time) as the
    writer must record them: masked to the width, last value per time step,
    nothing for a value equal to the previous one."""
    widths, last_at, order, end = {}, {}, [], None
    for line in open(path):
        f = line.split()
        if f[0] == "var":
            widths[f[1]] = int(f[2])
            last_at[f[1]] = {}
        elif f[0] == "val":
            t, name, v = int(f[1]), f[2], int(f[3])
            last_at[name][t] = v & ((1 << widths[name]) - 1)
        elif f[0] == "end":
            end = int(f[1])
        order.append(f[0])
    changes = {}
    for name, at in last_at.items():
        seq, prev = [], None
        for t in sorted(at):
            if at[t] != prev:
                seq.append((t, at[t]))
                prev = at[t]
        changes[name] = seq
    return widths, changes, end


def parse_vcd(text):
    """-> (widths {full name: bits}, changes {full name: [(t, v)]}, last time,
    timescale). Accepts fst2vcd's output ($dumpvars, zero-padded vectors,
    a [msb:lsb] after the name) and ours."""
    scope, ids, widths, changes = [], {}, {}, {}
    t, last_t, timescale = None, None, None
    toks = iter(text.split())
    for tok in toks:
        if tok == "$scope":
            next(toks)  # kind
            scope.append(next(toks))
            if next(toks) != "$end":
                fail("bad $scope")
        elif tok == "$upscope":
            scope.pop()
            next(toks)
        elif tok == "$var":
            _kind, bits, code, name = next(toks), int(next(toks)), next(toks), next(toks)
            rest = next(toks)
            if rest != "$end":  # optional [msb:lsb]
                if rest != "[%d:0]" % (bits - 1) or next(toks) != "$end":
                    fail("odd $var for %s: %s" % (name, rest))
            full = ".".join(scope + [name])
            if full in widths:
                fail("variable %s declared twice" % full)
            ids.setdefault(code, []).append(full)
            widths[full] = bits
            changes[full] = []
        elif tok == "$timescale":
            parts = []
            for x in toks:
                if x == "$end":
                    break
                parts.append(x)
            timescale = "".join(parts)
        elif tok in ("$date", "$version", "$comment"):
            for x in toks:
                if x == "$end":
                    break
        elif tok in ("$enddefinitions", "$dumpvars", "$end", "$dumpall", "$dumpon", "$dumpoff"):
            continue
        elif tok.startswith("#"):
            nt = int(tok[1:])
            if last_t is not None and nt < last_t:
                fail("time goes backwards: %d after %d" % (nt, last_t))
            t = last_t = nt
        elif tok[0] in "bB":
            bits, code = tok[1:], next(toks)
            if re.fullmatch("[01]+", bits):
                v = int(bits, 2)
            elif re.fullmatch("x+", bits):
                v = None  # unknown: only the writer's filler for a dump without values
            else:
                fail("odd value %s for %s at %s" % (tok, ids.get(code), t))
            for full in ids[code]:
                changes[full].append((t, v))
        elif tok[0] in "01x":
            for full in ids[tok[1:]]:
                changes[full].append((t, None if tok[0] == "x" else int(tok[0])))
        else:
            fail("unexpected token %r at time %s" % (tok, t))
    return widths, changes, last_t, timescale


def compare(what, vcd_text, log):
    widths, changes, end = log
    got_w, got_c, last_t, ts = parse_vcd(vcd_text)
    if ts != "1ns":
        fail("%s: timescale %r, expected 1ns" % (what, ts))
    if got_w != widths:
        fail("%s: variables differ:\n got %s\nwant %s" % (what, sorted(got_w.items()), sorted(widths.items())))
    for name, want in changes.items():
        got = got_c[name]
        if not want:  # never written: unknown (x) or nothing at all
            if any(v is not None for _, v in got):
                fail("%s: %s was never written but has values %s" % (what, name, got))
            continue
        # fst2vcd lists every variable in $dumpvars at the first time; the
        # writer itself must not repeat values, so duplicates are an error.
        for (t0, v0), (t1, v1) in zip(got, got[1:]):
            if v0 == v1:
                fail("%s: %s repeats value %d at %d (written at %d)" % (what, name, v1, t1, t0))
            if t0 == t1:
                fail("%s: %s has two values at time %d" % (what, name, t0))
        if got != want:
            for i, (g, w) in enumerate(zip(got, want)):
                if g != w:
                    fail("%s: %s: change %d is %s, expected %s" % (what, name, i, g, w))
            fail("%s: %s: %d changes, expected %d" % (what, name, len(got), len(want)))
    if last_t != end:
        fail("%s: last time %s, expected %s" % (what, last_t, end))
    n = sum(len(c) for c in changes.values())
    print("ok: %s: %d variables, %d value changes, end time %d" % (what, len(widths), n, end))


def check_dump(tool):
    for exe in ("fst2vcd", "vcd2fst"):
        if not shutil.which(exe):
            fail("%s not found (apt-get install gtkwave)" % exe)
    # 0 cycles: variables and one time step but no values (the FST writer
    # alone would leave an unreadable file); 1 cycle: a single time step.
    for cycles in ("500", "1", "0"):
        with tempfile.TemporaryDirectory() as d:
            fst, vcd = os.path.join(d, "run.fst"), os.path.join(d, "run.vcd")
            run([tool, fst, os.path.join(d, "fst.log"), cycles])
            run([tool, vcd, os.path.join(d, "vcd.log"), cycles])
            log = read_log(os.path.join(d, "fst.log"))
            if read_log(os.path.join(d, "vcd.log")) != log:
                fail("trace_write_tool is not deterministic")
            tag = " (%s cycles)" % cycles
            compare("FST via fst2vcd" + tag, run(["fst2vcd", fst]), log)
            compare("our VCD" + tag, open(vcd).read(), log)
            if cycles == "0":
                continue  # vcd2fst itself makes an unreadable FST of a VCD without values
            conv = os.path.join(d, "conv.fst")
            run(["vcd2fst", vcd, conv])
            compare("our VCD via vcd2fst+fst2vcd" + tag, run(["fst2vcd", conv]), log)


def gtkw_signals(path):
    """Signal lines and group names of a .gtkw save file."""
    sigs, groups, flags = [], [], 0
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("@"):
            flags = int(line[1:], 16)
        elif line.startswith("-"):
            if flags & 0x800000:
                groups.append(line[1:])
        elif line and not line.startswith(("[", "*", "+", "^")):
            sigs.append(line)
    return sigs, groups


def check_gtkw(tool, gtkw):
    if not shutil.which("gtkwave") or not shutil.which("xvfb-run"):
        print("skip: needs gtkwave and xvfb-run")
        sys.exit(SKIP)
    gtkw = os.path.abspath(gtkw)   # gtkwave runs in a scratch folder
    want, groups = gtkw_signals(gtkw)
    if not want:
        fail("%s names no signals" % gtkw)
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "list.tcl")
        with open(script, "w") as f:
            f.write('puts "DISPLAYED [gtkwave::getDisplayedSignals]"\n'
                    'set n [gtkwave::getTotalNumTraces]\n'
                    'for {set i 0} {$i < $n} {incr i} {\n'
                    '  puts "TRACE [gtkwave::getTraceFlagsFromIndex $i] [gtkwave::getTraceNameFromIndex $i]"\n'
                    '}\n'
                    'gtkwave::/File/Quit\n')
        given = tool.endswith((".fst", ".vcd")) and os.path.isfile(tool)
        for ext in ([tool[-3:]] if given else ["fst", "vcd"]):
            if given:
                dump = os.path.abspath(tool)
            else:
                dump = os.path.join(d, "run." + ext)
                run([tool, dump, os.path.join(d, "log.txt"), "50"])
            out = run(["xvfb-run", "-a", "gtkwave", "-S", script, dump, gtkw], cwd=d)
            shown = None
            for line in out.splitlines():
                if line.startswith("DISPLAYED"):
                    shown = line.split()[1:]
            if shown is None:
                fail("gtkwave printed no signal list:\n" + out)
            if shown != want:
                missing = [s for s in want if s not in shown]
                fail("%s with %s: shows %d of %d signals; missing: %s" % (gtkw, ext, len(shown), len(want), missing))
            opened = [l.split(None, 2)[2] for l in out.splitlines()
                      if l.startswith("TRACE") and int(l.split()[1]) & 0x800000]
            if opened != groups:
                fail("%s with %s: groups %s, expected %s" % (gtkw, ext, opened, groups))
            print("ok: gtkwave %s %s: %d signals in groups %s" % (ext, os.path.basename(gtkw), len(shown),
                                                                 ", ".join(groups)))


def check_view(view, t_from, t_to, layer):
    if not shutil.which("gtkwave") or not shutil.which("xvfb-run"):
        print("skip: needs gtkwave and xvfb-run")
        sys.exit(SKIP)
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "view.tcl")
        with open(script, "w") as f:
            f.write('puts "WINDOW [gtkwave::getWindowStartTime] [gtkwave::getWindowEndTime]"\n'
                    'gtkwave::setMarker %d\n'
                    'set n [gtkwave::getTotalNumTraces]\n'
                    'for {set i 0} {$i < $n} {incr i} {\n'
                    '  puts "TRACE [gtkwave::getTraceFlagsFromIndex $i] [gtkwave::getTraceNameFromIndex $i] '
                    '= [gtkwave::getTraceValueAtMarkerFromIndex $i]"\n'
                    '}\n'
                    'gtkwave::/File/Quit\n' % t_to)
        out = run(["xvfb-run", "-a", "gtkwave", "-S", script, os.path.abspath(view)], cwd=d)
    win = [l.split()[1:] for l in out.splitlines() if l.startswith("WINDOW")]
    if not win:
        fail("gtkwave printed no window:\n" + out)
    start, end = int(win[0][0]), int(win[0][1])
    if start != t_from or end < t_to or end > t_to + (t_to - t_from) // 10 + 8:
        fail("%s opens on %d..%d, expected %d..%d (whole window, at most 10%% more)" % (view, start, end, t_from, t_to))
    traces = {}
    for l in out.splitlines():
        m = re.match(r"TRACE (\d+) (\S+) = ?(.*)$", l)
        if m:
            traces[m.group(2)] = (int(m.group(1)), m.group(3).strip())
    flags_layer, shown = traces.get("layer[15:0]", (0, None))
    if shown != layer:
        fail("%s: qsim.array.layer at cycle %d shows %r, expected the name %r" % (view, t_to, shown, layer))
    for sig in ("active_pes[31:0]", "gated_pes[31:0]", "idle_pes[31:0]"):
        if not traces.get(sig, (0,))[0] & 0x8000:
            fail("%s: %s is not an analog trace" % (view, sig))
    for sig in ("load_pc[31:0]", "compute_pc[31:0]", "store_pc[31:0]"):
        if not traces.get(sig, (0,))[0] & 0x4:
            fail("%s: %s is not shown in decimal" % (view, sig))
    print("ok: gtkwave %s opens on %d..%d, layer at %d shows %s" % (os.path.basename(view), start, end, t_to, shown))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        check_dump(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "gtkw":
        check_gtkw(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "view":
        check_view(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
