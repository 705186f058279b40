"""The OpenTelemetry Collector runs on every telemetry (gateway) and app (agent) host, on any inventory."""

import json

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.tracing]


@pytest.fixture
def collector_host(any_host):
    """Every host that runs a collector: the gateway (telemetry) or the agent (app)."""
    if not {"telemetry", "app"} & set(any_host.groups):
        pytest.skip(f"{any_host.name} runs no collector")
    return any_host


def test_unit_active_and_enabled(collector_host):
    service = collector_host.testinfra.service("otelcol")
    assert service.is_running
    assert service.is_enabled


def test_health_check_answers(collector_host):
    body = json.loads(collector_host.curl(collector_host.local("otelcol.health", "/")))
    assert body["status"] == "Server available"


def test_own_metrics_are_served_for_prometheus(collector_host):
    metrics = collector_host.curl(collector_host.local("otelcol.metrics", "/metrics"))
    assert "otelcol_process_uptime" in metrics


def test_gateway_listens_for_otlp(telemetry_host):
    for listener in ("gateway.otlp_grpc", "gateway.otlp_http"):
        assert telemetry_host.listening(listener), listener


def test_the_gateway_asks_for_a_token_beside_the_certificate(telemetry_host):
    """A certificate of the environment CA is not enough (roles/_otlp_tokens.py): the gateway's own
    certificate, sent from its host without a token and then with a made-up one, gets 401."""
    from roles.otel_collector import TLS

    listener = telemetry_host.topology.listener(telemetry_host.name, "gateway.otlp_http")
    url = f"https://{listener.address}:{listener.port}/v1/traces"
    base = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *TLS.curl_args(), "-H", "Content-Type: application/json",
            "--data", '{"resourceSpans":[]}']
    for extra in ([], ["-H", "Authorization: Bearer " + "x" * 43]):
        status = telemetry_host.testinfra.check_output(" ".join(["%s"] * (len(base) + len(extra) + 1)), *base, *extra, url)
        assert status == "401", (extra[-1:] and "a made-up token", status)


def test_the_token_files_are_readable_by_the_collector_only(collector_host):
    from roles.otel_collector import ACCEPTED_TOKENS, OWN_TOKEN

    path = ACCEPTED_TOKENS if "telemetry" in collector_host.groups else OWN_TOKEN
    token = collector_host.testinfra.file(path)
    assert (token.user, token.group, token.mode) == ("root", "otelcol", 0o640), path


def test_config_and_queue_belong_to_the_service(collector_host):
    config = collector_host.testinfra.file("/etc/otelcol/config.yaml")
    assert (config.user, config.group, config.mode) == ("root", "otelcol", 0o640)
    storage = collector_host.testinfra.file(f"{collector_host.settings.otel_collector.data_dir}/file_storage")
    assert storage.is_directory and storage.user == "otelcol"


def test_agent_can_read_the_backend_log(app_host):
    collector = app_host.settings.otel_collector
    assert collector.log_file_group in app_host.testinfra.user("otelcol").groups
    # As the service user: the file (once the backend wrote it) or at least its directory.
    directory = collector.log_file.rsplit("/", 1)[0]
    app_host.testinfra.run_expect([0], "runuser -u otelcol -- test -r %s", directory)
