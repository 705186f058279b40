"""The lab's Node backend exports spans over TLS with its client certificate, configured by the env file alone.

@opentelemetry/otlp-exporter-base 0.223.0 (what exporter-trace-otlp-http uses in Node) reads
OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY
(configuration/otlp-node-http-env-configuration.js) into its https agent: the backend's source sets
nothing. Here the backend runs with the variables the `backend` role writes (roles/backend
env_values) against an OTLP double on the loopback that requires a client certificate of the CA.
"""

from __future__ import annotations

import ssl
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from roles._pki import CertificateAuthority
from roles._tls import TlsPaths, otlp_sdk_env
from roles.backend import env_values
from tests.tls_files import tls_on_disk
from tests.unit.test_backend_node import STAFF, _OtlpCollector, node_modules, start_backend  # noqa: F401 (fixtures)
from tests.unit.test_tracing import lab_environment

pytestmark = [pytest.mark.tracing, pytest.mark.tls]


class _MutualTlsCollector(_OtlpCollector):
    def do_POST(self) -> None:  # noqa: N802
        self.server.peers.append(self.connection.getpeercert())
        super().do_POST()


def _collector(paths: TlsPaths) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MutualTlsCollector)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths.cert, paths.key)
    context.load_verify_locations(paths.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.exports, server.peers = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _client_files(root, ca: CertificateAuthority) -> TlsPaths:
    """The backend's files as the role lays them out, under `root`."""
    leaf = ca.issue("app1", "backend")
    paths = TlsPaths("sentinel", base=str(root / "client"))
    (root / "client" / "sentinel" / "tls").mkdir(parents=True)
    for path, pem in ((paths.ca, leaf.ca_pem), (paths.cert, leaf.cert_pem), (paths.key, leaf.key_pem)):
        open(path, "w").write(pem)
    return paths


def _sdk_env(paths: TlsPaths, endpoint: str) -> dict[str, str]:
    """The OTLP variables of the env file the role renders for app1, pointed at `endpoint` and `paths`."""
    app = lab_environment()["app1"]
    values = env_values(app.settings, endpoint, "", tls_env=otlp_sdk_env(paths))
    return {k: v for k, v in values.items() if k.startswith("OTEL_EXPORTER_OTLP_")}


def _spans_arrived(server, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path == "/v1/traces" for path, _, _ in list(server.exports)):
            return True
        time.sleep(0.1)
    return False


def test_the_sdk_sends_with_the_env_files_certificate_and_checks_the_server_with_its_ca(start_backend, tmp_path):
    server_paths = tls_on_disk(tmp_path, "otelcol", "tel1")  # a server certificate naming 127.0.0.1
    ca = CertificateAuthority.open("test", tmp_path / "pki")
    collector = _collector(server_paths)
    try:
        env = _sdk_env(_client_files(tmp_path, ca), f"https://127.0.0.1:{collector.server_address[1]}")
        assert set(env) >= {"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY"}
        backend = start_backend(**env, OTEL_BSP_SCHEDULE_DELAY="100", OTEL_TRACES_SAMPLER="always_on")
        assert backend.request("GET", "/api/members/m-0003", STAFF)[0] == 200
        assert _spans_arrived(collector), "no span reached the collector double over mutual TLS"
    finally:
        collector.shutdown()
    uris = {value for peer in collector.peers for kind, value in peer.get("subjectAltName", ()) if kind == "URI"}
    assert uris == {"spiffe://sentinel/test/app1/backend"}, collector.peers


def test_without_the_client_certificate_variables_nothing_gets_through(start_backend, tmp_path):
    """The control: the same double refuses the SDK when the env file names only the CA."""
    server_paths = tls_on_disk(tmp_path, "otelcol", "tel1")
    ca = CertificateAuthority.open("test", tmp_path / "pki")
    collector = _collector(server_paths)
    try:
        env = _sdk_env(_client_files(tmp_path, ca), f"https://127.0.0.1:{collector.server_address[1]}")
        del env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"], env["OTEL_EXPORTER_OTLP_CLIENT_KEY"]
        backend = start_backend(**env, OTEL_BSP_SCHEDULE_DELAY="100", OTEL_TRACES_SAMPLER="always_on")
        assert backend.request("GET", "/api/members/m-0003", STAFF)[0] == 200
        assert not _spans_arrived(collector, timeout=5)
    finally:
        collector.shutdown()
