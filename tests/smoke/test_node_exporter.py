"""node_exporter runs on every host and Prometheus scrapes it."""

import pytest

pytestmark = pytest.mark.lab


def test_unit_active_and_enabled(any_host):
    service = any_host.testinfra.service("node_exporter")
    assert service.is_running
    assert service.is_enabled


def test_serves_host_and_systemd_metrics(any_host):
    body = any_host.curl(any_host.local("node_exporter.metrics", "/metrics"))
    assert "node_memory_MemAvailable_bytes" in body
    assert 'node_systemd_unit_state{name="node_exporter.service",state="active"' in body


def test_textfile_directory_exists(any_host):
    directory = any_host.testinfra.file(any_host.settings.node_exporter.textfile_dir)
    assert directory.is_directory
    assert directory.user == "node_exporter"
