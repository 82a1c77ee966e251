"""Thin wrapper kept at the old path: the code is the package module qsim.array_ref (scripts/qsim/array_ref.py).
Imported (`import qsim_array_ref`) it is that module itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim import array_ref as _module  # noqa: E402

sys.modules[__name__] = _module
