"""Settings, read only from environment variables.

The systemd unit loads /etc/sentinel/backend.env, the same file the real
backend reads, so every name here is one the real backend also understands
(HOST is the one addition, for binding tests to loopback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote

DEFAULT_PORT = 3000
DEFAULT_FAULTS_FILE = "/var/lib/sentinel/faults.json"
DEFAULT_LOG_FILE = "/var/log/sentinel/backend.log"
DEFAULT_SERVICE_NAME = "sentinel-backend"
DEFAULT_ENVIRONMENT = "development"
DEFAULT_VERSION = "0.0.0-dev"


class ConfigError(ValueError):
    """An environment variable holds a value the stand-in cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the stand-in is configured with."""

    host: str
    port: int
    service_name: str
    environment: str
    version: str
    otlp_endpoint: str | None
    sentry_dsn: str | None
    sentry_environment: str
    sentry_release: str
    sentry_traces_sample_rate: float | None
    sentry_profiles_sample_rate: float | None
    faults_file: str
    log_file: str | None  # None: stdout only (SENTINEL_LOG_FILE set to "")


def parse_resource_attributes(raw: str) -> dict[str, str]:
    """Parse OTEL_RESOURCE_ATTRIBUTES (``k=v,k2=v2``, values percent-encoded)."""
    attributes: dict[str, str] = {}
    for pair in raw.split(","):
        if "=" not in pair:
            continue
        key, _, value = pair.partition("=")
        key = key.strip()
        if key:
            attributes[key] = unquote(value.strip())
    return attributes


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _rate(env: Mapping[str, str], name: str) -> float | None:
    raw = _optional(env, name)
    if raw is None:
        return None
    try:
        rate = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {raw!r}")
    return rate


def _port(env: Mapping[str, str]) -> int:
    raw = _optional(env, "PORT")
    if raw is None:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"PORT must be an integer, got {raw!r}") from None
    # 0 asks the kernel for a free port; tests use it and read the port back
    # from the "listening" log line.
    if not 0 <= port <= 65535:
        raise ConfigError(f"PORT must be 0..65535, got {raw!r}")
    return port


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: os.environ); raise ConfigError on bad values."""
    env = os.environ if env is None else env
    resource = parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))

    service_name = _optional(env, "OTEL_SERVICE_NAME") or resource.get("service.name") or DEFAULT_SERVICE_NAME
    # deployment.environment.name is the current semconv key; deployment.environment the older one.
    environment = (
        resource.get("deployment.environment.name")
        or resource.get("deployment.environment")
        or _optional(env, "SENTRY_ENVIRONMENT")
        or DEFAULT_ENVIRONMENT
    )
    version = resource.get("service.version") or _optional(env, "SENTRY_RELEASE") or DEFAULT_VERSION

    return Settings(
        host=_optional(env, "HOST") or "0.0.0.0",
        port=_port(env),
        service_name=service_name,
        environment=environment,
        version=version,
        # The signal-specific variable is honoured by the exporter too, so it
        # also switches export on.
        otlp_endpoint=_optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT") or _optional(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        sentry_dsn=_optional(env, "SENTRY_DSN"),
        sentry_environment=_optional(env, "SENTRY_ENVIRONMENT") or environment,
        sentry_release=_optional(env, "SENTRY_RELEASE") or version,
        sentry_traces_sample_rate=_rate(env, "SENTRY_TRACES_SAMPLE_RATE"),
        sentry_profiles_sample_rate=_rate(env, "SENTRY_PROFILES_SAMPLE_RATE"),
        faults_file=_optional(env, "SENTINEL_FAULTS_FILE") or DEFAULT_FAULTS_FILE,
        # Unset: the default file; set but empty: no file (stdout only).
        log_file=DEFAULT_LOG_FILE if "SENTINEL_LOG_FILE" not in env else _optional(env, "SENTINEL_LOG_FILE"),
    )
