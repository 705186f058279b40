"""files/backend/sentry_check.py tells each way a DSN can fail apart.

Every target is on 127.0.0.1; the DNS failure is simulated by making name
resolution fail in-process, so no lookup leaves the machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.receivers.sentry import make_server, start_in_thread  # noqa: E402
from tests.mirror_binaries import MISSING_TOOL  # noqa: E402
from tests.ports import free_port  # noqa: E402

_spec = importlib.util.spec_from_file_location("sentry_check", REPO / "files" / "backend" / "sentry_check.py")
sentry_check = importlib.util.module_from_spec(_spec)
sys.modules["sentry_check"] = sentry_check  # dataclasses look their module up there
_spec.loader.exec_module(sentry_check)

pytestmark = pytest.mark.sentry

KEY = "feedfacecafebeef0123456789abcdef"


@pytest.fixture
def receiver(tmp_path):
    """Factory for Sentry stand-in receivers on free loopback ports; returns (server, port)."""
    servers = []

    def start(**options):
        server = make_server("127.0.0.1", 0, KEY, str(tmp_path / f"events-{len(servers)}.jsonl"), **options)
        start_in_thread(server)
        servers.append(server)
        return server, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# -- validate_dsn -----------------------------------------------------------


@pytest.mark.parametrize("dsn", [
    "https://abc123@o1.ingest.sentry.io/4504",
    "http://abc123@127.0.0.1:9000/1",
    "https://abc123:legacysecret@sentry.example.org/sentry/17",
    "http://abc123@[::1]:9000/2",
])
def test_validate_dsn_accepts_valid_dsns(dsn):
    parsed = sentry_check.validate_dsn(dsn)
    assert parsed.public_key == "abc123" and parsed.project_id.isdigit()


@pytest.mark.parametrize("dsn, complaint", [
    ("", "empty"),
    ("   ", "empty"),
    ("not a dsn", "whitespace"),
    ("ftp://abc@host/1", "scheme"),
    ("abc@host/1", "scheme"),
    ("https://host.example/1", "public key"),
    ("https://abc@/1", "host"),
    ("https://abc@host.example", "project id"),
    ("https://abc@host.example/", "project id"),
    ("https://abc@host.example/project", "project id"),
    ("https://abc@host.example/1/", "project id"),
    ("https://abc@host.example:99999/1", "port"),
    ("https://abc@host.example/1?x=y", "query"),
])
def test_validate_dsn_rejects_bad_dsns_with_a_clear_message(dsn, complaint):
    with pytest.raises(ValueError, match=complaint):
        sentry_check.validate_dsn(dsn)


def test_mask_dsn_hides_the_key():
    masked = sentry_check.mask_dsn(f"https://{KEY}:secret@sentry.example.org:8443/42")
    assert masked == "https://feed****@sentry.example.org:8443/42"
    assert KEY not in masked and "secret" not in masked


# -- check_dsn outcomes -----------------------------------------------------


def test_ok_against_the_receiver(receiver):
    server, port = receiver()
    result = sentry_check.check_dsn(f"http://{KEY}@127.0.0.1:{port}/5", timeout=5)
    assert (result.outcome, result.ok, result.status) == ("ok", True, 200)
    [record] = server.store.read_all()
    assert record["event_id"] == result.event_id and record["project_id"] == "5"
    assert record["event"]["message"] == sentry_check.SMOKE_MESSAGE


def test_connection_refused_when_the_receiver_is_down():
    result = sentry_check.check_dsn(f"http://{KEY}@127.0.0.1:{free_port()}/5", timeout=5)
    assert (result.outcome, result.ok) == ("connection_refused", False)
    assert "connection refused" in result.message


def test_wrong_key_is_reported_as_bad_key(receiver):
    _, port = receiver()
    result = sentry_check.check_dsn(f"http://0000wrongkey@127.0.0.1:{port}/5", timeout=5)
    assert (result.outcome, result.status) == ("bad_key", 401)
    assert "0000wrongkey" not in result.dsn


def test_rate_limit_is_reported_with_retry_after(receiver):
    _, port = receiver(rate_limit=True, retry_after=42)
    result = sentry_check.check_dsn(f"http://{KEY}@127.0.0.1:{port}/5", timeout=5)
    assert (result.outcome, result.status, result.retry_after) == ("rate_limited", 429, "42")
    assert "retry after 42s" in result.message


def test_other_http_status_is_reported_as_such():
    class Broken(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"upstream exploded"
            self.send_response(502)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = sentry_check.check_dsn(f"http://{KEY}@127.0.0.1:{server.server_address[1]}/5", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.outcome, result.status) == ("http_error", 502)
    assert "upstream exploded" in result.message


def test_dns_failure(monkeypatch):
    real_getaddrinfo = socket.getaddrinfo

    def no_such_host(host, *args, **kwargs):
        if host == "sentry.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    result = sentry_check.check_dsn(f"https://{KEY}@sentry.invalid/5", timeout=5)
    assert result.outcome == "dns_failure", result.message


@pytest.mark.skipif(shutil.which("openssl") is None, reason=f"{MISSING_TOOL} the openssl CLI (to make a certificate); run: apt-get install openssl")
def test_tls_failure_on_an_untrusted_certificate(tmp_path, receiver):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server, port = receiver()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # In a process of its own, as on the control machine: pyinfra's gevent
    # monkey-patching of ssl (imported by other tests) breaks TLS in this one.
    proc = subprocess.run(
        [sys.executable, str(REPO / "files" / "backend" / "sentry_check.py"), "--json", "--timeout", "5",
         "--dsn", f"https://{KEY}@127.0.0.1:{port}/5"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    result = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert result["outcome"] == "tls_failure", result["message"]
    assert "CERTIFICATE_VERIFY_FAILED" in result["message"]


# -- CLI ----------------------------------------------------------------------


def test_cli_exit_codes_and_masking(receiver, capsys, monkeypatch):
    _, port = receiver()
    monkeypatch.delenv("SENTRY_DSN", raising=False)

    assert sentry_check.main(["--dsn", f"http://{KEY}@127.0.0.1:{port}/5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK [ok] http://feed****@127.0.0.1:") and KEY not in out

    monkeypatch.setenv("SENTRY_DSN", f"http://{KEY}@127.0.0.1:{free_port()}/5")
    assert sentry_check.main(["--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "connection_refused" and KEY not in json.dumps(result)

    assert sentry_check.main(["--dsn", f"http://{KEY}@127.0.0.1/notanumber"]) == 2
    err = capsys.readouterr().err
    assert "project id must be numeric" in err and KEY not in err

    monkeypatch.delenv("SENTRY_DSN")
    assert sentry_check.main([]) == 2
    assert "no DSN" in capsys.readouterr().err


def test_runs_as_a_standalone_script(receiver):
    _, port = receiver()
    proc = subprocess.run(
        [sys.executable, str(REPO / "files" / "backend" / "sentry_check.py")],
        env={"PATH": "/usr/bin:/bin", "SENTRY_DSN": f"http://{KEY}@127.0.0.1:{port}/5"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK [ok]" in proc.stdout and KEY not in proc.stdout + proc.stderr
    assert uuid.UUID(proc.stdout.split("event ")[1].split()[0])
