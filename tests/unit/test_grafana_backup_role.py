"""The grafana_backup role's pure parts: settings, preflight, config, cron command, lab wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roles._environment import EnvHost, Environment
from roles._environment import group_data as load_group_data, host_settings as build
from roles._model import SettingsError
from roles._secrets import SecretProblem, needs, read_secret, resolve_secrets
from roles.grafana_backup import (
    CONFIG, DEPLOY_KEY, FIXED_ENV, PINNED_KNOWN_HOSTS, PROGRAM, PYTHON, job_command, job_config, known_hosts_content,
    render_config, secret_file, venv_build_command,
)
from roles.grafana_backup.settings import GrafanaBackupSettings
from tests.environments import GOOD_SECRETS
from tests.unit.grafana_backup_fixtures import load_job

KEY_LINE = "git.sentinel.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
PROD = {"enabled": True, "remote_url": "git@git.sentinel.internal:ops/grafana-backup.git", "known_hosts": [KEY_LINE]}


def lab_settings():
    return build("mon1", ["monitoring", "lab"], {**load_group_data("all"), **load_group_data("lab")})


def prod_settings(backup: dict):
    return build("mon1", ["monitoring", "prod"], {**load_group_data("all"), **load_group_data("prod"), "grafana_backup": backup})


def test_defaults_are_off_daily_and_strict():
    s = GrafanaBackupSettings()
    assert not s.enabled and not s.trust_on_first_use
    assert (s.schedule.minute, s.schedule.hour, s.schedule.day_of_month, s.schedule.day_of_week) == ("17", "3", "*", "*")
    assert s.token_file == "/etc/grafana-backup/token"  # agreed with the Grafana role (issue 13)


@pytest.mark.parametrize(
    "backup, key, fix",
    [
        ({"enabled": True}, "grafana_backup", "remote_url"),
        ({**PROD, "known_hosts": []}, "grafana_backup", "ssh-keyscan"),
        ({**PROD, "remote_url": "https://github.com/x/y.git"}, "grafana_backup.remote_url", "SSH"),
        ({**PROD, "known_hosts": ["not a key"]}, "grafana_backup.known_hosts[0]", "ssh-keyscan"),
        ({**PROD, "known_hosts": [KEY_LINE + " comment\n@cert-authority * ssh-ed25519 AAAA"]}, "grafana_backup.known_hosts[0]", "ssh-keyscan"),
        ({**PROD, "schedule": {"hour": "3am"}}, "grafana_backup.schedule.hour", "cron field"),
        ({**PROD, "schedul": {}}, "grafana_backup.schedul", "schedule"),
        ({**PROD, "token_file": "etc/token"}, "grafana_backup.token_file", "/etc/grafana-backup/token"),
        ({**PROD, "token_file": "/etc/ssh/token"}, "grafana_backup.token_file", "/etc/grafana-backup/token"),  # would take over /etc/ssh
        ({**PROD, "deploy_key_secret": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "grafana_backup.deploy_key_secret", "never paste"),
    ],
)
def test_bad_settings_are_refused_with_key_and_fix(backup, key, fix):
    with pytest.raises(SettingsError) as err:
        prod_settings(backup)
    assert err.value.key == f"host mon1.{key}"
    assert fix in str(err.value)


def test_trust_on_first_use_is_refused_outside_the_lab():
    with pytest.raises(SettingsError) as err:
        prod_settings({**PROD, "known_hosts": [], "trust_on_first_use": True})
    assert err.value.key == "host mon1.grafana_backup.trust_on_first_use" and "known_hosts" in err.value.fix
    assert lab_settings().grafana_backup.trust_on_first_use  # allowed in the lab


def _monitoring_only(settings) -> Environment:
    return Environment(name=settings.environment, hosts=(EnvHost(name="mon1", groups=("monitoring", settings.environment), settings=settings),))


def backup_needs(settings):
    return [n for n in needs(_monitoring_only(settings)) if ".grafana_backup." in n.key]


@pytest.fixture
def ssh_key(tmp_path):
    """A real OpenSSH private key file (ed25519, no passphrase), as ssh-keygen writes it."""
    import subprocess

    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture
def no_secrets(monkeypatch, tmp_path):
    for name in ("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "SENTINEL_GRAFANA_BACKUP_TOKEN", "SOME_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in GOOD_SECRETS.items():  # the monitoring host's other secrets (alert receivers)
        monkeypatch.setenv(name, value)
    (tmp_path / "secrets").mkdir()
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path / "secrets"


def test_the_backup_needs_its_deploy_key_only_when_enabled_and_its_token_only_with_write_token():
    assert backup_needs(prod_settings({})) == []  # off: nothing needed
    (key,) = backup_needs(prod_settings(PROD))  # the Grafana role writes the token
    assert (key.name, key.kind, key.required, key.key) == (
        "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "ssh_private_key", True, "host mon1.grafana_backup.deploy_key_secret"
    )
    assert {(n.name, n.kind, n.required) for n in backup_needs(lab_settings())} == {
        ("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "ssh_private_key", True),
        ("SENTINEL_GRAFANA_BACKUP_TOKEN", "grafana_token", True),
    }


def test_enabled_backup_without_its_deploy_key_is_refused(no_secrets):
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_only(prod_settings(PROD)))
    assert err.value.key == "host mon1.grafana_backup.deploy_key_secret"
    assert "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY" in err.value.problem and "export SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY" in err.value.fix


def test_a_deploy_key_file_with_its_newlines_is_accepted_from_file_and_environment(no_secrets, monkeypatch, ssh_key):
    text = ssh_key.read_text()
    assert text.count("\n") > 3  # a real key spans lines
    (no_secrets / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY").write_text(text)
    secrets = resolve_secrets(_monitoring_only(prod_settings(PROD)))
    assert secret_file(secrets, "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY") == text
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", text.rstrip("\n"))  # as "$(cat key)" gives it
    secrets = resolve_secrets(_monitoring_only(prod_settings(PROD)))
    assert secret_file(secrets, "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY") == text


def _encrypted_key(tmp_path):
    import subprocess

    path = tmp_path / "id_encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)], check=True)
    return path.read_text()


@pytest.mark.parametrize(
    "mangle, problem",
    [
        (lambda key, tmp: "not a key at all", "first and last lines"),
        (lambda key, tmp: key.replace("OPENSSH PRIVATE KEY", "RSA PRIVATE KEY"), "first and last lines"),
        (lambda key, tmp: key.replace("\n", "\n$(reboot)\n", 1), "base64"),
        (lambda key, tmp: key.replace("\n", "\tx\n", 1), "control character other than a newline"),
        (lambda key, tmp: "-----BEGIN OPENSSH PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END OPENSSH PRIVATE KEY-----\n", "openssh-key-v1"),
        (lambda key, tmp: _encrypted_key(tmp), "passphrase"),
    ],
    ids=["garbage", "pem-rsa", "shell-line", "tab", "not-openssh", "encrypted"],
)
def test_a_deploy_key_of_the_wrong_shape_is_refused_without_echo(no_secrets, ssh_key, tmp_path, mangle, problem):
    value = mangle(ssh_key.read_text(), tmp_path)
    (no_secrets / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY").write_text(value)
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_only(prod_settings(PROD)))
    assert err.value.key == "host mon1.grafana_backup.deploy_key_secret"
    assert problem in str(err.value)
    for line in value.splitlines():
        if len(line) > 8 and "OPENSSH" not in line:
            assert line not in str(err.value)


def test_a_deploy_key_with_carriage_returns_in_the_environment_is_refused(no_secrets, monkeypatch, ssh_key):
    # (A file is read as text, so its CRLF line ends become LF, which ssh accepts.)
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", ssh_key.read_text().replace("\n", "\r\n"))
    with pytest.raises(SettingsError, match="control character other than a newline"):
        resolve_secrets(_monitoring_only(prod_settings(PROD)))


def test_newlines_stay_refused_for_every_other_secret(no_secrets, monkeypatch, ssh_key):
    """The key's exception is by kind: the same key text under the token's name is refused."""
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_TOKEN", ssh_key.read_text())
    with pytest.raises(SecretProblem, match="newline"):
        read_secret("SENTINEL_GRAFANA_BACKUP_TOKEN")
    (no_secrets / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY").write_text(ssh_key.read_text())
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_only(lab_settings()))
    assert err.value.key == "host mon1.grafana_backup.token_secret" and "newline" in err.value.problem


def test_a_token_that_is_not_one_word_is_refused(no_secrets, monkeypatch, ssh_key):
    (no_secrets / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY").write_text(ssh_key.read_text())
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_TOKEN", "TODO paste it")
    with pytest.raises(SettingsError) as err:
        resolve_secrets(_monitoring_only(lab_settings()))
    assert err.value.key == "host mon1.grafana_backup.token_secret" and "service-account token" in err.value.problem
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_TOKEN", "glsa_" + "0" * 32 + "_abcdef01")
    assert {"SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "SENTINEL_GRAFANA_BACKUP_TOKEN"} <= set(resolve_secrets(_monitoring_only(lab_settings())))


def test_config_matches_the_jobs_config_fields():
    job = load_job()
    settings = prod_settings(PROD)
    config = json.loads(render_config(settings.grafana_backup, settings.node_exporter.textfile_dir))
    assert set(config) == set(job.Config.__dataclass_fields__)
    loaded = job.Config(**config)
    assert loaded.strict_host_key_checking == "yes" and loaded.known_hosts_file == PINNED_KNOWN_HOSTS
    assert loaded.ssh_key_file == DEPLOY_KEY
    assert loaded.textfile_path == "/var/lib/node_exporter/textfile/sentinel_grafana_backup.prom"
    assert known_hosts_content(settings.grafana_backup) == KEY_LINE + "\n"


def test_lab_reads_the_standin_and_pushes_to_tel1_trusting_on_first_use():
    backup = lab_settings().grafana_backup
    config = job_config(backup, "/var/lib/node_exporter/textfile")
    assert backup.enabled and config["grafana_url"] == "http://10.213.0.1:9110"
    assert config["remote_url"] == "git@10.213.0.12:/srv/git/grafana-backup.git"
    assert config["strict_host_key_checking"] == "accept-new" and backup.write_token


def test_prod_staging_dev_leave_the_backup_off_until_grafana_exists():
    for env in ("dev", "staging", "prod"):
        s = build("mon1", ["monitoring", env], {**load_group_data("all"), **load_group_data(env)})
        assert not s.grafana_backup.enabled


def test_cron_command_has_a_fixed_environment_and_keeps_the_exit_code():
    command = job_command()
    assert command.startswith("systemd-cat -t sentinel-grafana-backup env -i ")
    for assignment in FIXED_ENV:
        assert assignment in command
    assert command.endswith(f"{PYTHON} {PROGRAM} --config {CONFIG} backup")
    assert "%" not in command  # cron would turn it into a newline
    assert "|" not in command  # a pipe would hide the job's exit code from cron and the tests


def test_venv_comes_from_the_mirror_only_in_the_lab():
    lab = venv_build_command(lab_settings().grafana_backup, "http://10.213.0.1:8080")
    assert "--no-index --find-links http://10.213.0.1:8080/wheels/" in lab
    prod = venv_build_command(prod_settings(PROD).grafana_backup, "https://github.com")
    assert "--no-index" not in prod and "-r {path}" in prod


def test_requirements_pin_grafana_client_exactly():
    from pathlib import Path

    lines = [l for l in (Path(__file__).resolve().parents[2] / "files/grafana_backup/requirements.txt").read_text().splitlines()
             if l and not l.startswith("#")]
    assert "grafana-client==5.1.4" in lines and all("==" in l for l in lines)


def test_catalog_alert_reads_the_metric_the_job_writes():
    from roles.alerting.catalog import load_catalog

    job = load_job()
    alert = {a.uid: a for a in load_catalog()}["grafana-backup-stale"]
    metric = job.metrics_text(1.0, {"dashboards": 1}).splitlines()[2].split()[0]
    assert metric == "sentinel_grafana_backup_last_success_timestamp_seconds"
    assert metric + "{" in alert.expr


def test_the_token_expiry_alert_reads_the_metric_the_job_writes_beside_the_others():
    from roles.alerting.catalog import load_catalog

    job = load_job()
    alert = {a.uid: a for a in load_catalog()}["grafana-backup-token-expiring"]
    assert job.TOKEN_EXPIRY_METRIC + "{" in alert.expr and "14 * 86400" in alert.expr
    assert job.token_metric_text(1.0).splitlines()[2] == f"{job.TOKEN_EXPIRY_METRIC} 1"
    assert job.TOKEN_WARN_SECONDS == 14 * 86400


def test_the_job_verifies_grafanas_https_with_the_environment_ca_and_reads_the_tokens_expiry():
    from roles.grafana_backup import CA_FILE

    settings = prod_settings(PROD)
    config = json.loads(render_config(settings.grafana_backup, settings.node_exporter.textfile_dir, "https://10.0.0.11:3000"))
    assert config["ca_file"] == CA_FILE == "/etc/grafana-backup/ca.crt"
    assert config["token_expiry_file"] == "/etc/grafana-backup/token.expires"
    assert config["grafana_url"] == "https://10.0.0.11:3000"


def test_an_operators_token_needs_its_expiry_and_the_role_writes_it_as_a_unix_time():
    import datetime as dt

    from roles.grafana_backup import token_expiry_seconds

    with pytest.raises(Exception) as err:
        GrafanaBackupSettings(**{**PROD, "write_token": True})
    assert "token_expires" in str(err.value)
    settings = GrafanaBackupSettings(**{**PROD, "write_token": True, "token_expires": "2027-03-01"})
    assert token_expiry_seconds(settings.token_expires) == int(dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc).timestamp())
    assert lab_settings().grafana_backup.token_expires > dt.date.today()
    with pytest.raises(Exception) as err:  # an expired operator's token is refused before any connection
        GrafanaBackupSettings(**{**PROD, "write_token": True, "token_expires": "2020-01-01"})
    assert "not in the future" in str(err.value) and "rotate" in str(err.value)


def test_lab_runs_the_grafana_api_standin_on_the_bridge_with_the_backup_token():
    from lab import daemons
    from lab.paths import BRIDGE_IP, GRAFANA_API_STANDIN_PORT
    from lab.secrets import SECRETS_DIR

    (standin,) = [d for d in daemons.DAEMONS if d.name == "grafana-api-standin"]
    assert standin.port == GRAFANA_API_STANDIN_PORT >= 9110 and standin.address == BRIDGE_IP
    assert "lab.receivers.grafana_api" in standin.argv
    assert str(SECRETS_DIR / "SENTINEL_GRAFANA_BACKUP_TOKEN") in standin.argv
    assert len({d.port for d in daemons.DAEMONS}) == len(daemons.DAEMONS)
    assert lab_settings().grafana_backup.grafana_url == f"http://{BRIDGE_IP}:{GRAFANA_API_STANDIN_PORT}"


def test_lab_generates_a_deploy_key_pair(monkeypatch, tmp_path):
    import subprocess

    import lab.secrets as lab_secrets

    monkeypatch.setattr(lab_secrets, "SECRETS_DIR", tmp_path)
    lab_secrets._ensure_deploy_key()
    key, pub = tmp_path / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", tmp_path / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY_PUB"
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == pub.read_text().split()[:2] and derived.startswith("ssh-ed25519 ")
    before = key.read_text()
    lab_secrets._ensure_deploy_key()  # kept, not regenerated
    assert key.read_text() == before


def test_deploy_key_check_accepts_a_key_and_refuses_garbage(tmp_path):
    """The deploy key's on-host check, run as validated_file runs it (staged file 0640, as root here)."""
    import inspect
    import re
    import shlex
    import subprocess

    import roles.grafana_backup as role

    check = re.search(r"validate='(\{ k=.*?\})'", inspect.getsource(role)).group(1)
    key = tmp_path / "staged"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.chmod(0o640)
    run = lambda: subprocess.run(["sh", "-c", f"set -eu\nout=$({check.replace('{path}', shlex.quote(str(key)))} 2>&1)"]).returncode  # noqa: E731
    assert run() == 0
    key.write_text("not a key\n")
    assert run() != 0


def test_the_job_reads_the_token_where_the_grafana_role_writes_it_with_the_jobs_group():
    """Agreed with the Grafana role: /etc/grafana-backup/token, 0640 root:grafana-backup, in a 0750 root:grafana-backup dir."""
    import inspect

    import roles.grafana as grafana_role
    import roles.grafana_backup as role
    from roles.grafana.settings import GrafanaSettings

    grafana, backup = GrafanaSettings(), GrafanaBackupSettings()
    assert grafana.backup_token_path == backup.token_file
    assert (grafana.backup_token_owner, grafana.backup_token_mode) == (f"root:{role.USER}", "0640")
    assert str(Path(backup.token_file).parent) == role.CONFIG_DIR
    # Both roles manage that directory: the same owner and mode, or each converge would flip it.
    assert 'user="root", group=group, mode="0750"' in inspect.getsource(grafana_role._backup_token)
    assert 'path=CONFIG_DIR, user="root", group=USER, mode="0750"' in inspect.getsource(role.grafana_backup)


@pytest.mark.parametrize(
    "grafana, backup, key",
    [
        ({}, {**PROD, "write_token": True, "token_expires": "2027-01-01"}, "grafana_backup.write_token"),
        ({}, {**PROD, "token_file": "/etc/grafana-backup/other-token"}, "grafana_backup.token_file"),
        ({"backup_token_path": "/etc/grafana-backup/token2"}, PROD, "grafana_backup.token_file"),
    ],
)
def test_the_token_has_one_writer_and_one_path(grafana, backup, key):
    with pytest.raises(SettingsError) as err:
        build("mon1", ["monitoring", "prod"], {**load_group_data("all"), **load_group_data("prod"), "grafana": grafana, "grafana_backup": backup})
    assert err.value.key == f"host mon1.{key}"
    # The lab: no Grafana binary, so the backup role writes the token.
    lab = lab_settings()
    assert lab.grafana_backup.write_token and not lab.grafana.install_binary


# --- the install-time metric and the first run (issue 25) -----------------------------------------


class _Recorder:
    """server.* as the role calls it: each operation recorded, nothing run."""

    def __init__(self, calls: list):
        self.calls = calls

    def shell(self, **kwargs):
        self.calls.append(kwargs)


def _with_facts(monkeypatch, existing: set[str]) -> list:
    """The role's module with File facts answering from `existing` and server.shell recorded."""
    import roles.grafana_backup as role

    calls: list = []
    monkeypatch.setattr(role, "server", _Recorder(calls))
    monkeypatch.setattr(role, "host", type("H", (), {"get_fact": lambda self, fact, path: {"mode": 644} if path in existing else None})())
    return calls


def test_the_install_time_is_written_once_then_left_alone(monkeypatch):
    import roles.grafana_backup as role

    path = "/var/lib/node_exporter/textfile/sentinel_grafana_backup_installed.prom"
    calls = _with_facts(monkeypatch, existing=set())
    role.installed_metric(path)
    assert [c["commands"] for c in calls] == [[role.installed_metric_command(path)]]
    calls = _with_facts(monkeypatch, existing={path})
    role.installed_metric(path)
    assert calls == []  # a second converge changes nothing, and the first install's time stays


def test_the_install_time_command_writes_a_metric_node_exporter_reads(tmp_path):
    import subprocess
    import time

    from prometheus_client.parser import text_string_to_metric_families
    from roles.grafana_backup import INSTALLED_METRIC, INSTALLED_METRIC_FILE_NAME, installed_metric_command

    path = tmp_path / INSTALLED_METRIC_FILE_NAME
    before = int(time.time())
    subprocess.run(["sh", "-c", installed_metric_command(str(path))], check=True)
    samples = [s for f in text_string_to_metric_families(path.read_text()) for s in f.samples]
    assert [s.name for s in samples] == [INSTALLED_METRIC]
    assert before <= samples[0].value <= time.time()
    assert oct(path.stat().st_mode)[-3:] == "644"  # node_exporter reads it
    assert [p.name for p in tmp_path.iterdir()] == [INSTALLED_METRIC_FILE_NAME]  # no temporary file left


def test_the_first_run_happens_only_where_the_job_never_ran(monkeypatch):
    import roles.grafana_backup as role

    settings = lab_settings()
    ctx = type("Ctx", (), {"settings": settings})()
    run_file = f"{settings.node_exporter.textfile_dir}/{role.RUN_METRIC_FILE_NAME}"
    calls = _with_facts(monkeypatch, existing=set())
    role.grafana_backup_first_run._inner(settings.grafana_backup, ctx)
    assert [c["commands"] for c in calls] == [[role.first_run_command()]]
    # Any run writes the file, a failed one too: the next converge changes nothing.
    calls = _with_facts(monkeypatch, existing={run_file})
    role.grafana_backup_first_run._inner(settings.grafana_backup, ctx)
    assert calls == []


def test_the_first_run_is_crons_command_as_its_user_and_its_failure_does_not_fail_the_converge():
    import subprocess

    from roles.grafana_backup import FIRST_RUN_TIMEOUT_SECONDS, USER, first_run_command

    command = first_run_command()
    run = f"timeout {FIRST_RUN_TIMEOUT_SECONDS} runuser -u {USER} -- {job_command()}"
    assert command.startswith(run + " || ")
    failing = subprocess.run(["sh", "-c", command.replace(run, "sh -c 'exit 2'")], capture_output=True, text=True)
    assert failing.returncode == 0
    assert "first Grafana backup run failed (exit 2)" in failing.stdout and "GrafanaBackupFailing" in failing.stdout


def test_the_role_and_the_job_agree_on_the_last_run_file():
    from roles.grafana_backup import RUN_METRIC_FILE_NAME

    assert load_job().RUN_METRIC_FILE_NAME == RUN_METRIC_FILE_NAME
