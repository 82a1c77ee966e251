#!/usr/bin/python3
"""scripts/dse: sweep, stop with SIGTERM midway and resume, failed points, GNU parallel, Pareto fronts,
and (with --slurm) a real single-node Slurm cluster started here.

    test_dse.py QSIM            local sweep / resume / failures / parallel / Pareto / report
    test_dse.py QSIM --slurm    the Slurm backend against slurmctld + slurmd + munged (exit 77 = skipped)
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from dse_lib.pareto import fronts, pareto_front  # noqa: E402

DSE = [sys.executable, os.path.join(REPO, "scripts", "dse")]
try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False
SKIP = 77
failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
        print("ok   %s" % what)
    else:
        failures.append(what)
        print("FAIL %s" % what)


def wrapper(tmp, qsim, delay):
    """A qsim that logs each `run` (to $DSE_TEST_LOG) and takes `delay` s, so a sweep can be stopped
    midway and re-runs can be counted."""
    w = os.path.join(tmp, "qsim-logged")
    with open(w, "w") as f:
        f.write('#!/bin/sh\nif [ "$1" = run ]; then echo "$*" >> "$DSE_TEST_LOG"; sleep %s; fi\nexec %s "$@"\n'
                % (delay, qsim))
    os.chmod(w, 0o755)
    return w


def write_spec(path, params, extra=""):
    with open(path, "w") as f:
        f.write('name = "t"\narch = "models/arch/dlac.cfg"\nobjectives = ["cycles:min", "energy_pj:min"]\n%s\n'
                '[set]\n"array.max_act_bits" = 8\n[parameters]\n%s\n[[networks]]\npath = "models/nets/tiny.qbin"\n'
                % (extra, params))


def read_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows


def log_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def sets_of(cmdline):
    toks = cmdline.split()
    return tuple(sorted(toks[i + 1] for i, t in enumerate(toks) if t == "--set"))


def test_resume(tmp, qsim):
    spec = os.path.join(tmp, "sweep.toml")
    # 3 x 4 = 12 points; skip_group = "x" is not an integer: 3 points fail in qsim's --set check
    write_spec(spec, '"array.cols" = [4, 8, 16]\n"array.skip_group" = [1, 2, 4, "x"]')
    out = os.path.join(tmp, "out")
    q = wrapper(tmp, qsim, 0.3)
    env = dict(os.environ, DSE_TEST_LOG=os.path.join(tmp, "log1"))
    t0 = time.time()
    p = subprocess.Popen(DSE + [spec, "--jobs", "2", "--out", out, "--qsim", q, "--progress", "always"],
                         env=env, stderr=subprocess.PIPE, text=True)
    jl = os.path.join(out, "results.jsonl")
    while time.time() - t0 < 30 and len(read_jsonl(jl)) < 4 and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err1 = p.communicate(timeout=30)
    first = read_jsonl(jl)
    check(p.returncode == 128 + signal.SIGTERM, "SIGTERM stops the sweep with status 143 (got %s)" % p.returncode)
    check(4 <= len(first) < 12, "stopped midway: %d of 12 points recorded" % len(first))
    check("points/s" in err1 and "ETA" in err1, "progress line shows rate and ETA")
    check("run the same command again" in err1, "interrupted sweep says how to continue")
    check(os.path.exists(os.path.join(out, "results.csv")), "results.csv written at the stop")

    env["DSE_TEST_LOG"] = os.path.join(tmp, "log2")
    r = subprocess.run(DSE + [spec, "--jobs", "2", "--out", out, "--qsim", q], env=env, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "resumed sweep finishes (rc %d: %s)" % (r.returncode, r.stderr[-500:]))
    rows = read_jsonl(jl)
    keys = [x["key"] for x in rows]
    rerun = log_lines(env["DSE_TEST_LOG"])
    check(len(rerun) == 12 - len(first), "resume runs only the %d missing points (ran %d)" % (12 - len(first), len(rerun)))
    first_sets = {tuple(sorted(x["overrides"].split())) for x in first}
    check(not first_sets & {sets_of(c) for c in rerun}, "no point recorded before the stop is run again")
    check(len(keys) == 12 and len(set(keys)) == 12, "results.jsonl: 12 points, each once (%d lines)" % len(keys))
    with open(os.path.join(out, "results.csv")) as f:
        table = list(csv.DictReader(f))
    check(len(table) == 12, "results.csv has all 12 points")
    failed = [x for x in table if x["status"] == "failed"]
    check(len(failed) == 3 and all(x["array.skip_group"] == "x" for x in failed),
          "the 3 points with skip_group = x are recorded as failed")
    check(all("skip_group" in x["error"] for x in failed), "failed points carry qsim's message: %r" %
          (failed[0]["error"][:90] if failed else None))
    ok = [x for x in table if x["status"] == "ok"]
    check(all(float(x["cycles"]) > 0 and float(x["energy_pj"]) > 0 and x["qsim_version"] for x in ok),
          "ok points have cycles, energy, qsim version")
    check(all(len(x["key"]) == 16 for x in table), "every row has its key")

    # the front written by the sweep is the brute-force one
    pts = [(float(x["cycles"]), float(x["energy_pj"]), x["key"]) for x in ok]
    brute = {k for c, e, k in pts if not any((c2 <= c and e2 <= e) and (c2 < c or e2 < e) for c2, e2, _ in pts)}
    with open(os.path.join(out, "pareto.csv")) as f:
        front = {x["key"] for x in csv.DictReader(f)}
    check(front == brute and front, "pareto.csv = brute-force front (%d points)" % len(front))
    if HAVE_MPL:
        check(all(os.path.getsize(os.path.join(out, "pareto." + e)) > 1000 for e in ("png", "svg")),
              "Pareto figure written as PNG and SVG")

    env["DSE_TEST_LOG"] = os.path.join(tmp, "log3")
    r = subprocess.run(DSE + [spec, "--out", out, "--qsim", q], env=env, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and not log_lines(env["DSE_TEST_LOG"]), "a third run runs nothing")
    check(len(read_jsonl(jl)) == 12, "and appends nothing")

    # the key covers the network file: a changed file makes new points
    env["DSE_TEST_LOG"] = os.path.join(tmp, "log4")
    shutil.copy(os.path.join(REPO, "models", "nets", "tiny.qbin"), os.path.join(tmp, "tiny_copy.qbin"))
    spec2 = os.path.join(tmp, "sweep2.toml")
    with open(spec2, "w") as f:
        f.write('arch = "models/arch/dlac.cfg"\n[set]\n"array.max_act_bits" = 8\n"array.cols" = 8\n'
                '[[networks]]\npath = "%s"\n' % os.path.join(tmp, "tiny_copy.qbin"))
    out2 = os.path.join(tmp, "out2")
    subprocess.run(DSE + [spec2, "--out", out2, "--qsim", q], env=env, capture_output=True, timeout=60)
    with open(os.path.join(tmp, "tiny_copy.qbin"), "ab") as f:
        f.write(b"\0")   # different bytes (qsim may reject it: then the point is recorded as failed)
    subprocess.run(DSE + [spec2, "--out", out2, "--qsim", q], env=env, capture_output=True, timeout=60)
    k2 = [x["key"] for x in read_jsonl(os.path.join(out2, "results.jsonl"))]
    check(len(k2) == 2 and k2[0] != k2[1] and len(log_lines(env["DSE_TEST_LOG"])) == 2,
          "a changed network file is a new point")
    return out


def test_parallel(tmp, qsim):
    if not shutil.which("parallel"):
        print("skip GNU parallel backend: 'parallel' is not installed (scripts/setup-deps --tests installs it)")
        return
    spec = os.path.join(tmp, "par.toml")
    write_spec(spec, '"array.cols" = [4, 8]\n"array.skip_group" = [2, "y"]')
    out = os.path.join(tmp, "outpar")
    r = subprocess.run(DSE + [spec, "--backend", "parallel", "--sshlogin", ":", "--jobs", "2", "--out", out,
                              "--qsim", qsim], capture_output=True, text=True, timeout=120)
    rows = read_jsonl(os.path.join(out, "results.jsonl"))
    check(r.returncode == 0 and len(rows) == 4, "GNU parallel --sshlogin ':' runs the 4 points (rc %d, %d rows; %s)"
          % (r.returncode, len(rows), r.stderr[-300:]))
    check(sorted(x["status"] for x in rows) == ["failed", "failed", "ok", "ok"],
          "through parallel too, the bad --set value is a failed point")
    with open(os.path.join(out, "parallel", "run.sh")) as f:
        check("--sshlogin :" in f.read(), "the GNU parallel command is written to parallel/run.sh")
    r = subprocess.run(DSE + [spec, "--backend", "parallel", "--out", out, "--qsim", qsim], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0 and len(read_jsonl(os.path.join(out, "results.jsonl"))) == 4,
          "a second parallel run has nothing left to do")


def test_pareto():
    rows = [
        {"key": "a", "t": 1, "e": 9, "acc": 0.9, "network": "n1"},
        {"key": "b", "t": 2, "e": 5, "acc": 0.8, "network": "n1"},
        {"key": "c", "t": 3, "e": 5, "acc": 0.95, "network": "n1"},   # dominated by b in (t, e)
        {"key": "d", "t": 4, "e": 1, "acc": 0.7, "network": "n1"},
        {"key": "e", "t": 5, "e": 2, "acc": 0.99, "network": "n1"},   # dominated by d in (t, e)
        {"key": "f", "t": 2, "e": 5, "acc": 0.5, "network": "n1"},    # equal to b in (t, e)
        {"key": "g", "t": None, "e": 0, "acc": 1.0, "network": "n1"},  # failed point: no value
        {"key": "h", "t": 9, "e": 9, "acc": 0.1, "network": "n2"},
    ]
    n1 = rows[:7]
    keys = lambda idx, rs: sorted(rs[i]["key"] for i in idx)  # noqa: E731
    check(keys(pareto_front(n1, [("t", "min"), ("e", "min")]), n1) == ["a", "b", "d", "f"],
          "2-objective front (min, min), ties kept, missing values ignored")
    check(keys(pareto_front(n1, [("t", "min"), ("acc", "max")]), n1) == ["a", "c", "e"],
          "2-objective front (min, max)")
    check(keys(pareto_front(n1, [("t", "max"), ("e", "max")]), n1) == ["a", "c", "e"], "2-objective front (max, max)")
    check(keys(pareto_front(n1, [("t", "min"), ("e", "min"), ("acc", "max")]), n1) == ["a", "b", "c", "d", "e"],
          "3-objective front")
    check(keys(pareto_front([{"key": "x", "t": "2.5", "e": "nan"}, {"key": "y", "t": "3", "e": "1"}],
                            [("t", "min"), ("e", "min")]), [0, {"key": "y"}]) == ["y"],
          "CSV strings parse; NaN is no value")
    fr = fronts(rows, [("t", "min"), ("e", "min")], "network")
    check(sorted((g, r["key"]) for g, r in fr) == [("n1", "a"), ("n1", "b"), ("n1", "d"), ("n1", "f"), ("n2", "h")],
          "fronts per network")
    fr = fronts(rows, [("t", "min"), ("e", "min")], "all")
    check(sorted(r["key"] for _, r in fr) == ["a", "b", "d", "f"], "one front over all networks")


def test_report(tmp, qsim):
    js = os.path.join(tmp, "run.json")
    subprocess.run([qsim, "run", "--arch", os.path.join(REPO, "models/arch/dlac.cfg"),
                    os.path.join(REPO, "models/nets/demo_w2a4.qbin"), "--json", js, "-q"], check=True)
    out = os.path.join(tmp, "rep")
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "report"), js, "-o", out],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "scripts/report runs (%s)" % r.stderr[-300:])
    page = open(os.path.join(out, "index.html")).read() if r.returncode == 0 else ""
    figs = ["cycles", "energy", "utilization", "roofline"]
    check(all(os.path.exists(os.path.join(out, f + "." + e)) for f in figs for e in ("png", "svg")),
          "report figures as PNG and SVG")
    check(all("%s.svg" % f in page for f in figs) and "conv2" in page and "op/B" in page,
          "the page links the figures and has the layer table")


# -- Slurm ------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm(tmp, qsim) -> int:
    need = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue"]
    missing = [n for n in need if not shutil.which(n)]
    if missing:
        print("skip Slurm backend: %s not installed (Debian: slurmctld slurmd slurm-client munge)" % ", ".join(missing))
        return SKIP
    if os.geteuid() != 0:
        print("skip Slurm backend: starting slurmd needs root")
        return SKIP
    d = tempfile.mkdtemp(prefix="dse-slurm-", dir="/tmp")
    os.chmod(d, 0o755)
    for sub in ("state", "spool"):
        os.makedirs(os.path.join(d, sub))
    host = socket.gethostname()
    pids = []
    env = dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"))
    try:
        subprocess.run(["mungekey", "-c", "-k", os.path.join(d, "munge.key"), "-b", "1024"], check=True)
        sock = os.path.join(d, "munge.sock")
        subprocess.run(["munged", "-f", "--key-file=" + os.path.join(d, "munge.key"), "--socket=" + sock,
                        "--pid-file=" + os.path.join(d, "munged.pid"), "--log-file=" + os.path.join(d, "munged.log"),
                        "--seed-file=" + os.path.join(d, "munged.seed")], check=True)
        pids.append(os.path.join(d, "munged.pid"))
        conf = """ClusterName=dsetest
SlurmctldHost=%(host)s(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=%(p1)d
SlurmdPort=%(p2)d
AuthType=auth/munge
AuthInfo=socket=%(sock)s
CredType=cred/munge
StateSaveLocation=%(d)s/state
SlurmdSpoolDir=%(d)s/spool
SlurmctldPidFile=%(d)s/slurmctld.pid
SlurmdPidFile=%(d)s/slurmd.pid
SlurmctldLogFile=%(d)s/slurmctld.log
SlurmdLogFile=%(d)s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
InactiveLimit=0
MinJobAge=5
NodeName=dsenode NodeHostname=%(host)s NodeAddr=127.0.0.1 CPUs=%(cpus)d State=UNKNOWN
PartitionName=debug Nodes=dsenode Default=YES MaxTime=INFINITE State=UP
""" % dict(host=host, p1=free_port(), p2=free_port(), sock=sock, d=d, cpus=os.cpu_count() or 1)
        with open(env["SLURM_CONF"], "w") as f:
            f.write(conf)
        subprocess.run(["slurmctld", "-c", "-i"], env=env, check=True)
        pids.append(os.path.join(d, "slurmctld.pid"))
        subprocess.run(["slurmd", "-N", "dsenode"], env=env, check=True)
        pids.append(os.path.join(d, "slurmd.pid"))
        t0 = time.time()
        while time.time() - t0 < 30:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if r.stdout.strip() == "idle":
                break
            time.sleep(0.3)
        check(r.stdout.strip() == "idle", "single-node Slurm cluster is up (sinfo: %r)" % r.stdout.strip())

        spec = os.path.join(tmp, "slurm.toml")
        write_spec(spec, '"array.cols" = [4, 8]\n"array.skip_group" = [4, "z"]')
        out = os.path.join(tmp, "outslurm")
        r = subprocess.run(DSE + [spec, "--backend", "slurm", "--out", out, "--qsim", qsim], env=env,
                           capture_output=True, text=True, timeout=180)
        rows = read_jsonl(os.path.join(out, "results.jsonl"))
        check(r.returncode == 0 and len(rows) == 4, "sbatch --array runs the 4 points (rc %d, %d rows; %s)"
              % (r.returncode, len(rows), r.stderr[-400:]))
        check(sorted(x["status"] for x in rows) == ["failed", "failed", "ok", "ok"],
              "through Slurm too, the bad --set value is a failed point")
        check("submitted Slurm job" in r.stderr, "the job was submitted with sbatch")
        # --no-wait: submit, return, and let the next run collect
        write_spec(spec, '"array.cols" = [2, 16]\n"array.skip_group" = [4]')
        r = subprocess.run(DSE + [spec, "--backend", "slurm", "--no-wait", "--out", out, "--qsim", qsim], env=env,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and len(read_jsonl(os.path.join(out, "results.jsonl"))) == 4,
              "--no-wait returns before the results")
        t0 = time.time()
        while time.time() - t0 < 60:
            q = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True)
            if not q.stdout.strip():
                break
            time.sleep(0.5)
        r = subprocess.run(DSE + [spec, "--backend", "slurm", "--out", out, "--qsim", qsim], env=env,
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and "collected 2 result" in r.stderr and "0 to run" in r.stderr,
              "the next run collects them and submits nothing (%s)" % r.stderr[-300:])
    finally:
        for pf in reversed(pids):
            try:
                with open(pf) as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(0.5)
        if failures:
            for log in ("slurmctld.log", "slurmd.log"):
                p = os.path.join(d, log)
                if os.path.exists(p):
                    print("--- %s (tail)" % log)
                    print("".join(open(p).readlines()[-15:]))
        shutil.rmtree(d, ignore_errors=True)
    return 0


def main():
    if len(sys.argv) < 2:
        print("usage: test_dse.py QSIM [--slurm]", file=sys.stderr)
        return 2
    qsim = os.path.abspath(sys.argv[1])
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="test-dse-") as tmp:
        if "--slurm" in sys.argv[2:]:
            rc = test_slurm(tmp, qsim)
            if rc == SKIP and not failures:
                print("0 passed, 0 failed, 1 skipped")
                return SKIP
        else:
            test_pareto()
            test_resume(tmp, qsim)
            test_parallel(tmp, qsim)
            if HAVE_MPL:
                test_report(tmp, qsim)
            else:
                print("skip figures and scripts/report: matplotlib is not installed (scripts/setup-deps --tests installs "
                      "python3-matplotlib)")
    print("%.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
