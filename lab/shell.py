"""Tiny helpers to run host commands and log what the lab is doing."""

import shlex
import subprocess
import sys
import time
from contextlib import contextmanager


def log(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, check: bool = True, capture: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure show the command and its output, then raise."""
    result = subprocess.run(argv, text=True, capture_output=capture, **kwargs)
    if check and result.returncode != 0:
        details = f"\n{result.stdout or ''}{result.stderr or ''}" if capture else ""
        raise RuntimeError(f"command failed ({result.returncode}): {shlex.join(argv)}{details}")
    return result


def output(argv: list[str]) -> str:
    return run(argv, capture=True).stdout


def succeeds(argv: list[str]) -> bool:
    return run(argv, check=False, capture=True).returncode == 0


@contextmanager
def timed(phase: str):
    """Print `[lab] timing: <phase> <seconds>s`; benchmarks grep for this line.

    Yields a dict whose "phase" the block may refine (e.g. "image (warm)").
    """
    info = {"phase": phase}
    start = time.monotonic()
    yield info
    log(f"timing: {info['phase']} {time.monotonic() - start:.1f}s")
