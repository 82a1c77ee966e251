"""qsim design-space exploration: sweep specs, runners, Pareto fronts, reports (docs/dse.md)."""
import os

SCRIPTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(SCRIPTS)

# Debian packages the DSE scripts use (scripts/setup-deps --tests installs them):
#   python3-numpy, python3-matplotlib  -- figures, .npz -> .npy
#   parallel                           -- --backend parallel (GNU parallel)
#   slurm-client (+ slurmctld slurmd munge for a local cluster) -- --backend slurm
DEBIAN_PACKAGES = ["python3-numpy", "python3-matplotlib", "parallel"]


class DseError(Exception):
    """A user-facing error: a bad spec, a missing tool. Printed as one line, exit status 1."""


def need_matplotlib():
    """Import matplotlib with the Agg backend, or explain which package is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.rcParams["svg.hashsalt"] = "qsim-dse"   # reproducible SVG ids: figures change only with the data
        return plt
    except ImportError:
        raise DseError("matplotlib is missing: run scripts/setup-deps --tests (Debian package python3-matplotlib)")


def _meta(ext):
    """savefig metadata without the creation date (SVG, PNG), so regenerated figures are byte-identical."""
    return {"Date": None} if ext == "svg" else ({"Software": None} if ext == "png" else None)


# the public names of `qsim.dse` (after the definitions above, which its modules import)
from .pareto import fronts, pareto_front  # noqa: E402,F401
from .run import row_from_report, run_point  # noqa: E402,F401
from .spec import Spec  # noqa: E402,F401
