"""Settings of the Grafana backup job (group data key `grafana_backup`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from roles.grafana.settings import TokenPath
from roles._model import ServiceDir, Bool, HttpUrl, Int, Model, SecretName, Text, matching

# A cron field: digits, *, ranges, lists and steps ("17", "*/6", "1-5", "0,12").
CronField = matching(
    "cron field", r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*", 'write it like "17", "*", "*/6", "1-5" or "0,12"'
)
# git over SSH: user@host:path or ssh://user@host[:port]/path; the deploy key only works over SSH.
GitSshUrl = matching(
    "git SSH URL",
    r"(ssh://[A-Za-z0-9._-]+@[A-Za-z0-9.\-\[\]:]+(:\d+)?/[A-Za-z0-9._/~+-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~+-]+)",
    "write it like git@git.example.org:ops/grafana-backup.git or ssh://git@host:22/srv/git/grafana-backup.git "
    "(the deploy key works over SSH only)",
)
# One line of ssh-keyscan output: host, key type, base64 key, optional comment (no control characters).
KnownHostsLine = matching(
    "known_hosts line",
    r"\S+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh.com) "
    r"[A-Za-z0-9+/=]+( [^\x00-\x1f\x7f]*)?",
    "paste the output of `ssh-keyscan -t ed25519 <git host>`, checked against the host's fingerprint",
)



def _git_branch(value: str) -> str:
    # git check-ref-format's rules for a branch name (man git-check-ref-format), checked here so
    # the job does not fail on the host every night.
    bad = (
        not re.fullmatch(r"[A-Za-z0-9._/-]{1,100}", value) or value.startswith(("-", "/", ".")) or value.endswith(("/", ".", ".lock"))
        or ".." in value or "//" in value or "/." in value or value == "@" or "@{" in value
    )
    if bad:
        raise ValueError(f"{value!r} is not a branch name git accepts. Fix: use letters, digits, -, _, . and / such as main or backups/prod")
    return value


GitBranch = Annotated[str, AfterValidator(_git_branch)]


def remote_host(url: str) -> tuple[str, int]:
    """(host, port) of a git SSH URL: user@host:path or ssh://user@host[:port]/path."""
    if url.startswith("ssh://"):
        authority = url[len("ssh://"):].split("/", 1)[0].rsplit("@", 1)[-1]
        if authority.startswith("["):
            host, _, rest = authority[1:].partition("]")
            return host, int(rest[1:]) if rest.startswith(":") else 22
        host, _, port = authority.partition(":")
        return host, int(port) if port else 22
    return url.split("@", 1)[1].split(":", 1)[0], 22


def known_host_matches(field: str, host: str, port: int) -> bool:
    """Whether a known_hosts host field (names, [name]:port, or hashed |1|salt|hash) names host:port, as ssh reads it."""
    import base64
    import hashlib
    import hmac

    wanted = host if port == 22 else f"[{host}]:{port}"
    if field.startswith("|1|"):
        try:
            _, _, salt, digest = field.split("|", 3)
            mac = hmac.new(base64.b64decode(salt), wanted.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, TypeError):
            return False
    return wanted in field.split(",")

class BackupSchedule(Model):
    """When cron runs the backup: daily at 03:17 by default (off the hour, away from other jobs)."""

    minute: CronField = Field("17", description="Cron minute field.")
    hour: CronField = Field("3", description="Cron hour field.")
    day_of_month: CronField = Field("*", description="Cron day-of-month field.")
    month: CronField = Field("*", description="Cron month field.")
    day_of_week: CronField = Field("*", description="Cron day-of-week field.")

    @model_validator(mode="after")
    def _cron_reads_it(self) -> "BackupSchedule":
        from croniter import croniter

        line = f"{self.minute} {self.hour} {self.day_of_month} {self.month} {self.day_of_week}"
        if not croniter.is_valid(line):
            raise ValueError(
                f"{line!r} is not a schedule cron accepts (a field out of range, e.g. minute 61): crontab would refuse the file "
                "and the backup would never run. Fix: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7"
            )
        return self


class GrafanaBackupSettings(Model):
    """The Grafana backup job on the Grafana host (monitoring group).

    The service-account token file is written by the Grafana role at `token_file`;
    `write_token` is only for hosts without that role (the lab, whose Grafana API is
    a stand-in): the backup role then writes the file from the secret `token_secret`.
    """

    enabled: Bool = Field(False, description="Install the backup job and its cron entry on the monitoring hosts.")
    grafana_url: HttpUrl | None = Field(
        None, description="Grafana's HTTP API as the job reaches it; unset = this host's Grafana (grafana.http in the topology)."
    )
    token_file: TokenPath = Field(
        "/etc/grafana-backup/token", description="The service-account token file the job reads (written by the Grafana role)."
    )
    write_token: Bool = Field(
        False,
        description="Write token_file from the secret token_secret: only where no Grafana role writes it (the lab's stand-in).",
    )
    token_secret: SecretName = Field(
        "SENTINEL_GRAFANA_BACKUP_TOKEN", description="Secret holding the service-account token (read only with write_token)."
    )
    token_expires: dt.date | None = Field(
        None,
        description="With write_token: the day the operator's token expires (YYYY-MM-DD, as Grafana showed it when the token "
        "was made with an expiry); required with write_token. The job exports it and GrafanaBackupTokenExpiring fires 14 days "
        "before; preflight warns then too. Without write_token the Grafana role makes the token and records its expiry itself.",
    )
    remote_url: GitSshUrl | None = Field(None, description="The backup repository's SSH URL (required when enabled).")
    branch: GitBranch = Field("main", description="Branch the job commits to and pushes (a name git check-ref-format accepts).")
    deploy_key_secret: SecretName = Field(
        "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", description="Secret holding the git deploy key (an unencrypted OpenSSH private key)."
    )
    known_hosts: tuple[KnownHostsLine, ...] = Field(
        (), description="Pinned host keys of the git server (`ssh-keyscan` output, checked by hand)."
    )
    trust_on_first_use: Bool = Field(
        False,
        description="LAB ONLY: accept the git host's key on first use (lab hosts get new host keys on every `lab up`).",
    )
    schedule: BackupSchedule = Field(BackupSchedule(), description="When cron runs the job (daily at 03:17 by default).")
    repo_dir: ServiceDir = Field("/var/lib/grafana-backup/repo", description="The job's git working copy.")
    wheels_from_mirror: Bool = Field(
        False, description="Install grafana-client from the artifact mirror's wheelhouse (the lab) instead of PyPI."
    )
    timeout_seconds: Int = Field(30, ge=1, le=600, description="Timeout of each Grafana API request, in seconds.")
    git_author_name: Text = Field("Sentinel Grafana backup", description="Author name of the backup commits.")
    git_author_email: Text = Field("grafana-backup@sentinel.internal", description="Author e-mail of the backup commits.")

    @property
    def token_expiry_file(self) -> str:
        """The token's expiry (a Unix time), beside the token: the job exports it."""
        return f"{self.token_file}.expires"

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> "GrafanaBackupSettings":
        if self.enabled and self.write_token and self.token_expires is None:
            raise ValueError(
                "write_token is on but token_expires is not set: a token without an expiry is refused. Fix: create the "
                "service account's token with an expiry (Editor role, e.g. 90 days) and set grafana_backup.token_expires "
                "to its expiry day, YYYY-MM-DD"
            )
        if self.enabled and self.write_token and self.token_expires <= dt.datetime.now(dt.timezone.utc).date():
            raise ValueError(
                f"token_expires {self.token_expires} is not in the future: Grafana refuses an expired token (401) and every "
                "backup would fail. Fix: rotate the token (docs/grafana.md, two phases) and set grafana_backup.token_expires "
                "to the new token's expiry day"
            )
        if self.enabled and not self.remote_url:
            raise ValueError("remote_url is not set. Fix: set grafana_backup.remote_url to the backup repository's SSH URL")
        if self.enabled and not self.known_hosts and not self.trust_on_first_use:
            raise ValueError(
                "known_hosts is empty. Fix: set grafana_backup.known_hosts to the git host's keys (ssh-keyscan output, "
                "checked against its fingerprint); StrictHostKeyChecking stays on"
            )
        if self.enabled and self.known_hosts and self.remote_url:
            host, port = remote_host(self.remote_url)
            if not any(known_host_matches(line.split()[0], host, port) for line in self.known_hosts):
                shown = host if port == 22 else f"[{host}]:{port}"
                raise ValueError(
                    f"no known_hosts line is for {shown}, the host of remote_url: ssh would refuse the git host every night. "
                    f"Fix: add the output of `ssh-keyscan -t ed25519{'' if port == 22 else f' -p {port}'} {host}`, checked against its fingerprint"
                )
        return self
