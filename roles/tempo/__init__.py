"""Tempo on the `telemetry` hosts: the production trace store (traces.store: tempo).

Tempo is AGPL: this workplace never downloads, builds or runs it, so the role is
proven by rendering and by a check of every key it writes against Tempo's own
configuration reference for the pinned version (files/tempo/). On a real host the
building block runs `tempo -config.verify` on the staged file before the swap.

- Every listener binds what the topology says (roles/_topology.py): Tempo's own on the
  loopback, plain; its authenticating front (roles/tempo/front.py: nginx, roles/_front.py)
  holds the OTLP/HTTP receiver (4418: the collector gateway holds 4318 on the same host)
  and the HTTP API on the host's IP with TLS and client certificates, each identity to its
  own paths (the gateway writes, Grafana and the operators read, Prometheus scrapes).
- Blocks in the object_store role's S3 bucket `tempo` (or local disk), credentials
  expanded from an EnvironmentFile (0640 root:tempo) with -config.expand-env=true,
  never written into the YAML.
- `compactor.compaction.block_retention` = `traces.retention` (default 336h).
- The metrics generator stays OFF: the collector gateway's span_metrics connector
  makes the span metrics, so there is one source of them whichever store is chosen.
- `stores.mode: scalable`: the scalable single binary (`target: scalable-single-binary`, Tempo 2.x only: Tempo 3
  removed it) on every telemetry host, one ring on memberlist, the shared `tempo` bucket (`render_config`'s `ring`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import yaml
from pyinfra.api import deploy

from roles._godur import go_duration
from roles._net import host_port, split_host_port
from roles._ring import Ring, grpc_client_tls, memberlist, ring_of
from roles._tls import TlsPaths, dskit_server_tls, leaf, tls_files
from roles._front import authenticating_front
from roles.tempo.front import FRONT
from roles._service import ConfigFile, ServiceSpec, quoting, release_service
from roles.node_exporter import certificate_expiry, no_certificate

if TYPE_CHECKING:  # a runtime import would be circular: the traces settings hold TempoSettings
    from roles._context import HostContext
    from roles.otel_collector.settings import TracesSettings

NAME = "tempo"
CONFIG = "/etc/tempo/config.yaml"
TLS = TlsPaths(NAME)
CREDENTIALS = "/etc/tempo/s3.env"
# Names Tempo expands from CREDENTIALS (-config.expand-env=true).
ACCESS_KEY_VAR = "TEMPO_S3_ACCESS_KEY"
SECRET_KEY_VAR = "TEMPO_S3_SECRET_KEY"


def loopback_binds(traces: TracesSettings) -> dict[str, str]:
    """Tempo's own listeners (behind its front) on the loopback: the binds when no topology is given (unit tests)."""
    t = traces.tempo
    return {name: f"127.0.0.1:{port}" for name, port in (("tempo.http_local", t.local_http_port), ("tempo.grpc", t.grpc_port),
            ("tempo.otlp_http_local", t.local_otlp_http_port), ("tempo.otlp_grpc", traces.otlp_grpc_port))}


# stores.mode scalable: Tempo 2.10's scalable single binary ("scalable monolithic"): every component in one process
# per telemetry host, the processes one ring (Tempo's docs, "Plan your deployment": `-target` scalable-single-binary;
# Tempo 3 removed it).
SCALABLE_TARGET = "scalable-single-binary"


def render_config(
    traces: TracesSettings, s3_endpoint: str = "", s3_region: str = "us-east-1", *, binds: Mapping[str, str] | None = None,
    tls: TlsPaths | None = TLS, ring: Ring | None = None,
) -> dict:
    """
    Tempo's config as a dict.

    + traces: `traces` settings (store tempo; ports, retention, traces.tempo)
    + binds: listener -> ip:port from the topology (tempo.http_local, tempo.grpc, tempo.otlp_http_local, tempo.otlp_grpc):
      the HTTP API and the OTLP/HTTP receiver on the loopback, plain, behind the front (roles/tempo/front.py), which
      serves TLS and checks identities
    + s3_endpoint: host:port of the object store (backend s3)
    + s3_region: the object store's region (backend s3)
    + tls: the host's certificate files, for gRPC and memberlist between the hosts when scaled out (issue 22;
      rendered and checked against the reference only, Tempo is never run here). tempo.grpc is otherwise loopback
      only: plain.
    + ring: stores.mode scalable (roles/_ring.py): the scalable single binary on every telemetry host, the
      distributor, ingester and compactor rings on memberlist over every host's Tempo, `replication_factor` copies
      in the ingesters, each querier working for its own host's query frontend; tempo.grpc on the host's IP with
      client certificates required, every gRPC client and memberlist on TLS with the host's certificate.
    """
    tempo = traces.tempo
    binds = binds or loopback_binds(traces)
    http_host, http_port = split_host_port(binds["tempo.http_local"])
    grpc_host, grpc_port = split_host_port(binds["tempo.grpc"])
    trace_storage: dict = {"backend": tempo.backend, "wal": {"path": f"{tempo.data_dir}/wal"}}
    if tempo.backend == "s3":
        if not s3_endpoint:
            raise ValueError("backend s3 needs the object store's endpoint")
        trace_storage["s3"] = {
            "bucket": tempo.bucket,
            "endpoint": s3_endpoint,
            "region": s3_region,
            "access_key": f"${{{ACCESS_KEY_VAR}}}",
            "secret_key": f"${{{SECRET_KEY_VAR}}}",
            # versitygw on the telemetry host: plain HTTP on the internal network, path-style buckets.
            "insecure": True,
            "forcepathstyle": True,
        }
    else:
        trace_storage["local"] = {"path": f"{tempo.data_dir}/blocks"}
    config = {
        "server": {
            "http_listen_address": http_host,
            "http_listen_port": int(http_port),
            "grpc_listen_address": grpc_host,
            "grpc_listen_port": int(grpc_port),
            "log_level": "info",
        },
        "distributor": {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": binds["tempo.otlp_grpc"]},
                        "http": {"endpoint": binds["tempo.otlp_http_local"]},
                    }
                }
            }
        },
        "compactor": {"compaction": {"block_retention": go_duration(traces.retention)}},
        "storage": {"trace": trace_storage},
        # No metrics_generator block and no processors in overrides: the generator stays
        # off; span metrics come from the collector gateway (one source for every store).
        "usage_report": {"reporting_enabled": False},
    }
    if ring:
        config = _scale_out(config, ring, tls, grpc_port)
    return config


def _scale_out(config: dict, ring: Ring, tls: TlsPaths | None, grpc_port: int) -> dict:
    """The single-binary `config` made a member of the scalable ring (see render_config). Every key is checked
    against files/tempo/config-reference-2.10.8.txt (tests/unit/test_stores_scalable.py)."""
    config = {"target": SCALABLE_TARGET, **config}
    if tls:
        config["server"]["tls_min_version"] = "VersionTLS12"
        config["server"]["grpc_tls_config"] = dskit_server_tls(tls)
    def kvstore() -> dict:  # a new dict each time: yaml.safe_dump would write one shared twice as an alias
        return {"kvstore": {"store": "memberlist"}}

    def client() -> dict:
        return {"grpc_client_config": grpc_client_tls(tls)} if tls else {}

    config["distributor"]["ring"] = {**kvstore(), "instance_addr": ring.ip}
    config["ingester"] = {"lifecycler": {"ring": {**kvstore(), "replication_factor": ring.replication_factor}, "address": ring.ip}}
    config["compactor"]["ring"] = {**kvstore(), "instance_addr": ring.ip}
    if tls:
        config["ingester_client"] = client()
    # Each host's queriers work for the query frontend of their own process (its gRPC is on the host's IP now,
    # not the loopback); the frontend reaches every host's ingesters through the ring.
    config["querier"] = {"frontend_worker": {"frontend_address": host_port(ring.ip, grpc_port), **client()}}
    config["memberlist"] = memberlist(ring, tls)
    return config


def config_text(config: dict) -> str:
    return "# Managed by the Sentinel observability toolkit; local edits are overwritten.\n" + yaml.safe_dump(config, sort_keys=False)


def credentials_env(traces: TracesSettings, secrets: Mapping[str, str]) -> str:
    """The S3 credentials as a systemd env file for Tempo's -config.expand-env (preflight resolved them)."""
    values = {ACCESS_KEY_VAR: secrets[traces.tempo.access_key_secret], SECRET_KEY_VAR: secrets[traces.tempo.secret_key_secret]}
    return quoting.env_file(values, "tempo S3 credentials")


def _verify(env_file: str | None = None) -> str:
    # The env file is systemd's format, never sourced by sh: the check expands the
    # missing credentials to "" (it reads the structure, it does not connect to S3).
    return "{bin}/tempo -config.file={path} -config.expand-env=true -config.verify"


def service_spec(traces: TracesSettings, config: str, credentials: str | None, http_bind: str = "",
                 tls: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """Tempo's service; `credentials` is the env file's content (backend s3) or None; `http_bind` tempo.http_local;
    `tls` the certificate files (scaled out: gRPC and memberlist)."""
    tempo = traces.tempo
    http_bind = http_bind or loopback_binds(traces)["tempo.http_local"]
    configs = [*tls]
    env_files: tuple[str, ...] = ()
    if credentials is not None:
        # First: the config's verification reads it.
        configs.append(ConfigFile(CREDENTIALS, credentials, mode="0640"))
        env_files = (CREDENTIALS,)
    configs.append(ConfigFile(CONFIG, config, validate=_verify(CREDENTIALS if credentials is not None else None)))
    return ServiceSpec(
        name=NAME,
        description="Grafana Tempo trace store",
        exec_start=("{bin}/tempo", f"-config.file={CONFIG}", "-config.expand-env=true"),
        configs=tuple(configs),
        env_files=env_files,
        data_dirs=(tempo.data_dir,),
        ready_url=f"http://{http_bind}/ready",
        config_dirs=(TLS.dir,) if tls else (),
        working_directory=tempo.data_dir,
    )


@deploy("Tempo")
def tempo(traces: TracesSettings, ctx: HostContext):
    """
    Install Tempo with its blocks in the object store (or on local disk).

    + traces: `traces` settings (store tempo)
    + ctx: the host context: binds and the object store's endpoint from the topology,
      the S3 region, the run's secrets (the S3 credentials, backend s3)
    """
    s3 = traces.tempo.backend == "s3"
    binds = {l.name: l.bind for l in ctx.topology.on(ctx.name) if l.component == NAME}
    s3_endpoint = ctx.topology.reach("object_store.s3", ctx.name) if s3 else ""
    ring = ring_of(ctx, NAME)
    config = render_config(traces, s3_endpoint, ctx.settings.object_store.region, binds=binds, tls=TLS, ring=ring)
    credentials = credentials_env(traces, ctx.secrets) if s3 else None
    # Tempo's own certificate is for gRPC and memberlist between the hosts: scaled out only (the front serves the rest).
    certificate = leaf(ctx, NAME, "tempo.http") if ring else None  # the front's leaf: the same host, names and identity
    tls = tls_files(NAME, certificate) if certificate else ()
    release_service(service_spec(traces, config_text(config), credentials, binds["tempo.http_local"], tls), ctx.artifact_base_url, ctx.hardening)
    if certificate:
        certificate_expiry(ctx.settings.node_exporter.textfile_dir, NAME, certificate)  # CertificateExpiresSoon
    else:  # Tempo served its listeners itself before its front: its old key and expiry metric go
        no_certificate(ctx.settings.node_exporter.textfile_dir, NAME, "single mode: its front serves TLS")
    authenticating_front(ctx, FRONT)
