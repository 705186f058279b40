"""Bad inventory data is refused with the key and the fix, before any host is contacted."""

import subprocess
import sys

import pytest

from roles._environment import host_settings as build
from roles._model import SettingsError, duration_seconds
from tests.environments import offline, GOOD_SECRETS, environment

BASE = {"artifact_base_url": "https://github.com"}


def settings(data=None, groups=("monitoring", "prod")):
    return build("h1", list(groups), {**BASE, **(data or {})})


def test_defaults_are_the_operators_baseline():
    s = settings()
    assert s.retention.prometheus.time == "15d"
    assert s.retention.default_period == "30d"
    assert s.prometheus.remote_write_receiver is True
    assert s.environment == "prod"
    assert s.address == "h1"


@pytest.mark.parametrize(
    "data, key, fix_word",
    [
        ({"prometheus": {"scrape_intervall": "15s"}}, "prometheus.scrape_intervall", "did you mean 'scrape_interval'?"),
        ({"prometheus": {"retension_time": "15d"}}, "prometheus.retension_time", "retention.prometheus.time"),
        ({"prometheus": {"retention_time": "15d"}}, "prometheus.retention_time", "retention.prometheus.time"),
        ({"prometheus": {"retention_size": "50GB"}}, "prometheus.retention_size", "retention.prometheus.size"),
        ({"prometeus": {}}, "prometeus", "prometheus"),
        ({"retention": {"prometheus": {"time": "30 days"}}}, "retention.prometheus.time", "15d"),
        ({"retention": {"prometheus": {"time": "1h"}}}, "retention.prometheus.time", "2h"),
        ({"prometheus": {"listen_port": 70000}}, "prometheus.listen_port", "65535"),
        ({"prometheus": {"listen_port": "9090"}}, "prometheus.listen_port", "int"),
        ({"retention": {"prometheus": {"size": "lots"}}}, "retention.prometheus.size", "50GB"),
        ({"retention": {"default_period": "12h"}}, "retention.default_period", "24h"),
        ({"artifact_base_url": "github.com"}, "artifact_base_url", "URL"),
        ({"backend": {"trace_sample_ratio": 1.5}}, "backend.trace_sample_ratio", "fraction"),
        ({"backend": {"trace_sampler": "sometimes"}}, "backend.trace_sampler", "parentbased_traceidratio"),
        ({"backend": {"otlp_endpoint": "tel1:4318"}}, "backend.otlp_endpoint", "URL"),
        ({"object_store": {"buckets": ["Loki_Chunks"]}}, "object_store.buckets[0]", "lowercase"),
    ],
)
def test_bad_data_names_key_and_fix(data, key, fix_word):
    with pytest.raises(SettingsError) as err:
        settings(data)
    assert err.value.key == f"host h1.{key}"
    assert fix_word in err.value.fix


def test_unknown_group_is_refused():
    with pytest.raises(SettingsError, match="unknown group 'monitor'"):
        settings(groups=("monitor", "prod"))


def test_host_must_be_in_exactly_one_environment():
    with pytest.raises(SettingsError, match="exactly one"):
        settings(groups=("monitoring",))


def test_durations():
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("15d") == 15 * 86400


def test_inventory_merges_group_data_by_pyinfra(tmp_path):
    env = environment(
        tmp_path,
        "prod",
        """
        monitoring = [("m1", {"retention": {"prometheus": {"time": "30d"}}})]
        telemetry = ["t1"]
        app = (["a1"], {"object_store": {"listen_port": 7171}})
        """,
    )
    hosts = {h.name: h.settings for h in env.hosts}
    assert hosts["m1"].retention.prometheus.time == "30d"  # host data wins
    assert hosts["m1"].retention.prometheus.size == "0"  # ... wholesale: prod.py's retention dict is replaced
    assert hosts["t1"].retention.prometheus.size == "50GB"  # group_data/prod.py
    assert hosts["t1"].retention.streams == hosts["m1"].retention.streams  # prod.py derives from all.py
    assert hosts["a1"].object_store.listen_port == 7171  # group tuple data
    assert hosts["a1"].object_store.buckets == ("loki", "tempo")  # model default: all.py's dict was replaced
    assert [h.name for h in env.group("app")] == ["a1"]


def test_a_key_set_by_two_groups_is_refused(tmp_path):
    """pyinfra would silently let one group's dict replace the other's; the check asks pyinfra's inventory."""
    with pytest.raises(SettingsError, match="set by both the 'app' and 'prod' groups"):
        environment(tmp_path, "prod", 'monitoring = ["m1"]\ntelemetry = ["t1"]\napp = (["a1"], {"backend": {"port": 4000}})\n')


def test_inventory_with_unknown_group_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="loggers"):
        environment(tmp_path, "prod", 'monitoring = ["m1"]\nloggers = ["l1"]\n')


def test_pyinfra_stops_before_connecting_on_bad_data(tmp_path):
    """The real CLI on an inventory with a typo exits 2 and names the key; the host does not exist."""
    inv = tmp_path / "prod.py"
    inv.write_text(
        "from roles.preflight import check_inventory\n"
        'monitoring = [("192.0.2.1", {"prometheus": {"retention_tme": "15d"}})]\n'
        'telemetry = ["192.0.2.1"]\napp = ["192.0.2.1"]\n'
        "check_inventory(globals())\n"
    )
    result = subprocess.run(
        offline([sys.executable, "-m", "pyinfra", "-y", str(inv), "deploy.py"]),
        capture_output=True,
        text=True,
        cwd=str(__import__("roles").__path__[0] + "/.."),
        env={"PATH": "/usr/bin:/bin", "SENTINEL_S3_ACCESS_KEY": "x", "SENTINEL_S3_SECRET_KEY": "y"},
        timeout=120,
    )
    assert result.returncode != 0
    assert "prometheus.retention_tme" in result.stderr
    assert "did you mean 'retention_time'? It moved: set retention.prometheus.time" in result.stderr
    assert "Connecting" not in result.stdout + result.stderr
    assert "Connecting" not in result.stdout + result.stderr


def test_prod_without_store_credentials_is_refused(monkeypatch, tmp_path):
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SENTINEL_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("SENTINEL_SECRETS_DIR", raising=False)
    from roles.preflight import check_environment

    with pytest.raises(SettingsError, match="SENTINEL_S3_ACCESS_KEY"):
        check_environment(environment(tmp_path, "prod"))


def test_secret_files_are_read(monkeypatch, tmp_path):
    from roles._secrets import read_secret

    monkeypatch.delenv("SOME_TOKEN", raising=False)
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path))
    (tmp_path / "SOME_TOKEN").write_text("s3cret\n")
    assert read_secret("SOME_TOKEN") == "s3cret"


# --- tls (roles/_tls_settings.py) ---------------------------------------------------------


def test_tls_defaults_are_issue_22s():
    tls = settings().tls
    assert (tls.enabled, tls.lifetime_days, tls.renew_within_days) == (True, 30, 10)
    from roles._pki import LIFETIME, RENEW_BEFORE

    assert (tls.lifetime, tls.renew_before) == (LIFETIME, RENEW_BEFORE)


@pytest.mark.parametrize(
    "tls, key, fix_word",
    [
        ({"lifetime_days": 0}, "tls.lifetime_days", "1 or more"),
        ({"lifetime_days": -5}, "tls.lifetime_days", "1 or more"),
        ({"lifetime_days": 398}, "tls.lifetime_days", "397 or less"),
        ({"lifetime_days": 3650}, "tls.lifetime_days", "397 or less"),
        ({"lifetime_days": "30"}, "tls.lifetime_days", "int"),
        ({"lifetime_days": 30.5}, "tls.lifetime_days", "int"),
        ({"renew_within_days": 0}, "tls.renew_within_days", "1 or more"),
        ({"renew_within_days": 30}, "tls.renew_within_days", "below tls.lifetime_days"),
        ({"renew_within_days": 45}, "tls.renew_within_days", "below tls.lifetime_days"),
        ({"lifetime_days": 7, "renew_within_days": 10}, "tls.renew_within_days", "e.g. 2"),
        ({"lifetime_days": 1, "renew_within_days": 1}, "tls.renew_within_days", "tls.lifetime_days to 2 or more"),
        ({"lifetime": 30}, "tls.lifetime", "did you mean 'lifetime_days'?"),
        ({"extra_names": ["grafana.example.org"]}, "tls.extra_names", "known keys"),
        ({"enabled": "no"}, "tls.enabled", "bool"),
    ],
)
def test_bad_tls_settings_name_key_and_fix(tls, key, fix_word):
    with pytest.raises(SettingsError) as err:
        settings({"tls": tls})
    assert err.value.key == f"host h1.{key}", str(err.value)
    assert fix_word in err.value.fix, str(err.value)


def test_tls_lifetimes_inside_the_bounds_are_accepted():
    for lifetime, window in ((1 + 1, 1), (7, 2), (90, 30), (397, 396)):
        tls = settings({"tls": {"lifetime_days": lifetime, "renew_within_days": window}}).tls
        assert (tls.lifetime.days, tls.renew_before.days) == (lifetime, window)


@pytest.mark.parametrize("environment", ["prod", "staging", "dev", "lab"])
def test_tls_cannot_be_turned_off(environment):
    """No plain-text mode: refused everywhere; in prod and staging the message says what would leak."""
    with pytest.raises(SettingsError) as err:
        settings({"tls": {"enabled": False}}, groups=("monitoring", environment))
    assert err.value.key == "host h1.tls.enabled"
    assert "remove tls.enabled" in err.value.fix
    if environment in ("prod", "staging"):
        assert "in clear" in err.value.problem
    else:
        assert "plain-text mode is not supported" in err.value.problem
