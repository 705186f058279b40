"""The S3-compatible object store (versitygw) on the `telemetry` hosts.

Loki chunks and Tempo blocks go to its buckets. Credentials come from secrets and
reach the host only in an env file readable by root and the service group.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.facts.files import Directory

from roles._service import ConfigFile, ServiceSpec, quoting, release_service
from roles._service.operations import validated_file

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.object_store.settings import ObjectStoreSettings

CREDENTIALS = "/etc/versitygw/credentials.env"
# The same credentials for curl, which signs the role's own S3 requests (bucket
# creation, smoke checks). Root only: the service reads credentials.env.
CURL_CONFIG = "/etc/versitygw/admin.curlrc"


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
    """versitygw; `bind` is object_store.s3 from the topology (the loopback: only the stores on this host use it)."""
    store = settings.object_store
    return ServiceSpec(
        name="versitygw",
        description="versitygw S3-compatible object store",
        exec_start=(
            "{bin}/versitygw",
            f"--port={bind}",
            "--health=/health",
            f"--region={store.region}",
            "posix",
            f"--sidecar={store.metadata_dir}",
            store.data_dir,
        ),
        configs=(ConfigFile(CREDENTIALS, credentials_env(settings, secrets), mode="0640"),),
        env_files=(CREDENTIALS,),
        data_dirs=("/var/lib/versitygw", store.data_dir, store.metadata_dir),
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
def bucket(bucket_name: str, data_dir: str, port: int, region: str):
    """
    Ensure an S3 bucket exists, created through the store's own API.

    + bucket_name: bucket name
    + data_dir: the posix backend's root; a bucket is a directory there
    + port: the store's S3 port on localhost
    + region: the store's region, for request signing
    """
    if host.get_fact(Directory, path=f"{data_dir}/{bucket_name}"):
        return
    # curl reads the credentials from its root-only config on the host, so they
    # are never on a command line or in pyinfra's output, and no shell parses them.
    url = f"http://127.0.0.1:{int(port)}/{urllib.parse.quote(bucket_name, safe='')}"
    yield StringCommand(*[QuoteString(arg) for arg in s3_request("PUT", url, region)])


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
    release_service(service_spec(settings, secrets, ctx.bind("object_store.s3")), ctx.artifact_base_url, ctx.hardening)
    validated_file(
        name="versitygw: credentials for the role's S3 requests",
        dest=CURL_CONFIG,
        content=curl_config(*_credentials(settings, secrets)),
        user="root",
        group="root",
        mode="0600",
    )
    for name in store.buckets:
        bucket(name=f"versitygw: bucket {name}", bucket_name=name, data_dir=store.data_dir, port=store.listen_port, region=store.region)
