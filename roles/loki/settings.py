"""Settings of the Loki log store (production; never run in this workplace, see docs/retention.md)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, Field

from roles._model import AbsPath, Duration, Model, Name, Port, SecretName, Text


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
    """Loki single binary (`-target=all`) on the `telemetry` hosts, chunks in the object store.

    The retention periods are not here: they come from the retention policy
    (`retention` in group data). The S3 credentials are named secrets, read on the
    controller and written to a 0640 root:loki environment file; the YAML holds
    only ${LOKI_S3_ACCESS_KEY} / ${LOKI_S3_SECRET_KEY} (`-config.expand-env=true`).
    """

    listen_address: Text = "0.0.0.0"
    http_port: Port = 3100
    grpc_port: Port = 9095
    data_dir: AbsPath = "/var/lib/loki"
    bucket: Name = "loki"
    # The toolkit's object store (versitygw) speaks plain HTTP on the internal network.
    s3_insecure: bool = True
    access_key_secret: SecretName = "SENTINEL_S3_ACCESS_KEY"
    secret_key_secret: SecretName = "SENTINEL_S3_SECRET_KEY"
    # First day of the one schema period (tsdb, v13, 24h index); must be in the past.
    schema_from: PastDay = "2024-01-01"
    # Ingestion limits, per tenant (there is one: auth is off). The backend writes
    # a few lines per request; these leave room for bursts and replays after an outage.
    ingestion_rate_mb: Annotated[float, Field(gt=0, le=1024)] = 8
    ingestion_burst_size_mb: Annotated[float, Field(gt=0, le=4096)] = 16
    per_stream_rate_limit: LokiSize = "5MB"
    per_stream_rate_limit_burst: LokiSize = "20MB"
    max_line_size: LokiSize = "256KB"
    # service x env x stream x level: a few dozen streams; anything near this is a label leak.
    max_global_streams_per_user: Annotated[int, Field(ge=100, le=1_000_000)] = 5000
    # Lines older than this are refused at ingestion (the collector's queue holds less).
    reject_old_samples_max_age: Duration = "7d"
    # A delete request can be cancelled this long; then the compactor deletes.
    delete_request_cancel_period: Duration = "24h"
    retention_delete_delay: Duration = "2h"
