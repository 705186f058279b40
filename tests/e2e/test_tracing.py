"""Traces end to end on the lab: the Node backend -> collector agent/gateway -> Jaeger, span metrics
in Prometheus, nothing lost while the store is down, and a second converge changes nothing.

Traffic goes only to lab addresses. The lab inventory chooses traces.store = jaeger.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

import pytest
import requests

from lab import operator_tls

from tests import lab_session
from tests.e2e.tracing_load import jaeger_trace, send_traces, stored_spans, until
from tests.stack import hosts_in, stack_hosts

pytestmark = [pytest.mark.lab, pytest.mark.tracing]

STORE_DOWN_S = 60
LOAD_TRACES = 300
LOAD_RATE = 5.0  # traces/s: 300 traces over the 60 s the store is down
DELIVERY_DEADLINE_S = 240  # after the store is back: retries back off to 30 s, the queue then drains


@pytest.fixture(scope="module")
def http():
    session = requests.Session()
    session.trust_env = False
    # Prometheus and Jaeger's query API are https with client certificates: the operator's.
    session.cert, session.verify = operator_tls.operator_kwargs()["cert"], operator_tls.operator_kwargs()["verify"]
    yield session
    session.close()


@pytest.fixture(scope="module")
def lab(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    tel, app, mon = hosts_in("telemetry")[0], hosts_in("app")[0], hosts_in("monitoring")[0]
    if tel.settings.traces.store != "jaeger":
        pytest.skip("these tests read traces back from Jaeger; this inventory chose Tempo")
    return {
        "tel": tel,
        "query": f"https://{tel.settings.address}:{tel.settings.traces.jaeger.query_port}",
        # OTLP over TLS with a client certificate of the environment CA: the operator's (docs/tls.md).
        "gateway": f"https://{tel.settings.address}:{tel.settings.otel_collector.http_port}",
        "backend": f"http://{app.settings.address}:{app.settings.backend.port}",
        "prometheus": f"https://{mon.settings.address}:{mon.settings.prometheus.listen_port}",
    }


def test_a_request_to_the_backend_is_found_in_jaeger_by_its_trace_id(lab, http):
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", "X-User-Id": "u-staff", "X-User-Role": "staff"}
    http.get(f"{lab['backend']}/api/members", headers=headers, timeout=10).raise_for_status()

    def with_server_span():
        # The SERVER span ends after its CLIENT spans, so it may come in a later export batch.
        trace = jaeger_trace(http, lab["query"], trace_id)
        return trace if trace and any(s["operationName"] == "GET /api/members" for s in trace["spans"]) else None

    found = until(with_server_span, 60, 2.0) or jaeger_trace(http, lab["query"], trace_id)
    assert found, f"trace {trace_id} not in Jaeger within 60 s"
    server = [s for s in found["spans"] if s["operationName"] == "GET /api/members"]
    assert server, [s["operationName"] for s in found["spans"]]
    tags = {t["key"]: t["value"] for t in server[0]["tags"]}
    assert tags["http.route"] == "/api/members"
    assert tags["http.response.status_code"] == 200
    process = found["processes"][server[0]["processID"]]
    resource = {t["key"]: t["value"] for t in process["tags"]}
    assert process["serviceName"] == hosts_in("app")[0].settings.backend.service_name
    assert resource["deployment.environment"] == "lab"
    assert resource["service.version"] == hosts_in("app")[0].settings.backend.version
    # The database CLIENT spans are children of the SERVER span.
    assert any(s["operationName"].startswith("SELECT") for s in found["spans"])


def test_span_metrics_for_the_backend_routes_reach_prometheus(lab, http):
    for _ in range(5):
        http.get(f"{lab['backend']}/api/badges", headers={"X-User-Id": "u-staff", "X-User-Role": "staff"}, timeout=10)
    query = 'sum(traces_span_metrics_calls_total{service_name="sentinel-backend", http_route="/api/badges"})'

    def series():
        result = http.get(f"{lab['prometheus']}/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
        return result and float(result[0]["value"][1]) >= 5

    assert until(series, 90, 2.0), f"no span metrics in Prometheus for /api/badges: {query}"
    buckets = http.get(
        f"{lab['prometheus']}/api/v1/query",
        params={"query": 'count(traces_span_metrics_duration_milliseconds_bucket{http_route="/api/badges"})'},
        timeout=10,
    ).json()["data"]["result"]
    assert buckets, "no latency histogram for /api/badges"


def test_prometheus_scrapes_the_collectors_and_jaeger(lab, http):
    targets = http.get(f"{lab['prometheus']}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    up = {(t["labels"]["job"], t["labels"]["host"]) for t in targets if t["health"] == "up"}
    for host in stack_hosts():
        if {"telemetry", "app"} & set(host.groups):
            assert ("otelcol", host.name) in up
    assert ("jaeger", lab["tel"].name) in up


def test_no_otlp_request_to_the_agent_or_the_gateways_gets_an_error(lab, http):
    """Every OTLP request served since the collectors started was answered without an error: the
    backend's (the Node SDK's spans, OTLP/HTTP to its host's agent: no 404 for a signal path the agent
    does not serve, such as SDK metrics or logs) and the agents' (spans and log lines, OTLP/gRPC to the
    gateway pool). The collectors' own server metrics (telemetry level `detailed`) count HTTP requests
    by status code and route, gRPC calls by method and status; a request to a path the receiver does
    not serve has a status and no route."""
    for _ in range(5):
        http.get(f"{lab['backend']}/api/events", headers={"X-User-Id": "u-staff", "X-User-Role": "staff"}, timeout=10)
    port = lab["tel"].settings.otel_collector.agent_http_port
    # Prometheus 3 scrapes the collector with UTF-8 names, so the series keep OpenTelemetry's dotted ones.
    status, route = "http.response.status_code", "http.route"
    http_query = (f'sum by ("{status}", "{route}") '
                  f'({{__name__="http.server.request.duration_count", job="otelcol", "server.port"="{port}"}})')
    code, method = "rpc.response.status_code", "rpc.method"
    grpc_query = f'sum by ("{code}", "{method}") ({{__name__="rpc.server.call.duration_count", job="otelcol"}})'

    def counts(query: str, labels: tuple[str, str]) -> dict[tuple[str, str], float]:
        result = http.get(f"{lab['prometheus']}/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
        return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in result}

    by_status = lambda: counts(http_query, (status, route))
    by_code = lambda: counts(grpc_query, (code, method))
    traces, logs = "opentelemetry.proto.collector.trace.v1.TraceService/Export", "opentelemetry.proto.collector.logs.v1.LogsService/Export"
    # The check can fail: each sender's requests are counted, so a missing pipeline would show.
    served = lambda: (by_status().get(("200", "/v1/traces"), 0) > 0
                      and by_code().get(("OK", traces), 0) > 0 and by_code().get(("OK", logs), 0) > 0)
    assert until(served, 90, 5.0), f"the request counts lack the backend's spans or the agent's spans or logs: {by_status()} {by_code()}"
    errors = {key: n for key, n in by_status().items() if not key[0].startswith("2") and n > 0}
    errors |= {key: n for key, n in by_code().items() if key[0] != "OK" and n > 0}
    assert not errors, f"OTLP requests answered with an error (status, route or method): {errors}"
    refused = 'sum(otelcol_receiver_refused_spans{job="otelcol"}) + sum(otelcol_receiver_refused_log_records{job="otelcol"})'
    result = http.get(f"{lab['prometheus']}/api/v1/query", params={"query": refused}, timeout=10).json()["data"]["result"]
    assert result and float(result[0]["value"][1]) == 0, f"a collector refused spans or log records: {result}"


def test_nothing_is_lost_while_the_store_is_down(lab, http):
    tel = lab["tel"].testinfra
    service = f"tracing-e2e-{uuid.uuid4().hex[:8]}"
    result = {}

    def load():
        result["sent"] = send_traces(lab["gateway"], service, LOAD_TRACES, LOAD_RATE, tls=operator_tls.operator_files())

    tel.run_expect([0], "systemctl stop jaeger")
    try:
        sender = threading.Thread(target=load)
        sender.start()
        time.sleep(STORE_DOWN_S)
    finally:
        tel.run_expect([0], "systemctl start jaeger")
    sender.join(timeout=120)
    sent = result["sent"]
    assert sent.refused_spans == 0, "the gateway refused spans while the store was down"
    assert sent.acknowledged_spans == LOAD_TRACES * 3

    stored = until(lambda: stored_spans(http, lab["query"], sent.trace_ids) == sent.acknowledged_spans, DELIVERY_DEADLINE_S, 10)
    count = stored_spans(http, lab["query"], sent.trace_ids)
    assert stored, f"sent {sent.acknowledged_spans} spans in {len(sent.trace_ids)} traces, Jaeger holds {count}"
    assert count == sent.acknowledged_spans


def test_second_converge_changes_nothing_in_the_pipeline(lab):
    second = lab_session.converge()
    assert second.returncode == 0, second.output[-5000:]
    pipeline_hosts = {h.name for h in stack_hosts() if {"telemetry", "app"} & set(h.groups)}
    assert {h: n for h, n in second.changed.items() if h in pipeline_hosts} == {h: 0 for h in pipeline_hosts}, second.output[-5000:]
