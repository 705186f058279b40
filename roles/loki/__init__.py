"""Loki, the production log store (AGPL: never downloaded, built or run in this workplace).

Monolithic Loki 3.x with the TSDB index (schema v13) and chunks in the `loki` bucket
of the object store; retention and deletion by the compactor, from the retention
policy. The config is a typed model dumped to YAML, checked on the host with
`loki -verify-config` before it replaces the live one, and checked in unit tests
against Loki's configuration reference (files/loki/config-reference-<version>.yml).
The S3 credentials never enter the YAML: it reads ${LOKI_S3_*} from a 0640
EnvironmentFile (`-config.expand-env=true`).

With `stores.mode: scalable` (roles/_stores_settings.py) every telemetry host runs Loki's simple scalable
deployment: the read, write and backend targets in one process, one ring on memberlist over every telemetry
host, the shared `loki` bucket, gRPC and memberlist between the hosts over TLS (`render_config`'s `ring`).
Rendered and checked against the 3.7.8 reference only, like the rest of this role.

Loki's HTTP server listens on 127.0.0.1 (`loki.local`), plain: its authenticating front (roles/loki/front.py:
nginx, roles/_front.py) holds `loki.http` on the host's IP with TLS and client certificates, and admits each
identity to its own paths: the delete API to the erasure command alone (issue 22).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyinfra.api import deploy

from roles._model import duration_seconds
from roles._model import SettingsError
from roles._net import split_host_port
from roles._ring import Ring, grpc_client_tls, memberlist, ring_of
from roles._tls import TlsPaths, dskit_server_tls, leaf, tls_files
from roles._service import ConfigFile, ServiceSpec, quoting, release_service
from roles.node_exporter import certificate_expiry, no_certificate
from roles._service.render import dump_yaml
from roles._front import authenticating_front
from roles.loki.front import FRONT
from roles.loki.settings import LokiSettings
from roles.retention import RetentionPolicy
from roles.retention.contract import stream_labels
from roles.retention.selectors import parse_selector

if TYPE_CHECKING:
    from roles._context import HostContext

NAME = "loki"
BINARY = "loki"  # versions.yml installs upstream's loki-linux-<arch> under this name
CONFIG = "/etc/loki/loki.yml"
TLS = TlsPaths(NAME)
CREDENTIALS = "/etc/loki/s3.env"
ACCESS_KEY_VAR, SECRET_KEY_VAR = "LOKI_S3_ACCESS_KEY", "LOKI_S3_SECRET_KEY"


def loki_duration(value: str) -> str:
    """A duration in hours, which every Loki duration field reads (Go's and Prometheus's)."""
    seconds = int(duration_seconds(value))
    return f"{-(-seconds // 3600)}h"


# stores.mode scalable: Loki's simple scalable deployment, its three targets in ONE process per telemetry host
# (`target` is "a comma-separated list of components to run", Loki 3.7.8's configuration reference). Not three
# units: the building block (roles/_service) installs a release as one unit named after it (its user, /etc and
# /opt); on two or three telemetry hosts the three would share the host's CPU and memory anyway. Every host runs
# the same read, write and backend paths, in one ring (docs/architecture.md "Scalable stores").
SCALABLE_TARGET = "read,write,backend"


def render_config(
    settings: LokiSettings, policy: RetentionPolicy, s3_endpoint: str, s3_region: str, http_bind: str = "", grpc_bind: str = "",
    tls: TlsPaths | None = TLS, ring: Ring | None = None,
) -> str:
    """Loki's YAML for `settings` and the retention `policy`; `s3_endpoint` is the object store's host:port.

    `http_bind` and `grpc_bind` are loki.local and loki.grpc from the topology (ip:port): the HTTP server is
    on the loopback, plain, behind the front (roles/loki/front.py), which serves TLS and checks identities.
    gRPC is Loki talking to itself on the loopback: plain. `tls`: the host's certificate files, for gRPC
    and memberlist between the hosts when scaled out (issue 22; rendered and checked against the
    reference only, Loki is never run here).

    `ring` (stores.mode scalable): the simple scalable deployment on every telemetry host: the read, write and
    backend targets, the ring on memberlist over every host's Loki, `ring.replication_factor` copies in the
    ingesters, the query frontends and queriers finding the schedulers through their ring; gRPC on the host's
    IP with client certificates required, and every gRPC client and memberlist on TLS with the host's certificate.
    """
    http_bind = http_bind or f"127.0.0.1:{settings.local_http_port}"
    grpc_bind = grpc_bind or f"127.0.0.1:{settings.grpc_port}"
    data = settings.data_dir
    longest = max([policy.default_period, *(r.period for r in policy.streams)], key=duration_seconds)
    config = {
        "target": "all",
        # One tenant ("fake"): the collector gateway is the only writer, on the internal network.
        "auth_enabled": False,
        "server": {
            "http_listen_address": split_host_port(http_bind)[0],
            "http_listen_port": split_host_port(http_bind)[1],
            # gRPC is only Loki talking to itself in monolithic mode (the loopback).
            "grpc_listen_address": split_host_port(grpc_bind)[0],
            "grpc_listen_port": split_host_port(grpc_bind)[1],
            "log_format": "json",
            "log_level": "info",
        },
        "common": {
            # WAL, TSDB index and compactor state live under here (hot tier, docs/retention.md).
            "path_prefix": data,
            "replication_factor": 1,
            "ring": {"instance_addr": "127.0.0.1", "kvstore": {"store": "inmemory"}},
        },
        "schema_config": {
            "configs": [
                {
                    "from": settings.schema_from,
                    "store": "tsdb",
                    "object_store": "aws",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "storage_config": {
            "aws": {
                "endpoint": s3_endpoint,
                "bucketnames": settings.bucket,
                "region": s3_region,
                "access_key_id": "${" + ACCESS_KEY_VAR + "}",
                "secret_access_key": "${" + SECRET_KEY_VAR + "}",
                "s3forcepathstyle": True,
                "insecure": settings.s3_insecure,
            },
            "tsdb_shipper": {
                "active_index_directory": f"{data}/tsdb-index",
                "cache_location": f"{data}/tsdb-cache",
            },
        },
        "ingester": {"wal": {"enabled": True, "dir": f"{data}/wal", "flush_on_shutdown": True}},
        "compactor": {
            "working_directory": f"{data}/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": loki_duration(settings.retention_delete_delay),
            # Delete requests (erasure) are kept in the object store with the chunks.
            "delete_request_store": "aws",
            "delete_request_cancel_period": loki_duration(settings.delete_request_cancel_period),
        },
        "limits_config": {
            "retention_period": loki_duration(policy.default_period),
            "retention_stream": [
                {"selector": str(parse_selector(rule.selector)), "priority": rule.priority, "period": loki_duration(rule.period)}
                for rule in policy.streams
            ],
            "deletion_mode": "filter-and-delete",
            "max_query_lookback": loki_duration(longest),
            "ingestion_rate_mb": settings.ingestion_rate_mb,
            "ingestion_burst_size_mb": settings.ingestion_burst_size_mb,
            "per_stream_rate_limit": settings.per_stream_rate_limit,
            "per_stream_rate_limit_burst": settings.per_stream_rate_limit_burst,
            "max_line_size": settings.max_line_size,
            "max_global_streams_per_user": settings.max_global_streams_per_user,
            "reject_old_samples": True,
            "reject_old_samples_max_age": loki_duration(settings.reject_old_samples_max_age),
            "allow_structured_metadata": True,
            # OTLP: the collector sends the contract's stream labels as RESOURCE
            # attributes (Loki indexes only resource attributes); the line's other
            # fields are log attributes and become structured metadata.
            "otlp_config": {
                "resource_attributes": {
                    "attributes_config": [{"action": "index_label", "attributes": list(stream_labels())}],
                }
            },
        },
        "analytics": {"reporting_enabled": False},
    }
    if ring:
        _scale_out(config, ring, tls)
    text = dump_yaml(config, header="Managed by the Sentinel observability toolkit (roles/loki); local edits are overwritten.")
    # -config.expand-env rewrites every "$" before parsing: only our two references may hold one.
    stripped = text.replace("${" + ACCESS_KEY_VAR + "}", "").replace("${" + SECRET_KEY_VAR + "}", "")
    if "$" in stripped:
        raise SettingsError(
            "retention.streams",
            "a value rendered into Loki's config holds '$', which -config.expand-env would replace",
            "drop the '$' (selectors are anchored already: write \"app\" not \"app$\")",
        )
    return text


def _scale_out(config: dict, ring: Ring, tls: TlsPaths | None) -> None:
    """The single-binary `config` made a member of the scalable ring (see render_config). Every key is checked
    against files/loki/config-reference-3.7.8.yml (tests/unit/test_loki_scalable.py)."""
    config["target"] = SCALABLE_TARGET
    if tls:
        # The other hosts' Lokis call this gRPC server (pushes to its ingester, queries, the scheduler): client
        # certificates of the environment CA required, as on loki.http's front.
        config["server"]["tls_min_version"] = "VersionTLS12"
        config["server"]["grpc_tls_config"] = dskit_server_tls(tls)
    config["common"]["replication_factor"] = ring.replication_factor
    config["common"]["ring"] = {"instance_addr": ring.ip, "kvstore": {"store": "memberlist"}}
    def client() -> dict:  # a new dict each time: no block shares another's
        return {"grpc_client_config": grpc_client_tls(tls)} if tls else {}

    config["memberlist"] = memberlist(ring, tls)
    # The query frontends and the queriers find every host's scheduler in its ring (on memberlist): a query
    # entering one host's read path is split and run by the queriers of every host.
    config["query_scheduler"] = {"use_scheduler_ring": True, **client()}
    if tls:  # every gRPC client of the three targets, against the peers' TLS gRPC servers
        config["frontend"] = client()
        config["frontend_worker"] = client()
        config["ingester_client"] = client()
        config["ruler"] = {"ruler_client": grpc_client_tls(tls)}
        config["storage_config"]["tsdb_shipper"]["index_gateway_client"] = client()


def credentials_env(settings: LokiSettings, secrets: Mapping[str, str]) -> str:
    """The EnvironmentFile with the S3 credentials (0640 root:loki), from the resolved secrets, quoted per systemd."""
    values = {ACCESS_KEY_VAR: secrets[settings.access_key_secret], SECRET_KEY_VAR: secrets[settings.secret_key_secret]}
    return quoting.env_file(values, "loki S3 credentials")


def verify_command() -> str:
    """Loki's own check of a staged config ({bin}, {path} as in ConfigFile): exits 1 on any error."""
    return f"{{bin}}/{BINARY} -config.file={{path}} -config.expand-env=true -verify-config"


def service_spec(settings: LokiSettings, config: str, credentials: str, http_bind: str = "", tls: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """`tls`: the certificate files (roles/_tls.py), before the config that names them."""
    http_bind = http_bind or f"127.0.0.1:{settings.local_http_port}"
    return ServiceSpec(
        name=NAME,
        description="Loki log store",
        exec_start=(f"{{bin}}/{BINARY}", f"-config.file={CONFIG}", "-config.expand-env=true"),
        configs=(
            *tls,
            ConfigFile(CREDENTIALS, credentials, mode="0640"),
            ConfigFile(CONFIG, config, validate=verify_command(), mode="0640"),
        ),
        config_dirs=(TLS.dir,) if tls else (),
        env_files=(CREDENTIALS,),
        data_dirs=(settings.data_dir,),
        # /ready lags by ingester.lifecycler.min_ready_duration (15s); the building block polls it.
        ready_url=f"http://{http_bind}/ready",
    )


@deploy("Loki")
def loki(settings: LokiSettings, ctx: HostContext):
    """
    Install Loki with the retention policy applied by its compactor.

    + settings: Loki's settings (`loki` in group data)
    + ctx: the host context: the retention policy (`retention`), the binds and the object
      store's endpoint from the topology, its region, the run's secrets (the S3 credentials)
    """
    http_bind, grpc_bind = ctx.bind("loki.local"), ctx.bind("loki.grpc")
    s3_endpoint = ctx.topology.reach("object_store.s3", ctx.name)
    ring = ring_of(ctx, NAME)
    config = render_config(settings, ctx.settings.retention, s3_endpoint, ctx.settings.object_store.region, http_bind, grpc_bind,
                           ring=ring)
    # Loki's own certificate is for gRPC and memberlist between the hosts: scaled out only (the front serves loki.http).
    certificate = leaf(ctx, NAME, "loki.http") if ring else None  # the front's leaf: the same host, names and identity
    tls = tls_files(NAME, certificate) if certificate else ()
    spec = service_spec(settings, config, credentials_env(settings, ctx.secrets), http_bind, tls)
    release_service(spec=spec, artifact_base_url=ctx.artifact_base_url, hardening=ctx.hardening)
    if certificate:
        certificate_expiry(ctx.settings.node_exporter.textfile_dir, NAME, certificate)  # CertificateExpiresSoon
    else:  # Loki served loki.http itself before its front: its old key and expiry metric go
        no_certificate(ctx.settings.node_exporter.textfile_dir, NAME, "single mode: its front serves TLS")
    authenticating_front(ctx, FRONT)
