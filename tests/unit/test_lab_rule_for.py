"""The lab's `for` ceiling (`alerting.lab_rule_for_at_most`): it cuts only the rules longer than it,
in both evaluators' rule files, and no environment but the lab may set it."""

import pytest
import yaml

from roles._environment import group_data as load_group_data, host_settings as build
from roles._model import SettingsError, duration_seconds
from roles.alerting.catalog import load_catalog, with_for_at_most
from roles.alerting.rules import render_rules
from roles.grafana.alerting import alert_rules

pytestmark = pytest.mark.alerting


def _settings(environment: str, **alerting):
    data = {**load_group_data("all"), **load_group_data(environment)}
    data["alerting"] = {**data.get("alerting", {}), **alerting}
    return build("mon1", ["monitoring", environment], data)


def test_the_lab_cuts_every_longer_for_and_keeps_the_shorter_ones():
    ceiling = _settings("lab").alerting.lab_rule_for_at_most
    assert ceiling is not None, "group_data/lab.py sets it"
    catalog = load_catalog()
    capped = {a.uid: a for a in with_for_at_most(catalog, ceiling)}
    assert any(duration_seconds(a.for_) > duration_seconds(ceiling) for a in catalog), "no rule is longer: the ceiling proves nothing"
    for alert in catalog:
        want = ceiling if duration_seconds(alert.for_) > duration_seconds(ceiling) else alert.for_
        assert capped[alert.uid].for_ == want
        assert capped[alert.uid].model_copy(update={"for_": alert.for_}) == alert  # nothing else changed


def test_both_rule_files_carry_the_ceiling():
    capped = with_for_at_most(load_catalog(), "30s")
    prometheus = yaml.safe_load(render_rules(capped, "https://runbooks.example", "https://grafana.example:3000"))
    assert max(duration_seconds(r["for"]) for g in prometheus["groups"] for r in g["rules"]) == 30
    grafana = alert_rules(capped, "lab", "15s", "https://runbooks.example", "https://grafana.example:3000")
    assert max(duration_seconds(r["for"]) for g in grafana["groups"] for r in g["rules"]) == 30


def test_without_it_the_catalog_is_untouched():
    catalog = load_catalog()
    assert with_for_at_most(catalog, None) is catalog
    assert _settings("prod").alerting.lab_rule_for_at_most is None


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_it_is_refused_outside_the_lab(environment):
    with pytest.raises(SettingsError) as refused:
        _settings(environment, lab_rule_for_at_most="30s")
    assert "alerting.lab_rule_for_at_most" in refused.value.key and "remove" in refused.value.fix
