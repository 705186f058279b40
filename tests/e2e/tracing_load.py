"""A bounded trace load through the collector gateway, with exact counts of what was sent.

Shared by the tracing end-to-end tests and the benchmark (lab/bench_tracing.py):
`send_traces` exports N traces of `spans_per_trace` spans at a fixed rate with the
OpenTelemetry SDK over OTLP/HTTP, and counts a span as sent only when the gateway
acknowledged its batch. `stored_spans` asks Jaeger's query API for each trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from lab import operator_tls


@dataclass
class Sent:
    trace_ids: list[str] = field(default_factory=list)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)  # (trace id, span id) the gateway answered for
    acknowledged_spans: int = 0
    refused_spans: int = 0
    seconds: float = 0.0


class _CountingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, sent: Sent):
        self.inner, self.sent = inner, sent

    def export(self, spans):
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.sent.acknowledged_spans += len(spans)
            self.sent.acknowledged.update(_ids(span.get_span_context()) for span in spans)
        else:
            self.sent.refused_spans += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _ids(context) -> tuple[str, str]:
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def send_traces(gateway: str, service: str, count: int, rate_per_s: float, spans_per_trace: int = 3,
                tls: tuple[str, str, str] | None = None) -> Sent:
    """`count` traces at `rate_per_s` to the gateway's OTLP/HTTP base URL; returns what was acknowledged.

    `tls`: (CA, certificate, key) for an https gateway, which requires a client certificate of the
    environment CA (the lab's tests use the operator's: lab/operator_tls.py), and the operator's OTLP token."""
    sent = Sent()
    # The gateway also asks each sender for its bearer token (roles/_otlp_tokens.py): the operator's.
    headers = operator_tls.otlp_headers() if tls else None
    files = {"certificate_file": tls[0], "client_certificate_file": tls[1], "client_key_file": tls[2]} if tls else {}
    # Not the environment's proxy or CA bundle: requests would put REQUESTS_CA_BUNDLE before the CA given here.
    session = requests.Session()
    session.trust_env = False
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "lab"}))
    provider.add_span_processor(
        BatchSpanProcessor(_CountingExporter(OTLPSpanExporter(endpoint=f"{gateway}/v1/traces", timeout=10, session=session, headers=headers, **files), sent), max_queue_size=100000)
    )
    tracer = provider.get_tracer("sentinel-tracing-load")
    start = time.monotonic()
    for i in range(count):
        with tracer.start_as_current_span("GET /load/:n", kind=trace.SpanKind.SERVER, attributes={"http.route": "/load/:n", "load.index": i}) as root:
            for child in range(spans_per_trace - 1):
                with tracer.start_as_current_span(f"SELECT step{child}", kind=trace.SpanKind.CLIENT):
                    pass
            sent.trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        time.sleep(max(0.0, start + (i + 1) / rate_per_s - time.monotonic()))
    provider.force_flush()
    provider.shutdown()
    sent.seconds = time.monotonic() - start
    return sent


def jaeger_trace(http: requests.Session, query: str, trace_id: str) -> dict | None:
    """The trace from Jaeger's query API, or None when it is not stored (yet) or Jaeger is still starting."""
    try:
        response = http.get(f"{query}/api/traces/{trace_id}", timeout=10)
    except requests.ConnectionError:
        return None  # just restarted: Badger opens before the query port listens
    if response.status_code in (404, 502, 503, 504):  # not stored, or Jaeger behind its front restarting
        return None
    response.raise_for_status()
    data = response.json().get("data") or []
    return data[0] if data else None


def stored_span_ids(http: requests.Session, query: str, trace_ids: list[str]) -> set[tuple[str, str]]:
    """(trace id, span id) of every span Jaeger holds for these traces."""
    stored = set()
    for trace_id in trace_ids:
        found = jaeger_trace(http, query, trace_id)
        stored |= {(trace_id, span["spanID"]) for span in found["spans"]} if found else set()
    return stored


def stored_spans(http: requests.Session, query: str, trace_ids: list[str]) -> int:
    """Distinct spans Jaeger holds for these traces."""
    return len(stored_span_ids(http, query, trace_ids))


def until(check, deadline_s: float, every_s: float = 1.0):
    """Poll `check` until it returns a truthy value or the deadline passes; returns the last value."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(every_s)
