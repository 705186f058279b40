"""The rolling converge (roles/rolling.py): what it waits for, and that it stops at the first host that fails."""

from __future__ import annotations

import http.server
import subprocess
import threading

import pytest

from roles import rolling
from tests.environments import environment
from tests.unit.test_monitoring_pair import inventory

pytestmark = pytest.mark.alerting


def _checks(env, host: str) -> list[str]:
    return [what for what, _url, _check in rolling.health_checks(env, env.host(host))]


def test_one_monitoring_host_waits_for_prometheus_and_alertmanager_ready_and_no_cluster(tmp_path):
    env = environment(tmp_path, "prod", inventory(1))
    assert _checks(env, "mon1.prod") == ["Prometheus ready", "Alertmanager ready"]
    assert _checks(env, "tel1.prod") == _checks(env, "app1.prod") == []


def test_two_monitoring_hosts_also_wait_for_the_whole_cluster(tmp_path):
    env = environment(tmp_path, "prod", inventory(2))
    assert _checks(env, "mon2.prod") == ["Prometheus ready", "Alertmanager ready", "Alertmanager cluster whole"]
    urls = [url for _w, url, _c in rolling.health_checks(env, env.host("mon2.prod"))]
    assert urls[0] == "https://mon2.prod:9090/-/ready" and urls[2] == "https://mon2.prod:9093/api/v2/status"


def test_cluster_whole_needs_every_peer_by_name(tmp_path):
    env = environment(tmp_path, "prod", inventory(2))
    (_w, _u, whole), = [c for c in rolling.health_checks(env, env.host("mon1.prod")) if c[0] == "Alertmanager cluster whole"]

    class Response:
        ok = True

        def __init__(self, peers, status="ready"):
            self._body = {"cluster": {"status": status, "peers": [{"name": p} for p in peers]}}

        def json(self):
            return self._body

    assert whole(Response(["mon2.prod", "mon1.prod"]))
    assert not whole(Response(["mon1.prod"]))
    assert not whole(Response(["mon1.prod", "mon2.prod"], status="settling"))


@pytest.fixture
def server():
    """A local HTTP server whose /-/ready answers 503 until `ready` is set."""
    ready = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if ready.is_set() else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/-/ready", ready
    httpd.shutdown()


def test_wait_healthy_returns_once_ready_and_stops_the_roll_otherwise(tmp_path, monkeypatch, server):
    env = environment(tmp_path, "prod", inventory(2))
    url, ready = server
    monkeypatch.setattr(rolling, "health_checks", lambda env, host: [("Thing ready", url, lambda r: r.ok)])
    with pytest.raises(rolling.RollStopped, match=r"mon1.prod: Thing ready .* not within 3 s; the hosts after it are unchanged"):
        rolling.wait_healthy(env, env.host("mon1.prod"), 3, operator={"timeout": 1})
    threading.Timer(2, ready.set).start()
    rolling.wait_healthy(env, env.host("mon1.prod"), 30, operator={"timeout": 1})


def test_roll_converges_one_host_at_a_time_in_inventory_order_and_stops_at_a_failure(tmp_path, monkeypatch):
    env = environment(tmp_path, "prod", inventory(2))
    monkeypatch.setattr(rolling, "load_environment", lambda path: env)
    limited: list[str] = []

    def run(argv, cwd):
        host = argv[argv.index("--limit") + 1]
        limited.append(host)
        assert argv[-2:] == ["inventory/prod.py", "deploy.py"] and "--data" in argv
        return subprocess.CompletedProcess(argv, 1 if host == "mon2.prod" else 0)

    monkeypatch.setattr(rolling.subprocess, "run", run)
    monkeypatch.setattr(rolling, "wait_healthy", lambda env, host, wait: None)
    with pytest.raises(rolling.RollStopped, match="mon2.prod: the converge failed"):
        rolling.roll("inventory/prod.py", ["--data", "x=1"])
    assert limited == ["mon1.prod", "mon2.prod"]  # tel1 and app1 never converged
