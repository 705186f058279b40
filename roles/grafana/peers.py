"""What Grafana queries: Prometheus and Alertmanager on its own host, the trace and log stores on telemetry.

Pure functions of the validated settings (no pyinfra): deploy.py calls
`grafana_peers(me, hosts_by_group)` and hands the result to the role.

The trace and log store are the environment's choice in group data
(`traces.store: tempo|jaeger`, `logs.store: loki|victorialogs`,
roles/otel_collector/settings.py); their query ports are the telemetry host's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roles.grafana.provisioning import Peers

if TYPE_CHECKING:  # the role's helpers get settings as arguments and import no aggregate
    from roles._settings import Settings

def stores(settings: Settings) -> tuple[str, str]:
    """(trace store, log store) of the host's environment, from group data."""
    return settings.traces.store, settings.logs.store


def store_ports(store_host: Settings) -> dict[str, int]:
    """Query port of each store on the telemetry host (Tempo's HTTP API, Jaeger query, Loki, VictoriaLogs)."""
    return {
        "tempo": store_host.traces.tempo.http_port,
        "jaeger": store_host.traces.jaeger.query_port,
        "loki": store_host.loki.http_port,
        "victorialogs": store_host.victorialogs.port,
    }


def grafana_peers(me: Settings, hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> Peers:
    """The datasources' URLs for a monitoring host: its own Prometheus and Alertmanager, the first telemetry host's stores."""
    traces, logs = stores(me)
    telemetry = sorted(hosts_by_group.get("telemetry", []))
    store_host = telemetry[0][1] if telemetry else me
    ports = store_ports(store_host)
    return Peers(
        prometheus_url=f"http://{me.address}:{me.prometheus.listen_port}",
        alertmanager_url=f"http://{me.address}:{me.alerting.listen_port}",
        traces=traces,
        traces_url=f"http://{store_host.address}:{ports[traces]}",
        logs=logs,
        logs_url=f"http://{store_host.address}:{ports[logs]}",
        scrape_interval=me.prometheus.scrape_interval,
    )
