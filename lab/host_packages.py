"""Debian packages the lab needs on the machine that runs it."""

import os
from pathlib import Path

from lab.shell import log, run

HOST_PACKAGES = [
    "mmdebstrap",  # builds the base image
    "systemd-container",  # systemd-nspawn boots the hosts
    "tinyproxy",  # apt/pip proxy for the hosts
    "iproute2",  # bridge, veths, namespaces
    "openssh-client",  # ssh, ssh-keygen
    "procps",  # ps, for the leftover check after `down`
    "tar",
]


def _installed(package: str) -> bool:
    query = run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], check=False, capture=True)
    return query.returncode == 0 and query.stdout == "installed"


def _missing() -> list[str]:
    return [p for p in HOST_PACKAGES if not _installed(p)]


def ensure_host_packages() -> None:
    missing = _missing()
    if not missing:
        return
    log(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
    if "tinyproxy" in missing:
        _stop_distro_tinyproxy()


def _stop_distro_tinyproxy() -> None:
    # The distro service listens on *:8888 and would steal the lab proxy's port;
    # the lab runs its own tinyproxy with its own config instead.
    if Path("/run/systemd/system").exists():
        run(["systemctl", "disable", "--now", "tinyproxy"], check=False, capture=True)
    elif Path("/etc/init.d/tinyproxy").exists():
        run(["/etc/init.d/tinyproxy", "stop"], check=False, capture=True)
