"""Secrets: one registry of names, one function that resolves them, once per run.

Group data names a secret (for example "SENTRY_DSN"); the value comes from the
environment variable of that name, or else from the file $SENTINEL_SECRETS_DIR/<NAME>.
`resolve_secrets(environment)` reads every secret the environment needs, checks
its shape, and refuses before any host is contacted. Values are never echoed: not
in errors, not in reprs, not in pyinfra's output.

`SECRETS` is the registry: every default secret name, the kind of value it holds
and what it is for. `.env.example` is tested against it (tests/unit/test_secrets.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from roles._model import SettingsError, SettingsErrors

if TYPE_CHECKING:
    from roles._environment import Environment

Kind = Literal[
    "s3_key", "s3_access_key", "slack_webhook", "pagerduty_key", "smtp_password", "sentry_dsn", "sentry_token", "grafana_admin_password",
    "db_password", "grafana_token", "ssh_private_key", "heartbeat_url", "pem_certificate_chain", "pem_private_key",
]
# The kinds whose value spans lines: an OpenSSH private key file, and PEM files (a certificate chain,
# a private key). Their lines are checked by their kind's check; every other kind stays refused on a newline.
MULTI_LINE_KINDS: frozenset[Kind] = frozenset({"ssh_private_key", "pem_certificate_chain", "pem_private_key"})


@dataclass(frozen=True)
class Secret:
    kind: Kind
    purpose: str


# Every secret the toolkit reads, by its default name (the settings' *_secret defaults).
SECRETS: dict[str, Secret] = {
    "SENTINEL_S3_ACCESS_KEY": Secret("s3_key", "versitygw root access key (telemetry hosts)"),
    "SENTINEL_S3_SECRET_KEY": Secret("s3_key", "versitygw root secret key (telemetry hosts)"),
    "SENTINEL_S3_LOKI_ACCESS_KEY": Secret("s3_access_key", "Loki's own S3 access key: an account owning only the loki bucket (telemetry hosts)"),
    "SENTINEL_S3_LOKI_SECRET_KEY": Secret("s3_key", "Loki's own S3 secret key (telemetry hosts)"),
    "SENTINEL_S3_TEMPO_ACCESS_KEY": Secret("s3_access_key", "Tempo's own S3 access key: an account owning only the tempo bucket (telemetry hosts)"),
    "SENTINEL_S3_TEMPO_SECRET_KEY": Secret("s3_key", "Tempo's own S3 secret key (telemetry hosts)"),
    "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": Secret("s3_access_key", "Loki's previous S3 access key id, only between the two phases of a rotation (telemetry hosts)"),
    "SENTINEL_S3_TEMPO_PREVIOUS_ACCESS_KEY": Secret("s3_access_key", "Tempo's previous S3 access key id, only between the two phases of a rotation (telemetry hosts)"),
    "SENTRY_DSN": Secret("sentry_dsn", "the backend's Sentry DSN; unset = Sentry off (app hosts)"),
    "SENTRY_AUTH_TOKEN": Secret("sentry_token", "sentry-cli token for releases and source maps (app hosts)"),
    "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": Secret("slack_webhook", "Slack webhook of #critical-alerts (monitoring hosts)"),
    "SENTINEL_SLACK_ALERTS_WEBHOOK_URL": Secret("slack_webhook", "Slack webhook of #alerts (monitoring hosts)"),
    "SENTINEL_HEARTBEAT_URL": Secret("heartbeat_url", "the dead man's switch: ping URL of the external heartbeat service (monitoring hosts)"),
    "SENTINEL_PAGERDUTY_ROUTING_KEY": Secret("pagerduty_key", "PagerDuty Events API v2 routing key (monitoring hosts)"),
    "SENTINEL_SMTP_PASSWORD": Secret("smtp_password", "SMTP password of alerting.email.auth_username (monitoring hosts)"),
    "SENTINEL_GRAFANA_ADMIN_PASSWORD": Secret("grafana_admin_password", "Grafana's admin password (monitoring hosts)"),
    "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD": Secret(
        "grafana_admin_password", "the admin password Grafana has, only for the converge that applies a new one (monitoring hosts)"
    ),
    "SENTINEL_GRAFANA_DB_PASSWORD": Secret("db_password", "Grafana's PostgreSQL password, only with grafana.database.type postgres (monitoring hosts)"),
    "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY": Secret(
        "ssh_private_key", "the Grafana backup's git deploy key, an OpenSSH private key file (monitoring hosts, backup enabled)"
    ),
    "SENTINEL_GRAFANA_BACKUP_TOKEN": Secret(
        "grafana_token", "the Grafana backup's service-account token, only where no Grafana role writes it (grafana_backup.write_token)"
    ),
}


class SecretProblem(ValueError):
    """A secret's value is unusable; the message never holds the value."""

    def __init__(self, problem: str, fix: str):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


def secrets_dir() -> Path | None:
    value = os.environ.get("SENTINEL_SECRETS_DIR")
    return Path(value) if value else None


def _where(name: str) -> str:
    return f"export {name}=... or put it in $SENTINEL_SECRETS_DIR/{name}"


def read_secret(name: str, multi_line: bool = False) -> str | None:
    """The secret's value, or None when it is set nowhere.

    The environment wins over the file. An environment variable set to "" is an
    error, not a fallback to a possibly stale file; so is a value holding a newline
    or another control character (it would end up as two lines of an env file).
    `multi_line` (for MULTI_LINE_KINDS only) lets "\n" between lines through; every
    other control character, "\r" included, is still refused.
    """
    if name in os.environ:
        value = os.environ[name]
        if value == "":
            raise SecretProblem(
                f"the environment variable {name} is set but empty",
                f"unset it (to use $SENTINEL_SECRETS_DIR/{name} or to leave the secret unset) or give it a value",
            )
        origin = f"the environment variable {name}"
    else:
        directory = secrets_dir()
        path = directory / name if directory else None
        if path is None or not path.is_file():
            return None
        value = path.read_text()
        value = value[:-1] if value.endswith("\n") else value
        if value == "":
            raise SecretProblem(f"the file $SENTINEL_SECRETS_DIR/{name} is empty", "write the value into it or delete the file")
        origin = f"$SENTINEL_SECRETS_DIR/{name}"
    if multi_line:
        if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", value):
            raise SecretProblem(f"{origin} holds a control character other than a newline", "store the file as written, with \\n line ends only")
        return value
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise SecretProblem(f"{origin} holds a newline or another control character", "store the value on one line, without a trailing blank line")
    return value


# --- shape checks per kind: return a problem, or None ----------------------------


def _slack_webhook(value: str, environment: str) -> SecretProblem | None:
    if environment == "lab":
        # The lab's Slack stand-in listens on the bridge (lab/receivers/slack.py).
        ok = re.fullmatch(r"https?://[A-Za-z0-9.:-]+/services/[A-Za-z0-9_/-]+", value)
    else:
        ok = re.fullmatch(r"https://hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+", value)
    if ok:
        return None
    return SecretProblem(
        "is not a Slack incoming webhook URL (https://hooks.slack.com/services/T.../B.../...)",
        "paste the webhook URL from the Slack app's Incoming Webhooks page",
    )


def _heartbeat_url(value: str, environment: str) -> SecretProblem | None:
    # The URL is the credential (whoever has it can keep the switch quiet): https only, no userinfo.
    scheme = "https?" if environment == "lab" else "https"  # the lab's heartbeat stand-in is on the bridge
    if re.fullmatch(scheme + r"://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/-]*", value):
        return None
    return SecretProblem(
        "is not an https:// ping URL without user or password (e.g. https://hc-ping.com/<uuid>)",
        "paste the ping URL of the check made for this environment's Alertmanager",
    )


def _pagerduty_key(value: str, environment: str) -> SecretProblem | None:
    if re.fullmatch(r"[a-z0-9]{32}", value):
        return None
    return SecretProblem(
        "is not a PagerDuty Events API v2 routing key (32 lower-case letters and digits)",
        "copy the Integration Key of the service's Events API v2 integration",
    )


def _sentry_dsn(value: str, environment: str) -> SecretProblem | None:
    from roles.backend.sentry import validate_dsn

    try:
        dsn = validate_dsn(value)
    except ValueError as err:
        # The validator's message never quotes the key, so it is safe to print.
        return SecretProblem(
            f"is not a valid Sentry DSN: {err}",
            "set it to the DSN from the Sentry project's Client Keys page, https://<public_key>@<host>/<project_id>, "
            "or unset it to turn Sentry off",
        )
    if environment != "lab" and dsn.scheme != "https":
        # The backend sends every error event (user, request, stack) and the DSN's key there.
        return SecretProblem(
            f"is a plain http DSN in {environment}: the backend's error events would cross the network in clear",
            "use the https:// DSN from the Sentry project's Client Keys page (only the lab's Sentry stand-in speaks http)",
        )
    return None


def _grafana_admin_password(value: str, environment: str) -> SecretProblem | None:
    # Grafana itself accepts any password from grafana.ini; this is the admin of every dashboard and alert.
    if len(value) >= 12 and value != "admin":
        return None
    return SecretProblem(
        "is too short for Grafana's admin (at least 12 characters)",
        "generate one, e.g. `openssl rand -base64 24`",
    )


def _s3_access_key(value: str, environment: str) -> SecretProblem | None:
    # A consumer's key id names its account in the store's admin API (URLs, XML): AWS-like characters only.
    if re.fullmatch(r"[A-Za-z0-9._~-]{3,128}", value):
        return None
    return SecretProblem(
        "is not an S3 access key id (3 to 128 letters, digits, '.', '_', '~' or '-')",
        "generate one, e.g. `openssl rand -hex 10`",
    )


def _printable(value: str, environment: str) -> SecretProblem | None:
    return None  # control characters are refused for every secret by read_secret


def _grafana_token(value: str, environment: str) -> SecretProblem | None:
    # A service-account token (glsa_...) or an older API key: one word, no spaces.
    if re.fullmatch(r"[A-Za-z0-9_=+/.-]{16,}", value):
        return None
    return SecretProblem(
        "is not a Grafana service-account token (one word such as glsa_..., at least 16 characters)",
        "create a token for the backup's service account (Viewer; Admin for restore) and paste it",
    )


_SSH_KEY_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_SSH_KEY_END = "-----END OPENSSH PRIVATE KEY-----"
_SSH_KEY_MAGIC = b"openssh-key-v1\x00"


def _ssh_private_key(value: str, environment: str) -> SecretProblem | None:
    """An OpenSSH private key file: BEGIN line, base64 lines, END line; not passphrase-protected."""
    lines = value.strip("\n").split("\n")
    fix = "paste the whole private key file written by `ssh-keygen -t ed25519 -N ''` (BEGIN and END lines included)"
    if len(lines) < 3 or lines[0] != _SSH_KEY_BEGIN or lines[-1] != _SSH_KEY_END:
        return SecretProblem(f"is not an OpenSSH private key (its first and last lines must be {_SSH_KEY_BEGIN} and {_SSH_KEY_END})", fix)
    body = lines[1:-1]
    if not all(re.fullmatch(r"[A-Za-z0-9+/=]+", line) for line in body):
        return SecretProblem("is not an OpenSSH private key (the lines between BEGIN and END must be base64)", fix)
    try:
        blob = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        return SecretProblem("is not an OpenSSH private key (its base64 does not decode)", fix)
    if not blob.startswith(_SSH_KEY_MAGIC) or len(blob) < len(_SSH_KEY_MAGIC) + 4:
        return SecretProblem("is not an OpenSSH private key (no openssh-key-v1 header)", fix)
    # The cipher name follows the magic as an SSH string (uint32 length, bytes); "none" = no passphrase.
    at = len(_SSH_KEY_MAGIC)
    size = int.from_bytes(blob[at : at + 4], "big")
    if blob[at + 4 : at + 4 + size] != b"none":
        return SecretProblem(
            "is protected by a passphrase, which cron cannot type",
            "remove the passphrase from a copy (`ssh-keygen -p -N '' -f <copy>`) and store that copy",
        )
    return None


def _pem_certificate_chain(value: str, environment: str) -> SecretProblem | None:
    """PEM certificates, the server's own first: each block parses as X.509 and no private key rides along.
    What the certificates say (names, dates, the key that matches) is checked where they are used."""
    from cryptography import x509

    fix = "paste the certificate file and its intermediates, PEM (-----BEGIN CERTIFICATE-----), the server's own first"
    if "PRIVATE KEY-----" in value:
        # A full-chain file with the key appended would put the key in a 0644 file.
        return SecretProblem("holds a private key beside the certificates", "keep the key in its own secret and give only the certificates here")
    if "-----BEGIN CERTIFICATE-----" not in value:
        return SecretProblem("is not a PEM certificate chain (no -----BEGIN CERTIFICATE----- line)", fix)
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        return SecretProblem("is not a PEM certificate chain (a certificate in it does not parse as X.509)", fix)
    return None


def _pem_private_key(value: str, environment: str) -> SecretProblem | None:
    """One unencrypted PEM private key of a type TLS servers use (RSA, EC, Ed25519)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if "-----BEGIN CERTIFICATE-----" in value:
        return SecretProblem("holds a certificate beside the key", "keep the certificates in their own secret and give only the key here")
    try:
        key = serialization.load_pem_private_key(value.encode(), None)
    except TypeError:  # cryptography's "password was not given but private key is encrypted"
        return SecretProblem("is protected by a passphrase, which a service cannot type at start",
                             "store a copy without it (`openssl pkey -in <key> -out <copy>`, then give the copy)")
    except (ValueError, UnsupportedAlgorithm):
        return SecretProblem("is not a PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY)",
                             "paste the whole key file the certificate was issued for, BEGIN and END lines included")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        return SecretProblem("is a key of a type TLS servers do not use (only RSA, EC and Ed25519)", "give the key of an RSA or EC certificate")
    return None


CHECKS: dict[Kind, Callable[[str, str], SecretProblem | None]] = {
    "s3_key": _printable,
    "s3_access_key": _s3_access_key,
    "slack_webhook": _slack_webhook,
    "pagerduty_key": _pagerduty_key,
    "smtp_password": _printable,
    "sentry_dsn": _sentry_dsn,
    "sentry_token": _printable,
    "grafana_admin_password": _grafana_admin_password,
    "db_password": _printable,
    "grafana_token": _grafana_token,
    "ssh_private_key": _ssh_private_key,
    "heartbeat_url": _heartbeat_url,
    "pem_certificate_chain": _pem_certificate_chain,
    "pem_private_key": _pem_private_key,
}


@dataclass(frozen=True)
class Need:
    """A secret one host needs: the settings key naming it, its name and kind, and whether unset is an error."""

    key: str
    name: str
    kind: Kind
    required: bool
    what: str


def needs(environment: Environment, unchecked: Mapping[str, Collection[str]] | None = None) -> list[Need]:
    """Every secret the environment's hosts need, in host order: what each component the placement
    table runs on the host reads (roles/_placement.py, `secrets`).

    `unchecked` (preflight's partial pass): per host, the settings blocks that failed and hold
    defaults; a secret named in such a block, or of a component switched on by one, is left out.
    """
    found = _needs(environment, unchecked or {})
    SettingsErrors.raise_if_any(_one_purpose(found))
    return found


def _needs(environment: Environment, unchecked: Mapping[str, Collection[str]]) -> list[Need]:
    from roles._placement import COMPONENTS

    found = []
    for host in environment.hosts:
        where, skipped = f"host {host.name}", set(unchecked.get(host.name, ()))
        for component in COMPONENTS:
            if not component.runs(host) or (component.condition and component.condition.split(".")[0] in skipped):
                continue
            found += [
                Need(f"{where}.{use.key}", use.name, use.kind, use.required, use.what)
                for use in component.secrets(host.settings)
                if use.key.split(".")[0] not in skipped
            ]
    return found


def _one_purpose(found: list[Need]) -> list[SettingsError]:
    """One secret, one purpose: a name read as two kinds (a webhook URL and a password...) is refused."""
    kinds: dict[str, Need] = {}
    problems = []
    for need in found:
        first = kinds.setdefault(need.name, need)
        if first.kind != need.kind:
            problems.append(SettingsError(
                need.key,
                f"names {need.name}, which {first.key} already uses for another purpose ({first.kind}, not {need.kind})",
                f"give each purpose its own secret, e.g. SENTINEL_{need.kind.upper()}",
            ))
    return problems


class Secrets(Mapping):
    """Resolved secret values by name; the repr never shows a value."""

    def __init__(self, values: dict[str, str]):
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)})"


def resolve_one(need: Need, environment: str) -> str | None:
    """Read and check one needed secret; SettingsError names the settings key and the fix."""
    try:
        value = read_secret(need.name, multi_line=need.kind in MULTI_LINE_KINDS)
    except SecretProblem as err:
        raise SettingsError(need.key, f"the secret {need.name}: {err.problem}", err.fix) from None
    if value is None:
        if need.required:
            raise SettingsError(need.key, f"{need.what} {need.name} is not set", _where(need.name))
        return None
    problem = CHECKS[need.kind](value, environment)
    if problem:
        raise SettingsError(need.key, f"the secret {need.name} {problem.problem}", f"{problem.fix} ({_where(need.name)})")
    return value


def resolve_secrets(environment: Environment, unchecked: Mapping[str, Collection[str]] | None = None) -> Secrets:
    """Every secret the environment needs, read and checked once. Unset optional secrets are absent.

    Every problem is reported at once (SettingsErrors): a name used for two purposes, and every
    missing or malformed secret, in host order. `unchecked` as for `needs`.
    """
    values: dict[str, str] = {}
    found = _needs(environment, unchecked or {})
    problems = _one_purpose(found)
    # Every missing or malformed secret of the run at once: one run of preflight, one list to fix.
    reported: set[str] = set()
    for need in found:
        try:
            value = resolve_one(need, environment.name)
        except SettingsError as err:
            if need.name not in reported:  # a secret several keys name is one problem
                problems.append(err)
                reported.add(need.name)
            continue
        if value is not None:
            values[need.name] = value
    SettingsErrors.raise_if_any(problems)
    return Secrets(values)
