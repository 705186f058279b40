"""Settings of the Grafana role (`grafana` group data).

Defaults are production's. Secrets are named, never given: *_secret keys name
an environment variable or a file in $SENTINEL_SECRETS_DIR; the value reaches
the host only as a 0640 root:grafana file that grafana.ini reads with
`$__file{...}`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from roles._model import AbsPath, Duration, HttpUrl, Model, Name, Port, SecretName

class SqliteDatabase(Model):
    """Grafana's own SQLite file: right for one Grafana host."""

    type: Literal["sqlite3"] = "sqlite3"
    path: AbsPath = "/var/lib/grafana/grafana.db"


class PostgresDatabase(Model):
    """An external PostgreSQL database (several Grafana hosts, or a managed DB).

    The password is a secret; grafana.ini reads it with `$__file{...}`, so the
    URL-style `url` key (which would embed it) is never rendered.
    """

    type: Literal["postgres"]
    host: str = Field(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")
    name: Name = "grafana"
    user: Name = "grafana"
    password_secret: SecretName = "SENTINEL_GRAFANA_DB_PASSWORD"
    ssl_mode: Literal["disable", "require", "verify-full"] = "verify-full"


Database = Annotated[Union[SqliteDatabase, PostgresDatabase], Field(discriminator="type")]


class GrafanaSettings(Model):
    """Grafana on the `monitoring` hosts.

    install_binary: False ONLY in the lab, where Grafana (AGPL) may not run: the
    role then creates the user, directories, grafana.ini and the provisioning
    files with their modes, but installs no binary and no unit.
    """

    install_binary: bool = True
    http_addr: str = Field(default="0.0.0.0", pattern=r"^[0-9.]+$|^\[?[0-9A-Fa-f:]+\]?$")
    http_port: Port = 3000
    # The URL users reach Grafana at; https turns on secure cookies. None:
    # http://<host address>:<http_port>/.
    root_url: HttpUrl | None = None
    admin_user: Name = "admin"
    admin_password_secret: SecretName = "SENTINEL_GRAFANA_ADMIN_PASSWORD"
    database: Database = Field(default_factory=SqliteDatabase)
    # How often Grafana evaluates the catalog's rules when alerting.evaluator is grafana.
    rule_interval: Duration = "30s"
    # The backup job's service account token (issue 14), written only if missing.
    backup_token_path: AbsPath = "/etc/grafana/secrets/backup-token"
    backup_token_owner: str = Field(default="root:root", pattern=r"^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$")
    backup_token_mode: str = Field(default="0600", pattern=r"^0[0-7]{3}$")
    health_timeout: Duration = "90s"


class StoreChoice(Model):
    """The trace and log stores Grafana links: names and query URLs (from the traces/logs settings)."""

    traces: Literal["tempo", "jaeger"]
    traces_url: HttpUrl
    logs: Literal["loki", "victorialogs"]
    logs_url: HttpUrl
