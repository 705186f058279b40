"""Benchmark of the lab and the converge: prints seconds, asserts nothing.

    python -m lab.bench            warm figures: lab up, artifacts, first and no-op converge
    python -m lab.bench --cold     also a cold base image and cold artifact builds, each in a
                                   throw-away cache (minutes: every Go module is downloaded again)

It takes the lab down and up again, so run it when no one else uses the lab.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from lab.image import host_suites
from lab.paths import HOSTS, REPO

PY = sys.executable


# Operations pyinfra ran in the last converge (its "Grand total" row: operations, then per outcome).
OPERATIONS: dict[str, int] = {}


def timed(argv: list[str], env: dict | None = None) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(argv)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    output = result.stdout + result.stderr
    totals = [line.split() for line in output.splitlines() if line.strip().startswith("Grand total")]
    if totals:
        OPERATIONS["last"] = int(totals[-1][2])
    return seconds


def lab(*args: str, env: dict | None = None) -> float:
    return timed([PY, "-m", "lab", *args], env)


def converge() -> float:
    return timed([os.path.join(os.path.dirname(PY), "pyinfra"), "-y", "inventory/lab.py", "deploy.py"])


def cold_figures() -> dict[str, float]:
    figures = {}
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as cache:
        env = {"SENTINEL_LAB_CACHE": cache}
        for suite in host_suites():
            image = f"from lab.sshkeys import ensure_key; from lab.image import ensure_image; ensure_key(); ensure_image({suite!r})"
            figures[f"base image {suite}, cold"] = timed([PY, "-c", image], env)
            figures[f"base image {suite}, warm"] = timed([PY, "-c", image], env)
        figures["artifact builds, cold cache"] = timed([PY, "-m", "lab.artifacts", "build"], env)
        figures["artifact builds, warm cache"] = timed([PY, "-m", "lab.artifacts", "build"], env)
    return figures


def warm_figures() -> dict[str, float]:
    figures = {"artifact builds, warm cache (lab cache)": timed([PY, "-m", "lab.artifacts", "build"])}
    figures["lab down"] = lab("down")
    figures["lab up, warm image"] = lab("up")
    figures["lab up, already up"] = lab("up")
    figures["first converge"] = converge()
    figures["no-op converge"] = converge()
    operations = OPERATIONS.get("last", 0)
    hosts = len(HOSTS)
    figures[f"no-op converge per host ({operations} operations on {hosts} hosts)"] = figures["no-op converge"] / hosts
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also measure a cold image and cold artifact builds")
    args = parser.parse_args()
    figures = cold_figures() if args.cold else {}
    figures.update(warm_figures())
    width = max(map(len, figures))
    for name, seconds in figures.items():
        print(f"{name:<{width}}  {seconds:8.1f} s")


if __name__ == "__main__":
    main()
