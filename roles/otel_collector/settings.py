"""Settings of the trace and log pipelines: which store each signal goes to, and the collector.

Group data:

    traces = {"store": "tempo", "retention": "336h"}      # or "jaeger" (the lab)
    logs = {"store": "loki"}                               # or "victorialogs" (the lab)
    otel_collector = {...}                                 # optional, defaults below

Exactly one store per signal. A settings block for the store that is not chosen
(`traces = {"store": "jaeger", "tempo": {...}}`) or a list of stores is refused:
the gateway fans out to one store, and a second one would silently get nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from roles._model import Hostname, LogFile, ServiceDir, matching, Duration, HttpUrl, Model, Name, Port, duration_seconds
from roles.jaeger.settings import JaegerSettings
from roles.tempo.settings import TempoSettings

TRACE_STORES = ("tempo", "jaeger")
LOG_STORES = ("loki", "victorialogs")


def _one_store(choices: tuple[str, ...]):
    def check(value: Any) -> Any:
        if isinstance(value, (list, tuple, set)) or (isinstance(value, str) and ("," in value or " " in value.strip())):
            raise ValueError(
                f"{value!r} chooses more than one store. Fix: choose exactly one of {' or '.join(choices)}; "
                "the gateway sends each signal to one store"
            )
        return value

    return BeforeValidator(check)


def _at_least(minimum: str):
    def check(value: str) -> str:
        if duration_seconds(value) < duration_seconds(minimum):
            raise ValueError(f"{value!r} is shorter than {minimum}. Fix: use {minimum} or more (default 336h, 14 days)")
        return value

    return AfterValidator(check)


def _positive_queue(value: int) -> int:
    if value < 1:
        raise ValueError(
            f"{value} would leave no room in the sending queue, so every batch is dropped while the store is down. "
            "Fix: use a positive size such as 10000 (batches kept on disk)"
        )
    if value > 2**63 - 1:
        raise ValueError(f"{value} is larger than the collector's int64 queue size. Fix: use a size such as 10000")
    return value


QueueSize = Annotated[int, AfterValidator(_positive_queue)]


# The collector joins this group to read the backend's log: the backend's own group, never
# one that opens other files (shadow, disk, adm...).
BackendGroup = matching("backend group", r"sentinel[a-z0-9_-]{0,24}", "use the backend's own group, sentinel or sentinel-<name>")

class TracesSettings(Model):
    """Where traces are stored: Tempo (dev, staging, prod) or Jaeger v2 (the lab)."""

    store: Annotated[Literal["tempo", "jaeger"], _one_store(TRACE_STORES)] = Field(
        "tempo", description="The one trace store: tempo or jaeger."
    )
    retention: Annotated[Duration, _at_least("1h")] = Field(
        "336h", description="How long traces are kept (Tempo block_retention, Jaeger Badger TTL). At least 1h."
    )
    # The store runs on the telemetry hosts next to the collector gateway (4317/4318),
    # so its OTLP receiver takes the next free pair.
    otlp_grpc_port: Port = Field(4417, description="The store's OTLP/gRPC receiver port.")
    otlp_http_port: Port = Field(4418, description="The store's OTLP/HTTP receiver port (the gateway exports here).")
    endpoint: HttpUrl | None = Field(None, description="OTLP/HTTP base URL the gateway exports traces to; default http://<first telemetry host>:<otlp_http_port>.")
    tempo: TempoSettings = Field(TempoSettings(), description="Tempo's settings (store: tempo only).")
    jaeger: JaegerSettings = Field(JaegerSettings(), description="Jaeger's settings (store: jaeger only).")

    @model_validator(mode="after")
    def _only_chosen_store(self) -> "TracesSettings":
        for other in TRACE_STORES:
            if other != self.store and other in self.model_fields_set:
                raise ValueError(
                    f"settings for {other} while the store is {self.store}: two stores chosen at once. "
                    f"Fix: remove traces.{other}, or set traces.store to {other!r} and remove traces.{self.store}"
                )
        return self


class LogsSettings(Model):
    """Where logs are stored: Loki (dev, staging, prod) or VictoriaLogs (the lab)."""

    store: Annotated[Literal["loki", "victorialogs"], _one_store(LOG_STORES)] = Field(
        "loki", description="The one log store: loki or victorialogs."
    )
    endpoint: HttpUrl | None = Field(
        None,
        description="OTLP/HTTP logs URL the gateway exports to; default the store's OTLP logs path on the first telemetry host "
        "(Loki http://<tel>:3100/otlp/v1/logs, VictoriaLogs http://<tel>:9428/insert/opentelemetry/v1/logs).",
    )
    # docs/contract.md section 4: the four stream labels, the same names in both stores.
    stream_fields: tuple[Name, ...] = Field(("service", "env", "stream", "level"), description="Stream labels (resource attributes on every record).")


class CollectorSettings(Model):
    """The OpenTelemetry Collector: the gateway on `telemetry` hosts, the agent on `app` hosts."""

    grpc_port: Port = Field(4317, description="Gateway OTLP/gRPC (the agents export here, balanced over every gateway).")
    http_port: Port = Field(4318, description="Gateway OTLP/HTTP.")
    agent_http_port: Port = Field(4319, description="Agent OTLP/HTTP on 127.0.0.1 (the backend's OTEL_EXPORTER_OTLP_ENDPOINT).")
    gateway_pool_name: Hostname = Field(
        "otel-gateways.sentinel.internal",
        description="The name the agents reach every gateway by: the toolkit writes it into the agents' /etc/hosts "
        "with every telemetry host's IP, and every gateway's certificate carries it.",
    )
    # Not 8888 (the collector's default): Jaeger's own metrics hold it on the telemetry host.
    metrics_port: Port = Field(8889, description="The collector's own Prometheus metrics (accepted, refused, queue size, send failures).")
    health_port: Port = Field(13133, description="health_check extension, the readiness check.")
    # Upper bounds: the collector reads these as Go uint32 (memory_limiter, batch) or int; a larger
    # number passes YAML and fails the collector on the host.
    memory_limit_mib: Annotated[int, Field(ge=64, le=1_048_576)] = Field(512, description="memory_limiter hard limit (MiB, up to 1 TiB).")
    memory_spike_limit_mib: Annotated[int, Field(ge=16, le=1_048_576)] = Field(128, description="memory_limiter spike headroom (MiB), below the limit.")
    batch_timeout: Duration = Field("1s", description="Exporters' queue batching: send at least this often.")
    batch_size: Annotated[int, Field(ge=1, le=4_294_967_295)] = Field(2048, description="Exporters' queue batching: items per batch (a Go uint32).")
    queue_size: QueueSize = Field(10000, description="Batches each exporter keeps on disk while its destination is down.")
    retry_max_elapsed: Duration = Field("24h", description="How long an exporter retries a batch before dropping it.")
    data_dir: ServiceDir = Field("/var/lib/otelcol", description="Persistent queues and file offsets (file_storage).")
    log_file: LogFile = Field("/var/log/sentinel/backend.log", description="Agent: the backend's JSON log file (docs/contract.md section 4).")
    log_file_group: BackendGroup = Field(
        "sentinel", description="Agent: group that may read log_file; the collector's user joins it (a sentinel* group only)."
    )
    span_metrics_flush: Duration = Field("15s", description="How often span metrics are computed and remote-written.")

    @model_validator(mode="after")
    def _spike_below_limit(self) -> "CollectorSettings":
        if self.memory_spike_limit_mib >= self.memory_limit_mib:
            raise ValueError(
                f"memory_spike_limit_mib {self.memory_spike_limit_mib} is not below memory_limit_mib {self.memory_limit_mib}. "
                "Fix: use about a quarter of the limit"
            )
        if len({self.grpc_port, self.http_port, self.agent_http_port, self.metrics_port, self.health_port}) < 5:
            raise ValueError("two of the collector's ports are the same. "
                             "Fix: give grpc_port, http_port, agent_http_port, metrics_port and health_port distinct ports")
        return self
