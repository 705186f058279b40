"""exporter-toolkit's TLS as the roles configure it, on the controller's loopback: the pinned node_exporter
serves the web config rendered for Alertmanager's listener (the topology's clients), and each kind of
client is refused by the server for its own reason. No lab needed; the lab's own checks are test_tls.py."""

from __future__ import annotations

import datetime as dt
import http.client
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from roles._pki import CertificateAuthority
from roles._tls import allowed_clients, web_config
from tests.environments import environment, three_hosts
from tests.mirror_binaries import extract
from tests.tls_files import tls_on_disk

pytestmark = pytest.mark.tls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """node_exporter with the web config of dev's Alertmanager listener (admits Prometheus, Grafana, the operator)."""
    root = tmp_path_factory.mktemp("tls")
    binary = extract("node_exporter", "node_exporter", root)
    topology = environment(root, "dev", three_hosts("dev")).topology
    paths = tls_on_disk(root, "node_exporter", "localhost")
    ca = CertificateAuthority.open("test", root / "pki")
    Path(paths.web_config).write_text(web_config(paths, [s.replace("/dev/", "/test/") for s in
                                                         allowed_clients(topology, "mon1.dev", "alertmanager.web")]))
    port = _free_port()
    process = subprocess.Popen([binary, f"--web.config.file={paths.web_config}", f"--web.listen-address=127.0.0.1:{port}",
                                "--collector.disable-defaults"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, paths, ca, root
    process.terminate()
    process.wait(10)


def _identity(ca: CertificateAuthority, host: str | None, component: str) -> tuple[str, str]:
    ca.issue(host, component)
    name = f"{host}.{component}" if host else component
    return str(ca.directory / "leaves" / f"{name}.crt"), str(ca.directory / "leaves" / f"{name}.key")


def _get(port: int, ca_file: str, cert: tuple[str, str] | None = None, tls11: bool = False) -> int | str:
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(*cert)
    if tls11:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().status
    except (ssl.SSLError, ConnectionResetError) as err:
        return f"refused: {err}"
    finally:
        connection.close()


def test_the_admitted_identities_get_an_answer(server):
    port, paths, ca, _ = server
    for host, component in ((None, "operator"), ("mon1.dev", "prometheus"), ("mon1.dev", "grafana")):
        assert _get(port, paths.ca, _identity(ca, host, component)) == 200, (host, component)


def test_the_right_ca_but_the_wrong_identity_is_refused(server):
    port, paths, ca, _ = server
    for host, component in (("app1.dev", "node_exporter"), ("tel1.dev", "gateway"), ("mon1.dev", "node_exporter")):
        result = _get(port, paths.ca, _identity(ca, host, component))
        assert "BAD_CERTIFICATE" in str(result), (host, component, result)


def test_no_client_certificate_is_refused(server):
    port, paths, _, _ = server
    assert "CERTIFICATE_REQUIRED" in str(_get(port, paths.ca))


def test_tls_1_1_is_refused_by_the_server(server):
    port, paths, ca, _ = server
    assert "ALERT_PROTOCOL_VERSION" in str(_get(port, paths.ca, _identity(ca, None, "operator"), tls11=True))


def test_another_ca_is_refused_even_with_the_operators_name(server):
    port, paths, _, root = server
    stranger = CertificateAuthority.open("test", root / "stranger")
    assert "UNKNOWN_CA" in str(_get(port, paths.ca, _identity(stranger, None, "operator")))


def test_an_expired_certificate_of_the_right_ca_is_refused(server):
    port, paths, ca, root = server
    expired = CertificateAuthority(root / "expired", "test", ca.cert, ca._key)
    (root / "expired").mkdir(exist_ok=True)
    expired.issue(None, "operator", lifetime=dt.timedelta(days=1), now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    result = _get(port, paths.ca, (str(root / "expired/leaves/operator.crt"), str(root / "expired/leaves/operator.key")))
    assert "CERTIFICATE_EXPIRED" in str(result)


def test_plain_http_is_answered_with_a_refusal(server):
    port, _, _, _ = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 400 and b"HTTPS server" in response.read()
