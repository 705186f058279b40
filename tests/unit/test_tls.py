"""TLS and client identity on Prometheus, Alertmanager and node_exporter (roles/_tls.py), as rendered."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from roles._pki import CertificateAuthority, identity_uri
from roles._service import ready_check
from roles._tls import EXPIRY_METRIC, TlsPaths, allowed_clients, expiry_textfile, web_config
from tests.environments import context_of, environment, three_hosts
from tests.mirror_binaries import extract
from tests.tls_files import tls_on_disk


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    return environment(tmp_path_factory.mktemp("inv"), "dev", three_hosts("dev"))


@pytest.fixture(scope="module")
def promtool(tmp_path_factory):
    return extract("prometheus", "promtool", tmp_path_factory.mktemp("promtool"))


def test_alertmanager_admits_prometheus_grafana_the_operator_and_itself_only(dev):
    allowed = allowed_clients(dev.topology, "mon1.dev", "alertmanager.web")
    assert allowed == sorted([
        identity_uri("dev", "mon1.dev", "prometheus"), identity_uri("dev", "mon1.dev", "grafana"),
        identity_uri("dev", "mon1.dev", "alertmanager"), identity_uri("dev", None, "operator"),
    ])
    assert identity_uri("dev", "app1.dev", "node_exporter") not in allowed
    assert identity_uri("dev", "tel1.dev", "gateway") not in allowed


def test_prometheus_admits_the_gateways_remote_write(dev):
    assert identity_uri("dev", "tel1.dev", "gateway") in allowed_clients(dev.topology, "mon1.dev", "prometheus.web")


def test_node_exporter_admits_prometheus_and_only_its_own_host(dev):
    allowed = allowed_clients(dev.topology, "app1.dev", "node_exporter.metrics")
    assert identity_uri("dev", "app1.dev", "node_exporter") in allowed
    assert identity_uri("dev", "mon1.dev", "node_exporter") not in allowed
    assert identity_uri("dev", "mon1.dev", "prometheus") in allowed


def test_the_web_config_requires_a_client_certificate_and_passes_promtool(promtool, tmp_path):
    paths = tls_on_disk(tmp_path, "alertmanager")
    text = web_config(paths, ["spiffe://sentinel/test/operator"])
    server = yaml.safe_load(text)["tls_server_config"]
    assert server["client_auth_type"] == "RequireAndVerifyClientCert"
    assert server["min_version"] == "TLS12"
    assert server["client_ca_file"] == paths.ca and server["client_allowed_sans"] == ["spiffe://sentinel/test/operator"]
    path = tmp_path / "web.yml"
    path.write_text(text)
    result = subprocess.run([promtool, "check", "web-config", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_web_config_whose_key_is_missing(promtool, tmp_path):
    """Guards the validate-then-swap step of the web config."""
    paths = TlsPaths("alertmanager", base=str(tmp_path / "nowhere"))
    path = tmp_path / "web.yml"
    path.write_text(web_config(paths, []))
    assert subprocess.run([promtool, "check", "web-config", path], capture_output=True).returncode != 0


def _specs(dev):
    from roles.alertmanager import render_config as am_config, service_spec as am_spec, tls_configs as am_tls
    from roles.alerting.catalog import load_catalog
    from roles.node_exporter import service_spec as ne_spec, tls_configs as ne_tls
    from roles.prometheus import render_config, scrape_jobs, service_spec as prom_spec, tls_configs as prom_tls
    from roles._tls import leaf

    mon, app = context_of(dev, "mon1.dev"), context_of(dev, "app1.dev")
    prom = prom_spec(mon.settings, render_config(mon.settings, scrape_jobs(dev.topology, mon.settings)), None,
                     mon.bind("prometheus.web"), prom_tls(mon, leaf(mon, "prometheus", "prometheus.web")))
    am = am_spec(mon.settings, am_config(mon.settings, load_catalog()), {}, [], mon.bind("alertmanager.web"), "",
                 am_tls(mon, leaf(mon, "alertmanager", "alertmanager.web")))
    ne = ne_spec(app.settings, app.bind("node_exporter.metrics"), ne_tls(app, leaf(app, "node_exporter", "node_exporter.metrics")))
    return {"prometheus": prom, "alertmanager": am, "node_exporter": ne}


@pytest.mark.parametrize("service", ["prometheus", "alertmanager", "node_exporter"])
def test_each_service_serves_tls_with_its_web_config(dev, service):
    spec = _specs(dev)[service]
    paths = TlsPaths(service)
    assert f"--web.config.file={paths.web_config}" in spec.exec_start
    configs = {c.dest: c for c in spec.configs}
    assert configs[paths.key].mode == "0640"  # root:<service>, written by the building block
    assert configs[paths.cert].mode == "0644" and configs[paths.ca].mode == "0644"
    assert "PRIVATE KEY" in configs[paths.key].content and "PRIVATE" not in configs[paths.cert].content
    assert all(configs[p].validate for p in (paths.ca, paths.cert, paths.key, paths.web_config))
    # The files a config names are in place before it: the certificates, then the web config.
    order = [c.dest for c in spec.configs]
    assert order.index(paths.ca) < order.index(paths.cert) < order.index(paths.key) < order.index(paths.web_config)
    assert spec.ready_url.startswith("https://") and spec.ready_curl_args == paths.curl_args()
    assert paths.dir in spec.config_dirs


def test_prometheus_scrapes_and_alerts_over_tls_with_its_certificate(dev):
    from roles.prometheus import config, scrape_jobs, alertmanagers

    mon = context_of(dev, "mon1.dev")
    data = config(mon.settings, scrape_jobs(dev.topology, mon.settings), alertmanagers(dev.topology))
    jobs = {j["job_name"]: j for j in data["scrape_configs"]}
    for name in ("prometheus", "alertmanager", "node"):
        assert jobs[name]["scheme"] == "https"
        assert jobs[name]["tls_config"]["cert_file"] == "/etc/prometheus/tls/prometheus.crt"
    assert "scheme" not in jobs["otelcol"]  # not yet served over TLS (the collector's half of issue 22)
    am = data["alerting"]["alertmanagers"][0]
    assert am["scheme"] == "https" and am["tls_config"]["key_file"] == "/etc/prometheus/tls/prometheus.key"


def test_the_readiness_check_passes_the_curl_options_as_words():
    script = ready_check("https://10.0.0.1:9090/-/ready", TlsPaths("prometheus").curl_args())
    assert "curl -fsS -o /dev/null --cacert /etc/prometheus/tls/ca.crt --cert /etc/prometheus/tls/prometheus.crt " in script


def test_grafanas_datasources_carry_its_client_certificate(dev):
    from roles.grafana.peers import grafana_peers
    from roles.grafana.provisioning import datasources
    from roles._tls import leaf

    mon = context_of(dev, "mon1.dev")
    identity = leaf(mon, "grafana")
    sources = {s["uid"]: s for s in datasources(grafana_peers(mon, (identity.ca_pem, identity.cert_pem, identity.key_pem)))["datasources"]}
    # The stores too (issue 22).
    for uid in ("prometheus", "alertmanager", "traces", "logs"):
        assert sources[uid]["url"].startswith("https://")
        assert sources[uid]["jsonData"]["tlsAuth"] and sources[uid]["jsonData"]["tlsAuthWithCACert"]
        assert sources[uid]["secureJsonData"]["tlsClientKey"] == identity.key_pem
    assert "PRIVATE" not in repr(grafana_peers(mon, (identity.ca_pem, identity.cert_pem, identity.key_pem)))


def test_the_expiry_textfile_is_read_as_prometheus_reads_it(tmp_path):
    leaf = CertificateAuthority.open("test", tmp_path).issue("mon1", "prometheus", ("mon1",), ("10.0.0.1",))
    families = list(text_string_to_metric_families(expiry_textfile("prometheus", leaf)))
    sample = families[0].samples[0]
    assert sample.name == EXPIRY_METRIC
    assert sample.labels == {"service": "prometheus", "certificate": "mon1.prometheus"}
    assert sample.value == int(leaf.not_after.timestamp())


def _run_check(validate: str, staged: Path, dest: str) -> int:
    from roles._service.operations import validate_script

    script = "set -eu\n" + "\n".join(validate_script(validate, str(staged), dest))
    return subprocess.run(["sh", "-c", script], capture_output=True).returncode


def test_the_hosts_checks_refuse_a_key_of_another_certificate_and_a_certificate_of_another_ca(tmp_path):
    """The openssl checks before the swap (roles/_tls.py tls_files), run as the building block runs them."""
    from roles._tls import tls_files

    ca = CertificateAuthority.open("test", tmp_path / "pki")
    good = ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.1",))
    other = CertificateAuthority.open("test", tmp_path / "other").issue("mon1", "prometheus", ("mon1",), ("10.0.0.1",))
    paths = TlsPaths("prometheus", base=str(tmp_path / "etc"))
    Path(paths.dir).mkdir(parents=True)
    checks = {c.dest: c.validate for c in tls_files("prometheus", good)}
    live = {"/etc/prometheus/tls/ca.crt": paths.ca, "/etc/prometheus/tls/prometheus.crt": paths.cert}

    def check(dest: str, content: str) -> int:
        staged = tmp_path / "staged"
        staged.write_text(content)
        validate = checks[dest]
        for real, here in live.items():
            validate = validate.replace(real, here)
        return _run_check(validate, staged, dest)

    Path(paths.ca).write_text(good.ca_pem)
    Path(paths.cert).write_text(good.cert_pem)
    assert check("/etc/prometheus/tls/ca.crt", good.ca_pem) == 0
    assert check("/etc/prometheus/tls/ca.crt", "not a certificate") != 0
    assert check("/etc/prometheus/tls/prometheus.crt", good.cert_pem) == 0
    assert check("/etc/prometheus/tls/prometheus.crt", other.cert_pem) != 0
    assert check("/etc/prometheus/tls/prometheus.key", good.key_pem) == 0
    assert check("/etc/prometheus/tls/prometheus.key", other.key_pem) != 0


def test_a_hosts_certificates_live_its_tls_lifetime(tmp_path):
    """roles/_tls.py `leaf` issues with the host's tls block: the defaults give what they always gave
    (30 days, kept on the next converge); a host's own lifetime and window are honoured."""
    import datetime as dt

    from cryptography import x509

    from roles._pki import BACKDATE, LIFETIME
    from roles._tls import leaf

    body = """
    monitoring = [("mon7.dev", {"ip": "10.9.0.71"})]
    telemetry = [("tel7.dev", {"ip": "10.9.0.72", "tls": {"lifetime_days": 7, "renew_within_days": 2}})]
    app = [("app7.dev", {"ip": "10.9.0.73"})]
    """
    env = environment(tmp_path, "dev", body)
    mon, tel = context_of(env, "mon7.dev"), context_of(env, "tel7.dev")

    def validity(pem: str) -> dt.timedelta:
        cert = x509.load_pem_x509_certificate(pem.encode())
        return cert.not_valid_after_utc - cert.not_valid_before_utc - BACKDATE

    first = leaf(mon, "prometheus", "prometheus.web")
    assert validity(first.cert_pem) == LIFETIME == dt.timedelta(days=30)
    assert leaf(mon, "prometheus", "prometheus.web").cert_pem == first.cert_pem  # the second converge
    short = leaf(tel, "gateway")
    assert validity(short.cert_pem) == dt.timedelta(days=7)
    assert leaf(tel, "gateway").cert_pem == short.cert_pem
