from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from roles._model import Bool, Duration, LabelName, LabelValue, Model, Port, duration_seconds


class PrometheusSettings(Model):
    """Prometheus on the `monitoring` hosts. Its retention is part of the retention policy
    (`retention.prometheus`, roles/retention), with the log retention it goes with."""

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "retention_time": "retention.prometheus.time",
        "retention_size": "retention.prometheus.size",
    }

    listen_port: Port = Field(9090, description="Port of the web UI and API.")
    scrape_interval: Duration = Field("15s", description="How often every target is scraped (1s to 5m).")
    evaluation_interval: Duration = Field("15s", description="How often alert rules are evaluated (at least 1s).")
    remote_write_receiver: Bool = Field(True, description="Accept remote write (Tempo's metrics generator writes here).")
    external_labels: dict[LabelName, LabelValue] = Field(
        default_factory=dict, description="Labels added to every series and alert leaving this Prometheus."
    )

    @field_validator("external_labels")
    @classmethod
    def _not_the_toolkits_labels(cls, value: dict[str, str]) -> dict[str, str]:
        # `environment` is the inventory's; `replica` names the Prometheus of a pair and is dropped
        # from alerts (roles/prometheus REPLICA_LABEL): set here, it would be overwritten or dedupe wrongly.
        taken = sorted(set(value) & {"environment", "replica"})
        if taken:
            raise ValueError(f"{', '.join(taken)} is set by the toolkit. Fix: remove it from prometheus.external_labels")
        return value

    @field_validator("scrape_interval", "evaluation_interval")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        if duration_seconds(value) < 1:
            raise ValueError(f"{value} is shorter than the minimum 1s. Fix: use 1s or more")
        return value

    @field_validator("scrape_interval")
    @classmethod
    def _not_stale(cls, value: str) -> str:
        if duration_seconds(value) > 300:
            raise ValueError("longer than 5m makes series go stale between scrapes. Fix: use 5m or less")
        return value
