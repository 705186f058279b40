"""TLS and client identity on the lab's Prometheus, Alertmanager and node_exporter (roles/_tls.py).

From the controller, which holds the environment CA and every certificate it issued (roles/_pki.py),
each identity is tried against each listener; from the lab's hosts, the wrong peers try with the
certificates they hold. A refusal is a failed handshake or a connection the server closed: no
HTTP status at all.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl

import pytest
from cryptography import x509

from lab import operator_tls
from lab.paths import INTRUDER
from lab.probe import request_from
from roles._pki import CertificateAuthority, environment_ca
from roles._tls import TLS_LISTENERS, TlsPaths
from tests.stack import hosts_in, stack_hosts

pytestmark = [pytest.mark.lab, pytest.mark.tls]

ENVIRONMENT = "lab"


@pytest.fixture(scope="module")
def lab(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    topology = stack_hosts()[0].topology
    return topology, environment_ca(ENVIRONMENT)


def _instances(topology):
    return [l for name in TLS_LISTENERS for l in topology.instances(name)]


def _files(ca: CertificateAuthority, host: str | None, component: str) -> tuple[str, str]:
    leaves = ca.directory / "leaves"
    name = f"{host}.{component}" if host else component
    return str(leaves / f"{name}.crt"), str(leaves / f"{name}.key")


def _context(ca_file: str, cert: tuple[str, str] | None = None, tls11: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(*cert)
    if tls11:
        # Offer TLS 1.1 only; the controller's OpenSSL must be allowed to, so that the refusal is the server's.
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _get(listener, path: str, context: ssl.SSLContext) -> int | str:
    """The HTTP status, or "refused: <why>" when the TLS layer refused."""
    host, port = listener.address, listener.port
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
        return f"refused: {err}"
    finally:
        connection.close()


def _path(listener) -> str:
    return "/metrics" if listener.name == "node_exporter.metrics" else "/-/ready"


def test_plain_http_gets_no_answer_but_a_refusal(lab):
    topology, _ = lab
    for listener in _instances(topology):
        connection = http.client.HTTPConnection(listener.address, listener.port, timeout=10)
        try:
            connection.request("GET", _path(listener))
            response = connection.getresponse()
            status, body = response.status, response.read(500).decode(errors="replace")
        finally:
            connection.close()
        assert status == 400 and "HTTPS server" in body, f"{listener.host} {listener.name}: {status} {body}"


def test_the_served_certificate_chains_to_the_environment_ca_and_names_the_host(lab):
    topology, ca = lab
    operator = _files(ca, None, "operator")
    ca_file = operator_tls.operator_files()[0]
    for listener in _instances(topology):
        context = _context(ca_file, operator)  # check_hostname on: the address the topology gives
        with context.wrap_socket(socket.create_connection((listener.address, listener.port), timeout=10),
                                 server_hostname=listener.address) as tls:
            der = tls.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        cert.verify_directly_issued_by(ca.cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert listener.host in names.get_values_for_type(x509.DNSName)
        assert _get(listener, _path(listener), context) == 200


def test_tls_1_1_is_refused(lab):
    topology, _ = lab
    ca_file, cert, key = operator_tls.operator_files()
    for listener in _instances(topology):
        result = _get(listener, _path(listener), _context(ca_file, (cert, key), tls11=True))
        assert str(result).startswith("refused") and "PROTOCOL_VERSION" in str(result).upper(), f"{listener.host} {listener.name}: {result}"


def test_no_client_certificate_is_refused(lab):
    topology, _ = lab
    ca_file = operator_tls.operator_files()[0]
    for listener in _instances(topology):
        result = _get(listener, _path(listener), _context(ca_file))
        assert str(result).startswith("refused"), f"{listener.host} {listener.name} answered {result} without a client certificate"


def test_a_certificate_of_another_ca_with_the_operators_name_is_refused(lab, tmp_path):
    topology, _ = lab
    stranger = CertificateAuthority.open(ENVIRONMENT, tmp_path / "other-ca")  # same environment name, another key
    stranger.issue(None, "operator")
    ca_file = operator_tls.operator_files()[0]
    for listener in _instances(topology):
        result = _get(listener, _path(listener), _context(ca_file, _files(stranger, None, "operator")))
        assert str(result).startswith("refused"), f"{listener.host} {listener.name} answered {result}"


def test_an_expired_certificate_of_the_right_ca_is_refused(lab, tmp_path):
    topology, ca = lab
    # The environment CA's own key, issuing into a directory of the test: the operator's leaf stays as it is.
    expired = CertificateAuthority(tmp_path, ENVIRONMENT, ca.cert, ca._key)
    expired.issue(None, "operator", lifetime=dt.timedelta(days=1), now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    ca_file = operator_tls.operator_files()[0]
    for listener in _instances(topology):
        result = _get(listener, _path(listener), _context(ca_file, _files(expired, None, "operator")))
        assert str(result).startswith("refused"), f"{listener.host} {listener.name} answered {result}"


def test_alertmanager_admits_prometheus_grafana_and_the_operator_only(lab):
    """Every Alertmanager admits every monitoring host's Prometheus and Grafana (with two, each Prometheus
    pushes to both); another host's Alertmanager is a gossip peer, not an API client: refused."""
    topology, ca = lab
    ca_file = operator_tls.operator_files()[0]
    mons = [h.name for h in hosts_in("monitoring")]
    for alertmanager in topology.instances("alertmanager.web"):
        admitted = [(m, c) for m in mons for c in ("prometheus", "grafana")] + [(None, "operator")]
        refused = [(h.name, "node_exporter") for h in stack_hosts()] + [(h.name, "gateway") for h in hosts_in("telemetry")]
        refused += [(m, "alertmanager") for m in mons if m != alertmanager.host]
        for host, component in admitted:
            status = _get(alertmanager, "/api/v2/silences", _context(ca_file, _files(ca, host, component)))
            assert status == 200, (alertmanager.host, host, component, status)
        for host, component in refused:
            result = _get(alertmanager, "/api/v2/silences", _context(ca_file, _files(ca, host, component)))
            assert str(result).startswith("refused"), f"{host}'s {component} identity reached {alertmanager.host}'s Alertmanager API: {result}"


def test_prometheus_admits_the_gateway_and_refuses_a_node_exporter(lab):
    topology, ca = lab
    ca_file = operator_tls.operator_files()[0]
    tel = hosts_in("telemetry")[0].name
    for prometheus in topology.instances("prometheus.web"):  # each of a pair gets the remote write
        assert _get(prometheus, "/-/ready", _context(ca_file, _files(ca, tel, "gateway"))) == 200, prometheus.host
        result = _get(prometheus, "/-/ready", _context(ca_file, _files(ca, tel, "node_exporter")))
        assert str(result).startswith("refused"), (prometheus.host, result)


def test_the_wrong_peers_are_refused_with_the_certificates_they_hold(lab):
    """From tel1 (allowed to reach Prometheus for remote write) with its node_exporter's certificate: no
    remote write. From app1 with its own: no silence (its packets do not even get there). From the intruder,
    with no certificate: nothing."""
    topology, _ = lab
    prometheus = topology.instances("prometheus.web")[0]  # the first monitoring host's (mon1)
    alertmanager = topology.instances("alertmanager.web")[0]
    node = TlsPaths("node_exporter")
    mine = (node.ca, node.cert, node.key)
    tel, app = hosts_in("telemetry")[0].name, hosts_in("app")[0].name
    status, answer = request_from(tel, "POST", f"https://{prometheus.address}:{prometheus.port}/api/v1/write", "x", tls=mine)
    assert status is None, f"tel1's node_exporter identity reached the remote-write API: {status} {answer[:200]}"
    gateway = TlsPaths("otelcol")
    status, _ = request_from(tel, "GET", f"https://{prometheus.address}:{prometheus.port}/-/ready", tls=(gateway.ca, gateway.cert, gateway.key))
    assert status == 200  # the gateway's identity, from the same host: admitted (the refusal above is the identity's)
    silence = json.dumps({"matchers": [{"name": "alertname", "value": ".+", "isRegex": True}], "startsAt": "2026-01-01T00:00:00Z",
                          "endsAt": "2030-01-01T00:00:00Z", "createdBy": "app1", "comment": "x"})
    status, answer = request_from(app, "POST", f"https://{alertmanager.address}:{alertmanager.port}/api/v2/silences", silence, tls=mine)
    assert status is None, f"app1 silenced: {status} {answer[:200]}"
    for listener in _instances(topology):
        status, answer = request_from(INTRUDER, "GET", f"https://{listener.address}:{listener.port}{_path(listener)}", tls=(None, None, None))
        assert status is None, f"the intruder reached {listener.host} {listener.name}: {status}"


def test_keys_on_the_hosts_are_readable_by_their_service_only_and_the_ca_key_is_on_none(lab):
    _, ca = lab
    ca_key_line = (ca.directory / "ca.key").read_text().splitlines()[1]
    services = {"monitoring": ("prometheus", "alertmanager", "node_exporter"), "telemetry": ("otelcol", "node_exporter"),
                "app": ("node_exporter",)}
    for host in stack_hosts():
        for group, names in services.items():
            if group not in host.groups:
                continue
            for service in names:
                paths = TlsPaths(service)
                key, cert = host.testinfra.file(paths.key), host.testinfra.file(paths.cert)
                assert (key.user, key.group, key.mode) == ("root", service, 0o640), (host.name, service)
                assert cert.mode == 0o644 and host.testinfra.file(paths.ca).mode == 0o644
        # Where the converge writes (configs, textfiles) and where an upload could be left behind.
        found = host.testinfra.run("grep -rlsF -- %s /etc /opt /root /tmp /var/lib/node_exporter", ca_key_line)
        assert not found.stdout.strip(), f"the CA key is on {host.name}: {found.stdout}"


def test_the_expiry_metric_of_every_certificate_reaches_prometheus(lab):
    topology, _ = lab
    prometheus = topology.instances("prometheus.web")[0]  # each Prometheus scrapes every textfile
    url = f"https://{prometheus.address}:{prometheus.port}/api/v1/query"
    from lab.alert_drills import wait_for

    def series():
        result = operator_tls.get(url, params={"query": "sentinel_tls_certificate_not_after_seconds"}, timeout=10).json()["data"]["result"]
        return {(r["metric"]["host"], r["metric"]["service"]): float(r["value"][1]) for r in result}

    expected = {(l.host, TLS_LISTENERS[l.name]) for l in _instances(topology)}
    found = wait_for("every certificate's notAfter in Prometheus", lambda: (lambda s: s if expected <= set(s) else None)(series()), 120, 5)
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    assert all(now + 19 * 86400 < v <= now + 31 * 86400 for v in found.values()), found
