"""Bad retention input is refused before any host is touched: the four cases of the logs issue."""

from __future__ import annotations

import pytest

from roles._model import SettingsError, parse
from roles.retention import RetentionPolicy, StreamRule
from roles.retention.contract import check_policy_labels, stream_labels

pytestmark = pytest.mark.retention

OPERATORS = {
    "default_period": "30d",
    "streams": [
        {"name": "security", "selector": '{stream="security"}', "period": "365d", "priority": 1},
        {"name": "audit", "selector": '{stream="audit"}', "period": "365d", "priority": 1},
    ],
}


def policy_with(rule: dict) -> dict:
    return {**OPERATORS, "streams": [*OPERATORS["streams"], rule]}


def test_the_stream_labels_are_the_contracts_four():
    assert list(stream_labels()) == ["service", "env", "stream", "level"]
    check_policy_labels(RetentionPolicy(), "retention")  # the operators' policy passes


@pytest.mark.parametrize(
    "selector, why",
    [
        ('{stream="debug"}', "matches none of the contract's stream values"),
        ('{level=~"trace|verbose"}', "matches none of the contract's level values"),
        ('{app="sentinel"}', "label 'app' is not a stream label"),
    ],
)
def test_a_rule_no_contract_label_can_match_is_refused(selector, why):
    policy = parse(RetentionPolicy, policy_with({"name": "x", "selector": selector, "period": "365d", "priority": 2}), "retention")
    with pytest.raises(SettingsError) as err:
        check_policy_labels(policy, "host tel1.retention")
    assert err.value.key == "host tel1.retention.streams[2].selector"
    assert why in str(err.value) and "Fix:" in str(err.value)


def test_a_rule_on_a_contract_label_passes():
    policy = parse(RetentionPolicy, policy_with({"name": "errors", "selector": '{stream="app", level=~"error|fatal"}', "period": "90d", "priority": 2}), "retention")
    check_policy_labels(policy, "retention")


@pytest.mark.parametrize(
    "rule, key, words",
    [
        # a retention below a compliance minimum
        ({"name": "sec-short", "selector": '{stream="security"}', "period": "90d", "priority": 2}, "streams[2].period", "below the PIPEDA security logs minimum"),
        # a selector with a syntax error
        ({"name": "broken", "selector": '{stream="app"', "period": "90d", "priority": 2}, "streams[2].selector", "is not a LogQL stream selector"),
        # a duplicate priority on rules that may match the same streams (Loki would keep the shorter)
        ({"name": "dup", "selector": '{service="sentinel-backend", stream=~"app|audit"}', "period": "365d", "priority": 1}, "streams[2].priority", "same priority"),
    ],
)
def test_the_policy_refuses_bad_input_with_key_and_fix(rule, key, words):
    with pytest.raises(SettingsError) as err:
        parse(RetentionPolicy, policy_with(rule), "retention")
    assert err.value.key == f"retention.{key}" and words in str(err.value)


def test_preflight_refuses_an_unmatchable_rule_before_connecting(tmp_path):
    from roles.preflight import check_environment
    from tests.environments import environment

    bad = policy_with({"name": "x", "selector": '{stream="debug"}', "period": "90d", "priority": 2})
    body = f'monitoring = ["m1"]\ntelemetry = [("t1", {{"retention": {bad!r}}})]\napp = ["a1"]\n'
    with pytest.raises(SettingsError) as err:
        check_environment(environment(tmp_path, "lab", body))
    assert err.value.key == "host t1.retention.streams[2].selector"
