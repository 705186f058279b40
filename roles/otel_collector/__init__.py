"""The OpenTelemetry Collector: a gateway on the `telemetry` hosts, an agent on the `app` hosts.

Gateway: OTLP in (gRPC 4317, HTTP 4318) from the agents and the operators' tools, over TLS with a client
certificate of the environment CA required (roles/_tls.py, docs/tls.md) and a bearer token of the sender's
own (roles/_otlp_tokens.py);
memory_limiter, then each exporter's disk queue (which batches); traces to the chosen store (Tempo or Jaeger) and to the
span_metrics connector, whose metrics are remote-written to Prometheus (the same
series whichever store is chosen); logs to the chosen log store (Loki or
VictoriaLogs). Every exporter keeps its sending queue on disk (file_storage), so a
store restart loses nothing.

Agent: tails the backend's JSON log file (offsets on disk, so a restart neither
duplicates nor drops lines), parses each line, keeps the four stream labels of the
contract as resource attributes and the trace context on the record, and sends the
logs over OTLP to the gateway, with its own disk queue, over TLS with its host's certificate.

A host in both groups runs one collector with both halves in one config.
The config is built as a dict here and checked with `otelcol-contrib validate` on
the host before it replaces the live one.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Iterable, Literal

import yaml
from pyinfra.api import deploy
from pyinfra.operations import server

from roles._godur import go_duration
from roles._net import split_host_port
from roles._service import ConfigFile, ServiceSpec, quoting, release_service
from roles._tls import TlsPaths, configtls_client, configtls_server, is_tls, leaf, tls_files
from roles.otel_collector.settings import CollectorSettings, LogsSettings, TracesSettings

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._topology import Topology

NAME = "otelcol"  # the files/versions.yml key: unit, user, /etc/otelcol, /opt/otelcol
BINARY = "otelcol-contrib"
CONFIG = f"/etc/{NAME}/config.yaml"
# The collector's certificate: the gateway's (its OTLP listeners, remote write into Prometheus) or the agent's
# (its identity towards the gateway).
TLS = TlsPaths(NAME)
# The bearer tokens (roles/_otlp_tokens.py): the gateway's list of every sender's, the agent's own. The
# collector follows both files (bearertokenauth re-reads a file when it changes): a new token needs no restart.
TOKENS_DIR = f"/etc/{NAME}/tokens"
ACCEPTED_TOKENS = f"{TOKENS_DIR}/accepted"
OWN_TOKEN = f"{TOKENS_DIR}/gateway.token"
GATEWAY_AUTH = "bearertokenauth/senders"
AGENT_AUTH = "bearertokenauth/gateway"
# A token file's lines: a token (roles/_otlp_tokens.py: 43 URL-safe characters), then words the extension ignores.
TOKEN_FILE_CHECK = "test -s {path} && ! grep -qvE '^[A-Za-z0-9_-]{43}( [A-Za-z0-9._ -]*)?$' {path}"
Mode = Literal["gateway", "agent"]

# Span metrics dimensions beyond the connector's own (service.name, span.name,
# span.kind, status.code): the route and outcome of a request, a handful of values each.
SPAN_METRICS_DIMENSIONS = ("http.route", "http.request.method", "http.response.status_code")
# Latency buckets (ms) around the backend's SLO of 300 ms at p95.
SPAN_METRICS_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 300, 500, 1000, 2500, 5000, 10000)
# The line's timestamp in docs/contract.md section 4: RFC 3339 UTC with milliseconds.
LOG_TIME_LAYOUT = "2006-01-02T15:04:05.999Z07:00"
# Contract fields that become the stream labels (resource attributes), by label.
STREAM_LABEL_FIELDS = {"service": "service", "env": "env", "stream": "stream", "level": "level"}
# Stock Winston with @opentelemetry/instrumentation-winston names four contract fields
# otherwise (contract name -> Winston's). The agent renames them, so that every reader
# downstream (trace <-> log links, erasure, retention, dashboards) knows one name.
WINSTON_FIELDS = {"traceId": "trace_id", "spanId": "span_id", "msg": "message", "ts": "timestamp"}
# Winston's npm levels the stanza preset does not know (severity -> level): between info and debug, and below.
WINSTON_LEVELS = {"debug4": "http", "debug2": "verbose", "trace": "silly"}


# The listener the gateways write logs to in a VictoriaLogs cluster (stores.mode scalable): the storage node's.
CLUSTER_WRITES = "victorialogs.storage"
# The OTLP/HTTP logs path of each log store, on its listener.
LOG_STORE_PATHS = {"victorialogs": ("victorialogs.http", "/insert/opentelemetry/v1/logs"), "loki": ("loki.http", "/otlp/v1/logs")}


def trace_store_endpoint(traces: TracesSettings, topology: Topology, me: str) -> str:
    """The OTLP/HTTP base URL of the chosen trace store (the exporter appends /v1/traces); https where the
    store's listener is TLS (roles/_tls.py)."""
    listener = f"{traces.store}.otlp_http"
    return traces.endpoint or topology.url(listener, me, scheme="https" if is_tls(listener) else "http")


def log_store_endpoint(logs: LogsSettings, topology: Topology, me: str) -> str:
    """The full OTLP/HTTP logs URL of the chosen log store (its port is the store's own setting)."""
    if logs.endpoint:
        return logs.endpoint
    listener, path = LOG_STORE_PATHS[logs.store]
    if logs.store == "victorialogs" and topology.instances(CLUSTER_WRITES):
        # A VictoriaLogs cluster: each gateway writes to its own host's storage node, which acknowledges what it
        # holds. The access tier acknowledges lines from its memory and drops them when it stops (measured:
        # docs/architecture.md "The VictoriaLogs cluster"), so it only reads and deletes.
        listener = CLUSTER_WRITES
    return topology.url(listener, me, path, scheme="https" if is_tls(listener) else "http")


def store_tls(endpoint: str) -> dict:
    """The exporter's `tls` to a store: the gateway's own certificate on https (the stores admit it,
    docs/tls.md "The stores"); nothing on http (an operator's own endpoint)."""
    return {"tls": configtls_client(TLS)} if endpoint.startswith("https://") else {}


def _queue(settings: CollectorSettings) -> dict:
    """The exporter's sending queue: on disk, and where batches are made.

    Crash safety (docs/tracing.md): a request is written to the disk queue before the
    receiver answers (OTLP) or saves its file offset (file_log), because nothing holds
    data in memory in front of the queue: no batch processor; the queue batches as it
    reads (its `batch`), and an entry leaves the disk only once the store took it. A
    SIGKILL loses nothing taken; file_storage's fsync keeps it through a power cut too.
    """
    return {
        "enabled": True,
        "storage": "file_storage",
        "queue_size": settings.queue_size,
        "sizer": "requests",  # queue_size counts the requests received, as before
        "batch": {"sizer": "items", "flush_timeout": go_duration(settings.batch_timeout), "min_size": settings.batch_size},
    }


def _retry(settings: CollectorSettings) -> dict:
    return {"enabled": True, "initial_interval": "1s", "max_interval": "30s", "max_elapsed_time": go_duration(settings.retry_max_elapsed)}


def rotated_log_files(log_file: str) -> list[str]:
    """The live log file and the names its rotated copies take: `backend.log.1` (Python's
    RotatingFileHandler, logrotate without compression) and `backend1.log` (Winston's File
    transport). Read while they are rotated, so a line written just before a rename is not lost;
    the receiver knows a renamed file by its fingerprint and does not read it twice.
    """
    directory, _, name = log_file.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    winston = f"{directory}/{stem}[0-9]*.{ext}" if dot and stem else f"{log_file}[0-9]*"
    return [log_file, f"{log_file}.[0-9]*", winston]


def _agent_receiver(settings: CollectorSettings) -> dict:
    """file_log: one JSON object per line (the contract's names or stock Winston's), the four stream labels moved to the resource."""
    renames = [
        {"type": "move", "from": f'attributes["{theirs}"]', "to": f'attributes["{ours}"]',
         "if": f'attributes["{ours}"] == nil and attributes["{theirs}"] != nil'}
        for ours, theirs in WINSTON_FIELDS.items()
    ]
    moves = [
        {"type": "move", "from": f'attributes["{field}"]', "to": f'resource["{label}"]', "if": f'attributes["{field}"] != nil'}
        for label, field in STREAM_LABEL_FIELDS.items()
    ]
    return {
        "include": rotated_log_files(settings.log_file),
        # First start ships what is already in the file; later starts resume at the stored offset.
        "start_at": "beginning",
        "storage": "file_storage",
        "operators": [
            {"type": "json_parser"},
            *renames,
            # Each parser only when its field is there: a line without one is still shipped, without an error logged.
            {"type": "time_parser", "parse_from": 'attributes["ts"]', "layout_type": "gotime", "layout": LOG_TIME_LAYOUT,
             "if": 'attributes["ts"] != nil'},
            {"type": "severity_parser", "parse_from": 'attributes["level"]', "preserve_to": 'attributes["level"]',
             "mapping": dict(WINSTON_LEVELS), "if": 'attributes["level"] != nil'},
            # traceId/spanId stay attributes too (queried by name); the record also carries them as its trace context.
            {"type": "trace_parser", "trace_id": {"parse_from": 'attributes["traceId"]'}, "span_id": {"parse_from": 'attributes["spanId"]'}},
            *moves,
        ],
    }


def _semconv_resource(environment: str, service_name: str) -> dict:
    """OTel's own names next to the contract's, so both kinds of query find the lines."""
    return {
        "attributes": [
            {"key": "service.name", "from_attribute": "service", "action": "insert"},
            {"key": "service.name", "value": service_name, "action": "insert"},
            {"key": "deployment.environment", "value": environment, "action": "insert"},
        ]
    }


def render_config(
    settings: CollectorSettings,
    modes: Iterable[Mode],
    environment: str,
    *,
    traces: TracesSettings | None = None,
    logs: LogsSettings | None = None,
    trace_endpoint: str = "",
    log_endpoint: str = "",
    remote_write_url: str | tuple[str, ...] = "",
    gateway_endpoint: str = "",
    service_name: str = "sentinel-backend",
    binds: Mapping[str, str] | None = None,
    remote_write_tls: bool = False,
    otlp_tls: bool = False,
    otlp_tokens: bool = False,
    gateway_label: str = "",
) -> dict:
    """
    The collector's config as a dict.

    + settings: the collector's settings
    + modes: "gateway", "agent" or both (a host in the telemetry and app groups)
    + environment: the environment's name (span metrics carry it as a label)
    + traces, logs: the store choices (gateway)
    + trace_endpoint: the trace store's OTLP/HTTP base URL (gateway)
    + log_endpoint: the log store's OTLP/HTTP logs URL (gateway)
    + remote_write_url: Prometheus's /api/v1/write (gateway); a tuple for every Prometheus
    + gateway_endpoint: the gateways' OTLP/gRPC target, ``dns:///<pool name>:<port>`` (agent only): the
      exporter balances over every address the name resolves to (round_robin), and a request a gateway
      fails is retried on another
    + service_name: the backend's service.name (agent: for lines without a `service` field)
    + binds: listener -> ip:port from the topology (otelcol.health, otelcol.metrics, gateway.otlp_*, agent.otlp_http);
      the loopback when not given (unit tests)
    + remote_write_tls: remote-write over TLS with the gateway's own certificate (roles/_tls.py)
    + otlp_tls: OTLP over TLS: the gateway's receivers (and the agent's, for the backend) serve the host's
      certificate and require a client certificate of the environment CA; the agent's exporter to the
      gateways carries its own
    + otlp_tokens: the gateway's receivers also ask for a bearer token of ACCEPTED_TOKENS, and the agent's
      exporter sends its OWN_TOKEN (needs otlp_tls: a token never crosses the network in clear)
    + gateway_label: the gateway's name on its span metrics (`gateway`): with a pool, each gateway
      remote-writes its own series, and queries sum them
    """
    binds = dict(binds or {})
    for name, port in (("otelcol.health", settings.health_port), ("otelcol.metrics", settings.metrics_port),
                       ("gateway.otlp_grpc", settings.grpc_port), ("gateway.otlp_http", settings.http_port),
                       ("agent.otlp_http", settings.agent_http_port)):
        binds.setdefault(name, f"127.0.0.1:{port}")
    modes = set(modes)
    if not modes or modes - {"gateway", "agent"}:
        raise ValueError(f"modes must be gateway and/or agent, got {sorted(modes)}")
    gateway = "gateway" in modes
    if otlp_tokens and not otlp_tls:
        raise ValueError("otlp_tokens needs otlp_tls: a bearer token never goes over plain text")
    metrics_host, metrics_port = split_host_port(binds["otelcol.metrics"])
    extensions: dict = {
        "health_check": {"endpoint": binds["otelcol.health"]},
        "file_storage": {
            "directory": f"{settings.data_dir}/file_storage",
            # Each write reaches the disk before the receiver answers: a host that loses power keeps it.
            "fsync": True,
            # Reclaim the space of delivered batches.
            "compaction": {"on_start": True, "on_rebound": True, "directory": f"{settings.data_dir}/file_storage"},
        },
    }
    receivers: dict = {}
    processors: dict = {
        "memory_limiter": {
            "check_interval": "1s",
            "limit_mib": settings.memory_limit_mib,
            "spike_limit_mib": settings.memory_spike_limit_mib,
        },
    }
    connectors: dict = {}
    exporters: dict = {}
    pipelines: dict = {}
    # No batch processor: it would hold taken data in memory, in front of the disk queue.
    chain = ["memory_limiter"]

    if gateway:
        if traces is None or logs is None or not (trace_endpoint and log_endpoint and remote_write_url):
            raise ValueError("the gateway needs traces, logs, trace_endpoint, log_endpoint and remote_write_url")
        receivers["otlp"] = {
            "protocols": {
                "grpc": {"endpoint": binds["gateway.otlp_grpc"]},
                "http": {"endpoint": binds["gateway.otlp_http"]},
            }
        }
        if otlp_tls:
            # Every sender shows a certificate of the environment CA (no allowed-names list in configtls: docs/tls.md).
            for protocol in receivers["otlp"]["protocols"].values():
                protocol["tls"] = configtls_server(TLS)
        if otlp_tokens:
            # And each sender shows its own token: a certificate of the CA alone is refused.
            extensions[GATEWAY_AUTH] = {"filename": ACCEPTED_TOKENS}
            for protocol in receivers["otlp"]["protocols"].values():
                protocol["auth"] = {"authenticator": GATEWAY_AUTH}
        connectors["span_metrics"] = {
            # traces_span_metrics_calls_total, traces_span_metrics_duration_milliseconds_*
            "namespace": "traces.span.metrics",
            "histogram": {"unit": "ms", "explicit": {"buckets": [f"{ms}ms" for ms in SPAN_METRICS_BUCKETS_MS]}},
            "dimensions": [{"name": name} for name in SPAN_METRICS_DIMENSIONS],
            "metrics_flush_interval": go_duration(settings.span_metrics_flush),
        }
        exporters[f"otlp_http/{traces.store}"] = {
            "endpoint": trace_endpoint,
            **store_tls(trace_endpoint),
            "sending_queue": _queue(settings),
            "retry_on_failure": _retry(settings),
        }
        log_exporter: dict = {
            "logs_endpoint": log_endpoint,
            **store_tls(log_endpoint),
            "sending_queue": _queue(settings),
            "retry_on_failure": _retry(settings),
        }
        if logs.store == "victorialogs":
            # VictoriaLogs makes streams of these fields; every other field is a plain field.
            log_exporter["headers"] = {"VL-Stream-Fields": ",".join(logs.stream_fields)}
        exporters[f"otlp_http/{logs.store}"] = log_exporter
        # Every Prometheus gets the span metrics (a pair holds the same series).
        remote_writes = []
        for i, url in enumerate([remote_write_url] if isinstance(remote_write_url, str) else list(remote_write_url)):
            name = "prometheus_remote_write" if i == 0 else f"prometheus_remote_write/{i + 1}"
            exporters[name] = {
                "endpoint": url,
                # Each gateway's own series (a pool writes one per gateway, summed by the queries): without
                # the label two gateways would write one series, and Prometheus would refuse half the samples.
                "external_labels": {"environment": environment, **({"gateway": gateway_label} if gateway_label else {})},
                "resource_to_telemetry_conversion": {"enabled": True},
                "retry_on_failure": _retry(settings),
            }
            if remote_write_tls:
                # Prometheus admits the gateway's identity (the topology's flow gateway -> prometheus.web).
                exporters[name]["tls"] = {"ca_file": TLS.ca, "cert_file": TLS.cert, "key_file": TLS.key, "min_version": "1.2"}
            remote_writes.append(name)
        pipelines["traces"] = {"receivers": ["otlp"], "processors": list(chain), "exporters": [f"otlp_http/{traces.store}", "span_metrics"]}
        pipelines["metrics/span_metrics"] = {"receivers": ["span_metrics"], "processors": list(chain), "exporters": remote_writes}
        pipelines["logs"] = {"receivers": ["otlp"], "processors": list(chain), "exporters": [f"otlp_http/{logs.store}"]}

    if "agent" in modes:
        receivers["file_log"] = _agent_receiver(settings)
        # The backend's spans, from its host only (127.0.0.1), over TLS with the backend's certificate.
        receivers["otlp/local"] = {"protocols": {"http": {"endpoint": binds["agent.otlp_http"]}}}
        if otlp_tls:
            receivers["otlp/local"]["protocols"]["http"]["tls"] = configtls_server(TLS)
        processors["resource/semconv"] = _semconv_resource(environment, service_name)
        if gateway:
            # One collector on the host: the file's lines and the backend's spans join the gateway's pipelines.
            pipelines["logs"]["receivers"].append("file_log")
            pipelines["logs"]["processors"] = ["memory_limiter", "resource/semconv"]
            pipelines["traces"]["receivers"].append("otlp/local")
        else:
            if not gateway_endpoint:
                raise ValueError("the agent needs gateway_endpoint")
            exporters["otlp/gateways"] = {
                "endpoint": gateway_endpoint,
                # Every address of the pool's name, each request to the next ready one; a gateway that
                # goes away leaves the rotation, and what it failed is retried on another.
                "balancer_name": "round_robin",
                # A gateway whose host vanished (no RST) is found dead within 15 s, not at the OS's TCP timeout.
                "keepalive": {"time": "10s", "timeout": "5s", "permit_without_stream": True},
                "sending_queue": _queue(settings),
                "retry_on_failure": _retry(settings),
            }
            if otlp_tls:
                exporters["otlp/gateways"]["tls"] = configtls_client(TLS)
            if otlp_tokens:
                extensions[AGENT_AUTH] = {"filename": OWN_TOKEN}
                exporters["otlp/gateways"]["auth"] = {"authenticator": AGENT_AUTH}
            pipelines["traces"] = {"receivers": ["otlp/local"], "processors": list(chain), "exporters": ["otlp/gateways"]}
            pipelines["logs"] = {
                "receivers": ["file_log"],
                "processors": ["memory_limiter", "resource/semconv"],
                "exporters": ["otlp/gateways"],
            }

    config: dict = {"extensions": extensions, "receivers": receivers, "processors": processors}
    if connectors:
        config["connectors"] = connectors
    config["exporters"] = exporters
    config["service"] = {
        "extensions": list(extensions),
        "pipelines": pipelines,
        "telemetry": {
            "logs": {"level": "info"},
            "metrics": {
                "level": "detailed",
                "readers": [{"pull": {"exporter": {"prometheus": {"host": metrics_host, "port": int(metrics_port)}}}}],
            },
        },
    }
    return config


def config_text(config: dict) -> str:
    return "# Managed by the Sentinel observability toolkit; local edits are overwritten.\n" + yaml.safe_dump(config, sort_keys=False)


def service_spec(settings: CollectorSettings, config: str, health_bind: str = "", tls: tuple[ConfigFile, ...] = (),
                 tokens: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """The collector's service; `config` is the rendered YAML, `health_bind` otelcol.health from the topology,
    `tls` the gateway's client certificate files (roles/_tls.py), `tokens` its bearer-token file (`token_files`)."""
    health_bind = health_bind or f"127.0.0.1:{settings.health_port}"
    return ServiceSpec(
        name=NAME,
        description="OpenTelemetry Collector",
        # The file receiver hands each batch of lines on synchronously, so its offsets are
        # saved only once the lines are in the disk queue (without the gate the last poll's
        # lines, read and checkpointed, could die in memory with a SIGKILL: 30 of 3,000 on the lab).
        exec_start=(f"{{bin}}/{BINARY}", f"--config={CONFIG}", "--feature-gates=stanza.synchronousLogEmitter"),
        configs=(*tls, *tokens, ConfigFile(CONFIG, config, validate=f"{{bin}}/{BINARY} validate --config={{path}}")),
        config_dirs=((TLS.dir,) if tls else ()) + ((TOKENS_DIR,) if tokens else ()),
        data_dirs=(settings.data_dir, f"{settings.data_dir}/file_storage"),
        ready_url=f"http://{health_bind}/",
    )


@dataclass(frozen=True)
class CollectorWiring:
    """What one host's collector needs from the rest of the environment (see `collector_wiring`)."""

    modes: tuple[Mode, ...]
    environment: str
    service_name: str = "sentinel-backend"
    traces: TracesSettings | None = None
    logs: LogsSettings | None = None
    trace_endpoint: str = ""
    log_endpoint: str = ""
    remote_write_url: str | tuple[str, ...] = ""
    gateway_endpoint: str = ""
    binds: tuple[tuple[str, str], ...] = ()
    remote_write_tls: bool = False
    otlp_tls: bool = False
    otlp_tokens: bool = False
    gateway_label: str = ""
    # The pool's name and every gateway's IP, for the agent host's /etc/hosts (agent only).
    gateway_pool: tuple[str, tuple[str, ...]] | None = None

    def render_args(self) -> dict:
        """The keyword arguments of `render_config` after its settings."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "gateway_pool"}


def render_wired(settings: CollectorSettings, wiring: CollectorWiring) -> dict:
    """`render_config` for one host's wiring."""
    args = wiring.render_args()
    args["binds"] = dict(args["binds"])
    return render_config(settings, args.pop("modes"), args.pop("environment"), **args)


@deploy("OpenTelemetry Collector")
def otel_collector(settings: CollectorSettings, ctx: HostContext):
    """
    Install the collector as the gateway, the agent, or both.

    + settings: `otel_collector` settings
    + ctx: the host context; its wiring (modes: gateway on telemetry, agent on app, both on
      a host in both; the store choices and the peers' endpoints) comes from `collector_wiring`
    """
    wiring = collector_wiring(ctx)
    modes = wiring.modes
    certificate = collector_certificate(ctx, wiring)
    tls = tls_files(NAME, certificate) if certificate else ()
    tokens = token_files(ctx, wiring) if wiring.otlp_tokens else ()
    spec = service_spec(settings, config_text(render_wired(settings, wiring)), ctx.bind("otelcol.health"), tls, tokens)
    artifact_base_url, hardening = ctx.artifact_base_url, ctx.hardening
    if "agent" in modes:
        # The backend's log directory is 0750 root-or-sentinel:sentinel: the collector reads it as a group member.
        # Created before the service starts, so its first start already has the group.
        server.group(name=f"{NAME}: log reader group {settings.log_file_group}", group=settings.log_file_group, system=True)
        server.group(name=f"{NAME}: system group", group=spec.account, system=True)
        member = server.user(
            name=f"{NAME}: reads {settings.log_file}",
            user=spec.account,
            group=spec.account,
            groups=[settings.log_file_group],
            append=True,
            system=True,
            shell="/usr/sbin/nologin",
            home=settings.data_dir,
            create_home=False,
        )
    if wiring.gateway_pool:
        gateway_pool_hosts(*wiring.gateway_pool)
    release_service(spec, artifact_base_url, hardening)
    if certificate and ctx.name in ctx.topology.runs.get("node_exporter", ()):
        from roles.node_exporter import certificate_expiry

        certificate_expiry(ctx.settings.node_exporter.textfile_dir, NAME, certificate)
    if "agent" in modes:
        from pyinfra.operations import systemd

        systemd.service(
            name=f"{NAME}: restart for the new group membership",
            service=f"{NAME}.service",
            restarted=True,
            _if=member.did_change,
        )


def hosts_block(pool_name: str, ips: Iterable[str]) -> str:
    """/etc/hosts lines giving the pool's name every gateway's address (the gRPC resolver returns them all)."""
    return "\n".join(f"{ip} {pool_name}" for ip in ips)


def gateway_pool_hosts(pool_name: str, ips: Iterable[str]) -> None:
    """
    The gateways' pool name in /etc/hosts, one line per gateway.

    + pool_name: otel_collector.gateway_pool_name (a host name, checked by the settings)
    + ips: every telemetry host's IP (the topology's gateway.otlp_grpc instances)

    Written before the collector starts (its resolver reads the file when it connects, and again
    after a gateway is lost); a gateway added to or removed from the inventory rewrites the lines.
    The lines are read first (a fact) and rewritten only when they differ: idempotent.
    """
    from pyinfra import host
    from pyinfra.facts.files import FindInFile

    wanted = hosts_block(pool_name, ips).splitlines()
    # The lines naming the pool (the name as a whole word after an address), wherever they are.
    name = pool_name.replace(".", "\\.")
    pattern = rf"^[0-9a-fA-F.:]+[[:space:]]+{name}$"
    current = host.get_fact(FindInFile, path="/etc/hosts", pattern=pattern, extended_regex=True) or []
    if [line.strip() for line in current] == wanted:
        return
    lines = " ".join(quoting.sh_quote(line) for line in wanted)
    server.shell(
        name=f"{NAME}: {pool_name} names every gateway (/etc/hosts)",
        commands=[f"sed -i -E {quoting.sh_quote('/' + pattern + '/d')} /etc/hosts", f"printf '%s\\n' {lines} >> /etc/hosts"],
    )


def collector_certificate(ctx: HostContext, wiring: CollectorWiring):
    """The collector's leaf: the gateway's names its OTLP listeners (one host, one certificate for both), and it
    is the gateway's identity for remote write; an agent-only host's is the agent's identity, a client only."""
    if "gateway" in wiring.modes and (wiring.otlp_tls or wiring.remote_write_tls):
        return leaf(ctx, "gateway", "gateway.otlp_http" if wiring.otlp_tls else None)
    if wiring.otlp_tls:
        # Its server names are the loopback's (the backend's receiver); its identity is the agent's.
        return leaf(ctx, "agent", "agent.otlp_http")
    return None


def token_files(ctx: HostContext, wiring: CollectorWiring) -> tuple[ConfigFile, ...]:
    """The bearer-token file of the host's collector (roles/_otlp_tokens.py): a gateway's holds every sender's
    accepted tokens, an agent's its own; 0640 root:otelcol, checked for its shape, followed without a restart."""
    from roles import _otlp_tokens
    from roles._tls import common_name

    env = ctx.settings.environment
    if "gateway" in wiring.modes:
        content = _otlp_tokens.accepted(env, _otlp_tokens.senders(ctx.topology))
        return (ConfigFile(ACCEPTED_TOKENS, content, validate=TOKEN_FILE_CHECK, followed=True),)
    content = _otlp_tokens.token(env, common_name(ctx.name, "agent")) + "\n"
    return (ConfigFile(OWN_TOKEN, content, validate=TOKEN_FILE_CHECK, followed=True),)


# --- wiring: what each host's collector needs from the rest of the environment -------------


def collector_wiring(ctx: HostContext) -> CollectorWiring:
    """
    The wiring of one host's collector, from the topology.

    + ctx: the host context

    The gateway exports to the environment's trace and log store and remote-writes to
    Prometheus; the agent exports to the gateway. Each endpoint is the topology's one
    instance of its listener (preflight refuses an environment where there are several
    and the client could reach only one: see roles/_topology.py).
    """
    me = ctx.settings
    modes = tuple(mode for mode, group in (("gateway", "telemetry"), ("agent", "app")) if group in ctx.groups)
    if not modes:
        raise ValueError("a collector runs on telemetry (gateway) or app (agent) hosts only")
    binds = tuple((l.name, l.bind) for l in ctx.topology.on(ctx.name) if l.component in ("otelcol", "gateway", "agent"))
    args: dict = {"modes": modes, "environment": me.environment, "service_name": me.backend.service_name, "binds": binds,
                  "otlp_tls": True, "otlp_tokens": True}
    if "gateway" in modes:
        remote_write = ctx.topology.urls("prometheus.web", ctx.name, "/api/v1/write", scheme="https")
        args.update(
            traces=me.traces,
            logs=me.logs,
            trace_endpoint=trace_store_endpoint(me.traces, ctx.topology, ctx.name),
            log_endpoint=log_store_endpoint(me.logs, ctx.topology, ctx.name),
            remote_write_url=remote_write[0] if len(remote_write) == 1 else tuple(remote_write),
            remote_write_tls=True,
            gateway_label=ctx.name,
        )
    if modes == ("agent",):
        pool_name, ips = ctx.topology.pool("gateway.otlp_grpc")
        port = ctx.topology.instances("gateway.otlp_grpc")[0].port
        args["gateway_endpoint"] = f"dns:///{pool_name}:{port}"
        args["gateway_pool"] = (pool_name, tuple(ips))
    return CollectorWiring(**args)
