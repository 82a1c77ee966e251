"""scripts/dse: the command line (docs/dse.md)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from . import DEBIAN_PACKAGES, DseError
from .backends import Interrupted, Progress, collect_slurm, run_local, run_parallel, run_slurm
from .run import Results, decode_point, run_point
from .spec import Spec, default_qsim, qsim_version, source_revision

USAGE = """scripts/dse SPEC.toml [--jobs N] [--out DIR] [--qsim PATH] [--backend local|parallel|slurm]
       scripts/dse SPEC.toml --analyze        (fronts, plots and study page from the table only)"""


def _n(count: int, word: str) -> str:
    """'1 job', '2 jobs'."""
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def _show(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def worker(argv) -> int:
    """`dse --worker TOKEN [--worker-out DIR]`: run one encoded point (GNU parallel / Slurm job)."""
    ap = argparse.ArgumentParser(prog="dse --worker")
    ap.add_argument("--worker", required=True)
    ap.add_argument("--worker-out")
    a = ap.parse_args(argv)
    point = decode_point(a.worker)
    procs = []
    stop = []

    def on_term(s, f):
        stop.append(s)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    row = run_point(point, on_start=procs.append, stopped=lambda: bool(stop))
    if row is None or stop:
        return 128 + (stop[0] if stop else signal.SIGTERM)
    line = json.dumps(row, separators=(",", ":"), default=str)
    if a.worker_out:
        os.makedirs(a.worker_out, exist_ok=True)
        dst = os.path.join(a.worker_out, point["key"] + ".json")
        with open(dst + ".tmp", "w") as f:
            f.write(line + "\n")
        os.replace(dst + ".tmp", dst)
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker(argv)
    ap = argparse.ArgumentParser(
        prog="scripts/dse", usage=USAGE,
        description="Design-space exploration over qsim runs: every point is one `qsim run --set ... --json`; "
                    "results go to OUT/results.jsonl and OUT/results.csv, Pareto fronts to OUT/*.csv/png/svg. "
                    "A re-run skips points already in the table (same key). See docs/dse.md.",
        epilog="Debian packages used: %s (scripts/setup-deps --tests installs them)." % ", ".join(DEBIAN_PACKAGES))
    ap.add_argument("spec", help="sweep specification (TOML, docs/dse.md)")
    ap.add_argument("--jobs", "-j", type=int, help="points run at once (local: default all cores; parallel: per "
                    "host, default GNU parallel's; slurm: array throttle)")
    ap.add_argument("--out", "-o", help="output folder (default: the spec's 'out', else dse-out/NAME)")
    ap.add_argument("--qsim", help="qsim binary (default $QSIM, else build/cli/qsim)")
    ap.add_argument("--backend", choices=["local", "parallel", "slurm"], default="local")
    ap.add_argument("--sshlogin", "-S", default=":", help="GNU parallel --sshlogin (default ':' = this machine)")
    ap.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                    help="extra #SBATCH line, e.g. --sbatch-arg=--partition=debug (repeatable)")
    ap.add_argument("--no-wait", action="store_true", help="slurm: submit and return; a later run collects")
    ap.add_argument("--dry-run", action="store_true", help="list what would run; parallel/slurm: write the "
                    "job files and command/script without running them")
    ap.add_argument("--retry-failed", action="store_true", help="run failed points again")
    ap.add_argument("--rerun", action="store_true", help="run every point again (new rows replace the old)")
    ap.add_argument("--prune", action="store_true", help="drop rows of points not in this spec from the table "
                    "(and older rows of the same point)")
    ap.add_argument("--keep-json", action="store_true", help="keep each point's qsim JSON in OUT/runs/KEY.json")
    ap.add_argument("--analyze", action="store_true", help="no runs: only fronts, plots and the study page")
    ap.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                    help="progress line on stderr (auto: when stderr is a terminal)")
    a = ap.parse_args(argv)
    try:
        return _main(a)
    except DseError as e:
        print("dse: %s" % e, file=sys.stderr)
        return 1


def _main(a) -> int:
    spec = Spec(a.spec)
    out = os.path.abspath(a.out) if a.out else (spec.out or os.path.abspath(os.path.join("dse-out", spec.name)))
    qsim = a.qsim or default_qsim()
    if not os.path.exists(qsim):
        raise DseError("qsim binary %s does not exist" % qsim)
    version = qsim_version(qsim)
    results = Results(out)
    if not a.analyze:
        spec.prepare_networks()
    else:
        for n in spec.networks:
            if not os.path.exists(n["path"]):
                raise DseError("network %s (%s) is missing: run without --analyze first" % (n["name"], n["path"]))
            if "npz" in n:
                spec.prepare_networks()
                break
    points = spec.points(qsim, version)
    revision = source_revision()
    for p in points:
        p["source_revision"] = revision
    keys = [p["key"] for p in points]
    collected = collect_slurm(results, set(keys))
    if collected:
        print("dse: collected %d result(s) of earlier Slurm tasks" % collected, file=sys.stderr)
    if a.prune:
        print("dse: pruned %d row(s) of other points" % results.prune(keys), file=sys.stderr)
    todo = [p for p in points if a.rerun or not results.done(p["key"], a.retry_failed)]
    already = len(points) - len(todo)
    jobs = a.jobs or (os.cpu_count() or 1 if a.backend == "local" else None)
    print("dse: %s: %s (%s x %d), %d already in %s, %d to run (%s backend%s), qsim %s, source %s" % (
        spec.name, _n(len(points), "point"), _n(len(spec.networks), "network"),
        len(points) // max(len(spec.networks), 1), already, _show(os.path.join(out, "results.jsonl")),
        0 if a.analyze else len(todo), a.backend, ", " + _n(jobs, "job") if jobs else "", version, revision),
        file=sys.stderr, flush=True)
    if a.dry_run and a.backend == "local":
        for p in todo:
            print("%s %s %s" % (p["key"], p["network"], " ".join(p["overrides"])))
        return 0
    enabled = {"auto": None, "always": True, "never": False}[a.progress]
    progress = Progress(len(points), already, spec.name, enabled=enabled)
    rc = 0
    try:
        if todo and not a.analyze:
            if a.backend == "local":
                run_local(todo, results, jobs, progress, os.path.join(out, "runs") if a.keep_json else None)
            elif a.backend == "parallel":
                run_parallel(todo, results, a.sshlogin, a.jobs, progress, a.dry_run)
            else:
                run_slurm(todo, results, spec.name, a.jobs, progress, wait=not a.no_wait,
                          sbatch_args=a.sbatch_arg, dry_run=a.dry_run)
    except Interrupted as e:
        rc = 128 + e.signum
    finally:
        progress.close()
        results.write_csv(order=keys)
    mine = [results.rows[k] for k in keys if k in results.rows]
    nok = sum(r.get("status") == "ok" for r in mine)
    nfail = len(mine) - nok
    print("dse: %s: %d/%d point(s) done, %d ok, %d failed%s -> %s" % (
        spec.name, len(mine), len(points), nok, nfail,
        " (error column of results.csv)" if nfail else "", _show(results.csv)), file=sys.stderr)
    if rc:
        print("dse: interrupted; run the same command again to continue (finished points are kept)",
              file=sys.stderr)
        return rc
    if a.dry_run or (a.backend == "slurm" and a.no_wait):
        return 0
    from .pareto import analyze
    analyze(spec, results, keys, out, sys.stderr)
    if spec.analysis:
        from . import studies
        fn = getattr(studies, spec.analysis, None)
        if fn is None:
            raise DseError("analysis %r: no such study in scripts/qsim/dse/studies.py" % spec.analysis)
        fn(spec, results.flat_rows(keys), out, results)
    return 0
