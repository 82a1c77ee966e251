"""Thin wrapper kept at the old path: the code is the package module qsim.qat_train (scripts/qsim/qat_train.py).
Imported (`import qat_train`) it is that module itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim import qat_train as _module  # noqa: E402

sys.modules[__name__] = _module
