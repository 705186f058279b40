"""The lab's SSH key pair: generated once, reused by every image and host."""

from lab.paths import SSH_DIR, SSH_KEY
from lab.shell import log, run


def ensure_key() -> None:
    if SSH_KEY.exists() and SSH_KEY.with_suffix(".pub").exists():
        return
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    SSH_DIR.chmod(0o700)
    SSH_KEY.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sentinel-lab", "-f", str(SSH_KEY)])
    log(f"generated lab SSH key {SSH_KEY}")


def public_key() -> str:
    return SSH_KEY.with_suffix(".pub").read_text().strip()
