"""A service on a lab host killed the hard way: SIGKILL of its main process, then systemd brings it back.

Every unit of the stack runs with Restart=always (roles/_service), so a killed process is
restarted by systemd; `wait_restarted` waits for a new main process that answers its ready URL.
"""

from __future__ import annotations

from tests.e2e.test_logs import wait_for


def main_pid(host, unit: str) -> str:
    return host.testinfra.check_output("systemctl show -p MainPID --value %s", unit)


def sigkill(host, unit: str) -> str:
    """SIGKILL the unit's main process (no shutdown: nothing is flushed); returns the killed pid."""
    pid = main_pid(host, unit)
    host.testinfra.check_output("kill -KILL %s", pid)
    return pid


def wait_restarted(host, unit: str, pid: str, ready_url: str, timeout: float = 60) -> None:
    """systemd restarted `unit` after `pid` died: a new main process, answering `ready_url` from the host."""
    def answers() -> bool:
        try:
            host.curl(ready_url, "-o", "/dev/null")  # https: with the host's own identity (tests/stack.py)
        except AssertionError:
            return False
        return True

    wait_for(f"{unit} back on {host.name}", lambda: main_pid(host, unit) not in ("0", pid) and answers(), timeout)
