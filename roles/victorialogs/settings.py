"""Settings of the VictoriaLogs log store (lab, and the permissively licensed alternative to Loki)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from roles._model import ServiceDir, Model, OnCalendar, Port


class VictoriaLogsSettings(Model):
    """VictoriaLogs on the `telemetry` hosts: one node on `stores.host`, or with `stores.mode: scalable` a cluster of
    every telemetry host (a storage node and an access tier on each: docs/logs-cluster.md).

    Its retention is not set here: it comes from the retention policy
    (`retention` in group data), as the longest period of any class, and the
    shorter classes are deleted by the daily enforcement job.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"listen": "victorialogs.port (the address is the host's ip, from the topology)"}

    port: Port = Field(
        9428,
        description="HTTPS with client certificates (the store's front): ingestion (OTLP /insert/opentelemetry/v1/logs), queries, deletes, /health and /metrics.",
    )
    local_port: Port = Field(
        9429,
        description="VictoriaLogs itself, on 127.0.0.1 behind its authenticating front (which holds `port` on the host's IP).",
    )
    storage_port: Port = Field(
        9430,
        description="stores.mode scalable only: the storage node's front on the host's IP (HTTPS, client certificates): "
        "every telemetry host's access tier writes and queries here (/internal/*), Prometheus scrapes it.",
    )
    access_local_port: Port = Field(
        9431,
        description="stores.mode scalable only: the access tier (VictoriaLogs with -storageNode: vlinsert and vlselect) on "
        "127.0.0.1, behind the front's `port`.",
    )
    storage_path: ServiceDir = Field("/var/lib/victorialogs/data", description="Where the store keeps its data.")
    max_disk_usage_percent: Annotated[int, Field(ge=1, le=100)] = Field(
        90, description="Stop accepting new logs when the disk is this full, rather than fill it (1..100)."
    )
    enforcement_schedule: OnCalendar = Field(
        "*-*-* 03:17:00", description="systemd OnCalendar of the retention enforcement job; daily, as the store's own retention runs on day partitions."
    )
    enforcement_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        3600, description="The longest the enforcement job waits for its deletes to finish (seconds)."
    )


