"""Alertmanager's routing per environment, checked by the real amtool.

The config is rendered from each environment's group data exactly as the
Alertmanager role renders it; `amtool config routes test` says which receivers
an alert of each severity reaches.
"""

import subprocess

import pytest

from roles._environment import group_data as load_group_data, host_settings as build
from roles.alerting.catalog import load_catalog
from roles.alertmanager import render_config
from tests.mirror_binaries import extract

pytestmark = pytest.mark.alerting

EXPECTED = {
    # environment: severity -> receivers, in the order amtool prints them
    "dev": {"critical": ["slack-critical"], "warning": ["slack-alerts"], "info": ["email-digest"], "none": ["heartbeat-waived"]},
    "staging": {"critical": ["slack-critical"], "warning": ["slack-alerts"], "info": ["email-digest"], "none": ["heartbeat"]},
    "prod": {"critical": ["slack-critical", "pagerduty"], "warning": ["slack-alerts"], "info": ["email-digest"], "none": ["heartbeat"]},
    "lab": {"critical": ["slack-critical", "pagerduty"], "warning": ["slack-alerts"], "info": ["email-digest"], "none": ["heartbeat"]},
}


def settings_of(environment):
    """A monitoring host's settings, from all.py and the environment's group data as pyinfra merges them."""
    data = {**load_group_data("all"), **load_group_data(environment)}
    return build("mon1", ["monitoring", environment], data)


@pytest.fixture(scope="module")
def amtool(tmp_path_factory):
    return extract("alertmanager", "amtool", tmp_path_factory.mktemp("amtool"))


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def environment_config(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "alertmanager.yml"
    path.write_text(render_config(settings_of(request.param), load_catalog()))
    return request.param, path


def routes_test(amtool, config, *labels):
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


def test_config_passes_amtool_check(amtool, environment_config):
    _, config = environment_config
    result = subprocess.run([amtool, "check-config", config], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("severity", ["critical", "warning", "info", "none"])
def test_receivers_per_severity(amtool, environment_config, severity):
    environment, config = environment_config
    got = routes_test(amtool, config, f"severity={severity}", "alertname=Anything", f"environment={environment}")
    assert got == EXPECTED[environment][severity]


def test_pagerduty_only_where_enabled(environment_config):
    environment, config = environment_config
    assert ("pagerduty_configs" in config.read_text()) == (environment in ("prod", "lab"))


def test_an_alert_without_severity_still_reaches_slack(amtool, environment_config):
    _, config = environment_config
    assert routes_test(amtool, config, "alertname=Unlabelled") == ["slack-alerts"]


def test_prod_keeps_production_timings(environment_config):
    """Lab timings live in group_data/lab.py only; prod renders the defaults."""
    import yaml

    environment, config = environment_config
    routes = {r["receiver"]: r for r in yaml.safe_load(config.read_text())["route"]["routes"]}
    timings = {name: (r["group_wait"], r["group_interval"], r["repeat_interval"]) for name, r in routes.items()}
    if environment == "lab":
        assert timings["slack-critical"][0] == "5s"
        return
    assert timings["slack-critical"] == ("10s", "30s", "1h")
    assert timings["slack-alerts"] == ("1m", "15m", "4h")
    assert timings["email-digest"] == ("1m", "24h", "24h")
    if environment == "prod":
        assert timings["pagerduty"] == ("10s", "30s", "1h")


def test_secrets_are_files_never_values(environment_config):
    """Only *_file references: no webhook URL, key or password in the rendered config."""
    import yaml

    _, config = environment_config
    document = yaml.safe_load(config.read_text())
    for receiver in document["receivers"]:
        for kind, configs in receiver.items():
            for item in configs if isinstance(configs, list) else []:
                assert not {"api_url", "routing_key", "service_key", "auth_password"} & set(item), (receiver["name"], kind)
    assert "smtp_auth_password" not in document["global"]


def test_warning_inhibited_by_its_critical(environment_config):
    import yaml

    _, config = environment_config
    rules = yaml.safe_load(config.read_text())["inhibit_rules"]
    assert {"source_matchers": ['uid="backend-error-rate-critical"'], "target_matchers": ['uid="backend-error-rate-warning"'], "equal": ["environment"]} in rules


def test_the_watchdog_reaches_only_the_heartbeat_and_never_its_resolve(amtool, environment_config):
    """The Watchdog (severity none) goes to the dead man's switch alone, at once and every
    repeat_interval, and never as "resolved": a resolved Watchdog means Prometheus stopped."""
    import yaml

    environment, config = environment_config
    got = routes_test(amtool, config, "severity=none", "alertname=Watchdog", "uid=watchdog", f"environment={environment}")
    document = yaml.safe_load(config.read_text())
    route = next(r for r in document["route"]["routes"] if r["matchers"] == ['severity="none"'])
    assert got == [route["receiver"]] and not route.get("continue")
    receiver = next(r for r in document["receivers"] if r["name"] == route["receiver"])
    if environment == "dev":  # waived in group_data/dev.py: a receiver with no integration
        assert receiver == {"name": "heartbeat-waived"}
        return
    assert receiver["webhook_configs"] == [{"url_file": "/etc/alertmanager/secrets/heartbeat-url", "send_resolved": False}]
    assert route["group_wait"] == "0s"
    if environment != "lab":
        assert (route["group_interval"], route["repeat_interval"]) == ("30s", "1m")


# AlertmanagerFailedToSendAlerts never goes through the integration that fails (route_around: integration).
ROUTED_AROUND = {
    # environment: failing integration -> receivers, in the order amtool prints them
    "dev": {"slack": ["email-ops"], "email": ["slack-critical"], "webhook": ["slack-critical"]},
    "staging": {"slack": ["email-ops"], "email": ["slack-critical"], "webhook": ["slack-critical"]},
    "prod": {"slack": ["pagerduty", "email-ops"], "pagerduty": ["slack-critical"], "email": ["slack-critical"], "webhook": ["slack-critical"]},
    "lab": {"slack": ["pagerduty", "email-ops"], "pagerduty": ["slack-critical"], "email": ["slack-critical"], "webhook": ["slack-critical"]},
}


def _integrations(config_path) -> dict[str, set[str]]:
    """receiver name -> the integrations it notifies through (slack, pagerduty, email, webhook)."""
    import yaml

    document = yaml.safe_load(config_path.read_text())
    return {r["name"]: {kind.removesuffix("_configs") for kind in r if kind.endswith("_configs")} for r in document["receivers"]}


def test_failed_notifications_are_routed_around_the_failing_integration(amtool, environment_config):
    environment, config = environment_config
    alert = next(a for a in load_catalog() if a.route_around)
    integrations = _integrations(config)
    for failing, expected in ROUTED_AROUND[environment].items():
        got = routes_test(
            amtool, config, f"alertname={alert.name}", f"uid={alert.uid}", f"severity={alert.severity}",
            f"environment={environment}", f"{alert.route_around}={failing}",
        )
        assert got == expected, failing
        # Whatever the receivers' names, none of them notifies through the failing integration.
        assert all(failing not in integrations[receiver] for receiver in got), (failing, got)


def test_other_alerts_keep_their_severity_route(amtool, environment_config):
    """The route of the routed-around alert matches its uid only: another alert with an integration label is routed as usual."""
    environment, config = environment_config
    got = routes_test(amtool, config, "alertname=Other", "severity=critical", f"environment={environment}", "integration=slack")
    assert got == EXPECTED[environment]["critical"]


def test_symptom_inhibited_only_by_its_own_cause(environment_config):
    """LogIngestionDelayed is silenced by the send-failed or queue alert of the same host and exporter, not of any."""
    import yaml

    _, config = environment_config
    rules = yaml.safe_load(config.read_text())["inhibit_rules"]
    for cause in ("otelcol-exporter-send-failed", "otelcol-exporter-queue-nearly-full"):
        assert {
            "source_matchers": [f'uid="{cause}"'],
            "target_matchers": ['uid="log-ingestion-delayed"'],
            "equal": ["environment", "host", "exporter"],
        } in rules
