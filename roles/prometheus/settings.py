from __future__ import annotations

from dataclasses import dataclass, field

from roles._schema import SettingsError, check_duration, check_port, check_size, duration_seconds


@dataclass(frozen=True)
class PrometheusSettings:
    """Prometheus on the `monitoring` hosts. Retention defaults to 15 days."""

    listen_port: int = 9090
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    retention_time: str = "15d"
    retention_size: str = "0"  # "0" = no size limit
    remote_write_receiver: bool = True  # Tempo's metrics generator writes here
    external_labels: dict[str, str] = field(default_factory=dict)

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.listen_port", self.listen_port)
        check_duration(f"{prefix}.scrape_interval", self.scrape_interval, minimum="1s")
        check_duration(f"{prefix}.evaluation_interval", self.evaluation_interval, minimum="1s")
        check_duration(f"{prefix}.retention_time", self.retention_time, minimum="2h")
        check_size(f"{prefix}.retention_size", self.retention_size)
        if duration_seconds(self.scrape_interval) > 300:
            raise SettingsError(
                f"{prefix}.scrape_interval", "longer than 5m makes series go stale between scrapes", "use 5m or less"
            )
