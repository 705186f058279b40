"""The lab's own secrets, generated once and kept outside the repository.

Production reads the same names from its environment or secret files; the lab
inventory points SENTINEL_SECRETS_DIR here.
"""

import secrets

from lab.paths import CACHE, BRIDGE_IP

SECRETS_DIR = CACHE / "secrets"
SENTRY_STANDIN_PORT = 9000


def _generators() -> dict:
    return {
        "SENTINEL_S3_ACCESS_KEY": lambda: "lab" + secrets.token_hex(8),
        "SENTINEL_S3_SECRET_KEY": lambda: secrets.token_urlsafe(30),
        "SENTRY_STANDIN_KEY": lambda: secrets.token_hex(16),
    }


def ensure_secrets() -> None:
    """Create any missing secret file (mode 0600 in a 0700 directory)."""
    SECRETS_DIR.mkdir(parents=True, exist_ok=True)
    SECRETS_DIR.chmod(0o700)
    for name, make in _generators().items():
        path = SECRETS_DIR / name
        if not path.exists():
            path.write_text(make() + "\n")
        path.chmod(0o600)
    dsn = SECRETS_DIR / "SENTRY_DSN"
    key = (SECRETS_DIR / "SENTRY_STANDIN_KEY").read_text().strip()
    # The backend's Sentry DSN points at the lab's Sentry stand-in receiver.
    dsn.write_text(f"http://{key}@{BRIDGE_IP}:{SENTRY_STANDIN_PORT}/1\n")
    dsn.chmod(0o600)


def read(name: str) -> str:
    return (SECRETS_DIR / name).read_text().strip()
