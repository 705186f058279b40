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


def _helper_module():
    """files/grafana/backup_token.py, the helper the hosts run: its stamp format is the one checked here."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "files" / "grafana" / "backup_token.py"
    spec = importlib.util.spec_from_file_location("sentinel_grafana_helper", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def password_applied(stamp_text: str | None, password: str) -> bool:
    """Whether the host's stamp file says `password` is the admin password Grafana has."""
    return _helper_module().stamp_matches(stamp_text, password)


@operation()
def admin_password(script: str, url: str, admin_user: str, password: str, password_file: str, stamp_file: str,
                   previous_file: str = "", ca_file: str = "", connect_to: str = ""):
    """
    Make the secret's admin password Grafana's, through its API, before anything uses it; never print it.

    + script: the installed files/grafana/backup_token.py
    + url: Grafana's local URL (https)
    + admin_user: Grafana's admin user
    + password: the admin password from the secrets (compared on the controller with the host's stamp; never sent
      in a command: the helper reads `password_file`)
    + password_file: the host's file holding it
    + stamp_file: the helper's scrypt stamp of the password it last applied (root's, 0600)
    + previous_file: the host's file holding the password Grafana had, during a rotation ("" = none given)
    + ca_file, connect_to: as for `backup_token`

    Grafana holds one password per user and applies grafana.ini's only when it creates the admin, so a new
    secret must be applied through `PUT /api/user/password` with the previous one. Nothing happens while the
    stamp says the secret's password is applied: a second converge changes nothing.
    """
    stamp = host.get_fact(Command, command=f"cat {sh_quote(stamp_file)} 2>/dev/null || true")
    if password_applied(stamp, password):
        return
    args = [script, "--apply-admin-password", f"--url={url}", f"--admin-user={admin_user}",
            f"--admin-password-file={password_file}", f"--stamp-file={stamp_file}"]
    if previous_file:
        args.append(f"--previous-password-file={previous_file}")
    if ca_file:
        args.append(f"--ca-file={ca_file}")
    if connect_to:
        args.append(f"--connect-to={connect_to}")
    for arg in args:
        refuse_control(arg, "grafana admin password helper argument")
    yield StringCommand(sh_join(args))
