"""Preflight for Grafana, run once before pyinfra connects (from roles/preflight.py).

Its secrets are resolved with every other secret (roles/_secrets.py `needs`);
naming both evaluators is refused by the settings model (roles/alerting/evaluator.py).
Here: what needs the environment, the repository's files, or resolved secrets read
together with the settings (the operator's public certificate against root_url).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from roles._model import SettingsError
from roles.alerting.catalog import load_catalog
from roles.grafana.alerting import RULE_UID_MAX
from roles.grafana.config import public_name, root_host
from roles.grafana.public_certificate import PublicCertificateProblem, check_pair
from roles.grafana.peers import stores
from roles.grafana.provisioning import DASHBOARDS_SOURCE, KNOWN_UIDS, Peers, dashboard_sources, unknown_datasource_uids

if TYPE_CHECKING:
    from roles._environment import EnvHost
    from roles._settings import Settings


def provisioned_uids(settings: Settings) -> frozenset[str]:
    traces, logs = stores(settings)
    return Peers("", "", traces, "", logs, "").uids


def check_dashboards(name: str, settings: Settings, dashboards: dict[str, str] | None = None) -> None:
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


def check_grafana(name: str, settings: Settings, monitoring_hosts: int) -> None:
    """One monitoring host's Grafana: the lab-only switch, the evaluator across hosts, rule uids, dashboards."""
    where = f"host {name}"
    if not settings.grafana.install_binary and settings.environment != "lab":
        raise SettingsError(
            f"{where}.grafana.install_binary",
            f"false in {settings.environment}: Grafana would get its files but never run",
            "remove grafana.install_binary (only the lab, where Grafana may not run, sets it to False)",
        )
    if settings.grafana.install_binary and monitoring_hosts > 1 and not settings.grafana.database.is_postgres:
        raise SettingsError(
            f"{where}.grafana.database.type",
            f"sqlite3 on each of the {monitoring_hosts} monitoring hosts: their Grafanas would not share dashboards, users or alert state",
            "set grafana.database.type postgres with one PostgreSQL (grafana.database.host) for every monitoring host, or run one monitoring host",
        )
    if settings.alerting.evaluator == "grafana":
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


def check_public_certificate(name: str, settings: Settings, secrets: Mapping[str, str], now=None) -> None:
    """The operator's public certificate, when grafana names one: the key is the chain's first certificate's,
    every certificate is valid now, and the first one covers the host users reach Grafana at (root_url's, else
    the host's address). The secrets' shapes were checked when they were resolved; a secret that did not
    resolve was reported there, and is not checked again here. No message holds a line of either value."""
    grafana = settings.grafana
    if not grafana.public_certificate:
        return
    chain, key = secrets.get(grafana.public_certificate_secret), secrets.get(grafana.public_key_secret)
    if chain is None or key is None:
        return
    where = "the host of grafana.root_url" if grafana.root_url else "the host's address: grafana.root_url is unset"
    try:
        check_pair(chain, key, root_host(grafana, settings.address), where, now)
    except PublicCertificateProblem as err:
        setting = "public_certificate_secret" if err.which == "certificate" else "public_key_secret"
        secret = getattr(grafana, setting)
        raise SettingsError(f"host {name}.grafana.{setting}", f"the secret {secret} {err.problem}", err.fix) from None


def check_admin_password_rotation(name: str, settings: Settings, secrets: Mapping[str, str]) -> None:
    """A rotation's previous admin password is another password than the new one (the same value would make the
    converge change nothing while the operator believes the password rotated). No message holds either value."""
    grafana = settings.grafana
    previous = secrets.get(grafana.admin_previous_password_secret)
    if previous and previous == secrets.get(grafana.admin_password_secret):
        raise SettingsError(
            f"host {name}.grafana.admin_previous_password_secret",
            f"{grafana.admin_previous_password_secret} holds the same password as {grafana.admin_password_secret}",
            f"set {grafana.admin_password_secret} to the new password and {grafana.admin_previous_password_secret} to the one "
            "Grafana has; or unset the previous one when no rotation is under way",
        )


def check_one_public_name(grafanas: Sequence[EnvHost]) -> None:
    """Every Grafana of the environment is verified by the same name, or each by its own address.

    Prometheus scrapes every monitoring host's Grafana in one job with one `tls_config`: the environment
    CA and each target's address, or the system's trust store and one server name (the public
    certificate's). A mix, or two public names, cannot be one job (roles/prometheus `scrape_jobs`).
    `grafanas`: the hosts whose Grafana runs (grafana.install_binary)."""
    names = {host.name: public_name(host.settings.grafana, host.settings.address) for host in grafanas}
    if len(set(names.values())) <= 1:
        return
    shown = ", ".join(f"{host} {name or 'the environment CA'}" for host, name in sorted(names.items()))
    first = sorted(names)[0]
    raise SettingsError(
        f"host {first}.grafana.public_certificate_secret",
        f"the monitoring hosts' Grafanas would be verified by different names ({shown}): Prometheus scrapes them "
        "all with one TLS setting",
        "give every monitoring host the same grafana.public_certificate_secret, public_key_secret and root_url "
        "(group data; e.g. the name of the load balancer in front of them), or none of them",
    )
