"""Tracing benchmark on a converged lab: prints figures, asserts nothing.

    python -m lab.bench_tracing [--rates 3000,6000,10000,15000,20000] [--seconds 10] [--senders 2] [--batch 512]
    (make bench runs it after lab.bench; hold the lab lock)

- spans/s through backend-style OTLP load -> collector gateway -> Jaeger, stepped up
  until the first step with loss: each step sends for --seconds from --senders
  processes (lab/span_load.py: OTLP/HTTP protobuf requests of --batch spans, whole
  traces of 3, each sender its own trace ids), sent = spans the gateway acknowledged,
  stored = those spans read back from Jaeger by trace id once the gateway's queue
  has drained; a rate counts only with sent = stored and nothing refused;
- two rates per step: what the gateway accepted (sent / sending window) and what
  reached Jaeger (stored / (window + drain)): the gateway answers once a request is
  in its disk queue, so it can take more than Jaeger writes, and the queue drains
  after the step (the `drain` column);
- the gateway's and Jaeger's CPU (from /proc/<pid>/stat on the telemetry host, over
  ssh) and resident memory, and the senders' own CPU;
- time from a request to the stand-in until its trace is queryable in Jaeger.

Traffic goes only to lab addresses. Run it when no one else loads the lab.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from lab.process_usage import unit_cpu_and_rss
from lab.span_load import SPANS_PER_TRACE, run_senders, traces_per_request
from tests.e2e.tracing_load import jaeger_trace, until

DRAIN_DEADLINE_S = 900  # the gateway's disk queue may hold minutes of spans when Jaeger is the slower
READERS = 8  # threads reading traces back from Jaeger after a step (not while it sends)
LATENCY_SAMPLES = 10


class StoreReader:
    """Counts the spans Jaeger holds for given traces, several queries at a time."""

    def __init__(self, query: str):
        self.query, self.local = query, threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "http"):
            from lab.operator_tls import operator_session  # here: see main()

            self.local.http = operator_session()  # Jaeger's query API asks for a client certificate
            self.local.http.trust_env = False
        return self.local.http

    def _spans(self, trace_id: str) -> int:
        found = jaeger_trace(self._session(), self.query, trace_id)
        return len({span["spanID"] for span in found["spans"]}) if found else 0

    def stored(self, trace_ids: list[str]) -> int:
        with ThreadPoolExecutor(READERS) as pool:
            return sum(pool.map(self._spans, trace_ids))

    def settle(self, trace_ids: list[str], expected: int, deadline_s: float) -> int:
        """The stored count once it reaches `expected`, or once it stops moving (then what is missing is lost)."""
        last, end = -1, time.monotonic() + deadline_s
        while True:
            count = self.stored(trace_ids)
            if count >= expected or count == last or time.monotonic() > end:
                return count
            last = count
            time.sleep(5)


def gateway_backlog(tel) -> int:
    """Requests waiting in the gateway's traces queue (its own metric, read on the telemetry host)."""
    port = tel.settings.otel_collector.metrics_port
    metrics = tel.testinfra.check_output(f"curl -fsS http://{tel.settings.address}:{port}/metrics")
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
               if line.startswith("otelcol_exporter_queue_size{") and 'data_type="traces"' in line)


def drained(reader: StoreReader, tel, tails: list[str]) -> bool:
    """The gateway's queue is empty and the last acknowledged traces of every sender are in Jaeger."""
    return gateway_backlog(tel) == 0 and reader.stored(tails) == len(tails) * SPANS_PER_TRACE


def throughput(reader: StoreReader, tel, gateway: str, rates: list[int], seconds: float, senders: int, batch: int) -> None:
    per_request = traces_per_request(batch)
    print(f"sender: {senders} processes, OTLP/HTTP protobuf, {per_request * SPANS_PER_TRACE} spans a request "
          f"({per_request} traces of {SPANS_PER_TRACE}), paced per request, {seconds:.0f} s a step")
    print(f"{'target':>7} {'accepted':>8} {'stored':>7} {'sent':>7} {'stored':>7} {'refused':>7} {'drain':>6} "
          f"{'gw CPU':>6} {'gw RSS':>6} {'jaeger CPU':>10} {'jaeger RSS':>10} {'senders CPU':>11}")
    print(f"{'spans/s':>7} {'spans/s':>8} {'spans/s':>7} {'':>7} {'':>7} {'':>7} {'s':>6} "
          f"{'%':>6} {'MiB':>6} {'%':>10} {'MiB':>10} {'%':>11}")
    best = 0
    for rate in rates:
        until(lambda: gateway_backlog(tel) == 0, DRAIN_DEADLINE_S)  # each step starts with an empty queue
        gw0, _ = unit_cpu_and_rss(tel, "otelcol")
        jg0, _ = unit_cpu_and_rss(tel, "jaeger")
        results = run_senders(gateway, f"bench-{secrets.token_hex(4)}", rate, seconds, senders, per_request)
        gw1, gw_rss = unit_cpu_and_rss(tel, "otelcol")
        sent = sum(r.acknowledged_spans for r in results)
        refused = sum(r.refused_spans for r in results)
        started, ended = min(r.started for r in results), max(r.ended for r in results)
        window = ended - started
        tails = [trace_id for r in results for trace_id in r.trace_ids[-10:]]
        until(lambda: drained(reader, tel, tails), DRAIN_DEADLINE_S, 1.0)
        drain = time.monotonic() - ended
        jg1, jg_rss = unit_cpu_and_rss(tel, "jaeger")
        stored = reader.settle([t for r in results for t in r.trace_ids], sent, DRAIN_DEADLINE_S)
        lossless = stored == sent and not refused
        verdict = "" if lossless else ("  LOSS" if stored != sent else "  REFUSED")
        print(f"{rate:>7} {sent / window:>8.0f} {stored / (window + drain):>7.0f} {sent:>7} {stored:>7} {refused:>7} "
              f"{drain:>6.0f} {100 * (gw1 - gw0) / window:>6.1f} {gw_rss / 1024:>6.0f} "
              f"{100 * (jg1 - jg0) / (window + drain):>10.1f} {jg_rss / 1024:>10.0f} "
              f"{100 * sum(r.cpu_seconds for r in results) / window:>11.1f}{verdict}")
        errors = sorted({e for r in results for e in r.errors})
        if errors:
            print(f"        gateway answers other than 200: {', '.join(errors[:5])}")
        if not lossless:
            break
        best = max(best, int(sent / window))
    print(f"highest rate accepted with sent = stored: {best} spans/s")
    print("notes: `accepted` = spans the gateway acknowledged / sending window; `stored spans/s` = spans stored / "
          "(window + drain), drain = from the last request until the gateway's queue is empty and the last traces "
          "are in Jaeger (polled every second or so). The gateway's CPU is over the sending window, Jaeger's over "
          "window + drain (it writes while the queue drains), % of one core; RSS at the end. The lab has 2 cores in "
          "all, shared by the senders, the gateway, Jaeger and the lab's other hosts: `senders CPU` is what the load "
          "itself took from them.")


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="3000,6000,10000,15000,20000", help="spans/s, one step each, until the first loss")
    parser.add_argument("--seconds", type=float, default=10, help="sending time per step")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--batch", type=int, default=512, help="spans per OTLP request at most (whole traces)")
    args = parser.parse_args()
    # Imported here, not at the top: the senders are spawned processes, which import this module again,
    # and tests.stack loads pyinfra, whose gevent patching would then run in every sender too.
    from lab.operator_tls import operator_session
    from tests.stack import hosts_in

    tel, app = hosts_in("telemetry")[0], hosts_in("app")[0]
    if tel.settings.traces.store != "jaeger":
        raise SystemExit("the tracing benchmark reads traces back from Jaeger; this inventory chose Tempo")
    http = operator_session()
    http.trust_env = False
    query = f"https://{tel.settings.address}:{tel.settings.traces.jaeger.query_port}"
    gateway = f"https://{tel.settings.address}:{tel.settings.otel_collector.http_port}"  # the operator's certificate (span_load)
    backend = f"http://{app.settings.address}:{app.settings.backend.port}"
    print("== tracing: collector gateway -> Jaeger ==")
    throughput(StoreReader(query), tel, gateway, [int(r) for r in args.rates.split(",")], args.seconds, args.senders, args.batch)
    time_to_queryable(http, backend, query)


if __name__ == "__main__":
    main()
