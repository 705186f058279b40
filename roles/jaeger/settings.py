"""Settings of Jaeger v2 (the lab's trace store, and the permissively licensed alternative to Tempo)."""

from __future__ import annotations

from pydantic import Field

from roles._model import ServiceDir, Model, Port


class JaegerSettings(Model):
    """Jaeger v2 (`jaeger --config=...`) on the `telemetry` hosts, Badger on local disk.

    Its OTLP receiver listens on `traces.otlp_grpc_port` / `traces.otlp_http_port`
    (4417/4418: the collector gateway on the same host holds 4317/4318), and its
    span TTL is `traces.retention`.
    """

    query_port: Port = Field(16686, description="UI and HTTP query API (/api/traces/<id>).")
    query_grpc_port: Port = Field(16685, description="gRPC query API (api_v2/api_v3).")
    # Not 8888, the collector's usual port: the gateway on the same host uses 8889.
    metrics_port: Port = Field(8888, description="Jaeger's own Prometheus metrics (/metrics).")
    # Not 13133: the collector gateway's health_check holds it on the same host.
    health_port: Port = Field(13134, description="healthcheckv2 extension (/status), the readiness check.")
    # Jaeger itself behind its authenticating front (roles/jaeger/front.py), which holds the ports above on the host's IP.
    local_otlp_http_port: Port = Field(14418, description="Jaeger's OTLP/HTTP receiver on 127.0.0.1, behind its front (which holds `traces.otlp_http_port`).")
    local_query_port: Port = Field(16687, description="Jaeger's HTTP query API on 127.0.0.1, behind its front (which holds `query_port`).")
    local_metrics_port: Port = Field(18888, description="Jaeger's own /metrics on 127.0.0.1, behind its front (which holds `metrics_port`).")
    data_dir: ServiceDir = Field("/var/lib/jaeger", description="Badger's key and value directories live under it.")
