"""The Grafana role's arguments for one host, from the validated settings of the environment.

Kept out of roles/grafana/__init__.py so the role itself takes explicit
arguments. The trace and log stores come from the `traces.store` and
`logs.store` settings once the traces and logs roles declare them; until then
the lab uses Jaeger and VictoriaLogs and every other environment Tempo and Loki.
"""

from __future__ import annotations

from roles import _settings

STORE_PORTS = {"tempo": 3200, "jaeger": 16686, "loki": 3100, "victorialogs": 9428}
DEFAULT_STORES = {"lab": ("jaeger", "victorialogs")}


def stores(settings) -> tuple[str, str]:
    """(trace store, log store) of the environment."""
    default_traces, default_logs = DEFAULT_STORES.get(settings.environment, ("tempo", "loki"))
    traces = getattr(getattr(settings, "traces", None), "store", None) or default_traces
    logs = getattr(getattr(settings, "logs", None), "store", None) or default_logs
    return traces, logs


def arguments(me: _settings.Settings, telemetry_addresses: list[str]) -> dict:
    """Keyword arguments of roles.grafana.grafana for a monitoring host."""
    traces, logs = stores(me)
    telemetry = sorted(telemetry_addresses)[0] if telemetry_addresses else me.address
    return {
        "settings": me.grafana,
        "alerting": me.alerting,
        "environment": me.environment,
        "address": me.address,
        "artifact_base_url": me.artifact_base_url,
        "prometheus_url": f"http://{me.address}:{me.prometheus.listen_port}",
        "alertmanager_url": f"http://{me.address}:{me.alerting.listen_port}",
        "traces_store": traces,
        "traces_url": f"http://{telemetry}:{STORE_PORTS[traces]}",
        "logs_store": logs,
        "logs_url": f"http://{telemetry}:{STORE_PORTS[logs]}",
        "scrape_interval": me.prometheus.scrape_interval,
        "hardening": me.systemd_hardening,
    }


def arguments_for(host) -> dict:
    """The role's arguments for a pyinfra host (in deploy.py)."""
    from pyinfra import inventory

    telemetry = [_settings.settings_for(h).address for h in inventory.get_group("telemetry", [])]
    return arguments(_settings.settings_for(host), telemetry)
