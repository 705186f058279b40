from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from roles._schema import SettingsError, check_port, check_url

# Sentry organization and project slugs (or numeric ids).
_SENTRY_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Service name and version make the Sentry release "<name>@<version>" (no '/',
# no whitespace, as Sentry requires) and OTEL_RESOURCE_ATTRIBUTES (no ',' or '=').
_RELEASE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")

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
    # Where the backend build ships its *.map files on the host; unset = no upload.
    sourcemaps_dir: str | None = None
    # Release creation and source map upload (sentry-cli), only with sourcemaps_dir.
    sentry_org: str | None = None
    sentry_project: str | None = None
    sentry_auth_token_secret: str = "SENTRY_AUTH_TOKEN"
    sentry_url: str = "https://sentry.io"
    standin: bool = False

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.port", self.port)
        for key in ("service_name", "version"):
            if not _RELEASE_PART.match(getattr(self, key)):
                raise SettingsError(
                    f"{prefix}.{key}", f"{getattr(self, key)!r} cannot be part of a release name", "use letters, digits and . _ + - only, e.g. 1.4.2"
                )
        if self.otlp_endpoint is not None:
            check_url(f"{prefix}.otlp_endpoint", self.otlp_endpoint)
        for key in ("trace_sample_ratio", "sentry_traces_sample_rate", "sentry_profiles_sample_rate"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{prefix}.{key}", f"{value} is outside 0 to 1", "use a fraction such as 0.1")
        check_url(f"{prefix}.sentry_url", self.sentry_url)
        for key in ("sentry_org", "sentry_project"):
            value = getattr(self, key)
            if value is not None and not _SENTRY_SLUG.match(value):
                raise SettingsError(f"{prefix}.{key}", f"{value!r} is not a Sentry slug", "use the slug from the Sentry URL, e.g. 'sentinel'")
        if self.sourcemaps_dir is not None:
            if not self.sourcemaps_dir.startswith("/"):
                raise SettingsError(f"{prefix}.sourcemaps_dir", f"{self.sourcemaps_dir!r} is not an absolute path", "write the directory on the host, e.g. /opt/sentinel-backend/dist")
            for key in ("sentry_org", "sentry_project"):
                if getattr(self, key) is None:
                    raise SettingsError(f"{prefix}.{key}", "source maps are uploaded but the key is not set", f"set backend.{key} (the slug in the Sentry URL) or unset backend.sourcemaps_dir")
