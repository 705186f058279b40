"""Secrets: one registry of names, matched by .env.example and by the settings' defaults."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from roles._model import SecretName
from roles._secrets import SECRETS, SecretProblem, Secrets, read_secret
from roles._settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _secret_defaults(model: type[BaseModel]) -> set[str]:
    """Default names of every SecretName field, anywhere in the settings models."""
    found = set()
    for field in model.model_fields.values():
        if field.annotation == SecretName or SecretName in typing.get_args(field.annotation):
            found.add(field.default)
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            found |= _secret_defaults(type(value))
            # Nested defaults given as instances (e.g. SlackReceiver(...)) carry their own names.
            found |= {v for k, v in value.model_dump().items() if k.endswith("_secret") and isinstance(v, str)}
    return found


def test_every_default_secret_name_is_in_the_registry():
    assert _secret_defaults(Settings) == set(SECRETS)


def test_env_example_lists_exactly_the_registry_as_secrets():
    text = (REPO / ".env.example").read_text()
    secrets_part = text.split("# --- settings read from the environment (not secrets)")[0]
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", secrets_part, flags=re.M)) - {"SENTINEL_SECRETS_DIR"}
    assert listed == set(SECRETS)


@pytest.fixture
def clean(monkeypatch, tmp_path):
    monkeypatch.delenv("SOME_TOKEN", raising=False)
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path))
    return tmp_path


def test_the_environment_wins_and_files_are_read(clean, monkeypatch):
    (clean / "SOME_TOKEN").write_text("from-file\n")
    assert read_secret("SOME_TOKEN") == "from-file"
    monkeypatch.setenv("SOME_TOKEN", "from-env")
    assert read_secret("SOME_TOKEN") == "from-env"


def test_unset_is_none(clean):
    assert read_secret("SOME_TOKEN") is None


@pytest.mark.parametrize("value", ["", "a\nb", "a\rb", "a\x7fb", "tab\there"])
def test_empty_or_multi_line_values_are_refused_without_echo(clean, monkeypatch, value):
    monkeypatch.setenv("SOME_TOKEN", value)
    with pytest.raises(SecretProblem) as err:
        read_secret("SOME_TOKEN")
    assert "SOME_TOKEN" in str(err.value)
    if value:
        assert value not in str(err.value)


def test_secrets_never_show_their_values():
    secrets = Secrets({"SOME_TOKEN": "hunter2-value"})
    assert "hunter2" not in repr(secrets) and "hunter2" not in str(secrets)
