"""The S3-compatible object store (versitygw) on the `telemetry` hosts.

Loki chunks and Tempo blocks go to its buckets. Credentials come from secrets and
reach the host only in an env file readable by root and the service group.

One key per consumer: the root key stays in the store's own files (its env file,
and the role's root-only curl config); each consumer of a bucket gets its own
account in versitygw's internal IAM (--iam-dir), a `user` that owns its bucket and
nothing else: it cannot read, list or write another bucket, nor create one, nor
call the admin API. The role creates and updates the accounts through the admin
API at converge (ACCOUNTS_SCRIPT), with every key read by curl from root-only files.
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.files import Directory
from pyinfra.operations import files, server

from roles._net import host_port, split_host_port
from roles._service import ConfigFile, ServiceSpec, quoting, release_service
from roles._service.operations import validated_file

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles._placement import S3Account as Account
    from roles.object_store.settings import ObjectStoreSettings

CREDENTIALS = "/etc/versitygw/credentials.env"
# The same credentials for curl, which signs the role's own S3 requests (bucket
# creation, smoke checks). Root only: the service reads credentials.env.
CURL_CONFIG = "/etc/versitygw/admin.curlrc"
# The consumers' accounts: root-only files the admin requests are read from, and the
# script that checks and syncs them (no key in it, none on a command line).
ACCOUNTS_DIR = "/etc/versitygw/accounts"
ACCOUNTS_SCRIPT = "/etc/versitygw/accounts.sh"
ROLE = "user"  # versitygw's least role: its own buckets only; no CreateBucket, no admin API


def _credentials(settings: Settings, secrets: Mapping[str, str]) -> tuple[str, str]:
    """The store's access and secret key, from the secrets preflight resolved and checked."""
    store = settings.object_store
    return secrets[store.access_key_secret], secrets[store.secret_key_secret]


def credentials_env(settings: Settings, secrets: Mapping[str, str]) -> str:
    """versitygw's EnvironmentFile, quoted per systemd: loaded by systemd, never by a shell."""
    access_key, secret_key = _credentials(settings, secrets)
    return quoting.env_file({"ROOT_ACCESS_KEY": access_key, "ROOT_SECRET_KEY": secret_key}, "object_store credentials")


def curl_config(access_key: str, secret_key: str) -> str:
    """A curl config (`curl -K`) holding the credentials, quoted per curl's config syntax.

    curl reads the file itself, so no shell ever sees the values. In a quoted
    config value, a backslash keeps the next character; `user` splits at the
    first colon, so the access key may not hold one.
    """
    quoting.refuse_control(access_key, "object_store access key")
    quoting.refuse_control(secret_key, "object_store secret key")
    if ":" in access_key:
        raise quoting.QuotingError("object_store access key: contains ':', which curl reads as the end of the user name")
    user = f"{access_key}:{secret_key}".replace("\\", "\\\\").replace('"', '\\"')
    return f'# Managed by the Sentinel observability toolkit: credentials for curl -K.\nuser = "{user}"\n'


def service_spec(settings: Settings, secrets: Mapping[str, str], bind: str = "127.0.0.1:7070") -> ServiceSpec:
    """versitygw; `bind` is object_store.s3 from the topology (the loopback: only the stores on this host use it;
    the host's IP with stores.mode scalable, where every telemetry host's Loki and Tempo use it)."""
    store = settings.object_store
    return ServiceSpec(
        name="versitygw",
        description="versitygw S3-compatible object store",
        exec_start=(
            "{bin}/versitygw",
            f"--port={bind}",
            "--health=/health",
            f"--region={store.region}",
            f"--iam-dir={store.iam_dir}",
            # Without its cache, an account the converge updates (a rotated secret) holds from the next
            # request: with it, 1.8.0 kept verifying signatures with the old secret for its TTL (120 s) after
            # update-user (seen on the lab). users.json is a few hundred bytes, read per request.
            "--iam-cache-disable",
            "posix",
            f"--sidecar={store.metadata_dir}",
            store.data_dir,
        ),
        configs=(ConfigFile(CREDENTIALS, credentials_env(settings, secrets), mode="0640"),),
        env_files=(CREDENTIALS,),
        data_dirs=("/var/lib/versitygw", store.data_dir, store.metadata_dir, store.iam_dir),
        ready_url=f"http://{bind}/health",
    )


# SigV4 signs the payload hash; S3 servers require it as a header too.
EMPTY_PAYLOAD_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def s3_request(method: str, url: str, region: str, config: str = CURL_CONFIG) -> list[str]:
    """curl's arguments for a signed, empty-bodied S3 request; the credentials come from `config`.

    An argument list: run it without a shell, or quote each word.
    """
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise quoting.QuotingError("object_store.region: not a region name such as us-east-1 (lowercase letters, digits, -)")
    return [
        "curl", "-fsS", "-K", config, "-X", method,
        "--aws-sigv4", f"aws:amz:{region}:s3",
        "-H", f"x-amz-content-sha256: {EMPTY_PAYLOAD_SHA256}",
        url,
    ]  # fmt: skip


@operation()
def bucket(bucket_name: str, data_dir: str, port: int, region: str, address: str = "127.0.0.1"):
    """
    Ensure an S3 bucket exists, created through the store's own API.

    + bucket_name: bucket name
    + data_dir: the posix backend's root; a bucket is a directory there
    + port: the store's S3 port on localhost
    + region: the store's region, for request signing
    + address: the IP the store binds (the loopback; the host's IP with stores.mode scalable)
    """
    if host.get_fact(Directory, path=f"{data_dir}/{bucket_name}"):
        return
    # curl reads the credentials from its root-only config on the host, so they
    # are never on a command line or in pyinfra's output, and no shell parses them.
    url = f"http://{host_port(address, int(port))}/{urllib.parse.quote(bucket_name, safe='')}"
    yield StringCommand(*[QuoteString(arg) for arg in s3_request("PUT", url, region)])


def go_xml_escape(value: str) -> str:
    """`value` as Go's encoding/xml writes it (EscapeText): the admin API's listings match it byte for byte."""
    out = []
    for char in value:
        if char in "\x00\ufffe\uffff" or (ord(char) < 0x20 and char not in "\t\n\r") or 0xD800 <= ord(char) <= 0xDFFF:
            raise quoting.QuotingError("object_store account key: holds a character XML cannot carry")
        out.append({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}.get(char, char))
    return "".join(out)


def _url_config(url: str) -> str:
    # A curl config holding only the request's URL (`-K file`), so the key id in its query is on no command line.
    return f'url = "{url}"\n'


# An account's files for the overlap of a two-phase rotation (account_files): absent outside one.
OVERLAP_FILES = ("previous", "policy.json")


def check_rotations(host_name: str, settings: Settings, secrets: Mapping[str, str]) -> None:
    """Preflight, on the resolved secrets: a consumer's previous key id (a rotation's first phase) must be
    another key id than its new one (versitygw keeps one secret per key id: a new secret for the same id
    cannot overlap), and no other consumer's or the store's root key id."""
    from roles._model import SettingsError, SettingsErrors
    from roles._placement import s3_accounts

    store = settings.object_store
    ids = {secrets.get(store.access_key_secret): "the store's root key"}
    for account in s3_accounts(settings):
        ids.setdefault(secrets.get(account.access_key_secret), f"{account.key}'s current key")
    problems = []
    for account in s3_accounts(settings):
        previous = secrets.get(account.previous_access_key_secret)
        if not previous:
            continue
        key = f"host {host_name}.{account.key}.previous_access_key_secret"
        if previous == secrets.get(account.access_key_secret):
            problems.append(SettingsError(
                key, f"{account.previous_access_key_secret} holds {account.key}'s current access key id: a two-phase rotation "
                "needs a new key id (the store keeps one secret per key id, so a new secret alone cannot overlap)",
                f"give {account.access_key_secret} a new key id (e.g. openssl rand -hex 10) with its new secret, or unset "
                f"{account.previous_access_key_secret} to rotate the secret alone in one step"))
        elif previous in ids:
            problems.append(SettingsError(
                key, f"{account.previous_access_key_secret} holds {ids[previous]} id, not a key {account.key} used before",
                f"put {account.key}'s previous access key id there, or unset it"))
    SettingsErrors.raise_if_any(problems)


def bucket_policy(bucket: str, current: str, previous: str) -> str:
    """The bucket policy of a rotation's overlap: the previous key id keeps every right on its consumer's bucket
    (and nothing elsewhere) while the new account owns it. The current key id is named too: with a policy on a
    bucket, versitygw 1.8.0 admits only the policy's principals, its owner included (seen on the lab: the new
    owner got 403 until named). One line, as versitygw returns it on GET ?policy."""
    arn = f"arn:aws:s3:::{bucket}"
    statement = {"Effect": "Allow", "Principal": {"AWS": [current, previous]}, "Action": ["s3:*"], "Resource": [arn, f"{arn}/*"]}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def account_files(account: Account, secrets: Mapping[str, str], port: int, address: str = "127.0.0.1") -> dict[str, str]:
    """The root-only files of one account, by file name under ACCOUNTS_DIR: the admin requests' bodies and
    URLs, and the exact fragments the admin API's listings hold when the account is as wanted. During a
    two-phase rotation (the previous key id in its secret) also the previous key id and the bucket policy
    that keeps it working (OVERLAP_FILES)."""
    access, secret = secrets[account.access_key_secret], secrets[account.secret_key_secret]
    quoting.refuse_control(access, f"{account.key}.access_key_secret")
    quoting.refuse_control(secret, f"{account.key}.secret_key_secret")
    if not re.fullmatch(r"[A-Za-z0-9._~-]{3,128}", access):
        raise quoting.QuotingError(f"{account.key}.access_key_secret: not an S3 access key id (letters, digits, . _ ~ -)")
    base, bucket, xml_secret = f"http://{host_port(address, int(port))}", urllib.parse.quote(account.bucket, safe=""), go_xml_escape(secret)
    user = f"<Access>{access}</Access><Secret>{xml_secret}</Secret><Role>{ROLE}</Role>"
    previous = secrets.get(account.previous_access_key_secret) if account.previous_access_key_secret else None
    overlap = {}
    if previous:
        if not re.fullmatch(r"[A-Za-z0-9._~-]{3,128}", previous):
            raise quoting.QuotingError(f"{account.key}.previous_access_key_secret: not an S3 access key id (letters, digits, . _ ~ -)")
        overlap = {f"{account.name}.previous": previous + "\n", f"{account.name}.policy.json": bucket_policy(account.bucket, access, previous) + "\n"}
    return {
        f"{account.name}.create.xml": f"<Account>{user}</Account>",
        f"{account.name}.update.xml": f"<MutableProps><Secret>{xml_secret}</Secret><Role>{ROLE}</Role></MutableProps>",
        f"{account.name}.update.url": _url_config(f"{base}/update-user?access={access}"),
        f"{account.name}.owner.url": _url_config(f"{base}/change-bucket-owner?bucket={bucket}&owner={access}"),
        # grep -F patterns, one line each: the account as list-users shows it, the bucket as list-buckets does.
        f"{account.name}.user": user + "\n",
        f"{account.name}.owner": f"<Name>{go_xml_escape(account.bucket)}</Name><Owner>{access}</Owner>\n",
        f"{account.name}.access": access + "\n",
        # GET, PUT and DELETE ?policy (the `=`: curl's SigV4 signs the query as S3 canonicalises it).
        f"{account.name}.policy.url": _url_config(f"{base}/{bucket}?policy="),
        **overlap,
    }


def accounts_script(accounts: tuple[Account, ...], port: int, region: str, address: str = "127.0.0.1") -> str:
    """The host's account sync, `check` or `sync`: plain sh and curl, no key in it nor on a command line.

    `check` prints "in sync", or what differs (account names, never a key). `sync` creates each
    account (or updates its secret and role when its key id exists), gives it its bucket, and
    deletes every other account of the internal IAM (a key rotated away, one made by hand).
    A two-phase rotation's overlap (`<account>.previous` present): the previous account is kept and a
    bucket policy lets it keep every right on the bucket; outside one, the bucket has no policy.
    """
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise quoting.QuotingError("object_store.region: not a region name such as us-east-1 (lowercase letters, digits, -)")
    names = " ".join(a.name for a in accounts)
    return f"""#!/bin/sh
# Managed by the Sentinel observability toolkit (roles/object_store): versitygw's accounts, one per
# consumer, each a `{ROLE}` owning only its bucket. `check` prints "in sync" or what differs (never a
# key); `sync` makes it so. curl reads every key from root-only files: the root key from
# {CURL_CONFIG}, the accounts' from {ACCOUNTS_DIR}.
set -eu
umask 077
dir={ACCOUNTS_DIR}
base=http://{host_port(address, int(port))}
accounts="{names}"

admin() {{  # a PATCH to the admin API, signed with the root key
  curl -fsS -K {CURL_CONFIG} --aws-sigv4 aws:amz:{region}:s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PATCH "$@"
}}

s3() {{  # an S3 request (a bucket's policy), signed with the root key
  curl -fsS -K {CURL_CONFIG} --aws-sigv4 aws:amz:{region}:s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}}

policy() {{  # the bucket policy of account $1 as the store holds it; empty when it has none
  s3 -K "$dir/$1.policy.url" 2>/dev/null || true
}}

previous_count() {{
  n=0
  for a in $accounts; do [ -e "$dir/$a.previous" ] && n=$((n + 1)); done
  echo $n
}}

check() {{
  users=$(admin "$base/list-users" 2>/dev/null) || {{ echo "no admin API (internal IAM off, or the store is down)"; return 0; }}
  buckets=$(admin "$base/list-buckets" 2>/dev/null) || {{ echo "no bucket listing"; return 0; }}
  drift=""
  for a in $accounts; do
    printf '%s' "$users" | grep -qF -f "$dir/$a.user" || drift="$drift $a:account"
    printf '%s' "$buckets" | grep -qF -f "$dir/$a.owner" || drift="$drift $a:bucket-owner"
    if [ -e "$dir/$a.previous" ]; then
      printf '%s' "$users" | grep -qF "<Access>$(cat "$dir/$a.previous")</Access>" || drift="$drift $a:previous-account"
      [ "$(policy "$a")" = "$(cat "$dir/$a.policy.json")" ] || drift="$drift $a:overlap-policy"
    else
      [ -z "$(policy "$a")" ] || drift="$drift $a:policy-left"
    fi
  done
  count=$(printf '%s' "$users" | grep -o '<Access>' | wc -l)
  [ "$count" -eq $(({len(accounts)} + $(previous_count))) ] || drift="$drift other-accounts:$count"
  echo "${{drift:-in sync}}"
}}

sync() {{
  for a in $accounts; do
    admin --data-binary "@$dir/$a.create.xml" "$base/create-user" >/dev/null 2>&1 ||
      admin --data-binary "@$dir/$a.update.xml" -K "$dir/$a.update.url" >/dev/null
    admin -K "$dir/$a.owner.url" >/dev/null
    if [ -e "$dir/$a.previous" ]; then
      # The overlap: the previous account must still exist (the store checks a policy's principals).
      admin "$base/list-users" | grep -qF "<Access>$(cat "$dir/$a.previous")</Access>" || {{
        echo "$a: its previous key id is not an account of the store (rotated away already?): unset its previous-key secret" >&2
        exit 1
      }}
      s3 -X PUT --data-binary "@$dir/$a.policy.json" -K "$dir/$a.policy.url" >/dev/null
    elif [ -n "$(policy "$a")" ]; then
      s3 -X DELETE -K "$dir/$a.policy.url" >/dev/null
    fi
  done
  # Every other account goes: a consumer's old key id once its overlap ended, an account made by hand.
  admin "$base/list-users" | grep -o '<Access>[^<]*</Access>' | sed 's/<[^>]*>//g' | while read -r key; do
    wanted=no
    for a in $accounts; do
      [ "$key" = "$(cat "$dir/$a.access")" ] && wanted=yes
      [ -e "$dir/$a.previous" ] && [ "$key" = "$(cat "$dir/$a.previous")" ] && wanted=yes
    done
    [ "$wanted" = yes ] && continue
    case $key in
      *[!A-Za-z0-9._~-]*) echo "an account the toolkit did not make has a key id it cannot put in a URL: delete it with versitygw admin delete-user" >&2; exit 1 ;;
    esac
    printf 'url = "%s/delete-user?access=%s"\n' "$base" "$key" | admin -K - >/dev/null
  done
}}

case "${{1:-}}" in
  check) check ;;
  sync) sync; check ;;
  *) echo "usage: $0 check|sync" >&2; exit 2 ;;
esac
"""


class AccountsState(FactBase):
    """The accounts script's `check`: "in sync", what differs (never a key), or "absent" before its first install."""

    def command(self, script):
        p = shlex.quote(script)
        return f"if [ -x {p} ]; then {p} check; else echo absent; fi"

    def process(self, output):
        return " ".join(line.strip() for line in output if line.strip()) or "absent"


@deploy("Object store")
def object_store(settings: ObjectStoreSettings, ctx: HostContext):
    """
    Install versitygw and create the buckets the stack writes to.

    + settings: the `object_store` block
    + ctx: the host context: its bind (object_store.s3, the loopback), the run's secrets
      (the store's two credentials are taken from them)
    """
    store, secrets = settings, ctx.secrets
    settings = ctx.settings
    bind = ctx.bind("object_store.s3")
    address = split_host_port(bind)[0]  # the role's own requests go where the store listens
    release_service(service_spec(settings, secrets, bind), ctx.artifact_base_url, ctx.hardening)
    validated_file(
        name="versitygw: credentials for the role's S3 requests",
        dest=CURL_CONFIG,
        content=curl_config(*_credentials(settings, secrets)),
        user="root",
        group="root",
        mode="0600",
    )
    for name in store.buckets:
        bucket(name=f"versitygw: bucket {name}", bucket_name=name, data_dir=store.data_dir, port=store.listen_port, region=store.region, address=address)
    _accounts(store, settings, secrets, address)


def _accounts(store: ObjectStoreSettings, settings: Settings, secrets: Mapping[str, str], address: str = "127.0.0.1") -> None:
    """One account per consumer (roles/_placement.py `s3_accounts`), synced when the host's check or the files say so."""
    from roles._placement import s3_accounts

    accounts = s3_accounts(settings)
    # Before the files are in it: only root ever reads the directory.
    files.directory(name="versitygw: accounts directory", path=ACCOUNTS_DIR, user="root", group="root", mode="0700")
    changed = []
    for account in accounts:
        wanted = account_files(account, secrets, store.listen_port, address)
        for file_name, content in wanted.items():
            changed.append(validated_file(
                name=f"versitygw: {account.name} account ({file_name.split('.', 1)[1]})",
                dest=f"{ACCOUNTS_DIR}/{file_name}",
                content=content,
                user="root",
                group="root",
                mode="0600",
            ))
        for suffix in OVERLAP_FILES:  # a rotation's overlap has ended: its files go, and the sync deletes the old account
            if f"{account.name}.{suffix}" not in wanted:
                changed.append(files.file(name=f"versitygw: {account.name} account (no {suffix}: no rotation under way)",
                                          path=f"{ACCOUNTS_DIR}/{account.name}.{suffix}", present=False))
    changed.append(validated_file(
        name="versitygw: accounts script",
        dest=ACCOUNTS_SCRIPT,
        content=accounts_script(accounts, store.listen_port, store.region, address),
        validate="sh -n {path}",
        user="root",
        group="root",
        mode="0700",
    ))
    state = host.get_fact(AccountsState, script=ACCOUNTS_SCRIPT)
    # The check ran when the deploy was planned; files changed in this run sync again.
    server.shell(
        name="versitygw: accounts (one per consumer, each owning only its bucket)",
        commands=[f"{shlex.quote(ACCOUNTS_SCRIPT)} sync"],
        _if=lambda: state != "in sync" or any(op.did_change() for op in changed),
    )
