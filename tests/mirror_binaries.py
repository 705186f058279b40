"""Real release binaries (promtool, amtool) taken from the lab mirror's tarballs, for unit tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from lab import paths
from roles._service.artifacts import load_versions


def extract(component: str, binary: str, directory: Path) -> Path:
    """`binary` from the mirror's release tarball of `component` (the pinned version), or skip the test."""
    version = load_versions()[component]["version"]
    pattern = f"prometheus/{component}/releases/download/v{version}/{component}-{version}.linux-amd64.tar.gz"
    tarball = next(paths.MIRROR_DIR.glob(pattern), None)
    if tarball is None:
        pytest.skip(f"no {component} {version} artifact in the lab mirror yet (python -m lab.artifacts build {component})")
    target = directory / f"{component}-bin"
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"/{binary}"))
        tar.extract(member, target, filter="data")
    return target / member.name
