"""A flat wheelhouse for the stand-in backend, installable with
`pip install --no-index --find-links <mirror>/wheels/` inside lab hosts.
"""

import hashlib
import html
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from .tarball import sha256_file

PYTHON_VERSION = "3.11"
# pip widens manylinux2014 to manylinux2010/1 itself but not to the newer
# perennial tags, which some current wheels carry alone.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def inputs(requirements: Path) -> dict:
    return {
        "requirements_sha256": hashlib.sha256(Path(requirements).read_bytes()).hexdigest(),
        "python": PYTHON_VERSION,
        "platforms": list(PLATFORMS),
    }


def download(requirements: Path, dest: Path, python: str = sys.executable, log=print) -> dict:
    """Fill `dest` with the wheels for `requirements` and an index.html.

    Downloads into a sibling directory and swaps it in, so stale wheels from
    older pins never linger for pip to pick up as transitive dependencies.
    """
    requirements, dest = Path(requirements), Path(dest)
    staging = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    base = [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "-d", str(staging), "-r", str(requirements)]
    strict = base + ["--only-binary=:all:", "--python-version", PYTHON_VERSION,
                     "--implementation", "cp", "--abi", "cp" + PYTHON_VERSION.replace(".", "")]
    for plat in PLATFORMS:
        strict += ["--platform", plat]
    proc = subprocess.run(strict, capture_output=True, text=True)
    mode = "binary-only"
    if proc.returncode != 0:
        # Some requirement has no wheel. Sdists are fine when this machine is
        # what the hosts run (pip builds them there), so retry for this
        # interpreter, still preferring wheels.
        if not _same_target(python):
            raise RuntimeError(f"pip download failed:\n{proc.stderr[-4000:]}")
        log("  no wheel for every requirement; retrying with --prefer-binary for this interpreter")
        proc = subprocess.run(base + ["--prefer-binary"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pip download failed:\n{proc.stderr[-4000:]}")
        mode = "prefer-binary"

    files = sorted(p.name for p in staging.iterdir() if p.is_file())
    write_index(staging, files)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return {"mode": mode, "files": files}


def write_index(directory: Path, files: list[str]) -> None:
    """index.html with one link per file; pip's --find-links reads the anchors
    and checks the #sha256 fragment."""
    links = "".join(
        f'<a href="{html.escape(n)}#sha256={sha256_file(directory / n)}">{html.escape(n)}</a><br>\n'
        for n in sorted(files)
    )
    page = f"<!DOCTYPE html>\n<html><head><title>wheels</title></head><body>\n{links}</body></html>\n"
    (directory / "index.html").write_text(page, encoding="utf-8")


def present(dest: Path, files: list[str]) -> bool:
    return (dest / "index.html").is_file() and all((dest / f).is_file() for f in files)


def _same_target(python: str) -> bool:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True).stdout.strip()
    return out == PYTHON_VERSION and sys.platform == "linux" and platform.machine() == "x86_64"
