"""The Sentinel backend's environment on the `app` hosts.

The backend ships through its own pipeline; the toolkit owns the env file its
systemd unit loads: OpenTelemetry export and sampling, Sentry, per environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import files, server

from roles._service import quoting
from roles._service.operations import validated_file
from roles.backend.sentry import release_name

if TYPE_CHECKING:  # the role gets its settings, secrets and peers as arguments
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.backend.settings import BackendSettings

GROUP = "sentinel"


def otlp_endpoint(settings: Settings, gateway_endpoints: list[str]) -> str:
    """The configured endpoint, or the first collector gateway's OTLP/HTTP base URL (telemetry hosts by name)."""
    if settings.backend.otlp_endpoint:
        return settings.backend.otlp_endpoint
    return gateway_endpoints[0] if gateway_endpoints else "http://127.0.0.1:4318"


def env_values(settings: Settings, endpoint: str, sentry_dsn: str, bind_host: str = "") -> dict[str, str]:
    """The variables of the env file, in file order; `sentry_dsn` is "" when Sentry is off.

    `bind_host` is the address backend.http binds (the topology's: the host's IP), as HOST.
    """
    backend = settings.backend
    values = {"HOST": bind_host} if bind_host else {}
    values |= {
        "PORT": str(backend.port),
        "OTEL_SERVICE_NAME": backend.service_name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # Traces only over OTLP (docs/contract.md §1): metrics are scraped from /metrics and
        # logs tailed from the log file, so the Node SDK's default OTLP metrics and logs
        # exporters (to /v1/metrics, /v1/logs) would send second copies or meet a 404.
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={settings.environment},service.version={backend.version}",
        "OTEL_TRACES_SAMPLER": backend.trace_sampler,
    }
    if "traceidratio" in backend.trace_sampler:
        values["OTEL_TRACES_SAMPLER_ARG"] = str(backend.trace_sample_ratio)
    values.update(
        SENTRY_DSN=sentry_dsn,
        SENTRY_ENVIRONMENT=settings.environment,
        SENTRY_RELEASE=release_name(backend.service_name, backend.version),
        SENTRY_PROFILES_SAMPLE_RATE=str(backend.sentry_profiles_sample_rate),
    )
    return values


def render_env(settings: Settings, endpoint: str, sentry_dsn: str, bind_host: str = "") -> str:
    """The env file's content, quoted per systemd's EnvironmentFile= rules; `sentry_dsn` is "" when Sentry is off."""
    header = f"Managed by the Sentinel observability toolkit; loaded by {settings.backend.unit}."
    quoting.refuse_control(header, "backend.unit")
    return quoting.env_file(env_values(settings, endpoint, sentry_dsn, bind_host), "backend env file", header=header)


def restart_command(unit: str) -> str:
    """Shell: restart `unit` if it exists; the unit name is one quoted word, never an option."""
    quoting.refuse_control(unit, "backend.unit")
    u = quoting.sh_quote(unit)
    return f"if systemctl cat -- {u} >/dev/null 2>&1; then systemctl try-restart -- {u}; fi"


@deploy("Backend environment")
def backend_env(backend: BackendSettings, ctx: HostContext):
    """
    Write /etc/sentinel/backend.env and restart the backend when it changes.

    + backend: the `backend` block
    + ctx: the host context: the environment, the run's secrets (the Sentry DSN, when set),
      the gateway's OTLP/HTTP endpoint and the backend's bind from the topology
    """
    settings, secrets = ctx.settings, ctx.secrets
    gateway_endpoints = ctx.urls("gateway.otlp_http")
    dsn = secrets.get(backend.sentry_dsn_secret, "")
    if not dsn:
        logger.warning(f"{host.name}: {backend.sentry_dsn_secret} is not set, so Sentry is off for the backend")
    server.group(name="backend: service group", group=GROUP, system=True)
    files.directory(name="backend: config dir", path="/etc/sentinel", user="root", group=GROUP, mode="0750")
    env_file = validated_file(
        name="backend: env file",
        dest=backend.env_file,
        content=render_env(settings, otlp_endpoint(settings, gateway_endpoints), dsn, ctx.bind_ip("backend.http")),
        user="root",
        group=GROUP,
        mode="0640",
    )
    # A backend that is not installed (or not running) is left alone.
    server.shell(
        name="backend: restart for the new environment",
        commands=[restart_command(backend.unit)],
        _if=env_file.did_change,
    )
