from __future__ import annotations

import re
from dataclasses import dataclass

from roles._schema import SettingsError, check_port


@dataclass(frozen=True)
class ObjectStoreSettings:
    """The S3-compatible store (versitygw, posix backend) on the `telemetry` hosts.

    Credentials are named secrets, never values: `access_key_secret` and
    `secret_key_secret` are the names of environment variables or secret files.
    """

    listen_port: int = 7070
    data_dir: str = "/var/lib/versitygw/data"
    metadata_dir: str = "/var/lib/versitygw/meta"  # sidecar metadata: works without user xattrs
    region: str = "us-east-1"
    buckets: tuple[str, ...] = ("loki", "tempo")
    access_key_secret: str = "SENTINEL_S3_ACCESS_KEY"
    secret_key_secret: str = "SENTINEL_S3_SECRET_KEY"

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.listen_port", self.listen_port)
        for i, bucket in enumerate(self.buckets):
            if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
                raise SettingsError(
                    f"{prefix}.buckets[{i}]", f"{bucket!r} is not a valid S3 bucket name", "use 3-63 lowercase letters, digits, dots or dashes"
                )
