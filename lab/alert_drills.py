"""Alert drills on the lab: inject a fault, drive traffic, watch what the receivers get.

Shared by tests/e2e/test_alerting.py and lab/bench_alerting.py. Every loop here
is bounded in time and count, and traffic goes only to the lab's hosts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import requests

from lab import operator_tls

from lab.paths import BRIDGE_IP, HEARTBEAT_STANDIN_PORT, PAGERDUTY_STANDIN_PORT, SLACK_STANDIN_PORT, SMTP_STANDIN_HTTP_PORT

RECEIVERS = {
    "heartbeat": f"http://{BRIDGE_IP}:{HEARTBEAT_STANDIN_PORT}",
    "slack": f"http://{BRIDGE_IP}:{SLACK_STANDIN_PORT}",
    "pagerduty": f"http://{BRIDGE_IP}:{PAGERDUTY_STANDIN_PORT}",
    "smtp": f"http://{BRIDGE_IP}:{SMTP_STANDIN_HTTP_PORT}",
}
# The user context the auth proxy adds in front of the real backend (docs/contract.md).
MEMBER = {"X-User-Id": "m-0001", "X-User-Email": "member@sentinel.test", "X-User-Role": "member"}


def received(receiver: str, **fields: str) -> list[dict]:
    """What a stand-in receiver recorded, oldest first (only records with these field values)."""
    return requests.get(f"{RECEIVERS[receiver]}/api/received", params=fields, timeout=10).json()["received"]


def clear_receivers() -> None:
    for url in RECEIVERS.values():
        requests.delete(f"{url}/api/received", timeout=10).raise_for_status()


def slack_messages_listing(records: list[dict], channel: str, uid: str, status: str = "FIRING") -> list[dict]:
    """The Slack stand-in's `records` on `channel` that list alert `uid` with `status` (FIRING or RESOLVED),
    as files/alertmanager/sentinel.tmpl writes them (a line "<STATUS> <alertname> [<uid>]")."""
    marker = f"{status} "
    found = []
    for record in records:
        if record.get("channel") != channel:
            continue
        for attachment in record["message"].get("attachments") or []:
            lines = (attachment.get("text") or "").splitlines()
            if any(line.startswith(marker) and f"[{uid}]" in line for line in lines):
                found.append(record)
                break
    return found


def slack_alerts(channel: str, uid: str, status: str = "FIRING") -> list[dict]:
    """Slack messages on `channel` that list alert `uid` with `status` (FIRING or RESOLVED)."""
    return slack_messages_listing(received("slack"), channel, uid, status)


def pagerduty_events(alertname: str, action: str = "trigger") -> list[dict]:
    """PagerDuty events for `alertname`; resolves are matched through their trigger's dedup_key."""
    records = received("pagerduty")
    keys = {r["dedup_key"] for r in records
            if r["event_action"] == "trigger" and alertname in r["event"]["payload"]["summary"]}
    return [r for r in records if r["event_action"] == action and r["dedup_key"] in keys]


def in_alertmanager(alertmanager_url: str, uid: str) -> bool:
    """Whether Alertmanager holds an active (unresolved) alert with this uid."""
    alerts = operator_tls.get(f"{alertmanager_url}/api/v2/alerts", params={"filter": f'uid="{uid}"'}, timeout=10).json()
    return bool(alerts)


def in_prometheus(prometheus_url: str, uid: str) -> bool:
    """Whether Prometheus has the alert with this uid pending or firing (pending is not in Alertmanager yet)."""
    answer = operator_tls.get(f"{prometheus_url}/api/v1/query", params={"query": f'ALERTS{{uid="{uid}"}}'}, timeout=10)
    return bool(answer.json()["data"]["result"])


def quiet(prometheus_urls: list[str], alertmanager_urls: list[str], uid: str) -> bool:
    """No Prometheus has the alert pending or firing and no Alertmanager holds it: what a drill then
    receives was caused by the drill (a fault of an earlier step, or a converge, may still be pending)."""
    return not any(in_prometheus(url, uid) for url in prometheus_urls) and not any(in_alertmanager(url, uid) for url in alertmanager_urls)


def push_alert(alertmanager_url: str, labels: dict[str, str], summary: str, lasts_seconds: float) -> None:
    """Send one alert to Alertmanager's API as Prometheus does; it ends `lasts_seconds` from now (0: resolve it)."""
    now = datetime.now(timezone.utc)
    alert = {
        "labels": labels,
        "annotations": {"summary": summary, "value": "n/a", "runbook_url": "n/a (e2e probe)"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(seconds=lasts_seconds)).isoformat(),
    }
    operator_tls.post(f"{alertmanager_url}/api/v2/alerts", json=[alert], timeout=10).raise_for_status()


def wait_for(what: str, check, timeout: float, interval: float = 2.0):
    """Poll `check()` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    attempts = int(timeout / interval) + 1
    for _ in range(attempts):
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"{what}: not seen within {timeout:.0f}s")


def run_on(host: str, command: str) -> None:
    """Run `command` on a lab host over SSH (the lab's ssh_config); raises when it fails."""
    import subprocess

    from lab import hosts  # the lab's host plumbing, needed only by the drills that use SSH

    subprocess.run(hosts.ssh_argv(host, command), check=True, capture_output=True, timeout=60)


def set_faults(backend_url: str, **faults) -> None:
    """Replace the stand-in backend's fault switches (no arguments: a healthy backend)."""
    requests.post(f"{backend_url}/admin/faults", json=faults, timeout=10).raise_for_status()


@dataclass
class Load:
    """Bounded background traffic: `workers` threads, each sending `rate` requests a second per path.

    Each entry of `requests_` is (path, headers). Stops on `stop()`, after
    `max_seconds` or after `max_requests` in all, whichever comes first. Several
    workers keep traffic flowing while the backend is slow on purpose.
    """

    backend_url: str
    requests_: list[tuple[str, dict]]
    rate: float = 10.0
    max_seconds: float = 900.0
    max_requests: int = 50_000
    workers: int = 1
    sent: int = 0
    statuses: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Load":
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        period = 1.0 / self.rate
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
            started = time.monotonic()
            for path, headers in self.requests_:
                try:
                    status = session.get(f"{self.backend_url}{path}", headers=headers, timeout=10).status_code
                except requests.RequestException:
                    status = "error"
                with self._lock:
                    self.sent += 1
                    self.statuses[status] = self.statuses.get(status, 0) + 1
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
