"""The placement table: which component runs on which hosts, and what it listens on.

One row per component. `runs(host)` says whether a host of the environment runs it
(from its groups and its own settings); `listeners(settings)` publishes the
component's listeners from the component's own settings block. Nothing else in
the toolkit decides where a component runs or which port it holds: the topology
(roles/_topology.py) assembles these rows, deploy.py reads `runs`, the firewall,
the binds, the scrape jobs, the peers' URLs and docs/architecture.md's port table
are derived from the same rows.

A listener's scope says where it binds:
- ``host``: the host's own IP (`ip`), reached by the peers the flows name;
- ``local``: 127.0.0.1, for health checks, admin ports and what only the host itself uses;
- ``any``: every address; only sshd, which the toolkit does not configure (the firewall
  still lets only the admin networks and declared flows in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

if TYPE_CHECKING:  # rows read the validated settings; this module imports no aggregate
    from roles._environment import EnvHost
    from roles._settings import Settings

Scope = Literal["host", "local", "any"]


@dataclass(frozen=True)
class ListenerSpec:
    """What a component listens on, as its settings say (the topology adds the host and the bind address)."""

    name: str  # unique per host: "<component>.<what>", e.g. "prometheus.web"
    port: int
    scope: Scope
    purpose: str
    protocols: tuple[str, ...] = ("tcp",)


@dataclass(frozen=True)
class Component:
    """A row of the placement table."""

    name: str
    groups: tuple[str, ...]  # the host must be in one of these groups
    listeners: Callable[["Settings"], tuple[ListenerSpec, ...]] = lambda s: ()
    # Beyond the groups: the component's own switches (the chosen store, a binary installed).
    when: Callable[["Settings"], bool] = lambda s: True

    def runs(self, host: "EnvHost") -> bool:
        return any(g in host.groups for g in self.groups) and self.when(host.settings)


ALL = ("monitoring", "telemetry", "app")


def _node_exporter(s: "Settings"):
    return (ListenerSpec("node_exporter.metrics", s.node_exporter.listen_port, "host", "host metrics, scraped by Prometheus"),)


def _prometheus(s: "Settings"):
    return (ListenerSpec("prometheus.web", s.prometheus.listen_port, "host", "query API, /metrics, remote-write receiver"),)


def _alertmanager(s: "Settings"):
    return (ListenerSpec("alertmanager.web", s.alerting.listen_port, "host", "alerts from Prometheus, silences, /metrics"),)


def _alertmanager_cluster(s: "Settings"):
    return (ListenerSpec("alertmanager.cluster", s.alerting.cluster_port, "host", "gossip between Alertmanagers", ("tcp", "udp")),)


def _grafana(s: "Settings"):
    # Without its binary (the lab) Grafana's files are installed and nothing listens.
    if not s.grafana.install_binary:
        return ()
    return (ListenerSpec("grafana.http", s.grafana.http_port, "host", "dashboards, HTTP API, /metrics"),)


def _object_store(s: "Settings"):
    return (ListenerSpec("object_store.s3", s.object_store.listen_port, "local", "S3 API for the stores on this host"),)


def _jaeger(s: "Settings"):
    t, j = s.traces, s.traces.jaeger
    return (
        ListenerSpec("jaeger.otlp_http", t.otlp_http_port, "host", "OTLP/HTTP spans from the gateway"),
        # Nothing sends OTLP/gRPC to the store: kept on the loopback only.
        ListenerSpec("jaeger.otlp_grpc", t.otlp_grpc_port, "local", "OTLP/gRPC receiver (unused by the flows)"),
        ListenerSpec("jaeger.query", j.query_port, "host", "HTTP query API (Grafana, operators)"),
        ListenerSpec("jaeger.query_grpc", j.query_grpc_port, "local", "gRPC query API (unused by the flows)"),
        ListenerSpec("jaeger.metrics", j.metrics_port, "host", "Jaeger's own /metrics"),
        ListenerSpec("jaeger.health", j.health_port, "local", "readiness check"),
    )


def _tempo(s: "Settings"):
    t, tempo = s.traces, s.traces.tempo
    return (
        ListenerSpec("tempo.otlp_http", t.otlp_http_port, "host", "OTLP/HTTP spans from the gateway"),
        ListenerSpec("tempo.otlp_grpc", t.otlp_grpc_port, "local", "OTLP/gRPC receiver (unused by the flows)"),
        ListenerSpec("tempo.http", tempo.http_port, "host", "query API (Grafana), /ready, /metrics"),
        ListenerSpec("tempo.grpc", tempo.grpc_port, "local", "Tempo's internal gRPC"),
    )


def _victorialogs(s: "Settings"):
    return (ListenerSpec("victorialogs.http", s.victorialogs.port, "host", "OTLP logs in, queries, deletes, /metrics"),)


def _loki(s: "Settings"):
    return (
        ListenerSpec("loki.http", s.loki.http_port, "host", "OTLP logs in, queries, deletes, /metrics"),
        ListenerSpec("loki.grpc", s.loki.grpc_port, "local", "Loki talking to itself"),
    )


def _collector(s: "Settings"):
    c = s.otel_collector
    return (
        ListenerSpec("otelcol.metrics", c.metrics_port, "host", "the collector's own /metrics"),
        ListenerSpec("otelcol.health", c.health_port, "local", "readiness check"),
    )


def _gateway(s: "Settings"):
    c = s.otel_collector
    return (
        ListenerSpec("gateway.otlp_grpc", c.grpc_port, "host", "OTLP/gRPC from backends"),
        ListenerSpec("gateway.otlp_http", c.http_port, "host", "OTLP/HTTP from backends and agents"),
    )


def _backend(s: "Settings"):
    return (ListenerSpec("backend.http", s.backend.port, "host", "the backend's HTTP port (users, /metrics)"),)


def _ssh(s: "Settings"):
    return (ListenerSpec("ssh", s.firewall.ssh_port, "any", "sshd (the controller, declared flows)"),)


# The placement table. Order is the deploy order within a host.
COMPONENTS: tuple[Component, ...] = (
    Component("sshd", ALL, _ssh),
    Component("firewall", ALL, when=lambda s: s.firewall.enabled),
    Component("node_exporter", ALL, _node_exporter),
    Component("object_store", ("telemetry",), _object_store),
    Component("jaeger", ("telemetry",), _jaeger, when=lambda s: s.traces.store == "jaeger"),
    Component("tempo", ("telemetry",), _tempo, when=lambda s: s.traces.store == "tempo"),
    Component("victorialogs", ("telemetry",), _victorialogs, when=lambda s: s.logs.store == "victorialogs"),
    Component("loki", ("telemetry",), _loki, when=lambda s: s.logs.store == "loki"),
    Component("otelcol", ("telemetry", "app"), _collector),
    Component("gateway", ("telemetry",), _gateway),
    Component("agent", ("app",)),
    Component("prometheus", ("monitoring",), _prometheus),
    Component("alertmanager", ("monitoring",), _alertmanager),
    Component("grafana_backup", ("monitoring",), when=lambda s: s.grafana_backup.enabled),
    Component("grafana", ("monitoring",), _grafana),
    Component("backend", ("app",), _backend),
)

# The gossip port exists only with peers: the topology adds it when the environment
# has more than one Alertmanager.
ALERTMANAGER_CLUSTER_LISTENERS = _alertmanager_cluster


def component(name: str) -> Component:
    return next(c for c in COMPONENTS if c.name == name)
