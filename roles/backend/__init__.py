"""The Sentinel backend's environment on the `app` hosts.

The backend ships through its own pipeline; the toolkit owns the env file its
systemd unit loads: OpenTelemetry export and sampling, Sentry, per environment.

Spans go to the host's collector agent (127.0.0.1, which balances them over the gateway pool with
its disk queue) over TLS with the host's backend certificate from the environment CA: roles/backend/tls.py writes it (the key 0600 root:root, handed to the
backend by systemd as a credential through a drop-in for its unit) and hands this role the
variables the OpenTelemetry SDK reads (OTEL_EXPORTER_OTLP_CERTIFICATE,
..._CLIENT_CERTIFICATE, and ..._CLIENT_KEY naming the credential's copy in
/run/credentials). That module is apart because roles._secrets imports
roles.backend.sentry, and the CA (roles._pki) reads the secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    from roles.backend.tls import BackendTls

GROUP = "sentinel"
ENV_FILE_MODE = "0600"  # root:root: systemd reads it as root (EnvironmentFile=); nothing else may


def agent_endpoints(ctx: HostContext) -> list[str]:
    """The OTLP/HTTP base URL of this host's collector agent (127.0.0.1, https: it requires a client
    certificate, docs/tls.md); the agent hands the spans on to the gateway pool with its disk queue."""
    if not any(l.name == "agent.otlp_http" for l in ctx.topology.on(ctx.name)):
        return []
    return [ctx.topology.url("agent.otlp_http", ctx.name, scheme="https")]


def uses_agent_tls(settings: Settings, endpoints: list[str]) -> bool:
    """The backend exports to the topology's agent (TLS, the environment CA), not to an endpoint of the operator's."""
    return not settings.backend.otlp_endpoint and bool(endpoints)


def otlp_endpoint(settings: Settings, agent_endpoints: list[str]) -> str:
    """The configured endpoint, or the host's collector agent."""
    if settings.backend.otlp_endpoint:
        return settings.backend.otlp_endpoint
    return agent_endpoints[0] if agent_endpoints else "http://127.0.0.1:4319"


def env_values(settings: Settings, endpoint: str, sentry_dsn: str, bind_host: str = "",
               tls_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of the env file, in file order; `sentry_dsn` is "" when Sentry is off.

    `bind_host` is the address backend.http binds (the topology's: the host's IP), as HOST.
    `tls_env`: the SDK's OTLP TLS variables (roles/backend/tls.py), when the endpoint is the host's agent.
    """
    backend = settings.backend
    values = {"HOST": bind_host} if bind_host else {}
    values |= {
        "PORT": str(backend.port),
        "OTEL_SERVICE_NAME": backend.service_name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # The agent requires a client certificate of the environment CA (docs/tls.md).
        **dict(tls_env or {}),
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


def render_env(settings: Settings, endpoint: str, sentry_dsn: str, bind_host: str = "",
               tls_env: Mapping[str, str] | None = None) -> str:
    """The env file's content, quoted per systemd's EnvironmentFile= rules; `sentry_dsn` is "" when Sentry is off."""
    header = f"Managed by the Sentinel observability toolkit; loaded by {settings.backend.unit}."
    quoting.refuse_control(header, "backend.unit")
    return quoting.env_file(env_values(settings, endpoint, sentry_dsn, bind_host, tls_env), "backend env file", header=header)


def restart_command(unit: str) -> str:
    """Shell: restart `unit` if it exists; the unit name is one quoted word, never an option."""
    quoting.refuse_control(unit, "backend.unit")
    u = quoting.sh_quote(unit)
    # reset-failed first: a deliberate restart must not count towards the unit's crash-loop start limit.
    return f"if systemctl cat -- {u} >/dev/null 2>&1; then systemctl reset-failed -- {u}; systemctl try-restart -- {u}; fi"


def config_dir() -> None:
    """The backend's group and /etc/sentinel (0750 root:sentinel), before anything is written in it."""
    server.group(name="backend: service group", group=GROUP, system=True)
    files.directory(name="backend: config dir", path="/etc/sentinel", user="root", group=GROUP, mode="0750")


@deploy("Backend environment")
def backend_env(backend: BackendSettings, ctx: HostContext, tls: BackendTls | None = None):
    """
    Write /etc/sentinel/backend.env and restart the backend when it or its certificate changes.

    + backend: the `backend` block
    + ctx: the host context: the environment, the run's secrets (the Sentry DSN, when set),
      the agent's OTLP/HTTP endpoint and the backend's bind from the topology
    + tls: the backend's certificate towards the agent (roles/backend/tls.py `backend_tls`)
    """
    settings, secrets = ctx.settings, ctx.secrets
    endpoints = agent_endpoints(ctx)
    dsn = secrets.get(backend.sentry_dsn_secret, "")
    if not dsn:
        logger.warning(f"{host.name}: {backend.sentry_dsn_secret} is not set, so Sentry is off for the backend")
    config_dir()
    env_file = validated_file(
        name="backend: env file",
        dest=backend.env_file,
        content=render_env(settings, otlp_endpoint(settings, endpoints), dsn, ctx.bind_ip("backend.http"), tls.env if tls else None),
        # Root's alone: systemd reads it for the unit's EnvironmentFile= before the process starts (docs/contract.md
        # section 1), and the collector agent, in the backend's group for its log directory, must not read the DSN.
        user="root",
        group="root",
        mode=ENV_FILE_MODE,
    )
    changes = [env_file, *(tls.changes if tls else ())]
    # A backend that is not installed (or not running) is left alone. The SDK reads its certificate
    # files at start, and systemd copies the key into /run/credentials at start: a renewed certificate,
    # or a new credential drop-in (`tls.changes` holds it), is picked up by this restart.
    server.shell(
        name="backend: restart for the new environment or certificate",
        commands=[restart_command(backend.unit)],
        _if=lambda: any(op.did_change() for op in changes),
    )
