"""The trace store the inventory chose (traces.store) runs on the telemetry hosts: Jaeger or Tempo."""

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.tracing]


def _store(host):
    return host.settings.traces.store


def test_unit_active_and_enabled(telemetry_host):
    service = telemetry_host.testinfra.service(_store(telemetry_host))
    assert service.is_running
    assert service.is_enabled


def test_the_other_store_is_not_installed(telemetry_host):
    other = {"jaeger": "tempo", "tempo": "jaeger"}[_store(telemetry_host)]
    assert not telemetry_host.testinfra.service(other).is_running


def test_otlp_receivers_listen_beside_the_gateway(telemetry_host):
    store = telemetry_host.settings.traces.store
    for listener in (f"{store}.otlp_grpc", f"{store}.otlp_http"):
        assert telemetry_host.listening(listener), listener


def test_ready(telemetry_host):
    traces = telemetry_host.settings.traces
    if traces.store == "jaeger":
        telemetry_host.curl(telemetry_host.local("jaeger.health", "/status"))
        # The query API answers (an empty service list is fine on a fresh store).
        assert '"data"' in telemetry_host.curl(telemetry_host.local("jaeger.query", "/api/services"))
    else:
        assert telemetry_host.curl(telemetry_host.local("tempo.http", "/ready")).strip() == "ready"


def test_metrics_for_prometheus(telemetry_host):
    traces = telemetry_host.settings.traces
    listener = "jaeger.metrics" if traces.store == "jaeger" else "tempo.http"
    assert "# TYPE" in telemetry_host.curl(telemetry_host.local(listener, "/metrics"))


def test_tempo_credentials_are_private(telemetry_host):
    if _store(telemetry_host) != "tempo" or telemetry_host.settings.traces.tempo.backend != "s3":
        pytest.skip("only Tempo with S3 keeps credentials")
    creds = telemetry_host.testinfra.file("/etc/tempo/s3.env")
    assert (creds.user, creds.group, creds.mode) == ("root", "tempo", 0o640)
    assert "TEMPO_S3" not in telemetry_host.testinfra.file("/etc/tempo/config.yaml").content_string.replace("${TEMPO_S3", "")
