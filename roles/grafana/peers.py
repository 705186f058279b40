"""What Grafana queries: Prometheus and Alertmanager on its own host, the trace and log stores on telemetry.

Pure functions of the validated settings (no pyinfra): deploy.py calls
`grafana_peers(me, hosts_by_group)` and hands the result to the role.

The trace and log store choice (`stores`) is THE place to switch once the
traces engineer's settings are on main (`traces.store: tempo|jaeger`,
`logs.store: loki|victorialogs`, roles/otel_collector/settings.py on branch
`traces`): until then it reads them defensively and falls back to the lab's
Jaeger + VictoriaLogs and Tempo + Loki everywhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roles.grafana.provisioning import Peers

if TYPE_CHECKING:  # the role's helpers get settings as arguments and import no aggregate
    from roles._settings import Settings

# Query ports of each store (Tempo's HTTP API, Jaeger query, Loki, VictoriaLogs).
STORE_PORTS = {"tempo": 3200, "jaeger": 16686, "loki": 3100, "victorialogs": 9428}
# Until `traces.store` / `logs.store` exist: what each environment runs.
DEFAULT_STORES = {"lab": ("jaeger", "victorialogs")}


def stores(settings: Settings) -> tuple[str, str]:
    """(trace store, log store) of the host's environment.

    INTEGRATOR: when Settings gains `traces` and `logs` blocks with a `store` key,
    replace the getattr lookups with `settings.traces.store, settings.logs.store`
    and delete DEFAULT_STORES (tests/unit/test_grafana.py pins today's fallback).
    """
    default_traces, default_logs = DEFAULT_STORES.get(settings.environment, ("tempo", "loki"))
    traces = getattr(getattr(settings, "traces", None), "store", None) or default_traces
    logs = getattr(getattr(settings, "logs", None), "store", None) or default_logs
    return traces, logs


def grafana_peers(me: Settings, hosts_by_group: dict[str, list[tuple[str, Settings]]]) -> Peers:
    """The datasources' URLs for a monitoring host: its own Prometheus and Alertmanager, the first telemetry host's stores."""
    traces, logs = stores(me)
    telemetry = sorted(hosts_by_group.get("telemetry", []))
    store_host = telemetry[0][1].address if telemetry else me.address
    return Peers(
        prometheus_url=f"http://{me.address}:{me.prometheus.listen_port}",
        alertmanager_url=f"http://{me.address}:{me.alerting.listen_port}",
        traces=traces,
        traces_url=f"http://{store_host}:{STORE_PORTS[traces]}",
        logs=logs,
        logs_url=f"http://{store_host}:{STORE_PORTS[logs]}",
        scrape_interval=me.prometheus.scrape_interval,
    )
