"""Watch the watchers: when the monitoring itself fails, someone is still paged.

On the lab, the dead man's switch is the heartbeat STAND-IN on the bridge (lab/receivers/heartbeat.py,
not a real heartbeat service): Alertmanager calls it for the always-firing Watchdog every 10 s
(group_data/lab.py), and it pages through the Slack and PagerDuty stand-ins after 20 s + 10 s of
silence (lab/paths.py). Prometheus and Alertmanager are stopped or killed until systemd gives up,
the switch must page once, and once they are back the calls resume with no second page.

Every test puts back what it broke (units started, files restored) in a finally block.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests

from lab import secrets
from lab.alert_drills import RECEIVERS, clear_receivers, pagerduty_events, push_alert, received, slack_alerts, wait_for
from lab.paths import HEARTBEAT_GRACE_SECONDS, HEARTBEAT_PERIOD_SECONDS
from roles.alerting.catalog import load_catalog
from tests.e2e import units
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.watchers]

SILENCE = HEARTBEAT_PERIOD_SECONDS + HEARTBEAT_GRACE_SECONDS


@pytest.fixture
def mon(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    host = hosts_in("monitoring")[0]
    _pings_arrive()
    clear_receivers()
    return host


def _pings_arrive(after: float = 0.0) -> list[dict]:
    """The switch's check is up: pings arrive (a ping recorded after the `after` count of pings)."""
    return wait_for("the Watchdog's pings at the heartbeat stand-in", lambda: len(received("heartbeat", kind="ping")) > after, 120, 2)


def _kill_until_systemd_gives_up(host, unit: str) -> int:
    """SIGKILL the unit's main process each time systemd brings it back, until its start limit
    (StartLimitBurst=5 in 600 s) leaves it failed: a crash loop. Returns the number of kills."""
    for kills in range(1, 12):
        pid = units.main_pid(host, unit)
        if pid != "0":
            host.testinfra.run("kill -KILL %s", pid)

        def restarted_or_given_up() -> str | None:
            if host.testinfra.run("systemctl is-failed %s", unit).stdout.strip() == "failed":
                return "failed"
            return "restarted" if units.main_pid(host, unit) not in ("0", pid) else None

        if wait_for(f"{unit} restarted by systemd or given up", restarted_or_given_up, 60, 0.5) == "failed":
            return kills
    raise AssertionError(f"{unit} still restarting after 11 kills: Restart=always has no start limit?")


def _start(host, unit: str) -> None:
    host.testinfra.run("systemctl reset-failed %s", unit)
    host.testinfra.check_output("systemctl start %s", unit)


@pytest.mark.parametrize("unit", ["prometheus", "alertmanager"])
@pytest.mark.parametrize("how", ["stop", "sigkill"])
def test_a_dead_prometheus_or_alertmanager_pages_through_the_dead_mans_switch(mon, unit, how):
    # On every monitoring host: with two, either Prometheus keeps the Watchdog firing and either
    # Alertmanager calls the switch (one of them dead is paged by the other: tests/e2e/test_ha.py).
    mons = hosts_in("monitoring")
    try:
        for host in mons:
            if how == "stop":
                host.testinfra.check_output("systemctl stop %s", unit)
            else:
                kills = _kill_until_systemd_gives_up(host, unit)
                print(f"{unit} on {host.name}: failed after {kills} SIGKILLs")
            assert host.testinfra.run("systemctl is-active %s", unit).stdout.strip() in ("inactive", "failed")
        dead_at = time.monotonic()
        # The Watchdog stops reaching the switch: Prometheus stopped sending it (Alertmanager lets
        # it resolve after 4 evaluations), or Alertmanager is not there to call.
        down = wait_for("the heartbeat stand-in's DOWN page", lambda: received("heartbeat", kind="down"), SILENCE + 120, 1)
        print(f"{unit} {how}: paged {time.monotonic() - dead_at:.0f}s after the unit was down")
        assert down[0]["notified"] == ["slack", "pagerduty"], down
        triggers = [e for e in received("pagerduty", event_action="trigger") if e["dedup_key"].startswith("heartbeat-")]
        assert len(triggers) == 1 and "DOWN" in triggers[0]["event"]["payload"]["summary"]
    finally:
        for host in mons:
            _start(host, unit)
    pings = len(received("heartbeat", kind="ping"))
    wait_for("the switch back up", lambda: received("heartbeat", kind="up"), 120, 1)
    _pings_arrive(after=pings)
    # Calls resume every 10 s: a whole silence window later there is still one page, not two.
    time.sleep(SILENCE + 5)
    assert len(received("heartbeat", kind="down")) == 1
    assert len(received("heartbeat", kind="ping")) >= pings + 2
    resolves = [e["dedup_key"] for e in received("pagerduty", event_action="resolve") if e["dedup_key"].startswith("heartbeat-")]
    assert resolves == [triggers[0]["dedup_key"]]


# --- a dead receiver, a failed reload, a store that is away --------------------------------------


def _alertmanager_url(host) -> str:
    return f"https://{host.topology.bind(host.name, 'alertmanager.web')}"


def test_a_revoked_slack_webhook_still_pages_through_pagerduty_and_email(mon):
    """Slack answers 404 on #critical-alerts (a revoked webhook): AlertmanagerFailedToSendAlerts
    fires for the slack integration and reaches PagerDuty and the ops mailbox, never Slack."""
    critical_bot = urlsplit(secrets.read("SENTINEL_SLACK_CRITICAL_WEBHOOK_URL")).path.split("/")[3]
    failing = next(a for a in load_catalog() if a.route_around)
    drill = {"alertname": "WatchersDrillCritical", "severity": "critical", "uid": "watchers-drill", "environment": "lab", "host": mon.name}
    requests.post(f"{RECEIVERS['slack']}/api/revoke", json={"webhook": critical_bot}, timeout=10).raise_for_status()
    try:
        push_alert(_alertmanager_url(mon), drill, "watchers drill: a critical alert while Slack is revoked", 600)
        wait_for("Alertmanager's refused Slack notification", lambda: received("slack", refused="revoked"), 120, 1)
        pages = wait_for(f"{failing.name} on PagerDuty", lambda: pagerduty_events(failing.name), 180, 2)
        assert "slack" in pages[0]["event"]["payload"]["summary"]
        mails = wait_for(f"{failing.name} in the ops mailbox",
                         lambda: [m for m in received("smtp") if failing.name in m["subject"] + m["text"]], 120, 2)
        assert mails[0]["rcpt_tos"] == [mon.settings.alerting.email.to]
        # Never through the integration that fails: nothing about it was accepted by Slack.
        assert not [r for r in received("slack") if failing.name in str(r.get("message"))]
    finally:
        requests.post(f"{RECEIVERS['slack']}/api/restore", json={"webhook": critical_bot}, timeout=10).raise_for_status()
        push_alert(_alertmanager_url(mon), drill, "watchers drill: resolved", 0)


RELOADED = {  # unit -> a file the running service reads at reload, made unreadable to it
    "prometheus": "/etc/prometheus/rules/sentinel-alerts.yml",
    "alertmanager": "/etc/alertmanager/templates/sentinel.tmpl",
}


def test_a_reload_the_running_service_refuses_fires_its_alert(mon):
    """A rule file and a template that pass their checkers on disk but that the services cannot read:
    the reload fails, the previous config keeps running, and PrometheusBadConfig and
    AlertmanagerFailedReload reach Slack #alerts."""
    modes = {unit: mon.testinfra.file(path).mode for unit, path in RELOADED.items()}
    try:
        for unit, path in RELOADED.items():
            mon.testinfra.check_output("chmod 0000 %s && systemctl reload %s", path, unit)
        for uid in ("prometheus-bad-config", "alertmanager-failed-reload"):
            wait_for(f"{uid} on Slack #alerts", lambda: slack_alerts("#alerts", uid), 8 * 60, 5)
        # The services kept running on what they had.
        for unit in RELOADED:
            assert mon.testinfra.service(unit).is_running
    finally:
        for unit, path in RELOADED.items():
            mon.testinfra.run("chmod %s %s && systemctl reload %s", f"{modes[unit]:04o}", path, unit)


def test_a_stopped_log_store_raises_its_alerts_and_loses_no_line(mon):
    """VictoriaLogs stopped under bounded load: VictoriaLogsDown and LogIngestionDelayed reach Slack
    #alerts while the gateway's disk queue holds the lines; once it is back, every line is stored."""
    from tests.e2e.test_crash import _drill  # the crash drills' bounded writer and sent = stored count

    tel, app = hosts_in("telemetry")[0], hosts_in("app")[0]
    # The whole store on tel1: in a cluster (stores.mode scalable) its access tier too, or tel1's gateway would
    # write on through it to tel2's storage node and no line would wait.
    scalable = tel.settings.stores.mode == "scalable"
    away = {"victorialogs": "victorialogs.local", **({"victorialogs-access": "victorialogs.access_local"} if scalable else {})}

    def store_away(tel, app):
        tel.testinfra.check_output(f"systemctl stop {' '.join(away)}")
        try:
            for uid in ("victorialogs-down", "log-ingestion-delayed"):
                wait_for(f"{uid} on Slack #alerts", lambda: slack_alerts("#alerts", uid), 6 * 60, 5)
        finally:
            tel.testinfra.check_output(f"systemctl start {' '.join(away)}")
            for listener in away.values():
                wait_for(f"{listener} answering again", lambda: tel.testinfra.run("curl -fsS -o /dev/null %s", tel.local(listener, "/health")).rc == 0, 120, 1)

    _drill((tel, app), "store-away", store_away)
