"""Loki role: the config it renders for dev, staging and prod, checked key by key against Loki's reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roles._model import SettingsError as ModelSettingsError, parse as model_parse
from roles._model import SettingsError, parse
from roles._service.artifacts import load_versions
from roles.retention.erase import load_policy
from roles.loki import CREDENTIALS, credentials_env, render_config, service_spec, verify_command
from roles.loki.settings import LokiSettings
from roles.retention import RetentionPolicy, StreamRule

pytestmark = pytest.mark.retention

REPO = Path(__file__).resolve().parents[2]


def reference() -> tuple[set[str], str]:
    entry = load_versions().get("loki")
    if entry is None:  # the pin comes with the artifacts branch (files/versions.yml)
        pytest.skip("files/versions.yml pins no loki release yet")
    version = entry["version"]
    path = REPO / "files" / "loki" / f"config-reference-{version}.yml"
    data = yaml.safe_load(path.read_text())
    assert data["pinned_version"] == version and "docs/sources/shared/configuration.md" in data["source"]
    return set(data["keys"]), data["source"]


def key_paths(node, prefix: str = "") -> list[str]:
    """Every key path of a rendered config, in the reference's notation (a.b, a[].b)."""
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths += key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            paths += key_paths(item, f"{prefix}[]")
    return paths


def policy_of(env: str) -> RetentionPolicy:
    return load_policy(env)


def render(env: str, policy: RetentionPolicy | None = None) -> dict:
    return yaml.safe_load(render_config(LokiSettings(), policy or policy_of(env), "tel1.internal:7070", "us-east-1"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_rendered_key_is_in_lokis_reference(env):
    keys, _ = reference()
    unknown = sorted(set(key_paths(render(env))) - keys)
    assert not unknown, f"keys not in Loki's configuration reference: {unknown}"


def test_a_typo_fails_the_reference_check():
    keys, _ = reference()
    config = render("prod")
    config["compactor"]["retention_enable"] = True
    config["limits_config"]["retention_stream"][0]["priorty"] = 2
    unknown = set(key_paths(config)) - keys
    assert unknown == {"compactor.retention_enable", "limits_config.retention_stream[].priorty"}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_policy_becomes_lokis_retention(env):
    policy = policy_of(env)
    config = render(env, policy)
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "aws"  # mandatory with retention
    assert config["limits_config"]["retention_period"] == "720h"  # default_period 30d
    assert config["limits_config"]["retention_stream"] == [
        {"selector": '{stream="security"}', "priority": 1, "period": "8760h"},
        {"selector": '{stream="audit"}', "priority": 1, "period": "8760h"},
    ]
    assert config["limits_config"]["deletion_mode"] == "filter-and-delete"


def test_schema_storage_and_otlp_labels():
    config = render("prod")
    [period] = config["schema_config"]["configs"]
    assert period == {"from": "2024-01-01", "store": "tsdb", "object_store": "aws", "schema": "v13", "index": {"prefix": "index_", "period": "24h"}}
    aws = config["storage_config"]["aws"]
    assert aws["bucketnames"] == "loki" and aws["endpoint"] == "tel1.internal:7070" and aws["s3forcepathstyle"] is True
    # Loki's own HTTP server on the loopback, plain: its front holds 3100 on the host (roles/loki/front.py).
    assert config["auth_enabled"] is False and config["server"]["http_listen_port"] == 3101
    assert config["server"]["http_listen_address"] == "127.0.0.1" and "http_tls_config" not in config["server"]
    [labels] = config["limits_config"]["otlp_config"]["resource_attributes"]["attributes_config"]
    assert labels == {"action": "index_label", "attributes": ["service", "env", "stream", "level"]}


def test_credentials_never_reach_the_yaml():
    # Loki's own key; the store's root key is not Loki's to read.
    secrets = {"SENTINEL_S3_LOKI_ACCESS_KEY": "AKIA-not-in-yaml", "SENTINEL_S3_LOKI_SECRET_KEY": "secret-not-in-yaml",
               "SENTINEL_S3_ACCESS_KEY": "root-key", "SENTINEL_S3_SECRET_KEY": "root-secret"}
    text = render_config(LokiSettings(), RetentionPolicy(), "tel1:7070", "us-east-1")
    assert "not-in-yaml" not in text
    assert "${LOKI_S3_ACCESS_KEY}" in text and "${LOKI_S3_SECRET_KEY}" in text
    env = credentials_env(LokiSettings(), secrets)
    assert env == "LOKI_S3_ACCESS_KEY=AKIA-not-in-yaml\nLOKI_S3_SECRET_KEY=secret-not-in-yaml\n"
    assert "root" not in env
    spec = service_spec(LokiSettings(), text, env)
    creds = next(c for c in spec.configs if c.dest == CREDENTIALS)
    assert creds.mode == "0640" and spec.env_files == (CREDENTIALS,)
    assert "-config.expand-env=true" in spec.exec_start


def test_the_config_is_verified_by_loki_before_the_swap():
    spec = service_spec(LokiSettings(), "x", "y")
    config = next(c for c in spec.configs if c.dest == "/etc/loki/loki.yml")
    assert config.validate == verify_command() == "{bin}/loki -config.file={path} -config.expand-env=true -verify-config"
    assert spec.ready_url == "http://127.0.0.1:3101/ready"


def test_a_dollar_in_a_selector_is_refused_before_expand_env_mangles_it():
    policy = RetentionPolicy(streams=(*RetentionPolicy().streams, StreamRule(name="x", selector='{stream="app", service=~"api$"}', period="60d", priority=2)))
    with pytest.raises(SettingsError, match="expand-env"):
        render_config(LokiSettings(), policy, "tel1:7070", "us-east-1")


@pytest.mark.parametrize(
    "data, key",
    [({"schema_from": "2999-01-01"}, "loki.schema_from"), ({"max_line_size": "256 KB"}, "loki.max_line_size"),
     ({"bucket": "lo ki"}, "loki.bucket"), ({"access_key_secret": "AKIAxxxx"}, "loki.access_key_secret"),
     ({"retention_period": "30d"}, "loki.retention_period")],
)
def test_bad_settings_are_refused(data, key):
    with pytest.raises(ModelSettingsError) as err:
        model_parse(LokiSettings, data, "loki")
    assert err.value.key == key
