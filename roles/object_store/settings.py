from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from roles._model import AbsPath, Model, Name, Port, SecretName


def _bucket(value: str) -> str:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
        raise ValueError(f"{value!r} is not a valid S3 bucket name. Fix: use 3-63 lowercase letters, digits, dots or dashes")
    return value


Bucket = Annotated[str, AfterValidator(_bucket)]


class ObjectStoreSettings(Model):
    """The S3-compatible store (versitygw, posix backend) on the `telemetry` hosts.

    Credentials are named secrets, never values: `access_key_secret` and
    `secret_key_secret` are the names of environment variables or secret files.
    """

    listen_port: Port = Field(7070, description="S3 API port.")
    data_dir: AbsPath = Field("/var/lib/versitygw/data", description="Root of the posix backend: one directory per bucket.")
    metadata_dir: AbsPath = Field(
        "/var/lib/versitygw/meta", description="Sidecar metadata directory (works without user xattrs)."
    )
    region: Name = Field("us-east-1", description="Region the store answers for and requests are signed with.")
    buckets: tuple[Bucket, ...] = Field(("loki", "tempo"), description="Buckets created through the store's API.")
    access_key_secret: SecretName = Field("SENTINEL_S3_ACCESS_KEY", description="Secret holding the root access key.")
    secret_key_secret: SecretName = Field("SENTINEL_S3_SECRET_KEY", description="Secret holding the root secret key.")
