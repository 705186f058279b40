"""The backend's env file: present, private, with the keys the backend reads."""

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.tracing, pytest.mark.sentry]

EXPECTED_KEYS = {
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE",
    "SENTRY_PROFILES_SAMPLE_RATE",
}


def test_env_file_mode_and_owner(app_host):
    """Root's alone: systemd reads it for the unit's EnvironmentFile= (docs/contract.md section 1); it holds the Sentry DSN."""
    from roles.backend import ENV_FILE_MODE

    env = app_host.testinfra.file(app_host.settings.backend.env_file)
    assert env.exists
    assert env.mode == int(ENV_FILE_MODE, 8) == 0o600
    assert env.user == "root"
    assert env.group == "root"


def test_env_file_keys(app_host):
    content = app_host.testinfra.file(app_host.settings.backend.env_file).content_string
    values = dict(line.split("=", 1) for line in content.splitlines() if line and not line.startswith("#"))
    assert EXPECTED_KEYS <= set(values)
    backend = app_host.settings.backend
    assert values["OTEL_SERVICE_NAME"] == backend.service_name
    assert values["SENTRY_ENVIRONMENT"] == app_host.settings.environment
    assert f"deployment.environment={app_host.settings.environment}" in values["OTEL_RESOURCE_ATTRIBUTES"]
    assert values["SENTRY_RELEASE"] == f"{backend.service_name}@{backend.version}"
