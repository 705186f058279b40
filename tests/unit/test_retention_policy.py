"""The retention policy: one validated structure; bad policies are refused with the key and the fix."""

import copy

import pytest

from roles._model import SettingsError, parse
from roles._environment import group_data as load_group_data, host_settings as build
from roles.retention import RetentionPolicy, prometheus_flags
from roles.retention.selectors import Matcher, SelectorError, covers, may_overlap, parse_selector

pytestmark = pytest.mark.retention


def policy(**changes):
    """group_data/all.py's policy with `changes` applied, parsed like preflight does."""
    data = copy.deepcopy(load_group_data("all")["retention"])
    data.update(changes)
    return parse(RetentionPolicy, data, "retention")


def refused(**changes) -> SettingsError:
    with pytest.raises(SettingsError) as err:
        policy(**changes)
    return err.value


SECURITY = {"name": "security", "selector": '{stream="security"}', "period": "365d", "priority": 1}
AUDIT = {"name": "audit", "selector": '{stream="audit"}', "period": "365d", "priority": 1}


# --- the defaults ---------------------------------------------------------------------------


def test_the_defaults_pass():
    RetentionPolicy.model_validate(RetentionPolicy().model_dump())


def test_group_data_spells_out_the_defaults():
    """all.py holds the full policy, and it is the operators' one: 30d logs, 365d security and audit, 15d metrics."""
    p = policy()
    assert p == RetentionPolicy()
    assert p.default_period == "30d"
    assert {r.selector: r.period for r in p.streams} == {'{stream="security"}': "365d", '{stream="audit"}': "365d"}
    assert {m.name: m.at_least for m in p.minimums} == {
        "PIPEDA security logs": "365d",
        "PIPEDA audit logs": "365d",
        "PCI-DSS payment audit trails": "90d",
    }
    assert p.prometheus.time == "15d"


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "lab"])
def test_every_environment_has_the_one_policy(env):
    data = {"artifact_base_url": "https://github.com", **load_group_data("all"), **load_group_data(env)}
    s = build("mon1", ["monitoring", env], data)
    assert s.retention.streams == RetentionPolicy().streams
    assert s.retention.minimums == RetentionPolicy().minimums
    assert s.retention.default_period == "30d"
    assert s.retention.prometheus.time == "15d"
    assert s.retention.prometheus.size == ("50GB" if env == "prod" else "0")


# --- bad input: refused with the key and the fix ---------------------------------------------


@pytest.mark.parametrize(
    "changes, key, fix_word",
    [
        # malformed durations
        ({"default_period": "30 days"}, "retention.default_period", '"15d"'),
        ({"streams": [{**SECURITY, "period": "1 year"}, AUDIT]}, "retention.streams[0].period", '"15d"'),
        ({"prometheus": {"time": "15 days"}}, "retention.prometheus.time", '"15d"'),
        # periods under 24h (Loki's compactor refuses them)
        ({"default_period": "23h"}, "retention.default_period", "24h"),
        ({"streams": [SECURITY, AUDIT, {"name": "app", "selector": '{stream="app"}', "period": "12h"}]}, "retention.streams[2].period", "24h"),
        # selectors that do not parse
        ({"streams": [{**SECURITY, "selector": "{stream=security}"}, AUDIT]}, "retention.streams[0].selector", '{stream="security"}'),
        ({"streams": [SECURITY, {**AUDIT, "selector": 'stream="audit"'}]}, "retention.streams[1].selector", '{stream="security"}'),
        ({"streams": [{**SECURITY, "selector": '{stream=~"(audit"}'}, AUDIT]}, "retention.streams[0].selector", '{stream="security"}'),
        ({"minimums": [{"name": "x", "selector": "{}", "at_least": "90d"}]}, "retention.minimums[0].selector", '{stream="security"}'),
        # overlapping selectors with equal priority
        (
            {"streams": [SECURITY, AUDIT, {"name": "backend", "selector": '{service="sentinel-backend", stream=~"audit|security"}', "period": "400d"}]},
            "retention.streams[2].priority",
            "higher priority",
        ),
        # Prometheus
        ({"prometheus": {"time": "1h"}}, "retention.prometheus.time", "2h"),
        ({"prometheus": {"size": "lots"}}, "retention.prometheus.size", "50GB"),
        # misc
        ({"streams": [SECURITY, {**AUDIT, "name": "security"}]}, "retention.streams[1].name", "own name"),
        ({"minimums": [{"name": "PCI", "selector": '{stream="audit"}', "at_least": "3 months"}]}, "retention.minimums[0].at_least", '"15d"'),
        ({"streams": [{**SECURITY, "priority": "high"}]}, "retention.streams[0].priority", "int"),
        ({"stream": []}, "retention.stream", "streams"),
    ],
)
def test_bad_policy_names_key_and_fix(changes, key, fix_word):
    err = refused(**changes)
    assert err.key == key
    assert fix_word in err.fix


def test_a_selector_error_says_where():
    err = refused(streams=[{**SECURITY, "selector": '{stream="security", level=warn}'}, AUDIT])
    assert "found 'w' at column 27" in err.problem and "quoted string" in err.problem


def test_a_stream_rule_below_a_minimum_is_refused_with_the_rule_name():
    err = refused(streams=[AUDIT, {**SECURITY, "period": "30d"}])
    assert str(err).startswith("retention.streams[1].period: 30d is below the PIPEDA security logs minimum of 365d")
    assert "Fix: keep rule 'security' at 365d or more" in str(err)


def test_a_broad_rule_that_may_match_a_minimum_must_keep_it_whatever_its_priority():
    """{service=...} may match security lines: even at a higher priority, 30d there would break PIPEDA."""
    broad = {"name": "backend", "selector": '{service="sentinel-backend"}', "period": "30d", "priority": 5}
    err = refused(streams=[SECURITY, AUDIT, broad])
    assert err.key == "retention.streams[2].period"
    assert "PIPEDA security logs" in err.problem
    assert 'stream="app"' in err.fix


def test_the_default_period_must_satisfy_a_minimum_no_rule_covers():
    err = refused(streams=[AUDIT])  # security logs would fall to the 30d default
    assert err.key == "retention.default_period"
    assert "PIPEDA security logs minimum of 365d" in err.problem
    assert 'add a stream rule for {stream="security"}' in err.fix


def test_the_compliance_floors_live_in_code_and_can_only_be_raised():
    err = refused(
        minimums=[{"name": "PCI-DSS payment audit trails", "selector": '{stream="audit", category="payment"}', "at_least": "30d"}],
    )
    assert err.key == "retention.minimums[0]"
    assert "lowers the compliance floor 'PCI-DSS payment audit trails'" in err.problem
    # An empty list deletes nothing: the floors in code still hold the rules to 365d.
    err = refused(minimums=[], streams=[SECURITY, {**AUDIT, "period": "60d"}])
    assert err.key == "retention.streams[1].period" and "PIPEDA audit logs minimum of 365d" in err.problem
    # Raising a floor is allowed.
    policy(minimums=[{"name": "PCI-DSS payment audit trails", "selector": '{stream="audit", category="payment"}', "at_least": "365d"}])


def test_a_payment_rule_below_its_minimum_is_refused_even_with_audit_kept_longer():
    payment = {"name": "payment", "selector": '{stream="audit", category="payment"}', "period": "60d", "priority": 2}
    err = refused(streams=[SECURITY, AUDIT, payment])
    assert err.key == "retention.streams[2].period"
    assert "PIPEDA audit logs" in err.problem  # {stream="audit", category=...} is audit too: 365d first


# --- good policies that must pass --------------------------------------------------------------


def test_overlapping_rules_with_different_priorities_pass():
    backend = {"name": "backend", "selector": '{service="sentinel-backend", stream=~"audit|security"}', "period": "400d", "priority": 2}
    assert policy(streams=[SECURITY, AUDIT, backend]).streams[2].priority == 2


def test_rules_proven_disjoint_may_share_a_priority():
    app = {"name": "app", "selector": '{stream=~"app|debug"}', "period": "14d"}
    p = policy(streams=[SECURITY, AUDIT, app])
    assert p.streams[2].period == "14d"  # shorter app logs: no minimum applies to them


def test_a_minimum_no_rule_covers_is_met_by_a_long_enough_default():
    p = policy(streams=[], default_period="400d")
    assert p.default_period == "400d"


def test_a_longer_policy_passes():
    p = policy(default_period="90d", streams=[{**SECURITY, "period": "2y"}, {**AUDIT, "period": "730d"}])
    assert p.streams[0].period == "2y"


def test_settings_errors_name_the_host():
    with pytest.raises(SettingsError) as err:
        build("mon1", ["monitoring", "prod"], {"artifact_base_url": "https://github.com", "retention": {"default_period": "30 days"}})
    assert err.value.key == "host mon1.retention.default_period"


# --- the selector parser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, matchers",
    [
        ('{stream="security"}', [("stream", "=", "security")]),
        (
            '{service="sentinel-backend", stream=~"audit|security"}',
            [("service", "=", "sentinel-backend"), ("stream", "=~", "audit|security")],
        ),
        ('  {  stream != "app" ,env="prod"}  ', [("stream", "!=", "app"), ("env", "=", "prod")]),
        ('{route!~"/admin/.*", _x9="y"}', [("route", "!~", "/admin/.*"), ("_x9", "=", "y")]),
        (r'{msg="say \"hi\"\t\\ \x41\101\u00e9\U0001F600"}', [("msg", "=", 'say "hi"\t\\ AAé😀')]),
        (r'{code=~"5\\d\\d"}', [("code", "=~", r"5\d\d")]),
        (r"{code=~`5\d\d`}", [("code", "=~", r"5\d\d")]),
        ('{category="", stream="audit"}', [("category", "=", ""), ("stream", "=", "audit")]),
    ],
)
def test_parser_reads_good_selectors(text, matchers):
    selector = parse_selector(text)
    assert [(m.name, m.op, m.value) for m in selector.matchers] == matchers
    assert parse_selector(str(selector)) == selector  # the canonical text reads back the same


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "expected '{'"),
        ('stream="audit"', "expected '{'"),
        ("{}", "empty selector"),
        ('{stream="audit"', "expected '}'"),
        ('{stream="audit",}', "expected a label name"),
        ('{stream="audit" env="prod"}', "expected '}'"),
        ('{stream="audit"} | json', "after the closing brace"),
        ('{9stream="audit"}', "expected a label name"),
        ('{stream-name="audit"}', "expected one of = != =~ !~"),
        ('{stream=="audit"}', "expected a quoted string"),
        ("{stream='audit'}", "expected a quoted string"),
        ("{stream=audit}", "expected a quoted string"),
        ('{stream="audit}', "unterminated"),
        ("{stream=`audit}", "unterminated"),
        ('{stream="a\nb"}', "newline"),
        (r'{stream="\d"}', "unknown escape \\d"),
        (r'{stream="\x4"}', "2 hex digits"),
        (r'{stream="\400"}', "octal escape"),
        (r'{stream="\ud800"}', "not a valid Unicode code point"),
        ('{stream=~"audit|("}', "does not compile"),
        ('{stream=~"(?=audit)a"}', "invalid perl operator: (?="),  # RE2 has no lookahead
        (r'{stream=~"(a)\\1"}', "invalid escape sequence: \\1"),  # ... nor backreferences
        ('{stream=~"a++"}', "bad repetition operator: ++"),  # ... nor possessive repeats
        ('{stream=~".*"}', "matches the empty string"),
        ('{stream!="app"}', "matches the empty string"),
        ('{stream=""}', "matches the empty string"),
        (None, "expected a string"),
    ],
)
def test_parser_refuses_bad_selectors(text, problem):
    with pytest.raises(SelectorError) as err:
        parse_selector(text)
    assert problem in str(err.value)


def test_regexes_are_fully_anchored_and_dot_matches_newlines_as_in_loki():
    m = parse_selector('{stream=~"aud"}').matchers[0]
    assert not m.matches("audit")  # Loki anchors: aud does not match audit
    assert parse_selector('{msg=~"a.b"}').matchers[0].matches("a\nb")
    assert Matcher("x", "!~", "a|b").matches("c")


S = parse_selector


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        ('{stream="audit"}', '{stream="security"}', False),  # equality on one label, different values
        ('{stream="audit"}', '{stream="audit"}', True),
        ('{stream="audit"}', '{stream="audit", category="payment"}', True),
        ('{stream="audit"}', '{service="sentinel-backend"}', True),  # different labels: a stream may have both
        ('{stream="audit"}', '{stream!="audit", env="prod"}', False),
        ('{stream="audit"}', '{stream=~"app|security"}', False),
        ('{stream="security"}', '{service="sentinel-backend", stream=~"audit|security"}', True),
        ('{stream="audit"}', '{stream!~"a.*", env="prod"}', False),
        ('{stream=~"a.*"}', '{stream=~"s.*"}', True),  # two regexes are never proven disjoint
        ('{stream!="audit", env="prod"}', '{stream!="security", env="prod"}', True),
        ('{category="", stream="audit"}', '{category="payment"}', False),  # "" is the label's absence
    ],
)
def test_overlap_is_decided_conservatively(a, b, overlap):
    assert may_overlap(S(a), S(b)) is overlap
    assert may_overlap(S(b), S(a)) is overlap


@pytest.mark.parametrize(
    "general, specific, covered",
    [
        ('{stream="audit"}', '{stream="audit", category="payment"}', True),
        ('{stream="audit", category="payment"}', '{stream="audit"}', False),
        ('{stream=~"audit|security"}', '{stream="security"}', True),
        ('{stream=~"audit|security"}', '{stream=~"audit"}', False),  # regex vs regex: not proven
        ('{stream=~"a.*"}', '{stream=~"a.*", env="prod"}', True),  # the same matcher
        ('{stream!="app", env="prod"}', '{stream="audit", env="prod"}', True),
        ('{service="sentinel-backend"}', '{stream="security"}', False),
    ],
)
def test_covers_only_when_certain(general, specific, covered):
    assert covers(S(general), S(specific)) is covered


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_flags_default_has_no_size_limit():
    assert prometheus_flags(RetentionPolicy()) == {"storage.tsdb.retention.time": "15d"}


def test_prometheus_flags_with_a_size_limit():
    p = policy(prometheus={"time": "30d", "size": "50GB"})
    assert prometheus_flags(p) == {"storage.tsdb.retention.time": "30d", "storage.tsdb.retention.size": "50GB"}


def test_prometheus_unit_carries_the_policy():
    from roles.prometheus import service_spec

    s = build("mon1", ["monitoring", "prod"], {"artifact_base_url": "https://github.com", **load_group_data("all"), **load_group_data("prod")})
    args = service_spec(s, "config").exec_start
    assert "--storage.tsdb.retention.time=15d" in args
    assert "--storage.tsdb.retention.size=50GB" in args


def test_regexes_have_re2_semantics():
    """RE2 itself (google-re2), not an approximation: POSIX classes and \\pL work, `.` matches a newline."""
    assert parse_selector('{stream=~"[[:alpha:]]+"}').matchers[0].matches("audit")
    assert parse_selector(r'{stream=~"\\pL+"}').matchers[0].matches("sécurité")
    assert parse_selector('{stream=~"a.b"}').matchers[0].matches("a\nb")
    assert not parse_selector('{stream=~"audit"}').matchers[0].matches("audit-2")  # fully anchored
