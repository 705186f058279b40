"""Prometheus on the `monitoring` hosts: scrapes the stack, keeps 15 days by default."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, inventory
from pyinfra.api import deploy

from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.render import render
# Imported as a module: the settings model imports each role's settings.
from roles import _settings

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


def scrape_jobs(hosts_by_group: dict[str, list[tuple[str, _settings.Settings]]], me: _settings.Settings) -> list[ScrapeJob]:
    """The scrape jobs for the whole environment, derived from the inventory."""

    def targets(group: str, port_of) -> tuple[Target, ...]:
        return tuple(Target(name, f"{s.address}:{port_of(s)}") for name, s in sorted(hosts_by_group.get(group, [])))

    every_host = sorted({name: s for group in hosts_by_group.values() for name, s in group}.items())
    return [
        ScrapeJob("prometheus", targets("monitoring", lambda s: s.prometheus.listen_port)),
        ScrapeJob("node", tuple(Target(name, f"{s.address}:{s.node_exporter.listen_port}") for name, s in every_host)),
        ScrapeJob("sentinel-backend", targets("app", lambda s: s.backend.port), me.backend.metrics_path),
    ]


def render_config(settings: _settings.Settings, jobs: list[ScrapeJob]) -> str:
    return render(
        "prometheus/prometheus.yml.j2", settings=settings.prometheus, environment=settings.environment, scrape_jobs=jobs
    )


def service_spec(settings: _settings.Settings, config: str) -> ServiceSpec:
    prom = settings.prometheus
    args = [
        "{bin}/prometheus",
        f"--config.file={CONFIG}",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--storage.tsdb.retention.time={prom.retention_time}",
        f"--web.listen-address=:{prom.listen_port}",
        "--web.enable-lifecycle",
    ]
    if prom.retention_size != "0":
        args.append(f"--storage.tsdb.retention.size={prom.retention_size}")
    if prom.remote_write_receiver:
        args.append("--web.enable-remote-write-receiver")
    return ServiceSpec(
        name="prometheus",
        description="Prometheus monitoring system",
        exec_start=tuple(args),
        configs=(ConfigFile(CONFIG, config, validate="{bin}/promtool check config {path}"),),
        config_dirs=("/etc/prometheus/rules",),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"http://127.0.0.1:{prom.listen_port}/-/ready",
    )


def _environment_hosts() -> dict[str, list[tuple[str, _settings.Settings]]]:
    by_group: dict[str, list[tuple[str, _settings.Settings]]] = {}
    for other in inventory:
        settings = _settings.settings_for(other)
        for group in other.groups:
            by_group.setdefault(group, []).append((other.name, settings))
    return by_group


@deploy("Prometheus")
def prometheus():
    """Install Prometheus and scrape every component of the environment."""
    settings = _settings.settings_for(host)
    config = render_config(settings, scrape_jobs(_environment_hosts(), settings))
    release_service(service_spec(settings, config), settings.artifact_base_url, settings.systemd_hardening)
