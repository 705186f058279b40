from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from roles._schema import SettingsError, check_port, check_url

Sampler = Literal[
    "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"
]


@dataclass(frozen=True)
class BackendSettings:
    """The Sentinel backend's environment on the `app` hosts.

    The backend itself is deployed by its own pipeline; the toolkit owns the env
    file its unit loads. In the lab, `standin` runs the stand-in backend instead.
    """

    env_file: str = "/etc/sentinel/backend.env"
    unit: str = "sentinel-backend.service"
    service_name: str = "sentinel-backend"
    version: str = "0.0.0"
    port: int = 3000
    metrics_path: str = "/metrics"
    otlp_endpoint: str | None = None  # default: OTLP HTTP on the first telemetry host
    trace_sampler: Sampler = "parentbased_traceidratio"
    trace_sample_ratio: float = 1.0
    sentry_dsn_secret: str = "SENTRY_DSN"
    sentry_traces_sample_rate: float = 0.1
    sentry_profiles_sample_rate: float = 0.0
    sourcemaps_dir: str | None = None
    standin: bool = False

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.port", self.port)
        if self.otlp_endpoint is not None:
            check_url(f"{prefix}.otlp_endpoint", self.otlp_endpoint)
        for key in ("trace_sample_ratio", "sentry_traces_sample_rate", "sentry_profiles_sample_rate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{prefix}.{key}", f"{value} is outside 0 to 1", "use a fraction such as 0.1")
