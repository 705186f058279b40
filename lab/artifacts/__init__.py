"""The lab's artifact builder: upstream servers built from their Go modules,
packed as release-style tarballs in the lab mirror, plus a Python wheelhouse.

`python -m lab.artifacts build [--force] [names...]`, or build_all() from code.
"""

from .builder import build_all

__all__ = ["build_all"]
