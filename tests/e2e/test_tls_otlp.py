"""OTLP over TLS to the lab's collector gateways (tel1, tel2) and app1's agent, with a client certificate of the environment CA.

From the intruder (in no flow: the firewall drops it whatever it holds, even a valid certificate), from
app1 (its agent's flow to the gateways' OTLP/gRPC: it reaches that port, so the TLS layer decides; the
OTLP/HTTP port is no flow of app1's, and its firewall drops it; the backend's way in, the agent's receiver
on app1's loopback) and from the controller (the lab's
tests, with the operator's certificate): plain HTTP fails, TLS without a client certificate is refused,
a certificate of another CA is refused, and a canary span sent any of those ways never reaches Jaeger,
while one sent with a certificate of the CA and a sender's bearer token does. configtls has no
per-identity list (any certificate of the CA passes the handshake), so the gateway also asks each sender
for its own token (roles/_otlp_tokens.py): a certificate of the CA without one, or with a made-up one,
is refused over HTTP (401) and gRPC (UNAUTHENTICATED), and its canary is never stored.
"""

from __future__ import annotations

import json
import secrets
import shlex
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import pytest
from cryptography import x509
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from lab import operator_tls
from lab.hosts import ssh_argv
from lab.paths import INTRUDER
from lab.probe import _argv
from roles._pki import CertificateAuthority, environment_ca
from roles._tls import OTLP_TLS_LISTENERS
from roles.otel_collector import TLS as COLLECTOR_TLS
from tests.e2e.tracing_load import jaeger_trace
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.tls, pytest.mark.tracing]

ENVIRONMENT = "lab"
STRANGER_DIR = "/tmp/sentinel-otlp-tls-test"  # on app1: a certificate of another CA, removed afterwards
CANARY_SERVICE = "otlp-tls-canary"
STORE_WAIT_S = 90


# Runs where the request is sent from (a lab host over SSH, the intruder's namespace, the controller):
# [address, port, protocol ("http" | "grpc"), tls ([ca, cert, key] or null for plain), body, token or null] on stdin;
# prints [status or null, text]. TLS 1.2 at most: a refused client certificate is then an alert inside
# the handshake, not an EOF racing the request.
_SEND = r"""
import http.client, json, socket, ssl, sys
address, port, protocol, tls, body, token = json.load(sys.stdin)
def context():
    c = ssl.create_default_context(cafile=tls[0])
    c.maximum_version = ssl.TLSVersion.TLSv1_2
    if tls[1]:
        c.load_cert_chain(tls[1], tls[2])
    if protocol == "grpc":
        c.set_alpn_protocols(["h2"])
    return c
try:
    if protocol == "grpc":
        raw = socket.create_connection((address, port), timeout=5)
        s = context().wrap_socket(raw, server_hostname=address) if tls else raw
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        first = s.recv(9)
        s.close()
        # An HTTP/2 SETTINGS frame (type 4) is a gRPC server talking; anything else is not.
        print(json.dumps([200 if len(first) == 9 and first[3] == 4 else None, repr(first[:40])]))
    else:
        if tls:
            c = http.client.HTTPSConnection(address, port, context=context(), timeout=5)
        else:
            c = http.client.HTTPConnection(address, port, timeout=5)
        headers = {"Content-Type": "application/json", **({"Authorization": "Bearer " + token} if token else {})}
        c.request("POST", "/v1/traces", body=body.encode(), headers=headers)
        r = c.getresponse()
        print(json.dumps([r.status, r.read(300).decode(errors="replace")]))
except Exception as err:
    print(json.dumps([None, f"{type(err).__name__}: {err}"]))
"""


def send_from(place: str, listener, tls: tuple | None, body: str = "", token: str | None = None) -> tuple[int | None, str]:
    protocol = "grpc" if listener.name == "gateway.otlp_grpc" else "http"
    request = json.dumps([listener.address, listener.port, protocol, list(tls) if tls else None, body, token])
    result = subprocess.run(_argv(place, _SEND), input=request, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"send from {place} failed: {result.stderr.strip()[-500:]}")
    status, text = json.loads(result.stdout)
    return status, text


MADE_UP_TOKEN = "A" * 43  # the shape of a real token (roles/_otlp_tokens.py), known to no gateway


def grpc_export(listener, tls: tuple[str, str, str], token: str | None, trace_id: str) -> str:
    """One OTLP/gRPC Export of a canary span from the controller, as the agents' exporter sends it: the
    status code's name ("OK", "UNAUTHENTICATED", ...)."""
    import grpc
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    ca, cert, key = (open(path, "rb").read() for path in tls)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    request = Parse(canary(trace_id), ExportTraceServiceRequest())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    # OTLP/JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64: set them as bytes.
    span.trace_id, span.span_id = bytes.fromhex(trace_id), secrets.token_bytes(8)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.secure_channel(f"{listener.address}:{listener.port}", credentials) as channel:
        try:
            TraceServiceStub(channel).Export(request, metadata=metadata, timeout=20)
        except grpc.RpcError as error:
            return error.code().name
    return "OK"


def canary(trace_id: str) -> str:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": CANARY_SERVICE}}]},
        "scopeSpans": [{"scope": {"name": "test_tls_otlp"}, "spans": [{
            "traceId": trace_id, "spanId": secrets.token_hex(8), "name": "canary", "kind": 2,
            "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now),
        }]}],
    }]})


@pytest.fixture(scope="module")
def lab(first_converge, tmp_path_factory):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    tel, app = hosts_in("telemetry")[0], hosts_in("app")[0]
    topology = tel.topology
    # Another CA (the same environment name) with a certificate for app1's agent: on the controller (the
    # intruder's namespace sees the same files) and copied to app1.
    root = tmp_path_factory.mktemp("stranger")
    stranger = CertificateAuthority.open(ENVIRONMENT, root)
    stranger.issue(app.name, "agent")
    local = (str(root / "ca.crt"), str(root / "leaves" / f"{app.name}.agent.crt"), str(root / "leaves" / f"{app.name}.agent.key"))
    copy = f"rm -rf {STRANGER_DIR} && mkdir -m 0700 {STRANGER_DIR} && cd {STRANGER_DIR} && python3 -c " + shlex.quote(
        "import json, sys\nfor name, text in json.load(sys.stdin).items(): open(name, 'w').write(text)")
    files = {name: open(path).read() for name, path in zip(("ca.crt", "other.crt", "other.key"), local)}
    subprocess.run(ssh_argv(app.name, copy), input=json.dumps(files), text=True, check=True, timeout=60)
    on_app = (COLLECTOR_TLS.ca, f"{STRANGER_DIR}/other.crt", f"{STRANGER_DIR}/other.key")
    yield {"topology": topology, "tel": tel, "app": app, "stranger_local": local, "stranger_app": on_app,
           "query": f"https://{tel.settings.address}:{tel.settings.traces.jaeger.query_port}"}
    subprocess.run(ssh_argv(app.name, f"rm -rf {STRANGER_DIR}"), check=False, timeout=60)


def _listeners(lab):
    """The gateways' OTLP listeners (the agent's is on the loopback of its host: `_agent_receiver`)."""
    return [l for name in OTLP_TLS_LISTENERS for l in lab["topology"].instances(name) if l.spec.scope != "local"]


def _from_app(lab):
    """The gateway listeners app1 has a flow to (the agent's OTLP/gRPC to the pool); the others its firewall drops."""
    clients = lambda l: {host for host, _ in lab["topology"].clients(l.name)}
    reached = [l for l in _listeners(lab) if lab["app"].name in clients(l)]
    assert reached, "app1 has no flow to any gateway"
    return reached, [l for l in _listeners(lab) if lab["app"].name not in clients(l)]


@dataclass(frozen=True)
class _Loopback:
    """The agent's OTLP/HTTP receiver as the backend reaches it: 127.0.0.1 on its own host."""

    name: str
    address: str
    port: int


def _agent_receiver(lab) -> _Loopback:
    listener = lab["topology"].listener(lab["app"].name, "agent.otlp_http")
    return _Loopback(listener.name, "127.0.0.1", listener.port)


def _refused(status) -> bool:
    return status != 200


def test_the_intruder_gets_nothing_even_with_a_valid_certificate(lab):
    """The firewall confines who reaches the gateway: the intruder is in no flow."""
    operator = operator_tls.operator_files()
    for listener in _listeners(lab):
        for tls in (None, (operator[0], None, None), lab["stranger_local"], operator):
            status, text = send_from(INTRUDER, listener, tls, canary(secrets.token_hex(16)))
            assert status is None, f"the intruder reached {listener.host} {listener.name} ({tls}): {status} {text}"


def test_from_app1_plain_http_no_certificate_and_another_ca_are_refused(lab):
    ca = COLLECTOR_TLS.ca  # app1's copy of the environment CA, next to its agent's certificate
    reached, dropped = _from_app(lab)
    for listener in dropped:  # no flow from app1 (the backend sends to its agent): the firewall drops even the agent's identity
        status, text = send_from(lab["app"].name, listener, (ca, COLLECTOR_TLS.cert, COLLECTOR_TLS.key), canary(secrets.token_hex(16)))
        assert status is None and "timed out" in text, (listener.host, listener.name, status, text)
    for listener in [*reached, _agent_receiver(lab)]:
        status, text = send_from(lab["app"].name, listener, None, canary(secrets.token_hex(16)))
        assert _refused(status), (listener.name, "plain", status, text)
        if listener.name == "gateway.otlp_http":
            # Go's answer to plain HTTP on a TLS port: a 400 and the connection closed, which a client still
            # sending its body may see as the reset alone.
            assert (status == 400 and "HTTPS server" in text) or (status is None and "ConnectionResetError" in text), text
        status, text = send_from(lab["app"].name, listener, (ca, None, None), canary(secrets.token_hex(16)))
        assert status is None and "HANDSHAKE_FAILURE" in text, (listener.name, "no certificate", text)
        status, text = send_from(lab["app"].name, listener, lab["stranger_app"], canary(secrets.token_hex(16)))
        assert status is None and "UNKNOWN_CA" in text, (listener.name, "another CA", text)


def test_from_app1_the_agents_certificate_is_admitted_by_every_gateway_and_the_backends_by_the_agent(lab):
    from roles.backend.tls import TLS as BACKEND_TLS

    for listener in _from_app(lab)[0]:
        status, text = send_from(lab["app"].name, listener, (COLLECTOR_TLS.ca, COLLECTOR_TLS.cert, COLLECTOR_TLS.key), canary(secrets.token_hex(16)))
        assert status == 200, (listener.host, listener.name, status, text)
    status, text = send_from(lab["app"].name, _agent_receiver(lab), (BACKEND_TLS.ca, BACKEND_TLS.cert, BACKEND_TLS.key), canary(secrets.token_hex(16)))
    assert status == 200, ("agent.otlp_http", status, text)


def test_the_gateway_serves_tls_1_2_or_later_with_its_certificate_from_the_ca(lab):
    ca = environment_ca(ENVIRONMENT)
    ca_file, cert, key = operator_tls.operator_files()
    for listener in _listeners(lab):
        context = ssl.create_default_context(cafile=ca_file)
        context.load_cert_chain(cert, key)
        with context.wrap_socket(socket.create_connection((listener.address, listener.port), timeout=10),
                                 server_hostname=listener.address) as tls:
            der = tls.getpeercert(binary_form=True)
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        served = x509.load_der_x509_certificate(der)
        served.verify_directly_issued_by(ca.cert)
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert listener.host in names.get_values_for_type(x509.DNSName)
        old = ssl.create_default_context(cafile=ca_file)
        old.load_cert_chain(cert, key)
        old.set_ciphers("ALL:@SECLEVEL=0")
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with old.wrap_socket(socket.create_connection((listener.address, listener.port), timeout=10), server_hostname=listener.address):
                pass


def test_a_canary_without_a_valid_certificate_and_token_never_reaches_jaeger_and_one_with_both_does(lab):
    http_listener = lab["topology"].instances("gateway.otlp_http")[0]
    app = lab["app"].name
    operator = operator_tls.operator_files()
    refused = {}
    attempts = [
        (INTRUDER, None), (INTRUDER, operator), (INTRUDER, lab["stranger_local"]),
        (app, None), (app, (COLLECTOR_TLS.ca, None, None)), (app, lab["stranger_app"]),
        ("controller", None), ("controller", (operator[0], None, None)), ("controller", lab["stranger_local"]),
        # The right certificate without the sender's token, or with a made-up one.
        ("controller", operator, http_listener, None), ("controller", operator, http_listener, MADE_UP_TOKEN),
    ]
    agent = _agent_receiver(lab)
    # The backend's way in, from app1 itself: the agent's receiver, which hands what it takes to the gateway pool.
    attempts += [(app, None, agent), (app, (COLLECTOR_TLS.ca, None, None), agent), (app, lab["stranger_app"], agent)]
    for place, tls, *target in attempts:
        trace_id = secrets.token_hex(16)
        status, text = send_from(place, target[0] if target else http_listener, tls, canary(trace_id), *target[1:])
        assert status != 200, (place, tls, status, text)
        if target[1:]:
            assert status == 401, (place, "the operator's certificate without its token", status, text)
        refused[trace_id] = (place, tls)
    for token in (None, MADE_UP_TOKEN):  # the same over OTLP/gRPC, as the agents send
        for listener in lab["topology"].instances("gateway.otlp_grpc"):
            trace_id = secrets.token_hex(16)
            assert grpc_export(listener, operator, token, trace_id) == "UNAUTHENTICATED", (listener.host, token and "made up")
            refused[trace_id] = ("controller", "gRPC", listener.host, token and "made up")
    admitted = {}
    from roles.backend.tls import TLS as BACKEND_TLS

    operator_token = operator_tls.otlp_headers()["Authorization"].split(" ", 1)[1]
    for place, tls, target, token in ((app, (BACKEND_TLS.ca, BACKEND_TLS.cert, BACKEND_TLS.key), agent, None),
                                      ("controller", operator, http_listener, operator_token)):
        trace_id = secrets.token_hex(16)
        status, text = send_from(place, target, tls, canary(trace_id), token)
        assert status == 200, (place, status, text)
        admitted[trace_id] = place
    for listener in lab["topology"].instances("gateway.otlp_grpc"):
        trace_id = secrets.token_hex(16)
        assert grpc_export(listener, operator, operator_token, trace_id) == "OK", listener.host
        admitted[trace_id] = ("controller", "gRPC", listener.host)

    session = operator_tls.operator_session()  # Jaeger's query API asks for a client certificate too
    session.trust_env = False

    @retry(stop=stop_after_delay(STORE_WAIT_S), wait=wait_fixed(3), retry=retry_if_result(lambda missing: bool(missing)),
           retry_error_callback=lambda state: state.outcome.result())
    def missing_admitted():
        return [t for t in admitted if not jaeger_trace(session, lab["query"], t)]

    assert missing_admitted() == [], f"admitted canaries not in Jaeger after {STORE_WAIT_S} s"
    # They were sent before the admitted ones, through the same gateway: had any been taken, it would be stored by now.
    leaked = {t: refused[t] for t in refused if jaeger_trace(session, lab["query"], t)}
    assert not leaked, f"canaries sent without a valid certificate or token reached Jaeger: {leaked}"


def test_sender_keys_are_readable_by_their_service_only(lab):
    from roles.backend.tls import CREDENTIAL, credential_path, dropin_path

    app = lab["app"]
    unit = app.settings.backend.unit
    checks = [(lab["tel"], COLLECTOR_TLS.key, "root", "otelcol", 0o640), (app, COLLECTOR_TLS.key, "root", "otelcol", 0o640),
              # The backend's key is root's alone: the collector agent is in the sentinel group (issue 22).
              (app, "/etc/sentinel/tls/sentinel.key", "root", "root", 0o600),
              # The env file holds the Sentry DSN: systemd reads it as root (EnvironmentFile=), nothing else may.
              (app, app.settings.backend.env_file, "root", "root", 0o600)]
    for host, path, user, group, mode in checks:
        key = host.testinfra.file(path)
        assert (key.user, key.group, key.mode) == (user, group, mode), (host.name, path)
    env = app.testinfra.file(app.settings.backend.env_file).content_string
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=https://" in env
    for variable, path in (("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/sentinel/tls/ca.crt"),
                           ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/sentinel/tls/sentinel.crt"),
                           ("OTEL_EXPORTER_OTLP_CLIENT_KEY", credential_path(unit))):
        assert f"{variable}={path}\n" in env
    # systemd hands the backend its key: the drop-in is loaded, and the running unit's copy is
    # readable by the backend's user (the SDK opens it at start), by neither user on disk.
    assert f"LoadCredential={CREDENTIAL}:/etc/sentinel/tls/sentinel.key" in app.testinfra.file(dropin_path(unit)).content_string
    assert f"LoadCredential={CREDENTIAL}:/etc/sentinel/tls/sentinel.key" in app.testinfra.check_output(f"systemctl cat -- {unit}")
    app.testinfra.run_expect([0], f"runuser -u sentinel -- test -r {credential_path(unit)}")
    # The collector agent is in the backend's group (its log directory) and still reads neither the key nor the DSN.
    for path in ("/etc/sentinel/tls/sentinel.key", app.settings.backend.env_file):
        app.testinfra.run_expect([1], f"runuser -u otelcol -- test -r {path}")
    for user in ("sentinel", "otelcol"):
        app.testinfra.run_expect([1], f"runuser -u {user} -- test -r /etc/sentinel/tls/sentinel.key")
    app.testinfra.run_expect([1], f"runuser -u otelcol -- test -r {credential_path(unit)}")
