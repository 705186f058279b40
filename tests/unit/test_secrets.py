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
    """Default names of every SecretName field, anywhere in the settings models (a None default names none: an option that is off)."""
    found = set()
    for field in model.model_fields.values():
        if (field.annotation == SecretName or SecretName in typing.get_args(field.annotation)) and field.default is not None:
            found.add(field.default)
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            found |= _secret_defaults(type(value))
            # Nested defaults given as instances (e.g. SlackReceiver(...)) carry their own names.
            found |= {v for k, v in value.model_dump().items() if k.endswith("_secret") and isinstance(v, str)}
    return found


def test_every_default_secret_name_is_in_the_registry():
    assert _secret_defaults(Settings) == set(SECRETS)


def _optional_secret_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted keys of the SecretName fields that name no secret by default (an option the operator turns on
    by naming two secrets of their own, e.g. grafana.public_certificate_secret)."""
    found = set()
    for name, field in model.model_fields.items():
        if SecretName in typing.get_args(field.annotation) and field.default is None:
            found.add(prefix + name)
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            found |= _optional_secret_keys(type(value), f"{prefix}{name}.")
    return found


def test_secrets_without_a_default_name_are_explained_in_env_example():
    """They have no NAME= line (the operator chooses the name), so .env.example says which keys name them."""
    keys = _optional_secret_keys(Settings)
    assert {"grafana.public_certificate_secret", "grafana.public_key_secret"} <= keys
    text = (REPO / ".env.example").read_text()
    assert [key for key in sorted(keys) if key not in text] == []


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


# --- PEM kinds (Grafana's public certificate): shape checks that never echo the value --------------------


def _pem_cases():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    from tests.unit.public_cert_fixtures import chain, key_pem

    pair = chain()
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pass-phrase")
    ).decode()
    body = pair.chain_pem.splitlines()
    garbled = "\n".join(body[:3] + ["!!!!" + body[3][4:]] + body[4:])  # one base64 line broken
    return pair, [
        # (kind, value, words of the problem or the fix)
        ("pem_certificate_chain", "TODO paste the certificate", "BEGIN CERTIFICATE"),
        ("pem_certificate_chain", garbled, "does not parse"),
        ("pem_certificate_chain", pair.chain_pem + pair.key_pem, "private key beside"),
        ("pem_private_key", "TODO paste the key", "BEGIN and END"),
        ("pem_private_key", encrypted, "passphrase"),
        ("pem_private_key", pair.key_pem + pair.chain_pem, "certificate beside"),
        ("pem_private_key", key_pem(x25519.X25519PrivateKey.generate()), "only RSA, EC and Ed25519"),
    ]


def test_a_pem_chain_and_key_of_the_right_shape_pass():
    from roles._secrets import CHECKS

    pair, _ = _pem_cases()
    assert CHECKS["pem_certificate_chain"](pair.chain_pem, "prod") is None
    assert CHECKS["pem_private_key"](pair.key_pem, "prod") is None


def test_a_malformed_pem_secret_is_refused_without_echoing_it():
    from roles._secrets import CHECKS

    pair, cases = _pem_cases()
    for kind, value, words in cases:
        problem = CHECKS[kind](value, "prod")
        assert problem is not None, (kind, words)
        text = f"{problem.problem} {problem.fix}"
        assert words in text, (kind, text)
        for line in value.splitlines():
            if not line.startswith("-----"):  # the BEGIN/END markers are not the value
                assert line not in text, (kind, "echoes the value")


def test_pem_secrets_may_span_lines_and_are_resolved_with_their_kind(clean, monkeypatch):
    from roles._secrets import MULTI_LINE_KINDS, Need, resolve_one

    pair, _ = _pem_cases()
    assert {"pem_certificate_chain", "pem_private_key"} <= MULTI_LINE_KINDS
    monkeypatch.setenv("SENTINEL_GRAFANA_PUBLIC_CERT", pair.chain_pem)
    (clean / "SENTINEL_GRAFANA_PUBLIC_KEY").write_text(pair.key_pem)  # a file, as written: its final newline is dropped
    cert = Need("host mon1.grafana.public_certificate_secret", "SENTINEL_GRAFANA_PUBLIC_CERT", "pem_certificate_chain", True, "x")
    key = Need("host mon1.grafana.public_key_secret", "SENTINEL_GRAFANA_PUBLIC_KEY", "pem_private_key", True, "x")
    assert resolve_one(cert, "prod") == pair.chain_pem
    assert resolve_one(key, "prod") == pair.key_pem.rstrip("\n")
    monkeypatch.setenv("SENTINEL_GRAFANA_PUBLIC_CERT", pair.chain_pem.replace("\n", "\r\n"))  # a file saved on Windows
    with pytest.raises(Exception) as err:
        resolve_one(cert, "prod")
    assert err.value.key == cert.key and "\\n line ends" in err.value.fix
