"""Tempo on the `telemetry` hosts: the production trace store (traces.store: tempo).

Tempo is AGPL: this workplace never downloads, builds or runs it, so the role is
proven by rendering and by a check of every key it writes against Tempo's own
configuration reference for the pinned version (files/tempo/). On a real host the
building block runs `tempo -config.verify` on the staged file before the swap.

- OTLP receivers on `traces.listen_address` (Tempo 2.7+ binds localhost unless
  told), ports 4417/4418: the collector gateway holds 4317/4318 on the same host.
- Blocks in the object_store role's S3 bucket `tempo` (or local disk), credentials
  expanded from an EnvironmentFile (0640 root:tempo) with -config.expand-env=true,
  never written into the YAML.
- `compactor.compaction.block_retention` = `traces.retention` (default 336h).
- The metrics generator stays OFF: the collector gateway's span_metrics connector
  makes the span metrics, so there is one source of them whichever store is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import yaml
from pyinfra.api import deploy

from roles._godur import go_duration
from roles._service import ConfigFile, ServiceSpec, quoting, release_service

if TYPE_CHECKING:  # a runtime import would be circular: the traces settings hold TempoSettings
    from roles.object_store.settings import ObjectStoreSettings
    from roles.otel_collector.settings import TracesSettings

NAME = "tempo"
CONFIG = "/etc/tempo/config.yaml"
CREDENTIALS = "/etc/tempo/s3.env"
# Names Tempo expands from CREDENTIALS (-config.expand-env=true).
ACCESS_KEY_VAR = "TEMPO_S3_ACCESS_KEY"
SECRET_KEY_VAR = "TEMPO_S3_SECRET_KEY"


def render_config(traces: TracesSettings, s3_endpoint: str = "", s3_region: str = "us-east-1") -> dict:
    """
    Tempo's config as a dict.

    + traces: `traces` settings (store tempo; ports, listen address, retention, traces.tempo)
    + s3_endpoint: host:port of the object store (backend s3)
    + s3_region: the object store's region (backend s3)
    """
    tempo = traces.tempo
    listen = traces.listen_address
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
    return {
        "server": {"http_listen_port": tempo.http_port, "grpc_listen_port": tempo.grpc_port, "log_level": "info"},
        "distributor": {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"{listen}:{traces.otlp_grpc_port}"},
                        "http": {"endpoint": f"{listen}:{traces.otlp_http_port}"},
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


def service_spec(traces: TracesSettings, config: str, credentials: str | None) -> ServiceSpec:
    """Tempo's service; `credentials` is the env file's content (backend s3) or None."""
    tempo = traces.tempo
    configs = []
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
        ready_url=f"http://127.0.0.1:{tempo.http_port}/ready",
        working_directory=tempo.data_dir,
    )


@deploy("Tempo")
def tempo(traces: TracesSettings, object_store: ObjectStoreSettings, secrets: Mapping[str, str], artifact_base_url: str, hardening: bool = True):
    """
    Install Tempo with its blocks in the object store (or on local disk).

    + traces: `traces` settings (store tempo)
    + object_store: the object_store settings (S3 port and region on this telemetry host)
    + secrets: the run's resolved secrets (the S3 credentials, backend s3)
    + artifact_base_url: where release archives come from
    + hardening: apply the systemd sandboxing directives
    """
    s3 = traces.tempo.backend == "s3"
    config = render_config(traces, f"127.0.0.1:{object_store.listen_port}" if s3 else "", object_store.region)
    credentials = credentials_env(traces, secrets) if s3 else None
    release_service(service_spec(traces, config_text(config), credentials), artifact_base_url, hardening)
