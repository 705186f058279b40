"""Alerts reach people on the lab: fault -> Prometheus -> Alertmanager -> the receiver stand-ins.

Runs against the lab's real Prometheus and Alertmanager with the lab's short
Alertmanager timers (group_data/lab.py); the alert rules keep their catalog
`for` durations, so these tests take minutes. Every test restores what it
changed (faults off, backend running) in a finally block.
"""

import time
from datetime import datetime, timezone

import pytest
import yaml

from lab.alert_drills import (
    MEMBER, Load, clear_receivers, pagerduty_events, push_alert, quiet, received, set_faults, slack_alerts,
    wait_for,
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
    """Wait until no earlier drill's alert is pending or active on any monitoring host, so what arrives is caused here."""
    mons = hosts_in("monitoring")
    prometheus = [f"https://{m.settings.address}:{m.settings.prometheus.listen_port}" for m in mons]
    alertmanager = [f"https://{m.settings.address}:{m.settings.alerting.listen_port}" for m in mons]
    wait_for(f"no {uid} left from an earlier drill", lambda: quiet(prometheus, alertmanager, uid), 10 * 60, 5)
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
        assert "Value: " in message and "Dashboard: https://" in message  # Grafana serves https (docs/tls.md)

        set_faults(url)  # the traffic goes on, so the error ratio decays
        wait_for("error-rate resolution on Slack", lambda: slack_alerts("#critical-alerts", alert.uid, "RESOLVED"), 10 * 60)
        wait_for("error-rate resolve on PagerDuty", lambda: pagerduty_events(alert.name, "resolve"), 120)
    finally:
        set_faults(url)
        load.stop()
    assert load.statuses.get(500, 0) > 0 and load.statuses.get(200, 0) > 0


def test_warnings_arrive_batched_on_slack_alerts(backend):
    """Warnings are batched: two that start together come in one message, and a later one waits a group_interval.

    Part one is the whole chain (fault -> Prometheus -> Alertmanager -> Slack #alerts):
    both auth-failure warnings (one per reason) must arrive in one message.
    Part two proves the batching of later changes. Right after that message a third
    warning of the same environment is pushed straight into Alertmanager, as
    Prometheus would. Without batching it would be on Slack within seconds (its own
    group's group_wait); batched, it must wait for the group's next flush, a
    group_interval after the message, and come together with the two still firing.
    """
    app, url = backend
    alert = ALERTS["auth-failures-spike"]
    _start_clean(alert.uid)
    mon = hosts_in("monitoring")[0]
    alertmanager = f"https://{mon.settings.address}:{mon.settings.alerting.listen_port}"
    group_interval = duration_seconds(mon.settings.alerting.warning.group_interval)
    group_wait = duration_seconds(mon.settings.alerting.warning.group_wait)
    assert group_interval > group_wait + 20, "the lab's timers must tell a batched delivery from an immediate one"
    no_user = {}  # no X-User-Id: missing_user_context
    traffic = [("/api/events", no_user), ("/api/members", MEMBER)]  # a member may not list members: forbidden
    with Load(url, traffic, rate=3, max_seconds=12 * 60):
        def batched():
            for record in slack_alerts("#alerts", alert.uid):
                if len(_firing_lines(record, alert.uid)) >= 2:
                    return record
            return None

        first = wait_for("both auth-failure warnings in one Slack #alerts message", batched, _deadline(alert.uid, 180))
        # The group's latest notification, which the next one must wait a group_interval after.
        last = max(datetime.fromisoformat(r["received_at"]) for r in received("slack") if r.get("channel") == "#alerts")
        probe_uid = f"batching-probe-{int(time.time())}"
        labels = {"alertname": "BatchingProbe", "severity": "warning", "environment": mon.settings.environment, "uid": probe_uid}
        summary = "e2e probe: a warning that starts after the batch was sent"
        pushed = datetime.now(timezone.utc)
        push_alert(alertmanager, labels, summary, lasts_seconds=10 * 60)
        try:
            probe = wait_for("the probe warning on Slack #alerts", lambda: slack_alerts("#alerts", probe_uid), group_interval + 120)[0]
        finally:
            push_alert(alertmanager, labels, summary, lasts_seconds=0)  # resolved: leaves no alert behind
    arrived = datetime.fromisoformat(probe["received_at"])
    # Pushed within seconds of the batch, so an unbatched delivery would have come after
    # group_wait; batched, it comes with the group's next flush (2s for delivery jitter).
    assert (pushed - last).total_seconds() < group_interval - group_wait - 10, (last, pushed)
    assert (arrived - last).total_seconds() >= group_interval - 2, (last, pushed, arrived)
    assert len(_firing_lines(probe, alert.uid)) >= 2, "the probe came alone, not in the environment's batch"
    assert first["received_at"] <= probe["received_at"]


def _firing_lines(record: dict, uid: str) -> list[str]:
    text = record["message"]["attachments"][0]["text"]
    return [line for line in text.splitlines() if line.startswith("FIRING") and f"[{uid}]" in line]


# The backend stopped -> backend-down on Slack and PagerDuty: tests/e2e/test_ha.py proves it with
# the monitoring pair (once each, the host named, resolved when it is back).


def test_production_keeps_production_timings():
    """The lab's short timers are lab-only; the prod config renders the operators' timings."""
    from roles.alertmanager import render_config

    settings = build("mon1", ["monitoring", "prod"], {**load_group_data("all"), **load_group_data("prod")})
    routes = {r["receiver"]: r for r in yaml.safe_load(render_config(settings, load_catalog()))["route"]["routes"]}
    assert (routes["slack-critical"]["group_wait"], routes["slack-critical"]["repeat_interval"]) == ("10s", "1h")
    assert routes["pagerduty"]["group_wait"] == "10s"
    assert routes["slack-alerts"]["group_interval"] == "15m"
    assert routes["email-digest"]["group_interval"] == "24h"
