"""The Grafana role without Grafana: rendering per environment, the reference check,
preflight (evaluator, dashboards' datasource uids), secrets, and the rollback and
tree-install scripts run for real in a scratch directory."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from roles._environment import EnvHost, Environment, group_data, host_settings
from roles._model import SettingsError
from roles._secrets import Secrets, resolve_secrets
from roles._service.artifacts import Artifact
from roles._service.rollback import swap_script
from roles._service.tree import tree_script
from roles.alerting.catalog import load_catalog
from roles.alertmanager import render_config as render_alertmanager
from roles.grafana import config_files, secret_files, service_spec
from roles.grafana.alerting import alert_rules, contact_points, notification_policies, render_alerting
from roles.grafana.config import ini_sections, render_ini
from roles.grafana.preflight import check_dashboards, check_grafana
from roles.grafana.provisioning import (
    TRACE_ID_IN_LINE,
    Peers,
    datasources,
    dashboard_providers,
    unknown_datasource_uids,
)
from roles.grafana.peers import grafana_peers, stores
from roles.grafana.settings import GrafanaSettings

pytestmark = pytest.mark.grafana

REPO = Path(__file__).resolve().parents[2]
REFERENCE = yaml.safe_load((REPO / "files" / "grafana" / "config-reference-12.4.14.yml").read_text())
ENVIRONMENTS = ("dev", "staging", "prod", "lab")
SECRET_VALUES = {
    "SENTINEL_GRAFANA_ADMIN_PASSWORD": "adm1n-S3CRET-value",
    "SENTINEL_GRAFANA_DB_PASSWORD": "db-S3CRET-value",
    "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": "https://hooks.example/CRIT-S3CRET",
    "SENTINEL_SLACK_ALERTS_WEBHOOK_URL": "https://hooks.example/ALERTS-S3CRET",
    "SENTINEL_PAGERDUTY_ROUTING_KEY": "pd-S3CRET-routing-key",
    "SENTINEL_SMTP_PASSWORD": "smtp-S3CRET-password",
    "SENTINEL_HEARTBEAT_URL": "https://hc-ping.example/HEARTBEAT-S3CRET",
}


SECRETS = Secrets(SECRET_VALUES)


def _settings(name: str, group: str, env: str, extra: dict | None = None):
    """A host's settings as pyinfra's group data (all, the role group, the environment) and host data make them."""
    ip = {"mon1": "10.9.0.11", "tel1": "10.9.0.12"}.get(name, "10.9.0.19")
    data = {**group_data("all"), **group_data(group), **group_data(env), "address": f"{name}.internal", "ip": ip, **(extra or {})}
    return host_settings(name, [group, env], data, env)


def monitoring_settings(env: str, extra: dict | None = None):
    """mon1's settings in `env`, with `extra` as host data."""
    return _settings("mon1", "monitoring", env, extra)


def context(env: str, extra: dict | None = None, telemetry: dict | None = None):
    """mon1's HostContext in an environment of mon1, tel1 and app1 (`telemetry`: tel1's host data)."""
    from tests.environments import context_of, environment_of_hosts

    hosts = (
        ("mon1", ["monitoring"], monitoring_settings(env, extra)),
        ("tel1", ["telemetry"], _settings("tel1", "telemetry", env, telemetry)),
        ("app1", ["app"], _settings("app1", "app", env)),
    )
    return context_of(environment_of_hosts(*hosts), "mon1", SECRETS)


def rendered(env: str, evaluator: str = "prometheus", extra: dict | None = None):
    data = dict(extra or {})
    if evaluator != "prometheus":
        data["alerting"] = {**_group_alerting(env), "evaluator": evaluator}
    ctx = context(env, data)
    settings = ctx.settings
    peers = grafana_peers(ctx)
    files = config_files(settings.grafana, settings.alerting, SECRETS, env, settings.address, peers, settings.ip)
    return settings, peers, {f.dest: f for f in files}


def _group_alerting(env: str) -> dict:
    return dict(group_data(env).get("alerting") or group_data("all").get("alerting") or {})


# --- the reference check -------------------------------------------------------


def ini_problems(sections: dict[str, dict[str, str]]) -> list[str]:
    known = REFERENCE["ini"]
    problems = []
    for section, keys in sections.items():
        if section not in known:
            problems.append(f"[{section}]")
            continue
        problems += [f"[{section}] {key}" for key in keys if key not in known[section]]
    return problems


def provisioning_problems(document: dict, kind: str) -> list[str]:
    """Fields of a provisioning document missing from the reference, as dotted paths."""
    ref = REFERENCE["provisioning"]
    problems: list[str] = []

    def check(obj: dict, allowed_key: str, where: str) -> None:
        allowed = ref[allowed_key]
        problems.extend(f"{where}.{key}" for key in obj if key not in allowed)

    if kind == "datasources":
        check(document, "datasources_file", "datasources.yml")
        for ds in document["datasources"]:
            where = f"datasources[{ds['uid']}]"
            check(ds, "datasource", where)
            json_kind = {"victoriametrics-logs-datasource": "victorialogs"}.get(ds["type"], ds["type"])
            problems.extend(f"{where}.jsonData.{k}" for k in ds["jsonData"] if k not in ref["jsonData"][json_kind])
            for key, value in ds["jsonData"].items():
                if key in ("tracesToLogsV2", "serviceMap", "tracesToMetrics", "nodeGraph"):
                    problems.extend(f"{where}.jsonData.{key}.{k}" for k in value if k not in ref["jsonData"][key])
                if key == "derivedFields":
                    for field in value:
                        problems.extend(f"{where}.derivedFields.{k}" for k in field if k not in ref["jsonData"]["derivedField"])
                if key == "exemplarTraceIdDestinations":
                    for dest in value:
                        problems.extend(f"{where}.{key}.{k}" for k in dest if k not in ref["jsonData"]["exemplarTraceIdDestination"])
    elif kind == "dashboards":
        check(document, "dashboards_file", "dashboards.yml")
        for provider in document["providers"]:
            check(provider, "dashboard_provider", "providers[]")
            check(provider["options"], "dashboard_provider_options", "providers[].options")
    elif kind == "alert-rules":
        check(document, "alert_rules_file", "alert-rules.yml")
        for group in document.get("groups", []):
            check(group, "rule_group", f"groups[{group['name']}]")
            for rule in group["rules"]:
                check(rule, "rule", f"rules[{rule['uid']}]")
                for query in rule["data"]:
                    check(query, "rule_query", f"rules[{rule['uid']}].data")
        for item in document.get("deleteRules", []):
            check(item, "delete_rule", "deleteRules[]")
    elif kind == "contact-points":
        check(document, "contact_points_file", "contact-points.yml")
        for point in document.get("contactPoints", []):
            check(point, "contact_point", f"contactPoints[{point['name']}]")
            for receiver in point["receivers"]:
                check(receiver, "receiver", f"contactPoints[{point['name']}].receivers[]")
                allowed = ref["receiver_settings"][receiver["type"]]
                problems.extend(f"{point['name']}.settings.{k}" for k in receiver["settings"] if k not in allowed)
        for item in document.get("deleteContactPoints", []):
            check(item, "delete_contact_point", "deleteContactPoints[]")
    elif kind == "notification-policies":
        check(document, "notification_policies_file", "notification-policies.yml")

        def walk(policy: dict, where: str) -> None:
            check(policy, "policy", where)
            for index, route in enumerate(policy.get("routes", [])):
                walk(route, f"{where}.routes[{index}]")

        for policy in document.get("policies", []):
            walk(policy, "policies[]")
    return problems


def _documents(files) -> dict[str, dict]:
    by_kind = {}
    for dest, f in files.items():
        if dest.endswith("datasources/sentinel.yml"):
            by_kind["datasources"] = yaml.safe_load(f.content)
        elif dest.endswith("dashboards/sentinel.yml"):
            by_kind["dashboards"] = yaml.safe_load(f.content)
        elif "/alerting/" in dest:
            by_kind[Path(dest).stem] = yaml.safe_load(f.content)
    return by_kind


def _ini(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.optionxform = str
    parser.read_string(text)
    return {s: dict(parser[s]) for s in parser.sections()}


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("evaluator", ["prometheus", "grafana"])
def test_every_rendered_key_is_in_grafanas_reference(env, evaluator):
    _, _, files = rendered(env, evaluator)
    assert ini_problems(_ini(files["/etc/grafana/grafana.ini"].content)) == []
    documents = _documents(files)
    assert set(documents) == {"datasources", "dashboards", "alert-rules", "contact-points", "notification-policies"}
    for kind, document in documents.items():
        assert provisioning_problems(document, kind) == [], kind


POSTGRES = {"grafana": {"database": {"type": "postgres", "host": "db.internal:5432"}}}


def pair_rendered(env: str = "prod", extra: dict | None = None, tls: bool = False):
    """Each monitoring host's (peers, files) in an environment of mon1, mon2, tel1 and app1 (a shared PostgreSQL);
    `tls`: with each host's Grafana client certificate, as the role renders them."""
    from roles.grafana.peers import grafana_ha
    from tests.environments import context_of, environment_of_hosts

    data = {**POSTGRES, **(extra or {})}
    hosts = (
        ("mon1", ["monitoring"], _settings("mon1", "monitoring", env, data)),
        ("mon2", ["monitoring"], _settings("mon2", "monitoring", env, {**data, "ip": "10.9.0.21", "address": "mon2.internal"})),
        ("tel1", ["telemetry"], _settings("tel1", "telemetry", env)),
        ("app1", ["app"], _settings("app1", "app", env)),
    )
    environment = environment_of_hosts(*hosts)
    result = {}
    for name in ("mon1", "mon2"):
        ctx = context_of(environment, name, SECRETS)
        client_tls = None
        if tls:
            from roles._tls import leaf

            identity = leaf(ctx, "grafana")
            client_tls = (identity.ca_pem, identity.cert_pem, identity.key_pem)
        settings, peers = ctx.settings, grafana_peers(ctx, client_tls)
        files = config_files(settings.grafana, settings.alerting, SECRETS, env, settings.address, peers, settings.ip, ha=grafana_ha(ctx))
        result[name] = (peers, {f.dest: f for f in files})
    return environment, result


def test_two_grafanas_gossip_with_each_other_and_the_keys_are_in_the_reference():
    _, pair = pair_rendered()
    for me, ip, other in (("mon1", "10.9.0.11", "mon2.internal"), ("mon2", "10.9.0.21", "mon1.internal")):
        sections = _ini(pair[me][1]["/etc/grafana/grafana.ini"].content)
        assert ini_problems(sections) == []
        assert sections["database"]["type"] == "postgres"  # one database for both
        assert sections["unified_alerting"] == {
            "enabled": "true",
            "ha_listen_address": f"{ip}:9096",
            "ha_advertise_address": f"{ip}:9096",
            "ha_peers": f"{other}:9096",
            "ha_peer_timeout": "15s",
            "ha_label": "sentinel-prod-grafana",
        }


def test_one_grafana_has_no_ha_keys():
    _, _, files = rendered("prod")
    assert _ini(files["/etc/grafana/grafana.ini"].content)["unified_alerting"] == {"enabled": "true"}


def test_grafana_gossip_is_open_to_the_other_grafana_only():
    from roles.firewall import openings_of
    from tests.environments import context_of

    environment, _ = pair_rendered()
    openings = {(o.protocol, o.sources) for o in openings_of(context_of(environment, "mon1")) if o.comment == "grafana.ha"}
    assert openings == {("tcp", ("10.9.0.21",)), ("udp", ("10.9.0.21",))}


def test_a_pair_s_grafana_reads_its_own_prometheus_by_default_and_each_by_name():
    _, pair = pair_rendered()
    for me, own in (("mon1", "mon1.internal"), ("mon2", "mon2.internal")):
        document = yaml.safe_load(pair[me][1]["/etc/grafana/provisioning/datasources/sentinel.yml"].content)
        assert provisioning_problems(document, "datasources") == []
        by_uid = {ds["uid"]: ds for ds in document["datasources"]}
        assert by_uid["prometheus"]["url"] == f"http://{own}:9090" and by_uid["prometheus"]["isDefault"] is True
        assert by_uid["alertmanager"]["url"] == f"http://{own}:9093"  # the cluster shares silences and alerts
        assert [(by_uid[u]["name"], by_uid[u]["url"], by_uid[u]["isDefault"]) for u in ("prometheus-1", "prometheus-2")] == [
            ("Prometheus mon1", "http://mon1.internal:9090", False),
            ("Prometheus mon2", "http://mon2.internal:9090", False),
        ]
    _, _, files = rendered("prod")  # one Prometheus: no named copies
    assert [ds["uid"] for ds in yaml.safe_load(files["/etc/grafana/provisioning/datasources/sentinel.yml"].content)["datasources"]
            if ds["uid"].startswith("prometheus")] == ["prometheus"]


def test_with_tls_each_prometheus_of_the_pair_is_https_with_grafana_s_certificate():
    """Both Prometheus serve TLS and admit every host's Grafana: the named copies are https and carry the certificate."""
    _, pair = pair_rendered(tls=True)
    for me in ("mon1", "mon2"):
        peers, files = pair[me]
        document = yaml.safe_load(files["/etc/grafana/provisioning/datasources/sentinel.yml"].content)
        assert provisioning_problems(document, "datasources") == []
        by_uid = {ds["uid"]: ds for ds in document["datasources"]}
        assert [by_uid[u]["url"] for u in ("prometheus-1", "prometheus-2")] == ["https://mon1.internal:9090", "https://mon2.internal:9090"]
        # The stores too (issue 22): the trace and log store are https and carry Grafana's certificate.
        for uid in ("prometheus", "prometheus-1", "prometheus-2", "alertmanager", "traces", "logs"):
            assert by_uid[uid]["url"].startswith("https://"), uid
            assert by_uid[uid]["jsonData"]["tlsAuth"] and by_uid[uid]["jsonData"]["tlsAuthWithCACert"], uid
            assert by_uid[uid]["secureJsonData"]["tlsClientKey"] == peers.client_tls[2], uid


def test_several_grafanas_on_sqlite_are_refused():
    with pytest.raises(SettingsError) as err:
        check_grafana("mon1", monitoring_settings("prod"), monitoring_hosts=2)
    assert err.value.key == "host mon1.grafana.database.type" and "postgres" in err.value.fix
    check_grafana("mon1", monitoring_settings("prod", POSTGRES), monitoring_hosts=2)
    check_grafana("mon1", monitoring_settings("lab"), monitoring_hosts=2)  # no binary in the lab: nothing shared


def test_postgres_keys_are_in_the_reference_too():
    _, _, files = rendered("prod", extra={"grafana": {"database": {"type": "postgres", "host": "db.internal:5432"}}})
    sections = _ini(files["/etc/grafana/grafana.ini"].content)
    assert sections["database"]["type"] == "postgres"
    assert sections["database"]["password"] == "$__file{/etc/grafana/secrets/db_password}"
    assert ini_problems(sections) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda s: s["security"].update({"cookie_secur": "true"}), "[security] cookie_secur"),
        (lambda s: s.update({"unified_alert": {"enabled": "true"}}), "[unified_alert]"),
        (lambda s: s["plugins"].update({"preinstall_disable": "true"}), "[plugins] preinstall_disable"),
    ],
)
def test_a_typo_in_grafana_ini_fails_the_reference_check(mutate, expected):
    settings = monitoring_settings("prod")
    sections = ini_sections(settings.grafana, settings.address)
    mutate(sections)
    assert expected in ini_problems(sections)


def test_a_typo_in_a_provisioning_field_fails_the_reference_check():
    _, peers, _ = rendered("prod")
    document = datasources(peers)
    document["datasources"][3]["jsonData"]["derivedFields"][0]["matcherRegx"] = "x"
    document["datasources"][2]["jsonData"]["tracesToLogsV2"]["filterByTraceId"] = True
    problems = provisioning_problems(document, "datasources")
    assert "datasources[logs].derivedFields.matcherRegx" in problems
    assert "datasources[traces].jsonData.tracesToLogsV2.filterByTraceId" in problems


# --- grafana.ini -------------------------------------------------------------------


def test_grafana_ini_has_the_operators_baseline():
    _, _, files = rendered("prod")
    ini = _ini(files["/etc/grafana/grafana.ini"].content)
    assert ini["security"]["admin_password"] == "$__file{/etc/grafana/secrets/admin_password}"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["security"]["cookie_secure"] == "true"  # https only
    assert ini["analytics"]["check_for_updates"] == "false"
    assert ini["plugins"]["preinstall_disabled"] == "true"
    assert ini["unified_alerting"]["enabled"] == "true"
    assert ini["database"] == {"type": "sqlite3", "path": "/var/lib/grafana/grafana.db"}
    assert ini["paths"]["provisioning"] == "/etc/grafana/provisioning"
    assert (ini["server"]["http_addr"], ini["server"]["http_port"]) == ("10.9.0.11", "3000")  # the host's IP, never 0.0.0.0
    assert "smtp" not in ini  # Alertmanager notifies unless alerting.evaluator is grafana


def test_cookies_are_secure_when_grafana_is_served_over_https():
    _, _, files = rendered("prod", extra={"grafana": {"root_url": "https://grafana.sentinel.internal/"}})
    ini = _ini(files["/etc/grafana/grafana.ini"].content)
    assert ini["security"]["cookie_secure"] == "true"
    assert ini["server"]["root_url"] == "https://grafana.sentinel.internal/"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grafana_serves_https_only_with_hsts_and_secure_cookies(env):
    _, _, files = rendered(env)
    ini = _ini(files["/etc/grafana/grafana.ini"].content)
    server, security = ini["server"], ini["security"]
    assert server["protocol"] == "https"
    assert (server["cert_file"], server["cert_key"]) == ("/etc/grafana/tls/grafana.crt", "/etc/grafana/tls/grafana.key")
    assert server["min_tls_version"] == "TLS1.2"
    assert server["root_url"] == "https://mon1.internal:3000/"  # the default is https too
    assert security["cookie_secure"] == "true"
    assert security["strict_transport_security"] == "true"
    assert int(security["strict_transport_security_max_age_seconds"]) == 365 * 24 * 3600
    # Internal names: never on the browsers' preload list, nor vouching for names below Grafana's.
    assert security["strict_transport_security_preload"] == "false"
    assert security["strict_transport_security_subdomains"] == "false"
    for key in ("protocol", "cert_file", "cert_key", "min_tls_version"):
        assert key in REFERENCE["ini"]["server"]
    for key in ("cookie_secure", "strict_transport_security", "strict_transport_security_max_age_seconds",
                "strict_transport_security_preload", "strict_transport_security_subdomains"):
        assert key in REFERENCE["ini"]["security"]


def test_a_plain_http_root_url_is_refused():
    with pytest.raises(Exception) as err:
        GrafanaSettings(root_url="http://grafana.sentinel.internal/")
    assert "https://" in str(err.value)


def test_grafanas_certificate_and_key_are_files_of_the_environment_ca_with_tight_modes():
    from roles._tls import leaf
    from roles.grafana import config_files as files_of

    ctx = context("prod")
    settings = ctx.settings
    certificate = leaf(ctx, "grafana")
    files = {f.dest: f for f in files_of(settings.grafana, settings.alerting, SECRETS, "prod", settings.address,
                                         grafana_peers(ctx), settings.ip, certificate=certificate)}
    key = files["/etc/grafana/tls/grafana.key"]
    assert (key.user, key.group, key.mode) == ("root", "grafana", "0640")
    assert key.content == certificate.key_pem
    assert files["/etc/grafana/tls/grafana.crt"].content == certificate.cert_pem
    assert files["/etc/grafana/tls/ca.crt"].content == certificate.ca_pem
    assert files["/etc/grafana/tls/ca.crt"].mode == "0644"


def test_grafana_evaluator_gets_smtp_with_the_password_from_a_file():
    _, _, files = rendered("prod", "grafana")
    smtp = _ini(files["/etc/grafana/grafana.ini"].content)["smtp"]
    assert smtp["password"] == "$__file{/etc/grafana/secrets/smtp-password}"
    assert files["/etc/grafana/secrets/smtp-password"].content == SECRET_VALUES["SENTINEL_SMTP_PASSWORD"] + "\n"
    assert smtp["host"] == "smtp.sentinel.internal:587"


def test_unit_runs_grafana_from_its_home_with_the_config():
    from roles._service import unit_file

    unit = unit_file(service_spec(monitoring_settings("prod").grafana))
    assert "ExecStart=/opt/grafana/current/bin/grafana \\\n    server \\\n    --homepath=/opt/grafana/current" in unit
    assert "--config=/etc/grafana/grafana.ini" in unit
    assert "ReadWritePaths=/var/lib/grafana" in unit and "ReadWritePaths=/var/log/grafana" in unit


# --- secrets ----------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("evaluator", ["prometheus", "grafana"])
def test_secrets_are_never_in_rendered_files(env, evaluator):
    _, _, files = rendered(env, evaluator, extra={"grafana": {"database": {"type": "postgres", "host": "db:5432"}}} if env == "prod" else None)
    secret_files = {d for d in files if d.startswith("/etc/grafana/secrets/")}
    for dest, f in files.items():
        assert (f.user, f.group, f.mode) == ("root", "grafana", "0640"), dest
        if dest in secret_files:
            continue
        for value in SECRET_VALUES.values():
            assert value not in f.content, (dest, "holds a secret value")
    values = {files[d].content.strip() for d in secret_files}
    assert SECRET_VALUES["SENTINEL_GRAFANA_ADMIN_PASSWORD"] in values
    if evaluator == "grafana":
        assert SECRET_VALUES["SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"] in values
        assert (SECRET_VALUES["SENTINEL_PAGERDUTY_ROUTING_KEY"] in values) == (env in ("prod", "lab"))
    else:
        assert secret_files == {"/etc/grafana/secrets/admin_password"} | ({"/etc/grafana/secrets/db_password"} if env == "prod" else set())


def _monitoring_environment(env: str, extra: dict | None = None) -> Environment:
    host = EnvHost(name="mon1", groups=("monitoring", env), settings=monitoring_settings(env, extra))
    return Environment(name=env, hosts=(host,))


@pytest.fixture
def env_secrets(monkeypatch):
    """The receivers' secrets of the right shape (tests/environments.py), Grafana's from SECRET_VALUES."""
    from tests.environments import GOOD_SECRETS

    monkeypatch.delenv("SENTINEL_SECRETS_DIR", raising=False)
    for name, value in {**GOOD_SECRETS, **{k: v for k, v in SECRET_VALUES.items() if "GRAFANA" in k}}.items():
        monkeypatch.setenv(name, value)


def test_preflight_resolves_grafanas_secrets_once(env_secrets):
    resolved = resolve_secrets(_monitoring_environment("prod"))
    assert resolved["SENTINEL_GRAFANA_ADMIN_PASSWORD"] == SECRET_VALUES["SENTINEL_GRAFANA_ADMIN_PASSWORD"]
    assert "SENTINEL_GRAFANA_DB_PASSWORD" not in resolved  # SQLite: no database password
    postgres = {"grafana": {"database": {"type": "postgres", "host": "db.internal:5432"}}}
    assert resolve_secrets(_monitoring_environment("prod", postgres))["SENTINEL_GRAFANA_DB_PASSWORD"] == SECRET_VALUES["SENTINEL_GRAFANA_DB_PASSWORD"]


@pytest.mark.parametrize(
    "missing, extra, key",
    [
        ("SENTINEL_GRAFANA_ADMIN_PASSWORD", None, "host mon1.grafana.admin_password_secret"),
        ("SENTINEL_GRAFANA_DB_PASSWORD", {"grafana": {"database": {"type": "postgres", "host": "db:5432"}}}, "host mon1.grafana.database.password_secret"),
    ],
)
def test_a_missing_grafana_secret_is_refused_with_key_and_fix(env_secrets, monkeypatch, missing, extra, key):
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_environment("prod", extra))
    assert err.value.key == key
    assert missing in err.value.fix


def test_a_short_admin_password_is_refused_without_echo(env_secrets, monkeypatch):
    monkeypatch.setenv("SENTINEL_GRAFANA_ADMIN_PASSWORD", "admin")
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_environment("prod"))
    assert err.value.key == "host mon1.grafana.admin_password_secret" and "12 characters" in err.value.problem
    assert "admin" not in str(err.value).replace("admin_password", "").replace("Grafana's admin", "")


def test_the_role_refuses_a_secret_preflight_did_not_resolve():
    settings = monitoring_settings("prod")
    with pytest.raises(SettingsError) as err:
        secret_files(settings.grafana, settings.alerting, Secrets({}))
    assert err.value.key == "grafana.admin_password_secret"


def test_postgres_without_a_host_is_refused():
    with pytest.raises(SettingsError) as err:
        monitoring_settings("prod", {"grafana": {"database": {"type": "postgres"}}})
    assert err.value.key == "host mon1.grafana.database.host"


# --- datasources and their links ------------------------------------------------


def _by_uid(peers):
    return {ds["uid"]: ds for ds in datasources(peers)["datasources"]}


def test_tempo_and_loki_link_both_ways():
    settings, peers, _ = rendered("prod")
    ds = _by_uid(peers)
    assert set(ds) == {"prometheus", "alertmanager", "traces", "logs"}
    assert ds["traces"]["type"] == "tempo" and ds["logs"]["type"] == "loki"
    links = ds["traces"]["jsonData"]["tracesToLogsV2"]
    assert links["datasourceUid"] == "logs" and links["filterByTraceID"] is True and links["customQuery"] is True
    # Grafana expands $... in provisioning values: the link variables are written $${...}.
    assert 'traceId="$${__trace.traceId}"' in links["query"]
    assert 'correlationId="$${__span.tags["sentinel.correlation_id"]}"' in links["query"]
    assert ds["traces"]["jsonData"]["serviceMap"] == {"datasourceUid": "prometheus"}
    derived = ds["logs"]["jsonData"]["derivedFields"][0]
    assert derived["datasourceUid"] == "traces" and derived["url"] == "$${__value.raw}"
    line = json.dumps({"ts": "2025-05-01T12:00:00.123Z", "msg": "request completed", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}, separators=(",", ":"))
    assert re.search(derived["matcherRegex"], line).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ds["prometheus"]["isDefault"] and ds["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "traces"
    assert ds["alertmanager"]["jsonData"] == {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}


def test_jaeger_and_victorialogs_link_the_same_way():
    _, peers, _ = rendered("lab")
    ds = _by_uid(peers)
    assert set(ds) == {"prometheus", "alertmanager", "traces", "logs"}
    assert ds["traces"]["type"] == "jaeger"
    assert ds["logs"]["type"] == "victoriametrics-logs-datasource"
    links = ds["traces"]["jsonData"]["tracesToLogsV2"]
    assert links["datasourceUid"] == "logs"
    assert 'traceId:"$${__trace.traceId}"' in links["query"] and "correlationId:" in links["query"]
    assert ds["logs"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "traces"
    assert "serviceMap" not in ds["traces"]["jsonData"]
    assert ds["traces"]["url"] == "http://tel1.internal:16686" and ds["logs"]["url"] == "http://tel1.internal:9428"


def test_dashboard_provider_points_at_the_dashboards_dir():
    flat = dashboard_providers(["business.json"])["providers"][0]
    assert flat["options"] == {"path": "/var/lib/grafana/dashboards", "foldersFromFilesStructure": False}
    assert flat["folder"] == "Sentinel" and flat["allowUiUpdates"] is False
    nested = dashboard_providers(["Sentinel/business.json"])["providers"][0]
    assert nested["folder"] == "" and nested["options"]["foldersFromFilesStructure"] is True


# --- Grafana-managed alerting from the same catalog --------------------------------


def _alertmanager_routes(settings) -> dict[str, set[str]]:
    config = yaml.safe_load(render_alertmanager(settings, load_catalog()))
    receivers: dict[str, set[str]] = {}
    for route in config["route"]["routes"]:
        if not route["matchers"][0].startswith("severity="):
            continue  # a catalog alert's own route (route_around): Grafana's files have none (docs/alerting.md)
        severity = route["matchers"][0].split('"')[1]
        receivers.setdefault(severity, set()).add(route["receiver"])
    if not settings.alerting.heartbeat.enabled:
        # Waived: Alertmanager drops the Watchdog in a receiver with no integration; Grafana,
        # which has no such receiver, is not given the Watchdog at all.
        assert receivers.pop("none") == {"heartbeat-waived"}
    return receivers


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grafana_routing_is_alertmanagers_routing(env):
    settings, _, _ = rendered(env, "grafana")
    policy = notification_policies(settings.alerting)["policies"][0]
    grafana: dict[str, set[str]] = {}
    for route in policy["routes"]:
        grafana.setdefault(route["object_matchers"][0][2], set()).add(route["receiver"])
    assert grafana == _alertmanager_routes(settings)
    assert ("pagerduty" in grafana["critical"]) == (env in ("prod", "lab"))
    critical = next(r for r in policy["routes"] if r["receiver"] == "slack-critical")
    warning = next(r for r in policy["routes"] if r["object_matchers"][0][2] == "warning")
    info = next(r for r in policy["routes"] if r["object_matchers"][0][2] == "info")
    if env != "lab":  # the lab alone has short timers
        assert (critical["group_wait"], warning["group_interval"], info["group_interval"]) == ("10s", "15m", "24h")
    names = {p["name"] for p in contact_points(settings.alerting)["contactPoints"]}
    assert {r["receiver"] for r in policy["routes"]} | {policy["receiver"]} <= names
    slack = next(p for p in contact_points(settings.alerting)["contactPoints"] if p["name"] == "slack-critical")
    assert slack["receivers"][0]["settings"] == {
        "url": "$__file{/etc/grafana/secrets/slack-critical-webhook-url}",
        "recipient": "#critical-alerts",
    }


def test_every_catalog_alert_becomes_a_grafana_rule():
    alerts = load_catalog()
    document = alert_rules(alerts, "prod", "30s", "https://git.example/blob/main", "http://mon1:3000")
    rules = {r["uid"]: r for g in document["groups"] for r in g["rules"]}
    assert set(rules) == {a.uid for a in alerts}
    for alert in alerts:
        rule = rules[alert.uid]
        assert rule["data"][0]["model"]["expr"] == alert.expr
        assert rule["data"][0]["datasourceUid"] == "prometheus" and rule["data"][0]["relativeTimeRange"]["from"] > 0
        assert rule["labels"] == {"severity": alert.severity, "uid": alert.uid, "environment": "prod"}
        assert "$value " not in rule["annotations"]["summary"] and "$value}" not in rule["annotations"]["summary"]
        assert rule["noDataState"] == "OK" and rule["condition"] == "C"
        assert len(alert.uid) <= 40


def test_prometheus_evaluator_makes_grafana_delete_its_managed_alerting():
    settings, _, _ = rendered("prod")
    files = render_alerting(load_catalog(), settings.alerting, "prod", "30s", "http://mon1:3000", enabled=False)
    rules = yaml.safe_load(files["alert-rules.yml"])
    assert "groups" not in rules
    assert {d["uid"] for d in rules["deleteRules"]} == {a.uid for a in load_catalog()}
    assert yaml.safe_load(files["notification-policies.yml"]) == {"apiVersion": 1, "resetPolicies": [1]}
    assert "contactPoints" not in yaml.safe_load(files["contact-points.yml"])


# --- preflight: the evaluator choice ----------------------------------------------


def test_both_evaluators_are_refused_with_key_and_fix():
    with pytest.raises(SettingsError) as err:
        monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": ["prometheus", "grafana"]}})
    assert err.value.key == "host mon1.alerting.evaluator"
    assert "page twice" in err.value.problem
    assert '"prometheus"' in err.value.fix and '"grafana"' in err.value.fix


@pytest.mark.parametrize("value", ["prometheus", "grafana", ["grafana"]])
def test_one_evaluator_is_accepted(value):
    settings = monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": value}})
    assert settings.alerting.evaluator == (value[0] if isinstance(value, list) else value)


def test_an_unknown_evaluator_is_refused():
    with pytest.raises(SettingsError) as err:
        monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": "grafan"}})
    assert err.value.key.startswith("host mon1.alerting.evaluator")


def test_default_evaluator_is_prometheus():
    assert monitoring_settings("prod").alerting.evaluator == "prometheus"


def test_grafana_evaluator_on_two_monitoring_hosts_is_refused():
    settings = monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": "grafana"}, **POSTGRES})
    with pytest.raises(SettingsError) as err:
        check_grafana("mon1", settings, monitoring_hosts=2)
    assert err.value.key == "host mon1.alerting.evaluator"
    check_grafana("mon1", settings, monitoring_hosts=1)


def test_install_binary_false_outside_the_lab_is_refused():
    with pytest.raises(SettingsError) as err:
        check_grafana("mon1", monitoring_settings("prod", {"grafana": {"install_binary": False}}), 1)
    assert err.value.key == "host mon1.grafana.install_binary"
    assert monitoring_settings("lab").grafana.install_binary is False


# --- preflight: dashboards' datasource uids ------------------------------------------


def _dashboard(*uids) -> str:
    return json.dumps({"uid": "x", "panels": [{"id": i, "datasource": {"type": "prometheus", "uid": uid}, "targets": [{"datasource": {"uid": uid}}]} for i, uid in enumerate(uids)]})


def test_a_dashboard_with_an_unknown_datasource_uid_is_refused():
    with pytest.raises(SettingsError) as err:
        check_dashboards("mon1", monitoring_settings("prod"), {"business.json": _dashboard("prometheus", "promethues")})
    assert err.value.key == "files/grafana/dashboards/business.json:panels[1].datasource"
    assert "'promethues'" in err.value.problem


def test_known_uids_builtins_and_variables_pass():
    dashboards = {"a.json": _dashboard("prometheus", "logs", "traces", "-- Grafana --", "${datasource}")}
    check_dashboards("mon1", monitoring_settings("prod"), dashboards)


def test_a_store_named_uid_is_refused_in_every_environment():
    # uids name the signal (logs, traces), never the store, so dashboards do not change with it.
    dashboards = {"logs.json": _dashboard("loki")}
    assert unknown_datasource_uids(dashboards, Peers("", "", "jaeger", "", "victorialogs", "").uids) == [
        ("logs.json", "panels[0].datasource", "loki"),
        ("logs.json", "panels[0].targets[0].datasource", "loki"),
    ]
    for env in ("prod", "lab"):
        with pytest.raises(SettingsError):
            check_dashboards("mon1", monitoring_settings(env), dashboards)
        with pytest.raises(SettingsError):
            check_dashboards("mon1", monitoring_settings(env), {"x.json": _dashboard("lokki")})


def test_the_committed_dashboards_reference_only_provisioned_datasources():
    for env in ENVIRONMENTS:
        check_dashboards("mon1", monitoring_settings(env))


# --- the building-block extensions, run for real in a scratch directory -------------------


def _fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "journalctl"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/calls\n')
        tool.chmod(0o755)
    return bin_dir


def _run_swap(tmp_path: Path, ready_url: str, unit_present: bool = True) -> subprocess.CompletedProcess:
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "grafana.ini").write_text("old ini\n")
    (etc / "grafana.ini.staged").write_text("new ini\n")
    (etc / "new.yml.staged").write_text("new provisioning\n")
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    if unit_present:
        (units / "grafana.service").write_text("[Unit]\n")
    script = "set -eu\n" + "\n".join(
        swap_script([str(etc / "grafana.ini"), str(etc / "new.yml")], "grafana.service", ready_url, 2, unit_dir=str(units))
    )
    env = {**os.environ, "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)


def test_rollback_restores_the_previous_files_when_grafana_does_not_come_up(tmp_path):
    result = _run_swap(tmp_path, f"file://{tmp_path}/never-ready")
    assert result.returncode == 1
    assert "did not answer" in result.stderr and "previous files are back" in result.stderr
    assert (tmp_path / "etc" / "grafana.ini").read_text() == "old ini\n"
    assert not (tmp_path / "etc" / "new.yml").exists()  # did not exist before: removed again
    assert not list((tmp_path / "etc").glob("*.previous"))
    assert (tmp_path / "calls").read_text().count("systemctl restart grafana.service") == 2


def test_new_files_stay_when_grafana_answers(tmp_path):
    (tmp_path / "health").write_text('{"database": "ok"}')
    result = _run_swap(tmp_path, f"file://{tmp_path}/health")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc" / "grafana.ini").read_text() == "new ini\n"
    assert (tmp_path / "etc" / "new.yml").read_text() == "new provisioning\n"
    assert not list((tmp_path / "etc").glob("*.previous"))
    assert (tmp_path / "calls").read_text().count("restart") == 1


def test_without_a_unit_the_files_are_only_put_in_place(tmp_path):
    result = _run_swap(tmp_path, f"file://{tmp_path}/never-ready", unit_present=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc" / "grafana.ini").read_text() == "new ini\n"
    assert not (tmp_path / "calls").exists()


def _archive(tmp_path: Path, top: str, files: dict[str, str]) -> Artifact:
    source = tmp_path / "src" / top
    for relative, text in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
    tarball = tmp_path / "grafana-1.2.3.linux-amd64.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(source, arcname=top)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    # As files/versions.yml has it: the binary `grafana` at bin/grafana inside archive_dir.
    return Artifact("grafana", "1.2.3", f"file://{tarball}", digest, top, ("grafana",), (("grafana", "bin/grafana"),))


def test_release_tree_installs_the_whole_verified_tree(tmp_path):
    artifact = _archive(tmp_path, "grafana-v1.2.3", {"bin/grafana": "#!/bin/sh\n", "conf/defaults.ini": "[paths]\n", "public/index.html": "x"})
    install = tmp_path / "opt" / "1.2.3"
    install.parent.mkdir()
    result = subprocess.run(["sh", "-c", "set -eu\n" + "\n".join(tree_script(artifact, str(install)))], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (install / "public" / "index.html").read_text() == "x"
    assert (install / ".artifact-sha256").read_text().strip() == artifact.sha256


def test_release_tree_refuses_a_wrong_checksum_or_a_missing_file(tmp_path):
    artifact = _archive(tmp_path, "grafana-v1.2.3", {"bin/grafana": "#!/bin/sh\n", "conf/defaults.ini": ""})
    install = tmp_path / "opt" / "1.2.3"
    install.parent.mkdir()
    bad = Artifact(**{**artifact.__dict__, "sha256": "0" * 64})
    result = subprocess.run(["sh", "-c", "set -eu\n" + "\n".join(tree_script(bad, str(install)))], capture_output=True, text=True)
    assert result.returncode == 1 and "checksum mismatch" in result.stderr and not install.exists()
    missing = Artifact(**{**artifact.__dict__, "archive_names": (("grafana", "bin/grafana-server"),)})
    result = subprocess.run(["sh", "-c", "set -eu\n" + "\n".join(tree_script(missing, str(install)))], capture_output=True, text=True)
    assert result.returncode == 1 and "has no grafana-v1.2.3/bin/grafana-server" in result.stderr and not install.exists()


# --- the backup token helper, against a recorded API -----------------------------------


def _token_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("backup_token", REPO / "files" / "grafana" / "backup_token.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_grafana(calls, accounts, tokens):
    def fake_call(base, auth, method, path, body=None):
        calls.append((method, path.split("?")[0], body))
        if path.startswith("/api/serviceaccounts/search"):
            return {"serviceAccounts": accounts}
        if path == "/api/serviceaccounts":
            return {"id": 9, "name": body["name"], "role": body["role"]}
        if method == "GET" and path.endswith("/tokens"):
            return list(tokens)
        if method in ("PATCH", "DELETE"):
            return {"message": "ok"}
        tokens.append({"id": len(tokens) + 1, "name": body["name"]})
        return {"id": len(tokens), "name": body["name"], "key": f"glsa_TOKEN_S3CRET_{len(tokens)}"}

    return fake_call


def _owner():
    import grp
    import pwd

    return f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"


def test_backup_token_is_an_editors_that_expires_created_once_and_never_printed(tmp_path, monkeypatch, capsys):
    module = _token_module()
    calls, tokens = [], []
    monkeypatch.setattr(module, "call", _fake_grafana(calls, [{"id": 7, "name": "other", "role": "Admin"}], tokens))
    password = tmp_path / "admin_password"
    password.write_text("pw\n")
    token = tmp_path / "secrets" / "backup-token"
    argv = [f"--admin-password-file={password}", f"--token-file={token}", f"--owner={_owner()}", "--mode=0600", "--lifetime-days=90"]
    before = time.time()
    assert module.main(argv) == 0
    assert token.read_text() == "glsa_TOKEN_S3CRET_1\n"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    assert [c[:2] for c in calls] == [
        ("GET", "/api/serviceaccounts/search"),
        ("POST", "/api/serviceaccounts"),
        ("POST", "/api/serviceaccounts/9/tokens"),
        ("GET", "/api/serviceaccounts/9/tokens"),  # phase two finds nothing else to delete
    ]
    assert calls[1][2]["role"] == "Editor" and calls[2][2]["secondsToLive"] == 90 * 86400
    expiry = int(Path(f"{token}.expires").read_text())
    assert before + 90 * 86400 - 5 <= expiry <= time.time() + 90 * 86400  # never later than Grafana's
    out = capsys.readouterr()
    assert "S3CRET" not in out.out + out.err
    calls.clear()
    assert module.main(argv) == 0  # a second run: the file exists, no API call
    assert calls == []


def test_renewal_is_two_phase_and_an_admin_account_becomes_an_editor(tmp_path, monkeypatch, capsys):
    module = _token_module()
    calls = []
    tokens = [{"id": 1, "name": "sentinel-backup-old"}]
    accounts = [{"id": 4, "name": "sentinel-backup", "role": "Admin"}]  # made by an earlier version
    monkeypatch.setattr(module, "call", _fake_grafana(calls, accounts, tokens))
    password = tmp_path / "admin_password"
    password.write_text("pw\n")
    token = tmp_path / "token"
    token.write_text("glsa_OLD_S3CRET\n")
    argv = [f"--admin-password-file={password}", f"--token-file={token}", f"--owner={_owner()}", "--mode=0600", "--renew"]
    assert module.main(argv) == 0
    steps = [c[:2] for c in calls]
    assert steps == [
        ("GET", "/api/serviceaccounts/search"),
        ("PATCH", "/api/serviceaccounts/4"),
        ("POST", "/api/serviceaccounts/4/tokens"),
        ("GET", "/api/serviceaccounts/4/tokens"),
        ("DELETE", "/api/serviceaccounts/4/tokens/1"),
    ]
    assert calls[1][2] == {"role": "Editor"}
    # The new token is in the file before the old one is deleted (both valid in between).
    assert token.read_text() == "glsa_TOKEN_S3CRET_2\n"
    assert "S3CRET" not in "".join(capsys.readouterr())


@pytest.mark.parametrize(
    "exists, expiry, action",
    [
        (False, None, "create"),
        (True, "", "renew"),  # a token from before expiries were recorded (Admin, never expiring)
        (True, "garbage", "renew"),
        (True, str(1_000_000 + 29 * 86400), "renew"),  # inside the 30-day window
        (True, str(1_000_000 + 31 * 86400), None),  # far from it: a second converge changes nothing
    ],
)
def test_the_converge_creates_or_renews_the_token_only_when_needed(exists, expiry, action):
    from roles.grafana.operations import token_action

    assert token_action(exists, expiry, 30 * 86400, now=1_000_000) == action


def test_the_token_renewal_window_is_inside_its_lifetime_and_before_the_alert():
    with pytest.raises(Exception) as err:
        GrafanaSettings(backup_token_lifetime_days=30, backup_token_renew_within_days=30)
    assert "backup_token_renew_within_days" in str(err.value)
    with pytest.raises(Exception):
        GrafanaSettings(backup_token_renew_within_days=14)  # the alert fires 14 days before: renew earlier
    with pytest.raises(Exception):
        GrafanaSettings(backup_token_lifetime_days=0)


def test_prometheus_evaluates_nothing_when_grafana_does():
    from roles.prometheus import render_alert_rules

    grafana_settings = monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": "grafana"}})
    assert yaml.safe_load(render_alert_rules(grafana_settings, context("prod"))) == {"groups": []}
    groups = yaml.safe_load(render_alert_rules(monitoring_settings("prod"), context("prod")))["groups"]
    assert sum(len(g["rules"]) for g in groups) == len(load_catalog())


def test_promtool_accepts_the_empty_rule_file(tmp_path):
    from roles.prometheus import render_alert_rules
    from tests.mirror_binaries import extract

    promtool = extract("prometheus", "promtool", tmp_path)
    rules = tmp_path / "sentinel-alerts.yml"
    settings = monitoring_settings("prod", {"alerting": {**_group_alerting("prod"), "evaluator": "grafana"}})
    rules.write_text(render_alert_rules(settings, {}))
    result = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the new core: wiring, store choice, versions, backup token defaults ------------------


def test_the_store_choice_is_traces_store_and_logs_store_of_group_data():
    """roles/grafana/peers.py `stores` reads the environment's choice (group data traces.store / logs.store)."""
    assert stores(monitoring_settings("lab")) == ("jaeger", "victorialogs")
    for env in ("dev", "staging", "prod"):
        assert stores(monitoring_settings(env)) == ("tempo", "loki")
    lab = monitoring_settings("lab")
    chosen = lab.model_copy(update={"traces": lab.traces.model_copy(update={"store": "tempo"})})
    assert stores(chosen) == ("tempo", "victorialogs")


def test_peers_are_the_hosts_own_prometheus_and_alertmanager_and_the_stores_listeners():
    settings, peers, _ = rendered("prod")
    assert (peers.prometheus_url, peers.alertmanager_url) == ("http://mon1.internal:9090", "http://mon1.internal:9093")
    assert (peers.traces_url, peers.logs_url) == ("http://tel1.internal:3200", "http://tel1.internal:3100")
    # The stores' ports are their own settings: a changed port reaches the datasources.
    moved = grafana_peers(context("prod", telemetry={"loki": {"http_port": 3111}, "traces": {"tempo": {"http_port": 3222}}}))
    assert (moved.traces_url, moved.logs_url) == ("http://tel1.internal:3222", "http://tel1.internal:3111")
    lab = grafana_peers(context("lab", telemetry={"victorialogs": {"port": 9500}}))
    assert lab.logs_url == "http://tel1.internal:9500"


def test_the_backup_token_is_where_the_backup_job_reads_it():
    """Branch backups: roles/grafana_backup reads /etc/grafana-backup/token as the grafana-backup group."""
    defaults = GrafanaSettings()
    assert (defaults.backup_token_path, defaults.backup_token_owner, defaults.backup_token_mode) == (
        "/etc/grafana-backup/token",
        "root:grafana-backup",
        "0640",
    )
    with pytest.raises(SettingsError) as err:
        monitoring_settings("prod", {"grafana": {"backup_token_owner": "root"}})
    assert err.value.key == "host mon1.grafana.backup_token_owner"


def test_the_token_helper_fails_cleanly_when_the_group_is_missing(tmp_path, monkeypatch, capsys):
    """The role creates the group first; should it still be missing, no token file is left behind and nothing is printed."""
    module = _token_module()

    def fake_call(base, auth, method, path, body=None):
        if path.startswith("/api/serviceaccounts/search"):
            return {"serviceAccounts": [{"id": 3, "name": module.ACCOUNT}]}
        return {"id": 1, "name": body["name"], "key": "glsa_TOKEN_S3CRET_value"}

    monkeypatch.setattr(module, "call", fake_call)
    password = tmp_path / "admin_password"
    password.write_text("pw\n")
    token = tmp_path / "grafana-backup" / "token"
    argv = [f"--admin-password-file={password}", f"--token-file={token}", "--owner=root:no-such-group-4711", "--mode=0640"]
    calls = []
    monkeypatch.setattr(module, "call", lambda *args, **kw: calls.append(args) or fake_call(*args, **kw))
    assert module.main(argv) == 1
    assert calls == []  # no token is created in Grafana that could not be stored
    assert not token.exists() and not (token.parent.exists() and list(token.parent.glob(".backup-token.*")))
    out = capsys.readouterr()
    assert "no-such-group-4711" in out.err and "S3CRET" not in out.out + out.err


def test_grafana_is_a_deployed_component_and_its_server_path_comes_from_versions_yml():
    from roles._service.artifacts import load_versions
    from roles._versions import DEPLOYED_COMPONENTS
    from roles.grafana import server_path

    assert "grafana" in DEPLOYED_COMPONENTS
    entry = load_versions()["grafana"]
    assert server_path() == entry["archive_names"]["grafana"] == "bin/grafana"
    assert entry["archive_dir"] == "grafana-v{version}"


def test_the_unverified_plugin_is_production_only_in_the_lab_builder():
    from lab.artifacts import recipes

    releases = recipes.load_releases()
    assert "victoriametrics-logs-datasource" in releases
    assert "victoriametrics-logs-datasource" in recipes.PRODUCTION_ONLY
    assert "UNVERIFIED" in (REPO / "files" / "versions.yml").read_text().split("victoriametrics-logs-datasource:")[0].rsplit("\n\n", 1)[-1]


def test_no_secret_value_in_the_guarded_file_commands(monkeypatch):
    """What pyinfra may print about the swap of grafana.ini and its secret files holds no secret value."""
    from roles._service import rollback
    from tests.unit.test_hostile_rendering import FakeHost, command_texts

    monkeypatch.setattr(rollback, "host", FakeHost())
    _, _, files = rendered("prod", "grafana", extra={"grafana": {"database": {"type": "postgres", "host": "db:5432"}}})
    texts = command_texts(rollback.guarded_files._inner(tuple(files.values()), "grafana.service", "http://127.0.0.1:3000/api/health", 90))
    assert len(texts) > 20
    for text in texts:
        for value in SECRET_VALUES.values():
            assert value not in text


def test_grafana_ini_refuses_a_value_that_would_start_a_new_key():
    from roles._service.quoting import QuotingError

    with pytest.raises(QuotingError):
        render_ini({"server": {"root_url": "http://x/\nadmin_password = hunter2"}})


class _Recorder:
    """Stands in for a pyinfra operations module: records each call's name and arguments."""

    def __init__(self, calls: list, prefix: str):
        self.calls, self.prefix = calls, prefix

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((f"{self.prefix}.{name}", kwargs))
            return _Op()

        return record


class _Op:
    def did_change(self):
        return False


def _run_role(monkeypatch, env: str, extra: dict | None = None) -> list[tuple[str, dict]]:
    """The role's body for mon1 of `env`, with every pyinfra operation recorded instead of run."""
    import roles.grafana as role

    calls: list[tuple[str, dict]] = []
    for name in ("files", "server"):
        monkeypatch.setattr(role, name, _Recorder(calls, name))
    for name in ("guarded_files", "release_tree", "backup_token", "admin_password", "service_account", "service_dirs", "run_service",
                 "certificate_expiry"):
        monkeypatch.setattr(role, name, lambda *args, _name=name, **kwargs: calls.append((_name, kwargs)) or _Op())
    monkeypatch.setattr(role, "resolve", lambda name, base, arch: Artifact(name, "1.0.0", f"{base}/{name}.tar.gz", "0" * 64, name, ("x",)))
    monkeypatch.setattr(role, "host", type("H", (), {"get_fact": lambda self, fact, **kw: "x86_64"})())
    ctx = context(env, extra)
    role.grafana._inner(ctx.settings.grafana, ctx)
    return calls


def test_the_lab_gets_the_files_but_no_binary_no_unit_and_no_token(monkeypatch):
    calls = [name for name, _ in _run_role(monkeypatch, "lab")]
    assert "guarded_files" in calls and "service_account" in calls
    assert not {"release_tree", "run_service", "backup_token", "admin_password", "server.group"} & set(calls)


def test_the_admin_password_is_applied_once_grafana_runs_and_before_the_token_step_logs_in(monkeypatch):
    from roles.grafana.config import ADMIN_PASSWORD_FILE, ADMIN_PASSWORD_STAMP, ADMIN_PREVIOUS_PASSWORD_FILE

    calls = _run_role(monkeypatch, "prod")
    names = [name for name, _ in calls]
    applied = names.index("admin_password")
    assert names.index("run_service") < applied < names.index("backup_token")
    kwargs = calls[applied][1]
    assert (kwargs["password_file"], kwargs["stamp_file"], kwargs["previous_file"]) == (ADMIN_PASSWORD_FILE, ADMIN_PASSWORD_STAMP, "")
    assert kwargs["url"] == calls[names.index("backup_token")][1]["url"]
    # No rotation under way: no previous password on the host (one left from the last rotation is removed).
    removed = [kw for name, kw in calls if name == "files.file" and kw["path"] == ADMIN_PREVIOUS_PASSWORD_FILE]
    assert removed and removed[0]["present"] is False


def test_a_rotations_previous_password_is_roots_alone_on_the_host(monkeypatch):
    from roles.grafana.config import ADMIN_PREVIOUS_PASSWORD_FILE

    rotating = {**SECRET_VALUES, "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD": "the-password-grafana-has-0000"}
    monkeypatch.setitem(globals(), "SECRETS", Secrets(rotating))  # context() reads the module's SECRETS
    calls = _run_role(monkeypatch, "prod")
    put = next(kw for name, kw in calls if name == "files.put" and kw["dest"] == ADMIN_PREVIOUS_PASSWORD_FILE)
    assert (put["user"], put["group"], put["mode"]) == ("root", "root", "0600")
    assert put["src"].getvalue() == "the-password-grafana-has-0000\n"
    assert next(kw for name, kw in calls if name == "admin_password")["previous_file"] == ADMIN_PREVIOUS_PASSWORD_FILE


def test_the_token_group_and_its_directory_exist_before_the_token_is_written(monkeypatch):
    calls = _run_role(monkeypatch, "prod")
    names = [name for name, _ in calls]
    group = names.index("server.group")
    token = names.index("backup_token")
    assert calls[group][1]["group"] == "grafana-backup" and calls[group][1]["system"] is True
    directory = next(i for i, (name, kw) in enumerate(calls) if name == "files.directory" and kw["path"] == "/etc/grafana-backup")
    assert calls[directory][1]["group"] == "grafana-backup" and calls[directory][1]["mode"] == "0750"
    assert group < directory < token and names.index("run_service") < token
    assert calls[token][1]["token_file"] == "/etc/grafana-backup/token" and calls[token][1]["mode"] == "0640"
    # The helper sends the admin password to this host's Grafana where it binds (the topology's), never the loopback
    # port another service could hold.
    assert calls[token][1]["url"] == f"https://{context('prod').bind('grafana.http')}" != "https://127.0.0.1:3000"
    # Tempo + Loki: Grafana's own tree only, no VictoriaLogs plugin.
    assert [kw["install_dir"] for name, kw in calls if name == "release_tree"] == ["/opt/grafana/1.0.0"]
