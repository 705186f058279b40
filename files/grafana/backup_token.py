#!/usr/bin/python3
"""Create, or renew, the backup job's Grafana service-account token; never print the token.

With --apply-admin-password instead: make the password in --admin-password-file Grafana's admin
password (see `apply_admin_password`); never print a password.

Installed by roles/grafana as /usr/local/lib/sentinel/grafana-backup-token and run
by the role after Grafana is ready, when the token file is missing, or when its
expiry (<token file>.expires, a Unix time) is missing or inside the renewal window:

    grafana-backup-token --url https://10.0.0.11:3000 --ca-file /etc/grafana/tls/ca.crt \
        --admin-user admin --admin-password-file /etc/grafana/secrets/admin_password \
        --token-file /etc/grafana-backup/token --owner root:grafana-backup --mode 0640 \
        --lifetime-days 90 [--renew]

With Grafana's public certificate (a public CA's, for its public name only) the role passes
`--url https://<public name>:3000 --connect-to 10.0.0.11` and no --ca-file: the certificate is
verified for the public name with the system's trust store, the connection still goes to the
address Grafana binds (as curl --resolve does), never through DNS or a load balancer.

Uses only the standard library and Grafana's service account API, with Basic auth as
the admin user: GET /api/serviceaccounts/search, POST /api/serviceaccounts,
PATCH /api/serviceaccounts/<id> (the role), POST and GET /api/serviceaccounts/<id>/tokens,
DELETE /api/serviceaccounts/<id>/tokens/<token id>.

The service account's org role is Editor: Editors read and write dashboards and
folders and, since Grafana 11, the alerting provisioning API (rules, contact points,
policies, mute timings), which is everything the backup exports and restores apart
from the datasource list (restored by provisioning, not by the job). An account made
Admin by an earlier version is set back to Editor.

Every token expires (secondsToLive). Renewal is two-phase: the new token is created
(both are valid), written to the token file and its expiry beside it; only then are
the account's other tokens deleted. A run of the job that read the old file before the
swap may fail once; cron's next run reads the new one.
Exit codes: 0 token present, created or renewed, 1 any failure (message on stderr, no token in it).

The admin password. Grafana applies grafana.ini's `admin_password` only when it creates the admin
user, and holds one password per user, so a new password in the secrets would never be applied and
"old and new both accepted" cannot exist. The converge therefore applies it itself, before anything
else uses it (the token step):

    grafana-backup-token --apply-admin-password --url ... --admin-password-file .../admin_password \
        --stamp-file .../admin_password.applied [--previous-password-file .../admin_password.previous]

GET /api/user with the new password; if Grafana refuses it (401), PUT /api/user/password as the admin
with the previous one (oldPassword, newPassword), then the new one must work. Either way the stamp
file gets an scrypt hash of the new password (salted), so the role can tell without a request whether
the password on file is the one applied (`stamp_matches`). Exit codes as above.
"""

from __future__ import annotations

import argparse
import base64
import grp
import hashlib
import hmac
import http.client
import json
import os
import pwd
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ACCOUNT = "sentinel-backup"
ROLE = "Editor"
_CONTEXT: ssl.SSLContext | None = None  # verifies Grafana's https with --ca-file (None: the system's trust store)
_OPENER: urllib.request.OpenerDirector | None = None  # with --connect-to: connects there, verifies the URL's host


class GrafanaError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def connect_to_opener(address: str, context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """An opener whose https connections go to `address` (at the URL's port) while TLS checks the certificate
    for the URL's host and sends it as SNI: the URL names the certificate, `address` says where it is."""

    class Connection(http.client.HTTPSConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # http.client's one hook for where the socket goes; the TLS layer above it still uses self.host.
            self._create_connection = lambda where, *rest, **kw: socket.create_connection((address, where[1]), *rest, **kw)

    class Handler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(Connection, req, context=context or ssl.create_default_context())

    return urllib.request.build_opener(Handler())


def call(base: str, auth: str, method: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Authorization", "Basic " + auth)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        opened = _OPENER.open(request, timeout=30) if _OPENER else urllib.request.urlopen(request, timeout=30, context=_CONTEXT)
        with opened as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        # The response body of these endpoints never holds the token on error.
        raise GrafanaError(f"{method} {path}: HTTP {err.code} {err.read()[:200].decode(errors='replace')}", err.code) from None
    except urllib.error.URLError as err:
        raise GrafanaError(f"{method} {path}: {err.reason}") from None


def find_or_create_account(base: str, auth: str) -> int:
    """The backup's service account, with the role ROLE (an existing account of another role is changed to it)."""
    query = urllib.parse.urlencode({"query": ACCOUNT, "perpage": 100})
    found = call(base, auth, "GET", f"/api/serviceaccounts/search?{query}") or {}
    for account in found.get("serviceAccounts", []):
        if account.get("name") == ACCOUNT:
            if account.get("role") != ROLE:
                call(base, auth, "PATCH", f"/api/serviceaccounts/{int(account['id'])}", {"role": ROLE})
            return int(account["id"])
    created = call(base, auth, "POST", "/api/serviceaccounts", {"name": ACCOUNT, "role": ROLE, "isDisabled": False})
    return int(created["id"])


def delete_other_tokens(base: str, auth: str, account: int, keep: str) -> list[str]:
    """Phase two of a renewal: every token of the account but `keep` (by name) is deleted; their names."""
    deleted = []
    for token in call(base, auth, "GET", f"/api/serviceaccounts/{account}/tokens") or []:
        if token.get("name") != keep:
            call(base, auth, "DELETE", f"/api/serviceaccounts/{account}/tokens/{int(token['id'])}")
            deleted.append(str(token.get("name")))
    return deleted


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


# scrypt's cost for the stamp (RFC 7914; Python's hashlib.scrypt): 16 MiB and some 50 ms a check.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def stamp(password: str, salt: bytes | None = None) -> str:
    """The stamp of an applied admin password: scrypt$<salt hex>$<hash hex> (never the password)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def stamp_matches(text: str | None, password: str) -> bool:
    """Whether `text` (a stamp file's content) is the stamp of `password`."""
    try:
        kind, salt, digest = (text or "").strip().split("$")
        expected = stamp(password, bytes.fromhex(salt)).split("$")[2]
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(expected, digest)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def admin_password_works(base: str, user: str, password: str) -> bool:
    """GET /api/user as the admin: True on 200, False on 401; anything else is an error."""
    try:
        call(base, _basic(user, password), "GET", "/api/user")
        return True
    except GrafanaError as err:
        if err.status == 401:
            return False
        raise


def apply_admin_password(base: str, user: str, password: str, previous: str | None) -> str:
    """Make `password` the admin's: nothing when Grafana takes it, else changed from `previous`. What was done."""
    if admin_password_works(base, user, password):
        return "Grafana already has the admin password on file"
    if previous is None:
        raise GrafanaError("Grafana refuses the admin password on file (it applies grafana.ini's admin_password only "
                           "when it creates the admin). Fix: give the password Grafana has as "
                           "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD for one converge")
    if not admin_password_works(base, user, previous):
        raise GrafanaError("Grafana refuses both the admin password on file and the previous one. Fix: set "
                           "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD to the password Grafana has (or reset it on the host: "
                           "grafana cli admin reset-admin-password --password-from-stdin)")
    call(base, _basic(user, previous), "PUT", "/api/user/password", {"oldPassword": previous, "newPassword": password})
    if not admin_password_works(base, user, password):
        raise GrafanaError("Grafana accepted the change but refuses the new admin password")
    return "changed Grafana's admin password; the previous one no longer works (unset SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD)"


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--admin-password-file", required=True)
    parser.add_argument("--token-file")
    parser.add_argument("--apply-admin-password", action="store_true", help="make --admin-password-file Grafana's admin password")
    parser.add_argument("--previous-password-file", help="the admin password Grafana has before a rotation")
    parser.add_argument("--stamp-file", help="where the applied password's scrypt stamp goes (root's, 0600)")
    parser.add_argument("--owner", default="root:grafana-backup")
    parser.add_argument("--mode", default="0640")
    parser.add_argument("--ca-file", help="the CA Grafana's https certificate chains to (default: the system's trust store)")
    parser.add_argument("--connect-to", help="the address to connect to; the certificate is verified for --url's host")
    parser.add_argument("--lifetime-days", type=int, default=90, help="the token's secondsToLive, in days")
    parser.add_argument("--renew", action="store_true", help="replace an existing token (the role decides when)")
    args = parser.parse_args(argv)
    global _CONTEXT, _OPENER
    if args.ca_file:
        _CONTEXT = ssl.create_default_context(cafile=args.ca_file)
    if args.connect_to:
        _OPENER = connect_to_opener(args.connect_to, _CONTEXT)
    if args.apply_admin_password:
        if not args.stamp_file:
            parser.error("--apply-admin-password needs --stamp-file")
        try:
            password = _read(args.admin_password_file)
            previous = _read(args.previous_password_file) if args.previous_password_file else None
            done = apply_admin_password(args.url, args.admin_user, password, previous)
            write_secret(args.stamp_file, stamp(password), os.getuid(), os.getgid(), 0o600)
        except (OSError, GrafanaError) as err:
            print(f"grafana-backup-token: {err}", file=sys.stderr)
            return 1
        print(done)
        return 0
    if not args.token_file:
        parser.error("--token-file is required")
    if not args.renew and os.path.exists(args.token_file) and os.path.getsize(args.token_file) > 0:
        print(f"{args.token_file} exists; nothing to do")
        return 0
    if args.lifetime_days < 1:
        print("grafana-backup-token: --lifetime-days must be 1 or more (every token expires)", file=sys.stderr)
        return 1
    try:
        # Before any token exists: a token Grafana shows once and we cannot store is lost.
        uid, gid = owner_ids(args.owner)
        with open(args.admin_password_file) as handle:
            password = handle.read().strip()
        auth = base64.b64encode(f"{args.admin_user}:{password}".encode()).decode()
        account = find_or_create_account(args.url, auth)
        token_name = f"{ACCOUNT}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        seconds = args.lifetime_days * 86400
        started = time.time()
        # Phase one: a new token beside the old one (both valid).
        created = call(args.url, auth, "POST", f"/api/serviceaccounts/{account}/tokens", {"name": token_name, "secondsToLive": seconds})
        key = created.get("key") if isinstance(created, dict) else None
        if not key:
            raise GrafanaError("the token response held no key")
        write_secret(args.token_file, key, uid, gid, int(args.mode, 8))
        # Its expiry, never later than Grafana's (counted from before the request); the job exports it.
        write_secret(args.token_file + ".expires", str(int(started + seconds)), uid, gid, int(args.mode, 8))
        # Phase two: only the new token is accepted from now on.
        deleted = delete_other_tokens(args.url, auth, account, token_name)
    except (OSError, KeyError, GrafanaError) as err:
        print(f"grafana-backup-token: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 1
    print(f"created token {token_name} of service account {ACCOUNT} (role {ROLE}, {args.lifetime_days} days) in {args.token_file}"
          + (f"; deleted the previous {', '.join(deleted)}" if deleted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
