"""The trace store the inventory chose (traces.store) runs on the telemetry hosts: Jaeger or Tempo."""

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.tracing]


def _store(host):
    return host.settings.traces.store


def test_unit_active_and_enabled(stores_host):
    service = stores_host.testinfra.service(_store(stores_host))
    assert service.is_running
    assert service.is_enabled


def test_the_other_store_is_not_installed(stores_host):
    other = {"jaeger": "tempo", "tempo": "jaeger"}[_store(stores_host)]
    assert not stores_host.testinfra.service(other).is_running


def test_otlp_receivers_listen_beside_the_gateway(stores_host):
    store = stores_host.settings.traces.store
    for listener in (f"{store}.otlp_grpc", f"{store}.otlp_http"):
        assert stores_host.listening(listener), listener


def test_ready(stores_host):
    traces = stores_host.settings.traces
    if traces.store == "jaeger":
        stores_host.curl(stores_host.local("jaeger.health", "/status"))
        # The query API answers (an empty service list is fine on a fresh store).
        assert '"data"' in stores_host.curl(stores_host.local("jaeger.query", "/api/services"))
    else:
        assert stores_host.curl(stores_host.local("tempo.http", "/ready")).strip() == "ready"


def test_metrics_for_prometheus(stores_host):
    traces = stores_host.settings.traces
    listener = "jaeger.metrics" if traces.store == "jaeger" else "tempo.http"
    assert "# TYPE" in stores_host.curl(stores_host.local(listener, "/metrics"))


def test_tempo_credentials_are_private(stores_host):
    if _store(stores_host) != "tempo" or stores_host.settings.traces.tempo.backend != "s3":
        pytest.skip("only Tempo with S3 keeps credentials")
    creds = stores_host.testinfra.file("/etc/tempo/s3.env")
    assert (creds.user, creds.group, creds.mode) == ("root", "tempo", 0o640)
    assert "TEMPO_S3" not in stores_host.testinfra.file("/etc/tempo/config.yaml").content_string.replace("${TEMPO_S3", "")
