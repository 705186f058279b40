"""Alerts reach people on the lab: fault -> Prometheus -> Alertmanager -> the receiver stand-ins.

Runs against the lab's real Prometheus and Alertmanager with the lab's short
Alertmanager timers (group_data/lab.py); the alert rules keep their catalog
`for` durations, so these tests take minutes. Every test restores what it
changed (faults off, backend running) in a finally block.
"""

import pytest
import yaml

from lab.alert_drills import (
    MEMBER, Load, clear_receivers, in_alertmanager, pagerduty_events, set_faults, slack_alerts, wait_for,
)
from roles._model import duration_seconds
from roles._environment import group_data as load_group_data, host_settings as build
from roles.alerting.catalog import load_catalog
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.alerting]
ALERTS = {a.uid: a for a in load_catalog()}


@pytest.fixture
def backend(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    app = hosts_in("app")[0]
    url = f"http://{app.settings.address}:{app.settings.backend.port}"
    set_faults(url)
    clear_receivers()
    return app, url


def _start_clean(uid: str) -> None:
    """Wait until no earlier drill's alert is still active, so what arrives is caused here."""
    mon = hosts_in("monitoring")[0]
    url = f"http://{mon.settings.address}:{mon.settings.alerting.listen_port}"
    wait_for(f"no {uid} left from an earlier drill", lambda: not in_alertmanager(url, uid), 10 * 60, 5)
    clear_receivers()


def _deadline(uid: str, slack_seconds: float = 120) -> float:
    """How long an alert may take: its rule's `for`, the rate windows, the lab's timers, margin."""
    return duration_seconds(ALERTS[uid].for_) + 5 * 60 + slack_seconds


def test_error_rate_pages_slack_and_pagerduty_then_resolves(backend):
    app, url = backend
    alert = ALERTS["backend-error-rate-critical"]
    _start_clean(alert.uid)
    load = Load(url, [("/api/events", MEMBER)], rate=10, max_seconds=25 * 60).start()
    try:
        set_faults(url, error_rate=0.5)
        wait_for("error-rate alert on Slack #critical-alerts", lambda: slack_alerts("#critical-alerts", alert.uid), _deadline(alert.uid))
        triggers = wait_for("error-rate trigger on PagerDuty", lambda: pagerduty_events(alert.name, "trigger"), 60)
        assert triggers[0]["event"]["payload"]["severity"] == "critical"
        message = slack_alerts("#critical-alerts", alert.uid)[0]["message"]["attachments"][0]["text"]
        assert "Runbook: https://" in message and f"docs/runbooks/{alert.uid}.md" in message
        assert "Value: " in message and "Dashboard: http://" in message

        set_faults(url)  # the traffic goes on, so the error ratio decays
        wait_for("error-rate resolution on Slack", lambda: slack_alerts("#critical-alerts", alert.uid, "RESOLVED"), 10 * 60)
        wait_for("error-rate resolve on PagerDuty", lambda: pagerduty_events(alert.name, "resolve"), 120)
    finally:
        set_faults(url)
        load.stop()
    assert load.statuses.get(500, 0) > 0 and load.statuses.get(200, 0) > 0


def test_warnings_arrive_batched_on_slack_alerts(backend):
    """Two warnings that start together (one per auth-failure reason) come in one message; later changes wait a group_interval."""
    app, url = backend
    alert = ALERTS["auth-failures-spike"]
    _start_clean(alert.uid)
    no_user = {}  # no X-User-Id: missing_user_context
    traffic = [("/api/events", no_user), ("/api/members", MEMBER)]  # a member may not list members: forbidden
    with Load(url, traffic, rate=3, max_seconds=12 * 60):
        def batched():
            for record in slack_alerts("#alerts", alert.uid):
                text = record["message"]["attachments"][0]["text"]
                firing = [line for line in text.splitlines() if line.startswith("FIRING") and f"[{alert.uid}]" in line]
                if len(firing) >= 2:
                    return record
            return None

        wait_for("both auth-failure warnings in one Slack #alerts message", batched, _deadline(alert.uid, 180))
    # KNOWN WEAK (issue 15): with a single message in the group this gap check has
    # nothing to check. A version that waited for the group's resolve failed on the
    # lab and is not landed yet; see the closing note.
    settings = hosts_in("monitoring")[0].settings.alerting
    times = sorted(r["received_at"] for r in slack_alerts("#alerts", alert.uid))
    assert len(times) >= 1
    from datetime import datetime

    stamps = [datetime.fromisoformat(t) for t in times]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    assert all(gap >= duration_seconds(settings.warning.group_interval) - 2 for gap in gaps), gaps


def test_stopping_the_backend_fires_backend_down(backend):
    app, url = backend
    alert = ALERTS["backend-down"]
    _start_clean(alert.uid)
    unit = app.settings.backend.unit
    try:
        app.testinfra.run(f"systemctl stop {unit}")
        records = wait_for("backend-down on Slack #critical-alerts", lambda: slack_alerts("#critical-alerts", alert.uid), duration_seconds(alert.for_) + 120)
        assert f"on {app.name}" in records[0]["message"]["attachments"][0]["text"]
        wait_for("backend-down on PagerDuty", lambda: pagerduty_events(alert.name, "trigger"), 60)
    finally:
        app.testinfra.run(f"systemctl start {unit}")
        wait_for("backend healthy again", lambda: app.testinfra.run(f"curl -fsS {url}/health").rc == 0, 90)
    wait_for("backend-down resolution on Slack", lambda: slack_alerts("#critical-alerts", alert.uid, "RESOLVED"), 180)


def test_production_keeps_production_timings():
    """The lab's short timers are lab-only; the prod config renders the operators' timings."""
    from roles.alertmanager import render_config

    settings = build("mon1", ["monitoring", "prod"], {**load_group_data("all"), **load_group_data("prod")})
    routes = {r["receiver"]: r for r in yaml.safe_load(render_config(settings, load_catalog()))["route"]["routes"]}
    assert (routes["slack-critical"]["group_wait"], routes["slack-critical"]["repeat_interval"]) == ("10s", "1h")
    assert routes["pagerduty"]["group_wait"] == "10s"
    assert routes["slack-alerts"]["group_interval"] == "15m"
    assert routes["email-digest"]["group_interval"] == "24h"
