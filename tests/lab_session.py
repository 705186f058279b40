"""Running pyinfra against the lab from tests, and reading what it changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = os.environ.get("SENTINEL_INVENTORY", "inventory/lab.py")


@dataclass
class Converge:
    returncode: int
    output: str

    @property
    def changed(self) -> dict[str, int]:
        """Operations that changed something, per host that ran any operation.

        pyinfra reports each operation per host as Success (it ran commands),
        No changes, or Skipped.
        """
        counts: dict[str, int] = {}
        for host, outcome in re.findall(r"^\s+\[(\S+)\] (Success|No changes|Skipped)\s*$", self.output, re.M):
            counts[host] = counts.get(host, 0) + (outcome == "Success")
        return counts


def pyinfra(*args: str, env: dict | None = None, timeout: int = 1800) -> Converge:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pyinfra"), "-y", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Converge(result.returncode, result.stdout + result.stderr)


def converge(*options: str, env: dict | None = None) -> Converge:
    """pyinfra [options] <inventory> deploy.py"""
    return pyinfra(*options, INVENTORY, "deploy.py", env=env)


def lab_missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, systemd-nspawn)"
    if not (ROOT / "inventory" / "lab.py").exists():
        return "the lab is not up: run `python -m lab up` (make test does)"
    return None


def lab_group_data() -> dict:
    from roles._environment import group_data as load_group_data

    return load_group_data("lab")
