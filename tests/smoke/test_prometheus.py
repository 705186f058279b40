"""Prometheus is installed, configured as asked, valid and scraping."""

import json
import re

import pytest

pytestmark = pytest.mark.lab


def test_unit_active_and_enabled(monitoring_host):
    service = monitoring_host.testinfra.service("prometheus")
    assert service.is_running
    assert service.is_enabled


def test_listening(monitoring_host):
    assert monitoring_host.listening("prometheus.web")


def test_config_is_not_world_writable_and_only_group_readable(monitoring_host):
    config = monitoring_host.testinfra.file("/etc/prometheus/prometheus.yml")
    assert config.user == "root"
    assert config.group == "prometheus"
    assert config.mode & 0o002 == 0
    assert config.mode == 0o640


def test_promtool_accepts_the_live_config(monitoring_host):
    result = monitoring_host.testinfra.run("/opt/prometheus/current/promtool check config /etc/prometheus/prometheus.yml")
    assert result.rc == 0, result.stdout + result.stderr


def test_runs_the_pinned_version(monitoring_host):
    from roles._service.artifacts import load_versions

    info = json.loads(monitoring_host.curl(monitoring_host.local("prometheus.web", "/api/v1/status/buildinfo")))
    assert info["data"]["version"] == load_versions()["prometheus"]["version"]


def _bytes(size: str) -> int:
    """Bytes in a Prometheus size flag: "50GB" and "50GiB" are both 50 * 1024**3 to Prometheus."""
    number, unit = re.fullmatch(r"(\d+)([KMGTPE]?)i?B", size).groups()
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def test_retention_matches_group_data(monitoring_host):
    """Prometheus runs with the retention policy of group data (retention.prometheus)."""
    from roles._model import duration_seconds
    from roles.retention import prometheus_flags

    prom = monitoring_host.settings.prometheus
    wanted = prometheus_flags(monitoring_host.settings.retention)
    flags = json.loads(monitoring_host.curl(monitoring_host.local("prometheus.web", "/api/v1/status/flags")))["data"]
    # Compared as durations: Prometheus reports "14d" as "2w".
    assert duration_seconds(flags["storage.tsdb.retention.time"]) == duration_seconds(wanted["storage.tsdb.retention.time"])
    # Prometheus reads sizes in base 2 and reports them normalised: "50GB" as "50GiB", no limit as "0B".
    assert _bytes(flags["storage.tsdb.retention.size"]) == _bytes(wanted.get("storage.tsdb.retention.size", "0B"))
    assert flags["web.enable-remote-write-receiver"] == str(prom.remote_write_receiver).lower()


def test_its_own_target_is_up(monitoring_host):
    query = monitoring_host.curl(monitoring_host.local("prometheus.web", "/api/v1/query?query=up%7Bjob%3D%22prometheus%22%7D"))
    results = json.loads(query)["data"]["result"]
    assert results, "no sample for up{job=prometheus} yet"
    assert {r["metric"]["host"]: r["value"][1] for r in results}.get(monitoring_host.name) == "1"
