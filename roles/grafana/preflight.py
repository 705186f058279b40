"""Preflight for Grafana, run before pyinfra connects: secrets, the evaluator, dashboards' datasources."""

from __future__ import annotations

from roles._schema import SettingsError
from roles._secrets import read_secret
from roles.alerting.catalog import load_catalog
from roles.grafana.alerting import RULE_UID_MAX
from roles.grafana.provisioning import DASHBOARDS_SOURCE, KNOWN_UIDS, Peers, dashboard_sources, unknown_datasource_uids
from roles.grafana.settings import PostgresDatabase
from roles.grafana.wiring import stores


def _missing(key: str, secret: str, what: str) -> SettingsError:
    return SettingsError(key, f"{what} {secret} is not set", f"export {secret}=... or put it in $SENTINEL_SECRETS_DIR/{secret}")


def provisioned_uids(settings) -> frozenset[str]:
    traces, logs = stores(settings)
    return Peers("", "", traces, "", logs, "").uids


def check_dashboards(name: str, settings, dashboards: dict[str, str] | None = None) -> None:
    """Refuse a dashboard that names a datasource uid Grafana will not have.

    Where the binary is not installed (the lab) nothing renders panels, so any
    uid the role can provision (tempo, jaeger, loki, victorialogs, ...) passes;
    a typo still fails.
    """
    dashboards = dashboard_sources() if dashboards is None else dashboards
    allowed = provisioned_uids(settings) if settings.grafana.install_binary else KNOWN_UIDS
    problems = unknown_datasource_uids(dashboards, allowed)
    if problems:
        file, path, uid = problems[0]
        raise SettingsError(
            f"{DASHBOARDS_SOURCE.relative_to(DASHBOARDS_SOURCE.parents[2])}/{file}:{path}",
            f"datasource uid {uid!r} is not provisioned on {name} ({settings.environment} has {', '.join(sorted(allowed))})",
            "use one of those uids (roles/grafana/provisioning.py fixes them), or a dashboard variable such as ${datasource}",
        )


def check_grafana(name: str, settings, monitoring_hosts: int) -> None:
    where = f"host {name}"
    grafana = settings.grafana
    if not grafana.install_binary and settings.environment != "lab":
        raise SettingsError(
            f"{where}.grafana.install_binary",
            f"false in {settings.environment}: Grafana would get its files but never run",
            "remove grafana.install_binary (only the lab, where Grafana may not run, sets it to False)",
        )
    if not read_secret(grafana.admin_password_secret):
        raise _missing(f"{where}.grafana.admin_password_secret", grafana.admin_password_secret, "Grafana's admin password")
    if isinstance(grafana.database, PostgresDatabase) and not read_secret(grafana.database.password_secret):
        raise _missing(f"{where}.grafana.database.password_secret", grafana.database.password_secret, "Grafana's database password")
    evaluator = settings.alerting.chosen_evaluator(f"{where}.alerting")
    if evaluator == "grafana":
        if monitoring_hosts > 1:
            raise SettingsError(
                f"{where}.alerting.evaluator",
                f"Grafana would evaluate and notify on each of the {monitoring_hosts} monitoring hosts, paging once per host",
                'keep alerting.evaluator "prometheus" (Alertmanagers gossip, so one notification), or run one monitoring host',
            )
        for alert in load_catalog():
            if len(alert.uid) > RULE_UID_MAX:
                raise SettingsError(
                    f"catalog.yml:{alert.uid}.uid",
                    f"longer than {RULE_UID_MAX} characters, Grafana's limit for a rule uid",
                    "shorten the uid (and rename its runbook and fixture), or keep alerting.evaluator prometheus",
                )
    check_dashboards(name, settings)
