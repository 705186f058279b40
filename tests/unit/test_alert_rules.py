"""Every alert of the catalog is proven by promtool: it fires when it should and stays silent when it should not.

The fixtures are promtool test files, one per alert uid, in files/alerting/tests/.
They run against the rule file rendered from the catalog, as deployed, with only
the summary annotation kept (promtool compares annotations exactly; the others
are links and prose).
"""

import shutil
import subprocess

import pytest
import yaml

from roles.alerting.catalog import REPO, load_catalog
from roles.alerting.rules import render_rules
from tests.mirror_binaries import extract

pytestmark = pytest.mark.alerting

FIXTURES = REPO / "files" / "alerting" / "tests"
# Fire by design (the daily digest carries the email, the Watchdog the dead man's switch's
# heartbeat); their fixtures prove they fire with and without traffic instead of a silent case.
ALWAYS_FIRING = {"daily-digest", "watchdog"}


def _tests_of(uid: str) -> list[dict]:
    return yaml.safe_load((FIXTURES / f"{uid}.yml").read_text())["tests"]


def _cases(uid: str, alertname: str) -> tuple[int, int]:
    """(firing checks, silent checks) of `alertname` in the alert's fixture."""
    firing = silent = 0
    for test in _tests_of(uid):
        for check in test.get("alert_rule_test") or []:
            if check["alertname"] != alertname:
                continue
            if check.get("exp_alerts"):
                firing += 1
            else:
                silent += 1
    return firing, silent


def test_every_alert_has_a_fixture_and_every_fixture_an_alert():
    uids = {a.uid for a in load_catalog()}
    fixtures = {p.stem for p in FIXTURES.glob("*.yml")}
    assert uids - fixtures == set(), "alerts without a promtool test in files/alerting/tests/"
    assert fixtures - uids == set(), "promtool tests for alerts that are not in the catalog"


@pytest.mark.parametrize("alert", load_catalog(), ids=lambda a: a.uid)
def test_fixture_proves_firing_and_silence(alert):
    firing, silent = _cases(alert.uid, alert.name)
    assert firing >= 1, f"{alert.uid}: no check where {alert.name} fires"
    if alert.uid not in ALWAYS_FIRING:
        assert silent >= 1, f"{alert.uid}: no check where {alert.name} stays silent"


def _summary_only(rules_text: str) -> str:
    document = yaml.safe_load(rules_text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    return yaml.safe_dump(document, sort_keys=False)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rules")
    rendered = render_rules(load_catalog(), "https://runbooks.example", "http://grafana.example:3000")
    (directory / "sentinel-alerts.yml").write_text(_summary_only(rendered))
    for fixture in FIXTURES.glob("*.yml"):
        shutil.copy(fixture, directory / f"test-{fixture.name}")
    return directory


@pytest.fixture(scope="module")
def promtool(tmp_path_factory):
    return extract("prometheus", "promtool", tmp_path_factory.mktemp("promtool"))


def test_rendered_rules_pass_promtool_check(promtool, tmp_path):
    rules = tmp_path / "sentinel-alerts.yml"
    rules.write_text(render_rules(load_catalog(), "https://runbooks.example", "http://grafana.example:3000"))
    result = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(load_catalog())} rules found" in result.stdout


@pytest.mark.parametrize("alert", load_catalog(), ids=lambda a: a.uid)
def test_promtool_unit_test(alert, promtool, rules_dir):
    result = subprocess.run(
        [promtool, "test", "rules", f"test-{alert.uid}.yml"], capture_output=True, text=True, cwd=rules_dir
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_rule_that_never_fires(promtool, rules_dir, tmp_path):
    """Guards the harness: a fixture expecting an alert the series cannot raise fails."""
    broken = yaml.safe_load((FIXTURES / "backend-down.yml").read_text())
    broken["tests"] = [t for t in broken["tests"] if t["name"].startswith("silent")]
    broken["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "critical", "uid": "backend-down"}}]
    (rules_dir / "test-broken.yml").write_text(yaml.safe_dump(broken))
    try:
        result = subprocess.run([promtool, "test", "rules", "test-broken.yml"], capture_output=True, text=True, cwd=rules_dir)
    finally:
        (rules_dir / "test-broken.yml").unlink()
    assert result.returncode != 0
