"""The lab's Node backend keeps the telemetry contract (files/backend/contract.yml).

Each test starts the backend (lab/backend_node: Express on the OpenTelemetry Node SDK,
@sentry/node, Winston and prom-client) as a real process on a free loopback port,
with Sentry pointed at the Sentry stand-in receiver (in this process, on
another loopback port) and, for the tracing test, OTLP pointed at a local
collector double. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BACKEND_DIR = REPO / "lab" / "backend_node"
CONTRACT = yaml.safe_load((REPO / "files" / "backend" / "contract.yml").read_text())
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.receivers.sentry import make_server, start_in_thread  # noqa: E402

STAFF = {"X-User-Id": "u-staff", "X-User-Email": "staff@sentinel.test", "X-User-Role": "staff"}
MEMBER = {"X-User-Id": "m-0007", "X-User-Email": "member0007@sentinel.test", "X-User-Role": "member"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


# -- helpers ----------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The backend's dependencies, installed from its lockfile if they are not there yet."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed to test the lab's backend (lab/backend_node)")
    modules = BACKEND_DIR / "node_modules"
    if not (modules / ".package-lock.json").exists():
        # As the artifact build does (lab/artifacts/node_backend.py): the lockfile, no install scripts.
        subprocess.run(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=BACKEND_DIR, check=True)
    return modules


def run_node(script: str) -> object:
    """Evaluate `script` (CommonJS, in the backend's directory) and return what it printed as JSON."""
    out = subprocess.run(["node", "-e", script], cwd=BACKEND_DIR, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class Backend:
    """A running backend process, its stdout log lines and an HTTP client for it."""

    def __init__(self, tmp_path: Path, extra_env: dict[str, str]) -> None:
        self.faults_file = tmp_path / "faults.json"
        self.log_file = tmp_path / "backend.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # As the lab's env file: OTLP carries traces only.
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "HOST": "127.0.0.1",
            "PORT": "0",
            "SENTINEL_FAULTS_FILE": str(self.faults_file),
            "SENTINEL_LOG_FILE": str(self.log_file),
            "OTEL_SERVICE_NAME": "sentinel-backend",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.version=9.9.9",
            **extra_env,
        }
        self.proc = subprocess.Popen(
            ["node", "--import", "./src/instrument.mjs", "src/server.js"], cwd=BACKEND_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._new_lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        listening = self.wait_for_log(lambda line: line.get("msg") == "listening", timeout=20)
        self.port = listening["port"]

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._new_lines.put(line)

    def logs(self) -> list[dict]:
        """Every stdout line so far, parsed (fails the test on a non-JSON line)."""
        return [json.loads(line) for line in list(self.lines)]

    def wait_for_log(self, predicate, timeout: float = 10) -> dict:
        """The first log line (seen so far or arriving within ``timeout``) matching ``predicate``."""
        for line in self.logs():
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = json.loads(self._new_lines.get(timeout=0.1))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if predicate(line):
                return line
        raise AssertionError(f"no such log line; stderr: {self.proc.stderr.read() if self.proc.poll() is not None else '(running)'}")

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: object = None) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            raw = response.read()
            content = json.loads(raw) if response.getheader("Content-Type", "").startswith("application/json") else raw.decode()
            return response.status, dict(response.getheaders()), content
        finally:
            conn.close()

    def set_faults(self, **faults: object) -> None:
        status, _, body = self.request("POST", "/admin/faults", body=faults)
        assert status == 200 and body["persisted"], body

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def receiver(tmp_path):
    """The Sentry stand-in on a free loopback port: (server, dsn)."""
    key = uuid.uuid4().hex
    server = make_server("127.0.0.1", 0, key, str(tmp_path / "sentry-events.jsonl"))
    start_in_thread(server)
    yield server, f"http://{key}@127.0.0.1:{server.server_address[1]}/7"
    server.shutdown()
    server.server_close()


@pytest.fixture
def start_backend(tmp_path, node_modules):
    """Factory: start a stand-in with extra env; every one started is stopped afterwards."""
    started: list[Backend] = []

    def start(**extra_env: str) -> Backend:
        backend = Backend(tmp_path, extra_env)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


def breadcrumbs(event: dict) -> list[dict]:
    """An event's breadcrumbs: @sentry/node sends a list, the Python SDK {"values": [...]}; Sentry takes both."""
    crumbs = event.get("breadcrumbs") or []
    return crumbs["values"] if isinstance(crumbs, dict) else crumbs


def sentry_events(server, count: int, timeout: float = 15) -> list[dict]:
    """Wait until the receiver holds ``count`` error events; return them (fewer on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        events = [r["event"] for r in server.store.read_all(lambda r: r["type"] == "event")]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text exposition → {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- Sentry -----------------------------------------------------------------


@pytest.mark.sentry
def test_each_5xx_becomes_one_sentry_event_with_user_tags_release_and_environment(receiver, start_backend):
    server, dsn = receiver
    backend = start_backend(SENTRY_DSN=dsn, SENTRY_RELEASE="sentinel-backend@9.9.9", SENTRY_ENVIRONMENT="test")
    backend.set_faults(error_rate=1)

    correlation_ids = [f"corr-5xx-{i}" for i in range(10)]
    for cid in correlation_ids:
        status, headers, _ = backend.request("GET", "/api/events", {**STAFF, "X-Correlation-ID": cid})
        assert status == 500
        assert headers["X-Correlation-ID"] == cid

    events = sentry_events(server, 10)
    time.sleep(0.3)  # anything extra would arrive now
    events = sentry_events(server, 10, timeout=0)
    assert len(events) == 10
    assert sorted(e["tags"]["correlation_id"] for e in events) == sorted(correlation_ids)
    completed = {l["correlationId"]: l for l in backend.logs() if l["msg"] == "request completed"}
    for event in events:
        assert event["user"] == {"id": "u-staff", "email": "staff@sentinel.test", "role": "staff"}
        assert event["release"] == "sentinel-backend@9.9.9"
        assert event["environment"] == "test"
        assert event["tags"]["http.status_code"] == "500"
        assert event["exception"]["values"][-1]["type"] == "SimulatedFailure"
        assert event["transaction"] == "GET /api/events"
        # The Sentry event, its trace and the log line share the OpenTelemetry trace id.
        line = completed[event["tags"]["correlation_id"]]
        assert event["tags"]["trace_id"] == line["traceId"] == event["contexts"]["trace"]["trace_id"]
        assert line["sentryEventId"] == event["event_id"]
        crumbs = [b.get("message") for b in breadcrumbs(event)]
        assert "request failed" in crumbs


@pytest.mark.sentry
def test_a_members_event_carries_no_email_address_or_request_body(receiver, start_backend):
    server, dsn = receiver
    backend = start_backend(SENTRY_DSN=dsn, SENTRY_RELEASE="r1", SENTRY_ENVIRONMENT="test")
    backend.set_faults(error_rate=1)
    status, _, _ = backend.request("POST", "/api/checkins", {**MEMBER, "Cookie": "session=s3cr3t"}, {"memberId": "m-0007", "site": "hq"})
    assert status == 500
    [event] = sentry_events(server, 1)
    assert event["user"] == {"id": "m-0007", "role": "member"}
    sent = json.dumps(event)
    for personal in ("member0007@sentinel.test", "s3cr3t", "127.0.0.1", '"site": "hq"'):
        assert personal not in sent, personal


@pytest.mark.sentry
def test_4xx_never_reaches_sentry(receiver, start_backend):
    server, dsn = receiver
    backend = start_backend(SENTRY_DSN=dsn, SENTRY_RELEASE="r1", SENTRY_ENVIRONMENT="test")
    four_xx = [
        ("GET", "/api/events", {}, None, 401),  # no user context
        ("GET", "/api/members", MEMBER, None, 403),  # members may not list members
        ("GET", "/api/members/m-9999", STAFF, None, 404),
        ("POST", "/api/checkins", STAFF, {"memberId": "m-0002", "site": "mars"}, 400),
        ("POST", "/api/checkins", STAFF, {"memberId": "m-0012", "site": "hq"}, 409),  # inactive member
        ("DELETE", "/api/events", STAFF, None, 405),
        ("GET", "/api/nope", STAFF, None, 404),
        ("POST", "/api/auth/login", {}, {"email": "staff@sentinel.test", "password": "wrong"}, 401),
        ("POST", "/api/auth/login", {}, {"email": "staff@sentinel.test", "password": "wrong"}, 401),
        ("POST", "/api/events/ev-999/attendance", MEMBER, {}, 404),
    ]
    for method, path, headers, body, expected in four_xx:
        status, _, _ = backend.request(method, path, headers, body)
        assert status == expected, (method, path)

    # Barrier: one 5xx. The SDK sends in order, so if any 4xx had been
    # captured it would be at the receiver before this one.
    backend.set_faults(error_rate=1)
    assert backend.request("GET", "/api/badges", {**STAFF, "X-Correlation-ID": "barrier"})[0] == 500
    events = sentry_events(server, 1)
    time.sleep(0.3)
    events = sentry_events(server, 1, timeout=0)
    assert [e["tags"]["correlation_id"] for e in events] == ["barrier"]


@pytest.mark.sentry
def test_pool_exhaustion_503_is_captured_with_query_breadcrumbs(receiver, start_backend):
    server, dsn = receiver
    backend = start_backend(SENTRY_DSN=dsn)
    backend.set_faults(db_pool_exhausted=True)
    status, _, body = backend.request("GET", "/api/members/m-0003", STAFF)
    assert status == 503 and body["error"]["code"] == "db_pool_exhausted"
    [event] = sentry_events(server, 1)
    assert event["tags"]["http.status_code"] == "503"
    crumbs = breadcrumbs(event)
    assert any(c["category"] == "query" and c["message"].startswith("SELECT") for c in crumbs)
    # Breadcrumbs are per request: nothing from set_faults or startup leaks in.
    assert not any(c.get("message") in ("listening", "fault switches changed") for c in crumbs)


@pytest.mark.sentry
def test_sentry_off_without_or_with_an_invalid_dsn(start_backend):
    backend = start_backend()
    assert backend.logs()[0]["sentry"] is False
    backend.set_faults(error_rate=1)
    assert backend.request("GET", "/api/events", STAFF)[0] == 500

    secret = "5ecre7key"
    broken = start_backend(SENTRY_DSN=f"http://{secret}@127.0.0.1:9/notaproject")
    assert broken.wait_for_log(lambda l: l["msg"] == "listening")["sentry"] is False
    assert any(l["msg"].startswith("Sentry disabled") for l in broken.logs())
    assert secret not in "".join(broken.lines)


# -- metrics ------------------------------------------------------------------


def test_metrics_count_requests_business_actions_and_failures(start_backend):
    backend = start_backend()
    for _ in range(3):
        assert backend.request("POST", "/api/checkins", STAFF, {"badgeId": "b-0005", "site": "north"})[0] == 201
    assert backend.request("POST", "/api/checkins", STAFF, {"badgeId": "b-0005", "site": "north", "direction": "out"})[0] == 201
    assert backend.request("POST", "/api/visitors", STAFF, {"name": "Ada", "site": "hq"})[0] == 201
    assert backend.request("POST", "/api/events/ev-102/attendance", MEMBER, {})[0] == 201
    assert backend.request("GET", "/api/duty-assignments", STAFF)[0] == 200
    assert backend.request("GET", "/api/members", MEMBER)[0] == 403
    for _ in range(6):  # 5 failures allowed, the 6th attempt is rate limited
        status, headers, _ = backend.request("POST", "/api/auth/login", {}, {"email": "admin@sentinel.test", "password": "x"})
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert backend.request("GET", "/api/members/m-0001", STAFF)[0] == 200

    status, headers, text = backend.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    m = metric_samples(text)
    assert m[("http_requests_total", (("method", "POST"), ("route", "/api/checkins"), ("status", "201")))] == 4
    assert m[("http_requests_total", (("method", "POST"), ("route", "/api/auth/login"), ("status", "401")))] == 5
    assert m[("http_requests_total", (("method", "POST"), ("route", "/api/auth/login"), ("status", "429")))] == 1
    assert m[("http_requests_total", (("method", "GET"), ("route", "/api/members/:id"), ("status", "200")))] == 1
    assert m[("http_request_duration_seconds_count", (("method", "POST"), ("route", "/api/checkins")))] == 4
    assert m[("http_request_duration_seconds_bucket", (("le", "0.3"), ("method", "POST"), ("route", "/api/checkins")))] == 4
    assert m[("sentinel_checkins_total", (("site", "north"),))] == 3
    assert m[("sentinel_badge_scans_total", ())] == 3
    assert m[("sentinel_sessions_duration_seconds_count", ())] == 1
    assert m[("sentinel_visitors_total", ())] == 1
    assert m[("sentinel_event_attendance_total", (("event", "ev-102"),))] == 1
    assert m[("sentinel_duty_assignments_total", ())] == 3
    assert m[("auth_failures_total", (("reason", "invalid_credentials"),))] == 5
    assert m[("auth_failures_total", (("reason", "forbidden"),))] == 1
    assert m[("rate_limit_hits_total", (("route", "/api/auth/login"),))] == 1
    assert m[("sentinel_active_members", ())] == 220
    assert m[("sentinel_build_info", (("environment", "test"), ("version", "9.9.9")))] == 1
    assert m[("db_pool_connections", (("state", "max"),))] == 10
    assert m[("db_query_duration_seconds_count", (("operation", "INSERT"),))] >= 6
    assert ("process_cpu_seconds_total", ()) in m
    # /health and /metrics are not instrumented.
    assert not any(labels and dict(labels).get("route") in ("/health", "/metrics") for _, labels in m)


def test_metrics_exposition_matches_the_contract(start_backend):
    from prometheus_client.parser import text_string_to_metric_families

    backend = start_backend()
    # Touch every labelled family so each has at least one series.
    backend.request("POST", "/api/checkins", STAFF, {"memberId": "m-0002", "site": "hq"})
    backend.request("GET", "/api/members", MEMBER)
    for _ in range(6):
        backend.request("POST", "/api/auth/login", {}, {"email": "x@sentinel.test", "password": "x"})
    backend.request("POST", "/api/events/ev-101/attendance", STAFF, {"memberId": "m-0002"})
    families = {f.name: f for f in text_string_to_metric_families(backend.request("GET", "/metrics")[2])}

    contract = {m["name"]: m for m in CONTRACT["metrics"]}
    for name, spec in contract.items():
        # The parser names counter families without _total.
        family = families.get(name.removesuffix("_total") if spec["type"] == "counter" else name)
        assert family is not None, f"{name} missing from /metrics"
        assert family.type == spec["type"], name
        label_sets = {frozenset(k for k in s.labels if k != "le") for s in family.samples}
        assert label_sets == {frozenset(spec["labels"])}, name
        if "buckets" in spec:
            bounds = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels} - {float("inf")})
            assert bounds == [float(b) for b in spec["buckets"]], name
    for runtime in CONTRACT["runtime_metrics"]:
        assert runtime["name"].removesuffix("_total") in families, runtime["name"]

    # Nothing the app defines is missing from the contract.
    declared = {n.removesuffix("_total") for n in contract} | {m["name"].removesuffix("_total") for m in CONTRACT["runtime_metrics"]}
    undeclared = {n for n in families if not n.startswith(("nodejs_", "process_")) and n not in declared}
    assert not undeclared, f"metrics not in contract.yml: {undeclared}"
    # Label values stay within the declared sets.
    for family in families.values():
        for sample in family.samples:
            for label in ("route", "reason", "site", "event", "state", "operation"):
                if label in sample.labels and family.name not in ("python_gc_objects_collected",):
                    assert sample.labels[label] in CONTRACT["label_values"][label], (family.name, sample.labels)


# -- logs -------------------------------------------------------------------


def test_log_lines_are_json_with_correlation_and_trace_ids(start_backend):
    backend = start_backend()
    backend.request("POST", "/api/checkins", {**STAFF, "X-Correlation-ID": "corr-audit"}, {"memberId": "m-0002", "site": "hq"})
    backend.request("GET", "/api/members", {**MEMBER, "X-Correlation-ID": "corr-forbidden"})
    backend.request("POST", "/api/auth/login", {}, {"email": "member@sentinel.test", "password": "member-pass"})
    backend.set_faults()
    _, headers, _ = backend.request("GET", "/api/events", STAFF)  # no correlation id: one is generated
    generated = headers["X-Correlation-ID"]
    backend.wait_for_log(lambda l: l.get("correlationId") == generated and l["msg"] == "request completed")

    lines = backend.logs()  # every line parsed as JSON
    fields = CONTRACT["logs"]["fields"]
    always = [f["name"] for f in fields if f["presence"] == "always"]
    per_request = [f["name"] for f in fields if f["presence"] == "request"]
    on_completion = [f["name"] for f in fields if f["presence"] == "completion"]
    declared = {f["name"] for f in fields}
    streams = next(f["values"] for f in fields if f["name"] == "stream")
    for line in lines:
        assert all(name in line for name in always), line
        assert line["stream"] in streams
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["ts"])
        if "correlationId" in line:
            assert all(name in line for name in per_request), line
            assert HEX32.match(line["traceId"]) and HEX16.match(line["spanId"])
        if line["msg"] == "request completed":
            assert all(name in line for name in on_completion), line

    def one(predicate):
        [line] = [l for l in lines if predicate(l)]
        return line

    audit = one(lambda l: l["stream"] == "audit" and l["action"] != "auth.login")
    assert audit["correlationId"] == "corr-audit" and audit["action"] == "checkin.in" and audit["userId"] == "u-staff"
    assert audit["action"] in CONTRACT["logs"]["audit_actions"]
    security = one(lambda l: l["stream"] == "security")
    assert security["correlationId"] == "corr-forbidden" and security["reason"] == "forbidden"
    assert security["reason"] in CONTRACT["logs"]["security_reasons"]
    completed = one(lambda l: l["msg"] == "request completed" and l["correlationId"] == "corr-audit")
    assert completed["status"] == 201 and completed["route"] == "/api/checkins" and completed["duration_ms"] > 0
    assert completed["traceId"] == audit["traceId"]  # same request, same trace
    assert uuid.UUID(generated)
    login = one(lambda l: l.get("action") == "auth.login")
    assert login["userId"] == "m-0001" and login["stream"] == "audit"
    # The app's own fields are all declared (libraries' lines carry `logger`).
    details = CONTRACT["logs"]["detail_fields"]
    for line in lines:
        if "logger" not in line:
            undeclared = set(line) - declared - set(details.get(line["msg"], []))
            assert not undeclared, (line["msg"], undeclared)


def test_log_file_holds_the_same_lines_as_stdout(start_backend):
    """The collector agent tails the file: it must carry every line stdout has, member ids included."""
    backend = start_backend()
    backend.request("POST", "/api/checkins", {**STAFF, "X-Correlation-ID": "corr-file"}, {"memberId": "m-0002", "site": "hq"})
    backend.wait_for_log(lambda l: l.get("correlationId") == "corr-file" and l["msg"] == "request completed")
    listening = backend.wait_for_log(lambda l: l["msg"] == "listening")
    assert listening["logFile"] == str(backend.log_file)
    deadline = time.monotonic() + 5
    while True:
        in_file = [json.loads(line) for line in backend.log_file.read_text().splitlines()]
        if len(in_file) >= len(backend.logs()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert in_file == backend.logs()
    audit = next(l for l in in_file if l["stream"] == "audit")
    assert audit["memberId"] == "m-0002" and HEX32.match(audit["traceId"]) and audit["correlationId"] == "corr-file"


def test_an_unwritable_log_file_does_not_stop_the_backend(start_backend, tmp_path):
    backend = start_backend(SENTINEL_LOG_FILE=str(tmp_path / "missing-dir" / "backend.log"))
    problem = backend.wait_for_log(lambda l: l["msg"] == "log file unavailable")
    assert problem["level"] == "error" and "missing-dir" in problem["detail"]
    assert backend.wait_for_log(lambda l: l["msg"] == "listening")["logFile"] is None
    status, _, _ = backend.request("GET", "/api/events", STAFF)
    assert status == 200


def test_settings_read_the_log_file_or_none(node_modules):
    settings = run_node(
        "const { loadSettings } = require('./src/config');"
        "console.log(JSON.stringify([{}, {SENTINEL_LOG_FILE: ''}, {SENTINEL_LOG_FILE: '/tmp/x.log'}].map((e) => loadSettings(e).logFile)))"
    )
    assert settings == ["/var/log/sentinel/backend.log", None, "/tmp/x.log"]


# -- faults -----------------------------------------------------------------


def test_faults_file_is_reread_without_restart(start_backend):
    backend = start_backend()
    backend.faults_file.write_text(json.dumps({"error_rate": 1}))
    assert backend.request("GET", "/api/events", STAFF)[0] == 500
    backend.faults_file.write_text(json.dumps({"latency_ms": 300}))
    started = time.monotonic()
    assert backend.request("GET", "/api/events", STAFF)[0] == 200
    assert time.monotonic() - started >= 0.3
    backend.faults_file.write_text(json.dumps({"db_pool_exhausted": True}))
    assert backend.request("GET", "/api/events", STAFF)[0] == 503
    status, _, health = backend.request("GET", "/health")
    assert status == 200 and health["status"] == "degraded" and health["checks"]["database"] == "pool exhausted"
    m = metric_samples(backend.request("GET", "/metrics")[2])
    assert m[("db_pool_connections", (("state", "active"),))] == m[("db_pool_connections", (("state", "max"),))] == 10
    assert m[("db_pool_connections", (("state", "idle"),))] == 0
    backend.faults_file.unlink()
    assert backend.request("GET", "/api/events", STAFF)[0] == 200
    # A broken file means no faults, and says why.
    backend.faults_file.write_text("{not json")
    assert backend.request("GET", "/api/events", STAFF)[0] == 200
    status, _, body = backend.request("GET", "/admin/faults")
    assert body["faults"]["error_rate"] == 0 and "ignored" in body["fileError"]
    assert backend.request("POST", "/admin/faults", body={"error_rate": 2})[0] == 400
    assert backend.request("POST", "/admin/faults", body={"explode": True})[0] == 400


def test_crash_fault_exits_the_process_with_status_1(start_backend):
    backend = start_backend()
    backend.set_faults(crash=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        backend.request("GET", "/api/events", STAFF)
    assert backend.proc.wait(timeout=10) == 1
    assert any(l["level"] == "fatal" and "crash" in l["msg"] for l in backend.logs())
    # One-shot: a restarted service comes back healthy.
    assert json.loads(backend.faults_file.read_text())["crash"] is False


def test_sigterm_shuts_down_cleanly(start_backend):
    backend = start_backend()
    assert backend.request("GET", "/health")[0] == 200
    assert backend.stop() == 0
    assert backend.logs()[-1]["msg"] == "stopped"


# -- traces -----------------------------------------------------------------


class _OtlpCollector(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    """Accepts OTLP/HTTP trace exports and keeps (path, content type, decoded JSON request).

    `@opentelemetry/exporter-trace-otlp-http` sends OTLP/JSON whatever
    OTEL_EXPORTER_OTLP_PROTOCOL says; the collector gateway takes both encodings.
    """

    def do_POST(self) -> None:  # noqa: N802
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.exports.append((self.path, self.headers.get("Content-Type", ""), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def _attrs(attributes: list[dict]) -> dict:
    """OTLP/JSON attributes -> {key: value} (intValue comes as a string in OTLP/JSON)."""
    out = {}
    for kv in attributes:
        [(kind, value)] = kv["value"].items()
        out[kv["key"]] = int(value) if kind == "intValue" else value
    return out


@pytest.mark.tracing
def test_spans_are_exported_over_otlp_http(start_backend):
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpCollector)
    collector.exports = []
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        backend = start_backend(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.server_address[1]}",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_TRACES_SAMPLER="always_on",
        )
        parent_trace = "0af7651916cd43dd8448eb211c80319c"
        headers = {**STAFF, "User-Agent": "contract-test", "X-Correlation-ID": "corr-trace", "traceparent": f"00-{parent_trace}-b7ad6b7169203331-01"}
        assert backend.request("GET", "/api/members/m-0003", headers)[0] == 200
        deadline = time.monotonic() + 10
        spans, resource = [], {}
        while time.monotonic() < deadline and len(spans) < 2:
            time.sleep(0.1)
            spans = []
            for path, content_type, export in list(collector.exports):
                assert path == "/v1/traces" and content_type.startswith("application/json")
                for resource_spans in export["resourceSpans"]:
                    resource = _attrs(resource_spans["resource"]["attributes"])
                    for scope_spans in resource_spans["scopeSpans"]:
                        spans.extend(scope_spans["spans"])
    finally:
        collector.shutdown()

    assert resource["service.name"] == "sentinel-backend"
    assert resource["deployment.environment"] == "test"
    assert resource["service.version"] == "9.9.9"
    by_name = {s["name"]: s for s in spans}
    server_span, db_span = by_name["GET /api/members/:id"], by_name["SELECT members"]
    assert server_span["traceId"] == parent_trace  # the caller's trace is continued
    server_attrs = _attrs(server_span["attributes"])
    assert server_attrs["http.route"] == "/api/members/:id"
    assert server_attrs["http.request.method"] == "GET"
    assert server_attrs["http.response.status_code"] == 200
    assert server_attrs["sentinel.correlation_id"] == "corr-trace"
    assert server_attrs["enduser.id"] == "u-staff"
    db_attrs = _attrs(db_span["attributes"])
    assert db_attrs["db.system"] == "postgresql" and db_attrs["db.operation"] == "SELECT"
    assert db_span["parentSpanId"] == server_span["spanId"]
    for spec in CONTRACT["traces"]["spans"]:
        span = server_span if spec["kind"] == "SERVER" else db_span
        present = set(_attrs(span["attributes"]))
        optional = {"error.type"}
        assert {a for a in spec["attributes"] if a not in optional} <= present, spec["name"]
    line = backend.wait_for_log(lambda l: l.get("correlationId") == "corr-trace" and l["msg"] == "request completed")
    assert line["traceId"] == parent_trace and line["spanId"] == server_span["spanId"]


# -- configuration (in-process) ---------------------------------------------


def test_contract_doc_names_every_metric_and_log_field():
    doc = (REPO / "docs" / "contract.md").read_text()
    for metric in CONTRACT["metrics"] + CONTRACT["runtime_metrics"]:
        assert f"`{metric['name']}`" in doc, metric["name"]
    for field in CONTRACT["logs"]["fields"]:
        assert f"`{field['name']}`" in doc, field["name"]
    for value in CONTRACT["logs"]["security_reasons"] + CONTRACT["logs"]["audit_actions"]:
        assert f"`{value}`" in doc, value


def test_settings_come_from_the_environment(node_modules):
    settings = run_node(
        "const { loadSettings } = require('./src/config');"
        "console.log(JSON.stringify(loadSettings({PORT: '3100', SENTRY_DSN: 'http://k@127.0.0.1:9/1',"
        " OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=staging,service.version=1.4.2%2Bbuild'})))"
    )
    assert (settings["port"], settings["environment"], settings["version"]) == (3100, "staging", "1.4.2+build")
    assert settings["sentryEnvironment"] == "staging" and settings["sentryRelease"] == "1.4.2+build"
    assert settings["otlpEndpoint"] is None and settings["faultsFile"] == "/var/lib/sentinel/faults.json"
    defaults = run_node("console.log(JSON.stringify(require('./src/config').loadSettings({SENTRY_DSN: ''})))")
    assert defaults["port"] == 3000 and defaults["sentryDsn"] is None and defaults["serviceName"] == "sentinel-backend"
    refused = run_node(
        "const { loadSettings } = require('./src/config');"
        "console.log(JSON.stringify(['http', '70000', '-1'].map((p) => { try { loadSettings({PORT: p}); return false; } catch (e) { return e.name; } })))"
    )
    assert refused == ["Error"] * 3


def test_bad_configuration_exits_2(tmp_path, node_modules):
    proc = subprocess.run(
        ["node", "--import", "./src/instrument.mjs", "src/server.js"], cwd=BACKEND_DIR, capture_output=True, text=True, timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": "http", "SENTINEL_LOG_FILE": ""},
    )
    assert proc.returncode == 2
    [line] = [json.loads(l) for l in proc.stdout.splitlines()]
    assert line["level"] == "fatal" and line["msg"] == "invalid configuration" and "PORT" in line["detail"]


@pytest.mark.sentry
def test_before_send_keeps_only_5xx_and_crashes(node_modules):
    crash = {"exception": {"values": [{"type": "TypeError", "mechanism": {"type": "auto.node.onuncaughtexception", "handled": False}}]}}
    handled = {"exception": {"values": [{"type": "ValueError", "mechanism": {"type": "generic", "handled": True}}]}}
    cases = [
        {"tags": {"http.status_code": "500"}},
        {"tags": {"http.status_code": "503"}},
        {"tags": {"http.status_code": "404"}},
        {"tags": {}},
        {},
        crash,  # a crash (uncaught exception or unhandled rejection) has no response status: kept
        handled,
        {**crash, "tags": {"http.status_code": "400"}},  # a status below 500 wins over the mechanism
    ]
    kept = run_node(
        "const { onlyServerErrors } = require('./src/reporting');"
        f"console.log(JSON.stringify({json.dumps(cases)}.map((e) => onlyServerErrors(e) !== null)))"
    )
    assert kept == [True, True, False, False, False, True, False, False]


@pytest.mark.sentry
def test_a_crash_reaches_sentry_as_an_unhandled_event_of_the_request(receiver, start_backend):
    """The crash fault throws where nothing catches it: @sentry/node reports it (handled: false), then the process exits 1."""
    server, dsn = receiver
    backend = start_backend(SENTRY_DSN=dsn, SENTRY_RELEASE="sentinel-backend@9.9.9", SENTRY_ENVIRONMENT="test")
    backend.set_faults(crash=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        backend.request("GET", "/api/events", {**MEMBER, "X-Correlation-ID": "corr-crash", "Cookie": "session=s3cr3t"})
    assert backend.proc.wait(timeout=15) == 1
    [event] = sentry_events(server, 1)
    assert [v["mechanism"]["handled"] for v in event["exception"]["values"]] == [False]
    assert event["exception"]["values"][-1]["type"] == "SimulatedCrash"
    assert "http.status_code" not in event["tags"]
    assert (event["release"], event["environment"]) == ("sentinel-backend@9.9.9", "test")
    assert event["tags"]["correlation_id"] == "corr-crash"
    assert event["tags"]["trace_id"] == event["contexts"]["trace"]["trace_id"]
    assert HEX32.match(event["tags"]["trace_id"])
    sent = json.dumps(event)
    for personal in ("member0007@sentinel.test", "s3cr3t", "127.0.0.1"):
        assert personal not in sent, personal
