"""Thin alias kept at the old name: the DSE library is the package qsim.dse (scripts/qsim/dse/).
`import dse_lib.run` and `from dse_lib import pareto` give the very modules of qsim.dse (one copy of each)."""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_package = importlib.import_module("qsim.dse")
for _name in ("backends", "bindings_worker", "cli", "pareto", "plotstyle", "report", "run", "spec", "studies"):
    sys.modules[__name__ + "." + _name] = importlib.import_module("qsim.dse." + _name)
sys.modules[__name__] = _package
