"""The lab's own secrets, generated once and kept outside the repository.

Production reads the same names from its environment or secret files; the lab
inventory points SENTINEL_SECRETS_DIR here.
"""

import secrets
import uuid
import subprocess
import tempfile
from pathlib import Path

from lab.paths import CACHE, BRIDGE_IP, HEARTBEAT_STANDIN_PORT, SLACK_STANDIN_PORT

SECRETS_DIR = CACHE / "secrets"
SENTRY_STANDIN_PORT = 9000


def _generators() -> dict:
    return {
        "SENTINEL_S3_ACCESS_KEY": lambda: "lab" + secrets.token_hex(8),
        "SENTINEL_S3_SECRET_KEY": lambda: secrets.token_urlsafe(30),
        # One key per consumer of the store: each account owns only its bucket (roles/object_store).
        "SENTINEL_S3_LOKI_ACCESS_KEY": lambda: "labloki" + secrets.token_hex(8),
        "SENTINEL_S3_LOKI_SECRET_KEY": lambda: secrets.token_urlsafe(30),
        "SENTINEL_S3_TEMPO_ACCESS_KEY": lambda: "labtempo" + secrets.token_hex(8),
        "SENTINEL_S3_TEMPO_SECRET_KEY": lambda: secrets.token_urlsafe(30),
        "SENTRY_STANDIN_KEY": lambda: secrets.token_hex(16),
        # Alert receivers: the Slack webhook URLs point at the lab's Slack stand-in,
        # one webhook (and token) per channel, like Slack's incoming webhooks.
        "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": lambda: _slack_webhook("BCRITICAL"),
        "SENTINEL_SLACK_ALERTS_WEBHOOK_URL": lambda: _slack_webhook("BALERTS"),
        "SENTINEL_PAGERDUTY_ROUTING_KEY": lambda: secrets.token_hex(16),
        # The dead man's switch's ping URL, on the lab's heartbeat stand-in (a check uuid, like healthchecks.io's).
        "SENTINEL_HEARTBEAT_URL": lambda: f"http://{BRIDGE_IP}:{HEARTBEAT_STANDIN_PORT}/ping/{uuid.uuid4()}",  # 32 characters, like PagerDuty's
        "SENTINEL_SMTP_PASSWORD": lambda: secrets.token_urlsafe(18),
        # Grafana's admin password: written to /etc/grafana/secrets/admin_password
        # on mon1 (the lab installs Grafana's files, never its binary).
        "SENTINEL_GRAFANA_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(24),
        # The Grafana backup's service-account token, accepted by the Grafana API stand-in.
        "SENTINEL_GRAFANA_BACKUP_TOKEN": lambda: "glsa_" + secrets.token_hex(16),
    }


def _ensure_deploy_key() -> None:
    """The backup's git deploy key (ed25519) and its public half, for the lab's git remote on tel1."""
    key, pub = SECRETS_DIR / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", SECRETS_DIR / "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY_PUB"
    if key.exists() and pub.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sentinel-lab-grafana-backup", "-f", str(path)], check=True)
        for target, source in ((key, path), (pub, path.with_suffix(".pub"))):
            target.touch(mode=0o600)
            target.chmod(0o600)  # before the key is in it: ssh refuses a readable private key
            target.write_text(source.read_text())


def _slack_webhook(bot: str) -> str:
    return f"http://{BRIDGE_IP}:{SLACK_STANDIN_PORT}/services/TSENTINELLAB/{bot}/{secrets.token_urlsafe(18)}"


def ensure_secrets() -> None:
    """Create any missing secret file (mode 0600 in a 0700 directory)."""
    SECRETS_DIR.mkdir(parents=True, exist_ok=True)
    SECRETS_DIR.chmod(0o700)
    for name, make in _generators().items():
        path = SECRETS_DIR / name
        if not path.exists():
            path.write_text(make() + "\n")
        path.chmod(0o600)
    _ensure_deploy_key()
    for name in ("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY_PUB"):
        (SECRETS_DIR / name).chmod(0o600)
    dsn = SECRETS_DIR / "SENTRY_DSN"
    key = (SECRETS_DIR / "SENTRY_STANDIN_KEY").read_text().strip()
    # The backend's Sentry DSN points at the lab's Sentry stand-in receiver.
    dsn.write_text(f"http://{key}@{BRIDGE_IP}:{SENTRY_STANDIN_PORT}/1\n")
    dsn.chmod(0o600)


def read(name: str) -> str:
    return (SECRETS_DIR / name).read_text().strip()
