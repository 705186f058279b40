"""What Grafana queries: Prometheus and Alertmanager on its own host, the trace and log stores on telemetry.

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
    return Peers(
        prometheus_url=ctx.topology.url("prometheus.web", ctx.name, scheme="https" if client_tls else "http"),
        alertmanager_url=ctx.topology.url("alertmanager.web", ctx.name, scheme="https" if client_tls else "http"),
        traces=traces,
        traces_url=ctx.url(query[traces]),
        logs=logs,
        logs_url=ctx.url(query[logs]),
        scrape_interval=me.prometheus.scrape_interval,
        client_tls=client_tls,
    )
