"""A scripts/dse worker process: reads points (one JSON object per line: {"point", "keep_json"}) on stdin,
runs each through libqsim (qsim.dse.run.run_point_bindings) and writes its row as one JSON line on stdout.
The library and every network stay loaded between points. Started by qsim.dse.run.run_point_worker."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from qsim.dse.run import _bindings, run_point_bindings  # noqa: E402


def main():
    q = _bindings()
    for line in sys.stdin:
        msg = json.loads(line)
        if q is None:
            from qsim.dse.run import base_row
            row = base_row(msg["point"])
            row.update(status="failed", error="libqsim cannot be loaded")
        else:
            row = run_point_bindings(q, msg["point"], msg.get("keep_json"))
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
