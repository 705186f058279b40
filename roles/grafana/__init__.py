"""Grafana on the `monitoring` hosts: grafana.ini from typed settings, provisioned datasources,
dashboards and alerting, and the backup job's service account token.

Grafana has no offline config checker (nothing like promtool or amtool), so the
building block's check-before-swap cannot apply. Instead grafana.ini, its
secret files and every provisioning file are STARTED ON and ROLLED BACK:
`roles._service.rollback.guarded_files` keeps the previous files, swaps in the
new ones together, restarts Grafana and polls /api/health; if Grafana does not
answer within `grafana.health_timeout` it restores the previous files, restarts
Grafana on them and fails the deploy. Dashboards JSON is not guarded (Grafana
re-reads it every 30 s and a bad dashboard does not stop Grafana).

`grafana.install_binary: false` (the lab only; Grafana is AGPL and may not run
there) keeps everything but the program: user, directories, grafana.ini,
secrets and provisioning files with their owners and modes, and no binary, no
unit, no plugin, no service account.
"""

from __future__ import annotations

from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Arch
from pyinfra.operations import files

from roles._schema import SettingsError, duration_seconds
from roles._secrets import read_secret
from roles._service import ServiceSpec, run_service, service_account, service_dirs
from roles._service.artifacts import resolve
from roles._service.rollback import GuardedFile, guarded_files
from roles._service.tree import release_tree
from roles.alerting.catalog import load_catalog
from roles.grafana.alerting import render_alerting, secret_names
from roles.grafana.config import (
    ADMIN_PASSWORD_FILE,
    CONFIG,
    DASHBOARDS_DIR,
    DATA_DIR,
    DB_PASSWORD_FILE,
    LOGS_DIR,
    PLUGINS_DIR,
    PROVISIONING_DIR,
    SECRETS_DIR,
    ini_sections,
    render_ini,
    root_url,
)
from roles.grafana.operations import backup_token
from roles.grafana.provisioning import Peers, dashboard_sources, render_dashboard_providers, render_datasources
from roles.grafana.settings import GrafanaSettings, PostgresDatabase

VICTORIALOGS_PLUGIN = "victoriametrics-logs-datasource"
TOKEN_SCRIPT_SOURCE = Path(__file__).resolve().parents[2] / "files" / "grafana" / "backup_token.py"
TOKEN_SCRIPT = "/usr/local/lib/sentinel/grafana-backup-token"
_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def ready_url(settings: GrafanaSettings) -> str:
    address = "127.0.0.1" if settings.http_addr in ("0.0.0.0", "::", "[::]") else settings.http_addr
    return f"http://{address}:{settings.http_port}/api/health"


def service_spec(settings: GrafanaSettings) -> ServiceSpec:
    """The Grafana service: runs from its home directory, /opt/grafana/current."""
    return ServiceSpec(
        name="grafana",
        description="Grafana",
        exec_start=("{bin}/bin/grafana", "server", "--homepath={bin}", f"--config={CONFIG}"),
        config_dirs=(
            SECRETS_DIR,
            PROVISIONING_DIR,
            f"{PROVISIONING_DIR}/datasources",
            f"{PROVISIONING_DIR}/dashboards",
            f"{PROVISIONING_DIR}/alerting",
            f"{PROVISIONING_DIR}/plugins",
        ),
        data_dirs=(DATA_DIR, LOGS_DIR, PLUGINS_DIR),
        working_directory="/opt/grafana/current",
        reload="restart",
        ready_url=ready_url(settings),
    )


def _secret(name: str, where: str) -> str:
    value = read_secret(name)
    if not value:
        raise SettingsError(where, f"the secret {name} is not set", f"export {name}=... or put it in $SENTINEL_SECRETS_DIR/{name}")
    return value + "\n"


def config_files(settings, alerting, evaluator: str, environment: str, address: str, peers: Peers, where: str) -> list[GuardedFile]:
    """grafana.ini, its secrets and the provisioning files, as the host gets them (0640 root:grafana)."""

    def guarded(dest: str, content: str) -> GuardedFile:
        return GuardedFile(dest, content, user="root", group="grafana", mode="0640")

    grafana_alerting = evaluator == "grafana"
    secrets = {ADMIN_PASSWORD_FILE: _secret(settings.admin_password_secret, f"{where}.grafana.admin_password_secret")}
    if isinstance(settings.database, PostgresDatabase):
        secrets[DB_PASSWORD_FILE] = _secret(settings.database.password_secret, f"{where}.grafana.database.password_secret")
    if grafana_alerting:
        for filename, name in secret_names(alerting).items():
            secrets[f"{SECRETS_DIR}/{filename}"] = _secret(name, f"{where}.alerting")
    sections = ini_sections(settings, address, smtp=alerting.email if grafana_alerting else None)
    dashboards = dashboard_sources()
    alerting_files = render_alerting(
        load_catalog(), alerting, environment, settings.rule_interval, root_url(settings, address).rstrip("/"), enabled=grafana_alerting
    )
    result = [guarded(dest, value) for dest, value in sorted(secrets.items())]
    result.append(guarded(f"{PROVISIONING_DIR}/datasources/sentinel.yml", render_datasources(peers)))
    result.append(guarded(f"{PROVISIONING_DIR}/dashboards/sentinel.yml", render_dashboard_providers(dashboards)))
    result += [guarded(f"{PROVISIONING_DIR}/alerting/{name}", content) for name, content in alerting_files.items()]
    result.append(guarded(CONFIG, render_ini(sections)))
    return result


@deploy("Grafana")
def grafana(
    settings: GrafanaSettings,
    alerting,
    environment: str,
    address: str,
    artifact_base_url: str,
    prometheus_url: str,
    alertmanager_url: str,
    traces_store: str,
    traces_url: str,
    logs_store: str,
    logs_url: str,
    scrape_interval: str = "15s",
    hardening: bool = True,
):
    """
    Install Grafana with its provisioning; without the binary when `settings.install_binary` is false.

    + settings: the host's `grafana` settings (roles/grafana/settings.py)
    + alerting: the `alerting` settings: evaluator, receivers, routes and timings
    + environment: dev, staging, prod or lab (the `environment` label of Grafana-managed rules)
    + address: the host's address (the default root_url)
    + artifact_base_url: where release archives come from
    + prometheus_url: Prometheus' query URL, e.g. http://mon1:9090
    + alertmanager_url: Alertmanager's URL, e.g. http://mon1:9093
    + traces_store: tempo or jaeger
    + traces_url: the trace store's query URL (Tempo :3200, Jaeger query :16686)
    + logs_store: loki or victorialogs
    + logs_url: the log store's query URL (Loki :3100, VictoriaLogs :9428)
    + scrape_interval: Prometheus' scrape interval (the datasource's minimum step)
    + hardening: apply the systemd sandboxing directives
    """
    where = f"host {host.name}"
    evaluator = alerting.chosen_evaluator(f"{where}.alerting")
    peers = Peers(prometheus_url, alertmanager_url, traces_store, traces_url, logs_store, logs_url, scrape_interval)
    spec = service_spec(settings)
    service_account(spec)
    service_dirs(spec)
    files.directory(name="grafana: dashboards dir", path=DASHBOARDS_DIR, user="root", group="grafana", mode="0750")
    dashboards = dashboard_sources()
    for subdir in sorted({str(Path(p).parent) for p in dashboards if "/" in p}):
        files.directory(name=f"grafana: dashboards dir {subdir}", path=f"{DASHBOARDS_DIR}/{subdir}", user="root", group="grafana", mode="0750")
    for relative, text in dashboards.items():
        files.put(
            name=f"grafana: dashboard {relative}",
            src=_text(text),
            dest=f"{DASHBOARDS_DIR}/{relative}",
            user="root",
            group="grafana",
            mode="0640",
        )
    configs = tuple(config_files(settings, alerting, evaluator, environment, address, peers, where))
    timeout = int(duration_seconds(settings.health_timeout))

    if not settings.install_binary:
        # The lab: no unit exists, so guarded_files only puts the files in place.
        guarded_files(name="grafana: config and provisioning files", files=configs, unit="grafana.service", ready_url=ready_url(settings), timeout_seconds=timeout)
        return

    arch = _DEBIAN_ARCH.get(host.get_fact(Arch), "amd64")
    artifact = resolve("grafana", artifact_base_url, arch)
    version_dir = f"/opt/grafana/{artifact.version}"
    files.directory(name="grafana: install root", path="/opt/grafana", user="root", group="root", mode="0755")
    tree = release_tree(name=f"grafana: release {artifact.version}", artifact=artifact, install_dir=version_dir)
    current = files.link(name="grafana: current version", path="/opt/grafana/current", target=version_dir)
    code_changes = [tree, current]
    if logs_store == "victorialogs":
        plugin = resolve(VICTORIALOGS_PLUGIN, artifact_base_url, arch)
        code_changes.append(
            release_tree(name=f"grafana: plugin {VICTORIALOGS_PLUGIN} {plugin.version}", artifact=plugin, install_dir=f"{PLUGINS_DIR}/{VICTORIALOGS_PLUGIN}")
        )
    guarded_files(name="grafana: config and provisioning files (rolled back if Grafana does not come up)", files=configs, unit="grafana.service", ready_url=ready_url(settings), timeout_seconds=timeout)
    run_service(spec, hardening, code_changes=code_changes, config_changes=[])
    files.directory(name="grafana: helper dir", path=str(Path(TOKEN_SCRIPT).parent), user="root", group="root", mode="0755")
    files.put(name="grafana: backup token helper", src=str(TOKEN_SCRIPT_SOURCE), dest=TOKEN_SCRIPT, user="root", group="root", mode="0755")
    backup_token(
        name="grafana: backup service account token (created once, never printed)",
        script=TOKEN_SCRIPT,
        url=f"http://127.0.0.1:{settings.http_port}" if settings.http_addr in ("0.0.0.0", "::", "[::]") else f"http://{settings.http_addr}:{settings.http_port}",
        admin_user=settings.admin_user,
        admin_password_file=ADMIN_PASSWORD_FILE,
        token_file=settings.backup_token_path,
        owner=settings.backup_token_owner,
        mode=settings.backup_token_mode,
    )


def _text(text: str):
    from io import StringIO

    return StringIO(text)
