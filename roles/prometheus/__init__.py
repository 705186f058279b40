"""Prometheus on the `monitoring` hosts: scrapes the stack, keeps 15 days by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfra.api import deploy

from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.render import dump_yaml
from roles.alerting.catalog import load_catalog
from roles.alerting.rules import HEADER as RULES_HEADER, RULES_FILE, render_rules
from roles.retention import prometheus_flags

if TYPE_CHECKING:  # the role gets its settings and peers as arguments and imports no aggregate
    from roles._settings import Settings

CONFIG = "/etc/prometheus/prometheus.yml"
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


def scrape_jobs(hosts_by_group: dict[str, list[tuple[str, Settings]]], me: Settings) -> list[ScrapeJob]:
    """The scrape jobs for the whole environment, derived from the inventory."""

    def targets(group: str, port_of) -> tuple[Target, ...]:
        return tuple(Target(name, f"{s.address}:{port_of(s)}") for name, s in sorted(hosts_by_group.get(group, [])))

    every_host = sorted({name: s for group in hosts_by_group.values() for name, s in group}.items())
    return [
        ScrapeJob("prometheus", targets("monitoring", lambda s: s.prometheus.listen_port)),
        ScrapeJob("alertmanager", targets("monitoring", lambda s: s.alerting.listen_port)),
        ScrapeJob("node", tuple(Target(name, f"{s.address}:{s.node_exporter.listen_port}") for name, s in every_host)),
        ScrapeJob("sentinel-backend", targets("app", lambda s: s.backend.port), me.backend.metrics_path),
        *pipeline_jobs(hosts_by_group),
        *grafana_jobs(hosts_by_group),
    ]


def grafana_jobs(hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> list[ScrapeJob]:
    """Grafana's own /metrics where its binary runs (GrafanaDown reads `up{job="grafana"}`).

    The lab installs Grafana's files only (grafana.install_binary: false), so it has no job.
    """
    hosts = tuple(
        Target(name, f"{s.address}:{s.grafana.http_port}")
        for name, s in sorted(hosts_by_group.get("monitoring", []))
        if s.grafana.install_binary
    )
    return [ScrapeJob("grafana", hosts)] if hosts else []


def pipeline_jobs(hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> list[ScrapeJob]:
    """The collectors (gateway and agents) and the trace and log stores each telemetry host chose."""
    collectors = sorted({name: s for group in ("telemetry", "app") for name, s in hosts_by_group.get(group, [])}.items())
    telemetry = sorted(hosts_by_group.get("telemetry", []))

    def stores(job: str, chosen, port_of) -> ScrapeJob | None:
        hosts = tuple(Target(name, f"{s.address}:{port_of(s)}") for name, s in telemetry if chosen(s))
        return ScrapeJob(job, hosts) if hosts else None

    jobs = [ScrapeJob("otelcol", tuple(Target(name, f"{s.address}:{s.otel_collector.metrics_port}") for name, s in collectors))] if collectors else []
    jobs += [
        stores("jaeger", lambda s: s.traces.store == "jaeger", lambda s: s.traces.jaeger.metrics_port),
        stores("tempo", lambda s: s.traces.store == "tempo", lambda s: s.traces.tempo.http_port),
        stores("victorialogs", lambda s: s.logs.store == "victorialogs", lambda s: s.victorialogs.port),
        stores("loki", lambda s: s.logs.store == "loki", lambda s: s.loki.http_port),
    ]
    return [job for job in jobs if job is not None]


def alertmanagers(hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> list[str]:
    """host:port of every monitoring host's Alertmanager; Prometheus sends each alert to all of them."""
    return [f"{s.address}:{s.alerting.listen_port}" for _, s in sorted(hosts_by_group.get("monitoring", []))]


def config(settings: Settings, jobs: list[ScrapeJob], alertmanager_targets: list[str] = ()) -> dict:
    """prometheus.yml as a structure, dumped by `render_config`."""
    prom = settings.prometheus
    environment = settings.environment
    external_labels = {"environment": environment, **dict(sorted(prom.external_labels.items()))}
    external_labels["environment"] = environment  # the environment label is the inventory's, always
    data: dict = {
        "global": {
            "scrape_interval": prom.scrape_interval,
            "evaluation_interval": prom.evaluation_interval,
            "external_labels": external_labels,
        },
        "rule_files": ["/etc/prometheus/rules/*.yml"],
    }
    if alertmanager_targets:
        # Every alert goes to every monitoring host's Alertmanager; they deduplicate.
        data["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanager_targets)}]}]}
    scrape_configs = []
    for job in jobs:
        scrape_config: dict = {"job_name": job.name}
        if job.metrics_path != "/metrics":
            scrape_config["metrics_path"] = job.metrics_path
        scrape_config["static_configs"] = [
            {"targets": [target.address], "labels": {"host": target.host, "environment": environment}} for target in job.targets
        ]
        scrape_configs.append(scrape_config)
    data["scrape_configs"] = scrape_configs
    return data


def render_config(settings: Settings, jobs: list[ScrapeJob], alertmanager_targets: list[str] = ()) -> str:
    """prometheus.yml: the structure from `config`, dumped as YAML (no value is pasted into text)."""
    return dump_yaml(config(settings, jobs, alertmanager_targets))


def grafana_url(hosts_by_group: dict[str, list[tuple[str, Settings]]], me: Settings) -> str:
    """Where dashboard links point: the setting, or Grafana's port on the first monitoring host."""
    if me.alerting.grafana_url:
        return me.alerting.grafana_url
    monitoring = sorted(hosts_by_group.get("monitoring", []))
    return f"http://{monitoring[0][1].address if monitoring else me.address}:3000"


def render_alert_rules(settings: Settings, hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> str:
    """The alert catalog as this environment's rule file (runbook and dashboard links resolved).

    Empty when Grafana evaluates the catalog (`alerting.evaluator: grafana`), so no alert pages twice;
    promtool still checks the empty file before it replaces the live one.
    """
    if settings.alerting.evaluator == "grafana":
        return RULES_HEADER + "# alerting.evaluator is grafana: Grafana evaluates the catalog, Prometheus none of it.\ngroups: []\n"
    return render_rules(load_catalog(), settings.alerting.runbook_base_url, grafana_url(hosts_by_group, settings))


def service_spec(settings: Settings, config: str, rules: str | None = None) -> ServiceSpec:
    """
    The Prometheus service.

    + settings: the host's settings
    + config: the rendered prometheus.yml
    + rules: the rendered alert rule file; None installs none
    """
    prom = settings.prometheus
    retention = prometheus_flags(settings.retention)  # the retention policy, docs/retention.md
    args = [
        "{bin}/prometheus",
        f"--config.file={CONFIG}",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--storage.tsdb.retention.time={retention['storage.tsdb.retention.time']}",
        f"--web.listen-address=:{prom.listen_port}",
        "--web.enable-lifecycle",
    ]
    if "storage.tsdb.retention.size" in retention:
        args.append(f"--storage.tsdb.retention.size={retention['storage.tsdb.retention.size']}")
    if prom.remote_write_receiver:
        args.append("--web.enable-remote-write-receiver")
    configs = (ConfigFile(CONFIG, config, validate="{bin}/promtool check config {path}"),)
    if rules is not None:
        # The rules first: `promtool check config` then checks the config with them.
        configs = (ConfigFile(RULES_FILE, rules, validate="{bin}/promtool check rules {path}"), *configs)
    return ServiceSpec(
        name="prometheus",
        description="Prometheus monitoring system",
        exec_start=tuple(args),
        configs=configs,
        config_dirs=("/etc/prometheus/rules",),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"http://127.0.0.1:{prom.listen_port}/-/ready",
    )


@deploy("Prometheus")
def prometheus(settings: Settings, hosts_by_group: dict[str, list[tuple[str, Settings]]]):
    """
    Install Prometheus, scrape every component of the environment, evaluate the alert catalog.

    + settings: this host's settings (prometheus, retention, alerting links, artifact_base_url, systemd_hardening)
    + hosts_by_group: (name, settings) of every host per group: the scrape targets and Alertmanagers
    """
    config = render_config(settings, scrape_jobs(hosts_by_group, settings), alertmanagers(hosts_by_group))
    rules = render_alert_rules(settings, hosts_by_group)
    release_service(service_spec(settings, config, rules), settings.artifact_base_url, settings.systemd_hardening)
