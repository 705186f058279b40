"""Sentry end to end on the lab: the Node backend on app1 reports 5xx, and only 5xx,
to the lab's Sentry stand-in receiver; the smoke check tells success from failure.

Traffic goes only to lab addresses (10.213.0.0/24): the backend on app1, the
receiver on the bridge IP. Endpoints, headers and fault switches: docs/contract.md.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from lab import secrets as lab_secrets
from lab.paths import BRIDGE_IP
from tests import lab_session
from tests.lab_session import ROOT
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.sentry]

RECEIVER = f"http://{BRIDGE_IP}:{lab_secrets.SENTRY_STANDIN_PORT}"
STAFF = {"X-User-Id": "u-staff", "X-User-Email": "staff@sentinel.test", "X-User-Role": "staff"}
REQUESTS = 10
DELIVERY_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def http():
    session = requests.Session()
    session.trust_env = False  # straight to the lab, never through a proxy from the environment
    yield session
    session.close()


@pytest.fixture(scope="module")
def receiver(first_converge, http):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    try:
        http.get(f"{RECEIVER}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"the Sentry stand-in receiver is not up at {RECEIVER} ({exc}): run `python -m lab up`")
    return RECEIVER


@pytest.fixture(scope="module")
def app():
    """The first app host and its backend's base URL."""
    host = hosts_in("app")[0]
    return host, f"http://{host.settings.address}:{host.settings.backend.port}"


@pytest.fixture
def faults(app, http):
    """Set the backend's fault switches; all off again afterwards, whatever happens."""
    _, base = app

    def set_faults(switches: dict) -> None:
        http.post(f"{base}/admin/faults", json=switches, timeout=10).raise_for_status()

    set_faults({})
    yield set_faults
    set_faults({})


def clear_events(http) -> None:
    http.delete(f"{RECEIVER}/api/events", timeout=10).raise_for_status()


def error_events(http) -> list[dict]:
    """Events (not transactions: the lab samples every request) the receiver has recorded."""
    response = http.get(f"{RECEIVER}/api/events", params={"type": "event"}, timeout=10)
    response.raise_for_status()
    return [record["event"] for record in response.json()["events"]]


def wait_for_events(http, count: int) -> list[dict]:
    """The recorded events once there are `count` of them, or whatever came within the timeout."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    events = error_events(http)
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        events = error_events(http)
    return events


def correlation_id(label: str) -> str:
    return f"e2e-sentry-{label}-{uuid.uuid4().hex[:12]}"


def test_each_5xx_is_one_event_with_user_correlation_id_release_and_environment(receiver, app, faults, http):
    host, base = app
    clear_events(http)
    faults({"error_rate": 1})
    sent = []
    for _ in range(REQUESTS):
        cid = correlation_id("5xx")
        response = http.get(f"{base}/api/members", headers={**STAFF, "X-Correlation-ID": cid}, timeout=10)
        assert response.status_code == 500, response.text
        assert response.headers["X-Correlation-ID"] == cid
        sent.append(cid)

    events = wait_for_events(http, REQUESTS)
    assert len(events) == REQUESTS, f"{len(events)} events for {REQUESTS} 5xx responses"
    assert sorted(e["tags"]["correlation_id"] for e in events) == sorted(sent)
    backend = host.settings.backend
    for event in events:
        assert event["user"] == {"id": "u-staff", "email": "staff@sentinel.test", "role": "staff"}
        assert event["release"] == f"{backend.service_name}@{backend.version}"
        assert event["environment"] == host.settings.environment
        assert event["tags"]["http.status_code"] == "500"
        assert event["contexts"]["trace"]["trace_id"] == event["tags"]["trace_id"]


def test_4xx_produce_no_event(receiver, app, faults, http):
    _, base = app
    clear_events(http)
    member = {"X-User-Id": "m-0001", "X-User-Email": "member@sentinel.test", "X-User-Role": "member"}
    failing = [
        ("GET", "/api/members", {}, 401),  # no user context
        ("GET", "/api/members", member, 403),  # a member may not list members
        ("GET", "/api/members/m-9999", STAFF, 404),  # no such member
        ("POST", "/api/events/ev-999/attendance", STAFF, 404),  # no such event
        ("POST", "/api/auth/login", {}, None),  # wrong credentials: 401, or 429 once rate limited
    ]
    statuses = []
    for i in range(REQUESTS):
        method, path, headers, expected = failing[i % len(failing)]
        body = {"email": "staff@sentinel.test", "password": "wrong"} if path == "/api/auth/login" else {"memberId": "m-0001"}
        response = http.request(method, f"{base}{path}", headers={**headers, "X-Correlation-ID": correlation_id("4xx")},
                                json=body if method == "POST" else None, timeout=10)
        assert response.status_code == (expected or response.status_code), (path, response.status_code, response.text)
        statuses.append(response.status_code)
    assert len(statuses) == REQUESTS and all(400 <= s < 500 for s in statuses)

    # The SDK sends events in order from one queue: once a later 5xx has
    # arrived, any event of the 4xx requests would have arrived before it.
    faults({"error_rate": 1})
    last = correlation_id("after-4xx")
    assert http.get(f"{base}/api/members", headers={**STAFF, "X-Correlation-ID": last}, timeout=10).status_code == 500
    events = wait_for_events(http, 1)
    assert [e["tags"]["correlation_id"] for e in events] == [last], "4xx responses must not reach Sentry"


def test_a_crash_is_one_unhandled_event_without_pii_and_the_service_comes_back(receiver, app, faults, http):
    """The crash fault: @sentry/node reports the uncaught exception before the process exits; systemd restarts it."""
    host, base = app
    clear_events(http)
    faults({"crash": True})
    cid = correlation_id("crash")
    member = {"X-User-Id": "m-0001", "X-User-Email": "member@sentinel.test", "X-User-Role": "member", "Cookie": "session=s3cr3t"}
    with pytest.raises(requests.ConnectionError):
        http.get(f"{base}/api/events", headers={**member, "X-Correlation-ID": cid}, timeout=10)
    [event] = wait_for_events(http, 1)
    assert [v["mechanism"]["handled"] for v in event["exception"]["values"]] == [False]
    assert "http.status_code" not in event["tags"]
    assert event["tags"]["correlation_id"] == cid
    assert event["contexts"]["trace"]["trace_id"] == event["tags"]["trace_id"]
    backend = host.settings.backend
    assert (event["release"], event["environment"]) == (f"{backend.service_name}@{backend.version}", host.settings.environment)
    sent = json.dumps(event)
    for personal in ("member@sentinel.test", "s3cr3t", "10.213.0.1"):  # the email, the cookie, the client's address
        assert personal not in sent, personal
    deadline = time.monotonic() + 60  # systemd's RestartSec plus the start
    while True:
        try:
            if http.get(f"{base}/health", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the backend did not come back after the crash"
        time.sleep(1)


def run_smoke_check(dsn: str) -> tuple[subprocess.CompletedProcess, dict]:
    """files/backend/sentry_check.py as operators run it, with a clean environment (no proxies)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "files" / "backend" / "sentry_check.py"), "--json", "--timeout", "5"],
        env={"PATH": "/usr/bin:/bin", "SENTRY_DSN": dsn},
        capture_output=True, text=True, timeout=60,
    )
    return proc, json.loads(proc.stdout or "{}")


def test_smoke_check_succeeds_against_the_receiver(receiver, http):
    dsn = lab_secrets.read("SENTRY_DSN")
    proc, result = run_smoke_check(dsn)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["outcome"] == "ok" and result["status"] == 200
    recorded = [e for e in error_events(http) if e.get("event_id") == result["event_id"]]
    assert len(recorded) == 1, "the test event must be at the receiver"
    assert urlsplit(dsn).username not in proc.stdout + proc.stderr


def test_smoke_check_reports_a_clear_failure_when_the_receiver_is_down(receiver):
    with socket.socket() as probe:  # a port on the bridge where nothing listens
        probe.bind((BRIDGE_IP, 0))
        port = probe.getsockname()[1]
    key = urlsplit(lab_secrets.read("SENTRY_DSN")).username
    proc, result = run_smoke_check(f"http://{key}@{BRIDGE_IP}:{port}/1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert result["outcome"] == "connection_refused"
    assert "nothing is listening on the DSN host and port" in result["message"]
    assert key not in proc.stdout + proc.stderr


def test_release_step_says_why_it_uploads_nothing_and_never_prints_the_token(first_converge, app):
    """The source map step on a real host: maps present, no sentry-cli there: a warning, no change.

    The full upload needs a Sentry server, which the lab does not have; the
    upload script itself is tested with the real sentry-cli in tests/unit/test_backend_sentry.py.
    """
    assert first_converge.returncode == 0
    host, _ = app
    maps_dir = "/opt/sentinel-e2e-sourcemaps"
    token = f"e2e-not-a-token-{uuid.uuid4().hex}"
    backend = {**lab_session.lab_group_data()["backend"], "sourcemaps_dir": maps_dir, "sentry_org": "sentinel", "sentry_project": "backend"}
    host.testinfra.check_output(f"mkdir -p {maps_dir}/lib && echo '{{}}' > {maps_dir}/server.js.map && echo '{{}}' > {maps_dir}/lib/db.js.map")
    try:
        run = lab_session.converge("--limit", host.name, "--data", f"backend={json.dumps(backend)}", env={"SENTRY_AUTH_TOKEN": token})
    finally:
        host.testinfra.check_output(f"rm -rf {maps_dir}")
    assert run.returncode == 0, run.output[-3000:]
    assert f"sentry-cli is not installed: 2 source maps in {maps_dir} not uploaded: skipped" in run.output
    assert run.changed == {host.name: 0}, run.output[-3000:]
    assert token not in run.output
