"""What Grafana queries: Prometheus and Alertmanager on its own host, the trace and log stores on telemetry.

With several monitoring hosts, each Grafana's default Prometheus and its Alertmanager stay its own
host's: a Grafana and the Prometheus it reads fail together, and users behind the load balancer
move to the other Grafana, which reads the other Prometheus (both scrape the same targets and hold
the same series, apart from the gaps of their own outages). Each Prometheus of the pair is also a
datasource by name, to read the other copy across a gap. One Alertmanager is enough: the cluster
gossips silences and notification state, so each shows the same alerts and a silence set on one
holds on all.

Pure functions of the topology (no pyinfra): the role calls `grafana_peers(ctx)`.

The trace and log store are the environment's choice in group data
(`traces.store: tempo|jaeger`, `logs.store: loki|victorialogs`,
roles/otel_collector/settings.py); their query ports are the telemetry host's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roles.grafana.provisioning import Peers

if TYPE_CHECKING:  # the role's helpers get settings as arguments and import no aggregate
    from roles._context import HostContext
    from roles._settings import Settings

def stores(settings: Settings) -> tuple[str, str]:
    """(trace store, log store) of the host's environment, from group data."""
    return settings.traces.store, settings.logs.store


def grafana_peers(ctx: HostContext, client_tls: tuple[str, str, str] | None = None) -> Peers:
    """The datasources' URLs for a monitoring host, from the topology: its own Prometheus and
    Alertmanager, the environment's trace and log store (each on the listener its settings give).
    `client_tls`: (CA, certificate, key) PEMs of Grafana's identity; Prometheus and Alertmanager are then https."""
    me = ctx.settings
    traces, logs = stores(me)
    query = {"tempo": "tempo.http", "jaeger": "jaeger.query", "loki": "loki.http", "victorialogs": "victorialogs.http"}
    scheme = "https" if client_tls else "http"
    return Peers(
        prometheus_url=ctx.topology.url("prometheus.web", ctx.name, scheme=scheme),
        alertmanager_url=ctx.topology.url("alertmanager.web", ctx.name, scheme=scheme),
        traces=traces,
        # The stores are https with client certificates too (issue 22, roles/_tls.py STORE_TLS_LISTENERS).
        # With stores.mode scalable every telemetry host runs Loki and Tempo; a datasource takes one URL: the read
        # path of stores.host's (`Topology.primary`), which queries the whole ring (docs/architecture.md "Scalable stores").
        traces_url=f"{_scheme(query[traces], client_tls)}://{ctx.topology.primary(query[traces], ctx.name)}",
        logs=logs,
        logs_url=f"{_scheme(query[logs], client_tls)}://{ctx.topology.primary(query[logs], ctx.name)}",
        scrape_interval=me.prometheus.scrape_interval,
        prometheus_replicas=_replicas(ctx, scheme) if len(ctx.topology.instances("prometheus.web")) > 1 else (),
        client_tls=client_tls,
    )


def _scheme(listener: str, client_tls) -> str:
    from roles._tls import is_tls

    return "https" if client_tls and is_tls(listener) else "http"


def _replicas(ctx: HostContext, scheme: str) -> tuple[tuple[str, str], ...]:
    """(host, URL) of every Prometheus of the pair; https (with Grafana's client certificate) when TLS is on."""
    return tuple((l.host, f"{scheme}://{l.reach(ctx.name)}") for l in ctx.topology.instances("prometheus.web"))


def grafana_ha(ctx: HostContext) -> dict[str, str] | None:
    """[unified_alerting]'s HA keys where several Grafanas run (the topology's grafana.ha listeners), else None."""
    from roles.grafana.config import ha_section

    if not ctx.topology.instances("grafana.ha") or not ctx.settings.grafana.install_binary:
        return None
    peers = [address for host, address in ctx.topology.addresses("grafana.ha") if host != ctx.name]
    return ha_section(ctx.environment, ctx.bind("grafana.ha"), peers, ctx.settings.alerting.cluster_peer_timeout)
