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
    "dev": {"critical": ["slack-critical"], "warning": ["slack-alerts"], "info": ["email-digest"]},
    "staging": {"critical": ["slack-critical"], "warning": ["slack-alerts"], "info": ["email-digest"]},
    "prod": {"critical": ["slack-critical", "pagerduty"], "warning": ["slack-alerts"], "info": ["email-digest"]},
    "lab": {"critical": ["slack-critical", "pagerduty"], "warning": ["slack-alerts"], "info": ["email-digest"]},
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


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
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
    assert timings["slack-critical"] == ("10s", "5m", "1h")
    assert timings["slack-alerts"] == ("1m", "15m", "4h")
    assert timings["email-digest"] == ("1m", "24h", "24h")
    if environment == "prod":
        assert timings["pagerduty"] == ("10s", "5m", "1h")


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
