"""The bench's two "watch the watchers" cases (issue 25), at production Prometheus and Alertmanager timings.

- Prometheus stopped (`systemctl stop prometheus` on every monitoring host): seconds until the heartbeat
  stand-in's DOWN page. Alertmanager keeps the Watchdog until its endsAt, 4 evaluation
  intervals after Prometheus last sent it (--rules.alert.resend-delay = evaluation_interval),
  and calls the switch until then; the switch pages period + grace after the last call.
- Slack's critical webhook revoked (the Slack stand-in's /api/revoke): seconds from the first
  refused call to the AlertmanagerFailedToSendAlerts page on PagerDuty (routed around Slack).
  A dead webhook is noticed only when something is sent through it, so a critical probe alert
  is pushed to Alertmanager's API to make it try.

The lab's switch stand-in is started by `python -m lab up` with the lab's check (period 20 s +
grace 10 s, lab/paths.py) and the converge keeps the lab's 10 s heartbeat calls to match, so
the measured page uses the lab's silence window; `production_heartbeat_bound` gives what the
same run means with production's switch (calls every 1m, period 2m + grace 1m).
"""

from __future__ import annotations

import time
from datetime import datetime

import requests

from lab import operator_tls
from lab.alert_drills import RECEIVERS, clear_receivers, pagerduty_events, push_alert, received, run_on, wait_for
from lab.paths import HEARTBEAT_GRACE_SECONDS, HEARTBEAT_PERIOD_SECONDS, HOSTS
from roles._environment import group_data as load_group_data
from roles._model import duration_seconds
from roles.alerting.settings import AlertingSettings
from roles.prometheus.settings import PrometheusSettings

PROMETHEUS = f"https://{HOSTS['mon1'].address}:9090"
MONITORING = [name for name, host in HOSTS.items() if "monitoring" in host.groups]
ALERTMANAGER = f"https://{HOSTS['mon1'].address}:9093"
SLACK_CRITICAL_BOT = "BCRITICAL"  # the critical channel's webhook in the lab (lab/secrets.py)
FAILED_TO_SEND = "AlertmanagerFailedToSendAlerts"
# The probe that makes Alertmanager call the revoked webhook: critical, so it takes the slack-critical route.
PROBE_LABELS = {"alertname": "BenchSlackRevokedProbe", "uid": "bench-slack-revoked-probe", "severity": "critical", "environment": "lab"}


def _at(record: dict) -> float:
    return datetime.fromisoformat(record["received_at"]).timestamp()


def production_heartbeat_bound(last_call_after_stop: float, lab_repeat: float, evaluation_interval: float,
                               production_repeat: float) -> float:
    """Worst case, in seconds after the stop, of the production switch's page for a run whose last
    call came `last_call_after_stop` seconds after the stop with the lab's calls every `lab_repeat`.

    The Watchdog expired in Alertmanager at most `lab_repeat` after that last call, and at most
    4 evaluation intervals after the stop (its endsAt: Prometheus's resend delay is the evaluation
    interval, roles/prometheus). With production's calls the last one is no later than that
    expiry, and the switch (period 2 x repeat, grace 1 x repeat: roles/alerting/settings.py
    Heartbeat) pages 3 x repeat after it.
    """
    expiry = min(last_call_after_stop + lab_repeat, 4 * evaluation_interval)
    return expiry + 3 * production_repeat


def _prometheus_ready() -> bool:
    try:
        return operator_tls.get(f"{PROMETHEUS}/-/ready", timeout=5).ok
    except requests.RequestException:
        return False


def prometheus_stopped() -> tuple[dict[str, float], str]:
    """Stop Prometheus: seconds until the heartbeat stand-in's DOWN page (the lab's switch), and
    the bound it gives for production's switch; and a note for the run's line."""
    clear_receivers()
    wait_for("the Watchdog's calls at the heartbeat stand-in", lambda: received("heartbeat", kind="ping"), 120, 1)
    stopped_at = time.time()
    try:
        # Every monitoring host's: with a pair, the other Prometheus keeps the Watchdog firing.
        for host in MONITORING:
            run_on(host, "systemctl stop prometheus")
        down = wait_for("the heartbeat stand-in's DOWN page", lambda: received("heartbeat", kind="down"), 10 * 60, 1)[0]
    finally:
        for host in MONITORING:
            run_on(host, "systemctl start prometheus")
    paged = _at(down) - stopped_at
    calls = [_at(r) for r in received("heartbeat", kind="ping") if _at(r) < _at(down)]
    last_call = (max(calls) - stopped_at) if calls else 0.0
    lab_repeat = duration_seconds(load_group_data("lab")["alerting"]["heartbeat"]["repeat_interval"])
    bound = production_heartbeat_bound(last_call, lab_repeat, duration_seconds(PrometheusSettings().evaluation_interval),
                                       duration_seconds(AlertingSettings().heartbeat.repeat_interval))
    # Back to normal before the next case: Prometheus answers, the calls resume, the switch is up.
    wait_for("Prometheus ready", _prometheus_ready, 120, 1)
    wait_for("the switch up again", lambda: received("heartbeat", kind="up"), 180, 1)
    cases = {"paged, lab switch": paged, "bound, production switch": bound}
    return cases, (f"last call {last_call:.1f}s after the stop; lab switch {HEARTBEAT_PERIOD_SECONDS}s + "
                   f"{HEARTBEAT_GRACE_SECONDS}s, production's {3 * duration_seconds(AlertingSettings().heartbeat.repeat_interval):g}s")


def slack_revoked() -> tuple[dict[str, float], str]:
    """Revoke the critical Slack webhook, push a critical probe; seconds from the first refused
    call to the AlertmanagerFailedToSendAlerts trigger on PagerDuty."""
    clear_receivers()
    slack = RECEIVERS["slack"]
    requests.post(f"{slack}/api/revoke", json={"webhook": SLACK_CRITICAL_BOT}, timeout=10).raise_for_status()
    revoked_at = time.time()
    try:
        push_alert(ALERTMANAGER, PROBE_LABELS, "bench: a critical probe to make Alertmanager call Slack", 15 * 60)
        refused = wait_for("a refused call to the revoked webhook",
                           lambda: [r for r in received("slack") if r.get("refused") == "revoked"], 5 * 60, 1)[0]
        trigger = wait_for(f"{FAILED_TO_SEND} on PagerDuty", lambda: pagerduty_events(FAILED_TO_SEND), 10 * 60, 1)[0]
    finally:
        push_alert(ALERTMANAGER, PROBE_LABELS, "bench: probe resolved", 0)
        requests.post(f"{slack}/api/restore", json={"webhook": SLACK_CRITICAL_BOT}, timeout=10).raise_for_status()
    return {"from the refused call": _at(trigger) - _at(refused)}, f"{_at(trigger) - revoked_at:.1f}s after the revoke (the probe's group_wait included)"
