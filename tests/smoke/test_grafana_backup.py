"""Smoke: the Grafana backup job on the monitoring hosts (any inventory that enables it).

The cron entry exists, the job's files and secrets have the right owner and mode, and
node_exporter exports a last-success timestamp younger than the stale-backup alert's
threshold (26 hours) and the last run did not fail; a job that has not run yet is
skipped with that reason (a converge runs it once where it never ran).
"""

import pytest

from roles.grafana_backup import (
    CONFIG, CONFIG_DIR, DEPLOY_KEY, HOME, INSTALL_DIR, LOG_TAG, PINNED_KNOWN_HOSTS, PROGRAM, PYTHON, USER, job_command,
)
from roles.grafana_backup.status import backup_status, samples_of

STALE_AFTER_SECONDS = 26 * 3600  # files/alerting/catalog.yml, grafana-backup-stale


@pytest.fixture
def backup_host(monitoring_host):
    if not monitoring_host.settings.grafana_backup.enabled:
        pytest.skip(f"grafana_backup is not enabled on {monitoring_host.name}")
    return monitoring_host


def _mode(f) -> str:
    return oct(f.mode)[2:].zfill(4)


def test_cron_entry_runs_the_job_daily_as_its_user(backup_host):
    schedule = backup_host.settings.grafana_backup.schedule
    crontab = backup_host.testinfra.check_output(f"crontab -l -u {USER}").splitlines()
    expected = f"{schedule.minute} {schedule.hour} {schedule.day_of_month} {schedule.month} {schedule.day_of_week} {job_command()}"
    assert expected in crontab
    assert backup_host.testinfra.service("cron").is_running


@pytest.mark.parametrize(
    "path, user, group, mode",
    [
        (CONFIG_DIR, "root", USER, "0750"),
        (CONFIG, "root", USER, "0640"),
        (DEPLOY_KEY, "root", USER, "0640"),
        (PROGRAM, "root", "root", "0755"),
        (INSTALL_DIR, "root", "root", "0755"),
        (HOME, USER, USER, "0750"),
    ],
)
def test_files_and_secrets_have_owner_and_mode(backup_host, path, user, group, mode):
    f = backup_host.testinfra.file(path)
    assert f.exists, path
    assert (f.user, f.group, _mode(f)) == (user, group, mode)


def test_token_is_a_secret_file_readable_by_the_job_only(backup_host):
    f = backup_host.testinfra.file(backup_host.settings.grafana_backup.token_file)
    assert f.exists and f.user == "root" and f.group == USER and _mode(f) in ("0640", "0600")


def test_git_host_keys_are_pinned_unless_lab_first_use(backup_host):
    settings = backup_host.settings.grafana_backup
    if settings.trust_on_first_use:
        assert backup_host.settings.environment == "lab"
        return
    f = backup_host.testinfra.file(PINNED_KNOWN_HOSTS)
    assert f.exists and f.user == "root" and _mode(f) == "0644"
    assert f.content_string.strip(), "no pinned key for the git host"


def test_working_copy_and_python_are_in_place(backup_host):
    repo = backup_host.settings.grafana_backup.repo_dir
    git_dir = backup_host.testinfra.file(f"{repo}/.git")
    assert git_dir.is_directory and git_dir.user == USER
    assert backup_host.testinfra.run(f"{PYTHON} -c 'import grafana_client'").rc == 0


def test_last_success_metric_is_recent(backup_host):
    """Not yet run (installed, nothing recorded) is not a fault: skipped with the reason. A failed last run
    and a stale success fail, each with its own message and the job's last journal lines."""
    body = backup_host.curl(backup_host.local("node_exporter.metrics", "/metrics"))
    now = float(backup_host.testinfra.check_output("date +%s"))
    status = backup_status(samples_of(body), now, STALE_AFTER_SECONDS)
    if status.state == "not yet run":
        pytest.skip(status.message)
    if status.state != "ok":
        journal = backup_host.testinfra.run(f"journalctl -t {LOG_TAG} -n 5 --no-pager -o cat").stdout
        pytest.fail(f"{status.state}: {status.message}\njournalctl -t {LOG_TAG}:\n{journal}")
