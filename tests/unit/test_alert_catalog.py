"""The alert catalog is refused with the alert uid, the key and the fix when it is wrong."""

import copy

import pytest
import yaml

from roles._model import SettingsError
from roles.alerting import preflight
from roles.alerting.catalog import CATALOG_FILE, expr_problem, load_catalog, parse_catalog
from roles.alerting.rules import render_rules
from tests.mirror_binaries import extract

pytestmark = pytest.mark.alerting

DOCUMENT = yaml.safe_load(CATALOG_FILE.read_text())


def with_change(uid, **changes):
    document = copy.deepcopy(DOCUMENT)
    alert = next(a for a in document["alerts"] if a["uid"] == uid)
    for key, value in changes.items():
        if value is None:
            alert.pop(key)
        else:
            alert[key] = value
    return document


def test_the_catalog_has_what_operators_asked_for():
    alerts = {a.uid: a for a in load_catalog()}
    critical = {"backend-down", "backend-error-rate-critical", "db-pool-exhausted", "host-memory-high", "backend-latency-p95-high"}
    warning = {"backend-error-rate-warning", "db-slow-queries", "auth-failures-spike", "host-disk-space-low", "log-ingestion-delayed"}
    stack = {"prometheus-down", "loki-down", "tempo-down", "grafana-down", "grafana-backup-stale", "alertmanager-down"}
    assert critical | warning | stack | {"daily-digest"} <= set(alerts)
    assert {uid for uid in critical if alerts[uid].severity == "critical"} == critical
    assert {uid for uid in warning if alerts[uid].severity == "warning"} == warning
    assert [a.uid for a in alerts.values() if a.severity == "info"] == ["daily-digest"]


@pytest.mark.parametrize(
    "uid, changes, key, fix_word",
    [
        ("backend-down", {"severity": "page"}, "backend-down.severity", "critical"),
        ("backend-down", {"for": "2 minutes"}, "backend-down.for", "30s"),
        ("backend-down", {"expr": 'up{job="sentinel-backend" == 0'}, "backend-down.expr", "PromQL"),
        ("backend-down", {"expr": "rate(http_requests_total[5m]) >"}, "backend-down.expr", "PromQL"),
        ("backend-down", {"runbook": None}, "backend-down.runbook", "docs/runbooks/backend-down.md"),
        ("backend-down", {"runbook": "docs/runbooks/nope.md"}, "backend-down.runbook", "docs/runbooks/backend-down.md"),
        ("backend-down", {"summary": "backend down"}, "backend-down.summary", "$value"),
        ("backend-down", {"summary": "down {{ $value"}, "backend-down.summary", "{{"),
        ("backend-down", {"severitty": "critical"}, "backend-down.severitty", "severity"),
        ("backend-down", {"dashboard": "sentinel-backend"}, "backend-down.dashboard", "/d/"),
        ("backend-error-rate-warning", {"inhibited_by": "nope"}, "backend-error-rate-warning.inhibited_by", "uid"),
        ("backend-error-rate-warning", {"inhibited_by": "daily-digest"}, "backend-error-rate-warning.inhibited_by", "at least as severe"),
        ("backend-error-rate-warning", {"inhibited_by": "backend-error-rate-warning"}, "backend-error-rate-warning.inhibited_by", "one direction"),
        ("backend-error-rate-warning", {"inhibited_by": ["db-slow-queries", "nope"]}, "backend-error-rate-warning.inhibited_by", "uid"),
        # a loop is reported at the first of its alerts in the catalog
        ("otelcol-exporter-send-failed", {"inhibited_by": "log-ingestion-delayed"}, "log-ingestion-delayed.inhibited_by", "one direction"),
        ("backend-error-rate-warning", {"route_around": "slack"}, "backend-error-rate-warning.route_around", "integration"),
        ("backend-error-rate-warning", {"route_around": "integration"}, "backend-error-rate-warning.route_around", "sum by"),
        ("backend-error-rate-warning", {"inhibited_by": None, "inhibited_on": ["host"]}, "backend-error-rate-warning.inhibited_on", "inhibited_by"),
    ],
)
def test_bad_alert_names_uid_key_and_fix(uid, changes, key, fix_word):
    with pytest.raises(SettingsError) as err:
        parse_catalog(with_change(uid, **changes))
    assert err.value.key == f"catalog.yml:{key}"
    assert fix_word in err.value.fix


def test_duplicate_uid_is_refused():
    document = copy.deepcopy(DOCUMENT)
    twin = copy.deepcopy(document["alerts"][0])
    twin["name"] = "SomethingElse"
    document["alerts"].append(twin)
    with pytest.raises(SettingsError) as err:
        parse_catalog(document)
    assert err.value.key == f"catalog.yml:{twin['uid']}.uid"
    assert "duplicate" in err.value.problem


def test_expr_is_parsed_by_promql_parser():
    assert expr_problem('sum(rate(x{a="(" }[5m]))') is None  # brackets inside strings do not count
    assert expr_problem("sum(rate(x[5m])") == "unclosed left parenthesis"
    assert expr_problem("rate(up)") == "expected type matrix in call to function 'rate', got vector"
    assert expr_problem("sum by (a) (rate(x[30s1m]))") == "not a valid duration string: 30s1m"
    assert expr_problem("x and") is not None
    assert expr_problem("-x") is None


def test_rules_carry_labels_and_links():
    rules = yaml.safe_load(render_rules(load_catalog(), "https://git.example/ops/-/blob/main", "http://grafana:3000"))
    rule = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "SentinelBackendDown")
    assert rule["labels"] == {"severity": "critical", "uid": "backend-down"}
    assert rule["annotations"]["runbook_url"] == "https://git.example/ops/-/blob/main/docs/runbooks/backend-down.md"
    assert rule["annotations"]["dashboard_url"] == "http://grafana:3000/d/sentinel-performance"
    assert "$value" in rule["annotations"]["summary"]
    assert [g["name"] for g in rules["groups"]] == [
        "sentinel-backend", "hosts", "stack", "prometheus", "alertmanager", "collector", "stores", "digest", "watchdog",
    ]


def test_preflight_asks_promtool_and_names_the_alert(monkeypatch, tmp_path):
    """What only promtool refuses (an unknown template function; promql-parser already refuses bad PromQL)
    is reported with the alert's uid."""
    promtool = extract("prometheus", "promtool", tmp_path)
    monkeypatch.setenv("SENTINEL_PROMTOOL", str(promtool))
    bad = parse_catalog(with_change("db-slow-queries", summary="slow queries: {{ $value | nosuchfunc }}"))
    monkeypatch.setattr(preflight, "load_catalog", lambda: bad)
    with pytest.raises(SettingsError) as err:
        preflight.check_catalog("https://runbooks.example", "http://grafana:3000")
    assert err.value.key.startswith("catalog.yml:db-slow-queries")
    assert "nosuchfunc" in err.value.problem


def test_preflight_passes_the_real_catalog_through_promtool(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL_PROMTOOL", str(extract("prometheus", "promtool", tmp_path)))
    preflight.check_catalog("https://runbooks.example", "http://grafana:3000")


def test_every_runbook_exists_and_has_the_three_sections():
    from roles.alerting.catalog import REPO

    for alert in load_catalog():
        text = (REPO / alert.runbook).read_text()
        for heading in ("## What it means", "## First checks", "## How to resolve"):
            assert heading in text, f"{alert.runbook} lacks {heading!r}"


def test_every_alert_links_a_dashboard_that_exists_and_uids_are_unique():
    import json

    import pytest

    from roles._model import SettingsError
    from roles.alerting.catalog import load_catalog
    from roles.alerting.preflight import check_dashboard_links, dashboard_uids

    alerts = load_catalog()
    check_dashboard_links(alerts)  # the committed catalog and dashboards agree
    linked = next(a for a in alerts if a.dashboard and a.dashboard.startswith("/d/"))
    with pytest.raises(SettingsError, match="no committed dashboard"):
        check_dashboard_links((linked.model_copy(update={"dashboard": "/d/sentinel-perfomance"}),))
    twice = {"a.json": json.dumps({"uid": "same"}), "b.json": json.dumps({"uid": "same"})}
    with pytest.raises(SettingsError, match="also the uid of a.json"):
        dashboard_uids(twice)
