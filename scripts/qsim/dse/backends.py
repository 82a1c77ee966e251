"""Where points run: local processes, GNU parallel (local or over ssh), Slurm job arrays."""
from __future__ import annotations

import concurrent.futures as cf
import glob
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

from . import SCRIPTS, DseError
from .run import encode_point, install_stop_handlers, run_point

DSE = os.path.join(SCRIPTS, "dse")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class Progress:
    """done/total, rate and ETA on one stderr line, redrawn when stderr is a terminal."""

    def __init__(self, total: int, already: int, label: str, stream=sys.stderr, enabled=None):
        self.total, self.done, self.label, self.stream = total, already, label, stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.t0 = time.time()
        self.new = self.failed = 0
        self._last = 0.0

    def update(self, row: dict):
        self.done += 1
        self.new += 1
        self.failed += row.get("status") != "ok"
        self.draw()

    def draw(self, force=False):
        if not self.enabled:
            return
        now = time.time()
        if not force and now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        el = max(now - self.t0, 1e-9)
        rate = self.new / el
        left = self.total - self.done
        eta = "--:--" if rate <= 0 else fmt_dur(left / rate)
        msg = "dse %s: %d/%d points (%d%%), %d failed, %.2f points/s, elapsed %s, ETA %s" % (
            self.label, self.done, self.total, 100 * self.done // max(self.total, 1), self.failed, rate,
            fmt_dur(el), eta)
        self.stream.write("\r\x1b[K" + msg)
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def fmt_dur(s: float) -> str:
    s = int(round(s))
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) if s >= 3600 else "%d:%02d" % (s // 60, s % 60)


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__("interrupted by signal %d" % signum)
        self.signum = signum


class _CsvTicker:
    """Rewrites results.csv at most every few seconds while a sweep runs."""

    def __init__(self, results, period=5.0):
        self.results, self.period, self.t = results, period, time.time()

    def tick(self):
        if time.time() - self.t > self.period:
            self.results.write_csv()
            self.t = time.time()


# -- local ------------------------------------------------------------------------------------------
def run_local(points, results, jobs, progress, keep_json=None):
    stop = threading.Event()
    lock = threading.Lock()
    procs = set()
    signum = []

    def kill(p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

    def on_start(p):
        with lock:
            procs.add(p)
            if stop.is_set():
                kill(p)

    def task(pt):
        if stop.is_set():
            return pt, None
        try:
            return pt, run_point(pt, workdir=results.outdir, keep_json=keep_json, on_start=on_start,
                                 stopped=stop.is_set)
        finally:
            with lock:
                for p in [p for p in procs if p.poll() is not None]:
                    procs.discard(p)

    def on_signal(s):
        signum.append(s)
        stop.set()
        with lock:
            for p in list(procs):
                kill(p)

    install_stop_handlers(on_signal)
    ticker = _CsvTicker(results)
    ex = cf.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        pending = {ex.submit(task, p) for p in points}
        while pending:
            done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for f in done:
                if f.cancelled():
                    continue
                pt, row = f.result()
                if row is not None:
                    results.append(row)
                    progress.update(row)
                    ticker.tick()
            if stop.is_set():
                for f in pending:
                    f.cancel()
            progress.draw()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if signum:
        raise Interrupted(signum[0])


# -- GNU parallel -----------------------------------------------------------------------------------
def parallel_command(jobfile, sshlogin, jobs, joblog):
    cmd = ["parallel", "--will-cite", "--sshlogin", sshlogin, "--joblog", joblog, "--halt", "never",
           "--arg-file", jobfile]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    return cmd + [PYTHON, DSE, "--worker", "{}"]


def run_parallel(points, results, sshlogin, jobs, progress, dry_run=False):
    pdir = os.path.join(results.outdir, "parallel")
    os.makedirs(pdir, exist_ok=True)
    jobfile = os.path.join(pdir, "jobs.txt")
    with open(jobfile, "w") as f:
        for p in points:
            f.write(encode_point(p) + "\n")
    cmd = parallel_command(jobfile, sshlogin, jobs, os.path.join(pdir, "joblog.tsv"))
    script = os.path.join(pdir, "run.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n# written by scripts/dse: one line per point in jobs.txt; each job prints its"
                " result row (JSON) on stdout.\n# Remote hosts need this repository and qsim at the same"
                " paths (shared file system).\n%s\n" % shlex.join(cmd))
    os.chmod(script, 0o755)
    print("dse: %s" % shlex.join(cmd), file=sys.stderr, flush=True)
    if dry_run:
        return
    if not shutil.which("parallel"):
        raise DseError("GNU parallel is missing: run scripts/setup-deps --tests (Debian package parallel)")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    signum = []

    def on_signal(s):
        signum.append(s)
        try:   # two TERMs: GNU parallel kills its running jobs at the second
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass

    install_stop_handlers(on_signal)
    ticker = _CsvTicker(results)
    want = {p["key"] for p in points}
    for line in proc.stdout:
        line = line.strip()
        if not line.startswith("{"):
            if line:
                print("dse: parallel: %s" % line, file=sys.stderr)
            continue
        try:
            row = json.loads(line)
        except ValueError:
            print("dse: parallel: unreadable output: %s" % line[:200], file=sys.stderr)
            continue
        if row.get("key") in want:
            results.append(row)
            progress.update(row)
            ticker.tick()
    rc = proc.wait()
    if signum:
        raise Interrupted(signum[0])
    if rc not in (0,) and rc < 101:
        # parallel's exit status = number of failed jobs; a failed *point* is a row, so a non-zero
        # status means workers that printed nothing (e.g. ssh errors): see the joblog
        print("dse: GNU parallel: %d job(s) exited non-zero (see %s)" % (rc, os.path.join(pdir, "joblog.tsv")),
              file=sys.stderr)
    elif rc >= 101:
        raise DseError("GNU parallel failed (exit status %d)" % rc)


# -- Slurm ------------------------------------------------------------------------------------------
MAX_ARRAY = 1000


def slurm_script(name, sdir, ntasks, per_task, jobs, sbatch_args=()):
    lines = ["#!/bin/bash",
             "#SBATCH --job-name=dse-%s" % name,
             "#SBATCH --array=0-%d%s" % (ntasks - 1, "%%%d" % jobs if jobs else ""),
             "#SBATCH --output=%s/log/%%A_%%a.out" % sdir,
             "#SBATCH --ntasks=1",
             "#SBATCH --cpus-per-task=1"]
    lines += ["#SBATCH %s" % a for a in sbatch_args]
    lines += ["# written by scripts/dse: task i runs lines i*%d+1 .. (i+1)*%d of jobs.txt; each point's row"
              % (per_task, per_task),
              "# goes to results/KEY.json, which the next `scripts/dse` run (or the waiting one) collects.",
              "set -u",
              "first=$(( SLURM_ARRAY_TASK_ID * %d + 1 ))" % per_task,
              "last=$(( first + %d - 1 ))" % per_task,
              'sed -n "${first},${last}p" %s | while read -r tok; do' % shlex.quote(os.path.join(sdir, "jobs.txt")),
              '  %s %s --worker "$tok" --worker-out %s' % (PYTHON, shlex.quote(DSE),
                                                           shlex.quote(os.path.join(sdir, "results"))),
              "done", ""]
    return "\n".join(lines)


def collect_slurm(results, keys=None) -> int:
    """Appends rows that Slurm tasks wrote (outdir/slurm/*/results/KEY.json) and the table lacks
    (a sweep submitted with --no-wait, or one whose waiting run was stopped)."""
    n = 0
    for fn in sorted(glob.glob(os.path.join(results.outdir, "slurm", "*", "results", "*.json"))):
        key = os.path.basename(fn)[:-5]
        if keys is not None and key not in keys:
            continue
        try:
            with open(fn) as f:
                row = json.load(f)
        except (OSError, ValueError):
            continue
        old = results.rows.get(key)
        if old is not None and (old == row or (old.get("finished") or "") >= (row.get("finished") or "")):
            continue
        results.append(row)
        n += 1
    return n


def run_slurm(points, results, name, jobs, progress, wait=True, sbatch_args=(), dry_run=False, poll_s=1.0):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sdir = os.path.join(results.outdir, "slurm", stamp)
    n = 1
    while os.path.exists(sdir):
        n += 1
        sdir = os.path.join(results.outdir, "slurm", "%s-%d" % (stamp, n))
    for d in ("log", "results"):
        os.makedirs(os.path.join(sdir, d), exist_ok=True)
    with open(os.path.join(sdir, "jobs.txt"), "w") as f:
        for p in points:
            f.write(encode_point(p) + "\n")
    per_task = max(1, math.ceil(len(points) / MAX_ARRAY))
    ntasks = math.ceil(len(points) / per_task)
    script = os.path.join(sdir, "sweep.sbatch")
    with open(script, "w") as f:
        f.write(slurm_script(name, sdir, ntasks, per_task, jobs, sbatch_args))
    os.chmod(script, 0o755)
    print("dse: wrote %s (%d array tasks, %d point(s) each)" % (script, ntasks, per_task), file=sys.stderr)
    if dry_run:
        return
    if not shutil.which("sbatch"):
        raise DseError("sbatch not found: install Slurm's client (Debian package slurm-client) and point it at "
                       "a cluster, or use --backend local/parallel")
    p = subprocess.run(["sbatch", "--parsable", script], capture_output=True, text=True)
    if p.returncode != 0:
        raise DseError("sbatch failed: %s" % (p.stderr.strip() or p.stdout.strip()))
    jobid = p.stdout.strip().split(";")[0]
    with open(os.path.join(sdir, "jobid"), "w") as f:
        f.write(jobid + "\n")
    print("dse: submitted Slurm job %s (%s)" % (jobid, script), file=sys.stderr, flush=True)
    if not wait:
        print("dse: not waiting; the next `scripts/dse` run with this --out collects the results",
              file=sys.stderr)
        return
    signum = []
    install_stop_handlers(lambda s: signum.append(s))
    want = {p["key"] for p in points}
    seen = set()
    gone = 0
    while True:
        for fn in glob.glob(os.path.join(sdir, "results", "*.json")):
            key = os.path.basename(fn)[:-5]
            if key in seen or key not in want:
                continue
            try:
                with open(fn) as f:
                    row = json.load(f)
            except (OSError, ValueError):
                continue   # still being written (the worker renames it into place, so rarely)
            seen.add(key)
            results.append(row)
            progress.update(row)
        progress.draw()
        if signum:
            print("\ndse: stopped waiting; Slurm job %s keeps running (scancel %s to stop it); the next run "
                  "collects its results" % (jobid, jobid), file=sys.stderr)
            raise Interrupted(signum[0])
        if len(seen) == len(want):
            break
        q = subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%i"], capture_output=True, text=True)
        gone = gone + 1 if (q.returncode == 0 and not q.stdout.strip()) or q.returncode != 0 else 0
        if gone >= 3:
            break
        time.sleep(poll_s)
    missing = len(want) - len(seen)
    if missing:
        print("dse: %d point(s) produced no result in Slurm job %s (logs: %s); run again to retry them" %
              (missing, jobid, os.path.join(sdir, "log")), file=sys.stderr)
