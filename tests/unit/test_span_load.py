"""The tracing benchmark's sender (lab/span_load.py): how a rate is split, what a request holds, what counts as sent.

The benchmark itself needs the lab; these prove the counting it relies on, against a stand-in
gateway on the loopback.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from lab.span_load import SPANS_PER_TRACE, build_request, plan, send, share, traces_per_request

pytestmark = pytest.mark.tracing


def test_a_rate_is_split_evenly_over_the_senders_and_the_shares_sum_to_it():
    assert share(10000, 3) == pytest.approx([10000 / 3] * 3)
    assert sum(share(10000, 3)) == pytest.approx(10000)
    with pytest.raises(ValueError):
        share(3000, 0)


def test_a_request_holds_whole_traces_up_to_the_sdk_batch():
    assert traces_per_request(512) == 170  # 510 spans: the SDK's 512 at most, no trace split over two requests
    assert traces_per_request(3) == 1
    with pytest.raises(ValueError):
        traces_per_request(2)
    assert plan(400, 170) == [170, 170, 60]
    assert plan(340, 170) == [170, 170]
    assert plan(0, 170) == []


def test_a_request_carries_its_traces_as_a_server_span_and_its_client_children():
    body, trace_ids = build_request("bench-x", 4, 100, 1_700_000_000_000_000_000)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    (resource_spans,) = request.resource_spans
    assert {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"] == "bench-x"
    spans = resource_spans.scope_spans[0].spans
    assert len(spans) == 4 * SPANS_PER_TRACE and len(set(trace_ids)) == 4
    assert {span.trace_id.hex() for span in spans} == set(trace_ids)
    assert len({span.span_id for span in spans}) == len(spans)
    for trace_id in trace_ids:
        trace = [span for span in spans if span.trace_id.hex() == trace_id]
        (root,) = [span for span in trace if not span.parent_span_id]
        assert root.kind == Span.SPAN_KIND_SERVER
        assert all(span.parent_span_id == root.span_id and span.kind == Span.SPAN_KIND_CLIENT for span in trace if span is not root)
    indexes = sorted(a.value.int_value for span in spans for a in span.attributes if a.key == "load.index")
    assert indexes == [100, 101, 102, 103]


class _Gateway(BaseHTTPRequestHandler):
    """Answers like the collector's OTLP receiver: 200, optionally with a partial success; or an error status."""

    protocol_version = "HTTP/1.1"
    answers: list[tuple[int, int]] = []  # (status, rejected spans), one per request, the last one repeated
    received: list[bytes] = []

    def do_POST(self):
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        status, rejected = self.answers[min(len(self.received), len(self.answers)) - 1]
        body = ExportTraceServiceResponse()
        body.partial_success.rejected_spans = rejected
        payload = body.SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class _Now:
    def wait(self, timeout=None):
        return 0


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    _Gateway.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_only_spans_the_gateway_took_whole_count_as_sent(gateway):
    # 5 requests of 2 traces: taken, refused with 503, partly rejected, taken, taken.
    _Gateway.answers = [(200, 0), (503, 0), (200, 1), (200, 0)]
    result = send(gateway, "bench-x", rate_per_s=3000, seconds=10 * SPANS_PER_TRACE / 3000, per_request=2, go=_Now())
    assert result.requests == len(_Gateway.received) == 5
    assert result.acknowledged_spans == 3 * 2 * SPANS_PER_TRACE
    assert result.refused_spans == 2 * 2 * SPANS_PER_TRACE
    assert result.errors == ["HTTP 503", "1 rejected"]
    sent_ids = []
    for body in [_Gateway.received[i] for i in (0, 3, 4)]:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        sent_ids += list(dict.fromkeys(span.trace_id.hex() for span in request.resource_spans[0].scope_spans[0].spans))
    assert result.trace_ids == sent_ids  # the store is asked for exactly the acknowledged traces
