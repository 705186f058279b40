from __future__ import annotations

from pydantic import Field

from roles._model import ServiceDir, Model, Name, Port, SecretName, matching


Bucket = matching("valid S3 bucket name", r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "use 3-63 lowercase letters, digits, dots or dashes")


class ObjectStoreSettings(Model):
    """The S3-compatible store (versitygw, posix backend) on the `telemetry` hosts.

    Credentials are named secrets, never values: `access_key_secret` and
    `secret_key_secret` are the names of environment variables or secret files.
    The root key stays in the store's own files; each consumer of a bucket (Loki,
    Tempo) has its own account, a versitygw `user` that owns only its bucket
    (roles/_placement.py `s3_accounts`, docs/tls.md "S3 keys").
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

