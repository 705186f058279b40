"""One cgroup per lab host when the machine's PID 1 is not systemd.

With --keep-unit, systemd-nspawn runs the container in the cgroup it was
started from and creates `payload`/`supervisor` below it. Started straight
from a shell on a machine without systemd, every nspawn sits in the root
cgroup, so all hosts would share /payload: their systemd units would land in
the same cgroups (mon1's cron.service would also hold tel1's cron). So each
nspawn is moved into CGROUP_ROOT/<host> in the hierarchies systemd uses
(name=systemd and cgroup2) right before it starts.
"""

import os
import signal
from pathlib import Path

CGROUP_ROOT = "sentinel-lab"


def systemd_hierarchies() -> list[Path]:
    """Mount points of the cgroup2 and name=systemd hierarchies."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        fstype, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            mounts.append(Path(mount_point))
    return mounts


def host_cgroups(host: str) -> list[Path]:
    return [mount / CGROUP_ROOT / host for mount in systemd_hierarchies()]


def create(host: str) -> list[Path]:
    """Create the host's cgroups; returns the cgroup.procs files to join."""
    cgroups = host_cgroups(host)
    for cgroup in cgroups:
        cgroup.mkdir(parents=True, exist_ok=True)
    return [cgroup / "cgroup.procs" for cgroup in cgroups]


def processes(host: str) -> list[int]:
    """Every process still in the host's cgroups, the container's included."""
    pids = set()
    for cgroup in host_cgroups(host):
        for procs in cgroup.rglob("cgroup.procs") if cgroup.exists() else []:
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                pass  # removed while we walked
    return sorted(pids)


def kill(host: str) -> None:
    """SIGKILL everything in the host's cgroups. A container outlives a killed
    systemd-nspawn (its PID 1 is just reparented), so this is the last resort."""
    for cgroup in host_cgroups(host):
        if (cgroup / "cgroup.kill").exists():
            (cgroup / "cgroup.kill").write_text("1")
    for pid in processes(host):  # kernels or hierarchies without cgroup.kill
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove(host: str) -> None:
    """Remove the host's (by now empty) cgroup trees, deepest first; cgroupfs wants rmdir."""
    for cgroup in host_cgroups(host):
        if not cgroup.exists():
            continue
        for directory, _, _ in sorted(os.walk(cgroup), key=lambda entry: -entry[0].count("/")):
            try:
                os.rmdir(directory)
            except OSError:
                pass  # still has processes; leftovers() reports it
        _rmdir_if_empty(cgroup.parent)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def leftovers() -> list[Path]:
    return [mount / CGROUP_ROOT for mount in systemd_hierarchies() if (mount / CGROUP_ROOT).exists()]
