from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from roles._model import AbsPath, Bool, Fraction, HttpUrl, Model, Port, SecretName, SettingsError, matching

# Service name and version make the Sentry release "<name>@<version>" (no '/',
# no whitespace, as Sentry requires) and OTEL_RESOURCE_ATTRIBUTES (no ',' or '=').
ReleasePart = matching("release name part", r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", "use letters, digits and . _ + - only, e.g. 1.4.2")
# Sentry organization and project slugs (or numeric ids).
SentrySlug = matching("Sentry slug", r"[a-z0-9][a-z0-9_-]*", "use the slug from the Sentry URL, e.g. 'sentinel'")
UnitName = matching("systemd service name", r"[A-Za-z0-9:_.@-]+\.service", "write it like sentinel-backend.service")

Sampler = Literal[
    "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"
]


OTLP_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")


def _otlp_base_url(value: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the SDK appends the signal's path to it."""
    path = urlsplit(value).path.rstrip("/")
    for signal in OTLP_SIGNAL_PATHS:
        if path.endswith(signal):
            base = value[: value.rindex(signal)] or value
            raise ValueError(
                f"{value!r} ends in the signal path {signal}, which the OpenTelemetry SDK appends itself "
                f"(it would send to ...{signal}{signal} and get 404). Fix: give the base URL, {base}"
            )
    return value


OtlpBaseUrl = Annotated[HttpUrl, AfterValidator(_otlp_base_url)]


# The role writes this file as root (0640 root:sentinel): only in the backend's own config directory.
EnvFilePath = matching("env file under /etc/sentinel", r"/etc/sentinel[a-z0-9_-]*/[A-Za-z0-9._-]+", "write it like /etc/sentinel/backend.env")

class BackendSettings(Model):
    """The Sentinel backend's environment on the `app` hosts.

    The backend itself is deployed by its own pipeline; the toolkit owns the env
    file its unit loads. In the lab, `standin` also runs the lab's Node backend.
    """

    env_file: EnvFilePath = Field("/etc/sentinel/backend.env", description="The env file the backend's unit loads (under /etc/sentinel*/).")
    unit: UnitName = Field("sentinel-backend.service", description="The backend's systemd unit, restarted when the env file changes; with the gateway's TLS it gets a drop-in loading the OTLP client key as a credential (docs/tls.md).")
    service_name: ReleasePart = Field("sentinel-backend", description="OTel service.name and the Sentry release's name.")
    version: ReleasePart = Field("0.0.0", description="The deployed backend version (Sentry release <service_name>@<version>).")
    port: Port = Field(3000, description="The backend's HTTP port (health and /metrics).")
    metrics_path: AbsPath = Field("/metrics", description="Path Prometheus scrapes on the backend.")
    otlp_endpoint: OtlpBaseUrl | None = Field(
        None, description="OTLP HTTP base URL (the SDK appends /v1/traces); unset = the host's collector agent, https://127.0.0.1:4319."
    )
    trace_sampler: Sampler = Field("parentbased_traceidratio", description="OTEL_TRACES_SAMPLER.")
    trace_sample_ratio: Fraction = Field(1.0, description="OTEL_TRACES_SAMPLER_ARG, 0 to 1.")
    sentry_dsn_secret: SecretName = Field("SENTRY_DSN", description="Secret holding the Sentry DSN; unset secret = Sentry off.")
    sentry_profiles_sample_rate: Fraction = Field(0.0, description="Sentry profiles sample rate, 0 to 1.")
    sourcemaps_dir: AbsPath | None = Field(
        None, description="Where the backend build ships its *.map files on the host; unset = no source map upload."
    )
    sentry_org: SentrySlug | None = Field(None, description="Sentry organization slug (needed with sourcemaps_dir).")
    sentry_project: SentrySlug | None = Field(None, description="Sentry project slug (needed with sourcemaps_dir).")
    sentry_auth_token_secret: SecretName = Field(
        "SENTRY_AUTH_TOKEN", description="Secret holding the Sentry auth token for release creation and upload."
    )
    sentry_url: HttpUrl = Field("https://sentry.io", description="Sentry server for sentry-cli (gets the auth token: https outside the lab).")
    standin: Bool = Field(False, description="Run the lab's Node backend (lab/backend_node; lab only).")

    # OpenTelemetry owns tracing (docs/howto-sentry-node.md, rule 4): with a Sentry traces sample
    # rate, @sentry/node starts spans of its own and its events carry Sentry's trace id instead of
    # the OpenTelemetry one the traces and log lines carry. Sampling is OTEL_TRACES_SAMPLER's.
    MOVED_KEYS: ClassVar[dict[str, str]] = {"sentry_traces_sample_rate": "backend.trace_sample_ratio (with trace_sampler; Sentry's own tracing stays off)"}

    @model_validator(mode="after")
    def _upload_needs_slugs(self):
        if self.sourcemaps_dir is not None:
            for key in ("sentry_org", "sentry_project"):
                if getattr(self, key) is None:
                    raise SettingsError(
                        key,
                        "source maps are uploaded but the key is not set",
                        f"set backend.{key} (the slug in the Sentry URL) or unset backend.sourcemaps_dir",
                    )
        return self
