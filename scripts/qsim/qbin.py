"""The .qbin format (docs/qbin.md) and the independent NumPy reference evaluator, as `qsim.qbin`.

The implementation stays in scripts/qsim_qbin.py (its command-line wrapper and other tools import it by
that name); this module makes it part of the package: `from qsim import qbin; qbin.evaluate(qbin.read(p), x)`.
"""
import os
import sys

_scripts = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _scripts not in sys.path:
    sys.path.append(_scripts)

from qsim_qbin import *  # noqa: E402,F401,F403
from qsim_qbin import Net, Layer, Tensor, QbinError, read, write, loads, dumps, evaluate  # noqa: E402,F401
