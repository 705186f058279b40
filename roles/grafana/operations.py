"""Operations of the Grafana role."""

from __future__ import annotations

import time

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import Command

from roles._service.quoting import refuse_control, sh_join, sh_quote


def token_action(token_exists: bool, expiry_text: str | None, renew_within_seconds: int, now: float | None = None) -> str | None:
    """What the backup token needs: "create" (no file), "renew" (no recorded expiry, e.g. a never-expiring
    token from before, or inside the renewal window) or None (far from its expiry)."""
    if not token_exists:
        return "create"
    try:
        expiry = float((expiry_text or "").strip())
    except ValueError:
        return "renew"
    return "renew" if expiry - (now or time.time()) < renew_within_seconds else None


@operation()
def backup_token(script: str, url: str, admin_user: str, admin_password_file: str, token_file: str, owner: str, mode: str,
                 ca_file: str = "", lifetime_days: int = 90, renew_within_days: int = 30, connect_to: str = ""):
    """
    Create the backup job's service account token, or renew it near its expiry, on the host; never print it.

    + script: the installed files/grafana/backup_token.py
    + url: Grafana's local URL (https)
    + admin_user: Grafana's admin user
    + admin_password_file: the file holding its password (read on the host)
    + token_file: where the token is written; its expiry (a Unix time) goes to <token_file>.expires
    + owner: user:group of the token file
    + mode: octal mode of the token file
    + ca_file: the CA Grafana's https certificate chains to; "" = the host's system trust store (a public CA)
    + connect_to: the address to connect to when `url` names the certificate's host instead (Grafana's public
      certificate: its name verified, the connection still to grafana.http's bind); "" = the URL's host
    + lifetime_days: the token's secondsToLive, in days
    + renew_within_days: a new token is made once the current one has fewer days left

    Nothing happens while the token file exists and its expiry is outside the renewal window:
    a second converge changes nothing. A token is shown once by Grafana and cannot be read
    back, so a token is only ever replaced by a new one (two-phase, in the script).
    """
    expiry_file = f"{token_file}.expires"
    exists = bool(host.get_fact(File, path=token_file))
    expiry_text = host.get_fact(Command, command=f"cat {sh_quote(expiry_file)} 2>/dev/null || true") if exists else None
    action = token_action(exists, expiry_text, renew_within_days * 86400)
    if action is None:
        return
    args = [
        script,
        f"--url={url}",
        f"--admin-user={admin_user}",
        f"--admin-password-file={admin_password_file}",
        f"--token-file={token_file}",
        f"--owner={owner}",
        f"--mode={mode}",
        f"--lifetime-days={int(lifetime_days)}",
    ]
    if ca_file:
        args.append(f"--ca-file={ca_file}")
    if connect_to:
        args.append(f"--connect-to={connect_to}")
    if action == "renew":
        args.append("--renew")
    for arg in args:
        refuse_control(arg, "grafana backup token helper argument")
    yield StringCommand(sh_join(args))
