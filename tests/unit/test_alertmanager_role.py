"""The Alertmanager role: hardened unit, secrets as 0640 files, configs checked by amtool, preflight."""

import pytest

from roles._model import SettingsError
from roles._service import unit_file
from roles._environment import group_data as load_group_data, host_settings as build
from roles.alertmanager import SECRETS_DIR, render_config, secret_files, service_spec
from roles.alerting.catalog import load_catalog
from roles.preflight import check_environment
from tests.environments import GOOD_SECRETS, environment as environment_of

pytestmark = pytest.mark.alerting
SECRETS = (
    "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL", "SENTINEL_SLACK_ALERTS_WEBHOOK_URL", "SENTINEL_SMTP_PASSWORD", "SENTINEL_PAGERDUTY_ROUTING_KEY",
    "SENTINEL_HEARTBEAT_URL",
)
# Preflight of a whole environment also resolves Grafana's admin password (monitoring hosts)
# and Loki's and Tempo's own S3 keys (telemetry hosts; the tests set the store's root key).
ENVIRONMENT_SECRETS = (
    *SECRETS, "SENTINEL_GRAFANA_ADMIN_PASSWORD", "SENTINEL_S3_LOKI_ACCESS_KEY", "SENTINEL_S3_LOKI_SECRET_KEY",
    "SENTINEL_S3_TEMPO_ACCESS_KEY", "SENTINEL_S3_TEMPO_SECRET_KEY",
)


def settings_of(environment, **extra):
    data = {**load_group_data("all"), **load_group_data(environment), **extra}
    return build("mon1", ["monitoring", environment], data)


@pytest.fixture
def all_secrets(monkeypatch):
    monkeypatch.delenv("SENTINEL_SECRETS_DIR", raising=False)
    for name in ENVIRONMENT_SECRETS:
        monkeypatch.setenv(name, GOOD_SECRETS[name])


def spec_for(environment, peers=()):
    settings = settings_of(environment)
    cluster = "10.0.0.1:9094" if peers else ""
    return service_spec(settings, render_config(settings, load_catalog()), secret_files(settings, GOOD_SECRETS), list(peers), "10.0.0.1:9093", cluster)


def test_secrets_become_0640_files_and_pagerduty_only_in_prod(all_secrets):
    # dev: two webhooks and the SMTP password (its heartbeat is waived); prod adds PagerDuty and the heartbeat.
    for environment, expected in (("dev", 3), ("prod", 5)):
        secret_configs = [c for c in spec_for(environment).configs if c.dest.startswith(SECRETS_DIR)]
        assert len(secret_configs) == expected
        assert {c.mode for c in secret_configs} == {"0640"}
        assert all(c.validate is None for c in secret_configs)
    assert any(c.dest.endswith("pagerduty-routing-key") for c in spec_for("prod").configs)


def test_config_is_checked_by_amtool_and_reloads_with_sighup(all_secrets):
    spec = spec_for("prod")
    config = spec.configs[-1]
    assert config.dest == "/etc/alertmanager/alertmanager.yml"
    assert config.validate == "{bin}/amtool check-config {path}"
    assert spec.reload == "sighup"
    assert spec.ready_url == "http://10.0.0.1:9093/-/ready"
    assert "--web.listen-address=10.0.0.1:9093" in spec.exec_start
    unit = unit_file(spec)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "ReadWritePaths=/var/lib/alertmanager" in unit
    assert "--cluster.listen-address=" in spec.exec_start  # one monitoring host: no gossip
    # The notification log and silences reach the persistent data dir every 10 s, not every 15 min.
    assert {"--storage.path=/var/lib/alertmanager", "--data.maintenance-interval=10s"} <= set(spec.exec_start)


def test_several_monitoring_hosts_gossip(all_secrets):
    spec = spec_for("prod", peers=["mon2.prod.sentinel.internal:9094"])
    assert "--cluster.listen-address=10.0.0.1:9094" in spec.exec_start
    assert "--cluster.peer=mon2.prod.sentinel.internal:9094" in spec.exec_start


def test_missing_secret_is_refused_by_name(monkeypatch, all_secrets, tmp_path):
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("SENTINEL_S3_SECRET_KEY", "b")
    monkeypatch.delenv("SENTINEL_SLACK_ALERTS_WEBHOOK_URL")
    with pytest.raises(SettingsError, match="SENTINEL_SLACK_ALERTS_WEBHOOK_URL"):
        check_environment(environment_of(tmp_path, "dev"))


def test_preflight_refuses_prod_without_the_pagerduty_key(monkeypatch, all_secrets, tmp_path):
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("SENTINEL_S3_SECRET_KEY", "b")
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTINEL_PAGERDUTY_ROUTING_KEY")
    check_environment(environment_of(tmp_path, "staging"))  # no PagerDuty there
    with pytest.raises(SettingsError) as err:
        check_environment(environment_of(tmp_path, "prod"))
    assert err.value.key == "host mon1.prod.alerting.pagerduty.routing_key_secret"
    assert "SENTINEL_PAGERDUTY_ROUTING_KEY" in err.value.problem
    assert "export SENTINEL_PAGERDUTY_ROUTING_KEY=" in err.value.fix


def test_preflight_refuses_a_dead_mans_switch_without_its_url_unless_waived(monkeypatch, all_secrets, tmp_path):
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("SENTINEL_S3_SECRET_KEY", "b")
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTINEL_HEARTBEAT_URL")
    check_environment(environment_of(tmp_path, "dev"))  # dev waives it, with its reason
    with pytest.raises(SettingsError) as err:
        check_environment(environment_of(tmp_path, "prod"))
    assert err.value.key == "host mon1.prod.alerting.heartbeat.url_secret"
    assert "SENTINEL_HEARTBEAT_URL is not set" in err.value.problem and "alerting.heartbeat.waived" in err.value.problem
    assert "export SENTINEL_HEARTBEAT_URL=" in err.value.fix


@pytest.mark.parametrize("url", ["http://hc-ping.com/5f2a", "https://user:pass@hc-ping.com/5f2a", "hc-ping.com/5f2a", "https://hc-ping.com/a b"])
def test_preflight_refuses_a_heartbeat_url_that_is_not_https(monkeypatch, all_secrets, tmp_path, url):
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("SENTINEL_S3_SECRET_KEY", "b")
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.setenv("SENTINEL_HEARTBEAT_URL", url)
    with pytest.raises(SettingsError) as err:
        check_environment(environment_of(tmp_path, "prod"))
    assert err.value.key == "host mon1.prod.alerting.heartbeat.url_secret"
    assert "https://" in err.value.problem and url not in str(err.value)  # never echoed: the URL is the credential


@pytest.mark.parametrize(
    "data, key, fix_word",
    [
        ({"alerting": {"slack_critical": {"channel": "critical-alerts", "webhook_url_secret": "X"}}}, "alerting.slack_critical.channel", "#alerts"),
        ({"alerting": {"pagerduty": {"routing_key_secret": "r0ut1ng-key-value"}}}, "alerting.pagerduty.routing_key_secret", "environment variable"),
        ({"alerting": {"critical": {"group_wait": "5m", "group_interval": "5m", "repeat_interval": "1h"}}}, "alerting.critical.group_wait", "1m"),
        ({"alerting": {"warning": {"group_wait": "1m", "group_interval": "15 minutes", "repeat_interval": "4h"}}}, "alerting.warning.group_interval", "30s"),
        ({"alerting": {"email": {"smarthost": "smtp.example.org"}}}, "alerting.email.smarthost", "587"),
        ({"alerting": {"emial": {}}}, "alerting.emial", "email"),
        ({"alerting": {"critical": {"group_wait": "10s", "group_interval": "5m", "repeat_interval": "1h"}}}, "alerting.critical.group_interval", "1m"),
        ({"alerting": {"heartbeat": {"waived": "no"}}}, "alerting.heartbeat.waived", "sentence"),
        ({"alerting": {"heartbeat": {"repeat_interval": "10m"}}}, "alerting.heartbeat.repeat_interval", "5m"),
        ({"alerting": {"heartbeat": {"group_interval": "2m", "repeat_interval": "1m"}}}, "alerting.heartbeat.repeat_interval", "group_interval"),
        ({"alerting": {"heartbeat": {"url_secret": "PATH"}}}, "alerting.heartbeat.url_secret", "SENTINEL_"),
    ],
)
def test_bad_alerting_data_names_key_and_fix(data, key, fix_word):
    with pytest.raises(SettingsError) as err:
        build("h1", ["monitoring", "prod"], {"artifact_base_url": "https://github.com", **data})
    assert err.value.key == f"host h1.{key}"
    assert fix_word in err.value.fix


def test_prometheus_config_points_at_every_monitoring_alertmanager(tmp_path):
    """The Prometheus side: alerting targets, the alertmanager scrape job, and promtool accepts the result."""
    import subprocess

    from roles.prometheus import alertmanagers, render_alert_rules, render_config as prometheus_config, scrape_jobs
    from tests.mirror_binaries import extract

    lab = {**load_group_data("all"), **load_group_data("lab")}
    from roles.alertmanager import monitoring_peers
    from tests.environments import context_of, environment_of_hosts

    # Monitoring hosts only: the lab's allow rules for the telemetry and app listeners would open nothing,
    # and its stores.host (tel1) names no host here.
    alone = {**lab, "firewall": {"admin_networks": ["10.213.0.1/32"]}, "stores": {"mode": "single"}}
    hosts = [(n, ["monitoring"], build(n, ["monitoring", "lab"], {**alone, "address": a})) for n, a in (("mon1", "10.0.0.1"), ("mon2", "10.0.0.2"))]
    environment = environment_of_hosts(*hosts)
    topology, me, ctx = environment.topology, hosts[0][2], context_of(environment, "mon1")
    assert alertmanagers(topology) == ["10.0.0.1:9093", "10.0.0.2:9093"]
    # Two Alertmanagers: each gossips with the other on its own IP.
    assert monitoring_peers(ctx) == ["10.0.0.2:9094"] and ctx.bind("alertmanager.cluster") == "10.0.0.1:9094"
    jobs = {j.name: j for j in scrape_jobs(topology, me)}
    assert [t.address for t in jobs["alertmanager"].targets] == ["10.0.0.1:9093", "10.0.0.2:9093"]
    config = tmp_path / "prometheus.yml"
    from tests.tls_files import tls_on_disk

    config.write_text(prometheus_config(me, list(jobs.values()), alertmanagers(topology), tls_on_disk(tmp_path, "prometheus")))
    promtool = extract("prometheus", "promtool", tmp_path)
    result = subprocess.run([promtool, "check", "config", config], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "https://10.0.0.1:3000/d/sentinel-performance" in render_alert_rules(me, ctx)  # dashboards on this host's Grafana (https only)
