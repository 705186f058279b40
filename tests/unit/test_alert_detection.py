"""Every critical alert the lab can cause is detected within 4 minutes, and a 60-second blip does not page.

The worst-case arithmetic of docs/alerting.md ("Detection time") is recomputed here
from the catalog's `for` and production's defaults (scrape and evaluation interval,
the critical route's group_wait), so raising a `for` or a timer past the budget fails
a test rather than the operators' success criterion. promtool proves the blip cases
(files/alerting/tests/); the guard below proves those blips do breach the condition,
so their silence is `for`'s doing and the fixtures cannot pass vacuously.
"""

import subprocess

import pytest
import yaml

from roles._model import duration_seconds
from roles.alerting.catalog import REPO, load_catalog
from roles.alerting.rules import render_rules
from roles.alerting.settings import AlertingSettings
from roles.prometheus.settings import PrometheusSettings
from tests.mirror_binaries import extract

pytestmark = pytest.mark.alerting

BUDGET_SECONDS = 4 * 60
ALERTS = {a.uid: a for a in load_catalog()}
# Seconds of fault-era traffic each rule's rate window needs before its ratio crosses the
# threshold, for the fault the bench injects (lab/bench_alerting.py SCENARIOS): a ratio over
# a window W reaches f * t / W after t seconds of a fault of size f.
#   error rate 50% (error_rate=0.5): 3m * 5% / 50% = 18 s (the 1m window: 6 s)
#   p95 > 2 s, every request slow (latency_ms=2500): the bench's closed-loop load drops from
#   16 to 3.2 requests a second once each takes 2.5 s, so slow requests reach 5% of the 3m
#   window after t = 5% * 16 * 180 / (95% * 3.2 + 5% * 16) = 37.5 s, plus the 2.5 s a
#   request takes before it is observed (at constant traffic it would be 3m * 5% = 9 s)
#   up == 0 and the pool gauges: no window, the first scrape shows the fault
WINDOW_FILL_SECONDS = {
    "backend-down": 0,
    "backend-error-rate-critical": 18,
    "backend-latency-p95-high": 37.5 + 2.5,
    "db-pool-exhausted": 0,
}
BLIP_FIXTURES = {
    "backend-error-rate-critical": "a 60-second blip of 100% errors does not page",
    "backend-latency-p95-high": "a 60-second slowdown does not page",
}


def worst_case_seconds(uid: str) -> float:
    """Fault -> Slack at production timings, worst case: the window fills, the next scrape
    records it, the next evaluation sees it (pending), `for` runs out (firing, sent to
    Alertmanager at once), the critical route's group_wait passes."""
    prometheus, alerting = PrometheusSettings(), AlertingSettings()
    return (WINDOW_FILL_SECONDS[uid]
            + duration_seconds(prometheus.scrape_interval)
            + duration_seconds(prometheus.evaluation_interval)
            + duration_seconds(ALERTS[uid].for_)
            + duration_seconds(alerting.critical.group_wait))


def test_every_benched_alert_is_critical_and_known():
    from lab.bench_alerting import SCENARIOS

    assert {s.uid for s in SCENARIOS} == set(WINDOW_FILL_SECONDS)
    assert all(ALERTS[uid].severity == "critical" for uid in WINDOW_FILL_SECONDS)


@pytest.mark.parametrize("uid", sorted(WINDOW_FILL_SECONDS))
def test_worst_case_detection_is_within_4_minutes(uid):
    assert worst_case_seconds(uid) <= BUDGET_SECONDS, f"{uid}: {worst_case_seconds(uid)}s"


def test_the_documented_figures_are_the_computed_ones():
    doc = (REPO / "docs" / "alerting.md").read_text()
    for uid in WINDOW_FILL_SECONDS:
        figure = f"| `{uid}` |"
        row = next((line for line in doc.splitlines() if line.startswith(figure)), None)
        assert row is not None, f"docs/alerting.md has no detection row for {uid}"
        assert f"**{worst_case_seconds(uid):g} s**" in row, row


def _with_for(alert, duration: str):
    return alert.model_copy(update={"for_": duration})


@pytest.fixture(scope="module")
def promtool(tmp_path_factory):
    return extract("prometheus", "promtool", tmp_path_factory.mktemp("promtool"))


@pytest.mark.parametrize("uid", sorted(BLIP_FIXTURES))
def test_the_blip_breaches_the_condition_and_only_for_keeps_it_silent(uid, promtool, tmp_path):
    """With `for` cut to 30s the blip fixture must fail: the blip did make the condition true."""
    shortened = [a if a.uid != uid else _with_for(a, "30s") for a in load_catalog()]
    document = yaml.safe_load(render_rules(shortened, "https://runbooks.example", "http://grafana.example:3000"))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "sentinel-alerts.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    fixture = yaml.safe_load((REPO / "files" / "alerting" / "tests" / f"{uid}.yml").read_text())
    fixture["tests"] = [t for t in fixture["tests"] if t["name"] == BLIP_FIXTURES[uid]]
    assert fixture["tests"], f"no blip test named {BLIP_FIXTURES[uid]!r} in the fixture of {uid}"
    (tmp_path / "blip.yml").write_text(yaml.safe_dump(fixture))
    result = subprocess.run([promtool, "test", "rules", "blip.yml"], capture_output=True, text=True, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and ALERTS[uid].name in output, output
