"""Heartbeat stand-in: a dead man's switch service such as healthchecks.io (NOT one).

The lab cannot reach a heartbeat service. Alertmanager's webhook for the always-firing
Watchdog POSTs to the check's ping URL, ``/ping/<uuid>``, every
alerting.heartbeat.repeat_interval. This server does what those services do:

- a ping for a known check is recorded (``kind: ping``) and answered ``200 OK``; an
  unknown uuid gets ``404 not found``, as healthchecks.io answers;
- a check is "new" until its first ping, then "up"; when no ping has come for longer
  than the period plus the grace, it turns "down" and notifies: a message to the Slack
  stand-in's webhook and a PagerDuty trigger (dedup key: the check), both recorded here
  too (``kind: down``);
- the next ping turns it "up" again: a Slack message and a PagerDuty resolve
  (``kind: up``). No second "down" follows while the pings keep coming.

    python -m lab.receivers.heartbeat --host 127.0.0.1 --port 9104 --store /tmp/hb.jsonl \
        --ping-url-file FILE --period 20 --grace 10 \
        [--slack-webhook-url-file FILE] [--pagerduty-url URL --pagerduty-routing-key-file FILE]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

from .recording import RecordingHandler, RecordingServer, Reply, read_secret_file, serve
from .store import JsonLinesStore

CHECK_EVERY_SECONDS = 1.0  # how often the switch looks at its checks' last pings


class Check:
    """One check: its state, and when it was last pinged (monotonic seconds)."""

    def __init__(self, uuid: str) -> None:
        self.uuid, self.status, self.last_ping, self.pings = uuid, "new", 0.0, 0


class Switch:
    """The checks and what to do when one goes quiet; thread-safe."""

    def __init__(self, store: JsonLinesStore, checks: list[str], period: float, grace: float, notify) -> None:
        self.store, self.period, self.grace, self.notify = store, period, grace, notify
        self.checks = {uuid: Check(uuid) for uuid in checks}
        self.lock = threading.Lock()

    def ping(self, uuid: str) -> bool:
        """Record a ping; False for an unknown check."""
        with self.lock:
            check = self.checks.get(uuid)
            if check is None:
                return False
            check.last_ping, check.pings = time.monotonic(), check.pings + 1
            came_back = check.status == "down"
            check.status = "up"
        if came_back:
            self._transition(check, "up", 0.0)
        return True

    def sweep(self) -> None:
        """Turn every up check that has been quiet for period + grace down."""
        now = time.monotonic()
        with self.lock:
            quiet = [c for c in self.checks.values() if c.status == "up" and now - c.last_ping > self.period + self.grace]
            for check in quiet:
                check.status = "down"
        for check in quiet:
            self._transition(check, "down", now - check.last_ping)

    def _transition(self, check: Check, status: str, silent_for: float) -> None:
        record = {"kind": status, "check": check.uuid, "silent_for_seconds": round(silent_for, 1)}
        record["notified"] = self.notify(check.uuid, status, silent_for)
        self.store.append({"received_at": datetime.now(timezone.utc).isoformat(), **record})

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(CHECK_EVERY_SECONDS):
            self.sweep()


def notifier(slack_webhook: str | None, pagerduty_url: str | None, routing_key: str | None):
    """notify(check, status, silent_for) -> which integrations took the notification."""

    def notify(check: str, status: str, silent_for: float) -> list[str]:
        delivered = []
        summary = (
            f"Heartbeat check {check} is DOWN: no ping for {silent_for:.0f}s (the monitoring stack is not alerting)"
            if status == "down"
            else f"Heartbeat check {check} is UP again"
        )
        if slack_webhook:
            try:
                if requests.post(slack_webhook, json={"text": summary}, timeout=5).ok:
                    delivered.append("slack")
            except requests.RequestException:
                pass
        if pagerduty_url and routing_key:
            event = {"routing_key": routing_key, "dedup_key": f"heartbeat-{check}",
                     "event_action": "trigger" if status == "down" else "resolve"}
            if status == "down":
                event["payload"] = {"summary": summary, "source": "heartbeat-standin", "severity": "critical"}
            try:
                if requests.post(pagerduty_url, json=event, timeout=5).ok:
                    delivered.append("pagerduty")
            except requests.RequestException:
                pass
        return delivered

    return notify


class HeartbeatStandinHandler(RecordingHandler):
    service = "heartbeat-standin"

    def receive(self, path, body):
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "ping" or not self.server.config["switch"].ping(parts[1]):
            return Reply(404, b"not found", "text/plain"), None
        # The body (Alertmanager's webhook payload) is not kept: only that the check was pinged.
        return Reply(200, b"OK", "text/plain"), {"kind": "ping", "check": parts[1]}


def make_server(host: str, port: int, store_path: str, ping_urls: list[str], period: float, grace: float, notify) -> RecordingServer:
    """Build (bind, not start) the stand-in and its switch; call `start_watching` to run the switch."""
    store = JsonLinesStore(store_path)
    checks = [urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] for url in ping_urls]
    switch = Switch(store, checks, period, grace, notify)
    return RecordingServer((host, port), HeartbeatStandinHandler, store, switch=switch)


def start_watching(server: RecordingServer) -> threading.Event:
    """Run the switch's sweeps in a daemon thread; set the returned event to stop them."""
    stop = threading.Event()
    threading.Thread(target=server.config["switch"].watch, args=(stop,), daemon=True).start()
    return stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.heartbeat", description="Dead man's switch stand-in (not a real heartbeat service).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9104)
    parser.add_argument("--store", required=True, help="JSON lines file for pings and notifications")
    parser.add_argument("--ping-url-file", action="append", default=[], help="file holding a check's ping URL (repeatable)")
    parser.add_argument("--period", type=float, required=True, help="seconds between expected pings")
    parser.add_argument("--grace", type=float, required=True, help="seconds of lateness tolerated after the period")
    parser.add_argument("--slack-webhook-url-file", help="file holding the Slack webhook that gets down/up messages")
    parser.add_argument("--pagerduty-url", help="Events API v2 endpoint that gets triggers and resolves")
    parser.add_argument("--pagerduty-routing-key-file")
    args = parser.parse_args(argv)
    urls = [u for u in (read_secret_file(path) for path in args.ping_url_file) if u]
    notify = notifier(read_secret_file(args.slack_webhook_url_file), args.pagerduty_url, read_secret_file(args.pagerduty_routing_key_file))
    server = make_server(args.host, args.port, args.store, urls, args.period, args.grace, notify)
    start_watching(server)
    host, port = server.server_address[:2]
    return serve(server, f"heartbeat-standin: listening on http://{host}:{port}/ping/..., {len(urls)} checks, "
                         f"period {args.period:g}s + grace {args.grace:g}s, store {args.store}")


if __name__ == "__main__":
    sys.exit(main())
