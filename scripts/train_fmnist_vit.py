#!/usr/bin/python3
"""Thin wrapper: the code is the package module qsim.train_fmnist_vit (scripts/qsim/train_fmnist_vit.py).
Run as a command it is that module's command line; imported (`import train_fmnist_vit`) it is that module itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qsim import train_fmnist_vit as _module  # noqa: E402

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
