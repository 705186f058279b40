"""Operations of the Grafana role."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File

from roles._service.quoting import refuse_control, sh_join


@operation()
def backup_token(script: str, url: str, admin_user: str, admin_password_file: str, token_file: str, owner: str, mode: str):
    """
    Create the backup job's service account token once, on the host; never print it.

    + script: the installed files/grafana/backup_token.py
    + url: Grafana's local URL
    + admin_user: Grafana's admin user
    + admin_password_file: the file holding its password (read on the host)
    + token_file: where the token is written (only if missing)
    + owner: user:group of the token file
    + mode: octal mode of the token file

    Nothing happens when the token file exists: a token is shown once by Grafana
    and cannot be read back, so an existing file is never replaced.
    """
    if host.get_fact(File, path=token_file):
        return
    args = [
        script,
        f"--url={url}",
        f"--admin-user={admin_user}",
        f"--admin-password-file={admin_password_file}",
        f"--token-file={token_file}",
        f"--owner={owner}",
        f"--mode={mode}",
    ]
    for arg in args:
        refuse_control(arg, "grafana backup token helper argument")
    yield StringCommand(sh_join(args))
