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


def _get(port: int, ca_file: str, cert: tuple[str, str] | None = None, tls11: bool = False, method: str = "GET",
         path: str = "/metrics", body: bytes | None = None) -> int | str:
    """The status, or "refused: <the server's alert>". TLS 1.2 at most: the server checks the client's certificate
    inside the handshake, so its alert (unknown CA, bad certificate...) is what the client reads; under TLS 1.3 it
    comes after the handshake and may lose the race with the request (an EOF instead)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(*cert)
    if tls11:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
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
    assert "HANDSHAKE_FAILURE" in str(_get(port, paths.ca))  # TLS 1.2's alert for a missing required certificate


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


def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


def test_prometheus_scrapes_a_node_exporter_that_admits_it_and_not_one_that_does_not(tmp_path):
    """The client side as the roles render it: prometheus.yml's https job with Prometheus's own certificate,
    against node_exporter's web config; a node_exporter that admits only the operator refuses the scrape."""
    import json
    import requests
    import yaml

    from roles._pki import identity_uri
    from roles.prometheus import ScrapeJob, Target, config
    from roles._tls import TlsPaths
    from lab.alert_drills import wait_for

    promtool_dir = tmp_path / "bin"
    prometheus_bin = extract("prometheus", "prometheus", promtool_dir)
    node_bin = extract("node_exporter", "node_exporter", promtool_dir)
    prom = tls_on_disk(tmp_path, "prometheus", "localhost")
    node = tls_on_disk(tmp_path, "node_exporter", "localhost")
    operator = _identity(CertificateAuthority.open("test", tmp_path / "pki"), None, "operator")
    strict = TlsPaths("node_exporter", base=node.base)  # the same files, a web config of its own
    admits_prometheus = web_config(node, [identity_uri("test", "localhost", "prometheus")])
    admits_operator_only = web_config(strict, [identity_uri("test", None, "operator")])
    Path(node.web_config).write_text(admits_prometheus)
    (tmp_path / "strict.yml").write_text(admits_operator_only)
    Path(prom.web_config).write_text(web_config(prom, [identity_uri("test", None, "operator")]))
    good_port, strict_port, prom_port = _free_port(), _free_port(), _free_port()
    settings = environment(tmp_path, "dev", three_hosts("dev")).host("mon1.dev").settings
    jobs = [ScrapeJob("node", (Target("good", f"127.0.0.1:{good_port}"), Target("strict", f"127.0.0.1:{strict_port}")), tls=True)]
    data = config(settings, jobs, [], prom)
    data["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(data))
    processes = [
        subprocess.Popen([node_bin, f"--web.config.file={node.web_config}", f"--web.listen-address=127.0.0.1:{good_port}",
                          "--collector.disable-defaults"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([node_bin, f"--web.config.file={tmp_path / 'strict.yml'}", f"--web.listen-address=127.0.0.1:{strict_port}",
                          "--collector.disable-defaults"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}", f"--web.config.file={prom.web_config}",
                          f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        _wait_listening(prom_port)

        def targets():
            answer = requests.get(f"https://127.0.0.1:{prom_port}/api/v1/targets", cert=operator, verify=prom.ca, timeout=5).json()
            found = {t["labels"]["host"]: t for t in answer["data"]["activeTargets"]}
            return found if all(t["health"] != "unknown" for t in found.values()) and len(found) == 2 else None

        found = wait_for("both targets scraped once", targets, 60, 1)
        assert found["good"]["health"] == "up", json.dumps(found["good"])
        assert found["good"]["scrapeUrl"].startswith("https://")
        # Refused in the handshake: with TLS 1.3 the client's side of it ends before the server has checked
        # the certificate, so Prometheus sees either the server's alert or the connection it closed.
        refusal = found["strict"]["lastError"]
        assert found["strict"]["health"] == "down" and any(
            sign in refusal for sign in ("bad certificate", "broken pipe", "connection reset by peer")), refusal
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_alertmanager_takes_alerts_from_prometheus_and_refuses_a_node_exporter(tmp_path):
    """The pinned Alertmanager with the web config the role renders for dev's mon1 (the topology's clients)."""
    from roles._tls import TlsPaths

    binary = extract("alertmanager", "alertmanager", tmp_path / "bin")
    topology = environment(tmp_path, "dev", three_hosts("dev")).topology
    ca = CertificateAuthority.open("dev", tmp_path / "pki")
    server = ca.issue("mon1.dev", "alertmanager", ("localhost",), ("127.0.0.1",))
    paths = TlsPaths("alertmanager", base=str(tmp_path / "etc"))
    Path(paths.dir).mkdir(parents=True)
    Path(paths.ca).write_text(server.ca_pem)
    Path(paths.cert).write_text(server.cert_pem)
    Path(paths.key).write_text(server.key_pem)
    Path(paths.web_config).write_text(web_config(paths, allowed_clients(topology, "mon1.dev", "alertmanager.web")))
    (tmp_path / "am.yml").write_text("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n")
    port = _free_port()
    process = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--web.config.file={paths.web_config}",
                                f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    alert = b'[{"labels": {"alertname": "TlsProbe"}}]'
    try:
        _wait_listening(port)
        for host, component in (("mon1.dev", "prometheus"), ("mon1.dev", "grafana")):
            assert _get(port, paths.ca, _identity(ca, host, component), method="POST", path="/api/v2/alerts", body=alert) == 200
        for host, component in (("app1.dev", "node_exporter"), ("tel1.dev", "gateway")):
            result = _get(port, paths.ca, _identity(ca, host, component), method="POST", path="/api/v2/alerts", body=alert)
            assert "BAD_CERTIFICATE" in str(result), (host, component, result)
        # Over TLS 1.3 (the clients' default) too: refused, whichever way the client reads it.
        context = ssl.create_default_context(cafile=paths.ca)
        context.load_cert_chain(*_identity(ca, "app1.dev", "node_exporter"))
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            connection.request("POST", "/api/v2/alerts", body=alert, headers={"Content-Type": "application/json"})
            connection.getresponse()
    finally:
        process.terminate()
        process.wait(10)
