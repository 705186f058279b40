"""Preflight refuses hostile input before any host is contacted, naming the key and the fix.

The table below is issue 16's classes of bad input (and issue 15's list). Each case is
an inventory file, read by pyinfra's own loader exactly as `pyinfra <file> deploy.py`
reads it, plus the secrets in the environment; or a YAML input read by the one YAML
loader. Add a case whenever a key is added. A few cases run the real `pyinfra` CLI
to prove it stops before connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from roles import preflight
from roles._environment import REPO, environment_from_inventory, load_environment
from roles._model import SettingsError, SettingsErrors
from roles._versions import load_versions_file
from roles.alerting.catalog import CATALOG_FILE, load_catalog
from tests.environments import offline, GOOD_SECRETS, write_inventory
from tests.unit.public_cert_fixtures import chain as public_chain, other_key

HOSTS = {"monitoring": "mon1.hostile", "telemetry": "tel1.hostile", "app": "app1.hostile"}


def inventory_with(role: str = "monitoring", data: dict | None = None, extra: str = "") -> str:
    """One host per group; `data` is host data of the `role` host (host data wins over group data)."""
    lines = []
    for group, name in HOSTS.items():
        ip = {"monitoring": "10.9.0.11", "telemetry": "10.9.0.12", "app": "10.9.0.13"}[group]
        entry = (name, {"ip": ip, **data}) if group == role and data else (name, {"ip": ip})
        lines.append(f"{group} = [{entry!r}]")
    return "\n".join(lines) + "\n" + textwrap.dedent(extra)


# An enabled Grafana backup (its deploy key is then required).
BACKUP = {
    "enabled": True,
    "remote_url": "git@git.example.org:ops/grafana-backup.git",
    "known_hosts": ["git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],
}

def _operator_ca(days_left: int = 3650, ca: bool = True, key=None) -> tuple[str, str]:
    """(certificate, key) PEMs of an operator's CA ending `days_left` days from now (negative: expired)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now + dt.timedelta(days=days_left))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _ca_secrets(cert_pem: str | None, key_pem: str | None) -> dict:
    return {"SENTINEL_TLS_CA_CERT": cert_pem, "SENTINEL_TLS_CA_KEY": key_pem}


_CA, _OTHER_CA = _operator_ca(), _operator_ca()
_CA_60_DAYS = _operator_ca(60)

# Grafana's public certificate (grafana.public_certificate_secret / public_key_secret): throwaway chains made here.
_PUBLIC_SECRET_NAMES = {"public_certificate_secret": "SENTINEL_GRAFANA_PUBLIC_CERT", "public_key_secret": "SENTINEL_GRAFANA_PUBLIC_KEY"}
_PUBLIC = public_chain(("grafana.example.test",))


def _public_grafana(root_url: str | None = "https://grafana.example.test/", **extra) -> dict:
    """mon1's host data naming the two secrets, with `root_url` (None: unset, the host's address)."""
    return {"grafana": {**_PUBLIC_SECRET_NAMES, **({"root_url": root_url} if root_url else {}), **extra}}


def _public_secrets(chain_pem: str | None, key_pem: str | None) -> dict:
    return {"SENTINEL_GRAFANA_PUBLIC_CERT": chain_pem, "SENTINEL_GRAFANA_PUBLIC_KEY": key_pem}

# (id, environment, inventory body, secrets to change (None = unset), key part, fix part)
INVENTORY_CASES = [
    # --- values that would need escaping on a host ------------------------------------
    ("newline-in-path", "prod", inventory_with(data={"node_exporter": {"textfile_dir": "/var/lib/ne\nExecStartPre=/bin/sh -c id"}}), {}, "node_exporter.textfile_dir", "one line"),
    ("space-in-path", "prod", inventory_with("telemetry", {"object_store": {"data_dir": "/var/lib/versity gw"}}), {}, "object_store.data_dir", "letters, digits"),
    ("relative-path", "prod", inventory_with("telemetry", {"object_store": {"data_dir": "data"}}), {}, "object_store.data_dir", "/var/lib/"),
    ("dotdot-path", "prod", inventory_with("telemetry", {"object_store": {"metadata_dir": "/var/lib/../../etc"}}), {}, "object_store.metadata_dir", "without .."),
    ("duration-with-newline", "prod", inventory_with(data={"retention": {"prometheus": {"time": "15d\n"}}}), {}, "retention.prometheus.time", "15d"),
    ("retention-0d", "prod", inventory_with(data={"retention": {"default_period": "0d"}}), {}, "retention.default_period", "positive"),
    ("retention-minus-1d", "prod", inventory_with(data={"retention": {"default_period": "-1d"}}), {}, "retention.default_period", "30s"),
    ("retention-300y", "prod", inventory_with(data={"retention": {"default_period": "300y"}}), {}, "retention.default_period", "10y"),
    ("duration-units-out-of-order", "prod", inventory_with(data={"prometheus": {"scrape_interval": "30s1m"}}), {}, "prometheus.scrape_interval", "largest first"),
    ("prometheus-retention-1h", "prod", inventory_with(data={"retention": {"prometheus": {"time": "1h"}}}), {}, "retention.prometheus.time", "2h"),
    ("stream-period-12h", "prod", inventory_with(data={"retention": {"streams": [{"name": "s", "selector": '{stream="app"}', "period": "12h"}]}}), {}, "retention.streams[0].period", "24h"),
    ("minimums-emptied-in-prod", "prod", inventory_with(data={"retention": {"minimums": [], "streams": [{"name": "audit", "selector": '{stream="audit"}', "period": "60d"}, {"name": "security", "selector": '{stream="security"}', "period": "365d", "priority": 2}]}}), {}, "retention.streams[0].period", "365d"),
    ("pci-floor-lowered", "prod", inventory_with(data={"retention": {"minimums": [{"name": "PCI-DSS payment audit trails", "selector": '{stream="audit", category="payment"}', "at_least": "30d"}]}}), {}, "retention.minimums[0]", "90d"),
    ("scrape-interval-10m", "prod", inventory_with(data={"prometheus": {"scrape_interval": "10m"}}), {}, "prometheus.scrape_interval", "5m"),
    ("port-out-of-range", "prod", inventory_with(data={"prometheus": {"listen_port": 70000}}), {}, "prometheus.listen_port", "65535"),
    ("port-as-string", "prod", inventory_with(data={"prometheus": {"listen_port": "9090"}}), {}, "prometheus.listen_port", "int"),
    ("bool-as-string-no", "prod", inventory_with(data={"systemd_hardening": "no"}), {}, "systemd_hardening", "bool"),
    ("label-value-with-newline", "prod", inventory_with(data={"prometheus": {"external_labels": {"region": "ca\nevil: true"}}}), {}, "prometheus.external_labels.region", "one line"),
    ("label-name-injection", "prod", inventory_with(data={"prometheus": {"external_labels": {"a: b\n  c": "x"}}}), {}, "prometheus.external_labels", "letters, digits and _"),
    ("dsn-pasted-as-secret-name", "prod", inventory_with("app", {"backend": {"sentry_dsn_secret": "https://0123456789abcdef@o1.ingest.sentry.io/42"}}), {}, "backend.sentry_dsn_secret", "never paste its value"),
    ("path-traversal-secret-name", "prod", inventory_with("telemetry", {"object_store": {"access_key_secret": "../../../etc/hostname"}}), {}, "object_store.access_key_secret", "name the secret"),
    ("shell-in-region", "prod", inventory_with("telemetry", {"object_store": {"region": "us-east-1; touch /PWNED"}}), {}, "object_store.region", "letters, digits"),
    ("shell-in-unit", "prod", inventory_with("app", {"backend": {"unit": "x.service; reboot"}}), {}, "backend.unit", "sentinel-backend.service"),
    ("http-artifacts-in-prod", "prod", inventory_with(data={"artifact_base_url": "http://mirror.example.org"}), {}, "artifact_base_url", "https://"),
    ("artifact-url-without-scheme", "prod", inventory_with(data={"artifact_base_url": "github.com"}), {}, "artifact_base_url", "full URL"),
    ("http-pagerduty-in-prod", "prod", inventory_with(data={"alerting": {"pagerduty": {"enabled": True, "url": "http://events.example.org/v2/enqueue"}}}), {}, "alerting.pagerduty.url", "https://"),
    ("misspelled-key", "prod", inventory_with(data={"prometheus": {"scrape_intervall": "15s"}}), {}, "prometheus.scrape_intervall", "did you mean 'scrape_interval'?"),
    ("moved-key", "prod", inventory_with(data={"prometheus": {"retention_time": "15d"}}), {}, "prometheus.retention_time", "retention.prometheus.time"),
    # --- pyinfra's own arguments as host data (they would change every command run as root) ---
    *[
        (f"pyinfra-argument{key}", "prod", inventory_with(data={key: value}), {}, key, "only _sudo")
        for key, value in (
            ("_env", {"LD_PRELOAD": "/tmp/x.so"}), ("_shell_executable", "/tmp/sh"), ("_sudo_user", "nobody"),
            ("_ignore_errors", True), ("_continue_on_error", True), ("_success_exit_codes", [0, 1]), ("_chdir", "/tmp"),
            ("_su_user", "root"), ("_doas", True), ("_temp_dir", "/dev/shm"), ("_sudo", "yes"), ("_preserve_sudo_env", True),
        )
    ],
    ("pyinfra-argument-in-telemetry-host", "prod", inventory_with("telemetry", {"_env": {"PATH": "/tmp"}}), {}, "host tel1.hostile._env", "only _sudo"),
    # --- SSH safety outside the lab --------------------------------------------------------
    ("ssh-host-key-checking-off", "prod", inventory_with(data={"ssh_strict_host_key_checking": "off"}), {}, "ssh_strict_host_key_checking", "known_hosts"),
    ("ssh-host-key-checking-no", "staging", inventory_with(data={"ssh_strict_host_key_checking": "no"}), {}, "ssh_strict_host_key_checking", "known_hosts"),
    ("ssh-known-hosts-dev-null", "prod", inventory_with(data={"ssh_known_hosts_file": "/dev/null"}), {}, "ssh_known_hosts_file", "hosts' keys"),
    ("ssh-forward-agent", "prod", inventory_with(data={"ssh_forward_agent": True}), {}, "ssh_forward_agent", "remove it"),
    # --- a path setting may not take over a system directory ------------------------------
    ("collector-data-dir-etc", "prod", inventory_with("telemetry", {"otel_collector": {"data_dir": "/etc"}}), {}, "otel_collector.data_dir", "/var/lib"),
    ("jaeger-data-dir-var-lib", "prod", inventory_with("telemetry", {"traces": {"store": "jaeger", "jaeger": {"data_dir": "/var/lib"}}}), {}, "traces.jaeger.data_dir", "/var/lib/<component>"),
    ("backup-repo-usr-local-bin", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "repo_dir": "/usr/local/bin"}}), {}, "grafana_backup.repo_dir", "/var/lib"),
    ("victorialogs-storage-root", "prod", inventory_with("telemetry", {"logs": {"store": "victorialogs"}, "victorialogs": {"storage_path": "/"}}), {}, "victorialogs.storage_path", "/var/lib"),
    ("textfile-dir-var-lib", "prod", inventory_with(data={"node_exporter": {"textfile_dir": "/var/lib"}}), {}, "node_exporter.textfile_dir", "/var/lib"),
    ("store-metadata-srv", "prod", inventory_with("telemetry", {"object_store": {"metadata_dir": "/srv"}}), {}, "object_store.metadata_dir", "/srv"),
    ("loki-data-root-home", "prod", inventory_with("telemetry", {"loki": {"data_dir": "/root/loki"}}), {}, "loki.data_dir", "/var/lib"),
    ("tempo-data-boot", "prod", inventory_with("telemetry", {"traces": {"tempo": {"data_dir": "/boot/tempo"}}}), {}, "traces.tempo.data_dir", "/var/lib"),
    # --- a setting may not widen a service's rights ----------------------------------------
    ("collector-reads-shadow", "prod", inventory_with("app", {"otel_collector": {"log_file": "/etc/shadow"}}), {}, "otel_collector.log_file", "/var/log"),
    ("collector-log-in-var-log-itself", "prod", inventory_with("app", {"otel_collector": {"log_file": "/var/log/syslog"}}), {}, "otel_collector.log_file", "/var/log/sentinel"),
    ("collector-joins-shadow", "prod", inventory_with("app", {"otel_collector": {"log_file_group": "shadow"}}), {}, "otel_collector.log_file_group", "sentinel"),
    ("collector-joins-disk", "prod", inventory_with("app", {"otel_collector": {"log_file_group": "disk"}}), {}, "otel_collector.log_file_group", "sentinel"),
    # --- the OpenTelemetry SDK appends the signal path to OTEL_EXPORTER_OTLP_ENDPOINT --------
    *[
        (f"otlp-endpoint-ends-in-{signal.rsplit('/', 1)[1]}", "prod", inventory_with("app", {"backend": {"otlp_endpoint": f"http://tel1:4318{signal}{slash}"}}), {},
         "backend.otlp_endpoint", "give the base URL, http://tel1:4318")
        for signal, slash in (("/v1/traces", ""), ("/v1/metrics", "/"), ("/v1/logs", ""))
    ],
    ("backend-env-file-over-shadow", "prod", inventory_with("app", {"backend": {"env_file": "/etc/shadow"}}), {}, "backend.env_file", "/etc/sentinel/backend.env"),
    ("token-mode-world-readable", "prod", inventory_with(data={"grafana": {"backup_token_mode": "0666"}}), {}, "grafana.backup_token_mode", "0640"),
    ("token-mode-group-writable", "prod", inventory_with(data={"grafana": {"backup_token_mode": "0660"}}), {}, "grafana.backup_token_mode", "0640"),
    ("token-path-in-etc-ssh", "prod", inventory_with(data={"grafana": {"backup_token_path": "/etc/ssh/backup-token"}}), {}, "grafana.backup_token_path", "/etc/grafana-backup/token"),
    # --- a secret may not be sent elsewhere -------------------------------------------------
    ("secret-name-is-path", "prod", inventory_with(data={"grafana": {"admin_password_secret": "PATH"}}), {}, "grafana.admin_password_secret", ".env.example"),
    ("secret-name-is-aws-key", "prod", inventory_with("telemetry", {"object_store": {"access_key_secret": "AWS_SECRET_ACCESS_KEY"}}), {}, "object_store.access_key_secret", "SENTINEL_<NAME>"),
    ("secret-name-is-the-secrets-dir", "prod", inventory_with(data={"alerting": {"pagerduty": {"enabled": True, "routing_key_secret": "SENTINEL_SECRETS_DIR"}}}), {}, "alerting.pagerduty.routing_key_secret", ".env.example"),
    ("one-secret-two-purposes", "prod", inventory_with(data={"grafana": {"admin_password_secret": "SENTINEL_SMTP_PASSWORD"}}), {}, "grafana.admin_password_secret", "its own secret"),
    # --- values the controller can know are broken (cron and systemd would refuse them) ---
    ("backup-minute-61", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"minute": "61"}}}), {}, "grafana_backup.schedule", "minute 0-59"),
    ("backup-hour-24", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"hour": "24"}}}), {}, "grafana_backup.schedule", "hour 0-23"),
    ("backup-month-13", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"month": "13"}}}), {}, "grafana_backup.schedule", "month 1-12"),
    ("retention-timer-in-english", "prod", inventory_with("telemetry", {"logs": {"store": "victorialogs"}, "victorialogs": {"enforcement_schedule": "every day at 3"}}), {}, "victorialogs.enforcement_schedule", "systemd-analyze calendar"),
    ("retention-timer-hour-25", "prod", inventory_with("telemetry", {"logs": {"store": "victorialogs"}, "victorialogs": {"enforcement_schedule": "*-*-* 25:00:00"}}), {}, "victorialogs.enforcement_schedule", "03:17:00"),
    ("backup-token-to-another-grafana", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "grafana_url": "https://grafana.evil.example"}}), {}, "grafana_backup.grafana_url", "remove grafana_backup.grafana_url"),
    ("loki-bucket-nobody-creates", "prod", inventory_with("telemetry", {"loki": {"bucket": "logs"}}), {}, "loki.bucket", "object_store.buckets"),
    ("tempo-bucket-nobody-creates", "prod", inventory_with("telemetry", {"traces": {"tempo": {"bucket": "traces"}}}), {}, "traces.tempo.bucket", "object_store.buckets"),
    ("grafana-interval-15s", "prod", inventory_with(data={"grafana": {"rule_interval": "15s"}}), {}, "grafana.rule_interval", "10s"),
    ("git-branch-with-dotdot", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "branch": "main..x"}}), {}, "grafana_backup.branch", "backups/prod"),
    ("git-branch-lock", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "branch": "main.lock"}}), {}, "grafana_backup.branch", "backups/prod"),
    ("collector-memory-beyond-uint32", "prod", inventory_with("telemetry", {"otel_collector": {"memory_limit_mib": 2**40}}), {}, "otel_collector.memory_limit_mib", "1048576"),
    ("collector-batch-beyond-uint32", "prod", inventory_with("telemetry", {"otel_collector": {"batch_size": 2**32}}), {}, "otel_collector.batch_size", "4294967295"),
    ("collector-queue-beyond-int64", "prod", inventory_with("telemetry", {"otel_collector": {"queue_size": 2**64}}), {}, "otel_collector.queue_size", "10000"),
    ("backup-known-hosts-for-another-host", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "known_hosts": ["git.other.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}}), {}, "grafana_backup", "ssh-keyscan -t ed25519 git.example.org"),
    ("backup-known-hosts-wrong-port", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "remote_url": "ssh://git@git.example.org:2222/ops/b.git"}}), {}, "grafana_backup", "-p 2222"),
    ("backup-token-over-http-in-prod", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "grafana_url": "http://grafana.example.org"}}), {}, "grafana_backup.grafana_url", "https://"),
    ("heartbeat-url-over-http", "prod", inventory_with(), {"SENTINEL_HEARTBEAT_URL": "http://hc-ping.com/0c6e1f3a"}, "alerting.heartbeat.url_secret", "ping URL"),
    ("heartbeat-url-with-a-password", "staging", inventory_with(), {"SENTINEL_HEARTBEAT_URL": "https://ops:hunter2@hc-ping.com/0c6e1f3a"}, "alerting.heartbeat.url_secret", "ping URL"),
    # --- issue 23, round two, continued: every class at least twice -------------------------
    # weak SSH outside the lab
    ("ssh-host-key-checking-false-in-dev", "dev", inventory_with(data={"ssh_strict_host_key_checking": False}), {}, "ssh_strict_host_key_checking", "known_hosts"),
    ("ssh-forward-agent-on-app-host", "staging", inventory_with("app", {"ssh_forward_agent": True}), {}, "host app1.hostile.ssh_forward_agent", "remove it"),
    # supplementary groups
    ("collector-joins-adm", "prod", inventory_with("app", {"otel_collector": {"log_file_group": "adm"}}), {}, "otel_collector.log_file_group", "sentinel"),
    ("collector-joins-root", "prod", inventory_with("app", {"otel_collector": {"log_file_group": "root"}}), {}, "otel_collector.log_file_group", "sentinel"),
    # secret names
    ("secret-name-is-a-ci-token", "prod", inventory_with(data={"alerting": {"slack_critical": {"channel": "#critical-alerts", "webhook_url_secret": "GITHUB_TOKEN"}}}), {}, "alerting.slack_critical.webhook_url_secret", ".env.example"),
    ("secret-name-is-home", "prod", inventory_with("app", {"backend": {"sentry_auth_token_secret": "HOME"}}), {}, "backend.sentry_auth_token_secret", "SENTINEL_<NAME>"),
    ("one-secret-for-s3-and-grafana", "prod", inventory_with(data={"grafana": {"admin_password_secret": "SENTINEL_S3_SECRET_KEY"}}), {}, "host tel1.hostile.object_store.secret_key_secret", "its own secret"),
    # modes of secret files
    ("token-mode-other-readable", "prod", inventory_with(data={"grafana": {"backup_token_mode": "0644"}}), {}, "grafana.backup_token_mode", "0640"),
    ("token-mode-setuid", "prod", inventory_with(data={"grafana": {"backup_token_mode": "4640"}}), {}, "grafana.backup_token_mode", "0640"),
    # secret URLs: https outside the lab, the topology's destination where it has one
    ("sentry-cli-token-over-http", "prod", inventory_with("app", {"backend": {"sentry_url": "http://sentry.example.org"}}), {}, "backend.sentry_url", "https://"),
    ("sentry-dsn-over-http", "prod", inventory_with(), {"SENTRY_DSN": "http://0123456789abcdef@sentry.example.org/42"}, "backend.sentry_dsn_secret", "https:// DSN"),
    ("smtp-password-without-tls", "prod", inventory_with(data={"alerting": {"email": {"require_tls": False}}}), {}, "alerting.email.require_tls", "STARTTLS"),
    ("grafana-db-password-in-clear", "staging", inventory_with(data={"grafana": {"database": {"type": "postgres", "host": "db.example.org:5432", "ssl_mode": "disable"}}}), {}, "grafana.database.ssl_mode", "verify-full"),
    ("backup-pushes-past-the-topologys-sshd", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "remote_url": "ssh://git@tel1.hostile:2222/srv/git/b.git", "known_hosts": ["[tel1.hostile]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}}), {}, "grafana_backup.remote_url", "firewall.ssh_port"),
    ("backup-token-to-the-right-host-wrong-port", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "grafana_url": "https://mon1.hostile:3443"}}), {}, "grafana_backup.grafana_url", "remove grafana_backup.grafana_url"),
    ("pagerduty-url-with-a-password", "prod", inventory_with(data={"alerting": {"pagerduty": {"enabled": True, "url": "https://ops:hunter2@events.example.org/v2/enqueue"}}}), {}, "alerting.pagerduty.url", "full URL"),
    # cron fields
    ("backup-day-of-month-32", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"day_of_month": "32"}}}), {}, "grafana_backup.schedule", "day of month 1-31"),
    ("backup-step-zero", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"minute": "*/0"}}}), {}, "grafana_backup.schedule", "minute 0-59"),
    ("backup-minute-words", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "schedule": {"minute": "every"}}}), {}, "grafana_backup.schedule.minute", "*/6"),
    # calendar specs
    ("retention-timer-minute-61", "prod", inventory_with("telemetry", {"logs": {"store": "victorialogs"}, "victorialogs": {"enforcement_schedule": "*-*-* 03:61:00"}}), {}, "victorialogs.enforcement_schedule", "systemd-analyze calendar"),
    ("retention-timer-unknown-weekday", "prod", inventory_with("telemetry", {"logs": {"store": "victorialogs"}, "victorialogs": {"enforcement_schedule": "Funday *-*-* 03:00"}}), {}, "victorialogs.enforcement_schedule", "03:17:00"),
    # IPv6 and host:port rendering
    ("ipv6-ip-in-brackets", "prod", inventory_with(data={"ip": "[fd00::11]"}), {}, "host mon1.hostile.ip", "10.20.0.11"),
    ("ipv6-address-with-zone", "prod", inventory_with(data={"address": "fe80::1%eth0"}), {}, "host mon1.hostile.address", "10.0.0.11"),
    ("ipv6-smarthost-without-brackets", "prod", inventory_with(data={"alerting": {"email": {"smarthost": "fd00::25:587"}}}), {}, "alerting.email.smarthost", "host:port"),
    ("ipv6-database-without-brackets", "prod", inventory_with(data={"grafana": {"database": {"type": "postgres", "host": "fd00::5:5432"}}}), {}, "grafana.database.host", "host:port"),
    ("ipv6-url-without-brackets", "prod", inventory_with(data={"alerting": {"grafana_url": "https://fd00::11:3000"}}), {}, "alerting.grafana_url", "full URL"),
    ("ipv6-admin-network-host-bits", "prod", inventory_with(data={"firewall": {"admin_networks": ["fd00::1/64"]}}), {}, "firewall.admin_networks", "/24"),
    # two services on one port (the topology)
    ("port-prometheus-on-node-exporter", "prod", inventory_with(data={"prometheus": {"listen_port": 9100}}), {}, "host mon1.hostile", "prometheus.listen_port"),
    ("port-alertmanager-on-grafana", "prod", inventory_with(data={"alerting": {"listen_port": 3000}}), {}, "host mon1.hostile", "grafana.http_port"),
    ("port-loki-on-the-gateway", "prod", inventory_with("telemetry", {"loki": {"http_port": 4318}}), {}, "host tel1.hostile", "otel_collector.grpc_port / http_port"),
    ("port-backend-on-collector-metrics", "prod", inventory_with("app", {"backend": {"port": 8889}}), {}, "host app1.hostile", "backend.port"),
    ("port-sshd-on-prometheus", "prod", inventory_with(data={"firewall": {"ssh_port": 9090, "admin_networks": ["10.20.250.0/24"]}}), {}, "host mon1.hostile", "firewall.ssh_port"),
    # buckets
    ("loki-bucket-dropped-from-the-store", "prod", inventory_with("telemetry", {"object_store": {"buckets": ["tempo"]}}), {}, "loki.bucket", "object_store.buckets"),
    # S3 keys (issue 22): one key per consumer, each owning only its bucket; the root key only in the store's files
    ("s3-loki-on-the-root-key", "prod", inventory_with("telemetry", {"loki": {"access_key_secret": "SENTINEL_S3_ACCESS_KEY"}}), {}, "loki.access_key_secret", "its own secret"),
    ("s3-tempo-on-the-root-secret", "prod", inventory_with("telemetry", {"traces": {"tempo": {"secret_key_secret": "SENTINEL_S3_SECRET_KEY"}}}), {}, "traces.tempo.secret_key_secret", "SENTINEL_S3_TEMPO_SECRET_KEY"),
    ("s3-tempo-shares-lokis-key", "prod", inventory_with("telemetry", {"traces": {"tempo": {"secret_key_secret": "SENTINEL_S3_LOKI_SECRET_KEY"}}}), {}, "traces.tempo.secret_key_secret", "its own secret"),
    ("s3-one-bucket-two-consumers", "prod", inventory_with("telemetry", {"traces": {"tempo": {"bucket": "loki"}}}), {}, "traces.tempo.bucket", "its own bucket"),
    ("s3-consumer-key-unset", "prod", inventory_with(), {"SENTINEL_S3_LOKI_ACCESS_KEY": None}, "loki.access_key_secret", "export SENTINEL_S3_LOKI_ACCESS_KEY"),
    ("s3-consumer-secret-unset", "prod", inventory_with(), {"SENTINEL_S3_TEMPO_SECRET_KEY": None}, "traces.tempo.secret_key_secret", "export SENTINEL_S3_TEMPO_SECRET_KEY"),
    ("s3-access-key-not-an-id", "prod", inventory_with(), {"SENTINEL_S3_TEMPO_ACCESS_KEY": "tempo/key?x=1"}, "traces.tempo.access_key_secret", "openssl rand"),
    # A two-phase rotation's previous key id: another id than the new one, and not another account's.
    ("s3-previous-is-the-current-key", "prod", inventory_with(), {"SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": GOOD_SECRETS["SENTINEL_S3_LOKI_ACCESS_KEY"]},
     "loki.previous_access_key_secret", "a new key id"),
    ("s3-previous-is-tempos-key", "prod", inventory_with(), {"SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": GOOD_SECRETS["SENTINEL_S3_TEMPO_ACCESS_KEY"]},
     "loki.previous_access_key_secret", "previous access key id there"),
    ("s3-previous-not-an-id", "prod", inventory_with(), {"SENTINEL_S3_TEMPO_PREVIOUS_ACCESS_KEY": "tempo/old?x=1"},
     "traces.tempo.previous_access_key_secret", "openssl rand"),
    # Go integer ranges
    ("collector-spike-beyond-limit-range", "prod", inventory_with("telemetry", {"otel_collector": {"memory_spike_limit_mib": 2**40}}), {}, "otel_collector.memory_spike_limit_mib", "1048576"),
    ("loki-streams-beyond-int64", "prod", inventory_with("telemetry", {"loki": {"max_global_streams_per_user": 2**63}}), {}, "loki.max_global_streams_per_user", "1000000"),
    ("backup-timeout-beyond-int32", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "timeout_seconds": 2**31}}), {}, "grafana_backup.timeout_seconds", "600"),
    # Grafana intervals
    ("grafana-interval-5s", "prod", inventory_with(data={"grafana": {"rule_interval": "5s"}}), {}, "grafana.rule_interval", "10s"),
    ("grafana-interval-1m5s", "prod", inventory_with(data={"grafana": {"rule_interval": "1m5s"}}), {}, "grafana.rule_interval", "30s"),
    # git refs
    ("git-branch-leading-dash", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "branch": "-f"}}), {}, "grafana_backup.branch", "backups/prod"),
    ("git-branch-reflog", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "branch": "main@{1}"}}), {}, "grafana_backup.branch", "backups/prod"),
    ("git-branch-space", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "branch": "back ups"}}), {}, "grafana_backup.branch", "backups/prod"),
    # --- the inventory itself ----------------------------------------------------------
    ("unknown-group", "prod", inventory_with(extra='loggers = ["log1.hostile"]\n'), {}, "loggers", "monitoring, telemetry, app"),
    ("host-in-two-environments", "prod", inventory_with(extra='staging = ["mon1.hostile"]\n'), {}, "host mon1.hostile.groups", "exactly one"),
    ("host-in-two-inventory-files", "prod", inventory_with(extra='monitoring = ["mon1.staging.sentinel.internal"]\n'), {}, "host mon1.staging.sentinel.internal", "one inventory file"),
    ("duplicate-addresses", "prod", inventory_with(extra='app = [("app1.hostile", {"address": "tel1.hostile"})]\n'), {}, "address", "its own address"),
    ("unknown-ssh-key", "prod", inventory_with(data={"ssh_usr": "root"}), {}, "ssh_usr", "ssh_user"),
    ("key-set-by-two-groups", "prod", inventory_with(extra='app = (["app1.hostile"], {"backend": {"port": 4000}})\n'), {}, "host app1.hostile.backend", "one group"),
    ("group-without-hosts", "prod", "monitoring = ['mon1.hostile']\ntelemetry = ['tel1.hostile']\n", {}, "inventory:app", "add at least one host"),
    # --- secrets -------------------------------------------------------------------------
    ("empty-env-secret", "prod", inventory_with(), {"SENTINEL_S3_ACCESS_KEY": ""}, "object_store.access_key_secret", "unset it"),
    ("unset-secret", "prod", inventory_with(), {"SENTINEL_SMTP_PASSWORD": None}, "alerting.email.auth_password_secret", "export SENTINEL_SMTP_PASSWORD"),
    ("secret-with-newline", "prod", inventory_with(), {"SENTINEL_S3_SECRET_KEY": "abc\nLD_PRELOAD=/tmp/x.so"}, "object_store.secret_key_secret", "one line"),
    ("slack-webhook-http", "prod", inventory_with(), {"SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": "http://hooks.slack.com/services/T1/B1/abc"}, "alerting.slack_critical.webhook_url_secret", "Incoming Webhooks"),
    ("slack-webhook-other-host", "prod", inventory_with(), {"SENTINEL_SLACK_ALERTS_WEBHOOK_URL": "https://hooks.evil.example/services/T1/B1/abc"}, "alerting.slack_warning.webhook_url_secret", "Incoming Webhooks"),
    ("slack-webhook-todo", "staging", inventory_with(), {"SENTINEL_SLACK_ALERTS_WEBHOOK_URL": "TODO"}, "alerting.slack_warning.webhook_url_secret", "Incoming Webhooks"),
    ("pagerduty-key-short", "prod", inventory_with(), {"SENTINEL_PAGERDUTY_ROUTING_KEY": "abc123"}, "alerting.pagerduty.routing_key_secret", "Integration Key"),
    ("pagerduty-key-upper-case", "prod", inventory_with(), {"SENTINEL_PAGERDUTY_ROUTING_KEY": "0123456789ABCDEF0123456789ABCDEF"}, "alerting.pagerduty.routing_key_secret", "Integration Key"),
    ("sentry-dsn-not-a-dsn", "prod", inventory_with(), {"SENTRY_DSN": "TODO"}, "backend.sentry_dsn_secret", "Client Keys"),
    ("backup-deploy-key-unset", "prod", inventory_with(data={"grafana_backup": BACKUP}), {"SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY": None}, "grafana_backup.deploy_key_secret", "export SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY"),
    ("backup-deploy-key-not-a-key", "prod", inventory_with(data={"grafana_backup": BACKUP}), {"SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"}, "grafana_backup.deploy_key_secret", "ssh-keygen"),
    ("backup-trust-on-first-use-in-prod", "prod", inventory_with(data={"grafana_backup": {**BACKUP, "known_hosts": [], "trust_on_first_use": True}}), {}, "grafana_backup.trust_on_first_use", "known_hosts"),
    # --- TLS (issue 22, "Bad input"): the lifetime, the renewal window, TLS off, the operator's CA ------
    ("tls-lifetime-0", "prod", inventory_with(data={"tls": {"lifetime_days": 0}}), {}, "tls.lifetime_days", "1 or more"),
    ("tls-lifetime-398", "prod", inventory_with("telemetry", {"tls": {"lifetime_days": 398}}), {}, "host tel1.hostile.tls.lifetime_days", "397 or less"),
    ("tls-window-as-long-as-the-lifetime", "prod", inventory_with("app", {"tls": {"renew_within_days": 30}}), {}, "tls.renew_within_days", "below tls.lifetime_days"),
    ("tls-window-longer-than-the-lifetime", "staging", inventory_with(data={"tls": {"lifetime_days": 14, "renew_within_days": 20}}), {}, "tls.renew_within_days", "below tls.lifetime_days"),
    ("tls-window-0", "dev", inventory_with(data={"tls": {"renew_within_days": 0}}), {}, "tls.renew_within_days", "1 or more"),
    ("tls-off-in-prod", "prod", inventory_with(data={"tls": {"enabled": False}}), {}, "tls.enabled", "remove tls.enabled"),
    ("tls-off-in-staging", "staging", inventory_with("telemetry", {"tls": {"enabled": False}}), {}, "tls.enabled", "remove tls.enabled"),
    ("tls-off-in-dev", "dev", inventory_with("app", {"tls": {"enabled": False}}), {}, "tls.enabled", "remove tls.enabled"),
    ("tls-extra-name", "prod", inventory_with(data={"tls": {"dns_names": ["grafana.example.org"]}}), {}, "tls.dns_names", "known keys"),
    ("tls-ca-key-of-another-ca", "prod", inventory_with(), _ca_secrets(_CA[0], _OTHER_CA[1]), "SENTINEL_TLS_CA_KEY", "belongs together"),
    ("tls-ca-expired", "prod", inventory_with(), _ca_secrets(*_operator_ca(-1)), "SENTINEL_TLS_CA_CERT", "renew the CA"),
    ("tls-ca-ends-inside-the-default-lifetime", "prod", inventory_with(), _ca_secrets(*_operator_ca(20)), "SENTINEL_TLS_CA_CERT", "renew the CA"),
    ("tls-ca-ends-inside-a-hosts-lifetime", "prod", inventory_with("app", {"tls": {"lifetime_days": 90}}), _ca_secrets(*_CA_60_DAYS), "SENTINEL_TLS_CA_CERT", "lower tls.lifetime_days"),
    ("tls-ca-is-a-leaf", "staging", inventory_with(), _ca_secrets(*_operator_ca(ca=False)), "SENTINEL_TLS_CA_CERT", "not a leaf's"),
    ("tls-ca-half-given", "prod", inventory_with(), _ca_secrets(_CA[0], None), "SENTINEL_TLS_CA_KEY", "set both"),
    # The operator's CA rollover: the certificates trusted beside it (SENTINEL_TLS_ALSO_TRUSTED_CA).
    ("tls-also-trusted-not-pem", "prod", inventory_with(), {**_ca_secrets(*_CA), "SENTINEL_TLS_ALSO_TRUSTED_CA": "TODO paste the old CA"},
     "SENTINEL_TLS_ALSO_TRUSTED_CA", "no key"),
    ("tls-also-trusted-is-a-leaf", "prod", inventory_with(), {**_ca_secrets(*_CA), "SENTINEL_TLS_ALSO_TRUSTED_CA": _operator_ca(ca=False)[0]},
     "SENTINEL_TLS_ALSO_TRUSTED_CA", "only CA certificates"),
    ("tls-also-trusted-is-the-current-ca", "prod", inventory_with(), {**_ca_secrets(*_CA), "SENTINEL_TLS_ALSO_TRUSTED_CA": _CA[0]},
     "SENTINEL_TLS_ALSO_TRUSTED_CA", "the other CA of the rollover"),
    ("tls-also-trusted-shares-the-subject", "prod", inventory_with(), {**_ca_secrets(*_CA), "SENTINEL_TLS_ALSO_TRUSTED_CA": _OTHER_CA[0]},
     "SENTINEL_TLS_ALSO_TRUSTED_CA", "a subject of its own"),
    ("tls-ca-key-not-pem", "prod", inventory_with(), _ca_secrets(_CA[0], "hunter2-not-a-pem-key"), "SENTINEL_TLS_CA_KEY", "without a passphrase"),
    ("tls-ca-cert-not-pem", "dev", inventory_with(), _ca_secrets("TODO paste the CA", _CA[1]), "SENTINEL_TLS_CA_CERT", "BEGIN CERTIFICATE"),
    ("tls-ca-ed25519", "prod", inventory_with(), _ca_secrets(*_operator_ca(key=__import__("cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]).Ed25519PrivateKey.generate())), "SENTINEL_TLS_CA_KEY", "RSA key"),
    # --- Grafana's public certificate (issue 22): both secrets or neither, a pair that serves root_url's host now ---
    ("grafana-public-cert-without-its-key", "prod", inventory_with(data={"grafana": {"public_certificate_secret": "SENTINEL_GRAFANA_PUBLIC_CERT"}}), {}, "grafana.public_key_secret", "name both secrets"),
    ("grafana-public-key-without-its-cert", "staging", inventory_with(data={"grafana": {"public_key_secret": "SENTINEL_GRAFANA_PUBLIC_KEY"}}), {}, "grafana.public_certificate_secret", "or neither"),
    ("grafana-public-cert-named-but-unset", "prod", inventory_with(data=_public_grafana()), _public_secrets(None, _PUBLIC.key_pem), "grafana.public_certificate_secret", "export SENTINEL_GRAFANA_PUBLIC_CERT"),
    ("grafana-public-one-secret-for-both", "prod", inventory_with(data=_public_grafana(public_key_secret="SENTINEL_GRAFANA_PUBLIC_CERT")), _public_secrets(_PUBLIC.chain_pem, None), "grafana.public_key_secret", "its own secret"),
    ("grafana-public-cert-not-pem", "prod", inventory_with(data=_public_grafana()), _public_secrets("TODO paste the chain", _PUBLIC.key_pem), "grafana.public_certificate_secret", "BEGIN CERTIFICATE"),
    ("grafana-public-chain-holds-the-key", "prod", inventory_with(data=_public_grafana()), _public_secrets(_PUBLIC.chain_pem + _PUBLIC.key_pem, _PUBLIC.key_pem), "grafana.public_certificate_secret", "key in its own secret"),
    ("grafana-public-key-of-another-cert", "prod", inventory_with(data=_public_grafana()), _public_secrets(_PUBLIC.chain_pem, other_key()), "grafana.public_key_secret", "the key the certificate was issued for"),
    ("grafana-public-chain-in-reverse", "prod", inventory_with(data=_public_grafana()), _public_secrets("".join(reversed(["-----BEGIN CERTIFICATE-----" + b for b in _PUBLIC.chain_pem.split("-----BEGIN CERTIFICATE-----")[1:]])), _PUBLIC.key_pem), "grafana.public_key_secret", "server's own certificate first"),
    ("grafana-public-cert-expired", "prod", inventory_with(data=_public_grafana()), _public_secrets(*(lambda p: (p.chain_pem, p.key_pem))(public_chain(starts_in_days=-100, ends_in_days=-1))), "grafana.public_certificate_secret", "renew the certificate"),
    ("grafana-public-cert-not-yet-valid", "prod", inventory_with(data=_public_grafana()), _public_secrets(*(lambda p: (p.chain_pem, p.key_pem))(public_chain(starts_in_days=2))), "grafana.public_certificate_secret", "controller's clock"),
    ("grafana-public-cert-for-another-name", "prod", inventory_with(data=_public_grafana("https://dashboards.example.test/")), _public_secrets(_PUBLIC.chain_pem, _PUBLIC.key_pem), "grafana.public_certificate_secret", "give a certificate for dashboards.example.test"),
    ("grafana-public-cert-root-url-unset", "prod", inventory_with(data=_public_grafana(None)), _public_secrets(_PUBLIC.chain_pem, _PUBLIC.key_pem), "grafana.public_certificate_secret", "give a certificate for mon1.hostile"),
    ("grafana-public-wildcard-one-label-only", "prod", inventory_with(data=_public_grafana("https://a.grafana.example.test/")), _public_secrets(*(lambda p: (p.chain_pem, p.key_pem))(public_chain(("*.example.test",)))), "grafana.public_certificate_secret", "a.grafana.example.test"),
    ("grafana-public-cert-without-names", "prod", inventory_with(data=_public_grafana()), _public_secrets(*(lambda p: (p.chain_pem, p.key_pem))(public_chain(()))), "grafana.public_certificate_secret", "set grafana.root_url"),
    ("grafana-public-cert-two-names-for-two-grafanas", "prod", inventory_with(extra=textwrap.dedent(f"""
        monitoring = [("mon1.hostile", {{"ip": "10.9.0.11", "grafana": {{**{_public_grafana()["grafana"]!r}, "database": {{"type": "postgres", "host": "db.example.test:5432"}}}}}}),
                      ("mon2.hostile", {{"ip": "10.9.0.14", "grafana": {{**{_public_grafana("https://grafana2.example.test/")["grafana"]!r}, "database": {{"type": "postgres", "host": "db.example.test:5432"}}}}}})]
    """)), _public_secrets(*(lambda p: (p.chain_pem, p.key_pem))(public_chain(("grafana.example.test", "grafana2.example.test")))), "grafana.public_certificate_secret", "same grafana.public_certificate_secret"),
]


@pytest.fixture
def good_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path / "secrets"))
    (tmp_path / "secrets").mkdir()
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTRY_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(preflight, "_validated", {})
    return tmp_path / "secrets"


def _set_secrets(monkeypatch, changes: dict) -> None:
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_the_table_is_big_enough():
    assert len(INVENTORY_CASES) + len(YAML_CASES) >= 40


def test_good_inventories_pass(good_secrets, tmp_path):
    for env in ("dev", "staging", "prod"):
        preflight.preflight(write_inventory(tmp_path, env, inventory_with()))


def test_sudo_is_the_one_pyinfra_argument_host_data_may_set(good_secrets, tmp_path):
    """Connecting as a user that sudo makes root is a real need; every other argument is refused."""
    preflight.preflight(write_inventory(tmp_path, "prod", inventory_with(data={"_sudo": True})))


@pytest.mark.parametrize("case", INVENTORY_CASES, ids=[c[0] for c in INVENTORY_CASES])
def test_hostile_inventory_is_refused(case, good_secrets, monkeypatch, tmp_path):
    _, env, body, secrets, key_part, fix_part = case
    _set_secrets(monkeypatch, secrets)
    path = write_inventory(tmp_path, env, body)
    with pytest.raises(SettingsError) as err:
        preflight.preflight(path)
    # Preflight reports every problem of the run: this case's is one of them, key and fix together.
    assert any(key_part in p.key and fix_part in p.fix for p in SettingsErrors.of(err.value)), str(err.value)
    for value in secrets.values():  # a refused secret is never echoed
        if value and len(value) > 4:
            assert value not in str(err.value)


def test_a_secret_file_with_two_lines_is_refused(good_secrets, monkeypatch, tmp_path):
    monkeypatch.delenv("SENTINEL_S3_SECRET_KEY")
    (good_secrets / "SENTINEL_S3_SECRET_KEY").write_text("secret\nLD_PRELOAD=/tmp/x.so\n")
    with pytest.raises(SettingsError, match="holds a newline") as err:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    assert "LD_PRELOAD" not in str(err.value)


def test_an_empty_env_var_does_not_fall_back_to_a_stale_file(good_secrets, monkeypatch, tmp_path):
    (good_secrets / "SENTINEL_S3_ACCESS_KEY").write_text("stale-value\n")
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY", "")
    with pytest.raises(SettingsError, match="set but empty"):
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))


def test_a_group_data_file_no_group_uses_is_refused(good_secrets, tmp_path):
    """pyinfra also reads group_data/ next to the inventory file; a misspelled file there applies to nobody."""
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "monitorng.py").write_text('prometheus = {"scrape_interval": "5s"}\n')
    with pytest.raises(SettingsError) as err:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    assert err.value.key == "group_data/monitorng.py"
    assert "monitoring.py" in err.value.fix


def _lab_secrets(monkeypatch, directory) -> None:
    """The secret files `python -m lab up` writes (lab/secrets.py), generated into `directory`."""
    import lab.secrets

    monkeypatch.setattr(lab.secrets, "SECRETS_DIR", directory)
    lab.secrets.ensure_secrets()


def lab_inventory() -> str:
    """The three hosts in the lab environment. The lab's group data names its stores' host `tel1`
    (group_data/lab.py); here the telemetry host is tel1.hostile, so every host's data names that one."""
    stores = {"mode": "single", "host": HOSTS["telemetry"]}
    ips = {"monitoring": "10.9.0.11", "telemetry": "10.9.0.12", "app": "10.9.0.13"}
    lines = [f"{group} = [{(name, {'ip': ips[group], 'stores': stores})!r}]" for group, name in HOSTS.items()]
    return "\n".join(lines) + f"\nlab = {sorted(HOSTS.values())!r}\n"


def test_the_lab_accepts_its_stand_in_webhooks(good_secrets, monkeypatch, tmp_path):
    _lab_secrets(monkeypatch, good_secrets)  # the Grafana backup's deploy key and token (the lab enables it)
    monkeypatch.setenv("SENTINEL_SLACK_CRITICAL_WEBHOOK_URL", "http://10.213.0.1:9101/services/TSENTINELLAB/BCRITICAL/abc")
    preflight.preflight(write_inventory(tmp_path, "lab", lab_inventory()))


def test_the_lab_passes_preflight_with_the_secrets_it_generates(good_secrets, monkeypatch, tmp_path):
    """Every secret the lab needs, from lab/secrets.py's files alone: its multi-line deploy key included."""
    from roles._secrets import SECRETS

    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    _lab_secrets(monkeypatch, good_secrets)
    assert (good_secrets / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY").read_text().count("\n") > 3
    environment, secrets = preflight.preflight(
        write_inventory(tmp_path, "lab", lab_inventory())
    )
    assert {"SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "SENTINEL_GRAFANA_BACKUP_TOKEN"} <= set(secrets)


# --- YAML inputs: versions.yml and the alert catalog ------------------------------------

VERSIONS = yaml.safe_load((REPO / "files" / "versions.yml").read_text())


def _versions(component: str = "prometheus", **changes) -> str:
    document = {name: dict(entry) for name, entry in VERSIONS.items()}
    document[component].update(changes)
    return yaml.safe_dump(document, sort_keys=False)


CATALOG = CATALOG_FILE.read_text()

# (id, file name, text, key part, fix part)
YAML_CASES = [
    ("versions-duplicate-key", "versions.yml", _versions() + "prometheus:\n  version: 9.9.9\n", "prometheus", "keep one"),
    ("versions-duplicate-inner-key", "versions.yml", "node_exporter:\n  version: 1.12.1\n  version: 1.0.0\n", "version", "keep one"),
    ("versions-sha256-short", "versions.yml", _versions(sha256={"amd64": "abc123"}), "prometheus.sha256.amd64", "64"),
    ("versions-binary-traversal", "versions.yml", _versions(binaries=["../../bin/sh"]), "prometheus.binaries[0]", "never .."),
    ("versions-archive-dir-subshell", "versions.yml", _versions(archive_dir="$(touch /PWNED)"), "prometheus.archive_dir", "$"),
    ("versions-archive-dir-traversal", "versions.yml", _versions(archive_dir="../../etc"), "prometheus.archive_dir", "never .."),
    ("versions-http-in-prod", "versions.yml", _versions(url="http://example.org/p/{version}/p-{version}.tar.gz"), "prometheus.url", "https://"),
    ("versions-release-tag-subshell", "versions.yml", _versions(release_tag="$(id)"), "prometheus.release_tag", "v1.75.0"),
    ("versions-archive-name-traversal", "versions.yml", _versions(archive_names={"promtool": "../../../bin/sh"}), "prometheus.archive_names.promtool", "never .."),
    ("versions-latest", "versions.yml", _versions(version="latest"), "prometheus.version", "exact release"),
    ("versions-missing-component", "versions.yml", yaml.safe_dump({k: v for k, v in VERSIONS.items() if k != "alertmanager"}), "alertmanager", "pin alertmanager"),
    ("versions-empty", "versions.yml", "", "versions.yml", "one `<component>:` entry"),
    ("versions-not-yaml", "versions.yml", "prometheus: [unclosed\n", "versions.yml", "YAML syntax"),
    ("catalog-duplicate-severity", "catalog.yml", CATALOG.replace("severity: critical\n", "severity: critical\n    severity: info\n", 1), "severity", "keep one"),
    ("catalog-runbook-escapes-repo", "catalog.yml", CATALOG.replace("runbook: docs/runbooks/backend-down.md", "runbook: ../../etc/passwd", 1), "backend-down.runbook", "docs/runbooks/"),
    ("catalog-runbook-dotdot", "catalog.yml", CATALOG.replace("runbook: docs/runbooks/backend-down.md", "runbook: docs/../../../etc/passwd", 1), "backend-down.runbook", "docs/runbooks/"),
]


@pytest.mark.parametrize("case", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_hostile_yaml_is_refused(case, tmp_path):
    _, name, text, key_part, fix_part = case
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        if name == "versions.yml":
            load_versions_file(path, "prod")
        else:
            load_catalog(path)
    assert key_part in err.value.key, str(err.value)
    assert fix_part in err.value.fix, str(err.value)


# --- dashboards and alert links (checked with the catalog, in preflight) ----------------------

def _dashboards(**extra: str | None) -> dict[str, str]:
    """The committed dashboards' sources, with files added (a uid) or removed (None)."""
    import json

    from roles.grafana.provisioning import dashboard_sources

    sources = dashboard_sources()
    for name, uid in extra.items():
        path = name.replace("__", "/") + ".json"
        if uid is None:
            sources.pop(path)
        else:
            sources[path] = json.dumps({"uid": uid, "title": name})
    return sources


def _linked(dashboard: str):
    """The catalog with its first dashboard-linking alert pointed at `dashboard`."""
    alerts = load_catalog()
    i = next(i for i, a in enumerate(alerts) if a.dashboard and a.dashboard.startswith("/d/"))
    return (*alerts[:i], alerts[i].model_copy(update={"dashboard": dashboard}), *alerts[i + 1 :])


# (id, alerts (None = the catalog), dashboard sources (None = the committed ones), key part, fix part)
DASHBOARD_CASES = [
    ("dashboard-uid-twice", None, _dashboards(copy="sentinel-business"), "files/grafana/dashboards/copy.json", "its own uid"),
    ("dashboard-uid-twice-in-a-folder", None, _dashboards(ops__business="sentinel-performance"), "files/grafana/dashboards/ops/business.json", "its own uid"),
    ("alert-link-typo", _linked("/d/sentinel-perfomance"), None, ".dashboard", "sentinel-performance"),
    ("alert-link-query-to-nothing", _linked("/d/sentinel-nope?orgId=1"), None, ".dashboard", "link one of"),
    ("alert-link-slug-to-nothing", _linked("/d/sentinel-nope/a-slug"), None, ".dashboard", "link one of"),
    ("alert-link-to-a-removed-dashboard", None, _dashboards(**{"sentinel-performance": None}), ".dashboard", "sentinel-business"),
]


@pytest.mark.parametrize("case", DASHBOARD_CASES, ids=[c[0] for c in DASHBOARD_CASES])
def test_a_broken_dashboard_uid_or_alert_link_is_refused(case):
    from roles.alerting.preflight import check_dashboard_links

    _, alerts, sources, key_part, fix_part = case
    with pytest.raises(SettingsError) as err:
        check_dashboard_links(load_catalog() if alerts is None else alerts, sources)
    assert key_part in err.value.key and fix_part in err.value.fix, str(err.value)


def test_the_committed_catalog_and_dashboards_pass_the_dashboard_checks():
    from roles.alerting.preflight import check_dashboard_links

    check_dashboard_links(load_catalog(), _dashboards())


# --- what preflight validated is what the deploy receives --------------------------------


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_preflight_validates_exactly_what_the_deploy_receives(env, good_secrets, monkeypatch):
    """pyinfra's CLI loader runs the inventory file (and so its preflight); the deploy's Environment is the
    same object, and equals one built afresh from the Inventory pyinfra hands to the deploy."""
    from pyinfra_cli.inventory import make_inventory

    from roles._environment import _pyinfra_state

    path = str(REPO / "inventory" / f"{env}.py")
    load_environment.cache_clear()
    with _pyinfra_state():
        inventory = make_inventory(path, cwd=str(REPO))  # what `pyinfra inventory/<env>.py deploy.py` does
    validated, secrets = preflight.validated_environment()
    received = environment_from_inventory(inventory, env)
    assert validated == received
    assert [h.name for h in validated.hosts] == [h.name for h in inventory]
    assert set(secrets) >= {"SENTINEL_S3_ACCESS_KEY", "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"}
    assert "value" not in repr(secrets) and GOOD_SECRETS["SENTINEL_S3_SECRET_KEY"] not in repr(secrets)


# --- the real CLI stops before connecting -----------------------------------------------

CLI_CASES = [
    ("retention-0d", {"retention": {"default_period": "0d"}}, {}, "retention.default_period"),
    ("newline-in-path", {"node_exporter": {"textfile_dir": "/x\nExecStartPre=/bin/id"}}, {}, "node_exporter.textfile_dir"),
    ("slack-not-https", {}, {"SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": "http://hooks.slack.com/services/T1/B1/x"}, "slack_critical.webhook_url_secret"),
    ("empty-secret", {}, {"SENTINEL_S3_ACCESS_KEY": ""}, "object_store.access_key_secret"),
    ("tls-ca-key-of-another-ca", {}, _ca_secrets(_CA[0], _OTHER_CA[1]), "SENTINEL_TLS_CA_KEY"),
    ("tls-ca-ends-inside-the-lifetime", {"tls": {"lifetime_days": 90}}, _ca_secrets(*_CA_60_DAYS), "SENTINEL_TLS_CA_CERT"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_pyinfra_cli_stops_before_connecting(case, tmp_path):
    _, data, secrets, key = case
    # 192.0.2.0/24 is TEST-NET-1: nothing answers there, so a connection attempt would show.
    body = "\n".join(
        f"{group} = [{(addr, data) if group == 'monitoring' and data else addr!r}]"
        for group, addr in (("monitoring", "192.0.2.11"), ("telemetry", "192.0.2.12"), ("app", "192.0.2.13"))
    )
    path = write_inventory(tmp_path, "prod", body, check=True)
    env = {"PATH": "/usr/bin:/bin", **GOOD_SECRETS, **secrets}
    result = subprocess.run(
        offline([sys.executable, "-m", "pyinfra", "-y", str(path), "deploy.py"]),
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert key in result.stderr and "Fix:" in result.stderr
    assert "Connecting" not in output and "Connected" not in output
    for value in secrets.values():
        if value:
            assert value not in output


def test_other_inventory_files_cannot_change_this_runs_environment(good_secrets, monkeypatch, tmp_path):
    """The host-in-two-inventories check reads the other inventory files; the lab's sets SENTINEL_SECRETS_DIR."""
    import roles._environment as environment_module

    other_dir = tmp_path / "inventories"
    other_dir.mkdir()
    (other_dir / "lab.py").write_text("import os\nos.environ['SENTINEL_SECRETS_DIR'] = '/nonexistent/lab'\nmonitoring = ['mon1']\n")
    monkeypatch.setattr(environment_module, "INVENTORY_DIR", other_dir)
    before = os.environ["SENTINEL_SECRETS_DIR"]
    preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    assert os.environ["SENTINEL_SECRETS_DIR"] == before


# `pyinfra --data` overrides reach the inventory after the inventory file (and its
# preflight) ran; they are checked before pyinfra connects all the same.
DATA_CASES = [
    ("retention-0d", 'retention={"default_period": "0d"}', "retention.default_period"),
    ("unknown-key", 'prometheus={"scrape_intervall": "15s"}', "prometheus.scrape_intervall"),
    ("newline-in-path", 'node_exporter={"textfile_dir": "/x\\nExecStartPre=/bin/id"}', "node_exporter.textfile_dir"),
    # pyinfra applies --data as host data: its own arguments would reach every command run as root.
    ("ignore-errors", "_ignore_errors=true", "_ignore_errors"),
    ("env-ld-preload", '_env={"LD_PRELOAD": "/tmp/x.so"}', "_env"),
    ("host-key-checking-off", "ssh_strict_host_key_checking=off", "ssh_strict_host_key_checking"),
    ("forward-agent", "ssh_forward_agent=true", "ssh_forward_agent"),
    ("tls-lifetime-400", 'tls={"lifetime_days": 400}', "tls.lifetime_days"),
    ("tls-off", 'tls={"enabled": false}', "tls.enabled"),
]


def _cli_inventory(tmp_path):
    body = "\n".join(f"{group} = [{addr!r}]" for group, addr in (("monitoring", "192.0.2.11"), ("telemetry", "192.0.2.12"), ("app", "192.0.2.13")))
    return write_inventory(tmp_path, "prod", body, check=True)


@pytest.mark.parametrize("case", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_a_bad_data_override_stops_the_cli_before_connecting(case, tmp_path):
    _, data, key = case
    result = subprocess.run(
        offline([sys.executable, "-m", "pyinfra", "-y", str(_cli_inventory(tmp_path)), "deploy.py", "--data", data]),
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", **GOOD_SECRETS}, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert key in result.stderr and "pyinfra --data" in result.stderr and "Fix:" in result.stderr
    assert "Connecting" not in output and "Connected" not in output


def test_a_good_data_override_passes_the_same_check(tmp_path):
    """The check is not a blanket refusal: a valid override gets through to pyinfra's next step."""
    result = subprocess.run(
        offline([sys.executable, "-m", "pyinfra", str(_cli_inventory(tmp_path)), "debug-inventory", "--data", 'retention={"default_period": "45d"}']),
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", **GOOD_SECRETS}, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "45d" in result.stdout + result.stderr


# (id, data of the role's host, the secret-shaped part that must not be printed, key part)
REDACTION_CASES = [
    ("artifact-url-password", {"artifact_base_url": "http://mirror:s3cr3t-pw@mirror.example.org"}, "s3cr3t-pw", "artifact_base_url"),
    ("pagerduty-url-password", {"alerting": {"pagerduty": {"enabled": True, "url": "http://ops:hunter2@events.example.org/v2/enqueue"}}}, "hunter2", "alerting.pagerduty.url"),
    ("aws-key-as-secret-name", {"backend": {"sentry_dsn_secret": "AKIAABCDEFGHIJKLMNOP"}}, "AKIAABCDEFGHIJKLMNOP", "backend.sentry_dsn_secret"),
    ("aws-key-as-key", {"prometheus": {"scrape_intervall": "15s", "AKIAABCDEFGHIJKLMNOP": 1}}, "AKIAABCDEFGHIJKLMNOP", "prometheus.<access key hidden>"),
    ("github-token-as-key", {"prometheus": {"ghp_abcdefghijklmnopqrstuvwxyz0123456789": 1}}, "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "prometheus.<token hidden>"),
    ("github-token-in-a-url", {"alerting": {"runbook_base_url": "https://git.example.org/ghp_abcdefghijklmnopqrstuvwxyz0123456789 x"}}, "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "alerting.runbook_base_url"),
    ("terminal-title-escape", {"prometheus": {"external_labels": {"team": "\x1b]0;pwned\x07"}}}, "\x1b", "prometheus.external_labels.team"),
    ("slack-bot-token-as-secret-name", {"grafana": {"admin_password_secret": "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}}, "AbCdEfGhIjKlMnOpQrStUvWx", "grafana.admin_password_secret"),
    ("slack-webhook-as-runbook-url", {"alerting": {"runbook_base_url": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX x"}}, "XXXXXXXXXXXXXXXXXXXXXXXX", "alerting.runbook_base_url"),
    ("grafana-token-in-db-url", {"grafana": {"database": {"type": "postgres", "host": "glsa_abcdefghijklmnopqrstuvwx12345678@db:5432"}}}, "glsa_abcdefghijklmnopqrstuvwx12345678", "grafana.database.host"),
]


@pytest.mark.parametrize("case", REDACTION_CASES, ids=[c[0] for c in REDACTION_CASES])
def test_a_refusal_never_prints_a_secret_shaped_value(case, good_secrets, tmp_path):
    _, data, secret, key_part = case
    role = "app" if "backend" in data else "monitoring"
    with pytest.raises(SettingsError) as caught:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with(role, data)))
    text = preflight.report(caught.value, hosts=list(HOSTS.values()))
    assert secret not in str(caught.value) and secret not in text
    assert any(key_part in p.key and p.fix for p in SettingsErrors.of(caught.value)), text


def test_a_refusal_never_prints_a_terminal_escape(good_secrets, tmp_path):
    fake = "\x1b[2J\x1b[HALL CHECKS PASSED"
    with pytest.raises(SettingsError) as caught:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with(data={"prometheus": {"external_labels": {fake: "x"}}})))
    assert "\x1b" not in str(caught.value) and "\\x1b" in str(caught.value)


def _reported(stderr: str) -> tuple[dict[str, list[str]], int]:
    """The report's keys per group heading, and the count it ends with."""
    groups: dict[str, list[str]] = {}
    heading = None
    count = -1
    for line in stderr.splitlines():
        if line.endswith(":") and not line.startswith(" ") and not line.startswith("preflight refused"):
            heading = line[:-1]
            groups[heading] = []
        elif line.startswith("  ") and not line.startswith("    ") and heading:
            groups[heading].append(line.strip().split(": ", 1)[0])
        elif " problem" in line and "each with its fix above" in line:
            count = int(line.split()[0])
    return groups, count


def _run_cli(inventory, *extra: str, env: dict | None = None):
    return subprocess.run(
        offline([sys.executable, "-m", "pyinfra", "-y", str(inventory), "deploy.py", *extra]),
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=120,
    )


def test_every_missing_secret_is_reported_in_one_run(monkeypatch):
    """A new operator with no secrets set runs the prod inventory: one run lists every secret it needs, under
    its host, each with its fix, and the count; exit 2 and no connection."""
    from roles._environment import check_inventory_file
    from roles._secrets import needs

    prod = REPO / "inventory" / "prod.py"
    check_inventory_file.cache_clear()
    monkeypatch.setattr(preflight, "_validated", {})
    required = [n for n in needs(load_environment(prod)) if n.required]
    first_use = {}
    for need in required:
        first_use.setdefault(need.name, need)  # a secret several keys name is one problem, at its first key
    result = _run_cli(prod)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    groups, count = _reported(result.stderr)
    expected: dict[str, list[str]] = {}
    for need in first_use.values():
        host, key = need.key[len("host "):].split(".sentinel.internal.", 1)
        expected.setdefault(f"host {host}.sentinel.internal", []).append(key)
    assert groups == {head: sorted(keys) for head, keys in expected.items()}, result.stderr
    assert count == len(first_use) == result.stderr.count("Fix: export ") >= 7
    assert "Connecting" not in output and "Connected" not in output


def test_every_problem_of_the_run_is_reported_at_once(tmp_path):
    """Bad settings on every host and no secrets: the settings, the pyinfra argument and the secrets of the
    blocks that are valid, all in one run, grouped by host, with the count."""
    body = (
        "monitoring = [('mon1.hostile', {'ip': '10.9.0.11', 'prometheus': {'scrape_intervall': '15s'}, '_ignore_errors': True})]\n"
        "telemetry = [('tel1.hostile', {'ip': '10.9.0.12', 'otel_collector': {'data_dir': '/etc'}, 'loki': {'bucket': 'logs'}})]\n"
        "app = [('app1.hostile', {'ip': '10.9.0.13', 'backend': {'sentry_url': 'http://sentry.example.org'}})]\n"
    )
    result = _run_cli(write_inventory(tmp_path, "prod", body, check=True))
    assert result.returncode == 2, result.stdout + result.stderr
    groups, count = _reported(result.stderr)
    assert groups == {
        "host mon1.hostile": [
            "_ignore_errors", "alerting.email.auth_password_secret", "alerting.heartbeat.url_secret", "alerting.pagerduty.routing_key_secret",
            "alerting.slack_critical.webhook_url_secret", "alerting.slack_warning.webhook_url_secret",
            "grafana.admin_password_secret", "prometheus.scrape_intervall",
        ],
        "host tel1.hostile": [
            "loki.access_key_secret", "loki.bucket", "loki.secret_key_secret", "object_store.access_key_secret",
            "object_store.secret_key_secret", "otel_collector.data_dir", "traces.tempo.access_key_secret", "traces.tempo.secret_key_secret",
        ],
        "host app1.hostile": ["backend.sentry_url"],
    }, result.stderr
    assert count == 17 == result.stderr.count("Fix: ")
    assert "Connecting" not in result.stdout + result.stderr


def test_every_bad_data_override_is_reported_at_once(tmp_path):
    result = _run_cli(_cli_inventory(tmp_path), "--data", 'prometheus={"scrape_intervall": "15s"}', "--data", "_ignore_errors=true",
                      env=GOOD_SECRETS)
    assert result.returncode == 2, result.stdout + result.stderr
    groups, count = _reported(result.stderr)
    # --data applies to every host: both problems on each of the three.
    assert "pyinfra --data" in result.stderr and count == 6
    assert list(groups.values()) == [["_ignore_errors", "prometheus.scrape_intervall"]] * 3, result.stderr


# --- the report: grouped by host, then the rest; keys sorted; fix under each; the count -----------


def test_the_report_groups_by_host_sorts_keys_and_ends_with_the_count():
    problems = SettingsErrors([
        SettingsError("host tel1.prod.example.org.otel_collector.data_dir", "'/etc' is not a data directory", "use /var/lib/otelcol"),
        SettingsError("catalog.yml:backend-down.dashboard", "links dashboard 'x'", "link one of a, b"),
        SettingsError("host mon1.prod.example.org.prometheus.scrape_intervall", "unknown key", "did you mean 'scrape_interval'?"),
        SettingsError("host tel1.prod.example.org", "port 4318/tcp is used by both gateway.otlp_http and loki.http", "give one another port"),
        SettingsError("host mon1.prod.example.org.alerting.email.auth_password_secret", "SENTINEL_SMTP_PASSWORD is not set", "export it"),
    ])
    text = preflight.report(problems, hosts=["mon1.prod.example.org", "tel1.prod.example.org"])
    assert text.splitlines() == [
        "preflight refused the inventory:",
        "host tel1.prod.example.org:",
        "  (the host): port 4318/tcp is used by both gateway.otlp_http and loki.http.",
        "    Fix: give one another port",
        "  otel_collector.data_dir: '/etc' is not a data directory.",
        "    Fix: use /var/lib/otelcol",
        "host mon1.prod.example.org:",
        "  alerting.email.auth_password_secret: SENTINEL_SMTP_PASSWORD is not set.",
        "    Fix: export it",
        "  prometheus.scrape_intervall: unknown key.",
        "    Fix: did you mean 'scrape_interval'?",
        "inventory and repository files:",
        "  catalog.yml:backend-down.dashboard: links dashboard 'x'.",
        "    Fix: link one of a, b",
        "5 problems, each with its fix above; nothing was sent to any host",
    ]


def test_the_report_of_one_problem_says_one():
    text = preflight.report(SettingsError("host a.b.c.x", "bad", "fix it"), "the inventory with its pyinfra --data overrides", ["a.b.c"])
    assert text.splitlines() == [
        "preflight refused the inventory with its pyinfra --data overrides:", "host a.b.c:", "  x: bad.", "    Fix: fix it",
        "1 problem, each with its fix above; nothing was sent to any host",
    ]


def test_the_report_prints_no_secret_and_no_terminal_escape():
    problems = SettingsErrors([
        SettingsError("host m.alerting.pagerduty.url", "'https://ops:hunter2@events.example.org' is not a URL", "write a full URL"),
        SettingsError("host m.prometheus.external_labels.\x1b[2Jx", "unknown key AKIAABCDEFGHIJKLMNOP", "remove \x1b]0;owned\x07 it"),
    ])
    text = preflight.report(problems, hosts=["m"])
    assert "hunter2" not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text and text.endswith("2 problems, each with its fix above; nothing was sent to any host")


# --- collecting: a broken block does not hide the rest -----------------------------------------


def _problems_of(tmp_path, body: str, env: str = "prod") -> list[SettingsError]:
    directory = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"  # pyinfra caches a file's code by its name
    directory.mkdir()
    with pytest.raises(SettingsError) as caught:
        preflight.preflight(write_inventory(directory, env, body))
    return SettingsErrors.of(caught.value)


def test_a_host_with_a_broken_block_still_has_its_other_secrets_checked(good_secrets, monkeypatch, tmp_path):
    """alerting fails on mon1: its secrets would be a guess from defaults and wait; Grafana's are still read."""
    for name in ("SENTINEL_GRAFANA_ADMIN_PASSWORD", "SENTINEL_SMTP_PASSWORD", "SENTINEL_S3_ACCESS_KEY"):
        monkeypatch.delenv(name)
    keys = [p.key for p in _problems_of(tmp_path, inventory_with(data={"alerting": {"listen_port": "9093"}}))]
    assert sorted(keys) == [
        "host mon1.hostile.alerting.listen_port", "host mon1.hostile.grafana.admin_password_secret",
        "host tel1.hostile.object_store.access_key_secret",
    ]


def test_a_rule_across_blocks_runs_when_the_blocks_it_reads_are_valid(good_secrets, tmp_path):
    reads_valid = _problems_of(tmp_path, inventory_with("telemetry", {"otel_collector": {"data_dir": "/etc"}, "loki": {"bucket": "logs"}}))
    assert {p.key for p in reads_valid} == {"host tel1.hostile.otel_collector.data_dir", "host tel1.hostile.loki.bucket"}
    # object_store fails: whether it creates "logs" is unknown, so the bucket rule waits.
    reads_broken = _problems_of(tmp_path, inventory_with("telemetry", {"object_store": {"data_dir": "/etc"}, "loki": {"bucket": "logs"}}))
    assert {p.key for p in reads_broken} == {"host tel1.hostile.object_store.data_dir"}


def test_the_topology_checks_one_host_at_once_and_across_hosts_once_all_are_valid(good_secrets, tmp_path):
    evil = {"grafana_backup": {**BACKUP, "grafana_url": "https://grafana.evil.example"}}
    app_port = "app = [('app1.hostile', {'ip': '10.9.0.13', 'backend': {'port': 9100}})]\n"
    partial = _problems_of(tmp_path, inventory_with(data={**evil, "prometheus": {"scrape_intervall": "15s"}}) + app_port)
    # app1's port collision is its own: reported. The token's destination compares hosts: waits for mon1's settings.
    key = "host mon1.hostile.grafana_backup.deploy_key_secret"  # unset here, and reported both times
    assert {p.key for p in partial} == {"host mon1.hostile.prometheus.scrape_intervall", "host app1.hostile", key}
    complete = _problems_of(tmp_path, inventory_with(data=evil) + app_port)
    assert {p.key for p in complete} == {"host mon1.hostile.grafana_backup.grafana_url", "host app1.hostile", key}


@pytest.mark.parametrize("value, accepted", [("*-*-* 03:17:00", True), ("daily", True), ("Mon,Fri *-*-* 02:30", True), ("every day at 3", False), ("3am", False)])
def test_calendar_specs_are_checked_without_systemd_too(monkeypatch, value, accepted):
    """A controller without systemd-analyze (macOS) still refuses what is not a calendar spec."""
    from roles import _model

    monkeypatch.setattr(_model.shutil, "which", lambda name: None)
    _model._systemd_calendar.cache_clear()
    try:
        assert (_model._systemd_calendar(value) is None) == accepted
    finally:
        _model._systemd_calendar.cache_clear()


def test_the_cli_runs_of_these_tests_have_no_network():
    """The namespace the pyinfra CLI tests run in reaches nothing, not even this machine's own addresses."""
    probe = "import socket\ntry:\n    socket.create_connection(('192.0.2.11', 22), timeout=2)\nexcept OSError as e:\n    print(e.errno)\n"
    argv = offline([sys.executable, "-c", probe])
    if argv[0] != "unshare":
        pytest.skip("needs root and unshare: the CLI tests then run with the machine's network")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "101", result.stdout + result.stderr  # ENETUNREACH


def test_a_hashed_known_hosts_line_is_matched_as_ssh_does(tmp_path):
    """ssh-keygen -H writes |1|salt|hash lines: the check reads them as ssh does (HMAC-SHA1 of the host)."""
    from roles.grafana_backup.settings import known_host_matches

    line = "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    (tmp_path / "kh").write_text(line)
    subprocess.run(["ssh-keygen", "-H", "-f", str(tmp_path / "kh")], check=True, capture_output=True)
    hashed = (tmp_path / "kh").read_text().split()[0]
    assert hashed.startswith("|1|")
    assert known_host_matches(hashed, "git.example.org", 22) and not known_host_matches(hashed, "git.evil.org", 22)


# --- issue 23, round two: the classes of hostile input and their cases --------------------------

ISSUE_23_CASES = {
    "pyinfra globals": [c[0] for c in INVENTORY_CASES if c[0].startswith("pyinfra-argument")],
    "weak SSH": ["ssh-host-key-checking-off", "ssh-host-key-checking-no", "ssh-known-hosts-dev-null", "ssh-forward-agent",
                 "ssh-host-key-checking-false-in-dev", "ssh-forward-agent-on-app-host"],
    "paths": ["collector-data-dir-etc", "jaeger-data-dir-var-lib", "backup-repo-usr-local-bin", "victorialogs-storage-root",
              "textfile-dir-var-lib", "store-metadata-srv", "loki-data-root-home", "tempo-data-boot", "collector-reads-shadow",
              "collector-log-in-var-log-itself", "backend-env-file-over-shadow", "token-path-in-etc-ssh"],
    "groups": ["collector-joins-shadow", "collector-joins-disk", "collector-joins-adm", "collector-joins-root"],
    "secret URLs": ["backup-token-to-another-grafana", "backup-token-over-http-in-prod", "sentry-cli-token-over-http", "sentry-dsn-over-http",
                    "smtp-password-without-tls", "grafana-db-password-in-clear", "backup-pushes-past-the-topologys-sshd",
                    "backup-token-to-the-right-host-wrong-port", "pagerduty-url-with-a-password", "backup-known-hosts-for-another-host",
                    "backup-known-hosts-wrong-port"],
    "secret names": ["secret-name-is-path", "secret-name-is-aws-key", "secret-name-is-the-secrets-dir", "one-secret-two-purposes",
                     "secret-name-is-a-ci-token", "secret-name-is-home", "one-secret-for-s3-and-grafana"],
    "modes": ["token-mode-world-readable", "token-mode-group-writable", "token-mode-other-readable", "token-mode-setuid"],
    "redaction": [c[0] for c in REDACTION_CASES],
    "cron": ["backup-minute-61", "backup-hour-24", "backup-month-13", "backup-day-of-month-32", "backup-step-zero", "backup-minute-words"],
    "calendar": ["retention-timer-in-english", "retention-timer-hour-25", "retention-timer-minute-61", "retention-timer-unknown-weekday"],
    "IPv6": [c[0] for c in INVENTORY_CASES if c[0].startswith("ipv6-")],
    "ports": [c[0] for c in INVENTORY_CASES if c[0].startswith("port-") and c[0] not in ("port-out-of-range", "port-as-string")],
    "buckets": ["loki-bucket-nobody-creates", "tempo-bucket-nobody-creates", "loki-bucket-dropped-from-the-store"],
    "Go ints": ["collector-memory-beyond-uint32", "collector-batch-beyond-uint32", "collector-queue-beyond-int64",
                "collector-spike-beyond-limit-range", "loki-streams-beyond-int64", "backup-timeout-beyond-int32"],
    "Grafana intervals": ["grafana-interval-15s", "grafana-interval-5s", "grafana-interval-1m5s"],
    "git refs": [c[0] for c in INVENTORY_CASES if c[0].startswith("git-branch-")],
    "dashboard uids": [c[0] for c in DASHBOARD_CASES if c[0].startswith("dashboard-")],
    "alert links": [c[0] for c in DASHBOARD_CASES if c[0].startswith("alert-link")],
}


def test_issue_23_has_its_fifty_cases_in_every_class():
    """The issue asks for at least 50 new table cases across its classes (the erasure command's are in
    tests/unit/test_erase.py). Every id names a case of a table above, at least two per class."""
    ids = [c[0] for c in INVENTORY_CASES] + [c[0] for c in REDACTION_CASES] + [c[0] for c in DASHBOARD_CASES]
    named = [i for cases in ISSUE_23_CASES.values() for i in cases]
    assert set(named) <= set(ids) and len(named) == len(set(named)), set(named) - set(ids)
    assert {cls: len(cases) for cls, cases in ISSUE_23_CASES.items() if len(cases) < 2} == {}
    assert len(named) >= 50


# Where each kind of secret of the registry is sent, and the cases that refuse sending it elsewhere or
# in clear. None: no setting names a destination (it stays on its host), proven below.
SECRET_DESTINATIONS = {
    "s3_key": None,  # the object store on the same host, reached on the loopback from the topology
    "s3_access_key": None,  # the same: a consumer's own key, to the store on its host's loopback
    "slack_webhook": ["slack-webhook-http", "slack-webhook-other-host"],  # the value is the destination
    "pagerduty_key": ["http-pagerduty-in-prod", "pagerduty-url-with-a-password"],  # alerting.pagerduty.url
    "smtp_password": ["smtp-password-without-tls"],  # alerting.email.smarthost, STARTTLS
    "sentry_dsn": ["sentry-dsn-over-http"],  # the value is the destination
    "sentry_token": ["sentry-cli-token-over-http"],  # backend.sentry_url
    # grafana.ini, and the token helper, which calls this host's Grafana at the topology's bind (test_grafana.py)
    "grafana_admin_password": None,
    "db_password": ["grafana-db-password-in-clear"],  # grafana.database.host, ssl_mode
    "grafana_token": ["backup-token-over-http-in-prod", "backup-token-to-another-grafana", "backup-token-to-the-right-host-wrong-port"],
    "ssh_private_key": ["backup-pushes-past-the-topologys-sshd", "backup-known-hosts-for-another-host"],  # remote_url, pinned keys
    "heartbeat_url": ["heartbeat-url-over-http", "heartbeat-url-with-a-password"],  # the value is the destination
    # Grafana's public certificate and key: files on the Grafana host only (/etc/grafana/tls), sent to no one; the
    # certificate is what Grafana shows browsers, the key never leaves the host (test_grafana_public_certificate.py)
    "pem_certificate_chain": None,
    "pem_private_key": None,
}


def test_every_kind_of_secret_is_held_to_where_it_goes():
    """A new kind of secret fails here until its destination is checked (https outside the lab, the topology's
    listener where the destination is in the inventory) and a case of the table proves it."""
    import typing

    from roles._secrets import Kind
    from roles.loki.settings import LokiSettings
    from roles.object_store.settings import ObjectStoreSettings
    from roles.tempo.settings import TempoSettings

    assert set(SECRET_DESTINATIONS) == set(typing.get_args(Kind))
    ids = {c[0] for c in INVENTORY_CASES}
    assert {i for cases in SECRET_DESTINATIONS.values() if cases for i in cases} <= ids
    for model in (LokiSettings, TempoSettings, ObjectStoreSettings):  # the S3 credential's endpoint is the topology's
        assert not [f for f in model.model_fields if "endpoint" in f or "url" in f], model


# --- TLS: the operator's CA and the toolkit's own, checked before any host is touched -----------------


def test_a_good_operators_ca_passes_preflight(good_secrets, monkeypatch, tmp_path):
    # A controller that never issued for prod: leaves of another CA on file would be an overlap to keep
    # (SENTINEL_TLS_ALSO_TRUSTED_CA, the next test).
    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path / "pki"))
    _set_secrets(monkeypatch, _ca_secrets(*_CA_60_DAYS))  # 60 days left: a 30-day certificate fits
    preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))


def test_switching_to_an_operators_ca_keeps_the_toolkits_trusted_until_every_leaf_moved(good_secrets, monkeypatch, tmp_path):
    """Leaves of the toolkit's own CA on file (hosts converged before): the operator's CA alone is refused, with the
    fix; with the toolkit's CA as the extra trust (the switch's promote phase) it passes."""
    from roles._pki import CertificateAuthority

    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path / "pki"))
    own = CertificateAuthority.open("prod")
    own.issue("tel1", "gateway")
    _set_secrets(monkeypatch, _ca_secrets(*_CA_60_DAYS))
    with pytest.raises(SettingsError) as err:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    assert any(p.key == "SENTINEL_TLS_ALSO_TRUSTED_CA" and "tel1.gateway" in p.problem and "keep the previous CA" in p.fix
               for p in SettingsErrors.of(err.value))
    monkeypatch.setenv("SENTINEL_TLS_ALSO_TRUSTED_CA", own.cert_pem)
    monkeypatch.setattr(preflight, "_validated", {})
    preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))


def test_a_bad_operators_ca_is_reported_without_key_material(good_secrets, monkeypatch, tmp_path):
    """The report the operator reads names the secret and the fix; no line of either PEM reaches it."""
    cert_pem, key_pem = _CA[0], _OTHER_CA[1]
    _set_secrets(monkeypatch, _ca_secrets(cert_pem, key_pem))
    with pytest.raises(SettingsError) as err:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    text = preflight.report(err.value, hosts=list(HOSTS.values()))
    assert "SENTINEL_TLS_CA_KEY: the key in SENTINEL_TLS_CA_KEY does not match the certificate in SENTINEL_TLS_CA_CERT." in text
    assert "Fix: give the pair that belongs together" in text
    for pem in (cert_pem, key_pem, _CA[1]):
        for line in pem.splitlines():
            assert line not in text
    assert "PRIVATE" not in text


def test_a_tls_problem_is_one_of_every_problem_of_the_run(good_secrets, monkeypatch, tmp_path):
    """The CA's check runs with the others: one run lists the lifetime, TLS off and the CA together."""
    _set_secrets(monkeypatch, _ca_secrets(*_operator_ca(-1)))
    body = inventory_with("app", {"tls": {"lifetime_days": 500}}).replace(
        "('tel1.hostile', {'ip': '10.9.0.12'})", "('tel1.hostile', {'ip': '10.9.0.12', 'tls': {'enabled': False}})"
    )
    with pytest.raises(SettingsError) as err:
        preflight.preflight(write_inventory(tmp_path, "prod", body))
    keys = {p.key for p in SettingsErrors.of(err.value)}
    assert {"host app1.hostile.tls.lifetime_days", "host tel1.hostile.tls.enabled", "SENTINEL_TLS_CA_CERT"} <= keys, keys


def test_the_toolkits_own_ca_ending_inside_the_lifetime_is_refused(good_secrets, monkeypatch, tmp_path):
    import datetime as dt

    from roles._pki import CA_LIFETIME, CertificateAuthority

    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path / "pki"))
    # Made ten years ago less 20 days: 20 days left, under the 30-day lifetime.
    CertificateAuthority.open("prod", now=dt.datetime.now(dt.timezone.utc) - CA_LIFETIME + dt.timedelta(days=20))
    with pytest.raises(SettingsError) as err:
        preflight.preflight(write_inventory(tmp_path, "prod", inventory_with()))
    problem = next(p for p in SettingsErrors.of(err.value) if p.key.endswith("prod/ca.crt"))
    assert "expires" in problem.problem and "SENTINEL_TLS_CA_CERT" in problem.fix
    assert "PRIVATE" not in str(err.value)


# --- Grafana's public certificate: a good pair passes, a refusal never prints the pair --------------------


@pytest.mark.parametrize("names, root_url", [
    (("grafana.example.test",), "https://grafana.example.test/"),
    (("*.example.test",), "https://grafana.example.test:3000/"),  # a wildcard covers one label
    (("mon1.hostile",), None),  # root_url unset: the host's address
])
def test_a_good_public_certificate_passes_preflight(good_secrets, monkeypatch, tmp_path, names, root_url):
    pair = public_chain(names)
    _set_secrets(monkeypatch, _public_secrets(pair.chain_pem, pair.key_pem))
    preflight.preflight(write_inventory(tmp_path, "prod", inventory_with(data=_public_grafana(root_url))))


def test_two_grafanas_behind_one_name_pass_with_one_public_certificate(good_secrets, monkeypatch, tmp_path):
    _set_secrets(monkeypatch, {**_public_secrets(_PUBLIC.chain_pem, _PUBLIC.key_pem), "SENTINEL_GRAFANA_DB_PASSWORD": "db-password-0001"})
    grafana = {**_public_grafana()["grafana"], "database": {"type": "postgres", "host": "db.example.test:5432"}}
    body = inventory_with(extra=f'monitoring = [("mon1.hostile", {{"ip": "10.9.0.11", "grafana": {grafana!r}}}), '
                                f'("mon2.hostile", {{"ip": "10.9.0.14", "grafana": {grafana!r}}})]\n')
    preflight.preflight(write_inventory(tmp_path, "prod", body))


def test_a_bad_public_certificate_is_reported_without_a_line_of_the_pair(good_secrets, monkeypatch, tmp_path):
    """Every refusal of the pair, as the operator reads it: the key, the secret's name and the fix, no line of either PEM."""
    from tests.unit.public_cert_fixtures import secret_lines

    expired = public_chain(starts_in_days=-100, ends_in_days=-1)
    cases = [
        (_PUBLIC.chain_pem, other_key(), "is not the key of the chain's first certificate"),
        (expired.chain_pem, expired.key_pem, "expired on"),
        (_PUBLIC.chain_pem + _PUBLIC.key_pem, _PUBLIC.key_pem, "holds a private key"),
    ]
    for chain_pem, key_pem, words in cases:
        _set_secrets(monkeypatch, _public_secrets(chain_pem, key_pem))
        monkeypatch.setattr(preflight, "_validated", {})
        with pytest.raises(SettingsError) as err:
            preflight.preflight(write_inventory(tmp_path, "prod", inventory_with(data=_public_grafana())))
        text = preflight.report(err.value, hosts=list(HOSTS.values()))
        assert words in text and "SENTINEL_GRAFANA_PUBLIC_" in text, text
        for line in {*secret_lines(_PUBLIC), *secret_lines(expired)}:
            assert line not in text
        assert "PRIVATE" not in text
