"""The S3-compatible object store (versitygw) on the `telemetry` hosts.

Loki chunks and Tempo blocks go to its buckets. Credentials come from secrets and
reach the host only in an env file readable by root and the service group.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.files import Directory

from roles._service import ConfigFile, ServiceSpec, release_service

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._settings import Settings

CREDENTIALS = "/etc/versitygw/credentials.env"


def credentials_env(settings: Settings, secrets: Mapping[str, str]) -> str:
    """The env file of the store's root credentials; `secrets` were resolved and checked by preflight."""
    store = settings.object_store
    values = {"ROOT_ACCESS_KEY": secrets[store.access_key_secret], "ROOT_SECRET_KEY": secrets[store.secret_key_secret]}
    return "".join(f"{k}={v}\n" for k, v in values.items())


def service_spec(settings: Settings, secrets: Mapping[str, str]) -> ServiceSpec:
    store = settings.object_store
    return ServiceSpec(
        name="versitygw",
        description="versitygw S3-compatible object store",
        exec_start=(
            "{bin}/versitygw",
            f"--port=:{store.listen_port}",
            "--health=/health",
            f"--region={store.region}",
            "posix",
            f"--sidecar={store.metadata_dir}",
            store.data_dir,
        ),
        configs=(ConfigFile(CREDENTIALS, credentials_env(settings, secrets), mode="0640"),),
        env_files=(CREDENTIALS,),
        data_dirs=("/var/lib/versitygw", store.data_dir, store.metadata_dir),
        ready_url=f"http://127.0.0.1:{store.listen_port}/health",
    )


# SigV4 signs the payload hash; S3 servers require it as a header too.
EMPTY_PAYLOAD_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def s3_request(method: str, url: str, region: str) -> str:
    """A curl command for a signed, empty-bodied S3 request, reading the credentials from the environment."""
    return (
        f'curl -fsS -X {method} --aws-sigv4 "aws:amz:{region}:s3" -H "x-amz-content-sha256: {EMPTY_PAYLOAD_SHA256}" '
        f'--user "$ROOT_ACCESS_KEY:$ROOT_SECRET_KEY" {url}'
    )


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
    # The credentials are read on the host so they never appear in pyinfra's output.
    script = f"set -a; . {CREDENTIALS}; set +a; " + s3_request("PUT", f"http://127.0.0.1:{port}/{bucket_name}", region)
    yield StringCommand("sh", "-c", shlex.quote(script))


@deploy("Object store")
def object_store(settings: Settings, secrets: Mapping[str, str]):
    """
    Install versitygw and create the buckets the stack writes to.

    + settings: this host's settings (object_store, artifact_base_url, systemd_hardening)
    + secrets: the run's resolved secrets; the store's two credentials are taken from it
    """
    store = settings.object_store
    release_service(service_spec(settings, secrets), settings.artifact_base_url, settings.systemd_hardening)
    for name in store.buckets:
        bucket(name=f"versitygw: bucket {name}", bucket_name=name, data_dir=store.data_dir, port=store.listen_port, region=store.region)
