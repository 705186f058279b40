"""Settings of the Grafana backup job (group data key `grafana_backup`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from roles._model import AbsPath, HttpUrl, Model, Name, SecretName, Text

# A cron field: digits, *, ranges, lists and steps ("17", "*/6", "1-5", "0,12").
_CRON_FIELD = re.compile(r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*")
# git over SSH: user@host:path or ssh://user@host[:port]/path; the deploy key only works over SSH.
_GIT_SSH_URL = re.compile(r"(ssh://[A-Za-z0-9._-]+@[A-Za-z0-9.\-\[\]:]+(:\d+)?/[A-Za-z0-9._/~+-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~+-]+)")
_KNOWN_HOSTS_LINE = re.compile(r"\S+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/=]+( .*)?")


def _cron_field(value: str) -> str:
    if not _CRON_FIELD.fullmatch(value):
        raise ValueError(f"{value!r} is not a cron field. Fix: write it like \"17\", \"*\", \"*/6\", \"1-5\" or \"0,12\"")
    return value


def _git_ssh_url(value: str) -> str:
    if not _GIT_SSH_URL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a git SSH URL. Fix: write it like git@git.example.org:ops/grafana-backup.git "
            "or ssh://git@host:22/srv/git/grafana-backup.git (the deploy key works over SSH only)"
        )
    return value


def _known_hosts_line(value: str) -> str:
    if not _KNOWN_HOSTS_LINE.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r}... is not a known_hosts line. Fix: paste the output of `ssh-keyscan -t ed25519 <git host>`, "
            "checked against the host's fingerprint"
        )
    return value


CronField = Annotated[str, AfterValidator(_cron_field)]
GitSshUrl = Annotated[str, AfterValidator(_git_ssh_url)]
KnownHostsLine = Annotated[Text, AfterValidator(_known_hosts_line)]


class BackupSchedule(Model):
    """When cron runs the backup: daily at 03:17 by default (off the hour, away from other jobs)."""

    minute: CronField = "17"
    hour: CronField = "3"
    day_of_month: CronField = "*"
    month: CronField = "*"
    day_of_week: CronField = "*"


class GrafanaBackupSettings(Model):
    """The Grafana backup job on the Grafana host (monitoring group).

    The service-account token file is written by the Grafana role (issue 13) at
    `token_file`; `token_secret` is only for hosts without that role (the lab,
    whose Grafana API is a stand-in): the backup role then writes it.
    """

    enabled: bool = False
    grafana_url: HttpUrl = "http://127.0.0.1:3000"
    token_file: AbsPath = "/etc/grafana-backup/token"
    token_secret: SecretName | None = None
    remote_url: GitSshUrl | None = None
    branch: Name = "main"
    deploy_key_secret: SecretName = "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY"
    # Pinned host keys of the git server (`ssh-keyscan` output, checked by hand).
    known_hosts: tuple[KnownHostsLine, ...] = ()
    # LAB ONLY: accept the git host's key on first use (StrictHostKeyChecking=accept-new)
    # because lab hosts get new host keys on every `lab up`. Preflight refuses it elsewhere.
    trust_on_first_use: bool = False
    schedule: BackupSchedule = Field(default_factory=BackupSchedule)
    repo_dir: AbsPath = "/var/lib/grafana-backup/repo"
    # Install grafana-client from the artifact mirror's wheelhouse (the lab) instead of PyPI.
    wheels_from_mirror: bool = False
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    git_author_name: Text = "Sentinel Grafana backup"
    git_author_email: Text = "grafana-backup@sentinel.internal"

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "GrafanaBackupSettings":
        if self.enabled and not self.remote_url:
            raise ValueError("remote_url is not set. Fix: set grafana_backup.remote_url to the backup repository's SSH URL")
        if self.enabled and not self.known_hosts and not self.trust_on_first_use:
            raise ValueError(
                "known_hosts is empty. Fix: set grafana_backup.known_hosts to the git host's keys (ssh-keyscan output, "
                "checked against its fingerprint); StrictHostKeyChecking stays on"
            )
        return self


def check_environment(settings: GrafanaBackupSettings, environment: str, where: str) -> None:
    """Preflight for an enabled backup: its secrets are set, trust-on-first-use only in the lab."""
    from roles._schema import SettingsError
    from roles._secrets import read_secret

    if settings.trust_on_first_use and environment != "lab":
        raise SettingsError(
            f"{where}.grafana_backup.trust_on_first_use",
            f"is on in {environment}",
            "pin the git host's keys in grafana_backup.known_hosts and turn trust_on_first_use off (it is for the lab only)",
        )
    if not settings.enabled:
        return
    for secret in (settings.deploy_key_secret, settings.token_secret):
        if secret and not read_secret(secret):
            raise SettingsError(
                f"{where}.grafana_backup", f"the secret {secret} is not set", f"export {secret}=... or put it in $SENTINEL_SECRETS_DIR/{secret}"
            )
