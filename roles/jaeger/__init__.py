"""Jaeger v2 on the `telemetry` hosts: the lab's trace store (traces.store: jaeger).

Jaeger v2 is an OpenTelemetry Collector distribution: its config is a collector
config whose `jaeger_storage` extension holds Badger on local disk (span TTL =
`traces.retention`) and whose `jaeger_query` extension serves the UI and the
query API. The config is checked with `jaeger validate` on the host before it
replaces the live one.

TLS and identities (issue 22): every Jaeger listener is on 127.0.0.1, plain. Its authenticating
front (roles/jaeger/front.py: nginx, roles/_front.py) holds the host listeners: the gateway's
spans (OTLP/HTTP on 4418: the gateway holds 4318 on the same host), the query API (Grafana, the
operators) and Jaeger's own /metrics (Prometheus), each with TLS, a client certificate of the
environment CA, and each identity admitted to its own paths — configtls would admit any
certificate of the CA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import yaml
from pyinfra.api import deploy

from roles._godur import go_duration
from roles._net import split_host_port
from roles._service import ConfigFile, ServiceSpec, release_service
from roles.node_exporter import no_certificate
from roles._front import authenticating_front
from roles.jaeger.front import FRONT

if TYPE_CHECKING:  # a runtime import would be circular: the traces settings hold JaegerSettings
    from roles._context import HostContext
    from roles.otel_collector.settings import TracesSettings

NAME = "jaeger"
CONFIG = "/etc/jaeger/config.yaml"
STORE = "badger_main"


def loopback_binds(traces: TracesSettings) -> dict[str, str]:
    """Jaeger's own listeners (behind its front) on the loopback: the binds when no topology is given (unit tests)."""
    j = traces.jaeger
    ports = {"jaeger.otlp_http_local": j.local_otlp_http_port, "jaeger.otlp_grpc": traces.otlp_grpc_port,
             "jaeger.query_local": j.local_query_port, "jaeger.query_grpc": j.query_grpc_port,
             "jaeger.metrics_local": j.local_metrics_port, "jaeger.health": j.health_port}
    return {name: f"127.0.0.1:{port}" for name, port in ports.items()}


def render_config(traces: TracesSettings, binds: Mapping[str, str] | None = None) -> dict:
    """Jaeger's config as a dict, from the `traces` settings and the topology's binds (listener -> ip:port):
    its own listeners, all on the loopback behind its front (plain)."""
    jaeger = traces.jaeger
    binds = binds or loopback_binds(traces)
    metrics_host, metrics_port = split_host_port(binds["jaeger.metrics_local"])
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                # No batch processor: it answers the OTLP request once the spans are in its
                # memory, so a SIGKILL lost spans the gateway had been told were stored. The
                # storage exporter writes synchronously (no queue), so the answer now comes
                # after Badger took the spans; the gateway's queue already sends them in batches.
                "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]},
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "logs": {"level": "info"},
                "metrics": {
                    "level": "detailed",
                    "readers": [{"pull": {"exporter": {"prometheus": {"host": metrics_host, "port": metrics_port}}}}],
                },
            },
        },
        "extensions": {
            "healthcheckv2": {
                "use_v2": True,
                "http": {"endpoint": binds["jaeger.health"], "status": {"enabled": True, "path": "/status"}},
            },
            "jaeger_query": {
                "storage": {"traces": STORE},
                "http": {"endpoint": binds["jaeger.query_local"]},
                "grpc": {"endpoint": binds["jaeger.query_grpc"]},
            },
            "jaeger_storage": {
                "backends": {
                    STORE: {
                        "badger": {
                            "directories": {"keys": f"{jaeger.data_dir}/keys", "values": f"{jaeger.data_dir}/values"},
                            "ephemeral": False,
                            # Badger's SyncWrites: every write is fsynced before it returns, so what
                            # Jaeger acknowledged survives a power cut, not only a killed process.
                            "consistency": True,
                            # One retention for every trace: traces.retention.
                            "ttl": {"spans": go_duration(traces.retention)},
                        }
                    }
                }
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": binds["jaeger.otlp_grpc"]},
                    "http": {"endpoint": binds["jaeger.otlp_http_local"]},
                }
            }
        },
        "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
    }


def config_text(config: dict) -> str:
    return "# Managed by the Sentinel observability toolkit; local edits are overwritten.\n" + yaml.safe_dump(config, sort_keys=False)


def service_spec(traces: TracesSettings, config: str, health_bind: str = "") -> ServiceSpec:
    jaeger = traces.jaeger
    health_bind = health_bind or loopback_binds(traces)["jaeger.health"]
    return ServiceSpec(
        name=NAME,
        description="Jaeger v2 trace store",
        exec_start=("{bin}/jaeger", f"--config={CONFIG}"),
        configs=(ConfigFile(CONFIG, config, validate="{bin}/jaeger validate --config={path}"),),
        data_dirs=(jaeger.data_dir, f"{jaeger.data_dir}/keys", f"{jaeger.data_dir}/values"),
        ready_url=f"http://{health_bind}/status",
    )


@deploy("Jaeger")
def jaeger(traces: TracesSettings, ctx: HostContext):
    """
    Install Jaeger v2 with Badger storage and the query UI/API, on the loopback behind its front.

    + traces: `traces` settings (store jaeger; ports, retention, traces.jaeger)
    + ctx: the host context: the binds of the jaeger.* listeners from the topology
    """
    binds = {l.name: l.bind for l in ctx.topology.on(ctx.name) if l.component == NAME}
    spec = service_spec(traces, config_text(render_config(traces, binds)), binds["jaeger.health"])
    release_service(spec, ctx.artifact_base_url, ctx.hardening)
    authenticating_front(ctx, FRONT)
    # Jaeger served TLS itself before its front: its old key and expiry metric go.
    no_certificate(ctx.settings.node_exporter.textfile_dir, NAME, "its front serves TLS")
