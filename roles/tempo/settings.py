"""Settings of Tempo (production trace store; AGPL, never run in this workplace)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from roles._model import ServiceDir, Model, Name, Port, SecretName


class TempoSettings(Model):
    """Tempo 2.x on the `telemetry` hosts: the single binary on `stores.host`, or with `stores.mode: scalable`
    the scalable single binary on every telemetry host (blocks then in S3: preflight refuses `backend: local`).

    Its OTLP receivers listen on `traces.listen_address` with
    `traces.otlp_grpc_port` / `traces.otlp_http_port`; blocks are kept
    `traces.retention`. The metrics generator stays off: the collector gateway
    makes the span metrics, whichever store is chosen (docs/tracing.md).
    """

    http_port: Port = Field(3200, description="HTTP API, /ready and /metrics, through Tempo's authenticating front (mTLS, each identity to its own paths).")
    # Tempo itself behind its front (roles/tempo/front.py), which holds http_port and traces.otlp_http_port on the host's IP.
    local_http_port: Port = Field(3201, description="Tempo's own HTTP API on 127.0.0.1, behind its front (which holds `http_port`).")
    local_otlp_http_port: Port = Field(14418, description="Tempo's OTLP/HTTP receiver on 127.0.0.1, behind its front (which holds `traces.otlp_http_port`).")
    # Not 9095 (Tempo's default): Loki's gRPC port on the same telemetry host.
    grpc_port: Port = Field(9097, description="Tempo's internal gRPC server (127.0.0.1; with stores.mode scalable, between the telemetry hosts' Tempos, on the host IP).")
    # Not 7946 (memberlist's default): Loki's gossip port on the same telemetry host.
    memberlist_port: Port = Field(7947, description="stores.mode scalable only: memberlist gossip (the ring) between the telemetry hosts' Tempos (the host IP).")
    backend: Literal["local", "s3"] = Field("s3", description="Where blocks go: local disk, or the object_store role's S3 bucket.")
    bucket: Name = Field("tempo", description="S3 bucket (object_store.buckets must hold it).")
    data_dir: ServiceDir = Field("/var/lib/tempo", description="WAL (and local blocks) directory.")
    access_key_secret: SecretName = Field(
        "SENTINEL_S3_TEMPO_ACCESS_KEY", description="Secret holding Tempo's own S3 access key (its account owns only its bucket; never the store's root key)."
    )
    secret_key_secret: SecretName = Field("SENTINEL_S3_TEMPO_SECRET_KEY", description="Secret holding Tempo's own S3 secret key.")
    previous_access_key_secret: SecretName = Field(
        "SENTINEL_S3_TEMPO_PREVIOUS_ACCESS_KEY",
        description="Secret holding Tempo's PREVIOUS access key id during a two-phase rotation: set, the store still accepts that "
        "key on the bucket beside the new one; unset (the second phase), it deletes that account (docs/tls.md \"S3 keys\").",
    )
