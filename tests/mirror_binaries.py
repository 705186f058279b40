"""Real release binaries (promtool, amtool) taken from the lab mirror's tarballs, for unit tests.

On a fresh clone the mirror is empty: `extract` then builds the component once with
the lab's artifact builder (`python -m lab.artifacts build <component>`, which takes a
lock and reuses warm results). When that cannot run, the test is skipped with a reason
starting with MISSING_TOOL and the command to run; under CI=true tests/conftest.py turns
such a skip into a failure. SENTINEL_BUILD_TOOLS=0 turns the automatic build off.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab import paths
from roles._service.artifacts import load_versions

ROOT = Path(__file__).resolve().parent.parent
MISSING_TOOL = "missing tool:"


def _tarball(component: str) -> Path | None:
    version = load_versions()[component]["version"]
    pattern = f"prometheus/{component}/releases/download/v{version}/{component}-{version}.linux-amd64.tar.gz"
    return next(paths.MIRROR_DIR.glob(pattern), None)


@functools.cache
def _build(component: str) -> str:
    """Build `component` into the lab mirror once per session; "" on success, else why not."""
    if os.environ.get("SENTINEL_BUILD_TOOLS", "1") == "0":
        return "SENTINEL_BUILD_TOOLS=0"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "lab.artifacts", "build", component],
            cwd=ROOT, capture_output=True, text=True, timeout=3600,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["failed"])[-1]


def release_tarball(component: str) -> Path:
    """The mirror's release tarball of `component` (the pinned version), built when missing, or skip."""
    tarball = _tarball(component)
    if tarball is None:
        why = _build(component)
        tarball = _tarball(component)
        if tarball is None:
            version = load_versions()[component]["version"]
            pytest.skip(
                f"{MISSING_TOOL} no {component} {version} artifact in the lab mirror {paths.MIRROR_DIR} ({why}); "
                f"run: python -m lab.artifacts build {component}"
            )
    return tarball


def extract(component: str, binary: str, directory: Path) -> Path:
    """`binary` from the mirror's release tarball of `component`."""
    target = directory / f"{component}-bin"
    with tarfile.open(release_tarball(component)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"/{binary}"))
        tar.extract(member, target, filter="data")
    return target / member.name
