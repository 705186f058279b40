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

import pytest

from lab.alert_drills import clear_receivers, received, wait_for
from lab.paths import HEARTBEAT_GRACE_SECONDS, HEARTBEAT_PERIOD_SECONDS
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


def _stop(host, unit: str) -> None:
    host.testinfra.check_output("systemctl stop %s", unit)


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
    try:
        if how == "stop":
            _stop(mon, unit)
        else:
            kills = _kill_until_systemd_gives_up(mon, unit)
            print(f"{unit}: failed after {kills} SIGKILLs")
        assert mon.testinfra.run("systemctl is-active %s", unit).stdout.strip() in ("inactive", "failed")
        dead_at = time.monotonic()
        # The Watchdog stops reaching the switch: Prometheus stopped sending it (Alertmanager lets
        # it resolve after 4 evaluations), or Alertmanager is not there to call.
        down = wait_for("the heartbeat stand-in's DOWN page", lambda: received("heartbeat", kind="down"), SILENCE + 120, 1)
        print(f"{unit} {how}: paged {time.monotonic() - dead_at:.0f}s after the unit was down")
        assert down[0]["notified"] == ["slack", "pagerduty"], down
        triggers = [e for e in received("pagerduty", event_action="trigger") if e["dedup_key"].startswith("heartbeat-")]
        assert len(triggers) == 1 and "DOWN" in triggers[0]["event"]["payload"]["summary"]
    finally:
        _start(mon, unit)
    pings = len(received("heartbeat", kind="ping"))
    wait_for("the switch back up", lambda: received("heartbeat", kind="up"), 120, 1)
    _pings_arrive(after=pings)
    # Calls resume every 10 s: a whole silence window later there is still one page, not two.
    time.sleep(SILENCE + 5)
    assert len(received("heartbeat", kind="down")) == 1
    assert len(received("heartbeat", kind="ping")) >= pings + 2
    resolves = [e["dedup_key"] for e in received("pagerduty", event_action="resolve") if e["dedup_key"].startswith("heartbeat-")]
    assert resolves == [triggers[0]["dedup_key"]]
