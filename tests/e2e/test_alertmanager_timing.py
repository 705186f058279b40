"""A critical alert that returns after a resolve pages within the budget: the real Alertmanager, prod's routing.

Marker `alerting`, no lab needed: the pinned Alertmanager (from the lab mirror's release
tarball, tests/mirror_binaries.py) runs on 127.0.0.1 with the config roles/alertmanager
`render_config` makes from PROD's group data, unchanged except where it points: the secret
files (/etc/alertmanager/secrets/...) and the templates are rewritten to a temp dir, the
secrets name in-process Slack and PagerDuty STAND-INS (lab/receivers, not the real services),
and PagerDuty's URL and the SMTP smarthost point at 127.0.0.1. Wall time about 75 s (group_wait
10 s + two group_intervals of 30 s + start-up; 131 s with a 1m group_interval), hence
tests/e2e, not tests/unit.

Scenario, as Prometheus sends it (docs/alerting.md, "A returning incident"):
1. SentinelBackendDown fires: Slack and PagerDuty get it after group_wait (a new group).
2. It resolves: the resolved notification goes out at the group's next tick.
3. Right after that notification it fires again. Its aggregation group still exists: in
   production Prometheus keeps re-sending the resolved alert for 15 minutes, which keeps the
   group alive; here `--dispatch.maintenance-interval` (how often empty groups are collected,
   30 s by default) is set past the test's length for the same effect, so the re-fire lands in
   the old group right after its tick: the worst case. It is sent at the group's next tick, one
   group_interval after the resolved notification, NOT after group_wait.

So a returning incident waits up to group_interval after Prometheus sends it; prod's critical
group_interval is 30s (roles/alerting/settings.py refuses more than 1m), which keeps every
critical alert's returning worst case within the 240 s budget (tests/unit/test_alert_detection.py
does the sums). With the old 5m the same re-fire waits for the tick 5 minutes after the resolved
notification: the 295.6 s backend-down of issue 25. The test then fails: Prometheus's share of
backend-down (scrape 15 s + evaluation 15 s + `for` 2m) plus the measured wait must stay within
the budget. Checked once with 5m patched into the settings (a scratch copy of this test, 612 s of
wall time, too long to keep): the re-fire paged 299.9 s after it fired again, and
150 + 299.9 > 240 failed. With 1m it paged after 60.0 s (131 s of wall time), with 30s after 30.0 s.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import yaml

from lab.alert_drills import slack_messages_listing, wait_for
from lab.bench_alerting import BUDGET_SECONDS
from lab.receivers import pagerduty, slack
from lab.receivers.recording import start_in_thread
from roles._environment import group_data as load_group_data, host_settings as build
from roles._model import duration_seconds
from roles.alerting.catalog import load_catalog
from roles.alertmanager import NOTIFICATION_TEMPLATES, SECRETS_DIR, render_config
from tests.mirror_binaries import extract
from tests.ports import free_port

pytestmark = pytest.mark.alerting

ENVIRONMENT = "prod"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
# Alertmanager's timers fire on time; this covers the HTTP call to the stand-in and the poll.
SCHEDULING_MARGIN_SECONDS = 5
ALERT = next(a for a in load_catalog() if a.uid == "backend-down")


def _prod_settings():
    data = {**load_group_data("all"), **load_group_data(ENVIRONMENT)}
    return build("mon1", ["monitoring", ENVIRONMENT], data)


def _serve(server) -> str:
    start_in_thread(server)
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def _pointed_at(document: dict, secrets_dir: Path, templates_dir: Path, pagerduty_url: str) -> dict:
    """The rendered config with its paths and endpoints moved to the test's; routes and timers untouched."""

    def move(node):
        if isinstance(node, dict):
            return {k: (str(secrets_dir / Path(v).name) if k.endswith("_file") and str(v).startswith(SECRETS_DIR + "/") else move(v))
                    for k, v in node.items()}
        return [move(item) for item in node] if isinstance(node, list) else node

    moved = move(document)
    moved["templates"] = [str(templates_dir / "*.tmpl")]
    moved["global"]["smtp_smarthost"] = "127.0.0.1:9"  # no alert of this test is an email; never leave loopback
    for receiver in moved["receivers"]:
        for item in receiver.get("pagerduty_configs", []):
            item["url"] = pagerduty_url
    return moved


@pytest.fixture(scope="module")
def prod_alertmanager(tmp_path_factory):
    """(Alertmanager URL, Slack stand-in URL, PagerDuty stand-in URL, the rendered prod config)."""
    tmp = tmp_path_factory.mktemp("am-timing")
    binary = extract("alertmanager", "alertmanager", tmp)
    settings = _prod_settings()
    slack_server = slack.make_server("127.0.0.1", 0, str(tmp / "slack.jsonl"))
    pagerduty_server = pagerduty.make_server("127.0.0.1", 0, str(tmp / "pagerduty.jsonl"), ROUTING_KEY)
    slack_url, pagerduty_url = _serve(slack_server), _serve(pagerduty_server)
    secrets_dir, templates_dir = tmp / "secrets", tmp / "templates"
    secrets_dir.mkdir(mode=0o700)
    templates_dir.mkdir()
    shutil.copy(NOTIFICATION_TEMPLATES, templates_dir)
    values = {
        "slack-critical-webhook-url": f"{slack_url}/services/TTEST/BCRITICAL/critical-token",
        "slack-alerts-webhook-url": f"{slack_url}/services/TTEST/BALERTS/alerts-token",
        "smtp-password": "unused-in-this-test",
        "pagerduty-routing-key": ROUTING_KEY,
        "heartbeat-url": f"{slack_url}/heartbeat-not-under-test",
    }
    for name in settings.alerting.secrets():
        (secrets_dir / name).write_text(values[name] + "\n")
        (secrets_dir / name).chmod(0o600)
    rendered = yaml.safe_load(render_config(settings, load_catalog()))
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump(_pointed_at(rendered, secrets_dir, templates_dir, f"{pagerduty_url}/v2/enqueue")))
    port = free_port(range(19600, 19700))  # 19000-19999: experiments on 127.0.0.1
    log = (tmp / "alertmanager.log").open("w")  # read it when the test fails
    process = subprocess.Popen(
        [str(binary), f"--config.file={config}", f"--storage.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--dispatch.maintenance-interval=1h"],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Alertmanager ready", lambda: _ready(url), 30, 0.2)
        yield url, slack_url, pagerduty_url, rendered
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        slack_server.shutdown()
        pagerduty_server.shutdown()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).ok
    except requests.RequestException:
        return False


def _send(url: str, starts_at: datetime, ends_at: datetime) -> None:
    """The alert as Prometheus sends it: firing with an endsAt ahead, resolved with endsAt now."""
    alert = {
        "labels": {"alertname": ALERT.name, "uid": ALERT.uid, "severity": ALERT.severity, "environment": ENVIRONMENT,
                   "job": "sentinel-backend"},
        "annotations": {"summary": "the backend is down (test)", "value": "0", "runbook_url": "n/a (test)"},
        "startsAt": starts_at.isoformat(),
        "endsAt": ends_at.isoformat(),
    }
    requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=10).raise_for_status()


def _received(standin_url: str) -> list[dict]:
    return requests.get(f"{standin_url}/api/received", timeout=10).json()["received"]


def _at(record: dict) -> float:
    return datetime.fromisoformat(record["received_at"]).timestamp()


def _critical_route(rendered: dict) -> dict:
    return next(r for r in rendered["route"]["routes"] if r.get("receiver") == "slack-critical" and r["matchers"] == ['severity="critical"'])


def test_a_critical_alert_returning_after_a_resolve_pages_within_group_interval(prod_alertmanager):
    am, slack_url, pagerduty_url, rendered = prod_alertmanager
    route = _critical_route(rendered)
    group_wait, group_interval = duration_seconds(route["group_wait"]), duration_seconds(route["group_interval"])
    critical = _prod_settings().alerting.critical  # prod's timers, as rendered (tests/unit/test_alert_routing.py pins them)
    assert (group_wait, group_interval) == (duration_seconds(critical.group_wait), duration_seconds(critical.group_interval)), route

    def slack_listing(status: str, count: int):
        found = slack_messages_listing(_received(slack_url), "#critical-alerts", ALERT.uid, status)
        return found if len(found) >= count else None

    def pagerduty_events(action: str, count: int):
        found = [r for r in _received(pagerduty_url) if r["event_action"] == action]
        return found if len(found) >= count else None

    # 1. A first occurrence: a new group, sent after group_wait.
    first_at = datetime.now(timezone.utc)
    _send(am, first_at, first_at + timedelta(hours=1))
    first = wait_for("the first page on Slack", lambda: slack_listing("FIRING", 1), group_wait + 30, 0.2)[0]
    assert _at(first) - first_at.timestamp() <= group_wait + SCHEDULING_MARGIN_SECONDS, first
    wait_for("the first PagerDuty trigger", lambda: pagerduty_events("trigger", 1), 10, 0.2)

    # 2. It resolves: the resolved notification goes out at the group's next tick.
    _send(am, first_at, datetime.now(timezone.utc))
    resolved = wait_for("the resolved message", lambda: slack_listing("RESOLVED", 1), group_interval + 30, 0.2)[0]
    wait_for("the PagerDuty resolve", lambda: pagerduty_events("resolve", 1), 10, 0.2)

    # 3. It returns right after that tick: the worst moment, a whole group_interval to the next one.
    returned_at = datetime.now(timezone.utc)
    _send(am, returned_at, returned_at + timedelta(hours=1))
    again = wait_for("the second page on Slack", lambda: slack_listing("FIRING", 2), group_interval + 30, 0.2)[1]
    triggers = wait_for("the second PagerDuty trigger", lambda: pagerduty_events("trigger", 2), 10, 0.2)
    waited = _at(again) - returned_at.timestamp()
    print(f"first page {_at(first) - first_at.timestamp():.1f}s after firing; the returning alert paged {waited:.1f}s after "
          f"it fired again ({_at(again) - _at(resolved):.1f}s after the resolved message)")
    # Within the budget's share for Alertmanager: one group_interval (prod: 30s, was 5m)...
    assert waited <= group_interval + SCHEDULING_MARGIN_SECONDS
    assert _at(triggers[1]) - returned_at.timestamp() <= group_interval + SCHEDULING_MARGIN_SECONDS
    # ...and it did wait for the group's tick, not group_wait: the case this test is about.
    assert abs(_at(again) - _at(resolved) - group_interval) <= SCHEDULING_MARGIN_SECONDS
    assert waited > group_wait + SCHEDULING_MARGIN_SECONDS
    # The whole returning incident at prod's timings: Prometheus's worst share (the fault just missed
    # a scrape, then an evaluation, then `for`), then the wait measured here; within the budget.
    prometheus = _prod_settings().prometheus
    before_alertmanager = sum(duration_seconds(d) for d in (prometheus.scrape_interval, prometheus.evaluation_interval, ALERT.for_))
    print(f"backend-down returning, worst case: {before_alertmanager:g}s before Alertmanager + {waited:.1f}s measured")
    assert before_alertmanager + waited <= BUDGET_SECONDS
