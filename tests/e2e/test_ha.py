"""Two monitoring hosts, proven by killing one: the Alertmanager cluster and the Prometheus pair.

On the lab's mon1 and mon2 (lab/paths.py). Every Prometheus sends every alert to every
Alertmanager; the Alertmanagers gossip their notification log, and the one at position N
(by peer name: mon1 first) waits N x alerting.cluster_peer_timeout before notifying. So a
critical alert must reach the Slack and PagerDuty stand-ins exactly once:

- with everything up (both Prometheus fire it, both Alertmanagers hold it);
- with one Prometheus stopped (the other one's copy is delivered; it also pages PrometheusDown);
- with the first-position Alertmanager SIGKILLed before its group_wait ended (the second
  notifies), and still once after the killed one is back and hears the alert again.

"Exactly once" is counted after a window in which every peer's turn has passed: the number
of peers x the peer timeout + the critical group_wait + a margin. Every test restores what it
broke (units started, the backend running, the drill alert resolved) in a finally block.
"""

from __future__ import annotations

import time

import pytest
import requests

from lab import operator_tls
from lab.alert_drills import clear_receivers, in_alertmanager, pagerduty_events, push_alert, slack_alerts, wait_for
from roles._model import duration_seconds
from roles.alerting.catalog import load_catalog
from tests.e2e import units
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.alerting, pytest.mark.ha]
ALERTS = {a.uid: a for a in load_catalog()}
BACKEND_DOWN = ALERTS["backend-down"]
PROMETHEUS_DOWN = ALERTS["prometheus-down"]


# Prometheus and Alertmanager serve TLS and admit the operator's certificate (roles/_tls.py):
# the tests call them from the controller as an operator does (lab/operator_tls.py).
def _alertmanager(host) -> str:
    return f"https://{host.settings.address}:{host.settings.alerting.listen_port}"


def _prometheus(host) -> str:
    return f"https://{host.settings.address}:{host.settings.prometheus.listen_port}"


def _ready(url: str) -> bool:
    try:
        return operator_tls.get(f"{url}/-/ready", timeout=5).ok
    except requests.RequestException:
        return False


def _cluster(host) -> dict:
    return operator_tls.get(f"{_alertmanager(host)}/api/v2/status", timeout=10).json()["cluster"]


def _cluster_ready(mons) -> bool:
    """Every Alertmanager is ready and sees every monitoring host as a peer, by its inventory name."""
    names = sorted(m.name for m in mons)
    try:
        return all(c["status"] == "ready" and sorted(p["name"] for p in c["peers"]) == names for c in map(_cluster, mons))
    except requests.RequestException:
        return False


def _window(mon) -> float:
    """Seconds after which every peer has had its turn to notify."""
    alerting = mon.settings.alerting
    peers = len(hosts_in("monitoring"))
    return peers * duration_seconds(alerting.cluster_peer_timeout) + duration_seconds(alerting.critical.group_wait) + 10


@pytest.fixture
def pair(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    mons = sorted(hosts_in("monitoring"), key=lambda h: h.name)  # mon1 first: the first position
    assert len(mons) >= 2, "these tests need two monitoring hosts (lab/paths.py HOSTS: mon2)"
    wait_for("the Alertmanager cluster ready, every peer seen", lambda: _cluster_ready(mons), 120, 2)
    return mons


def _start_clean(mons, uid: str) -> None:
    for mon in mons:
        wait_for(f"no {uid} left on {mon.name} from an earlier drill", lambda: not in_alertmanager(_alertmanager(mon), uid), 10 * 60, 5)
    clear_receivers()


def _notified_once(alert_uid: str, alertname: str, deadline: float, window: float) -> None:
    """The alert reaches Slack #critical-alerts and PagerDuty, and once the window has passed, once each."""
    wait_for(f"{alertname} on Slack #critical-alerts", lambda: slack_alerts("#critical-alerts", alert_uid), deadline, 1)
    wait_for(f"{alertname} on PagerDuty", lambda: pagerduty_events(alertname, "trigger"), 60, 1)
    time.sleep(window)
    counts = len(slack_alerts("#critical-alerts", alert_uid)), len(pagerduty_events(alertname, "trigger"))
    assert counts == (1, 1), f"{alertname}: (Slack, PagerDuty) notifications {counts}, want one each"


def _firing_in(prometheus: str, alertname: str) -> list[dict]:
    result = operator_tls.get(f"{prometheus}/api/v1/query", params={"query": f'ALERTS{{alertname="{alertname}",alertstate="firing"}}'}, timeout=10)
    return result.json()["data"]["result"]


def _stop_backend(app):
    unit = app.settings.backend.unit
    app.testinfra.check_output("systemctl stop %s", unit)


def _start_backend(app):
    unit, url = app.settings.backend.unit, f"http://{app.settings.address}:{app.settings.backend.port}"
    app.testinfra.run("systemctl start %s", unit)
    wait_for("backend healthy again", lambda: app.testinfra.run("curl -fsS %s/health", url).rc == 0, 90)


def test_the_pair_up_a_critical_alert_is_notified_once(pair):
    """Both Prometheus fire backend-down and send it to both Alertmanagers: one Slack, one PagerDuty."""
    app = hosts_in("app")[0]
    _start_clean(pair, BACKEND_DOWN.uid)
    try:
        _stop_backend(app)
        deadline = duration_seconds(BACKEND_DOWN.for_) + 180
        _notified_once(BACKEND_DOWN.uid, BACKEND_DOWN.name, deadline, _window(pair[0]))
        # Both copies existed: each Prometheus fires it and reaches every Alertmanager, and each
        # Alertmanager holds it without the replica label (both copies are one alert).
        for mon in pair:
            assert _firing_in(_prometheus(mon), BACKEND_DOWN.name), f"{mon.name}'s Prometheus does not fire {BACKEND_DOWN.name}"
            active = operator_tls.get(f"{_prometheus(mon)}/api/v1/alertmanagers", timeout=10).json()["data"]["activeAlertmanagers"]
            assert len(active) == len(pair), active
            alerts = operator_tls.get(f"{_alertmanager(mon)}/api/v2/alerts", params={"filter": f'uid="{BACKEND_DOWN.uid}"'}, timeout=10).json()
            assert alerts and all("replica" not in a["labels"] for a in alerts), alerts
    finally:
        _start_backend(app)


def test_one_prometheus_stopped_alerts_are_still_notified_once(pair):
    """mon1's Prometheus stopped: mon2's alone fires backend-down (once), and pages PrometheusDown for mon1 (once)."""
    app, stopped, other = hosts_in("app")[0], pair[0], pair[1]
    _start_clean(pair, BACKEND_DOWN.uid)
    _start_clean(pair, PROMETHEUS_DOWN.uid)
    try:
        stopped.testinfra.check_output("systemctl stop prometheus")
        _stop_backend(app)
        deadline = max(duration_seconds(BACKEND_DOWN.for_), duration_seconds(PROMETHEUS_DOWN.for_)) + 180
        _notified_once(BACKEND_DOWN.uid, BACKEND_DOWN.name, deadline, 0)
        _notified_once(PROMETHEUS_DOWN.uid, PROMETHEUS_DOWN.name, deadline, _window(other))
        assert f"on {stopped.name}" in str(slack_alerts("#critical-alerts", PROMETHEUS_DOWN.uid)[0]["message"])
        assert len(slack_alerts("#critical-alerts", BACKEND_DOWN.uid)) == 1
    finally:
        stopped.testinfra.run("systemctl start prometheus")
        _start_backend(app)
    wait_for(f"{stopped.name}'s Prometheus ready", lambda: _ready(_prometheus(stopped)), 120)


def test_the_first_alertmanager_killed_the_second_notifies_once(pair):
    """A critical alert reaches both Alertmanagers, the first-position one is SIGKILLed before its group_wait
    ends (and kept down): the second notifies, once. Back, the first hears the alert again and sends nothing."""
    first, second = pair[0], pair[1]
    assert min(p["name"] for p in _cluster(second)["peers"]) == first.name  # position 0: the lowest peer name
    uid = f"ha-drill-{int(time.time())}"
    labels = {"alertname": "HaDrillCritical", "severity": "critical", "uid": uid, "environment": first.settings.environment}
    summary = "ha drill: a critical alert while the first Alertmanager dies"
    clear_receivers()
    window = _window(first)
    try:
        for mon in pair:  # as each Prometheus does: every Alertmanager gets the alert
            push_alert(_alertmanager(mon), labels, summary, 15 * 60)
        pid = units.sigkill(first, "alertmanager")
        # Kept down for the drill: systemd would restart it after RestartSec.
        first.testinfra.check_output("systemctl stop alertmanager")
        assert units.main_pid(first, "alertmanager") in ("0", ""), pid
        _notified_once(uid, labels["alertname"], 120, window)

        first.testinfra.check_output("systemctl start alertmanager")
        wait_for("the Alertmanager cluster whole again", lambda: _cluster_ready(pair), 120, 2)
        push_alert(_alertmanager(first), labels, summary, 15 * 60)  # Prometheus re-sends it every evaluation
        wait_for(f"{first.name} holds the alert again", lambda: in_alertmanager(_alertmanager(first), uid), 30, 1)
        time.sleep(window)
        counts = len(slack_alerts("#critical-alerts", uid)), len(pagerduty_events(labels["alertname"], "trigger"))
        assert counts == (1, 1), f"after {first.name} came back: (Slack, PagerDuty) {counts}, want still one each"
    finally:
        first.testinfra.run("systemctl start alertmanager")
        wait_for(f"{first.name}'s Alertmanager ready", lambda: _ready(_alertmanager(first)), 120)
        for mon in pair:
            push_alert(_alertmanager(mon), labels, summary, 0)  # resolved: leaves no alert behind
