"""VictoriaLogs role: flags from the policy, the enforcement job's deletes, the unit."""

from __future__ import annotations

import subprocess

import pytest

from roles.retention import RetentionPolicy, StreamRule
from roles.retention.logsql import classes, enforcement_deletes, logsql_duration, longest_period, stream_filter
from roles.victorialogs import check_flags_command, enforcement_script, enforcement_units, flags, flags_env, service_spec
from roles.victorialogs.settings import VictoriaLogsSettings
from roles._model import SettingsError, parse
from roles._service.quoting import QuotingError, parse_env_file

pytestmark = pytest.mark.retention

POLICY = RetentionPolicy()  # the operators' policy: default 30d, security and audit 365d


def test_the_instance_keeps_the_longest_class_and_deletes_the_default_class_daily():
    assert longest_period(POLICY) == "365d"
    assert flags(VictoriaLogsSettings(), POLICY)["retentionPeriod"] == "365d"
    [app] = enforcement_deletes(POLICY)
    assert app.name == "default" and app.period == "30d"
    # The app stream is what no rule matches: everything but security and audit.
    assert app.expired() == 'NOT {stream="security"} NOT {stream="audit"} _time:>30d'


def test_a_rule_loses_the_streams_a_higher_priority_rule_takes():
    policy = RetentionPolicy(
        default_period="30d",
        streams=(
            StreamRule(name="backend", selector='{service="sentinel-backend", stream="app"}', period="90d", priority=1),
            StreamRule(name="security", selector='{stream="security"}', period="365d", priority=2),
            StreamRule(name="audit", selector='{stream="audit"}', period="365d", priority=2),
        ),
    )
    policy = RetentionPolicy.model_validate(policy.model_dump())  # the model validators, as preflight runs them
    by_name = {c.name: c for c in classes(policy)}
    assert by_name["backend"].streams == '{service="sentinel-backend", stream="app"} NOT {stream="security"} NOT {stream="audit"}'
    assert [c.name for c in enforcement_deletes(policy)] == ["backend", "default"]
    assert by_name["backend"].expired().endswith("_time:>90d")


def test_durations_are_written_in_days_or_hours_never_minutes_which_vl_reads_as_months():
    assert logsql_duration("1y") == "365d"
    assert logsql_duration("2w") == "14d"
    assert logsql_duration("36h") == "36h"
    assert logsql_duration("1d12h30m") == "37h"  # rounded up: never keep less than asked


def test_stream_filters_are_the_canonical_selector():
    assert stream_filter('{ stream = "audit" ,service=~`sentinel-.*` }') == '{stream="audit", service=~"sentinel-.*"}'


def test_flags_env_and_the_check_command():
    env = flags_env(VictoriaLogsSettings(), POLICY, "10.0.0.5:9428")
    assert "VL_httpListenAddr=10.0.0.5:9428\n" in env
    assert "VL_retentionPeriod=365d\n" in env
    assert "VL_delete_enable=true\n" in env
    assert "VL_storageDataPath=/var/lib/victorialogs/data\n" in env
    assert "retention_maxDisk" not in env  # would drop security lines by age of partition
    assert "VL_inmemoryDataFlushInterval=1s\n" in env  # its minimum: the least it loses on a crash
    # systemd reads the file; the check passes its lines to `env` as words: both must see the same values.
    assert parse_env_file(env) == dict(line.split("=", 1) for line in env.splitlines() if not line.startswith("#"))
    cmd = check_flags_command()
    assert "-envflag.enable" in cmd and "-version" in cmd and "{bin}/victoria-logs-prod" in cmd
    assert "'{path}'" not in cmd and '"{path}"' not in cmd  # the building block quotes {path} itself


def test_a_flag_value_that_would_need_quoting_is_refused():
    with pytest.raises(QuotingError):
        # model_construct: a value that got past the settings model (the second wall must still hold)
        flags_env(VictoriaLogsSettings.model_construct(**{**VictoriaLogsSettings().model_dump(), "storage_path": "/var/lib/vl data"}), POLICY)


def test_service_spec_validates_the_flags_file_and_waits_for_health():
    spec = service_spec(VictoriaLogsSettings(port=9500), POLICY, "10.0.0.5:9500")
    assert spec.name == "victorialogs" and spec.ready_url == "http://10.0.0.5:9500/health"
    assert "VL_httpListenAddr=10.0.0.5:9500\n" in spec.configs[0].content
    [config] = spec.configs
    assert config.dest == "/etc/victorialogs/flags.env" and config.validate and config.mode == "0640"
    assert spec.env_files == ("/etc/victorialogs/flags.env",)
    assert "/var/lib/victorialogs/data" in spec.data_dirs


def test_enforcement_script_is_valid_sh_and_quotes_the_filter():
    script = enforcement_script(VictoriaLogsSettings(), POLICY)
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "delete_class default 'NOT {stream=\"security\"} NOT {stream=\"audit\"} _time:>30d' 30d" in script
    assert "/delete/run_task" in script and "/delete/active_tasks" in script
    service, timer = enforcement_units(VictoriaLogsSettings())
    assert "Type=oneshot" in service and "User=victorialogs" in service
    assert "OnCalendar=*-*-* 03:17:00" in timer and "Persistent=true" in timer


def test_no_shorter_class_means_no_delete():
    policy = RetentionPolicy(default_period="365d")
    assert enforcement_deletes(policy) == []
    assert "nothing to delete" in enforcement_script(VictoriaLogsSettings(), policy)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"listen": "0.0.0.0:9428"}, "victorialogs.listen"),  # moved: the address is the topology's
        ({"port": "9428"}, "victorialogs.port"),
        ({"storage_path": "var/lib/vl"}, "victorialogs.storage_path"),
        ({"enforcement_timeout_seconds": 0}, "victorialogs.enforcement_timeout_seconds"),
        ({"retention_period": "30d"}, "victorialogs.retention_period"),  # comes from the policy, not here
    ],
)
def test_bad_settings_are_refused(data, key):
    with pytest.raises(SettingsError) as err:
        parse(VictoriaLogsSettings, data, "victorialogs")
    assert err.value.key == key


def test_the_unit_allows_mincore_which_victorialogs_panics_without():
    from roles._service import unit_file
    from roles.victorialogs import service_spec
    from roles.victorialogs.settings import VictoriaLogsSettings

    unit = unit_file(service_spec(VictoriaLogsSettings(), RetentionPolicy()))
    assert "SystemCallFilter=@system-service\nSystemCallFilter=mincore\n" in unit
    assert "SystemCallFilter=mincore" not in unit_file(service_spec(VictoriaLogsSettings(), RetentionPolicy()), hardening=False)
