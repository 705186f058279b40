from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from roles._schema import SettingsError, check_duration, check_port, duration_seconds


@dataclass(frozen=True)
class PrometheusSettings:
    """Prometheus on the `monitoring` hosts. Its retention is part of the retention policy
    (`retention.prometheus`, roles/retention), with the log retention it goes with."""

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "retention_time": "retention.prometheus.time",
        "retention_size": "retention.prometheus.size",
    }

    listen_port: int = 9090
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    remote_write_receiver: bool = True  # Tempo's metrics generator writes here
    external_labels: dict[str, str] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.listen_port", self.listen_port)
        check_duration(f"{prefix}.scrape_interval", self.scrape_interval, minimum="1s")
        check_duration(f"{prefix}.evaluation_interval", self.evaluation_interval, minimum="1s")
        if duration_seconds(self.scrape_interval) > 300:
            raise SettingsError(
                f"{prefix}.scrape_interval", "longer than 5m makes series go stale between scrapes", "use 5m or less"
            )
