"""The collector gateway's OTLP receivers as the role renders them, on the controller's loopback: the pinned
otelcol-contrib serves the rendered receiver `tls` (the gateway's certificate, a client certificate of the CA
required) and `auth` (a sender's bearer token, roles/_otlp_tokens.py), its traces go to a store double, and each
kind of sender is tried. No lab needed; the lab's own checks are test_tls_otlp.py."""

from __future__ import annotations

import gzip
import http.client
import json
import secrets
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from roles._pki import CertificateAuthority
from roles.otel_collector import GATEWAY_AUTH, config_text
from tests.tls_files import tls_on_disk
from tests.tracing_binaries import binary
from tests.unit.test_tracing import collector_configs

pytestmark = [pytest.mark.tls, pytest.mark.tracing]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Store(BaseHTTPRequestHandler):
    """Takes the gateway's OTLP/HTTP exports (protobuf) and keeps their bodies."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


TOKEN = "T" * 43  # the accepted sender's token (the shape of roles/_otlp_tokens.py's)


def _gateway_config(root: Path, grpc: int, http_port: int, store: int) -> dict:
    """The lab gateway's rendered otlp receiver and its token authenticator (paths and binds moved here) feeding a
    store double."""
    rendered = next(c for c in collector_configs("lab").values() if "otlp" in c["receivers"])
    moved = lambda part: yaml.safe_load(yaml.safe_dump(part).replace("/etc/otelcol", str(root / "etc" / "otelcol")))
    receiver = moved(rendered["receivers"]["otlp"])
    authenticator = moved(rendered["extensions"][GATEWAY_AUTH])
    Path(authenticator["filename"]).parent.mkdir(parents=True, exist_ok=True)
    Path(authenticator["filename"]).write_text(f"{TOKEN} app1.agent\n")
    receiver["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{grpc}"
    receiver["protocols"]["http"]["endpoint"] = f"127.0.0.1:{http_port}"
    return {
        "extensions": {GATEWAY_AUTH: authenticator},
        "receivers": {"otlp": receiver},
        "exporters": {"otlp_http/store": {"endpoint": f"http://127.0.0.1:{store}", "retry_on_failure": {"enabled": False}}},
        "service": {
            "extensions": [GATEWAY_AUTH],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp_http/store"]}},
            "telemetry": {"metrics": {"level": "none"}},
        },
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("otlp-tls")
    otelcol = binary("otelcol", root)
    paths = tls_on_disk(root, "otelcol", "localhost")  # a server certificate for localhost and 127.0.0.1
    ca = CertificateAuthority.open("test", root / "pki")
    store = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    store.bodies = []
    threading.Thread(target=store.serve_forever, daemon=True).start()
    grpc, http_port = _free_port(), _free_port()
    config = root / "config.yaml"
    config.write_text(config_text(_gateway_config(root, grpc, http_port, store.server_address[1])))
    check = subprocess.run([otelcol, "validate", f"--config={config}"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = open(root / "otelcol.log", "w")
    process = subprocess.Popen([otelcol, f"--config={config}"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {"grpc": grpc, "http": http_port, "paths": paths, "ca": ca, "root": root, "store": store}
    process.terminate()
    process.wait(10)
    store.shutdown()


def _identity(ca: CertificateAuthority, host: str | None, component: str) -> tuple[str, str]:
    ca.issue(host, component)
    name = f"{host}.{component}" if host else component
    return str(ca.directory / "leaves" / f"{name}.crt"), str(ca.directory / "leaves" / f"{name}.key")


def _context(ca_file: str, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    # TLS 1.2 at most: the refusal of a client certificate is then an alert inside the handshake (test_tls_local.py).
    context = ssl.create_default_context(cafile=ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(*cert)
    return context


def canary(trace_id: str, service: str = "otlp-tls-canary") -> bytes:
    """One span of OTLP/JSON with this trace id."""
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "tls-test"}, "spans": [{
            "traceId": trace_id, "spanId": secrets.token_hex(8), "name": "canary", "kind": 2,
            "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now),
        }]}],
    }]}).encode()


def _post(port: int, context: ssl.SSLContext | None, body: bytes, token: str | None = None) -> int | str:
    """The status, or "refused: <why>"."""
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        connection.request("POST", "/v1/traces", body=body, headers=headers)
        return connection.getresponse().status
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
        return f"refused: {err}"
    finally:
        connection.close()


def _handshake(port: int, context: ssl.SSLContext) -> str:
    """A TLS handshake (ALPN h2, as gRPC) and one read: "ok", or the refusal."""
    context.set_alpn_protocols(["h2"])
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1") as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            tls.recv(1)
            return "ok"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
        return f"refused: {err}"


def _stored(gateway, trace_id: str) -> bool:
    return any(bytes.fromhex(trace_id) in body for body in list(gateway["store"].bodies))


def test_plain_http_is_refused_on_both_ports(gateway):
    assert _post(gateway["http"], None, canary(secrets.token_hex(16))) == 400  # "Client sent an HTTP request to an HTTPS server"
    with socket.create_connection(("127.0.0.1", gateway["grpc"]), timeout=5) as plain:
        plain.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            answer = plain.recv(100)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"\x00\x00"), answer  # no HTTP/2 frame: the server wants a TLS ClientHello


def test_no_client_certificate_is_refused(gateway):
    ca_file = gateway["paths"].ca
    assert "HANDSHAKE_FAILURE" in str(_post(gateway["http"], _context(ca_file), canary(secrets.token_hex(16))))
    assert "HANDSHAKE_FAILURE" in _handshake(gateway["grpc"], _context(ca_file))


def test_a_certificate_of_another_ca_is_refused(gateway):
    stranger = CertificateAuthority.open("test", gateway["root"] / "stranger")
    cert = _identity(stranger, "app1", "agent")
    assert "UNKNOWN_CA" in str(_post(gateway["http"], _context(gateway["paths"].ca, cert), canary(secrets.token_hex(16))))
    assert "UNKNOWN_CA" in _handshake(gateway["grpc"], _context(gateway["paths"].ca, cert))


def test_tls_1_1_is_refused(gateway):
    context = _context(gateway["paths"].ca, _identity(gateway["ca"], "app1", "agent"))
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    assert "PROTOCOL_VERSION" in str(_post(gateway["http"], context, canary(secrets.token_hex(16)))).upper()


def test_a_canary_without_a_valid_certificate_never_reaches_the_store_and_one_with_does(gateway):
    paths, ca = gateway["paths"], gateway["ca"]
    stranger = CertificateAuthority.open("test", gateway["root"] / "stranger")
    refused = {secrets.token_hex(16): ctx for ctx in (None, _context(paths.ca), _context(paths.ca, _identity(stranger, "app1", "agent")))}
    for trace_id, context in refused.items():
        assert _post(gateway["http"], context, canary(trace_id), TOKEN) != 200
    # The right certificate without the sender's token, or with another: 401.
    for token in (None, "U" * 43):
        trace_id = secrets.token_hex(16)
        assert _post(gateway["http"], _context(paths.ca, _identity(ca, "app1", "agent")), canary(trace_id), token) == 401
        refused[trace_id] = token
    good = secrets.token_hex(16)
    assert _post(gateway["http"], _context(paths.ca, _identity(ca, "app1", "backend")), canary(good), TOKEN) == 200
    assert "ok" == _handshake(gateway["grpc"], _context(paths.ca, _identity(ca, "app1", "backend")))
    deadline = time.monotonic() + 20
    while not _stored(gateway, good) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stored(gateway, good), "the canary with the CA's certificate did not reach the store double"
    assert not [t for t in refused if _stored(gateway, t)], "a canary without a valid certificate reached the store"
