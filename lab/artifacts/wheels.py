"""A flat wheelhouse for the stand-in backend and the backup job, installable with
`pip install --no-index --find-links <mirror>/wheels/` inside lab hosts.

One directory holds the wheels for every Python the lab's hosts run (one per
Debian suite, lab/paths.py SUITE_PYTHON); pip on each host picks the ones its
interpreter's tags accept.
"""

import hashlib
import html
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from lab.paths import HOSTS, SUITE_PYTHON

from .tarball import sha256_file

# pip widens manylinux2014 to manylinux2010/1 itself but not to the newer
# perennial tags, which some current wheels carry alone.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def lab_pythons(hosts=HOSTS) -> list[str]:
    """The Python versions ("3.11", "3.13") of the suites the lab's hosts run, oldest first."""
    suites = {host.suite for host in hosts.values()}
    return [python for suite, python in SUITE_PYTHON.items() if suite in suites]


def inputs(requirements: Path, pythons: list[str]) -> dict:
    return {
        "requirements_sha256": hashlib.sha256(Path(requirements).read_bytes()).hexdigest(),
        "pythons": list(pythons),
        "platforms": list(PLATFORMS),
    }


def binary_only_argv(base: list[str], python_version: str) -> list[str]:
    """pip download of wheels only, for CPython `python_version` on x86_64 Linux, whatever runs pip."""
    argv = base + ["--only-binary=:all:", "--python-version", python_version,
                   "--implementation", "cp", "--abi", "cp" + python_version.replace(".", "")]
    for plat in PLATFORMS:
        argv += ["--platform", plat]
    return argv


def download(requirements: Path, dest: Path, pythons: list[str], python: str = sys.executable,
             log=print) -> dict:
    """Fill `dest` with the wheels for `requirements` for each of `pythons`, and an index.html.

    Downloads into a sibling directory and swaps it in, so stale wheels from
    older pins never linger for pip to pick up as transitive dependencies.
    Returns the files and, per Python version, how they were fetched.
    """
    requirements, dest = Path(requirements), Path(dest)
    staging = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    base = [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "-d", str(staging), "-r", str(requirements)]
    modes = {}
    for version in pythons:
        proc = subprocess.run(binary_only_argv(base, version), capture_output=True, text=True)
        modes[version] = "binary-only"
        if proc.returncode != 0:
            # Some requirement has no wheel for this Python. Sdists are fine when this
            # machine's interpreter is that Python (pip builds them on the host), so retry
            # for this interpreter, still preferring wheels; for any other Python, fail.
            if not _same_target(python, version):
                raise RuntimeError(f"pip download of wheels for Python {version} failed:\n{proc.stderr[-4000:]}")
            log(f"  no Python {version} wheel for every requirement; retrying with --prefer-binary")
            proc = subprocess.run(base + ["--prefer-binary"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"pip download failed:\n{proc.stderr[-4000:]}")
            modes[version] = "prefer-binary"

    files = sorted(p.name for p in staging.iterdir() if p.is_file())
    write_index(staging, files)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return {"modes": modes, "files": files}


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


def _same_target(python: str, version: str) -> bool:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True).stdout.strip()
    return out == version and sys.platform == "linux" and platform.machine() == "x86_64"
