"""Alertmanager on the `monitoring` hosts: routes the alerts Prometheus evaluates.

Receivers and routes come from the `alerting` group data, inhibitions from the
alert catalog. Secrets (webhook URLs, the PagerDuty routing key, the SMTP
password) reach the host only as files under /etc/alertmanager/secrets, mode
0640 root:alertmanager, referenced by the config's *_file fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import files

from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.render import render
from roles.alerting.catalog import Alert, load_catalog

if TYPE_CHECKING:  # the role gets its settings, secrets and peers as arguments
    from roles._settings import Settings

CONFIG = "/etc/alertmanager/alertmanager.yml"
DATA_DIR = "/var/lib/alertmanager"
SECRETS_DIR = "/etc/alertmanager/secrets"
TEMPLATES_DIR = "/etc/alertmanager/templates"
NOTIFICATION_TEMPLATES = Path(__file__).resolve().parents[2] / "files" / "alertmanager" / "sentinel.tmpl"
# Every secret file the role may write; the ones a disabled receiver no longer needs are removed.
ALL_SECRET_FILES = ("slack-critical-webhook-url", "slack-alerts-webhook-url", "smtp-password", "pagerduty-routing-key")


def _go_template(name: str) -> str:
    return '{{ template "%s" . }}' % name


def inhibitions(alerts: tuple[Alert, ...]) -> list[tuple[str, str]]:
    """(source uid, target uid) for every `inhibited_by` of the catalog."""
    return [(a.inhibited_by, a.uid) for a in alerts if a.inhibited_by]


def render_config(settings: Settings, alerts: tuple[Alert, ...]) -> str:
    return render(
        "alertmanager/alertmanager.yml.j2",
        alerting=settings.alerting,
        inhibitions=inhibitions(alerts),
        secrets_dir=SECRETS_DIR,
        templates_glob=f"{TEMPLATES_DIR}/*.tmpl",
        go_template=_go_template,
    )


def secret_files(settings: Settings, secrets: Mapping[str, str]) -> dict[str, str]:
    """Secret file name -> content for the enabled receivers, from the secrets preflight resolved."""
    return {filename: secrets[secret] + "\n" for filename, secret in settings.alerting.secrets().items()}


def service_spec(settings: Settings, config: str, secrets: dict[str, str], peers: list[str]) -> ServiceSpec:
    """
    The Alertmanager service.

    + settings: the host's settings
    + config: the rendered alertmanager.yml
    + secrets: secret file name -> content, written under /etc/alertmanager/secrets
    + peers: host:port of the other monitoring hosts' Alertmanagers (gossip), empty for one host
    """
    am = settings.alerting
    args = [
        "{bin}/alertmanager",
        f"--config.file={CONFIG}",
        f"--storage.path={DATA_DIR}",
        f"--data.retention={am.retention}",
        f"--web.listen-address=:{am.listen_port}",
        f"--web.external-url=http://{settings.address}:{am.listen_port}",
    ]
    if peers:
        # Several Alertmanagers gossip silences and notification state, so an
        # alert that every Prometheus sends to all of them is notified once.
        args.append(f"--cluster.listen-address=0.0.0.0:{am.cluster_port}")
        args += [f"--cluster.peer={peer}" for peer in peers]
    else:
        args.append("--cluster.listen-address=")  # one instance: no gossip port
    # Secrets and templates land before the config that refers to them, so the
    # config's check on the host sees them.
    configs = [ConfigFile(f"{SECRETS_DIR}/{name}", value, mode="0640") for name, value in sorted(secrets.items())]
    configs.append(
        ConfigFile(
            f"{TEMPLATES_DIR}/sentinel.tmpl",
            NOTIFICATION_TEMPLATES.read_text(),
            validate="{bin}/amtool template render --template.glob={path} --template.text='{{ template \"sentinel.text\" . }}'",
            mode="0640",
        )
    )
    configs.append(ConfigFile(CONFIG, config, validate="{bin}/amtool check-config {path}"))
    return ServiceSpec(
        name="alertmanager",
        description="Prometheus Alertmanager",
        exec_start=tuple(args),
        configs=tuple(configs),
        config_dirs=(SECRETS_DIR, TEMPLATES_DIR),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"http://127.0.0.1:{am.listen_port}/-/ready",
    )


def monitoring_peers(me: str, monitoring: list[tuple[str, Settings]]) -> list[str]:
    """host:cluster_port of the other monitoring hosts; `monitoring` is (name, settings) of each."""
    return [f"{s.address}:{s.alerting.cluster_port}" for name, s in sorted(monitoring) if name != me]


@deploy("Alertmanager")
def alertmanager(settings: Settings, secrets: Mapping[str, str], peers: list[str]):
    """
    Install Alertmanager with the environment's receivers, routes and notification templates.

    + settings: this host's settings (alerting, address, artifact_base_url, systemd_hardening)
    + secrets: the run's resolved secrets; the enabled receivers' ones are written as files
    + peers: host:cluster_port of the other monitoring hosts' Alertmanagers (`monitoring_peers`)
    """
    config = render_config(settings, load_catalog())
    secrets = secret_files(settings, secrets)
    spec = service_spec(settings, config, secrets, peers)
    release_service(spec, settings.artifact_base_url, settings.systemd_hardening)
    for name in ALL_SECRET_FILES:
        if name not in secrets:
            files.file(name=f"alertmanager: no unused secret {name}", path=f"{SECRETS_DIR}/{name}", present=False)
