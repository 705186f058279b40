"""Grafana backups on the lab: the job installed on mon1 by the role, run exactly as cron
runs it, pushing over SSH with its deploy key to a real bare git repository on tel1.

Grafana cannot run here: the job reads the Grafana HTTP API STAND-IN on the bridge
(lab/receivers/grafana_api.py, NOT Grafana; group_data/lab.py points the job at it).
What this proves on real hosts: the role's install (venv from the mirror, files, modes,
user, cron entry), the cron command's fixed environment, SSH with the deploy key and
the git host's key, commit-only-on-change, exactly-one-file diffs, restore with
read-back, the failure paths (no commit, no metric update) and node_exporter exporting
the job's metrics. What only the stand-in stands for: Grafana's own answers.

The git remote is set up here, not by a role: on tel1 a `git` user whose login shell is
git-shell (git commands only) and whose authorized_keys holds the lab deploy key's
public half with `restrict` (no pty, no forwarding), and a fresh bare repository per
test session. Production's remote is an existing git server (grafana_backup.remote_url).
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
import requests

from lab.paths import BRIDGE_IP, GRAFANA_API_STANDIN_PORT
from lab.secrets import read as read_lab_secret
from roles.grafana_backup import INSTALLED_METRIC_FILE_NAME, METRIC_FILE_NAME, RUN_METRIC_FILE_NAME, USER, job_command
from roles.grafana_backup.status import INSTALLED, LAST_RUN_SUCCESS, samples_of
from tests import lab_session
from tests.stack import hosts_in
from tests.unit.grafana_backup_fixtures import StandinClient, load_job, seed

pytestmark = [pytest.mark.lab, pytest.mark.backups]

STANDIN = f"http://{BRIDGE_IP}:{GRAFANA_API_STANDIN_PORT}"
BARE_REPO = "/srv/git/grafana-backup.git"
job = load_job()


class Lab:
    def __init__(self):
        self.mon = hosts_in("monitoring")[0]
        self.tel = hosts_in("telemetry")[0]
        self.settings = self.mon.settings.grafana_backup
        textfile_dir = self.mon.settings.node_exporter.textfile_dir
        self.metric_path = f"{textfile_dir}/{METRIC_FILE_NAME}"
        self.run_metric_path = f"{textfile_dir}/{RUN_METRIC_FILE_NAME}"
        self.installed_metric_path = f"{textfile_dir}/{INSTALLED_METRIC_FILE_NAME}"
        self.client = StandinClient(STANDIN, read_lab_secret("SENTINEL_GRAFANA_BACKUP_TOKEN"))

    def run_job(self, subcommand: str = "backup"):
        """The crontab's command, as user grafana-backup, through a login-less shell like cron's."""
        return self.mon.testinfra.run(f"su -s /bin/sh {USER} -c {shlex.quote(job_command(subcommand))}")

    def journal(self) -> str:
        # --sync: journald has stored what systemd-cat handed it before we read.
        return self.mon.testinfra.run("journalctl --sync; journalctl -t sentinel-grafana-backup -n 30 --no-pager -o cat").stdout

    def remote_log(self) -> list[str]:
        out = self.tel.testinfra.run(f"runuser -u git -- git -C {BARE_REPO} log --format=%H main")
        return out.stdout.split() if out.rc == 0 else []

    def remote_changed_files(self, old: str, new: str) -> list[str]:
        return self.tel.testinfra.check_output(f"runuser -u git -- git -C {BARE_REPO} diff --name-only {old} {new}").split()

    def remote_files(self) -> list[str]:
        return self.tel.testinfra.check_output(f"runuser -u git -- git -C {BARE_REPO} ls-tree -r --name-only main").split()

    def metric_file(self) -> str | None:
        out = self.mon.testinfra.run(f"cat {self.metric_path}")
        return out.stdout if out.rc == 0 else None

    def node_exporter_metrics(self) -> str:
        return self.mon.curl(self.mon.local("node_exporter.metrics", "/metrics"))

    def exported(self) -> dict[str, float]:
        """The backup's unlabelled samples as node_exporter exports them now."""
        return samples_of(self.node_exporter_metrics())

    def working_copy_state(self) -> tuple[str, str]:
        repo = self.settings.repo_dir
        status = self.mon.testinfra.run(f"runuser -u {USER} -- git -C {repo} status --porcelain").stdout
        head = self.mon.testinfra.run(f"runuser -u {USER} -- git -C {repo} rev-parse -q --verify HEAD").stdout.strip()
        return status, head

    def state(self) -> dict:
        """The stand-in's objects, normalised by the job's own export (read from this machine)."""
        from grafana_client import GrafanaApi

        api = GrafanaApi.from_url(STANDIN, credential=read_lab_secret("SENTINEL_GRAFANA_BACKUP_TOKEN"), timeout=10)
        return job.export(api)


def _setup_remote(tel) -> None:
    pub = read_lab_secret("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY_PUB")
    script = f"""set -eu
if ! command -v git >/dev/null; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q git >/dev/null
fi
id git >/dev/null 2>&1 || useradd --system --home-dir /srv/git --create-home --shell /usr/bin/git-shell git
usermod -p '*' git  # no password, but not "locked": sshd accepts its key
install -d -o git -g git -m 0700 /srv/git/.ssh
printf 'restrict %s\\n' {shlex.quote(pub)} > /srv/git/.ssh/authorized_keys
chown git:git /srv/git/.ssh/authorized_keys && chmod 0600 /srv/git/.ssh/authorized_keys
rm -rf {BARE_REPO}
runuser -u git -- git init -q --bare -b main {BARE_REPO}
"""
    tel.testinfra.check_output(f"sh -c {shlex.quote(script)}")


@pytest.fixture(scope="module")
def lab(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    lab = Lab()
    assert lab.settings.enabled, "group_data/lab.py enables grafana_backup"
    _setup_remote(lab.tel)
    lab.client.control("POST", "/standin/fault", {"mode": None})
    lab.client.control("POST", "/standin/reset")
    seed(lab.client)
    return lab


@pytest.fixture(scope="module")
def first_backup(lab):
    result = lab.run_job()
    assert result.rc == 0, lab.journal()
    return result


def test_the_role_installed_a_daily_cron_entry_for_the_job(lab):
    crontab = lab.mon.testinfra.check_output(f"crontab -l -u {USER}")
    schedule = lab.settings.schedule
    line = f"{schedule.minute} {schedule.hour} {schedule.day_of_month} {schedule.month} {schedule.day_of_week} {job_command()}"
    assert line in crontab.splitlines(), crontab


def test_first_run_commits_everything_and_pushes_over_ssh(lab, first_backup):
    commits = lab.remote_log()
    assert len(commits) == 1
    files = lab.remote_files()
    for expected in ("folders.json", "datasources.json", "dashboards/Sentinel/business.json",
                     "dashboards/Sentinel/App-Backend/performance.json", "dashboards/General/home.json",
                     "alerting/rule-groups/sentinel/backend.json", "alerting/contact-points.json",
                     "alerting/policies.json", "alerting/mute-timings.json"):
        assert expected in files, files
    secret = lab.tel.testinfra.check_output(f"runuser -u git -- git -C {BARE_REPO} show main:alerting/contact-points.json")
    assert "secret-token" not in secret and "[REDACTED]" in secret
    metrics = lab.node_exporter_metrics()
    assert 'sentinel_grafana_backup_objects{kind="dashboards"} 3' in metrics
    assert "sentinel_grafana_backup_last_success_timestamp_seconds" in metrics


def _last_success(lab) -> float:
    for line in (lab.metric_file() or "").splitlines():
        if line.startswith("sentinel_grafana_backup_last_success_timestamp_seconds "):
            return float(line.split()[1])
    raise AssertionError("no last-success metric")


def test_second_run_without_change_makes_no_commit(lab, first_backup):
    before, stamp = lab.remote_log(), _last_success(lab)
    result = lab.run_job()  # a run takes well over the metric's millisecond resolution (git over SSH)
    assert result.rc == 0, lab.journal()
    assert lab.remote_log() == before
    assert _last_success(lab) > stamp


def test_one_changed_dashboard_commits_exactly_that_change(lab, first_backup):
    before = lab.remote_log()
    dashboard = lab.client.api("GET", "/api/dashboards/uid/business")["dashboard"]
    dashboard["panels"][0]["title"] = "check-ins per minute"
    lab.client.api("POST", "/api/dashboards/db", {"dashboard": dashboard, "folderUid": "sentinel", "overwrite": True})
    result = lab.run_job()
    assert result.rc == 0, lab.journal()
    after = lab.remote_log()
    assert len(after) == len(before) + 1
    assert lab.remote_changed_files(before[0], after[0]) == ["dashboards/Sentinel/business.json"]


def test_restore_after_a_wipe_reads_back_identical(lab, first_backup):
    assert lab.run_job().rc == 0, lab.journal()  # the backup holds the current state
    original = lab.state()
    lab.client.control("POST", "/standin/reset", {"keep_datasources": True})  # datasources are provisioned, not restored
    assert lab.state()["dashboards"] == []
    dry = lab.run_job("restore --dry-run")
    assert dry.rc == 0, lab.journal()
    assert lab.state()["dashboards"] == []  # the dry run wrote nothing
    assert "would create dashboard: Business (business)" in lab.journal()
    restored = lab.run_job("restore")
    assert restored.rc == 0, lab.journal()
    assert "read-back identical" in lab.journal()
    assert lab.state() == original


def _assert_failure_changes_nothing(lab, break_it, repair) -> None:
    # A change waits in Grafana, so a working run would commit.
    lab.client.api("POST", "/api/dashboards/db", {"dashboard": {"uid": f"pending-{time.time_ns()}", "title": "pending"}})
    commits, metric = lab.remote_log(), lab.metric_file()
    mtime = lab.mon.testinfra.check_output(f"stat -c %Y {lab.metric_path}")
    break_it()
    try:
        result = lab.run_job()
    finally:
        repair()
    assert result.rc != 0, lab.journal()
    assert lab.remote_log() == commits
    assert lab.metric_file() == metric
    assert lab.mon.testinfra.check_output(f"stat -c %Y {lab.metric_path}") == mtime
    status, head = lab.working_copy_state()
    assert status == "" and head == commits[0], (status, head, commits[0])
    assert lab.exported()[LAST_RUN_SUCCESS] == 0  # GrafanaBackupFailing's input


def test_unreachable_grafana_fails_without_commit_or_metric_update(lab, first_backup):
    _assert_failure_changes_nothing(
        lab,
        lambda: lab.client.control("POST", "/standin/fault", {"mode": "unreachable"}),
        lambda: lab.client.control("POST", "/standin/fault", {"mode": None}),
    )
    assert "unreachable" in lab.journal()


def test_wrong_token_fails_without_commit_or_metric_update(lab, first_backup):
    token_file = lab.settings.token_file
    saved = lab.mon.testinfra.check_output(f"cat {token_file}")

    def write(value: str):
        lab.mon.testinfra.check_output(f"printf '%s\\n' {shlex.quote(value)} > {token_file}")

    _assert_failure_changes_nothing(lab, lambda: write("glsa_wrong_token"), lambda: write(saved))
    assert "401" in lab.journal()


def test_rejected_push_fails_without_commit_or_metric_update(lab, first_backup):
    hook = f"{BARE_REPO}/hooks/pre-receive"

    def install_hook():
        lab.tel.testinfra.check_output(
            f"printf '#!/bin/sh\\necho rejected by the e2e test >&2\\nexit 1\\n' > {hook} && chmod 0755 {hook} && chown git:git {hook}"
        )

    _assert_failure_changes_nothing(lab, install_hook, lambda: lab.tel.testinfra.check_output(f"rm -f {hook}"))
    assert "rejected" in lab.journal()
    # Once the remote accepts again, the waiting changes are committed and pushed.
    before = lab.remote_log()
    assert lab.run_job().rc == 0, lab.journal()
    assert len(lab.remote_log()) == len(before) + 1


def test_the_standin_is_named_as_one(lab):
    health = requests.get(f"{STANDIN}/health", timeout=5).json()
    assert health["service"] == "grafana-api-standin"
    assert json.loads(lab.mon.testinfra.check_output("cat /etc/grafana-backup/config.json"))["grafana_url"] == STANDIN


def test_a_converge_runs_the_job_once_where_it_never_ran_and_a_failure_fails_neither_it_nor_idempotence(lab, first_backup):
    """The first run at converge (roles/grafana_backup, grafana_backup_first_run), made to fail: the converge
    succeeds, the failure is recorded for the alert, and the next converge changes nothing. Last in this
    file: it ends with a good run, so the smoke tests that follow in `make test` see a recent success."""
    lab.mon.testinfra.check_output(f"rm -f {lab.run_metric_path}")  # as on a host where the job never ran
    lab.client.control("POST", "/standin/fault", {"mode": "unreachable"})
    try:
        first = lab_session.converge("--limit", lab.mon.name)
        second = lab_session.converge("--limit", lab.mon.name)
    finally:
        lab.client.control("POST", "/standin/fault", {"mode": None})
    assert first.returncode == 0, first.output[-3000:]
    assert first.changed == {lab.mon.name: 1}, first.output[-3000:]  # the first run, nothing else
    assert "unreachable" in lab.journal()
    exported = lab.exported()
    assert exported[LAST_RUN_SUCCESS] == 0 and INSTALLED in exported
    assert second.returncode == 0 and second.changed == {lab.mon.name: 0}, second.output[-3000:]
    assert lab.run_job().rc == 0, lab.journal()
    assert lab.exported()[LAST_RUN_SUCCESS] == 1


def test_node_exporter_exports_the_tokens_expiry_for_the_alert(lab, first_backup):
    from prometheus_client.parser import text_string_to_metric_families

    from roles.grafana_backup import token_expiry_seconds

    assert lab.run_job().rc == 0, lab.journal()
    samples = {s.name: s.value for f in text_string_to_metric_families(lab.node_exporter_metrics()) for s in f.samples}
    # The role wrote the operator's expiry beside the token; the job exported it at its run.
    assert samples["sentinel_grafana_backup_token_expiry_seconds"] == token_expiry_seconds(lab.settings.token_expires)
    mode = lab.mon.testinfra.check_output(f"stat -c '%a %U:%G' {lab.settings.token_expiry_file}")
    assert mode == f"640 root:{USER}"


def test_a_viewers_token_cannot_restore_grafana_refuses_it_with_403(lab, first_backup):
    token_file = lab.settings.token_file
    saved = lab.mon.testinfra.check_output(f"cat {token_file}")
    added = requests.post(f"{STANDIN}/standin/tokens", json={"token": "glsa_lab_viewer", "role": "Viewer", "secondsToLive": 600}, timeout=10)
    if added.status_code == 404:
        pytest.skip("the lab's running Grafana API stand-in predates token roles (started by `lab up` from an older "
                    "checkout); tests/unit/test_grafana_backup.py proves the 403 against the current stand-in")
    added.raise_for_status()

    def write(value: str):
        lab.mon.testinfra.check_output(f"printf '%s\\n' {shlex.quote(value)} > {token_file}")

    assert lab.run_job().rc == 0, lab.journal()
    lab.client.control("POST", "/standin/reset", {"keep_datasources": True})
    before = lab.client.control("GET", "/standin/state")
    write("glsa_lab_viewer")
    try:
        result = lab.run_job("restore")
    finally:
        write(saved)
        lab.client.control("DELETE", "/standin/tokens")
    assert result.rc == 1, lab.journal()
    assert "403" in lab.journal() and "glsa_lab_viewer" not in lab.journal()
    assert lab.client.control("GET", "/standin/state") == before  # nothing was written
    # The role's own token (Editor, the documented role) restores it.
    assert lab.run_job("restore").rc == 0, lab.journal()


def test_every_monitoring_host_backs_up_to_the_same_remote_and_adds_no_second_commit(lab, first_backup):
    """The placement table runs the job on every monitoring host. With Grafana unchanged, after the first
    host's run each other host's run succeeds against the same remote and commits nothing: commit only on
    change holds across hosts, so two jobs do not fight over the branch."""
    others = [m for m in hosts_in("monitoring") if m.name != lab.mon.name]
    if not others:
        pytest.skip("one monitoring host")
    assert lab.run_job().rc == 0, lab.journal()
    head = lab.remote_log()[0]
    for mon in others:
        result = mon.testinfra.run(f"su -s /bin/sh {USER} -c {shlex.quote(job_command())}")
        journal = mon.testinfra.run("journalctl --sync; journalctl -t sentinel-grafana-backup -n 30 --no-pager -o cat").stdout
        assert result.rc == 0, f"{mon.name}: {journal}"
    assert lab.remote_log()[0] == head, "a second host committed with Grafana unchanged"
