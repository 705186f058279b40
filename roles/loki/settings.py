"""Settings of the Loki log store (production; never run in this workplace, see docs/retention.md)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, Field

from roles._model import ServiceDir, Bool, Duration, Model, Name, Port, SecretName


def _past_day(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a day. Fix: write it as YYYY-MM-DD, e.g. 2024-01-01")
    if date.fromisoformat(value) >= date.today():
        raise ValueError(
            f"{value} is not in the past. Fix: a new install's only schema period must start in the past "
            "(a future date leaves no active schema); use e.g. 2024-01-01"
        )
    return value


def _size(value: str) -> str:
    if not re.fullmatch(r"[1-9]\d*(KB|MB|GB)", value):
        raise ValueError(f"{value!r} is not a size. Fix: write it like 256KB or 5MB")
    return value


PastDay = Annotated[str, AfterValidator(_past_day)]
LokiSize = Annotated[str, AfterValidator(_size)]


class LokiSettings(Model):
    """Loki on the `telemetry` hosts, chunks in the object store: the single binary (`-target=all`) on
    `stores.host`, or with `stores.mode: scalable` the read, write and backend targets on every telemetry host.

    The retention periods are not here: they come from the retention policy
    (`retention` in group data). The S3 credentials are named secrets, read on the
    controller and written to a 0640 root:loki environment file; the YAML holds
    only ${LOKI_S3_ACCESS_KEY} / ${LOKI_S3_SECRET_KEY} (`-config.expand-env=true`).
    """

    http_port: Port = Field(3100, description="HTTP API through Loki's authenticating front (mTLS, each identity to its own paths): OTLP (/otlp), queries, deletes, /ready, /metrics.")
    local_http_port: Port = Field(3101, description="Loki's own HTTP API on 127.0.0.1, behind its front (which holds `http_port` on the host's IP).")
    grpc_port: Port = Field(9095, description='gRPC: Loki talking to itself (127.0.0.1); with stores.mode scalable, the Loki processes of the telemetry hosts to each other (the host IP, mTLS).')
    memberlist_port: Port = Field(7946, description='stores.mode scalable only: memberlist gossip (the ring) between the telemetry hosts\' Loki processes (the host IP, TLS).')
    data_dir: ServiceDir = Field("/var/lib/loki", description='WAL, TSDB index and compactor state (the hot tier).')
    bucket: Name = Field("loki", description='S3 bucket of the chunks (object_store.buckets must hold it).')
    # The toolkit's object store (versitygw) speaks plain HTTP on the internal network.
    s3_insecure: Bool = Field(True, description="Plain HTTP to the object store (the toolkit's versitygw on the internal network).")
    access_key_secret: SecretName = Field(
        "SENTINEL_S3_LOKI_ACCESS_KEY", description="Secret holding Loki's own S3 access key (its account owns only its bucket; never the store's root key)."
    )
    secret_key_secret: SecretName = Field("SENTINEL_S3_LOKI_SECRET_KEY", description="Secret holding Loki's own S3 secret key.")
    previous_access_key_secret: SecretName = Field(
        "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY",
        description="Secret holding Loki's PREVIOUS access key id during a two-phase rotation: set, the store still accepts that "
        "key on the bucket beside the new one; unset (the second phase), it deletes that account (docs/tls.md \"S3 keys\").",
    )
    # First day of the one schema period (tsdb, v13, 24h index); must be in the past.
    schema_from: PastDay = Field("2024-01-01", description='First day of the one schema period (tsdb, v13, 24h index); must be in the past.')
    # Ingestion limits, per tenant (there is one: auth is off). The backend writes
    # a few lines per request; these leave room for bursts and replays after an outage.
    ingestion_rate_mb: Annotated[float, Field(gt=0, le=1024)] = Field(8, description='Per-tenant ingestion rate (MB/s); leaves room for bursts and replays after an outage.')
    ingestion_burst_size_mb: Annotated[float, Field(gt=0, le=4096)] = Field(16, description='Per-tenant ingestion burst (MB).')
    per_stream_rate_limit: LokiSize = Field("5MB", description='Per-stream rate limit.')
    per_stream_rate_limit_burst: LokiSize = Field("20MB", description='Per-stream burst.')
    max_line_size: LokiSize = Field("256KB", description='Longest line accepted.')
    # service x env x stream x level: a few dozen streams; anything near this is a label leak.
    max_global_streams_per_user: Annotated[int, Field(ge=100, le=1_000_000)] = Field(5000, description='service x env x stream x level is a few dozen streams; anything near this is a label leak.')
    # Lines older than this are refused at ingestion (the collector's queue holds less).
    reject_old_samples_max_age: Duration = Field("7d", description="Lines older than this are refused at ingestion (the collector's queue holds less).")
    # A delete request can be cancelled this long; then the compactor deletes.
    delete_request_cancel_period: Duration = Field("24h", description='A delete request can be cancelled this long; then the compactor deletes.')
    retention_delete_delay: Duration = Field("2h", description='Delay before the compactor deletes chunks marked for retention.')
