"""Settings of the Grafana role (`grafana` group data).

Defaults are production's. Secrets are named, never given: *_secret keys name
an environment variable or a file in $SENTINEL_SECRETS_DIR (resolved once by
roles/_secrets.py); the value reaches the host only as a 0640 root:grafana file
that grafana.ini reads with `$__file{...}`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from roles._model import duration_seconds, AbsPath, Bool, Duration, HostPort, HttpUrl, Int, Model, Name, Port, SecretName, SettingsError, matching

Owner = matching("user:group", r"[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*", "write it like root:grafana-backup")
# The token file's mode: never more than 0640 (group read at most, no other).
FileMode = matching("secret file mode (0640 at most)", r"0[46]00|0[46]40", "use 0640, 0600, 0440 or 0400")
# Token files live in the backup job's own config directory, which the role creates.
TokenPath = matching("token path under /etc/grafana* or /etc/sentinel*", r"/etc/(grafana|sentinel)[a-z0-9_-]*/[A-Za-z0-9._-]+", "write it like /etc/grafana-backup/token")


class DatabaseSettings(Model):
    """Grafana's own database: its SQLite file (one Grafana host), or an external PostgreSQL.

    The PostgreSQL password is a secret; grafana.ini reads it with `$__file{...}`,
    so the URL-style `url` key (which would embed it) is never rendered.
    """

    type: Literal["sqlite3", "postgres"] = Field("sqlite3", description="sqlite3 (a file on the host) or postgres.")
    path: AbsPath = Field("/var/lib/grafana/grafana.db", description="The SQLite file (type sqlite3).")
    host: HostPort | None = Field(None, description="PostgreSQL host:port (type postgres; required there).")
    name: Name = Field("grafana", description="PostgreSQL database name.")
    user: Name = Field("grafana", description="PostgreSQL user.")
    password_secret: SecretName = Field("SENTINEL_GRAFANA_DB_PASSWORD", description="Secret holding the PostgreSQL password (type postgres only).")
    ssl_mode: Literal["disable", "require", "verify-full"] = Field("verify-full", description="PostgreSQL TLS mode (disable only in the lab: the password).")

    @model_validator(mode="after")
    def _postgres_needs_a_host(self):
        if self.type == "postgres" and not self.host:
            raise SettingsError("host", "type is postgres but no host is set", "set grafana.database.host to host:port, e.g. db.internal:5432")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.type == "postgres"


class GrafanaSettings(Model):
    """Grafana on the `monitoring` hosts: grafana.ini, provisioning, the backup job's token."""

    install_binary: Bool = Field(
        True,
        description="False ONLY in the lab, where Grafana (AGPL) may not run: user, directories, grafana.ini and "
        "provisioning files with their modes, but no binary, no unit, no plugin, no token. Refused elsewhere.",
    )
    http_port: Port = Field(
        3000, description="Grafana's https port (it serves TLS only, with the environment CA's certificate or the operator's public one)."
    )
    root_url: HttpUrl | None = Field(
        None, description="The URL users reach Grafana at: https:// only (Grafana serves https, with secure cookies and HSTS). "
        "Unset = https://<host address>:<http_port>/."
    )

    @field_validator("root_url")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(
                f"{value} is not https: Grafana serves https only, with secure cookies and HSTS, so users would "
                "be sent to a scheme it does not answer. Fix: write it as https://..."
            )
        return value
    public_certificate_secret: SecretName | None = Field(
        None,
        description="Secret holding the operator's public certificate chain for Grafana's https (PEM, the server's own "
        "certificate first, then its intermediates), for browsers that do not trust the environment CA. Set with "
        "public_key_secret, or neither (Grafana then serves the environment CA's certificate). Its names must cover the "
        "host of root_url. Rendering-checked only: docs/tls.md \"Grafana\".",
    )
    public_key_secret: SecretName | None = Field(
        None, description="Secret holding the private key of public_certificate_secret's first certificate (PEM, no passphrase)."
    )

    @model_validator(mode="after")
    def _public_pair_both_or_neither(self):
        # One without the other would leave Grafana serving a certificate whose key it does not have.
        if bool(self.public_certificate_secret) != bool(self.public_key_secret):
            given, missing = (("public_certificate_secret", "public_key_secret") if self.public_certificate_secret
                              else ("public_key_secret", "public_certificate_secret"))
            raise SettingsError(
                missing,
                f"{given} is set but {missing} is not: Grafana needs the certificate and its key together",
                "name both secrets (e.g. SENTINEL_GRAFANA_PUBLIC_CERT and SENTINEL_GRAFANA_PUBLIC_KEY), or neither to "
                "serve the environment CA's certificate",
            )
        return self

    @property
    def public_certificate(self) -> bool:
        """Whether Grafana serves the operator's public certificate instead of the environment CA's."""
        return self.public_certificate_secret is not None

    ha_port: Port = Field(
        9096, description="With several monitoring hosts running Grafana: its unified alerting gossip port (ha_peers); not 9094, Alertmanager's."
    )
    admin_user: Name = Field("admin", description="Grafana's admin user.")
    admin_password_secret: SecretName = Field("SENTINEL_GRAFANA_ADMIN_PASSWORD", description="Secret holding the admin password.")
    admin_previous_password_secret: SecretName = Field(
        "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD",
        description="Secret holding the admin password Grafana has, set only for the converge that applies a new "
                    "admin_password_secret (docs/grafana.md \"Rotating the admin password\"); unset otherwise.",
    )
    database: DatabaseSettings = Field(DatabaseSettings(), description="Grafana's own database.")
    rule_interval: Duration = Field(
        "30s", description="How often Grafana evaluates the catalog's rules (alerting.evaluator grafana): a multiple of 10s."
    )

    @field_validator("rule_interval")
    @classmethod
    def _grafana_scheduler_ticks(cls, value: str) -> str:
        # Grafana's rule scheduler ticks every 10s and refuses a group interval that is not a multiple of it.
        seconds = duration_seconds(value)
        if seconds < 10 or seconds % 10:
            raise ValueError(f"{value} is not a multiple of 10s: Grafana refuses the rule group. Fix: use 10s, 30s, 1m...")
        return value
    backup_token_path: TokenPath = Field(
        "/etc/grafana-backup/token", description="Where the backup job's service account token is written (once, only if missing); the backup job reads it here."
    )
    backup_token_owner: Owner = Field(
        "root:grafana-backup", description="user:group of the token file; the role creates the group as a system group if it is missing."
    )
    backup_token_mode: FileMode = Field("0640", description="Mode of the token file.")
    backup_token_lifetime_days: Int = Field(
        90, ge=16, le=365,
        description="How long the backup's service-account token lives (Grafana's secondsToLive), in days (16 to 365). "
        "Its role is Editor, the least that exports and restores what the job handles (docs/grafana.md).",
    )
    backup_token_renew_within_days: Int = Field(
        30, ge=15, le=364,
        description="A converge makes a new token (and then deletes the old one) once the current one has fewer than this "
        "many days left: more than the 14 days before GrafanaBackupTokenExpiring fires, less than the lifetime.",
    )

    @model_validator(mode="after")
    def _renewal_inside_the_lifetime(self):
        if self.backup_token_renew_within_days >= self.backup_token_lifetime_days:
            raise SettingsError(
                "backup_token_renew_within_days",
                f"{self.backup_token_renew_within_days} days is not shorter than backup_token_lifetime_days "
                f"({self.backup_token_lifetime_days}): every converge would make a new token",
                "keep the defaults (90 and 30), or a window a third of the lifetime and more than 14 days",
            )
        return self
    health_timeout: Duration = Field("90s", description="How long Grafana gets to answer /api/health on a new config before it is rolled back.")
