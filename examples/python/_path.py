"""Lets the examples import the `adjoint` package from the repository's clients/python when it is not
installed (`pip install --no-build-isolation ./clients/python` installs it)."""

import sys
from pathlib import Path

try:
    import adjoint  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
