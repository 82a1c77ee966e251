"""Design-space exploration (docs/dse.md) as `qsim.dse`: the spec, the point runner (through these
bindings when possible), Pareto fronts. The implementation stays in scripts/dse_lib; `scripts/dse` is its
command-line wrapper."""
import os
import sys

_scripts = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _scripts not in sys.path:
    sys.path.append(_scripts)

from dse_lib import DseError  # noqa: E402,F401
from dse_lib.pareto import fronts, pareto_front  # noqa: E402,F401
from dse_lib.run import run_point, row_from_report  # noqa: E402,F401
from dse_lib.spec import Spec  # noqa: E402,F401
