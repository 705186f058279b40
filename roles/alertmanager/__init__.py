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
from roles._service.quoting import refuse_control
from roles._service.render import dump_yaml
from roles.alerting.catalog import Alert, load_catalog
from roles.node_exporter import certificate_expiry
from roles._tls import TlsPaths, allowed_clients, leaf, tls_files, web_config

if TYPE_CHECKING:  # the role gets its settings, secrets and peers as arguments
    from roles._context import HostContext
    from roles._pki import Leaf
    from roles._settings import Settings
    from roles.alerting.settings import AlertingSettings

CONFIG = "/etc/alertmanager/alertmanager.yml"
DATA_DIR = "/var/lib/alertmanager"
# Alertmanager writes its notification log and silences to DATA_DIR only at this interval
# (and on a clean stop): a SIGKILL or power cut loses what changed since, and a notification
# sent in that window is sent again once it is back (docs/alerting.md "Crashes"). The
# default, 15m, made that window a quarter of an hour; the files are small.
SNAPSHOT_INTERVAL = "10s"
SECRETS_DIR = "/etc/alertmanager/secrets"
TLS = TlsPaths("alertmanager")
# Alertmanager has no web-config checker of its own; exporter-toolkit's is promtool's, and a
# monitoring host runs Prometheus (deployed before Alertmanager) next to it.
WEB_CONFIG_CHECK = "/opt/prometheus/current/promtool check web-config {path}"
TEMPLATES_DIR = "/etc/alertmanager/templates"
NOTIFICATION_TEMPLATES = Path(__file__).resolve().parents[2] / "files" / "alertmanager" / "sentinel.tmpl"
# Every secret file the role may write; the ones a disabled receiver no longer needs are removed.
ALL_SECRET_FILES = ("slack-critical-webhook-url", "slack-alerts-webhook-url", "smtp-password", "pagerduty-routing-key", "heartbeat-url")


def _go_template(name: str) -> str:
    return '{{ template "%s" . }}' % name


def inhibitions(alerts: tuple[Alert, ...]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(source uid, target uid, labels both must share) for every `inhibited_by` of the catalog."""
    return [(source, a.uid, ("environment", *a.inhibited_on)) for a in alerts for source in a.inhibited_by]


HEADER = """Managed by the Sentinel observability toolkit; local edits are overwritten.
Receivers, routes and timings: the `alerting` group data (roles/alerting/settings.py).
Inhibitions: files/alerting/catalog.yml. Secrets are read from files under
/etc/alertmanager/secrets, never written here."""


def _uid_matcher(uid: str) -> str:
    """An Alertmanager matcher `uid="<uid>"`, with the matcher syntax's escapes."""
    refuse_control(uid, "alert uid")
    return 'uid="' + uid.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _timing(timing) -> dict:
    return {"group_wait": timing.group_wait, "group_interval": timing.group_interval, "repeat_interval": timing.repeat_interval}


def _slack(channel: str, secret_file: str) -> dict:
    return {
        "api_url_file": f"{SECRETS_DIR}/{secret_file}",
        "channel": channel,
        "send_resolved": True,
        "title": _go_template("sentinel.title"),
        "text": _go_template("sentinel.text"),
        "color": _go_template("sentinel.slack.color"),
    }


def _routes_around(alert: Alert, alerting: AlertingSettings) -> dict:
    """The route of an alert about a failing integration (its `integration` label): through the others only.

    A dead Slack webhook is told by PagerDuty (where enabled) and email; a failing PagerDuty,
    email or webhook by Slack. Sent with the alert's severity timers, grouped per integration.
    """
    failing = alert.route_around  # the label naming the failing integration
    slack = "slack-critical" if alert.severity == "critical" else "slack-alerts"
    not_slack = [{"receiver": "pagerduty", "matchers": [f'{failing}="slack"'], "continue": True}] if alerting.pagerduty.enabled else []
    not_slack.append({"receiver": "email-ops", "matchers": [f'{failing}="slack"']})
    return {
        "receiver": slack,
        "matchers": [_uid_matcher(alert.uid)],
        "group_by": ["alertname", "environment", failing],
        **_timing(getattr(alerting, alert.severity)),
        "routes": [*not_slack, {"receiver": slack, "matchers": [f'{failing}!="slack"']}],
    }


def _email(alerting: AlertingSettings, send_resolved: bool) -> dict:
    email: dict = {"to": alerting.email.to, "send_resolved": send_resolved}
    if alerting.email.auth_username:
        email["auth_username"] = alerting.email.auth_username
        email["auth_password_file"] = f"{SECRETS_DIR}/smtp-password"
    email["headers"] = {"Subject": _go_template("sentinel.email.subject")}
    email["text"] = _go_template("sentinel.text")
    return email


def config(settings: Settings, alerts: tuple[Alert, ...]) -> dict:
    """alertmanager.yml as a structure, dumped by `render_config`."""
    alerting = settings.alerting
    # First: alerts about a failing integration, which must not go through that integration.
    routes: list[dict] = [_routes_around(alert, alerting) for alert in alerts if alert.route_around]
    critical = {"matchers": ['severity="critical"'], "group_by": ["alertname", "environment"], **_timing(alerting.critical)}
    heartbeat = alerting.heartbeat
    # The Watchdog: its notifications are the dead man's switch's heartbeat, at once and
    # every repeat_interval while it fires; never to people.
    routes.append(
        {
            "receiver": "heartbeat" if heartbeat.enabled else "heartbeat-waived",
            "matchers": ['severity="none"'],
            "group_by": ["alertname", "environment"],
            "group_wait": "0s",
            "group_interval": heartbeat.group_interval,
            "repeat_interval": heartbeat.repeat_interval,
        }
    )
    # Critical: at once, one notification per alert name, repeated while unresolved.
    routes.append({"receiver": "slack-critical", **critical})
    if alerting.pagerduty.enabled:
        routes[-1]["continue"] = True
        routes.append({"receiver": "pagerduty", **critical})
    routes += [
        # Warning: every warning of the environment in one batch per group_interval.
        {"receiver": "slack-alerts", "matchers": ['severity="warning"'], "group_by": ["environment"], **_timing(alerting.warning)},
        # Info: the daily email digest.
        {"receiver": "email-digest", "matchers": ['severity="info"'], "group_by": ["environment"], **_timing(alerting.info)},
    ]
    receivers = [
        {"name": "slack-critical", "slack_configs": [_slack(alerting.slack_critical.channel, "slack-critical-webhook-url")]},
        {"name": "slack-alerts", "slack_configs": [_slack(alerting.slack_warning.channel, "slack-alerts-webhook-url")]},
        {"name": "email-digest", "email_configs": [_email(alerting, send_resolved=False)]},
        # The ops mailbox at once, for what cannot go through Slack (a failing Slack webhook).
        {"name": "email-ops", "email_configs": [_email(alerting, send_resolved=True)]},
    ]
    if heartbeat.enabled:
        # send_resolved false: the switch must hear only "alive"; a resolved Watchdog means
        # Prometheus stopped sending it, and then the calls stop.
        receivers.append({"name": "heartbeat", "webhook_configs": [{"url_file": f"{SECRETS_DIR}/heartbeat-url", "send_resolved": False}]})
    else:
        receivers.append({"name": "heartbeat-waived"})  # alerting.heartbeat.waived: the Watchdog goes nowhere
    if alerting.pagerduty.enabled:
        pagerduty: dict = {"routing_key_file": f"{SECRETS_DIR}/pagerduty-routing-key"}
        if alerting.pagerduty.url:
            pagerduty["url"] = alerting.pagerduty.url
        pagerduty.update(
            send_resolved=True,
            severity="critical",
            description=_go_template("sentinel.pagerduty.description"),
            details={
                "summary": "{{ .CommonAnnotations.summary }}",
                "value": "{{ .CommonAnnotations.value }}",
                "runbook_url": "{{ .CommonAnnotations.runbook_url }}",
                "dashboard_url": "{{ .CommonAnnotations.dashboard_url }}",
                "firing": _go_template("sentinel.text"),
            },
            links=[{"href": "{{ .CommonAnnotations.runbook_url }}", "text": "runbook"}],
        )
        receivers.append({"name": "pagerduty", "pagerduty_configs": [pagerduty]})
    return {
        "global": {
            "resolve_timeout": "5m",
            "smtp_smarthost": alerting.email.smarthost,
            "smtp_from": alerting.email.from_address,
            "smtp_require_tls": alerting.email.require_tls,
        },
        "templates": [f"{TEMPLATES_DIR}/*.tmpl"],
        # Anything without a known severity still reaches people, on Slack #alerts.
        "route": {
            "receiver": "slack-alerts",
            "group_by": ["alertname", "environment"],
            **_timing(alerting.warning),
            "routes": routes,
        },
        "inhibit_rules": [
            {"source_matchers": [_uid_matcher(source)], "target_matchers": [_uid_matcher(target)], "equal": list(equal)}
            for source, target, equal in inhibitions(alerts)
        ],
        "receivers": receivers,
    }


def render_config(settings: Settings, alerts: tuple[Alert, ...]) -> str:
    """alertmanager.yml: the structure from `config`, dumped as YAML (no value is pasted into text)."""
    return dump_yaml(config(settings, alerts), HEADER)


def secret_files(settings: Settings, secrets: Mapping[str, str]) -> dict[str, str]:
    """Secret file name -> content for the enabled receivers, from the secrets preflight resolved."""
    return {filename: secrets[secret] + "\n" for filename, secret in settings.alerting.secrets().items()}


def cluster_flags(settings: Settings, peers: list[str], cluster_bind: str, peer_name: str) -> list[str]:
    """The gossip flags of one Alertmanager of a cluster; none (and no gossip port) for one Alertmanager.

    + peers: ip:port of the other Alertmanagers' alertmanager.cluster listeners
    + cluster_bind: this host's alertmanager.cluster ip:port (its own IP: also what it advertises)
    + peer_name: this host's inventory name

    Alertmanager ranks the members by peer name and the one at position N waits N x
    peer_timeout before notifying: the inventory name makes that order stable and readable
    (mon1 first), where the default is a random name drawn at every start. The cluster label
    (the environment) makes an Alertmanager drop gossip from another environment's cluster.
    Gossip is not encrypted (the web API is TLS): --cluster.tls-config is experimental in
    the pinned 0.31.1; the firewall lets only the peers in (docs/alerting.md "Two monitoring hosts").
    """
    if not peers:
        return ["--cluster.listen-address="]  # one instance: no gossip port, today's behaviour
    am = settings.alerting
    return [
        f"--cluster.listen-address={cluster_bind}",
        f"--cluster.advertise-address={cluster_bind}",
        f"--cluster.peer-name={peer_name}",
        f"--cluster.label=sentinel-{settings.environment}",
        f"--cluster.peer-timeout={am.cluster_peer_timeout}",
        f"--cluster.settle-timeout={am.cluster_settle_timeout}",
        *(f"--cluster.peer={peer}" for peer in peers),
    ]


def service_spec(settings: Settings, config: str, secrets: dict[str, str], peers: list[str], bind: str = "", cluster_bind: str = "",
                 tls: tuple[ConfigFile, ...] = (), peer_name: str = "") -> ServiceSpec:
    """
    The Alertmanager service.

    + settings: the host's settings
    + config: the rendered alertmanager.yml
    + secrets: secret file name -> content, written under /etc/alertmanager/secrets
    + peers: host:port of the other monitoring hosts' Alertmanagers (gossip), empty for one host
    + bind, cluster_bind: ip:port of alertmanager.web and alertmanager.cluster from the topology
    + tls: the certificate files and web config (`tls_configs`); none = plain HTTP
    + peer_name: this Alertmanager's name in the cluster (the inventory host name)
    """
    am = settings.alerting
    scheme = "https" if tls else "http"
    args = [
        "{bin}/alertmanager",
        f"--config.file={CONFIG}",
        f"--storage.path={DATA_DIR}",
        f"--data.retention={am.retention}",
        f"--data.maintenance-interval={SNAPSHOT_INTERVAL}",
        f"--web.listen-address={bind}",
        f"--web.external-url={scheme}://{settings.address}:{am.listen_port}",
    ]
    if tls:
        args.append(f"--web.config.file={TLS.web_config}")
    # Several Alertmanagers gossip silences and notification state, so an alert that
    # every Prometheus sends to all of them is notified once.
    args += cluster_flags(settings, peers, cluster_bind, peer_name)
    # Secrets and templates land before the config that refers to them, so the
    # config's check on the host sees them.
    configs = [*tls, *(ConfigFile(f"{SECRETS_DIR}/{name}", value, mode="0640") for name, value in sorted(secrets.items()))]
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
        config_dirs=(SECRETS_DIR, TEMPLATES_DIR, *((TLS.dir,) if tls else ())),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"{scheme}://{bind}/-/ready",
        ready_curl_args=TLS.curl_args() if tls else (),
    )


def tls_configs(ctx: HostContext, certificate) -> tuple[ConfigFile, ...]:
    """The certificate files and the web config: the API admits Prometheus, Grafana and the operator (the topology's flows)."""
    allowed = allowed_clients(ctx.topology, ctx.name, "alertmanager.web")
    return (*tls_files("alertmanager", certificate), ConfigFile(TLS.web_config, web_config(TLS, allowed), validate=WEB_CONFIG_CHECK))


def monitoring_peers(ctx: HostContext) -> list[str]:
    """host:cluster_port of the other Alertmanagers (the topology's alertmanager.cluster listeners)."""
    return [address for host, address in ctx.topology.addresses("alertmanager.cluster") if host != ctx.name]


def host_service_spec(ctx: HostContext, certificate: "Leaf | None" = None) -> ServiceSpec:
    """The Alertmanager service of this host: its config, secrets, binds, cluster peers and TLS
    (`certificate`: this host's alertmanager leaf, issued here when not given)."""
    me = ctx.settings
    peers = monitoring_peers(ctx)
    cluster_bind = ctx.bind("alertmanager.cluster") if peers else ""
    certificate = certificate or leaf(ctx, "alertmanager", "alertmanager.web")
    return service_spec(me, render_config(me, load_catalog()), secret_files(me, ctx.secrets), peers, ctx.bind("alertmanager.web"),
                        cluster_bind, peer_name=ctx.name, tls=tls_configs(ctx, certificate))


@deploy("Alertmanager")
def alertmanager(settings: AlertingSettings, ctx: HostContext):
    """
    Install Alertmanager with the environment's receivers, routes and notification templates.

    + settings: the `alerting` block
    + ctx: the host context: binds and gossip peers from the topology, the run's secrets
      (the enabled receivers' ones are written as files)
    """
    me = ctx.settings
    certificate = leaf(ctx, "alertmanager", "alertmanager.web")
    spec = host_service_spec(ctx, certificate)
    secrets = secret_files(me, ctx.secrets)
    release_service(spec, ctx.artifact_base_url, ctx.hardening)
    certificate_expiry(me.node_exporter.textfile_dir, "alertmanager", certificate)
    for name in ALL_SECRET_FILES:
        if name not in secrets:
            files.file(name=f"alertmanager: no unused secret {name}", path=f"{SECRETS_DIR}/{name}", present=False)
