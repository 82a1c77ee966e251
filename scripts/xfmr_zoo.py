#!/usr/bin/python3
"""Thin wrapper kept at the old path: the code is the package module qsim.xfmr_zoo (scripts/qsim/xfmr_zoo.py).
Run as a command it is that module's command line; imported (`import xfmr_zoo`) it is that module itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim import xfmr_zoo as _module  # noqa: E402

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
