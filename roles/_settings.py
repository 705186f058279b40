"""The validated settings of one host: every role's block plus what all roles share.

Data flows one way: inventory + group_data -> pyinfra's merge -> `Settings` per host
-> `Environment` (roles/_environment.py) -> each role gets its block as arguments.

Adding a role's settings is one line in `Settings` below:

    jaeger: JaegerSettings = Field(JaegerSettings(), description="...")

The reference docs/settings.md is generated from these models (`python -m roles.docs`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import ipaddress

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from roles._model import Bool, Hostname, HttpUrl, Model, SettingsError, SettingsErrors
from roles.alerting.settings import AlertingSettings
from roles.backend.settings import BackendSettings
from roles.firewall.settings import FirewallSettings
from roles.grafana.settings import GrafanaSettings
from roles.grafana_backup.settings import GrafanaBackupSettings
from roles.node_exporter.settings import NodeExporterSettings
from roles.loki.settings import LokiSettings
from roles.object_store.settings import ObjectStoreSettings
from roles.otel_collector.settings import CollectorSettings, LogsSettings, TracesSettings
from roles.prometheus.settings import PrometheusSettings
from roles.retention.settings import RetentionPolicy
from roles._stores_settings import StoresSettings
from roles._tls_settings import TlsSettings
from roles.victorialogs.settings import VictoriaLogsSettings

ROLE_GROUPS = ("monitoring", "telemetry", "app")
ENVIRONMENTS = ("dev", "staging", "prod", "lab")
EnvironmentName = Literal[ENVIRONMENTS]  # type: ignore[valid-type]  # one list, above
# Validation context of preflight's second pass over a host whose blocks failed (roles/_environment.py):
# the top-level keys that failed (rules across blocks that read one of them wait), or True (all wait).
SALVAGE = "salvage"


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address. Fix: write the host's own address, e.g. 10.20.0.11") from None


IpAddress = Annotated[str, AfterValidator(_ip)]


class Settings(Model):
    """One host's settings: pyinfra's merged inventory and group data, validated."""

    environment: EnvironmentName = Field(description="The environment group the host is in (set from the inventory, not group data).")
    artifact_base_url: HttpUrl = Field(description="Where release archives are downloaded from: upstream, or the lab's mirror.")
    address: Hostname = Field(description="The address other hosts reach this one at (default: the inventory name).")
    ip: IpAddress | None = Field(
        None,
        description="The host's IP: host-scoped listeners bind it and peers' firewalls name it (default: address, when that is an IP; "
        "required when address is a name).",
    )
    systemd_hardening: Bool = Field(True, description="Apply systemd sandboxing directives to every service.")
    prometheus: PrometheusSettings = Field(PrometheusSettings(), description="Prometheus (monitoring hosts).")
    node_exporter: NodeExporterSettings = Field(NodeExporterSettings(), description="node_exporter (every host).")
    stores: StoresSettings = Field(StoresSettings(), description="Where the stores run: one named telemetry host (every telemetry host, a gateway).")
    object_store: ObjectStoreSettings = Field(ObjectStoreSettings(), description="The S3 store (the stores' host).")
    backend: BackendSettings = Field(BackendSettings(), description="The backend's environment (app hosts).")
    alerting: AlertingSettings = Field(AlertingSettings(), description="Alert delivery (monitoring hosts).")
    retention: RetentionPolicy = Field(RetentionPolicy(), description="How long logs and metrics are kept.")
    traces: TracesSettings = Field(TracesSettings(), description="The trace store (tempo or jaeger) and its retention (telemetry hosts).")
    logs: LogsSettings = Field(LogsSettings(), description="The log store (loki or victorialogs) the collector gateway exports to.")
    victorialogs: VictoriaLogsSettings = Field(VictoriaLogsSettings(), description="VictoriaLogs (telemetry hosts, logs.store: victorialogs).")
    loki: LokiSettings = Field(LokiSettings(), description="Loki (telemetry hosts, logs.store: loki).")
    otel_collector: CollectorSettings = Field(CollectorSettings(), description="The OpenTelemetry Collector: gateway on telemetry hosts, agent on app hosts.")
    grafana: GrafanaSettings = Field(GrafanaSettings(), description="Grafana (monitoring hosts).")
    grafana_backup: GrafanaBackupSettings = Field(
        GrafanaBackupSettings(), description="The Grafana backup job: export to git daily (monitoring hosts)."
    )
    firewall: FirewallSettings = Field(FirewallSettings(), description="The host firewall generated from the topology (every host).")
    tls: TlsSettings = Field(
        TlsSettings(), description="TLS and client certificates from the environment CA: their lifetime and renewal (every host, docs/tls.md)."
    )

    @model_validator(mode="before")
    @classmethod
    def _ip_from_address(cls, data: Any) -> Any:
        # The topology (roles/_topology.py) refuses a host whose address is a name and has no ip.
        if isinstance(data, dict) and "ip" not in data:
            address = str(data.get("address", "")).strip("[]")
            try:
                data = {**data, "ip": str(ipaddress.ip_address(address))}
            except ValueError:
                pass
        return data

    @model_validator(mode="after")
    def _across_blocks(self, info: ValidationInfo):
        """The rules that compare blocks, all of them, each problem reported (SettingsErrors).

        Preflight revalidates a host whose blocks failed with those blocks left at their defaults
        (context `SALVAGE`: the failed top-level keys, or True for all), to still check the rest of
        the run; a rule that reads a defaulted block would compare against a guess, so it waits.
        """
        skipped = (info.context or {}).get(SALVAGE, frozenset())
        if skipped is True:
            return self
        problems: list[SettingsError] = []
        for check, reads in (
            (self._admin_networks, {"firewall"}),
            (self._lab_only_shortcuts, {"artifact_base_url", "alerting", "grafana_backup", "backend"}),
            (self._secrets_travel_encrypted, {"alerting", "grafana"}),
            (self._buckets_exist, {"logs", "loki", "traces", "object_store"}),
            (self._s3_keys_apart, {"loki", "traces", "object_store"}),
            (self._one_writer_of_the_backup_token, {"grafana_backup", "grafana"}),
            (self._tls_stays_on, {"tls"}),
        ):
            if not reads & skipped:
                problems += check()
        SettingsErrors.raise_if_any(problems)
        return self

    def _admin_networks(self) -> list[SettingsError]:
        if self.environment != "prod":
            return []
        return [
            SettingsError("firewall.admin_networks", f"{network} opens SSH to the whole internet in prod", "list the operators' networks only")
            for network in self.firewall.admin_networks
            if ipaddress.ip_network(network).prefixlen == 0
        ]

    def _lab_only_shortcuts(self) -> list[SettingsError]:
        # Only the lab may reach its own bridge without TLS, or trust SSH host keys on first use.
        if self.environment == "lab":
            return []
        problems = []
        for key, url in (("artifact_base_url", self.artifact_base_url), *self.secret_urls()):
            if url and url.startswith("http://"):
                problems.append(SettingsError(key, f"{url!r} is plain http in {self.environment}", "use https:// (only the lab may use http)"))
        # The lab's drills cut every rule's `for`; anywhere else alerts keep the catalog's (no flapping pages).
        if self.alerting.lab_rule_for_at_most is not None:
            problems.append(SettingsError(
                "alerting.lab_rule_for_at_most",
                f"is set in {self.environment}: every alert would fire after {self.alerting.lab_rule_for_at_most} instead of its catalog `for`",
                "remove alerting.lab_rule_for_at_most (it is for the lab's drills only)",
            ))
        # Lab hosts get new SSH host keys on every `lab up`; anywhere else the git host's keys are pinned.
        if self.grafana_backup.trust_on_first_use:
            problems.append(SettingsError(
                "grafana_backup.trust_on_first_use",
                f"is on in {self.environment}",
                "pin the git host's keys in grafana_backup.known_hosts and turn trust_on_first_use off (it is for the lab only)",
            ))
        return problems

    def secret_urls(self) -> tuple[tuple[str, str | None], ...]:
        """(key, URL) of every setting a secret is sent to over HTTP: https only outside the lab.

        The secrets' own URLs (Slack webhooks, the Sentry DSN) are checked with their values
        (roles/_secrets.py); tests/unit/test_preflight.py holds every SecretUse of the placement
        table to a check of where its value goes.
        """
        return (
            ("alerting.pagerduty.url", self.alerting.pagerduty.url),  # the routing key
            ("grafana_backup.grafana_url", self.grafana_backup.grafana_url),  # the backup's token, every night
            ("backend.sentry_url", self.backend.sentry_url),  # sentry-cli's auth token
        )

    def _secrets_travel_encrypted(self) -> list[SettingsError]:
        """Passwords sent to servers named by host:port (SMTP, PostgreSQL) go over TLS outside the lab."""
        if self.environment == "lab":
            return []
        problems = []
        email = self.alerting.email
        if email.auth_username and not email.require_tls:
            problems.append(SettingsError(
                "alerting.email.require_tls",
                f"is off in {self.environment}: the SMTP password of {email.auth_username} would cross the network in clear",
                "remove require_tls (STARTTLS stays required; only the lab's SMTP stand-in speaks plain SMTP)",
            ))
        database = self.grafana.database
        if database.is_postgres and database.ssl_mode == "disable":
            problems.append(SettingsError(
                "grafana.database.ssl_mode",
                f"disable in {self.environment}: Grafana's PostgreSQL password and every dashboard would cross the network in clear",
                'use "verify-full" (the default) with the database\'s CA in the system store',
            ))
        return problems

    def _buckets_exist(self) -> list[SettingsError]:
        # The object store creates exactly object_store.buckets; a store writing elsewhere fails on the host.
        chosen = []
        if self.logs.store == "loki":
            chosen.append(("loki.bucket", self.loki.bucket))
        if self.traces.store == "tempo" and self.traces.tempo.backend == "s3":
            chosen.append(("traces.tempo.bucket", self.traces.tempo.bucket))
        return [
            SettingsError(
                key, f"bucket {bucket!r} is not one the object store creates ({', '.join(self.object_store.buckets)})",
                f"add {bucket!r} to object_store.buckets, or name one of those",
            )
            for key, bucket in chosen
            if bucket not in self.object_store.buckets
        ]

    def _s3_keys_apart(self) -> list[SettingsError]:
        # One key per consumer, each owning only its bucket; the root key only in the store's own files.
        from roles._placement import s3_accounts

        store, problems = self.object_store, []
        taken = {store.access_key_secret: "object_store.access_key_secret", store.secret_key_secret: "object_store.secret_key_secret"}
        owners: dict[str, str] = {}
        for account in s3_accounts(self):
            if account.bucket in owners:
                problems.append(SettingsError(
                    f"{account.key}.bucket", f"{account.bucket!r} is also the bucket of {owners[account.bucket]}",
                    "give each consumer its own bucket (and list it in object_store.buckets)",
                ))
            owners.setdefault(account.bucket, account.key)
            for field in ("access_key_secret", "secret_key_secret", "previous_access_key_secret"):
                name, key = getattr(account, field), f"{account.key}.{field}"
                if name in taken:
                    whose = "the store's root key" if taken[name].startswith("object_store.") else "another consumer's key"
                    problems.append(SettingsError(
                        key, f"names {name}, already {taken[name]} ({whose})",
                        f"give {account.key} its own secret, e.g. SENTINEL_S3_{account.name.upper()}_{field.removesuffix('_secret').upper()}",
                    ))
                taken.setdefault(name, key)
        return problems

    def _tls_stays_on(self) -> list[SettingsError]:
        # The roles have no plain-text mode: every listener requires a client certificate and every
        # client speaks https (roles/_tls.py). Outside dev and the lab, plain text would also carry
        # Grafana's logins, the backup token and alert payloads in clear (issue 22).
        if self.tls.enabled:
            return []
        if self.environment in ("prod", "staging"):
            problem = (f"is false in {self.environment}: without TLS, logins, tokens, alert payloads and member ids would "
                       "cross the network in clear and any host could call the listeners (and the roles have no plain-text mode)")
        else:
            problem = f"is false in {self.environment}: plain-text mode is not supported (every listener requires TLS and a client certificate)"
        return [SettingsError(
            "tls.enabled", problem,
            "remove tls.enabled (TLS stays on; docs/tls.md). To reach a listener by hand, use the operator's certificate "
            "(operator-http-config.yml in the PKI directory)",
        )]

    def _one_writer_of_the_backup_token(self) -> list[SettingsError]:
        # The Grafana role creates the backup job's token and writes it where the job reads it;
        # only without a Grafana binary (the lab) does the backup role write it from a secret.
        backup, grafana = self.grafana_backup, self.grafana
        if not backup.enabled:
            return []
        if backup.write_token and grafana.install_binary:
            return [SettingsError(
                "grafana_backup.write_token",
                "is on although the Grafana role creates the token and writes it",
                "turn grafana_backup.write_token off (it is for hosts without Grafana, like the lab)",
            )]
        if not backup.write_token and backup.token_file != grafana.backup_token_path:
            return [SettingsError(
                "grafana_backup.token_file",
                f"{backup.token_file!r} is not where the Grafana role writes the token ({grafana.backup_token_path!r})",
                "set grafana_backup.token_file and grafana.backup_token_path to the same path",
            )]
        return []
