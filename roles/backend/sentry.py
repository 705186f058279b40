"""Sentry DSNs and release names, shared by the preflight, the deploy and the smoke check.

Only the standard library: the preflight imports this on the controller before
any host is contacted, and `files/backend/sentry_check.py` imports it as a
script, neither with sentry-sdk necessarily installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ParsedDsn:
    """The parts of a Sentry DSN ``scheme://public_key[:secret]@host[:port]/[path/]project_id``."""

    scheme: str
    public_key: str
    host: str
    port: int
    path_prefix: str
    project_id: str


def validate_dsn(dsn: str) -> ParsedDsn:
    """Parse a Sentry DSN; raise ValueError saying what is wrong if it is not a valid one.

    The messages never quote the public key, so they are safe to print.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise ValueError("DSN is empty")
    if dsn != dsn.strip() or any(c.isspace() for c in dsn):
        raise ValueError("DSN must not contain whitespace")
    parts = urlsplit(dsn)
    if "://" not in dsn:
        # Without "://", urlsplit may take "key:secret@host" for a scheme: never quote it.
        raise ValueError("DSN scheme must be http or https: the DSN must start with http:// or https://")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"DSN scheme must be http or https, got {parts.scheme or 'none'!r}")
    if not parts.username:
        raise ValueError("DSN has no public key (expected scheme://<public_key>@host/<project_id>)")
    if not parts.hostname:
        raise ValueError("DSN has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("DSN port is not a number from 1 to 65535") from None
    if parts.query or parts.fragment:
        raise ValueError("DSN must not have a query string or fragment")
    prefix, _, project_id = parts.path.rpartition("/")
    if not project_id.isdigit():
        raise ValueError(f"DSN project id must be numeric (the last path segment), got {project_id!r}")
    return ParsedDsn(parts.scheme, parts.username, parts.hostname, port, prefix + "/", project_id)


def mask_dsn(dsn: str) -> str:
    """The DSN with its public key cut to 4 characters and any secret key dropped, for printing."""
    parts = urlsplit(dsn)
    if not parts.username:
        return dsn if "@" not in dsn else "<unprintable DSN>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":<bad port>"
    return f"{parts.scheme}://{parts.username[:4]}****@{host}{port}{parts.path}"


def release_name(service_name: str, version: str) -> str:
    """The Sentry release of a backend build: SENTRY_RELEASE on the hosts and the release sentry-cli uploads for."""
    return f"{service_name}@{version}"
