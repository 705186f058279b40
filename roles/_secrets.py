"""Secrets come from the environment or from files in $SENTINEL_SECRETS_DIR.

Group data names a secret (for example "SENTRY_DSN"); the value is read on the
controller at deploy time and written to hosts only in files that are not
world-readable. Values never appear in group data, the repo or pyinfra output.
"""

from __future__ import annotations

import os
from pathlib import Path


def secrets_dir() -> Path | None:
    value = os.environ.get("SENTINEL_SECRETS_DIR")
    return Path(value) if value else None


def read_secret(name: str) -> str | None:
    """The secret's value, or None if it is set nowhere."""
    if os.environ.get(name):
        return os.environ[name]
    directory = secrets_dir()
    if directory and (directory / name).is_file():
        return (directory / name).read_text().strip() or None
    return None
