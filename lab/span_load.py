"""Span load for the tracing benchmark: several sender processes, many spans per OTLP request.

One Python process driving the OpenTelemetry SDK span by span tops out near
3,000 spans/s on the lab, so the benchmark measured its sender, not the
collector. Here each sender process builds the OTLP/HTTP protobuf request a
backend's SDK would send for a batch of finished traces (a SERVER span with two
CLIENT children each, the resource and attributes of the SDK load) and posts it
to the gateway: no per-span SDK bookkeeping, `traces_per_request` traces per
request, the shape of the SDK's BatchSpanProcessor at its 512-span export batch.

A span counts as sent only when the gateway answered its request with 200 and
did not list it as rejected (OTLP partial success); each sender reports the
trace ids of what was acknowledged, so the store can be asked for exactly those.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass, field

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

SPANS_PER_TRACE = 3  # GET /load/:n (SERVER) and two SELECTs (CLIENT), as tests/e2e/tracing_load.py sends
SDK_EXPORT_BATCH = 512  # the SDK's BatchSpanProcessor max_export_batch_size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)


def traces_per_request(spans_per_request: int = SDK_EXPORT_BATCH, spans_per_trace: int = SPANS_PER_TRACE) -> int:
    """Whole traces that fit in one request of at most `spans_per_request` spans."""
    if spans_per_request < spans_per_trace:
        raise ValueError(f"a request of {spans_per_request} spans cannot hold one trace of {spans_per_trace}")
    return spans_per_request // spans_per_trace


def share(total_per_s: float, senders: int) -> list[float]:
    """`total_per_s` split evenly over `senders` processes (the shares sum to the total)."""
    if senders < 1:
        raise ValueError("at least one sender")
    return [total_per_s / senders] * senders


def plan(traces: int, per_request: int) -> list[int]:
    """Traces in each request for `traces` traces, full requests first, the remainder last."""
    full, rest = divmod(traces, per_request)
    return [per_request] * full + ([rest] if rest else [])


def _attr(key: str, value) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_request(service: str, traces: int, first_index: int, end_ns: int) -> tuple[bytes, list[str]]:
    """One OTLP request of `traces` traces of SPANS_PER_TRACE spans, ending at `end_ns`; (body, trace ids)."""
    spans, trace_ids = [], []
    for n in range(traces):
        trace_id, root_id = os.urandom(16), os.urandom(8)
        start = end_ns - 4_000_000
        spans.append(Span(trace_id=trace_id, span_id=root_id, name="GET /load/:n", kind=Span.SPAN_KIND_SERVER,
                          start_time_unix_nano=start, end_time_unix_nano=end_ns,
                          attributes=[_attr("http.route", "/load/:n"), _attr("load.index", first_index + n)]))
        for child in range(SPANS_PER_TRACE - 1):
            child_start = start + (child + 1) * 1_000_000
            spans.append(Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=root_id,
                              name=f"SELECT step{child}", kind=Span.SPAN_KIND_CLIENT,
                              start_time_unix_nano=child_start, end_time_unix_nano=child_start + 500_000))
        trace_ids.append(trace_id.hex())
    resource = Resource(attributes=[_attr("service.name", service), _attr("deployment.environment", "lab"),
                                    _attr("telemetry.sdk.language", "python")])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(scope=InstrumentationScope(name="sentinel-span-load"), spans=spans)])])
    return request.SerializeToString(), trace_ids


@dataclass
class SenderResult:
    acknowledged_spans: int = 0
    refused_spans: int = 0
    requests: int = 0
    trace_ids: list[str] = field(default_factory=list)  # of acknowledged traces only
    started: float = 0.0  # time.monotonic(), the same clock in every process on Linux
    ended: float = 0.0
    cpu_seconds: float = 0.0  # the sender's own CPU: shows whether it was the limit
    errors: list[str] = field(default_factory=list)


def _rejected(body: bytes) -> int:
    response = ExportTraceServiceResponse()
    response.ParseFromString(body)
    return response.partial_success.rejected_spans


def send(gateway: str, service: str, rate_per_s: float, seconds: float, per_request: int, go) -> SenderResult:
    """Send rate_per_s spans/s for `seconds` (whole traces, `per_request` traces a request), paced per request.

    `go` is a multiprocessing Barrier: every sender builds its session first, and all start together.
    A request that falls behind its slot is sent at once; `achieved` then shows the shortfall.
    """
    result = SenderResult()
    http = requests.Session()
    http.trust_env = False
    if gateway.startswith("https://"):  # the gateway requires a client certificate of the environment CA
        from lab import operator_tls

        http.cert, http.verify = operator_tls.operator_kwargs()["cert"], operator_tls.operator_kwargs()["verify"]
        http.headers.update(operator_tls.otlp_headers())  # and a sender's bearer token (roles/_otlp_tokens.py)
    url = f"{gateway}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    traces_per_s = rate_per_s / SPANS_PER_TRACE
    go.wait()
    cpu0 = time.process_time()
    result.started = time.monotonic()
    done = 0
    for traces in plan(int(traces_per_s * seconds), per_request):
        done += traces
        # A batch leaves when its last trace has ended, as the SDK exports a full batch.
        time.sleep(max(0.0, result.started + done / traces_per_s - time.monotonic()))
        body, trace_ids = build_request(service, traces, done - traces, time.time_ns())
        spans = traces * SPANS_PER_TRACE
        result.requests += 1
        try:
            response = http.post(url, data=body, headers=headers, timeout=10)
        except requests.RequestException as error:
            result.refused_spans += spans
            result.errors.append(type(error).__name__)
            continue
        if response.status_code != 200:
            result.refused_spans += spans
            result.errors.append(f"HTTP {response.status_code}")
            continue
        rejected = _rejected(response.content)
        if rejected:  # OTLP partial success: which spans is not said, so the whole request is not counted as sent
            result.refused_spans += spans
            result.errors.append(f"{rejected} rejected")
            continue
        result.acknowledged_spans += spans
        result.trace_ids.extend(trace_ids)
    result.ended = time.monotonic()
    result.cpu_seconds = time.process_time() - cpu0
    return result


def _sender(args, go, results) -> None:
    index, gateway, service, rate, seconds, per_request = args
    results.put((index, send(gateway, service, rate, seconds, per_request, go)))


def run_senders(gateway: str, service: str, total_per_s: float, seconds: float, senders: int, per_request: int) -> list[SenderResult]:
    """`senders` processes (spawned: the caller holds ssh threads) sharing `total_per_s`; their results."""
    context = multiprocessing.get_context("spawn")
    go, results = context.Barrier(senders + 1), context.Queue()
    processes = [context.Process(target=_sender, args=((i, gateway, f"{service}-s{i}", rate, seconds, per_request), go, results))
                 for i, rate in enumerate(share(total_per_s, senders))]
    for process in processes:
        process.start()
    go.wait(timeout=60)  # every sender has imported and is ready: the clock starts for all at once
    collected = dict(results.get(timeout=seconds + 120) for _ in processes)
    for process in processes:
        process.join()
    return [collected[i] for i in range(senders)]
