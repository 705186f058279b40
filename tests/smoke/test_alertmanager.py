"""Alertmanager is installed, valid, fed by Prometheus, and Prometheus evaluates the whole catalog."""

import json

import pytest

from roles.alertmanager import SECRETS_DIR
from roles.alerting.catalog import load_catalog, with_for_at_most

pytestmark = [pytest.mark.lab, pytest.mark.alerting]


def test_unit_active_and_enabled(monitoring_host):
    service = monitoring_host.testinfra.service("alertmanager")
    assert service.is_running
    assert service.is_enabled


def test_ready(monitoring_host):
    monitoring_host.curl(monitoring_host.local("alertmanager.web", "/-/ready"))


def test_amtool_accepts_the_live_config(monitoring_host):
    result = monitoring_host.testinfra.run("/opt/alertmanager/current/amtool check-config /etc/alertmanager/alertmanager.yml")
    assert result.rc == 0, result.stdout + result.stderr


def test_secret_files_are_0640_root_alertmanager(monitoring_host):
    expected = set(monitoring_host.settings.alerting.secrets())
    present = set(monitoring_host.testinfra.check_output(f"ls {SECRETS_DIR}").split())
    assert present == expected
    for name in expected:
        secret = monitoring_host.testinfra.file(f"{SECRETS_DIR}/{name}")
        assert (secret.user, secret.group, secret.mode) == ("root", "alertmanager", 0o640)


def test_runs_the_pinned_version(monitoring_host):
    from roles._service.artifacts import load_versions

    status = json.loads(monitoring_host.curl(monitoring_host.local("alertmanager.web", "/api/v2/status")))
    assert status["versionInfo"]["version"] == load_versions()["alertmanager"]["version"]


def test_prometheus_sends_to_every_monitoring_alertmanager(monitoring_host):
    from tests.stack import hosts_in

    data = json.loads(monitoring_host.curl(monitoring_host.local("prometheus.web", "/api/v1/alertmanagers")))["data"]
    urls = {a["url"] for a in data["activeAlertmanagers"]}
    expected = {f"https://{h.settings.address}:{h.settings.alerting.listen_port}/api/v2/alerts" for h in hosts_in("monitoring")}
    assert urls == expected


def test_loaded_rules_match_the_catalog(monitoring_host):
    groups = json.loads(monitoring_host.curl(monitoring_host.local("prometheus.web", "/api/v1/rules?type=alert")))["data"]["groups"]
    loaded = {(r["name"], r["labels"]["uid"], r["labels"]["severity"], r["duration"]) for g in groups for r in g["rules"]}
    from roles._model import duration_seconds

    # The catalog as this environment renders it: the lab cuts every `for` (alerting.lab_rule_for_at_most).
    alerts = with_for_at_most(load_catalog(), monitoring_host.settings.alerting.lab_rule_for_at_most)
    expected = {(a.name, a.uid, a.severity, duration_seconds(a.for_)) for a in alerts}
    assert loaded == expected
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), [r["lastError"] for g in groups for r in g["rules"] if r.get("lastError")]
