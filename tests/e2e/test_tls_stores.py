"""The stores behind TLS and client identities on the lab (issue 22): the fronts of VictoriaLogs and Jaeger.

From the controller, which holds every certificate the environment CA issued, each identity is tried
against the store's paths; from tel1 (a host that may reach the store) with the gateway's certificate it
holds, the delete API refuses; from app1 and from the intruder nothing gets through. The fronts refuse at
the HTTP layer (400 without or with a bad certificate, 403 for the wrong identity, no data either way). The erasure end to end (with its own identity) is in
tests/e2e/test_logs.py.
"""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

from lab import operator_tls
from lab.paths import INTRUDER
from lab.probe import request_from
from roles._pki import CertificateAuthority, environment_ca
from roles._tls import ERASURE, TlsPaths, controller_identity
from roles.victorialogs import JOB_TLS
from roles.victorialogs.front import RETENTION
from tests.stack import hosts_in, stack_hosts

pytestmark = [pytest.mark.lab, pytest.mark.tls]

ENVIRONMENT = "lab"


@pytest.fixture(scope="module")
def lab(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    topology = stack_hosts()[0].topology
    return topology, environment_ca(ENVIRONMENT)


def _files(ca: CertificateAuthority, host: str | None, component: str) -> tuple[str, str]:
    if component == ERASURE:  # issued on the controller on first use (the erasure command does the same)
        _, cert, key = controller_identity(ENVIRONMENT, ERASURE)
        return cert, key
    leaves = ca.directory / "leaves"
    name = f"{host}.{component}" if host else component
    return str(leaves / f"{name}.crt"), str(leaves / f"{name}.key")


def _context(cert: tuple[str, str] | None = None, tls11: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=operator_tls.operator_files()[0])
    if cert:
        context.load_cert_chain(*cert)
    if tls11:
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _call(listener, method: str, path: str, context: ssl.SSLContext, body: bytes | None = None) -> tuple[int | str, str]:
    """(HTTP status, body start), or ("refused: <why>", "") when the TLS layer refused. The path is sent as is."""
    connection = http.client.HTTPSConnection(listener.address, listener.port, context=context, timeout=15)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        return response.status, response.read(300).decode(errors="replace")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
        return f"refused: {err}", ""
    finally:
        connection.close()


def _front(topology):
    return topology.instances("victorialogs.http")[0]


def _refused(result) -> bool:
    status = result[0]
    return str(status).startswith("refused") or status in (400, 403)


def test_victorialogs_itself_listens_on_the_loopback_only(lab):
    topology, _ = lab
    tel = hosts_in("telemetry")[0]
    store = topology.listener(tel.name, "victorialogs.local")
    listening = tel.testinfra.check_output("ss -Hltn")
    assert f"127.0.0.1:{store.port}" in listening
    assert f"{tel.settings.ip}:{store.port}" not in listening and f"0.0.0.0:{store.port}" not in listening and f"*:{store.port}" not in listening
    # And the front holds the store's listener on the host's IP.
    assert f"{tel.settings.ip}:{_front(topology).port}" in listening


def test_the_front_refuses_plain_http_tls_1_1_no_certificate_and_another_ca(lab, tmp_path):
    topology, ca = lab
    front = _front(topology)
    connection = http.client.HTTPConnection(front.address, front.port, timeout=10)
    try:
        connection.request("GET", "/select/logsql/query?query=*")
        assert connection.getresponse().status == 400
    finally:
        connection.close()
    operator = _files(ca, None, "operator")
    assert "PROTOCOL_VERSION" in str(_call(front, "GET", "/health", _context(operator, tls11=True))[0]).upper()
    status, body = _call(front, "POST", "/delete/run_task", _context(), b"filter=*")
    assert status == 400 and "No required SSL certificate" in body, (status, body)
    stranger = CertificateAuthority.open(ENVIRONMENT, tmp_path / "other-ca").operator_files()
    status, body = _call(front, "POST", "/delete/run_task", _context((str(stranger[1]), str(stranger[2]))), b"filter=*")
    assert _refused((status, body)) and status != 200, (status, body)
    # The served certificate chains to the environment CA and names the host.
    with _context(operator).wrap_socket(socket.create_connection((front.address, front.port), timeout=10), server_hostname=front.address) as tls:
        assert tls.getpeercert()["subject"] == ((("commonName", f"{front.host}.victorialogs"),),)


def test_the_delete_api_answers_the_erasure_identity_and_no_other(lab):
    topology, ca = lab
    front = _front(topology)
    tel, app = hosts_in("telemetry")[0].name, hosts_in("app")[0].name
    wrong = {
        "the gateway": _files(ca, tel, "gateway"),
        "the operator": _files(ca, None, "operator"),
        "Grafana": _files(ca, "mon1", "grafana"),
        "Prometheus": _files(ca, "mon1", "prometheus"),
        "app1's node_exporter": _files(ca, app, "node_exporter"),
    }
    for who, cert in wrong.items():
        for method, path, body in (("GET", "/delete/active_tasks", None), ("POST", "/delete/run_task", b"filter=nothing_matches_this")):
            status, answer = _call(front, method, path, _context(cert), body)
            assert status == 403, f"{who} on {path}: {status} {answer}"
    for who, cert in (("the erasure command", _files(ca, None, ERASURE)), ("the retention job", _files(ca, tel, RETENTION))):
        status, answer = _call(front, "GET", "/delete/active_tasks", _context(cert))
        assert status == 200 and answer.strip().startswith("["), f"{who}: {status} {answer}"


def test_each_identity_gets_its_own_paths_only(lab):
    topology, ca = lab
    front = _front(topology)
    tel, app = hosts_in("telemetry")[0].name, hosts_in("app")[0].name
    line = b'{"_msg":"canary","service":"tls-e2e"}\n'
    cases = [
        # (identity, method, path, body, expected status)
        (_files(ca, tel, "gateway"), "POST", "/insert/jsonline", line, 200),
        (_files(ca, tel, "gateway"), "POST", "/select/logsql/query", b"query=*&limit=1", 403),
        (_files(ca, app, "node_exporter"), "POST", "/insert/jsonline", line, 403),  # a direct write from app1's identity
        (_files(ca, "mon1", "node_exporter"), "POST", "/insert/opentelemetry/v1/logs", b"", 403),
        (_files(ca, None, "operator"), "POST", "/select/logsql/query", b"query=*&limit=1", 200),
        (_files(ca, None, "operator"), "POST", "/insert/jsonline", line, 403),
        (_files(ca, "mon1", "grafana"), "POST", "/select/logsql/query", b"query=*&limit=1", 200),
        (_files(ca, "mon2", "grafana"), "GET", "/flags", None, 403),
        (_files(ca, "mon1", "prometheus"), "GET", "/metrics", None, 200),
        (_files(ca, "mon1", "prometheus"), "POST", "/select/logsql/query", b"query=*&limit=1", 403),
        (_files(ca, None, ERASURE), "POST", "/insert/opentelemetry/v1/logs", b"", 403),
        (_files(ca, tel, RETENTION), "POST", "/insert/jsonline", line, 403),
    ]
    for cert, method, path, body, expected in cases:
        status, answer = _call(front, method, path, _context(cert), body)
        assert status == expected, f"{cert[0].rsplit('/', 1)[-1]} {method} {path}: {status} {answer}"


def test_a_path_that_would_be_read_otherwise_is_refused(lab):
    """The front checks the normalized path; the raw one goes to VictoriaLogs: any difference is refused."""
    topology, ca = lab
    front = _front(topology)
    operator = _context(_files(ca, None, "operator"))
    for path in ("/select/../delete/active_tasks", "/select/%2e%2e/delete/active_tasks", "//delete/active_tasks",
                 "/select/logsql/..%2F..%2Fdelete/active_tasks"):
        status, answer = _call(front, "GET", path, operator)
        assert status in (400, 403), f"{path}: {status} {answer}"


def test_from_app1_and_the_intruder_nothing_reaches_the_stores(lab):
    topology, _ = lab
    app = hosts_in("app")[0].name
    node = TlsPaths("node_exporter")  # the certificate app1 holds
    targets = [(_front(topology), "/delete/active_tasks"), (_front(topology), "/insert/jsonline")]
    targets += [(l, "/api/services") for l in topology.instances("jaeger.query")]
    targets += [(l, "/v1/traces") for l in topology.instances("jaeger.otlp_http")]
    for listener, path in targets:
        url = f"https://{listener.address}:{listener.port}{path}"
        status, answer = request_from(app, "POST" if "insert" in path or "traces" in path else "GET", url, "{}",
                                      tls=(node.ca, node.cert, node.key))
        assert status is None, f"app1 reached {listener.name}{path}: {status} {answer[:200]}"
        status, answer = request_from(INTRUDER, "GET", url, tls=(None, None, None))
        assert status is None, f"the intruder reached {listener.name}{path}: {status} {answer[:200]}"


def test_on_the_store_s_host_the_gateway_s_certificate_cannot_delete(lab):
    """tel1 may reach the front (the gateway runs there): with the gateway's key it holds, no delete; the
    retention job's identity, on the same host, deletes."""
    topology, _ = lab
    tel = hosts_in("telemetry")[0].name
    front = _front(topology)
    gateway = TlsPaths("otelcol")
    url = f"https://{front.address}:{front.port}/delete/active_tasks"
    status, answer = request_from(tel, "GET", url, tls=(gateway.ca, gateway.cert, gateway.key))
    assert status == 403, (status, answer)
    status, answer = request_from(tel, "GET", url, tls=(JOB_TLS.ca, JOB_TLS.cert, JOB_TLS.key))
    assert status == 200, (status, answer)


def test_jaeger_s_front_refuses_plain_http_tls_1_1_no_certificate_and_another_ca(lab, tmp_path):
    topology, ca = lab
    operator = _files(ca, None, "operator")
    stranger = CertificateAuthority.open(ENVIRONMENT, tmp_path / "other-ca").operator_files()
    for name, path in (("jaeger.query", "/api/services"), ("jaeger.metrics", "/metrics")):  # the controller reaches these
        for listener in topology.instances(name):
            status, body = _call(listener, "GET", path, _context())
            assert status == 400 and "No required SSL certificate" in body, (listener.name, status, body)
            status, body = _call(listener, "GET", path, _context((str(stranger[1]), str(stranger[2]))))
            assert _refused((status, body)) and status != 200, (listener.name, status, body)
            assert "PROTOCOL_VERSION" in str(_call(listener, "GET", path, _context(operator, tls11=True))[0]).upper()
            connection = http.client.HTTPConnection(listener.address, listener.port, timeout=10)
            try:
                connection.request("GET", path)
                assert connection.getresponse().status == 400  # nginx: "The plain HTTP request was sent to HTTPS port"
            finally:
                connection.close()
            assert _call(listener, "GET", path, _context(operator))[0] == 200, listener.name
            with _context(operator).wrap_socket(socket.create_connection((listener.address, listener.port), timeout=10),
                                                server_hostname=listener.address) as tls:
                assert tls.getpeercert()["subject"] == ((("commonName", f"{listener.host}.jaeger"),),)


def test_jaeger_s_front_admits_each_identity_to_its_own_listener(lab):
    """From the controller: Grafana reads, Prometheus scrapes, the gateway's identity does neither."""
    topology, ca = lab
    query, metrics = topology.instances("jaeger.query")[0], topology.instances("jaeger.metrics")[0]
    tel = hosts_in("telemetry")[0].name
    cases = [
        (query, "mon1", "grafana", "/api/services", 200),
        (query, "mon2", "grafana", "/api/traces/0123456789abcdef0123456789abcdef", 404),  # admitted: Jaeger answers
        (query, "mon1", "prometheus", "/api/services", 403),
        (query, tel, "gateway", "/api/services", 403),
        (query, "mon1", "grafana", "/", 403),  # the UI is the operator's
        (metrics, "mon1", "prometheus", "/metrics", 200),
        (metrics, "mon1", "grafana", "/metrics", 403),
        (metrics, tel, "gateway", "/metrics", 403),
    ]
    for listener, host, component, path, expected in cases:
        status, answer = _call(listener, "GET", path, _context(_files(ca, host, component)))
        assert status == expected, f"{host}.{component} {listener.name} {path}: {status} {answer}"


def test_only_the_gateway_s_identity_writes_spans_and_a_refused_canary_is_never_stored(lab):
    """From each telemetry host (the firewall lets them reach the OTLP port: the gateways run there), with the
    certificates each holds: the gateway's writes; node_exporter's, on the same host, is refused, and its
    canary is not in Jaeger afterwards while the gateway's is."""
    from tests.e2e.test_tls_otlp import canary
    import secrets

    from tests.e2e.tracing_load import jaeger_trace, until

    topology, _ = lab
    otlp = topology.instances("jaeger.otlp_http")[0]
    url = f"https://{otlp.address}:{otlp.port}/v1/traces"
    gateway, node = TlsPaths("otelcol"), TlsPaths("node_exporter")
    refused, admitted = [], []
    for host in hosts_in("telemetry"):
        trace_id = secrets.token_hex(16)
        status, answer = request_from(host.name, "POST", url, canary(trace_id), tls=(node.ca, node.cert, node.key))
        assert status == 403, f"{host.name}'s node_exporter identity wrote spans: {status} {answer[:200]}"
        refused.append(trace_id)
        status, answer = request_from(host.name, "POST", url, "{}", tls=(gateway.ca, None, None))
        assert status == 400 and "No required SSL certificate" in answer, f"no certificate: {status} {answer[:200]}"
        trace_id = secrets.token_hex(16)
        status, answer = request_from(host.name, "POST", url, canary(trace_id), tls=(gateway.ca, gateway.cert, gateway.key))
        assert status == 200, f"{host.name}'s gateway identity: {status} {answer[:200]}"
        admitted.append(trace_id)
    http = operator_tls.operator_session()
    http.trust_env = False  # else REQUESTS_CA_BUNDLE would replace the environment CA given here
    query = topology.instances("jaeger.query")[0]
    base = f"https://{query.address}:{query.port}"
    for trace_id in admitted:
        assert until(lambda: jaeger_trace(http, base, trace_id), 30), f"the gateway's canary {trace_id} is not in Jaeger"
    for trace_id in refused:  # looked for after the admitted ones arrived: the refused ones had as long
        assert jaeger_trace(http, base, trace_id) is None, f"a refused canary {trace_id} reached Jaeger"


def test_the_stores_keys_are_readable_by_their_service_only(lab):
    tel = hosts_in("telemetry")[0]
    for paths, group in ((TlsPaths("victorialogs-front"), "victorialogs-front"), (TlsPaths("jaeger-front"), "jaeger-front"),
                         (JOB_TLS, "victorialogs")):
        key = tel.testinfra.file(paths.key)
        assert (key.user, key.group, key.mode) == ("root", group, 0o640), paths.key
        assert tel.testinfra.file(paths.cert).mode == 0o644
    # Jaeger's own former TLS files are gone (its front serves TLS), and Jaeger listens on the loopback only.
    assert not tel.testinfra.file("/etc/jaeger/tls").exists
    assert not tel.testinfra.file(f"{tel.settings.node_exporter.textfile_dir}/tls_jaeger.prom").exists  # its front's instead
    assert tel.testinfra.file(f"{tel.settings.node_exporter.textfile_dir}/tls_jaeger-front.prom").exists
    listening = tel.testinfra.check_output("ss -Hltn")
    topology = tel.topology
    for name in ("jaeger.otlp_http_local", "jaeger.query_local", "jaeger.metrics_local"):
        assert f"127.0.0.1:{topology.listener(tel.name, name).port}" in listening, name
    # Debian's own nginx never serves its default site.
    assert tel.testinfra.file("/etc/systemd/system/nginx.service").linked_to == "/dev/null"
    assert not tel.testinfra.socket("tcp://0.0.0.0:80").is_listening
