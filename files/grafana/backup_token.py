#!/usr/bin/python3
"""Create the backup job's Grafana service account and token, once; never print the token.

Installed by roles/grafana as /usr/local/lib/sentinel/grafana-backup-token and run
by the role after Grafana is ready, only when the token file is missing:

    grafana-backup-token --url http://127.0.0.1:3000 --admin-user admin \
        --admin-password-file /etc/grafana/secrets/admin_password \
        --token-file /etc/grafana-backup/token --owner root:grafana-backup --mode 0640

Uses only the standard library and Grafana's service account API
(POST /api/serviceaccounts, POST /api/serviceaccounts/<id>/tokens), with Basic
auth as the admin user. The service account gets the org role Admin: the backup
reads the alerting provisioning API (rules, contact points, policies, mute
timings), which Viewer and Editor may not read, and the restore writes
dashboards, folders and alerting objects.
Exit codes: 0 token present or created, 1 any failure (message on stderr, no token in it).
"""

from __future__ import annotations

import argparse
import base64
import grp
import json
import os
import pwd
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ACCOUNT = "sentinel-backup"
ROLE = "Admin"


class GrafanaError(RuntimeError):
    pass


def call(base: str, auth: str, method: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Authorization", "Basic " + auth)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        # The response body of these endpoints never holds the token on error.
        raise GrafanaError(f"{method} {path}: HTTP {err.code} {err.read()[:200].decode(errors='replace')}") from None
    except urllib.error.URLError as err:
        raise GrafanaError(f"{method} {path}: {err.reason}") from None


def find_or_create_account(base: str, auth: str) -> int:
    query = urllib.parse.urlencode({"query": ACCOUNT, "perpage": 100})
    found = call(base, auth, "GET", f"/api/serviceaccounts/search?{query}") or {}
    for account in found.get("serviceAccounts", []):
        if account.get("name") == ACCOUNT:
            return int(account["id"])
    created = call(base, auth, "POST", "/api/serviceaccounts", {"name": ACCOUNT, "role": ROLE, "isDisabled": False})
    return int(created["id"])


def owner_ids(owner: str) -> tuple[int, int]:
    """uid and gid of `user:group`; KeyError names what is missing."""
    user, group = owner.split(":", 1)
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise KeyError(f"the user {user} of --owner does not exist") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise KeyError(f"the group {group} of --owner does not exist") from None
    return uid, gid


def write_secret(path: str, value: str, uid: int, gid: int, mode: int) -> None:
    """Write atomically, with the final owner and mode before the file appears; no temporary file is left on failure."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    old_umask = os.umask(0o077)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".backup-token.")
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    finally:
        os.umask(old_umask)
        if tmp is not None:
            os.unlink(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--admin-password-file", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--owner", default="root:grafana-backup")
    parser.add_argument("--mode", default="0640")
    args = parser.parse_args(argv)
    if os.path.exists(args.token_file) and os.path.getsize(args.token_file) > 0:
        print(f"{args.token_file} exists; nothing to do")
        return 0
    try:
        # Before any token exists: a token Grafana shows once and we cannot store is lost.
        uid, gid = owner_ids(args.owner)
        with open(args.admin_password_file) as handle:
            password = handle.read().strip()
        auth = base64.b64encode(f"{args.admin_user}:{password}".encode()).decode()
        account = find_or_create_account(args.url, auth)
        token_name = f"{ACCOUNT}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        created = call(args.url, auth, "POST", f"/api/serviceaccounts/{account}/tokens", {"name": token_name, "secondsToLive": 0})
        key = created.get("key") if isinstance(created, dict) else None
        if not key:
            raise GrafanaError("the token response held no key")
        write_secret(args.token_file, key, uid, gid, int(args.mode, 8))
    except (OSError, KeyError, GrafanaError) as err:
        print(f"grafana-backup-token: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 1
    print(f"created token {token_name} of service account {ACCOUNT} (role {ROLE}) in {args.token_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
