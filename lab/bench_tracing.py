"""Tracing benchmark on a converged lab: prints figures, asserts nothing.

    python -m lab.bench_tracing          (make bench runs it after lab.bench)

- spans/s through stand-in load -> collector gateway -> Jaeger, at a few fixed rates,
  each step bounded (STEP_S seconds), with sent (acknowledged by the gateway) vs
  stored (read back from Jaeger by trace id): a rate counts only with sent = stored;
- the gateway's CPU (from /proc/<pid>/stat on the telemetry host, over ssh) and
  resident memory at each rate;
- time from a request to the stand-in until its trace is queryable in Jaeger.

Traffic goes only to lab addresses. Run it when no one else loads the lab.
"""

from __future__ import annotations

import secrets
import statistics
import time

import requests

from lab.process_usage import unit_cpu_and_rss
from tests.e2e.tracing_load import jaeger_trace, send_traces, stored_spans, until
from tests.stack import hosts_in

RATES_SPANS_PER_S = (300, 900, 1800, 3000)
SPANS_PER_TRACE = 3
STEP_S = 10
DRAIN_DEADLINE_S = 120
LATENCY_SAMPLES = 10


def throughput(http, tel, gateway: str, query: str) -> None:
    print(f"{'target spans/s':>15} {'achieved':>9} {'sent':>7} {'stored':>7} {'CPU %':>6} {'RSS MiB':>8}")
    for rate in RATES_SPANS_PER_S:
        traces_per_s = rate / SPANS_PER_TRACE
        count = int(traces_per_s * STEP_S)
        cpu_before, _ = unit_cpu_and_rss(tel, "otelcol")
        sent = send_traces(gateway, f"bench-{secrets.token_hex(4)}", count, traces_per_s, SPANS_PER_TRACE)
        cpu_after, rss = unit_cpu_and_rss(tel, "otelcol")
        until(lambda: stored_spans(http, query, sent.trace_ids[-20:]) == 20 * SPANS_PER_TRACE, DRAIN_DEADLINE_S)
        stored = stored_spans(http, query, sent.trace_ids)
        achieved = sent.acknowledged_spans / sent.seconds
        cpu_pct = 100 * (cpu_after - cpu_before) / sent.seconds
        verdict = "" if stored == sent.acknowledged_spans and not sent.refused_spans else "  LOSS"
        print(f"{rate:>15} {achieved:>9.0f} {sent.acknowledged_spans:>7} {stored:>7} {cpu_pct:>6.1f} {rss / 1024:>8.1f}{verdict}")
        if verdict:
            break
    print("(the load comes from one Python process: when `achieved` stays below the target, the sender is the limit)")


def time_to_queryable(http, backend: str, query: str) -> None:
    delays = []
    for _ in range(LATENCY_SAMPLES):
        trace_id = secrets.token_hex(16)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", "X-User-Id": "u-staff", "X-User-Role": "staff"}
        start = time.monotonic()
        http.get(f"{backend}/api/members", headers=headers, timeout=10)
        if until(lambda: jaeger_trace(http, query, trace_id), 60, 0.2):
            delays.append(time.monotonic() - start)
    if delays:
        print(f"request -> trace queryable in Jaeger: median {statistics.median(delays):.2f} s, "
              f"max {max(delays):.2f} s over {len(delays)}/{LATENCY_SAMPLES} requests")
    else:
        print("request -> trace queryable: no trace found within 60 s")


def main() -> None:
    tel, app = hosts_in("telemetry")[0], hosts_in("app")[0]
    if tel.settings.traces.store != "jaeger":
        raise SystemExit("the tracing benchmark reads traces back from Jaeger; this inventory chose Tempo")
    http = requests.Session()
    http.trust_env = False
    query = f"http://{tel.settings.address}:{tel.settings.traces.jaeger.query_port}"
    gateway = f"http://{tel.settings.address}:{tel.settings.otel_collector.http_port}"
    backend = f"http://{app.settings.address}:{app.settings.backend.port}"
    print("== tracing: collector gateway -> Jaeger ==")
    throughput(http, tel, gateway, query)
    time_to_queryable(http, backend, query)


if __name__ == "__main__":
    main()
