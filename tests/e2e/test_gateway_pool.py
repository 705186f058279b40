"""The collector gateway pool (issue 26): one gateway stopped under a bounded load loses nothing.

The lab has two telemetry hosts, each running a gateway; the stores run on tel1 only
(group_data/lab.py `stores`). app1's agent balances over both (OTLP/gRPC, round_robin over every
address of the pool's name) with its disk queue. The drill, on app1 as the backend would load it:
contract-shaped log lines appended to the backend's log file (the agent tails it), and spans
posted to the agent's own OTLP/HTTP receiver on 127.0.0.1 with the backend's certificate, both
at a fixed rate; 6 s in, the stores' host's gateway is stopped and stays down. Counted while it
is still down: every line and every acknowledged span is stored, once, and the other gateway
took the load meanwhile (its accepted counts rose). Only then is the gateway started again.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid

import pytest
import requests

from lab import operator_tls
from lab.hosts import ssh_argv
from tests.e2e.test_crash import LINES, _stored_seqs, _store_url, _writer
from tests.e2e.test_logs import count, wait_for
from tests.e2e.tracing_load import stored_span_ids, until
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.ha, pytest.mark.tracing]

TRACES, TRACE_RATE, SPANS_PER_TRACE = 400, 20.0, 3  # bounded: 1,200 spans over 20 s, beside the 20 s of lines
STOP_AFTER_S = 6
DELIVERY_DEADLINE_S = 240  # a request the stopped gateway failed is retried after 1 s, backing off to 30 s

# Runs on the app host: TRACES traces of SPANS_PER_TRACE spans, one OTLP/HTTP JSON request each, to the
# agent's receiver with the backend's certificate (root reads its key); prints the acknowledged
# (trace id, span id) pairs and the count of refused requests as JSON.
SENDER = r"""
import http.client, json, secrets, ssl, sys, time
url_port, count, rate, per, run, ca, cert, key = sys.argv[1:9]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
acknowledged, refused = [], 0
for i in range(int(count)):
    trace_id, now = secrets.token_hex(16), time.time_ns()
    spans = [{"traceId": trace_id, "spanId": secrets.token_hex(8), "name": f"pool-drill-{n}", "kind": 2,
              "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000)} for n in range(int(per))]
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": run}}]},
                               "scopeSpans": [{"scope": {"name": "gateway-pool-drill"}, "spans": spans}]}]}
    try:
        c = http.client.HTTPSConnection("127.0.0.1", int(url_port), context=context, timeout=10)
        c.request("POST", "/v1/traces", body=json.dumps(body), headers={"Content-Type": "application/json"})
        status = c.getresponse().status
        c.close()
    except OSError:
        status = None
    if status == 200:
        acknowledged += [[trace_id, s["spanId"]] for s in spans]
    else:
        refused += 1
    time.sleep(1 / float(rate))
print(json.dumps({"acknowledged": acknowledged, "refused": refused}))
"""


@pytest.fixture(scope="module")
def pool(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    gateways = hosts_in("telemetry")
    assert len(gateways) >= 2, "the lab's gateway pool needs two telemetry hosts (lab/paths.py)"
    stores = next(h for h in gateways if h.settings.stores.host in (None, h.name))
    return stores, gateways, hosts_in("app")[0]


def _sender(app, run: str) -> subprocess.Popen:
    from roles.backend.tls import TLS as BACKEND_TLS

    args = [str(app.settings.otel_collector.agent_http_port), str(TRACES), str(TRACE_RATE), str(SPANS_PER_TRACE), run,
            BACKEND_TLS.ca, BACKEND_TLS.cert, BACKEND_TLS.key]
    command = f"python3 -c {shlex.quote(SENDER)} " + " ".join(shlex.quote(a) for a in args)
    return subprocess.Popen(ssh_argv(app.name, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _accepted(host) -> float:
    """Spans and log records this host's collector accepted from the agents since it started (its own metrics)."""
    bind = next(l for l in host.topology.instances("otelcol.metrics") if l.host == host.name)
    metrics = requests.get(f"http://{bind.address}:{bind.port}/metrics", timeout=10).text
    names = ("otelcol_receiver_accepted_spans{", "otelcol_receiver_accepted_log_records{")
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(names) and 'receiver="otlp"' in line)


def test_one_gateway_stopped_under_load_loses_no_span_and_no_line(pool):
    stores, gateways, app = pool
    stopped, other = stores, next(g for g in gateways if g.name != stores.name)
    run = f"pool-{uuid.uuid4().hex[:10]}"
    store = _store_url(stores)
    query = f"https://{stores.settings.address}:{stores.settings.traces.jaeger.query_port}"
    jaeger = operator_tls.operator_session()
    jaeger.trust_env = False

    writer, sender = _writer(app, run), _sender(app, run)
    try:
        time.sleep(STOP_AFTER_S)
        before = _accepted(other)
        stopped.testinfra.check_output("systemctl stop otelcol")
        out, err = sender.communicate(timeout=180)
        assert sender.returncode == 0, err
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
        sent = json.loads(out)
        acknowledged = {tuple(pair) for pair in sent["acknowledged"]}
        trace_ids = sorted({t for t, _ in acknowledged})

        # Counted while the gateway is still down: what it had not sent, the agent sent to the other.
        logsql = f'testRun:="{run}"'
        wait_for(f"{LINES} lines stored", lambda: count(store, logsql) >= LINES, DELIVERY_DEADLINE_S, 3)
        time.sleep(5)  # a late duplicate would show now
        seqs = _stored_seqs(store, run)
        stored_spans = until(lambda: (found := stored_span_ids(jaeger, query, trace_ids)) >= acknowledged and found,
                             DELIVERY_DEADLINE_S, 10) or stored_span_ids(jaeger, query, trace_ids)
        took_over = _accepted(other) - before
        assert stopped.testinfra.run("systemctl is-active otelcol").stdout.strip() != "active", "the gateway came back during the count"
    finally:
        stopped.testinfra.run("systemctl start otelcol")
        for process in (writer, sender):
            if process.poll() is None:
                process.kill()

    print(f"gateway {stopped.name} stopped {STOP_AFTER_S} s in; {other.name} accepted {took_over:.0f} spans and records after; "
          f"lines: sent {LINES}, stored {len(seqs)} ({len(seqs) - len(set(seqs))} twice); spans: {len(acknowledged)} acknowledged "
          f"by the agent, {sent['refused']} requests refused, {len(stored_spans & acknowledged)} stored")
    assert sent["refused"] == 0, f"the agent refused {sent['refused']} requests while a gateway was down"
    assert len(acknowledged) == TRACES * SPANS_PER_TRACE
    assert sorted(set(seqs)) == list(range(LINES)), f"lines: sent {LINES}, stored {len(set(seqs))} distinct"
    assert len(seqs) == len(set(seqs)), f"{len(seqs) - len(set(seqs))} lines stored twice"
    assert acknowledged <= stored_spans, f"{len(acknowledged - stored_spans)} of {len(acknowledged)} spans not in Jaeger"
    assert took_over > 0, f"{other.name} accepted nothing after {stopped.name} stopped"
