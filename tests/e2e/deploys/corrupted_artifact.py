"""Install a release whose archive on the mirror does not match its published checksum."""

import os

from roles._service.artifacts import resolve
from roles._service.operations import release_archive

artifact = resolve("node_exporter", os.environ["CORRUPT_BASE_URL"])
release_archive(name="node_exporter: corrupted release", artifact=artifact, install_dir="/opt/corruption-test/1")
