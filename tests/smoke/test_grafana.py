"""Grafana on the monitoring hosts: files, owners and modes everywhere; and where the binary is
installed (every environment but the lab), the running service, its datasources, dashboards and
alerting objects through Grafana's API.

The lab never installs Grafana (AGPL, `grafana.install_binary: false`): there the API checks skip
with that reason, and the file checks still run.
"""

from __future__ import annotations

import json
import shlex

import pytest

from roles.grafana.config import ADMIN_PASSWORD_FILE, CONFIG, DASHBOARDS_DIR, PROVISIONING_DIR, SECRETS_DIR
from roles.grafana.provisioning import dashboard_sources
from roles.grafana import server_path
from roles.grafana.peers import stores

pytestmark = [pytest.mark.lab, pytest.mark.grafana]

BINARY = f"/opt/grafana/current/{server_path()}"  # where files/versions.yml places the server in the tree
PROVISIONING_FILES = (
    f"{PROVISIONING_DIR}/datasources/sentinel.yml",
    f"{PROVISIONING_DIR}/dashboards/sentinel.yml",
    f"{PROVISIONING_DIR}/alerting/alert-rules.yml",
    f"{PROVISIONING_DIR}/alerting/contact-points.yml",
    f"{PROVISIONING_DIR}/alerting/notification-policies.yml",
)


def _mode(host, path):
    f = host.testinfra.file(path)
    assert f.exists, f"{path} is missing"
    return f.user, f.group, f.mode


def test_user_and_directories(monitoring_host):
    user = monitoring_host.testinfra.user("grafana")
    assert user.exists and user.shell == "/usr/sbin/nologin"
    assert _mode(monitoring_host, "/etc/grafana") == ("root", "grafana", 0o750)
    assert _mode(monitoring_host, SECRETS_DIR) == ("root", "grafana", 0o750)
    for sub in ("", "/datasources", "/dashboards", "/alerting", "/plugins"):
        assert _mode(monitoring_host, f"{PROVISIONING_DIR}{sub}") == ("root", "grafana", 0o750)
    for data_dir in ("/var/lib/grafana", "/var/log/grafana", "/var/lib/grafana/plugins"):
        assert _mode(monitoring_host, data_dir) == ("grafana", "grafana", 0o750)
    assert _mode(monitoring_host, DASHBOARDS_DIR) == ("root", "grafana", 0o750)


def test_config_secrets_and_provisioning_are_0640_root_grafana(monitoring_host):
    for path in (CONFIG, ADMIN_PASSWORD_FILE, *PROVISIONING_FILES):
        assert _mode(monitoring_host, path) == ("root", "grafana", 0o640), path
    listing = monitoring_host.testinfra.check_output(f"find {SECRETS_DIR} -type f -printf '%u:%g:%m %p\\n'")
    for line in listing.splitlines():
        owner_mode, path = line.split(" ", 1)
        assert owner_mode == "root:grafana:640", line


def test_grafana_serves_https_with_its_certificate_from_the_environment_ca(monitoring_host):
    """The TLS files with their modes, the certificate chains to the CA, the key matches it, grafana.ini points at them."""
    tls = "/etc/grafana/tls"
    assert _mode(monitoring_host, f"{tls}/grafana.key") == ("root", "grafana", 0o640)
    assert _mode(monitoring_host, f"{tls}/grafana.crt") == ("root", "grafana", 0o644)
    assert _mode(monitoring_host, f"{tls}/ca.crt") == ("root", "grafana", 0o644)
    check = (f"openssl verify -CAfile {tls}/ca.crt {tls}/grafana.crt && "
             f'test "$(openssl pkey -pubout -in {tls}/grafana.key)" = "$(openssl x509 -pubkey -noout -in {tls}/grafana.crt)"')
    monitoring_host.testinfra.check_output("sh -c %s", check)
    ini = monitoring_host.testinfra.file(CONFIG).content_string
    for line in ("protocol = https", f"cert_file = {tls}/grafana.crt", f"cert_key = {tls}/grafana.key",
                 "min_tls_version = TLS1.2", "cookie_secure = true", "strict_transport_security = true"):
        assert line in ini, line


def test_grafana_ini_reads_the_admin_password_from_its_file(monitoring_host):
    ini = monitoring_host.testinfra.file(CONFIG).content_string
    assert "admin_password = $__file{/etc/grafana/secrets/admin_password}" in ini
    assert "[auth.anonymous]\nenabled = false" in ini
    # Compared on the host, so a failure never prints the password.
    assert monitoring_host.testinfra.run(f"test -s {ADMIN_PASSWORD_FILE}").rc == 0
    assert monitoring_host.testinfra.run(f"grep -qF -f {ADMIN_PASSWORD_FILE} {CONFIG}").rc == 1


def test_dashboards_are_shipped(monitoring_host):
    for relative in dashboard_sources():
        assert _mode(monitoring_host, f"{DASHBOARDS_DIR}/{relative}") == ("root", "grafana", 0o640)


# --- only where Grafana itself is installed --------------------------------------------


@pytest.fixture
def grafana_host(monitoring_host):
    if not monitoring_host.settings.grafana.install_binary:
        pytest.skip("Grafana is not installed on this host (grafana.install_binary is false: the lab, where AGPL Grafana may not run)")
    if not monitoring_host.testinfra.file(BINARY).exists:
        pytest.skip(f"{BINARY} is missing on {monitoring_host.name}: Grafana is not installed here")
    return monitoring_host


def _api(host, path: str):
    """GET from Grafana's API on the host as the admin; the password is read there, never here."""
    user = host.settings.grafana.admin_user
    # https only, verified with the environment CA Grafana's certificate chains to.
    command = (f'curl -fsS --cacert /etc/grafana/tls/ca.crt -u "{user}:$(cat {ADMIN_PASSWORD_FILE})" '
               + shlex.quote(host.local("grafana.http", path)))
    return json.loads(host.testinfra.check_output("sh -c %s", command))


def test_active_and_healthy(grafana_host):
    service = grafana_host.testinfra.service("grafana")
    assert service.is_running and service.is_enabled
    health = json.loads(grafana_host.curl(grafana_host.local("grafana.http", "/api/health")))
    assert health["database"] == "ok"
    from roles._service.artifacts import load_versions

    assert health["version"] == load_versions()["grafana"]["version"]


def test_each_provisioned_datasource_is_healthy(grafana_host):
    traces, logs = stores(grafana_host.settings)
    for uid in ("prometheus", "alertmanager", traces, logs):
        result = _api(grafana_host, f"/api/datasources/uid/{uid}/health")
        assert result.get("status") == "OK", (uid, result)


def test_the_dashboards_are_present(grafana_host):
    found = {d["uid"] for d in _api(grafana_host, "/api/search?type=dash-db&limit=5000")}
    expected = {json.loads(text)["uid"] for text in dashboard_sources().values()}
    assert expected and expected <= found
    assert len(expected) >= 5, "the five dashboards (business, performance, security, infrastructure, user experience)"


def test_the_alerting_objects_are_present(grafana_host):
    from roles.alerting.catalog import load_catalog

    rules = {r["uid"] for r in _api(grafana_host, "/api/v1/provisioning/alert-rules")}
    contact_points = {c["name"] for c in _api(grafana_host, "/api/v1/provisioning/contact-points")}
    policy = _api(grafana_host, "/api/v1/provisioning/policies")
    if grafana_host.settings.alerting.evaluator == "grafana":
        assert rules == {a.uid for a in load_catalog()}
        assert {"slack-critical", "slack-alerts", "email-digest"} <= contact_points
        assert policy["receiver"] == "slack-alerts"
    else:
        # Prometheus evaluates: Grafana must hold none of the catalog's rules (it would page twice).
        assert not rules & {a.uid for a in load_catalog()}


def test_the_backup_token_exists_with_its_mode(grafana_host):
    settings = grafana_host.settings.grafana
    user, group = settings.backup_token_owner.split(":")
    assert _mode(grafana_host, settings.backup_token_path) == (user, group, int(settings.backup_token_mode, 8))
    # The backup job (group grafana-backup) must be able to reach it.
    directory = settings.backup_token_path.rsplit("/", 1)[0]
    assert _mode(grafana_host, directory) == ("root", group, 0o750)
