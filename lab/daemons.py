"""Long-running helpers in the root namespace, listening on the bridge IP.

Every daemon is one entry in DAEMONS: a name, an argv that stays in the
foreground, and the TCP port it listens on. `up` starts them in list order and
waits until each port accepts connections; `down` stops them in reverse.
Each has RUN_DIR/<name>.pid and RUN_DIR/<name>.log. To add a local stand-in
(Slack, PagerDuty, SMTP, Sentry receiver...), append a Daemon here; use
`prepare` to write its config or directories before it starts.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab.apt_sources import source_hosts
from lab.paths import (
    BRIDGE_IP, GRAFANA_API_STANDIN_PORT, HEARTBEAT_GRACE_SECONDS, HEARTBEAT_PERIOD_SECONDS, HEARTBEAT_STANDIN_PORT, MIRROR_DIR, MIRROR_PORT, PAGERDUTY_STANDIN_PORT, PREFIX_LEN, PROXY_PORT, REPO, RUN_DIR,
    SLACK_STANDIN_PORT, SMTP_STANDIN_HTTP_PORT, SMTP_STANDIN_PORT,
)
from lab.secrets import SECRETS_DIR, SENTRY_STANDIN_PORT
from lab.shell import log


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: list[str]
    port: int
    address: str = BRIDGE_IP
    prepare: Callable[[], None] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return RUN_DIR / f"{self.name}.log"


# --- tinyproxy: the hosts' only way to apt and pip repositories -------------

TINYPROXY_CONF = RUN_DIR / "tinyproxy.conf"
TINYPROXY_FILTER = RUN_DIR / "tinyproxy.filter"
# Hosts need only apt through the proxy (Python wheels come from the mirror).
# Refusing everything else gives them a fast 403 instead of a slow timeout.
PROXY_ALLOWED_DOMAINS = source_hosts()


def write_tinyproxy_conf() -> None:
    lab_net = BRIDGE_IP.rsplit(".", 1)[0] + ".0"
    TINYPROXY_FILTER.write_text("\n".join(PROXY_ALLOWED_DOMAINS) + "\n")
    TINYPROXY_CONF.write_text(f"""\
# Written by lab/daemons.py; the distro's /etc/tinyproxy is not used.
User tinyproxy
Group tinyproxy
Listen {BRIDGE_IP}
Port {PROXY_PORT}
Allow {lab_net}/{PREFIX_LEN}
Timeout 600
MaxClients 100
LogLevel Notice
DisableViaHeader Yes
ConnectPort 443
Filter "{TINYPROXY_FILTER}"
FilterType fnmatch
FilterDefaultDeny Yes
""")


def prepare_mirror() -> None:
    MIRROR_DIR.mkdir(parents=True, exist_ok=True)


DAEMONS: list[Daemon] = [
    Daemon("tinyproxy", ["/usr/bin/tinyproxy", "-d", "-c", str(TINYPROXY_CONF)], PROXY_PORT,
           prepare=write_tinyproxy_conf),
    # The stdlib server is threaded (ThreadingHTTPServer) and enough for a few hosts.
    Daemon("mirror", [sys.executable, "-m", "http.server", "--bind", BRIDGE_IP,
                      "--directory", str(MIRROR_DIR), str(MIRROR_PORT)], MIRROR_PORT,
           prepare=prepare_mirror),
    # The Sentry stand-in receiver (lab/receivers/sentry.py): the lab's SENTRY_DSN
    # points here. The key is read from its secret file when the receiver starts,
    # so it is neither in `ps` nor needed before `up` generates it.
    Daemon("sentry-receiver", [sys.executable, "-m", "lab.receivers.sentry", "--host", BRIDGE_IP,
                               "--port", str(SENTRY_STANDIN_PORT),
                               "--key-file", str(SECRETS_DIR / "SENTRY_STANDIN_KEY"),
                               "--store", str(RUN_DIR / "sentry-events.jsonl")], SENTRY_STANDIN_PORT,
           env={"PYTHONPATH": str(REPO)}),  # `-m lab...` from any working directory
    # Stand-ins for the alert receivers (lab/receivers/{slack,pagerduty,smtp}.py):
    # the lab's Slack webhook URLs, PagerDuty URL and smarthost point here. Each
    # reads its secret from the lab's secret files when it starts.
    Daemon("slack-receiver", [sys.executable, "-m", "lab.receivers.slack", "--host", BRIDGE_IP,
                              "--port", str(SLACK_STANDIN_PORT),
                              "--webhook-url-file", str(SECRETS_DIR / "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"),
                              "--webhook-url-file", str(SECRETS_DIR / "SENTINEL_SLACK_ALERTS_WEBHOOK_URL"),
                              "--store", str(RUN_DIR / "slack-messages.jsonl")], SLACK_STANDIN_PORT,
           env={"PYTHONPATH": str(REPO)}),
    Daemon("pagerduty-receiver", [sys.executable, "-m", "lab.receivers.pagerduty", "--host", BRIDGE_IP,
                                  "--port", str(PAGERDUTY_STANDIN_PORT),
                                  "--routing-key-file", str(SECRETS_DIR / "SENTINEL_PAGERDUTY_ROUTING_KEY"),
                                  "--store", str(RUN_DIR / "pagerduty-events.jsonl")], PAGERDUTY_STANDIN_PORT,
           env={"PYTHONPATH": str(REPO)}),
    # The dead man's switch stand-in (lab/receivers/heartbeat.py, NOT a heartbeat service): the
    # lab's SENTINEL_HEARTBEAT_URL points here; when the Watchdog's calls stop it pages through
    # the Slack and PagerDuty stand-ins, as a real one pages through its own integrations.
    Daemon("heartbeat-receiver", [sys.executable, "-m", "lab.receivers.heartbeat", "--host", BRIDGE_IP,
                                  "--port", str(HEARTBEAT_STANDIN_PORT),
                                  "--ping-url-file", str(SECRETS_DIR / "SENTINEL_HEARTBEAT_URL"),
                                  "--period", str(HEARTBEAT_PERIOD_SECONDS), "--grace", str(HEARTBEAT_GRACE_SECONDS),
                                  "--slack-webhook-url-file", str(SECRETS_DIR / "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"),
                                  "--pagerduty-url", f"http://{BRIDGE_IP}:{PAGERDUTY_STANDIN_PORT}/v2/enqueue",
                                  "--pagerduty-routing-key-file", str(SECRETS_DIR / "SENTINEL_PAGERDUTY_ROUTING_KEY"),
                                  "--store", str(RUN_DIR / "heartbeat-events.jsonl")], HEARTBEAT_STANDIN_PORT,
           env={"PYTHONPATH": str(REPO)}),
    # Listed by its HTTP side port, which opens once the SMTP port is up.
    Daemon("smtp-receiver", [sys.executable, "-m", "lab.receivers.smtp", "--host", BRIDGE_IP,
                             "--port", str(SMTP_STANDIN_PORT), "--http-port", str(SMTP_STANDIN_HTTP_PORT),
                             "--username", "alertmanager",
                             "--password-file", str(SECRETS_DIR / "SENTINEL_SMTP_PASSWORD"),
                             "--store", str(RUN_DIR / "smtp-messages.jsonl")], SMTP_STANDIN_HTTP_PORT,
           env={"PYTHONPATH": str(REPO)}),
    # The Grafana HTTP API STAND-IN (lab/receivers/grafana_api.py, NOT Grafana): only the
    # endpoints the backup job uses, in memory, used by tests/e2e/test_grafana_backup.py
    # alone. It accepts the lab's backup service-account token from its secret file.
    Daemon("grafana-api-standin", [sys.executable, "-m", "lab.receivers.grafana_api", "--host", BRIDGE_IP,
                                   "--port", str(GRAFANA_API_STANDIN_PORT),
                                   "--token-file", str(SECRETS_DIR / "SENTINEL_GRAFANA_BACKUP_TOKEN")],
           GRAFANA_API_STANDIN_PORT, env={"PYTHONPATH": str(REPO)}),
]


# --- start / stop ------------------------------------------------------------

def _is_daemon(pid: int, daemon: Daemon) -> bool:
    try:
        args = [c.decode() for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    except OSError:
        return False
    # The interpreter path differs between checkouts (each has its own venv), so a
    # daemon started from another clone is still recognised by the rest of its argv.
    return bool(args) and args[1:] == daemon.argv[1:] and Path(args[0]).name == Path(daemon.argv[0]).name


def running_pid(daemon: Daemon) -> int | None:
    """The daemon's pid: from its pid file, or found by its argv if the file was lost."""
    try:
        pid = int(daemon.pid_file.read_text())
        if _is_daemon(pid, daemon):
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_daemon(int(entry.name), daemon) and _alive(int(entry.name)):
            return int(entry.name)
    return None


def listening(daemon: Daemon) -> bool:
    try:
        with socket.create_connection((daemon.address, daemon.port), timeout=1):
            return True
    except OSError:
        return False


def start(daemon: Daemon, timeout: float = 15) -> None:
    if running_pid(daemon):
        return
    if listening(daemon):
        raise RuntimeError(f"{daemon.address}:{daemon.port} is taken by a process that is not "
                           f"the lab's {daemon.name} (no live pid in {daemon.pid_file})")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    if daemon.prepare:
        daemon.prepare()
    with open(daemon.log_file, "ab") as out:
        # Own session: the daemon survives this command and can be stopped as a group.
        proc = subprocess.Popen(daemon.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env={**os.environ, **daemon.env}, start_new_session=True)
    daemon.pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not listening(daemon):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"daemon {daemon.name} did not come up on {daemon.address}:{daemon.port}; "
                               f"see {daemon.log_file}")
        time.sleep(0.1)
    log(f"daemon {daemon.name} listening on {daemon.address}:{daemon.port} (pid {proc.pid})")


def stop(daemon: Daemon, timeout: float = 10) -> None:
    pid = running_pid(daemon)
    if pid:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    daemon.pid_file.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
            return False
    except ChildProcessError:
        pass
    try:  # a zombie waiting for PID 1 to reap it counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def start_all() -> None:
    for daemon in DAEMONS:
        start(daemon)


def stop_all() -> None:
    for daemon in reversed(DAEMONS):
        stop(daemon)


def status() -> list[tuple[str, str, str, str]]:
    """(name, address:port, pid or '-', 'listening'/'down') per daemon."""
    rows = []
    for daemon in DAEMONS:
        pid = running_pid(daemon)
        rows.append((daemon.name, f"{daemon.address}:{daemon.port}", str(pid or "-"),
                     "listening" if pid and listening(daemon) else "down"))
    return rows

