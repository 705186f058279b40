"""Logs end to end on the lab: the Node backend -> collector agent -> gateway -> VictoriaLogs, retention, erasure.

Marker `retention` (and `lab`). The lab runs VictoriaLogs (`logs.store: victorialogs`).
Every test marks its lines with a fresh id, so reruns never see each other's lines.
Queries go to VictoriaLogs' /select/logsql/query from the machine (the tel1 address), through the store's
authenticating front (https, roles/victorialogs/front.py): reads with the operator's certificate, the test's
own lines pushed with the gateway's (the only writer the front admits), erasure with the erasure identity.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from lab import operator_tls
from roles._pki import environment_ca
from roles.retention.logsql import longest_period
from roles.victorialogs import ENFORCE_UNIT
from tests import lab_session
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.retention]

STAFF = {"X-User-Id": "u-staff", "X-User-Role": "staff"}


@pytest.fixture(scope="module")
def stack(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    tel, app = hosts_in("telemetry")[0], hosts_in("app")[0]
    assert tel.settings.logs.store == "victorialogs", "the lab's log store is VictoriaLogs"
    store = f"https://{tel.settings.address}:{tel.settings.victorialogs.port}"
    backend = f"http://{app.settings.address}:{app.settings.backend.port}"
    return tel, app, store, backend


def identity(host: str | None, component: str) -> dict:
    """requests' kwargs with a certificate the environment CA issued (read on the controller, never issued here)."""
    leaves = environment_ca(operator_tls.ENVIRONMENT).directory / "leaves"
    name = f"{host}.{component}" if host else component
    return {"cert": (str(leaves / f"{name}.crt"), str(leaves / f"{name}.key")), "verify": operator_tls.operator_files()[0]}


def _reader(store: str) -> dict:
    return operator_tls.operator_kwargs() if store.startswith("https://") else {}


def _writer(store: str) -> dict:
    """The gateway's identity: the front admits /insert/* from it alone."""
    if not store.startswith("https://"):
        return {}
    from tests.stack import hosts_in

    return identity(hosts_in("telemetry")[0].name, "gateway")


def query(store: str, logsql: str, limit: int = 1000) -> list[dict]:
    response = requests.post(f"{store}/select/logsql/query", data={"query": logsql, "limit": str(limit)}, timeout=30, **_reader(store))
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def count(store: str, logsql: str) -> int:
    rows = query(store, f"{logsql} | stats count() rows")
    return int(rows[0]["rows"]) if rows else 0


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def push(store: str, lines: list[dict]) -> None:
    """Lines straight into VictoriaLogs' JSON-lines ingestion, with the collector's stream labels."""
    body = "".join(json.dumps(line) + "\n" for line in lines)
    response = requests.post(
        f"{store}/insert/jsonline",
        params={"_stream_fields": "service,env,stream,level", "_msg_field": "msg", "_time_field": "ts"},
        data=body.encode(),
        timeout=30,
        **_writer(store),
    )
    response.raise_for_status()
    requests.get(f"{store}/internal/force_flush", timeout=30, **_reader(store)).raise_for_status()


def line(ts: datetime, stream: str, run: str, **fields) -> dict:
    return {
        "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": "warn" if stream == "security" else "info",
        "msg": f"e2e {stream} line",
        "service": "sentinel-backend",
        "env": "lab",
        "stream": stream,
        "testRun": run,
        **fields,
    }


def test_a_request_is_found_by_trace_id_and_by_correlation_id(stack):
    _, _, store, backend = stack
    trace_id, correlation = uuid.uuid4().hex, f"e2e-logs-{uuid.uuid4().hex[:12]}"
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    response = requests.get(
        f"{backend}/api/events", headers={**STAFF, "X-Correlation-ID": correlation, "traceparent": traceparent}, timeout=10
    )
    assert response.status_code == 200
    by_trace = wait_for("the request's line, by trace id", lambda: query(store, f'traceId:="{trace_id}"'), 90)
    by_correlation = query(store, f'correlationId:="{correlation}"')
    assert by_trace == by_correlation and len(by_trace) == 1
    [found] = by_trace
    assert found["msg"] == "request completed" or json.loads(found["_msg"])["msg"] == "request completed"
    # The stream labels are the contract's four fields (VictoriaLogs stream fields).
    stream = found["_stream"]
    for label in ('service="sentinel-backend"', 'env="lab"', 'stream="app"', 'level="info"'):
        assert label in stream, stream


def test_each_class_lands_under_its_labels_and_the_enforcement_job_keeps_the_policy(stack):
    tel, _, store, _ = stack
    run, now = uuid.uuid4().hex, datetime.now(timezone.utc)
    old = now - timedelta(days=40)  # past the app class (30d), within security/audit (365d)
    push(store, [
        line(old, "app", run), line(old, "security", run, reason="forbidden"), line(old, "audit", run, action="checkin.in"),
        line(now - timedelta(days=1), "app", run),
    ])
    mine = f'testRun:="{run}"'
    wait_for("the pushed lines", lambda: count(store, mine) == 4, 30)
    for stream in ("app", "security", "audit"):
        assert count(store, f'{{stream="{stream}"}} {mine}') >= 1, stream
    # The instance keeps the longest class (in a cluster, each storage node: the access tier keeps nothing); the store
    # reads its flags back.
    for node in hosts_in("telemetry"):
        if node.name in node.topology.runs["victorialogs"]:
            flags = node.testinfra.check_output("curl -fsS %s", node.local("victorialogs.local", "/flags"))
            assert f'-retentionPeriod="{longest_period(tel.settings.retention)}"' in flags, node.name

    tel.testinfra.check_output(f"systemctl start {ENFORCE_UNIT}.service")  # oneshot: returns when the deletes finished
    assert count(store, f'{{stream="app"}} {mine} _time:>30d') == 0, "an app line older than 30 days survived"
    assert count(store, f'{{stream="app"}} {mine}') == 1, "the 1-day-old app line must stay"
    assert count(store, f'{{stream="security"}} {mine}') == 1, "a 40-day-old security line must stay (365d)"
    assert count(store, f'{{stream="audit"}} {mine}') == 1, "a 40-day-old audit line must stay (365d)"
    journal = tel.testinfra.check_output(f"journalctl -u {ENFORCE_UNIT}.service --since -10min --no-pager")
    assert "retention class default" in journal and "deletes finished" in journal


def test_erasure_removes_one_member_and_keeps_the_other(stack, tmp_path):
    _, _, store, _ = stack
    run, now = uuid.uuid4().hex, datetime.now(timezone.utc)
    erased, kept = f"m-e2e-{run[:8]}-a", f"m-e2e-{run[:8]}-b"
    push(store, [line(now - timedelta(minutes=i), "audit", run, memberId=m, action="checkin.in") for m in (erased, kept) for i in range(5)])
    mine = f'testRun:="{run}"'
    wait_for("the pushed lines", lambda: count(store, mine) == 10, 30)

    audit_log = tmp_path / "erasure-audit.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "roles.retention.erase", "--env", "lab", "--url", store,
         "--selector", '{service="sentinel-backend", stream="audit"}', "--filter", f"memberId={erased}",
         "--from", (now - timedelta(hours=1)).isoformat(), "--to", (now + timedelta(minutes=1)).isoformat(),
         "--requested-by", "e2e test", "--reason", f"run {run}", "--audit-log", str(audit_log), "--timeout", "300"],
        cwd=lab_session.ROOT, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert count(store, f'{mine} memberId:="{erased}"') == 0
    assert count(store, f'{mine} memberId:="{kept}"') == 5
    entries = [json.loads(l) for l in audit_log.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["requested", "completed"]
    assert entries[1]["filters"] == [f"memberId={erased}"] and entries[1]["requestedBy"] == "e2e test"
    # The copy in the store, searchable next to the logs, is not matched by the erased member's filter.
    # VictoriaLogs makes an ingested line searchable within about a second: wait for it, then count.
    audit_copy = f'{{service="sentinel-toolkit", stream="audit"}} reason:="run {run}"'
    wait_for("the audit entry's copy in the store", lambda: count(store, audit_copy) > 0, 30)
    assert count(store, audit_copy) == 1


def test_nothing_is_lost_when_the_store_restarts_under_load(stack):
    tel, _, store, backend = stack
    correlation = f"e2e-load-{uuid.uuid4().hex[:12]}"
    sent = 0
    stop = threading.Event()

    def load():
        nonlocal sent
        session = requests.Session()
        end = time.monotonic() + 40  # bounded: 40 s at about 20 requests/s
        while time.monotonic() < end and not stop.is_set():
            response = session.get(f"{backend}/api/events", headers={**STAFF, "X-Correlation-ID": correlation}, timeout=10)
            if response.status_code == 200:
                sent += 1  # one "request completed" line each
            time.sleep(0.05)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(10)
        tel.testinfra.check_output("systemctl restart victorialogs.service")
    finally:
        worker.join(timeout=120)
        stop.set()
    assert sent > 100
    logsql = f'correlationId:="{correlation}" {{stream="app"}}'
    stored = wait_for("every line sent to be stored", lambda: (n := count(store, logsql)) >= sent and n, 180, 2)
    assert stored == sent, f"sent {sent} lines, stored {stored} (more means duplicates)"


def test_a_second_converge_changes_nothing_on_the_log_path(stack):
    tel, app, _, _ = stack
    # pyinfra 3 takes one pattern per --limit ("tel1,app1" matches no host).
    run = lab_session.converge("--limit", tel.name, "--limit", app.name)
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed == {tel.name: 0, app.name: 0}, run.output[-5000:]
