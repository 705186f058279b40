"""The lab's Node backend as a release-style tarball: the app and its node_modules.

Built on the controller from the committed lockfile (`npm ci --omit=dev`), packed
reproducibly (lab/artifacts/tarball.py) and served by the lab mirror with a SHA256SUMS
file beside it, so the app host installs it like any release archive (sha256 checked,
roles/_service/tree.py) and never reaches the npm registry during a converge.

The version names the inputs: the package version plus a digest of package.json, the
lockfile and src/ (`release_version`). The role computes the same name from the checkout
it deploys, so it always asks the mirror for the build of exactly that code.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from lab import paths

from . import tarball

NAME = "sentinel-backend"
SOURCE = paths.REPO / "lab" / "backend_node"
# What is copied into the build and hashed into its version.
_INPUT_FILES = ("package.json", "package-lock.json")
_INPUT_DIRS = ("src",)
# Engines: the app host's Debian nodejs (20.19 on Debian 13). No native addon is in the
# lockfile, so the build machine's Node only has to run npm.
NPM_CI = ("npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund")


def input_files(source: Path = SOURCE) -> list[Path]:
    """The files the build is made of, in a fixed order."""
    files = [source / name for name in _INPUT_FILES]
    for directory in _INPUT_DIRS:
        files += sorted(p for p in (source / directory).rglob("*") if p.is_file())
    return files


def inputs_digest(source: Path = SOURCE) -> str:
    """sha256 over the input files' relative names and contents."""
    digest = hashlib.sha256()
    for path in input_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def release_version(source: Path = SOURCE) -> str:
    """`<package version>-<12 hex of the inputs>`: a new install directory for every code change."""
    import json

    version = json.loads((source / "package.json").read_text())["version"]
    return f"{version}-{inputs_digest(source)[:12]}"


def archive_root(version: str) -> str:
    return f"{NAME}-{version}"


def tarball_path(version: str) -> str:
    """Relative to the mirror: the path the role's URL names."""
    return f"{NAME}/{NAME}-{version}.tar.gz"


def checksums_path() -> str:
    return f"{NAME}/SHA256SUMS"


def build(stage: Path, mirror: Path = paths.MIRROR_DIR, source: Path = SOURCE, log=print) -> dict:
    """npm ci into `stage` and pack app + node_modules into the mirror; returns the outputs."""
    version = release_version(source)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for path in input_files(source):
        dest = stage / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    log(f"{NAME}: {' '.join(NPM_CI)} ({version})")
    proc = subprocess.run(NPM_CI, cwd=stage, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci failed:\n{proc.stderr[-4000:]}")
    members = {}
    for path in sorted(stage.rglob("*")):
        rel = path.relative_to(stage).as_posix()
        # node_modules/.bin holds symlinks to CLIs, which the service never runs; npm's
        # own record of the install (.package-lock.json) is kept.
        if "/.bin/" in f"/{rel}/" or path.is_dir():
            continue
        if path.is_symlink():
            raise RuntimeError(f"{rel} is a symlink; the tarball carries regular files only")
        members[rel] = path
    tar_path = mirror / tarball_path(version)
    sha = tarball.pack(tar_path, members, root=archive_root(version))
    # One line per build, kept beside the others: the role looks its version up here.
    tarball.write_checksums(mirror / checksums_path(), {tar_path.name: sha})
    shutil.rmtree(stage, ignore_errors=True)
    return {
        "version": version,
        "tarball": tarball_path(version),
        "checksums": checksums_path(),
        "sha256": sha,
        "size": tar_path.stat().st_size,
        "files": len(members),
    }
