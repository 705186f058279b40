"""Real collector and Jaeger binaries from the lab mirror's release archives, for unit tests.

Without the archive a test is skipped with the command that builds it, except in
CI (CI=true), where the archive is built with the lab's artifact builder and a
missing binary FAILS: a validation test that silently never runs proves nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab import paths
from roles._service.artifacts import load_versions

# versions.yml key -> (archive name pattern in the mirror, binary in the archive)
ARCHIVES = {
    "otelcol": ("otelcol-contrib_{version}_linux_amd64.tar.gz", "otelcol-contrib"),
    "jaeger": ("jaeger-{version}-linux-amd64.tar.gz", "jaeger"),
}


def _archive(component: str) -> Path | None:
    pattern, _ = ARCHIVES[component]
    version = load_versions().get(component, {}).get("version", "*")
    found = sorted(paths.MIRROR_DIR.glob(f"**/{pattern.format(version=version)}"))
    return found[-1] if found else None


def binary(component: str, directory: Path) -> Path:
    """The `component`'s binary extracted into `directory`, or skip (fail under CI=true)."""
    tarball = _archive(component)
    in_ci = os.environ.get("CI", "").lower() == "true"
    if tarball is None and in_ci:
        subprocess.run([sys.executable, "-m", "lab.artifacts", "build", component], check=False)
        tarball = _archive(component)
    if tarball is None:
        message = f"no {component} archive in the lab mirror (python -m lab.artifacts build {component})"
        if in_ci:
            pytest.fail(message + "; CI must validate the rendered configs with the real binary")
        pytest.skip(message)
    name = ARCHIVES[component][1]
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.isfile() and Path(m.name).name == name)
        tar.extract(member, directory, filter="data")
    return directory / member.name
