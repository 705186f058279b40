from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from roles._model import ServiceDir, Model, Name, Port, SecretName, matching

if TYPE_CHECKING:  # the accounts read the validated aggregate; this module imports none
    from roles._settings import Settings


Bucket = matching("valid S3 bucket name", r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "use 3-63 lowercase letters, digits, dots or dashes")


class ObjectStoreSettings(Model):
    """The S3-compatible store (versitygw, posix backend) on the `telemetry` hosts.

    Credentials are named secrets, never values: `access_key_secret` and
    `secret_key_secret` are the names of environment variables or secret files.
    The root key stays in the store's own files; each consumer of a bucket (Loki,
    Tempo) has its own account, a versitygw `user` that owns only its bucket
    (`accounts` below, docs/retention.md "S3 keys").
    """

    listen_port: Port = Field(7070, description="S3 API port.")
    data_dir: ServiceDir = Field("/var/lib/versitygw/data", description="Root of the posix backend: one directory per bucket.")
    metadata_dir: ServiceDir = Field(
        "/var/lib/versitygw/meta", description="Sidecar metadata directory (works without user xattrs)."
    )
    region: Name = Field("us-east-1", description="Region the store answers for and requests are signed with.")
    iam_dir: ServiceDir = Field(
        "/var/lib/versitygw/iam", description="versitygw's internal IAM (--iam-dir): the consumers' accounts, users.json 0600."
    )
    buckets: tuple[Bucket, ...] = Field(("loki", "tempo"), description="Buckets created through the store's API.")
    access_key_secret: SecretName = Field("SENTINEL_S3_ACCESS_KEY", description="Secret holding the root access key.")
    secret_key_secret: SecretName = Field("SENTINEL_S3_SECRET_KEY", description="Secret holding the root secret key.")


@dataclass(frozen=True)
class Account:
    """A consumer's account on the store: a versitygw `user` that owns `bucket` and nothing else.

    `key` is the settings block naming the bucket and the two secrets (e.g. "loki").
    """

    name: str
    key: str
    bucket: str
    access_key_secret: str
    secret_key_secret: str


def accounts(settings: Settings) -> tuple[Account, ...]:
    """One account per consumer whose bucket the store creates, whether or not the consumer runs here.

    A bucket the store creates gets its owner: the consumer whose settings name it (the lab
    creates the buckets, and so their accounts, without running Loki or Tempo). A bucket no
    consumer names stays the root's.
    """
    buckets = settings.object_store.buckets
    found = []
    for name, key, block in (("loki", "loki", settings.loki), ("tempo", "traces.tempo", settings.traces.tempo)):
        if block.bucket in buckets:
            found.append(Account(name, key, block.bucket, block.access_key_secret, block.secret_key_secret))
    return tuple(found)
