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

import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from lab import operator_tls
from lab.alert_drills import clear_receivers, in_alertmanager, pagerduty_events, push_alert, quiet, slack_alerts, wait_for
from roles._model import duration_seconds
from roles.alerting.catalog import load_catalog
from tests import lab_session
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


def _start_clean(mons, *uids: str) -> None:
    """No earlier drill's (or converge's) alert pending in a Prometheus or held by an Alertmanager, and every
    peer's turn for it passed: a peer that flushed the group just before the resolution still sends its
    FIRING once its turn comes (when the first peer's resolved notification is already in the log, the
    firing one differs from it), and that belongs to the earlier drill, not to the count of this one."""
    for uid in uids:
        wait_for(f"no {uid} left from an earlier drill", lambda: quiet([_prometheus(m) for m in mons], [_alertmanager(m) for m in mons], uid),
                 10 * 60, 5)
    time.sleep(_window(mons[0]))
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
    """The backend stopped: both Prometheus fire backend-down and send it to both Alertmanagers: one
    Slack message naming the host, one PagerDuty trigger; started again, the resolution reaches Slack.
    (The one-monitoring-host drill of the same fault was test_alerting's; this one proves it with the pair.)"""
    app = hosts_in("app")[0]
    _start_clean(pair, BACKEND_DOWN.uid)
    try:
        _stop_backend(app)
        deadline = duration_seconds(BACKEND_DOWN.for_) + 180
        _notified_once(BACKEND_DOWN.uid, BACKEND_DOWN.name, deadline, _window(pair[0]))
        assert f"on {app.name}" in slack_alerts("#critical-alerts", BACKEND_DOWN.uid)[0]["message"]["attachments"][0]["text"]
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
    wait_for("backend-down resolution on Slack", lambda: slack_alerts("#critical-alerts", BACKEND_DOWN.uid, "RESOLVED"), 180)


def test_one_prometheus_stopped_alerts_are_still_notified_once(pair):
    """mon1's Prometheus stopped: mon2's alone fires backend-down (once), and pages PrometheusDown for mon1 (once)."""
    app, stopped, other = hosts_in("app")[0], pair[0], pair[1]
    _start_clean(pair, BACKEND_DOWN.uid, PROMETHEUS_DOWN.uid)
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


# A table of its own in the second host's netns, so the cut is undone by deleting it and never
# touches the firewall role's table. Priority -10: before the firewall's accept rules.
_CUT_TABLE = "sentinel_gossip_cut_drill"


def _cut_gossip(mon, peer_address: str, port: int) -> None:
    rules = (
        f"table inet {_CUT_TABLE} {{\n"
        f"  chain input {{ type filter hook input priority -10; ip saddr {peer_address} meta l4proto {{ tcp, udp }} th dport {port} drop; }}\n"
        f"  chain output {{ type filter hook output priority -10; ip daddr {peer_address} meta l4proto {{ tcp, udp }} th dport {port} drop; }}\n"
        "}\n"
    )
    mon.testinfra.check_output("printf '%%s' %s | nft -f -", rules)


def _heal_gossip(mon) -> None:
    mon.testinfra.run("nft delete table inet %s", _CUT_TABLE)


def test_gossip_cut_between_the_alertmanagers_notifies_once_or_twice(pair):
    """With gossip cut between the two Alertmanagers (each still reaches the receivers and gets every alert), a
    critical alert is notified at least once and at most twice: each side no longer sees the other's notification
    log, so the second may send too. At-least-once by design (docs/alerting.md "Two monitoring hosts")."""
    first, second = pair[0], pair[1]
    port = second.settings.alerting.cluster_port
    uid = f"ha-split-{int(time.time())}"
    labels = {"alertname": "HaSplitCritical", "severity": "critical", "uid": uid, "environment": first.settings.environment}
    summary = "ha drill: a critical alert while the Alertmanagers cannot gossip"
    clear_receivers()
    try:
        _cut_gossip(second, first.settings.address, port)
        # memberlist marks the peer failed once its probes go unanswered; wait until both sides see the split.
        wait_for("each Alertmanager sees itself alone", lambda: all(len(_cluster(m)["peers"]) == 1 for m in pair), 120, 2)
        for mon in pair:
            push_alert(_alertmanager(mon), labels, summary, 15 * 60)
        wait_for("the split alert on Slack #critical-alerts", lambda: slack_alerts("#critical-alerts", uid), 120, 1)
        time.sleep(_window(first))
        counts = len(slack_alerts("#critical-alerts", uid)), len(pagerduty_events(labels["alertname"], "trigger"))
        print(f"gossip cut: (Slack, PagerDuty) notifications {counts}")
        assert all(1 <= n <= 2 for n in counts), f"gossip cut: (Slack, PagerDuty) {counts}, want one or two each"
    finally:
        _heal_gossip(second)
        for mon in pair:
            push_alert(_alertmanager(mon), labels, summary, 0)
    wait_for("the Alertmanager cluster whole again", lambda: _cluster_ready(pair), 180, 2)


def _rolling_converge(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roles.rolling", lab_session.INVENTORY, *options], cwd=lab_session.ROOT,
                          capture_output=True, text=True, timeout=1800)


def _started(pair) -> dict[str, tuple[int, int]]:
    """When each host's Prometheus and Alertmanager main process started (unix seconds; a restart moves it)."""
    def at(mon, unit: str) -> int:
        return int(mon.testinfra.check_output("systemctl show --timestamp=unix -p ExecMainStartTimestamp --value %s", unit).lstrip("@"))
    return {m.name: (at(m, "prometheus"), at(m, "alertmanager")) for m in pair}


def test_a_rolling_converge_keeps_one_member_of_the_pair_up_and_alerts_flowing(pair):
    """A flag change that restarts Prometheus and Alertmanager (the evaluation interval, and with it
    --rules.alert.resend-delay; the cluster peer timeout), rolled host by host with `python -m roles.rolling`:
    both components restart on both hosts, the second host's only after the first host's are back (an
    Alertmanager restarts in well under a second, too fast for sampling to see it down, so the start times
    say it); sampled every second, at least one Prometheus and one Alertmanager are ready throughout; every
    critical alert pushed during the roll, as Prometheus pushes (to every Alertmanager that answers), is
    notified; both hosts run the new flags."""
    data = lab_session.lab_group_data()
    changed = ("--data", f"prometheus={json.dumps({**data['prometheus'], 'evaluation_interval': '6s'})}",
               "--data", f"alerting={json.dumps({**data['alerting'], 'cluster_peer_timeout': '16s'})}")
    started_before = _started(pair)
    samples: list[tuple[int, int]] = []
    pushed: list[str] = []
    done, rolled = threading.Event(), threading.Event()
    summary = "ha drill: a critical alert during a rolling converge"
    environment = pair[0].settings.environment

    def watch():
        while not done.is_set():
            proms = sum(_ready(_prometheus(m)) for m in pair)
            ams = [m for m in pair if _ready(_alertmanager(m))]
            samples.append((proms, len(ams)))
            if len(samples) % 10 == 0 and not rolled.is_set():  # a new critical alert every ten samples of the roll
                pushed.append(f"ha-roll-{len(samples)}-{int(time.time())}")
            if len(samples) % 5 == 0:  # as Prometheus re-sends every firing alert to every Alertmanager that answers
                for uid, m in ((uid, m) for uid in pushed for m in ams):
                    labels = {"alertname": "HaRollCritical", "severity": "critical", "uid": uid, "environment": environment}
                    try:
                        push_alert(_alertmanager(m), labels, summary, 15 * 60)
                    except requests.RequestException:
                        continue
            time.sleep(1)

    clear_receivers()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = _rolling_converge(*changed)
        rolled.set()
        assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
        assert pushed, "no alert was pushed during the roll"
        # A new alert of a group already notified waits for the group's next group_interval, not group_wait.
        critical = pair[0].settings.alerting.critical
        try:
            wait_for("every alert pushed during the roll on Slack", lambda: all(slack_alerts("#critical-alerts", uid) for uid in pushed),
                     _window(pair[0]) + duration_seconds(critical.group_interval) + 30, 2)
        except TimeoutError:
            missed = [uid for uid in pushed if not slack_alerts("#critical-alerts", uid)]
            pytest.fail(f"{len(missed)} of {len(pushed)} alerts pushed during the roll never reached Slack: {missed}")
        done.set()
        watcher.join(30)
        fewest = min(p for p, _ in samples), min(a for _, a in samples)
        started = _started(pair)
        first, second = pair[0].name, pair[1].name
        gaps = tuple(started[second][i] - started[first][i] for i in (0, 1))
        print(f"rolling converge: {len(samples)} samples, fewest (Prometheus, Alertmanager) ready {fewest}, "
              f"{len(pushed)} alerts pushed, {second} restarted (Prometheus, Alertmanager) {gaps} s after {first}")
        assert all(started[m][i] > started_before[m][i] for m in started for i in (0, 1)), (started_before, started)
        assert all(gap >= 5 for gap in gaps), f"{second} restarted {gaps} s after {first}: not one host at a time"
        assert fewest >= (1, 1), f"at some moment no Prometheus or no Alertmanager was ready: fewest {fewest}"
        for mon in pair:
            flags = mon.testinfra.check_output("systemctl show -p ExecStart --value alertmanager prometheus")
            assert "--cluster.peer-timeout=16s" in flags and "--rules.alert.resend-delay=6s" in flags, flags
    finally:
        done.set()
        restore = _rolling_converge()
        for uid in pushed:
            labels = {"alertname": "HaRollCritical", "severity": "critical", "uid": uid, "environment": environment}
            for mon in pair:
                try:
                    push_alert(_alertmanager(mon), labels, summary, 0)
                except requests.RequestException:
                    pass
        assert restore.returncode == 0, (restore.stdout + restore.stderr)[-5000:]
