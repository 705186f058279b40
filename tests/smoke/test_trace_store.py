"""The trace store the inventory chose (traces.store) runs on the telemetry hosts: Jaeger or Tempo."""

import pytest

from roles._tls import TlsPaths

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
        # The query API answers (an empty service list is fine on a fresh store): Jaeger itself on the loopback;
        # its front admits the host's own identities (node_exporter's) to none of its paths (roles/jaeger/front.py).
        assert '"data"' in stores_host.curl(stores_host.local("jaeger.query_local", "/api/services"))
    else:
        assert stores_host.curl(stores_host.local("tempo.http_local", "/ready")).strip() == "ready"  # behind its front


def test_metrics_for_prometheus(stores_host):
    traces = stores_host.settings.traces
    listener = "jaeger.metrics_local" if traces.store == "jaeger" else "tempo.http_local"
    assert "# TYPE" in stores_host.curl(stores_host.local(listener, "/metrics"))


def test_tempo_credentials_are_private(stores_host):
    if _store(stores_host) != "tempo" or stores_host.settings.traces.tempo.backend != "s3":
        pytest.skip("only Tempo with S3 keeps credentials")
    creds = stores_host.testinfra.file("/etc/tempo/s3.env")
    assert (creds.user, creds.group, creds.mode) == ("root", "tempo", 0o640)
    assert "TEMPO_S3" not in stores_host.testinfra.file("/etc/tempo/config.yaml").content_string.replace("${TEMPO_S3", "")


def test_the_store_s_front_serves_its_listeners_and_refuses_an_identity_with_no_row(stores_host):
    store = _store(stores_host)
    assert stores_host.testinfra.service(f"{store}-front").is_running
    node = TlsPaths("node_exporter")  # an identity this host holds that has no row on the store's front
    paths = {"jaeger": (("jaeger.query", "/api/services"), ("jaeger.metrics", "/metrics"), ("jaeger.otlp_http", "/v1/traces")),
             "tempo": (("tempo.http", "/api/echo"), ("tempo.http", "/metrics"), ("tempo.otlp_http", "/v1/traces"))}[store]
    for listener, path in paths:
        assert stores_host.listening(listener), listener
        status = stores_host.testinfra.check_output("curl -s -o /dev/null -w '%%{http_code}' --cacert %s --cert %s --key %s %s",
                                                    node.ca, node.cert, node.key, stores_host.local(listener, path))
        assert status == "403", (listener, status)
