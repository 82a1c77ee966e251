#!/usr/bin/python3
"""Thin wrapper kept at the old path: the code is the package module qsim.export_qbin (scripts/qsim/export_qbin.py).
Run as a command it is that module's command line; imported (`import export_qbin`) it is that module itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim import export_qbin as _module  # noqa: E402

if __name__ == "__main__":
    print(_module.__doc__)
sys.modules[__name__] = _module
