"""Tempo (production only, never run here): rendered for dev, staging and prod, every key
checked against Tempo's configuration reference for the pinned version."""

from __future__ import annotations

import pytest
import yaml

from roles._service import unit_file
from roles._service.artifacts import load_versions
from roles._environment import REPO, load_environment
from roles.otel_collector.settings import TracesSettings
from roles.tempo import CREDENTIALS, config_text, render_config, service_spec

pytestmark = pytest.mark.tracing

REFERENCE_VERSION = "2.10.8"
REFERENCE = REPO / "files" / "tempo" / f"config-reference-{REFERENCE_VERSION}.txt"


def reference_paths() -> tuple[set[str], set[str]]:
    """(exact key paths, open blocks) of the reference file."""
    lines = [line.strip() for line in REFERENCE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {line for line in lines if not line.endswith(".*")}, {line[:-2] for line in lines if line.endswith(".*")}


def key_paths(node, prefix: str = "") -> list[str]:
    paths = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        paths.append(path)
        if isinstance(value, dict) and not path.startswith("distributor.receivers"):
            paths.extend(key_paths(value, path))
    return paths


def unknown_keys(config: dict) -> list[str]:
    exact, open_blocks = reference_paths()
    return [
        path for path in key_paths(config)
        if path not in exact and not any(path == block or path.startswith(block + ".") for block in open_blocks)
    ]


def env_traces(env: str) -> TracesSettings:
    """The `traces` settings of the telemetry host of inventory/<env>.py, as the deploy gets them."""
    return load_environment(REPO / "inventory" / f"{env}.py").group("telemetry")[0].settings.traces


def test_reference_is_for_the_pinned_version():
    pinned = load_versions().get("tempo", {}).get("version")
    if pinned is None:
        pytest.skip("files/versions.yml has no tempo entry in this branch yet (the artifacts branch adds it)")
    assert pinned == REFERENCE_VERSION, f"versions.yml pins Tempo {pinned}: add files/tempo/config-reference-{pinned}.txt"


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
@pytest.mark.parametrize("backend", ["s3", "local"])
def test_every_rendered_key_is_in_tempos_reference(env, backend):
    traces = env_traces(env)
    assert traces.store == "tempo"
    traces = traces.model_copy(update={"tempo": traces.tempo.model_copy(update={"backend": backend})})
    config = render_config(traces, "127.0.0.1:7070")
    assert unknown_keys(config) == []


def test_a_typo_is_caught_by_the_reference():
    config = render_config(env_traces("prod"), "127.0.0.1:7070")
    config["compactor"]["compaction"]["block_retension"] = "336h"
    config["storage"]["trace"]["s3"]["force_path_style"] = True
    assert unknown_keys(config) == ["compactor.compaction.block_retension", "storage.trace.s3.force_path_style"]


def test_receivers_listen_where_the_topology_says():
    """prod's inventory: Tempo's OTLP/HTTP, API and gRPC on the loopback; its front holds the first two on the host's IP."""
    from roles._environment import REPO, load_environment

    environment = load_environment(REPO / "inventory" / "prod.py")
    tel = environment.group("telemetry")[0]
    binds = {l.name: l.bind for l in environment.topology.on(tel.name) if l.component == "tempo"}
    config = render_config(env_traces("prod"), "127.0.0.1:7070", binds=binds)
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "127.0.0.1:4417"}, "http": {"endpoint": "127.0.0.1:14418"}}
    assert (config["server"]["http_listen_address"], config["server"]["grpc_listen_address"]) == ("127.0.0.1", "127.0.0.1")
    assert environment.topology.bind(tel.name, "tempo.otlp_http") == f"{tel.settings.ip}:4418"
    assert environment.topology.bind(tel.name, "tempo.http") == f"{tel.settings.ip}:3200"
    assert not unknown_keys(config)


def test_retention_defaults_to_14_days_and_follows_the_setting():
    assert render_config(env_traces("prod"), "s3:7070")["compactor"]["compaction"]["block_retention"] == "336h"
    assert render_config(TracesSettings(retention="30d"), "s3:7070")["compactor"]["compaction"]["block_retention"] == "720h"


def test_metrics_generator_is_off_because_the_collector_makes_span_metrics():
    config = render_config(env_traces("prod"), "127.0.0.1:7070")
    assert "metrics_generator" not in config
    assert "overrides" not in config  # no processors enabled for any tenant


def test_s3_credentials_come_from_the_environment_file_never_the_yaml():
    text = config_text(render_config(env_traces("prod"), "127.0.0.1:7070"))
    s3 = yaml.safe_load(text)["storage"]["trace"]["s3"]
    assert (s3["access_key"], s3["secret_key"]) == ("${TEMPO_S3_ACCESS_KEY}", "${TEMPO_S3_SECRET_KEY}")
    assert s3["bucket"] == "tempo" and s3["endpoint"] == "127.0.0.1:7070"
    spec = service_spec(env_traces("prod"), text, "TEMPO_S3_ACCESS_KEY=a\nTEMPO_S3_SECRET_KEY=b\n")
    assert spec.configs[0].dest == CREDENTIALS and spec.configs[0].mode == "0640" and spec.configs[0].validate is None
    assert "-config.verify" in spec.configs[1].validate and "sh " not in spec.configs[1].validate  # systemd's env file is never sourced by sh
    unit = unit_file(spec)
    assert f"EnvironmentFile={CREDENTIALS}" in unit and "-config.expand-env=true" in unit
    assert "ProtectSystem=strict" in unit and "ReadWritePaths=/var/lib/tempo" in unit
    assert spec.ready_url == "http://127.0.0.1:3201/ready"


def test_local_backend_needs_no_credentials():
    traces = TracesSettings(tempo={"backend": "local"})
    spec = service_spec(traces, config_text(render_config(traces)), None)
    assert [c.dest for c in spec.configs] == ["/etc/tempo/config.yaml"] and spec.env_files == ()
    assert render_config(traces)["storage"]["trace"]["local"] == {"path": "/var/lib/tempo/blocks"}


def test_credentials_come_from_the_resolved_secrets_in_a_systemd_env_file():
    from roles.tempo import credentials_env

    secrets = {"SENTINEL_S3_TEMPO_ACCESS_KEY": "key one", "SENTINEL_S3_TEMPO_SECRET_KEY": "s$cret",
               "SENTINEL_S3_ACCESS_KEY": "root-key", "SENTINEL_S3_SECRET_KEY": "root-secret"}
    text = credentials_env(env_traces("prod"), secrets)
    assert text == 'TEMPO_S3_ACCESS_KEY="key one"\nTEMPO_S3_SECRET_KEY="s\\$cret"\n'
    assert "root" not in text  # Tempo's own key, never the store's root key
