"""CPU and memory of a lab service's main process, read over ssh from /proc.

systemd's CPUUsageNSec / MemoryCurrent read "[not set]" inside the lab's
containers (no cgroup accounting there), so the benchmarks read the process.
"""

from __future__ import annotations

import shlex


def unit_cpu_and_rss(host, unit: str) -> tuple[float, int]:
    """(CPU seconds used so far, resident KiB) of `unit`'s main process on `host` (a tests.stack host)."""
    pid = host.testinfra.check_output(f"systemctl show -p MainPID --value {shlex.quote(unit)}").strip()
    if not pid.isdigit() or pid == "0":
        raise RuntimeError(f"{unit} has no main process on {host.name}")
    fields = host.testinfra.check_output(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    ticks = int(host.testinfra.check_output("getconf CLK_TCK"))
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime (fields 14, 15 of stat)
    rss = int(host.testinfra.check_output(f"awk '/VmRSS/ {{print $2}}' /proc/{pid}/status"))
    return cpu, rss
