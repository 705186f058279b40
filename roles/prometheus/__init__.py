"""Prometheus on the `monitoring` hosts: scrapes the stack, keeps 15 days by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfra.api import deploy

from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.render import dump_yaml
from roles.alerting.catalog import load_catalog, with_for_at_most
from roles.alerting.rules import HEADER as RULES_HEADER, RULES_FILE, render_rules
from roles.node_exporter import certificate_expiry
from roles.retention import prometheus_flags
from roles._tls import TlsPaths, allowed_clients, client_tls_config, is_tls, leaf, tls_files, web_config

if TYPE_CHECKING:  # the role gets its settings and peers as arguments and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles._topology import Topology
    from roles.prometheus.settings import PrometheusSettings

CONFIG = "/etc/prometheus/prometheus.yml"
TLS = TlsPaths("prometheus")
DATA_DIR = "/var/lib/prometheus"


@dataclass(frozen=True)
class Target:
    host: str
    address: str


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: tuple[Target, ...]
    metrics_path: str = "/metrics"
    tls: bool = False  # https with Prometheus's client certificate (roles/_tls.py TLS_LISTENERS)
    # The name the targets' certificate is verified for, with the system's trust store instead of the
    # environment CA: Grafana's public certificate (names root_url's host, not the target's address).
    public_name: str | None = None


# job name -> the listener it scrapes: every instance of it in the topology.
SCRAPED = (
    ("prometheus", "prometheus.web"),
    ("alertmanager", "alertmanager.web"),
    ("node", "node_exporter.metrics"),
    ("sentinel-backend", "backend.http"),
    ("otelcol", "otelcol.metrics"),
    ("jaeger", "jaeger.metrics"),
    ("tempo", "tempo.http"),
    ("victorialogs", "victorialogs.http"),
    # stores.mode scalable: victorialogs.http is then the access tier, and each storage node its own target.
    ("victorialogs-storage", "victorialogs.storage"),
    ("loki", "loki.http"),
    # Grafana's own /metrics where its binary runs (GrafanaDown reads `up{job="grafana"}`).
    ("grafana", "grafana.http"),
)


def scrape_jobs(topology: Topology, me: Settings) -> list[ScrapeJob]:
    """The scrape jobs for the whole environment: every listener of SCRAPED, on every host that has it."""
    from roles.grafana.config import public_name

    jobs = []
    for job, listener in SCRAPED:
        targets = tuple(Target(host, address) for host, address in topology.addresses(listener))
        if targets or job in ("prometheus", "alertmanager", "node"):
            path = me.backend.metrics_path if job == "sentinel-backend" else "/metrics"
            # Every Grafana is verified by one name, or none (preflight): this monitoring host's settings say which.
            name = public_name(me.grafana, me.address) if job == "grafana" else None
            jobs.append(ScrapeJob(job, targets, path, is_tls(listener), name))
    return jobs


# With several monitoring hosts each Prometheus evaluates the same rules and sends the same
# alerts; this external label tells their series apart (federation, remote write) and is
# dropped from the alerts, so both copies of an alert are one alert to Alertmanager.
REPLICA_LABEL = "replica"


def replicas(topology: Topology) -> int:
    """How many Prometheus the environment runs (one per monitoring host)."""
    return len(topology.addresses("prometheus.web"))


def alertmanagers(topology: Topology) -> list[str]:
    """host:port of every Alertmanager; Prometheus sends each alert to all of them."""
    return [address for _, address in topology.addresses("alertmanager.web")]


def config(settings: Settings, jobs: list[ScrapeJob], alertmanager_targets: list[str] = (), tls: TlsPaths = TLS,
           replica: str = "") -> dict:
    """prometheus.yml as a structure, dumped by `render_config`.

    + tls: where Prometheus's client certificate is (its pushes to the Alertmanagers)
    + replica: this Prometheus's name in a pair (the host name); empty for the only one
    """
    prom = settings.prometheus
    environment = settings.environment
    # `environment` and `replica` are the toolkit's (the settings refuse them in external_labels).
    external_labels = {"environment": environment, **dict(sorted(prom.external_labels.items()))}
    external_labels["environment"] = environment  # the inventory's, always (even from settings not validated)
    external_labels.pop(REPLICA_LABEL, None)
    if replica:
        external_labels[REPLICA_LABEL] = replica
    data: dict = {
        "global": {
            "scrape_interval": prom.scrape_interval,
            "evaluation_interval": prom.evaluation_interval,
            "external_labels": external_labels,
        },
        "rule_files": ["/etc/prometheus/rules/*.yml"],
    }
    if alertmanager_targets:
        # Every alert goes to every monitoring host's Alertmanager, directly (never through a
        # load balancer); they deduplicate by gossip. Over TLS with Prometheus's own
        # certificate (each Alertmanager admits every Prometheus by name).
        data["alerting"] = {"alertmanagers": [{
            "scheme": "https", "tls_config": client_tls_config(tls), "static_configs": [{"targets": list(alertmanager_targets)}],
        }]}
        if replica:
            # Both Prometheus of a pair send the same alert: without the replica label it is one alert.
            data["alerting"]["alert_relabel_configs"] = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
    scrape_configs = []
    for job in jobs:
        scrape_config: dict = {"job_name": job.name}
        if job.metrics_path != "/metrics":
            scrape_config["metrics_path"] = job.metrics_path
        if job.tls:
            scrape_config["scheme"] = "https"
            scrape_config["tls_config"] = client_tls_config(tls, job.public_name)
            if job.public_name:  # a public CA's certificate: the system's roots verify it, not the environment CA
                del scrape_config["tls_config"]["ca_file"]
        scrape_config["static_configs"] = [
            {"targets": [target.address], "labels": {"host": target.host, "environment": environment}} for target in job.targets
        ]
        scrape_configs.append(scrape_config)
    data["scrape_configs"] = scrape_configs
    return data


def render_config(settings: Settings, jobs: list[ScrapeJob], alertmanager_targets: list[str] = (), tls: TlsPaths = TLS,
                  replica: str = "") -> str:
    """prometheus.yml: the structure from `config`, dumped as YAML (no value is pasted into text)."""
    return dump_yaml(config(settings, jobs, alertmanager_targets, tls, replica))


def grafana_url(ctx: HostContext) -> str:
    """Where dashboard links point: the setting, else Grafana's own `root_url` (the public name its operator
    certificate covers, when set), else this host's Grafana (grafana.http_port, even where no binary runs)."""
    from roles.grafana.config import root_url

    me = ctx.settings
    if me.alerting.grafana_url:
        return str(me.alerting.grafana_url)
    return root_url(me.grafana, me.address).rstrip("/")  # https only: Grafana serves nothing else


def render_alert_rules(settings: Settings, ctx: HostContext) -> str:
    """The alert catalog as this environment's rule file (runbook and dashboard links resolved).

    Empty when Grafana evaluates the catalog (`alerting.evaluator: grafana`), so no alert pages twice;
    promtool still checks the empty file before it replaces the live one.
    """
    if settings.alerting.evaluator == "grafana":
        return RULES_HEADER + "# alerting.evaluator is grafana: Grafana evaluates the catalog, Prometheus none of it.\ngroups: []\n"
    alerts = with_for_at_most(load_catalog(), settings.alerting.lab_rule_for_at_most)
    return render_rules(alerts, settings.alerting.runbook_base_url, grafana_url(ctx))


def service_spec(settings: Settings, config: str, rules: str | None = None, bind: str = "", tls: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """
    The Prometheus service.

    + settings: the host's settings
    + bind: ip:port of prometheus.web from the topology
    + config: the rendered prometheus.yml
    + rules: the rendered alert rule file; None installs none
    + tls: the certificate files and web config (`tls_configs`); none = plain HTTP
    """
    prom = settings.prometheus
    retention = prometheus_flags(settings.retention)  # the retention policy, docs/retention.md
    args = [
        "{bin}/prometheus",
        f"--config.file={CONFIG}",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--storage.tsdb.retention.time={retention['storage.tsdb.retention.time']}",
        f"--web.listen-address={bind}",
        # No --web.enable-lifecycle: POST /-/quit and /-/reload stay refused (403). The
        # role reloads with SIGHUP; nothing needs the HTTP lifecycle API.
        # Firing alerts are re-sent every evaluation and Alertmanager holds each for 4 x this
        # delay after the last one (default 1m: 4 minutes). Short, a dead Prometheus's
        # Watchdog resolves within 4 evaluations and the dead man's switch hears it in time.
        f"--rules.alert.resend-delay={prom.evaluation_interval}",
    ]
    if tls:
        args.append(f"--web.config.file={TLS.web_config}")
    if "storage.tsdb.retention.size" in retention:
        args.append(f"--storage.tsdb.retention.size={retention['storage.tsdb.retention.size']}")
    if prom.remote_write_receiver:
        args.append("--web.enable-remote-write-receiver")
    # The certificates and web config before prometheus.yml, whose tls_config names the files.
    configs = (*tls, ConfigFile(CONFIG, config, validate="{bin}/promtool check config {path}"))
    if rules is not None:
        # The rules first: `promtool check config` then checks the config with them.
        configs = (*tls, ConfigFile(RULES_FILE, rules, validate="{bin}/promtool check rules {path}"), *configs[len(tls):])
    return ServiceSpec(
        name="prometheus",
        description="Prometheus monitoring system",
        exec_start=tuple(args),
        configs=configs,
        config_dirs=("/etc/prometheus/rules", *((TLS.dir,) if tls else ())),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"{'https' if tls else 'http'}://{bind}/-/ready",
        ready_curl_args=TLS.curl_args() if tls else (),
    )


def host_config(ctx: HostContext, tls: TlsPaths = TLS) -> str:
    """This host's prometheus.yml: the environment's scrape jobs and Alertmanagers, its replica label in a pair."""
    me = ctx.settings
    replica = ctx.name if replicas(ctx.topology) > 1 else ""  # one Prometheus: no replica label
    return render_config(me, scrape_jobs(ctx.topology, me), alertmanagers(ctx.topology), tls, replica)


def tls_configs(ctx: HostContext, certificate) -> tuple[ConfigFile, ...]:
    """Prometheus's certificate files and the web config admitting the topology's clients (promtool checks it)."""
    allowed = allowed_clients(ctx.topology, ctx.name, "prometheus.web")
    return (*tls_files("prometheus", certificate),
            ConfigFile(TLS.web_config, web_config(TLS, allowed), validate="{bin}/promtool check web-config {path}"))


@deploy("Prometheus")
def prometheus(settings: PrometheusSettings, ctx: HostContext):
    """
    Install Prometheus, scrape every component of the environment, evaluate the alert catalog.

    + settings: the `prometheus` block (retention and alert links come from the host's settings in `ctx`)
    + ctx: the host context: its bind, the scrape targets and Alertmanagers from the topology
    """
    me = ctx.settings
    config = host_config(ctx)
    rules = render_alert_rules(me, ctx)
    certificate = leaf(ctx, "prometheus", "prometheus.web")
    spec = service_spec(me, config, rules, ctx.bind("prometheus.web"), tls_configs(ctx, certificate))
    release_service(spec, ctx.artifact_base_url, ctx.hardening)
    certificate_expiry(ctx.settings.node_exporter.textfile_dir, "prometheus", certificate)
